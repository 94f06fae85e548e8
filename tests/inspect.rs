//! `raftkv inspect` as a user runs it: a real process on real directories. It shows the state and
//! decoded commands, filters the listing by index range and kind, walks the raw records, reports
//! corruption with a non-zero exit naming tree and index (every damaged index, and the peers that
//! hold an intact copy), rebuilds the state machine, reports a directory sled cannot open, refuses
//! bad input with one line, compares logs of several nodes, works on a directory a live node
//! holds, and never changes a byte of what it inspects (every file is compared before and after).

mod inspect_common;

use inspect_common::{files, inspect_with};
use raftkv_storage::{
    fault, Entry, EntryKind, HardState, Identity, SnapshotMeta, Storage, WriteBatch,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

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
            ..HardState::default()
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

/// `inspect_with` for a JSON document (the exit code must be `code`).
fn inspect_json(flags: &[&str], dirs: &[&Path], code: i32) -> Value {
    let mut f = vec!["--json"];
    f.extend_from_slice(flags);
    let (got, out, err) = inspect_with(&f, dirs);
    assert_eq!(got, code, "{flags:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{flags:?}: {e}: {out}"))
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
    assert_eq!(d["progress"]["term"], 2);
    assert_eq!(d["progress"]["vote"], 1);
    assert_eq!(d["progress"]["last_index"], 30);
    assert_eq!(d["progress"]["last_term"], 2);
    assert_eq!(d["progress"]["before"], Value::Null);
    assert_eq!(d["hard_state"]["recovery"], "ordinary");
    assert_eq!(d["hard_state"]["incarnation"], 0);
    assert_eq!(d["progress"]["recovery"], "ordinary");
    assert_eq!(d["progress"]["incarnation"], 0);
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
        text.contains("hard state: term 2 vote 1 commit 25, mark ordinary, incarnation 0"),
        "{text}"
    );
    assert!(text.contains("log:        [13, 30]"), "{text}");
    assert!(
        text.contains(
            "progress:   term 2 vote 1, last entry 30 of term 2, mark ordinary, incarnation 0"
        ),
        "{text}"
    );
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

    // A damaged snapshot, and a truncated last record above the commit index: damage too (sled
    // leaves no torn records), exit 1.
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
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("CORRUPT: tree `log` at index 20: bad record: record truncated"),
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
    let older = tmp.path().join("older");
    node(&older, "n1", 5, 5, 1, 3, None);
    fault::set_format(&older, 1).unwrap();
    let before_mark = tmp.path().join("before-mark");
    node(&before_mark, "n1", 5, 5, 1, 3, None);
    fault::set_format(&before_mark, 2).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let missing = tmp.path().join("missing");
    for (dir, want) in [
        (&foreign, "not a raftkv data directory"),
        (&newer, "format version 9, newer than the supported 3"),
        (&older, "format version 1, older than the supported 3"),
        (
            &before_mark,
            "format version 2, older than the supported 3 (format 3 added the recovering mark",
        ),
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

fn listed(v: &Value) -> Vec<u64> {
    v["dirs"][0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect()
}

#[test]
fn range_and_kind_filters_list_exactly_what_they_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    node(&dir, "n1", 30, 10, 2, 25, None);
    let before = files(&dir);
    let d: &[&Path] = &[&dir];
    let v = inspect_json(&["--from", "5", "--to", "9"], d, 0);
    assert_eq!(listed(&v), vec![5, 6, 7, 8, 9]);
    let v = inspect_json(&["--kind", "noop"], d, 0);
    assert_eq!(listed(&v), vec![1]);
    let v = inspect_json(&["--kind", "normal", "--to", "3"], d, 0);
    assert_eq!(listed(&v), vec![2, 3]);
    let v = inspect_json(&["--kind", "noop,normal", "--from", "29"], d, 0);
    assert_eq!(listed(&v), vec![29, 30]);
    assert_eq!(v["dirs"][0]["records"][0]["kind"], "normal");
    // The filter narrows the listing only: the summary still covers the whole log.
    assert_eq!(v["dirs"][0]["log"]["last_index"], 30);
    // Text: every entry in range, nothing outside it.
    let (code, out, _) = inspect_with(&["--from", "12", "--to", "13"], d);
    assert_eq!(code, 0);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].trim_start().starts_with("12  t2 normal"), "{out}");
    assert!(rows[1].trim_start().starts_with("13  t2 normal"), "{out}");
    assert!(
        out.contains("listing:    2 record(s) with index in [12, 13]"),
        "{out}"
    );
    for (flags, want) in [
        (
            &["--from", "x"][..],
            "invalid value 'x' for '--from <N>': not an index",
        ),
        (&["--from", "9", "--to", "5"], "--from 9 is above --to 5"),
        (
            &["--kind", "snapshot"],
            "invalid value 'snapshot' for '--kind <K>': `snapshot` is not an entry kind",
        ),
        (
            &["--key", "1"],
            "required arguments were not provided:\n  --state",
        ),
    ] {
        let (code, _, err) = inspect_with(flags, d);
        assert_eq!(code, 2, "{flags:?}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    assert!(before == files(&dir), "inspect changed the directory");
}

#[test]
fn raw_walk_lists_every_record_and_a_damaged_one_as_bad_with_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    node(&dir, "n1", 12, 12, 1, 10, None);
    fault::flip_log_byte(&dir, 7, 20, 0x04).unwrap();
    fault::truncate_log_record(&dir, 11, 6).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let before = files(&dir);
    let v = inspect_json(&["--raw"], &[&dir], 1);
    let raw = v["dirs"][0]["raw"].as_array().unwrap();
    let log: Vec<&Value> = raw.iter().filter(|r| r["tree"] == "log").collect();
    let keys: Vec<String> = log
        .iter()
        .map(|r| r["key"].as_str().unwrap().into())
        .collect();
    let want: Vec<String> = (1..=12).map(|i: u64| i.to_string()).collect();
    assert_eq!(keys, want, "every log record, in order");
    for r in &log {
        let bad = r["key"] == "7" || r["key"] == "11";
        assert_eq!(r["ok"], !bad, "{r}");
        assert_eq!(r["checksum"], if bad { "bad" } else { "ok" }, "{r}");
        assert!(r["length"].as_u64().unwrap() > 0);
    }
    assert!(log[6]["problem"]
        .as_str()
        .unwrap()
        .contains("checksum mismatch"));
    assert!(log[10]["problem"].as_str().unwrap().contains("truncated"));
    assert_eq!(log[10]["length"], 6);
    let meta: Vec<&str> = raw
        .iter()
        .filter(|r| r["tree"] == "meta")
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(meta, vec!["format", "hard_state", "identity"]);
    // Text, limited to a range of the log.
    let (code, out, _) = inspect_with(&["--raw", "--from", "6", "--to", "8"], &[&dir]);
    assert_eq!(code, 1);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("log "))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].contains(" 7 ") && rows[1].contains("checksum BAD"),
        "{out}"
    );
    assert!(
        rows[0].contains("checksum ok") && rows[2].contains("checksum ok"),
        "{out}"
    );
    assert!(before == files(&dir), "inspect changed the directory");
}

