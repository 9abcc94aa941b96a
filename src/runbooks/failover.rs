//! Unplanned failover (the primary is dead) and rejoin (the old primary comes back).
//!
//! Failover, after DESIGN.md and the failure modes peers are known for:
//! 1. refuse inside the anti-flap window (`failover_anti_flap_seconds`, a lock file with
//!    the time and reason in the inventory's `.dbfleet/`), unless `--force`;
//! 2. the primary must be dead from here (no SSH, or SSH but no server) AND from every
//!    reachable replica (its database port does not answer from them): a primary that a
//!    replica still reaches is alive or partitioned from us only, and promoting then
//!    makes two writers (GitHub's 2018-10-21 incident);
//!    A primary that a proxy still reaches is not dead to the application: failover refuses
//!    unless semi-sync runs without fallback (`semi_sync_timeout_ms: never`), where every
//!    acknowledged write is on a replica, and then fences it on those proxies first;
//! 3. fence it: every proxy's writer and reader lose it (runtime API); if its host answers SSH, the
//!    server is stopped so it cannot come back writable by itself (it would start
//!    read-only anyway: `mysqld.cnf`);
//! 4. drain: each replica applies what it received (`Gtid_IO_Pos` = `gtid_slave_pos`), not
//!    Seconds_Behind_Master, which says nothing once the source is gone;
//! 5. pick the most advanced replica that may be promoted (`candidate: false` never is);
//!    refuse when it has errant transactions, or when a replica that may not be promoted
//!    is further ahead (orchestrator#1260: never promote a lagging replica);
//! 6. promote it, repoint the others to it, move the proxies' writer;
//! 7. record the topology in the inventory (see `crate::inventory::edit`) and the lock.
//!
//! Rejoin: the old primary's `gtid_binlog_state` is compared with the new primary's. Any
//! transaction it has that the new primary never saw is named, and rejoin refuses (rebuild
//! the host); otherwise it replicates from the new primary with MASTER_DEMOTE_TO_SLAVE=1
//! (orchestrator#1146's error 1236 is what repointing it without that option gets).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Cluster;
use super::liveness::{self, Here, ProxyView, ReplicaView};
use super::topology::DbState;
use crate::engine::Engine;
use crate::error::Error;
use crate::inventory::Role;
use crate::plan::runbook::{Action, Runbook, RunbookPlan, SECRET_PLACEHOLDER};
use crate::transport::SshHost;

/// Seconds a replica may take to apply what it received before the failover gives up.
pub const DRAIN_TIMEOUT_S: u64 = 60;

/// The anti-flap record: the last failover per cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub cluster: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

pub(crate) fn lock_path(engine: &Engine) -> PathBuf {
    engine.inv.base_dir().join(".dbfleet").join("failover.json")
}

pub(crate) fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn read_records(engine: &Engine) -> Vec<FailoverRecord> {
    std::fs::read(lock_path(engine))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Refuses a failover of `cluster` inside the anti-flap window of its last one
/// (`failover_anti_flap_seconds` of the primary `old`, default 3600 s), unless `force`.
///
/// Errors: [`Error::Refused`] naming the last failover and the window.
pub fn anti_flap(engine: &Engine, cluster: &str, old: &str, force: bool) -> Result<(), Error> {
    let window = engine
        .inv
        .host(old)
        .and_then(|h| h.vars.get("failover_anti_flap_seconds"))
        .and_then(|v| v.as_u64())
        .unwrap_or(3600);
    if let Some(r) = read_records(engine).iter().find(|r| r.cluster == cluster)
        && now_s().saturating_sub(r.at) < window
        && !force
    {
        return Err(Error::Refused(format!(
            "cluster {cluster} failed over {} s ago ({} → {}: {}); a second failover inside failover_anti_flap_seconds ({window} s) needs --force",
            now_s().saturating_sub(r.at),
            r.from,
            r.to,
            r.reason
        )));
    }
    Ok(())
}

/// Records `rec` as its cluster's last failover (the anti-flap record, 0600).
///
/// Errors: [`Error::Io`] when the record cannot be written.
pub fn record(engine: &Engine, rec: &FailoverRecord) -> Result<(), Error> {
    let mut records: Vec<FailoverRecord> = read_records(engine)
        .into_iter()
        .filter(|r| r.cluster != rec.cluster)
        .collect();
    records.push(rec.clone());
    crate::secrets::write_private(
        &lock_path(engine),
        &serde_json::to_vec_pretty(&records).unwrap_or_default(),
    )
    .map_err(|e| Error::io("writing the failover record", e))
}

/// What the operator, the replicas and the proxies see of the primary that a failover
/// replaces (`super::liveness`).
#[derive(Debug, Clone)]
pub struct Verdict {
    pub primary: String,
    /// What its own host says, over SSH from here.
    pub from_here: Here,
    /// What each replica that answers sees of it.
    pub from_replicas: Vec<ReplicaView>,
    /// What each proxy sees of it.
    pub from_proxies: Vec<ProxyView>,
    /// It holds its port open, or its process runs, and it answers nobody (issue 29): it
    /// is hung, not dead, and may go on when it thaws.
    pub hung: bool,
    /// How long each round of checks took, in order (more than one: a hung primary
    /// watched again until its bound, [`confirm_dead`]).
    pub rounds: Vec<Duration>,
}

impl Verdict {
    /// Proxies through which the application may still reach it (it answered them, or
    /// they could not tell and its port is open): fenced there first (issue 10, case 1).
    pub fn reached_by_proxies(&self) -> Vec<String> {
        reached(&self.from_proxies)
    }

    /// Whether the replicas' IO threads may stop at once with the proxies' fencing. Not
    /// when a proxy still reaches the primary (issue 10, case 1, under lossless semi-sync):
    /// the primary may be alive, and if a fence fails the runbook must stop with its
    /// replicas still acknowledging, not with every write of a live primary blocked.
    pub fn io_stop_with_fence(&self) -> bool {
        self.reached_by_proxies().is_empty()
    }
}

fn reached(proxies: &[ProxyView]) -> Vec<String> {
    proxies
        .iter()
        .filter(|x| x.reaches())
        .map(|x| x.name.clone())
        .collect()
}

/// Whether `primary` runs semi-sync with no fallback to async (`semi_sync: true` and
/// `semi_sync_timeout_ms: never`): then every write it acknowledged is on a replica, even
/// while it is cut off from them (lossless semi-sync, AFTER_SYNC; MariaDB KB
/// "Semisynchronous Replication"). With any timeout it may have fallen back to async and
/// acknowledged writes that only it has.
pub fn lossless_semi_sync(engine: &Engine, primary: &str) -> bool {
    engine.inv.host(primary).is_some_and(|h| {
        h.vars.get("semi_sync").and_then(|v| v.as_bool()) == Some(true)
            && h.vars.get("semi_sync_timeout_ms").and_then(|v| v.as_str()) == Some("never")
    })
}

pub(crate) fn cluster_of(engine: &Engine, want: Option<&str>) -> Result<(String, String), Error> {
    let mut clusters: Vec<(String, String)> = engine
        .inv
        .hosts
        .iter()
        .filter(|h| h.has(Role::Primary))
        .map(|h| (h.cluster.clone(), h.name.clone()))
        .collect();
    if let Some(w) = want {
        clusters.retain(|(c, _)| c == w);
    }
    match clusters.len() {
        1 => Ok(clusters.remove(0)),
        0 => Err(Error::Refused(format!(
            "no cluster {} with a primary in the inventory",
            want.unwrap_or("")
        ))),
        _ => Err(Error::Usage(
            "the inventory has several clusters: pass --cluster NAME".into(),
        )),
    }
}

/// Checks that `primary` answers nobody: not from here, not its replicas (an event or a
/// heartbeat within the window) and, unless semi-sync is lossless, not the proxies.
/// `silence`: when the caller last had an answer from it (the monitor's; none for an
/// operator's `failover`), held against its bound when it is hung.
///
/// Errors: those of `judge` (below): [`Error::Refused`], [`Error::Stalled`].
pub async fn confirm_dead(
    c: &Cluster<'_>,
    primary: &str,
    silence: Silence,
) -> Result<(Verdict, Option<SshHost>), Error> {
    let inv = &c.engine.inv;
    let p = inv
        .host(primary)
        .ok_or_else(|| Error::UnknownHost(primary.into()))?;
    // From here and from the replicas at once: a dead host costs one timeout, not two.
    // One second each is enough on a LAN; a slow but live primary is still caught by the
    // replicas' check, which must agree before anything happens.
    let here = || async {
        match SshHost::connect(p, inv.host_key_policy, Duration::from_secs(1)).await {
            Err(e) => (Here::NoSsh(e.to_string()), None),
            Ok(conn) => {
                let out = conn
                    .run(&liveness::here_probe(c.dialect))
                    .await
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                (liveness::parse_here(&out), Some(conn))
            }
        }
    };
    // A hung primary short of its bound is watched again, timed so that the checks end
    // when the bound is reached (a few tries at most: the bound is fixed, the silence
    // grows): one attempt, not a refusal and a new attempt a check later.
    //
    // A later round asks the replicas only, each from its last round's sample: under
    // lossless semi-sync (the only case a hung primary is failed over) a primary can
    // acknowledge nothing that its replicas do not receive, and one that thawed, came
    // back on SSH or was restarted sends its replicas events or heartbeats again, which
    // the window from the first round's sample to now sees. What this host and the
    // proxies saw in the first round (hung, the port open, its connection kept for the
    // kill) stands with it. A round costs a fraction of a second then, not the second
    // or two of a connection timeout, so it ends at the bound, not a round past it.
    const TRIES: usize = 5;
    let mut tried = 0;
    let mut rounds = Vec::new();
    // Each replica's last sample of what it received, and when that round's window
    // began: a round that saw nothing took two equal samples, so the next round's window
    // spans from its first to now ([`liveness::replica_probe`]).
    let mut samples: HashMap<String, (String, Instant)> = HashMap::new();
    let mut first: Option<(Here, Option<SshHost>, Vec<ProxyView>)> = None;
    loop {
        tried += 1;
        let started = Instant::now();
        let (from_here, conn, proxies, there, observed) = match first.take() {
            None => {
                let ((from_here, conn), (there, observed), proxies) = tokio::join!(
                    here(),
                    observe_replicas(c, primary, &samples),
                    observe_proxies(c, primary)
                );
                (from_here, conn, proxies, there, observed)
            }
            Some((from_here, conn, proxies)) => {
                let (there, observed) = observe_replicas(c, primary, &samples).await;
                (from_here, conn, proxies, there, observed)
            }
        };
        rounds.push(started.elapsed());
        record_samples(&mut samples, &there, started);
        match judge(
            c,
            primary,
            from_here.clone(),
            there,
            proxies.clone(),
            silence,
        ) {
            Err(Error::Stalled { .. })
                if tried < TRIES
                    && let Some(at) = silence.last_answer =>
            {
                first = Some((from_here, conn, proxies));
                // A later round costs what this one cost besides its window's pause
                // (`observed`), or a little less (a warm connection): ending it a quarter
                // second past the bound spares a whole round when it would end a few
                // milliseconds short of it.
                const PAST_BOUND: Duration = Duration::from_millis(250);
                let remaining = silence.hang_after.saturating_sub(at.elapsed());
                tokio::time::sleep(remaining.saturating_sub(observed) + PAST_BOUND).await;
            }
            other => {
                return other.map(|mut v| {
                    v.rounds = rounds;
                    (v, conn)
                });
            }
        }
    }
}

/// When the primary last answered the caller, and the bound past which a hung primary
/// counts as dead (`monitor_hang_seconds`), held against the time of the verdict, after
/// the checks: every check of a verdict that fails over a hung primary was made when it
/// had been silent for nearly the whole bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silence {
    /// None: the caller does not count (an operator's `failover`: the operator judges).
    pub last_answer: Option<Instant>,
    pub hang_after: Duration,
}

