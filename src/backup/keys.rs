//! The SSH keys of the backup transfers, made once per fleet by `ssh-keygen` into the
//! inventory's `.dbfleet/` (0600), next to the secrets:
//! - `backup_ed25519`, the client key. Job hosts get the private key as a sensitive file;
//!   the backup server authorizes the public key for its `dbfleet-backup` account only,
//!   with `restrict` and a forced SFTP server rooted at the backup store (sshd(8),
//!   AUTHORIZED_KEYS FILE FORMAT), so the key can move files in and out of the store and
//!   do nothing else.
//! - `backup_host_ecdsa`, the backup server's ECDSA host key. The backup server serves it
//!   (a `HostKey` drop-in) and every host that reaches it pins it (`backup_known_hosts`,
//!   strict checking). Because the key lives with the inventory and not on the server, a
//!   rebuilt backup server is trusted again by the next apply, where a key learnt on first
//!   contact would lock every job out. ECDSA, so the server's own ed25519 key, the one
//!   operators' known_hosts hold, stays as it is.
//! - `monitor_ed25519`, the failover monitors' key (`crate::runbooks::monitor`): monitor
//!   hosts hold the private key; database, proxy and monitor hosts authorize the public key
//!   for root from the monitor hosts' addresses only (`from=`, `restrict`), since the
//!   failover runs the same steps over SSH as `dbfleet failover` does.
//! - `seed_ed25519`, the seeding key (issue 26: data moves host to host): every MariaDB
//!   database host holds the private key; each authorizes the public key from its
//!   cluster's database hosts only (`from=`, `restrict`) with a forced command that
//!   streams a mariadb-backup copy of its server and does nothing else, so a new
//!   replica pulls its copy straight from its source and no data crosses the operator's
//!   connection.

use std::path::PathBuf;

/// The lines of `known_hosts` (OpenSSH's format, sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT":
/// comma-separated names first, `[name]:port` off port 22) that name `address`, each
/// ending in a newline.
pub fn lines_naming(known_hosts: &str, address: &str) -> String {
    let bracket = format!("[{address}]:");
    known_hosts
        .lines()
        .filter(|l| {
            l.split_whitespace().next().is_some_and(|names| {
                names
                    .split(',')
                    .any(|n| n == address || n.starts_with(&bracket))
            })
        })
        .map(|l| format!("{l}\n"))
        .collect()
}
use std::sync::OnceLock;

type Pair = OnceLock<Result<(String, String), String>>;

/// Reads the known_hosts lines of the fleet (`crate::transport::ssh::known_host_lines` for
/// each host; given by the engine, so this module knows neither hosts nor transports).
pub type KnownHostsSource = Box<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The fleet's backup key pairs, made on first use (never for `plan --offline`).
pub struct BackupKey {
    dir: PathBuf,
    offline: bool,
    client: Pair,
    host: Pair,
    monitor: Pair,
    seed: Pair,
    /// Reads the fleet's known_hosts lines, for [`BackupKey::known_hosts`].
    known_source: Option<KnownHostsSource>,
    known: OnceLock<Result<String, String>>,
}

impl BackupKey {
    /// The key pairs kept in `dir` (the inventory's `.dbfleet/`); `offline` renders
    /// placeholders and never runs ssh-keygen.
    pub fn new(dir: PathBuf, offline: bool) -> BackupKey {
        BackupKey {
            dir,
            offline,
            client: OnceLock::new(),
            host: OnceLock::new(),
            monitor: OnceLock::new(),
            seed: OnceLock::new(),
            known_source: None,
            known: OnceLock::new(),
        }
    }

