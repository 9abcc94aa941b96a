//! `galera`: this member runs in its Galera cluster's primary component, synced.
//!
//! The one task that starts a Galera member's server (`start server` does it for a primary
//! or a replica). How it starts decides whether the cluster stays one: a member started
//! with `--wsrep-new-cluster` (a bootstrap) founds a new primary component of its own, so
//! a bootstrap beside a running cluster makes two clusters that each take writes, and a
//! bootstrap from a member that is behind the others throws their newer writes away when
//! they join it (MariaDB KB "Getting Started with MariaDB Galera Cluster", "Bootstrapping a
//! New Cluster"). So this task:
//!
//! - joins (a plain start: the member finds the others at `wsrep_cluster_address` and
//!   receives what it misses, by IST from a donor's gcache or by SST, a whole copy) when
//!   another member listens on Galera's port 4567;
//! - bootstraps only the cluster's first member in inventory order, only when no member
//!   listens and this one has no cluster history (no `grastate.dat`, or its zero UUID: a
//!   new cluster). The plan refuses a bootstrap unless every member of the cluster was
//!   probed (`crate::engine`), and each member with history and no running peer refuses
//!   on its own, so a new cluster is only ever founded over members that hold nothing;
//! - refuses when no member runs and this one holds cluster history: the whole cluster
//!   stopped, and only the most advanced member may start it again
//!   (`crate::runbooks::cluster_restart`);
//! - refuses a member in a non-primary component (the cluster lost its quorum:
//!   `dbfleet cluster-restart --force-quorum` recovers it).
//!
//! A server Debian's package started without wsrep (a fresh install) is stopped first: it
//! holds only the package's system tables. The apply script decides again on the host by
//! the same rules (the state may have moved since the plan) and waits until the member is
//! synced in the primary component.

use super::{Action, Assessment, q};
use crate::sql::galera::{PRIMARY_COMPONENT, STATE_LINE, STATUS, SYNCED, WSREP_ON};
use crate::sql::vertical;

/// Galera's group communication port: a member that listens on it runs in a cluster.
pub const GCOMM_PORT: u16 = 4567;

/// The zero UUID of a `grastate.dat` that never belonged to a cluster.
const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Seconds the apply waits for a member to be synced: a join by SST copies the whole data
/// set from a donor first.
pub const SYNC_WAIT_S: u32 = 3600;

#[derive(Debug, Clone)]
pub struct GaleraRes {
    /// This member's cluster (`wsrep_cluster_name`).
    pub cluster: String,
    /// The cluster's first member in inventory order: the one a new cluster starts from.
    pub first: bool,
    /// The cluster's other members: (name, address).
    pub peers: Vec<(String, String)>,
    /// The server's service name and pid file (`crate::sql::Dialect`).
    pub service: String,
    pub pidfile: String,
    /// The command-line client.
    pub client: String,
}

/// What the apply does, from the probe's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Start and join the running cluster (`listening`: the members seen on port 4567).
    Join { listening: Vec<String> },
    /// Found a new cluster from this member (the first, holding no cluster history).
    Bootstrap,
    /// Join the cluster the first member founds in this apply (this one holds nothing).
    JoinNew,
    /// Running in the primary component but not synced yet (joining, donor): wait.
    Wait { state: String },
}

/// Why the task refuses, from the probe's facts (the plan fails with it, nothing changes).
fn refusal(r: &GaleraRes, f: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if get("running") == "yes" && get("wsrep_on") == "1" {
        let status = get("cluster_status");
        if status != PRIMARY_COMPONENT {
            return Some(format!(
                "member of cluster {} is in a {} component (size {}): the cluster lost its quorum; start the members that are down, or, if they are down for good, `dbfleet cluster-restart --force-quorum` re-forms the primary component from the most advanced member running",
                r.cluster,
                if status.is_empty() {
                    "disconnected"
                } else {
                    status
                },
                get("cluster_size")
            ));
        }
        return None;
    }
    if !get("peers_listening").is_empty() || fresh(f) {
        return None;
    }
    Some(format!(
        "no member of cluster {} runs, and this one holds its data (grastate.dat seqno {}): after a whole-cluster stop only the most advanced member may start the cluster again (its seqno, or `mariadbd --wsrep-recover`'s position), and `dbfleet cluster-restart` finds it and starts the cluster from it; nothing was changed",
        r.cluster,
        get("grastate_seqno")
    ))
}

