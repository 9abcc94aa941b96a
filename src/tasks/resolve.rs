//! From playbooks and inventory to rendered per-host tasks.
//!
//! For each host, every playbook whose roles match contributes its tasks (those whose
//! `when` holds), rendered with minijinja (strict undefined, trailing newline kept) in a
//! context of `host`, `fleet`, `vars`, `db` (the flavor's packages, service and paths) and
//! `hosts`. Templates may call `secret("NAME")`; a file whose content did so is marked
//! sensitive and must not be readable by group or others. Secrets may appear in file
//! contents only, never in a path or a command (those reach `ps` and logs).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use minijinja::{Environment, Expression, Template, UndefinedBehavior, Value};
use serde::Serialize;
use serde_saphyr::Spanned;

use crate::backup::keys::BackupKey;

use super::command::CmdRes;
use super::directory::DirRes;
use super::file::{AbsentRes, FileRes};
use super::mysql::{DatabaseRes, Grant, SqlRes, UserRes};
use super::package::{PkgRes, Want};
use super::replication::ReplicationRes;
use super::service::{SvcRes, SvcState};
use super::sysctl::SysctlRes;
use super::{Resource, parse_mode};
use crate::diagnostics::{FileProblems, Problem};
use crate::error::Error;
use crate::inventory::{Flavor, Host, Inventory, Role};
use crate::playbook::{Library, TaskSpec, task_problem};
use crate::secrets::Secrets;
use crate::sql::SourceSpec;
use crate::sql::{AuthOwned, Dialect};
use crate::tls::Tls;

/// One task on one host, rendered.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub host: String,
    /// Playbook file stem.
    pub playbook: String,
    /// Its playbook's writes replicate (`crate::playbook::Playbook::replicated`).
    pub replicated: bool,
    pub name: String,
    pub tags: Vec<String>,
    /// Handler names this task notifies when it changes.
    pub notify: Vec<String>,
    pub handler: bool,
    /// A handler, or a package upgrade, run one database server of a cluster at a time
    /// (`crate::runbooks::rolling`).
    pub rolling: bool,
    /// Tasks on the same host that run first (by name).
    pub after: Vec<String>,
    /// Tasks on other hosts that run first: (host, task).
    pub needs: Vec<(String, String)>,
    pub resource: Resource,
}

thread_local! {
    /// Set when a template called `secret()` during the current render. Renders are
    /// synchronous on one thread, so a thread-local flag is exact.
    static SECRET_USED: Cell<bool> = const { Cell::new(false) };
}

/// The flavor's packages, service name and config path, as templates see them (`db.*`).
#[derive(Serialize)]
struct DbLayout {
    packages: &'static str,
    backup_packages: &'static str,
    /// The server binaries alone (no service), for `backup-verify`'s scratch server.
    scratch_server_packages: &'static str,
    service: &'static str,
    /// Debian's source package of the server (`mariadb`, `mysql-9.7`): the apt pin of
    /// `server_version` holds every binary package built from it.
    server_source: String,
    /// The tool that upgrades the system tables after a new server version starts
    /// (`mariadb-upgrade`, MariaDB KB "mariadb-upgrade"); "" for MySQL 8.0.16+, whose
    /// server does it at startup (MySQL manual "What the MySQL Upgrade Process Upgrades").
    upgrade_tool: &'static str,
    /// The server's pid file (Debian's 50-server.cnf / mysqld.cnf: /run/mysqld/mysqld.pid).
    pidfile: &'static str,
    cnf_path: &'static str,
    /// The option file of the settings the server takes live (`crate::sql::settings`):
    /// changing it needs no restart. Read after the distribution's files, as `cnf_path`.
    cnf_live_path: &'static str,
    /// The server's client, and the statement that reloads TLS material without a restart
    /// (MariaDB 10.4+: FLUSH LOCAL SSL; MySQL 8.0.16+: ALTER INSTANCE RELOAD TLS, which
    /// is not binlogged).
    client: &'static str,
    /// The package holding the client (proxy hosts' checks).
    client_package: &'static str,
    reload_tls: &'static str,
    /// The replica status statement and the names of its fields (proxy checks).
    show_replica_status: &'static str,
    replica: crate::sql::ReplicaFields,
    /// Stop and start the applier alone (a backup's consistent pause).
    stop_replica_sql: &'static str,
    start_replica_sql: &'static str,
    /// The seed's hardening statements for this dialect, and a query that returns 1 when
    /// they have nothing left to do.
    hardening_sql: String,
    hardening_check: String,
    /// The primary side of semi-sync switched on, and a query that returns 1 when it is
    /// (`playbooks/semi-sync.yml`).
    semi_sync_primary_on: String,
    semi_sync_primary_check: &'static str,
    /// The option that sizes the redo log ([`Dialect::redo_log_option`]).
    redo_log_option: &'static str,
    /// The logical dump tool, and its options recording the binary log and GTID position
    /// as a comment (MariaDB: `--master-data=2 --gtid`; MySQL 8.0.26+: `--source-data=2`,
    /// GTID_PURGED written by default with gtid_mode ON).
    dump_tool: &'static str,
    dump_position_options: &'static str,
    /// The binary log reader (`backup-verify` reads every archived event with it).
    binlog_reader: &'static str,
    /// A scratch server for `backup-verify`: the server binary, the command that creates
    /// an empty data folder (the folder is appended as `--datadir=`), and the options it
    /// starts with beside datadir, socket and pid file.
    server_binary: &'static str,
    scratch_init: &'static str,
    scratch_options: String,
    /// A new replica pulls its seed copy from its source over SSH between the cluster's
    /// database hosts (MariaDB: mariadb-backup's stream through the seeding key's forced
    /// command; issue 26). MySQL's CLONE pulls over the server's own protocol already.
    seeds_over_ssh: bool,
}

