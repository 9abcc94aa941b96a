//! Issue 27: the topology runbooks (switchover, failover, rejoin, restore, rebuild) move a
//! primary and its replicas; on a Galera member they refuse before they contact any host,
//! exit 1 and say why. As in `mysql_refusals.rs`, "before it contacts any host" is
//! observed: the inventory's ssh_config sends every connection through a ProxyCommand that
//! only leaves a marker file and fails.

use std::process::Command;

#[test]
fn runbooks_refuse_a_galera_member_before_contacting_any_host() {
    let cases: &[&[&str]] = &[
        &["switchover", "--to", "g2", "--auto-approve"],
        &["failover", "--cluster", "shop", "--auto-approve"],
        &["rejoin", "g1", "--auto-approve"],
        &["restore", "g1", "--auto-approve"],
        &["rebuild", "g3", "--auto-approve"],
    ];
    for &args in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("contacted");
        std::fs::write(
            dir.path().join("ssh_config"),
            format!(
                "Host *\n  ProxyCommand sh -c 'touch {}; exit 1'\n",
                marker.display()
            ),
        )
        .expect("ssh_config");
        let inv = dir.path().join("inventory.yml");
        let text = "fleet:\n  name: shop\n  flavor: mariadb\n  version: \"10.11\"\n  ssh:\n    user: root\n    config: ssh_config\n  vars:\n    replication: galera\n\
             secrets:\n  monitor_password: { generate: 32 }\n  replication_password: { generate: 32 }\n  backup_password: { generate: 32 }\n\
             hosts:\n  g1:\n    address: 127.0.0.1\n    roles: [member]\n    server_id: 1\n\
             \x20 g2:\n    address: 127.0.0.2\n    roles: [member]\n    server_id: 2\n\
             \x20 g3:\n    address: 127.0.0.3\n    roles: [member]\n    server_id: 3\n";
        std::fs::write(&inv, text).expect("inventory");
        let out = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .env("NO_COLOR", "1")
            .arg("-i")
            .arg(&inv)
            .args(args)
            .output()
            .expect("run dbfleet");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{stderr}");
        let flat = stderr
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(&format!("{} refused: ", args[0]))
                && flat.contains("a member of Galera cluster shop")
                && flat.contains("Nothing was changed"),
            "{args:?} names why:\n{stderr}"
        );
        assert!(
            !marker.exists(),
            "{args:?} contacted a host before refusing"
        );
        assert_eq!(
            std::fs::read_to_string(&inv).expect("inventory"),
            text,
            "{args:?} left the inventory as it was"
        );
    }
}
