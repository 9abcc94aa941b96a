//! SQL per dialect: the statements dbfleet sends to MariaDB 10.11 and MySQL 8.0 / 8.4, and
//! the quoting they share.
//!
//! Every statement a task or runbook issues is built here, so the dialects differ in one
//! place and each statement has a snapshot test per dialect (`tests/sql_dialects.rs`).
//! Sources: MariaDB KB "CHANGE MASTER TO", "MASTER_GTID_WAIT", "GRANT"; MySQL 8.0.23
//! release notes (CHANGE REPLICATION SOURCE TO, START REPLICA); MySQL 8.4 removed
//! CHANGE MASTER and START SLAVE and disables mysql_native_password by default.
//! Statements are sent on stdin of the `mariadb`/`mysql` client on the host, never on a
//! command line.

/// MySQL's `gtid_executed` on one line: the server breaks the set after each comma, and
/// the client's batch and vertical output would carry the break. One spelling for every
/// query that reads it (state probe, position, `status`).
macro_rules! mysql_gtid_executed {
    () => {
        "REPLACE(@@GLOBAL.gtid_executed, '\\n', '')"
    };
}

pub mod galera;
pub mod grant;
pub mod group;
pub mod gtid;
pub mod gtid_online;
pub mod import;
pub mod replica;
pub mod settings;

pub use replica::{GtidReport, ReplicaStatus, vertical};

use sha1::{Digest, Sha1};

/// The database server family; decides config paths, package names and SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mariadb,
    Mysql,
}

impl Flavor {
    pub const NAMES: &'static [&'static str] = &["mariadb", "mysql"];
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Mariadb => "mariadb",
            Flavor::Mysql => "mysql",
        }
    }
}

/// The SQL dialect of a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MariaDB 10.6+ (the lab runs 10.11).
    MariaDb,
    /// MySQL 8.0.23+: REPLICA/SOURCE syntax; mysql_native_password still available.
    MySql80,
    /// MySQL 8.4+: no CHANGE MASTER / START SLAVE; caching_sha2_password only by default.
    MySql84,
}

impl Dialect {
    /// The dialect of `flavor` at `version` ("MAJOR.MINOR").
    pub fn of(flavor: Flavor, version: &str) -> Dialect {
        match flavor {
            Flavor::Mariadb => Dialect::MariaDb,
            Flavor::Mysql => {
                let mut it = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
                if (major, minor) >= (8, 4) {
                    Dialect::MySql84
                } else {
                    Dialect::MySql80
                }
            }
        }
    }
    /// The server's service name (Debian's packages).
    pub fn service(self) -> &'static str {
        match self {
            Dialect::MariaDb => "mariadb",
            _ => "mysql",
        }
    }
    /// Whether the topology runbooks (switchover, failover, rejoin, restore, rebuild) are
    /// proven on real hosts of this dialect. MariaDB: yes (10.11 and 11.8 in the lab).
    /// MySQL 8.4 and later: yes, by the lab's Debian MySQL 9.x under write load (before
    /// it, a MySQL 9.7 switchover never froze the old primary and made two writers:
    /// issue 10, case 6). MySQL 8.0 (end of life in April 2026, its `RESET MASTER` and
    /// replica naming differ) runs in no lab: its runbooks refuse.
    pub fn runbooks_proven(self) -> bool {
        self != Dialect::MySql80
    }
    /// The command-line client on the host.
    pub fn client(self) -> &'static str {
        match self {
            Dialect::MariaDb => "mariadb",
            _ => "mysql",
        }
    }
    /// dbfleet's option file of settings that need a restart (`templates/mysqld.cnf.j2`).
    /// Debian reads its folder in name order: MariaDB's `90-` comes after its own
    /// `50-server.cnf`; MySQL ships `mysqld.cnf` there (bind-address = 127.0.0.1), which a
    /// `90-` file would lose to, so `zz-` (issue 13).
    pub fn cnf_path(self) -> &'static str {
        match self {
            Dialect::MariaDb => "/etc/mysql/mariadb.conf.d/90-dbfleet.cnf",
            _ => "/etc/mysql/mysql.conf.d/zz-dbfleet.cnf",
        }
    }
    /// The server's pid file (Debian's 50-server.cnf / mysqld.cnf), written when it starts.
    pub fn pidfile(self) -> &'static str {
        "/run/mysqld/mysqld.pid"
    }
    /// The binary log reader on the host (Debian: mariadb-client, mysql-server-core).
    pub fn binlog_reader(self) -> &'static str {
        match self {
            Dialect::MariaDb => "mariadb-binlog",
            _ => "mysqlbinlog",
        }
    }
}