fn layout(f: Flavor, d: Dialect, version: &str) -> DbLayout {
    let users = if d == Dialect::MariaDb {
        "mysql.global_priv"
    } else {
        "mysql.user"
    };
    let hardening_sql = d.hardening().join("\n");
    let hardening_check = format!(
        "SELECT (SELECT COUNT(*) FROM {users} WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'))) \
         + (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test') \
         + (SELECT COUNT(*) FROM mysql.db WHERE Db = 'test' OR Db LIKE 'test\\\\_%') = 0"
    );
    match f {
        Flavor::Mariadb => DbLayout {
            packages: "mariadb-server mariadb-client mariadb-backup",
            backup_packages: "mariadb-client mariadb-backup",
            scratch_server_packages: "mariadb-server-core",
            server_source: "mariadb".into(),
            upgrade_tool: "mariadb-upgrade",
            service: d.service(),
            pidfile: d.pidfile(),
            cnf_path: d.cnf_path(),
            cnf_live_path: "/etc/mysql/mariadb.conf.d/91-dbfleet-live.cnf",
            client: "mariadb",
            client_package: "mariadb-client",
            // LOCAL: a plain FLUSH is binlogged, and on a replica that is an errant
            // transaction under its own server_id, which stops replication in strict mode
            // (seen in the lab).
            reload_tls: "FLUSH LOCAL SSL",
            redo_log_option: d.redo_log_option(),
            dump_tool: "mariadb-dump",
            dump_position_options: "--master-data=2 --gtid",
            binlog_reader: "mariadb-binlog",
            server_binary: "mariadbd",
            scratch_init: "mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal --skip-test-db",
            scratch_options: format!("--{}=48M", d.redo_log_option().replace('_', "-")),
            seeds_over_ssh: true,
            show_replica_status: d.show_replica_status(),
            replica: d.replica_fields(),
            stop_replica_sql: d.stop_replica_sql(),
            start_replica_sql: d.start_replica_sql(),
            hardening_sql,
            hardening_check,
            semi_sync_primary_on: d.set_semi_sync_primary(true),
            semi_sync_primary_check: d.semi_sync_primary_is_on(),
        },
        Flavor::Mysql => DbLayout {
            packages: "mysql-server mysql-client",
            // mysqldump is in mysql-client; mysqlbinlog in mysql-server-core. No physical
            // backup tool: validate refuses `kind: physical` for MySQL.
            backup_packages: "mysql-client mysql-server-core",
            scratch_server_packages: "mysql-server-core",
            server_source: format!("mysql-{version}"),
            upgrade_tool: "",
            service: d.service(),
            pidfile: d.pidfile(),
            cnf_path: d.cnf_path(),
            cnf_live_path: "/etc/mysql/mysql.conf.d/zz-dbfleet-live.cnf",
            client: "mysql",
            client_package: "mysql-client",
            reload_tls: "ALTER INSTANCE RELOAD TLS",
            redo_log_option: d.redo_log_option(),
            dump_tool: "mysqldump",
            dump_position_options: "--source-data=2",
            binlog_reader: "mysqlbinlog",
            server_binary: "mysqld",
            // Quiet: --initialize prints a notice per step on stderr.
            scratch_init: "mysqld --no-defaults --initialize-insecure --user=root --log-error-verbosity=1",
            // The dump sets GTID_PURGED (gtid_mode ON on the fleet); no X protocol port;
            // no import/export folder (Debian's /var/lib/mysql-files is the server's own).
            scratch_options: format!(
                "--{}=48M --gtid-mode=ON --enforce-gtid-consistency=ON --mysqlx=OFF --secure-file-priv=NULL",
                d.redo_log_option().replace('_', "-")
            ),
            seeds_over_ssh: false,
            show_replica_status: d.show_replica_status(),
            replica: d.replica_fields(),
            stop_replica_sql: d.stop_replica_sql(),
            start_replica_sql: d.start_replica_sql(),
            hardening_sql,
            hardening_check,
            semi_sync_primary_on: d.set_semi_sync_primary(true),
            semi_sync_primary_check: d.semi_sync_primary_is_on(),
        },
    }
}

#[derive(Serialize)]
struct HostView<'a> {
    name: &'a str,
    address: &'a str,
    roles: Vec<&'static str>,
    server_id: Option<u32>,
    source: Option<&'a str>,
    source_address: Option<&'a str>,
    cluster: &'a str,
    is_primary: bool,
    is_replica: bool,
    is_database: bool,
    is_proxy: bool,
    is_backup: bool,
    /// Runs the failover monitor (`monitor` role).
    is_monitor: bool,
    /// A member of a synchronous cluster (`member` role): Galera or Group Replication,
    /// as `replication` says.
    is_member: bool,
    /// The host's `replication` var: `async`, `galera` or `group`.
    replication: &'a str,
    /// The group's name (`group_replication_group_name`, a UUID) for a member of a
    /// replication group ([`group_name`]); empty otherwise.
    group_name: String,
    /// The first member of its Galera cluster in inventory order: the one a new cluster is
    /// bootstrapped from, and where accounts and databases are written (Galera replicates
    /// them to the others).
    is_first_member: bool,
    /// The SSH user dbfleet connects as (the inventory's, else root): the failover
    /// monitors' key is authorized for it.
    ssh_user: &'a str,
    /// May be promoted (`candidate` not false).
    candidate: bool,
    /// The port sshd listens on (the inventory's, else 22).
    ssh_port: u16,
}

fn host_view<'a>(inv: &'a Inventory, h: &'a Host) -> HostView<'a> {
    HostView {
        name: &h.name,
        address: &h.address,
        roles: h.roles.iter().map(|r| r.as_str()).collect(),
        server_id: h.server_id,
        source: h.source.as_deref(),
        source_address: h
            .source
            .as_deref()
            .and_then(|s| inv.host(s))
            .map(|s| s.address.as_str()),
        cluster: &h.cluster,
        is_primary: h.has(Role::Primary),
        is_replica: h.has(Role::Replica),
        is_database: h.is_database(),
        is_proxy: h.has(Role::Proxy),
        is_backup: h.has(Role::Backup),
        is_monitor: h.has(Role::Monitor),
        is_member: h.has(Role::Member),
        replication: h.replication(),
        group_name: if h.has(Role::Member) {
            group_name(&inv.name, &h.cluster)
        } else {
            String::new()
        },
        is_first_member: inv
            .first_member(&h.cluster)
            .is_some_and(|o| o.name == h.name),
        ssh_user: h.ssh.user.as_deref().unwrap_or("root"),
        candidate: h.candidate,
        ssh_port: h.ssh.port.unwrap_or(22),
    }
}

/// Where `host` stands in its synchronous cluster (Galera or a replication group): whether
/// it is the first member in inventory order (the one a new cluster is founded from), and
/// the other members as (name, address).
fn member_of(inv: &Inventory, host: &Host) -> (bool, Vec<(String, String)>) {
    let first = inv
        .first_member(&host.cluster)
        .is_some_and(|h| h.name == host.name);
    let peers = inv
        .cluster_databases(&host.cluster)
        .filter(|h| h.has(Role::Member) && h.name != host.name)
        .map(|h| (h.name.clone(), h.address.clone()))
        .collect();
    (first, peers)
}

