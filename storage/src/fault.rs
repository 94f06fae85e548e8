//! Fault injection for tests: damages a closed data directory the way disks and bugs do.
//!
//! Owns: byte flips, records moved under another key, truncated records, damaged snapshot
//! chunks, a forged format version. Used by this crate's tests and by the inspector's tests.
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
