//! What a server reports about itself, in dialect-free terms: the client's vertical output
//! parsed, and `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS` read into a [`ReplicaStatus`].
//!
//! The server's own field names stay here: MySQL 8.0.22 renamed them (`Source_Host`,
//! `Replica_IO_Running`, `Seconds_Behind_Source`, …; MySQL 8.0.22 release notes) while
//! MariaDB keeps `Master_Host`, `Slave_IO_Running`, `Seconds_Behind_Master` (MariaDB KB
//! "SHOW REPLICA STATUS"). Code above this module reads typed fields, so a name one server
//! does not report cannot be looked for by mistake (issue 13: a switchover on MySQL looked
//! for `Master_Host`, found nothing and made two writers).

use std::collections::BTreeMap;

use super::Dialect;

/// Parses a client's `-E` (vertical) output into field → value. Several result sets may
/// follow one another; their fields must not repeat (a later one would win). A value the
/// server wrote over several lines (MySQL's GTID sets break after each comma:
/// `Retrieved_Gtid_Set`, `Executed_Gtid_Set`) is joined back into one.
pub fn vertical(facts: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for l in facts.lines().filter(|l| !l.starts_with("***")) {
        let field = l
            .split_once(": ")
            .or_else(|| l.trim_end().strip_suffix(':').map(|k| (k, "")));
        match field {
            Some((k, v)) if !continues(&out, &last, l) => {
                let k = k.trim().to_string();
                out.insert(k.clone(), v.trim().to_string());
                last = Some(k);
            }
            _ if continues(&out, &last, l) => {
                if let Some(v) = last.as_ref().and_then(|k| out.get_mut(k)) {
                    v.push_str(l.trim());
                }
            }
            _ => last = None,
        }
    }
    out
}

/// A line continues the previous field's value when that value ends with a comma and the
/// line has no field name of its own (a GTID set's next entry: `uuid:1-5,`).
fn continues(out: &BTreeMap<String, String>, last: &Option<String>, line: &str) -> bool {
    let open = last
        .as_ref()
        .and_then(|k| out.get(k))
        .is_some_and(|v| v.ends_with(','));
    open && !line.contains(": ") && !line.trim().is_empty()
}

/// A server's GTID positions as `status` reports them (JSON names are MariaDB's, kept as
/// `status --json` format 1 has them).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GtidReport {
    /// What the server has logged: MariaDB's `gtid_binlog_pos`.
    #[serde(rename = "gtid_binlog_pos")]
    pub position: String,
    /// What the server has applied as a replica: MariaDB's `gtid_slave_pos`.
    #[serde(rename = "gtid_slave_pos")]
    pub applied: String,
    /// The binary log history: MariaDB's `gtid_binlog_state` (not in JSON).
    #[serde(skip)]
    pub history: String,
    /// MySQL's `server_uuid`, the source part of the GTIDs the server writes itself;
    /// empty on MariaDB (not in JSON).
    #[serde(skip)]
    pub server_uuid: String,
}

impl GtidReport {
    /// The positions in `fields`, a [`vertical`] parse of [`Dialect::status_queries`].
    pub fn read(fields: &BTreeMap<String, String>) -> GtidReport {
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        GtidReport {
            position: get("gtid_binlog_pos"),
            applied: get("gtid_slave_pos"),
            history: get("gtid_binlog_state"),
            server_uuid: get("server_uuid"),
        }
    }
}

/// One replica's replication status, as the server reported it (strings are the server's
/// own values: "Yes", "No", "Connecting"; empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The source's address as configured (`Master_Host` / `Source_Host`).
    pub source_host: String,
    /// The source's port, as reported.
    pub source_port: String,
    /// The replication account.
    pub source_user: String,
    /// The IO (receiver) thread: "Yes", "No" or "Connecting".
    pub io_running: String,
    /// The SQL (applier) thread: "Yes" or "No".
    pub sql_running: String,
    /// Seconds behind the source; None when unknown (a stopped thread reports NULL).
    pub seconds_behind: Option<u64>,
    /// The GTID positioning, as the server names it ([`ReplicaStatus::gtid_field`]:
    /// MariaDB's `Using_Gtid`, e.g. "Slave_Pos"; MySQL's `Auto_Position`, "1" or "0").
    pub gtid_mode: String,
    /// The name of the field `gtid_mode` came from, for messages.
    pub gtid_field: &'static str,
    /// Positioned by GTID the way dbfleet configures it (MariaDB: `slave_pos`; MySQL:
    /// auto-positioning).
    pub gtid_positioned: bool,
    /// TLS to the source allowed (`Master_SSL_Allowed`), as reported ("Yes").
    pub ssl_allowed: String,
    /// The source's certificate verified (`Master_SSL_Verify_Server_Cert`), as reported.
    pub ssl_verify: String,
    pub last_io_error: String,
    pub last_sql_error: String,
    /// What the IO thread has received: MariaDB's `Gtid_IO_Pos`; MySQL's
    /// `Retrieved_Gtid_Set`.
    pub received: String,
    /// The source's heartbeat period when it has nothing to send, as
    /// [`Dialect::heartbeat_period_query`] reads it, in milliseconds; None when not read.
    pub heartbeat_period_ms: Option<u64>,
    /// Seconds between the IO thread's tries to connect (`Connect_Retry`); None when not
    /// reported.
    pub connect_retry: Option<u32>,
}

