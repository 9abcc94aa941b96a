//! `dbfleet import` (issue 28): the description of a fleet someone already runs, read from
//! its running servers. From one server it follows replication both ways (its source, and
//! the replicas connected to it), reads each server once ([`crate::sql::import`]: version,
//! ids, replication, settings, databases, accounts and privileges; never a password or its
//! hash), and returns what it found as a [`Topology`], which [`inventory::write`] turns
//! into an inventory that `dbfleet validate` accepts.
//!
//! Discovery only reads. It refuses what an inventory cannot declare as found (no primary,
//! two primaries, a ring, a replica whose source it could not reach, MariaDB and MySQL
//! mixed) with [`Error::Refused`]; a replica it cannot reach is left out and named in the
//! inventory's opening notes.

pub mod inventory;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;

use crate::error::Error;
use crate::sql::import::{SYSTEM_ACCOUNTS, marker};
use crate::sql::{Dialect, Flavor, ReplicaStatus, vertical};
use crate::transport::Transport;

/// At most this many servers are followed: a processlist that keeps naming new
/// addresses (a proxy in front of replicas, a misread) must not walk the network.
pub const MAX_SERVERS: usize = 64;

/// One running server, as it answered.
#[derive(Debug, Clone)]
pub struct Server {
    /// The address import reached it at (the first one it was known by).
    pub address: String,
    /// Every address it was named by: the one given, the source host its replicas name, the
    /// processlist's.
    pub aliases: BTreeSet<String>,
    /// `@@hostname`.
    pub hostname: String,
    pub flavor: Flavor,
    /// The whole version string (`10.11.14-MariaDB-0+deb12u2-log`).
    pub version: String,
    pub server_id: u32,
    /// MySQL's `server_uuid`; empty on MariaDB.
    pub server_uuid: String,
    pub log_bin: bool,
    /// MySQL's `gtid_mode` (`ON`, `OFF`, …); `ON` on MariaDB.
    pub gtid_mode: String,
    /// The binary log's path stem (`@@log_bin_basename`); empty without a binary log.
    pub log_bin_basename: String,
    /// The relay log's path stem (`@@relay_log_basename`).
    pub relay_log_basename: String,
    /// The data folder (`@@datadir`, with its trailing `/`).
    pub datadir: String,
    pub read_only: bool,
    pub charset: String,
    pub collation: String,
    /// Its replication source, when it replicates.
    pub source: Option<ReplicaStatus>,
    /// The addresses of the replicas connected to it, and the account each replicates as.
    pub replicas: Vec<(String, String)>,
    /// Server variable → (value, set in an option file).
    pub settings: BTreeMap<String, (String, bool)>,
    /// (name, charset, collation) of each non-system database.
    pub databases: Vec<(String, String, String)>,
    /// (user, host) of each account.
    pub accounts: Vec<(String, String)>,
    /// (grantee as `'u'@'h'`, object, privilege, grantable).
    pub privileges: Vec<(String, String, String, bool)>,
}

impl Server {
    /// "MAJOR.MINOR" of the version.
    pub fn major_minor(&self) -> String {
        major_minor(&self.version)
    }

    pub fn dialect(&self) -> Dialect {
        Dialect::of(self.flavor, &self.major_minor())
    }
}

/// What discovery found: the servers, each replica's source (an index into `servers`),
/// and what it could not reach.
#[derive(Debug)]
pub struct Topology {
    pub servers: Vec<Server>,
    /// For each server, the index of its source; None for the primary.
    pub sources: Vec<Option<usize>>,
    /// The index of the primary (the one server that replicates from nobody).
    pub primary: usize,
    /// (address, why) of each server named by another that could not be read.
    pub unreachable: Vec<(String, String)>,
}

