//! What `dbfleet import` asks a running server (issue 28), per dialect: the server itself,
//! its replication source, the replicas connected to it, the settings dbfleet manages and
//! those the operator set in option files, the databases, and the accounts with their
//! privileges. Every query reads; none reads a password or its hash (privileges come from
//! `information_schema`'s privilege tables, not `SHOW GRANTS`, whose output can carry the
//! hash).
//!
//! Sources: MariaDB KB "Information Schema SYSTEM_VARIABLES Table" (`GLOBAL_VALUE_ORIGIN`:
//! `CONFIG` is an option file), MySQL manual "Performance Schema variables_info Table"
//! (`VARIABLE_SOURCE`), both servers' "Information Schema USER_PRIVILEGES /
//! SCHEMA_PRIVILEGES / TABLE_PRIVILEGES Table" and "PROCESSLIST" (a replica's connection
//! runs the command `Binlog Dump` or `Binlog Dump GTID`).

use super::Dialect;

/// The first question, before the dialect is known: the server's version string (MariaDB
/// says `MariaDB` in it) on one line, from whichever client the host has.
pub const VERSION_SCRIPT: &str = "c=$(command -v mariadb || command -v mysql) || { echo 'no mariadb or mysql client on this host' >&2; exit 3; }\n\"$c\" -N -B -e 'SELECT @@version'\n";

/// How an inventory variable is read from the server's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// A whole number.
    Int,
    /// Bytes, written back with the largest K/M/G suffix that divides them.
    Size,
    /// `ON`/`OFF` (or 1/0).
    Bool,
    /// A decimal number (seconds, say).
    Number,
    /// The server says seconds, the inventory days.
    SecondsAsDays,
    /// A word or address, as the server has it.
    Text,
}

/// The inventory variables `import` reads from a server (`playbooks/defaults.yml`), with
/// the server variable behind each on MariaDB and on MySQL (empty: none on that server).
/// These are the settings `templates/mysqld.cnf.j2` and `mysqld-live.cnf.j2` write: a value
/// left out of the imported inventory would be changed by the first apply.
pub const IMPORTED_SETTINGS: &[(&str, &str, &str, ImportKind)] = &[
    ("port", "port", "port", ImportKind::Int),
    (
        "bind_address",
        "bind_address",
        "bind_address",
        ImportKind::Text,
    ),
    (
        "binlog_format",
        "binlog_format",
        "binlog_format",
        ImportKind::Text,
    ),
    ("sync_binlog", "sync_binlog", "sync_binlog", ImportKind::Int),
    (
        "innodb_flush_log_at_trx_commit",
        "innodb_flush_log_at_trx_commit",
        "innodb_flush_log_at_trx_commit",
        ImportKind::Int,
    ),
    (
        "max_binlog_size",
        "max_binlog_size",
        "max_binlog_size",
        ImportKind::Size,
    ),
    (
        "binlog_expire_days",
        "binlog_expire_logs_seconds",
        "binlog_expire_logs_seconds",
        ImportKind::SecondsAsDays,
    ),
    ("gtid_domain_id", "gtid_domain_id", "", ImportKind::Int),
    (
        "innodb_buffer_pool_size",
        "innodb_buffer_pool_size",
        "innodb_buffer_pool_size",
        ImportKind::Size,
    ),
    (
        "innodb_log_file_size",
        "innodb_log_file_size",
        "innodb_redo_log_capacity",
        ImportKind::Size,
    ),
    (
        "innodb_log_buffer_size",
        "innodb_log_buffer_size",
        "innodb_log_buffer_size",
        ImportKind::Size,
    ),
    (
        "max_connections",
        "max_connections",
        "max_connections",
        ImportKind::Int,
    ),
    (
        "max_connect_errors",
        "max_connect_errors",
        "max_connect_errors",
        ImportKind::Int,
    ),
    (
        "thread_cache_size",
        "thread_cache_size",
        "thread_cache_size",
        ImportKind::Int,
    ),
    (
        "wait_timeout",
        "wait_timeout",
        "wait_timeout",
        ImportKind::Int,
    ),
    (
        "interactive_timeout",
        "interactive_timeout",
        "interactive_timeout",
        ImportKind::Int,
    ),
    (
        "binlog_cache_size",
        "binlog_cache_size",
        "binlog_cache_size",
        ImportKind::Size,
    ),
    (
        "max_binlog_cache_size",
        "max_binlog_cache_size",
        "max_binlog_cache_size",
        ImportKind::Size,
    ),
    (
        "replica_net_timeout",
        "slave_net_timeout",
        "replica_net_timeout",
        ImportKind::Int,
    ),
    (
        "slow_query_log",
        "slow_query_log",
        "slow_query_log",
        ImportKind::Bool,
    ),
    (
        "long_query_time",
        "long_query_time",
        "long_query_time",
        ImportKind::Number,
    ),
    (
        "log_queries_not_using_indexes",
        "log_queries_not_using_indexes",
        "log_queries_not_using_indexes",
        ImportKind::Bool,
    ),
];

