//! The inventory: one YAML file naming the fleet's hosts, their roles and settings.
//!
//! This module owns the path from bytes on disk to a typed, checked [`Inventory`]:
//! [`schema`] is the YAML shape as written (every struct `deny_unknown_fields`, values that
//! need a location kept as `Spanned`), [`load()`] reads the file within a size budget and
//! parses it, and [`validate`] checks the rules that span several hosts (unique names and
//! server ids, one primary per cluster, replica sources) and resolves it into the typed
//! model below. Every problem found becomes a [`crate::diagnostics::Problem`] with a byte
//! span, so the CLI can point at `file:line:col`; validation reports all of them at once.

pub mod edit;
pub mod load;
pub mod schema;
pub mod validate;
pub mod vartype;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use load::load;

/// The database server family (defined with the dialects it selects, `crate::sql`).
pub use crate::sql::Flavor;

/// What a host does in the fleet. A host may hold several roles where that makes sense
/// (a replica that is also the backup server, a proxy anywhere) but never both `primary`
/// and `replica`, and a `member` of a synchronous cluster is neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    Backup,
    Proxy,
    /// Runs the failover monitor (`dbfleet monitor`, `crate::runbooks::monitor`).
    Monitor,
    /// A node of a synchronous cluster (seed 000's third method, "all nodes must
    /// acknowledge before commit"): `replication: galera` (MariaDB Galera: every member
    /// takes writes and certifies each transaction with the others; no primary) or
    /// `replication: group` (MySQL Group Replication, single-primary: the group elects
    /// its primary itself, the others are read-only).
    Member,
}

impl Role {
    pub const NAMES: &'static [&'static str] =
        &["primary", "replica", "backup", "proxy", "monitor", "member"];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Backup => "backup",
            Role::Proxy => "proxy",
            Role::Monitor => "monitor",
            Role::Member => "member",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "primary" => Role::Primary,
            "replica" => Role::Replica,
            "backup" => Role::Backup,
            "proxy" => Role::Proxy,
            "monitor" => Role::Monitor,
            "member" => Role::Member,
            _ => return None,
        })
    }
    /// Primary, replica and member hosts run a database server.
    pub fn is_database(self) -> bool {
        matches!(self, Role::Primary | Role::Replica | Role::Member)
    }
}

/// Host key policy for SSH, as OpenSSH's `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown or changed host keys are refused (the default).
    Strict,
    /// Unknown host keys are added to known_hosts; changed ones are refused.
    AcceptNew,
}

impl HostKeyPolicy {
    /// The words `fleet.ssh.host_key_checking` takes.
    pub const NAMES: &'static [&'static str] = &["strict", "accept-new"];
}

/// The words `firewall.backend` takes (nftables, Debian's default, first).
pub const FIREWALL_BACKENDS: &[&str] = &["nftables", "ufw"];

/// The words an alerting rule's `severity` takes (`warning` when left out).
pub const ALERT_SEVERITIES: &[&str] = &["info", "warning", "critical"];

/// How to reach a host over SSH. Unset fields fall back to ~/.ssh/config (or `config`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Private key file, absolute (relative paths are resolved against the inventory's folder).
    pub identity: Option<PathBuf>,
    /// An ssh_config file used instead of ~/.ssh/config.
    pub config: Option<PathBuf>,
}

/// A scalar variable value (vars are scalars only: they end up in config files).
pub type VarValue = serde_json::Value;

/// Every variable an inventory may set: its default and its type (`playbooks/defaults.yml`).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub values: std::collections::BTreeMap<String, VarValue>,
    pub types: std::collections::BTreeMap<String, vartype::VarType>,
}

/// One host of the fleet, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub name: String,
    /// DNS name or IP address the SSH connection and peers use.
    pub address: String,
    pub roles: Vec<Role>,
    /// `server_id` (1..=4294967295, unique in the fleet); set on every database host.
    pub server_id: Option<u32>,
    /// For a replica: the name of the host it replicates from (the cluster's primary when
    /// the inventory leaves it out).
    pub source: Option<String>,
    /// May be promoted by a switchover or failover (`candidate: false` says never).
    pub candidate: bool,
    /// The replication cluster; defaults to the fleet name.
    pub cluster: String,
    pub ssh: SshSettings,
    /// Merged variables: playbook defaults < fleet vars < host vars.
    pub vars: BTreeMap<String, VarValue>,
}

