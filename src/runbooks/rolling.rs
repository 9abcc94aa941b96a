//! Rolling restarts and upgrades: when an apply must restart database servers (a handler
//! marked `rolling: true`, the database playbook's `restart server`) or upgrade their
//! packages (a `rolling: true` package task that upgrades: `server_version`), it does so
//! one server of a cluster at a time instead of all at once (issue 16: a static setting
//! changed restarted the lab's three servers together, 4.3 s without writes and without
//! readers; Debian's package upgrade restarts the server where systemd runs it). The
//! order is the Percona operator's and what Ansible users write with `serial: 1`:
//!
//! 1. each replica in turn (the last declared first): out of every proxy's reader backend,
//!    upgraded (its packages, then its system tables after the restart) and restarted,
//!    waited for until it replicates again and has reached the primary's
//!    position, back among the readers;
//! 2. the primary last, by the host's `restart_strategy`:
//!    - `switchover` (the default): a planned switchover to a caught-up replica
//!      (`runbooks::switchover`, writes blocked for its window), the old primary restarted
//!      as a replica and caught up, then a switchover back, so the inventory stays true;
//!    - `in_place`: restarted where it is, then made writable again (writes stop while it
//!      restarts).
//!
//! A server that started after its option file was last written already runs it and is
//! not restarted (a fresh host: Debian's package started it before dbfleet's file was
//! there only when its pid file is older). With no replica ready to stand in, the primary
//! restarts in place. Never two servers of a cluster down at once. The first failure stops
//! the roll: the servers not yet restarted keep their pending marker
//! (`tasks::PENDING_DIR`), so the next plan shows where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::Cluster;
use super::topology::{read_state, reader_maint, sql};
use crate::engine::{Engine, Probe};
use crate::events::EventSink;
use crate::plan::Plan;
use crate::tasks::Resource;
use crate::tasks::primary::PrimaryRes;
use crate::transport::Transport;

/// Seconds a restarted server may take to replicate again and reach the primary's
/// position before the roll stops.
pub const CATCH_UP_S: u32 = 120;

/// How the primary of a cluster is restarted (host var `restart_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Switchover,
    InPlace,
}

impl Strategy {
    fn of(engine: &Engine, host: &str) -> Strategy {
        match engine
            .inv
            .host(host)
            .and_then(|h| h.vars.get("restart_strategy"))
            .and_then(|v| v.as_str())
        {
            Some("in_place") => Strategy::InPlace,
            _ => Strategy::Switchover,
        }
    }
}

/// The order in which `due` (database hosts of one cluster whose rolling handler runs)
/// are restarted: replicas, last declared first, then the primary. Returns (replicas,
/// primary if due).
fn order(c: &Cluster<'_>, primary: &str, due: &[String]) -> (Vec<String>, Option<String>) {
    let replicas = c
        .members
        .iter()
        .rev()
        .filter(|m| *m != primary && due.contains(m))
        .cloned()
        .collect();
    (
        replicas,
        due.iter()
            .any(|d| d == primary)
            .then(|| primary.to_string()),
    )
}

/// The replica the primary moves to while it restarts: the first declared candidate.
fn stand_in(c: &Cluster<'_>, primary: &str) -> Option<String> {
    c.candidates
        .iter()
        .find(|h| *h != primary && c.replication.contains_key(*h))
        .cloned()
}

fn primary_of(engine: &Engine, cluster: &str) -> Option<String> {
    engine
        .inv
        .hosts
        .iter()
        .find(|h| h.cluster == cluster && h.has(crate::inventory::Role::Primary))
        .map(|h| h.name.clone())
}

