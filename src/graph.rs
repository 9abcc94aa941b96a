//! The task graph: nodes are (host, task), edges say "runs before".
//!
//! Edge kinds: `order` (a task after the previous one of its playbook, a playbook after
//! those in its `after:`), `needs` (cross-host: a replica's server starts after its
//! source's), `notify` (a task to the handler it notifies) and `handler` (every task of a
//! host before that host's handlers: handlers run once, last). A cycle is an error naming
//! the tasks in it. `--limit` and `--tags` select nodes; a selected node waits for its
//! nearest selected ancestors.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::error::Error;
use crate::tasks::Resolved;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    Order,
    Needs,
    Notify,
    Handler,
}

/// Every resolved task and the order between them.
pub struct TaskGraph {
    pub graph: DiGraph<Resolved, EdgeKind>,
    /// All nodes in a valid run order.
    pub order: Vec<NodeIndex>,
    /// Each host's nodes, in order.
    by_host: HashMap<String, Vec<NodeIndex>>,
}

impl TaskGraph {
    /// Builds the graph and its run order.
    ///
    /// Errors: [`Error::DuplicateTask`] for two tasks of one host with one name,
    /// [`Error::MissingNeed`] for a `needs` naming a task the other host lacks,
    /// [`Error::Cycle`] naming the tasks of a cycle.
    pub fn build(tasks: Vec<Resolved>) -> Result<TaskGraph, Error> {
        // Sized once: growing the node list moved every task (they are large) again and
        // again at 10,000 hosts.
        let mut graph = DiGraph::with_capacity(tasks.len(), tasks.len() * 4);
        for t in tasks {
            graph.add_node(t);
        }
        // Each host's nodes, in order: every link but `needs` stays within its host, and
        // looking through every node of the fleet for each was quadratic in the host count.
        let mut by_host: HashMap<String, Vec<NodeIndex>> = HashMap::new();
        for n in graph.node_indices() {
            match by_host.get_mut(graph[n].host.as_str()) {
                Some(v) => v.push(n),
                None => {
                    by_host.insert(graph[n].host.clone(), vec![n]);
                }
            }
        }
        let edges = links(&graph, &by_host)?;
        for (from, to, kind) in edges {
            graph.add_edge(from, to, kind);
        }
        let order = match toposort(&graph, None) {
            Ok(o) => o,
            Err(_) => {
                let cycle = tarjan_scc(&graph)
                    .into_iter()
                    .find(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
                    .unwrap_or_default();
                let names: Vec<String> = cycle
                    .iter()
                    .rev()
                    .map(|&n| format!("{}/{}", graph[n].host, graph[n].name))
                    .collect();
                return Err(Error::Cycle(names.join(" → ")));
            }
        };
        Ok(TaskGraph {
            graph,
            order,
            by_host,
        })
    }

    /// The node of `task` on `host`. A host holds a few dozen tasks: a scan of them costs
    /// less than a fleet-wide map keyed by owned names.
    pub fn node(&self, host: &str, task: &str) -> Option<NodeIndex> {
        self.by_host
            .get(host)?
            .iter()
            .copied()
            .find(|&n| self.graph[n].name == task)
    }

    /// Nodes selected by `--limit` hosts and `--tags` (handlers are selected when a
    /// selected task notifies them), in run order.
    pub fn select(
        &self,
        hosts: Option<&BTreeSet<String>>,
        tags: Option<&BTreeSet<String>>,
    ) -> Vec<NodeIndex> {
        let host_ok = |n: NodeIndex| hosts.is_none_or(|h| h.contains(&self.graph[n].host));
        let tag_ok =
            |n: NodeIndex| tags.is_none_or(|t| self.graph[n].tags.iter().any(|x| t.contains(x)));
        let chosen: BTreeSet<NodeIndex> = self
            .order
            .iter()
            .copied()
            .filter(|&n| host_ok(n) && !self.graph[n].handler && tag_ok(n))
            .collect();
        self.order
            .iter()
            .copied()
            .filter(|&n| {
                chosen.contains(&n)
                    || (self.graph[n].handler
                        && host_ok(n)
                        && self
                            .graph
                            .edges_directed(n, petgraph::Direction::Incoming)
                            .any(|e| {
                                *e.weight() == EdgeKind::Notify && chosen.contains(&e.source())
                            }))
            })
            .collect()
    }

    /// The nearest ancestors of `n` within `selected` (walking through unselected nodes).
    pub fn selected_deps(&self, n: NodeIndex, selected: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .collect();
        while let Some(p) = stack.pop() {
            if !seen.insert(p) {
                continue;
            }
            if selected.contains(&p) {
                out.insert(p);
            } else {
                stack.extend(
                    self.graph
                        .neighbors_directed(p, petgraph::Direction::Incoming),
                );
            }
        }
        out.into_iter().collect()
    }

    /// The graph in Graphviz DOT: one cluster per host, edges styled by kind.
    pub fn to_dot(&self, selected: &[NodeIndex]) -> String {
        let sel: BTreeSet<NodeIndex> = selected.iter().copied().collect();
        let mut s = String::from(
            "digraph dbfleet {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        let mut hosts: Vec<&str> = sel.iter().map(|&n| self.graph[n].host.as_str()).collect();
        hosts.dedup();
        let hosts: BTreeSet<&str> = hosts.into_iter().collect();
        for (i, h) in hosts.iter().enumerate() {
            let _ = writeln!(s, "  subgraph cluster_{i} {{\n    label={};", dot_str(h));
            for &n in self
                .order
                .iter()
                .filter(|n| sel.contains(n) && self.graph[**n].host == *h)
            {
                let t = &self.graph[n];
                let shape = if t.handler { ", style=rounded" } else { "" };
                let _ = writeln!(
                    s,
                    "    n{} [label={}{shape}];",
                    n.index(),
                    dot_str(&format!(
                        "{}\\n{} {}",
                        t.name,
                        t.resource.kind(),
                        t.resource.target()
                    ))
                );
            }
            s.push_str("  }\n");
        }
        for e in self.graph.edge_references() {
            if !(sel.contains(&e.source()) && sel.contains(&e.target())) {
                continue;
            }
            let style = match e.weight() {
                EdgeKind::Order => "",
                EdgeKind::Needs => " [color=blue, label=\"needs\"]",
                EdgeKind::Notify => " [style=dashed, label=\"notify\"]",
                EdgeKind::Handler => " [style=dotted, color=gray]",
            };
            let _ = writeln!(
                s,
                "  n{} -> n{}{style};",
                e.source().index(),
                e.target().index()
            );
        }
        s.push_str("}\n");
        s
    }
}

fn dot_str(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

/// The edges between the nodes of `graph`, read from each task's links (the graph's weights
/// are borrowed, so every lookup is by `&str` and nothing is cloned).
///
/// Errors: [`Error::DuplicateTask`] for two tasks of one host with one name,
/// [`Error::MissingNeed`] for a `needs` naming a task the other host lacks.
fn links(
    graph: &DiGraph<Resolved, EdgeKind>,
    by_host: &HashMap<String, Vec<NodeIndex>>,
) -> Result<Vec<(NodeIndex, NodeIndex, EdgeKind)>, Error> {
    let mut names: HashMap<&str, HashMap<&str, NodeIndex>> = HashMap::with_capacity(by_host.len());
    for (h, nodes) in by_host {
        let mut m = HashMap::with_capacity(nodes.len());
        for &n in nodes {
            if m.insert(graph[n].name.as_str(), n).is_some() {
                return Err(Error::DuplicateTask {
                    host: h.clone(),
                    task: graph[n].name.clone(),
                });
            }
        }
        names.insert(h.as_str(), m);
    }
    let find = |host: &str, task: &str| names.get(host).and_then(|m| m.get(task)).copied();
    let mut edges = Vec::with_capacity(graph.node_count() * 4);
    for n in graph.node_indices() {
        let t = &graph[n];
        for a in &t.after {
            if let Some(p) = find(&t.host, a) {
                edges.push((p, n, EdgeKind::Order));
            }
        }
        for (on, task) in &t.needs {
            // A host absent from the inventory was already rejected by validation.
            match find(on, task) {
                Some(p) => edges.push((p, n, EdgeKind::Needs)),
                None => {
                    return Err(Error::MissingNeed {
                        host: t.host.clone(),
                        task: t.name.clone(),
                        on: on.clone(),
                        needed: task.clone(),
                    });
                }
            }
        }
        for h in &t.notify {
            if let Some(hn) = find(&t.host, h) {
                edges.push((n, hn, EdgeKind::Notify));
            }
        }
        if t.handler {
            for &o in by_host.get(&t.host).map(Vec::as_slice).unwrap_or(&[]) {
                let other = &graph[o];
                let before = !other.handler && !other.notify.contains(&t.name);
                // Handlers run in the order they are defined, as in Ansible
                // (`restart server` before `writable primary`).
                let earlier_handler = other.handler && o < n;
                if before || earlier_handler {
                    edges.push((o, n, EdgeKind::Handler));
                }
            }
        }
    }
    Ok(edges)
}
