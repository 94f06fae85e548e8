//! The durable-progress record through the real `persist`, stopped where a kill would stop it:
//! after the two-value record a truncation or snapshot install writes first, and after sled's
//! flush before the step's record. Every stop must reopen cleanly (the record is behind sled, or
//! holds the value sled still has), with the state before or after the step.
//!
//! One test function: the stop switch is process-wide, so the cases run one after another.

use raftkv_storage::fault::{self, StopPoint};
use raftkv_storage::{Entry, EntryKind, HardState, SnapshotMeta, Storage, WriteBatch};
use std::path::Path;

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to)
        .map(|index| Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        })
        .collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> Option<HardState> {
    Some(HardState {
        term,
        vote: Some(vote),
        commit,
        ..HardState::default()
    })
}

/// A directory holding entries 1..=20 (term 1 to 10, term 2 after), hard state term 2 vote 1.
fn build(dir: &Path) {
    let (mut st, _) = Storage::open(dir).unwrap();
    let mut all = entries(1, 10, 1);
    all.extend(entries(11, 20, 2));
    st.persist(&WriteBatch {
        snapshot: None,
        entries: all,
        hard_state: hs(2, 1, 12),
    })
    .unwrap();
}

/// Runs `step` on a fresh directory with the persist stopped at `point`; returns (last index,
/// its term, hard state term) after a reopen.
fn stopped(name: &str, point: StopPoint, step: &WriteBatch) -> (u64, u64, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    build(&dir);
    {
        let (mut st, _) = Storage::open(&dir).unwrap();
        fault::stop_persist_at(point);
        let err = st
            .persist(step)
            .expect_err("the stop point was not reached");
        assert!(err.to_string().contains("fault injection"), "{name}: {err}");
    }
    let (st, rec) = Storage::open(&dir).unwrap_or_else(|e| panic!("{name} {point:?}: {e}"));
    let last = rec.last_index;
    (last, st.term(last).unwrap().unwrap(), rec.hard_state.term)
}

#[test]
fn a_kill_at_either_side_of_sled_reopens_with_the_old_or_the_new_state() {
    // A new leader of term 3 overwrites 15..=20 with 15..=17: a truncation.
    let truncate = WriteBatch {
        snapshot: None,
        entries: entries(15, 17, 3),
        hard_state: hs(3, 2, 12),
    };
    let got = stopped("truncate", StopPoint::BeforeSled, &truncate);
    assert_eq!(got, (20, 2, 2), "old state");
    let got = stopped("truncate", StopPoint::BeforeProgress, &truncate);
    assert_eq!(got, (17, 3, 3), "new state");
    // A snapshot from a leader whose entry 14 has another term: the log is discarded.
    let install = WriteBatch {
        snapshot: Some((
            SnapshotMeta {
                index: 14,
                term: 3,
                voters: vec![1, 2, 3],
            },
            b"state".to_vec(),
        )),
        entries: vec![],
        hard_state: hs(3, 2, 14),
    };
    let got = stopped("install", StopPoint::BeforeSled, &install);
    assert_eq!(got, (20, 2, 2), "old state");
    let got = stopped("install", StopPoint::BeforeProgress, &install);
    assert_eq!(got, (14, 3, 3), "new state");
    // A plain append and a vote: the record is one step behind, never ahead.
    let append = WriteBatch {
        snapshot: None,
        entries: entries(21, 22, 4),
        hard_state: hs(4, 3, 12),
    };
    let got = stopped("append", StopPoint::BeforeProgress, &append);
    assert_eq!(got, (22, 4, 4), "new state");
    // The discarding snapshot with entries after it, killed between sled's snapshot batch and
    // its log batch: the log then holds the snapshot alone, which a record of the whole step
    // (old: ..20 term 2, new: ..16 term 3) would call damage; as two steps it is the first's.
    let install_and_append = WriteBatch {
        entries: entries(15, 16, 3),
        ..install.clone()
    };
    let got = stopped(
        "install+append",
        StopPoint::BetweenSnapshotAndLog,
        &install_and_append,
    );
    assert_eq!(got, (14, 3, 3), "the snapshot step");
    let got = stopped(
        "install+append",
        StopPoint::BeforeProgress,
        &install_and_append,
    );
    assert_eq!(got, (14, 3, 3), "the snapshot step, flushed");
    an_empty_record_file_is_absent_not_damaged();
}

/// A kill between creating the record file and its first write, at the first open of a new
/// directory, leaves an empty file: the directory still opens. The same empty file beside a log
/// is a missing record, which is damage. (Run from the test above: the stop switch is global.)
fn an_empty_record_file_is_absent_not_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh");
    drop(Storage::open(&fresh).unwrap());
    std::fs::write(fresh.join(raftkv_storage::progress::PROGRESS_FILE), b"").unwrap();
    let reopened = Storage::open(&fresh);
    assert!(reopened.is_ok(), "{:?}", reopened.err());
    drop(reopened);
    let used = tmp.path().join("used");
    build(&used);
    std::fs::write(used.join(raftkv_storage::progress::PROGRESS_FILE), b"").unwrap();
    let err = Storage::open(&used)
        .err()
        .expect("a log without its record is damage");
    assert!(err.to_string().contains("missing"), "{err}");
}
