//! Saving and reading plan files: versioned JSON, written atomically (0600: a plan names
//! hosts and paths, which is nobody else's business), never holding a secret.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::runbook::RunbookPlan;
use super::{FORMAT_VERSION, Plan};
use crate::error::Error;

/// A saved plan: the inventory's changes (`plan --out`) or a runbook's steps
/// (`failover`, `rejoin`, `restore`, `rebuild` with `--out`).
#[derive(Debug, Clone)]
pub enum Saved {
    Changes(Plan),
    Runbook(Box<RunbookPlan>),
}

/// Writes `plan` (a [`Plan`] or a [`RunbookPlan`]) to `path` atomically.
///
/// Errors: [`Error::Io`] when the file cannot be written.
pub fn save(plan: &impl serde::Serialize, path: &Path) -> Result<(), Error> {
    let ctx = || format!("writing plan {}", path.display());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("plan")
    ));
    let json =
        serde_json::to_vec_pretty(plan).map_err(|e| Error::io(ctx(), std::io::Error::other(e)))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(ctx(), e))?;
    f.write_all(&json)
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(ctx(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(ctx(), e))
}

/// The largest plan file read (bytes): a plan of ten thousand hosts is a few MiB.
pub const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a plan file of the inventory's changes.
///
/// Errors: as [`load_any`]; [`Error::PlanFile`] when it holds a runbook.
pub fn load(path: &Path) -> Result<Plan, Error> {
    match load_any(path)? {
        Saved::Changes(p) => Ok(p),
        Saved::Runbook(r) => Err(Error::PlanFile {
            path: path.display().to_string(),
            reason: format!(
                "a {} runbook, not the inventory's changes",
                r.runbook.verb()
            ),
        }),
    }
}

/// Reads a plan file, of either kind (a runbook's has a `runbook` field).
///
/// Errors: [`Error::Io`] when unreadable, [`Error::PlanFile`] when it is not a plan of
/// this format version.
pub fn load_any(path: &Path) -> Result<Saved, Error> {
    let bytes = crate::files::read_regular(path, MAX_PLAN_BYTES).map_err(|e| {
        Error::io(
            format!("reading plan {}", path.display()),
            std::io::Error::other(e.0),
        )
    })?;
    let err = |reason: String| Error::PlanFile {
        path: path.display().to_string(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    match v.get("format_version").and_then(|v| v.as_u64()) {
        Some(n) if n == FORMAT_VERSION as u64 => {}
        Some(n) => {
            return Err(err(format!(
                "format version {n}; this dbfleet reads version {FORMAT_VERSION}"
            )));
        }
        None => return Err(err("not a dbfleet plan (no format_version)".into())),
    }
    if v.get("runbook").is_some() {
        return serde_json::from_value(v)
            .map(|r| Saved::Runbook(Box::new(r)))
            .map_err(|e| err(format!("malformed: {e}")));
    }
    serde_json::from_value(v)
        .map(Saved::Changes)
        .map_err(|e| err(format!("malformed: {e}")))
}
