//! `plan --offline`: renders every host's files with no SSH at all. Snapshots of the
//! rendered templates per flavor and role (MariaDB 10.11 is what the lab runs; MySQL 8.0 is
//! covered by these renders only).

use std::path::{Path, PathBuf};
use std::process::Command;

fn offline(inventory: &str, out: &Path, home: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        // No agent, no ~/.ssh, no secrets in the environment: offline needs none of them.
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SHOP_MONITOR_PASSWORD")
        .env("HOME", home)
        .args(["-i", inventory, "plan", "--offline", "--out-dir"])
        .arg(out)
        .output()
        .expect("run dbfleet")
}

fn rendered(inventory: &str) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("tempdir");
    let o = offline(inventory, out.path(), home.path());
    assert!(
        o.status.success(),
        "offline plan failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (out, String::from_utf8_lossy(&o.stdout).into_owned())
}

fn read(dir: &Path, host: &str, path: &str) -> String {
    std::fs::read_to_string(dir.join(host).join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{host}:{path}: {e}"))
}

#[test]
fn offline_plan_needs_no_host_and_no_agent() {
    // The lab inventory's addresses are not reachable from here when the lab is down, and
    // HOME is empty: only rendering happens.
    let (dir, stdout) = rendered("inventories/lab.yml");
    assert!(stdout.contains("Offline check passed: 6 hosts"), "{stdout}");
    assert!(
        dir.path()
            .join("db1/etc/mysql/mariadb.conf.d/90-dbfleet.cnf")
            .exists()
    );
}

#[test]
fn mariadb_primary_and_replica_cnf() {
    let (dir, _) = rendered("inventories/lab.yml");
    insta::assert_snapshot!(
        "mariadb_primary_cnf",
        read(
            dir.path(),
            "db1",
            "/etc/mysql/mariadb.conf.d/90-dbfleet.cnf"
        )
    );
    insta::assert_snapshot!(
        "mariadb_replica_cnf",
        read(
            dir.path(),
            "db2",
            "/etc/mysql/mariadb.conf.d/90-dbfleet.cnf"
        )
    );
}

#[test]
fn mysql_primary_and_replica_cnf() {
    let (dir, _) = rendered("tests/fixtures/good/mysql.yml");
    insta::assert_snapshot!(
        "mysql_primary_cnf",
        read(dir.path(), "m1", "/etc/mysql/mysql.conf.d/zz-dbfleet.cnf")
    );
    insta::assert_snapshot!(
        "mysql_replica_cnf",
        read(dir.path(), "m2", "/etc/mysql/mysql.conf.d/zz-dbfleet.cnf")
    );
}

/// The settings the server takes live (issue 16), in each server's own names: MySQL's
/// `replica_net_timeout` where MariaDB has `slave_net_timeout`, sizes in bytes.
#[test]
fn live_settings_files_in_each_servers_names() {
    let (dir, _) = rendered("inventories/lab.yml");
    insta::assert_snapshot!(
        "mariadb_live_cnf",
        read(
            dir.path(),
            "db2",
            "/etc/mysql/mariadb.conf.d/91-dbfleet-live.cnf"
        )
    );
    let (dir, _) = rendered("tests/fixtures/good/mysql.yml");
    insta::assert_snapshot!(
        "mysql_live_cnf",
        read(
            dir.path(),
            "m2",
            "/etc/mysql/mysql.conf.d/zz-dbfleet-live.cnf"
        )
    );
}

#[test]
fn mysql_gets_a_file_that_wins_and_a_redo_log_setting_it_accepts() {
    // Issue 13: Debian's MySQL reads mysql.conf.d/ in name order and ships mysqld.cnf
    // there (bind-address = 127.0.0.1): our file must sort after it. MySQL 9 refuses to
    // start with innodb_log_file_size; 8.4+ sizes the redo log with innodb_redo_log_capacity.
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/mysql.yml"),
    )
    .expect("fixture");
    for (version, option) in [
        ("8.0", "innodb_log_file_size"),
        ("8.4", "innodb_redo_log_capacity"),
        ("9.7", "innodb_redo_log_capacity"),
    ] {
        let inv = tempfile::tempdir().expect("tempdir");
        let path = inv.path().join("mysql.yml");
        std::fs::write(
            &path,
            fixture.replace("version: \"8.0\"", &format!("version: \"{version}\"")),
        )
        .expect("write");
        let (dir, _) = rendered(path.to_str().expect("utf-8 path"));
        let cnf = read(dir.path(), "m1", "/etc/mysql/mysql.conf.d/zz-dbfleet.cnf");
        let other = if option == "innodb_log_file_size" {
            "innodb_redo_log_capacity"
        } else {
            "innodb_log_file_size"
        };
        assert!(cnf.contains(&format!("\n{option} ")), "{version}:\n{cnf}");
        assert!(!cnf.contains(other), "{version}:\n{cnf}");
    }
}

