//! The layers of `src/` (docs/src/layout.md, "Architecture"), checked on the source text: the command
//! line stops at `cli.rs`, the commands are called by it alone, tasks do not reach up into
//! runbooks, the server's own statement and field names live in `src/sql/` only, and no
//! module imports one that imports it back (issue 12).

use std::collections::{BTreeMap, BTreeSet};
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
/// and without its unit tests).
fn sources() -> Vec<(String, String)> {
    let src = Path::new(ROOT).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut out: Vec<(String, String)> = all
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            // The unit tests at the end of a file (a `#[cfg(test)]` item elsewhere, such as
            // `transport::fake`, is code of its module).
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
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

/// The names that follow `prefix` in `code`: `prefix::name` and each item of
/// `prefix::{a, b::c}` (its first segment).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![rest],
        };
        for item in items {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// The top-level modules `code` names through `crate::`.
fn uses(code: &str) -> BTreeSet<String> {
    names_after(code, "crate::")
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

/// The sibling modules `code` (a file of top-level module `top`) names: `super::NAME` and
/// `crate::top::NAME`.
fn sibling_uses(top: &str, code: &str) -> BTreeSet<String> {
    let mut out = names_after(code, "super::");
    out.extend(names_after(code, &format!("crate::{top}::")));
    out
}

/// A cycle in `edges`, as its modules in order (the first repeated at the end), if any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut path = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut path) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    // Among the top-level modules (the layers), and among the files of one module
    // (siblings: `runbooks/failover.rs` and `runbooks/execute.rs`). A file's own module's
    // root (`mod.rs`) is its parent, not a sibling, and is left out of the second check.
    let sources = sources();
    let tops: BTreeSet<String> = sources
        .iter()
        .map(|(rel, _)| module_of(rel).to_string())
        .collect();
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in &sources {
        let m = module_of(rel);
        if m == "main" || m == "lib" {
            continue;
        }
        let used = uses(code)
            .into_iter()
            .filter(|u| u != m && tops.contains(u));
        layers.entry(m.to_string()).or_default().extend(used);
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() == 2 && parts[1] != "mod.rs" {
            let me = format!("{m}/{}", parts[1].trim_end_matches(".rs"));
            let files_of_m: BTreeSet<String> = sources
                .iter()
                .filter_map(|(r, _)| r.strip_prefix(&format!("{m}/")))
                .filter(|f| !f.contains('/') && *f != "mod.rs")
                .map(|f| f.trim_end_matches(".rs").to_string())
                .collect();
            let used = sibling_uses(m, code)
                .into_iter()
                .filter(|s| files_of_m.contains(s))
                .map(|s| format!("{m}/{s}"))
                .filter(|s| *s != me)
                .collect::<Vec<_>>();
            siblings.entry(me).or_default().extend(used);
        }
    }
    assert_eq!(
        find_cycle(&layers),
        None,
        "an import cycle among the layers"
    );
    assert_eq!(
        find_cycle(&siblings),
        None,
        "an import cycle among sibling files"
    );
}
