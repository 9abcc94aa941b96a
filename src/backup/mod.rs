//! Backups as the inventory declares them (seeds 000–004): jobs of four kinds — logical
//! (mariadb-dump), physical (mariadb-backup full + incremental), binlog (binary-log
//! archiving for point-in-time recovery) and path (a folder, with an optional
//! pre-command such as `influxd backup`) — each with cron schedules, retention and its
//! declared RPO/RTO. `rpo.rs` computes the worst case a schedule can give, `rto.rs` the
//! restore time a job can expect from what its verify measured; validation
//! (`crate::inventory::validate`) refuses an inventory whose schedule cannot meet its RPO.

pub mod keys;
pub mod rpo;
pub mod rto;
pub mod snapshot;
pub mod verify;

use serde::Serialize;

/// When the backup server verifies the newest backups unless the inventory says
/// (`backups.verify`): Sundays at 06:00, the seeds' weekly usability check (seeds 001–004).
pub const VERIFY_SCHEDULE: &str = "0 6 * * 0";

/// What a job backs up and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Logical,
    Physical,
    Binlog,
    Path,
}

impl JobKind {
    pub const NAMES: [&'static str; 4] = ["logical", "physical", "binlog", "path"];
    pub fn parse(s: &str) -> Option<JobKind> {
        Some(match s {
            "logical" => JobKind::Logical,
            "physical" => JobKind::Physical,
            "binlog" => JobKind::Binlog,
            "path" => JobKind::Path,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    /// Kinds that read a database server.
    pub fn needs_database(self) -> bool {
        !matches!(self, JobKind::Path)
    }
}

/// Which backups retention keeps (restic's `forget` policy terms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Retention {
    /// Keep everything newer than this many days.
    pub within_days: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
}

/// The time zone of the backup schedules (`backups.timezone`). Debian's cron has no
/// `CRON_TZ` and runs every line in the host's zone, so each line runs a guard
/// (`templates/cron-tz.sh.j2`) that matches the schedule against the wall-clock time in
/// this zone: every minute, or only at the schedule's minutes when the zone's offset is
/// always a whole number of hours (its minutes are then UTC's).
#[derive(Debug, Clone, Serialize)]
pub struct Zone {
    /// The IANA name, e.g. `Europe/Berlin`.
    pub name: String,
    /// The zone's offset from UTC is a whole number of hours over the RPO walk's horizon
    /// (`rpo`): false for Asia/Kolkata (+05:30), say.
    pub whole_hours: bool,
}

/// One run of a job at a cron schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Cron expression (five fields).
    pub schedule: String,
    /// `full`, `differential`, `incremental` (physical) or `run`.
    pub mode: String,
}

/// A checked backup job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub name: String,
    pub kind: JobKind,
    /// The host the job runs on.
    pub host: String,
    pub runs: Vec<Run>,
    /// Logical: the databases (empty = all).
    pub databases: Vec<String>,
    /// Path: the folders.
    pub paths: Vec<String>,
    /// Path: a command run first (its output is what `paths` holds).
    pub pre_command: Option<String>,
    pub retention: Retention,
    /// Declared objectives, seconds.
    pub rpo_s: Option<u64>,
    pub rto_s: Option<u64>,
    /// The worst-case recovery point the schedules give (with binlog archiving for a
    /// database job of a cluster that has it), seconds.
    pub worst_rpo_s: u64,
    /// With an offsite copy: the worst-case recovery point when the backup server is lost
    /// too ([`rpo::worst_offsite_gap`], with binlog archiving as above), seconds.
    pub offsite_worst_rpo_s: Option<u64>,
    /// The backup server (a host with the `backup` role).
    pub server: String,
}

impl Job {
    /// A job `name` of `kind` on db2, stored on backup1, with `rto_s`: the fixture of the
    /// unit tests that judge jobs (src/backup/rto.rs, src/status/backups.rs).
    #[cfg(test)]
    pub(crate) fn fixture(name: &str, kind: JobKind, rto_s: Option<u64>) -> Job {
        Job {
            name: name.into(),
            kind,
            host: "db2".into(),
            runs: vec![],
            databases: vec![],
            paths: vec![],
            pre_command: None,
            retention: Default::default(),
            rpo_s: None,
            rto_s,
            worst_rpo_s: 0,
            offsite_worst_rpo_s: None,
            server: "backup1".into(),
        }
    }
}

/// The offsite copy (seed 003): the backup server copies every job's repository to
/// S3-compatible object storage with `restic copy` (`templates/backup-offsite.sh.j2`), so a
/// lost backup server loses no backup. The copies are restic repositories too, encrypted
/// with the same `backup_encryption_password`, so the object store never sees plain data.
#[derive(Debug, Clone, Serialize)]
pub struct Offsite {
    /// restic's S3 repository prefix (`s3:https://HOST/BUCKET[/PREFIX]`); job `J` is at
    /// `PREFIX/J`.
    pub repository: String,
    /// Names of the secrets holding the S3 credentials (never their values).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When the backup server copies (cron expression).
    pub schedule: String,
    /// What the copy keeps; each job's own retention when `None`.
    pub retention: Option<Retention>,
    /// Declared objective for the loss of the backup server too, seconds.
    pub rpo_s: Option<u64>,
}
