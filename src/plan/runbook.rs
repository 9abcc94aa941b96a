//! A runbook as a plan value: `failover`, `rejoin`, `restore`, `rebuild` and
//! `cluster-restart` build one
//! [`RunbookPlan`] that is shown (`--dry-run`), printed (`--json`), saved (`--out FILE`)
//! and executed (at once, or by `dbfleet apply FILE`), as Terraform's plan and uv's
//! `Plan` → `report_dry_run`/`execute`. The statements and scripts shown are the ones run:
//! the runbook's executor walks [`RunbookPlan::steps`] and runs each step's own text.
//!
//! A saved runbook plan is applied only while the world is as the plan saw it: `apply FILE`
//! plans the same request again and refuses ([`crate::error::Error::Stale`]) when the
//! inventory, an observed precondition ([`Observation`]) or a step differs. Nothing in it
//! is secret: a statement that needs a password holds [`SECRET_PLACEHOLDER`] instead, filled
//! in on the host's stdin at execution.

use serde::{Deserialize, Serialize};

use super::FORMAT_VERSION;

pub use crate::secrets::SECRET_PLACEHOLDER;

/// What the operator asked for: the verb and its options, enough to plan it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Runbook {
    /// `dbfleet failover [--cluster C] [--to HOST] [--force]`.
    Failover {
        cluster: String,
        to: Option<String>,
        force: bool,
    },
    /// `dbfleet rejoin HOST`.
    Rejoin { host: String },
    /// `dbfleet restore HOST [--to TIME]`; `to` as given (RFC 3339 or `YYYY-MM-DD HH:MM:SS`).
    Restore { host: String, to: Option<String> },
    /// `dbfleet rebuild HOST...`.
    Rebuild { hosts: Vec<String> },
    /// `dbfleet cluster-restart [--cluster C] [--from MEMBER]`: a Galera cluster whose
    /// members all stopped, started again from its most advanced member.
    ClusterRestart {
        cluster: String,
        from: Option<String>,
        /// A lost quorum: re-form the primary component from the most advanced member
        /// still running (`--force-quorum`), not a whole-cluster restart.
        #[serde(default)]
        force_quorum: bool,
    },
}

impl Runbook {
    /// The verb, as typed on the command line.
    pub fn verb(&self) -> &'static str {
        match self {
            Runbook::Failover { .. } => "failover",
            Runbook::Rejoin { .. } => "rejoin",
            Runbook::Restore { .. } => "restore",
            Runbook::Rebuild { .. } => "rebuild",
            Runbook::ClusterRestart { .. } => "cluster-restart",
        }
    }
}

/// A precondition read at plan time (`host`'s `what` was `value`); a saved plan whose
/// observations read differently is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub host: String,
    pub what: String,
    pub value: String,
}

/// One step: what runs, where, and a line for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The hosts it runs on, all at once.
    pub hosts: Vec<String>,
    /// Display: one line (or a few) saying what it does.
    pub summary: String,
    pub action: Action,
    /// When the step fails: true stops the runbook there (what ran so far is reported);
    /// false records the failure and goes on (the later steps do not depend on it).
    pub required: bool,
    /// Starts at the same time as the step before it (and so on back to the first step of
    /// the group): the group's steps change different hosts or different things, none
    /// reads what another writes, and the next step starts when all of them ended. A
    /// failover's fencing, the kill of a hung server and the replicas' IO thread stop are
    /// one group: each takes a round trip or more, the IO stop about two seconds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_previous: bool,
}

/// What a step does. Statements and scripts are the exact text sent (secrets aside:
/// [`SECRET_PLACEHOLDER`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// SQL statements in one client session on each host (stdin).
    Sql { statements: String },
    /// A bash script on each host (stdin).
    Script { script: String },
    /// A bash script on each host as a detached run (`crate::runbooks::detached`): it
    /// outlives this dbfleet, and the same command started again attaches to it. `script:
    /// None` attaches to the run in progress; `request` is what the run does, kept in its
    /// folder, so that a command asking for something else is refused while it runs.
    Detached {
        run: DetachedRun,
        request: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script: Option<String>,
    },
    /// HAProxy runtime API commands on each proxy host, in one connection; with
    /// `primary_address`, the readers' check file first names the new primary.
    ProxyRuntime {
        commands: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        primary_address: Option<String>,
    },
    /// A returned old primary made read-only: its application sessions ended, its
    /// semi-sync primary side off, read_only ON.
    Fence,
    /// Wait until each replica applied the relay log it holds (at most `timeout_s`).
    Drain { timeout_s: u64 },
    /// Check, after the drain, that `candidate` is still the most advanced eligible
    /// replica with no errant transaction; refuse otherwise.
    Choose { candidate: String },
    /// Check that the host's GTID history is contained in `source`'s; refuse, naming the
    /// transactions, otherwise.
    CheckContained { source: String },
    /// Wait until the host reaches `source`'s current position (at most `timeout_s`).
    CatchUp { source: String, timeout_s: u32 },
    /// Replace the host's data by the newest backup of the job `backup`, then replay every
    /// binary log the binlog job `binlog` archived after the backup's position. MariaDB:
    /// a physical job (the newest full and the incrementals chained on it); MySQL: a
    /// logical job (the newest dump; Debian has no physical tool for MySQL). The backups
    /// are read when the step runs: the host reads them from the backup server once it is
    /// provisioned.
    RestoreFromBackups {
        /// Plan files of dbfleet 0.x before MySQL's rebuild named it `physical`.
        #[serde(alias = "physical")]
        backup: String,
        binlog: Option<String>,
    },
    /// Apply the inventory to the hosts (`apply --limit HOSTS`); `seed_from_backup`
    /// seeds their replication from the cluster's physical backups (otherwise apply seeds
    /// them from their source: a streamed copy on MariaDB, CLONE on MySQL).
    Converge { seed_from_backup: bool },
}

