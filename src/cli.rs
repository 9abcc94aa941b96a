//! The command line: clap definitions (their doc comments are the `--help` text), and
//! their resolution into the plain options and requests of `crate::commands` (ripgrep's
//! parse, then resolve). The only module that knows clap. Exit codes are decided in
//! `main.rs` from [`Exit`] and [`Error`].

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::engine::Options;
use crate::error::Error;
pub use crate::error::Exit;
use crate::report::Style;

/// Declarative provisioning and operation of MariaDB/MySQL high-availability fleets.
///
/// Exit codes: 0 success (or no changes), 1 error, 2 changes pending (with
/// `plan --detailed-exitcode`).
///
/// Environment: DBFLEET_INVENTORY (the inventory file, as --inventory); DBFLEET_LOG (what
/// is logged to stderr, in tracing's filter syntax, e.g. `dbfleet=debug`; default by -v
/// and -q); NO_COLOR (set and non-empty: no colour); TERM=dumb (no colour); SSH_AUTH_SOCK
/// and the ssh_config the inventory names (ssh reaches the hosts); the variables an
/// inventory names in a secret's `env:`.
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
    /// Act on these hosts only: comma-separated host names, globs (`db*`, `db[12]`),
    /// `role:NAME` or `cluster:NAME`; each must select a host.
    #[arg(long, global = true, value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Act on tasks with one of these tags only (comma-separated; each must be on some
    /// task); notified handlers follow.
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
    /// The live fleet drawn as its topology: per cluster, the replication tree (roles,
    /// version, read_only, GTID positions, threads, lag, semi-sync, TLS) and what each proxy
    /// routes. Exits 1 naming each unhealthy host and why.
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
    /// Write into the inventory the failovers the failover monitors did (`monitor` role):
    /// the new primary, the old one a replica of it, as `failover` would have. `plan` and
    /// `apply` refuse until then, showing this edit.
    Adopt,
    /// Run the failover monitor of monitor host HOST from the inventory copy `apply`
    /// installed (`--inventory /etc/dbfleet/monitor/inventory.yml`). Started by the host's
    /// `dbfleet-monitor` service, not by hand.
    Monitor {
        /// This monitor's host name in the inventory.
        host: String,
        /// The cluster to watch (the fleet's only cluster without it).
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Bring a returned old primary back as a replica of the current primary, when its
    /// GTID history allows (refuses, naming them, when it has transactions the primary
    /// never saw).
    Rejoin {
        /// The host to bring back.
        host: String,
        #[command(flatten)]
        show: RunbookArgs,
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
        #[command(flatten)]
        show: RunbookArgs,
    },
    /// Disaster rebuild of lost database hosts (bare Debian with sshd at the inventory's
    /// address): provision from the inventory, data from the backups (the cluster's newest
    /// physical backup chain; for a whole lost cluster, its primary also replays the
    /// archived binary logs), replicas replicating again. Prints the measured RTO.
    Rebuild {
        /// The hosts to rebuild (every database host of the cluster when it was lost whole).
        #[arg(required = true)]
        hosts: Vec<String>,
        #[command(flatten)]
        show: RunbookArgs,
    },
    /// Whole-cluster restart of a Galera cluster or a replication group whose members all
    /// stopped or crashed: reads each member's position (Galera: grastate.dat, or
    /// `mariadbd --wsrep-recover` after a crash; a group: gtid_executed and the received
    /// transactions), bootstraps the most advanced member, then starts the others, which
    /// join it. Refuses when a member cannot be reached (it may hold the newest writes)
    /// unless --from names the member to start from, and when a member still runs.
    ClusterRestart {
        /// The cluster (needed when the inventory has several).
        #[arg(long)]
        cluster: Option<String>,
        /// Start from this member, not the most advanced: the plan says what the others
        /// lose.
        #[arg(long, value_name = "MEMBER")]
        from: Option<String>,
        /// A lost quorum (the members still running are a minority; the others are
        /// down): make the most advanced running member's component the primary component
        /// (Galera: pc.bootstrap; a group: group_replication_force_members). You assert
        /// that the members not running are down: were they running a majority of their
        /// own, there would be two.
        #[arg(long)]
        force_quorum: bool,
        #[command(flatten)]
        show: RunbookArgs,
    },
    /// Backups of the inventory's `backups:`: run a job now, list what the backup server
    /// holds, verify it by restoring.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Print a shell completion script for dbfleet's commands and options (bash, zsh,
    /// fish, elvish, powershell). Bash: `dbfleet completions bash >
    /// /etc/bash_completion.d/dbfleet`; zsh: into a folder of `$fpath` as `_dbfleet`; fish:
    /// `~/.config/fish/completions/dbfleet.fish`. Reads no inventory.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the inventory of a fleet dbfleet did not build, read from its running servers:
    /// from HOST, replication is followed both ways (its source, the replicas connected to
    /// it); each server's version, server_id, replication, the settings dbfleet manages,
    /// databases, and accounts with their privileges are read over SSH (never a password:
    /// each becomes a secret to set). Printed on stdout, opening with notes on what could
    /// not be learned: `dbfleet import --from db1.example > inventory.yml`. Changes nothing.
    Import(ImportArgs),
    /// Print the inventory's JSON Schema (draft-07), for editors: save it and point
    /// yaml-language-server at it with a first line `# yaml-language-server:
    /// $schema=./dbfleet.schema.json`. Unknown keys and variables, and values not of a
    /// variable's type, are flagged as you type; `dbfleet validate` still decides. Reads
    /// no inventory.
    Schema,
    /// Print dbfleet's manual page (roff): `dbfleet man > dbfleet.1; man -l dbfleet.1`, or
    /// into `/usr/local/share/man/man1/`. Reads no inventory.
    Man,
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
        /// `full`, `differential` or `incremental` for a physical job (default: its first
        /// schedule's).
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
    #[command(flatten)]
    pub show: RunbookArgs,
}

