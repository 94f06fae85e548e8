//! Disk faults of `raftkv test --disk-faults`: the damage kinds, and damaging a killed node's data
//! directory with one of them.
//!
//! Owns: the kinds (`flip`, `drop`, `misdirect`, `truncate`, `hardstate`, `snapshot`, `wipe`), the
//! nearest kind to apply when one does not fit what a directory holds (no snapshot yet, no log
//! record after the snapshot), reading what a closed directory holds (through the storage crate's
//! read-only examination of a private copy), choosing the record, byte and bit from the caller's
//! generator (so from the run's seed), and damaging with the storage crate's fault helpers.
//! Must never: touch a directory whose node is still running (the caller kills it first), write
//! anywhere but that one directory, damage a directory that is already damaged, or report a
//! damage it did not apply.

use crate::rng::Rng;
use raftkv_storage::examine::{self, Options};
use raftkv_storage::{fault, HardState};
use std::path::Path;

/// One kind of damage to a node's data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// A flipped bit in one log record (a bad sector, a bit rot).
    Flip,
    /// One log record removed (a lost write).
    Drop,
    /// One log record written under another index too (a misdirected write).
    Misdirect,
    /// One log record cut short (a torn or partly lost write).
    Truncate,
    /// The hard state or the durable-progress record: a flipped bit in either, the hard state
    /// rolled back to an older term, or the record file lost.
    HardState,
    /// A flipped bit in one snapshot chunk.
    Snapshot,
    /// Everything in the directory removed (a replaced disk).
    Wipe,
}

impl DiskFault {
    pub const ALL: [DiskFault; 7] = [
        DiskFault::Flip,
        DiskFault::Drop,
        DiskFault::Misdirect,
        DiskFault::Truncate,
        DiskFault::HardState,
        DiskFault::Snapshot,
        DiskFault::Wipe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DiskFault::Flip => "flip",
            DiskFault::Drop => "drop",
            DiskFault::Misdirect => "misdirect",
            DiskFault::Truncate => "truncate",
            DiskFault::HardState => "hardstate",
            DiskFault::Snapshot => "snapshot",
            DiskFault::Wipe => "wipe",
        }
    }

    /// Itself, then the kinds to try when it does not apply, nearest first: another damaged log
    /// record, then any other record, then the hard state; a wipe last (it always applies).
    fn nearest(self) -> &'static [DiskFault] {
        use DiskFault::*;
        match self {
            Flip => &[Flip, Truncate, Snapshot, HardState, Wipe],
            Drop => &[Drop, Truncate, Flip, Snapshot, HardState, Wipe],
            Misdirect => &[Misdirect, Drop, Flip, Snapshot, HardState, Wipe],
            Truncate => &[Truncate, Flip, Snapshot, HardState, Wipe],
            HardState => &[HardState, Flip, Wipe],
            Snapshot => &[Snapshot, Flip, HardState, Wipe],
            Wipe => &[Wipe],
        }
    }
}

/// `all`, or a comma list of kinds (repeats kept once).
pub fn parse(text: &str) -> Result<Vec<DiskFault>, String> {
    if text.trim() == "all" {
        return Ok(DiskFault::ALL.to_vec());
    }
    super::parse_list("--disk-faults", text, &DiskFault::ALL, DiskFault::name)
        .map_err(|e| format!("{e}, or all"))
}

/// The damage applied to a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The kind applied: the one asked for, or the nearest that applied.
    pub fault: DiskFault,
    /// What exactly was damaged (and, for a substitute, why the kind asked for did not apply).
    pub detail: String,
}

/// Damages the closed data directory `dir` with `wanted`, or with the nearest kind that applies
/// to what it holds. An error (nothing damaged) when the directory cannot be read, is empty, or is
/// already damaged.
pub fn damage(dir: &Path, wanted: DiskFault, rng: &mut Rng) -> Result<Applied, String> {
    let held = survey(dir)?;
    for &kind in wanted.nearest() {
        if lacks(kind, &held).is_some() {
            continue;
        }
        let detail = apply(dir, kind, &held, rng)
            .map_err(|e| format!("{} of {}: {e}", kind.name(), dir.display()))?;
        let detail = match lacks(wanted, &held) {
            Some(why) => format!("{detail} (instead of {}: {why})", wanted.name()),
            None => detail,
        };
        return Ok(Applied {
            fault: kind,
            detail,
        });
    }
    Err(format!("no damage applies to {}", dir.display()))
}

