//! `dbfleet restore HOST [--to TIME]`: point-in-time recovery of a cluster's primary from
//! its backups (seed 000: binary logs for point-in-time recovery; seeds 001–004: restore
//! the newest backup). The newest logical backup of the cluster taken at or before TIME,
//! then the archived binary logs from that backup's GTID position up to TIME (all of them
//! without `--to`), replayed per database.
//!
//! It runs on the primary with binary logging on, so the replicas follow the restore as
//! ordinary replicated transactions: the cluster rewinds as one, no replica needs
//! reseeding. Replayed events get new GTIDs (their `gtid_seq_no` and `server_id` lines are
//! dropped): replaying old GTIDs would break `gtid_strict_mode`, and a foreign server id
//! would make the replica that owns it skip them. The primary is read-only from the start
//! to the end, so no application write interleaves; a failure leaves it read-only, which
//! is the safe state for a half-restored database.
//!
//! A Galera cluster (issue 27) is restored through any member: the reload replicates to
//! the others as write sets (DDL in total order), and since every member takes writes,
//! the others are fenced read-only before it and opened after it. It has no binlog
//! archive (validate refuses one on a member), so it goes back to the newest logical
//! backup and `--to` is refused.
//!
//! The plan (backup, binlog range, databases, steps) is printed first and approved like an
//! apply. Everything is read from the backup server by the host itself
//! (`/usr/local/lib/dbfleet/backup-restore`, `templates/backup-restore.sh.j2`): no data
//! and no credential passes through the operator's machine.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::backup::Job;
use crate::backup::snapshot::Snapshot;
use crate::error::Error;
use crate::plan::runbook::{Action, DetachedRun, Runbook, RunbookPlan};
use crate::runbooks::detached::{Run, Seen, State};
use crate::sql::galera::STATE_LINE as GALERA_STATE;
use crate::sql::{Dialect, REPLAY_PACKET_BYTES};
use crate::tasks::RESTORE_RUN;
use crate::tasks::q;
use crate::transport::SshHost;

pub(crate) use crate::tasks::RESTORE_WORK as WORK;
pub(crate) const HELPER: &str = super::replication::RESTORE_HELPER;

/// The members a restore through `host` fences read-only first and opens last: when
/// `host` is a Galera member, the other members of its cluster (each takes writes; the
/// reload replicates to them as write sets, DDL in total order), in inventory order; None
/// when `host` is not a Galera member (a primary's replicas are read-only already).
pub fn fenced_members(inv: &crate::inventory::Inventory, host: &str) -> Option<Vec<String>> {
    let h = inv.host(host)?;
    if !(h.has(crate::inventory::Role::Member) && h.replication() == "galera") {
        return None;
    }
    Some(
        inv.cluster_databases(&h.cluster)
            .filter(|x| x.name != host)
            .map(|x| x.name.clone())
            .collect(),
    )
}

/// Parses `--to`: RFC 3339 (`2026-11-21T14:05:00Z`, any offset) or `YYYY-MM-DD HH:MM:SS`
/// taken as UTC.
///
/// Errors: [`Error::Usage`] naming the accepted forms.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| {
            Error::Usage(format!(
                "--to `{s}`: write RFC 3339 (2026-11-21T14:05:00Z) or `YYYY-MM-DD HH:MM:SS` (UTC)"
            ))
        })
}

pub(crate) fn time_of(s: &Snapshot) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s.time)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The newest snapshot at or before `to` (the newest of all without it).
pub fn newest_before(snaps: &[Snapshot], to: Option<DateTime<Utc>>) -> Option<&Snapshot> {
    snaps
        .iter()
        .filter(|s| match (to, time_of(s)) {
            (Some(to), Some(t)) => t <= to,
            (None, Some(_)) => true,
            _ => false,
        })
        .max_by_key(|s| time_of(s))
}

/// Runs the restore helper's subcommand `args` on `repo` over `conn`; returns its stdout.
///
/// Errors: [`Error::Refused`] for a failed connection, or the helper's failure as
/// "listing `what` from HOST failed: …" with its last stderr line.
async fn helper(conn: &SshHost, repo: &str, args: &str, what: &str) -> Result<String, Error> {
    let o = conn
        .run(&format!("{HELPER} {} {args}\n", q(repo)))
        .await
        .map_err(|e| Error::Refused(e.to_string()))?;
    if o.code != 0 {
        return Err(Error::Refused(format!(
            "listing {what} from {} failed: {} (does `dbfleet plan` show backup changes left to apply there?)",
            conn.name,
            o.stderr.trim().lines().last().unwrap_or("")
        )));
    }
    Ok(o.stdout)
}

pub(crate) async fn snapshots(conn: &SshHost, repo: &str) -> Result<Vec<Snapshot>, Error> {
    let out = helper(conn, repo, "snapshots", &format!("the backups of {repo}")).await?;
    serde_json::from_str(out.trim())
        .map_err(|e| Error::Refused(format!("the snapshots of {repo}: {e}")))
}