/// Keeps each replica's newest sample of what it received for the next round, dated from
/// when the round that took it began; a sample equal to the one kept still dates from the
/// round that first took it (nothing arrived since: the window keeps growing), so a later
/// round never pauses to fill a window. A replica that could not be read keeps none.
fn record_samples(
    samples: &mut HashMap<String, (String, Instant)>,
    seen: &[ReplicaView],
    started: Instant,
) {
    for r in seen {
        if !r.marker.is_empty() && samples.get(&r.name).is_none_or(|(m, _)| *m != r.marker) {
            samples.insert(r.name.clone(), (r.marker.clone(), started));
        }
    }
}

/// The script that stops a replica's IO thread while its source is hung: for the stop
/// only, the replica rejects (TCP reset) its own new connections to the source's database
/// port, by an nftables table of its own (`inet dbfleet_fence`, apart from the firewall's
/// `inet dbfleet`), deleted when the script ends; the source's address is held in a set
/// with a 60 s timeout, so a table left behind by a killed run fences nothing after that.
/// MariaDB's semi-sync replica, stopping, connects to its source to end the dump thread
/// and waits `rpl_semi_sync_slave_kill_conn_timeout` (at least 1 s) for a hung server's
/// greeting; reset, that connection fails at once. Only connection attempts (SYN without
/// ACK) are rejected: the IO thread's own connection must close normally, its FIN reaching
/// the frozen host's kernel. Reset on this side only, it stayed open on the source, whose
/// dump threads, thawed, wrote into it for minutes (the firewall drops the retransmits as
/// `ct state invalid`, so no reset ever reached them); promoted again, that server hung in
/// MariaDB 10.11's semi-sync `Ack_receiver::remove_slave` when the replica reconnected
/// (seen in `bench/autofailover.sh`: every connection slot taken). Without nft or an IPv4
/// address for `address`, the plain stop (the same statement, slower).
pub fn fenced_io_stop(d: crate::sql::Dialect, address: &str, port: u64) -> String {
    format!(
        "a=$(getent ahostsv4 {addr} | awk 'NR==1{{print $1}}')\n\
         if [ -n \"$a\" ] && command -v nft >/dev/null && nft -f - 2>/dev/null <<DBFLEET_NFT\n\
         table inet dbfleet_fence {{\n\
         \x20 set sources {{ type ipv4_addr; flags timeout; }}\n\
         \x20 chain output {{ type filter hook output priority 0; policy accept; ip daddr @sources tcp dport {port} tcp flags & (syn | ack) == syn reject with tcp reset; }}\n\
         }}\n\
         add element inet dbfleet_fence sources {{ $a timeout 60s }}\n\
         DBFLEET_NFT\n\
         then trap 'nft delete table inet dbfleet_fence 2>/dev/null' EXIT; fi\n\
         {client} -e {stop}\n",
        addr = crate::escape::q(address),
        client = d.client(),
        stop = crate::escape::q(d.stop_replica_io()),
    )
}

/// `primary`'s address and database port, as its replicas and proxies reach it.
fn endpoint(c: &Cluster<'_>, primary: &str) -> (String, u64) {
    c.engine
        .inv
        .host(primary)
        .map(|p| {
            let port = p.vars.get("port").and_then(|v| v.as_u64()).unwrap_or(3306);
            (p.address.to_string(), port)
        })
        .unwrap_or_default()
}

/// What the replicas see of `primary`, all at once (`super::liveness`), and how long that
/// took besides the longest pause a probe made to complete its window (what a later
/// round, whose window is complete, costs). `samples`: each replica's last sample and when
/// its window began, where its new window starts (none: a full [`liveness::WINDOW_S`]
/// window).
async fn observe_replicas(
    c: &Cluster<'_>,
    primary: &str,
    samples: &HashMap<String, (String, Instant)>,
) -> (Vec<ReplicaView>, Duration) {
    let started = Instant::now();
    let (address, port) = endpoint(c, primary);
    let replicas: Vec<&String> = c.members.iter().filter(|m| *m != primary).collect();
    let previous: Vec<Option<(&str, f64)>> = replicas
        .iter()
        .map(|r| {
            samples
                .get(*r)
                .map(|(m, at)| (m.as_str(), at.elapsed().as_secs_f64()))
        })
        .collect();
    let paused = previous
        .iter()
        .map(|p| liveness::window_left(p.map(|(_, age)| age)))
        .fold(0.0f64, f64::max);
    let futs = replicas.iter().zip(&previous).map(|(r, previous)| {
        let probe = liveness::replica_probe(c.dialect, &address, port, *previous);
        async move {
            let conn = c.conns.get(*r)?;
            let out = conn.run(&probe).await.ok()?;
            Some(liveness::parse_replica(r, &out.stdout, c.dialect).0)
        }
    });
    let there = futures::future::join_all(futs).await;
    (
        there.into_iter().flatten().collect(),
        started
            .elapsed()
            .saturating_sub(Duration::from_secs_f64(paused)),
    )
}

