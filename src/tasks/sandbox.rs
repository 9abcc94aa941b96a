//! Unit tests' runner for the shell that tasks and runbooks generate: a scratch folder
//! holding one scripted program first on PATH (a stand-in for a server's client or reader,
//! never for an end-to-end test), and the script run under a given shell with `$FAKE_DIR`
//! naming the folder, so the program can read its answers from files and record its input.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A folder with `program` on PATH, running `body` (a `#!/bin/sh` script).
    pub fn new(program: &str, body: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = dir.path().join(program);
        std::fs::write(&fake, format!("#!/bin/sh\n{body}")).expect("fake program");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Sandbox { dir }
    }

    /// A file of the folder (`$FAKE_DIR/name`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The file's text, empty when it does not exist.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Runs `script` under `shell` (`sh`, `bash`) with the fake program first on PATH.
    pub fn run(&self, shell: &str, script: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(shell)
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .env("FAKE_DIR", self.dir.path())
            .output()
            .expect("shell")
    }
}
