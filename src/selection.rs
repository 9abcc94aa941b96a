//! What `--limit` and `--tags` select, resolved against the inventory and the task graph
//! before anything runs (issue 15: `--limit` took exact names only, and an unknown tag
//! silently matched nothing, so a typo planned no change and looked like a converged fleet).
//!
//! A `--limit` pattern is a host name, a glob over host names (`db*`, `db[12]`, `?`; the
//! `glob` crate's syntax), `role:NAME` (every host with that role) or `cluster:NAME` (every
//! host of that cluster), as Ansible's `--limit` takes names, globs and groups. Each pattern
//! must select at least one host, and each tag must be on at least one task; otherwise the
//! error names it and offers the nearest name ("did you mean").

use std::collections::BTreeSet;

use crate::error::Error;
use crate::inventory::{Inventory, Role};

/// The host names `patterns` select, in inventory order.
///
/// Errors: [`Error::UnknownLimit`] for a pattern that selects no host (with the nearest host,
/// role or cluster name as help), or that is not a valid glob.
pub fn limit(inv: &Inventory, patterns: &BTreeSet<String>) -> Result<BTreeSet<String>, Error> {
    let mut out = BTreeSet::new();
    for p in patterns {
        let hits: Vec<&str> = if let Some(role) = p.strip_prefix("role:") {
            let r = Role::parse(role);
            inv.hosts
                .iter()
                .filter(|h| r.is_some_and(|r| h.has(r)))
                .map(|h| h.name.as_str())
                .collect()
        } else if let Some(cluster) = p.strip_prefix("cluster:") {
            inv.hosts
                .iter()
                .filter(|h| h.cluster == cluster)
                .map(|h| h.name.as_str())
                .collect()
        } else if p.contains(['*', '?', '[']) {
            let glob = glob::Pattern::new(p).map_err(|e| Error::UnknownLimit {
                pattern: p.clone(),
                help: Some(format!("`{p}` is not a glob: {e}")),
            })?;
            inv.hosts
                .iter()
                .filter(|h| glob.matches(&h.name))
                .map(|h| h.name.as_str())
                .collect()
        } else {
            inv.hosts
                .iter()
                .filter(|h| h.name == *p)
                .map(|h| h.name.as_str())
                .collect()
        };
        if hits.is_empty() {
            return Err(Error::UnknownLimit {
                pattern: p.clone(),
                help: nearest_target(inv, p),
            });
        }
        out.extend(hits.into_iter().map(String::from));
    }
    Ok(out)
}

/// The nearest host name, `role:` or `cluster:` for an unmatched `--limit` pattern.
fn nearest_target(inv: &Inventory, p: &str) -> Option<String> {
    let mut names: Vec<String> = inv.hosts.iter().map(|h| h.name.clone()).collect();
    names.extend(Role::NAMES.iter().map(|r| format!("role:{r}")));
    let clusters: BTreeSet<&str> = inv.hosts.iter().map(|h| h.cluster.as_str()).collect();
    names.extend(clusters.into_iter().map(|c| format!("cluster:{c}")));
    crate::diagnostics::did_you_mean(p, names.iter().map(String::as_str))
        .or_else(|| Some("a host name, a glob (`db*`), `role:NAME` or `cluster:NAME`".to_string()))
}

/// Checks that every tag in `tags` is on some task of `known` (every task's tags).
///
/// Errors: [`Error::UnknownTag`] naming the first unknown tag, with the nearest known one.
pub fn tags<'a>(
    tags: &BTreeSet<String>,
    known: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    let known: BTreeSet<&str> = known.into_iter().collect();
    for t in tags {
        if !known.contains(t.as_str()) {
            return Err(Error::UnknownTag {
                tag: t.clone(),
                help: crate::diagnostics::did_you_mean(t, known.iter().copied()).or_else(|| {
                    Some(format!(
                        "the tasks' tags are: {}",
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    ))
                }),
            });
        }
    }
    Ok(())
}
