//! The engine: inventory + playbooks → task graph → facts → [`Plan`], and the offline render.
//!
//! It owns the pipeline of DESIGN.md in one direction: load and validate, resolve tasks,
//! build the graph, select by `--limit`/`--tags`, then (online) open one SSH connection per
//! host and read all facts in one round trip each, all hosts in parallel up to `forks`.
//! It emits events and never prints.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use petgraph::graph::NodeIndex;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::events::{Event, EventSink};
use crate::graph::TaskGraph;
use crate::inventory::Inventory;
use crate::plan::{Change, FORMAT_VERSION, HostPlan, Plan, digest};
use crate::playbook::Library;
use crate::secrets::{Redactor, Secrets};
use crate::tasks::{Action, Resource};
use crate::transport::SshHost;

/// The async runtime every command that reaches hosts runs on: two workers (SSH sessions
/// are I/O-bound; the machines this runs on have few cores).
///
/// Errors: [`Error::Io`] when the runtime cannot start.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// What to load and how widely to act.
#[derive(Debug, Clone)]
pub struct Options {
    pub inventory: PathBuf,
    pub playbooks: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub limit: Option<BTreeSet<String>>,
    pub tags: Option<BTreeSet<String>>,
    /// Hosts worked on at once.
    pub forks: usize,
    /// Render with secret placeholders and never touch a secret source (`plan --offline`).
    pub offline: bool,
    /// SSH connect timeout.
    pub connect_timeout: Duration,
    /// The inventory's content, when it is an edit not yet written (a switchover's or
    /// failover's topology); `inventory` still names the file.
    pub inventory_text: Option<String>,
    /// Seed new replicas from their cluster's newest physical backup instead of from their
    /// source (`dbfleet rebuild`).
    pub seed_from_backup: bool,
    /// The failover monitor's home on a monitor host (`dbfleet monitor`, see
    /// `crate::runbooks::monitor`): secrets come from its `secrets.json` only, every host is
    /// reached through its `ssh_config` (the monitor's key and pinned host keys), and TLS
    /// material and backup keys render as placeholders, since the monitor applies no file.
    pub monitor_home: Option<PathBuf>,
}

/// A loaded fleet: everything known before any host is contacted.
pub struct Engine {
    pub opts: Options,
    pub inv: Inventory,
    pub lib: Library,
    pub graph: TaskGraph,
    /// Selected nodes in run order.
    pub selected: Vec<NodeIndex>,
    pub redactor: Redactor,
    key: Vec<u8>,
}

/// Open connections and the facts they returned.
pub struct Probe {
    pub conns: HashMap<String, Arc<SshHost>>,
    pub facts: HashMap<NodeIndex, String>,
    /// Host → the operator's address as that host sees it.
    pub clients: HashMap<String, std::net::IpAddr>,
}

