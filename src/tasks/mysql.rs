//! SQL task kinds: `mysql_user` (an account with its password, TLS requirement and exact
//! grants), `mysql_database`, and `sql` (statements guarded by an `unless` query).
//!
//! They run through the server's own client on the host, as root over the local socket
//! (Debian's root uses unix_socket auth), with the SQL on stdin. A user's password never
//! leaves the operator's machine on MariaDB and MySQL 8.0: statements and the probe carry
//! its mysql_native_password hash only (MySQL 8.4 needs the plaintext, on stdin).
//! When the server is not up yet (a fresh host), the probe says `unavailable` and the plan
//! shows a create; the apply runs after the server's start task.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Assessment};
use crate::sql::{AuthOwned, Dialect, account, quote};

/// A probe or script running `sql` with the dialect's client (stdin heredoc).
fn client(d: Dialect, sql: &str, force: bool) -> String {
    let f = if force { " --force" } else { "" };
    format!(
        "{} -N -B{f} <<'DBFLEET_SQL'\n{sql}\nDBFLEET_SQL",
        d.client()
    )
}

const UP: &str = "dbfleet-up";

fn is_up(facts: &str) -> bool {
    facts.lines().any(|l| l.trim() == UP)
}

/// One grant, normalised: privileges (upper case, aliases resolved) on an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub privileges: BTreeSet<String>,
    /// `db.table` without backticks; `*.*` for global.
    pub object: String,
}

impl Grant {
    /// Parses "PRIVS ON OBJECT" (inventory form) or a `SHOW GRANTS` line.
    pub fn parse(d: Dialect, text: &str) -> Option<Grant> {
        let t = text.trim().strip_prefix("GRANT ").unwrap_or(text.trim());
        let (privs, rest) = t.split_once(" ON ")?;
        let object = rest.split(" TO ").next()?.trim().replace('`', "");
        let privileges = privs
            .split(',')
            .map(|p| normalise(d, p.trim()))
            .filter(|p| p != "USAGE" && !p.is_empty())
            .collect();
        Some(Grant { privileges, object })
    }
    pub fn render(&self) -> String {
        let privs: Vec<&str> = self.privileges.iter().map(String::as_str).collect();
        let object = match self.object.split_once('.') {
            Some((db, t)) if db != "*" => format!(
                "`{db}`.{}",
                if t == "*" {
                    "*".to_string()
                } else {
                    format!("`{t}`")
                }
            ),
            _ => self.object.clone(),
        };
        format!("{} ON {object}", privs.join(", "))
    }
}

/// Privilege names as the server prints them (MariaDB 10.11, verified: REPLICATION CLIENT
/// is shown as BINLOG MONITOR, REPLICA MONITOR as SLAVE MONITOR).
fn normalise(d: Dialect, p: &str) -> String {
    let p = p
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    match (d, p.as_str()) {
        (_, "ALL") => "ALL PRIVILEGES".into(),
        (Dialect::MariaDb, "REPLICATION CLIENT") => "BINLOG MONITOR".into(),
        (Dialect::MariaDb, "REPLICA MONITOR") => "SLAVE MONITOR".into(),
        _ => p,
    }
}

/// Grants merged per object (the server shows one line per object).
fn by_object(grants: &[Grant]) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for g in grants {
        if !g.privileges.is_empty() {
            m.entry(g.object.clone())
                .or_default()
                .extend(g.privileges.iter().cloned());
        }
    }
    m
}

#[derive(Debug, Clone)]
pub struct UserRes {
    pub dialect: Dialect,
    pub name: String,
    pub host: String,
    pub auth: AuthOwned,
    pub require_ssl: bool,
    pub grants: Vec<Grant>,
}

