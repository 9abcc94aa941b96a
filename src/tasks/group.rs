//! `group`: this member runs online in its MySQL replication group (Group Replication,
//! single-primary), in a group that holds its majority.
//!
//! The one task that starts a group member's server (`start server` does it for a primary
//! or a replica). How a member enters its group decides whether the group stays one: a
//! member started with `group_replication_bootstrap_group` founds a new group of its own,
//! so a bootstrap beside a running group makes a second group that takes writes, and a
//! bootstrap from a member that is behind the others throws their newer transactions away
//! (MySQL manual 20.2.1.5 "Bootstrapping the Group", 20.5.2 "Restarting a Group"). So this
//! task:
//!
//! - joins (`START GROUP_REPLICATION`: the member reaches the others at its seeds and
//!   copies what it misses from a donor, by the donor's binary log or by CLONE) when
//!   another member listens on Group Replication's port 33061;
//! - founds the group only from the cluster's first member in inventory order, only when no
//!   member listens and this one holds no transaction of the group (its `gtid_executed`);
//!   the plan refuses a bootstrap unless every member was probed (`crate::engine`);
//! - refuses when no member runs and this one belonged to the group: the whole group
//!   stopped, and only the most advanced member may found it again;
//! - refuses a member that sees no majority of its group online (a lost quorum).
//!
//! A member's option file says `group_replication_start_on_boot = OFF`, so a new member is
//! configured (the recovery channel's credentials) before its first start into the group;
//! its first join persists ON (`SET PERSIST`, as MySQL Shell does), so from then on it
//! joins again by itself whenever its server starts. A server Debian's package started
//! before the option file was there (no plugin) is restarted first. The apply script
//! decides again on the host by the same rules and waits until the member is online.

use super::{Action, Assessment, q};
use crate::sql::group::{
    BOOTSTRAP, ONLINE, PERSIST_START_ON_BOOT, RECOVERING, START, STATE_LINE, STOP, facts,
    recovery_credentials,
};
use crate::sql::vertical;

/// Group Replication's group communication port (`group_replication_local_address`).
pub const GCS_PORT: u16 = 33061;

/// Seconds the apply waits for a member to be online: a join copies what it misses first.
pub const ONLINE_WAIT_S: u32 = 3600;

/// The file MySQL keeps `SET PERSIST` values in; a member that joined once has its
/// `group_replication_start_on_boot` there.
const PERSISTED: &str = "/var/lib/mysql/mysqld-auto.cnf";

#[derive(Debug, Clone)]
pub struct GroupRes {
    /// This member's cluster.
    pub cluster: String,
    /// `group_replication_group_name` (a UUID: `crate::tasks::resolve::group_name`).
    pub group_name: String,
    /// The cluster's first member in inventory order: the one a new group starts from.
    pub first: bool,
    /// The cluster's other members: (name, address).
    pub peers: Vec<(String, String)>,
    /// The recovery channel's account and password (the replication account).
    pub recovery_user: String,
    pub recovery_password: String,
    /// The server's service name and pid file (`crate::sql::Dialect`).
    pub service: String,
    pub pidfile: String,
    /// The command-line client.
    pub client: String,
}

/// What the apply does, from the probe's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Start the stopped server: a member that joined before joins again by itself; the
    /// script decides on the host otherwise (join, or found a new group).
    Start,
    /// Join the running group (`listening`: the members seen on port 33061).
    Join { listening: Vec<String> },
    /// Found a new group from this member (the first, holding no transaction of it).
    Bootstrap,
    /// Join the group the first member founds in this apply (this one holds nothing).
    JoinNew,
    /// In the group and recovering (copying what it missed): wait.
    Wait { state: String },
    /// Online, but its server would not join again by itself after a restart.
    PersistStartOnBoot,
}

