//! The simulated cluster: nodes (real core + state machine + simulated disk), the network, the
//! clients and the nemesis, all driven by one event queue on virtual time.
//!
//! Owns: the core's shell loop (see `crate::raft`) for every simulated node (the same order as
//! the node driver: feed events, `ready`, persist, send, `advance`, apply, serve reads), routing,
//! fault injection, the history of client operations, and the invariant checks after every step.
//! Must never: read the wall clock or any randomness other than the run's [`Rng`]; patch over a
//! core's mistake (every check reports, none repairs).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use serde_json::{json, Value};

use super::disk::{Batch, Disk};
use super::faults::{self, SimConfig};
use super::machine::{encode, Machine};
use crate::check::{self, EventKind};
use crate::kv::{Command, Outcome};
use crate::raft::{Config, Entry, Message, MessageBody, NotLeader, Raft, Ready, Role};
use crate::rng::Rng;

/// Simulated milliseconds.
pub type Time = u64;

/// A client operation on integer keys and values (what the lin-kv workload uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Read { key: u64 },
    Write { key: u64, value: u64 },
    Cas { key: u64, from: u64, to: u64 },
}

impl Op {
    pub fn key(&self) -> u64 {
        match self {
            Op::Read { key } | Op::Write { key, .. } | Op::Cas { key, .. } => *key,
        }
    }
    fn f(&self) -> check::Op {
        match self {
            Op::Read { .. } => check::Op::Read,
            Op::Write { .. } => check::Op::Write,
            Op::Cas { .. } => check::Op::Cas,
        }
    }
    fn invoke_value(&self) -> Value {
        match self {
            Op::Read { .. } => Value::Null,
            Op::Write { value, .. } => json!(value),
            Op::Cas { from, to, .. } => json!([from, to]),
        }
    }
}

/// What a client learned about its operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Served; a read carries the value (None: the key was absent, error 20).
    Ok(Option<u64>),
    /// cas on a missing key (error 20): definite.
    Missing,
    /// cas precondition failed (error 22): definite.
    CasMismatch,
    /// Definitely did not happen (error 11).
    Unavailable,
    /// May or may not have happened (timeout, error 13).
    Indefinite,
}

impl OpResult {
    /// The cluster served it: ok, or a definite answer of the data (20, 22).
    pub fn served(&self) -> bool {
        matches!(
            self,
            OpResult::Ok(_) | OpResult::Missing | OpResult::CasMismatch
        )
    }
}

/// One completed (or abandoned) client operation, for reports and partition_test.
#[derive(Clone, Debug)]
pub struct OpRecord {
    /// Issue order, from 0.
    pub number: usize,
    pub node: usize,
    pub op: Op,
    pub invoked: Time,
    pub completed: Time,
    pub result: OpResult,
}

/// A broken invariant or a failed run, with where and when.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: String,
    pub detail: String,
    pub time: Time,
    /// The simulated time the trace should be read around (the failure, or for a
    /// linearizability violation the operation the checker could not place).
    pub focus: Time,
    /// Every event of the run up to the failure, with its time (only when the run kept a
    /// trace); see [`Failure::window`].
    pub trace: Vec<(Time, String)>,
}

impl Failure {
    /// The trace lines from `before` ms before the focus up to `after` ms after it, at most
    /// `max` of them (the latest), plus the failure line itself.
    pub fn window(&self, before: Time, after: Time, max: usize) -> Vec<String> {
        let lo = self.focus.saturating_sub(before);
        let hi = self.focus + after;
        let mut v: Vec<String> = self
            .trace
            .iter()
            .filter(|(t, _)| *t >= lo && *t <= hi)
            .map(|(t, l)| format!("t={t:>7}ms {l}"))
            .collect();
        if v.len() > max {
            v.drain(..v.len() - max);
        }
        if let Some((t, l)) = self.trace.last() {
            if *t > hi {
                v.push("...".to_string());
                v.push(format!("t={t:>7}ms {l}"));
            }
        }
        v
    }
}

#[derive(Clone, Debug)]
enum Wire {
    Raft(Message),
    Forward { fwd: u64, op: Op },
    ForwardReply { fwd: u64, result: OpResult },
}

#[derive(Clone, Debug)]
enum Ev {
    Tick(usize),
    Deliver {
        from: usize,
        to: usize,
        wire: Wire,
    },
    PersistDone {
        node: usize,
        inc: u64,
    },
    ClientIssue(usize),
    ClientArrive {
        node: usize,
        client: usize,
        req: u64,
        op: Op,
    },
    ClientReply {
        client: usize,
        req: u64,
        result: OpResult,
    },
    ClientTimeout {
        client: usize,
        req: u64,
    },
    Nemesis,
    Crash(usize),
    Restart(usize),
    DiskFast(usize),
    /// Cut one node off from all others (a leader-targeted partition).
    Isolate(usize),
}

struct Item {
    time: Time,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        self.time == o.time && self.seq == o.seq
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: invert so the earliest (time, seq) pops first.
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

#[derive(Clone, Debug)]
enum Origin {
    Client { client: usize, req: u64 },
    Forwarded { node: usize, fwd: u64 },
}

struct Node {
    raft: Option<Raft>,
    /// Bumped at every crash, so completions scheduled before it are ignored.
    inc: u64,
    disk: Disk,
    machine: Machine,
    applied: u64,
    /// Index and term of the state machine's latest snapshot.
    snap: (u64, u64),
    /// Term of the last applied entry (for snapshot metadata).
    applied_term: u64,
    /// A persist in flight: the Ready waits here until its flush completes.
    inflight: Option<Ready>,
    disk_delay: Time,
    proposals: BTreeMap<u64, Vec<(u64, Origin, Op)>>,
    reads: HashMap<u64, (Origin, u64)>,
    ready_reads: Vec<(u64, u64)>,
    next_read: u64,
    forwards: HashMap<u64, (usize, u64)>,
    next_fwd: u64,
    // invariant trackers
    seen_term: u64,
    seen_commit: u64,
    seen_role: Role,
}

struct Client {
    process: u64,
    pending: Option<(u64, Op, usize, Time, usize)>,
}

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub events: u64,
    pub messages: u64,
    pub dropped: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub elections: u64,
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    pub torn_writes: u64,
}