/// Adds the roll to the plan, in words, on each rolling handler's change: "rolling
/// restart of cluster lab: db3, then db2, then db1 by switchover to db2 and back".
pub fn fold(engine: &Engine, plan: &mut Plan) {
    let rolling: Vec<(String, String)> = plan
        .hosts
        .iter()
        .flat_map(|hp| {
            hp.changes
                .iter()
                .filter(|c| held_back(engine, &hp.host, c))
                .map(|c| (hp.host.clone(), c.task.clone()))
        })
        .collect();
    for hp in &mut plan.hosts {
        for c in &mut hp.changes {
            if rolling.iter().any(|(h, t)| *h == hp.host && *t == c.task) {
                c.rolling = true;
            }
        }
    }
    // Hosts whose held-back changes include an upgrade (a task, not a handler).
    let upgrading: Vec<String> = plan
        .hosts
        .iter()
        .filter(|hp| {
            hp.changes
                .iter()
                .any(|c| !c.handler && held_back(engine, &hp.host, c))
        })
        .map(|hp| hp.host.clone())
        .collect();
    let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, _) in &rolling {
        if let Some(h) = engine.inv.host(host) {
            by_cluster
                .entry(h.cluster.clone())
                .or_default()
                .push(host.clone());
        }
    }
    for (cluster, due) in by_cluster {
        let mut galera: Vec<String> = engine
            .inv
            .cluster_databases(&cluster)
            .filter(|h| h.has(crate::inventory::Role::Member) && due.contains(&h.name))
            .map(|h| h.name.clone())
            .collect();
        galera.reverse();
        let primary = primary_of(engine, &cluster);
        let group = galera
            .first()
            .and_then(|m| engine.inv.host(m))
            .is_some_and(|h| h.in_group());
        let note = if group {
            format!(
                "rolling restart of replication group {cluster}: {}; one member down at a time, only while the others are online with their majority, each online again before the next (a restarted primary: the group elects another)",
                galera.join(", then ")
            )
        } else if !galera.is_empty() {
            format!(
                "rolling restart of Galera cluster {cluster}: {}; one member down at a time, only while the others are synced, each synced again before the next",
                galera.join(", then ")
            )
        } else if let Some(primary) = &primary {
            let c = Cluster::declared(engine, primary, Arc::new(crate::events::Silent));
            let what = if due.iter().any(|h| upgrading.contains(h)) {
                "rolling upgrade"
            } else {
                "rolling restart"
            };
            describe(engine, &c, primary, &due, what)
        } else {
            continue;
        };
        // Once per host: on its first change that rolls.
        for hp in plan.hosts.iter_mut().filter(|hp| due.contains(&hp.host)) {
            if let Some(ch) = hp
                .changes
                .iter_mut()
                .find(|ch| rolling.iter().any(|(h, t)| *h == hp.host && *t == ch.task))
            {
                ch.notes.push(note.clone());
            }
        }
    }
}

fn describe(engine: &Engine, c: &Cluster<'_>, primary: &str, due: &[String], what: &str) -> String {
    let (replicas, p) = order(c, primary, due);
    let mut steps: Vec<String> = replicas.clone();
    if let Some(p) = p {
        steps.push(match (Strategy::of(engine, &p), stand_in(c, &p)) {
            (Strategy::Switchover, Some(s)) => format!(
                "{p} by switchover to {s} and back (writes blocked twice, each for a switchover's window)"
            ),
            (Strategy::Switchover, None) => format!(
                "{p} in place (no replica may be promoted: writes stop while it restarts)"
            ),
            (Strategy::InPlace, _) => {
                format!("{p} in place (writes stop while it restarts: restart_strategy in_place)")
            }
        });
    }
    format!(
        "{what} of cluster {}: {}; one server down at a time, each back and caught up before the next",
        engine
            .inv
            .host(primary)
            .map(|h| h.cluster.as_str())
            .unwrap_or(""),
        steps.join(", then ")
    )
}

/// Whether the planned change `c` on `host` is held back for the roll: a rolling handler,
/// or a rolling task that upgrades (`~`; a fresh install runs in its place, as nothing runs
/// yet to roll). The apply holds back exactly these; `fold` describes them.
pub fn held_back(engine: &Engine, host: &str, c: &crate::plan::Change) -> bool {
    (c.handler || c.action == crate::tasks::Action::Update) && is_rolling(engine, host, &c.task)
}

/// Whether `task` on `host` is a rolling handler or task.
pub fn is_rolling(engine: &Engine, host: &str, task: &str) -> bool {
    engine
        .graph
        .node(host, task)
        .is_some_and(|n| engine.graph.graph[n].rolling)
}

/// What the roll did with one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rolled {
    Restarted,
    /// No restart needed: the server started after its option file was last written
    /// (it already runs it; a fresh host's first apply). The caller clears the pending
    /// marker.
    Current,
    /// Its step failed or was refused (the roll stops here).
    Failed(String),
    /// Not touched: the roll stopped at an earlier host.
    NotReached(String),
}

