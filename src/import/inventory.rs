//! The inventory `dbfleet import` writes from a [`Topology`]: YAML that `dbfleet validate`
//! accepts as written, opening with notes on what import could not learn. It declares
//! what the servers run so the first plan changes as little as it can: every setting dbfleet
//! manages at its live value when that differs from dbfleet's default (fleet-wide when the
//! servers agree, per host when not), the databases, and the application accounts with
//! their privileges; each account's password is a secret read from the environment, which
//! the operator fills in (import never reads one).
//!
//! Every value from a server is written as a JSON string (a valid YAML scalar, whatever it
//! holds), and every server text in a comment has its control characters escaped: a
//! hostile server name cannot add a key or a line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Server, Topology, is_system_account};
use crate::inventory::Defaults;
use crate::sql::Flavor;
use crate::sql::import::{ImportKind, STRUCTURAL_SETTINGS};

/// What the operator told import beyond the servers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The address import started from, as given.
    pub from: String,
    /// The fleet's name.
    pub fleet: String,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_config: Option<String>,
    pub ssh_identity: Option<String>,
    /// Proxy hosts' addresses (`--proxy`), in order: named proxy1, proxy2, ….
    pub proxies: Vec<String>,
}

/// A JSON string: a YAML scalar that is exactly `s`.
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Server text made safe for a YAML comment: one line, control characters escaped.
fn comment(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The inventory name of each server: its host name, lower case, with anything but
/// letters, digits, `-` and `_` made `-`; `db` and its server_id when that leaves
/// nothing or a name already taken.
pub fn host_names(servers: &[Server]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in servers {
        let short = s.hostname.split('.').next().unwrap_or("");
        let mut name: String = short
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches('-')
            .to_string();
        if name.is_empty() || out.contains(&name) {
            name = format!("db{}", s.server_id);
        }
        while out.contains(&name) {
            name.push('x');
        }
        out.push(name);
    }
    out
}

/// A server's value of inventory variable `var` as the inventory writes it, or None when
/// the server does not have it or it cannot be read as the variable's kind.
fn value_of(s: &Server, var: &str) -> Option<Value> {
    let (name, kind) = s.dialect().imported_setting(var)?;
    let (raw, _) = s.settings.get(name)?;
    let raw = raw.trim();
    Some(match kind {
        ImportKind::Int => json!(raw.parse::<i64>().ok()?),
        ImportKind::Size => {
            let n: u64 = raw.parse().ok()?;
            json!(size_text(n))
        }
        ImportKind::Bool => json!(raw == "1" || raw.eq_ignore_ascii_case("ON")),
        ImportKind::Number => {
            let f: f64 = raw.parse().ok()?;
            if f.fract() == 0.0 && f.abs() < 1e15 {
                json!(f as i64)
            } else {
                json!(f)
            }
        }
        ImportKind::SecondsAsDays => {
            let secs: u64 = raw.parse().ok()?;
            json!(secs.div_ceil(86_400))
        }
        ImportKind::Text => {
            // bind_address: any address is dbfleet's default; a loopback one would keep
            // the replicas out (left to dbfleet's default, with a note).
            if var == "bind_address"
                && matches!(
                    raw,
                    "*" | "0.0.0.0" | "::" | "127.0.0.1" | "::1" | "localhost"
                )
            {
                return None;
            }
            json!(raw)
        }
    })
}

/// Bytes with the largest of G, M, K that divides them ("128M"), else the bare number.
pub(super) fn size_text(n: u64) -> String {
    for (unit, bytes) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if n > 0 && n.is_multiple_of(bytes) {
            return format!("{}{unit}", n / bytes);
        }
    }
    n.to_string()
}

/// Bytes of a size value ("128M", 134217728).
fn size_bytes(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let (digits, shift) = match s.chars().last()?.to_ascii_uppercase() {
                'K' => (&s[..s.len() - 1], 10),
                'M' => (&s[..s.len() - 1], 20),
                'G' => (&s[..s.len() - 1], 30),
                'T' => (&s[..s.len() - 1], 40),
                _ => (s.as_str(), 0),
            };
            digits.parse::<u64>().ok().map(|d| d << shift)
        }
        _ => None,
    }
}

/// Whether `v` is dbfleet's default `d` for a variable of `kind`.
fn is_default(v: &Value, d: &Value, kind: ImportKind) -> bool {
    match kind {
        ImportKind::Size => size_bytes(v).is_some() && size_bytes(v) == size_bytes(d),
        _ => match (v, d) {
            (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
                a.to_string() == *b
            }
            _ => v == d,
        },
    }
}