/// What a closed directory holds that a damage can aim at (intact records only).
struct Survey {
    /// Log records recovery keeps (after the snapshot), as (index, stored length), in order.
    log: Vec<(u64, usize)>,
    /// Snapshot chunks as (chunk number, stored length).
    chunks: Vec<(u32, usize)>,
    snapshot_index: Option<u64>,
    hard_state: Option<HardState>,
    /// The durable-progress record exists and is intact.
    progress: bool,
}

impl Survey {
    /// ` (log A..=B)`, naming the range the damaged record was in.
    fn range(&self) -> String {
        match (self.log.first(), self.log.last()) {
            (Some((a, _)), Some((b, _))) => format!(" (log {a}..={b})"),
            _ => String::new(),
        }
    }
}

fn survey(dir: &Path) -> Result<Survey, String> {
    let options = Options {
        snapshot_data: false,
        raw: true,
    };
    let image = examine::examine_with(dir, options)
        .map_err(|e| format!("cannot read {} to damage it: {e}", dir.display()))?;
    if let Some(p) = image.problems.iter().find(|p| p.fatal) {
        return Err(format!(
            "{} is already damaged (tree `{}`: {}), so it was left as it is",
            dir.display(),
            p.tree,
            p.detail
        ));
    }
    let kept = image.first_index..=image.last_index;
    let mut log = Vec::new();
    let mut chunks = Vec::new();
    for r in image.raw.iter().filter(|r| r.problem.is_none()) {
        match r.tree.as_str() {
            "log" => {
                if let Ok(key) = <[u8; 8]>::try_from(r.key.as_slice()) {
                    let index = u64::from_be_bytes(key);
                    if kept.contains(&index) {
                        log.push((index, r.len));
                    }
                }
            }
            "snapshot" => {
                if let Some(n) = r
                    .key_text
                    .strip_prefix("chunk/")
                    .and_then(|n| n.parse().ok())
                {
                    chunks.push((n, r.len));
                }
            }
            _ => {}
        }
    }
    debug_assert!(
        log.windows(2).all(|w| w[0].0 < w[1].0),
        "raw walk in key order"
    );
    Ok(Survey {
        log,
        chunks,
        snapshot_index: image.snapshot.map(|s| s.meta.index),
        hard_state: image.hard_state,
        progress: image.progress.is_some(),
    })
}

/// Why `kind` does not apply to what the directory holds; `None` when it does.
fn lacks(kind: DiskFault, held: &Survey) -> Option<&'static str> {
    use DiskFault::*;
    match kind {
        Flip | Drop | Misdirect | Truncate if held.log.is_empty() => {
            Some("no log record after the snapshot")
        }
        Snapshot if held.chunks.is_empty() => Some("no snapshot yet"),
        HardState if held.hard_state.is_none() && !held.progress => {
            Some("neither a hard state nor a durable-progress record")
        }
        _ => None,
    }
}

type Damaged = Result<String, raftkv_storage::Error>;

