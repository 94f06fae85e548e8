//! Damage and bad input: a flipped byte, a record under the wrong index, a hole, a truncated
//! record and a damaged snapshot are each refused wherever they are, whatever the commit index
//! says (sled leaves a clean prefix after a kill, so no bad record is a torn write), and reported
//! by `examine`; foreign, newer, older, locked and non-directory paths are refused with a clear
//! error and nothing on disk changed.

use raftkv_storage::examine::examine;
use raftkv_storage::{
    fault, DamageKind, Entry, EntryKind, Error, HardState, Identity, SnapshotMeta, Storage,
    WriteBatch,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A node directory with entries 1..=n, commit `commit`, and an identity.
fn build(dir: &Path, n: u64, commit: u64) {
    let (mut st, _) = Storage::open(dir).unwrap();
    st.set_identity(&Identity {
        node: "n2".into(),
        cluster: vec!["n1".into(), "n2".into(), "n3".into()],
    })
    .unwrap();
    let entries = (1..=n)
        .map(|i| Entry {
            term: 1 + i / 10,
            index: i,
            kind: EntryKind::Normal,
            data: format!("{{\"op\":\"write\",\"key\":{i},\"value\":{}}}", i * 2).into_bytes(),
        })
        .collect();
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state: Some(HardState {
            term: 1 + n / 10,
            vote: Some(1),
            commit,
            ..HardState::default()
        }),
    })
    .unwrap();
}

fn snapshot_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn corruption(
    r: Result<(Storage, raftkv_storage::Recovered), Error>,
) -> (&'static str, Option<u64>, String) {
    let d = damage(r);
    (d.tree, d.index, d.to_string())
}

fn damage(r: Result<(Storage, raftkv_storage::Recovered), Error>) -> raftkv_storage::Damage {
    match r {
        Err(Error::Damaged(d)) => *d,
        Err(e) => panic!("expected damage, got: {e}"),
        Ok((_, rec)) => panic!("expected damage, open succeeded: {rec:?}"),
    }
}

fn setup(n: u64, commit: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n2");
    build(&dir, n, commit);
    (tmp, dir)
}

#[test]
fn flipped_byte_at_or_below_commit_is_refused_and_left_for_the_inspector() {
    for offset in [0usize, 3, 7, 12, 30] {
        let (_t, dir) = setup(20, 15);
        fault::flip_log_byte(&dir, 9, offset, 0x40).unwrap();
        let (tree, index, msg) = corruption(Storage::open(&dir));
        assert_eq!((tree, index), ("log", Some(9)), "offset {offset}: {msg}");
        assert!(msg.contains("node n2"), "the error names the node: {msg}");
        // Nothing was repaired: the inspector still sees the same record, and open still refuses.
        let img = examine(&dir).unwrap();
        assert!(img.fatal());
        assert_eq!(
            img.records.len(),
            20,
            "records were deleted by a refused open"
        );
        assert!(
            img.problems
                .iter()
                .any(|p| p.tree == "log" && p.index == Some(9) && p.fatal),
            "{:?}",
            img.problems
        );
        let (_, again, _) = corruption(Storage::open(&dir));
        assert_eq!(again, Some(9));
    }
}

#[test]
fn a_damaged_record_above_the_commit_is_damage_and_the_records_after_it_are_kept() {
    let (_t, dir) = setup(20, 15);
    fault::flip_log_byte(&dir, 17, 20, 0x01).unwrap();
    for _ in 0..2 {
        let d = damage(Storage::open(&dir));
        assert_eq!(
            (d.tree, d.index, d.kind),
            ("log", Some(17), DamageKind::BadRecord)
        );
        assert_eq!(d.node.as_deref(), Some("n2"));
        assert_eq!(d.hard_state.map(|h| h.commit), Some(15));
        assert!(
            d.progress.is_some(),
            "the intact record goes into the report"
        );
        // The intact records after it, which the node may have acknowledged, are all there.
        let img = examine(&dir).unwrap();
        assert_eq!(img.records.len(), 20);
        assert_eq!(img.intact.len(), 19);
        assert!(img.fatal());
    }
}

