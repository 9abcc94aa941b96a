//! High availability: switchover under load, failover after a kill and a partition, rejoin, the proxy's checks under load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::support::*;

/// Starts a writer on backup1 (an application host): a loop inserting increasing sequence
/// numbers from `from` into app.seq through the proxy, logging the acknowledged ones.
fn start_writer(primary: &str, from: u64) {
    sql(
        primary,
        "CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );
    start_writer_in("lab-backup1", "172.29.77.31", &app_password(), from);
}

/// Stops the writer; returns the acknowledged numbers and the longest gap between two
/// acknowledged writes, in seconds.
fn stop_writer() -> (Vec<u64>, f64) {
    let rows = stop_writer_acks();
    let gap = longest_gap(&rows);
    (rows.into_iter().map(|(_, n, _)| n).collect(), gap)
}

/// Reads through the proxy's reader port `n` times (new connections, from backup1, as the
/// application): each answer's (server_id, read_only).
fn reader_answers(n: usize) -> Vec<(u32, bool)> {
    on(
        "backup1",
        &format!(
            "for i in $(seq 1 {n}); do mariadb --defaults-extra-file=/root/app.cnf -h 172.29.77.31 -P 3307 -N --connect-timeout=2 \
             -e 'SELECT @@server_id, @@read_only' 2>/dev/null; done; true"
        ),
    )
    .lines()
    .filter_map(|l| {
        let (id, ro) = l.split_once('\t')?;
        Some((id.trim().parse().ok()?, ro.trim() == "1"))
    })
    .collect()
}

/// HAProxy's servers of `backend` that are up and not in maintenance (runtime state).
fn proxy_up(backend: &str) -> Vec<String> {
    on(
        "proxy1",
        &format!(
            "echo 'show servers state {backend}' | socat stdio unix-connect:/run/haproxy/admin.sock"
        ),
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 6 && f[1] == backend && f[5] == "2" && f[6] == "0").then(|| f[3].to_string())
    })
    .collect()
}

/// Once each of `hosts` has the last acknowledged number, every acknowledged number is in
/// app.seq there.
fn assert_everywhere(hosts: &[&str], acked: &[u64]) {
    let last = acked.iter().max().expect("acknowledged inserts");
    for h in hosts {
        eventually(
            h,
            &format!("SELECT COUNT(*) FROM app.seq WHERE n = {last}"),
            "1",
        );
        assert_all_present(h, acked);
    }
}

/// HAProxy's writer backend: servers that are up and not in maintenance (runtime state).
fn proxy_writers() -> Vec<String> {
    on(
        "proxy1",
        "echo 'show servers state writer' | socat stdio unix-connect:/run/haproxy/admin.sock",
    )
    .lines()
    .filter_map(|l| {
        // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 6 && f[1] == "writer" && f[5] == "2" && f[6] == "0").then(|| f[3].to_string())
    })
    .collect()
}

/// The lab with semi-sync on (`semi_sync_timeout_ms: timeout`) as inventory `name` in
/// `dir`, applied, with both replicas connected as semi-sync clients.
fn semi_sync_lab(dir: &Path, name: &str, timeout: &str) -> PathBuf {
    let vars = format!(
        "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: {timeout}"
    );
    let inv = lab_variant(dir, name, &[("    max_connections: 200", vars.as_str())]);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    inv
}

/// HAProxy's count of UP → DOWN transitions per `backend/server` (`show stat`, column
/// `chkdown`).
fn proxy_downs() -> BTreeMap<String, u64> {
    let csv = on(
        "proxy1",
        "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock",
    );
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (px, sv, down) = (col("pxname"), col("svname"), col("chkdown"));
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let server = f.get(sv)?;
            (*server != "FRONTEND" && *server != "BACKEND").then(|| {
                Some((
                    format!("{}/{server}", f.get(px)?),
                    f.get(down)?.parse().ok()?,
                ))
            })?
        })
        .collect()
}

