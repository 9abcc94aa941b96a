//! The commands: one module per verb, each driving the engine and the runbooks for one
//! request and handing results to `crate::report`. A command takes resolved options
//! ([`Options`](crate::engine::Options), the output [`Style`](crate::report::Style) and
//! its own plain arguments): the command line's types stop in `crate::cli`, which parses,
//! resolves and calls these. Nothing below this layer knows the command line exists
//! (README, "Architecture"; checked by `tests/architecture.rs`).

pub mod app_config;
pub mod apply;
pub mod backup;
pub mod failover;
pub mod graph;
pub mod plan;
pub mod rebuild;
pub mod restore;
pub mod runbook;
pub mod status;
pub mod switchover;
pub mod validate;