/// Applies `kind`, which [`lacks`] said applies; returns what it did.
fn apply(dir: &Path, kind: DiskFault, held: &Survey, rng: &mut Rng) -> Damaged {
    match kind {
        DiskFault::Flip => {
            let (index, len) = pick(&held.log, rng)?;
            let (at, mask) = (rng.below(len as u64) as usize, bit(rng));
            fault::flip_log_byte(dir, index, at, mask)?;
            Ok(format!(
                "flipped bit {mask:#04x} of byte {at} of log record {index}{}",
                held.range()
            ))
        }
        DiskFault::Drop => {
            let (index, _) = pick(&held.log, rng)?;
            fault::remove_log_record(dir, index)?;
            Ok(format!("removed log record {index}{}", held.range()))
        }
        DiskFault::Misdirect => misdirect(dir, held, rng),
        DiskFault::Truncate => {
            let (index, len) = pick(&held.log, rng)?;
            let keep = rng.below(len as u64) as usize;
            fault::truncate_log_record(dir, index, keep)?;
            Ok(format!(
                "cut log record {index} to {keep} of its {len} bytes{}",
                held.range()
            ))
        }
        DiskFault::HardState => hard_state(dir, held, rng),
        DiskFault::Snapshot => {
            let (chunk, len) = pick(&held.chunks, rng)?;
            let (at, mask) = (rng.below(len as u64) as usize, bit(rng));
            fault::flip_snapshot_byte(dir, chunk, at, mask)?;
            let of = held
                .snapshot_index
                .map_or(String::new(), |i| format!(" (snapshot at index {i})"));
            Ok(format!(
                "flipped bit {mask:#04x} of byte {at} of snapshot chunk {chunk}{of}"
            ))
        }
        DiskFault::Wipe => {
            let removed = fault::wipe_dir(dir)?;
            Ok(format!(
                "removed everything in the directory ({removed} entries)"
            ))
        }
    }
}

fn pick<T: Copy>(items: &[T], rng: &mut Rng) -> Result<T, raftkv_storage::Error> {
    rng.pick(items)
        .copied()
        .ok_or_else(|| raftkv_storage::Error::Invalid("nothing to damage".into()))
}

fn bit(rng: &mut Rng) -> u8 {
    1 << rng.below(8)
}

/// One record written under another index as well: over another record of the log, or past its
/// end when the log holds one record.
fn misdirect(dir: &Path, held: &Survey, rng: &mut Rng) -> Damaged {
    let (from, _) = pick(&held.log, rng)?;
    let others: Vec<u64> = held
        .log
        .iter()
        .map(|&(i, _)| i)
        .filter(|&i| i != from)
        .collect();
    let (to, where_) = match rng.pick(&others) {
        Some(&to) => (to, "over log record"),
        None => (from + 1, "past the log's end, under index"),
    };
    debug_assert_ne!(from, to);
    fault::copy_log_record(dir, from, to)?;
    Ok(format!(
        "wrote log record {from} {where_} {to}{}",
        held.range()
    ))
}

/// The ways the `hardstate` kind damages, among those the directory allows.
#[derive(Clone, Copy)]
enum HardStateWay {
    FlipHardState,
    RollBack(HardState),
    FlipProgress,
    RemoveProgress,
}

