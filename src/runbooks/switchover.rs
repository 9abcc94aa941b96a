//! Planned switchover: the primary moves to a healthy, caught-up replica with no
//! acknowledged write lost and writes blocked for as short a time as the servers allow.
//!
//! The sequence is DESIGN.md's (verified on MariaDB 10.11; seed 000, "Manual Failover
//! Process", done without losing writes):
//! 1. checks: the old primary is up with no transaction open > 10 s; the candidate's
//!    threads run, it lags at most `max_replica_lag_seconds` and has no errant
//!    transaction; every other replica is healthy;
//! 2. freeze the old primary: read_only, application sessions ended, FLUSH TABLES WITH
//!    READ LOCK held in one session, then the GTID position read *after* the lock;
//! 3. the candidate waits for that position (MASTER_GTID_WAIT), stops replicating and
//!    becomes writable. Any failure up to here unfreezes the old primary: nothing changed;
//! 4. every proxy's writer moves to the candidate (HAProxy runtime API);
//! 5. the old primary is unlocked, stays read-only and replicates from the new one
//!    (MASTER_DEMOTE_TO_SLAVE=1);
//! 6. the other replicas reach the position, then replicate from the new primary.

use std::time::{Duration, Instant};

use super::Cluster;
use super::topology::{DbState, sql};
use crate::engine::{Engine, Probe};
use crate::error::Error;
use crate::plan::Plan;
use crate::sql::{Dialect, SourceSpec};
use crate::tasks::Resource;
use crate::tasks::primary::PrimaryRes;

/// Seconds the candidate may take to reach the frozen primary's position.
pub const CATCH_UP_S: u32 = 10;

/// The plan's notes for a switchover from `from`, in `d`'s words.
pub fn steps(from: &str, d: Dialect) -> Vec<String> {
    let (wait, demote) = match d {
        Dialect::MariaDb => ("MASTER_GTID_WAIT", "MASTER_DEMOTE_TO_SLAVE=1"),
        _ => ("WAIT_FOR_EXECUTED_GTID_SET", "GTID auto-position"),
    };
    let (stop, reset) = (
        d.stop_replica().trim_end_matches(';'),
        d.reset_replica_all().trim_end_matches(';'),
    );
    let read_only = if d == Dialect::MariaDb {
        "read_only"
    } else {
        "read_only and super_read_only"
    };
    vec![
        format!(
            "check: {from} up with no transaction open > 10 s; this host's threads run, lag within max_replica_lag_seconds, no errant transaction; the other replicas healthy"
        ),
        format!(
            "freeze {from}: {read_only} ON, end application sessions, FLUSH TABLES WITH READ LOCK, read its GTID position"
        ),
        format!(
            "wait here for that position ({wait}, {CATCH_UP_S} s), {stop}, {reset}, {read_only} OFF (any failure so far unfreezes {from})"
        ),
        "move every proxy's writer to this host (HAProxy runtime API)".into(),
        format!(
            "demote {from}: UNLOCK TABLES, replicate from this host ({demote}), {read_only} stays ON"
        ),
        "repoint the other replicas here once they reach the position".into(),
    ]
}

