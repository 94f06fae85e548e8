//! The replicated state machine: lin-kv semantics and its snapshot encoding.
//!
//! Owns: the key-value map, the command encoding stored in log entries (JSON, so the inspector can
//! show it), the result of applying a command, and the snapshot encoding of the whole map.
//! Must never: touch a file, a clock or the network; apply is a pure function of (state, command);
//! panic on bytes it is given (a bad command or snapshot is an error value, not a crash).
//!
//! Keys and values are any JSON value. Keys are stored under their canonical JSON text
//! (`serde_json` without `preserve_order` sorts object members), so `{"a":1,"b":2}` and
//! `{"b":2,"a":1}` are the same key, and `1` and `"1"` are different keys, as in Maelstrom.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A lin-kv command as stored in a log entry's `data` (JSON bytes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    Write { key: Value, value: Value },
    Cas { key: Value, from: Value, to: Value },
}

impl Command {
    /// The JSON bytes stored in a log entry.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing a derived enum of `Value`s into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the bytes of a log entry; the error names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Command, String> {
        serde_json::from_slice(bytes).map_err(|e| {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
            format!("not a lin-kv command ({e}): {shown:?}")
        })
    }

    pub fn key(&self) -> &Value {
        match self {
            Command::Write { key, .. } | Command::Cas { key, .. } => key,
        }
    }
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

impl Outcome {
    /// The Maelstrom error code of a definite failure, or None for success.
    pub fn error_code(&self) -> Option<u64> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::KeyMissing => Some(crate::maelstrom::code::KEY_DOES_NOT_EXIST),
            Outcome::CasMismatch(_) => Some(crate::maelstrom::code::PRECONDITION_FAILED),
        }
    }
}

/// Version tag of the snapshot encoding.
const SNAPSHOT_FORMAT: u64 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotImage {
    format: u64,
    /// `[key, value]` pairs in the order of the key's canonical JSON text.
    pairs: Vec<(Value, Value)>,
}

/// The lin-kv map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvStore {
    /// Canonical key text -> (key, value).
    map: BTreeMap<String, (Value, Value)>,
}

