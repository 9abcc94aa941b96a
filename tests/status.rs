//! `dbfleet status` health rules, on server output as MariaDB 10.11 prints it
//! (`mariadb -E`). The lab tests read real servers; these pin each rule.

use std::path::Path;

use dbfleet::inventory::Inventory;
use dbfleet::playbook::Library;
use dbfleet::status::evaluate;

fn lab() -> Inventory {
    let lib = Library::load(None, None).expect("library");
    dbfleet::inventory::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.yml"),
        &lib.defaults,
    )
    .expect("lab inventory")
}

fn replica_output(io: &str, lag: &str, host: &str, read_only: &str, binlog_state: &str) -> String {
    format!(
        "*** 1. row ***\n up: dbfleet-up\n server_id: 2\n read_only: {read_only}\n gtid_binlog_pos: 0-1-40\n gtid_slave_pos: 0-1-40\n gtid_binlog_state: {binlog_state}\n have_ssl: YES\n\
         *** 1. row ***\n semi_sync_primary: OFF\n*** 1. row ***\n semi_sync_replica: OFF\n\
         *** 1. row ***\n Master_Host: {host}\n Slave_IO_Running: {io}\n Slave_SQL_Running: Yes\n Seconds_Behind_Master: {lag}\n\
         Master_SSL_Allowed: Yes\n Master_SSL_Verify_Server_Cert: Yes\n Last_IO_Error: \n Last_SQL_Error: \n"
    )
}

fn problems(out: &str) -> Vec<String> {
    let inv = lab();
    let db2 = inv.host("db2").expect("db2").clone();
    evaluate(&inv, &db2, Ok(out), 300).problems
}

#[test]
fn healthy_replica_has_no_problems() {
    assert!(problems(&replica_output("Yes", "0", "172.29.77.11", "1", "0-1-40")).is_empty());
}

#[test]
fn each_unhealthy_replica_condition_is_named() {
    assert_eq!(
        problems(&replica_output("No", "", "172.29.77.11", "1", "0-1-40")),
        ["replication stopped (IO thread: No, SQL thread: Yes)"]
    );
    assert_eq!(
        problems(&replica_output("Yes", "301", "172.29.77.11", "1", "0-1-40")),
        ["lag 301 s is over the limit of 300 s"]
    );
    assert_eq!(
        problems(&replica_output("Yes", "0", "172.29.77.13", "1", "0-1-40")),
        ["replicates from 172.29.77.13, not its source db1 (172.29.77.11)"]
    );
    assert_eq!(
        problems(&replica_output("Yes", "0", "172.29.77.11", "0", "0-1-40")),
        ["writable replica: read_only is OFF"]
    );
}

#[test]
fn errant_gtid_is_an_entry_with_the_replicas_own_server_id_in_the_primarys_domain() {
    // db2 is server_id 2: 0-2-13 was written on db2 itself (DESIGN.md, verified on 10.11).
    let p = problems(&replica_output(
        "Yes",
        "0",
        "172.29.77.11",
        "1",
        "0-1-40,0-2-13",
    ));
    assert_eq!(
        p,
        ["errant transaction(s) written on the replica itself: 0-2-13"]
    );
    // Another domain is not the primary's stream.
    assert!(
        problems(&replica_output(
            "Yes",
            "0",
            "172.29.77.11",
            "1",
            "0-1-40,7-2-3"
        ))
        .is_empty()
    );
}

#[test]
fn a_down_server_or_unreachable_host_is_unhealthy() {
    let inv = lab();
    let db1 = inv.host("db1").expect("db1").clone();
    assert_eq!(
        evaluate(&inv, &db1, Ok(""), 300).problems,
        ["the database server is not running"]
    );
    assert_eq!(
        evaluate(&inv, &db1, Err("connection refused"), 300).problems,
        ["unreachable: connection refused"]
    );
}

#[test]
fn status_json_carries_its_format_version() {
    let inv = lab();
    let h = inv.host("db2").expect("db2");
    let row = evaluate(&inv, h, Err("no route to host"), 300);
    let v: serde_json::Value =
        serde_json::from_str(&dbfleet::status::to_json(&[row], &[], &[], &[])).expect("json");
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["hosts"][0]["host"], "db2");
}

