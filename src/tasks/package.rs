//! `package`: Debian packages present or absent, through apt, and optionally at a version.
//!
//! Installs never run `apt-get update`: hosts install from their apt cache and configured
//! sources as they are (the lab's cache is warmed when its image is built), so a plan's
//! package versions do not drift between plan and apply.
//!
//! A version (`version:`, the database playbook's `server_version`) applies to every
//! named package, all built from one source package (the server's). It is compared with
//! the first name's installed version by Debian's rules (Debian Policy §5.6.12, the
//! `debversion` crate): newer is an upgrade (`~`), equal is nothing, older is refused
//! (dbfleet never downgrades a server: MariaDB KB "Downgrading MariaDB" supports none
//! between majors and guarantees none between point releases), and so is a different
//! major (10.11 to 11.4: a major upgrade has its own steps, replicas first, and dbfleet
//! does not roll one yet). A version the host's apt sources do not offer is refused at
//! plan time.

use debversion::Version;

use super::{Action, Assessment, q};

/// The version a package task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Whatever is installed (installed from the sources' candidate when absent).
    Installed,
    /// The newest version the host's apt sources offer.
    Latest,
    /// This Debian version (checked by `inventory::vartype::is_debian_version`).
    Exact(String),
}

#[derive(Debug, Clone)]
pub struct PkgRes {
    pub names: Vec<String>,
    pub present: bool,
    pub version: Want,
}

