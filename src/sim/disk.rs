//! Simulated storage: the durable part of one node's Raft state, with the same contract as the
//! storage crate (`raftkv_storage`): a write batch truncates a conflicting suffix and then
//! appends, a snapshot replaces the log up to its index, and nothing is durable before the batch's
//! flush completes.
//!
//! Owns: what survives a crash. A batch in flight when the node crashes is lost, except that a
//! torn tail may keep a clean prefix of its log records (as sled does for writes whose flush had
//! not returned); the hard state is the batch's last record and survives only with all the rest.
//! Must never: make anything durable before its flush completes, or lose anything that was.

use std::sync::Arc;

use crate::raft::{Entry, HardState, InitialState, SnapshotMeta};
use crate::shell::Batch;

/// A node's durable state.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
    /// Contiguous, starting right after the snapshot (or at 1).
    pub log: Vec<Entry>,
}

impl Disk {
    /// An empty directory: a first boot or a wiped disk. The node starts as incarnation
    /// `incarnation`, its term and vote unknown, and must rejoin before it votes.
    pub fn empty(incarnation: u64) -> Disk {
        Disk {
            hard_state: HardState {
                recovery: crate::raft::Recovery::Probing,
                incarnation,
                ..HardState::default()
            },
            ..Disk::default()
        }
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(m, _)| m.index) + 1
    }

    pub fn last_index(&self) -> u64 {
        self.log.last().map_or(self.first_index() - 1, |e| e.index)
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        if let Some((m, _)) = &self.snapshot {
            if index == m.index {
                return Some(m.term);
            }
        }
        let first = self.first_index();
        if index < first {
            return None;
        }
        self.log.get((index - first) as usize).map(|e| e.term)
    }

    /// Installs a snapshot: keeps the log suffix after it when the log holds the snapshot's
    /// last entry with the same term (Raft §7), otherwise discards the whole log.
    fn install_snapshot(&mut self, meta: SnapshotMeta, data: Arc<Vec<u8>>) {
        let keep_suffix = self.term_at(meta.index) == Some(meta.term);
        let suffix: Vec<Entry> = if keep_suffix {
            self.log
                .iter()
                .filter(|e| e.index > meta.index)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.snapshot = Some((meta, data));
        self.log = suffix;
    }

    /// Appends `entries`, truncating the log from `entries[0].index` first. Rejects a gap.
    fn append(&mut self, entries: &[Entry]) -> Result<(), String> {
        let Some(first_new) = entries.first() else {
            return Ok(());
        };
        let first = self.first_index();
        if first_new.index > self.last_index() + 1 {
            return Err(format!(
                "append at index {} leaves a gap after last index {}",
                first_new.index,
                self.last_index()
            ));
        }
        if first_new.index < first {
            return Err(format!(
                "append at index {} is behind the snapshot (first index {first})",
                first_new.index
            ));
        }
        self.log.truncate((first_new.index - first) as usize);
        for (k, e) in entries.iter().enumerate() {
            if e.index != first_new.index + k as u64 {
                return Err(format!("entries not contiguous at index {}", e.index));
            }
        }
        self.log.extend_from_slice(entries);
        Ok(())
    }

    /// Makes a whole batch durable (its flush completed).
    pub fn persist(&mut self, b: &Batch<'_>) -> Result<(), String> {
        if let Some((m, d)) = b.snapshot {
            self.install_snapshot(m.clone(), d.clone());
        }
        self.append(b.entries)?;
        if let Some(hs) = b.hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// A crash during the batch's flush kept a clean prefix of its records: the snapshot (if
    /// any, one record) and then `kept` entries. The hard state is written last, so it is lost.
    pub fn persist_torn(&mut self, b: &Batch<'_>, kept: usize) -> Result<(), String> {
        if let Some((m, d)) = b.snapshot {
            if kept == 0 {
                return Ok(());
            }
            self.install_snapshot(m.clone(), d.clone());
            let n = (kept - 1).min(b.entries.len());
            return self.append(&b.entries[..n]);
        }
        let n = kept.min(b.entries.len());
        self.append(&b.entries[..n])
    }

    /// The state machine took a snapshot at `meta.index`: save it and compact the log behind it,
    /// in one durable step.
    pub fn save_own_snapshot(&mut self, meta: SnapshotMeta, data: Arc<Vec<u8>>) {
        let idx = meta.index;
        if self.snapshot.as_ref().is_some_and(|(m, _)| m.index >= idx) {
            return;
        }
        self.log.retain(|e| e.index > idx);
        self.snapshot = Some((meta, data));
    }

    /// What a restarted core starts from.
    pub fn initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.log.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8, term as u8],
        }
    }

    /// A batch of `entries` and an optional hard state.
    fn batch(entries: &[Entry], hard_state: Option<HardState>) -> Batch<'_> {
        Batch {
            snapshot: None,
            entries,
            hard_state,
        }
    }

    fn terms(d: &Disk) -> Vec<(u64, u64)> {
        d.log.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn append_truncates_conflicting_suffix_then_appends() {
        let mut d = Disk::default();
        d.persist(&batch(&[e(1, 1), e(2, 1), e(3, 1)], None))
            .unwrap();
        let hs = HardState {
            term: 2,
            vote: Some(3),
            commit: 1,
            ..HardState::default()
        };
        d.persist(&batch(&[e(2, 2)], Some(hs))).unwrap();
        assert_eq!(terms(&d), vec![(1, 1), (2, 2)]);
        assert_eq!(d.hard_state.term, 2);
        let err = d.persist(&batch(&[e(5, 2)], None)).unwrap_err();
        assert!(err.contains("gap"), "{err}");
    }

    #[test]
    fn torn_batch_keeps_a_prefix_and_never_the_hard_state() {
        let mut d = Disk::default();
        let entries = [e(1, 1), e(2, 1), e(3, 1)];
        let hs = HardState {
            term: 1,
            vote: Some(1),
            commit: 0,
            ..HardState::default()
        };
        d.persist_torn(&batch(&entries, Some(hs)), 2).unwrap();
        assert_eq!(terms(&d), vec![(1, 1), (2, 1)]);
        assert_eq!(d.hard_state, HardState::default());
    }

    #[test]
    fn snapshot_keeps_matching_suffix_or_drops_log() {
        let mut d = Disk::default();
        d.persist(&batch(&[e(1, 1), e(2, 1), e(3, 1), e(4, 1)], None))
            .unwrap();
        let meta = |index, term| SnapshotMeta {
            index,
            term,
            voters: vec![1, 2, 3],
        };
        let data = Arc::new(vec![]);
        let (two, three) = (meta(2, 1), meta(3, 2));
        d.persist(&Batch {
            snapshot: Some((&two, &data)),
            ..batch(&[], None)
        })
        .unwrap();
        assert_eq!(terms(&d), vec![(3, 1), (4, 1)]);
        assert_eq!(d.first_index(), 3);
        assert_eq!(d.term_at(2), Some(1));
        d.persist(&Batch {
            snapshot: Some((&three, &data)),
            ..batch(&[], None)
        })
        .unwrap();
        assert!(d.log.is_empty());
        assert_eq!(d.last_index(), 3);
        d.save_own_snapshot(meta(2, 1), Arc::new(vec![]));
        assert_eq!(
            d.first_index(),
            4,
            "an older snapshot never replaces a newer one"
        );
    }
}
