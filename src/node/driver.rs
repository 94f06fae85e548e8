//! The node's event loop and its state (see the module doc of `crate::node`).
//!
//! Owns: one node's loop, its core, storage and state machine, and every client request in flight.
//! Must never: block the loop on anything but the one persist per turn (long requests run on
//! worker threads), or send a message from `Ready::persisted_messages` before that persist returned.

use super::request::Op;
use super::tools::{partition_test, verify_linearizability};
use super::{datadir, Event};
use crate::kv::{KvStore, Outcome};
use crate::maelstrom::{code, error_body, pack, reply_body, Envelope};
use crate::raft::{
    Config, EntryKind, InitialState, Message, NodeId, Raft, Ready, Role, SnapshotMeta,
};
use raftkv_storage::{Identity, Storage, WriteBatch};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Tunables, read from the environment by [`Settings::from_env`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// One core tick (`RAFTKV_TICK_MS`, default 15). Election timeout is 10-20 ticks.
    pub tick: Duration,
    /// Nothing goes to a peer that has not spoken first until this long after `init`
    /// (`RAFTKV_PEER_DELAY_MS`, default 100).
    pub peer_delay: Duration,
    /// Take a snapshot every this many applied entries (`RAFTKV_SNAPSHOT_EVERY`, default 1000).
    pub snapshot_every: u64,
    /// A client request still unresolved after this long gets its answer: 13 for a write or cas
    /// (it may still happen), 11 for a read (`RAFTKV_REQUEST_TIMEOUT_MS`, default 2000).
    pub request_timeout: Duration,
    /// Interval of the counters line on stderr (`RAFTKV_STATS_MS`, default 5000; 0 = only at exit).
    pub stats_every: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            tick: Duration::from_millis(15),
            peer_delay: Duration::from_millis(100),
            snapshot_every: 1000,
            request_timeout: Duration::from_millis(2000),
            stats_every: Duration::from_millis(5000),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        fn var(name: &str, default: u64, min: u64) -> Result<u64, String> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(s) => match s.trim().parse::<u64>() {
                    Ok(v) if v >= min => Ok(v),
                    _ => Err(format!(
                        "environment variable {name}={s:?} is not a whole number >= {min}"
                    )),
                },
            }
        }
        let d = Settings::default();
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(Settings {
            tick: Duration::from_millis(var("RAFTKV_TICK_MS", ms(d.tick), 1)?),
            peer_delay: Duration::from_millis(var("RAFTKV_PEER_DELAY_MS", ms(d.peer_delay), 0)?),
            snapshot_every: var("RAFTKV_SNAPSHOT_EVERY", d.snapshot_every, 1)?,
            request_timeout: Duration::from_millis(var(
                "RAFTKV_REQUEST_TIMEOUT_MS",
                ms(d.request_timeout),
                1,
            )?),
            stats_every: Duration::from_millis(var("RAFTKV_STATS_MS", ms(d.stats_every), 0)?),
        })
    }
}

/// Counters for figures (printed on stderr every `stats_every` and at exit).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub turns: u64,
    pub flushes: u64,
    pub entries_persisted: u64,
    pub applied: u64,
    pub client_requests: u64,
    pub forwarded: u64,
    pub peer_messages_out: u64,
    pub bad_input: u64,
}

/// Where to send the answer of a client request.
#[derive(Clone, Debug)]
struct Client {
    /// Who asked (a client, or a peer that forwarded the request).
    src: String,
    /// The id this node was addressed by.
    dest: String,
    msg_id: u64,
}

/// A request waiting inside this node.
#[derive(Debug)]
struct Pending {
    client: Client,
    op: Op,
    /// For a proposal: the term it was proposed in.
    term: u64,
    since: Instant,
}

/// A request forwarded to the leader, waiting for its answer to relay.
#[derive(Debug)]
struct Forward {
    client: Client,
    is_read: bool,
    /// The leader it went to; once this node stops believing in that leader (it died, lost its
    /// majority, or an election is under way), the answer is given at once instead of after the
    /// request timeout. Only that leader's answer is relayed.
    leader: NodeId,
    /// The reply type a success must have (`read_ok`, `write_ok`, `cas_ok`).
    ok_type: &'static str,
    since: Instant,
}

/// Everything that exists once `init` has named the cluster.
struct Cluster {
    me: String,
    ids: Vec<String>,
    my: NodeId,
    raft: Raft,
    storage: Storage,
    kv: KvStore,
    applied: u64,
    applied_term: u64,
    last_snapshot: u64,
    init_at: Instant,
    peers_open: bool,
    heard_from: HashSet<NodeId>,
    /// Proposals by log index.
    proposals: BTreeMap<u64, Pending>,
    /// ReadIndex rounds not yet confirmed, by read id.
    reads: HashMap<u64, Pending>,
    /// Confirmed reads, served once `applied >= index`.
    ready_reads: Vec<(u64, Pending)>,
    /// Forwarded requests by the msg_id this node gave them.
    forwards: HashMap<u64, Forward>,
    next_read_id: u64,
    last_role: Role,
    last_term: u64,
}

