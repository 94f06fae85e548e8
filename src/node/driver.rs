//! The node's event loop (see the module doc of `crate::node`).
//!
//! Owns: one node's loop, the parsing of every input line, handing client requests to the
//! replica's shell (or forwarding them to the leader), request timeouts, and the counters.
//! Must never: block the loop on anything but the shell's persists (long requests run on worker
//! threads), or perform a `Ready` itself (the shell in `replica.rs` does).

use super::replica::{core_id, Client, Forward, Replica, Waiting};
use super::request::Op;
use super::tools::{partition_test, verify_linearizability};
use super::{datadir, Event};
use crate::maelstrom::{code, error_body, pack, reply_body, Envelope};
use crate::raft::{Message, NotLeader};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::Write;
use std::sync::mpsc;
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
    /// The core's pre-vote: a node that cannot win an election does not raise the term
    /// (`RAFTKV_PRE_VOTE`, 1 or 0, default 1).
    pub pre_vote: bool,
    /// The core's check-quorum: a leader that hears no majority for an election timeout steps
    /// down, and a follower that hears its leader refuses votes (`RAFTKV_CHECK_QUORUM`, 1 or 0,
    /// default 1).
    pub check_quorum: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            tick: Duration::from_millis(15),
            peer_delay: Duration::from_millis(100),
            snapshot_every: 1000,
            request_timeout: Duration::from_millis(2000),
            stats_every: Duration::from_millis(5000),
            pre_vote: true,
            check_quorum: true,
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
        fn switch(name: &str, default: bool) -> Result<bool, String> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(s) => match s.trim() {
                    "1" => Ok(true),
                    "0" => Ok(false),
                    _ => Err(format!("environment variable {name}={s:?} is not 0 or 1")),
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
            pre_vote: switch("RAFTKV_PRE_VOTE", d.pre_vote)?,
            check_quorum: switch("RAFTKV_CHECK_QUORUM", d.check_quorum)?,
        })
    }
}

