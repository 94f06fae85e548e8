//! The node's log levels as a user turns them on: `RAFTKV_LOG=debug` shows every message sent
//! and received with its type, term and indexes; the default shows role changes and the stats
//! line but no message-level lines; `raftkv::shell=trace` shows the `Ready`s; a bad filter is
//! named and the default used.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs node n1 of a two-node cluster (n2 never answers, so n1, started with an empty directory,
/// keeps probing) for about a second with `RAFTKV_LOG` set to `filter` (unset when `None`);
/// returns its stderr.
fn node_stderr(filter: Option<&str>) -> String {
    node_stderr_for(filter, Duration::from_millis(800))
}

fn node_stderr_for(filter: Option<&str>, run: Duration) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftkv"));
    cmd.env("RAFTKV_DATA_DIR", data.path())
        .env("RAFTKV_TICK_MS", "5")
        .env("RAFTKV_PEER_DELAY_MS", "10")
        .env_remove("RAFTKV_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = filter {
        cmd.env("RAFTKV_LOG", f);
    }
    let mut child = cmd.spawn().expect("spawn raftkv");
    let mut stdin = child.stdin.take().expect("stdin");
    let init = r#"{"src":"c1","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"]}}"#;
    writeln!(stdin, "{init}").expect("write init");
    stdin.flush().expect("flush");
    std::thread::sleep(run);
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "node exited with {:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("init_ok"), "no init_ok: {stdout}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn debug_shows_message_lines_and_the_default_does_not() {
    let debug = node_stderr(Some("debug"));
    assert!(
        debug.contains("recv init from c1 msg_id=Some(1)"),
        "{debug}"
    );
    assert!(debug.contains("send init_ok to c1"), "{debug}");
    // n1 starts with an empty directory, so it first probes n2 for its term and last entry.
    assert!(debug.contains("send raft to n2: Probe"), "{debug}");
    assert!(debug.contains("raftkv::stats"), "{debug}");

    let default = node_stderr(None);
    assert!(default.contains("raftkv::stats"), "{default}");
    assert!(default.contains("n1 opened"), "{default}");
    assert!(!default.contains("DEBUG"), "{default}");
    assert!(!default.contains("send raft"), "{default}");
    assert!(!default.contains("recv init"), "{default}");
}

#[test]
fn trace_of_one_module_shows_readys_only() {
    let trace = node_stderr(Some("raftkv::shell=trace,info"));
    assert!(trace.contains("n1 ready: Ready {"), "{trace}");
    assert!(!trace.contains("send raft"), "{trace}");
}

#[test]
fn a_bad_filter_is_named_and_the_default_used() {
    let err = node_stderr(Some("raftkv=loud"));
    assert!(
        err.contains("RAFTKV_LOG=\"raftkv=loud\" is not a log filter"),
        "{err}"
    );
    assert!(err.contains("raftkv::stats"), "{err}");
    assert!(!err.contains("send raft"), "{err}");
}

/// A rejoining node that a peer never answers says, every 5 s, what it waits for (the default
/// level shows it), so an operator can tell why it stays out.
#[test]
fn a_node_waiting_for_a_probe_answer_names_the_peer() {
    let log = node_stderr_for(None, Duration::from_millis(5_600));
    assert!(
        log.contains("n1 is rejoining and waits for probe answers from n2"),
        "{log}"
    );
}