/// What the proxies see of `primary`, all at once: a primary cut off from us and its
/// replicas but not from a proxy still takes the application's writes (issue 10, case 1).
async fn observe_proxies(c: &Cluster<'_>, primary: &str) -> Vec<ProxyView> {
    let (address, port) = endpoint(c, primary);
    let proxy_probe = liveness::proxy_probe(&address, port);
    let proxy_futs = c.proxies.iter().map(|x| {
        let proxy_probe = proxy_probe.clone();
        async move {
            let out = match c.conns.get(x) {
                Some(conn) => conn.run(&proxy_probe).await.ok().map(|o| o.stdout),
                None => None,
            };
            liveness::parse_proxy(x, out.as_deref())
        }
    });
    futures::future::join_all(proxy_futs).await
}

/// The decision of [`confirm_dead`] from what was seen.
///
/// Errors: [`Error::Refused`] when the primary answers from here or a replica, when no
/// replica answers, when a replica reaches its port but cannot tell (its IO thread does
/// not run), when a proxy still reaches it or it is hung and semi-sync may have fallen
/// back to async ([`lossless_semi_sync`]); [`Error::Stalled`] when it is hung for less
/// than `silence.hang_after`.
fn judge(
    c: &Cluster<'_>,
    primary: &str,
    from_here: Here,
    from_replicas: Vec<ReplicaView>,
    proxies: Vec<ProxyView>,
    silence: Silence,
) -> Result<Verdict, Error> {
    if from_here == Here::Alive {
        return Err(Error::Refused(format!(
            "{primary} is alive: its server answers over SSH; use `dbfleet switchover` to move the primary on purpose"
        )));
    }
    if from_replicas.is_empty() {
        return Err(Error::Refused(format!(
            "no replica of {primary} answers: nothing to promote"
        )));
    }
    if let Some(r) = from_replicas.iter().find(|r| r.answered()) {
        return Err(Error::Refused(format!(
            "{primary} answers {}'s replication (an event or heartbeat within {} s): the primary is alive, or cut off from this machine only; refusing to make a second writer",
            r.name,
            liveness::WINDOW_S
        )));
    }
    // Its port answers a replica whose IO thread is stopped (not trying to connect): that
    // replica cannot tell a live server from a hung one, so it counts as reaching it (the
    // old, safe reading). "Connecting" is an IO thread that tries and gets no answer.
    if let Some(r) = from_replicas
        .iter()
        .find(|r| r.port_open && r.io != "Yes" && r.io != "Connecting")
    {
        return Err(Error::Refused(format!(
            "{primary}'s database port answers from {} and its IO thread is {}, so it cannot tell whether the server answers: the primary may be alive, or cut off from this machine only; refusing to make a second writer (start replication on {} to let it tell)",
            r.name, r.io, r.name
        )));
    }
    let lossless = lossless_semi_sync(c.engine, primary);
    let reached_by_proxies = reached(&proxies);
    if !reached_by_proxies.is_empty() && !lossless {
        return Err(Error::Refused(format!(
            "{primary} answers from {}: the application may still write to it, and without lossless semi-sync (semi_sync: true with semi_sync_timeout_ms: never) it may hold acknowledged writes that no replica has. Refusing; nothing was changed. Heal the partition (its replicas catch up), or stop its server, then fail over",
            reached_by_proxies.join(", ")
        )));
    }
    let hung = from_here == Here::Hung
        || from_replicas.iter().any(|r| r.port_open)
        || proxies.iter().any(|x| x.port_open);
    if hung && !lossless {
        return Err(Error::Refused(format!(
            "{primary} holds its database port open but answers nobody (not here, not its replicas' IO threads, not the proxies): it is hung (frozen, stuck on a disk, swapping) or its network half works. Without lossless semi-sync it may hold acknowledged writes that no replica has, and take writes again when it thaws: this configuration cannot fail over a hung primary safely. Refusing; nothing was changed. Set semi_sync: true and semi_sync_timeout_ms: never on the cluster to let dbfleet fail over a hung primary, or stop its server (then it is dead, not hung)"
        )));
    }
    if hung
        && let Some(s) = silence.last_answer.map(|at| at.elapsed())
        && s < silence.hang_after
    {
        return Err(Error::Stalled {
            primary: primary.to_string(),
            silent_s: s.as_secs_f64(),
            hang_after_s: silence.hang_after.as_secs_f64(),
        });
    }
    Ok(Verdict {
        primary: primary.into(),
        from_here,
        from_replicas,
        from_proxies: proxies,
        hung,
        rounds: Vec::new(),
    })
}

