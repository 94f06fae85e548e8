//! Core tests: several cores driven by an in-test message pump with per-node durable state.
//!
//! Each core runs inside the shared shell (`crate::shell`, the node's and the simulator's own),
//! over an in-memory disk and a message queue, and the pump checks two invariants on every
//! `Ready`: at most one leader per term (election safety) and no two nodes applying different
//! entries at the same index (state machine safety). Scenarios come from the
//! Raft paper and etcd's raft tests. Each of the three test-only bug switches is shown to make
//! the test that targets it fail.

use super::*;
use crate::kv::{Command, KvStore, Outcome};
use crate::rng::Rng;
use crate::shell::{Batch, Durability, LogStorage, Outbox, Shell, ShellSettings};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// What a node's disk holds: exactly what the core asked to persist and then was told durable.
#[derive(Clone, Default)]
struct Durable {
    hs: HardState,
    snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
    entries: Vec<Entry>,
}

impl Durable {
    fn persist(&mut self, batch: &Batch<'_>) {
        if let Some((meta, data)) = batch.snapshot {
            let keep = self
                .entries
                .iter()
                .any(|e| e.index == meta.index && e.term == meta.term);
            if keep {
                self.entries.retain(|e| e.index > meta.index);
            } else {
                self.entries.clear();
            }
            self.snapshot = Some((meta.clone(), data.clone()));
        }
        if let Some(first) = batch.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(batch.entries.iter().cloned());
        }
        if let Some(hs) = batch.hard_state {
            self.hs = hs;
        }
    }

    fn compact(&mut self, meta: SnapshotMeta, data: Arc<Vec<u8>>) {
        self.entries.retain(|e| e.index > meta.index);
        self.snapshot = Some((meta, data));
    }

    fn initial(&self) -> InitialState {
        InitialState {
            hard_state: self.hs,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

struct Node {
    shell: Shell<KvStore, ()>,
    cfg: Config,
    disk: Durable,
    up: bool,
    reads: Vec<ReadReady>,
    failed_reads: Vec<u64>,
}

/// One node's disk and the cluster's network and invariant state, as its shell sees them.
struct PumpIo<'a> {
    id: NodeId,
    disk: &'a mut Durable,
    /// The next persist never completes: the node crashes after sending its immediate messages.
    crash_before_persist: bool,
    net: &'a mut VecDeque<Message>,
    sent: &'a mut Vec<Message>,
    leaders: &'a mut BTreeMap<u64, NodeId>,
    applied: &'a mut BTreeMap<u64, (u64, Vec<u8>)>,
    violations: &'a mut Vec<String>,
    read_floor: &'a BTreeMap<(NodeId, u64), u64>,
    reads: &'a mut Vec<ReadReady>,
    failed_reads: &'a mut Vec<u64>,
}

impl LogStorage for PumpIo<'_> {
    fn begin_persist(&mut self, batch: &Batch<'_>) -> Result<Durability, String> {
        if self.crash_before_persist {
            return Ok(Durability::InFlight);
        }
        self.disk.persist(batch);
        Ok(Durability::Durable)
    }

    fn finish_persist(&mut self, batch: &Batch<'_>) -> Result<(), String> {
        self.disk.persist(batch);
        Ok(())
    }

    fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &Arc<Vec<u8>>) -> Result<(), String> {
        self.disk.compact(meta.clone(), data.clone());
        Ok(())
    }
}

impl Outbox<(), Outcome> for PumpIo<'_> {
    fn send(&mut self, message: Message) {
        if !self.crash_before_persist {
            self.sent.push(message.clone());
        }
        self.net.push_back(message);
    }

    fn answer(&mut self, _token: (), _answer: crate::shell::Answer<Outcome>) {}

    fn observe_ready(&mut self, raft: &Raft, rd: &Ready) {
        let id = self.id;
        self.reads.extend(rd.reads.iter().copied());
        self.failed_reads.extend(rd.failed_reads.iter().copied());
        for r in &rd.reads {
            if let Some(&floor) = self.read_floor.get(&(id, r.id)) {
                if r.index < floor {
                    self.violations.push(format!(
                        "node {id} read {} at index {} but index {floor} was committed \
                         when it was asked",
                        r.id, r.index
                    ));
                }
            }
        }
        let st = raft.status();
        if st.role == Role::Leader {
            match self.leaders.get(&st.term) {
                Some(&l) if l != id => self
                    .violations
                    .push(format!("two leaders in term {}: {l} and {id}", st.term)),
                _ => {
                    self.leaders.insert(st.term, id);
                }
            }
        }
    }

    fn observe_apply(&mut self, _applied: u64, e: &Entry) {
        let id = self.id;
        match self.applied.get(&e.index) {
            Some((t, d)) if *t != e.term || *d != e.data => self.violations.push(format!(
                "node {id} applied {}@{} where {}@{t} was applied before",
                e.index, e.term, e.index
            )),
            Some(_) => {}
            None => {
                self.applied.insert(e.index, (e.term, e.data.clone()));
            }
        }
    }
}

/// Rewrites (Some) or drops (None) a message in flight.
type Filter = Box<dyn Fn(Message) -> Option<Message>>;

fn drop_if(f: impl Fn(&Message) -> bool + 'static) -> Option<Filter> {
    Some(Box::new(move |m| if f(&m) { None } else { Some(m) }))
}

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    net: VecDeque<Message>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Applied to every message at delivery.
    filter: Option<Filter>,
    leaders: BTreeMap<u64, NodeId>,
    applied: BTreeMap<u64, (u64, Vec<u8>)>,
    violations: Vec<String>,
    snapshot_every: Option<u64>,
    sent: Vec<Message>,
    rng: Rng,
    /// The next turn of this node sends its immediate messages, then the node crashes before
    /// the persist completes.
    crash_mid_turn: Option<NodeId>,
    /// Read id -> the highest commit index any node knew when the read was asked.
    read_floor: BTreeMap<(NodeId, u64), u64>,
}

fn config(id: NodeId, n: u64, seed: u64) -> Config {
    let mut c = Config::new(id, (1..=n).collect(), seed);
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c
}

impl Cluster {
    fn new(n: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let mut cfg = config(id, n, seed);
            tweak(&mut cfg);
            nodes.insert(id, Node::new(cfg, Durable::default()));
        }
        Cluster {
            nodes,
            net: VecDeque::new(),
            cut: BTreeSet::new(),
            filter: None,
            leaders: BTreeMap::new(),
            applied: BTreeMap::new(),
            violations: Vec::new(),
            snapshot_every: None,
            sent: Vec::new(),
            rng: Rng::new(seed),
            crash_mid_turn: None,
            read_floor: BTreeMap::new(),
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    fn raft(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).unwrap().shell.raft_mut()
    }

    fn status(&self, id: NodeId) -> Status {
        self.nodes[&id].raft().status()
    }

    /// Every node takes a snapshot every `every` applied entries (set on a fresh cluster).
    fn set_snapshot_every(&mut self, every: u64) {
        self.snapshot_every = Some(every);
        for node in self.nodes.values_mut() {
            *node = Node::open(node.cfg.clone(), node.disk.clone(), every);
        }
    }

