//! A hash of a core's protocol state for state-space search (the model checker).
//!
//! Owns: the projection of [`Raft`] that decides its future behaviour, hashed with node ids
//! passed through a renaming so that a checker can identify states equal up to a permutation
//! of node ids.
//! Must never: change the core, or feed a field that only measures time or randomness into the
//! hash: the absolute tick count (ages relative to it are hashed instead), the random source and
//! the randomized election timeout drawn from it, and the configuration (fixed for a run). Those
//! only decide *when* a timer fires, which a checker abstracts as "this node's timer fires".
//! The outputs drained by `ready` are hashed too (they are empty between two checker steps).

use super::{IncomingSnapshot, Raft, ReadRound};
use crate::raft::progress::{Progress, State};
use crate::raft::{Entry, EntryKind, HardState, Message, NodeId, Role};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

impl Raft {
    /// Feeds the protocol state into `h`, every node id mapped through `rename`. Two cores with
    /// the same hash under renamings that match behave the same, up to those renamings and up
    /// to when their timers fire.
    pub fn hash_state<H: Hasher>(&self, h: &mut H, rename: &dyn Fn(NodeId) -> NodeId) {
        let ids = |v: Option<NodeId>| v.map(rename);
        rename(self.cfg.id).hash(h);
        (self.term, ids(self.vote), self.commit, self.applied).hash(h);
        (role_code(self.role), ids(self.leader)).hash(h);
        hash_log(self, h);
        (self.election_elapsed, self.heartbeat_elapsed).hash(h);
        let mut votes: Vec<(NodeId, bool)> =
            self.votes.iter().map(|(&n, &g)| (rename(n), g)).collect();
        votes.sort_unstable();
        votes.hash(h);
        // Sorted by renamed id, then by content, so ids renamed alike (even all to one value)
        // give one order whatever the original ids were.
        let mut progress: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .map(|(&n, p)| {
                let mut ph = DefaultHasher::new();
                hash_progress(p, &mut ph);
                (rename(n), ph.finish())
            })
            .collect();
        progress.sort_unstable();
        progress.hash(h);
        (self.entries_to_broadcast, self.read_seq, &self.read_queue).hash(h);
        if !self.read_queue.is_empty() {
            (self.ticks - self.read_queue_since).hash(h);
        }
        for round in &self.read_rounds {
            hash_round(round, self.ticks, h, rename);
        }
        hash_incoming(self.incoming.as_ref(), h);
        let handed_snapshot = self.ready_snapshot.as_ref();
        handed_snapshot
            .map(|(meta, data)| (meta.index, meta.term, data.len()))
            .hash(h);
        for m in self.messages.iter().chain(&self.messages_after_persist) {
            hash_message_head(m, h, rename);
        }
        (self.reads_ready.len(), &self.failed_reads).hash(h);
        hash_hard_state(&self.hard_state_handed_out, h, rename);
        (self.recovery, self.incarnation).hash(h);
        let mut incarnations: Vec<(NodeId, u64)> = self
            .peer_incarnations
            .iter()
            .map(|(&n, &i)| (rename(n), i))
            .collect();
        incarnations.sort_unstable();
        incarnations.hash(h);
        let mut answers: Vec<(NodeId, u64, u64)> = self
            .probe_answers
            .iter()
            .map(|(&n, a)| (rename(n), a.term, a.last_index))
            .collect();
        answers.sort_unstable();
        answers.hash(h);
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Follower => 0,
        Role::PreCandidate => 1,
        Role::Candidate => 2,
        Role::Leader => 3,
    }
}

fn hash_log<H: Hasher>(raft: &Raft, h: &mut H) {
    let log = &raft.log;
    (log.snap_index, log.snap_term, log.stable, log.unstable_from).hash(h);
    log.entries.len().hash(h);
    for e in &log.entries {
        hash_entry(e, h);
    }
    if let Some((meta, data)) = &raft.snapshot {
        (meta.index, meta.term, data.len()).hash(h);
    }
}

/// An entry as the model sees it: position, term, kind and payload.
pub fn hash_entry<H: Hasher>(e: &Entry, h: &mut H) {
    let kind = match e.kind {
        EntryKind::Noop => 0u8,
        EntryKind::Normal => 1u8,
    };
    (e.index, e.term, kind, &e.data).hash(h);
}

/// A hard state with its vote renamed.
pub fn hash_hard_state<H: Hasher>(hs: &HardState, h: &mut H, rename: &dyn Fn(NodeId) -> NodeId) {
    (hs.term, hs.vote.map(rename), hs.commit).hash(h);
    (hs.recovery, hs.incarnation).hash(h);
}

fn hash_progress<H: Hasher>(p: &Progress, h: &mut H) {
    let state = match p.state {
        State::Probe => 0u8,
        State::Replicate => 1,
        State::Snapshot => 2,
    };
    (p.matched, p.next, state, p.paused, &p.inflight).hash(h);
    (p.active, p.stall_ticks, p.resend_chunk, p.commit_sent).hash(h);
    if let Some(s) = &p.snapshot {
        (s.meta.index, s.meta.term, s.offset).hash(h);
    }
}

fn hash_round<H: Hasher>(r: &ReadRound, now: u64, h: &mut H, rename: &dyn Fn(NodeId) -> NodeId) {
    (r.ctx, now - r.started, r.index, &r.ids).hash(h);
    let mut acks: Vec<NodeId> = r.acks.iter().map(|&n| rename(n)).collect();
    acks.sort_unstable();
    acks.hash(h);
}

fn hash_incoming<H: Hasher>(inc: Option<&IncomingSnapshot>, h: &mut H) {
    if let Some(inc) = inc {
        (inc.meta.index, inc.meta.term, inc.data.len()).hash(h);
    }
}

/// Sender, receiver and term of an undrained output (its body is decided by the state above).
fn hash_message_head<H: Hasher>(m: &Message, h: &mut H, rename: &dyn Fn(NodeId) -> NodeId) {
    (rename(m.from), rename(m.to), m.term).hash(h);
}
