//! The layers of `src/` (README, "Architecture"), checked on the source text: the command
//! line stops at `cli.rs`, the commands are called by it alone, tasks do not reach up into
//! runbooks, and the server's own statement and field names live in `src/sql/` only
//! (issue 12).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every `.rs` file under `src/`, as (path relative to `src/`, code without comment lines
/// and without its `#[cfg(test)]` part).
fn sources() -> Vec<(String, String)> {
    let src = Path::new(ROOT).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut out: Vec<(String, String)> = all
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            let rel = p.strip_prefix(&src).expect("under src");
            (rel.display().to_string(), code)
        })
        .collect();
    out.sort();
    out
}

/// The top-level module a file belongs to ("tasks/primary.rs" → "tasks").
fn module_of(rel: &str) -> &str {
    rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs")
}

/// The top-level modules `code` names through `crate::`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn only_the_command_line_knows_clap_and_only_it_calls_the_commands() {
    let mut wrong = Vec::new();
    for (rel, code) in sources() {
        let m = module_of(&rel);
        if m == "cli" || m == "main" || m == "lib" {
            continue;
        }
        let u = uses(&code);
        if u.contains("cli") || code.contains("clap::") {
            wrong.push(format!("{rel} uses the command line"));
        }
        if m != "commands" && u.contains("commands") {
            wrong.push(format!("{rel} calls a command"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn tasks_import_nothing_from_runbooks_or_commands() {
    let wrong: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| module_of(rel) == "tasks")
        .filter(|(_, code)| {
            let u = uses(code);
            u.contains("runbooks") || u.contains("commands")
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn server_statement_and_field_names_live_in_the_dialect_module() {
    // The names that differ between MariaDB and MySQL (`git grep -nE "SHOW (SLAVE|REPLICA)
    // STATUS|CHANGE (MASTER|REPLICATION SOURCE)|Master_Host|gtid_binlog_pos" src templates`):
    // outside src/sql/ they are a dialect decision made twice (issue 13: a switchover on
    // MySQL looked for Master_Host and made two writers). Templates get them as variables.
    let names = [
        "SHOW SLAVE STATUS",
        "SHOW REPLICA STATUS",
        "CHANGE MASTER",
        "CHANGE REPLICATION SOURCE",
        "Master_Host",
        "gtid_binlog_pos",
    ];
    let mut all = Vec::new();
    files(&Path::new(ROOT).join("src"), &mut all);
    files(&Path::new(ROOT).join("templates"), &mut all);
    let sql = Path::new(ROOT).join("src").join("sql");
    let mut wrong = Vec::new();
    for p in all.iter().filter(|p| !p.starts_with(&sql)) {
        let text = std::fs::read_to_string(p).expect("read");
        for (n, line) in text.lines().enumerate() {
            if names.iter().any(|name| line.contains(name)) {
                wrong.push(format!(
                    "{}:{}: {}",
                    p.strip_prefix(ROOT).unwrap_or(p).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_dialect_module_is_the_bottom_layer() {
    // `src/sql/` is what every layer above asks about a server: it uses nothing of theirs
    // (it held `inventory`'s Flavor before, an import cycle).
    let wrong: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| module_of(rel) == "sql")
        .flat_map(|(rel, code)| {
            uses(&code)
                .into_iter()
                .filter(|m| m != "sql")
                .map(move |m| format!("{rel} uses crate::{m}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
