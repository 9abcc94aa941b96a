//! The replica bootstrap runbook (seed 000, "Configuring and Managing MySQL Replication",
//! done with GTID and TLS as DESIGN.md sets out).
//!
//! Seeding (MariaDB) uses mariadb-backup streamed from the source straight to the replica,
//! host to host: the replica runs `ssh` to its source with the fleet's seeding key, whose
//! forced command streams the copy, into `mbstream -x` in its empty data folder (issue 26:
//! a replica seeded from a laptop on a VPN must not move its data through the laptop). A
//! physical, consistent copy taken without locking InnoDB writes, far faster than a
//! logical dump at size, which records its GTID position (`mariadb_backup_binlog_info`).
//! The replica then starts from that position with `MASTER_USE_GTID=slave_pos`. A replica
//! that holds databases of its own is never overwritten; its old data folder is always
//! kept aside, not deleted.
//!
//! MySQL has no mariadb-backup, and Debian ships no xtrabackup for it: the replica pulls
//! the copy itself with the CLONE plugin (built in since 8.0.17, loaded by mysqld.cnf),
//! over verified TLS, into a folder that then takes the data folder's place. The clone
//! carries the source's `gtid_executed`, so replication starts with auto-position.

use std::time::Duration;

use crate::events::EventSink;
use crate::runbooks::detached::{Detached, Run, State};
use crate::sql::quote;
use crate::sql::vertical;
use crate::tasks::replication::{Mode, ReplicationRes};
use crate::transport::SshHost;

/// Seconds to wait for a replica to catch up after it starts.
pub const CATCH_UP_TIMEOUT_S: u32 = 300;

/// Reads the fleet's backups from a database host (`templates/backup-restore.sh.j2`).
pub const RESTORE_HELPER: &str = "/usr/local/lib/dbfleet/backup-restore";

async fn run_script(host: &SshHost, what: &str, script: &str) -> Result<String, String> {
    let o = host
        .run(&crate::tasks::locked(true, script))
        .await
        .map_err(|e| format!("{what} on {}: {e}", host.name))?;
    if o.code != 0 {
        return Err(format!(
            "{what} on {} failed (exit {}): {}",
            host.name,
            o.code,
            super::stderr_tail(&o.stderr)
        ));
    }
    Ok(o.stdout)
}

fn sql(r: &ReplicationRes, statements: &str) -> String {
    format!(
        "set -eu\n{} -N -B <<'DBFLEET_SQL'\n{statements}\nDBFLEET_SQL\n",
        r.dialect.client()
    )
}

/// Applies the replica's [`Mode`] for `facts` (read at plan time; re-read here first).
///
/// Errors: a message naming the step and host that failed.
/// With `from_backup` (a physical backup job of the cluster; `dbfleet rebuild`), a replica
/// that needs seeding is filled from that job's newest full backup, differential and the incrementals
/// chained on it, read from the backup server, instead of from the source.
pub async fn apply(
    replica: &SshHost,
    source: &SshHost,
    r: &ReplicationRes,
    from_backup: Option<&str>,
    events: &dyn EventSink,
) -> Result<(), String> {
    let facts = run_script(
        replica,
        "reading replication status",
        &format!("{}\n", r.probe()),
    )
    .await
    .unwrap_or_default();
    let d = r.dialect;
    match r.mode(&facts) {
        None => return Ok(()),
        Some(Mode::Bootstrap { user_databases }) => {
            if d.seeds_by_clone() && from_backup.is_some() {
                return Err(format!(
                    "{} cannot be rebuilt from backups: that needs a physical backup, which dbfleet does not take for MySQL; apply seeds it from its source with CLONE instead",
                    replica.name
                ));
            }
            if user_databases > 0 {
                return Err(format!(
                    "{} holds {user_databases} database(s) and is not replicating; dbfleet will not replace them (move them away, or rebuild the host)",
                    replica.name
                ));
            }
            seed(replica, source, r, from_backup, events).await?;
        }
        // The run decides where the data comes from (its own script): `from_backup` of
        // this command does not change a copy already going.
        Some(Mode::Resume) => seed(replica, source, r, from_backup, events).await?,
        Some(Mode::Start) => {
            run_script(replica, "START SLAVE", &sql(r, d.start_replica())).await?;
        }
        Some(Mode::Repoint(_)) => {
            run_script(
                replica,
                "repointing replication",
                &sql(r, &point_at_source(r, "")),
            )
            .await?;
            if source_restart_brings_tls(source, r).await? {
                events.emit(crate::events::Event::Step {
                    host: replica.name.clone(),
                    text: format!(
                        "repointed to {} by GTID over verified TLS; it connects once {} restarts on its new option file (this apply's rolling restart): its server does not serve the fleet's certificate yet",
                        source.name, source.name
                    ),
                });
                return Ok(());
            }
        }
    }
    wait_caught_up(replica, source, r).await
}