    /// Lets node `id`'s shell perform everything its core has ready.
    fn process(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        if !node.up {
            return;
        }
        let mut io = PumpIo {
            id,
            disk: &mut node.disk,
            crash_before_persist: self.crash_mid_turn == Some(id),
            net: &mut self.net,
            sent: &mut self.sent,
            leaders: &mut self.leaders,
            applied: &mut self.applied,
            violations: &mut self.violations,
            read_floor: &self.read_floor,
            reads: &mut node.reads,
            failed_reads: &mut node.failed_reads,
        };
        node.shell.drive(&mut io).unwrap();
        if node.shell.persist_in_flight() {
            // The persist never completes: the node crashed in the middle of its turn.
            self.crash_mid_turn = None;
            node.up = false;
        }
    }

    fn deliverable(&self, m: Message) -> Option<Message> {
        let up = |id| self.nodes.get(&id).is_some_and(|n| n.up);
        if !up(m.from) || !up(m.to) || self.cut.contains(&(m.from, m.to)) {
            return None;
        }
        match &self.filter {
            Some(f) => f(m),
            None => Some(m),
        }
    }

    /// Delivers every message in flight (and those they cause) until the network is quiet.
    fn deliver_all(&mut self) {
        let mut n = 0;
        while let Some(m) = self.net.pop_front() {
            n += 1;
            assert!(n < 1_000_000, "message storm");
            let Some(m) = self.deliverable(m) else {
                continue;
            };
            let to = m.to;
            self.raft(to).step(m);
            self.process(to);
        }
    }

    /// Like `deliver_all` but shuffles, duplicates (1 in 8) and drops (1 in 10) messages.
    fn deliver_chaos(&mut self, steps: usize) {
        for _ in 0..steps {
            if self.net.is_empty() {
                return;
            }
            let i = self.rng.below(self.net.len() as u64) as usize;
            let Some(m) = self.net.remove(i) else { return };
            let r = self.rng.below(80);
            if r < 8 {
                continue;
            }
            if r < 18 {
                self.net.push_back(m.clone());
            }
            let Some(m) = self.deliverable(m) else {
                continue;
            };
            let to = m.to;
            self.raft(to).step(m);
            self.process(to);
        }
    }

    /// Delivers, in order, only the messages in flight (and those they cause) that `pick`
    /// selects; the others stay queued.
    fn deliver_where(&mut self, pick: impl Fn(&Message) -> bool) {
        let mut n = 0;
        while let Some(i) = self.net.iter().position(&pick) {
            n += 1;
            assert!(n < 100_000, "message storm");
            let Some(m) = self.net.remove(i).and_then(|m| self.deliverable(m)) else {
                continue;
            };
            let to = m.to;
            self.raft(to).step(m);
            self.process(to);
        }
    }

    fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.nodes[&id].up {
                self.raft(id).tick();
                self.process(id);
            }
        }
    }

    /// Ticks and delivers `n` times.
    fn run(&mut self, n: usize) {
        for _ in 0..n {
            self.tick_all();
            self.deliver_all();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for (&id, node) in &self.nodes {
            let st = node.raft().status();
            if node.up && st.role == Role::Leader && best.is_none_or(|(t, _)| st.term > t) {
                best = Some((st.term, id));
            }
        }
        best.map(|(_, id)| id)
    }

    fn elect(&mut self, id: NodeId) {
        self.raft(id).campaign();
        self.process(id);
        self.deliver_all();
        assert_eq!(self.status(id).role, Role::Leader, "node {id} must win");
    }

    fn wait_leader(&mut self, max_ticks: usize) -> NodeId {
        for _ in 0..max_ticks {
            self.run(1);
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader after {max_ticks} ticks");
    }

    fn write(&mut self, id: NodeId, key: u64, value: u64) -> Proposal {
        let cmd = Command::Write {
            key: json!(key),
            value: json!(value),
        };
        let p = self.raft(id).propose(cmd.encode()).unwrap();
        self.process(id);
        p
    }

    fn isolate(&mut self, id: NodeId) {
        for &o in self.nodes.keys() {
            if o != id {
                self.cut.insert((id, o));
                self.cut.insert((o, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).unwrap().up = false;
    }

    fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let disk = node.disk.clone();
        let cfg = node.cfg.clone();
        *node = Node::open(cfg, disk, self.snapshot_every.unwrap_or(0));
        self.process(id);
    }

    fn check(&self) {
        assert!(self.violations.is_empty(), "{:?}", self.violations);
    }

    fn converged(&self) -> bool {
        let logs: Vec<_> = self
            .nodes
            .values()
            .map(|n| (n.raft().status().commit, n.kv().clone()))
            .collect();
        logs.windows(2).all(|w| w[0] == w[1])
    }
}

impl Node {
    /// A node that takes no snapshot of its own.
    fn new(cfg: Config, disk: Durable) -> Node {
        Node::open(cfg, disk, 0)
    }

    fn open(cfg: Config, disk: Durable, snapshot_every: u64) -> Node {
        let settings = ShellSettings::new(snapshot_every);
        Node {
            shell: Shell::recover(cfg.clone(), disk.initial(), settings).unwrap(),
            cfg,
            disk,
            up: true,
            reads: Vec::new(),
            failed_reads: Vec::new(),
        }
    }

    fn raft(&self) -> &Raft {
        self.shell.raft()
    }

    fn kv(&self) -> &KvStore {
        self.shell.machine()
    }
}

// ----- elections ------------------------------------------------------------------------------

#[test]
fn elects_one_leader_and_replicates() {
    for seed in 1..=5 {
        let mut c = Cluster::new(5, seed, |_| {});
        let l = c.wait_leader(100);
        for i in 0..20 {
            c.write(l, i % 3, i);
        }
        c.run(5);
        c.check();
        assert!(c.converged(), "seed {seed}");
        assert_eq!(c.node(1).kv().read(&json!(2)), Outcome::Ok(json!(17)));
        assert!(c.status(1).commit >= 21);
    }
}

#[test]
fn single_node_cluster_commits_alone() {
    let mut c = Cluster::new(1, 3, |_| {});
    let l = c.wait_leader(40);
    c.write(l, 1, 1);
    c.raft(l).read_index(9).unwrap();
    c.process(l);
    assert_eq!(c.node(l).kv().read(&json!(1)), Outcome::Ok(json!(1)));
    assert_eq!(c.node(l).reads, vec![ReadReady { id: 9, index: 2 }]);
}

#[test]
fn election_timeouts_are_randomized_by_seed() {
    let timeouts: BTreeSet<u32> = (1..=5)
        .map(|id| {
            let r = Raft::new(config(id, 5, 42), InitialState::default());
            r.debug_randomized_timeout()
        })
        .collect();
    assert!(timeouts.len() > 1, "all nodes drew the same timeout");
    for t in &timeouts {
        assert!((10..20).contains(t));
    }
    // Same seed, same draw: the simulator replays exactly.
    let a = Raft::new(config(3, 5, 7), InitialState::default()).debug_randomized_timeout();
    let b = Raft::new(config(3, 5, 7), InitialState::default()).debug_randomized_timeout();
    assert_eq!(a, b);
}

/// Pre-vote: a node cut off for a long time keeps pre-campaigning without raising its term, so
/// on rejoining it does not depose the leader. Without pre-vote (the broken variant) it does.
fn partitioned_node_rejoins(pre_vote: bool) -> (u64, u64, NodeId, NodeId) {
    let mut c = Cluster::new(5, 11, |cfg| cfg.pre_vote = pre_vote);
    let l = c.wait_leader(100);
    let term = c.status(l).term;
    let lonely = if l == 5 { 4 } else { 5 };
    c.isolate(lonely);
    c.run(200);
    c.heal();
    c.run(50);
    c.check();
    let after = c.leader().unwrap();
    (term, c.status(after).term, l, after)
}

#[test]
fn pre_vote_keeps_a_rejoining_node_from_disrupting() {
    let (before, after, l0, l1) = partitioned_node_rejoins(true);
    assert_eq!((before, l0), (after, l1), "term and leader unchanged");
    // Broken variant: without pre-vote the rejoining node forces a new term.
    let (before, after, _, _) = partitioned_node_rejoins(false);
    assert!(
        after > before,
        "without pre-vote the rejoin raises the term"
    );
}

/// Leader stickiness: a follower that heard the leader recently ignores vote requests, even
/// of a higher term.
#[test]
fn followers_in_lease_ignore_vote_requests() {
    let mut c = Cluster::new(3, 5, |cfg| cfg.pre_vote = false);
    let l = c.wait_leader(100);
    let other = if l == 1 { 2 } else { 1 };
    let term = c.status(l).term;
    c.raft(other).campaign();
    c.process(other);
    c.deliver_all();
    c.check();
    // The candidate lost: the others still follow the leader in the old term.
    let third = 6 - l - other;
    assert_eq!(c.status(third).term, term);
    assert_eq!(c.status(third).leader, Some(l));
    c.run(30);
    c.check();
}

#[test]
fn unconfirmed_reads_fail_within_an_election_timeout() {
    // Without check-quorum the cut-off leader keeps leading; its read still fails in time.
    let mut c = Cluster::new(3, 6, |cfg| cfg.check_quorum = false);
    let l = c.wait_leader(100);
    c.isolate(l);
    c.raft(l).read_index(5).unwrap();
    c.process(l);
    for _ in 0..9 {
        c.run(1);
    }
    assert!(c.node(l).failed_reads.is_empty(), "not before the timeout");
    c.run(1);
    assert_eq!(c.node(l).failed_reads, vec![5]);
    assert_eq!(c.status(l).role, Role::Leader);
    assert!(c.node(l).reads.is_empty());
}

#[test]
fn restart_adopts_the_term_of_durable_entries_after_a_torn_hard_state() {
    // The entries of a step reached the disk, its hard state (term 3) did not.
    let r = Raft::new(
        config(2, 3, 1),
        InitialState {
            hard_state: HardState {
                term: 2,
                vote: Some(1),
                commit: 1,
            },
            snapshot: None,
            entries: entries_of(&[1, 2, 3]),
        },
    );
    let st = r.status();
    assert_eq!((st.term, st.vote), (3, None));
    // An append of the older term can no longer overwrite entry 3.
    let mut r = r;
    r.step(Message {
        from: 1,
        to: 2,
        term: 2,
        body: MessageBody::AppendEntries {
            prev_log_index: 2,
            prev_log_term: 2,
            entries: vec![Entry {
                term: 2,
                index: 3,
                kind: EntryKind::Noop,
                data: vec![],
            }],
            leader_commit: 3,
            read_ctx: 0,
        },
    });
    assert_eq!(r.term_at(3), Some(3));
}

#[test]
fn check_quorum_steps_down_an_isolated_leader() {
    for check_quorum in [true, false] {
        let mut c = Cluster::new(5, 21, |cfg| cfg.check_quorum = check_quorum);
        let l = c.wait_leader(100);
        c.isolate(l);
        c.raft(l).read_index(77).unwrap();
        // Two election timeouts are enough to notice.
        for _ in 0..20 {
            c.run(1);
        }
        let st = c.status(l);
        if check_quorum {
            assert_ne!(st.role, Role::Leader, "isolated leader must step down");
            assert_eq!(c.node(l).failed_reads, vec![77], "its pending read fails");
            assert!(c.node(l).reads.is_empty());
        } else {
            // Broken variant: nothing makes it stop.
            assert_eq!(st.role, Role::Leader);
        }
        c.check();
    }
}

// ----- commit rule ----------------------------------------------------------------------------

/// Raft Figure 8: a leader must not commit an entry of an earlier term by counting replicas.
/// Returns the violations the pump saw.
fn figure8(b: Bugs) -> Vec<String> {
    let mut c = Cluster::new(5, 8, |cfg| {
        cfg.check_quorum = false;
        cfg.max_batch_bytes = 1; // one entry per append, so the scenario can split them
        cfg.bugs = b.clone();
    });
    c.elect(1);
    c.run(2);
    // (a) leader 1 replicates index 2 to node 2 only.
    for o in 3..=5 {
        c.cut.insert((1, o));
    }
    let p = c.write(1, 7, 1);
    c.deliver_all();
    assert_eq!(p.index, 2);
    assert_eq!(c.node(2).raft().term_at(2), Some(p.term));
    // (b) node 1 crashes; node 5 wins with votes of 3 and 4 and appends index 2 in its term,
    // which reaches no one.
    c.crash(1);
    c.heal();
    c.cut.insert((5, 2));
    c.filter = drop_if(|m| m.from == 5 && matches!(m.body, MessageBody::AppendEntries { .. }));
    c.elect(5);
    let t5 = c.status(5).term;
    assert_eq!(c.node(5).raft().term_at(2), Some(t5));
    c.crash(5);
    c.heal();
    // (c) node 1 restarts and wins a later term; index 2 (old term) reaches nodes 3 and 4 but
    // no entry of the new term does, and no follower learns a commit beyond index 1.
    c.restart(1);
    c.filter = Some(Box::new(|mut m: Message| {
        match &mut m.body {
            MessageBody::AppendEntries {
                entries,
                leader_commit,
                ..
            } => {
                entries.retain(|e| e.index < 3);
                *leader_commit = (*leader_commit).min(1);
            }
            MessageBody::Heartbeat { commit, .. } => *commit = (*commit).min(1),
            _ => {}
        }
        Some(m)
    }));
    for _ in 0..3 {
        if c.status(1).role != Role::Leader {
            // A rejected pre-vote teaches node 1 the current term; then it tries again.
            c.raft(1).campaign();
            c.process(1);
            c.deliver_all();
        }
    }
    assert_eq!(c.status(1).role, Role::Leader);
    for _ in 0..3 {
        c.tick_all();
        c.deliver_all();
    }
    assert!(
        [3, 4]
            .iter()
            .all(|&n| c.node(n).raft().term_at(2) == Some(p.term)),
        "index 2 of the old term is now on a majority"
    );
    // (d) node 1 crashes; node 5 (last term t5 > old term) can win and overwrite index 2.
    c.crash(1);
    c.filter = None;
    c.restart(5);
    for _ in 0..3 {
        if c.status(5).role != Role::Leader {
            c.raft(5).campaign();
            c.process(5);
            c.deliver_all();
        }
    }
    assert_eq!(c.status(5).role, Role::Leader);
    c.run(10);
    assert!(
        c.node(2).raft().term_at(2) != Some(p.term),
        "index 2 was replaced"
    );
    c.violations.clone()
}

#[test]
fn figure8_old_term_entry_is_not_committed_by_counting() {
    let ok = figure8(Bugs::default());
    assert!(ok.is_empty(), "{ok:?}");
    let broken = figure8(Bugs {
        commit_old_term_by_counting: true,
        ..Bugs::default()
    });
    assert!(
        broken
            .iter()
            .any(|v| v.contains("node 2 applied 2@") || v.contains("applied 2@")),
        "the bug switch must make the Figure 8 test fail: {broken:?}"
    );
}

// ----- log repair -----------------------------------------------------------------------------

fn entries_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            term: t,
            index: i as u64 + 1,
            kind: EntryKind::Noop,
            data: vec![],
        })
        .collect()
}

