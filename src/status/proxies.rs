//! What each proxy routes, for `dbfleet status` (issue 15: the topology view shows the
//! proxies beside the replication tree): HAProxy's own view of its `writer` and `reader`
//! backends (`show stat` on its admin socket, one round trip per proxy), set against the
//! servers' live roles read in the same `status` run.
//!
//! Unhealthy: the proxy is unreachable or its HAProxy does not answer; its writer backend
//! has no server UP, more than one UP (two writers behind one address, proxysql#789), or
//! one UP that is not the cluster's live primary; its reader backend has a writable server
//! UP. A ProxySQL proxy is not read (`proxy_backend: proxysql` is rendered only).

use serde::Serialize;

use super::HostStatus;
use crate::inventory::{Host, Inventory};

/// One server in a proxy backend and HAProxy's state of it (`UP`, `DOWN`, `MAINT`,
/// `UP 1/2`…, as `show stat` prints it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Routed {
    pub server: String,
    pub state: String,
}

impl Routed {
    fn up(&self) -> bool {
        self.state == "UP" || self.state.starts_with("UP ")
    }
}

/// One proxy host's routing.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProxyStatus {
    pub host: String,
    pub cluster: String,
    /// The writer backend's servers, in the configuration's order.
    pub writer: Vec<Routed>,
    /// The reader backend's servers.
    pub reader: Vec<Routed>,
    /// Why this proxy is unhealthy; empty when healthy.
    pub problems: Vec<String>,
}

/// The script: HAProxy's statistics as CSV, from its admin socket.
pub const SCRIPT: &str = "echo 'show stat' | socat -t 2 stdio unix-connect:/run/haproxy/admin.sock";

/// Parses `show stat` output (CSV with a `# pxname,svname,…,status,…` header) into the
/// writer and reader backends' servers.
///
/// Errors: a message when the output has no such header.
pub fn parse(out: &str) -> Result<(Vec<Routed>, Vec<Routed>), String> {
    let mut lines = out.lines();
    let header = lines
        .find(|l| l.starts_with("# pxname"))
        .ok_or_else(|| "HAProxy's statistics have no header".to_string())?;
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st)) = (at("pxname"), at("svname"), at("status")) else {
        return Err("HAProxy's statistics lack pxname, svname or status".into());
    };
    let (mut writer, mut reader) = (Vec::new(), Vec::new());
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (Some(p), Some(s), Some(state)) = (f.get(px), f.get(sv), f.get(st)) else {
            continue;
        };
        if matches!(*s, "FRONTEND" | "BACKEND") {
            continue;
        }
        let r = Routed {
            server: s.to_string(),
            state: state.to_string(),
        };
        match *p {
            "writer" => writer.push(r),
            "reader" => reader.push(r),
            _ => {}
        }
    }
    Ok((writer, reader))
}