/// Server variables an option file may set that dbfleet writes itself from the inventory's
/// structure, not from a variable (`templates/mysqld.cnf.j2`): `import` does not list them
/// among the settings it cannot carry over.
pub const STRUCTURAL_SETTINGS: &[&str] = &[
    "server_id",
    "log_bin",
    "log_bin_basename",
    "log_bin_index",
    "relay_log",
    "relay_log_basename",
    "relay_log_index",
    "read_only",
    "super_read_only",
    "log_slave_updates",
    "log_replica_updates",
    "gtid_strict_mode",
    "gtid_mode",
    "enforce_gtid_consistency",
    "report_host",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "slow_query_log_file",
    "open_files_limit",
    "pid_file",
    "socket",
    "datadir",
    "basedir",
    "tmpdir",
    "lc_messages_dir",
    "lc_messages",
    "log_error",
    "character_sets_dir",
    "plugin_dir",
    "plugin_maturity",
    "character_set_server",
    "collation_server",
    "expire_logs_days",
    "user",
    // Semi-sync's other settings, rendered from the inventory's `semi_sync`.
    "rpl_semi_sync_slave_enabled",
    "rpl_semi_sync_replica_enabled",
    "rpl_semi_sync_master_wait_point",
    "rpl_semi_sync_source_wait_point",
    "plugin_load_add",
];

/// Accounts that come with the server or its Debian package, and dbfleet's own: never
/// imported as the application's.
pub const SYSTEM_ACCOUNTS: &[&str] = &[
    "root",
    "mysql",
    "mariadb.sys",
    "debian-sys-maint",
    "mysql.sys",
    "mysql.session",
    "mysql.infoschema",
    "PUBLIC",
];

/// Databases every server has.
pub const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// A section marker in the import script's output.
pub fn marker(section: &str) -> String {
    format!("--dbfleet-import-{section}--")
}

impl Dialect {
    /// The import script (sh; the client from the host's package), its output in sections
    /// ([`marker`]):
    /// - `server`: vertical `version`, `server_id`, `server_uuid` (MySQL; empty on MariaDB),
    ///   `gtid_mode` (`ON` on MariaDB), `log_bin`, `log_bin_basename` (empty without a binary log), `relay_log_basename`, `datadir`, `hostname`, `port`, `read_only`, `character_set_server`,
    ///   `collation_server`, then the replica status (none when it replicates from nobody);
    /// - `replicas`: `ADDRESS TAB USER` per connected replica: the client side of its
    ///   connection as the processlist has it, a name resolved to its IPv4 address by the
    ///   server's host (a server that resolves client names shows names only its own
    ///   resolver may know), and the account it replicates as;
    /// - `settings`: `name TAB value TAB from_option_file (1/0)` for every variable of
    ///   [`IMPORTED_SETTINGS`], the semi-sync primary side's
    ///   ([`Dialect::semi_sync_primary_settings`]) and every variable an option file set;
    /// - `databases`: `name TAB charset TAB collation` of the non-system databases;
    /// - `accounts`: `user TAB host` of each account (roles left out on MariaDB);
    /// - `privileges`: `grantee TAB object TAB privilege TAB grantable`, the object `*.*`,
    ///   `` `db`.* `` or `` `db`.`table` ``, grantee as the server writes it (`'u'@'h'`).
    pub fn import_script(self) -> String {
        let (enabled, timeout) = self.semi_sync_primary_settings();
        let names: Vec<&str> = IMPORTED_SETTINGS
            .iter()
            .map(|(_, m, y, _)| if self == Dialect::MariaDb { *m } else { *y })
            .filter(|n| !n.is_empty())
            .chain([enabled, timeout])
            .collect();
        let list = names
            .iter()
            .map(|n| super::quote(&n.to_uppercase()))
            .collect::<Vec<_>>()
            .join(", ");
        let (uuid, gtid_mode, settings, accounts) = match self {
            Dialect::MariaDb => (
                "''",
                // Every MariaDB transaction has a GTID; replicas choose to use it.
                "'ON'",
                format!(
                    "SELECT LOWER(VARIABLE_NAME), GLOBAL_VALUE, IF(GLOBAL_VALUE_ORIGIN = 'CONFIG', 1, 0) FROM information_schema.SYSTEM_VARIABLES WHERE VARIABLE_NAME IN ({list}) OR GLOBAL_VALUE_ORIGIN = 'CONFIG' ORDER BY 1"
                ),
                "SELECT User, Host FROM mysql.user WHERE is_role = 'N' ORDER BY 1, 2",
            ),
            _ => (
                "@@server_uuid",
                "@@GLOBAL.gtid_mode",
                format!(
                    "SELECT LOWER(i.VARIABLE_NAME), g.VARIABLE_VALUE, IF(i.VARIABLE_SOURCE IN ('GLOBAL', 'SERVER', 'EXPLICIT', 'EXTRA'), 1, 0) FROM performance_schema.variables_info i JOIN performance_schema.global_variables g ON g.VARIABLE_NAME = i.VARIABLE_NAME WHERE UPPER(i.VARIABLE_NAME) IN ({list}) OR i.VARIABLE_SOURCE IN ('GLOBAL', 'SERVER', 'EXPLICIT', 'EXTRA') ORDER BY 1"
                ),
                "SELECT User, Host FROM mysql.user ORDER BY 1, 2",
            ),
        };
        let system = SYSTEM_DATABASES
            .iter()
            .map(|d| super::quote(d))
            .collect::<Vec<_>>()
            .join(", ");
        let c = self.client();
        format!(
            "set -e\n\
             echo '{m_server}'\n\
             {c} -E <<'DBFLEET_SQL'\n\
             SELECT @@version AS version, @@server_id AS server_id, {uuid} AS server_uuid, {gtid_mode} AS gtid_mode, @@log_bin AS log_bin, IFNULL(@@log_bin_basename, '') AS log_bin_basename, IFNULL(@@relay_log_basename, '') AS relay_log_basename, @@datadir AS datadir, @@hostname AS hostname, @@port AS port, @@read_only AS read_only, @@character_set_server AS character_set_server, @@collation_server AS collation_server;\n\
             {show};\n\
             DBFLEET_SQL\n\
             echo '{m_replicas}'\n\
             {c} -N -B -e \"SELECT HOST, USER FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')\" | while IFS=$(printf '\\t') read -r h u; do a=${{h%:*}}; ip=$(getent ahostsv4 \"$a\" 2>/dev/null | awk '{{print $1; exit}}'); printf '%s\\t%s\\n' \"${{ip:-$a}}\" \"$u\"; done\n\
             echo '{m_settings}'\n\
             {c} -N -B <<'DBFLEET_SQL'\n{settings};\nDBFLEET_SQL\n\
             echo '{m_databases}'\n\
             {c} -N -B <<'DBFLEET_SQL'\nSELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ({system}) ORDER BY 1;\nDBFLEET_SQL\n\
             echo '{m_accounts}'\n\
             {c} -N -B <<'DBFLEET_SQL'\n{accounts};\nDBFLEET_SQL\n\
             echo '{m_privileges}'\n\
             {c} -N -B <<'DBFLEET_SQL'\n\
             SELECT GRANTEE, '*.*', PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES\n\
             UNION ALL SELECT GRANTEE, CONCAT('`', TABLE_SCHEMA, '`.*'), PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES\n\
             UNION ALL SELECT GRANTEE, CONCAT('`', TABLE_SCHEMA, '`.`', TABLE_NAME, '`'), PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.TABLE_PRIVILEGES;\n\
             DBFLEET_SQL\n\
             echo '{m_end}'\n",
            m_server = marker("server"),
            m_replicas = marker("replicas"),
            m_settings = marker("settings"),
            m_databases = marker("databases"),
            m_accounts = marker("accounts"),
            m_privileges = marker("privileges"),
            m_end = marker("end"),
            show = self.show_replica_status(),
        )
    }

