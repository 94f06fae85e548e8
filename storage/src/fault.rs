//! Fault injection for tests: damages a closed data directory the way disks and bugs do.
//!
//! Owns: byte flips, records moved under another key, truncated records, damaged snapshot
//! chunks, a forged format version, a record chained to another term, an older hard state, and
//! the points where a test can stop `persist` as a kill would, a damaged or missing
//! durable-progress record, and a wiped directory. Used by this crate's tests, the inspector's
//! tests, and the bench's `--disk-faults` on the directories of the nodes it runs itself.
//! Must never: be called by the node or any tool on a real data directory.

use crate::{
    chunk_key, codec, open_trees, remove_stale_generating, Error, KEY_FORMAT, MARKER_FILE, META,
};
use std::path::Path;

fn with_trees<T>(
    dir: &Path,
    f: impl FnOnce(&crate::Trees) -> Result<T, sled::Error>,
) -> Result<T, Error> {
    remove_stale_generating(dir)?;
    let t = open_when_unlocked(dir)?;
    let r = f(&t).map_err(|e| Error::Io(e.to_string()))?;
    t.db.flush().map_err(|e| Error::Io(e.to_string()))?;
    Ok(r)
}

/// Opens the trees, waiting up to two seconds for sled's lock: sled releases it from a background
/// thread shortly after the last handle of an earlier open in this process is dropped, so two
/// edits in a row would otherwise fail now and then with `Locked`.
fn open_when_unlocked(dir: &Path) -> Result<crate::Trees, Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match open_trees(dir) {
            Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn missing(what: String) -> Error {
    Error::Invalid(format!("fault injection: {what} not found"))
}

/// XORs byte `offset` of the log record at `index` with `mask`.
pub fn flip_log_byte(dir: &Path, index: u64, offset: usize, mask: u8) -> Result<(), Error> {
    let key = index.to_be_bytes();
    let ok = with_trees(dir, |t| {
        let Some(v) = t.log.get(key)? else {
            return Ok(false);
        };
        let mut v = v.to_vec();
        let at = offset % v.len().max(1);
        if let Some(b) = v.get_mut(at) {
            *b ^= mask;
        }
        t.log.insert(key, v)?;
        Ok(true)
    })?;
    if ok {
        Ok(())
    } else {
        Err(missing(format!("log record {index}")))
    }
}

/// Stores the log record of index `from` under key `to` as well (a record under the wrong key).
pub fn copy_log_record(dir: &Path, from: u64, to: u64) -> Result<(), Error> {
    let ok = with_trees(dir, |t| {
        let Some(v) = t.log.get(from.to_be_bytes())? else {
            return Ok(false);
        };
        t.log.insert(to.to_be_bytes(), v)?;
        Ok(true)
    })?;
    if ok {
        Ok(())
    } else {
        Err(missing(format!("log record {from}")))
    }
}

/// Keeps only the first `keep` bytes of the log record at `index` (a torn write).
pub fn truncate_log_record(dir: &Path, index: u64, keep: usize) -> Result<(), Error> {
    let key = index.to_be_bytes();
    let ok = with_trees(dir, |t| {
        let Some(v) = t.log.get(key)? else {
            return Ok(false);
        };
        t.log.insert(key, &v[..keep.min(v.len())])?;
        Ok(true)
    })?;
    if ok {
        Ok(())
    } else {
        Err(missing(format!("log record {index}")))
    }
}

/// Removes the log record at `index` (a hole).
pub fn remove_log_record(dir: &Path, index: u64) -> Result<(), Error> {
    with_trees(dir, |t| t.log.remove(index.to_be_bytes()).map(|_| ()))
}

/// XORs byte `offset` of snapshot chunk `chunk` with `mask`.
pub fn flip_snapshot_byte(dir: &Path, chunk: u32, offset: usize, mask: u8) -> Result<(), Error> {
    let key = chunk_key(chunk);
    let ok = with_trees(dir, |t| {
        let Some(v) = t.snap.get(&key)? else {
            return Ok(false);
        };
        let mut v = v.to_vec();
        let at = offset % v.len().max(1);
        if let Some(b) = v.get_mut(at) {
            *b ^= mask;
        }
        t.snap.insert(&key, v)?;
        Ok(true)
    })?;
    if ok {
        Ok(())
    } else {
        Err(missing(format!("snapshot chunk {chunk}")))
    }
}

/// Writes `version` as the format both in the `meta` tree and in the marker file.
pub fn set_format(dir: &Path, version: u32) -> Result<(), Error> {
    with_trees(dir, |t| {
        t.meta
            .insert(KEY_FORMAT, codec::frame(META, KEY_FORMAT, &version))
            .map(|_| ())
    })?;
    std::fs::write(
        dir.join(MARKER_FILE),
        format!("raftkv-storage format {version}\n"),
    )
    .map_err(|e| Error::Io(e.to_string()))?;
    Ok(())
}

/// Writes only the snapshot tree, as a crash right after the first part of a snapshot install
/// leaves it (the log and the hard state are not yet updated).
pub fn write_snapshot_only(
    dir: &Path,
    meta: &crate::SnapshotMeta,
    data: &[u8],
) -> Result<(), Error> {
    with_trees(dir, |t| {
        let b = crate::snapshot_batch(&t.snap, meta, data)?;
        t.snap.apply_batch(b)
    })
}

/// Rewrites the log record at `index` intact (a valid checksum) but storing `prev_term` as the
/// term of the entry before it: a record the chain of terms must catch.
pub fn set_log_prev_term(dir: &Path, index: u64, prev_term: u64) -> Result<(), Error> {
    let key = index.to_be_bytes();
    let ok = with_trees(dir, |t| {
        let Some(v) = t.log.get(key)? else {
            return Ok(false);
        };
        let Ok(rec) = codec::unframe_entry(&key, &v) else {
            return Ok(false);
        };
        t.log
            .insert(key, codec::frame_entry(&key, prev_term, &rec.entry))?;
        Ok(true)
    })?;
    if ok {
        Ok(())
    } else {
        Err(missing(format!("intact log record {index}")))
    }
}

/// Writes `hs` as the stored hard state, intact (a rolled-back or misdirected write).
pub fn set_hard_state(dir: &Path, hs: &crate::HardState) -> Result<(), Error> {
    with_trees(dir, |t| {
        t.meta
            .insert(
                crate::KEY_HARD_STATE,
                codec::frame(META, crate::KEY_HARD_STATE, hs),
            )
            .map(|_| ())
    })
}

/// Where [`stop_persist_at`] makes the next `persist` of this process stop, as a kill there would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StopPoint {
    /// After the two-value durable-progress record a truncation or snapshot install writes
    /// first, before sled changes.
    BeforeSled = 1,
    /// After sled's flush, before the durable-progress record of the step.
    BeforeProgress = 2,
    /// After the snapshot tree's batch, before the log tree's: a kill there leaves sled a prefix
    /// holding the new snapshot and the old log (the stop flushes what was written, as the worst
    /// such prefix).
    BetweenSnapshotAndLog = 3,
}

