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
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::Error;
use crate::inventory::{Inventory, SecretSource};

/// Stands for a password in a plan's statements and scripts (runbook plans, a group's
/// restart plans); the executor replaces its quoted form with the quoted secret when it
/// sends them (on stdin, never a command line). It lives here, below both `plan` and
/// `tasks`, because both write it.
pub const SECRET_PLACEHOLDER: &str = "[secret: replication password]";

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

/// The shortest secret dbfleet accepts (characters). Every secret must be redactable from
/// every output, and a shorter value would redact ordinary words (and is weak anyway).
pub const MIN_SECRET_CHARS: usize = 8;

/// Replaces known secret values, and the forms they take once escaped for SQL, JSON, a
/// shell or an option file, in text with `(sensitive)`. Cheap to clone. Every value added
/// to any redactor is also known to [`redact_everywhere`], the last line of defence of the
/// final error print, stdout and the log.
#[derive(Clone, Default)]
pub struct Redactor(Arc<Mutex<Vec<String>>>);

/// Every secret value (and escaped form) any [`Redactor`] of this process knows.
fn process_wide() -> &'static Mutex<Vec<String>> {
    static ALL: std::sync::OnceLock<Mutex<Vec<String>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Mutex::new(Vec::new()))
}

/// The forms a secret takes where dbfleet writes it: as is, escaped inside an SQL string
/// literal, a JSON string, an option-file value, and as a shell word.
fn escaped_forms(value: &str) -> Vec<String> {
    let strip = |s: String| {
        s.get(1..s.len().saturating_sub(1))
            .unwrap_or("")
            .to_string()
    };
    let mut forms = vec![
        value.to_string(),
        strip(crate::sql::quote(value)),
        strip(serde_json::to_string(value).unwrap_or_default()),
        strip(crate::escape::option_file_value(value)),
        crate::escape::q(value),
    ];
    forms.retain(|f| f.chars().count() >= MIN_SECRET_CHARS);
    forms.sort();
    forms.dedup();
    forms
}

fn add_to(list: &Mutex<Vec<String>>, forms: &[String]) {
    let mut v = list.lock().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        if !v.iter().any(|x| x == f) {
            v.push(f.clone());
        }
    }
    // Longest first: a value containing another is replaced whole.
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

fn redact_with(list: &Mutex<Vec<String>>, text: &str) -> String {
    let v = list.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in v.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "(sensitive)");
        }
    }
    out
}

/// Redacts every secret any redactor of this process knows from `text`.
pub fn redact_everywhere(text: &str) -> String {
    redact_with(process_wide(), text)
}

impl Redactor {
    /// Learns `value` (and its escaped forms). Values shorter than [`MIN_SECRET_CHARS`]
    /// never get here: [`Secrets::get`] refuses them.
    pub fn add(&self, value: &str) {
        let forms = escaped_forms(value);
        add_to(&self.0, &forms);
        add_to(process_wide(), &forms);
    }
    pub fn redact(&self, text: &str) -> String {
        redact_with(&self.0, text)
    }
}

