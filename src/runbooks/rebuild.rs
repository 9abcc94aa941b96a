//! `dbfleet rebuild HOST...`: disaster rebuild of lost database hosts from the inventory and
//! the backups alone (seeds 001–004: rebuild the VMs, restore the newest backup; seed 000:
//! binary logs for point-in-time recovery). Each HOST is a bare Debian host with sshd at
//! the inventory's address.
//!
//! - A lost replica is provisioned by the ordinary apply, with one difference: its data is
//!   the cluster's newest physical backup (the full, its newest differential and the
//!   incrementals chained on them)
//!   read from the backup server, not a copy streamed from the primary; it then
//!   replicates from the primary, from the backup's GTID position.
//! - A whole lost cluster (every database host of it named) gets its primary back first:
//!   provisioned, then its data folder replaced by the newest physical backup, then every
//!   archived binary log after the backup's position replayed with the original GTIDs
//!   (the binlog state is set to the backup's position first, so replicas restored from
//!   the same backup can follow). Then the replicas, as above. What was written after the
//!   binlog archive's newest run is lost: the command prints that bound beside the
//!   declared RPO, and the measured RTO beside the declared one.
//!
//! - On MySQL (no physical backup tool in Debian) a lost replica is seeded by CLONE from
//!   the primary, as apply seeds any new replica, and a lost cluster's primary gets its
//!   databases from the newest dump of a logical job, then the archived binary logs after
//!   the dump's GTID set (the point-in-time restore's script, to the archive's end).
//!
//! A host that still holds a data folder is refused: rebuild replaces lost hosts only.

use crate::backup::snapshot::chain;
use crate::backup::{Job, JobKind};
use crate::error::Error;
use crate::plan::runbook::{Action, Runbook, RunbookPlan};
use crate::runbooks::replication::{RESTORE_HELPER, chain_restore_script};
use crate::sql::Dialect;
use crate::tasks::q;
use crate::transport::SshHost;

pub(crate) async fn run(host: &SshHost, what: &str, script: &str) -> Result<String, Error> {
    let o = host
        .run(&format!(
            "bash <<'DBFLEET_REBUILD'\n{script}DBFLEET_REBUILD\n"
        ))
        .await
        .map_err(|e| Error::Refused(format!("{what} on {}: {e}", host.name)))?;
    if o.code != 0 {
        return Err(Error::Refused(format!(
            "{what} on {} failed (exit {}): {}",
            host.name,
            o.code,
            super::stderr_tail(&o.stderr)
        )));
    }
    Ok(o.stdout)
}

/// The primary's data from backups alone, on a freshly provisioned primary over `conn`.
/// `backup` is a physical job on MariaDB ([`restore_physical`]) and a logical one on MySQL
/// ([`restore_logical`]). Returns the script's report, whose `last event: #YYMMDD
/// HH:MM:SS` line (the binary log reader's stamp, UTC) bounds what was recovered.
///
/// Errors: [`Error::Refused`] when the job holds no backup or a step of the script fails
/// (its stderr's end quoted).
pub(crate) async fn restore_primary(
    conn: &SshHost,
    d: Dialect,
    backup: &Job,
    binlog: Option<&Job>,
) -> Result<String, Error> {
    match backup.kind {
        JobKind::Logical => restore_logical(conn, d, backup, binlog).await,
        _ => restore_physical(conn, backup, binlog).await,
    }
}

/// MySQL's whole-cluster rebuild: the point-in-time restore's script (`runbooks::restore`:
/// the newest dump loaded, the archived binary logs after its GTID set replayed per
/// database, every step binary-logged with the new server's GTIDs) run to the end of the
/// archive on the provisioned primary, then the archive's last event reported. The
/// original GTIDs are not kept: every replica of the cluster is seeded from this primary
/// afterwards (CLONE), so no server holds the old history to compare with.
async fn restore_logical(
    conn: &SshHost,
    d: Dialect,
    logical: &Job,
    binlog: Option<&Job>,
) -> Result<String, Error> {
    use crate::runbooks::restore;
    let dumps = restore::snapshots(conn, &logical.name).await?;
    let dump = restore::newest_before(&dumps, None)
        .cloned()
        .ok_or_else(|| {
            Error::Refused(format!(
                "backup job {} holds no dump to rebuild from",
                logical.name
            ))
        })?;
    let logs = match binlog {
        Some(b) => restore::newest_before(&restore::snapshots(conn, &b.name).await?, None)
            .cloned()
            .map(|s| (b, s)),
        None => None,
    };
    let mut script = restore::script(
        d,
        (logical, &dump),
        logs.as_ref().map(|(b, s)| (*b, s)),
        None,
        // A lost cluster's primary reloads alone, before any member joins it.
        false,
    );
    if logs.is_some() {
        script.push_str(&format!(
            "echo \"last event: $(TZ=UTC {} \"${{logs[@]}}\" | grep -o '^#[0-9]\\{{6\\}} *[0-9:]*' | tail -n 1)\"\n",
            d.binlog_reader()
        ));
    }
    let out = run(conn, "restoring the primary from backups", &script).await?;
    tracing::info!(host = %conn.name, dump = %dump.short_id, "primary restored from a dump");
    Ok(out)
}