fn hard_state(dir: &Path, held: &Survey, rng: &mut Rng) -> Damaged {
    let mut ways = Vec::new();
    if let Some(hs) = held.hard_state {
        ways.push(HardStateWay::FlipHardState);
        if hs.term > 0 {
            ways.push(HardStateWay::RollBack(hs));
        }
    }
    if held.progress {
        ways.extend([HardStateWay::FlipProgress, HardStateWay::RemoveProgress]);
    }
    let at = rng.next_u64() as usize;
    let mask = bit(rng);
    match pick(&ways, rng)? {
        HardStateWay::FlipHardState => {
            fault::flip_meta_byte(dir, "hard_state", at, mask)?;
            Ok(format!(
                "flipped bit {mask:#04x} of a byte of the hard state"
            ))
        }
        HardStateWay::RollBack(hs) => {
            let older = HardState {
                term: hs.term - 1,
                vote: None,
                ..hs
            };
            fault::set_hard_state(dir, &older)?;
            Ok(format!(
                "rolled the hard state back from term {} (vote {:?}) to term {} without a vote",
                hs.term, hs.vote, older.term
            ))
        }
        HardStateWay::FlipProgress => {
            fault::flip_progress_byte(dir, at, mask)?;
            Ok(format!(
                "flipped bit {mask:#04x} of a byte of the durable-progress record"
            ))
        }
        HardStateWay::RemoveProgress => {
            fault::remove_progress_record(dir)?;
            Ok("removed the durable-progress record file".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv_storage::{Entry, EntryKind, Identity, SnapshotMeta, Storage, WriteBatch};

    /// A directory holding entries 1..=20 of term 1 (hard state term 2, vote 1, commit 15), with
    /// a snapshot at index 8 when `snapshot`.
    fn build(dir: &Path, snapshot: bool) {
        let (mut st, _) = Storage::open(dir).expect("open");
        st.set_identity(&Identity {
            node: "n1".into(),
            cluster: vec!["n1".into()],
        })
        .expect("identity");
        let entries = (1..=20)
            .map(|index| Entry {
                term: 1,
                index,
                kind: EntryKind::Normal,
                data: vec![index as u8; 40],
            })
            .collect();
        let hard_state = Some(HardState {
            term: 2,
            vote: Some(1),
            commit: 15,
            ..HardState::default()
        });
        st.persist(&WriteBatch {
            snapshot: None,
            entries,
            hard_state,
        })
        .expect("persist");
        if snapshot {
            let meta = SnapshotMeta {
                index: 8,
                term: 1,
                voters: vec![1],
            };
            st.save_snapshot(&meta, &[7u8; 300]).expect("snapshot");
        }
    }

    fn examined(dir: &Path) -> examine::Image {
        examine::examine(dir).expect("examine")
    }

    #[test]
    fn each_kind_leaves_a_directory_the_inspector_finds_damaged() {
        let tmp = tempfile::tempdir().expect("tmp");
        for (n, kind) in DiskFault::ALL.into_iter().enumerate() {
            let dir = tmp.path().join(kind.name());
            build(&dir, true);
            let mut rng = Rng::new(n as u64);
            let applied = damage(&dir, kind, &mut rng).expect("damage");
            assert_eq!(applied.fault, kind, "{}", applied.detail);
            assert!(!applied.detail.contains("instead"), "{}", applied.detail);
            if kind == DiskFault::Wipe {
                let left = std::fs::read_dir(&dir).expect("dir kept").count();
                assert_eq!(left, 0, "wiped: {}", applied.detail);
                continue;
            }
            let image = examined(&dir);
            assert!(image.fatal(), "{kind:?} undetected: {}", applied.detail);
            let again = damage(&dir, kind, &mut rng).expect_err("already damaged");
            assert!(again.contains("already damaged"), "{again}");
        }
    }

    #[test]
    fn a_kind_that_does_not_apply_gives_way_to_the_nearest_and_says_why() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("n1");
        build(&dir, false);
        let applied = damage(&dir, DiskFault::Snapshot, &mut Rng::new(3)).expect("damage");
        assert_eq!(applied.fault, DiskFault::Flip);
        assert!(
            applied
                .detail
                .ends_with("(instead of snapshot: no snapshot yet)"),
            "{}",
            applied.detail
        );
        assert!(examined(&dir).fatal());
    }

    #[test]
    fn the_same_seed_damages_the_same_byte() {
        let tmp = tempfile::tempdir().expect("tmp");
        let details: Vec<String> = ["a", "b"]
            .iter()
            .map(|name| {
                let dir = tmp.path().join(name);
                build(&dir, true);
                damage(&dir, DiskFault::Flip, &mut Rng::new(11))
                    .expect("damage")
                    .detail
            })
            .collect();
        assert_eq!(details[0], details[1]);
        assert!(details[0].contains("(log 9..=20)"), "{}", details[0]);
    }

    #[test]
    fn kinds_parse_by_name_or_all_and_bad_ones_are_named() {
        assert_eq!(parse("all").expect("all"), DiskFault::ALL.to_vec());
        assert_eq!(
            parse("wipe, flip,wipe").expect("list"),
            vec![DiskFault::Wipe, DiskFault::Flip]
        );
        let e = parse("flip,melt").expect_err("unknown kind");
        assert!(e.contains("`melt`") && e.contains("hardstate"), "{e}");
        assert!(parse("").is_err(), "an empty list names nothing");
    }

    #[test]
    fn every_kind_tries_itself_first_and_ends_with_a_wipe() {
        for kind in DiskFault::ALL {
            let order = kind.nearest();
            assert_eq!(order[0], kind);
            assert_eq!(order.last(), Some(&DiskFault::Wipe), "{kind:?}");
        }
    }
}
