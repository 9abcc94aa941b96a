//! Runbooks: changes that span several steps and hosts, applied as one change of a plan
//! or run by their own command. Each step runs over the hosts' SSH connections;
//! statements and passwords go on stdin. `replication.rs` bootstraps, starts or repoints a
//! replica; `switchover.rs` moves the primary on purpose; `failover.rs` replaces a dead
//! one and brings it back (`rejoin`); `restore.rs` rewinds a cluster to a point in time
//! from its backups; `rebuild.rs` brings lost hosts back from the inventory and backups; `topology.rs` holds what they share.
//! `cluster_restart.rs` (Galera) and `group_restart.rs` (a replication group) restart a
//! synchronous cluster or re-form its quorum; `members.rs` holds what those two share.

pub mod cluster_restart;
pub mod detached;
pub mod execute;
pub mod failover;
pub mod group_restart;
pub mod gtid_online;
pub mod liveness;
pub mod members;
pub mod monitor;
pub mod rebuild;
pub mod replication;
pub mod restore;
pub mod rolling;
pub mod switchover;
pub mod topology;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::engine::Engine;
use crate::events::{Event, EventSink};
use crate::sql::Dialect;
use crate::tasks::Resource;
use crate::tasks::replication::ReplicationRes;
use crate::transport::{SshHost, Transport};

/// The end of a failed script's stderr for an error message: its last four non-empty
/// lines, each cut at 300 characters, joined by ` | `, `… | ` first when lines were left
/// out. A server's client echoes the statement that failed, and a replayed binary log's
/// statement is megabytes of base64 (seen in bench/backup.sh): the cause is the last line.
pub(crate) fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(4);
    let cut = |l: &str| match l.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_string(),
    };
    let tail: Vec<String> = lines[from..].iter().map(|l| cut(l.trim_end())).collect();
    format!("{}{}", if from > 0 { "… | " } else { "" }, tail.join(" | "))
}

/// Refuses a topology runbook (`verb`: "switchover", "failover", "rejoin", "restore",
/// "rebuild") on a dialect where the runbooks are not proven on real hosts
/// ([`Dialect::runbooks_proven`]: MySQL 8.0). Called before any host is contacted.
///
/// Errors: [`crate::error::Error::Refused`] naming the version and why.
pub fn require_proven(d: Dialect, verb: &str) -> Result<(), crate::error::Error> {
    if d.runbooks_proven() {
        return Ok(());
    }
    Err(crate::error::Error::Refused(format!(
        "{verb} refused: MySQL 8.0 is not proven on real hosts for {verb} (the lab runs Debian's MySQL 9.x; 8.0 reached end of life in April 2026). Nothing was changed. If the servers run MySQL 8.4 or later, declare that `version:` in the inventory"
    )))
}

/// Refuses a topology runbook (`verb`) on a member of a synchronous cluster among `hosts`:
/// switchover, failover, rejoin, restore and rebuild move a primary and its replicas; a
/// Galera cluster has neither, and a replication group elects its own primary (a member
/// that fell out rejoins by `dbfleet apply`: `crate::tasks::galera`, `group`). Called
/// before any host is contacted. A Galera cluster's restore does not call it: it goes
/// through a member with the others fenced (`restore.rs`).
///
/// Errors: [`crate::error::Error::Refused`] naming the member and its cluster.
pub fn require_primary_topology<'h>(
    inv: &crate::inventory::Inventory,
    hosts: impl IntoIterator<Item = &'h str>,
    verb: &str,
) -> Result<(), crate::error::Error> {
    for name in hosts {
        if let Some(h) = inv.host(name)
            && h.has(crate::inventory::Role::Member)
        {
            return Err(crate::error::Error::Refused(if h.in_group() {
                format!(
                    "{verb} refused: {name} is a member of replication group {}, which elects its primary itself; a member that fell out rejoins by `dbfleet apply` (distributed recovery). Nothing was changed",
                    h.cluster
                )
            } else {
                format!(
                    "{verb} refused: {name} is a member of Galera cluster {}, which has no primary to move; a member that fell out rejoins by `dbfleet apply` (IST or SST). Nothing was changed",
                    h.cluster
                )
            }));
        }
    }
    Ok(())
}

