//! `dbfleet status`: the live state of every database host, read in one round trip each,
//! set against what the inventory declares.
//!
//! Unhealthy, each with the host and the reason: the server is unreachable or down; a
//! replica's IO or SQL thread is stopped; its lag is over `max_replica_lag_seconds`; it is
//! behind the primary's GTID position and does not reach it within a grace period (the
//! distance in transactions and its last error are named, even while its threads say Yes);
//! (seed 000's monitoring script alerts at 300 s); it replicates from another host than its
//! declared source; it is writable (`read_only` off); it has an errant transaction, that is
//! a `gtid_binlog_state` entry with its own server_id in the primary's domain (MySQL: a
//! `gtid_executed` interval of its own `server_uuid`) that the primary never had (DESIGN.md:
//! a write that bypassed read_only); a declared primary is read-only or replicates.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::inventory::{Host, Inventory, Role};
use crate::sql::Dialect;
use crate::transport::SshHost;

pub mod backups;
pub mod monitors;
pub mod proxies;
pub mod topology;

/// The start of the problem naming a replica's errant transactions.
const ERRANT: &str = "errant transaction(s) written on the replica itself";

/// One database host's live state.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HostStatus {
    pub host: String,
    /// Declared role: primary or replica.
    pub declared: String,
    /// What the server is: primary (not replicating), replica, or unknown.
    pub live: String,
    pub read_only: Option<bool>,
    pub server_id: Option<u32>,
    /// The running server's version (`@@version`, e.g. `10.11.19-MariaDB-0+deb12u1-log`):
    /// what a rolling upgrade changes. None when it is not running.
    pub version: Option<String>,
    /// The logged and applied GTID positions (JSON names: see `crate::sql::GtidReport`).
    #[serde(flatten)]
    pub gtid: crate::sql::GtidReport,
    /// Replicas: the source host (address) the server replicates from.
    pub source: Option<String>,
    pub io_running: Option<String>,
    pub sql_running: Option<String>,
    /// Seconds_Behind_Master; None when unknown (threads stopped).
    pub lag_seconds: Option<u64>,
    /// Replicas: transactions the primary had (its logged position, read in the same
    /// pass) that this replica had not applied, summed over domains.
    /// None without the primary's row. Unlike Seconds_Behind_Master it stays true while
    /// the IO thread flaps or receives nothing (issue 10, case 5).
    pub behind_transactions: Option<u64>,
    /// Semi-sync: "primary on/off", "replica on/off", or "off".
    pub semi_sync: String,
    /// Replicas: verified TLS to the source. Primaries: TLS available.
    pub tls: bool,
    pub last_error: String,
    /// GTIDs of transactions written on this replica itself (errant).
    pub errant: Vec<String>,
    /// A replica's seeding run on the host (`crate::runbooks::detached`): its state
    /// (running, finished, lost) and the bytes in the data folder so far.
    pub seeding: Option<String>,
    /// A Galera member's state in its cluster; None for a primary or a replica.
    pub galera: Option<GaleraStatus>,
    /// A Group Replication member's state in its group; None otherwise.
    pub group: Option<GroupStatus>,
    /// Why this host is unhealthy; empty when healthy.
    pub problems: Vec<String>,
    /// The binary log history, to compare a replica's own entries with its primary's.
    #[serde(skip)]
    pub binlog_state: crate::sql::gtid::GtidSet,
}

/// A Galera member as `status` reads it (`crate::sql::galera::STATUS_REPORT`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct GaleraStatus {
    /// Members in this member's component.
    pub cluster_size: u32,
    /// `wsrep_local_state_comment`: Synced, Donor/Desynced, Joining, Joined.
    pub state: String,
    /// `wsrep_cluster_status`: Primary (the majority), non-Primary, Disconnected.
    pub cluster_status: String,
    /// Fraction of time replication was paused by flow control since the last read
    /// (0.0-1.0).
    pub flow_control_paused: f64,
}

impl GaleraStatus {
    /// Synced in the primary component: the proxies route to it.
    pub fn synced(&self) -> bool {
        self.state == "Synced" && self.cluster_status == crate::sql::galera::PRIMARY_COMPONENT
    }
}