/// The whole simulated world.
pub struct Sim {
    pub cfg: SimConfig,
    rng: Rng,
    pub now: Time,
    seq: u64,
    queue: BinaryHeap<Item>,
    nodes: Vec<Node>,
    /// `blocked[from][to]`: messages on that link are dropped.
    blocked: Vec<Vec<bool>>,
    /// Pause fault: node `i` takes no steps before `paused_until[i]`.
    paused_until: Vec<Time>,
    clients: Vec<Client>,
    next_process: u64,
    next_req: u64,
    pub issued: usize,
    /// Stop issuing at this many ops (the workload size).
    pub target_ops: usize,
    /// Nemesis and network faults on.
    pub chaos: bool,
    pub history: Vec<check::Event>,
    pub records: Vec<OpRecord>,
    pub failure: Option<Failure>,
    pub stats: Stats,
    trace: VecDeque<(Time, String)>,
    // invariant state
    leaders: HashMap<u64, usize>,
    committed: BTreeMap<u64, (u64, u64)>,
    entry_ids: HashMap<(u64, u64), (u64, Option<u64>)>,
    /// Node chosen for each client op, when scripted (partition_test): op number -> node.
    pub route: Option<Box<dyn FnMut(usize, usize) -> usize>>,
    /// Think time between a client's ops, in simulated ms (inclusive range).
    pub think_ms: (u64, u64),
    pub leader_changes: u64,
    last_leader: Option<usize>,
    /// (time, leader) of every change of the leader seen by the simulator.
    pub leader_log: Vec<(Time, usize, u64)>,
}

fn entry_hash(e: &Entry) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (e.kind as u8).hash(&mut h);
    e.data.hash(&mut h);
    h.finish()
}

