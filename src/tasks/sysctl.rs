//! `sysctl`: kernel parameters, persisted in a file under /etc/sysctl.d and set live.
//!
//! Where `/proc/sys` is read-only (containers), the live value cannot be set: the plan
//! says so in a note and only the persisted file is managed, so the host converges and a
//! re-plan is empty.

use super::file::{self, FileRes};
use super::{Assessment, q};

#[derive(Debug, Clone)]
pub struct SysctlRes {
    /// The persisted file (its content is rendered from `settings`).
    pub file: FileRes,
    pub settings: Vec<(String, String)>,
}

const SPLIT: &str = "@@sysctl-live";

fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn norm(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl SysctlRes {
    pub fn state(&self) -> String {
        let live: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={}", norm(v)))
            .collect();
        format!("{} live {}", self.file.state(), live.join(" "))
    }
    /// The file probe, then per key `KEY WRITABLE VALUE`.
    pub fn probe(&self) -> String {
        let mut s = file::probe(&self.file.path, true);
        s.push_str(&format!("; echo {SPLIT}"));
        for (k, _) in &self.settings {
            let p = q(&proc_path(k));
            s.push_str(&format!("; [ -w {p} ] && w=yes || w=no; printf '%s %s %s\\n' {} $w \"$(cat {p} 2>/dev/null)\"", q(k)));
        }
        s
    }
    pub fn file_facts<'a>(&self, facts: &'a str) -> &'a str {
        facts.split(SPLIT).next().unwrap_or("")
    }
    /// Keys whose live value differs: (key, writable, current).
    fn live_diffs(&self, facts: &str) -> Vec<(String, bool, String)> {
        let live = facts.split(SPLIT).nth(1).unwrap_or("");
        let mut out = Vec::new();
        for (k, want) in &self.settings {
            let line = live
                .lines()
                .find(|l| l.split_whitespace().next() == Some(k.as_str()));
            let (w, cur) = match line {
                Some(l) => {
                    let mut it = l.splitn(3, ' ');
                    it.next();
                    (it.next() == Some("yes"), norm(it.next().unwrap_or("")))
                }
                None => (false, String::new()),
            };
            if cur != norm(want) {
                out.push((k.clone(), w, cur));
            }
        }
        out
    }
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let file_change = self.file.assess(self.file_facts(facts))?;
        let diffs = self.live_diffs(facts);
        let settable: Vec<String> = diffs
            .iter()
            .filter(|d| d.1)
            .map(|(k, _, cur)| format!("{k} {cur} → {}", norm(&self.want(k))))
            .collect();
        let unsettable: Vec<&str> = diffs
            .iter()
            .filter(|d| !d.1)
            .map(|d| d.0.as_str())
            .collect();
        if file_change.is_none() && settable.is_empty() {
            return Ok(None);
        }
        let mut a = file_change.unwrap_or_else(|| Assessment {
            action: super::Action::Update,
            summary: format!("set live values ({})", self.file.path),
            diff: None,
            before: String::new(),
            notes: Vec::new(),
        });
        if !settable.is_empty() {
            a.summary
                .push_str(&format!("; live: {}", settable.join(", ")));
        }
        if !unsettable.is_empty() {
            a.notes.push(format!(
                "live value not settable here (read-only /proc/sys): {}",
                unsettable.join(", ")
            ));
        }
        a.before = format!(
            "{} live {}",
            a.before,
            diffs
                .iter()
                .map(|d| format!("{}={}", d.0, d.2))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Ok(Some(a))
    }
    fn want(&self, key: &str) -> String {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    pub fn apply_script(&self, guard: Option<&str>, before_change: &str) -> String {
        let mut s = self.file.apply_script(guard, before_change);
        for (k, v) in &self.settings {
            let p = q(&proc_path(k));
            s.push_str(&format!(
                "if [ -w {p} ]; then printf '%s\\n' {} > {p}; fi\n",
                q(v)
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res() -> SysctlRes {
        let content = "net.core.somaxconn = 4096\n";
        SysctlRes {
            file: FileRes {
                kind: crate::tasks::Kind::Sysctl,
                path: "/etc/sysctl.d/60-dbfleet.conf".into(),
                content: content.as_bytes().to_vec(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                sensitive: false,
                validate: None,
            },
            settings: vec![("net.core.somaxconn".into(), "4096".into())],
        }
    }

    fn file_present(r: &SysctlRes) -> String {
        format!(
            "present 644 root root {} {}\n",
            r.file.content.len(),
            r.file.sha256()
        )
    }

    #[test]
    fn read_only_proc_sys_converges_on_the_file_alone() {
        let r = res();
        let facts = format!("{}{SPLIT}\nnet.core.somaxconn no 128\n", file_present(&r));
        assert!(
            r.assess(&facts).unwrap().is_none(),
            "nothing settable differs"
        );
    }

    #[test]
    fn writable_live_value_that_differs_is_a_change() {
        let r = res();
        let facts = format!("{}{SPLIT}\nnet.core.somaxconn yes 128\n", file_present(&r));
        let a = r.assess(&facts).unwrap().unwrap();
        assert!(
            a.summary.contains("live: net.core.somaxconn 128 → 4096"),
            "{}",
            a.summary
        );
    }
}