#[test]
fn switchover_under_write_load_keeps_every_acknowledged_insert_and_refuses_unready_candidates() {
    let mut lab = converged();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "switchover.yml",
        &[(
            "    server_id: 2\n",
            "    server_id: 2\n    vars:\n      max_replica_lag_seconds: 2\n",
        )],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let before = std::fs::read_to_string(&inv).expect("inventory");

    // Must-show 2: a stopped candidate is refused and nothing changes ...
    sql("db2", "STOP SLAVE");
    let r = dbfleet_with(&inv, &["switchover", "--to", "db2", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("db2 is not replicating (IO thread: No, SQL thread: No)"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr.contains("switchover to db2 refused"),
        "{}",
        r.all()
    );
    assert_eq!(std::fs::read_to_string(&inv).expect("inventory"), before);
    assert_eq!(sql("db1", "SELECT @@GLOBAL.read_only"), "0");
    sql("db2", "START SLAVE");
    // ... and so is a lagging one (it applies 30 s late; its limit is 2 s).
    sql(
        "db2",
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE",
    );
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.lag (id INT PRIMARY KEY); REPLACE INTO app.lag VALUES (1)",
    );
    std::thread::sleep(Duration::from_secs(4));
    let r = dbfleet_with(&inv, &["switchover", "--to", "db2", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("db2 lags"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(&inv).expect("inventory"), before);
    assert_eq!(sql("db1", "SELECT @@GLOBAL.read_only"), "0");
    sql(
        "db2",
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE",
    );
    // The delayed CREATE TABLE may not be applied yet: wait for the table, then its row.
    eventually(
        "db2",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'lag'",
        "1",
    );
    eventually("db2", "SELECT COUNT(*) FROM app.lag", "1");

    // Must-show 1: db1 → db2 while the writer inserts through the proxy.
    start_writer("db1", 1_000_000);
    let s = dbfleet_with(&inv, &["switchover", "--to", "db2", "--auto-approve"], &[]);
    let (acked, gap) = stop_writer();
    assert_eq!(s.code, 0, "{}", s.all());
    assert!(s.stdout.contains("writes were blocked for"), "{}", s.all());
    eprintln!(
        "switchover: {} acknowledged inserts, longest gap between two {gap:.3} s",
        acked.len()
    );
    assert!(acked.len() > 20);
    assert_eq!(proxy_writers(), vec!["db2".to_string()]);
    for h in ["db1", "db3"] {
        assert_eq!(slave_status(h)["Master_Host"], "172.29.77.12", "{h}");
        assert_eq!(sql(h, "SELECT @@GLOBAL.read_only"), "1", "{h}");
    }
    assert_eq!(sql("db2", "SELECT @@GLOBAL.read_only"), "0");
    assert_everywhere(&DB_HOSTS, &acked);
    // The inventory says so now, its comments kept; a re-plan is empty.
    let after = std::fs::read_to_string(&inv).expect("inventory");
    assert!(
        after.contains("  db2:\n    address: 172.29.77.12\n    roles: [primary]"),
        "{after}"
    );
    assert!(
        after.contains("    roles: [replica]\n    server_id: 1"),
        "{after}"
    );
    assert!(
        after
            .starts_with("# yaml-language-server: $schema=../dbfleet.schema.json\n# The lab fleet"),
        "{after}"
    );
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "{}", p.all());
    // The demoted db1 still holds its own GTIDs from its time as primary; db2 has them too,
    // so they are history, not errant: status is healthy.
    let st = status_when_healthy(Some(&inv));
    assert_eq!(st.code, 0, "status after a switchover:\n{}", st.all());

    // And back to lab.yml's topology.
    let s = dbfleet_with(&inv, &["switchover", "--to", "db1", "--auto-approve"], &[]);
    assert_eq!(s.code, 0, "{}", s.all());
    converge(&mut lab);
}

#[test]
fn failover_after_a_killed_primary_loses_no_acknowledged_insert_then_rejoin_and_refusals() {
    let mut lab = converged();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "failover.yml",
        &[(
            "    max_connections: 200",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: 5000",
        )],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );

    // Must-show 4a: the primary is alive: refused.
    let r = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("db1 is alive"), "{}", r.all());

    // Must-show 3: kill the primary under write load, then fail over.
    start_writer("db1", 2_000_000);
    docker(&["kill", "lab-db1"]);
    let f = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    std::thread::sleep(Duration::from_secs(1));
    let (acked, gap) = stop_writer();
    assert_eq!(f.code, 0, "{}", f.all());
    eprintln!(
        "failover: {} acknowledged inserts, longest gap between two {gap:.3} s",
        acked.len()
    );
    let text = std::fs::read_to_string(&inv).expect("inventory");
    let new = if text.contains("  db2:\n    address: 172.29.77.12\n    roles: [primary]") {
        "db2"
    } else {
        "db3"
    };
    let other = if new == "db2" { "db3" } else { "db2" };
    let new_addr = if new == "db2" {
        "172.29.77.12"
    } else {
        "172.29.77.13"
    };
    assert!(
        f.stdout.contains(&format!("{new} is the primary")),
        "{}",
        f.all()
    );
    assert_eq!(proxy_writers(), vec![new.to_string()]);
    assert_eq!(sql(new, "SELECT @@GLOBAL.read_only"), "0");
    assert_eq!(sql(other, "SELECT @@GLOBAL.read_only"), "1");
    assert_eq!(slave_status(other)["Master_Host"], new_addr);
    assert_everywhere(&[new, other], &acked);

    // Must-show 4b: a second failover inside the anti-flap window refuses.
    let r = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("failover_anti_flap_seconds"),
        "{}",
        r.all()
    );

    // Must-show 5a: the killed host comes back and rejoins as a replica of the new primary.
    docker(&["start", "lab-db1"]);
    std::thread::sleep(Duration::from_secs(2));
    let d = dbfleet_with(&inv, &["rejoin", "db1", "--dry-run"], &[]);
    assert_eq!(d.code, 0, "{}", d.all());
    assert!(
        d.stdout
            .contains(&format!("Rejoin db1 as a replica of {new}"))
            && d.stdout.contains("Dry run: nothing was changed"),
        "{}",
        d.all()
    );
    let r = dbfleet_with(&inv, &["rejoin", "db1", "--auto-approve"], &[]);
    if r.code != 0 && r.stderr.contains("never saw") {
        // The killed primary kept a transaction no replica received, and rejoin refused
        // it (the behaviour under test: it never rejoins with it, and changed nothing past
        // fencing). MariaDB writes a transaction to its binary log before semi-sync waits
        // for a replica; killed in that wait, or with semi-sync fallen back to async (this
        // test's 5 s timeout, passed on a loaded machine), it keeps what no replica has.
        // Seen at this stop beside another lab: db1 kept 0-1-184. Those rows were never
        // acknowledged (checked here); db1 is then replaced by a bare host and seeded from
        // the new primary by `apply`, as the refusal tells the operator.
        let ids = |h: &str| -> std::collections::BTreeSet<u64> {
            sql(h, "SELECT n FROM app.seq")
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        };
        let extra: Vec<u64> = ids("db1").difference(&ids(new)).copied().collect();
        assert!(
            !extra.is_empty() && extra.iter().all(|n| !acked.contains(n)),
            "db1's errant rows {extra:?} must be unacknowledged ones:\n{}",
            r.all()
        );
        eprintln!(
            "rejoin refused db1's errant transaction (rows {extra:?}, never acknowledged); db1 rebuilt"
        );
        reset(&["db1"]);
        let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
        assert_eq!(a.code, 0, "{}", a.all());
    } else {
        assert_eq!(r.code, 0, "{}", r.all());
    }
    let st = slave_status("db1");
    assert_eq!(st["Slave_SQL_Running"], "Yes");
    assert_eq!(st["Master_Host"], new_addr);
    assert_all_present("db1", &acked);
    // The restarted container lost its cron daemon and firewall rules: apply restores them.
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "{}", p.all());

    // Must-show 4c and 5b: an errant transaction on `other` (root bypasses read_only), an
    // extra one on the primary that no replica receives; then the primary dies.
    sql(
        other,
        "CREATE TABLE IF NOT EXISTS app.errant (id INT PRIMARY KEY); INSERT INTO app.errant VALUES (1)",
    );
    sql("db1", "STOP SLAVE IO_THREAD");
    sql(other, "STOP SLAVE IO_THREAD");
    sql(
        new,
        "SET GLOBAL rpl_semi_sync_master_enabled = 0; CREATE TABLE app.extra (id INT PRIMARY KEY)",
    );
    let extra_gtid = sql(new, "SELECT @@GLOBAL.gtid_binlog_pos");
    docker(&["kill", &format!("lab-{new}")]);
    let r = dbfleet_with(
        &inv,
        &["failover", "--force", "--to", other, "--auto-approve"],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("{other} has errant transactions")),
        "{}",
        r.all()
    );
    // Issue 12, must-show 4: the failover as a plan value. --json shows the statements that
    // will run (the replication password as a placeholder); --out saves the plan; a saved
    // plan whose inventory changed is refused, changing nothing; unchanged, it runs.
    let j = dbfleet_with(&inv, &["failover", "--force", "--to", "db1", "--json"], &[]);
    assert_eq!(j.code, 0, "{}", j.all());
    let plan: serde_json::Value = serde_json::from_str(&j.stdout).expect("plan JSON");
    assert_eq!(plan["runbook"]["verb"], "failover", "{}", j.stdout);
    let steps = plan["steps"].as_array().expect("steps");
    assert!(
        steps.iter().any(|s| s["hosts"][0] == "db1"
            && s["action"]["do"] == "sql"
            && s["action"]["statements"]
                .as_str()
                .is_some_and(|t| t.contains("RESET SLAVE ALL"))),
        "db1's promotion is a step with its statements:\n{}",
        j.stdout
    );
    assert!(
        j.stdout.contains("[secret: replication password]"),
        "the repoint names the password by placeholder:\n{}",
        j.stdout
    );
    let store = std::fs::read_to_string(dir.path().join(".dbfleet/secrets.json")).expect("store");
    let secrets: serde_json::Value = serde_json::from_str(&store).expect("json");
    let repl_pw = secrets["replication_password"]
        .as_str()
        .expect("replication password");
    assert!(!j.stdout.contains(repl_pw), "no secret in the plan");
    let saved = dir.path().join("failover-plan.json");
    let saved_arg = saved.display().to_string();
    let o = dbfleet_with(
        &inv,
        &["failover", "--force", "--to", "db1", "--out", &saved_arg],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.all());
    assert!(o.stdout.contains("Saved the plan"), "{}", o.all());
    assert!(
        !std::fs::read_to_string(&saved)
            .expect("saved")
            .contains(repl_pw)
    );
    let text = std::fs::read_to_string(&inv).expect("inventory");
    std::fs::write(&inv, format!("{text}# edited after the plan was saved\n")).expect("edit");
    let stale = dbfleet_with(&inv, &["apply", &saved_arg], &[]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(
        stale.stderr.contains("stale") && stale.stderr.contains("inventory"),
        "{}",
        stale.all()
    );
    assert_eq!(
        sql("db1", "SELECT @@GLOBAL.read_only"),
        "1",
        "nothing changed"
    );
    std::fs::write(&inv, &text).expect("restore the inventory");
    let r = dbfleet_with(&inv, &["apply", &saved_arg], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("db1 is the primary"), "{}", r.all());
    assert_eq!(sql("db1", "SELECT @@GLOBAL.read_only"), "0");
    docker(&["start", &format!("lab-{new}")]);
    std::thread::sleep(Duration::from_secs(2));
    let r = dbfleet_with(&inv, &["rejoin", new, "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("never saw"), "{}", r.all());
    assert!(
        r.stderr.contains(extra_gtid.trim()),
        "the extra transaction {extra_gtid} is named:\n{}",
        r.all()
    );

    // A new cluster with lossless semi-sync converges in one apply: its primary's side is
    // switched on once the replicas replicate (playbooks/semi-sync.yml). Before, the
    // first apply hung on its own hardening (`DROP DATABASE test` waiting for an
    // acknowledgement no replica could give yet).
    reset(&["db1", "db2", "db3"]);
    let lossless = lab_variant(
        dir.path(),
        "lossless-new.yml",
        &[(
            "    max_connections: 200",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: never",
        )],
    );
    let a = dbfleet_with(&lossless, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&lossless, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    assert_eq!(
        sql("db1", "SELECT @@GLOBAL.rpl_semi_sync_master_enabled"),
        "1"
    );
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    sql(
        "db1",
        "CREATE TABLE app.lossless (id INT PRIMARY KEY); INSERT INTO app.lossless VALUES (1)",
    );
    eventually("db3", "SELECT COUNT(*) FROM app.lossless", "1");

    // Back to a fresh, converged lab.
    reset(&["db1", "db2", "db3"]);
    lab.fresh = true;
    converge(&mut lab);
}

/// Issue 10, cases 1 and 2, with the fault harness (lab/fault.sh): the primary is cut off
/// from this machine and from its replicas, but not from the proxy, while the application
/// writes through the proxy.
/// - With semi-sync that may fall back to async (a timeout in ms), the cut-off primary keeps
///   acknowledging writes only it has: `failover` refuses (the proxy still reaches it) and,
///   once healed, every acknowledged insert is everywhere.
/// - With lossless semi-sync (`semi_sync_timeout_ms: never`) its commits block: `failover`
///   fences it on the proxy and promotes a replica; every acknowledged insert survives, all
///   acknowledged by the primary of their moment; once its network is back the old primary
///   is served by neither backend (the reader port never answers from a writable server),
///   and `rejoin` leaves it read-only whatever it decides.
#[test]
fn partitioned_primary_still_reached_by_the_proxy_loses_no_acknowledged_write_and_never_makes_two_writers()
 {
    let mut lab = converged();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = semi_sync_lab(dir.path(), "fallback.yml", "3000");
    let before = std::fs::read_to_string(&inv).expect("inventory");

    // Case 1 with a fallback: refused, nothing changed, nothing lost.
    start_writer("db1", 3_000_000);
    fault(&["partition", "db1", "operator", "db2", "db3"]);
    std::thread::sleep(Duration::from_secs(6));
    let r = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    fault(&["heal", "db1"]);
    let acks = stop_writer_acks();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("db1 answers from proxy1"), "{}", r.all());
    assert!(r.stderr.contains("nothing was changed"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(&inv).expect("inventory"), before);
    assert_eq!(proxy_up("writer"), vec!["db1".to_string()]);
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(acks.iter().all(|a| a.2 == 1), "only db1 acknowledged");
    assert_everywhere(&DB_HOSTS, &acked);
    eprintln!(
        "partition with fallback: failover refused, 0 of {} acknowledged inserts lost",
        acked.len()
    );

    // Case 1 lossless, then case 2.
    let inv = semi_sync_lab(dir.path(), "lossless.yml", "never");
    assert_eq!(
        sql(
            "db1",
            "SELECT @@rpl_semi_sync_master_timeout, @@rpl_semi_sync_master_wait_no_slave"
        ),
        "31536000000\t1"
    );
    start_writer("db1", 4_000_000);
    fault(&["partition", "db1", "operator", "db2", "db3"]);
    std::thread::sleep(Duration::from_secs(4));
    let f = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    std::thread::sleep(Duration::from_secs(2));
    let acks = stop_writer_acks();
    assert_eq!(f.code, 0, "{}", f.all());
    assert!(
        f.stdout.contains("fenced there first") || f.stderr.contains("fenced there first"),
        "{}",
        f.all()
    );
    let text = std::fs::read_to_string(&inv).expect("inventory");
    let (new, other, new_id) =
        if text.contains("  db2:\n    address: 172.29.77.12\n    roles: [primary]") {
            ("db2", "db3", 2)
        } else {
            ("db3", "db2", 3)
        };
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(
        acks.iter().any(|a| a.2 == new_id),
        "writes resumed on {new}"
    );
    // Acknowledged by the primary of their moment: db1's acks all come before the new
    // primary's first, and no other server acknowledged anything.
    let first_new = acks.iter().position(|a| a.2 == new_id).expect("new acks");
    assert!(
        acks[..first_new].iter().all(|a| a.2 == 1)
            && acks[first_new..].iter().all(|a| a.2 == new_id),
        "two writers acknowledged inserts: {:?}",
        acks.iter().map(|a| a.2).collect::<Vec<_>>()
    );
    assert_everywhere(&[new, other], &acked);
    eprintln!(
        "lossless partition: failover fenced db1 on the proxy, 0 of {} acknowledged inserts lost",
        acked.len()
    );

    // Case 2: db1's network comes back, writable, with commits waiting for an ack.
    fault(&["heal", "db1"]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        sql("db1", "SELECT @@read_only"),
        "0",
        "the old primary came back writable"
    );
    assert_eq!(proxy_up("writer"), vec![new.to_string()]);
    assert!(
        !proxy_up("reader").contains(&"db1".to_string()),
        "db1 is no reader"
    );
    let answers = reader_answers(20);
    assert!(!answers.is_empty(), "the reader port answers");
    assert!(
        answers.iter().all(|(id, ro)| *ro && *id != 1),
        "the reader port served a writable server: {answers:?}"
    );
    let r = dbfleet_with(&inv, &["rejoin", "db1", "--auto-approve"], &[]);
    assert_eq!(
        sql("db1", "SELECT @@read_only"),
        "1",
        "rejoin (exit {}) fenced db1:\n{}",
        r.code,
        r.all()
    );

    // Back to a fresh, converged lab.
    reset(&DB_HOSTS);
    lab.fresh = true;
    converge(&mut lab);
}

/// Issue 10, case 4: the proxy host's CPUs saturated (stress-ng, 8 workers on 2 cores)
/// while the application writes through it: no healthy server is marked down, and writes
/// keep flowing. The checks are answered by the long-lived checker from its last read, with
/// no fork per check. (bench/nemesis.sh runs the 2-minute version and prints figures.)
#[test]
#[ignore = "long drill, run by bench/drills.sh, not by CI (docs/src/tests.md)"]
fn proxy_checks_keep_healthy_servers_up_on_a_saturated_proxy_host() {
    let mut lab = converged();
    // The machine alone: the saturation is the proxy's, not a neighbour lab's.
    let _alone = lab.alone();
    start_writer("db1", 5_000_000);
    // The writer is going, so every server has been checked: take the counters now.
    let before = proxy_downs();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    fault(&["stress", "proxy1", "40", "8"]);
    std::thread::sleep(Duration::from_secs(40));
    let acks = stop_writer_acks();
    let after = proxy_downs();
    let during: Vec<f64> = acks.iter().map(|a| a.0).filter(|t| *t > t0 + 1.0).collect();
    let gap = during.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    eprintln!(
        "saturated proxy: {} acknowledged inserts in 40 s, longest gap {gap:.3} s; chkdown before {before:?} after {after:?}",
        during.len()
    );
    for (server, n) in &after {
        if server.starts_with("writer/db1")
            || server.starts_with("reader/db2")
            || server.starts_with("reader/db3")
        {
            assert_eq!(
                before.get(server),
                Some(n),
                "{server} was marked down under load"
            );
        }
    }
    assert!(
        during.len() > 20,
        "writes kept flowing: {} in 40 s",
        during.len()
    );
    assert_eq!(proxy_writers(), vec!["db1".to_string()]);
    on("proxy1", "pkill stress-ng || true");
}

/// The proxy holding the virtual IP, waited for up to 20 s (keepalived elects one a few
/// advert intervals after it starts).
fn vip_holder() -> String {
    let t0 = std::time::Instant::now();
    loop {
        let holders: Vec<&str> = ["proxy1", "proxy2"]
            .into_iter()
            .filter(|p| on(p, "ip -o -4 addr show dev eth0").contains(&format!(" {VIP}/")))
            .collect();
        match holders[..] {
            [one] => return one.to_string(),
            _ if t0.elapsed() > Duration::from_secs(20) => {
                panic!("the virtual IP {VIP} is on {holders:?}, not on one proxy")
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Issue 14, must-show 2: the proxy holding the virtual IP dies (its container killed)
/// while the application writes through the VIP; keepalived on the other proxy takes the
/// address and writes resume within 5 s, with no acknowledged insert lost.
#[test]
fn the_active_proxy_killed_hands_the_virtual_ip_over_and_writes_resume_within_5_s() {
    let mut lab = converged();
    let active = vip_holder();
    let standby = if active == "proxy1" {
        "proxy2"
    } else {
        "proxy1"
    };
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );
    start_writer_in("lab-backup1", VIP, &app_password(), 10_000_000);
    std::thread::sleep(Duration::from_secs(2));
    // From the kill command to its return: an insert acknowledged before it returned may
    // have gone through the proxy before it died; one after it went through the other.
    let killed = now_s();
    docker(&["kill", &format!("lab-{active}")]);
    let dead = now_s();
    std::thread::sleep(Duration::from_secs(10));
    let acks = stop_writer_acks();
    let moved = on(standby, "ip -o -4 addr show dev eth0").contains(&format!(" {VIP}/"));
    let before = acks.iter().filter(|a| a.0 < killed).count();
    let resumed = acks.iter().find(|a| a.0 > dead).map(|a| a.0 - killed);
    eprintln!(
        "active proxy {active} killed: {before} acknowledged inserts before, {} after; the kill took {:.3} s; first acknowledged insert after it {resumed:?} s after the kill began",
        acks.len() - before,
        dead - killed
    );
    // Back: the killed proxy restarted (once its sshd runs) and converged; the address
    // stays where it went (nopreempt), and the re-plan is empty.
    docker(&["start", &format!("lab-{active}")]);
    let t0 = std::time::Instant::now();
    while on(&active, "pidof sshd || true").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{active}'s sshd does not start"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    converge(&mut lab);

    assert!(moved, "the virtual IP moved to {standby}");
    assert!(before > 5, "{before} inserts before the kill");
    let resumed = resumed.expect("writes resumed through the virtual IP");
    assert!(
        resumed <= 5.0,
        "writes resumed {resumed:.3} s after the active proxy died"
    );
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert_all_present("db1", &acked);
    assert_eq!(vip_holder(), standby, "the address stays on {standby}");
}

/// Each server of `proxy`'s writer and reader backends as "backend/server" → HAProxy's
/// status of it (`show stat`: UP, DOWN, MAINT, `UP 1/2`…).
fn routes(proxy: &str) -> BTreeMap<String, String> {
    on(
        proxy,
        "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock",
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f.len() > 17 && (f[0] == "writer" || f[0] == "reader") && f[1].starts_with("db"))
            .then(|| (format!("{}/{}", f[0], f[1]), f[17].to_string()))
    })
    .collect()
}

/// Routes as lab.yml declares them: db1 the only writer, db2 and db3 the readers, every
/// other server in maintenance (`disabled` in haproxy.cfg).
fn assert_declared_routes(proxy: &str, when: &str) {
    let want: BTreeMap<String, String> = [
        ("reader/db1", "MAINT"),
        ("reader/db2", "UP"),
        ("reader/db3", "UP"),
        ("writer/db1", "UP"),
        ("writer/db2", "MAINT"),
        ("writer/db3", "MAINT"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // A server put back among the readers is UP after `rise 2` checks.
    let t0 = std::time::Instant::now();
    loop {
        let have = routes(proxy);
        if have == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{proxy} {when}: routes {have:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The CI failure of stop 38: after a run of runtime commands and reloads, both proxies
/// had db2 (a healthy replica) out of the readers and enabled among the writers, and
/// neither `plan` nor `status` said so. Runtime admin states that differ from haproxy.cfg
/// are drift: the plan shows it, apply puts it back, and a reload or restart of HAProxy
/// (which loads the saved states) ends as the configuration declares.
#[test]
fn proxy_routes_that_drift_at_runtime_or_across_a_reload_are_planned_and_put_back() {
    let mut lab = converged();
    for p in ["proxy1", "proxy2"] {
        assert_declared_routes(p, "converged");
    }
    // proxy1: drifted at runtime, as a switchover's commands leave it half-done.
    // proxy2: the same, saved to the state file, then HAProxy restarted: the new process
    // loads the drift.
    let drift = "set server writer/db2 state ready; set server reader/db2 state maint; set server reader/db3 state maint";
    for p in ["proxy1", "proxy2"] {
        on(
            p,
            &format!(
                "echo '{drift}' | socat stdio unix-connect:/run/haproxy/admin.sock; \
                 echo 'show servers state' | socat stdio unix-connect:/run/haproxy/admin.sock > /var/lib/haproxy/dbfleet-server-state"
            ),
        );
    }
    on("proxy2", "service haproxy restart >/dev/null 2>&1");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        routes("proxy2")["reader/db2"],
        "MAINT",
        "{:?}",
        routes("proxy2")
    );
    let (code, plan) = plan_json(&[]);
    assert_eq!(code, 0, "{plan}");
    let changed = changed_tasks(&plan);
    for p in ["proxy1", "proxy2"] {
        assert!(
            changed
                .get(p)
                .is_some_and(|t| t.iter().any(|n| n == "haproxy routes")),
            "{p}: {changed:?}"
        );
    }
    converge(&mut lab);
    for p in ["proxy1", "proxy2"] {
        assert_declared_routes(p, "after apply");
    }
    // The reload path: haproxy.cfg edited by hand and a reader taken out; apply writes the
    // file back, reloads, and the new process routes as declared.
    on(
        "proxy1",
        "echo '# hand edit' >> /etc/haproxy/haproxy.cfg; \
         echo 'set server reader/db3 state maint' | socat stdio unix-connect:/run/haproxy/admin.sock",
    );
    converge(&mut lab);
    assert_declared_routes("proxy1", "after the reload");
    let s = status_when_healthy(None);
    assert_eq!(s.code, 0, "{}", s.all());
}
