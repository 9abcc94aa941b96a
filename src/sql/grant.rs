//! Grants as the inventory declares them, parsed strictly into privileges and an object, so
//! that the rules about them (which privileges an application user may hold) run on what
//! will be sent to the server, not on the text a reviewer read (issue 11: a spelling that
//! slipped past a text check rendered as `ALL ON *.*`; text after the object was dropped).
//!
//! The accepted form is `PRIVILEGE[, PRIVILEGE…] ON OBJECT`, nothing before or after it:
//! - a privilege is one of [`PRIVILEGES`] (MariaDB 10.11 KB "GRANT", MySQL 8.0 manual
//!   6.2.2), any case, words separated by blanks; `ALL` means `ALL PRIVILEGES`;
//! - the object is `*.*`, `DB.*` or `DB.TABLE`; a name is `[A-Za-z0-9_]`, 1 to 64
//!   characters (MariaDB KB "Identifier Names": 64), bare or in backticks. A backticked
//!   `*` is a database literally named `*` to the server, not "every database", so it is
//!   refused rather than guessed.
//!
//! `WITH GRANT OPTION`, `TO …`, `IDENTIFIED BY`, column lists, `;` and anything else left
//! over are errors.

use std::collections::BTreeSet;
use std::fmt;

/// Every privilege name a declared grant may use, in canonical spelling.
pub const PRIVILEGES: &[&str] = &[
    "ALL PRIVILEGES",
    "ALTER",
    "ALTER ROUTINE",
    "BINLOG ADMIN",
    "BINLOG MONITOR",
    "BINLOG REPLAY",
    "CONNECTION ADMIN",
    "CREATE",
    "CREATE ROUTINE",
    "CREATE TABLESPACE",
    "CREATE TEMPORARY TABLES",
    "CREATE USER",
    "CREATE VIEW",
    "DELETE",
    "DELETE HISTORY",
    "DROP",
    "EVENT",
    "EXECUTE",
    "FEDERATED ADMIN",
    "FILE",
    "GRANT OPTION",
    "INDEX",
    "INSERT",
    "LOCK TABLES",
    "PROCESS",
    "READ ONLY ADMIN",
    "REFERENCES",
    "RELOAD",
    "REPLICA MONITOR",
    "REPLICATION CLIENT",
    "REPLICATION MASTER ADMIN",
    "REPLICATION SLAVE",
    "REPLICATION SLAVE ADMIN",
    "SELECT",
    "SET USER",
    "SHOW DATABASES",
    "SHOW VIEW",
    "SHUTDOWN",
    "SLAVE MONITOR",
    "SUPER",
    "TRIGGER",
    "UPDATE",
    "USAGE",
];

/// What a grant applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// `*.*`
    Global,
    /// `db.*`
    Database(String),
    /// `db.table`
    Table(String, String),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Object::Global => write!(f, "*.*"),
            Object::Database(d) => write!(f, "`{d}`.*"),
            Object::Table(d, t) => write!(f, "`{d}`.`{t}`"),
        }
    }
}

/// A declared grant, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGrant {
    /// Canonical privilege names ([`PRIVILEGES`]).
    pub privileges: BTreeSet<String>,
    pub object: Object,
}

impl fmt::Display for DeclaredGrant {
    /// The canonical text, `SELECT, INSERT ON `app`.*`: what is sent to the server.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let privs: Vec<&str> = self.privileges.iter().map(String::as_str).collect();
        write!(f, "{} ON {}", privs.join(", "), self.object)
    }
}

/// Privileges an application user must never hold, and why.
///
/// SUPER and READ ONLY ADMIN let it write on a read_only replica, which makes errant
/// transactions (verified on MariaDB 10.11, DESIGN.md); GRANT OPTION would let it hand its
/// privileges out; ALL PRIVILEGES ON *.* holds all of those.
pub fn forbidden_for_applications(g: &DeclaredGrant) -> Option<String> {
    for p in ["SUPER", "READ ONLY ADMIN", "GRANT OPTION"] {
        if g.privileges.contains(p) {
            return Some(p.to_string());
        }
    }
    (g.object == Object::Global && g.privileges.contains("ALL PRIVILEGES"))
        .then(|| "ALL PRIVILEGES ON *.*".to_string())
}