#[test]
fn the_replication_check_reads_the_names_each_server_reports() {
    // MySQL says Replica_IO_Running where MariaDB says Slave_IO_Running: a check looking for
    // MariaDB's names on MySQL found nothing and alerted every minute (issue 13).
    let (maria, _) = rendered("inventories/lab.yml");
    let check = read(
        maria.path(),
        "db2",
        "/usr/local/lib/dbfleet/replication-check",
    );
    assert!(check.contains("-E -e 'SHOW SLAVE STATUS'"), "{check}");
    assert!(
        check.contains("io=$(field Slave_IO_Running); sql=$(field Slave_SQL_Running); lag=$(field Seconds_Behind_Master)"),
        "{check}"
    );
    let (mysql, _) = rendered("tests/fixtures/good/mysql.yml");
    let check = read(
        mysql.path(),
        "m2",
        "/usr/local/lib/dbfleet/replication-check",
    );
    assert!(check.contains("-E -e 'SHOW REPLICA STATUS'"), "{check}");
    assert!(
        check.contains("io=$(field Replica_IO_Running); sql=$(field Replica_SQL_Running); lag=$(field Seconds_Behind_Source)"),
        "{check}"
    );
    assert!(!check.contains("Slave_"), "{check}");
}

#[test]
fn system_tuning_files() {
    let (dir, _) = rendered("inventories/lab.yml");
    insta::assert_snapshot!(
        "sysctl",
        read(dir.path(), "db1", "/etc/sysctl.d/60-dbfleet.conf")
    );
    insta::assert_snapshot!(
        "limits",
        read(
            dir.path(),
            "db1",
            "/etc/security/limits.d/90-dbfleet-mysql.conf"
        )
    );
    insta::assert_snapshot!(
        "logrotate",
        read(dir.path(), "db1", "/etc/logrotate.d/dbfleet-slow-log")
    );
}

#[test]
fn firewall_rules_per_backend() {
    let (lab, _) = rendered("inventories/lab.yml");
    insta::assert_snapshot!(
        "nftables_db1",
        read(lab.path(), "db1", "/etc/dbfleet/firewall.nft")
    );
    // A proxy with a virtual IP admits VRRP from the other proxy (keepalived).
    insta::assert_snapshot!(
        "nftables_proxy1",
        read(lab.path(), "proxy1", "/etc/dbfleet/firewall.nft")
    );
    insta::assert_snapshot!(
        "keepalived_proxy1",
        read(lab.path(), "proxy1", "/etc/keepalived/keepalived.conf")
    );
    let (shop, _) = rendered("tests/fixtures/good/mysql.yml");
    insta::assert_snapshot!(
        "ufw_m1",
        read(shop.path(), "m1", "/etc/dbfleet/firewall.ufw")
    );
}