/// The name of cluster `cluster`'s replication group in fleet `fleet`: a UUID derived from
/// both names (SHA-256, laid out as an RFC 9562 version 8 UUID), so every member renders
/// the same one and no two clusters of a fleet share it. MySQL requires a valid UUID
/// (MySQL manual, `group_replication_group_name`); it also names the group's GTIDs.
pub fn group_name(fleet: &str, cluster: &str) -> String {
    let h = crate::tasks::file::sha256_hex(format!("dbfleet group {fleet}/{cluster}").as_bytes());
    let mut b: Vec<char> = h[..32].chars().collect();
    b[12] = '8';
    // The variant: 10xx.
    let v = u8::from_str_radix(&b[16].to_string(), 16).unwrap_or(0);
    b[16] = char::from_digit(u32::from((v & 0x3) | 0x8), 16).unwrap_or('8');
    let s: String = b.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// `copy: {src: "@dbfleet"}` copies the running dbfleet executable (the failover
/// monitors' binary; the target must be the same architecture, with glibc as new).
pub const SELF_EXECUTABLE: &str = "@dbfleet";

/// The running executable's bytes, read once per process.
///
/// Errors: the executable cannot be found or read.
fn self_executable() -> Result<Vec<u8>, String> {
    static EXE: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let exe =
            std::env::current_exe().map_err(|e| format!("finding the dbfleet executable: {e}"))?;
        std::fs::read(&exe).map_err(|e| format!("reading {}: {e}", exe.display()))
    })
    .clone()
}

/// The instructions one render (or expression) may run: 50 million. The largest built-in
/// template, a firewall of 10,000 hosts, needs under 1 % of it.
pub const TEMPLATE_FUEL: u64 = 50_000_000;

/// The template environment: strict undefined, trailing newlines kept, every template of
/// the library loaded, and `secret()` bound to `secrets`.
pub fn environment(
    lib: &Library,
    secrets: Arc<Secrets>,
    tls: Arc<Tls>,
    backup_key: Arc<BackupKey>,
) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Fuel bounds every render and expression: a template with nested loops over large
    // ranges ends with an error instead of running forever (issue 11).
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_keep_trailing_newline(true);
    for (name, text) in &lib.templates {
        env.add_template_owned(name.clone(), text.clone())
            .map_err(|e| template_error(lib, name, &e))?;
    }
    // Single-quotes a value for sh (paths, names in generated scripts).
    env.add_filter("shquote", |v: String| -> String { super::q(&v) });
    // Single-quotes a value as an SQL string literal (crate::sql::quote).
    env.add_filter("sqlquote", |v: String| -> String { crate::sql::quote(&v) });
    env.add_filter("optquote", |v: String| -> String {
        super::option_file_value(&v)
    });
    env.add_filter("jsonquote", |v: String| -> String {
        serde_json::to_string(&v).unwrap_or_default()
    });
    let t = tls.clone();
    env.add_function("tls_ca", move || -> String { t.ca_pem.clone() });
    let t = tls.clone();
    env.add_function(
        "tls_cert",
        move |host: String| -> Result<String, minijinja::Error> {
            t.hosts
                .get(&host)
                .map(|c| c.0.clone())
                .ok_or_else(|| no_tls(&host))
        },
    );
    let t = tls;
    env.add_function(
        "tls_key",
        move |host: String| -> Result<String, minijinja::Error> {
            // A private key is a secret: the file holding it is sensitive.
            SECRET_USED.with(|c| c.set(true));
            t.hosts
                .get(&host)
                .map(|c| c.1.clone())
                .ok_or_else(|| no_tls(&host))
        },
    );
    // The fleet's SSH keys (src/backup/keys.rs). A private half marks the file that holds
    // it sensitive.
    type Get = fn(&BackupKey) -> Result<String, String>;
    let keys: [(&'static str, bool, Get); 7] = [
        // The backup transfers' client key.
        ("backup_ssh_key", true, BackupKey::private),
        ("backup_ssh_public_key", false, BackupKey::public),
        // The backup server's host key.
        ("backup_host_key", true, BackupKey::host_private),
        // The failover monitors' key.
        ("monitor_ssh_key", true, BackupKey::monitor_private),
        ("monitor_ssh_public_key", false, BackupKey::monitor_public),
        // The key a replica pulls its seed copy with, from its source (issue 26).
        ("seed_ssh_key", true, BackupKey::seed_private),
        ("seed_ssh_public_key", false, BackupKey::seed_public),
    ];
    for (name, private, get) in keys {
        let k = backup_key.clone();
        env.add_function(name, move || -> Result<String, minijinja::Error> {
            if private {
                SECRET_USED.with(|c| c.set(true));
            }
            get(&k).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
        });
    }
    let k = backup_key.clone();
    env.add_function(
        "known_hosts_of",
        move |address: String| -> Result<String, minijinja::Error> {
            // The fleet's known_hosts lines naming `address` (port 22, or `[address]:port`):
            // what a replica pins to pull its seed copy from its source. One host's, not the
            // fleet's: a rebuilt host's new key changes no other host's file.
            let all = k
                .known_hosts()
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))?;
            Ok(crate::backup::keys::lines_naming(&all, &address))
        },
    );
    let k = backup_key.clone();
    env.add_function(
        "monitor_known_hosts",
        move || -> Result<String, minijinja::Error> {
            k.known_hosts()
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
        },
    );
    let k = backup_key;
    env.add_function(
        "backup_host_public_key",
        move || -> Result<String, minijinja::Error> {
            k.host_public()
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
        },
    );
    env.add_function(
        "secret",
        move |name: String| -> Result<String, minijinja::Error> {
            SECRET_USED.with(|c| c.set(true));
            secrets
                .get(&name)
                .map(|s| s.expose().to_string())
                .map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })
        },
    );
    Ok(env)
}

fn no_tls(host: &str) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("no TLS certificate for `{host}` (certificates are made for database hosts)"),
    )
}

/// A located diagnostic for a template error (syntax, undefined variable, failed secret).
pub fn template_error(lib: &Library, name: &str, e: &minijinja::Error) -> Error {
    let text = lib.templates.get(name).cloned().unwrap_or_default();
    let span = e
        .range()
        .map(|r| (r.start, r.end - r.start))
        .unwrap_or((0, 0));
    let mut msg = e.kind().to_string();
    if let Some(d) = e.detail() {
        msg = format!("{msg}: {d}");
    }
    let help = match e.kind() {
        minijinja::ErrorKind::OutOfFuel => format!(
            "a render may run {TEMPLATE_FUEL} instructions: a loop here is too large, or nested"
        ),
        _ => "templates render with strict undefined: every variable must exist (see playbooks/defaults.yml)".into(),
    };
    let p = Problem::at(msg, span, "here").help(help);
    Error::Invalid(Box::new(FileProblems::new(
        &format!("templates/{name}"),
        text,
        vec![p],
    )))
}

