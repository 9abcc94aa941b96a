//! Every statement dbfleet issues, per dialect: MariaDB 10.11 (run for real in the lab),
//! MySQL 8.0 and MySQL 8.4 (rendered here only: MySQL 8 is not installable in the lab).

use dbfleet::sql::{Dialect, SourceSpec};

fn all(d: Dialect) -> String {
    let (auth, _) = d.auth("s3cret-example");
    let src = SourceSpec {
        host: "172.29.77.11".into(),
        port: 3306,
        user: "dbfleet_repl".into(),
        password: "s3cret-example".into(),
        ssl_ca: "/etc/mysql/dbfleet-tls/ca.pem".into(),
        connect_retry: 10,
    };
    let mut v = vec![
        d.create_user("dbfleet_repl", "%", &auth, true),
        d.alter_user("app", "%", &auth, false),
        d.revoke_all("app", "%"),
        d.grant("SELECT, INSERT ON `app`.*", "app", "%"),
        d.drop_user("old", "%"),
        d.create_database("app", "utf8mb4", "utf8mb4_unicode_ci"),
        d.change_source(&src),
        d.start_replica().into(),
        d.stop_replica().into(),
        d.reset_replica_all().into(),
        d.show_replica_status().into(),
        d.wait_for_position("0-1-42", 30),
        d.set_start_position("0-1-42"),
        d.current_position().into(),
    ];
    v.extend(d.hardening());
    v.join("\n") + "\n"
}

#[test]
fn mariadb_10_11() {
    insta::assert_snapshot!(all(Dialect::MariaDb));
}

#[test]
fn mysql_8_0() {
    insta::assert_snapshot!(all(Dialect::of(dbfleet::inventory::Flavor::Mysql, "8.0")));
}

#[test]
fn mysql_8_4() {
    insta::assert_snapshot!(all(Dialect::of(dbfleet::inventory::Flavor::Mysql, "8.4")));
}

/// The topology runbooks' statements in order (switchover, failover, rejoin), per dialect.
fn runbooks(d: Dialect) -> String {
    let src = SourceSpec {
        host: "172.29.77.12".into(),
        port: 3306,
        user: "dbfleet_repl".into(),
        password: "s3cret-example".into(),
        ssl_ca: "/etc/mysql/dbfleet-tls/ca.pem".into(),
        connect_retry: 10,
    };
    dbfleet::runbooks::switchover::sequence(d, &src, true)
}

#[test]
fn runbooks_mariadb_10_11() {
    insta::assert_snapshot!(runbooks(Dialect::MariaDb));
}

#[test]
fn runbooks_mysql_8_0() {
    insta::assert_snapshot!(runbooks(Dialect::of(
        dbfleet::inventory::Flavor::Mysql,
        "8.0"
    )));
}

#[test]
fn runbooks_mysql_8_4() {
    insta::assert_snapshot!(runbooks(Dialect::of(
        dbfleet::inventory::Flavor::Mysql,
        "8.4"
    )));
}
