//! Backup jobs: names and paths that reach a shell, kinds and hosts, cron schedules,
//! retention, declared RPO/RTO against the worst case the schedules give, and the offsite
//! copy (seeds 001–004).

use super::*;

/// A backup job's name: it names a script, a repository folder and restic tags.
pub(super) fn is_job_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// An absolute path that is safe in a shell word once quoted and in restic's arguments.
pub(super) fn is_safe_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 4096
        && !p.split('/').any(|c| c == "..")
        && !p
            .chars()
            .any(|c| c.is_control() || matches!(c, '\'' | '"' | '`' | '\\' | '$'))
}

/// A job as checked so far, with its schedules' and its `rpo`'s spans (for the RPO pass).
pub(super) type ParsedJob = (
    crate::backup::Job,
    Vec<(crate::backup::rpo::Schedule, (usize, usize))>,
    Option<(usize, usize)>,
);

/// Backup jobs: kind, host and role, schedules (cron), retention, objectives; then the
/// worst-case RPO each job's schedules give (with binlog archiving for database jobs of a
/// cluster that has it) against the declared `rpo`, refused at the schedule that cannot
/// meet it. Sources: seeds 001–004 (schedules, retention, RPO/RTO), seed 000 (binlogs).
pub(super) fn check_backups(
    c: &mut Checker,
    b: &Spanned<crate::inventory::schema::RawBackups>,
    hosts: &[Host],
    secrets: &BTreeMap<String, crate::inventory::SecretSource>,
    flavor: crate::inventory::Flavor,
) -> (Vec<crate::backup::Job>, Option<crate::backup::Offsite>) {
    if !b.value.jobs.0.is_empty() && !secrets.contains_key("backup_encryption_password") {
        let sp = c.span(b);
        c.push(
            Problem::at(
                "backups need the secret `backup_encryption_password`",
                sp,
                "these jobs",
            )
            .help("add `backup_encryption_password: { generate: 32 }` under `secrets:`; restic encrypts every backup with it, so keep a copy outside the fleet"),
        );
    }
    use crate::backup::rpo::{Schedule, human, worst_gap};
    use crate::backup::{Job, JobKind, Run};
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let server = match &b.value.server {
        Some(s) => {
            match hosts.iter().find(|h| h.name == s.value) {
                Some(h) if h.has(Role::Backup) => {}
                Some(_) => {
                    let sp = c.span(s);
                    c.push(
                        Problem::at(
                            format!("`{}` is not a backup server", s.value),
                            sp,
                            "no `backup` role",
                        )
                        .help("the backup server is a host with the `backup` role"),
                    );
                }
                None => {
                    let sp = c.span(s);
                    c.unknown_host("backup server", &s.value, sp, &names);
                }
            }
            s.value.clone()
        }
        None => {
            let servers: Vec<&Host> = hosts.iter().filter(|h| h.has(Role::Backup)).collect();
            if servers.len() == 1 {
                servers[0].name.clone()
            } else {
                let sp = c.span(b);
                c.push(
                    Problem::at(
                        format!(
                            "backups need a server: {} hosts have the `backup` role",
                            servers.len()
                        ),
                        sp,
                        "here",
                    )
                    .help("add `server: HOST` naming a host with the `backup` role"),
                );
                String::new()
            }
        }
    };
    // (job index, schedules with their spans) for the RPO pass.
    let mut parsed: Vec<ParsedJob> = Vec::new();
    for (key, job) in &b.value.jobs.0 {
        let j = &job.value;
        let kspan = c.span(key);
        // Job names, databases and paths reach root's cron scripts and restic's command
        // lines: each is a checked name (issue 11: a database `x; touch /tmp/p` became a
        // command).
        if !is_job_name(&key.value) {
            c.push(
                Problem::at(
                    format!("backup job name `{}` is not valid", key.value),
                    kspan,
                    "here",
                )
                .help("letters, digits, `_` and `-`, 64 at most, not starting with `-`"),
            );
            continue;
        }
        let mut names_ok = true;
        for d in &j.databases {
            if !is_sql_name(&d.value) {
                let sp = c.span(d);
                c.push(
                    Problem::at(
                        format!("database name `{}` is not valid", d.value),
                        sp,
                        "here",
                    )
                    .help("use letters, digits and `_` (64 at most)"),
                );
                names_ok = false;
            }
        }
        for p in &j.paths {
            if !is_safe_path(&p.value) {
                let sp = c.span(p);
                c.push(
                    Problem::at(format!("path `{}` is not valid", p.value), sp, "here")
                        .help("an absolute path without `..`, control characters or quotes"),
                );
                names_ok = false;
            }
        }
        if !names_ok {
            continue;
        }
        let kind = match JobKind::parse(&j.kind.value) {
            Some(k) => k,
            None => {
                let sp = c.span(&j.kind);
                let help = did_you_mean(&j.kind.value, JobKind::NAMES.iter().copied())
                    .unwrap_or_else(|| format!("kinds: {}", JobKind::NAMES.join(", ")));
                c.push(
                    Problem::at(
                        format!("unknown backup kind `{}`", j.kind.value),
                        sp,
                        "not a kind",
                    )
                    .help(help),
                );
                continue;
            }
        };
        match hosts.iter().find(|h| h.name == j.host.value) {
            None => {
                let sp = c.span(&j.host);
                c.unknown_host("backup host", &j.host.value, sp, &names);
            }
            Some(h) if kind.needs_database() && !h.is_database() => {
                let sp = c.span(&j.host);
                c.push(
                    Problem::at(
                        format!(
                            "a {} backup runs on a database host; `{}` is not one",
                            j.kind.value, h.name
                        ),
                        sp,
                        "no primary or replica role",
                    )
                    .help("name a primary or replica (a replica spares the primary)"),
                );
            }
            // A Galera member is backed up like a replica (physical with --galera-info, or
            // logical); its binary logs are each member's own (wsrep writes them apart), so
            // a point-in-time replay across members is not built.
            Some(h) if h.has(Role::Member) && (h.in_group() || kind == JobKind::Binlog) => {
                let sp = c.span(&j.host);
                c.push(
                    Problem::at(
                        if h.in_group() {
                            format!(
                                "`{}` is a member of a replication group: dbfleet does not back up a replication group yet",
                                h.name
                            )
                        } else {
                            format!(
                                "`{}` is a Galera member: dbfleet does not archive a Galera cluster's binary logs yet",
                                h.name
                            )
                        },
                        sp,
                        "a synchronous cluster's member",
                    )
                    .help(if h.in_group() {
                        "backups of a group member, their restore and rebuild are not built yet (issue 27); back it up by hand meanwhile"
                    } else {
                        "a Galera member takes `physical` (mariadb-backup --galera-info) and `logical` jobs; point-in-time recovery of a Galera cluster is not built yet (issue 27)"
                    }),
                );
            }
            Some(_) => {}
        }
        let mut schedules = Vec::new();
        let mut runs = Vec::new();
        let wanted: Vec<(&str, &Option<Spanned<String>>)> = match kind {
            JobKind::Physical => vec![
                ("full", &j.full),
                ("differential", &j.differential),
                ("incremental", &j.incremental),
            ],
            _ => vec![("run", &j.schedule)],
        };
        if kind != JobKind::Physical {
            for e in [&j.full, &j.differential, &j.incremental]
                .into_iter()
                .flatten()
            {
                let sp = c.span(e);
                c.push(
                    Problem::at(
                        format!("a {} job has one `schedule`", j.kind.value),
                        sp,
                        "only physical jobs have full, differential and incremental backups",
                    )
                    .help("e.g. schedule: \"0 22 * * *\" (daily at 22:00, seed 001)"),
                );
            }
        }
        if kind == JobKind::Physical && flavor == crate::inventory::Flavor::Mysql {
            // Issue 13: Debian ships no physical backup tool for MySQL (no xtrabackup for
            // 8.4 or 9.x, and `percona-xtrabackup-80` is not a Debian package), so a
            // physical job could only fail at its first run.
            let sp = c.span(&j.kind);
            c.push(
                Problem::at(
                    "physical backups need mariadb-backup: there is no physical backup tool for MySQL in Debian",
                    sp,
                    "not for flavor: mysql",
                )
                .help("use `kind: logical` (a consistent dump) and `kind: binlog` (point-in-time recovery) for MySQL"),
            );
        }
        if kind == JobKind::Physical && j.schedule.is_some() {
            let sp = c.span(j.schedule.as_ref().unwrap_or_else(|| unreachable!()));
            c.push(
                Problem::at(
                    "a physical job has `full`, `differential` and `incremental` schedules, not `schedule`",
                    sp,
                    "here",
                )
                .help(
                    "e.g. full: \"0 0 * * 0\" (Sunday) and incremental: \"0 0 * * 1-6\" (seed 001)",
                ),
            );
        }
        for (mode, expr) in wanted {
            match expr {
                Some(e) => {
                    if let Some(s) = check_cron(c, e, "0 22 * * *") {
                        runs.push(Run {
                            schedule: e.value.clone(),
                            mode: mode.into(),
                        });
                        schedules.push((s, c.span(e)));
                    }
                }
                None if mode == "incremental" || mode == "differential" => {}
                None => {
                    let field = if mode == "full" { "full" } else { "schedule" };
                    c.push(
                        Problem::at(
                            format!("backup job `{}` needs `{field}`", key.value),
                            kspan,
                            "this job",
                        )
                        .help("a cron expression, e.g. \"0 22 * * *\" (daily at 22:00, seed 001)"),
                    );
                }
            }
        }
        if kind == JobKind::Path && j.paths.is_empty() {
            c.push(
                Problem::at(
                    format!("path job `{}` needs `paths`", key.value),
                    kspan,
                    "this job",
                )
                .help("the folders to back up, e.g. [/var/lib/grafana]"),
            );
        }
        let retention = j
            .retention
            .as_ref()
            .map(|r| check_retention(c, r))
            .unwrap_or_default();
        let rpo_s = j.rpo.as_ref().and_then(|d| check_duration(c, d));
        let rto_s = j.rto.as_ref().and_then(|d| check_duration(c, d));
        parsed.push((
            Job {
                name: key.value.clone(),
                kind,
                host: j.host.value.clone(),
                runs,
                databases: j.databases.iter().map(|d| d.value.clone()).collect(),
                paths: j.paths.iter().map(|p| p.value.clone()).collect(),
                pre_command: j.pre_command.clone(),
                retention,
                rpo_s,
                rto_s,
                worst_rpo_s: 0,
                offsite_worst_rpo_s: None,
                server: server.clone(),
            },
            schedules,
            j.rpo.as_ref().map(|r| c.span(r)),
        ));
    }
    // Binary-log archiving per cluster: its worst gap bounds the cluster's data loss.
    let cluster_of = |h: &str| {
        hosts
            .iter()
            .find(|x| x.name == h)
            .map(|x| x.cluster.clone())
    };
    // Per cluster, the best of its binlog jobs by `gap` (seconds).
    let binlog_best = |gap: &dyn Fn(&[&Schedule]) -> Option<u64>| {
        let mut best: BTreeMap<String, u64> = BTreeMap::new();
        for (job, scheds, _) in &parsed {
            if job.kind == JobKind::Binlog
                && let (Some(cl), Some(g)) = (
                    cluster_of(&job.host),
                    gap(&scheds.iter().map(|s| &s.0).collect::<Vec<_>>()),
                )
            {
                let e = best.entry(cl).or_insert(u64::MAX);
                *e = (*e).min(g);
            }
        }
        best
    };
    // Each distinct set of schedules is measured once: a thousand jobs on the same
    // schedule cost one walk, not a thousand (issue 11).
    let gaps: std::cell::RefCell<HashMap<Vec<String>, Option<crate::backup::rpo::WorstGap>>> =
        Default::default();
    let gap_of = |s: &[&Schedule]| {
        let key: Vec<String> = s.iter().map(|x| x.text.clone()).collect();
        if let Some(g) = gaps.borrow().get(&key) {
            return g.clone();
        }
        let g = worst_gap(s);
        gaps.borrow_mut().insert(key, g.clone());
        g
    };
    let binlog_gap = binlog_best(&|s| gap_of(s).map(|g| g.seconds));
    let offsite = b
        .value
        .offsite
        .as_ref()
        .and_then(|o| check_offsite(c, o, secrets));
    // The offsite worst case per job: its own schedules' or, for a database job of a
    // cluster with binlog archiving, the archiving's when that is better.
    let offsite_gap = |scheds: &[&Schedule]| -> Option<u64> {
        let (_, copy) = offsite.as_ref()?;
        crate::backup::rpo::worst_offsite_gap(scheds, &[copy])
    };
    let binlog_offsite = binlog_best(&offsite_gap);
    // A gap's ends in the schedules' own zone, named (UTC without `timezone`).
    let zone = c.schedules.zone;
    let wall = |t: chrono::DateTime<chrono::Utc>| match zone {
        Some(z) => t.with_timezone(&z).format("%a %b %-d %H:%M %Z").to_string(),
        None => t.format("%a %b %-d %H:%M UTC").to_string(),
    };
    let mut jobs = Vec::new();
    for (mut job, scheds, rpo_span) in parsed {
        let refs: Vec<&Schedule> = scheds.iter().map(|s| &s.0).collect();
        let Some(gap) = gap_of(&refs) else {
            if let Some((_, sp)) = scheds.first() {
                c.push(
                    Problem::at(
                        format!("backup job `{}` never runs", job.name),
                        *sp,
                        "no date matches",
                    )
                    .help(
                        "a day-of-month that no month has (e.g. 31 in February only) never fires",
                    ),
                );
            }
            continue;
        };
        let pitr = matches!(job.kind, JobKind::Logical | JobKind::Physical)
            .then(|| cluster_of(&job.host).and_then(|cl| binlog_gap.get(&cl).copied()))
            .flatten();
        job.worst_rpo_s = pitr.map_or(gap.seconds, |b| b.min(gap.seconds));
        if let Some(own) = offsite_gap(&refs) {
            let pitr = matches!(job.kind, JobKind::Logical | JobKind::Physical)
                .then(|| cluster_of(&job.host).and_then(|cl| binlog_offsite.get(&cl).copied()))
                .flatten();
            job.offsite_worst_rpo_s = Some(pitr.map_or(own, |b| b.min(own)));
        }
        if let (Some(rpo), Some(rsp)) = (job.rpo_s, rpo_span)
            && job.worst_rpo_s > rpo
            && let Some((_, sp)) = scheds.first()
        {
            c.push(
                Problem::at(
                    format!(
                        "backup job `{}` cannot meet its RPO of {}: its schedule leaves up to {} between backups",
                        job.name,
                        human(rpo),
                        human(job.worst_rpo_s)
                    ),
                    *sp,
                    format!("worst gap {} (from {} to {})", human(gap.seconds), wall(gap.from), wall(gap.to)),
                )
                .also(rsp, "declared here")
                .help("run it more often, relax `rpo`, or (database jobs) add a `binlog` job for point-in-time recovery"),
            );
        }
        jobs.push(job);
    }
    // With the backup server lost too, a job may lose what `offsite.rpo` allows, or what
    // its own `rpo` allows when that is larger (a monthly job cannot do better offsite).
    if let Some((o, copy)) = &offsite
        && let (Some(rpo), Some(o_raw)) = (o.rpo_s, b.value.offsite.as_ref())
        && let Some((job, allowed)) = jobs
            .iter()
            .filter_map(|j| {
                let allowed = j.rpo_s.unwrap_or(0).max(rpo);
                (j.offsite_worst_rpo_s? > allowed).then_some((j, allowed))
            })
            .max_by_key(|(j, allowed)| j.offsite_worst_rpo_s.unwrap_or(0) - allowed)
    {
        let sp = c.span(&o_raw.value.schedule);
        let mut p = Problem::at(
            format!(
                "the offsite copy cannot meet the RPO of job `{}`: with the backup server lost, its newest copy can be {} old, over the {} allowed",
                job.name,
                human(job.offsite_worst_rpo_s.unwrap_or_default()),
                human(allowed)
            ),
            sp,
            format!("copies at `{}`", copy.text),
        )
        .help("copy soon after the backups finish, more often, or relax `rpo` (offsite.rpo, or the job's own when larger)");
        if let Some(r) = &o_raw.value.rpo {
            p = p.also(c.span(r), "declared here");
        }
        c.push(p);
    }
    (jobs, offsite.map(|o| o.0))
}

