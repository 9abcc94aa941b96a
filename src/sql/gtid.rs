//! GTID sets: parsing, comparing and naming them.
//!
//! GTIDs are MariaDB's `domain-server-seq` (MariaDB KB "GTID"). `gtid_binlog_state` keeps
//! the last sequence number per (domain, server_id): comparing two servers' states tells
//! exactly which transactions one has that the other never saw, without reading binlogs.
//! MySQL's `uuid:interval` sets are not parsed here yet (its topology runbooks refuse).

use std::collections::BTreeMap;
use std::fmt;

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// Parses a GTID list ("0-1-42,1-2-7"); malformed entries are skipped.
pub fn parse_gtids(s: &str) -> Vec<Gtid> {
    s.split(',')
        .filter_map(|g| {
            let mut it = g.trim().split('-');
            Some(Gtid {
                domain: it.next()?.parse().ok()?,
                server: it.next()?.parse().ok()?,
                seq: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// Transactions in `ours` (a `gtid_binlog_state`) that `theirs` never had: for each
/// (domain, server) of ours, the range after their last sequence number of that pair.
/// Returns (first missing, last missing) per pair.
pub fn missing_from(ours: &[Gtid], theirs: &[Gtid]) -> Vec<(Gtid, Gtid)> {
    let mut out = Vec::new();
    for g in ours {
        let have = theirs
            .iter()
            .filter(|t| t.domain == g.domain && t.server == g.server)
            .map(|t| t.seq)
            .max()
            .unwrap_or(0);
        if g.seq > have {
            out.push((
                Gtid {
                    seq: have + 1,
                    ..*g
                },
                *g,
            ));
        }
    }
    out
}

/// Names missing ranges: "0-1-105" or "0-1-104..0-1-107 (4 transactions)".
pub fn name_ranges(ranges: &[(Gtid, Gtid)]) -> String {
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..{b} ({} transactions)", b.seq - a.seq + 1)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `gtid_binlog_state` a replica seeded from a copy taken at `position` inherits,
/// from its source's `gtid_binlog_state` read at seeding time: each (domain, server) entry
/// whose sequence number is at most the copy's in that domain. Under `gtid_strict_mode`
/// sequence numbers grow within a domain, so those transactions precede the copy and are in
/// it; later ones (and domains the copy does not know) come by replication. The copy's own
/// position entries are always kept. Returns the GTID list text ("0-1-7,0-2-42"), empty
/// when `position` is.
pub fn seeded_binlog_state(position: &[Gtid], source_state: &[Gtid]) -> String {
    let upto = by_domain(position);
    let mut pairs: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for g in position.iter().chain(
        source_state
            .iter()
            .filter(|g| upto.get(&g.domain).is_some_and(|max| g.seq <= *max)),
    ) {
        let e = pairs.entry((g.domain, g.server)).or_insert(0);
        *e = (*e).max(g.seq);
    }
    // MariaDB wants each domain's last GTID last: order by domain, then sequence number.
    let mut list: Vec<Gtid> = pairs
        .into_iter()
        .map(|((domain, server), seq)| Gtid {
            domain,
            server,
            seq,
        })
        .collect();
    list.sort_by_key(|g| (g.domain, g.seq));
    list.iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The highest sequence number per domain of a position.
pub fn by_domain(pos: &[Gtid]) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for g in pos {
        let e = m.entry(g.domain).or_insert(0);
        *e = (*e).max(g.seq);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_follow_the_binlog_state() {
        let old = parse_gtids("0-1-105,0-2-90");
        let new = parse_gtids("0-1-103,0-2-110");
        let m = missing_from(&old, &new);
        assert_eq!(name_ranges(&m), "0-1-104..0-1-105 (2 transactions)");
        assert!(missing_from(&new[..1], &old).is_empty());
        // A pair the other never saw at all is missing from its first transaction.
        assert_eq!(
            name_ranges(&missing_from(&parse_gtids("1-3-2"), &new)),
            "1-3-1..1-3-2 (2 transactions)"
        );
    }

    #[test]
    fn a_seeded_replica_inherits_the_history_before_its_copy() {
        // The copy was taken at 0-1-100; the source has since written 0-1-120, and its
        // history holds 0-2-50 (db2 was primary once) and 0-3-130 (after the copy).
        let state = seeded_binlog_state(
            &parse_gtids("0-1-100"),
            &parse_gtids("0-2-50,0-3-130,0-1-120,5-1-3"),
        );
        assert_eq!(state, "0-2-50,0-1-100");
        assert_eq!(seeded_binlog_state(&[], &parse_gtids("0-1-5")), "");
    }
}
