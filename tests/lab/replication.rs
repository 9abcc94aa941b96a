//! Replication: GTID over verified TLS, seeding a replica, status and errant transactions, semi-sync.

use std::process::Command;
use std::time::{Duration, Instant};

use super::support::*;

/// Replication statements a server has executed since it started.
fn replication_statements(host: &str) -> String {
    sql(
        host,
        "SELECT SUM(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN \
         ('COM_CHANGE_MASTER', 'COM_START_SLAVE', 'COM_STOP_SLAVE', 'COM_START_ALL_SLAVES', 'COM_STOP_ALL_SLAVES')",
    )
}

fn global_status(host: &str, name: &str) -> String {
    sql(
        host,
        &format!(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{name}'"
        ),
    )
}

#[test]
fn replicas_replicate_by_gtid_over_verified_tls_and_a_second_apply_issues_nothing() {
    let _lab = converged();
    for h in ["db2", "db3"] {
        let st = slave_status(h);
        for (field, want) in [
            ("Master_Host", "172.29.77.11"),
            ("Using_Gtid", "Slave_Pos"),
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Master_SSL_Allowed", "Yes"),
            ("Master_SSL_Verify_Server_Cert", "Yes"),
        ] {
            assert_eq!(
                st.get(field).map(String::as_str),
                Some(want),
                "{h}: {field}"
            );
        }
    }
    // A row written on db1 appears on both replicas.
    let marker = format!("row-{:x}", rand_u64());
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.flow (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))",
    );
    sql(
        "db1",
        &format!("INSERT INTO app.flow (v) VALUES ('{marker}')"),
    );
    for h in ["db2", "db3"] {
        eventually(
            h,
            &format!("SELECT COUNT(*) FROM app.flow WHERE v = '{marker}'"),
            "1",
        );
    }
    // Second apply: zero changes, and no replication statement reaches a replica.
    let before: Vec<String> = ["db2", "db3"]
        .iter()
        .map(|h| replication_statements(h))
        .collect();
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout
            .contains("No changes: 6 hosts match the inventory."),
        "{}",
        a.all()
    );
    let after: Vec<String> = ["db2", "db3"]
        .iter()
        .map(|h| replication_statements(h))
        .collect();
    assert_eq!(
        before, after,
        "no CHANGE MASTER / START SLAVE / STOP SLAVE on a healthy replica"
    );
    assert_empty_plan();
}

#[test]
fn a_fresh_replica_is_seeded_from_a_loaded_primary() {
    let _lab = converged();
    // 100,000 rows on db1 (the sequence engine makes them in one statement).
    sql(
        "db1",
        "USE app; DROP TABLE IF EXISTS app.big; CREATE TABLE app.big (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB; \
         INSERT INTO app.big SELECT seq, MD5(seq) FROM seq_1_to_100000",
    );
    // History written under another server_id (as by an earlier primary), then more by db1,
    // so that the copy's position is db1's: the seeded replica must still inherit the older
    // history in its gtid_binlog_state (issue 10, case 3).
    let history = sql(
        "db1",
        "SET SESSION server_id = 7; INSERT INTO app.big VALUES (0, 'history'); SET SESSION server_id = 1; \
         SELECT @@GLOBAL.gtid_binlog_pos; INSERT INTO app.big VALUES (-1, 'after the history')",
    );
    assert!(history.starts_with("0-7-"), "{history}");
    // db3 comes back as a bare host (sshd only): it has to be provisioned and seeded.
    let o = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .args(["reset", "db3"])
        .output()
        .expect("reset");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, plan) = plan_json(&["--detailed-exitcode", "--limit", "db3"]);
    assert_eq!(code, 2);
    let db3 = &plan["hosts"].as_array().expect("hosts")[0];
    let repl = db3["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["task"] == "replication")
        .expect("a replication change");
    assert_eq!(repl["summary"], "bootstrap replication from db1");

    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    let st = slave_status("db3");
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str(),
            st["Using_Gtid"].as_str()
        ),
        ("Yes", "Yes", "Slave_Pos")
    );
    assert_eq!(sql("db3", "SELECT COUNT(*) FROM app.big"), "100002");
    let state = sql("db3", "SELECT @@GLOBAL.gtid_binlog_state");
    assert!(
        state.split(',').any(|g| g == history),
        "db3's gtid_binlog_state {state} holds the copy's history {history}"
    );
    assert_eq!(
        sql("db3", "CHECKSUM TABLE app.big"),
        sql("db1", "CHECKSUM TABLE app.big"),
        "db3's copy equals db1's"
    );
    // And it keeps replicating.
    sql(
        "db1",
        "INSERT INTO app.big VALUES (100001, 'after the seed')",
    );
    eventually(
        "db3",
        "SELECT v FROM app.big WHERE id = 100001",
        "after the seed",
    );
    assert_empty_plan();
}