#[test]
fn a_truncated_last_record_is_damage_not_a_torn_tail() {
    let (_t, dir) = setup(20, 15);
    fault::truncate_log_record(&dir, 20, 11).unwrap();
    let d = damage(Storage::open(&dir));
    assert_eq!((d.index, d.kind), (Some(20), DamageKind::BadRecord));
    assert!(d.detail.contains("truncated"), "{d}");
    let img = examine(&dir).unwrap();
    assert!(
        img.problems
            .iter()
            .any(|p| p.index == Some(20) && p.fatal && p.detail.contains("truncated")),
        "{:?}",
        img.problems
    );
}

#[test]
fn a_record_chained_to_another_term_is_damage() {
    // Entries 1..=9 have term 1, 10..=19 term 2: entry 12 must store 2 as its previous term.
    let (_t, dir) = setup(20, 15);
    fault::set_log_prev_term(&dir, 12, 1).unwrap();
    let d = damage(Storage::open(&dir));
    assert_eq!(
        (d.tree, d.index, d.kind),
        ("log", Some(12), DamageKind::BrokenChain)
    );
    assert!(d.detail.contains("previous term 1"), "{d}");
    // At the boundary of terms too: entry 10 must chain to term 1.
    let (_t, dir) = setup(20, 15);
    fault::set_log_prev_term(&dir, 10, 2).unwrap();
    let d = damage(Storage::open(&dir));
    assert_eq!((d.index, d.kind), (Some(10), DamageKind::BrokenChain));
}

