//! Unplanned failover (the primary is dead) and rejoin (the old primary comes back).
//!
//! Failover, after DESIGN.md and the failure modes peers are known for:
//! 1. refuse inside the anti-flap window (`failover_anti_flap_seconds`, a lock file with
//!    the time and reason in the inventory's `.dbfleet/`), unless `--force`;
//! 2. the primary must be dead from here (no SSH, or SSH but no server) AND from every
//!    reachable replica (its database port does not answer from them): a primary that a
//!    replica still reaches is alive or partitioned from us only, and promoting then
//!    makes two writers (GitHub's 2018-10-21 incident);
//!    A primary that a proxy still reaches is not dead to the application: failover refuses
//!    unless semi-sync runs without fallback (`semi_sync_timeout_ms: never`), where every
//!    acknowledged write is on a replica, and then fences it on those proxies first;
//! 3. fence it: every proxy's writer and reader lose it (runtime API); if its host answers SSH, the
//!    server is stopped so it cannot come back writable by itself (it would start
//!    read-only anyway: `mysqld.cnf`);
//! 4. drain: each replica applies what it received (`Gtid_IO_Pos` = `gtid_slave_pos`), not
//!    Seconds_Behind_Master, which says nothing once the source is gone;
//! 5. pick the most advanced replica that may be promoted (`candidate: false` never is);
//!    refuse when it has errant transactions, or when a replica that may not be promoted
//!    is further ahead (orchestrator#1260: never promote a lagging replica);
//! 6. promote it, repoint the others to it, move the proxies' writer;
//! 7. record the topology in the inventory (see `crate::inventory::edit`) and the lock.
//!
//! Rejoin: the old primary's `gtid_binlog_state` is compared with the new primary's. Any
//! transaction it has that the new primary never saw is named, and rejoin refuses (rebuild
//! the host); otherwise it replicates from the new primary with MASTER_DEMOTE_TO_SLAVE=1
//! (orchestrator#1146's error 1236 is what repointing it without that option gets).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Cluster;
use super::topology::{DbState, fence_writer, move_writer, sql};
use crate::engine::Engine;
use crate::error::Error;
use crate::inventory::Role;
use crate::report::{self, Reporter};
use crate::sql::gtid::{by_domain, name_ranges};
use crate::transport::SshHost;

/// Seconds a replica may take to apply what it received before the failover gives up.
pub const DRAIN_TIMEOUT_S: u64 = 60;

/// The anti-flap record: the last failover per cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub cluster: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

pub(crate) fn lock_path(engine: &Engine) -> PathBuf {
    engine.inv.base_dir().join(".dbfleet").join("failover.json")
}

pub(crate) fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn read_records(engine: &Engine) -> Vec<FailoverRecord> {
    std::fs::read(lock_path(engine))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// What the operator and the replicas see of the dead primary.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub primary: String,
    /// "no SSH (…)" or "SSH answers, the server does not".
    pub from_here: String,
    /// (replica, its IO thread state, whether the primary's port answers from it).
    pub from_replicas: Vec<(String, String, bool)>,
    /// Proxies from which the primary's database port still answers: the application may
    /// still write to it through them (issue 10, case 1).
    pub reached_by_proxies: Vec<String>,
}

/// Whether `primary` runs semi-sync with no fallback to async (`semi_sync: true` and
/// `semi_sync_timeout_ms: never`): then every write it acknowledged is on a replica, even
/// while it is cut off from them (lossless semi-sync, AFTER_SYNC; MariaDB KB
/// "Semisynchronous Replication"). With any timeout it may have fallen back to async and
/// acknowledged writes that only it has.
pub fn lossless_semi_sync(engine: &Engine, primary: &str) -> bool {
    engine.inv.host(primary).is_some_and(|h| {
        h.vars.get("semi_sync").and_then(|v| v.as_bool()) == Some(true)
            && h.vars.get("semi_sync_timeout_ms").and_then(|v| v.as_str()) == Some("never")
    })
}