/// A follower shorter than the leader's `prev_index`, whose tail is of a term the leader lacks,
/// hints past that tail at once (one round trip fewer than hinting its last index).
#[test]
fn short_follower_hints_past_its_conflicting_tail() {
    let state = InitialState {
        hard_state: HardState {
            term: 3,
            vote: None,
            commit: 0,
        },
        snapshot: None,
        entries: entries_of(&[1, 1, 3, 3, 3]),
    };
    let mut r = Raft::new(config(2, 3, 1), state);
    r.step(Message {
        from: 1,
        to: 2,
        term: 4,
        body: MessageBody::AppendEntries {
            prev_log_index: 10,
            prev_log_term: 2,
            entries: vec![],
            leader_commit: 0,
            read_ctx: 0,
        },
    });
    let rd = r.ready();
    let hint = rd.messages.iter().find_map(|m| match m.body {
        MessageBody::AppendEntriesResponse {
            success: false,
            index,
            hint_term,
            ..
        } => Some((index, hint_term)),
        _ => None,
    });
    assert_eq!(hint, Some((2, Some(1))));
}

/// Raft Figure 7: the leader's log and six followers' logs (missing, extra and conflicting
/// entries). After the election every follower's log equals the leader's.
fn figure7(chaos: bool) -> Cluster {
    let logs: [&[u64]; 7] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6],    // leader
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],       // a
        &[1, 1, 1, 4],                      // b
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // c
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    let mut c = Cluster::new(7, 7, |cfg| cfg.max_batch_bytes = 30);
    for (i, terms) in logs.iter().enumerate() {
        let id = i as u64 + 1;
        let disk = Durable {
            hs: HardState {
                term: 7,
                vote: None,
                commit: 3,
            },
            snapshot: None,
            entries: entries_of(terms),
        };
        let cfg = c.node(id).cfg.clone();
        c.nodes.insert(id, Node::new(cfg, disk));
    }
    c.raft(1).campaign();
    c.process(1);
    if chaos {
        c.deliver_chaos(2000);
        for _ in 0..60 {
            c.tick_all();
            c.deliver_chaos(2000);
        }
    }
    c.run(20);
    c.check();
    c
}

#[test]
fn figure7_logs_are_repaired_to_the_leaders() {
    for chaos in [false, true] {
        let c = figure7(chaos);
        let l = c.leader().unwrap();
        let leader_log: Vec<(u64, u64)> = c
            .node(l)
            .raft()
            .log()
            .iter()
            .map(|e| (e.index, e.term))
            .collect();
        if !chaos {
            assert_eq!(l, 1);
            assert_eq!(leader_log.len(), 11);
        }
        for (id, n) in &c.nodes {
            let log: Vec<(u64, u64)> = n.raft().log().iter().map(|e| (e.index, e.term)).collect();
            assert_eq!(log, leader_log, "node {id} (chaos {chaos})");
            assert_eq!(n.raft().status().commit, leader_log.len() as u64);
        }
    }
}

#[test]
fn term_hints_repair_a_long_conflict_in_few_round_trips() {
    // Follower 2 holds 200 entries of a term the leader never had.
    let mut c = Cluster::new(3, 9, |cfg| cfg.max_batch_bytes = 1 << 20);
    let mut leader_terms = vec![1u64; 5];
    leader_terms.extend(std::iter::repeat_n(3, 100));
    let mut f_terms = vec![1u64; 5];
    f_terms.extend(std::iter::repeat_n(2, 200));
    for (id, terms) in [(1, &leader_terms), (2, &f_terms), (3, &leader_terms)] {
        let disk = Durable {
            hs: HardState {
                term: 3,
                vote: None,
                commit: 5,
            },
            snapshot: None,
            entries: entries_of(terms),
        };
        let cfg = c.node(id).cfg.clone();
        c.nodes.insert(id, Node::new(cfg, disk));
    }
    c.elect(1);
    c.run(3);
    let rejects = c
        .sent
        .iter()
        .filter(|m| {
            m.to == 1
                && m.from == 2
                && matches!(
                    m.body,
                    MessageBody::AppendEntriesResponse { success: false, .. }
                )
        })
        .count();
    assert!(
        rejects <= 2,
        "term hints skip a whole term at once: {rejects} rejections"
    );
    assert_eq!(c.node(2).raft().log(), c.node(1).raft().log());
    c.check();
}

#[test]
fn stale_append_never_truncates_on_length() {
    let mut r = Raft::new(
        config(2, 3, 1),
        InitialState {
            hard_state: HardState {
                term: 2,
                vote: None,
                commit: 0,
            },
            snapshot: None,
            entries: entries_of(&[1, 1, 2, 2, 2]),
        },
    );
    let e3 = entries_of(&[1, 1, 2])[2].clone();
    // A delayed append from the same leader that covers only a prefix of our log.
    r.step(Message {
        from: 1,
        to: 2,
        term: 2,
        body: MessageBody::AppendEntries {
            prev_log_index: 2,
            prev_log_term: 1,
            entries: vec![e3],
            leader_commit: 0,
            read_ctx: 0,
        },
    });
    assert_eq!(
        r.status().last_index,
        5,
        "no truncation on a shorter append"
    );
    let rd = r.ready();
    assert!(rd.entries.is_empty());
    assert!(rd.messages.is_empty(), "an ack waits for the persist");
    let ack = &rd.persisted_messages[0];
    assert!(matches!(
        ack.body,
        MessageBody::AppendEntriesResponse {
            success: true,
            index: 3,
            ..
        }
    ));
    // A real conflict at index 4 does truncate.
    let mut e4 = entries_of(&[1, 1, 2, 3])[3].clone();
    e4.kind = EntryKind::Normal;
    r.step(Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendEntries {
            prev_log_index: 3,
            prev_log_term: 2,
            entries: vec![e4],
            leader_commit: 0,
            read_ctx: 0,
        },
    });
    assert_eq!(r.status().last_index, 4);
    assert_eq!(r.term_at(4), Some(3));
    let rd = r.ready();
    assert_eq!(
        rd.entries.len(),
        1,
        "the conflicting suffix is rewritten from 4"
    );
    assert_eq!(rd.hard_state.map(|h| h.term), Some(3));
}

#[test]
fn replication_survives_loss_duplication_and_reordering() {
    for seed in 1..=6 {
        let mut c = Cluster::new(5, seed, |cfg| {
            cfg.max_inflight = 4;
            cfg.max_batch_bytes = 200;
        });
        let l = c.wait_leader(100);
        for round in 0..30u64 {
            if let Some(l) = c.leader() {
                for k in 0..3 {
                    let _ = c.raft(l).propose(
                        Command::Write {
                            key: json!(k),
                            value: json!(round),
                        }
                        .encode(),
                    );
                    c.process(l);
                }
            }
            c.tick_all();
            c.deliver_chaos(400);
        }
        let _ = l;
        c.net.clear();
        c.run(40);
        c.check();
        assert!(c.converged(), "seed {seed}");
        assert!(c.status(1).commit > 30, "seed {seed}: progress was made");
    }
}