/// Resolves every host's tasks (all hosts; `--limit` and `--tags` act on the graph).
///
/// Errors: [`Error::Invalid`] for a playbook or template problem (located),
/// [`Error::Secret`] for a secret that cannot be resolved.
pub fn resolve(
    inv: &Inventory,
    lib: &Library,
    secrets: Arc<Secrets>,
    tls: Arc<Tls>,
    backup_key: Arc<crate::backup::keys::BackupKey>,
) -> Result<Vec<Resolved>, Error> {
    let backup_key_placeholders = backup_key.placeholders();
    let env = environment(lib, secrets, tls, backup_key)?;
    let hosts_view: Vec<HostView> = inv.hosts.iter().map(|h| host_view(inv, h)).collect();
    let fleet = serde_json::json!({"name": inv.name, "flavor": inv.flavor.as_str(), "version": inv.version});
    let dialect = Dialect::of(inv.flavor, &inv.version);
    let db = layout(inv.flavor, dialect, &inv.version);
    // Handlers by name across the library, to check `notify` targets.
    let handler_names: Vec<&str> = lib
        .playbooks
        .iter()
        .flat_map(|p| p.3.handlers.iter().map(|h| h.name.value.as_str()))
        .collect();
    let rolling_handlers: Vec<&str> = lib
        .playbooks
        .iter()
        .flat_map(|p| p.3.handlers.iter().filter(|h| h.rolling))
        .map(|h| h.name.value.as_str())
        .collect();

    // What every host's context shares is made into template values once: a minijinja
    // value is reference-counted, so each host's context holds the fleet-wide parts by
    // reference. Serialising them per host made `validate` quadratic in the host count
    // (issue 11: 5 s at 1,000 hosts).
    let shared = [
        ("fleet", Value::from_serialize(&fleet)),
        ("db", Value::from_serialize(&db)),
        ("hosts", Value::from_serialize(&hosts_view)),
        // The proxies alone: a loop over them on each host must not walk the whole fleet.
        (
            "proxies",
            Value::from_serialize(hosts_view.iter().filter(|v| v.is_proxy).collect::<Vec<_>>()),
        ),
        // The failover monitors (`monitor` role), and the inventory they get a copy of.
        (
            "monitors",
            Value::from_serialize(
                hosts_view
                    .iter()
                    .filter(|v| v.is_monitor)
                    .collect::<Vec<_>>(),
            ),
        ),
        ("inventory_text", Value::from(inv.text.clone())),
        ("users", Value::from_serialize(&inv.users)),
        ("databases", Value::from_serialize(&inv.databases)),
        ("firewall", Value::from_serialize(&inv.firewall)),
        ("backups", Value::from_serialize(&inv.backups)),
        ("backup_verify", Value::from_serialize(&inv.backup_verify)),
        ("backup_offsite", Value::from_serialize(&inv.backup_offsite)),
        (
            "backup_timezone",
            Value::from_serialize(&inv.backup_timezone),
        ),
        ("monitoring", Value::from_serialize(&inv.monitoring)),
    ];
    // Per cluster, built once: its database hosts and its proxies (what a proxy checks, and
    // the monitor accounts a primary makes), so no host's templates walk the whole fleet.
    let position: BTreeMap<&str, usize> = inv
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    let mut cluster_values: BTreeMap<&str, (Value, Value)> = BTreeMap::new();
    for h in &inv.hosts {
        cluster_values.entry(h.cluster.as_str()).or_insert_with(|| {
            let members: Vec<&HostView> = inv
                .cluster_databases(&h.cluster)
                .filter_map(|m| position.get(m.name.as_str()).map(|&i| &hosts_view[i]))
                .collect();
            let proxies: Vec<&HostView> = hosts_view
                .iter()
                .filter(|v| v.is_proxy && v.cluster == h.cluster)
                .collect();
            (
                Value::from_serialize(&members),
                Value::from_serialize(&proxies),
            )
        });
    }
    // The backup server, for the scripts that reach it (backups name one).
    let backup_server = inv
        .backups
        .first()
        .and_then(|j| position.get(j.server.as_str()))
        .map(|&i| Value::from_serialize(&hosts_view[i]))
        .unwrap_or(Value::UNDEFINED);
    let ctx = Context {
        inv,
        lib,
        dialect,
        shared: &shared,
        cluster_values: &cluster_values,
        backup_server: &backup_server,
        handler_names: &handler_names,
        rolling_handlers: &rolling_handlers,
        placeholders: backup_key_placeholders,
    };
    // Hosts are independent: each thread resolves a run of them, and the runs are joined in
    // inventory order, so the result (and the first error) is what one thread would give.
    // Small fleets stay on this thread. A thread compiles each field's template once.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(inv.hosts.len().div_ceil(HOSTS_PER_THREAD))
        .max(1);
    let run = |hosts: &[Host], views: &[HostView]| -> Result<Vec<Resolved>, Error> {
        let cc = Compiled::new(&env);
        let mut out = Vec::new();
        for (h, view) in hosts.iter().zip(views) {
            let mine = resolve_host(&ctx, &cc, h, view)?;
            if out.is_empty() {
                // Hosts of one kind have about as many tasks: one allocation, not doublings
                // that move every task again.
                out.reserve(mine.len() * hosts.len());
            }
            out.extend(mine);
        }
        Ok(out)
    };
    if threads == 1 {
        return run(&inv.hosts, &hosts_view);
    }
    let per = inv.hosts.len().div_ceil(threads);
    let parts: Vec<Result<Vec<Resolved>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = inv
            .hosts
            .chunks(per)
            .zip(hosts_view.chunks(per))
            .map(|(hosts, views)| s.spawn(move || run(hosts, views)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::new();
    for part in parts {
        let part = part?;
        if out.is_empty() {
            out.reserve(part.len() * threads);
        }
        out.extend(part);
    }
    Ok(out)
}

/// Hosts below which a second thread costs more than it saves.
const HOSTS_PER_THREAD: usize = 64;

/// What every host's resolve reads: built once per pass.
struct Context<'a> {
    inv: &'a Inventory,
    lib: &'a Library,
    dialect: Dialect,
    shared: &'a [(&'static str, Value)],
    /// Per cluster: its database hosts and its proxies, as template values.
    cluster_values: &'a BTreeMap<&'a str, (Value, Value)>,
    backup_server: &'a Value,
    handler_names: &'a [&'a str],
    /// The handlers marked `rolling`: the only ones a `rolling` task may notify.
    rolling_handlers: &'a [&'a str],
    /// Render key material and the dbfleet executable as placeholders (offline, monitor).
    placeholders: bool,
}

