//! Read-only examination of a data directory, for `raftkv inspect`.
//!
//! Owns: making a private copy of the directory (sled opens for writing, so it never opens the
//! original), and reporting everything in the copy: format, identity, hard state, snapshot (its
//! data on request), the durable-progress record, every log record with its classification, the
//! damage that makes `Storage::open` refuse the directory, every damaged log index (a bad record,
//! a missing one, a broken chain of terms), and on request a raw walk over every stored record of
//! every tree; and, for tests that must show a directory unchanged, its whole [`Contents`].
//! A copy sled cannot open (or panics on) is reported as an image holding sled's message.
//! Must never: open, lock, create or change anything in the inspected directory. Works on a
//! directory a live node holds, since only the copy is opened.

use crate::codec::LogRecord;
use crate::progress::{self, ProgressRecord};
use crate::scan::{self, RecordView, Status};
use crate::{
    codec, io_err, open_trees, precheck, read_meta, read_snapshot, recover,
    remove_stale_generating, Error, Found, HardState, Identity, SnapshotMeta, SnapshotRecord,
    Trees, FORMAT_VERSION, KEY_CHUNK_PREFIX, KEY_FORMAT, KEY_HARD_STATE, KEY_IDENTITY,
    KEY_SNAP_META, LOG, META, SNAP,
};
use std::path::{Path, PathBuf};

/// A problem found in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub tree: &'static str,
    pub index: Option<u64>,
    pub detail: String,
    /// True when `Storage::open` would refuse the directory (every damage is; kept so readers of
    /// the JSON output need not change).
    pub fatal: bool,
}

/// The snapshot as stored.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    pub bytes: u64,
    pub chunks: u32,
}

/// What [`examine_with`] reads besides the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Load the snapshot's data (verified), to rebuild the state machine from it.
    pub snapshot_data: bool,
    /// Walk every stored record of every tree ([`Image::raw`]).
    pub raw: bool,
}

/// One stored record as the raw walk saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub tree: String,
    pub key: Vec<u8>,
    /// The key as a reader names it: a log index, a `meta` key, `chunk/N`; `0x..` hex otherwise.
    pub key_text: String,
    /// Stored length of the value in bytes, frame header included.
    pub len: usize,
    /// True when the frame and its crc32 check out.
    pub checksum_ok: bool,
    /// What is wrong (frame, checksum, payload decode, an index stored under another key, a key
    /// raftkv never writes); `None` when the record is intact.
    pub problem: Option<String>,
}

/// A damaged part of the log after the snapshot: one record that fails its own checks or breaks
/// the chain of terms, or a run of missing indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The index the key names (the first missing one for a run); `None` for a key that is not a
    /// log index.
    pub index: Option<u64>,
    /// The last missing index of a run of missing indices.
    pub through: Option<u64>,
    /// The stored key (empty for missing indices).
    pub key: Vec<u8>,
    pub detail: String,
}

/// Everything found in one data directory.
#[derive(Clone, Debug)]
pub struct Image {
    pub dir: PathBuf,
    /// sled's own message when it cannot open (a copy of) the directory; the fields below are
    /// then empty and `problems` holds the same message.
    pub sled_error: Option<String>,
    pub format: Option<u32>,
    pub identity: Option<Identity>,
    pub hard_state: Option<HardState>,
    /// The durable-progress record, when it exists and is intact.
    pub progress: Option<ProgressRecord>,
    pub snapshot: Option<SnapshotInfo>,
    /// The snapshot's data, when asked for and intact.
    pub snapshot_data: Option<Vec<u8>>,
    /// Every record of the log tree in key order, classified.
    pub records: Vec<RecordView>,
    /// The log range recovery would keep; `last_index` is also the last intact index.
    pub first_index: u64,
    pub last_index: u64,
    pub problems: Vec<Problem>,
    /// Every damaged log record and run of missing indices after the snapshot, in key order.
    pub damage: Vec<Damage>,
    /// `(index, term)` of every log record that passes its own checks, in key order.
    pub intact: Vec<(u64, u64)>,
    /// Every stored record of every tree, when asked for.
    pub raw: Vec<RawRecord>,
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
    /// The stored commit index (0 without a hard state).
    pub fn commit(&self) -> u64 {
        self.hard_state.map_or(0, |h| h.commit)
    }
    /// Term of the intact record stored at `index`, whatever recovery would do with it.
    pub fn intact_term(&self, index: u64) -> Option<u64> {
        let at = self.intact.partition_point(|&(i, _)| i < index);
        self.intact
            .get(at)
            .filter(|&&(i, _)| i == index)
            .map(|&(_, t)| t)
    }

