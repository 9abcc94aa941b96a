//! Whole-group restart of a MySQL replication group (`dbfleet cluster-restart` on a
//! `replication: group` cluster): after every member stopped or crashed (a power loss),
//! found the group again from its most advanced member, then the others join it.
//!
//! As with Galera (`super::cluster_restart`), the choice is the one operators fear: a group
//! founded from a member that is behind the others throws their newer transactions away
//! (and those members can no longer join: they hold transactions the group does not), and
//! two members founding it make two groups. MySQL's procedure (manual 20.5.2 "Restarting a
//! Group"): with every member out of any group, read each one's `gtid_executed` and the
//! transactions its group applier channel received, and bootstrap the member whose set
//! holds every other member's. This runbook does it, as a plan shown first:
//!
//! - every member must be reachable: one not seen may hold the newest transactions. The
//!   operator may name the member to start from (`--from`); the plan then says what the
//!   others hold beyond it;
//! - no member may be in a group (that is not a whole-group stop: `dbfleet apply` joins
//!   stopped members);
//! - when no member's transactions cover every other member's (divergent histories), it
//!   refuses unless `--from` names one;
//! - each other member's own start (which tries to join for a minute, listening on port
//!   33061 meanwhile) is stopped first, refusing if the member is in a group by then; the
//!   chosen member founds the group (its step refuses, changing nothing, when a member
//!   listens on port 33061 by then), then each other member joins it by distributed
//!   recovery.
//!
//! Reading a stopped member's transactions starts its server at plan time: with no member
//! in a group it cannot join one, and it never founds one by itself, so it stays out of
//! any group, super-read-only (`crate::tasks::group::GroupRes::recovery_read_script`).

use std::collections::HashMap;
use std::sync::Arc;

use super::members::{read_all, require_reachable, restart_plan};
use crate::engine::Engine;
use crate::error::Error;
use crate::plan::runbook::{Action, RunbookPlan};
use crate::sql::gtid::GtidSet;
use crate::tasks::Resource;
use crate::tasks::group::GroupRes;
use crate::transport::SshHost;

/// What a member holds, at plan time: its `gtid_executed` and what its group applier
/// channel received (applied or not), as one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub transactions: GtidSet,
}

/// The `group member` task of `host` (its resource carries the group's members).
fn group_of(engine: &Engine, host: &str) -> Option<GroupRes> {
    engine.graph.graph.node_indices().find_map(|n| {
        let t = &engine.graph.graph[n];
        match &t.resource {
            Resource::Group(g) if t.host == host && !t.handler => Some(g.clone()),
            _ => None,
        }
    })
}

/// The recovery password the plan's steps hold as a placeholder (each member's scripts
/// are built by [`GroupRes::for_plan`]), for the executor to fill in: the replication
/// password of the group's `group member` tasks. None for a Galera cluster.
pub fn secret(engine: &Engine, cluster: &str) -> Option<String> {
    engine
        .inv
        .cluster_databases(cluster)
        .find_map(|h| group_of(engine, &h.name))
        .map(|g| g.recovery_password)
}