/// `MAJOR.MINOR` of a Debian version's upstream part (`1:10.11.19-0+deb12u1` → `10.11`).
fn major(v: &Version) -> String {
    v.upstream_version
        .split(['.', '+', '~'])
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
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
    /// Prints `NAME<TAB>STATUS-ABBREV<TAB>VERSION` per known package and, with a version
    /// wanted, `available<TAB>VERSION` per version the apt sources offer of the first name.
    pub fn probe(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| q(n)).collect();
        let mut p = format!(
            "dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' {} 2>/dev/null || true",
            names.join(" ")
        );
        if self.version != Want::Installed
            && let Some(first) = names.first()
        {
            p.push_str(&format!(
                "\napt-cache madison {first} 2>/dev/null | awk -F'|' '{{gsub(/ /, \"\", $2); print \"available\\t\" $2}}' || true"
            ));
        }
        p
    }

    /// The version to install (`None`: the sources' candidate), from the probe's facts.
    ///
    /// Errors: a version the sources do not offer, a downgrade or a major upgrade, each
    /// saying why (module docs).
    fn wanted(&self, facts: &str, installed: Option<&str>) -> Result<Option<Version>, String> {
        let available: Vec<Version> = facts
            .lines()
            .filter_map(|l| l.strip_prefix("available\t"))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        let name = self.names.first().map(String::as_str).unwrap_or("");
        let offered = || {
            available
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let want = match &self.version {
            Want::Installed => return Ok(None),
            Want::Latest => available.iter().max().cloned().ok_or_else(|| {
                format!("the apt sources of this host offer no version of {name}")
            })?,
            Want::Exact(v) => {
                let v: Version = v
                    .parse()
                    .map_err(|e| format!("`{v}` is not a Debian version: {e}"))?;
                if !available.contains(&v) {
                    return Err(format!(
                        "{name} {v} is not offered by this host's apt sources (offered: {}); add the source that has it, or choose one of those",
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            offered()
                        }
                    ));
                }
                v
            }
        };
        if let Some(inst) = installed.and_then(|i| i.parse::<Version>().ok()) {
            if want < inst {
                return Err(format!(
                    "{name} {inst} is installed and {want} is older: dbfleet does not downgrade a server (rebuild it from a backup instead)"
                ));
            }
            if want > inst && major(&want) != major(&inst) {
                return Err(format!(
                    "{name} {inst} to {want} is a major upgrade ({} to {}): dbfleet rolls point releases only; upgrade replicas first by hand, then switch over",
                    major(&inst),
                    major(&want)
                ));
            }
        }
        Ok(Some(want))
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
        if self.present && todo.is_empty() {
            // Everything is there: at the wanted version?
            let first = self.names.first().map(String::as_str).unwrap_or("");
            let inst = installed
                .iter()
                .find(|(i, _)| *i == first || i.split(':').next() == Some(first))
                .map(|(_, v)| *v);
            let Some(want) = self.wanted(facts, inst)? else {
                return Ok(None);
            };
            if inst.and_then(|i| i.parse::<Version>().ok()).as_ref() == Some(&want) {
                return Ok(None);
            }
            return Ok(Some(Assessment {
                action: Action::Update,
                summary: format!(
                    "upgrade {} from {} to {want}",
                    self.names.join(" "),
                    inst.unwrap_or("?")
                ),
                diff: None,
                before,
                notes: Vec::new(),
            }));
        }
        if todo.is_empty() {
            return Ok(None);
        }
        if self.present {
            // A fresh install at a version the sources lack fails now, not mid-apply.
            self.wanted(facts, None)?;
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
    /// Installs or upgrades (an exact version: every name as `NAME=VERSION`; `latest`: the
    /// sources' candidate, the newest unless an apt pin of the operator's says otherwise)
    /// or removes.
    pub fn apply_script(&self) -> String {
        let names: Vec<String> = self
            .names
            .iter()
            .map(|n| match (&self.version, self.present) {
                (Want::Exact(v), true) => q(&format!("{n}={v}")),
                _ => q(n),
            })
            .collect();
        let verb = if self.present {
            "install --no-install-recommends"
        } else {
            "remove"
        };
        // Debian's mysql-server postinst initializes an empty data folder with an init file
        // that ends in SHUTDOWN; MySQL 9.7 sometimes takes that shutdown before its system
        // views exist and leaves the folder unusable ("System views initialization failed":
        // seen in the lab once in about twenty fresh installs). When that is what happened
        // (the folder holds only that initialization: Debian's debian-5.7.flag, written after
        // a successful one, is absent, and the error log's last lines say so), the folder is
        // emptied and the postinst runs again, once. Any other failure stays a failure.
        let repair = if self.present && self.names.iter().any(|n| n == "mysql-server") {
            "if [ ! -e /var/lib/mysql/debian-5.7.flag ] && tail -n 30 /var/log/mysql/error.log 2>/dev/null | grep -q 'System views initialization failed'; then              find /var/lib/mysql -mindepth 1 -delete && dpkg --configure -a >> /tmp/.dbfleet-apt.log 2>&1 && exit 0; fi; "
        } else {
            ""
        };
        format!(
            "set -eu\nexport DEBIAN_FRONTEND=noninteractive\n\
             apt-get {verb} -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {} \
             > /tmp/.dbfleet-apt.log 2>&1 || {{ {repair}tail -n 20 /tmp/.dbfleet-apt.log >&2; exit 1; }}\n",
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
            version: Want::Installed,
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

    #[test]
    fn only_a_failed_mysql_server_initialization_is_repaired() {
        let p = |names: &[&str], present: bool| PkgRes {
            names: names.iter().map(|n| n.to_string()).collect(),
            present,
            version: Want::Installed,
        };
        let s = p(&["mysql-server", "mysql-client"], true).apply_script();
        let repair = s.find("System views initialization failed").unwrap();
        // Emptied only when no initialization ever succeeded there.
        assert!(s[..repair].contains("[ ! -e /var/lib/mysql/debian-5.7.flag ]"));
        assert!(s.contains("dpkg --configure -a"));
        for other in [p(&["haproxy"], true), p(&["mysql-server"], false)] {
            assert!(!other.apply_script().contains("/var/lib/mysql"));
        }
    }

    fn server(want: Want) -> PkgRes {
        PkgRes {
            names: vec!["mariadb-server".into(), "mariadb-client".into()],
            present: true,
            version: want,
        }
    }

    const OFFERED: &str = "available\t1:10.11.19-0+deb12u1\navailable\t1:10.11.18-0+deb12u1\n";

    fn installed(v: &str) -> String {
        format!("mariadb-server\tii \t{v}\nmariadb-client\tii \t{v}\n{OFFERED}")
    }

    #[test]
    fn a_newer_point_release_is_an_upgrade_and_the_same_is_nothing() {
        let p = server(Want::Exact("1:10.11.19-0+deb12u1".into()));
        let a = p
            .assess(&installed("1:10.11.18-0+deb12u1"))
            .unwrap()
            .unwrap();
        assert_eq!(a.action, Action::Update);
        assert_eq!(
            a.summary,
            "upgrade mariadb-server mariadb-client from 1:10.11.18-0+deb12u1 to 1:10.11.19-0+deb12u1"
        );
        assert!(
            p.assess(&installed("1:10.11.19-0+deb12u1"))
                .unwrap()
                .is_none()
        );
        // `latest` is the newest offered, whatever order apt lists them in.
        let l = server(Want::Latest);
        assert!(
            l.assess(&installed("1:10.11.18-0+deb12u1"))
                .unwrap()
                .is_some()
        );
        assert!(
            l.assess(&installed("1:10.11.19-0+deb12u1"))
                .unwrap()
                .is_none()
        );
        assert!(p.apply_script().contains(
            "'mariadb-server=1:10.11.19-0+deb12u1' 'mariadb-client=1:10.11.19-0+deb12u1'"
        ));
        // `installed` never upgrades.
        assert!(
            server(Want::Installed)
                .assess(&installed("1:10.11.18-0+deb12u1"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn downgrades_major_upgrades_and_versions_not_offered_are_refused() {
        let down = server(Want::Exact("1:10.11.18-0+deb12u1".into()));
        let e = down.assess(&installed("1:10.11.19-0+deb12u1")).unwrap_err();
        assert!(e.contains("does not downgrade"), "{e}");
        let facts = format!(
            "{}available\t1:11.4.5-1\n",
            installed("1:10.11.19-0+deb12u1")
        );
        let e = server(Want::Exact("1:11.4.5-1".into()))
            .assess(&facts)
            .unwrap_err();
        assert!(e.contains("major upgrade (10.11 to 11.4)"), "{e}");
        let e = server(Want::Exact("1:10.11.20-0+deb12u1".into()))
            .assess(&installed("1:10.11.19-0+deb12u1"))
            .unwrap_err();
        assert!(e.contains("not offered"), "{e}");
        // On a fresh host too, before anything is installed.
        let e = server(Want::Exact("1:10.11.20-0+deb12u1".into()))
            .assess(OFFERED)
            .unwrap_err();
        assert!(e.contains("not offered"), "{e}");
    }
}
