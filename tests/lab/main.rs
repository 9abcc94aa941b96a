//! End-to-end tests on the lab: six real Debian bookworm hosts (Docker containers with sshd,
//! no systemd) started by `lab/lab.sh up`. These tests never skip: without Docker or
//! debootstrap they fail, saying so.
//!
//! The tests share one lab and take turns (a mutex); each starts from a converged fleet
//! (`converge`) except the fresh-lab test, which recreates the hosts when they are not new.
//! Checks read the hosts through `docker exec`, not through dbfleet.
//!
//! One test binary, one file per area; `support.rs` holds what they share.

mod backup;
mod changes;
mod ha;
mod monitor;
mod prometheus;
mod provision;
mod replication;
mod security;
mod servers;
mod support;