/// One Maelstrom node.
pub struct Node<W: Write> {
    settings: Settings,
    out: W,
    /// Worker threads answer through this.
    tx: mpsc::Sender<Event>,
    next_msg_id: u64,
    /// Ids of forwarded requests: their own sequence, starting at a per-process value, so an
    /// answer to a forward made before a restart cannot match one made after it.
    next_forward_id: u64,
    cluster: Option<Cluster>,
    workers_in_flight: usize,
    pub stats: Stats,
    last_stats: Instant,
}

/// First forward id of this process: the wall clock in ms (mod 2^32) shifted left by 20 bits, so
/// each process starts in its own range and ids stay below 2^52 (exact in any JSON reader).
fn forward_id_base() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (ms & 0xFFFF_FFFF) << 20
}

/// Core id of the node at `position` in `node_ids` (0 is kept free for "nobody").
fn core_id(position: usize) -> NodeId {
    position as NodeId + 1
}

/// Short form of a bad input line for a log line.
fn excerpt(line: &str) -> String {
    let mut s: String = line.chars().take(200).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

impl<W: Write> Node<W> {
    pub fn new(settings: Settings, out: W, tx: mpsc::Sender<Event>) -> Node<W> {
        Node {
            settings,
            out,
            tx,
            next_msg_id: 0,
            next_forward_id: forward_id_base(),
            cluster: None,
            workers_in_flight: 0,
            stats: Stats::default(),
            last_stats: Instant::now(),
        }
    }

    /// The loop. Returns at end of input once in-flight worker answers are out; an error is a
    /// failure the node cannot survive (storage, stdout).
    pub fn run(&mut self, rx: &mpsc::Receiver<Event>) -> Result<(), String> {
        let mut next_tick = Instant::now() + self.settings.tick;
        let mut eof = false;
        loop {
            let now = Instant::now();
            let wait = next_tick.saturating_duration_since(now);
            let first = if eof {
                if self.workers_in_flight == 0 {
                    break;
                }
                rx.recv().ok()
            } else {
                match rx.recv_timeout(wait) {
                    Ok(ev) => Some(ev),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Event::Eof),
                }
            };
            if let Some(ev) = first {
                eof |= self.handle_event(ev)?;
                // Drain everything available now: the whole batch goes into one persist.
                for _ in 0..10_000 {
                    match rx.try_recv() {
                        Ok(ev) => eof |= self.handle_event(ev)?,
                        Err(_) => break,
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now);
                next_tick = now + self.settings.tick;
            }
            self.drive()?;
            self.stats.turns += 1;
            self.out
                .flush()
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
            if !self.settings.stats_every.is_zero()
                && self.last_stats.elapsed() >= self.settings.stats_every
            {
                self.print_stats();
                self.last_stats = Instant::now();
            }
        }
        self.out
            .flush()
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
        self.print_stats();
        Ok(())
    }

    /// Handles one event; returns true at end of input.
    pub fn handle_event(&mut self, ev: Event) -> Result<bool, String> {
        match ev {
            Event::Line(line) => {
                if !line.trim().is_empty() {
                    self.handle_line(&line)?;
                }
                Ok(false)
            }
            Event::BadLine(why) => {
                self.stats.bad_input += 1;
                eprintln!("raftkv: ignoring input: {why}");
                Ok(false)
            }
            Event::Answer(env) => {
                self.workers_in_flight = self.workers_in_flight.saturating_sub(1);
                self.emit(&env)?;
                Ok(false)
            }
            Event::Eof => Ok(true),
        }
    }

    fn print_stats(&self) {
        let s = &self.stats;
        let who = match &self.cluster {
            Some(c) => {
                let st = c.raft.status();
                // A digest of the state machine, so tests and operators can compare replicas.
                let kv_crc = crc32fast::hash(&c.kv.snapshot());
                format!(
                    "{} role={:?} term={} commit={} applied={} kv_crc={kv_crc:08x} log={}..{}",
                    c.me, st.role, st.term, st.commit, c.applied, st.first_index, st.last_index
                )
            }
            None => "uninitialised".to_string(),
        };
        eprintln!(
            "raftkv stats: {who} turns={} flushes={} entries_persisted={} applied_entries={} \
             client_requests={} forwarded={} peer_messages_out={} bad_input={}",
            s.turns,
            s.flushes,
            s.entries_persisted,
            s.applied,
            s.client_requests,
            s.forwarded,
            s.peer_messages_out,
            s.bad_input
        );
    }

    fn emit(&mut self, env: &Envelope) -> Result<(), String> {
        env.write_line_buffered(&mut self.out)
            .map_err(|e| format!("cannot write to stdout: {e}"))
    }

    fn send(&mut self, src: &str, dest: &str, body: Map<String, Value>) -> Result<(), String> {
        let env = Envelope {
            src: src.to_string(),
            dest: dest.to_string(),
            body,
        };
        self.emit(&env)
    }

    fn reply_error(&mut self, env: &Envelope, code: u64, text: &str) -> Result<(), String> {
        match env.msg_id() {
            Some(id) => {
                let body = error_body(Some(id), code, text);
                self.send(&env.dest, &env.src, body)
            }
            None => {
                eprintln!(
                    "raftkv: cannot answer a `{}` from {} without msg_id: error {code}: {text}",
                    env.kind().unwrap_or("?"),
                    env.src
                );
                Ok(())
            }
        }
    }

    fn handle_line(&mut self, line: &str) -> Result<(), String> {
        let env = match Envelope::parse(line) {
            Ok(env) => env,
            Err(e) => {
                self.stats.bad_input += 1;
                eprintln!("raftkv: ignoring input line: {e}: {}", excerpt(line));
                // Answer if the line says who asked and under which msg_id.
                if let Ok(Value::Object(top)) = serde_json::from_str::<Value>(line) {
                    let src = top.get("src").and_then(Value::as_str);
                    let dest = top.get("dest").and_then(Value::as_str).unwrap_or("");
                    let id = top
                        .get("body")
                        .and_then(|b| b.get("msg_id"))
                        .and_then(Value::as_u64);
                    if let (Some(src), Some(id)) = (src, id) {
                        let body = error_body(
                            Some(id),
                            code::MALFORMED_REQUEST,
                            &format!("malformed message: {e}"),
                        );
                        let (src, dest) = (src.to_string(), dest.to_string());
                        self.send(&dest, &src, body)?;
                    }
                }
                return Ok(());
            }
        };
        let Some(kind) = env.kind().map(str::to_string) else {
            self.stats.bad_input += 1;
            eprintln!(
                "raftkv: ignoring message without a string `type`: {}",
                excerpt(line)
            );
            return self.reply_error(&env, code::MALFORMED_REQUEST, "body has no string `type`");
        };
        match kind.as_str() {
            "init" => self.handle_init(&env),
            "partition_test" | "verify_linearizability" => self.spawn_worker(env, kind),
            "raft" => self.handle_raft(&env),
            "read" | "write" | "cas" => self.handle_client(env, &kind),
            "read_ok" | "write_ok" | "cas_ok" | "error" => self.handle_relay(env),
            other => {
                self.stats.bad_input += 1;
                eprintln!("raftkv: unknown message type `{other}` from {}", env.src);
                let text = format!("unknown message type `{other}`");
                self.reply_error(&env, code::NOT_SUPPORTED, &text)
            }
        }
    }

    fn spawn_worker(&mut self, env: Envelope, kind: String) -> Result<(), String> {
        let Some(msg_id) = env.msg_id() else {
            self.stats.bad_input += 1;
            return self.reply_error(&env, code::MALFORMED_REQUEST, "request has no msg_id");
        };
        let tx = self.tx.clone();
        let (src, dest, body) = (env.dest.clone(), env.src.clone(), env.body.clone());
        let work = move || {
            // A panic in the worker must still produce an answer (the loop waits for it at end
            // of input); it says the request crashed, which is what happened.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if kind == "partition_test" {
                    partition_test(&body)
                } else {
                    verify_linearizability(&body)
                }
            }))
            .unwrap_or_else(|_| Err((code::CRASH, format!("{kind} crashed; see stderr"))));
            let body = match result {
                Ok(mut b) => {
                    b.insert("in_reply_to".into(), msg_id.into());
                    b
                }
                Err((code, text)) => error_body(Some(msg_id), code, &text),
            };
            let _ = tx.send(Event::Answer(Envelope { src, dest, body }));
        };
        match std::thread::Builder::new()
            .name("request".into())
            .spawn(work)
        {
            Ok(_) => {
                self.workers_in_flight += 1;
                Ok(())
            }
            Err(e) => self.reply_error(
                &env,
                code::TEMPORARILY_UNAVAILABLE,
                &format!("cannot start a worker thread: {e}"),
            ),
        }
    }

    fn handle_init(&mut self, env: &Envelope) -> Result<(), String> {
        let node_id = env.body.get("node_id").and_then(Value::as_str);
        let ids: Option<Vec<String>> = env
            .body
            .get("node_ids")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect());
        let (Some(node_id), Some(ids)) = (node_id, ids) else {
            self.stats.bad_input += 1;
            eprintln!("raftkv: malformed init from {}", env.src);
            return self.reply_error(
                env,
                code::MALFORMED_REQUEST,
                "init needs `node_id` (string) and `node_ids` (array of strings)",
            );
        };
        let Some(position) = ids.iter().position(|n| n == node_id) else {
            self.stats.bad_input += 1;
            let text = format!("init: node_id {node_id:?} is not in node_ids {ids:?}");
            eprintln!("raftkv: {text}");
            return self.reply_error(env, code::MALFORMED_REQUEST, &text);
        };
        let distinct: HashSet<&String> = ids.iter().collect();
        if distinct.len() != ids.len() {
            let text = format!("init: node_ids {ids:?} has duplicates");
            eprintln!("raftkv: {text}");
            return self.reply_error(env, code::MALFORMED_REQUEST, &text);
        }
        if let Some(c) = &self.cluster {
            if c.me != node_id || c.ids != ids {
                let text = format!(
                    "init: already initialised as {} of {:?}; refusing {node_id} of {ids:?}",
                    c.me, c.ids
                );
                eprintln!("raftkv: {text}");
                return self.reply_error(env, code::MALFORMED_REQUEST, &text);
            }
        } else {
            // A node id that cannot name a data directory is bad input, not a reason to stop.
            if let Err(text) = datadir::check_node_id(node_id) {
                let text = format!("init: {text}");
                eprintln!("raftkv: {text}");
                return self.reply_error(env, code::MALFORMED_REQUEST, &text);
            }
            let cluster = Cluster::open(node_id, ids, position)?;
            self.cluster = Some(cluster);
        }
        let msg_id = self.take_msg_id();
        let mut body = reply_body("init_ok", env.msg_id());
        body.insert("msg_id".into(), msg_id.into());
        self.send(&env.dest, &env.src, body)
    }

    fn take_msg_id(&mut self) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    fn handle_raft(&mut self, env: &Envelope) -> Result<(), String> {
        let Some(c) = self.cluster.as_mut() else {
            eprintln!(
                "raftkv: dropping a raft message from {} before init",
                env.src
            );
            return Ok(());
        };
        let Some(from) = c.ids.iter().position(|n| *n == env.src).map(core_id) else {
            self.stats.bad_input += 1;
            eprintln!(
                "raftkv: dropping a raft message from non-member {}",
                env.src
            );
            return Ok(());
        };
        let msg = match env.body.get("m").and_then(Value::as_str) {
            Some(text) => pack::unpack::<Message>(text).map_err(|e| e.0),
            None => Err("raft message has no string `m`".to_string()),
        };
        match msg {
            Ok(msg) if msg.from == from && msg.to == c.my => {
                c.heard_from.insert(from);
                c.raft.step(msg);
            }
            Ok(msg) => {
                self.stats.bad_input += 1;
                eprintln!(
                    "raftkv: dropping a raft message from {} claiming {} -> {} (I am {})",
                    env.src, msg.from, msg.to, c.my
                );
            }
            Err(e) => {
                self.stats.bad_input += 1;
                eprintln!("raftkv: dropping a bad raft message from {}: {e}", env.src);
            }
        }
        Ok(())
    }

    fn handle_client(&mut self, env: Envelope, kind: &str) -> Result<(), String> {
        self.stats.client_requests += 1;
        let Some(msg_id) = env.msg_id() else {
            self.stats.bad_input += 1;
            return self.reply_error(
                &env,
                code::MALFORMED_REQUEST,
                "request has no unsigned integer `msg_id`",
            );
        };
        let op = match Op::parse(kind, &env.body) {
            Ok(op) => op,
            Err(text) => {
                self.stats.bad_input += 1;
                eprintln!("raftkv: malformed request from {}: {text}", env.src);
                return self.reply_error(&env, code::MALFORMED_REQUEST, &text);
            }
        };
        let Some(c) = self.cluster.as_mut() else {
            return self.reply_error(
                &env,
                code::TEMPORARILY_UNAVAILABLE,
                "node not initialised yet",
            );
        };
        let client = Client {
            src: env.src.clone(),
            dest: env.dest.clone(),
            msg_id,
        };
        let forwarded = env.body.get("forwarded") == Some(&Value::Bool(true));
        let now = Instant::now();
        let not_leader = match op.command() {
            None => {
                let id = c.next_read_id;
                match c.raft.read_index(id) {
                    Ok(()) => {
                        c.next_read_id += 1;
                        c.reads.insert(
                            id,
                            Pending {
                                client,
                                op,
                                term: 0,
                                since: now,
                            },
                        );
                        return Ok(());
                    }
                    Err(nl) => nl,
                }
            }
            Some(cmd) => {
                let data = serde_json::to_vec(&cmd)
                    .map_err(|e| format!("cannot encode a command: {e}"))?;
                match c.raft.propose(data) {
                    Ok(p) => {
                        let replaced = c.proposals.insert(
                            p.index,
                            Pending {
                                client,
                                op,
                                term: p.term,
                                since: now,
                            },
                        );
                        // An older proposal at the same index was cut from this log, but another
                        // node may still hold it and commit it: its outcome is unknown.
                        if let Some(old) = replaced {
                            let body = error_body(
                                Some(old.client.msg_id),
                                code::CRASH,
                                "outcome unknown: the entry was replaced in this node's log",
                            );
                            return self.send(&old.client.dest, &old.client.src, body);
                        }
                        return Ok(());
                    }
                    Err(nl) => nl,
                }
            }
        };
        // Not the leader: forward once, or answer 11 (nothing was proposed here).
        let leader = not_leader.leader.filter(|l| *l != c.my && *l >= 1);
        let target = leader.and_then(|l| c.ids.get(l as usize - 1).cloned());
        match (leader, target) {
            (Some(leader), Some(leader_name)) if !forwarded && c.peers_open => {
                let fwd_id = self.next_forward_id;
                self.next_forward_id += 1;
                let mut body = env.body.clone();
                body.insert("msg_id".into(), fwd_id.into());
                body.insert("forwarded".into(), Value::Bool(true));
                let me = c.me.clone();
                c.forwards.insert(
                    fwd_id,
                    Forward {
                        client,
                        is_read: op.is_read(),
                        leader,
                        ok_type: op.ok_type(),
                        since: now,
                    },
                );
                self.stats.forwarded += 1;
                self.send(&me, &leader_name, body)
            }
            (_, Some(_)) => self.reply_error(
                &env,
                code::TEMPORARILY_UNAVAILABLE,
                "not the leader (request was already forwarded once)",
            ),
            (_, None) => self.reply_error(&env, code::TEMPORARILY_UNAVAILABLE, "no leader known"),
        }
    }

    /// An answer from the leader to a request this node forwarded: relay it to the client.
    fn handle_relay(&mut self, env: Envelope) -> Result<(), String> {
        let in_reply_to = env.body.get("in_reply_to").and_then(Value::as_u64);
        let fwd = match (self.cluster.as_mut(), in_reply_to) {
            (Some(c), Some(id)) => {
                // Relay only the answer of the leader the request went to, of the right kind.
                let matches = c.forwards.get(&id).is_some_and(|f| {
                    let from_leader = c.ids.get(f.leader as usize - 1) == Some(&env.src);
                    let kind = env.kind().unwrap_or("");
                    from_leader && (kind == f.ok_type || kind == "error")
                });
                if matches {
                    c.forwards.remove(&id)
                } else {
                    None
                }
            }
            _ => None,
        };
        let Some(fwd) = fwd else {
            eprintln!(
                "raftkv: ignoring a `{}` from {} that answers nothing in flight",
                env.kind().unwrap_or("?"),
                env.src
            );
            return Ok(());
        };
        let mut body = env.body;
        body.remove("msg_id");
        body.insert("in_reply_to".into(), fwd.client.msg_id.into());
        self.send(&fwd.client.dest, &fwd.client.src, body)
    }

    fn tick(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.peers_open {
            if now.duration_since(c.init_at) < self.settings.peer_delay {
                return;
            }
            c.peers_open = true;
        }
        c.raft.tick();
        // Requests that waited too long get the answer that is true of them.
        let timeout = self.settings.request_timeout;
        let mut answers = Vec::new();
        let expired: Vec<u64> = c
            .proposals
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= timeout)
            .map(|(i, _)| *i)
            .collect();
        for i in expired {
            if let Some(p) = c.proposals.remove(&i) {
                answers.push((
                    p.client,
                    code::CRASH,
                    "write not committed in time; it may still happen",
                ));
            }
        }
        let expired: Vec<u64> = c
            .reads
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= timeout)
            .map(|(i, _)| *i)
            .collect();
        for i in expired {
            if let Some(p) = c.reads.remove(&i) {
                answers.push((
                    p.client,
                    code::TEMPORARILY_UNAVAILABLE,
                    "read not confirmed in time",
                ));
            }
        }
        let leader_now = c.raft.status().leader;
        let expired: Vec<u64> = c
            .forwards
            .iter()
            .filter(|(_, f)| now.duration_since(f.since) >= timeout || leader_now != Some(f.leader))
            .map(|(i, _)| *i)
            .collect();
        for i in expired {
            if let Some(f) = c.forwards.remove(&i) {
                if f.is_read {
                    answers.push((
                        f.client,
                        code::TEMPORARILY_UNAVAILABLE,
                        "forwarded read got no answer from the leader it went to",
                    ));
                } else {
                    answers.push((
                        f.client,
                        code::CRASH,
                        "forwarded request got no answer from the leader it went to; it may have happened",
                    ));
                }
            }
        }
        for (client, code, text) in answers {
            let body = error_body(Some(client.msg_id), code, text);
            if let Err(e) = self.send(&client.dest, &client.src, body) {
                eprintln!("raftkv: {e}");
            }
        }
    }

    /// Performs everything the core has ready: one persist (one flush) per Ready.
    fn drive(&mut self) -> Result<(), String> {
        let snapshot_every = self.settings.snapshot_every;
        loop {
            let Some(c) = self.cluster.as_mut() else {
                return Ok(());
            };
            if !c.raft.has_ready() {
                break;
            }
            let rd = c.raft.ready();
            let mut out: Vec<Envelope> = Vec::new();
            c.route(&rd.messages, &mut out);
            if rd.must_persist() {
                let batch = WriteBatch {
                    snapshot: rd
                        .snapshot
                        .as_ref()
                        .map(|(m, d)| (m.into(), d.as_ref().clone())),
                    entries: rd.entries.iter().map(Into::into).collect(),
                    hard_state: rd.hard_state.map(Into::into),
                };
                c.storage
                    .persist(&batch)
                    .map_err(|e| format!("{}: cannot persist: {e}", c.me))?;
                self.stats.flushes += 1;
                self.stats.entries_persisted += rd.entries.len() as u64;
            }
            // Durable now: acknowledgements may leave.
            c.route(&rd.persisted_messages, &mut out);
            self.stats.peer_messages_out += out.len() as u64;
            let mut replies = c.apply_ready(&rd, &mut self.stats)?;
            out.append(&mut replies);
            for env in &out {
                self.emit(env)?;
            }
        }
        let Some(c) = self.cluster.as_mut() else {
            return Ok(());
        };
        c.maybe_snapshot(snapshot_every)?;
        let st = c.raft.status();
        if st.role != c.last_role || st.term != c.last_term {
            if st.role == Role::Leader {
                eprintln!("raftkv: {} is leader for term {}", c.me, st.term);
            } else if c.last_role == Role::Leader {
                eprintln!(
                    "raftkv: {} is no longer leader (now {:?}, term {})",
                    c.me, st.role, st.term
                );
            }
            c.last_role = st.role;
            c.last_term = st.term;
        }
        Ok(())
    }
}

