//! Discovery and the written inventory on scripted servers (`transport::fake`): a primary
//! with two replicas set up by hand as seed 000 does (file and position, a `repl` account,
//! an application account, a setting in an option file); the refusals; and the inventory
//! loaded and validated by the same code as `dbfleet validate`.

use super::inventory::{Options, write};
use super::*;
use crate::transport::fake::Scripted;

const VERSION: &str = "10.11.14-MariaDB-0+deb12u2-log";

/// The import script's answer for one MariaDB server.
fn answer(
    hostname: &str,
    id: u32,
    source: Option<(&str, &str)>,
    replicas: &[&str],
    max_connections: (&str, bool),
) -> String {
    let mut s = format!(
        "{}\n*************************** 1. row ***************************\n\
         version: {VERSION}\nserver_id: {id}\nserver_uuid: \ngtid_mode: ON\nlog_bin: 1\nlog_bin_basename: /var/log/mysql/mysql-bin\n\
         relay_log_basename: /var/log/mysql/mysql-relay-bin\n\
         datadir: /var/lib/mysql/\nhostname: {hostname}\nport: 3306\n\
         read_only: {}\ncharacter_set_server: utf8mb4\ncollation_server: utf8mb4_general_ci\n",
        marker("server"),
        u8::from(source.is_some())
    );
    if let Some((host, using)) = source {
        s.push_str(
            &crate::sql::import::MARIADB_REPLICA_STATUS_SAMPLE
                .replace("{host}", host)
                .replace("{using}", using),
        );
    }
    s.push_str(&format!("{}\n", marker("replicas")));
    for r in replicas {
        s.push_str(&format!("{r}\trepl\n"));
    }
    s.push_str(&format!(
        "{}\nbind_address\t0.0.0.0\t1\nbinlog_expire_logs_seconds\t864000\t0\nbinlog_format\tMIXED\t1\n\
         innodb_buffer_pool_size\t134217728\t0\ninnodb_log_file_size\t100663296\t0\n\
         max_connections\t{}\t{}\nport\t3306\t0\nserver_id\t{id}\t1\nslow_query_log\tOFF\t0\n\
         character_set_server\tutf8mb4\t1\ntable_open_cache\t4000\t1\n",
        marker("settings"),
        max_connections.0,
        u8::from(max_connections.1)
    ));
    s.push_str(&format!(
        "{}\napp\tutf8mb4\tutf8mb4_general_ci\ntest\tutf8mb4\tutf8mb4_general_ci\n",
        marker("databases")
    ));
    s.push_str(&format!(
        "{}\napp\t%\nrepl\t%\nroot\tlocalhost\nmariadb.sys\tlocalhost\nadmin\t%\n",
        marker("accounts")
    ));
    s.push_str(&format!(
        "{}\n'app'@'%'\t*.*\tUSAGE\tNO\n'app'@'%'\t`app`.*\tSELECT\tNO\n'app'@'%'\t`app`.*\tINSERT\tNO\n\
         'app'@'%'\t`app`.*\tUPDATE\tNO\n'app'@'%'\t`app`.*\tDELETE\tNO\n'repl'@'%'\t*.*\tREPLICATION SLAVE\tNO\n\
         'admin'@'%'\t*.*\tSUPER\tYES\n",
        marker("privileges")
    ));
    s.push_str(&format!("{}\n", marker("end")));
    s
}

fn host(name: &str, import: String) -> Box<dyn Transport> {
    Box::new(
        Scripted::new(name)
            .answer("SELECT @@version'", &[VERSION])
            .answer(&marker("server"), &[&import]),
    )
}

