//! `dbfleet cluster-restart [--cluster C] [--from MEMBER]`: a Galera cluster or a
//! replication group whose members all stopped, started again from its most advanced
//! member (`crate::runbooks::cluster_restart` and `group_restart` plan it; the runbook
//! executor runs it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::runbook::{Mode, decide};
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::EventSink;
use crate::inventory::Role;
use crate::report::{Reporter, Style};
use crate::runbooks::Cluster;
use crate::runbooks::execute::{NoConverge, execute};

/// Plans the whole-cluster restart of `cluster` (the inventory's only synchronous cluster
/// when None), presents it as `mode` says, runs it, and prints how each member came back.
///
/// Errors: [`Error::Usage`] when the inventory has no synchronous cluster or several and none
/// is named; the plan's ([`crate::runbooks::cluster_restart::plan`]); [`Error::Stale`];
/// [`Error::Cancelled`]; a failed step's error.
pub fn run(
    opts: &Options,
    cluster: Option<&str>,
    from: Option<&str>,
    force_quorum: bool,
    mode: Mode,
    style: Style,
) -> Result<Exit, Error> {
    let t0 = Instant::now();
    let engine = Engine::load(opts.clone())?;
    let mut clusters: Vec<String> = engine
        .inv
        .hosts
        .iter()
        .filter(|h| h.has(Role::Member))
        .map(|h| h.cluster.clone())
        .collect();
    clusters.sort();
    clusters.dedup();
    let cluster = match (cluster, clusters.as_slice()) {
        (Some(c), _) => c.to_string(),
        (None, [one]) => one.clone(),
        (None, []) => {
            return Err(Error::Usage(
                "the inventory has no Galera cluster or replication group (`replication: galera` or `group`)".into(),
            ));
        }
        (None, _) => {
            return Err(Error::Usage(
                "the inventory has several synchronous clusters: pass --cluster NAME".into(),
            ));
        }
    };
    let members: Vec<String> = engine
        .inv
        .cluster_databases(&cluster)
        .map(|h| h.name.clone())
        .collect();
    let first = members
        .first()
        .cloned()
        .ok_or_else(|| Error::Usage(format!("no cluster {cluster} in the inventory")))?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = crate::engine::runtime()?;
    rt.block_on(async {
        // A member that does not answer is left out here; the plan refuses without it
        // unless --from names the member to start from. All at once: after a power loss
        // or a lost quorum the members down each take the connect timeout.
        let conns: HashMap<String, Arc<_>> = engine
            .connect_all(&members)
            .await
            .into_iter()
            .filter_map(|(name, c)| c.ok().map(|c| (name, Arc::new(c))))
            .collect();
        let c = Cluster::over(&engine, &first, conns.clone(), events);
        let result = async {
            let plan = crate::runbooks::cluster_restart::plan(
                &engine,
                &cluster,
                from,
                force_quorum,
                &conns,
            )
            .await?;
            reporter.finish();
            if !decide(&plan, &mode, "Restart the cluster?")? {
                return Ok(None);
            }
            // A group's steps hold the recovery password as a placeholder.
            let secret = crate::runbooks::group_restart::secret(&engine, &cluster);
            let out = execute(&c, &plan, secret.as_deref(), &NoConverge, t0).await?;
            Ok::<_, Error>(Some(out))
        }
        .await;
        drop(conns);
        c.close().await;
        reporter.finish();
        let Some(out) = result? else {
            return Ok(Exit::Ok);
        };
        let mut said = String::new();
        for (host, o) in out.outputs {
            if let Some(line) = o.lines().last() {
                said.push_str(&format!("{host}: {line}\n"));
            }
        }
        said.push_str(&format!(
            "Restarted cluster {cluster} in {} s.\n",
            t0.elapsed().as_secs()
        ));
        crate::report::print(&said);
        Ok(Exit::Ok)
    })
}
