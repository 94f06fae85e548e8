//! The cluster state the checker explores, and the operations the actions (`super::actions`)
//! are made of.
//!
//! Owns: the per-node state (the shared shell with its core, state machine and client operations
//! waiting at that node; the durable state), the network (a multiset of messages in flight), the
//! client history, the budgets left, and the transition-checked properties (commit never goes
//! back, applied entries stay durable, one entry per applied or committed index, one vote per
//! term, linearizability), recorded in `Cluster::violation`.
//! Must never: reach into the core other than through its public API and the shared shell, or
//! let an action depend on anything but the state it starts from (the checker replays paths).
//! Nodes are shared between states (`Arc`) and copied only when an action changes them.

use super::actions::Action;
use super::io::{self, Durable, NodeIo, NodeShell, Unacked};
use super::restart::Down;
use super::{Budgets, Settings};
use crate::check::{self, EventKind, Op};
use crate::raft::{Config, HardState, Message, MessageBody, NodeId, Raft, Recovery, Role};
use crate::shell::rejoin::Start;
use crate::shell::{Answer, ShellSettings};
use std::sync::Arc;

/// One node: the shared shell around its core (volatile) and its durable state.
#[derive(Clone)]
pub struct Node {
    /// The core, the register and the client operations waiting here (by op id).
    pub shell: NodeShell,
    pub durable: Durable,
    /// The last persist, while a crash may still lose it.
    pub unacked: Option<Unacked>,
    /// Highest index this node ever applied, in any of its lives.
    pub served: u64,
}

impl Node {
    pub fn raft(&self) -> &Raft {
        self.shell.raft()
    }
}

/// One client event: op id, what happened, the operation and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientEvent {
    pub op: u8,
    pub kind: EventKind,
    pub f: Op,
    pub value: Option<u8>,
}

/// A property broken by a transition (or found broken in a state), with what broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: &'static str,
    pub detail: String,
}

#[derive(Clone)]
pub struct Cluster {
    /// Node `i + 1` at index `i`, shared with the states it did not change in.
    pub nodes: Vec<Arc<Node>>,
    /// Messages in flight, a multiset (order is irrelevant; duplicates are copies).
    pub network: Vec<Message>,
    pub history: Vec<ClientEvent>,
    /// What this path may still spend.
    pub budgets: Budgets,
    /// Every (term, leader) ever seen.
    pub leaders: Vec<(u64, NodeId)>,
    /// Every vote granted: (term, voter, candidate), sorted.
    pub votes: Vec<(u64, NodeId, NodeId)>,
    /// The committed entries, index 1 first, as the commit indexes of all nodes showed: (entry
    /// term, term of the node that first showed it committed; at least the term that committed
    /// it).
    pub committed: Vec<(u64, u64)>,
    pub violation: Option<Violation>,
}

pub const COMMIT_NEVER_GOES_BACK: &str = "commit never goes back";
pub const APPLIED_STAYS_DURABLE: &str = "applied entries stay durable";
pub const STATE_MACHINE_SAFETY: &str = "state machine safety";
pub const LINEARIZABLE: &str = "linearizable";
pub const ONE_VOTE_PER_TERM: &str = "one vote per term";
pub const RECOVERY: &str = "recovery";

/// The core configuration every model node runs: the node's defaults with small timers, one
/// entry per append and a small window, so flow control is exercised in few steps.
pub fn core_config(id: NodeId, settings: &Settings) -> Config {
    let voters = (1..=settings.nodes as NodeId).collect();
    let mut c = Config::new(id, voters, 1);
    c.election_ticks = ELECTION_TICKS;
    c.heartbeat_ticks = 1;
    c.max_batch_bytes = 1;
    c.max_inflight = 2;
    c.pre_vote = settings.pre_vote;
    c.check_quorum = settings.check_quorum;
    c.bugs = settings.bugs.clone();
    c
}

