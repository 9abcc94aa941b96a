//! The plan: one value that is shown, saved and applied (Terraform's `internal/plans`).
//!
//! A [`Plan`] lists, per host, every change the apply would make, in run order. Fields are
//! either *display* (summary, diff, notes: for the operator) or *apply-relevant* (task,
//! action, before/after digests: checked when a saved plan is applied). Nothing in it is
//! secret: sensitive files carry no diff, and their digests are keyed (HMAC-SHA256 with
//! a local key) so a plan file cannot be used to test password guesses.

pub mod file;
pub mod runbook;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tasks::Action;

/// Plan file format version; a file of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// dbfleet version that made the plan.
    pub dbfleet_version: String,
    /// Inventory file as given, and the sha256 of its bytes.
    pub inventory: String,
    pub inventory_digest: String,
    /// `--limit` and `--tags` the plan was made with.
    pub limit: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub hosts: Vec<HostPlan>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// Apply-relevant: the task (unique per host) and what it does.
    pub task: String,
    pub action: Action,
    pub kind: crate::tasks::Kind,
    pub target: String,
    /// Apply-relevant: digest of the state read at plan time, `sha256:…` or
    /// `hmac-sha256:…` when sensitive.
    pub before_digest: String,
    /// Apply-relevant: digest of the desired state.
    pub after_digest: String,
    /// True for handlers (`notify`), which run after the host's other changes.
    pub handler: bool,
    /// Apply-relevant, handlers only: notified by an earlier apply that did not run it
    /// (its marker is still on the host).
    #[serde(default)]
    pub pending: bool,
    /// Display: tasks whose change notifies this handler.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified_by: Vec<String>,
    /// Display: one line.
    pub summary: String,
    /// Display: unified diff of a file's content (never for sensitive files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    pub sensitive: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Display: what the change destroys, in words ([`crate::tasks::Resource::destroys`]);
    /// None when nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroys: Option<String>,
    /// Display: held back for a rolling restart or upgrade (`crate::runbooks::rolling`):
    /// one server of its cluster at a time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolling: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub run: usize,
    /// Hosts with at least one change.
    pub hosts_changed: usize,
    pub hosts: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.hosts.iter().all(|h| h.changes.is_empty())
    }
    pub fn change_count(&self) -> usize {
        self.hosts.iter().map(|h| h.changes.len()).sum()
    }
    /// Recomputes [`Plan::summary`] from the changes.
    pub fn summarize(&mut self) {
        let mut s = Summary {
            hosts: self.hosts.len(),
            ..Summary::default()
        };
        for h in &self.hosts {
            if !h.changes.is_empty() {
                s.hosts_changed += 1;
            }
            for c in &h.changes {
                match c.action {
                    Action::Create => s.create += 1,
                    Action::Update => s.update += 1,
                    Action::Delete => s.delete += 1,
                    Action::Run => s.run += 1,
                }
            }
        }
        self.summary = s;
    }
}

/// Digest of a canonical state: `sha256:HEX`, or `hmac-sha256:HEX` keyed with `key` when
/// the state derives from a secret.
pub fn digest(state: &str, sensitive: bool, key: &[u8]) -> String {
    if sensitive {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(state.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(state.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_digests_are_keyed() {
        let plain = digest("x", false, b"k1");
        assert!(plain.starts_with("sha256:"));
        assert_eq!(
            plain,
            digest("x", false, b"k2"),
            "plain digests do not depend on the key"
        );
        let a = digest("x", true, b"k1");
        assert!(a.starts_with("hmac-sha256:"));
        assert_ne!(a, digest("x", true, b"k2"), "keyed digests do");
    }
}
