//! Group Replication (issue 27, must-show 4): a lab of its own (`labgr`, Debian sid's MySQL
//! 9.7 and its group_replication plugin), three members in single-primary mode and two
//! HAProxy proxies from `inventories/group.yml`, one writer through the proxy throughout:
//! provisioned from bare hosts; a secondary killed and rejoined, one lost (a bare host) and
//! rejoined; the primary killed, the group electing another and the proxies following it;
//! the primary cut off from the others (must-show 5's partition: the side without a
//! majority takes no write) and a secondary frozen; two members killed at once (a lost
//! quorum), the survivor's membership forced by `cluster-restart --force-quorum`; the
//! primary's CPUs saturated under the writer; db1
//! frozen until expelled (behind),
//! then the whole group killed: `apply` refuses to found it again, `cluster-restart`
//! founds it from a member holding every other's transactions, not db1; with a member
//! unreachable it refuses, starting nothing. No acknowledged insert lost, one writer,
//! re-plans empty.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::support::*;
use super::{Server, fault_in, start};

const GROUP: Server = Server {
    name: "labgr",
    suite: "sid",
    server: "mysql",
    prefix: "172.29.81",
    version: "9.7",
};

const MEMBERS: [&str; 3] = ["db1", "db2", "db3"];

/// inventories/group.yml written into `dir` (with its own secrets store), pointed at this
/// lab's ssh_config.
fn inventory(s: &Server, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("inventories/group.yml")).expect("group.yml");
    let from = "config: ../.labgr/ssh_config";
    assert!(text.contains(from), "group.yml no longer contains `{from}`");
    let text = text.replace(from, &format!("config: {}/ssh_config", s.dir().display()));
    let p = dir.join("group.yml");
    std::fs::write(&p, text).expect("write");
    p
}

/// The group as `host` sees it: "ADDRESS STATE ROLE" per member, by address.
const MEMBERSHIP: &str = "SELECT GROUP_CONCAT(CONCAT(MEMBER_HOST, ' ', MEMBER_STATE, ' ', MEMBER_ROLE) ORDER BY MEMBER_HOST SEPARATOR ', ') FROM performance_schema.replication_group_members";

/// The lab host at `address` (db1 is .11).
fn host_of(address: &str) -> String {
    let octet: u32 = address
        .rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {address}"));
    format!("db{}", octet - 10)
}

