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
        matches!(
            code,
            NOT_SUPPORTED
                | TEMPORARILY_UNAVAILABLE
                | MALFORMED_REQUEST
                | ABORT
                | KEY_DOES_NOT_EXIST
                | KEY_ALREADY_EXISTS
                | PRECONDITION_FAILED
                | TXN_CONFLICT
        )
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

impl Envelope {
    /// Writes the envelope as one line without flushing (the driver flushes once per turn).
    pub fn write_line_buffered(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self).map_err(std::io::Error::other)?;
        out.write_all(b"\n")
    }
}

/// A reply body of type `kind` answering `in_reply_to`.
pub fn reply_body(kind: &str, in_reply_to: Option<u64>) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert("type".into(), kind.into());
    if let Some(id) = in_reply_to {
        b.insert("in_reply_to".into(), id.into());
    }
    b
}

/// Compact text encoding of binary payloads carried inside JSON bodies (peer messages):
/// bincode, then base64 (standard alphabet, padded).
pub mod pack {
    use super::ParseError;
    use serde::{de::DeserializeOwned, Serialize};

    /// Largest payload [`unpack`] accepts before decoding (a guard against hostile lengths).
    pub const MAX_PACKED_BYTES: usize = 64 << 20;

    /// Serializes `value` with bincode and encodes the bytes as base64.
    pub fn pack<T: Serialize>(value: &T) -> Result<String, ParseError> {
        let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| ParseError(format!("cannot encode payload: {e}")))?;
        Ok(base64_encode(&bytes))
    }

    /// Inverse of [`pack`]; names what is wrong instead of panicking on bad input.
    pub fn unpack<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
        if text.len() / 4 * 3 > MAX_PACKED_BYTES {
            return Err(ParseError(format!(
                "packed payload of {} characters is over the limit",
                text.len()
            )));
        }
        let bytes = base64_decode(text)?;
        let config = bincode::config::standard().with_limit::<MAX_PACKED_BYTES>();
        let (value, used) = bincode::serde::decode_from_slice(&bytes, config)
            .map_err(|e| ParseError(format!("cannot decode packed payload: {e}")))?;
        if used != bytes.len() {
            return Err(ParseError(format!(
                "packed payload has {} trailing bytes",
                bytes.len() - used
            )));
        }
        Ok(value)
    }

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn base64_encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn base64_decode(text: &str) -> Result<Vec<u8>, ParseError> {
        let s = text.as_bytes();
        if !s.len().is_multiple_of(4) {
            return Err(ParseError(format!(
                "base64 text length {} is not a multiple of 4",
                s.len()
            )));
        }
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        for (q, quad) in s.chunks(4).enumerate() {
            let last = q + 1 == s.len() / 4;
            let mut n = 0u32;
            let mut pad = 0;
            for (i, &c) in quad.iter().enumerate() {
                let v = match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b'/' => 63,
                    b'=' if last && i >= 2 => {
                        pad += 1;
                        0
                    }
                    _ => {
                        return Err(ParseError(format!(
                            "invalid base64 character {:?} at {}",
                            char::from(c),
                            q * 4 + i
                        )))
                    }
                };
                if pad > 0 && c != b'=' {
                    return Err(ParseError("base64 data after padding".into()));
                }
                n = (n << 6) | u32::from(v);
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        Ok(out)
    }
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

    #[test]
    fn base64_round_trips_every_length_and_rejects_garbage() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = pack::base64_encode(&data);
            assert_eq!(
                pack::base64_decode(&text).expect("own output decodes"),
                data
            );
        }
        assert_eq!(pack::base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(pack::base64_encode(b"fo"), "Zm8=");
        assert!(pack::base64_decode("Zm9").is_err(), "bad length");
        assert!(pack::base64_decode("Zm*v").is_err(), "bad character");
        assert!(
            pack::base64_decode("Z=9v").is_err(),
            "padding in the middle"
        );
        assert!(
            pack::base64_decode("Zm==Zm9v").is_err(),
            "padding before the end"
        );
    }

    #[test]
    fn pack_round_trips_and_names_bad_payloads() {
        let v: (u64, String, Vec<u8>) = (7, "x".into(), vec![1, 2, 3]);
        let text = pack::pack(&v).expect("encodes");
        let back: (u64, String, Vec<u8>) = pack::unpack(&text).expect("decodes");
        assert_eq!(back, v);
        let mut bytes = pack::base64_decode(&text).expect("own output");
        bytes.pop();
        let truncated = pack::base64_encode(&bytes);
        let err = pack::unpack::<(u64, String, Vec<u8>)>(&truncated).expect_err("truncated");
        assert!(err.0.contains("decode"), "{}", err.0);
        bytes.extend_from_slice(&[3, 0]);
        let long = pack::base64_encode(&bytes);
        let err = pack::unpack::<(u64, String, Vec<u8>)>(&long).expect_err("trailing");
        assert!(err.0.contains("trailing"), "{}", err.0);
        // A hostile length prefix must not allocate gigabytes or panic.
        let hostile = pack::base64_encode(&[0xfc, 0xff, 0xff, 0xff, 0x7f]);
        assert!(pack::unpack::<Vec<u8>>(&hostile).is_err());
    }
}
