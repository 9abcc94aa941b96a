//! The SSH key pair backup jobs use to reach the backup server: made once per fleet by
//! `ssh-keygen` (ed25519) into `.dbfleet/backup_ed25519` (0600), next to the secrets.
//! Job hosts get the private key as a sensitive file; the backup server authorizes the
//! public key for its `dbfleet-backup` account only with `restrict` and a forced SFTP
//! server rooted at the backup store (sshd(8), AUTHORIZED_KEYS FILE FORMAT), so the key
//! can move files in and out of the store and do nothing else.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The fleet's backup key pair, made on first use (never for `plan --offline`).
pub struct BackupKey {
    dir: PathBuf,
    offline: bool,
    pair: OnceLock<Result<(String, String), String>>,
}

impl BackupKey {
    /// The key pair kept in `dir` (the inventory's `.dbfleet/`); `offline` renders
    /// placeholders and never runs ssh-keygen.
    pub fn new(dir: PathBuf, offline: bool) -> BackupKey {
        BackupKey {
            dir,
            offline,
            pair: OnceLock::new(),
        }
    }

    fn pair(&self) -> Result<&(String, String), String> {
        self.pair
            .get_or_init(|| {
                if self.offline {
                    return Ok((
                        "<backup ssh private key>\n".into(),
                        "ssh-ed25519 <backup ssh public key> dbfleet-backup".into(),
                    ));
                }
                let key = self.dir.join("backup_ed25519");
                if !key.exists() {
                    crate::secrets::ensure_state_dir(&self.dir)
                        .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
                    let o = std::process::Command::new("ssh-keygen")
                        .args([
                            "-q",
                            "-t",
                            "ed25519",
                            "-N",
                            "",
                            "-C",
                            "dbfleet-backup",
                            "-f",
                        ])
                        .arg(&key)
                        .output()
                        .map_err(|e| {
                            format!("running ssh-keygen (OpenSSH's client tools are needed): {e}")
                        })?;
                    if !o.status.success() {
                        return Err(format!(
                            "ssh-keygen failed: {}",
                            String::from_utf8_lossy(&o.stderr).trim()
                        ));
                    }
                }
                let private = std::fs::read_to_string(&key)
                    .map_err(|e| format!("reading {}: {e}", key.display()))?;
                let public = std::fs::read_to_string(key.with_extension("pub"))
                    .map_err(|e| format!("reading {}.pub: {e}", key.display()))?;
                Ok((private, public.trim().to_string()))
            })
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// The private key (OpenSSH format).
    ///
    /// Errors: ssh-keygen's or the file system's message.
    pub fn private(&self) -> Result<String, String> {
        self.pair().map(|p| p.0.clone())
    }

    /// The public key line ("ssh-ed25519 AAAA… dbfleet-backup").
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn public(&self) -> Result<String, String> {
        self.pair().map(|p| p.1.clone())
    }
}