/// Waits (at most `secs`) until the members of `among` that answer agree on one primary
/// among them, online with every member of `among` online; returns its name.
fn wait_primary(s: &Server, among: &[&str], secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let views: Vec<String> = among
            .iter()
            .map(|h| {
                try_exec_in(&s.container(h), &format!("mysql -N -B -e \"{MEMBERSHIP}\""))
                    .unwrap_or_default()
            })
            .collect();
        let first = &views[0];
        let all_online = among.iter().all(|h| {
            let a = format!("{}.1{} ONLINE", s.prefix, &h[2..]);
            first.contains(&a)
        });
        if all_online
            && views.iter().all(|v| v == first)
            && first.split(", ").count() == among.len()
            && let Some(p) = first
                .split(", ")
                .find(|m| m.ends_with(" ONLINE PRIMARY"))
                .and_then(|m| m.split(' ').next())
        {
            return host_of(p);
        }
        assert!(
            Instant::now() < deadline,
            "{} members {among:?} do not agree on a primary within {secs} s: {views:?}",
            s.name
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Applies; the apply must say `host` joined the group, and the re-plan must be empty; then
/// every member is online again. Returns how it joined (the apply's words).
fn rejoin(s: &Server, inv: &Path, host: &str) -> String {
    let a = dbfleet_with(inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let said = format!("{host}: joined replication group group by ");
    let how = a
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&said))
        .unwrap_or_else(|| panic!("expected `{said}…`:\n{}", a.all()))
        .to_string();
    let p = dbfleet_with(inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after {host} rejoined:\n{}", p.all());
    wait_primary(s, &MEMBERS, 60);
    how
}

/// An insert on `host` by hand, bounded by 10 s: it must not be acknowledged.
fn not_acknowledged(s: &Server, host: &str, n: u64) {
    let r = try_exec_in(
        &s.container(host),
        &format!("timeout 10 mysql -N -e 'INSERT INTO app.seq (n) VALUES ({n})'"),
    );
    assert!(
        r.is_err(),
        "{host}, cut off from the majority, acknowledged an insert: {r:?}"
    );
}

#[test]
fn group_replication_on_mysql_provisions_rejoins_follows_its_elected_primary_and_loses_no_write() {
    let mut turn = other_lab(GROUP.name);
    let s = &GROUP;
    s.fresh();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = inventory(s, dir.path());

    // From bare hosts: db1 founds the group, db2 and db3 join it; the re-plan is empty.
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout
            .contains("db1: bootstrapped replication group group"),
        "{}",
        a.all()
    );
    for h in ["db2", "db3"] {
        let said = format!("{h}: joined replication group group by");
        assert!(a.stdout.contains(&said), "expected `{said}`:\n{}", a.all());
    }
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after apply:\n{}", p.all());
    assert_eq!(wait_primary(s, &MEMBERS, 30), "db1");
    for h in MEMBERS {
        // The group's messages and distributed recovery over TLS with the fleet's CA.
        assert_eq!(
            s.sql(h, "SELECT @@group_replication_ssl_mode"),
            "VERIFY_CA",
            "{h}"
        );
        assert_eq!(
            s.sql(
                h,
                "SELECT CONCAT_WS(' ', @@group_replication_recovery_use_ssl, @@group_replication_recovery_ssl_ca, @@group_replication_recovery_ssl_verify_server_cert)"
            ),
            "1 /etc/mysql/dbfleet-tls/ca.pem 1",
            "{h}"
        );
        // The members that joined connected so (db1 founded the group: it never recovered).
        if h != "db1" {
            assert_eq!(
                s.sql(
                    h,
                    "SELECT CONCAT(SSL_ALLOWED, ' ', SSL_CA_FILE, ' ', SSL_VERIFY_SERVER_CERTIFICATE) FROM performance_schema.replication_connection_configuration WHERE CHANNEL_NAME = 'group_replication_recovery'"
                ),
                "YES /etc/mysql/dbfleet-tls/ca.pem YES",
                "{h}"
            );
        }
        // Each member joins again by itself when its server starts.
        assert_eq!(
            s.sql(h, "SELECT @@group_replication_start_on_boot"),
            "1",
            "{h}"
        );
        // One writer: the elected primary only.
        let want = if h == "db1" { "0" } else { "1" };
        assert_eq!(s.sql(h, "SELECT @@super_read_only"), want, "{h}");
    }
    // The accounts were written once, on the primary, and reached every member.
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
        st.stdout.contains("ONLINE  primary  3 of 3 reached"),
        "{}",
        st.all()
    );

    // A writer through the proxy (the application host has a client from the apt cache).
    s.on(
        "backup1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mysql-client >/dev/null",
    );
    s.start_writer(dir.path(), "db1", 0);

    // db3 (a secondary) killed while the writer writes, back after a few seconds: its data
    // folder is kept (a file of its own there survives), it joins again and copies what
    // it missed.
    s.on("db3", "touch /var/lib/mysql/dbfleet-rejoin-marker");
    s.docker("kill", "db3");
    wait_primary(s, &["db1", "db2"], 60);
    start(s, &["db3"]);
    let how = rejoin(s, &inv, "db3");
    s.on("db3", "test -f /var/lib/mysql/dbfleet-rejoin-marker");
    eprintln!("labgr: db3 killed and back: joined by {how}");

    // db2 lost (a bare host): it joins with nothing and copies the group's data.
    let reset = s.lab_sh(&["reset", "db2"]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let how = rejoin(s, &inv, "db2");
    eprintln!("labgr: db2 lost and provisioned bare: joined by {how}");

    // The primary killed: the group elects another (after its expel timeout), the proxies
    // follow, and the writer's inserts are acknowledged by the new primary.
    let killed_at = now_s();
    s.docker("kill", "db1");
    let elected = wait_primary(s, &["db2", "db3"], 90);
    let elected_at = now_s();
    let sid = &elected[2..];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s
        .on("backup1", "cat /root/writer.log")
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            Some((w.next()?.parse::<f64>().ok()?, w.nth(1)?.to_string()))
        })
        .any(|(t, by)| t > killed_at && by == sid)
    {
        assert!(
            Instant::now() < deadline,
            "no insert acknowledged by {elected}, the elected primary, within 30 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "labgr: db1 (primary) killed: {elected} elected after {:.1} s, first insert acknowledged by it {:.1} s after the kill",
        elected_at - killed_at,
        now_s() - killed_at
    );
    start(s, &["db1"]);
    let how = rejoin(s, &inv, "db1");
    assert_eq!(
        wait_primary(s, &MEMBERS, 30),
        elected,
        "db1 came back as a secondary"
    );
    eprintln!("labgr: db1 back as a secondary: joined by {how}");

    // The primary cut off from both others (both ways), the proxies still reaching it: its
    // side holds no majority and acknowledges nothing (an insert by hand on it waits and is
    // given up), the other two elect a primary and the writer goes on there. Healed, the
    // old primary comes back as a secondary (apply), its unacknowledged insert nowhere.
    let cut = elected.clone();
    let others: Vec<&str> = MEMBERS.iter().copied().filter(|h| *h != cut).collect();
    let mut args = vec!["partition", cut.as_str()];
    args.extend(&others);
    fault_in(s, &args);
    let majority = wait_primary(s, &others, 90);
    not_acknowledged(s, &cut, 9_000_000_001);
    let acked_before = s.on("backup1", "wc -l < /root/writer.log");
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        s.on("backup1", "wc -l < /root/writer.log"),
        acked_before,
        "no insert acknowledged with {cut} cut off"
    );
    fault_in(s, &["heal", &cut]);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert_eq!(wait_primary(s, &MEMBERS, 90), majority);
    eprintln!("labgr: {cut} (primary) cut off: {majority} elected by the majority");

    // A secondary frozen 10 s: the primary and the other secondary are a majority and go
    // on; thawed, it is online again (by itself, or by apply).
    let frozen = others
        .iter()
        .copied()
        .find(|h| *h != majority)
        .expect("a secondary");
    fault_in(s, &["pause", frozen]);
    let acked_before = s.on("backup1", "wc -l < /root/writer.log");
    std::thread::sleep(Duration::from_secs(10));
    assert_ne!(
        s.on("backup1", "wc -l < /root/writer.log"),
        acked_before,
        "no insert acknowledged with {frozen} frozen"
    );
    fault_in(s, &["unpause", frozen]);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let primary = wait_primary(s, &MEMBERS, 90);
    // The primary's CPUs saturated (stress-ng, 8 workers on the machine's 2 cores, 20 s):
    // writes go on; a primary is online after (the same, unless the group expelled it).
    let count = || -> u64 {
        s.on("backup1", "wc -l < /root/writer.log")
            .trim()
            .parse()
            .expect("count")
    };
    let acked_before = count();
    // The machine alone: the saturation is this lab's, not a neighbour's.
    let alone = turn.alone();
    fault_in(s, &["stress", &primary, "20", "8"]);
    std::thread::sleep(Duration::from_secs(20));
    let acked_after = count();
    s.on(&primary, "pkill stress-ng || true");
    drop(alone);
    eprintln!(
        "labgr: {primary}'s (primary) CPUs saturated 20 s: {} inserts acknowledged meanwhile",
        acked_after - acked_before
    );
    assert!(
        acked_after > acked_before + 20,
        "writes stalled with {primary}'s CPUs saturated: {} in 20 s",
        acked_after - acked_before
    );
    let after = wait_primary(s, &MEMBERS, 90);
    eprintln!("labgr: the primary after the saturation: {after}");
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the drills:\n{}", p.all());
    let st = dbfleet_with(&inv, &["status"], &[]);
    assert_eq!(st.code, 0, "{}", st.all());

    // A lost quorum under the writer: db2 and db3 killed at once, db1 alone cannot reach
    // a majority and takes no write; `cluster-restart --force-quorum` (the operator's word
    // that they are down) forces a membership of db1 alone, and the writer goes on there;
    // db2 and db3 join again by apply.
    docker(&["kill", &s.container("db2"), &s.container("db3")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.sql("db1", MEMBERSHIP).contains("UNREACHABLE") {
        assert!(
            Instant::now() < deadline,
            "db1 does not see the others gone"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let r = dbfleet_with(
        &inv,
        &["cluster-restart", "--force-quorum", "--auto-approve"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("db1: re-formed replication group group from its members still running"),
        "{}",
        r.all()
    );
    assert_eq!(wait_primary(s, &["db1"], 30), "db1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let acked_before = s.on("backup1", "wc -l < /root/writer.log");
    while s.on("backup1", "wc -l < /root/writer.log") == acked_before {
        assert!(
            Instant::now() < deadline,
            "no insert acknowledged after the quorum was re-formed"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    start(s, &["db2", "db3"]);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert_eq!(wait_primary(s, &MEMBERS, 90), "db1");
    eprintln!("labgr: lost quorum re-formed on db1, db2 and db3 joined again");

    // db1 frozen until the group expels it, the writer going on without it: db1 falls
    // behind. Then all three killed at once under the writer (a power loss) and the hosts
    // back: no member runs, each belonged to the group, and `apply` refuses to found it
    // again; `cluster-restart` founds it from a member holding every other member's
    // transactions (not db1, the first declared but behind), and the others join.
    fault_in(s, &["pause", "db1"]);
    wait_primary(s, &others_of("db1"), 90);
    let acked_before = s.on("backup1", "wc -l < /root/writer.log");
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        s.on("backup1", "wc -l < /root/writer.log"),
        acked_before,
        "no insert acknowledged with db1 frozen"
    );
    fault_in(s, &["unpause", "db1"]);
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
    start(s, &MEMBERS);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 1, "{}", a.all());
    assert!(a.flat().contains("whole-group stop"), "{}", a.all());
    for h in MEMBERS {
        assert_eq!(s.on(h, "pidof mysqld || true"), "", "{h} was started");
    }
    let r = dbfleet_with(&inv, &["cluster-restart", "--auto-approve"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let chosen = ["db2", "db3"]
        .into_iter()
        .find(|h| {
            r.flat()
                .contains(&format!("bootstrap the group from {h} ("))
        })
        .unwrap_or_else(|| panic!("the group was not founded from db2 or db3:\n{}", r.all()));
    assert!(
        r.stdout.contains(&format!(
            "{chosen}: bootstrapped replication group group again"
        )),
        "{}",
        r.all()
    );
    wait_primary(s, &MEMBERS, 90);
    eprintln!("labgr: whole-group restart founded the group from {chosen} (db1 was behind)");

    // Every acknowledged insert on every member; the unacknowledged one nowhere; the
    // writes went to one primary at a time.
    for h in MEMBERS {
        s.assert_all_present(h, &acked);
        assert_eq!(
            s.sql(h, "SELECT COUNT(*) FROM app.seq WHERE n = 9000000001"),
            "0",
            "{h} holds the insert the cut-off primary never acknowledged"
        );
    }
    let servers: BTreeSet<u32> = acks.iter().map(|a| a.2).collect();
    let moves = acks.windows(2).filter(|w| w[0].2 != w[1].2).count();
    assert!(
        moves <= 6,
        "the writer moved {moves} times over three elections: writes went to several members at once"
    );
    eprintln!(
        "labgr: {} acknowledged inserts, none lost, by servers {servers:?}; the writer moved {moves} times; longest gap between two {:.3} s ({})",
        acked.len(),
        longest_gap(&acks),
        longest_gap_ends(&acks)
    );
    // The restarted containers lost what an init system starts at boot (cron, the
    // firewall's ruleset): apply brings those back and finds the members as they are.
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        !a.stdout.contains("joined replication group"),
        "{}",
        a.all()
    );
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "re-plan after the restart:\n{}", p.all());

    // Killed again, db3 unreachable: the restart refuses before it starts any server.
    docker(&[
        "kill",
        &s.container("db1"),
        &s.container("db2"),
        &s.container("db3"),
    ]);
    start(s, &MEMBERS);
    s.docker("pause", "db3");
    let r = dbfleet_with(&inv, &["cluster-restart", "--auto-approve"], &[]);
    s.docker("unpause", "db3");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.flat()
            .contains("db3 of replication group group cannot be reached"),
        "{}",
        r.all()
    );
    for h in ["db1", "db2"] {
        assert_eq!(s.on(h, "pidof mysqld || true"), "", "{h} was started");
    }
    let down = s.lab_sh(&["down"]);
    assert!(down.status.success());
}

/// The members but `host`.
fn others_of(host: &str) -> Vec<&'static str> {
    MEMBERS.iter().copied().filter(|h| *h != host).collect()
}
