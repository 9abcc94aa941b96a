//! dbfleet: one YAML inventory of a MariaDB/MySQL fleet becomes a graph of idempotent tasks,
//! planned against the hosts' real state and applied over SSH.
//!
//! Where things live: `inventory/` (schema, load, validate), `playbook/` (role task lists
//! as data), `tasks/` (one file per task kind, and resolution into per-host tasks),
//! `graph.rs` (ordering), `facts.rs` (one round trip per host), `engine.rs` (load → probe →
//! plan), `plan/` (the plan value and plan files), `apply.rs` (the executor),
//! `transport/` (SSH), `report/` (all terminal output), `commands/` (one module per verb),
//! `cli.rs` (flags, resolved into the commands' options).

pub mod appconfig;
pub mod apply;
pub mod backup;
pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod engine;
pub mod error;
pub mod escape;
pub mod events;
pub mod facts;
pub mod files;
pub mod graph;
pub mod import;
pub mod inventory;
pub mod plan;
pub mod playbook;
pub mod report;
pub mod runbooks;
pub mod secrets;
pub mod selection;
pub mod sql;
pub mod status;
pub mod tasks;
pub mod tls;
pub mod transport;
