//! `dbfleet backup verify [--offsite] [JOB...]` and `dbfleet backup offsite [JOB...]`: the
//! work that happens on the backup server, run now.
//! - verify is the seeds' weekly usability check (seeds 001–004), the script
//!   `templates/backup-verify.sh.j2` that cron also runs there (`backups.verify`): restic's
//!   repository check, the newest backup's age against the RPO, a restore into a scratch
//!   server (own datadir and socket, no network; never a production server), every table
//!   read, and for logical backups the row counts and checksums compared with the manifest
//!   the job recorded at backup time. `--offsite` runs the same checks on the offsite copy.
//! - offsite is the copy to S3-compatible object storage (seed 003),
//!   `templates/backup-offsite.sh.j2`, also run by cron (`backups.offsite.schedule`);
//!   `--pull` copies it back into a rebuilt backup server's store.
//!
//! Both scripts print one verdict line per job; this module groups the jobs by backup
//! server, runs the script there and reports.

use super::Job;
use crate::cli::{Exit, Global};
use crate::engine::Engine;
use crate::error::Error;

/// What to run on the backup servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Verify,
    VerifyOffsite,
    CopyOffsite,
    /// The offsite copy back into the backup server's store.
    PullOffsite,
}

impl Action {
    fn command(self) -> &'static str {
        match self {
            Action::Verify => "/usr/local/lib/dbfleet/backup-verify",
            Action::VerifyOffsite => "/usr/local/lib/dbfleet/backup-verify --offsite",
            Action::CopyOffsite => "/usr/local/lib/dbfleet/backup-offsite",
            Action::PullOffsite => "/usr/local/lib/dbfleet/backup-offsite --pull",
        }
    }
    fn failure(self) -> &'static str {
        match self {
            Action::Verify => "backup verification failed",
            Action::VerifyOffsite => "offsite backup verification failed",
            Action::CopyOffsite => "offsite copy failed",
            Action::PullOffsite => "copying back from offsite failed",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Action::Verify => "backup verify",
            Action::VerifyOffsite => "backup verify (offsite copy)",
            Action::CopyOffsite => "offsite copy",
            Action::PullOffsite => "copy back from offsite",
        }
    }
}

/// One job's verdict, as the script prints it: `JOB ok: ...` or `JOB FAILED: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub job: String,
    pub ok: bool,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// Parses the script's stdout; lines that are not verdicts are ignored.
pub fn parse(stdout: &str) -> Vec<Verdict> {
    stdout
        .lines()
        .filter_map(|l| {
            let (job, rest) = l.split_once(' ')?;
            let (ok, detail) = if let Some(d) = rest.strip_prefix("ok: ") {
                (true, d)
            } else {
                (false, rest.strip_prefix("FAILED: ")?)
            };
            Some(Verdict {
                job: job.to_string(),
                ok,
                detail: detail.to_string(),
            })
        })
        .collect()
}

/// Runs `what` for `names` (all jobs when empty) on their backup servers, one server at a
/// time, and prints each job's verdict.
///
/// Errors: [`Error::Refused`] for an unknown job, an offsite action without
/// `backups.offsite`, an unreachable server or a script that printed no verdict, and
/// naming every job that failed (exit 1).
pub fn on_backup_servers(g: &Global, what: Action, names: &[String]) -> Result<Exit, Error> {
    let engine = Engine::load(crate::cli::options(g, true))?;
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
            .map(|n| super::cmd::job(&engine, n))
            .collect::<Result<_, _>>()?
    };
    let mut servers: Vec<&str> = jobs.iter().map(|j| j.server.as_str()).collect();
    servers.sort();
    servers.dedup();
    let mut failed = Vec::new();
    crate::cli::runtime()?.block_on(async {
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
            }
            crate::report::print(&text);
        }
        Ok::<(), Error>(())
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lines_are_parsed_and_other_lines_ignored() {
        let v = parse(
            "app-logical ok: 3 tables, 10 rows readable\nnoise\nbinlogs FAILED: restic check: pack 1a2b: size\n",
        );
        assert_eq!(
            v,
            vec![
                Verdict {
                    job: "app-logical".into(),
                    ok: true,
                    detail: "3 tables, 10 rows readable".into()
                },
                Verdict {
                    job: "binlogs".into(),
                    ok: false,
                    detail: "restic check: pack 1a2b: size".into()
                },
            ]
        );
    }
}
