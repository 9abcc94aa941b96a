//! Inventory rules that one YAML key cannot express, checked all at once.
//!
//! Rules and their sources: `server_id` is 1..=4294967295 and unique in a replication
//! topology (MariaDB KB "Setting Up Replication", "server_id"); one primary per cluster and
//! a replica's source must be a database host of the same cluster, not itself, with no
//! cycle (seed 000, "Traditional Replication"); a primary and a replica need a `server_id`,
//! a replica its `source`. Every problem is collected; none stops the pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::schema::{Entries, RawInventory, RawSecret, RawSsh};
use super::{Flavor, Host, HostKeyPolicy, Inventory, Role, SecretSource, SshSettings, VarValue};
use crate::diagnostics::{FileProblems, Problem, did_you_mean, span_of};
use crate::error::Error;

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// Every cron schedule of the inventory, each distinct one walked once.
    schedules: crate::backup::rpo::ScheduleBook,
}

impl Checker<'_> {
    fn span<T>(&self, s: &Spanned<T>) -> (usize, usize) {
        span_of(&s.referenced, self.text)
    }
    fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }
}

/// Checks `raw` (parsed from `text`) and resolves it into an [`Inventory`].
///
/// Errors: [`Error::Invalid`] holding every problem found.
pub fn validate(
    raw: RawInventory,
    path: &Path,
    name: &str,
    text: String,
    digest: String,
    defaults: &super::Defaults,
) -> Result<Inventory, Error> {
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut c = Checker {
        text: &text,
        problems: Vec::new(),
        schedules: Default::default(),
    };

    // fleet
    let fleet = &raw.fleet;
    if fleet.name.value.trim().is_empty() {
        let s = c.span(&fleet.name);
        c.push(Problem::at("fleet name is empty", s, "name the fleet"));
    }
    let flavor = match fleet.flavor.value.as_str() {
        "mariadb" => Flavor::Mariadb,
        "mysql" => Flavor::Mysql,
        other => {
            let mut p = Problem::at(
                format!("unknown flavor `{other}`"),
                c.span(&fleet.flavor),
                "not a flavor",
            );
            p = p.help(
                did_you_mean(other, Flavor::NAMES.iter().copied())
                    .unwrap_or_else(|| "flavor is `mariadb` or `mysql`".into()),
            );
            c.push(p);
            Flavor::Mariadb
        }
    };
    if !is_version(&fleet.version.value) {
        let s = c.span(&fleet.version);
        c.push(
            Problem::at(
                format!("version `{}` is not MAJOR.MINOR", fleet.version.value),
                s,
                "e.g. \"10.11\" or \"8.0\"",
            )
            .help("quote it: `version: \"10.11\"` (unquoted 10.10 would be read as a number)"),
        );
    }
    let fleet_ssh = fleet.ssh.as_ref();
    let host_key_policy = match fleet_ssh.and_then(|s| s.host_key_checking.as_ref()) {
        None => HostKeyPolicy::Strict,
        Some(v) => match v.value.as_str() {
            "strict" => HostKeyPolicy::Strict,
            "accept-new" => HostKeyPolicy::AcceptNew,
            other => {
                let s = c.span(v);
                c.push(
                    Problem::at(
                        format!("unknown host_key_checking `{other}`"),
                        s,
                        "not a policy",
                    )
                    .help("use `strict` or `accept-new`"),
                );
                HostKeyPolicy::Strict
            }
        },
    };
    let fleet_vars = check_vars(&mut c, &fleet.vars, defaults);

    // secrets
    let mut secrets = BTreeMap::new();
    for (key, value) in &raw.secrets.0 {
        if let Some(src) = check_secret(&mut c, key, value) {
            secrets.insert(key.value.clone(), src);
        }
    }

    // hosts, one by one
    let raw_hosts = &raw.hosts.value.0;
    if raw_hosts.is_empty() {
        let s = c.span(&raw.hosts);
        c.push(
            Problem::at("the inventory has no hosts", s, "empty").help("add hosts under `hosts:`"),
        );
    }
    let names: Vec<&str> = raw_hosts.iter().map(|(k, _)| k.value.as_str()).collect();
    let mut first_by_name: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut hosts = Vec::new();
    for (key, rh) in raw_hosts {
        let kspan = c.span(key);
        if let Some(first) = first_by_name.get(key.value.as_str()) {
            c.push(
                Problem::at(
                    format!("duplicate host `{}`", key.value),
                    kspan,
                    "defined again here",
                )
                .also(*first, "first defined here")
                .help("host names are unique; rename or remove one"),
            );
            continue;
        }
        first_by_name.insert(&key.value, kspan);
        if !is_host_name(&key.value) {
            c.push(
                Problem::at(
                    format!("host name `{}` is not valid", key.value),
                    kspan,
                    "here",
                )
                .help("use letters, digits, `-`, `_` and `.`"),
            );
        }
        let h = &rh.value;
        if h.address.value.trim().is_empty() {
            let s = c.span(&h.address);
            c.push(Problem::at("address is empty", s, "here").help("a DNS name or IP address"));
        }
        let mut roles = Vec::new();
        let mut unknown_role = false;
        for r in &h.roles.value {
            match Role::parse(&r.value) {
                Some(role) if roles.contains(&role) => {
                    let s = c.span(r);
                    c.push(Problem::at(
                        format!("role `{}` listed twice", r.value),
                        s,
                        "again here",
                    ));
                }
                Some(role) => roles.push(role),
                None => {
                    unknown_role = true;
                    let s = c.span(r);
                    let help = did_you_mean(&r.value, Role::NAMES.iter().copied())
                        .unwrap_or_else(|| format!("roles are: {}", Role::NAMES.join(", ")));
                    c.push(
                        Problem::at(format!("unknown role `{}`", r.value), s, "not a role")
                            .help(help),
                    );
                }
            }
        }
        let roles_span = c.span(&h.roles);
        if h.roles.value.is_empty() {
            c.push(
                Problem::at(
                    format!("host `{}` has no roles", key.value),
                    roles_span,
                    "empty",
                )
                .help(format!("roles are: {}", Role::NAMES.join(", "))),
            );
        }
        if roles.contains(&Role::Primary) && roles.contains(&Role::Replica) {
            c.push(
                Problem::at(
                    format!("host `{}` is both primary and replica", key.value),
                    roles_span,
                    "pick one",
                )
                .help("a host replicates from a source or is the cluster's primary, not both"),
            );
        }
        let is_db = roles.iter().any(|r| r.is_database());
        // With a misspelt role, what the host needs is unknown: report the role only.
        let server_id = match &h.server_id {
            _ if unknown_role => h
                .server_id
                .as_ref()
                .and_then(|s| u32::try_from(s.value).ok())
                .filter(|v| *v > 0),
            Some(sid) if !(1..=4_294_967_295).contains(&sid.value) => {
                let s = c.span(sid);
                c.push(
                    Problem::at(
                        format!("server_id {} is out of range", sid.value),
                        s,
                        "here",
                    )
                    .help("server_id is 1..=4294967295 (MariaDB KB: server_id)"),
                );
                None
            }
            Some(sid) if !is_db => {
                let s = c.span(sid);
                c.push(Problem::at(format!("host `{}` has a server_id but no database role", key.value), s, "not used").help("server_id applies to `primary` and `replica` hosts; remove it or add the role"));
                None
            }
            Some(sid) => Some(sid.value as u32),
            None => {
                if is_db {
                    let role = if roles.contains(&Role::Primary) {
                        "primary"
                    } else {
                        "replica"
                    };
                    c.push(
                        Problem::at(
                            format!("{role} `{}` needs a server_id", key.value),
                            kspan,
                            "this host",
                        )
                        .help("add `server_id: N` (1..=4294967295, unique in the fleet)"),
                    );
                }
                None
            }
        };
        if let Some(src) = &h.source
            && !roles.contains(&Role::Replica)
            && !unknown_role
        {
            let s = c.span(src);
            c.push(
                Problem::at(
                    format!("host `{}` has a source but is not a replica", key.value),
                    s,
                    "here",
                )
                .help("only replicas have a source; remove it or add the `replica` role"),
            );
        }
        let vars = {
            let mut v = defaults.values.clone();
            v.extend(fleet_vars.clone());
            v.extend(check_vars(&mut c, &h.vars, defaults));
            v
        };
        hosts.push(Host {
            name: key.value.clone(),
            address: h.address.value.clone(),
            roles,
            server_id,
            source: h.source.as_ref().map(|s| s.value.clone()),
            candidate: h.candidate.unwrap_or(true),
            cluster: h
                .cluster
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_else(|| fleet.name.value.clone()),
            ssh: ssh_settings(fleet_ssh, h.ssh.as_ref(), &base),
            vars,
        });
    }

    // server_id unique
    let mut by_id: HashMap<i64, (usize, usize)> = HashMap::new();
    for (_, rh) in raw_hosts {
        if let Some(sid) = &rh.value.server_id {
            let s = c.span(sid);
            if let Some(first) = by_id.get(&sid.value) {
                c.push(
                    Problem::at(
                        format!("server_id {} is used twice", sid.value),
                        s,
                        "used again here",
                    )
                    .also(*first, "first used here")
                    .help("each server in a replication topology needs its own server_id"),
                );
            } else {
                by_id.insert(sid.value, s);
            }
        }
    }

    // replica sources; a cycle is reported once, at its first member in file order
    let mut cycles_seen: Vec<BTreeSet<String>> = Vec::new();
    let span_of_host: HashMap<&str, &Spanned<super::schema::RawHost>> = raw_hosts
        .iter()
        .map(|(k, v)| (k.value.as_str(), v))
        .collect();
    for h in &hosts {
        let Some(src) = &h.source else { continue };
        let Some(raw_src) = span_of_host[h.name.as_str()].value.source.as_ref() else {
            continue;
        };
        let s = c.span(raw_src);
        if src == &h.name {
            c.push(
                Problem::at(
                    format!("replica `{}` replicates from itself", h.name),
                    s,
                    "itself",
                )
                .help("name the host it replicates from"),
            );
            continue;
        }
        match hosts.iter().find(|o| &o.name == src) {
            None => {
                let help = did_you_mean(src, names.iter().copied())
                    .unwrap_or_else(|| format!("known hosts: {}", names.join(", ")));
                c.push(
                    Problem::at(
                        format!("source `{src}` is not a host of this inventory"),
                        s,
                        "unknown host",
                    )
                    .help(help),
                );
            }
            Some(o) if !o.is_database() => {
                c.push(
                    Problem::at(
                        format!("source `{src}` is not a database host"),
                        s,
                        "no primary or replica role",
                    )
                    .help("a replica's source is a `primary` or another `replica`"),
                );
            }
            Some(o) if o.cluster != h.cluster => {
                c.push(Problem::at(
                    format!(
                        "source `{src}` is in cluster `{}`, not `{}`",
                        o.cluster, h.cluster
                    ),
                    s,
                    "other cluster",
                ));
            }
            Some(_) => {
                // Follow the chain; a walk longer than the host count is a cycle.
                let mut cur = src.as_str();
                let mut path = vec![h.name.as_str()];
                while let Some(next) = hosts.iter().find(|o| o.name == cur) {
                    path.push(cur);
                    if cur == h.name {
                        let members: BTreeSet<String> =
                            path.iter().map(|s| s.to_string()).collect();
                        if cycles_seen.contains(&members) {
                            break;
                        }
                        cycles_seen.push(members);
                        c.push(Problem::at(format!("replication cycle: {}", path.join(" → ")), s, "closes a cycle").help("a cycle has no primary to take writes; one host of the chain must be the primary"));
                        break;
                    }
                    match &next.source {
                        Some(n) if path.len() <= hosts.len() => cur = n,
                        _ => break,
                    }
                }
            }
        }
    }

    // one primary per cluster
    let mut clusters: BTreeMap<&str, Vec<&Host>> = BTreeMap::new();
    for h in hosts.iter().filter(|h| h.is_database()) {
        clusters.entry(&h.cluster).or_default().push(h);
    }
    for (cluster, members) in &clusters {
        let primaries: Vec<&&Host> = members.iter().filter(|h| h.has(Role::Primary)).collect();
        let roles_span = |n: &str| c.span(&span_of_host[n].value.roles);
        match primaries.len() {
            0 => {
                let first = members[0];
                let p = Problem::at(
                    format!("cluster `{cluster}` has no primary"),
                    roles_span(&first.name),
                    "no host of the cluster is `primary`",
                )
                .help("give exactly one database host of the cluster the `primary` role");
                c.push(p);
            }
            1 => {}
            _ => {
                let mut p = Problem::at(
                    format!("cluster `{cluster}` has {} primaries", primaries.len()),
                    roles_span(&primaries[1].name),
                    "second primary",
                )
                .also(roles_span(&primaries[0].name), "first primary");
                p = p.help("a cluster has one primary; make the others replicas with a `source`");
                c.push(p);
            }
        }
    }

    // A replica without `source` replicates from its cluster's primary: the topology is
    // then written once, in the roles, and a switchover edits only those.
    let primary_of: HashMap<String, String> = hosts
        .iter()
        .filter(|h| h.has(Role::Primary))
        .map(|h| (h.cluster.clone(), h.name.clone()))
        .collect();
    for h in hosts.iter_mut() {
        if h.has(Role::Replica) && h.source.is_none() {
            h.source = primary_of.get(&h.cluster).cloned();
        }
    }

    let firewall = raw
        .firewall
        .as_ref()
        .and_then(|f| check_firewall(&mut c, f));
    let databases = check_databases(&mut c, &raw.databases);
    let users = check_users(&mut c, &raw.users, &secrets);
    let (backups, backup_offsite) = raw
        .backups
        .as_ref()
        .map(|b| check_backups(&mut c, b, &hosts, &secrets))
        .unwrap_or_default();
    let backup_verify = raw.backups.as_ref().and_then(|b| {
        let v = b.value.verify.as_ref()?;
        check_cron(&mut c, v, "0 6 * * 0").map(|_| v.value.clone())
    });
    let backup_verify = (!backups.is_empty())
        .then(|| backup_verify.unwrap_or_else(|| crate::backup::VERIFY_SCHEDULE.to_string()));

    if !c.problems.is_empty() {
        let problems = std::mem::take(&mut c.problems);
        return Err(Error::Invalid(Box::new(FileProblems::new(
            name, text, problems,
        ))));
    }
    Ok(Inventory {
        index: super::HostIndex::build(&hosts),
        path: path.to_path_buf(),
        digest,
        name: fleet.name.value.clone(),
        flavor,
        version: fleet.version.value.clone(),
        host_key_policy,
        hosts,
        secrets,
        databases,
        users,
        firewall,
        backups,
        backup_verify,
        backup_offsite,
    })
}