/// One cluster as the topology runbooks see it: connections to its database hosts and
/// the proxies, and what the inventory declares.
pub struct Cluster<'a> {
    pub dialect: Dialect,
    pub events: Arc<dyn EventSink>,
    /// Open SSH connections by host name (database hosts of the cluster and proxies that
    /// answered; a dead host has none): what held SQL sessions and pipes need.
    pub ssh: HashMap<String, Arc<SshHost>>,
    /// The same hosts as transports for scripts: the decisions that only run scripts
    /// (reading states, probing ports, draining) go through these, so unit tests script
    /// them (`crate::transport::fake`).
    pub conns: HashMap<String, Arc<dyn Transport>>,
    /// Database hosts of the cluster, in inventory order.
    pub members: Vec<String>,
    /// Hosts that may be promoted (`candidate` not false).
    pub candidates: Vec<String>,
    /// Each declared replica's replication task (its desired source).
    pub replication: BTreeMap<String, ReplicationRes>,
    pub proxies: Vec<String>,
    /// `max_replica_lag_seconds`.
    pub max_lag_s: u64,
    pub engine: &'a Engine,
}

impl<'a> Cluster<'a> {
    /// The cluster of `host` from `engine`'s inventory and task graph, with `conns` reused
    /// and missing connections opened (hosts that do not answer are left out), except to
    /// `skip` (a host the caller connects to itself, e.g. a primary that may be dead).
    pub async fn new(
        engine: &'a Engine,
        host: &str,
        mut conns: HashMap<String, Arc<SshHost>>,
        events: Arc<dyn EventSink>,
        skip: Option<&str>,
    ) -> Cluster<'a> {
        let mut c = Cluster::declared(engine, host, events);
        let wanted: Vec<String> = c.members.iter().chain(c.proxies.iter()).cloned().collect();
        let opening = wanted
            .iter()
            .filter(|n| !conns.contains_key(*n) && Some(n.as_str()) != skip)
            .map(|n| async move { (n.clone(), engine.connect(n, None).await) });
        for (name, res) in futures::future::join_all(opening).await {
            if let Ok(conn) = res {
                conns.insert(name, Arc::new(conn));
            }
        }
        c.adopt(conns);
        c
    }

    /// The cluster of `host` as declared, over exactly `conns` (no other is opened).
    pub fn over(
        engine: &'a Engine,
        host: &str,
        conns: HashMap<String, Arc<SshHost>>,
        events: Arc<dyn EventSink>,
    ) -> Cluster<'a> {
        let mut c = Cluster::declared(engine, host, events);
        c.adopt(conns);
        c
    }

    fn adopt(&mut self, conns: HashMap<String, Arc<SshHost>>) {
        self.conns = conns
            .iter()
            .map(|(k, v)| (k.clone(), v.clone() as Arc<dyn Transport>))
            .collect();
        self.ssh = conns;
    }

    /// The cluster of `host` as the inventory declares it, with no connection (every host
    /// reads as unreachable until connections are added).
    pub fn declared(engine: &'a Engine, host: &str, events: Arc<dyn EventSink>) -> Cluster<'a> {
        let inv = &engine.inv;
        let cluster = inv
            .host(host)
            .map(|h| h.cluster.clone())
            .unwrap_or_default();
        let members: Vec<String> = inv
            .hosts
            .iter()
            .filter(|h| h.is_database() && h.cluster == cluster)
            .map(|h| h.name.clone())
            .collect();
        let proxies: Vec<String> = inv
            .hosts
            .iter()
            .filter(|h| h.has(crate::inventory::Role::Proxy))
            .map(|h| h.name.clone())
            .collect();
        let mut replication = BTreeMap::new();
        for n in engine.graph.graph.node_indices() {
            let t = &engine.graph.graph[n];
            if let Resource::Replication(r) = &t.resource
                && members.contains(&t.host)
                && !t.handler
            {
                replication.insert(t.host.clone(), r.clone());
            }
        }
        let max_lag_s = inv
            .host(host)
            .map(|h| h.max_replica_lag_s())
            .unwrap_or(crate::inventory::DEFAULT_MAX_REPLICA_LAG_S);
        Cluster {
            dialect: Dialect::of(inv.flavor, &inv.version),
            events,
            conns: HashMap::new(),
            ssh: HashMap::new(),
            candidates: inv
                .hosts
                .iter()
                .filter(|h| members.contains(&h.name) && h.candidate)
                .map(|h| h.name.clone())
                .collect(),
            members,
            replication,
            proxies,
            max_lag_s,
            engine,
        }
    }

    /// The connection to `host`.
    ///
    /// Errors: a message when `host` did not answer.
    pub fn conn(&self, host: &str) -> Result<&SshHost, String> {
        self.ssh
            .get(host)
            .map(|c| c.as_ref())
            .ok_or_else(|| format!("{host} is not reachable over SSH"))
    }

    /// The inventory address of `host` (empty for a host not in the inventory).
    pub fn address(&self, host: &str) -> String {
        self.engine
            .inv
            .host(host)
            .map(|h| h.address.to_string())
            .unwrap_or_default()
    }

    /// Reports a runbook step.
    pub fn step(&self, host: &str, text: String) {
        self.events.emit(Event::Step {
            host: host.to_string(),
            text: self.engine.redactor.redact(&text),
        });
    }

    /// Every member's state, read in parallel; a host without a connection reads as down.
    pub async fn read_all(&self) -> Vec<(String, topology::DbState)> {
        let d = self.dialect;
        let futs = self.members.iter().map(|m| async move {
            let s = match self.conns.get(m) {
                Some(c) => topology::read_state(c.as_ref(), d)
                    .await
                    .unwrap_or_default(),
                None => topology::DbState::default(),
            };
            (m.clone(), s)
        });
        futures::future::join_all(futs).await
    }

    /// Closes the connections this cluster holds alone.
    pub async fn close(self) {
        drop(self.conns);
        for (_, c) in self.ssh {
            if let Ok(c) = Arc::try_unwrap(c) {
                c.close().await;
            }
        }
    }
}

