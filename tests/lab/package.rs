//! The Debian package (issue 28, must-show 5): `scripts/deb.sh` packages the binary this
//! test run built with cargo-deb, and the package installs on a bare lab host (a container
//! of the lab image: Debian 12 with sshd, nothing of dbfleet) with `dpkg`'s own tools;
//! there `dbfleet --version`, `man dbfleet` and bash completion work, and the package
//! removes cleanly. The package's dependencies install from the image's apt cache (no
//! network); man-db and bash-completion, which a workstation has and the bare image does
//! not, come from Debian's mirror.

use std::process::Command;

use super::support::*;

/// A container removed on drop, even when the test fails.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[test]
fn the_debian_package_installs_on_a_bare_host_with_its_manual_page_and_completions() {
    let _turn = other_lab("package");
    let built = bounded("600", "bash")
        .arg(repo().join("scripts/deb.sh"))
        .env("DEB_BIN", env!("CARGO_BIN_EXE_dbfleet"))
        .output()
        .expect("run scripts/deb.sh");
    assert!(
        built.status.success(),
        "scripts/deb.sh failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = repo().join(String::from_utf8_lossy(&built.stdout).trim());
    let control = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .args(["Package", "Version", "Depends"])
        .output()
        .expect("dpkg-deb");
    let control = String::from_utf8_lossy(&control.stdout).to_string();
    assert!(control.contains("Package: dbfleet"), "{control}");
    assert!(
        control.contains(&format!("Version: {}-1", env!("CARGO_PKG_VERSION"))),
        "{control}"
    );
    assert!(control.contains("openssh-client"), "{control}");

    // A bare host: the lab image, on Docker's default network (Debian's mirror reachable).
    let image = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .arg("image")
        .output()
        .expect("lab/lab.sh image");
    assert!(
        image.status.success(),
        "lab/lab.sh image failed: the lab tests need Docker and debootstrap and never skip.\n{}",
        String::from_utf8_lossy(&image.stderr)
    );
    // `lab.sh image` prints no tag: the newest bookworm MariaDB image is the one it just
    // made sure of (the tag carries a hash of lab/, so an older one is an older lab).
    let listed = Command::new("docker")
        .args([
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "dbfleet-lab",
        ])
        .output()
        .expect("docker images");
    let image = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|t| t.starts_with("dbfleet-lab:bookworm-mariadb-"))
        .unwrap_or_else(|| panic!("no bookworm MariaDB lab image after lab/lab.sh image"))
        .to_string();
    let host = Container(format!("dbfleet-package-{}", rand_u64() % 1_000_000));
    docker(&[
        "run",
        "-d",
        "--name",
        &host.0,
        "--entrypoint",
        "/bin/sleep",
        &image,
        "infinity",
    ]);
    assert!(
        try_exec_in(&host.0, "command -v dbfleet").is_err(),
        "the bare host has no dbfleet"
    );
    docker(&[
        "cp",
        &deb.display().to_string(),
        &format!("{}:/tmp/dbfleet.deb", host.0),
    ]);
    // The package alone first: its dependencies (openssh-client) come from the image's
    // apt cache, without the network (the image's package lists are as it was built; no
    // `apt-get update` yet). apt's --no-download refuses a local .deb ("Pathname to install
    // is not absolute"), so it is not used.
    exec_in(
        &host.0,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/dbfleet.deb > /tmp/install.log 2>&1 || { cat /tmp/install.log >&2; exit 1; }",
    );
    let version = exec_in(&host.0, "dbfleet --version");
    assert_eq!(version, format!("dbfleet {}", env!("CARGO_PKG_VERSION")));
    exec_in(
        &host.0,
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq man-db bash-completion > /tmp/tools.log 2>&1 || { cat /tmp/tools.log >&2; exit 1; }",
    );
    let man = exec_in(&host.0, "MANWIDTH=80 man -P cat dbfleet 2>&1");
    for section in ["NAME", "SYNOPSIS", "SUBCOMMANDS"] {
        assert!(
            man.contains(section),
            "`man dbfleet` has no {section}:\n{man}"
        );
    }
    assert!(man.contains("dbfleet-plan"), "{man}");
    // Bash completes the subcommands from the package's file, loaded on demand as an
    // interactive shell does.
    let words = exec_in(
        &host.0,
        r#"bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader dbfleet; complete -p dbfleet; COMP_WORDS=(dbfleet pl); COMP_CWORD=1; COMP_LINE="dbfleet pl"; COMP_POINT=10; _dbfleet dbfleet pl dbfleet; echo "${COMPREPLY[@]}"'"#,
    );
    assert!(words.contains("-F _dbfleet dbfleet"), "{words}");
    assert!(
        words
            .lines()
            .last()
            .unwrap_or("")
            .split_whitespace()
            .any(|w| w == "plan"),
        "bash completion of `dbfleet pl`: {words}"
    );
    for f in [
        "/usr/share/zsh/vendor-completions/_dbfleet",
        "/usr/share/fish/vendor_completions.d/dbfleet.fish",
    ] {
        exec_in(&host.0, &format!("test -s {f}"));
    }
    // And it leaves nothing behind.
    exec_in(&host.0, "dpkg -r dbfleet > /dev/null");
    assert!(try_exec_in(&host.0, "command -v dbfleet").is_err());
    assert!(
        exec_in(&host.0, "ls /usr/share/man/man1/dbfleet.1.gz 2>&1 || true")
            .contains("No such file")
    );
}
