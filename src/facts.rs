//! Facts: the current state of every managed resource of a host, read in ONE round trip.
//!
//! The probes of all the host's selected tasks are joined into one sh script, each behind
//! a marker line, and run once over the host's connection; the output is split back per
//! task. A plan therefore costs one SSH handshake plus one command per host. Probes that
//! are SQL only go through ONE database client call, each behind a marker row that the
//! client prints itself: a client start costs about 70 ms, and a primary has a dozen.

use std::collections::HashMap;

use petgraph::graph::NodeIndex;

use crate::graph::TaskGraph;

const MARK: &str = "@@dbfleet-fact ";
const CLIENT: &str = "@@dbfleet-client ";

/// The operator's address as the host saw this SSH session, from probe output.
pub fn client_address(stdout: &str) -> Option<std::net::IpAddr> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(CLIENT))
        .and_then(|a| a.trim().parse().ok())
}

/// The probe script for `nodes` (all on one host): each task's probe (a handler's is its
/// pending marker) behind a marker line, under the host's run lock.
pub fn script(graph: &TaskGraph, nodes: &[NodeIndex]) -> String {
    let mut body = String::new();
    // Per dialect, the marked statements of every SQL-only probe (one client call each).
    let mut sql: Vec<(crate::sql::Dialect, String)> = Vec::new();
    for n in nodes {
        let t = &graph.graph[*n];
        if !t.handler
            && let Some((d, stmts)) = t.resource.sql_probe()
        {
            let marked = format!("SELECT '{MARK}{}';\n{stmts}\n", n.index());
            match sql.iter_mut().find(|(x, _)| *x == d) {
                Some((_, all)) => all.push_str(&marked),
                None => sql.push((d, marked)),
            }
            continue;
        }
        let probe = if t.handler {
            crate::tasks::pending_probe(&t.name)
        } else {
            t.resource.probe()
        };
        body.push_str(&format!(
            "echo '{MARK}{}'\n( {probe}\n) 2>/dev/null\n",
            n.index()
        ));
    }
    for (d, stmts) in sql {
        body.push_str(&format!(
            // `|| true`: no client yet (a fresh host) is no fact, not a failed probe.
            "( {} -N -B --force <<'DBFLEET_SQL'\n{stmts}DBFLEET_SQL\n) 2>/dev/null || true\n",
            d.client()
        ));
    }
    // The operator's address as this host sees it (SSH_CONNECTION: client ip, port, ...).
    format!(
        "LC_ALL=C; export LC_ALL\necho \"{CLIENT}${{SSH_CONNECTION%% *}}\"\n{}",
        crate::tasks::locked(false, &body)
    )
}

/// Splits probe output into each node's text.
pub fn split(stdout: &str) -> HashMap<NodeIndex, String> {
    let mut out: HashMap<NodeIndex, String> = HashMap::new();
    let mut cur: Option<NodeIndex> = None;
    for line in stdout.lines() {
        if let Some(id) = line.strip_prefix(MARK) {
            cur = id.trim().parse::<usize>().ok().map(NodeIndex::new);
            if let Some(c) = cur {
                out.entry(c).or_default();
            }
            continue;
        }
        if let Some(c) = cur {
            let e = out.entry(c).or_default();
            e.push_str(line);
            e.push('\n');
        }
    }
    out
}
