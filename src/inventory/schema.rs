//! The inventory's YAML shape, exactly as an operator writes it.
//!
//! Every struct denies unknown keys (a typo is an error, not a silently ignored setting).
//! Values that a cross-host rule may need to point at are `Spanned`, so validation can
//! name `file:line:col`. Semantics (which roles need which fields, uniqueness, cycles)
//! are not expressed here but in [`super::validate`], which can report them all at once.
//!
//! The same types give the inventory's JSON Schema ([`json_schema`], `dbfleet schema`,
//! issue 28) for editors (yaml-language-server): the shape here, each variable's type from
//! `playbooks/defaults.yml`.

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Inventory")]
pub struct RawInventory {
    pub fleet: RawFleet,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, RawSecret>")]
    pub secrets: Entries<Spanned<RawSecret>>,
    #[schemars(with = "std::collections::BTreeMap<String, RawHost>")]
    pub hosts: Spanned<Entries<Spanned<RawHost>>>,
    /// Application databases, created on each cluster's primary.
    #[serde(default)]
    #[schemars(with = "Vec<RawDatabase>")]
    pub databases: Vec<Spanned<RawDatabase>>,
    /// Application users, created on each cluster's primary (replicas get them by
    /// replication).
    #[serde(default)]
    #[schemars(with = "Vec<RawUser>")]
    pub users: Vec<Spanned<RawUser>>,
    /// Host firewalls derived from the inventory.
    #[schemars(with = "Option<RawFirewall>")]
    pub firewall: Option<Spanned<RawFirewall>>,
    /// Backup jobs, their schedules, retention and objectives (seeds 000–004).
    #[schemars(with = "Option<RawBackups>")]
    pub backups: Option<Spanned<RawBackups>>,
    /// Prometheus with its exporters (seed 002's monitoring stack).
    #[schemars(with = "Option<RawMonitoring>")]
    pub monitoring: Option<Spanned<RawMonitoring>>,
}

/// `monitoring:`: node_exporter on every host, mysqld_exporter on database hosts,
/// HAProxy's own endpoint on proxies, and Prometheus on `servers` with alerting rules
/// rendered from the inventory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Monitoring")]
pub struct RawMonitoring {
    /// The hosts Prometheus runs on (default: the hosts with the `monitor` role).
    #[schemars(with = "Option<Vec<String>>")]
    pub servers: Option<Spanned<Vec<Spanned<String>>>>,
    /// How often Prometheus scrapes ("15s", "1m"; default 15s).
    #[schemars(with = "Option<String>")]
    pub scrape_interval: Option<Spanned<String>>,
    /// How often Prometheus evaluates the rules (default 15s).
    #[schemars(with = "Option<String>")]
    pub evaluation_interval: Option<Spanned<String>>,
    /// The operator's own alerting rules, beside dbfleet's.
    #[serde(default)]
    #[schemars(with = "Vec<RawAlertRule>")]
    pub rules: Vec<Spanned<RawAlertRule>>,
}

/// One alerting rule of the operator's (Prometheus's `alert`/`expr`/`for`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AlertRule")]
pub struct RawAlertRule {
    #[schemars(with = "String")]
    pub alert: Spanned<String>,
    /// A PromQL expression; `promtool check rules` judges it on the Prometheus host.
    #[schemars(with = "String")]
    pub expr: Spanned<String>,
    #[serde(rename = "for")]
    #[schemars(with = "Option<String>")]
    pub for_: Option<Spanned<String>>,
    /// `info`, `warning` (default) or `critical`.
    #[schemars(with = "Option<String>")]
    pub severity: Option<Spanned<String>>,
    pub summary: Option<String>,
}

/// `backups:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Backups")]
pub struct RawBackups {
    /// The backup server: a host with the `backup` role (default: the only one).
    #[schemars(with = "Option<String>")]
    pub server: Option<Spanned<String>>,
    /// When the backup server verifies every job's newest backup (cron expression;
    /// default "0 6 * * 0", the seeds' weekly usability check).
    #[schemars(with = "Option<String>")]
    pub verify: Option<Spanned<String>>,
    /// The IANA time zone every schedule of `backups:` is written in ("Europe/Berlin";
    /// default: UTC). Seed 002 writes its times in local time.
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// A copy of every job's backups in S3-compatible object storage (seed 003).
    #[schemars(with = "Option<RawOffsite>")]
    pub offsite: Option<Spanned<RawOffsite>>,
    #[schemars(with = "std::collections::BTreeMap<String, RawJob>")]
    pub jobs: Entries<Spanned<RawJob>>,
}

