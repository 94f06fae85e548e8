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

/// Who this data directory belongs to, written at first `init` and checked on restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node: String,
    pub cluster: Vec<String>,
}

/// What [`Storage::open`] recovered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    /// First log index held (snapshot index + 1, or 1); `last_index < first_index` means empty.
    pub first_index: u64,
    pub last_index: u64,
    pub identity: Option<Identity>,
    /// Records past the last good one that recovery dropped as a torn tail.
    pub torn_records_dropped: u64,
}

/// One durable step: everything one turn of the node's loop produced, made durable by one flush.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// A snapshot received from the leader; replaces the log up to its index.
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Entries to append; a conflicting suffix from `entries[0].index` on is truncated first.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
}

/// Storage errors. Each names what is wrong and where.
#[derive(Debug)]
pub enum Error {
    /// Another process holds the directory (sled's lock).
    Locked {
        dir: std::path::PathBuf,
    },
    /// The directory is missing, unreadable or not a raftkv data directory.
    NotADataDir {
        dir: std::path::PathBuf,
        why: String,
    },
    /// The directory was written by a newer on-disk format.
    NewerFormat {
        found: u32,
        supported: u32,
    },
    /// A record that must be intact is not.
    Corruption {
        tree: &'static str,
        index: Option<u64>,
        detail: String,
    },
    /// The operation is not valid on the current state (for example a gap in the log).
    Invalid(String),
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Locked { dir } => {
                write!(
                    f,
                    "another process holds this data directory: {}",
                    dir.display()
                )
            }
            Error::NotADataDir { dir, why } => {
                write!(f, "not a raftkv data directory: {}: {why}", dir.display())
            }
            Error::NewerFormat { found, supported } => write!(
                f,
                "data directory has format version {found}, newer than the supported {supported}"
            ),
            Error::Corruption {
                tree,
                index: Some(i),
                detail,
            } => {
                write!(f, "corruption in tree `{tree}` at index {i}: {detail}")
            }
            Error::Corruption {
                tree,
                index: None,
                detail,
            } => {
                write!(f, "corruption in tree `{tree}`: {detail}")
            }
            Error::Invalid(s) => write!(f, "invalid storage operation: {s}"),
            Error::Io(s) => write!(f, "storage I/O error: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// A node's durable Raft state in one sled `Db`.
pub struct Storage {
    _private: (),
}

#[allow(unused_variables)]
impl Storage {
    /// Opens (creating if absent) a node directory and recovers its state by the rules above.
    pub fn open(dir: &std::path::Path) -> Result<(Storage, Recovered), Error> {
        todo!("storage crate")
    }
    /// Makes `batch` durable (one flush). Returns only after `flush()` has returned.
    pub fn persist(&mut self, batch: &WriteBatch) -> Result<(), Error> {
        todo!()
    }
    /// Entries in `[lo, hi)`, stopping after `max_bytes` of payload (at least one entry).
    pub fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, Error> {
        todo!()
    }
    pub fn term(&self, index: u64) -> Result<Option<u64>, Error> {
        todo!()
    }
    /// Saves a snapshot taken by the state machine and compacts the log behind it. Durable.
    pub fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), Error> {
        todo!()
    }
    pub fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, Error> {
        todo!()
    }
    pub fn set_identity(&mut self, identity: &Identity) -> Result<(), Error> {
        todo!()
    }
}
