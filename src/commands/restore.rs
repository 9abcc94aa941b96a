//! `dbfleet restore HOST [--to TIME]`: point-in-time recovery of a cluster's primary from
//! its backups. The script and the choice of backups are `crate::runbooks::restore`'s.

use std::time::Instant;

use chrono::Utc;

use crate::backup::{Job, JobKind};
use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::inventory::Role;
use crate::runbooks::restore::*;
use crate::sql::Dialect;

/// `dbfleet restore HOST [--to TIME]`.
///
/// Errors: [`Error::Refused`] when HOST is not a cluster's primary, when the cluster has no
/// logical backup job naming its databases (or no binlog job when `--to` is given), when
/// no backup is old enough, when the binlog archive does not reach TIME, or when a step
/// fails on the host (the primary then stays read-only); [`Error::Usage`] for a bad TIME
/// or a declined/unanswerable confirmation.
pub fn run(
    opts: &Options,
    host: &str,
    to: Option<&str>,
    auto_approve: bool,
    dry_run: bool,
) -> Result<Exit, Error> {
    let t0 = Instant::now();
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "restore")?;
    let h = engine
        .inv
        .host(host)
        .ok_or_else(|| Error::UnknownHost(host.into()))?;
    if !h.has(Role::Primary) {
        return Err(Error::Refused(format!(
            "{host} is not a primary: a restore rewinds a cluster through its primary (its replicas follow); a replica takes its data from its primary"
        )));
    }
    let d = engine.runbook_dialect();
    if d != Dialect::MariaDb {
        return Err(Error::Refused(
            "restore replays binary logs with mariadb-binlog: MariaDB fleets only for now".into(),
        ));
    }
    let to = to.map(parse_time).transpose()?;
    if let Some(t) = to
        && t > Utc::now()
    {
        return Err(Error::Usage(format!("--to {t} is in the future")));
    }
    let in_cluster = |j: &&Job| {
        engine
            .inv
            .host(&j.host)
            .is_some_and(|x| x.cluster == h.cluster)
    };
    let logical = engine
        .inv
        .backups
        .iter()
        .filter(in_cluster)
        .find(|j| j.kind == JobKind::Logical && !j.databases.is_empty())
        .ok_or_else(|| {
            Error::Refused(format!(
                "cluster {} has no logical backup job naming its `databases` (a restore replays the binary logs per database)",
                h.cluster
            ))
        })?;
    let binlog = engine
        .inv
        .backups
        .iter()
        .filter(in_cluster)
        .find(|j| j.kind == JobKind::Binlog);
    if to.is_some() && binlog.is_none() {
        return Err(Error::Refused(format!(
            "--to needs archived binary logs: cluster {} has no `kind: binlog` backup job",
            h.cluster
        )));
    }
    crate::engine::runtime()?.block_on(async {
        let conn = engine.connect(host, None).await?;
        let dumps = snapshots(&conn, &logical.name).await?;
        let dump = newest_before(&dumps, to).cloned().ok_or_else(|| {
            Error::Refused(format!(
                "no backup of {} {}",
                logical.name,
                to.map(|t| format!("at or before {t}"))
                    .unwrap_or_else(|| "at all".into())
            ))
        })?;
        let logs = match binlog {
            Some(b) => {
                let all = snapshots(&conn, &b.name).await?;
                let newest = newest_before(&all, None).cloned();
                match (&newest, to) {
                    (None, _) => {
                        return Err(Error::Refused(format!(
                            "the binlog archive {} is empty: run `dbfleet backup run {}` first",
                            b.name, b.name
                        )));
                    }
                    (Some(n), Some(t)) if time_of(n).is_some_and(|nt| nt < t) => {
                        return Err(Error::Refused(format!(
                            "the binlog archive {} ends at {} (its newest run), before {t}: transactions after it are not archived; run `dbfleet backup run {}` first",
                            b.name, n.time, b.name
                        )));
                    }
                    _ => {}
                }
                newest.map(|n| (b, n))
            }
            None => None,
        };
        let mut plan = format!(
            "Restore {host} (primary of cluster {}) to {}:\n  1. read_only ON on {host} (application writes stop until step 5)\n  2. drop and reload {} from {} backup {} taken {}\n",
            h.cluster,
            to.map(|t| t.to_string())
                .unwrap_or_else(|| "the newest backups".into()),
            logical.databases.join(", "),
            logical.name,
            dump.short_id,
            dump.time,
        );
        match &logs {
            Some((b, s)) => plan.push_str(&format!(
                "  3. replay the archived binary logs of {} (backup {} taken {}) from the dump's GTID position {}, per database\n",
                b.name,
                s.short_id,
                s.time,
                to.map(|t| format!("up to {t}"))
                    .unwrap_or_else(|| "to their end".into())
            )),
            None => plan.push_str("  3. (no binlog archive: nothing after the dump is replayed)\n"),
        }
        plan.push_str(&format!(
            "  4. every step is binary-logged: the replicas of {} follow as ordinary replication\n  5. read_only OFF on {host}\n",
            h.cluster
        ));
        crate::report::print(&plan);
        if dry_run {
            return Ok(Exit::Ok);
        }
        if !auto_approve && !crate::report::confirm("\nRestore?")? {
            return Err(Error::Usage("restore not approved".into()));
        }
        let script = script(d, (logical, &dump), logs.as_ref().map(|(b, s)| (*b, s)), to);
        let o = conn
            .run(&format!("bash <<'DBFLEET_RESTORE'\n{script}DBFLEET_RESTORE\n"))
            .await
            .map_err(|e| Error::Refused(e.to_string()))?;
        conn.close().await;
        if o.code != 0 {
            return Err(Error::Refused(format!(
                "restore on {host} failed (exit {}); {host} stays read-only:\n{}",
                o.code,
                engine.redactor.redact(o.stderr.trim())
            )));
        }
        crate::report::print(&format!(
            "{}restored {host} in {:.1} s\n",
            engine.redactor.redact(&o.stdout),
            t0.elapsed().as_secs_f64()
        ));
        Ok(Exit::Ok)
    })
}