fn check_firewall(
    c: &mut Checker,
    f: &Spanned<super::schema::RawFirewall>,
) -> Option<super::Firewall> {
    let r = &f.value;
    let backend = match &r.backend {
        None => "nftables".to_string(),
        Some(b) if b.value == "nftables" || b.value == "ufw" => b.value.clone(),
        Some(b) => {
            let s = c.span(b);
            c.push(
                Problem::at(
                    format!("firewall backend `{}` is not supported", b.value),
                    s,
                    "here",
                )
                .help("use `nftables` (Debian's default) or `ufw` (the seed's)"),
            );
            String::new()
        }
    };
    if r.admin_networks.is_empty() {
        let s = c.span(f);
        c.push(
            Problem::at("the firewall needs admin_networks", s, "here")
                .help("list the networks you SSH from, or the firewall would lock you out"),
        );
        return None;
    }
    let mut nets = |list: &[Spanned<String>]| -> Vec<String> {
        let mut out = Vec::new();
        for n in list {
            match n
                .value
                .parse::<ipnet::IpNet>()
                .or_else(|_| n.value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => out.push(net.trunc().to_string()),
                Err(_) => {
                    let s = c.span(n);
                    c.push(
                        Problem::at(
                            format!("`{}` is not a network", n.value),
                            s,
                            "not an address or CIDR",
                        )
                        .help("e.g. 10.0.0.0/8 or 192.0.2.7"),
                    );
                }
            }
        }
        out
    };
    let admin_networks = nets(&r.admin_networks);
    let app_networks = nets(&r.app_networks);
    if backend.is_empty() {
        return None;
    }
    Some(super::Firewall {
        backend,
        admin_networks,
        app_networks,
    })
}

