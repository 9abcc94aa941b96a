//! The recovery time a backup job can expect, set against its declared `rto` (issue 26).
//!
//! Each verify restores the job's newest backup on the backup server and times it
//! (`templates/backup-verify.sh.j2`): seconds from the first byte read out of the repository
//! to usable data (a logical dump loaded; a physical chain prepared and a server started on
//! it), and the bytes it brought back (table data: the files of every schema folder but the
//! server's own; binlog and path jobs: the files). That measure is kept three ways: in the
//! node_exporter metrics on the backup server (`dbfleet_backup_verify_restore_seconds`,
//! `…_restored_bytes`, `…_restore_timestamp_seconds`: what `status` reads and the
//! `DbfleetRtoAtRisk` alert compares), at the end of the verdict line (what
//! `dbfleet backup verify` prints), and in the inventory's `.dbfleet/restore-times.json`
//! (written by `backup verify` and `status`, read by `validate`, which contacts no host).
//!
//! The expectation for today is the measured time scaled by today's size over the measured
//! size (the same measure read on the job's live server by `status`); without today's size,
//! the measured time itself (the newest backup is at most one schedule old). Restoring is
//! taken as linear in the bytes: the rate a verify measured at one size is the rate at
//! another. A job with no measure yet is said to have none, never given a guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Job, JobKind};

/// One measured restore of a job's newest backup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// When it was measured, seconds since the Unix epoch.
    pub at: u64,
    /// How long the restore took, seconds.
    pub seconds: f64,
    /// What it brought back, bytes.
    pub bytes: u64,
}

impl Measured {
    /// Bytes per second; None for a restore of nothing or one too quick to time.
    pub fn rate(&self) -> Option<f64> {
        (self.bytes > 0 && self.seconds > 0.0).then(|| self.bytes as f64 / self.seconds)
    }
}

/// The end of a verdict line the verify script adds after a passed check:
/// `…; restored BYTES bytes in SECONDS s`. Returns (bytes, seconds).
pub fn from_verdict(detail: &str) -> Option<(u64, f64)> {
    let (_, tail) = detail.rsplit_once("; restored ")?;
    let (bytes, rest) = tail.split_once(" bytes in ")?;
    let seconds = rest.strip_suffix(" s")?;
    Some((bytes.parse().ok()?, seconds.parse().ok()?))
}

/// The measures in the verify script's metrics files (Prometheus text format, the
/// `dbfleet_backup_verify_*.prom` of a backup server, concatenated), by job. A job with
/// only some of the three series has no measure. The offsite copy's files carry the same
/// series and are told apart by the caller (it reads the local files only).
pub fn from_metrics(text: &str) -> BTreeMap<String, Measured> {
    // Per job: (seconds, bytes, at), each once its series is seen.
    type Seen = (Option<f64>, Option<u64>, Option<u64>);
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once("{job=\"") else {
            continue;
        };
        let Some(job) = labels.strip_suffix("\"}") else {
            continue;
        };
        let e = seen.entry(job.to_string()).or_default();
        match name {
            "dbfleet_backup_verify_restore_seconds" => e.0 = value.parse().ok(),
            "dbfleet_backup_verify_restored_bytes" => e.1 = value.parse().ok(),
            "dbfleet_backup_verify_restore_timestamp_seconds" => e.2 = value.parse().ok(),
            _ => {}
        }
    }
    seen.into_iter()
        .filter_map(|(job, (seconds, bytes, at))| {
            Some((
                job,
                Measured {
                    at: at?,
                    seconds: seconds?,
                    bytes: bytes?,
                },
            ))
        })
        .collect()
}

/// What a job can expect, against its RTO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    pub job: String,
    /// The declared RTO, seconds.
    pub rto_s: Option<u64>,
    /// The last measure; None when no verify measured one.
    pub measured: Option<Measured>,
    /// Today's size, bytes, when read from the live server.
    pub size_now: Option<u64>,
    /// The expected restore time, seconds (None without a measure).
    pub expected_s: Option<f64>,
    /// The expected restore time is over the declared RTO.
    pub at_risk: bool,
}

