//! `command`: shell text run on the host, guarded by `creates` (a path) or `unless` (a
//! check that exits 0 when nothing is to do), so it stays idempotent. A command without a
//! guard is refused when playbooks are resolved.

use super::{Action, Assessment, q};

#[derive(Debug, Clone)]
pub struct CmdRes {
    pub name: String,
    pub run: String,
    pub creates: Option<String>,
    pub unless: Option<String>,
}

impl CmdRes {
    pub fn state(&self) -> String {
        "done".into()
    }
    /// Prints `skip` or `run`.
    pub fn probe(&self) -> String {
        match (&self.creates, &self.unless) {
            (Some(p), _) => format!("[ -e {} ] && echo skip || echo run", q(p)),
            (None, Some(u)) => {
                format!("( {u}\n) >/dev/null 2>&1 </dev/null && echo skip || echo run")
            }
            (None, None) => "echo run".into(),
        }
    }
    pub fn assess(&self, facts: &str) -> Option<Assessment> {
        (facts.trim() != "skip").then(|| Assessment {
            action: Action::Run,
            summary: format!("run {}", self.name),
            diff: None,
            before: "pending".into(),
            notes: Vec::new(),
        })
    }
    /// The command in a subshell: an `exit` or `exec` in it ends the command, not the
    /// script, so what the apply appends (a handler's pending marker cleared) still runs;
    /// its failure still fails the script (`set -e`).
    pub fn apply_script(&self) -> String {
        format!("set -eu\n(\n{}\n)\n", self.run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: &str) -> (bool, String) {
        let c = CmdRes {
            name: "t".into(),
            run: cmd.into(),
            creates: None,
            unless: None,
        };
        // What the apply sends for a handler: the command, then the marker cleared.
        let script = format!("{}echo cleared\n", c.apply_script());
        let o = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// A handler's command that ends with `exit 0` or `exec` left its pending marker
    /// behind, and the next plan ran it again (seen with `reload prometheus`).
    #[test]
    fn what_follows_a_command_runs_after_its_exit_or_exec() {
        assert_eq!(run("exit 0"), (true, "cleared\n".into()));
        assert_eq!(run("exec true"), (true, "cleared\n".into()));
        assert_eq!(run("echo done"), (true, "done\ncleared\n".into()));
        // A failure still stops it: the marker stays for the next apply.
        assert_eq!(run("false"), (false, String::new()));
        assert_eq!(run("exit 3"), (false, String::new()));
    }
}