/// `backups.offsite`: the backup server copies every job's repository to S3-compatible
/// object storage (seed 003's bucket), so a lost backup server loses no backup.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Offsite")]
pub struct RawOffsite {
    /// restic's S3 repository prefix, `s3:https://HOST[:PORT]/BUCKET[/PREFIX]`; each job is
    /// a folder below it.
    #[schemars(with = "String")]
    pub repository: Spanned<String>,
    /// Name of the secret holding the S3 access key id.
    #[schemars(with = "String")]
    pub access_key_id: Spanned<String>,
    /// Name of the secret holding the S3 secret access key.
    #[schemars(with = "String")]
    pub secret_access_key: Spanned<String>,
    /// When the copy runs (cron expression).
    #[schemars(with = "String")]
    pub schedule: Spanned<String>,
    /// What the copy keeps; each job's own retention when left out.
    #[schemars(with = "Option<RawRetention>")]
    pub retention: Option<Spanned<RawRetention>>,
    /// Recovery point objective when the backup server is lost too ("36h").
    #[schemars(with = "Option<String>")]
    pub rpo: Option<Spanned<String>>,
}

/// One backup job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Job")]
pub struct RawJob {
    /// `logical`, `physical`, `binlog` or `path`.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// The host it runs on.
    #[schemars(with = "String")]
    pub host: Spanned<String>,
    /// Cron expression (logical, binlog, path).
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// Physical: the full backups' cron expression.
    #[schemars(with = "Option<String>")]
    pub full: Option<Spanned<String>>,
    /// Physical: the incremental backups' cron expression (changes since the last backup).
    #[schemars(with = "Option<String>")]
    pub incremental: Option<Spanned<String>>,
    /// Physical: the differential backups' cron expression (changes since the last full
    /// backup, seed 003).
    #[schemars(with = "Option<String>")]
    pub differential: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub databases: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub paths: Vec<Spanned<String>>,
    pub pre_command: Option<String>,
    #[schemars(with = "Option<RawRetention>")]
    pub retention: Option<Spanned<RawRetention>>,
    /// Recovery point objective: "24h", "15m", "1d".
    #[schemars(with = "Option<String>")]
    pub rpo: Option<Spanned<String>>,
    /// Recovery time objective.
    #[schemars(with = "Option<String>")]
    pub rto: Option<Spanned<String>>,
}

/// Retention: `days`/`weeks` (keep everything that recent), or restic-style counts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Retention")]
pub struct RawRetention {
    pub days: Option<u32>,
    pub weeks: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Firewall")]
pub struct RawFirewall {
    /// `nftables` (the default, Debian's) or `ufw` (the seed's).
    #[schemars(with = "Option<String>")]
    pub backend: Option<Spanned<String>>,
    /// Networks (CIDR) allowed to SSH to every host; must include the operator's.
    #[schemars(with = "Vec<String>")]
    pub admin_networks: Vec<Spanned<String>>,
    /// Networks (CIDR) of the applications, allowed to the database port.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub app_networks: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Database")]
pub struct RawDatabase {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    pub charset: Option<String>,
    pub collation: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "User")]
pub struct RawUser {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Host part of the account; `%` by default.
    pub host: Option<String>,
    /// Name of the secret holding the password.
    #[schemars(with = "String")]
    pub password: Spanned<String>,
    /// "PRIVILEGES ON OBJECT", e.g. "SELECT, INSERT ON app.*".
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub grants: Vec<Spanned<String>>,
    #[serde(default)]
    pub require_ssl: bool,
}

/// `fleet:` settings that apply to every host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Fleet")]
pub struct RawFleet {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `mariadb` or `mysql`.
    #[schemars(with = "String")]
    pub flavor: Spanned<String>,
    /// e.g. "10.11" or "8.0".
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub vars: Entries<Spanned<serde_json::Value>>,
}

/// SSH settings, fleet-wide or per host. `host_key_checking` is fleet-wide only.
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Ssh")]
pub struct RawSsh {
    pub user: Option<String>,
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    pub identity: Option<String>,
    pub config: Option<String>,
    /// `strict` (default) or `accept-new`.
    #[schemars(with = "Option<String>")]
    pub host_key_checking: Option<Spanned<String>>,
}

/// One entry of `secrets:`: exactly one of the three sources.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Secret")]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
    /// Generated on first use: `generate: 32` (length) or `generate: true` (32).
    pub generate: Option<serde_json::Value>,
}