impl UserRes {
    pub fn state(&self) -> String {
        let auth = match &self.auth {
            AuthOwned::NativeHash(h) => h.clone(),
            AuthOwned::Plain(p) => crate::tasks::file::sha256_hex(p.as_bytes()),
        };
        format!(
            "user auth={auth} ssl={} grants={:?}",
            self.require_ssl,
            by_object(&self.grants)
        )
    }
    pub fn probe(&self) -> String {
        client(self.dialect, &self.probe_sql(), true)
    }
    /// The probe's statements (run with `--force`; [`crate::facts`] batches them per host).
    pub fn probe_sql(&self) -> String {
        format!(
            "SELECT '{UP}';\nSELECT 'user', plugin, authentication_string, ssl_type, {} FROM mysql.user WHERE User = {} AND Host = {};\nSHOW GRANTS FOR {};",
            self.dialect.password_digest_column(),
            quote(&self.name),
            quote(&self.host),
            account(&self.name, &self.host)
        )
    }
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let label = format!("{}@{}", self.name, self.host);
        if !is_up(facts) {
            return Ok(Some(Assessment {
                action: Action::Create,
                summary: format!("create user {label}"),
                diff: None,
                before: "unavailable".into(),
                notes: vec![
                    "the server is not running yet; the user is created after it starts".into(),
                ],
            }));
        }
        let Some(row) = facts.lines().find(|l| l.starts_with("user\t")) else {
            return Ok(Some(Assessment {
                action: Action::Create,
                summary: format!("create user {label} ({} grants)", self.grants.len()),
                diff: None,
                before: "absent".into(),
                notes: Vec::new(),
            }));
        };
        let f: Vec<&str> = row.split('\t').collect();
        let (plugin, auth_string, ssl_type, digest) = (
            f.get(1).copied().unwrap_or(""),
            f.get(2).copied().unwrap_or(""),
            f.get(3).copied().unwrap_or(""),
            f.get(4).copied().unwrap_or(""),
        );
        let current: Vec<Grant> = facts
            .lines()
            .filter(|l| l.starts_with("GRANT "))
            .filter_map(|l| Grant::parse(self.dialect, l))
            .collect();
        let (cur, want) = (by_object(&current), by_object(&self.grants));
        let mut what = Vec::new();
        let auth_ok = match &self.auth {
            AuthOwned::NativeHash(h) => plugin == "mysql_native_password" && auth_string == h,
            // caching_sha2 hashes are salted at random: compare the digest dbfleet keeps
            // in the account's attributes (`sql::password_digest`), never the plaintext.
            AuthOwned::Plain(p) => {
                plugin == "caching_sha2_password"
                    && digest == crate::sql::password_digest(&self.name, &self.host, p)
            }
        };
        if !auth_ok {
            what.push("password".to_string());
        }
        if (ssl_type == "ANY") != self.require_ssl {
            what.push(if self.require_ssl {
                "require SSL".into()
            } else {
                "drop SSL requirement".to_string()
            });
        }
        if cur != want {
            // Per object: what is added and what is revoked.
            let objects: BTreeSet<&String> = cur.keys().chain(want.keys()).collect();
            let empty = BTreeSet::new();
            for o in objects {
                let (c, w) = (cur.get(o).unwrap_or(&empty), want.get(o).unwrap_or(&empty));
                let mut d: Vec<String> = w.difference(c).map(|p| format!("+{p}")).collect();
                d.extend(c.difference(w).map(|p| format!("-{p}")));
                if !d.is_empty() {
                    what.push(format!("grants on {o}: {}", d.join(" ")));
                }
            }
        }
        if what.is_empty() {
            return Ok(None);
        }
        let before =
            format!("user plugin={plugin} auth={auth_string} ssl={ssl_type} grants={cur:?}");
        Ok(Some(Assessment {
            action: Action::Update,
            summary: format!("update user {label} ({})", what.join(", ")),
            diff: None,
            before,
            notes: Vec::new(),
        }))
    }
    /// Idempotent: creates the user if missing, then sets password, TLS and exactly the
    /// declared grants.
    pub fn statements(&self) -> Vec<String> {
        let d = self.dialect;
        let create = d
            .create_user(&self.name, &self.host, &self.auth, self.require_ssl)
            .replacen("CREATE USER", "CREATE USER IF NOT EXISTS", 1);
        let mut v = vec![
            create,
            d.alter_user(&self.name, &self.host, &self.auth, self.require_ssl),
            d.record_password(&self.name, &self.host, &self.auth),
            d.revoke_all(&self.name, &self.host),
        ];
        for g in &self.grants {
            if !g.privileges.is_empty() {
                v.push(d.grant(&g.render(), &self.name, &self.host));
            }
        }
        v.retain(|s| !s.is_empty());
        v
    }
    pub fn apply_script(&self) -> String {
        format!(
            "set -eu\n{}\n",
            client(self.dialect, &self.statements().join("\n"), false)
        )
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseRes {
    pub dialect: Dialect,
    pub name: String,
    pub charset: String,
    pub collation: String,
}

impl DatabaseRes {
    pub fn state(&self) -> String {
        format!("database {} {}", self.charset, self.collation)
    }
    pub fn probe(&self) -> String {
        client(self.dialect, &self.probe_sql(), true)
    }
    /// The probe's statements (run with `--force`; [`crate::facts`] batches them per host).
    pub fn probe_sql(&self) -> String {
        format!(
            "SELECT '{UP}';\nSELECT 'db', DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};",
            quote(&self.name)
        )
    }
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let row = facts.lines().find(|l| l.starts_with("db\t"));
        match row {
            None => Ok(Some(Assessment {
                action: Action::Create,
                summary: format!(
                    "create database {} ({} {})",
                    self.name, self.charset, self.collation
                ),
                diff: None,
                before: if is_up(facts) {
                    "absent".into()
                } else {
                    "unavailable".into()
                },
                notes: Vec::new(),
            })),
            Some(r) => {
                let f: Vec<&str> = r.split('\t').collect();
                let before = format!(
                    "database {} {}",
                    f.get(1).unwrap_or(&""),
                    f.get(2).unwrap_or(&"")
                );
                if before == self.state() {
                    return Ok(None);
                }
                Ok(Some(Assessment {
                    action: Action::Update,
                    summary: format!(
                        "alter database {} ({before} → {} {})",
                        self.name, self.charset, self.collation
                    ),
                    diff: None,
                    before,
                    notes: Vec::new(),
                }))
            }
        }
    }
    pub fn apply_script(&self) -> String {
        let d = self.dialect;
        let sql = format!(
            "{}\nALTER DATABASE {} CHARACTER SET {} COLLATE {};",
            d.create_database(&self.name, &self.charset, &self.collation),
            crate::sql::ident(&self.name),
            self.charset,
            self.collation
        );
        format!("set -eu\n{}\n", client(d, &sql, false))
    }
}