/// The detached runs a runbook's plan starts or attaches to ([`Action::Detached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetachedRun {
    /// A point-in-time restore on a primary.
    Restore,
}

impl DetachedRun {
    /// The run's folder name under `crate::tasks::RUNS_DIR`.
    pub fn name(self) -> &'static str {
        match self {
            DetachedRun::Restore => crate::tasks::RESTORE_RUN,
        }
    }

    /// The folder whose size is the run's progress.
    pub fn target(self) -> &'static str {
        match self {
            DetachedRun::Restore => crate::tasks::RESTORE_WORK,
        }
    }
}

/// A runbook's plan: the request, what was observed, and the steps in run order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunbookPlan {
    pub format_version: u32,
    /// dbfleet version that made the plan.
    pub dbfleet_version: String,
    /// Inventory file as given, and the sha256 of its bytes.
    pub inventory: String,
    pub inventory_digest: String,
    pub runbook: Runbook,
    /// Display: what the runbook does, one line.
    pub title: String,
    pub observed: Vec<Observation>,
    pub steps: Vec<Step>,
    /// Display: what the operator should know (data that will be lost, what follows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl RunbookPlan {
    /// An empty plan of `runbook` for the inventory at `inventory` (digest `digest`).
    pub fn new(runbook: Runbook, inventory: String, digest: String, title: String) -> Self {
        RunbookPlan {
            format_version: FORMAT_VERSION,
            dbfleet_version: env!("CARGO_PKG_VERSION").to_string(),
            inventory,
            inventory_digest: digest,
            runbook,
            title,
            observed: Vec::new(),
            steps: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records a precondition.
    pub fn observe(&mut self, host: &str, what: &str, value: impl Into<String>) {
        self.observed.push(Observation {
            host: host.into(),
            what: what.into(),
            value: value.into(),
        });
    }

    /// Appends a step.
    pub fn step(
        &mut self,
        hosts: &[&str],
        summary: impl Into<String>,
        action: Action,
        required: bool,
    ) {
        self.steps.push(Step {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            summary: summary.into(),
            action,
            required,
            with_previous: false,
        });
    }

    /// Appends a step that starts with the one before it when `with_previous`
    /// ([`Step::with_previous`]); the first step of a plan has none to start with and
    /// starts alone.
    pub fn step_at_once(
        &mut self,
        with_previous: bool,
        hosts: &[&str],
        summary: impl Into<String>,
        action: Action,
        required: bool,
    ) {
        let first = self.steps.is_empty();
        self.step(hosts, summary, action, required);
        if let Some(s) = self.steps.last_mut() {
            s.with_previous = with_previous && !first;
        }
    }

    /// The steps as the groups that run at once, in order: each group is the indices of a
    /// step and of the steps [`Step::with_previous`] after it.
    pub fn groups(&self) -> Vec<std::ops::Range<usize>> {
        let mut out: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, st) in self.steps.iter().enumerate() {
            match out.last_mut() {
                Some(g) if st.with_previous => g.end = i + 1,
                _ => out.push(i..i + 1),
            }
        }
        out
    }

    /// Why `self` (saved) may not run as `fresh` (the same request planned now): one line
    /// per difference, empty when it may.
    pub fn stale_against(&self, fresh: &RunbookPlan) -> Vec<String> {
        let mut details = Vec::new();
        if self.inventory_digest != fresh.inventory_digest {
            details.push(format!(
                "the inventory {} changed since the plan was made",
                fresh.inventory
            ));
        }
        if self.runbook != fresh.runbook {
            details.push("the plan is of another request".into());
        }
        for o in &self.observed {
            match fresh
                .observed
                .iter()
                .find(|f| f.host == o.host && f.what == o.what)
            {
                Some(f) if f.value == o.value => {}
                Some(f) => details.push(format!(
                    "{}: {} was {}, now {}",
                    o.host, o.what, o.value, f.value
                )),
                None => details.push(format!("{}: {} is no longer observed", o.host, o.what)),
            }
        }
        for f in &fresh.observed {
            if !self
                .observed
                .iter()
                .any(|o| o.host == f.host && o.what == f.what)
            {
                details.push(format!(
                    "{}: {} is now {}, which the plan did not observe",
                    f.host, f.what, f.value
                ));
            }
        }
        if details.is_empty() && self.steps != fresh.steps {
            let first = self
                .steps
                .iter()
                .zip(&fresh.steps)
                .position(|(a, b)| a != b)
                .unwrap_or(self.steps.len().min(fresh.steps.len()));
            details.push(format!(
                "the steps differ from step {} on: the runbook would now do something else",
                first + 1
            ));
        }
        details
    }

    /// The plan for the operator: the title, the observations, the numbered steps and the
    /// notes. Statements and scripts are left to `--json`.
    pub fn render(&self) -> String {
        let mut s = format!("{}\n", self.title);
        if !self.observed.is_empty() {
            s.push_str("Observed:\n");
            for o in &self.observed {
                s.push_str(&format!("  {}: {}: {}\n", o.host, o.what, o.value));
            }
        }
        s.push_str("Steps:\n");
        for (i, st) in self.steps.iter().enumerate() {
            let mut lines = st.summary.lines();
            let with = if st.with_previous {
                // Named by the group's first step: "at once with step 3".
                let first = self.steps[..i]
                    .iter()
                    .rposition(|p| !p.with_previous)
                    .unwrap_or(0);
                format!(" (at once with step {})", first + 1)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "  {}. [{}] {}{with}\n",
                i + 1,
                st.hosts.join(", "),
                lines.next().unwrap_or("")
            ));
            for l in lines {
                s.push_str(&format!("     {l}\n"));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("Note: {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RunbookPlan {
        let mut p = RunbookPlan::new(
            Runbook::Rejoin { host: "db1".into() },
            "lab.yml".into(),
            "sha256:1".into(),
            "Rejoin db1".into(),
        );
        p.observe("db1", "gtid_binlog_state", "0-1-10");
        p.step(
            &["db1"],
            "replicate from db2",
            Action::Sql {
                statements: "START SLAVE;".into(),
            },
            true,
        );
        p
    }

    #[test]
    fn a_plan_survives_its_file_format() {
        let p = plan();
        let json = serde_json::to_string(&p).expect("serializes");
        assert!(json.contains(r#""verb":"rejoin""#), "{json}");
        assert!(json.contains(r#""do":"sql""#), "{json}");
        let back: RunbookPlan = serde_json::from_str(&json).expect("parses");
        assert!(back.stale_against(&p).is_empty());
    }

    #[test]
    fn a_changed_observation_or_step_makes_it_stale() {
        let saved = plan();
        let mut fresh = plan();
        fresh.observed[0].value = "0-1-11".into();
        let d = saved.stale_against(&fresh);
        assert_eq!(d, vec!["db1: gtid_binlog_state was 0-1-10, now 0-1-11"]);
        let mut fresh = plan();
        fresh.steps[0].hosts = vec!["db3".into()];
        assert!(saved.stale_against(&fresh)[0].contains("from step 1 on"));
        let mut fresh = plan();
        fresh.observe("proxy1", "db1's database port", "closed");
        assert_eq!(
            saved.stale_against(&fresh),
            vec!["proxy1: db1's database port is now closed, which the plan did not observe"]
        );
        let mut fresh = plan();
        fresh.inventory_digest = "sha256:2".into();
        assert!(saved.stale_against(&fresh)[0].contains("inventory"));
    }

    #[test]
    fn steps_started_with_the_previous_one_form_groups_shown_and_saved_as_such() {
        let mut p = plan();
        let sql = || Action::Sql {
            statements: "SELECT 1;".into(),
        };
        p.step_at_once(true, &["proxy1"], "fenced", sql(), true);
        p.step_at_once(true, &["db2", "db3"], "IO thread stopped", sql(), true);
        p.step(&["db2"], "promoted", sql(), true);
        assert_eq!(p.groups(), vec![0..3, 3..4]);
        let shown = p.render();
        assert!(
            shown.contains("  2. [proxy1] fenced (at once with step 1)\n"),
            "{shown}"
        );
        assert!(
            shown.contains("  3. [db2, db3] IO thread stopped (at once with step 1)\n"),
            "{shown}"
        );
        assert!(shown.contains("  4. [db2] promoted\n"), "{shown}");
        let json = serde_json::to_string(&p).expect("serializes");
        let back: RunbookPlan = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.groups(), p.groups());
        // A plan file without the field (an earlier dbfleet's) runs one step at a time.
        assert_eq!(json.matches("with_previous").count(), 2, "{json}");
        // The first step of a plan starts alone whatever it asks.
        let mut q = RunbookPlan::new(
            Runbook::Rejoin { host: "db1".into() },
            "l".into(),
            "d".into(),
            "t".into(),
        );
        q.step_at_once(true, &["db1"], "x", sql(), true);
        assert!(!q.steps[0].with_previous);
        assert_eq!(q.groups(), vec![0..1]);
    }
}