/// Restarts `due` (database hosts of one cluster) one at a time in the roll's order;
/// `restart(host)` runs the held-back tasks themselves on a host (an upgrade of its
/// packages, then the restart and what else it notified; their scripts, events and
/// pending markers are the apply's). `upgrading` (hosts whose packages are upgraded) are
/// never skipped as current. Returns what happened to each host; after the first failure
/// the remaining hosts are not touched.
pub async fn roll(
    engine: &Engine,
    probe: &Probe,
    events: &Arc<dyn EventSink>,
    due: &[String],
    upgrading: &[String],
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Vec<(String, Rolled)> {
    let Some(cluster) = due
        .first()
        .and_then(|h| engine.inv.host(h))
        .map(|h| h.cluster.clone())
    else {
        return Vec::new();
    };
    if engine
        .inv
        .cluster_databases(&cluster)
        .any(|h| h.has(crate::inventory::Role::Member))
    {
        let first = due.first().cloned().unwrap_or_default();
        let c = Cluster::new(engine, &first, probe.conns.clone(), events.clone(), None).await;
        let results = roll_galera(&c, due, upgrading, restart).await;
        c.close().await;
        return results;
    }
    let Some(primary) = primary_of(engine, &cluster) else {
        return due
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    Rolled::Failed(format!("cluster {cluster} has no primary")),
                )
            })
            .collect();
    };
    let c = Cluster::new(engine, &primary, probe.conns.clone(), events.clone(), None).await;
    let results = roll_cluster(&c, &primary, due, upgrading, restart).await;
    c.close().await;
    results
}

