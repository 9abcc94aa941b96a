//! Topology edits of the inventory file, made in place: after a switchover or failover the
//! file says which host is the primary, with its comments and layout untouched.
//!
//! Why edit the file rather than report drift: the inventory is what `apply` converges
//! to. Left saying the old primary, the next apply would plan a switchover back to a host
//! that may be dead or fenced. The edit is byte-surgical (role and source scalars
//! swapped in place, the promoted host's `source:` line removed), shown as a unified
//! diff, and written atomically; the operator commits it like any other change.

use std::path::Path;

use super::schema::RawHost;
use crate::diagnostics::span_of;
use crate::error::Error;

/// The inventory text with `new` as the primary of `old`'s cluster and `old` a replica;
/// replicas whose explicit `source:` is `old` now name `new`.
///
/// Errors: [`Error::Invalid`] when the text does not parse; [`Error::Refused`] when `new`
/// is not a replica or `old` not the primary in the text.
pub fn promote(name: &str, text: &str, new: &str, old: &str) -> Result<String, Error> {
    let raw = super::load::parse(name, text)?;
    // (byte offset, byte length, replacement)
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let role_item = |h: &RawHost, role: &str| {
        h.roles
            .value
            .iter()
            .find(|r| r.value == role)
            .map(|r| span_of(&r.referenced, text))
    };
    let mut saw_new = false;
    let mut saw_old = false;
    for (key, host) in &raw.hosts.value.0 {
        let h = &host.value;
        if key.value == new {
            let (off, len) = role_item(h, "replica")
                .ok_or_else(|| Error::Refused(format!("{new} is not a replica in {name}")))?;
            edits.push((off, len, "primary".into()));
            if let Some(src) = &h.source {
                let (off, _) = span_of(&src.referenced, text);
                let start = text[..off].rfind('\n').map(|i| i + 1).unwrap_or(0);
                let end = text[off..]
                    .find('\n')
                    .map(|i| off + i + 1)
                    .unwrap_or(text.len());
                edits.push((start, end - start, String::new()));
            }
            saw_new = true;
        } else if key.value == old {
            let (off, len) = role_item(h, "primary")
                .ok_or_else(|| Error::Refused(format!("{old} is not the primary in {name}")))?;
            edits.push((off, len, "replica".into()));
            saw_old = true;
        } else if let Some(src) = &h.source
            && src.value == old
        {
            let (off, len) = span_of(&src.referenced, text);
            edits.push((off, len, new.to_string()));
        }
    }
    if !saw_new || !saw_old {
        return Err(Error::Refused(format!(
            "{} is not a host of {name}",
            if saw_new { old } else { new }
        )));
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (off, len, rep) in edits {
        out.replace_range(off..off + len, &rep);
    }
    Ok(out)
}

/// A unified diff of an inventory edit, for the operator to read and commit.
pub fn diff(path: &Path, before: &str, after: &str) -> String {
    let p = path.display().to_string();
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{p}"), &format!("b/{p}"))
        .to_string()
}

/// Writes `text` to `path` atomically (temp file in the same folder, fsync, rename).
///
/// Errors: [`Error::Io`].
pub fn write(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let ctx = || format!("writing {}", path.display());
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let tmp = dir.join(format!(
        ".{}.dbfleet-tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("inventory")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io(ctx(), e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(ctx(), e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = "fleet: {name: lab, flavor: mariadb, version: \"10.11\"}\nhosts:\n  db1:\n    address: 10.0.0.1   # the first\n    roles: [primary]\n    server_id: 1\n  db2:\n    address: 10.0.0.2\n    roles: [replica]\n    server_id: 2\n    source: db1   # explicit\n  db3:\n    address: 10.0.0.3\n    roles: [replica]\n    server_id: 3\n    source: db1\n";

    #[test]
    fn promote_swaps_roles_and_sources_keeping_comments() {
        let out = promote("inv.yml", INV, "db2", "db1").unwrap();
        assert!(out.contains("    address: 10.0.0.1   # the first\n    roles: [replica]"));
        assert!(out.contains(
            "  db2:\n    address: 10.0.0.2\n    roles: [primary]\n    server_id: 2\n  db3:"
        ));
        assert!(out.contains("    roles: [replica]\n    server_id: 3\n    source: db2\n"));
        assert_eq!(out.lines().count(), INV.lines().count() - 1);
    }

    #[test]
    fn promote_refuses_a_host_that_is_not_a_replica() {
        assert!(promote("inv.yml", INV, "db1", "db2").is_err());
        assert!(promote("inv.yml", INV, "db9", "db1").is_err());
    }
}
