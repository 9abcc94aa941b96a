//! Security: secrets in no output, the application user's limits and hardening, the firewall (nftables and ufw).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use super::support::*;

/// Docker arguments running a one-off container on the lab network at `ip`: a host the
/// inventory does not know.
fn outsider(ip: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["inspect", "lab-db1", "--format", "{{.Config.Image}}"])
        .output()
        .expect("inspect");
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
    [
        "run",
        "--rm",
        "--network",
        "dbfleet-lab",
        "--ip",
        ip,
        &image,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn canary_secret_appears_in_no_output_plan_file_or_remote_ps() {
    let mut lab = converged();
    let canary = format!("canary{:016x}", rand_u64());
    // The replication password travels in CHANGE MASTER: a second canary for it.
    let canary_repl = format!("replcanary{:016x}", rand_u64());
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "canary.yml",
        &[
            (
                "monitor_password: { generate: 32 }",
                "monitor_password: { env: DBFLEET_TEST_CANARY }",
            ),
            (
                "replication_password: { generate: 32 }",
                "replication_password: { env: DBFLEET_TEST_CANARY_REPL }",
            ),
        ],
    );
    let env = [
        ("DBFLEET_TEST_CANARY", canary.as_str()),
        ("DBFLEET_TEST_CANARY_REPL", canary_repl.as_str()),
    ];

    // Watch every process command line on the database hosts while dbfleet works.
    let watchers: Vec<_> = DB_HOSTS
        .iter()
        .map(|h| {
            on(h, "rm -f /tmp/stop-ps");
            Command::new("docker")
                .args([
                    "exec",
                    &format!("lab-{h}"),
                    "sh",
                    "-c",
                    "while [ ! -e /tmp/stop-ps ]; do ps -eww -o args; sleep 0.02; done",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("ps watcher")
        })
        .collect();

    let planfile = dir.path().join("plan.json");
    let mut outputs = Vec::new();
    outputs.push(
        dbfleet_with(
            &inv,
            &["-vv", "plan", "--out", planfile.to_str().expect("path")],
            &env,
        )
        .all(),
    );
    outputs.push(dbfleet_with(&inv, &["plan", "--json"], &env).all());
    let a = dbfleet_with(&inv, &["-vv", "apply", "--auto-approve"], &env);
    assert_eq!(a.code, 0, "{}", a.all());
    outputs.push(a.all());
    outputs.push(std::fs::read_to_string(&planfile).expect("plan file"));

    for h in DB_HOSTS {
        on(h, "touch /tmp/stop-ps");
    }
    let mut ps_lines = 0;
    for w in watchers {
        let o = w.wait_with_output().expect("watcher");
        let text = String::from_utf8_lossy(&o.stdout);
        ps_lines += text.lines().count();
        assert!(
            !text.contains(&canary) && !text.contains(&canary_repl),
            "a canary showed in a remote `ps`"
        );
    }
    assert!(ps_lines > 100, "the ps watchers sampled ({ps_lines} lines)");
    for (i, o) in outputs.iter().enumerate() {
        assert!(
            !o.contains(&canary) && !o.contains(&canary_repl),
            "output {i} holds a canary:\n{o}"
        );
    }
    assert!(
        outputs[2]
            .contains("repoint replication to db1 by GTID (the replication password changed)"),
        "the new replication password was applied through CHANGE MASTER:\n{}",
        outputs[2]
    );
    for h in ["db2", "db3"] {
        assert_eq!(
            slave_status(h)["Slave_IO_Running"],
            "Yes",
            "{h} replicates with the canary password"
        );
    }
    assert!(
        outputs[0].contains("(sensitive)"),
        "the secret-bearing file shows as sensitive:\n{}",
        outputs[0]
    );
    for h in DB_HOSTS {
        // It did reach the file it belongs in, mode 0600 ...
        assert_eq!(on(h, "stat -c %a /etc/dbfleet/monitor.cnf"), "600");
        assert!(on(h, "cat /etc/dbfleet/monitor.cnf").contains(&canary));
        // ... and nowhere else on the host.
        let found = on(
            h,
            &format!(
                "grep -rl {canary} /etc /tmp /var/log /var/lib/dbfleet /root 2>/dev/null || true"
            ),
        );
        assert_eq!(
            found, "/etc/dbfleet/monitor.cnf",
            "{h}: canary found in {found}"
        );
        // The replication canary lives only in the server's own replica info (datadir).
        let found = on(
            h,
            &format!(
                "grep -rl {canary_repl} /etc /tmp /var/log /var/lib/dbfleet /root 2>/dev/null || true"
            ),
        );
        assert_eq!(found, "", "{h}: replication canary found in {found}");
    }
    // The local state folder is private too.
    use std::os::unix::fs::PermissionsExt;
    let key = dir.path().join(".dbfleet/digest.key");
    assert_eq!(
        std::fs::metadata(&key)
            .expect("digest key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    converge(&mut lab);
}

#[test]
fn app_user_cannot_write_on_a_replica_and_hardening_holds() {
    let _lab = converged();
    let store =
        std::fs::read_to_string(repo().join("inventories/.dbfleet/secrets.json")).expect("store");
    let secrets: serde_json::Value = serde_json::from_str(&store).expect("json");
    let pw = secrets["app_password"]
        .as_str()
        .expect("app password")
        .to_string();
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.w (id INT PRIMARY KEY)",
    );
    let as_app = |host: &str, addr: &str, stmt: &str| {
        Command::new("docker")
            .args([
                "exec",
                "-e",
                &format!("MYSQL_PWD={pw}"),
                &format!("lab-{host}"),
                "mariadb",
                "-h",
                addr,
                "-u",
                "app",
                "-N",
                "-e",
                stmt,
            ])
            .output()
            .expect("docker exec")
    };
    let on_replica = as_app("db2", "172.29.77.12", "INSERT INTO app.w VALUES (1)");
    assert!(
        !on_replica.status.success(),
        "the app user wrote on a read-only replica"
    );
    let err = String::from_utf8_lossy(&on_replica.stderr);
    assert!(err.contains("read-only"), "{err}");
    let on_primary = as_app("db1", "172.29.77.11", "REPLACE INTO app.w VALUES (1)");
    assert!(
        on_primary.status.success(),
        "{}",
        String::from_utf8_lossy(&on_primary.stderr)
    );
    let grants = sql("db1", "SHOW GRANTS FOR 'app'@'%'");
    assert!(
        !grants.contains("SUPER")
            && !grants.contains("READ ONLY ADMIN")
            && !grants.contains("ALL PRIVILEGES"),
        "{grants}"
    );

    // Hardening: an anonymous user, a remote root and a test database appear out of band ...
    sql(
        "db1",
        "CREATE USER ''@'%'; CREATE USER 'root'@'10.%' IDENTIFIED BY 'x'; CREATE DATABASE test",
    );
    let (code, json) = plan_json(&["--detailed-exitcode"]);
    assert_eq!(code, 2);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([("db1".to_string(), vec!["hardening".to_string()])])
    );
    // ... and apply removes them on the primary and, by replication, everywhere.
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT COUNT(*) FROM mysql.user WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'))",
            "0",
        );
        eventually(
            h,
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'",
            "0",
        );
    }
    assert_empty_plan();
}

