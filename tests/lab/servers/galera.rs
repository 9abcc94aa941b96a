//! Galera (issue 27): a lab of its own (`labg`, Debian 12's MariaDB 10.11 with Debian's
//! galera-4), three members, two HAProxy proxies and a backup server from
//! `inventories/galera.yml`, one writer through the proxy throughout: provisioned from
//! bare hosts; physical and logical backups from members, verified by restoring; a member
//! killed and rejoined by IST, one lost (a bare host) and rejoined by SST (must-show 1); a
//! static setting rolled over the members (must-show 3); all three killed at once and
//! started again from the most advanced by `cluster-restart`, which refuses with a member
//! unreachable (must-show 2); two killed at once (a lost quorum), the survivor's component
//! made primary by `cluster-restart --force-quorum`; the cluster restored from its logical
//! backup through one member, the others fenced; the writer's member's CPUs saturated. No
//! acknowledged insert lost; re-plans
//! empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::support::*;
use super::{Server, fault_in, start};

const GALERA: Server = Server {
    name: "labg",
    suite: "bookworm",
    server: "mariadb",
    prefix: "172.29.80",
    version: "10.11",
};

const MEMBERS: [&str; 3] = ["db1", "db2", "db3"];

/// inventories/galera.yml written into `dir` (with its own secrets store), pointed at this
/// lab's ssh_config.
fn inventory(s: &Server, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("inventories/galera.yml")).expect("galera.yml");
    let from = "config: ../.labg/ssh_config";
    assert!(
        text.contains(from),
        "galera.yml no longer contains `{from}`"
    );
    let text = text.replace(from, &format!("config: {}/ssh_config", s.dir().display()));
    let p = dir.join("galera.yml");
    std::fs::write(&p, text).expect("write");
    p
}

/// `wsrep_local_state_comment`, `wsrep_cluster_size` and `wsrep_cluster_status`, one line.
const STATE: &str = "SELECT CONCAT_WS(' ', (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'), (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE'), (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS'))";

fn state(s: &Server, host: &str) -> String {
    s.sql(host, STATE)
}

