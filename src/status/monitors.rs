//! The failover monitors, for `dbfleet status` (issue 14: "status shows the monitors, which
//! one is active, and their last decision"): each monitor host's state file
//! (`crate::runbooks::monitor::STATE_FILE`, rewritten every check) and whether its service
//! runs, one round trip per monitor host.
//!
//! Unhealthy: the monitor host is unreachable, its service does not run, its state is older
//! than [`STALE_S`] seconds (the monitor is stuck), it follows another primary than the
//! inventory names (a failover it did that `dbfleet adopt` has not written yet), or, per
//! cluster, not exactly one monitor is active.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::{Host, Inventory, Role};
use crate::runbooks::failover::FailoverRecord;
use crate::runbooks::monitor::{STATE_FILE, State};

/// Seconds after which a monitor's state is stale: it checks every
/// `monitor_interval_seconds` (at most 60).
pub const STALE_S: u64 = 90;

/// One monitor host as `status` shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MonitorStatus {
    pub host: String,
    pub cluster: String,
    /// Its service runs.
    pub running: bool,
    /// It holds the lock on a majority of the cluster's servers.
    pub active: bool,
    /// The primary it watches.
    pub primary: String,
    /// Locks held, of `of` servers.
    pub locks: usize,
    pub of: usize,
    /// Seconds since its last check.
    pub age_seconds: Option<u64>,
    pub decision: String,
    pub last_failover: Option<FailoverRecord>,
    /// Why it is unhealthy; empty when healthy.
    pub problems: Vec<String>,
}

/// The script: the state file between markers, then whether the service runs.
const SCRIPT: &str = "echo '--state--'; cat /var/lib/dbfleet/monitor.json 2>/dev/null; echo; echo '--service--'; if /etc/init.d/dbfleet-monitor status >/dev/null 2>&1; then echo running; else echo stopped; fi\n";

/// Judges one monitor host from its script's output (or the reason it could not be read),
/// at `now` (seconds since the Unix epoch).
pub fn evaluate(inv: &Inventory, h: &Host, output: Result<&str, &str>, now: u64) -> MonitorStatus {
    let mut m = MonitorStatus {
        host: h.name.clone(),
        cluster: h.cluster.clone(),
        ..Default::default()
    };
    let out = match output {
        Ok(o) => o,
        Err(e) => {
            m.problems.push(format!("unreachable: {e}"));
            return m;
        }
    };
    let state = out
        .split("--state--")
        .nth(1)
        .and_then(|s| s.split("--service--").next())
        .unwrap_or("")
        .trim();
    m.running = out
        .split("--service--")
        .nth(1)
        .is_some_and(|s| s.trim() == "running");
    if !m.running {
        m.problems
            .push("the dbfleet-monitor service does not run".into());
    }
    match serde_json::from_str::<State>(state) {
        Ok(s) => {
            let age = now.saturating_sub(s.at);
            m.active = s.active;
            m.primary = s.primary;
            m.locks = s.locks;
            m.of = s.of;
            m.age_seconds = Some(age);
            m.decision = s.decision;
            m.last_failover = s.last_failover;
            if age > STALE_S {
                m.problems.push(format!(
                    "its last check was {age} s ago: the monitor is stuck"
                ));
                m.active = false;
            }
            let declared = inv
                .hosts
                .iter()
                .find(|o| o.cluster == m.cluster && o.has(Role::Primary))
                .map(|o| o.name.as_str());
            if let Some(p) = declared
                && !m.primary.is_empty()
                && m.primary != p
            {
                m.problems.push(format!(
                    "it follows {} as the primary, the inventory names {p}: `dbfleet adopt` records a failover it did",
                    m.primary
                ));
            }
        }
        Err(_) => m.problems.push(format!("no state in {STATE_FILE} yet")),
    }
    m
}

/// Per cluster, exactly one running monitor must be active: otherwise each of its monitors
/// gets the problem (none: a dead primary stays dead; two: the lock is broken).
pub fn judge_clusters(ms: &mut [MonitorStatus]) {
    let mut active: BTreeMap<String, usize> = BTreeMap::new();
    for m in ms.iter() {
        *active.entry(m.cluster.clone()).or_default() += usize::from(m.active);
    }
    for m in ms.iter_mut() {
        match active.get(&m.cluster).copied().unwrap_or(0) {
            1 => {}
            0 => m.problems.push(format!(
                "no monitor of cluster {} is active: a dead primary would not be failed over",
                m.cluster
            )),
            n => m.problems.push(format!(
                "{n} monitors of cluster {} say they are active",
                m.cluster
            )),
        }
    }
}

/// Reads every monitor host in `hosts`, `forks` at a time.
pub async fn gather(
    inv: &Inventory,
    hosts: &[&Host],
    forks: usize,
    timeout: std::time::Duration,
) -> Vec<MonitorStatus> {
    let now = crate::runbooks::failover::now_s();
    let mut ms: Vec<MonitorStatus> =
        super::run_each(inv, hosts, forks, timeout, SCRIPT, "the monitor's state")
            .await
            .iter()
            .zip(hosts)
            .map(|(res, h)| evaluate(inv, h, res.as_deref().map_err(|e| e.as_str()), now))
            .collect();
    judge_clusters(&mut ms);
    ms
}

/// The monitors' lines under the topology: `proxy1  active (3 of 3 locks)  primary db1
/// checked 0 s ago: db1 answers  ok`.
pub fn render(ms: &[MonitorStatus]) -> String {
    if ms.is_empty() {
        return String::new();
    }
    let mut out = String::from("failover monitors:\n");
    for m in ms {
        let mut f = vec![format!("  {}", m.host)];
        if m.running || m.age_seconds.is_some() {
            f.push(format!(
                "{} ({} of {} locks)",
                if m.active { "active" } else { "standby" },
                m.locks,
                m.of
            ));
            if !m.primary.is_empty() {
                f.push(format!("primary {}", m.primary));
            }
            if let Some(a) = m.age_seconds {
                f.push(format!("checked {a} s ago: {}", m.decision));
            }
            if let Some(r) = &m.last_failover {
                f.push(format!("last failover {} → {}", r.from, r.to));
            }
        }
        f.push(if m.problems.is_empty() {
            "ok".into()
        } else {
            format!("PROBLEM: {}", m.problems.join("; "))
        });
        out.push_str(&f.join("  "));
        out.push('\n');
    }
    out
}