/// The shell settings every model node runs: no snapshots (the model explores no
/// InstallSnapshot), and the shell's bug switches of the search.
pub fn shell_settings(settings: &Settings) -> ShellSettings {
    let mut s = ShellSettings::new(0);
    s.bugs = settings.shell_bugs;
    s
}

/// A node's shell booted on `durable`, introduced to its peers when the settings do that.
pub(super) fn boot_shell(
    id: NodeId,
    durable: &Durable,
    settings: &Settings,
) -> Result<io::NodeShell, String> {
    let mut shell = io::boot(core_config(id, settings), durable, shell_settings(settings))?;
    if super::merge::introduces_peers(settings) {
        super::merge::introduce_peers(&mut shell, settings.nodes);
    }
    Ok(shell)
}

/// Election timeout base in ticks (the actual one is in [base, 2 * base)).
const ELECTION_TICKS: u32 = 2;

impl Cluster {
    pub fn new(settings: &Settings) -> Result<Cluster, String> {
        let mut nodes = Vec::new();
        for id in 1..=settings.nodes as NodeId {
            // A directory that holds an ordinary hard state of term 0 in both copies: the model
            // starts every node as a member of a new cluster at incarnation 0.
            let mut durable = Durable::holding(HardState::default());
            let start = durable.decide_start(settings.rejoin_bugs, |floor| floor + 1);
            debug_assert_eq!(start, Start::AsIs, "a first boot starts on its directory");
            let shell = boot_shell(id, &durable, settings)?;
            nodes.push(Arc::new(Node {
                shell,
                durable,
                unacked: None,
                served: 0,
            }));
        }
        Ok(Cluster {
            nodes,
            network: Vec::new(),
            history: Vec::new(),
            budgets: settings.budgets,
            leaders: Vec::new(),
            votes: Vec::new(),
            committed: Vec::new(),
            violation: None,
        })
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        Arc::make_mut(&mut self.nodes[(id - 1) as usize])
    }

