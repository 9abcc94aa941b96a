//! Issue 10, case 6: on a server no lab proves (MySQL 8.0, end of life in April 2026) every
//! topology runbook refuses before it contacts any host, exits 1 and says why. On MySQL
//! 8.4 and later they are proven (`tests/lab/servers.rs`, Debian's 9.x) and run.
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
        "fleet:\n  name: shop\n  flavor: mysql\n  version: \"8.0\"\n  ssh:\n    user: root\n    config: ssh_config\n\
         secrets:\n  monitor_password: { generate: 32 }\n  replication_password: { generate: 32 }\n  backup_password: { generate: 32 }\n\
         hosts:\n  m1:\n    address: 127.0.0.1\n    roles: [primary]\n    server_id: 1\n\
         \x20 m2:\n    address: 127.0.0.2\n    roles: [replica]\n    server_id: 2\n\
         \x20 m3:\n    address: 127.0.0.3\n    roles: [replica]\n    server_id: 3\n",
    )
    .expect("inventory");
    inv
}

#[test]
fn runbooks_refuse_mysql_8_0_before_contacting_any_host() {
    let unproven: &[&[&str]] = &[
        &["switchover", "--to", "m2", "--auto-approve"],
        &["failover", "--auto-approve"],
        &["rejoin", "m1", "--auto-approve"],
        &["restore", "m1", "--auto-approve"],
        &["rebuild", "m3", "--auto-approve"],
    ];
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
            stderr.contains(&format!("{} refused: MySQL 8.0 is not proven", args[0])),
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