/// A Group Replication member as `status` reads it (`crate::sql::group::STATUS_REPORT`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct GroupStatus {
    /// `MEMBER_STATE`: ONLINE, RECOVERING, OFFLINE, ERROR; NONE outside a group.
    pub state: String,
    /// `MEMBER_ROLE`: PRIMARY or SECONDARY; empty outside a group.
    pub role: String,
    /// Members this one reaches (online or recovering), and all it lists.
    pub online: u32,
    pub members: u32,
    /// The address the group's primary reports; empty when it sees none.
    pub primary: String,
}

impl GroupStatus {
    /// Online in a group that holds its majority: the proxies route to it.
    pub fn online(&self) -> bool {
        self.state == crate::sql::group::ONLINE && 2 * self.online > self.members
    }
}

/// The status script: one client call, vertical output, then the seeding run's state
/// when the host has one (`seed_run: running|finished|lost`, `seed_bytes: N`) and the
/// restore run's (`restore_run: …`, `restore_bytes: N`).
/// `member`: a member of a synchronous cluster, whose report follows the dialect (Galera's
/// for MariaDB, Group Replication's for MySQL).
pub fn script(d: Dialect, member: bool) -> String {
    let run = |key: &str, dir: &str, target: &str| {
        format!(
            "r={dir}; if [ -d $r ]; then if [ -f $r/rc ]; then echo '{key}_run: finished'; \
             elif flock -n $r/lock true 2>/dev/null; then echo '{key}_run: lost'; else echo '{key}_run: running'; fi; \
             echo \"{key}_bytes: $(du -sb {target} 2>/dev/null | cut -f1)\"; fi\n"
        )
    };
    format!(
        "{} -E --force <<'DBFLEET_SQL'\n{}\n{}\nDBFLEET_SQL\n{}{}",
        d.client(),
        d.status_queries(),
        match (member, d) {
            (false, _) => "",
            (true, Dialect::MariaDb) => crate::sql::galera::STATUS_REPORT,
            (true, _) => crate::sql::group::STATUS_REPORT,
        },
        run(
            "seed",
            crate::tasks::replication::SEED_RUN_DIR,
            "/var/lib/mysql"
        ),
        run(
            "restore",
            &crate::tasks::restore_run_dir(),
            crate::tasks::RESTORE_WORK
        ),
    )
}