/// Parses a declared grant.
///
/// Errors: a message naming what is wrong (an unknown privilege, a bad name, leftover
/// text), meant to be shown at the grant's file:line:col.
pub fn parse(text: &str) -> Result<DeclaredGrant, String> {
    let (privs, object) = split_on(text).ok_or_else(|| {
        "not `PRIVILEGES ON OBJECT` (e.g. \"SELECT, INSERT ON app.*\")".to_string()
    })?;
    let mut privileges = BTreeSet::new();
    for p in privs.split(',') {
        let words: Vec<&str> = p.split_whitespace().collect();
        if words.is_empty() {
            return Err("an empty privilege in the list".into());
        }
        let name = words.join(" ").to_ascii_uppercase().replace('_', " ");
        let name = match name.as_str() {
            "ALL" => "ALL PRIVILEGES".to_string(),
            _ => name,
        };
        if !PRIVILEGES.contains(&name.as_str()) {
            return Err(format!(
                "`{}` is not a privilege dbfleet knows (a column list, or a typo?)",
                words.join(" ")
            ));
        }
        privileges.insert(name);
    }
    let object = parse_object(object.trim())?;
    Ok(DeclaredGrant { privileges, object })
}

/// Splits at the first ` ON ` keyword (any case, blanks around it) outside backticks.
fn split_on(text: &str) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    let mut quoted = false;
    for i in 0..b.len() {
        match b[i] {
            b'`' => quoted = !quoted,
            c if !quoted
                && c.is_ascii_whitespace()
                && i + 3 < b.len()
                && b[i + 1].eq_ignore_ascii_case(&b'o')
                && b[i + 2].eq_ignore_ascii_case(&b'n')
                && b[i + 3].is_ascii_whitespace() =>
            {
                return Some((&text[..i], &text[i + 4..]));
            }
            _ => {}
        }
    }
    None
}

fn parse_object(s: &str) -> Result<Object, String> {
    let (db, rest) = name(s)?;
    let rest = rest
        .strip_prefix('.')
        .ok_or_else(|| format!("`{s}` is not DB.* or DB.TABLE"))?;
    let (table, left) = name(rest)?;
    if !left.trim().is_empty() {
        return Err(format!(
            "`{}` after the object is not allowed (WITH GRANT OPTION, TO, …: dbfleet sets those itself or never)",
            left.trim()
        ));
    }
    match (db, table) {
        (Name::Star, Name::Star) => Ok(Object::Global),
        (Name::Star, Name::Ident(_)) => Err(format!("`{s}` names a table in every database")),
        (Name::Ident(d), Name::Star) => Ok(Object::Database(d)),
        (Name::Ident(d), Name::Ident(t)) => Ok(Object::Table(d, t)),
    }
}

enum Name {
    Star,
    Ident(String),
}

/// One object name at the start of `s`; returns it and the rest.
fn name(s: &str) -> Result<(Name, &str), String> {
    if let Some(rest) = s.strip_prefix('*') {
        return Ok((Name::Star, rest));
    }
    let (raw, rest) = if let Some(q) = s.strip_prefix('`') {
        let end = q
            .find('`')
            .ok_or_else(|| format!("unclosed backtick in `{s}`"))?;
        (&q[..end], &q[end + 1..])
    } else {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (&s[..end], &s[end..])
    };
    if raw.is_empty()
        || raw.len() > 64
        || !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "`{raw}` is not a database or table name dbfleet accepts: 1 to 64 of A-Z a-z 0-9 _"
        ));
    }
    Ok((Name::Ident(raw.to_string()), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(t: &str) -> Option<String> {
        forbidden_for_applications(&parse(t).unwrap())
    }

    #[test]
    fn the_canonical_form_is_what_is_sent() {
        let g = parse("select,  Insert ON app.*").unwrap();
        assert_eq!(g.to_string(), "INSERT, SELECT ON `app`.*");
        assert_eq!(
            parse("SELECT on `app`.`t1`").unwrap().to_string(),
            "SELECT ON `app`.`t1`"
        );
        assert_eq!(parse("all\ton *.*").unwrap().object, Object::Global);
    }

    #[test]
    fn every_spelling_of_a_forbidden_privilege_is_caught() {
        for t in [
            "ALL ON *.*",
            "all privileges on *.*",
            "ALL   PRIVILEGES ON *.*",
            "Super ON app.*",
            "READ_ONLY ADMIN ON *.*",
            "read  only   admin ON app.*",
            "GRANT OPTION ON app.*",
            "SELECT,ALL ON *.*",
        ] {
            assert!(forbidden(t).is_some(), "{t}");
        }
        assert_eq!(forbidden("ALL ON app.*"), None);
    }

    #[test]
    fn leftovers_and_tricks_are_errors() {
        for t in [
            "SELECT ON app.* WITH GRANT OPTION",
            "SELECT ON app.* TO `x`@`%`",
            "SELECT ON app.*; DROP DATABASE app",
            "ALL ON `*`.`*`",
            "SELECT ON `a``b`.*",
            "SELECT (id) ON app.t",
            "SELECT ON app",
            "SELECT ON *.t",
            "SELECTON app.*",
            "SELECT, ON app.*",
            "BOGUS ON app.*",
        ] {
            assert!(parse(t).is_err(), "{t} must not parse");
        }
    }
}
