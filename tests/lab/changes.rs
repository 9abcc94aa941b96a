//! Changes without downtime (issue 16): a setting the server takes live is changed with
//! `SET GLOBAL` on every server, under write load through the proxy, with no restart.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::*;

fn pids() -> Vec<String> {
    DB_HOSTS.iter().map(|h| on(h, "pidof mariadbd")).collect()
}

#[test]
fn a_dynamic_setting_changes_live_under_write_load_without_a_restart_and_drift_is_set_back() {
    let _lab = converged();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "lab.yml",
        &[("    max_connections: 200", "    max_connections: 300")],
    );
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );
    let before = pids();

    // The plan says what changes: the live file and one SET GLOBAL per server, nothing else.
    let p = dbfleet_with(&inv, &["plan", "--json"], &[]);
    let plan: serde_json::Value = serde_json::from_str(&p.stdout).expect("plan --json");
    let want: BTreeMap<String, Vec<String>> = DB_HOSTS
        .iter()
        .map(|h| {
            (
                h.to_string(),
                vec![
                    "live settings file".to_string(),
                    "live max_connections".to_string(),
                ],
            )
        })
        .collect();
    assert_eq!(changed_tasks(&plan), want, "{}", p.stdout);

    // Applied while the application inserts through the proxy's writer port.
    start_writer_in("lab-backup1", "172.29.77.31", &app_password(), 7_000_000);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    std::thread::sleep(Duration::from_millis(500));
    let acks = stop_writer_acks();
    assert_eq!(a.code, 0, "{}", a.all());
    let gap = acks.windows(2).map(|w| w[1].0 - w[0].0).fold(0.0, f64::max);
    eprintln!(
        "dynamic change: {} acknowledged inserts, longest gap between two {gap:.3} s",
        acks.len()
    );
    assert_eq!(pids(), before, "no server restarted");
    for h in DB_HOSTS {
        assert_eq!(sql(h, "SELECT @@GLOBAL.max_connections"), "300", "{h}");
    }
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(acked.len() > 20, "{} acknowledged inserts", acked.len());
    assert_all_present("db1", &acked);
    assert!(
        gap < 0.2,
        "the longest gap between acknowledged inserts was {gap:.3} s"
    );
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after apply:\n{}", p.all());

    // A live value changed by hand, the file untouched: planned on that server alone, and
    // set back live.
    sql("db2", "SET GLOBAL max_connections = 77");
    let p = dbfleet_with(&inv, &["plan", "--json"], &[]);
    let plan: serde_json::Value = serde_json::from_str(&p.stdout).expect("plan --json");
    assert_eq!(
        changed_tasks(&plan),
        BTreeMap::from([("db2".to_string(), vec!["live max_connections".to_string()])])
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert_eq!(sql("db2", "SELECT @@GLOBAL.max_connections"), "300");

    // Back to the lab's inventory: live again, still no restart.
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert_eq!(pids(), before, "no server restarted");
    for h in DB_HOSTS {
        assert_eq!(sql(h, "SELECT @@GLOBAL.max_connections"), "200", "{h}");
    }
    assert_empty_plan();
}