/// Field names of the replica status a dialect reports ([`Dialect::replica_fields`]).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ReplicaFields {
    pub source_host: &'static str,
    pub io_running: &'static str,
    pub sql_running: &'static str,
    pub seconds_behind: &'static str,
}

/// A string literal: single quotes, backslash and quote escaped (NO_BACKSLASH_ESCAPES off,
/// the default of both servers).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The failover monitor's cooperative lock (`crate::runbooks::monitor`), the same on
/// MariaDB and MySQL (MariaDB KB "GET_LOCK"; MySQL manual 14.14 "Locking Functions"): the
/// named lock is held by the session that took it and released when that session ends.
pub mod named_lock {
    use super::quote;

    /// The lock session ends after `idle_s` seconds without a statement (`wait_timeout`),
    /// releasing the lock of a client that died or was cut off.
    pub fn session_idle(idle_s: u64) -> String {
        format!("SET SESSION wait_timeout = {idle_s};")
    }
    /// Takes `name` without waiting: the row is 1 (taken), 0 (another session holds it).
    pub fn take(name: &str) -> String {
        format!("SELECT GET_LOCK({}, 0);", quote(name))
    }
    /// The row is 1 when this session holds `name`.
    pub fn held(name: &str) -> String {
        format!("SELECT IS_USED_LOCK({}) = CONNECTION_ID();", quote(name))
    }
    /// Gives `name` back.
    pub fn release(name: &str) -> String {
        format!("SELECT RELEASE_LOCK({});", quote(name))
    }
}

/// An identifier in backticks.
pub fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// `'user'@'host'`.
pub fn account(user: &str, host: &str) -> String {
    format!("{}@{}", quote(user), quote(host))
}

/// The mysql_native_password hash of `password`: `*` + uppercase hex of
/// SHA1(SHA1(password)) (MariaDB KB "PASSWORD"). Lets dbfleet create and compare users
/// without the plaintext ever leaving the operator's machine.
pub fn native_password_hash(password: &str) -> String {
    let inner = Sha1::digest(password.as_bytes());
    format!("*{}", hex::encode_upper(Sha1::digest(inner)))
}

impl Dialect {
    /// The authentication for `password` in this dialect.
    pub fn auth(self, password: &str) -> (AuthOwned, bool) {
        match self {
            Dialect::MySql84 => (AuthOwned::Plain(password.to_string()), true),
            _ => (AuthOwned::NativeHash(native_password_hash(password)), false),
        }
    }

    fn auth_clause(self, auth: &AuthOwned) -> String {
        match (self, auth) {
            (Dialect::MariaDb, AuthOwned::NativeHash(h)) => {
                format!("IDENTIFIED BY PASSWORD {}", quote(h))
            }
            (_, AuthOwned::NativeHash(h)) => {
                format!("IDENTIFIED WITH mysql_native_password AS {}", quote(h))
            }
            (_, AuthOwned::Plain(p)) => format!("IDENTIFIED BY {}", quote(p)),
        }
    }

    /// `CREATE USER`, with `REQUIRE SSL` when asked.
    pub fn create_user(
        self,
        user: &str,
        host: &str,
        auth: &AuthOwned,
        require_ssl: bool,
    ) -> String {
        let ssl = if require_ssl { " REQUIRE SSL" } else { "" };
        format!(
            "CREATE USER {} {}{ssl};",
            account(user, host),
            self.auth_clause(auth)
        )
    }

    /// `ALTER USER` to the given password and TLS requirement.
    pub fn alter_user(self, user: &str, host: &str, auth: &AuthOwned, require_ssl: bool) -> String {
        let ssl = if require_ssl { "SSL" } else { "NONE" };
        format!(
            "ALTER USER {} {} REQUIRE {ssl};",
            account(user, host),
            self.auth_clause(auth)
        )
    }

    /// After `ALTER USER` with a plaintext password (caching_sha2_password, whose hash is
    /// salted at random): records in the account's JSON attributes the
    /// [`password_digest`] of the declared password and the sha256 of the hash the server
    /// made, so the probe knows the password is the declared one and was not changed
    /// outside dbfleet since. Empty for accounts carrying a comparable hash. ATTRIBUTE
    /// takes a literal only, hence the prepared statement (MySQL 8.4 manual, "ALTER USER
    /// Statement", "User Comment and User Attribute Options").
    pub fn record_password(self, user: &str, host: &str, auth: &AuthOwned) -> String {
        let AuthOwned::Plain(p) = auth else {
            return String::new();
        };
        format!(
            "SET @dbfleet_auth = (SELECT SHA2(authentication_string, 256) FROM mysql.user WHERE User = {u} AND Host = {h});\n\
             SET @dbfleet_alter = CONCAT({alter}, QUOTE(JSON_OBJECT({dk}, {d}, {ak}, @dbfleet_auth)));\n\
             PREPARE dbfleet_alter FROM @dbfleet_alter;\nEXECUTE dbfleet_alter;\nDEALLOCATE PREPARE dbfleet_alter;",
            u = quote(user),
            h = quote(host),
            alter = quote(&format!("ALTER USER {} ATTRIBUTE ", account(user, host))),
            dk = quote(PASSWORD_DIGEST_ATTRIBUTE),
            d = quote(&password_digest(user, host, p)),
            ak = quote(AUTH_SHA256_ATTRIBUTE),
        )
    }