    /// The pair in `dir/file` (+ `.pub`), made with `ssh-keygen -t kind` when missing.
    fn pair<'a>(
        &self,
        cell: &'a Pair,
        file: &str,
        kind: &str,
    ) -> Result<&'a (String, String), String> {
        let comment = if file.starts_with("monitor") {
            "dbfleet-monitor"
        } else if file.starts_with("seed") {
            "dbfleet-seed"
        } else {
            "dbfleet-backup"
        };
        cell.get_or_init(|| {
            if self.offline {
                let algorithm = match kind {
                    "ecdsa" => "ecdsa-sha2-nistp256",
                    _ => "ssh-ed25519",
                };
                return Ok((
                    format!("<{file} private key>\n"),
                    format!("{algorithm} <{file}.pub> {comment}"),
                ));
            }
            let key = self.dir.join(file);
            if !key.exists() {
                crate::files::ensure_state_dir(&self.dir)
                    .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
                let o = std::process::Command::new("ssh-keygen")
                    .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
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

    fn client(&self) -> Result<&(String, String), String> {
        self.pair(&self.client, "backup_ed25519", "ed25519")
    }

    fn host(&self) -> Result<&(String, String), String> {
        self.pair(&self.host, "backup_host_ecdsa", "ecdsa")
    }

    /// The same, reading the fleet's known_hosts lines with `source` when asked
    /// ([`BackupKey::known_hosts`]).
    pub fn with_known_hosts(mut self, source: KnownHostsSource) -> BackupKey {
        self.known_source = Some(source);
        self
    }

    /// Whether keys render as placeholders (`plan --offline`, the monitor's own engine).
    pub fn placeholders(&self) -> bool {
        self.offline
    }

    /// The known_hosts lines of every host of the fleet, as this machine's ssh knows them
    /// (`ssh -G` names the known_hosts files the inventory's ssh settings use, `ssh-keygen
    /// -F` finds each host there): the failover monitors pin the same host keys the
    /// operator verified, never learning one on first contact.
    ///
    /// Errors: a host this machine has no key for (connect to it with dbfleet first), or
    /// ssh/ssh-keygen failing.
    pub fn known_hosts(&self) -> Result<String, String> {
        self.known
            .get_or_init(|| {
                if self.offline {
                    return Ok("<known hosts of the fleet>\n".into());
                }
                match &self.known_source {
                    Some(read) => read(),
                    None => Err("no known_hosts source was given".into()),
                }
            })
            .clone()
    }

    /// The failover monitors' private key (OpenSSH format).
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn monitor_private(&self) -> Result<String, String> {
        self.pair(&self.monitor, "monitor_ed25519", "ed25519")
            .map(|p| p.0.clone())
    }

    /// The failover monitors' public key line ("ssh-ed25519 AAAA… dbfleet-monitor").
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn monitor_public(&self) -> Result<String, String> {
        self.pair(&self.monitor, "monitor_ed25519", "ed25519")
            .map(|p| p.1.clone())
    }

    /// The seeding key's private half (OpenSSH format), held by database hosts.
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn seed_private(&self) -> Result<String, String> {
        self.pair(&self.seed, "seed_ed25519", "ed25519")
            .map(|p| p.0.clone())
    }

    /// The seeding key's public line ("ssh-ed25519 AAAA… dbfleet-seed").
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn seed_public(&self) -> Result<String, String> {
        self.pair(&self.seed, "seed_ed25519", "ed25519")
            .map(|p| p.1.clone())
    }

    /// The client private key (OpenSSH format).
    ///
    /// Errors: ssh-keygen's or the file system's message.
    pub fn private(&self) -> Result<String, String> {
        self.client().map(|p| p.0.clone())
    }

    /// The client public key line ("ssh-ed25519 AAAA… dbfleet-backup").
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn public(&self) -> Result<String, String> {
        self.client().map(|p| p.1.clone())
    }

    /// The backup server's host private key (OpenSSH format).
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn host_private(&self) -> Result<String, String> {
        self.host().map(|p| p.0.clone())
    }

    /// The backup server's host public key, type and key only ("ecdsa-sha2-nistp256
    /// AAAA…"), as a known_hosts line wants it after the host names.
    ///
    /// Errors: as [`BackupKey::private`].
    pub fn host_public(&self) -> Result<String, String> {
        self.host()
            .map(|p| p.1.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lines_naming_the_address_are_kept() {
        let all = "10.0.0.1 ssh-ed25519 AAAA1\n10.0.0.11 ssh-ed25519 AAAA11\n\
                   [10.0.0.1]:2222 ssh-ed25519 AAAAp\ndb1,10.0.0.1 ecdsa-sha2-nistp256 AAAAe\n";
        assert_eq!(
            lines_naming(all, "10.0.0.1"),
            "10.0.0.1 ssh-ed25519 AAAA1\n[10.0.0.1]:2222 ssh-ed25519 AAAAp\ndb1,10.0.0.1 ecdsa-sha2-nistp256 AAAAe\n"
        );
        assert_eq!(lines_naming(all, "10.0.0.2"), "");
    }
}
