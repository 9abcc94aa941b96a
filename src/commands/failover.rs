//! `dbfleet failover` and `dbfleet rejoin`: the unplanned failover of a cluster whose
//! primary died, and the return of an old primary as a replica. The steps (confirming the
//! primary dead, fencing, draining, choosing and promoting) are `crate::runbooks::failover`'s;
//! this module drives them for the command line: loading, asking, recording, reporting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::runbook::{Mode, decide};
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::inventory::Role;
use crate::plan::runbook::Runbook;
use crate::report::{self, Reporter, Style};
use crate::runbooks::Cluster;
use crate::runbooks::execute::{NoConverge, execute};
use crate::runbooks::failover::{self, FailoverRecord, Request, cluster_of, now_s};

/// `dbfleet failover`: plans the failover (confirms the primary dead from here, the
/// replicas and the proxies; picks the most advanced eligible replica), presents it as
/// `mode` says, and when it runs: fences the old primary, promotes the candidate,
/// repoints the others and the proxies, records the topology in the inventory and the
/// anti-flap lock, then applies the proxies' files.
///
/// Errors: [`Error::Refused`] when the failover cannot be proven safe (the primary alive
/// from anywhere, inside the anti-flap window without `force`, no eligible replica, a
/// replica that cannot drain); [`Error::Stale`] for a saved plan the fleet no longer
/// matches; [`Error::Cancelled`]; a failed step's error.
pub fn run(opts: &Options, a: &Request, mode: Mode, style: Style) -> Result<Exit, Error> {
    let t0 = Instant::now();
    // A dead host costs the connect timeout: keep it short here (the proxies' apply
    // afterwards uses the command line's).
    let short = Options {
        connect_timeout: opts.connect_timeout.min(Duration::from_secs(2)),
        ..opts.clone()
    };
    let engine = Engine::load(short)?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "failover")?;
    if let Some(c) = a.cluster.as_deref() {
        crate::runbooks::require_primary_topology(
            &engine.inv,
            engine.inv.cluster_databases(c).map(|h| h.name.as_str()),
            "failover",
        )?;
    }
    let (cluster, old) = cluster_of(&engine, a.cluster.as_deref())?;
    failover::anti_flap(&engine, &cluster, &old, a.force)?;
    let runbook = Runbook::Failover {
        cluster: cluster.clone(),
        to: a.to.clone(),
        force: a.force,
    };
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        let mut c = Cluster::new(&engine, &old, HashMap::new(), events.clone(), Some(&old)).await;
        let result = async {
            let fp = failover::plan(&mut c, &old, a, runbook).await?;
            reporter.finish();
            if !decide(&fp.plan, &mode, "Fail over now?")? {
                return Ok(None);
            }
            let secret = failover::replication_secret(&c);
            let out = execute(&c, &fp.plan, secret.as_deref(), &NoConverge, t0).await?;
            Ok::<_, Error>(Some((fp, out, t0.elapsed())))
        }
        .await;
        c.close().await;
        reporter.finish();
        let Some((fp, out, took)) = result? else {
            return Ok(Exit::Ok);
        };
        let new = fp.new;
        if !out.problems.is_empty() {
            // The topology changed: record it anyway, and say what is left.
            report::print(&format!(
                "{new} is the primary, but: {}\n",
                out.problems.join("; ")
            ));
        }
        // Record: inventory, then the anti-flap lock.
        let path = &opts.inventory;
        crate::inventory::edit::write(path, &fp.edited)?;
        failover::record(
            &engine,
            &FailoverRecord {
                cluster: cluster.clone(),
                at: now_s(),
                from: old.clone(),
                to: new.clone(),
                reason: format!("{old} dead from here and from its replicas"),
            },
        )?;
        report::print(&format!(
            "Failover complete: {new} is the primary of {cluster} ({} ms from start to the proxies' writer on {new}).\nUpdated {}:\n{}",
            took.as_millis(),
            path.display(),
            crate::inventory::edit::diff(path, &fp.before, &fp.edited)
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
            let (probe, plan) = super::probe_and_plan(&pe, &pe.hosts(), &events).await?;
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

/// `dbfleet rejoin HOST`: plans the return of HOST (a returned old primary, a replica in
/// the inventory) as a replica of the current primary, presents it as `mode` says, runs it.
/// A writable HOST is fenced while planning, in every mode.
///
/// Errors: [`Error::UnknownHost`]; [`Error::Refused`] when HOST is not a replica in the
/// inventory, its source is not a writable primary, or HOST holds transactions the
/// primary never saw; [`Error::Stale`]; [`Error::Cancelled`]; a failed step's error.
pub fn rejoin(opts: &Options, host: &str, mode: Mode, style: Style) -> Result<Exit, Error> {
    let t0 = Instant::now();
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "rejoin")?;
    crate::runbooks::require_primary_topology(&engine.inv, [host], "rejoin")?;
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
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    crate::engine::runtime()?.block_on(async {
        let c = Cluster::new(&engine, host, HashMap::new(), events, None).await;
        let result = async {
            let Some(r) = failover::rejoin_planned(&c, host, &source).await? else {
                reporter.finish();
                report::print(&format!(
                    "{host} already replicates from {source}: nothing to do.\n"
                ));
                return Ok(false);
            };
            reporter.finish();
            if !decide(&r.plan, &mode, "Rejoin now?")? {
                return Ok(false);
            }
            crate::runbooks::execute::run_rejoin(&c, &r, host, &source, t0).await?;
            Ok(true)
        }
        .await;
        c.close().await;
        reporter.finish();
        if !result? {
            return Ok(Exit::Ok);
        }
        report::print(&format!("{host} rejoined as a replica of {source}.\n"));
        Ok(Exit::Ok)
    })
}