    /// A column (SQL) with the [`password_digest`] recorded on an account by
    /// [`Dialect::record_password`] while the server's hash is still the one recorded
    /// with it (`changed` once it is not); `''` where the dialect compares the server's own
    /// hash instead. MySQL 8.0.21+ keeps ATTRIBUTE under `metadata` in
    /// `mysql.user.User_attributes`.
    pub fn password_digest_column(self) -> String {
        match self {
            Dialect::MySql84 => format!(
                "IFNULL(IF(SHA2(authentication_string, 256) = JSON_UNQUOTE(JSON_EXTRACT(User_attributes, '$.metadata.{AUTH_SHA256_ATTRIBUTE}')), \
                 JSON_UNQUOTE(JSON_EXTRACT(User_attributes, '$.metadata.{PASSWORD_DIGEST_ATTRIBUTE}')), 'changed'), '')"
            ),
            _ => "''".into(),
        }
    }

    pub fn drop_user(self, user: &str, host: &str) -> String {
        format!("DROP USER IF EXISTS {};", account(user, host))
    }

    /// `GRANT privs ON object TO account;` (`grant` is "PRIVS ON OBJECT").
    pub fn grant(self, grant: &str, user: &str, host: &str) -> String {
        format!("GRANT {grant} TO {};", account(user, host))
    }

    /// `REVOKE ALL PRIVILEGES, GRANT OPTION FROM account;`
    pub fn revoke_all(self, user: &str, host: &str) -> String {
        format!(
            "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {};",
            account(user, host)
        )
    }

