//! `replication`: a replica replicating from its source by GTID over verified TLS.
//!
//! The probe reads `SHOW SLAVE STATUS` (vertical) and the count of user databases on the
//! replica. What it finds decides the [`Mode`]: a healthy replica of the right source is
//! left alone (no statement issued); one that is not configured is bootstrapped (seeded
//! from its source, see `crate::runbooks::replication`); one configured for the right
//! source with stopped threads is started; one pointing elsewhere, without GTID or
//! without verified TLS is repointed by GTID. The apply is a runbook across two hosts.

use std::collections::BTreeMap;

use super::{Action, Assessment};
use crate::sql::{Dialect, SourceSpec};

#[derive(Debug, Clone)]
pub struct ReplicationRes {
    pub dialect: Dialect,
    /// The source's host name in the inventory.
    pub source_name: String,
    pub source: SourceSpec,
}

/// What the apply does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Copy the source's data (mariadb-backup), then configure and start replication.
    Bootstrap { user_databases: u64 },
    /// Replication is configured right but not running: START SLAVE.
    Start,
    /// Configured for another source, or without GTID or verified TLS: CHANGE MASTER again.
    Repoint(String),
}

/// Parses `mariadb -E` output into field → value (later results do not repeat fields).
pub fn vertical(facts: &str) -> BTreeMap<String, String> {
    facts
        .lines()
        .filter(|l| !l.starts_with("***"))
        .filter_map(|l| {
            l.split_once(": ")
                .or_else(|| l.trim_end().strip_suffix(':').map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl ReplicationRes {
    pub fn state(&self) -> String {
        format!(
            "replicating from {}:{} as {} (gtid, ssl verified)",
            self.source.host, self.source.port, self.source.user
        )
    }
    /// Replication status, user databases, and the sha256 of the password the replica
    /// stores (line 6 of MariaDB's master.info): a rotated password is detected without
    /// the password ever leaving either side.
    pub fn probe(&self) -> String {
        format!(
            "{} -E --force <<'DBFLEET_SQL'\nSELECT 'dbfleet-up' AS up;\n{};\nSELECT COUNT(*) AS user_databases FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys');\nDBFLEET_SQL\n\
             [ -f /var/lib/mysql/master.info ] && printf 'stored_password_sha256: %s\\n' \"$(sed -n 6p /var/lib/mysql/master.info | tr -d '\\n' | sha256sum | cut -c1-64)\"",
            self.dialect.client(),
            self.dialect.show_replica_status()
        )
    }

    /// The mode for `facts`, or None when the replica is healthy and right.
    pub fn mode(&self, facts: &str) -> Option<Mode> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let user_databases = get("user_databases").parse().unwrap_or(0);
        if get("up") != "dbfleet-up" || !f.contains_key("Master_Host") {
            return Some(Mode::Bootstrap { user_databases });
        }
        let mut wrong = Vec::new();
        if get("Master_Host") != self.source.host
            || get("Master_Port") != self.source.port.to_string()
        {
            wrong.push(format!(
                "source is {}:{}",
                get("Master_Host"),
                get("Master_Port")
            ));
        }
        if get("Master_User") != self.source.user {
            wrong.push(format!("user is {}", get("Master_User")));
        }
        if get("Using_Gtid") != "Slave_Pos" {
            wrong.push(format!("Using_Gtid is {}", get("Using_Gtid")));
        }
        if get("Master_SSL_Allowed") != "Yes" || get("Master_SSL_Verify_Server_Cert") != "Yes" {
            wrong.push("TLS is not verified".into());
        }
        let stored = get("stored_password_sha256");
        if !stored.is_empty()
            && stored != crate::tasks::file::sha256_hex(self.source.password.as_bytes())
        {
            wrong.push("the replication password changed".into());
        }
        if !wrong.is_empty() {
            return Some(Mode::Repoint(wrong.join(", ")));
        }
        // "Connecting" is a running IO thread retrying (e.g. while the source restarts):
        // START SLAVE would change nothing, so only a stopped thread is a change.
        if get("Slave_IO_Running") == "No" || get("Slave_SQL_Running") == "No" {
            return Some(Mode::Start);
        }
        None
    }

    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let Some(mode) = self.mode(facts) else {
            return Ok(None);
        };
        let src = &self.source_name;
        let before = format!(
            "replica host={} user={} gtid={} ssl={}/{} io={} sql={}",
            get("Master_Host"),
            get("Master_User"),
            get("Using_Gtid"),
            get("Master_SSL_Allowed"),
            get("Master_SSL_Verify_Server_Cert"),
            get("Slave_IO_Running"),
            get("Slave_SQL_Running")
        );
        let mut notes = Vec::new();
        let summary = match &mode {
            Mode::Bootstrap { user_databases } => {
                notes.push(format!(
                    "steps: copy {src}'s data with mariadb-backup (the old data folder is kept aside), set gtid_slave_pos from the copy, \
                     CHANGE MASTER TO {src} (MASTER_USE_GTID=slave_pos, MASTER_SSL=1, verify certificate), START SLAVE, wait until caught up"
                ));
                if *user_databases > 0 {
                    notes.push(format!("this replica holds {user_databases} database(s) and is not replicating: apply refuses to replace them"));
                }
                format!("bootstrap replication from {src}")
            }
            Mode::Start => {
                let err = [get("Last_IO_Error"), get("Last_SQL_Error")]
                    .into_iter()
                    .filter(|e| !e.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                if !err.is_empty() {
                    notes.push(format!("last error: {err}"));
                }
                format!(
                    "start replication from {src} (IO thread: {}, SQL thread: {})",
                    get("Slave_IO_Running"),
                    get("Slave_SQL_Running")
                )
            }
            Mode::Repoint(why) => format!("repoint replication to {src} by GTID ({why})"),
        };
        Ok(Some(Assessment {
            action: Action::Run,
            summary,
            diff: None,
            before,
            notes,
        }))
    }
}
