//! `dbfleet backup run|list|verify|offsite`: the inventory's backup jobs, run now, listed
//! against their RPO, verified by restoring, copied offsite. What a job is and how its
//! backups are read is `crate::backup`'s.

use crate::backup::Job;
use crate::backup::snapshot::*;
use crate::backup::verify::*;
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::transport::SshHost;

/// `dbfleet backup run JOB [--mode MODE]`: runs the job now, as cron would.
///
/// Errors: [`Error::Refused`] for an unknown job or mode; [`Error::Refused`] with the
/// script's last log lines when the run fails.
pub fn run(opts: &Options, name: &str, mode: Option<&str>) -> Result<Exit, Error> {
    let engine = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
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
    crate::engine::runtime()?.block_on(async {
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

/// `dbfleet backup list`: per job, its snapshots and its age against the RPO. Exits 1
/// naming every job whose newest backup is older than its RPO (or that has none).
pub fn list(opts: &Options, json: bool) -> Result<Exit, Error> {
    let engine = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    let now = chrono::Utc::now();
    // One connection per job host (a host often runs several jobs), hosts in parallel.
    let mut by_host: Vec<(&str, Vec<&Job>)> = Vec::new();
    for j in &engine.inv.backups {
        match by_host.iter_mut().find(|(h, _)| *h == j.host) {
            Some((_, jobs)) => jobs.push(j),
            None => by_host.push((&j.host, vec![j])),
        }
    }
    let rows: Vec<(Job, Result<Vec<Snapshot>, String>)> =
        crate::engine::runtime()?.block_on(async {
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
                        Err(e) => {
                            rows.extend(jobs.iter().map(|j| ((*j).clone(), Err(e.to_string()))))
                        }
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
        let rpo = j
            .rpo_s
            .map(crate::backup::rpo::human)
            .unwrap_or_else(|| "-".into());
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
                    .map(crate::backup::rpo::human)
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
                    let mode = s.mode().to_string();
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

/// Runs `what` for `names` (all jobs when empty) on their backup servers, one server at a
/// time, and prints each job's verdict.
///
/// Errors: [`Error::Refused`] for an unknown job, an offsite action without
/// `backups.offsite`, an unreachable server or a script that printed no verdict, and
/// naming every job that failed (exit 1).
pub fn on_backup_servers(opts: &Options, what: Action, names: &[String]) -> Result<Exit, Error> {
    let engine = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    if what != Action::Verify && engine.inv.backup_offsite.is_none() {
        return Err(Error::Refused(
            "the inventory declares no offsite copy (`backups.offsite`)".into(),
        ));
    }
    let jobs: Vec<&Job> = if names.is_empty() {
        engine.inv.backups.iter().collect()
    } else {
        names
            .iter()
            .map(|n| job(&engine, n))
            .collect::<Result<_, _>>()?
    };
    let mut servers: Vec<&str> = jobs.iter().map(|j| j.server.as_str()).collect();
    servers.sort();
    servers.dedup();
    let mut failed = Vec::new();
    // The restores a local verify measured, for `validate` (src/backup/rto.rs).
    let mut measured = std::collections::BTreeMap::new();
    crate::engine::runtime()?.block_on(async {
        for server in servers {
            let mine: Vec<String> = jobs
                .iter()
                .filter(|j| j.server == server)
                .map(|j| crate::tasks::q(&j.name))
                .collect();
            let t0 = std::time::Instant::now();
            let conn = engine.connect(server, None).await?;
            let o = conn
                .run(&format!("{} {}\n", what.command(), mine.join(" ")))
                .await
                .map_err(|e| Error::Refused(e.to_string()))?;
            conn.close().await;
            let stdout = engine.redactor.redact(&o.stdout);
            let verdicts = parse(&stdout);
            if verdicts.is_empty() {
                return Err(Error::Refused(format!(
                    "{} on {server} failed (exit {}): {}",
                    what.title(),
                    o.code,
                    engine.redactor.redact(o.stderr.trim())
                )));
            }
            let mut text = format!(
                "{} on {server} ({:.1} s):\n",
                what.title(),
                t0.elapsed().as_secs_f64()
            );
            for v in &verdicts {
                text.push_str(&format!(
                    "  {} {}: {}\n",
                    v.job,
                    if v.ok { "ok" } else { "FAILED" },
                    v.detail
                ));
                if !v.ok {
                    failed.push(format!("{} ({})", v.job, v.detail));
                }
                if let (Action::Verify, Some((bytes, seconds))) =
                    (what, crate::backup::rto::from_verdict(&v.detail))
                {
                    let at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    measured.insert(
                        v.job.clone(),
                        crate::backup::rto::Measured { at, seconds, bytes },
                    );
                }
            }
            crate::report::print(&text);
        }
        Ok::<(), Error>(())
    })?;
    let record = crate::backup::rto::record_path(&engine.inv.base_dir());
    if let Err(e) = crate::backup::rto::save(&record, &measured) {
        // The verdicts stand; only `validate`'s view of the restore times is stale.
        crate::report::print(&format!("note: restore times not recorded: {e}\n"));
    }
    if failed.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Error::Refused(format!(
            "{}: {}",
            what.failure(),
            failed.join("; ")
        )))
    }
}

fn job<'a>(engine: &'a Engine, name: &str) -> Result<&'a Job, Error> {
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

/// The snapshots of `job`, newest last.
///
/// Errors: a message when the job's host cannot be reached or the script fails.
pub async fn snapshots(conn: &SshHost, job: &str) -> Result<Vec<Snapshot>, String> {
    let o = conn
        .run(&format!(
            "/usr/local/lib/dbfleet/backup-{} snapshots\n",
            crate::escape::q(job)
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
