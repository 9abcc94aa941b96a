//! `dbfleet app-config`: application configuration printed from the inventory (the
//! rendering is `crate::appconfig`'s).

use crate::appconfig::laravel;
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::report;

/// What to print.
#[derive(Debug, Clone)]
pub enum AppConfig {
    /// Laravel's read/write split (seed 000); `direct` names the database hosts instead of
    /// the proxy; `database` and `user` default to the inventory's first.
    Laravel {
        direct: bool,
        database: Option<String>,
        user: Option<String>,
    },
}

/// `dbfleet app-config KIND`.
///
/// Errors: the inventory's; [`Error::Refused`] when the named database or user is not in it.
pub fn run(opts: &Options, kind: &AppConfig) -> Result<Exit, Error> {
    // Reads the inventory only: no host, no secret.
    let engine = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    match kind {
        AppConfig::Laravel {
            direct,
            database,
            user,
        } => {
            report::print(&laravel(
                &engine.inv,
                *direct,
                database.as_deref(),
                user.as_deref(),
            )?);
        }
    }
    Ok(Exit::Ok)
}