/// A declared primary that still replicates from a host of its cluster is a planned
/// switchover. The candidate must be ready (refused at plan time, changing nothing),
/// and the cluster's replication changes are steps of the switchover, not changes of
/// their own: they are folded into it and listed in its notes, after the runbook's
/// steps (`steps`).
///
/// Errors: [`Error::Refused`] naming the candidate and why it cannot be promoted, or
/// the dialect whose topology runbooks are not proven.
pub fn fold(engine: &Engine, probe: &Probe, plan: &mut Plan) -> Result<(), Error> {
    let hosts = &mut plan.hosts;
    use crate::tasks::primary::Mode;
    let mut switching: Vec<(String, String, String, Dialect)> = Vec::new(); // (cluster, new, old, dialect)
    for &n in &engine.selected {
        let t = &engine.graph.graph[n];
        let Resource::Primary(p) = &t.resource else {
            continue;
        };
        if t.handler {
            continue;
        }
        let facts = probe.facts.get(&n).map(String::as_str).unwrap_or("");
        if let Some(Mode::Switchover { from }) = p.mode(facts) {
            super::require_proven(p.dialect, "switchover")?;
            let h = engine
                .inv
                .host(&t.host)
                .ok_or_else(|| Error::UnknownHost(t.host.clone()))?;
            let state = super::topology::parse_state(facts, p.dialect);
            let max_lag = h.max_replica_lag_s();
            candidate_ready(&t.host, &state, h.candidate, max_lag).map_err(|why| {
                Error::Refused(format!(
                    "switchover to {} refused: {why}; nothing was changed",
                    t.host
                ))
            })?;
            switching.push((p.cluster.clone(), t.host.clone(), from, p.dialect));
        }
    }
    for (cluster, new, old, dialect) in &switching {
        let mut folded = Vec::new();
        for hp in hosts.iter_mut() {
            let Some(h) = engine.inv.host(&hp.host) else {
                continue;
            };
            if &h.cluster != cluster || &hp.host == new {
                continue;
            }
            hp.changes.retain(|c| {
                let is_repl = c.kind == crate::tasks::Kind::Replication;
                if is_repl {
                    folded.push(format!(
                        "{}: replicate from {new} (instead of: {})",
                        hp.host, c.summary
                    ));
                }
                !is_repl
            });
        }
        if let Some(c) = hosts
            .iter_mut()
            .filter(|hp| &hp.host == new)
            .flat_map(|hp| hp.changes.iter_mut())
            .find(|c| c.kind == crate::tasks::Kind::Primary)
        {
            c.notes.extend(steps(old, *dialect));
            c.notes.extend(
                folded
                    .into_iter()
                    .map(|f| format!("done by the switchover: {f}")),
            );
        }
    }
    plan.summarize();
    Ok(())
}

/// Step 2, in the old primary's held session (then the kill list, FTWRL, the position).
pub fn freeze_sql(d: Dialect) -> String {
    format!(
        "SET SESSION lock_wait_timeout = 5;\n{}",
        d.set_read_only(true)
    )
}

/// Step 3 (and the failover's promotion): stop replicating, forget the source, take writes.
pub fn promote_sql(d: Dialect, semi_sync: bool) -> String {
    format!(
        "{}\n{}\n{}",
        d.stop_replica(),
        d.reset_replica_all(),
        crate::tasks::primary::writable_sql(d, semi_sync)
    )
}

/// Step 5: the old primary, unlocked and read-only, replicates from the new one.
pub fn demote_sql(d: Dialect, source: &SourceSpec) -> String {
    format!("UNLOCK TABLES;\n{}", rejoin_sql(d, source))
}

/// The returning old primary of a rejoin (and step 5 after its UNLOCK TABLES).
pub fn rejoin_sql(d: Dialect, source: &SourceSpec) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        d.set_read_only(true),
        d.set_semi_sync_primary(false),
        d.stop_replica(),
        d.change_source_demote(source),
        d.start_replica()
    )
}

/// Step 6 (and the failover's repointing, with no position to wait for).
pub fn repoint_sql(d: Dialect, wait_for: Option<&str>, source: &SourceSpec) -> String {
    let wait = wait_for
        .map(|p| format!("{}\n", d.wait_for_position(p, 30)))
        .unwrap_or_default();
    format!(
        "{wait}{}\n{}\n{}",
        d.stop_replica(),
        d.change_source(source),
        d.start_replica()
    )
}

/// Every statement of a switchover, a failover and a rejoin, in order, for review and
/// snapshots (`tests/sql_dialects.rs`); the password as given in `source_new`.
pub fn sequence(d: Dialect, source_new: &SourceSpec, semi_sync: bool) -> String {
    format!(
        "-- switchover, old primary (one session, held)\n{}\n{}\n{}\n{}\n\
         -- switchover, candidate\n{}\n{}\n\
         -- switchover, old primary (same session)\n{}\n\
         -- switchover, other replicas\n{}\n\
         -- failover, candidate (after the relay log drained)\n{}\n\
         -- failover, other replicas\n{}\n\
         -- rejoin, returning old primary\n{}\n",
        freeze_sql(d),
        d.app_sessions_kill_list(),
        d.freeze_writes(),
        d.current_position(),
        d.wait_for_position("0-1-42", CATCH_UP_S),
        promote_sql(d, semi_sync),
        demote_sql(d, source_new),
        repoint_sql(d, Some("0-1-42"), source_new),
        promote_sql(d, semi_sync),
        repoint_sql(d, None, source_new),
        rejoin_sql(d, source_new),
    )
}