#[test]
fn pipelining_respects_max_inflight() {
    let mut c = Cluster::new(3, 4, |cfg| {
        cfg.max_inflight = 3;
        cfg.max_batch_bytes = 1;
    });
    let l = c.wait_leader(100);
    c.run(2);
    c.sent.clear();
    // Hold every message: the leader may have at most 3 appends out per follower.
    for i in 0..20 {
        let cmd = Command::Write {
            key: json!(i),
            value: json!("x".repeat(10 + i)),
        };
        let _ = c.raft(l).propose(cmd.encode());
        c.process(l);
    }
    let appends = |to| {
        c.sent
            .iter()
            .filter(|m| m.to == to && matches!(m.body, MessageBody::AppendEntries { .. }))
            .count()
    };
    for p in (1..=3).filter(|&p| p != l) {
        assert_eq!(appends(p), 3, "follower {p}");
    }
    // Dropped, the appends are recovered by the stall detector (an election timeout) and the
    // pipeline drains everything.
    c.net.clear();
    c.run(20);
    assert_eq!(c.status(1).commit, c.status(l).last_index);
}

/// A follower answers a heartbeat at once but acknowledges an append only after its flush, so
/// a heartbeat answer overtaking an ack is the normal case (each ReadIndex round sends
/// heartbeats). It must not demote the follower: later proposals stay pipelined, nothing is
/// resent.
#[test]
fn heartbeat_answer_overtaking_an_ack_keeps_the_pipeline() {
    let mut c = Cluster::new(3, 5, |_| {});
    let l = c.wait_leader(100);
    c.run(3);
    let f = (1..=3).find(|&p| p != l).unwrap();
    c.sent.clear();
    c.write(l, 1, 1);
    // A read round: its heartbeats and their answers arrive; append acks are held.
    c.raft(l).read_index(7).unwrap();
    c.process(l);
    let beats = |m: &Message| {
        matches!(
            m.body,
            MessageBody::Heartbeat { .. } | MessageBody::HeartbeatResponse { .. }
        )
    };
    c.deliver_where(beats);
    c.write(l, 2, 2);
    c.write(l, 3, 3);
    c.deliver_where(beats);
    let to_f: Vec<(u64, u64)> = c
        .sent
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries {
                prev_log_index,
                entries,
                ..
            } if m.to == f && m.from == l => Some((*prev_log_index, entries.len() as u64)),
            _ => None,
        })
        .collect();
    assert_eq!(
        to_f.len(),
        3,
        "one append per proposal, pipelined: {to_f:?}"
    );
    for w in to_f.windows(2) {
        assert_eq!(w[1].0, w[0].0 + w[0].1, "no entry resent: {to_f:?}");
    }
    // Released, everything commits.
    c.run(5);
    assert_eq!(c.status(f).commit, c.status(l).last_index);
    c.check();
}

/// A commit advance reaches caught-up followers at once (no tick needed), with at most one
/// extra message per follower.
#[test]
fn followers_learn_a_new_commit_without_waiting_for_a_heartbeat() {
    let mut c = Cluster::new(3, 7, |_| {});
    let l = c.wait_leader(100);
    c.run(3);
    c.sent.clear();
    let w = c.write(l, 1, 1);
    c.deliver_all();
    assert!(c.status(l).commit >= w.index);
    for f in (1..=3).filter(|&p| p != l) {
        assert_eq!(c.status(f).commit, c.status(l).commit, "follower {f}");
        let beats = c
            .sent
            .iter()
            .filter(|m| m.to == f && matches!(m.body, MessageBody::Heartbeat { .. }))
            .count();
        assert_eq!(beats, 1, "follower {f}: one commit heartbeat");
    }
}

/// Appends lost in Replicate (and no later proposal to reveal the gap) are recovered by the
/// tick-driven stall detector.
#[test]
fn lost_pipelined_appends_are_recovered() {
    let mut c = Cluster::new(3, 6, |_| {});
    let l = c.wait_leader(100);
    c.run(3);
    let f = (1..=3).find(|&p| p != l).unwrap();
    c.write(l, 1, 1);
    c.write(l, 2, 2);
    // Lose every append to f now in flight.
    c.net
        .retain(|m| !(m.to == f && matches!(m.body, MessageBody::AppendEntries { .. })));
    c.run(25);
    assert_eq!(c.status(f).last_index, c.status(l).last_index);
    assert_eq!(c.status(f).commit, c.status(l).commit);
    c.check();
}

// ----- ReadIndex ------------------------------------------------------------------------------

/// A new leader must not answer a read before an entry of its own term is committed: its
/// commit index may lag a write the old leader already acknowledged. Returns the read indexes
/// served and the index of the acknowledged write.
fn read_after_leader_change(b: Bugs) -> (Vec<ReadReady>, u64) {
    let mut c = Cluster::new(3, 3, |cfg| cfg.bugs = b.clone());
    c.elect(1);
    c.run(2);
    // Node 1 commits index p; followers do not learn the commit (their heartbeats are lost).
    c.filter = drop_if(|m| m.from == 1 && matches!(m.body, MessageBody::Heartbeat { .. }));
    let p = c.write(1, 1, 42);
    c.deliver_all();
    assert_eq!(c.status(1).commit, p.index, "acknowledged to the client");
    assert!(c.status(2).commit < p.index);
    c.crash(1);
    // Node 2 or 3 wins; hold its no-op back so nothing of its term commits yet.
    c.filter = drop_if(|m| matches!(m.body, MessageBody::AppendEntries { .. }));
    for _ in 0..40 {
        c.tick_all();
        c.deliver_all();
        if c.status(2).role == Role::Leader {
            break;
        }
        if c.status(3).role == Role::Leader {
            break;
        }
    }
    let l = c.leader().unwrap();
    c.raft(l).read_index(5).unwrap();
    c.process(l);
    for _ in 0..4 {
        c.tick_all();
        c.deliver_all();
    }
    let early = c.node(l).reads.clone();
    if !early.is_empty() {
        return (early, p.index);
    }
    // Let the no-op through: it commits, then the read is served at or after index p.
    c.filter = None;
    c.run(4);
    c.check();
    (c.node(l).reads.clone(), p.index)
}

#[test]
fn read_index_waits_for_an_own_term_commit() {
    let (reads, acked) = read_after_leader_change(Bugs::default());
    assert_eq!(reads.len(), 1);
    assert!(
        reads[0].index > acked,
        "read at {} sees the write at {acked}",
        reads[0].index
    );
    // Bug switch: answering at once serves a state without the acknowledged write.
    let (reads, acked) = read_after_leader_change(Bugs {
        read_without_read_index: true,
        ..Bugs::default()
    });
    assert!(
        reads[0].index < acked,
        "the bug serves a stale read: {reads:?}"
    );
}

/// An old leader cut off from the majority must not serve a read: the majority may have
/// elected a new leader and committed newer writes.
fn stale_leader_read(b: Bugs) -> Vec<ReadReady> {
    // Without check-quorum the old leader keeps believing it leads: only ReadIndex stops it.
    let mut c = Cluster::new(5, 17, |cfg| {
        cfg.check_quorum = false;
        cfg.bugs = b.clone();
    });
    let l = c.wait_leader(100);
    c.write(l, 1, 1);
    c.run(3);
    c.isolate(l);
    // The majority moves on and commits a newer write.
    let mut nl = None;
    for _ in 0..100 {
        c.run(1);
        nl = c
            .nodes
            .iter()
            .find(|(&id, n)| id != l && n.raft().status().role == Role::Leader)
            .map(|(&id, _)| id);
        if nl.is_some() {
            break;
        }
    }
    let nl = nl.unwrap();
    let w = c.write(nl, 1, 2);
    c.run(3);
    assert!(c.status(nl).commit >= w.index);
    // A client now asks the old leader (if it still believes it leads).
    if c.status(l).role == Role::Leader {
        c.raft(l).read_index(1).unwrap();
        c.process(l);
        c.run(3);
    }
    c.check();
    c.node(l)
        .reads
        .iter()
        .filter(|r| r.index < w.index)
        .copied()
        .collect()
}