/// Follows replication from `from`: `connect(address)` opens a transport to a host (or
/// says why not); each server is read once, by whichever address reached it first.
///
/// Errors: [`Error::Refused`] when `from` cannot be reached or read, when the servers do
/// not form one primary with replicas under it (see the module's notes), or when more than
/// [`MAX_SERVERS`] are named.
pub async fn discover<C, F>(from: &str, connect: C) -> Result<Topology, Error>
where
    C: Fn(String) -> F,
    F: Future<Output = Result<Box<dyn Transport>, String>>,
{
    let mut servers: Vec<Server> = Vec::new();
    let mut unreachable = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue = VecDeque::from([from.to_string()]);
    while let Some(addr) = queue.pop_front() {
        if !seen.insert(addr.clone()) {
            continue;
        }
        if servers.len() >= MAX_SERVERS {
            return Err(Error::Refused(format!(
                "more than {MAX_SERVERS} servers are named by replication from {from}; import stops there. Nothing was changed"
            )));
        }
        let read = async {
            // Server text (a source host, a processlist name) reaches ssh only as an
            // address: anything else could be read by ssh as an option.
            if !crate::inventory::vartype::is_address(&addr) {
                return Err(format!(
                    "{:?} is not an IP address or a DNS name; import does not connect to it",
                    addr
                ));
            }
            let host = connect(addr.clone()).await?;
            read_server(host.as_ref(), &addr).await
        }
        .await;
        let server = match read {
            Ok(s) => s,
            Err(why) if addr == from => {
                return Err(Error::Refused(format!(
                    "{from} could not be read: {why}. Nothing was changed"
                )));
            }
            Err(why) => {
                unreachable.push((addr, why));
                continue;
            }
        };
        // The same server under another address (a host name and an IP): one server.
        if let Some(known) = servers.iter_mut().find(|s| same_server(s, &server)) {
            known.aliases.insert(addr);
            continue;
        }
        if let Some(src) = &server.source {
            queue.push_back(src.source_host.clone());
        }
        queue.extend(server.replicas.iter().map(|(a, _)| a.clone()));
        servers.push(server);
    }
    link(servers, unreachable, from)
}

/// Whether two answers are one server: the same `server_uuid` (MySQL), or the same
/// `server_id` and host name (MariaDB has no uuid).
fn same_server(a: &Server, b: &Server) -> bool {
    if !a.server_uuid.is_empty() || !b.server_uuid.is_empty() {
        return a.server_uuid == b.server_uuid;
    }
    a.server_id == b.server_id && a.hostname == b.hostname
}

/// Finds each replica's source among `servers` and the one primary.
///
/// Errors: [`Error::Refused`] as [`discover`] says.
fn link(
    servers: Vec<Server>,
    unreachable: Vec<(String, String)>,
    from: &str,
) -> Result<Topology, Error> {
    let flavors: BTreeSet<&str> = servers.iter().map(|s| s.flavor.as_str()).collect();
    if flavors.len() > 1 {
        return Err(Error::Refused(format!(
            "the servers replicating with {from} mix MariaDB and MySQL: a fleet is one flavor. Nothing was changed"
        )));
    }
    let mut sources = Vec::new();
    for s in &servers {
        let Some(st) = &s.source else {
            sources.push(None);
            continue;
        };
        let found = servers.iter().position(|o| {
            o.aliases.contains(&st.source_host) && o.settings_port() == st.source_port
        });
        match found {
            Some(i) => sources.push(Some(i)),
            None => {
                let why = unreachable
                    .iter()
                    .find(|(a, _)| *a == st.source_host)
                    .map(|(_, w)| format!(": {w}"))
                    .unwrap_or_default();
                return Err(Error::Refused(format!(
                    "{} ({}) replicates from {}:{}, which import could not read{why}; an inventory needs every server of the cluster. Nothing was changed",
                    s.hostname, s.address, st.source_host, st.source_port
                )));
            }
        }
    }
    let roots: Vec<usize> = (0..servers.len())
        .filter(|i| sources[*i].is_none())
        .collect();
    let primary = match roots.as_slice() {
        [p] => *p,
        [] => {
            return Err(Error::Refused(format!(
                "every server reached from {from} replicates from another (a ring of primaries): dbfleet declares one writer per cluster. Stop replication into the server that should be the primary, then import again. Nothing was changed"
            )));
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|i| format!("{} ({})", servers[*i].hostname, servers[*i].address))
                .collect();
            return Err(Error::Refused(format!(
                "{} replicate from nobody: import reads one cluster with one primary. Import each from its own primary. Nothing was changed",
                names.join(" and ")
            )));
        }
    };
    // A replica below a replica: fine, as long as the chain ends at the primary.
    for start in 0..servers.len() {
        let mut at = start;
        let mut steps = 0;
        while let Some(next) = sources[at] {
            at = next;
            steps += 1;
            if steps > servers.len() {
                return Err(Error::Refused(format!(
                    "{} replicates in a ring that does not reach {}: dbfleet declares one writer per cluster. Nothing was changed",
                    servers[start].hostname, servers[primary].hostname
                )));
            }
        }
    }
    Ok(Topology {
        servers,
        sources,
        primary,
        unreachable,
    })
}

impl Server {
    /// The port it listens on, as text (its `port` setting, else the server's answer).
    fn settings_port(&self) -> String {
        self.settings
            .get("port")
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| "3306".into())
    }
}

