//! Whole-cluster restart of a Galera cluster (`dbfleet cluster-restart`): after every
//! member stopped or crashed (a power loss), start the cluster again from its most
//! advanced member, then the others join it. A replication group's is
//! `super::group_restart`, which [`plan`] hands a group to.
//!
//! Which member starts it is the decision operators fear: bootstrap from a member that is
//! behind the others and their newer writes are thrown away when they join it (an SST
//! replaces their data); bootstrap two members and there are two clusters. MariaDB's
//! procedure (KB "Galera Cluster Recovery", "Getting Started with MariaDB Galera Cluster:
//! Bootstrapping a New Cluster"): read each member's position, `grastate.dat`'s seqno
//! after a clean stop or `mariadbd --wsrep-recover`'s after a crash, and bootstrap the
//! highest. This runbook does it and shows it as a plan first:
//!
//! - every member must be reachable: one not seen may hold the newest writes. The operator
//!   may name the member to start from (`--from`); the plan then says what the members it
//!   could compare lose;
//! - no member may run in a cluster (that is not a whole-cluster stop: `dbfleet apply`
//!   joins stopped members), and their histories must be the same cluster's (one UUID);
//! - two members both marked `safe_to_bootstrap: 1` (an edit by hand) are refused unless
//!   `--from` names one;
//! - the chosen member bootstraps (its step refuses, changing nothing, when a member
//!   listens on Galera's port by then), then each other member starts and joins: IST when
//!   the chosen member's gcache holds what it missed, SST otherwise.
//!
//! Reading a crashed member's position runs `mariadbd --wsrep-recover` on it at plan time:
//! InnoDB's crash recovery, which every start of the member runs first anyway.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Error;
use crate::inventory::Role;
use crate::plan::runbook::{Action, RunbookPlan};
use crate::tasks::Resource;
use crate::tasks::galera::{GaleraRes, Position, position};
use crate::transport::SshHost;

use super::members::{read_all, require_reachable, restart_plan};

/// What a member was found in, at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Its cluster position; None when it holds no cluster history.
    pub position: Option<Position>,
    /// `safe_to_bootstrap: 1` in its grastate.dat (the last member of a clean stop).
    pub safe_to_bootstrap: bool,
}

/// The `galera member` task of `host` (its resource carries the cluster's members).
fn galera_of(engine: &Engine, host: &str) -> Option<GaleraRes> {
    engine.graph.graph.node_indices().find_map(|n| {
        let t = &engine.graph.graph[n];
        match &t.resource {
            Resource::Galera(g) if t.host == host && !t.handler => Some(g.clone()),
            _ => None,
        }
    })
}

/// The member to start the cluster from: `from` when named, else the most advanced
/// (highest seqno; of equals, one marked safe to bootstrap, else the first declared).
/// Returns it and the notes on what the others lose.
///
/// Errors: [`Error::Refused`] when no member holds data, their histories are different
/// clusters', two members are marked safe to bootstrap and `from` names none, or `from`
/// names a member not read (unreachable) or holding no cluster data.
pub fn choose(
    cluster: &str,
    members: &[Member],
    from: Option<&str>,
) -> Result<(String, Vec<String>), Error> {
    let with_data: Vec<(&Member, &Position)> = members
        .iter()
        .filter_map(|m| m.position.as_ref().map(|p| (m, p)))
        .collect();
    let Some((_, first)) = with_data.first() else {
        return Err(Error::Refused(format!(
            "no member of cluster {cluster} holds data: `dbfleet apply` founds the cluster; nothing was changed"
        )));
    };
    if let Some((m, p)) = with_data.iter().find(|(_, p)| p.uuid != first.uuid) {
        return Err(Error::Refused(format!(
            "{} holds the history of another cluster ({}) than {} ({}): dbfleet will not choose between two clusters' data; nothing was changed",
            m.name, p.uuid, with_data[0].0.name, first.uuid
        )));
    }
    let claimed: Vec<&str> = members
        .iter()
        .filter(|m| m.safe_to_bootstrap)
        .map(|m| m.name.as_str())
        .collect();
    if claimed.len() > 1 && from.is_none() {
        return Err(Error::Refused(format!(
            "{} all claim to be safe to bootstrap (grastate.dat): only one member can be the last of a clean stop, so one was edited by hand; name the member to start from with --from; nothing was changed",
            claimed.join(" and ")
        )));
    }
    let top = with_data.iter().map(|(_, p)| p.seqno).max().unwrap_or(-1);
    let chosen = match from {
        // A member that was not read, or holds nothing, would found an empty cluster and
        // the others would be given its emptiness by SST.
        Some(f) if !with_data.iter().any(|(m, _)| m.name == f) => {
            return Err(Error::Refused(format!(
                "--from {f}: {f} was not reached or holds no data of cluster {cluster}; the cluster can only start from a member whose position was read; nothing was changed"
            )));
        }
        Some(f) => f.to_string(),
        None => with_data
            .iter()
            .filter(|(_, p)| p.seqno == top)
            .min_by_key(|(m, _)| !m.safe_to_bootstrap)
            .map(|(m, _)| m.name.clone())
            .unwrap_or_default(),
    };
    let at = |n: &str| {
        with_data
            .iter()
            .find(|(m, _)| m.name == n)
            .map(|(_, p)| p.seqno)
    };
    let mut notes = Vec::new();
    let chosen_at = at(&chosen).unwrap_or(-1);
    for (m, p) in &with_data {
        if p.seqno > chosen_at {
            notes.push(format!(
                "{} is ahead of {chosen} (seqno {} against {chosen_at}): its {} newest write set(s) are lost, and it joins by SST",
                m.name,
                p.seqno,
                p.seqno - chosen_at
            ));
        }
    }
    Ok((chosen, notes))
}

