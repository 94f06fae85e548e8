//! Bad input to a real `raftkv` process never stops it: a non-JSON line, a body with missing
//! fields, an unknown type, a request before init, a line that is not UTF-8. Each gets a clear
//! stderr line and, where the request has a msg_id, an error reply; the node then still serves.
//! Also: a data directory that belongs to another node is refused with a clear message, and so is
//! a setting in the environment that is not 0 or 1 where one of those is asked for.

mod node_common;

use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

fn replies(out: &[Value], id: u64) -> Vec<&Value> {
    out.iter()
        .filter(|v| v["body"]["in_reply_to"] == json!(id))
        .collect()
}

#[test]
fn bad_input_never_stops_the_node() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut p = node_common::spawn(data.path(), &[]);
    let mut stdin = p.stdin.take().expect("stdin");
    let ids = vec!["n1".to_string()];
    let script: Vec<Vec<u8>> = vec![
        br#"{"src":"c1","dest":"n1","body":{"type":"write","msg_id":1,"key":1,"value":1}}"#.to_vec(),
        b"this is not json".to_vec(),
        b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"read\",\"msg_id\":2,\"key\":\"\xff\"}}".to_vec(),
        node_common::init_line("n1", &ids, 3).into_bytes(),
        br#"{"src":"c1","dest":"n1","body":{"type":"write","msg_id":4,"key":1}}"#.to_vec(),
        br#"{"src":"c1","dest":"n1","body":{"type":"cas","msg_id":5,"key":1,"from":1}}"#.to_vec(),
        br#"{"src":"c1","dest":"n1","body":{"type":"frobnicate","msg_id":6}}"#.to_vec(),
        br#"{"src":"c1","dest":"n1","body":{"msg_id":7}}"#.to_vec(),
        br#"{"dest":"n1","body":{"type":"read","msg_id":8,"key":1}}"#.to_vec(),
        br#"[1,2,3]"#.to_vec(),
        br#"{"src":"n2","dest":"n1","body":{"type":"raft","m":"AAAA"}}"#.to_vec(),
        br#"{"src":"n1","dest":"n1","body":{"type":"raft","m":"not base64!"}}"#.to_vec(),
        br#"{"src":"n1","dest":"n1","body":{"type":"raft"}}"#.to_vec(),
    ];
    for l in &script {
        stdin.write_all(l).expect("write");
        stdin.write_all(b"\n").expect("write");
    }
    stdin.flush().expect("flush");
    let stdout = p.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The node still serves: a one-node cluster elects itself; retry the write until then.
    let mut out: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = |out: &mut Vec<Value>| {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no answer in time; saw {out:?}"));
        out.push(serde_json::from_str(&line).expect("stdout is JSON lines"));
    };
    let mut attempt = 100;
    loop {
        let line = json!({"src":"c1","dest":"n1","body":{"type":"write","msg_id":attempt,"key":1,"value":42}});
        writeln!(stdin, "{line}").expect("write");
        while replies(&out, attempt).is_empty() {
            next(&mut out);
        }
        let r = replies(&out, attempt)[0]["body"].clone();
        if r["type"] == "write_ok" {
            break;
        }
        assert_eq!(r["code"], 11, "before a leader exists: {r}");
        std::thread::sleep(Duration::from_millis(20));
        attempt += 1;
    }
    for l in [
        r#"{"src":"c1","dest":"n1","body":{"type":"read","msg_id":10,"key":1}}"#,
        r#"{"src":"c1","dest":"n1","body":{"type":"read","msg_id":11,"key":2}}"#,
    ] {
        writeln!(stdin, "{l}").expect("write");
    }
    while replies(&out, 11).is_empty() || replies(&out, 10).is_empty() {
        next(&mut out);
    }
    drop(stdin);
    let status = p.child.wait().expect("wait");
    assert!(status.success(), "exit status {status:?}");
    while let Ok(line) = rx.try_recv() {
        out.push(serde_json::from_str(&line).expect("JSON"));
    }
    let code = |id: u64| -> Value {
        let r = replies(&out, id);
        assert_eq!(r.len(), 1, "exactly one answer to {id}: {out:?}");
        r[0]["body"]["code"].clone()
    };
    assert_eq!(code(1), json!(11), "write before init");
    assert_eq!(code(4), json!(12), "write without value");
    assert_eq!(code(5), json!(12), "cas without to");
    assert_eq!(code(6), json!(10), "unknown type");
    assert_eq!(code(7), json!(12), "no type");
    assert_eq!(replies(&out, 3)[0]["body"]["type"], "init_ok");
    assert_eq!(replies(&out, 10)[0]["body"]["value"], json!(42));
    assert_eq!(code(11), json!(20), "missing key");
    assert!(replies(&out, 2).is_empty() && replies(&out, 8).is_empty());
    for v in &out {
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(3),
            "exactly src, dest, body: {v}"
        );
    }
    let err = p.stderr.lock().expect("stderr").join("\n");
    for needle in [
        "not a JSON message",
        "not UTF-8",
        "unknown message type `frobnicate`",
        "no `value` field",
        "no `src` field",
        "not a JSON object",
        "bad raft message from n1: packed payload is not base64: Invalid symbol",
        "raft message has no string `m`",
        "raft message from non-member n2",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
}