#[test]
fn status_is_healthy_then_names_an_errant_replica() {
    let mut lab = converged();
    // A server the apply restarted has replicas whose IO threads reconnect on their next
    // retry (MASTER_CONNECT_RETRY): healthy within 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = dbfleet(&["status"]);
        if s.code == 0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(s.code, 0, "a converged fleet is healthy:\n{}", s.all());
    // The topology view (issue 15): db1 the root, db2 and db3 under it, each healthy; each
    // proxy writes to db1 and reads from both replicas.
    let line = |h: &str| {
        s.stdout
            .lines()
            .find(|l| l.contains(&format!("─ {h}  ")))
            .unwrap_or_else(|| panic!("no line for {h}:\n{}", s.stdout))
            .to_string()
    };
    assert!(
        line("db1").starts_with("  └─ db1  primary  10.11."),
        "{}",
        s.stdout
    );
    for h in DB_HOSTS {
        assert!(line(h).trim_end().ends_with("  ok"), "{h}:\n{}", s.stdout);
    }
    for h in ["db2", "db3"] {
        assert!(line(h).starts_with("     "), "{h} under db1:\n{}", s.stdout);
    }
    for p in ["proxy1", "proxy2"] {
        assert!(
            s.stdout.lines().any(|l| l
                .starts_with(&format!("  proxy {p}  writer: db1 UP  readers: "))
                && l.contains("db2 UP")
                && l.contains("db3 UP")
                && l.ends_with("  ok")),
            "{p}:\n{}",
            s.stdout
        );
    }
    let (_, json) = {
        let o = dbfleet(&["status", "--json"]);
        (
            o.code,
            serde_json::from_str::<serde_json::Value>(&o.stdout).expect("status --json"),
        )
    };
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["hosts"].as_array().expect("rows").len(), 3);
    assert_eq!(json["proxies"].as_array().expect("proxies").len(), 2);

    // Issue 10, case 5: db1's packets to db2 are dropped (a one-way partition). db2's
    // threads still say Yes and Seconds_Behind_Master 0, but it falls behind: status names
    // the GTID distance.
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.behind (id INT PRIMARY KEY)",
    );
    eventually(
        "db2",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'behind'",
        "1",
    );
    fault(&["partition", "db2", "--in", "db1"]);
    for i in 1..=25 {
        sql("db1", &format!("INSERT INTO app.behind VALUES ({i})"));
    }
    let st = slave_status("db2");
    let s = dbfleet(&["status"]);
    fault(&["heal", "db2"]);
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str()
        ),
        ("Yes", "Yes"),
        "the threads still look healthy"
    );
    assert_eq!(s.code, 1, "{}", s.all());
    assert!(
        s.stderr
            .contains("db2: 25 transaction(s) behind the primary: did not reach its position"),
        "{}",
        s.all()
    );
    assert!(s.stdout.contains("25 trx"), "{}", s.all());
    eventually("db2", "SELECT COUNT(*) FROM app.behind", "25");
    assert_eq!(status_when_healthy(None).code, 0);

    // root holds READ ONLY ADMIN on 10.11: its write on a replica is an errant transaction.
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.w (id INT PRIMARY KEY)",
    );
    eventually(
        "db2",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'w'",
        "1",
    );
    sql("db2", "INSERT INTO app.w VALUES (4242)");
    let s = dbfleet(&["status"]);
    assert_eq!(s.code, 1, "{}", s.all());
    assert!(
        s.stderr
            .contains("db2: errant transaction(s) written on the replica itself: 0-2-"),
        "{}",
        s.all()
    );
    assert!(
        !s.stderr.contains("db3:"),
        "only db2 is named:\n{}",
        s.all()
    );

    // An errant replica is rebuilt: a bare host in its place, seeded again by apply.
    let o = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .args(["reset", "db2"])
        .output()
        .expect("reset");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    converge(&mut lab);
    assert_eq!(status_when_healthy(None).code, 0);
}

#[test]
fn semi_sync_on_request_is_lossless_after_sync_with_the_declared_timeout() {
    let mut lab = converged();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "semisync.yml",
        &[(
            "    max_connections: 200",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: 5000",
        )],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert_eq!(
        sql(
            "db1",
            "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_wait_point, @@rpl_semi_sync_master_timeout"
        ),
        "1\tAFTER_SYNC\t5000"
    );
    for h in ["db2", "db3"] {
        assert_eq!(
            sql(
                h,
                "SELECT @@rpl_semi_sync_slave_enabled, @@rpl_semi_sync_master_enabled"
            ),
            "1\t0",
            "{h}"
        );
    }
    // Both replicas connect as semi-sync clients, and a commit is acknowledged by one.
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    let acked: u64 = global_status("db1", "RPL_SEMI_SYNC_MASTER_YES_TX")
        .parse()
        .expect("number");
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.semi (id INT AUTO_INCREMENT PRIMARY KEY); INSERT INTO app.semi VALUES ()",
    );
    assert_eq!(global_status("db1", "RPL_SEMI_SYNC_MASTER_STATUS"), "ON");
    let acked_after: u64 = global_status("db1", "RPL_SEMI_SYNC_MASTER_YES_TX")
        .parse()
        .expect("number");
    assert!(
        acked_after > acked,
        "the commits were acknowledged semi-synchronously ({acked} → {acked_after})"
    );
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "{}", p.all());
    // Back to the lab's asynchronous replication.
    converge(&mut lab);
    assert_eq!(sql("db1", "SELECT @@rpl_semi_sync_master_enabled"), "0");
}