impl Engine {
    /// Loads and checks inventory, playbooks and templates; resolves and orders tasks.
    ///
    /// Errors: any located [`Error::Invalid`], [`Error::Secret`] (offline: naming every
    /// secret the tasks need that the inventory does not declare, at once), [`Error::Cycle`],
    /// [`Error::UnknownLimit`] for a `--limit` pattern selecting no host,
    /// [`Error::UnknownTag`] for a `--tags` tag no task has.
    pub fn load(opts: Options) -> Result<Engine, Error> {
        let lib = Library::load(opts.playbooks.as_deref(), opts.templates.as_deref())?;
        let mut inv = match &opts.inventory_text {
            Some(text) => crate::inventory::load::load_text(&opts.inventory, text, &lib.defaults)?,
            None => crate::inventory::load(&opts.inventory, &lib.defaults)?,
        };
        if let Some(home) = &opts.monitor_home {
            for h in &mut inv.hosts {
                h.ssh.config = Some(home.join("ssh_config"));
                h.ssh.identity = None;
            }
        }
        // `--limit` patterns become host names here (`crate::selection`); a saved plan
        // records the names.
        let mut opts = opts;
        if let Some(patterns) = &opts.limit {
            opts.limit = Some(crate::selection::limit(&inv, patterns)?);
        }
        let redactor = Redactor::default();
        // The monitor renders nothing it applies: only its secrets are real.
        let placeholders = opts.offline || opts.monitor_home.is_some();
        let secrets = Arc::new(match &opts.monitor_home {
            _ if opts.offline => Secrets::placeholders(&inv, redactor.clone()),
            Some(home) => Secrets::given(&inv, redactor.clone(), &home.join("secrets.json"))?,
            None => Secrets::new(&inv, redactor.clone()),
        });
        let tls = if placeholders {
            crate::tls::Tls::placeholders(&inv)
        } else {
            let renew_days = lib
                .defaults
                .values
                .get("tls_renew_days")
                .and_then(|v| v.as_i64())
                .unwrap_or(30);
            let renew_days = inv
                .hosts
                .first()
                .and_then(|h| h.vars.get("tls_renew_days"))
                .and_then(|v| v.as_i64())
                .unwrap_or(renew_days);
            crate::tls::Tls::ensure(&inv, renew_days)?
        };
        for (host, why) in &tls.issued {
            tracing::info!(host = %host, reason = %why, "issued a TLS certificate");
        }
        let backup_key = Arc::new(
            crate::backup::keys::BackupKey::new(inv.base_dir().join(".dbfleet"), placeholders)
                .with_known_hosts({
                    let hosts = inv.hosts.clone();
                    Box::new(move || {
                        hosts
                            .iter()
                            .map(crate::transport::ssh::known_host_lines)
                            .collect()
                    })
                }),
        );
        let tasks = crate::tasks::resolve(&inv, &lib, secrets.clone(), Arc::new(tls), backup_key)?;
        let undeclared = secrets.undeclared();
        if !undeclared.is_empty() {
            return Err(Error::Secret {
                name: undeclared.join("`, `"),
                reason: format!(
                    "not declared under `secrets:` in the inventory, and its hosts' tasks need {}: add {}, e.g. `{}: {{ generate: 32 }}`",
                    if undeclared.len() == 1 { "it" } else { "them" },
                    if undeclared.len() == 1 { "it" } else { "each" },
                    undeclared[0]
                ),
            });
        }
        let graph = TaskGraph::build(tasks)?;
        if let Some(tags) = &opts.tags {
            crate::selection::tags(
                tags,
                graph
                    .graph
                    .node_weights()
                    .flat_map(|t| t.tags.iter().map(String::as_str)),
            )?;
        }
        let selected = graph.select(opts.limit.as_ref(), opts.tags.as_ref());
        let key = if opts.offline {
            Vec::new()
        } else {
            crate::secrets::digest_key(&inv)?
        };
        Ok(Engine {
            opts,
            inv,
            lib,
            graph,
            selected,
            redactor,
            key,
        })
    }

    /// Opens an SSH connection to inventory host `name` within `timeout` (the fleet's
    /// `--connect-timeout` when None): what a runbook or command that was not part of a
    /// probe uses.
    ///
    /// Errors: [`Error::UnknownHost`]; [`Error::Unreachable`] with ssh's words.
    pub async fn connect(&self, name: &str, timeout: Option<Duration>) -> Result<SshHost, Error> {
        let h = self
            .inv
            .host(name)
            .ok_or_else(|| Error::UnknownHost(name.to_string()))?;
        SshHost::connect(
            h,
            self.inv.host_key_policy,
            timeout.unwrap_or(self.opts.connect_timeout),
        )
        .await
        .map_err(|e| Error::Unreachable(vec![(name.to_string(), e.to_string())]))
    }

    /// Opens SSH connections to the inventory hosts `names` all at once (after a power
    /// loss the hosts down each take the connect timeout: in turn, their sum), each within
    /// the fleet's `--connect-timeout`. Returns each name with its connection or its error,
    /// in the order of `names`.
    pub async fn connect_all(&self, names: &[String]) -> Vec<(String, Result<SshHost, Error>)> {
        futures::future::join_all(
            names
                .iter()
                .map(|name| async move { (name.clone(), self.connect(name, None).await) }),
        )
        .await
    }