#[test]
fn a_directory_of_another_node_is_refused_with_a_clear_message() {
    let data = tempfile::tempdir().expect("tempdir");
    let run = |ids: &[&str]| {
        let mut p = node_common::spawn(data.path(), &[]);
        let mut stdin = p.stdin.take().expect("stdin");
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        writeln!(stdin, "{}", node_common::init_line("n1", &ids, 1)).expect("write");
        drop(stdin);
        p.wait_with_stderr()
    };
    let (status, err) = run(&["n1", "n2", "n3"]);
    assert!(status.success(), "first start: {status:?} {err}");
    let (status, err) = run(&["n1", "n4", "n5"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("belongs to node n1 of cluster"), "{err}");
}

#[test]
fn a_directory_held_by_a_running_node_ends_the_second_with_a_clear_message() {
    let data = tempfile::tempdir().expect("tempdir");
    let ids = vec!["n1".to_string(), "n2".to_string()];
    let mut first = node_common::spawn(data.path(), &[]);
    let mut first_in = first.stdin.take().expect("stdin");
    writeln!(first_in, "{}", node_common::init_line("n1", &ids, 1)).expect("init");
    first_in.flush().expect("flush");
    let mut line = String::new();
    first
        .stdout
        .as_mut()
        .expect("stdout")
        .read_line(&mut line)
        .expect("init_ok");
    assert!(line.contains("init_ok"), "{line}");
    let mut second = node_common::spawn(data.path(), &[]);
    let mut second_in = second.stdin.take().expect("stdin");
    writeln!(second_in, "{}", node_common::init_line("n1", &ids, 1)).expect("init");
    second_in.flush().expect("flush");
    // The second node cannot survive without its storage: it ends with status 1 and says why,
    // even though its stdin is still open.
    let (status, err) = second.wait_with_stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("another process holds this data directory"),
        "{err}"
    );
    drop(first_in);
    assert!(first.child.wait().expect("wait").success());
}

#[test]
fn a_bad_switch_setting_is_refused_naming_the_variable() {
    let data = tempfile::tempdir().expect("tempdir");
    for name in ["RAFTKV_PRE_VOTE", "RAFTKV_CHECK_QUORUM"] {
        let mut p = node_common::spawn(data.path(), &[(name, "yes".to_string())]);
        let (status, err) = p.wait_with_stderr();
        assert_eq!(status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}=\"yes\" is not 0 or 1")),
            "{name}: {err}"
        );
    }
}
