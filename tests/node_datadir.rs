//! The data-directory rule without `RAFTKV_DATA_DIR`: a node restarted by the same parent process
//! finds its directory again; a node started by another parent process does not.

mod node_common;

use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs one node (as `n1` of a one-node cluster) through `cmd`: waits for a leader by retrying a
/// request, then performs `body` and returns its answer and the node's stderr. The node exits 0 at
/// end of input.
fn session(mut cmd: Command, tmp: &std::path::Path, body: Value) -> (Value, String) {
    cmd.env_remove("RAFTKV_DATA_DIR")
        .env("TMPDIR", tmp)
        .env("RAFTKV_STATS_MS", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = node_common::spawn_command(cmd);
    let mut stdin = p.stdin.take().expect("stdin");
    let mut stdout = p.stdout.take().expect("stdout");
    writeln!(
        stdin,
        "{}",
        node_common::init_line("n1", &["n1".to_string()], 1)
    )
    .expect("init");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 10;
    let answer = loop {
        id += 1;
        let mut b = body.clone();
        b["msg_id"] = json!(id);
        writeln!(stdin, "{}", json!({"src": "c1", "dest": "n1", "body": b})).expect("request");
        let mut line = String::new();
        let a = loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).expect("read") > 0,
                "node exited"
            );
            let v: Value = serde_json::from_str(&line).expect("JSON");
            if v["body"]["in_reply_to"] == json!(id) {
                break v["body"].clone();
            }
        };
        if a["code"] != 11 {
            break a;
        }
        assert!(Instant::now() < deadline, "no leader in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let (status, stderr) = p.wait_with_stderr();
    assert!(status.success(), "{stderr}");
    (answer, stderr)
}

#[test]
fn restart_by_the_same_parent_finds_the_directory_and_a_new_parent_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let direct = || Command::new(node_common::BIN);
    let (a, stderr) = session(
        direct(),
        tmp.path(),
        json!({"type": "write", "key": 5, "value": 7}),
    );
    assert_eq!(a["type"], "write_ok", "{a}");
    assert!(!stderr.contains("is a shell"), "{stderr}");
    // Same parent (this test process): the node finds its state again.
    let (a, _) = session(direct(), tmp.path(), json!({"type": "read", "key": 5}));
    assert_eq!(a["value"], json!(7), "restart by the same parent: {a}");
    // A different parent (a shell that stays alive around the node): a fresh directory.
    let mut via_shell = Command::new("sh");
    via_shell.args(["-c", "\"$0\"; true", node_common::BIN]);
    let (a, stderr) = session(via_shell, tmp.path(), json!({"type": "read", "key": 5}));
    assert_eq!(
        a["code"],
        json!(20),
        "a new parent must not see the old state: {a}"
    );
    // A shell parent changes on every start through it: the node says so, loudly.
    assert!(
        stderr.contains("is a shell") && stderr.contains("RAFTKV_DATA_DIR"),
        "no warning about the shell parent: {stderr}"
    );
    let dirs: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("tmp readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("raftkv-"))
        .collect();
    assert_eq!(dirs.len(), 2, "one directory per parent process: {dirs:?}");
    let me = std::process::id();
    assert!(
        dirs.iter().any(|d| d.starts_with(&format!("raftkv-{me}-"))),
        "keyed by the parent pid {me}: {dirs:?}"
    );
}
