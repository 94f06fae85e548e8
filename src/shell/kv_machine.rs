//! The lin-kv map (`crate::kv`) as the shell's state machine, for the node and the simulator.
//!
//! Owns: the mapping of log entry data to lin-kv commands and of reads to keys.
//! Must never: hold lin-kv rules of its own (those live in `crate::kv` alone).

use serde_json::Value;

use super::StateMachine;
use crate::kv::{Command, KvStore, Outcome};

impl StateMachine for KvStore {
    /// A read names its key.
    type Query = Value;
    type Outcome = Outcome;

    fn apply(&mut self, data: &[u8]) -> Result<Outcome, String> {
        let command = Command::decode(data)?;
        Ok(KvStore::apply(self, &command))
    }

    fn query(&self, key: &Value) -> Outcome {
        self.read(key)
    }

    fn snapshot(&self) -> Vec<u8> {
        KvStore::snapshot(self)
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        KvStore::restore(self, data)
    }
}