impl GroupRes {
    /// This member as a runbook plan holds it: the recovery password replaced by
    /// [`crate::secrets::SECRET_PLACEHOLDER`], so a plan shown, saved (`--out`) or
    /// printed as JSON never carries it; the executor fills it in when it sends a step.
    pub fn for_plan(&self) -> GroupRes {
        GroupRes {
            recovery_password: crate::secrets::SECRET_PLACEHOLDER.to_string(),
            ..self.clone()
        }
    }

    pub fn state(&self) -> String {
        format!(
            "online member of replication group {} ({})",
            self.cluster, self.group_name
        )
    }

    fn addresses(&self) -> String {
        self.peers
            .iter()
            .map(|(_, a)| q(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Shell functions the probe and the apply share: `running`, `listening` (the peers'
    /// addresses that accept a connection on port 33061, within a second each),
    /// `group_facts` (`key: value` lines).
    fn functions(&self) -> String {
        format!(
            "{shared}\
             group_facts() {{\n\
             if running; then echo 'running: yes'; {client} -E -e {facts} 2>/dev/null | sed 's/^ *//'; else echo 'running: no'; fi\n\
             if grep -qs group_replication_start_on_boot {PERSISTED}; then echo 'joined_before: yes'; fi\n\
             echo \"peers_listening: $(listening)\"\n\
             }}\n",
            shared = super::member_functions(&self.pidfile, &self.addresses(), GCS_PORT),
            client = self.client,
            facts = q(&facts(&self.group_name)),
        )
    }

    /// Prints the member's facts: `running`, its group facts when running
    /// ([`crate::sql::group::facts`]), `joined_before`, and `peers_listening`.
    pub fn probe(&self) -> String {
        format!("{}group_facts\n", self.functions())
    }

    /// The mode for `facts`, None when this member is online in a group with its majority
    /// and joins again by itself.
    ///
    /// Errors: the refusal's text (a lost quorum, a whole-group stop).
    pub fn mode(&self, facts: &str) -> Result<Option<Mode>, String> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        if get("running").is_empty() {
            return Err(format!("unexpected group probe output: {facts:?}"));
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
        let whole_stop = || {
            format!(
                "no member of replication group {} runs, and this one belonged to it: after a whole-group stop only the most advanced member may found the group again (MySQL manual \"Restarting a Group\"): `dbfleet cluster-restart` finds it and founds the group from it; nothing was changed",
                self.cluster
            )
        };
        if get("running") != "yes" {
            if get("joined_before") == "yes" && listening.is_empty() {
                return Err(whole_stop());
            }
            return Ok(Some(Mode::Start));
        }
        let in_group = get("plugin") == "ACTIVE";
        let state = if in_group { get("member_state") } else { "" };
        if state == ONLINE {
            let online: u32 = get("online").parse().unwrap_or(0);
            let members: u32 = get("members").parse().unwrap_or(0);
            if 2 * online <= members {
                return Err(format!(
                    "member of replication group {} sees {online} of its {members} members reached (online or recovering): the group lost its majority and takes no write; start the members that are down, or force a new membership from the most advanced reachable member by hand (group_replication_force_members); nothing was changed",
                    self.cluster
                ));
            }
            let persisted = matches!(get("start_on_boot"), "ON" | "1");
            return Ok((!persisted).then_some(Mode::PersistStartOnBoot));
        }
        if state == RECOVERING {
            return Ok(Some(Mode::Wait {
                state: state.to_string(),
            }));
        }
        if !listening.is_empty() {
            return Ok(Some(Mode::Join { listening }));
        }
        if get("history") == "1" || get("joined_before") == "yes" {
            return Err(whole_stop());
        }
        Ok(Some(if self.first {
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
        let restart = if get("running") == "yes" && get("plugin") != "ACTIVE" {
            "restart the server the package started without Group Replication, then "
        } else {
            ""
        };
        let summary = match &mode {
            Mode::Start => format!(
                "start the server: it joins replication group {} (a member that belonged copies what it missed from a donor's binary log, or by CLONE)",
                self.cluster
            ),
            Mode::Join { listening } => format!(
                "{restart}join replication group {} ({} running; distributed recovery from a donor)",
                self.cluster,
                listening.join(", ")
            ),
            Mode::Bootstrap => format!(
                "{restart}bootstrap replication group {} from this member (no member runs, none holds its transactions)",
                self.cluster
            ),
            Mode::JoinNew => format!(
                "{restart}join replication group {} once its first member has founded it",
                self.cluster
            ),
            Mode::Wait { state } => format!("wait until online (now {state})"),
            Mode::PersistStartOnBoot => {
                "persist group_replication_start_on_boot = ON: the member joins again by itself when its server starts".to_string()
            }
        };
        Ok(Some(Assessment {
            action: Action::Run,
            summary,
            diff: None,
            before: format!(
                "running={} plugin={} member_state={} role={} online={}/{} start_on_boot={}",
                get("running"),
                get("plugin"),
                get("member_state"),
                get("member_role"),
                get("online"),
                get("members"),
                get("start_on_boot"),
            ),
            notes: Vec::new(),
        }))
    }

    /// `set -eu`, [`Self::functions`], and `state_line` (state, online, members),
    /// `start_server` (returns when the server answers, at most 600 s), `stop_server`,
    /// `credentials` (stores the recovery channel's account when it differs), `wait_online`
    /// (until online with a majority, at most [`ONLINE_WAIT_S`]).
    fn prelude(&self) -> String {
        let svc = q(&self.service);
        let sha = crate::tasks::file::sha256_hex(self.recovery_password.as_bytes());
        format!(
            r#"set -eu
{functions}state_line() {{ {client} -N -B -e {state_line} 2>/dev/null || echo 'NONE 0 0'; }}
start_server() {{
  if [ -d /run/systemd/system ]; then systemctl start {svc} || true; else service {svc} start >/dev/null || true; fi
  t0=$(date +%s)
  until {client} -N -B -e 'SELECT 1' >/dev/null 2>&1; do
    if [ $(($(date +%s) - t0)) -gt 600 ]; then echo "the server did not answer within 600 s of its start: its log (/var/log/mysql/error.log) says why" >&2; exit 1; fi
    sleep 1
  done
}}
stop_server() {{
  if [ -d /run/systemd/system ]; then systemctl stop {svc}; else service {svc} stop >/dev/null; fi
}}
credentials() {{
  set -- $({client} -N -B -e {stored} 2>/dev/null || true)
  if [ "${{1:-}}" != {user} ] || [ "${{2:-}}" != {sha} ]; then
    {client} <<'DBFLEET_SQL'
{credentials}
DBFLEET_SQL
  fi
}}
wait_online() {{
  t0=$(date +%s)
  while :; do
    set -- $(state_line)
    if [ "${{1:-}}" = {ONLINE} ] && [ $((2 * ${{2:-0}})) -gt "${{3:-0}}" ]; then return 0; fi
    if [ "${{1:-}}" = ERROR ]; then echo "the member left replication group {cluster} (ERROR): its log (/var/log/mysql/error.log) says why" >&2; exit 1; fi
    if [ $(($(date +%s) - t0)) -gt {ONLINE_WAIT_S} ]; then echo "not online after {ONLINE_WAIT_S} s (state ${{1:-}})" >&2; exit 1; fi
    sleep 1
  done
}}
persist() {{
  if [ "$({client} -N -B -e {start_on_boot})" != 1 ]; then {client} -e {persist}; fi
}}
"#,
            functions = self.functions(),
            client = self.client,
            state_line = q(STATE_LINE),
            cluster = self.cluster,
            stored = q(crate::sql::group::STORED_CREDENTIALS),
            user = q(&self.recovery_user),
            credentials = recovery_credentials(&self.recovery_user, &self.recovery_password),
            start_on_boot = q(crate::sql::group::START_ON_BOOT),
            persist = q(PERSIST_START_ON_BOOT),
        )
    }

    /// The script: starts the server (restarts one the package started without the
    /// plugin), decides on the host by the probe's rules, stores the recovery channel's
    /// credentials before any start into the group, founds or joins the group, waits until
    /// the member is online with its majority (at most [`ONLINE_WAIT_S`]), persists
    /// `start_on_boot`, and prints how the member came in on its last line.
    pub fn apply_script(&self) -> String {
        let first = if self.first { "yes" } else { "no" };
        format!(
            r#"{prelude}joined_before=no
if grep -qs group_replication_start_on_boot {PERSISTED}; then joined_before=yes; fi
plugin=$({client} -N -B -e {plugin} 2>/dev/null || true)
if running && [ "$plugin" != ACTIVE ]; then
  # The package's server, started before dbfleet's option file: it holds only the
  # package's system tables.
  stop_server
fi
if ! running; then
  if [ $joined_before = yes ] && [ -z "$(listening)" ]; then
    echo "no member of replication group {cluster} runs, and this one belonged to it: a whole-group restart must start from the most advanced member (dbfleet cluster-restart); nothing was changed" >&2
    exit 1
  fi
  start_server
fi
history=$({client} -N -B -e {history} 2>/dev/null || echo 0)
started=$(date +%s)
mode=
starts=0
while :; do
  set -- $(state_line)
  st=${{1:-NONE}}; online=${{2:-0}}; members=${{3:-0}}
  waited=$(($(date +%s) - started))
  if [ "$st" = {ONLINE} ] && [ $((2 * online)) -gt "$members" ]; then break; fi
  if [ "$st" != {ONLINE} ] && [ "$st" != {RECOVERING} ]; then
    live=$(listening)
    if [ -n "$live" ]; then
      # A member back soon after a crash is refused while the group still lists its
      # last incarnation (until the group expels it: about 20 s): tried again for 2 min.
      if [ $starts -ge 3 ] && [ $waited -gt 120 ]; then
        echo "the member did not join replication group {cluster} in $starts starts over $waited s (state $st): its log (/var/log/mysql/error.log) says why" >&2
        exit 1
      fi
      # Out of any group: a failed membership (ERROR), or its own start's attempt to join
      # (start_on_boot), which goes on for a minute when no seed answers. Stopped, then
      # joined explicitly: START waits until the member is in the group's view.
      {client} -e {stop} >/dev/null 2>&1 || true
      credentials
      out=$({client} -e {start} 2>&1 || true)
      starts=$((starts + 1)); mode=join
      if [ -n "$out" ]; then echo "START GROUP_REPLICATION: $out" >&2; sleep 4; fi
    elif [ {first} = yes ] && [ "$history" = 0 ] && [ -z "$mode" ]; then
      credentials
      {client} <<'DBFLEET_SQL'
{bootstrap}
DBFLEET_SQL
      mode=bootstrap
    elif [ "$history" = 0 ] && [ $waited -lt 90 ]; then
      : # the first member founds the group in this apply (it runs before this task)
    elif [ "$history" = 0 ]; then
      echo "no member of replication group {cluster} runs to join; nothing was changed" >&2
      exit 1
    else
      echo "no member of replication group {cluster} runs, and this one holds its transactions: a whole-group restart must start from the most advanced member (dbfleet cluster-restart)" >&2
      exit 1
    fi
  fi
  if ! running && [ $waited -gt 30 ]; then
    echo "the server stopped while joining replication group {cluster}: its log (/var/log/mysql/error.log) says why" >&2
    exit 1
  fi
  if [ $waited -gt {ONLINE_WAIT_S} ]; then
    echo "not online after {ONLINE_WAIT_S} s (state $st, $online of $members members reached)" >&2
    exit 1
  fi
  sleep 1
done
persist
if [ "$mode" = bootstrap ]; then
  echo "bootstrapped replication group {cluster}"
else
  # A CLONE leaves its record in performance_schema.clone_status.
  how="incremental recovery"
  cloned=$({client} -N -B -e {cloned} 2>/dev/null || true)
  if [ -n "$cloned" ] && [ "${{cloned%.*}}" -ge "$started" ]; then how=clone; fi
  echo "joined replication group {cluster} by $how"
fi
"#,
            prelude = self.prelude(),
            client = self.client,
            cluster = self.cluster,
            plugin = q(crate::sql::group::PLUGIN_STATUS),
            history = q(&crate::sql::group::history(&self.group_name)),
            stop = q(STOP),
            start = q(START),
            bootstrap = BOOTSTRAP,
            cloned = q(crate::sql::group::CLONE_COMPLETED),
        )
    }

    /// Prints what a whole-group restart needs to know of this member
    /// (`crate::runbooks::group_restart`): [`Self::probe`]'s facts, and, once its server
    /// answers, `executed` and `received` ([`crate::sql::group::TRANSACTIONS`]). A stopped
    /// server is started for that: with no member of the group running it cannot join
    /// one, and it never founds one by itself (`group_replication_bootstrap_group` is off):
    /// it stays out of any group, super-read-only, as MySQL's manual has the operator do
    /// by hand (20.5.2 "Restarting a Group").
    pub fn recovery_read_script(&self) -> String {
        format!(
            r#"{prelude}group_facts
if ! running; then start_server; fi
{client} -E -e {transactions} | sed 's/^ *//'
"#,
            prelude = self.prelude(),
            client = self.client,
            transactions = q(crate::sql::group::TRANSACTIONS),
        )
    }

    /// A lost quorum's recovery, on the member chosen among the survivors
    /// (`crate::runbooks::group_restart`, `--force-quorum`): refuses when the member is not
    /// online in a minority by then (nothing changed), forces the membership to
    /// `addresses` ([`crate::sql::group::force_members`]: the survivors, port 33061), and
    /// waits until online with a majority.
    pub fn force_quorum_script(&self, addresses: &[String]) -> String {
        format!(
            r#"{prelude}set -- $(state_line)
if [ "${{1:-}}" != {ONLINE} ]; then
  echo "this member is not online in replication group {cluster} by now (${{1:-}}): nothing was changed" >&2
  exit 1
fi
if [ $((2 * ${{2:-0}})) -gt "${{3:-0}}" ]; then
  echo "this member reaches a majority of its group by now (${{2:-0}} of ${{3:-0}}): the quorum is back; nothing was changed" >&2
  exit 1
fi
{client} <<'DBFLEET_SQL'
{force}
DBFLEET_SQL
wait_online
echo "re-formed replication group {cluster} from its members still running"
"#,
            prelude = self.prelude(),
            client = self.client,
            cluster = self.cluster,
            force = crate::sql::group::force_members(addresses),
        )
    }

    /// The first steps of a whole-group restart, on each member but the one chosen to
    /// found the group: refuses when this member is in a group by then (nothing changed),
    /// and stops its own start's attempt to join, which goes on for a minute when no seed
    /// answers (Group Replication's wait for a view) and listens on port 33061 meanwhile:
    /// the chosen member's step then finds no member listening unless a group runs.
    pub fn restart_quiesce_script(&self) -> String {
        format!(
            r#"{prelude}if ! running; then start_server; fi
set -- $(state_line)
case "${{1:-}}" in
  {ONLINE}|{RECOVERING}) echo "this member is in replication group {cluster} (${{1:-}}): not a whole-group stop; nothing was changed" >&2; exit 1 ;;
esac
{client} -e {stop} >/dev/null 2>&1 || true
echo "out of any group, waiting for the group to be founded"
"#,
            prelude = self.prelude(),
            client = self.client,
            cluster = self.cluster,
            stop = q(STOP),
        )
    }

    /// The first step of a whole-group restart, on the member chosen to found the group
    /// again: refuses when a member listens on port 33061 or this one is in a group by
    /// then (nothing changed), leaves its failed membership (ERROR), founds the group, and
    /// waits until online.
    pub fn restart_bootstrap_script(&self) -> String {
        format!(
            r#"{prelude}if [ -n "$(listening)" ]; then
  echo "a member of replication group {cluster} runs already ($(listening)): not a whole-group stop; nothing was changed" >&2
  exit 1
fi
if ! running; then start_server; fi
set -- $(state_line)
case "${{1:-}}" in
  {ONLINE}|{RECOVERING}) echo "this member is in a group already (${{1:-}}): nothing was changed" >&2; exit 1 ;;
  # A failed membership (ERROR), or its own start's attempt to join a group that does not
  # run (start_on_boot: it goes on for a minute).
  *) {client} -e {stop} >/dev/null 2>&1 || true ;;
esac
credentials
{client} <<'DBFLEET_SQL'
{bootstrap}
DBFLEET_SQL
wait_online
persist
echo "bootstrapped replication group {cluster} again from this member"
"#,
            prelude = self.prelude(),
            client = self.client,
            cluster = self.cluster,
            stop = q(STOP),
            bootstrap = BOOTSTRAP,
        )
    }
}

/// The first lines of an account, database or SQL task's script on a member of a
/// replication group: the group's online primary writes; a secondary (super-read-only: the
/// group takes writes on its primary only) writes nothing and says so ([`SECONDARY_NOTE`]),
/// since the primary runs the same task in the same apply and the group replicates it; a
/// member online in no group fails, writing nothing (a write there would be an errant
/// transaction that keeps it out of the group). Every member holds those tasks because
/// the group, not the inventory, says which one is the primary.
pub fn secondary_guard(client: &str) -> String {
    format!(
        "case \"$({client} -N -B -e {q} 2>/dev/null || true)\" in\n\
         PRIMARY) ;;\n\
         SECONDARY) echo {note}; exit 0 ;;\n\
         *) echo 'not online in its replication group: a write here would be an errant transaction; nothing was written' >&2; exit 1 ;;\n\
         esac\n",
        q = q(crate::sql::group::ROLE),
        note = q(SECONDARY_NOTE),
    )
}

/// What [`secondary_guard`] prints; the apply shows it as the host's step.
pub const SECONDARY_NOTE: &str =
    "a secondary of its replication group: written on the group's primary, which replicates it";

#[cfg(test)]
mod tests {
    use super::*;

    fn res(first: bool) -> GroupRes {
        GroupRes {
            cluster: "lab".into(),
            group_name: "8b0c5a4e-1d2f-8a3b-9c4d-5e6f7a8b9c0d".into(),
            first,
            peers: vec![
                ("db2".into(), "10.0.0.12".into()),
                ("db3".into(), "10.0.0.13".into()),
            ],
            recovery_user: "dbfleet_repl".into(),
            recovery_password: "s3cret'pw".into(),
            service: "mysql".into(),
            pidfile: "/run/mysqld/mysqld.pid".into(),
            client: "mysql".into(),
        }
    }

    const ONLINE_FACTS: &str = "running: yes\nplugin: ACTIVE\nmember_state: ONLINE\nmember_role: SECONDARY\nonline: 3\nmembers: 3\nhistory: 1\nstart_on_boot: ON\nrecovery_user: dbfleet_repl\njoined_before: yes\npeers_listening: 10.0.0.12 10.0.0.13\n";

    #[test]
    fn an_online_member_with_its_majority_is_left_alone() {
        assert_eq!(res(false).mode(ONLINE_FACTS), Ok(None));
        assert!(res(true).assess(ONLINE_FACTS).unwrap().is_none());
        // Online but its restart would not bring it back: persisted once.
        let not_persisted = ONLINE_FACTS.replace("start_on_boot: ON", "start_on_boot: OFF");
        assert_eq!(
            res(false).mode(&not_persisted),
            Ok(Some(Mode::PersistStartOnBoot))
        );
    }

    #[test]
    fn only_the_first_member_founds_the_group_and_only_when_nothing_runs_and_it_holds_nothing() {
        // The package's server (no plugin), nothing listening.
        let package = "running: yes\nplugin: NULL\nmember_state: NULL\nonline: 0\nmembers: 0\nhistory: 0\npeers_listening: \n";
        assert_eq!(res(true).mode(package), Ok(Some(Mode::Bootstrap)));
        assert_eq!(res(false).mode(package), Ok(Some(Mode::JoinNew)));
        let a = res(true).assess(package).unwrap().unwrap();
        assert!(a.summary.starts_with("restart the server"), "{}", a.summary);
        // Another member listens: the first member joins it instead of founding another.
        let peer_up = "running: yes\nplugin: ACTIVE\nmember_state: OFFLINE\nonline: 0\nmembers: 1\nhistory: 1\npeers_listening: 10.0.0.13\n";
        assert_eq!(
            res(true).mode(peer_up),
            Ok(Some(Mode::Join {
                listening: vec!["db3".into()]
            }))
        );
    }

    #[test]
    fn a_whole_group_stop_and_a_lost_majority_are_refused() {
        for first in [true, false] {
            // Running, out of any group, holding the group's transactions, nobody to join.
            let e = res(first)
                .mode("running: yes\nplugin: ACTIVE\nmember_state: OFFLINE\nonline: 0\nmembers: 1\nhistory: 1\njoined_before: yes\npeers_listening: \n")
                .unwrap_err();
            assert!(e.contains("most advanced member"), "{e}");
            // Stopped after it had joined, nobody to join: its own start would find no
            // group either, and it is not started.
            let e = res(first)
                .mode("running: no\njoined_before: yes\npeers_listening: \n")
                .unwrap_err();
            assert!(e.contains("whole-group stop"), "{e}");
        }
        let minority = ONLINE_FACTS.replace("online: 3", "online: 1");
        let e = res(false).mode(&minority).unwrap_err();
        assert!(e.contains("lost its majority"), "{e}");
    }

    #[test]
    fn a_stopped_member_is_started_and_a_recovering_one_waited_for() {
        let stopped = "running: no\njoined_before: yes\npeers_listening: 10.0.0.12\n";
        assert_eq!(res(false).mode(stopped), Ok(Some(Mode::Start)));
        let recovering = ONLINE_FACTS.replace("member_state: ONLINE", "member_state: RECOVERING");
        assert_eq!(
            res(false).mode(&recovering),
            Ok(Some(Mode::Wait {
                state: "RECOVERING".into()
            }))
        );
    }

    #[test]
    fn the_apply_script_keeps_the_password_on_stdin_and_refuses_before_it_founds() {
        let s = res(true).apply_script();
        // The credentials go in a quoted heredoc, escaped for SQL.
        assert!(s.contains("SOURCE_PASSWORD = 's3cret\\'pw'"), "{s}");
        assert!(!s.contains(" -e \"CHANGE"), "{s}");
        let refuse = s.find("this one belonged to it").unwrap();
        let bootstrap = s.find("group_replication_bootstrap_group = ON").unwrap();
        assert!(refuse < bootstrap);
    }

    #[test]
    fn the_group_name_is_a_stable_uuid_of_its_own_per_cluster() {
        let a = crate::tasks::resolve::group_name("shop", "lab");
        assert_eq!(a, crate::tasks::resolve::group_name("shop", "lab"));
        assert_ne!(a, crate::tasks::resolve::group_name("shop", "other"));
        assert_ne!(a, crate::tasks::resolve::group_name("other", "lab"));
        // 8-4-4-4-12 lower-case hex, version 8, variant 10xx (RFC 9562).
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(parts[2].starts_with('8'), "{a}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn a_plans_scripts_carry_the_placeholder_not_the_password() {
        let g = res(true).for_plan();
        for s in [
            g.apply_script(),
            g.restart_bootstrap_script(),
            g.restart_quiesce_script(),
            g.force_quorum_script(&["10.0.0.11:33061".into()]),
        ] {
            assert!(!s.contains("s3cret"), "{s}");
        }
        assert!(
            g.apply_script()
                .contains(&crate::sql::quote(crate::secrets::SECRET_PLACEHOLDER))
        );
    }
}