/// The name of the secret holding an account's password: `USER_password`, the user name
/// lower case with anything but letters and digits made `_`.
fn secret_name(user: &str) -> String {
    let base: String = user
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{base}_password")
}

/// A grantee as the privilege tables write it: `'user'@'host'`.
fn grantee(user: &str, host: &str) -> String {
    format!(
        "'{}'@'{}'",
        user.replace('\'', "''"),
        host.replace('\'', "''")
    )
}

/// An object from the privilege tables (`*.*`, `` `db`.* ``, `` `db`.`t` ``) as a
/// declared grant writes it, or None when a name needs quoting dbfleet's grants do not
/// have.
fn object(o: &str) -> Option<String> {
    if o == "*.*" {
        return Some(o.into());
    }
    let plain = o.replace('`', "");
    let ok = plain.split('.').all(|p| {
        p == "*" || (!p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    });
    ok.then_some(plain)
}

/// An account's grants as the inventory declares them ("SELECT, INSERT ON app.*"), in the
/// privilege tables' order, and what cannot be declared (notes).
fn grants_of(primary: &Server, user: &str, host: &str) -> (Vec<String>, Vec<String>) {
    let who = grantee(user, host);
    let mut by_object: Vec<(String, Vec<String>)> = Vec::new();
    let mut notes = Vec::new();
    for (g, obj, privilege, grantable) in &primary.privileges {
        if *g != who || privilege == "USAGE" {
            continue;
        }
        if *grantable {
            notes.push(format!(
                "{user}@{host} may grant its privileges on {obj} (WITH GRANT OPTION): dbfleet's grants never do, and the first apply revokes it"
            ));
        }
        let Some(o) = object(obj) else {
            notes.push(format!(
                "{user}@{host}: {privilege} on {obj} is not written (a name dbfleet's grants cannot spell); the first apply would revoke it: grant it by hand after"
            ));
            continue;
        };
        match by_object.iter_mut().find(|(k, _)| *k == o) {
            Some((_, ps)) => ps.push(privilege.clone()),
            None => by_object.push((o, vec![privilege.clone()])),
        }
    }
    let grants = by_object
        .into_iter()
        .map(|(o, ps)| format!("{} ON {o}", ps.join(", ")))
        .collect();
    (grants, notes)
}

/// The inventory text for `t`.
pub fn write(t: &Topology, opts: &Options, defaults: &Defaults) -> String {
    let names = host_names(&t.servers);
    let primary = &t.servers[t.primary];
    let mut notes: Vec<String> = Vec::new();

    // Settings: (var → per server value), then fleet-wide or per host.
    let mut fleet_vars: Vec<(String, Value, String)> = Vec::new();
    let mut host_vars: BTreeMap<usize, Vec<(String, Value, String)>> = BTreeMap::new();
    for (var, ..) in crate::sql::import::IMPORTED_SETTINGS {
        let Some(default) = defaults.values.get(*var) else {
            continue;
        };
        let Some((_, kind)) = primary.dialect().imported_setting(var) else {
            continue;
        };
        let values: Vec<Option<Value>> = t.servers.iter().map(|s| value_of(s, var)).collect();
        let from_file = t.servers.iter().any(|s| {
            s.dialect()
                .imported_setting(var)
                .and_then(|(n, _)| s.settings.get(n))
                .is_some_and(|(_, f)| *f)
        });
        let why = if from_file {
            "set in the servers' option files".to_string()
        } else {
            format!("the server's default; dbfleet's is {default}")
        };
        let fits = |v: &Value| {
            defaults
                .types
                .get(*var)
                .is_none_or(|ty| ty.check(v).is_ok())
        };
        let all_same = values.windows(2).all(|w| w[0] == w[1]);
        match (&values[0], all_same) {
            (Some(v), true) => {
                if is_default(v, default, kind) {
                    continue;
                }
                if fits(v) {
                    fleet_vars.push((var.to_string(), v.clone(), why));
                } else {
                    notes.push(format!(
                        "{var}: the servers' {} is outside what dbfleet accepts; dbfleet's {default} applies",
                        comment(&v.to_string())
                    ));
                }
            }
            _ => {
                for (i, v) in values.iter().enumerate() {
                    let Some(v) = v else { continue };
                    if is_default(v, default, kind) {
                        continue;
                    }
                    if fits(v) {
                        host_vars.entry(i).or_default().push((
                            var.to_string(),
                            v.clone(),
                            why.clone(),
                        ));
                    } else {
                        notes.push(format!(
                            "{var} on {}: {} is outside what dbfleet accepts; dbfleet's {default} applies",
                            names[i],
                            comment(&v.to_string())
                        ));
                    }
                }
            }
        }
    }
    // The binary log stays where it is (playbooks/defaults.yml, log_bin_basename): its
    // GTID history is what the replicas follow. So does a replica's relay log
    // (relay_log_basename): its relay-log.info names it.
    for (i, s) in t.servers.iter().enumerate() {
        let datadir = s.datadir.trim_end_matches('/');
        let stems = [
            (
                "log_bin_basename",
                s.log_bin.then_some(s.log_bin_basename.as_str()),
                format!("{datadir}/mysql-bin"),
                "binary log",
            ),
            (
                "relay_log_basename",
                s.source.is_some().then_some(s.relay_log_basename.as_str()),
                format!("{datadir}/relay-bin"),
                "relay log",
            ),
        ];
        for (var, stem, default_stem, what) in stems {
            let Some(stem) = stem.filter(|p| !p.is_empty() && *p != default_stem) else {
                continue;
            };
            let fits = defaults
                .types
                .get(var)
                .is_none_or(|ty| ty.check(&json!(stem)).is_ok());
            if fits {
                host_vars.entry(i).or_default().push((
                    var.into(),
                    json!(stem),
                    format!("where this server's {what} is: dbfleet never moves it"),
                ));
            } else {
                notes.push(format!(
                    "{}: its {what} stem {} is not a path dbfleet accepts; the first apply would start a new one: move it by hand first",
                    names[i],
                    comment(stem)
                ));
            }
        }
    }
    // Semi-sync as the primary runs it: on (with its timeout), or dbfleet's default (off).
    let (enabled, timeout) = primary.dialect().semi_sync_primary_settings();
    let live = |n: &str| primary.settings.get(n).map(|(v, _)| v.trim().to_string());
    if live(enabled).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON")) {
        fleet_vars.push((
            "semi_sync".into(),
            json!(true),
            "the primary waits for a replica's acknowledgement".into(),
        ));
        if let Some(ms) = live(timeout).and_then(|v| v.parse::<u64>().ok())
            && defaults
                .values
                .get("semi_sync_timeout_ms")
                .is_none_or(|d| d.as_u64() != Some(ms))
        {
            fleet_vars.push((
                "semi_sync_timeout_ms".into(),
                json!(ms),
                "the primary's, in milliseconds".into(),
            ));
        }
    }
    // Settings the operator's files set that no variable carries: they stay in those files.
    let managed: Vec<&str> = crate::sql::import::IMPORTED_SETTINGS
        .iter()
        .flat_map(|(_, m, y, _)| [*m, *y])
        .collect();
    for (i, s) in t.servers.iter().enumerate() {
        let kept: Vec<String> = s
            .settings
            .iter()
            .filter(|(n, (_, f))| {
                *f && !managed.contains(&n.as_str())
                    && !STRUCTURAL_SETTINGS.contains(&n.as_str())
                    && ![enabled, timeout].contains(&n.as_str())
            })
            .map(|(n, (v, _))| format!("{n} = {v}"))
            .collect();
        if !kept.is_empty() {
            notes.push(format!(
                "{}: set in its option files, no dbfleet variable, left in those files as they are: {}",
                names[i],
                comment(&kept.join(", "))
            ));
        }
        if !s.log_bin {
            notes.push(format!(
                "{}: no binary log; dbfleet turns it on (log_bin, a restart)",
                names[i]
            ));
        }
        if let Some(st) = &s.source
            && !st.gtid_positioned
        {
            notes.push(format!(
                "{}: replicates by binary log file and position; the first apply moves it to GTID and verified TLS, live, from where it is (no copy of the data)",
                names[i]
            ));
        }
    }

    // Accounts: the primary's, less the server's own and replication's.
    // As the replicas say, and as their sources see them connected.
    let replication_users: Vec<String> = t
        .servers
        .iter()
        .filter_map(|s| s.source.as_ref().map(|st| st.source_user.clone()))
        .chain(
            t.servers
                .iter()
                .flat_map(|s| s.replicas.iter().map(|(_, u)| u.clone())),
        )
        .filter(|u| !u.is_empty())
        .collect();
    let mut users: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut secrets: Vec<(String, String, String)> = Vec::new();
    for (user, host) in &primary.accounts {
        if is_system_account(user) {
            continue;
        }
        if replication_users.contains(user) {
            notes.push(format!(
                "{user}@{host} is the replication account the replicas use now; dbfleet replicates with its own (dbfleet_repl, TLS required) and leaves {user} as it is: drop it by hand once the fleet is converted"
            ));
            continue;
        }
        let named = !user.is_empty()
            && user.len() <= 64
            && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !named {
            notes.push(format!(
                "{}@{}: a user name dbfleet cannot declare (letters, digits and _ only); left as it is",
                comment(user),
                comment(host)
            ));
            continue;
        }
        let (grants, mut gnotes) = grants_of(primary, user, host);
        let refused: Vec<&String> = grants
            .iter()
            .filter(|g| {
                crate::sql::grant::parse(g)
                    .ok()
                    .is_none_or(|d| crate::sql::grant::forbidden_for_applications(&d).is_some())
            })
            .collect();
        if !refused.is_empty() {
            notes.push(format!(
                "{user}@{host} holds {} which dbfleet never declares for an application account; left out of the inventory (dbfleet leaves accounts it does not declare as they are)",
                comment(
                    &refused
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            ));
            continue;
        }
        notes.append(&mut gnotes);
        let secret = secret_name(user);
        if !secrets.iter().any(|(s, ..)| *s == secret) {
            secrets.push((
                secret.clone(),
                secret.to_ascii_uppercase(),
                format!("{user}@{host}"),
            ));
        }
        users.push((user.clone(), host.clone(), grants));
    }
    // What seed 000's hardening would remove: kept (`hardening: false`) until the operator
    // says otherwise, so the first plan drops nothing.
    let mut hardened: Vec<&str> = Vec::new();
    if primary.accounts.iter().any(|(u, _)| u.is_empty()) {
        hardened.push("anonymous accounts");
    }
    if primary
        .accounts
        .iter()
        .any(|(u, h)| u == "root" && !matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1"))
    {
        hardened.push("root accounts reachable from other hosts");
    }
    if primary.databases.iter().any(|(d, ..)| d == "test") {
        hardened.push("a `test` database");
    }
    if !hardened.is_empty() {
        notes.push(format!(
            "the servers have {}, which dbfleet's hardening (seed 000) removes: `hardening: false` below keeps them; set it true to let dbfleet remove them",
            hardened.join(", ")
        ));
        fleet_vars.push((
            "hardening".into(),
            json!(false),
            "keeps what the notes above list; true removes it".into(),
        ));
    }
    // MySQL by file and position: the first apply turns GTIDs on, live
    // (`crate::runbooks::gtid_online`), before anything restarts.
    let off: Vec<String> = t
        .servers
        .iter()
        .filter(|s| s.flavor == Flavor::Mysql && !s.gtid_mode.eq_ignore_ascii_case("ON"))
        .map(|s| format!("{} ({})", s.hostname, s.gtid_mode))
        .collect();
    if !off.is_empty() {
        notes.push(format!(
            "gtid_mode is not ON on {}: the first apply turns GTIDs on live, every server one step at a time (MySQL manual, \"Enabling GTID Transactions Online\"), after watching the error logs for gtid_consistency_warn_seconds (30 s) for statements GTIDs cannot carry, which stop it",
            comment(&off.join(", "))
        ));
    }
    for (addr, why) in &t.unreachable {
        notes.push(format!(
            "{} was named by replication and could not be read ({}); it is not in this inventory",
            comment(addr),
            comment(why)
        ));
    }
    if opts.proxies.is_empty() {
        notes.push("no proxy named: add proxies with `--proxy ADDRESS` (HAProxy on them is then dbfleet's)".into());
    }
    notes.push("backups: import does not read cron jobs or scripts; declare `backups:` to let dbfleet take them over".into());

    let mut y = String::new();
    let _ = writeln!(y, "# yaml-language-server: $schema=dbfleet.schema.json");
    let _ = writeln!(
        y,
        "# (the schema for editors: `dbfleet schema > dbfleet.schema.json` beside this file)"
    );
    let _ = writeln!(
        y,
        "# Written by `dbfleet import --from {}` from the running servers (dbfleet {}).",
        comment(&opts.from),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        y,
        "# Before `dbfleet plan`: set each account's password in the environment (secrets below)."
    );
    let _ = writeln!(y, "# What import could not learn or carry over:");
    for n in &notes {
        let _ = writeln!(y, "#   - {n}");
    }
    let _ = writeln!(y);
    let _ = writeln!(y, "fleet:");
    let _ = writeln!(y, "  name: {}", yaml_str(&opts.fleet));
    let _ = writeln!(y, "  flavor: {}", primary.flavor.as_str());
    let _ = writeln!(
        y,
        "  version: {}          # {}",
        yaml_str(&primary.major_minor()),
        comment(&primary.version)
    );
    let ssh: Vec<(&str, String)> = [
        ("user", opts.ssh_user.as_deref().map(yaml_str)),
        ("port", opts.ssh_port.map(|p| p.to_string())),
        ("config", opts.ssh_config.as_deref().map(yaml_str)),
        ("identity", opts.ssh_identity.as_deref().map(yaml_str)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if !ssh.is_empty() {
        let _ = writeln!(y, "  ssh:");
        for (k, v) in ssh {
            let _ = writeln!(y, "    {k}: {v}");
        }
    }
    if !fleet_vars.is_empty() {
        let _ = writeln!(y, "  vars:");
        for (k, v, why) in &fleet_vars {
            let _ = writeln!(y, "    {k}: {}          # {}", scalar(v), comment(why));
        }
    }
    let _ = writeln!(y);
    let _ = writeln!(y, "secrets:");
    let _ = writeln!(
        y,
        "  replication_password: {{ generate: 32 }}   # dbfleet's replication account"
    );
    let _ = writeln!(
        y,
        "  monitor_password: {{ generate: 32 }}       # dbfleet's monitoring account"
    );
    let _ = writeln!(
        y,
        "  backup_password: {{ generate: 32 }}        # dbfleet's backup account"
    );
    for (name, env, who) in &secrets {
        let _ = writeln!(
            y,
            "  {name}: {{ env: {env} }}   # the current password of {}: set {env} (dbfleet keeps it)",
            comment(who)
        );
    }
    let dbs: Vec<&(String, String, String)> = primary
        .databases
        .iter()
        .filter(|(d, ..)| d != "test" && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    if !dbs.is_empty() {
        let _ = writeln!(y);
        let _ = writeln!(y, "databases:");
        for (d, cs, co) in dbs {
            let _ = writeln!(y, "  - name: {}", yaml_str(d));
            // Against dbfleet's default (what a database without them declares), not the
            // server's: MySQL's utf8mb4_0900_ai_ci left out became an ALTER DATABASE in the
            // first plan.
            if cs != crate::inventory::DEFAULT_CHARSET || co != crate::inventory::DEFAULT_COLLATION
            {
                let _ = writeln!(y, "    charset: {}", yaml_str(cs));
                let _ = writeln!(y, "    collation: {}", yaml_str(co));
            }
        }
    }
    if !users.is_empty() {
        let _ = writeln!(y);
        let _ = writeln!(y, "users:");
        for (u, h, grants) in &users {
            let _ = writeln!(y, "  - name: {}", yaml_str(u));
            let _ = writeln!(y, "    host: {}", yaml_str(h));
            let _ = writeln!(y, "    password: {}", secret_name(u));
            let g: Vec<String> = grants.iter().map(|g| yaml_str(g)).collect();
            let _ = writeln!(y, "    grants: [{}]", g.join(", "));
        }
    }
    let _ = writeln!(y);
    let _ = writeln!(y, "hosts:");
    // The primary first, then by server_id: as an operator would list them.
    let mut order: Vec<usize> = (0..t.servers.len()).collect();
    order.sort_by_key(|i| (*i != t.primary, t.servers[*i].server_id));
    for i in order {
        let s = &t.servers[i];
        let _ = writeln!(y, "  {}:", names[i]);
        let _ = writeln!(y, "    address: {}", yaml_str(&s.address));
        let role = if i == t.primary { "primary" } else { "replica" };
        let _ = writeln!(y, "    roles: [{role}]");
        let _ = writeln!(y, "    server_id: {}", s.server_id);
        if let Some(src) = t.sources[i]
            && src != t.primary
        {
            let _ = writeln!(y, "    source: {}", names[src]);
        }
        if let Some(vars) = host_vars.get(&i) {
            let _ = writeln!(y, "    vars:");
            for (k, v, why) in vars {
                let _ = writeln!(y, "      {k}: {}          # {}", scalar(v), comment(why));
            }
        }
    }
    for (i, p) in opts.proxies.iter().enumerate() {
        let _ = writeln!(y, "  proxy{}:", i + 1);
        let _ = writeln!(y, "    address: {}", yaml_str(p));
        let _ = writeln!(y, "    roles: [proxy]");
    }
    y
}

/// A variable's value as YAML: numbers and booleans bare, text as a JSON string.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_str(s),
        other => other.to_string(),
    }
}
