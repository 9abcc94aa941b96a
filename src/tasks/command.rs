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
    pub fn apply_script(&self) -> String {
        format!("set -eu\n{}\n", self.run)
    }
}
