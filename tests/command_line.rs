//! The command line as an operator meets it (issue 15): shell completions and the manual
//! page, `--limit` patterns and "did you mean", unknown tags refused, and no colour where a
//! terminal cannot show it. Runs the real binary; no host is contacted (`--offline`,
//! `validate`).

use std::process::{Command, Output};

fn dbfleet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbfleet"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().expect("run dbfleet")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SUBCOMMANDS: [&str; 6] = [
    "plan",
    "apply",
    "switchover",
    "failover",
    "rebuild",
    "backup",
];

#[test]
fn completions_for_bash_zsh_and_fish_name_every_command_and_bash_parses_its_script() {
    for shell in ["bash", "zsh", "fish"] {
        let o = dbfleet(&["completions", shell], &[]);
        assert!(o.status.success(), "{shell}: {}", text(&o.stderr));
        let script = text(&o.stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions name `{sub}`");
        }
        // fish writes long options without their dashes (`limit=`).
        assert!(script.contains("limit"), "{shell} completions name --limit");
    }
    // bash parses the script it would source (`bash -n`: syntax only, nothing runs).
    let script = text(&dbfleet(&["completions", "bash"], &[]).stdout);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dbfleet.bash");
    std::fs::write(&path, &script).expect("write");
    let n = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash");
    assert!(n.status.success(), "bash -n: {}", text(&n.stderr));
    // And, sourced, it registers the completion function.
    let c = Command::new("bash")
        .arg("-c")
        .arg(format!(". {} && complete -p dbfleet", path.display()))
        .output()
        .expect("bash");
    assert!(
        text(&c.stdout).contains("_dbfleet"),
        "complete -p dbfleet: {}{}",
        text(&c.stdout),
        text(&c.stderr)
    );
}

#[test]
fn the_manual_page_renders_with_man() {
    let o = dbfleet(&["man"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with(".ie"),
        "roff: {}",
        text(&o.stdout)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("dbfleet.1");
    std::fs::write(&page, &o.stdout).expect("write");
    let m = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    let shown = text(&m.stdout);
    assert!(m.status.success(), "man -l: {}", text(&m.stderr));
    for part in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "--limit",
        "switchover",
        "DBFLEET_LOG",
    ] {
        assert!(shown.contains(part), "the page shows {part}:\n{shown}");
    }
}

/// The hosts an offline plan with `--limit PATTERN` covers ("N hosts" of its last line).
fn limited(pattern: &str) -> (i32, String, String) {
    let o = dbfleet(
        &[
            "-i",
            "inventories/lab.yml",
            "--limit",
            pattern,
            "plan",
            "--offline",
        ],
        &[],
    );
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

#[test]
fn limit_takes_names_globs_roles_and_clusters_and_suggests_the_nearest() {
    for (pattern, hosts) in [
        ("db2", 1),
        ("db*", 3),
        ("db[12]", 2),
        ("role:proxy", 2),
        ("role:replica", 2),
        ("cluster:lab", 6),
        ("db1,role:proxy", 3),
    ] {
        let (code, out, err) = limited(pattern);
        assert_eq!(code, 0, "--limit {pattern}: {err}");
        let noun = if hosts == 1 { "host" } else { "hosts" };
        assert!(
            out.contains(&format!("Offline check passed: {hosts} {noun},")),
            "--limit {pattern} selects {hosts} hosts:\n{out}"
        );
    }
    for (pattern, help) in [
        ("backup", "did you mean `backup1`?"),
        ("role:proxi", "did you mean `role:proxy`?"),
        ("cluster:lb", "did you mean `cluster:lab`?"),
        (
            "web*",
            "a host name, a glob (`db*`), `role:NAME` or `cluster:NAME`",
        ),
    ] {
        let (code, out, err) = limited(pattern);
        assert_eq!(code, 1, "--limit {pattern} is an error: {out}");
        assert!(
            err.contains(&format!("--limit `{pattern}` selects no host")) && err.contains(help),
            "--limit {pattern}: {err}"
        );
    }
}

#[test]
fn an_unknown_tag_is_an_error_not_an_empty_plan() {
    let o = dbfleet(
        &["-i", "inventories/lab.yml", "--tags", "confg", "validate"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("--tags names `confg`, which no task has")
            && err.contains("did you mean `config`?"),
        "{err}"
    );
    let o = dbfleet(
        &[
            "-i",
            "inventories/lab.yml",
            "--tags",
            "config,tls",
            "validate",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// stderr of an error, run under a pseudo-terminal (`script`) with `TERM` as given.
fn on_a_terminal(term: &str) -> String {
    let o = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} -i tests/fixtures/bad/syntax.yml validate",
            env!("CARGO_BIN_EXE_dbfleet")
        ))
        .arg("/dev/null")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .env("TERM", term)
        .output()
        .expect("script");
    text(&o.stdout)
}

#[test]
fn a_dumb_terminal_gets_no_colour() {
    // On a capable terminal the diagnostic is coloured, so the check below means something.
    assert!(on_a_terminal("xterm-256color").contains("\x1b["));
    let dumb = on_a_terminal("dumb");
    assert!(!dumb.contains("\x1b["), "TERM=dumb got escapes: {dumb:?}");
    assert!(dumb.contains("syntax.yml"), "{dumb}");
}

/// A new inventory that declares no secret learns every secret its hosts need from one
/// `validate`, not one per run (found writing README's tour: three runs to learn three).
#[test]
fn validate_names_every_undeclared_secret_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("inventory.yml");
    std::fs::write(
        &inv,
        "fleet: { name: shop, flavor: mariadb, version: \"10.11\", ssh: { user: root } }\n\
         hosts:\n  db1: { address: 10.0.0.11, roles: [primary], server_id: 1 }\n\
         \x20 db2: { address: 10.0.0.12, roles: [replica], server_id: 2 }\n\
         \x20 proxy1: { address: 10.0.0.31, roles: [proxy] }\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .env("NO_COLOR", "1")
        .arg("-i")
        .arg(&inv)
        .arg("validate")
        .output()
        .expect("run dbfleet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for name in [
        "backup_password",
        "monitor_password",
        "replication_password",
    ] {
        assert!(
            stderr.contains(&format!("`{name}`")),
            "{name} not named:\n{stderr}"
        );
    }
    let flat = stderr
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(flat.contains("not declared under `secrets:`"), "{stderr}");
}