/// Resolves the inventory's secrets on demand, once each.
pub struct Secrets {
    sources: BTreeMap<String, SecretSource>,
    base: PathBuf,
    store: PathBuf,
    /// Offline renders use placeholders and touch no source and no store.
    placeholders: bool,
    /// The failover monitor's secrets (`Secrets::given`): these names have values, every
    /// other one is a placeholder.
    given: Option<BTreeMap<String, String>>,
    cache: Mutex<BTreeMap<String, Secret>>,
    /// Offline renders: the names asked for and not declared, each reported once after
    /// every file is rendered ([`Secrets::undeclared`]), instead of the first one alone.
    undeclared: Mutex<std::collections::BTreeSet<String>>,
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
            given: None,
            cache: Mutex::new(BTreeMap::new()),
            undeclared: Mutex::new(std::collections::BTreeSet::new()),
            redactor,
        }
    }

    /// The secrets an offline render asked for that the inventory does not declare, in
    /// name order (empty when rendering with real sources: there the first one fails).
    pub fn undeclared(&self) -> Vec<String> {
        self.undeclared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
    /// Secrets that resolve to `<secret:NAME>` placeholders (for `plan --offline`).
    pub fn placeholders(inv: &Inventory, redactor: Redactor) -> Self {
        let mut s = Self::new(inv, redactor);
        s.placeholders = true;
        s
    }
    /// The failover monitor's secrets: the values in `file` (a 0600 JSON object, name →
    /// value, written by `apply` on monitor hosts), placeholders for every other name.
    ///
    /// Errors: [`Error::Secret`] when the file is unreadable, not private or not such an
    /// object.
    pub fn given(inv: &Inventory, redactor: Redactor, file: &Path) -> Result<Self, Error> {
        let err = |reason: String| Error::Secret {
            name: file.display().to_string(),
            reason,
        };
        let bytes =
            crate::files::read_private(file, MAX_SECRET_FILE_BYTES).map_err(|e| err(e.0))?;
        let map: BTreeMap<String, String> = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a JSON object of strings: {e}")))?;
        for v in map.values() {
            redactor.add(v);
        }
        let mut s = Self::new(inv, redactor);
        s.placeholders = true;
        s.given = Some(map);
        Ok(s)
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
        let Some(src) = self.sources.get(name) else {
            // Offline, every missing name is collected and reported at once (a new
            // inventory learns them all from one validate); online, the first one fails.
            if self.placeholders {
                self.undeclared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string());
                return Ok(Secret(format!("<secret:{name}>")));
            }
            return Err(err("not declared under `secrets:` in the inventory".into()));
        };
        let value = if let Some(v) = self.given.as_ref().and_then(|g| g.get(name)) {
            v.clone()
        } else if self.placeholders {
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
                    let bytes = crate::files::read_private(&p, MAX_SECRET_FILE_BYTES)
                        .map_err(|e| err(e.0))?;
                    let mut v = String::from_utf8(bytes)
                        .map_err(|_| err(format!("{} is not UTF-8 text", p.display())))?;
                    if v.ends_with('\n') {
                        v.pop();
                    }
                    v
                }
                SecretSource::Generate(len) => self.generated(name, *len).map_err(err)?,
            }
        };
        if value.chars().any(char::is_control) {
            return Err(err(
                "the value holds a control character (a newline, a tab…): it would split the option files and password files it is written to".into(),
            ));
        }
        if value.chars().count() < MIN_SECRET_CHARS {
            return Err(err(format!(
                "the value is shorter than {MIN_SECRET_CHARS} characters: too weak, and too short to be kept out of every output"
            )));
        }
        if !self.placeholders {
            self.redactor.add(&value);
        }
        let s = Secret(value);
        cache.insert(name.to_string(), s.clone());
        Ok(s)
    }

    fn generated(&self, name: &str, len: usize) -> Result<String, String> {
        // Read-modify-write under an exclusive lock: two first runs at once must agree on
        // one generated value, not each keep its own (issue 11).
        let _lock = lock_store(&self.store)?;
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

/// The largest `{file: …}` secret source read (bytes): a password or key, not a dump.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The largest local secrets store read (bytes).
const MAX_STORE_BYTES: u64 = 4 * 1024 * 1024;

fn read_store(path: &Path) -> Result<BTreeMap<String, String>, String> {
    if crate::files::is_missing(path) {
        return Ok(BTreeMap::new());
    }
    let b = crate::files::read_private(path, MAX_STORE_BYTES).map_err(|e| e.0)?;
    serde_json::from_slice(&b)
        .map_err(|e| format!("secrets store {} is corrupt: {e}", path.display()))
}

pub use crate::files::ensure_state_dir;

/// Takes an exclusive lock on the store's lock file (`secrets.json.lock` beside it),
/// released when the returned file is dropped. Blocks while another dbfleet holds it.
///
/// Errors: a message naming the lock file.
fn lock_store(store: &Path) -> Result<std::fs::File, String> {
    let dir = store.parent().unwrap_or(Path::new("."));
    ensure_state_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = store.with_extension("json.lock");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    f.lock()
        .map_err(|e| format!("locking {}: {e}", path.display()))?;
    Ok(f)
}

/// Writes `bytes` to `path` atomically with mode 0600: a temp file of its own (process id
/// and a random suffix, created exclusively), fsync, rename, fsync of the folder.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_state_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{:016x}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id(),
        rand::rng().random::<u64>()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
        assert_eq!(r.redact("pw=hunter2hunter2; ab"), "pw=(sensitive); ab");
    }

    #[test]
    fn escaped_forms_of_a_secret_are_redacted_too() {
        let value = "it's a \"pw\" #1\\x";
        let r = Redactor::default();
        r.add(value);
        for form in [
            crate::sql::quote(value),
            serde_json::to_string(value).unwrap(),
            crate::escape::option_file_value(value),
            crate::escape::q(value),
        ] {
            let shown = r.redact(&format!("before {form} after"));
            assert!(!shown.contains("pw"), "{form} → {shown}");
        }
        // And every redactor's values are known to the last line of defence.
        assert!(!redact_everywhere(value).contains("pw"));
    }

    #[test]
    fn first_runs_at_once_agree_on_one_generated_secret() {
        // Each round: eight "first runs" (each its own Secrets, as separate processes
        // would be) generate the same secret at once; all must end with one value, the
        // one the store holds. Without the store's lock, round 0 saw 8 distinct values.
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let inv = crate::inventory::load::load_text(
                &dir.path().join("inv.yml"),
                "fleet: {name: t, flavor: mariadb, version: \"10.11\"}\n\
                 secrets:\n  a: {generate: 32}\n\
                 hosts:\n  db1: {address: 10.0.0.1, roles: [primary], server_id: 1}\n",
                &crate::inventory::Defaults::default(),
            )
            .unwrap();
            let barrier = std::sync::Barrier::new(8);
            let values: Vec<String> = std::thread::scope(|sc| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        sc.spawn(|| {
                            let s = Secrets::new(&inv, Redactor::default());
                            barrier.wait();
                            s.get("a").unwrap().expose().to_string()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let stored = read_store(&dir.path().join(".dbfleet/secrets.json")).unwrap();
            assert!(
                values.iter().all(|v| Some(v) == stored.get("a")),
                "round {round}: {} distinct values",
                values
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            );
        }
    }

    #[test]
    fn short_or_multi_line_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inv = crate::inventory::load::load_text(
            &dir.path().join("inv.yml"),
            "fleet: {name: t, flavor: mariadb, version: \"10.11\"}\n\
             secrets:\n  short: {env: DBFLEET_TEST_SHORT}\n  lines: {env: DBFLEET_TEST_LINES}\n\
             hosts:\n  db1: {address: 10.0.0.1, roles: [primary], server_id: 1}\n",
            &crate::inventory::Defaults::default(),
        )
        .unwrap();
        // SAFETY: the variables are this test's own.
        unsafe {
            std::env::set_var("DBFLEET_TEST_SHORT", "abc");
            std::env::set_var("DBFLEET_TEST_LINES", "longenough\ninit_file=/x");
        }
        let s = Secrets::new(&inv, Redactor::default());
        assert!(
            s.get("short")
                .unwrap_err()
                .to_string()
                .contains("shorter than 8")
        );
        assert!(
            s.get("lines")
                .unwrap_err()
                .to_string()
                .contains("control character")
        );
    }

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret("topsecret".into());
        assert_eq!(format!("{s} {s:?}"), "(sensitive) (sensitive)");
    }
}
