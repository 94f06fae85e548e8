//! The start path on real directories: damage moves the directory aside intact and starts empty
//! with the right mark and a new incarnation; a wiped directory probes; a restart during probing
//! probes again; a clean directory keeps its incarnation.

use super::*;
use crate::raft::Recovery;
use raftkv_storage::examine::{contents, examine_with, Options};
use raftkv_storage::{fault, EntryKind, HardState as StoredHardState, RecoveryMark};
use std::path::PathBuf;

fn ids() -> Vec<String> {
    vec!["n1".into(), "n2".into(), "n3".into()]
}

/// `root/n1` with entries 1..=8 of term 2, commit 5, a vote for n2 in term 2, incarnation 77.
fn build(root: &Path) -> PathBuf {
    let dir = root.join("n1");
    let (mut st, _) = Storage::open(&dir).unwrap();
    st.set_identity(&Identity {
        node: "n1".into(),
        cluster: ids(),
    })
    .unwrap();
    let entries = (1..=8)
        .map(|index| storage::Entry {
            term: 2,
            index,
            kind: EntryKind::Normal,
            data: format!("{{\"op\":\"write\",\"key\":{index},\"value\":1}}").into_bytes(),
        })
        .collect();
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state: Some(StoredHardState {
            term: 2,
            vote: Some(2),
            commit: 5,
            incarnation: 77,
            ..StoredHardState::default()
        }),
    })
    .unwrap();
    dir
}

/// The directories set aside next to `dir`.
fn kept(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.aside-", dir.file_name().unwrap().to_string_lossy());
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect();
    out.sort();
    out
}

fn start(dir: &Path) -> (Storage, InitialState) {
    open_data_dir("n1", &ids(), dir, rejoin::decide).unwrap()
}

/// The two copies of the mark in `dir` after a start: sled's hard state and the record.
fn both_copies(dir: &Path) -> (StoredHardState, raftkv_storage::progress::ProgressRecord) {
    let img = examine_with(dir, Options::default()).unwrap();
    assert!(img.problems.is_empty(), "{:?}", img.problems);
    assert_eq!(img.identity.map(|i| i.node), Some("n1".to_string()));
    (img.hard_state.unwrap(), img.progress.unwrap())
}