/// Trace lines kept by a traced replay (the report prints a window of them).
const TRACE_KEEP: usize = 2_000_000;

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        let n = cfg.nodes;
        let nodes = (0..n)
            .map(|_| Node {
                raft: None,
                inc: 0,
                disk: Disk::default(),
                machine: Machine::default(),
                applied: 0,
                snap: (0, 0),
                applied_term: 0,
                inflight: None,
                disk_delay: u64::from(cfg.faults.crash || cfg.faults.torn),
                proposals: BTreeMap::new(),
                reads: HashMap::new(),
                ready_reads: Vec::new(),
                next_read: 1,
                forwards: HashMap::new(),
                next_fwd: 1,
                seen_term: 0,
                seen_commit: 0,
                seen_role: Role::Follower,
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| Client {
                process: i as u64,
                pending: None,
            })
            .collect();
        // One draw reserved; kept so the seeds quoted in the README replay as documented.
        let _ = rng.next_u64();
        Sim {
            target_ops: cfg.ops,
            next_process: cfg.clients as u64,
            chaos: true,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            blocked: vec![vec![false; n]; n],
            paused_until: vec![0; n],
            clients,
            next_req: 1,
            issued: 0,
            history: Vec::new(),
            records: Vec::new(),
            failure: None,
            stats: Stats::default(),
            trace: VecDeque::new(),
            leaders: HashMap::new(),
            committed: BTreeMap::new(),
            entry_ids: HashMap::new(),
            route: None,
            think_ms: (5, 40),
            leader_changes: 0,
            last_leader: None,
            leader_log: Vec::new(),
            cfg,
        }
    }

    fn at(&mut self, delay: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Item {
            time: self.now + delay,
            seq: self.seq,
            ev,
        });
    }

    fn tr(&mut self, f: impl FnOnce() -> String) {
        if self.cfg.trace && self.failure.is_none() {
            let line = f();
            if self.trace.len() == TRACE_KEEP {
                self.trace.pop_front();
            }
            self.trace.push_back((self.now, line));
        }
    }

    /// Records the run's first failure (later ones are consequences), with the trace so far.
    pub fn fail(&mut self, kind: &str, detail: String) {
        if self.failure.is_some() {
            return;
        }
        self.tr(|| format!("FAILURE {kind}: {detail}"));
        self.failure = Some(Failure {
            kind: kind.to_string(),
            detail,
            time: self.now,
            focus: self.now,
            trace: self.trace.iter().cloned().collect(),
        });
    }

    fn core_config(&mut self, i: usize) -> Config {
        let voters: Vec<u64> = (1..=self.cfg.nodes as u64).collect();
        let seed = self.rng.next_u64();
        let mut c = Config::new(i as u64 + 1, voters, seed);
        // Small batches and chunks so batching, pipelining and chunked snapshots are exercised.
        c.max_batch_bytes = 1;
        c.max_inflight = 8;
        c.snapshot_chunk_bytes = 256;
        #[cfg(test)]
        {
            c.bugs = self.cfg.bugs.clone();
        }
        c
    }

    /// Starts every node and the clients.
    pub fn boot(&mut self) {
        for i in 0..self.cfg.nodes {
            self.start_node(i);
            let phase = self.rng.below(self.cfg.tick_ms);
            self.at(phase + 1, Ev::Tick(i));
        }
        for c in 0..self.cfg.clients {
            let d = self.rng.between(300, 600);
            self.at(d, Ev::ClientIssue(c));
        }
        if self.chaos && self.nemesis_enabled() {
            let d = self.rng.between(200, 800);
            self.at(d, Ev::Nemesis);
        }
    }

    fn nemesis_enabled(&self) -> bool {
        let f = &self.cfg.faults;
        f.partition || f.one_way || f.crash || f.slow_disk || !f.partial_kinds().is_empty()
    }

    fn start_node(&mut self, i: usize) {
        let config = self.core_config(i);
        let init = self.nodes[i].disk.initial_state();
        let durable = init.hard_state;
        let snap = init
            .snapshot
            .as_ref()
            .map(|(m, d)| (m.index, m.term, d.clone()));
        let raft = match Raft::try_new(config, init) {
            Ok(raft) => raft,
            Err(e) => {
                self.fail("recovery", format!("node {i}: {e}"));
                return;
            }
        };
        let node = &mut self.nodes[i];
        node.machine = Machine::default();
        node.applied = 0;
        node.snap = (0, 0);
        node.applied_term = 0;
        if let Some((index, term, data)) = snap {
            if let Err(e) = node.machine.restore(&data) {
                self.fail(
                    "snapshot",
                    format!("node {i}: durable snapshot unreadable: {e}"),
                );
                return;
            }
            let node = &mut self.nodes[i];
            node.applied = index;
            node.snap = (index, term);
            node.applied_term = term;
        }
        let st = raft.status();
        let node = &mut self.nodes[i];
        node.raft = Some(raft);
        node.inflight = None;
        node.seen_term = st.term;
        node.seen_commit = st.commit;
        node.seen_role = st.role;
        if st.term < durable.term || st.commit < durable.commit {
            self.fail(
                "restart",
                format!(
                    "node {i} restarted at term {} commit {} below its durable term {} commit {}",
                    st.term, st.commit, durable.term, durable.commit
                ),
            );
        }
        self.drive(i);
    }

    /// Runs until the queue is empty, `stop` says so, or a failure.
    pub fn run_until(&mut self, deadline: Time, mut stop: impl FnMut(&Sim) -> bool) -> bool {
        while let Some(item) = self.queue.pop() {
            if self.failure.is_some() {
                return false;
            }
            if item.time > deadline {
                self.queue.push(item);
                return false;
            }
            self.now = item.time;
            self.stats.events += 1;
            self.handle(item.ev);
            if self.stats.events.is_multiple_of(2048) {
                self.check_logs_match();
            }
            if stop(self) {
                return true;
            }
        }
        false
    }

    fn handle(&mut self, ev: Ev) {
        let Some(ev) = self.hold_for_pause(ev) else {
            return;
        };
        match ev {
            Ev::Tick(i) => {
                let tick_ms = self.cfg.tick_ms;
                self.at(tick_ms, Ev::Tick(i));
                if let Some(r) = self.nodes[i].raft.as_mut() {
                    r.tick();
                    self.drive(i);
                }
            }
            Ev::Deliver { from, to, wire } => self.deliver(from, to, wire),
            Ev::PersistDone { node, inc } => {
                if self.nodes[node].inc == inc {
                    if let Some(rd) = self.nodes[node].inflight.take() {
                        self.persist_done(node, rd);
                        self.drive(node);
                    }
                }
            }
            Ev::ClientIssue(c) => self.client_issue(c),
            Ev::ClientArrive {
                node,
                client,
                req,
                op,
            } => {
                if self.nodes[node].raft.is_some() {
                    self.tr(|| format!("n{node} <- client c{client} req {req} {op:?}"));
                    self.request(node, op, Origin::Client { client, req });
                    self.drive(node);
                }
            }
            Ev::ClientReply {
                client,
                req,
                result,
            } => self.client_done(client, req, result),
            Ev::ClientTimeout { client, req } => {
                self.client_done(client, req, OpResult::Indefinite)
            }
            Ev::Nemesis => self.nemesis(),
            Ev::Crash(i) => self.crash(i),
            Ev::Restart(i) => {
                if self.nodes[i].raft.is_none() {
                    self.tr(|| format!("n{i} restarts"));
                    self.start_node(i);
                }
            }
            Ev::DiskFast(i) => self.nodes[i].disk_delay = self.base_disk_delay(),
            Ev::Isolate(i) => {
                if self.chaos {
                    self.split(&BTreeSet::from([i]), false);
                }
            }
        }
    }

    fn base_disk_delay(&self) -> Time {
        if self.cfg.faults.crash || self.cfg.faults.torn {
            1
        } else {
            0
        }
    }

    // ---- the shell loop ------------------------------------------------------------------

    fn drive(&mut self, i: usize) {
        for _ in 0..1000 {
            if self.failure.is_some() {
                return;
            }
            let node = &mut self.nodes[i];
            if node.inflight.is_some() {
                break;
            }
            let Some(raft) = node.raft.as_mut() else {
                return;
            };
            if !raft.has_ready() {
                break;
            }
            let rd = raft.ready();
            self.check_ready(i, &rd);
            for m in rd.messages.clone() {
                self.send_raft(i, m);
            }
            #[cfg(test)]
            if self.cfg.ack_before_durable {
                for m in rd.persisted_messages.clone() {
                    self.send_raft(i, m);
                }
            }
            let delay = self.nodes[i].disk_delay;
            if rd.must_persist() && delay > 0 {
                let inc = self.nodes[i].inc;
                self.nodes[i].inflight = Some(rd);
                self.at(delay, Ev::PersistDone { node: i, inc });
                break;
            }
            self.persist_done(i, rd);
        }
        self.check_status(i);
    }

    fn persist_done(&mut self, i: usize, rd: Ready) {
        let batch = Batch {
            snapshot: rd.snapshot.clone(),
            entries: rd.entries.clone(),
            hard_state: rd.hard_state,
        };
        if let Err(e) = self.nodes[i].disk.persist(&batch) {
            self.fail(
                "storage",
                format!("node {i}: the core asked for an invalid write: {e}"),
            );
            return;
        }
        #[cfg(test)]
        let early = self.cfg.ack_before_durable;
        #[cfg(not(test))]
        let early = false;
        if !early {
            for m in rd.persisted_messages.clone() {
                self.send_raft(i, m);
            }
        }
        if let Some(r) = self.nodes[i].raft.as_mut() {
            r.advance(&rd);
        }
        if let Some((meta, data)) = &rd.snapshot {
            self.stats.snapshots_installed += 1;
            let node = &mut self.nodes[i];
            if let Err(e) = node.machine.restore(data) {
                self.fail(
                    "snapshot",
                    format!("node {i}: received snapshot unreadable: {e}"),
                );
                return;
            }
            node.applied = meta.index;
            node.applied_term = meta.term;
            node.snap = (meta.index, meta.term);
            // Proposals covered by the snapshot: their fate is unknown here.
            let covered: Vec<u64> = node
                .proposals
                .range(..=meta.index)
                .map(|(k, _)| *k)
                .collect();
            for k in covered {
                if let Some(v) = self.nodes[i].proposals.remove(&k) {
                    for (_, origin, _) in v {
                        self.reply(i, origin, OpResult::Indefinite);
                    }
                }
            }
        }
        for e in &rd.committed {
            self.apply(i, e);
            if self.failure.is_some() {
                return;
            }
        }
        for rr in &rd.reads {
            self.nodes[i].ready_reads.push((rr.index, rr.id));
        }
        for id in &rd.failed_reads {
            if let Some((origin, _)) = self.nodes[i].reads.remove(id) {
                self.reply(i, origin, OpResult::Unavailable);
            }
        }
        self.serve_reads(i);
        self.maybe_snapshot(i);
    }

    fn apply(&mut self, i: usize, e: &Entry) {
        let node = &mut self.nodes[i];
        if e.index != node.applied + 1 {
            let applied = node.applied;
            self.fail(
                "apply order",
                format!(
                    "node {i} was handed entry {} to apply after {applied}",
                    e.index
                ),
            );
            return;
        }
        let h = entry_hash(e);
        match self.committed.get(&e.index) {
            Some(&(t, hh)) if (t, hh) != (e.term, h) => {
                self.fail(
                    "state machine safety",
                    format!(
                        "node {i} applies entry {} term {} but term {t} was committed there",
                        e.index, e.term
                    ),
                );
                return;
            }
            Some(_) => {}
            None => {
                self.committed.insert(e.index, (e.term, h));
            }
        }
        let node = &mut self.nodes[i];
        node.applied = e.index;
        node.applied_term = e.term;
        let outcome = match e.kind {
            crate::raft::EntryKind::Normal => node.machine.apply(&e.data),
            crate::raft::EntryKind::Noop => None,
        };
        if let Some(pending) = node.proposals.remove(&e.index) {
            for (term, origin, op) in pending {
                let result = if term != e.term {
                    OpResult::Unavailable
                } else {
                    match (&outcome, &op) {
                        (Some(Outcome::Ok(_)), _) => OpResult::Ok(None),
                        (Some(Outcome::KeyMissing), _) => OpResult::Missing,
                        (Some(Outcome::CasMismatch(_)), _) => OpResult::CasMismatch,
                        (None, _) => OpResult::Indefinite,
                    }
                };
                self.reply(i, origin, result);
            }
        }
    }

    fn serve_reads(&mut self, i: usize) {
        let applied = self.nodes[i].applied;
        let ready: Vec<(u64, u64)> = self.nodes[i]
            .ready_reads
            .iter()
            .copied()
            .filter(|(idx, _)| *idx <= applied)
            .collect();
        if ready.is_empty() {
            return;
        }
        self.nodes[i].ready_reads.retain(|(idx, _)| *idx > applied);
        for (_, id) in ready {
            if let Some((origin, key)) = self.nodes[i].reads.remove(&id) {
                let result = match self.nodes[i].machine.read(&json!(key)) {
                    Outcome::Ok(v) => match v.as_u64() {
                        Some(x) => OpResult::Ok(Some(x)),
                        None => {
                            self.fail("read", format!("node {i} read non-integer value {v}"));
                            return;
                        }
                    },
                    _ => OpResult::Ok(None),
                };
                self.reply(i, origin, result);
            }
        }
    }

    fn maybe_snapshot(&mut self, i: usize) {
        let every = self.cfg.snapshot_every;
        let node = &mut self.nodes[i];
        if every == 0 || node.applied < node.snap.0 + every || node.raft.is_none() {
            return;
        }
        let meta = crate::raft::SnapshotMeta {
            index: node.applied,
            term: node.applied_term,
            voters: (1..=self.cfg.nodes as u64).collect(),
        };
        let data = std::sync::Arc::new(node.machine.snapshot());
        node.snap = (meta.index, meta.term);
        node.disk.save_own_snapshot(meta.clone(), data.clone());
        if let Some(r) = node.raft.as_mut() {
            r.snapshot_taken(meta, data);
        }
        self.stats.snapshots_taken += 1;
    }

    // ---- requests --------------------------------------------------------------------------

    fn request(&mut self, i: usize, op: Op, origin: Origin) {
        let id = self.nodes[i].next_read;
        let Some(raft) = self.nodes[i].raft.as_mut() else {
            return;
        };
        let res: Result<(), NotLeader> = match &op {
            Op::Read { key } => match raft.read_index(id) {
                Ok(()) => {
                    let node = &mut self.nodes[i];
                    node.next_read += 1;
                    node.reads.insert(id, (origin.clone(), *key));
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Op::Write { .. } | Op::Cas { .. } => {
                let cmd = match &op {
                    Op::Write { key, value } => Command::Write {
                        key: json!(key),
                        value: json!(value),
                    },
                    Op::Cas { key, from, to } => Command::Cas {
                        key: json!(key),
                        from: json!(from),
                        to: json!(to),
                    },
                    Op::Read { .. } => unreachable!("reads take the ReadIndex path above"),
                };
                raft.propose(encode(&cmd)).map(|p| {
                    self.nodes[i].proposals.entry(p.index).or_default().push((
                        p.term,
                        origin.clone(),
                        op.clone(),
                    ));
                })
            }
        };
        if let Err(NotLeader { leader }) = res {
            match (leader, &origin) {
                (Some(l), Origin::Client { client, req })
                    if l >= 1 && (l as usize) <= self.cfg.nodes && l as usize - 1 != i =>
                {
                    let node = &mut self.nodes[i];
                    let fwd = node.next_fwd;
                    node.next_fwd += 1;
                    node.forwards.insert(fwd, (*client, *req));
                    self.send(i, l as usize - 1, Wire::Forward { fwd, op });
                }
                _ => self.reply(i, origin, OpResult::Unavailable),
            }
        }
    }

    fn reply(&mut self, i: usize, origin: Origin, result: OpResult) {
        match origin {
            Origin::Client { client, req } => self.at(
                1,
                Ev::ClientReply {
                    client,
                    req,
                    result,
                },
            ),
            Origin::Forwarded { node, fwd } => {
                self.send(i, node, Wire::ForwardReply { fwd, result })
            }
        }
    }

    // ---- network ---------------------------------------------------------------------------

    fn send_raft(&mut self, i: usize, m: Message) {
        let to = m.to;
        if to == 0 || to as usize > self.cfg.nodes || m.from != i as u64 + 1 {
            self.fail(
                "routing",
                format!(
                    "node {i} emitted a message from {} to unknown node {to}",
                    m.from
                ),
            );
            return;
        }
        // Crash a node right after it grants a vote, now and then: the moment a vote that was
        // not made durable would be forgotten.
        if self.chaos
            && self.cfg.faults.crash
            && matches!(
                m.body,
                MessageBody::RequestVoteResponse {
                    pre_vote: false,
                    granted: true
                }
            )
            && self.rng.chance(0.2)
        {
            let d = self.rng.between(0, 2);
            self.at(d, Ev::Crash(i));
        }
        self.send(i, to as usize - 1, Wire::Raft(m));
    }

    fn send(&mut self, from: usize, to: usize, wire: Wire) {
        self.stats.messages += 1;
        let f = self.cfg.faults;
        let chaos = self.chaos;
        if chaos && f.loss && self.rng.chance(0.02) {
            self.stats.dropped += 1;
            return;
        }
        // Only Raft messages are duplicated: the core must tolerate that, while a duplicated
        // client request would run twice (lin-kv has no request deduplication, and Maelstrom's
        // network does not duplicate).
        let dup_ok = matches!(wire, Wire::Raft(_));
        let copies = if chaos && f.dup && dup_ok && self.rng.chance(0.02) {
            2
        } else {
            1
        };
        // Appends that carry entries of the sender's current term are held back now and then,
        // so older entries reach a majority before the new leader's own (Raft's figure 8).
        let own_term_append = matches!(&wire, Wire::Raft(m) if matches!(
            &m.body,
            MessageBody::AppendEntries { entries, .. } if entries.iter().any(|e| e.term == m.term)
        ));
        for _ in 0..copies {
            let mut d = self.rng.between(1, 5);
            if chaos && f.delay {
                d = self.rng.between(1, 20);
                if self.rng.chance(0.03) {
                    d += self.rng.between(20, 200);
                }
                if own_term_append && self.rng.chance(0.6) {
                    d += self.rng.between(20, 300);
                }
            }
            self.at(
                d,
                Ev::Deliver {
                    from,
                    to,
                    wire: wire.clone(),
                },
            );
        }
    }

    fn deliver(&mut self, from: usize, to: usize, wire: Wire) {
        if self.blocked[from][to] || self.nodes[to].raft.is_none() {
            self.stats.dropped += 1;
            return;
        }
        match wire {
            Wire::Raft(m) => {
                self.tr(|| format!("n{to} <- n{from} {}", short(&m)));
                if let Some(r) = self.nodes[to].raft.as_mut() {
                    r.step(m);
                }
                self.drive(to);
            }
            Wire::Forward { fwd, op } => {
                self.tr(|| format!("n{to} <- n{from} forward {fwd} {op:?}"));
                self.request(to, op, Origin::Forwarded { node: from, fwd });
                self.drive(to);
            }
            Wire::ForwardReply { fwd, result } => {
                if let Some((client, req)) = self.nodes[to].forwards.remove(&fwd) {
                    self.at(
                        1,
                        Ev::ClientReply {
                            client,
                            req,
                            result,
                        },
                    );
                }
            }
        }
    }

    // ---- clients ---------------------------------------------------------------------------

    fn next_op(&mut self) -> Op {
        // Keys move on (as Maelstrom's independent keys do) so each key's history stays small.
        let key = self.issued as u64 / 30 + self.rng.below(3);
        match self.rng.below(4) {
            0 | 1 => Op::Read { key },
            2 => Op::Write {
                key,
                value: self.rng.below(5),
            },
            _ => Op::Cas {
                key,
                from: self.rng.below(5),
                to: self.rng.below(5),
            },
        }
    }

    fn client_issue(&mut self, c: usize) {
        if self.issued >= self.target_ops || self.clients[c].pending.is_some() {
            return;
        }
        let number = self.issued;
        let op = self.next_op();
        self.issued += 1;
        let node = match self.route.as_mut() {
            Some(r) => r(number, c),
            None => self.rng.below(self.cfg.nodes as u64) as usize,
        };
        self.invoke(c, op, node, number);
    }

    /// Sends `op` from client `c` to `node` and records the invoke.
    pub fn invoke(&mut self, c: usize, op: Op, node: usize, number: usize) {
        let req = self.next_req;
        self.next_req += 1;
        let process = self.clients[c].process;
        self.history.push(check::Event::new(
            self.history.len() as u64,
            self.now * 1_000_000,
            process,
            EventKind::Invoke,
            op.f(),
            op.key(),
            op.invoke_value(),
        ));
        self.clients[c].pending = Some((req, op.clone(), node, self.now, number));
        self.at(
            1,
            Ev::ClientArrive {
                node,
                client: c,
                req,
                op,
            },
        );
        let t = self.cfg.client_timeout_ms;
        self.at(t, Ev::ClientTimeout { client: c, req });
    }

    fn client_done(&mut self, c: usize, req: u64, result: OpResult) {
        let Some((preq, op, node, invoked, number)) = self.clients[c].pending.clone() else {
            return;
        };
        if preq != req {
            return;
        }
        self.clients[c].pending = None;
        let process = self.clients[c].process;
        let (kind, value) = match (&result, &op) {
            (OpResult::Ok(v), Op::Read { .. }) => (EventKind::Ok, json!(v)),
            (OpResult::Ok(_), _) => (EventKind::Ok, op.invoke_value()),
            (OpResult::Missing | OpResult::CasMismatch | OpResult::Unavailable, _) => {
                (EventKind::Fail, op.invoke_value())
            }
            (OpResult::Indefinite, Op::Read { .. }) => (EventKind::Fail, Value::Null),
            (OpResult::Indefinite, _) => (EventKind::Info, op.invoke_value()),
        };
        // A read answered "key does not exist" is an observation of absence.
        let (kind, value) = if matches!(op, Op::Read { .. }) && result == OpResult::Missing {
            (EventKind::Ok, Value::Null)
        } else {
            (kind, value)
        };
        self.history.push(check::Event::new(
            self.history.len() as u64,
            self.now * 1_000_000,
            process,
            kind,
            op.f(),
            op.key(),
            value,
        ));
        self.tr(|| format!("client c{c} req {req} {op:?} -> {result:?}"));
        if kind == EventKind::Info {
            // A process whose operation is indeterminate never issues another (Jepsen's rule).
            self.clients[c].process = self.next_process;
            self.next_process += 1;
        }
        self.records.push(OpRecord {
            number,
            node,
            op,
            invoked,
            completed: self.now,
            result,
        });
        let (lo, hi) = self.think_ms;
        let d = self.rng.between(lo, hi);
        self.at(d, Ev::ClientIssue(c));
    }

    /// True when some client waits for an op it sent to one of `nodes`.
    pub fn pending_on(&self, nodes: &BTreeSet<usize>) -> bool {
        self.clients
            .iter()
            .any(|c| c.pending.as_ref().is_some_and(|p| nodes.contains(&p.2)))
    }

    pub fn clients_idle(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none())
    }

    // ---- faults ----------------------------------------------------------------------------

    pub fn leader(&self) -> Option<usize> {
        // The live leader of the highest term.
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.raft.as_ref().map(|r| (i, r.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| i)
    }

    pub fn heal(&mut self) {
        for row in self.blocked.iter_mut() {
            row.iter_mut().for_each(|b| *b = false);
        }
        self.tr(|| "heal".into());
    }

    fn split(&mut self, minority: &BTreeSet<usize>, one_way: bool) {
        let n = self.cfg.nodes;
        let dir = self.rng.chance(0.5);
        for a in 0..n {
            for b in 0..n {
                let cross = minority.contains(&a) != minority.contains(&b);
                self.blocked[a][b] = if one_way {
                    cross && (minority.contains(&a) == dir)
                } else {
                    cross
                };
            }
        }
        self.stats.partitions += 1;
        self.tr(|| format!("partition minority {minority:?} one_way={one_way}"));
    }

    fn nemesis(&mut self) {
        if !self.chaos {
            return;
        }
        let f = self.cfg.faults;
        let n = self.cfg.nodes;
        let mut kinds: Vec<&str> = vec!["heal"];
        if f.partition {
            kinds.push("partition");
        }
        if f.one_way {
            kinds.push("oneway");
        }
        if f.crash {
            kinds.push("crash");
            kinds.push("crash");
        }
        if f.slow_disk {
            kinds.push("slowdisk");
        }
        kinds.extend(f.partial_kinds());
        let kind = self.rng.pick(&kinds).copied().unwrap_or("heal");
        let leader = if f.leader && self.rng.chance(0.5) {
            self.leader()
        } else {
            None
        };
        let target = leader.unwrap_or_else(|| self.rng.below(n as u64) as usize);
        match kind {
            "partition" | "oneway" => {
                let size = self.rng.between(1, ((n - 1) / 2).max(1) as u64) as usize;
                let mut minority = BTreeSet::new();
                minority.insert(target);
                while minority.len() < size {
                    minority.insert(self.rng.below(n as u64) as usize);
                }
                self.split(&minority, kind == "oneway");
            }
            "crash" => {
                let down = self.nodes.iter().filter(|x| x.raft.is_none()).count();
                if down < n.div_ceil(2) {
                    self.crash(target);
                }
            }
            "slowdisk" => {
                self.nodes[target].disk_delay = self.rng.between(5, 60);
                let back = self.rng.between(100, 1500);
                self.at(back, Ev::DiskFast(target));
                self.tr(|| format!("n{target} disk slow"));
            }
            "bridge" | "link" | "spokes" | "pause" => self.partial_fault(kind, target),
            _ => self.heal(),
        }
        let d = self.rng.between(100, 800);
        self.at(d, Ev::Nemesis);
    }

    fn crash(&mut self, i: usize) {
        if self.nodes[i].raft.is_none() {
            return;
        }
        self.stats.crashes += 1;
        let torn = self.chaos && self.cfg.faults.torn;
        let node = &mut self.nodes[i];
        node.raft = None;
        node.inc += 1;
        node.proposals.clear();
        node.reads.clear();
        node.ready_reads.clear();
        node.forwards.clear();
        let inflight = node.inflight.take();
        if let Some(rd) = inflight {
            if torn && self.rng.chance(0.5) {
                let records = rd.entries.len() + usize::from(rd.snapshot.is_some());
                let kept = self.rng.below(records as u64 + 1) as usize;
                let batch = Batch {
                    snapshot: rd.snapshot.clone(),
                    entries: rd.entries.clone(),
                    hard_state: rd.hard_state,
                };
                if kept > 0 {
                    self.stats.torn_writes += 1;
                }
                if let Err(e) = self.nodes[i].disk.persist_torn(&batch, kept) {
                    self.fail("storage", format!("node {i}: torn write invalid: {e}"));
                }
            }
        }
        let back = if self.chaos {
            self.rng.between(5, 600)
        } else {
            1
        };
        self.tr(|| format!("n{i} crashes, restart in {back}ms"));
        self.at(back, Ev::Restart(i));
    }

    /// Ends the chaos: heal, fast disks, restart every node, no more loss or duplication.
    pub fn calm(&mut self) {
        self.chaos = false;
        self.heal();
        for i in 0..self.cfg.nodes {
            self.nodes[i].disk_delay = self.base_disk_delay();
            if self.nodes[i].raft.is_none() {
                self.at(1, Ev::Restart(i));
            }
        }
    }

    /// True when a leader exists and every live node applied everything it committed, and all
    /// nodes are up.
    pub fn converged(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let Some(ls) = self.nodes[l].raft.as_ref().map(|r| r.status()) else {
            return false;
        };
        if ls.commit < ls.last_index {
            return false;
        }
        self.nodes.iter().all(|n| {
            n.raft.as_ref().is_some_and(|r| {
                let s = r.status();
                s.term == ls.term && s.commit == ls.commit && n.applied == ls.commit
            }) && n.inflight.is_none()
        })
    }

    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.cfg.nodes)
            .filter(|&i| self.nodes[i].raft.is_some())
            .collect()
    }

    pub fn node_leader_hint(&self, i: usize) -> Option<usize> {
        let s = self.nodes[i].raft.as_ref()?.status();
        s.leader.map(|l| l as usize - 1)
    }

    /// The leader `l` has committed an entry of its own term (its no-op at least).
    pub fn leader_committed_own_term(&self, l: usize) -> bool {
        let Some(r) = self.nodes[l].raft.as_ref() else {
            return false;
        };
        let s = r.status();
        r.log()
            .iter()
            .find(|e| e.term == s.term)
            .is_some_and(|e| s.commit >= e.index)
    }

    pub fn node_term(&self, i: usize) -> u64 {
        self.nodes[i].raft.as_ref().map_or(0, |r| r.status().term)
    }

    pub fn set_blocked(&mut self, blocked: Vec<Vec<bool>>) {
        self.blocked = blocked;
    }

    /// Wakes every idle client (after `target_ops` was raised).
    pub fn kick_clients(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].pending.is_none() {
                let d = self.rng.between(1, 5);
                self.at(d, Ev::ClientIssue(c));
            }
        }
    }

    // ---- invariants ------------------------------------------------------------------------

    fn term_at(&self, i: usize, index: u64) -> Option<u64> {
        let node = &self.nodes[i];
        let raft = node.raft.as_ref()?;
        let log = raft.log();
        if let Some(first) = log.first() {
            if index >= first.index {
                return log.get((index - first.index) as usize).map(|e| e.term);
            }
            if index + 1 == first.index {
                // The entry just before the in-memory log: the snapshot's, if we know it.
                return self.snapshot_term(i, index);
            }
            return None;
        }
        self.snapshot_term(i, index)
    }

    fn snapshot_term(&self, i: usize, index: u64) -> Option<u64> {
        let node = &self.nodes[i];
        if index == 0 {
            return Some(0);
        }
        if node.snap.0 == index {
            return Some(node.snap.1);
        }
        node.disk.term_at(index)
    }

    /// Checks the entries a Ready asks to persist: an (index, term) pair names exactly one entry
    /// and one predecessor (log matching, inductively), and no committed entry is overwritten.
    fn check_ready(&mut self, i: usize, rd: &Ready) {
        if let Some((meta, _)) = &rd.snapshot {
            if let Some(&(t, _)) = self.committed.get(&meta.index) {
                if t != meta.term {
                    self.fail(
                        "state machine safety",
                        format!(
                            "node {i} installs a snapshot at {} term {} but term {t} was committed there",
                            meta.index, meta.term
                        ),
                    );
                    return;
                }
            }
        }
        let own_commit = self.nodes[i].seen_commit;
        let mut prev: Option<u64> = rd
            .entries
            .first()
            .and_then(|e| self.term_at(i, e.index - 1));
        for (k, e) in rd.entries.iter().enumerate() {
            if k > 0 {
                prev = Some(rd.entries[k - 1].term);
            }
            let h = entry_hash(e);
            // A follower may hold an entry that differs from one the others committed (a stale
            // leader's), but never one at or below its own commit index.
            if e.index <= own_commit {
                if let Some(&(t, hh)) = self.committed.get(&e.index) {
                    if (t, hh) != (e.term, h) {
                        self.fail(
                            "committed entry changed",
                            format!(
                                "node {i} (commit {own_commit}) writes entry {} term {} over \
                                 the committed entry of term {t}",
                                e.index, e.term
                            ),
                        );
                        return;
                    }
                }
            }
            match self.entry_ids.get(&(e.index, e.term)).copied() {
                None => {
                    self.entry_ids.insert((e.index, e.term), (h, prev));
                }
                Some((hh, p)) => {
                    let prev_conflict = matches!((p, prev), (Some(a), Some(b)) if a != b);
                    if hh != h || prev_conflict {
                        self.fail(
                            "log matching",
                            format!(
                                "node {i} holds entry {} term {} that differs from another node's \
                                 entry with the same index and term (data or predecessor term)",
                                e.index, e.term
                            ),
                        );
                        return;
                    }
                    if p.is_none() && prev.is_some() {
                        self.entry_ids.insert((e.index, e.term), (h, prev));
                    }
                }
            }
        }
    }

    /// Status-level invariants: election safety, leader completeness, commit and term never
    /// go back, committed entries recorded and never changed.
    fn check_status(&mut self, i: usize) {
        if self.failure.is_some() {
            return;
        }
        let Some(raft) = self.nodes[i].raft.as_ref() else {
            return;
        };
        let s = raft.status();
        let node = &self.nodes[i];
        if s.term < node.seen_term {
            let seen = node.seen_term;
            self.fail(
                "term went back",
                format!("node {i} term {} after {seen}", s.term),
            );
            return;
        }
        if s.commit < node.seen_commit {
            let seen = node.seen_commit;
            self.fail(
                "commit went back",
                format!("node {i} commit {} after {seen}", s.commit),
            );
            return;
        }
        if s.commit > s.last_index {
            self.fail(
                "commit beyond log",
                format!("node {i} commit {} > last index {}", s.commit, s.last_index),
            );
            return;
        }
        let became_leader =
            s.role == Role::Leader && (node.seen_role != Role::Leader || node.seen_term != s.term);
        let old_commit = node.seen_commit;
        if s.role == Role::Leader {
            match self.leaders.get(&s.term) {
                Some(&other) if other != i => {
                    self.fail(
                        "election safety",
                        format!("nodes {other} and {i} are both leader of term {}", s.term),
                    );
                    return;
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(s.term, i);
                    self.stats.elections += 1;
                }
            }
            if self.last_leader != Some(i) {
                self.last_leader = Some(i);
                self.leader_changes += 1;
                self.leader_log.push((self.now, i, s.term));
            }
        }
        // Newly committed entries on this node: record them; they must match what was
        // committed before at the same index.
        if s.commit > old_commit {
            let log = raft.log();
            let first = log.first().map_or(u64::MAX, |e| e.index);
            let mut bad = None;
            for idx in (old_commit + 1)..=s.commit {
                if idx < first {
                    continue; // covered by a snapshot
                }
                let Some(e) = log.get((idx - first) as usize) else {
                    break;
                };
                let id = (e.term, entry_hash(e));
                match self.committed.get(&idx) {
                    Some(&c) if c != id => {
                        bad = Some((idx, e.term, c.0));
                        break;
                    }
                    Some(_) => {}
                    None => {
                        self.committed.insert(idx, id);
                    }
                }
            }
            if let Some((idx, t, ct)) = bad {
                self.fail(
                    "state machine safety",
                    format!(
                        "node {i} commits entry {idx} of term {t} but term {ct} was committed there"
                    ),
                );
                return;
            }
        }
        if became_leader {
            // Leader completeness: every entry committed so far is in the new leader's log.
            let log = raft.log();
            let first = log.first().map_or(s.last_index + 1, |e| e.index);
            let mut missing = None;
            for (&idx, &(t, h)) in self.committed.range(first..) {
                match log.get((idx - first) as usize) {
                    Some(e) if e.term == t && entry_hash(e) == h => {}
                    other => {
                        missing = Some((idx, t, other.map(|e| e.term)));
                        break;
                    }
                }
            }
            if let Some((idx, t, got)) = missing {
                self.fail(
                    "leader completeness",
                    format!(
                        "node {i} became leader of term {} without committed entry {idx} (term {t}); \
                         it holds {got:?}",
                        s.term
                    ),
                );
                return;
            }
        }
        // Leader-targeted fault: crash a new leader before its no-op has reached everyone,
        // leaving entries of its term on some nodes only (the ground of Raft's figure 8).
        if became_leader && self.chaos && self.cfg.faults.leader && self.rng.chance(0.7) {
            let d = self.rng.between(0, 15);
            if self.rng.chance(0.5) {
                self.at(d, Ev::Crash(i));
            } else {
                self.at(d, Ev::Isolate(i));
            }
        }
        let node = &mut self.nodes[i];
        node.seen_term = s.term;
        node.seen_commit = s.commit;
        node.seen_role = s.role;
    }

    /// Log matching, checked fully: wherever two live logs hold the same index and term, they
    /// hold identical entries up to there.
    pub fn check_logs_match(&mut self) {
        let live: Vec<usize> = self.live_nodes();
        for (a_pos, &a) in live.iter().enumerate() {
            for &b in &live[a_pos + 1..] {
                let (Some(ra), Some(rb)) =
                    (self.nodes[a].raft.as_ref(), self.nodes[b].raft.as_ref())
                else {
                    continue;
                };
                let (la, lb) = (ra.log(), rb.log());
                let (Some(fa), Some(fb)) = (la.first(), lb.first()) else {
                    continue;
                };
                let lo = fa.index.max(fb.index);
                let hi = la
                    .last()
                    .map_or(0, |e| e.index)
                    .min(lb.last().map_or(0, |e| e.index));
                if hi < lo {
                    continue;
                }
                let ea = |x: u64| &la[(x - fa.index) as usize];
                let eb = |x: u64| &lb[(x - fb.index) as usize];
                let Some(top) = (lo..=hi).rev().find(|&x| ea(x).term == eb(x).term) else {
                    continue;
                };
                if let Some(bad) = (lo..=top).find(|&x| ea(x) != eb(x)) {
                    self.fail(
                        "log matching",
                        format!(
                            "nodes {a} and {b} agree on entry {top} (term {}) but differ at {bad}",
                            ea(top).term
                        ),
                    );
                    return;
                }
            }
        }
    }
}