/// What the switchover measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// From read_only ON on the old primary to the proxies' writer on the new one.
    pub writes_blocked: Duration,
    /// The old primary's GTID position at the freeze.
    pub position: String,
}

/// Refuses a switchover from `old` to `new` that cannot be done safely, naming why.
pub fn check(
    c: &Cluster,
    new: &str,
    old: &str,
    states: &[(String, DbState)],
) -> Result<(), String> {
    let get = |n: &str| states.iter().find(|(h, _)| h == n).map(|(_, s)| s);
    let (Some(cand), Some(prim)) = (get(new), get(old)) else {
        return Err("the cluster's state could not be read".into());
    };
    if !prim.up {
        return Err(format!(
            "{old}, the primary, is not running: a planned switchover needs it (use `dbfleet failover`)"
        ));
    }
    if prim.replicating() {
        return Err(format!(
            "{old} replicates from {}: it is not the primary",
            prim.status().source_host
        ));
    }
    if prim.long_trx > 0 {
        return Err(format!(
            "{old} has {} transaction(s) open for more than 10 s; the freeze would wait for them (retry when they end)",
            prim.long_trx
        ));
    }
    candidate_ready(
        new,
        cand,
        c.candidates.iter().any(|h| h == new),
        c.max_lag_s,
    )?;
    let errant = cand.errant_against(&[prim]);
    if !errant.is_empty() {
        return Err(format!(
            "{new} has errant transactions {old} never had: {} (rebuild {new}, or remove them)",
            errant.name()
        ));
    }
    for (h, s) in states {
        if h == new || h == old || !c.replication.contains_key(h) {
            continue;
        }
        if !s.up {
            return Err(format!(
                "replica {h} is not running; fix it before a switchover"
            ));
        }
        if !s.threads_running() {
            return Err(format!(
                "replica {h} is not replicating (IO thread: {}, SQL thread: {})",
                s.status().io_running,
                s.status().sql_running
            ));
        }
    }
    Ok(())
}

/// The candidate's own health: running threads, lag within the limit, allowed to be
/// promoted.
pub fn candidate_ready(
    new: &str,
    cand: &DbState,
    eligible: bool,
    max_lag_s: u64,
) -> Result<(), String> {
    if !eligible {
        return Err(format!(
            "{new} is marked `candidate: false` in the inventory"
        ));
    }
    if !cand.up {
        return Err(format!("{new} is not running"));
    }
    let st = cand.status();
    if !cand.threads_running() {
        return Err(format!(
            "{new} is not replicating (IO thread: {}, SQL thread: {}){}",
            st.io_running,
            st.sql_running,
            match st.last_sql_error.as_str() {
                "" => String::new(),
                e => format!(": {e}"),
            }
        ));
    }
    match st.seconds_behind {
        Some(lag) if lag <= max_lag_s => Ok(()),
        Some(lag) => Err(format!(
            "{new} lags {lag} s behind its primary (max_replica_lag_seconds is {max_lag_s})"
        )),
        None => Err(format!(
            "{new} reports no lag (its seconds behind the source is NULL)"
        )),
    }
}

