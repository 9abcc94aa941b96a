//! The topology view of `dbfleet status` (issue 15; orchestrator's `topology` is the model):
//! per cluster, the replication tree as the servers report it (each replica under the host
//! it replicates from, by the address in its replica status), each line with the server's
//! live role, version, read_only, replication threads, lag and GTID distance, semi-sync,
//! TLS and its problems; then the cluster's proxies and what each routes. A host that is
//! down, unreachable or replicates from outside the fleet is a root of its own, so nothing
//! is hidden by the drawing. Pure: it renders the rows `status` gathered.

use std::collections::BTreeSet;

use super::HostStatus;
use super::proxies::{ProxyStatus, Routed};
use crate::inventory::Inventory;

/// The view, one block per cluster in inventory order.
pub fn render(inv: &Inventory, rows: &[HostStatus], proxies: &[ProxyStatus]) -> String {
    let mut clusters: Vec<&str> = Vec::new();
    for h in &inv.hosts {
        if (rows.iter().any(|r| r.host == h.name) || proxies.iter().any(|p| p.host == h.name))
            && !clusters.contains(&h.cluster.as_str())
        {
            clusters.push(&h.cluster);
        }
    }
    let mut out = String::new();
    for c in clusters {
        let members: Vec<&HostStatus> = rows
            .iter()
            .filter(|r| inv.host(&r.host).is_some_and(|h| h.cluster == c))
            .collect();
        out.push_str(&format!("cluster {c}\n"));
        // A replica's parent: the member whose address its source names.
        let parent = |r: &HostStatus| -> Option<&str> {
            let src = r.source.as_deref()?;
            members
                .iter()
                .find(|m| m.host != r.host && inv.host(&m.host).is_some_and(|h| h.address == src))
                .map(|m| m.host.as_str())
        };
        let mut drawn = BTreeSet::new();
        let roots: Vec<&HostStatus> = members
            .iter()
            .copied()
            .filter(|r| parent(r).is_none())
            .collect();
        let n = roots.len();
        for (i, r) in roots.into_iter().enumerate() {
            draw(
                inv,
                &members,
                &parent,
                r,
                "",
                i + 1 == n,
                &mut drawn,
                &mut out,
            );
        }
        // Replication cycles have no root: show their members anyway.
        for r in members.iter().filter(|r| !drawn.contains(&r.host)) {
            out.push_str(&format!("  (in a replication cycle) {}\n", line(inv, r)));
        }
        for p in proxies.iter().filter(|p| p.cluster == c) {
            out.push_str(&format!("  proxy {}\n", proxy_line(p)));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn draw<'a>(
    inv: &Inventory,
    members: &[&'a HostStatus],
    parent: &dyn Fn(&HostStatus) -> Option<&'a str>,
    r: &'a HostStatus,
    prefix: &str,
    last: bool,
    drawn: &mut BTreeSet<String>,
    out: &mut String,
) {
    if !drawn.insert(r.host.clone()) {
        return;
    }
    let branch = if last { "└─ " } else { "├─ " };
    out.push_str(&format!("  {prefix}{branch}{}\n", line(inv, r)));
    let children: Vec<&&HostStatus> = members
        .iter()
        .filter(|m| parent(m) == Some(r.host.as_str()))
        .collect();
    let next = format!("{prefix}{}", if last { "   " } else { "│  " });
    let n = children.len();
    for (i, ch) in children.into_iter().enumerate() {
        draw(inv, members, parent, ch, &next, i + 1 == n, drawn, out);
    }
}

/// One server: `db2  replica  10.11.19-MariaDB  read-only  Yes/Yes  lag 0 s  semi-sync
/// replica on  TLS verified  ok`.
fn line(inv: &Inventory, r: &HostStatus) -> String {
    let mut f: Vec<String> = vec![r.host.clone()];
    if r.live == "unknown" {
        f.push(format!("({})", r.declared));
    } else if r.live == r.declared {
        f.push(r.live.clone());
    } else {
        f.push(format!("{} (declared {})", r.live, r.declared));
    }
    if let Some(v) = &r.version {
        f.push(v.clone());
    }
    if let Some(ro) = r.read_only {
        f.push(if ro { "read-only" } else { "writable" }.into());
    }
    if r.live == "replica" {
        if let (Some(io), Some(sq)) = (&r.io_running, &r.sql_running) {
            f.push(format!("IO/SQL {io}/{sq}"));
        }
        let lag = r
            .lag_seconds
            .map(|l| format!("lag {l} s"))
            .unwrap_or_else(|| "lag unknown".into());
        f.push(match r.behind_transactions {
            Some(t) if t > 0 => format!("{lag}, {t} trx behind"),
            _ => lag,
        });
        if let Some(src) = &r.source
            && !inv.hosts.iter().any(|h| h.address == *src)
        {
            f.push(format!("from {src} (outside the fleet)"));
        }
        f.push(format!("semi-sync {}", r.semi_sync));
        f.push(
            if r.tls {
                "TLS verified"
            } else {
                "no verified TLS"
            }
            .into(),
        );
    } else if let Some(g) = &r.group {
        f.push(g.state.clone());
        if !g.role.is_empty() {
            f.push(g.role.to_lowercase());
        }
        f.push(format!("{} of {} reached", g.online, g.members));
        f.push(if r.tls { "TLS" } else { "no TLS" }.into());
    } else if let Some(g) = &r.galera {
        f.push(g.state.clone());
        f.push(format!("size {}", g.cluster_size));
        f.push(
            if g.cluster_status == crate::sql::galera::PRIMARY_COMPONENT {
                "primary component".to_string()
            } else {
                format!("{} component", g.cluster_status)
            },
        );
        f.push(format!(
            "flow control paused {:.1} %",
            g.flow_control_paused * 100.0
        ));
        f.push(if r.tls { "TLS" } else { "no TLS" }.into());
    } else if r.live == "primary" {
        if !r.gtid.position.is_empty() {
            f.push(format!("GTID {}", r.gtid.position));
        }
        f.push(format!("semi-sync {}", r.semi_sync));
        f.push(if r.tls { "TLS" } else { "no TLS" }.into());
    }
    f.push(if r.problems.is_empty() {
        "ok".into()
    } else {
        format!("PROBLEM: {}", r.problems.join("; "))
    });
    f.join("  ")
}

fn routed(rs: &[Routed]) -> String {
    let shown: Vec<String> = rs
        .iter()
        .filter(|r| r.state != "MAINT" || rs.len() == 1)
        .map(|r| format!("{} {}", r.server, r.state))
        .collect();
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join(", ")
    }
}

/// One proxy: `proxy1  writer: db1 UP  readers: db2 UP, db3 UP  ok`.
fn proxy_line(p: &ProxyStatus) -> String {
    let mut f = vec![p.host.clone()];
    if !p.writer.is_empty() || !p.reader.is_empty() {
        f.push(format!("writer: {}", routed(&p.writer)));
        f.push(format!("readers: {}", routed(&p.reader)));
    }
    f.push(if p.problems.is_empty() {
        "ok".into()
    } else {
        format!("PROBLEM: {}", p.problems.join("; "))
    });
    f.join("  ")
}
