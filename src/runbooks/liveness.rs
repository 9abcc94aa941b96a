//! Whether a database server answers, from each place a failover asks (issue 29).
//!
//! A port that accepts a connection is not a server that answers: the kernel of a frozen
//! or hung server (a stopped or swapping process, mysqld stuck on a full or hung disk, an
//! InnoDB semaphore wait, a paused VM whose network stack still runs) completes TCP
//! handshakes on its listening port and keeps its replicas' connections open. Like
//! MaxScale's and orchestrator's monitors, liveness here is the server's own answer within
//! a bound:
//! - **from here**, over SSH on the server's own host: a query answered within
//!   [`ANSWER_S`] seconds; else its process runs and says nothing (hung) or none runs (down);
//! - **from a replica**: its IO thread received an event or a heartbeat within
//!   [`WINDOW_S`] seconds (two samples of [`Dialect::received_marker`]; the source sends a
//!   heartbeat every [`crate::sql::HEARTBEAT_PERIOD_S`] when it has nothing else to send);
//!   a running IO thread alone proves nothing, it stays "Yes" for `slave_net_timeout`;
//! - **from a proxy**: a MySQL handshake and `SELECT 1` with the proxy checker's account
//!   (PyMySQL, which the checker daemon uses: `templates/proxy-checker.py.j2`) within
//!   [`ANSWER_S`] seconds.
//!
//! The TCP port is still probed from the replicas and proxies: open, with no answer from
//! anyone, is the signature of a hung server, which `crate::runbooks::failover` fails over
//! only under lossless semi-sync.

use crate::escape::q;
use crate::sql::Dialect;

/// Seconds a server has to answer a query from here or from a proxy.
pub const ANSWER_S: u64 = 1;

/// Seconds between a replica's two samples of what its IO thread received: four
/// heartbeat periods, so an idle source that answers sends at least three heartbeats in it.
pub const WINDOW_S: f64 = 1.0;

/// What the server's own host says of it, over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Here {
    /// No SSH: the host is down, frozen or cut off from here (the message says which, if
    /// the transport could tell).
    NoSsh(String),
    /// SSH answers and no server process runs.
    Down,
    /// SSH answers, the server process runs and did not answer within [`ANSWER_S`].
    Hung,
    /// The server answered.
    Alive,
}

impl Here {
    /// How a plan shows it.
    pub fn describe(&self) -> String {
        match self {
            Here::NoSsh(_) => "no SSH".into(),
            Here::Down => "SSH answers, no server runs".into(),
            Here::Hung => format!(
                "SSH answers, the server runs and does not answer within {ANSWER_S} s (hung)"
            ),
            Here::Alive => "the server answers".into(),
        }
    }
}

/// What one replica sees of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub name: String,
    /// Its IO thread as the server reports it ("Yes", "No", "Connecting"), or "not
    /// replicating".
    pub io: String,
    /// Its IO thread received an event or a heartbeat within [`WINDOW_S`] seconds.
    pub received: bool,
    /// The source's database port accepts a TCP connection from it.
    pub port_open: bool,
    /// The window's last sample of what its IO thread received (heartbeats, the source's
    /// log position): the next round's first ([`replica_probe`]); empty when unread.
    pub marker: String,
}

impl ReplicaView {
    /// The source answers this replica: its IO thread runs and received something within
    /// the window.
    pub fn answered(&self) -> bool {
        self.io == "Yes" && self.received
    }
}

/// What one proxy sees of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyView {
    pub name: String,
    /// The server answered a handshake and `SELECT 1` within [`ANSWER_S`] seconds; None
    /// when the proxy could not tell (no connection to the proxy, no checker account).
    pub answers: Option<bool>,
    /// The server's database port accepts a TCP connection from it.
    pub port_open: bool,
}

impl ProxyView {
    /// The application may reach the server through this proxy: it answered, or the proxy
    /// could not tell and the port is open (taken as answering: the safe reading).
    pub fn reaches(&self) -> bool {
        self.answers.unwrap_or(self.port_open)
    }
}