    pub fn create_database(self, name: &str, charset: &str, collation: &str) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {charset} COLLATE {collation};",
            ident(name)
        )
    }

    /// Points a replica at its source by GTID, over verified TLS. The dialects differ in
    /// keywords only: MASTER_* / MASTER_USE_GTID=slave_pos on MariaDB, SOURCE_* /
    /// SOURCE_AUTO_POSITION=1 on MySQL 8.0.23+.
    pub fn change_source(self, s: &SourceSpec) -> String {
        // MySQL 8.4 gives up on a source after SOURCE_RETRY_COUNT attempts, 10 by default
        // (8.0: 86400): at one a second, a source restarting in place for longer than that
        // left its replica's IO thread stopped (seen on the import lab's first apply).
        // MySQL 8.0's day is restored; MariaDB's master_retry_count is 100000 already.
        let (statement, k, gtid) = match self {
            Dialect::MariaDb => ("CHANGE MASTER TO", "MASTER", "MASTER_USE_GTID=slave_pos"),
            _ => (
                "CHANGE REPLICATION SOURCE TO",
                "SOURCE",
                "SOURCE_AUTO_POSITION=1, SOURCE_RETRY_COUNT=86400",
            ),
        };
        format!(
            "{statement} {k}_HOST={}, {k}_PORT={}, {k}_USER={}, {k}_PASSWORD={}, {gtid}, {k}_SSL=1, \
             {k}_SSL_CA={}, {k}_SSL_VERIFY_SERVER_CERT=1, {k}_CONNECT_RETRY={}, \
             {k}_HEARTBEAT_PERIOD={HEARTBEAT_PERIOD_S:.3};",
            quote(&s.host),
            s.port,
            quote(&s.user),
            quote(&s.password),
            quote(&s.ssl_ca),
            s.connect_retry
        )
    }

    /// The query that reports a replica's heartbeat period in seconds as
    /// `heartbeat_period`: MariaDB's `Slave_heartbeat_period` status variable (the default
    /// connection's; MariaDB 10.11's `SHOW SLAVE STATUS` does not have it, only `SHOW ALL
    /// SLAVES STATUS`: read on the lab), MySQL's `HEARTBEAT_INTERVAL` (MySQL 8.4 manual,
    /// "The replication_connection_configuration Table").
    pub fn heartbeat_period_query(self) -> &'static str {
        match self {
            Dialect::MariaDb => {
                "SELECT VARIABLE_VALUE AS heartbeat_period FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_HEARTBEAT_PERIOD';"
            }
            _ => {
                "SELECT HEARTBEAT_INTERVAL AS heartbeat_period FROM performance_schema.replication_connection_configuration WHERE CHANNEL_NAME = '';"
            }
        }
    }

    /// A shell snippet printing what a replica's IO thread has received so far, in one
    /// line that changes whenever an event or a heartbeat arrives, and nothing when the
    /// server does not answer within 2 s. Two samples some heartbeat periods apart tell a
    /// source that answers its replica from one that holds the connection open and says
    /// nothing (a frozen or hung server). MariaDB: the received binary log position of
    /// `SHOW SLAVE STATUS` and the `Slave_received_heartbeats` status variable (MariaDB KB
    /// "Replication and Binary Log Status Variables"); MySQL: `COUNT_RECEIVED_HEARTBEATS`, `LAST_HEARTBEAT_TIMESTAMP` and the
    /// last queued transaction of `performance_schema.replication_connection_status`
    /// (MySQL 8.4 manual, "The replication_connection_status Table").
    pub fn received_marker(self) -> String {
        match self {
            Dialect::MariaDb => format!(
                "timeout 2 {} -E -e \"SELECT VARIABLE_VALUE AS received_heartbeats FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RECEIVED_HEARTBEATS'; SHOW SLAVE STATUS\" 2>/dev/null | grep -E '^ *(received_heartbeats|Master_Log_File|Read_Master_Log_Pos):' | tr -d ' \\n'",
                self.client()
            ),
            _ => format!(
                "timeout 2 {} -N -B -e \"SELECT CONCAT_WS('/', COUNT_RECEIVED_HEARTBEATS, LAST_HEARTBEAT_TIMESTAMP, LAST_QUEUED_TRANSACTION, LAST_QUEUED_TRANSACTION_END_QUEUE_TIMESTAMP) FROM performance_schema.replication_connection_status WHERE CHANNEL_NAME = ''\" 2>/dev/null",
                self.client()
            ),
        }
    }

    /// Reads the sha256 (hex) of the replication password a replica stores, as a
    /// `stored_password_sha256: HEX` line: (SQL for the probe's vertical batch, shell run
    /// after it). MariaDB keeps it on line 6 of `master.info`; MySQL in the
    /// `mysql.slave_master_info` table (MySQL 8.4 manual, "Replication Metadata
    /// Repositories"), hashed by the server so the password never leaves it.
    pub fn stored_password_sha256(self) -> (&'static str, &'static str) {
        match self {
            Dialect::MariaDb => (
                "",
                "[ -f /var/lib/mysql/master.info ] && printf 'stored_password_sha256: %s\\n' \"$(sed -n 6p /var/lib/mysql/master.info | tr -d '\\n' | sha256sum | cut -c1-64)\"",
            ),
            _ => (
                "SELECT SHA2(User_password, 256) AS stored_password_sha256 FROM mysql.slave_master_info WHERE Channel_name = '';",
                "",
            ),
        }
    }

    /// How a new replica is seeded from its source: MariaDB streams a mariadb-backup copy;
    /// MySQL 8.0.17+ pulls one with the CLONE plugin (Debian ships no xtrabackup for it).
    pub fn seeds_by_clone(self) -> bool {
        self != Dialect::MariaDb
    }

    /// MySQL's CLONE of `s` into `dir` on the replica running it (an absolute path that
    /// must not exist; its parent writable by mysqld), over TLS checked against `s.ssl_ca`.
    /// The donor account needs BACKUP_ADMIN; the copy carries the donor's `gtid_executed`,
    /// and the running server is left as it is (no automatic restart). The password is
    /// in the statement: send it on stdin only. Source: MySQL 8.4 manual, "Cloning Remote
    /// Data" and "Configuring an Encrypted Connection for Cloning".
    pub fn clone_from(self, s: &SourceSpec, dir: &str) -> String {
        format!(
            "SET GLOBAL clone_valid_donor_list = {};\nSET GLOBAL clone_ssl_ca = {};\n\
             CLONE INSTANCE FROM {}@{}:{} IDENTIFIED BY {} DATA DIRECTORY = {} REQUIRE SSL;",
            quote(&format!("{}:{}", s.host, s.port)),
            quote(&s.ssl_ca),
            quote(&s.user),
            quote(&s.host),
            s.port,
            quote(&s.password),
            quote(dir)
        )
    }

    /// The option file setting that sizes the redo log, given the inventory's
    /// `innodb_log_file_size`: MariaDB and MySQL 8.0 take `innodb_log_file_size`; MySQL
    /// 8.0.30 deprecated it for `innodb_redo_log_capacity` (the total redo size, which is
    /// what the inventory's value means), and MySQL 9 refuses to start with it (issue 13;
    /// MySQL 8.4 manual, "Configuring Redo Log Capacity").
    pub fn redo_log_option(self) -> &'static str {
        match self {
            Dialect::MariaDb | Dialect::MySql80 => "innodb_log_file_size",
            Dialect::MySql84 => "innodb_redo_log_capacity",
        }
    }

    pub fn start_replica(self) -> &'static str {
        match self {
            Dialect::MariaDb => "START SLAVE;",
            _ => "START REPLICA;",
        }
    }

    pub fn stop_replica(self) -> &'static str {
        match self {
            Dialect::MariaDb => "STOP SLAVE;",
            _ => "STOP REPLICA;",
        }
    }

    /// Stops receiving from the source; what was received is still applied.
    pub fn stop_replica_io(self) -> &'static str {
        match self {
            Dialect::MariaDb => "STOP SLAVE IO_THREAD;",
            _ => "STOP REPLICA IO_THREAD;",
        }
    }

    pub fn reset_replica_all(self) -> &'static str {
        match self {
            Dialect::MariaDb => "RESET SLAVE ALL;",
            _ => "RESET REPLICA ALL;",
        }
    }

    pub fn show_replica_status(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SHOW SLAVE STATUS",
            _ => "SHOW REPLICA STATUS",
        }
    }

    /// Waits until the replica has applied `position`, at most `timeout_s` seconds.
    /// Returns 0 when caught up on both dialects' terms (MariaDB: 0 ok / -1 timeout;
    /// MySQL: 0 ok / 1 timeout).
    pub fn wait_for_position(self, position: &str, timeout_s: u32) -> String {
        match self {
            Dialect::MariaDb => {
                format!("SELECT MASTER_GTID_WAIT({}, {timeout_s});", quote(position))
            }
            _ => format!(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {timeout_s});",
                quote(position)
            ),
        }
    }

    /// Sets the position a freshly seeded replica starts from (MariaDB: gtid_slave_pos;
    /// MySQL: gtid_purged, after clearing gtid_executed).
    pub fn set_start_position(self, position: &str) -> String {
        let p = quote(position);
        match self {
            Dialect::MariaDb => format!("SET GLOBAL gtid_slave_pos = {p};"),
            Dialect::MySql80 => format!("RESET MASTER; SET GLOBAL gtid_purged = {p};"),
            Dialect::MySql84 => {
                format!("RESET BINARY LOGS AND GTIDS; SET GLOBAL gtid_purged = {p};")
            }
        }
    }

    /// Sets the start position of a freshly seeded replica together with the binary log
    /// history it inherits from the copy (`binlog_state`, a full `gtid_binlog_state`
    /// clipped to the copy's position, see `runbooks::topology::seeded_binlog_state`).
    /// MariaDB: without it the copy's `gtid_binlog_state` is empty, and once promoted the
    /// server looks as if it never saw the cluster's history: false errant GTIDs on the old
    /// primary, a refused rejoin, error 1236 for a replica under `gtid_strict_mode` (issue
    /// 10, case 3). `SET GLOBAL gtid_binlog_state` needs an empty binary log, hence
    /// `RESET MASTER` first (the copy's own binary log holds nothing yet; MariaDB KB
    /// "gtid_binlog_state"). MySQL's `gtid_purged` already carries the history.
    pub fn set_start_position_with_history(self, position: &str, binlog_state: &str) -> String {
        match self {
            Dialect::MariaDb if !binlog_state.is_empty() => format!(
                "RESET MASTER;\nSET GLOBAL gtid_binlog_state = {};\n{}",
                quote(binlog_state),
                self.set_start_position(position)
            ),
            _ => self.set_start_position(position),
        }
    }

    /// The names `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS` reports, as (source host, IO
    /// thread running, SQL thread running, seconds behind), for the shell templates that
    /// read them (`db.replica.*`); see `replica` for the rest.
    pub fn replica_fields(self) -> ReplicaFields {
        self.names().fields()
    }

    /// The server's full binary log history: one row, `gtid_binlog_state` (MariaDB) or
    /// `gtid_executed` (MySQL).
    pub fn binlog_history(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SELECT @@GLOBAL.gtid_binlog_state;",
            _ => "SELECT @@GLOBAL.gtid_executed;",
        }
    }

    /// The name of what a replica has applied, for plans and messages: MariaDB's
    /// `gtid_slave_pos`, MySQL's `gtid_executed`.
    pub fn applied_position_name(self) -> &'static str {
        match self {
            Dialect::MariaDb => "gtid_slave_pos",
            _ => "gtid_executed",
        }
    }

    /// The name of the server's binary log history, for plans and messages: MariaDB's
    /// `gtid_binlog_state`, MySQL's `gtid_executed`.
    pub fn history_name(self) -> &'static str {
        match self {
            Dialect::MariaDb => "gtid_binlog_state",
            _ => "gtid_executed",
        }
    }

    /// The server's current GTID position (what a replica must reach), on one line
    /// (MySQL breaks `gtid_executed` after each comma).
    pub fn current_position(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos;",
            _ => concat!("SELECT ", mysql_gtid_executed!(), ";"),
        }
    }

    /// Makes the server read-only (`true`) or writable. Root and replication bypass it;
    /// app users (never holding READ ONLY ADMIN / SUPER, see `inventory::validate`) do not.
    pub fn set_read_only(self, on: bool) -> String {
        let v = if on { "ON" } else { "OFF" };
        match self {
            Dialect::MariaDb => format!("SET GLOBAL read_only = {v};"),
            // MySQL: super_read_only also stops SUPER holders; clearing read_only clears it.
            _ if on => "SET GLOBAL read_only = ON; SET GLOBAL super_read_only = ON;".into(),
            _ => "SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF;".into(),
        }
    }

    /// Switches the primary side of semi-sync replication on or off, live (MariaDB:
    /// built in since 10.3; MySQL: the semisync_source plugin loaded by mysqld.cnf).
    pub fn set_semi_sync_primary(self, on: bool) -> String {
        let v = if on { "ON" } else { "OFF" };
        match self {
            Dialect::MariaDb => format!("SET GLOBAL rpl_semi_sync_master_enabled = {v};"),
            _ => format!("SET GLOBAL rpl_semi_sync_source_enabled = {v};"),
        }
    }

    /// One row: 1 when the primary side of semi-sync can be set (MariaDB: always; MySQL:
    /// its plugin is loaded, which dbfleet's option file does at the next start).
    pub fn semi_sync_primary_loaded(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SELECT 1",
            _ => {
                "SELECT COUNT(*) FROM performance_schema.global_variables WHERE VARIABLE_NAME = 'rpl_semi_sync_source_enabled'"
            }
        }
    }

    /// The primary side of semi-sync, as a column `semi_sync_primary` (1/0).
    pub fn semi_sync_primary_status(self) -> &'static str {
        match self {
            Dialect::MariaDb => {
                "SELECT @@GLOBAL.rpl_semi_sync_master_enabled AS semi_sync_primary;"
            }
            _ => "SELECT @@GLOBAL.rpl_semi_sync_source_enabled AS semi_sync_primary;",
        }
    }

    /// Keeps the text of a session's statements out of the row events it logs (MariaDB's
    /// `binlog_annotate_row_events`, MySQL's `binlog_rows_query_log_events`; both session
    /// variables). A replay of binary logs runs `BINLOG '…'` statements of up to megabytes;
    /// annotated, each is logged again as an event that large, over the packet limit the
    /// server reads its own binary log with: `BINLOG_GTID_POS()` then returns NULL and
    /// mariadb-dump --master-data crashes on it (seen in the lab, MariaDB 10.11.19).
    pub fn unannotated_session(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SET SESSION binlog_annotate_row_events = OFF;",
            _ => "SET SESSION binlog_rows_query_log_events = OFF;",
        }
    }

    /// 1 when the primary side of semi-sync is on (an `unless` query of `sql` tasks).
    pub fn semi_sync_primary_is_on(self) -> &'static str {
        match self {
            Dialect::MariaDb => "SELECT @@GLOBAL.rpl_semi_sync_master_enabled = 1",
            _ => "SELECT @@GLOBAL.rpl_semi_sync_source_enabled = 1",
        }
    }

    /// Blocks every write, SUPER holders' too, and waits for commits in flight (the
    /// switchover's freeze; DESIGN.md, verified on 10.11). Not binlogged on either server.
    pub fn freeze_writes(self) -> &'static str {
        match self {
            Dialect::MariaDb => "FLUSH NO_WRITE_TO_BINLOG TABLES WITH READ LOCK;",
            _ => "FLUSH TABLES WITH READ LOCK;",
        }
    }

    /// Lists `KILL CONNECTION n;` statements ending the application sessions: everything
    /// but system threads, replication (Binlog Dump) threads, root and dbfleet's accounts,
    /// and the calling session.
    pub fn app_sessions_kill_list(self) -> &'static str {
        "SELECT CONCAT('KILL CONNECTION ', ID, ';') FROM information_schema.PROCESSLIST \
         WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler', 'root', 'mysql', \
         'dbfleet_repl', 'dbfleet_monitor', 'dbfleet_backup', 'unauthenticated user') \
         AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon');"
    }

    /// Points a demoted primary at the new one. MariaDB's MASTER_DEMOTE_TO_SLAVE=1 (10.10+)
    /// moves the old primary's own transactions (gtid_binlog_pos) into gtid_slave_pos, so
    /// it resumes from the right place instead of failing with error 1236
    /// (orchestrator#1146). MySQL's auto-positioning needs nothing extra.
    pub fn change_source_demote(self, s: &SourceSpec) -> String {
        let mut c = self.change_source(s);
        if self == Dialect::MariaDb {
            c.pop();
            c.push_str(", MASTER_DEMOTE_TO_SLAVE=1;");
        }
        c
    }

    /// One row of GTID state: `binlog_pos`, `slave_pos` and `binlog_state` (MariaDB);
    /// on MySQL `gtid_executed` (on one line) fills all three, and `server_uuid` names the
    /// GTIDs the server writes itself.
    pub fn gtid_state(self) -> &'static str {
        match self {
            Dialect::MariaDb => {
                "SELECT @@GLOBAL.gtid_binlog_pos AS binlog_pos, @@GLOBAL.gtid_slave_pos AS slave_pos, @@GLOBAL.gtid_binlog_state AS binlog_state;"
            }
            _ => {
                concat!(
                    "SELECT ",
                    mysql_gtid_executed!(),
                    " AS binlog_pos, ",
                    mysql_gtid_executed!(),
                    " AS slave_pos, ",
                    mysql_gtid_executed!(),
                    " AS binlog_state, @@GLOBAL.server_uuid AS server_uuid;"
                )
            }
        }
    }

    /// Stops the applier alone, keeping what arrives (a backup's consistent pause).
    pub fn stop_replica_sql(self) -> &'static str {
        match self {
            Dialect::MariaDb => "STOP SLAVE SQL_THREAD",
            _ => "STOP REPLICA SQL_THREAD",
        }
    }

    /// Starts the applier alone.
    pub fn start_replica_sql(self) -> &'static str {
        match self {
            Dialect::MariaDb => "START SLAVE SQL_THREAD",
            _ => "START REPLICA SQL_THREAD",
        }
    }

    /// How an operator reads the statement that points a replica at its source, for
    /// messages and plans ("CHANGE MASTER TO").
    pub fn change_source_words(self) -> &'static str {
        match self {
            Dialect::MariaDb => "CHANGE MASTER TO",
            _ => "CHANGE REPLICATION SOURCE TO",
        }
    }

    /// How an operator reads a new replica's seeding from `src`, for plans: how the copy is
    /// made and where replication starts (`crate::runbooks::replication`: mariadb-backup
    /// and `gtid_slave_pos` on MariaDB; the CLONE plugin and auto-position on MySQL).
    pub fn seed_words(self, src: &str) -> String {
        match self {
            Dialect::MariaDb => format!(
                "copy {src}'s data with mariadb-backup (the old data folder is kept aside), set gtid_slave_pos from the copy, \
                 CHANGE MASTER TO {src} (MASTER_USE_GTID=slave_pos, MASTER_SSL=1, verify certificate)"
            ),
            _ => format!(
                "clone {src}'s data with the CLONE plugin over verified TLS (the old data folder is kept aside), \
                 CHANGE REPLICATION SOURCE TO {src} (SOURCE_AUTO_POSITION=1, SOURCE_SSL=1, verify certificate)"
            ),
        }
    }

    /// How an operator reads the statement that starts replication ("START SLAVE").
    pub fn start_replica_words(self) -> &'static str {
        self.start_replica().trim_end_matches(';')
    }

    /// The seed's hardening (seed 000, "MySQL Security"): no anonymous users, no remote root,
    /// no test database. MariaDB keeps accounts in mysql.global_priv (mysql.user is a view).
    pub fn hardening(self) -> Vec<String> {
        let users = if self == Dialect::MariaDb {
            "mysql.global_priv"
        } else {
            "mysql.user"
        };
        vec![
            format!("DELETE FROM {users} WHERE User = '';"),
            format!(
                "DELETE FROM {users} WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1');"
            ),
            "DROP DATABASE IF EXISTS test;".into(),
            "DELETE FROM mysql.db WHERE Db = 'test' OR Db = 'test\\_%';".into(),
            "FLUSH PRIVILEGES;".into(),
        ]
    }
}

