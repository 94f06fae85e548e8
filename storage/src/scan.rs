//! The log scan shared by recovery ([`crate::Storage::open`]) and inspection ([`crate::examine`]).
//!
//! Owns: the classification of every record of the `log` tree against the snapshot: good,
//! compaction leftover, conflicting with an installed snapshot, or damage. sled keeps each value
//! whole and a kill leaves it a clean prefix of its flushes, so there are no torn records: a record
//! that fails its checksum or does not decode, holds another index than its key, is missing between
//! or before intact records, or breaks the chain of terms (each record stores its predecessor's
//! term; the first entry after a snapshot chains to the snapshot's term) is damage wherever it is,
//! whatever the commit index says. Recovery stops at the first damage; the inspector's views go on.
//! Recovery reads and verifies the two halves of the log's key range on two threads, then classifies
//! every record in key order with the same code as the inspector's one-thread scan.
//! Must never: write; it only reads and reports, the caller decides what to repair.

use crate::codec;
use crate::damage::DamageKind;
use crate::{Entry, SnapshotMeta, Terms};

/// How one stored log record was classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Intact and part of the recovered log.
    Ok,
    /// At or below the snapshot index: a compaction leftover that recovery deletes.
    Stale,
    /// After a snapshot whose index holds an entry of another term: recovery deletes it.
    Conflicting,
    /// The first damage (a bad record, or the first missing index); the detail says what is wrong.
    Bad(String),
    /// After the first damage: recovery refuses the directory before it gets here.
    AfterBad,
}

/// One stored log record as the scan saw it.
#[derive(Clone, Debug)]
pub struct RecordView {
    /// The index from the key (`None` when the key is not 8 bytes).
    pub index: Option<u64>,
    /// The decoded entry when the record is intact.
    pub entry: Option<Entry>,
    pub status: Status,
}

/// The first damage the scan met.
#[derive(Clone, Debug)]
pub(crate) struct Bad {
    pub index: u64,
    pub kind: DamageKind,
    pub detail: String,
}

#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Last index of the recovered, contiguous log (snapshot index when it is empty).
    pub last: u64,
    pub terms: Terms,
    /// Keys a clean recovery deletes (compaction leftovers, a log an installed snapshot replaced).
    pub drop_keys: Vec<sled::IVec>,
    /// The first damage: recovery refuses the directory.
    pub damage: Option<Bad>,
}

/// What a decoded record says about itself: (index, term, stored previous term).
type RecordMeta = (u64, u64, u64);

/// What the classification needs from one record: its key and either the decoded record's
/// (index, term, previous term) or the decode error text.
struct Item {
    key: sled::IVec,
    meta: Result<RecordMeta, String>,
}

fn key_index(k: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(k).ok().map(u64::from_be_bytes)
}

/// Decodes one record; the entry is kept only when `keep` (the inspector's views).
fn decode(k: sled::IVec, v: &[u8], keep: bool) -> (Item, Option<Entry>) {
    let (meta, entry) = match codec::unframe_entry(&k, v) {
        Ok(r) => (
            Ok((r.entry.index, r.entry.term, r.prev_term)),
            if keep { Some(r.entry) } else { None },
        ),
        Err(e) => (Err(e.to_string()), None),
    };
    (Item { key: k, meta }, entry)
}

/// What is wrong with a record on its own (key, frame, checksum, decode, index), if anything.
fn own_problem(k: &[u8], idx: Option<u64>, meta: &Result<RecordMeta, String>) -> Option<String> {
    match (idx, meta) {
        (None, _) => Some(format!("a key of {} bytes is not a log index", k.len())),
        (Some(_), Err(e)) => Some(e.clone()),
        (Some(i), Ok((index, _, _))) if *index != i => {
            Some(format!("record holds index {index} under key {i}"))
        }
        _ => None,
    }
}

/// The sequential classification state, fed one record at a time in key order.
struct Classifier {
    s: Scan,
    snap_index: u64,
    snap_term: u64,
    has_snapshot: bool,
    expect: u64,
    prev_term: u64,
    conflict: bool,
}