/// Runs the switchover (module doc). `p` is the new primary's task.
///
/// Errors: a message naming the failing step; before the promotion, after undoing the
/// freeze ("nothing changed"); after it, what is left to repair.
pub async fn run(c: &Cluster<'_>, new: &str, old: &str, p: &PrimaryRes) -> Result<Outcome, String> {
    let d = c.dialect;
    let states = c.read_all().await;
    check(c, new, old, &states)?;
    let (old_c, new_c) = (c.conn(old)?, c.conn(new)?);
    let repl_old = c.replication.get(old).ok_or_else(|| {
        format!("{old} has no replication task: is it declared a replica of {new}?")
    })?;

    // 2. Freeze. The lock lives as long as this session.
    let t0 = Instant::now();
    let mut session = old_c
        .sql_session(d.client())
        .await
        .map_err(|e| format!("opening a session on {old}: {e}"))?;
    let frozen = async {
        session.query(&freeze_sql(d)).await?;
        let kills = session.query(d.app_sessions_kill_list()).await?;
        super::topology::kill_sessions(old_c, d, &kills).await;
        session.query(d.freeze_writes()).await?;
        session.query(d.current_position()).await
    }
    .await;
    let position = match frozen {
        Ok(rows) => rows.first().cloned().unwrap_or_default(),
        Err(e) => {
            let undo = unfreeze(c, old, None).await;
            return Err(format!("freezing {old}: {e}; {undo}"));
        }
    };
    c.step(
        old,
        format!("frozen at {position} (read_only, application sessions ended, tables locked)"),
    );

    // 3. Catch up and promote.
    let promoted = async {
        let waited = sql(
            new_c,
            d,
            "waiting for the position",
            &d.wait_for_position(&position, CATCH_UP_S),
        )
        .await?;
        if waited.trim() != "0" {
            return Err(format!(
                "{new} did not reach {position} within {CATCH_UP_S} s"
            ));
        }
        // Out of every reader backend before it is writable: never a writable reader.
        for proxy in &c.proxies {
            super::topology::reader_maint(c.conn(proxy)?, new, true).await?;
        }
        sql(new_c, d, "promoting", &promote_sql(d, p.semi_sync)).await
    }
    .await;
    if let Err(e) = promoted {
        // Back among the readers: it stays a replica.
        for proxy in &c.proxies {
            if let Ok(conn) = c.conn(proxy) {
                let _ = super::topology::reader_maint(conn, new, false).await;
            }
        }
        // The candidate may have stopped replicating: start it again (harmless if running).
        let _ = sql(new_c, d, "restarting replication", d.start_replica()).await;
        let undo = unfreeze(c, old, Some(session)).await;
        return Err(format!("{e}; {undo}"));
    }
    c.step(new, format!("promoted at {position}: writable primary"));

    // 4. Proxies.
    let mut problems = Vec::new();
    let new_address = c.address(new);
    for proxy in &c.proxies {
        match super::topology::move_writer(c.conn(proxy)?, new, &new_address, Some(old)).await {
            Ok(()) => c.step(proxy, format!("writer → {new}")),
            Err(e) => problems.push(e),
        }
    }
    let writes_blocked = t0.elapsed();
    c.step(
        new,
        format!("writes were blocked for {} ms", writes_blocked.as_millis()),
    );

    // 5. Demote the old primary in the session that holds the lock.
    let demote = demote_sql(d, &repl_old.source);
    match session.query(&demote).await {
        Ok(_) => {
            c.step(old, format!("demoted: replicates from {new}, read-only"));
            // A replica now: among the readers (their checks still gate it).
            for proxy in &c.proxies {
                if let Err(e) = super::topology::reader_maint(c.conn(proxy)?, old, false).await {
                    problems.push(e);
                }
            }
        }
        Err(e) => problems.push(format!("demoting {old}: {e}")),
    }
    session.close().await;

    // 6. The other replicas.
    for (h, r) in &c.replication {
        if h == old || h == new {
            continue;
        }
        let stmts = repoint_sql(d, Some(&position), &r.source);
        match c.conn(h) {
            Ok(conn) => match sql(conn, d, "repointing", &stmts).await {
                Ok(_) => c.step(h, format!("replicates from {new}")),
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{new} is the primary, but: {}; `dbfleet apply` repairs what is left",
            problems.join("; ")
        ));
    }
    Ok(Outcome {
        writes_blocked,
        position,
    })
}

