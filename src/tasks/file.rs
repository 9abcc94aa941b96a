//! File kinds: `template` and `copy` (a file with given content, owner and mode) and
//! `file: {state: absent}`.
//!
//! Writes are atomic (DESIGN.md "Files"): the content goes to a temp file in the same
//! folder (created 0600 by mktemp, so a secret is never readable by others even for a
//! moment), is fsynced, checked against its sha256, given owner and mode, then renamed
//! over the target, and the folder is fsynced. A killed apply leaves the old file or the
//! new one, never a truncated one; a leftover `.dbfleet-tmp.*` (ignored by MariaDB's
//! `!includedir`, which reads `*.cnf` only) is removed by the next write in that folder.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{Action, Assessment, q};

/// Largest file whose content is read back for a diff, in bytes; larger ones are compared
/// by digest only.
pub const MAX_DIFF_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone)]
pub struct FileRes {
    /// "template" or "copy".
    pub kind: crate::tasks::Kind,
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// The content holds a secret: no diff, no content in any output, mode must be private.
    pub sensitive: bool,
    /// Checks the candidate before the rename (`%s` = the temp file); see `FileSpec`.
    pub validate: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AbsentRes {
    pub path: String,
}

/// A file's state as probed.
#[derive(Debug, Clone, PartialEq)]
pub enum Probed {
    Absent,
    /// Something that is not a regular file (a folder, a socket).
    NotFile(String),
    Present {
        mode: u32,
        owner: String,
        group: String,
        sha256: String,
        content: Option<Vec<u8>>,
    },
}

impl Probed {
    pub fn sha_or_absent(&self) -> String {
        match self {
            Probed::Present { sha256, .. } => sha256.clone(),
            Probed::Absent => "absent".into(),
            Probed::NotFile(k) => format!("not-a-file:{k}"),
        }
    }
    fn state(&self) -> String {
        match self {
            Probed::Absent => "absent".into(),
            Probed::NotFile(k) => format!("not-a-file {k}"),
            Probed::Present {
                mode,
                owner,
                group,
                sha256,
                ..
            } => {
                format!("file mode={mode:04o} owner={owner} group={group} sha256={sha256}")
            }
        }
    }
}

/// The probe: `absent`, `other KIND`, or `present MODE OWNER GROUP SIZE SHA256` followed,
/// when `with_content` and the file is small, by `content BASE64`.
pub fn probe(path: &str, with_content: bool) -> String {
    let p = q(path);
    // A file whose content comes back (small, not secret) needs no digest from the host:
    // `parse` computes it from the content. Fewer processes per file: plans probe dozens.
    let small = if with_content {
        format!("[ \"$4\" -le {MAX_DIFF_BYTES} ]")
    } else {
        "false".into()
    };
    format!(
        "if [ -f {p} ] && [ ! -L {p} ]; then set -- $(stat -c '%a %U %G %s' {p}); \
           if {small}; then printf 'present %s %s %s %s -\\n' \"$@\"; printf 'content %s\\n' \"$(base64 -w0 < {p})\"; \
           else printf 'present %s %s %s %s %s\\n' \"$@\" \"$(sha256sum < {p} | cut -c1-64)\"; fi; \
         elif [ -e {p} ] || [ -L {p} ]; then printf 'other %s\\n' \"$(stat -c %F {p} | tr ' ' _)\"; else echo absent; fi"
    )
}

/// Parses [`probe`] output.
pub fn parse(facts: &str) -> Result<Probed, String> {
    let mut lines = facts.lines();
    let first = lines.next().unwrap_or("").trim();
    let mut words = first.split_whitespace();
    match words.next() {
        Some("absent") => Ok(Probed::Absent),
        Some("other") => Ok(Probed::NotFile(
            words.next().unwrap_or("unknown").to_string(),
        )),
        Some("present") => {
            let w: Vec<&str> = words.collect();
            if w.len() != 5 {
                return Err(format!("unexpected file probe output: {first}"));
            }
            let mode = u32::from_str_radix(w[0], 8).map_err(|_| format!("bad mode {}", w[0]))?;
            let content = lines
                .find_map(|l| l.strip_prefix("content "))
                .map(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()))
                .transpose()
                .map_err(|e| format!("bad content encoding: {e}"))?;
            // `-`: the host sent the content instead of its digest.
            let sha256 = match (w[4], &content) {
                ("-", Some(c)) => sha256_hex(c),
                ("-", None) => {
                    return Err(format!(
                        "file probe sent neither digest nor content: {first}"
                    ));
                }
                (d, _) => d.to_string(),
            };
            Ok(Probed::Present {
                mode,
                owner: w[1].into(),
                group: w[2].into(),
                sha256,
                content,
            })
        }
        _ => Err(format!("unexpected file probe output: {first:?}")),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl FileRes {
    pub fn sha256(&self) -> String {
        sha256_hex(&self.content)
    }
    pub fn state(&self) -> String {
        format!(
            "file mode={:04o} owner={} group={} sha256={}",
            self.mode,
            self.owner,
            self.group,
            self.sha256()
        )
    }

    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let cur = parse(facts)?;
        let before = cur.state();
        if before == self.state() {
            return Ok(None);
        }
        let (action, summary, diff) = match &cur {
            Probed::Absent => (
                Action::Create,
                format!(
                    "create {} ({} bytes, {:04o} {}:{})",
                    self.path,
                    self.content.len(),
                    self.mode,
                    self.owner,
                    self.group
                ),
                (!self.sensitive).then(|| unified_diff(&self.path, b"", &self.content, true)),
            ),
            Probed::NotFile(k) => (
                Action::Update,
                format!("replace {} ({k}) with a file", self.path),
                None,
            ),
            Probed::Present {
                mode,
                owner,
                group,
                sha256,
                content,
            } => {
                let mut what = Vec::new();
                if *sha256 != self.sha256() {
                    what.push("content".to_string());
                }
                if *mode != self.mode {
                    what.push(format!("mode {mode:04o} → {:04o}", self.mode));
                }
                if owner != &self.owner || group != &self.group {
                    what.push(format!(
                        "owner {owner}:{group} → {}:{}",
                        self.owner, self.group
                    ));
                }
                let diff = if self.sensitive || *sha256 == self.sha256() {
                    None
                } else {
                    content
                        .as_ref()
                        .map(|old| unified_diff(&self.path, old, &self.content, false))
                };
                (
                    Action::Update,
                    format!("update {} ({})", self.path, what.join(", ")),
                    diff,
                )
            }
        };
        Ok(Some(Assessment {
            action,
            summary,
            diff,
            before,
            notes: Vec::new(),
        }))
    }
}

impl FileRes {
    /// The atomic write script (see the module docs). `guard`: the sha256 (or `absent`)
    /// the target must still have; `before_change`: run after every check, right before
    /// the rename (the notify markers).
    pub fn apply_script(&self, guard: Option<&str>, before_change: &str) -> String {
        let (path, content, mode, owner, group) = (
            &self.path,
            &self.content,
            self.mode,
            &self.owner,
            &self.group,
        );
        let validate = self.validate.as_deref();
        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
        let wrapped: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        let p = q(path);
        // Stale: the target is neither what the plan saw nor already what it will hold (a
        // runbook of the same plan may have written it first: a switchover moves the
        // proxies' primary file live).
        let guard = guard.map(|g| format!(
        "cur=absent; [ -f {p} ] && cur=$(sha256sum < {p} | cut -c1-64)\n\
         if [ \"$cur\" != {g} ] && [ \"$cur\" != {new} ]; then echo \"stale: {path} changed since the plan\" >&2; exit 3; fi\n",
        g = q(g),
        new = sha256_hex(content),
    )).unwrap_or_default();
        format!(
        "set -eu\n\
         d=$(dirname {p})\n\
         [ -d \"$d\" ] || {{ echo \"folder $d does not exist\" >&2; exit 4; }}\n\
         {guard}\
         rm -f \"$d\"/.dbfleet-tmp.*\n\
         tmp=$(mktemp \"$d/.dbfleet-tmp.XXXXXX\")\n\
         trap 'rm -f \"$tmp\"' EXIT\n\
         base64 -d > \"$tmp\" <<'DBFLEET_CONTENT'\n{content}\nDBFLEET_CONTENT\n\
         [ \"$(sha256sum < \"$tmp\" | cut -c1-64)\" = {sha} ] || {{ echo 'content corrupted in transit' >&2; exit 5; }}\n\
         {validate}\
         {before_change}\
         chown {owner}:{group} \"$tmp\"\n\
         chmod {mode:04o} \"$tmp\"\n\
         sync \"$tmp\"\n\
         mv -f \"$tmp\" {p}\n\
         trap - EXIT\n\
         sync \"$d\"\n",
        content = wrapped.join("\n"),
        validate = validate
            .map(|v| format!("{} > /tmp/.dbfleet-validate.log 2>&1 || {{ echo 'validation failed ({}):' >&2; tail -n 5 /tmp/.dbfleet-validate.log >&2; exit 6; }}\n", v.replace("%s", "\"$tmp\""), v.replace('\'', "")))
            .unwrap_or_default(),
        sha = sha256_hex(content),
        owner = q(owner),
        group = q(group),
    )
    }
}

impl AbsentRes {
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        let cur = parse(facts)?;
        match cur {
            Probed::Absent => Ok(None),
            Probed::NotFile(k) => Err(format!(
                "{} is a {k}, not a file; dbfleet removes files only",
                self.path
            )),
            Probed::Present { .. } => Ok(Some(Assessment {
                action: Action::Delete,
                summary: format!("delete {}", self.path),
                diff: None,
                before: cur.state(),
                notes: Vec::new(),
            })),
        }
    }
    pub fn apply_script(&self, guard: Option<&str>, before_change: &str) -> String {
        let p = q(&self.path);
        let guard = guard.map(|g| format!(
            "cur=absent; [ -f {p} ] && cur=$(sha256sum < {p} | cut -c1-64)\n\
             if [ \"$cur\" != {g} ]; then echo \"stale: {path} changed since the plan\" >&2; exit 3; fi\n",
            g = q(g), path = self.path
        )).unwrap_or_default();
        format!("set -eu\n{guard}{before_change}rm -f {p}\nsync \"$(dirname {p})\"\n")
    }
}