/// Whether `source` does not serve the fleet's certificate yet but will after the restart
/// its option file waits for: dbfleet's file names the certificate, the running server has
/// another or none. A server that was not built by dbfleet (`dbfleet import`, issue 28)
/// runs without it until the apply's rolling restart, which comes after the replication
/// tasks; a replica repointed to verified TLS before then cannot connect, so waiting for
/// it to catch up would only time out (seen on a hand-built lab: 300 s, then failed).
///
/// Errors: the source could not be read.
async fn source_restart_brings_tls(source: &SshHost, r: &ReplicationRes) -> Result<bool, String> {
    let d = r.dialect;
    let out = run_script(
        source,
        "reading the source's certificate",
        &format!(
            "live=$({client} -N -B -e {query})
             if [ \"$live\" != {cert} ] && grep -Eq '^ssl_cert[[:space:]]*=[[:space:]]*{cert}$' {cnf} 2>/dev/null; then echo pending; fi\n",
            client = d.client(),
            query = crate::escape::q(crate::sql::SERVER_CERT_QUERY),
            cert = crate::sql::FLEET_SERVER_CERT,
            cnf = d.cnf_path(),
        ),
    )
    .await?;
    Ok(out.trim() == "pending")
}

/// The name of a replica's seeding run on its host ([`crate::runbooks::detached`]; its folder is
/// [`crate::tasks::replication::SEED_RUN_DIR`]).
pub const SEED_RUN: &str = "seed";

/// Copies the source's data into the replica and configures replication from the copy's
/// GTID position. If any step after the old data folder was set aside fails, the folder is
/// put back and the server started again, so a failed seed leaves the replica as it was.
///
/// MariaDB: the copy (the server stopped, its data folder set aside, the new one filled
/// and prepared) is a detached run on the replica ([`crate::runbooks::detached`], issue 26): it outlives
/// this process and its connection. A run already there (this command's own, started
/// before it was killed or cut off) is attached to, never started twice; one another
/// `dbfleet` drives is refused. Losing the replica mid-copy ends this call with an error
/// that says the copy goes on and how to attach; nothing is undone then.
async fn seed(
    replica: &SshHost,
    source: &SshHost,
    r: &ReplicationRes,
    from_backup: Option<&str>,
    events: &dyn EventSink,
) -> Result<(), String> {
    if r.dialect.seeds_by_clone() {
        return seed_by_clone(replica, source, r).await;
    }
    let what = match from_backup {
        Some(job) => format!("restoring backup job {job}"),
        None => format!("copying {}'s data", r.source_name),
    };
    // The expected size: the source's data folder (a rebuilt replica's backup holds about
    // as much). Progress only: nothing depends on it.
    let total = source
        .run("du -sb /var/lib/mysql 2>/dev/null | cut -f1\n")
        .await
        .ok()
        .and_then(|o| o.stdout.trim().parse::<u64>().ok());
    let run = Run::new(replica, SEED_RUN, what, "/var/lib/mysql", total);
    let attach_hint = |e: &str| {
        format!(
            "{e}; the copy goes on on {}: run the same command again to attach to it",
            replica.name
        )
    };
    let existing = run.state(false).await.map_err(|e| attach_hint(&e))?;
    if existing == State::None {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let aside = format!("/var/lib/mysql.dbfleet-replaced-{stamp}");
        let fill = match from_backup {
            Some(job) => fill_from_backup_script(replica, job).await?,
            None => fill_from_source_script(r),
        };
        // 1.–2. Under the run: the server stopped, the old folder set aside, the new one
        // filled and prepared. Nothing of this runs before the run's folder exists.
        let script = format!(
            "set -euo pipefail\nservice {svc} stop >/dev/null 2>&1 || true\n\
             mv /var/lib/mysql {aside}\ninstall -d -o mysql -g mysql -m 0755 /var/lib/mysql\n{fill}",
            svc = r.dialect.service()
        );
        run.start(&script, Some(r.dialect.service()), &[("aside", &aside)])
            .await?;
    } else {
        tracing::info!(replica = %replica.name, "attaching to the seed in progress");
        run.take_over().await.map_err(|e| match e {
            Detached::Driven { client_age_s } => format!(
                "another dbfleet drives the seeding of {} (it renewed its lease {client_age_s} s ago): refusing to start a second copy; wait for it to end",
                replica.name
            ),
            Detached::Disconnected(e) | Detached::Failed(e) => attach_hint(&e),
        })?;
    }
    let seen = match run.wait(events).await {
        Ok(seen) => seen,
        // `wait` reports no driver (it only renews the lease it holds): read as a lost link.
        Err(Detached::Disconnected(e)) => return Err(attach_hint(&e)),
        Err(Detached::Driven { client_age_s }) => {
            return Err(attach_hint(&format!(
                "another dbfleet renewed the seeding run's lease {client_age_s} s ago"
            )));
        }
        Err(Detached::Failed(e)) => {
            // The run's own folder says where the old data went (a run started by an
            // earlier command too).
            let aside = run.state(false).await.ok().and_then(|st| match st {
                State::Finished { seen, .. } | State::Lost(seen) | State::Running(seen) => {
                    seen.kept("aside").map(str::to_string)
                }
                State::None => None,
            });
            return Err(undo(replica, r, &run, aside.as_deref(), e).await);
        }
    };
    let Some(aside) = seen.kept("aside").map(str::to_string) else {
        return Err(format!(
            "the seeding run on {} does not say where the old data folder went; it is left as it is",
            replica.name
        ));
    };
    tracing::info!(replica = %replica.name, "the copy is whole and prepared");
    // 3.–4. Started and replicating; then the run's folder goes (the step is done).
    match configure(replica, source, r, &aside).await {
        Ok(()) => run.clear().await.map_err(|e| {
            format!(
                "{} replicates, but its seeding run's folder could not be removed: {e}",
                replica.name
            )
        }),
        Err(e) => Err(undo(replica, r, &run, Some(&aside), e).await),
    }
}

/// Puts the replica's previous data folder back after a failed seed and clears the run,
/// returning the error to report (`e`, and what the undo did).
async fn undo(
    replica: &SshHost,
    r: &ReplicationRes,
    run: &Run<'_>,
    aside: Option<&str>,
    e: String,
) -> String {
    let svc = r.dialect.service();
    let Some(aside) = aside else {
        return format!("{e} (the previous data folder's place is unknown: nothing was undone)");
    };
    let restored = run_script(
        replica,
        "restoring the previous data folder",
        &format!(
            "set -eu\nif [ -d {a} ]; then service {svc} stop >/dev/null 2>&1 || true\nrm -rf /var/lib/mysql\nmv {a} /var/lib/mysql\nfi\n\
             service {svc} start >/tmp/.dbfleet-service.log 2>&1 || {{ cat /tmp/.dbfleet-service.log >&2; exit 1; }}\n",
            a = crate::tasks::q(aside)
        ),
    )
    .await;
    match restored {
        Ok(_) => {
            let _ = run.clear().await;
            format!("{e} (the replica's previous data folder was restored)")
        }
        Err(r) => {
            format!("{e}; restoring the previous data folder also failed: {r} (it is at {aside})")
        }
    }
}

/// MySQL: the running replica clones its source into a folder of its own first, which
/// then takes the data folder's place (CLONE runs inside the server, under the statement's
/// session: not a detached run).
async fn seed_by_clone(
    replica: &SshHost,
    source: &SshHost,
    r: &ReplicationRes,
) -> Result<(), String> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let aside = format!("/var/lib/mysql.dbfleet-replaced-{stamp}");
    let svc = r.dialect.service();
    let dir = clone_from_source(replica, r).await?;
    run_script(
        replica,
        "stopping the server and setting the data folder aside",
        &format!(
            "set -eu\nservice {svc} stop >/dev/null 2>&1 || true\n\
             mv /var/lib/mysql {aside}\nmv {dir} /var/lib/mysql\n"
        ),
    )
    .await?;
    match configure(replica, source, r, &aside).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let restored = run_script(
                replica,
                "restoring the previous data folder",
                &format!(
                    "set -eu\nservice {svc} stop >/dev/null 2>&1 || true\nrm -rf /var/lib/mysql\nmv {aside} /var/lib/mysql\n\
                     service {svc} start >/tmp/.dbfleet-service.log 2>&1 || {{ cat /tmp/.dbfleet-service.log >&2; exit 1; }}\n"
                ),
            )
            .await;
            Err(match restored {
                Ok(_) => format!("{e} (the replica's previous data folder was restored)"),
                Err(r) => format!(
                    "{e}; restoring the previous data folder also failed: {r} (it is at {aside})"
                ),
            })
        }
    }
}