fn is_sql_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_databases(
    c: &mut Checker,
    raw: &[Spanned<super::schema::RawDatabase>],
) -> Vec<super::Database> {
    let mut out: Vec<super::Database> = Vec::new();
    for d in raw {
        let name = &d.value.name;
        if !is_sql_name(&name.value) {
            let s = c.span(name);
            c.push(
                Problem::at(
                    format!("database name `{}` is not valid", name.value),
                    s,
                    "here",
                )
                .help("use letters, digits and `_` (64 at most)"),
            );
            continue;
        }
        if out.iter().any(|o| o.name == name.value) {
            let s = c.span(name);
            c.push(Problem::at(
                format!("database `{}` is declared twice", name.value),
                s,
                "again here",
            ));
            continue;
        }
        out.push(super::Database {
            name: name.value.clone(),
            charset: d.value.charset.clone().unwrap_or_else(|| "utf8mb4".into()),
            collation: d
                .value
                .collation
                .clone()
                .unwrap_or_else(|| "utf8mb4_unicode_ci".into()),
        });
    }
    out
}

fn check_users(
    c: &mut Checker,
    raw: &[Spanned<super::schema::RawUser>],
    secrets: &BTreeMap<String, SecretSource>,
) -> Vec<super::User> {
    let mut out: Vec<super::User> = Vec::new();
    for u in raw {
        let r = &u.value;
        let host = r.host.clone().unwrap_or_else(|| "%".into());
        if r.name.value.is_empty()
            || r.name.value.len() > 80
            || r.name.value.starts_with("dbfleet_")
        {
            let s = c.span(&r.name);
            c.push(
                Problem::at(
                    format!("user name `{}` is not allowed", r.name.value),
                    s,
                    "here",
                )
                .help("1 to 80 characters; `dbfleet_` names are reserved for dbfleet's own users"),
            );
            continue;
        }
        if out.iter().any(|o| o.name == r.name.value && o.host == host) {
            let s = c.span(&r.name);
            c.push(Problem::at(
                format!("user `{}`@`{host}` is declared twice", r.name.value),
                s,
                "again here",
            ));
            continue;
        }
        if !secrets.contains_key(&r.password.value) {
            let s = c.span(&r.password);
            let help = did_you_mean(&r.password.value, secrets.keys().map(String::as_str))
                .unwrap_or_else(|| "declare it under `secrets:`".into());
            c.push(
                Problem::at(
                    format!("secret `{}` is not declared", r.password.value),
                    s,
                    "unknown secret",
                )
                .help(help),
            );
        }
        let mut ok = true;
        let mut grants = Vec::new();
        for g in &r.grants {
            // Checked on the parsed form, which is also what is sent (crate::sql::grant).
            match crate::sql::grant::parse(&g.value) {
                Err(why) => {
                    let s = c.span(g);
                    c.push(
                        Problem::at(format!("grant `{}`: {why}", g.value), s, "here")
                            .help("e.g. \"SELECT, INSERT, UPDATE, DELETE ON app.*\""),
                    );
                    ok = false;
                }
                Ok(parsed) => {
                    if let Some(p) = crate::sql::grant::forbidden_for_applications(&parsed) {
                        let s = c.span(g);
                        c.push(Problem::at(format!("application user `{}` may not hold {p}", r.name.value), s, "forbidden")
                            .help("SUPER and READ ONLY ADMIN bypass read_only on a replica and create errant transactions, GRANT OPTION hands privileges out; grant only what the application needs"));
                        ok = false;
                    }
                    grants.push(parsed.to_string());
                }
            }
        }
        if ok {
            out.push(super::User {
                name: r.name.value.clone(),
                host,
                password: r.password.value.clone(),
                grants,
                require_ssl: r.require_ssl,
            });
        }
    }
    out
}

