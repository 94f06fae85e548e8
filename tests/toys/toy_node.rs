//! A toy Maelstrom lin-kv node for the bench's own tests. `TOY_MODE` picks its behaviour:
//!
//! - `primary` (default): every node forwards to the first node of `node_ids`, which applies
//!   requests one at a time and saves its map to `$RAFTKV_DATA_DIR/<id>/toy-state.json` (write then
//!   rename) before answering. Linearizable under partitions and kills: the bench's positive control.
//! - `local`: each node answers from its own in-memory map (not linearizable).
//! - `forget`: like `primary` but in memory only, so a killed primary forgets everything.
//! - `garbage`: answers `init` with a line that is not JSON.
//! - `silent`: never answers `init`.
//! - `die`: exits with status 3 at start, after a line on stderr.
//!
//! `TOY_BAD_NODE=nX` limits `garbage` and `silent` to that node (the others behave as `primary`).
//! Must never: be used for anything but testing the bench.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

fn send(out: &mut impl Write, src: &str, dest: &str, body: Value) {
    let line = json!({"src": src, "dest": dest, "body": body});
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let mode = std::env::var("TOY_MODE").unwrap_or_else(|_| "primary".into());
    let bad = std::env::var("TOY_BAD_NODE").ok();
    if mode == "die" {
        eprintln!("toy node: dying at start as asked");
        std::process::exit(3);
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut me = String::new();
    let mut primary = String::new();
    let mut state: Map<String, Value> = Map::new();
    let mut state_file: Option<PathBuf> = None;
    let mut next_id: u64 = 0;
    let mut pending: HashMap<u64, (String, Value)> = HashMap::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            eprintln!("toy node: not JSON: {line}");
            continue;
        };
        let src = msg["src"].as_str().unwrap_or("").to_string();
        let body = msg["body"].clone();
        let typ = body["type"].as_str().unwrap_or("");
        let msg_id = body["msg_id"].clone();
        if typ == "init" {
            me = body["node_id"].as_str().unwrap_or("").to_string();
            primary = body["node_ids"][0].as_str().unwrap_or("").to_string();
            let targeted = bad.as_deref().is_none_or(|b| b == me);
            if targeted && mode == "garbage" {
                let _ = writeln!(out, "hello from the toy node, this is not JSON");
                let _ = out.flush();
                continue;
            }
            if targeted && mode == "silent" {
                continue;
            }
            if mode == "primary" {
                if let Some(dir) = std::env::var_os("RAFTKV_DATA_DIR") {
                    let dir = PathBuf::from(dir).join(&me);
                    let _ = std::fs::create_dir_all(&dir);
                    let f = dir.join("toy-state.json");
                    if let Ok(text) = std::fs::read_to_string(&f) {
                        if let Ok(Value::Object(m)) = serde_json::from_str(&text) {
                            state = m;
                        }
                    }
                    state_file = Some(f);
                }
            }
            eprintln!(
                "toy node {me}: init (mode {mode}, {} keys loaded)",
                state.len()
            );
            send(
                &mut out,
                &me,
                &src,
                json!({"type":"init_ok","in_reply_to":msg_id}),
            );
            continue;
        }
        // Peers may write to a restarted node before its init (the bench routes to a process
        // as soon as it runs): like the real node, it drops what comes before it knows its id.
        if me.is_empty() {
            eprintln!("toy node: dropping a {typ} from {src} before init");
            continue;
        }
        // A reply to a forwarded request: relay it to the client.
        if let Some(irt) = body["in_reply_to"].as_u64() {
            if let Some((client, client_msg)) = pending.remove(&irt) {
                let mut b = body.clone();
                b["in_reply_to"] = client_msg;
                send(&mut out, &me, &client, b);
            }
            continue;
        }
        if mode != "local" && me != primary {
            next_id += 1;
            pending.insert(next_id, (src, msg_id));
            let mut b = body.clone();
            b["msg_id"] = json!(next_id);
            send(&mut out, &me, &primary, b);
            continue;
        }
        let key = body["key"].to_string();
        let reply = match typ {
            "read" => match state.get(&key) {
                Some(v) => json!({"type":"read_ok","value":v}),
                None => json!({"type":"error","code":20,"text":"no such key"}),
            },
            "write" => {
                state.insert(key, body["value"].clone());
                json!({"type":"write_ok"})
            }
            "cas" => match state.get(&key) {
                None => json!({"type":"error","code":20,"text":"no such key"}),
                Some(v) if *v != body["from"] => {
                    json!({"type":"error","code":22,"text":"current value differs"})
                }
                Some(_) => {
                    state.insert(key, body["to"].clone());
                    json!({"type":"cas_ok"})
                }
            },
            _ => json!({"type":"error","code":10,"text":"unsupported"}),
        };
        if let Some(f) = &state_file {
            let tmp = f.with_extension("tmp");
            let text = Value::Object(state.clone()).to_string();
            if std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, f))
                .is_err()
            {
                eprintln!("toy node {me}: cannot save state; exiting");
                std::process::exit(1);
            }
        }
        let mut reply = reply;
        reply["in_reply_to"] = msg_id;
        send(&mut out, &me, &src, reply);
    }
    // TOY_EXIT_AT_EOF=N: fail with status N when the input ends, as a node that cannot finish
    // cleanly would.
    if let Some(code) = std::env::var("TOY_EXIT_AT_EOF")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        eprintln!("toy node {me}: input ended, exiting with {code} as asked");
        std::process::exit(code);
    }
}