/// The hand-built lab: db1 (10.0.0.11) → db2, db3 by file and position; max_connections
/// 300 in an option file on every server.
fn seed_000(addr: String) -> Result<Box<dyn Transport>, String> {
    let mc = ("300", true);
    match addr.as_str() {
        "10.0.0.11" => Ok(host(
            "db1",
            answer("db1", 1, None, &["10.0.0.12", "10.0.0.13"], mc),
        )),
        "10.0.0.12" => Ok(host(
            "db2",
            answer("db2", 2, Some(("10.0.0.11", "No")), &[], mc),
        )),
        "10.0.0.13" => Ok(host(
            "db3",
            answer("db3", 3, Some(("10.0.0.11", "No")), &[], mc),
        )),
        other => Err(format!("{other}: connection refused")),
    }
}

fn run<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn discovery_follows_replication_both_ways_from_any_server() {
    for from in ["10.0.0.11", "10.0.0.13"] {
        let t = run(discover(from, |a| async move { seed_000(a) })).expect("discovered");
        let mut names: Vec<&str> = t.servers.iter().map(|s| s.hostname.as_str()).collect();
        names.sort();
        assert_eq!(names, ["db1", "db2", "db3"], "from {from}");
        assert_eq!(t.servers[t.primary].hostname, "db1");
        assert!(t.unreachable.is_empty());
        for (i, s) in t.servers.iter().enumerate() {
            if i != t.primary {
                assert_eq!(t.sources[i], Some(t.primary), "{}", s.hostname);
                assert!(!s.source.as_ref().expect("source").gtid_positioned);
            }
        }
    }
}

fn lab_inventory() -> String {
    let t = run(discover("10.0.0.11", |a| async move { seed_000(a) })).expect("discovered");
    let lib = crate::playbook::Library::load(None, None).expect("built-in playbooks");
    write(
        &t,
        &Options {
            from: "10.0.0.11".into(),
            fleet: "shop".into(),
            ssh_user: Some("root".into()),
            proxies: vec!["10.0.0.31".into()],
            ..Options::default()
        },
        &lib.defaults,
    )
}

#[test]
fn the_written_inventory_is_what_validate_accepts() {
    let text = lab_inventory();
    let lib = crate::playbook::Library::load(None, None).expect("built-in playbooks");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shop.yml");
    std::fs::write(&path, &text).expect("write");
    let inv = crate::inventory::load::load(&path, &lib.defaults)
        .unwrap_or_else(|e| panic!("the imported inventory does not load: {e:?}\n{text}"));
    assert_eq!(inv.hosts.len(), 4, "{text}");
    // Live settings that differ from dbfleet's defaults are declared; its defaults not.
    assert!(text.contains("max_connections: 300"), "{text}");
    assert!(text.contains("innodb_buffer_pool_size: \"128M\""), "{text}");
    assert!(text.contains("innodb_log_file_size: \"96M\""), "{text}");
    assert!(text.contains("binlog_format: \"MIXED\""), "{text}");
    assert!(text.contains("slow_query_log: false"), "{text}");
    assert!(text.contains("binlog_expire_days: 10"), "{text}");
    assert!(!text.contains("bind_address:"), "{text}");
    // The application's account with its privileges, its password a secret to fill in;
    // neither the replication account nor one holding SUPER.
    assert!(
        text.contains("grants: [\"SELECT, INSERT, UPDATE, DELETE ON app.*\"]"),
        "{text}"
    );
    assert!(
        text.contains("app_password: { env: APP_PASSWORD }"),
        "{text}"
    );
    assert!(!text.contains("name: \"repl\""), "{text}");
    assert!(!text.contains("name: \"admin\""), "{text}");
    assert!(text.contains("admin@% holds SUPER ON *.*"), "{text}");
    assert!(text.contains("repl@% is the replication account"), "{text}");
    assert!(text.contains("table_open_cache = 4000"), "{text}");
    assert!(
        text.contains("replicates by binary log file and position"),
        "{text}"
    );
    // The hardening would drop the `test` database: kept off until the operator says so.
    assert!(
        text.contains("which dbfleet's hardening (seed 000) removes"),
        "{text}"
    );
    assert!(text.contains("    hardening: false"), "{text}");
    // Each replica's relay log, each server's binary log where it is.
    assert_eq!(
        text.matches("relay_log_basename: \"/var/log/mysql/mysql-relay-bin\"")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("log_bin_basename: \"/var/log/mysql/mysql-bin\"")
            .count(),
        3,
        "{text}"
    );
}

