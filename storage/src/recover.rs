//! Recovery: what [`crate::Storage::open`] does with a node directory.
//!
//! Owns: reading every record a start needs (format, identity, hard state, snapshot, the whole
//! log, the durable-progress record), deciding whether the directory is damaged, and repairing what
//! a kill can leave in a clean directory. sled keeps each value whole and a kill -9 leaves it a
//! clean prefix of its flushes, so there are no torn records: a record that fails its checksum or
//! does not decode is damage wherever it is, whatever the commit index says. So are a broken chain
//! of terms, a bad hard state or snapshot chunk, a directory sled cannot open, a missing or damaged
//! durable-progress record in a directory that holds Raft state, and a log or hard state below that
//! record. A log that simply ends early is fine unless the record says more was durable.
//! What a kill can leave, and a clean open repairs: compaction leftovers at or below the snapshot,
//! the old log after a snapshot install that had not yet replaced it, entries of a term newer than
//! the stored hard state (the term is raised and the vote cleared: no vote in that term was durable),
//! and two copies of the recovering mark that disagree (a kill between sled's flush and the
//! record's write): both then hold the mark that owes more and the higher incarnation, so an open
//! never clears a mark; only a persist of a hard state marked ordinary does.
//! Must never: write a byte of sled's records or of the progress record when it found damage (it
//! returns [`Error::Damaged`] and puts back the files sled's open rewrote), or take a damaged
//! record for the end of the log.

use crate::preserve::Kept;
use crate::progress::{self, Progress, ProgressFile, ProgressRecord};
use crate::{
    codec, open_trees, precheck, probe_lock, read_meta, read_snapshot, remove_stale_generating,
    scan, sled_err, write_marker, Damage, DamageKind, Error, Found, HardState, Identity, Recovered,
    SnapshotMeta, Storage, Trees, FORMAT_VERSION, KEY_FORMAT, KEY_HARD_STATE, KEY_IDENTITY, LOG,
    META,
};
use std::path::Path;

/// What is known intact so far, to go into a damage report.
struct Known {
    node: Option<String>,
    hard_state: Option<HardState>,
    progress: Option<ProgressRecord>,
}

impl Known {
    /// Completes a damage report with what was read intact before it was found.
    fn report(&self, e: Error) -> Error {
        match e {
            Error::Damaged(mut d) => {
                d.node = d.node.take().or_else(|| self.node.clone());
                d.hard_state = d.hard_state.or(self.hard_state);
                d.progress = d.progress.or(self.progress);
                Error::Damaged(d)
            }
            other => other,
        }
    }
}

fn damaged(
    dir: &Path,
    tree: &'static str,
    index: Option<u64>,
    kind: DamageKind,
    detail: String,
) -> Error {
    Error::Damaged(Box::new(Damage::new(dir, tree, index, kind, detail)))
}

/// Everything a clean directory holds, read and checked.
pub(crate) struct Clean {
    write_format: bool,
    identity: Option<Identity>,
    stored_hs: Option<HardState>,
    snapshot: Option<SnapshotMeta>,
    scan: scan::Scan,
}

pub(crate) fn open(dir: &Path) -> Result<(Storage, Recovered), Error> {
    if matches!(precheck(dir)?, Found::Fresh) {
        std::fs::create_dir_all(dir).map_err(|e| Error::NotADataDir {
            dir: dir.to_path_buf(),
            why: format!("cannot create it: {e}"),
        })?;
        write_marker(dir)?;
    } else {
        probe_lock(dir)?;
    }
    remove_stale_generating(dir)?;
    // The record lives outside sled's files: reading it first changes nothing.
    let record = progress::read(dir);
    let mut known = Known {
        node: None,
        hard_state: None,
        progress: record.as_ref().ok().copied().flatten(),
    };
    // sled rewrites its own index file on every open: keep the small files to put them back.
    let kept = Kept::take(dir)?;
    let trees = match open_trees(dir) {
        Ok(trees) => trees,
        Err(e) => return Err(kept.restore(known.report(e))),
    };
    let checked = read_all(dir, &trees, &mut known).and_then(|found| {
        let sled_state = SledState {
            snapshot: found.snapshot.as_ref(),
            scan: &found.scan,
            hard_state: found.stored_hs,
            any: found.stored_hs.is_some() || found.snapshot.is_some() || !trees.log.is_empty(),
        };
        check_progress(dir, &sled_state, record)?;
        Ok(found)
    });
    match checked {
        Ok(found) => repair_and_open(dir, trees, found, known.progress),
        Err(e) => {
            drop(trees);
            Err(kept.restore(known.report(e)))
        }
    }
}

