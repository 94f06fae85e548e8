//! raftkv-storage: the durable home of a node's Raft state.
//!
//! Owns: the on-disk format (one sled `Db` per node directory, trees `log`, `meta`, `snapshot`),
//! the checksummed record codec, the durable-progress record, the recovery rules of
//! [`Storage::open`], and setting a whole directory aside ([`set_aside`]) instead of deleting it.
//! Must never: report anything durable before `flush()` has returned, panic on bytes read from
//! disk, or change a byte of a directory it was asked only to inspect.
//!
//! The plain data types below ([`Entry`], [`HardState`], [`SnapshotMeta`]) are this crate's
//! records: their serialized form is the on-disk format. The crate depends on nothing of the
//! consensus core; the core has its own value types and the node converts between the two.

use serde::{Deserialize, Serialize};

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Appended by a new leader to commit entries of earlier terms (Raft §5.4.2).
    Noop,
    /// A state-machine command (for raftkv, a JSON-encoded lin-kv command).
    Normal,
}

/// One Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    /// Serialized as bytes (the same bincode layout as a `Vec<u8>`, decoded with one copy
    /// instead of byte by byte; recovery spent a third of its time there).
    #[serde(with = "bytes")]
    pub data: Vec<u8>,
}

/// An [`Entry`] record borrowed from whoever owns the entry: it serializes exactly as the
/// `Entry` with the same fields does, so it is written to disk without copying its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EntryRef<'a> {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    #[serde(serialize_with = "bytes::serialize")]
    pub data: &'a [u8],
}

/// A log entry that can be seen as this crate's record without a copy: how a caller with
/// entries of its own type (the node's core) hands them to [`Storage::persist_borrowed`].
pub trait AsEntryRef {
    fn entry_ref(&self) -> EntryRef<'_>;
}

impl AsEntryRef for Entry {
    fn entry_ref(&self) -> EntryRef<'_> {
        EntryRef {
            term: self.term,
            index: self.index,
            kind: self.kind,
            data: &self.data,
        }
    }
}

/// Serde helper: a `Vec<u8>` as bytes. Reads bytes or a sequence of numbers, so JSON and the
/// bincode of a plain `Vec<u8>` both still decode.
mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = a.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(V)
    }
}

/// The state that must be durable before a node votes or acknowledges an append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<u64>,
    /// Highest index known committed; persisted so a restarted node never serves older state.
    pub commit: u64,
    /// The recovering mark: how far a node that started with an empty directory has rejoined.
    /// The durable-progress record holds a second copy of it.
    pub recovery: RecoveryMark,
    /// The directory's incarnation: new on every start with an empty directory.
    pub incarnation: u64,
}

/// The recovering mark as stored (the consensus core has its own type; the node converts).
///
/// A node that started with an empty directory (first boot, a wipe, a damaged directory set
/// aside) stays marked until it has rejoined; a start that finds a mark other than `Ordinary` in
/// either copy starts with an empty directory again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecoveryMark {
    /// An ordinary node.
    #[default]
    Ordinary,
    /// Term and vote unknown: every other node must answer a probe before it acknowledges.
    Probing,
    /// Term and vote known: it must catch up with its leader's commit before it votes.
    CatchingUp,
}

impl RecoveryMark {
    /// How far from ordinary: a copy that says more owes more, so the larger of two marks wins.
    pub fn owes(self) -> u8 {
        match self {
            RecoveryMark::Ordinary => 0,
            RecoveryMark::CatchingUp => 1,
            RecoveryMark::Probing => 2,
        }
    }

    /// The mark of the two that owes more.
    pub fn worst(self, other: RecoveryMark) -> RecoveryMark {
        if other.owes() > self.owes() {
            other
        } else {
            self
        }
    }

    /// A short name for messages and the inspector.
    pub fn name(self) -> &'static str {
        match self {
            RecoveryMark::Ordinary => "ordinary",
            RecoveryMark::Probing => "probing",
            RecoveryMark::CatchingUp => "catching-up",
        }
    }
}

/// Describes a snapshot: the state machine after applying every entry up to `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    /// Voters of the cluster (static membership).
    pub voters: Vec<u64>,
}