#[test]
fn a_damaged_directory_is_moved_aside_intact_and_the_node_catches_up_with_its_term_and_vote() {
    let root = tempfile::tempdir().unwrap();
    let dir = build(root.path());
    fault::flip_log_byte(&dir, 7, 12, 0x10).unwrap();
    let before = contents(&dir).unwrap();
    let (st, state) = start(&dir);
    let aside = kept(&dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let name = aside[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-damaged-bad-record"), "{name}");
    assert!(
        before == contents(&aside[0]).unwrap(),
        "the copy set aside changed"
    );
    // Empty, catching up, term and vote carried forward, a new incarnation.
    let hs = state.hard_state;
    assert_eq!(
        (hs.recovery, hs.term, hs.vote, hs.commit),
        (Recovery::CatchingUp, 2, Some(2), 0)
    );
    assert!(hs.incarnation > 77, "{}", hs.incarnation);
    assert!(state.entries.is_empty() && state.snapshot.is_none());
    assert_eq!(st.last_index(), 0);
    drop(st);
    let (stored, record) = both_copies(&dir);
    assert_eq!(HardState::from(stored), hs);
    assert_eq!(record.recovery(), RecoveryMark::CatchingUp);
    assert_eq!(record.incarnation(), hs.incarnation);
}

#[test]
fn a_damaged_hard_state_or_a_missing_record_leaves_term_and_vote_unknown() {
    type Damage = fn(&Path);
    let damages: [(Damage, &str); 2] = [
        (
            |dir| fault::flip_meta_byte(dir, "hard_state", 10, 0x04).unwrap(),
            "-damaged-bad-record",
        ),
        (
            |dir| std::fs::remove_file(dir.join(raftkv_storage::progress::PROGRESS_FILE)).unwrap(),
            "-damaged-progress-missing",
        ),
    ];
    for (damage, suffix) in damages {
        let root = tempfile::tempdir().unwrap();
        let dir = build(root.path());
        damage(&dir);
        let before = contents(&dir).unwrap();
        let (st, state) = start(&dir);
        let aside = kept(&dir);
        assert!(aside[0].to_string_lossy().ends_with(suffix), "{aside:?}");
        assert!(
            before == contents(&aside[0]).unwrap(),
            "the copy set aside changed"
        );
        let hs = state.hard_state;
        assert_eq!(
            (hs.recovery, hs.term, hs.vote),
            (Recovery::Probing, 0, None)
        );
        assert!(hs.incarnation > 0);
        drop(st);
        assert_eq!(both_copies(&dir).1.recovery(), RecoveryMark::Probing);
    }
}

#[test]
fn a_wiped_directory_probes_and_a_restart_during_probing_probes_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("n1");
    let (st, first) = start(&dir);
    assert_eq!(first.hard_state.recovery, Recovery::Probing);
    assert!(first.hard_state.incarnation > 0);
    assert!(
        kept(&dir).is_empty(),
        "an empty directory has nothing to keep"
    );
    drop(st);
    assert_eq!(both_copies(&dir).0.recovery, RecoveryMark::Probing);
    // The restart finds the mark: probing is owed again, in a fresh directory, above the old
    // incarnation; the unfinished one is kept.
    let (st, second) = start(&dir);
    assert_eq!(second.hard_state.recovery, Recovery::Probing);
    assert!(second.hard_state.incarnation > first.hard_state.incarnation);
    let aside = kept(&dir);
    assert_eq!(aside.len(), 1);
    assert!(aside[0].to_string_lossy().ends_with("-rejoin-unfinished"));
    drop(st);
    let (stored, record) = both_copies(&dir);
    assert_eq!(stored.incarnation, second.hard_state.incarnation);
    assert_eq!(record.recovery(), RecoveryMark::Probing);
}

#[test]
fn a_clean_ordinary_directory_starts_as_it_is_and_keeps_its_incarnation() {
    let root = tempfile::tempdir().unwrap();
    let dir = build(root.path());
    let (st, state) = start(&dir);
    assert!(kept(&dir).is_empty());
    assert_eq!(state.entries.len(), 8);
    let hs = state.hard_state;
    assert_eq!(
        (hs.recovery, hs.incarnation, hs.term),
        (Recovery::Ordinary, 77, 2)
    );
    drop(st);
    // While the core clears no mark, a clean marked directory starts as it is too.
    let (mut st, _) = Storage::open(&dir).unwrap();
    let marked = StoredHardState {
        recovery: RecoveryMark::CatchingUp,
        ..st.hard_state()
    };
    st.persist(&WriteBatch {
        hard_state: Some(marked),
        ..WriteBatch::default()
    })
    .unwrap();
    drop(st);
    let (st, state) = open_data_dir("n1", &ids(), &dir, rejoin::decide_for_this_core).unwrap();
    if !rejoin::CORE_CLEARS_MARKS {
        assert_eq!(state.entries.len(), 8);
        assert_eq!(state.hard_state.recovery, Recovery::CatchingUp);
    }
    drop(st);
    // With the marks binding it starts empty and catches up again.
    let (_st, state) = start(&dir);
    assert_eq!(state.hard_state.recovery, Recovery::CatchingUp);
    assert!(state.entries.is_empty());
}

#[test]
fn a_damaged_directory_of_another_node_is_left_where_it_is() {
    let root = tempfile::tempdir().unwrap();
    let dir = build(root.path());
    fault::flip_log_byte(&dir, 7, 12, 0x10).unwrap();
    let before = contents(&dir).unwrap();
    let err = open_data_dir("n2", &ids(), &dir, rejoin::decide)
        .err()
        .expect("refused");
    assert!(err.contains("belongs to node n1"), "{err}");
    assert!(kept(&dir).is_empty());
    assert!(before == contents(&dir).unwrap());
}