    /// The node ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> {
        1..=self.nodes.len() as NodeId
    }

    /// The actions enabled in this state: the rows of `ACTIONS` in order, each while its
    /// budget allows.
    pub fn actions(&self, settings: &Settings, out: &mut Vec<Action>) {
        if self.violation.is_some() {
            return;
        }
        for kind in &super::actions::ACTIONS {
            if kind.budget.is_none_or(|b| self.budgets.allows(b)) {
                (kind.offer)(self, settings, out);
            }
        }
    }

    /// A crash of `id` can lose its last persist only while none of the acknowledgements
    /// waiting for it has been delivered, dropped or copied (`touch_message` forgets such a
    /// persist).
    pub fn can_lose_persist(&self, id: NodeId) -> bool {
        let Some(unacked) = &self.node(id).unacked else {
            return false;
        };
        unacked.acks.iter().all(|a| {
            let waiting = unacked.acks.iter().filter(|b| *b == a).count();
            self.network.iter().filter(|m| *m == a).count() == waiting
        })
    }

    /// The state after `action`: its row's budget spent, the action performed, the records
    /// brought up to date.
    pub fn next(&self, action: &Action, settings: &Settings) -> Cluster {
        let mut s = self.clone();
        let kind = action.kind();
        if let Some(b) = kind.budget {
            s.budgets.spend(b);
        }
        (kind.apply)(&mut s, action, settings);
        s.after_step();
        s
    }

    /// `m` reaches its receiver.
    pub fn deliver(&mut self, m: &Message) {
        self.take_message(m);
        let m = m.clone();
        self.turn(m.to, |raft| raft.step(m));
    }

    /// A second copy of `m` goes in flight.
    pub fn duplicate(&mut self, m: &Message) {
        self.touch_message(m);
        self.network.push(m.clone());
    }

    /// Node `id`'s next timer fires. With atomic pre-vote rounds (`Settings::atomic_pre_vote`)
    /// a pre-vote it starts completes in this action: with `answered`, every peer takes its
    /// request at once and the node then takes every pre-vote answer; without, the requests
    /// are lost. Either way no pre-vote message stays in flight.
    pub fn fire_timer(&mut self, id: NodeId, settings: &Settings, answered: bool) {
        let sent = self.turn(id, fire_timer);
        if !settings.atomic_pre_vote {
            return;
        }
        let mut answers = Vec::new();
        for request in sent.into_iter().filter(is_pre_vote) {
            self.take_message(&request);
            if answered {
                let to = request.to;
                let replies = self.turn(to, |raft| raft.step(request));
                answers.extend(replies.into_iter().filter(|m| m.to == id && is_pre_vote(m)));
            }
        }
        for answer in answers {
            self.deliver(&answer);
        }
    }

    /// Removes one copy of `m` from the network. Also for a duplicate: a persist whose
    /// acknowledgement was delivered, dropped or copied can no longer be lost by a crash.
    fn touch_message(&mut self, m: &Message) {
        for node in &mut self.nodes {
            if node.unacked.as_ref().is_some_and(|u| u.acks.contains(m)) {
                Arc::make_mut(node).unacked = None;
            }
        }
    }

    /// Removes one copy of `m` from the network (delivered or dropped).
    pub fn take_message(&mut self, m: &Message) {
        self.touch_message(m);
        if let Some(i) = self.network.iter().position(|x| x == m) {
            self.network.swap_remove(i);
        }
    }

    /// Feeds one event to node `id`, then lets its shell perform every `Ready` and routes the
    /// results; returns the messages it sent (now in flight).
    pub(super) fn turn(&mut self, id: NodeId, event: impl FnOnce(&mut Raft)) -> Vec<Message> {
        let idx = (id - 1) as usize;
        let node = self.node_mut(id);
        let commit_before = node.raft().status().commit;
        let recovery_before = node.raft().status().recovery;
        event(node.shell.raft_mut());
        let mut io = NodeIo::new(&mut node.durable, &mut node.unacked);
        let driven = node.shell.drive(&mut io);
        let (sent, applied, answers) = (io.sent, io.applied, io.answers);
        if let Err(e) = driven {
            self.violate(RECOVERY, format!("n{id}'s shell failed: {e}"));
        }
        let recovery = self.nodes[idx].raft().status().recovery;
        if recovery_before == Recovery::CatchingUp && recovery == Recovery::Ordinary {
            if let Some(detail) = super::props::caught_up_lacking(self, id) {
                self.violate(super::props::CAUGHT_UP, detail);
            }
        }
        if recovery_before == Recovery::Probing && recovery != Recovery::Probing {
            if let Some(detail) = super::props::probe_round_forgets_a_vote(self, id) {
                self.violate(super::props::PROBE_ROUND_KEEPS_VOTES, detail);
            }
        }
        for m in &sent {
            self.record_vote(m);
            if let Some((rule, detail)) = super::props::rejoin_rule_broken(recovery, m) {
                self.violate(rule, detail);
            }
        }
        self.network.extend(sent.iter().cloned());
        let commit_after = self.nodes[idx].raft().status().commit;
        if commit_after < commit_before {
            self.violate(
                COMMIT_NEVER_GOES_BACK,
                format!("n{id} commit went from {commit_before} to {commit_after}"),
            );
        }
        for e in applied {
            let node = self.node_mut(id);
            node.served = node.served.max(e.index);
            self.record_committed(idx, e.index, e.term);
        }
        for (op, answer) in answers {
            self.answered(op, answer);
        }
        sent
    }

    /// Records a vote grant as it leaves; a second candidate granted in one term breaks
    /// "one vote per term" (the step before two leaders of one term).
    fn record_vote(&mut self, m: &Message) {
        let MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        } = m.body
        else {
            return;
        };
        if let Some(&(_, _, other)) = self
            .votes
            .iter()
            .find(|&&(t, voter, c)| t == m.term && voter == m.from && c != m.to)
        {
            self.violate(
                ONE_VOTE_PER_TERM,
                format!(
                    "n{} voted for n{other} and n{} in term {}",
                    m.from, m.to, m.term
                ),
            );
        }
        let vote = (m.term, m.from, m.to);
        if !self.votes.contains(&vote) {
            self.votes.push(vote);
            self.votes.sort_unstable();
        }
    }

    /// Records the shell's answer to client op `op` in the history. An outcome unknown gets no
    /// completion (the model takes no snapshots, so none is expected).
    fn answered(&mut self, op: u8, answer: Answer<Option<u8>>) {
        let f = self
            .history
            .iter()
            .find(|e| e.op == op && e.kind == EventKind::Invoke)
            .map_or(Op::Write, |e| e.f);
        match answer {
            // Writes carry their op id as the value.
            Answer::Applied(_) => self.complete(op, EventKind::Ok, f, Some(op)),
            Answer::Read(value) => self.complete(op, EventKind::Ok, f, value),
            Answer::NotDone(_) => {
                let value = (f == Op::Write).then_some(op);
                self.complete(op, EventKind::Fail, f, value)
            }
            Answer::Unknown(_) => {}
        }
    }

    fn record_committed(&mut self, idx: usize, index: u64, term: u64) {
        let at = (index - 1) as usize;
        let observer_term = self.nodes[idx].raft().status().term;
        match self.committed.get(at) {
            Some(&(t, _)) if t != term => {
                let id = idx + 1;
                self.violate(
                    STATE_MACHINE_SAFETY,
                    format!("n{id} has entry {index}/{term} committed, another node {index}/{t}"),
                );
            }
            Some(_) => {}
            None if at == self.committed.len() => self.committed.push((term, observer_term)),
            None => debug_assert!(false, "committed entries are recorded in order"),
        }
    }

    /// Node `id` crashes and restarts from its durable state; with `lose_persist`, from the one
    /// before its last persist (`restart` says how a start goes).
    pub fn crash(&mut self, id: NodeId, lose_persist: bool, settings: &Settings) {
        let down = if lose_persist {
            Down::LosingPersist
        } else {
            Down::Crash
        };
        self.restart(id, down, settings);
    }

    /// True when no node is rejoining (a wipe is offered only then).
    pub fn all_ordinary(&self) -> bool {
        self.all_ordinary_but(None)
    }

    /// True when no node other than `except` is rejoining.
    pub fn all_ordinary_but(&self, except: Option<NodeId>) -> bool {
        self.nodes.iter().all(|n| {
            let st = n.raft().status();
            Some(st.id) == except || st.recovery == Recovery::Ordinary
        })
    }

    /// Node `id` loses its directory: it restarts empty, probing, as an incarnation above every
    /// one the cluster has used, and its state machine starts over (what it applied is gone
    /// with the disk, so the applied-entries check starts over too).
    pub fn wipe(&mut self, id: NodeId, settings: &Settings) {
        self.node_mut(id).durable = Durable::default();
        self.restart(id, Down::Crash, settings);
    }

    /// A restarted node still holds every entry it applied in any earlier life. Its commit index
    /// may be lower than what it applied: the shell lets a change of the commit index alone ride
    /// on the next flush, since the commit can be learnt again and a restarted node serves
    /// nothing from the older state (linearizability checks that).
    pub(super) fn check_applied_stay_durable(&mut self, idx: usize) {
        let node = &self.nodes[idx];
        let id = idx + 1;
        for index in 1..=node.served {
            let held = node.raft().term_at(index);
            let known = self.committed.get((index - 1) as usize).map(|c| c.0);
            if held.is_none() || held != known {
                let detail = format!(
                    "n{id} restarted holding {index}/{held:?} after applying {index}/{known:?}"
                );
                self.violate(APPLIED_STAYS_DURABLE, detail);
                return;
            }
        }
    }

    /// A client writes the next value at `id`.
    pub fn write(&mut self, id: NodeId) {
        let op = self.next_op();
        if self.node_mut(id).shell.propose(vec![op], op).is_err() {
            return;
        }
        self.history.push(ClientEvent {
            op,
            kind: EventKind::Invoke,
            f: Op::Write,
            value: Some(op),
        });
        self.turn(id, |_| {});
    }

    /// A client reads at `id`.
    pub fn read(&mut self, id: NodeId) {
        let op = self.next_op();
        if self.node_mut(id).shell.read((), op).is_err() {
            return;
        }
        self.history.push(ClientEvent {
            op,
            kind: EventKind::Invoke,
            f: Op::Read,
            value: None,
        });
        self.turn(id, |_| {});
    }

    /// Op ids start at 1 and follow the invocations.
    fn next_op(&self) -> u8 {
        1 + self
            .history
            .iter()
            .filter(|e| e.kind == EventKind::Invoke)
            .count() as u8
    }

    fn complete(&mut self, op: u8, kind: EventKind, f: Op, value: Option<u8>) {
        self.history.push(ClientEvent { op, kind, f, value });
        if let Some(detail) = linearizability_violation(&self.history) {
            self.violate(LINEARIZABLE, detail);
        }
    }

    pub(super) fn violate(&mut self, property: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { property, detail });
        }
    }

    /// Bookkeeping after every action: leaders seen, entries the commit indexes cover.
    fn after_step(&mut self) {
        for i in 0..self.nodes.len() {
            let st = self.nodes[i].raft().status();
            if st.role == Role::Leader && !self.leaders.contains(&(st.term, st.id)) {
                self.leaders.push((st.term, st.id));
                self.leaders.sort_unstable();
            }
            for index in self.committed.len() as u64 + 1..=st.commit {
                let Some(term) = self.nodes[i].raft().term_at(index) else {
                    break;
                };
                self.record_committed(i, index, term);
            }
            for index in 1..=st.commit.min(self.committed.len() as u64) {
                let term = self.nodes[i].raft().term_at(index);
                let known = self.committed[(index - 1) as usize].0;
                if term.is_some_and(|t| t != known) {
                    self.violate(
                        STATE_MACHINE_SAFETY,
                        format!(
                            "n{} commit covers {index}/{term:?}, committed is {index}/{known}",
                            st.id
                        ),
                    );
                }
            }
        }
    }
}