/// Who this data directory belongs to, written at first `init` and checked on restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node: String,
    pub cluster: Vec<String>,
}

/// What [`Storage::open`] recovered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    /// First log index held (snapshot index + 1, or 1); `last_index < first_index` means empty.
    pub first_index: u64,
    pub last_index: u64,
    pub identity: Option<Identity>,
    /// True when sled stored a hard state (`hard_state` is the default otherwise).
    pub hard_state_stored: bool,
    /// The durable-progress record as the open found it, before it rewrote it.
    pub progress: Option<progress::ProgressRecord>,
}

/// One durable step: everything one turn of the node's loop produced, made durable by one flush.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// A snapshot received from the leader; replaces the log up to its index.
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Entries to append; a conflicting suffix from `entries[0].index` on is truncated first.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
}

/// A [`WriteBatch`] borrowed from whoever holds the entries and snapshot data, so a caller
/// that owns them already (the node's shell) hands them to disk without a copy. The entries
/// may be of the caller's own type, seen as records through [`AsEntryRef`].
#[derive(Debug)]
pub struct BatchRef<'a, E: AsEntryRef = Entry> {
    pub snapshot: Option<(&'a SnapshotMeta, &'a [u8])>,
    pub entries: &'a [E],
    pub hard_state: Option<HardState>,
}

impl<E: AsEntryRef> Clone for BatchRef<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: AsEntryRef> Copy for BatchRef<'_, E> {}

impl WriteBatch {
    pub fn borrow(&self) -> BatchRef<'_, Entry> {
        BatchRef {
            snapshot: self.snapshot.as_ref().map(|(m, d)| (m, d.as_slice())),
            entries: &self.entries,
            hard_state: self.hard_state,
        }
    }
}

/// Storage errors. Each names what is wrong and where.
#[derive(Debug)]
pub enum Error {
    /// Another process holds the directory (sled's lock).
    Locked {
        dir: std::path::PathBuf,
    },
    /// The directory is missing, unreadable or not a raftkv data directory.
    NotADataDir {
        dir: std::path::PathBuf,
        why: String,
    },
    /// The directory was written by a newer on-disk format.
    NewerFormat {
        found: u32,
        supported: u32,
    },
    /// The directory was written by an older on-disk format, which this build does not read.
    OldFormat {
        found: u32,
        supported: u32,
    },
    /// The directory is damaged: what, where, and what could still be read intact.
    Damaged(Box<Damage>),
    /// The operation is not valid on the current state (for example a gap in the log).
    Invalid(String),
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Locked { dir } => {
                write!(
                    f,
                    "another process holds this data directory: {}",
                    dir.display()
                )
            }
            Error::NotADataDir { dir, why } => {
                write!(f, "not a raftkv data directory: {}: {why}", dir.display())
            }
            Error::NewerFormat { found, supported } => write!(
                f,
                "data directory has format version {found}, newer than the supported {supported}"
            ),
            Error::OldFormat { found, supported } => write!(
                f,
                "data directory has format version {found}, older than the supported {supported} \
                 ({}); this build does not read it and changed nothing",
                format_changes(*found, *supported)
            ),
            Error::Damaged(d) => write!(f, "{d}; no record was changed"),
            Error::Invalid(s) => write!(f, "invalid storage operation: {s}"),
            Error::Io(s) => write!(f, "storage I/O error: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// What the formats after `found` up to `supported` added, for the refusal of an older one.
fn format_changes(found: u32, supported: u32) -> String {
    const ADDED: [&str; 2] = [
        "format 2 added the chain of terms and the durable-progress record",
        "format 3 added the recovering mark and the incarnation to the hard state and the record",
    ];
    let changes: Vec<&str> = (found + 1..=supported)
        .map(|v| {
            ADDED
                .get(v.wrapping_sub(2) as usize)
                .copied()
                .unwrap_or("a later format changed the records")
        })
        .collect();
    changes.join("; ")
}

pub mod aside;
pub mod codec;
pub mod damage;
pub mod examine;
#[doc(hidden)]
pub mod fault;
mod preserve;
pub mod progress;
mod recover;
pub mod scan;

pub use aside::set_aside;
pub use damage::{Damage, DamageKind};

use std::path::{Path, PathBuf};

/// The on-disk format this build writes and reads; a directory of another number is refused.
/// Format 2 chains each log record to its predecessor's term and adds the durable-progress record;
/// format 3 adds the recovering mark and the incarnation to the hard state and to the record (an
/// older directory is refused by name, not migrated: it holds no incarnation to carry forward).
pub const FORMAT_VERSION: u32 = 3;
/// Name of the plain-text marker file that identifies a raftkv data directory and repeats the
/// format version, so a foreign or newer directory is refused before sled touches a byte of it.
pub const MARKER_FILE: &str = "raftkv-format";
/// Snapshot data is stored in chunks of this many bytes.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;

pub(crate) const LOG: &str = "log";
pub(crate) const META: &str = "meta";
pub(crate) const SNAP: &str = "snapshot";
pub(crate) const KEY_FORMAT: &[u8] = b"format";
pub(crate) const KEY_HARD_STATE: &[u8] = b"hard_state";
pub(crate) const KEY_IDENTITY: &[u8] = b"identity";
pub(crate) const KEY_SNAP_META: &[u8] = b"meta";
pub(crate) const KEY_CHUNK_PREFIX: &[u8] = b"chunk/";

/// The snapshot tree's `meta` record: what the chunks must add up to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    pub meta: SnapshotMeta,
    pub len: u64,
    pub chunks: u32,
    pub data_crc: u32,
}

pub(crate) fn chunk_key(i: u32) -> Vec<u8> {
    let mut k = KEY_CHUNK_PREFIX.to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

pub(crate) fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what}: {e}"))
}