/// `backups.timezone`: an IANA zone name (chrono-tz's database). It becomes the zone every
/// backup schedule is read in (the inventory's [`crate::backup::rpo::ScheduleBook`]).
pub(super) fn check_timezone(c: &mut Checker, z: &Spanned<String>) -> Option<crate::backup::Zone> {
    match z.value.parse::<chrono_tz::Tz>() {
        Ok(tz) => {
            c.schedules.zone = Some(tz);
            Some(crate::backup::Zone {
                name: tz.name().to_string(),
                whole_hours: crate::backup::rpo::whole_hours(tz),
            })
        }
        Err(_) => {
            let sp = c.span(z);
            let help = did_you_mean(&z.value, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                .unwrap_or_else(|| "an IANA zone name, e.g. Europe/Berlin or UTC".into());
            c.push(Problem::at(format!("unknown time zone `{}`", z.value), sp, "here").help(help));
            None
        }
    }
}

/// A cron expression (five fields, as in /etc/cron.d), or a problem at it whose help shows
/// `example`.
pub(super) fn check_cron(
    c: &mut Checker,
    e: &Spanned<String>,
    example: &str,
) -> Option<crate::backup::rpo::Schedule> {
    // In a zone, the hosts' guard (templates/cron-tz.sh.j2) reads the fields: numbers,
    // `*`, lists, ranges and steps, as cron(5) writes them.
    if c.schedules.zone.is_some()
        && !e
            .value
            .chars()
            .all(|ch| ch.is_ascii_digit() || " \t*,-/".contains(ch))
    {
        let sp = c.span(e);
        c.push(
            Problem::at(
                "with `backups.timezone`, a schedule is written with numbers",
                sp,
                "here",
            )
            .help(
                "numbers, `*`, lists, ranges and steps: e.g. \"30 2 * * 1-5\", not names like MON",
            ),
        );
        return None;
    }
    match c.schedules.get(&e.value) {
        Ok(s) => Some(s),
        Err(why) => {
            let sp = c.span(e);
            c.push(
                Problem::at(format!("invalid cron expression: {why}"), sp, "here").help(format!(
                    "five fields: minute hour day-of-month month day-of-week, e.g. \"{example}\""
                )),
            );
            None
        }
    }
}

/// A positive duration ("15m", "24h", "1d"), in seconds, or a problem at it.
pub(super) fn check_duration(c: &mut Checker, d: &Spanned<String>) -> Option<u64> {
    match humantime::parse_duration(d.value.trim()) {
        Ok(v) if v.as_secs() > 0 => Some(v.as_secs()),
        _ => {
            let sp = c.span(d);
            c.push(
                Problem::at(format!("`{}` is not a duration", d.value), sp, "here")
                    .help("write e.g. 15m, 24h, 1d, 2w"),
            );
            None
        }
    }
}

/// `retention:` of a job or of the offsite copy: `days`, `weeks`, or restic-style counts
/// (seeds 001–004 keep 14 days to 4 weeks).
pub(super) fn check_retention(
    c: &mut Checker,
    r: &Spanned<crate::inventory::schema::RawRetention>,
) -> crate::backup::Retention {
    let v = &r.value;
    let by_age = v.days.is_some() || v.weeks.is_some();
    let by_count = v.keep_daily.is_some() || v.keep_weekly.is_some() || v.keep_monthly.is_some();
    if (v.days.is_some() && v.weeks.is_some()) || (by_age && by_count) || (!by_age && !by_count) {
        let sp = c.span(r);
        c.push(
            Problem::at(
                "retention is `days`, `weeks`, or keep_daily/keep_weekly/keep_monthly",
                sp,
                "here",
            )
            .help("e.g. { days: 14 } (seed 004) or { weeks: 4 } (seed 001)"),
        );
    }
    crate::backup::Retention {
        within_days: v.days.or(v.weeks.map(|w| w * 7)),
        keep_daily: v.keep_daily,
        keep_weekly: v.keep_weekly,
        keep_monthly: v.keep_monthly,
    }
}

/// `backups.offsite` (seed 003): an S3 repository prefix restic understands, the two
/// credentials as names of declared secrets, a cron schedule, retention and `rpo`.
/// Returns the checked copy with its parsed schedule, or None when a part is invalid.
pub(super) fn check_offsite(
    c: &mut Checker,
    o: &Spanned<crate::inventory::schema::RawOffsite>,
    secrets: &BTreeMap<String, crate::inventory::SecretSource>,
) -> Option<(crate::backup::Offsite, crate::backup::rpo::Schedule)> {
    let v = &o.value;
    let mut ok = true;
    let repo = v.repository.value.trim();
    let url_ok = repo
        .strip_prefix("s3:")
        .and_then(|u| u.split_once("://"))
        .is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && rest
                    .split('/')
                    .nth(1)
                    .is_some_and(|bucket| !bucket.is_empty())
        });
    if !url_ok
        || repo
            .chars()
            .any(|ch| ch.is_whitespace() || "'\"`$\\".contains(ch))
    {
        let sp = c.span(&v.repository);
        c.push(
            Problem::at(format!("`{repo}` is not an S3 repository"), sp, "here")
                .help("restic's S3 form: s3:https://HOST[:PORT]/BUCKET[/PREFIX]"),
        );
        ok = false;
    }
    for s in [&v.access_key_id, &v.secret_access_key] {
        if !secrets.contains_key(&s.value) {
            let sp = c.span(s);
            let help =
                did_you_mean(&s.value, secrets.keys().map(|k| k.as_str())).unwrap_or_else(|| {
                    format!("declare `{}: {{ env: NAME }}` under `secrets:`", s.value)
                });
            c.push(Problem::at(format!("no secret `{}`", s.value), sp, "not declared").help(help));
            ok = false;
        }
    }
    let schedule = check_cron(c, &v.schedule, "30 3 * * *");
    let retention = v.retention.as_ref().map(|r| check_retention(c, r));
    let rpo_s = match &v.rpo {
        None => None,
        Some(d) => {
            let r = check_duration(c, d);
            ok &= r.is_some();
            r
        }
    };
    let schedule = schedule?;
    ok.then(|| {
        (
            crate::backup::Offsite {
                repository: repo.trim_end_matches('/').to_string(),
                access_key_id: v.access_key_id.value.clone(),
                secret_access_key: v.secret_access_key.value.clone(),
                schedule: v.schedule.value.clone(),
                retention,
                rpo_s,
            },
            schedule,
        )
    })
}