#[test]
fn secret_file_is_rendered_private_with_a_placeholder() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _) = rendered("tests/fixtures/good/mysql.yml");
    let p = dir.path().join("m1/etc/dbfleet/monitor.cnf");
    let text = std::fs::read_to_string(&p).expect("monitor.cnf");
    assert!(
        text.contains("password = <secret:monitor_password>"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn graph_prints_dot_with_cross_host_needs() {
    let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-i", "inventories/lab.yml", "graph", "--limit", "db1,db2"])
        .output()
        .expect("run");
    let dot = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(dot.starts_with("digraph dbfleet {"), "{dot}");
    assert!(
        dot.contains("label=\"needs\""),
        "db2's server start needs db1's:\n{dot}"
    );
    assert!(dot.contains("label=\"notify\""), "{dot}");
    assert!(
        !dot.contains("label=\"proxy1\";"),
        "--limit keeps other hosts out:\n{dot}"
    );
}

#[test]
fn every_playbook_and_template_is_compiled_in() {
    let embedded = include_str!("../src/playbook/embedded.rs");
    for dir in ["playbooks", "templates"] {
        for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).expect("dir") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(
                embedded.contains(&format!("\"../../{dir}/{name}\"")),
                "{dir}/{name} is not in src/playbook/embedded.rs"
            );
        }
    }
}

/// A playbook folder with the real defaults plus the given playbooks.
fn playbooks_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/defaults.yml"),
        dir.path().join("defaults.yml"),
    )
    .expect("copy defaults");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write playbook");
    }
    dir
}

/// Validates the lab inventory with playbooks from `dir`; expects exit 1 and returns stderr.
fn validate_fails_with(dir: &tempfile::TempDir) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["-i", "inventories/lab.yml", "--playbooks"])
        .arg(dir.path())
        .arg("validate")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    err
}

#[test]
fn a_cycle_in_the_graph_is_an_error_naming_its_tasks() {
    let dir = playbooks_dir(&[
        (
            "a.yml",
            "roles: [all]\nafter: [b]\ntasks:\n  - name: a1\n    directory: {path: /tmp/a}\n",
        ),
        (
            "b.yml",
            "roles: [all]\nafter: [a]\ntasks:\n  - name: b1\n    directory: {path: /tmp/b}\n",
        ),
    ]);
    let err = validate_fails_with(&dir);
    assert!(err.contains("the task graph has a cycle"), "{err}");
    assert!(
        err.contains("/a1") && err.contains("/b1"),
        "names the tasks: {err}"
    );
}

#[test]
fn a_playbook_error_points_at_the_task() {
    let dir = playbooks_dir(&[(
        "x.yml",
        "roles: [all]\ntasks:\n  - name: loose command\n    command: {run: \"rm -rf /tmp/x\"}\n",
    )]);
    let err = validate_fails_with(&dir);
    assert!(err.contains("needs `creates` or `unless`"), "{err}");
    assert!(err.contains("x.yml:3:"), "points at the task's line: {err}");
}

#[test]
fn a_rolling_upgrade_may_notify_only_rolling_handlers() {
    // The upgrade is held back for the roll; a handler run now would run before it.
    let dir = playbooks_dir(&[(
        "x.yml",
        "roles: [primary, replica]\ntasks:\n  - name: pkg\n    rolling: true\n    package: {names: [cron]}\n    notify: [now]\nhandlers:\n  - name: now\n    service: {name: cron, state: restarted}\n",
    )]);
    let err = validate_fails_with(&dir);
    assert!(
        err.contains("a `rolling` task notifies `now`, which is not `rolling`"),
        "{err}"
    );
    // And `rolling` is refused where nothing rolls: a file task.
    let dir = playbooks_dir(&[(
        "y.yml",
        "roles: [primary, replica]\ntasks:\n  - name: f\n    rolling: true\n    directory: {path: /tmp/y}\n",
    )]);
    let err = validate_fails_with(&dir);
    assert!(
        err.contains("`rolling` is for handlers and package tasks"),
        "{err}"
    );
}

