//! Runs a runbook's plan ([`crate::plan::runbook::RunbookPlan`]) step by step over a
//! cluster's connections: each step's statements, scripts and proxy commands are the
//! plan's own text, so what was shown is what runs. A step on several hosts runs on all of
//! them at once (stopping every replica's IO thread is on the failover's critical path),
//! and the steps of a group ([`Step::with_previous`]) start together.
//!
//! A required step that fails ends the runbook: the error says which steps ran before it
//! (a failed script step may itself have done part of its work). A step that is not
//! required records its failure and the runbook goes on; the caller gets the failures in
//! [`Outcome::problems`].

use std::time::Instant;

use futures::future::BoxFuture;

use super::Cluster;
use super::topology::{DbState, proxy_runtime, read_state, sql};
use crate::error::Error;
use crate::plan::runbook::{Action, RunbookPlan, SECRET_PLACEHOLDER, Step};
use crate::sql::quote;

/// What an executed runbook leaves for its command to report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Each script step's standard output, by host, in run order.
    pub outputs: Vec<(String, String)>,
    /// Failures of steps that were not required.
    pub problems: Vec<String>,
}

/// Applying the inventory to some hosts (`apply --limit`), which a runbook's
/// [`Action::Converge`] step needs and the command layer provides (it owns the printing of
/// the nested plan).
pub trait Converge: Sync {
    /// Plans and applies the inventory on `hosts`; `seed_from_backup` seeds replication
    /// from the cluster's physical backups.
    ///
    /// Errors: the plan's or the apply's.
    fn converge<'a>(
        &'a self,
        hosts: &'a [String],
        seed_from_backup: bool,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// A runbook without [`Action::Converge`] steps.
pub struct NoConverge;

impl Converge for NoConverge {
    fn converge<'a>(&'a self, _: &'a [String], _: bool) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async {
            Err(Error::Refused(
                "this runbook cannot apply the inventory".into(),
            ))
        })
    }
}

/// Runs `plan`'s steps in order on `c`'s connections. `secret` fills
/// [`SECRET_PLACEHOLDER`] (the replication password); `t0` is the command's start, which
/// each reported step is timed from.
///
/// Errors: the first failing required step's, as [`Error::Refused`] naming the step and
/// what ran before it.
pub async fn execute(
    c: &Cluster<'_>,
    plan: &RunbookPlan,
    secret: Option<&str>,
    converge: &dyn Converge,
    t0: Instant,
) -> Result<Outcome, Error> {
    let mut out = Outcome::default();
    // The replicas' states after the last drain, for the choice that follows it.
    let mut drained: Vec<(String, DbState)> = Vec::new();
    let mut changed = false;
    for group in plan.groups() {
        // Each step of a group runs at once with the others on its own scratch (a choice
        // reads the last drain's states from before its group); the
        // results are taken in plan order, so the first failing required step is reported
        // as if the group had run one step at a time.
        let before = &drained;
        let runs = plan.steps[group.clone()].iter().map(|step| async move {
            let mut mine = Outcome::default();
            let mut seen = before.clone();
            let r = run_step(c, step, secret, converge, &mut seen, &mut mine).await;
            (r, mine, seen, t0.elapsed().as_millis())
        });
        let results = futures::future::join_all(runs).await;
        let mut failed = None;
        for (i, (r, mine, seen, ms)) in group.clone().zip(results) {
            let step = &plan.steps[i];
            out.outputs.extend(mine.outputs);
            out.problems.extend(mine.problems);
            if matches!(step.action, Action::Drain { .. }) {
                drained = seen;
            }
            match r {
                Ok(()) => {
                    for h in &step.hosts {
                        c.step(h, format!("{} (+{ms} ms)", first_line(&step.summary)));
                    }
                }
                Err(e) if step.required => {
                    failed.get_or_insert((i, e));
                }
                Err(e) => out
                    .problems
                    .push(c.engine.redactor.redact(&format!("step {}: {e}", i + 1))),
            }
        }
        if let Some((i, e)) = failed {
            let with: Vec<String> = group
                .clone()
                .filter(|j| *j != i)
                .map(|j| (j + 1).to_string())
                .collect();
            let so_far = match (changed, with.is_empty()) {
                // A script step may have done part of its work before it failed (a
                // restore that loaded its dump, then failed to replay): only the other
                // steps are known not to have run.
                (false, true) => {
                    "no other step ran (this one may have done part of its work: above)".to_string()
                }
                (true, true) => format!(
                    "steps 1–{i} of {} ran (above), the rest did not",
                    plan.steps.len()
                ),
                // The group's other steps ran at once with it, whatever they changed.
                (false, false) => format!(
                    "step(s) {} ran at once with it (above), the rest did not",
                    with.join(", ")
                ),
                (true, false) => format!(
                    "steps 1–{} of {} ran (above), and step(s) {} at once with it; the rest did not",
                    group.start,
                    plan.steps.len(),
                    with.join(", ")
                ),
            };
            return Err(Error::Refused(format!(
                "step {} ({}): {}; {so_far}",
                i + 1,
                first_line(&plan.steps[i].summary),
                c.engine.redactor.redact(&e)
            )));
        }
        changed |= group.clone().any(|j| changes(&plan.steps[j].action));
    }
    Ok(out)
}