/// Plans the restore of `host` (a cluster's primary) to `to` (as given on the command
/// line; None: to the end of the archived binary logs) over `conn` to it: the newest
/// logical backup at or before that time and the binlog archive's newest run, observed,
/// and one script step ([`script`]). Changes nothing.
///
/// Errors: [`Error::Refused`] when HOST is not a primary, when the cluster has no logical
/// backup job naming its databases (or no binlog job when `to` is given), when no backup
/// is old enough, or when the binlog archive does not reach `to`; [`Error::Usage`] for a
/// bad or future `to`.
pub async fn plan(
    engine: &crate::engine::Engine,
    conn: &SshHost,
    host: &str,
    to_text: Option<&str>,
) -> Result<RunbookPlan, Error> {
    use crate::backup::JobKind;
    let h = engine
        .inv
        .host(host)
        .ok_or_else(|| Error::UnknownHost(host.into()))?;
    let galera = fenced_members(&engine.inv, host).is_some();
    if !h.has(crate::inventory::Role::Primary) && !galera {
        return Err(Error::Refused(format!(
            "{host} is not a primary: a restore rewinds a cluster through its primary (its replicas follow); a replica takes its data from its primary"
        )));
    }
    let d = engine.runbook_dialect();
    let others_owned = fenced_members(&engine.inv, host).unwrap_or_default();
    let others: Vec<&str> = others_owned.iter().map(String::as_str).collect();
    let to = to_text.map(parse_time).transpose()?;
    if let Some(t) = to
        && t > Utc::now()
    {
        return Err(Error::Usage(format!("--to {t} is in the future")));
    }
    let request = request_text(host, to_text);
    // A restore started by an earlier command (killed, or cut off) goes on on the host:
    // this one attaches to it, whatever the backups say now.
    let run = Run::new(conn, RESTORE_RUN, "restore".into(), WORK, None);
    let state = run
        .state(false)
        .await
        .map_err(|e| Error::Refused(format!("reading {host}'s restore run: {e}")))?;
    if let Some((what, seen)) = described(&state) {
        let mut p = attach_plan(engine, host, to_text, &request, &what, seen);
        open_members(&mut p, d, &others);
        return Ok(p);
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
    let dumps = snapshots(conn, &logical.name).await?;
    let dump = newest_before(&dumps, to).cloned().ok_or_else(|| {
        Error::Refused(format!(
            "no backup of {} {}",
            logical.name,
            to.map(|t| format!("at or before {t}"))
                .unwrap_or_else(|| "at all".into())
        ))
    })?;
    // Room for it on every database host of the cluster ([`room`]).
    let dump_path = format!("/{}.sql", logical.name);
    let dump_bytes = file_size(conn, &logical.name, &dump.short_id, &dump_path).await?;
    let mut free = vec![(host.to_string(), free_bytes(conn).await?)];
    let mut unchecked = Vec::new();
    // The replicas read at once: a restore plan waits on the slowest, not on their sum.
    let replicas = engine.inv.hosts.iter().filter(|x| {
        x.cluster == h.cluster && x.name != host && x.roles.iter().any(|r| r.is_database())
    });
    let reads = replicas.map(|r| async move {
        match engine.connect(&r.name, None).await {
            Ok(c) => {
                let f = free_bytes(&c).await;
                let st = if galera {
                    super::members::state_line(&c, d.client(), GALERA_STATE).await
                } else {
                    String::new()
                };
                c.close().await;
                (r.name.clone(), Some((f, st)))
            }
            // A replica that is down replays the reload when it is back: its room is its
            // own apply's concern then, and the plan says it was not checked. (A Galera
            // member not reached is refused by the command before the plan: it could not
            // be fenced.)
            Err(_) => (r.name.clone(), None),
        }
    });
    let mut states = Vec::new();
    if galera {
        let st = super::members::state_line(conn, d.client(), GALERA_STATE).await;
        states.push((host.to_string(), st));
    }
    for (name, f) in futures::future::join_all(reads).await {
        match f {
            Some((f, st)) => {
                free.push((name.clone(), f?));
                states.push((name, st));
            }
            None if galera => states.push((name, String::new())),
            None => unchecked.push(name),
        }
    }
    if galera {
        members_synced(&h.cluster, &states)?;
    }
    room(dump_bytes, &free)?;
    let logs = match binlog {
        Some(b) => {
            let all = snapshots(conn, &b.name).await?;
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
    let mut p = new_plan(
        engine,
        host,
        to_text,
        format!(
            "Restore {host} (primary of cluster {}) to {}:",
            h.cluster,
            to.map(|t| t.to_string())
                .unwrap_or_else(|| "the newest backups".into())
        ),
    );
    p.observe(
        &logical.server,
        &format!("{} backup", logical.name),
        format!("{} taken {}", dump.short_id, dump.time),
    );
    if let Some((b, s)) = &logs {
        p.observe(
            &b.server,
            &format!("{} newest run", b.name),
            format!("{} taken {}", s.short_id, s.time),
        );
    }
    observe_room(&mut p, dump_bytes, &free);
    for h in &unchecked {
        p.notes.push(format!(
            "{h} did not answer: its free space was not checked (it replays the reload when it is back, twice the dump's {} MiB)",
            dump_bytes / 1_048_576
        ));
    }
    if !others.is_empty() {
        p.step(
            &others,
            format!(
                "read_only ON on {} (each member of Galera cluster {} takes writes: none may while {host} reloads)",
                others.join(", "),
                h.cluster
            ),
            Action::Sql {
                statements: d.set_read_only(true),
            },
            true,
        );
    }
    let mut summary = format!(
        "read_only ON on {host} (application writes stop until the end)\n\
         drop and reload {} from {} backup {} taken {}\n",
        logical.databases.join(", "),
        logical.name,
        dump.short_id,
        dump.time,
    );
    match &logs {
        Some((b, s)) => summary.push_str(&format!(
            "replay the archived binary logs of {} (backup {} taken {}) from the dump's GTID position {}, per database\n",
            b.name,
            s.short_id,
            s.time,
            to.map(|t| format!("up to {t}"))
                .unwrap_or_else(|| "to their end".into())
        )),
        None => summary.push_str("(no binlog archive: nothing after the dump is replayed)\n"),
    }
    summary.push_str(&if galera {
        format!(
            "every step replicates to the other members of Galera cluster {} (write sets; the DROP and CREATE DATABASE in total order)\n\
             read_only OFF on {host} (a failure leaves it read-only)",
            h.cluster
        )
    } else {
        format!(
            "every step is binary-logged: the replicas of {} follow as ordinary replication\n\
             read_only OFF on {host} (a failure leaves it read-only)",
            h.cluster
        )
    });
    summary.push_str(&format!(
        "\n(a detached run on {host}: a killed or cut-off dbfleet leaves it going, and this command started again attaches to it)"
    ));
    p.step(
        &[host],
        summary,
        Action::Detached {
            run: DetachedRun::Restore,
            request,
            script: Some(script(
                d,
                (logical, &dump),
                logs.as_ref().map(|(b, s)| (*b, s)),
                to,
                galera,
            )),
        },
        true,
    );
    open_members(&mut p, d, &others);
    Ok(p)
}

/// The last step of a Galera cluster's restore: read_only OFF on the `others` members,
/// fenced before the reload (none for a primary's restore).
fn open_members(p: &mut RunbookPlan, d: Dialect, others: &[&str]) {
    if others.is_empty() {
        return;
    }
    p.step(
        others,
        format!("read_only OFF on {}", others.join(", ")),
        Action::Sql {
            statements: d.set_read_only(false),
        },
        true,
    );
}

/// The size in bytes of the file `path` of snapshot `id` in repository `repo`, read by the
/// host's helper (`backup-restore REPO ls ID`: restic's `ls --json`, one JSON object per
/// line, a file's with `path` and `size`).
///
/// Errors: [`Error::Refused`] when the helper fails or the snapshot has no such file.
async fn file_size(conn: &SshHost, repo: &str, id: &str, path: &str) -> Result<u64, Error> {
    let out = helper(
        conn,
        repo,
        &format!("ls {}", q(id)),
        &format!("backup {id} of {repo}"),
    )
    .await?;
    size_in_listing(&out, path).ok_or_else(|| {
        Error::Refused(format!(
            "backup {id} of {repo} holds no file {path}: it is not a dump of this job"
        ))
    })
}

/// The `size` of the file node whose `path` is `path` in restic's `ls --json` output.
fn size_in_listing(listing: &str, path: &str) -> Option<u64> {
    listing
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["path"] == path && v["type"] == "file")
        .and_then(|v| v["size"].as_u64())
}

/// Free bytes on the file systems a restore writes to on a host: the smaller of its data
/// folder's and dbfleet's state folder's (`df`).
///
/// Errors: [`Error::Refused`] when the host gives no figure.
async fn free_bytes(conn: &SshHost) -> Result<u64, Error> {
    let o = conn
        .run("df -B1 --output=avail /var/lib/mysql /var/lib/dbfleet 2>/dev/null | tail -n +2; true\n")
        .await
        .map_err(|e| Error::Refused(e.to_string()))?;
    o.stdout
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok())
        .min()
        .ok_or_else(|| Error::Refused(format!("{} reports no free space figure (df)", conn.name)))
}

/// Refuses a restore whose dump of `dump_bytes` would not fit: every database host of the
/// cluster (`free`: its name and free bytes) needs twice the dump free. The primary keeps
/// the dump in its work folder and logs the reload in its binary log; each replica takes
/// the reload into its relay log and logs it again in its own binary log. Found by
/// `bench/backup.sh` at 4 GiB: the restore filled the disk ("No space left on device").
///
/// Errors: [`Error::Refused`] naming each host short of room, with the figures.
fn room(dump_bytes: u64, free: &[(String, u64)]) -> Result<(), Error> {
    let need = dump_bytes.saturating_mul(2);
    let short: Vec<String> = free
        .iter()
        .filter(|(_, f)| *f < need)
        .map(|(h, f)| format!("{h} has {} MiB free", f / 1_048_576))
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "not enough free space for this restore: the dump is {} MiB and every database host of the cluster needs twice that free ({} MiB: the dump, and the reload in the binary and relay logs); {}. Nothing was changed",
        dump_bytes / 1_048_576,
        need / 1_048_576,
        short.join(", ")
    )))
}