#[test]
fn proxy_configurations() {
    let (dir, _) = rendered("tests/fixtures/good/proxies.yml");
    let d = dir.path();
    insta::assert_snapshot!("haproxy_cfg", read(d, "lb1", "/etc/haproxy/haproxy.cfg"));
    insta::assert_snapshot!(
        "proxy_checker",
        read(d, "lb1", "/usr/local/lib/dbfleet/proxy-checker")
    );
    insta::assert_snapshot!(
        "proxy_checker_init",
        read(d, "lb1", "/etc/init.d/dbfleet-proxy-checker")
    );
    assert_eq!(
        read(d, "lb1", "/etc/haproxy/dbfleet-primary"),
        "10.0.0.11\n"
    );
    insta::assert_snapshot!(
        "keepalived_lb2",
        read(d, "lb2", "/etc/keepalived/keepalived.conf")
    );
    insta::assert_snapshot!(
        "proxysql_admin_sql",
        read(d, "sql1", "/etc/dbfleet/proxysql-admin.sql")
    );
    // The ProxySQL host gets no HAProxy, the HAProxy hosts no ProxySQL.
    assert!(!d.join("sql1/etc/haproxy/haproxy.cfg").exists());
    assert!(!d.join("lb1/etc/dbfleet/proxysql-admin.sql").exists());
}

#[test]
fn app_config_laravel_through_the_proxy_and_direct() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .args([
                "-i",
                "tests/fixtures/good/proxies.yml",
                "app-config",
                "laravel",
            ])
            .args(args)
            .output()
            .expect("run dbfleet");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    insta::assert_snapshot!("laravel_proxy", run(&[]));
    insta::assert_snapshot!("laravel_direct", run(&["--direct"]));
}

#[test]
fn backup_scripts_and_schedules() {
    let (dir, _) = rendered("tests/fixtures/good/backups.yml");
    let d = dir.path();
    insta::assert_snapshot!(
        "backup_job_logical",
        read(d, "db2", "/usr/local/lib/dbfleet/backup-mysql-daily")
    );
    insta::assert_snapshot!(
        "backup_cron_db2",
        read(d, "db2", "/etc/cron.d/dbfleet-backup")
    );
    insta::assert_snapshot!(
        "backup_verify",
        read(d, "backup1", "/usr/local/lib/dbfleet/backup-verify")
    );
    insta::assert_snapshot!(
        "backup_verify_cron",
        read(d, "backup1", "/etc/cron.d/dbfleet-backup-verify")
    );
    insta::assert_snapshot!(
        "backup_restore_helper",
        read(d, "db1", "/usr/local/lib/dbfleet/backup-restore")
    );
    // The backup server's host key: served on backup1, pinned on the hosts that reach it.
    insta::assert_snapshot!(
        "backup_known_hosts",
        read(d, "db2", "/etc/dbfleet/backup_known_hosts")
    );
    insta::assert_snapshot!(
        "backup_sshd_conf",
        read(d, "backup1", "/etc/ssh/sshd_config.d/dbfleet-backup.conf")
    );
    // Seed 003's offsite copy: script, schedule, and credentials as placeholders only.
    insta::assert_snapshot!(
        "backup_offsite",
        read(d, "backup1", "/usr/local/lib/dbfleet/backup-offsite")
    );
    insta::assert_snapshot!(
        "backup_offsite_cron",
        read(d, "backup1", "/etc/cron.d/dbfleet-backup-offsite")
    );
    insta::assert_snapshot!(
        "backup_offsite_env",
        read(d, "backup1", "/etc/dbfleet/backup-offsite.env")
    );
    // Jobs run where declared; the restore helper is on every database host only.
    assert!(
        !d.join("db1/usr/local/lib/dbfleet/backup-mysql-daily")
            .exists()
    );
    assert!(d.join("db2/usr/local/lib/dbfleet/backup-restore").exists());
    assert!(!d.join("mon1/usr/local/lib/dbfleet/backup-restore").exists());
}