fn check_vars(
    c: &mut Checker,
    vars: &Entries<Spanned<serde_json::Value>>,
    defaults: &super::Defaults,
) -> BTreeMap<String, VarValue> {
    let mut out = BTreeMap::new();
    for (k, v) in &vars.0 {
        if !defaults.values.contains_key(&k.value) {
            let s = c.span(k);
            let help = did_you_mean(&k.value, defaults.values.keys().map(String::as_str))
                .unwrap_or_else(|| "variables are declared in playbooks/defaults.yml".into());
            c.push(
                Problem::at(
                    format!("unknown variable `{}`", k.value),
                    s,
                    "not a variable",
                )
                .help(help),
            );
            continue;
        }
        if v.value.is_object() || v.value.is_array() || v.value.is_null() {
            let s = c.span(v);
            c.push(Problem::at(
                format!("variable `{}` must be a string, number or boolean", k.value),
                s,
                "not a scalar",
            ));
            continue;
        }
        if let Some(t) = defaults.types.get(&k.value)
            && let Err(why) = t.check(&v.value)
        {
            let s = c.span(v);
            c.push(
                Problem::at(format!("variable `{}`: {why}", k.value), s, "wrong value").help(
                    format!("`{}` takes {} (playbooks/defaults.yml)", k.value, t.text),
                ),
            );
            continue;
        }
        out.insert(k.value.clone(), v.value.clone());
    }
    out
}