static STOP_AT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Makes the next `persist` (in any handle of this process) return an error at `point`, leaving
/// the directory as a kill there would; the switch then clears itself. For a test binary that
/// runs one test at a time.
pub fn stop_persist_at(point: StopPoint) {
    STOP_AT.store(point as u8, std::sync::atomic::Ordering::SeqCst);
}

/// True when a test armed a stop at `point` (so `persist` can make its prefix durable first).
pub(crate) fn stop_armed(point: StopPoint) -> bool {
    STOP_AT.load(std::sync::atomic::Ordering::Relaxed) == point as u8
}

/// Called by `persist` at each point; an error when a test stopped it there.
pub(crate) fn stop_point(point: StopPoint) -> Result<(), Error> {
    let here = point as u8;
    let armed = STOP_AT.load(std::sync::atomic::Ordering::Relaxed);
    if armed == here
        && STOP_AT
            .compare_exchange(
                here,
                0,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            )
            .is_ok()
    {
        return Err(Error::Io(format!(
            "fault injection: persist stopped at {point:?}"
        )));
    }
    Ok(())
}

/// XORs byte `offset` of the `meta` record `key` (`hard_state`, `identity`, `format`) with `mask`.
pub fn flip_meta_byte(dir: &Path, key: &str, offset: usize, mask: u8) -> Result<(), Error> {
    let ok = with_trees(dir, |t| {
        let Some(v) = t.meta.get(key.as_bytes())? else {
            return Ok(false);
        };
        let mut v = v.to_vec();
        let at = offset % v.len().max(1);
        v[at] ^= mask;
        t.meta.insert(key.as_bytes(), v)?;
        Ok(true)
    })?;
    if ok {
        Ok(())
    } else {
        Err(missing(format!("meta record `{key}`")))
    }
}

