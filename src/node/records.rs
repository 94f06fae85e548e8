//! Conversions between the consensus core's values and the storage crate's records.
//!
//! Owns: the one place that knows both type families, including what a start read (a clean
//! open's state or a damage report) as the start decision sees it. The core never sees a storage type and
//! the storage crate never sees a core type, so the on-disk format changes only when the
//! storage crate changes it.
//! Must never: copy more than the conversion needs (recovered entries move their payload by
//! value; entries on their way to disk are borrowed as records, payload and all; a snapshot's
//! meta clones only its voter list).

use crate::raft;
use crate::shell::rejoin::{Durable, StartRead, Stored};
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

/// The message a running node stops with when storage fails: damage met while running (a start
/// reads the disk; a running node keeps its log in memory, so this is rare) is never worked past.
pub fn running_failure(what: &str, e: &storage::Error) -> String {
    match e {
        storage::Error::Damaged(_) => format!(
            "{what}: {e}; the node stops rather than run on a damaged directory, and its next \
             start moves the directory aside and rejoins from its peers"
        ),
        other => format!("{what}: {other}"),
    }
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

impl From<storage::RecoveryMark> for raft::Recovery {
    fn from(mark: storage::RecoveryMark) -> raft::Recovery {
        match mark {
            storage::RecoveryMark::Ordinary => raft::Recovery::Ordinary,
            storage::RecoveryMark::Probing => raft::Recovery::Probing,
            storage::RecoveryMark::CatchingUp => raft::Recovery::CatchingUp,
        }
    }
}

impl From<raft::Recovery> for storage::RecoveryMark {
    fn from(mark: raft::Recovery) -> storage::RecoveryMark {
        match mark {
            raft::Recovery::Ordinary => storage::RecoveryMark::Ordinary,
            raft::Recovery::Probing => storage::RecoveryMark::Probing,
            raft::Recovery::CatchingUp => storage::RecoveryMark::CatchingUp,
        }
    }
}

impl From<storage::HardState> for raft::HardState {
    fn from(hs: storage::HardState) -> raft::HardState {
        raft::HardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
            recovery: hs.recovery.into(),
            incarnation: hs.incarnation,
        }
    }
}

impl From<raft::HardState> for storage::HardState {
    fn from(hs: raft::HardState) -> storage::HardState {
        storage::HardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
            recovery: hs.recovery.into(),
            incarnation: hs.incarnation,
        }
    }
}

/// sled's hard state as one copy of the mark.
fn hard_state_copy(hs: &storage::HardState) -> Durable {
    Durable::from(&raft::HardState::from(*hs))
}

/// The durable-progress record as the other copy: its term and vote after the last step, and
/// of its values the mark that owes more and the highest incarnation.
fn record_copy(rec: &storage::progress::ProgressRecord) -> Durable {
    Durable {
        term: rec.new.term,
        vote: rec.new.vote,
        recovery: rec.recovery().into(),
        incarnation: rec.incarnation(),
    }
}

/// What a clean open read.
pub fn clean_read(rec: &storage::Recovered) -> StartRead {
    StartRead {
        damaged: false,
        holds_log: rec.snapshot.is_some() || rec.last_index >= rec.first_index,
        hard_state: if rec.hard_state_stored {
            Stored::Intact(hard_state_copy(&rec.hard_state))
        } else {
            Stored::Absent
        },
        record: rec
            .progress
            .as_ref()
            .map_or(Stored::Absent, |r| Stored::Intact(record_copy(r))),
    }
}

/// What an open that found damage read: the copies it read intact before it stopped.
pub fn damaged_read(d: &storage::Damage) -> StartRead {
    let intact_or_not = |c: Option<Durable>| c.map_or(Stored::Unreadable, Stored::Intact);
    StartRead {
        damaged: true,
        holds_log: true,
        hard_state: intact_or_not(d.hard_state.as_ref().map(hard_state_copy)),
        record: intact_or_not(d.progress.as_ref().map(record_copy)),
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
        for (recovery, incarnation) in [
            (storage::RecoveryMark::Ordinary, 0),
            (storage::RecoveryMark::Probing, 1),
            (storage::RecoveryMark::CatchingUp, u64::MAX),
        ] {
            let hs = storage::HardState {
                term: 4,
                vote: Some(2),
                commit: 9,
                recovery,
                incarnation,
            };
            let value = raft::HardState::from(hs);
            assert_eq!(value.incarnation, incarnation);
            assert_eq!(storage::RecoveryMark::from(value.recovery), recovery);
            assert_eq!(storage::HardState::from(value), hs);
        }
        let meta = storage::SnapshotMeta {
            index: 12,
            term: 4,
            voters: vec![0, 1, 2],
        };
        let value = raft::SnapshotMeta::from(meta.clone());
        assert_eq!(storage::SnapshotMeta::from(&value), meta);
    }
}