fn check_secret(
    c: &mut Checker,
    key: &Spanned<String>,
    value: &Spanned<RawSecret>,
) -> Option<SecretSource> {
    let s = c.span(value);
    let RawSecret {
        env,
        file,
        generate,
    } = &value.value;
    let n = env.is_some() as u8 + file.is_some() as u8 + generate.is_some() as u8;
    if n != 1 {
        c.push(
            Problem::at(
                format!("secret `{}` needs exactly one source", key.value),
                s,
                "here",
            )
            .help("write `{env: NAME}`, `{file: PATH}` or `{generate: LENGTH}`"),
        );
        return None;
    }
    if let Some(e) = env {
        return Some(SecretSource::Env(e.clone()));
    }
    if let Some(f) = file {
        return Some(SecretSource::File(PathBuf::from(f)));
    }
    match generate {
        Some(serde_json::Value::Bool(true)) => Some(SecretSource::Generate(32)),
        Some(serde_json::Value::Number(n))
            if n.as_u64().is_some_and(|n| (24..=256).contains(&n)) =>
        {
            Some(SecretSource::Generate(n.as_u64().unwrap_or(32) as usize))
        }
        _ => {
            c.push(Problem::at(
                format!(
                    "secret `{}`: generate takes a length from 24 to 256, or true",
                    key.value
                ),
                s,
                "here",
            ));
            None
        }
    }
}

fn ssh_settings(fleet: Option<&RawSsh>, host: Option<&RawSsh>, base: &Path) -> SshSettings {
    let pick = |f: fn(&RawSsh) -> Option<String>| host.and_then(f).or_else(|| fleet.and_then(f));
    let resolve = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() || p.starts_with("~") {
            p
        } else {
            base.join(p)
        }
    };
    SshSettings {
        user: pick(|s| s.user.clone()),
        port: host
            .and_then(|s| s.port.as_ref())
            .or_else(|| fleet.and_then(|s| s.port.as_ref()))
            .map(|p| p.value),
        identity: pick(|s| s.identity.clone()).map(resolve),
        config: pick(|s| s.config.clone()).map(resolve),
    }
}

fn is_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    ok(parts.next())
        && ok(parts.next())
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_host_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A backup job's name: it names a script, a repository folder and restic tags.
fn is_job_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// An absolute path that is safe in a shell word once quoted and in restic's arguments.
fn is_safe_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 4096
        && !p.split('/').any(|c| c == "..")
        && !p
            .chars()
            .any(|c| c.is_control() || matches!(c, '\'' | '"' | '`' | '\\' | '$'))
}

/// A job as checked so far, with its schedules' and its `rpo`'s spans (for the RPO pass).
type ParsedJob = (
    crate::backup::Job,
    Vec<(crate::backup::rpo::Schedule, (usize, usize))>,
    Option<(usize, usize)>,
);