/// `max_replica_lag_seconds` when a playbooks folder of the operator's own does not
/// declare it: the built-in default (`playbooks/defaults.yml`), the seed's monitoring
/// script's alert threshold (seed 000).
pub const DEFAULT_MAX_REPLICA_LAG_S: u64 = 300;

/// A declared database's character set and collation when the inventory names none.
pub const DEFAULT_CHARSET: &str = "utf8mb4";
pub const DEFAULT_COLLATION: &str = "utf8mb4_unicode_ci";

/// `gtid_consistency_warn_seconds`' default (`playbooks/defaults.yml`).
pub const DEFAULT_GTID_CONSISTENCY_WARN_S: u64 = 30;

impl Host {
    /// The replication lag this host tolerates, in seconds (`max_replica_lag_seconds`):
    /// `status` calls a replica over it unhealthy, and a switchover refuses a candidate
    /// over it.
    pub fn max_replica_lag_s(&self) -> u64 {
        self.vars
            .get("max_replica_lag_seconds")
            .and_then(|v| v.as_u64())
            .unwrap_or(DEFAULT_MAX_REPLICA_LAG_S)
    }

    /// MySQL: how long `enforce_gtid_consistency` stays WARN, watched, before GTIDs are
    /// turned on in a running cluster, in seconds (`gtid_consistency_warn_seconds`; the
    /// manual's "allow your normal workload to run for a while").
    pub fn gtid_consistency_warn_s(&self) -> u64 {
        self.vars
            .get("gtid_consistency_warn_seconds")
            .and_then(|v| v.as_u64())
            .unwrap_or(DEFAULT_GTID_CONSISTENCY_WARN_S)
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_database(&self) -> bool {
        self.roles.iter().any(|r| r.is_database())
    }
    /// The host's `replication` var: `async` (the default), `galera` or `group`.
    pub fn replication(&self) -> &str {
        self.vars
            .get("replication")
            .and_then(|v| v.as_str())
            .unwrap_or("async")
    }
    /// A member of a MySQL replication group (`replication: group`).
    pub fn in_group(&self) -> bool {
        self.replication() == "group"
    }
}

/// Where a secret's value comes from. The value itself is never stored in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable of the operator's shell.
    Env(String),
    /// A file on the operator's machine (its content, one trailing newline removed).
    File(PathBuf),
    /// Generated on first use into the local secrets store, `length` characters.
    Generate(usize),
}

/// An application database.
#[derive(Debug, Clone, Serialize)]
pub struct Database {
    pub name: String,
    pub charset: String,
    pub collation: String,
}

/// An application user. Never holds SUPER, READ ONLY ADMIN, ALL ON *.* or GRANT OPTION
/// (on MariaDB 10.11 READ ONLY ADMIN bypasses read_only and makes errant GTIDs: DESIGN.md).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub name: String,
    pub host: String,
    /// The secret holding the password.
    pub password: String,
    pub grants: Vec<String>,
    pub require_ssl: bool,
}

/// The whole fleet, checked and resolved; the input of the task graph.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// The inventory file as given.
    pub path: PathBuf,
    /// sha256 of the inventory file's bytes (hex); a saved plan records it.
    pub digest: String,
    /// The inventory file's text: the failover monitors get a copy of it.
    #[serde(skip)]
    pub text: String,
    pub name: String,
    pub flavor: Flavor,
    /// Server version as declared, e.g. "10.11".
    pub version: String,
    pub host_key_policy: HostKeyPolicy,
    pub hosts: Vec<Host>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub databases: Vec<Database>,
    pub users: Vec<User>,
    pub firewall: Option<Firewall>,
    /// Backup jobs, checked (schedules parse, hosts exist, the RPO can be met).
    pub backups: Vec<crate::backup::Job>,
    /// When the backup server runs `backup-verify` (cron expression), when there are jobs.
    pub backup_verify: Option<String>,
    /// The offsite copy of the backups (seed 003), when declared.
    pub backup_offsite: Option<crate::backup::Offsite>,
    /// The zone the backup schedules are written in, when not UTC.
    pub backup_timezone: Option<crate::backup::Zone>,
    /// Prometheus and its exporters, when `monitoring:` is declared.
    pub monitoring: Option<Monitoring>,
    /// Host name → index in `hosts`, and cluster → its database hosts' indexes in
    /// inventory order: per-host work looks hosts up in constant time, so the cost of a
    /// fleet stays linear in its size (issue 11).
    #[serde(skip)]
    pub index: HostIndex,
}