/// Records in `p` that each host of `free` (name, free bytes) has room for the reload of a
/// dump of `dump_bytes`: the observation (what a saved plan is checked against before it
/// runs) is the verdict and the bytes needed, the free figures are a note. Free space moves
/// by the MiB on a live server (logs, temporary tables): a saved plan observed to the MiB
/// was refused as stale by a 1 MiB drift (CI, `restore_to_a_point_in_time…`). A host that
/// has lost the room by the time the plan runs refuses it anyway: apply plans again, and
/// [`room`] refuses.
fn observe_room(p: &mut RunbookPlan, dump_bytes: u64, free: &[(String, u64)]) {
    let need = dump_bytes.saturating_mul(2);
    for (h, f) in free {
        p.observe(
            h,
            "free space",
            format!(
                "room for the reload: at least {} MiB free (twice the dump's {} MiB)",
                need / 1_048_576,
                dump_bytes / 1_048_576
            ),
        );
        p.notes
            .push(format!("{h} had {} MiB free when planned", f / 1_048_576));
    }
}

/// An empty plan of the restore of `host` to `to_text` (as given), titled `title`.
fn new_plan(
    engine: &crate::engine::Engine,
    host: &str,
    to_text: Option<&str>,
    title: String,
) -> RunbookPlan {
    RunbookPlan::new(
        Runbook::Restore {
            host: host.to_string(),
            to: to_text.map(str::to_string),
        },
        engine.opts.inventory.display().to_string(),
        engine.inv.digest.clone(),
        title,
    )
}

