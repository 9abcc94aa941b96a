//! `service`: a daemon started or stopped, enabled at boot, or (as a handler) restarted.
//!
//! Where `/run/systemd/system` exists, systemctl; elsewhere Debian's init scripts through
//! `service` and `update-rc.d` (containers, the lab). Decided on the host at run time.
//! A service systemd does not know yet (a unit or init script an earlier task just wrote)
//! is made known with `systemctl daemon-reload` first. Without systemd, a start or restart
//! is checked a second later with the plan's own liveness test (the pidfile's process, or
//! the init script's `status`) and started again, up to three times: an init script's
//! start returns before its daemon has bound its port, and cannot see it die.

use super::{Action, Assessment, q};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone)]
pub struct SvcRes {
    pub name: String,
    pub state: SvcState,
    pub enabled: Option<bool>,
    /// Without systemd, the liveness check: the process in this file is alive.
    pub pidfile: Option<String>,
}

impl SvcRes {
    pub fn state(&self) -> String {
        format!("service {:?} enabled={:?}", self.state, self.enabled)
    }
    /// Without systemd, the shell test that the daemon runs: its pidfile's process is
    /// alive, or else its init script's `status` says so.
    fn alive(&self) -> String {
        match &self.pidfile {
            Some(p) => format!(
                "{{ [ -s {p} ] && kill -0 \"$(cat {p})\" 2>/dev/null; }}",
                p = q(p)
            ),
            None => format!("service {} status >/dev/null 2>&1", q(&self.name)),
        }
    }
    /// The shell test that a detached run keeps this service stopped (its run folder's
    /// `holds` file names it: a replica's data copy, `crate::runbooks::detached`).
    fn held(&self) -> String {
        format!(
            "{{ h=no; for f in {dir}/*/holds; do [ -f \"$f\" ] && [ \"$(cat \"$f\")\" = {n} ] && h=yes; done; [ $h = yes ]; }}",
            dir = super::RUNS_DIR,
            n = q(&self.name)
        )
    }

