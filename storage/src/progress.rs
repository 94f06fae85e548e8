//! The durable-progress record: a small checksummed file outside sled's files, holding the term,
//! the vote, the log's last (term, index), the recovering mark and the incarnation as of the last
//! persist step. The mark lives in two places, sled's hard state and this record, so one damaged
//! or misdirected copy cannot end a node's rejoining early: a start reads both and obeys the one
//! that owes more.
//!
//! Owns: the record's layout, writing it, reading it back, and the order that says whether sled's
//! state is below it. `Storage::persist` writes it after sled's flush and before it returns, so
//! before any vote or acknowledgement of that step leaves; a kill between the two leaves the record
//! behind sled, never ahead. A step that truncates the log or installs a snapshot discarding it
//! also writes it before sled, holding the old and the new value; a log or hard state matching
//! either is not below it. At open, sled's log is below the record when it does not hold the
//! record's term at the record's index, and the hard state is below it when its term is lower, or
//! equal without the record's vote: a write the disk acknowledged and then lost (a rolled-back
//! step, a misdirected write, a replaced file) is caught that way.
//!
//! Durability: one `pwrite` of a fixed 96-byte record at offset 0, no fsync. Once the call returns
//! the bytes are in the kernel's page cache, which a `kill -9` of the process does not lose (the
//! kernel writes it back), just as sled's `flush()` (`sync_file_range`) survives a kill and not a
//! power cut. A write inside one page is not split by a kill (Linux copies a write page by page and
//! stops for a fatal signal only between pages), and the checksum would name it if it were.
//!
//! Must never: be written before sled's flush with a value sled does not yet hold, except as the
//! second value of a two-value record; or be read as intact when its checksum fails.

use crate::{HardState, RecoveryMark, Terms};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Name of the record's file in the node directory.
pub const PROGRESS_FILE: &str = "raftkv-progress";
/// Stored size of the record.
pub const RECORD_LEN: usize = 96;
const MAGIC: &[u8; 4] = b"RKVP";
/// Layout 2 (format 3) adds the mark and the incarnation to each value; layout 1 had neither.
const LAYOUT_VERSION: u8 = 2;
const VALUE_LEN: usize = 42;

/// One value of the record: what was durable after (or before) a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub term: u64,
    pub vote: Option<u64>,
    pub last_term: u64,
    pub last_index: u64,
    /// The hard state's recovering mark (its second copy).
    pub recovery: RecoveryMark,
    pub incarnation: u64,
}

impl Progress {
    pub fn new(hard_state: &HardState, last_term: u64, last_index: u64) -> Progress {
        Progress {
            term: hard_state.term,
            vote: hard_state.vote,
            last_term,
            last_index,
            recovery: hard_state.recovery,
            incarnation: hard_state.incarnation,
        }
    }

    /// True when a hard state is below this value: a lower term, or the same term without this
    /// value's vote (a vote rolled back at an equal term would otherwise be given twice).
    pub fn hard_state_below(&self, hs: &HardState) -> bool {
        hs.term < self.term || (hs.term == self.term && self.vote.is_some() && hs.vote != self.vote)
    }

    /// True when the log does not hold this value's last term at its last index. `snapshot` is
    /// the log's (index, term) before its first entry; an index below it was compacted into a
    /// snapshot, which holds only committed entries, and counts as held.
    pub(crate) fn log_below(&self, snapshot: (u64, u64), terms: &Terms, last: u64) -> bool {
        let (snap_index, snap_term) = snapshot;
        let i = self.last_index;
        let held = if i == 0 {
            self.last_term == 0
        } else if i < snap_index {
            true
        } else if i == snap_index {
            self.last_term == snap_term
        } else {
            i <= last && terms.get(i) == Some(self.last_term)
        };
        !held
    }
}

/// The record: the value after the last step, and for a step that truncates the log or installs
/// a snapshot, written before sled, the value before it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressRecord {
    pub new: Progress,
    pub old: Option<Progress>,
}

impl ProgressRecord {
    pub fn values(&self) -> impl Iterator<Item = &Progress> {
        std::iter::once(&self.new).chain(self.old.as_ref())
    }

    /// The record's recovering mark: of its values, the one that owes more (a step written
    /// before sled holds the mark before and after it; either may be what sled holds).
    pub fn recovery(&self) -> RecoveryMark {
        self.values()
            .fold(RecoveryMark::Ordinary, |m, v| m.worst(v.recovery))
    }

    /// The highest incarnation the record names.
    pub fn incarnation(&self) -> u64 {
        self.values().map(|v| v.incarnation).max().unwrap_or(0)
    }
}

fn mark_byte(m: RecoveryMark) -> u8 {
    match m {
        RecoveryMark::Ordinary => 0,
        RecoveryMark::Probing => 1,
        RecoveryMark::CatchingUp => 2,
    }
}

fn mark_of(b: u8) -> Result<RecoveryMark, String> {
    match b {
        0 => Ok(RecoveryMark::Ordinary),
        1 => Ok(RecoveryMark::Probing),
        2 => Ok(RecoveryMark::CatchingUp),
        other => Err(format!("recovering mark {other} is not 0, 1 or 2")),
    }
}

