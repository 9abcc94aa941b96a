//! The server settings dbfleet manages that the server takes live, per dialect: a change
//! to one is made with `SET GLOBAL` on the running server, no restart (issue 16: a
//! `max_connections` change restarted every server of the lab at once, 4.3 s without
//! writes), and kept in the live option file for the next start. Every other setting in
//! `mysqld.cnf` needs a restart.
//!
//! A setting is listed here only when it is dynamic on every server version dbfleet
//! supports for the dialect (MariaDB 10.11 and 11.8: MariaDB KB "Server System
//! Variables", "Dynamic: Yes"; MySQL 8.4 and 9.x: MySQL manual "Server System
//! Variables" / "Replication and Binary Logging Options", "Dynamic: Yes"). Left out on
//! purpose: `innodb_buffer_pool_size` (resized online in chunks, so a value that is not a
//! multiple of the chunk would never read back equal) and `binlog_format` (a global change
//! reaches new sessions only while replication threads keep the old one).

use serde::Serialize;
use serde_json::Value;

use super::Dialect;

/// How an inventory variable becomes the server's value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    /// Bytes (the inventory's `size`: digits with an optional K/M/G/T suffix, powers of
    /// 1024), rounded down to a multiple of the server's block size for the variable, as
    /// the server itself rounds (so the value read back equals the one set).
    Size {
        block: u64,
    },
    Bool,
    Number,
    /// The inventory says days, the server seconds.
    DaysAsSeconds,
}

/// (server variable on MariaDB, on MySQL, inventory variable, kind); an empty name: the
/// dialect has no such variable, and the inventory's value is not used there.
const DYNAMIC: &[(&str, &str, &str, Kind)] = &[
    (
        "max_connections",
        "max_connections",
        "max_connections",
        Kind::Int,
    ),
    (
        "max_connect_errors",
        "max_connect_errors",
        "max_connect_errors",
        Kind::Int,
    ),
    (
        "thread_cache_size",
        "thread_cache_size",
        "thread_cache_size",
        Kind::Int,
    ),
    ("wait_timeout", "wait_timeout", "wait_timeout", Kind::Int),
    (
        "interactive_timeout",
        "interactive_timeout",
        "interactive_timeout",
        Kind::Int,
    ),
    (
        "max_binlog_size",
        "max_binlog_size",
        "max_binlog_size",
        Kind::Size { block: 4096 },
    ),
    (
        "binlog_cache_size",
        "binlog_cache_size",
        "binlog_cache_size",
        Kind::Size { block: 4096 },
    ),
    (
        "max_binlog_cache_size",
        "max_binlog_cache_size",
        "max_binlog_cache_size",
        Kind::Size { block: 4096 },
    ),
    (
        "binlog_expire_logs_seconds",
        "binlog_expire_logs_seconds",
        "binlog_expire_days",
        Kind::DaysAsSeconds,
    ),
    ("sync_binlog", "sync_binlog", "sync_binlog", Kind::Int),
    (
        "innodb_flush_log_at_trx_commit",
        "innodb_flush_log_at_trx_commit",
        "innodb_flush_log_at_trx_commit",
        Kind::Int,
    ),
    (
        "slave_net_timeout",
        "replica_net_timeout",
        "replica_net_timeout",
        Kind::Int,
    ),
    // MariaDB only (MariaDB KB "Semisynchronous Replication"): a semi-sync replica's
    // IO thread, when stopped, connects to its source to kill its dump thread and waits
    // this long for it. When the source is frozen that is a failover's longest step (2 s
    // with the default of 5, measured on the lab; 1 s at 1; 0 means no bound). MySQL's
    // replica does not make that connection.
    (
        "rpl_semi_sync_slave_kill_conn_timeout",
        "",
        "semi_sync_replica_kill_conn_timeout",
        Kind::Int,
    ),
    (
        "slow_query_log",
        "slow_query_log",
        "slow_query_log",
        Kind::Bool,
    ),
    (
        "long_query_time",
        "long_query_time",
        "long_query_time",
        Kind::Number,
    ),
    (
        "log_queries_not_using_indexes",
        "log_queries_not_using_indexes",
        "log_queries_not_using_indexes",
        Kind::Bool,
    ),
];