/// The expectation for `job` from its last measure and today's size, when known.
pub fn expect(job: &Job, measured: Option<Measured>, size_now: Option<u64>) -> Expectation {
    let expected_s = measured.map(|m| match (size_now, m.rate()) {
        (Some(now), Some(rate)) => now as f64 / rate,
        _ => m.seconds,
    });
    Expectation {
        job: job.name.clone(),
        rto_s: job.rto_s,
        measured,
        size_now,
        expected_s,
        at_risk: matches!((expected_s, job.rto_s), (Some(e), Some(r)) if e > r as f64),
    }
}

impl Expectation {
    /// One line for the operator, e.g. `expected restore 4.2 s for today's 12.0 MB at the
    /// 2.9 MB/s measured 2026-12-06 07:40 UTC; over its RTO of 1 s`.
    pub fn describe(&self) -> String {
        let (Some(m), Some(e)) = (self.measured, self.expected_s) else {
            return "no restore measured yet (`dbfleet backup verify` measures one)".into();
        };
        let when = chrono::DateTime::from_timestamp(m.at as i64, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| format!("at {}", m.at));
        let basis = match (self.size_now, m.rate()) {
            (Some(now), Some(rate)) => format!(
                "for today's {} at the {}/s measured {when}",
                bytes(now),
                bytes(rate as u64)
            ),
            _ => format!(
                "as measured {when} ({} in {})",
                bytes(m.bytes),
                seconds(m.seconds)
            ),
        };
        let verdict = match self.rto_s {
            Some(r) if self.at_risk => format!("; over its RTO of {}", seconds(r as f64)),
            Some(r) => format!(", within its RTO of {}", seconds(r as f64)),
            None => String::new(),
        };
        format!("expected restore {} {basis}{verdict}", seconds(e))
    }
}

/// Today's size of what `job` restores, as the verify measures it, from a live server:
/// the shell command that prints it (bytes of the files of every schema folder of the
/// server's data folder but its own schemas; a logical job with `databases` counts those
/// only). None for kinds whose size is not a server's (binlog, path).
pub fn size_command(job: &Job) -> Option<String> {
    if !matches!(job.kind, JobKind::Logical | JobKind::Physical) {
        return None;
    }
    let dir = "/var/lib/mysql";
    // A schema's folder is its name (checked identifiers; a name the server would encode
    // is not found and counts 0). Each reaches the shell quoted (crate::escape::q).
    let only = if job.kind == JobKind::Logical && !job.databases.is_empty() {
        let globs: Vec<String> = job
            .databases
            .iter()
            .map(|d| format!("-path {}'/*'", crate::escape::q(&format!("{dir}/{d}"))))
            .collect();
        format!(" \\( {} \\)", globs.join(" -o "))
    } else {
        String::new()
    };
    Some(format!(
        "find {dir} -mindepth 2 -maxdepth 2 -type f ! -path '{dir}/mysql/*' ! -path '{dir}/performance_schema/*' ! -path '{dir}/sys/*'{only} -printf '%s\\n' | awk '{{s += $1}} END {{printf \"%d\\n\", s}}'"
    ))
}

/// The record of the last measures next to the inventory: `.dbfleet/restore-times.json`.
pub fn record_path(inventory_dir: &Path) -> PathBuf {
    inventory_dir.join(".dbfleet").join("restore-times.json")
}

