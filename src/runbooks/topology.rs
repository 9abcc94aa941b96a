//! What the topology runbooks (switchover, failover, rejoin) read and share: one database
//! host's replication state in one client call, one-shot SQL, and moving the proxies'
//! writer. GTID arithmetic is `crate::sql::gtid`'s; the statements and the names the server
//! reports are `crate::sql`'s.

use crate::sql::gtid::{GtidSet, Missing};
use crate::sql::{Dialect, ReplicaStatus};
use crate::transport::Transport;

/// A database host's replication state, read in one client call.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub up: bool,
    pub read_only: bool,
    pub server_id: u32,
    /// MySQL's `server_uuid` (the source part of the GTIDs it writes); empty on MariaDB.
    pub server_uuid: String,
    /// The logged position, the applied position and the binary log history (see
    /// [`Dialect::gtid_state`]; on MySQL all three are `gtid_executed`).
    pub binlog_pos: GtidSet,
    pub slave_pos: GtidSet,
    pub binlog_state: GtidSet,
    /// Transactions open longer than 10 seconds.
    pub long_trx: u64,
    /// The replica status; None when the host replicates from nobody.
    pub replica: Option<ReplicaStatus>,
}

impl DbState {
    pub fn replicating(&self) -> bool {
        self.replica.is_some()
    }
    /// The replica status, or [`ReplicaStatus::NONE`] when the host replicates from nobody.
    pub fn status(&self) -> &ReplicaStatus {
        static NONE: ReplicaStatus = ReplicaStatus::NONE;
        self.replica.as_ref().unwrap_or(&NONE)
    }
    /// Both threads running ("Connecting" is not running).
    pub fn threads_running(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| r.threads_running())
    }
    /// Received (IO thread) position.
    pub fn io_pos(&self) -> GtidSet {
        self.replica
            .as_ref()
            .map(|r| GtidSet::parse(&r.received))
            .unwrap_or_default()
    }
    /// True when everything received has been applied.
    pub fn relay_drained(&self) -> bool {
        self.slave_pos.covers(&self.io_pos())
    }
    /// Everything this server has logged or applied.
    pub fn history(&self) -> GtidSet {
        GtidSet::union([&self.binlog_state, &self.slave_pos])
    }
    /// Transactions written on this server itself (its server_id; MySQL: its server_uuid)
    /// that `others` never had (errant transactions, DESIGN.md).
    pub fn errant_against(&self, others: &[&DbState]) -> Missing {
        let own = self
            .binlog_state
            .originated_by(self.server_id, &self.server_uuid);
        let theirs = GtidSet::union(
            others
                .iter()
                .map(|o| o.history())
                .collect::<Vec<_>>()
                .iter(),
        );
        own.missing_from(&theirs)
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

/// Parses [`state_probe`]'s output of a `d` server.
pub fn parse_state(out: &str, d: Dialect) -> DbState {
    let f = crate::sql::vertical(out);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    DbState {
        up: get("up") == "dbfleet-up",
        read_only: get("read_only") != "0",
        server_id: get("server_id").parse().unwrap_or(0),
        server_uuid: get("server_uuid"),
        binlog_pos: GtidSet::parse(&get("binlog_pos")),
        slave_pos: GtidSet::parse(&get("slave_pos")),
        binlog_state: GtidSet::parse(&get("binlog_state")),
        long_trx: get("long_trx").parse().unwrap_or(0),
        replica: d.replica_status(&f),
    }
}

/// Reads `host`'s state.
///
/// Errors: the transport's message when the host cannot be reached.
pub async fn read_state(host: &(impl Transport + ?Sized), d: Dialect) -> Result<DbState, String> {
    let o = host
        .run(&state_probe(d))
        .await
        .map_err(|e| format!("reading {}: {e}", host.name()))?;
    Ok(parse_state(&o.stdout, d))
}

/// Runs `statements` in one client call on `host` (stdin), returning the output rows.
///
/// Errors: a message naming `what`, the host and the server's error.
pub async fn sql(
    host: &(impl Transport + ?Sized),
    d: Dialect,
    what: &str,
    statements: &str,
) -> Result<String, String> {
    sql_as(host, d, what, statements, "-N -B").await
}

/// [`sql`] with the client's output options `format` (`-N -B`: tab-separated rows;
/// `-E`: `name: value` lines, read by [`crate::sql::vertical`]).
///
/// Errors: as [`sql`]'s.
pub async fn sql_as(
    host: &(impl Transport + ?Sized),
    d: Dialect,
    what: &str,
    statements: &str,
    format: &str,
) -> Result<String, String> {
    let script = format!(
        "{} {format} <<'DBFLEET_SQL'\n{statements}\nDBFLEET_SQL\n",
        d.client()
    );
    let o = host
        .run(&script)
        .await
        .map_err(|e| format!("{what} on {}: {e}", host.name()))?;
    if o.code != 0 {
        return Err(format!(
            "{what} on {} failed: {}",
            host.name(),
            o.stderr.trim().lines().last().unwrap_or("")
        ));
    }
    Ok(o.stdout)
}

/// Runs `kills` (the `KILL CONNECTION` statements [`Dialect::app_sessions_kill_list`]
/// listed) on `host`. A session may end by itself meanwhile, so KILL errors are not fatal
/// (`--force`), and nothing is reported.
pub async fn kill_sessions(host: &(impl Transport + ?Sized), d: Dialect, kills: &[String]) {
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

/// Fences a writable server that should not be (a returned old primary): its
/// application sessions are killed first, then its semi-sync primary side is turned off,
/// then read_only ON. Commits waiting for an ack nobody will send (lossless semi-sync
/// without fallback) would otherwise hold `SET GLOBAL read_only` forever; their clients
/// are gone, so nothing they wrote was acknowledged.
///
/// Errors: a message when read_only cannot be set.
pub async fn fence_server(host: &(impl Transport + ?Sized), d: Dialect) -> Result<(), String> {
    let kills: Vec<String> = sql(
        host,
        d,
        "listing application sessions",
        d.app_sessions_kill_list(),
    )
    .await
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect();
    kill_sessions(host, d, &kills).await;
    let fence = format!(
        "{}\n{}",
        d.set_semi_sync_primary(false),
        d.set_read_only(true)
    );
    sql(host, d, "making it read-only", &fence)
        .await
        .map(|_| ())
}

/// HAProxy's runtime API socket on proxy hosts (`templates/haproxy.cfg.j2`).
pub const HAPROXY_SOCKET: &str = "/run/haproxy/admin.sock";

/// The file the proxy checker reads the cluster primary's address from (`proxy-primary.j2`):
/// a reader is up only while it replicates from that address.
pub const PROXY_PRIMARY_FILE: &str = "/etc/haproxy/dbfleet-primary";

/// The runtime API commands that move the `writer` backend to `new` and take `old` out
/// (state maint, its sessions shut); `old: None` only enables `new`.
pub fn writer_commands(new: &str, old: Option<&str>) -> Vec<String> {
    let mut cmds = vec![
        format!("set server writer/{new} state ready"),
        format!("set server writer/{new} health up"),
    ];
    if let Some(old) = old {
        cmds.push(format!("set server writer/{old} state maint"));
        cmds.push(format!("shutdown sessions server writer/{old}"));
    }
    cmds
}

/// The runtime API commands that fence `old`: out of the writer AND the reader backend
/// (state maint, its sessions shut), leaving no writer. A fenced server stays out of both
/// until a reload (the rendered file lists it as a replica then, and the readers' check
/// keeps it down until it replicates from the new primary, read-only: `rejoin`).
pub fn fence_commands(old: &str) -> Vec<String> {
    vec![
        format!("set server writer/{old} state maint"),
        format!("shutdown sessions server writer/{old}"),
        format!("set server reader/{old} state maint"),
        format!("shutdown sessions server reader/{old}"),
    ]
}

/// The runtime API commands that take `server` out of the reader backend (`out`: state
/// maint, its sessions shut) or put it back (state ready). A replica about to be promoted
/// leaves the readers before it is made writable: the readers' checks would see it
/// writable only a check interval or two later, and the reader port must never serve a
/// writable server (the nemesis benchmark saw 2 to 4 such reads per failover before this).
pub fn reader_commands(server: &str, out: bool) -> Vec<String> {
    if out {
        vec![
            format!("set server reader/{server} state maint"),
            format!("shutdown sessions server reader/{server}"),
        ]
    } else {
        vec![format!("set server reader/{server} state ready")]
    }
}

/// Moves the `writer` backend of HAProxy on `proxy` to `new` (at `new_address`) and takes
/// `old` out ([`writer_commands`]), live through the runtime API: no reload, no dropped
/// reader sessions. The readers' check follows the new primary at once
/// ([`PROXY_PRIMARY_FILE`], replaced atomically). The rendered configuration says the
/// same, so a later reload keeps it.
///
/// Errors: a message when the socket refuses a command or the file cannot be written.
pub async fn move_writer(
    proxy: &(impl Transport + ?Sized),
    new: &str,
    new_address: &str,
    old: Option<&str>,
) -> Result<(), String> {
    proxy_runtime(
        proxy,
        &writer_commands(new, old),
        Some(new_address),
        "moving the writer",
    )
    .await
}

/// Fences `old` on `proxy` ([`fence_commands`]).
///
/// Errors: a message when the socket refuses a command.
pub async fn fence_writer(proxy: &(impl Transport + ?Sized), old: &str) -> Result<(), String> {
    proxy_runtime(proxy, &fence_commands(old), None, "fencing").await
}

/// Takes `server` out of the reader backend on `proxy`, or puts it back
/// ([`reader_commands`]).
///
/// Errors: a message when the socket refuses a command.
pub async fn reader_maint(
    proxy: &(impl Transport + ?Sized),
    server: &str,
    out: bool,
) -> Result<(), String> {
    proxy_runtime(
        proxy,
        &reader_commands(server, out),
        None,
        "taking a reader out",
    )
    .await
}

/// Sends `cmds` to HAProxy's runtime API on `proxy` (`runtime_api`); with
/// `primary_address`, [`PROXY_PRIMARY_FILE`] names it first (replaced atomically), so the
/// readers' check follows the new primary.
///
/// Errors: a message naming `what` when the file cannot be written or a command is refused.
pub async fn proxy_runtime(
    proxy: &(impl Transport + ?Sized),
    cmds: &[String],
    primary_address: Option<&str>,
    what: &str,
) -> Result<(), String> {
    if let Some(address) = primary_address {
        let o = proxy
            .run(&format!(
                "set -eu
printf '%s\\n' {a} > {f}.dbfleet-tmp
chmod 0644 {f}.dbfleet-tmp
mv {f}.dbfleet-tmp {f}
",
                a = crate::tasks::q(address),
                f = PROXY_PRIMARY_FILE
            ))
            .await
            .map_err(|e| format!("{what} on {}: {e}", proxy.name()))?;
        if o.code != 0 {
            return Err(format!(
                "writing {PROXY_PRIMARY_FILE} on {}: {}",
                proxy.name(),
                o.stderr.trim()
            ));
        }
    }
    runtime_api(proxy, cmds, what).await
}

/// HAProxy's saved runtime states (`server-state-file` in `haproxy.cfg.j2`), loaded by the
/// next process after a reload or restart.
pub const HAPROXY_STATE_FILE: &str = "/var/lib/haproxy/dbfleet-server-state";

/// Sends `cmds` to HAProxy's runtime API on `proxy` in one connection (socat), then saves
/// the servers' runtime states to [`HAPROXY_STATE_FILE`], so a fence or a moved writer
/// survives the next reload or restart. The API answers these commands with nothing on
/// success, so any output is the error.
async fn runtime_api(
    proxy: &(impl Transport + ?Sized),
    cmds: &[String],
    what: &str,
) -> Result<(), String> {
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
        .map_err(|e| format!("{what} on {}: {e}", proxy.name()))?;
    if o.code != 0 {
        return Err(format!(
            "{what} on {} failed: {}",
            proxy.name(),
            o.stderr.trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drained_compares_received_with_applied() {
        let mut s = DbState {
            replica: Some(ReplicaStatus {
                received: "0-1-10".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        s.slave_pos = GtidSet::parse("0-1-9");
        assert!(!s.relay_drained());
        s.slave_pos = GtidSet::parse("0-1-10");
        assert!(s.relay_drained());
    }
}