/// `monitoring:`, checked: Prometheus on `servers`, scraping `targets`, alerting on
/// dbfleet's rules (`templates/prometheus-rules.yml.j2`) and the operator's `rules`.
#[derive(Debug, Clone, Serialize)]
pub struct Monitoring {
    /// Hosts running Prometheus (named in the inventory; default the `monitor` hosts).
    pub servers: Vec<String>,
    /// Seconds between scrapes.
    pub scrape_interval_s: u64,
    /// Seconds a scrape may take: 10 (Prometheus's default), at most the interval.
    pub scrape_timeout_s: u64,
    /// Seconds between rule evaluations.
    pub evaluation_interval_s: u64,
    /// What each host exposes, from its own vars (ports) and roles.
    pub targets: Vec<ScrapeTarget>,
    /// The operator's alerting rules.
    pub rules: Vec<AlertRule>,
}

/// One host as Prometheus scrapes it: `HOST:PORT` endpoints (IPv6 in brackets), absent
/// where the host runs no such exporter.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeTarget {
    pub host: String,
    pub cluster: String,
    /// `primary`, `replica`, `member` (of a Galera cluster or a replication group), or
    /// empty for a host that runs no database server.
    pub role: String,
    /// A synchronous cluster's member: `galera` or `group` (its `replication`); else empty.
    pub replication: String,
    /// A synchronous cluster's member: how many members its cluster declares, under which
    /// the cluster-size alert fires.
    pub members: Option<u64>,
    /// prometheus-node-exporter (every host).
    pub node: String,
    /// prometheus-mysqld-exporter (database hosts).
    pub mysqld: Option<String>,
    /// HAProxy's built-in Prometheus endpoint (HAProxy proxies).
    pub haproxy: Option<String>,
    /// Replicas: the lag (seconds) over which the lag alert fires, `max_replica_lag_seconds`.
    pub max_lag_s: Option<u64>,
}

/// An operator's alerting rule, checked: `alert` is a Prometheus metric-style name,
/// `for_s` seconds, `severity` one of info/warning/critical. `expr` is checked by
/// `promtool check rules` on the Prometheus host before the rules file is replaced.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRule {
    pub alert: String,
    pub expr: String,
    pub for_s: u64,
    pub severity: String,
    pub summary: String,
}

/// Lookups over [`Inventory::hosts`], built once ([`HostIndex::build`]).
#[derive(Debug, Clone, Default)]
pub struct HostIndex {
    by_name: std::collections::HashMap<String, usize>,
    databases_by_cluster: std::collections::HashMap<String, Vec<usize>>,
}

impl HostIndex {
    pub fn build(hosts: &[Host]) -> HostIndex {
        let mut ix = HostIndex::default();
        for (i, h) in hosts.iter().enumerate() {
            ix.by_name.entry(h.name.clone()).or_insert(i);
            if h.is_database() {
                ix.databases_by_cluster
                    .entry(h.cluster.clone())
                    .or_default()
                    .push(i);
            }
        }
        ix
    }
}

/// Host firewalls: the database port only from fleet peers and application networks, SSH
/// only from admin networks, everything else dropped (seed 000, "Firewall Configuration").
#[derive(Debug, Clone, Serialize)]
pub struct Firewall {
    pub backend: String,
    /// CIDR strings, normalised.
    pub admin_networks: Vec<String>,
    pub app_networks: Vec<String>,
}

impl Inventory {
    /// The host named `name`, in constant time.
    pub fn host(&self, name: &str) -> Option<&Host> {
        match self.index.by_name.get(name) {
            Some(&i) => self.hosts.get(i),
            // An inventory built without its index (tests): look it up the slow way.
            None if self.index.by_name.is_empty() => self.hosts.iter().find(|h| h.name == name),
            None => None,
        }
    }

    /// The first `member` of synchronous cluster `cluster` in inventory order: the one a new
    /// Galera cluster or replication group is founded from, where accounts are written, and
    /// the proxies' first writer.
    pub fn first_member(&self, cluster: &str) -> Option<&Host> {
        self.cluster_databases(cluster)
            .find(|h| h.has(Role::Member))
    }
    /// The database hosts of `cluster`, in inventory order.
    pub fn cluster_databases(&self, cluster: &str) -> impl Iterator<Item = &Host> {
        self.index
            .databases_by_cluster
            .get(cluster)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.hosts.get(i))
    }
    /// The folder holding the inventory; relative paths inside it are resolved from here.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}