impl Classifier {
    /// Where an intact record at `i` (past the snapshot) stands against the chain: the index
    /// expected next, the stored previous term, a term not below the one before it.
    fn chain_problem(&self, i: u64, term: u64, prev_term: u64) -> Option<Bad> {
        let expect = self.expect;
        let (index, kind, detail) = if i != expect {
            (
                expect,
                DamageKind::MissingRecord,
                format!("entry {expect} is missing (the next stored index is {i})"),
            )
        } else if prev_term != self.prev_term {
            let before = if i - 1 == self.snap_index && self.has_snapshot {
                format!("the snapshot at index {} has term", self.snap_index)
            } else {
                format!("entry {} has term", i - 1)
            };
            (
                i,
                DamageKind::BrokenChain,
                format!(
                    "the record stores previous term {prev_term} but {before} {}",
                    self.prev_term
                ),
            )
        } else if term < prev_term {
            (
                i,
                DamageKind::BrokenChain,
                format!("term {term} is lower than the term {prev_term} before it"),
            )
        } else {
            return None;
        };
        Some(Bad {
            index,
            kind,
            detail,
        })
    }

    /// Classifies one record; returns `false` when recovery must stop (damage found and no views
    /// are collected).
    fn feed(
        &mut self,
        item: Item,
        entry: Option<Entry>,
        views: &mut Option<&mut Vec<RecordView>>,
    ) -> bool {
        let Item { key: k, meta } = item;
        let idx = key_index(&k);
        let collecting = views.is_some();
        let mut view = |entry: Option<Entry>, status: Status| {
            if let Some(v) = views.as_deref_mut() {
                v.push(RecordView {
                    index: idx,
                    entry,
                    status,
                });
            }
        };
        let own = own_problem(&k, idx, &meta);
        if self.s.damage.is_some() {
            view(entry, Status::AfterBad);
            return true;
        }
        let problem = match (own, idx, meta) {
            (Some(detail), _, _) => Some(Bad {
                index: idx.unwrap_or(self.expect),
                kind: DamageKind::BadRecord,
                detail,
            }),
            (None, Some(i), Ok((_, term, _))) if i <= self.snap_index => {
                if self.has_snapshot && i == self.snap_index {
                    self.conflict = term != self.snap_term;
                }
                view(entry, Status::Stale);
                self.s.drop_keys.push(k);
                return true;
            }
            (None, _, _) if self.conflict => {
                view(entry, Status::Conflicting);
                self.s.drop_keys.push(k);
                return true;
            }
            (None, Some(i), Ok((_, term, prev_term))) => {
                let bad = self.chain_problem(i, term, prev_term);
                if bad.is_none() {
                    self.s.terms.push(i, term);
                    self.prev_term = term;
                    self.s.last = i;
                    self.expect = i + 1;
                    view(entry, Status::Ok);
                }
                bad
            }
            (None, _, _) => unreachable!("a record without a problem has an index and decodes"),
        };
        let Some(bad) = problem else {
            return true;
        };
        view(None, Status::Bad(bad.detail.clone()));
        self.s.damage = Some(bad);
        collecting
    }
}

/// A key between the first and the last 8-byte log keys, so recovery can read the two halves
/// of the log on two threads; `None` when the log is too small or its ends are not indices.
fn split_key(log: &sled::Tree) -> Result<Option<([u8; 8], u64)>, sled::Error> {
    let (Some((first, _)), Some((last, _))) = (log.first()?, log.last()?) else {
        return Ok(None);
    };
    match (key_index(&first), key_index(&last)) {
        (Some(a), Some(b)) if b > a.saturating_add(1) => {
            Ok(Some(((a + (b - a) / 2).to_be_bytes(), b)))
        }
        _ => Ok(None),
    }
}

pub(crate) fn scan_log(
    log: &sled::Tree,
    snapshot: Option<&SnapshotMeta>,
    views: Option<&mut Vec<RecordView>>,
) -> Result<Scan, sled::Error> {
    scan_log_with(log, snapshot, views, true)
}