    /// The SQL dialect of the fleet.
    pub fn runbook_dialect(&self) -> crate::sql::Dialect {
        crate::sql::Dialect::of(self.inv.flavor, &self.inv.version)
    }

    /// Hosts with at least one selected task, in inventory order.
    pub fn hosts(&self) -> Vec<String> {
        let with: BTreeSet<&str> = self
            .selected
            .iter()
            .map(|&n| self.graph.graph[n].host.as_str())
            .collect();
        self.inv
            .hosts
            .iter()
            .filter(|h| with.contains(h.name.as_str()))
            .map(|h| h.name.clone())
            .collect()
    }

    fn nodes_of(&self, host: &str) -> Vec<NodeIndex> {
        self.selected
            .iter()
            .copied()
            .filter(|&n| self.graph.graph[n].host == host)
            .collect()
    }

    /// Connects to `hosts` and reads their facts: one handshake and one round trip each,
    /// up to `forks` hosts at once.
    ///
    /// Errors: [`Error::Unreachable`] naming every host that could not be reached,
    /// [`Error::Facts`] when a probe's output cannot be read.
    pub async fn probe(
        &self,
        hosts: &[String],
        events: &Arc<dyn EventSink>,
    ) -> Result<Probe, Error> {
        events.emit(Event::ProbeStarted { hosts: hosts.len() });
        let sem = Arc::new(Semaphore::new(self.opts.forks.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for name in hosts {
            let host = self
                .inv
                .host(name)
                .cloned()
                .ok_or_else(|| Error::UnknownHost(name.clone()))?;
            let script = crate::facts::script(&self.graph, &self.nodes_of(name));
            let (sem, events, policy, timeout, red) = (
                sem.clone(),
                events.clone(),
                self.inv.host_key_policy,
                self.opts.connect_timeout,
                self.redactor.clone(),
            );
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let t0 = Instant::now();
                let res = async {
                    let conn = SshHost::connect(&host, policy, timeout)
                        .await
                        .map_err(|e| e.to_string())?;
                    let out = conn.run(&script).await.map_err(|e| e.to_string())?;
                    if out.code != 0 {
                        return Err(format!("probe exited {}: {}", out.code, out.stderr.trim()));
                    }
                    Ok((conn, out.stdout))
                }
                .await;
                match &res {
                    Ok(_) => events.emit(Event::Probed {
                        host: host.name.clone(),
                        elapsed: t0.elapsed(),
                    }),
                    Err(e) => events.emit(Event::Unreachable {
                        host: host.name.clone(),
                        error: red.redact(e),
                    }),
                }
                (host.name, res.map_err(|e| red.redact(&e)))
            });
        }
        let mut conns = HashMap::new();
        let mut facts = HashMap::new();
        let mut clients = HashMap::new();
        let mut failed = Vec::new();
        while let Some(r) = set.join_next().await {
            let Ok((name, res)) = r else { continue };
            match res {
                Ok((conn, stdout)) => {
                    facts.extend(crate::facts::split(&stdout));
                    if let Some(a) = crate::facts::client_address(&stdout) {
                        clients.insert(name.clone(), a);
                    }
                    conns.insert(name, Arc::new(conn));
                }
                Err(e) => failed.push((name, e)),
            }
        }
        if !failed.is_empty() {
            failed.sort();
            for (_, c) in conns.drain() {
                if let Ok(c) = Arc::try_unwrap(c) {
                    c.close().await;
                }
            }
            return Err(Error::Unreachable(failed));
        }
        Ok(Probe {
            conns,
            facts,
            clients,
        })
    }

