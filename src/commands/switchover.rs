//! `dbfleet switchover`: the planned move of a cluster's primary, as an inventory edit and
//! a plan (the runbook's steps are `crate::runbooks::switchover`'s).

use std::path::Path;
use std::sync::Arc;

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::report::{self, Reporter, Style};

use super::apply::confirm;

/// `dbfleet switchover --to HOST`: the inventory edited to make HOST the primary, planned
/// (the switchover runbook is part of the plan), shown, applied after asking; the edit is
/// written once HOST is the writable primary. With `out`, the edited inventory is written
/// and the plan saved there instead.
///
/// Errors: [`Error::UnknownHost`]; [`Error::Refused`] when the switchover cannot be proven
/// safe (nothing is changed); [`Error::Cancelled`]; a failed step's error.
pub fn run(
    opts: &Options,
    new: &str,
    auto_approve: bool,
    out: Option<&Path>,
    style: Style,
) -> Result<Exit, Error> {
    let path = &opts.inventory;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading inventory {}", path.display()), e))?;
    let current = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    crate::runbooks::require_proven(current.runbook_dialect(), "switchover")?;
    crate::runbooks::require_primary_topology(&current.inv, [new], "switchover")?;
    let to = current
        .inv
        .host(new)
        .ok_or_else(|| Error::UnknownHost(new.to_string()))?;
    let old = current
        .inv
        .hosts
        .iter()
        .find(|h| h.cluster == to.cluster && h.has(crate::inventory::Role::Primary))
        .map(|h| h.name.clone())
        .ok_or_else(|| Error::Refused(format!("cluster {} has no primary", to.cluster)))?;
    if old == new {
        return Err(Error::Refused(format!("{new} already is the primary")));
    }
    let edited = crate::inventory::edit::promote(&path.display().to_string(), &text, new, &old)?;
    let diff = crate::inventory::edit::diff(path, &text, &edited);
    if let Some(out) = out {
        // The edited inventory is the declared state; the saved plan converges to it.
        crate::inventory::edit::write(path, &edited)?;
        report::print(&format!("Inventory updated:\n{diff}\n"));
        let request = super::plan::Request {
            out: Some(out.to_path_buf()),
            ..Default::default()
        };
        return super::plan::run(opts, &request, style);
    }
    let mut opts = opts.clone();
    opts.inventory_text = Some(edited.clone());
    let engine = Engine::load(opts)?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        let planned = super::probe_and_plan(&engine, &engine.hosts(), &events).await;
        reporter.finish();
        let (probe, plan) = planned?;
        report::print(&report::render_plan(&plan, style));
        report::print(&format!("\nThe inventory will say:\n{diff}\n"));
        if !auto_approve && !confirm(&plan)? {
            Engine::close(probe).await;
            return Err(Error::Cancelled);
        }
        let result = crate::apply::apply(&engine, &plan, &probe, &events).await;
        reporter.finish();
        // Record the topology once the new primary is promoted, even if a later step
        // failed: the inventory must not send the next apply back to the old primary.
        let promoted = match probe.conns.get(new) {
            Some(c) => crate::runbooks::topology::read_state(c.as_ref(), engine.runbook_dialect())
                .await
                .is_ok_and(|s| s.up && !s.read_only && !s.replicating()),
            None => false,
        };
        Engine::close(probe).await;
        if promoted {
            crate::inventory::edit::write(path, &edited)?;
            report::print(&format!(
                "{} is the primary; updated {} (commit it).\n",
                new,
                path.display()
            ));
        }
        let r = result?;
        report::print(&format!(
            "Switchover complete: {} changed, {} skipped.\n",
            r.changed, r.skipped
        ));
        Ok(Exit::Ok)
    })
}
