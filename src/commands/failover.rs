//! `dbfleet failover` and `dbfleet rejoin`: the unplanned failover of a cluster whose
//! primary died, and the return of an old primary as a replica. The steps (confirming the
//! primary dead, fencing, draining, choosing and promoting) are `crate::runbooks::failover`'s;
//! this module drives them for the command line: loading, asking, recording, reporting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::inventory::Role;
use crate::report::{self, Reporter, Style};
use crate::runbooks::Cluster;
use crate::runbooks::failover::*;
use crate::runbooks::topology::sql;
use crate::sql::gtid::name_ranges;

/// `dbfleet failover`: confirms the primary dead, fences it, promotes the most advanced
/// eligible replica, repoints the others and the proxies, records the topology in the
/// inventory and the anti-flap lock, then applies the proxies' files.
///
/// Errors: [`Error::Refused`] when the failover cannot be proven safe (the primary alive
/// from anywhere, inside the anti-flap window without `force`, no eligible replica, a
/// replica that cannot drain); [`Error::Cancelled`]; a failed step's error.
pub fn run(opts: &Options, a: &Request, style: Style) -> Result<Exit, Error> {
    let t0 = Instant::now();
    // A dead host costs the connect timeout: keep it short here (the proxies' apply
    // afterwards uses the command line's).
    let short = Options {
        connect_timeout: opts.connect_timeout.min(Duration::from_secs(2)),
        ..opts.clone()
    };
    let engine = Engine::load(short)?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "failover")?;
    let (cluster, old) = cluster_of(&engine, a.cluster.as_deref())?;
    let window = engine
        .inv
        .host(&old)
        .and_then(|h| h.vars.get("failover_anti_flap_seconds"))
        .and_then(|v| v.as_u64())
        .unwrap_or(3600);
    let records = read_records(&engine);
    if let Some(r) = records.iter().find(|r| r.cluster == cluster)
        && now_s().saturating_sub(r.at) < window
        && !a.force
    {
        return Err(Error::Refused(format!(
            "cluster {cluster} failed over {} s ago ({} → {}: {}); a second failover inside failover_anti_flap_seconds ({window} s) needs --force",
            now_s().saturating_sub(r.at),
            r.from,
            r.to,
            r.reason
        )));
    }
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        let c = Cluster::new(&engine, &old, HashMap::new(), events.clone(), Some(&old)).await;
        let result = failover(&c, &engine, &old, a, t0, &reporter).await;
        c.close().await;
        let (new, before, edited, took) = match result? {
            Some(x) => x,
            None => return Ok(Exit::Ok),
        };
        // Record: inventory, then the anti-flap lock.
        let path = &opts.inventory;
        crate::inventory::edit::write(path, &edited)?;
        let mut records: Vec<FailoverRecord> =
            records.into_iter().filter(|r| r.cluster != cluster).collect();
        records.push(FailoverRecord {
            cluster: cluster.clone(),
            at: now_s(),
            from: old.clone(),
            to: new.clone(),
            reason: format!("{old} dead from here and from its replicas"),
        });
        crate::secrets::write_private(
            &lock_path(&engine),
            &serde_json::to_vec_pretty(&records).unwrap_or_default(),
        )
        .map_err(|e| Error::io("writing the failover record", e))?;
        report::print(&format!(
            "Failover complete: {new} is the primary of {cluster} ({} ms from start to the proxies' writer on {new}).\nUpdated {}:\n{}",
            took.as_millis(),
            path.display(),
            crate::inventory::edit::diff(path, &before, &edited)
        ));
        // The proxies' files follow the new topology (the live writer already does).
        let mut popts = opts.clone();
        popts.limit = Some(
            engine
                .inv
                .hosts
                .iter()
                .filter(|h| h.has(Role::Proxy))
                .map(|h| h.name.clone())
                .collect(),
        );
        if popts.limit.as_ref().is_some_and(|l| !l.is_empty()) {
            let pe = Engine::load(popts)?;
            // A plan that fails closes its connections (they were left open before).
            let (probe, plan) = pe.probe_and_plan(&pe.hosts(), &events).await?;
            let r = crate::apply::apply(&pe, &plan, &probe, &events).await;
            reporter.finish();
            Engine::close(probe).await;
            r?;
        }
        report::print(&format!(
            "{old} is fenced. When it is back, `dbfleet rejoin {old}` makes it a replica of {new} (or names what it has that {new} never saw).\n"
        ));
        Ok(Exit::Ok)
    })
}

