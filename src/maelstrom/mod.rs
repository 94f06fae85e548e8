//! Maelstrom's wire protocol: the message envelope, error codes, and line framing.
//!
//! Owns: parsing one JSON line into an [`Envelope`] and writing one back.
//! Must never: decide anything about Raft or the key-value semantics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;

/// One Maelstrom message. Extra top-level fields on input (Maelstrom adds `id`) are ignored;
/// output has exactly `src`, `dest`, `body`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub src: String,
    pub dest: String,
    pub body: Map<String, Value>,
}

/// Maelstrom error codes used by raftkv.
pub mod code {
    pub const TIMEOUT: u64 = 0;
    pub const NOT_SUPPORTED: u64 = 10;
    pub const TEMPORARILY_UNAVAILABLE: u64 = 11;
    pub const MALFORMED_REQUEST: u64 = 12;
    pub const CRASH: u64 = 13;
    pub const ABORT: u64 = 14;
    pub const KEY_DOES_NOT_EXIST: u64 = 20;
    pub const KEY_ALREADY_EXISTS: u64 = 21;
    pub const PRECONDITION_FAILED: u64 = 22;
    pub const TXN_CONFLICT: u64 = 30;

    /// True for errors that say the operation definitely did not happen.
    pub fn is_definite(code: u64) -> bool {
        matches!(code, 10 | 11 | 12 | 14 | 20 | 21 | 22 | 30)
    }
}

/// Why a line is not a Maelstrom message.
#[derive(Debug)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Envelope {
    /// Parses one line. Names what is wrong: not JSON, not an object, missing `src`/`dest`/`body`.
    pub fn parse(line: &str) -> Result<Envelope, ParseError> {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| ParseError(format!("not a JSON message: {e}")))?;
        let Value::Object(mut top) = v else {
            return Err(ParseError("message is not a JSON object".into()));
        };
        let mut field = |name: &str| -> Result<Value, ParseError> {
            top.remove(name)
                .ok_or_else(|| ParseError(format!("message has no `{name}` field")))
        };
        let src = field("src")?;
        let dest = field("dest")?;
        let body = field("body")?;
        let (Value::String(src), Value::String(dest)) = (src, dest) else {
            return Err(ParseError("`src` and `dest` must be strings".into()));
        };
        let Value::Object(body) = body else {
            return Err(ParseError("`body` is not a JSON object".into()));
        };
        Ok(Envelope { src, dest, body })
    }

    /// The body's `type`, if it is a string.
    pub fn kind(&self) -> Option<&str> {
        self.body.get("type").and_then(Value::as_str)
    }

    /// The body's `msg_id`, if it is an unsigned integer.
    pub fn msg_id(&self) -> Option<u64> {
        self.body.get("msg_id").and_then(Value::as_u64)
    }

    /// Writes the envelope as one line and flushes.
    pub fn write_line(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// An `error` body replying to `in_reply_to`.
pub fn error_body(in_reply_to: Option<u64>, code: u64, text: &str) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert("type".into(), "error".into());
    if let Some(id) = in_reply_to {
        b.insert("in_reply_to".into(), id.into());
    }
    b.insert("code".into(), code.into());
    b.insert("text".into(), text.into());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ignores_extra_top_level_fields_and_names_missing_ones() {
        let e = Envelope::parse(
            r#"{"id":7,"src":"c1","dest":"n1","body":{"type":"read","msg_id":3,"key":1}}"#,
        )
        .expect("valid message");
        assert_eq!(e.kind(), Some("read"));
        assert_eq!(e.msg_id(), Some(3));
        let out = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            out.as_object().map(|o| o.len()),
            Some(3),
            "exactly src, dest, body"
        );

        let err = Envelope::parse(r#"{"src":"c1","body":{}}"#).expect_err("no dest");
        assert!(err.0.contains("`dest`"), "{}", err.0);
        let err = Envelope::parse("hello").expect_err("not json");
        assert!(err.0.contains("not a JSON"), "{}", err.0);
    }
}
