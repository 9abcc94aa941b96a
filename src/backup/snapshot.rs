//! What a backup server holds of a job: restic snapshots (time, kind tags, size) as the
//! job's script on its host lists them (`/usr/local/lib/dbfleet/backup-JOB snapshots`),
//! and a physical job's restore chain (the newest full backup and the incrementals on it).

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

#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub total_bytes_processed: u64,
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
}
