//! `dbfleet status`: the live fleet against the inventory (the reading and judging is
//! `crate::status`'s).

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::report;

/// `dbfleet status`: every selected database host's live state, read in one round trip
/// each.
///
/// Errors: [`Error::Unhealthy`] naming each unhealthy host and why.
pub fn run(opts: &Options, json: bool) -> Result<Exit, Error> {
    // Status reads the servers only: no secret is resolved and no TLS material is made.
    let engine = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    let inv = &engine.inv;
    let hosts: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .filter(|h| {
            h.is_database()
                && engine
                    .opts
                    .limit
                    .as_ref()
                    .is_none_or(|l| l.contains(&h.name))
        })
        .collect();
    let max_lag = hosts
        .first()
        .map(|h| h.max_replica_lag_s())
        .unwrap_or(crate::inventory::DEFAULT_MAX_REPLICA_LAG_S);
    let rows = crate::engine::runtime()?.block_on(crate::status::gather(
        inv,
        &hosts,
        opts.forks,
        engine.opts.connect_timeout,
        max_lag,
    ));
    if json {
        report::print(&format!("{}\n", crate::status::to_json(&rows)));
    } else {
        report::print(&crate::status::render(&rows));
    }
    let problems = crate::status::problems(&rows);
    if problems.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Error::Unhealthy(problems))
    }
}
