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

/// Where the verify script writes its node_exporter metrics on a backup server
/// (`templates/backup-verify.sh.j2`'s `metrics_dir`; node_exporter's textfile collector).
pub const METRICS_DIR: &str = "/var/lib/node_exporter/textfile_collector";

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
    pub(crate) fn command(self) -> &'static str {
        match self {
            Action::Verify => "/usr/local/lib/dbfleet/backup-verify",
            Action::VerifyOffsite => "/usr/local/lib/dbfleet/backup-verify --offsite",
            Action::CopyOffsite => "/usr/local/lib/dbfleet/backup-offsite",
            Action::PullOffsite => "/usr/local/lib/dbfleet/backup-offsite --pull",
        }
    }
    pub(crate) fn failure(self) -> &'static str {
        match self {
            Action::Verify => "backup verification failed",
            Action::VerifyOffsite => "offsite backup verification failed",
            Action::CopyOffsite => "offsite copy failed",
            Action::PullOffsite => "copying back from offsite failed",
        }
    }
    pub(crate) fn title(self) -> &'static str {
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
