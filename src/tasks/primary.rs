//! `primary`: the declared primary of a cluster takes writes, and is the only one.
//!
//! Every server starts read-only (`templates/mysqld.cnf.j2`), so this task is what makes
//! the declared primary writable, live, with the primary side of semi-sync switched on
//! when the fleet asks for it. When the declared primary is still replicating from
//! another database host of its cluster, the inventory moved the primary: the change is
//! a planned switchover (`crate::runbooks::switchover`), which also repoints the cluster's
//! replicas and the proxies' writer. A server that is not running yet is left to
//! `start server` and made writable after it.

use super::{Action, Assessment, q};
use crate::sql::{Dialect, vertical};

#[derive(Debug, Clone)]
pub struct PrimaryRes {
    pub dialect: Dialect,
    /// Switch the primary side of semi-sync on (fleet var `semi_sync`).
    pub semi_sync: bool,
    /// This host's cluster.
    pub cluster: String,
    /// Every database host of the cluster but this one: (name, address).
    pub peers: Vec<(String, String)>,
    /// MySQL: seconds `enforce_gtid_consistency` stays WARN, watched, before GTIDs are
    /// turned on live (`gtid_consistency_warn_seconds`).
    pub gtid_warn_s: u64,
}

/// What the apply does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// read_only OFF (and semi-sync's primary side ON): after a restart, or a fresh host.
    MakeWritable,
    /// Promote this host, demote `from` (a database host of the cluster it replicates from).
    Switchover { from: String },
    /// Replicating from a server that is not in the cluster: dbfleet refuses to guess.
    Foreign(String),
    /// Read-only under a point-in-time restore that runs on the host (its run folder,
    /// [`super::RESTORE_RUN`]): made writable by the restore's own last step, never by a
    /// plan (application writes would interleave with the reload).
    Restoring,
    /// MySQL with `gtid_mode` not ON (a fleet built by hand, replicating by file and
    /// position): GTIDs are turned on in the whole cluster first, live
    /// (`crate::runbooks::gtid_online`), then the rest of this task.
    EnableGtid { from: String },
}

impl PrimaryRes {
    pub fn state(&self) -> String {
        format!(
            "writable primary of cluster {} (semi-sync {})",
            self.cluster,
            if self.semi_sync { "on" } else { "off" }
        )
    }

    /// Whether a restore runs on the host (`restore_run: yes`), then read_only, semi-sync
    /// and replication status, one client call.
    pub fn probe(&self) -> String {
        format!(
            "{}{} -E --force 2>/dev/null <<'DBFLEET_SQL'\nSELECT 'dbfleet-up' AS up, @@GLOBAL.read_only AS read_only{};\n{}\n{} AS logged;\n{};\nDBFLEET_SQL\ntrue",
            restoring_probe(),
            self.dialect.client(),
            if self.dialect == Dialect::MariaDb {
                ""
            } else {
                ", @@GLOBAL.gtid_mode AS gtid_mode"
            },
            self.dialect.semi_sync_primary_status(),
            self.dialect.current_position().trim_end_matches(';'),
            self.dialect.show_replica_status()
        )
    }

