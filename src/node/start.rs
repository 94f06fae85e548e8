//! A node's start on its data directory: open it, decide (with the shell's start decision) whether
//! to start on what it holds or empty, and build the core's initial state.
//!
//! Owns: the start path's disk work. A directory the node will not start on (damaged, or left in
//! the middle of rejoining) is moved aside whole, never deleted, once sled has released it, under
//! `<dir>.aside-<UTC time>-<why>`; one stderr line names the node, the tree, the index, what was
//! wrong and where the copy went. The node then opens a fresh directory and, before anything else
//! is persisted, writes its first hard state (the recovering mark, any term and vote carried
//! forward, a new incarnation) durably to sled and to the durable-progress record; the identity
//! is then written from `init` as on a first boot. A clean directory keeps its incarnation.
//! Must never: delete or change a byte of a directory it sets aside (the storage crate puts back
//! what sled's own open rewrote), set aside a directory that belongs to another node, or hand
//! the core a hard state that is not yet durable in both copies of the mark.

use super::records;
use crate::raft::{Entry, HardState, InitialState};
use crate::shell::rejoin::{self, Cause, Rejoin, RejoinBugs, Start, StartRead, Stored};
use raftkv_storage::{self as storage, Identity, Recovered, Storage, WriteBatch};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// The start decision a caller applies: the node uses [`rejoin::decide`]; a test may pass a
/// variant with a switch on.
pub type Decide = fn(&StartRead, RejoinBugs) -> Start;

/// Opens (or sets aside and recreates) the data directory of node `me` and reads what is durable.
pub fn open_data_dir(
    me: &str,
    ids: &[String],
    dir: &Path,
    decide: Decide,
) -> Result<(Storage, InitialState), String> {
    let identity = Identity {
        node: me.to_string(),
        cluster: ids.to_vec(),
    };
    let (read, opened, damage) = match Storage::open(dir) {
        Ok((storage, rec)) => {
            check_identity(dir, &identity, rec.identity.as_ref())?;
            (records::clean_read(&rec), Some((storage, rec)), None)
        }
        Err(storage::Error::Damaged(d)) => {
            if let Some(owner) = d.node.as_ref().filter(|n| **n != me) {
                return Err(format!(
                    "{me}: data directory {} belongs to node {owner} and is damaged ({d}); \
                     it was left as it is",
                    dir.display()
                ));
            }
            (records::damaged_read(&d), None, Some(d))
        }
        Err(e) => {
            return Err(format!(
                "{me}: cannot open data directory {}: {e}",
                dir.display()
            ))
        }
    };
    match (decide(&read, RejoinBugs::default()), opened) {
        (Start::AsIs, Some((storage, rec))) => load(&identity, dir, storage, rec),
        (Start::AsIs, None) => Err(format!(
            "{me}: the start decision kept a damaged directory {}",
            dir.display()
        )),
        (Start::Empty(rejoin), opened) => {
            let kept = match opened {
                Some((storage, _)) if read.is_empty() => Some(storage),
                Some((storage, _)) => {
                    drop(storage);
                    None
                }
                None => None,
            };
            let why = Why {
                read: &read,
                damage: damage.as_deref(),
            };
            start_empty(me, &identity, dir, kept, &rejoin, &why)
        }
    }
}

fn check_identity(dir: &Path, identity: &Identity, found: Option<&Identity>) -> Result<(), String> {
    match found {
        Some(found) if found != identity => Err(format!(
            "data directory {} belongs to node {} of cluster {:?}, not {} of {:?}",
            dir.display(),
            found.node,
            found.cluster,
            identity.node,
            identity.cluster
        )),
        _ => Ok(()),
    }
}

/// What the start found, for the name of the copy set aside and the stderr line.
struct Why<'a> {
    read: &'a StartRead,
    damage: Option<&'a storage::Damage>,
}

impl Why<'_> {
    fn slug(&self, cause: Cause) -> String {
        match (cause, self.damage) {
            (_, Some(d)) => format!("damaged-{}", d.kind.slug()),
            (Cause::Unfinished(_), None) => "rejoin-unfinished".into(),
            _ => "mark-unreadable".into(),
        }
    }

    fn text(&self, me: &str, dir: &Path, cause: Cause) -> String {
        if let Some(d) = self.damage {
            return match &d.node {
                Some(_) => d.to_string(),
                None => format!("{me}: {d}"),
            };
        }
        let copy = |s: Stored| match s {
            Stored::Absent => "absent".to_string(),
            Stored::Unreadable => "unreadable".to_string(),
            Stored::Intact(c) => storage::RecoveryMark::from(c.recovery).name().to_string(),
        };
        let what = match cause {
            Cause::Unfinished(_) => "was left before the node had rejoined",
            _ => "holds Raft state without both copies of the recovering mark",
        };
        format!(
            "data directory of node {me} ({}) {what} (recovering mark in sled's hard state: {}, \
             in the durable-progress record: {})",
            dir.display(),
            copy(self.read.hard_state),
            copy(self.read.record)
        )
    }
}