/// How a runbook command (failover, rejoin, restore, rebuild) ends once its plan is made.
#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// Show the plan (observations and steps) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan as JSON (statements and scripts included, no secrets) and change
    /// nothing.
    #[arg(long)]
    pub json: bool,
    /// Save the plan to FILE and change nothing; `dbfleet apply FILE` runs it while the
    /// fleet is as observed.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run without asking.
    #[arg(long)]
    pub auto_approve: bool,
}

impl RunbookArgs {
    fn mode(self) -> commands::runbook::Mode {
        commands::runbook::Mode::from_flags(self.dry_run, self.json, self.out, self.auto_approve)
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A server of the fleet (address or SSH host name): any one, primary or replica.
    #[arg(long, value_name = "HOST")]
    pub from: String,
    /// The fleet's name in the inventory.
    #[arg(long, default_value = "fleet")]
    pub name: String,
    /// SSH user on every host (else ~/.ssh/config's, or the ssh_config's).
    #[arg(long)]
    pub ssh_user: Option<String>,
    /// SSH port on every host.
    #[arg(long)]
    pub ssh_port: Option<u16>,
    /// An ssh_config file used instead of ~/.ssh/config (written into the inventory).
    #[arg(long)]
    pub ssh_config: Option<String>,
    /// A private key file (written into the inventory).
    #[arg(long)]
    pub ssh_identity: Option<String>,
    /// Add unknown host keys to known_hosts (`accept-new`) instead of refusing them.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// A proxy host's address (repeat for each): declared with the proxy role.
    #[arg(long, value_name = "ADDRESS")]
    pub proxy: Vec<String>,
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
    /// A plan saved by `plan --out` (or a runbook's `--out`); applied only if every target
    /// is as the plan saw it.
    pub plan_file: Option<PathBuf>,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
}

/// Output style from the environment: colour only on a terminal ([`color`]).
pub fn style(quiet: bool) -> Style {
    let color = color(std::io::stdout().is_terminal());
    Style { color, quiet }
}

/// Whether output to a stream that is (`tty`) or is not a terminal gets colour: only on a
/// terminal, without `NO_COLOR` set to anything non-empty (no-color.org) and with `TERM`
/// not `dumb` (a terminal that cannot show escape sequences: Emacs shells, some CI logs).
pub fn color(tty: bool) -> bool {
    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// The engine options `g` resolves to (online; a command that contacts no host sets
/// `offline` itself).
pub fn options(g: &Global) -> Options {
    let set =
        |v: &Vec<String>| (!v.is_empty()).then(|| v.iter().cloned().collect::<BTreeSet<String>>());
    Options {
        inventory: g.inventory.clone(),
        playbooks: g.playbooks.clone(),
        templates: g.templates.clone(),
        limit: set(&g.limit),
        tags: set(&g.tags),
        forks: g.forks,
        offline: false,
        connect_timeout: Duration::from_secs(g.connect_timeout),
        inventory_text: None,
        seed_from_backup: false,
        monitor_home: None,
    }
}

/// Runs the parsed command line: its options resolved, then the verb's command
/// (`crate::commands`), which never sees a clap type.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    let opts = &options(&cli.global);
    let style = style(cli.global.quiet);
    match cli.command {
        Command::Validate => commands::validate::run(opts),
        Command::Graph => commands::graph::run(opts),
        Command::Plan(a) => {
            let request = commands::plan::Request {
                detailed_exitcode: a.detailed_exitcode,
                json: a.json,
                out: a.out,
                offline: a.offline,
                out_dir: a.out_dir,
            };
            commands::plan::run(opts, &request, style)
        }
        Command::Apply(a) => {
            commands::apply::run(opts, a.plan_file.as_deref(), a.auto_approve, style)
        }
        Command::Status { json } => commands::status::run(opts, json),
        Command::Switchover(a) => {
            commands::switchover::run(opts, &a.to, a.auto_approve, a.out.as_deref(), style)
        }
        Command::Failover(a) => {
            let request = crate::runbooks::failover::Request {
                cluster: a.cluster,
                to: a.to,
                force: a.force,
                silence: Default::default(),
            };
            commands::failover::run(opts, &request, a.show.mode(), style)
        }
        Command::Adopt => commands::monitor::adopt(opts),
        Command::Monitor { host, cluster } => commands::monitor::run(opts, &host, cluster, style),
        Command::Rejoin { host, show } => {
            commands::failover::rejoin(opts, &host, show.mode(), style)
        }
        Command::AppConfig { kind } => {
            let kind = match kind {
                AppConfigKind::Laravel {
                    direct,
                    database,
                    user,
                } => commands::app_config::AppConfig::Laravel {
                    direct,
                    database,
                    user,
                },
            };
            commands::app_config::run(opts, &kind)
        }
        Command::Restore { host, to, show } => {
            commands::restore::run(opts, &host, to.as_deref(), show.mode(), style)
        }
        Command::Rebuild { hosts, show } => {
            commands::rebuild::run(opts, &hosts, show.mode(), style)
        }
        Command::ClusterRestart {
            cluster,
            from,
            force_quorum,
            show,
        } => commands::cluster_restart::run(
            opts,
            cluster.as_deref(),
            from.as_deref(),
            force_quorum,
            show.mode(),
            style,
        ),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dbfleet", &mut out);
            print_bytes(&out)
        }
        Command::Import(a) => commands::import::run(
            opts,
            crate::import::inventory::Options {
                from: a.from,
                fleet: a.name,
                ssh_user: a.ssh_user,
                ssh_port: a.ssh_port,
                ssh_config: a.ssh_config,
                ssh_identity: a.ssh_identity,
                proxies: a.proxy,
            },
            if a.accept_new_host_keys {
                crate::inventory::HostKeyPolicy::AcceptNew
            } else {
                crate::inventory::HostKeyPolicy::Strict
            },
        ),
        Command::Schema => commands::schema::run(opts),
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| Error::io("rendering the manual page", e))?;
            print_bytes(&out)
        }
        Command::Backup { action } => match action {
            BackupAction::Run { job, mode } => commands::backup::run(opts, &job, mode.as_deref()),
            BackupAction::List { json } => commands::backup::list(opts, json),
            BackupAction::Verify { jobs, offsite } => {
                use crate::backup::verify::Action;
                let what = if offsite {
                    Action::VerifyOffsite
                } else {
                    Action::Verify
                };
                commands::backup::on_backup_servers(opts, what, &jobs)
            }
            BackupAction::Offsite { jobs, pull } => {
                use crate::backup::verify::Action;
                let what = if pull {
                    Action::PullOffsite
                } else {
                    Action::CopyOffsite
                };
                commands::backup::on_backup_servers(opts, what, &jobs)
            }
        },
    }
}

/// Writes generated text (a completion script, the manual page) to standard output.
fn print_bytes(out: &[u8]) -> Result<Exit, Error> {
    use std::io::Write;
    std::io::stdout()
        .write_all(out)
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(Exit::Ok)
}