/// Plans the whole-cluster restart of `cluster` over `conns` (the members that answered).
/// Reads every member at once: what it is (any still running refuses the restart), then
/// its position (running `mariadbd --wsrep-recover` on a crashed one).
///
/// Errors: [`Error::Refused`] when the cluster is not a Galera cluster, a member is not
/// reachable and `from` names none, a member runs in a cluster, a crashed member's position
/// cannot be read, or [`choose`] refuses; [`Error::Usage`] when `from` is not a member.
pub async fn plan(
    engine: &Engine,
    cluster: &str,
    from: Option<&str>,
    force_quorum: bool,
    conns: &HashMap<String, Arc<SshHost>>,
) -> Result<RunbookPlan, Error> {
    let names: Vec<String> = engine
        .inv
        .cluster_databases(cluster)
        .filter(|h| h.has(Role::Member))
        .map(|h| h.name.clone())
        .collect();
    if names.is_empty() {
        return Err(Error::Refused(format!(
            "cluster {cluster} is not a Galera cluster: a whole-cluster restart is for `replication: galera`; nothing was changed"
        )));
    }
    if let Some(f) = from
        && !names.iter().any(|n| n == f)
    {
        return Err(Error::Usage(format!(
            "--from {f}: not a member of cluster {cluster} ({})",
            names.join(", ")
        )));
    }
    // A replication group reads and compares transactions, not seqnos.
    if engine.inv.cluster_databases(cluster).any(|h| h.in_group()) {
        return super::group_restart::plan(engine, cluster, &names, from, force_quorum, conns)
            .await;
    }
    if force_quorum {
        return force_quorum_plan(engine, cluster, &names, from, conns).await;
    }
    let unreachable = require_reachable(&format!("cluster {cluster}"), &names, from, conns)?;
    let mut p = restart_plan(
        engine,
        cluster,
        from,
        false,
        format!("Whole-cluster restart of Galera cluster {cluster}:"),
    );
    let mut tasks = HashMap::new();
    for name in names.iter().filter(|n| conns.contains_key(*n)) {
        let g = galera_of(engine, name).ok_or_else(|| {
            Error::Refused(format!(
                "{name} has no `galera member` task in the playbooks"
            ))
        })?;
        tasks.insert(name.clone(), g);
    }
    // Every reached member at once, twice: first what it is (a member that still runs
    // refuses the restart before any member's position is recovered), then its position.
    for read in read_all(&tasks, conns, GaleraRes::probe).await {
        let (name, out) = read?;
        let f = crate::sql::vertical(&out);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        if get("running") == "yes" && get("wsrep_on") == "1" {
            let lost = get("cluster_status") != crate::sql::galera::PRIMARY_COMPONENT;
            return Err(Error::Refused(format!(
                "{name} runs in cluster {cluster} ({} component of {}): this is not a whole-cluster stop; {}; nothing was changed",
                get("cluster_status"),
                get("cluster_size"),
                if lost {
                    "the cluster lost its quorum: if the members not running are down, --force-quorum re-forms the primary component from the most advanced member running"
                } else {
                    "`dbfleet apply` joins the stopped members"
                }
            )));
        }
        if get("running") == "yes" {
            return Err(Error::Refused(format!(
                "{name}'s server runs without wsrep: stop it first; nothing was changed"
            )));
        }
    }
    let mut read: HashMap<String, String> = HashMap::new();
    for r in read_all(&tasks, conns, GaleraRes::recovery_read_script).await {
        let (name, out) = r?;
        read.insert(name, out);
    }
    // In inventory order: the order of equals in the choice.
    let mut members = Vec::new();
    for name in names.iter().filter(|n| read.contains_key(*n)) {
        let out = &read[name];
        let position = position(out).map_err(|e| Error::Refused(format!("{name}: {e}")))?;
        p.observe(
            name,
            "position",
            match &position {
                Some(pos) => format!("{}:{}", pos.uuid, pos.seqno),
                None => "no cluster history".into(),
            },
        );
        members.push(Member {
            name: name.clone(),
            position,
            safe_to_bootstrap: crate::sql::vertical(out)
                .get("safe_to_bootstrap")
                .is_some_and(|v| v == "1"),
        });
    }
    let (chosen, mut notes) = choose(cluster, &members, from)?;
    for u in &unreachable {
        notes.push(format!(
            "{u} was not reached: whatever it holds beyond {chosen} is lost; `dbfleet apply` joins it when it is back"
        ));
    }
    let seqno = |n: &str| {
        members
            .iter()
            .find(|m| m.name == n)
            .and_then(|m| m.position.as_ref())
            .map(|p| p.seqno.to_string())
            .unwrap_or_else(|| "none".into())
    };
    let why = if from.is_some() {
        "named by --from".to_string()
    } else {
        "the most advanced".to_string()
    };
    p.step(
        &[&chosen],
        format!(
            "bootstrap the cluster from {chosen} (seqno {}, {why}); refused if a member runs by then",
            seqno(&chosen)
        ),
        Action::Script {
            script: tasks[&chosen].restart_bootstrap_script(),
        },
        true,
    );
    for m in members.iter().filter(|m| m.name != chosen) {
        p.step(
            &[&m.name],
            format!(
                "start {} (seqno {}): it joins {chosen}, by IST when {chosen}'s gcache holds what it misses, else SST",
                m.name,
                seqno(&m.name)
            ),
            Action::Script {
                script: tasks[&m.name].apply_script(),
            },
            true,
        );
    }
    p.notes = notes;
    Ok(p)
}