#[test]
fn isolated_old_leader_serves_no_stale_read() {
    assert!(stale_leader_read(Bugs::default()).is_empty());
    let stale = stale_leader_read(Bugs {
        read_without_read_index: true,
        ..Bugs::default()
    });
    assert!(!stale.is_empty(), "the bug switch serves a stale read");
}

#[test]
fn read_index_confirms_leadership_with_a_quorum() {
    let mut c = Cluster::new(5, 2, |_| {});
    let l = c.wait_leader(100);
    c.write(l, 1, 1);
    c.run(2);
    let followers: Vec<NodeId> = (1..=5).filter(|&i| i != l).collect();
    // Only one follower answers: no quorum, no read.
    for &f in &followers[1..] {
        c.cut.insert((f, l));
    }
    c.raft(l).read_index(1).unwrap();
    c.process(l);
    c.deliver_all();
    assert!(c.node(l).reads.is_empty());
    // A second follower answers the next heartbeat: quorum of 3.
    c.cut.remove(&(followers[1], l));
    c.raft(l).read_index(2).unwrap();
    c.process(l);
    c.deliver_all();
    let reads = &c.node(l).reads;
    assert_eq!(reads.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
    assert!(reads.iter().all(|r| r.index == c.status(l).commit));
    // Followers refuse and name the leader.
    let f = followers[0];
    assert_eq!(c.raft(f).read_index(3), Err(NotLeader { leader: Some(l) }));
}

// ----- snapshots ------------------------------------------------------------------------------

/// A follower receiving a snapshot answers every ReadIndex round's heartbeat; those answers
/// must not each resend a chunk (only tick-driven heartbeats do, to recover a lost one).
#[test]
fn read_rounds_resend_no_snapshot_chunks() {
    let mut c = Cluster::new(3, 13, |cfg| cfg.snapshot_chunk_bytes = 64);
    c.set_snapshot_every(10);
    let l = c.wait_leader(100);
    let lag = if l == 3 { 2 } else { 3 };
    c.isolate(lag);
    for i in 0..60 {
        c.write(l, i % 7, i);
        c.deliver_all();
    }
    c.run(2);
    c.heal();
    // Chunks to the lagging follower are lost until it is in Snapshot state.
    c.filter =
        drop_if(move |m| m.to == lag && matches!(m.body, MessageBody::InstallSnapshot { .. }));
    let chunks = |c: &Cluster| {
        c.sent
            .iter()
            .filter(|m| m.to == lag && matches!(m.body, MessageBody::InstallSnapshot { .. }))
            .count()
    };
    c.sent.clear();
    for _ in 0..10 {
        c.run(1);
        if chunks(&c) > 0 {
            break;
        }
    }
    assert!(chunks(&c) > 0, "the transfer started");
    c.sent.clear();
    for id in 0..5 {
        c.raft(l).read_index(id).unwrap();
        c.process(l);
        c.deliver_all();
    }
    assert_eq!(chunks(&c), 0, "read rounds resent snapshot chunks");
    assert_eq!(c.node(l).reads.len(), 5);
    // The tick-driven heartbeat resends the lost chunk; the transfer completes.
    c.filter = None;
    c.run(30);
    assert_eq!(c.node(lag).kv(), c.node(l).kv());
    c.check();
}

fn lagging_follower_gets_snapshot(chaos: bool) {
    let mut c = Cluster::new(3, 13, |cfg| cfg.snapshot_chunk_bytes = 64);
    c.set_snapshot_every(10);
    let l = c.wait_leader(100);
    let lag = if l == 3 { 2 } else { 3 };
    c.isolate(lag);
    for i in 0..60 {
        c.write(l, i % 7, i);
        c.deliver_all();
    }
    c.run(2);
    let st = c.status(l);
    assert!(st.first_index > 40, "leader compacted its log: {st:?}");
    assert!(c.status(lag).last_index < st.first_index);
    c.heal();
    c.sent.clear();
    if chaos {
        for _ in 0..50 {
            c.tick_all();
            c.deliver_chaos(500);
        }
    }
    c.run(30);
    c.check();
    let chunks = c
        .sent
        .iter()
        .filter(|m| m.to == lag && matches!(m.body, MessageBody::InstallSnapshot { .. }))
        .count();
    assert!(chunks > 1, "the snapshot went in chunks: {chunks}");
    assert_eq!(c.node(lag).kv(), c.node(l).kv(), "chaos {chaos}");
    assert_eq!(c.status(lag).commit, c.status(l).commit);
    assert!(
        c.node(lag).disk.snapshot.is_some(),
        "installed snapshot is durable"
    );
    // And the follower keeps replicating after the install.
    c.write(l, 100, 1);
    c.run(3);
    assert_eq!(c.node(lag).kv().read(&json!(100)), Outcome::Ok(json!(1)));
}

#[test]
fn snapshot_install_to_lagging_follower_in_chunks() {
    lagging_follower_gets_snapshot(false);
    lagging_follower_gets_snapshot(true);
}

fn chunk(term: u64, index: u64, offset: u64, len: usize, done: bool) -> Message {
    Message {
        from: 1,
        to: 2,
        term,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index,
                term: 1,
                voters: vec![1, 2, 3],
            },
            offset,
            data: vec![index as u8; len],
            done,
        },
    }
}

/// The index of the snapshot a follower installed while stepping `msgs`, if any.
fn installed(msgs: Vec<Message>) -> Option<u64> {
    let mut r = Raft::new(config(2, 3, 1), InitialState::default());
    let mut got = None;
    for m in msgs {
        r.step(m);
        let rd = r.ready();
        if let Some((meta, data)) = &rd.snapshot {
            assert_eq!(data.len(), 8, "assembled from both chunks");
            got = Some(meta.index);
        }
        r.advance(&rd);
    }
    got
}

#[test]
fn a_delayed_chunk_of_an_older_snapshot_is_ignored() {
    assert_eq!(
        installed(vec![chunk(1, 20, 0, 4, false), chunk(1, 20, 4, 4, true)]),
        Some(20)
    );
    // The first chunk of an older snapshot (still above commit) arrives late, mid-transfer.
    assert_eq!(
        installed(vec![
            chunk(1, 20, 0, 4, false),
            chunk(1, 10, 0, 4, false),
            chunk(1, 20, 4, 4, true),
        ]),
        Some(20)
    );
}

#[test]
fn a_term_change_drops_a_partial_snapshot() {
    // A new leader's transfer must start at offset 0, even of the same snapshot.
    assert_eq!(
        installed(vec![chunk(1, 20, 0, 4, false), chunk(2, 20, 4, 4, true)]),
        None
    );
    assert_eq!(
        installed(vec![
            chunk(1, 20, 0, 4, false),
            chunk(2, 20, 0, 4, false),
            chunk(2, 20, 4, 4, true),
        ]),
        Some(20)
    );
}

/// A recovered log with a gap is a storage bug: never silently accepted (debug builds panic;
/// release builds report it and keep only the contiguous prefix).
#[test]
fn a_log_with_a_gap_is_refused_clearly() {
    let mut entries = entries_of(&[1, 1, 1, 1]);
    entries.remove(2);
    let state = InitialState {
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 0,
        },
        snapshot: None,
        entries,
    };
    let err = Raft::try_new(config(2, 3, 1), state.clone())
        .err()
        .expect("a gap is refused");
    assert!(
        err.contains("not contiguous") && err.contains("entry 4 follows 2"),
        "{err}"
    );
    let panicked = std::panic::catch_unwind(|| Raft::new(config(2, 3, 1), state).status());
    assert!(
        panicked.is_err(),
        "Raft::new panics on a gap, never cuts the log"
    );
}

