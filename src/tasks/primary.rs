//! `primary`: the declared primary of a cluster takes writes, and is the only one.
//!
//! Every server starts read-only (`templates/mysqld.cnf.j2`), so this task is what makes
//! the declared primary writable, live, with the primary side of semi-sync switched on
//! when the fleet asks for it. When the declared primary is still replicating from
//! another database host of its cluster, the inventory moved the primary: the change is
//! a planned switchover (`crate::runbooks::switchover`), which also repoints the cluster's
//! replicas and the proxies' writer. A server that is not running yet is left to
//! `start server` and made writable after it.

use super::{Action, Assessment};
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
}

impl PrimaryRes {
    pub fn state(&self) -> String {
        format!(
            "writable primary of cluster {} (semi-sync {})",
            self.cluster,
            if self.semi_sync { "on" } else { "off" }
        )
    }

    /// read_only, semi-sync and replication status, one client call.
    pub fn probe(&self) -> String {
        format!(
            "{} -E --force 2>/dev/null <<'DBFLEET_SQL'\nSELECT 'dbfleet-up' AS up, @@GLOBAL.read_only AS read_only;\n{}\n{};\nDBFLEET_SQL\ntrue",
            self.dialect.client(),
            self.dialect.semi_sync_primary_status(),
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
                    what.push("semi-sync primary side ON".into());
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

    pub fn apply_script(&self) -> String {
        format!(
            "set -eu\n{} <<'DBFLEET_SQL'\n{}\nDBFLEET_SQL\n",
            self.dialect.client(),
            self.writable_sql()
        )
    }
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
