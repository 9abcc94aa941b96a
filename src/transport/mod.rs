//! How dbfleet reaches hosts: one multiplexed SSH connection per host (`ssh.rs`), over which
//! every script runs as `sh -s` with the script on stdin. Nothing but `sh -s` ever appears
//! on a remote command line, so file contents and secrets never show in `ps`.

#[cfg(test)]
pub mod fake;
pub mod ssh;

use futures::future::BoxFuture;

pub use ssh::SshHost;

/// dbfleet's folder on every host it manages (pending handler markers, the run lock that
/// scripts and held SQL sessions take: `crate::tasks::locked`).
pub const STATE_DIR: &str = "/var/lib/dbfleet";

/// A host a runbook runs scripts on: an [`SshHost`], or in unit tests a scripted fake
/// (`fake::Scripted`), so the runbooks' decisions are tested without Docker.
pub trait Transport: Send + Sync {
    /// The host's inventory name.
    fn name(&self) -> &str;
    /// Runs `script` with `sh -s`, the script on stdin.
    ///
    /// Errors: [`TransportError::Run`] when the connection fails (a script exiting
    /// non-zero is an [`Output`] with its code).
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, TransportError>>;
}

impl Transport for SshHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(SshHost::run(self, script))
    }
}

/// What a remote script returned.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Connect(String),
    #[error("running a script: {0}")]
    Run(String),
}
