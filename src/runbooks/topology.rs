//! What the topology runbooks (switchover, failover, rejoin) read and share: one database
//! host's replication state in one client call, GTID arithmetic, one-shot SQL, and moving
//! the proxies' writer.
//!
//! GTIDs are MariaDB's `domain-server-seq` (MariaDB KB "GTID"). `gtid_binlog_state` keeps
//! the last sequence number per (domain, server_id): comparing two servers' states tells
//! exactly which transactions one has that the other never saw, without reading binlogs.

use std::collections::BTreeMap;
use std::fmt;

use crate::sql::Dialect;
use crate::tasks::replication::vertical;
use crate::transport::SshHost;

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

/// A database host's replication state, read in one client call.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub up: bool,
    pub read_only: bool,
    pub server_id: u32,
    /// `gtid_binlog_pos`, `gtid_slave_pos`, `gtid_binlog_state`.
    pub binlog_pos: Vec<Gtid>,
    pub slave_pos: Vec<Gtid>,
    pub binlog_state: Vec<Gtid>,
    /// Transactions open longer than 10 seconds.
    pub long_trx: u64,
    /// SHOW SLAVE STATUS fields; empty when the host replicates from nobody.
    pub replica: BTreeMap<String, String>,
}

impl DbState {
    pub fn replicating(&self) -> bool {
        self.replica.contains_key("Master_Host")
    }
    pub fn field(&self, k: &str) -> &str {
        self.replica.get(k).map(String::as_str).unwrap_or("")
    }
    /// Both threads running ("Connecting" is not running).
    pub fn threads_running(&self) -> bool {
        self.field("Slave_IO_Running") == "Yes" && self.field("Slave_SQL_Running") == "Yes"
    }
    /// Received (IO thread) position.
    pub fn io_pos(&self) -> Vec<Gtid> {
        parse_gtids(self.field("Gtid_IO_Pos"))
    }
    /// True when everything received has been applied.
    pub fn relay_drained(&self) -> bool {
        let io = by_domain(&self.io_pos());
        let applied = by_domain(&self.slave_pos);
        io.iter()
            .all(|(d, s)| applied.get(d).copied().unwrap_or(0) >= *s)
    }
    /// Transactions written on this server under its own server_id that `others` never had
    /// (errant transactions, DESIGN.md).
    pub fn errant_against(&self, others: &[&DbState]) -> Vec<(Gtid, Gtid)> {
        let own: Vec<Gtid> = self
            .binlog_state
            .iter()
            .copied()
            .filter(|g| g.server == self.server_id)
            .collect();
        let theirs: Vec<Gtid> = others
            .iter()
            .flat_map(|o| o.binlog_state.iter().chain(o.slave_pos.iter()).copied())
            .collect();
        missing_from(&own, &theirs)
    }
}

/// The script printing a [`DbState`] (vertical client output).
pub fn state_probe(d: Dialect) -> String {
    format!(
        "{} -E --force 2>/dev/null <<'DBFLEET_SQL'\n\
         SELECT 'dbfleet-up' AS up, @@GLOBAL.read_only AS read_only, @@GLOBAL.server_id AS server_id, \
         (SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_started < NOW() - INTERVAL 10 SECOND) AS long_trx;\n\
         {}\n{};\nDBFLEET_SQL\ntrue\n",
        d.client(),
        d.gtid_state(),
        d.show_replica_status()
    )
}