#[test]
fn damage_names_every_bad_index_and_the_peers_with_an_intact_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    node(&a, "n1", 20, 20, 1, 18, None);
    node(&b, "n2", 20, 20, 1, 18, None);
    fault::flip_log_byte(&b, 5, 12, 0x10).unwrap();
    fault::remove_log_record(&b, 9).unwrap();
    fault::remove_log_record(&b, 10).unwrap();
    fault::flip_log_byte(&b, 19, 12, 0x10).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (before_a, before_b) = (files(&a), files(&b));
    let v = inspect_json(&[], &[&b], 1);
    let d = &v["dirs"][0];
    assert_eq!(d["last_intact"], 4);
    let damage = d["damage"].as_array().unwrap();
    let places: Vec<(Value, Value)> = damage
        .iter()
        .map(|x| (x["index"].clone(), x["through"].clone()))
        .collect();
    assert_eq!(
        places,
        vec![
            (Value::from(5), Value::Null),
            (Value::from(9), Value::from(10)),
            (Value::from(19), Value::Null)
        ]
    );
    assert!(damage[0]["detail"].as_str().unwrap().contains("checksum"));
    assert!(damage[1]["detail"].as_str().unwrap().contains("missing"));
    assert!(damage
        .iter()
        .all(|x| x["intact_on"] == Value::Array(vec![])));
    // With a peer: who holds an intact copy, and whether it is committed there.
    let v = inspect_json(&[], &[&a, &b], 1);
    assert_eq!(v["dirs"][0]["damage"], Value::Array(vec![]));
    let damage = v["dirs"][1]["damage"].as_array().unwrap();
    for (x, committed) in damage.iter().zip([true, true, false]) {
        let on = x["intact_on"].as_array().unwrap();
        assert_eq!(on.len(), 1, "{x}");
        assert_eq!(on[0]["node"], "n1");
        assert_eq!(on[0]["committed"], committed, "{x}");
    }
    let (_, out, _) = inspect_with(&[], &[&a, &b]);
    assert!(
        out.contains("damage:     3 damaged part(s); last intact index 4"),
        "{out}"
    );
    assert!(out.contains("index 5: checksum mismatch"), "{out}");
    assert!(out.contains("indices 9 to 10: entries missing"), "{out}");
    assert!(out.contains("intact copy on n1 (committed)"), "{out}");
    assert!(
        out.contains("intact copy on n1 (not committed there)"),
        "{out}"
    );
    assert!(
        before_a == files(&a) && before_b == files(&b),
        "inspect changed a directory"
    );
}