/// Counters for figures (printed on stderr every `stats_every` and at exit).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub turns: u64,
    pub client_requests: u64,
    pub forwarded: u64,
    pub peer_messages_out: u64,
    pub bad_input: u64,
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
    replica: Option<Replica>,
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
            replica: None,
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
        // End of input: the commit index that was riding on a later flush is written now.
        if let Some(replica) = self.replica.as_mut() {
            replica.shell.write_deferred_commit_next();
        }
        self.drive()?;
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
                tracing::warn!("ignoring input: {why}");
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
        let (who, shell) = match &self.replica {
            Some(r) => {
                let st = r.shell.raft().status();
                // A digest of the state machine, so tests and operators can compare replicas.
                let kv_crc = crc32fast::hash(&r.shell.machine().snapshot());
                let who = format!(
                    "{} role={:?} term={} commit={} applied={} kv_crc={kv_crc:08x} log={}..{}",
                    r.me,
                    st.role,
                    st.term,
                    st.commit,
                    r.shell.applied(),
                    st.first_index,
                    st.last_index
                );
                (who, r.stats())
            }
            None => ("uninitialised".to_string(), Default::default()),
        };
        tracing::info!(
            target: "raftkv::stats",
            "{who} turns={} flushes={} entries_persisted={} commits_deferred={} \
             applied_entries={} client_requests={} forwarded={} peer_messages_out={} bad_input={}",
            s.turns,
            shell.flushes,
            shell.entries_persisted,
            shell.commits_deferred,
            shell.applied,
            s.client_requests,
            s.forwarded,
            s.peer_messages_out,
            s.bad_input
        );
    }

    fn emit(&mut self, env: &Envelope) -> Result<(), String> {
        super::msglog::envelope("send", env);
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
                tracing::warn!(
                    "cannot answer a `{}` from {} without msg_id: error {code}: {text}",
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
                tracing::warn!("ignoring input line: {e}: {}", excerpt(line));
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
            tracing::warn!(
                "ignoring message without a string `type`: {}",
                excerpt(line)
            );
            return self.reply_error(&env, code::MALFORMED_REQUEST, "body has no string `type`");
        };
        if kind != "raft" {
            super::msglog::envelope("recv", &env);
        }
        match kind.as_str() {
            "init" => self.handle_init(&env),
            "partition_test" | "verify_linearizability" => self.spawn_worker(env, kind),
            "raft" => self.handle_raft(&env),
            "read" | "write" | "cas" => self.handle_client(env, &kind),
            "read_ok" | "write_ok" | "cas_ok" | "error" => self.handle_relay(env),
            other => {
                self.stats.bad_input += 1;
                tracing::warn!("unknown message type `{other}` from {}", env.src);
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
            tracing::warn!("malformed init from {}", env.src);
            return self.reply_error(
                env,
                code::MALFORMED_REQUEST,
                "init needs `node_id` (string) and `node_ids` (array of strings)",
            );
        };
        let Some(position) = ids.iter().position(|n| n == node_id) else {
            self.stats.bad_input += 1;
            let text = format!("init: node_id {node_id:?} is not in node_ids {ids:?}");
            tracing::warn!("{text}");
            return self.reply_error(env, code::MALFORMED_REQUEST, &text);
        };
        let distinct: HashSet<&String> = ids.iter().collect();
        if distinct.len() != ids.len() {
            let text = format!("init: node_ids {ids:?} has duplicates");
            tracing::warn!("{text}");
            return self.reply_error(env, code::MALFORMED_REQUEST, &text);
        }
        if let Some(c) = &self.replica {
            if c.me != node_id || c.ids != ids {
                let text = format!(
                    "init: already initialised as {} of {:?}; refusing {node_id} of {ids:?}",
                    c.me, c.ids
                );
                tracing::warn!("{text}");
                return self.reply_error(env, code::MALFORMED_REQUEST, &text);
            }
        } else {
            // A node id that cannot name a data directory is bad input, not a reason to stop.
            if let Err(text) = datadir::check_node_id(node_id) {
                let text = format!("init: {text}");
                tracing::warn!("{text}");
                return self.reply_error(env, code::MALFORMED_REQUEST, &text);
            }
            let replica = Replica::open(node_id, ids, position, &self.settings)?;
            self.replica = Some(replica);
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
        let Some(c) = self.replica.as_mut() else {
            tracing::warn!("dropping a raft message from {} before init", env.src);
            return Ok(());
        };
        let Some(from) = c.ids.iter().position(|n| *n == env.src).map(core_id) else {
            self.stats.bad_input += 1;
            tracing::warn!("dropping a raft message from non-member {}", env.src);
            return Ok(());
        };
        let msg = match env.body.get("m").and_then(Value::as_str) {
            Some(text) => pack::unpack::<Message>(text).map_err(|e| e.0),
            None => Err("raft message has no string `m`".to_string()),
        };
        match msg {
            Ok(msg) if msg.from == from && msg.to == c.my => {
                super::msglog::raft("recv", &env.src, &msg);
                c.heard_from.insert(from);
                c.shell.raft_mut().step(msg);
            }
            Ok(msg) => {
                self.stats.bad_input += 1;
                tracing::warn!(
                    "dropping a raft message from {} claiming {} -> {} (I am {})",
                    env.src,
                    msg.from,
                    msg.to,
                    c.my
                );
            }
            Err(e) => {
                self.stats.bad_input += 1;
                tracing::warn!("dropping a bad raft message from {}: {e}", env.src);
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
                tracing::warn!("malformed request from {}: {text}", env.src);
                return self.reply_error(&env, code::MALFORMED_REQUEST, &text);
            }
        };
        let Some(replica) = self.replica.as_mut() else {
            return self.reply_error(
                &env,
                code::TEMPORARILY_UNAVAILABLE,
                "node not initialised yet",
            );
        };
        let waiting = Waiting {
            client: Client {
                src: env.src.clone(),
                dest: env.dest.clone(),
                msg_id,
            },
            op,
            since: Instant::now(),
        };
        match submit(replica, waiting)? {
            None => Ok(()),
            Some((not_leader, waiting)) => self.forward_or_refuse(env, waiting, not_leader),
        }
    }

    /// This node is not the leader: forward the request once, or answer 11 (nothing was
    /// proposed here).
    fn forward_or_refuse(
        &mut self,
        env: Envelope,
        waiting: Waiting,
        not_leader: NotLeader,
    ) -> Result<(), String> {
        let Some(c) = self.replica.as_mut() else {
            return Ok(());
        };
        let forwarded = env.body.get("forwarded") == Some(&Value::Bool(true));
        let leader = not_leader.leader.filter(|l| *l != c.my && *l >= 1);
        let target = leader.and_then(|l| c.ids.get(l as usize - 1).cloned());
        match (leader, target) {
            (Some(leader), Some(leader_name)) if !forwarded && c.peers_open => {
                let fwd_id = self.next_forward_id;
                self.next_forward_id += 1;
                let mut body = env.body;
                body.insert("msg_id".into(), fwd_id.into());
                body.insert("forwarded".into(), Value::Bool(true));
                let me = c.me.clone();
                c.forwards.insert(
                    fwd_id,
                    Forward {
                        client: waiting.client,
                        is_read: waiting.op.is_read(),
                        leader,
                        ok_type: waiting.op.ok_type(),
                        since: waiting.since,
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
        let fwd = match (self.replica.as_mut(), in_reply_to) {
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
            tracing::warn!(
                "ignoring a `{}` from {} that answers nothing in flight",
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
        let Some(c) = self.replica.as_mut() else {
            return;
        };
        if !c.peers_open {
            if now.duration_since(c.init_at) < self.settings.peer_delay {
                return;
            }
            c.peers_open = true;
        }
        c.shell.tick();
        for (client, code, text) in expire_requests(c, now, self.settings.request_timeout) {
            let body = error_body(Some(client.msg_id), code, text);
            if let Err(e) = self.send(&client.dest, &client.src, body) {
                tracing::error!("{e}");
            }
        }
    }

    /// Performs everything the core has ready, through the shell.
    fn drive(&mut self) -> Result<(), String> {
        let Some(replica) = self.replica.as_mut() else {
            return Ok(());
        };
        self.stats.peer_messages_out += replica.drive(&mut self.out)?;
        Ok(())
    }
}

/// Hands a client request to the shell: a proposal for a write or cas, a ReadIndex read for a
/// read. Not the leader: the request comes back with the leader hint.
fn submit(replica: &mut Replica, waiting: Waiting) -> Result<Option<(NotLeader, Waiting)>, String> {
    match waiting.op.command() {
        None => {
            let key = match &waiting.op {
                Op::Read { key } => key.clone(),
                _ => Value::Null,
            };
            match replica.shell.read(key, waiting) {
                Ok(()) => Ok(None),
                Err((not_leader, waiting, _)) => Ok(Some((not_leader, waiting))),
            }
        }
        Some(command) => {
            let data = serde_json::to_vec(&command)
                .map_err(|e| format!("cannot encode a command: {e}"))?;
            match replica.shell.propose(data, waiting) {
                Ok(_) => Ok(None),
                Err((not_leader, waiting)) => Ok(Some((not_leader, waiting))),
            }
        }
    }
}

/// Requests that waited too long, with the answer that is true of each: a write may still
/// happen (13), a read did not (11), a forward's fate is the leader's.
fn expire_requests(
    c: &mut Replica,
    now: Instant,
    timeout: Duration,
) -> Vec<(Client, u64, &'static str)> {
    let old = |since: Instant| now.duration_since(since) >= timeout;
    let mut answers = Vec::new();
    for w in c.shell.take_expired_proposals(|w| old(w.since)) {
        answers.push((
            w.client,
            code::CRASH,
            "write not committed in time; it may still happen",
        ));
    }
    for w in c.shell.take_expired_reads(|w| old(w.since)) {
        answers.push((
            w.client,
            code::TEMPORARILY_UNAVAILABLE,
            "read not confirmed in time",
        ));
    }
    let leader_now = c.shell.raft().status().leader;
    let expired: Vec<u64> = c
        .forwards
        .iter()
        .filter(|(_, f)| old(f.since) || leader_now != Some(f.leader))
        .map(|(i, _)| *i)
        .collect();
    for i in expired {
        if let Some(f) = c.forwards.remove(&i) {
            answers.push(if f.is_read {
                (
                    f.client,
                    code::TEMPORARILY_UNAVAILABLE,
                    "forwarded read got no answer from the leader it went to",
                )
            } else {
                (
                    f.client,
                    code::CRASH,
                    "forwarded request got no answer from the leader it went to; it may have happened",
                )
            });
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::super::replica::answer_body;
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_map_to_maelstrom_codes_11_only_when_it_did_not_happen() {
        use crate::kv::Outcome;
        use crate::shell::Answer;
        let cas = Op::Cas {
            key: json!(1),
            from: json!(1),
            to: json!(2),
        };
        let ok = answer_body(&cas, 7, Answer::Applied(Outcome::Ok(Value::Null)));
        assert_eq!(
            Value::Object(ok),
            json!({"type": "cas_ok", "in_reply_to": 7})
        );
        let mismatch = answer_body(&cas, 7, Answer::Applied(Outcome::CasMismatch(json!(5))));
        assert_eq!(mismatch["code"], json!(22));
        let not_done = answer_body(&cas, 7, Answer::NotDone("another entry committed there"));
        assert_eq!(not_done["code"], json!(11));
        assert_eq!(not_done["in_reply_to"], json!(7));
        // Whatever may have happened is never claimed not to have happened.
        let unknown = answer_body(&cas, 7, Answer::Unknown("could not be applied"));
        assert_eq!(unknown["code"], json!(13));
        let read = Op::Read { key: json!(1) };
        let served = answer_body(&read, 8, Answer::Read(Outcome::Ok(json!(3))));
        assert_eq!(
            Value::Object(served),
            json!({"type": "read_ok", "in_reply_to": 8, "value": 3})
        );
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