/// Unit-test support: the lab inventory loaded offline, and clusters whose hosts are
/// scripted fakes (`crate::transport::fake`).
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::Cluster;
    use crate::engine::{Engine, Options};
    use crate::transport::Transport;
    use crate::transport::fake::Scripted;

    /// The lab inventory (`inventories/lab.yml`: db1 primary, db2 and db3 replicas,
    /// proxy1), loaded offline; `text` replaces its content when given.
    pub fn lab_engine(text: Option<String>) -> Engine {
        Engine::load(Options {
            inventory: concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/lab.yml").into(),
            playbooks: None,
            templates: None,
            limit: None,
            tags: None,
            forks: 5,
            offline: true,
            connect_timeout: std::time::Duration::from_secs(1),
            inventory_text: text,
            seed_from_backup: false,
            monitor_home: None,
        })
        .expect("the lab inventory loads")
    }

    /// db1's cluster with `hosts` as its reachable hosts (a host left out is unreachable).
    pub fn cluster(engine: &Engine, hosts: Vec<Scripted>) -> Cluster<'_> {
        let mut c = Cluster::declared(engine, "db1", Arc::new(crate::events::Silent));
        c.conns = hosts
            .into_iter()
            .map(|h| (h.name().to_string(), Arc::new(h) as Arc<dyn Transport>))
            .collect();
        c
    }

    /// A replica's state as the state probe prints it (vertical), MariaDB's names.
    pub fn replica_state(
        server_id: u32,
        io: &str,
        sql: &str,
        received: &str,
        applied: &str,
    ) -> String {
        // The field names from the dialect: they are `crate::sql`'s to know.
        let f = crate::sql::Dialect::MariaDb.replica_fields();
        format!(
            "*** 1. row ***\n up: dbfleet-up\n read_only: 1\n server_id: {server_id}\n long_trx: 0\n\
             *** 1. row ***\n binlog_pos: {applied}\n slave_pos: {applied}\n binlog_state: {applied}\n\
             *** 1. row ***\n {}: 172.29.77.11\n {}: {io}\n {}: {sql}\n\
             {}: 0\n Gtid_IO_Pos: {received}\n Last_SQL_Error: \n",
            f.source_host, f.io_running, f.sql_running, f.seconds_behind
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_scripts_error_keeps_the_last_lines_of_its_stderr_only() {
        let statement = format!("BINLOG '\n{}'\n", "QUJD".repeat(100).repeat(3) + "\n");
        let err = format!(
            "--------------\n{}{}--------------\n\nERROR 2006 (HY000) at line 5309: Server has gone away\n",
            statement,
            "AAAA\n".repeat(5000)
        );
        let t = super::stderr_tail(&err);
        assert!(t.starts_with("… | "), "{t}");
        assert!(
            t.ends_with("ERROR 2006 (HY000) at line 5309: Server has gone away"),
            "{t}"
        );
        assert!(t.len() < 400, "{t}");
        assert_eq!(super::stderr_tail("one\n\ntwo\n"), "one | two");
        assert!(super::stderr_tail(&"x".repeat(1000)).ends_with("x…"));
    }
}
