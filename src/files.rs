//! Reading the files an operator names (inventory, `{file:}` secrets, plan files,
//! playbooks and templates folders, the local state): regular files only, a size budget
//! checked before reading and enforced while reading, so `-i /dev/zero` or a FIFO is an
//! error rather than a process that grows until memory runs out (issue 11). Files that hold
//! secrets are also refused when others may read them, as ssh refuses a loose key.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a file could not be read; the text names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError(pub String);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a missing file is the reason (callers that treat "absent" as "empty").
pub fn is_missing(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Reads `path`, at most `max_bytes` bytes (symlinks followed).
///
/// Errors: [`ReadError`] when it is missing or unreadable, not a regular file (a device,
/// a FIFO, a folder), or larger than `max_bytes`.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| ReadError(format!("reading {name}: {e}")))?;
    if !meta.is_file() {
        return Err(ReadError(format!(
            "{name} is not a regular file (a device, a pipe or a folder)"
        )));
    }
    if meta.len() > max_bytes {
        return Err(ReadError(format!(
            "{name} is {} bytes, over the {max_bytes} byte budget",
            meta.len()
        )));
    }
    let f = std::fs::File::open(path).map_err(|e| ReadError(format!("reading {name}: {e}")))?;
    // The file may grow between the check and the read: the budget holds while reading too.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError(format!("reading {name}: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError(format!(
            "{name} grew past the {max_bytes} byte budget while being read"
        )));
    }
    Ok(bytes)
}

/// Like [`read_regular`], for a file holding a secret: also refused when others may read
/// or write it (mode `o+r` or `o+w`).
///
/// Errors: as [`read_regular`], and [`ReadError`] naming the mode and the fix.
pub fn read_private(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ReadError(format!("reading {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if meta.is_file() && mode & 0o006 != 0 {
        return Err(ReadError(format!(
            "{} holds a secret but others may read it (mode {mode:04o}); chmod o-rwx {}",
            path.display(),
            path.display()
        )));
    }
    read_regular(path, max_bytes)
}

/// Creates the local state folder (0700) with a `.gitignore` of `*` so it is never committed.
pub fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            &ignore,
            "# dbfleet's local state: secrets and keys. Never commit.\n*\n",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_oversized_files_are_refused() {
        assert!(read_regular(Path::new("/dev/zero"), 1024).is_err());
        assert!(read_regular(Path::new("/"), 1024).is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![b'x'; 2048]).unwrap();
        assert!(
            read_regular(&f, 1024)
                .unwrap_err()
                .0
                .contains("over the 1024 byte budget")
        );
        assert_eq!(read_regular(&f, 4096).unwrap().len(), 2048);
    }

    #[test]
    fn a_secret_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "pw").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            read_private(&f, 64)
                .unwrap_err()
                .0
                .contains("others may read it")
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(read_private(&f, 64).unwrap(), b"pw");
    }
}