/// What a restore command asks for, as the run keeps it: `restore HOST [--to TIME]`.
fn request_text(host: &str, to: Option<&str>) -> String {
    match to {
        Some(t) => format!("restore {host} --to {t}"),
        None => format!("restore {host}"),
    }
}

/// What the plan says of a restore run on the host, and what the host said of it; `None`
/// when there is no run.
fn described(state: &State) -> Option<(String, &Seen)> {
    match state {
        State::None => None,
        State::Running(seen) => Some(("a restore is in progress".to_string(), seen)),
        State::Finished { rc, seen, .. } => Some((
            format!("a restore ended (exit {rc}) with no dbfleet attached"),
            seen,
        )),
        State::Lost(seen) => Some((
            "a restore ended without a result (its supervisor died: the host rebooted, or it was killed); the primary stays read-only".to_string(),
            seen,
        )),
    }
}

/// The plan of a command that finds a restore run on `host` already (`what`, `seen`:
/// [`described`]): one step that attaches to it (waits for it, shows its result). A run
/// asked for something else than `request` is refused when the step runs, naming what it
/// does.
fn attach_plan(
    engine: &crate::engine::Engine,
    host: &str,
    to_text: Option<&str>,
    request: &str,
    what: &str,
    seen: &Seen,
) -> RunbookPlan {
    let theirs = seen
        .kept("request")
        .unwrap_or("an unknown request")
        .to_string();
    let mut p = new_plan(
        engine,
        host,
        to_text,
        format!(
            "Restore {host}: {what} there, started {} s ago by `{theirs}`:",
            seen.now.saturating_sub(seen.started)
        ),
    );
    p.observe(host, "restore run", format!("{what}, `{theirs}`"));
    if theirs != request {
        p.notes.push(format!(
            "this command asks for `{request}`: attaching is refused while that run is there; wait for it to end"
        ));
    }
    p.step(
        &[host],
        format!("attach to the restore run: wait for it and show its result (read_only OFF on {host} is its last step)"),
        Action::Detached {
            run: DetachedRun::Restore,
            request: request.to_string(),
            script: None,
        },
        true,
    );
    p
}

/// The shell script the host runs: read-only on, the dump loaded (its databases dropped
/// first), the binary logs replayed per database, read-only off.
pub fn script(
    d: Dialect,
    dump: (&Job, &Snapshot),
    binlogs: Option<(&Job, &Snapshot)>,
    to: Option<DateTime<Utc>>,
    galera: bool,
) -> String {
    let client = d.client();
    let (job, snap) = dump;
    let mut s = format!(
        "set -euo pipefail\nw={WORK}\nrm -rf \"$w\" && mkdir -p \"$w\" && chmod 700 \"$w\"\ntrap 'rm -rf \"$w\"' EXIT\n\
         {client} -e 'SET GLOBAL read_only = ON'\n\
         {HELPER} {repo} dump {id} {path} > \"$w/dump.sql\"\n{}",
        dump_position(d),
        repo = q(&job.name),
        id = q(&snap.short_id),
        path = q(&format!("/{}.sql", job.name)),
    );
    if galera {
        s.push_str(&galera_ready_wait(client, GALERA_READY_WAIT_S));
    }
    for db in &job.databases {
        s.push_str(&format!(
            "{client} -e {}\n",
            q(&format!(
                "DROP DATABASE IF EXISTS `{}`",
                db.replace('`', "``")
            ))
        ));
    }
    s.push_str(&format!(
        "{}\necho \"backup {} loaded (GTID position $pos)\"\n",
        load_dump(d),
        snap.short_id
    ));
    if let Some((bjob, bsnap)) = binlogs {
        let stop = to
            .map(|t| {
                format!(
                    " --stop-datetime={}",
                    q(&t.format("%Y-%m-%d %H:%M:%S").to_string())
                )
            })
            .unwrap_or_default();
        s.push_str(&format!(
            "{HELPER} {repo} restore {id} \"$w/binlogs\" > /dev/null\n\
             mapfile -t logs < <(find \"$w/binlogs\" -type f -name '*-bin.[0-9]*' | sort)\n\
             [ ${{#logs[@]}} -gt 0 ] || {{ echo 'the binlog backup holds no binary log' >&2; exit 1; }}\n{}",
            if d == Dialect::MariaDb {
                MARIADB_BINLOG_AFTER.to_string()
            } else {
                String::new()
            } + &packet_limit_raised(client),
            repo = q(&bjob.name),
            id = q(&bsnap.short_id),
        ));
        for db in &job.databases {
            s.push_str(&format!(
                "{}\n\
                 echo \"{name}: $(grep -c '^BINLOG' \"$w/replay.sql\" || true) row events replayed\"\n\
                 {{ echo {unannotated}; cat \"$w/replay.sql\"; }} | {client} --max-allowed-packet={REPLAY_PACKET_BYTES}\n",
                replay(d, &stop, &q(db)),
                unannotated = q(d.unannotated_session()),
                name = db,
            ));
        }
    }
    s.push_str(&format!(
        "{client} -e {}\n{client} -N -e {}\n",
        q(&d.set_read_only(false)),
        q(d.current_position())
    ));
    s
}