pub(crate) fn sled_err(dir: &Path, what: &str, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
            Error::Locked {
                dir: dir.to_path_buf(),
            }
        }
        sled::Error::Corruption { .. } => Error::Damaged(Box::new(Damage::new(
            dir,
            "sled",
            None,
            DamageKind::Unopenable,
            format!("{what}: sled reports {e}"),
        ))),
        other => Error::Io(format!("{what} in {}: {other}", dir.display())),
    }
}

/// Term runs: `(first index of the run, term)`, ascending; the log's terms without reading it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Terms(Vec<(u64, u64)>);

impl Terms {
    pub(crate) fn push(&mut self, index: u64, term: u64) {
        if self.0.last().map(|&(_, t)| t) != Some(term) {
            self.0.push((index, term));
        }
    }
    fn truncate_from(&mut self, index: u64) {
        while self.0.last().is_some_and(|&(i, _)| i >= index) {
            self.0.pop();
        }
    }
    fn compact_to(&mut self, first: u64) {
        let keep_from = self
            .0
            .partition_point(|&(i, _)| i <= first)
            .saturating_sub(1);
        self.0.drain(..keep_from);
    }
    pub(crate) fn get(&self, index: u64) -> Option<u64> {
        let p = self.0.partition_point(|&(i, _)| i <= index);
        if p == 0 {
            None
        } else {
            Some(self.0[p - 1].1)
        }
    }
}

/// What [`precheck`] found in a directory before sled opened it.
pub(crate) enum Found {
    /// Missing or empty: a new data directory.
    Fresh,
    /// A raftkv directory of a format this build reads.
    Raftkv,
}