    /// The mode for `facts`, or None when this host already is the writable primary.
    pub fn mode(&self, facts: &str) -> Option<Mode> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        if get("up") != "dbfleet-up" {
            return Some(Mode::MakeWritable);
        }
        let gtid_mode = get("gtid_mode");
        if !gtid_mode.is_empty() && !gtid_mode.eq_ignore_ascii_case("ON") {
            return Some(Mode::EnableGtid {
                from: gtid_mode.to_string(),
            });
        }
        let source = self
            .dialect
            .replica_status(&f)
            .map(|r| r.source_host)
            .unwrap_or_default();
        if !source.is_empty() {
            return Some(match self.peers.iter().find(|(_, a)| *a == source) {
                Some((name, _)) => Mode::Switchover { from: name.clone() },
                None => Mode::Foreign(source),
            });
        }
        let live_semi = get("semi_sync_primary") == "1";
        let semi_wrong = self.semi_sync != live_semi;
        if get("read_only") != "0" || semi_wrong {
            if get("restore_run") == "yes" {
                return Some(Mode::Restoring);
            }
            return Some(Mode::MakeWritable);
        }
        None
    }

    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let Some(mode) = self.mode(facts) else {
            return Ok(None);
        };
        let before = format!(
            "read_only={} semi_sync_primary={} source={}",
            get("read_only"),
            get("semi_sync_primary"),
            self.dialect
                .replica_status(&f)
                .map(|r| r.source_host)
                .unwrap_or_default()
        );
        let (action, summary, notes) = match mode {
            Mode::MakeWritable => {
                let mut what = Vec::new();
                if get("read_only") != "0" {
                    what.push("read_only ON → OFF".to_string());
                }
                if self.semi_sync && get("semi_sync_primary") != "1" {
                    what.push(if get("logged").is_empty() {
                        "semi-sync primary side ON (once the replicas replicate, if it has logged nothing yet)".into()
                    } else {
                        "semi-sync primary side ON".to_string()
                    });
                }
                if !self.semi_sync && get("semi_sync_primary") == "1" {
                    what.push("semi-sync primary side OFF".into());
                }
                if what.is_empty() {
                    what.push("read_only OFF once the server runs".into());
                }
                (
                    Action::Update,
                    format!("take writes as the primary: {}", what.join(", ")),
                    Vec::new(),
                )
            }
            // The switchover runbook's steps (and its refusals) are added where the runbook
            // lives: the engine folds the cluster's changes into it (`Engine::plan`).
            Mode::Switchover { from } => (
                Action::Run,
                format!("switchover: promote this host, demote {from}"),
                Vec::new(),
            ),
            // The runbook's steps are its own (`crate::runbooks::gtid_online`); it runs
            // first, then whatever else this task has to do.
            Mode::EnableGtid { from } => (
                Action::Run,
                format!(
                    "GTIDs on, live, in cluster {}: gtid_mode {from} → ON on every server, one step at a time (MySQL manual, \"Enabling GTID Transactions Online\"): no restart, no copy",
                    self.cluster
                ),
                vec![format!(
                    "enforce_gtid_consistency is WARN for {} s first: a statement GTIDs cannot carry in that window refuses the change and sets it back",
                    self.gtid_warn_s
                )],
            ),
            Mode::Restoring => {
                return Err(format!(
                    "a point-in-time restore runs on this host ({}): the primary stays read-only until its last step; `dbfleet restore HOST` attaches to it and reports its end",
                    super::restore_run_dir()
                ));
            }
            Mode::Foreign(addr) => {
                return Err(format!(
                    "the declared primary replicates from {addr}, which is no database host of cluster {}; dbfleet will not promote it (stop that replication by hand, or fix the inventory)",
                    self.cluster
                ));
            }
        };
        Ok(Some(Assessment {
            action,
            summary,
            diff: None,
            before,
            notes,
        }))
    }

    /// The statements that make this host the writable primary ([`writable_sql`]).
    pub fn writable_sql(&self) -> String {
        writable_sql(self.dialect, self.semi_sync)
    }

    /// The sh script of the task. With semi-sync declared, a server that has logged no
    /// transaction yet (a new cluster's primary: an empty GTID position,
    /// [`Dialect::current_position`]) is made writable with the primary side of semi-sync left off:
    /// no replica replicates from it yet, so dbfleet's own first writes (hardening,
    /// accounts) would wait for an acknowledgement nobody can give, the whole
    /// `semi_sync_timeout_ms`, forever with `never` (seen in the lab: the first apply hung
    /// on `DROP DATABASE test`). `playbooks/semi-sync.yml` switches it on once the
    /// replicas replicate. A server with a history gets it at once, as before: its
    /// replicas reconnect on their own, and until one acknowledges, its writes wait.
    pub fn apply_script(&self) -> String {
        let client = self.dialect.client();
        let sql = |semi: bool| {
            format!(
                "{client} <<'DBFLEET_SQL'\n{}\nDBFLEET_SQL\n",
                writable_sql(self.dialect, semi)
            )
        };
        // The host's own interlock (a saved plan too): never writable under a restore.
        let interlock = format!(
            "if [ -d {d} ]; then echo {why} >&2; exit 1; fi\n",
            d = q(&super::restore_run_dir()),
            why = q(
                "a point-in-time restore runs on this host: the primary stays read-only until its last step (`dbfleet restore HOST` attaches to it)"
            )
        );
        if !self.semi_sync {
            if self.dialect == Dialect::MariaDb {
                return format!("set -eu\n{interlock}{}", sql(false));
            }
            // MySQL has the variable only once its plugin is loaded, at the restart on
            // dbfleet's option file: before it (a hand-built server's first apply, issue
            // 28), semi-sync is off anyway and only read_only changes.
            return format!(
                "set -eu\n{interlock}if {client} -N -e {} | grep -q 1; then\n{}else\n{client} -e {}\nfi\n",
                q(self.dialect.semi_sync_primary_loaded()),
                sql(false),
                q(&self.dialect.set_read_only(false))
            );
        }
        format!(
            "set -eu\n{interlock}logged=$({client} -N -e {})\nif [ -n \"$logged\" ]; then\n{}else\n{}echo 'semi-sync primary side: switched on once the replicas replicate (this server has logged nothing yet)'\nfi\n",
            crate::tasks::q(self.dialect.current_position()),
            sql(true),
            sql(false)
        )
    }
}

/// The shell line of [`PrimaryRes::probe`] that says a restore runs on the host.
fn restoring_probe() -> String {
    format!(
        "[ -d {} ] && echo 'restore_run: yes'\n",
        q(&super::restore_run_dir())
    )
}

