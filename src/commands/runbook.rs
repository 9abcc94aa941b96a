//! What the runbook commands (`failover`, `rejoin`, `restore`, `rebuild`) share: how a
//! runbook's plan is presented (`--dry-run`, `--json`, `--out FILE`), approved, or checked
//! against a saved one (`dbfleet apply FILE`) before it runs.

use std::path::PathBuf;

use crate::error::Error;
use crate::plan::runbook::RunbookPlan;
use crate::report;

/// How a runbook command ends once its plan is made.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Show the plan, ask, run it (`--auto-approve`: without asking).
    Run { auto_approve: bool },
    /// Show the plan; change nothing (`--dry-run`).
    DryRun,
    /// Print the plan as JSON; change nothing (`--json`).
    Json,
    /// Save the plan to the file; change nothing (`--out FILE`).
    Out(PathBuf),
    /// Run a saved plan (`dbfleet apply FILE`) when the fresh plan is the same.
    Saved(Box<RunbookPlan>),
}

impl Mode {
    /// The mode from a command's flags; `--json` and `--out` win over `--dry-run`.
    pub fn from_flags(dry_run: bool, json: bool, out: Option<PathBuf>, auto_approve: bool) -> Mode {
        match (json, out) {
            (true, _) => Mode::Json,
            (false, Some(p)) => Mode::Out(p),
            (false, None) if dry_run => Mode::DryRun,
            _ => Mode::Run { auto_approve },
        }
    }
}

/// Presents `plan` as `mode` says and returns whether to run it now. `question` is asked
/// in [`Mode::Run`] without `auto_approve`.
///
/// Errors: [`Error::Stale`] when a saved plan differs from `plan` (planned now);
/// [`Error::Cancelled`] when declined; [`Error::Usage`] when asking needs a terminal;
/// [`Error::Io`] when the plan cannot be saved.
pub fn decide(plan: &RunbookPlan, mode: &Mode, question: &str) -> Result<bool, Error> {
    match mode {
        Mode::Json => {
            let json = serde_json::to_string_pretty(plan)
                .map_err(|e| Error::io("printing the plan", std::io::Error::other(e)))?;
            report::print(&format!("{json}\n"));
            Ok(false)
        }
        Mode::DryRun => {
            report::print(&format!("{}Dry run: nothing was changed.\n", plan.render()));
            Ok(false)
        }
        Mode::Out(path) => {
            crate::plan::file::save(plan, path)?;
            report::print(&format!(
                "{}Saved the plan to {p}: `dbfleet apply {p}` runs it while the fleet is as observed.\n",
                plan.render(),
                p = path.display()
            ));
            Ok(false)
        }
        Mode::Saved(saved) => {
            let details = saved.stale_against(plan);
            if !details.is_empty() {
                return Err(Error::Stale { details });
            }
            report::print(&plan.render());
            Ok(true)
        }
        Mode::Run { auto_approve } => {
            report::print(&plan.render());
            if !auto_approve && !report::confirm(&format!("\n{question}"))? {
                return Err(Error::Cancelled);
            }
            Ok(true)
        }
    }
}