/// How long a Galera member's restore waits, before it drops anything, for the member to
/// be synced in the primary component again, in seconds. A member that has just seen
/// another come back (a paused or cut-off member rejoining the view) is briefly not ready,
/// and refuses every statement with ERROR 1047 "WSREP has not yet prepared node for
/// application use" (MariaDB KB "wsrep_ready"); seen in the lab test: the DROP DATABASE
/// failed that way seconds after every member read Synced, and the cluster stayed
/// read-only. A view change settles within seconds (`evs.inactive_timeout` 15 s by
/// default); a member still not ready after this long is a fault for the operator.
pub const GALERA_READY_WAIT_S: u32 = 60;

/// Shell that waits until this Galera member is synced in the primary component
/// (`crate::sql::galera::STATE_LINE` reads `SYNCED` and `PRIMARY_COMPONENT`), polling each
/// second, and fails after `limit_s` seconds naming the state it last read: nothing has
/// been dropped then (the step before only set read_only). `client`: the server's command
/// line client.
fn galera_ready_wait(client: &str, limit_s: u32) -> String {
    use crate::sql::galera::{PRIMARY_COMPONENT, STATE_LINE, SYNCED};
    format!(
        "want=$(printf '%s\\t%s' {SYNCED} {PRIMARY_COMPONENT})\n\
         t0=$(date +%s)\n\
         until [ \"$({client} -N -B -e {line} 2>/dev/null || true)\" = \"$want\" ]; do\n  \
           if [ $(( $(date +%s) - t0 )) -ge {limit_s} ]; then\n    \
             echo \"this member is not synced in the primary component after {limit_s} s (state: $({client} -N -B -e {line} 2>/dev/null | tr '\\t' ' ')); nothing was dropped\" >&2\n    \
             exit 1\n  \
           fi\n  \
           sleep 1\n\
         done\n",
        line = q(STATE_LINE),
    )
}

/// Refuses a Galera cluster's restore when a member is not synced in the primary
/// component (`states`: each member and its `crate::sql::galera::STATE_LINE`, tab
/// between, "" when its server did not answer): the reload replicates to every member as
/// write sets, and a member joining, donating or outside the primary component would fail
/// it half-way or miss it. Read when the plan is made, before anything changes.
///
/// Errors: [`Error::Refused`] naming each such member and its state, "nothing was changed".
fn members_synced(cluster: &str, states: &[(String, String)]) -> Result<(), Error> {
    use crate::sql::galera::{PRIMARY_COMPONENT, SYNCED};
    let want = format!("{SYNCED}\t{PRIMARY_COMPONENT}");
    let bad: Vec<String> = states
        .iter()
        .filter(|(_, st)| st.trim() != want)
        .map(|(h, st)| {
            let st = st.trim().replace('\t', " ");
            if st.is_empty() {
                format!("{h} (its server did not answer)")
            } else {
                format!("{h} (local state, component: {st})")
            }
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "restore refused: not every member of Galera cluster {cluster} is synced in the primary component: {}. The reload replicates to every member; wait until `dbfleet status` shows each one Synced in a Primary component. Nothing was changed",
        bad.join(", ")
    )))
}

/// Shell that sets `pos` to the dump's GTID position, or fails naming why. MariaDB:
/// `mariadb-dump --master-data=2 --gtid` comments it as `-- SET GLOBAL gtid_slave_pos=…`.
/// MySQL: `mysqldump --source-data=2` under `gtid_mode=ON` writes `SET
/// @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '…';`, the set broken over lines after each comma
/// (MySQL manual, mysqldump `--set-gtid-purged`).
fn dump_position(d: Dialect) -> &'static str {
    match d {
        Dialect::MariaDb => {
            "pos=$(sed -n \"s/^-- SET GLOBAL gtid_slave_pos='\\(.*\\)';$/\\1/p\" \"$w/dump.sql\" | tail -n 1)\n\
             [ -n \"$pos\" ] || { echo 'the dump records no GTID position (taken without --master-data --gtid?)' >&2; exit 1; }\n"
        }
        _ => {
            "pos=$(awk '/SET @@GLOBAL.GTID_PURGED=/{f=1} f{printf \"%s\", $0; if (/;[[:space:]]*$/) exit}' \"$w/dump.sql\" \\\n  \
             | sed -E \"s/.*'([^']*)';[[:space:]]*$/\\1/\")\n\
             case \"$pos\" in *:*) ;; *) echo 'the dump records no GTID set (taken without gtid_mode ON?)' >&2; exit 1 ;; esac\n"
        }
    }
}

