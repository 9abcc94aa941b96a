//! Secrets: resolving `{env}`, `{file}` and `{generate}` sources, and keeping values out of
//! every output.
//!
//! A [`Secret`] never prints its value (`Debug` and `Display` show `(sensitive)`) and is not
//! `Serialize`. Generated secrets live in the local store `<inventory dir>/.dbfleet/secrets.json`
//! (folder 0700 with a `.gitignore` of `*`, file 0600), written atomically. The [`Redactor`]
//! is the last line of defence: every string the engine emits (remote stderr included)
//! passes through it, replacing any known secret value with `(sensitive)`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::Error;
use crate::inventory::{Inventory, SecretSource};

/// A secret value. Its value is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(sensitive)")
    }
}
impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(sensitive)")
    }
}

/// Replaces known secret values in text with `(sensitive)`. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor(Arc<Mutex<Vec<String>>>);

impl Redactor {
    pub fn add(&self, value: &str) {
        // Very short values would redact ordinary words; generated and real secrets are longer.
        if value.len() >= 4 {
            let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !v.iter().any(|x| x == value) {
                v.push(value.to_string());
                v.sort_by_key(|s| std::cmp::Reverse(s.len()));
            }
        }
    }
    pub fn redact(&self, text: &str) -> String {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for s in v.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "(sensitive)");
            }
        }
        out
    }
}

/// Resolves the inventory's secrets on demand, once each.
pub struct Secrets {
    sources: BTreeMap<String, SecretSource>,
    base: PathBuf,
    store: PathBuf,
    /// Offline renders use placeholders and touch no source and no store.
    placeholders: bool,
    cache: Mutex<BTreeMap<String, Secret>>,
    pub redactor: Redactor,
}

impl Secrets {
    pub fn new(inv: &Inventory, redactor: Redactor) -> Self {
        let base = inv.base_dir();
        Secrets {
            sources: inv.secrets.clone(),
            store: base.join(".dbfleet").join("secrets.json"),
            base,
            placeholders: false,
            cache: Mutex::new(BTreeMap::new()),
            redactor,
        }
    }
    /// Secrets that resolve to `<secret:NAME>` placeholders (for `plan --offline`).
    pub fn placeholders(inv: &Inventory, redactor: Redactor) -> Self {
        let mut s = Self::new(inv, redactor);
        s.placeholders = true;
        s
    }
    pub fn is_declared(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    /// The value of secret `name`.
    ///
    /// Errors: [`Error::Secret`] when it is not declared, its variable is unset, its file is
    /// unreadable or empty, or the local store cannot be written.
    pub fn get(&self, name: &str) -> Result<Secret, Error> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(name) {
            return Ok(s.clone());
        }
        let err = |reason: String| Error::Secret {
            name: name.to_string(),
            reason,
        };
        let src = self
            .sources
            .get(name)
            .ok_or_else(|| err("not declared under `secrets:` in the inventory".into()))?;
        let value = if self.placeholders {
            format!("<secret:{name}>")
        } else {
            match src {
                SecretSource::Env(var) => std::env::var(var)
                    .map_err(|_| err(format!("environment variable {var} is not set")))?,
                SecretSource::File(p) => {
                    let p = if p.is_absolute() {
                        p.clone()
                    } else {
                        self.base.join(p)
                    };
                    let mut v = std::fs::read_to_string(&p)
                        .map_err(|e| err(format!("reading {}: {e}", p.display())))?;
                    if v.ends_with('\n') {
                        v.pop();
                    }
                    v
                }
                SecretSource::Generate(len) => self.generated(name, *len).map_err(err)?,
            }
        };
        if value.is_empty() {
            return Err(err("value is empty".into()));
        }
        if !self.placeholders {
            self.redactor.add(&value);
        }
        let s = Secret(value);
        cache.insert(name.to_string(), s.clone());
        Ok(s)
    }

    fn generated(&self, name: &str, len: usize) -> Result<String, String> {
        let mut store = read_store(&self.store)?;
        if let Some(v) = store.get(name) {
            return Ok(v.clone());
        }
        let v: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect();
        store.insert(name.to_string(), v.clone());
        write_store(&self.store, &store)?;
        Ok(v)
    }
}

fn read_store(path: &Path) -> Result<BTreeMap<String, String>, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("secrets store {} is corrupt: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
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

/// Writes `bytes` to `path` atomically with mode 0600 (temp file, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_state_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn write_store(path: &Path, store: &BTreeMap<String, String>) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(store).map_err(|e| e.to_string())?;
    write_private(path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The key for digests of sensitive content in plan files (HMAC-SHA256), kept next to the
/// secrets store (0600). A plain sha256 of a file holding a password would let anyone
/// holding the plan file test guesses of the password offline.
///
/// Errors: [`Error::Secret`] when the key cannot be read or written.
pub fn digest_key(inv: &Inventory) -> Result<Vec<u8>, Error> {
    let path = inv.base_dir().join(".dbfleet").join("digest.key");
    let err = |reason: String| Error::Secret {
        name: "digest key".into(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(k) if k.len() == 32 => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(format!("reading {}: {e}", path.display()))),
    }
    let key: [u8; 32] = rand::rng().random();
    write_private(&path, &key).map_err(|e| err(format!("writing {}: {e}", path.display())))?;
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_hides_every_known_value() {
        let r = Redactor::default();
        r.add("hunter2hunter2");
        r.add("ab"); // too short to redact safely
        assert_eq!(r.redact("pw=hunter2hunter2; ab"), "pw=(sensitive); ab");
    }

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret("topsecret".into());
        assert_eq!(format!("{s} {s:?}"), "(sensitive) (sensitive)");
    }
}