/// XORs byte `offset` (modulo the file's length) of the durable-progress record file with
/// `mask`: a damaged record, which a start must take for damage, never for an absent record.
pub fn flip_progress_byte(dir: &Path, offset: usize, mask: u8) -> Result<(), Error> {
    let path = dir.join(crate::progress::PROGRESS_FILE);
    let mut bytes = match std::fs::read(&path) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return Err(missing(format!("a written {}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(missing(path.display().to_string()))
        }
        Err(e) => return Err(crate::io_err(&format!("read {}", path.display()), e)),
    };
    let at = offset % bytes.len();
    bytes[at] ^= mask;
    std::fs::write(&path, bytes).map_err(|e| crate::io_err(&format!("write {}", path.display()), e))
}

/// Removes the durable-progress record file (a lost file beside sled's, or a write of it that
/// never reached the disk).
pub fn remove_progress_record(dir: &Path) -> Result<(), Error> {
    let path = dir.join(crate::progress::PROGRESS_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(missing(path.display().to_string()))
        }
        Err(e) => Err(crate::io_err(&format!("remove {}", path.display()), e)),
    }
}

/// Removes everything inside `dir` and keeps the directory itself, as a replaced disk leaves it.
/// Returns how many entries (files and subdirectories) it removed.
pub fn wipe_dir(dir: &Path) -> Result<usize, Error> {
    let list = |e| crate::io_err(&format!("list {}", dir.display()), e);
    let mut removed = 0;
    for ent in std::fs::read_dir(dir).map_err(list)? {
        let path = ent.map_err(list)?.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| crate::io_err(&format!("remove {}", path.display()), e))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{progress, HardState, Storage, WriteBatch};

    /// A directory with a hard state (and so a durable-progress record).
    fn build(dir: &Path) {
        let (mut st, _) = Storage::open(dir).unwrap();
        st.persist(&WriteBatch {
            snapshot: None,
            entries: vec![],
            hard_state: Some(HardState {
                term: 3,
                vote: Some(1),
                commit: 0,
                ..HardState::default()
            }),
        })
        .unwrap();
    }

    #[test]
    fn the_progress_record_can_be_damaged_or_removed_and_a_directory_wiped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n1");
        build(&dir);
        assert_eq!(progress::read(&dir).unwrap().unwrap().new.term, 3);
        flip_progress_byte(&dir, 9, 0x01).unwrap();
        let e = progress::read(&dir).unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");
        remove_progress_record(&dir).unwrap();
        assert_eq!(progress::read(&dir).unwrap(), None);
        let e = flip_progress_byte(&dir, 0, 1).unwrap_err().to_string();
        assert!(e.contains("raftkv-progress not found"), "{e}");
        assert!(remove_progress_record(&dir).is_err(), "nothing to remove");
        let entries = std::fs::read_dir(&dir).unwrap().count();
        assert!(entries > 0);
        assert_eq!(wipe_dir(&dir).unwrap(), entries);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "kept, empty");
    }
}
