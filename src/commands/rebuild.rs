//! `dbfleet rebuild HOST...`: disaster rebuild of lost database hosts from the inventory
//! and the backups. The restore of a lost primary is `crate::runbooks::rebuild`'s.

use std::sync::Arc;
use std::time::Instant;

use crate::backup::{Job, JobKind};
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::inventory::Role;
use crate::report::{Reporter, Style};
use crate::runbooks::rebuild::*;

/// Plans and applies the inventory on `limit` (the apply of `dbfleet apply --limit`).
async fn converge(mut opts: Options, limit: &[String], style: Style) -> Result<(), Error> {
    opts.limit = Some(limit.iter().cloned().collect());
    let engine = Engine::load(opts)?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let planned = engine.probe_and_plan(&engine.hosts(), &events).await;
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

/// `dbfleet rebuild HOST...`.
///
/// Errors: [`Error::UnknownHost`]; [`Error::Refused`] when a HOST is not a database host,
/// still holds a data folder, or is a primary whose cluster is not lost as a whole, when
/// the cluster has no physical backup job, or when a step fails; [`Error::Usage`] when
/// approval is needed and stdin is not a terminal.
pub fn run(
    opts: &Options,
    hosts: &[String],
    auto_approve: bool,
    style: Style,
) -> Result<Exit, Error> {
    let t0 = Instant::now();
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "rebuild")?;
    let mut cluster = None;
    for name in hosts {
        let h = engine
            .inv
            .host(name)
            .ok_or_else(|| Error::UnknownHost(name.clone()))?;
        if !h.is_database() {
            return Err(Error::Refused(format!(
                "{name} is not a database host: `dbfleet apply --limit {name}` provisions it"
            )));
        }
        if cluster.is_some_and(|c: &str| c != h.cluster) {
            return Err(Error::Refused("rebuild one cluster at a time".into()));
        }
        cluster = Some(h.cluster.as_str());
    }
    let cluster = cluster.ok_or_else(|| Error::Usage("name the hosts to rebuild".into()))?;
    let members: Vec<&str> = engine
        .inv
        .hosts
        .iter()
        .filter(|h| h.is_database() && h.cluster == cluster)
        .map(|h| h.name.as_str())
        .collect();
    let primary = engine
        .inv
        .hosts
        .iter()
        .find(|h| h.cluster == cluster && h.has(Role::Primary))
        .map(|h| h.name.clone())
        .ok_or_else(|| Error::Refused(format!("cluster {cluster} declares no primary")))?;
    let with_primary = hosts.contains(&primary);
    if with_primary && !members.iter().all(|m| hosts.iter().any(|h| h == m)) {
        return Err(Error::Refused(format!(
            "{primary} is the primary of {cluster}, whose other servers are not being rebuilt: fail over to one of them (`dbfleet failover`), then rebuild {primary} as a replica"
        )));
    }
    let in_cluster = |j: &&Job| {
        engine
            .inv
            .host(&j.host)
            .is_some_and(|x| x.cluster == cluster)
    };
    let physical = engine
        .inv
        .backups
        .iter()
        .filter(in_cluster)
        .find(|j| j.kind == JobKind::Physical)
        .ok_or_else(|| {
            Error::Refused(format!(
                "cluster {cluster} has no physical backup job to rebuild from"
            ))
        })?
        .clone();
    let binlog = engine
        .inv
        .backups
        .iter()
        .filter(in_cluster)
        .find(|j| j.kind == JobKind::Binlog)
        .cloned();
    let rto = engine
        .inv
        .backups
        .iter()
        .filter(in_cluster)
        .filter_map(|j| j.rto_s)
        .min();
    let rpo = engine
        .inv
        .backups
        .iter()
        .filter(in_cluster)
        .filter_map(|j| j.rpo_s)
        .min();
    let replicas: Vec<String> = hosts.iter().filter(|h| **h != primary).cloned().collect();

    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        // Only bare hosts: a data folder means the host was not lost.
        for name in hosts {
            let conn = engine.connect(name, None).await?;
            let o = conn
                .run("test -d /var/lib/mysql/mysql && echo has-data || echo bare\n")
                .await
                .map_err(|e| Error::Refused(e.to_string()))?;
            conn.close().await;
            if o.stdout.trim() == "has-data" {
                return Err(Error::Refused(format!(
                    "{name} still holds a data folder (/var/lib/mysql): rebuild replaces lost hosts only (a replica with a broken copy: move its data folder away first)"
                )));
            }
        }
        let mut plan = format!("Rebuild of {} (cluster {cluster}), from the inventory and the backups on {}:\n", hosts.join(", "), physical.server);
        let mut step = 0;
        let mut next = || {
            step += 1;
            step
        };
        if with_primary {
            plan.push_str(&format!(
                "  {}. provision {primary} (apply --limit {primary})\n  {}. replace its data by {}'s newest full backup and the incrementals after it, then replay {}\n  {}. apply {primary} again: the primary takes writes\n",
                next(),
                next(),
                physical.name,
                binlog
                    .as_ref()
                    .map(|b| format!("every binary log archived by {} after the backup's position", b.name))
                    .unwrap_or_else(|| "nothing (no binlog job: what was written after the backup is lost)".into()),
                next()
            ));
        }
        if !replicas.is_empty() {
            plan.push_str(&format!(
                "  {}. provision {}, each seeded from {}'s newest backup chain, replicating from {primary} from the backup's GTID position\n",
                next(),
                replicas.join(", "),
                physical.name
            ));
        }
        crate::report::print(&plan);
        if !auto_approve && !crate::report::confirm("\nRebuild?")? {
            return Err(Error::Cancelled);
        }
        let mut recovered = String::new();
        if with_primary {
            converge(opts.clone(), std::slice::from_ref(&primary), style).await?;
            let conn = engine.connect(&primary, None).await?;
            let out = restore_primary(&conn, &physical, binlog.as_ref()).await;
            conn.close().await;
            recovered = out?;
            crate::report::print(&recovered);
            converge(opts.clone(), std::slice::from_ref(&primary), style).await?;
        }
        if !replicas.is_empty() {
            let mut o = opts.clone();
            o.seed_from_backup = true;
            converge(o, &replicas, style).await?;
        }
        let took = t0.elapsed().as_secs();
        let human = crate::backup::rpo::human;
        let mut summary = format!(
            "Rebuilt {}: measured RTO {took} s, declared RTO {}{}\n",
            hosts.join(", "),
            rto.map(human).unwrap_or_else(|| "none".into()),
            match rto {
                Some(r) if took > r => "  ← over the RTO",
                _ => "",
            }
        );
        if with_primary {
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