/// Reads and checks format, identity, hard state, snapshot and log; the first damage is returned.
fn read_all(dir: &Path, trees: &Trees, known: &mut Known) -> Result<Clean, Error> {
    let write_format = match read_meta::<u32>(dir, &trees.meta, KEY_FORMAT)? {
        Some(v) if v > FORMAT_VERSION => {
            return Err(Error::NewerFormat {
                found: v,
                supported: FORMAT_VERSION,
            })
        }
        Some(v) if v < FORMAT_VERSION => {
            return Err(Error::OldFormat {
                found: v,
                supported: FORMAT_VERSION,
            })
        }
        Some(_) => false,
        None if !trees.log.is_empty() || !trees.snap.is_empty() => {
            let detail = "the format record is missing but the log or snapshot is not empty";
            return Err(damaged(
                dir,
                META,
                None,
                DamageKind::MissingRecord,
                detail.into(),
            ));
        }
        None => true,
    };
    let identity: Option<Identity> = read_meta(dir, &trees.meta, KEY_IDENTITY)?;
    known.node = identity.as_ref().map(|id| id.node.clone());
    let stored_hs: Option<HardState> = read_meta(dir, &trees.meta, KEY_HARD_STATE)?;
    known.hard_state = stored_hs;
    let snapshot = read_snapshot(dir, &trees.snap, false)?.map(|(m, _)| m);
    let scan = scan::scan_log(&trees.log, snapshot.as_ref(), None)
        .map_err(|e| sled_err(dir, "scan log", e))?;
    if let Some(bad) = &scan.damage {
        return Err(damaged(
            dir,
            LOG,
            Some(bad.index),
            bad.kind,
            bad.detail.clone(),
        ));
    }
    let commit = stored_hs.map_or(0, |h| h.commit);
    if commit > scan.last {
        let detail = format!(
            "committed entry missing (commit index {commit}, log ends at {})",
            scan.last
        );
        return Err(damaged(
            dir,
            LOG,
            Some(scan.last + 1),
            DamageKind::MissingRecord,
            detail,
        ));
    }
    Ok(Clean {
        write_format,
        identity,
        stored_hs,
        snapshot,
        scan,
    })
}

/// What sled holds, as the durable-progress record is checked against it.
pub(crate) struct SledState<'a> {
    pub snapshot: Option<&'a SnapshotMeta>,
    /// The log scan (its intact prefix, when the log is damaged).
    pub scan: &'a scan::Scan,
    /// The stored hard state.
    pub hard_state: Option<HardState>,
    /// True when sled holds any Raft state (a hard state, a snapshot, a log record).
    pub any: bool,
}

/// The durable-progress record against what sled holds: missing (in a directory with Raft state)
/// or damaged is damage, and so is a log or hard state below every value the record holds.
pub(crate) fn check_progress(
    dir: &Path,
    found: &SledState,
    record: Result<Option<ProgressRecord>, String>,
) -> Result<(), Error> {
    let tree = "progress";
    let has_state = found.any;
    let rec = match record {
        Err(why) => return Err(damaged(dir, tree, None, DamageKind::ProgressDamaged, why)),
        Ok(None) if has_state => {
            let detail = format!(
                "{} is missing but the directory holds a hard state, a snapshot or a log",
                progress::PROGRESS_FILE
            );
            return Err(damaged(
                dir,
                tree,
                None,
                DamageKind::ProgressMissing,
                detail,
            ));
        }
        Ok(None) => return Ok(()),
        Ok(Some(rec)) => rec,
    };
    let snap = found
        .snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.index, s.term));
    let (terms, last) = (&found.scan.terms, found.scan.last);
    if rec.values().all(|v| v.log_below(snap, terms, last)) {
        let v = rec.new;
        let held = if last == 0 {
            Some(0)
        } else {
            held_term(found, v.last_index)
        };
        let detail = format!(
            "the record says entry {} of term {} was durable; the log ends at {last} and holds {} there{}",
            v.last_index,
            v.last_term,
            held.map_or("nothing".into(), |t| format!("term {t}")),
            old_value(&rec)
        );
        return Err(damaged(
            dir,
            LOG,
            Some(v.last_index),
            DamageKind::LogBelowProgress,
            detail,
        ));
    }
    let hs = found.hard_state.unwrap_or_default();
    if rec.values().all(|v| v.hard_state_below(&hs)) {
        let v = rec.new;
        let detail = format!(
            "the hard state has term {} vote {:?}, the record term {} vote {:?}{}",
            hs.term,
            hs.vote,
            v.term,
            v.vote,
            old_value(&rec)
        );
        return Err(damaged(
            dir,
            META,
            None,
            DamageKind::HardStateBelowProgress,
            detail,
        ));
    }
    Ok(())
}

