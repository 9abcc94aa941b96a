//! `dbfleet rebuild HOST...`: disaster rebuild of lost database hosts from the inventory
//! and the backups. The restore of a lost primary is `crate::runbooks::rebuild`'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;

use super::runbook::{Mode, decide};
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::report::{Reporter, Style};
use crate::runbooks::Cluster;
use crate::runbooks::execute::{Converge, execute};
use crate::runbooks::rebuild::binlog_stamp;

/// Plans and applies the inventory on `limit` and the fleet's proxies (the apply of
/// `dbfleet apply --limit`). The proxies come along for their routes: a rebuild cut off
/// mid-way and attached to again (issue 26) can leave the replica out of the readers,
/// where a roll took it, and only the proxies' `haproxy routes` task puts it back (seen in
/// the lab: db3 rebuilt, replicating, and in maintenance among the readers).
async fn converge(
    mut opts: Options,
    limit: &[String],
    proxies: &[String],
    style: Style,
) -> Result<(), Error> {
    opts.limit = Some(limit.iter().chain(proxies).cloned().collect());
    let engine = Engine::load(opts)?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let planned = super::probe_and_plan(&engine, &engine.hosts(), &events).await;
    reporter.finish();
    let (probe, plan) = planned?;
    crate::report::print(&crate::report::render_plan(&plan, style));
    let result = if plan.is_empty() {
        Ok(Default::default())
    } else {
        crate::apply::apply(&engine, &plan, &probe, &events).await
    };
    reporter.finish();
    Engine::close(probe).await;
    result.map(|_| ())
}

/// The rebuild's [`Converge`]: `apply --limit` with the command line's options.
struct Apply {
    opts: Options,
    style: Style,
    /// The fleet's proxies, converged with the rebuilt hosts ([`converge`]).
    proxies: Vec<String>,
}

impl Converge for Apply {
    fn converge<'a>(
        &'a self,
        hosts: &'a [String],
        seed_from_backup: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let mut opts = self.opts.clone();
        opts.seed_from_backup = seed_from_backup;
        Box::pin(converge(opts, hosts, &self.proxies, self.style))
    }
}

/// `dbfleet rebuild HOST...`: plans the rebuild (`crate::runbooks::rebuild::plan`),
/// presents it as `mode` says, runs it, and prints the measured RTO and the bound on lost
/// writes beside the declared RTO and RPO.
///
/// Errors: as the plan's; [`Error::Stale`]; [`Error::Cancelled`]; a failed step's error.
pub fn run(opts: &Options, hosts: &[String], mode: Mode, style: Style) -> Result<Exit, Error> {
    let t0 = Instant::now();
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "rebuild")?;
    crate::runbooks::require_primary_topology(
        &engine.inv,
        hosts.iter().map(String::as_str),
        "rebuild",
    )?;
    let first = hosts
        .first()
        .ok_or_else(|| Error::Usage("name the hosts to rebuild".into()))?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        let mut conns = HashMap::new();
        for name in hosts {
            engine
                .inv
                .host(name)
                .ok_or_else(|| Error::UnknownHost(name.clone()))?;
            conns.insert(name.clone(), Arc::new(engine.connect(name, None).await?));
        }
        let c = Cluster::over(&engine, first, conns.clone(), events);
        let apply = Apply {
            opts: opts.clone(),
            style,
            proxies: engine
                .inv
                .hosts
                .iter()
                .filter(|h| h.has(crate::inventory::Role::Proxy))
                .map(|h| h.name.clone())
                .collect(),
        };
        let result = async {
            let rp = crate::runbooks::rebuild::plan(&engine, hosts, &conns).await?;
            reporter.finish();
            if !decide(&rp.plan, &mode, "Rebuild?")? {
                return Ok(None);
            }
            let out = execute(&c, &rp.plan, None, &apply, t0).await?;
            Ok::<_, Error>(Some((rp, out)))
        }
        .await;
        drop(conns);
        c.close().await;
        reporter.finish();
        let Some((rp, out)) = result? else {
            return Ok(Exit::Ok);
        };
        let recovered: String = out.outputs.into_iter().map(|(_, o)| o).collect();
        if !recovered.is_empty() {
            crate::report::print(&recovered);
        }
        let took = t0.elapsed().as_secs();
        let human = crate::backup::rpo::human;
        let (rto, rpo) = (rp.rto_s, rp.rpo_s);
        let mut summary = format!(
            "Rebuilt {}: measured RTO {took} s, declared RTO {}{}\n",
            hosts.join(", "),
            rto.map(human).unwrap_or_else(|| "none".into()),
            match rto {
                Some(r) if took > r => "  ← over the RTO",
                _ => "",
            }
        );
        if rp.with_primary {
            // Writes after the last archived event are lost: bounded by when it happened.
            let last = recovered
                .lines()
                .find_map(|l| l.strip_prefix("last event: #"))
                .and_then(binlog_stamp);
            match last {
                Some(t) => {
                    let lost = (chrono::Utc::now() - t).num_seconds().max(0) as u64;
                    summary.push_str(&format!(
                        "Recovered up to {t}: writes after it are lost (at most {lost} s ago), declared RPO {}{}\n",
                        rpo.map(human).unwrap_or_else(|| "none".into()),
                        match rpo {
                            Some(r) if lost > r => "  ← over the RPO",
                            _ => "",
                        }
                    ));
                }
                None => summary.push_str("Recovered up to the backup's position (no archived binary log after it)\n"),
            }
        }
        crate::report::print(&summary);
        Ok(Exit::Ok)
    })
}