pub(crate) fn cluster_of(engine: &Engine, want: Option<&str>) -> Result<(String, String), Error> {
    let mut clusters: Vec<(String, String)> = engine
        .inv
        .hosts
        .iter()
        .filter(|h| h.has(Role::Primary))
        .map(|h| (h.cluster.clone(), h.name.clone()))
        .collect();
    if let Some(w) = want {
        clusters.retain(|(c, _)| c == w);
    }
    match clusters.len() {
        1 => Ok(clusters.remove(0)),
        0 => Err(Error::Refused(format!(
            "no cluster {} with a primary in the inventory",
            want.unwrap_or("")
        ))),
        _ => Err(Error::Usage(
            "the inventory has several clusters: pass --cluster NAME".into(),
        )),
    }
}

/// Checks that `primary` is dead from here and from the replicas.
///
/// Errors: [`Error::Refused`] when it is alive from anywhere, or no replica answers.
pub async fn confirm_dead(
    c: &Cluster<'_>,
    primary: &str,
) -> Result<(Verdict, Option<SshHost>), Error> {
    let inv = &c.engine.inv;
    let p = inv
        .host(primary)
        .ok_or_else(|| Error::UnknownHost(primary.into()))?;
    // From here and from the replicas at once: a dead host costs one timeout, not two.
    // One second each is enough on a LAN; a slow but live primary is still caught by the
    // replicas' check, which must agree before anything happens.
    let here = async {
        match SshHost::connect(p, inv.host_key_policy, Duration::from_secs(1)).await {
            Err(e) => (format!("no SSH ({e})"), None, false),
            Ok(conn) => {
                let s = super::topology::read_state(&conn, c.dialect)
                    .await
                    .unwrap_or_default();
                (
                    "SSH answers, the server does not".to_string(),
                    Some(conn),
                    s.up,
                )
            }
        }
    };
    let ((from_here, conn, alive), (there, proxies)) = tokio::join!(here, observe(c, primary));
    let verdict = judge(c, primary, from_here, alive, there, proxies)?;
    Ok((verdict, conn))
}

/// What the replicas and the proxies see of `primary`, all at once: for each replica that
/// answers, (name, its IO thread, whether the primary's database port answers from it);
/// for each proxy, whether the port answers from it (a proxy without a connection: no).
async fn observe(
    c: &Cluster<'_>,
    primary: &str,
) -> (Vec<(String, String, bool)>, Vec<(String, bool)>) {
    let (address, port) = c
        .engine
        .inv
        .host(primary)
        .map(|p| {
            let port = p.vars.get("port").and_then(|v| v.as_u64()).unwrap_or(3306);
            (p.address.to_string(), port)
        })
        .unwrap_or_default();
    // Whether the primary's database port answers, from the host the script runs on.
    let port_probe = format!(
        "if timeout 1 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>/dev/null; then echo port=open; else echo port=closed; fi\n"
    );
    let probe = format!("{port_probe}{}", super::topology::state_probe(c.dialect));
    let replicas: Vec<&String> = c.members.iter().filter(|m| *m != primary).collect();
    // The proxies too: a primary cut off from us and its replicas but not from a proxy
    // still takes the application's writes (issue 10, case 1).
    let proxy_futs = c.proxies.iter().map(|x| {
        let port_probe = port_probe.clone();
        async move {
            let open = match c.conns.get(x) {
                Some(conn) => conn
                    .run(&port_probe)
                    .await
                    .ok()
                    .is_some_and(|o| o.stdout.lines().any(|l| l == "port=open")),
                None => false,
            };
            (x.clone(), open)
        }
    });
    let futs = replicas.iter().map(|r| {
        let probe = probe.clone();
        async move {
            let conn = c.conns.get(*r)?;
            let out = conn.run(&probe).await.ok()?;
            let open = out.stdout.lines().any(|l| l == "port=open");
            let s = super::topology::parse_state(&out.stdout, c.dialect);
            let io = if s.replicating() {
                format!("IO thread {}", s.status().io_running)
            } else {
                "not replicating".into()
            };
            Some(((*r).clone(), io, open))
        }
    });
    let (there, proxies) = tokio::join!(
        futures::future::join_all(futs),
        futures::future::join_all(proxy_futs)
    );
    (there.into_iter().flatten().collect(), proxies)
}