/// Waits until every replica in `names` applied what it received; returns their states.
///
/// Errors: [`Error::Refused`] naming a replica whose SQL thread stopped or that did not
/// drain within `timeout_s` seconds.
pub async fn drain(
    c: &Cluster<'_>,
    names: &[String],
    timeout_s: u64,
) -> Result<Vec<(String, DbState)>, Error> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    loop {
        // Every replica read at once: this loop is on the failover's critical path.
        let reads = names.iter().map(|n| async move {
            let conn = c
                .conns
                .get(n)
                .ok_or_else(|| Error::Refused(format!("{n} is not reachable over SSH")))?;
            let s = super::topology::read_state(conn.as_ref(), c.dialect)
                .await
                .map_err(Error::Refused)?;
            Ok::<_, Error>((n.clone(), s))
        });
        let mut states = Vec::new();
        let mut waiting = Vec::new();
        for r in futures::future::join_all(reads).await {
            let (n, s) = r?;
            if !s.replicating() {
                return Err(Error::Refused(format!(
                    "{n} does not replicate: it is not a replica to promote"
                )));
            }
            if s.status().sql_running != "Yes" && !s.relay_drained() {
                return Err(Error::Refused(format!(
                    "{n}'s SQL thread is stopped with relay log left to apply: {}",
                    s.status().last_sql_error
                )));
            }
            if !s.relay_drained() {
                waiting.push(n.clone());
            }
            states.push((n, s));
        }
        if waiting.is_empty() {
            return Ok(states);
        }
        if Instant::now() > deadline {
            return Err(Error::Refused(format!(
                "{} did not apply its relay log within {timeout_s} s",
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Picks the candidate among drained replicas.
///
/// Errors: [`Error::Refused`] when the most advanced replica may not be promoted, has
/// errant transactions, or `wanted` is behind another replica.
pub fn pick(
    c: &Cluster<'_>,
    states: &[(String, DbState)],
    wanted: Option<&str>,
) -> Result<String, Error> {
    let total = |s: &DbState| s.slave_pos.progress();
    let eligible: Vec<&(String, DbState)> = states
        .iter()
        .filter(|(n, _)| c.candidates.contains(n))
        .collect();
    let chosen = match wanted {
        Some(w) => eligible
            .iter()
            .find(|(n, _)| n == w)
            .copied()
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{w} is not a reachable replica that may be promoted"
                ))
            })?,
        None => eligible
            .iter()
            .max_by_key(|(_, s)| total(s))
            .copied()
            .ok_or_else(|| {
                Error::Refused(
                    "no replica may be promoted (all are `candidate: false` or unreachable)".into(),
                )
            })?,
    };
    // Behind is "lacks something another has applied", not "fewer transactions": a
    // replica with a hole (MySQL) or an older domain (MariaDB) would lose it.
    let ahead: Vec<&str> = states
        .iter()
        .filter(|(_, s)| !chosen.1.slave_pos.covers(&s.slave_pos))
        .map(|(n, _)| n.as_str())
        .collect();
    if !ahead.is_empty() {
        let theirs = crate::sql::gtid::GtidSet::union(states.iter().map(|(_, s)| &s.slave_pos));
        let lacks = theirs.missing_from(&chosen.1.slave_pos);
        let lacks = if lacks.is_empty() {
            String::new()
        } else {
            format!(" (it lacks {})", lacks.name())
        };
        // On MySQL a replica's own writes (errant transactions) are in what it applied: a
        // replica holding some makes every other one "behind" it, and the failover refuses
        // rather than promote a server without them (remove or rebuild the errant one).
        return Err(Error::Refused(format!(
            "{} is behind {}{lacks}: promoting it would lose transactions the others have",
            chosen.0,
            ahead.join(", ")
        )));
    }
    let others: Vec<&DbState> = states
        .iter()
        .filter(|(n, _)| *n != chosen.0)
        .map(|(_, s)| s)
        .collect();
    let errant = chosen.1.errant_against(&others);
    if !errant.is_empty() && !others.is_empty() {
        return Err(Error::Refused(format!(
            "{} has errant transactions no other server has: {}; refusing to promote it (rebuild it, or pass --to another replica)",
            chosen.0,
            errant.name()
        )));
    }
    Ok(chosen.0.clone())
}

/// The replica an interrupted failover promoted, with its state: the one answering writable
/// and replicating from nobody among `replicas`. None when there is none.
///
/// Errors: [`Error::Refused`] when more than one is (two writers: a person must decide).
pub async fn interrupted(
    c: &Cluster<'_>,
    replicas: &[String],
) -> Result<Option<(String, DbState)>, Error> {
    let reads = replicas.iter().map(|n| async move {
        let conn = c.conns.get(n)?;
        let s = super::topology::read_state(conn.as_ref(), c.dialect)
            .await
            .ok()?;
        (s.up && !s.read_only && !s.replicating()).then(|| (n.clone(), s))
    });
    let mut promoted: Vec<(String, DbState)> = futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect();
    match promoted.len() {
        0 => Ok(None),
        1 => Ok(promoted.pop()),
        _ => Err(Error::Refused(format!(
            "{} are all writable and replicate from nobody: two writers; refusing, nothing was changed",
            promoted
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Whether the failover promoted to `r` (state `s`) may be finished: `r` may be promoted,
/// is the one asked for (if any), and holds everything every drained replica applied, so
/// repointing them to it loses nothing.
///
/// Errors: [`Error::Refused`] naming what stops it.
pub fn finishable(
    c: &Cluster<'_>,
    r: &str,
    s: &DbState,
    drained: &[(String, DbState)],
    wanted: Option<&str>,
) -> Result<(), Error> {
    if !c.candidates.iter().any(|x| x == r) {
        return Err(Error::Refused(format!(
            "{r} is writable and replicates from nobody, but may not be promoted (`candidate: false`)"
        )));
    }
    if let Some(w) = wanted
        && w != r
    {
        return Err(Error::Refused(format!(
            "{r} was already promoted by an interrupted failover; --to {w} would make a second writer"
        )));
    }
    let has = crate::sql::gtid::GtidSet::union([&s.binlog_pos, &s.slave_pos, &s.binlog_state]);
    // Per (domain, server) on MariaDB, not by a domain's highest number: what r wrote
    // since its promotion does not stand for what another replica applied before it.
    for (n, o) in drained {
        let lacks = o.slave_pos.missing_from(&has);
        if !lacks.is_empty() {
            return Err(Error::Refused(format!(
                "{r} was promoted by an interrupted failover but lacks {} that {n} applied: repointing {n} to it would lose them",
                lacks.name()
            )));
        }
    }
    Ok(())
}

/// What the operator asked of a failover (`dbfleet failover`'s options).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The cluster whose primary died (None: the fleet's only cluster).
    pub cluster: Option<String>,
    /// Promote this replica instead of the most advanced one (it must be as advanced).
    pub to: Option<String>,
    /// Fail over even inside the anti-flap window (`failover_anti_flap_seconds`).
    pub force: bool,
    /// How long the primary has been silent to the caller (the monitor), against the hang
    /// bound ([`Silence`]).
    pub silence: Silence,
}

/// A failover's plan and what its command records once it ran.
pub struct FailoverPlan {
    pub plan: RunbookPlan,
    /// The replica to promote, and the dead primary.
    pub new: String,
    pub old: String,
    /// The inventory's text now, and as the failover leaves it (`new` primary).
    pub before: String,
    pub edited: String,
    /// How long the liveness checks took ([`confirm_dead`], its waits for a hang's bound
    /// included), and the primary's silence when they gave their verdict (None without a
    /// caller's last answer): where a hung primary's failover spends its time.
    pub confirmed_in: std::time::Duration,
    pub silent_at_verdict: Option<std::time::Duration>,
    /// Each round of checks' own length ([`Verdict::rounds`]).
    pub check_rounds: Vec<std::time::Duration>,
}

/// Plans the failover of the primary `old` of `c`: confirms it dead (from here, the
/// replicas and the proxies), waits for the replicas to apply what they received, picks
/// the candidate and lists the steps: fence `old` on the proxies, stop its server when its
/// host answers, stop the replicas' IO threads, drain, check the choice again, take the
/// candidate out of the readers, promote it, repoint the others, move the writer.
/// Changes nothing. The connection to `old`, when its host answers SSH, joins `c` (the
/// plan stops its server).
///
/// Errors: [`Error::Refused`] from [`confirm_dead`], [`drain`] and [`pick`].
pub async fn plan(
    c: &mut Cluster<'_>,
    old: &str,
    a: &Request,
    runbook: Runbook,
) -> Result<FailoverPlan, Error> {
    let engine = c.engine;
    let d = c.dialect;
    let checks = Instant::now();
    let (verdict, old_conn) = confirm_dead(c, old, a.silence).await?;
    let confirmed_in = checks.elapsed();
    let silent_at_verdict = a.silence.last_answer.map(|t| t.elapsed());
    let mut replicas: Vec<String> = verdict
        .from_replicas
        .iter()
        .map(|r| r.name.clone())
        .collect();
    // A failover interrupted after its promotion (its monitor killed) left one replica
    // writable and replicating from nobody: this one finishes it on that replica.
    let resumed = interrupted(c, &replicas).await?;
    if let Some((r, _)) = &resumed {
        replicas.retain(|x| x != r);
    }
    let mut states = drain(c, &replicas, DRAIN_TIMEOUT_S).await?;
    let new = match &resumed {
        Some((r, s)) => {
            finishable(c, r, s, &states, a.to.as_deref())?;
            states.push((r.clone(), s.clone()));
            r.clone()
        }
        None => pick(c, &states, a.to.as_deref())?,
    };
    // The new topology: the inventory edited, and its replication tasks (their sources).
    let path = &engine.opts.inventory;
    let before = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let edited = crate::inventory::edit::promote(&path.display().to_string(), &before, &new, old)?;
    let mut opts = engine.opts.clone();
    opts.inventory_text = Some(edited.clone());
    opts.limit = None;
    let next = Engine::load(opts)?;
    let semi = next
        .inv
        .host(&new)
        .and_then(|h| h.vars.get("semi_sync"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);

    let mut p = RunbookPlan::new(
        runbook,
        path.display().to_string(),
        engine.inv.digest.clone(),
        format!(
            "Failover of cluster {}: {old} is dead, {new} becomes the primary.",
            engine
                .inv
                .host(old)
                .map(|h| h.cluster.as_str())
                .unwrap_or("")
        ),
    );
    p.observe(old, "from here", verdict.from_here.describe());
    let port = |open: bool| if open { "port open" } else { "port closed" };
    for r in &verdict.from_replicas {
        p.observe(
            &r.name,
            &format!("{old} as its source"),
            format!(
                "IO thread {}, nothing received in {} s, {}",
                r.io,
                liveness::WINDOW_S,
                port(r.port_open)
            ),
        );
    }
    for x in &verdict.from_proxies {
        p.observe(
            &x.name,
            &format!("{old}'s server"),
            if x.reaches() {
                "reaches it (lossless semi-sync: fenced here first)".to_string()
            } else {
                format!(
                    "no answer within {} s, {}",
                    liveness::ANSWER_S,
                    port(x.port_open)
                )
            },
        );
    }
    for (r, s) in &states {
        p.observe(r, c.dialect.applied_position_name(), gtids(&s.slave_pos));
    }
    let proxies: Vec<&str> = c.proxies.iter().map(String::as_str).collect();
    let rs: Vec<&str> = replicas.iter().map(String::as_str).collect();
    // Fence first: from here on nothing reaches the old primary through the proxies.
    if !proxies.is_empty() {
        p.step(
            &proxies,
            format!("writer and reader: {old} removed (fenced)"),
            Action::ProxyRuntime {
                commands: super::topology::fence_commands(old),
                primary_address: None,
            },
            true,
        );
    }
    // Whether the hung server's process is killed over SSH before the IO threads stop.
    let killed_first = old_conn.is_some() && verdict.from_here == Here::Hung;
    if let Some(conn) = old_conn {
        if verdict.from_here == Here::Hung {
            // A hung server answers no shutdown request, and its init script would wait
            // on it: killed, so it cannot go on writable when it thaws. Its wrapper first,
            // or it starts the server again. A SIGKILL ends a stopped process too; the
            // data is crash-safe (InnoDB, the binary log). Not required: a process stuck
            // in the kernel (a hung disk) outlives SIGKILL, and under lossless semi-sync
            // it can acknowledge nothing once its replicas follow the new primary, as a
            // frozen host that SSH cannot reach; the failover goes on and says so.
            p.step_at_once(
                true,
                &[old],
                "hung server killed (fenced)",
                Action::Script {
                    script: "pkill -KILL -x mysqld_safe; pkill -KILL -x mariadbd; pkill -KILL -x mysqld; \
                             for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -x 'mariadbd|mysqld' >/dev/null || exit 0; sleep 0.2; done; \
                             echo 'the server process is still there after SIGKILL' >&2; exit 1\n"
                        .to_string(),
                },
                false,
            );
        } else {
            p.step_at_once(
                true,
                &[old],
                "server stopped (fenced)",
                Action::Script {
                    script: format!("service {} stop >/dev/null 2>&1; true\n", d.service()),
                },
                true,
            );
        }
        let conn = std::sync::Arc::new(conn);
        c.conns.insert(old.to_string(), conn.clone());
        c.ssh.insert(old.to_string(), conn);
    }
    // The replicas' IO threads keep reconnecting to the dead primary, and stopping one
    // that is blocked connecting takes about two seconds (seen in the lab): all at once,
    // and at once with the fencing above unless a proxy still reaches the old primary
    // ([`Verdict::io_stop_with_fence`]) or the hung server is being killed. Otherwise no
    // order among them is needed: the old primary is dead, or hung under lossless
    // semi-sync, where a replica that stopped receiving is one fewer that could
    // acknowledge a write it took on thawing.
    //
    // After a kill, not with it: MariaDB's semi-sync replica, stopping, connects to its
    // source to end its dump thread, and waits for a hung server's greeting for
    // `rpl_semi_sync_slave_kill_conn_timeout` (at least 1 s; switching
    // `rpl_semi_sync_slave_enabled` off first does not skip it on 10.11, tried in the
    // lab); a killed server's closed port answers at once. The kill takes a fraction of
    // that (SIGKILL ends a stopped process too).
    //
    // A hung server that could not be killed (its host does not answer SSH: frozen, or
    // cut off from here) is fenced from its replicas by the network for the stop: each
    // replica resets its own connections to it, so the stop does not wait for a greeting
    // that never comes ([`fenced_io_stop`]).
    let stop_io = if verdict.hung && !killed_first {
        let (address, port) = endpoint(c, old);
        Action::Script {
            script: fenced_io_stop(d, &address, port),
        }
    } else {
        Action::Sql {
            statements: d.stop_replica_io().to_string(),
        }
    };
    p.step_at_once(
        verdict.io_stop_with_fence() && !killed_first,
        &rs,
        "IO thread stopped",
        stop_io,
        true,
    );
    p.step(
        &rs,
        "applied what it received",
        Action::Drain {
            timeout_s: DRAIN_TIMEOUT_S,
        },
        true,
    );
    if resumed.is_none() {
        p.step(
            &[&new],
            "still the most advanced eligible replica, no errant transaction",
            Action::Choose {
                candidate: new.clone(),
            },
            true,
        );
    } else {
        p.notes.push(format!(
            "{new} was promoted by an interrupted failover (writable, replicating from nobody): this failover finishes on it"
        ));
    }
    // Out of every reader backend before it is writable: never a writable reader.
    if !proxies.is_empty() {
        p.step(
            &proxies,
            format!("reader: {new} out (it becomes writable)"),
            Action::ProxyRuntime {
                commands: super::topology::reader_commands(&new, true),
                primary_address: None,
            },
            true,
        );
    }
    let position = states
        .iter()
        .find(|(n, _)| *n == new)
        .map(|(_, s)| {
            if resumed.is_some() {
                gtids(&s.binlog_pos)
            } else {
                gtids(&s.slave_pos)
            }
        })
        .unwrap_or_default();
    p.step(
        &[&new],
        format!("promoted at {position}: writable primary"),
        Action::Sql {
            statements: super::switchover::promote_sql(d, semi),
        },
        true,
    );
    for r in replicas.iter().filter(|r| **r != new) {
        let Some(repl) = next.graph.graph.node_indices().find_map(|n| {
            let t = &next.graph.graph[n];
            match &t.resource {
                crate::tasks::Resource::Replication(x) if t.host == *r && !t.handler => {
                    Some(x.clone())
                }
                _ => None,
            }
        }) else {
            continue;
        };
        let mut source = repl.source.clone();
        source.password = SECRET_PLACEHOLDER.into();
        p.step(
            &[r],
            format!("replicates from {new}"),
            Action::Sql {
                statements: super::switchover::repoint_sql(d, None, &source),
            },
            false,
        );
    }
    if !proxies.is_empty() {
        p.step(
            &proxies,
            format!("writer → {new}"),
            Action::ProxyRuntime {
                commands: super::topology::writer_commands(&new, None),
                primary_address: Some(c.address(&new)),
            },
            false,
        );
    }
    if verdict.hung {
        p.notes.push(format!(
            "{old} is hung: it holds its port open and answers nobody; lossless semi-sync, so it acknowledged nothing that no replica has, and once its replicas follow {new} it gets no acknowledgement again. When it thaws it is fenced (read-only, sessions killed) by `dbfleet rejoin {old}` or the monitor"
        ));
    }
    let reached_by_proxies = verdict.reached_by_proxies();
    if !reached_by_proxies.is_empty() {
        p.notes.push(format!(
            "{old} is still reached from {}: fenced there first; lossless semi-sync without fallback, so every write it acknowledged is on a replica",
            reached_by_proxies.join(", ")
        ));
    }
    p.notes.push(format!(
        "{} records {new} as the primary and {old} as its replica; {old} stays fenced until `dbfleet rejoin {old}`",
        path.display()
    ));
    Ok(FailoverPlan {
        plan: p,
        new,
        old: old.to_string(),
        before,
        edited,
        confirmed_in,
        silent_at_verdict,
        check_rounds: verdict.rounds.clone(),
    })
}

fn gtids(g: &crate::sql::gtid::GtidSet) -> String {
    if g.is_empty() {
        return "empty".into();
    }
    g.to_string()
}

/// The replication password the runbook's repoints send (the cluster's replication
/// user's, the same for every replica).
pub fn replication_secret(c: &Cluster<'_>) -> Option<String> {
    c.replication
        .values()
        .next()
        .map(|r| r.source.password.clone())
}

/// A rejoin ready to run: its plan and the replication password its repoint sends.
pub struct Rejoin {
    pub plan: RunbookPlan,
    pub secret: String,
}

/// Plans the rejoin of `host` as a replica of `source` ([`plan_rejoin`]) with the secret
/// it needs: what `dbfleet rejoin` and the failover monitor both run. `None`: it already
/// replicates from `source`.
///
/// Errors: [`Error::Refused`] when `host` has no replication task; [`plan_rejoin`]'s.
pub async fn rejoin_planned(
    c: &Cluster<'_>,
    host: &str,
    source: &str,
) -> Result<Option<Rejoin>, Error> {
    let repl = c
        .replication
        .get(host)
        .cloned()
        .ok_or_else(|| Error::Refused(format!("{host} has no replication task")))?;
    Ok(plan_rejoin(c, host, source, &repl)
        .await?
        .map(|plan| Rejoin {
            plan,
            secret: repl.source.password.clone(),
        }))
}

/// Seconds a rejoined host may take to catch up with the primary.
pub const REJOIN_CATCH_UP_S: u32 = 120;

/// Plans the rejoin of `host` (a returned old primary, a replica in the inventory) as a
/// replica of `source`, the current primary. A host that answers writable is fenced here,
/// at once, in every mode (a dry run too): leaving it writable is a second writer. A host
/// whose server is down gets a step that starts it (it starts read-only: `mysqld.cnf`).
/// Its GTID history is checked against the primary's now when it is up, and again by a
/// step before anything else changes. `None`: it already replicates from `source`.
///
/// Errors: [`Error::Refused`] when `source` is not a writable primary, when fencing fails,
/// or when `host` holds transactions `source` never saw (named).
pub async fn plan_rejoin(
    c: &Cluster<'_>,
    host: &str,
    source: &str,
    repl: &crate::tasks::replication::ReplicationRes,
) -> Result<Option<RunbookPlan>, Error> {
    let engine = c.engine;
    let d = c.dialect;
    let me = c
        .conns
        .get(host)
        .ok_or_else(|| Error::Refused(format!("{host} is not reachable over SSH")))?;
    let src = c
        .conns
        .get(source)
        .ok_or_else(|| Error::Refused(format!("{source} is not reachable over SSH")))?;
    let mut mine = super::topology::read_state(me.as_ref(), d)
        .await
        .map_err(Error::Refused)?;
    if mine.up && !mine.read_only {
        super::topology::fence_server(me.as_ref(), d)
            .await
            .map_err(|e| Error::Refused(engine.redactor.redact(&e)))?;
        c.step(host, "was writable: read_only ON (fenced)".into());
        mine.read_only = true;
    }
    let theirs = super::topology::read_state(src.as_ref(), d)
        .await
        .map_err(Error::Refused)?;
    if !theirs.up || theirs.read_only || theirs.replicating() {
        return Err(Error::Refused(format!(
            "{source} is not a writable primary: rejoin needs the current primary"
        )));
    }
    if mine.threads_running() && mine.status().source_host == repl.source.host {
        return Ok(None);
    }
    if mine.up {
        contained(host, &mine, source, &theirs).map_err(Error::Refused)?;
    }
    let mut p = RunbookPlan::new(
        Runbook::Rejoin {
            host: host.to_string(),
        },
        engine.opts.inventory.display().to_string(),
        engine.inv.digest.clone(),
        format!(
            "Rejoin {host} as a replica of {source}{}.",
            if mine.up {
                format!(
                    ": its history is contained in {source}'s ({})",
                    gtids(&mine.binlog_state)
                )
            } else {
                String::new()
            }
        ),
    );
    p.observe(
        host,
        "server",
        if mine.up { "up, read-only" } else { "down" },
    );
    if mine.up {
        p.observe(host, d.history_name(), gtids(&mine.binlog_state));
    }
    p.observe(source, "role", "writable primary");
    if !mine.up {
        p.step(
            &[host],
            "server started (read-only)",
            Action::Script {
                script: format!("service {} start >/dev/null 2>&1\n", d.service()),
            },
            true,
        );
        p.step(
            &[host],
            "read_only ON, semi-sync primary side OFF (fenced)",
            Action::Fence,
            true,
        );
    }
    p.step(
        &[host],
        format!("its GTID history is contained in {source}'s"),
        Action::CheckContained {
            source: source.to_string(),
        },
        true,
    );
    let mut spec = repl.source.clone();
    spec.password = SECRET_PLACEHOLDER.into();
    p.step(
        &[host],
        format!(
            "read_only ON, semi-sync primary side OFF, {} {source} (GTID, verified TLS, demoted), {}",
            d.change_source_words(),
            d.start_replica_words()
        ),
        Action::Sql {
            statements: super::switchover::rejoin_sql(d, &spec),
        },
        true,
    );
    p.step(
        &[host],
        format!("replicates from {source}, caught up"),
        Action::CatchUp {
            source: source.to_string(),
            timeout_s: REJOIN_CATCH_UP_S,
        },
        true,
    );
    let proxies: Vec<&str> = c.proxies.iter().map(String::as_str).collect();
    if !proxies.is_empty() {
        // Back among every proxy's readers (the failover fenced it out of them).
        p.step(
            &proxies,
            format!("reader: {host} back"),
            Action::ProxyRuntime {
                commands: super::topology::reader_commands(host, false),
                primary_address: None,
            },
            false,
        );
    }
    Ok(Some(p))
}

/// Checks that `host`'s GTID history (`mine`) is contained in `source`'s (`theirs`: what
/// it logged or applied): a rejoin may then replicate from it without losing or repeating
/// anything.
///
/// Errors: the refusal naming the transactions `host` has that `source` never saw.
pub fn contained(host: &str, mine: &DbState, source: &str, theirs: &DbState) -> Result<(), String> {
    let extra = mine.binlog_state.missing_from(&theirs.history());
    if extra.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{host} has transactions {source} never saw: {}; rejoining would keep them on {host} only (or stop replication). Rebuild {host} from {source} instead (move its data folder away, then `dbfleet rebuild {host}`)",
        extra.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::testing::{cluster, lab_engine, replica_state};
    use crate::transport::fake::Scripted;

    fn state(out: &str) -> DbState {
        crate::runbooks::topology::parse_state(out, crate::sql::Dialect::MariaDb)
    }

    /// What a replica answers to the liveness probe: the port, its state, and whether its
    /// IO thread received anything in the window.
    fn probe_answer(port: &str, io: &str, received: bool) -> String {
        format!(
            "port={port}\n{}received={}\n",
            replica_state(2, io, "Yes", "0-1-10", "0-1-10"),
            if received { "yes" } else { "no" }
        )
    }

    fn lossless_engine() -> Engine {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/inventories/lab.yml"
        ))
        .expect("lab inventory")
        .replace(
            "    max_connections: 200\n",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: never\n",
        );
        lab_engine(Some(text))
    }

    async fn verdict(c: &Cluster<'_>, here: Here, silence: Silence) -> Result<Verdict, Error> {
        let none = HashMap::new();
        let ((there, _), proxies) =
            tokio::join!(observe_replicas(c, "db1", &none), observe_proxies(c, "db1"));
        judge(c, "db1", here, there, proxies, silence)
    }

    /// db2's and db3's replica probes and proxy1's proxy probe, as they answer.
    fn seen_by(db2: String, db3: String, proxy1: &str) -> Vec<Scripted> {
        vec![
            Scripted::new("db2").answer("/dev/tcp", &[&db2]),
            Scripted::new("db3").answer("/dev/tcp", &[&db3]),
            Scripted::new("proxy1").answer("/dev/tcp", &[proxy1]),
        ]
    }

    fn no_ssh() -> Here {
        Here::NoSsh("timeout".into())
    }

    #[tokio::test]
    async fn a_primary_that_answers_a_replicas_io_thread_is_not_dead() {
        let engine = lossless_engine();
        let c = cluster(
            &engine,
            seen_by(
                probe_answer("closed", "Connecting", false),
                probe_answer("open", "Yes", true),
                "port=closed\nserver=silent\n",
            ),
        );
        let e = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect_err("alive from db3");
        assert!(
            e.to_string().contains("db1 answers db3's replication"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_port_open_to_a_replica_that_cannot_tell_refuses() {
        // db3's IO thread is stopped: the open port may be a live server; the old reading.
        let engine = lossless_engine();
        let c = cluster(
            &engine,
            seen_by(
                probe_answer("open", "Yes", false),
                probe_answer("open", "No", false),
                "port=open\nserver=silent\n",
            ),
        );
        let e = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect_err("db3 cannot tell");
        assert!(
            e.to_string()
                .contains("db1's database port answers from db3 and its IO thread is No"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_primary_dead_from_every_replica_and_proxy_is_confirmed_dead() {
        let engine = lab_engine(None);
        let c = cluster(
            &engine,
            seen_by(
                probe_answer("closed", "Connecting", false),
                probe_answer("closed", "No", false),
                "port=closed\nserver=silent\n",
            ),
        );
        let v = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect("dead");
        let seen: Vec<(&str, &str)> = v
            .from_replicas
            .iter()
            .map(|r| (r.name.as_str(), r.io.as_str()))
            .collect();
        assert_eq!(seen, vec![("db2", "Connecting"), ("db3", "No")]);
        assert!(v.reached_by_proxies().is_empty() && !v.hung);
        assert!(v.io_stop_with_fence());
        // Down over SSH (no process) is dead too; alive from here, or no replica: refused.
        assert!(verdict(&c, Here::Down, Silence::default()).await.is_ok());
        assert!(verdict(&c, Here::Alive, Silence::default()).await.is_err());
        let nobody = cluster(&engine, vec![]);
        let e = verdict(&nobody, no_ssh(), Silence::default())
            .await
            .expect_err("none");
        assert!(e.to_string().contains("no replica of db1 answers"), "{e}");
    }

    #[tokio::test]
    async fn a_proxy_still_reaching_the_primary_refuses_without_lossless_semi_sync() {
        // Issue 10, case 1: cut off from us and its replicas but not from the proxy, the
        // primary may still acknowledge writes that no replica has.
        let hosts = || {
            seen_by(
                probe_answer("closed", "Connecting", false),
                probe_answer("closed", "Connecting", false),
                "port=open\nserver=answers\n",
            )
        };
        let engine = lab_engine(None);
        let c = cluster(&engine, hosts());
        let e = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect_err("async");
        assert!(e.to_string().contains("answers from proxy1"), "{e}");
        // With semi-sync and no fallback, every acknowledged write is on a replica: go on,
        // fencing the primary on that proxy first.
        let lossless = lossless_engine();
        let c = cluster(&lossless, hosts());
        let v = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect("lossless");
        assert_eq!(v.reached_by_proxies(), vec!["proxy1".to_string()]);
        // The fence comes first there: a failed fence must not leave a live primary's
        // replicas stopped.
        assert!(!v.io_stop_with_fence());
    }

    /// Issue 29: a frozen primary's kernel completes TCP handshakes and keeps its
    /// replicas' connections ("Yes"), but nothing arrives and nobody gets an answer.
    fn hung_hosts() -> Vec<Scripted> {
        seen_by(
            probe_answer("open", "Yes", false),
            probe_answer("open", "Yes", false),
            "port=open\nserver=silent\n",
        )
    }

    #[tokio::test]
    async fn a_hung_primary_is_failed_over_under_lossless_semi_sync_only() {
        let engine = lab_engine(None);
        let c = cluster(&engine, hung_hosts());
        let e = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect_err("not lossless");
        assert!(
            e.to_string()
                .contains("this configuration cannot fail over a hung primary safely")
                && e.to_string().contains("semi_sync_timeout_ms: never"),
            "{e}"
        );
        let lossless = lossless_engine();
        let c = cluster(&lossless, hung_hosts());
        let v = verdict(&c, no_ssh(), Silence::default())
            .await
            .expect("lossless");
        assert!(v.hung && v.reached_by_proxies().is_empty(), "{v:?}");
        // Its process runs over SSH and says nothing: hung too.
        let v = verdict(&c, Here::Hung, Silence::default())
            .await
            .expect("hung over SSH");
        assert!(v.hung);
    }

    #[test]
    fn a_replicas_sample_dates_from_the_round_that_first_took_it() {
        let view = |m: &str| ReplicaView {
            name: "db2".into(),
            io: "Yes".into(),
            received: false,
            port_open: true,
            marker: m.into(),
        };
        let mut samples = HashMap::new();
        let first = Instant::now() - Duration::from_secs(2);
        record_samples(&mut samples, &[view("hb=10")], first);
        // Nothing arrived since: the window still starts at the first round.
        record_samples(&mut samples, &[view("hb=10")], Instant::now());
        assert_eq!(samples["db2"], ("hb=10".to_string(), first));
        // Something arrived: a new window from this round.
        let now = Instant::now();
        record_samples(&mut samples, &[view("hb=11")], now);
        assert_eq!(samples["db2"], ("hb=11".to_string(), now));
        // Unread: the last sample stays.
        record_samples(&mut samples, &[view("")], Instant::now());
        assert_eq!(samples["db2"], ("hb=11".to_string(), now));
    }

    #[test]
    fn a_hung_sources_replicas_reset_their_own_connections_to_it_for_the_stop_only() {
        let s = fenced_io_stop(crate::sql::Dialect::MariaDb, "db1.example'; reboot", 3307);
        assert!(
            s.contains("getent ahostsv4 'db1.example'\\''; reboot'"),
            "{s}"
        );
        // Connection attempts only: the IO thread's own connection closes normally.
        assert!(
            s.contains("tcp dport 3307 tcp flags & (syn | ack) == syn reject with tcp reset"),
            "{s}"
        );
        // Expires by itself, and is deleted when the script ends.
        assert!(s.contains("$a timeout 60s"), "{s}");
        assert!(
            s.contains("trap 'nft delete table inet dbfleet_fence"),
            "{s}"
        );
        // The stop itself, with or without the fence.
        assert!(s.ends_with("mariadb -e 'STOP SLAVE IO_THREAD;'\n"), "{s}");
    }

    #[tokio::test]
    async fn a_stall_shorter_than_the_hang_bound_is_waited_out() {
        let lossless = lossless_engine();
        let c = cluster(&lossless, hung_hosts());
        let ago = |s: u64| Instant::now().checked_sub(Duration::from_secs(s));
        let short = Silence {
            last_answer: ago(4),
            hang_after: Duration::from_secs(8),
        };
        let e = verdict(&c, no_ssh(), short).await.expect_err("a stall");
        assert!(matches!(e, Error::Stalled { .. }), "{e}");
        let long = Silence {
            last_answer: ago(9),
            hang_after: Duration::from_secs(8),
        };
        assert!(verdict(&c, no_ssh(), long).await.is_ok());
        // A dead primary (nothing open) is not waited for.
        let dead = cluster(
            &lossless,
            vec![
                Scripted::new("db2")
                    .answer("/dev/tcp", &[&probe_answer("closed", "Connecting", false)]),
                Scripted::new("db3")
                    .answer("/dev/tcp", &[&probe_answer("closed", "Connecting", false)]),
            ],
        );
        assert!(verdict(&dead, no_ssh(), short).await.is_ok());
    }

    #[tokio::test]
    async fn drain_waits_for_the_relay_log_and_refuses_a_stopped_applier() {
        let engine = lab_engine(None);
        let db2 = Scripted::new("db2").answer(
            "INNODB_TRX",
            &[
                &replica_state(2, "No", "Yes", "0-1-10", "0-1-8"),
                &replica_state(2, "No", "Yes", "0-1-10", "0-1-9"),
                &replica_state(2, "No", "Yes", "0-1-10", "0-1-10"),
            ],
        );
        let c = cluster(&engine, vec![db2]);
        let states = drain(&c, &["db2".to_string()], DRAIN_TIMEOUT_S)
            .await
            .expect("drained");
        // Its first two reads still had relay log to apply (0-1-8, 0-1-9 of 0-1-10).
        assert_eq!(
            states[0].1.slave_pos.mariadb.iter().map(|g| g.seq).max(),
            Some(10)
        );
        // An applier stopped with relay log left: promoting it would lose what it holds.
        let db3 = Scripted::new("db3").answer(
            "INNODB_TRX",
            &[&replica_state(3, "No", "No", "0-1-10", "0-1-7")],
        );
        let c = cluster(&engine, vec![db3]);
        let e = drain(&c, &["db3".to_string()], DRAIN_TIMEOUT_S)
            .await
            .expect_err("stopped");
        assert!(e.to_string().contains("db3's SQL thread is stopped"), "{e}");
        // An unreachable replica cannot be drained.
        let e = drain(&c, &["db2".to_string()], DRAIN_TIMEOUT_S)
            .await
            .expect_err("unreachable");
        assert!(e.to_string().contains("db2 is not reachable"), "{e}");
    }

    #[test]
    fn pick_takes_the_most_advanced_eligible_replica() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        let db2 = state(&replica_state(2, "No", "Yes", "0-1-10", "0-1-10"));
        let db3 = state(&replica_state(3, "No", "Yes", "0-1-12", "0-1-12"));
        let states = vec![("db2".to_string(), db2), ("db3".to_string(), db3)];
        assert_eq!(pick(&c, &states, None).expect("pick"), "db3");
        // Asked for the one behind: refused, naming who is ahead.
        let e = pick(&c, &states, Some("db2")).expect_err("behind");
        assert!(e.to_string().contains("db2 is behind db3"), "{e}");
        // The most advanced one may not be promoted: the other is behind it, so refused.
        let mut c = cluster(&engine, vec![]);
        c.candidates.retain(|h| h != "db3");
        let e = pick(&c, &states, None).expect_err("db3 not eligible");
        assert!(e.to_string().contains("db2 is behind db3"), "{e}");
    }

    #[test]
    fn pick_refuses_a_replica_with_errant_transactions() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        // db3 wrote 0-3-5 itself (read_only bypassed); nobody else has it.
        let mut db3 = state(&replica_state(3, "No", "Yes", "0-1-12", "0-1-12"));
        db3.binlog_state = crate::sql::gtid::GtidSet::parse("0-1-12,0-3-5");
        let db2 = state(&replica_state(2, "No", "Yes", "0-1-12", "0-1-12"));
        let states = vec![("db2".to_string(), db2), ("db3".to_string(), db3)];
        let e = pick(&c, &states, Some("db3")).expect_err("errant");
        assert!(e.to_string().contains("db3 has errant transactions"), "{e}");
        assert_eq!(pick(&c, &states, Some("db2")).expect("db2"), "db2");
    }

    /// A MySQL replica's state as the probe prints it: gtid_executed in all three
    /// positions, its server_uuid, and MySQL's replica status names; `received` may hold
    /// line breaks, as the server prints a set of several sources.
    fn mysql_state(server_id: u32, uuid: &str, executed: &str, received: &str) -> DbState {
        let d = crate::sql::Dialect::MySql84;
        let f = d.replica_fields();
        let out = format!(
            "*** 1. row ***\n up: dbfleet-up\n read_only: 1\n server_id: {server_id}\n long_trx: 0\n\
             *** 1. row ***\n binlog_pos: {executed}\n slave_pos: {executed}\n binlog_state: {executed}\n server_uuid: {uuid}\n\
             *** 1. row ***\n {}: 172.29.77.11\n {}: No\n {}: Yes\n {}: 0\n Retrieved_Gtid_Set: {received}\n Last_SQL_Error: \n",
            f.source_host, f.io_running, f.sql_running, f.seconds_behind
        );
        crate::runbooks::topology::parse_state(&out, d)
    }

    #[test]
    fn mysql_replicas_are_ranked_and_checked_as_gtid_sets() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        let (src, old, u2, u3) = (
            "aaaaaaaa-0000-0000-0000-000000000001",
            "aaaaaaaa-0000-0000-0000-000000000009",
            "aaaaaaaa-0000-0000-0000-000000000002",
            "aaaaaaaa-0000-0000-0000-000000000003",
        );
        // Received over two sources (line break as printed), applied all: drained.
        let db2 = mysql_state(
            2,
            u2,
            &format!("{old}:1-4,{src}:1-10"),
            &format!("{old}:1-4,\n{src}:1-10"),
        );
        assert!(db2.relay_drained());
        assert!(!mysql_state(2, u2, &format!("{src}:1-9"), &format!("{src}:1-10")).relay_drained());
        let db3 = mysql_state(3, u3, &format!("{old}:1-4,{src}:1-9"), "");
        let states = vec![("db2".to_string(), db2.clone()), ("db3".to_string(), db3)];
        assert_eq!(pick(&c, &states, None).expect("pick"), "db2");
        let e = pick(&c, &states, Some("db3")).expect_err("behind");
        assert!(e.to_string().contains("db3 is behind db2"), "{e}");
        // More transactions is not ahead: db3 has a hole (src:9) db2 applied; promoting
        // it would lose that one, whatever the counts say.
        let holed = mysql_state(3, u3, &format!("{old}:1-4,{src}:1-8:10-14"), "");
        let states = vec![("db2".to_string(), db2.clone()), ("db3".to_string(), holed)];
        let e = pick(&c, &states, None).expect_err("nobody has everything");
        assert!(e.to_string().contains("is behind"), "{e}");
        // Transactions db3 wrote itself (its own server_uuid) that nobody has: errant.
        let errant = mysql_state(3, u3, &format!("{old}:1-4,{src}:1-10,{u3}:1-2"), "");
        let states = vec![("db2".to_string(), db2), ("db3".to_string(), errant)];
        let e = pick(&c, &states, Some("db3")).expect_err("errant");
        assert!(
            e.to_string().contains(&format!(
                "errant transactions no other server has: {u3}:1-2 (2 transactions)"
            )),
            "{e}"
        );
        // Nor db2: db3's errant writes are in what db3 applied (MySQL), so db2 lacks
        // them; the failover refuses and names them rather than guess.
        let e = pick(&c, &states, Some("db2")).expect_err("db2 lacks db3's writes");
        assert!(
            e.to_string().contains(&format!(
                "db2 is behind db3 (it lacks {u3}:1-2 (2 transactions))"
            )),
            "{e}"
        );
    }

    /// A replica promoted by an interrupted failover: writable, replicating from nobody.
    fn promoted_state(server_id: u32, binlog_pos: &str, applied: &str) -> String {
        format!(
            "*** 1. row ***\n up: dbfleet-up\n read_only: 0\n server_id: {server_id}\n long_trx: 0\n\
             *** 1. row ***\n binlog_pos: {binlog_pos}\n slave_pos: {applied}\n binlog_state: {binlog_pos}\n"
        )
    }

    /// Issue 14, must-show 4: a monitor killed after promoting db3 leaves db3 writable; the
    /// next failover finds it and finishes on it (repointing db2 loses nothing), and refuses
    /// when db2 applied something db3 lacks, when --to names another replica, or when two
    /// replicas are writable.
    #[tokio::test]
    async fn a_failover_interrupted_after_its_promotion_is_finished_on_the_promoted_replica() {
        let engine = lab_engine(None);
        let c = cluster(
            &engine,
            vec![
                Scripted::new("db2").answer(
                    "INNODB_TRX",
                    &[&replica_state(2, "Connecting", "Yes", "0-1-10", "0-1-10")],
                ),
                Scripted::new("db3")
                    .answer("INNODB_TRX", &[&promoted_state(3, "0-1-10", "0-1-10")]),
            ],
        );
        let replicas = vec!["db2".to_string(), "db3".to_string()];
        let (r, s) = interrupted(&c, &replicas)
            .await
            .expect("one writer")
            .expect("db3 was promoted");
        assert_eq!(r, "db3");
        let db2 = state(&replica_state(2, "Connecting", "Yes", "0-1-10", "0-1-10"));
        finishable(&c, &r, &s, &[("db2".into(), db2)], None).expect("db2 loses nothing");

        let ahead = state(&replica_state(2, "Connecting", "Yes", "0-1-11", "0-1-11"));
        let e =
            finishable(&c, &r, &s, &[("db2".into(), ahead.clone())], None).expect_err("db2 ahead");
        assert!(e.to_string().contains("lacks 0-1-11"), "{e}");
        // db3's own writes since its promotion (0-3-12) do not stand for db2's 0-1-11.
        let wrote = state(&promoted_state(3, "0-3-12", "0-1-10"));
        let e = finishable(&c, &r, &wrote, &[("db2".into(), ahead)], None)
            .expect_err("db2's 0-1-11 is not on db3");
        assert!(e.to_string().contains("lacks 0-1-11"), "{e}");
        let e = finishable(&c, &r, &s, &[], Some("db2")).expect_err("--to another");
        assert!(e.to_string().contains("second writer"), "{e}");

        let two = cluster(
            &engine,
            vec![
                Scripted::new("db2")
                    .answer("INNODB_TRX", &[&promoted_state(2, "0-1-10", "0-1-10")]),
                Scripted::new("db3")
                    .answer("INNODB_TRX", &[&promoted_state(3, "0-1-10", "0-1-10")]),
            ],
        );
        let e = interrupted(&two, &replicas).await.expect_err("two writers");
        assert!(e.to_string().contains("two writers"), "{e}");
    }
}