/// "MAJOR.MINOR" of a server's version string (`10.11.14-MariaDB-0+deb12u2-log` → `10.11`).
fn major_minor(version: &str) -> String {
    version
        .split(['.', '-'])
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// Reads one server through `host`, known as `addr`.
///
/// Errors: why, in words (the transport's error, the script's, or an answer that cannot
/// be read).
async fn read_server(host: &dyn Transport, addr: &str) -> Result<Server, String> {
    let v = host
        .run(crate::sql::import::VERSION_SCRIPT)
        .await
        .map_err(|e| e.to_string())?;
    if v.code != 0 {
        return Err(format!(
            "no answer from its server ({})",
            v.stderr.trim().lines().last().unwrap_or("exit code")
        ));
    }
    let version = v.stdout.trim().to_string();
    let flavor = if version.contains("MariaDB") {
        Flavor::Mariadb
    } else {
        Flavor::Mysql
    };
    let dialect = Dialect::of(flavor, &major_minor(&version));
    let o = host
        .run(&dialect.import_script())
        .await
        .map_err(|e| e.to_string())?;
    if o.code != 0 {
        return Err(format!(
            "reading it failed: {}",
            o.stderr.trim().lines().last().unwrap_or("exit code")
        ));
    }
    parse_answer(&o.stdout, addr, flavor, dialect)
}

/// Parses the import script's output ([`Dialect::import_script`]).
///
/// Errors: the section that is missing or unreadable.
pub fn parse_answer(
    out: &str,
    addr: &str,
    flavor: Flavor,
    dialect: Dialect,
) -> Result<Server, String> {
    if !out.contains(&marker("end")) {
        return Err("its answer ended early".into());
    }
    let section = |name: &str| -> Vec<&str> {
        let start = marker(name);
        out.lines()
            .skip_while(|l| *l != start)
            .skip(1)
            .take_while(|l| !l.starts_with("--dbfleet-import-"))
            .collect()
    };
    let server = vertical(&section("server").join("\n"));
    let get = |k: &str| server.get(k).cloned().unwrap_or_default();
    let server_id = get("server_id")
        .parse::<u32>()
        .map_err(|_| format!("its server_id is not a number: {:?}", get("server_id")))?;
    let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("ON");
    let tabs = |l: &&str| l.split('\t').map(str::to_string).collect::<Vec<String>>();
    let settings = section("settings")
        .iter()
        .map(tabs)
        .filter(|f| f.len() == 3)
        .map(|f| (f[0].clone(), (f[1].clone(), f[2] == "1")))
        .collect();
    let databases = section("databases")
        .iter()
        .map(tabs)
        .filter(|f| f.len() == 3)
        .map(|f| (f[0].clone(), f[1].clone(), f[2].clone()))
        .collect();
    let accounts = section("accounts")
        .iter()
        .map(tabs)
        .filter(|f| f.len() == 2)
        .map(|f| (f[0].clone(), f[1].clone()))
        .collect();
    let privileges = section("privileges")
        .iter()
        .map(tabs)
        .filter(|f| f.len() == 4)
        .map(|f| (f[0].clone(), f[1].clone(), f[2].clone(), f[3] == "YES"))
        .collect();
    let replicas = section("replicas")
        .iter()
        .filter_map(|l| {
            let (host, user) = l.split_once('\t').unwrap_or((l, ""));
            Some((client_address(host)?, user.to_string()))
        })
        .collect();
    Ok(Server {
        address: addr.to_string(),
        aliases: BTreeSet::from([addr.to_string()]),
        hostname: get("hostname"),
        flavor,
        version: get("version"),
        server_id,
        server_uuid: get("server_uuid"),
        log_bin: on(&get("log_bin")),
        gtid_mode: get("gtid_mode"),
        log_bin_basename: get("log_bin_basename"),
        relay_log_basename: get("relay_log_basename"),
        datadir: get("datadir"),
        read_only: on(&get("read_only")),
        charset: get("character_set_server"),
        collation: get("collation_server"),
        source: dialect.replica_status(&server),
        replicas,
        settings,
        databases,
        accounts,
        privileges,
    })
}

/// The address part of a processlist `HOST` (`10.0.0.2:51234`, `[fd00::2]:51234`,
/// `db2:51234`); None when empty or local (a socket).
fn client_address(host: &str) -> Option<String> {
    let host = host.trim();
    let addr = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?.to_string(),
        None => match host.rsplit_once(':') {
            Some((a, p)) if p.chars().all(|c| c.is_ascii_digit()) => a.to_string(),
            _ => host.to_string(),
        },
    };
    (!addr.is_empty() && addr != "localhost").then_some(addr)
}

/// Whether an account is the server's or its package's own (never imported).
pub fn is_system_account(user: &str) -> bool {
    user.is_empty() || SYSTEM_ACCOUNTS.contains(&user) || user.starts_with("dbfleet_")
}

#[cfg(test)]
mod tests;
