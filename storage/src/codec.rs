//! The record codec: how every value is framed on disk.
//!
//! Owns: the frame `version (u8) | payload length (u32 LE) | crc32 (u32 LE) | payload`, where the
//! crc32 covers the tree name, the record's key, the version, the length and the payload, so a
//! record stored under the wrong key or in the wrong tree fails its checksum like a flipped byte.
//! Payloads are bincode (serde, standard config), decoded with a size limit only after the checksum
//! has passed.
//! Must never: panic or allocate without bound on bytes read from disk; every failure is a
//! [`DecodeError`] that says what was wrong.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The only record frame version this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Bytes before the payload: version, length, crc32.
pub const HEADER_LEN: usize = 9;
/// Largest payload accepted when decoding (a snapshot chunk is at most [`crate::SNAPSHOT_CHUNK`]).
pub const MAX_PAYLOAD: usize = 64 << 20;

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Why a stored record could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a frame header, or the length field disagrees with the stored size.
    Truncated {
        stored: usize,
        expected: usize,
    },
    UnknownVersion(u8),
    TooLarge(usize),
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// The checksum passed but the payload is not a valid value of the expected type.
    Payload(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { stored, expected } => write!(
                f,
                "record truncated: {stored} bytes stored, frame says {expected}"
            ),
            DecodeError::UnknownVersion(v) => write!(f, "unknown record frame version {v}"),
            DecodeError::TooLarge(n) => write!(f, "record payload of {n} bytes exceeds the limit"),
            DecodeError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): damaged bytes or a record under the wrong key"
            ),
            DecodeError::Payload(e) => write!(f, "payload does not decode: {e}"),
        }
    }
}

fn crc(tree: &str, key: &[u8], version: u8, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(tree.as_bytes());
    h.update(&[0]);
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key);
    h.update(&[version]);
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Frames raw payload bytes for `key` in `tree`.
pub fn frame_raw(tree: &str, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(payload);
    seal(tree, key, out)
}

/// Frames a serde value for `key` in `tree`.
pub fn frame<T: Serialize>(tree: &str, key: &[u8], value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    out.extend_from_slice(&[0; HEADER_LEN]);
    // Writing into a Vec cannot fail and the plain data types here always encode.
    if let Err(e) = bincode::serde::encode_into_std_write(value, &mut out, CONFIG) {
        unreachable!("bincode encode into a Vec failed: {e}");
    }
    seal(tree, key, out)
}

fn seal(tree: &str, key: &[u8], mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() - HEADER_LEN) as u32;
    let c = crc(tree, key, RECORD_VERSION, len, &out[HEADER_LEN..]);
    out[0] = RECORD_VERSION;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    out[5..9].copy_from_slice(&c.to_le_bytes());
    out
}

/// Checks the frame and checksum of a stored record and returns its payload bytes.
pub fn unframe_raw<'a>(tree: &str, key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8], DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            stored: bytes.len(),
            expected: HEADER_LEN,
        });
    }
    let version = bytes[0];
    if version != RECORD_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let stored = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    if len as usize > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(len as usize));
    }
    if bytes.len() != HEADER_LEN + len as usize {
        return Err(DecodeError::Truncated {
            stored: bytes.len(),
            expected: HEADER_LEN + len as usize,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    let computed = crc(tree, key, version, len, payload);
    if computed != stored {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(payload)
}

/// Checks a stored record and decodes its payload as `T` (with a size limit).
pub fn unframe<T: DeserializeOwned>(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let payload = unframe_raw(tree, key, bytes)?;
    let cfg = CONFIG.with_limit::<MAX_PAYLOAD>();
    match bincode::serde::decode_from_slice::<T, _>(payload, cfg) {
        Ok((v, used)) if used == payload.len() => Ok(v),
        Ok((_, used)) => Err(DecodeError::Payload(format!(
            "{} trailing bytes after the value",
            payload.len() - used
        ))),
        Err(e) => Err(DecodeError::Payload(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AsEntryRef, Entry, EntryKind};

    fn entry() -> Entry {
        Entry {
            term: 3,
            index: 7,
            kind: EntryKind::Normal,
            data: b"{\"op\":\"write\"}".to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let rec = frame("log", &7u64.to_be_bytes(), &entry());
        let back: Entry = unframe("log", &7u64.to_be_bytes(), &rec).unwrap();
        assert_eq!(back, entry());
    }

    #[test]
    fn every_single_byte_flip_is_caught() {
        let rec = frame("log", &7u64.to_be_bytes(), &entry());
        for i in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    unframe::<Entry>("log", &7u64.to_be_bytes(), &bad).is_err(),
                    "flip of bit {bit} in byte {i} not caught"
                );
            }
        }
    }

    #[test]
    fn entry_data_keeps_the_layout_of_a_plain_vec() {
        #[derive(serde::Serialize)]
        struct Plain {
            term: u64,
            index: u64,
            kind: EntryKind,
            data: Vec<u8>,
        }
        let e = entry();
        let plain = Plain {
            term: e.term,
            index: e.index,
            kind: e.kind,
            data: e.data.clone(),
        };
        let a = frame("log", b"k", &e);
        let b = frame("log", b"k", &plain);
        assert_eq!(a, b);
        // The borrowed record (what persist writes) is the same record, byte for byte.
        assert_eq!(frame("log", b"k", &e.entry_ref()), a);
        // JSON (used by tools that print entries) round-trips too.
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
    }

    #[test]
    fn wrong_key_or_tree_is_caught() {
        let rec = frame("log", &7u64.to_be_bytes(), &entry());
        assert!(matches!(
            unframe::<Entry>("log", &8u64.to_be_bytes(), &rec),
            Err(DecodeError::Checksum { .. })
        ));
        assert!(matches!(
            unframe::<Entry>("meta", &7u64.to_be_bytes(), &rec),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let rec = frame("log", &7u64.to_be_bytes(), &entry());
        for cut in 0..rec.len() {
            assert!(unframe::<Entry>("log", &7u64.to_be_bytes(), &rec[..cut]).is_err());
        }
        // A valid frame whose payload claims a huge vector: rejected by the limit, no allocation.
        let mut payload = vec![];
        payload.extend_from_slice(&[1, 1, 0]); // term, index, kind
        payload.push(253); // varint u64 marker
        payload.extend_from_slice(&u64::MAX.to_le_bytes());
        let rec = frame_raw("log", &7u64.to_be_bytes(), &payload);
        assert!(matches!(
            unframe::<Entry>("log", &7u64.to_be_bytes(), &rec),
            Err(DecodeError::Payload(_))
        ));
    }
}