    /// The primary side of semi-synchronous replication as the server names it: whether it
    /// is on, and its timeout in milliseconds (MariaDB KB "Semisynchronous Replication";
    /// MySQL manual, "Semisynchronous Replication Administrative Interface": the plugin's
    /// variables, absent when it is not loaded, which the import's query reads without
    /// error). The inventory's `semi_sync` and `semi_sync_timeout_ms` are read from the
    /// primary's.
    pub fn semi_sync_primary_settings(self) -> (&'static str, &'static str) {
        match self {
            Dialect::MariaDb => (
                "rpl_semi_sync_master_enabled",
                "rpl_semi_sync_master_timeout",
            ),
            _ => (
                "rpl_semi_sync_source_enabled",
                "rpl_semi_sync_source_timeout",
            ),
        }
    }

    /// The server variable behind inventory variable `var` on this dialect, when there is
    /// one ([`IMPORTED_SETTINGS`]).
    pub fn imported_setting(self, var: &str) -> Option<(&'static str, ImportKind)> {
        IMPORTED_SETTINGS
            .iter()
            .find(|(v, ..)| *v == var)
            .map(|(_, m, y, k)| (if self == Dialect::MariaDb { *m } else { *y }, *k))
            .filter(|(n, _)| !n.is_empty())
    }
}

/// A MariaDB replica's `SHOW SLAVE STATUS` in vertical output, as the import script reads
/// it, for the import's unit tests: `{host}` the source, `{using}` `Using_Gtid`.
#[cfg(test)]
pub const MARIADB_REPLICA_STATUS_SAMPLE: &str = "*************************** 1. row ***************************\n\
Slave_IO_State: Waiting for master to send event\nMaster_Host: {host}\nMaster_User: repl\n\
Master_Port: 3306\nConnect_Retry: 60\nSlave_IO_Running: Yes\nSlave_SQL_Running: Yes\n\
Master_SSL_Allowed: No\nMaster_SSL_Verify_Server_Cert: No\nLast_IO_Error: \nLast_SQL_Error: \n\
Using_Gtid: {using}\nGtid_IO_Pos: \n";
