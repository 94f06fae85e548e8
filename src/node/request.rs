//! Client requests of the lin-kv workload, as the driver sees them.
//!
//! Owns: validating a request body into an [`Op`] and turning an [`Outcome`] into a reply body.
//! Must never: touch the core, storage or the network.

use crate::kv::{Command, Outcome};
use crate::maelstrom::{code, error_body, reply_body};
use serde_json::{Map, Value};

/// Deepest nesting of a key or value the node accepts. The kv snapshot nests a value two levels
/// deeper than the request did, and serde_json refuses to read past 128 levels: a deeper value
/// would be applied, then make every later snapshot restore (every restart) fail.
pub const MAX_DEPTH: usize = 100;

/// Largest key or value (as JSON text) the node accepts. An entry must fit, with its neighbours,
/// in one peer message (64 MiB); a bigger one would be appended and never replicated.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Nesting depth of a JSON value (a scalar is 0), without recursion.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Refuses a key or value the node could apply but not snapshot, restore or replicate.
fn check_bounds(kind: &str, name: &str, v: &Value) -> Result<(), String> {
    let d = depth(v);
    if d > MAX_DEPTH {
        return Err(format!(
            "`{kind}` request's `{name}` is nested {d} levels deep; at most {MAX_DEPTH} are accepted"
        ));
    }
    let len = serde_json::to_string(v)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if len > MAX_VALUE_BYTES {
        return Err(format!(
            "`{kind}` request's `{name}` is {len} bytes of JSON; at most {MAX_VALUE_BYTES} are accepted"
        ));
    }
    Ok(())
}

/// A validated lin-kv request.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Read { key: Value },
    Write { key: Value, value: Value },
    Cas { key: Value, from: Value, to: Value },
}

impl Op {
    /// Validates the body of a `read`, `write` or `cas` request. Fields may hold any JSON value,
    /// `null` included, but must be present. The error names the missing field.
    pub fn parse(kind: &str, body: &Map<String, Value>) -> Result<Op, String> {
        let field = |name: &str| -> Result<Value, String> {
            let v = body
                .get(name)
                .ok_or_else(|| format!("`{kind}` request has no `{name}` field"))?;
            check_bounds(kind, name, v)?;
            Ok(v.clone())
        };
        match kind {
            "read" => Ok(Op::Read { key: field("key")? }),
            "write" => Ok(Op::Write {
                key: field("key")?,
                value: field("value")?,
            }),
            "cas" => Ok(Op::Cas {
                key: field("key")?,
                from: field("from")?,
                to: field("to")?,
            }),
            other => Err(format!("`{other}` is not a lin-kv request")),
        }
    }

    /// The log command for a write or cas; `None` for a read.
    pub fn command(&self) -> Option<Command> {
        match self {
            Op::Read { .. } => None,
            Op::Write { key, value } => Some(Command::Write {
                key: key.clone(),
                value: value.clone(),
            }),
            Op::Cas { key, from, to } => Some(Command::Cas {
                key: key.clone(),
                from: from.clone(),
                to: to.clone(),
            }),
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read { .. })
    }

    /// The type of a successful reply.
    pub fn ok_type(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read_ok",
            Op::Write { .. } => "write_ok",
            Op::Cas { .. } => "cas_ok",
        }
    }

    /// The reply body for `outcome`, answering `in_reply_to`.
    pub fn reply(&self, in_reply_to: u64, outcome: &Outcome) -> Map<String, Value> {
        let id = Some(in_reply_to);
        match (self, outcome) {
            (Op::Read { .. }, Outcome::Ok(v)) => {
                let mut b = reply_body("read_ok", id);
                b.insert("value".into(), v.clone());
                b
            }
            (Op::Write { .. }, Outcome::Ok(_)) => reply_body("write_ok", id),
            (Op::Cas { .. }, Outcome::Ok(_)) => reply_body("cas_ok", id),
            (_, Outcome::KeyMissing) => {
                error_body(id, code::KEY_DOES_NOT_EXIST, "key does not exist")
            }
            (Op::Cas { from, .. }, Outcome::CasMismatch(found)) => error_body(
                id,
                code::PRECONDITION_FAILED,
                &format!("cas expected {from}, found {found}"),
            ),
            (_, Outcome::CasMismatch(found)) => error_body(
                id,
                code::PRECONDITION_FAILED,
                &format!("precondition failed, found {found}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn parse_accepts_any_json_and_names_missing_fields() {
        let op = Op::parse(
            "cas",
            &body(json!({"key": [1, "a"], "from": null, "to": {"x": 1}})),
        )
        .expect("valid cas");
        assert_eq!(
            op,
            Op::Cas {
                key: json!([1, "a"]),
                from: Value::Null,
                to: json!({"x": 1})
            }
        );
        let err = Op::parse("write", &body(json!({"key": 1}))).expect_err("no value");
        assert!(err.contains("`value`"), "{err}");
        let err = Op::parse("read", &body(json!({}))).expect_err("no key");
        assert!(err.contains("`key`"), "{err}");
        assert!(Op::parse("delete", &body(json!({"key": 1}))).is_err());
    }

    #[test]
    fn replies_use_maelstrom_codes() {
        let read = Op::Read { key: json!(1) };
        assert_eq!(
            Value::Object(read.reply(5, &Outcome::Ok(json!(3)))),
            json!({"type": "read_ok", "in_reply_to": 5, "value": 3})
        );
        let r = read.reply(5, &Outcome::KeyMissing);
        assert_eq!(r.get("code"), Some(&json!(20)));
        let cas = Op::Cas {
            key: json!(1),
            from: json!(2),
            to: json!(3),
        };
        let r = cas.reply(6, &Outcome::CasMismatch(json!(4)));
        assert_eq!(r.get("code"), Some(&json!(22)));
        assert_eq!(r.get("in_reply_to"), Some(&json!(6)));
        assert_eq!(
            Value::Object(cas.reply(6, &Outcome::Ok(Value::Null))),
            json!({"type": "cas_ok", "in_reply_to": 6})
        );
        assert_eq!(
            cas.command(),
            Some(Command::Cas {
                key: json!(1),
                from: json!(2),
                to: json!(3)
            })
        );
        assert_eq!(read.command(), None);
    }

    #[test]
    fn values_too_deep_or_too_big_to_snapshot_or_replicate_are_refused() {
        let nest = |d: usize| {
            let mut v = json!(1);
            for _ in 0..d {
                v = json!([v]);
            }
            v
        };
        let body = |v: Value| {
            json!({"type": "write", "key": 1, "value": v})
                .as_object()
                .cloned()
                .expect("object")
        };
        assert!(Op::parse("write", &body(nest(MAX_DEPTH))).is_ok());
        let err = Op::parse("write", &body(nest(MAX_DEPTH + 1))).expect_err("too deep");
        assert!(err.contains("`value`") && err.contains("nested"), "{err}");
        let big = Value::String("x".repeat(MAX_VALUE_BYTES));
        let err = Op::parse("write", &body(big)).expect_err("too big");
        assert!(err.contains("bytes"), "{err}");
        // The bound is what keeps a snapshot of the map restorable.
        let mut kv = crate::kv::KvStore::default();
        let cmd = Op::parse("write", &body(nest(MAX_DEPTH)))
            .expect("accepted")
            .command()
            .expect("a write");
        kv.apply(&cmd);
        let mut back = crate::kv::KvStore::default();
        back.restore(&kv.snapshot())
            .expect("a snapshot of accepted values restores");
    }
}
