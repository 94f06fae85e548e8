//! The typed damage report: what [`crate::Storage::open`] found wrong in a data directory.
//!
//! Owns: the kinds of damage and how each is named (node, directory, tree, index, what was wrong),
//! with whatever could still be read intact (the hard state, the durable-progress record), so a
//! caller can decide what to carry forward. sled keeps each value whole and a kill leaves it a
//! clean prefix of its flushes, so a record that fails its checksum or does not decode is always
//! damage, never a torn write, wherever it is and whatever the commit index says.
//! Must never: repair, delete or write anything; it only describes.

use crate::progress::ProgressRecord;
use crate::HardState;
use std::path::PathBuf;

/// What kind of damage was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// sled cannot open the directory, or reports corruption reading it.
    Unopenable,
    /// A record fails its checksum or frame, does not decode, holds another index than its key,
    /// or has a key raftkv never writes there.
    BadRecord,
    /// A record that must exist is missing: a log index between or before intact records, a
    /// committed entry, the format record, a snapshot chunk.
    MissingRecord,
    /// A log record's stored previous term disagrees with the record before it, or its term is
    /// lower than the one before it.
    BrokenChain,
    /// The snapshot's chunks do not add up to what its metadata says.
    BadSnapshot,
    /// The log does not hold the durable-progress record's last (term, index).
    LogBelowProgress,
    /// The hard state's term is lower than the durable-progress record's, or equal without its vote.
    HardStateBelowProgress,
    /// The durable-progress record is missing from a directory that holds Raft state.
    ProgressMissing,
    /// The durable-progress record fails its checksum or does not decode.
    ProgressDamaged,
}

impl DamageKind {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            DamageKind::Unopenable => "sled cannot read it",
            DamageKind::BadRecord => "bad record",
            DamageKind::MissingRecord => "missing record",
            DamageKind::BrokenChain => "broken chain of terms",
            DamageKind::BadSnapshot => "bad snapshot",
            DamageKind::LogBelowProgress => "log below the durable-progress record",
            DamageKind::HardStateBelowProgress => "hard state below the durable-progress record",
            DamageKind::ProgressMissing => "durable-progress record missing",
            DamageKind::ProgressDamaged => "durable-progress record damaged",
        }
    }
}

impl DamageKind {
    /// The name in one word of letters and `-`, for the name of a directory set aside.
    pub fn slug(self) -> &'static str {
        match self {
            DamageKind::Unopenable => "unopenable",
            DamageKind::BadRecord => "bad-record",
            DamageKind::MissingRecord => "missing-record",
            DamageKind::BrokenChain => "broken-chain",
            DamageKind::BadSnapshot => "bad-snapshot",
            DamageKind::LogBelowProgress => "log-below-progress",
            DamageKind::HardStateBelowProgress => "hard-state-below-progress",
            DamageKind::ProgressMissing => "progress-missing",
            DamageKind::ProgressDamaged => "progress-damaged",
        }
    }
}

/// One damage found in a data directory (the first one recovery met).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub dir: PathBuf,
    /// The node the directory belongs to, when its identity record could be read.
    pub node: Option<String>,
    /// `log`, `meta`, `snapshot`, `sled` (sled's own files) or `progress` (the record file).
    pub tree: &'static str,
    /// The log index (for the snapshot tree, the snapshot's index) where it applies.
    pub index: Option<u64>,
    pub kind: DamageKind,
    pub detail: String,
    /// The stored hard state, when it was read intact before the damage was found.
    pub hard_state: Option<HardState>,
    /// The durable-progress record, when it was read intact.
    pub progress: Option<ProgressRecord>,
}

impl Damage {
    pub(crate) fn new(
        dir: &std::path::Path,
        tree: &'static str,
        index: Option<u64>,
        kind: DamageKind,
        detail: String,
    ) -> Damage {
        Damage {
            dir: dir.to_path_buf(),
            node: None,
            tree,
            index,
            kind,
            detail,
            hard_state: None,
            progress: None,
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "damaged data directory")?;
        if let Some(node) = &self.node {
            write!(f, " of node {node}")?;
        }
        write!(f, " ({}): tree `{}`", self.dir.display(), self.tree)?;
        if let Some(i) = self.index {
            write!(f, " at index {i}")?;
        }
        write!(f, ": {}: {}", self.kind.name(), self.detail)
    }
}