/// Judges one proxy's output (or why it could not be read) against the servers' rows.
pub fn evaluate(h: &Host, output: Result<&str, &str>, rows: &[HostStatus]) -> ProxyStatus {
    let mut p = ProxyStatus {
        host: h.name.clone(),
        cluster: h.cluster.clone(),
        ..Default::default()
    };
    let parsed = match output {
        Ok(o) => parse(o),
        Err(e) => Err(format!("unreachable: {e}")),
    };
    match parsed {
        Ok((w, r)) => {
            p.writer = w;
            p.reader = r;
        }
        Err(e) => {
            p.problems.push(e);
            return p;
        }
    }
    let live = |server: &str| rows.iter().find(|r| r.host == server);
    if rows
        .iter()
        .any(|r| r.declared == "member" && p.writer.iter().any(|w| w.server == r.host))
    {
        if rows.iter().any(|r| r.group.is_some()) {
            group_routes(&mut p, rows);
        } else {
            galera_routes(&mut p, rows);
        }
        return p;
    }
    let up: Vec<&Routed> = p.writer.iter().filter(|r| r.up()).collect();
    match up[..] {
        [] => p
            .problems
            .push("no writer: no server is UP in the writer backend".into()),
        [one] => {
            if let Some(r) = live(&one.server)
                && (r.live != "primary" || r.read_only == Some(true))
            {
                p.problems.push(format!(
                    "the writer backend routes to {}, which is not a writable primary",
                    one.server
                ));
            }
        }
        _ => p.problems.push(format!(
            "two writers: {} are UP in the writer backend",
            up.iter()
                .map(|r| r.server.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    for r in p.reader.iter().filter(|r| r.up()) {
        if live(&r.server).is_some_and(|s| s.read_only == Some(false)) {
            p.problems.push(format!(
                "the reader backend routes to {}, which is writable",
                r.server
            ));
        }
    }
    replicas_left_out(&mut p, rows);
    p
}

/// A replica that replicates, read-only, left in maintenance among the readers by a
/// runtime command or a reload (stop 38's CI run saw one): its reads go elsewhere and
/// nothing else said so. Runbooks take a replica out for seconds only (a restart, a
/// promotion); `dbfleet apply` puts it back (the `haproxy routes` task).
fn replicas_left_out(p: &mut ProxyStatus, rows: &[HostStatus]) {
    for r in p.reader.iter().filter(|r| r.state.starts_with("MAINT")) {
        if rows.iter().any(|s| {
            s.host == r.server
                && s.declared == "replica"
                && s.read_only == Some(true)
                && s.io_running.as_deref() == Some("Yes")
                && s.sql_running.as_deref() == Some("Yes")
        }) {
            p.problems.push(format!(
                "{} replicates but is out of the reader backend (MAINT): `dbfleet apply` puts it back",
                r.server
            ));
        }
    }
}

/// A Galera cluster's proxy: every server UP in either backend must be a member synced in
/// the primary component. Several members UP in the writer backend are expected: HAProxy
/// sends writes to the first (the others are `backup` servers, templates/haproxy.cfg.j2).
fn galera_routes(p: &mut ProxyStatus, rows: &[HostStatus]) {
    let synced = |server: &str| {
        rows.iter()
            .find(|r| r.host == server)
            .and_then(|r| r.galera.as_ref())
            .is_some_and(|g| g.synced())
    };
    if !p.writer.iter().any(|r| r.up()) {
        p.problems
            .push("no writer: no member is UP in the writer backend".into());
    }
    for (backend, list) in [("writer", &p.writer), ("reader", &p.reader)] {
        for r in list.iter().filter(|r| r.up()) {
            if !synced(&r.server) {
                p.problems.push(format!(
                    "the {backend} backend routes to {}, which is not a synced member",
                    r.server
                ));
            }
        }
    }
}

/// A replication group's proxy: exactly one server UP in the writer backend, the group's
/// online primary; every server UP in the reader backend an online secondary.
fn group_routes(p: &mut ProxyStatus, rows: &[HostStatus]) {
    let group = |server: &str| {
        rows.iter()
            .find(|r| r.host == server)
            .and_then(|r| r.group.as_ref())
    };
    let up: Vec<&str> = p
        .writer
        .iter()
        .filter(|r| r.up())
        .map(|r| r.server.as_str())
        .collect();
    match up[..] {
        [] => p
            .problems
            .push("no writer: no member is UP in the writer backend".into()),
        [w] => {
            if !group(w).is_some_and(|g| g.online() && g.role == "PRIMARY") {
                p.problems.push(format!(
                    "the writer backend routes to {w}, which is not the group's online primary"
                ));
            }
        }
        _ => p.problems.push(format!(
            "two writers: {} are UP in the writer backend",
            up.join(", ")
        )),
    }
    for r in p.reader.iter().filter(|r| r.up()) {
        if !group(&r.server).is_some_and(|g| g.online() && g.role == "SECONDARY") {
            p.problems.push(format!(
                "the reader backend routes to {}, which is not an online secondary",
                r.server
            ));
        }
    }
}

/// Reads every proxy of `proxies` that runs HAProxy, `forks` at a time.
pub async fn gather(
    inv: &Inventory,
    proxies: &[&Host],
    rows: &[HostStatus],
    forks: usize,
    timeout: std::time::Duration,
) -> Vec<ProxyStatus> {
    super::run_each(
        inv,
        proxies,
        forks,
        timeout,
        SCRIPT,
        "HAProxy's admin socket",
    )
    .await
    .iter()
    .zip(proxies)
    .map(|(res, h)| evaluate(h, res.as_deref().map_err(|e| e.as_str()), rows))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
        writer,FRONTEND,,,0,1,4096,12,0,0,0,0,0,,,,,OPEN,\n\
        writer,db1,0,0,0,1,,12,0,0,,0,,0,0,0,0,UP,1\n\
        writer,db2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1\n\
        writer,BACKEND,0,0,0,1,410,12,0,0,0,0,,0,0,0,0,UP,1\n\
        reader,db2,0,0,0,1,,5,0,0,,0,,0,0,0,0,UP,1\n\
        reader,db3,0,0,0,1,,5,0,0,,0,,0,0,0,0,DOWN 1/2,1\n";

    #[test]
    fn show_stat_is_read_by_its_header() {
        let (w, r) = parse(STAT).unwrap();
        assert_eq!(
            w.iter()
                .map(|r| (r.server.as_str(), r.up()))
                .collect::<Vec<_>>(),
            [("db1", true), ("db2", false)]
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].state, "DOWN 1/2");
        assert!(parse("no stats here").is_err());
    }

    fn replica(host: &str, running: &str) -> HostStatus {
        HostStatus {
            host: host.into(),
            declared: "replica".into(),
            live: "replica".into(),
            read_only: Some(true),
            io_running: Some(running.into()),
            sql_running: Some(running.into()),
            ..Default::default()
        }
    }

    /// Stop 38's CI run: db2 replicated, read-only, and was in MAINT among the readers of
    /// both proxies; `status` called them ok.
    #[test]
    fn a_replicating_replica_out_of_the_readers_is_a_problem_a_stopped_one_is_not() {
        let primary = HostStatus {
            host: "db1".into(),
            declared: "primary".into(),
            live: "primary".into(),
            read_only: Some(false),
            ..Default::default()
        };
        let stat = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
            writer,db1,0,0,0,1,,12,0,0,,0,,0,0,0,0,UP,1\n\
            writer,db2,0,0,0,1,,12,0,0,,0,,0,0,0,0,DOWN,1\n\
            reader,db2,0,0,0,1,,5,0,0,,0,,0,0,0,0,MAINT,1\n\
            reader,db3,0,0,0,1,,5,0,0,,0,,0,0,0,0,UP,1\n";
        let (writer, reader) = parse(stat).expect("show stat");
        let routes = ProxyStatus {
            writer,
            reader,
            ..Default::default()
        };
        let rows = [
            primary.clone(),
            replica("db2", "Yes"),
            replica("db3", "Yes"),
        ];
        let mut p = routes.clone();
        replicas_left_out(&mut p, &rows);
        assert_eq!(
            p.problems,
            [
                "db2 replicates but is out of the reader backend (MAINT): `dbfleet apply` puts it back"
            ]
        );
        // A replica that does not replicate (a fenced old primary before its rejoin, a
        // restart under way) stays out: the check would keep it DOWN anyway.
        let rows = [primary, replica("db2", "No"), replica("db3", "Yes")];
        let mut p = routes;
        replicas_left_out(&mut p, &rows);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
    }

    fn member(host: &str, state: &str, role: &str, online: u32) -> HostStatus {
        HostStatus {
            host: host.into(),
            declared: "member".into(),
            group: Some(crate::status::GroupStatus {
                state: state.into(),
                role: role.into(),
                online,
                members: 3,
                primary: String::new(),
            }),
            ..Default::default()
        }
    }

    fn routed(list: &[(&str, &str)]) -> Vec<Routed> {
        list.iter()
            .map(|(s, st)| Routed {
                server: s.to_string(),
                state: st.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_group_proxy_routes_writes_to_the_online_primary_only() {
        let rows = [
            member("db1", "ONLINE", "PRIMARY", 3),
            member("db2", "ONLINE", "SECONDARY", 3),
            member("db3", "RECOVERING", "SECONDARY", 3),
        ];
        let mut p = ProxyStatus {
            writer: routed(&[("db1", "UP"), ("db2", "DOWN"), ("db3", "DOWN")]),
            reader: routed(&[("db1", "DOWN"), ("db2", "UP"), ("db3", "DOWN")]),
            ..Default::default()
        };
        group_routes(&mut p, &rows);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        // Two writers, a secondary among them; a recovering member read from.
        let mut p = ProxyStatus {
            writer: routed(&[("db1", "UP"), ("db2", "UP")]),
            reader: routed(&[("db3", "UP")]),
            ..Default::default()
        };
        group_routes(&mut p, &rows);
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert!(p.problems[0].starts_with("two writers: db1, db2"));
        assert!(p.problems[1].contains("db3, which is not an online secondary"));
        // The primary of a minority (1 of 3 reached) is not a writer to route to.
        let minority = [member("db1", "ONLINE", "PRIMARY", 1)];
        let mut p = ProxyStatus {
            writer: routed(&[("db1", "UP")]),
            ..Default::default()
        };
        group_routes(&mut p, &minority);
        assert!(p.problems[0].contains("not the group's online primary"));
    }
}