/// Undoes a freeze: unlocks (ending the session) and makes `old` writable again.
async fn unfreeze(
    c: &Cluster<'_>,
    old: &str,
    session: Option<crate::transport::ssh::SqlSession<'_>>,
) -> String {
    if let Some(s) = session {
        s.close().await;
    }
    let d = c.dialect;
    match c.conn(old) {
        Ok(conn) => match sql(conn, d, "unfreezing", &d.set_read_only(false)).await {
            Ok(_) => {
                c.step(old, "unfrozen: takes writes again".into());
                format!("the switchover was undone: {old} takes writes again, nothing changed")
            }
            Err(e) => format!("UNDO FAILED, {old} is still read-only: {e}"),
        },
        Err(e) => format!("UNDO FAILED, {old} is still read-only: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::testing::{cluster, lab_engine, replica_state};

    fn state(out: &str) -> DbState {
        super::super::topology::parse_state(out, Dialect::MariaDb)
    }

    fn primary() -> DbState {
        state(
            "*** 1. row ***\n up: dbfleet-up\n read_only: 0\n server_id: 1\n long_trx: 0\n\
             *** 1. row ***\n binlog_pos: 0-1-10\n slave_pos: \n binlog_state: 0-1-10\n",
        )
    }

    #[test]
    fn the_candidate_must_run_both_threads_within_the_lag_limit() {
        let ok = state(&replica_state(2, "Yes", "Yes", "0-1-10", "0-1-10"));
        assert_eq!(candidate_ready("db2", &ok, true, 30), Ok(()));
        assert!(
            candidate_ready("db2", &ok, false, 30)
                .expect_err("not a candidate")
                .contains("candidate: false")
        );
        let stopped = state(&replica_state(2, "Yes", "No", "0-1-10", "0-1-9"));
        assert!(
            candidate_ready("db2", &stopped, true, 30)
                .expect_err("stopped")
                .contains("IO thread: Yes, SQL thread: No")
        );
        let mut lagging = ok.clone();
        if let Some(r) = lagging.replica.as_mut() {
            r.seconds_behind = Some(31);
        }
        assert!(
            candidate_ready("db2", &lagging, true, 30)
                .expect_err("lag")
                .contains("lags 31 s")
        );
        let mut unknown = ok;
        if let Some(r) = unknown.replica.as_mut() {
            r.seconds_behind = None;
        }
        assert!(
            candidate_ready("db2", &unknown, true, 30)
                .expect_err("NULL")
                .contains("reports no lag")
        );
    }

    #[test]
    fn a_switchover_checks_the_primary_the_candidate_and_the_other_replicas() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        let db2 = state(&replica_state(2, "Yes", "Yes", "0-1-10", "0-1-10"));
        let db3 = state(&replica_state(3, "Yes", "Yes", "0-1-10", "0-1-10"));
        let states = |p: DbState, d3: DbState| {
            vec![
                ("db1".to_string(), p),
                ("db2".to_string(), db2.clone()),
                ("db3".to_string(), d3),
            ]
        };
        assert_eq!(
            check(&c, "db2", "db1", &states(primary(), db3.clone())),
            Ok(())
        );
        // A primary that is down: that is a failover's job.
        let down = DbState::default();
        assert!(
            check(&c, "db2", "db1", &states(down, db3.clone()))
                .expect_err("down")
                .contains("use `dbfleet failover`")
        );
        // A long transaction would hold the freeze.
        let mut busy = primary();
        busy.long_trx = 2;
        assert!(
            check(&c, "db2", "db1", &states(busy, db3.clone()))
                .expect_err("long trx")
                .contains("2 transaction(s) open")
        );
        // Errant transactions on the candidate.
        let mut errant = db2.clone();
        errant.binlog_state = crate::sql::gtid::GtidSet::parse("0-1-10,0-2-3");
        let with_errant = vec![
            ("db1".to_string(), primary()),
            ("db2".to_string(), errant),
            ("db3".to_string(), db3.clone()),
        ];
        assert!(
            check(&c, "db2", "db1", &with_errant)
                .expect_err("errant")
                .contains("errant transactions")
        );
        // Another replica not replicating.
        let broken = state(&replica_state(3, "No", "No", "0-1-10", "0-1-10"));
        assert!(
            check(&c, "db2", "db1", &states(primary(), broken))
                .expect_err("db3")
                .contains("replica db3 is not replicating")
        );
    }
}