/// `dbfleet rejoin HOST`.
pub fn rejoin(opts: &Options, host: &str, auto_approve: bool, style: Style) -> Result<Exit, Error> {
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "rejoin")?;
    let h = engine
        .inv
        .host(host)
        .ok_or_else(|| Error::UnknownHost(host.into()))?;
    let source = match (&h.source, h.has(Role::Replica)) {
        (Some(s), true) => s.clone(),
        _ => {
            return Err(Error::Refused(format!(
                "{host} is not a replica in {}: after a failover the inventory names the new primary, and {host} a replica",
                opts.inventory.display()
            )));
        }
    };
    let repl = engine
        .graph
        .graph
        .node_indices()
        .find_map(|n| {
            let t = &engine.graph.graph[n];
            match &t.resource {
                crate::tasks::Resource::Replication(x) if t.host == host && !t.handler => {
                    Some(x.clone())
                }
                _ => None,
            }
        })
        .ok_or_else(|| Error::Refused(format!("{host} has no replication task")))?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let d = engine.runbook_dialect();
    crate::engine::runtime()?.block_on(async {
        let me = engine.connect(host, None).await?;
        let src = engine.connect(&source, None).await?;
        let step = |h: &str, t: String| {
            events.emit(crate::events::Event::Step { host: h.into(), text: t })
        };
        let mut mine = crate::runbooks::topology::read_state(&me, d).await.map_err(Error::Refused)?;
        if !mine.up {
            // It starts read-only (mysqld.cnf): it cannot take writes meanwhile.
            let o = me
                .run(&format!("service {} start >/dev/null 2>&1", d.service()))
                .await
                .map_err(|e| Error::Refused(e.to_string()))?;
            if o.code != 0 {
                return Err(Error::Refused(format!("{host}'s server does not start")));
            }
            step(host, "server started (read-only)".into());
            mine = crate::runbooks::topology::read_state(&me, d).await.map_err(Error::Refused)?;
        }
        if mine.up && !mine.read_only {
            // A returned old primary is fenced as soon as dbfleet reaches it, whatever the
            // rejoin decides below: a refused rejoin must not leave a second writer. Its
            // application sessions go first, then its semi-sync primary side: commits that
            // wait for an ack nobody will send (lossless semi-sync without fallback) would
            // otherwise hold `SET GLOBAL read_only` forever. Their clients are gone, so
            // nothing they wrote is acknowledged.
            let kills: Vec<String> = sql(&me, d, "listing application sessions", d.app_sessions_kill_list())
                .await
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            crate::runbooks::topology::kill_sessions(&me, d, &kills).await;
            let fence = format!("{}\n{}", d.set_semi_sync_primary(false), d.set_read_only(true));
            sql(&me, d, "making it read-only", &fence)
                .await
                .map_err(|e| Error::Refused(engine.redactor.redact(&e)))?;
            step(host, "was writable: read_only ON (fenced)".into());
            mine.read_only = true;
        }
        let theirs = crate::runbooks::topology::read_state(&src, d).await.map_err(Error::Refused)?;
        if !theirs.up || theirs.read_only || theirs.replicating() {
            return Err(Error::Refused(format!("{source} is not a writable primary: rejoin needs the current primary")));
        }
        if mine.threads_running() && mine.status().source_host == repl.source.host {
            reporter.finish();
            report::print(&format!("{host} already replicates from {source}: nothing to do.\n"));
            return Ok(Exit::Ok);
        }
        let theirs_all: Vec<_> = theirs.binlog_state.iter().chain(theirs.slave_pos.iter()).copied().collect();
        let extra = crate::sql::gtid::missing_from(&mine.binlog_state, &theirs_all);
        if !extra.is_empty() {
            return Err(Error::Refused(format!(
                "{host} has transactions {source} never saw: {}; rejoining would keep them on {host} only (or stop replication). Rebuild {host} from {source} instead (reseed it: move its data folder away and `dbfleet apply`)",
                name_ranges(&extra)
            )));
        }
        reporter.finish();
        report::print(&format!(
            "Rejoin {host} as a replica of {source}: its history is contained in {source}'s ({}).\n  {host}: read_only ON, semi-sync primary side OFF, {} {source} (GTID, verified TLS, MASTER_DEMOTE_TO_SLAVE=1), {}\n",
            if mine.binlog_state.is_empty() { "empty".to_string() } else { mine.binlog_state.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",") },
            d.change_source_words(),
            d.start_replica_words()
        ));
        if !auto_approve && !crate::report::confirm("Rejoin now?")? {
            return Err(Error::Cancelled);
        }
        let stmts = crate::runbooks::switchover::rejoin_sql(d, &repl.source);
        sql(&me, d, "rejoining", &stmts).await.map_err(|e| Error::Refused(engine.redactor.redact(&e)))?;
        let pos = sql(&src, d, "reading the position", d.current_position()).await.map_err(Error::Refused)?;
        let waited = sql(&me, d, "catching up", &d.wait_for_position(pos.trim(), 120)).await.map_err(Error::Refused)?;
        if waited.trim() != "0" {
            return Err(Error::Refused(format!("{host} replicates from {source} but did not catch up with {} within 120 s", pos.trim())));
        }
        step(host, format!("replicates from {source}, caught up at {}", pos.trim()));
        // Back among every proxy's readers (it was fenced out of them by the failover).
        let mut problems = Vec::new();
        for p in engine.inv.hosts.iter().filter(|h| h.has(Role::Proxy)) {
            let put_back = async {
                let conn = engine.connect(&p.name, None).await.map_err(|e| e.to_string())?;
                let r = crate::runbooks::topology::reader_maint(&conn, host, false).await;
                conn.close().await;
                r
            };
            match put_back.await {
                Ok(()) => step(&p.name, format!("reader: {host} back")),
                Err(e) => problems.push(e),
            }
        }
        me.close().await;
        src.close().await;
        if !problems.is_empty() {
            return Err(Error::Refused(format!(
                "{host} rejoined as a replica of {source}, but is not back among the readers: {}",
                problems.join("; ")
            )));
        }
        report::print(&format!("{host} rejoined as a replica of {source}.\n"));
        Ok(Exit::Ok)
    })
}
