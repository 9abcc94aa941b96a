//! What the synchronous clusters' runbooks share (`cluster_restart.rs` for Galera,
//! `group_restart.rs` for a replication group): requiring every member reached, reading
//! every member at once, and the head of a `cluster-restart` plan.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Error;
use crate::plan::runbook::{Runbook, RunbookPlan};
use crate::transport::SshHost;

/// The members of `names` that `conns` lacks (not reached), in inventory order.
///
/// Errors: [`Error::Refused`] naming them when any is missing and `from` names no member to
/// start from: a member not seen may hold the newest writes. `what` names the cluster
/// ("cluster C", "replication group C").
pub(super) fn require_reachable<'n>(
    what: &str,
    names: &'n [String],
    from: Option<&str>,
    conns: &HashMap<String, Arc<SshHost>>,
) -> Result<Vec<&'n str>, Error> {
    let unreachable: Vec<&str> = names
        .iter()
        .filter(|n| !conns.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !unreachable.is_empty() && from.is_none() {
        return Err(Error::Refused(format!(
            "{} of {what} cannot be reached: a member not seen may hold the newest writes, so dbfleet cannot tell which member is the most advanced. Bring it back, or name the member to start from with --from (what the others hold beyond it is lost); nothing was changed",
            unreachable.join(", ")
        )));
    }
    Ok(unreachable)
}

/// An empty `cluster-restart` plan of `cluster` headed `title`.
pub(super) fn restart_plan(
    engine: &Engine,
    cluster: &str,
    from: Option<&str>,
    force_quorum: bool,
    title: String,
) -> RunbookPlan {
    RunbookPlan::new(
        Runbook::ClusterRestart {
            cluster: cluster.to_string(),
            from: from.map(str::to_string),
            force_quorum,
        },
        engine.opts.inventory.display().to_string(),
        engine.inv.digest.clone(),
        title,
    )
}

/// Runs `script(task)` on every member of `tasks` at once, over `conns`: each member's
/// standard output, or a refusal naming it (its connection failed, or the script exited
/// non-zero).
pub(super) async fn read_all<T>(
    tasks: &HashMap<String, T>,
    conns: &HashMap<String, Arc<SshHost>>,
    script: fn(&T) -> String,
) -> Vec<Result<(String, String), Error>> {
    futures::future::join_all(tasks.iter().map(|(name, t)| async move {
        let o = conns[name]
            .run(&script(t))
            .await
            .map_err(|e| Error::Refused(format!("{name}: {e}")))?;
        if o.code != 0 {
            return Err(Error::Refused(format!(
                "{name}: reading it failed (exit {}): {}",
                o.code,
                o.stderr.trim()
            )));
        }
        Ok((name.clone(), o.stdout))
    }))
    .await
}

/// One line a synchronous cluster's member prints for `query` (a `STATE_LINE` of
/// `crate::sql::galera` or `crate::sql::group`: its fields tab-separated), trimmed; ""
/// when its server does not answer or the host cannot be run on. Read by the rolling
/// restart between members and by a Galera restore's plan.
pub(crate) async fn state_line(
    conn: &dyn crate::transport::Transport,
    client: &str,
    query: &str,
) -> String {
    let cmd = format!(
        "{client} -N -B -e {} 2>/dev/null || true\n",
        crate::tasks::q(query)
    );
    conn.run(&cmd)
        .await
        .map(|o| o.stdout.trim().to_string())
        .unwrap_or_default()
}