/// Backup jobs: kind, host and role, schedules (cron), retention, objectives; then the
/// worst-case RPO each job's schedules give (with binlog archiving for database jobs of a
/// cluster that has it) against the declared `rpo`, refused at the schedule that cannot
/// meet it. Sources: seeds 001–004 (schedules, retention, RPO/RTO), seed 000 (binlogs).
fn check_backups(
    c: &mut Checker,
    b: &Spanned<super::schema::RawBackups>,
    hosts: &[Host],
    secrets: &BTreeMap<String, super::SecretSource>,
) -> (Vec<crate::backup::Job>, Option<crate::backup::Offsite>) {
    if !b.value.jobs.0.is_empty() && !secrets.contains_key("backup_encryption_password") {
        let sp = c.span(b);
        c.push(
            Problem::at(
                "backups need the secret `backup_encryption_password`",
                sp,
                "these jobs",
            )
            .help("add `backup_encryption_password: { generate: 32 }` under `secrets:`; restic encrypts every backup with it, so keep a copy outside the fleet"),
        );
    }
    use crate::backup::rpo::{Schedule, human, worst_gap};
    use crate::backup::{Job, JobKind, Run};
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let server = match &b.value.server {
        Some(s) => {
            match hosts.iter().find(|h| h.name == s.value) {
                Some(h) if h.has(Role::Backup) => {}
                Some(_) => {
                    let sp = c.span(s);
                    c.push(
                        Problem::at(
                            format!("`{}` is not a backup server", s.value),
                            sp,
                            "no `backup` role",
                        )
                        .help("the backup server is a host with the `backup` role"),
                    );
                }
                None => {
                    let sp = c.span(s);
                    let help = did_you_mean(&s.value, names.iter().copied())
                        .unwrap_or_else(|| format!("known hosts: {}", names.join(", ")));
                    c.push(
                        Problem::at(
                            format!(
                                "backup server `{}` is not a host of this inventory",
                                s.value
                            ),
                            sp,
                            "unknown host",
                        )
                        .help(help),
                    );
                }
            }
            s.value.clone()
        }
        None => {
            let servers: Vec<&Host> = hosts.iter().filter(|h| h.has(Role::Backup)).collect();
            if servers.len() == 1 {
                servers[0].name.clone()
            } else {
                let sp = c.span(b);
                c.push(
                    Problem::at(
                        format!(
                            "backups need a server: {} hosts have the `backup` role",
                            servers.len()
                        ),
                        sp,
                        "here",
                    )
                    .help("add `server: HOST` naming a host with the `backup` role"),
                );
                String::new()
            }
        }
    };
    // (job index, schedules with their spans) for the RPO pass.
    let mut parsed: Vec<ParsedJob> = Vec::new();
    for (key, job) in &b.value.jobs.0 {
        let j = &job.value;
        let kspan = c.span(key);
        // Job names, databases and paths reach root's cron scripts and restic's command
        // lines: each is a checked name (issue 11: a database `x; touch /tmp/p` became a
        // command).
        if !is_job_name(&key.value) {
            c.push(
                Problem::at(
                    format!("backup job name `{}` is not valid", key.value),
                    kspan,
                    "here",
                )
                .help("letters, digits, `_` and `-`, 64 at most, not starting with `-`"),
            );
            continue;
        }
        let mut names_ok = true;
        for d in &j.databases {
            if !is_sql_name(&d.value) {
                let sp = c.span(d);
                c.push(
                    Problem::at(
                        format!("database name `{}` is not valid", d.value),
                        sp,
                        "here",
                    )
                    .help("use letters, digits and `_` (64 at most)"),
                );
                names_ok = false;
            }
        }
        for p in &j.paths {
            if !is_safe_path(&p.value) {
                let sp = c.span(p);
                c.push(
                    Problem::at(format!("path `{}` is not valid", p.value), sp, "here")
                        .help("an absolute path without `..`, control characters or quotes"),
                );
                names_ok = false;
            }
        }
        if !names_ok {
            continue;
        }
        let kind = match JobKind::parse(&j.kind.value) {
            Some(k) => k,
            None => {
                let sp = c.span(&j.kind);
                let help = did_you_mean(&j.kind.value, JobKind::NAMES.iter().copied())
                    .unwrap_or_else(|| format!("kinds: {}", JobKind::NAMES.join(", ")));
                c.push(
                    Problem::at(
                        format!("unknown backup kind `{}`", j.kind.value),
                        sp,
                        "not a kind",
                    )
                    .help(help),
                );
                continue;
            }
        };
        match hosts.iter().find(|h| h.name == j.host.value) {
            None => {
                let sp = c.span(&j.host);
                let help = did_you_mean(&j.host.value, names.iter().copied())
                    .unwrap_or_else(|| format!("known hosts: {}", names.join(", ")));
                c.push(
                    Problem::at(
                        format!(
                            "backup host `{}` is not a host of this inventory",
                            j.host.value
                        ),
                        sp,
                        "unknown host",
                    )
                    .help(help),
                );
            }
            Some(h) if kind.needs_database() && !h.is_database() => {
                let sp = c.span(&j.host);
                c.push(
                    Problem::at(
                        format!(
                            "a {} backup runs on a database host; `{}` is not one",
                            j.kind.value, h.name
                        ),
                        sp,
                        "no primary or replica role",
                    )
                    .help("name a primary or replica (a replica spares the primary)"),
                );
            }
            Some(_) => {}
        }
        let mut schedules = Vec::new();
        let mut runs = Vec::new();
        let wanted: Vec<(&str, &Option<Spanned<String>>)> = match kind {
            JobKind::Physical => vec![("full", &j.full), ("incremental", &j.incremental)],
            _ => vec![("run", &j.schedule)],
        };
        if kind == JobKind::Physical && j.schedule.is_some() {
            let sp = c.span(j.schedule.as_ref().unwrap_or_else(|| unreachable!()));
            c.push(
                Problem::at(
                    "a physical job has `full` and `incremental` schedules, not `schedule`",
                    sp,
                    "here",
                )
                .help(
                    "e.g. full: \"0 0 * * 0\" (Sunday) and incremental: \"0 0 * * 1-6\" (seed 001)",
                ),
            );
        }
        for (mode, expr) in wanted {
            match expr {
                Some(e) => {
                    if let Some(s) = check_cron(c, e, "0 22 * * *") {
                        runs.push(Run {
                            schedule: e.value.clone(),
                            mode: mode.into(),
                        });
                        schedules.push((s, c.span(e)));
                    }
                }
                None if mode == "incremental" => {}
                None => {
                    let field = if mode == "full" { "full" } else { "schedule" };
                    c.push(
                        Problem::at(
                            format!("backup job `{}` needs `{field}`", key.value),
                            kspan,
                            "this job",
                        )
                        .help("a cron expression, e.g. \"0 22 * * *\" (daily at 22:00, seed 001)"),
                    );
                }
            }
        }
        if kind == JobKind::Path && j.paths.is_empty() {
            c.push(
                Problem::at(
                    format!("path job `{}` needs `paths`", key.value),
                    kspan,
                    "this job",
                )
                .help("the folders to back up, e.g. [/var/lib/grafana]"),
            );
        }
        let retention = j
            .retention
            .as_ref()
            .map(|r| check_retention(c, r))
            .unwrap_or_default();
        let rpo_s = j.rpo.as_ref().and_then(|d| check_duration(c, d));
        let rto_s = j.rto.as_ref().and_then(|d| check_duration(c, d));
        parsed.push((
            Job {
                name: key.value.clone(),
                kind,
                host: j.host.value.clone(),
                runs,
                databases: j.databases.iter().map(|d| d.value.clone()).collect(),
                paths: j.paths.iter().map(|p| p.value.clone()).collect(),
                pre_command: j.pre_command.clone(),
                retention,
                rpo_s,
                rto_s,
                worst_rpo_s: 0,
                offsite_worst_rpo_s: None,
                server: server.clone(),
            },
            schedules,
            j.rpo.as_ref().map(|r| c.span(r)),
        ));
    }
    // Binary-log archiving per cluster: its worst gap bounds the cluster's data loss.
    let cluster_of = |h: &str| {
        hosts
            .iter()
            .find(|x| x.name == h)
            .map(|x| x.cluster.clone())
    };
    // Per cluster, the best of its binlog jobs by `gap` (seconds).
    let binlog_best = |gap: &dyn Fn(&[&Schedule]) -> Option<u64>| {
        let mut best: BTreeMap<String, u64> = BTreeMap::new();
        for (job, scheds, _) in &parsed {
            if job.kind == JobKind::Binlog
                && let (Some(cl), Some(g)) = (
                    cluster_of(&job.host),
                    gap(&scheds.iter().map(|s| &s.0).collect::<Vec<_>>()),
                )
            {
                let e = best.entry(cl).or_insert(u64::MAX);
                *e = (*e).min(g);
            }
        }
        best
    };
    // Each distinct set of schedules is measured once: a thousand jobs on the same
    // schedule cost one walk, not a thousand (issue 11).
    let gaps: std::cell::RefCell<HashMap<Vec<String>, Option<crate::backup::rpo::WorstGap>>> =
        Default::default();
    let gap_of = |s: &[&Schedule]| {
        let key: Vec<String> = s.iter().map(|x| x.text.clone()).collect();
        if let Some(g) = gaps.borrow().get(&key) {
            return g.clone();
        }
        let g = worst_gap(s);
        gaps.borrow_mut().insert(key, g.clone());
        g
    };
    let binlog_gap = binlog_best(&|s| gap_of(s).map(|g| g.seconds));
    let offsite = b
        .value
        .offsite
        .as_ref()
        .and_then(|o| check_offsite(c, o, secrets));
    // The offsite worst case per job: its own schedules' or, for a database job of a
    // cluster with binlog archiving, the archiving's when that is better.
    let offsite_gap = |scheds: &[&Schedule]| -> Option<u64> {
        let (_, copy) = offsite.as_ref()?;
        crate::backup::rpo::worst_offsite_gap(scheds, &[copy])
    };
    let binlog_offsite = binlog_best(&offsite_gap);
    let mut jobs = Vec::new();
    for (mut job, scheds, rpo_span) in parsed {
        let refs: Vec<&Schedule> = scheds.iter().map(|s| &s.0).collect();
        let Some(gap) = gap_of(&refs) else {
            if let Some((_, sp)) = scheds.first() {
                c.push(
                    Problem::at(
                        format!("backup job `{}` never runs", job.name),
                        *sp,
                        "no date matches",
                    )
                    .help(
                        "a day-of-month that no month has (e.g. 31 in February only) never fires",
                    ),
                );
            }
            continue;
        };
        let pitr = matches!(job.kind, JobKind::Logical | JobKind::Physical)
            .then(|| cluster_of(&job.host).and_then(|cl| binlog_gap.get(&cl).copied()))
            .flatten();
        job.worst_rpo_s = pitr.map_or(gap.seconds, |b| b.min(gap.seconds));
        if let Some(own) = offsite_gap(&refs) {
            let pitr = matches!(job.kind, JobKind::Logical | JobKind::Physical)
                .then(|| cluster_of(&job.host).and_then(|cl| binlog_offsite.get(&cl).copied()))
                .flatten();
            job.offsite_worst_rpo_s = Some(pitr.map_or(own, |b| b.min(own)));
        }
        if let (Some(rpo), Some(rsp)) = (job.rpo_s, rpo_span)
            && job.worst_rpo_s > rpo
            && let Some((_, sp)) = scheds.first()
        {
            c.push(
                Problem::at(
                    format!(
                        "backup job `{}` cannot meet its RPO of {}: its schedule leaves up to {} between backups",
                        job.name,
                        human(rpo),
                        human(job.worst_rpo_s)
                    ),
                    *sp,
                    format!("worst gap {} (from {} to {})", human(gap.seconds), gap.from.format("%a %b %-d %H:%M"), gap.to.format("%a %b %-d %H:%M")),
                )
                .also(rsp, "declared here")
                .help("run it more often, relax `rpo`, or (database jobs) add a `binlog` job for point-in-time recovery"),
            );
        }
        jobs.push(job);
    }
    // With the backup server lost too, a job may lose what `offsite.rpo` allows, or what
    // its own `rpo` allows when that is larger (a monthly job cannot do better offsite).
    if let Some((o, copy)) = &offsite
        && let (Some(rpo), Some(o_raw)) = (o.rpo_s, b.value.offsite.as_ref())
        && let Some((job, allowed)) = jobs
            .iter()
            .filter_map(|j| {
                let allowed = j.rpo_s.unwrap_or(0).max(rpo);
                (j.offsite_worst_rpo_s? > allowed).then_some((j, allowed))
            })
            .max_by_key(|(j, allowed)| j.offsite_worst_rpo_s.unwrap_or(0) - allowed)
    {
        let sp = c.span(&o_raw.value.schedule);
        let mut p = Problem::at(
            format!(
                "the offsite copy cannot meet the RPO of job `{}`: with the backup server lost, its newest copy can be {} old, over the {} allowed",
                job.name,
                human(job.offsite_worst_rpo_s.unwrap_or_default()),
                human(allowed)
            ),
            sp,
            format!("copies at `{}`", copy.text),
        )
        .help("copy soon after the backups finish, more often, or relax `rpo` (offsite.rpo, or the job's own when larger)");
        if let Some(r) = &o_raw.value.rpo {
            p = p.also(c.span(r), "declared here");
        }
        c.push(p);
    }
    (jobs, offsite.map(|o| o.0))
}