/// The decision of [`confirm_dead`] from what was seen: `alive` is whether the server
/// answered from here.
///
/// Errors: [`Error::Refused`] when the primary answers from here or from a replica, when no
/// replica answers, or when a proxy still reaches it and semi-sync may have fallen back to
/// async ([`lossless_semi_sync`]).
fn judge(
    c: &Cluster<'_>,
    primary: &str,
    from_here: String,
    alive: bool,
    from_replicas: Vec<(String, String, bool)>,
    proxies: Vec<(String, bool)>,
) -> Result<Verdict, Error> {
    if alive {
        return Err(Error::Refused(format!(
            "{primary} is alive: its server answers over SSH; use `dbfleet switchover` to move the primary on purpose"
        )));
    }
    if from_replicas.is_empty() {
        return Err(Error::Refused(format!(
            "no replica of {primary} answers: nothing to promote"
        )));
    }
    if let Some((r, _, _)) = from_replicas.iter().find(|(_, _, open)| *open) {
        return Err(Error::Refused(format!(
            "{primary}'s database port answers from {r}: the primary is alive, or cut off from this machine only; refusing to make a second writer"
        )));
    }
    let reached_by_proxies: Vec<String> = proxies
        .into_iter()
        .filter(|(_, open)| *open)
        .map(|(x, _)| x)
        .collect();
    if !reached_by_proxies.is_empty() && !lossless_semi_sync(c.engine, primary) {
        return Err(Error::Refused(format!(
            "{primary}'s database port answers from {}: the application may still write to it, and without lossless semi-sync (semi_sync: true with semi_sync_timeout_ms: never) it may hold acknowledged writes that no replica has. Refusing; nothing was changed. Heal the partition (its replicas catch up), or stop its server, then fail over",
            reached_by_proxies.join(", ")
        )));
    }
    Ok(Verdict {
        primary: primary.into(),
        from_here,
        from_replicas,
        reached_by_proxies,
    })
}

