//! `raftkv inspect` as a user runs it: a real process on real directories. It shows the state and
//! decoded commands, reports corruption with a non-zero exit naming tree and index, refuses bad
//! input with one line, compares logs of several nodes, works on a directory a live node holds,
//! and never changes a byte of what it inspects (every file is compared before and after).

use raftkv_storage::{
    fault, Entry, EntryKind, HardState, Identity, SnapshotMeta, Storage, WriteBatch,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
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

fn cmd(k: u64, v: u64) -> Vec<u8> {
    format!("{{\"op\":\"write\",\"key\":{k},\"value\":{v}}}").into_bytes()
}

/// A node directory: entries 1..=n (term 1 up to `split`, then `term2`), commit, optional snapshot.
fn node(dir: &Path, name: &str, n: u64, split: u64, term2: u64, commit: u64, snap: Option<u64>) {
    let (mut st, _) = Storage::open(dir).unwrap();
    st.set_identity(&Identity {
        node: name.into(),
        cluster: vec!["n1".into(), "n2".into(), "n3".into()],
    })
    .unwrap();
    let entries = (1..=n)
        .map(|i| {
            let term = if i <= split { 1 } else { term2 };
            Entry {
                term,
                index: i,
                kind: if i == 1 {
                    EntryKind::Noop
                } else {
                    EntryKind::Normal
                },
                data: if i == 1 { vec![] } else { cmd(i, term) },
            }
        })
        .collect();
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state: Some(HardState {
            term: term2,
            vote: Some(1),
            commit,
        }),
    })
    .unwrap();
    if let Some(s) = snap {
        let meta = SnapshotMeta {
            index: s,
            term: st.term(s).unwrap().unwrap(),
            voters: vec![1, 2, 3],
        };
        st.save_snapshot(&meta, b"{\"1\":2}").unwrap();
    }
    drop(st);
    // Let sled's background threads finish so the "before" picture is final.
    std::thread::sleep(std::time::Duration::from_millis(150));
}

fn inspect(args: &[&Path], json: bool) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_raftkv"));
    c.arg("inspect");
    if json {
        c.arg("--json");
    }
    let out = c.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shows_state_and_decoded_commands_without_changing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    node(&dir, "n1", 30, 10, 2, 25, Some(12));
    let before = files(&dir);
    let (code, out, err) = inspect(&[&dir], true);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let d = &v["dirs"][0];
    assert_eq!(d["identity"]["node"], "n1");
    assert_eq!(d["hard_state"]["commit"], 25);
    assert_eq!(d["hard_state"]["term"], 2);
    assert_eq!(d["snapshot"]["index"], 12);
    assert_eq!(d["snapshot"]["term"], 2);
    assert_eq!(d["log"]["first_index"], 13);
    assert_eq!(d["log"]["last_index"], 30);
    let recs = d["records"].as_array().unwrap();
    assert_eq!(recs.len(), 18);
    assert_eq!(recs[0]["index"], 13);
    assert_eq!(recs[0]["command"]["op"], "write");
    assert_eq!(recs[0]["command"]["key"], 13);
    assert_eq!(recs[0]["command"]["value"], 2);
    assert_eq!(v["ok"], true);
    let (code, text, _) = inspect(&[&dir], false);
    assert_eq!(code, 0);
    assert!(
        text.contains("hard state: term 2 vote 1 commit 25"),
        "{text}"
    );
    assert!(text.contains("log:        [13, 30]"), "{text}");
    assert!(
        text.contains(r#"{"key":30,"op":"write","value":2}"#),
        "{text}"
    );
    assert!(before == files(&dir), "inspect changed the directory");
}