    fn unopenable(dir: &Path, message: String) -> Image {
        Image {
            dir: dir.to_path_buf(),
            sled_error: Some(message.clone()),
            format: None,
            identity: None,
            hard_state: None,
            progress: None,
            snapshot: None,
            snapshot_data: None,
            records: vec![],
            first_index: 1,
            last_index: 0,
            problems: vec![Problem {
                tree: "sled",
                index: None,
                detail: message,
                fatal: true,
            }],
            damage: vec![],
            intact: vec![],
            raw: vec![],
        }
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

fn private_copy(dir: &Path) -> Result<TempCopy, Error> {
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
    Ok(tmp)
}

/// Opens the copy with sled; an error or a panic inside sled becomes sled's message, naming the
/// inspected directory rather than the copy.
fn open_copy(dir: &Path, copy: &Path) -> Result<Trees, String> {
    let opened = std::panic::catch_unwind(|| open_trees(copy));
    let message = match opened {
        Ok(Ok(trees)) => return Ok(trees),
        Ok(Err(e)) => e.to_string(),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            format!("sled panicked while opening it: {what}")
        }
    };
    let message = message.replace(&copy.display().to_string(), &dir.display().to_string());
    Err(format!("sled cannot open this directory: {message}"))
}

/// Examines `dir` through a private copy; the original is only read.
pub fn examine(dir: &Path) -> Result<Image, Error> {
    examine_with(dir, Options::default())
}

/// [`examine`], also reading what `options` asks for.
pub fn examine_with(dir: &Path, options: Options) -> Result<Image, Error> {
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
    let tmp = private_copy(dir)?;
    let trees = match open_copy(dir, &tmp.0) {
        Ok(trees) => trees,
        Err(message) => {
            // The record lives outside sled's files: it can be read when sled cannot open.
            let mut img = Image::unopenable(dir, message);
            img.progress = progress::read(&tmp.0).ok().flatten();
            return Ok(img);
        }
    };
    let img = read_image(dir, &tmp.0, &trees, options);
    drop(trees);
    img
}

/// What a directory holds, to tell whether anything in it changed: every top-level file but
/// sled's `db` byte for byte, and every record of every sled tree (tree, key, value) byte for
/// byte. sled rewrites parts of its `db` file on its first open after a write session while the
/// records it holds stay the same, so `db` is compared through its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    pub files: std::collections::BTreeMap<std::ffi::OsString, Vec<u8>>,
    pub records: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// The [`Contents`] of `dir`, read through a private copy (the original is only read); an error
/// when sled cannot open the copy.
pub fn contents(dir: &Path) -> Result<Contents, Error> {
    let mut files = std::collections::BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(&format!("list {}", dir.display()), e))?;
    for ent in rd {
        let ent = ent.map_err(|e| io_err(&format!("list {}", dir.display()), e))?;
        if ent.file_type().is_ok_and(|t| t.is_file()) && ent.file_name() != "db" {
            let bytes = std::fs::read(ent.path())
                .map_err(|e| io_err(&format!("read {}", ent.path().display()), e))?;
            files.insert(ent.file_name(), bytes);
        }
    }
    let tmp = private_copy(dir)?;
    let trees = open_copy(dir, &tmp.0).map_err(Error::Io)?;
    let mut records = vec![];
    for name in trees.db.tree_names() {
        let tree = trees
            .db
            .open_tree(&name)
            .map_err(|e| io_err("open a tree of the copy", e))?;
        for kv in tree.iter() {
            let (k, v) = kv.map_err(|e| io_err("read the copy", e))?;
            records.push((
                String::from_utf8_lossy(&name).into_owned(),
                k.to_vec(),
                v.to_vec(),
            ));
        }
    }
    Ok(Contents { files, records })
}

/// A problem from an error: a damage report's own tree, index, kind and detail; any other error
/// as its message under `tree`.
fn problem_of(tree: &'static str, e: Error) -> Problem {
    match e {
        Error::Damaged(d) => Problem {
            tree: d.tree,
            index: d.index,
            detail: format!("{}: {}", d.kind.name(), d.detail),
            fatal: true,
        },
        other => Problem {
            tree,
            index: None,
            detail: other.to_string(),
            fatal: true,
        },
    }
}