/// Issue 14: with the monitor role on the proxies, every database host admits SSH from
/// the monitor hosts; each monitor host gets its init script, its ssh_config pinning the
/// fleet's known hosts, a copy of the inventory and a secrets file holding the replication
/// password only.
#[test]
fn failover_monitors_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/lab.yml"))
        .expect("lab.yml");
    let monitored = lab
        .replace(
            "    address: 172.29.77.31\n    roles: [proxy]",
            "    address: 172.29.77.31\n    roles: [proxy, monitor]",
        )
        .replace(
            "    address: 172.29.77.32\n    roles: [proxy]",
            "    address: 172.29.77.32\n    roles: [proxy, monitor]",
        );
    let inv = dir.path().join("monitored.yml");
    std::fs::write(&inv, &monitored).expect("write");
    let (out, _) = rendered(inv.to_str().expect("utf-8 path"));
    let fw = read(out.path(), "db1", "/etc/dbfleet/firewall.nft");
    assert!(
        fw.contains("# SSH from the failover monitors")
            && fw.contains("ip saddr 172.29.77.31 tcp dport 22 accept")
            && fw.contains("ip saddr 172.29.77.32 tcp dport 22 accept"),
        "{fw}"
    );
    insta::assert_snapshot!(
        "monitor_init_proxy1",
        read(out.path(), "proxy1", "/etc/init.d/dbfleet-monitor")
    );
    insta::assert_snapshot!(
        "monitor_ssh_config_proxy1",
        read(out.path(), "proxy1", "/etc/dbfleet/monitor/ssh_config")
    );
    assert_eq!(
        read(out.path(), "proxy1", "/etc/dbfleet/monitor/inventory.yml"),
        monitored
    );
    let secrets = read(out.path(), "proxy1", "/etc/dbfleet/monitor/secrets.json");
    let v: serde_json::Value = serde_json::from_str(&secrets).expect("secrets JSON");
    assert_eq!(
        v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["replication_password".to_string()]),
        "{secrets}"
    );
}

#[test]
fn prometheus_configuration_rules_and_exporter_files() {
    let (dir, _) = rendered("inventories/lab.yml");
    insta::assert_snapshot!(
        "prometheus_yml_backup1",
        read(dir.path(), "backup1", "/etc/prometheus/prometheus.yml")
    );
    insta::assert_snapshot!(
        "prometheus_rules_backup1",
        read(dir.path(), "backup1", "/etc/prometheus/dbfleet-rules.yml")
    );
    // Prometheus runs on the named server only; the exporters everywhere they apply.
    assert!(
        !dir.path()
            .join("db1/etc/prometheus/prometheus.yml")
            .exists()
    );
    assert!(
        !dir.path()
            .join("proxy1/etc/default/prometheus-mysqld-exporter")
            .exists()
    );
    for host in ["db1", "db2", "db3", "backup1", "proxy1", "proxy2"] {
        let node = read(dir.path(), host, "/etc/default/prometheus-node-exporter");
        assert!(
            node.contains(
                "--collector.textfile.directory=/var/lib/node_exporter/textfile_collector"
            ),
            "{host}: {node}"
        );
    }
    let cnf = read(dir.path(), "db2", "/etc/prometheus/mysqld-exporter.cnf");
    assert!(
        cnf.contains("password = <secret:exporter_password>"),
        "{cnf}"
    );
    let haproxy = read(dir.path(), "proxy1", "/etc/haproxy/haproxy.cfg");
    assert!(
        haproxy.contains("bind :8405\n\thttp-request use-service prometheus-exporter"),
        "{haproxy}"
    );
    // The exporters' ports are open to the Prometheus server only, Prometheus's to the
    // admin network.
    let nft = read(dir.path(), "db2", "/etc/dbfleet/firewall.nft");
    assert!(
        nft.contains("ip saddr 172.29.77.21 tcp dport { 9100, 9104 } accept"),
        "{nft}"
    );
    let nft = read(dir.path(), "backup1", "/etc/dbfleet/firewall.nft");
    assert!(
        nft.contains("ip saddr 172.29.77.1/32 tcp dport 9090 accept"),
        "{nft}"
    );
}

