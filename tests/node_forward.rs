//! Relayed answers reach only the client whose request was forwarded. The test plays the leader
//! (n2) and a bystander (n3) of a 3-node cluster around one real `raftkv` process (n1): it makes
//! n1 follow n2 with a heartbeat, takes n1's forwarded requests, and answers them wrongly and
//! rightly. Across a SIGKILL and restart, a late answer to a forward made before the restart must
//! not be relayed to a client of the new process (forward ids once restarted at 0 and collided).

mod node_common;

use raftkv::maelstrom::pack;
use raftkv::raft::{Message, MessageBody};
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The fake peers' incarnations: n2 is this plus 2, n3 this plus 3.
const PEER_INCARNATION_BASE: u64 = 10;

struct Node {
    proc: node_common::Proc,
    lines: Receiver<Value>,
}

impl Node {
    fn start(data: &std::path::Path) -> Node {
        // Ticks of 300 ms: no election for at least 3 s, so n1 keeps following n2 throughout.
        let env = [
            ("RAFTKV_PEER_DELAY_MS", "0".to_string()),
            ("RAFTKV_TICK_MS", "300".to_string()),
        ];
        let mut proc = node_common::spawn(data, &env);
        let stdout = proc.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut n = Node { proc, lines };
        let ids: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        n.send_line(&node_common::init_line("n1", &ids, 1));
        n.wait_for(|v| v["body"]["type"] == "init_ok");
        // Peers open at the first tick after init.
        std::thread::sleep(Duration::from_millis(400));
        // A start with an empty directory (a first boot, or a restart killed before the end of
        // the first start's probe round was durable) probes n2 and n3: they answer as empty
        // nodes of a new cluster, so n1 is ordinary at once. A probe sent before the peers
        // opened is sent again at the next election timeout.
        if n.stderr_has("probing, term and vote unknown") {
            let mut answered = std::collections::BTreeSet::new();
            while answered.len() < 2 {
                let v = n.wait_for(|v| v["body"]["type"] == "raft");
                answered.extend(n.answer_probe(&v));
            }
        }
        // n2 leads term 1: n1 follows it.
        let hb = Message {
            from: 2,
            to: 1,
            term: 1,
            // As n2 named itself when it answered n1's probe.
            from_incarnation: PEER_INCARNATION_BASE + 2,
            to_incarnation: 0,
            body: MessageBody::Heartbeat {
                commit: 0,
                read_ctx: 0,
                uncapped: true,
            },
        };
        let m = pack::pack(&hb).expect("pack");
        n.send(json!({"src": "n2", "dest": "n1", "body": {"type": "raft", "m": m}}));
        n
    }

    fn stderr_has(&self, text: &str) -> bool {
        let lines = self.proc.stderr.lock().expect("stderr");
        lines.iter().any(|l| l.contains(text))
    }

    /// Answers a probe n1 sent to a peer, as an empty node of a new cluster answers; returns
    /// the peer.
    fn answer_probe(&mut self, v: &Value) -> Option<u64> {
        let text = v["body"]["m"].as_str()?;
        let probe: Message = pack::unpack(text).expect("n1 sends valid raft messages");
        if probe.body != MessageBody::Probe {
            return None;
        }
        let answer = Message {
            from: probe.to,
            to: 1,
            term: 0,
            from_incarnation: PEER_INCARNATION_BASE + probe.to,
            to_incarnation: probe.from_incarnation,
            body: MessageBody::ProbeResponse {
                last_log_term: 0,
                last_log_index: 0,
            },
        };
        let m = pack::pack(&answer).expect("pack");
        let from = format!("n{}", probe.to);
        self.send(json!({"src": from, "dest": "n1", "body": {"type": "raft", "m": m}}));
        Some(probe.to)
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.proc.stdin.as_mut().expect("stdin");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    fn send(&mut self, v: Value) {
        self.send_line(&v.to_string());
    }

    fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .expect("expected line in time");
            if pred(&v) {
                return v;
            }
        }
    }

    /// Every line that arrives within `d`.
    fn drain(&self, d: Duration) -> Vec<Value> {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(v);
        }
        seen
    }

    /// Sends a client request and returns the id of n1's forward of it to n2.
    fn forwarded(&mut self, client: &str, body: Value) -> u64 {
        self.send(json!({"src": client, "dest": "n1", "body": body}));
        let fwd = self.wait_for(|v| v["dest"] == "n2" && v["body"]["forwarded"] == true);
        fwd["body"]["msg_id"]
            .as_u64()
            .expect("forward has a msg_id")
    }
}

fn reply(from: &str, id: u64, kind: &str) -> Value {
    json!({"src": from, "dest": "n1", "body": {"type": kind, "in_reply_to": id, "msg_id": 900}})
}

#[test]
fn relays_reach_only_the_client_whose_request_was_forwarded() {
    let data = tempfile::tempdir().expect("tempdir");
    // A forward whose answer does not come before a SIGKILL; restart on the same directory.
    let mut n = Node::start(data.path());
    let lost = n.forwarded(
        "c1",
        json!({"type": "cas", "msg_id": 8, "key": 1, "from": 1, "to": 2}),
    );
    n.proc.child.kill().expect("kill");
    let _ = n.proc.child.wait();
    let mut n = Node::start(data.path());
    let fresh = n.forwarded(
        "c2",
        json!({"type": "cas", "msg_id": 3, "key": 1, "from": 2, "to": 3}),
    );
    assert_ne!(fresh, lost, "a restarted node reused a forward id");
    // The old leader's late answer to the forward made before the restart reaches nobody.
    n.send(reply("n2", lost, "cas_ok"));
    // Not from the leader the request went to, or not an answer to a cas: not relayed either.
    n.send(reply("n3", fresh, "cas_ok"));
    n.send(reply("n2", fresh, "write_ok"));
    let seen = n.drain(Duration::from_millis(300));
    assert!(
        seen.iter().all(|v| v["dest"] != "c2" && v["dest"] != "c1"),
        "a wrong or late answer was relayed: {seen:?}"
    );
    // The leader's own answer is relayed to the client, under the client's msg_id.
    n.send(reply("n2", fresh, "cas_ok"));
    let relayed = n.wait_for(|v| v["dest"] == "c2");
    assert_eq!(relayed["body"]["type"], "cas_ok", "{relayed}");
    assert_eq!(relayed["body"]["in_reply_to"], 3, "{relayed}");
}
