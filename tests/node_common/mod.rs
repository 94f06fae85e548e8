//! Shared harness of the node tests: real `raftkv` processes wired through their stdin/stdout by
//! a small router thread, with partitions (dropped peer messages), SIGKILL and restart.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

/// A `raftkv` process with its stderr collected.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<BufReader<std::process::ChildStdout>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Proc {
    /// Waits for the process to exit and for its stderr to be read to the end.
    pub fn wait_with_stderr(&mut self) -> (std::process::ExitStatus, String) {
        self.stdin.take();
        let status = self.child.wait().expect("wait");
        if let Some(h) = self.stderr_reader.take() {
            let _ = h.join();
        }
        let err = self.stderr.lock().expect("stderr").join("\n");
        (status, err)
    }
}

/// Spawns `raftkv` with `data_root` as RAFTKV_DATA_DIR and the given extra environment.
pub fn spawn(data_root: &Path, env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.env("RAFTKV_DATA_DIR", data_root)
        .env("RAFTKV_STATS_MS", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// Spawns a prepared command (stdin/stdout/stderr must be piped) and collects its stderr.
pub fn spawn_command(mut cmd: Command) -> Proc {
    let mut child = cmd.spawn().expect("spawn raftkv");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().map(BufReader::new);
    let stderr_lines = Arc::new(Mutex::new(Vec::new()));
    let stderr_reader = child.stderr.take().map(|err| {
        let sink = stderr_lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().expect("stderr sink").push(line);
            }
        })
    });
    Proc {
        child,
        stdin,
        stdout,
        stderr: stderr_lines,
        stderr_reader,
    }
}

pub fn init_line(node: &str, ids: &[String], msg_id: u64) -> String {
    json!({"src": "c0", "dest": node, "body": {"type": "init", "msg_id": msg_id, "node_id": node, "node_ids": ids}})
        .to_string()
}

/// One cluster member as the router sees it.
struct Member {
    /// Lines for the node's stdin, written by a writer thread (so the router never blocks on a
    /// full pipe while holding the lock).
    stdin: Option<mpsc::Sender<String>>,
}

fn writer(mut stdin: ChildStdin) -> mpsc::Sender<String> {
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in rx {
            if stdin
                .write_all(line.as_bytes())
                .and_then(|_| stdin.flush())
                .is_err()
            {
                return;
            }
        }
    });
    tx
}

/// Shared state of the router.
struct Net {
    members: Vec<Member>,
    /// Pairs of node indexes that cannot talk (both directions are listed).
    cut: HashSet<(usize, usize)>,
    /// Client replies by msg_id.
    waiting: HashMap<u64, mpsc::Sender<Value>>,
    /// Counts of peer messages routed and dropped.
    routed: u64,
    dropped: u64,
}

/// A cluster of real `raftkv` processes.
pub struct Cluster {
    pub ids: Vec<String>,
    pub dir: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
    procs: Vec<Option<Child>>,
    stderr: Vec<Arc<Mutex<Vec<String>>>>,
    net: Arc<Mutex<Net>>,
    next_msg_id: Arc<AtomicU64>,
}