/// One live setting of a host, as the templates see it (`live_settings`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveSetting {
    /// The server variable (`max_connections`).
    pub name: &'static str,
    /// Its value as a SQL and option-file literal: an integer (sizes in bytes, booleans
    /// 1/0) or a decimal number. Built from a checked inventory type, never from text.
    pub value: String,
    /// The option-file line, aligned as `mysqld.cnf`'s.
    pub line: String,
    /// `SET GLOBAL name = value`.
    pub set: String,
    /// A query returning 1 when the running server holds the value.
    pub check: String,
}

/// The live settings of a host for dialect `d`, from its variables `vars` (already
/// checked against `playbooks/defaults.yml`'s types, so every conversion succeeds; a
/// variable that is missing or of another shape is left out rather than guessed).
pub fn live(d: Dialect, vars: &std::collections::BTreeMap<String, Value>) -> Vec<LiveSetting> {
    DYNAMIC
        .iter()
        .filter_map(|&(maria, mysql, var, kind)| {
            let name = if d == Dialect::MariaDb { maria } else { mysql };
            if name.is_empty() {
                return None;
            }
            let value = literal(vars.get(var)?, kind)?;
            Some(LiveSetting {
                name,
                line: format!("{name:<30} = {value}"),
                set: format!("SET GLOBAL {name} = {value}"),
                check: format!("SELECT @@GLOBAL.{name} = {value}"),
                value,
            })
        })
        .collect()
}

fn literal(v: &Value, kind: Kind) -> Option<String> {
    match kind {
        Kind::Int => integer(v).map(|n| n.to_string()),
        Kind::Size { block } => bytes(v).map(|n| (n - n % block).to_string()),
        Kind::Bool => v.as_bool().map(|b| if b { "1" } else { "0" }.to_string()),
        Kind::Number => {
            let f = v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
            f.is_finite().then(|| format!("{f}"))
        }
        Kind::DaysAsSeconds => integer(v)
            .and_then(|d| d.checked_mul(86_400))
            .map(|s| s.to_string()),
    }
}

/// A whole number, also when an `enum 0|1|2` holds it as text.
fn integer(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// A `size`: digits with an optional K/M/G/T suffix (either case), in bytes.
fn bytes(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?;
    let (digits, shift) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 10),
        'M' => (&s[..s.len() - 1], 20),
        'G' => (&s[..s.len() - 1], 30),
        'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> std::collections::BTreeMap<String, Value> {
        serde_json::from_value(v).expect("vars")
    }

    #[test]
    fn values_become_exact_literals_in_the_servers_own_names() {
        let v = vars(json!({
            "max_connections": 300, "max_binlog_size": "512M", "binlog_cache_size": 1000001,
            "binlog_expire_days": 7, "innodb_flush_log_at_trx_commit": "2",
            "replica_net_timeout": 60, "slow_query_log": true, "long_query_time": 0.5,
            "semi_sync_replica_kill_conn_timeout": 1
        }));
        let by_name = |d| {
            live(d, &v)
                .into_iter()
                .map(|s| (s.name, s.value))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let m = by_name(Dialect::MariaDb);
        assert_eq!(m["max_connections"], "300");
        assert_eq!(m["max_binlog_size"], "536870912");
        // Rounded down to the 4 KiB block, as the server rounds it.
        assert_eq!(m["binlog_cache_size"], "999424");
        assert_eq!(m["binlog_expire_logs_seconds"], "604800");
        assert_eq!(m["innodb_flush_log_at_trx_commit"], "2");
        assert_eq!(m["slave_net_timeout"], "60");
        assert_eq!(m["slow_query_log"], "1");
        assert_eq!(m["long_query_time"], "0.5");
        let my = by_name(Dialect::MySql84);
        assert_eq!(my["replica_net_timeout"], "60");
        assert!(!my.contains_key("slave_net_timeout"));
        // MariaDB's alone: MySQL's replica has no such variable.
        assert_eq!(m["rpl_semi_sync_slave_kill_conn_timeout"], "1");
        assert!(
            !my.keys().any(|k| k.is_empty() || k.contains("kill_conn")),
            "{my:?}"
        );
    }

    #[test]
    fn each_setting_is_set_and_checked_with_the_same_literal() {
        let v = vars(json!({"max_connections": 300}));
        let s = &live(Dialect::MySql84, &v)[0];
        assert_eq!(s.set, "SET GLOBAL max_connections = 300");
        assert_eq!(s.check, "SELECT @@GLOBAL.max_connections = 300");
        assert_eq!(s.line, "max_connections                = 300");
    }
}
