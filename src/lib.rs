//! raftkv: a persistent Raft key-value node for Maelstrom's lin-kv workload, and the tools that
//! prove it correct: a linearizability checker, a deterministic simulator, a test bench with
//! partition and kill faults, and an offline inspector. See README.md and each module's docs.

pub mod bench;
pub mod check;
pub mod inspect;
pub mod kv;
pub mod logs;
pub mod maelstrom;
pub mod model;
pub mod node;
pub mod raft;
pub mod rng;
pub mod shell;
pub mod sim;
#[cfg(test)]
mod test_fixtures;
