//! `package`: Debian packages present or absent, through apt.
//!
//! Installs never run `apt-get update`: hosts install from their apt cache and configured
//! sources as they are (the lab's cache is warmed when its image is built), so a plan's
//! package versions do not drift between plan and apply.

use super::{Action, Assessment, q};

#[derive(Debug, Clone)]
pub struct PkgRes {
    pub names: Vec<String>,
    pub present: bool,
}

impl PkgRes {
    pub fn state(&self) -> String {
        let want = if self.present { "installed" } else { "absent" };
        self.names
            .iter()
            .map(|n| format!("{n}={want}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// Prints `NAME<TAB>STATUS-ABBREV<TAB>VERSION` per known package.
    pub fn probe(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| q(n)).collect();
        format!(
            "dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' {} 2>/dev/null || true",
            names.join(" ")
        )
    }
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let installed: Vec<(&str, &str)> = facts
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let (n, st, v) = (f.next()?, f.next()?, f.next().unwrap_or(""));
                st.starts_with("ii").then_some((n, v))
            })
            .collect();
        let is_installed = |n: &str| {
            installed
                .iter()
                .any(|(i, _)| *i == n || i.split(':').next() == Some(n))
        };
        let before = self
            .names
            .iter()
            .map(|n| {
                format!(
                    "{n}={}",
                    if is_installed(n) {
                        "installed"
                    } else {
                        "absent"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let todo: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| is_installed(n) != self.present)
            .collect();
        if todo.is_empty() {
            return Ok(None);
        }
        let (action, verb) = if self.present {
            (Action::Create, "install")
        } else {
            (Action::Delete, "remove")
        };
        Ok(Some(Assessment {
            action,
            summary: format!("{verb} {}", todo.join(" ")),
            diff: None,
            before,
            notes: Vec::new(),
        }))
    }
    pub fn apply_script(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| q(n)).collect();
        let verb = if self.present {
            "install --no-install-recommends"
        } else {
            "remove"
        };
        format!(
            "set -eu\nexport DEBIAN_FRONTEND=noninteractive\n\
             apt-get {verb} -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {} \
             > /tmp/.dbfleet-apt.log 2>&1 || {{ tail -n 20 /tmp/.dbfleet-apt.log >&2; exit 1; }}\n",
            names.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_packages_are_installed() {
        let p = PkgRes {
            names: vec!["cron".into(), "haproxy".into()],
            present: true,
        };
        let a = p.assess("cron\tii \t3.0pl1-162\n").unwrap().unwrap();
        assert_eq!(a.summary, "install haproxy");
        assert!(
            p.assess("cron\tii \t3.0\nhaproxy\tii \t2.6\n")
                .unwrap()
                .is_none()
        );
        // Removed but config files left ("rc") counts as absent.
        assert!(
            p.assess("cron\tii \t3.0\nhaproxy\trc \t2.6\n")
                .unwrap()
                .is_some()
        );
    }
}