/// A cron expression (five fields, as in /etc/cron.d), or a problem at it whose help shows
/// `example`.
fn check_cron(
    c: &mut Checker,
    e: &Spanned<String>,
    example: &str,
) -> Option<crate::backup::rpo::Schedule> {
    match c.schedules.get(&e.value) {
        Ok(s) => Some(s),
        Err(why) => {
            let sp = c.span(e);
            c.push(
                Problem::at(format!("invalid cron expression: {why}"), sp, "here").help(format!(
                    "five fields: minute hour day-of-month month day-of-week, e.g. \"{example}\""
                )),
            );
            None
        }
    }
}

/// A positive duration ("15m", "24h", "1d"), in seconds, or a problem at it.
fn check_duration(c: &mut Checker, d: &Spanned<String>) -> Option<u64> {
    match humantime::parse_duration(d.value.trim()) {
        Ok(v) if v.as_secs() > 0 => Some(v.as_secs()),
        _ => {
            let sp = c.span(d);
            c.push(
                Problem::at(format!("`{}` is not a duration", d.value), sp, "here")
                    .help("write e.g. 15m, 24h, 1d, 2w"),
            );
            None
        }
    }
}

/// `retention:` of a job or of the offsite copy: `days`, `weeks`, or restic-style counts
/// (seeds 001–004 keep 14 days to 4 weeks).
fn check_retention(
    c: &mut Checker,
    r: &Spanned<super::schema::RawRetention>,
) -> crate::backup::Retention {
    let v = &r.value;
    let by_age = v.days.is_some() || v.weeks.is_some();
    let by_count = v.keep_daily.is_some() || v.keep_weekly.is_some() || v.keep_monthly.is_some();
    if (v.days.is_some() && v.weeks.is_some()) || (by_age && by_count) || (!by_age && !by_count) {
        let sp = c.span(r);
        c.push(
            Problem::at(
                "retention is `days`, `weeks`, or keep_daily/keep_weekly/keep_monthly",
                sp,
                "here",
            )
            .help("e.g. { days: 14 } (seed 004) or { weeks: 4 } (seed 001)"),
        );
    }
    crate::backup::Retention {
        within_days: v.days.or(v.weeks.map(|w| w * 7)),
        keep_daily: v.keep_daily,
        keep_weekly: v.keep_weekly,
        keep_monthly: v.keep_monthly,
    }
}

