//! Node processes and the simulated network between them.
//!
//! Owns: spawning each node binary with `RAFTKV_DATA_DIR` (and the bench's own environment, so
//! `RAFTKV_LOG` reaches every node), its stderr going to a per-node log;
//! the `init`/`init_ok` handshake (with a deadline, naming the node on every failure); the router
//! that carries every message between nodes and clients with delays drawn from the configured
//! distribution and drops what the current network fault forbids or loses; SIGKILL and restart
//! on the same data directory; SIGSTOP / SIGCONT (pause and resume). Each node runs in its own
//! process group, so a Ctrl-C at the terminal reaches the bench alone, which then stops them.
//! Must never: wait without a deadline on a node, interpret a message beyond routing it and
//! matching replies, or leave a child process behind (Drop kills them all).

use super::grudge::{self, NetFault};
use super::net::{self, DelayQueue, Fate, LatencyDist};
use crate::maelstrom::Envelope;
use crate::rng::Rng;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How to run one node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub bin: PathBuf,
    pub args: Vec<String>,
    /// `RAFTKV_DATA_DIR` for every node (node `nX` keeps its data in `data_dir/nX`).
    pub data_dir: PathBuf,
    /// Each node's stderr is appended to `log_dir/<id>.log`.
    pub log_dir: PathBuf,
    pub init_timeout: Duration,
    /// Mean one-way delay of every message.
    pub latency: Duration,
    pub latency_dist: LatencyDist,
    /// Seed of the delay and loss draws.
    pub net_seed: u64,
}

/// Counters of the simulated network.
#[derive(Default, Debug)]
pub struct NetStats {
    pub delivered: AtomicU64,
    pub dropped_partition: AtomicU64,
    /// Node-to-node messages a `flaky` network lost.
    pub dropped_loss: AtomicU64,
    pub dropped_node_down: AtomicU64,
    pub late_replies: AtomicU64,
    pub unknown_dest: AtomicU64,
}

/// What a node's stdout reader saw.
#[derive(Default)]
struct Health {
    exited: AtomicBool,
    first_garbage: Mutex<Option<String>>,
    garbage_lines: AtomicU64,
}

struct Proc {
    child: Child,
    health: Arc<Health>,
}

enum RouterCmd {
    Send {
        env: Envelope,
        from_node: Option<usize>,
    },
    Stop,
}

/// Mutex lock that survives a panicked holder (the data are counters and handles).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Shared {
    ids: Vec<String>,
    writers: RwLock<Vec<Option<Sender<String>>>>,
    clients: Mutex<HashMap<String, Sender<Envelope>>>,
    fault: RwLock<NetFault>,
    stats: NetStats,
    problems: Mutex<Vec<String>>,
    /// Node-to-node messages each node has sent (a network tap's view, used to spot the busiest
    /// sender, which for a leader-based protocol is the leader).
    sent: Vec<AtomicU64>,
    next_client: AtomicU64,
    start: Instant,
}

