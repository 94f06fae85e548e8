//! The node on a damaged or wiped data directory: it moves a damaged directory aside whole (every
//! file as it was except sled's own `db`, whose records stay the same: sled's first open after a
//! write session rewrites parts of that file itself), prints one line naming the node, the tree,
//! the index, what was wrong and where the copy went, and starts with an empty log, carrying its
//! term and vote forward only when both copies of them read intact, under a new incarnation.
//! Damage above the commit index included: the intact records after it may have been
//! acknowledged, so the node never starts on what is left of its log. The start path itself
//! (`raftkv::node::start`) is also run in this process, where a test can restart it at will: a
//! restart during probing probes again, a clean directory keeps its incarnation.

mod node_common;

use raftkv::node::start::open_data_dir;
use raftkv::raft::{InitialState, Recovery};
use raftkv::shell::rejoin;
use raftkv_storage::examine::{contents, examine_with, Options};
use raftkv_storage::{
    fault, Entry, EntryKind, HardState, Identity, RecoveryMark, Storage, WriteBatch,
};
use std::io::Write;
use std::path::{Path, PathBuf};

fn cluster() -> Vec<String> {
    vec!["n1".into(), "n2".into(), "n3".into()]
}

/// `root/n1`: the directory of node n1 of a three-node cluster, entries 1..=8, commit 5, a vote
/// for n1 in term 1, incarnation 7.
fn build(root: &Path) -> PathBuf {
    let dir = root.join("n1");
    let (mut st, _) = Storage::open(&dir).unwrap();
    st.set_identity(&Identity {
        node: "n1".into(),
        cluster: cluster(),
    })
    .unwrap();
    let entries = (1..=8)
        .map(|index| Entry {
            term: 1,
            index,
            kind: EntryKind::Normal,
            data: format!("{{\"op\":\"write\",\"key\":{index},\"value\":1}}").into_bytes(),
        })
        .collect();
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state: Some(HardState {
            term: 1,
            vote: Some(1),
            commit: 5,
            incarnation: 7,
            ..HardState::default()
        }),
    })
    .unwrap();
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(200));
    dir
}

/// Starts n1 of a three-node cluster (its peers are not running) on `root`, sends `init`, closes
/// stdin; returns the exit code and stderr.
fn start(root: &Path) -> (Option<i32>, String) {
    let mut p = node_common::spawn(root, &[]);
    let init = node_common::init_line("n1", &cluster(), 1);
    if let Some(stdin) = p.stdin.as_mut() {
        let _ = writeln!(stdin, "{init}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, stderr) = p.wait_with_stderr();
    (status.code(), stderr)
}

/// The one line that names the damage, and the directory it names as the copy.
fn aside_line(stderr: &str) -> (String, PathBuf) {
    let line = stderr
        .lines()
        .find(|l| l.contains("damaged data directory"))
        .unwrap_or_else(|| panic!("no damage line: {stderr}"));
    let to = line
        .split("moved the whole directory aside to ")
        .nth(1)
        .and_then(|rest| rest.split("; ").next())
        .unwrap_or_else(|| panic!("the line does not say where the copy went: {line}"));
    (line.to_string(), PathBuf::from(to))
}

/// The incarnation the start line names (`incarnation N` at its end).
fn named_incarnation(line: &str) -> u64 {
    line.rsplit("incarnation ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no incarnation in {line}"))
}

/// The new directory's two copies of the mark: sled's hard state and the durable-progress record.
fn marks(dir: &Path) -> (HardState, RecoveryMark, u64) {
    let img = examine_with(dir, Options::default()).unwrap();
    assert!(img.problems.is_empty(), "{:?}", img.problems);
    let record = img.progress.expect("a record");
    (
        img.hard_state.expect("a hard state"),
        record.recovery(),
        record.incarnation(),
    )
}

#[test]
fn a_damaged_directory_is_moved_aside_intact_and_the_node_starts_empty_catching_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    fault::flip_log_byte(&dir, 7, 12, 0x10).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = contents(&dir).unwrap();
    let (code, stderr) = start(tmp.path());
    assert_eq!(code, Some(0), "{stderr}");
    let (line, aside) = aside_line(&stderr);
    for want in [
        "n1",
        "tree `log` at index 7",
        "checksum mismatch",
        "catching-up, term 1 and vote n1 carried forward",
    ] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
    assert_eq!(aside.parent(), dir.parent());
    let name = aside.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("n1.aside-") && name.ends_with("-damaged-bad-record"),
        "{name}"
    );
    assert!(
        before == contents(&aside).unwrap(),
        "the copy set aside changed"
    );
    let (hs, record_mark, record_incarnation) = marks(&dir);
    let incarnation = named_incarnation(&line);
    assert!(incarnation > 7, "{line}");
    assert_eq!(
        (hs.recovery, hs.incarnation),
        (RecoveryMark::CatchingUp, incarnation)
    );
    assert_eq!(
        (record_mark, record_incarnation),
        (RecoveryMark::CatchingUp, incarnation)
    );
    assert!(hs.term >= 1, "the carried term is never lowered: {hs:?}");
}

