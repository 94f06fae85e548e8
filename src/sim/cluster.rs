//! The simulated cluster: nodes (real core + state machine + simulated disk), the network, the
//! clients and the nemesis, all driven by one event queue on virtual time.
//!
//! Owns: the simulated side of every node's shell (`crate::shell`, the very shell the node runs):
//! a disk whose flush completes after a delay (or is torn by a crash) and a network, plus
//! routing, fault injection, the history of client operations, and the invariant checks after
//! every step.
//! Must never: read the wall clock or any randomness other than the run's [`Rng`]; patch over a
//! core's mistake (every check reports, none repairs).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use serde_json::{json, Value};

use super::disk::{Damage, Disk};
use super::faults::{self, SimConfig};
use super::ghost::{self, Grant, NodeGhost};
use crate::check::{self, EventKind};
use crate::kv::{Command, KvStore, Outcome};
use crate::raft::{
    Config, Entry, Message, MessageBody, NodeId, NotLeader, Raft, Ready, Recovery, Role,
};
use crate::rng::Rng;
use crate::shell::rejoin::{self, RejoinBugs, Start};
use crate::shell::{
    Answer, Batch, Durability, LogStorage, Outbox, Progress, Shell, ShellError, ShellSettings,
    ShellStats,
};

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
        /// The sender's commit index when it sent the message (ghost knowledge).
        sender_commit: u64,
    },
    PersistDone {
        node: usize,
        life: u64,
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

/// A client request waiting in a node's shell: where the answer goes, and what was asked.
#[derive(Clone, Debug)]
struct Request {
    origin: Origin,
    op: Op,
}

type NodeShell = Shell<KvStore, Request>;

struct Node {
    /// The running node's shell (core, state machine, waiting requests); None while down.
    shell: Option<NodeShell>,
    /// Bumped at every crash, so completions scheduled before it are ignored.
    life: u64,
    disk: Disk,
    disk_delay: Time,
    forwards: HashMap<u64, (usize, u64)>,
    next_fwd: u64,
    /// The candidate this node granted a vote to just before a crash the `rejoin` fault
    /// scheduled for it.
    crash_after_vote_for: Option<usize>,
    // invariant trackers
    seen_term: u64,
    seen_commit: u64,
    seen_role: Role,
}

impl Node {
    fn raft(&self) -> Option<&Raft> {
        self.shell.as_ref().map(Shell::raft)
    }
}

/// What every node ever committed or wrote, for the cross-node invariants.
#[derive(Default)]
struct Ledger {
    /// Index -> the entry committed there.
    committed: BTreeMap<u64, Committed>,
    /// (index, term) -> (data hash, predecessor's term) of every entry any node wrote.
    entry_ids: HashMap<(u64, u64), (u64, Option<u64>)>,
}

/// An entry known to be committed, and the lowest term in which a node knew it.
#[derive(Clone, Copy, Debug)]
struct Committed {
    /// The entry's term and data hash.
    id: (u64, u64),
    /// The lowest term of a node at the moment it knew the entry committed. A node learns a
    /// commit only from a leader of its current term or an earlier one (its own count as leader,
    /// a leader's commit index in an append or heartbeat, a leader's snapshot, or its durable
    /// commit index, learned before), so the entry was committed by a leader of this term or an
    /// earlier one, and every leader of a later term holds it (Raft's leader completeness).
    by_term: u64,
}

impl Ledger {
    /// A node in `term` knows the entry `id` (term, data hash) committed at `index`. Err: the
    /// term of a different entry known committed there.
    ///
    /// Every way the simulator sees a commit must report here, since any one of them may be
    /// the only one: a leader that commits entries, applies them and takes a snapshot in one
    /// step has compacted them out of its log before its new commit index is looked at, so
    /// the shell's apply hook is then the only witness.
    fn record_committed(&mut self, index: u64, id: (u64, u64), term: u64) -> Result<(), u64> {
        let known = self
            .committed
            .entry(index)
            .or_insert(Committed { id, by_term: term });
        if known.id != id {
            return Err(known.id.0);
        }
        known.by_term = known.by_term.min(term);
        Ok(())
    }

    /// The term of the entry known committed at `index`, if any.
    fn committed_term(&self, index: u64) -> Option<u64> {
        self.committed.get(&index).map(|c| c.id.0)
    }
}

/// What a shell call produced, in order, to be routed once the call returned.
enum Output {
    Send(Message),
    Answer(Request, Answer<Outcome>),
}

/// One node's disk and network as its shell sees them during one call, with the invariant
/// checks on what the shell writes and applies.
struct SimIo<'a> {
    node: usize,
    /// The node's term, which no shell call changes (only a step, a tick or a campaign does).
    term: u64,
    disk: &'a mut Disk,
    disk_delay: Time,
    ledger: &'a mut Ledger,
    seen_commit: u64,
    outputs: Vec<Output>,
    /// The first broken invariant or invalid write seen during the call.
    failure: Option<(&'static str, String)>,
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
    /// Crashed nodes that lost their directory.
    pub wipes: u64,
    /// Crashed nodes whose disk was damaged (the `corrupt` fault).
    pub damages: u64,
    /// Nodes killed between sled's flush and the record's write (the `rejoin` fault).
    pub kills_before_record: u64,
    /// Nodes crashed again soon after a start with their probe round owed (`rejoin`).
    pub restarts_while_probing: u64,
    /// Followers that lost their directory in the idle cluster at the end (`rejoin`).
    pub idle_rejoins: u64,
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
    /// What the last shell call sent and answered (kept to reuse its allocation).
    outputs: Vec<Output>,
    // invariant state
    leaders: HashMap<u64, usize>,
    /// What the simulator knows of each node beyond its disk (see `ghost.rs`).
    ghosts: Vec<NodeGhost>,
    ledger: Ledger,
    /// Node chosen for each client op, when scripted (partition_test): op number -> node.
    pub route: Option<Box<dyn FnMut(usize, usize) -> usize>>,
    /// Think time between a client's ops, in simulated ms (inclusive range).
    pub think_ms: (u64, u64),
    pub leader_changes: u64,
    last_leader: Option<usize>,
    /// (time, leader) of every change of the leader seen by the simulator.
    pub leader_log: Vec<(Time, usize, u64)>,
    /// The last incarnation handed to a node that started empty (incarnations only grow, as
    /// the node's clock-based ones do).
    last_incarnation: u64,
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
                shell: None,
                life: 0,
                disk: Disk::default(),
                disk_delay: u64::from(cfg.faults.crash || cfg.faults.torn),
                forwards: HashMap::new(),
                next_fwd: 1,
                crash_after_vote_for: None,
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
            outputs: Vec::new(),
            leaders: HashMap::new(),
            ghosts: vec![NodeGhost::default(); n],
            ledger: Ledger::default(),
            route: None,
            think_ms: (5, 40),
            leader_changes: 0,
            last_leader: None,
            leader_log: Vec::new(),
            last_incarnation: 0,
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

    /// Adds a line to the trace (only when the run keeps one).
    fn trace_event(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace && self.failure.is_none() {
            let line = line();
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
        self.trace_event(|| format!("FAILURE {kind}: {detail}"));
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

    /// Starts every node (each with an empty directory, as a first boot) and the clients.
    pub fn boot(&mut self) {
        for i in 0..self.cfg.nodes {
            self.nodes[i].disk = Disk::default();
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

    fn shell_settings(&self) -> ShellSettings {
        #[allow(unused_mut)]
        let mut settings = ShellSettings::new(self.cfg.snapshot_every);
        #[cfg(test)]
        {
            settings.bugs.ack_before_flush = self.cfg.ack_before_durable;
        }
        settings
    }

    fn start_node(&mut self, i: usize) {
        self.decide_start(i);
        let config = self.core_config(i);
        let init = self.nodes[i].disk.initial_state();
        let durable = init.hard_state;
        let shell = match Shell::recover(config, init, self.shell_settings()) {
            Ok(shell) => shell,
            Err(e) => {
                self.fail(e.kind(), format!("node {i}: {e}"));
                return;
            }
        };
        let st = shell.raft().status();
        let node = &mut self.nodes[i];
        node.shell = Some(shell);
        node.seen_term = st.term;
        node.seen_commit = st.commit;
        node.seen_role = st.role;
        self.ghosts[i].recovery = st.recovery;
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
                if let Some(shell) = self.nodes[i].shell.as_mut() {
                    shell.tick();
                    self.drive(i);
                }
            }
            Ev::Deliver {
                from,
                to,
                wire,
                sender_commit,
            } => self.deliver(from, to, wire, sender_commit),
            Ev::PersistDone { node, life } => {
                if self.nodes[node].life == life && !self.kill_before_record(node) {
                    self.with_shell(node, |shell, io| shell.finish(io).map(|()| Progress::Idle));
                    self.drive(node);
                }
            }
            Ev::ClientIssue(c) => self.client_issue(c),
            Ev::ClientArrive {
                node,
                client,
                req,
                op,
            } => {
                if self.nodes[node].shell.is_some() {
                    self.trace_event(|| format!("n{node} <- client c{client} req {req} {op:?}"));
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
                if self.nodes[i].shell.is_none() {
                    self.trace_event(|| format!("n{i} restarts"));
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

    // ---- the shell ------------------------------------------------------------------------

    /// Lets node `i`'s shell perform what its core has ready; schedules the completion of a
    /// persist it began.
    fn drive(&mut self, i: usize) {
        if self.failure.is_some() {
            return;
        }
        let Some(shell) = self.nodes[i].shell.as_ref() else {
            return;
        };
        let was_in_flight = shell.persist_in_flight();
        let progress = self.with_shell(i, |shell, io| shell.drive(io));
        if progress == Some(Progress::PersistInFlight) && !was_in_flight {
            let node = &self.nodes[i];
            let (delay, life) = (node.disk_delay, node.life);
            self.at(delay, Ev::PersistDone { node: i, life });
        }
        self.check_status(i);
    }

    /// Runs one call of node `i`'s shell with its simulated disk and network, then routes what
    /// it sent and answered, and reports what went wrong.
    fn with_shell(
        &mut self,
        i: usize,
        call: impl FnOnce(&mut NodeShell, &mut SimIo) -> Result<Progress, ShellError>,
    ) -> Option<Progress> {
        let node = &mut self.nodes[i];
        let shell = node.shell.as_mut()?;
        let before = shell.stats;
        let term = shell.raft().status().term;
        let mut io = SimIo {
            node: i,
            term,
            disk: &mut node.disk,
            disk_delay: node.disk_delay,
            ledger: &mut self.ledger,
            seen_commit: node.seen_commit,
            outputs: std::mem::take(&mut self.outputs),
            failure: None,
        };
        let result = call(shell, &mut io);
        debug_assert_eq!(
            shell.raft().status().term,
            term,
            "a shell call changed the term"
        );
        let after = shell.stats;
        let SimIo {
            mut outputs,
            failure,
            ..
        } = io;
        self.count_snapshots(before, after);
        if let Some((kind, detail)) = failure {
            self.fail(kind, detail);
        }
        for output in outputs.drain(..) {
            match output {
                Output::Send(m) => self.send_raft(i, m),
                Output::Answer(request, answer) => self.answer(i, request, answer),
            }
        }
        self.outputs = outputs;
        match result {
            Ok(progress) => Some(progress),
            Err(e) => {
                self.fail(e.kind(), format!("node {i}: {e}"));
                None
            }
        }
    }

    fn count_snapshots(&mut self, before: ShellStats, after: ShellStats) {
        self.stats.snapshots_taken += after.snapshots_taken - before.snapshots_taken;
        self.stats.snapshots_installed += after.snapshots_installed - before.snapshots_installed;
    }

    /// Turns a shell's answer into what the client learns.
    fn answer(&mut self, i: usize, request: Request, answer: Answer<Outcome>) {
        let result = match answer {
            Answer::Applied(Outcome::Ok(_)) => OpResult::Ok(None),
            Answer::Applied(Outcome::KeyMissing) => OpResult::Missing,
            Answer::Applied(Outcome::CasMismatch(_)) => OpResult::CasMismatch,
            Answer::Read(Outcome::Ok(v)) => match v.as_u64() {
                Some(x) => OpResult::Ok(Some(x)),
                None => {
                    self.fail("read", format!("node {i} read non-integer value {v}"));
                    return;
                }
            },
            Answer::Read(_) => OpResult::Ok(None),
            Answer::NotDone(_) => OpResult::Unavailable,
            Answer::Unknown(_) => OpResult::Indefinite,
        };
        self.reply(i, request.origin, result);
    }

    // ---- requests --------------------------------------------------------------------------

    /// Hands a client's operation to node `i`'s shell: a ReadIndex read or a proposal. Not the
    /// leader: forward a client's operation to the leader it names, or refuse it.
    fn request(&mut self, i: usize, op: Op, origin: Origin) {
        let Some(shell) = self.nodes[i].shell.as_mut() else {
            return;
        };
        let request = Request {
            origin,
            op: op.clone(),
        };
        let refused = match &op {
            Op::Read { key } => shell
                .read(json!(key), request)
                .err()
                .map(|(not_leader, request, _)| (not_leader, request)),
            Op::Write { key, value } => {
                let command = Command::Write {
                    key: json!(key),
                    value: json!(value),
                };
                shell.propose(command.encode(), request).err()
            }
            Op::Cas { key, from, to } => {
                let command = Command::Cas {
                    key: json!(key),
                    from: json!(from),
                    to: json!(to),
                };
                shell.propose(command.encode(), request).err()
            }
        };
        if let Some((NotLeader { leader }, request)) = refused {
            self.forward_or_refuse(i, leader, request);
        }
    }

    fn forward_or_refuse(&mut self, i: usize, leader: Option<u64>, request: Request) {
        match (leader, &request.origin) {
            (Some(l), Origin::Client { client, req })
                if l >= 1 && (l as usize) <= self.cfg.nodes && l as usize - 1 != i =>
            {
                let node = &mut self.nodes[i];
                let fwd = node.next_fwd;
                node.next_fwd += 1;
                node.forwards.insert(fwd, (*client, *req));
                let op = request.op;
                self.send(i, l as usize - 1, Wire::Forward { fwd, op });
            }
            _ => self.reply(i, request.origin, OpResult::Unavailable),
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
        let own_term_vote =
            self.cfg.faults.rejoin && self.nodes[i].disk.last_step_voted_in_its_term();
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
        if let Some(what) = self.recovering_sender_breaks_rule(i, &m) {
            self.fail("rejoin", format!("node {i} {what}: {m:?}"));
            return;
        }
        if !self.observe_sent(i, &m) {
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
            && (own_term_vote || self.rng.chance(0.2))
        {
            let d = self.rng.between(0, 2);
            self.at(d, Ev::Crash(i));
            if self.cfg.faults.rejoin {
                self.nodes[i].crash_after_vote_for = Some(to as usize - 1);
            }
        }
        self.send(i, to as usize - 1, Wire::Raft(m));
    }

    /// The ghost's side of a message node `i` sends: a heartbeat is checked (see
    /// [`ghost::check_heartbeat`]) and a vote granted is recorded. False when it broke a rule.
    fn observe_sent(&mut self, i: usize, m: &Message) -> bool {
        match m.body {
            MessageBody::Heartbeat {
                commit, uncapped, ..
            } => {
                let leader_commit = self.nodes[i].raft().map_or(0, |r| r.status().commit);
                if let Err(broken) = ghost::check_heartbeat(commit, leader_commit, uncapped) {
                    self.fail("rejoin", format!("node {i} {broken}: {m:?}"));
                    return false;
                }
            }
            MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            } => self.ghosts[i].grants.push(Grant {
                at: self.now,
                term: m.term,
                candidate: m.to as usize - 1,
            }),
            _ => {}
        }
        true
    }

    /// A node rejoining after it lost its state grants no vote or pre-vote, and while its probe
    /// round is owed it acknowledges nothing.
    fn recovering_sender_breaks_rule(&self, i: usize, m: &Message) -> Option<&'static str> {
        rejoin_rule_broken(self.nodes[i].raft()?.status().recovery, m)
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
        let sender_commit = self.nodes[from].raft().map_or(0, |r| r.status().commit);
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
                    sender_commit,
                },
            );
        }
    }

    fn deliver(&mut self, from: usize, to: usize, wire: Wire, sender_commit: u64) {
        if self.blocked[from][to] || self.nodes[to].shell.is_none() {
            self.stats.dropped += 1;
            return;
        }
        match wire {
            Wire::Raft(m) => {
                self.trace_event(|| format!("n{to} <- n{from} {}", short(&m)));
                let leader_commit = commit_vouched_for(&m, sender_commit);
                let mut caught_up = false;
                if let Some(shell) = self.nodes[to].shell.as_mut() {
                    let before = shell.raft().status().recovery;
                    shell.raft_mut().step(m);
                    let after = shell.raft().status().recovery;
                    caught_up = before == Recovery::CatchingUp && after == Recovery::Ordinary;
                }
                if caught_up {
                    self.check_caught_up(to, leader_commit);
                }
                self.drive(to);
            }
            Wire::Forward { fwd, op } => {
                self.trace_event(|| format!("n{to} <- n{from} forward {fwd} {op:?}"));
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
        // A read answered "key does not exist" is an observation of absence (the checker reads
        // it as the key's initial, absent value).
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
        self.trace_event(|| format!("client c{c} req {req} {op:?} -> {result:?}"));
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
            .filter_map(|(i, n)| n.raft().map(|r| (i, r.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| i)
    }

    pub fn heal(&mut self) {
        for row in self.blocked.iter_mut() {
            row.iter_mut().for_each(|b| *b = false);
        }
        self.trace_event(|| "heal".into());
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
        self.trace_event(|| format!("partition minority {minority:?} one_way={one_way}"));
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
                let down = self.nodes.iter().filter(|x| x.shell.is_none()).count();
                if down < n.div_ceil(2) {
                    self.crash(target);
                }
            }
            "slowdisk" => {
                self.nodes[target].disk_delay = self.rng.between(5, 60);
                let back = self.rng.between(100, 1500);
                self.at(back, Ev::DiskFast(target));
                self.trace_event(|| format!("n{target} disk slow"));
            }
            "bridge" | "link" | "spokes" | "pause" => self.partial_fault(kind, target),
            _ => self.heal(),
        }
        let d = self.rng.between(100, 800);
        self.at(d, Ev::Nemesis);
    }

    fn rejoin_bugs(&self) -> RejoinBugs {
        #[cfg(test)]
        return self.cfg.rejoin_bugs;
        #[cfg(not(test))]
        RejoinBugs::default()
    }

    /// The node's start decision (the one the node makes) on what node `i`'s disk holds: start
    /// on it as it is, or replace it with an empty directory under a new incarnation, above
    /// every incarnation the disk named (the simulator's counter stands in for the clock).
    fn decide_start(&mut self, i: usize) {
        let read = self.nodes[i].disk.start_read();
        let start = rejoin::decide(&read, self.rejoin_bugs());
        if let Err(broken) = ghost::check_start(&read, self.ghosts[i].truth, &start) {
            self.fail("rejoin", format!("node {i} {broken}"));
        }
        let Start::Empty(how) = start else {
            return;
        };
        if how.recovery == Recovery::Probing {
            self.ghosts[i].lost_state_at = Some(self.now);
            self.maybe_restart_while_probing(i);
        }
        self.last_incarnation =
            self.last_incarnation.max(how.incarnation_floor) + 1 + self.rng.below(1000);
        let incarnation = self.last_incarnation;
        self.nodes[i].disk.start_empty(&how, incarnation);
        self.trace_event(|| {
            format!(
                "n{i} starts empty ({:?}): {:?} term {} vote {:?}, incarnation {incarnation}",
                how.cause, how.recovery, how.term, how.vote
            )
        });
    }

    /// Is node `i` without its state (rejoining, or down with a directory that must rejoin)?
    fn without_state(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        match node.shell.as_ref() {
            Some(s) => s.raft().status().recovery != Recovery::Ordinary,
            None => node.disk.needs_rejoin(),
        }
    }

    /// True when every node but `i` has its state (a majority without state may have lost
    /// committed entries whatever the nodes do, so a disk fault strikes only then).
    fn others_whole(&self, i: usize) -> bool {
        (0..self.cfg.nodes).all(|o| o == i || !self.without_state(o))
    }

    /// Now and then a crashed node loses its directory, while no other node is without its
    /// state. Returns true when it did.
    ///
    /// With the `rejoin` fault, a crash right after a vote for `voted_for` wipes half the time,
    /// and the candidate's messages to every node but this one are then dropped (one way, until
    /// the next heal), so the others stay below the term of the vote this node forgot.
    fn maybe_wipe(&mut self, i: usize, voted_for: Option<usize>) -> bool {
        let chance = if voted_for.is_some() { 0.5 } else { 0.25 };
        if self.chaos && self.cfg.faults.wipe && self.others_whole(i) && self.rng.chance(chance) {
            self.stats.wipes += 1;
            self.nodes[i].disk = Disk::default();
            self.trace_event(|| format!("n{i} loses its directory"));
            if let Some(c) = voted_for {
                for o in (0..self.cfg.nodes).filter(|&o| o != c && o != i) {
                    self.blocked[c][o] = true;
                }
                self.trace_event(|| format!("n{c} cannot send to any node but n{i}"));
            }
            return true;
        }
        false
    }

    /// Now and then a crashed node's disk is damaged in one of the ways that apply to it (the
    /// run's random source picks), while no other node is without its state. With the `rejoin`
    /// fault: twice as often (always right after a vote), and mostly a kind that leaves a copy
    /// of the hard state stale (always the roll-back when the last step was a vote in the term
    /// the node already held).
    fn maybe_corrupt(&mut self, i: usize, after_vote: bool) {
        let f = self.cfg.faults;
        let holds_state = self.nodes[i].disk.record.is_some();
        if !(self.chaos && f.corrupt && holds_state && self.others_whole(i)) {
            return;
        }
        let chance = match (f.rejoin, after_vote) {
            (false, _) => 0.25,
            (true, false) => 0.5,
            (true, true) => 1.0,
        };
        if !self.rng.chance(chance) {
            return;
        }
        let disk = &self.nodes[i].disk;
        let (first, last) = (disk.first_index(), disk.last_index());
        let index = first + self.rng.below(last + 1 - first);
        let other = first + self.rng.below(last + 1 - first);
        let mut kinds = disk.possible_damages(index, other);
        let aimed = Disk::damages_leaving_a_stale_copy(&kinds);
        if f.rejoin && disk.last_step_voted_in_its_term() && kinds.contains(&Damage::RolledBack) {
            kinds = vec![Damage::RolledBack];
        } else if f.rejoin && !aimed.is_empty() && self.rng.chance(0.7) {
            kinds = aimed;
        }
        let damage = kinds[self.rng.below(kinds.len() as u64) as usize];
        self.nodes[i].disk.damage(damage);
        self.stats.damages += 1;
        self.trace_event(|| format!("n{i} disk damaged: {damage:?}"));
    }

    fn crash(&mut self, i: usize) {
        self.crash_node(i, true);
    }

    /// Crashes node `i`; with `tear`, a batch in flight may keep a clean prefix.
    fn crash_node(&mut self, i: usize, tear: bool) {
        let Some(shell) = self.nodes[i].shell.take() else {
            return;
        };
        self.stats.crashes += 1;
        let node = &mut self.nodes[i];
        node.life += 1;
        node.forwards.clear();
        let torn = tear && self.chaos && self.cfg.faults.torn;
        if let Some(batch) = shell.in_flight_batch() {
            if torn && self.rng.chance(0.5) {
                self.tear(i, &batch);
            }
        }
        let back = if self.chaos {
            self.rng.between(5, 600)
        } else {
            1
        };
        self.trace_event(|| format!("n{i} crashes, restart in {back}ms"));
        self.ghosts[i].truth = Some(self.nodes[i].disk.hard_state);
        let voted_for = self.nodes[i].crash_after_vote_for.take();
        if self.maybe_wipe(i, voted_for) {
            self.ghosts[i].truth = None;
        } else {
            self.maybe_corrupt(i, voted_for.is_some());
        }
        self.at(back, Ev::Restart(i));
    }

    /// A crash during the flush of `batch` keeps a random clean prefix of its records.
    fn tear(&mut self, i: usize, batch: &Batch<'_>) {
        let records = batch.entries.len() + usize::from(batch.snapshot.is_some());
        let kept = self.rng.below(records as u64 + 1) as usize;
        if kept > 0 {
            self.stats.torn_writes += 1;
        }
        if let Err(e) = self.nodes[i].disk.persist_torn(batch, kept) {
            self.fail("storage", format!("node {i}: torn write invalid: {e}"));
        }
    }

    /// Ends the chaos: heal, fast disks, restart every node, no more loss or duplication.
    pub fn calm(&mut self) {
        self.chaos = false;
        self.heal();
        for i in 0..self.cfg.nodes {
            self.nodes[i].disk_delay = self.base_disk_delay();
            if self.nodes[i].shell.is_none() {
                self.at(1, Ev::Restart(i));
            }
        }
    }

    /// With the `rejoin` and `wipe` faults, once the cluster converged after the final heal: a
    /// follower loses its directory and restarts at once, so the leader must end its catch-up
    /// with no client traffic to carry entries. Returns true when a follower did.
    pub fn rejoin_idle_cluster(&mut self) -> bool {
        let f = self.cfg.faults;
        if !(f.rejoin && f.wipe) {
            return false;
        }
        let leader = self.leader();
        let followers: Vec<usize> = (0..self.cfg.nodes)
            .filter(|&i| Some(i) != leader && self.nodes[i].shell.is_some())
            .filter(|&i| !self.without_state(i) && self.others_whole(i))
            .collect();
        let Some(&i) = self.rng.pick(&followers) else {
            return false;
        };
        self.crash_node(i, false);
        self.stats.wipes += 1;
        self.stats.idle_rejoins += 1;
        self.nodes[i].disk = Disk::default();
        self.ghosts[i].truth = None;
        self.trace_event(|| format!("n{i} loses its directory in the idle cluster"));
        true
    }

    /// With the `rejoin` fault: a kill between sled's flush and the record's write, half the
    /// time, when node `i`'s persist that just completed changes its recovering mark (and only
    /// appends), while every other node has its state (the restart rejoins with an empty log).
    /// Returns true when the node was killed.
    fn kill_before_record(&mut self, i: usize) -> bool {
        let f = self.cfg.faults;
        if !(self.chaos && f.rejoin && f.crash && self.others_whole(i)) {
            return false;
        }
        let node = &mut self.nodes[i];
        let Some(batch) = node.shell.as_ref().and_then(|s| s.in_flight_batch()) else {
            return false;
        };
        let mark = node.disk.hard_state.recovery;
        let changes_mark = batch.hard_state.is_some_and(|h| h.recovery != mark);
        if !(changes_mark && node.disk.only_appends(&batch) && self.rng.chance(0.5)) {
            return false;
        }
        if let Err(e) = node.disk.persist_before_record(&batch) {
            self.fail("storage", format!("node {i}: {e}"));
            return true;
        }
        self.stats.kills_before_record += 1;
        self.trace_event(|| format!("n{i} killed between sled's flush and the record's write"));
        self.crash_node(i, false);
        true
    }

    /// With the `rejoin` fault: half the nodes that start probing (after boot) crash again
    /// 1–30 ms later, most of them while the probe round is owed.
    fn maybe_restart_while_probing(&mut self, i: usize) {
        let f = self.cfg.faults;
        if self.chaos && f.rejoin && f.wipe && self.now > 0 && self.rng.chance(0.5) {
            let d = self.rng.between(1, 30);
            self.stats.restarts_while_probing += 1;
            self.at(d, Ev::Crash(i));
        }
    }

    /// True when a leader exists and every live node applied everything it committed, and all
    /// nodes are up.
    pub fn converged(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let Some(ls) = self.nodes[l].raft().map(|r| r.status()) else {
            return false;
        };
        if ls.commit < ls.last_index {
            return false;
        }
        self.nodes.iter().all(|n| {
            n.shell.as_ref().is_some_and(|shell| {
                let s = shell.raft().status();
                s.recovery == Recovery::Ordinary
                    && s.term == ls.term
                    && s.commit == ls.commit
                    && shell.applied() == ls.commit
                    && !shell.persist_in_flight()
            })
        })
    }

    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.cfg.nodes)
            .filter(|&i| self.nodes[i].shell.is_some())
            .collect()
    }

    pub fn node_leader_hint(&self, i: usize) -> Option<usize> {
        let s = self.nodes[i].raft()?.status();
        s.leader.map(|l| l as usize - 1)
    }

    /// The leader `l` has committed an entry of its own term (its no-op at least).
    pub fn leader_committed_own_term(&self, l: usize) -> bool {
        let Some(r) = self.nodes[l].raft() else {
            return false;
        };
        let s = r.status();
        r.log()
            .iter()
            .find(|e| e.term == s.term)
            .is_some_and(|e| s.commit >= e.index)
    }

    pub fn node_term(&self, i: usize) -> u64 {
        self.nodes[i].raft().map_or(0, |r| r.status().term)
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

    /// Status-level invariants after every step of node `i`: terms and commit indexes never go
    /// back, election safety, committed entries recorded and never changed, leader completeness.
    fn check_status(&mut self, i: usize) {
        if self.failure.is_some() {
            return;
        }
        let Some(s) = self.nodes[i].raft().map(Raft::status) else {
            return;
        };
        let node = &self.nodes[i];
        let became_leader =
            s.role == Role::Leader && (node.seen_role != Role::Leader || node.seen_term != s.term);
        let old_commit = node.seen_commit;
        let checks = [
            self.check_monotonic(i, &s),
            self.check_one_leader_per_term(i, &s),
            self.record_commits(i, s.term, (old_commit, s.commit)),
            if became_leader {
                self.check_leader_completeness(i, &s)
            } else {
                Ok(())
            },
        ];
        if let Some(Err((kind, detail))) = checks.into_iter().find(Result::is_err) {
            self.fail(kind, detail);
            return;
        }
        if became_leader {
            self.strike_new_leader(i);
        }
        if self.ghosts[i].recovery == Recovery::Probing && s.recovery != Recovery::Probing {
            self.check_probe_floor(i, s.term, s.vote);
        }
        self.ghosts[i].recovery = s.recovery;
        let node = &mut self.nodes[i];
        node.seen_term = s.term;
        node.seen_commit = s.commit;
        node.seen_role = s.role;
    }

    /// A node whose probe round ended took a term at least that of every vote it granted in an
    /// earlier life to a candidate that kept its state (see [`ghost::probe_floor`]), and at
    /// that very term it holds a vote, so it cannot grant a second one in it.
    fn check_probe_floor(&mut self, i: usize, term: u64, vote: Option<NodeId>) {
        if let Some(g) = ghost::probe_floor(&self.ghosts, i) {
            if term == g.term && vote.is_none() {
                self.fail(
                    "rejoin",
                    format!(
                        "node {i} ended its probe round at term {term} with no vote, although \
                         it granted node {} its vote in that term before it lost its state",
                        g.candidate
                    ),
                );
            }
            if term < g.term {
                self.fail(
                    "rejoin",
                    format!(
                        "node {i} ended its probe round at term {term}, below term {} in which \
                         it granted node {} its vote before it lost its state (that node kept \
                         its own)",
                        g.term, g.candidate
                    ),
                );
            }
        }
    }

    /// Node `i` turned ordinary on a message that vouched for `leader_commit` (see
    /// [`ghost::check_caught_up`]).
    fn check_caught_up(&mut self, i: usize, leader_commit: u64) {
        let Some(last) = self.nodes[i].raft().map(|r| r.status().last_index) else {
            return;
        };
        if let Err(broken) = ghost::check_caught_up(last, leader_commit) {
            self.fail("rejoin", format!("node {i} {broken}"));
        }
    }

    /// Terms and commit indexes never go back; the commit index never passes the log.
    fn check_monotonic(&self, i: usize, s: &crate::raft::Status) -> Check {
        let node = &self.nodes[i];
        if s.term < node.seen_term {
            let seen = node.seen_term;
            return Err((
                "term went back",
                format!("node {i} term {} after {seen}", s.term),
            ));
        }
        if s.commit < node.seen_commit {
            let seen = node.seen_commit;
            return Err((
                "commit went back",
                format!("node {i} commit {} after {seen}", s.commit),
            ));
        }
        if s.commit > s.last_index {
            return Err((
                "commit beyond log",
                format!("node {i} commit {} > last index {}", s.commit, s.last_index),
            ));
        }
        Ok(())
    }

    /// Election safety: at most one leader per term. Also counts elections and leader changes.
    fn check_one_leader_per_term(&mut self, i: usize, s: &crate::raft::Status) -> Check {
        if s.role != Role::Leader {
            return Ok(());
        }
        match self.leaders.get(&s.term) {
            Some(&other) if other != i => {
                return Err((
                    "election safety",
                    format!("nodes {other} and {i} are both leader of term {}", s.term),
                ));
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
        Ok(())
    }

    /// Entries node `i` (in `term`) newly committed, from `old_commit` to `commit`: recorded,
    /// and equal to what was committed before at the same index.
    fn record_commits(&mut self, i: usize, term: u64, (old_commit, commit): (u64, u64)) -> Check {
        if commit <= old_commit {
            return Ok(());
        }
        let Some(raft) = self.nodes[i].raft() else {
            return Ok(());
        };
        let log = raft.log();
        let first = log.first().map_or(u64::MAX, |e| e.index);
        // Indexes below `first` are covered by a snapshot.
        for idx in (old_commit + 1).max(first)..=commit {
            let Some(e) = log.get((idx - first) as usize) else {
                break;
            };
            let id = (e.term, entry_hash(e));
            if let Err(other) = self.ledger.record_committed(idx, id, term) {
                return Err((
                    "state machine safety",
                    format!(
                        "node {i} commits entry {idx} of term {} but term {other} was committed there",
                        e.term
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Leader completeness: a new leader of term T holds every entry some node knew committed
    /// in a term below T (see [`Committed::by_term`]). Entries known committed only in T or
    /// later need not be there: a candidate whose vote replies were held up (a paused node, a
    /// slow link) may win T after a later term has committed more, and Raft binds only the
    /// leaders of later terms. Entries below the leader's log are covered by its snapshot.
    fn check_leader_completeness(&self, i: usize, s: &crate::raft::Status) -> Check {
        let Some(raft) = self.nodes[i].raft() else {
            return Ok(());
        };
        let log = raft.log();
        let first = log.first().map_or(s.last_index + 1, |e| e.index);
        let earlier = self
            .ledger
            .committed
            .range(first..)
            .filter(|(_, c)| c.by_term < s.term);
        for (&idx, &Committed { id: (t, h), .. }) in earlier {
            match log.get((idx - first) as usize) {
                Some(e) if e.term == t && entry_hash(e) == h => {}
                other => {
                    return Err((
                        "leader completeness",
                        format!(
                            "node {i} became leader of term {} without committed entry {idx} \
                             (term {t}); it holds {:?}",
                            s.term,
                            other.map(|e| e.term)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Leader-targeted fault: crash or cut off a new leader before its no-op has reached
    /// everyone, leaving entries of its term on some nodes only (the ground of Raft's figure 8).
    fn strike_new_leader(&mut self, i: usize) {
        if self.chaos && self.cfg.faults.leader && self.rng.chance(0.7) {
            let d = self.rng.between(0, 15);
            if self.rng.chance(0.5) {
                self.at(d, Ev::Crash(i));
            } else {
                self.at(d, Ev::Isolate(i));
            }
        }
    }

    /// Log matching, checked fully: wherever two live logs hold the same index and term, they
    /// hold identical entries up to there.
    pub fn check_logs_match(&mut self) {
        let live: Vec<usize> = self.live_nodes();
        for (a_pos, &a) in live.iter().enumerate() {
            for &b in &live[a_pos + 1..] {
                let (Some(ra), Some(rb)) = (self.nodes[a].raft(), self.nodes[b].raft()) else {
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

/// An invariant check: Ok, or the failure's kind and detail.
type Check = Result<(), (&'static str, String)>;

impl SimIo<'_> {
    fn fail(&mut self, kind: &'static str, detail: String) {
        self.failure.get_or_insert((kind, detail));
    }

    /// Term of the entry at `index` as node `i` knows it: its core's log or snapshot point, or
    /// its disk's.
    fn term_at(&self, raft: &Raft, index: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        raft.term_at(index).or_else(|| self.disk.term_at(index))
    }

    /// Checks the entries a Ready asks to persist: an (index, term) pair names exactly one
    /// entry and one predecessor (log matching, inductively), and no committed entry is
    /// overwritten.
    fn check_ready(&mut self, raft: &Raft, rd: &Ready) -> Check {
        let i = self.node;
        if let Some((meta, _)) = &rd.snapshot {
            if let Some(t) = self.ledger.committed_term(meta.index) {
                if t != meta.term {
                    return Err((
                        "state machine safety",
                        format!(
                            "node {i} installs a snapshot at {} term {} but term {t} was committed there",
                            meta.index, meta.term
                        ),
                    ));
                }
            }
        }
        let mut prev = rd
            .entries
            .first()
            .and_then(|e| self.term_at(raft, e.index - 1));
        for e in &rd.entries {
            self.check_entry(e, prev)?;
            prev = Some(e.term);
        }
        Ok(())
    }

    /// One entry written with the term of its predecessor `prev` (None: unknown here).
    fn check_entry(&mut self, e: &Entry, prev: Option<u64>) -> Check {
        let i = self.node;
        let own_commit = self.seen_commit;
        let h = entry_hash(e);
        // A follower may hold an entry that differs from one the others committed (a stale
        // leader's), but never one at or below its own commit index.
        if e.index <= own_commit {
            if let Some(&Committed { id: (t, hh), .. }) = self.ledger.committed.get(&e.index) {
                if (t, hh) != (e.term, h) {
                    return Err((
                        "committed entry changed",
                        format!(
                            "node {i} (commit {own_commit}) writes entry {} term {} over \
                             the committed entry of term {t}",
                            e.index, e.term
                        ),
                    ));
                }
            }
        }
        match self.ledger.entry_ids.get(&(e.index, e.term)).copied() {
            None => {
                self.ledger.entry_ids.insert((e.index, e.term), (h, prev));
            }
            Some((hh, p)) => {
                let prev_conflict = matches!((p, prev), (Some(a), Some(b)) if a != b);
                if hh != h || prev_conflict {
                    return Err((
                        "log matching",
                        format!(
                            "node {i} holds entry {} term {} that differs from another node's \
                             entry with the same index and term (data or predecessor term)",
                            e.index, e.term
                        ),
                    ));
                }
                if p.is_none() && prev.is_some() {
                    self.ledger.entry_ids.insert((e.index, e.term), (h, prev));
                }
            }
        }
        Ok(())
    }
}

impl LogStorage for SimIo<'_> {
    /// A fast disk writes at once; otherwise the write completes `disk_delay` later (and a
    /// crash before then tears it).
    fn begin_persist(&mut self, batch: &Batch<'_>) -> Result<Durability, String> {
        if self.disk_delay > 0 {
            return Ok(Durability::InFlight);
        }
        self.finish_persist(batch)?;
        Ok(Durability::Durable)
    }

    fn finish_persist(&mut self, batch: &Batch<'_>) -> Result<(), String> {
        self.disk
            .persist(batch)
            .map_err(|e| format!("the core asked for an invalid write: {e}"))
    }

    fn save_snapshot(
        &mut self,
        meta: &crate::raft::SnapshotMeta,
        data: &std::sync::Arc<Vec<u8>>,
    ) -> Result<(), String> {
        self.disk.save_own_snapshot(meta.clone(), data.clone());
        Ok(())
    }
}

impl Outbox<Request, Outcome> for SimIo<'_> {
    fn send(&mut self, message: Message) {
        self.outputs.push(Output::Send(message));
    }

    fn answer(&mut self, token: Request, answer: Answer<Outcome>) {
        self.outputs.push(Output::Answer(token, answer));
    }

    fn observe_ready(&mut self, raft: &Raft, ready: &Ready) {
        if let Err((kind, detail)) = self.check_ready(raft, ready) {
            self.fail(kind, detail);
        }
    }

    /// Entries apply in order, and every node applies the entry committed at an index; the
    /// entry is recorded as committed in this node's term.
    fn observe_apply(&mut self, applied: u64, e: &Entry) {
        let i = self.node;
        if e.index != applied + 1 {
            self.fail(
                "apply order",
                format!(
                    "node {i} was handed entry {} to apply after {applied}",
                    e.index
                ),
            );
            return;
        }
        let id = (e.term, entry_hash(e));
        if let Err(t) = self.ledger.record_committed(e.index, id, self.term) {
            self.fail(
                "state machine safety",
                format!(
                    "node {i} applies entry {} term {} but term {t} was committed there",
                    e.index, e.term
                ),
            );
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
        self.trace_event(|| format!("partition {kind} {order:?}"));
    }

    /// Node `i` takes no steps for the next `ms` of virtual time.
    pub fn pause_node(&mut self, i: usize, ms: Time) {
        self.paused_until[i] = self.now + ms;
        self.trace_event(|| format!("n{i} paused for {ms} ms"));
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

/// The commit index a leader's message vouches for, as the catch-up check reads it: an append's
/// and an uncapped heartbeat's own; for any other message the sender's commit index when it sent
/// it (the correct core never ends a catch-up on one).
fn commit_vouched_for(m: &Message, sender_commit: u64) -> u64 {
    match &m.body {
        MessageBody::AppendEntries { leader_commit, .. } => *leader_commit,
        MessageBody::Heartbeat {
            commit,
            uncapped: true,
            ..
        } => *commit,
        _ => sender_commit,
    }
}

/// The rejoin rule `m` breaks as it leaves a node whose recovery mark is `recovery`, in words
/// (the simulator and the model checker both check it on every message sent): a node
/// rejoining after it lost its state grants no vote or pre-vote, and while its probe round is
/// owed it acknowledges nothing (no append, heartbeat or snapshot answer).
pub fn rejoin_rule_broken(recovery: Recovery, m: &Message) -> Option<&'static str> {
    let grant = matches!(
        m.body,
        MessageBody::RequestVoteResponse { granted: true, .. }
    );
    let ack = matches!(
        m.body,
        MessageBody::AppendEntriesResponse { success: true, .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::InstallSnapshotResponse { .. }
    );
    match recovery {
        Recovery::Ordinary => None,
        _ if grant => Some("granted a vote while rejoining"),
        Recovery::Probing if ack => Some("acknowledged while its probe round was owed"),
        _ => None,
    }
}

/// A message in the trace notation the simulator and the model checker share: entries as
/// index/term and snapshot chunks by their position; everything else as it is.
pub fn short(m: &Message) -> String {
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