/// `backups.offsite` (seed 003): an S3 repository prefix restic understands, the two
/// credentials as names of declared secrets, a cron schedule, retention and `rpo`.
/// Returns the checked copy with its parsed schedule, or None when a part is invalid.
fn check_offsite(
    c: &mut Checker,
    o: &Spanned<super::schema::RawOffsite>,
    secrets: &BTreeMap<String, super::SecretSource>,
) -> Option<(crate::backup::Offsite, crate::backup::rpo::Schedule)> {
    let v = &o.value;
    let mut ok = true;
    let repo = v.repository.value.trim();
    let url_ok = repo
        .strip_prefix("s3:")
        .and_then(|u| u.split_once("://"))
        .is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && rest
                    .split('/')
                    .nth(1)
                    .is_some_and(|bucket| !bucket.is_empty())
        });
    if !url_ok
        || repo
            .chars()
            .any(|ch| ch.is_whitespace() || "'\"`$\\".contains(ch))
    {
        let sp = c.span(&v.repository);
        c.push(
            Problem::at(format!("`{repo}` is not an S3 repository"), sp, "here")
                .help("restic's S3 form: s3:https://HOST[:PORT]/BUCKET[/PREFIX]"),
        );
        ok = false;
    }
    for s in [&v.access_key_id, &v.secret_access_key] {
        if !secrets.contains_key(&s.value) {
            let sp = c.span(s);
            let help =
                did_you_mean(&s.value, secrets.keys().map(|k| k.as_str())).unwrap_or_else(|| {
                    format!("declare `{}: {{ env: NAME }}` under `secrets:`", s.value)
                });
            c.push(Problem::at(format!("no secret `{}`", s.value), sp, "not declared").help(help));
            ok = false;
        }
    }
    let schedule = check_cron(c, &v.schedule, "30 3 * * *");
    let retention = v.retention.as_ref().map(|r| check_retention(c, r));
    let rpo_s = match &v.rpo {
        None => None,
        Some(d) => {
            let r = check_duration(c, d);
            ok &= r.is_some();
            r
        }
    };
    let schedule = schedule?;
    ok.then(|| {
        (
            crate::backup::Offsite {
                repository: repo.trim_end_matches('/').to_string(),
                access_key_id: v.access_key_id.value.clone(),
                secret_access_key: v.secret_access_key.value.clone(),
                schedule: v.schedule.value.clone(),
                retention,
                rpo_s,
            },
            schedule,
        )
    })
}
