//! Fleet TLS state: made once, reused while valid, renewed near expiry or when a host's
//! address changes; keys stay private on the operator's machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dbfleet::playbook::Library;
use dbfleet::tls::Tls;

fn inventory(dir: &Path, address: &str) -> dbfleet::inventory::Inventory {
    fleet(dir, "shop", address)
}

/// The fixture as fleet `name` (its file `<name>.yml` in `dir`), m1 at `address`.
fn fleet(dir: &Path, name: &str, address: &str) -> dbfleet::inventory::Inventory {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/mysql.yml"),
    )
    .expect("fixture");
    let p = dir.join(format!("{name}.yml"));
    std::fs::write(
        &p,
        text.replace("192.0.2.1", address)
            .replace("name: shop", &format!("name: {name}")),
    )
    .expect("write");
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
    let key = dir.path().join(".dbfleet/tls/shop/m1.key");
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

#[test]
fn two_fleets_in_one_folder_keep_their_own_ca_and_do_not_reissue_each_others_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Both fleets name their hosts m1 and m2, at different addresses.
    let a = Tls::ensure(&fleet(dir.path(), "shop", "192.0.2.1"), 30).expect("tls");
    let b = Tls::ensure(&fleet(dir.path(), "shop-eu", "192.0.2.50"), 30).expect("tls");
    assert_ne!(a.ca_pem, b.ca_pem, "one CA per fleet");
    assert_eq!(b.issued.len(), 2);
    let a2 = Tls::ensure(&fleet(dir.path(), "shop", "192.0.2.1"), 30).expect("tls");
    assert!(a2.issued.is_empty(), "{:?}", a2.issued);
    assert_eq!(a2.ca_pem, a.ca_pem);
    let b2 = Tls::ensure(&fleet(dir.path(), "shop-eu", "192.0.2.50"), 30).expect("tls");
    assert!(b2.issued.is_empty(), "{:?}", b2.issued);
}

#[test]
fn a_store_of_the_earlier_layout_becomes_the_first_fleets_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Tls::ensure(&inventory(dir.path(), "192.0.2.1"), 30).expect("tls");
    // The earlier layout: the fleet's files directly in .dbfleet/tls/.
    let root = dir.path().join(".dbfleet/tls");
    for e in std::fs::read_dir(root.join("shop")).expect("read") {
        let e = e.expect("entry");
        std::fs::rename(e.path(), root.join(e.file_name())).expect("move");
    }
    std::fs::remove_dir(root.join("shop")).expect("rmdir");
    let again = Tls::ensure(&inventory(dir.path(), "192.0.2.1"), 30).expect("tls");
    assert!(again.issued.is_empty(), "{:?}", again.issued);
    assert_eq!(again.ca_pem, first.ca_pem);
    assert_eq!(again.hosts["m1"], first.hosts["m1"]);
    assert!(root.join("shop/ca.key").exists() && !root.join("ca.key").exists());
    // A second fleet of the folder makes its own.
    let other = Tls::ensure(&fleet(dir.path(), "other", "192.0.2.1"), 30).expect("tls");
    assert_ne!(other.ca_pem, first.ca_pem);
}

#[test]
fn two_first_runs_at_once_agree_on_one_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = inventory(dir.path(), "192.0.2.1");
    let cas: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Tls::ensure(&inv, 30).expect("tls").ca_pem))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("thread"))
            .collect()
    });
    assert!(cas.windows(2).all(|w| w[0] == w[1]), "CAs differ");
    let again = Tls::ensure(&inv, 30).expect("tls");
    assert_eq!(again.ca_pem, cas[0], "the CA kept is the one the runs used");
}
