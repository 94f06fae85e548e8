//! Read-only examination of a data directory, for `raftkv inspect`.
//!
//! Owns: making a private copy of the directory (sled opens for writing, so it never opens the
//! original), and reporting everything in the copy: format, identity, hard state, snapshot,
//! every log record with its classification, and the problems recovery would act on.
//! Must never: open, lock, create or change anything in the inspected directory. Works on a
//! directory a live node holds, since only the copy is opened.

use crate::scan::{self, RecordView, Status};
use crate::{
    codec, io_err, open_trees, precheck, read_meta, read_snapshot, remove_stale_generating, Error,
    Found, HardState, Identity, SnapshotMeta, SnapshotRecord, FORMAT_VERSION, KEY_FORMAT,
    KEY_HARD_STATE, KEY_IDENTITY, KEY_SNAP_META, LOG, META, SNAP,
};
use std::path::{Path, PathBuf};

/// A problem found in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub tree: &'static str,
    pub index: Option<u64>,
    pub detail: String,
    /// True when `Storage::open` would refuse to start; false for what recovery repairs (a torn
    /// tail above the commit index).
    pub fatal: bool,
}

/// The snapshot as stored.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    pub bytes: u64,
    pub chunks: u32,
}

/// Everything found in one data directory.
#[derive(Clone, Debug)]
pub struct Image {
    pub dir: PathBuf,
    pub format: Option<u32>,
    pub identity: Option<Identity>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotInfo>,
    /// Every record of the log tree in key order, classified.
    pub records: Vec<RecordView>,
    /// The log range recovery would keep.
    pub first_index: u64,
    pub last_index: u64,
    pub problems: Vec<Problem>,
}

impl Image {
    /// True when a problem would stop `Storage::open`.
    pub fn fatal(&self) -> bool {
        self.problems.iter().any(|p| p.fatal)
    }
    /// The recovered log's entries (status Ok), in order.
    pub fn log(&self) -> impl Iterator<Item = &crate::Entry> {
        self.records
            .iter()
            .filter(|r| r.status == Status::Ok)
            .filter_map(|r| r.entry.as_ref())
    }
}

struct TempCopy(PathBuf);

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to).map_err(|e| io_err(&format!("create {}", to.display()), e))?;
    let rd = std::fs::read_dir(from).map_err(|e| io_err(&format!("list {}", from.display()), e))?;
    for ent in rd {
        let ent = ent.map_err(|e| io_err(&format!("list {}", from.display()), e))?;
        let ty = ent
            .file_type()
            .map_err(|e| io_err(&format!("stat {}", ent.path().display()), e))?;
        let dst = to.join(ent.file_name());
        if ty.is_dir() {
            copy_tree(&ent.path(), &dst)?;
        } else if ty.is_file() {
            std::fs::copy(ent.path(), &dst)
                .map_err(|e| io_err(&format!("copy {}", ent.path().display()), e))?;
        }
    }
    Ok(())
}

/// Examines `dir` through a private copy; the original is only read.
pub fn examine(dir: &Path) -> Result<Image, Error> {
    if !dir.exists() {
        return Err(Error::NotADataDir {
            dir: dir.to_path_buf(),
            why: "it does not exist".into(),
        });
    }
    if let Found::Fresh = precheck(dir)? {
        return Err(Error::NotADataDir {
            dir: dir.to_path_buf(),
            why: "it is empty".into(),
        });
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = TempCopy(
        std::env::temp_dir().join(format!("raftkv-inspect-{}-{nanos}-{n}", std::process::id())),
    );
    copy_tree(dir, &tmp.0)?;
    remove_stale_generating(&tmp.0)?;
    let trees = open_trees(&tmp.0)?;
    let mut problems = vec![];
    let meta_problem = |key: &[u8], e: Error| Problem {
        tree: META,
        index: None,
        detail: format!("record `{}`: {e}", String::from_utf8_lossy(key)),
        fatal: true,
    };
    let format = match read_meta::<u32>(dir, &trees.meta, KEY_FORMAT) {
        Ok(Some(v)) if v > FORMAT_VERSION => {
            return Err(Error::NewerFormat {
                found: v,
                supported: FORMAT_VERSION,
            })
        }
        Ok(v) => v,
        Err(e) => {
            problems.push(meta_problem(KEY_FORMAT, e));
            None
        }
    };
    let hard_state = read_meta::<HardState>(dir, &trees.meta, KEY_HARD_STATE).unwrap_or_else(|e| {
        problems.push(meta_problem(KEY_HARD_STATE, e));
        None
    });
    let identity = read_meta::<Identity>(dir, &trees.meta, KEY_IDENTITY).unwrap_or_else(|e| {
        problems.push(meta_problem(KEY_IDENTITY, e));
        None
    });
    // The snapshot's metadata record alone (to scan the log against), then the full verification.
    let snap_rec: Option<SnapshotRecord> = match trees.snap.get(KEY_SNAP_META) {
        Ok(Some(v)) => codec::unframe(SNAP, KEY_SNAP_META, &v).ok(),
        _ => None,
    };
    if let Err(e) = read_snapshot(dir, &trees.snap, false) {
        let (index, detail) = match e {
            Error::Corruption { index, detail, .. } => (index, detail),
            other => (None, other.to_string()),
        };
        problems.push(Problem {
            tree: SNAP,
            index,
            detail,
            fatal: true,
        });
    }
    let snapshot = snap_rec.as_ref().map(|r| SnapshotInfo {
        meta: r.meta.clone(),
        bytes: r.len,
        chunks: r.chunks,
    });
    let commit = hard_state.map_or(0, |h| h.commit);
    let mut records = vec![];
    let s = scan::scan_log(
        &trees.log,
        snapshot.as_ref().map(|s| &s.meta),
        commit,
        Some(&mut records),
    )
    .map_err(|e| io_err("scan log copy", e))?;
    if let Some(b) = &s.fatal {
        problems.push(Problem {
            tree: LOG,
            index: Some(b.index),
            detail: format!(
                "{} (at or below the commit index {commit}: the node refuses to start)",
                b.detail
            ),
            fatal: true,
        });
    }
    if let Some(b) = &s.torn {
        problems.push(Problem {
            tree: LOG,
            index: Some(b.index),
            detail: format!(
                "torn tail: {} ({} record(s) from here on, above the commit index {commit}, are dropped on open)",
                b.detail, s.torn_dropped
            ),
            fatal: false,
        });
    }
    let snap_index = snapshot.as_ref().map_or(0, |s| s.meta.index);
    if s.fatal.is_none() && commit > s.last.max(snap_index) {
        problems.push(Problem {
            tree: LOG,
            index: Some(s.last + 1),
            detail: format!(
                "committed entry missing (commit index {commit}, log ends at {})",
                s.last
            ),
            fatal: true,
        });
    }
    if format.is_none() && (!trees.log.is_empty() || !trees.snap.is_empty()) {
        problems.push(Problem {
            tree: META,
            index: None,
            detail: "the format record is missing but the log or snapshot is not empty".into(),
            fatal: true,
        });
    }
    drop(trees);
    Ok(Image {
        dir: dir.to_path_buf(),
        format,
        identity,
        hard_state,
        snapshot,
        records,
        first_index: snap_index + 1,
        last_index: s.last,
        problems,
    })
}