/// Parses [`state_probe`]'s output.
pub fn parse_state(out: &str) -> DbState {
    let f = vertical(out);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let replica: BTreeMap<String, String> = if f.contains_key("Master_Host") {
        f.iter()
            .filter(|(k, _)| k.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        BTreeMap::new()
    };
    DbState {
        up: get("up") == "dbfleet-up",
        read_only: get("read_only") != "0",
        server_id: get("server_id").parse().unwrap_or(0),
        binlog_pos: parse_gtids(&get("binlog_pos")),
        slave_pos: parse_gtids(&get("slave_pos")),
        binlog_state: parse_gtids(&get("binlog_state")),
        long_trx: get("long_trx").parse().unwrap_or(0),
        replica,
    }
}

/// Reads `host`'s state.
///
/// Errors: the transport's message when the host cannot be reached.
pub async fn read_state(host: &SshHost, d: Dialect) -> Result<DbState, String> {
    let o = host
        .run(&state_probe(d))
        .await
        .map_err(|e| format!("reading {}: {e}", host.name))?;
    Ok(parse_state(&o.stdout))
}

/// Runs `statements` in one client call on `host` (stdin), returning the output rows.
///
/// Errors: a message naming `what`, the host and the server's error.
pub async fn sql(
    host: &SshHost,
    d: Dialect,
    what: &str,
    statements: &str,
) -> Result<String, String> {
    let script = format!(
        "{} -N -B <<'DBFLEET_SQL'\n{statements}\nDBFLEET_SQL\n",
        d.client()
    );
    let o = host
        .run(&script)
        .await
        .map_err(|e| format!("{what} on {}: {e}", host.name))?;
    if o.code != 0 {
        return Err(format!(
            "{what} on {} failed: {}",
            host.name,
            o.stderr.trim().lines().last().unwrap_or("")
        ));
    }
    Ok(o.stdout)
}

/// Runs `kills` (the `KILL CONNECTION` statements [`Dialect::app_sessions_kill_list`]
/// listed) on `host`. A session may end by itself meanwhile, so KILL errors are not fatal
/// (`--force`), and nothing is reported.
pub async fn kill_sessions(host: &SshHost, d: Dialect, kills: &[String]) {
    if kills.is_empty() {
        return;
    }
    let _ = host
        .run(&format!(
            "{} --force 2>/dev/null <<'DBFLEET_SQL'\n{}\nDBFLEET_SQL\ntrue\n",
            d.client(),
            kills.join("\n")
        ))
        .await;
}

/// HAProxy's runtime API socket on proxy hosts (`templates/haproxy.cfg.j2`).
pub const HAPROXY_SOCKET: &str = "/run/haproxy/admin.sock";

/// The file the proxy checker reads the cluster primary's address from (`proxy-primary.j2`):
/// a reader is up only while it replicates from that address.
pub const PROXY_PRIMARY_FILE: &str = "/etc/haproxy/dbfleet-primary";

/// Moves the `writer` backend of HAProxy on `proxy` to `new` (at `new_address`) and takes
/// `old` out (state maint, its sessions shut), live through the runtime API: no reload, no
/// dropped reader sessions. The readers' check follows the new primary at once
/// ([`PROXY_PRIMARY_FILE`], replaced atomically). `old: None` only enables `new`. The
/// rendered configuration says the same, so a later reload keeps it.
///
/// Errors: a message when the socket refuses a command or the file cannot be written.
pub async fn move_writer(
    proxy: &SshHost,
    new: &str,
    new_address: &str,
    old: Option<&str>,
) -> Result<(), String> {
    let mut cmds = vec![
        format!("set server writer/{new} state ready"),
        format!("set server writer/{new} health up"),
    ];
    if let Some(old) = old {
        cmds.push(format!("set server writer/{old} state maint"));
        cmds.push(format!("shutdown sessions server writer/{old}"));
    }
    let o = proxy
        .run(&format!(
            "set -eu
printf '%s\\n' {a} > {f}.dbfleet-tmp
chmod 0644 {f}.dbfleet-tmp
mv {f}.dbfleet-tmp {f}
",
            a = crate::tasks::q(new_address),
            f = PROXY_PRIMARY_FILE
        ))
        .await
        .map_err(|e| format!("moving the writer on {}: {e}", proxy.name))?;
    if o.code != 0 {
        return Err(format!(
            "writing {PROXY_PRIMARY_FILE} on {}: {}",
            proxy.name,
            o.stderr.trim()
        ));
    }
    runtime_api(proxy, &cmds, "moving the writer").await
}

/// Fences `old` on `proxy`: out of the writer AND the reader backend (state maint, its
/// sessions shut), leaving no writer. A fenced server stays out of both until a reload
/// (the rendered file lists it as a replica then, and the readers' check keeps it down
/// until it replicates from the new primary, read-only: `rejoin`).
///
/// Errors: a message when the socket refuses a command.
pub async fn fence_writer(proxy: &SshHost, old: &str) -> Result<(), String> {
    let cmds = [
        format!("set server writer/{old} state maint"),
        format!("shutdown sessions server writer/{old}"),
        format!("set server reader/{old} state maint"),
        format!("shutdown sessions server reader/{old}"),
    ];
    runtime_api(proxy, &cmds, "fencing").await
}

/// Takes `server` out of the reader backend on `proxy` (`out`: state maint, its sessions
/// shut) or puts it back (state ready). A replica about to be promoted leaves the readers
/// before it is made writable: the readers' checks would see it writable only a check
/// interval or two later, and the reader port must never serve a writable server (the
/// nemesis benchmark saw 2 to 4 such reads per failover before this).
///
/// Errors: a message when the socket refuses a command.
pub async fn reader_maint(proxy: &SshHost, server: &str, out: bool) -> Result<(), String> {
    let cmds: Vec<String> = if out {
        vec![
            format!("set server reader/{server} state maint"),
            format!("shutdown sessions server reader/{server}"),
        ]
    } else {
        vec![format!("set server reader/{server} state ready")]
    };
    runtime_api(proxy, &cmds, "taking a reader out").await
}

/// HAProxy's saved runtime states (`server-state-file` in `haproxy.cfg.j2`), loaded by the
/// next process after a reload or restart.
pub const HAPROXY_STATE_FILE: &str = "/var/lib/haproxy/dbfleet-server-state";

/// Sends `cmds` to HAProxy's runtime API on `proxy` in one connection (socat), then saves
/// the servers' runtime states to [`HAPROXY_STATE_FILE`], so a fence or a moved writer
/// survives the next reload or restart. The API answers these commands with nothing on
/// success, so any output is the error.
async fn runtime_api(proxy: &SshHost, cmds: &[String], what: &str) -> Result<(), String> {
    let script = format!(
        "set -eu\nout=$(echo {} | socat -t 2 stdio unix-connect:{HAPROXY_SOCKET})\n\
         if [ -n \"$(printf '%s' \"$out\" | tr -d '[:space:]')\" ]; then echo \"$out\" >&2; exit 1; fi\n\
         echo 'show servers state' | socat -t 2 stdio unix-connect:{HAPROXY_SOCKET} > {HAPROXY_STATE_FILE}.tmp\n\
         mv {HAPROXY_STATE_FILE}.tmp {HAPROXY_STATE_FILE}\n",
        crate::tasks::q(&cmds.join("; "))
    );
    let o = proxy
        .run(&script)
        .await
        .map_err(|e| format!("{what} on {}: {e}", proxy.name))?;
    if o.code != 0 {
        return Err(format!(
            "{what} on {} failed: {}",
            proxy.name,
            o.stderr.trim()
        ));
    }
    Ok(())
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

    #[test]
    fn drained_compares_received_with_applied() {
        let mut s = DbState::default();
        s.replica.insert("Master_Host".into(), "x".into());
        s.replica.insert("Gtid_IO_Pos".into(), "0-1-10".into());
        s.slave_pos = parse_gtids("0-1-9");
        assert!(!s.relay_drained());
        s.slave_pos = parse_gtids("0-1-10");
        assert!(s.relay_drained());
    }
}
