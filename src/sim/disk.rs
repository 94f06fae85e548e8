//! Simulated storage: the durable part of one node's Raft state, with the same contract as the
//! storage crate (`raftkv_storage`): a write batch truncates a conflicting suffix and then
//! appends, a snapshot replaces the log up to its index, and nothing is durable before the batch's
//! flush completes.
//!
//! Owns: what survives a crash. A batch in flight when the node crashes is lost, except that a
//! torn tail may keep a clean prefix of its log records (as sled does for writes whose flush had
//! not returned); the hard state is the batch's last record and survives only with all the rest.
//! Beside sled's part it keeps what the node's storage keeps outside sled: the durable-progress
//! record (term, vote, recovering mark, incarnation, last (term, index)), written after each
//! persist step. It also keeps enough of the last step to roll it back, and the damage a
//! `corrupt` fault did (see [`Damage`]), from which a start reads what the node's start would.
//! Must never: make anything durable before its flush completes, or lose anything that was,
//! except by a damage the simulator chose and recorded.

use std::sync::Arc;

use crate::raft::{Entry, HardState, InitialState, Recovery, SnapshotMeta};
use crate::shell::rejoin::{self, Durable, Rejoin, RejoinBugs, Start, StartRead, Stored};
use crate::shell::Batch;

/// A node's durable state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
    /// Contiguous, starting right after the snapshot (or at 1).
    pub log: Vec<Entry>,
    /// The durable-progress record; None in a directory that holds nothing (a first boot or a
    /// wiped disk), where sled's hard state is absent too.
    pub record: Option<Record>,
    /// What the last persist step replaced; None when it truncated the log or installed a
    /// snapshot (or there was none since the start).
    last_step: Option<Undo>,
    /// The damage a `corrupt` fault did since the node last started on this disk.
    pub damage: Option<Damage>,
}

/// The durable-progress record: sled's hard state's term, vote, mark and incarnation and the
/// log's last (term, index), as of the last persist step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub durable: Durable,
    pub last: (u64, u64),
}

/// Enough of the last persist step to undo it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    pub hard_state: HardState,
    pub wrote_hard_state: bool,
    /// The log's length before the step appended (it truncated nothing).
    pub log_len: usize,
    pub record: Option<Record>,
}

/// One damage of the `corrupt` fault. The simulated disk holds values, not bytes, so a damage is
/// kept as what the start's checks would find (a record failing its checksum, a chain or index
/// that disagrees, a log or hard state below the record, a copy that does not decode); the
/// kinds that leave sled's copies readable but stale change them here too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The log record at this index fails its checksum.
    LogRecord(u64),
    /// The log record at this index is gone.
    DroppedRecord(u64),
    /// The record written for the first index was written under the second.
    Misdirected(u64, u64),
    /// An older record at this index came back over the newer one.
    OldOverNew(u64),
    /// sled's hard state fails its checksum.
    HardState,
    /// The durable-progress record fails to decode.
    Record,
    /// A chunk of the snapshot at this index fails its checksum.
    SnapshotChunk(u64),
    /// sled lost the last persist step (its hard state and appended entries), the record kept it.
    RolledBack,
    /// The last step's hard state went onto the record: the record does not decode and sled's
    /// hard state is the one before the step.
    HardStateOntoRecord,
    /// The last step's record went onto sled's hard state: that does not decode and the record
    /// is the one before the step.
    RecordOntoHardState,
}

impl Disk {
    /// A directory started empty with `hard_state` (its mark and incarnation) written to both
    /// copies, as the node writes it before anything else.
    pub fn rejoining(hard_state: HardState) -> Disk {
        debug_assert!(hard_state.recovery != Recovery::Ordinary);
        Disk::holding(hard_state)
    }

    /// A directory holding only `hard_state`, in both copies, and no log.
    pub fn holding(hard_state: HardState) -> Disk {
        let mut disk = Disk {
            hard_state,
            ..Disk::default()
        };
        disk.record = Some(disk.current_record());
        disk
    }

