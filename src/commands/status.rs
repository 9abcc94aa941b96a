//! `dbfleet status`: the live fleet against the inventory (the reading and judging is
//! `crate::status`'s).

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::report;

/// `dbfleet status`: every selected database host's live state, read in one round trip
/// each, what each selected proxy routes and what each failover monitor decided (one round
/// trip each), each backup job's expected restore time against its RTO (one round trip per
/// backup server and per database host a job reads), drawn as the topology (`crate::status::topology`) or printed as JSON.
///
/// Errors: [`Error::Unhealthy`] naming each unhealthy host and why.
pub fn run(opts: &Options, json: bool) -> Result<Exit, Error> {
    // Status reads the servers only: no secret is resolved and no TLS material is made.
    let engine = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    let inv = &engine.inv;
    let selected = |h: &&crate::inventory::Host| {
        engine
            .opts
            .limit
            .as_ref()
            .is_none_or(|l| l.contains(&h.name))
    };
    let hosts: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .filter(|h| h.is_database() && selected(h))
        .collect();
    let max_lag = hosts
        .first()
        .map(|h| h.max_replica_lag_s())
        .unwrap_or(crate::inventory::DEFAULT_MAX_REPLICA_LAG_S);
    // The proxies that run HAProxy: what each routes, read after the servers so it is set
    // against their live roles.
    let proxies: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .filter(|h| {
            h.has(crate::inventory::Role::Proxy)
                && h.vars.get("proxy_backend").and_then(|v| v.as_str()) != Some("proxysql")
                && selected(h)
        })
        .collect();
    let monitors: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .filter(|h| h.has(crate::inventory::Role::Monitor) && selected(h))
        .collect();
    // The backup servers: each job's restore time against its RTO.
    let backup_servers: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .filter(|h| inv.backups.iter().any(|j| j.server == h.name) && selected(h))
        .collect();
    let rt = crate::engine::runtime()?;
    let rows = rt.block_on(crate::status::gather(
        inv,
        &hosts,
        opts.forks,
        engine.opts.connect_timeout,
        max_lag,
    ));
    let routing = rt.block_on(crate::status::proxies::gather(
        inv,
        &proxies,
        &rows,
        opts.forks,
        engine.opts.connect_timeout,
    ));
    let watching = rt.block_on(crate::status::monitors::gather(
        inv,
        &monitors,
        opts.forks,
        engine.opts.connect_timeout,
    ));
    let backups = rt.block_on(crate::status::backups::gather(
        inv,
        &backup_servers,
        opts.forks,
        engine.opts.connect_timeout,
    ));
    // What was read is recorded for `validate`, which contacts no host; a record that
    // cannot be written only leaves validate's view older.
    let measured: std::collections::BTreeMap<_, _> = backups
        .iter()
        .filter_map(|b| Some((b.expectation.job.clone(), b.expectation.measured?)))
        .collect();
    let _ = crate::backup::rto::save(&crate::backup::rto::record_path(&inv.base_dir()), &measured);
    if json {
        report::print(&format!(
            "{}\n",
            crate::status::to_json(&rows, &routing, &watching, &backups)
        ));
    } else {
        report::print(&crate::status::topology::render(inv, &rows, &routing));
        report::print(&crate::status::monitors::render(&watching));
        report::print(&crate::status::backups::render(&backups));
    }
    let mut problems = crate::status::problems(&rows);
    for (host, p) in routing
        .iter()
        .map(|p| (&p.host, &p.problems))
        .chain(watching.iter().map(|m| (&m.host, &m.problems)))
        .chain(backups.iter().map(|b| (&b.server, &b.problems)))
        .filter(|(_, p)| !p.is_empty())
    {
        problems
            .entry(host.clone())
            .or_default()
            .extend(p.iter().cloned());
    }
    if problems.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Error::Unhealthy(problems))
    }
}