/// Shell that loads `$w/dump.sql` into the server, binary-logged so the replicas follow.
/// MySQL's dump turns binary logging off for its session and sets `GTID_PURGED` (it is
/// made for seeding a new server); both are dropped here: on the cluster's own primary
/// the rows must replicate, and its GTID history already holds that set.
fn load_dump(d: Dialect) -> String {
    let client = d.client();
    match d {
        Dialect::MariaDb => format!("{client} < \"$w/dump.sql\""),
        _ => format!(
            "awk '/^SET @@SESSION.SQL_LOG_BIN/{{next}} /SET @@GLOBAL.GTID_PURGED=/{{f=1}} f{{if (/;[[:space:]]*$/) f=0; next}} {{print}}' \"$w/dump.sql\" | {client}"
        ),
    }
}

/// Shell that writes `$w/replay.sql`: the archived binary logs `${logs[@]}` after the
/// dump's position `$pos`, up to `stop` (` --stop-datetime=…` or empty), for the
/// database `db` (already quoted), with new GTIDs on replay (old ones would break
/// MariaDB's `gtid_strict_mode`, and MySQL would skip them as already executed: the
/// primary's history holds them). MariaDB: [`MARIADB_BINLOG_AFTER`] with the `gtid_seq_no`
/// and `server_id` lines dropped; MySQL: `--exclude-gtids` and `--skip-gtids`.
fn replay(d: Dialect, stop: &str, db: &str) -> String {
    let reader = d.binlog_reader();
    match d {
        Dialect::MariaDb => format!(
            "binlog_after \"$w/replay.sql\" '/SET @@session\\.(gtid_seq_no|server_id)=/d' {} --database={db}",
            if stop.is_empty() {
                "''".to_string()
            } else {
                stop.trim_start().to_string()
            }
        ),
        _ => format!(
            "TZ=UTC {reader} --exclude-gtids=\"$pos\" --skip-gtids{stop} --database={db} \"${{logs[@]}}\" > \"$w/replay.sql\""
        ),
    }
}

/// Shell (bash, `set -e`, `$w` a scratch folder) that raises the server's packet limit to
/// [`crate::sql::REPLAY_PACKET_BYTES`] for the replay and puts the old value back when the
/// script exits, whatever its end (an `EXIT` trap that also removes `$w`). The replay's
/// client is started after it, with `--max-allowed-packet` of the same size.
pub(crate) fn packet_limit_raised(client: &str) -> String {
    use crate::sql::{PACKET_LIMIT_QUERY, REPLAY_PACKET_BYTES, set_packet_limit};
    format!(
        "packet=$({client} -N -e {query})\n\
         trap '{client} -e \"{set}\" || true; rm -rf \"$w\"' EXIT\n\
         {client} -e {raise}\n",
        query = q(PACKET_LIMIT_QUERY),
        set = set_packet_limit("$packet"),
        raise = q(&set_packet_limit(REPLAY_PACKET_BYTES)),
    )
}

