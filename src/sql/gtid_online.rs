//! The statements of MySQL's online GTID enablement (MySQL manual, "Enabling GTID
//! Transactions Online", 19.1.4.2 in 8.0 and 8.4): a cluster that replicates by binary-log
//! file and position, with `gtid_mode` OFF, moves to GTIDs without a restart and without a
//! copy, each step on every server before the next. MySQL only: MariaDB always logs GTIDs.
//! The runbook that orders them is `crate::runbooks::gtid_online`.

use super::Dialect;

/// `gtid_mode`'s values, in the only order a server may move through them (one step at a
/// time: MySQL refuses `SET GLOBAL gtid_mode = ON` from OFF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GtidMode {
    Off,
    OffPermissive,
    OnPermissive,
    On,
}

impl GtidMode {
    /// The server's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GtidMode::Off => "OFF",
            GtidMode::OffPermissive => "OFF_PERMISSIVE",
            GtidMode::OnPermissive => "ON_PERMISSIVE",
            GtidMode::On => "ON",
        }
    }

    /// `@@GLOBAL.gtid_mode` as the server prints it; None for anything else.
    pub fn parse(s: &str) -> Option<GtidMode> {
        [
            GtidMode::Off,
            GtidMode::OffPermissive,
            GtidMode::OnPermissive,
            GtidMode::On,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// One row, `-E` output: `gtid_mode`, `enforce_gtid_consistency` (OFF, WARN, ON) and
/// `ongoing_anonymous` (`Ongoing_anonymous_transaction_count`: transactions without a GTID
/// still running or being applied; 0 before ON).
pub const FACTS: &str = "SELECT @@GLOBAL.gtid_mode AS gtid_mode, @@GLOBAL.enforce_gtid_consistency AS enforce_gtid_consistency, \
     (SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Ongoing_anonymous_transaction_count') AS ongoing_anonymous;";

/// Sets `enforce_gtid_consistency` (`WARN` logs each statement that GTIDs cannot carry,
/// `ON` refuses it; the manual's step 1 and 2), then prints the server's clock (Unix
/// seconds, microseconds): where [`unsafe_statements_since`] starts looking.
pub fn set_enforce(value: Enforce) -> String {
    format!(
        "SET @@GLOBAL.ENFORCE_GTID_CONSISTENCY = {};\nSELECT UNIX_TIMESTAMP(NOW(6));",
        value.as_str()
    )
}

/// `enforce_gtid_consistency`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforce {
    Off,
    Warn,
    On,
}

impl Enforce {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforce::Off => "OFF",
            Enforce::Warn => "WARN",
            Enforce::On => "ON",
        }
    }
}

/// Sets `gtid_mode` to `mode` (one step from the server's current value).
pub fn set_mode(mode: GtidMode) -> String {
    format!("SET @@GLOBAL.GTID_MODE = {};", mode.as_str())
}

/// One row, tab-separated: how many statements the error log recorded as violating GTID
/// consistency since `since` (Unix seconds, the server's clock, from [`set_enforce`]), and
/// the first one's text (at most 300 characters). `performance_schema.error_log` (MySQL
/// 8.0.22+) holds the log's recent lines; `WARN` writes each such statement there with
/// "Statement violates GTID consistency" (ER_GTID_UNSAFE_*).
pub fn unsafe_statements_since(since: f64) -> String {
    format!(
        "SELECT COUNT(*), IFNULL(SUBSTRING(MIN(DATA), 1, 300), '') FROM performance_schema.error_log \
         WHERE LOGGED >= FROM_UNIXTIME({since:.6}) AND DATA LIKE '%violates GTID consistency%';"
    )
}

/// The binary log's current file and position, tab-separated first two columns (`SHOW
/// MASTER STATUS` until 8.4, `SHOW BINARY LOG STATUS` from 8.2).
pub fn binlog_file_position(d: Dialect) -> &'static str {
    match d {
        Dialect::MySql84 => "SHOW BINARY LOG STATUS;",
        _ => "SHOW MASTER STATUS;",
    }
}

/// Waits until the replica has applied the source's binary log up to `file`:`position`, at
/// most `timeout_s` seconds. Prints NULL when the applier does not run, -1 on timeout,
/// else 0 or more. `file` must be a binary log's name as the source printed it
/// ([`is_binlog_name`]).
pub fn wait_for_file_position(file: &str, position: u64, timeout_s: u32) -> String {
    format!(
        "SELECT SOURCE_POS_WAIT({}, {position}, {timeout_s});",
        super::quote(file)
    )
}

/// Whether `s` looks like a binary log file name (`stem.000042`): what
/// [`wait_for_file_position`] accepts.
pub fn is_binlog_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Starts a new binary log on the server, so that its newest file's `Previous_gtids`
/// covers every GTID so far and holds no anonymous transaction: a replica that asks by
/// GTID (auto-position) from this server never reaches the anonymous ones before it.
pub const FLUSH_BINARY_LOGS: &str = "FLUSH BINARY LOGS;";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_order_as_the_server_steps_through_them() {
        assert_eq!(
            GtidMode::parse("off_permissive"),
            Some(GtidMode::OffPermissive)
        );
        assert_eq!(GtidMode::parse("ON\n"), Some(GtidMode::On));
        assert_eq!(GtidMode::parse("MAYBE"), None);
        assert!(GtidMode::Off < GtidMode::OffPermissive);
        assert!(GtidMode::OnPermissive < GtidMode::On);
        assert_eq!(
            set_mode(GtidMode::OnPermissive),
            "SET @@GLOBAL.GTID_MODE = ON_PERMISSIVE;"
        );
    }

    #[test]
    fn only_a_binlog_name_reaches_the_wait() {
        assert!(is_binlog_name("mysql-bin.000003"));
        assert!(!is_binlog_name("x'); DROP TABLE t; --"));
        assert!(!is_binlog_name(""));
        assert_eq!(
            wait_for_file_position("binlog.000002", 157, 300),
            "SELECT SOURCE_POS_WAIT('binlog.000002', 157, 300);"
        );
    }
}
