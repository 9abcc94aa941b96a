//! Backups as the inventory declares them (seeds 000–004): jobs of four kinds — logical
//! (mariadb-dump), physical (mariadb-backup full + incremental), binlog (binary-log
//! archiving for point-in-time recovery) and path (a folder, with an optional
//! pre-command such as `influxd backup`) — each with cron schedules, retention and its
//! declared RPO/RTO. `rpo.rs` computes the worst case a schedule can give; validation
//! (`crate::inventory::validate`) refuses an inventory whose schedule cannot meet its RPO.

pub mod cmd;
pub mod keys;
pub mod rpo;
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

/// One run of a job at a cron schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Cron expression (five fields).
    pub schedule: String,
    /// `full`, `incremental` (physical) or `run`.
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
    /// The backup server (a host with the `backup` role).
    pub server: String,
}