/// An operator's expression reaches the rules file as one YAML string, exactly as written:
/// quotes, braces, `#` and template-looking text cannot add a key, a rule or a line.
#[test]
fn an_operators_rule_is_quoted_into_the_rules_file() {
    let hostile = r#"up{job="node"} == 0 or vector(1) # "x" }: {{ 7*7 }} ', - alert: Evil"#;
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.yml"))
            .expect("lab.yml")
            .replace(
                "expr: 'mysql_global_status_threads_connected > 150'",
                &format!("expr: {}", serde_json::to_string(hostile).expect("json")),
            )
            .replace(
                "summary: \"over 150 of the 200 connections in use\"",
                "summary: \"{{ $labels.host }}: \\\"many\\\"\\n  evil: 1\"",
            );
    let tmp = tempfile::tempdir().expect("tempdir");
    let inv = tmp.path().join("lab.yml");
    std::fs::write(&inv, text).expect("write");
    let (dir, _) = rendered(inv.to_str().expect("utf-8"));
    let rules = read(dir.path(), "backup1", "/etc/prometheus/dbfleet-rules.yml");
    let parsed: serde_json::Value = serde_saphyr::from_str(&rules).expect("the rules file is YAML");
    let groups = parsed["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{rules}");
    let operator = groups[1]["rules"].as_array().expect("rules");
    assert_eq!(operator.len(), 1, "{rules}");
    assert_eq!(operator[0]["expr"], hostile);
    assert_eq!(
        operator[0]["annotations"]["summary"],
        "{{ $labels.host }}: \"many\"\n  evil: 1"
    );
    assert_eq!(
        operator[0].as_object().expect("rule").len(),
        5,
        "alert, expr, for, labels, annotations only: {rules}"
    );
}

/// Schedules in a zone: each cron line runs the guard first (Debian's cron has no
/// CRON_TZ), at the schedule's minutes when the zone's offset is whole hours.
#[test]
fn zoned_schedules_run_behind_the_guard() {
    let (dir, _) = rendered("tests/fixtures/good/backups_timezone.yml");
    let cron = read(dir.path(), "db2", "/etc/cron.d/dbfleet-backup");
    for line in [
        "0 * * * * root /usr/local/lib/dbfleet/cron-tz Europe/Berlin '0 22 * * *' && /usr/local/lib/dbfleet/backup-nightly run",
        "30 * * * * root /usr/local/lib/dbfleet/cron-tz Europe/Berlin '30 2 * * 0' && /usr/local/lib/dbfleet/backup-physical full",
        "30 * * * * root /usr/local/lib/dbfleet/cron-tz Europe/Berlin '30 2 * * 1-6' && /usr/local/lib/dbfleet/backup-physical differential",
    ] {
        assert!(cron.lines().any(|l| l == line), "`{line}` in:\n{cron}");
    }
    let verify = read(dir.path(), "backup1", "/etc/cron.d/dbfleet-backup-verify");
    assert!(
        verify.contains("0 * * * * root /usr/local/lib/dbfleet/cron-tz Europe/Berlin '0 6 * * 0' && /usr/local/lib/dbfleet/backup-verify"),
        "{verify}"
    );
    for host in ["db2", "backup1"] {
        let guard = read(dir.path(), host, "/usr/local/lib/dbfleet/cron-tz");
        assert!(guard.starts_with("#!/bin/sh"), "{host}");
    }
    // A half-hour zone: the guard runs every minute.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/backups_timezone.yml"),
    )
    .expect("fixture")
    .replace("timezone: Europe/Berlin", "timezone: Asia/Kolkata");
    let tmp = tempfile::tempdir().expect("tempdir");
    let inv = tmp.path().join("kolkata.yml");
    std::fs::write(&inv, text).expect("write");
    let (dir, _) = rendered(inv.to_str().expect("utf-8"));
    let cron = read(dir.path(), "db2", "/etc/cron.d/dbfleet-backup");
    assert!(
        cron.contains(
            "* * * * * root /usr/local/lib/dbfleet/cron-tz Asia/Kolkata '0 22 * * *' && "
        ),
        "{cron}"
    );
}

