//! Bad inventories: each case exits 1 with a diagnostic pointing at file:line:col, never a
//! panic. Runs the real binary; snapshots are the exact stderr an operator sees.

use std::path::Path;
use std::process::Command;

fn validate(path: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["-i", path, "validate"])
        .output()
        .expect("run dbfleet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(case: &str) {
    let path = format!("tests/fixtures/bad/{case}.yml");
    let (code, stdout, stderr) = validate(&path);
    assert_eq!(code, 1, "{case}: exit code; stderr:\n{stderr}");
    assert!(stdout.is_empty(), "{case}: nothing on stdout, got {stdout}");
    assert!(!stderr.contains("panicked"), "{case}: panic:\n{stderr}");
    assert!(
        stderr.contains(&format!("[{path}:")),
        "{case}: diagnostic names file:line:col:\n{stderr}"
    );
    insta::assert_snapshot!(case, stderr);
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() { check(stringify!($name)); }
    )*};
}

cases!(
    syntax,
    unknown_key,
    wrong_type,
    missing_field,
    duplicate_host,
    server_id_duplicate,
    server_id_range,
    no_primary,
    two_primaries,
    source_unknown,
    source_not_database,
    source_self,
    source_cycle,
    role_fields,
    unknown_role,
    unknown_variable,
    empty,
    not_utf8,
    many_problems,
    forbidden_grant,
    firewall_network,
    backup_rpo,
    backup_fields,
    backup_offsite,
    backup_offsite_rpo,
    grant_bypass,
    backup_injection,
    variable_types,
    mysql_physical_backup,
    monitoring_fields,
    monitoring_no_server,
    backup_timezone,
    backup_timezone_name,
    galera_topology,
    galera_mysql,
    group_topology,
);

#[test]
fn many_problems_reports_every_problem() {
    let (_, _, stderr) = validate("tests/fixtures/bad/many_problems.yml");
    assert!(stderr.contains("5 problems in"), "{stderr}");
}

#[test]
fn over_budget_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("huge.yml");
    let mut text = String::from("fleet: {name: t, flavor: mariadb, version: \"10.11\"}\nhosts:\n");
    while text.len() <= 1024 * 1024 {
        text.push_str(
            "# padding padding padding padding padding padding padding padding padding\n",
        );
    }
    std::fs::write(&p, text).expect("write");
    let (code, _, stderr) = validate(p.to_str().expect("utf-8 path"));
    assert_eq!(code, 1);
    assert!(stderr.contains("over the 1048576 byte budget"), "{stderr}");
    assert!(stderr.contains("huge.yml:1:1"), "{stderr}");
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let (code, _, stderr) = validate("tests/fixtures/bad/does-not-exist.yml");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("reading inventory") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn every_bad_fixture_has_a_case() {
    // A fixture added without a test case would silently test nothing.
    let listed = include_str!("cli_errors.rs");
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad"))
        .expect("fixtures")
    {
        let name = e
            .expect("entry")
            .path()
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        assert!(
            listed.contains(&format!("    {name},")),
            "fixture {name}.yml has no case"
        );
    }
}

#[test]
fn validate_prints_each_backup_jobs_worst_case_rpo() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["-i", "tests/fixtures/good/backups.yml", "validate"])
        .output()
        .expect("run dbfleet");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!(String::from_utf8_lossy(&o.stdout));
}

/// Seed 002 writes its schedules in local time: in Europe/Berlin a nightly 22:00 leaves 25
/// hours the day clocks go back, and a 02:30 full or differential skips the day they go
/// forward (the RPO check reads the schedules in the zone; `src/backup/rpo.rs`).
#[test]
fn validate_reads_zoned_schedules_across_daylight_saving_changes() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["-i", "tests/fixtures/good/backups_timezone.yml", "validate"])
        .output()
        .expect("run dbfleet");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!(String::from_utf8_lossy(&o.stdout));
}
