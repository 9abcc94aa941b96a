//! Topology runbooks that refuse before they contact any host, exit 1 and say why: on a
//! server no lab proves (issue 10, case 6: MySQL 8.0, end of life in April 2026; MySQL
//! 8.4 and later are proven by `tests/lab/servers.rs`, Debian's 9.x) and on a Galera
//! member (issue 27: a Galera cluster has no primary to move; its restore goes through a
//! member, proven in the lab).
//!
//! "Before it contacts any host" is observed, not assumed: the inventory's ssh_config sends
//! every connection through a ProxyCommand that only leaves a marker file and fails, so a
//! command that tried to reach a host leaves the marker.

use std::process::Command;

/// Runs each of `cases` against the inventory `text` (in a fresh folder with the marking
/// ssh_config) and checks that it exits 1 naming `{verb} refused: ` and `why`, says that
/// nothing was changed, contacted no host and left the inventory as it was.
fn refused_before_contact(text: &str, cases: &[&[&str]], why: &str) {
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
        // The diagnostic's text with miette's wrapping and gutter undone.
        let flat = stderr
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(&format!("{} refused: ", args[0])) && flat.contains(why),
            "{args:?} names why:\n{stderr}"
        );
        assert!(flat.contains("Nothing was changed"), "{args:?}:\n{stderr}");
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

const SECRETS: &str = "secrets:\n  monitor_password: { generate: 32 }\n  replication_password: { generate: 32 }\n  backup_password: { generate: 32 }\n";

#[test]
fn runbooks_refuse_mysql_8_0_before_contacting_any_host() {
    let text = format!(
        "fleet:\n  name: shop\n  flavor: mysql\n  version: \"8.0\"\n  ssh:\n    user: root\n    config: ssh_config\n{SECRETS}\
         hosts:\n  m1:\n    address: 127.0.0.1\n    roles: [primary]\n    server_id: 1\n\
         \x20 m2:\n    address: 127.0.0.2\n    roles: [replica]\n    server_id: 2\n\
         \x20 m3:\n    address: 127.0.0.3\n    roles: [replica]\n    server_id: 3\n"
    );
    refused_before_contact(
        &text,
        &[
            &["switchover", "--to", "m2", "--auto-approve"],
            &["failover", "--auto-approve"],
            &["rejoin", "m1", "--auto-approve"],
            &["restore", "m1", "--auto-approve"],
            &["rebuild", "m3", "--auto-approve"],
        ],
        "MySQL 8.0 is not proven",
    );
}

#[test]
fn runbooks_refuse_a_galera_member_before_contacting_any_host() {
    let text = format!(
        "fleet:\n  name: shop\n  flavor: mariadb\n  version: \"10.11\"\n  ssh:\n    user: root\n    config: ssh_config\n  vars:\n    replication: galera\n{SECRETS}\
         hosts:\n  g1:\n    address: 127.0.0.1\n    roles: [member]\n    server_id: 1\n\
         \x20 g2:\n    address: 127.0.0.2\n    roles: [member]\n    server_id: 2\n\
         \x20 g3:\n    address: 127.0.0.3\n    roles: [member]\n    server_id: 3\n"
    );
    refused_before_contact(
        &text,
        &[
            &["switchover", "--to", "g2", "--auto-approve"],
            &["failover", "--cluster", "shop", "--auto-approve"],
            &["rejoin", "g1", "--auto-approve"],
            // `restore g1` is not refused: a Galera cluster is restored through any member,
            // the others fenced (tests/lab/servers/galera.rs).
            &["rebuild", "g3", "--auto-approve"],
        ],
        "a member of Galera cluster shop",
    );
}

#[test]
fn runbooks_refuse_a_group_member_before_contacting_any_host() {
    let text = format!(
        "fleet:\n  name: shop\n  flavor: mysql\n  version: \"9.7\"\n  ssh:\n    user: root\n    config: ssh_config\n  vars:\n    replication: group\n{SECRETS}\
         hosts:\n  g1:\n    address: 127.0.0.1\n    roles: [member]\n    server_id: 1\n\
         \x20 g2:\n    address: 127.0.0.2\n    roles: [member]\n    server_id: 2\n\
         \x20 g3:\n    address: 127.0.0.3\n    roles: [member]\n    server_id: 3\n"
    );
    refused_before_contact(
        &text,
        &[
            &["switchover", "--to", "g2", "--auto-approve"],
            &["failover", "--cluster", "shop", "--auto-approve"],
            &["rejoin", "g1", "--auto-approve"],
            &["restore", "g1", "--auto-approve"],
            &["rebuild", "g3", "--auto-approve"],
        ],
        "a member of replication group shop",
    );
}