impl Cluster {
    /// Opens (or recovers) the node's storage and builds the core from what is durable.
    fn open(me: &str, ids: Vec<String>, position: usize) -> Result<Cluster, String> {
        let dir = datadir::data_dir(me)?;
        if let Some(warning) = datadir::shell_parent_warning() {
            eprintln!("raftkv: warning: {warning}");
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                format!(
                    "cannot create data directory root {}: {e}",
                    parent.display()
                )
            })?;
        }
        let (mut storage, rec) = Storage::open(&dir)
            .map_err(|e| format!("{me}: cannot open data directory {}: {e}", dir.display()))?;
        let identity = Identity {
            node: me.to_string(),
            cluster: ids.clone(),
        };
        match &rec.identity {
            Some(found) if *found != identity => {
                return Err(format!(
                    "data directory {} belongs to node {} of cluster {:?}, not {me} of {ids:?}",
                    dir.display(),
                    found.node,
                    found.cluster
                ))
            }
            Some(_) => {}
            None => storage
                .set_identity(&identity)
                .map_err(|e| format!("{me}: cannot record identity: {e}"))?,
        }
        let snapshot = storage
            .load_snapshot()
            .map_err(|e| format!("{me}: cannot load snapshot: {e}"))?;
        let (kv, applied, applied_term) = match &snapshot {
            Some((meta, data)) => {
                let mut kv = KvStore::new();
                kv.restore(data)
                    .map_err(|e| format!("{me}: snapshot at index {}: {e}", meta.index))?;
                (kv, meta.index, meta.term)
            }
            None => (KvStore::new(), 0, 0),
        };
        let mut entries = Vec::new();
        let mut next = rec.first_index;
        while next <= rec.last_index {
            let batch = storage
                .entries(next, rec.last_index + 1, 64 << 20)
                .map_err(|e| format!("{me}: cannot read log from index {next}: {e}"))?;
            let Some(last) = batch.last() else {
                return Err(format!(
                    "{me}: log ends at {} but storage returned nothing from {next}",
                    rec.last_index
                ));
            };
            next = last.index + 1;
            entries.extend(batch.into_iter().map(crate::raft::Entry::from));
        }
        eprintln!(
            "raftkv: {me} opened {}: term {} commit {} snapshot {:?} log [{}, {}]",
            dir.display(),
            rec.hard_state.term,
            rec.hard_state.commit,
            snapshot.as_ref().map(|(m, _)| m.index),
            rec.first_index,
            rec.last_index
        );
        let my = core_id(position);
        let voters: Vec<NodeId> = (0..ids.len()).map(core_id).collect();
        let seed = {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ (u64::from(std::process::id()) << 32) ^ my
        };
        let state = InitialState {
            hard_state: rec.hard_state.into(),
            snapshot: snapshot.map(|(m, d)| (m.into(), Arc::new(d))),
            entries,
        };
        let raft = Raft::try_new(Config::new(my, voters, seed), state)?;
        Ok(Cluster {
            me: me.to_string(),
            ids,
            my,
            raft,
            storage,
            kv,
            applied,
            applied_term,
            last_snapshot: applied,
            init_at: Instant::now(),
            peers_open: false,
            heard_from: HashSet::new(),
            proposals: BTreeMap::new(),
            reads: HashMap::new(),
            ready_reads: Vec::new(),
            forwards: HashMap::new(),
            next_read_id: 1,
            last_role: Role::Follower,
            last_term: 0,
        })
    }

    /// Core messages as Maelstrom envelopes. Before the peer delay has passed, only peers that
    /// have spoken to this node get anything (the others may not be running yet).
    fn route(&mut self, msgs: &[Message], out: &mut Vec<Envelope>) {
        for m in msgs {
            let Some(dest) = (m.to as usize).checked_sub(1).and_then(|i| self.ids.get(i)) else {
                eprintln!("raftkv: core addressed a message to unknown id {}", m.to);
                continue;
            };
            if !self.peers_open && !self.heard_from.contains(&m.to) {
                continue;
            }
            match pack::pack(m) {
                Ok(text) => {
                    let mut body = Map::new();
                    body.insert("type".into(), "raft".into());
                    body.insert("m".into(), text.into());
                    out.push(Envelope {
                        src: self.me.clone(),
                        dest: dest.clone(),
                        body,
                    });
                }
                Err(e) => eprintln!("raftkv: cannot encode a raft message: {e}"),
            }
        }
    }

    /// Steps 5 and 6 of the loop: advance, restore a received snapshot, apply committed entries,
    /// answer proposals and serve reads. Returns the replies.
    fn apply_ready(&mut self, rd: &Ready, stats: &mut Stats) -> Result<Vec<Envelope>, String> {
        let mut out = Vec::new();
        if let Some((meta, data)) = &rd.snapshot {
            if meta.index > self.applied {
                self.kv.restore(data).map_err(|e| {
                    format!(
                        "{}: snapshot received at index {}: {e}",
                        self.me, meta.index
                    )
                })?;
                eprintln!(
                    "raftkv: {} installed a snapshot from the leader at index {} (applied was {})",
                    self.me, meta.index, self.applied
                );
                self.applied = meta.index;
                self.applied_term = meta.term;
                self.last_snapshot = meta.index;
                // Proposals covered by the snapshot: their fate is unknown here.
                let covered: Vec<u64> = self
                    .proposals
                    .range(..=meta.index)
                    .map(|(i, _)| *i)
                    .collect();
                for i in covered {
                    if let Some(p) = self.proposals.remove(&i) {
                        out.push(reply(
                            &p.client,
                            error_body(
                                Some(p.client.msg_id),
                                code::CRASH,
                                "outcome unknown: log replaced by a snapshot",
                            ),
                        ));
                    }
                }
            }
        }
        self.raft.advance(rd);
        for e in &rd.committed {
            if e.index <= self.applied {
                continue;
            }
            let outcome = match e.kind {
                EntryKind::Noop => None,
                EntryKind::Normal => match serde_json::from_slice::<crate::kv::Command>(&e.data) {
                    Ok(cmd) => Some(self.kv.apply(&cmd)),
                    Err(err) => {
                        eprintln!(
                            "raftkv: {}: committed entry {} is not a command: {err}",
                            self.me, e.index
                        );
                        None
                    }
                },
            };
            self.applied = e.index;
            self.applied_term = e.term;
            stats.applied += 1;
            if let Some(p) = self.proposals.remove(&e.index) {
                let body =
                    proposal_answer(&p.op, p.client.msg_id, p.term, e.term, outcome.as_ref());
                out.push(reply(&p.client, body));
            }
        }
        for r in &rd.reads {
            if let Some(p) = self.reads.remove(&r.id) {
                self.ready_reads.push((r.index, p));
            }
        }
        for id in &rd.failed_reads {
            if let Some(p) = self.reads.remove(id) {
                out.push(reply(
                    &p.client,
                    error_body(
                        Some(p.client.msg_id),
                        code::TEMPORARILY_UNAVAILABLE,
                        "leadership lost before the read was confirmed",
                    ),
                ));
            }
        }
        let applied = self.applied;
        let (serve, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.ready_reads = wait;
        for (_, p) in serve {
            let outcome = match &p.op {
                Op::Read { key } => self.kv.read(key),
                _ => Outcome::KeyMissing,
            };
            out.push(reply(&p.client, p.op.reply(p.client.msg_id, &outcome)));
        }
        Ok(out)
    }

    fn maybe_snapshot(&mut self, every: u64) -> Result<(), String> {
        if self.applied < self.last_snapshot + every {
            return Ok(());
        }
        let data = self.kv.snapshot();
        let meta = SnapshotMeta {
            index: self.applied,
            term: self.applied_term,
            voters: (0..self.ids.len()).map(core_id).collect(),
        };
        self.storage
            .save_snapshot(&(&meta).into(), &data)
            .map_err(|e| format!("{}: cannot save snapshot at {}: {e}", self.me, meta.index))?;
        self.raft.snapshot_taken(meta, Arc::new(data));
        self.last_snapshot = self.applied;
        Ok(())
    }
}

