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

mod access;
mod backups;
mod firewall;
mod monitoring;
mod vars;

use access::*;
use backups::*;
use firewall::*;
use monitoring::*;
use vars::*;

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
    /// `WHAT `NAME` is not a host of this inventory` at `span`, with "did you mean" or
    /// the known hosts.
    fn unknown_host(&mut self, what: &str, name: &str, span: (usize, usize), names: &[&str]) {
        let help = did_you_mean(name, names.iter().copied())
            .unwrap_or_else(|| format!("known hosts: {}", names.join(", ")));
        self.push(
            Problem::at(
                format!("{what} `{name}` is not a host of this inventory"),
                span,
                "unknown host",
            )
            .help(help),
        );
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
            None => c.unknown_host("source", src, s, &names),
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
        let roles_span = |n: &str| c.span(&span_of_host[n].value.roles);
        if members.iter().any(|h| synchronous(h).is_some()) {
            let spans: Vec<(String, (usize, usize))> = members
                .iter()
                .map(|h| (h.name.clone(), roles_span(&h.name)))
                .collect();
            check_synchronous(&mut c, cluster, members, &spans, flavor);
            continue;
        }
        let primaries: Vec<&&Host> = members.iter().filter(|h| h.has(Role::Primary)).collect();
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

    // A monitor serves a primary/replica cluster: a synchronous cluster keeps its own
    // quorum (and a replication group elects its own primary).
    for h in hosts.iter().filter(|h| h.has(Role::Monitor)) {
        let kind = clusters
            .get(h.cluster.as_str())
            .and_then(|m| m.iter().find_map(|x| synchronous(x)));
        if let Some(kind) = kind {
            let what = if kind == "group" {
                "replication group"
            } else {
                "Galera cluster"
            };
            let s = c.span(&span_of_host[h.name.as_str()].value.roles);
            c.push(
                Problem::at(
                    format!("`monitor` `{}` serves {what} `{}`", h.name, h.cluster),
                    s,
                    "no primary to fail over",
                )
                .help(format!("the failover monitor fails over a primary; a {what} keeps its own quorum: remove the role")),
            );
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
    let backup_timezone = raw
        .backups
        .as_ref()
        .and_then(|b| b.value.timezone.as_ref())
        .and_then(|z| check_timezone(&mut c, z));
    let (backups, backup_offsite) = raw
        .backups
        .as_ref()
        .map(|b| check_backups(&mut c, b, &hosts, &secrets, flavor))
        .unwrap_or_default();
    let backup_verify = raw.backups.as_ref().and_then(|b| {
        let v = b.value.verify.as_ref()?;
        check_cron(&mut c, v, "0 6 * * 0").map(|_| v.value.clone())
    });
    let backup_verify = (!backups.is_empty())
        .then(|| backup_verify.unwrap_or_else(|| crate::backup::VERIFY_SCHEDULE.to_string()));

    let monitoring = raw
        .monitoring
        .as_ref()
        .and_then(|m| check_monitoring(&mut c, m, &hosts, &secrets));

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
        text,
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
        backup_timezone,
        monitoring,
    })
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

/// The synchronous replication a host's cluster declares (`galera`, `group`), or `Some("")`
/// for a `member` whose cluster declares neither; None for a primary/replica cluster.
fn synchronous(h: &Host) -> Option<&str> {
    match h.vars.get("replication").and_then(|v| v.as_str()) {
        Some(k @ ("galera" | "group")) => Some(k),
        _ if h.has(Role::Member) => Some(""),
        _ => None,
    }
}

/// The rules of a synchronous cluster, `replication: galera` (MariaDB Galera) or `group`
/// (MySQL Group Replication, single-primary): its flavor's own kind only, every database
/// host a `member` with the same `replication`, no `semi_sync`, and an odd number of at
/// least three members, so that one lost member (or a partition) leaves a majority that
/// keeps the primary component (MariaDB KB "Galera Cluster: Quorum"; MySQL manual 20.1.4.2
/// "Failure Detection": a group needs a majority of its members to make progress; dbfleet
/// builds no arbitrator yet, so two members or an even count cannot be made safe). A group
/// holds at most nine members (MySQL manual 20.3.2 "Group Replication Limitations").
/// `spans` holds each member's roles span, the place a fix goes.
fn check_synchronous(
    c: &mut Checker,
    cluster: &str,
    members: &[&Host],
    spans: &[(String, (usize, usize))],
    flavor: Flavor,
) {
    let span = |n: &str| {
        spans
            .iter()
            .find(|(h, _)| h == n)
            .map(|(_, s)| *s)
            .unwrap_or((0, 0))
    };
    let first = span(&members[0].name);
    // The kind the cluster declares; a member declaring neither is taken for its flavor's.
    let declared = members
        .iter()
        .filter_map(|h| synchronous(h))
        .find(|k| !k.is_empty());
    let kind = declared.unwrap_or(if flavor == Flavor::Mariadb {
        "galera"
    } else {
        "group"
    });
    let what = if kind == "galera" {
        "Galera cluster"
    } else {
        "replication group"
    };
    if kind == "galera" && flavor != Flavor::Mariadb {
        c.push(
            Problem::at(
                format!("cluster `{cluster}` is a Galera cluster on MySQL"),
                first,
                "Galera is MariaDB's",
            )
            .help("Galera clusters need `flavor: mariadb`; MySQL's synchronous clusters declare `replication: group` (Group Replication)"),
        );
    }
    if kind == "group" && flavor != Flavor::Mysql {
        c.push(
            Problem::at(
                format!("cluster `{cluster}` is a replication group on MariaDB"),
                first,
                "Group Replication is MySQL's",
            )
            .help("Group Replication needs `flavor: mysql`; MariaDB's synchronous clusters declare `replication: galera`"),
        );
    }
    for h in members {
        if h.has(Role::Primary) || h.has(Role::Replica) {
            let role = if h.has(Role::Primary) {
                "primary"
            } else {
                "replica"
            };
            let why = if kind == "galera" {
                "every database host of a Galera cluster is a `member` (each takes writes; the proxies send them to one)"
            } else {
                "every database host of a replication group is a `member` (the group elects its primary itself; the proxies follow it)"
            };
            c.push(
                Problem::at(
                    format!("`{role}` `{}` in {what} `{cluster}`", h.name),
                    span(&h.name),
                    if kind == "galera" {
                        "no primary or replica in Galera"
                    } else {
                        "the group elects its primary"
                    },
                )
                .help(format!("{why}: give `{}` `roles: [member]`", h.name)),
            );
        } else if synchronous(h) != Some(kind) {
            c.push(
                Problem::at(
                    format!("member `{}` is not declared `replication: {kind}`", h.name),
                    span(&h.name),
                    "a member of a synchronous cluster",
                )
                .help(format!("set `replication: {kind}` in the fleet's vars (or on every host of the cluster)")),
            );
        }
        if h.vars.get("semi_sync").and_then(|v| v.as_bool()) == Some(true) {
            c.push(
                Problem::at(
                    format!("member `{}` has `semi_sync: true`", h.name),
                    span(&h.name),
                    if kind == "galera" {
                        "Galera replicates synchronously"
                    } else {
                        "Group Replication replicates synchronously"
                    },
                )
                .help(format!(
                    "semi-sync is for a primary and its replicas; remove it for a {what}"
                )),
            );
        }
    }
    let n = members.len();
    if n < 3 || n.is_multiple_of(2) {
        c.push(
            Problem::at(
                format!("{} `{cluster}` has {n} member{}", if kind == "galera" { "Galera cluster" } else { "replication group" }, if n == 1 { "" } else { "s" }),
                first,
                "no majority survives a lost member",
            )
            .help(format!("a {what} needs an odd number of members, at least 3: with 2 (or any even number) a lost member or a partition in halves leaves no majority to take writes; add a member (dbfleet declares no arbitrator yet)")),
        );
    } else if kind == "group" && n > 9 {
        c.push(
            Problem::at(
                format!("replication group `{cluster}` has {n} members"),
                first,
                "more than nine",
            )
            .help("a replication group holds at most nine members (MySQL manual, \"Group Replication Limitations\")"),
        );
    }
}