/// `inventory` with a `monitoring:` section (Prometheus on proxy1) and the exporter's
/// secret, written beside it in `dir`.
fn monitored(inventory: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(inventory)
        .expect("read inventory")
        .replace(
            "secrets:\n",
            "monitoring:\n  servers: [proxy1]\n\nsecrets:\n  exporter_password: { generate: 32 }\n",
        );
    let path = dir.join("monitored.yml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_galera_cluster_gets_its_alerts_and_two_writers_leaves_its_members_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = monitored("inventories/galera.yml", dir.path());
    let (out, _) = rendered(inv.to_str().expect("utf-8 path"));
    let rules = read(out.path(), "proxy1", "/etc/prometheus/dbfleet-rules.yml");
    for alert in [
        "alert: DbfleetGaleraNotReady",
        "alert: DbfleetGaleraNotSynced",
        "alert: DbfleetGaleraFlowControl",
        "alert: DbfleetGaleraQuorumLost",
        r#"mysql_global_status_wsrep_cluster_size{host="db2"} < 3"#,
        r#"mysql_global_variables_read_only{replication!="galera"} == 0"#,
    ] {
        assert!(rules.contains(alert), "{alert} missing:\n{rules}");
    }
    assert!(!rules.contains("DbfleetGroup"), "{rules}");
    let config = read(out.path(), "proxy1", "/etc/prometheus/prometheus.yml");
    assert!(
        config.contains(
            r#"labels: {host: "db1", cluster: "galera", role: "member", replication: "galera"}"#
        ),
        "{config}"
    );
    let args = read(out.path(), "db1", "/etc/default/prometheus-mysqld-exporter");
    assert!(!args.contains("replication_group_members"), "{args}");
}

#[test]
fn a_replication_group_gets_its_alerts_and_its_exporters_read_the_membership() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = monitored("inventories/group.yml", dir.path());
    let (out, _) = rendered(inv.to_str().expect("utf-8 path"));
    let rules = read(out.path(), "proxy1", "/etc/prometheus/dbfleet-rules.yml");
    for alert in [
        "alert: DbfleetGroupMemberNotOnline",
        "alert: DbfleetGroupMemberRecovering",
        "alert: DbfleetGroupNoPrimary",
        "alert: DbfleetGroupNoMajority",
    ] {
        assert!(rules.contains(alert), "{alert} missing:\n{rules}");
    }
    assert!(!rules.contains("DbfleetGalera"), "{rules}");
    for host in ["db1", "db2", "db3"] {
        let args = read(out.path(), host, "/etc/default/prometheus-mysqld-exporter");
        assert!(
            args.contains("--collect.perf_schema.replication_group_members"),
            "{host}: {args}"
        );
    }
}

/// Galera members join one at a time, in inventory order: db3's `galera member` task needs
/// db2's, which needs db1's (two joiners at once can each wait for the other's state; seen
/// in the lab after a lost quorum).
#[test]
fn galera_members_join_one_at_a_time_in_inventory_order() {
    let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-i", "inventories/galera.yml", "graph"])
        .output()
        .expect("run");
    assert!(o.status.success());
    let dot = String::from_utf8_lossy(&o.stdout);
    // Node ids of the `galera member` task, per host, in the order the hosts appear.
    let mut member = std::collections::BTreeMap::new();
    let mut host = String::new();
    for line in dot.lines() {
        if let Some(h) = line.trim().strip_prefix("label=\"") {
            host = h.trim_end_matches("\";").to_string();
        } else if line.contains("[label=\"galera member\\n") {
            let id = line.trim().split(' ').next().expect("id").to_string();
            member.insert(host.clone(), id);
        }
    }
    let edge = |a: &str, b: &str| {
        format!(
            "  {} -> {} [color=blue, label=\"needs\"];",
            member[a], member[b]
        )
    };
    for (before, after) in [("db1", "db2"), ("db2", "db3")] {
        assert!(
            dot.lines().any(|l| l == edge(before, after)),
            "{after}'s join does not wait for {before}'s:\n{dot}"
        );
    }
}
