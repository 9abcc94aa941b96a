//! Hostile and malformed input (issue 11): every case exits 1 with a diagnostic, never a
//! panic (101), never clap's 2 (which CI reads as "changes pending"), and nothing of it
//! reaches a shell, an option file or SQL unchecked.

use std::process::{Command, Output};

fn dbfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run dbfleet")
}

#[test]
fn usage_errors_exit_1_not_2() {
    for args in [
        &["plan", "--detailed-exitcode", "--bogus"][..],
        &["--forks", "many", "validate"],
        &[],
        &["no-such-verb"],
    ] {
        let o = dbfleet(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}:\n{stderr}");
        assert!(!stderr.is_empty(), "{args:?} says why");
    }
    for args in [&["--help"][..], &["--version"]] {
        assert_eq!(dbfleet(args).status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn an_error_past_column_65535_is_a_diagnostic_not_a_panic() {
    // A one-line JSON inventory of 1,000 hosts with one typo near its end.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = Vec::new();
    for i in 0..1000 {
        let role = if i == 0 { "primary" } else { "replica" };
        let typo = if i == 999 {
            ", \"rolez\": [\"replica\"]"
        } else {
            ""
        };
        hosts.push(format!(
            "\"db{i}\": {{\"address\": \"10.0.{}.{}\", \"roles\": [\"{role}\"], \"server_id\": {}{typo}}}",
            i / 250,
            i % 250 + 1,
            i + 1
        ));
    }
    let text = format!(
        "{{\"fleet\": {{\"name\": \"t\", \"flavor\": \"mariadb\", \"version\": \"10.11\"}}, \"hosts\": {{{}}}}}",
        hosts.join(", ")
    );
    assert!(text.len() > 65_535);
    let inv = dir.path().join("wide.json");
    std::fs::write(&inv, &text).expect("write");
    let o = dbfleet(&["-i", inv.to_str().expect("utf-8"), "validate"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let col = text.find("\"rolez\"").expect("typo") + 1;
    assert!(
        stderr.contains(&format!("wide.json:1:{col}")),
        "names file:line:col:\n{stderr}"
    );
    assert!(stderr.contains("unknown key `rolez`"), "{stderr}");
}

#[test]
fn a_device_or_a_pipe_is_no_inventory() {
    for path in ["/dev/zero", "/dev/urandom"] {
        let o = Command::new("timeout")
            .args(["10", env!("CARGO_BIN_EXE_dbfleet"), "-i", path, "validate"])
            .env("NO_COLOR", "1")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{path}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{path}: {stderr}");
    }
}

#[test]
fn a_template_that_loops_forever_runs_out_of_fuel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("mkdir");
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")).expect("templates")
    {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, templates.join(p.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(
        templates.join("limits.conf.j2"),
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    let o = Command::new("timeout")
        .args(["60", env!("CARGO_BIN_EXE_dbfleet")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["-i", "inventories/lab.yml", "--templates"])
        .arg(&templates)
        .args(["plan", "--offline", "--out-dir"])
        .arg(&out)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ran out of fuel"), "{stderr}");
    assert!(stderr.contains("limits.conf.j2:1:"), "{stderr}");
}

#[test]
fn two_tasks_of_one_host_with_one_name_are_refused_at_the_second() {
    // Plans, `notify` and `after` links name a task by host and name: a second task of the
    // same name silently took the first one's place in the graph.
    let dir = tempfile::tempdir().expect("tempdir");
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir(&playbooks).expect("mkdir");
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks")).expect("playbooks")
    {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, playbooks.join(p.file_name().expect("name"))).expect("copy");
    }
    let common = playbooks.join("common.yml");
    let text = std::fs::read_to_string(&common).expect("read");
    let text = text.replacen(
        "  - name: dbfleet folder\n",
        "  - name: base packages\n    package:\n      names: [curl]\n\n  - name: dbfleet folder\n",
        1,
    );
    std::fs::write(&common, &text).expect("write");
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "- name: base packages")
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("second task");
    let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .args(["-i", "inventories/lab.yml", "--playbooks"])
        .arg(&playbooks)
        .arg("validate")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a second task named `base packages`"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("common.yml:{line}:")), "{stderr}");
}
