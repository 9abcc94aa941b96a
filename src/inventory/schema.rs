//! The inventory's YAML shape, exactly as an operator writes it.
//!
//! Every struct denies unknown keys (a typo is an error, not a silently ignored setting).
//! Values that a cross-host rule may need to point at are `Spanned`, so validation can
//! name `file:line:col`. Semantics (which roles need which fields, uniqueness, cycles)
//! are not expressed here but in [`super::validate`], which can report them all at once.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML mapping kept as an ordered list of entries, keys with their locations.
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<V>()?;
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// The top level of an inventory file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub fleet: RawFleet,
    #[serde(default)]
    pub secrets: Entries<Spanned<RawSecret>>,
    pub hosts: Spanned<Entries<Spanned<RawHost>>>,
    /// Application databases, created on each cluster's primary.
    #[serde(default)]
    pub databases: Vec<Spanned<RawDatabase>>,
    /// Application users, created on each cluster's primary (replicas get them by
    /// replication).
    #[serde(default)]
    pub users: Vec<Spanned<RawUser>>,
    /// Host firewalls derived from the inventory.
    pub firewall: Option<Spanned<RawFirewall>>,
    /// Backup jobs, their schedules, retention and objectives (seeds 000–004).
    pub backups: Option<Spanned<RawBackups>>,
    /// Prometheus with its exporters (seed 002's monitoring stack).
    pub monitoring: Option<Spanned<RawMonitoring>>,
}

/// `monitoring:`: node_exporter on every host, mysqld_exporter on database hosts,
/// HAProxy's own endpoint on proxies, and Prometheus on `servers` with alerting rules
/// rendered from the inventory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    /// The hosts Prometheus runs on (default: the hosts with the `monitor` role).
    pub servers: Option<Spanned<Vec<Spanned<String>>>>,
    /// How often Prometheus scrapes ("15s", "1m"; default 15s).
    pub scrape_interval: Option<Spanned<String>>,
    /// How often Prometheus evaluates the rules (default 15s).
    pub evaluation_interval: Option<Spanned<String>>,
    /// The operator's own alerting rules, beside dbfleet's.
    #[serde(default)]
    pub rules: Vec<Spanned<RawAlertRule>>,
}

/// One alerting rule of the operator's (Prometheus's `alert`/`expr`/`for`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertRule {
    pub alert: Spanned<String>,
    /// A PromQL expression; `promtool check rules` judges it on the Prometheus host.
    pub expr: Spanned<String>,
    #[serde(rename = "for")]
    pub for_: Option<Spanned<String>>,
    /// `info`, `warning` (default) or `critical`.
    pub severity: Option<Spanned<String>>,
    pub summary: Option<String>,
}

/// `backups:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackups {
    /// The backup server: a host with the `backup` role (default: the only one).
    pub server: Option<Spanned<String>>,
    /// When the backup server verifies every job's newest backup (cron expression;
    /// default "0 6 * * 0", the seeds' weekly usability check).
    pub verify: Option<Spanned<String>>,
    /// The IANA time zone every schedule of `backups:` is written in ("Europe/Berlin";
    /// default: UTC). Seed 002 writes its times in local time.
    pub timezone: Option<Spanned<String>>,
    /// A copy of every job's backups in S3-compatible object storage (seed 003).
    pub offsite: Option<Spanned<RawOffsite>>,
    pub jobs: Entries<Spanned<RawJob>>,
}

/// `backups.offsite`: the backup server copies every job's repository to S3-compatible
/// object storage (seed 003's bucket), so a lost backup server loses no backup.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffsite {
    /// restic's S3 repository prefix, `s3:https://HOST[:PORT]/BUCKET[/PREFIX]`; each job is
    /// a folder below it.
    pub repository: Spanned<String>,
    /// Name of the secret holding the S3 access key id.
    pub access_key_id: Spanned<String>,
    /// Name of the secret holding the S3 secret access key.
    pub secret_access_key: Spanned<String>,
    /// When the copy runs (cron expression).
    pub schedule: Spanned<String>,
    /// What the copy keeps; each job's own retention when left out.
    pub retention: Option<Spanned<RawRetention>>,
    /// Recovery point objective when the backup server is lost too ("36h").
    pub rpo: Option<Spanned<String>>,
}

/// One backup job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// `logical`, `physical`, `binlog` or `path`.
    pub kind: Spanned<String>,
    /// The host it runs on.
    pub host: Spanned<String>,
    /// Cron expression (logical, binlog, path).
    pub schedule: Option<Spanned<String>>,
    /// Physical: the full backups' cron expression.
    pub full: Option<Spanned<String>>,
    /// Physical: the incremental backups' cron expression (changes since the last backup).
    pub incremental: Option<Spanned<String>>,
    /// Physical: the differential backups' cron expression (changes since the last full
    /// backup, seed 003).
    pub differential: Option<Spanned<String>>,
    #[serde(default)]
    pub databases: Vec<Spanned<String>>,
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    pub pre_command: Option<String>,
    pub retention: Option<Spanned<RawRetention>>,
    /// Recovery point objective: "24h", "15m", "1d".
    pub rpo: Option<Spanned<String>>,
    /// Recovery time objective.
    pub rto: Option<Spanned<String>>,
}

/// Retention: `days`/`weeks` (keep everything that recent), or restic-style counts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub days: Option<u32>,
    pub weeks: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    /// `nftables` (the default, Debian's) or `ufw` (the seed's).
    pub backend: Option<Spanned<String>>,
    /// Networks (CIDR) allowed to SSH to every host; must include the operator's.
    pub admin_networks: Vec<Spanned<String>>,
    /// Networks (CIDR) of the applications, allowed to the database port.
    #[serde(default)]
    pub app_networks: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub name: Spanned<String>,
    pub charset: Option<String>,
    pub collation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Spanned<String>,
    /// Host part of the account; `%` by default.
    pub host: Option<String>,
    /// Name of the secret holding the password.
    pub password: Spanned<String>,
    /// "PRIVILEGES ON OBJECT", e.g. "SELECT, INSERT ON app.*".
    #[serde(default)]
    pub grants: Vec<Spanned<String>>,
    #[serde(default)]
    pub require_ssl: bool,
}

/// `fleet:` settings that apply to every host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub name: Spanned<String>,
    /// `mariadb` or `mysql`.
    pub flavor: Spanned<String>,
    /// e.g. "10.11" or "8.0".
    pub version: Spanned<String>,
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    pub vars: Entries<Spanned<serde_json::Value>>,
}

/// SSH settings, fleet-wide or per host. `host_key_checking` is fleet-wide only.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub user: Option<String>,
    pub port: Option<Spanned<u16>>,
    pub identity: Option<String>,
    pub config: Option<String>,
    /// `strict` (default) or `accept-new`.
    pub host_key_checking: Option<Spanned<String>>,
}

/// One entry of `secrets:`: exactly one of the three sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
    /// Generated on first use: `generate: 32` (length) or `generate: true` (32).
    pub generate: Option<serde_json::Value>,
}

/// One entry of `hosts:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub address: Spanned<String>,
    pub roles: Spanned<Vec<Spanned<String>>>,
    pub server_id: Option<Spanned<i64>>,
    /// The host a replica replicates from; its cluster's primary when left out.
    pub source: Option<Spanned<String>>,
    /// `false` keeps a database host from ever being promoted (MHA's `no_master`).
    pub candidate: Option<bool>,
    pub cluster: Option<Spanned<String>>,
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    pub vars: Entries<Spanned<serde_json::Value>>,
}