/// The certificate the server runs with (`@@GLOBAL.ssl_cert`, empty when none): read on a
/// replication source to tell whether it serves the fleet's certificate yet.
pub const SERVER_CERT_QUERY: &str = "SELECT IFNULL(@@GLOBAL.ssl_cert, '')";

/// The server certificate dbfleet installs on every database host
/// (`playbooks/database.yml`, "tls certificate") and names in its option file.
pub const FLEET_SERVER_CERT: &str = "/etc/mysql/dbfleet-tls/server-cert.pem";

/// The largest statement a replay of binary logs may need, in bytes: 1 GiB, the maximum
/// of `max_allowed_packet` (MariaDB KB and MySQL manual, "max_allowed_packet"). A row
/// event group is replayed as one `BINLOG '…'` statement, base64, about 4/3 of the
/// transaction's row images: a 10,000-row update of 1 KB rows is over MariaDB's default
/// 16 MiB, and the client then fails "Server has gone away" (seen in bench/backup.sh).
pub const REPLAY_PACKET_BYTES: u64 = 1_073_741_824;

/// The server's packet limit (`SELECT`), and the statement that sets it. Global only: a
/// session takes the global value when it connects, and cannot raise its own.
pub const PACKET_LIMIT_QUERY: &str = "SELECT @@GLOBAL.max_allowed_packet";
pub fn set_packet_limit(bytes: impl std::fmt::Display) -> String {
    format!("SET GLOBAL max_allowed_packet = {bytes}")
}

