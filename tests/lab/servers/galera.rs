//! Galera (issue 27): a lab of its own (`labg`, Debian 12's MariaDB 10.11 with Debian's
//! galera-4), three members and two HAProxy proxies from `inventories/galera.yml`, one
//! writer through the proxy throughout: provisioned from bare hosts; a member killed and
//! rejoined by IST, one lost (a bare host) and rejoined by SST (must-show 1); a static
//! setting rolled over the members (must-show 3); all three killed at once and started
//! again from the most advanced by `cluster-restart`, which refuses with a member
//! unreachable (must-show 2). No acknowledged insert lost; re-plans empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::support::*;
use super::Server;

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
    let _turn = lab();
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

/// `lab/fault.sh` on this lab.
fn fault_in(s: &Server, args: &[&str]) {
    let o = std::process::Command::new("bash")
        .arg(repo().join("lab/fault.sh"))
        .args(args)
        .env("LAB_NAME", s.name)
        .env("LAB_SUBNET", format!("{}.0/24", s.prefix))
        .output()
        .expect("lab/fault.sh");
    assert!(
        o.status.success(),
        "lab/fault.sh {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Starts the killed containers of `hosts` (sshd only, as after a power loss) and waits
/// for their sshd.
fn start(s: &Server, hosts: &[&str]) {
    for h in hosts {
        s.docker("start", h);
    }
    for h in hosts {
        let t0 = Instant::now();
        while s.on(h, "pidof sshd || true").is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{h}'s sshd does not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
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
