//! `dbfleet backup run JOB` and `dbfleet backup list`: run a job now on its host, and show
//! what the backup server holds per job (restic snapshots: time, kind, size, tags) with
//! each job's age against its declared RPO. Both go through the job's own script on its
//! host (`/usr/local/lib/dbfleet/backup-JOB`), which holds the repository's credentials:
//! nothing secret crosses the command line.

use serde::Deserialize;

use super::Job;
use crate::cli::{Exit, Global};
use crate::engine::Engine;
use crate::error::Error;
use crate::transport::SshHost;

/// One restic snapshot, as `restic snapshots --json` prints it (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub time: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub short_id: String,
    #[serde(default)]
    pub summary: Option<Summary>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub total_bytes_processed: u64,
}

pub(crate) fn job<'a>(engine: &'a Engine, name: &str) -> Result<&'a Job, Error> {
    engine
        .inv
        .backups
        .iter()
        .find(|j| j.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = engine.inv.backups.iter().map(|j| j.name.as_str()).collect();
            Error::Refused(format!(
                "no backup job `{name}` in the inventory (jobs: {})",
                names.join(", ")
            ))
        })
}

/// `dbfleet backup run JOB [--mode MODE]`: runs the job now, as cron would.
///
/// Errors: [`Error::Refused`] for an unknown job or mode; [`Error::Refused`] with the
/// script's last log lines when the run fails.
pub fn run(g: &Global, name: &str, mode: Option<&str>) -> Result<Exit, Error> {
    let engine = Engine::load(crate::cli::options(g, true))?;
    let j = job(&engine, name)?;
    let mode = mode.unwrap_or(&j.runs[0].mode).to_string();
    if !j.runs.iter().any(|r| r.mode == mode) {
        return Err(Error::Refused(format!(
            "job {name} runs as {}, not `{mode}`",
            j.runs
                .iter()
                .map(|r| r.mode.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    let t0 = std::time::Instant::now();
    crate::cli::runtime()?.block_on(async {
        let conn = engine.connect(&j.host, None).await?;
        let o = conn
            .run(&format!(
                "/usr/local/lib/dbfleet/backup-{} {}; code=$?; tail -n 3 /var/log/dbfleet/backup-{}.log; exit $code\n",
                crate::tasks::q(name),
                crate::tasks::q(&mode),
                crate::tasks::q(name)
            ))
            .await
            .map_err(|e| Error::Refused(e.to_string()))?;
        conn.close().await;
        let log = engine.redactor.redact(o.stdout.trim());
        if o.code != 0 {
            return Err(Error::Refused(format!(
                "backup job {name} ({mode}) on {} failed (exit {}):\n{log}\n{}",
                j.host,
                o.code,
                engine.redactor.redact(o.stderr.trim())
            )));
        }
        crate::report::print(&format!(
            "backup job {name} ({mode}) on {}: done in {:.1} s\n{log}\n",
            j.host,
            t0.elapsed().as_secs_f64()
        ));
        Ok(Exit::Ok)
    })
}

/// A physical job's restore chain: its newest full backup and the incrementals taken after
/// it, oldest first (each incremental is based on the backup before it,
/// `templates/backup-job.sh.j2`). `None` without a full backup.
pub fn chain(snaps: &[Snapshot]) -> Option<(&Snapshot, Vec<&Snapshot>)> {
    let time = |s: &Snapshot| {
        chrono::DateTime::parse_from_rfc3339(&s.time)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let tagged = |s: &Snapshot, t: &str| s.tags.iter().any(|x| x == t);
    let full = snaps
        .iter()
        .filter(|s| tagged(s, "full") && time(s).is_some())
        .max_by_key(|s| time(s))?;
    let mut incs: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| tagged(s, "incremental") && time(s) > time(full))
        .collect();
    incs.sort_by_key(|s| time(s));
    Some((full, incs))
}

/// The snapshots of `job`, newest last.
///
/// Errors: a message when the job's host cannot be reached or the script fails.
pub async fn snapshots(conn: &SshHost, job: &str) -> Result<Vec<Snapshot>, String> {
    let o = conn
        .run(&format!(
            "/usr/local/lib/dbfleet/backup-{} snapshots\n",
            crate::tasks::q(job)
        ))
        .await
        .map_err(|e| e.to_string())?;
    if o.code != 0 {
        return Err(o
            .stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string());
    }
    let mut s: Vec<Snapshot> = serde_json::from_str(o.stdout.trim()).map_err(|e| e.to_string())?;
    s.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(s)
}

/// The version of `backup list --json`'s shape.
pub const LIST_JSON_FORMAT_VERSION: u32 = 1;

/// `dbfleet backup list`: per job, its snapshots and its age against the RPO. Exits 1
/// naming every job whose newest backup is older than its RPO (or that has none).
pub fn list(g: &Global, json: bool) -> Result<Exit, Error> {
    let engine = Engine::load(crate::cli::options(g, true))?;
    let now = chrono::Utc::now();
    // One connection per job host (a host often runs several jobs), hosts in parallel.
    let mut by_host: Vec<(&str, Vec<&Job>)> = Vec::new();
    for j in &engine.inv.backups {
        match by_host.iter_mut().find(|(h, _)| *h == j.host) {
            Some((_, jobs)) => jobs.push(j),
            None => by_host.push((&j.host, vec![j])),
        }
    }
    let rows: Vec<(Job, Result<Vec<Snapshot>, String>)> = crate::cli::runtime()?.block_on(async {
        let per_host = by_host.iter().map(|(host, jobs)| {
            let engine = &engine;
            async move {
                let mut rows = Vec::new();
                match engine.connect(host, None).await {
                    Ok(c) => {
                        for j in jobs {
                            rows.push(((*j).clone(), snapshots(&c, &j.name).await));
                        }
                        c.close().await;
                    }
                    Err(e) => rows.extend(jobs.iter().map(|j| ((*j).clone(), Err(e.to_string())))),
                }
                rows
            }
        });
        futures::future::join_all(per_host)
            .await
            .into_iter()
            .flatten()
            .collect()
    });
    // Shown in the inventory's order.
    let mut rows = rows;
    rows.sort_by_key(|(j, _)| engine.inv.backups.iter().position(|b| b.name == j.name));
    let mut text = String::new();
    let mut late = Vec::new();
    let mut out = Vec::new();
    for (j, r) in &rows {
        let rpo = j.rpo_s.map(super::rpo::human).unwrap_or_else(|| "-".into());
        match r {
            Err(e) => {
                text.push_str(&format!(
                    "{} ({} on {}): cannot list: {e}\n",
                    j.name,
                    j.kind.as_str(),
                    j.host
                ));
                late.push(format!("{}: cannot list ({e})", j.name));
            }
            Ok(snaps) => {
                let newest = snaps
                    .last()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s.time).ok());
                let age_s = newest
                    .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0) as u64);
                let age = age_s
                    .map(super::rpo::human)
                    .unwrap_or_else(|| "never".into());
                let ok = match (age_s, j.rpo_s) {
                    (Some(a), Some(r)) => a <= r,
                    (None, _) => false,
                    (Some(_), None) => true,
                };
                if !ok {
                    late.push(format!("{}: newest backup {age} old, RPO {rpo}", j.name));
                }
                text.push_str(&format!(
                    "{} ({} on {} → {}): {} backup(s), newest {} old, RPO {rpo}{}\n",
                    j.name,
                    j.kind.as_str(),
                    j.host,
                    j.server,
                    snaps.len(),
                    age,
                    if ok { "" } else { "  ← over RPO" }
                ));
                for s in snaps {
                    let mode = s
                        .tags
                        .iter()
                        .find(|t| ["full", "incremental", "run"].contains(&t.as_str()))
                        .cloned()
                        .unwrap_or_default();
                    // restic before 0.17 keeps no size in the snapshot: the job's metrics have it.
                    let size = s
                        .summary
                        .as_ref()
                        .map(|x| format!("{} bytes", x.total_bytes_processed))
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "  {}  {}  {:<11}  {size}\n",
                        &s.time[..19.min(s.time.len())],
                        s.short_id,
                        mode
                    ));
                }
                out.push(serde_json::json!({
                    "job": j.name, "kind": j.kind.as_str(), "host": j.host, "server": j.server,
                    "rpo_seconds": j.rpo_s, "age_seconds": age_s, "within_rpo": ok,
                    "snapshots": snaps.iter().map(|s| serde_json::json!({"time": s.time, "id": s.short_id, "tags": s.tags, "bytes": s.summary.as_ref().map(|x| x.total_bytes_processed)})).collect::<Vec<_>>(),
                }));
            }
        }
    }
    if json {
        // `backup list --json`: {"format_version": 1, "jobs": [...]}; the version is
        // raised on any change a reader could notice.
        crate::report::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "format_version": LIST_JSON_FORMAT_VERSION,
                "jobs": out,
            }))
            .unwrap_or_default()
        ));
    } else {
        crate::report::print(&text);
    }
    if late.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Error::Refused(format!(
            "backups over their RPO: {}",
            late.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: &str, id: &str, tag: &str) -> Snapshot {
        serde_json::from_value(
            serde_json::json!({"time": time, "short_id": id, "tags": ["job", tag]}),
        )
        .expect("snapshot")
    }

    #[test]
    fn the_chain_is_the_newest_full_and_the_incrementals_after_it_in_order() {
        let s = [
            snap("2026-11-15T00:00:00Z", "f1", "full"),
            snap("2026-11-16T00:00:00Z", "i1", "incremental"),
            snap("2026-11-22T00:00:00Z", "f2", "full"),
            snap("2026-11-24T00:00:00Z", "i3", "incremental"),
            snap("2026-11-23T00:00:00Z", "i2", "incremental"),
        ];
        let (full, incs) = chain(&s).expect("chain");
        assert_eq!(full.short_id, "f2");
        let ids: Vec<&str> = incs.iter().map(|s| s.short_id.as_str()).collect();
        assert_eq!(ids, ["i2", "i3"]);
        assert!(chain(&s[1..2]).is_none());
    }
}