#[test]
fn restart_from_snapshot_and_log() {
    let mut c = Cluster::new(3, 19, |_| {});
    c.set_snapshot_every(5);
    let l = c.wait_leader(100);
    for i in 0..23 {
        c.write(l, i % 4, i);
        c.deliver_all();
    }
    c.run(3);
    let before = c.node(2).kv().clone();
    c.crash(2);
    c.restart(2);
    let st = c.status(2);
    assert!(st.first_index > 1, "restarted from a snapshot");
    // Alone, it replays its log up to its durable commit index.
    let durable = &c.node(2).disk;
    let replay_to = durable.hs.commit.max(st.first_index - 1);
    assert_eq!(st.applied, replay_to);
    assert_eq!(st.last_index, durable.entries.last().map_or(0, |e| e.index));
    // The leader's next message tells it the rest of the commit: the same state as before.
    c.run(3);
    assert_eq!(
        c.node(2).kv(),
        &before,
        "snapshot + log replay rebuilt the state"
    );
    c.check();
}

// ----- durability -----------------------------------------------------------------------------

/// The commit index rides on the next flush instead of costing its own, so a node restarted
/// alone may replay less than it had applied; it serves nothing from that older state (a read
/// needs a leader that committed an entry of its own term, above every index ever committed),
/// and the durable commit index never goes back.
#[test]
fn restarted_node_never_serves_an_older_state() {
    let mut c = Cluster::new(3, 23, |_| {});
    let l = c.wait_leader(100);
    for i in 0..10 {
        c.write(l, 1, i);
    }
    c.run(3);
    let durable_commit: BTreeMap<NodeId, u64> = c
        .nodes
        .iter()
        .map(|(&id, n)| (id, n.disk.hs.commit))
        .collect();
    c.raft(l).read_index(1).unwrap();
    c.process(l);
    c.deliver_all();
    let read_at = c.node(l).reads[0].index;
    // Everyone crashes. Each node, restarted alone (no peer to talk to), replays its durable
    // log up to its durable commit index, and cannot serve a read.
    for id in 1..=3 {
        c.crash(id);
    }
    for id in 1..=3 {
        c.restart(id);
        c.isolate(id);
        let st = c.status(id);
        assert!(st.applied >= durable_commit[&id], "node {id}");
        for _ in 0..40 {
            c.tick_all();
            c.deliver_all();
        }
        assert_ne!(c.status(id).role, Role::Leader, "node {id} leads alone");
        assert!(c.raft(id).read_index(10 + id).is_err());
    }
    // Reads after the restart are served at or after the index served before, and see the
    // last write.
    c.heal();
    let l = c.wait_leader(100);
    c.raft(l).read_index(2).unwrap();
    c.process(l);
    c.run(3);
    let r = c.node(l).reads.iter().find(|r| r.id == 2).copied().unwrap();
    assert!(r.index >= read_at);
    assert_eq!(c.node(l).kv().read(&json!(1)), Outcome::Ok(json!(9)));
    // No node's durable commit index went back.
    for (id, n) in &c.nodes {
        assert!(n.disk.hs.commit >= durable_commit[id], "node {id}");
    }
    c.check();
}

#[test]
fn acks_and_votes_leave_only_after_the_persist() {
    let mut r = Raft::new(config(2, 3, 1), InitialState::default());
    r.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: 0,
            last_log_term: 0,
        },
    });
    let rd = r.ready();
    assert!(rd.messages.is_empty());
    assert_eq!(rd.hard_state.unwrap().vote, Some(1));
    assert!(matches!(
        rd.persisted_messages[0].body,
        MessageBody::RequestVoteResponse { granted: true, .. }
    ));
    r.advance(&rd);
    let entry = Entry {
        term: 1,
        index: 1,
        kind: EntryKind::Noop,
        data: vec![],
    };
    r.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![entry],
            leader_commit: 1,
            read_ctx: 0,
        },
    });
    let rd = r.ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 1);
    assert!(rd.committed.is_empty(), "not applied before it is durable");
    assert_eq!(
        rd.hard_state.map(|h| h.commit),
        None,
        "commit waits for durability"
    );
    r.advance(&rd);
    let rd = r.ready();
    assert_eq!(rd.committed.len(), 1);
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(1));
}

#[test]
fn leader_counts_its_own_entry_toward_commit_only_after_advance() {
    let mut c = Cluster::new(3, 2, |_| {});
    c.cut.insert((1, 3));
    c.elect(1);
    c.run(2);
    let p = c.write(1, 1, 1);
    c.deliver_all();
    // Take the leader's next Ready by hand: it has sent the append but not persisted it.
    let cmd = Command::Write {
        key: json!(1),
        value: json!(2),
    };
    let q = c.raft(1).propose(cmd.encode()).unwrap();
    let rd = c.raft(1).ready();
    assert_eq!(rd.entries.last().map(|e| e.index), Some(q.index));
    for m in rd.messages.iter().filter(|m| m.to == 2).cloned() {
        c.raft(2).step(m);
    }
    let rd2 = c.raft(2).ready();
    c.raft(2).advance(&rd2);
    for m in rd2.persisted_messages.into_iter().filter(|m| m.to == 1) {
        c.raft(1).step(m);
    }
    // Node 2 holds the entry; node 1's copy is not durable: one durable copy of three.
    assert!(
        c.status(1).commit < q.index,
        "commit counted a non-durable entry"
    );
    assert!(c.status(1).commit >= p.index);
    c.raft(1).advance(&rd);
    assert_eq!(c.status(1).commit, q.index, "durable now: two of three");
}

#[test]
fn leader_counts_its_own_entries_only_once_durable() {
    let mut r = Raft::new(config(1, 1, 1), InitialState::default());
    r.campaign();
    let rd = r.ready();
    assert_eq!(r.status().role, Role::Leader);
    assert_eq!(r.status().commit, 0, "no-op not yet durable");
    assert_eq!(rd.entries.len(), 1);
    r.advance(&rd);
    assert_eq!(r.status().commit, 1);
}

/// Granting a vote and crashing before it is durable lets the node vote twice in one term.
fn double_vote(b: Bugs) -> Vec<String> {
    let mut c = Cluster::new(3, 31, |cfg| {
        cfg.pre_vote = false;
        cfg.check_quorum = false;
        cfg.bugs = b.clone();
    });
    // Node 1 asks node 2 (node 3 unreachable) and wins term 1; its appends are lost.
    c.isolate(3);
    c.filter = drop_if(|m| matches!(m.body, MessageBody::AppendEntries { .. }));
    c.elect(1);
    let t = c.status(1).term;
    // Node 2 crashes right after granting, and restarts.
    c.crash(2);
    c.restart(2);
    c.heal();
    c.isolate(1);
    // Node 3 runs for the same term and asks node 2.
    assert_eq!(c.status(3).term + 1, t);
    c.raft(3).campaign();
    c.process(3);
    c.deliver_all();
    c.violations.clone()
}

#[test]
fn a_vote_is_durable_before_it_is_granted() {
    assert!(double_vote(Bugs::default()).is_empty());
    let v = double_vote(Bugs {
        vote_without_persist: true,
        ..Bugs::default()
    });
    assert!(
        v.iter().any(|s| s.starts_with("two leaders in term")),
        "the bug switch must elect two leaders in one term: {v:?}"
    );
}