fn put_value(out: &mut [u8], v: &Progress) {
    out[0..8].copy_from_slice(&v.term.to_le_bytes());
    out[8] = u8::from(v.vote.is_some());
    out[9..17].copy_from_slice(&v.vote.unwrap_or(0).to_le_bytes());
    out[17..25].copy_from_slice(&v.last_term.to_le_bytes());
    out[25..33].copy_from_slice(&v.last_index.to_le_bytes());
    out[33] = mark_byte(v.recovery);
    out[34..42].copy_from_slice(&v.incarnation.to_le_bytes());
}

fn get_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn get_value(b: &[u8]) -> Result<Progress, String> {
    let vote = match b[8] {
        0 => None,
        1 => Some(get_u64(&b[9..])),
        other => return Err(format!("vote flag {other} is neither 0 nor 1")),
    };
    Ok(Progress {
        term: get_u64(&b[0..]),
        vote,
        last_term: get_u64(&b[17..]),
        last_index: get_u64(&b[25..]),
        recovery: mark_of(b[33])?,
        incarnation: get_u64(&b[34..]),
    })
}

fn checksum(body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(b"progress\0");
    h.update(body);
    h.finalize()
}

/// `magic | layout version | value count (1 or 2) | 2 zero bytes | new | old | crc32`, integers
/// little-endian; the crc32 covers the name `progress` and every byte before it.
pub fn encode(rec: &ProgressRecord) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    out[0..4].copy_from_slice(MAGIC);
    out[4] = LAYOUT_VERSION;
    out[5] = if rec.old.is_some() { 2 } else { 1 };
    put_value(&mut out[8..8 + VALUE_LEN], &rec.new);
    if let Some(old) = &rec.old {
        put_value(&mut out[8 + VALUE_LEN..8 + 2 * VALUE_LEN], old);
    }
    let crc = checksum(&out[..RECORD_LEN - 4]);
    out[RECORD_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads a stored record back; the error says what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<ProgressRecord, String> {
    if bytes.len() != RECORD_LEN {
        return Err(format!(
            "{} bytes stored, the record is {RECORD_LEN}",
            bytes.len()
        ));
    }
    let body = &bytes[..RECORD_LEN - 4];
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[RECORD_LEN - 4..]);
    let stored = u32::from_le_bytes(crc);
    let computed = checksum(body);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ));
    }
    if &body[0..4] != MAGIC || body[4] != LAYOUT_VERSION {
        return Err("not a progress record of a layout this build reads".into());
    }
    let new = get_value(&body[8..])?;
    let old = match body[5] {
        1 => None,
        2 => Some(get_value(&body[8 + VALUE_LEN..])?),
        n => return Err(format!("value count {n} is neither 1 nor 2")),
    };
    Ok(ProgressRecord { new, old })
}

