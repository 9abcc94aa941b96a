//! How dbfleet reaches hosts: one multiplexed SSH connection per host (`ssh.rs`), over which
//! every script runs as `sh -s` with the script on stdin. Nothing but `sh -s` ever appears
//! on a remote command line, so file contents and secrets never show in `ps`.

pub mod ssh;

pub use ssh::SshHost;

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