#[test]
fn a_directory_sled_cannot_open_is_reported_with_sleds_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (good, good2) = (tmp.path().join("good"), tmp.path().join("good2"));
    let bad = tmp.path().join("bad");
    node(&good, "n1", 5, 5, 1, 5, None);
    node(&good2, "n3", 5, 5, 1, 5, None);
    node(&bad, "n2", 5, 5, 1, 5, None);
    // sled's `conf` file carries a checksum; a changed byte makes every open fail.
    let conf = bad.join("conf");
    let mut bytes = std::fs::read(&conf).unwrap();
    bytes[20] ^= 0x5a;
    std::fs::write(&conf, bytes).unwrap();
    let before = files(&bad);
    let (code, out, err) = inspect_with(&[], &[&good, &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.contains("CORRUPT: sled cannot open this directory"),
        "{out}"
    );
    assert!(out.contains("sled reports"), "sled's own message: {out}");
    assert!(out.contains(&bad.display().to_string()), "{out}");
    assert!(
        !out.contains("raftkv-inspect-"),
        "names the copy, not the directory: {out}"
    );
    // The other directories are still compared, the unopenable one is named in the states.
    let v = inspect_json(&[], &[&good, &good2, &bad], 1);
    assert_eq!(
        v["comparisons"].as_array().unwrap().len(),
        1,
        "{}",
        v["comparisons"]
    );
    assert_eq!(v["states"]["index"], 5);
    assert_eq!(v["states"]["verdict"], "equal");
    let problem = v["states"]["replicas"][2]["problem"].as_str().unwrap();
    assert!(problem.contains("sled cannot open"), "{problem}");
    let v = inspect_json(&[], &[&bad], 1);
    let d = &v["dirs"][0];
    assert_eq!(d["ok"], false);
    assert!(d["sled_error"].as_str().unwrap().contains("sled reports"));
    assert_eq!(d["problems"][0]["tree"], "sled");
    let (code, out, _) = inspect_with(&["--state"], &[&bad]);
    assert_eq!(code, 1);
    assert!(
        out.contains("no state: sled cannot open this directory"),
        "{out}"
    );
    assert!(before == files(&bad), "inspect changed the directory");
}

/// A directory a node moved aside (the storage crate's `set_aside`, as the node calls it) is read
/// as far as sled allows: its mark and incarnation, its intact entries, and every record it cannot
/// read, by tree and index; the exit status says it is damaged.
#[test]
fn a_directory_moved_aside_is_read_as_far_as_sled_allows_and_names_what_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n2");
    node(&dir, "n2", 12, 12, 1, 10, None);
    let (mut st, _) = Storage::open(&dir).unwrap();
    let marked = HardState {
        recovery: raftkv_storage::RecoveryMark::CatchingUp,
        incarnation: 1 << 62,
        ..st.hard_state()
    };
    st.persist(&WriteBatch {
        hard_state: Some(marked),
        ..WriteBatch::default()
    })
    .unwrap();
    drop(st);
    std::thread::sleep(std::time::Duration::from_millis(150));
    fault::flip_log_byte(&dir, 9, 12, 0x10).unwrap();
    fault::flip_meta_byte(&dir, "hard_state", 10, 0x04).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let aside = raftkv_storage::set_aside(&dir, "damaged-bad-record", std::time::SystemTime::now())
        .unwrap();
    let before = files(&aside);
    let v = inspect_json(&[], &[&aside], 1);
    let d = &v["dirs"][0];
    assert_eq!(d["identity"]["node"], "n2");
    assert_eq!(
        d["hard_state"],
        Value::Null,
        "the hard state cannot be read"
    );
    assert_eq!(d["progress"]["recovery"], "catching-up");
    assert_eq!(d["progress"]["incarnation"], 1u64 << 62);
    assert_eq!(d["last_intact"], 8);
    let problems: Vec<(String, Value)> = d["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["tree"].as_str().unwrap().to_string(), p["index"].clone()))
        .collect();
    assert!(
        problems.contains(&("meta".to_string(), Value::Null)),
        "{problems:?}"
    );
    assert!(
        problems.contains(&("log".to_string(), Value::from(9))),
        "{problems:?}"
    );
    let (code, text, _) = inspect(&[&aside], false);
    assert_eq!(code, 1);
    assert!(text.contains("record `hard_state`"), "{text}");
    assert!(
        text.contains("hard state: (cannot be read: its record is damaged"),
        "{text}"
    );
    assert!(text.contains("mark catching-up"), "{text}");
    assert!(before == files(&aside), "inspect changed the copy");
}