/// Waits until every replica in `names` applied what it received; returns their states.
///
/// Errors: [`Error::Refused`] naming a replica whose SQL thread stopped or that did not
/// drain within [`DRAIN_TIMEOUT_S`].
pub async fn drain(c: &Cluster<'_>, names: &[String]) -> Result<Vec<(String, DbState)>, Error> {
    let deadline = Instant::now() + Duration::from_secs(DRAIN_TIMEOUT_S);
    loop {
        // Every replica read at once: this loop is on the failover's critical path.
        let reads = names.iter().map(|n| async move {
            let conn = c
                .conns
                .get(n)
                .ok_or_else(|| Error::Refused(format!("{n} is not reachable over SSH")))?;
            let s = super::topology::read_state(conn.as_ref(), c.dialect)
                .await
                .map_err(Error::Refused)?;
            Ok::<_, Error>((n.clone(), s))
        });
        let mut states = Vec::new();
        let mut waiting = Vec::new();
        for r in futures::future::join_all(reads).await {
            let (n, s) = r?;
            if !s.replicating() {
                return Err(Error::Refused(format!(
                    "{n} does not replicate: it is not a replica to promote"
                )));
            }
            if s.status().sql_running != "Yes" && !s.relay_drained() {
                return Err(Error::Refused(format!(
                    "{n}'s SQL thread is stopped with relay log left to apply: {}",
                    s.status().last_sql_error
                )));
            }
            if !s.relay_drained() {
                waiting.push(n.clone());
            }
            states.push((n, s));
        }
        if waiting.is_empty() {
            return Ok(states);
        }
        if Instant::now() > deadline {
            return Err(Error::Refused(format!(
                "{} did not apply its relay log within {DRAIN_TIMEOUT_S} s",
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Picks the candidate among drained replicas.
///
/// Errors: [`Error::Refused`] when the most advanced replica may not be promoted, has
/// errant transactions, or `wanted` is behind another replica.
pub fn pick(
    c: &Cluster<'_>,
    states: &[(String, DbState)],
    wanted: Option<&str>,
) -> Result<String, Error> {
    let total = |s: &DbState| by_domain(&s.slave_pos).values().sum::<u64>();
    let best = states.iter().map(|(_, s)| total(s)).max().unwrap_or(0);
    let eligible: Vec<&(String, DbState)> = states
        .iter()
        .filter(|(n, _)| c.candidates.contains(n))
        .collect();
    let chosen = match wanted {
        Some(w) => eligible
            .iter()
            .find(|(n, _)| n == w)
            .copied()
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{w} is not a reachable replica that may be promoted"
                ))
            })?,
        None => eligible
            .iter()
            .max_by_key(|(_, s)| total(s))
            .copied()
            .ok_or_else(|| {
                Error::Refused(
                    "no replica may be promoted (all are `candidate: false` or unreachable)".into(),
                )
            })?,
    };
    if total(&chosen.1) < best {
        let ahead: Vec<&str> = states
            .iter()
            .filter(|(_, s)| total(s) > total(&chosen.1))
            .map(|(n, _)| n.as_str())
            .collect();
        return Err(Error::Refused(format!(
            "{} is behind {}: promoting it would lose transactions the others have",
            chosen.0,
            ahead.join(", ")
        )));
    }
    let others: Vec<&DbState> = states
        .iter()
        .filter(|(n, _)| *n != chosen.0)
        .map(|(_, s)| s)
        .collect();
    let errant = chosen.1.errant_against(&others);
    if !errant.is_empty() && !others.is_empty() {
        return Err(Error::Refused(format!(
            "{} has errant transactions no other server has: {}; refusing to promote it (rebuild it, or pass --to another replica)",
            chosen.0,
            name_ranges(&errant)
        )));
    }
    Ok(chosen.0.clone())
}

/// Reports a failover step with the time since the command started (the figure the
/// RTO and the drill care about).
pub(crate) fn step(c: &Cluster<'_>, t0: Instant, host: &str, text: String) {
    c.step(host, format!("{text} (+{} ms)", t0.elapsed().as_millis()));
}

/// What the operator asked of a failover (`dbfleet failover`'s options).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The cluster whose primary died (None: the fleet's only cluster).
    pub cluster: Option<String>,
    /// Promote this replica instead of the most advanced one (it must be as advanced).
    pub to: Option<String>,
    /// Fail over even inside the anti-flap window (`failover_anti_flap_seconds`).
    pub force: bool,
    /// Show what would happen and change nothing.
    pub dry_run: bool,
    /// Go ahead without asking.
    pub auto_approve: bool,
}

/// The failover proper: `Some((new primary, inventory text before, after, time to the
/// new writer))`, or `None` for a dry run.
pub(crate) async fn failover(
    c: &Cluster<'_>,
    engine: &Engine,
    old: &str,
    a: &Request,
    t0: Instant,
    reporter: &Reporter,
) -> Result<Option<(String, String, String, Duration)>, Error> {
    let d = c.dialect;
    let (verdict, old_conn) = confirm_dead(c, old).await?;
    step(
        c,
        t0,
        old,
        format!(
            "dead: {} from here; from the replicas: {}",
            verdict.from_here,
            verdict
                .from_replicas
                .iter()
                .map(|(r, io, _)| format!("{r} ({io}, port closed)"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if !verdict.reached_by_proxies.is_empty() {
        step(
            c,
            t0,
            old,
            format!(
                "still reached from {}: fenced there first; lossless semi-sync without fallback, so every write it acknowledged is on a replica",
                verdict.reached_by_proxies.join(", ")
            ),
        );
    }
    let replicas: Vec<String> = verdict
        .from_replicas
        .iter()
        .map(|(r, _, _)| r.clone())
        .collect();
    if a.dry_run {
        let states = drain(c, &replicas).await?;
        let new = pick(c, &states, a.to.as_deref())?;
        reporter.finish();
        report::print(&format!(
            "Dry run: would fence {old} on the proxies, promote {new}, repoint {} to it. Nothing was changed.\n",
            replicas
                .iter()
                .filter(|r| **r != new)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(None);
    }
    if !a.auto_approve {
        reporter.finish();
        report::print(&format!(
            "About to fail over: fence {old}, promote the most advanced eligible replica of {}.\n",
            replicas.join(", ")
        ));
        if !crate::report::confirm("Fail over now?")? {
            return Err(Error::Cancelled);
        }
    }
    // Fence first: from here on nothing reaches the old primary through the proxies.
    for p in &c.proxies {
        match c.conn(p) {
            Ok(conn) => match fence_writer(conn, old).await {
                Ok(()) => step(c, t0, p, format!("writer: {old} removed (fenced)")),
                Err(e) => {
                    return Err(Error::Refused(format!(
                        "fencing {old}: {e}; nothing else was changed"
                    )));
                }
            },
            Err(e) => {
                return Err(Error::Refused(format!(
                    "fencing {old}: {e}; nothing else was changed"
                )));
            }
        }
    }
    if let Some(conn) = &old_conn {
        let _ = conn
            .run(&format!(
                "service {} stop >/dev/null 2>&1; true",
                d.service()
            ))
            .await;
        step(c, t0, old, "server stopped (fenced)".into());
    }
    // The replicas' IO threads keep reconnecting to the dead primary, and stopping one that
    // is blocked connecting takes about two seconds (seen in the lab): stop them all at
    // once now, rather than one after the other in the promotion and the repoints.
    let stops = replicas
        .iter()
        .filter_map(|r| c.conns.get(r))
        .map(|conn| async move {
            sql(
                conn.as_ref(),
                d,
                "stopping the IO thread",
                d.stop_replica_io(),
            )
            .await
        });
    for r in futures::future::join_all(stops).await {
        r.map_err(|e| Error::Refused(format!("{e}; {old} is fenced")))?;
    }
    step(c, t0, old, "replicas' IO threads stopped".into());
    let states = drain(c, &replicas).await?;
    step(c, t0, old, "every replica applied what it received".into());
    let new = pick(c, &states, a.to.as_deref())?;
    let position = states
        .iter()
        .find(|(n, _)| *n == new)
        .map(|(_, s)| {
            s.slave_pos
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    // The new topology: the inventory edited, and its replication tasks (their sources).
    let path = &engine.opts.inventory;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let edited = crate::inventory::edit::promote(&path.display().to_string(), &text, &new, old)?;
    let mut opts = engine.opts.clone();
    opts.inventory_text = Some(edited.clone());
    opts.limit = None;
    let next = Engine::load(opts)?;
    let semi = next
        .inv
        .host(&new)
        .and_then(|h| h.vars.get("semi_sync"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let promote = super::switchover::promote_sql(d, semi);
    // Out of every reader backend before it is writable: never a writable reader.
    for p in &c.proxies {
        let conn = c.conn(p).map_err(Error::Refused)?;
        super::topology::reader_maint(conn, &new, true)
            .await
            .map_err(|e| {
                Error::Refused(format!(
                    "{e}; {old} is fenced, the replicas' IO threads are stopped"
                ))
            })?;
    }
    sql(
        c.conn(&new).map_err(Error::Refused)?,
        d,
        "promoting",
        &promote,
    )
    .await
    .map_err(|e| {
        Error::Refused(format!(
            "{e}; {old} is fenced, the replicas' IO threads are stopped"
        ))
    })?;
    step(
        c,
        t0,
        &new,
        format!("promoted at {position}: writable primary"),
    );
    let mut problems = Vec::new();
    for r in replicas.iter().filter(|r| **r != new) {
        let Some(repl) = next.graph.graph.node_indices().find_map(|n| {
            let t = &next.graph.graph[n];
            match &t.resource {
                crate::tasks::Resource::Replication(x) if t.host == *r && !t.handler => {
                    Some(x.clone())
                }
                _ => None,
            }
        }) else {
            continue;
        };
        let stmts = super::switchover::repoint_sql(d, None, &repl.source);
        match c.conn(r) {
            Ok(conn) => match sql(conn, d, "repointing", &stmts).await {
                Ok(_) => step(c, t0, r, format!("replicates from {new}")),
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e),
        }
    }
    let new_address = c.address(&new);
    for p in &c.proxies {
        match c.conn(p) {
            Ok(conn) => match move_writer(conn, &new, &new_address, None).await {
                Ok(()) => step(c, t0, p, format!("writer → {new}")),
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e),
        }
    }
    let took = t0.elapsed();
    if !problems.is_empty() {
        // The topology changed: record it anyway, and say what is left.
        reporter.finish();
        report::print(&format!(
            "{new} is the primary, but: {}\n",
            engine.redactor.redact(&problems.join("; "))
        ));
    }
    if let Some(conn) = old_conn {
        conn.close().await;
    }
    Ok(Some((new, text, edited, took)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbooks::testing::{cluster, lab_engine, replica_state};
    use crate::transport::fake::Scripted;

    fn state(out: &str) -> DbState {
        crate::runbooks::topology::parse_state(out, crate::sql::Dialect::MariaDb)
    }

    /// What a replica answers to the dead-primary probe: the port, then its state.
    fn probe_answer(port: &str, io: &str) -> String {
        format!(
            "port={port}\n{}",
            replica_state(2, io, "Yes", "0-1-10", "0-1-10")
        )
    }

    #[tokio::test]
    async fn a_primary_whose_port_answers_from_a_replica_is_not_dead() {
        let engine = lab_engine(None);
        let c = cluster(
            &engine,
            vec![
                Scripted::new("db2").answer("/dev/tcp", &[&probe_answer("closed", "Connecting")]),
                Scripted::new("db3").answer("/dev/tcp", &[&probe_answer("open", "Yes")]),
                Scripted::new("proxy1").answer("/dev/tcp", &["port=closed\n"]),
            ],
        );
        let (there, proxies) = observe(&c, "db1").await;
        let e =
            judge(&c, "db1", "no SSH".into(), false, there, proxies).expect_err("alive from db3");
        assert!(
            e.to_string()
                .contains("db1's database port answers from db3"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_primary_dead_from_every_replica_and_proxy_is_confirmed_dead() {
        let engine = lab_engine(None);
        let c = cluster(
            &engine,
            vec![
                Scripted::new("db2").answer("/dev/tcp", &[&probe_answer("closed", "Connecting")]),
                Scripted::new("db3").answer("/dev/tcp", &[&probe_answer("closed", "No")]),
                Scripted::new("proxy1").answer("/dev/tcp", &["port=closed\n"]),
            ],
        );
        let (there, proxies) = observe(&c, "db1").await;
        let v = judge(&c, "db1", "no SSH".into(), false, there, proxies).expect("dead");
        assert_eq!(
            v.from_replicas,
            vec![
                ("db2".to_string(), "IO thread Connecting".to_string(), false),
                ("db3".to_string(), "IO thread No".to_string(), false),
            ]
        );
        assert!(v.reached_by_proxies.is_empty());
        // Alive from here, or no replica answering: refused.
        let (there, proxies) = observe(&c, "db1").await;
        assert!(judge(&c, "db1", "SSH answers".into(), true, there, proxies).is_err());
        let nobody = cluster(&engine, vec![]);
        let (there, proxies) = observe(&nobody, "db1").await;
        let e = judge(&nobody, "db1", "no SSH".into(), false, there, proxies).expect_err("none");
        assert!(e.to_string().contains("no replica of db1 answers"), "{e}");
    }

    #[tokio::test]
    async fn a_proxy_still_reaching_the_primary_refuses_without_lossless_semi_sync() {
        // Issue 10, case 1: cut off from us and its replicas but not from the proxy, the
        // primary may still acknowledge writes that no replica has.
        let hosts = || {
            vec![
                Scripted::new("db2").answer("/dev/tcp", &[&probe_answer("closed", "Connecting")]),
                Scripted::new("db3").answer("/dev/tcp", &[&probe_answer("closed", "Connecting")]),
                Scripted::new("proxy1").answer("/dev/tcp", &["port=open\n"]),
            ]
        };
        let engine = lab_engine(None);
        let c = cluster(&engine, hosts());
        let (there, proxies) = observe(&c, "db1").await;
        let e = judge(&c, "db1", "no SSH".into(), false, there, proxies).expect_err("async");
        assert!(e.to_string().contains("answers from proxy1"), "{e}");
        // With semi-sync and no fallback, every acknowledged write is on a replica: go on,
        // fencing the primary on that proxy first.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/inventories/lab.yml"
        ))
        .expect("lab inventory")
        .replace(
            "    max_connections: 200\n",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: never\n",
        );
        let lossless = lab_engine(Some(text));
        let c = cluster(&lossless, hosts());
        let (there, proxies) = observe(&c, "db1").await;
        let v = judge(&c, "db1", "no SSH".into(), false, there, proxies).expect("lossless");
        assert_eq!(v.reached_by_proxies, vec!["proxy1".to_string()]);
    }

    #[tokio::test]
    async fn drain_waits_for_the_relay_log_and_refuses_a_stopped_applier() {
        let engine = lab_engine(None);
        let db2 = Scripted::new("db2").answer(
            "INNODB_TRX",
            &[
                &replica_state(2, "No", "Yes", "0-1-10", "0-1-8"),
                &replica_state(2, "No", "Yes", "0-1-10", "0-1-9"),
                &replica_state(2, "No", "Yes", "0-1-10", "0-1-10"),
            ],
        );
        let c = cluster(&engine, vec![db2]);
        let states = drain(&c, &["db2".to_string()]).await.expect("drained");
        // Its first two reads still had relay log to apply (0-1-8, 0-1-9 of 0-1-10).
        assert_eq!(states[0].1.slave_pos.iter().map(|g| g.seq).max(), Some(10));
        // An applier stopped with relay log left: promoting it would lose what it holds.
        let db3 = Scripted::new("db3").answer(
            "INNODB_TRX",
            &[&replica_state(3, "No", "No", "0-1-10", "0-1-7")],
        );
        let c = cluster(&engine, vec![db3]);
        let e = drain(&c, &["db3".to_string()]).await.expect_err("stopped");
        assert!(e.to_string().contains("db3's SQL thread is stopped"), "{e}");
        // An unreachable replica cannot be drained.
        let e = drain(&c, &["db2".to_string()])
            .await
            .expect_err("unreachable");
        assert!(e.to_string().contains("db2 is not reachable"), "{e}");
    }

    #[test]
    fn pick_takes_the_most_advanced_eligible_replica() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        let db2 = state(&replica_state(2, "No", "Yes", "0-1-10", "0-1-10"));
        let db3 = state(&replica_state(3, "No", "Yes", "0-1-12", "0-1-12"));
        let states = vec![("db2".to_string(), db2), ("db3".to_string(), db3)];
        assert_eq!(pick(&c, &states, None).expect("pick"), "db3");
        // Asked for the one behind: refused, naming who is ahead.
        let e = pick(&c, &states, Some("db2")).expect_err("behind");
        assert!(e.to_string().contains("db2 is behind db3"), "{e}");
        // The most advanced one may not be promoted: the other is behind it, so refused.
        let mut c = cluster(&engine, vec![]);
        c.candidates.retain(|h| h != "db3");
        let e = pick(&c, &states, None).expect_err("db3 not eligible");
        assert!(e.to_string().contains("db2 is behind db3"), "{e}");
    }

    #[test]
    fn pick_refuses_a_replica_with_errant_transactions() {
        let engine = lab_engine(None);
        let c = cluster(&engine, vec![]);
        // db3 wrote 0-3-5 itself (read_only bypassed); nobody else has it.
        let mut db3 = state(&replica_state(3, "No", "Yes", "0-1-12", "0-1-12"));
        db3.binlog_state = crate::sql::gtid::parse_gtids("0-1-12,0-3-5");
        let db2 = state(&replica_state(2, "No", "Yes", "0-1-12", "0-1-12"));
        let states = vec![("db2".to_string(), db2), ("db3".to_string(), db3)];
        let e = pick(&c, &states, Some("db3")).expect_err("errant");
        assert!(e.to_string().contains("db3 has errant transactions"), "{e}");
        assert_eq!(pick(&c, &states, Some("db2")).expect("db2"), "db2");
    }
}