#[test]
fn what_cannot_be_one_cluster_is_refused() {
    // A ring: db1 replicates from db2 and db2 from db1.
    let ring = |a: String| -> Result<Box<dyn Transport>, String> {
        let mc = ("151", false);
        match a.as_str() {
            "10.0.0.11" => Ok(host(
                "db1",
                answer("db1", 1, Some(("10.0.0.12", "No")), &["10.0.0.12"], mc),
            )),
            "10.0.0.12" => Ok(host(
                "db2",
                answer("db2", 2, Some(("10.0.0.11", "No")), &["10.0.0.11"], mc),
            )),
            _ => Err("refused".into()),
        }
    };
    let e = run(discover("10.0.0.11", |a| async move { ring(a) }))
        .expect_err("a ring")
        .to_string();
    assert!(e.contains("a ring of primaries"), "{e}");

    // The source cannot be reached.
    let lost = |a: String| -> Result<Box<dyn Transport>, String> {
        match a.as_str() {
            "10.0.0.12" => Ok(host(
                "db2",
                answer("db2", 2, Some(("10.0.0.11", "No")), &[], ("151", false)),
            )),
            _ => Err("Connection timed out".into()),
        }
    };
    let e = run(discover("10.0.0.12", |a| async move { lost(a) }))
        .expect_err("no source")
        .to_string();
    assert!(e.contains("replicates from 10.0.0.11:3306"), "{e}");
    assert!(e.contains("Connection timed out"), "{e}");

    // The server named cannot be read.
    let e = run(discover("10.0.0.99", |a| async move { seed_000(a) }))
        .expect_err("unreachable")
        .to_string();
    assert!(e.contains("10.0.0.99 could not be read"), "{e}");
}

#[test]
fn an_unreachable_replica_is_left_out_and_named() {
    let t = run(discover("10.0.0.11", |a| async move {
        if a == "10.0.0.13" {
            Err("No route to host".to_string())
        } else {
            seed_000(a)
        }
    }))
    .expect("discovered");
    assert_eq!(t.servers.len(), 2);
    assert_eq!(t.unreachable.len(), 1);
    let text = written(&t);
    assert!(
        text.contains(
            "10.0.0.13 was named by replication and could not be read (No route to host)"
        ),
        "{text}"
    );
}

/// `t` written as the inventory of fleet `shop`, imported from 10.0.0.11.
fn written(t: &Topology) -> String {
    let lib = crate::playbook::Library::load(None, None).expect("built-in playbooks");
    write(
        t,
        &Options {
            from: "10.0.0.11".into(),
            fleet: "shop".into(),
            ..Options::default()
        },
        &lib.defaults,
    )
}

#[test]
fn server_text_cannot_add_keys_or_lines() {
    let hostile = "db1\nfleet:\n  name: x";
    let mc = ("300\nbind_address: 1.2.3.4", true);
    let t = run(discover("10.0.0.11", |a| async move {
        match a.as_str() {
            "10.0.0.11" => Ok(host(hostile, answer(hostile, 1, None, &[], mc))),
            _ => Err("refused".to_string()),
        }
    }))
    .expect("discovered");
    let text = written(&t);
    assert_eq!(text.matches("\nfleet:").count(), 1, "{text}");
    assert!(!text.contains("bind_address: 1.2.3.4"), "{text}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shop.yml");
    std::fs::write(&path, &text).expect("write");
    let lib = crate::playbook::Library::load(None, None).expect("built-in playbooks");
    crate::inventory::load::load(&path, &lib.defaults)
        .unwrap_or_else(|e| panic!("does not load: {e:?}\n{text}"));
}

