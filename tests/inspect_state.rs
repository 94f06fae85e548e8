//! `raftkv inspect --state` and the replica state hashes, as a user runs them: the state a node
//! would serve, rebuilt from snapshot plus log up to the commit index (and not beyond), matches
//! what a real bench run read back from the cluster; the replicas of a clean run hash equal; a
//! copy whose state was changed is reported as "differ" with the key named. Every inspected
//! directory is compared byte for byte before and after.

mod inspect_common;

use inspect_common::{copy_dir, files, inspect_with};
use raftkv::kv::{Command as KvCommand, KvStore};
use raftkv_storage::{fault, Entry, EntryKind, HardState, SnapshotMeta, Storage, WriteBatch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn inspect(flags: &[&str], dirs: &[&Path]) -> (i32, String) {
    let (code, out, err) = inspect_with(flags, dirs);
    assert!(!err.contains("panicked"), "{err}");
    (code, out)
}

/// `--state --json` of one directory, as a map from the key's JSON text to its value.
fn state_of(dir: &Path, extra: &[&str]) -> (Value, BTreeMap<String, Value>) {
    let mut flags = vec!["--state", "--json"];
    flags.extend_from_slice(extra);
    let (code, out) = inspect(&flags, &[dir]);
    assert_eq!(code, 0, "{out}");
    let doc: Value = serde_json::from_str(out.trim()).unwrap();
    let map = doc["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].to_string(), p["value"].clone()))
        .collect();
    (doc, map)
}

fn write(key: Value, value: Value) -> KvCommand {
    KvCommand::Write { key, value }
}

/// A directory whose snapshot holds the first commands and whose log holds the rest, with a
/// commit index below the last entry; returns the model's state at the commit index.
fn snapshot_and_log(dir: &Path) -> KvStore {
    let cmds = [
        write(json!(1), json!(10)),
        write(json!("a"), json!({"x": [1, 2]})),
        write(json!(2), json!(20)),
        KvCommand::Cas {
            key: json!(1),
            from: json!(10),
            to: json!(11),
        },
        write(json!(3), json!(30)),
        KvCommand::Cas {
            key: json!(2),
            from: json!(99),
            to: json!(0),
        },
        write(json!(1), json!(12)),
        write(json!(4), json!(40)),
    ];
    let (snap_at, commit) = (3u64, 7u64);
    let (mut st, _) = Storage::open(dir).unwrap();
    let entries: Vec<Entry> = term_one_entries(&cmds);
    let hard_state = Some(HardState {
        term: 1,
        vote: Some(1),
        commit,
        ..HardState::default()
    });
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state,
    })
    .unwrap();
    let mut model = KvStore::new();
    for c in &cmds[..snap_at as usize] {
        model.apply(c);
    }
    let meta = SnapshotMeta {
        index: snap_at,
        term: 1,
        voters: vec![1],
    };
    st.save_snapshot(&meta, &model.snapshot()).unwrap();
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(150));
    for c in &cmds[snap_at as usize..commit as usize] {
        model.apply(c);
    }
    model
}

/// `cmds` as log entries 1.. of term 1.
fn term_one_entries(cmds: &[KvCommand]) -> Vec<Entry> {
    cmds.iter()
        .enumerate()
        .map(|(i, c)| Entry {
            term: 1,
            index: i as u64 + 1,
            kind: EntryKind::Normal,
            data: c.encode(),
        })
        .collect()
}
#[test]
fn state_is_the_snapshot_plus_the_log_up_to_the_commit_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let model = snapshot_and_log(&dir);
    let before = files(&dir);
    let (doc, state) = state_of(&dir, &[]);
    assert_eq!(doc["index"], 7);
    assert_eq!(doc["commit"], 7);
    let want: BTreeMap<String, Value> = model
        .pairs()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(state, want);
    // Entry 8 (key 4) is above the commit index: not part of the served state.
    assert!(!state.contains_key("4"));
    assert_eq!(state["1"], json!(12));
    let (_, one) = state_of(&dir, &["--key", "\"a\""]);
    assert_eq!(
        one.into_iter().collect::<Vec<_>>(),
        vec![("\"a\"".into(), json!({"x": [1, 2]}))]
    );
    let (_, none) = state_of(&dir, &["--key", "4"]);
    assert!(none.is_empty());
    let (code, text) = inspect(&["--state"], &[&dir]);
    assert_eq!(code, 0);
    assert!(
        text.contains("state at index 7 (commit index 7), 4 keys"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().eq(["\"a\"", "{\"x\":[1,2]}"])),
        "{text}"
    );
    assert!(before == files(&dir), "inspect changed the directory");
}

