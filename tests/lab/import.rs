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
//!
//! The same on the MySQL image (must-show 2, its own lab `labimy`): Debian's MySQL with
//! `gtid_mode` OFF, replicating by file and position; the first apply turns GTIDs on live
//! (MySQL's online procedure, `runbooks::gtid_online`) before the replicas move to
//! auto-position and anything restarts.

use std::path::PathBuf;
use std::process::Command;

use super::support::*;

const HOSTS: [&str; 3] = ["db1", "db2", "db3"];

/// A lab of hand-built hosts (`lab/handmade.sh`).
struct Handmade {
    name: &'static str,
    /// The lab's /24 (a subnet of its own: `every_lab_has_a_subnet_of_its_own`).
    prefix: &'static str,
    /// `LAB_SUITE` and `LAB_SERVER` of lab/lab.sh.
    suite: &'static str,
    server: &'static str,
}

const MARIADB: Handmade = Handmade {
    name: "labim",
    prefix: "172.29.82",
    suite: "bookworm",
    server: "mariadb",
};

const MYSQL: Handmade = Handmade {
    name: "labimy",
    prefix: "172.29.83",
    suite: "sid",
    server: "mysql",
};

impl Handmade {
    fn dir(&self) -> PathBuf {
        repo().join(format!(".{}", self.name))
    }

    fn container(&self, h: &str) -> String {
        format!("{}-{h}", self.name)
    }

    fn client(&self) -> &'static str {
        if self.server == "mysql" {
            "mysql"
        } else {
            "mariadb"
        }
    }

    fn sql_on(&self, h: &str, q: &str) -> String {
        exec_in(
            &self.container(h),
            &format!("{} -N -B -e {}", self.client(), shell_quote(q)),
        )
    }

    fn replica_status(&self, h: &str) -> String {
        // Vertical output by option: MySQL 9.7's client refuses `\G` in `-e`.
        let show = if self.server == "mysql" {
            "SHOW REPLICA STATUS"
        } else {
            "SHOW SLAVE STATUS"
        };
        exec_in(
            &self.container(h),
            &format!("{} -E -e '{show}'", self.client()),
        )
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn import_of_a_hand_built_fleet_validates_plans_no_reseed_and_converts_it_live_losing_no_write() {
    import_converts(&MARIADB);
}

/// Must-show 2: MySQL with GTIDs off, turned on live by the first apply.
#[test]
fn import_of_a_hand_built_mysql_fleet_turns_gtids_on_live_and_converts_it_losing_no_write() {
    import_converts(&MYSQL);
}

fn import_converts(m: &Handmade) {
    let _turn = other_lab(m.name);
    let (name, prefix) = (m.name, m.prefix);
    let mysql = m.server == "mysql";
    let lab = |args: &[&str]| {
        let o = Command::new("bash")
            .arg(repo().join("lab/lab.sh"))
            .args(args)
            .env("LAB_NAME", name)
            .env("LAB_SUBNET", format!("{prefix}.0/24"))
            .env("LAB_DIR", m.dir())
            .env("LAB_SUITE", m.suite)
            .env("LAB_SERVER", m.server)
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
        .env("LAB_NAME", name)
        .env("LAB_SUBNET", format!("{prefix}.0/24"))
        .env("LAB_SERVER", m.server)
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
        let st = m.replica_status(h);
        let by_position = if mysql {
            "Auto_Position: 0"
        } else {
            "Using_Gtid: No"
        };
        assert!(st.contains(by_position), "{h} by position:\n{st}");
    }
    if mysql {
        for h in HOSTS {
            assert_eq!(m.sql_on(h, "SELECT @@GLOBAL.gtid_mode"), "OFF", "{h}");
        }
    }

    // Import from the primary: the whole topology, written as an inventory.
    let work = tempfile::tempdir().expect("tempdir");
    let inv = work.path().join("shop.yml");
    let ssh_config = m.dir().join("ssh_config");
    let o = dbfleet_with(
        &inv,
        &[
            "import",
            "--from",
            &format!("{prefix}.11"),
            "--name",
            "shop",
            "--ssh-user",
            "root",
            "--ssh-config",
            &ssh_config.display().to_string(),
            "--proxy",
            &format!("{prefix}.31"),
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
    if mysql {
        assert!(text.contains("gtid_mode is not ON on"), "{text}");
    }
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
    if mysql {
        assert!(plan.contains("GTIDs on, live, in cluster"), "{}", p.stdout);
    }
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
        "{name}: the first plan: {}",
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
        &m.container("backup1"),
        "umask 077; cat > /root/app.cnf",
        &format!("[client]\nuser=app\npassword={app_password}\n"),
    );
    exec_in_with_input(
        &m.container("backup1"),
        "cat > /root/writer.sh; chmod +x /root/writer.sh; touch /root/writer.run",
        WRITER,
    );
    start_in_background(
        &m.container("backup1"),
        &format!("/root/writer.sh 1000000 {prefix}.31 2>/dev/null"),
        "/root/writer.log",
        20,
        "the writer",
    );
    start_ping_samplers_in(name, &HOSTS);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &env);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let down = stop_ping_samplers_in(name, &HOSTS);
    let acks = stop_writer_acks_in(&m.container("backup1"));
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
    let converted = if mysql {
        [
            "Auto_Position: 1",
            "Source_SSL_Verify_Server_Cert: Yes",
            "Replica_IO_Running: Yes",
            "Replica_SQL_Running: Yes",
        ]
    } else {
        [
            "Using_Gtid: Slave_Pos",
            "Master_SSL_Verify_Server_Cert: Yes",
            "Slave_IO_Running: Yes",
            "Slave_SQL_Running: Yes",
        ]
    };
    for h in ["db2", "db3"] {
        let st = m.replica_status(h);
        for want in converted {
            assert!(st.contains(want), "{h}: expected {want}:\n{st}");
        }
    }
    if mysql {
        for h in HOSTS {
            assert_eq!(m.sql_on(h, "SELECT @@GLOBAL.gtid_mode"), "ON", "{h}");
        }
    }
    let want: u64 = m
        .sql_on("db1", "SELECT COUNT(*) FROM app.seq")
        .parse()
        .expect("count");
    for h in HOSTS {
        for n in [1u64, 2, 3] {
            assert_eq!(
                m.sql_on(h, &format!("SELECT COUNT(*) FROM app.seq WHERE n = {n}")),
                "1",
                "{h}: row {n} written before the import"
            );
        }
        let mut missing = Vec::new();
        for chunk in acked.chunks(500) {
            let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
            let found: u64 = m
                .sql_on(
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
        eventually_count(m, h, want);
    }
    eprintln!(
        "{name}: imported and converted; {} acknowledged inserts during the apply, none lost; down intervals {down:?}",
        acked.len()
    );
}

/// Waits up to 30 s until `host` holds at least `n` rows of app.seq.
fn eventually_count(m: &Handmade, host: &str, n: u64) {
    let t0 = std::time::Instant::now();
    loop {
        let have: u64 = m
            .sql_on(host, "SELECT COUNT(*) FROM app.seq")
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
