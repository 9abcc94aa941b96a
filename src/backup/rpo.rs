//! The worst-case recovery point a cron schedule can give: the longest time between two
//! consecutive runs, over a leap year and a month either side (so every weekday and month
//! length, and February 29th, is seen). With binary-log archiving for the same cluster,
//! a database job's recovery point is the archiving's instead (seed 000: binlog backups
//! for point-in-time recovery). Seeds 001–004 give the schedules this must cover: daily
//! 22:00, Sunday full + Monday–Saturday incremental at 00:00, the 28th at 02:00,
//! 01:00/01:05/01:10.
//!
//! A schedule may be read in a time zone (`backups.timezone`, seed 002 writes its times in
//! UTC+2): its runs are then the instants whose wall-clock time in that zone matches, as
//! the hosts' guard runs them (`templates/cron-tz.sh.j2`). A time skipped by a
//! daylight-saving change (02:30 on the last Sunday of March in Europe/Berlin) never
//! runs that day, and one repeated when clocks go back runs twice.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use croner::Cron;

/// A parsed cron schedule (five fields, as in /etc/cron.d), as the days it runs on over
/// the horizon and the times of day it runs at.
///
/// Cron's minute and hour fields do not depend on the day (and the horizon is UTC, so no
/// daylight saving shifts them): every day a schedule runs on, it runs at the same times.
/// So a schedule is walked once per day it runs (at most 428 `croner` look-ups) and once
/// through one day (at most 1,440), not once per run: an every-minute schedule has about
/// 616,000 runs over the horizon, and walking them one by one made `validate` take a
/// minute for sixty such jobs (found by fuzzing, issue 11).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub text: String,
    /// The zone its fields are read in; UTC when `None`.
    pub zone: Option<chrono_tz::Tz>,
    /// Midnight (UTC) of each day it runs on, in order.
    days: Arc<Vec<DateTime<Utc>>>,
    /// The seconds after midnight it runs at, in order.
    times: Arc<Vec<i64>>,
}

/// The schedules of one inventory, each distinct expression parsed and walked once.
#[derive(Debug, Default)]
pub struct ScheduleBook {
    by_text: HashMap<String, Schedule>,
    /// The zone every schedule of the book is read in (`backups.timezone`).
    pub zone: Option<chrono_tz::Tz>,
}

impl ScheduleBook {
    /// The schedule of `text`, parsed and walked on first use, in the book's zone.
    ///
    /// Errors: [`Schedule::parse`]'s.
    pub fn get(&mut self, text: &str) -> Result<Schedule, String> {
        if let Some(s) = self.by_text.get(text) {
            return Ok(s.clone());
        }
        let mut s = Schedule::parse(text)?;
        s.zone = self.zone;
        self.by_text.insert(text.to_string(), s.clone());
        Ok(s)
    }
}

impl Schedule {
    /// Parses a five-field cron expression (minute hour day-of-month month day-of-week).
    ///
    /// Errors: croner's message when the expression is not valid.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        if text.split_whitespace().count() != 5 {
            return Err(format!(
                "`{text}` is not a five-field cron expression (minute hour day-of-month month day-of-week)"
            ));
        }
        let cron = Cron::from_str(text).map_err(|e| e.to_string())?;
        let mut days = Vec::new();
        let mut times = Vec::new();
        if let Some((from, to)) = horizon() {
            // The days it runs on: from each day's start, its next run names the next day.
            let mut t = from;
            while let Ok(n) = cron.find_next_occurrence(&t, true) {
                if n >= to {
                    break;
                }
                let midnight = midnight_of(n);
                days.push(midnight);
                t = midnight + Duration::days(1);
            }
            // The times of day, from the first day it runs on.
            if let Some(&day) = days.first() {
                let mut t = day;
                while let Ok(n) = cron.find_next_occurrence(&t, true) {
                    if n >= day + Duration::days(1) {
                        break;
                    }
                    times.push((n - day).num_seconds());
                    t = n + Duration::seconds(1);
                }
            }
        }
        Ok(Schedule {
            text: text.to_string(),
            zone: None,
            days: Arc::new(days),
            times: Arc::new(times),
        })
    }

    /// Its runs over the horizon, in order, as instants. In a zone, the days and times
    /// walked are wall-clock ones: each becomes no instant (skipped forward), one, or two
    /// (repeated backward).
    fn runs(&self) -> Box<dyn Iterator<Item = DateTime<Utc>> + '_> {
        let wall = self
            .days
            .iter()
            .flat_map(|d| self.times.iter().map(move |s| *d + Duration::seconds(*s)));
        match self.zone {
            None => Box::new(wall),
            Some(zone) => Box::new(wall.flat_map(move |w| {
                use chrono::LocalResult;
                match zone.from_local_datetime(&w.naive_utc()) {
                    LocalResult::None => vec![],
                    LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
                    LocalResult::Ambiguous(a, b) => {
                        vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
                    }
                }
            })),
        }
    }
}