/// Templates and expressions of task fields, compiled once and rendered for every host.
/// Compiling `when:` and field templates per host was a third of `validate` at 10,000
/// hosts (issue 11). The keys borrow the library's text (`'s`).
struct Compiled<'e, 's> {
    env: &'e Environment<'static>,
    templates: RefCell<HashMap<&'s str, Template<'e, 's>>>,
    expressions: RefCell<HashMap<&'s str, Rc<Expression<'e, 's>>>>,
}

impl<'e, 's> Compiled<'e, 's> {
    fn new(env: &'e Environment<'static>) -> Self {
        Compiled {
            env,
            templates: RefCell::new(HashMap::new()),
            expressions: RefCell::new(HashMap::new()),
        }
    }

    /// Renders `source` as a template (what `Environment::render_str` does, compiled once).
    ///
    /// Errors: minijinja's, for a syntax error or a failed render.
    fn render(&self, source: &'s str, ctx: &Value) -> Result<String, minijinja::Error> {
        let cached = self.templates.borrow().get(source).cloned();
        let t = match cached {
            Some(t) => t,
            None => {
                let t = self.env.template_from_str(source)?;
                self.templates.borrow_mut().insert(source, t.clone());
                t
            }
        };
        t.render(ctx)
    }

    /// Evaluates `source` as an expression (`loop:`, grants), compiled once.
    ///
    /// Errors: minijinja's, for a syntax error or a failed evaluation.
    fn eval(&self, source: &'s str, ctx: &Value) -> Result<Value, minijinja::Error> {
        self.expression(source)?.eval(ctx)
    }

    /// `source` compiled as an expression, once.
    ///
    /// Errors: minijinja's syntax error.
    fn expression(&self, source: &'s str) -> Result<Rc<Expression<'e, 's>>, minijinja::Error> {
        let cached = self.expressions.borrow().get(source).cloned();
        if let Some(e) = cached {
            return Ok(e);
        }
        let e = Rc::new(self.env.compile_expression(source)?);
        self.expressions.borrow_mut().insert(source, e.clone());
        Ok(e)
    }
}

