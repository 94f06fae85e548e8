//! The log scan shared by recovery ([`crate::Storage::open`]) and inspection ([`crate::examine`]).
//!
//! Owns: the classification of every record of the `log` tree against the snapshot and the commit
//! index (DESIGN §3): good, compaction leftover, conflicting with an installed snapshot, the first
//! bad record (fatal at or below the commit index, a torn tail above it) and what follows it.
//! Must never: write; it only reads and reports, the caller decides what to repair.

use crate::codec;
use crate::{Entry, SnapshotMeta, Terms, LOG};

/// How one stored log record was classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Intact and part of the recovered log.
    Ok,
    /// At or below the snapshot index: a compaction leftover that recovery deletes.
    Stale,
    /// After a snapshot whose index holds an entry of another term: recovery deletes it.
    Conflicting,
    /// The first bad record (or the first missing index); the detail says what is wrong.
    Bad(String),
    /// After the first bad record: dropped with the torn tail.
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

#[derive(Clone, Debug)]
pub(crate) struct Bad {
    pub index: u64,
    pub detail: String,
}

#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Last index of the recovered, contiguous log (snapshot index when it is empty).
    pub last: u64,
    pub terms: Terms,
    /// Keys recovery deletes (stale, conflicting, torn tail).
    pub drop_keys: Vec<sled::IVec>,
    pub torn_dropped: u64,
    /// First bad record at or below the commit index: refuse to start.
    pub fatal: Option<Bad>,
    /// First bad record above the commit index: the torn tail starts here.
    pub torn: Option<Bad>,
}

pub(crate) fn scan_log(
    log: &sled::Tree,
    snapshot: Option<&SnapshotMeta>,
    commit: u64,
    mut views: Option<&mut Vec<RecordView>>,
) -> Result<Scan, sled::Error> {
    let snap_index = snapshot.map_or(0, |s| s.index);
    let snap_term = snapshot.map_or(0, |s| s.term);
    let mut s = Scan {
        last: snap_index,
        ..Scan::default()
    };
    let mut expect = snap_index + 1;
    let mut prev_term = snap_term;
    let mut conflict = false;
    let collecting = views.is_some();
    let mut view = |index: Option<u64>, entry: Option<Entry>, status: Status| {
        if let Some(v) = views.as_deref_mut() {
            v.push(RecordView {
                index,
                entry,
                status,
            });
        }
    };
    for kv in log.iter() {
        let (k, v) = kv?;
        let idx = <[u8; 8]>::try_from(k.as_ref()).ok().map(u64::from_be_bytes);
        let decoded = || codec::unframe::<Entry>(LOG, &k, &v);
        if let Some(i) = idx {
            if i <= snap_index {
                if snapshot.is_some() && i == snap_index {
                    if let Ok(e) = decoded() {
                        conflict = e.term != snap_term;
                    }
                }
                view(idx, decoded().ok(), Status::Stale);
                s.drop_keys.push(k);
                continue;
            }
        }
        if conflict {
            view(idx, decoded().ok(), Status::Conflicting);
            s.drop_keys.push(k);
            continue;
        }
        if s.fatal.is_some() || s.torn.is_some() {
            if collecting {
                view(idx, decoded().ok(), Status::AfterBad);
            }
            s.drop_keys.push(k);
            s.torn_dropped += 1;
            continue;
        }
        let problem = match idx {
            None => Some((
                expect,
                format!("a key of {} bytes is not a log index", k.len()),
            )),
            Some(i) if i != expect => Some((
                expect,
                format!("entry {expect} is missing (the next stored index is {i})"),
            )),
            Some(i) => match decoded() {
                Err(e) => Some((i, e.to_string())),
                Ok(e) if e.index != i => {
                    Some((i, format!("record holds index {} under key {i}", e.index)))
                }
                Ok(e) if e.term < prev_term => Some((
                    i,
                    format!(
                        "term {} is lower than the term {prev_term} before it",
                        e.term
                    ),
                )),
                Ok(e) => {
                    s.terms.push(i, e.term);
                    prev_term = e.term;
                    s.last = i;
                    expect = i + 1;
                    view(idx, if collecting { Some(e) } else { None }, Status::Ok);
                    None
                }
            },
        };
        if let Some((index, detail)) = problem {
            view(idx, None, Status::Bad(detail.clone()));
            let bad = Bad { index, detail };
            if index <= commit {
                s.fatal = Some(bad);
                if !collecting {
                    return Ok(s);
                }
            } else {
                s.torn = Some(bad);
            }
            s.drop_keys.push(k);
            s.torn_dropped += 1;
        }
    }
    Ok(s)
}