/// A unified diff of two file versions (lossy UTF-8), three lines of context.
pub fn unified_diff(path: &str, old: &[u8], new: &[u8], created: bool) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
    let from = if created {
        "/dev/null".to_string()
    } else {
        format!("a{path}")
    };
    diff.unified_diff()
        .context_radius(3)
        .header(&from, &format!("b{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(content: &str, mode: u32) -> FileRes {
        FileRes {
            kind: crate::tasks::Kind::Template,
            path: "/etc/x.cnf".into(),
            content: content.as_bytes().to_vec(),
            mode,
            owner: "root".into(),
            group: "root".into(),
            sensitive: false,
            validate: None,
        }
    }

    fn present(content: &str, mode: &str) -> String {
        use base64::Engine;
        format!(
            "present {mode} root root {} {}\ncontent {}\n",
            content.len(),
            sha256_hex(content.as_bytes()),
            base64::engine::general_purpose::STANDARD.encode(content)
        )
    }

    #[test]
    fn a_probe_that_sends_content_instead_of_a_digest_gets_the_digest_computed() {
        let Probed::Present {
            sha256, content, ..
        } = parse("present 644 root root 2 -\ncontent YQo=\n").unwrap()
        else {
            panic!("present")
        };
        assert_eq!(sha256, sha256_hex(b"a\n"));
        assert_eq!(content.as_deref(), Some(&b"a\n"[..]));
        // Neither digest nor content is a probe error, not a silent match.
        assert!(parse("present 644 root root 2 -\n").is_err());
    }

    #[test]
    fn absent_file_is_a_create_with_a_diff_from_dev_null() {
        let a = res("a\n", 0o644).assess("absent\n").unwrap().unwrap();
        assert_eq!(a.action, Action::Create);
        assert!(
            a.diff
                .unwrap()
                .starts_with("--- /dev/null\n+++ b/etc/x.cnf\n")
        );
    }

    #[test]
    fn same_content_owner_and_mode_is_matched() {
        assert!(
            res("a\n", 0o644)
                .assess(&present("a\n", "644"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn content_and_mode_changes_are_named() {
        let a = res("b\n", 0o600)
            .assess(&present("a\n", "644"))
            .unwrap()
            .unwrap();
        assert_eq!(a.action, Action::Update);
        assert_eq!(a.summary, "update /etc/x.cnf (content, mode 0644 → 0600)");
        assert!(a.diff.unwrap().contains("-a\n+b\n"));
    }

    #[test]
    fn sensitive_files_get_no_diff() {
        let mut r = res("password = s3cret\n", 0o600);
        r.sensitive = true;
        let a = r
            .assess(&present("password = old\n", "600"))
            .unwrap()
            .unwrap();
        assert!(a.diff.is_none());
    }

    #[test]
    fn a_folder_where_a_file_belongs_is_reported() {
        assert_eq!(
            parse("other directory\n").unwrap(),
            Probed::NotFile("directory".into())
        );
        assert!(parse("garbage").is_err());
    }

    #[test]
    fn write_script_is_guarded_and_atomic() {
        let f = FileRes {
            kind: crate::tasks::Kind::Copy,
            path: "/etc/x.cnf".into(),
            content: b"hello\n".to_vec(),
            mode: 0o640,
            owner: "root".into(),
            group: "mysql".into(),
            sensitive: false,
            validate: None,
        };
        let s = f.apply_script(Some("absent"), "touch /m\n");
        let guard = s.find("exit 3").unwrap();
        let marker = s.find("touch /m").unwrap();
        let rename = s.find("mv -f \"$tmp\" /etc/x.cnf").unwrap();
        assert!(
            guard < marker && marker < rename,
            "guard, then notify marker, then rename:\n{s}"
        );
        assert!(
            s.contains("chmod 0640")
                && s.contains("chown root:mysql")
                && s.contains("sync \"$tmp\"")
        );
        assert!(!s.contains("hello"), "content travels base64-encoded");
    }
}
