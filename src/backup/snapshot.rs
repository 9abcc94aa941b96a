//! What a backup server holds of a job: restic snapshots (time, kind tags, size) as the
//! job's script on its host lists them (`/usr/local/lib/dbfleet/backup-JOB snapshots`),
//! and a physical job's restore chain (the newest full backup, the newest differential on
//! it, and the incrementals after those).

use serde::Deserialize;

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

impl Snapshot {
    /// The backup's kind, from its tags (`templates/backup-job.sh.j2` tags each snapshot
    /// with its mode): `full`, `differential`, `incremental` or `run`; "" when none.
    pub fn mode(&self) -> &str {
        self.tags
            .iter()
            .find(|t| MODES.contains(&t.as_str()))
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Every mode a job's script runs (its snapshots' kind tags).
pub const MODES: [&str; 4] = ["full", "differential", "incremental", "run"];

#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub total_bytes_processed: u64,
}

/// A physical job's restore chain: its newest full backup, then what to apply on it in
/// order: the newest differential taken after that full (based on the full: the changes
/// since it, seed 003), then the incrementals taken after the newer of the two (each based
/// on the backup before it), oldest first (`templates/backup-job.sh.j2`). Incrementals
/// older than the differential are in it already. `None` without a full backup.
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
    let differential = snaps
        .iter()
        .filter(|s| tagged(s, "differential") && time(s) > time(full))
        .max_by_key(|s| time(s));
    let base = differential.unwrap_or(full);
    let mut incs: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| tagged(s, "incremental") && time(s) > time(base))
        .collect();
    incs.sort_by_key(|s| time(s));
    Some((full, differential.into_iter().chain(incs).collect()))
}

/// A restore chain in words: `full 1a2b3c4d + differential 5e6f7a8b + 2 incremental(s)`.
pub fn describe_chain(full: &Snapshot, rest: &[&Snapshot]) -> String {
    let mut s = format!("full {}", full.short_id);
    if let Some(d) = rest.iter().find(|b| b.mode() == "differential") {
        s.push_str(&format!(" + differential {}", d.short_id));
    }
    let incs = rest.iter().filter(|b| b.mode() == "incremental").count();
    if incs > 0 {
        s.push_str(&format!(" + {incs} incremental(s)"));
    }
    s
}

/// The version of `backup list --json`'s shape.
pub const LIST_JSON_FORMAT_VERSION: u32 = 1;

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

    /// Seed 003's week: a Sunday full, a differential each weekday, incrementals between.
    /// The restore takes the full, the newest differential after it (not the older one,
    /// not the incrementals it already holds), then the incrementals after it.
    #[test]
    fn the_chain_takes_the_newest_differential_and_the_incrementals_after_it() {
        let s = [
            snap("2026-11-29T00:00:00Z", "f1", "full"),
            snap("2026-11-29T06:00:00Z", "i1", "incremental"),
            snap("2026-11-30T00:00:00Z", "d1", "differential"),
            snap("2026-11-30T06:00:00Z", "i2", "incremental"),
            snap("2026-12-01T00:00:00Z", "d2", "differential"),
            snap("2026-12-01T12:00:00Z", "i4", "incremental"),
            snap("2026-12-01T06:00:00Z", "i3", "incremental"),
            // Before the newest full: not in the chain.
            snap("2026-11-28T00:00:00Z", "d0", "differential"),
        ];
        let (full, rest) = chain(&s).expect("chain");
        assert_eq!(full.short_id, "f1");
        let ids: Vec<(&str, &str)> = rest
            .iter()
            .map(|s| (s.short_id.as_str(), s.mode()))
            .collect();
        assert_eq!(
            ids,
            [
                ("d2", "differential"),
                ("i3", "incremental"),
                ("i4", "incremental")
            ]
        );
        // A differential before any incremental of the week, and none at all.
        let (_, rest) = chain(&s[..3]).expect("chain");
        assert_eq!(
            rest.iter().map(|s| s.short_id.as_str()).collect::<Vec<_>>(),
            ["d1"]
        );
        let (_, rest) = chain(&s[..2]).expect("chain");
        assert_eq!(
            rest.iter().map(|s| s.short_id.as_str()).collect::<Vec<_>>(),
            ["i1"]
        );
    }
}