/// No cluster history: no `grastate.dat`, or one with the zero UUID.
fn fresh(f: &std::collections::BTreeMap<String, String>) -> bool {
    match f.get("grastate_uuid").map(String::as_str) {
        None | Some("") => true,
        Some(u) => u == ZERO_UUID,
    }
}

impl GaleraRes {
    pub fn state(&self) -> String {
        format!("synced member of Galera cluster {}", self.cluster)
    }

    fn addresses(&self) -> String {
        self.peers
            .iter()
            .map(|(_, a)| q(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Shell functions the probe and the apply share: `running`, `galera_facts` (the
    /// member's status and grastate.dat as `key: value` lines) and `listening` (the peers'
    /// addresses that accept a connection on port 4567, within a second each).
    fn functions(&self) -> String {
        format!(
            "{shared}\
             galera_facts() {{\n\
             if running; then echo 'running: yes'; {client} -E -e {status} 2>/dev/null | sed 's/^ *//'; else echo 'running: no'; fi\n\
             if [ -f /var/lib/mysql/grastate.dat ]; then sed -n 's/^uuid: */grastate_uuid: /p; s/^seqno: */grastate_seqno: /p; s/^safe_to_bootstrap: */safe_to_bootstrap: /p' /var/lib/mysql/grastate.dat; fi\n\
             echo \"peers_listening: $(listening)\"\n\
             }}\n",
            shared = super::member_functions(&self.pidfile, &self.addresses(), GCOMM_PORT),
            client = self.client,
            status = q(STATUS),
        )
    }

    /// Prints the member's facts: `running`, its wsrep status when running, grastate.dat's
    /// `uuid`/`seqno`/`safe_to_bootstrap`, and `peers_listening`.
    pub fn probe(&self) -> String {
        format!("{}galera_facts\n", self.functions())
    }

    /// The mode for `facts`, None when this member is synced in the primary component.
    ///
    /// Errors: the refusal's text (a lost quorum, a whole-cluster stop).
    pub fn mode(&self, facts: &str) -> Result<Option<Mode>, String> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        if get("running").is_empty() {
            return Err(format!("unexpected galera probe output: {facts:?}"));
        }
        if let Some(why) = refusal(self, &f) {
            return Err(why);
        }
        if get("running") == "yes" && get("wsrep_on") == "1" {
            return Ok((get("local_state") != SYNCED).then(|| Mode::Wait {
                state: get("local_state_comment").to_string(),
            }));
        }
        let listening: Vec<String> = get("peers_listening")
            .split_whitespace()
            .map(|a| {
                self.peers
                    .iter()
                    .find(|(_, addr)| addr == a)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| a.to_string())
            })
            .collect();
        Ok(Some(if !listening.is_empty() {
            Mode::Join { listening }
        } else if self.first {
            Mode::Bootstrap
        } else {
            Mode::JoinNew
        }))
    }

    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let Some(mode) = self.mode(facts)? else {
            return Ok(None);
        };
        let f = vertical(facts);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let standalone = get("running") == "yes" && get("wsrep_on") != "1";
        let stop = if standalone {
            "stop the server the package started without wsrep, then "
        } else {
            ""
        };
        let history = if fresh(&f) {
            "it holds no cluster data: SST, a whole copy from a donor".to_string()
        } else if get("grastate_seqno") == "-1" {
            // A crashed member's position is recovered when it starts (wsrep-recover).
            "it holds the cluster's data (its position is recovered at start): IST when a donor's gcache still holds what it missed, else SST".to_string()
        } else {
            format!(
                "it holds the cluster's data up to seqno {}: IST when a donor's gcache still holds what it missed, else SST",
                get("grastate_seqno")
            )
        };
        let summary = match &mode {
            Mode::Join { listening } => format!(
                "{stop}join Galera cluster {} ({} running; {history})",
                self.cluster,
                listening.join(", ")
            ),
            Mode::Bootstrap => format!(
                "{stop}bootstrap Galera cluster {} from this member (no member runs, none holds data)",
                self.cluster
            ),
            Mode::JoinNew => format!(
                "{stop}join Galera cluster {} once its first member has founded it (SST)",
                self.cluster
            ),
            Mode::Wait { state } => format!("wait until synced (now {state})"),
        };
        Ok(Some(Assessment {
            action: Action::Run,
            summary,
            diff: None,
            before: format!(
                "running={} wsrep_on={} local_state={} cluster_status={} grastate={}:{}",
                get("running"),
                get("wsrep_on"),
                get("local_state"),
                get("cluster_status"),
                get("grastate_uuid"),
                get("grastate_seqno")
            ),
            notes: Vec::new(),
        }))
    }

    /// The script: decides again on the host by the probe's rules, stops a server started
    /// without wsrep, bootstraps or joins, and waits until the member is synced in the
    /// primary component (at most [`SYNC_WAIT_S`]). Prints how it joined (IST or SST, from
    /// the error log) on its last line.
    /// `set -eu`, [`Self::functions`], and `state_line`, `synced`, `wait_synced` (at most
    /// [`SYNC_WAIT_S`]; fails when the server stops while it waits).
    fn prelude(&self) -> String {
        let svc = q(&self.service);
        format!(
            r#"set -eu
{functions}state_line() {{ {client} -N -B -e {state_line} 2>/dev/null || true; }}
synced() {{ [ "$(state_line)" = "{SYNCED}	{PRIMARY_COMPONENT}" ]; }}
wait_synced() {{
  t0=$(date +%s)
  while ! synced; do
    now=$(date +%s)
    if ! running && [ $((now - t0)) -gt 30 ]; then
      echo "the server stopped while joining cluster {cluster}: its log (journalctl -u {svc}, or syslog) says why" >&2
      exit 1
    fi
    if [ $((now - t0)) -gt {SYNC_WAIT_S} ]; then
      echo "not synced after {SYNC_WAIT_S} s (state: $(state_line))" >&2
      exit 1
    fi
    sleep 1
  done
}}
"#,
            functions = self.functions(),
            client = self.client,
            state_line = q(STATE_LINE),
            cluster = self.cluster,
        )
    }

    /// Prints what a whole-cluster restart needs to know of this member
    /// (`crate::runbooks::cluster_restart`): [`Self::probe`]'s facts, then `recovered:
    /// UUID:SEQNO` when the server is stopped and grastate.dat does not hold the position
    /// (seqno -1: it crashed). That position is read with `mariadbd --wsrep-recover`,
    /// which runs InnoDB's crash recovery and prints the last committed write set, as
    /// every start of a member does first (MariaDB KB "Galera Cluster Recovery").
    pub fn recovery_read_script(&self) -> String {
        format!(
            r#"{functions}galera_facts
seqno=$(sed -n 's/^seqno: *//p' /var/lib/mysql/grastate.dat 2>/dev/null || true)
if ! running && [ "$seqno" = -1 ]; then
  log=$(mktemp); chown mysql "$log"
  /usr/sbin/mariadbd --user=mysql --wsrep-recover --log-error="$log" >/dev/null 2>&1 || true
  echo "recovered: $(sed -n 's/.*WSREP: Recovered position: *//p' "$log" | tail -n 1)"
  rm -f "$log"
fi
"#,
            functions = self.functions()
        )
    }

    /// The first step of a whole-cluster restart, on the member chosen to start it: refuses
    /// when a member listens on port 4567 or its own server runs (nothing changed), marks
    /// its grastate.dat safe to bootstrap, bootstraps, and waits until synced.
    pub fn restart_bootstrap_script(&self) -> String {
        let svc = q(&self.service);
        format!(
            r#"{prelude}if [ -n "$(listening)" ]; then
  echo "a member of cluster {cluster} runs already ($(listening)): not a whole-cluster stop; nothing was changed" >&2
  exit 1
fi
if running; then
  echo "the server runs already: nothing was changed" >&2
  exit 1
fi
sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' /var/lib/mysql/grastate.dat
if [ -d /run/systemd/system ]; then galera_new_cluster; else /etc/init.d/{svc} bootstrap >/dev/null || true; fi
wait_synced
echo "bootstrapped Galera cluster {cluster} again from this member"
"#,
            prelude = self.prelude(),
            cluster = self.cluster,
        )
    }

    /// A lost quorum's recovery, on the member chosen to re-form the primary component
    /// (`crate::runbooks::cluster_restart`, `--force-quorum`): refuses when the member is
    /// not running in a non-primary component by then (nothing changed), makes its
    /// component the primary component ([`crate::sql::galera::FORCE_PRIMARY`]), and waits
    /// until synced.
    pub fn force_quorum_script(&self) -> String {
        format!(
            r#"{prelude}if ! running || [ "$({client} -N -B -e {wsrep_on} 2>/dev/null)" != 1 ]; then
  echo "the server does not run in cluster {cluster} by now: nothing was changed" >&2
  exit 1
fi
if synced; then
  echo "this member is synced in a primary component by now: the quorum is back; nothing was changed" >&2
  exit 1
fi
case "$(state_line)" in
  *"	{PRIMARY_COMPONENT}") echo "this member is in a primary component by now: nothing was changed" >&2; exit 1 ;;
esac
{client} -e {force}
wait_synced
echo "re-formed the primary component of cluster {cluster} from this member"
"#,
            prelude = self.prelude(),
            client = self.client,
            cluster = self.cluster,
            wsrep_on = q(WSREP_ON),
            force = q(crate::sql::galera::FORCE_PRIMARY),
        )
    }