impl Shared {
    fn node_index(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    fn problem(&self, text: String) {
        let mut p = lock(&self.problems);
        if p.len() < 200 {
            p.push(text);
        }
    }

    /// Delivers `env` now, unless the network fault drops it; `roll` is a uniform draw in
    /// [0, 1) for the loss rate.
    fn deliver(&self, env: Envelope, from_node: Option<usize>, roll: f64) {
        if let Some(d) = self.node_index(&env.dest) {
            if let Some(s) = from_node {
                self.sent[s].fetch_add(1, Ordering::Relaxed);
                let fault = self.fault.read().unwrap_or_else(|p| p.into_inner());
                match net::fate(&fault, d, s, roll) {
                    Fate::Deliver => {}
                    Fate::Partitioned => {
                        self.stats.dropped_partition.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Fate::Lost => {
                        self.stats.dropped_loss.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            let line = match serde_json::to_string(&env) {
                Ok(l) => l,
                Err(_) => return, // a parsed envelope always serializes
            };
            let w = self.writers.read().unwrap_or_else(|p| p.into_inner());
            match w.get(d).and_then(Option::as_ref) {
                Some(tx) if tx.send(line).is_ok() => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.stats.dropped_node_down.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        let clients = lock(&self.clients);
        if let Some(tx) = clients.get(&env.dest) {
            if tx.send(env).is_ok() {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        drop(clients);
        let is_old_client = env
            .dest
            .strip_prefix('c')
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n < self.next_client.load(Ordering::Relaxed));
        if is_old_client {
            self.stats.late_replies.fetch_add(1, Ordering::Relaxed);
        } else {
            let n = self.stats.unknown_dest.fetch_add(1, Ordering::Relaxed);
            if n < 5 {
                self.problem(format!(
                    "node {} sent a message to unknown destination `{}`",
                    env.src, env.dest
                ));
            }
        }
    }
}

/// The running cluster: processes, router, grudge.
pub struct Cluster {
    spec: NodeSpec,
    shared: Arc<Shared>,
    procs: Mutex<Vec<Option<Proc>>>,
    router_tx: Mutex<Sender<RouterCmd>>,
    router: Mutex<Option<JoinHandle<()>>>,
}

/// A client endpoint: its own id, and the replies routed to it.
pub struct Client {
    pub id: String,
    rx: Receiver<Envelope>,
    next_msg_id: u64,
    shared: Arc<Shared>,
    router_tx: Sender<RouterCmd>,
}

/// The answer to a client call.
pub enum Reply {
    Body(Map<String, Value>),
    Timeout,
}

impl Client {
    /// Sends `body` (a `msg_id` is added) to node `node` and waits up to `timeout` for the reply.
    pub fn call(&mut self, node: usize, mut body: Map<String, Value>, timeout: Duration) -> Reply {
        self.next_msg_id += 1;
        let msg_id = self.next_msg_id;
        body.insert("msg_id".into(), msg_id.into());
        let env = Envelope {
            src: self.id.clone(),
            dest: self.shared.ids[node].clone(),
            body,
        };
        if self
            .router_tx
            .send(RouterCmd::Send {
                env,
                from_node: None,
            })
            .is_err()
        {
            return Reply::Timeout;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(env) => {
                    if env.body.get("in_reply_to").and_then(Value::as_u64) == Some(msg_id) {
                        return Reply::Body(env.body);
                    }
                    self.shared
                        .stats
                        .late_replies
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => return Reply::Timeout,
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        lock(&self.shared.clients).remove(&self.id);
    }
}

impl Cluster {
    /// Spawns every node and completes `init` with each. On any failure, kills what it started
    /// and returns an error naming the node(s).
    pub fn start(spec: NodeSpec, ids: Vec<String>, start: Instant) -> Result<Cluster, String> {
        std::fs::create_dir_all(&spec.log_dir).map_err(|e| {
            format!(
                "cannot create log directory {}: {e}",
                spec.log_dir.display()
            )
        })?;
        std::fs::create_dir_all(&spec.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                spec.data_dir.display()
            )
        })?;
        let n = ids.len();
        let shared = Arc::new(Shared {
            writers: RwLock::new(vec![None; n]),
            clients: Mutex::new(HashMap::new()),
            fault: RwLock::new(healthy(n)),
            stats: NetStats::default(),
            problems: Mutex::new(Vec::new()),
            next_client: AtomicU64::new(0),
            sent: (0..n).map(|_| AtomicU64::new(0)).collect(),
            ids,
            start,
        });
        let (tx, rx) = mpsc::channel();
        let delays = (spec.latency, spec.latency_dist, Rng::new(spec.net_seed));
        let sh = shared.clone();
        let router = thread::Builder::new()
            .name("bench-router".into())
            .spawn(move || route(rx, sh, delays))
            .map_err(|e| format!("cannot start the router thread: {e}"))?;
        let cluster = Cluster {
            spec,
            shared,
            procs: Mutex::new((0..n).map(|_| None).collect()),
            router_tx: Mutex::new(tx),
            router: Mutex::new(Some(router)),
        };
        for i in 0..n {
            cluster.spawn(i)?; // Drop kills the ones already started
        }
        let c = &cluster;
        let errors: Vec<String> = thread::scope(|s| {
            let hs: Vec<_> = (0..n).map(|i| s.spawn(move || c.init(i))).collect();
            hs.into_iter()
                .filter_map(|h| match h.join() {
                    Ok(r) => r.err(),
                    Err(_) => Some("an init thread panicked".to_string()),
                })
                .collect()
        });
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        Ok(cluster)
    }

    pub fn ids(&self) -> &[String] {
        &self.shared.ids
    }

    pub fn node_count(&self) -> usize {
        self.shared.ids.len()
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.spec
            .log_dir
            .join(format!("{}.log", self.shared.ids[i]))
    }

    /// Node `i`'s data directory (`RAFTKV_DATA_DIR/<id>`, as the node names it).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.spec.data_dir.join(&self.shared.ids[i])
    }

    /// Appends a line of the bench's own to node `i`'s log (marked as the bench's, like the
    /// start lines), so the log shows what was done to the node between its runs.
    pub fn note(&self, i: usize, text: &str) {
        let path = self.log_path(i);
        if let Ok(mut log) = OpenOptions::new().create(true).append(true).open(&path) {
            let _ = writeln!(log, "=== raftkv test: t={:.3}s {text} ===", self.secs());
        }
    }

    /// The length of node `i`'s log now (0 when it cannot be read).
    pub fn log_len(&self, i: usize) -> u64 {
        std::fs::metadata(self.log_path(i)).map_or(0, |m| m.len())
    }

    /// The whole lines node `i`'s log holds from byte `from`, and where the next whole line will
    /// start (a line still being written is left for the next call).
    pub fn log_lines_from(&self, i: usize, from: u64) -> (String, u64) {
        use std::io::{Read, Seek, SeekFrom};
        let mut bytes = Vec::new();
        let read = std::fs::File::open(self.log_path(i)).and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.read_to_end(&mut bytes)
        });
        if read.is_err() {
            return (String::new(), from);
        }
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        bytes.truncate(whole);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (text, from + whole as u64)
    }

    pub fn stats(&self) -> &NetStats {
        &self.shared.stats
    }

    /// Node misbehaviour seen so far (garbage lines, unknown destinations, exits on their own).
    pub fn problems(&self) -> Vec<String> {
        lock(&self.shared.problems).clone()
    }

    /// Node-to-node messages sent by each node so far.
    pub fn sent_counts(&self) -> Vec<u64> {
        self.shared
            .sent
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Applies a network fault to node-to-node messages from now on (messages already on their
    /// way are judged when they arrive).
    pub fn set_fault(&self, fault: NetFault) {
        debug_assert_eq!(fault.grudge.len(), self.node_count());
        *self.shared.fault.write().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// Heals every network fault.
    pub fn heal(&self) {
        self.set_fault(healthy(self.node_count()));
    }

    /// A new client id (`cN`, never reused) with its reply channel.
    pub fn client(&self) -> Client {
        let n = self.shared.next_client.fetch_add(1, Ordering::Relaxed);
        let id = format!("c{n}");
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.clients).insert(id.clone(), tx);
        Client {
            id,
            rx,
            next_msg_id: 0,
            shared: self.shared.clone(),
            router_tx: lock(&self.router_tx).clone(),
        }
    }

    fn secs(&self) -> f64 {
        self.shared.start.elapsed().as_secs_f64()
    }

    fn spawn(&self, i: usize) -> Result<(), String> {
        let id = self.shared.ids[i].clone();
        let log_path = self.log_path(i);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("node {id}: cannot open its log {}: {e}", log_path.display()))?;
        let _ = writeln!(
            log,
            "=== raftkv test: starting node {id} at t={:.3}s ===",
            self.secs()
        );
        let mut child = Command::new(&self.spec.bin)
            .args(&self.spec.args)
            .process_group(0)
            .env("RAFTKV_DATA_DIR", &self.spec.data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("node {id}: cannot start {}: {e}", self.spec.bin.display()))?;
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(i), Some(o)) => (i, o),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("node {id}: no stdin/stdout pipe"));
            }
        };
        let health = Arc::new(Health::default());
        let (wtx, wrx) = mpsc::channel::<String>();
        let spawned = thread::Builder::new()
            .name(format!("bench-{id}-in"))
            .spawn(move || write_lines(stdin, wrx))
            .and_then(|_| {
                let sh = self.shared.clone();
                let h = health.clone();
                let tx = lock(&self.router_tx).clone();
                thread::Builder::new()
                    .name(format!("bench-{id}-out"))
                    .spawn(move || read_lines(stdout, i, sh, h, tx))
            });
        if let Err(e) = spawned {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("node {id}: cannot start its pipe threads: {e}"));
        }
        self.shared
            .writers
            .write()
            .unwrap_or_else(|p| p.into_inner())[i] = Some(wtx);
        lock(&self.procs)[i] = Some(Proc { child, health });
        Ok(())
    }

    /// Sends `init` to node `i` and waits for `init_ok`, naming the node on every failure.
    fn init(&self, i: usize) -> Result<(), String> {
        let id = self.shared.ids[i].clone();
        let health = match lock(&self.procs)[i].as_ref() {
            Some(p) => p.health.clone(),
            None => return Err(format!("node {id} is not running")),
        };
        let mut client = self.client();
        let mut body = Map::new();
        body.insert("type".into(), "init".into());
        body.insert("node_id".into(), id.clone().into());
        body.insert("node_ids".into(), json!(self.shared.ids));
        let deadline = Instant::now() + self.spec.init_timeout;
        // Send once, then poll in short slices so a dead or garbage-printing node is named at once.
        client.next_msg_id += 1;
        let msg_id = client.next_msg_id;
        body.insert("msg_id".into(), msg_id.into());
        let env = Envelope {
            src: client.id.clone(),
            dest: id.clone(),
            body,
        };
        let _ = lock(&self.router_tx).send(RouterCmd::Send {
            env,
            from_node: None,
        });
        loop {
            if let Some(line) = lock(&health.first_garbage).clone() {
                return Err(format!(
                    "node {id} wrote a line that is not a Maelstrom message before answering init: {line}"
                ));
            }
            match client.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(env) => {
                    if env.body.get("in_reply_to").and_then(Value::as_u64) != Some(msg_id) {
                        continue;
                    }
                    return match env.kind() {
                        Some("init_ok") => Ok(()),
                        _ => Err(format!(
                            "node {id} answered init with {} instead of init_ok",
                            Value::Object(env.body)
                        )),
                    };
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("node {id}: the bench's router stopped"))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if health.exited.load(Ordering::Acquire) {
                let status = self.wait_status(i);
                return Err(format!(
                    "node {id} exited before answering init ({status}); its stderr is in {}{}",
                    self.log_path(i).display(),
                    tail(&self.log_path(i))
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {id} did not answer init within {:.1}s; its stderr is in {}{}",
                    self.spec.init_timeout.as_secs_f64(),
                    self.log_path(i).display(),
                    tail(&self.log_path(i))
                ));
            }
        }
    }

    /// The exit status of node `i` once its stdout closed (waits up to a second).
    fn wait_status(&self, i: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let mut procs = lock(&self.procs);
            let Some(p) = procs[i].as_mut() else {
                return "not running".into();
            };
            match p.child.try_wait() {
                Ok(Some(st)) => return st.to_string(),
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => return "closed its stdout but is still running".into(),
                Err(e) => return format!("status unknown: {e}"),
            }
            drop(procs);
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// True when no node process is still running.
    fn all_exited(&self) -> bool {
        lock(&self.procs)
            .iter_mut()
            .flatten()
            .all(|p| matches!(p.child.try_wait(), Ok(Some(_))))
    }

    /// SIGKILL node `i` (if running) and wait for it. Messages to it are dropped until restart.
    pub fn kill(&self, i: usize) {
        self.shared
            .writers
            .write()
            .unwrap_or_else(|p| p.into_inner())[i] = None;
        let p = lock(&self.procs)[i].take();
        if let Some(mut p) = p {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Stops node `i` (SIGSTOP): it takes no steps and reads nothing until `resume`; messages
    /// to it wait in its pipe. Returns false if it is not running.
    pub fn pause(&self, i: usize) -> bool {
        self.signal(i, libc::SIGSTOP)
    }

    /// Lets a paused node `i` go on (SIGCONT). Returns false if it is not running.
    pub fn resume(&self, i: usize) -> bool {
        self.signal(i, libc::SIGCONT)
    }

    fn signal(&self, i: usize, sig: libc::c_int) -> bool {
        let procs = lock(&self.procs);
        let Some(p) = procs[i].as_ref() else {
            return false;
        };
        let Ok(pid) = libc::pid_t::try_from(p.child.id()) else {
            return false;
        };
        // SAFETY: kill(2) with the pid of a child we have not reaped (we hold its handle under
        // the lock), so the pid cannot have been reused by another process.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// Starts node `i` again on the same data directory and completes a fresh `init`.
    pub fn restart(&self, i: usize) -> Result<(), String> {
        self.kill(i);
        self.spawn(i)?;
        self.init(i)
    }

    /// Whether node `i` has a process (running or paused) that has not been reaped.
    pub fn is_running(&self, i: usize) -> bool {
        lock(&self.procs)[i].is_some()
    }

    /// Nodes that exited without being killed since the last call: reaped, marked down, and
    /// reported as problems. Returns their indexes.
    pub fn reap_exits(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut procs = lock(&self.procs);
        for (i, slot) in procs.iter_mut().enumerate() {
            let exited = match slot.as_mut() {
                Some(p) => match p.child.try_wait() {
                    Ok(Some(st)) => Some(st.to_string()),
                    _ => None,
                },
                None => None,
            };
            if let Some(st) = exited {
                *slot = None;
                self.shared
                    .writers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())[i] = None;
                self.shared.problem(format!(
                    "node {} exited on its own ({st}) at t={:.3}s; its stderr is in {}",
                    self.shared.ids[i],
                    self.secs(),
                    self.log_path(i).display()
                ));
                out.push(i);
            }
        }
        out
    }

    /// Stops every node and the router: closes each node's stdin, gives the nodes a second to
    /// finish at end of input as a node should (write what it holds and exit), then SIGKILLs
    /// whatever still runs. A node's directory then holds the state it reached.
    ///
    /// Returns a problem for each node that exited at end of input with a failure status (a
    /// node must finish cleanly when its input ends); one still running at the deadline is
    /// killed without blame.
    pub fn shutdown(&self) -> Vec<String> {
        self.shared
            .writers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .for_each(|w| *w = None);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && !self.all_exited() {
            thread::sleep(Duration::from_millis(10));
        }
        let failed = self.failed_at_end_of_input();
        for i in 0..self.node_count() {
            self.kill(i);
        }
        let _ = lock(&self.router_tx).send(RouterCmd::Stop);
        if let Some(h) = lock(&self.router).take() {
            let _ = h.join();
        }
        failed
    }

    /// The nodes that already exited with a failure status, each named with its status and log.
    fn failed_at_end_of_input(&self) -> Vec<String> {
        let mut procs = lock(&self.procs);
        let mut failed = Vec::new();
        for (i, slot) in procs.iter_mut().enumerate() {
            let Some(p) = slot.as_mut() else { continue };
            if let Ok(Some(status)) = p.child.try_wait() {
                if !status.success() {
                    failed.push(format!(
                        "node {} exited with {status} when its input ended; its stderr is in {}",
                        self.shared.ids[i],
                        self.log_path(i).display()
                    ));
                }
            }
        }
        failed
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The last lines of a node's log, for error messages.
fn tail(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("=== raftkv test:"))
        .collect();
    if lines.is_empty() {
        return " (it wrote nothing to stderr)".into();
    }
    let from = lines.len().saturating_sub(3);
    let mut s = String::from("; its last stderr lines:");
    for l in &lines[from..] {
        s.push_str("\n    ");
        s.extend(l.chars().take(300));
    }
    s
}

fn write_lines(mut stdin: ChildStdin, rx: Receiver<String>) {
    for line in rx {
        if stdin.write_all(line.as_bytes()).is_err()
            || stdin.write_all(b"\n").is_err()
            || stdin.flush().is_err()
        {
            break;
        }
    }
}

fn read_lines(
    stdout: std::process::ChildStdout,
    node: usize,
    shared: Arc<Shared>,
    health: Arc<Health>,
    tx: Sender<RouterCmd>,
) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        match Envelope::parse(line) {
            Ok(env) => {
                if env.src != shared.ids[node] {
                    shared.problem(format!(
                        "node {} sent a message with src `{}`",
                        shared.ids[node], env.src
                    ));
                }
                if tx
                    .send(RouterCmd::Send {
                        env,
                        from_node: Some(node),
                    })
                    .is_err()
                {
                    break;
                }
            }
            Err(e) => {
                let shown: String = line.chars().take(200).collect();
                let text = format!("{shown:?} ({e})");
                let n = health.garbage_lines.fetch_add(1, Ordering::Relaxed);
                if n == 0 {
                    *lock(&health.first_garbage) = Some(text.clone());
                }
                if n < 3 {
                    shared.problem(format!(
                        "node {} wrote a line that is not a Maelstrom message: {text}",
                        shared.ids[node]
                    ));
                }
            }
        }
    }
    health.exited.store(true, Ordering::Release);
}

fn healthy(n: usize) -> NetFault {
    NetFault {
        grudge: grudge::healed(n),
        loss: 0.0,
        components: Vec::new(),
        nodes: Vec::new(),
    }
}

/// The router: holds each message for its drawn delay, then delivers it (or drops it, as the
/// network fault at that moment says). With a zero mean delay messages go at once, in order.
fn route(rx: Receiver<RouterCmd>, shared: Arc<Shared>, delays: (Duration, LatencyDist, Rng)) {
    let (mean, dist, mut rng) = delays;
    let mut queue: DelayQueue<(Envelope, Option<usize>)> = DelayQueue::default();
    loop {
        let now = Instant::now();
        while let Some((env, from)) = queue.pop_due(now) {
            shared.deliver(env, from, rng.unit());
        }
        let cmd = match queue.next_due() {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        match cmd {
            RouterCmd::Stop => return,
            RouterCmd::Send { env, from_node } if mean.is_zero() => {
                shared.deliver(env, from_node, rng.unit());
            }
            RouterCmd::Send { env, from_node } => {
                let due = Instant::now() + dist.delay(mean, &mut rng);
                queue.push(due, (env, from_node));
            }
        }
    }
}