/// `scan_log`, with the two-thread recovery read allowed or not (the test compares both).
fn scan_log_with(
    log: &sled::Tree,
    snapshot: Option<&SnapshotMeta>,
    mut views: Option<&mut Vec<RecordView>>,
    split: bool,
) -> Result<Scan, sled::Error> {
    let snap_index = snapshot.map_or(0, |s| s.index);
    let snap_term = snapshot.map_or(0, |s| s.term);
    let mut c = Classifier {
        s: Scan {
            last: snap_index,
            ..Scan::default()
        },
        snap_index,
        snap_term,
        has_snapshot: snapshot.is_some(),
        expect: snap_index + 1,
        prev_term: snap_term,
        conflict: false,
    };
    let collecting = views.is_some();
    let mid = if collecting || !split {
        None
    } else {
        split_key(log)?
    };
    let Some((mid, last)) = mid else {
        for kv in log.iter() {
            let (k, v) = kv?;
            let (item, entry) = decode(k, &v, collecting);
            if !c.feed(item, entry, &mut views) {
                break;
            }
        }
        return Ok(c.s);
    };
    // Recovery: a second thread reads, verifies and decodes the upper half into compact items
    // (no entry data) while this thread reads the lower half and classifies it as it goes; the
    // upper half is then classified in key order. `range(..mid)` and `range(mid..)` cover every
    // key exactly once, so the outcome is the sequential scan's.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let upper = scope.spawn(|| {
            // Reserve for the whole upper half at once: no doubling peaks on a big log.
            let span = last
                .saturating_sub(u64::from_be_bytes(mid))
                .saturating_add(1);
            let mut items = Vec::with_capacity(usize::try_from(span.min(1 << 24)).unwrap_or(0));
            for kv in log.range(mid..) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match kv {
                    Ok((k, v)) => items.push(decode(k, &v, false).0),
                    Err(e) => return (items, Some(e)),
                }
            }
            (items, None)
        });
        let mut go = true;
        for kv in log.range(..mid) {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            };
            if !c.feed(decode(k, &v, false).0, None, &mut views) {
                go = false;
                break;
            }
        }
        if !go {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (items, error) = match upper.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if go {
            for item in items {
                if !c.feed(item, None, &mut views) {
                    return Ok(c.s);
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(c.s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EntryKind, LOG};

    /// A small deterministic generator (xorshift) so every case can be replayed.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn put_entry(log: &sled::Tree, key: u64, index: u64, term: u64, prev_term: u64) {
        let e = Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![1, 2, 3],
        };
        let k = key.to_be_bytes();
        log.insert(k, codec::frame_entry(&k, prev_term, &e))
            .unwrap();
    }

    /// The two-thread recovery scan classifies every damaged log exactly as the one-thread scan:
    /// odd key lengths, holes, flipped bytes, wrong indices, falling terms, stale and
    /// conflicting records around a snapshot, a broken chain of terms, on either side of the
    /// split key.
    #[test]
    fn split_scan_matches_the_sequential_scan() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut split_used = 0;
        for case in 0..400 {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let log = db.open_tree(LOG).unwrap();
            let first = if rng.below(2) == 0 {
                1
            } else {
                1 + rng.below(20)
            };
            let n = 2 + rng.below(200);
            let mut term = 1;
            for i in first..first + n {
                let prev = if i == first { 0 } else { term };
                if rng.below(30) == 0 {
                    term += 1;
                }
                put_entry(&log, i, i, term, prev);
            }
            for _ in 0..rng.below(4) {
                let i = first + rng.below(n);
                match rng.below(7) {
                    0 => {
                        log.remove(i.to_be_bytes()).unwrap();
                    }
                    1 => {
                        let k = i.to_be_bytes();
                        if let Some(v) = log.get(k).unwrap() {
                            let mut v = v.to_vec();
                            let at = rng.below(v.len() as u64) as usize;
                            v[at] ^= 0x10;
                            log.insert(k, v).unwrap();
                        }
                    }
                    2 => put_entry(&log, i, i + 1, term, term),
                    3 => put_entry(&log, i, i, 0, 0),
                    5 => put_entry(&log, i, i, term, term + 1),
                    4 => {
                        let len = [1usize, 7, 9][rng.below(3) as usize];
                        let k = &i.to_be_bytes().repeat(2)[..len];
                        log.insert(k, vec![0u8; 4]).unwrap();
                    }
                    _ => {
                        let k = i.to_be_bytes();
                        log.insert(k, vec![9u8; 3]).unwrap();
                    }
                }
            }
            let snapshot = (rng.below(3) == 0).then(|| SnapshotMeta {
                index: first + rng.below(n),
                term: 1 + rng.below(2),
                voters: vec![1],
            });
            if split_key(&log).unwrap().is_some() {
                split_used += 1;
            }
            let two = scan_log_with(&log, snapshot.as_ref(), None, true).unwrap();
            let one = scan_log_with(&log, snapshot.as_ref(), None, false).unwrap();
            assert_eq!(format!("{two:?}"), format!("{one:?}"), "case {case}");
        }
        assert!(split_used > 300, "the split path ran in {split_used} cases");
    }
}