    /// Compares facts with the desired state: the inventory's changes, host by host. A
    /// planned switchover is folded into them by `crate::runbooks::switchover::fold`
    /// (`crate::commands::probe_and_plan` does both).
    ///
    /// Errors: [`Error::Facts`] when a probe's output is not what the probe prints, or the
    /// resource is in a state dbfleet refuses to change (a folder where a file should be).
    pub fn plan(&self, probe: &Probe) -> Result<Plan, Error> {
        self.check_firewall_keeps_operator(probe)?;
        self.check_galera_bootstrap(probe)?;
        let mut hosts = Vec::new();
        // Only the probed hosts: a saved plan re-reads just the hosts it changes.
        for name in self
            .hosts()
            .into_iter()
            .filter(|h| probe.conns.contains_key(h))
        {
            let mut changes: Vec<Change> = Vec::new();
            for n in self.nodes_of(&name) {
                let t = &self.graph.graph[n];
                let sensitive = t.resource.sensitive();
                let after_digest = digest(&t.resource.desired(), sensitive, &self.key);
                if t.handler {
                    let by: Vec<String> = changes
                        .iter()
                        .filter(|c| self.notifies(&name, &c.task, &t.name))
                        .map(|c| c.task.clone())
                        .collect();
                    let pending = probe.facts.get(&n).is_some_and(|f| f.trim() == "pending");
                    if !by.is_empty() || pending {
                        changes.push(Change {
                            task: t.name.clone(),
                            action: Action::Run,
                            kind: t.resource.kind(),
                            target: t.resource.target(),
                            before_digest: digest("notified", false, &self.key),
                            after_digest,
                            handler: true,
                            pending,
                            notified_by: by,
                            summary: handler_summary(&t.resource),
                            diff: None,
                            sensitive: false,
                            notes: if pending {
                                vec!["pending from an earlier apply that did not finish".into()]
                            } else {
                                Vec::new()
                            },
                            destroys: None,
                            rolling: false,
                        });
                    }
                    continue;
                }
                let facts = probe.facts.get(&n).map(String::as_str).unwrap_or("");
                let assessed = t.resource.assess(facts).map_err(|m| Error::Facts {
                    host: name.clone(),
                    message: format!("task `{}`: {}", t.name, self.redactor.redact(&m)),
                })?;
                if let Some(a) = assessed {
                    let destroys = t.resource.destroys(facts, &a);
                    changes.push(Change {
                        task: t.name.clone(),
                        action: a.action,
                        kind: t.resource.kind(),
                        target: t.resource.target(),
                        before_digest: digest(&a.before, sensitive, &self.key),
                        after_digest,
                        handler: false,
                        pending: false,
                        notified_by: Vec::new(),
                        summary: self.redactor.redact(&a.summary),
                        diff: a.diff.map(|d| self.redactor.redact(&d)),
                        sensitive,
                        notes: a.notes,
                        destroys,
                        rolling: false,
                    });
                }
            }
            hosts.push(HostPlan {
                host: name,
                changes,
            });
        }
        let mut plan = Plan {
            format_version: FORMAT_VERSION,
            dbfleet_version: env!("CARGO_PKG_VERSION").into(),
            inventory: self.opts.inventory.display().to_string(),
            inventory_digest: self.inv.digest.clone(),
            limit: self
                .opts
                .limit
                .as_ref()
                .map(|l| l.iter().cloned().collect()),
            tags: self.opts.tags.as_ref().map(|l| l.iter().cloned().collect()),
            hosts,
            summary: Default::default(),
        };
        plan.summarize();
        Ok(plan)
    }

    /// Refuses a firewall that would drop the operator's own SSH session: the address
    /// each host saw this session come from must be inside `firewall.admin_networks`.
    ///
    /// Errors: [`Error::Refused`] naming each host and address.
    fn check_firewall_keeps_operator(&self, probe: &Probe) -> Result<(), Error> {
        let Some(fw) = &self.inv.firewall else {
            return Ok(());
        };
        let nets: Vec<ipnet::IpNet> = fw
            .admin_networks
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let mut cut: Vec<String> = probe
            .clients
            .iter()
            .filter(|(_, ip)| !nets.iter().any(|n| n.contains(*ip)))
            .map(|(h, ip)| format!("{h} (this session comes from {ip})"))
            .collect();
        if cut.is_empty() {
            return Ok(());
        }
        cut.sort();
        Err(Error::FirewallLockout(format!(
            "the firewall would cut off your own SSH session to {}; nothing was changed",
            cut.join(", ")
        )))
    }