/// Applies; the apply must say how `host` joined (`by IST` or `by SST`), and the re-plan
/// must be empty.
fn rejoin(s: &Server, inv: &Path, host: &str, how: &str) -> Out {
    let a = dbfleet_with(inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let said = format!("{host}: joined Galera cluster galera by {how}");
    assert!(a.stdout.contains(&said), "expected `{said}`:\n{}", a.all());
    let p = dbfleet_with(inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after {host} rejoined:\n{}", p.all());
    for h in MEMBERS {
        s.eventually(
            h,
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE'",
            "3",
        );
    }
    a
}

#[test]
fn galera_on_mariadb_10_11_provisions_rejoins_by_ist_and_sst_rolls_and_restarts_the_whole_cluster_losing_no_write()
 {
    let mut turn = other_lab(GALERA.name);
    let s = &GALERA;
    s.fresh();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = inventory(s, dir.path());

    // From bare hosts: db1 founds the cluster, db2 and db3 join it; the re-plan is empty.
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout.contains("db1: bootstrapped Galera cluster galera"),
        "{}",
        a.all()
    );
    for h in ["db2", "db3"] {
        let said = format!("{h}: joined Galera cluster galera by SST");
        assert!(a.stdout.contains(&said), "expected `{said}`:\n{}", a.all());
    }
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after apply:\n{}", p.all());
    for h in MEMBERS {
        assert_eq!(state(s, h), "Synced 3 Primary", "{h}");
        // Write sets between members over TLS with the fleet's CA.
        let opts = s.sql(h, "SELECT @@wsrep_provider_options");
        assert!(
            opts.contains("socket.ssl = YES")
                && opts.contains("socket.ssl_ca = /etc/mysql/dbfleet-tls/ca.pem"),
            "{h}: {opts}"
        );
        // Every member takes writes: none is read-only.
        assert_eq!(s.sql(h, "SELECT @@read_only"), "0", "{h}");
    }
    // The accounts were written once, on db1, and reached every member.
    for h in ["db2", "db3"] {
        assert_eq!(
            s.sql(h, "SELECT COUNT(*) FROM mysql.user WHERE User = 'app'"),
            "1",
            "{h}"
        );
    }
    let st = dbfleet_with(&inv, &["status"], &[]);
    assert_eq!(st.code, 0, "{}", st.all());
    assert!(
        st.stdout.contains("Synced  size 3  primary component"),
        "{}",
        st.all()
    );

    // A writer through the proxy (the application host has a client from the apt cache).
    s.on(
        "backup1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-client >/dev/null",
    );
    s.start_writer(dir.path(), "db1", 0);

    // Backups from members under the writer: a physical full and an incremental from db3
    // (mariadb-backup --galera-info records the cluster position it holds), a logical dump
    // from db2; `backup verify` restores each into a scratch server on backup1 and reads it.
    for (job, mode) in [
        ("app-physical", "full"),
        ("app-physical", "incremental"),
        ("app-logical", "run"),
    ] {
        let b = dbfleet_with(&inv, &["backup", "run", job, "--mode", mode], &[]);
        assert_eq!(b.code, 0, "{job} {mode}: {}", b.all());
    }
    let galera_info = s.on(
        "db3",
        "grep -c 'Writing Galera info succeeded' /var/log/dbfleet/backup-app-physical.log",
    );
    assert_eq!(
        galera_info.trim(),
        "2",
        "both physical backups hold the cluster position"
    );
    let v = dbfleet_with(&inv, &["backup", "verify"], &[]);
    assert_eq!(v.code, 0, "{}", v.all());
    for job in ["app-physical ok: full", "app-logical ok:"] {
        assert!(v.stdout.contains(job), "expected `{job}`:\n{}", v.all());
    }
    // The rows of app.seq in the dump, as verify read them back: the restore below must
    // bring back exactly these.
    let dumped: u64 = v
        .stdout
        .lines()
        .find(|l| l.contains("app-logical ok: 1 tables, "))
        .and_then(|l| l.split(" tables, ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in verify's line:\n{}", v.all()));

    // db3 killed (a power loss) while the writer writes, back after a few seconds: its
    // data folder is kept, so it rejoins by IST (a file of its own in the data folder
    // survives: an SST would have replaced the folder).
    s.on("db3", "touch /var/lib/mysql/dbfleet-ist-marker");
    s.docker("kill", "db3");
    // The others notice within Galera's suspect timeout (evs.suspect_timeout, 5 s) and
    // go on as a primary component of two.
    s.eventually("db1", STATE, "Synced 2 Primary");
    start(s, &["db3"]);
    rejoin(s, &inv, "db3", "IST");
    s.on("db3", "test -f /var/lib/mysql/dbfleet-ist-marker");

    // db2 lost (a bare host): it rejoins by SST.
    let reset = s.lab_sh(&["reset", "db2"]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    rejoin(s, &inv, "db2", "SST");

    // A setting that needs a restart, changed under the same writer (must-show 3): the
    // members restart one at a time, and a sampler on the application host counts every
    // 100 ms the members synced in the primary component: never fewer than two of three.
    let rolled = super::restart_setting_variant(&inv, dir.path());
    let before = s.pids(&MEMBERS);
    let roll_t0 = now_s();
    start_sampler(s);
    let a = dbfleet_with(&rolled, &["apply", "--auto-approve"], &[]);
    let samples = stop_sampler(s);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout
            .contains("rolling restart of Galera cluster galera: db3, then db2, then db1"),
        "{}",
        a.all()
    );
    s.assert_restarted_on_the_new_setting(&MEMBERS, &before);
    // The quorum holds throughout: never fewer than two members in the primary component,
    // serving. Synced members dip to one while a restarted member receives its IST: its
    // donor is Donor/Desynced for those seconds (Galera's, seen in the lab), and the
    // proxies then route to the third only; the figures are printed.
    let fewest = samples.iter().map(|s| s.1).min().expect("samples");
    let fewest_synced = samples.iter().map(|s| s.2).min().expect("samples");
    let below_two = samples.iter().filter(|s| s.2 < 2).count();
    let seconds = samples.last().map(|l| l.0).unwrap_or(0.0) - samples[0].0;
    assert!(
        samples.len() as f64 > seconds * 5.0,
        "{} samples in {seconds:.1} s",
        samples.len()
    );
    assert!(
        fewest >= 2,
        "only {fewest} member(s) in the primary component at some point of the rolling restart"
    );
    eprintln!(
        "labg rolling restart: {} samples over {seconds:.1} s: never fewer than {fewest} members in the primary component; synced: at least {fewest_synced}, fewer than two in {below_two} samples ({:.1} s)",
        samples.len(),
        below_two as f64 * 0.1
    );
    let p = dbfleet_with(&rolled, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the roll:\n{}", p.all());

    // Fault drills under the same writer (must-show 5): a member cut off from the others,
    // then the writer's member cut off from both others while the proxies still reach it,
    // both ways and one way (it still hears them), then one frozen.
    // The side without a majority leaves the primary component and refuses writes (an
    // insert on it fails), the majority goes on and the proxies' writer with it, and the
    // member comes back by itself once healed or thawed.
    let minority_refuses = |h: &str, n: u64| {
        let r = try_exec_in(
            &s.container(h),
            &format!("mariadb -N -e 'INSERT INTO app.seq (n) VALUES ({n})'"),
        );
        assert!(
            r.as_ref()
                .is_err_and(|e| e.contains("WSREP has not yet prepared node")),
            "{h}, cut off from the majority, took or answered an insert: {r:?}"
        );
    };
    let all_back = || {
        let deadline = Instant::now() + Duration::from_secs(90);
        for h in MEMBERS {
            while try_exec_in(&s.container(h), &format!("mariadb -N -B -e \"{STATE}\""))
                .map(|o| o != "Synced 3 Primary")
                .unwrap_or(true)
            {
                assert!(
                    Instant::now() < deadline,
                    "{h} is not back: {}",
                    state(s, h)
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    for (cut, way, others, n) in [
        ("db3", "--both", ["db1", "db2"], 9_000_000_001u64),
        ("db1", "--both", ["db2", "db3"], 9_000_000_002u64),
        // One way: db1 (the writer's member) still hears the others, they do not hear it.
        ("db1", "--out", ["db2", "db3"], 9_000_000_003u64),
    ] {
        let mut args = vec!["partition", cut];
        if way != "--both" {
            args.push(way);
        }
        args.extend(others);
        fault_in(s, &args);
        s.eventually(others[0], STATE, "Synced 2 Primary");
        s.eventually(
            cut,
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS'",
            "non-Primary",
        );
        minority_refuses(cut, n);
        // The writer goes on through the proxy on the majority side.
        let acked_before = s.on("backup1", "wc -l < /root/writer.log");
        std::thread::sleep(Duration::from_secs(3));
        assert_ne!(
            s.on("backup1", "wc -l < /root/writer.log"),
            acked_before,
            "no insert acknowledged with {cut} cut off"
        );
        fault_in(s, &["heal", cut]);
        all_back();
    }
    fault_in(s, &["pause", "db2"]);
    s.eventually("db1", STATE, "Synced 2 Primary");
    std::thread::sleep(Duration::from_secs(10));
    fault_in(s, &["unpause", "db2"]);
    all_back();
    // The writer's member, db1, with its CPUs saturated (stress-ng, 8 workers on the
    // machine's 2 cores, 20 s): writes go on, and the cluster is whole after it.
    let acked_before: u64 = s
        .on("backup1", "wc -l < /root/writer.log")
        .trim()
        .parse()
        .expect("count");
    let alone = turn.alone();
    fault_in(s, &["stress", "db1", "20", "8"]);
    std::thread::sleep(Duration::from_secs(20));
    let acked_after: u64 = s
        .on("backup1", "wc -l < /root/writer.log")
        .trim()
        .parse()
        .expect("count");
    s.on("db1", "pkill stress-ng || true");
    drop(alone);
    eprintln!(
        "labg: db1's CPUs saturated 20 s: {} inserts acknowledged meanwhile",
        acked_after - acked_before
    );
    assert!(
        acked_after > acked_before + 20,
        "writes stalled with db1's CPUs saturated: {} in 20 s",
        acked_after - acked_before
    );
    all_back();

    // All three killed at once under the writer (a power loss), then started: no member
    // runs, each holds the cluster's data, and only the most advanced may start it again
    // (must-show 2). Their positions read by hand first, as the MariaDB KB says to.
    docker(&[
        "kill",
        &s.container("db1"),
        &s.container("db2"),
        &s.container("db3"),
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let acks = stop_writer_acks_in(&s.container("backup1"));
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(acked.len() > 50, "{} acknowledged inserts", acked.len());
    // The writes went to one member at a time: db1, the first, until the roll restarted
    // it; then the next synced member while it was out, and db1 again.
    let before_roll: std::collections::BTreeSet<u32> =
        acks.iter().filter(|a| a.0 < roll_t0).map(|a| a.2).collect();
    assert_eq!(
        before_roll,
        [1].into(),
        "the members that acknowledged inserts before the roll"
    );
    let moves = acks.windows(2).filter(|w| w[0].2 != w[1].2).count();
    assert!(
        moves <= 14,
        "the writer moved {moves} times: writes went to several members at once"
    );
    start(s, &MEMBERS);
    let by_hand: Vec<i64> = MEMBERS
        .iter()
        .map(|h| {
            let pos = s.on(
                h,
                "log=$(mktemp); chown mysql $log; /usr/sbin/mariadbd --user=mysql --wsrep-recover --log-error=$log >/dev/null 2>&1; sed -n 's/.*Recovered position: *//p' $log | tail -n 1",
            );
            pos.rsplit_once(':')
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or_else(|| panic!("{h}: no recovered position in {pos:?}"))
        })
        .collect();
    let top = *by_hand.iter().max().expect("positions");
    let expected = MEMBERS[by_hand.iter().position(|n| *n == top).expect("top")];
    eprintln!("labg: positions after the power loss {by_hand:?}: {expected} starts the cluster");
    // A plain apply refuses: every member holds data and none runs.
    let a = dbfleet_with(&rolled, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 1, "{}", a.all());
    assert!(
        a.flat().contains("only the most advanced member"),
        "{}",
        a.all()
    );
    let r = dbfleet_with(&rolled, &["cluster-restart", "--auto-approve"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let said = format!("bootstrap the cluster from {expected} (seqno {top}, the most advanced)");
    assert!(r.flat().contains(&said), "expected `{said}`:\n{}", r.all());
    assert!(
        r.stdout.contains(&format!(
            "{expected}: bootstrapped Galera cluster galera again"
        )),
        "{}",
        r.all()
    );
    for h in MEMBERS {
        s.eventually(h, STATE, "Synced 3 Primary");
        s.assert_all_present(h, &acked);
    }
    // The restarted containers lost what an init system would start at boot (cron, the
    // firewall's ruleset): apply brings those back and finds the members as they are.
    let a = dbfleet_with(&rolled, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(!a.stdout.contains("galera member"), "{}", a.all());
    let p = dbfleet_with(&rolled, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the restart:\n{}", p.all());
    let st = dbfleet_with(&rolled, &["status"], &[]);
    assert_eq!(st.code, 0, "{}", st.all());
    eprintln!(
        "labg: {} acknowledged inserts, none lost; the writer moved {moves} times; longest gap between two {:.3} s ({})",
        acked.len(),
        longest_gap(&acks),
        longest_gap_ends(&acks)
    );

    // A lost quorum under the writer: db2 and db3 killed at once, db1 alone is a
    // non-primary component and takes no write. A plain `cluster-restart` refuses (two
    // members cannot be reached); with --force-quorum (the operator's word that they are
    // down) db1's component becomes the primary component and the writer goes on; db2 and
    // db3 come back by apply. No acknowledged insert lost.
    s.start_writer(dir.path(), "db1", 50_000_000);
    docker(&["kill", &s.container("db2"), &s.container("db3")]);
    s.eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS'",
        "non-Primary",
    );
    let r = dbfleet_with(&rolled, &["cluster-restart", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.flat().contains("cannot be reached"), "{}", r.all());
    let r = dbfleet_with(
        &rolled,
        &["cluster-restart", "--force-quorum", "--auto-approve"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("db1: re-formed the primary component of cluster galera from this member"),
        "{}",
        r.all()
    );
    s.eventually("db1", STATE, "Synced 1 Primary");
    let acked_before = s.on("backup1", "wc -l < /root/writer.log");
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        s.on("backup1", "wc -l < /root/writer.log"),
        acked_before,
        "no insert acknowledged after the quorum was re-formed"
    );
    start(s, &["db2", "db3"]);
    let a = dbfleet_with(&rolled, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    for h in MEMBERS {
        s.eventually(h, STATE, "Synced 3 Primary");
    }
    let acks = stop_writer_acks_in(&s.container("backup1"));
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    for h in MEMBERS {
        s.assert_all_present(h, &acked);
    }
    let p = dbfleet_with(&rolled, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the lost quorum:\n{}", p.all());
    eprintln!(
        "labg: lost quorum re-formed on db1: {} acknowledged inserts, none lost; longest gap between two {:.3} s ({})",
        acked.len(),
        longest_gap(&acks),
        longest_gap_ends(&acks)
    );

    // Restored from the dump taken under the writer at the start: db2 and db3 fenced
    // read-only first, the dump reloaded on db1 and replicated to them by Galera, then
    // all three writable again. Every member holds the dump's rows and the same checksum.
    // With db3 frozen it could not be fenced: refused, nothing changed.
    s.docker("pause", "db3");
    let r = dbfleet_with(
        &rolled,
        &["restore", "db1", "--auto-approve", "--connect-timeout", "3"],
        &[],
    );
    s.docker("unpause", "db3");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.flat()
            .contains("db3, a member of Galera cluster galera, cannot be reached"),
        "{}",
        r.all()
    );
    for h in ["db1", "db2"] {
        assert_eq!(s.sql(h, "SELECT @@read_only"), "0", "{h} was changed");
    }
    for h in MEMBERS {
        s.eventually(h, STATE, "Synced 3 Primary");
    }
    let r = dbfleet_with(&rolled, &["restore", "db1", "--auto-approve"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.flat().contains("read_only ON on db2, db3"), "{}", r.all());
    let sum = s.sql("db1", "CHECKSUM TABLE app.seq");
    for h in MEMBERS {
        s.eventually(h, "SELECT COUNT(*) FROM app.seq", &dumped.to_string());
        assert_eq!(s.sql(h, "CHECKSUM TABLE app.seq"), sum, "{h}");
        assert_eq!(s.sql(h, "SELECT @@read_only"), "0", "{h}");
    }
    let p = dbfleet_with(&rolled, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the restore:\n{}", p.all());
    eprintln!("labg: restored from the logical backup: {dumped} rows on every member");

    // Stopped again; db3's data made the most advanced by hand (its grastate.dat) and db3
    // unreachable: the restart refuses and starts nothing. Reachable, db3 is chosen.
    docker(&[
        "kill",
        &s.container("db1"),
        &s.container("db2"),
        &s.container("db3"),
    ]);
    start(s, &MEMBERS);
    s.on(
        "db3",
        "sed -i 's/^seqno: .*/seqno: 99999999/' /var/lib/mysql/grastate.dat",
    );
    s.docker("pause", "db3");
    let r = dbfleet_with(&rolled, &["cluster-restart", "--auto-approve"], &[]);
    s.docker("unpause", "db3");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.flat().contains("db3 of cluster galera cannot be reached"),
        "{}",
        r.all()
    );
    for h in ["db1", "db2"] {
        assert_eq!(s.on(h, "pidof mariadbd || true"), "", "{h} was started");
    }
    let d = dbfleet_with(&rolled, &["cluster-restart", "--dry-run"], &[]);
    assert_eq!(d.code, 0, "{}", d.all());
    assert!(
        d.flat()
            .contains("bootstrap the cluster from db3 (seqno 99999999, the most advanced)"),
        "{}",
        d.all()
    );
    let down = s.lab_sh(&["down"]);
    assert!(down.status.success());
}

/// The sampler on the application host (backup1): every 100 ms, over one connection per
/// member kept open (PyMySQL, reconnecting with a 0.3 s timeout when a member restarts),
/// how many members are in the primary component and ready (they serve queries: Galera's
/// quorum), and how many of them are synced; prints "EPOCH SERVING SYNCED" lines.
const SAMPLER: &str = r#"import os, sys, time
import pymysql
members = sys.argv[1:]
conns = {}
q = ("SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE'), "
     "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS'), "
     "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_READY')")
pw = [l.split("=", 1)[1].strip() for l in open("/root/app.cnf") if l.startswith("password=")][0]
while os.path.exists("/root/sampler.run"):
    t = time.time()
    serving = synced = 0
    for m in members:
        try:
            if m not in conns:
                conns[m] = pymysql.connect(host=m, user="app", password=pw, connect_timeout=0.3, read_timeout=0.3, autocommit=True)
            with conns[m].cursor() as c:
                c.execute(q)
                state, status, ready = c.fetchone()
                if status == "Primary" and ready == "ON":
                    serving += 1
                    if state == "4":
                        synced += 1
        except Exception:
            conns.pop(m, None)
    print("%.3f %d %d" % (t, serving, synced), flush=True)
    time.sleep(max(0.0, 0.1 - (time.time() - t)))
"#;

fn start_sampler(s: &Server) {
    let app = s.container("backup1");
    s.on(
        "backup1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pymysql >/dev/null",
    );
    exec_in_with_input(
        &app,
        "cat > /root/sampler.py; touch /root/sampler.run",
        SAMPLER,
    );
    let members: Vec<String> = (11..=13).map(|o| format!("{}.{o}", s.prefix)).collect();
    start_in_background(
        &app,
        &format!(
            "python3 /root/sampler.py {} 2>/root/sampler.err",
            members.join(" ")
        ),
        "/root/sampler.log",
        5,
        "the sampler",
    );
}

/// Stops the sampler; its samples, (epoch seconds, members serving, members synced).
fn stop_sampler(s: &Server) -> Vec<(f64, u32, u32)> {
    stop_in_background(
        &s.container("backup1"),
        "/root/sampler.run",
        "/root/sampler.log",
    )
    .lines()
    .filter_map(|l| {
        let mut w = l.split(' ');
        Some((
            w.next()?.parse().ok()?,
            w.next()?.parse().ok()?,
            w.next()?.parse().ok()?,
        ))
    })
    .collect()
}