/// `sql`: statements run when the `unless` query does not return 1.
#[derive(Debug, Clone)]
pub struct SqlRes {
    pub dialect: Dialect,
    pub name: String,
    pub run: String,
    pub unless: String,
    /// What running it removes, as the playbook says (`destroys:`); None when nothing.
    pub destroys: Option<String>,
}

impl SqlRes {
    pub fn state(&self) -> String {
        "done".into()
    }
    pub fn probe(&self) -> String {
        client(self.dialect, &self.probe_sql(), true)
    }
    /// The probe's statements (run with `--force`; [`crate::facts`] batches them per host).
    pub fn probe_sql(&self) -> String {
        format!(
            "SELECT '{UP}';\nSELECT CONCAT('unless=', ({}));",
            self.unless.trim().trim_end_matches(';')
        )
    }
    pub fn assess(&self, facts: &str) -> Option<Assessment> {
        let done = facts.lines().any(|l| l.trim() == "unless=1");
        (!done).then(|| Assessment {
            action: Action::Run,
            summary: format!("run SQL: {}", self.name),
            diff: None,
            before: if is_up(facts) {
                "pending".into()
            } else {
                "unavailable".into()
            },
            notes: Vec::new(),
        })
    }
    pub fn apply_script(&self) -> String {
        format!("set -eu\n{}\n", client(self.dialect, &self.run, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_compare_across_aliases_and_show_grants_format() {
        let d = Dialect::MariaDb;
        let want = Grant::parse(d, "replication client, REPLICA MONITOR, PROCESS ON *.*").unwrap();
        let shown = Grant::parse(d, "GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `m`@`localhost` IDENTIFIED BY PASSWORD '*X'").unwrap();
        assert_eq!(want, shown);
        let db = Grant::parse(d, "GRANT SELECT, INSERT ON `app`.* TO `a`@`%`").unwrap();
        assert_eq!(db.object, "app.*");
        assert_eq!(db.render(), "INSERT, SELECT ON `app`.*");
    }

    #[test]
    fn user_matches_only_with_same_hash_ssl_and_grants() {
        let d = Dialect::MariaDb;
        let u = UserRes {
            dialect: d,
            name: "r".into(),
            host: "%".into(),
            auth: AuthOwned::NativeHash("*AB".into()),
            require_ssl: true,
            grants: vec![Grant::parse(d, "REPLICATION SLAVE ON *.*").unwrap()],
        };
        let facts = "dbfleet-up\nuser\tmysql_native_password\t*AB\tANY\nGRANT REPLICATION SLAVE ON *.* TO `r`@`%` IDENTIFIED BY PASSWORD '*AB' REQUIRE SSL\n";
        assert!(u.assess(facts).unwrap().is_none());
        let a = u.assess(&facts.replace("\tANY", "\t")).unwrap().unwrap();
        assert_eq!(a.summary, "update user r@% (require SSL)");
        assert_eq!(u.assess("").unwrap().unwrap().before, "unavailable");
        assert_eq!(
            u.assess("dbfleet-up\n").unwrap().unwrap().action,
            Action::Create
        );
    }
}