    /// Prints `INIT EXISTS ACTIVE ENABLED HELD` (yes/no words; HELD: a detached run keeps
    /// the service stopped).
    pub fn probe(&self) -> String {
        let n = q(&self.name);
        let status = self.alive();
        let held = self.held();
        format!(
            "if [ -d /run/systemd/system ]; then i=systemd; \
               systemctl cat {n} >/dev/null 2>&1 && e=yes || e=no; \
               systemctl is-active --quiet {n} && a=yes || a=no; \
               systemctl is-enabled --quiet {n} 2>/dev/null && b=yes || b=no; \
             else i=sysv; \
               [ -x /etc/init.d/{n} ] && e=yes || e=no; a=no; \
               [ $e = yes ] && {status} && a=yes; \
               set -- /etc/rc2.d/S??{n}; [ -e \"$1\" ] && b=yes || b=no; \
             fi; {held} && h=yes || h=no; echo \"$i $e $a $b $h\""
        )
    }
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let line = facts.lines().next().unwrap_or("").trim();
        let w: Vec<&str> = line.split_whitespace().collect();
        let (exists, active, enabled, held) = match w.as_slice() {
            [_init, e, a, b] => (*e == "yes", *a == "yes", *b == "yes", false),
            [_init, e, a, b, h] => (*e == "yes", *a == "yes", *b == "yes", *h == "yes"),
            _ => return Err(format!("unexpected service probe output: {line:?}")),
        };
        let before = format!("service exists={exists} active={active} enabled={enabled}");
        let mut what = Vec::new();
        match self.state {
            // A run copies data under it: started by that run's command when the copy is
            // whole, never by a plan (the replication task attaches to the run).
            SvcState::Started | SvcState::Restarted if held => {}
            SvcState::Started if !active => what.push("start"),
            SvcState::Stopped if active => what.push("stop"),
            SvcState::Restarted => what.push("restart"),
            SvcState::Reloaded => what.push("reload"),
            _ => {}
        }
        match self.enabled {
            Some(true) if !enabled => what.push("enable"),
            Some(false) if enabled => what.push("disable"),
            _ => {}
        }
        if what.is_empty() {
            return Ok(None);
        }
        let mut notes = Vec::new();
        if !exists {
            notes.push(format!(
                "service {} is not installed yet; an earlier task installs it",
                self.name
            ));
        }
        let action = if matches!(self.state, SvcState::Restarted | SvcState::Reloaded) {
            Action::Run
        } else {
            Action::Update
        };
        Ok(Some(Assessment {
            action,
            summary: format!("{} {}", what.join(" and "), self.name),
            diff: None,
            before,
            notes,
        }))
    }
    pub fn apply_script(&self) -> String {
        let n = q(&self.name);
        let (sd, sv) = match self.state {
            SvcState::Started => (
                format!("systemctl is-active --quiet {n} || systemctl start {n}"),
                format!("service {n} status >/dev/null 2>&1 || service {n} start"),
            ),
            SvcState::Stopped => (
                format!("systemctl stop {n}"),
                format!("service {n} status >/dev/null 2>&1 && service {n} stop || true"),
            ),
            SvcState::Restarted => (
                format!("systemctl restart {n}"),
                format!("service {n} restart"),
            ),
            SvcState::Reloaded => (
                format!("systemctl reload {n}"),
                format!("service {n} reload"),
            ),
        };
        let (sde, sve) = match self.enabled {
            Some(true) => (
                format!("systemctl enable --quiet {n}"),
                format!(
                    "update-rc.d {n} defaults >/dev/null 2>&1; update-rc.d {n} enable >/dev/null"
                ),
            ),
            Some(false) => (
                format!("systemctl disable --quiet {n}"),
                format!("update-rc.d {n} disable >/dev/null"),
            ),
            None => ("true".into(), "true".into()),
        };
        // Without systemd only an init script can start it. Debian's MySQL ships a systemd
        // unit alone: say so, rather than fail in update-rc.d with its message silenced
        // (issue 13).
        let no_init = format!(
            "[ -x /etc/init.d/{n} ] || {{ echo {} >&2; exit 1; }}",
            q(&format!(
                "{name}: this host has no systemd and no init script /etc/init.d/{name} (the package ships a systemd unit only); run the host with systemd as init",
                name = self.name
            ))
        );
        // An init script's start returns once start-stop-daemon has forked, not once the
        // daemon runs: one that dies at once (its port still held by the process just
        // stopped, which start-stop-daemon counts as gone when its /proc/PID/exe vanishes,
        // before the kernel closes its sockets) left a restart "changed" and the daemon
        // down (seen: the node exporter after a restart on a loaded CI machine). So a start
        // or restart is checked a second later with the plan's own liveness test, and
        // started again, up to three times in all. systemd tracks its units itself.
        let settle = match self.state {
            SvcState::Started | SvcState::Restarted => format!(
                "\n  tries=1\n  while sleep 1; ! {alive}; do\n    if [ $tries -ge 3 ]; then echo {down} >&2; cat /tmp/.dbfleet-service.log >&2; exit 1; fi\n    tries=$((tries + 1))\n    service {n} start > /tmp/.dbfleet-service.log 2>&1 || {{ cat /tmp/.dbfleet-service.log >&2; exit 1; }}\n  done",
                alive = self.alive(),
                down = q(&format!(
                    "{}: not running 1 s after each of 3 starts (see its log)",
                    self.name
                )),
            ),
            SvcState::Stopped | SvcState::Reloaded => String::new(),
        };
        // The host's own interlock (a saved plan too): no start under a data copy.
        let interlock = match self.state {
            SvcState::Started | SvcState::Restarted => format!(
                "if {held}; then echo {why} >&2; exit 1; fi\n",
                held = self.held(),
                why = q(&format!(
                    "{}: kept stopped by a run copying data under it ({}/*/holds): not started; `dbfleet apply` attaches to that run and starts the server when the copy is whole",
                    self.name,
                    super::RUNS_DIR
                ))
            ),
            SvcState::Stopped | SvcState::Reloaded => String::new(),
        };
        format!(
            "set -eu\n{interlock}if [ -d /run/systemd/system ]; then\n  systemctl cat {n} >/dev/null 2>&1 || systemctl daemon-reload\n  {sde}\n  {sd}\nelse\n  {no_init}\n  {sve}\n  {sv} > /tmp/.dbfleet-service.log 2>&1 || {{ cat /tmp/.dbfleet-service.log >&2; exit 1; }}{settle}\nfi\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_and_enabled_service_is_matched() {
        let s = SvcRes {
            name: "mariadb".into(),
            state: SvcState::Started,
            enabled: Some(true),
            pidfile: None,
        };
        assert!(s.assess("sysv yes yes yes\n").unwrap().is_none());
        assert_eq!(
            s.assess("sysv yes no yes\n").unwrap().unwrap().summary,
            "start mariadb"
        );
        let a = s.assess("sysv no no no\n").unwrap().unwrap();
        assert_eq!(a.summary, "start and enable mariadb");
        assert_eq!(a.notes.len(), 1, "not installed yet is noted");
    }

    #[test]
    fn a_service_a_detached_run_holds_is_never_planned_to_start_and_refuses_on_the_host() {
        let s = SvcRes {
            name: "mariadb".into(),
            state: SvcState::Started,
            enabled: Some(true),
            pidfile: None,
        };
        // Stopped under a data copy: no start planned.
        assert!(s.assess("sysv yes no yes yes\n").unwrap().is_none());
        assert_eq!(
            s.assess("sysv yes no yes no\n").unwrap().unwrap().summary,
            "start mariadb"
        );
        // The script itself refuses before it starts anything (a saved plan too).
        let script = s.apply_script();
        let refuse = script.find("kept stopped by a run").expect("the interlock");
        let start = script
            .find("service 'mariadb' start")
            .or(script.find("service mariadb start"));
        assert!(start.is_none_or(|i| refuse < i), "{script}");
        assert!(s.probe().contains("/var/lib/dbfleet/runs/*/holds"));
    }

    #[test]
    fn a_start_or_restart_is_checked_with_the_probes_liveness_test() {
        let mut s = SvcRes {
            name: "prometheus-node-exporter".into(),
            state: SvcState::Restarted,
            enabled: None,
            pidfile: Some("/run/prometheus/prometheus-node-exporter.pid".into()),
        };
        let alive = s.alive();
        assert!(s.probe().contains(&alive));
        assert!(
            s.apply_script()
                .contains(&format!("while sleep 1; ! {alive}; do"))
        );
        s.state = SvcState::Started;
        assert!(s.apply_script().contains("after each of 3 starts"));
        s.state = SvcState::Stopped;
        assert!(!s.apply_script().contains("while sleep 1"));
    }
}