/// MariaDB's: the newest physical backup chain into a fresh data folder (the provisional
/// one set aside), binlog state set to the backup's GTID position, then every archived
/// binary log after it replayed with its GTIDs.
async fn restore_physical(
    conn: &SshHost,
    physical: &Job,
    binlog: Option<&Job>,
) -> Result<String, Error> {
    let snaps = crate::runbooks::restore::snapshots(conn, &physical.name).await?;
    let (full, incs) = chain(&snaps).ok_or_else(|| {
        Error::Refused(format!(
            "backup job {} holds no full backup to rebuild from",
            physical.name
        ))
    })?;
    let logs = match binlog {
        Some(b) => crate::runbooks::restore::snapshots(conn, &b.name)
            .await?
            .into_iter()
            .max_by(|a, b| a.time.cmp(&b.time)),
        None => None,
    };
    let mut s = String::from(
        "set -euo pipefail\nw=/var/lib/dbfleet/rebuild; rm -rf \"$w\"; mkdir -p \"$w\"\n\
         mariadb -e 'SET GLOBAL read_only = ON' || true\n\
         service mariadb stop > /dev/null 2>&1 || true\n\
         aside=\"/var/lib/mysql.dbfleet-replaced-$(date +%s)\"; mv /var/lib/mysql \"$aside\"\n\
         install -d -o mysql -g mysql -m 0755 /var/lib/mysql\n",
    );
    s.push_str(&chain_restore_script(&physical.name, full, &incs));
    // The copy came from a replica: it must not replicate, and its binlog starts at the
    // copy's position. The upgrade marker as for a seeded replica (replication.rs).
    s.push_str(
        "pos=$({ cat /var/lib/mysql/mariadb_backup_binlog_info /var/lib/mysql/xtrabackup_binlog_info 2> /dev/null || true; } | head -n 1 | cut -f3)\n\
         [ -n \"$pos\" ] || { echo 'the backup records no GTID position' >&2; exit 1; }\n\
         cp -p \"$aside/mysql_upgrade_info\" /var/lib/mysql/ 2> /dev/null || true\n\
         chown -R mysql:mysql /var/lib/mysql\n\
         service mariadb start > \"$w/start.log\" 2>&1 || { cat \"$w/start.log\" >&2; exit 1; }\n\
         mariadb -e \"STOP ALL SLAVES; RESET SLAVE ALL; RESET MASTER; SET GLOBAL gtid_binlog_state = '$pos'; SET GLOBAL gtid_slave_pos = '$pos'\"\n\
         echo \"backup position: $pos\"\n",
    );
    if let Some(l) = &logs {
        s.push_str(&format!(
            "{RESTORE_HELPER} {repo} restore {id} \"$w/binlogs\" > /dev/null\n\
             mapfile -t logs < <(find \"$w/binlogs\" -type f -name '*-bin.[0-9]*' | sort)\n\
             {after}if [ ${{#logs[@]}} -gt 0 ]; then\n{packet}\
             \x20 binlog_after \"$w/replay.sql\" '/SET @@session\\.server_id=/d' ''\n\
             \x20 echo \"replayed: $(grep -c '^BINLOG' \"$w/replay.sql\" || true) row events\"\n\
             \x20 echo \"last event: $(grep -o '^#[0-9]\\{{6\\}} *[0-9:]*' \"$w/replay.sql\" | tail -n 1)\"\n\
             \x20 {{ echo {unannotated}; cat \"$w/replay.sql\"; }} | mariadb --max-allowed-packet={bytes}\n\
             fi\n",
            repo = q(&binlog.map(|b| b.name.clone()).unwrap_or_default()),
            id = q(&l.short_id),
            after = crate::runbooks::restore::MARIADB_BINLOG_AFTER,
            packet = crate::runbooks::restore::packet_limit_raised(crate::sql::Dialect::MariaDb.client()),
            bytes = crate::sql::REPLAY_PACKET_BYTES,
            unannotated = q(crate::sql::Dialect::MariaDb.unannotated_session()),
        ));
    }
    // The rebuilt primary's position (physical backups are MariaDB's mariadb-backup).
    s.push_str(&format!(
        "mariadb -N -e {}\nrm -rf \"$w\"\n",
        q(crate::sql::Dialect::MariaDb.current_position())
    ));
    let out = run(conn, "restoring the primary from backups", &s).await?;
    tracing::info!(host = %conn.name, full = %full.short_id, incrementals = incs.len(), "primary restored");
    Ok(out)
}

