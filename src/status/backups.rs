//! The backup jobs, for `dbfleet status` (issue 26: "status flags a job whose expected
//! restore time exceeds its declared `rto`"): each job's last measured restore, read from
//! its backup server's verify metrics, and today's size of what it restores, read on the
//! job's live server; the expectation is `crate::backup::rto`'s. One round trip per backup
//! server and per database host that a job reads.
//!
//! Unhealthy: a job whose expected restore time is over its declared RTO, or whose backup
//! server cannot be read while the job declares an RTO. A job with an RTO and no measure
//! yet is shown as such, not judged: there is nothing to judge it by.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backup::rto::{self, Expectation, Measured};
use crate::backup::{Job, verify};
use crate::inventory::{Host, Inventory};

/// One job as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupStatus {
    /// The backup server that stores and verifies it.
    pub server: String,
    #[serde(flatten)]
    pub expectation: Expectation,
    /// Why it is unhealthy; empty when healthy.
    pub problems: Vec<String>,
}

/// The metrics files of `jobs` on their backup server, concatenated (the local copies
/// only: the offsite copy's verify writes `dbfleet_backup_verify_offsite_JOB.prom`).
fn metrics_script(jobs: &[&Job]) -> String {
    let files: Vec<String> = jobs
        .iter()
        .map(|j| {
            crate::escape::q(&format!(
                "{}/dbfleet_backup_verify_{}.prom",
                verify::METRICS_DIR,
                j.name
            ))
        })
        .collect();
    format!("cat {} 2> /dev/null; true\n", files.join(" "))
}

/// Today's sizes of `jobs` on their one database host: `JOB BYTES` lines.
fn sizes_script(jobs: &[&Job]) -> String {
    jobs.iter()
        .filter_map(|j| {
            Some(format!(
                "printf '%s ' {}; {}\n",
                crate::escape::q(&j.name),
                rto::size_command(j)?
            ))
        })
        .collect()
}

/// Judges the jobs from what was read: `measures` by job, `sizes` by job, and the backup
/// servers that could not be read (server → why).
pub fn evaluate(
    jobs: &[&Job],
    measures: &BTreeMap<String, Measured>,
    sizes: &BTreeMap<String, u64>,
    unread: &BTreeMap<String, String>,
) -> Vec<BackupStatus> {
    jobs.iter()
        .map(|j| {
            let e = rto::expect(
                j,
                measures.get(&j.name).copied(),
                sizes.get(&j.name).copied(),
            );
            let mut problems = Vec::new();
            if e.at_risk {
                problems.push(format!("backup job {}: {}", j.name, e.describe()));
            }
            if let (Some(why), Some(_)) = (unread.get(&j.server), j.rto_s) {
                problems.push(format!(
                    "backup job {}: its restore time cannot be read from {}: {why}",
                    j.name, j.server
                ));
            }
            BackupStatus {
                server: j.server.clone(),
                expectation: e,
                problems,
            }
        })
        .collect()
}

/// Reads the jobs whose backup server is in `servers`, `forks` at a time.
pub async fn gather(
    inv: &Inventory,
    servers: &[&Host],
    forks: usize,
    timeout: std::time::Duration,
) -> Vec<BackupStatus> {
    let jobs: Vec<&Job> = inv
        .backups
        .iter()
        .filter(|j| servers.iter().any(|s| s.name == j.server))
        .collect();
    if jobs.is_empty() {
        return Vec::new();
    }
    let on =
        |host: &str| -> Vec<&Job> { jobs.iter().copied().filter(|j| j.server == host).collect() };
    let mut each: Vec<(&Host, String)> = servers
        .iter()
        .map(|s| (*s, metrics_script(&on(&s.name))))
        .collect();
    let n_servers = each.len();
    // Today's sizes: one script per database host that a job reads.
    let mut readers: Vec<&Host> = Vec::new();
    for j in &jobs {
        if rto::size_command(j).is_some()
            && let Some(h) = inv.hosts.iter().find(|h| h.name == j.host)
            && !readers.iter().any(|r| r.name == h.name)
        {
            readers.push(h);
        }
    }
    for h in &readers {
        let mine: Vec<&Job> = jobs.iter().copied().filter(|j| j.host == h.name).collect();
        each.push((*h, sizes_script(&mine)));
    }
    let out = super::run_own(inv, &each, forks, timeout, "the backup metrics").await;
    let mut measures = BTreeMap::new();
    let mut unread = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    for (i, ((h, _), res)) in each.iter().zip(out).enumerate() {
        match (i < n_servers, res) {
            (true, Ok(text)) => {
                let mine = on(&h.name);
                measures.extend(
                    rto::from_metrics(&text)
                        .into_iter()
                        .filter(|(job, _)| mine.iter().any(|j| &j.name == job)),
                );
            }
            (true, Err(why)) => {
                unread.insert(h.name.clone(), why);
            }
            // A size that cannot be read leaves the measured time as the expectation.
            (false, Ok(text)) => sizes.extend(text.lines().filter_map(|l| {
                let (job, bytes) = l.split_once(' ')?;
                Some((job.to_string(), bytes.trim().parse().ok()?))
            })),
            (false, Err(_)) => {}
        }
    }
    evaluate(&jobs, &measures, &sizes, &unread)
}

