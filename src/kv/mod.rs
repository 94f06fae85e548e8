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

/// The lin-kv state machine (contract pinned by the node driver; the core work fills it in).
#[derive(Clone, Debug, Default)]
pub struct Kv {
    _private: (),
}

#[allow(unused_variables)]
impl Kv {
    /// Applies one committed command.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        todo!("kv state machine")
    }
    /// A read: `Ok(value)` or `KeyMissing`.
    pub fn read(&self, key: &Value) -> Outcome {
        todo!()
    }
    /// The snapshot encoding of the whole map.
    pub fn snapshot(&self) -> Vec<u8> {
        todo!()
    }
    /// Rebuilds the map from [`Kv::snapshot`] bytes; names what is wrong on bad input.
    pub fn restore(data: &[u8]) -> Result<Kv, String> {
        todo!()
    }
}