/// The answer to a proposal whose log index `entry_term`'s entry just committed. The proposal
/// happened exactly when the committed entry carries the proposal's term; another term at that
/// index means it definitely did not (an index commits one entry, once), so 11 is true.
fn proposal_answer(
    op: &Op,
    msg_id: u64,
    proposal_term: u64,
    entry_term: u64,
    outcome: Option<&Outcome>,
) -> Map<String, Value> {
    match (outcome, proposal_term == entry_term) {
        (Some(o), true) => op.reply(msg_id, o),
        (None, true) => error_body(
            Some(msg_id),
            code::CRASH,
            "committed entry could not be applied",
        ),
        (_, false) => error_body(
            Some(msg_id),
            code::TEMPORARILY_UNAVAILABLE,
            "leadership changed before the write committed; it did not happen",
        ),
    }
}

fn reply(client: &Client, body: Map<String, Value>) -> Envelope {
    Envelope {
        src: client.dest.clone(),
        dest: client.src.clone(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_proposal_happened_exactly_when_its_term_committed_at_its_index() {
        let cas = Op::Cas {
            key: json!(1),
            from: json!(1),
            to: json!(2),
        };
        let ok = proposal_answer(&cas, 7, 3, 3, Some(&Outcome::Ok(Value::Null)));
        assert_eq!(
            Value::Object(ok),
            json!({"type": "cas_ok", "in_reply_to": 7})
        );
        let mismatch = proposal_answer(&cas, 7, 3, 3, Some(&Outcome::CasMismatch(json!(5))));
        assert_eq!(mismatch["code"], json!(22));
        // Another term's entry committed at the index: definitely not done, whatever it did.
        let other = proposal_answer(&cas, 7, 3, 4, Some(&Outcome::Ok(Value::Null)));
        assert_eq!(other["code"], json!(11));
        assert_eq!(other["in_reply_to"], json!(7));
        let other = proposal_answer(&cas, 7, 3, 2, None);
        assert_eq!(other["code"], json!(11));
        // Our entry committed but could not be applied: never claim it did not happen.
        let odd = proposal_answer(&cas, 7, 3, 3, None);
        assert_eq!(odd["code"], json!(13));
    }

    /// A node before init, fed lines, with what it wrote.
    fn run_lines(lines: &[&str]) -> (Vec<Value>, Stats) {
        let (tx, rx) = mpsc::channel();
        let mut out = Vec::new();
        let stats = {
            let mut node = Node::new(Settings::default(), &mut out, tx.clone());
            for l in lines {
                tx.send(Event::Line(l.to_string())).expect("channel open");
            }
            tx.send(Event::BadLine("input line is not UTF-8".into()))
                .expect("channel open");
            tx.send(Event::Eof).expect("channel open");
            node.run(&rx).expect("runs to end of input");
            node.stats.clone()
        };
        let text = String::from_utf8(out).expect("utf-8 output");
        let values = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
            .collect();
        (values, stats)
    }

    #[test]
    fn bad_input_gets_clear_errors_and_never_stops_the_node() {
        let (out, stats) = run_lines(&[
            "this is not json",
            r#"{"src":"c1","dest":"n1","body":{"type":"read","msg_id":1,"key":1}}"#,
            r#"{"src":"c1","dest":"n1","body":{"type":"frobnicate","msg_id":2}}"#,
            r#"{"src":"c1","dest":"n1","body":{"msg_id":3}}"#,
            r#"{"src":"c1","body":{"type":"read","msg_id":4,"key":1}}"#,
            r#"{"src":"c1","dest":"n1","body":{"type":"write","msg_id":5,"key":1}}"#,
            r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":6,"node_id":"n9","node_ids":["n1"]}}"#,
            r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":7}}"#,
            r#"{"src":"c1","dest":"n1","body":{"type":"read","key":1}}"#,
            r#"{"src":"c1","dest":"n1","body":{"type":"partition_test","msg_id":8,"cluster_size":5}}"#,
            r#"{"src":"c1","dest":"n1","body":{"type":"verify_linearizability","msg_id":9,"history":[
                {"index":0,"time":1,"process":0,"type":"invoke","f":"write","key":1,"value":1},
                {"index":1,"time":2,"process":0,"type":"ok","f":"write","key":1,"value":1},
                {"index":2,"time":3,"process":1,"type":"invoke","f":"read","key":1,"value":null},
                {"index":3,"time":4,"process":1,"type":"ok","f":"read","key":1,"value":2}]}}"#,
            r#"{"src":"c1","dest":"n1","body":{"type":"verify_linearizability","msg_id":10,"history":[{"f":"read"}]}}"#,
            r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":11,"node_id":"..","node_ids":[".."]}}"#,
        ]);
        let code_of = |id: u64| {
            out.iter()
                .find(|v| v["body"]["in_reply_to"] == json!(id))
                .map(|v| v["body"]["code"].clone())
        };
        assert_eq!(code_of(1), Some(json!(11)), "request before init: {out:?}");
        assert_eq!(code_of(2), Some(json!(10)), "unknown type");
        assert_eq!(code_of(3), Some(json!(12)), "no type");
        assert_eq!(code_of(4), Some(json!(12)), "no dest");
        assert_eq!(code_of(5), Some(json!(12)), "write without value");
        assert_eq!(code_of(6), Some(json!(12)), "node_id not in node_ids");
        assert_eq!(code_of(7), Some(json!(12)), "init without ids");
        assert_eq!(
            code_of(11),
            Some(json!(12)),
            "init with a node id that cannot name a directory"
        );
        assert_eq!(
            code_of(8),
            Some(json!(12)),
            "partition_test without its fields, answered before init"
        );
        for v in &out {
            assert_eq!(v.as_object().map(|o| o.len()), Some(3), "{v}");
            assert_eq!(v["dest"], json!(v["dest"].as_str().unwrap_or("?")));
        }
        let reply = out
            .iter()
            .find(|v| v["body"]["in_reply_to"] == json!(1))
            .expect("answered");
        assert_eq!(reply["src"], json!("n1"));
        assert_eq!(reply["dest"], json!("c1"));
        assert_eq!(
            out.len(),
            11,
            "one answer per request with a msg_id: {out:?}"
        );
        assert!(stats.bad_input >= 8, "{stats:?}");
    }
}