/// Looks at a directory without changing it: missing, not a directory, unreadable, foreign, newer.
pub(crate) fn precheck(dir: &Path) -> Result<Found, Error> {
    let not = |why: String| Error::NotADataDir {
        dir: dir.to_path_buf(),
        why,
    };
    let md = match std::fs::metadata(dir) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Fresh),
        Err(e) => return Err(not(format!("cannot read it: {e}"))),
    };
    if !md.is_dir() {
        return Err(not("it is not a directory".into()));
    }
    let mut names = vec![];
    let rd = std::fs::read_dir(dir).map_err(|e| not(format!("cannot list it: {e}")))?;
    for ent in rd {
        let ent = ent.map_err(|e| not(format!("cannot list it: {e}")))?;
        names.push(ent.file_name().to_string_lossy().into_owned());
    }
    // A creation interrupted before the marker was renamed into place left only its temp file.
    let tmp_marker = format!("{MARKER_FILE}.tmp");
    names.retain(|n| *n != tmp_marker);
    if names.is_empty() {
        return Ok(Found::Fresh);
    }
    if !names.iter().any(|n| n == MARKER_FILE) {
        let sled_like = names.iter().any(|n| n == "conf") && names.iter().any(|n| n == "db");
        names.sort();
        names.truncate(5);
        return Err(not(if sled_like {
            format!("a sled database without the `{MARKER_FILE}` marker (not written by raftkv)")
        } else {
            format!("no `{MARKER_FILE}` marker; it holds {}", names.join(", "))
        }));
    }
    let text = std::fs::read_to_string(dir.join(MARKER_FILE))
        .map_err(|e| not(format!("cannot read `{MARKER_FILE}`: {e}")))?;
    let version = text
        .trim()
        .strip_prefix("raftkv-storage format ")
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            not(format!(
                "`{MARKER_FILE}` does not name a raftkv-storage format"
            ))
        })?;
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < FORMAT_VERSION {
        return Err(Error::OldFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(Found::Raftkv)
}

/// How long `open` waits for a lock to be released before reporting the directory as held.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

/// Fails with [`Error::Locked`] if a process holds sled's lock on the directory; changes nothing.
pub(crate) fn probe_lock(dir: &Path) -> Result<(), Error> {
    use fs2::FileExt;
    let db = dir.join("db");
    let f = match std::fs::File::open(&db) {
        Ok(f) => f,
        Err(_) => return Ok(()), // no database file yet: nobody can hold it
    };
    // sled releases its lock from a background thread shortly after the last handle is dropped,
    // so a directory this process just closed may still be locked for a few milliseconds.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        if f.try_lock_exclusive().is_ok() {
            let _ = f.unlock();
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Locked {
                dir: dir.to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Deletes `snap.*.generating` files a kill during `sled::open` can leave behind (sled 0.34.7
/// then refuses every later open with `Corruption`).
pub(crate) fn remove_stale_generating(dir: &Path) -> Result<(), Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(&format!("list {}", dir.display()), e))?;
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(ent.path())
                .map_err(|e| io_err(&format!("remove stale {}", ent.path().display()), e))?;
        }
    }
    Ok(())
}

