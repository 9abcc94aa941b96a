//! `directory`: a folder with owner and mode (parents are created as needed, root-owned).

use super::{Action, Assessment, q};

#[derive(Debug, Clone)]
pub struct DirRes {
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

impl DirRes {
    pub fn state(&self) -> String {
        format!(
            "directory mode={:04o} owner={} group={}",
            self.mode, self.owner, self.group
        )
    }
    /// Prints `dir MODE OWNER GROUP`, `other KIND` or `absent`.
    pub fn probe(&self) -> String {
        let p = q(&self.path);
        format!(
            "if [ -d {p} ] && [ ! -L {p} ]; then stat -c 'dir %a %U %G' {p}; \
             elif [ -e {p} ]; then printf 'other %s\\n' \"$(stat -c %F {p} | tr ' ' _)\"; else echo absent; fi"
        )
    }
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let line = facts.lines().next().unwrap_or("").trim();
        let w: Vec<&str> = line.split_whitespace().collect();
        let (action, summary, before) = match w.as_slice() {
            ["absent"] => (
                Action::Create,
                format!(
                    "create folder {} ({:04o} {}:{})",
                    self.path, self.mode, self.owner, self.group
                ),
                "absent".to_string(),
            ),
            ["other", kind] => {
                return Err(format!(
                    "{} exists and is a {kind}, not a folder",
                    self.path
                ));
            }
            ["dir", mode, owner, group] => {
                let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode}"))?;
                let before = format!("directory mode={mode:04o} owner={owner} group={group}");
                if before == self.state() {
                    return Ok(None);
                }
                (
                    Action::Update,
                    format!(
                        "update folder {} (mode {mode:04o} {owner}:{group} → {:04o} {}:{})",
                        self.path, self.mode, self.owner, self.group
                    ),
                    before,
                )
            }
            _ => return Err(format!("unexpected directory probe output: {line:?}")),
        };
        Ok(Some(Assessment {
            action,
            summary,
            diff: None,
            before,
            notes: Vec::new(),
        }))
    }
    pub fn apply_script(&self) -> String {
        let p = q(&self.path);
        format!(
            "set -eu\nmkdir -p {p}\nchown {}:{} {p}\nchmod {:04o} {p}\n",
            q(&self.owner),
            q(&self.group),
            self.mode
        )
    }
}