#[test]
fn without_its_record_or_its_whole_directory_the_node_starts_empty_probing() {
    // The durable-progress record removed: damage, and term and vote are unknown.
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    std::fs::remove_file(dir.join(raftkv_storage::progress::PROGRESS_FILE)).unwrap();
    let before = contents(&dir).unwrap();
    let (code, stderr) = start(tmp.path());
    assert_eq!(code, Some(0), "{stderr}");
    let (line, aside) = aside_line(&stderr);
    assert!(
        line.contains("tree `progress`: durable-progress record missing"),
        "{line}"
    );
    assert!(line.contains("probing, term and vote unknown"), "{line}");
    assert!(
        before == contents(&aside).unwrap(),
        "the copy set aside changed"
    );
    let (hs, record_mark, _) = marks(&dir);
    assert_eq!(
        (hs.recovery, record_mark),
        (RecoveryMark::Probing, RecoveryMark::Probing)
    );
    // The whole directory wiped: nothing to keep, probing under a new incarnation.
    std::fs::remove_dir_all(&dir).unwrap();
    let (code, stderr) = start(tmp.path());
    assert_eq!(code, Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("n1 opened") && l.contains("an empty data directory"))
        .unwrap_or_else(|| panic!("no start line: {stderr}"));
    let (hs, record_mark, _) = marks(&dir);
    assert_eq!(
        (hs.recovery, record_mark),
        (RecoveryMark::Probing, RecoveryMark::Probing)
    );
    assert_eq!(hs.incarnation, named_incarnation(line));
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

/// The start path in this process, with the marks binding (the rules as they are).
fn start_here(dir: &Path) -> (Storage, InitialState) {
    open_data_dir("n1", &cluster(), dir, rejoin::decide).unwrap()
}

#[test]
fn a_damaged_hard_state_leaves_term_and_vote_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    fault::flip_meta_byte(&dir, "hard_state", 10, 0x04).unwrap();
    let before = contents(&dir).unwrap();
    let (st, state) = start_here(&dir);
    let aside = kept(&dir);
    assert!(
        aside[0].to_string_lossy().ends_with("-damaged-bad-record"),
        "{aside:?}"
    );
    assert!(
        before == contents(&aside[0]).unwrap(),
        "the copy set aside changed"
    );
    let hs = state.hard_state;
    assert_eq!(
        (hs.recovery, hs.term, hs.vote),
        (Recovery::Probing, 0, None)
    );
    assert!(hs.incarnation > 7 && state.entries.is_empty());
    drop(st);
    let (stored, record_mark, _) = marks(&dir);
    assert_eq!(
        (stored.recovery, record_mark),
        (RecoveryMark::Probing, RecoveryMark::Probing)
    );
}

#[test]
fn a_restart_during_probing_probes_again_above_the_old_incarnation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let (st, first) = start_here(&dir);
    assert_eq!(first.hard_state.recovery, Recovery::Probing);
    assert!(
        kept(&dir).is_empty(),
        "an empty directory has nothing to keep"
    );
    drop(st);
    // The restart finds the mark: probing is owed again, in a fresh directory, above the old
    // incarnation; the unfinished one is kept.
    let (st, second) = start_here(&dir);
    assert_eq!(second.hard_state.recovery, Recovery::Probing);
    assert!(second.hard_state.incarnation > first.hard_state.incarnation);
    let aside = kept(&dir);
    assert_eq!(aside.len(), 1);
    assert!(aside[0].to_string_lossy().ends_with("-rejoin-unfinished"));
    drop(st);
    let (stored, record_mark, record_incarnation) = marks(&dir);
    assert_eq!(stored.recovery, RecoveryMark::Probing);
    assert_eq!(
        (record_mark, record_incarnation),
        (RecoveryMark::Probing, second.hard_state.incarnation)
    );
}

#[test]
fn a_clean_directory_keeps_its_incarnation_and_a_marked_one_catches_up_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let (st, state) = start_here(&dir);
    assert!(kept(&dir).is_empty());
    let hs = state.hard_state;
    assert_eq!(
        (hs.recovery, hs.incarnation, hs.term),
        (Recovery::Ordinary, 7, 1)
    );
    assert_eq!(state.entries.len(), 8);
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(100));
    fault::set_hard_state(
        &dir,
        &HardState {
            recovery: RecoveryMark::CatchingUp,
            ..marks(&dir).0
        },
    )
    .unwrap();
    // A marked directory starts empty and catches up again, term and vote carried.
    let (_st, state) = start_here(&dir);
    let hs = state.hard_state;
    assert_eq!(
        (hs.recovery, hs.term, hs.vote),
        (Recovery::CatchingUp, 1, Some(1))
    );
    assert!(state.entries.is_empty());
}

#[test]
fn a_damaged_directory_of_another_node_is_left_where_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    fault::flip_log_byte(&dir, 7, 12, 0x10).unwrap();
    let before = contents(&dir).unwrap();
    let err = open_data_dir("n2", &cluster(), &dir, rejoin::decide)
        .err()
        .expect("refused");
    assert!(err.contains("belongs to node n1"), "{err}");
    assert!(kept(&dir).is_empty());
    assert!(before == contents(&dir).unwrap());
}
