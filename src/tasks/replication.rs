//! `replication`: a replica replicating from its source by GTID over verified TLS.
//!
//! The probe reads the replica status (vertical, typed by `crate::sql::replica`) and the
//! count of user databases on the replica. What it finds decides the [`Mode`]: a healthy replica of the right source is
//! left alone (no statement issued); one that is not configured is bootstrapped (seeded
//! from its source, see `crate::runbooks::replication`); one configured for the right
//! source with stopped threads is started; one pointing elsewhere, without GTID or
//! without verified TLS is repointed by GTID. The apply is a runbook across two hosts.

use super::{Action, Assessment};
use crate::sql::{Dialect, SourceSpec, vertical};

#[derive(Debug, Clone)]
pub struct ReplicationRes {
    pub dialect: Dialect,
    /// The source's host name in the inventory.
    pub source_name: String,
    /// How the replica reaches the source's host over SSH to pull its seed copy (issue
    /// 26): the inventory's SSH user (else root) and port (else 22).
    pub source_ssh_user: String,
    pub source_ssh_port: u16,
    pub source: SourceSpec,
}

/// A replica's seeding run's folder on its host (`crate::runbooks::detached`, run `seed`).
pub const SEED_RUN_DIR: &str = "/var/lib/dbfleet/runs/seed";

/// What the apply does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Copy the source's data (mariadb-backup), then configure and start replication.
    Bootstrap { user_databases: u64 },
    /// A seeding run is on the replica (running, or ended and not yet finished by
    /// dbfleet: `crate::runbooks::detached`): attach to it and finish the bootstrap.
    Resume,
    /// Replication is configured right but not running: start it.
    Start,
    /// Configured for another source, or without GTID or verified TLS: point it again.
    Repoint(String),
}

impl ReplicationRes {
    pub fn state(&self) -> String {
        format!(
            "replicating from {}:{} as {} (gtid, ssl verified)",
            self.source.host, self.source.port, self.source.user
        )
    }
    /// Replication status, user databases, and the sha256 of the password the replica
    /// stores ([`Dialect::stored_password_sha256`]): a rotated password is detected
    /// without the password ever leaving the replica.
    pub fn probe(&self) -> String {
        let (sql, shell) = self.dialect.stored_password_sha256();
        format!(
            "{} -E --force <<'DBFLEET_SQL'\nSELECT 'dbfleet-up' AS up;\n{};\nSELECT COUNT(*) AS user_databases FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys');\n{sql}\n{}\nDBFLEET_SQL\n{shell}\nif [ -d {run} ]; then echo 'seed_run: present'; fi",
            self.dialect.client(),
            self.dialect.show_replica_status(),
            self.dialect.heartbeat_period_query(),
            run = SEED_RUN_DIR,
        )
    }

    /// The mode for `facts`, or None when the replica is healthy and right.
    pub fn mode(&self, facts: &str) -> Option<Mode> {
        let f = vertical(facts);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let user_databases = get("user_databases").parse().unwrap_or(0);
        // Before anything the server says: during a seed it is stopped on purpose.
        if get("seed_run") == "present" {
            return Some(Mode::Resume);
        }
        let st = match self.dialect.replica_status(&f) {
            Some(st) if get("up") == "dbfleet-up" => st,
            _ => return Some(Mode::Bootstrap { user_databases }),
        };
        let mut wrong = Vec::new();
        if st.source_host != self.source.host || st.source_port != self.source.port.to_string() {
            wrong.push(format!("source is {}:{}", st.source_host, st.source_port));
        }
        if st.source_user != self.source.user {
            wrong.push(format!("user is {}", st.source_user));
        }
        if !st.gtid_positioned {
            wrong.push(format!("{} is {}", st.gtid_field, st.gtid_mode));
        }
        if !st.tls_verified() {
            wrong.push("TLS is not verified".into());
        }
        // The failover tells a hung source from a live one by its heartbeats (issue 29);
        // replicas set up before that have the servers' default of 30 s.
        let want_ms = (crate::sql::HEARTBEAT_PERIOD_S * 1000.0).round() as u64;
        if let Some(ms) = st.heartbeat_period_ms
            && ms != want_ms
        {
            wrong.push(format!(
                "heartbeat period is {} s, not {} s",
                ms as f64 / 1000.0,
                crate::sql::HEARTBEAT_PERIOD_S
            ));
        }
        let stored = get("stored_password_sha256");
        if !stored.is_empty()
            && stored != crate::tasks::file::sha256_hex(self.source.password.as_bytes())
        {
            wrong.push("the replication password changed".into());
        }
        if let Some(s) = st.connect_retry
            && s != self.source.connect_retry
        {
            wrong.push(format!(
                "connect retry is {s} s, not {} s",
                self.source.connect_retry
            ));
        }
        if !wrong.is_empty() {
            return Some(Mode::Repoint(wrong.join(", ")));
        }
        // "Connecting" is a running IO thread retrying (e.g. while the source restarts):
        // starting it would change nothing, so only a stopped thread is a change.
        if st.io_running == "No" || st.sql_running == "No" {
            return Some(Mode::Start);
        }
        None
    }

    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let st = self
            .dialect
            .replica_status(&vertical(facts))
            .unwrap_or_default();
        let Some(mode) = self.mode(facts) else {
            return Ok(None);
        };
        let src = &self.source_name;
        let before = format!(
            "replica host={} user={} gtid={} ssl={}/{} io={} sql={}",
            st.source_host,
            st.source_user,
            st.gtid_mode,
            st.ssl_allowed,
            st.ssl_verify,
            st.io_running,
            st.sql_running
        );
        let d = self.dialect;
        let mut notes = Vec::new();
        let summary = match &mode {
            Mode::Bootstrap { user_databases } => {
                notes.push(format!(
                    "steps: {}, {}, wait until caught up",
                    d.seed_words(src),
                    d.start_replica_words()
                ));
                if *user_databases > 0 {
                    notes.push(format!("this replica holds {user_databases} database(s) and is not replicating: apply refuses to replace them"));
                }
                format!("bootstrap replication from {src}")
            }
            Mode::Resume => {
                notes.push(format!(
                    "a seeding run is on this host ({SEED_RUN_DIR}): apply attaches to it, shows its progress and finishes the bootstrap; the server stays stopped until the copy is whole"
                ));
                format!("finish the bootstrap from {src} (a seed in progress)")
            }
            Mode::Start => {
                let err = st.last_error();
                if !err.is_empty() {
                    notes.push(format!("last error: {err}"));
                }
                format!(
                    "start replication from {src} (IO thread: {}, SQL thread: {})",
                    st.io_running, st.sql_running
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
