//! End-to-end tests on the lab: six real Debian bookworm hosts (Docker containers with sshd,
//! no systemd) started by `lab/lab.sh up`. These tests never skip: without Docker or
//! debootstrap they fail, saying so.
//!
//! The main lab's tests take turns (a mutex); each starts from a converged fleet
//! (`converge`) except the fresh-lab test, which recreates the hosts when they are not new.
//! The server matrix (`servers`) and the package check (`package`) run in labs of their
//! own, one at a time beside the main lab's tests (`support::Turn`: two labs share the
//! machine's 2 cores; a timed or CPU-saturating check has the machine alone). Checks read
//! the hosts through `docker exec`, not through dbfleet.
//!
//! One test binary, one file per area; `support.rs` holds what they share.

mod backup;
mod changes;
mod ha;
mod import;
mod monitor;
mod package;
mod prometheus;
mod provision;
mod replication;
mod security;
mod servers;
mod support;

/// Each lab has a subnet of its own: two labs on one subnet cannot be up at once (Docker
/// refuses the second network), and the labs now run side by side (`support::Turn`). Seen:
/// the import lab took the Galera lab's 172.29.80.0/24 and the Galera test failed to start.
#[test]
fn every_lab_has_a_subnet_of_its_own() {
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    seen.insert("172.29.77".into(), "lab (lab/lab.sh's default)".into());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab");
    let mut files = vec![];
    for d in [dir.clone(), dir.join("servers")] {
        for e in std::fs::read_dir(&d).expect("read tests/lab") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    for p in files {
        let text = std::fs::read_to_string(&p).expect("read");
        for line in text.lines() {
            let l = line.trim();
            let declared =
                l.starts_with("prefix: \"172.") || l.starts_with("const PREFIX: &str = \"172.");
            if !declared {
                continue;
            }
            let subnet = l.split('"').nth(1).expect("quoted").to_string();
            let here = p.display().to_string();
            if let Some(other) = seen.insert(subnet.clone(), here.clone()) {
                panic!("{subnet}.0/24 is declared by {here} and by {other}");
            }
        }
    }
    assert!(seen.len() >= 6, "labs found: {seen:?}");
}