/// The member to re-form the primary component from, of `running` (name, last committed
/// seqno) in inventory order: `from` when named, else the highest seqno (of equals the first
/// declared).
///
/// Errors: [`Error::Refused`] when no member runs, or `from` does not.
pub fn choose_survivor(
    cluster: &str,
    running: &[(String, i64)],
    from: Option<&str>,
) -> Result<String, Error> {
    if let Some(f) = from {
        return running
            .iter()
            .find(|(n, _)| n == f)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                Error::Refused(format!(
                    "--from {f}: {f} does not run in cluster {cluster}; nothing was changed"
                ))
            });
    }
    let top = running.iter().map(|(_, c)| *c).max().ok_or_else(|| {
        Error::Refused(format!(
            "no member of cluster {cluster} runs: that is a whole-cluster stop, which `dbfleet cluster-restart` without --force-quorum recovers; nothing was changed"
        ))
    })?;
    Ok(running
        .iter()
        .find(|(_, c)| *c == top)
        .map(|(n, _)| n.clone())
        .unwrap_or_default())
}

/// Plans a lost quorum's recovery (`--force-quorum`): the members still running are in a
/// non-primary component (the others are down); the most advanced of them (highest
/// `wsrep_last_committed`; of equals the first declared; or `from`) makes its component
/// the primary component, and the others of its component go with it. The members down
/// rejoin by `dbfleet apply` when they are back. A Galera component holds every write
/// acknowledged by the primary component it came from (a write set is delivered to every
/// member of the component before its commit returns), so no acknowledged write is lost
/// when the members down really are down; the flag is the operator's word for that.
///
/// Errors: [`Error::Refused`] when a member reached is in the primary component (the
/// quorum is not lost), no member runs in the cluster (a whole-cluster stop: no flag),
/// or `from` does not run in it.
async fn force_quorum_plan(
    engine: &Engine,
    cluster: &str,
    names: &[String],
    from: Option<&str>,
    conns: &HashMap<String, Arc<SshHost>>,
) -> Result<RunbookPlan, Error> {
    let mut p = restart_plan(
        engine,
        cluster,
        from,
        true,
        format!("Lost quorum of Galera cluster {cluster}: re-form the primary component:"),
    );
    let mut running: Vec<(String, i64, GaleraRes)> = Vec::new();
    let mut down: Vec<String> = Vec::new();
    for name in names {
        let Some(conn) = conns.get(name) else {
            down.push(format!("{name} (not reached)"));
            continue;
        };
        let g = galera_of(engine, name).ok_or_else(|| {
            Error::Refused(format!(
                "{name} has no `galera member` task in the playbooks"
            ))
        })?;
        let o = conn
            .run(&g.probe())
            .await
            .map_err(|e| Error::Refused(format!("{name}: {e}")))?;
        let f = crate::sql::vertical(&o.stdout);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        if get("running") != "yes" || get("wsrep_on") != "1" {
            down.push(format!("{name} (its server is stopped)"));
            continue;
        }
        let status = get("cluster_status");
        p.observe(
            name,
            "component",
            format!("{status} of {}", get("cluster_size")),
        );
        if status == crate::sql::galera::PRIMARY_COMPONENT {
            return Err(Error::Refused(format!(
                "{name} is in the primary component of cluster {cluster} (size {}): the quorum is not lost; nothing was changed",
                get("cluster_size")
            )));
        }
        let committed: i64 = get("last_committed").parse().unwrap_or(-1);
        running.push((name.clone(), committed, g));
    }
    let positions: Vec<(String, i64)> = running.iter().map(|(n, c, _)| (n.clone(), *c)).collect();
    let name = choose_survivor(cluster, &positions, from)?;
    let chosen = running
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("the chosen member runs");
    p.step(
        &[&chosen.0],
        format!(
            "make {}'s component the primary component (last committed seqno {}, {}); refused if it is in a primary component by then",
            chosen.0,
            chosen.1,
            if from.is_some() {
                "named by --from"
            } else {
                "the most advanced member running"
            }
        ),
        Action::Script {
            script: chosen.2.force_quorum_script(),
        },
        true,
    );
    for (n, c, _) in running.iter().filter(|(n, _, _)| *n != chosen.0) {
        if *c > chosen.1 {
            p.notes.push(format!(
                "{n} is ahead of {} (seqno {c} against {}): it leaves and rejoins by SST",
                chosen.0, chosen.1
            ));
        }
    }
    p.notes.push(format!(
        "you assert that {} {} down: a member running a primary component of its own would make two clusters that both take writes. They rejoin by `dbfleet apply` once back",
        down.join(", "),
        if down.len() == 1 { "is" } else { "are" }
    ));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, seqno: Option<i64>, safe: bool) -> Member {
        Member {
            name: name.into(),
            position: seqno.map(|s| Position {
                uuid: "6b1f0c7e-0000-11ef-8000-0242ac1d4d0b".into(),
                seqno: s,
            }),
            safe_to_bootstrap: safe,
        }
    }

    #[test]
    fn the_most_advanced_member_starts_the_cluster() {
        let ms = [
            m("db1", Some(40), false),
            m("db2", Some(57), false),
            m("db3", Some(55), false),
        ];
        assert_eq!(choose("c", &ms, None).unwrap(), ("db2".to_string(), vec![]));
        // Equals: the one a clean stop marked safe, else the first declared.
        let ms = [
            m("db1", Some(57), false),
            m("db2", Some(57), true),
            m("db3", None, false),
        ];
        assert_eq!(choose("c", &ms, None).unwrap().0, "db2");
        let ms = [m("db1", Some(57), false), m("db2", Some(57), false)];
        assert_eq!(choose("c", &ms, None).unwrap().0, "db1");
    }

    #[test]
    fn a_member_named_behind_the_others_says_what_they_lose() {
        let ms = [m("db1", Some(40), false), m("db2", Some(57), false)];
        let (chosen, notes) = choose("c", &ms, Some("db1")).unwrap();
        assert_eq!(chosen, "db1");
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("db2 is ahead of db1 (seqno 57 against 40): its 17 newest"),
            "{notes:?}"
        );
    }

    #[test]
    fn two_claims_two_histories_and_no_data_are_refused() {
        let ms = [m("db1", Some(57), true), m("db2", Some(57), true)];
        let e = choose("c", &ms, None).unwrap_err().to_string();
        assert!(e.contains("db1 and db2 all claim"), "{e}");
        assert!(choose("c", &ms, Some("db2")).is_ok());
        let mut other = m("db2", Some(9), false);
        other.position.as_mut().unwrap().uuid = "11111111-0000-11ef-8000-0242ac1d4d0b".into();
        let e = choose("c", &[m("db1", Some(5), false), other], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another cluster"), "{e}");
        let e = choose("c", &[m("db1", None, false)], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds data"), "{e}");
        // Named, but holding nothing (or not read): never the one to start from.
        let ms = [m("db1", Some(57), false), m("db2", None, false)];
        for from in ["db2", "db3"] {
            let e = choose("c", &ms, Some(from)).unwrap_err().to_string();
            assert!(e.contains("was not reached or holds no data"), "{e}");
        }
    }

    #[test]
    fn a_lost_quorum_is_re_formed_from_the_most_advanced_member_running() {
        let running = [("db1".to_string(), 40), ("db3".to_string(), 57)];
        assert_eq!(choose_survivor("c", &running, None).unwrap(), "db3");
        let equal = [("db2".to_string(), 57), ("db3".to_string(), 57)];
        assert_eq!(choose_survivor("c", &equal, None).unwrap(), "db2");
        assert_eq!(choose_survivor("c", &running, Some("db1")).unwrap(), "db1");
        let e = choose_survivor("c", &running, Some("db2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not run"), "{e}");
        let e = choose_survivor("c", &[], None).unwrap_err().to_string();
        assert!(e.contains("whole-cluster stop"), "{e}");
    }
}
