//! `dbfleet restore HOST [--to TIME]`: point-in-time recovery of a cluster's primary from
//! its backups. The choice of backups and the script are `crate::runbooks::restore`'s plan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::runbook::{Mode, decide};
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::report::{Reporter, Style};
use crate::runbooks::Cluster;
use crate::runbooks::execute::{NoConverge, execute};

/// `dbfleet restore HOST [--to TIME]`: plans the restore, presents it as `mode` says, runs
/// it on HOST.
///
/// Errors: as [`crate::runbooks::restore::plan`]; [`Error::Stale`]; [`Error::Cancelled`];
/// [`Error::Refused`] when the script fails on the host (the primary, or a Galera
/// cluster's members, then stay read-only), or when a member of a Galera cluster cannot be
/// reached (it could not be fenced).
pub fn run(
    opts: &Options,
    host: &str,
    to: Option<&str>,
    mode: Mode,
    style: Style,
) -> Result<Exit, Error> {
    let t0 = Instant::now();
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "restore")?;
    let h = engine
        .inv
        .host(host)
        .ok_or_else(|| Error::UnknownHost(host.into()))?;
    // A Galera cluster is restored through any member (the runbook fences the others); a
    // replication group is not restored yet.
    let fenced = crate::runbooks::restore::fenced_members(&engine.inv, host);
    if fenced.is_none() {
        crate::runbooks::require_primary_topology(&engine.inv, [host], "restore")?;
    }
    let members = fenced.unwrap_or_default();
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    crate::engine::runtime()?.block_on(async {
        let conn = Arc::new(engine.connect(host, None).await?);
        let mut conns = HashMap::from([(host.to_string(), conn.clone())]);
        // Every other member at once; one not reached cannot be fenced, and could take
        // writes while the reload runs: refused before anything changes.
        for (m, c) in engine.connect_all(&members).await {
            let c = c.map_err(|e| {
                Error::Refused(format!(
                    "restore refused: {m}, a member of Galera cluster {}, cannot be reached ({e}): it could not be fenced read-only and might take writes during the reload. Nothing was changed",
                    h.cluster
                ))
            })?;
            conns.insert(m, Arc::new(c));
        }
        let c = Cluster::over(&engine, host, conns, events);
        let result = async {
            let plan = crate::runbooks::restore::plan(&engine, &conn, host, to).await?;
            reporter.finish();
            if !decide(&plan, &mode, "Restore?")? {
                return Ok(None);
            }
            // The script turns read_only on first and off last: a failed step leaves it on.
            execute(&c, &plan, None, &NoConverge, t0)
                .await
                .map(Some)
                .map_err(|e| {
                    Error::Refused(if members.is_empty() {
                        format!(
                            "restore on {host} did not end here; {host} stays read-only until it ends well: {e}"
                        )
                    } else {
                        format!(
                            "restore on {host} did not end here; {host} and {} stay read-only until it ends well: {e}",
                            members.join(", ")
                        )
                    })
                })
        }
        .await;
        drop(conn);
        c.close().await;
        reporter.finish();
        let Some(out) = result? else {
            return Ok(Exit::Ok);
        };
        let stdout: String = out.outputs.into_iter().map(|(_, o)| o).collect();
        crate::report::print(&format!(
            "{}restored {host} in {:.1} s\n",
            engine.redactor.redact(&stdout),
            t0.elapsed().as_secs_f64()
        ));
        Ok(Exit::Ok)
    })
}
