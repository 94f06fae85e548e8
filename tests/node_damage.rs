//! The node on a damaged data directory: it does not start (neither with what is left of its log
//! nor empty, which could grant a second vote in a term), prints one line naming the node, the
//! tree, the index and what was wrong, exits non-zero, and leaves every file as it was except sled's
//! own `db`, whose records stay the same (sled's first open after a write session rewrites parts
//! of that file itself). Damage above the commit index included: the intact records after it may
//! have been acknowledged.

mod node_common;

use raftkv_storage::examine::{examine_with, Options, RawRecord};
use raftkv_storage::{fault, Entry, EntryKind, HardState, Identity, Storage, WriteBatch};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `root/n1`: the directory of node n1 of a one-node cluster, entries 1..=8, commit 5.
fn build(root: &Path) -> PathBuf {
    let dir = root.join("n1");
    let (mut st, _) = Storage::open(&dir).unwrap();
    st.set_identity(&Identity {
        node: "n1".into(),
        cluster: vec!["n1".into()],
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
            vote: Some(0),
            commit: 5,
        }),
    })
    .unwrap();
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(200));
    dir
}

/// Every top-level file but sled's `db` byte for byte, and every record sled stores (tree, key,
/// length, checksum) with the intact log entries.
type Picture = (
    BTreeMap<PathBuf, Vec<u8>>,
    Vec<RawRecord>,
    Vec<(Option<u64>, Option<Entry>)>,
);

fn picture(dir: &Path) -> Picture {
    let files = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "db"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let options = Options {
        snapshot_data: false,
        raw: true,
    };
    let img = examine_with(dir, options).unwrap();
    let entries = img
        .records
        .iter()
        .map(|r| (r.index, r.entry.clone()))
        .collect();
    (files, img.raw, entries)
}

/// Starts n1 on `root`, sends `init`, closes stdin; returns the exit code and stderr.
fn start(root: &Path) -> (Option<i32>, String) {
    let mut p = node_common::spawn(root, &[]);
    let init = node_common::init_line("n1", &["n1".to_string()], 1);
    if let Some(stdin) = p.stdin.as_mut() {
        let _ = writeln!(stdin, "{init}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, stderr) = p.wait_with_stderr();
    (status.code(), stderr)
}

#[test]
fn a_damaged_directory_stops_the_node_with_one_line_and_nothing_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    fault::flip_log_byte(&dir, 7, 12, 0x10).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = picture(&dir);
    let (code, stderr) = start(tmp.path());
    assert_ne!(code, Some(0), "the node started on a damaged log: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("damaged data directory"))
        .unwrap_or_else(|| panic!("no damage line: {stderr}"));
    for want in ["n1", "tree `log` at index 7", "checksum mismatch"] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
    assert!(before == picture(&dir), "the node changed its directory");
    // The durable-progress record removed: refused the same way, nothing recreated.
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    std::fs::remove_file(dir.join(raftkv_storage::progress::PROGRESS_FILE)).unwrap();
    let before = picture(&dir);
    let (code, stderr) = start(tmp.path());
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("tree `progress`: durable-progress record missing"),
        "{stderr}"
    );
    assert!(before == picture(&dir), "the node changed its directory");
}
