//! Deterministic cluster simulator: the real consensus core (`crate::raft`), shell
//! (`crate::shell`, the node's own) and state machine (`crate::kv`) of every node in one
//! process, on virtual time, with one seeded random source, so a seed replays exactly.
//!
//! Owns: the simulated network (delay, loss, duplication, reordering, symmetric and one-way
//! partitions), simulated storage with a durable and a volatile part (crash, torn tail, slow
//! disks), crash and restart, leader-targeted faults, the client workload and its history, the
//! Raft invariants checked after every step (and the rejoin rules checked against ghost
//! knowledge, `ghost.rs`), the `raftkv sim` command and the `partition_test` run.
//! Must never: read the wall clock (except to time a run for the report) or any randomness other
//! than the run's seed; patch a core's mistake instead of reporting it.

mod cli;
pub mod cluster;
pub mod disk;
pub mod faults;
mod ghost;
pub mod partition;
pub mod run;
pub mod verdict;

#[cfg(test)]
mod tests;

pub use cli::{cli, SimArgs};
pub use cluster::{Failure, Op, OpResult, Sim};
pub use faults::{Faults, SimConfig};
pub use partition::{partition_test, PartitionOutcome, PartitionSpec};
pub use run::{run, RunReport};
