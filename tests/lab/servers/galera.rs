//! Galera (issue 27, must-show 1): a lab of its own (`labg`, Debian 12's MariaDB 10.11 with
//! Debian's galera-4), three members and two HAProxy proxies from `inventories/galera.yml`,
//! provisioned from bare hosts; a writer through the proxy; a member killed and rejoined by
//! IST, one lost (a bare host) and rejoined by SST; no acknowledged insert lost; re-plans
//! empty.

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
fn galera_on_mariadb_10_11_provisions_from_bare_hosts_rejoins_by_ist_and_sst_and_loses_no_write() {
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
    s.docker("start", "db3");
    let t0 = Instant::now();
    while s.on("db3", "pidof sshd || true").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "db3's sshd does not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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

    // Every acknowledged insert on every member; the writes went to one member (db1, the
    // first, while it is synced).
    let acks = stop_writer_acks_in(&s.container("backup1"));
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(acked.len() > 50, "{} acknowledged inserts", acked.len());
    let servers: std::collections::BTreeSet<u32> = acks.iter().map(|a| a.2).collect();
    assert_eq!(servers, [1].into(), "the members that acknowledged inserts");
    for h in MEMBERS {
        s.assert_all_present(h, &acked);
    }
    eprintln!(
        "labg: {} acknowledged inserts, longest gap between two {:.3} s, none lost",
        acked.len(),
        longest_gap(&acks)
    );
    let st = dbfleet_with(&inv, &["status"], &[]);
    assert_eq!(st.code, 0, "{}", st.all());
    let down = s.lab_sh(&["down"]);
    assert!(down.status.success());
}