fn write_marker(dir: &Path) -> Result<(), Error> {
    use std::io::Write;
    let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("create format marker", e))?;
    f.write_all(format!("raftkv-storage format {FORMAT_VERSION}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("write format marker", e))?;
    std::fs::rename(&tmp, dir.join(MARKER_FILE)).map_err(|e| io_err("rename format marker", e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// sled's page cache (its default is 1 GiB). Recovery reads the whole log once; a node then
/// reads mostly the tail, so a small cache keeps a node's memory low without slowing either.
pub const CACHE_BYTES: u64 = 64 << 20;

pub(crate) struct Trees {
    pub db: sled::Db,
    pub log: sled::Tree,
    pub meta: sled::Tree,
    pub snap: sled::Tree,
}

pub(crate) fn open_trees(dir: &Path) -> Result<Trees, Error> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .open()
        .map_err(|e| sled_err(dir, "open", e))?;
    let t = |name: &str| {
        db.open_tree(name)
            .map_err(|e| sled_err(dir, "open tree", e))
    };
    let (log, meta, snap) = (t(LOG)?, t(META)?, t(SNAP)?);
    Ok(Trees {
        db,
        log,
        meta,
        snap,
    })
}

pub(crate) fn read_meta<T: serde::de::DeserializeOwned>(
    dir: &Path,
    meta: &sled::Tree,
    key: &'static [u8],
) -> Result<Option<T>, Error> {
    let Some(v) = meta.get(key).map_err(|e| sled_err(dir, "read meta", e))? else {
        return Ok(None);
    };
    codec::unframe(META, key, &v).map(Some).map_err(|e| {
        Error::Damaged(Box::new(Damage::new(
            dir,
            META,
            None,
            DamageKind::BadRecord,
            format!("record `{}`: {e}", String::from_utf8_lossy(key)),
        )))
    })
}

/// Reads and verifies the snapshot tree: `Ok(None)` when there is no snapshot.
pub(crate) fn read_snapshot(
    dir: &Path,
    snap: &sled::Tree,
    with_data: bool,
) -> Result<Option<(SnapshotMeta, Vec<u8>)>, Error> {
    let corrupt = |index: Option<u64>, kind: DamageKind, detail: String| {
        Error::Damaged(Box::new(Damage::new(dir, SNAP, index, kind, detail)))
    };
    let Some(v) = snap
        .get(KEY_SNAP_META)
        .map_err(|e| sled_err(dir, "read snapshot", e))?
    else {
        return Ok(None);
    };
    let rec: SnapshotRecord = codec::unframe(SNAP, KEY_SNAP_META, &v).map_err(|e| {
        let detail = format!("snapshot metadata record: {e}");
        corrupt(None, DamageKind::BadRecord, detail)
    })?;
    let idx = Some(rec.meta.index);
    let mut data = Vec::new();
    let mut hasher = crc32fast::Hasher::new();
    let mut len = 0u64;
    for i in 0..rec.chunks {
        let key = chunk_key(i);
        let Some(c) = snap
            .get(&key)
            .map_err(|e| sled_err(dir, "read snapshot", e))?
        else {
            return Err(corrupt(
                idx,
                DamageKind::MissingRecord,
                format!("chunk {i} of {} is missing", rec.chunks),
            ));
        };
        let payload = codec::unframe_raw(SNAP, &key, &c)
            .map_err(|e| corrupt(idx, DamageKind::BadRecord, format!("chunk {i}: {e}")))?;
        hasher.update(payload);
        len += payload.len() as u64;
        if with_data {
            data.extend_from_slice(payload);
        }
    }
    if len != rec.len || hasher.finalize() != rec.data_crc {
        return Err(corrupt(
            idx,
            DamageKind::BadSnapshot,
            format!(
                "snapshot data does not match its metadata ({len} bytes read, {} expected, or checksum differs)",
                rec.len
            ),
        ));
    }
    Ok(Some((rec.meta, data)))
}

fn snapshot_batch(
    snap: &sled::Tree,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<sled::Batch, sled::Error> {
    let mut b = sled::Batch::default();
    for k in snap.iter().keys() {
        b.remove(k?);
    }
    let mut chunks = 0u32;
    for (i, chunk) in data.chunks(SNAPSHOT_CHUNK).enumerate() {
        let key = chunk_key(i as u32);
        b.insert(key.clone(), codec::frame_raw(SNAP, &key, chunk));
        chunks += 1;
    }
    let rec = SnapshotRecord {
        meta: meta.clone(),
        len: data.len() as u64,
        chunks,
        data_crc: crc32fast::hash(data),
    };
    b.insert(KEY_SNAP_META, codec::frame(SNAP, KEY_SNAP_META, &rec));
    Ok(b)
}

/// A node's durable Raft state in one sled `Db`.
///
/// Every mutating call ends with one `flush()`; after a failed write or flush the handle refuses
/// further work (a flush failure is never retried past).
pub struct Storage {
    dir: PathBuf,
    trees: Trees,
    first_index: u64,
    last_index: u64,
    terms: Terms,
    snapshot: Option<SnapshotMeta>,
    hard_state: HardState,
    progress: progress::ProgressFile,
    poisoned: Option<String>,
}

impl Storage {
    /// Opens (creating if absent) a node directory and recovers its state. Any damage (a record
    /// that fails its checksum or does not decode anywhere, a broken chain of terms, a bad hard
    /// state or snapshot, a directory sled cannot open, a missing or damaged durable-progress
    /// record, a log or hard state below it) is returned as [`Error::Damaged`] with no record
    /// changed; only a clean directory is repaired (compaction leftovers, a log an installed
    /// snapshot replaced, a term behind the log's) and opened.
    pub fn open(dir: &Path) -> Result<(Storage, Recovered), Error> {
        recover::open(dir)
    }

    fn check(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(why) => Err(Error::Io(format!(
                "storage of {} is unusable after an earlier failure: {why}",
                self.dir.display()
            ))),
            None => Ok(()),
        }
    }

    fn fail(&mut self, what: &str, e: sled::Error) -> Error {
        let err = sled_err(&self.dir, what, e);
        self.poisoned = Some(err.to_string());
        err
    }

    /// First log index held (snapshot index + 1).
    pub fn first_index(&self) -> u64 {
        self.first_index
    }
    /// Last log index held (snapshot index when the log is empty).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }
    /// The hard state as last made durable.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }
    /// Metadata of the durable snapshot, if any.
    pub fn snapshot_meta(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// Makes `batch` durable (one flush). Returns only after `flush()` has returned.
    ///
    /// Order inside the step (each part atomic in its tree): snapshot, then log (compaction,
    /// truncation of the suffix from `entries[0].index`, appends), then hard state, then one flush.
    /// Recovery reconciles a crash between the parts (see `open`).
    pub fn persist(&mut self, batch: &WriteBatch) -> Result<(), Error> {
        self.persist_borrowed(batch.borrow())
    }

    /// [`Storage::persist`] of a borrowed batch.
    ///
    /// A snapshot that discards the log, with entries after it, is persisted as two steps (the
    /// snapshot with the hard state, then the entries): sled writes the snapshot and the log as
    /// two batches, and a kill between them would leave a log (the snapshot's alone) that neither
    /// the old nor the new value of one step's durable-progress record holds.
    pub fn persist_borrowed<E: AsEntryRef>(&mut self, batch: BatchRef<'_, E>) -> Result<(), Error> {
        if let Some((meta, _)) = batch.snapshot {
            if !batch.entries.is_empty() && !self.keeps_log_after(meta)? {
                let snapshot_step = BatchRef {
                    entries: &batch.entries[..0],
                    ..batch
                };
                self.persist_step(snapshot_step)?;
                return self.persist_step(BatchRef {
                    snapshot: None,
                    hard_state: None,
                    ..batch
                });
            }
        }
        self.persist_step(batch)
    }

    /// True when the log holds the snapshot's last entry, so installing it keeps what follows.
    fn keeps_log_after(&self, meta: &SnapshotMeta) -> Result<bool, Error> {
        Ok(meta.index <= self.last_index && self.term(meta.index)? == Some(meta.term))
    }

    /// One durable step: one flush, the durable-progress record around it.
    fn persist_step<E: AsEntryRef>(&mut self, batch: BatchRef<'_, E>) -> Result<(), Error> {
        self.check()?;
        let first_entry = batch.entries.first().map(AsEntryRef::entry_ref);
        let entries = || batch.entries.iter().map(AsEntryRef::entry_ref);
        // Validate everything before writing anything.
        let mut snap_index = self.snapshot.as_ref().map_or(0, |s| s.index);
        let mut keep_log_after_snapshot = true;
        if let Some((meta, _)) = &batch.snapshot {
            if meta.index < snap_index {
                return Err(Error::Invalid(format!(
                    "snapshot at index {} is older than the stored one at {snap_index}",
                    meta.index
                )));
            }
            keep_log_after_snapshot = self.keeps_log_after(meta)?;
            snap_index = meta.index;
        }
        let (mut first, mut last) = (snap_index + 1, self.last_index.max(snap_index));
        if !keep_log_after_snapshot {
            last = snap_index;
        }
        if let Some(e0) = first_entry {
            if e0.index <= snap_index || e0.index > last + 1 {
                return Err(Error::Invalid(format!(
                    "entries start at {} but the log after this step holds [{first}, {last}] (no gap, nothing at or below the snapshot)",
                    e0.index
                )));
            }
            for (i, e) in entries().enumerate() {
                if e.index != e0.index + i as u64 {
                    return Err(Error::Invalid(format!(
                        "entries are not contiguous: position {i} has index {}, expected {}",
                        e.index,
                        e0.index + i as u64
                    )));
                }
            }
            last = e0.index + batch.entries.len() as u64 - 1;
        }
        first = first.min(last + 1);
        let snap_term = match &batch.snapshot {
            Some((meta, _)) => meta.term,
            None => self.snapshot.as_ref().map_or(0, |s| s.term),
        };
        let after = self.progress_after(batch, (snap_index, snap_term), last);
        // A step after which the log may no longer hold its old last entry (a truncation, a
        // snapshot that discards the log) records the old and the new value before sled changes.
        let rewrites =
            first_entry.is_some_and(|e| e.index <= self.last_index) || !keep_log_after_snapshot;
        if rewrites {
            let both = progress::ProgressRecord {
                new: after,
                old: Some(self.progress_now()),
            };
            self.write_progress(&both)?;
            fault::stop_point(fault::StopPoint::BeforeSled)?;
        }
        // The first new entry chains to the snapshot's term or to the kept entry before it.
        let prev_term = match first_entry {
            Some(e0) if e0.index - 1 == snap_index => snap_term,
            Some(e0) => self.terms.get(e0.index - 1).unwrap_or(0),
            None => 0,
        };
        // Snapshot part.
        if let Some((meta, data)) = &batch.snapshot {
            let b = snapshot_batch(&self.trees.snap, meta, data)
                .and_then(|b| self.trees.snap.apply_batch(b));
            if let Err(e) = b {
                return Err(self.fail("write snapshot", e));
            }
            if fault::stop_armed(fault::StopPoint::BetweenSnapshotAndLog) {
                let _ = self.trees.db.flush();
                fault::stop_point(fault::StopPoint::BetweenSnapshotAndLog)?;
            }
        }
        // Log part. Removals (compaction, truncation) go in one atomic sled batch with the
        // appends that follow them; a pure append is plain inserts in index order, since sled
        // recovers a prefix of its writes and any prefix of an append is a valid log.
        let old_first = self.first_index;
        let old_last = self.last_index;
        let mut removes = Vec::new();
        if batch.snapshot.is_some() {
            let remove_to = if keep_log_after_snapshot {
                snap_index
            } else {
                old_last
            };
            removes.extend(old_first..=remove_to);
        }
        if let Some(e0) = first_entry {
            removes.extend(e0.index..=old_last);
        }
        let r = if removes.is_empty() {
            codec::frame_log(batch.entries, prev_term)
                .try_for_each(|(key, record)| self.trees.log.insert(key, record).map(|_| ()))
        } else {
            let mut b = sled::Batch::default();
            for i in removes {
                b.remove(&i.to_be_bytes());
            }
            for (key, record) in codec::frame_log(batch.entries, prev_term) {
                b.insert(&key, record);
            }
            self.trees.log.apply_batch(b)
        };
        if let Err(e) = r {
            return Err(self.fail("write log", e));
        }
        if let Some(hs) = batch.hard_state.as_ref().filter(|h| **h != self.hard_state) {
            let r = self
                .trees
                .meta
                .insert(KEY_HARD_STATE, codec::frame(META, KEY_HARD_STATE, hs));
            if let Err(e) = r {
                return Err(self.fail("write hard state", e));
            }
        }
        if let Err(e) = self.trees.db.flush() {
            return Err(self.fail("flush", e));
        }
        // Durable in sled: the record follows, before any vote or acknowledgement of this step.
        fault::stop_point(fault::StopPoint::BeforeProgress)?;
        self.write_progress(&progress::ProgressRecord {
            new: after,
            old: None,
        })?;
        // Durable: now update what this handle reports.
        if let Some((meta, _)) = &batch.snapshot {
            if keep_log_after_snapshot {
                self.terms.compact_to(snap_index + 1);
            } else {
                self.terms = Terms::default();
            }
            self.snapshot = Some((*meta).clone());
        }
        if let Some(e0) = first_entry {
            self.terms.truncate_from(e0.index);
            for e in entries() {
                self.terms.push(e.index, e.term);
            }
        }
        self.first_index = first;
        self.last_index = last;
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Entries in `[lo, hi)`, stopping after `max_bytes` of payload (at least one entry).
    pub fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, Error> {
        self.check()?;
        if lo >= hi {
            return Ok(vec![]);
        }
        if lo < self.first_index || hi > self.last_index + 1 {
            return Err(Error::Invalid(format!(
                "entries [{lo}, {hi}) requested but the log holds [{}, {}]",
                self.first_index, self.last_index
            )));
        }
        let mut out = Vec::with_capacity(((hi - lo) as usize).min(4096));
        let mut bytes = 0u64;
        let range = self.trees.log.range(lo.to_be_bytes()..hi.to_be_bytes());
        for (expect, kv) in (lo..).zip(range) {
            let (k, v) = kv.map_err(|e| sled_err(&self.dir, "read log", e))?;
            let damaged = |kind, detail| {
                Error::Damaged(Box::new(Damage::new(
                    &self.dir,
                    LOG,
                    Some(expect),
                    kind,
                    detail,
                )))
            };
            let rec = codec::unframe_entry(&k, &v)
                .map_err(|err| damaged(DamageKind::BadRecord, err.to_string()))?;
            let e = rec.entry;
            if e.index != expect {
                let detail = format!("found index {} instead", e.index);
                return Err(damaged(DamageKind::BadRecord, detail));
            }
            let before = self.term(expect - 1)?;
            if Some(rec.prev_term) != before || Some(e.term) != self.terms.get(expect) {
                let detail = format!(
                    "stores term {} after term {}, the log holds term {:?} after {before:?}",
                    e.term,
                    rec.prev_term,
                    self.terms.get(expect)
                );
                return Err(damaged(DamageKind::BrokenChain, detail));
            }
            bytes += e.data.len() as u64;
            if !out.is_empty() && bytes > max_bytes {
                return Ok(out);
            }
            out.push(e);
        }
        if (out.len() as u64) < hi - lo {
            let missing = lo + out.len() as u64;
            return Err(Error::Damaged(Box::new(Damage::new(
                &self.dir,
                LOG,
                Some(missing),
                DamageKind::MissingRecord,
                "entry missing".into(),
            ))));
        }
        Ok(out)
    }

    /// Term of the entry at `index`: the snapshot's term at its index, 0 at index 0, `None` when
    /// the index is compacted away or beyond the log.
    pub fn term(&self, index: u64) -> Result<Option<u64>, Error> {
        self.check()?;
        if index == 0 {
            return Ok(Some(0));
        }
        if let Some(s) = &self.snapshot {
            if index == s.index {
                return Ok(Some(s.term));
            }
        }
        if index < self.first_index || index > self.last_index {
            return Ok(None);
        }
        Ok(self.terms.get(index))
    }

    /// Terms of the entries in `[lo, hi)`, from memory (no disk read). The range must lie in
    /// `[first_index - 1, last_index]` (the entry before the log is the snapshot's).
    pub fn terms(&self, lo: u64, hi: u64) -> Result<Vec<u64>, Error> {
        self.check()?;
        (lo..hi)
            .map(|i| {
                self.term(i)?.ok_or_else(|| {
                    Error::Invalid(format!(
                        "term of {i} requested but the log holds [{}, {}]",
                        self.first_index, self.last_index
                    ))
                })
            })
            .collect()
    }

    /// Saves a snapshot taken by the state machine and compacts the log behind it. Durable.
    pub fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), Error> {
        self.check()?;
        let cur = self.snapshot.as_ref().map_or(0, |s| s.index);
        if meta.index < cur {
            return Err(Error::Invalid(format!(
                "snapshot at index {} is older than the stored one at {cur}",
                meta.index
            )));
        }
        if meta.index > cur && self.term(meta.index)? != Some(meta.term) {
            return Err(Error::Invalid(format!(
                "snapshot at index {} term {} does not match the log (term there: {:?})",
                meta.index,
                meta.term,
                self.term(meta.index)?
            )));
        }
        self.persist(&WriteBatch {
            snapshot: Some((meta.clone(), data.to_vec())),
            entries: vec![],
            hard_state: None,
        })
    }

    pub fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, Error> {
        self.check()?;
        read_snapshot(&self.dir, &self.trees.snap, true)
    }

    pub fn set_identity(&mut self, identity: &Identity) -> Result<(), Error> {
        self.check()?;
        let r = self
            .trees
            .meta
            .insert(KEY_IDENTITY, codec::frame(META, KEY_IDENTITY, identity));
        if let Err(e) = r {
            return Err(self.fail("write identity", e));
        }
        if let Err(e) = self.trees.db.flush() {
            return Err(self.fail("flush", e));
        }
        Ok(())
    }
}