fn meta_problem(key: &[u8], e: Error) -> Problem {
    match e {
        e @ Error::Damaged(_) => problem_of(META, e),
        other => Problem {
            tree: META,
            index: None,
            detail: format!("record `{}`: {other}", String::from_utf8_lossy(key)),
            fatal: true,
        },
    }
}

/// The `meta` tree's records: format, hard state, identity.
type MetaRecords = (Option<u32>, Option<HardState>, Option<Identity>);

/// The `meta` tree: format (a newer one is refused), hard state, identity.
fn read_meta_tree(
    dir: &Path,
    trees: &Trees,
    problems: &mut Vec<Problem>,
) -> Result<MetaRecords, Error> {
    let format = match read_meta::<u32>(dir, &trees.meta, KEY_FORMAT) {
        Ok(Some(v)) if v > FORMAT_VERSION => {
            return Err(Error::NewerFormat {
                found: v,
                supported: FORMAT_VERSION,
            })
        }
        Ok(Some(v)) if v < FORMAT_VERSION => {
            return Err(Error::OldFormat {
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
    Ok((format, hard_state, identity))
}

/// The snapshot's metadata record alone (to scan the log against), then the full verification;
/// the data is kept when asked for and intact.
fn read_snapshot_tree(
    dir: &Path,
    trees: &Trees,
    with_data: bool,
    problems: &mut Vec<Problem>,
) -> (Option<SnapshotInfo>, Option<Vec<u8>>) {
    let snap_rec: Option<SnapshotRecord> = match trees.snap.get(KEY_SNAP_META) {
        Ok(Some(v)) => codec::unframe(SNAP, KEY_SNAP_META, &v).ok(),
        _ => None,
    };
    let data = match read_snapshot(dir, &trees.snap, with_data) {
        Ok(found) => found.filter(|_| with_data).map(|(_, data)| data),
        Err(e) => {
            problems.push(problem_of(SNAP, e));
            None
        }
    };
    let info = snap_rec.as_ref().map(|r| SnapshotInfo {
        meta: r.meta.clone(),
        bytes: r.len,
        chunks: r.chunks,
    });
    (info, data)
}

/// The first damage recovery meets in the log, and committed entries missing at its end.
fn log_problems(s: &scan::Scan, commit: u64) -> Vec<Problem> {
    let mut out = vec![];
    if let Some(b) = &s.damage {
        out.push(Problem {
            tree: LOG,
            index: Some(b.index),
            detail: format!("{}: {}", b.kind.name(), b.detail),
            fatal: true,
        });
    } else if commit > s.last {
        out.push(Problem {
            tree: LOG,
            index: Some(s.last + 1),
            detail: format!(
                "missing record: committed entry missing (commit index {commit}, log ends at {})",
                s.last
            ),
            fatal: true,
        });
    }
    out
}

/// The durable-progress record of the copy, and what recovery would say about it against the
/// intact part of the log and the hard state.
fn progress_problems(
    dir: &Path,
    copy: &Path,
    found: &recover::SledState,
) -> (Option<ProgressRecord>, Vec<Problem>) {
    let record = progress::read(copy)
        .map_err(|why| why.replace(&copy.display().to_string(), &dir.display().to_string()));
    let intact = record.as_ref().ok().copied().flatten();
    match recover::check_progress(dir, found, record) {
        Ok(()) => (intact, vec![]),
        Err(e) => (intact, vec![problem_of("progress", e)]),
    }
}

fn read_image(dir: &Path, copy: &Path, trees: &Trees, options: Options) -> Result<Image, Error> {
    let mut problems = vec![];
    let (format, hard_state, identity) = read_meta_tree(dir, trees, &mut problems)?;
    let (snapshot, snapshot_data) =
        read_snapshot_tree(dir, trees, options.snapshot_data, &mut problems);
    let commit = hard_state.map_or(0, |h| h.commit);
    let snap_meta = snapshot.as_ref().map(|s| &s.meta);
    let mut records = vec![];
    let s = scan::scan_log(&trees.log, snap_meta, Some(&mut records))
        .map_err(|e| io_err("scan log copy", e))?;
    let (intact, damage) =
        check_log(&trees.log, snap_meta, commit).map_err(|e| io_err("check log copy", e))?;
    let raw = if options.raw {
        raw_walk(trees).map_err(|e| io_err("walk the copy's records", e))?
    } else {
        vec![]
    };
    let snap_index = snapshot.as_ref().map_or(0, |s| s.meta.index);
    problems.extend(log_problems(&s, commit));
    let sled_state = recover::SledState {
        snapshot: snap_meta,
        scan: &s,
        hard_state,
        any: hard_state.is_some() || snapshot.is_some() || !trees.log.is_empty(),
    };
    let (progress, progress_problems) = progress_problems(dir, copy, &sled_state);
    problems.extend(progress_problems);
    if format.is_none() && (!trees.log.is_empty() || !trees.snap.is_empty()) {
        problems.push(Problem {
            tree: META,
            index: None,
            detail: "the format record is missing but the log or snapshot is not empty".into(),
            fatal: true,
        });
    }
    Ok(Image {
        dir: dir.to_path_buf(),
        sled_error: None,
        format,
        identity,
        hard_state,
        progress,
        snapshot,
        snapshot_data,
        records,
        first_index: snap_index + 1,
        last_index: s.last,
        problems,
        damage,
        intact,
        raw,
    })
}

fn key_index(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// A log record's own checks: frame, checksum, payload, and the index it holds against its key.
fn check_entry(key: &[u8], value: &[u8], index: u64) -> Result<LogRecord, String> {
    let rec = codec::unframe_entry(key, value).map_err(|e| e.to_string())?;
    if rec.entry.index != index {
        return Err(format!(
            "record holds index {} under key {index}",
            rec.entry.index
        ));
    }
    Ok(rec)
}

/// Where the chain of the log after the snapshot stands while [`check_log`] walks it.
struct Chain {
    snap_index: u64,
    snap_term: u64,
    has_snapshot: bool,
    expect: u64,
    prev_term: u64,
    /// The index of the last record the chain accepted (the snapshot's index before any).
    chained: u64,
    /// The entry at the snapshot index has another term: what follows is the old log an
    /// installed snapshot replaced (recovery deletes it; not damage).
    replaced: bool,
}

impl Chain {
    /// Damage an intact record at `index` with `term` and stored previous term `prev_term` shows
    /// against the chain: missing indices before it, a previous term other than the term of the
    /// intact record (or snapshot) right before it, a term lower than the one before it.
    fn follow(&mut self, index: u64, term: u64, prev_term: u64, damage: &mut Vec<Damage>) {
        if index <= self.snap_index {
            if self.has_snapshot && index == self.snap_index {
                self.replaced = term != self.snap_term;
            }
            return;
        }
        if self.replaced {
            return;
        }
        self.skip_to(index, damage);
        if self.chained + 1 == index && prev_term != self.prev_term {
            damage.push(Damage {
                index: Some(index),
                through: None,
                key: index.to_be_bytes().to_vec(),
                detail: format!(
                    "broken chain of terms: the record stores previous term {prev_term}, the \
                     record before it has term {}",
                    self.prev_term
                ),
            });
        } else if term < self.prev_term {
            damage.push(Damage {
                index: Some(index),
                through: None,
                key: index.to_be_bytes().to_vec(),
                detail: format!(
                    "term {term} is lower than the term {} before it",
                    self.prev_term
                ),
            });
        } else {
            self.prev_term = term;
            self.chained = index;
        }
    }

    /// Records the run of indices missing before `index` and moves past `index`.
    fn skip_to(&mut self, index: u64, damage: &mut Vec<Damage>) {
        if index > self.expect {
            damage.push(missing(self.expect, index - 1, "entries missing"));
        }
        self.expect = self.expect.max(index + 1);
    }
}

fn missing(from: u64, through: u64, what: &str) -> Damage {
    Damage {
        index: Some(from),
        through: Some(through),
        key: vec![],
        detail: if from == through {
            what.replace("entries", "entry")
        } else {
            what.to_string()
        },
    }
}

/// The intact records' `(index, term)` and the damage found.
type LogCheck = (Vec<(u64, u64)>, Vec<Damage>);

/// Checks every log record on its own and against the chain after the snapshot, so every damaged
/// index is found, not only the first one recovery stops at. Returns the intact records'
/// `(index, term)` and the damage.
fn check_log(
    log: &sled::Tree,
    snapshot: Option<&SnapshotMeta>,
    commit: u64,
) -> Result<LogCheck, sled::Error> {
    let snap_index = snapshot.map_or(0, |s| s.index);
    let mut chain = Chain {
        snap_index,
        snap_term: snapshot.map_or(0, |s| s.term),
        has_snapshot: snapshot.is_some(),
        expect: snap_index + 1,
        prev_term: snapshot.map_or(0, |s| s.term),
        chained: snap_index,
        replaced: false,
    };
    let (mut intact, mut damage) = (vec![], vec![]);
    for kv in log.iter() {
        let (key, value) = kv?;
        let Some(index) = key_index(&key) else {
            damage.push(Damage {
                index: None,
                through: None,
                key: key.to_vec(),
                detail: format!("a key of {} bytes is not a log index", key.len()),
            });
            continue;
        };
        match check_entry(&key, &value, index) {
            Ok(rec) => {
                intact.push((index, rec.entry.term));
                chain.follow(index, rec.entry.term, rec.prev_term, &mut damage);
            }
            // A bad record is damage wherever it is, below the snapshot or in a replaced log too.
            Err(detail) => {
                if index > snap_index && !chain.replaced {
                    chain.skip_to(index, &mut damage);
                }
                damage.push(Damage {
                    index: Some(index),
                    through: None,
                    key: key.to_vec(),
                    detail,
                });
            }
        }
    }
    if !chain.replaced && commit >= chain.expect {
        let what = format!("committed entries missing (the commit index is {commit})");
        damage.push(missing(chain.expect, commit, &what));
    }
    debug_assert!(intact.windows(2).all(|w| w[0].0 < w[1].0));
    Ok((intact, damage))
}

/// Every stored record of every tree: raftkv's trees first (`log`, `meta`, `snapshot`), then any
/// other tree sled holds, each in key order.
fn raw_walk(trees: &Trees) -> Result<Vec<RawRecord>, sled::Error> {
    let mut names: Vec<String> = trees
        .db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let rank = |n: &str| [LOG, META, SNAP].iter().position(|t| *t == n).unwrap_or(3);
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut out = vec![];
    for name in names {
        let tree = trees.db.open_tree(name.as_bytes())?;
        for kv in tree.iter() {
            let (key, value) = kv?;
            out.push(raw_record(&name, &key, &value));
        }
    }
    Ok(out)
}

fn raw_record(tree: &str, key: &[u8], value: &[u8]) -> RawRecord {
    let framed = codec::unframe_raw(tree, key, value);
    let checksum_ok = framed.is_ok();
    let problem = match framed {
        Err(e) => Some(e.to_string()),
        Ok(_) => payload_problem(tree, key, value),
    };
    RawRecord {
        tree: tree.to_string(),
        key: key.to_vec(),
        key_text: key_text(tree, key),
        len: value.len(),
        checksum_ok,
        problem,
    }
}

/// Decodes a record whose checksum passed as the type raftkv stores under its tree and key.
fn payload_problem(tree: &str, key: &[u8], value: &[u8]) -> Option<String> {
    fn fails<T: serde::de::DeserializeOwned>(tree: &str, key: &[u8], v: &[u8]) -> Option<String> {
        codec::unframe::<T>(tree, key, v)
            .err()
            .map(|e| e.to_string())
    }
    match tree {
        LOG => match key_index(key) {
            Some(index) => check_entry(key, value, index).err(),
            None => Some(format!("a key of {} bytes is not a log index", key.len())),
        },
        META if key == KEY_FORMAT => fails::<u32>(tree, key, value),
        META if key == KEY_HARD_STATE => fails::<HardState>(tree, key, value),
        META if key == KEY_IDENTITY => fails::<Identity>(tree, key, value),
        SNAP if key == KEY_SNAP_META => fails::<SnapshotRecord>(tree, key, value),
        SNAP if key.starts_with(KEY_CHUNK_PREFIX) => None,
        _ => Some("a key raftkv never writes".into()),
    }
}

/// How the raw walk names a key.
pub fn key_text(tree: &str, key: &[u8]) -> String {
    if tree == LOG {
        if let Some(index) = key_index(key) {
            return index.to_string();
        }
    }
    if let Some(rest) = key.strip_prefix(KEY_CHUNK_PREFIX) {
        if let Ok(n) = <[u8; 4]>::try_from(rest) {
            return format!("chunk/{}", u32::from_be_bytes(n));
        }
    }
    if !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic()) {
        return String::from_utf8_lossy(key).into_owned();
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EntryKind;

    fn put(log: &sled::Tree, key: u64, index: u64, term: u64, prev_term: u64) {
        let e = crate::Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![7],
        };
        let k = key.to_be_bytes();
        log.insert(k, codec::frame_entry(&k, prev_term, &e))
            .unwrap();
    }

    /// A log of `(index, term)` records, each chained to the term of the record listed before it.
    fn log_of(terms: &[(u64, u64)]) -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree(LOG).unwrap();
        let mut prev = 0;
        for &(i, t) in terms {
            put(&log, i, i, t, prev);
            prev = t;
        }
        (db, log)
    }

    fn places(damage: &[Damage]) -> Vec<(Option<u64>, Option<u64>)> {
        damage.iter().map(|d| (d.index, d.through)).collect()
    }

    #[test]
    fn every_damaged_index_is_found_not_only_the_first() {
        let (_db, log) = log_of(&[(1, 1), (2, 1), (3, 2), (5, 2), (6, 1), (7, 2)]);
        put(&log, 8, 9, 2, 2); // a record holding index 9 under key 8
        log.insert(&[1u8, 2, 3][..], vec![0u8; 4]).unwrap(); // not a log key
        let (intact, damage) = check_log(&log, None, 12).unwrap();
        assert_eq!(
            places(&damage),
            vec![
                (Some(4), Some(4)),
                (Some(6), None),
                (Some(8), None),
                (None, None), // key order: the 3-byte key sorts after the 8-byte ones
                (Some(9), Some(12)),
            ]
        );
        assert_eq!(damage[0].detail, "entry missing");
        assert!(damage[1].detail.contains("term 1 is lower than the term 2"));
        assert!(damage[2]
            .detail
            .contains("record holds index 9 under key 8"));
        assert!(damage[3]
            .detail
            .contains("a key of 3 bytes is not a log index"));
        assert!(damage[4].detail.contains("committed entries missing"));
        // Record 6 is intact on its own (a peer may use it); 8 is not.
        assert_eq!(
            intact.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 5, 6, 7]
        );
    }

    #[test]
    fn leftovers_below_a_snapshot_and_a_replaced_log_are_not_damage() {
        // Snapshot at 3 term 3; the stored entry 3 has term 2, so 4.. is the old log a snapshot
        // install replaced (recovery deletes it), holes and all.
        let (_db, log) = log_of(&[(1, 1), (3, 2), (4, 2), (6, 1)]);
        let snap = SnapshotMeta {
            index: 3,
            term: 3,
            voters: vec![1],
        };
        let (_, damage) = check_log(&log, Some(&snap), 3).unwrap();
        assert!(damage.is_empty(), "{damage:?}");
        // The same log after a snapshot whose term matches: the hole at 5 and term 1 are damage.
        let snap = SnapshotMeta { term: 2, ..snap };
        let (_, damage) = check_log(&log, Some(&snap), 3).unwrap();
        assert_eq!(places(&damage), vec![(Some(5), Some(5)), (Some(6), None)]);
        // A record that fails its checksum is damage even below the snapshot.
        log.insert(2u64.to_be_bytes(), vec![9u8; 3]).unwrap();
        let (_, damage) = check_log(&log, Some(&snap), 3).unwrap();
        assert_eq!(places(&damage)[0], (Some(2), None));
    }

    #[test]
    fn a_record_chained_to_another_term_than_the_one_before_it_is_damage() {
        let (_db, log) = log_of(&[(1, 1), (2, 1), (3, 2), (4, 2)]);
        put(&log, 3, 3, 2, 2); // entry 2 has term 1
        let (intact, damage) = check_log(&log, None, 0).unwrap();
        assert_eq!(places(&damage), vec![(Some(3), None)]);
        assert!(damage[0].detail.contains("broken chain"), "{damage:?}");
        assert_eq!(intact.len(), 4, "the record itself is intact");
        // The first entry after a snapshot chains to the snapshot's term.
        let (_db, log) = log_of(&[(5, 3), (6, 3)]);
        let snap = |term| SnapshotMeta {
            index: 4,
            term,
            voters: vec![1],
        };
        put(&log, 5, 5, 3, 2);
        assert!(check_log(&log, Some(&snap(2)), 4).unwrap().1.is_empty());
        let (_, damage) = check_log(&log, Some(&snap(3)), 4).unwrap();
        assert_eq!(places(&damage), vec![(Some(5), None)]);
    }
}