/// A shell snippet printing `port=open` or `port=closed`: whether `address:port` accepts a
/// TCP connection within a second, from the host it runs on.
pub fn port_probe(address: &str, port: u64) -> String {
    format!(
        "if timeout 1 bash -c {} 2>/dev/null; then echo port=open; else echo port=closed; fi\n",
        q(&format!("exec 3<>/dev/tcp/{address}/{port}"))
    )
}

/// The script run on the server's own host: prints `server=answers`, `server=hung` or
/// `server=down`.
pub fn here_probe(d: Dialect) -> String {
    format!(
        "if timeout {ANSWER_S} {} -N -B -e \"SELECT 'dbfleet-up'\" 2>/dev/null | grep -q dbfleet-up; then echo server=answers; \
         elif pgrep -x 'mariadbd|mysqld' >/dev/null; then echo server=hung; else echo server=down; fi\n",
        d.client()
    )
}

/// Reads [`here_probe`]'s output; a failed or empty probe is a server that did not answer
/// (hung when nothing says it is down).
pub fn parse_here(out: &str) -> Here {
    match out.lines().find_map(|l| l.strip_prefix("server=")) {
        Some("answers") => Here::Alive,
        Some("down") => Here::Down,
        _ => Here::Hung,
    }
}

/// The script run on a replica: the source's port, the replica's own state
/// (`crate::runbooks::topology::state_probe`, bounded), and whether its IO thread
/// received anything between two samples (`received=yes|no`), the second printed as
/// `marker=…` for the next round.
///
/// `previous`: the last round's second sample and the seconds since it was taken. Without
/// it the samples are [`WINDOW_S`] seconds apart; with it the first sample is that one,
/// and the probe waits only what the window still lacks: a later round's window spans
/// from the last round's sample to now, at least as long and one sampling pause shorter
/// (issue 29: a hung primary's rounds of checks, each about a second faster).
pub fn replica_probe(
    d: Dialect,
    address: &str,
    port: u64,
    previous: Option<(&str, f64)>,
) -> String {
    let marker = d.received_marker();
    let wait = window_left(previous.map(|(_, age)| age));
    let first = match previous {
        Some((m, _)) => q(m),
        None => format!("$({marker})"),
    };
    let pause = if wait > 0.0 {
        format!("sleep {wait:.3}\n")
    } else {
        String::new()
    };
    // The port is probed beside the window, not before it: at a dead host's address the
    // connection attempt takes its whole second (no answer at all), which the window
    // would otherwise wait on top of.
    format!(
        "pp=$(mktemp)\n( {} ) >\"$pp\" &\nm1={first}\ntimeout 2 {}{pause}m2=$({marker})\n\
         wait\ncat \"$pp\"\nrm -f \"$pp\"\n\
         printf 'marker=%s\\n' \"$m2\"\n\
         if [ -n \"$m1\" ] && [ \"$m1\" != \"$m2\" ]; then echo received=yes; else echo received=no; fi\n",
        port_probe(address, port).trim_end(),
        super::topology::state_probe(d),
    )
}

/// Seconds a replica's probe still pauses to complete its window: all of [`WINDOW_S`]
/// without a previous sample, what the window lacks after `age` seconds with one.
pub fn window_left(age: Option<f64>) -> f64 {
    age.map_or(WINDOW_S, |a| (WINDOW_S - a).max(0.0))
}

/// Reads [`replica_probe`]'s output of replica `name`: what it sees of its source, and its
/// own state.
pub fn parse_replica(name: &str, out: &str, d: Dialect) -> (ReplicaView, super::topology::DbState) {
    let s = super::topology::parse_state(out, d);
    let io = if s.replicating() {
        s.status().io_running.clone()
    } else {
        "not replicating".into()
    };
    let view = ReplicaView {
        name: name.to_string(),
        io,
        received: out.lines().any(|l| l == "received=yes"),
        port_open: out.lines().any(|l| l == "port=open"),
        marker: out
            .lines()
            .find_map(|l| l.strip_prefix("marker="))
            .unwrap_or("")
            .to_string(),
    };
    (view, s)
}