    pub fn apply_script(&self) -> String {
        let svc = q(&self.service);
        let first = if self.first { "yes" } else { "no" };
        format!(
            r#"{prelude}if running && [ "$({client} -N -B -e {wsrep_on} 2>/dev/null)" = 1 ]; then
  wait_synced
  echo "synced in cluster {cluster}"
  exit 0
fi
grastate_uuid=$(sed -n 's/^uuid: *//p' /var/lib/mysql/grastate.dat 2>/dev/null || true)
fresh=no
if [ -z "$grastate_uuid" ] || [ "$grastate_uuid" = {ZERO_UUID} ]; then fresh=yes; fi
live=$(listening)
if [ -z "$live" ] && [ {first} = no ] && [ $fresh = yes ]; then
  # The first member founds the cluster in this apply (it runs before this task).
  t0=$(date +%s)
  while [ -z "$live" ] && [ $(($(date +%s) - t0)) -lt 60 ]; do sleep 1; live=$(listening); done
fi
if [ -n "$live" ]; then
  mode=join
elif [ {first} = yes ] && [ $fresh = yes ]; then
  mode=bootstrap
elif [ $fresh = yes ]; then
  echo "no member of cluster {cluster} runs to join; nothing was changed" >&2
  exit 1
else
  echo "no member of cluster {cluster} runs, and this one holds its data: a whole-cluster restart must start from the most advanced member (dbfleet cluster-restart); nothing was changed" >&2
  exit 1
fi
if running; then
  if [ -d /run/systemd/system ]; then systemctl stop {svc}; else service {svc} stop; fi
fi
started=$(date +%s)
if [ $mode = bootstrap ]; then
  if [ -d /run/systemd/system ]; then galera_new_cluster; else /etc/init.d/{svc} bootstrap >/dev/null || true; fi
else
  if [ -d /run/systemd/system ]; then systemctl start {svc} || true; else service {svc} start >/dev/null || true; fi
fi
wait_synced
if [ $mode = bootstrap ]; then
  echo "bootstrapped Galera cluster {cluster}"
else
  # An SST leaves the donor's position in the data folder (wsrep_sst_mariabackup); an
  # IST writes no file there.
  how=IST
  info=/var/lib/mysql/donor_galera_info
  if [ -f $info ] && [ "$(stat -c %Y $info)" -ge "$started" ]; then how=SST; fi
  echo "joined Galera cluster {cluster} by $how"
fi
"#,
            prelude = self.prelude(),
            client = self.client,
            cluster = self.cluster,
            wsrep_on = q(WSREP_ON),
        )
    }
}

