//! The sample cases in fixtures/seed: each input is fed to one node on stdin; every expected line
//! must appear on stdout (compared as parsed JSON) within the 10 s limit, and the node exits 0 at
//! end of input.

mod node_common;

use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

fn run_case(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed");
    let input = lines(&dir.join(format!("{name}.in.jsonl")));
    let expected: Vec<Value> = lines(&dir.join(format!("{name}.expected.jsonl")))
        .iter()
        .map(|l| serde_json::from_str(l).expect("expected line is JSON"))
        .collect();
    let data = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut p = node_common::spawn(data.path(), &[]);
    let mut stdin = p.stdin.take().expect("stdin");
    for l in &input {
        writeln!(stdin, "{l}").expect("write input");
    }
    drop(stdin);
    let stdout = p.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut missing = expected.clone();
    let mut seen = Vec::new();
    let limit = Duration::from_secs(10);
    while !missing.is_empty() {
        let left = limit.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                missing.retain(|m| *m != v);
                seen.push(v);
            }
            Err(_) => panic!(
                "{name}: within 10 s, missing {missing:?}; saw {seen:?}; stderr {:?}",
                p.stderr.lock().map(|s| s.clone())
            ),
        }
    }
    let status = loop {
        if let Some(s) = p.child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            started.elapsed() < limit,
            "{name}: node did not exit at end of input"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{name}: exit {status:?}");
    // Collect the rest of stdout (the reader thread ends at the node's end of output).
    loop {
        match rx.recv_timeout(limit.saturating_sub(started.elapsed())) {
            Ok(line) => seen.push(serde_json::from_str(&line).expect("JSON")),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: stdout not closed in time"),
        }
    }
    // Every request with a msg_id was answered (partition_test included).
    for l in &input {
        let v: Value = serde_json::from_str(l).expect("input is JSON");
        let id = &v["body"]["msg_id"];
        let answer = seen
            .iter()
            .find(|s| s["body"]["in_reply_to"] == *id && s["dest"] == v["src"]);
        let Some(answer) = answer else {
            panic!("{name}: no answer to {l}; saw {seen:?}");
        };
        if v["body"]["type"] == "partition_test" {
            let (req, b) = (&v["body"], &answer["body"]);
            assert_eq!(b["type"], "partition_test_ok", "{name}: {answer}");
            assert_eq!(b["total_ops"], req["operations"], "{name}: {answer}");
            let during = req["heal_after_op"].as_u64().expect("heal")
                - req["partition_after_op"].as_u64().expect("partition");
            assert_eq!(b["ops_during_partition"], during, "{name}: {answer}");
            let succeeded = b["ops_succeeded"].as_u64().expect("ops_succeeded");
            let rejected = b["ops_rejected"].as_u64().expect("ops_rejected");
            assert_eq!(Some(succeeded + rejected), req["operations"].as_u64());
            assert!(
                rejected > 0,
                "{name}: minority ops must be rejected: {answer}"
            );
            assert!(succeeded > 0, "{name}: the majority must serve: {answer}");
            assert_eq!(b["linearizable"], true, "{name}: {answer}");
        }
    }
}

#[test]
fn seed_partition_test_maintains_linearizability() {
    run_case("partition-test-maintains-linearizability");
}

#[test]
fn seed_writes_rejected_in_minority_partition() {
    run_case("writes-rejected-in-minority-partition");
}