    /// The node's start on this disk: the shared start decision on what it reads; a start that
    /// starts empty replaces the disk with a rejoining directory under the incarnation that
    /// `incarnation` picks above the floor it is given (called only then). Returns the
    /// decision.
    pub fn decide_start(
        &mut self,
        bugs: RejoinBugs,
        incarnation: impl FnOnce(u64) -> u64,
    ) -> Start {
        let start = rejoin::decide(&self.start_read(), bugs);
        if let Start::Empty(how) = start {
            self.start_empty(&how, incarnation(how.incarnation_floor));
        }
        start
    }

    /// Replaces this disk with the empty directory a start that must rejoin writes first, as
    /// incarnation `chosen` (above the decision's floor).
    pub fn start_empty(&mut self, how: &Rejoin, chosen: u64) {
        debug_assert!(chosen > how.incarnation_floor);
        *self = Disk::rejoining(how.hard_state(chosen));
    }

    /// What the last persist step replaced, while it can still be undone.
    pub fn last_step(&self) -> Option<&Undo> {
        self.last_step.as_ref()
    }

    /// True when a start on this disk starts empty and rejoins (it holds nothing, it is
    /// damaged, or either copy of the mark says it was not ordinary yet), as the start decision
    /// itself says.
    pub fn needs_rejoin(&self) -> bool {
        rejoin::decide(&self.start_read(), RejoinBugs::default()) != Start::AsIs
    }

    fn current_record(&self) -> Record {
        let last_index = self.last_index();
        Record {
            durable: Durable::from(&self.hard_state),
            last: (self.term_at(last_index).unwrap_or(0), last_index),
        }
    }

    /// What a start reads here: both copies as the damage (if any) left them.
    pub fn start_read(&self) -> StartRead {
        let written = |d: Durable| {
            if self.record.is_some() || self.damage.is_some() {
                Stored::Intact(d)
            } else {
                Stored::Absent
            }
        };
        let mut hard_state = written(Durable::from(&self.hard_state));
        let mut record = self
            .record
            .map_or(Stored::Absent, |r| Stored::Intact(r.durable));
        match self.damage {
            Some(Damage::HardState | Damage::RecordOntoHardState) => {
                hard_state = Stored::Unreadable
            }
            Some(Damage::Record | Damage::HardStateOntoRecord) => record = Stored::Unreadable,
            _ => {}
        }
        StartRead {
            damaged: self.damage.is_some(),
            holds_log: self.snapshot.is_some() || !self.log.is_empty(),
            hard_state,
            record,
        }
    }

    /// The damages that apply to this disk now (each needs what it damages).
    pub fn possible_damages(&self, index: u64, other: u64) -> Vec<Damage> {
        let mut kinds = vec![Damage::HardState, Damage::Record];
        if !self.log.is_empty() {
            kinds.extend([
                Damage::LogRecord(index),
                Damage::DroppedRecord(index),
                Damage::OldOverNew(index),
            ]);
        }
        if self.log.len() >= 2 && index != other {
            kinds.push(Damage::Misdirected(index, other));
        }
        if let Some((m, _)) = &self.snapshot {
            kinds.push(Damage::SnapshotChunk(m.index));
        }
        if let Some(undo) = self.last_step {
            if self.rolled_back(&undo).is_below_record() {
                kinds.push(Damage::RolledBack);
            }
            if undo.wrote_hard_state {
                kinds.extend([Damage::HardStateOntoRecord, Damage::RecordOntoHardState]);
            }
        }
        kinds
    }

    /// This disk with sled's part of the last step undone (the record kept).
    fn rolled_back(&self, undo: &Undo) -> Disk {
        let mut disk = self.clone();
        disk.hard_state = undo.hard_state;
        disk.log.truncate(undo.log_len);
        disk
    }

