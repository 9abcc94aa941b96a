//! Runbooks: changes that span several steps and hosts, applied as one change of a plan.
//! Each step runs over the hosts' existing connections; statements and passwords go on
//! stdin. `replication.rs` bootstraps, starts or repoints a replica.

pub mod replication;
