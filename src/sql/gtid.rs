//! GTID sets: parsing, comparing and naming them.
//!
//! MariaDB's GTIDs are `domain-server-seq` (MariaDB KB "GTID"). `gtid_binlog_state` keeps
//! the last sequence number per (domain, server_id): comparing two servers' states tells
//! exactly which transactions one has that the other never saw, without reading binlogs.
//! MySQL's are sets of `source_uuid[:tag]:interval[:interval]` (MySQL manual 19.1.3.1
//! "GTID Format and Storage"), compared as sets (what `GTID_SUBTRACT` and `GTID_SUBSET`
//! compute server-side). [`GtidSet`] holds either and answers the runbooks' questions
//! (covered? missing what? how many?) in one vocabulary; the free functions are
//! MariaDB's arithmetic.

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

/// A GTID set as a server reported it, MariaDB's or MySQL's (told apart by the text:
/// MySQL's entries carry a `:`). Parsing never fails: malformed entries are skipped, as
/// [`parse_gtids`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    /// MariaDB entries (`domain-server-seq`), in the server's order.
    pub mariadb: Vec<Gtid>,
    /// MySQL: (source uuid in lower case, tag or "") → sorted, disjoint, inclusive
    /// intervals of transaction numbers.
    pub mysql: BTreeMap<(String, String), Vec<(u64, u64)>>,
}