#[test]
fn firewall_admits_fleet_peers_to_the_database_port_and_nobody_else() {
    let mut lab = converged();
    let outsider = outsider("172.29.77.99");
    assert!(
        !can_connect(&outsider, "172.29.77.11", 3306),
        "3306 on db1 is closed to a host outside the inventory"
    );
    assert!(
        !can_connect(&outsider, "172.29.77.11", 22),
        "so is SSH (admin network only)"
    );
    assert!(
        can_connect(&["exec", "lab-db2"], "172.29.77.11", 3306),
        "db2, a fleet peer, reaches db1's 3306"
    );
    assert_eq!(slave_status("db2")["Slave_IO_Running"], "Yes");

    // A rule set that would cut off the operator's own SSH is refused; nothing changes.
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "lockout.yml",
        &[(
            "admin_networks: [172.29.77.1/32]",
            "admin_networks: [10.0.0.0/8]",
        )],
    );
    let rules_before = sha256("db1", "/etc/dbfleet/firewall.nft");
    let p = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(p.code, 1, "{}", p.all());
    // The diagnostic wraps long lines with a `│` gutter: compare words.
    let words = |t: &str| {
        t.split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        words(&p.stderr).contains("the firewall would cut off your own SSH session to backup1 (this session comes from 172.29.77.1)"),
        "{}",
        p.all()
    );
    assert_eq!(sha256("db1", "/etc/dbfleet/firewall.nft"), rules_before);

    // Rules flushed out of band (a reboot, `nft flush`) show in the plan and are reloaded.
    on("db3", "nft delete table inet dbfleet");
    let (_, json) = plan_json(&[]);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([("db3".to_string(), vec!["firewall loaded".to_string()])])
    );
    converge(&mut lab);
    assert!(!can_connect(&outsider, "172.29.77.13", 3306));
}

#[test]
fn ufw_backend_loads_checked_rules_and_converges() {
    let mut lab = converged();
    // backup1 moves to the seed's ufw; dbfleet's nftables table goes first so ufw alone filters.
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "ufw.yml",
        &[(
            "admin_networks: [172.29.77.1/32]",
            "backend: ufw\n  admin_networks: [172.29.77.1/32]",
        )],
    );
    on("backup1", "nft delete table inet dbfleet");
    let a = dbfleet_with(
        &inv,
        &["--limit", "backup1", "apply", "--auto-approve"],
        &[],
    );
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout.contains("backup1: ufw rules … changed")
            && a.stdout.contains("backup1: ufw loaded … changed"),
        "{}",
        a.all()
    );
    let status = on("backup1", "ufw status");
    assert!(status.contains("Status: active"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("22/tcp") && l.contains("ALLOW") && l.contains("172.29.77.1")),
        "{status}"
    );
    let outsider = outsider("172.29.77.98");
    assert!(
        !can_connect(&outsider, "172.29.77.21", 22),
        "ufw keeps a host outside the inventory off SSH"
    );
    // Converged: the next plan with ufw is empty.
    let p = dbfleet_with(
        &inv,
        &["--limit", "backup1", "plan", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(p.code, 0, "{}", p.all());
    // Back to nftables for the other tests.
    on(
        "backup1",
        "ufw --force reset >/dev/null && ufw --force disable >/dev/null",
    );
    converge(&mut lab);
}
