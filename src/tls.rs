//! Fleet TLS: one CA and a server certificate per database host, made on the operator's
//! machine with rcgen (never by shelling out), kept in `<inventory dir>/.dbfleet/tls/<fleet>/`
//! (keys 0600) and pushed to the hosts by ordinary file tasks.
//!
//! One folder per fleet, under a lock: two inventories in one folder (the repository's
//! `inventories/` holds three) each keep their own CA, so a certificate of one fleet is
//! never trusted by another and hosts of the same name do not reissue each other's
//! certificates on every run; two first runs at once agree on one CA. A store of the
//! earlier layout (files directly in `.dbfleet/tls/`) becomes the folder of the first
//! fleet that runs, unchanged.
//!
//! Certificates carry the host's name and address as subject alternative names, so a
//! replica connecting with `MASTER_SSL_VERIFY_SERVER_CERT=1` to the source's address can
//! verify it against the CA. An existing certificate is reused while it is valid for more
//! than `tls_renew_days` and names the host's current address; otherwise it is renewed,
//! and the plan shows the new certificate as a change. The CA is valid 10 years, host
//! certificates 2 years (ECDSA P-256).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::inventory::Inventory;

/// PEM material for the hosts' TLS files.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca_pem: String,
    /// Host name → (certificate PEM, key PEM).
    pub hosts: BTreeMap<String, (String, String)>,
    /// Hosts whose certificate was (re)issued by this run, with the reason.
    pub issued: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    /// Unix seconds.
    not_after: i64,
    sans: Vec<String>,
}

fn err(reason: String) -> Error {
    Error::Secret {
        name: "TLS".into(),
        reason,
    }
}

impl Tls {
    /// Placeholders for `plan --offline` (no key is made or read).
    pub fn placeholders(inv: &Inventory) -> Tls {
        let hosts = inv
            .hosts
            .iter()
            .filter(|h| h.is_database())
            .map(|h| {
                (
                    h.name.clone(),
                    (
                        format!("<tls certificate of {}>\n", h.name),
                        format!("<tls key of {}>\n", h.name),
                    ),
                )
            })
            .collect();
        Tls {
            ca_pem: "<tls fleet CA>\n".into(),
            hosts,
            issued: Vec::new(),
        }
    }

    /// Loads the fleet's CA and host certificates, making or renewing what is missing,
    /// expiring within `renew_days`, or naming an old address.
    ///
    /// Errors: [`Error::Secret`] when the TLS folder cannot be read or written, or rcgen fails.
    pub fn ensure(inv: &Inventory, renew_days: i64) -> Result<Tls, Error> {
        let root = inv.base_dir().join(".dbfleet").join("tls");
        let _lock = lock(&root)?;
        let dir = fleet_dir(&root, &inv.name)?;
        let now = OffsetDateTime::now_utc();
        let (ca_pem, ca_key) = ensure_ca(&dir, now)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
            .map_err(|e| err(format!("reading the fleet CA: {e}")))?;
        let mut tls = Tls {
            ca_pem: ca_pem.clone(),
            ..Tls::default()
        };
        for h in inv.hosts.iter().filter(|h| h.is_database()) {
            let sans = vec![h.name.clone(), h.address.clone()];
            let (cert_p, key_p, meta_p) = (
                dir.join(format!("{}.pem", h.name)),
                dir.join(format!("{}.key", h.name)),
                dir.join(format!("{}.json", h.name)),
            );
            let existing = read(&cert_p)
                .zip(read(&key_p))
                .zip(read(&meta_p).and_then(|m| serde_json::from_str::<Meta>(&m).ok()));
            let reason = match &existing {
                None => Some("no certificate yet".to_string()),
                Some((_, m)) if m.sans != sans => Some(format!(
                    "names {} (now {})",
                    m.sans.join(", "),
                    sans.join(", ")
                )),
                Some((_, m)) if m.not_after - now.unix_timestamp() < renew_days * 86_400 => {
                    Some(format!(
                        "expires in {} days (renewal at {renew_days})",
                        (m.not_after - now.unix_timestamp()) / 86_400
                    ))
                }
                Some(_) => None,
            };
            match (reason, existing) {
                (None, Some(((cert, key), _))) => {
                    tls.hosts.insert(h.name.clone(), (cert, key));
                }
                (reason, _) => {
                    let key = KeyPair::generate().map_err(|e| err(e.to_string()))?;
                    let mut p = CertificateParams::default();
                    p.distinguished_name
                        .push(DnType::CommonName, h.name.clone());
                    p.distinguished_name
                        .push(DnType::OrganizationName, format!("dbfleet {}", inv.name));
                    p.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
                    p.extended_key_usages = vec![
                        ExtendedKeyUsagePurpose::ServerAuth,
                        ExtendedKeyUsagePurpose::ClientAuth,
                    ];
                    p.key_usages = vec![
                        KeyUsagePurpose::DigitalSignature,
                        KeyUsagePurpose::KeyEncipherment,
                    ];
                    p.not_before = now - Duration::hours(1);
                    p.not_after = now + Duration::days(730);
                    let cert = p.signed_by(&key, &issuer).map_err(|e| err(e.to_string()))?;
                    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
                    write_private(&key_p, key_pem.as_bytes())?;
                    write_private(&cert_p, cert_pem.as_bytes())?;
                    let meta = serde_json::to_vec(&Meta {
                        not_after: p.not_after.unix_timestamp(),
                        sans: sans.clone(),
                    })
                    .map_err(|e| err(e.to_string()))?;
                    write_private(&meta_p, &meta)?;
                    tls.issued
                        .push((h.name.clone(), reason.unwrap_or_default()));
                    tls.hosts.insert(h.name.clone(), (cert_pem, key_pem));
                }
            }
        }
        Ok(tls)
    }
}

