//! The executor: makes a [`Plan`] so, host by host, in graph order.
//!
//! Each host's changes run one at a time over its connection, in the graph's order; hosts
//! run in parallel, at most `forks` scripts at once (the permit is held while a script runs,
//! not while waiting for another host, so a cross-host `needs` never deadlocks). A task
//! waits for its selected dependencies on other hosts; after a failure, the rest of that
//! host's tasks and anything depending on them are skipped. Handlers run last on each host,
//! once, when a task that notifies them changed, even if a later task of the host failed
//! (Ansible skips them then, a long-standing complaint). A `rolling` handler (a database
//! server's restart) is held back instead and run after every host is done, one server
//! of a cluster at a time in the order of `crate::runbooks::rolling`.
//!
//! Saved plans: [`check_fresh`] re-reads every target and refuses the whole plan, changing
//! nothing, if any target moved since the plan was made; each file write also re-checks its
//! target's digest on the host right before the rename (exit 3 = stale).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use petgraph::graph::NodeIndex;
use tokio::sync::{Semaphore, watch};

use crate::engine::{Engine, Probe};
use crate::error::Error;
use crate::events::{Event, EventSink, Outcome};
use crate::plan::Plan;

/// What an apply did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Checks a saved plan against a fresh one: same inventory, same desired states, and every
/// target still in the state the saved plan saw.
///
/// Errors: [`Error::Stale`] listing every difference; [`Error::PlanFile`] when the plan
/// was made from another inventory file content.
pub fn check_fresh(saved: &Plan, fresh: &Plan, engine: &Engine) -> Result<(), Error> {
    if saved.inventory_digest != engine.inv.digest {
        return Err(Error::Stale {
            details: vec![format!(
                "the inventory {} changed since the plan was made",
                engine.opts.inventory.display()
            )],
        });
    }
    let mut details = Vec::new();
    for hp in &saved.hosts {
        let fresh_host = fresh.hosts.iter().find(|h| h.host == hp.host);
        for c in &hp.changes {
            let now = fresh_host.and_then(|h| h.changes.iter().find(|f| f.task == c.task));
            match now {
                None if c.handler => details.push(format!(
                    "{}: handler `{}` is no longer notified",
                    hp.host, c.task
                )),
                None => details.push(format!(
                    "{}: `{}` ({}) needs no change any more: its target changed since the plan",
                    hp.host, c.task, c.target
                )),
                Some(f) if f.after_digest != c.after_digest => details.push(format!(
                    "{}: `{}` would now write something else (templates or variables changed)",
                    hp.host, c.task
                )),
                Some(f) if f.before_digest != c.before_digest => {
                    details.push(format!("{}: {} changed since the plan", hp.host, c.target))
                }
                Some(_) => {}
            }
        }
    }
    if details.is_empty() {
        Ok(())
    } else {
        Err(Error::Stale { details })
    }
}

