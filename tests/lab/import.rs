//! `dbfleet import` on a fleet built by hand (issue 28, must-show 1), in a lab of its own
//! (`labim`): bare hosts set up as seed 000 does it (`lab/handmade.sh`: MariaDB from Debian,
//! db1 → db2, db3 by binary-log file and position as `repl`, no GTID, no TLS, an
//! application database and account with rows, a setting in
//! /etc/mysql/mariadb.conf.d/, HAProxy on proxy1 in front of db1). Import from db1 (the
//! proxy named) writes an inventory that `validate` accepts once the application's password
//! is in the environment; its first plan reseeds nothing and drops nothing; the apply
//! converts the fleet (GTID, verified TLS, dbfleet's accounts and proxy configuration, one
//! server down at a time) while the application inserts through the proxy, losing no
//! acknowledged insert; the re-plan is empty and every row is on every server.

use std::path::PathBuf;
use std::process::Command;

use super::support::*;

const NAME: &str = "labim";
const PREFIX: &str = "172.29.82";
const HOSTS: [&str; 3] = ["db1", "db2", "db3"];

fn dir() -> PathBuf {
    repo().join(format!(".{NAME}"))
}

fn container(h: &str) -> String {
    format!("{NAME}-{h}")
}

fn sql_on(h: &str, q: &str) -> String {
    exec_in(
        &container(h),
        &format!("mariadb -N -B -e {}", shell_quote(q)),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn import_of_a_hand_built_fleet_validates_plans_no_reseed_and_converts_it_live_losing_no_write() {
    let _turn = other_lab(NAME);
    let lab = |args: &[&str]| {
        let o = Command::new("bash")
            .arg(repo().join("lab/lab.sh"))
            .args(args)
            .env("LAB_NAME", NAME)
            .env("LAB_SUBNET", format!("{PREFIX}.0/24"))
            .env("LAB_DIR", dir())
            .output()
            .expect("run lab/lab.sh");
        assert!(
            o.status.success(),
            "lab/lab.sh {args:?} failed: the lab tests need Docker and debootstrap and never skip.\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    lab(&["up"]);
    let repl_password = format!("r{}", rand_u64());
    let app_password = format!("a{}", rand_u64());
    let made = Command::new("bash")
        .arg(repo().join("lab/handmade.sh"))
        .env("LAB_NAME", NAME)
        .env("LAB_SUBNET", format!("{PREFIX}.0/24"))
        .env("HANDMADE_REPL_PASSWORD", &repl_password)
        .env("HANDMADE_APP_PASSWORD", &app_password)
        .output()
        .expect("run lab/handmade.sh");
    assert!(
        made.status.success(),
        "lab/handmade.sh failed:\n{}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
    for h in ["db2", "db3"] {
        let st = exec_in(&container(h), "mariadb -e 'SHOW SLAVE STATUS\\G'");
        assert!(st.contains("Using_Gtid: No"), "{h} by position:\n{st}");
    }

    // Import from the primary: the whole topology, written as an inventory.
    let work = tempfile::tempdir().expect("tempdir");
    let inv = work.path().join("shop.yml");
    let ssh_config = dir().join("ssh_config");
    let o = dbfleet_with(
        &inv,
        &[
            "import",
            "--from",
            &format!("{PREFIX}.11"),
            "--name",
            "shop",
            "--ssh-user",
            "root",
            "--ssh-config",
            &ssh_config.display().to_string(),
            "--proxy",
            &format!("{PREFIX}.31"),
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.all());
    let text = o.stdout.clone();
    assert!(
        !text.contains(&repl_password) && !text.contains(&app_password),
        "a password in the imported inventory"
    );
    for want in [
        "roles: [primary]",
        "max_connections: 300",
        "log_bin_basename: \"/var/log/mysql/mysql-bin\"",
        "grants: [\"SELECT, INSERT, UPDATE, DELETE ON app.*\"]",
        "app_password: { env: APP_PASSWORD }",
        "table_open_cache = 3000",
        "repl@% is the replication account",
    ] {
        assert!(text.contains(want), "expected `{want}` in:\n{text}");
    }
    assert_eq!(text.matches("roles: [replica]").count(), 2, "{text}");
    std::fs::write(&inv, &text).expect("write the inventory");

    // The operator adds only the secret: the application's password.
    let env = [("APP_PASSWORD", app_password.as_str())];
    let v = dbfleet_with(&inv, &["validate"], &env);
    assert_eq!(v.code, 0, "validate:\n{}\n{text}", v.all());
    let p = dbfleet_with(&inv, &["plan"], &env);
    assert_eq!(p.code, 0, "{}", p.all());
    let plan = p.flat();
    assert!(
        !plan.contains("bootstrap replication"),
        "the first plan reseeds a replica:\n{}",
        p.stdout
    );
    assert_eq!(
        plan.matches("repoint replication to db1 by GTID").count(),
        2,
        "{}",
        p.stdout
    );
    assert!(plan.contains("0 to delete"), "{}", p.stdout);
    // The plan's risk line: the restarts roll, nothing is destroyed.
    assert!(plan.contains("destructive: none."), "{}", p.stdout);
    let rolling = plan
        .split("rolling restarts: ")
        .nth(1)
        .and_then(|r| r.split(" (one server").next())
        .unwrap_or_else(|| panic!("no rolling restarts in the risk line:\n{}", p.stdout));
    for h in HOSTS {
        assert!(
            rolling.contains(h),
            "{h} not in the rolling restarts: {rolling}"
        );
    }
    eprintln!(
        "labim: the first plan: {}",
        p.stdout
            .lines()
            .filter(|l| l.starts_with("Plan: ") || l.starts_with("Risk: "))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(!plan.contains("DROP DATABASE app"), "{}", p.stdout);

    // The apply, while the application inserts through the proxy (HAProxy, configured by
    // hand; dbfleet's from this apply on).
    exec_in_with_input(
        &container("backup1"),
        "umask 077; cat > /root/app.cnf",
        &format!("[client]\nuser=app\npassword={app_password}\n"),
    );
    exec_in_with_input(
        &container("backup1"),
        "cat > /root/writer.sh; chmod +x /root/writer.sh; touch /root/writer.run",
        WRITER,
    );
    start_in_background(
        &container("backup1"),
        &format!("/root/writer.sh 1000000 {PREFIX}.31 2>/dev/null"),
        "/root/writer.log",
        20,
        "the writer",
    );
    start_ping_samplers_in(NAME, &HOSTS);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &env);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let down = stop_ping_samplers_in(NAME, &HOSTS);
    let acks = stop_writer_acks_in(&container("backup1"));
    assert_eq!(a.code, 0, "apply:\n{}", a.all());
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(acked.len() > 20, "{} acknowledged inserts", acked.len());
    // Never two servers down at once.
    for (h, ivs) in &down {
        for (o, oivs) in &down {
            if h >= o {
                continue;
            }
            for a in ivs {
                for b in oivs {
                    assert!(
                        a.1 < b.0 || b.1 < a.0,
                        "{h} and {o} were down at once: {a:?} and {b:?}"
                    );
                }
            }
        }
    }
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &env);
    assert_eq!(p.code, 0, "re-plan after the first apply:\n{}", p.all());

    // Converted: GTID and verified TLS, and every row on every server.
    for h in ["db2", "db3"] {
        let st = exec_in(&container(h), "mariadb -e 'SHOW SLAVE STATUS\\G'");
        for want in [
            "Using_Gtid: Slave_Pos",
            "Master_SSL_Verify_Server_Cert: Yes",
            "Slave_IO_Running: Yes",
            "Slave_SQL_Running: Yes",
        ] {
            assert!(st.contains(want), "{h}: expected {want}:\n{st}");
        }
    }
    let want: u64 = sql_on("db1", "SELECT COUNT(*) FROM app.seq")
        .parse()
        .expect("count");
    for h in HOSTS {
        for n in [1u64, 2, 3] {
            assert_eq!(
                sql_on(h, &format!("SELECT COUNT(*) FROM app.seq WHERE n = {n}")),
                "1",
                "{h}: row {n} written before the import"
            );
        }
        let mut missing = Vec::new();
        for chunk in acked.chunks(500) {
            let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
            let found: u64 = sql_on(
                h,
                &format!(
                    "SELECT COUNT(*) FROM app.seq WHERE n IN ({})",
                    list.join(",")
                ),
            )
            .parse()
            .expect("count");
            if found != chunk.len() as u64 {
                missing.push(chunk[0]);
            }
        }
        assert!(
            missing.is_empty(),
            "{h}: acknowledged inserts lost near {missing:?}"
        );
        eventually_count(h, want);
    }
    eprintln!(
        "labim: imported and converted; {} acknowledged inserts during the apply, none lost; down intervals {down:?}",
        acked.len()
    );
}

/// Waits up to 30 s until `host` holds at least `n` rows of app.seq.
fn eventually_count(host: &str, n: u64) {
    let t0 = std::time::Instant::now();
    loop {
        let have: u64 = sql_on(host, "SELECT COUNT(*) FROM app.seq")
            .parse()
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "{host} holds {have} rows, the primary {n}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
