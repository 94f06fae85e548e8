//! The replicated state machine: lin-kv semantics and its snapshot encoding.
//!
//! Owns: the key-value map, the command encoding stored in log entries (JSON, so the inspector can
//! show it), the result of applying a command, and the snapshot encoding of the whole map.
//! Must never: touch a file, a clock or the network; apply is a pure function of (state, command).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A lin-kv command as stored in a log entry's `data` (JSON bytes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    Write { key: Value, value: Value },
    Cas { key: Value, from: Value, to: Value },
}

/// Outcome of a command or a read, in Maelstrom terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// `read_ok` with the value / `write_ok` / `cas_ok` (value is Null for those).
    Ok(Value),
    /// Error 20: key does not exist.
    KeyMissing,
    /// Error 22: cas precondition failed; carries the current value.
    CasMismatch(Value),
}

/// The lin-kv map (API the node driver relies on; the core work fills it in).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvStore {
    _private: (),
}

#[allow(unused_variables)]
impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }
    /// Applies a committed command.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        todo!("kv state machine")
    }
    /// Reads a key (the caller makes the read linearizable through ReadIndex).
    pub fn read(&self, key: &Value) -> Outcome {
        todo!()
    }
    /// The whole map as deterministic bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        todo!()
    }
    /// Replaces the map with the one encoded in `bytes`. On error the map is left unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        todo!()
    }
}