#[test]
fn corruption_is_named_with_tree_and_index_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n2");
    node(&dir, "n2", 20, 20, 1, 15, None);
    fault::flip_log_byte(&dir, 9, 12, 0x10).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let before = files(&dir);
    let (code, out, _) = inspect(&[&dir], false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CORRUPT: tree `log` at index 9"), "{out}");
    assert!(out.contains("checksum"), "{out}");
    let (code, out, _) = inspect(&[&dir], true);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dirs"][0]["problems"][0]["tree"], "log");
    assert_eq!(v["dirs"][0]["problems"][0]["index"], 9);
    assert_eq!(v["dirs"][0]["problems"][0]["fatal"], true);
    assert!(before == files(&dir), "inspect changed the directory");

    // A damaged snapshot, and a torn tail (reported, repairable, exit 0).
    let snap = tmp.path().join("n3");
    node(&snap, "n3", 20, 20, 1, 15, Some(10));
    fault::flip_snapshot_byte(&snap, 0, 3, 0x01).unwrap();
    let (code, out, _) = inspect(&[&snap], false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("CORRUPT: tree `snapshot` at index 10"),
        "{out}"
    );
    let torn = tmp.path().join("n4");
    node(&torn, "n4", 20, 20, 1, 15, None);
    fault::truncate_log_record(&torn, 20, 5).unwrap();
    let (code, out, _) = inspect(&[&torn], false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("repairable: tree `log` at index 20: torn tail"),
        "{out}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("data.bin"), b"\x00\x01").unwrap();
    let newer = tmp.path().join("newer");
    node(&newer, "n1", 5, 5, 1, 3, None);
    fault::set_format(&newer, 9).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let missing = tmp.path().join("missing");
    for (dir, want) in [
        (&foreign, "not a raftkv data directory"),
        (&newer, "format version 9, newer than the supported 1"),
        (&missing, "does not exist"),
    ] {
        let before = if dir.exists() {
            files(dir)
        } else {
            BTreeMap::new()
        };
        let (code, out, err) = inspect(&[dir], false);
        assert_eq!(code, 2, "{}: {out}{err}", dir.display());
        assert!(err.contains(want), "{}: {err}", dir.display());
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"));
        if dir.exists() {
            assert!(before == files(dir), "{} changed", dir.display());
        }
    }
    assert!(!missing.exists(), "inspect created a missing directory");
}

#[test]
fn works_on_a_directory_a_live_node_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    node(&dir, "n1", 10, 10, 1, 8, None);
    let (_live, _) = Storage::open(&dir).unwrap();
    let (code, out, err) = inspect(&[&dir], true);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dirs"][0]["log"]["last_index"], 10);
}

#[test]
fn compares_logs_and_flags_log_matching_violations() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c, d) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
        tmp.path().join("d"),
    );
    node(&a, "n1", 20, 12, 2, 10, None);
    // Same up to 12, then an uncommitted suffix of another term: allowed.
    node(&b, "n2", 16, 12, 3, 10, None);
    let (code, out, _) = inspect(&[&a, &b], false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("identical through 12, diverge at 13 (uncommitted, allowed)"),
        "{out}"
    );
    // Diverges below both commit indexes: a committed entry differs.
    node(&c, "n3", 20, 5, 4, 10, None);
    let (code, out, _) = inspect(&[&a, &c], true);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["comparisons"][0]["first_difference"], 6);
    assert!(v["comparisons"][0]["violation"]
        .as_str()
        .unwrap()
        .contains("committed entry 6 differs"));
    // Identical logs agree everywhere.
    node(&d, "n4", 20, 12, 2, 10, None);
    let (code, out, _) = inspect(&[&a, &d], false);
    assert_eq!(code, 0, "identical logs: {out}");
    assert!(
        out.contains("identical where both hold entries (through 20)"),
        "{out}"
    );
    // Entry 14 replaced by a different command of the same term (what a buggy leader does).
    let e = tmp.path().join("e");
    node(&e, "n5", 20, 12, 2, 10, None);
    {
        let (mut st, _) = Storage::open(&e).unwrap();
        let mut ent = st.entries(14, 21, u64::MAX).unwrap();
        ent[0].data = cmd(99, 99);
        st.persist(&WriteBatch {
            snapshot: None,
            entries: ent,
            hard_state: None,
        })
        .unwrap();
    }
    let (code, out, _) = inspect(&[&a, &e], false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("VIOLATION") && out.contains("log matching broken at 14"),
        "{out}"
    );
}
