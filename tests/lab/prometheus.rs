//! Monitoring with real parts (issue 15): the lab inventory's `monitoring:` installs
//! Debian's node and mysqld exporters, HAProxy's endpoint and Prometheus on backup1. These
//! tests ask Prometheus's HTTP API (from this machine, an admin network) what it scrapes and
//! which alerts fire, as an operator's Grafana or curl would.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::support::*;

/// backup1's Prometheus (inventories/lab.yml `monitoring.servers`, `prometheus_port`).
const PROMETHEUS: &str = "172.29.77.21:9090";
/// The lab's `scrape_interval` and `evaluation_interval`, seconds.
const INTERVAL_S: f64 = 5.0;

/// The JSON body of `GET path` on Prometheus (HTTP/1.0, no client library needed).
fn api(path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(PROMETHEUS).expect("connect to Prometheus");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {PROMETHEUS}\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("GET {path}: {e}\n{body}"))
}

/// PromQL in a query string.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The instant vector of `q`: (labels, value) per series.
fn query(q: &str) -> Vec<(serde_json::Value, String)> {
    let v = api(&format!("/api/v1/query?query={}", encode(q)));
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The hosts (`host` label) of the series of `q`, sorted.
fn hosts_of(q: &str) -> Vec<String> {
    let mut h: Vec<String> = query(q)
        .iter()
        .filter_map(|(m, _)| m["host"].as_str().map(str::to_string))
        .collect();
    h.sort();
    h.dedup();
    h
}

/// Polls `f` every 500 ms for up to `limit`; its last answer.
pub(super) fn until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The firing or pending alerts named `name`: (labels, state, activeAt as epoch seconds).
pub(super) fn alerts(name: &str) -> Vec<(serde_json::Value, String, f64)> {
    let v = api("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .map(|a| {
            let at = a["activeAt"].as_str().unwrap_or("").to_string();
            (
                a["labels"].clone(),
                a["state"].as_str().unwrap_or("").to_string(),
                rfc3339_s(&at),
            )
        })
        .collect()
}