/// Transactions one set has that another lacks, named for an operator: each entry is
/// (its text, how many transactions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing(pub Vec<(String, u64)>);

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// "0-1-105", "0-1-104..0-1-107 (4 transactions)" or "3e11…:5-7 (3 transactions)",
    /// joined with ", ".
    pub fn name(&self) -> String {
        self.0
            .iter()
            .map(|(t, n)| {
                if *n == 1 {
                    t.clone()
                } else {
                    format!("{t} ({n} transactions)")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl GtidSet {
    /// Parses `gtid_binlog_pos`/`gtid_slave_pos`/`gtid_binlog_state`/`Gtid_IO_Pos`
    /// (MariaDB) or `gtid_executed`/`Retrieved_Gtid_Set` (MySQL; line breaks allowed).
    pub fn parse(s: &str) -> GtidSet {
        let mut set = GtidSet::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if !entry.contains(':') {
                set.mariadb.extend(parse_gtids(entry));
                continue;
            }
            let mut parts = entry.split(':');
            let uuid = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut tag = String::new();
            for p in parts.map(str::trim) {
                if p.starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b) = p.split_once('-').unwrap_or((p, p));
                    if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>())
                        && a >= 1
                        && a <= b
                    {
                        let v = set.mysql.entry((uuid.clone(), tag.clone())).or_default();
                        v.push((a, b));
                    }
                } else {
                    tag = p.to_ascii_lowercase();
                }
            }
        }
        for v in set.mysql.values_mut() {
            *v = normalize(std::mem::take(v));
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.values().all(Vec::is_empty)
    }

    /// The union of `sets` (MariaDB entries concatenated: the arithmetic reads the last
    /// sequence number per pair or domain).
    pub fn union<'a>(sets: impl IntoIterator<Item = &'a GtidSet>) -> GtidSet {
        let mut u = GtidSet::default();
        for s in sets {
            u.mariadb.extend(s.mariadb.iter().copied());
            for (k, v) in &s.mysql {
                u.mysql
                    .entry(k.clone())
                    .or_default()
                    .extend(v.iter().copied());
            }
        }
        for v in u.mysql.values_mut() {
            *v = normalize(std::mem::take(v));
        }
        u
    }

    /// True when a server at `self` has everything `other` holds: MariaDB, each domain's
    /// sequence number at least `other`'s (gtid_strict_mode orders a domain); MySQL,
    /// `other` ⊆ `self` (`GTID_SUBSET(other, self)`).
    pub fn covers(&self, other: &GtidSet) -> bool {
        let mine = by_domain(&self.mariadb);
        let maria = by_domain(&other.mariadb)
            .iter()
            .all(|(d, s)| mine.get(d).copied().unwrap_or(0) >= *s);
        maria
            && other.mysql.iter().all(|(k, theirs)| {
                let ours = self.mysql.get(k).map(Vec::as_slice).unwrap_or(&[]);
                subtract(theirs, ours).is_empty()
            })
    }

    /// What `self` has that `theirs` never saw: MariaDB, per (domain, server) the range
    /// after their last sequence number ([`missing_from`]); MySQL, the set difference
    /// (`GTID_SUBTRACT(self, theirs)`).
    pub fn missing_from(&self, theirs: &GtidSet) -> Missing {
        let mut out: Vec<(String, u64)> = missing_from(&self.mariadb, &theirs.mariadb)
            .into_iter()
            .map(|(a, b)| {
                let text = if a == b {
                    a.to_string()
                } else {
                    format!("{a}..{b}")
                };
                (text, b.seq - a.seq + 1)
            })
            .collect();
        for (k, ours) in &self.mysql {
            let have = theirs.mysql.get(k).map(Vec::as_slice).unwrap_or(&[]);
            for (a, b) in subtract(ours, have) {
                let head = if k.1.is_empty() {
                    k.0.clone()
                } else {
                    format!("{}:{}", k.0, k.1)
                };
                let text = if a == b {
                    format!("{head}:{a}")
                } else {
                    format!("{head}:{a}-{b}")
                };
                out.push((text, b - a + 1));
            }
        }
        Missing(out)
    }

    /// How many transactions of `self` (a primary's position) a server at `applied` has
    /// not applied: MariaDB, per domain the difference of sequence numbers (they grow by
    /// one per transaction under gtid_strict_mode); MySQL, the size of the set difference.
    pub fn behind(&self, applied: &GtidSet) -> u64 {
        let mine = by_domain(&applied.mariadb);
        let maria: u64 = by_domain(&self.mariadb)
            .iter()
            .map(|(d, seq)| seq.saturating_sub(mine.get(d).copied().unwrap_or(0)))
            .sum();
        let lacking = GtidSet {
            mariadb: Vec::new(),
            mysql: self.mysql.clone(),
        }
        .missing_from(applied);
        maria + lacking.0.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Each MariaDB entry and each MySQL interval as text, one per item ("0-1-5",
    /// "uuid:3-7"), for lists an operator reads.
    pub fn items(&self) -> Vec<String> {
        let mut out: Vec<String> = self.mariadb.iter().map(Gtid::to_string).collect();
        for ((u, tag), v) in &self.mysql {
            let head = if tag.is_empty() {
                u.clone()
            } else {
                format!("{u}:{tag}")
            };
            out.extend(v.iter().map(|(a, b)| {
                if a == b {
                    format!("{head}:{a}")
                } else {
                    format!("{head}:{a}-{b}")
                }
            }));
        }
        out
    }

    /// How far a server at `self` has come, to rank replicas: MariaDB, the sum of each
    /// domain's last sequence number; MySQL, the number of transactions in the set.
    pub fn progress(&self) -> u64 {
        by_domain(&self.mariadb).values().sum::<u64>()
            + self
                .mysql
                .values()
                .flatten()
                .map(|(a, b)| b - a + 1)
                .sum::<u64>()
    }

    /// The part of the set a server wrote itself: MariaDB entries with its `server_id`,
    /// MySQL intervals of its `server_uuid` (errant transactions are looked for there:
    /// a replica's share of its source's transactions is not errant).
    pub fn originated_by(&self, server_id: u32, server_uuid: &str) -> GtidSet {
        let uuid = server_uuid.trim().to_ascii_lowercase();
        GtidSet {
            mariadb: self
                .mariadb
                .iter()
                .copied()
                .filter(|g| g.server == server_id)
                .collect(),
            mysql: self
                .mysql
                .iter()
                .filter(|((u, _), _)| !uuid.is_empty() && *u == uuid)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl fmt::Display for GtidSet {
    /// The set as the server writes it ("0-1-42,1-2-7" or "uuid:1-5:7,uuid2:1-3").
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut parts: Vec<String> = self.mariadb.iter().map(Gtid::to_string).collect();
        let mut uuids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((u, tag), v) in &self.mysql {
            let e = uuids.entry(u.as_str()).or_default();
            if !tag.is_empty() {
                e.push(tag.clone());
            }
            e.extend(v.iter().map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            }));
        }
        parts.extend(
            uuids
                .into_iter()
                .map(|(u, rest)| format!("{u}:{}", rest.join(":"))),
        );
        f.write_str(&parts.join(","))
    }
}

/// Sorts and merges inclusive intervals (adjacent ones too: 1-5 and 6-9 are 1-9).
fn normalize(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `ours` minus `theirs`, both normalized.
fn subtract(ours: &[(u64, u64)], theirs: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut a, b) in ours {
        for &(c, d) in theirs {
            if d < a || c > b {
                continue;
            }
            if c > a {
                out.push((a, c - 1));
            }
            if d >= b {
                a = b.saturating_add(1);
                break;
            }
            a = d + 1;
        }
        if a <= b {
            out.push((a, b));
        }
    }
    out
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
    fn mysql_sets_are_compared_as_sets() {
        let u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let u2 = "4f22ab58-82db-22f2-af44-d91bb0530673";
        // Line breaks as gtid_executed prints them, upper case, unmerged intervals.
        let primary = GtidSet::parse(&format!("{}:1-5:6-10,\n{u2}:1-3", u1.to_uppercase()));
        assert_eq!(primary.to_string(), format!("{u1}:1-10,{u2}:1-3"));
        let replica = GtidSet::parse(&format!("{u1}:1-8,{u2}:1-3"));
        assert!(primary.covers(&replica) && !replica.covers(&primary));
        assert_eq!(
            primary.missing_from(&replica).name(),
            format!("{u1}:9-10 (2 transactions)")
        );
        assert!(replica.missing_from(&primary).is_empty());
        // A hole in the middle (a transaction the replica skipped) is missing too.
        let holed = GtidSet::parse(&format!("{u1}:1-4:6-10,{u2}:1-3"));
        assert!(!holed.covers(&primary));
        assert_eq!(primary.missing_from(&holed).name(), format!("{u1}:5"));
        assert_eq!(primary.progress(), 13);
        // Its own writes only: the server_uuid's intervals.
        assert_eq!(
            primary.originated_by(0, u2).to_string(),
            format!("{u2}:1-3")
        );
        assert!(primary.originated_by(0, "").is_empty());
        // Tagged GTIDs (MySQL 8.4+) keep their tag apart.
        let tagged = GtidSet::parse(&format!("{u1}:1-3:audit:1-2"));
        assert_eq!(tagged.progress(), 5);
        assert_eq!(tagged.to_string(), format!("{u1}:1-3:audit:1-2"));
        assert!(!GtidSet::parse(&format!("{u1}:1-3")).covers(&tagged));
        let u = GtidSet::union([&replica, &GtidSet::parse(&format!("{u1}:9-10"))]);
        assert!(u.covers(&primary));
        assert_eq!(primary.behind(&replica), 2);
        assert_eq!(primary.behind(&primary), 0);
        assert_eq!(
            holed.items(),
            vec![
                format!("{u1}:1-4"),
                format!("{u1}:6-10"),
                format!("{u2}:1-3")
            ]
        );
    }

    #[test]
    fn mariadb_sets_answer_as_the_free_functions_do() {
        let old = GtidSet::parse("0-1-105,0-2-90");
        let new = GtidSet::parse("0-1-103,0-2-110");
        assert_eq!(
            old.missing_from(&new).name(),
            "0-1-104..0-1-105 (2 transactions)"
        );
        assert!(new.covers(&old) && !old.covers(&new));
        assert_eq!(old.to_string(), "0-1-105,0-2-90");
        assert_eq!(old.originated_by(2, "").to_string(), "0-2-90");
        assert_eq!(GtidSet::parse("0-1-5,1-1-7").progress(), 12);
        // Behind by domain: the last writer changed (0-2-110 after 0-1-103), 7 to go.
        assert_eq!(
            GtidSet::parse("0-2-110").behind(&GtidSet::parse("0-1-103")),
            7
        );
        assert!(GtidSet::parse("").is_empty());
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