/// One host's tasks, in playbook order, handlers last within each playbook.
fn resolve_host<'a>(
    c: &Context<'a>,
    cc: &Compiled<'_, 'a>,
    h: &'a Host,
    view: &HostView,
) -> Result<Vec<Resolved>, Error> {
    let Context {
        inv,
        lib,
        dialect,
        shared,
        cluster_values,
        backup_server,
        handler_names,
        rolling_handlers,
        placeholders,
    } = *c;
    let mut out = Vec::new();
    let mut ctx_map: BTreeMap<&str, Value> = shared.iter().cloned().collect();
    ctx_map.insert("host", Value::from_serialize(view));
    ctx_map.insert("vars", Value::from_serialize(&h.vars));
    ctx_map.insert(
        "live_settings",
        Value::from_serialize(crate::sql::settings::live(dialect, &h.vars)),
    );
    if let Some((members, proxies)) = cluster_values.get(h.cluster.as_str()) {
        ctx_map.insert("cluster_hosts", members.clone());
        ctx_map.insert("cluster_proxies", proxies.clone());
    }
    ctx_map.insert("backup_server", backup_server.clone());
    let base_ctx = Value::from_iter(ctx_map);
    // Two passes per host: every playbook's tasks first, then `after:` links, so a
    // playbook may run after one whose file sorts later.
    let mut last_of_playbook: BTreeMap<&str, String> = BTreeMap::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut first_index: Vec<(usize, &Vec<Spanned<String>>)> = Vec::new();
    for (stem, source, text, pb) in &lib.playbooks {
        for a in &pb.after {
            if !lib.playbooks.iter().any(|p| p.0 == a.value) {
                let names: Vec<&str> = lib.playbooks.iter().map(|p| p.0.as_str()).collect();
                let help = crate::diagnostics::did_you_mean(&a.value, names.iter().copied())
                    .unwrap_or_else(|| format!("playbooks: {}", names.join(", ")));
                let span = crate::diagnostics::span_of(&a.referenced, text);
                let p = Problem::at(
                    format!("`after: {}` names no playbook", a.value),
                    span,
                    "not a playbook",
                )
                .help(help);
                return Err(Error::Invalid(Box::new(FileProblems::new(
                    source,
                    text.clone(),
                    vec![p],
                ))));
            }
        }
        if !pb
            .roles
            .iter()
            .any(|r| r == "all" || Role::parse(r).is_some_and(|r| h.has(r)))
        {
            continue;
        }
        if let Some(w) = &pb.when {
            let problem = |msg: String| {
                let span = crate::diagnostics::span_of(&w.referenced, text);
                Error::Invalid(Box::new(FileProblems::new(
                    source,
                    text.clone(),
                    vec![Problem::at(msg, span, "this playbook's `when`")],
                )))
            };
            let applies = cc
                .expression(&w.value)
                .map_err(|e| problem(format!("bad `when`: {e}")))?
                .eval(&base_ctx)
                .map_err(|e| problem(format!("`when` failed: {e}")))?
                .is_true();
            if !applies {
                continue;
            }
        }
        let mut prev: Option<String> = None;
        let mut host_tasks = Vec::new();
        for (spec, handler) in pb
            .tasks
            .iter()
            .map(|t| (t, false))
            .chain(pb.handlers.iter().map(|t| (t, true)))
        {
            let ctxerr0 = |msg: String, help: Option<String>| {
                task_problem(source, text, &spec.name, msg, help)
            };
            // `loop:` makes the task once per element of a list, as `item`.
            let items: Vec<Option<Value>> = match &spec.loop_over {
                None => vec![None],
                Some(expr) => {
                    let v = cc
                        .eval(expr, &base_ctx)
                        .map_err(|e| ctxerr0(format!("bad `loop`: {e}"), None))?;
                    let it = v
                        .try_iter()
                        .map_err(|_| ctxerr0(format!("`loop: {expr}` is not a list"), None))?;
                    it.map(Some).collect()
                }
            };
            for item in items {
                let ctx = match &item {
                    Some(it) => minijinja::context! { item => it.clone(), ..base_ctx.clone() },
                    None => base_ctx.clone(),
                };
                let task_name = match &item {
                    Some(_) => cc
                        .render(&spec.name.value, &ctx)
                        .map_err(|e| ctxerr0(format!("rendering the name: {e}"), None))?,
                    None => spec.name.value.clone(),
                };
                let ctxerr = |msg: String, help: Option<String>| {
                    task_problem(source, text, &spec.name, msg, help)
                };
                if let Some(w) = &spec.when {
                    let expr = cc
                        .expression(w)
                        .map_err(|e| ctxerr(format!("bad `when`: {e}"), None))?;
                    if !expr
                        .eval(&ctx)
                        .map_err(|e| ctxerr(format!("`when` failed: {e}"), None))?
                        .is_true()
                    {
                        continue;
                    }
                }
                // Links, plans and `notify` name a task by host and name.
                if !names.insert(task_name.clone()) {
                    return Err(ctxerr(
                        format!("a second task named `{task_name}` on {}", h.name),
                        Some(
                            "task names are unique on a host (a `loop:` task's name must use `{{ item }}`)"
                                .into(),
                        ),
                    ));
                }
                if spec.rolling && !(h.is_database() && (handler || spec.package.is_some())) {
                    return Err(ctxerr(
                        "`rolling` is for handlers and package tasks of database hosts (a restart or an upgrade rolled through a cluster)".into(),
                        None,
                    ));
                }
                for n in &spec.notify {
                    if !handler_names.contains(&n.as_str()) {
                        let help =
                            crate::diagnostics::did_you_mean(n, handler_names.iter().copied());
                        return Err(ctxerr(format!("notifies unknown handler `{n}`"), help));
                    }
                    // A held-back upgrade runs in the roll: a handler it notifies must
                    // run there too, after it, not now before it.
                    if spec.rolling && !handler && !rolling_handlers.contains(&n.as_str()) {
                        return Err(ctxerr(
                            format!("a `rolling` task notifies `{n}`, which is not `rolling`"),
                            Some(
                                "mark the handler `rolling: true`, or notify it from another task"
                                    .into(),
                            ),
                        ));
                    }
                }
                let resource = build(
                    Scope {
                        cc,
                        lib,
                        inv,
                        dialect,
                        placeholders,
                    },
                    &ctx,
                    spec,
                    handler,
                    &task_name,
                )
                .map_err(|m| match m {
                    BuildError::Task(msg) => ctxerr(msg, None),
                    BuildError::Other(e) => e,
                })?;
                let mut needs = Vec::new();
                for need in &spec.needs {
                    let targets: Vec<String> = match need.on.as_str() {
                        "source" => h.source.iter().cloned().collect(),
                        "primary" => inv
                            .cluster_databases(&h.cluster)
                            .filter(|o| o.has(Role::Primary) && o.name != h.name)
                            .map(|o| o.name.clone())
                            .collect(),
                        "replicas" => inv
                            .cluster_databases(&h.cluster)
                            .filter(|o| o.has(Role::Replica) && o.name != h.name)
                            .map(|o| o.name.clone())
                            .collect(),
                        // A Galera member joins once the member a new cluster starts from
                        // runs.
                        "first_member" => inv
                            .first_member(&h.cluster)
                            .filter(|o| o.name != h.name)
                            .map(|o| o.name.clone())
                            .into_iter()
                            .collect(),
                        // Galera members join one at a time, in inventory order: two
                        // joiners at once may each ask the other for its state (a member's
                        // preferred donors are the members declared after it, then the
                        // ones before) and wait for ever (seen in the lab: a rejoin after a
                        // lost quorum stayed "Joining: receiving State Transfer").
                        "previous_member" => {
                            let members: Vec<&crate::inventory::Host> = inv
                                .cluster_databases(&h.cluster)
                                .filter(|o| o.has(Role::Member))
                                .collect();
                            members
                                .iter()
                                .position(|o| o.name == h.name)
                                .and_then(|i| i.checked_sub(1))
                                .map(|i| members[i].name.clone())
                                .into_iter()
                                .collect()
                        }
                        other => match other.split_once(':') {
                            Some(("role", r)) => {
                                let role = Role::parse(r).ok_or_else(|| {
                                    ctxerr(format!("unknown role `{r}` in needs"), None)
                                })?;
                                inv.hosts
                                    .iter()
                                    .filter(|o| o.has(role) && o.name != h.name)
                                    .map(|o| o.name.clone())
                                    .collect()
                            }
                            Some(("host", n)) => vec![n.to_string()],
                            _ => {
                                return Err(ctxerr(
                                    format!(
                                        "needs.on `{other}` is not source, primary, replicas, first_member, previous_member, role:NAME or host:NAME"
                                    ),
                                    None,
                                ));
                            }
                        },
                    };
                    needs.extend(targets.into_iter().map(|t| (t, need.task.clone())));
                }
                let after = if handler {
                    Vec::new()
                } else {
                    match prev.take() {
                        Some(p) => vec![p],
                        None => {
                            first_index.push((out.len() + host_tasks.len(), &pb.after));
                            Vec::new()
                        }
                    }
                };
                if !handler {
                    prev = Some(task_name.clone());
                }
                host_tasks.push(Resolved {
                    host: h.name.clone(),
                    playbook: stem.clone(),
                    replicated: pb.replicated,
                    name: task_name.clone(),
                    tags: spec.tags.clone(),
                    notify: spec.notify.clone(),
                    handler,
                    rolling: spec.rolling,
                    after,
                    needs,
                    resource,
                });
            }
        }
        if let Some(p) = prev {
            last_of_playbook.insert(stem, p);
        }
        out.extend(host_tasks);
    }
    for (i, afters) in first_index {
        out[i].after = afters
            .iter()
            .filter_map(|a| last_of_playbook.get(a.value.as_str()).cloned())
            .collect();
    }
    // A handler left out on this host by its `when:` (`writable primary` on a replica)
    // is not notified here: no pending marker is ever left for it.
    let present: BTreeSet<String> = out[..]
        .iter()
        .filter(|t| t.handler)
        .map(|t| t.name.clone())
        .collect();
    for t in &mut out[..] {
        t.notify.retain(|n| present.contains(n));
    }
    Ok(out)
}

/// The inventory host whose tasks `ctx` renders (`host.name`).
///
/// Errors: [`BuildError::Task`] when that name is not in the inventory.
fn this_host<'i>(ctx: &Value, inv: &'i Inventory) -> Result<&'i Host, BuildError> {
    let me = ctx
        .get_attr("host")
        .and_then(|h| h.get_attr("name"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    inv.host(&me)
        .ok_or_else(|| BuildError::Task(format!("host `{me}` is not in the inventory")))
}

enum BuildError {
    Task(String),
    Other(Error),
}

impl From<String> for BuildError {
    fn from(s: String) -> Self {
        BuildError::Task(s)
    }
}

/// Renders a field that may not hold a secret.
fn field<'s>(
    cc: &Compiled<'_, 's>,
    ctx: &Value,
    what: &str,
    s: &'s str,
) -> Result<String, BuildError> {
    // Text without a `{` has no tag, expression or comment: it renders as itself, and most
    // fields are such literals (compiling each for each host was a quarter of validate).
    if !s.contains('{') {
        return Ok(s.to_string());
    }
    SECRET_USED.with(|c| c.set(false));
    let out = cc
        .render(s, ctx)
        .map_err(|e| BuildError::Task(format!("rendering {what}: {e:#}")))?;
    if SECRET_USED.with(|c| c.get()) {
        return Err(BuildError::Task(format!(
            "{what} uses a secret; secrets may appear in file contents only"
        )));
    }
    Ok(out)
}