/// The member to found the group from: `from` when named, else the first declared member
/// whose transactions hold every other member's. Returns it and the notes on what the
/// others hold beyond it.
///
/// Errors: [`Error::Refused`] when no member holds a transaction, no member's transactions
/// hold every other's and `from` names none, or `from` names a member not read.
pub fn choose(
    cluster: &str,
    members: &[Member],
    from: Option<&str>,
) -> Result<(String, Vec<String>), Error> {
    if members.iter().all(|m| m.transactions.is_empty()) {
        return Err(Error::Refused(format!(
            "no member of replication group {cluster} holds a transaction: `dbfleet apply` founds the group; nothing was changed"
        )));
    }
    let covers_all = |m: &Member| {
        members
            .iter()
            .all(|o| m.transactions.covers(&o.transactions))
    };
    let chosen = match from {
        Some(f) if !members.iter().any(|m| m.name == f) => {
            return Err(Error::Refused(format!(
                "--from {f}: {f} was not reached; the group can only be founded again from a member whose transactions were read; nothing was changed"
            )));
        }
        Some(f) => f.to_string(),
        None => match members.iter().find(|m| covers_all(m)) {
            Some(m) => m.name.clone(),
            None => {
                let lacks: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let others = GtidSet::union(
                            members
                                .iter()
                                .filter(|o| o.name != m.name)
                                .map(|o| &o.transactions),
                        );
                        format!(
                            "{} lacks {}",
                            m.name,
                            others.missing_from(&m.transactions).name()
                        )
                    })
                    .collect();
                return Err(Error::Refused(format!(
                    "no member of replication group {cluster} holds every other member's transactions ({}): their histories diverged, and founding the group from any of them loses the others' transactions; name the member to start from with --from; nothing was changed",
                    lacks.join("; ")
                )));
            }
        },
    };
    let chosen_set = &members
        .iter()
        .find(|m| m.name == chosen)
        .map(|m| m.transactions.clone())
        .unwrap_or_default();
    let mut notes = Vec::new();
    for m in members.iter().filter(|m| m.name != chosen) {
        let beyond = m.transactions.missing_from(chosen_set);
        if !beyond.is_empty() {
            notes.push(format!(
                "{} holds transactions {chosen} lacks ({}): they are lost, and {} cannot join the group until it is rebuilt (a bare host, then `dbfleet apply`)",
                m.name,
                beyond.name(),
                m.name
            ));
        }
    }
    Ok((chosen, notes))
}