/// Starts `script` as the detached run `kind` on `host` (`None`: attaches to the run in
/// progress), waits for it with progress events, and returns its standard output. The
/// run's folder is removed once its end is reported, failed or not: the error carries the
/// end of its stderr, and the next command plans afresh.
///
/// Errors, as text: a run already there when starting one, none when attaching, another
/// `dbfleet` driving it, a run asked for something else than `request`, its failure, or
/// the host lost (the run goes on: the message says how to attach again).
async fn detached(
    c: &Cluster<'_>,
    host: &dyn crate::transport::Transport,
    kind: crate::plan::runbook::DetachedRun,
    request: &str,
    script: Option<&str>,
) -> Result<String, String> {
    use super::detached::{Detached, Run, State};
    let name = host.name().to_string();
    // Named by its kind in progress lines and errors ("the restore run on db1 failed …"):
    // a step's summary is several lines long.
    let what = format!("the {} run", kind.name());
    let run = Run::new(host, kind.name(), what, kind.target(), None);
    let goes_on = |e: &str| {
        format!("{e}; the run goes on on {name}: the same command started again attaches to it")
    };
    let state = run.state(false).await.map_err(|e| goes_on(&e))?;
    match (script, &state) {
        (Some(script), State::None) => run
            .start(script, None, &[("request", request)])
            .await
            .map_err(|e| goes_on(&e))?,
        (Some(_), _) => {
            return Err(format!(
                "a {} run is on {name} already (it started after this plan was made): plan again to attach to it",
                kind.name()
            ));
        }
        (None, State::None) => {
            return Err(format!(
                "no {} run is on {name} any more (it ended and its result was reported): plan again",
                kind.name()
            ));
        }
        (None, State::Running(seen) | State::Finished { seen, .. } | State::Lost(seen)) => {
            if let Some(theirs) = seen.kept("request")
                && theirs != request
            {
                return Err(format!(
                    "the {} run on {name} does `{theirs}`, not `{request}`: wait for it to end",
                    kind.name()
                ));
            }
            run.take_over().await.map_err(|e| match e {
                Detached::Driven { client_age_s } => format!(
                    "another dbfleet drives the {} run on {name} (it renewed its lease {client_age_s} s ago): refused, nothing started; wait for it to end",
                    kind.name()
                ),
                Detached::Disconnected(e) | Detached::Failed(e) => goes_on(&e),
            })?;
        }
    }
    match run.wait(c.events.as_ref()).await {
        Ok(_) => {
            let output = run.output().await.map_err(|e| goes_on(&e))?;
            run.clear().await.map_err(|e| {
                format!(
                    "the {} run on {name} succeeded, but its folder could not be removed: {e}",
                    kind.name()
                )
            })?;
            Ok(output)
        }
        Err(Detached::Failed(e)) => {
            let _ = run.clear().await;
            Err(e)
        }
        Err(Detached::Disconnected(e)) => Err(goes_on(&e)),
        Err(Detached::Driven { client_age_s }) => Err(goes_on(&format!(
            "another dbfleet renewed the run's lease {client_age_s} s ago"
        ))),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Whether `a` changes a host (the others only read or wait).
fn changes(a: &Action) -> bool {
    !matches!(
        a,
        Action::Drain { .. } | Action::Choose { .. } | Action::CheckContained { .. }
    )
}

/// `statements` (or a script) with the placeholder's quoted form replaced by the quoted
/// `secret`.
fn fill(statements: &str, secret: Option<&str>) -> Result<String, String> {
    let token = quote(SECRET_PLACEHOLDER);
    if !statements.contains(&token) {
        return Ok(statements.to_string());
    }
    let s = secret.ok_or("the statements need the replication password, which is not known")?;
    Ok(statements.replace(&token, &quote(s)))
}

async fn run_step(
    c: &Cluster<'_>,
    step: &Step,
    secret: Option<&str>,
    converge: &dyn Converge,
    drained: &mut Vec<(String, DbState)>,
    out: &mut Outcome,
) -> Result<(), String> {
    let d = c.dialect;
    let what = first_line(&step.summary);
    match &step.action {
        Action::Sql { statements } => {
            let text = fill(statements, secret)?;
            each(c, &step.hosts, |conn| {
                let text = text.clone();
                async move { sql(conn, d, what, &text).await.map(|_| ()) }
            })
            .await
        }
        // On every host at once (a failover's replicas stop together); the outputs in the
        // step's host order.
        Action::Script { script } => {
            let script = fill(script, secret)?;
            let text = format!("bash <<'DBFLEET_STEP'\n{script}DBFLEET_STEP\n");
            let runs = step.hosts.iter().map(|h| {
                let text = &text;
                async move {
                    let conn = c
                        .conns
                        .get(h)
                        .ok_or_else(|| format!("{h} is not reachable over SSH"))?;
                    let o = conn
                        .run(text)
                        .await
                        .map_err(|e| format!("{what} on {h}: {e}"))?;
                    if o.code != 0 {
                        return Err(format!(
                            "{what} on {h} failed (exit {}): {}",
                            o.code,
                            super::stderr_tail(&o.stderr)
                        ));
                    }
                    Ok((h.clone(), o.stdout))
                }
            });
            for r in futures::future::join_all(runs).await {
                out.outputs.push(r?);
            }
            Ok(())
        }
        Action::Detached {
            run,
            request,
            script,
        } => {
            for h in &step.hosts {
                let conn = c
                    .conns
                    .get(h)
                    .ok_or_else(|| format!("{h} is not reachable over SSH"))?;
                let output = detached(c, conn.as_ref(), *run, request, script.as_deref()).await?;
                out.outputs.push((h.clone(), output));
            }
            Ok(())
        }
        Action::ProxyRuntime {
            commands,
            primary_address,
        } => {
            each(c, &step.hosts, |conn| async move {
                proxy_runtime(conn, commands, primary_address.as_deref(), what).await
            })
            .await
        }
        Action::Fence => {
            each(c, &step.hosts, |conn| {
                super::topology::fence_server(conn, d)
            })
            .await
        }
        Action::Drain { timeout_s } => {
            *drained = super::failover::drain(c, &step.hosts, *timeout_s)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        Action::Choose { candidate } => super::failover::pick(c, drained, Some(candidate))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Action::CheckContained { source } => {
            for h in &step.hosts {
                let mine = state_of(c, h).await?;
                let theirs = state_of(c, source).await?;
                super::failover::contained(h, &mine, source, &theirs)?;
            }
            Ok(())
        }
        Action::CatchUp { source, timeout_s } => {
            let src = c
                .conns
                .get(source)
                .ok_or_else(|| format!("{source} is not reachable over SSH"))?;
            let pos = sql(
                src.as_ref(),
                d,
                "reading the position",
                d.current_position(),
            )
            .await?;
            let pos = pos.trim().to_string();
            for h in &step.hosts {
                let conn = c
                    .conns
                    .get(h)
                    .ok_or_else(|| format!("{h} is not reachable over SSH"))?;
                let waited = sql(
                    conn.as_ref(),
                    d,
                    "catching up",
                    &d.wait_for_position(&pos, *timeout_s),
                )
                .await?;
                if waited.trim() != "0" {
                    return Err(format!(
                        "{h} replicates from {source} but did not catch up with {pos} within {timeout_s} s"
                    ));
                }
            }
            Ok(())
        }
        Action::RestoreFromBackups { backup, binlog } => {
            let job = |name: &str| c.engine.inv.backups.iter().find(|j| j.name == name);
            let backup = job(backup).ok_or_else(|| format!("no backup job {backup}"))?;
            let binlog = binlog.as_deref().and_then(job);
            for h in &step.hosts {
                let conn = c.conn(h)?;
                let o = super::rebuild::restore_primary(conn, c.dialect, backup, binlog)
                    .await
                    .map_err(|e| e.to_string())?;
                out.outputs.push((h.clone(), o));
            }
            Ok(())
        }
        Action::Converge { seed_from_backup } => converge
            .converge(&step.hosts, *seed_from_backup)
            .await
            .map_err(|e| e.to_string()),
    }
}

async fn state_of(c: &Cluster<'_>, host: &str) -> Result<DbState, String> {
    let conn = c
        .conns
        .get(host)
        .ok_or_else(|| format!("{host} is not reachable over SSH"))?;
    read_state(conn.as_ref(), c.dialect).await
}

/// Runs `f` on every host of `hosts` at once; the first failure (in host order) is the
/// result.
async fn each<'c, F, Fut>(c: &'c Cluster<'_>, hosts: &[String], f: F) -> Result<(), String>
where
    F: Fn(&'c dyn crate::transport::Transport) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut futs = Vec::new();
    for h in hosts {
        let conn = c
            .conns
            .get(h)
            .ok_or_else(|| format!("{h} is not reachable over SSH"))?;
        futs.push(f(conn.as_ref()));
    }
    futures::future::join_all(futs)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, String>>()
        .map(|_| ())
}

/// Runs a planned rejoin of `host` under `source`; `t0` dates its steps.
///
/// Errors: a failed step's; [`Error::Refused`] when `host` replicates again but is not
/// back among the proxies' readers.
pub async fn run_rejoin(
    c: &Cluster<'_>,
    r: &super::failover::Rejoin,
    host: &str,
    source: &str,
    t0: Instant,
) -> Result<(), Error> {
    let out = execute(c, &r.plan, Some(r.secret.as_str()), &NoConverge, t0).await?;
    if !out.problems.is_empty() {
        return Err(Error::Refused(format!(
            "{host} rejoined as a replica of {source}, but is not back among the readers: {}",
            out.problems.join("; ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripts_placeholder_is_filled_with_the_quoted_secret() {
        let g = crate::tasks::group::GroupRes {
            cluster: "lab".into(),
            group_name: "8b0c5a4e-1d2f-8a3b-9c4d-5e6f7a8b9c0d".into(),
            first: true,
            peers: vec![("db2".into(), "10.0.0.12".into())],
            recovery_user: "dbfleet_repl".into(),
            recovery_password: "pw'x".into(),
            service: "mysql".into(),
            pidfile: "/run/mysqld/mysqld.pid".into(),
            client: "mysql".into(),
        };
        let want = crate::sql::group::recovery_credentials("dbfleet_repl", "pw'x");
        let filled = fill(&g.for_plan().restart_bootstrap_script(), Some("pw'x")).unwrap();
        assert!(filled.contains(&want), "{filled}");
        assert!(!filled.contains(SECRET_PLACEHOLDER));
        // Without the secret the step fails rather than send the placeholder.
        assert!(fill(&g.for_plan().apply_script(), None).is_err());
    }
}