fn held_term(found: &SledState, index: u64) -> Option<u64> {
    match &found.snapshot {
        Some(s) if s.index == index => Some(s.term),
        _ if index > found.scan.last => None,
        _ => found.scan.terms.get(index),
    }
}

fn old_value(rec: &ProgressRecord) -> String {
    match &rec.old {
        Some(o) => format!(
            " (nor the value before the step: term {} vote {:?}, entry {} of term {})",
            o.term, o.vote, o.last_index, o.last_term
        ),
        None => String::new(),
    }
}

/// A clean directory: delete compaction leftovers and a replaced log, raise the term to the log's,
/// flush, write the progress record for what is now durable, and build the handle.
fn repair_and_open(
    dir: &Path,
    trees: Trees,
    found: Clean,
    record: Option<ProgressRecord>,
) -> Result<(Storage, Recovered), Error> {
    let Clean {
        write_format,
        identity,
        stored_hs,
        snapshot,
        scan,
    } = found;
    if write_format {
        trees
            .meta
            .insert(KEY_FORMAT, codec::frame(META, KEY_FORMAT, &FORMAT_VERSION))
            .map_err(|e| sled_err(dir, "write format", e))?;
    }
    if !scan.drop_keys.is_empty() {
        let mut b = sled::Batch::default();
        for k in scan.drop_keys.iter() {
            b.remove(k.clone());
        }
        trees
            .log
            .apply_batch(b)
            .map_err(|e| sled_err(dir, "drop compaction leftovers", e))?;
    }
    let snap_index = snapshot.as_ref().map_or(0, |s| s.index);
    let snap_term = snapshot.as_ref().map_or(0, |s| s.term);
    let last_term = scan.terms.get(scan.last).unwrap_or(snap_term);
    let mut hs = stored_hs.unwrap_or_default();
    if let Some(rec) = &record {
        hs.recovery = hs.recovery.worst(rec.recovery());
        hs.incarnation = hs.incarnation.max(rec.incarnation());
    }
    if last_term > hs.term {
        // Entries of a newer term reached the log in a step whose hard state did not: the node
        // cannot have voted in that term durably, so the vote is empty.
        hs.term = last_term;
        hs.vote = None;
    }
    hs.commit = hs.commit.max(snap_index);
    if Some(hs) != stored_hs && (stored_hs.is_some() || hs != HardState::default()) {
        trees
            .meta
            .insert(KEY_HARD_STATE, codec::frame(META, KEY_HARD_STATE, &hs))
            .map_err(|e| sled_err(dir, "write hard state", e))?;
    }
    trees
        .db
        .flush()
        .map_err(|e| sled_err(dir, "flush after recovery", e))?;
    let mut progress = ProgressFile::open(dir, record)?;
    let now = ProgressRecord {
        new: Progress::new(&hs, last_term, scan.last),
        old: None,
    };
    // A directory without Raft state gets its record with its first hard state or entry.
    let holds_state = stored_hs.is_some() || snapshot.is_some() || scan.last > 0;
    if holds_state || record.is_some() {
        progress.write(&now).map_err(|e| {
            crate::io_err(
                &format!("write {}", dir.join(progress::PROGRESS_FILE).display()),
                e,
            )
        })?;
    }
    let rec = Recovered {
        hard_state: hs,
        snapshot: snapshot.clone(),
        first_index: snap_index + 1,
        last_index: scan.last,
        identity,
        hard_state_stored: stored_hs.is_some(),
        progress: record,
    };
    let st = Storage {
        dir: dir.to_path_buf(),
        trees,
        first_index: snap_index + 1,
        last_index: scan.last,
        terms: scan.terms,
        snapshot,
        hard_state: hs,
        progress,
        poisoned: None,
    };
    Ok((st, rec))
}
