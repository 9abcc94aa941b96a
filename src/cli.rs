//! Command line: clap definitions (their doc comments are the `--help` text), then one
//! function per verb that drives the engine and hands results to the reporter.
//! Exit codes are decided in `main.rs` from [`Exit`] and [`Error`].

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::{Engine, Options};
use crate::error::Error;
use crate::events::EventSink;
use crate::report::{self, Reporter, Style};

/// Declarative provisioning and operation of MariaDB/MySQL high-availability fleets.
///
/// Exit codes: 0 success (or no changes), 1 error, 2 changes pending (with
/// `plan --detailed-exitcode`).
#[derive(Debug, Parser)]
#[command(name = "dbfleet", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The inventory file.
    #[arg(
        short,
        long,
        global = true,
        env = "DBFLEET_INVENTORY",
        default_value = "inventory.yml"
    )]
    pub inventory: PathBuf,
    /// Act on these hosts only (comma-separated names).
    #[arg(long, global = true, value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Act on tasks with one of these tags only (comma-separated); notified handlers follow.
    #[arg(long, global = true, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Hosts worked on at once.
    #[arg(long, global = true, default_value_t = 20)]
    pub forks: usize,
    /// SSH connect timeout in seconds.
    #[arg(long, global = true, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Use the playbooks (and defaults.yml) of this folder instead of the built-in ones.
    #[arg(long, global = true)]
    pub playbooks: Option<PathBuf>,
    /// Use the templates of this folder instead of the built-in ones.
    #[arg(long, global = true)]
    pub templates: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress and no per-task lines; results and errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the inventory, playbooks and templates; contacts no host.
    Validate,
    /// Show what `apply` would change, host by host.
    Plan(PlanArgs),
    /// Make the hosts match the inventory, or apply a saved plan.
    Apply(ApplyArgs),
    /// Print the task graph in Graphviz DOT.
    Graph,
    /// The live fleet: roles, read_only, GTID positions, replication threads, lag,
    /// semi-sync, TLS. Exits 1 naming each unhealthy host and why.
    Status {
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Planned switchover: make HOST the primary of its cluster. Shows the plan (the
    /// runbook's steps, the proxies' new writer, the inventory edit), asks, applies, then
    /// writes the inventory with HOST as primary (comments and layout kept). The same as
    /// editing the roles in the inventory and running `apply`.
    Switchover(SwitchoverArgs),
    /// Unplanned failover: the primary is dead. Checks that it is dead from here and from
    /// the replicas, fences it, promotes the most advanced eligible replica, repoints the
    /// others and the proxies, and records the new topology in the inventory.
    Failover(FailoverArgs),
    /// Bring a returned old primary back as a replica of the current primary, when its
    /// GTID history allows (refuses, naming them, when it has transactions the primary
    /// never saw).
    Rejoin {
        /// The host to bring back.
        host: String,
        /// Apply without asking.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Point-in-time recovery of a cluster's primary from its backups: the newest logical
    /// backup at or before TIME, then the archived binary logs up to TIME (to their end
    /// without --to). Shown as a plan first; the replicas follow by replication.
    Restore {
        /// The cluster's primary.
        host: String,
        /// RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Restore without asking.
        #[arg(long)]
        auto_approve: bool,
        /// Show the plan only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Disaster rebuild of lost database hosts (bare Debian with sshd at the inventory's
    /// address): provision from the inventory, data from the backups (the cluster's newest
    /// physical backup chain; for a whole lost cluster, its primary also replays the
    /// archived binary logs), replicas replicating again. Prints the measured RTO.
    Rebuild {
        /// The hosts to rebuild (every database host of the cluster when it was lost whole).
        #[arg(required = true)]
        hosts: Vec<String>,
        /// Rebuild without asking.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Backups of the inventory's `backups:`: run a job now, list what the backup server
    /// holds, verify it by restoring.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Print application configuration from the inventory.
    AppConfig {
        #[command(subcommand)]
        kind: AppConfigKind,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Run a job now on its host, as cron would.
    Run {
        /// The job's name in the inventory.
        job: String,
        /// `full` or `incremental` for a physical job (default: its first schedule's).
        #[arg(long)]
        mode: Option<String>,
    },
    /// Each job's backups on the backup server (time, kind, size) and its age against its
    /// RPO. Exits 1 naming every job over its RPO.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore each job's newest backup on the backup server, into a scratch server there
    /// (never production), and check it: tables readable, row counts and checksums as
    /// recorded at backup time, age within the RPO. Exits 1 naming each failed job.
    Verify {
        /// Jobs to verify (default: all).
        jobs: Vec<String>,
        /// Verify the offsite copies (`backups.offsite`) instead: restored from the object
        /// storage onto the backup server.
        #[arg(long)]
        offsite: bool,
    },
    /// Copy each job's backups to the offsite object storage now (`backups.offsite`, seed
    /// 003), as its cron schedule would, and apply the retention there. Exits 1 naming each
    /// job whose copy failed.
    Offsite {
        /// Jobs to copy (default: all).
        jobs: Vec<String>,
        /// Copy back instead: from the object storage into the backup server's store (a
        /// rebuilt backup server), adding the backups it lacks. Then `restore` and
        /// `rebuild` read them as usual.
        #[arg(long)]
        pull: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppConfigKind {
    /// Laravel's read/write split: the `config/database.php` connection and `.env` lines
    /// (seed 000, "Laravel Integration"), through the proxy when the fleet has one.
    Laravel {
        /// Name the database hosts directly instead of the proxy's ports.
        #[arg(long)]
        direct: bool,
        /// The application database (default: the inventory's first).
        #[arg(long)]
        database: Option<String>,
        /// The application user (default: the inventory's first).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    /// The replica to promote.
    #[arg(long, value_name = "HOST")]
    pub to: String,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Write the edited inventory and save the plan to FILE instead of applying
    /// (`dbfleet apply FILE` runs it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The cluster whose primary died (default: the fleet's only cluster).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Promote this replica instead of the most advanced one (it must be as advanced).
    #[arg(long, value_name = "HOST")]
    pub to: Option<String>,
    /// Fail over even inside the anti-flap window (`failover_anti_flap_seconds`).
    #[arg(long)]
    pub force: bool,
    /// Show what would happen and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Print the plan as JSON (no secrets in it).
    #[arg(long)]
    pub json: bool,
    /// Save the plan to FILE for `dbfleet apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Contact no host: render every host's files and check the graph (the CI dry-run).
    #[arg(long)]
    pub offline: bool,
    /// With --offline: write the rendered files under DIR/HOST/PATH.
    #[arg(long, value_name = "DIR", requires = "offline")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `plan --out`; applied only if every target is as the plan saw it.
    pub plan_file: Option<PathBuf>,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
}

/// How a successful run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// `plan --detailed-exitcode` found changes.
    ChangesPending,
}

/// Output style from the environment: colour only on a terminal and without `NO_COLOR`.
pub fn style(quiet: bool) -> Style {
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    Style { color, quiet }
}

pub(crate) fn options(g: &Global, offline: bool) -> Options {
    let set =
        |v: &Vec<String>| (!v.is_empty()).then(|| v.iter().cloned().collect::<BTreeSet<String>>());
    Options {
        inventory: g.inventory.clone(),
        playbooks: g.playbooks.clone(),
        templates: g.templates.clone(),
        limit: set(&g.limit),
        tags: set(&g.tags),
        forks: g.forks,
        offline,
        connect_timeout: Duration::from_secs(g.connect_timeout),
        inventory_text: None,
        seed_from_backup: false,
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    let g = &cli.global;
    let style = style(g.quiet);
    match &cli.command {
        Command::Validate => {
            let e = Engine::load(options(g, true))?;
            report::print(&format!(
                "{} is valid: {}, {} on them.\n",
                g.inventory.display(),
                crate::diagnostics::plural(e.inv.hosts.len(), "host"),
                crate::diagnostics::plural(e.graph.order.len(), "task")
            ));
            for j in &e.inv.backups {
                use crate::backup::rpo::human;
                report::print(&format!(
                    "backup job {} ({} on {}): worst-case RPO {}{}{}{}\n",
                    j.name,
                    j.kind.as_str(),
                    j.host,
                    human(j.worst_rpo_s),
                    j.rpo_s
                        .map(|r| format!(", declared {}", human(r)))
                        .unwrap_or_default(),
                    j.rto_s
                        .map(|r| format!("; RTO declared {}", human(r)))
                        .unwrap_or_default(),
                    j.offsite_worst_rpo_s
                        .map(|r| format!("; {} with the backup server lost", human(r)))
                        .unwrap_or_default()
                ));
            }
            if let Some(o) = &e.inv.backup_offsite {
                use crate::backup::rpo::human;
                report::print(&format!(
                    "offsite copy to {} at `{}`{}\n",
                    o.repository,
                    o.schedule,
                    o.rpo_s
                        .map(|r| format!(", RPO declared {}", human(r)))
                        .unwrap_or_default()
                ));
            }
            // The process ends here: freeing every host's rendered files one by one cost
            // a tenth of a 10,000-host validate.
            std::mem::forget(e);
            Ok(Exit::Ok)
        }
        Command::Graph => {
            let e = Engine::load(options(g, true))?;
            report::print(&e.graph.to_dot(&e.selected));
            Ok(Exit::Ok)
        }
        Command::Plan(a) if a.offline => {
            let e = Engine::load(options(g, true))?;
            let mut files = 0;
            if let Some(dir) = &a.out_dir {
                files = e.render_offline(dir)?.len();
            }
            let mut text = format!(
                "Offline check passed: {}, {} in graph order, every template rendered.\n",
                crate::diagnostics::plural(e.hosts().len(), "host"),
                crate::diagnostics::plural(e.selected.len(), "task")
            );
            if let Some(dir) = &a.out_dir {
                text.push_str(&format!(
                    "Wrote {} under {}.\n",
                    crate::diagnostics::plural(files, "file"),
                    dir.display()
                ));
            }
            report::print(&text);
            Ok(Exit::Ok)
        }
        Command::Plan(a) => {
            let engine = Engine::load(options(g, false))?;
            let reporter = Arc::new(Reporter::new(style));
            let events: Arc<dyn EventSink> = reporter.clone();
            let rt = runtime()?;
            let plan = rt.block_on(async {
                let probe = engine.probe(&engine.hosts(), &events).await;
                reporter.finish();
                let probe = probe?;
                let plan = engine.plan(&probe);
                Engine::close(probe).await;
                plan
            })?;
            if let Some(out) = &a.out {
                crate::plan::file::save(&plan, out)?;
            }
            if a.json {
                report::print(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&plan).unwrap_or_default()
                ));
            } else {
                report::print(&report::render_plan(&plan, style));
                if let Some(out) = &a.out {
                    report::print(&format!(
                        "Saved the plan to {}; apply it with `dbfleet apply {}`.\n",
                        out.display(),
                        out.display()
                    ));
                }
            }
            Ok(if a.detailed_exitcode && !plan.is_empty() {
                Exit::ChangesPending
            } else {
                Exit::Ok
            })
        }
        Command::Apply(a) => apply(g, a, style),
        Command::Status { json } => status(g, *json),
        Command::Switchover(a) => switchover(g, a, style),
        Command::Failover(a) => crate::runbooks::failover::command(g, a, style),
        Command::Rejoin { host, auto_approve } => {
            crate::runbooks::failover::rejoin_command(g, host, *auto_approve, style)
        }
        Command::AppConfig { kind } => crate::appconfig::command(g, kind),
        Command::Restore {
            host,
            to,
            auto_approve,
            dry_run,
        } => crate::runbooks::restore::command(g, host, to.as_deref(), *auto_approve, *dry_run),
        Command::Rebuild {
            hosts,
            auto_approve,
        } => crate::runbooks::rebuild::command(g, hosts, *auto_approve, style),
        Command::Backup { action } => match action {
            BackupAction::Run { job, mode } => crate::backup::cmd::run(g, job, mode.as_deref()),
            BackupAction::List { json } => crate::backup::cmd::list(g, *json),
            BackupAction::Verify { jobs, offsite } => {
                use crate::backup::verify::{Action, on_backup_servers};
                let what = if *offsite {
                    Action::VerifyOffsite
                } else {
                    Action::Verify
                };
                on_backup_servers(g, what, jobs)
            }
            BackupAction::Offsite { jobs, pull } => {
                use crate::backup::verify::{Action, on_backup_servers};
                let what = if *pull {
                    Action::PullOffsite
                } else {
                    Action::CopyOffsite
                };
                on_backup_servers(g, what, jobs)
            }
        },
    }
}

fn apply(g: &Global, a: &ApplyArgs, style: Style) -> Result<Exit, Error> {
    let saved = a
        .plan_file
        .as_ref()
        .map(|p| crate::plan::file::load(p))
        .transpose()?;
    let mut opts = options(g, false);
    if let Some(s) = &saved {
        // A saved plan is applied exactly as planned: its scope, not the command line's.
        opts.limit = s.limit.as_ref().map(|l| l.iter().cloned().collect());
        opts.tags = s.tags.as_ref().map(|l| l.iter().cloned().collect());
    }
    let engine = Engine::load(opts)?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = runtime()?;
    rt.block_on(async {
        let hosts = match &saved {
            Some(s) => s
                .hosts
                .iter()
                .filter(|h| !h.changes.is_empty())
                .map(|h| h.host.clone())
                .collect(),
            None => engine.hosts(),
        };
        let probe = engine.probe(&hosts, &events).await;
        reporter.finish();
        let probe = probe?;
        let fresh = match engine.plan(&probe) {
            Ok(p) => p,
            Err(e) => {
                Engine::close(probe).await;
                return Err(e);
            }
        };
        let plan = match saved {
            Some(s) => {
                if let Err(e) = crate::apply::check_fresh(&s, &fresh, &engine) {
                    Engine::close(probe).await;
                    return Err(e);
                }
                s
            }
            None => {
                report::print(&report::render_plan(&fresh, style));
                if fresh.is_empty() {
                    Engine::close(probe).await;
                    return Ok(Exit::Ok);
                }
                if !a.auto_approve && !confirm(&fresh)? {
                    Engine::close(probe).await;
                    return Err(Error::Cancelled);
                }
                fresh
            }
        };
        if plan.is_empty() {
            report::print("The saved plan has no changes.\n");
            Engine::close(probe).await;
            return Ok(Exit::Ok);
        }
        let result = crate::apply::apply(&engine, &plan, &probe, &events).await;
        reporter.finish();
        Engine::close(probe).await;
        let r = result?;
        report::print(&format!(
            "Apply complete: {} changed, {} skipped.\n",
            r.changed, r.skipped
        ));
        Ok(Exit::Ok)
    })
}

fn switchover(g: &Global, a: &SwitchoverArgs, style: Style) -> Result<Exit, Error> {
    let path = &g.inventory;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading inventory {}", path.display()), e))?;
    let current = Engine::load(options(g, true))?;
    crate::runbooks::require_proven(current.runbook_dialect(), "switchover")?;
    let to = current
        .inv
        .host(&a.to)
        .ok_or_else(|| Error::UnknownHost(a.to.clone()))?;
    let old = current
        .inv
        .hosts
        .iter()
        .find(|h| h.cluster == to.cluster && h.has(crate::inventory::Role::Primary))
        .map(|h| h.name.clone())
        .ok_or_else(|| Error::Refused(format!("cluster {} has no primary", to.cluster)))?;
    if old == a.to {
        return Err(Error::Refused(format!("{} already is the primary", a.to)));
    }
    let edited = crate::inventory::edit::promote(&path.display().to_string(), &text, &a.to, &old)?;
    let diff = crate::inventory::edit::diff(path, &text, &edited);
    if let Some(out) = &a.out {
        // The edited inventory is the declared state; the saved plan converges to it.
        crate::inventory::edit::write(path, &edited)?;
        report::print(&format!("Inventory updated:\n{diff}\n"));
        return run(Cli {
            global: Global { ..clone_global(g) },
            command: Command::Plan(PlanArgs {
                detailed_exitcode: false,
                json: false,
                out: Some(out.clone()),
                offline: false,
                out_dir: None,
            }),
        });
    }
    let mut opts = options(g, false);
    opts.inventory_text = Some(edited.clone());
    let engine = Engine::load(opts)?;
    let reporter = Arc::new(Reporter::new(style));
    let events: Arc<dyn EventSink> = reporter.clone();
    let rt = runtime()?;
    rt.block_on(async {
        let probe = engine.probe(&engine.hosts(), &events).await;
        reporter.finish();
        let probe = probe?;
        let plan = match engine.plan(&probe) {
            Ok(p) => p,
            Err(e) => {
                Engine::close(probe).await;
                return Err(e);
            }
        };
        report::print(&report::render_plan(&plan, style));
        report::print(&format!("\nThe inventory will say:\n{diff}\n"));
        if !a.auto_approve && !confirm(&plan)? {
            Engine::close(probe).await;
            return Err(Error::Cancelled);
        }
        let result = crate::apply::apply(&engine, &plan, &probe, &events).await;
        reporter.finish();
        // Record the topology once the new primary is promoted, even if a later step
        // failed: the inventory must not send the next apply back to the old primary.
        let promoted = match probe.conns.get(&a.to) {
            Some(c) => crate::runbooks::topology::read_state(c, engine.runbook_dialect())
                .await
                .is_ok_and(|s| s.up && !s.read_only && !s.replicating()),
            None => false,
        };
        Engine::close(probe).await;
        if promoted {
            crate::inventory::edit::write(path, &edited)?;
            report::print(&format!(
                "{} is the primary; updated {} (commit it).\n",
                a.to,
                path.display()
            ));
        }
        let r = result?;
        report::print(&format!(
            "Switchover complete: {} changed, {} skipped.\n",
            r.changed, r.skipped
        ));
        Ok(Exit::Ok)
    })
}

fn clone_global(g: &Global) -> Global {
    Global {
        inventory: g.inventory.clone(),
        limit: g.limit.clone(),
        tags: g.tags.clone(),
        forks: g.forks,
        connect_timeout: g.connect_timeout,
        playbooks: g.playbooks.clone(),
        templates: g.templates.clone(),
        verbose: g.verbose,
        quiet: g.quiet,
    }
}

fn status(g: &Global, json: bool) -> Result<Exit, Error> {
    // Status reads the servers only: no secret is resolved and no TLS material is made.
    let engine = Engine::load(options(g, true))?;
    let inv = &engine.inv;
    let hosts: Vec<&crate::inventory::Host> = inv
        .hosts
        .iter()
        .filter(|h| {
            h.is_database()
                && engine
                    .opts
                    .limit
                    .as_ref()
                    .is_none_or(|l| l.contains(&h.name))
        })
        .collect();
    let max_lag = hosts
        .first()
        .and_then(|h| h.vars.get("max_replica_lag_seconds"))
        .and_then(|v| v.as_u64())
        .unwrap_or(300);
    let rows = runtime()?.block_on(crate::status::gather(
        inv,
        &hosts,
        g.forks,
        engine.opts.connect_timeout,
        max_lag,
    ));
    if json {
        report::print(&format!("{}\n", crate::status::to_json(&rows)));
    } else {
        report::print(&crate::status::render(&rows));
    }
    let problems = crate::status::problems(&rows);
    if problems.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Error::Unhealthy(problems))
    }
}

/// Asks `question` on the terminal; only `yes` approves.
///
/// Errors: [`Error::Usage`] when stdin is not a terminal (use `--auto-approve`).
pub(crate) fn confirm_text(question: &str) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "stdin is not a terminal: pass --auto-approve to go ahead without asking".into(),
        ));
    }
    report::print(&format!("{question} Only 'yes' approves: "));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("reading the answer", e))?;
    Ok(line.trim() == "yes")
}

/// Asks on the terminal before applying `plan`; only `yes` approves.
///
/// Errors: [`Error::Usage`] when stdin is not a terminal (use `--auto-approve`).
fn confirm(plan: &crate::plan::Plan) -> Result<bool, Error> {
    confirm_text(&format!(
        "\nApply these changes to {}?",
        crate::diagnostics::plural(plan.summary.hosts_changed, "host")
    ))
}