/// The JSON attribute key of [`password_digest`] on an account.
pub const PASSWORD_DIGEST_ATTRIBUTE: &str = "dbfleet_password_digest";

/// The JSON attribute key of the sha256 of the server's hash when dbfleet set the password.
pub const AUTH_SHA256_ATTRIBUTE: &str = "dbfleet_auth_sha256";

/// What dbfleet compares to tell whether a caching_sha2_password account has the declared
/// password, since the server's own hash is salted at random (issue 13): PBKDF2-HMAC-
/// SHA256 (RFC 8018) of the password, salted with the account, 5,000 rounds (the rounds of
/// caching_sha2_password itself, so the attribute is no easier to attack than the hash
/// beside it); 64 hex digits.
pub fn password_digest(user: &str, host: &str, password: &str) -> String {
    let salt = format!("dbfleet-password-digest-v1\0{user}\0{host}");
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), 5000, &mut out);
    hex::encode(out)
}

/// How a user authenticates, as a statement carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOwned {
    NativeHash(String),
    Plain(String),
}

/// Seconds between the heartbeats a source sends each replica when it has no event to
/// send (`MASTER_HEARTBEAT_PERIOD` / `SOURCE_HEARTBEAT_PERIOD`; the servers' default is
/// half of `slave_net_timeout`, 30 s). A quarter second lets a failover tell, within a
/// second, a source that still talks to its replicas from one that holds their
/// connections open and says nothing (issue 29: a frozen primary's kernel keeps its TCP
/// connections and completes new handshakes).
pub const HEARTBEAT_PERIOD_S: f64 = 0.25;