/// The statements that make a server the writable primary: semi-sync's primary side set
/// first (so no write is acknowledged without a replica's ack when semi-sync is declared),
/// then read_only OFF. MySQL has the semi-sync variable only with its plugin loaded:
/// dbfleet's mysqld.cnf loads it on every MySQL host (`templates/mysqld.cnf.j2`).
pub fn writable_sql(d: Dialect, semi_sync: bool) -> String {
    format!(
        "{}\n{}",
        d.set_semi_sync_primary(semi_sync),
        d.set_read_only(false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the task's script under sh with a scripted `mariadb` on PATH that answers
    /// `-N -e` with `logged` and records what it is fed on stdin. Returns (stdout, fed).
    fn run(semi_sync: bool, logged: &str) -> (String, String) {
        let sb = crate::tasks::sandbox::Sandbox::new(
            "mariadb",
            &format!(
                "if [ \"$1\" = -N ]; then printf '%s\\n' '{logged}'; else cat >> \"$FAKE_DIR/fed\"; fi\n"
            ),
        );
        let r = PrimaryRes {
            dialect: Dialect::MariaDb,
            semi_sync,
            cluster: "c".into(),
            peers: Vec::new(),
            gtid_warn_s: 30,
        };
        let o = sb.run("sh", &r.apply_script());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stdout).into(), sb.read("fed"))
    }

    #[test]
    fn a_primary_that_has_logged_nothing_defers_semi_sync_to_its_replicas() {
        let (out, fed) = run(true, "");
        assert!(fed.contains("rpl_semi_sync_master_enabled = OFF"), "{fed}");
        assert!(fed.contains("read_only = OFF"), "{fed}");
        assert!(out.contains("once the replicas replicate"), "{out}");
        // A server with a history gets it at once.
        let (out, fed) = run(true, "0-1-7");
        assert!(fed.contains("rpl_semi_sync_master_enabled = ON"), "{fed}");
        assert!(out.is_empty(), "{out}");
        // Without semi-sync declared, it is switched off whatever the history.
        let (_, fed) = run(false, "0-1-7");
        assert!(fed.contains("rpl_semi_sync_master_enabled = OFF"), "{fed}");
    }

    /// Issue 28, must-show 2: a hand-built MySQL primary, writable, replicating from
    /// nobody, with gtid_mode OFF: GTIDs go on first. MariaDB's probe reads no gtid_mode.
    #[test]
    fn a_mysql_primary_without_gtids_turns_them_on_first() {
        let r = PrimaryRes {
            dialect: Dialect::MySql84,
            semi_sync: false,
            cluster: "c".into(),
            peers: Vec::new(),
            gtid_warn_s: 30,
        };
        assert!(r.probe().contains("@@GLOBAL.gtid_mode AS gtid_mode"));
        let facts = |mode: &str| {
            format!("*** 1. row ***\nup: dbfleet-up\nread_only: 0\ngtid_mode: {mode}\n")
        };
        assert_eq!(
            r.mode(&facts("OFF")),
            Some(Mode::EnableGtid { from: "OFF".into() })
        );
        assert_eq!(
            r.mode(&facts("ON_PERMISSIVE")),
            Some(Mode::EnableGtid {
                from: "ON_PERMISSIVE".into()
            })
        );
        assert_eq!(r.mode(&facts("ON")), None);
        let a = r.assess(&facts("OFF")).expect("assess").expect("a change");
        assert!(
            a.summary.starts_with("GTIDs on, live, in cluster c"),
            "{}",
            a.summary
        );
        let maria = PrimaryRes {
            dialect: Dialect::MariaDb,
            ..r
        };
        assert!(!maria.probe().contains("gtid_mode"));
    }

    #[test]
    fn a_primary_under_a_restore_run_is_never_made_writable() {
        let r = PrimaryRes {
            dialect: Dialect::MariaDb,
            semi_sync: false,
            cluster: "c".into(),
            peers: Vec::new(),
            gtid_warn_s: 30,
        };
        let facts = |run: bool, ro: u8| {
            format!(
                "{}*** 1. row ***\n   up: dbfleet-up\nread_only: {ro}\n*** 1. row ***\nsemi_sync_primary: 0\n",
                if run { "restore_run: yes\n" } else { "" }
            )
        };
        assert_eq!(r.mode(&facts(true, 1)), Some(Mode::Restoring));
        let e = r.assess(&facts(true, 1)).expect_err("refused");
        assert!(e.contains("restore runs on this host"), "{e}");
        // Writable already (the run ended): nothing to do, nothing refused.
        assert_eq!(r.mode(&facts(true, 0)), None);
        assert_eq!(r.mode(&facts(false, 1)), Some(Mode::MakeWritable));
        // A saved plan applied while a run is there: the script itself refuses.
        assert!(r.probe().contains("/var/lib/dbfleet/runs/restore"));
        let sb = crate::tasks::sandbox::Sandbox::new("mariadb", "cat >> \"$FAKE_DIR/fed\"\n");
        let script = r.apply_script().replace(
            "/var/lib/dbfleet/runs/restore",
            &sb.path("runs/restore").display().to_string(),
        );
        std::fs::create_dir_all(sb.path("runs/restore")).expect("mkdir");
        let o = sb.run("sh", &script);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("restore runs"));
        assert!(sb.read("fed").is_empty(), "nothing fed to the server");
    }
}