/// A pre-vote request or answer.
fn is_pre_vote(m: &Message) -> bool {
    matches!(
        m.body,
        MessageBody::RequestVote { pre_vote: true, .. }
            | MessageBody::RequestVoteResponse { pre_vote: true, .. }
    )
}

/// A leader's timer is its heartbeat (one tick, which may also end its term by check-quorum);
/// anyone else's is the election timeout: tick until the core starts an election.
fn fire_timer(raft: &mut Raft) {
    if raft.status().role == Role::Leader {
        raft.tick();
        return;
    }
    let before = raft.status();
    for _ in 0..2 * ELECTION_TICKS {
        raft.tick();
        let now = raft.status();
        if now.role != before.role || now.term != before.term || raft.has_ready() {
            return;
        }
    }
    debug_assert!(false, "an election timeout elapsed without an election");
}

/// Checks the client history with the project's checker; the detail of a violation if any.
fn linearizability_violation(history: &[ClientEvent]) -> Option<String> {
    let mut h = check::History::new();
    for (time, e) in history.iter().enumerate() {
        let value = match e.value {
            Some(v) => serde_json::Value::from(v),
            None => serde_json::Value::Null,
        };
        h.push(time as u64, e.op as u64, e.kind, e.f, "k", value);
    }
    let opts = check::Options {
        threads: 1,
        ..check::Options::default()
    };
    let report = check::check(&h.events, &opts);
    match report.verdict {
        check::Verdict::NotLinearizable => Some(format!(
            "history not linearizable: {}",
            h.events
                .iter()
                .map(|e| e.to_json_line())
                .collect::<Vec<_>>()
                .join(" ")
        )),
        _ => None,
    }
}