/// Reads the record of `dir`: `Ok(None)` when the file does not exist or is empty, `Err` naming
/// what is wrong when it cannot be read or does not decode. An empty file is a record created
/// and never written (a kill between creating it and its first write at open; one write of the
/// whole record is never cut short by a kill): it counts as absent, which is damage only where
/// sled already holds Raft state.
pub fn read(dir: &Path) -> Result<Option<ProgressRecord>, String> {
    let path = dir.join(PROGRESS_FILE);
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let mut bytes = Vec::with_capacity(RECORD_LEN);
    f.by_ref()
        .take(RECORD_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    decode(&bytes).map(Some)
}

/// The open record file of a node directory, and what it holds.
pub(crate) struct ProgressFile {
    file: std::fs::File,
    written: Option<ProgressRecord>,
}

impl ProgressFile {
    /// Opens (creating if absent) the record file; `written` is what it is known to hold.
    pub(crate) fn open(
        dir: &Path,
        written: Option<ProgressRecord>,
    ) -> Result<ProgressFile, crate::Error> {
        let path = dir.join(PROGRESS_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| crate::io_err(&format!("open {}", path.display()), e))?;
        Ok(ProgressFile { file, written })
    }

    /// Writes `rec` unless the file already holds it. A plain write, no fsync (see the module doc).
    pub(crate) fn write(&mut self, rec: &ProgressRecord) -> std::io::Result<()> {
        if self.written.as_ref() == Some(rec) {
            return Ok(());
        }
        self.written = None;
        self.file.write_all_at(&encode(rec), 0)?;
        self.written = Some(*rec);
        Ok(())
    }
}

impl crate::Storage {
    /// The record's value for what this handle holds now.
    pub(crate) fn progress_now(&self) -> Progress {
        let snap = self.snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));
        let last_term = if self.last_index == snap.0 {
            snap.1
        } else {
            self.terms.get(self.last_index).unwrap_or(0)
        };
        Progress::new(&self.hard_state, last_term, self.last_index)
    }

    /// The record's value after `batch`, whose log ends at `last` after a snapshot at
    /// `snapshot` (index, term).
    pub(crate) fn progress_after<E: crate::AsEntryRef>(
        &self,
        batch: crate::BatchRef<'_, E>,
        snapshot: (u64, u64),
        last: u64,
    ) -> Progress {
        let hard_state = batch.hard_state.unwrap_or(self.hard_state);
        let last_entry = batch.entries.last().map(crate::AsEntryRef::entry_ref);
        let last_term = match last_entry {
            Some(e) => e.term,
            None if last == snapshot.0 => snapshot.1,
            None => self.terms.get(last).unwrap_or(0),
        };
        debug_assert!(last_entry.is_none_or(|e| e.index == last));
        Progress::new(&hard_state, last_term, last)
    }

    /// Writes the record; a failure makes the handle refuse further work, like a failed flush.
    pub(crate) fn write_progress(&mut self, rec: &ProgressRecord) -> Result<(), crate::Error> {
        if let Err(e) = self.progress.write(rec) {
            let err = crate::io_err(
                &format!(
                    "write the durable-progress record {}",
                    self.dir.join(PROGRESS_FILE).display()
                ),
                e,
            );
            self.poisoned = Some(err.to_string());
            return Err(err);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_record_file_reads_as_absent_and_a_short_one_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        std::fs::write(dir.path().join(PROGRESS_FILE), b"").unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        std::fs::write(dir.path().join(PROGRESS_FILE), b"RKVP").unwrap();
        assert!(read(dir.path()).is_err());
    }

    fn rec() -> ProgressRecord {
        ProgressRecord {
            new: Progress {
                term: 7,
                vote: Some(2),
                last_term: 6,
                last_index: 1 << 40,
                recovery: RecoveryMark::CatchingUp,
                incarnation: u64::MAX - 3,
            },
            old: Some(Progress {
                term: 5,
                vote: None,
                last_term: 5,
                last_index: 9,
                recovery: RecoveryMark::Probing,
                incarnation: 17,
            }),
        }
    }

    #[test]
    fn the_records_mark_is_the_value_that_owes_more_and_its_incarnation_the_highest() {
        let r = rec();
        assert_eq!(r.recovery(), RecoveryMark::Probing);
        assert_eq!(r.incarnation(), u64::MAX - 3);
        let one = ProgressRecord { old: None, ..r };
        assert_eq!(one.recovery(), RecoveryMark::CatchingUp);
        let mut ordinary = one;
        ordinary.new.recovery = RecoveryMark::Ordinary;
        assert_eq!(ordinary.recovery(), RecoveryMark::Ordinary);
        // A mark byte outside the three marks is named, even under a valid checksum.
        let mut bytes = encode(&one);
        bytes[8 + 33] = 7;
        let crc = checksum(&bytes[..RECORD_LEN - 4]);
        bytes[RECORD_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(decode(&bytes).unwrap_err().contains("recovering mark 7"));
    }

    #[test]
    fn round_trip_and_every_bit_flip_is_caught() {
        for r in [rec(), ProgressRecord { old: None, ..rec() }] {
            let bytes = encode(&r);
            assert_eq!(decode(&bytes), Ok(r));
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut bad = bytes;
                    bad[i] ^= 1 << bit;
                    assert!(decode(&bad).is_err(), "flip of bit {bit} in byte {i}");
                }
            }
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn hard_state_order_is_term_then_vote() {
        let p = rec().new;
        let hs = |term, vote| HardState {
            term,
            vote,
            ..HardState::default()
        };
        assert!(p.hard_state_below(&hs(6, Some(2))));
        assert!(p.hard_state_below(&hs(7, None)));
        assert!(p.hard_state_below(&hs(7, Some(3))));
        assert!(!p.hard_state_below(&hs(7, Some(2))));
        assert!(!p.hard_state_below(&hs(8, None)));
        let no_vote = Progress { vote: None, ..p };
        assert!(!no_vote.hard_state_below(&hs(7, None)));
        assert!(!no_vote.hard_state_below(&hs(7, Some(1))));
    }

    #[test]
    fn log_order_is_the_term_at_the_records_index() {
        let mut terms = Terms::default();
        terms.push(11, 3);
        terms.push(15, 4);
        let at = |last_term, last_index| Progress {
            term: 9,
            vote: None,
            last_term,
            last_index,
            ..Progress::default()
        };
        let snap = (10, 2);
        // Log [11, 20] after a snapshot at 10 term 2.
        assert!(!at(4, 20).log_below(snap, &terms, 20));
        assert!(!at(3, 12).log_below(snap, &terms, 20));
        assert!(!at(2, 10).log_below(snap, &terms, 20));
        assert!(!at(1, 4).log_below(snap, &terms, 20), "compacted");
        assert!(at(4, 21).log_below(snap, &terms, 20), "beyond the log");
        assert!(at(5, 20).log_below(snap, &terms, 20), "another term");
        assert!(at(3, 10).log_below(snap, &terms, 20), "snapshot term");
        assert!(at(1, 1).log_below((0, 0), &Terms::default(), 0));
        assert!(!at(0, 0).log_below((0, 0), &Terms::default(), 0));
    }
}