#[test]
fn errant_gtid_on_mysql_is_an_interval_of_the_replicas_own_server_uuid() {
    // The lab's fleet as MySQL (no physical job: validate refuses it there).
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.yml"))
            .expect("lab.yml")
            .replace("flavor: mariadb", "flavor: mysql");
    let (a, b) = (
        text.find("    app-physical:").expect("app-physical"),
        text.find("    binlogs:").expect("binlogs"),
    );
    let text = format!("{}{}", &text[..a], &text[b..]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lab.yml");
    std::fs::write(&path, text).expect("write");
    let lib = Library::load(None, None).expect("library");
    let inv = dbfleet::inventory::load(&path, &lib.defaults).expect("mysql inventory");
    let db2 = inv.host("db2").expect("db2").clone();
    let (src, own) = (
        "aaaaaaaa-0000-0000-0000-000000000001",
        "aaaaaaaa-0000-0000-0000-000000000002",
    );
    // As MySQL 9.7 answers status's queries (gtid_executed on one line, its server_uuid,
    // SHOW REPLICA STATUS names).
    let out = |executed: &str| {
        format!(
            "*** 1. row ***\n up: dbfleet-up\n server_id: 2\n read_only: 1\n gtid_binlog_pos: {executed}\n gtid_slave_pos: {executed}\n gtid_binlog_state: {executed}\n server_uuid: {own}\n have_ssl: YES\n\
             *** 1. row ***\n semi_sync_primary: OFF\n*** 1. row ***\n semi_sync_replica: ON\n\
             *** 1. row ***\n Source_Host: 172.29.77.11\n Replica_IO_Running: Yes\n Replica_SQL_Running: Yes\n Seconds_Behind_Source: 0\n\
             Source_SSL_Allowed: Yes\n Source_SSL_Verify_Server_Cert: Yes\n Last_IO_Error: \n Last_SQL_Error: \n"
        )
    };
    let healthy = evaluate(&inv, &db2, Ok(&out(&format!("{src}:1-40"))), 300);
    assert!(healthy.problems.is_empty(), "{:?}", healthy.problems);
    let errant = evaluate(&inv, &db2, Ok(&out(&format!("{src}:1-40,{own}:1-2"))), 300);
    assert_eq!(
        errant.problems,
        [format!(
            "errant transaction(s) written on the replica itself: {own}:1-2"
        )]
    );
}

/// The primary's output: db1, server_id 1, writable, at `pos`.
fn primary_output(pos: &str) -> String {
    format!(
        "*** 1. row ***\n up: dbfleet-up\n server_id: 1\n version: 10.11.19-MariaDB-0+deb12u1-log\n read_only: 0\n gtid_binlog_pos: {pos}\n gtid_slave_pos: \n gtid_binlog_state: {pos}\n have_ssl: YES\n\
         *** 1. row ***\n semi_sync_primary: ON\n*** 1. row ***\n semi_sync_replica: OFF\n"
    )
}

/// HAProxy's `show stat` on a lab proxy routing writes to db1 and reads to `readers`.
fn proxy_stat(readers: &[(&str, &str)]) -> String {
    let mut s = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n\
                 writer,FRONTEND,,,0,1,4096,12,0,0,0,0,0,,,,,OPEN\n\
                 writer,db1,0,0,0,1,,12,0,0,,0,,0,0,0,0,UP\n\
                 writer,db2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT\n\
                 writer,db3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT\n\
                 reader,db1,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT\n"
        .to_string();
    for (server, state) in readers {
        s.push_str(&format!(
            "reader,{server},0,0,0,1,,5,0,0,,0,,0,0,0,0,{state}\n"
        ));
    }
    s
}

/// The topology view of the lab's fleet from the servers' and proxies' outputs.
fn topology(db2: &str, db3: &str, readers: &[(&str, &str)]) -> String {
    let inv = lab();
    let outs = [
        ("db1", primary_output("0-1-40")),
        ("db2", db2.to_string()),
        ("db3", db3.to_string()),
    ];
    let rows: Vec<dbfleet::status::HostStatus> = outs
        .iter()
        .map(|(h, o)| evaluate(&inv, inv.host(h).expect("host"), Ok(o), 300))
        .collect();
    let stat = proxy_stat(readers);
    let proxies: Vec<dbfleet::status::proxies::ProxyStatus> = ["proxy1", "proxy2"]
        .iter()
        .map(|p| dbfleet::status::proxies::evaluate(inv.host(p).expect("proxy"), Ok(&stat), &rows))
        .collect();
    dbfleet::status::topology::render(&inv, &rows, &proxies)
}

fn db3_output(io: &str, lag: &str, binlog_state: &str) -> String {
    replica_output(io, lag, "172.29.77.11", "1", binlog_state)
        .replace("server_id: 2", "server_id: 3")
}

#[test]
fn topology_of_a_healthy_fleet() {
    insta::assert_snapshot!(topology(
        &replica_output("Yes", "0", "172.29.77.11", "1", "0-1-40"),
        &db3_output("Yes", "0", "0-1-40"),
        &[("db2", "UP"), ("db3", "UP")],
    ));
}

#[test]
fn topology_with_a_lagging_replica() {
    insta::assert_snapshot!(topology(
        &replica_output("Yes", "0", "172.29.77.11", "1", "0-1-40"),
        &db3_output("Yes", "412", "0-1-40"),
        &[("db2", "UP"), ("db3", "DOWN")],
    ));
}

#[test]
fn topology_with_a_broken_replica_under_another() {
    // db3 replicates from db2 (not its declared source) and its IO thread stopped.
    let db3 = replica_output("No", "", "172.29.77.12", "1", "0-1-40")
        .replace("server_id: 2", "server_id: 3");
    insta::assert_snapshot!(topology(
        &replica_output("Yes", "0", "172.29.77.11", "1", "0-1-40"),
        &db3,
        &[("db2", "UP"), ("db3", "DOWN")],
    ));
}

#[test]
fn topology_with_an_errant_replica_and_a_proxy_reading_from_a_writable_server() {
    // db2 wrote 0-2-13 itself and is writable; the reader backend still routes to it.
    insta::assert_snapshot!(topology(
        &replica_output("Yes", "0", "172.29.77.11", "0", "0-1-40,0-2-13"),
        &db3_output("Yes", "0", "0-1-40"),
        &[("db2", "UP"), ("db3", "UP")],
    ));
}

/// A monitor's script output: its state file and whether its service runs.
fn monitor_output(active: bool, primary: &str, at: u64, running: bool) -> String {
    format!(
        "--state--\n{{\"host\":\"proxy1\",\"cluster\":\"lab\",\"primary\":\"{primary}\",\"active\":{active},\"locks\":{},\"of\":3,\"at\":{at},\"decision\":\"{primary} answers; {} ({} of 3 locks)\",\"last_failover\":null}}\n--service--\n{}\n",
        if active { 3 } else { 0 },
        if active { "active" } else { "standby" },
        if active { 3 } else { 0 },
        if running { "running" } else { "stopped" }
    )
}

/// Issue 14: `status` shows the monitors, which one is active and their last decision;
/// none active, a stopped or stuck monitor, and one following another primary than the
/// inventory's are problems.
#[test]
fn failover_monitors_in_status() {
    use dbfleet::status::monitors::{evaluate, judge_clusters, render};
    let inv = lab();
    let p1 = inv.host("proxy1").expect("proxy1").clone();
    let p2 = inv.host("proxy2").expect("proxy2").clone();
    let now = 1_800_000_000;
    let mut healthy = vec![
        evaluate(
            &inv,
            &p1,
            Ok(&monitor_output(true, "db1", now - 1, true)),
            now,
        ),
        evaluate(&inv, &p2, Ok(&monitor_output(false, "db1", now, true)), now),
    ];
    judge_clusters(&mut healthy);
    assert!(healthy.iter().all(|m| m.problems.is_empty()), "{healthy:?}");
    insta::assert_snapshot!("monitors_healthy", render(&healthy));

    let mut broken = vec![
        evaluate(
            &inv,
            &p1,
            Ok(&monitor_output(true, "db2", now - 200, false)),
            now,
        ),
        evaluate(
            &inv,
            &p2,
            Err("connect to host 172.29.77.32 port 22: Connection timed out"),
            now,
        ),
    ];
    judge_clusters(&mut broken);
    insta::assert_snapshot!("monitors_broken", render(&broken));
    let p = &broken[0].problems;
    assert!(p.iter().any(|x| x.contains("does not run")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("stuck")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("dbfleet adopt")), "{p:?}");
    assert!(
        p.iter()
            .any(|x| x.contains("no monitor of cluster lab is active")),
        "{p:?}"
    );
}