/// Where a replica replicates from.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The replication password (sent on stdin; stored by the server in its replica info).
    pub password: String,
    /// Path of the fleet CA on the replica, to verify the source's certificate.
    pub ssl_ca: String,
    pub connect_retry: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MySQL replica's bootstrap plan named mariadb-backup and gtid_slave_pos, which
    /// MySQL has neither of (seen in the MySQL lab's rebuild plan).
    #[test]
    fn a_new_replicas_seeding_reads_in_its_servers_words() {
        let maria = Dialect::MariaDb.seed_words("db1");
        assert!(
            maria.contains("mariadb-backup") && maria.contains("gtid_slave_pos"),
            "{maria}"
        );
        for d in [Dialect::MySql80, Dialect::MySql84] {
            let w = d.seed_words("db1");
            assert!(
                w.contains("CLONE") && w.contains("SOURCE_AUTO_POSITION=1"),
                "{w}"
            );
            assert!(!w.contains("mariadb") && !w.contains("MASTER"), "{w}");
        }
    }

    #[test]
    fn password_digest_is_salted_by_account_and_recorded_through_escaped_literals() {
        let d = password_digest("app", "%", "s3cret");
        assert_eq!(d.len(), 64);
        assert_ne!(d, password_digest("app", "localhost", "s3cret"));
        assert_ne!(d, password_digest("app", "%", "s3cret2"));
        assert_eq!(d, password_digest("app", "%", "s3cret"));
        let sql = Dialect::MySql84.record_password("o'hara", "%", &AuthOwned::Plain("p".into()));
        assert!(sql.contains("User = 'o\\'hara'"), "{sql}");
        assert!(
            !sql.contains("'p'"),
            "the password itself is never recorded: {sql}"
        );
        let native = AuthOwned::NativeHash("*AB".into());
        assert_eq!(Dialect::MariaDb.record_password("app", "%", &native), "");
        assert_eq!(Dialect::MariaDb.password_digest_column(), "''");
    }

    #[test]
    fn native_hash_matches_the_server() {
        // SELECT PASSWORD('password') on MariaDB 10.11.
        assert_eq!(
            native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(ident("we`ird"), "`we``ird`");
    }
}