#[test]
fn record_under_the_wrong_index_is_caught() {
    let (_t, dir) = setup(20, 15);
    fault::copy_log_record(&dir, 4, 5).unwrap();
    let (tree, index, msg) = corruption(Storage::open(&dir));
    assert_eq!((tree, index), ("log", Some(5)), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    let img = examine(&dir).unwrap();
    assert!(img.problems.iter().any(|p| p.index == Some(5) && p.fatal));
}

#[test]
fn a_hole_is_damage_above_and_below_the_commit() {
    let (_t, dir) = setup(20, 15);
    fault::remove_log_record(&dir, 18).unwrap();
    let d = damage(Storage::open(&dir));
    assert_eq!((d.index, d.kind), (Some(18), DamageKind::MissingRecord));

    let (_t2, dir) = setup(20, 15);
    fault::remove_log_record(&dir, 6).unwrap();
    let (tree, index, msg) = corruption(Storage::open(&dir));
    assert_eq!((tree, index), ("log", Some(6)), "{msg}");
    assert!(msg.contains("missing"));
}

#[test]
fn damaged_snapshot_is_refused() {
    let (_t, dir) = setup(20, 15);
    {
        let (mut st, _) = Storage::open(&dir).unwrap();
        let meta = SnapshotMeta {
            index: 12,
            term: st.term(12).unwrap().unwrap(),
            voters: vec![1, 2, 3],
        };
        st.save_snapshot(&meta, &vec![7u8; 3 << 20]).unwrap();
    }
    fault::flip_snapshot_byte(&dir, 2, 1000, 0x08).unwrap();
    let (tree, index, msg) = corruption(Storage::open(&dir));
    assert_eq!((tree, index), ("snapshot", Some(12)), "{msg}");
    let img = examine(&dir).unwrap();
    assert!(
        img.problems.iter().any(|p| p.tree == "snapshot" && p.fatal),
        "{:?}",
        img.problems
    );
}

#[test]
fn foreign_newer_and_odd_paths_are_refused_without_changing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory of someone else's files.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"hello").unwrap();
    // Someone else's sled database.
    let other_sled = tmp.path().join("sled");
    {
        let db = sled::open(&other_sled).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A raftkv directory of a newer format.
    let newer = tmp.path().join("newer");
    build(&newer, 5, 3);
    fault::set_format(&newer, 4).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A raftkv directory of the format before the chain of terms.
    let older = tmp.path().join("older");
    build(&older, 5, 3);
    fault::set_format(&older, 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A raftkv directory of the format before the recovering mark.
    let before_mark = tmp.path().join("before-mark");
    build(&before_mark, 5, 3);
    fault::set_format(&before_mark, 2).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A plain file.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();

    for (dir, want) in [
        (&foreign, "marker"),
        (&other_sled, "sled database"),
        (&newer, "newer"),
        (
            &older,
            "format version 1, older than the supported 3 (format 2 added the chain of terms",
        ),
        (
            &before_mark,
            "format version 2, older than the supported 3 (format 3 added the recovering mark",
        ),
        (&file, "not a directory"),
    ] {
        let before = if dir.is_dir() {
            snapshot_files(dir)
        } else {
            BTreeMap::new()
        };
        let err = match Storage::open(dir) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{} opened", dir.display()),
        };
        assert!(err.contains(want), "{}: {err}", dir.display());
        assert!(!err.contains('\n'), "one line: {err}");
        let err2 = examine(dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err2.contains(want), "examine {}: {err2}", dir.display());
        if dir.is_dir() {
            assert!(before == snapshot_files(dir), "{} changed", dir.display());
        }
    }
    let missing = tmp.path().join("missing");
    assert!(examine(&missing)
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
}

#[test]
fn a_held_directory_is_reported_as_held() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let (_held, _) = Storage::open(&dir).unwrap();
    match Storage::open(&dir) {
        Err(e @ Error::Locked { .. }) => {
            assert!(e
                .to_string()
                .contains("another process holds this data directory"))
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
    // The inspector works on a held directory (it reads a copy).
    assert!(examine(&dir).is_ok());
}

#[test]
fn stale_generating_snapshot_file_is_removed_before_open() {
    let (_t, dir) = setup(5, 3);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let stale = dir.join("snap.00000000000ABCDE.generating");
    std::fs::write(&stale, b"partial").unwrap();
    let (_, rec) = Storage::open(&dir).unwrap();
    assert_eq!(rec.last_index, 5);
    assert!(!stale.exists());
}

#[test]
fn a_crash_between_the_parts_of_a_step_is_reconciled() {
    // Entries of a new term reached the log but the hard state of that step did not.
    let (_t, dir) = setup(20, 15);
    {
        let (mut st, rec) = Storage::open(&dir).unwrap();
        assert_eq!(rec.hard_state.term, 3);
        let e = Entry {
            term: 7,
            index: 21,
            kind: EntryKind::Noop,
            data: vec![],
        };
        st.persist(&WriteBatch {
            snapshot: None,
            entries: vec![e],
            hard_state: None,
        })
        .unwrap();
    }
    let (_, rec) = Storage::open(&dir).unwrap();
    assert_eq!(rec.hard_state.term, 7, "term raised to the last entry's");
    assert_eq!(rec.hard_state.vote, None, "no durable vote in that term");
    assert_eq!(rec.hard_state.commit, 15);

    // A snapshot install that wrote only the snapshot: its index holds an entry of another term,
    // so the old log after it is dropped, and the commit index rises to the snapshot's.
    // (Entry 9 has term 1; the entries after it have terms 2 and 3, not below the snapshot's, so
    // only the term check at the snapshot index tells them apart from a log to keep.)
    // The step wrote its two-value durable-progress record before sled, as `persist` does.
    let (_t2, dir) = setup(20, 5);
    let meta = SnapshotMeta {
        index: 9,
        term: 2,
        voters: vec![1, 2, 3],
    };
    let before = read_progress(&dir).new;
    let after = Progress {
        last_term: 2,
        last_index: 9,
        ..before
    };
    write_progress(&dir, after, Some(before));
    fault::write_snapshot_only(&dir, &meta, b"state at 9").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (st, rec) = Storage::open(&dir).unwrap();
    assert_eq!(
        (rec.first_index, rec.last_index),
        (10, 9),
        "old log dropped"
    );
    assert_eq!(rec.hard_state.commit, 9);
    assert_eq!(
        st.load_snapshot().unwrap().unwrap().1,
        b"state at 9".to_vec()
    );
    drop(st);

    // The same with a matching term: the log after the snapshot is kept.
    let (_t3, dir) = setup(20, 15);
    let meta = SnapshotMeta {
        index: 12,
        term: 2,
        voters: vec![1, 2, 3],
    };
    fault::write_snapshot_only(&dir, &meta, b"state at 12").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (st, rec) = Storage::open(&dir).unwrap();
    assert_eq!((rec.first_index, rec.last_index), (13, 20), "suffix kept");
    assert_eq!(rec.hard_state.commit, 15);
    assert_eq!(st.entries(13, 21, u64::MAX).unwrap().len(), 8);
}

use raftkv_storage::progress::{self, Progress, ProgressRecord};

fn read_progress(dir: &Path) -> ProgressRecord {
    progress::read(dir).unwrap().unwrap()
}

fn write_progress(dir: &Path, new: Progress, old: Option<Progress>) {
    let bytes = progress::encode(&ProgressRecord { new, old });
    std::fs::write(dir.join(progress::PROGRESS_FILE), bytes).unwrap();
}

#[test]
fn a_log_that_lost_acknowledged_entries_is_below_the_progress_record() {
    // The last three appends were acknowledged, then lost by the disk: a shorter log that is clean
    // in itself.
    let (_t, dir) = setup(20, 15);
    for i in 18..=20 {
        fault::remove_log_record(&dir, i).unwrap();
    }
    let d = damage(Storage::open(&dir));
    assert_eq!(
        (d.tree, d.index, d.kind),
        ("log", Some(20), DamageKind::LogBelowProgress)
    );
    assert!(d.detail.contains("the log ends at 17"), "{d}");
    assert_eq!(d.progress.map(|p| p.new.last_index), Some(20));
    // Another term at the record's index is below it too.
    let (_t, dir) = setup(20, 15);
    let mut rec = read_progress(&dir);
    rec.new.last_term = 9;
    write_progress(&dir, rec.new, None);
    let d = damage(Storage::open(&dir));
    assert_eq!(d.kind, DamageKind::LogBelowProgress);
}

#[test]
fn a_hard_state_rolled_back_is_below_the_progress_record() {
    // Stored: term 3, vote 1. A lost vote (same term, no vote) and a lower term are both below.
    for (term, vote) in [(3, None), (3, Some(2)), (2, Some(1))] {
        let (_t, dir) = setup(20, 15);
        fault::set_hard_state(
            &dir,
            &HardState {
                term,
                vote,
                commit: 15,
                ..HardState::default()
            },
        )
        .unwrap();
        let d = damage(Storage::open(&dir));
        assert_eq!(
            (d.tree, d.kind),
            ("meta", DamageKind::HardStateBelowProgress),
            "term {term} vote {vote:?}"
        );
        assert!(d.detail.contains("the record term 3 vote Some(1)"), "{d}");
    }
    // A higher term is not below it (a step whose record was not yet written).
    let (_t, dir) = setup(20, 15);
    fault::set_hard_state(
        &dir,
        &HardState {
            term: 4,
            vote: None,
            commit: 15,
            ..HardState::default()
        },
    )
    .unwrap();
    let (_, rec) = Storage::open(&dir).unwrap();
    assert_eq!(rec.hard_state.term, 4);
}

#[test]
fn a_missing_or_damaged_progress_record_is_damage() {
    let (_t, dir) = setup(20, 15);
    std::fs::remove_file(dir.join(progress::PROGRESS_FILE)).unwrap();
    let d = damage(Storage::open(&dir));
    assert_eq!((d.tree, d.kind), ("progress", DamageKind::ProgressMissing));
    assert!(
        !dir.join(progress::PROGRESS_FILE).exists(),
        "nothing written"
    );
    let (_t, dir) = setup(20, 15);
    let path = dir.join(progress::PROGRESS_FILE);
    for at in [0usize, 10, 77] {
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let d = damage(Storage::open(&dir));
        assert_eq!(d.kind, DamageKind::ProgressDamaged, "byte {at}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "the record was left as it was"
        );
        assert!(d.progress.is_none());
        assert_eq!(
            d.hard_state.map(|h| h.term),
            Some(3),
            "the intact hard state is reported"
        );
        std::fs::write(&path, &good).unwrap();
    }
    Storage::open(&dir).unwrap();
    // A directory without Raft state needs no record (a start killed before its first step).
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("n1");
    drop(Storage::open(&fresh).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::remove_file(fresh.join(progress::PROGRESS_FILE)).unwrap();
    Storage::open(&fresh).unwrap();
}

/// Copies every file of `from` into `to` (a node directory as it was at one moment).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (path, bytes) in snapshot_files(from) {
        let rel = path.strip_prefix(from).unwrap();
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(dst, bytes).unwrap();
    }
}

#[test]
fn a_kill_around_the_progress_record_leaves_it_behind_never_ahead() {
    let (t, dir) = setup(20, 15);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let record_before = std::fs::read(dir.join(progress::PROGRESS_FILE)).unwrap();
    let old_copy = t.path().join("old");
    copy_dir(&dir, &old_copy);
    // A truncation step: a new leader (term 4) replaces 18..=20.
    {
        let (mut st, _) = Storage::open(&dir).unwrap();
        let entries = (18..=19)
            .map(|index| Entry {
                term: 4,
                index,
                kind: EntryKind::Normal,
                data: vec![],
            })
            .collect();
        let hs = HardState {
            term: 4,
            vote: Some(3),
            commit: 15,
            ..HardState::default()
        };
        st.persist(&WriteBatch {
            snapshot: None,
            entries,
            hard_state: Some(hs),
        })
        .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let old = progress::decode(&record_before).unwrap().new;
    let new = read_progress(&dir).new;
    assert_eq!((new.term, new.last_term, new.last_index), (4, 4, 19));
    // Killed after sled's flush, before the record: sled holds the new state, the record the
    // two values written before sled. Opens, with the new state.
    let after_flush = t.path().join("after-flush");
    copy_dir(&dir, &after_flush);
    write_progress(&after_flush, new, Some(old));
    let (_, rec) = Storage::open(&after_flush).unwrap();
    assert_eq!((rec.last_index, rec.hard_state.term), (19, 4));
    // Killed after the record written before sled, before sled changed: opens, old state.
    write_progress(&old_copy, new, Some(old));
    let (_, rec) = Storage::open(&old_copy).unwrap();
    assert_eq!((rec.last_index, rec.hard_state.term), (20, 3));
    // Without the value before the step, the old log would be below the record: the two-value
    // record is what makes a kill there safe to restart from.
    let lone = t.path().join("lone");
    copy_dir(&old_copy, &lone);
    write_progress(&lone, new, None);
    assert_eq!(
        damage(Storage::open(&lone)).kind,
        DamageKind::LogBelowProgress
    );
    // An append step killed before its record: the record is one step behind, and that is fine.
    let (_t2, dir2) = setup(20, 15);
    let behind = std::fs::read(dir2.join(progress::PROGRESS_FILE)).unwrap();
    {
        let (mut st, _) = Storage::open(&dir2).unwrap();
        st.persist(&WriteBatch {
            snapshot: None,
            entries: vec![Entry {
                term: 3,
                index: 21,
                kind: EntryKind::Normal,
                data: vec![],
            }],
            hard_state: Some(HardState {
                term: 3,
                vote: Some(1),
                commit: 16,
                ..HardState::default()
            }),
        })
        .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::write(dir2.join(progress::PROGRESS_FILE), &behind).unwrap();
    let (_, rec) = Storage::open(&dir2).unwrap();
    assert_eq!(rec.last_index, 21);
}

#[test]
fn a_refused_open_leaves_every_file_as_it_was() {
    let (_t, dir) = setup(20, 15);
    fault::flip_log_byte(&dir, 17, 20, 0x01).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = snapshot_files(&dir);
    for _ in 0..2 {
        damage(Storage::open(&dir));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let after = snapshot_files(&dir);
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        assert!(changed.is_empty(), "changed: {changed:?}");
    }
}

#[test]
fn a_damaged_hard_state_and_a_directory_sled_cannot_open_are_damage() {
    let (_t, dir) = setup(20, 15);
    fault::flip_meta_byte(&dir, "hard_state", 10, 0x04).unwrap();
    let d = damage(Storage::open(&dir));
    assert_eq!(
        (d.tree, d.index, d.kind),
        ("meta", None, DamageKind::BadRecord)
    );
    assert!(d.detail.contains("hard_state"), "{d}");
    assert_eq!(d.hard_state, None, "no intact hard state to report");
    assert!(d.progress.is_some(), "the intact record is reported");
    // sled's `conf` carries a checksum: a changed byte makes every open fail.
    let (_t, dir) = setup(20, 15);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let conf = dir.join("conf");
    let mut bytes = std::fs::read(&conf).unwrap();
    bytes[20] ^= 0x5a;
    std::fs::write(&conf, bytes).unwrap();
    let before = snapshot_files(&dir);
    let d = damage(Storage::open(&dir));
    assert_eq!((d.tree, d.kind), ("sled", DamageKind::Unopenable), "{d}");
    assert!(d.progress.is_some(), "the record is read outside sled");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(before == snapshot_files(&dir), "the directory changed");
}