    /// Rule of the record: sled's log is below it when it does not hold the record's last
    /// (term, index); its hard state is below it at a lower term, or at an equal one without
    /// the record's vote.
    fn is_below_record(&self) -> bool {
        let Some(rec) = self.record else {
            return false;
        };
        let (term, index) = rec.last;
        let log_below = index > 0 && self.term_at(index) != Some(term);
        let hs = &self.hard_state;
        let hs_below = hs.term < rec.durable.term
            || (hs.term == rec.durable.term && rec.durable.vote.is_some() && hs.vote.is_none());
        log_below || hs_below
    }

    /// Does `damage` (one of [`Disk::possible_damages`]) to this disk.
    pub fn damage(&mut self, damage: Damage) {
        let undo = self.last_step;
        match (damage, undo) {
            (Damage::RolledBack, Some(undo)) => *self = self.rolled_back(&undo),
            (Damage::HardStateOntoRecord, Some(undo)) => self.hard_state = undo.hard_state,
            (Damage::RecordOntoHardState, Some(undo)) => self.record = undo.record,
            _ => {}
        }
        self.last_step = None;
        self.damage = Some(damage);
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

    /// Makes a whole batch durable (its flush completed), then writes the record.
    pub fn persist(&mut self, b: &Batch<'_>) -> Result<(), String> {
        if b.snapshot.is_none() && b.entries.is_empty() && b.hard_state.is_none() {
            return Ok(());
        }
        let appends_only = self.only_appends(b);
        let undo = Undo {
            hard_state: self.hard_state,
            wrote_hard_state: b.hard_state.is_some(),
            log_len: self.log.len(),
            record: self.record,
        };
        if let Some((m, d)) = b.snapshot {
            self.install_snapshot(m.clone(), d.clone());
        }
        self.append(b.entries)?;
        if let Some(hs) = b.hard_state {
            self.hard_state = hs;
        }
        self.record = Some(self.current_record());
        self.last_step = appends_only.then_some(undo);
        Ok(())
    }

    /// A kill between sled's flush and the record's write: sled holds the whole batch, the
    /// record is still the one before it (one step behind, never ahead). Only for a batch that
    /// truncates nothing and installs no snapshot (such a step writes the record first).
    pub fn persist_before_record(&mut self, b: &Batch<'_>) -> Result<(), String> {
        debug_assert!(self.only_appends(b));
        let record = self.record;
        self.persist(b)?;
        self.record = record;
        self.last_step = None;
        Ok(())
    }

    /// Is `b` a step that only appends (it truncates nothing and installs no snapshot)?
    pub fn only_appends(&self, b: &Batch<'_>) -> bool {
        b.snapshot.is_none()
            && b.entries
                .first()
                .is_none_or(|e| e.index == self.last_index() + 1)
    }

    /// True when the last persist step granted a vote in the term the node already held (its
    /// hard state before the step had that term and no vote): rolling that step back leaves
    /// the two copies at one term, only the record holding the vote.
    pub fn last_step_voted_in_its_term(&self) -> bool {
        self.last_step.is_some_and(|undo| {
            let before = undo.hard_state;
            undo.wrote_hard_state
                && before.term == self.hard_state.term
                && before.vote.is_none()
                && self.hard_state.vote.is_some()
        })
    }

    /// The damages of [`Disk::possible_damages`] that leave a copy of the hard state stale or
    /// unreadable (a rolled-back step, a misdirected write): the ones a start decision must
    /// weigh.
    pub fn damages_leaving_a_stale_copy(kinds: &[Damage]) -> Vec<Damage> {
        kinds
            .iter()
            .copied()
            .filter(|d| {
                matches!(
                    d,
                    Damage::RolledBack | Damage::HardStateOntoRecord | Damage::RecordOntoHardState
                )
            })
            .collect()
    }

    /// A crash during the batch's flush kept a clean prefix of its records: the snapshot (if
    /// any, one record) and then `kept` entries. The hard state is written last, so it is lost.
    pub fn persist_torn(&mut self, b: &Batch<'_>, kept: usize) -> Result<(), String> {
        if let Some((m, d)) = b.snapshot {
            if kept == 0 {
                return Ok(());
            }
            self.last_step = None;
            self.install_snapshot(m.clone(), d.clone());
            let n = (kept - 1).min(b.entries.len());
            return self.append(&b.entries[..n]);
        }
        let n = kept.min(b.entries.len());
        self.last_step = None;
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
        self.last_step = None;
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

    fn hard_state(term: u64, vote: Option<u64>, recovery: Recovery) -> HardState {
        HardState {
            term,
            vote,
            commit: 0,
            recovery,
            incarnation: 9,
        }
    }

    /// A disk rejoined at term 2 that then appended two entries and voted in term 3.
    fn voted_disk() -> Disk {
        let mut d = Disk::rejoining(hard_state(2, None, Recovery::CatchingUp));
        let hs = hard_state(2, None, Recovery::Ordinary);
        d.persist(&batch(&[e(1, 2), e(2, 2)], Some(hs))).unwrap();
        d.persist(&batch(
            &[],
            Some(hard_state(3, Some(2), Recovery::Ordinary)),
        ))
        .unwrap();
        d
    }

    fn intact(term: u64, vote: Option<u64>) -> Stored {
        Stored::Intact(Durable {
            term,
            vote,
            recovery: Recovery::Ordinary,
            incarnation: 9,
        })
    }

    #[test]
    fn the_record_follows_each_step_and_a_clean_disk_reads_intact() {
        assert!(Disk::default().start_read().is_empty());
        let d = voted_disk();
        assert_eq!(d.record.unwrap().last, (2, 2));
        let read = d.start_read();
        assert!(!read.damaged && read.holds_log);
        assert_eq!(read.hard_state, intact(3, Some(2)));
        assert_eq!(read.record, read.hard_state);
        assert!(!d.needs_rejoin());
    }

    #[test]
    fn a_rolled_back_step_leaves_sled_below_the_record() {
        let mut d = voted_disk();
        assert!(d.possible_damages(1, 2).contains(&Damage::RolledBack));
        d.damage(Damage::RolledBack);
        let read = d.start_read();
        assert!(read.damaged);
        assert_eq!(read.hard_state, intact(2, None), "sled lost the vote");
        assert_eq!(read.record, intact(3, Some(2)), "the record kept it");
        assert!(d.needs_rejoin());
        // A step that only appended at the same term, undone, is below the record's last.
        let mut d = Disk::holding(hard_state(2, None, Recovery::Ordinary));
        d.persist(&batch(&[e(1, 2)], None)).unwrap();
        assert!(d.possible_damages(1, 1).contains(&Damage::RolledBack));
        d.damage(Damage::RolledBack);
        assert!(d.log.is_empty() && d.record.unwrap().last == (2, 1));
    }

    #[test]
    fn a_misdirected_write_leaves_one_copy_unreadable_and_the_other_stale() {
        let mut d = voted_disk();
        d.damage(Damage::HardStateOntoRecord);
        let read = d.start_read();
        assert_eq!(
            (read.hard_state, read.record),
            (intact(2, None), Stored::Unreadable)
        );
        let mut d = voted_disk();
        d.damage(Damage::RecordOntoHardState);
        let read = d.start_read();
        assert_eq!(
            (read.hard_state, read.record),
            (Stored::Unreadable, intact(2, None))
        );
        // A step that truncated or installed a snapshot cannot be rolled back.
        let mut d = voted_disk();
        d.persist(&batch(&[e(2, 3)], None)).unwrap();
        let kinds = d.possible_damages(1, 2);
        assert!(!kinds.contains(&Damage::RolledBack), "{kinds:?}");
        assert!(kinds.contains(&Damage::Misdirected(1, 2)));
    }
}