impl ReplicaStatus {
    /// The status of a server that replicates from nobody: every field empty.
    pub const NONE: ReplicaStatus = ReplicaStatus {
        source_host: String::new(),
        source_port: String::new(),
        source_user: String::new(),
        io_running: String::new(),
        sql_running: String::new(),
        seconds_behind: None,
        gtid_mode: String::new(),
        gtid_field: "",
        gtid_positioned: false,
        ssl_allowed: String::new(),
        ssl_verify: String::new(),
        last_io_error: String::new(),
        last_sql_error: String::new(),
        received: String::new(),
        heartbeat_period_ms: None,
        connect_retry: None,
    };

    /// Both threads running ("Connecting" is not running).
    pub fn threads_running(&self) -> bool {
        self.io_running == "Yes" && self.sql_running == "Yes"
    }

    /// TLS to the source with its certificate verified.
    pub fn tls_verified(&self) -> bool {
        self.ssl_allowed == "Yes" && self.ssl_verify == "Yes"
    }

    /// The last IO and SQL errors, joined with "; " (empty when none).
    pub fn last_error(&self) -> String {
        [self.last_io_error.as_str(), self.last_sql_error.as_str()]
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The replica status field names of one dialect.
pub(super) struct Names {
    source_host: &'static str,
    source_port: &'static str,
    source_user: &'static str,
    io_running: &'static str,
    sql_running: &'static str,
    seconds_behind: &'static str,
    gtid_mode: &'static str,
    gtid_positioned: &'static str,
    ssl_allowed: &'static str,
    ssl_verify: &'static str,
    received: &'static str,
    heartbeat_period: &'static str,
}

const MARIADB: Names = Names {
    source_host: "Master_Host",
    source_port: "Master_Port",
    source_user: "Master_User",
    io_running: "Slave_IO_Running",
    sql_running: "Slave_SQL_Running",
    seconds_behind: "Seconds_Behind_Master",
    gtid_mode: "Using_Gtid",
    gtid_positioned: "Slave_Pos",
    ssl_allowed: "Master_SSL_Allowed",
    ssl_verify: "Master_SSL_Verify_Server_Cert",
    received: "Gtid_IO_Pos",
    heartbeat_period: "heartbeat_period",
};

const MYSQL: Names = Names {
    source_host: "Source_Host",
    source_port: "Source_Port",
    source_user: "Source_User",
    io_running: "Replica_IO_Running",
    sql_running: "Replica_SQL_Running",
    seconds_behind: "Seconds_Behind_Source",
    gtid_mode: "Auto_Position",
    gtid_positioned: "1",
    ssl_allowed: "Source_SSL_Allowed",
    ssl_verify: "Source_SSL_Verify_Server_Cert",
    received: "Retrieved_Gtid_Set",
    heartbeat_period: "heartbeat_period",
};

impl Names {
    pub(super) fn fields(&self) -> super::ReplicaFields {
        super::ReplicaFields {
            source_host: self.source_host,
            io_running: self.io_running,
            sql_running: self.sql_running,
            seconds_behind: self.seconds_behind,
        }
    }
}

impl Dialect {
    /// `status`'s queries, one client call (vertical output): `up`, `server_id`,
    /// `read_only`, the [`GtidReport`] fields, `have_ssl`, `semi_sync_primary` and
    /// `semi_sync_replica` (ON/OFF), then the replica status.
    pub fn status_queries(self) -> String {
        let (gtid, semi_primary, semi_replica, ssl) = match self {
            Dialect::MariaDb => (
                "@@gtid_binlog_pos AS gtid_binlog_pos, @@gtid_slave_pos AS gtid_slave_pos, @@gtid_binlog_state AS gtid_binlog_state",
                "RPL_SEMI_SYNC_MASTER_STATUS",
                "RPL_SEMI_SYNC_SLAVE_STATUS",
                "@@have_ssl",
            ),
            // The names of MySQL 8.0.26+ (read live on 9.7 by the lab's MySQL test);
            // gtid_executed on one line (the server breaks it after each comma).
            _ => (
                concat!(
                    mysql_gtid_executed!(),
                    " AS gtid_binlog_pos, ",
                    mysql_gtid_executed!(),
                    " AS gtid_slave_pos, ",
                    mysql_gtid_executed!(),
                    " AS gtid_binlog_state, @@GLOBAL.server_uuid AS server_uuid"
                ),
                "RPL_SEMI_SYNC_SOURCE_STATUS",
                "RPL_SEMI_SYNC_REPLICA_STATUS",
                "IF(@@GLOBAL.ssl_cert <> '', 'YES', 'NO')",
            ),
        };
        format!(
            "SELECT 'dbfleet-up' AS up, @@server_id AS server_id, @@version AS version, @@read_only AS read_only, {gtid}, \
             {ssl} AS have_ssl;\n\
             SELECT VARIABLE_VALUE AS semi_sync_primary FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{semi_primary}';\n\
             SELECT VARIABLE_VALUE AS semi_sync_replica FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{semi_replica}';\n\
             {};",
            self.show_replica_status()
        )
    }

    pub(super) fn names(self) -> &'static Names {
        match self {
            Dialect::MariaDb => &MARIADB,
            _ => &MYSQL,
        }
    }

    /// The replica status in `fields` (a [`vertical`] parse that included
    /// [`Dialect::show_replica_status`]); None when the server replicates from nobody
    /// (the statement returned no row).
    pub fn replica_status(self, fields: &BTreeMap<String, String>) -> Option<ReplicaStatus> {
        let n = self.names();
        if !fields.contains_key(n.source_host) {
            return None;
        }
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let gtid_mode = get(n.gtid_mode);
        Some(ReplicaStatus {
            source_host: get(n.source_host),
            source_port: get(n.source_port),
            source_user: get(n.source_user),
            io_running: get(n.io_running),
            sql_running: get(n.sql_running),
            seconds_behind: get(n.seconds_behind).parse().ok(),
            gtid_positioned: gtid_mode == n.gtid_positioned,
            gtid_mode,
            gtid_field: n.gtid_mode,
            ssl_allowed: get(n.ssl_allowed),
            ssl_verify: get(n.ssl_verify),
            last_io_error: get("Last_IO_Error"),
            last_sql_error: get("Last_SQL_Error"),
            received: get(n.received),
            heartbeat_period_ms: get(n.heartbeat_period)
                .parse::<f64>()
                .ok()
                .map(|s| (s * 1000.0).round() as u64),
            connect_retry: get("Connect_Retry").parse().ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dialect_reads_its_own_names() {
        let maria = vertical(
            "*** 1. row ***\n Master_Host: 10.0.0.1\n Master_Port: 3306\n Slave_IO_Running: Yes\n \
             Slave_SQL_Running: No\n Seconds_Behind_Master: NULL\n Using_Gtid: Slave_Pos\n \
             Master_SSL_Allowed: Yes\n Master_SSL_Verify_Server_Cert: Yes\n Last_SQL_Error: boom\n \
             Gtid_IO_Pos: 0-1-7\n",
        );
        let s = Dialect::MariaDb
            .replica_status(&maria)
            .expect("replicating");
        assert_eq!(s.source_host, "10.0.0.1");
        assert!(!s.threads_running());
        assert!(s.tls_verified() && s.gtid_positioned);
        assert_eq!(s.seconds_behind, None);
        assert_eq!(
            (s.last_error().as_str(), s.received.as_str()),
            ("boom", "0-1-7")
        );
        // The same output read as MySQL's is no replica: MySQL says Source_Host.
        assert_eq!(Dialect::MySql84.replica_status(&maria), None);
        let mysql = vertical(
            " Source_Host: 10.0.0.1\n Replica_IO_Running: Yes\n Replica_SQL_Running: Yes\n \
             Seconds_Behind_Source: 3\n Auto_Position: 1\n",
        );
        let s = Dialect::MySql80
            .replica_status(&mysql)
            .expect("replicating");
        assert!(s.threads_running() && s.gtid_positioned);
        assert_eq!(s.seconds_behind, Some(3));
        assert_eq!(Dialect::MariaDb.replica_status(&mysql), None);
        // MySQL breaks a GTID set after each comma; the value is read whole.
        let multi = vertical(
            " Source_Host: 10.0.0.1\n Retrieved_Gtid_Set: aa:1-5,\nbb:1-3\n Executed_Gtid_Set: aa:1-5,\nbb:1-3,\ncc:7\n Auto_Position: 1\n",
        );
        assert_eq!(multi["Retrieved_Gtid_Set"], "aa:1-5,bb:1-3");
        assert_eq!(multi["Executed_Gtid_Set"], "aa:1-5,bb:1-3,cc:7");
        assert_eq!(multi["Auto_Position"], "1");
    }

    #[test]
    fn status_json_keeps_its_gtid_names() {
        // `status --json` format 1 names the positions as MariaDB does.
        let v = serde_json::to_value(GtidReport {
            position: "0-1-5".into(),
            applied: "0-1-4".into(),
            history: "0-1-5".into(),
            server_uuid: String::new(),
        })
        .expect("json");
        assert_eq!(
            v,
            serde_json::json!({"gtid_binlog_pos": "0-1-5", "gtid_slave_pos": "0-1-4"})
        );
    }
}
