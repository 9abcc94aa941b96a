//! The commands: one module per verb, each driving the engine and the runbooks for one
//! request and handing results to `crate::report`. A command takes resolved options
//! ([`Options`](crate::engine::Options), the output [`Style`](crate::report::Style) and
//! its own plain arguments): the command line's types stop in `crate::cli`, which parses,
//! resolves and calls these. Nothing below this layer knows the command line exists
//! (docs/src/layout.md, "Architecture"; checked by `tests/architecture.rs`).

pub mod app_config;
pub mod apply;
pub mod backup;
pub mod cluster_restart;
pub mod failover;
pub mod graph;
pub mod import;
pub mod monitor;
pub mod plan;
pub mod rebuild;
pub mod restore;
pub mod runbook;
pub mod schema;
pub mod status;
pub mod switchover;
pub mod validate;

use std::sync::Arc;

use crate::engine::{Engine, Probe};
use crate::error::Error;
use crate::events::EventSink;
use crate::plan::Plan;

/// Probes `hosts` and plans from what was found (refused while a monitor's failover is not
/// adopted: `crate::runbooks::monitor::require_adopted`), a planned switchover folded in
/// (`crate::runbooks::switchover::fold`): the load → probe → plan every command that
/// changes hosts starts with. The connections stay open for the apply (the caller ends
/// them with [`Engine::close`]); when planning fails they are closed here.
///
/// Errors: [`Engine::probe`]'s, [`Engine::plan`]'s and the fold's refusals.
pub(crate) async fn probe_and_plan(
    engine: &Engine,
    hosts: &[String],
    events: &Arc<dyn EventSink>,
) -> Result<(Probe, Plan), Error> {
    // A failover the monitors did and the inventory does not show refuses the plan; read
    // from the monitor hosts while the probe runs.
    let (adopted, probe) = tokio::join!(
        crate::runbooks::monitor::require_adopted(engine),
        engine.probe(hosts, events)
    );
    // The monitor's record first: its old primary is dead, and the probe of it fails.
    if let Err(e) = adopted {
        if let Ok(probe) = probe {
            Engine::close(probe).await;
        }
        return Err(e);
    }
    let probe = probe?;
    let planned = engine.plan(&probe).and_then(|mut plan| {
        crate::runbooks::switchover::fold(engine, &probe, &mut plan)?;
        crate::runbooks::rolling::fold(engine, &mut plan);
        Ok(plan)
    });
    match planned {
        Ok(plan) => Ok((probe, plan)),
        Err(e) => {
            Engine::close(probe).await;
            Err(e)
        }
    }
}