/// Plans the whole-group restart of `cluster` over `conns` (the members that answered):
/// reads every member at once, first what it is (a member in a group refuses the restart
/// before any stopped server is started), then its transactions.
///
/// Errors: [`Error::Refused`] when a member is not reachable and `from` names none, a
/// member is in a group, a member's transactions cannot be read, or [`choose`] refuses;
/// [`Error::Usage`] when `from` is not a member.
pub async fn plan(
    engine: &Engine,
    cluster: &str,
    names: &[String],
    from: Option<&str>,
    force_quorum: bool,
    conns: &HashMap<String, Arc<SshHost>>,
) -> Result<RunbookPlan, Error> {
    if force_quorum {
        return force_quorum_plan(engine, cluster, names, from, conns).await;
    }
    let unreachable =
        require_reachable(&format!("replication group {cluster}"), names, from, conns)?;
    let mut p = restart_plan(
        engine,
        cluster,
        from,
        false,
        format!("Whole-group restart of replication group {cluster}:"),
    );
    let mut tasks = HashMap::new();
    for name in names.iter().filter(|n| conns.contains_key(*n)) {
        let g = group_of(engine, name).ok_or_else(|| {
            Error::Refused(format!(
                "{name} has no `group member` task in the playbooks"
            ))
        })?;
        tasks.insert(name.clone(), g.for_plan());
    }
    for read in read_all(&tasks, conns, GroupRes::probe).await {
        let (name, out) = read?;
        let f = crate::sql::vertical(&out);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let state = get("member_state");
        if get("running") == "yes"
            && matches!(
                state.as_str(),
                crate::sql::group::ONLINE | crate::sql::group::RECOVERING
            )
        {
            return Err(Error::Refused(format!(
                "{name} is in replication group {cluster} ({state}, {} of {} members reached): this is not a whole-group stop; `dbfleet apply` joins the stopped members; nothing was changed",
                get("online"),
                get("members")
            )));
        }
    }
    let mut read: HashMap<String, String> = HashMap::new();
    for r in read_all(&tasks, conns, GroupRes::recovery_read_script).await {
        let (name, out) = r?;
        read.insert(name, out);
    }
    // In inventory order: the order of equals in the choice.
    let mut members = Vec::new();
    for name in names.iter().filter(|n| read.contains_key(*n)) {
        let f = crate::sql::vertical(&read[name]);
        let Some(executed) = f.get("executed") else {
            return Err(Error::Refused(format!(
                "{name}: its transactions could not be read (no gtid_executed in {:?}); nothing was changed",
                read[name]
            )));
        };
        let received = f.get("received").cloned().unwrap_or_default();
        let transactions = GtidSet::union([&GtidSet::parse(executed), &GtidSet::parse(&received)]);
        p.observe(name, "transactions", transactions.to_string());
        members.push(Member {
            name: name.clone(),
            transactions,
        });
    }
    let (chosen, mut notes) = choose(cluster, &members, from)?;
    for u in &unreachable {
        notes.push(format!(
            "{u} was not reached: whatever it holds beyond {chosen} is lost; `dbfleet apply` joins it when it is back, if it holds nothing the group lacks"
        ));
    }
    let count = |n: &str| {
        members
            .iter()
            .find(|m| m.name == n)
            .map(|m| m.transactions.progress())
            .unwrap_or(0)
    };
    let why = if from.is_some() {
        "named by --from".to_string()
    } else {
        "the most advanced: its transactions hold every other member's".to_string()
    };
    // Each other member's own start tries to join for a minute and listens meanwhile:
    // stopped first, so the chosen member's step finds no member listening unless a group
    // runs.
    for m in members.iter().filter(|m| m.name != chosen) {
        p.step(
            &[&m.name],
            format!(
                "stop {}'s attempt to join (its server's start tries for a minute); refused if it is in a group by then",
                m.name
            ),
            Action::Script {
                script: tasks[&m.name].restart_quiesce_script(),
            },
            true,
        );
    }
    p.step(
        &[&chosen],
        format!(
            "bootstrap the group from {chosen} ({} transactions, {why}); refused if a member runs by then",
            count(&chosen)
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
                "{} ({} transactions) joins {chosen}: distributed recovery copies what it misses",
                m.name,
                count(&m.name)
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

/// Plans a lost quorum's recovery (`--force-quorum`): the members still running are online
/// in a group whose majority they no longer reach (the others crashed, or are cut off), and
/// take no write. A new membership of exactly them is forced from the first declared of
/// them whose transactions hold the others' (or `from`), and the group goes on with them;
/// the members left out join again by `dbfleet apply` when they are back. A transaction is
/// acknowledged once a majority agreed on it, and every majority of the old membership
/// overlaps the survivors only if they were part of it: the flag is the operator's word
/// that the members left out are down (were they a majority of their own, there would be
/// two groups).
///
/// Errors: [`Error::Refused`] when a member reached holds a majority (the quorum is not
/// lost), no member runs online (a whole-group stop: no flag), or `from` is not one of
/// the survivors.
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
        format!("Lost quorum of replication group {cluster}: force a new membership:"),
    );
    let mut survivors: Vec<(Member, GroupRes, String)> = Vec::new();
    let mut down: Vec<String> = Vec::new();
    for name in names {
        let Some(conn) = conns.get(name) else {
            down.push(format!("{name} (not reached)"));
            continue;
        };
        let g = group_of(engine, name).ok_or_else(|| {
            Error::Refused(format!(
                "{name} has no `group member` task in the playbooks"
            ))
        })?;
        let script = format!(
            "{}\n{} -E -e {} | sed 's/^ *//'\n",
            g.probe(),
            engine.runbook_dialect().client(),
            crate::tasks::q(crate::sql::group::TRANSACTIONS)
        );
        let o = conn
            .run(&script)
            .await
            .map_err(|e| Error::Refused(format!("{name}: {e}")))?;
        let f = crate::sql::vertical(&o.stdout);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        if get("running") != "yes" || get("member_state") != crate::sql::group::ONLINE {
            down.push(format!("{name} (not online: {})", get("member_state")));
            continue;
        }
        let (online, members) = (
            get("online").parse::<u32>().unwrap_or(0),
            get("members").parse::<u32>().unwrap_or(0),
        );
        p.observe(name, "reached", format!("{online} of {members}"));
        if 2 * online > members {
            return Err(Error::Refused(format!(
                "{name} reaches {online} of the {members} members of replication group {cluster}: the quorum is not lost; nothing was changed"
            )));
        }
        let transactions = GtidSet::union([
            &GtidSet::parse(&get("executed")),
            &GtidSet::parse(&get("received")),
        ]);
        let address = engine
            .inv
            .host(name)
            .map(|h| format!("{}:{}", h.address, crate::tasks::group::GCS_PORT))
            .unwrap_or_default();
        survivors.push((
            Member {
                name: name.clone(),
                transactions,
            },
            g.for_plan(),
            address,
        ));
    }
    if survivors.is_empty() {
        return Err(Error::Refused(format!(
            "no member of replication group {cluster} runs online: that is a whole-group stop, which `dbfleet cluster-restart` without --force-quorum recovers; nothing was changed"
        )));
    }
    let members: Vec<Member> = survivors.iter().map(|(m, _, _)| m.clone()).collect();
    let (chosen, notes) = choose(cluster, &members, from)?;
    let addresses: Vec<String> = survivors.iter().map(|(_, _, a)| a.clone()).collect();
    let (_, g, _) = survivors
        .iter()
        .find(|(m, _, _)| m.name == chosen)
        .expect("the chosen member survives");
    p.step(
        &[&chosen],
        format!(
            "force the membership of replication group {cluster} to {} (group_replication_force_members, from {chosen}); refused if {chosen} reaches a majority by then",
            survivors
                .iter()
                .map(|(m, _, _)| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Action::Script {
            script: g.force_quorum_script(&addresses),
        },
        true,
    );
    p.notes = notes;
    p.notes.push(format!(
        "you assert that {} {} down: members running a majority of their own would make two groups that both take writes. They join again by `dbfleet apply` once back",
        down.join(", "),
        if down.len() == 1 { "is" } else { "are" }
    ));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "0218d06b-3f31-8900-bdc1-b25a725cf742";

    fn m(name: &str, set: &str) -> Member {
        Member {
            name: name.into(),
            transactions: GtidSet::parse(set),
        }
    }

    #[test]
    fn the_member_holding_every_other_members_transactions_founds_the_group() {
        let ms = [
            m("db1", &format!("{G}:1-40")),
            m("db2", &format!("{G}:1-57")),
            m("db3", &format!("{G}:1-55")),
        ];
        assert_eq!(choose("g", &ms, None).unwrap(), ("db2".to_string(), vec![]));
        // Equals: the first declared.
        let ms = [
            m("db1", &format!("{G}:1-57")),
            m("db2", &format!("{G}:1-57")),
        ];
        assert_eq!(choose("g", &ms, None).unwrap().0, "db1");
    }

    #[test]
    fn divergent_histories_are_refused_unless_named_and_the_named_says_what_is_lost() {
        // db2 holds a transaction of its own (written outside the group) db1 lacks, and
        // db1 holds the group's newest: neither holds the other's.
        let ms = [
            m("db1", &format!("{G}:1-60")),
            m(
                "db2",
                &format!("{G}:1-57,3e11fa47-71ca-11e1-9e33-c80aa9429562:1"),
            ),
        ];
        let e = choose("g", &ms, None).unwrap_err().to_string();
        assert!(e.contains("histories diverged"), "{e}");
        assert!(e.contains("db1 lacks 3e11fa47"), "{e}");
        let (chosen, notes) = choose("g", &ms, Some("db1")).unwrap();
        assert_eq!(chosen, "db1");
        assert!(
            notes[0].starts_with("db2 holds transactions db1 lacks (3e11fa47"),
            "{notes:?}"
        );
        let e = choose("g", &ms, Some("db3")).unwrap_err().to_string();
        assert!(e.contains("was not reached"), "{e}");
        let e = choose("g", &[m("db1", ""), m("db2", "")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds a transaction"), "{e}");
    }
}