/// The value each key was last read back as in the bench's final phase (`null` = absent).
fn final_read_back(history: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(history).unwrap().lines() {
        let ev: Value = serde_json::from_str(line).unwrap();
        // The final phase's clients are numbered from 10^9 on.
        let final_phase = ev["process"].as_u64().unwrap() >= 1_000_000_000;
        if final_phase && ev["type"] == "ok" && ev["f"] == "read" {
            out.insert(ev["key"].to_string(), ev["value"].clone());
        }
    }
    out
}

#[test]
fn every_node_state_after_a_bench_run_is_what_the_final_read_back_saw() {
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args([
            "test",
            "--node-count",
            "3",
            "--time-limit",
            "3",
            "--nemesis",
            "kill",
        ])
        .args([
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
            "--quiet",
            "--store",
        ])
        .arg(store.path())
        .env("RAFTKV_SNAPSHOT_EVERY", "20")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let run = store.path().join("lin-kv").join("latest");
    let read_back = final_read_back(&run.join("history.jsonl"));
    assert!(read_back.len() >= 2, "keys read back: {read_back:?}");
    let nodes: Vec<PathBuf> = (0..3)
        .map(|i| run.join("data").join(format!("n{i}")))
        .collect();
    let before: Vec<_> = nodes.iter().map(|d| files(d)).collect();
    let mut snapshots = 0;
    for dir in &nodes {
        let (doc, state) = state_of(dir, &[]);
        assert_eq!(doc["complete"], true, "{doc}");
        for (key, value) in &read_back {
            assert_eq!(
                state.get(key).unwrap_or(&Value::Null),
                value,
                "{}: key {key}",
                dir.display()
            );
        }
        assert!(state.keys().all(|k| read_back.contains_key(k)), "{state:?}");
        let (_, summary) = inspect(&["--json"], &[dir]);
        let summary: Value = serde_json::from_str(&summary).unwrap();
        snapshots += usize::from(!summary["dirs"][0]["snapshot"].is_null());
    }
    assert!(
        snapshots > 0,
        "no node took a snapshot: the snapshot path was not exercised"
    );
    let refs: Vec<&Path> = nodes.iter().map(PathBuf::as_path).collect();
    let (code, out) = inspect(&["--json"], &refs);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["states"]["verdict"], "equal", "{}", v["states"]);
    let hashes: Vec<&Value> = v["states"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["hash"])
        .collect();
    assert!(
        hashes[0].is_string() && hashes.iter().all(|h| *h == hashes[0]),
        "{hashes:?}"
    );

    // Fault injection on a copy of n2: its snapshot now holds one more key.
    let copy = store.path().join("n2-changed");
    copy_dir(&nodes[2], &copy);
    let (st, _) = Storage::open(&copy).unwrap();
    let (meta, data) = st.load_snapshot().unwrap().expect("n2 has a snapshot");
    drop(st);
    let mut kv = KvStore::new();
    kv.restore(&data).unwrap();
    kv.apply(&write(json!("injected"), json!(7)));
    fault::write_snapshot_only(&copy, &meta, &kv.snapshot()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (code, out) = inspect(&["--json"], &[refs[0], refs[1], &copy]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["states"]["verdict"], "differ", "{}", v["states"]);
    let first = &v["states"]["differences"][0];
    assert_eq!(first["key"], "injected", "{}", v["states"]);
    assert_eq!(first["values"][2], json!({"node": "n2", "value": 7}));
    assert_eq!(first["values"][0], json!({"node": "n0", "absent": true}));
    let (_, text) = inspect(&[], &[refs[0], refs[1], &copy]);
    assert!(text.contains("states:     differ"), "{text}");
    assert!(
        text.contains("key \"injected\" differs: n0 (absent), n1 (absent), n2 7"),
        "{text}"
    );
    for (dir, b) in nodes.iter().zip(&before) {
        assert!(*b == files(dir), "inspect changed {}", dir.display());
    }
}

#[test]
fn a_snapshot_past_the_stored_commit_index_is_served_as_recovery_raises_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let (mut st, _) = Storage::open(&dir).unwrap();
    let cmds: Vec<KvCommand> = (1..=4).map(|i| write(json!(i), json!(i * 10))).collect();
    let entries = term_one_entries(&cmds);
    let hard_state = Some(HardState {
        term: 1,
        vote: None,
        commit: 1,
        ..HardState::default()
    });
    st.persist(&WriteBatch {
        snapshot: None,
        entries,
        hard_state,
    })
    .unwrap();
    let mut kv = KvStore::new();
    cmds[..3].iter().for_each(|c| {
        kv.apply(c);
    });
    let meta = SnapshotMeta {
        index: 3,
        term: 1,
        voters: vec![1],
    };
    st.save_snapshot(&meta, &kv.snapshot()).unwrap();
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let before = files(&dir);
    let (doc, state) = state_of(&dir, &[]);
    assert_eq!(
        (doc["index"].clone(), doc["commit"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(state.len(), 3, "{state:?}");
    assert!(before == files(&dir), "inspect changed the directory");
}