fn midnight_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t - Duration::seconds(i64::from(t.num_seconds_from_midnight()))
}

/// Whether `zone`'s offset from UTC is a whole number of hours all over the horizon
/// (checked each day at noon UTC and at each day's start): a schedule's minutes are then
/// the same in the zone and in UTC.
pub fn whole_hours(zone: chrono_tz::Tz) -> bool {
    use chrono::Offset;
    let Some((from, to)) = horizon() else {
        return true;
    };
    let mut t = from;
    while t < to {
        for probe in [t, t + Duration::hours(12)] {
            let off = zone
                .offset_from_utc_datetime(&probe.naive_utc())
                .fix()
                .local_minus_utc();
            if off % 3600 != 0 {
                return false;
            }
        }
        t += Duration::days(1);
    }
    true
}

/// The runs of `schedules` together, in order, each once.
fn merged(schedules: &[&Schedule]) -> Vec<DateTime<Utc>> {
    let mut runs: Vec<DateTime<Utc>> = schedules.iter().flat_map(|s| s.runs()).collect();
    if schedules.len() > 1 || schedules.iter().any(|s| s.zone.is_some()) {
        runs.sort();
        runs.dedup();
    }
    runs
}

/// The longest gap between consecutive runs of any of `schedules` together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorstGap {
    /// Seconds.
    pub seconds: u64,
    /// The run that starts the longest gap, and the next one.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The span every schedule is walked over: 2028, a leap year, with a month either side so
/// year ends are seen.
fn horizon() -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = Utc.with_ymd_and_hms(2027, 12, 1, 0, 0, 0).single()?;
    Some((start, start + Duration::days(366 + 62)))
}

/// The worst recovery point when the backup server is lost too and only the offsite copy
/// (seed 003) is left: a backup counts from the first copy run at or after it, so just
/// before each copy the newest backup offsite is the newest one taken before the copy
/// before it. Seconds; None when either never runs.
///
/// Runs within the same minute count as "after" (cron starts the copy once the backup
/// it follows has been started; copies that run during a backup take the previous one,
/// which this bound covers only when the copy is scheduled after the backup finishes).
pub fn worst_offsite_gap(backups: &[&Schedule], copies: &[&Schedule]) -> Option<u64> {
    let b = merged(backups);
    let c = merged(copies);
    if b.is_empty() || c.is_empty() {
        return None;
    }
    let mut worst: Option<i64> = None;
    let mut bi = 0;
    // The newest backup at or before the previous copy: what is offsite until the next.
    let mut offsite: Option<DateTime<Utc>> = None;
    for &copy in &c {
        if let Some(p) = offsite {
            let loss = (copy - p).num_seconds();
            worst = Some(worst.map_or(loss, |w| w.max(loss)));
        }
        while bi < b.len() && b[bi] <= copy {
            offsite = Some(b[bi]);
            bi += 1;
        }
    }
    worst.map(|w| w.max(0) as u64)
}