/// Where a MySQL replica clones its source: a folder mysqld can create (its parent is
/// the mysql user's), emptied first.
const CLONE_PARENT: &str = "/var/lib/dbfleet-clone";

/// Seconds a replica waits for its turn at a donor busy cloning for another, or restarting.
const CLONE_TURN_TIMEOUT_S: u64 = 3600;

/// 0. (MySQL) The running replica pulls a consistent copy of its source with CLONE, over
///    verified TLS, into a new folder; returns that folder. The statement carries the
///    replication password and goes on stdin.
async fn clone_from_source(replica: &SshHost, r: &ReplicationRes) -> Result<String, String> {
    let dir = format!("{CLONE_PARENT}/data");
    let script = format!(
        "set -eu\nrm -rf {CLONE_PARENT}\ninstall -d -o mysql -g mysql -m 0750 {CLONE_PARENT}\n{}",
        sql(r, &r.dialect.clone_from(&r.source, &dir)).trim_start_matches("set -eu\n")
    );
    // A donor serves one clone at a time (error 3634): replicas seeded together, from
    // this apply or another, take turns. A donor restarting (its own handler in the same
    // apply: connection refused 2003, interrupted 1317, lost 2013) is waited for too. Each
    // try starts over in an empty folder; the replica's own data is never touched.
    let started = std::time::Instant::now();
    let retryable = |e: &str| {
        ["Error: 3634", "2003", "Error: 1317", "2013"]
            .iter()
            .any(|c| e.contains(c))
    };
    loop {
        match run_script(replica, "cloning the source's data", &script).await {
            Err(e)
                if retryable(&e)
                    && started.elapsed() < Duration::from_secs(CLONE_TURN_TIMEOUT_S) =>
            {
                tracing::info!(replica = %replica.name, error = %e, "clone: the donor is busy or restarting; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => {
                other?;
                break;
            }
        }
    }
    tracing::info!(replica = %replica.name, "cloned the source");
    Ok(dir)
}

/// How a host extracts an xbstream into a folder: `mbstream -x` with several writer
/// threads (`--parallel`). Measured on the lab (a 605 MB random table, issue 26):
/// `restic dump | mbstream -x` took 4.8 s with one thread, 3.5 s with two or four.
pub(crate) const EXTRACT: &str = "mbstream -x --parallel=4";

/// 2. The replica pulls a consistent copy from its source host to host and prepares it:
///    `ssh` with the fleet's seeding key to the source, whose forced command streams
///    mariadb-backup (`templates/seed-source.sh.j2`: one copy at a time per source, under
///    its run lock), into `mbstream -x` here. The source's host key is pinned
///    (`/etc/dbfleet/seed_known_hosts`); nothing but control crosses the operator's
///    connection (issue 26).
fn fill_from_source_script(r: &ReplicationRes) -> String {
    format!(
        "{}mariadb-backup --prepare --target-dir=/var/lib/mysql >/tmp/.dbfleet-prepare.log 2>&1 || {{ tail -n 5 /tmp/.dbfleet-prepare.log >&2; exit 1; }}\n",
        pull_script(r)
    )
}

/// The replica's side of `fill_from_source_script` (bash, pipefail: a broken stream must fail,
/// not leave a partial copy looking whole). The source is its address as the inventory
/// has it, which is how the pinned known_hosts names it (`[address]:port` off port 22).
pub fn pull_script(r: &ReplicationRes) -> String {
    let q = crate::tasks::q;
    format!(
        "bash <<'DBFLEET_SEED'\nset -euo pipefail\n\
         ssh -i /etc/dbfleet/seed_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes \
         -o UserKnownHostsFile=/etc/dbfleet/seed_known_hosts -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o ServerAliveInterval=10 -o ServerAliveCountMax=6 \
         -p {port} {target} seed | {EXTRACT} -C /var/lib/mysql\nDBFLEET_SEED\n",
        port = r.source_ssh_port,
        target = q(&format!("{}@{}", r.source_ssh_user, r.source.host)),
    )
}

/// Shell lines (bash, `set -e`, `$w` a scratch folder) that fill the empty
/// `/var/lib/mysql` from a physical job's restore chain
/// ([`crate::backup::snapshot::chain`]): the full backup extracted and prepared, then each
/// differential or incremental of `rest` extracted beside it and applied in order
/// (`mariadb-backup --prepare --incremental-dir`, MariaDB KB "Incremental Backup and
/// Restore with mariadb-backup"; a differential is applied the same way, on the full).
/// Each snapshot is read by the host itself through `backup-restore` (its file named by
/// the snapshot's mode, as the job's script stored it).
pub fn chain_restore_script(
    job: &str,
    full: &crate::backup::snapshot::Snapshot,
    rest: &[&crate::backup::snapshot::Snapshot],
) -> String {
    let q = crate::tasks::q;
    let prepare = "mariadb-backup --prepare --target-dir=/var/lib/mysql";
    let failed = "> \"$w/prepare.log\" 2>&1 || { tail -n 5 \"$w/prepare.log\" >&2; exit 1; }";
    let mut s = format!(
        "{RESTORE_HELPER} {j} dump {id} {path} | {EXTRACT} -C /var/lib/mysql\n{prepare} {failed}\n",
        j = q(job),
        id = q(&full.short_id),
        path = q(&format!("/{job}-full.xbstream")),
    );
    for (i, b) in rest.iter().enumerate() {
        s.push_str(&format!(
            "mkdir -p \"$w/inc{i}\"\n{RESTORE_HELPER} {j} dump {id} {path} | {EXTRACT} -C \"$w/inc{i}\"\n\
             {prepare} --incremental-dir=\"$w/inc{i}\" {failed}\n",
            j = q(job),
            id = q(&b.short_id),
            path = q(&format!("/{job}-{}.xbstream", b.mode())),
        ));
    }
    s
}

/// 2'. Fills the data folder from the physical backup job `job` on the backup server (the
///    host reads it itself, `backup-restore`): its newest full backup, then each
///    newest differential and incrementals chained on it, in order, each prepared in turn
///    (mariadb-backup; [`chain_restore_script`]).
async fn fill_from_backup_script(replica: &SshHost, job: &str) -> Result<String, String> {
    let list = run_script(
        replica,
        "listing the backups",
        &format!("{RESTORE_HELPER} {} snapshots\n", crate::tasks::q(job)),
    )
    .await?;
    let snaps: Vec<crate::backup::snapshot::Snapshot> =
        serde_json::from_str(list.trim()).map_err(|e| format!("the snapshots of {job}: {e}"))?;
    let (full, incrementals) = crate::backup::snapshot::chain(&snaps)
        .ok_or_else(|| format!("backup job {job} holds no full backup to rebuild from"))?;
    tracing::info!(replica = %replica.name, job, chain = %crate::backup::snapshot::describe_chain(full, &incrementals), "filling from backup");
    let mut script = String::from("w=/var/lib/dbfleet/rebuild; rm -rf \"$w\"; mkdir -p \"$w\"\n");
    script.push_str(&chain_restore_script(job, full, &incrementals));
    script.push_str("rm -rf \"$w\"\n");
    Ok(script)
}

/// 3.–4. Owns and starts the prepared copy, then starts replication from its GTID position.
///
/// A copy lacks `mysql_upgrade_info` (mariadb-backup leaves it out): Debian's start script
/// would then run mariadb-upgrade against the copy while replication or a replay writes,
/// and its ALTERs of system tables can deadlock with them. The copy is the server's own
/// version, so the marker comes from the folder set aside.
async fn configure(
    replica: &SshHost,
    source: &SshHost,
    r: &ReplicationRes,
    aside: &str,
) -> Result<(), String> {
    let d = r.dialect;
    // The history the copy carries (issue 10, case 3): read before the copy starts
    // replicating, clipped to the copy's position below.
    // A clone carries it already (MySQL's gtid_executed): no round trip for it.
    let history = if d.seeds_by_clone() {
        String::new()
    } else {
        run_script(
            source,
            "reading the source's binary log history",
            &sql(r, d.binlog_history()),
        )
        .await?
    };
    let out = run_script(
replica,
        "starting the copy",
        &format!(
            "set -eu\ncp -p {aside}/mysql_upgrade_info /var/lib/mysql/ 2>/dev/null || true\n\
             chown -R mysql:mysql /var/lib/mysql\n\
             for f in /var/lib/mysql/mariadb_backup_binlog_info /var/lib/mysql/xtrabackup_binlog_info; do [ -f \"$f\" ] && {{ cat \"$f\"; break; }}; done\n\
             service {svc} start >/tmp/.dbfleet-service.log 2>&1 || {{ cat /tmp/.dbfleet-service.log >&2; exit 1; }}\n",
            svc = d.service()
        ),
    )
    .await?;
    if d.seeds_by_clone() {
        // A clone carries the source's gtid_executed: auto-position starts from there.
        run_script(
            replica,
            "configuring replication",
            &sql(r, &point_at_source(r, "")),
        )
        .await?;
        return Ok(());
    }
    let position = out.split_whitespace().nth(2).unwrap_or("").to_string();
    let inherited = crate::sql::gtid::seeded_binlog_state(
        &crate::sql::gtid::parse_gtids(&position),
        &crate::sql::gtid::parse_gtids(history.trim()),
    );
    // 4. Start from that position (empty: the source had written nothing to its binlog).
    let start = d.set_start_position_with_history(&position, &inherited);
    run_script(
        replica,
        "configuring replication",
        &sql(r, &point_at_source(r, &start)),
    )
    .await?;
    Ok(())
}

/// The statements that (re)point a replica at its source and start it, with `position`
/// (statements setting the start position; may be empty) between stopping and pointing.
fn point_at_source(r: &ReplicationRes, position: &str) -> String {
    let d = r.dialect;
    let stop = d.stop_replica();
    let change = d.change_source(&r.source);
    let start = d.start_replica();
    if position.is_empty() {
        format!("{stop}\n{change}\n{start}")
    } else {
        format!("{stop}\n{position}\n{change}\n{start}")
    }
}

/// Waits until the replica has applied everything the source had when this started, and
/// both threads run. Waits in 2-second steps so a stopped thread fails the wait at once,
/// with the server's own error, instead of after the whole timeout.
async fn wait_caught_up(
    replica: &SshHost,
    source: &SshHost,
    r: &ReplicationRes,
) -> Result<(), String> {
    let d = r.dialect;
    let pos = run_script(
        source,
        "reading the source's position",
        &sql(r, d.current_position()),
    )
    .await?;
    let pos = pos.trim().to_string();
    let started = std::time::Instant::now();
    loop {
        let st = d
            .replica_status(&vertical(
                &run_script(
                    replica,
                    "reading replication status",
                    &format!("{}\n", r.probe()),
                )
                .await?,
            ))
            .unwrap_or_default();
        let (io, sqlt) = (st.io_running.as_str(), st.sql_running.as_str());
        if sqlt == "No" || io == "No" {
            return Err(format!(
                "replication on {} stopped: {}",
                replica.name,
                st.last_error()
            ));
        }
        let reached = run_script(
            replica,
            "waiting for the replica to catch up",
            &sql(r, &d.wait_for_position(&pos, 2)),
        )
        .await?;
        if reached.trim() == "0" && io == "Yes" && sqlt == "Yes" {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(CATCH_UP_TIMEOUT_S as u64) {
            return Err(format!(
                "{} did not reach {}'s position {} within {CATCH_UP_TIMEOUT_S} s (IO thread: {io}, SQL thread: {sqlt})",
                replica.name,
                source.name,
                quote(&pos)
            ));
        }
        // The IO thread may still be connecting right after START SLAVE.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