/// Sets the directory aside (unless it is empty), opens a fresh one, and writes the first hard
/// state and then the identity. `kept` is the open handle of an empty directory.
fn start_empty(
    me: &str,
    identity: &Identity,
    dir: &Path,
    kept: Option<Storage>,
    rejoin: &Rejoin,
    why: &Why<'_>,
) -> Result<(Storage, InitialState), String> {
    let incarnation =
        rejoin::new_incarnation(rejoin.incarnation_floor, unix_nanos(), random_bits());
    let hard_state = rejoin.hard_state(incarnation);
    let starting = starting_text(&hard_state, &identity.cluster);
    let found = match kept {
        Some(_) => "an empty data directory (a first boot or a wiped disk)",
        None => {
            let to = storage::set_aside(dir, &why.slug(rejoin.cause), SystemTime::now()).map_err(
                |e| {
                    let what = why.text(me, dir, rejoin.cause);
                    format!("{what}; and the directory could not be moved aside: {e}")
                },
            )?;
            tracing::warn!(
                "{}; moved the whole directory aside to {}; {starting}",
                why.text(me, dir, rejoin.cause),
                to.display()
            );
            "a fresh data directory"
        }
    };
    let fresh = |e: storage::Error| {
        format!(
            "{me}: cannot create a fresh data directory {}: {e}",
            dir.display()
        )
    };
    let mut storage = match kept {
        Some(storage) => storage,
        None => Storage::open(dir).map_err(fresh)?.0,
    };
    storage
        .persist(&WriteBatch {
            snapshot: None,
            entries: vec![],
            hard_state: Some(hard_state.into()),
        })
        .map_err(|e| format!("{me}: cannot write the first hard state: {e}"))?;
    storage
        .set_identity(identity)
        .map_err(|e| format!("{me}: cannot record identity: {e}"))?;
    tracing::info!("{me} opened {}: {found}; {starting}", dir.display());
    debug_assert_eq!(storage.hard_state(), hard_state.into());
    let state = InitialState {
        hard_state,
        snapshot: None,
        entries: vec![],
    };
    Ok((storage, state))
}

/// How the node starts, in words: its mark, what it carries forward, its incarnation.
fn starting_text(hs: &HardState, cluster: &[String]) -> String {
    let mark = storage::RecoveryMark::from(hs.recovery).name();
    let carried = match hs.recovery {
        crate::raft::Recovery::CatchingUp => {
            let vote = hs.vote.map_or("none".to_string(), |v| {
                super::replica::node_name(cluster, v)
                    .map_or_else(|| format!("id {v}"), str::to_string)
            });
            format!(", term {} and vote {vote} carried forward", hs.term)
        }
        _ => ", term and vote unknown".to_string(),
    };
    format!(
        "starting with an empty log, {mark}{carried}, incarnation {}",
        hs.incarnation
    )
}

/// Reads a directory the node starts on as it is: snapshot and log into the core's initial state.
fn load(
    identity: &Identity,
    dir: &Path,
    mut storage: Storage,
    rec: Recovered,
) -> Result<(Storage, InitialState), String> {
    let me = &identity.node;
    if rec.identity.is_none() {
        storage
            .set_identity(identity)
            .map_err(|e| format!("{me}: cannot record identity: {e}"))?;
    }
    let snapshot = storage
        .load_snapshot()
        .map_err(|e| format!("{me}: cannot load snapshot: {e}"))?;
    let mut entries = Vec::new();
    let mut next = rec.first_index;
    while next <= rec.last_index {
        let batch = storage
            .entries(next, rec.last_index + 1, 64 << 20)
            .map_err(|e| format!("{me}: cannot read log from index {next}: {e}"))?;
        let Some(last) = batch.last() else {
            return Err(format!(
                "{me}: log ends at {} but storage returned nothing from {next}",
                rec.last_index
            ));
        };
        next = last.index + 1;
        entries.extend(batch.into_iter().map(Entry::from));
    }
    tracing::info!(
        "{me} opened {}: term {} commit {} mark {} incarnation {} snapshot {:?} log [{}, {}]",
        dir.display(),
        rec.hard_state.term,
        rec.hard_state.commit,
        rec.hard_state.recovery.name(),
        rec.hard_state.incarnation,
        snapshot.as_ref().map(|(m, _)| m.index),
        rec.first_index,
        rec.last_index
    );
    let state = InitialState {
        hard_state: rec.hard_state.into(),
        snapshot: snapshot.map(|(m, d)| (m.into(), Arc::new(d))),
        entries,
    };
    Ok((storage, state))
}

/// Nanoseconds since 1970 by the wall clock (0 before it, which the floor then lifts).
fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// 64 random bits: std's hasher keys come from the operating system's random source.
fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_nanos());
    h.finish()
}