/// The recorded measures by job; empty when there is no record or it cannot be read (a
/// record is a cache of what the backup servers hold: `status` or `backup verify` writes
/// it again).
pub fn load(path: &Path) -> BTreeMap<String, Measured> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Merges `fresh` into the record at `path` (newer measures win), written whole or not at
/// all (a temporary file renamed over it).
///
/// Errors: the I/O error, as text.
pub fn save(path: &Path, fresh: &BTreeMap<String, Measured>) -> Result<(), String> {
    if fresh.is_empty() {
        return Ok(());
    }
    let mut all = load(path);
    for (job, m) in fresh {
        if all.get(job).is_none_or(|old| old.at <= m.at) {
            all.insert(job.clone(), *m);
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(&all).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `12.3 s`, `4 min 10 s`, `1 h 20 min`.
pub fn seconds(s: f64) -> String {
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let s = s.round() as u64;
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    match (h, m, sec) {
        (0, m, 0) => format!("{m} min"),
        (0, m, sec) => format!("{m} min {sec} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// Bytes in decimal units: `950 B`, `12.0 MB`, `1.2 TB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if b < 1000 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1000.0;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: JobKind, rto_s: Option<u64>) -> Job {
        Job::fixture("app", kind, rto_s)
    }

    #[test]
    fn a_verdict_line_ends_with_the_restore_measured() {
        assert_eq!(
            from_verdict("3 tables, 10 rows readable, 5 s old; restored 1048576 bytes in 2.250 s"),
            Some((1_048_576, 2.25))
        );
        assert_eq!(from_verdict("3 tables, 10 rows readable, 5 s old"), None);
    }

    #[test]
    fn metrics_give_a_measure_only_with_all_three_series() {
        let text = "# HELP dbfleet_backup_verify_ok 1 when …\n\
            dbfleet_backup_verify_ok{job=\"a\"} 1\n\
            dbfleet_backup_verify_restore_seconds{job=\"a\"} 12.500\n\
            dbfleet_backup_verify_restored_bytes{job=\"a\"} 250000000\n\
            dbfleet_backup_verify_restore_timestamp_seconds{job=\"a\"} 1796000000\n\
            dbfleet_backup_verify_restore_seconds{job=\"b\"} 1.000\n";
        let m = from_metrics(text);
        assert_eq!(
            m.get("a"),
            Some(&Measured {
                at: 1_796_000_000,
                seconds: 12.5,
                bytes: 250_000_000
            })
        );
        assert!(!m.contains_key("b"), "b lacks two series: {m:?}");
    }

    #[test]
    fn the_expectation_scales_the_measured_rate_to_todays_size_and_flags_the_rto() {
        let m = Measured {
            at: 1_796_000_000,
            seconds: 100.0,
            bytes: 10_000_000_000,
        };
        // Grown to 50 GB at the 100 MB/s measured: 500 s, over a 5-minute RTO.
        let e = expect(
            &job(JobKind::Physical, Some(300)),
            Some(m),
            Some(50_000_000_000),
        );
        assert_eq!(e.expected_s, Some(500.0));
        assert!(e.at_risk);
        assert_eq!(
            e.describe(),
            "expected restore 8 min 20 s for today's 50.0 GB at the 100.0 MB/s measured 2026-11-30 00:53 UTC; over its RTO of 5 min"
        );
        // Without today's size: the measured time, within a 1-hour RTO.
        let e = expect(&job(JobKind::Physical, Some(3600)), Some(m), None);
        assert_eq!(e.expected_s, Some(100.0));
        assert!(!e.at_risk);
        assert!(
            e.describe()
                .ends_with("(10.0 GB in 1 min 40 s), within its RTO of 1 h"),
            "{}",
            e.describe()
        );
        // No measure: said so, never at risk by a guess.
        let e = expect(&job(JobKind::Logical, Some(1)), None, Some(5));
        assert_eq!((e.expected_s, e.at_risk), (None, false));
        assert!(e.describe().starts_with("no restore measured yet"));
    }

    #[test]
    fn the_record_keeps_the_newest_measure_of_each_job_and_survives_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = record_path(dir.path());
        assert!(load(&p).is_empty());
        let at = |at| Measured {
            at,
            seconds: 1.0,
            bytes: 1,
        };
        save(&p, &BTreeMap::from([("a".to_string(), at(20))])).unwrap();
        save(
            &p,
            &BTreeMap::from([("a".to_string(), at(10)), ("b".to_string(), at(5))]),
        )
        .unwrap();
        let m = load(&p);
        assert_eq!((m["a"].at, m["b"].at), (20, 5));
        std::fs::write(&p, "{not json").unwrap();
        assert!(load(&p).is_empty());
    }

    #[test]
    fn todays_size_is_read_for_database_jobs_only() {
        assert_eq!(size_command(&job(JobKind::Binlog, None)), None);
        let mut j = job(JobKind::Logical, None);
        j.databases = vec!["app".into(), "crm".into()];
        let c = size_command(&j).unwrap();
        assert!(
            c.contains("\\( -path /var/lib/mysql/app'/*' -o -path /var/lib/mysql/crm'/*' \\)"),
            "{c}"
        );
        assert!(
            !size_command(&job(JobKind::Physical, None))
                .unwrap()
                .contains("-o -path")
        );
    }
}