fn mode(s: &str) -> Result<u32, BuildError> {
    parse_mode(s)
        .ok_or_else(|| BuildError::Task(format!("mode `{s}` is not an octal mode like \"0644\"")))
}

/// What every task of a resolve pass is built against: `'s` is the library's text, which
/// the compiled templates borrow.
#[derive(Clone, Copy)]
struct Scope<'a, 'e, 's> {
    cc: &'a Compiled<'e, 's>,
    lib: &'a Library,
    inv: &'a Inventory,
    dialect: Dialect,
    placeholders: bool,
}

fn build<'s>(
    scope: Scope<'_, '_, 's>,
    ctx: &Value,
    spec: &'s TaskSpec,
    handler: bool,
    task_name: &str,
) -> Result<Resource, BuildError> {
    let Scope {
        cc,
        lib,
        inv,
        dialect,
        placeholders,
    } = scope;
    let kinds = [
        spec.mysql_user.is_some(),
        spec.mysql_database.is_some(),
        spec.sql.is_some(),
        spec.replication.is_some(),
        spec.primary.is_some(),
        spec.galera.is_some(),
        spec.group.is_some(),
        spec.package.is_some(),
        spec.template.is_some(),
        spec.copy.is_some(),
        spec.file.is_some(),
        spec.directory.is_some(),
        spec.service.is_some(),
        spec.sysctl.is_some(),
        spec.command.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("a task needs exactly one kind: package, template, copy, file, directory, service, sysctl, command, mysql_user, mysql_database, sql, replication, primary, galera or group".to_string().into());
    }
    if let Some(u) = &spec.mysql_user {
        // The password is the one field that may hold a secret: it becomes a hash here.
        SECRET_USED.with(|c| c.set(false));
        let password = cc
            .render(&u.password, ctx)
            .map_err(|e| BuildError::Task(format!("rendering password: {e:#}")))?;
        if password.is_empty() {
            return Err("the user's password is empty".to_string().into());
        }
        let (auth, _plain) = dialect.auth(&password);
        let grants_v = cc
            .eval(&u.grants, ctx)
            .map_err(|e| BuildError::Task(format!("evaluating grants: {e}")))?;
        let mut grants = Vec::new();
        let list: Vec<Value> = match grants_v.try_iter() {
            Ok(it) if grants_v.as_str().is_none() => it.collect(),
            _ => vec![grants_v.clone()],
        };
        for g in list {
            let text = g
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| g.to_string());
            grants.push(Grant::parse(dialect, &text).ok_or_else(|| {
                BuildError::Task(format!("grant `{text}` is not `PRIVILEGES ON OBJECT`"))
            })?);
        }
        let require_ssl = cc
            .eval(&u.require_ssl, ctx)
            .map_err(|e| BuildError::Task(format!("evaluating require_ssl: {e}")))?
            .is_true();
        let auth: AuthOwned = auth;
        return Ok(Resource::User(UserRes {
            dialect,
            name: field(cc, ctx, "user name", &u.name)?,
            host: field(cc, ctx, "user host", &u.host)?,
            auth,
            require_ssl,
            grants,
        }));
    }
    if let Some(d) = &spec.mysql_database {
        return Ok(Resource::Database(DatabaseRes {
            dialect,
            name: field(cc, ctx, "database name", &d.name)?,
            charset: field(cc, ctx, "charset", &d.charset)?,
            collation: field(cc, ctx, "collation", &d.collation)?,
        }));
    }
    if let Some(r) = &spec.replication {
        let source_name = field(cc, ctx, "source", &r.source)?;
        let src = inv
            .host(&source_name)
            .ok_or_else(|| BuildError::Task(format!("source `{source_name}` is not a host")))?;
        SECRET_USED.with(|c| c.set(false));
        let password = cc
            .render(&r.password, ctx)
            .map_err(|e| BuildError::Task(format!("rendering password: {e:#}")))?;
        let port = src
            .vars
            .get("port")
            .and_then(|p| p.as_u64())
            .unwrap_or(3306) as u16;
        return Ok(Resource::Replication(ReplicationRes {
            dialect,
            source_name: source_name.clone(),
            source_ssh_user: src.ssh.user.clone().unwrap_or_else(|| "root".into()),
            source_ssh_port: src.ssh.port.unwrap_or(22),
            source: SourceSpec {
                host: src.address.clone(),
                port,
                user: field(cc, ctx, "user", &r.user)?,
                password,
                ssl_ca: "/etc/mysql/dbfleet-tls/ca.pem".into(),
                // Seconds between a replica's tries to reach its source: one, as
                // orchestrator recommends, so a source back from a stall is followed at
                // once (its commits wait for a semi-sync replica meanwhile).
                connect_retry: 1,
            },
        }));
    }
    if let Some(p) = &spec.primary {
        let host = this_host(ctx, inv)?;
        let semi_sync = cc
            .eval(&p.semi_sync, ctx)
            .map_err(|e| BuildError::Task(format!("evaluating semi_sync: {e}")))?
            .is_true();
        return Ok(Resource::Primary(super::primary::PrimaryRes {
            dialect,
            semi_sync,
            cluster: host.cluster.clone(),
            peers: inv
                .cluster_databases(&host.cluster)
                .filter(|h| h.name != host.name)
                .map(|h| (h.name.clone(), h.address.clone()))
                .collect(),
            gtid_warn_s: host.gtid_consistency_warn_s(),
        }));
    }
    if spec.galera.is_some() {
        let host = this_host(ctx, inv)?;
        let (first, peers) = member_of(inv, host);
        return Ok(Resource::Galera(super::galera::GaleraRes {
            cluster: host.cluster.clone(),
            first,
            peers,
            service: dialect.service().to_string(),
            pidfile: dialect.pidfile().to_string(),
            client: dialect.client().to_string(),
        }));
    }
    if let Some(g) = &spec.group {
        let host = this_host(ctx, inv)?;
        let (first, peers) = member_of(inv, host);
        let password = cc
            .render(&g.password, ctx)
            .map_err(|e| BuildError::Task(format!("rendering password: {e:#}")))?;
        return Ok(Resource::Group(super::group::GroupRes {
            cluster: host.cluster.clone(),
            group_name: group_name(&inv.name, &host.cluster),
            first,
            peers,
            recovery_user: field(cc, ctx, "user", &g.user)?,
            recovery_password: password,
            service: dialect.service().to_string(),
            pidfile: dialect.pidfile().to_string(),
            client: dialect.client().to_string(),
        }));
    }
    if let Some(q) = &spec.sql {
        return Ok(Resource::Sql(SqlRes {
            dialect,
            name: task_name.to_string(),
            run: field(cc, ctx, "sql", &q.run)?,
            unless: field(cc, ctx, "unless", &q.unless)?,
            destroys: q.destroys.clone(),
        }));
    }
    if let Some(p) = &spec.package {
        let mut names = Vec::new();
        for n in &p.names {
            names.extend(
                field(cc, ctx, "package name", n)?
                    .split_whitespace()
                    .map(String::from),
            );
        }
        let present = match p.state.as_str() {
            "present" => true,
            "absent" => false,
            s => return Err(format!("package state `{s}` is not present or absent").into()),
        };
        let version = match p.version.as_deref() {
            None => Want::Installed,
            Some(v) => match field(cc, ctx, "package version", v)?.as_str() {
                "installed" => Want::Installed,
                "latest" => Want::Latest,
                v if crate::inventory::vartype::is_debian_version(v) => Want::Exact(v.to_string()),
                v => {
                    return Err(format!(
                        "package version `{v}` is not installed, latest or a Debian version (1:10.11.19-0+deb12u1)"
                    )
                    .into());
                }
            },
        };
        return Ok(Resource::Packages(PkgRes {
            names,
            present,
            version,
        }));
    }
    if let Some(f) = spec.template.as_ref().or(spec.copy.as_ref()) {
        let is_template = spec.template.is_some();
        let dest = field(cc, ctx, "dest", &f.dest)?;
        SECRET_USED.with(|c| c.set(false));
        let content = match (&f.src, &f.content) {
            // The running dbfleet executable: the failover monitors run it (the monitor's
            // own engine renders nothing it applies, so it never reads itself).
            (Some(src), None) if !is_template && src == SELF_EXECUTABLE => {
                if placeholders {
                    b"<the dbfleet executable>".to_vec()
                } else {
                    self_executable().map_err(BuildError::Task)?
                }
            }
            (Some(src), None) => {
                let text = lib.templates.get(src).ok_or_else(|| {
                    BuildError::Task(format!("template `{src}` not found in templates/"))
                })?;
                if is_template {
                    let t = cc
                        .env
                        .get_template(src)
                        .map_err(|e| BuildError::Other(template_error(lib, src, &e)))?;
                    t.render(ctx)
                        .map_err(|e| BuildError::Other(template_error(lib, src, &e)))?
                } else {
                    text.clone()
                }
                .into_bytes()
            }
            (None, Some(c)) if is_template => cc
                .render(c, ctx)
                .map_err(|e| BuildError::Task(format!("rendering content: {e:#}")))?
                .into_bytes(),
            (None, Some(c)) => c.clone().into_bytes(),
            _ => return Err("give exactly one of `src` and `content`".to_string().into()),
        };
        let sensitive = SECRET_USED.with(|c| c.get());
        let m = mode(&f.mode)?;
        if sensitive && m & 0o007 != 0 {
            return Err(format!(
                "{dest} holds a secret but mode {m:04o} lets others read it; use 0600 or 0640"
            )
            .into());
        }
        return Ok(Resource::File(FileRes {
            kind: if is_template {
                crate::tasks::Kind::Template
            } else {
                crate::tasks::Kind::Copy
            },
            path: dest,
            content,
            mode: m,
            owner: field(cc, ctx, "owner", &f.owner)?,
            group: field(cc, ctx, "group", &f.group)?,
            sensitive,
            validate: f
                .validate
                .as_deref()
                .map(|v| field(cc, ctx, "validate", v))
                .transpose()?,
        }));
    }
    if let Some(a) = &spec.file {
        if a.state != "absent" {
            return Err(
                "`file:` removes files: state must be `absent` (use template or copy to create)"
                    .to_string()
                    .into(),
            );
        }
        return Ok(Resource::Absent(AbsentRes {
            path: field(cc, ctx, "path", &a.path)?,
        }));
    }
    if let Some(d) = &spec.directory {
        return Ok(Resource::Directory(DirRes {
            path: field(cc, ctx, "path", &d.path)?,
            mode: mode(&d.mode)?,
            owner: field(cc, ctx, "owner", &d.owner)?,
            group: field(cc, ctx, "group", &d.group)?,
        }));
    }
    if let Some(s) = &spec.service {
        let state = match s.state.as_str() {
            "started" => SvcState::Started,
            "stopped" => SvcState::Stopped,
            "restarted" if handler => SvcState::Restarted,
            "reloaded" if handler => SvcState::Reloaded,
            "restarted" | "reloaded" => return Err(format!(
                "service state `{}` is for handlers only: as a task it would run on every apply",
                s.state
            )
            .into()),
            other => {
                return Err(format!(
                    "service state `{other}` is not started, stopped, restarted or reloaded"
                )
                .into());
            }
        };
        return Ok(Resource::Service(SvcRes {
            name: field(cc, ctx, "service name", &s.name)?,
            state,
            enabled: s.enabled,
            pidfile: s
                .pidfile
                .as_ref()
                .map(|p| field(cc, ctx, "service pidfile", p))
                .transpose()?,
        }));
    }
    if let Some(s) = &spec.sysctl {
        let mut settings = Vec::new();
        for (k, v) in &s.settings {
            settings.push((k.clone(), field(cc, ctx, "sysctl value", v)?));
        }
        let body: String = settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        let content =
            format!("# Managed by dbfleet (seed 000: \"Optimize kernel parameters\").\n{body}");
        return Ok(Resource::Sysctl(SysctlRes {
            file: FileRes {
                kind: crate::tasks::Kind::Sysctl,
                path: field(cc, ctx, "file", &s.file)?,
                content: content.into_bytes(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                sensitive: false,
                validate: None,
            },
            settings,
        }));
    }
    if let Some(c) = &spec.command {
        if c.creates.is_none() && c.unless.is_none() && !handler {
            return Err(
                "a command task needs `creates` or `unless`, or it would run on every apply"
                    .to_string()
                    .into(),
            );
        }
        return Ok(Resource::Command(CmdRes {
            name: task_name.to_string(),
            run: field(cc, ctx, "run", &c.run)?,
            creates: c
                .creates
                .as_deref()
                .map(|s| field(cc, ctx, "creates", s))
                .transpose()?,
            unless: c
                .unless
                .as_deref()
                .map(|s| field(cc, ctx, "unless", s))
                .transpose()?,
        }));
    }
    Err("a task needs exactly one kind".to_string().into())
}
