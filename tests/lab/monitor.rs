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

/// Seconds from `t` to the first insert acknowledged by `server_id` after it.
fn first_ack_after(acks: &[(f64, u64, u32)], t: f64, server_id: u32) -> f64 {
    acks.iter()
        .find(|a| a.0 > t && a.2 == server_id)
        .map(|a| a.0 - t)
        .expect("writes resumed on the new primary")
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

/// The lab inventory with a monitor on each proxy, semi-sync with `timeout` (ms, or
/// "never": lossless) and no anti-flap window, written in `dir` as `name`, applied with an
/// empty re-plan, both replicas connected to db1 as semi-sync replicas.
fn monitored(dir: &Path, name: &str, timeout: &str) -> std::path::PathBuf {
    let semi = format!(
        "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: {timeout}\n    failover_anti_flap_seconds: 0"
    );
    let inv = lab_variant(
        dir,
        name,
        &[
            ("    max_connections: 200", semi.as_str()),
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
    inv
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
    // The machine alone: its checks are timed (the failover, the rejoin within 60 s). Stop
    // 38's run saw both monitors stand by for 60 s and never rejoin db1: they split the
    // locks and handed them to each other; they now ask in inventory order
    // (`runbooks::monitor::may_take`), and the rejoin below needs an active monitor.
    let alone = lab.alone();
    let _cleanup = Monitors;
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = monitored(dir.path(), "monitored.yml", "5000");
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
    let first = first_ack_after(&acks, killed, new_id);
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
    drop(alone);
    reset(&["db1", "db2", "db3"]);
    lab.fresh = true;
    converge(&mut lab);
}

/// Waits (at most `limit`) until some monitor's log has a line containing `text` after the
/// first `before` such lines; returns when it appeared (epoch seconds, as sampled).
fn wait_log(text: &str, before: usize, limit: Duration) -> f64 {
    let t0 = Instant::now();
    while log_lines(text).len() <= before {
        assert!(
            t0.elapsed() < limit,
            "no monitor logged {text:?} within {limit:?}: {:?}",
            log_lines("lab:")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    now_s()
}

/// The server_ids answering through the virtual IP's reader port, read `n` times from
/// backup1 (new connections), each with its read_only: (server_id, read_only).
fn reader_port_answers(n: usize) -> Vec<(u32, bool)> {
    (0..n)
        .filter_map(|_| {
            let out = exec_in(
                "lab-backup1",
                &format!(
                    "mariadb --defaults-extra-file=/root/app.cnf -h {VIP} -P 3307 -N -B --connect-timeout=2 -e 'SELECT @@server_id, @@read_only' 2>/dev/null || true"
                ),
            );
            let mut f = out.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()? == "1"))
        })
        .collect()
}

/// One hang drill: `freeze` stops the primary `old` from answering while the writer runs,
/// `thaw` ends it after 30 s. Checks: the monitor fails over (one monitor acts) while it is
/// still frozen, writes resume on the new primary (the time from the freeze is printed: a
/// figure, not a timed assertion; `bench/autofailover.sh` measures it), no insert is
/// acknowledged by `old` after the freeze, the reader port never answers from a writable
/// server, every acknowledged insert is on both other servers, and the monitor rejoins
/// `old` (or refuses it for transactions never acknowledged, and it is rebuilt). Returns
/// the new primary, the inventory adopted and converged.
fn hang_drill(
    inv: &Path,
    old: &str,
    what: &str,
    freeze: &dyn Fn(),
    thaw: &dyn Fn(),
    from: u64,
) -> String {
    let acted_before = log_lines("failed over:").len();
    let rejoined_before = log_lines(&format!("rejoined {old}")).len();
    let refused_before = log_lines(&format!("rejoin of {old} refused")).len();
    start_writer_in("lab-backup1", VIP, &app_password(), from);
    std::thread::sleep(Duration::from_secs(1));
    let frozen = now_s();
    freeze();
    let acted_at = wait_log("failed over:", acted_before, Duration::from_secs(30));
    assert!(
        acted_at < frozen + 30.0,
        "{what}: the failover came after the thaw"
    );
    let sleep = (frozen + 30.0 - now_s()).max(0.0);
    std::thread::sleep(Duration::from_secs_f64(sleep));
    thaw();
    let thawed = now_s();
    // After the thaw: the reader port never answers from a writable server.
    let mut answers = Vec::new();
    while now_s() < thawed + 8.0 {
        answers.extend(reader_port_answers(5));
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = Instant::now();
    while log_lines(&format!("rejoined {old}")).len() == rejoined_before
        && log_lines(&format!("rejoin of {old} refused")).len() == refused_before
    {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{old} was neither rejoined nor refused within 90 s of the thaw: {:?}",
            log_lines("lab:")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let acks = stop_writer_acks();
    for (h, l) in log_lines("lab:")
        .iter()
        .filter(|(_, l)| l.contains("fail") || l.contains("hung") || l.contains("rejoin"))
    {
        eprintln!("  {h}: {l}");
    }
    // The failovers' steps, timed from each one's start: where the time after the
    // decision goes.
    for (h, l) in log_lines(" ms)") {
        eprintln!("  {h}: {l}");
    }
    let acted = log_lines("failed over:");
    assert_eq!(
        acted.len(),
        acted_before + 1,
        "exactly one monitor acted: {acted:?}"
    );
    let acting = acted.last().expect("a monitor acted").0.clone();
    let primary_now = states()
        .into_iter()
        .find(|(h, _)| *h == acting)
        .and_then(|(_, v)| v["primary"].as_str().map(str::to_string))
        .expect("the acting monitor's state");
    assert_ne!(primary_now, old, "{acted:?}");
    let new = primary_now;
    let new_id: u32 = new[2..].parse().expect("server id");
    let old_id: u32 = old[2..].parse().expect("server id");
    let first = first_ack_after(&acks, frozen, new_id);
    let late: Vec<&(f64, u64, u32)> = acks
        .iter()
        .filter(|a| a.2 == old_id && a.0 > frozen + 0.5)
        .collect();
    let writable_readers: Vec<&(u32, bool)> = answers.iter().filter(|a| !a.1).collect();
    eprintln!(
        "{what}: {} acknowledged inserts; monitor failed over {:.1} s after the freeze; first insert on {new} {first:.3} s after it; reader port after the thaw: {} answers, none writable: {}",
        acks.len(),
        acted_at - frozen,
        answers.len(),
        writable_readers.is_empty()
    );
    assert!(
        late.is_empty(),
        "{old} acknowledged inserts after it froze: {late:?}"
    );
    assert!(
        writable_readers.is_empty(),
        "the reader port answered from a writable server: {writable_readers:?}"
    );
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    for h in DB_HOSTS.iter().filter(|h| **h != old) {
        assert_all_present(h, &acked);
    }
    let ad = dbfleet_with(inv, &["adopt"], &[]);
    assert_eq!(ad.code, 0, "{}", ad.all());
    assert_eq!(primary_of(inv), new, "{}", ad.all());
    if log_lines(&format!("rejoined {old}")).len() == rejoined_before {
        // Refused: the only acceptable reason is a transaction it logged and nobody
        // acknowledged (lossless semi-sync); then it is rebuilt, as an operator would.
        let why = log_lines(&format!("rejoin of {old} refused"));
        eprintln!("{what}: rejoin refused: {why:?}");
        assert!(why.iter().any(|(_, l)| l.contains("never saw")), "{why:?}");
        reset(&[old]);
    } else {
        assert_all_present(old, &acked);
        // Its replicas' connections were closed, not left half-open on it: a thawed
        // server's dump threads writing into connections its replicas reset only on their
        // side lasted minutes, and promoted again it hung in MariaDB's semi-sync ack
        // receiver (bench/autofailover.sh, issue 29).
        eventually(
            old,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'",
            "0",
        );
    }
    let a = dbfleet_with(inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the {what}:\n{}", p.all());
    eventually(
        &new,
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    new
}

/// Issue 29 on real hosts, the monitors on both proxies, lossless semi-sync, the writer and
/// a reader through the virtual IP:
/// 1. the primary frozen 6 s (docker pause) is waited out: no failover, it stays primary;
/// 2. the primary frozen 30 s (docker pause: sshd too) is failed over while frozen, writes
///    resume on the new primary, none lost, the old one never
///    acknowledging anything after it froze; on thaw it is fenced and rejoined;
/// 3. the same with only the server process stopped (`kill -STOP`, sshd alive): the
///    failover kills the hung server, the monitor starts and rejoins it.
///
/// The data disk is not made to hang: the lab's containers have no block device of their
/// own to suspend (docs/src/high-availability.md, issue 29).
#[test]
fn a_hung_primary_is_failed_over_by_the_monitor_and_a_short_stall_is_not() {
    let mut lab = converged();
    // The machine alone: a 6 s stall must stay shorter than the monitor's patience, and a
    // neighbour lab's load would stretch what the monitor sees.
    let alone = lab.alone();
    let _cleanup = Monitors;
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = monitored(dir.path(), "hung.yml", "never");
    // The replicas' heartbeat period that tells a hung source from a live one.
    for r in ["db2", "db3"] {
        assert_eq!(
            sql(
                r,
                "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_HEARTBEAT_PERIOD'"
            ),
            "0.250",
            "{r}"
        );
    }
    active_monitor();
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );

    // 1. A 6 s stall is not a death.
    start_writer_in("lab-backup1", VIP, &app_password(), 30_000_000);
    std::thread::sleep(Duration::from_secs(1));
    docker(&["pause", "lab-db1"]);
    std::thread::sleep(Duration::from_secs(6));
    docker(&["unpause", "lab-db1"]);
    std::thread::sleep(Duration::from_secs(12));
    let acks = stop_writer_acks();
    assert!(
        log_lines("failed over:").is_empty(),
        "a 6 s stall was failed over: {:?}",
        log_lines("lab:")
    );
    assert_eq!(writable(), vec!["db1".to_string()]);
    let last = acks.last().expect("acknowledged inserts");
    assert_eq!(last.2, 1, "db1 takes the writes again after the stall");
    eprintln!(
        "6 s stall: no failover; {} inserts acknowledged, longest gap {:.1} s",
        acks.len(),
        longest_gap(&acks)
    );

    // 2. Frozen 30 s, sshd too.
    let new = hang_drill(
        &inv,
        "db1",
        "docker pause 30 s",
        &|| docker(&["pause", "lab-db1"]),
        &|| docker(&["unpause", "lab-db1"]),
        31_000_000,
    );

    // 3. Only the server process stopped, sshd alive.
    let stop = "pkill -STOP -x mariadbd".to_string();
    let cont = "pkill -CONT -x mariadbd || true".to_string();
    let host = new.clone();
    let host2 = new.clone();
    hang_drill(
        &inv,
        &new,
        "kill -STOP of the server",
        &move || {
            on(&host, &stop);
        },
        &move || {
            on(&host2, &cont);
        },
        32_000_000,
    );

    drop(alone);
    // Back to a fresh, converged lab without monitors.
    drop(_cleanup);
    reset(&["db1", "db2", "db3"]);
    lab.fresh = true;
    converge(&mut lab);
}