impl Cluster {
    pub fn start(n: usize, env: Vec<(&'static str, String)>) -> Cluster {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let net = Arc::new(Mutex::new(Net {
            members: (0..n).map(|_| Member { stdin: None }).collect(),
            cut: HashSet::new(),
            waiting: HashMap::new(),
            routed: 0,
            dropped: 0,
        }));
        let mut c = Cluster {
            ids,
            dir,
            env,
            procs: (0..n).map(|_| None).collect(),
            stderr: (0..n).map(|_| Arc::new(Mutex::new(Vec::new()))).collect(),
            net,
            next_msg_id: Arc::new(AtomicU64::new(1_000)),
        };
        for i in 0..n {
            c.boot(i);
        }
        c
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Starts node `i` (again) on its data directory and initialises it.
    pub fn boot(&mut self, i: usize) {
        if let Err(e) = self.try_boot(i) {
            panic!("{e}");
        }
    }

    /// [`Cluster::boot`], returning an error (with the node's stderr when it exited) instead of
    /// panicking when the node does not answer `init`.
    pub fn try_boot(&mut self, i: usize) -> Result<(), String> {
        let mut p = spawn(self.dir.path(), &self.env);
        self.stderr[i] = p.stderr.clone();
        let mut stdout = p.stdout.take().expect("stdout");
        let mut stdin = p.stdin.take().expect("stdin");
        // init first, and wait for init_ok before routing anything to it.
        writeln!(stdin, "{}", init_line(&self.ids[i], &self.ids, 1)).expect("send init");
        stdin.flush().expect("flush init");
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                drop(stdin);
                let (status, stderr) = p.wait_with_stderr();
                return Err(format!(
                    "node {} exited before init_ok ({status}): {stderr}",
                    self.ids[i]
                ));
            }
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            if v["body"]["type"] == "init_ok" {
                break;
            }
            if Instant::now() >= deadline {
                let _ = p.child.kill();
                let _ = p.wait_with_stderr();
                return Err(format!("no init_ok from {}", self.ids[i]));
            }
        }
        self.net.lock().expect("net").members[i].stdin = Some(writer(stdin));
        let net = self.net.clone();
        let ids = self.ids.clone();
        thread::spawn(move || route_from(i, stdout, net, ids));
        self.procs[i] = Some(p.child);
        Ok(())
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        self.net.lock().expect("net").members[i].stdin = None;
        if let Some(mut child) = self.procs[i].take() {
            child.kill().expect("kill");
            let _ = child.wait();
        }
    }

    /// Closes node `i`'s stdin and waits for it to exit; returns its exit code.
    pub fn stop(&mut self, i: usize) -> Option<i32> {
        self.net.lock().expect("net").members[i].stdin = None;
        let mut child = self.procs[i].take()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self, i: usize) -> Vec<String> {
        self.stderr[i].lock().expect("stderr").clone()
    }

    /// Cuts every link between `side` and the other nodes.
    pub fn isolate(&self, side: &[usize]) {
        let mut net = self.net.lock().expect("net");
        let n = net.members.len();
        for &a in side {
            for b in 0..n {
                if !side.contains(&b) {
                    net.cut.insert((a, b));
                    net.cut.insert((b, a));
                }
            }
        }
    }

    pub fn heal(&self) {
        self.net.lock().expect("net").cut.clear();
    }

    /// Sends `body` to node `i` as client `client` and waits up to `timeout` for the answer.
    pub fn request(&self, i: usize, mut body: Value, timeout: Duration) -> Option<Value> {
        let id = self.next_msg_id.fetch_add(1, Ordering::Relaxed);
        body["msg_id"] = json!(id);
        let (tx, rx) = mpsc::channel();
        let line = json!({"src": format!("c{}", id % 7 + 1), "dest": self.ids[i], "body": body})
            .to_string();
        {
            let mut net = self.net.lock().expect("net");
            net.waiting.insert(id, tx);
            let stdin = net.members[i].stdin.as_ref()?;
            if stdin.send(format!("{line}\n")).is_err() {
                return None;
            }
        }
        let answer = rx.recv_timeout(timeout).ok();
        self.net.lock().expect("net").waiting.remove(&id);
        answer
    }

    /// Retries a request through node `i` until it gets an answer that is not 11/13 or a timeout.
    pub fn request_until_definite(&self, i: usize, body: Value, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no definite answer from node {i} to {body}"
            );
            match self.request(i, body.clone(), left.min(Duration::from_secs(3))) {
                Some(a) if a["type"] == "error" && (a["code"] == 11 || a["code"] == 13) => {
                    thread::sleep(Duration::from_millis(50));
                }
                Some(a) => return a,
                None => {}
            }
        }
    }

    /// The node that announced itself leader for the highest term. Its stderr line is read by
    /// a thread of its own, which may lag a loaded machine, so this waits up to two seconds for
    /// a first announcement.
    pub fn leader(&self) -> Option<usize> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let found = self.announced_leader();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn announced_leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in 0..self.ids.len() {
            for l in self.stderr(i) {
                let term = l
                    .split(" is leader for term ")
                    .nth(1)
                    .and_then(|t| t.trim().parse::<u64>().ok());
                if let Some(t) = term {
                    if best.is_none_or(|(bt, _)| t > bt) {
                        best = Some((t, i));
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// (routed, dropped) peer messages so far.
    pub fn traffic(&self) -> (u64, u64) {
        let net = self.net.lock().expect("net");
        (net.routed, net.dropped)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

/// Reads node `i`'s stdout and routes each line: to a peer (unless the link is cut) or to the
/// client waiting for it.
fn route_from(
    i: usize,
    mut stdout: BufReader<std::process::ChildStdout>,
    net: Arc<Mutex<Net>>,
    ids: Vec<String>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            panic!("node {} wrote a line that is not JSON: {line:?}", ids[i]);
        };
        let dest = v["dest"].as_str().unwrap_or("").to_string();
        let mut net = net.lock().expect("net");
        if let Some(j) = ids.iter().position(|n| *n == dest) {
            if net.cut.contains(&(i, j)) {
                net.dropped += 1;
                continue;
            }
            net.routed += 1;
            if let Some(stdin) = net.members[j].stdin.as_ref() {
                let _ = stdin.send(line.clone());
            }
        } else if let Some(id) = v["body"]["in_reply_to"].as_u64() {
            if let Some(tx) = net.waiting.remove(&id) {
                let _ = tx.send(v["body"].clone());
            }
        }
    }
}

/// The last stats line of a node's stderr, as key=value pairs.
pub fn last_stats(lines: &[String]) -> Option<HashMap<String, String>> {
    let line = lines.iter().rev().find(|l| l.contains("raftkv::stats:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}