// Partial partitions and pauses (shapes in faults.rs): the nemesis's hook.
impl Sim {
    /// Applies `bridge`, `link` or `spokes` around `target`, or pauses `target` for 50 ms to 1.5 s
    /// of virtual time.
    fn partial_fault(&mut self, kind: &str, target: usize) {
        if kind == "pause" {
            let d = self.rng.between(50, 1500);
            self.pause_node(target, d);
            return;
        }
        let mut order: Vec<usize> = (0..self.cfg.nodes).filter(|&x| x != target).collect();
        for k in (1..order.len()).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            order.swap(k, j);
        }
        order.insert(0, target);
        self.blocked = faults::partial_partition(kind, &order);
        self.stats.partitions += 1;
        self.tr(|| format!("partition {kind} {order:?}"));
    }

    /// Node `i` takes no steps for the next `ms` of virtual time.
    pub fn pause_node(&mut self, i: usize, ms: Time) {
        self.paused_until[i] = self.now + ms;
        self.tr(|| format!("n{i} paused for {ms} ms"));
    }

    /// A paused node takes no steps: its ticks, the messages and client requests that reach it,
    /// and its disk's completions wait until it resumes (as a stopped process's input waits in
    /// its pipe). Returns `ev` when it may be handled now.
    fn hold_for_pause(&mut self, ev: Ev) -> Option<Ev> {
        let node = match &ev {
            Ev::Tick(i) => *i,
            Ev::Deliver { to, .. } => *to,
            Ev::PersistDone { node, .. } | Ev::ClientArrive { node, .. } => *node,
            _ => return Some(ev),
        };
        let until = self.paused_until[node];
        if until <= self.now {
            return Some(ev);
        }
        self.at(until - self.now, ev);
        None
    }
}

fn short(m: &Message) -> String {
    // Entries and snapshot data are summarised; everything else is shown as it is.
    let body = match &m.body {
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_ctx,
        } => format!(
            "Append prev={prev_log_index}/{prev_log_term} n={} [{}] commit={leader_commit} ctx={read_ctx}",
            entries.len(),
            entries
                .iter()
                .map(|e| format!("{}/{}", e.index, e.term))
                .collect::<Vec<_>>()
                .join(",")
        ),
        MessageBody::InstallSnapshot {
            meta, offset, done, data,
        } => format!(
            "Snapshot {}/{} offset={offset} len={} done={done}",
            meta.index,
            meta.term,
            data.len()
        ),
        other => format!("{other:?}"),
    };
    format!("{}->{} term={} {body}", m.from, m.to, m.term)
}
