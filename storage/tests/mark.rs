//! The recovering mark's two copies (sled's hard state and the durable-progress record) through
//! the storage crate: a persist writes both, a clean open reports the record as it found it and
//! never clears a mark either copy holds.

use raftkv_storage::progress::{self, ProgressRecord};
use raftkv_storage::{fault, Entry, EntryKind, HardState, RecoveryMark, Storage, WriteBatch};
use std::path::Path;

fn hs(term: u64, recovery: RecoveryMark, incarnation: u64) -> HardState {
    HardState {
        term,
        vote: Some(1),
        commit: 0,
        recovery,
        incarnation,
    }
}

fn persist(dir: &Path, hard_state: HardState, entries: u64) {
    let (mut st, _) = Storage::open(dir).unwrap();
    let entries = (1..=entries)
        .map(|index| Entry {
            term: hard_state.term,
            index,
            kind: EntryKind::Normal,
            data: vec![],
        })
        .collect();
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state: Some(hard_state),
    })
    .unwrap();
}

fn record(dir: &Path) -> ProgressRecord {
    progress::read(dir).unwrap().unwrap()
}

#[test]
fn a_persist_writes_the_mark_and_the_incarnation_to_both_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let (st, rec) = Storage::open(&dir).unwrap();
    assert!(!rec.hard_state_stored && rec.progress.is_none());
    drop(st);
    assert_eq!(
        progress::read(&dir),
        Ok(None),
        "an empty directory has no record"
    );
    let first = hs(0, RecoveryMark::Probing, 1 << 60);
    persist(&dir, first, 0);
    assert_eq!(record(&dir).new.recovery, RecoveryMark::Probing);
    assert_eq!(record(&dir).incarnation(), 1 << 60);
    let (_st, rec) = Storage::open(&dir).unwrap();
    assert!(rec.hard_state_stored);
    assert_eq!(rec.hard_state, first);
    assert_eq!(
        rec.progress.map(|r| r.recovery()),
        Some(RecoveryMark::Probing)
    );
}

#[test]
fn a_clean_open_never_clears_a_mark_either_copy_holds() {
    // A kill between sled's flush of a step that cleared the mark and the record's write leaves
    // sled ordinary and the record probing: the open reports the record as found and marks both.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    persist(&dir, hs(3, RecoveryMark::Ordinary, 5), 4);
    let mut found = record(&dir);
    found.new.recovery = RecoveryMark::Probing;
    found.new.incarnation = 6;
    std::fs::write(dir.join(progress::PROGRESS_FILE), progress::encode(&found)).unwrap();
    let (st, rec) = Storage::open(&dir).unwrap();
    assert_eq!(rec.progress, Some(found), "the record as the open found it");
    assert_eq!(
        (rec.hard_state.recovery, rec.hard_state.incarnation),
        (RecoveryMark::Probing, 6)
    );
    assert_eq!(st.hard_state(), rec.hard_state);
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (_st, again) = Storage::open(&dir).unwrap();
    assert_eq!(
        again.hard_state.recovery,
        RecoveryMark::Probing,
        "sled's copy"
    );
    assert_eq!(record(&dir).recovery(), RecoveryMark::Probing, "the record");
    // The other way round: sled's copy catching up, the record ordinary.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    persist(&dir, hs(3, RecoveryMark::Ordinary, 5), 4);
    fault::set_hard_state(&dir, &hs(3, RecoveryMark::CatchingUp, 5)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (_st, rec) = Storage::open(&dir).unwrap();
    assert_eq!(rec.hard_state.recovery, RecoveryMark::CatchingUp);
    assert_eq!(record(&dir).recovery(), RecoveryMark::CatchingUp);
}

#[test]
fn a_persisted_ordinary_hard_state_clears_both_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    persist(&dir, hs(2, RecoveryMark::CatchingUp, 9), 3);
    persist(&dir, hs(2, RecoveryMark::Ordinary, 9), 0);
    let (_st, rec) = Storage::open(&dir).unwrap();
    assert_eq!(rec.hard_state.recovery, RecoveryMark::Ordinary);
    assert_eq!(
        rec.progress.map(|r| r.recovery()),
        Some(RecoveryMark::Ordinary)
    );
}
