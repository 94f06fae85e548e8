//! Conversions between the consensus core's values and the storage crate's records.
//!
//! Owns: the one place that knows both type families. The core never sees a storage type and
//! the storage crate never sees a core type, so the on-disk format changes only when the
//! storage crate changes it.
//! Must never: copy more than the conversion needs (recovered entries move their payload by
//! value; entries on their way to disk are borrowed as records, payload and all; a snapshot's
//! meta clones only its voter list).

use crate::raft;
use crate::shell::Batch;
use raftkv_storage as storage;

/// Makes the shell's `batch` durable in sled: entries and snapshot data are borrowed, only the
/// snapshot's meta is converted (its voter list is the one copy).
pub fn persist(disk: &mut storage::Storage, batch: &Batch<'_>) -> Result<(), storage::Error> {
    let snapshot = batch
        .snapshot
        .map(|(meta, data)| (storage::SnapshotMeta::from(meta), data));
    disk.persist_borrowed(storage::BatchRef {
        snapshot: snapshot
            .as_ref()
            .map(|(meta, data)| (meta, data.as_slice())),
        entries: batch.entries,
        hard_state: batch.hard_state.map(Into::into),
    })
}

impl From<storage::EntryKind> for raft::EntryKind {
    fn from(kind: storage::EntryKind) -> raft::EntryKind {
        match kind {
            storage::EntryKind::Noop => raft::EntryKind::Noop,
            storage::EntryKind::Normal => raft::EntryKind::Normal,
        }
    }
}

impl From<raft::EntryKind> for storage::EntryKind {
    fn from(kind: raft::EntryKind) -> storage::EntryKind {
        match kind {
            raft::EntryKind::Noop => storage::EntryKind::Noop,
            raft::EntryKind::Normal => storage::EntryKind::Normal,
        }
    }
}

impl From<storage::Entry> for raft::Entry {
    fn from(e: storage::Entry) -> raft::Entry {
        raft::Entry {
            term: e.term,
            index: e.index,
            kind: e.kind.into(),
            data: e.data,
        }
    }
}

/// The core's entry seen as the storage record it is written as: its payload is borrowed, so a
/// persist copies no entry data.
impl storage::AsEntryRef for raft::Entry {
    fn entry_ref(&self) -> storage::EntryRef<'_> {
        storage::EntryRef {
            term: self.term,
            index: self.index,
            kind: self.kind.into(),
            data: &self.data,
        }
    }
}

impl From<storage::HardState> for raft::HardState {
    fn from(hs: storage::HardState) -> raft::HardState {
        raft::HardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
            ..raft::HardState::default()
        }
    }
}

impl From<raft::HardState> for storage::HardState {
    fn from(hs: raft::HardState) -> storage::HardState {
        storage::HardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
        }
    }
}

impl From<storage::SnapshotMeta> for raft::SnapshotMeta {
    fn from(meta: storage::SnapshotMeta) -> raft::SnapshotMeta {
        raft::SnapshotMeta {
            index: meta.index,
            term: meta.term,
            voters: meta.voters,
        }
    }
}

impl From<&raft::SnapshotMeta> for storage::SnapshotMeta {
    fn from(meta: &raft::SnapshotMeta) -> storage::SnapshotMeta {
        storage::SnapshotMeta {
            index: meta.index,
            term: meta.term,
            voters: meta.voters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::AsEntryRef;

    #[test]
    fn records_round_trip_through_the_core_values() {
        for kind in [storage::EntryKind::Noop, storage::EntryKind::Normal] {
            let record = storage::Entry {
                term: 3,
                index: 7,
                kind,
                data: b"payload".to_vec(),
            };
            let value = raft::Entry::from(record.clone());
            assert_eq!((value.term, value.index, &value.data), (3, 7, &record.data));
            assert_eq!(value.entry_ref(), record.entry_ref());
        }
        let hs = storage::HardState {
            term: 4,
            vote: Some(2),
            commit: 9,
        };
        assert_eq!(storage::HardState::from(raft::HardState::from(hs)), hs);
        let meta = storage::SnapshotMeta {
            index: 12,
            term: 4,
            voters: vec![0, 1, 2],
        };
        let value = raft::SnapshotMeta::from(meta.clone());
        assert_eq!(storage::SnapshotMeta::from(&value), meta);
    }
}