fn san(s: &str) -> Result<SanType, Error> {
    Ok(match s.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            s.try_into()
                .map_err(|e| err(format!("`{s}` is not a DNS name: {e}")))?,
        ),
    })
}

/// An exclusive lock on `root/.lock`, held while the store is read and written (released
/// when the file is dropped); blocks while another dbfleet holds it.
///
/// Errors: [`Error::Secret`] when the folder or the lock file cannot be made or locked.
fn lock(root: &Path) -> Result<std::fs::File, Error> {
    crate::files::ensure_state_dir(root)
        .map_err(|e| err(format!("creating {}: {e}", root.display())))?;
    let path = root.join(".lock");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| err(format!("opening {}: {e}", path.display())))?;
    f.lock()
        .map_err(|e| err(format!("locking {}: {e}", path.display())))?;
    Ok(f)
}

/// The folder name of fleet `name`: the name itself when it is a plain file name
/// (letters, digits, `.`, `_`, `-`, not starting with a dot), else `fleet-` and the first
/// 16 hex digits of its SHA-256.
fn folder_name(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        return name.to_string();
    }
    use sha2::Digest;
    format!(
        "fleet-{}",
        &hex::encode(sha2::Sha256::digest(name.as_bytes()))[..16]
    )
}

/// Fleet `fleet`'s folder under `root` (the lock held). A store of the earlier layout (a
/// CA directly in `root`) is moved into it when the fleet has no folder yet: the first
/// fleet to run after the upgrade keeps its CA and certificates, a later one makes its own.
///
/// Errors: [`Error::Secret`] when a file cannot be moved.
fn fleet_dir(root: &Path, fleet: &str) -> Result<PathBuf, Error> {
    let dir = root.join(folder_name(fleet));
    if dir.exists() || !root.join("ca.pem").exists() {
        return Ok(dir);
    }
    crate::files::ensure_state_dir(&dir)
        .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    let entries =
        std::fs::read_dir(root).map_err(|e| err(format!("reading {}: {e}", root.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name.to_str() else { continue };
        let moved = n.ends_with(".pem") || n.ends_with(".key") || n.ends_with(".json");
        if moved && entry.path().is_file() {
            std::fs::rename(entry.path(), dir.join(n))
                .map_err(|e| err(format!("moving {} into {}: {e}", n, dir.display())))?;
        }
    }
    Ok(dir)
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// The CA, made on first use.
fn ensure_ca(dir: &Path, now: OffsetDateTime) -> Result<(String, KeyPair), Error> {
    let (cert_p, key_p): (PathBuf, PathBuf) = (dir.join("ca.pem"), dir.join("ca.key"));
    if let (Some(cert), Some(key)) = (read(&cert_p), read(&key_p)) {
        let key = KeyPair::from_pem(&key)
            .map_err(|e| err(format!("reading {}: {e}", key_p.display())))?;
        return Ok((cert, key));
    }
    let key = KeyPair::generate().map_err(|e| err(e.to_string()))?;
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "dbfleet fleet CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(3650);
    let cert = p.self_signed(&key).map_err(|e| err(e.to_string()))?;
    write_private(&key_p, key.serialize_pem().as_bytes())?;
    write_private(&cert_p, cert.pem().as_bytes())?;
    Ok((cert.pem(), key))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::secrets::write_private(path, bytes)
        .map_err(|e| err(format!("writing {}: {e}", path.display())))
}