#[test]
fn sizes_are_written_with_the_largest_unit_that_divides_them() {
    use super::inventory::size_text;
    assert_eq!(size_text(134_217_728), "128M");
    assert_eq!(size_text(1 << 30), "1G");
    assert_eq!(size_text(100_663_296), "96M");
    assert_eq!(size_text(1000), "1000");
}

#[test]
fn only_addresses_reach_ssh() {
    // A replica whose source is set to an ssh option, and a --from that is one.
    let connected = std::sync::Mutex::new(Vec::new());
    let e = run(discover("-oProxyCommand=touch /tmp/x", |a| {
        connected.lock().expect("lock").push(a.clone());
        async move { seed_000(a) }
    }))
    .expect_err("refused")
    .to_string();
    assert!(e.contains("is not an IP address or a DNS name"), "{e}");
    let t = run(discover("10.0.0.12", |a| {
        connected.lock().expect("lock").push(a.clone());
        async move {
            match a.as_str() {
                "10.0.0.12" => Ok(host(
                    "db2",
                    answer(
                        "db2",
                        2,
                        Some(("-oProxyCommand=x", "No")),
                        &[],
                        ("151", false),
                    ),
                )),
                other => seed_000(other.to_string()),
            }
        }
    }));
    let e = t.expect_err("its source cannot be read").to_string();
    assert!(e.contains("is not an IP address or a DNS name"), "{e}");
    let seen = connected.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec!["10.0.0.12".to_string()],
        "ssh was given only addresses"
    );
}

#[test]
fn semi_sync_is_read_from_the_primary() {
    let semi = |text: String| {
        text.replace(
            &format!("{}\n", marker("settings")),
            &format!(
                "{}\nrpl_semi_sync_master_enabled\tON\t1\nrpl_semi_sync_master_timeout\t5000\t1\n",
                marker("settings")
            ),
        )
    };
    let t = run(discover("10.0.0.11", |a| async move {
        match a.as_str() {
            "10.0.0.11" => Ok(host(
                "db1",
                semi(answer("db1", 1, None, &["10.0.0.12"], ("151", false))),
            )),
            _ => seed_000(a),
        }
    }))
    .expect("discovered");
    let text = written(&t);
    assert!(text.contains("    semi_sync: true"), "{text}");
    assert!(text.contains("    semi_sync_timeout_ms: 5000"), "{text}");
    assert!(!text.contains("rpl_semi_sync_master_enabled = "), "{text}");
    // Off on the primary: dbfleet's default (off), nothing written.
    let t = run(discover("10.0.0.11", |a| async move { seed_000(a) })).expect("discovered");
    assert!(!written(&t).contains("semi_sync"));
}

#[test]
fn a_replica_of_a_replica_keeps_its_source() {
    // db1 → db2 → db3.
    let chain = |a: String| -> Result<Box<dyn Transport>, String> {
        let mc = ("151", false);
        match a.as_str() {
            "10.0.0.11" => Ok(host("db1", answer("db1", 1, None, &["10.0.0.12"], mc))),
            "10.0.0.12" => Ok(host(
                "db2",
                answer("db2", 2, Some(("10.0.0.11", "No")), &["10.0.0.13"], mc),
            )),
            "10.0.0.13" => Ok(host(
                "db3",
                answer("db3", 3, Some(("10.0.0.12", "No")), &[], mc),
            )),
            _ => Err("refused".into()),
        }
    };
    let t = run(discover("10.0.0.13", |a| async move { chain(a) })).expect("discovered");
    let text = written(&t);
    let db3 = text.split("  db3:\n").nth(1).expect("db3");
    assert!(db3.contains("    source: db2\n"), "{text}");
    let db2 = text.split("  db2:\n").nth(1).expect("db2");
    assert!(
        !db2.split("  db3:").next().unwrap_or("").contains("source:"),
        "{text}"
    );
}
