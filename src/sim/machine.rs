//! The simulator's view of the replicated state machine: apply a committed entry, serve a read,
//! take and restore a snapshot.
//!
//! Owns: the glue between the simulator and `crate::kv` (one place to adapt if its API moves).
//! Must never: hold state that is not a pure function of the entries applied; hold its own copy
//! of the lin-kv rules (those live in `crate::kv` alone).

use serde_json::Value;

use crate::kv::{Command, KvStore, Outcome};

/// The lin-kv map of one simulated node.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    kv: KvStore,
}

impl Machine {
    /// Applies a committed entry's data; `None` when the data is not a command.
    pub fn apply(&mut self, data: &[u8]) -> Option<Outcome> {
        let cmd = Command::decode(data).ok()?;
        Some(self.kv.apply(&cmd))
    }

    pub fn read(&self, key: &Value) -> Outcome {
        self.kv.read(key)
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.kv.snapshot()
    }

    /// Restores from a snapshot's data; empty data is the empty map.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            self.kv = KvStore::new();
            return Ok(());
        }
        self.kv.restore(data)
    }
}

pub fn encode(cmd: &Command) -> Vec<u8> {
    cmd.encode()
}