    /// Refuses to found a Galera cluster (`crate::tasks::galera`) or a replication group
    /// (`crate::tasks::group`), a bootstrap, unless every member of it was probed: a member
    /// left out by `--limit` may hold the cluster's data or run it, and a bootstrap beside
    /// it would make a second cluster or throw its writes away. Each member probed refuses
    /// on its own when it holds data and nothing runs.
    ///
    /// Errors: [`Error::Refused`] naming the members not probed.
    fn check_galera_bootstrap(&self, probe: &Probe) -> Result<(), Error> {
        for n in self.graph.graph.node_indices() {
            let t = &self.graph.graph[n];
            let Some(facts) = probe.facts.get(&n) else {
                continue;
            };
            let (what, cluster, peers) = match &t.resource {
                crate::tasks::Resource::Galera(g)
                    if g.mode(facts) == Ok(Some(crate::tasks::galera::Mode::Bootstrap)) =>
                {
                    ("Galera cluster", &g.cluster, &g.peers)
                }
                crate::tasks::Resource::Group(g)
                    if g.mode(facts) == Ok(Some(crate::tasks::group::Mode::Bootstrap)) =>
                {
                    ("replication group", &g.cluster, &g.peers)
                }
                _ => continue,
            };
            let missing: Vec<&str> = peers
                .iter()
                .filter(|(name, _)| !probe.conns.contains_key(name))
                .map(|(name, _)| name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Error::Refused(format!(
                    "{} would found {what} {cluster}, but {} {} not probed (--limit): a member not seen may run the cluster or hold its data; plan without --limit; nothing was changed",
                    t.host,
                    missing.join(", "),
                    if missing.len() == 1 { "was" } else { "were" }
                )));
            }
        }
        Ok(())
    }

    fn notifies(&self, host: &str, task: &str, handler: &str) -> bool {
        self.graph
            .node(host, task)
            .is_some_and(|n| self.graph.graph[n].notify.iter().any(|h| h == handler))
    }

    /// Renders every selected host's files under `out_dir/HOST/PATH` with no SSH at all
    /// (secrets as `<secret:NAME>` placeholders; such files written 0600). Returns the
    /// files written.
    ///
    /// Errors: [`Error::Io`] when `out_dir` cannot be written.
    pub fn render_offline(&self, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
        use std::os::unix::fs::PermissionsExt;
        let mut written = Vec::new();
        for &n in &self.selected {
            let t = &self.graph.graph[n];
            let file = match &t.resource {
                Resource::File(f) => f,
                Resource::Sysctl(s) => &s.file,
                _ => continue,
            };
            let dest = out_dir
                .join(&t.host)
                .join(file.path.trim_start_matches('/'));
            let ctx = || format!("writing {}", dest.display());
            if let Some(p) = dest.parent() {
                std::fs::create_dir_all(p).map_err(|e| Error::io(ctx(), e))?;
            }
            std::fs::write(&dest, &file.content).map_err(|e| Error::io(ctx(), e))?;
            let mode = if file.sensitive { 0o600 } else { 0o644 };
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(ctx(), e))?;
            written.push(dest);
        }
        Ok(written)
    }

    /// Closes every connection of `probe`.
    pub async fn close(probe: Probe) {
        for (_, c) in probe.conns {
            if let Ok(c) = Arc::try_unwrap(c) {
                c.close().await;
            }
        }
    }
}

fn handler_summary(r: &Resource) -> String {
    use crate::tasks::service::SvcState;
    match r {
        Resource::Service(s) => {
            let verb = match s.state {
                SvcState::Restarted => "restart",
                SvcState::Reloaded => "reload",
                SvcState::Started => "start",
                SvcState::Stopped => "stop",
            };
            format!("{verb} {}", s.name)
        }
        other => format!("run {}", other.target()),
    }
}
