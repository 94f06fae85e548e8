//! The simulator's view of the replicated state machine: apply a committed entry, serve a read,
//! take and restore a snapshot.
//!
//! Owns: the glue between the simulator and `crate::kv` (one place to adapt if its API moves).
//! Must never: hold state that is not a pure function of the entries applied.

use serde_json::Value;
use std::collections::BTreeMap;

use crate::kv::{Command, Outcome};

/// The lin-kv map of one simulated node.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    map: BTreeMap<String, Value>,
}

fn key_of(k: &Value) -> String {
    k.to_string()
}

impl Machine {
    /// Applies a committed entry's data; `None` when the data is not a command.
    pub fn apply(&mut self, data: &[u8]) -> Option<Outcome> {
        let cmd: Command = serde_json::from_slice(data).ok()?;
        Some(match cmd {
            Command::Write { key, value } => {
                self.map.insert(key_of(&key), value);
                Outcome::Ok(Value::Null)
            }
            Command::Cas { key, from, to } => match self.map.get_mut(&key_of(&key)) {
                None => Outcome::KeyMissing,
                Some(cur) if *cur == from => {
                    *cur = to;
                    Outcome::Ok(Value::Null)
                }
                Some(cur) => Outcome::CasMismatch(cur.clone()),
            },
        })
    }

    pub fn read(&self, key: &Value) -> Outcome {
        match self.map.get(&key_of(key)) {
            Some(v) => Outcome::Ok(v.clone()),
            None => Outcome::KeyMissing,
        }
    }

    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.map).unwrap_or_default()
    }

    pub fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.map = if data.is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_slice(data).map_err(|e| format!("bad snapshot data: {e}"))?
        };
        Ok(())
    }
}

pub fn encode(cmd: &Command) -> Vec<u8> {
    serde_json::to_vec(cmd).unwrap_or_default()
}
