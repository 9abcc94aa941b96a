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
