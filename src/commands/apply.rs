//! `dbfleet apply`: make the hosts match the inventory, or apply a saved plan.

use std::path::Path;
use std::sync::Arc;

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::plan::file::Saved;
use crate::report::{self, Reporter, Style};

/// `dbfleet apply [FILE]`: plans and applies after asking, or applies a saved plan when
/// every target is still as the plan saw it.
///
/// Errors: the plan's; [`Error::Stale`]-like refusals from `crate::apply::check_fresh`;
/// [`Error::Cancelled`] when declined; a failed change's error.
pub fn run(
    opts: &Options,
    plan_file: Option<&Path>,
    auto_approve: bool,
    style: Style,
) -> Result<Exit, Error> {
    let saved = match plan_file.map(crate::plan::file::load_any).transpose()? {
        Some(Saved::Runbook(r)) => return run_saved(opts, *r, style),
        Some(Saved::Changes(p)) => Some(p),
        None => None,
    };
    let mut opts = opts.clone();
    if let Some(s) = &saved {
        // A saved plan is applied exactly as planned: its scope, not the command line's.
        opts.limit = s.limit.as_ref().map(|l| l.iter().cloned().collect());
        opts.tags = s.tags.as_ref().map(|l| l.iter().cloned().collect());
    }
    let engine = Engine::load(opts)?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        let hosts = match &saved {
            Some(s) => s
                .hosts
                .iter()
                .filter(|h| !h.changes.is_empty())
                .map(|h| h.host.clone())
                .collect(),
            None => engine.hosts(),
        };
        let planned = super::probe_and_plan(&engine, &hosts, &events).await;
        reporter.finish();
        let (probe, fresh) = planned?;
        let plan = match saved {
            Some(s) => {
                if let Err(e) = crate::apply::check_fresh(&s, &fresh, &engine) {
                    Engine::close(probe).await;
                    return Err(e);
                }
                s
            }
            None => {
                report::print(&report::render_plan(&fresh, style));
                if fresh.is_empty() {
                    Engine::close(probe).await;
                    return Ok(Exit::Ok);
                }
                if !auto_approve && !confirm(&fresh)? {
                    Engine::close(probe).await;
                    return Err(Error::Cancelled);
                }
                fresh
            }
        };
        if plan.is_empty() {
            report::print("The saved plan has no changes.\n");
            Engine::close(probe).await;
            return Ok(Exit::Ok);
        }
        let result = crate::apply::apply(&engine, &plan, &probe, &events).await;
        reporter.finish();
        Engine::close(probe).await;
        let r = result?;
        report::print(&format!(
            "Apply complete: {} changed, {} skipped.\n",
            r.changed, r.skipped
        ));
        Ok(Exit::Ok)
    })
}

/// Asks on the terminal before applying `plan`; only `yes` approves.
///
/// Errors: [`Error::Usage`] when stdin is not a terminal (use `--auto-approve`).
pub(crate) fn confirm(plan: &crate::plan::Plan) -> Result<bool, Error> {
    report::confirm(&format!(
        "\nApply these changes to {}?",
        crate::diagnostics::plural(plan.summary.hosts_changed, "host")
    ))
}

/// `dbfleet apply FILE` of a saved runbook plan: the same request planned again, run only
/// when that plan is the saved one ([`super::runbook::Mode::Saved`]).
///
/// Errors: the runbook command's; [`Error::Stale`] when the plans differ.
pub fn run_saved(
    opts: &crate::engine::Options,
    saved: crate::plan::runbook::RunbookPlan,
    style: Style,
) -> Result<Exit, Error> {
    use crate::plan::runbook::Runbook;
    let runbook = saved.runbook.clone();
    let mode = super::runbook::Mode::Saved(Box::new(saved));
    match runbook {
        Runbook::Failover { cluster, to, force } => {
            let request = crate::runbooks::failover::Request {
                cluster: Some(cluster),
                to,
                force,
                silence: Default::default(),
            };
            super::failover::run(opts, &request, mode, style)
        }
        Runbook::Rejoin { host } => super::failover::rejoin(opts, &host, mode, style),
        Runbook::Restore { host, to } => {
            super::restore::run(opts, &host, to.as_deref(), mode, style)
        }
        Runbook::Rebuild { hosts } => super::rebuild::run(opts, &hosts, mode, style),
        Runbook::ClusterRestart {
            cluster,
            from,
            force_quorum,
        } => super::cluster_restart::run(
            opts,
            Some(&cluster),
            from.as_deref(),
            force_quorum,
            mode,
            style,
        ),
    }
}
