//! What the engine reports while it works. The engine never prints: it sends [`Event`]s to
//! an [`EventSink`], and the reporter (`crate::report`) decides how they look. Every text
//! in an event has passed the secrets redactor.

use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Event {
    /// Connecting to and probing `hosts` hosts started.
    ProbeStarted { hosts: usize },
    /// One host's facts are in (one round trip after the connection).
    Probed { host: String, elapsed: Duration },
    /// A host could not be reached or probed.
    Unreachable { host: String, error: String },
    /// Applying `changes` changes started.
    ApplyStarted { changes: usize },
    TaskStarted {
        host: String,
        task: String,
        summary: String,
    },
    TaskFinished {
        host: String,
        task: String,
        outcome: Outcome,
        elapsed: Duration,
    },
    /// One step of a runbook (switchover, failover, rejoin) on `host`, done.
    Step { host: String, text: String },
    /// A long step running on `host` (a detached run, `crate::runbooks::detached`): bytes
    /// done so far, the expected total when known, the smoothed rate (bytes per second)
    /// and the seconds since it started on the host.
    Progress {
        host: String,
        what: String,
        done_bytes: u64,
        total_bytes: Option<u64>,
        bytes_per_s: u64,
        elapsed_s: u64,
    },
    /// A new decision of the failover monitor (`crate::runbooks::monitor`) on `cluster`.
    Monitor { cluster: String, text: String },
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Changed,
    Failed(String),
    /// Not run: a task it depends on failed.
    Skipped(String),
}

/// Receives events; implementations must be cheap and never block for long.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Drops every event (tests, `--quiet` JSON runs).
pub struct Silent;
impl EventSink for Silent {
    fn emit(&self, _: Event) {}
}
