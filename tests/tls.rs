//! Fleet TLS state: made once, reused while valid, renewed near expiry or when a host's
//! address changes; keys stay private on the operator's machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dbfleet::playbook::Library;
use dbfleet::tls::Tls;

fn inventory(dir: &Path, address: &str) -> dbfleet::inventory::Inventory {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/mysql.yml"),
    )
    .expect("fixture");
    let p = dir.join("inv.yml");
    std::fs::write(&p, text.replace("192.0.2.1", address)).expect("write");
    let lib = Library::load(None, None).expect("library");
    dbfleet::inventory::load(&p, &lib.defaults).expect("valid inventory")
}

#[test]
fn certificates_are_reused_then_renewed_near_expiry_or_on_a_new_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = inventory(dir.path(), "192.0.2.1");
    let first = Tls::ensure(&inv, 30).expect("tls");
    assert_eq!(first.issued.len(), 2, "one certificate per database host");
    assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let key = dir.path().join(".dbfleet/tls/m1.key");
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );

    let again = Tls::ensure(&inv, 30).expect("tls");
    assert!(again.issued.is_empty(), "valid certificates are reused");
    assert_eq!(again.hosts["m1"], first.hosts["m1"]);
    assert_eq!(again.ca_pem, first.ca_pem);

    // A renewal window longer than the 730-day validity renews every certificate.
    let renewed = Tls::ensure(&inv, 800).expect("tls");
    assert_eq!(renewed.issued.len(), 2);
    assert!(
        renewed.issued[0].1.contains("expires in"),
        "{:?}",
        renewed.issued
    );
    assert_ne!(renewed.hosts["m1"].0, first.hosts["m1"].0);
    assert_eq!(renewed.ca_pem, first.ca_pem, "the CA stays");

    let moved = Tls::ensure(&inventory(dir.path(), "192.0.2.99"), 30).expect("tls");
    assert_eq!(
        moved.issued,
        vec![(
            "m1".to_string(),
            "names m1, 192.0.2.1 (now m1, 192.0.2.99)".to_string()
        )]
    );
}
