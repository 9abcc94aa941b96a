//! `dbfleet plan`: what `apply` would change, host by host, from the hosts' real state;
//! or, offline, every host's files rendered and the graph checked without contacting a
//! host (the CI dry-run).

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::report::{self, Reporter, Style};

/// What `plan` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Exit with [`Exit::ChangesPending`] when there are changes.
    pub detailed_exitcode: bool,
    /// Print the plan as JSON.
    pub json: bool,
    /// Save the plan to this file for `apply FILE`.
    pub out: Option<PathBuf>,
    /// Contact no host.
    pub offline: bool,
    /// Offline: write the rendered files under DIR/HOST/PATH.
    pub out_dir: Option<PathBuf>,
}

/// `dbfleet plan`.
///
/// Errors: the inventory's diagnostics; [`Error::Unreachable`] naming hosts that could not
/// be probed; [`Error::Refused`] for a change that cannot be planned safely; I/O errors
/// writing `out` or `out_dir`.
pub fn run(opts: &Options, a: &Request, style: Style) -> Result<Exit, Error> {
    if a.offline {
        return offline(opts, a);
    }
    let engine = Engine::load(opts.clone())?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    let plan = rt.block_on(async {
        let planned = super::probe_and_plan(&engine, &engine.hosts(), &events).await;
        reporter.finish();
        let (probe, plan) = planned?;
        Engine::close(probe).await;
        Ok::<_, Error>(plan)
    })?;
    if let Some(out) = &a.out {
        crate::plan::file::save(&plan, out)?;
    }
    if a.json {
        report::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        ));
    } else {
        report::print(&report::render_plan(&plan, style));
        if let Some(out) = &a.out {
            report::print(&format!(
                "Saved the plan to {}; apply it with `dbfleet apply {}`.\n",
                out.display(),
                out.display()
            ));
        }
    }
    Ok(if a.detailed_exitcode && !plan.is_empty() {
        Exit::ChangesPending
    } else {
        Exit::Ok
    })
}

fn offline(opts: &Options, a: &Request) -> Result<Exit, Error> {
    let e = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    let mut files = 0;
    if let Some(dir) = &a.out_dir {
        files = e.render_offline(dir)?.len();
    }
    let mut text = format!(
        "Offline check passed: {}, {} in graph order, every template rendered.\n",
        crate::diagnostics::plural(e.hosts().len(), "host"),
        crate::diagnostics::plural(e.selected.len(), "task")
    );
    if let Some(dir) = &a.out_dir {
        text.push_str(&format!(
            "Wrote {} under {}.\n",
            crate::diagnostics::plural(files, "file"),
            dir.display()
        ));
    }
    report::print(&text);
    Ok(Exit::Ok)
}