/// A member's position as a whole-cluster restart reads it: its cluster's UUID and the
/// seqno of the last write set it committed; None for a member with no cluster history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub uuid: String,
    pub seqno: i64,
}

/// The position in [`GaleraRes::recovery_read_script`]'s output: grastate.dat's, or the
/// recovered one when grastate.dat says -1.
///
/// Errors: a crashed member whose position could not be recovered.
pub fn position(facts: &str) -> Result<Option<Position>, String> {
    let f = vertical(facts);
    if fresh(&f) {
        return Ok(None);
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let seqno: i64 = get("grastate_seqno").parse().unwrap_or(-1);
    if seqno >= 0 {
        return Ok(Some(Position {
            uuid: get("grastate_uuid"),
            seqno,
        }));
    }
    let recovered = get("recovered");
    match recovered.rsplit_once(':') {
        Some((uuid, n)) if n.parse::<i64>().is_ok_and(|n| n >= 0) => Ok(Some(Position {
            uuid: uuid.to_string(),
            seqno: n.parse().unwrap_or(-1),
        })),
        _ => Err(format!(
            "its position is not in grastate.dat (seqno -1: it crashed) and `mariadbd --wsrep-recover` printed none ({recovered:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(first: bool) -> GaleraRes {
        GaleraRes {
            cluster: "lab".into(),
            first,
            peers: vec![
                ("db2".into(), "10.0.0.12".into()),
                ("db3".into(), "10.0.0.13".into()),
            ],
            service: "mariadb".into(),
            pidfile: "/run/mysqld/mysqld.pid".into(),
            client: "mariadb".into(),
        }
    }

    const SYNCED_FACTS: &str = "running: yes\nwsrep_on: 1\nlocal_state: 4\nlocal_state_comment: Synced\ncluster_status: Primary\ncluster_size: 3\ngrastate_uuid: 6b1f0c7e-0000-11ef-8000-0242ac1d4d0b\ngrastate_seqno: -1\npeers_listening: 10.0.0.12 10.0.0.13\n";

    #[test]
    fn a_synced_member_in_the_primary_component_is_left_alone() {
        assert_eq!(res(false).mode(SYNCED_FACTS), Ok(None));
        assert!(res(true).assess(SYNCED_FACTS).unwrap().is_none());
    }

    #[test]
    fn only_the_first_member_bootstraps_and_only_when_nothing_runs_and_it_holds_nothing() {
        let bare = "running: no\npeers_listening: \n";
        assert_eq!(res(true).mode(bare), Ok(Some(Mode::Bootstrap)));
        assert_eq!(res(false).mode(bare), Ok(Some(Mode::JoinNew)));
        // A server the package started without wsrep holds nothing of the cluster.
        let standalone = "running: yes\nwsrep_on: 0\npeers_listening: \n";
        assert_eq!(res(true).mode(standalone), Ok(Some(Mode::Bootstrap)));
        let a = res(true).assess(standalone).unwrap().unwrap();
        assert!(a.summary.starts_with("stop the server"), "{}", a.summary);
        // Another member listens: the first member joins it instead of founding another.
        let peer_up = "running: no\ngrastate_uuid: 6b1f0c7e-0000-11ef-8000-0242ac1d4d0b\ngrastate_seqno: 41\npeers_listening: 10.0.0.13\n";
        assert_eq!(
            res(true).mode(peer_up),
            Ok(Some(Mode::Join {
                listening: vec!["db3".into()]
            }))
        );
        let a = res(true).assess(peer_up).unwrap().unwrap();
        assert!(a.summary.contains("up to seqno 41: IST"), "{}", a.summary);
    }

    #[test]
    fn a_whole_cluster_stop_and_a_lost_quorum_are_refused() {
        // Nobody runs and this member holds the cluster's data: never a bootstrap.
        for first in [true, false] {
            let e = res(first)
                .mode("running: no\ngrastate_uuid: 6b1f0c7e-0000-11ef-8000-0242ac1d4d0b\ngrastate_seqno: 57\nsafe_to_bootstrap: 1\npeers_listening: \n")
                .unwrap_err();
            assert!(
                e.contains("most advanced member") && e.contains("seqno 57"),
                "{e}"
            );
        }
        let e = res(false)
            .mode("running: yes\nwsrep_on: 1\nlocal_state: 0\nlocal_state_comment: Initialized\ncluster_status: non-Primary\ncluster_size: 1\npeers_listening: \n")
            .unwrap_err();
        assert!(e.contains("lost its quorum"), "{e}");
    }

    #[test]
    fn a_member_joining_or_donating_is_waited_for() {
        let donor = SYNCED_FACTS
            .replace("local_state: 4", "local_state: 2")
            .replace("Synced", "Donor/Desynced");
        assert_eq!(
            res(false).mode(&donor),
            Ok(Some(Mode::Wait {
                state: "Donor/Desynced".into()
            }))
        );
    }

    #[test]
    fn the_apply_script_refuses_before_it_stops_anything() {
        let s = res(true).apply_script();
        let refuse = s.find("holds its data").unwrap();
        let stop = s.find("service mariadb stop").unwrap();
        assert!(refuse < stop);
        assert!(s.contains("/etc/init.d/mariadb bootstrap"));
    }
}