/// `2026-12-04T14:01:02.123456789Z` as epoch seconds (UTC, as Prometheus writes it).
fn rfc3339_s(t: &str) -> f64 {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", t, "+%s.%N"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_every_host_and_a_stopped_replica_fires_its_alert() {
    let _lab = converged();
    const ALL: [&str; 6] = ["backup1", "db1", "db2", "db3", "proxy1", "proxy2"];

    // Every target up: 6 node exporters, 3 mysqld exporters, 2 HAProxy endpoints.
    let up = until(Duration::from_secs(60), || {
        let node = hosts_of(r#"up{job="node"} == 1"#);
        let mysqld = hosts_of(r#"up{job="mysqld"} == 1"#);
        let haproxy = hosts_of(r#"up{job="haproxy"} == 1"#);
        (node == ALL && mysqld == DB_HOSTS && haproxy == ["proxy1", "proxy2"]).then_some(())
    });
    assert!(up.is_some(), "not every target is up: {:?}", query("up"));

    // The expected series, for every host: the machine (node exporter), the server and its
    // replication (mysqld exporter: read_only, the replicas' threads), HAProxy's backends,
    // and dbfleet's own textfile metrics (the replication check, cron every minute). Asked
    // until all hold (a scrape every 5 s; the check's first run within a minute).
    let expected: [(&str, &[&str]); 7] = [
        ("node_uname_info", &ALL),
        ("mysql_up == 1", &DB_HOSTS),
        // Only the primary is writable.
        ("mysql_global_variables_read_only == 0", &["db1"]),
        ("mysql_slave_status_slave_sql_running == 1", &["db2", "db3"]),
        ("mysql_slave_status_slave_io_running == 1", &["db2", "db3"]),
        (
            r#"haproxy_backend_active_servers{proxy="writer"} == 1"#,
            &["proxy1", "proxy2"],
        ),
        ("dbfleet_replication_check_up == 1", &DB_HOSTS),
    ];
    let missing = || -> Vec<String> {
        expected
            .iter()
            .filter_map(|(q, want)| {
                let got = hosts_of(q);
                (got != *want).then(|| format!("{q}: {got:?}, expected {want:?}"))
            })
            .collect()
    };
    let all = until(Duration::from_secs(90), || {
        missing().is_empty().then_some(())
    });
    assert!(all.is_some(), "series missing: {:#?}", missing());

    // The rules are loaded: dbfleet's and the operator's.
    let rules = api("/api/v1/rules").to_string();
    for name in [
        "DbfleetReplicationStopped",
        "DbfleetTwoWriters",
        "DbfleetBackupOlderThanRpo",
        "LabManyConnections",
    ] {
        assert!(rules.contains(name), "rule {name} not loaded: {rules}");
    }
    assert!(
        alerts("DbfleetReplicationStopped").is_empty(),
        "{:?}",
        alerts("DbfleetReplicationStopped")
    );

    // The exporter's password is in its 0640 file, never on its command line.
    let cnf = on(
        "db2",
        "stat -c '%a %U %G' /etc/prometheus/mysqld-exporter.cnf",
    );
    assert_eq!(cnf.trim(), "640 root prometheus");
    let pw = on(
        "db2",
        "sed -n 's/^password *= *//p' /etc/prometheus/mysqld-exporter.cnf | tr -d '\"'",
    );
    let ps = on("db2", "ps -eo args");
    assert!(
        pw.trim().len() >= 8 && !ps.contains(pw.trim()),
        "the exporter's password is on a command line"
    );

    // A replica stopped: the alert fires (no `for`) at the first evaluation after the
    // first scrape that sees it, so within two intervals of the stop.
    let stopped = now_s();
    sql("db3", "STOP SLAVE");
    let fired = until(Duration::from_secs(30), || {
        alerts("DbfleetReplicationStopped")
            .into_iter()
            .find(|(l, state, _)| l["host"] == "db3" && state == "firing")
    });
    sql("db3", "START SLAVE");
    let (labels, _, active_at) = fired.expect("DbfleetReplicationStopped never fired for db3");
    assert_eq!(labels["severity"], "critical");
    let after = active_at - stopped;
    eprintln!(
        "DbfleetReplicationStopped for db3 active {after:.1} s after STOP SLAVE (scrape and evaluation every {INTERVAL_S} s)"
    );
    assert!(
        after <= 2.0 * INTERVAL_S + 0.5,
        "the alert became active {after:.1} s after the stop: over two intervals"
    );
    // Resolved once the replica runs again.
    let resolved = until(Duration::from_secs(30), || {
        alerts("DbfleetReplicationStopped").is_empty().then_some(())
    });
    assert!(
        resolved.is_some(),
        "{:?}",
        alerts("DbfleetReplicationStopped")
    );
    replication_running();
}

#[test]
fn promtool_refuses_a_broken_rule_and_nothing_is_replaced() {
    let _lab = converged();
    let before = sha256("backup1", "/etc/prometheus/dbfleet-rules.yml");
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = lab_variant(
        dir.path(),
        "broken-rule.yml",
        &[(
            "expr: 'mysql_global_status_threads_connected > 150'",
            "expr: 'mysql_global_status_threads_connected > > 150'",
        )],
    );
    let a = dbfleet_with(&broken, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 1, "{}", a.all());
    let out = a.all();
    assert!(
        out.contains("backup1: prometheus rules … FAILED") && out.contains("parse error"),
        "the refusal names the task and promtool's reason:\n{out}"
    );
    assert_eq!(
        sha256("backup1", "/etc/prometheus/dbfleet-rules.yml"),
        before,
        "the rules file was replaced"
    );
    // Prometheus still runs the old rules, and the lab's inventory has nothing to do.
    let rules = api("/api/v1/rules").to_string();
    assert!(
        rules.contains("mysql_global_status_threads_connected > 150"),
        "{rules}"
    );
    assert_empty_plan();
}
