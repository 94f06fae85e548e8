//! raftkv-storage: the durable home of a node's Raft state.
//!
//! Owns: the on-disk format (one sled `Db` per node directory, trees `log`, `meta`, `snapshot`),
//! the checksummed record codec, and the recovery rules of DESIGN §3.
//! Must never: report anything durable before `flush()` has returned, panic on bytes read from
//! disk, or change a byte of a directory it was asked only to inspect.
//!
//! The plain data types below ([`Entry`], [`HardState`], [`SnapshotMeta`]) are shared with the
//! consensus core, which uses them as values only and never touches a file.

use serde::{Deserialize, Serialize};

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Appended by a new leader to commit entries of earlier terms (Raft §5.4.2).
    Noop,
    /// A state-machine command (for raftkv, a JSON-encoded lin-kv command).
    Normal,
}

/// One Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    pub data: Vec<u8>,
}

/// The state that must be durable before a node votes or acknowledges an append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<u64>,
    /// Highest index known committed; persisted so a restarted node never serves older state.
    pub commit: u64,
}

/// Describes a snapshot: the state machine after applying every entry up to `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    /// Voters of the cluster (static membership).
    pub voters: Vec<u64>,
}