/// The roll over `c` (the cluster of `primary`, its declared primary): what [`roll`] does
/// once connected. Every script goes through `c.conns`, so unit tests script the hosts;
/// the switchover strategy's held sessions need `c.ssh`.
async fn roll_cluster(
    c: &Cluster<'_>,
    primary: &str,
    due: &[String],
    upgrading: &[String],
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Vec<(String, Rolled)> {
    let mut results: Vec<(String, Rolled)> = Vec::new();
    // A server started after its option file changed already runs it.
    let mut stale = Vec::new();
    for h in due {
        if !upgrading.contains(h) && runs_current_file(c, h).await {
            c.step(
                h,
                "started after its configuration changed: no restart needed".into(),
            );
            results.push((h.clone(), Rolled::Current));
        } else {
            stale.push(h.clone());
        }
    }
    let (replicas, p) = order(c, primary, &stale);
    let mut stopped: Option<String> = None;
    for r in replicas {
        let rolled = match &stopped {
            Some(why) => Rolled::NotReached(why.clone()),
            None => match restart_replica(c, &r, primary, false, restart).await {
                Ok(()) => Rolled::Restarted,
                Err(e) => {
                    stopped = Some(format!("not restarted: the roll stopped at {r} ({e})"));
                    Rolled::Failed(e)
                }
            },
        };
        results.push((r, rolled));
    }
    if let Some(p) = p {
        let rolled = match &stopped {
            Some(why) => Rolled::NotReached(why.clone()),
            None => {
                let res = match Strategy::of(c.engine, &p) {
                    Strategy::InPlace => restart_in_place(c, &p, restart).await,
                    Strategy::Switchover => restart_by_switchover(c.engine, c, &p, restart).await,
                };
                match res {
                    Ok(()) => Rolled::Restarted,
                    Err(e) => Rolled::Failed(e),
                }
            }
        };
        results.push((p, rolled));
    }
    results
}

/// The roll over a Galera cluster: each due member in turn (the last declared first, so
/// the first member, the proxies' writer, goes last), only while every other member is
/// synced in the primary component (the restart never takes the cluster below its
/// majority), out of both of every proxy's backends, restarted (it rejoins by IST from a
/// donor's gcache), waited for until synced, and back. A member that started after its
/// option file was written already runs it and is skipped.
async fn roll_galera(
    c: &Cluster<'_>,
    due: &[String],
    upgrading: &[String],
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Vec<(String, Rolled)> {
    let mut results: Vec<(String, Rolled)> = Vec::new();
    let mut stopped: Option<String> = None;
    let order: Vec<String> = c
        .members
        .iter()
        .rev()
        .filter(|m| due.contains(m))
        .cloned()
        .collect();
    for m in order {
        if let Some(why) = &stopped {
            results.push((m, Rolled::NotReached(why.clone())));
            continue;
        }
        if !upgrading.contains(&m) && runs_current_file(c, &m).await {
            c.step(
                &m,
                "started after its configuration changed: no restart needed".into(),
            );
            results.push((m, Rolled::Current));
            continue;
        }
        match restart_member(c, &m, restart).await {
            Ok(()) => results.push((m, Rolled::Restarted)),
            Err(e) => {
                stopped = Some(format!("not restarted: the roll stopped at {m} ({e})"));
                results.push((m, Rolled::Failed(e)));
            }
        }
    }
    results
}

/// A member's state line, "" when its server does not answer: a Galera member's
/// `local_state` and `cluster_status` (`crate::sql::galera`), a group member's
/// `MEMBER_STATE`, online and member counts (`crate::sql::group`).
async fn galera_state(c: &Cluster<'_>, host: &str) -> String {
    let Ok(conn) = tr(c, host) else {
        return String::new();
    };
    let query = if in_group(c, host) {
        crate::sql::group::STATE_LINE
    } else {
        crate::sql::galera::STATE_LINE
    };
    super::members::state_line(conn, c.dialect.client(), query).await
}

/// `host` is a member of a replication group (`replication: group`), not of a Galera
/// cluster.
fn in_group(c: &Cluster<'_>, host: &str) -> bool {
    c.engine.inv.host(host).is_some_and(|h| h.in_group())
}

/// A Galera member synced in the primary component, or a group member online in a group
/// that holds its majority.
fn is_synced(state: &str) -> bool {
    let f: Vec<&str> = state.split('\t').collect();
    if let [st, online, members] = f[..] {
        let n = |s: &str| s.parse::<u32>().unwrap_or(0);
        return st == crate::sql::group::ONLINE && 2 * n(online) > n(members);
    }
    state
        == format!(
            "{}\t{}",
            crate::sql::galera::SYNCED,
            crate::sql::galera::PRIMARY_COMPONENT
        )
}

/// One member of a Galera roll ([`roll_galera`]).
async fn restart_member(
    c: &Cluster<'_>,
    m: &str,
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Result<(), String> {
    for other in c.members.iter().filter(|o| *o != m) {
        let st = galera_state(c, other).await;
        if !is_synced(&st) {
            return Err(format!(
                "{other} is not synced in the primary component (or online in its group) ({}): restarting {m} now could leave the cluster without a majority",
                if st.is_empty() {
                    "no answer"
                } else {
                    st.as_str()
                }
            ));
        }
    }
    for proxy in steerable(c) {
        super::topology::proxy_runtime(
            proxy,
            &super::topology::fence_commands(m),
            None,
            "taking a member out",
        )
        .await?;
    }
    c.step(m, "out of the proxies' backends; restarting".into());
    let t0 = Instant::now();
    restart(m.to_string()).await?;
    let deadline = Instant::now() + Duration::from_secs(crate::tasks::galera::SYNC_WAIT_S.into());
    loop {
        let st = galera_state(c, m).await;
        if is_synced(&st) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{m} is not synced (or online) again after its restart ({st})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for proxy in steerable(c) {
        super::topology::proxy_runtime(
            proxy,
            &[
                format!("set server writer/{m} state ready"),
                format!("set server reader/{m} state ready"),
            ],
            None,
            "putting a member back",
        )
        .await?;
    }
    c.step(
        m,
        format!(
            "restarted and synced in {} ms; back in the proxies' backends",
            t0.elapsed().as_millis()
        ),
    );
    Ok(())
}

/// The transport to `host` (scripts only).
fn tr<'c>(c: &'c Cluster<'_>, host: &str) -> Result<&'c dyn Transport, String> {
    c.conns
        .get(host)
        .map(|t| t.as_ref())
        .ok_or_else(|| format!("{host} is not reachable over SSH"))
}

/// Whether `host`'s server started after dbfleet's option file was last written (its pid
/// file is newer), so it already runs that file.
async fn runs_current_file(c: &Cluster<'_>, host: &str) -> bool {
    let d = c.dialect;
    let Ok(conn) = tr(c, host) else {
        return false;
    };
    let check = format!(
        "[ {} -nt {} ] && echo current || echo stale\n",
        crate::tasks::q(d.pidfile()),
        crate::tasks::q(d.cnf_path())
    );
    conn.run(&check)
        .await
        .is_ok_and(|o| o.stdout.trim() == "current")
}

/// The proxies the roll can steer: those with a connection. A proxy that did not answer
/// is left out (its own checks still take a stopped server out of its backends).
fn steerable<'c>(c: &'c Cluster<'_>) -> Vec<&'c dyn Transport> {
    c.proxies.iter().filter_map(|p| tr(c, p).ok()).collect()
}

/// Out of the readers, restarted, caught up with `source`, back among the readers. A
/// replica that did not replicate before (broken, or not seeded yet) is restarted without
/// waiting for it, unless `demoted` (an old primary just made a replica, whose IO thread
/// may still be connecting: it must catch up before it is promoted back).
async fn restart_replica(
    c: &Cluster<'_>,
    r: &str,
    source: &str,
    demoted: bool,
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Result<(), String> {
    let replicating = demoted
        || read_state(tr(c, r)?, c.dialect)
            .await
            .is_ok_and(|s| s.up && s.threads_running());
    for proxy in steerable(c) {
        reader_maint(proxy, r, true).await?;
    }
    c.step(r, "out of the readers; restarting".into());
    let t0 = Instant::now();
    restart(r.to_string()).await?;
    let how = if replicating {
        caught_up(c, r, source).await?;
        format!("caught up with {source}")
    } else {
        "not waited for (it did not replicate before its restart)".to_string()
    };
    for proxy in steerable(c) {
        reader_maint(proxy, r, false).await?;
    }
    c.step(
        r,
        format!(
            "restarted, {how}, in {} ms; back among the readers",
            t0.elapsed().as_millis()
        ),
    );
    Ok(())
}

/// Waits until `r` replicates (both threads) and has applied `source`'s position as
/// read now, at most [`CATCH_UP_S`].
async fn caught_up(c: &Cluster<'_>, r: &str, source: &str) -> Result<(), String> {
    let d = c.dialect;
    let deadline = Instant::now() + Duration::from_secs(CATCH_UP_S.into());
    let conn = tr(c, r)?;
    loop {
        let s = read_state(conn, d).await?;
        if s.up && s.threads_running() {
            break;
        }
        if Instant::now() > deadline {
            let st = s.status();
            return Err(format!(
                "{r} does not replicate again after its restart (IO thread: {}, SQL thread: {})",
                st.io_running, st.sql_running
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pos = sql(
        tr(c, source)?,
        d,
        "reading the position",
        d.current_position(),
    )
    .await?;
    let left = deadline.saturating_duration_since(Instant::now()).as_secs() as u32;
    let waited = sql(
        conn,
        d,
        "catching up",
        &d.wait_for_position(pos.trim(), left.max(1)),
    )
    .await?;
    if waited.trim() != "0" {
        return Err(format!(
            "{r} did not reach {source}'s position {} within {CATCH_UP_S} s",
            pos.trim()
        ));
    }
    Ok(())
}

async fn restart_in_place(
    c: &Cluster<'_>,
    p: &str,
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Result<(), String> {
    let res = primary_task(c.engine, p)?;
    c.step(
        p,
        "restarting in place: writes stop until it is back".into(),
    );
    let t0 = Instant::now();
    restart(p.to_string()).await?;
    // Every server starts read-only (mysqld.cnf): the primary takes writes again, decided
    // as the apply's primary task decides (re-read now: a server that replicates after its
    // restart is not made writable).
    let conn = tr(c, p)?;
    let facts = conn
        .run(&res.probe())
        .await
        .map_err(|e| format!("reading {p}: {e}"))?
        .stdout;
    match res.mode(&facts) {
        None => {}
        Some(crate::tasks::primary::Mode::MakeWritable) => {
            sql(conn, c.dialect, "making it writable", &res.writable_sql()).await?;
        }
        Some(other) => {
            return Err(format!(
                "{p} restarted but is not made writable: it replicates ({other:?}); `dbfleet plan` shows what is left"
            ));
        }
    }
    c.step(
        p,
        format!("writable again after {} ms", t0.elapsed().as_millis()),
    );
    Ok(())
}

/// The primary task of `host` in `engine`'s graph.
fn primary_task(engine: &Engine, host: &str) -> Result<PrimaryRes, String> {
    engine
        .graph
        .graph
        .node_weights()
        .find_map(|t| match &t.resource {
            Resource::Primary(p) if t.host == host && !t.handler => Some(p.clone()),
            _ => None,
        })
        .ok_or_else(|| format!("{host} has no primary task"))
}

async fn restart_by_switchover(
    engine: &Engine,
    c: &Cluster<'_>,
    p: &str,
    restart: &(dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Sync),
) -> Result<(), String> {
    // A switchover only for availability: with no replica ready to stand in (none may be
    // promoted, or none replicates caught up: a cluster being built or rebuilt), the
    // primary restarts in place, which is as safe (it comes back read-only, dbfleet
    // makes it writable) and only longer.
    let states = c.read_all().await;
    let ready = stand_in(c, p)
        .ok_or_else(|| "no replica may be promoted".to_string())
        .and_then(|s| {
            let st = states
                .iter()
                .find(|(h, _)| *h == s)
                .map(|(_, st)| st.clone())
                .unwrap_or_default();
            super::switchover::candidate_ready(&s, &st, true, c.max_lag_s).map(|()| s)
        });
    let s = match ready {
        Ok(s) => s,
        Err(why) => {
            c.step(p, format!("no replica ready to stand in ({why})"));
            return restart_in_place(c, p, restart).await;
        }
    };
    // The inventory as it is while `s` stands in, in memory only: the same edit as
    // `dbfleet switchover` makes, so the runbook sees `p` declared a replica of `s`.
    let path = engine.opts.inventory.display().to_string();
    let text = match &engine.opts.inventory_text {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(&engine.opts.inventory)
            .map_err(|e| format!("reading {path}: {e}"))?,
    };
    // The edit must start from the inventory this apply planned with, not one edited since.
    if crate::tasks::file::sha256_hex(text.as_bytes()) != engine.inv.digest {
        return Err(format!(
            "{path} changed since this apply read it: {p} is not switched over (run `dbfleet plan` again)"
        ));
    }
    let edited = crate::inventory::edit::promote(&path, &text, &s, p).map_err(|e| e.to_string())?;
    // Not offline: the runbook writes the replication password into the demoted primary.
    let mut opts = engine.opts.clone();
    opts.inventory_text = Some(edited);
    let swapped = Engine::load(opts).map_err(|e| e.to_string())?;
    let during = Cluster::over(&swapped, &s, c.ssh.clone(), c.events.clone());

    let there = super::switchover::run(&during, &s, p, &primary_task(&swapped, &s)?).await?;
    c.step(
        p,
        format!(
            "primary moved to {s} (writes blocked {} ms); restarting {p} as a replica",
            there.writes_blocked.as_millis()
        ),
    );
    let restarted = restart_replica(&during, p, &s, true, restart).await;
    drop(during);
    // Back, also when the restart failed but `p` replicates: the inventory names `p`.
    let back = super::switchover::run(c, p, &s, &primary_task(engine, p)?).await;
    restarted?;
    let back = back.map_err(|e| format!("{p} restarted, but the switchover back failed: {e}"))?;
    c.step(
        p,
        format!(
            "primary again (writes blocked {} ms)",
            back.writes_blocked.as_millis()
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::testing::{cluster, lab_engine, replica_state};
    use crate::transport::fake::Scripted;
    use std::sync::Mutex;

    /// A replica of db1 that replicates, runs an old option file, reaches any position.
    fn replica(name: &str, id: u32) -> Scripted {
        Scripted::new(name)
            .answer("-nt", &["stale"])
            .answer(
                "long_trx",
                &[&replica_state(id, "Yes", "Yes", "0-1-10", "0-1-10")],
            )
            .answer(&wait_marker(), &["0"])
    }

    /// The start of the dialect's wait statement, as the roll sends it.
    fn wait_marker() -> String {
        let wait = crate::sql::Dialect::MariaDb.wait_for_position("0-1-10", 1);
        wait.split('(').next().unwrap_or(&wait).to_string()
    }

    fn primary() -> Scripted {
        Scripted::new("db1")
            .answer("-nt", &["stale"])
            .answer(crate::sql::Dialect::MariaDb.current_position(), &["0-1-10"])
    }

    fn proxy() -> Scripted {
        Scripted::new("proxy1").answer("socat", &[""])
    }

    /// Runs the roll of `due` over `hosts`; `fail` names the host whose restart fails.
    /// Returns the results and the hosts restarted, in order.
    fn run(
        engine: &Engine,
        hosts: Vec<Scripted>,
        due: &[&str],
        fail: Option<&'static str>,
    ) -> (Vec<(String, Rolled)>, Vec<String>) {
        let c = cluster(engine, hosts);
        let restarted: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = restarted.clone();
        let restart = move |h: String| -> BoxFuture<'static, Result<(), String>> {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().expect("seen").push(h.clone());
                if Some(h.as_str()) == fail {
                    Err("exit 1: mariadbd did not start".into())
                } else {
                    Ok(())
                }
            })
        };
        let due: Vec<String> = due.iter().map(|h| h.to_string()).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let results = rt.block_on(roll_cluster(&c, "db1", &due, &[], &restart));
        let order = restarted.lock().expect("restarted").clone();
        (results, order)
    }

    #[test]
    fn a_failed_restart_stops_the_roll_and_leaves_the_rest_untouched() {
        let engine = lab_engine(None);
        let hosts = vec![replica("db2", 2), replica("db3", 3), primary(), proxy()];
        let (results, restarted) = run(&engine, hosts, &["db1", "db2", "db3"], Some("db3"));
        assert_eq!(restarted, vec!["db3".to_string()], "db2 and db1 untouched");
        assert_eq!(
            results[0],
            (
                "db3".to_string(),
                Rolled::Failed("exit 1: mariadbd did not start".into())
            )
        );
        for (h, r) in &results[1..] {
            assert!(
                matches!(r, Rolled::NotReached(why) if why.contains("the roll stopped at db3")),
                "{h}: {r:?}"
            );
        }
    }

    #[test]
    fn replicas_restart_one_at_a_time_and_a_server_already_on_its_file_is_left_alone() {
        let engine = lab_engine(None);
        let current = Scripted::new("db2").answer("-nt", &["current"]);
        let hosts = vec![current, replica("db3", 3), primary(), proxy()];
        let (results, restarted) = run(&engine, hosts, &["db2", "db3"], None);
        assert_eq!(restarted, vec!["db3".to_string()]);
        assert_eq!(
            results,
            vec![
                ("db2".to_string(), Rolled::Current),
                ("db3".to_string(), Rolled::Restarted)
            ]
        );
    }

    #[test]
    fn a_primary_restarted_in_place_that_replicates_is_not_made_writable() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/lab.yml"))
                .expect("lab.yml")
                .replace(
                    "    max_connections: 200",
                    "    max_connections: 200\n    restart_strategy: in_place",
                );
        let engine = lab_engine(Some(text));
        // After its restart db1 reports a source: the apply's primary task would call that
        // a switchover, and the roll does not make it writable.
        let f = crate::sql::Dialect::MariaDb.replica_fields();
        let db1 = Scripted::new("db1").answer("-nt", &["stale"]).answer(
            "semi",
            &[&format!(
                "*** 1. row ***\n up: dbfleet-up\n read_only: 1\n*** 1. row ***\n {}: 172.29.77.12\n",
                f.source_host
            )],
        );
        let (results, restarted) = run(&engine, vec![db1, proxy()], &["db1"], None);
        assert_eq!(restarted, vec!["db1".to_string()]);
        assert!(
            matches!(&results[0].1, Rolled::Failed(why) if why.contains("not made writable")),
            "{results:?}"
        );
    }

    #[test]
    fn replicas_roll_last_declared_first_and_the_primary_last() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        let due = |hs: &[&str]| hs.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            order(&c, "db1", &due(&["db1", "db2", "db3"])),
            (due(&["db3", "db2"]), Some("db1".into()))
        );
        assert_eq!(order(&c, "db1", &due(&["db2"])), (due(&["db2"]), None));
        assert_eq!(stand_in(&c, "db1").as_deref(), Some("db2"));
        assert_eq!(
            describe(
                &engine,
                &c,
                "db1",
                &due(&["db1", "db2", "db3"]),
                "rolling restart"
            ),
            "rolling restart of cluster lab: db3, then db2, then db1 by switchover to db2 and back (writes blocked twice, each for a switchover's window); one server down at a time, each back and caught up before the next"
        );
    }
}
