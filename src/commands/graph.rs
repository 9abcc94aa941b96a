//! `dbfleet graph`: the task graph in Graphviz DOT.

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::report;

/// `dbfleet graph`.
///
/// Errors: the inventory's, a playbook's or a template's diagnostics; a cycle.
pub fn run(opts: &Options) -> Result<Exit, Error> {
    let e = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    report::print(&e.graph.to_dot(&e.selected));
    Ok(Exit::Ok)
}