/// Runs the plan's changes over the probe's connections.
///
/// Errors: [`Error::ApplyFailed`] when any task failed (after the others ran as far as
/// they could); the failing tasks were reported as events.
pub async fn apply(
    engine: &Engine,
    plan: &Plan,
    probe: &Probe,
    events: &Arc<dyn EventSink>,
) -> Result<Report, Error> {
    events.emit(Event::ApplyStarted {
        changes: plan.change_count(),
    });
    // Nodes of this apply, and a completion signal for each: None pending, Some(ok).
    let mut nodes: Vec<NodeIndex> = Vec::new();
    for hp in &plan.hosts {
        for c in &hp.changes {
            match engine.graph.node(&hp.host, &c.task) {
                Some(n) => nodes.push(n),
                None => {
                    return Err(Error::PlanFile {
                        path: plan.inventory.clone(),
                        reason: format!("task `{}` of {} no longer exists", c.task, hp.host),
                    });
                }
            }
        }
    }
    let in_apply: BTreeSet<NodeIndex> = nodes.iter().copied().collect();
    // Completion of each node of this apply: None pending, Some(ok) done. Host futures
    // wait on other hosts' nodes through these (`send_replace` stores the value even while
    // nobody is subscribed yet).
    let done: HashMap<NodeIndex, watch::Sender<Option<bool>>> =
        nodes.iter().map(|&n| (n, watch::channel(None).0)).collect();
    let sem = Arc::new(Semaphore::new(engine.opts.forks.max(1)));
    // Rolling handlers that are due: (host, node), run after every host's other changes.
    let deferred: std::sync::Mutex<Vec<(String, NodeIndex)>> = Default::default();

    let mut futures = Vec::new();
    for hp in plan.hosts.iter().filter(|h| !h.changes.is_empty()) {
        let conn = probe.conns.get(&hp.host).cloned();
        let mut host_nodes: Vec<(NodeIndex, &crate::plan::Change)> = hp
            .changes
            .iter()
            .filter_map(|c| engine.graph.node(&hp.host, &c.task).map(|n| (n, c)))
            .collect();
        // A replica's seed in progress (a detached run left by a command that was killed or
        // cut off, `crate::runbooks::detached`) is finished first: the host's other changes
        // were planned with its server stopped on purpose and need it running (live
        // settings, handlers that run was interrupted before). Everything the seed needs
        // on this host was done by the command that started it.
        if let Some(i) = host_nodes.iter().position(|(n, _)| {
            let t = &engine.graph.graph[*n];
            match &t.resource {
                crate::tasks::Resource::Replication(r) if !t.handler => probe
                    .facts
                    .get(n)
                    .is_some_and(|f| r.mode(f) == Some(crate::tasks::replication::Mode::Resume)),
                _ => false,
            }
        }) {
            let resume = host_nodes.remove(i);
            host_nodes.insert(0, resume);
        }
        let (sem, events, done) = (sem.clone(), events.clone(), &done);
        let (in_apply, deferred) = (&in_apply, &deferred);
        futures.push(async move {
            let mut report = Report::default();
            let mut failed_here = false;
            let mut changed: BTreeSet<String> = BTreeSet::new();
            let send = |n: NodeIndex, ok: bool| {
                if let Some(s) = done.get(&n) {
                    s.send_replace(Some(ok));
                }
            };
            for (n, change) in &host_nodes {
                let t = &engine.graph.graph[*n];
                let t0 = Instant::now();
                // A handler runs when a notifier changed now, or when it is pending from an
                // earlier apply that was interrupted before running it.
                let skip = if t.handler {
                    let due =
                        change.pending || change.notified_by.iter().any(|b| changed.contains(b));
                    (!due).then(|| "no task that notifies it changed".to_string())
                } else if failed_here {
                    Some("an earlier task on this host failed".to_string())
                } else {
                    let mut reason = None;
                    for dep in engine.graph.selected_deps(*n, in_apply) {
                        if engine.graph.graph[dep].host == hp.host {
                            continue;
                        }
                        let Some(tx) = done.get(&dep) else {
                            continue;
                        };
                        let mut rx = tx.subscribe();
                        let ok = loop {
                            if let Some(ok) = *rx.borrow() {
                                break ok;
                            }
                            if rx.changed().await.is_err() {
                                break false;
                            }
                        };
                        if !ok {
                            let d = &engine.graph.graph[dep];
                            reason = Some(format!("{}/{} failed", d.host, d.name));
                            break;
                        }
                    }
                    reason
                };
                // Rolling: a handler, or an upgrade (a fresh install runs here: nothing
                // runs yet to roll). The handlers an upgrade notifies are held back with it.
                if skip.is_none() && crate::runbooks::rolling::held_back(engine, &hp.host, change) {
                    if let Ok(mut d) = deferred.lock() {
                        d.push((hp.host.clone(), *n));
                    }
                    if !t.handler {
                        changed.insert(t.name.clone());
                    }
                    continue;
                }
                if let Some(reason) = skip {
                    report.skipped += 1;
                    events.emit(Event::TaskFinished {
                        host: hp.host.clone(),
                        task: t.name.clone(),
                        outcome: Outcome::Skipped(reason),
                        elapsed: t0.elapsed(),
                    });
                    send(*n, false);
                    continue;
                }
                events.emit(Event::TaskStarted {
                    host: hp.host.clone(),
                    task: t.name.clone(),
                    summary: change.summary.clone(),
                });
                // A file absent at plan time may be created by an earlier task of this run
                // (a package ships its default haproxy.cfg): replacing it is what the plan
                // showed. A saved plan's `check_fresh` has already caught one that appeared
                // before the apply started.
                let guard = probe
                    .facts
                    .get(n)
                    .and_then(|f| t.resource.guard_value(f))
                    .filter(|g| g != "absent");
                let body = if t.handler {
                    format!(
                        "{}{}",
                        t.resource.apply_script(None, ""),
                        crate::tasks::clear_pending(&t.name)
                    )
                } else {
                    t.resource
                        .apply_script(guard.as_deref(), &crate::tasks::mark_pending(&t.notify))
                };
                // A replication group writes on its primary only (`crate::tasks::group`).
                let body = match &t.resource {
                    crate::tasks::Resource::User(_)
                    | crate::tasks::Resource::Database(_)
                    | crate::tasks::Resource::Sql(_)
                        if t.replicated
                            && engine.inv.host(&hp.host).is_some_and(|h| h.in_group()) =>
                    {
                        format!(
                            "{}{body}",
                            crate::tasks::group::secondary_guard(engine.runbook_dialect().client())
                        )
                    }
                    _ => body,
                };
                let script = crate::tasks::locked(true, &body);
                let result = match (&conn, &t.resource) {
                    (None, _) => Err(format!("no connection to {}", hp.host)),
                    (Some(c), crate::tasks::Resource::Replication(r)) => {
                        let _permit = sem.acquire().await;
                        replication(engine, probe, c, r, events.as_ref()).await
                    }
                    (Some(c), crate::tasks::Resource::Primary(p)) if !t.handler => {
                        let _permit = sem.acquire().await;
                        primary(engine, probe, c, &hp.host, p, &events).await
                    }
                    (Some(c), _) => {
                        let _permit = sem.acquire().await;
                        match c.run(&script).await {
                            // A Galera or group member's start says how it went:
                            // bootstrapped, or joined by IST or SST, by incremental
                            // recovery or CLONE (`crate::tasks::galera`, `group`).
                            Ok(o) if o.code == 0 => {
                                if (matches!(
                                    &t.resource,
                                    crate::tasks::Resource::Galera(_)
                                        | crate::tasks::Resource::Group(_)
                                ) || o.stdout.trim() == crate::tasks::group::SECONDARY_NOTE)
                                    && let Some(line) = o.stdout.lines().last()
                                {
                                    events.emit(Event::Step {
                                        host: hp.host.clone(),
                                        text: engine.redactor.redact(line),
                                    });
                                }
                                Ok(())
                            }
                            Ok(o) if o.code == 3 => Err(format!("stale: {}", o.stderr.trim())),
                            Ok(o) => Err(format!(
                                "exit {}: {}",
                                o.code,
                                last_lines(&o.stderr, &o.stdout)
                            )),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                match result {
                    Ok(()) => {
                        report.changed += 1;
                        changed.insert(t.name.clone());
                        events.emit(Event::TaskFinished {
                            host: hp.host.clone(),
                            task: t.name.clone(),
                            outcome: Outcome::Changed,
                            elapsed: t0.elapsed(),
                        });
                        send(*n, true);
                    }
                    Err(e) => {
                        report.failed += 1;
                        if !t.handler {
                            failed_here = true;
                        }
                        let e = engine.redactor.redact(&e);
                        events.emit(Event::TaskFinished {
                            host: hp.host.clone(),
                            task: t.name.clone(),
                            outcome: Outcome::Failed(e),
                            elapsed: t0.elapsed(),
                        });
                        send(*n, false);
                    }
                }
            }
            report
        });
    }
    let reports = futures::future::join_all(futures).await;
    let mut total = Report::default();
    for r in reports {
        total.changed += r.changed;
        total.failed += r.failed;
        total.skipped += r.skipped;
    }
    let deferred = deferred.into_inner().unwrap_or_default();
    if !deferred.is_empty() {
        let r = roll(engine, plan, probe, events, &deferred).await;
        total.changed += r.changed;
        total.failed += r.failed;
        total.skipped += r.skipped;
    }
    if total.failed > 0 {
        return Err(Error::ApplyFailed {
            failed: total.failed,
        });
    }
    Ok(total)
}

/// Runs the held-back rolling handlers `due` ((host, node)), cluster by cluster, in the
/// roll's order (`crate::runbooks::rolling::roll`), reporting each as a task. A host the
/// roll never reached (it stopped at an earlier failure, which is reported failed) is
/// reported skipped; its pending marker stays for the next plan.
async fn roll(
    engine: &Engine,
    plan: &Plan,
    probe: &Probe,
    events: &Arc<dyn EventSink>,
    due: &[(String, NodeIndex)],
) -> Report {
    /// One held-back task of a host: its task name, plan summary and script.
    #[derive(Clone)]
    struct Job {
        task: String,
        summary: String,
        script: String,
        handler: bool,
    }
    let mut jobs: HashMap<String, Vec<Job>> = HashMap::new();
    let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Hosts whose packages are upgraded: always rolled (their server runs the old binary).
    let mut upgrading: Vec<String> = Vec::new();
    for (host, n) in due {
        let t = &engine.graph.graph[*n];
        let summary = plan
            .hosts
            .iter()
            .filter(|hp| &hp.host == host)
            .flat_map(|hp| hp.changes.iter())
            .find(|c| c.task == t.name)
            .map(|c| c.summary.clone())
            .unwrap_or_default();
        let body = if t.handler {
            format!(
                "{}{}",
                t.resource.apply_script(None, ""),
                crate::tasks::clear_pending(&t.name)
            )
        } else {
            upgrading.push(host.clone());
            t.resource
                .apply_script(None, &crate::tasks::mark_pending(&t.notify))
        };
        jobs.entry(host.clone()).or_default().push(Job {
            task: t.name.clone(),
            summary,
            script: crate::tasks::locked(true, &body),
            handler: t.handler,
        });
        let cluster = engine
            .inv
            .host(host)
            .map(|h| h.cluster.clone())
            .unwrap_or_default();
        let hosts = by_cluster.entry(cluster).or_default();
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    // The upgrade first, then the handlers it notified, in the playbook's order.
    for js in jobs.values_mut() {
        js.sort_by_key(|j| j.handler);
    }
    // When each host's held-back tasks started and finished (the roll reports them later).
    type Spans = HashMap<String, (Instant, Option<Instant>)>;
    let started: Arc<std::sync::Mutex<Spans>> = Default::default();
    let restart = |h: String| -> futures::future::BoxFuture<'static, Result<(), String>> {
        let js = jobs.get(&h).cloned().unwrap_or_default();
        let conn = probe.conns.get(&h).cloned();
        let (events, started) = (events.clone(), started.clone());
        Box::pin(async move {
            if js.is_empty() {
                return Err(format!("{h} has no restart in this apply"));
            }
            if let Ok(mut s) = started.lock() {
                s.insert(h.clone(), (Instant::now(), None));
            }
            let finished = |h: &str| {
                if let Ok(mut s) = started.lock()
                    && let Some(t) = s.get_mut(h)
                {
                    t.1 = Some(Instant::now());
                }
            };
            let conn = conn.ok_or_else(|| format!("no connection to {h}"))?;
            for j in js {
                events.emit(Event::TaskStarted {
                    host: h.clone(),
                    task: j.task.clone(),
                    summary: j.summary.clone(),
                });
                let ran = conn.run(&j.script).await;
                finished(&h);
                match ran {
                    Ok(o) if o.code == 0 => {}
                    Ok(o) => {
                        return Err(format!(
                            "{}: exit {}: {}",
                            j.task,
                            o.code,
                            last_lines(&o.stderr, &o.stdout)
                        ));
                    }
                    Err(e) => return Err(format!("{}: {e}", j.task)),
                }
            }
            Ok(())
        })
    };
    let mut report = Report::default();
    for hosts in by_cluster.values() {
        let results =
            crate::runbooks::rolling::roll(engine, probe, events, hosts, &upgrading, &restart)
                .await;
        for (h, r) in results {
            let js = jobs.get(&h).cloned().unwrap_or_default();
            let span = started.lock().ok().and_then(|s| s.get(&h).copied());
            let elapsed = span
                .map(|(t0, t1)| t1.unwrap_or_else(Instant::now) - t0)
                .unwrap_or_default();
            use crate::runbooks::rolling::Rolled;
            let outcome = match r {
                Rolled::Restarted => Outcome::Changed,
                Rolled::Current => {
                    // Its markers go: nothing is pending on that host any more.
                    let clear: String = js
                        .iter()
                        .map(|j| crate::tasks::clear_pending(&j.task))
                        .collect();
                    let clear = crate::tasks::locked(true, &clear);
                    let cleared = match probe.conns.get(&h) {
                        Some(conn) => conn.run(&clear).await.map_err(|e| e.to_string()),
                        None => Err(format!("no connection to {h}")),
                    };
                    match cleared {
                        Ok(o) if o.code == 0 => Outcome::Skipped(
                            "the server started after its configuration changed: it runs it already".into(),
                        ),
                        Ok(o) => Outcome::Failed(format!(
                            "clearing the pending restart: exit {}",
                            o.code
                        )),
                        Err(e) => Outcome::Failed(format!("clearing the pending restart: {e}")),
                    }
                }
                Rolled::NotReached(why) => Outcome::Skipped(engine.redactor.redact(&why)),
                Rolled::Failed(e) => Outcome::Failed(engine.redactor.redact(&e)),
            };
            for j in js {
                match &outcome {
                    Outcome::Changed => report.changed += 1,
                    Outcome::Skipped(_) => report.skipped += 1,
                    Outcome::Failed(_) => report.failed += 1,
                }
                events.emit(Event::TaskFinished {
                    host: h.clone(),
                    task: j.task,
                    outcome: outcome.clone(),
                    elapsed,
                });
            }
        }
    }
    report
}

/// Runs the replication runbook with the source's connection (opened now when the source
/// was not part of this run, e.g. with `--limit`).
async fn replication(
    engine: &Engine,
    probe: &Probe,
    replica: &crate::transport::SshHost,
    r: &crate::tasks::replication::ReplicationRes,
    events: &dyn EventSink,
) -> Result<(), String> {
    let opened;
    let source = match probe.conns.get(&r.source_name) {
        Some(c) => c.as_ref(),
        None => {
            opened = engine
                .connect(&r.source_name, None)
                .await
                .map_err(|e| format!("connecting to {}: {e}", r.source_name))?;
            &opened
        }
    };
    let from_backup = if engine.opts.seed_from_backup {
        let cluster = engine.inv.host(&replica.name).map(|h| h.cluster.as_str());
        let job = engine.inv.backups.iter().find(|j| {
            j.kind == crate::backup::JobKind::Physical
                && engine.inv.host(&j.host).map(|h| h.cluster.as_str()) == cluster
        });
        Some(job.map(|j| j.name.as_str()).ok_or_else(|| {
            format!(
                "no physical backup job in {}'s cluster to rebuild it from",
                replica.name
            )
        })?)
    } else {
        None
    };
    crate::runbooks::replication::apply(replica, source, r, from_backup, events).await
}

/// The declared primary's change: made writable, or promoted by the switchover runbook
/// when it still replicates from a host of its cluster (re-read now, not trusted from the
/// plan).
async fn primary(
    engine: &Engine,
    probe: &Probe,
    conn: &crate::transport::SshHost,
    host: &str,
    p: &crate::tasks::primary::PrimaryRes,
    events: &Arc<dyn EventSink>,
) -> Result<(), String> {
    use crate::tasks::primary::Mode;
    let read = || async {
        conn.run(&p.probe())
            .await
            .map(|o| o.stdout)
            .map_err(|e| format!("reading {host}: {e}"))
    };
    let mut facts = read().await?;
    if let Some(Mode::EnableGtid { .. }) = p.mode(&facts) {
        // First, on the whole cluster; then whatever else the task has to do.
        let cluster =
            crate::runbooks::Cluster::new(engine, host, probe.conns.clone(), events.clone(), None)
                .await;
        let warn = std::time::Duration::from_secs(p.gtid_warn_s);
        let r = crate::runbooks::gtid_online::enable(&cluster, host, warn).await;
        cluster.close().await;
        r?;
        facts = read().await?;
    }
    match p.mode(&facts) {
        Some(Mode::EnableGtid { from }) => Err(format!(
            "{host}'s gtid_mode is still {from} after GTIDs were turned on"
        )),
        None => Ok(()),
        Some(Mode::Foreign(a)) => Err(format!("{host} replicates from {a}, outside its cluster")),
        Some(Mode::Restoring) => Err(format!(
            "a point-in-time restore runs on {host}: it stays read-only until the restore's last step (`dbfleet restore {host}` attaches to it)"
        )),
        Some(Mode::MakeWritable) => {
            let o = conn
                .run(&crate::tasks::locked(true, &p.apply_script()))
                .await
                .map_err(|e| e.to_string())?;
            if o.code != 0 {
                return Err(format!(
                    "exit {}: {}",
                    o.code,
                    last_lines(&o.stderr, &o.stdout)
                ));
            }
            Ok(())
        }
        Some(Mode::Switchover { from }) => {
            let cluster = crate::runbooks::Cluster::new(
                engine,
                host,
                probe.conns.clone(),
                events.clone(),
                None,
            )
            .await;
            let r = crate::runbooks::switchover::run(&cluster, host, &from, p).await;
            cluster.close().await;
            r.map(|_| ())
        }
    }
}

fn last_lines(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