/// The script run on a proxy: the server's port, then `server=answers` or `server=silent`
/// from a handshake and `SELECT 1` with the checker's account (nothing when the proxy
/// has no checker). A server error (access denied, too many connections) is an answer:
/// only the client's own errors (2000-2999: cannot connect, lost connection, timeout) and
/// timeouts are silence.
pub fn proxy_probe(address: &str, port: u64) -> String {
    format!(
        "{}timeout 5 python3 - {} {port} <<'DBFLEET_PY' 2>/dev/null || true\n{PROXY_PY}DBFLEET_PY\n",
        port_probe(address, port),
        q(address),
    )
}

const PROXY_PY: &str = r#"import json, sys
import pymysql
c = json.load(open("/etc/haproxy/dbfleet-checker.json"))
try:
    conn = pymysql.connect(host=sys.argv[1], port=int(sys.argv[2]), user=c["user"],
                           password=c["password"], connect_timeout=1, read_timeout=1,
                           write_timeout=1)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
    print("server=answers")
except pymysql.err.MySQLError as e:
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    print("server=answers" if code and not 2000 <= code < 3000 else "server=silent")
except Exception:
    print("server=silent")
"#;

/// Reads [`proxy_probe`]'s output of proxy `name`; `None` output: no connection to it.
pub fn parse_proxy(name: &str, out: Option<&str>) -> ProxyView {
    let out = out.unwrap_or("");
    ProxyView {
        name: name.to_string(),
        answers: out
            .lines()
            .find_map(|l| l.strip_prefix("server="))
            .map(|v| v == "answers"),
        port_open: out.lines().any(|l| l == "port=open"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_or_failed_probe_from_here_reads_as_hung_unless_it_says_down() {
        assert_eq!(parse_here("server=answers\n"), Here::Alive);
        assert_eq!(parse_here("server=down\n"), Here::Down);
        assert_eq!(parse_here("server=hung\n"), Here::Hung);
        assert_eq!(parse_here(""), Here::Hung);
    }

    #[test]
    fn a_replica_counts_as_answered_only_when_its_io_thread_runs_and_received_something() {
        let v = |io: &str, received| ReplicaView {
            name: "db2".into(),
            io: io.into(),
            received,
            port_open: true,
            marker: String::new(),
        };
        assert!(v("Yes", true).answered());
        // A frozen source: the connection stays up ("Yes"), nothing arrives.
        assert!(!v("Yes", false).answered());
        assert!(!v("Connecting", true).answered());
    }

    #[test]
    fn a_proxy_that_cannot_tell_reaches_the_server_when_its_port_is_open() {
        let p = parse_proxy("proxy1", Some("port=open\nserver=silent\n"));
        assert_eq!((p.answers, p.reaches()), (Some(false), false));
        let p = parse_proxy("proxy1", Some("port=open\n"));
        assert_eq!((p.answers, p.reaches()), (None, true));
        let p = parse_proxy("proxy1", None);
        assert!(!p.reaches() && !p.port_open);
    }

    #[test]
    fn probes_quote_the_address_they_are_given() {
        let s = proxy_probe("db1.example'; rm -rf /", 3306);
        assert!(s.contains("'db1.example'\\''; rm -rf /'"), "{s}");
        assert!(
            replica_probe(Dialect::MariaDb, "10.0.0.1", 3306, None)
                .contains("SLAVE_RECEIVED_HEARTBEATS")
        );
        assert!(
            replica_probe(Dialect::MySql84, "10.0.0.1", 3306, None)
                .contains("COUNT_RECEIVED_HEARTBEATS")
        );
        // A later round starts from the last one's sample, quoted, and waits only what the
        // window lacks.
        let later = replica_probe(Dialect::MariaDb, "10.0.0.1", 3306, Some(("a'b", 0.4)));
        assert!(later.contains("m1='a'\\''b'\n"), "{later}");
        assert!(later.contains("sleep 0.600\n"), "{later}");
        let late = replica_probe(Dialect::MariaDb, "10.0.0.1", 3306, Some(("x", 1.5)));
        assert!(!late.contains("sleep"), "{late}");
    }
}
