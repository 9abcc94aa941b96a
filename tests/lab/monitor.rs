//! The failover monitor (issue 14): dbfleet installed by `apply` on the proxies (`monitor`
//! role) fails a killed primary over with nobody typing, exactly one monitor acting, and a
//! monitor killed in the middle of a failover leaves at most one writer.

use std::path::Path;
use std::time::{Duration, Instant};

use super::support::*;

const MONITORS: [&str; 2] = ["proxy1", "proxy2"];

/// Stops and removes the monitors when the test ends, passed or not: a monitor left running
/// would fail over under the next test's own faults.
struct Monitors;
impl Drop for Monitors {
    fn drop(&mut self) {
        for p in MONITORS {
            let _ = std::process::Command::new("docker")
                .args([
                    "exec",
                    &format!("lab-{p}"),
                    "sh",
                    "-c",
                    "[ -x /etc/init.d/dbfleet-monitor ] && /etc/init.d/dbfleet-monitor stop; rm -rf /etc/init.d/dbfleet-monitor /etc/dbfleet/monitor /usr/local/bin/dbfleet /var/lib/dbfleet/monitor.json /var/log/dbfleet-monitor.log",
                ])
                .output();
        }
    }
}

/// Each monitor's state file (`/var/lib/dbfleet/monitor.json`), by host.
fn states() -> Vec<(String, serde_json::Value)> {
    MONITORS
        .iter()
        .map(|p| {
            let text = on(
                p,
                "cat /var/lib/dbfleet/monitor.json 2>/dev/null || echo '{}'",
            );
            (
                p.to_string(),
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// The monitor that is active, once exactly one is (at most 20 s).
fn active_monitor() -> String {
    let t0 = Instant::now();
    loop {
        let s = states();
        let active: Vec<&String> = s
            .iter()
            .filter(|(_, v)| v["active"] == true)
            .map(|(p, _)| p)
            .collect();
        if let [one] = active[..] {
            return one.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not exactly one active monitor: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Lines of the monitors' logs containing `text`, by host.
fn log_lines(text: &str) -> Vec<(String, String)> {
    MONITORS
        .iter()
        .flat_map(|p| {
            on(p, "cat /var/log/dbfleet-monitor.log 2>/dev/null || true")
                .lines()
                .filter(|l| l.contains(text))
                .map(|l| (p.to_string(), l.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The database hosts whose server is writable, of those that answer.
fn writable() -> Vec<String> {
    DB_HOSTS
        .iter()
        .filter(|h| {
            std::process::Command::new("docker")
                .args([
                    "exec",
                    &format!("lab-{h}"),
                    "mariadb",
                    "-N",
                    "-B",
                    "-e",
                    "SELECT @@GLOBAL.read_only",
                ])
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0"
                })
        })
        .map(|h| h.to_string())
        .collect()
}

/// The inventory's primary.
fn primary_of(inv: &Path) -> String {
    let text = std::fs::read_to_string(inv).expect("inventory");
    DB_HOSTS
        .iter()
        .find(|h| {
            text.contains(&format!(
                "  {h}:\n    address: 172.29.77.1{}\n    roles: [primary]",
                &h[2..]
            ))
        })
        .expect("a primary in the inventory")
        .to_string()
}

/// Issue 14, must-shows 1 and 4, on real hosts:
/// 1. `apply` installs the monitor on both proxies; exactly one is active. The primary is
///    killed while the application writes through the virtual IP; nobody types: the active
///    monitor fails over (detection included), writes resume on the new primary, every
///    acknowledged insert is on the surviving servers (semi-sync), one monitor acted and the
///    other followed; `plan` refuses, offering the inventory edit, which `adopt` writes.
/// 2. The old primary comes back and the active monitor rejoins it as a replica; the new
///    primary is killed and the active monitor is killed
///    (SIGKILL) as soon as it starts failing over: at no moment are two servers writable,
///    and the fleet ends with one writer.
#[test]
fn the_failover_monitor_fails_a_killed_primary_over_with_nobody_typing_and_exactly_one_monitor_acts()
 {
    let mut lab = converged();
    let _cleanup = Monitors;
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "monitored.yml",
        &[
            (
                "    max_connections: 200",
                "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: 5000\n    failover_anti_flap_seconds: 0",
            ),
            (
                "    address: 172.29.77.31\n    roles: [proxy]",
                "    address: 172.29.77.31\n    roles: [proxy, monitor]",
            ),
            (
                "    address: 172.29.77.32\n    roles: [proxy]",
                "    address: 172.29.77.32\n    roles: [proxy, monitor]",
            ),
        ],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after apply:\n{}", p.all());
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    let acting = active_monitor();
    let st = status_when_healthy(Some(&inv));
    assert_eq!(st.code, 0, "{}", st.all());
    assert!(
        st.stdout.contains("failover monitors:")
            && st
                .stdout
                .contains(&format!("{acting}  active (3 of 3 locks)  primary db1")),
        "{}",
        st.stdout
    );

    // Round 1: the primary killed under write load through the virtual IP.
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );
    start_writer_in("lab-backup1", VIP, &app_password(), 20_000_000);
    std::thread::sleep(Duration::from_secs(1));
    let killed = now_s();
    docker(&["kill", "lab-db1"]);
    let t0 = Instant::now();
    while log_lines("failed over:").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no monitor failed over within 60 s: {:?}",
            log_lines("lab:")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));
    let acks = stop_writer_acks();
    assert_eq!(
        primary_of(&inv),
        "db1",
        "the monitor does not edit the operator's inventory"
    );
    let acted = log_lines("failed over:");
    assert_eq!(acted.len(), 1, "exactly one monitor acted: {acted:?}");
    assert_eq!(acted[0].0, acting, "the active monitor acted");
    let w = writable();
    assert_eq!(w.len(), 1, "one writable server: {w:?}");
    let new = w[0].clone();
    let new_id: u32 = new[2..].parse().expect("server id");
    let first = acks
        .iter()
        .find(|a| a.0 > killed && a.2 == new_id)
        .map(|a| a.0 - killed)
        .expect("writes resumed on the new primary");
    eprintln!(
        "monitor failover: {} acknowledged inserts; first on {new} {first:.3} s after the kill (detection included); {:?}",
        acks.len(),
        acted[0].1
    );
    let other = if new == "db2" { "db3" } else { "db2" };
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert_all_present(&new, &acked);
    assert_all_present(other, &acked);
    // The other monitor follows the new primary (the record pushed to it).
    let t0 = Instant::now();
    while !states().iter().all(|(_, v)| v["primary"] == new.as_str()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the monitors do not both follow {new}: {:?}",
            states()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The operator's plan refuses, showing the edit; adopt writes it.
    let p = dbfleet_with(&inv, &["plan"], &[]);
    assert_eq!(p.code, 1, "{}", p.all());
    assert!(
        p.stderr.contains("dbfleet adopt")
            && p.stderr.contains("failed cluster lab over")
            && p.stderr.contains("+    roles: [primary]"),
        "{}",
        p.all()
    );
    let ad = dbfleet_with(&inv, &["adopt"], &[]);
    assert_eq!(ad.code, 0, "{}", ad.all());
    assert_eq!(primary_of(&inv), new, "{}", ad.all());
    let again = dbfleet_with(&inv, &["adopt"], &[]);
    assert!(again.stdout.contains("No failover"), "{}", again.all());

    // Round 2: db1 back, rejoined by the monitor, converged; then the new primary and, as
    // soon as it starts failing over, the active monitor are killed.
    docker(&["start", "lab-db1"]);
    let t0 = Instant::now();
    while on("db1", "pidof sshd || true").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "db1's sshd does not start"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The active monitor rejoins it by itself (MaxScale's auto_rejoin).
    while log_lines("rejoined db1").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "db1 was not rejoined within 60 s: {:?}",
            log_lines("lab:")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = slave_status("db1");
    assert_eq!(st["Slave_SQL_Running"], "Yes", "{st:?}");
    assert_eq!(st["Master_Host"], format!("172.29.77.1{}", &new[2..]));
    assert_all_present("db1", &acked);
    let r = dbfleet_with(&inv, &["rejoin", "db1", "--auto-approve"], &[]);
    assert!(
        r.code == 0 && r.stdout.contains("already replicates"),
        "{}",
        r.all()
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the rejoin:\n{}", p.all());
    eventually(
        &new,
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    let acting = active_monitor();
    let before = log_lines("failing over").len();
    docker(&["kill", &format!("lab-{new}")]);
    let t0 = Instant::now();
    while log_lines("failing over").len() == before {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no monitor started failing over: {:?}",
            log_lines("lab:")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    on(
        &acting,
        "pkill -KILL -f '^/usr/local/bin/dbfleet --inventory' || true",
    );
    let killed_monitor = Instant::now();
    while killed_monitor.elapsed() < Duration::from_secs(30) {
        let w = writable();
        assert!(w.len() <= 1, "two writers: {w:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let w = writable();
    eprintln!(
        "active monitor {acting} killed mid-failover: writable now {w:?}; decisions: {:?}",
        log_lines("lab:")
            .into_iter()
            .filter(|(_, l)| l.contains("fail"))
            .collect::<Vec<_>>()
    );
    assert_eq!(w.len(), 1, "one writer at the end: {w:?}");

    // Back to a fresh, converged lab without monitors.
    drop(_cleanup);
    reset(&["db1", "db2", "db3"]);
    lab.fresh = true;
    converge(&mut lab);
}