/// The worst gap of `schedules` run together, or None when they never run.
pub fn worst_gap(schedules: &[&Schedule]) -> Option<WorstGap> {
    let (start, end) = horizon()?;
    let runs = merged(schedules);
    if runs.len() < 2 {
        // Once a year or less within the horizon: the gap is at least the horizon.
        let from = *runs.first()?;
        return Some(WorstGap {
            seconds: (end - start).num_seconds() as u64,
            from,
            to: from + (end - start),
        });
    }
    runs.windows(2)
        .map(|w| WorstGap {
            seconds: (w[1] - w[0]).num_seconds() as u64,
            from: w[0],
            to: w[1],
        })
        .max_by_key(|g| g.seconds)
}

/// "1d 2h", "15m", "31d": a duration for people.
pub fn human(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86400, seconds % 86400 / 3600, seconds % 3600 / 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 || parts.is_empty() {
        parts.push(format!("{m}m"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(exprs: &[&str]) -> u64 {
        let s: Vec<Schedule> = exprs.iter().map(|e| Schedule::parse(e).unwrap()).collect();
        worst_gap(&s.iter().collect::<Vec<_>>()).unwrap().seconds
    }

    fn zoned(expr: &str, zone: &str) -> Schedule {
        let mut book = ScheduleBook {
            zone: Some(zone.parse().expect("zone")),
            ..Default::default()
        };
        book.get(expr).expect("schedule")
    }

    /// Across daylight-saving changes (Europe/Berlin, 2028: March 26 and October 29): a
    /// daily 02:30 is skipped the day clocks go forward (a 2-day gap), a daily 22:00 is 25
    /// hours from the next the day they go back, and a 02:30 runs twice that night.
    #[test]
    fn a_zoned_schedule_across_daylight_saving_changes() {
        let gap = |s: &Schedule| worst_gap(&[s]).expect("gap");
        let skipped = gap(&zoned("30 2 * * *", "Europe/Berlin"));
        assert_eq!(skipped.seconds, 2 * 86400 - 3600);
        assert_eq!(skipped.from.to_rfc3339(), "2028-03-25T01:30:00+00:00");
        let evening = gap(&zoned("0 22 * * *", "Europe/Berlin"));
        assert_eq!(evening.seconds, 25 * 3600);
        assert_eq!(evening.from.to_rfc3339(), "2028-10-28T20:00:00+00:00");
        let twice: Vec<_> = zoned("30 2 * * *", "Europe/Berlin")
            .runs()
            .filter(|t| t.date_naive().to_string() == "2028-10-29")
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            twice,
            ["2028-10-29T00:30:00+00:00", "2028-10-29T01:30:00+00:00"]
        );
        // Without a zone, UTC: every day.
        assert_eq!(
            worst_gap(&[&Schedule::parse("30 2 * * *").unwrap()])
                .unwrap()
                .seconds,
            86400
        );
        // A zone of whole hours; one of half hours.
        assert!(whole_hours("Europe/Berlin".parse().unwrap()));
        assert!(!whole_hours("Asia/Kolkata".parse().unwrap()));
    }

    /// The hosts' guard (templates/cron-tz.sh.j2, run by sh here) matches exactly the
    /// minutes this model counts as runs, on both of 2028's change days in Europe/Berlin
    /// and an ordinary day, for schedules with lists, ranges, steps and both day fields
    /// restricted (either matches, cron(5)).
    #[test]
    fn the_hosts_guard_runs_what_the_rpo_check_counts() {
        let guard = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/cron-tz.sh.j2");
        let zone = "Europe/Berlin";
        for expr in [
            "30 2 * * *",
            "0 22 * * *",
            "*/20 1-3 * * 0",
            "15 2,3 26-29 3,10 1",
        ] {
            let s = zoned(expr, zone);
            let runs: std::collections::BTreeSet<DateTime<Utc>> = s.runs().collect();
            for (y, m, d) in [(2028, 3, 26), (2028, 10, 29), (2028, 5, 1)] {
                let day = Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
                // Every 5 minutes of the hours where these run (UTC 00–03, 19–23): each
                // sh run costs a couple of milliseconds.
                for i in (0..48).chain(228..288) {
                    let t = day + Duration::minutes(5 * i);
                    let ok = std::process::Command::new("sh")
                        .args([guard, zone, expr, &t.timestamp().to_string()])
                        .status()
                        .expect("sh")
                        .success();
                    assert_eq!(ok, runs.contains(&t), "{expr} at {t}: guard {ok}");
                }
            }
        }
    }

    #[test]
    fn the_seeds_schedules() {
        // Seed 001: MySQL daily at 22:00.
        assert_eq!(gap(&["0 22 * * *"]), 86400);
        // Seed 001: Sunday full + Monday–Saturday incremental at 00:00: one a day.
        assert_eq!(gap(&["0 0 * * 0", "0 0 * * 1-6"]), 86400);
        // Seed 001: Grafana on the 28th at 02:00: the longest month is 31 days.
        assert_eq!(gap(&["0 2 28 * *"]), 31 * 86400);
        // Seed 002: 01:00, 01:05, 01:10 are each daily.
        assert_eq!(gap(&["5 1 * * *"]), 86400);
        // Every 15 minutes (binary-log archiving).
        assert_eq!(gap(&["*/15 * * * *"]), 900);
        // Weekdays only: Friday → Monday.
        assert_eq!(gap(&["0 1 * * 1-5"]), 3 * 86400);
    }

    fn offsite(backups: &[&str], copies: &[&str]) -> u64 {
        let b: Vec<Schedule> = backups
            .iter()
            .map(|e| Schedule::parse(e).unwrap())
            .collect();
        let c: Vec<Schedule> = copies.iter().map(|e| Schedule::parse(e).unwrap()).collect();
        worst_offsite_gap(&b.iter().collect::<Vec<_>>(), &c.iter().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn offsite_copies_add_the_wait_for_the_next_copy() {
        // Daily dump at 22:00, copied at 04:00: just before a copy, the newest offsite
        // backup is from 22:00 two days before (30 h).
        assert_eq!(offsite(&["0 22 * * *"], &["0 4 * * *"]), 30 * 3600);
        // A copy right after each backup adds nothing beyond the backups' own gap.
        assert_eq!(offsite(&["0 22 * * *"], &["0 22 * * *"]), 86400);
        // Weekly copies of daily backups: a week plus the day before the copy.
        assert_eq!(
            offsite(&["0 1 * * *"], &["0 3 * * 0"]),
            7 * 86400 + 2 * 3600
        );
    }

    /// The gap walking every run one by one finds: the oracle for the day-wise walk.
    fn brute_force_gap(expr: &str) -> u64 {
        let cron = Cron::from_str(expr).unwrap();
        let (from, to) = horizon().unwrap();
        let mut runs = Vec::new();
        let mut t = from;
        while let Ok(n) = cron.find_next_occurrence(&t, false) {
            if n >= to {
                break;
            }
            runs.push(n);
            t = n;
        }
        runs.windows(2)
            .map(|w| (w[1] - w[0]).num_seconds() as u64)
            .max()
            .unwrap()
    }

    #[test]
    fn the_day_wise_walk_finds_what_walking_every_run_finds() {
        for expr in [
            "*/30 * * * *",
            "0 22 * * *",
            "0 0 * * 1-6",
            "15 3,14 29 2 *",
            "*/20 8-17 * * 1-5",
            "0 2 28 * *",
            "5 */6 1,15 * 0",
            "0 * * 1-6 *",
        ] {
            assert_eq!(gap(&[expr]), brute_force_gap(expr), "{expr}");
        }
        // Dense schedules, cheap now: every minute, and every minute of January to June
        // only (the worst gap, July to December, is five months after the first run).
        assert_eq!(gap(&["* * * * *"]), 60);
        assert_eq!(gap(&["* * * 1-6 *"]), (184 * 86400) + 60);
    }

    #[test]
    fn bad_expressions_are_refused() {
        assert!(Schedule::parse("0 22 * *").is_err());
        assert!(Schedule::parse("61 22 * * *").is_err());
        assert!(Schedule::parse("0 25 * * *").is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(86400 * 31), "31d");
        assert_eq!(human(90000), "1d 1h");
        assert_eq!(human(900), "15m");
    }
}