/// What a rebuild restores: its cluster, primary, backup jobs and declared targets.
pub struct RebuildPlan {
    pub plan: RunbookPlan,
    pub with_primary: bool,
    /// The cluster's smallest declared RTO and RPO (seconds), to report against.
    pub rto_s: Option<u64>,
    pub rpo_s: Option<u64>,
}

/// Plans the rebuild of `hosts` over `conns` (one per host): each must be a database host
/// of one cluster, bare (no data folder: observed); a primary only with every other host
/// of its cluster. Steps: the primary provisioned, restored from the backups and the
/// binlog archive, provisioned again; the replicas provisioned, seeded from the physical
/// backups (MariaDB) or by CLONE from the primary (MySQL: Debian has no physical backup
/// tool for it, `tasks::resolve`). Changes nothing.
///
/// Errors: [`Error::UnknownHost`]; [`Error::Refused`] when a host is not a database host,
/// holds a data folder, is a primary whose cluster is not lost as a whole, or when the
/// cluster has no backup job to restore from (MariaDB: a physical job; MySQL: a logical
/// job naming its `databases`, needed only to rebuild a primary); [`Error::Usage`] when
/// `hosts` is empty.
pub async fn plan(
    engine: &crate::engine::Engine,
    hosts: &[String],
    conns: &std::collections::HashMap<String, std::sync::Arc<SshHost>>,
) -> Result<RebuildPlan, Error> {
    use crate::backup::JobKind;
    use crate::inventory::Role;
    let mut cluster = None;
    for name in hosts {
        let h = engine
            .inv
            .host(name)
            .ok_or_else(|| Error::UnknownHost(name.clone()))?;
        if !h.is_database() {
            return Err(Error::Refused(format!(
                "{name} is not a database host: `dbfleet apply --limit {name}` provisions it"
            )));
        }
        if cluster.is_some_and(|c: &str| c != h.cluster) {
            return Err(Error::Refused("rebuild one cluster at a time".into()));
        }
        cluster = Some(h.cluster.as_str());
    }
    let cluster = cluster.ok_or_else(|| Error::Usage("name the hosts to rebuild".into()))?;
    let members: Vec<&str> = engine
        .inv
        .hosts
        .iter()
        .filter(|h| h.is_database() && h.cluster == cluster)
        .map(|h| h.name.as_str())
        .collect();
    let primary = engine
        .inv
        .hosts
        .iter()
        .find(|h| h.cluster == cluster && h.has(Role::Primary))
        .map(|h| h.name.clone())
        .ok_or_else(|| Error::Refused(format!("cluster {cluster} declares no primary")))?;
    let with_primary = hosts.contains(&primary);
    if with_primary && !members.iter().all(|m| hosts.iter().any(|h| h == m)) {
        return Err(Error::Refused(format!(
            "{primary} is the primary of {cluster}, whose other servers are not being rebuilt: fail over to one of them (`dbfleet failover`), then rebuild {primary} as a replica"
        )));
    }
    let jobs: Vec<&Job> = engine
        .inv
        .backups
        .iter()
        .filter(|j| {
            engine
                .inv
                .host(&j.host)
                .is_some_and(|x| x.cluster == cluster)
        })
        .collect();
    // Where the data comes from. MariaDB: the physical job, for the primary and the
    // replicas alike. MySQL: Debian has no physical tool for it, so the primary is restored
    // from the newest dump (a logical job naming its databases, as `restore` needs) and
    // the replicas are seeded by CLONE from it, as apply seeds any new replica.
    let mysql = engine.runbook_dialect() != Dialect::MariaDb;
    let backup = if mysql {
        jobs.iter()
            .find(|j| j.kind == JobKind::Logical && !j.databases.is_empty())
            .ok_or_else(|| {
                Error::Refused(format!(
                    "cluster {cluster} has no logical backup job naming its `databases`: on MySQL a lost primary is rebuilt from a dump (Debian has no physical backup tool for MySQL)"
                ))
            })
            .map(Some)
            .or_else(|e| if with_primary { Err(e) } else { Ok(None) })?
    } else {
        Some(
            jobs.iter()
                .find(|j| j.kind == JobKind::Physical)
                .ok_or_else(|| {
                    Error::Refused(format!(
                        "cluster {cluster} has no physical backup job to rebuild from"
                    ))
                })?,
        )
    };
    let binlog = jobs.iter().find(|j| j.kind == JobKind::Binlog);
    let replicas: Vec<&str> = hosts
        .iter()
        .filter(|h| **h != primary)
        .map(String::as_str)
        .collect();
    let mut p = RunbookPlan::new(
        Runbook::Rebuild {
            hosts: hosts.to_vec(),
        },
        engine.opts.inventory.display().to_string(),
        engine.inv.digest.clone(),
        match backup {
            Some(b) => format!(
                "Rebuild of {} (cluster {cluster}), from the inventory and the backups on {}:",
                hosts.join(", "),
                b.server
            ),
            None => format!(
                "Rebuild of {} (cluster {cluster}), from the inventory and {primary}:",
                hosts.join(", ")
            ),
        },
    );
    // Only bare hosts: a data folder means the host was not lost. A replica whose seeding
    // run is there (this command's own, started before it was killed or cut off) is
    // attached to by the apply below, not refused.
    for name in hosts {
        let conn = conns
            .get(name)
            .ok_or_else(|| Error::Refused(format!("{name} is not reachable over SSH")))?;
        let o = conn
            .run(&format!(
                "if [ -d {} ]; then echo seeding; elif test -d /var/lib/mysql/mysql; then echo has-data; else echo bare; fi\n",
                crate::tasks::replication::SEED_RUN_DIR
            ))
            .await
            .map_err(|e| Error::Refused(e.to_string()))?;
        match o.stdout.trim() {
            "has-data" => {
                return Err(Error::Refused(format!(
                    "{name} still holds a data folder (/var/lib/mysql): rebuild replaces lost hosts only (a replica with a broken copy: move its data folder away first)"
                )));
            }
            "seeding" if *name != primary => p.observe(
                name,
                "data folder",
                "being filled by a seeding run (attached to, not started again)",
            ),
            "seeding" => {
                return Err(Error::Refused(format!(
                    "{name} holds a seeding run ({}) but is the primary being rebuilt: remove that folder once nothing runs there",
                    crate::tasks::replication::SEED_RUN_DIR
                )));
            }
            _ => p.observe(name, "data folder", "none (bare)"),
        }
    }
    if let (true, Some(backup)) = (with_primary, backup) {
        let what = if mysql {
            format!(
                "replace its databases ({}) by {}'s newest dump",
                backup.databases.join(", "),
                backup.name
            )
        } else {
            format!(
                "replace its data by {}'s newest full backup, differential and the incrementals after them",
                backup.name
            )
        };
        p.step(
            &[&primary],
            format!("provision {primary} (apply --limit {primary})"),
            Action::Converge {
                seed_from_backup: false,
            },
            true,
        );
        p.step(
            &[&primary],
            format!(
                "{what}, then replay {}",
                binlog
                    .map(|b| format!(
                        "every binary log archived by {} after the backup's position",
                        b.name
                    ))
                    .unwrap_or_else(|| {
                        "nothing (no binlog job: what was written after the backup is lost)".into()
                    }),
            ),
            Action::RestoreFromBackups {
                backup: backup.name.clone(),
                binlog: binlog.map(|b| b.name.clone()),
            },
            true,
        );
        p.step(
            &[&primary],
            format!("apply {primary} again: the primary takes writes"),
            Action::Converge {
                seed_from_backup: false,
            },
            true,
        );
    }
    if !replicas.is_empty() {
        let (what, seed_from_backup) = match backup {
            Some(b) if !mysql => (
                format!(
                    "provision {}, each seeded from {}'s newest backup chain, replicating from {primary} from the backup's GTID position",
                    replicas.join(", "),
                    b.name
                ),
                true,
            ),
            _ => (
                format!(
                    "provision {}, each seeded by CLONE from {primary} (MySQL: no physical backup to seed from), replicating from {primary}",
                    replicas.join(", ")
                ),
                false,
            ),
        };
        p.step(&replicas, what, Action::Converge { seed_from_backup }, true);
    }
    Ok(RebuildPlan {
        plan: p,
        with_primary,
        rto_s: jobs.iter().filter_map(|j| j.rto_s).min(),
        rpo_s: jobs.iter().filter_map(|j| j.rpo_s).min(),
    })
}

/// A `mariadb-binlog` event stamp, `YYMMDD HH:MM:SS` in UTC (the hour space-padded).
pub(crate) fn binlog_stamp(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut parts = s.split_whitespace();
    let (date, time) = (parts.next()?, parts.next()?);
    let d = chrono::NaiveDate::parse_from_str(date, "%y%m%d").ok()?;
    let hms: Vec<u32> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t = chrono::NaiveTime::from_hms_opt(*hms.first()?, *hms.get(1)?, *hms.get(2)?)?;
    Some(d.and_time(t).and_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn binlog_stamps_parse_with_a_padded_hour() {
        assert_eq!(
            super::binlog_stamp("261121  9:05:01").map(|t| t.to_rfc3339()),
            Some("2026-11-21T09:05:01+00:00".into())
        );
        assert!(super::binlog_stamp("garbage").is_none());
    }
}