/// One entry of `hosts:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Host")]
pub struct RawHost {
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    #[schemars(with = "Vec<String>")]
    pub roles: Spanned<Vec<Spanned<String>>>,
    #[schemars(with = "Option<i64>")]
    pub server_id: Option<Spanned<i64>>,
    /// The host a replica replicates from; its cluster's primary when left out.
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
    /// `false` keeps a database host from ever being promoted (MHA's `no_master`).
    pub candidate: Option<bool>,
    #[schemars(with = "Option<String>")]
    pub cluster: Option<Spanned<String>>,
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub vars: Entries<Spanned<serde_json::Value>>,
}

/// The inventory's JSON Schema (draft-07, which yaml-language-server reads): the shape of
/// [`RawInventory`] as serde reads it (unknown keys refused, `Option` and `default` fields
/// not required), with `fleet.vars` and `hosts.*.vars` closed to the variables `defaults`
/// declares, each with its type ([`super::vartype::VarType::json_schema`]), default and
/// the type's text as description.
///
/// The schema is a guide for editors, never stricter than `dbfleet validate`: rules across
/// keys and hosts (roles, uniqueness, cycles, secrets' one source) are `validate`'s only.
pub fn json_schema(defaults: &super::Defaults) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<RawInventory>().to_value();
    let mut vars = Map::new();
    for (name, default) in &defaults.values {
        let mut v = match defaults.types.get(name) {
            Some(t) => t.json_schema(),
            None => json!({}),
        };
        if let Value::Object(o) = &mut v {
            let text = defaults
                .types
                .get(name)
                .map(|t| t.text.as_str())
                .unwrap_or("");
            o.insert(
                "description".into(),
                Value::String(format!("{text}; default: {default}")),
            );
            o.insert("default".into(), default.clone());
        }
        vars.insert(name.clone(), v);
    }
    let closed = json!({
        "description": "Variables (playbooks/defaults.yml): fleet-wide under fleet.vars, per host under hosts.NAME.vars",
        "type": "object",
        "properties": vars,
        "additionalProperties": false,
    });
    if let Some(defs) = schema.get_mut("definitions").and_then(Value::as_object_mut) {
        defs.insert("Vars".into(), closed);
        for owner in ["Fleet", "Host"] {
            if let Some(p) = defs
                .get_mut(owner)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.get_mut("vars"))
            {
                *p = json!({"$ref": "#/definitions/Vars"});
            }
        }
    }
    // The closed words `validate` knows, for completion: the same lists it checks against.
    let words: [(&str, &[&str], &[&str]); 6] = [
        ("Host", &["roles", "items"], super::Role::NAMES),
        ("Fleet", &["flavor"], crate::sql::Flavor::NAMES),
        ("Ssh", &["host_key_checking"], super::HostKeyPolicy::NAMES),
        ("Job", &["kind"], &crate::backup::JobKind::NAMES),
        ("Firewall", &["backend"], super::FIREWALL_BACKENDS),
        ("AlertRule", &["severity"], super::ALERT_SEVERITIES),
    ];
    for (def, path, names) in words {
        let mut at = schema.get_mut("definitions").and_then(|d| d.get_mut(def));
        for key in std::iter::once("properties").chain(path.iter().copied()) {
            at = at.and_then(|v| v.get_mut(key));
        }
        if let Some(Value::Object(o)) = at {
            // An optional key may be written empty (`severity:`), which serde reads as
            // left out.
            let nullable = o
                .get("type")
                .and_then(Value::as_array)
                .is_some_and(|t| t.contains(&json!("null")));
            let mut e = json!(names);
            if nullable && let Value::Array(a) = &mut e {
                a.push(Value::Null);
            }
            o.insert("enum".into(), e);
        }
    }
    if let Value::Object(o) = &mut schema {
        o.insert("title".into(), json!("dbfleet inventory"));
    }
    schema
}