/// Evaluates one host's status output against the inventory.
pub fn evaluate(inv: &Inventory, h: &Host, output: Result<&str, &str>, max_lag: u64) -> HostStatus {
    let declared = if h.has(Role::Primary) {
        "primary"
    } else if h.has(Role::Member) {
        "member"
    } else {
        "replica"
    };
    let mut s = HostStatus {
        host: h.name.clone(),
        declared: declared.into(),
        live: "unknown".into(),
        ..Default::default()
    };
    let out = match output {
        Ok(o) => o,
        Err(e) => {
            s.problems.push(format!("unreachable: {e}"));
            return s;
        }
    };
    let d = Dialect::of(inv.flavor, &inv.version);
    let f = crate::sql::vertical(out);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let seed_run = get("seed_run");
    if !seed_run.is_empty() {
        let mib = get("seed_bytes").parse::<u64>().unwrap_or(0) / 1_048_576;
        let what = format!("seeding run {seed_run}, {mib} MiB in the data folder");
        s.problems.push(match seed_run.as_str() {
            "running" => format!("being seeded ({what}): `dbfleet apply` (or the rebuild) attaches to it"),
            _ => format!("seed not finished ({what}): `dbfleet apply` finishes it, or undoes it when it failed"),
        });
        s.seeding = Some(what);
    }
    let restore_run = get("restore_run");
    if !restore_run.is_empty() {
        let mib = get("restore_bytes").parse::<u64>().unwrap_or(0) / 1_048_576;
        s.problems.push(format!(
            "point-in-time restore run {restore_run} ({mib} MiB in its work folder): read-only until it ends well; `dbfleet restore {}` attaches to it and reports its end",
            h.name
        ));
    }
    if get("up") != "dbfleet-up" {
        if s.seeding.is_none() {
            s.problems.push("the database server is not running".into());
        }
        return s;
    }
    s.server_id = get("server_id").parse().ok();
    s.version = Some(get("version")).filter(|v| !v.is_empty());
    s.read_only = Some(get("read_only") == "1");
    s.gtid = crate::sql::GtidReport::read(&f);
    s.binlog_state = crate::sql::gtid::GtidSet::parse(&s.gtid.history);
    let on = |k: &str| get(k) == "ON";
    s.semi_sync = match (on("semi_sync_primary"), on("semi_sync_replica")) {
        (true, _) => "primary on".into(),
        (_, true) => "replica on".into(),
        _ => "off".into(),
    };
    if h.has(Role::Member) {
        if f.contains_key("group_state") {
            group_member(&mut s, &f);
        } else {
            galera_member(&mut s, &f);
        }
        return s;
    }
    let replica = d.replica_status(&f);
    let replicating = replica.is_some();
    s.live = if replicating {
        "replica".into()
    } else {
        "primary".into()
    };
    if let Some(r) = replica {
        s.tls = r.tls_verified();
        s.last_error = r.last_error();
        s.source = Some(r.source_host);
        s.io_running = Some(r.io_running);
        s.sql_running = Some(r.sql_running);
        s.lag_seconds = r.seconds_behind;
    } else {
        s.tls = get("have_ssl") == "YES";
    }

    // The primary's GTID domain: the declared primary's gtid_domain_id variable.
    let primary = inv
        .hosts
        .iter()
        .find(|o| o.cluster == h.cluster && o.has(Role::Primary));
    let domain = primary
        .and_then(|p| p.vars.get("gtid_domain_id"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if h.has(Role::Replica) {
        if let Some(id) = s.server_id {
            let mut own = s.binlog_state.originated_by(id, &s.gtid.server_uuid);
            own.mariadb.retain(|g| u64::from(g.domain) == domain);
            s.errant = own.items();
        }
        let want_source = h
            .source
            .as_deref()
            .and_then(|n| inv.host(n))
            .map(|o| o.address.clone())
            .unwrap_or_default();
        match (&s.io_running, &s.sql_running) {
            (None, _) => s.problems.push("not replicating".into()),
            (Some(io), Some(sq)) if io == "Connecting" && sq == "Yes" => s.problems.push(format!(
                "the IO thread is connecting to the source: {}",
                s.last_error
            )),
            (Some(io), Some(sq)) if io != "Yes" || sq != "Yes" => s.problems.push(format!(
                "replication stopped (IO thread: {io}, SQL thread: {sq})"
            )),
            _ => {}
        }
        if let Some(src) = &s.source
            && *src != want_source
        {
            s.problems.push(format!(
                "replicates from {src}, not its source {} ({want_source})",
                h.source.clone().unwrap_or_default()
            ));
        }
        if let Some(lag) = s.lag_seconds
            && lag > max_lag
        {
            s.problems
                .push(format!("lag {lag} s is over the limit of {max_lag} s"));
        }
        if s.read_only == Some(false) {
            s.problems.push("writable replica: read_only is OFF".into());
        }
        if !s.errant.is_empty() {
            s.problems
                .push(format!("{ERRANT}: {}", s.errant.join(", ")));
        }
    } else {
        if s.read_only == Some(true) {
            s.problems.push("the primary is read-only".into());
        }
        if replicating {
            s.problems.push(format!(
                "the primary replicates from {}",
                s.source.clone().unwrap_or_default()
            ));
        }
    }
    s
}

/// A Galera member's row: its cluster state from `f`; unhealthy when it is not synced in
/// the primary component (a member that lost quorum refuses queries; one joining or
/// donating is out of the proxies), or read-only (every member takes writes).
fn galera_member(s: &mut HostStatus, f: &BTreeMap<String, String>) {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    s.tls = get("have_ssl") == "YES";
    let g = GaleraStatus {
        cluster_size: get("galera_cluster_size").parse().unwrap_or(0),
        state: get("galera_state"),
        cluster_status: get("galera_cluster_status"),
        flow_control_paused: get("galera_flow_control_paused").parse().unwrap_or(0.0),
    };
    s.live = "member".into();
    if g.cluster_status != crate::sql::galera::PRIMARY_COMPONENT {
        s.problems.push(format!(
            "not in the primary component ({}, {} member(s) seen): the cluster lost its quorum here",
            if g.cluster_status.is_empty() { "wsrep off" } else { g.cluster_status.as_str() },
            g.cluster_size
        ));
    } else if g.state != "Synced" {
        s.problems.push(format!("not synced ({})", g.state));
    }
    if s.read_only == Some(true) {
        s.problems
            .push("read-only: every member takes writes".into());
    }
    s.galera = Some(g);
}

/// A Group Replication member's row: its state in the group from `f`; unhealthy when it is
/// not online in a group holding its majority (a member in a minority takes no write; one
/// recovering is out of the proxies), or when it is writable and not the group's primary.
fn group_member(s: &mut HostStatus, f: &BTreeMap<String, String>) {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    s.tls = get("have_ssl") == "YES";
    let g = GroupStatus {
        state: get("group_state"),
        role: get("group_role"),
        online: get("group_online").parse().unwrap_or(0),
        members: get("group_members").parse().unwrap_or(0),
        primary: get("group_primary"),
    };
    s.live = "member".into();
    if g.state != crate::sql::group::ONLINE {
        s.problems
            .push(format!("not online in its group ({})", g.state));
    } else if !g.online() {
        s.problems.push(format!(
            "in a minority: {} of {} members reached, the group lost its majority here",
            g.online, g.members
        ));
    }
    if s.read_only == Some(false) && g.role != "PRIMARY" {
        s.problems
            .push("writable, and not the group's primary".into());
    }
    s.group = Some(g);
}

/// Runs `script` on each of `hosts`, `forks` at a time, one connection each, closed after:
/// in `hosts`' order, its output, or why it could not be read (unreachable; or the script
/// exited non-zero: "`what`: its stderr").
pub(crate) async fn run_each(
    inv: &Inventory,
    hosts: &[&Host],
    forks: usize,
    timeout: std::time::Duration,
    script: &str,
    what: &str,
) -> Vec<Result<String, String>> {
    let each: Vec<(&Host, String)> = hosts.iter().map(|h| (*h, script.to_string())).collect();
    run_own(inv, &each, forks, timeout, what).await
}

/// [`run_each`] with a script of its own for each host.
pub(crate) async fn run_own(
    inv: &Inventory,
    each: &[(&Host, String)],
    forks: usize,
    timeout: std::time::Duration,
    what: &str,
) -> Vec<Result<String, String>> {
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let futs = each.iter().map(|(h, script)| {
        let sem = sem.clone();
        async move {
            let _p = sem.acquire().await;
            let c = SshHost::connect(h, inv.host_key_policy, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let o = c.run(script).await.map_err(|e| e.to_string());
            c.close().await;
            let o = o?;
            if o.code != 0 {
                return Err(format!("{what}: {}", o.stderr.trim()));
            }
            Ok(o.stdout)
        }
    });
    futures::future::join_all(futs).await
}

/// Seconds a replica that is behind its primary's position gets to reach it before
/// `status` calls it behind (a healthy replica under write load does in milliseconds).
pub const CATCH_UP_GRACE_S: u32 = 2;

/// Reads every selected database host, `forks` at a time. A replica whose applied
/// position is behind the primary's (read in the same pass) is then given
/// [`CATCH_UP_GRACE_S`] to reach that position (`MASTER_GTID_WAIT` on its open
/// connection); one that does not is unhealthy, with the distance in transactions and its
/// last replication error, whatever its thread flags and Seconds_Behind_Master say.
pub async fn gather(
    inv: &Inventory,
    hosts: &[&Host],
    forks: usize,
    timeout: std::time::Duration,
    max_lag: u64,
) -> Vec<HostStatus> {
    let d = Dialect::of(inv.flavor, &inv.version);
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let futs = hosts.iter().map(|h| {
        let sem = sem.clone();
        async move {
            let _p = sem.acquire().await;
            let mut conn = None;
            let res: Result<String, String> = async {
                let c = SshHost::connect(h, inv.host_key_policy, timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                let o = c
                    .run(&script(d, h.has(Role::Member)))
                    .await
                    .map_err(|e| e.to_string());
                conn = Some(c);
                Ok(o?.stdout)
            }
            .await;
            (
                evaluate(inv, h, res.as_deref().map_err(|e| e.as_str()), max_lag),
                conn,
            )
        }
    });
    let (mut rows, conns): (Vec<HostStatus>, Vec<Option<SshHost>>) =
        futures::future::join_all(futs).await.into_iter().unzip();
    forgive_replicated_history(inv, hosts, &mut rows);
    let targets = gtid_distance(inv, hosts, &mut rows);
    let waits = rows
        .iter()
        .zip(conns.iter())
        .enumerate()
        .filter_map(|(i, (r, c))| Some((i, c.as_ref()?, targets.get(&r.host)?)))
        .map(|(i, c, pos)| async move {
            let wait = d.wait_for_position(pos, CATCH_UP_GRACE_S);
            let reached =
                crate::runbooks::topology::sql(c, d, "waiting for the primary's position", &wait)
                    .await
                    .is_ok_and(|out| out.trim() == "0");
            (i, reached, pos.clone())
        });
    for (i, reached, pos) in futures::future::join_all(waits).await {
        let r = &mut rows[i];
        if !reached {
            let n = r.behind_transactions.unwrap_or(0);
            let mut p = format!(
                "{n} transaction(s) behind the primary: did not reach its position {pos} within {CATCH_UP_GRACE_S} s"
            );
            if !r.last_error.is_empty() {
                p.push_str(&format!("; last replication error: {}", r.last_error));
            }
            r.problems.push(p);
        }
    }
    for c in conns.into_iter().flatten() {
        c.close().await;
    }
    rows
}

/// Fills each replica's `behind_transactions` from its primary's row; returns, for each
/// replica that is behind, the primary's position it must reach.
fn gtid_distance(
    inv: &Inventory,
    hosts: &[&Host],
    rows: &mut [HostStatus],
) -> BTreeMap<String, String> {
    use crate::sql::gtid::GtidSet;
    let positions: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r.host.clone(), r.gtid.position.clone()))
        .collect();
    let mut targets = BTreeMap::new();
    for r in rows.iter_mut().filter(|r| r.live == "replica") {
        let Some(h) = hosts.iter().find(|h| h.name == r.host) else {
            continue;
        };
        let Some(primary) = inv
            .hosts
            .iter()
            .find(|o| o.cluster == h.cluster && o.has(Role::Primary) && o.name != h.name)
        else {
            continue;
        };
        let Some(pos) = positions.get(&primary.name).filter(|p| !p.is_empty()) else {
            continue;
        };
        let behind = GtidSet::parse(pos).behind(&GtidSet::parse(&r.gtid.applied));
        r.behind_transactions = Some(behind);
        if behind > 0 {
            targets.insert(r.host.clone(), pos.clone());
        }
    }
    targets
}

/// A replica's own entries that its primary also has are history, not errant: an old
/// primary demoted by a switchover keeps its own server_id in `gtid_binlog_state`, and so
/// do replicas that replicated its writes. Only entries the primary never saw stay errant
/// (the rule of `crate::runbooks::topology::DbState::errant_against`). Without the
/// primary's row (down, or left out by --limit), `evaluate`'s stricter rule stands.
fn forgive_replicated_history(inv: &Inventory, hosts: &[&Host], rows: &mut [HostStatus]) {
    use crate::sql::gtid::GtidSet;
    let primary_state = |h: &Host| -> Option<GtidSet> {
        let p = inv
            .hosts
            .iter()
            .find(|o| o.cluster == h.cluster && o.has(Role::Primary))?;
        let row = rows.iter().find(|r| r.host == p.name)?;
        (!row.binlog_state.is_empty()).then(|| row.binlog_state.clone())
    };
    let fixes: Vec<(usize, Vec<String>)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.errant.is_empty())
        .filter_map(|(i, r)| {
            let h = hosts.iter().find(|h| h.name == r.host)?;
            let theirs = primary_state(h)?;
            let still: Vec<String> = r
                .errant
                .iter()
                .filter(|g| !GtidSet::parse(g).missing_from(&theirs).is_empty())
                .cloned()
                .collect();
            Some((i, still))
        })
        .collect();
    for (i, still) in fixes {
        let r = &mut rows[i];
        r.problems.retain(|p| !p.starts_with(ERRANT));
        if !still.is_empty() {
            r.problems.push(format!("{ERRANT}: {}", still.join(", ")));
        }
        r.errant = still;
    }
}

/// The version of `status --json`'s shape, raised when a field goes or changes meaning (a
/// reader must ignore fields it does not know: new ones are added without a raise).
pub const JSON_FORMAT_VERSION: u32 = 1;

/// `status --json`: `{"format_version": 1, "hosts": [HostStatus…], "proxies":
/// [ProxyStatus…], "monitors": [MonitorStatus…]}`, pretty-printed.
pub fn to_json(
    rows: &[HostStatus],
    proxies: &[proxies::ProxyStatus],
    monitors: &[monitors::MonitorStatus],
    backups: &[backups::BackupStatus],
) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "format_version": JSON_FORMAT_VERSION,
        "hosts": rows,
        "proxies": proxies,
        "monitors": monitors,
        "backups": backups,
    }))
    .unwrap_or_default()
}

/// Problems per host, for the exit diagnostic.
pub fn problems(rows: &[HostStatus]) -> BTreeMap<String, Vec<String>> {
    rows.iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| (r.host.clone(), r.problems.clone()))
        .collect()
}