/// The jobs' lines under the topology: `app-physical (on backup1)  expected restore …  ok`.
pub fn render(bs: &[BackupStatus]) -> String {
    if bs.is_empty() {
        return String::new();
    }
    let mut out = String::from("backup jobs (restore time, from the last verify):\n");
    for b in bs {
        out.push_str(&format!(
            "  {} (on {})  {}  {}\n",
            b.expectation.job,
            b.server,
            b.expectation.describe(),
            if b.problems.is_empty() {
                "ok".to_string()
            } else if b.expectation.at_risk {
                "PROBLEM".to_string()
            } else {
                format!("PROBLEM: {}", b.problems.join("; "))
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::JobKind;

    fn job(name: &str, rto_s: Option<u64>) -> Job {
        Job::fixture(name, JobKind::Physical, rto_s)
    }

    #[test]
    fn a_job_over_its_rto_is_a_problem_named_by_the_job_and_one_never_measured_is_not() {
        let (slow, fine, new) = (
            job("slow", Some(1)),
            job("fine", Some(3600)),
            job("new", Some(1)),
        );
        let m = Measured {
            at: 1_796_000_000,
            seconds: 4.0,
            bytes: 4_000_000,
        };
        let measures = BTreeMap::from([("slow".to_string(), m), ("fine".to_string(), m)]);
        // slow has grown to 8 MB since: 8 s expected.
        let sizes = BTreeMap::from([("slow".to_string(), 8_000_000)]);
        let bs = evaluate(&[&slow, &fine, &new], &measures, &sizes, &BTreeMap::new());
        assert_eq!(bs[0].expectation.expected_s, Some(8.0));
        assert_eq!(bs[0].problems.len(), 1);
        assert!(
            bs[0].problems[0]
                .starts_with("backup job slow: expected restore 8.0 s for today's 8.0 MB"),
            "{:?}",
            bs[0].problems
        );
        assert!(bs[0].problems[0].ends_with("over its RTO of 1.0 s"));
        assert!(bs[1].problems.is_empty());
        assert!(
            bs[2].problems.is_empty(),
            "nothing measured, nothing judged"
        );
        // An unreadable backup server is a problem for the jobs that declare an RTO.
        let unread = BTreeMap::from([("backup1".to_string(), "connection refused".to_string())]);
        let bs = evaluate(&[&fine], &BTreeMap::new(), &BTreeMap::new(), &unread);
        assert!(bs[0].problems[0].contains("cannot be read from backup1: connection refused"));
    }

    #[test]
    fn the_scripts_read_the_jobs_own_files_and_sizes_only() {
        let (a, b) = (job("a", None), job("b", None));
        assert_eq!(
            metrics_script(&[&a, &b]),
            "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_a.prom /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_b.prom 2> /dev/null; true\n"
        );
        let mut binlog = job("logs", None);
        binlog.kind = JobKind::Binlog;
        let s = sizes_script(&[&a, &binlog]);
        assert!(s.starts_with("printf '%s ' a; find /var/lib/mysql "), "{s}");
        assert_eq!(s.lines().count(), 1, "binlog jobs have no live size: {s}");
    }
}
