//! Issue 10, case 6: on `flavor: mysql` every runbook not proven on MySQL hosts (rebuild)
//! refuses before it contacts any host, exits 1 and says why. Switchover, failover, rejoin
//! and restore are proven there (`tests/lab/servers.rs`) and no longer refuse.
//!
//! "Before it contacts any host" is observed, not assumed: the inventory's ssh_config sends
//! every connection through a ProxyCommand that only leaves a marker file and fails, so a
//! command that tried to reach a host leaves the marker.

use std::path::Path;
use std::process::Command;

fn fleet(dir: &Path) -> std::path::PathBuf {
    let marker = dir.join("contacted");
    std::fs::write(
        dir.join("ssh_config"),
        format!(
            "Host *\n  ProxyCommand sh -c 'touch {}; exit 1'\n",
            marker.display()
        ),
    )
    .expect("ssh_config");
    let inv = dir.join("inventory.yml");
    std::fs::write(
        &inv,
        "fleet:\n  name: shop\n  flavor: mysql\n  version: \"8.4\"\n  ssh:\n    user: root\n    config: ssh_config\n\
         secrets:\n  monitor_password: { generate: 32 }\n  replication_password: { generate: 32 }\n  backup_password: { generate: 32 }\n\
         hosts:\n  m1:\n    address: 127.0.0.1\n    roles: [primary]\n    server_id: 1\n\
         \x20 m2:\n    address: 127.0.0.2\n    roles: [replica]\n    server_id: 2\n\
         \x20 m3:\n    address: 127.0.0.3\n    roles: [replica]\n    server_id: 3\n",
    )
    .expect("inventory");
    inv
}

#[test]
fn unproven_runbooks_refuse_mysql_before_contacting_any_host() {
    // Restore, switchover, failover and rejoin ran here too until each was proven live.
    let unproven: &[&[&str]] = &[&["rebuild", "m3", "--auto-approve"]];
    for &args in unproven {
        let dir = tempfile::tempdir().expect("tempdir");
        let inv = fleet(dir.path());
        let before = std::fs::read_to_string(&inv).expect("inventory");
        let out = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .env("NO_COLOR", "1")
            .arg("-i")
            .arg(&inv)
            .args(args)
            .output()
            .expect("run dbfleet");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{stderr}");
        assert!(
            stderr.contains(&format!("{} refused: flavor mysql is not proven", args[0])),
            "{args:?} names why:\n{stderr}"
        );
        assert!(
            stderr.contains("Nothing was changed"),
            "{args:?}:\n{stderr}"
        );
        assert!(
            !dir.path().join("contacted").exists(),
            "{args:?} contacted a host before refusing"
        );
        assert_eq!(
            std::fs::read_to_string(&inv).expect("inventory"),
            before,
            "{args:?} left the inventory as it was"
        );
    }
}