/// Shell that defines `binlog_after FILE EDIT STOP [OPTION…]`: the events of the archived
/// binary logs `${logs[@]}` that follow the GTID position `$pos`, up to `STOP` (one
/// `mariadb-binlog` option such as `--stop-datetime=…`, or empty), edited by the `sed -E`
/// script `EDIT`, into `FILE`; scratch in `$w`. Fails (status 1, the reader's error on
/// stderr) when the logs cannot be read.
///
/// `mariadb-binlog --start-position=GTID` (MariaDB 10.8+) exits with "Binary logs never
/// reached expected GTID state" when no transaction follows the position in what it read:
/// a quiet database restored to a time just after its backup, or a binlog archive whose
/// last run precedes the backup. Nothing then remains to replay; that is checked, not
/// assumed, by a second read that finds no GTID past the position (per replication
/// domain; a domain the position lacks is past it), and the replay is empty. A GTID past
/// the position keeps the error.
pub(crate) const MARIADB_BINLOG_AFTER: &str = r#"binlog_after() {
  local file=$1 edit=$2 stop=$3 past; shift 3
  if TZ=UTC mariadb-binlog --start-position="$pos" ${stop:+"$stop"} "$@" "${logs[@]}" 2> "$w/binlog.err" \
    | sed -E "$edit" > "$file"; then
    return 0
  fi
  if grep -q 'never reached expected GTID state' "$w/binlog.err"; then
    past=$({ TZ=UTC mariadb-binlog ${stop:+"$stop"} "${logs[@]}" 2> /dev/null || true; } | awk -v pos="$pos" '
      BEGIN { n = split(pos, p, ","); for (i = 1; i <= n; i++) { split(p[i], g, "-"); seq[g[1]] = g[3] + 0 } }
      /^#[0-9]+ .*server id .*end_log_pos .*GTID [0-9]+-[0-9]+-[0-9]+/ {
        match($0, /GTID [0-9]+-[0-9]+-[0-9]+/); split(substr($0, RSTART + 5, RLENGTH - 5), g, "-")
        if (!(g[1] in seq) || g[3] + 0 > seq[g[1]]) { print g[1] "-" g[2] "-" g[3]; exit }
      }')
    if [ -z "$past" ]; then
      echo "no transaction in the archived binary logs follows $pos${stop:+ before ${stop#*=}}: nothing to replay"
      : > "$file"
      return 0
    fi
  fi
  cat "$w/binlog.err" >&2
  return 1
}
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn a_restore_needs_twice_the_dump_free_on_every_database_host() {
        let listing = concat!(
            r#"{"time":"2026-12-06T10:00:00Z","tree":"ab","paths":["/app-logical.sql"],"id":"12","short_id":"12","struct_type":"snapshot"}"#,
            "\n",
            r#"{"name":"app-logical.sql","type":"file","path":"/app-logical.sql","size":4366143488,"struct_type":"node"}"#,
            "\n"
        );
        assert_eq!(
            super::size_in_listing(listing, "/app-logical.sql"),
            Some(4_366_143_488)
        );
        assert_eq!(super::size_in_listing(listing, "/other.sql"), None);
        let gib = 1u64 << 30;
        let ok = [("db1".to_string(), 9 * gib), ("db2".to_string(), 8 * gib)];
        assert!(super::room(4 * gib, &ok).is_ok());
        let short = [("db1".to_string(), 9 * gib), ("db3".to_string(), 7 * gib)];
        let e = super::room(4 * gib, &short)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("db3 has 7168 MiB free"), "{e}");
        assert!(!e.contains("db1 has"), "{e}");
        assert!(e.contains("needs twice that free (8192 MiB"), "{e}");
    }

    use super::*;

    #[test]
    fn a_saved_restore_plan_is_not_stale_when_free_space_drifts_but_keeps_the_room() {
        let plan = |free: u64| {
            let mut p = RunbookPlan::new(
                Runbook::Restore {
                    host: "db1".into(),
                    to: None,
                },
                "lab.yml".into(),
                "digest".into(),
                "Restore db1".into(),
            );
            observe_room(&mut p, 1 << 20, &[("db1".to_string(), free)]);
            p
        };
        let saved = plan(71_158 << 20);
        assert!(saved.stale_against(&plan(71_157 << 20)).is_empty());
        assert!(saved.render().contains("db1 had 71158 MiB free"));
    }

    /// Runs [`galera_ready_wait`] (bound `limit_s`) under bash with a scripted `mariadb` on
    /// PATH that answers `states` in turn (the last one from then on) and counts its calls.
    /// Returns (status, stderr, calls).
    fn ready_wait(states: &[&str], limit_s: u32) -> (i32, String, usize) {
        let sb = crate::tasks::sandbox::Sandbox::new(
            "mariadb",
            "n=$(cat \"$FAKE_DIR/n\" 2>/dev/null || echo 0); echo $((n + 1)) > \"$FAKE_DIR/n\"\n\
             line=$(sed -n \"$((n + 1))p\" \"$FAKE_DIR/states\"); [ -n \"$line\" ] || line=$(tail -n 1 \"$FAKE_DIR/states\")\n\
             printf '%s\\n' \"$line\" | tr '|' '\\t'\n",
        );
        std::fs::write(sb.path("states"), states.join("\n") + "\n").expect("states");
        let o = sb.run(
            "bash",
            &format!(
                "set -euo pipefail\n{}echo dropped\n",
                galera_ready_wait("mariadb", limit_s)
            ),
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let code = o.status.code().unwrap_or(-1);
        assert_eq!(code == 0, out.contains("dropped"), "{out}");
        (
            code,
            String::from_utf8_lossy(&o.stderr).into(),
            sb.read("n").trim().parse().unwrap_or(0),
        )
    }

    #[test]
    fn a_galera_member_briefly_not_ready_is_waited_for_before_anything_is_dropped() {
        // The lab test's failure: every member read Synced, then the reload's DROP met
        // ERROR 1047 on a member settling a view change. It waits and goes on.
        let (code, err, calls) = ready_wait(&["1|Non-Primary", "2|Primary", "4|Primary"], 30);
        assert_eq!(code, 0, "{err}");
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_galera_member_never_ready_fails_the_restore_before_anything_is_dropped() {
        let (code, err, _) = ready_wait(&["4|Non-Primary"], 2);
        assert_eq!(code, 1);
        assert!(
            err.contains("not synced in the primary component after 2 s (state: 4 Non-Primary)")
                && err.contains("nothing was dropped"),
            "{err}"
        );
    }

    #[test]
    fn a_galera_restore_waits_for_its_member_before_the_first_drop_and_a_primarys_does_not() {
        use crate::backup::{Job, JobKind};
        let mut job = Job::fixture("app-logical", JobKind::Logical, None);
        job.databases = vec!["app".into()];
        let snap = snap("2026-12-06T10:00:00Z", "4cba5192");
        let galera = script(Dialect::MariaDb, (&job, &snap), None, None, true);
        let wait = galera.find("until [").expect("a wait");
        let drop = galera.find("DROP DATABASE").expect("a drop");
        assert!(wait < drop, "{galera}");
        let primary = script(Dialect::MariaDb, (&job, &snap), None, None, false);
        assert!(!primary.contains("until ["), "{primary}");
    }

    #[test]
    fn a_galera_restore_is_refused_when_a_member_is_not_synced_in_the_primary_component() {
        let st = |h: &str, s: &str| (h.to_string(), s.to_string());
        assert!(
            members_synced(
                "galera",
                &[st("db1", "4\tPrimary"), st("db2", "4\tPrimary\n")]
            )
            .is_ok()
        );
        let e = members_synced(
            "galera",
            &[
                st("db1", "4\tPrimary"),
                st("db2", "2\tPrimary"),
                st("db3", ""),
            ],
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("db2 (local state, component: 2 Primary)"), "{e}");
        assert!(e.contains("db3 (its server did not answer)"), "{e}");
        assert!(!e.contains("db1"), "{e}");
        assert!(e.contains("Nothing was changed"), "{e}");
    }

    fn snap(time: &str, id: &str) -> Snapshot {
        serde_json::from_value(serde_json::json!({"time": time, "short_id": id, "tags": []}))
            .expect("snapshot")
    }

    /// Runs [`MARIADB_BINLOG_AFTER`] under bash with a scripted `mariadb-binlog` on PATH:
    /// with `--start-position` it prints `ok` output or fails with `err`; without, it
    /// prints `log` (the second read). Returns (status, stdout, stderr, the file).
    fn binlog_after(
        pos: &str,
        ok: Option<&str>,
        err: &str,
        log: &str,
    ) -> (i32, String, String, String) {
        let start = if ok.is_some() {
            "cat \"$FAKE_DIR/ok\""
        } else {
            "cat \"$FAKE_DIR/err\" >&2; exit 1"
        };
        let sb = crate::tasks::sandbox::Sandbox::new(
            "mariadb-binlog",
            &format!(
                "case \"$*\" in\n  *--start-position=*) {start} ;;\n  *) cat \"$FAKE_DIR/log\" ;;\nesac\n"
            ),
        );
        for (name, text) in [("ok", ok.unwrap_or("")), ("err", err), ("log", log)] {
            std::fs::write(sb.path(name), text).expect("answer");
        }
        let script = format!(
            "set -euo pipefail\nw=\"$FAKE_DIR\"\npos={pos}\nlogs=(a b)\n{MARIADB_BINLOG_AFTER}binlog_after \"$w/out\" '/server_id=/d' --stop-datetime='2026-12-06 13:00:00' --database=app\n",
        );
        let o = sb.run("bash", &script);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
            sb.read("out"),
        )
    }

    const NEVER: &str = "ERROR: Binary logs never reached expected GTID state of 0-1-111\n";
    fn header(gtid: &str) -> String {
        format!(
            "#261206 13:00:00 server id 1  end_log_pos 400 CRC32 0x1a2b3c4d \tGTID {gtid} trans\n"
        )
    }

    #[test]
    fn the_binlogs_after_a_position_are_replayed_edited() {
        let (code, _, _, file) = binlog_after(
            "0-1-111",
            Some("BINLOG 'AAA'\nSET @@session.server_id=1\nCOMMIT\n"),
            "",
            "",
        );
        assert_eq!(code, 0);
        assert_eq!(file, "BINLOG 'AAA'\nCOMMIT\n");
    }

    #[test]
    fn nothing_logged_after_the_position_is_an_empty_replay_not_a_failure() {
        let log = format!(
            "#261206 12:00:00 server id 1  end_log_pos 256 CRC32 0x0 \tGtid list [0-1-100]\n{}{}{}",
            header("0-1-110"),
            header("0-1-111"),
            "INSERT INTO t VALUES ('GTID 0-1-999')\n"
        );
        let (code, out, err, file) = binlog_after("0-1-111", None, NEVER, &log);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("nothing to replay"), "{out}");
        assert_eq!(file, "");
    }

    #[test]
    fn a_transaction_past_the_position_keeps_the_readers_error() {
        for (pos, past) in [
            ("0-1-111", "0-1-112"),
            ("0-1-111", "1-1-5"),
            ("0-1-111,1-2-7", "1-2-8"),
        ] {
            let log = format!("{}{}", header("0-1-111"), header(past));
            let (code, out, err, _) = binlog_after(pos, None, NEVER, &log);
            assert_eq!(code, 1, "{pos} then {past}: {out}");
            assert!(err.contains("never reached"), "{err}");
        }
        // Another error of the reader is never taken for an empty replay.
        let (code, _, err, _) = binlog_after(
            "0-1-111",
            None,
            "ERROR: Could not open log file\n",
            &header("0-1-111"),
        );
        assert_eq!(code, 1);
        assert!(err.contains("Could not open"), "{err}");
    }

    #[test]
    fn times_parse_as_rfc3339_or_utc() {
        assert_eq!(
            parse_time("2026-11-21 14:05:00").expect("utc"),
            parse_time("2026-11-21T15:05:00+01:00").expect("rfc3339")
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn the_newest_backup_at_or_before_the_time_is_chosen() {
        let s = [
            snap("2026-11-20T22:00:01Z", "a"),
            snap("2026-11-21T22:00:00Z", "b"),
            snap("2026-11-21T10:00:00.5+00:00", "c"),
        ];
        let at = |t: &str| {
            newest_before(&s, Some(parse_time(t).expect("t"))).map(|x| x.short_id.clone())
        };
        assert_eq!(at("2026-11-21 09:59:59"), Some("a".into()));
        assert_eq!(at("2026-11-21 12:00:00"), Some("c".into()));
        assert_eq!(at("2026-11-20 12:00:00"), None);
        assert_eq!(
            newest_before(&s, None).map(|x| x.short_id.as_str()),
            Some("b")
        );
    }
}