// ----- randomized runs ------------------------------------------------------------------------

impl Cluster {
    fn max_commit(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.raft().status().commit)
            .max()
            .unwrap_or(0)
    }

    /// Committed prefixes agree (log matching on what every node holds at or below its
    /// commit index, compared where two nodes both hold the entry).
    fn check_logs(&mut self) {
        let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
        for (id, n) in &self.nodes {
            let commit = n.raft().status().commit;
            for e in n.raft().log().iter().filter(|e| e.index <= commit) {
                match seen.get(&e.index) {
                    Some(&t) if t != e.term => self.violations.push(format!(
                        "node {id} holds committed {}@{} where another holds {}@{t}",
                        e.index, e.term, e.index
                    )),
                    _ => {
                        seen.insert(e.index, e.term);
                    }
                }
            }
        }
    }
}

/// One randomized run: chaos network, partitions, crashes (also between sending and persisting),
/// restarts, proposals, reads and snapshots; invariants after every step. Returns violations.
fn random_run(seed: u64, steps: usize, b: Bugs) -> Vec<String> {
    let mut c = Cluster::new(5, seed, |cfg| {
        cfg.max_inflight = 8;
        cfg.max_batch_bytes = 300;
        cfg.snapshot_chunk_bytes = 50;
        cfg.bugs = b.clone();
    });
    c.set_snapshot_every(7);
    let mut rng = Rng::new(seed);
    let mut read_id = 0;
    for step in 0..steps {
        random_step(&mut c, &mut rng, step, &mut read_id);
        if c.crash_mid_turn.is_some_and(|id| !c.node(id).up) {
            c.crash_mid_turn = None;
        }
        c.deliver_chaos(10);
        c.check_logs();
        if !c.violations.is_empty() {
            return c.violations.clone();
        }
    }
    heal_and_converge(&mut c, seed)
}

/// One random action of a randomized run.
fn random_step(c: &mut Cluster, rng: &mut Rng, step: usize, read_id: &mut u64) {
    match rng.below(100) {
        0..=39 => c.tick_all(),
        40..=59 => {
            if let Some(l) = c.leader() {
                let cmd = Command::Write {
                    key: json!(rng.below(4)),
                    value: json!(step),
                };
                let _ = c.raft(l).propose(cmd.encode());
                c.process(l);
            }
        }
        60..=69 => {
            // Any node that believes it leads, stale leaders included.
            let leaders: Vec<NodeId> = c
                .nodes
                .iter()
                .filter(|(_, n)| n.up && n.raft().status().role == Role::Leader)
                .map(|(&i, _)| i)
                .collect();
            if !leaders.is_empty() {
                let id = leaders[rng.below(leaders.len() as u64) as usize];
                *read_id += 1;
                let floor = c.max_commit();
                c.read_floor.insert((id, *read_id), floor);
                let _ = c.raft(id).read_index(*read_id);
                c.process(id);
            }
        }
        70..=73 => {
            let id = 1 + rng.below(5);
            if c.nodes.values().filter(|n| !n.up).count() < 2 {
                if rng.chance(0.5) {
                    c.crash(id);
                } else {
                    c.crash_mid_turn = Some(id);
                }
            }
        }
        74..=79 => {
            let down = c.nodes.iter().find(|(_, n)| !n.up).map(|(&i, _)| i);
            if let Some(id) = down {
                c.restart(id);
            }
        }
        80..=82 => {
            let a = 1 + rng.below(5);
            let b = 1 + rng.below(5);
            c.cut.insert((a, b));
            if rng.chance(0.5) {
                c.cut.insert((b, a));
            }
        }
        83..=85 => c.heal(),
        _ => c.deliver_chaos(30),
    }
}

/// Heals everything: the cluster must converge and serve again. Returns the violations.
fn heal_and_converge(c: &mut Cluster, seed: u64) -> Vec<String> {
    c.heal();
    c.crash_mid_turn = None;
    for id in 1..=5 {
        if !c.node(id).up {
            c.restart(id);
        }
    }
    c.net.clear();
    c.run(60);
    c.check_logs();
    if std::env::var("RAFTKV_CORE_VERBOSE").is_ok() {
        eprintln!(
            "seed {seed}: commit {} terms {} first_index {:?} reads {}",
            c.max_commit(),
            c.leaders.len(),
            c.nodes
                .values()
                .map(|n| n.raft().status().first_index)
                .collect::<Vec<_>>(),
            c.nodes.values().map(|n| n.reads.len()).sum::<usize>()
        );
    }
    let mut v = c.violations.clone();
    if v.is_empty() && !c.converged() {
        v.push(format!("seed {seed}: no convergence after healing"));
    }
    v
}

fn seeds() -> u64 {
    std::env::var("RAFTKV_CORE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

#[test]
fn randomized_runs_keep_every_invariant() {
    for seed in 1..=seeds() {
        let v = random_run(seed, 1500, Bugs::default());
        assert!(v.is_empty(), "seed {seed}: {v:?}");
    }
}

#[test]
fn garbage_messages_never_panic() {
    let mut c = Cluster::new(3, 29, |_| {});
    let l = c.wait_leader(100);
    c.write(l, 1, 1);
    c.run(2);
    let mut rng = Rng::new(99);
    let mut pick = |v: &[u64]| v[rng.below(v.len() as u64) as usize];
    let vals = [0, 1, 2, 3, 50, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    for i in 0..3000 {
        let (from, to) = (1 + i % 3, 1 + (i + 1) % 3);
        let v = |p: &mut dyn FnMut(&[u64]) -> u64| p(&vals);
        let body = match i % 8 {
            0 => MessageBody::AppendEntriesResponse {
                success: i % 16 == 0,
                index: v(&mut pick),
                hint_term: Some(v(&mut pick)),
                rejected: v(&mut pick),
                read_ctx: v(&mut pick),
            },
            1 => MessageBody::InstallSnapshotResponse {
                offset: v(&mut pick),
                done: i % 16 == 1,
                snapshot_index: v(&mut pick),
            },
            2 => MessageBody::Heartbeat {
                commit: v(&mut pick),
                read_ctx: v(&mut pick),
            },
            3 => MessageBody::RequestVote {
                pre_vote: i % 16 == 3,
                last_log_index: v(&mut pick),
                last_log_term: v(&mut pick),
            },
            4 => MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index: v(&mut pick),
                    term: v(&mut pick),
                    voters: vec![],
                },
                offset: v(&mut pick),
                data: KvStore::new().snapshot(),
                done: i % 16 == 4,
            },
            5 => MessageBody::AppendEntries {
                prev_log_index: v(&mut pick),
                prev_log_term: v(&mut pick),
                entries: vec![Entry {
                    term: v(&mut pick),
                    index: v(&mut pick),
                    kind: EntryKind::Noop,
                    data: vec![],
                }],
                leader_commit: v(&mut pick),
                read_ctx: 0,
            },
            6 => MessageBody::HeartbeatResponse {
                read_ctx: v(&mut pick),
            },
            _ => MessageBody::RequestVoteResponse {
                pre_vote: i % 16 == 7,
                granted: true,
            },
        };
        // Extreme indexes and terms, with the current term or an extreme one. Raft does not
        // defend against a lying peer, so only this is checked: nothing panics or overflows.
        let term = if i % 5 == 0 {
            v(&mut pick)
        } else {
            c.status(to).term
        };
        c.raft(to).step(Message {
            from,
            to,
            term,
            body,
        });
        c.process(to);
    }
    c.net.clear();
    c.run(60);
}