fn canonical(key: &Value) -> String {
    // `Value`'s Display is its compact JSON text with sorted object members.
    key.to_string()
}

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Applies a committed command.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Write { key, value } => {
                self.map
                    .insert(canonical(key), (key.clone(), value.clone()));
                Outcome::Ok(Value::Null)
            }
            Command::Cas { key, from, to } => match self.map.get_mut(&canonical(key)) {
                None => Outcome::KeyMissing,
                Some((_, current)) if current == from => {
                    *current = to.clone();
                    Outcome::Ok(Value::Null)
                }
                Some((_, current)) => Outcome::CasMismatch(current.clone()),
            },
        }
    }

    /// Every `(key, value)` in the order of the key's canonical JSON text (read-only).
    pub fn pairs(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.map.values().map(|(k, v)| (k, v))
    }

    /// Reads a key (the caller makes the read linearizable through ReadIndex).
    pub fn read(&self, key: &Value) -> Outcome {
        match self.map.get(&canonical(key)) {
            Some((_, v)) => Outcome::Ok(v.clone()),
            None => Outcome::KeyMissing,
        }
    }

    /// The whole map as deterministic bytes: equal maps give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let image = SnapshotImage {
            format: SNAPSHOT_FORMAT,
            pairs: self.map.values().cloned().collect(),
        };
        serde_json::to_vec(&image).unwrap_or_default()
    }

    /// Replaces the map with the one encoded in `bytes`. On error the map is left unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let image: SnapshotImage = serde_json::from_slice(bytes)
            .map_err(|e| format!("kv snapshot is not valid ({} bytes): {e}", bytes.len()))?;
        if image.format != SNAPSHOT_FORMAT {
            return Err(format!(
                "kv snapshot has format {}, this build reads format {SNAPSHOT_FORMAT}",
                image.format
            ));
        }
        let mut map = BTreeMap::new();
        for (key, value) in image.pairs {
            let k = canonical(&key);
            if map.insert(k.clone(), (key, value)).is_some() {
                return Err(format!("kv snapshot holds key {k} twice"));
            }
        }
        self.map = map;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_read_cas_and_errors() {
        let mut kv = KvStore::new();
        assert_eq!(kv.read(&json!(1)), Outcome::KeyMissing);
        let cas = Command::Cas {
            key: json!(1),
            from: json!(0),
            to: json!(2),
        };
        assert_eq!(kv.apply(&cas), Outcome::KeyMissing);
        assert_eq!(Outcome::KeyMissing.error_code(), Some(20));
        let w = Command::Write {
            key: json!(1),
            value: json!(0),
        };
        assert_eq!(kv.apply(&w), Outcome::Ok(Value::Null));
        assert_eq!(kv.read(&json!(1)), Outcome::Ok(json!(0)));
        assert_eq!(kv.apply(&cas), Outcome::Ok(Value::Null));
        assert_eq!(kv.read(&json!(1)), Outcome::Ok(json!(2)));
        let r = kv.apply(&cas);
        assert_eq!(r, Outcome::CasMismatch(json!(2)));
        assert_eq!(r.error_code(), Some(22));
        // `1` and `"1"` are different keys.
        assert_eq!(kv.read(&json!("1")), Outcome::KeyMissing);
    }

    #[test]
    fn any_json_key_and_value() {
        let mut kv = KvStore::new();
        let key = json!({"b": [1, 2], "a": null});
        kv.apply(&Command::Write {
            key: key.clone(),
            value: json!({"x": [true, 1.5, "s"]}),
        });
        // Same object with members in another order is the same key.
        let same: Value = serde_json::from_str(r#"{"a":null,"b":[1,2]}"#).unwrap();
        assert_eq!(kv.read(&same), Outcome::Ok(json!({"x": [true, 1.5, "s"]})));
    }

    #[test]
    fn command_json_form_round_trips() {
        let c = Command::Cas {
            key: json!("k"),
            from: json!(1),
            to: json!([2]),
        };
        let bytes = c.encode();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text, r#"{"op":"cas","key":"k","from":1,"to":[2]}"#);
        assert_eq!(Command::decode(&bytes).unwrap(), c);
        let err = Command::decode(b"{\"op\":\"delete\"}").unwrap_err();
        assert!(err.contains("not a lin-kv command"), "{err}");
        assert!(Command::decode(&[0xff, 0x00]).is_err());
    }

    #[test]
    fn snapshot_is_deterministic_and_restores() {
        let mut a = KvStore::new();
        let mut b = KvStore::new();
        for i in 0..20 {
            a.apply(&Command::Write {
                key: json!(i),
                value: json!(i * 10),
            });
        }
        for i in (0..20).rev() {
            b.apply(&Command::Write {
                key: json!(i),
                value: json!(i * 10),
            });
        }
        assert_eq!(
            a.snapshot(),
            b.snapshot(),
            "insertion order must not matter"
        );
        let mut c = KvStore::new();
        c.restore(&a.snapshot()).unwrap();
        assert_eq!(c, a);
        assert_eq!(c.snapshot(), a.snapshot());
    }

    #[test]
    fn bad_snapshot_bytes_are_errors_and_leave_state() {
        let mut kv = KvStore::new();
        kv.apply(&Command::Write {
            key: json!(1),
            value: json!(1),
        });
        let before = kv.clone();
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"{\"format\":2,\"pairs\":[]}",
            b"{\"format\":1,\"pairs\":[[1,1],[1,2]]}",
            b"{\"format\":1,\"pairs\":[[1]]}",
            b"[1,2,3]",
        ] {
            assert!(kv.restore(bad).is_err(), "{bad:?} must be rejected");
            assert_eq!(kv, before);
        }
        // Truncating a real snapshot at every length never panics.
        let full = kv.snapshot();
        for n in 0..full.len() {
            assert!(kv.restore(&full[..n]).is_err());
        }
    }
}
