//! The consensus engine: Raft's rules as a deterministic state machine over events.
//!
//! Owns: roles and terms, elections (pre-vote, check-quorum, leader stickiness), replication
//! (probe / pipelined replicate / chunked snapshot), the commit rule, ReadIndex rounds, and the
//! durability bookkeeping that decides what the shell may send before and after a persist.
//! Must never: read a clock, do IO, use global randomness, or panic on a message's content
//! (malformed or stale messages are ignored or answered, never trusted).
//!
//! Durability rules kept here (see the module docs of `raft` for the shell's side):
//! - vote grants, candidate vote requests, append acknowledgements and snapshot-installed
//!   acknowledgements go to `persisted_messages`;
//! - the leader counts its own entries toward commit only once `advance` reports them durable;
//! - `Ready::committed` only holds entries that were durable before that `Ready`, and the commit
//!   index in `Ready::hard_state` never exceeds what is durable.

mod digest;
mod rejoin;

pub use digest::{hash_entry, hash_hard_state};

use super::log::RaftLog;
use super::progress::{Progress, State};
use super::{
    Config, Entry, EntryKind, HardState, InitialState, Message, MessageBody, NodeId, NotLeader,
    Proposal, ReadReady, Ready, Recovery, Role, SnapshotMeta, Status,
};
use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// One ReadIndex round: reads safe at `index` once a quorum acknowledged `ctx` or later.
#[derive(Clone, Debug)]
struct ReadRound {
    ctx: u64,
    /// Tick count when the oldest read of the round was asked.
    started: u64,
    index: u64,
    ids: Vec<u64>,
    acks: BTreeSet<NodeId>,
}

/// Upper bound on a snapshot received in chunks; a larger transfer is dropped.
const MAX_INCOMING_SNAPSHOT_BYTES: usize = 1 << 30;

/// A snapshot being received in chunks (at most one: the newest seen in this term).
#[derive(Clone, Debug)]
struct IncomingSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// One consensus core. `Clone` lets a model checker branch a cluster state.
#[derive(Clone)]
pub struct Raft {
    cfg: Config,
    peers: Vec<NodeId>,
    term: u64,
    vote: Option<NodeId>,
    commit: u64,
    /// Highest index handed out in `Ready::committed` or covered by a handed-out snapshot.
    applied: u64,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    /// The latest local snapshot, sent to followers that lag behind the compacted log.
    snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,

    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    /// Election timeout jitter.
    rng: Rng,

    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    /// Leader: new entries were appended since the last broadcast.
    entries_to_broadcast: bool,

    read_seq: u64,
    /// Read ids waiting for the next round (leader).
    read_queue: Vec<u64>,
    /// Tick count when the oldest read in `read_queue` was asked.
    read_queue_since: u64,
    /// Ticks seen since this core started (a local clock for read deadlines).
    ticks: u64,
    read_rounds: VecDeque<ReadRound>,

    incoming: Option<IncomingSnapshot>,

    // Outputs, drained by `ready`.
    messages: Vec<Message>,
    messages_after_persist: Vec<Message>,
    ready_snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
    reads_ready: Vec<ReadReady>,
    failed_reads: Vec<u64>,
    /// The hard state last handed out in a `Ready`.
    hard_state_handed_out: HardState,

    /// The recovering mark (see [`Recovery`]).
    recovery: Recovery,
    /// This node's incarnation, named as the sender of every message.
    incarnation: u64,
    /// The highest incarnation seen from each peer (in memory only).
    peer_incarnations: BTreeMap<NodeId, u64>,
    /// While probing: each peer's answer to this incarnation's probe.
    probe_answers: BTreeMap<NodeId, rejoin::ProbeAnswer>,
}

/// The acknowledgement that a snapshot up to `index` is installed (or already covered).
fn snapshot_installed_reply(index: u64) -> MessageBody {
    MessageBody::InstallSnapshotResponse {
        offset: 0,
        done: true,
        snapshot_index: index,
    }
}

/// Largest term or index a message may carry.
const PLAUSIBLE_LIMIT: u64 = 1 << 62;

fn plausible(m: &Message) -> bool {
    let fits = |v: u64| v < PLAUSIBLE_LIMIT;
    fits(m.term)
        && match &m.body {
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
                ..
            } => fits(*last_log_index) && fits(*last_log_term),
            MessageBody::RequestVoteResponse { .. } => true,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_ctx,
            } => {
                fits(*prev_log_index)
                    && fits(*prev_log_term)
                    && fits(*leader_commit)
                    && fits(*read_ctx)
                    && entries.iter().all(|e| fits(e.index) && fits(e.term))
            }
            MessageBody::AppendEntriesResponse {
                index,
                hint_term,
                rejected,
                read_ctx,
                ..
            } => fits(*index) && hint_term.is_none_or(fits) && fits(*rejected) && fits(*read_ctx),
            MessageBody::Heartbeat {
                commit, read_ctx, ..
            } => fits(*commit) && fits(*read_ctx),
            MessageBody::HeartbeatResponse { read_ctx } => fits(*read_ctx),
            MessageBody::InstallSnapshot { meta, offset, .. } => {
                fits(meta.index) && fits(meta.term) && fits(*offset)
            }
            MessageBody::InstallSnapshotResponse {
                offset,
                snapshot_index,
                ..
            } => fits(*offset) && fits(*snapshot_index),
            MessageBody::Probe => true,
            MessageBody::ProbeResponse {
                last_log_term,
                last_log_index,
            } => fits(*last_log_term) && fits(*last_log_index),
        }
}

impl Raft {
    /// Builds a core from a state known to be contiguous (a fresh start, tests). Panics if
    /// `state.entries` has a gap after the snapshot; a shell restoring from storage uses
    /// [`Raft::try_new`] and reports the error.
    pub fn new(config: Config, state: InitialState) -> Raft {
        match Raft::try_new(config, state) {
            Ok(raft) => raft,
            Err(e) => panic!("{e}"),
        }
    }

    /// Builds a core from its durable state. The shell restores its state machine from
    /// `state.snapshot` itself; the core then hands out committed entries after the snapshot.
    /// `state.entries` must be contiguous from the snapshot index + 1 (the storage crate's
    /// recovery guarantees it); a gap is refused with an error naming it, because cutting the
    /// log there could drop committed entries.
    pub fn try_new(config: Config, state: InitialState) -> Result<Raft, String> {
        let (snap_index, snap_term) = state
            .snapshot
            .as_ref()
            .map_or((0, 0), |(m, _)| (m.index, m.term));
        let log = RaftLog::recovered(snap_index, snap_term, state.entries).map_err(|gap| {
            format!(
                "node {}: recovered log is not contiguous after the snapshot at {snap_index}: \
                 entry {} follows {}",
                config.id, gap.entry, gap.after
            )
        })?;
        let last = log.last_index();
        let commit = state.hard_state.commit.max(snap_index).min(last);
        let peers = config
            .voters
            .iter()
            .copied()
            .filter(|&v| v != config.id)
            .collect();
        let mut rng = Rng::new(config.seed ^ config.id.wrapping_mul(0xA24B_AED4_963E_E407));
        rng.next_u64();
        // A crash can leave entries durable without the hard state written in the same step
        // (a torn write keeps a prefix). Holding an entry of term T means a leader of T
        // existed, so the current term is at least T; and no vote was granted in T, since a
        // grant leaves only after the hard state that records it is durable.
        let (term, vote) = if log.last_term() > state.hard_state.term {
            (log.last_term(), None)
        } else {
            (state.hard_state.term, state.hard_state.vote)
        };
        let mut raft = Raft {
            peers,
            term,
            vote,
            commit,
            applied: snap_index,
            role: Role::Follower,
            leader: None,
            log,
            snapshot: state.snapshot,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            rng,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            entries_to_broadcast: false,
            read_seq: 0,
            read_queue: Vec::new(),
            read_queue_since: 0,
            ticks: 0,
            read_rounds: VecDeque::new(),
            incoming: None,
            messages: Vec::new(),
            messages_after_persist: Vec::new(),
            ready_snapshot: None,
            reads_ready: Vec::new(),
            failed_reads: Vec::new(),
            hard_state_handed_out: HardState::default(),
            recovery: state.hard_state.recovery,
            incarnation: state.hard_state.incarnation,
            peer_incarnations: BTreeMap::new(),
            probe_answers: BTreeMap::new(),
            cfg: config,
        };
        raft.hard_state_handed_out = raft.hard_state();
        raft.reset_randomized_timeout();
        if raft.recovery != Recovery::Ordinary {
            raft.start_rejoining();
        }
        Ok(raft)
    }

    // ----- events -------------------------------------------------------------------------

    /// One unit of time passed: the leader counts toward its heartbeat and its check-quorum
    /// round, any other role toward its randomized election timeout.
    pub fn tick(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_timeout {
                if self.recovery == Recovery::Ordinary {
                    self.campaign();
                } else {
                    self.recovering_timeout();
                }
            }
        }
        self.debug_check_invariants();
    }

    /// Fails reads too old to confirm, steps down when check-quorum finds no active majority
    /// over an election timeout, probes stalled followers again, and sends the heartbeat.
    fn tick_leader(&mut self) {
        self.expire_reads();
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks.max(1) {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let active = 1 + self.progress.values().filter(|p| p.active).count();
                if active < self.quorum() {
                    self.become_follower(self.term, None);
                    return;
                }
                for p in self.progress.values_mut() {
                    p.active = false;
                }
            }
        }
        self.detect_stalls();
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks.max(1) {
            self.heartbeat_elapsed = 0;
            for p in self.progress.values_mut() {
                p.resend_chunk = p.state == State::Snapshot;
            }
            self.broadcast_heartbeat();
        }
    }

    /// Starts an election now (a pre-vote first when enabled). A leader, and a node still
    /// rejoining after it lost its state, ignore it.
    pub fn campaign(&mut self) {
        if self.role == Role::Leader || self.recovery != Recovery::Ordinary {
            return;
        }
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    /// Takes a message from a peer. Messages not addressed to this node, from a non-voter, or
    /// carrying an implausible term or index (2^62 or more: no real cluster gets there, and
    /// refusing them keeps all index arithmetic free of overflow) are ignored.
    ///
    /// The term is handled here, once (as etcd's `Step`): a higher term makes this node a
    /// follower of it ([`Raft::step_higher_term`]), a lower term gets at most an answer that
    /// makes a stale sender step down, and a vote request is answered whatever the role. Every
    /// other message goes to the role's own step function.
    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || !self.peers.contains(&m.from) {
            return;
        }
        if !plausible(&m) || !self.admit_incarnation(&m) {
            return;
        }
        self.maybe_end_probing_by_higher_leader(&m);
        if self.probing_drops(&m.body) {
            return;
        }
        match m.body {
            MessageBody::Probe => return self.answer_probe(m.from),
            MessageBody::ProbeResponse { last_log_index, .. } => {
                return self.take_probe_answer(m.from, m.term, last_log_index)
            }
            _ => {}
        }
        if m.term > self.term && !self.step_higher_term(&m) {
            return;
        }
        if m.term < self.term {
            self.answer_lower_term(&m);
            return;
        }
        if let MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
        } = m.body
        {
            self.handle_vote_request(m.from, m.term, pre_vote, last_log_index, last_log_term);
        } else {
            match self.role {
                Role::Leader => self.step_leader(m),
                Role::PreCandidate | Role::Candidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            }
        }
        self.debug_check_invariants();
    }

    /// A message of a higher term. This node becomes a follower of that term (the sender is its
    /// leader when the message is a leader's), except that a pre-vote request and a granted
    /// pre-vote move no term. Returns false when the message must be dropped: a vote request
    /// while this node still hears a live leader (leader stickiness).
    fn step_higher_term(&mut self, m: &Message) -> bool {
        match &m.body {
            MessageBody::RequestVote { pre_vote, .. } => {
                if self.in_lease() {
                    return false;
                }
                if !pre_vote {
                    self.become_follower(m.term, None);
                }
            }
            MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            } => {}
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
            _ => self.become_follower(m.term, None),
        }
        true
    }

    /// A message of a lower term is never obeyed. A stale leader (with check-quorum or pre-vote
    /// on) is answered with our term so that it steps down; a stale pre-vote is refused.
    fn answer_lower_term(&mut self, m: &Message) {
        match &m.body {
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
                if self.cfg.check_quorum || self.cfg.pre_vote =>
            {
                self.send(
                    m.from,
                    MessageBody::AppendEntriesResponse {
                        success: false,
                        index: 0,
                        hint_term: None,
                        rejected: 0,
                        read_ctx: 0,
                    },
                );
            }
            MessageBody::RequestVote { pre_vote: true, .. } => {
                self.send(
                    m.from,
                    MessageBody::RequestVoteResponse {
                        pre_vote: true,
                        granted: false,
                    },
                );
            }
            _ => {}
        }
    }

    /// The leader takes its followers' answers. It ignores vote answers (the election is over)
    /// and leader messages of its own term (no correct peer sends them).
    fn step_leader(&mut self, m: Message) {
        let from = m.from;
        match m.body {
            MessageBody::AppendEntriesResponse {
                success,
                index,
                hint_term,
                rejected,
                read_ctx,
            } => self.handle_append_response(from, success, index, hint_term, rejected, read_ctx),
            MessageBody::HeartbeatResponse { read_ctx } => {
                self.handle_heartbeat_response(from, read_ctx)
            }
            MessageBody::InstallSnapshotResponse {
                offset,
                done,
                snapshot_index,
            } => self.handle_snapshot_response(from, offset, done, snapshot_index),
            _ => {}
        }
    }

    /// A (pre-)candidate counts vote answers; a leader's message of this term ends its election
    /// and is then handled as a follower handles it.
    fn step_candidate(&mut self, m: Message) {
        match m.body {
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(m.from, m.term, pre_vote, granted)
            }
            _ => self.step_follower(m),
        }
    }

    /// A follower (or a candidate that learns of this term's leader) takes the leader's appends,
    /// heartbeats and snapshot chunks; answers meant for a leader are ignored.
    fn step_follower(&mut self, m: Message) {
        let from = m.from;
        let addressed_to = m.to_incarnation;
        match m.body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_ctx,
            } => {
                self.follow(from);
                let held = self.handle_append(
                    from,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                    read_ctx,
                );
                if let Some(held) = held {
                    self.maybe_caught_up(addressed_to, held, leader_commit);
                }
            }
            MessageBody::Heartbeat {
                commit,
                read_ctx,
                uncapped,
            } => {
                self.follow(from);
                self.handle_heartbeat(from, commit, read_ctx);
                if uncapped || self.cfg.bugs.catch_up_by_capped_commit {
                    self.maybe_caught_up(addressed_to, self.log.last_index(), commit);
                }
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => {
                self.follow(from);
                self.handle_snapshot_chunk(from, meta, offset, data, done);
            }
            _ => {}
        }
    }

    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposal, NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        let index = self.log.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            kind: EntryKind::Normal,
            data,
        });
        self.entries_to_broadcast = true;
        self.debug_check_invariants();
        Ok(Proposal {
            index,
            term: self.term,
        })
    }

    /// Starts a ReadIndex round identified by `id` (chosen by the shell, unique per node).
    /// The read becomes `Ready::reads` once leadership is confirmed by a quorum after this call
    /// and an entry of the current term is committed; or `Ready::failed_reads` if leadership
    /// is lost first.
    pub fn read_index(&mut self, id: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        if self.cfg.bugs.read_without_read_index {
            self.reads_ready.push(ReadReady {
                id,
                index: self.commit,
            });
            return Ok(());
        }
        if self.read_queue.is_empty() {
            self.read_queue_since = self.ticks;
        }
        self.read_queue.push(id);
        Ok(())
    }

    /// The state machine took a snapshot at `meta.index` (<= applied): compact the log behind it
    /// and keep `data` to send to followers that lag behind the compacted log. A snapshot that
    /// is not newer than the current one, beyond `applied`, or whose term does not match the
    /// log is ignored.
    pub fn snapshot_taken(&mut self, meta: SnapshotMeta, data: Arc<Vec<u8>>) {
        if meta.index <= self.log.snap_index || meta.index > self.applied {
            return;
        }
        if self.log.term(meta.index) != Some(meta.term) {
            return;
        }
        self.log.compact(meta.index, meta.term);
        self.snapshot = Some((meta, data));
        self.debug_check_invariants();
    }

    // ----- output -------------------------------------------------------------------------

    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || !self.messages_after_persist.is_empty()
            || self.ready_snapshot.is_some()
            || self.log.unstable_from <= self.log.last_index()
            || self.hard_state() != self.hard_state_handed_out
            || self.commit.min(self.log.stable) > self.applied
            || !self.reads_ready.is_empty()
            || !self.failed_reads.is_empty()
            || (self.role == Role::Leader
                && (self.entries_to_broadcast || self.followers_need_commit_update()))
            || (self.role == Role::Leader
                && !self.read_queue.is_empty()
                && self.committed_in_term())
    }

    pub fn ready(&mut self) -> Ready {
        self.start_read_round();
        if self.entries_to_broadcast {
            self.entries_to_broadcast = false;
            if self.role == Role::Leader {
                for p in self.peers.clone() {
                    self.send_append(p, false);
                }
            }
        }
        self.broadcast_commit();
        let mut rd = Ready::default();
        if let Some(snap) = self.ready_snapshot.take() {
            rd.snapshot = Some(snap);
        }
        let last = self.log.last_index();
        if self.log.unstable_from <= last {
            rd.entries = self.log.slice(self.log.unstable_from, last, usize::MAX);
            self.log.unstable_from = last + 1;
        }
        let hs = self.hard_state();
        if hs != self.hard_state_handed_out {
            rd.hard_state = Some(hs);
            self.hard_state_handed_out = hs;
        }
        rd.messages = std::mem::take(&mut self.messages);
        rd.persisted_messages = std::mem::take(&mut self.messages_after_persist);
        let upto = self.commit.min(self.log.stable);
        if upto > self.applied {
            rd.committed = self.log.slice(self.applied + 1, upto, usize::MAX);
            self.applied = rd.committed.last().map_or(self.applied, |e| e.index);
        }
        rd.reads = std::mem::take(&mut self.reads_ready);
        rd.failed_reads = std::mem::take(&mut self.failed_reads);
        self.debug_check_invariants();
        rd
    }

    /// The persist of `rd` is durable.
    pub fn advance(&mut self, rd: &Ready) {
        if let Some((meta, _)) = &rd.snapshot {
            if self.log.snap_index >= meta.index {
                self.log.stable = self.log.stable.max(meta.index);
            }
        }
        if let Some(e) = rd.entries.last() {
            if self.log.term(e.index) == Some(e.term) {
                self.log.stable = self.log.stable.max(e.index).min(self.log.last_index());
            }
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
        self.debug_check_invariants();
    }

    /// The invariants the engine relies on, checked in debug builds after every event and
    /// every `ready`/`advance`: the commit index never passes the last index (a follower learns
    /// a commit only for entries it holds, a leader never drops entries), the applied index
    /// never passes the commit index (only committed entries are handed out), and each
    /// follower's progress keeps its own invariants ([`Progress::debug_check_invariants`]).
    fn debug_check_invariants(&self) {
        debug_assert!(
            self.commit <= self.log.last_index(),
            "node {}: commit {} is past the last index {}",
            self.cfg.id,
            self.commit,
            self.log.last_index()
        );
        debug_assert!(
            self.applied <= self.commit,
            "node {}: applied {} is past commit {}",
            self.cfg.id,
            self.applied,
            self.commit
        );
        if cfg!(debug_assertions) {
            for (id, pr) in &self.progress {
                pr.debug_check_invariants(*id);
            }
        }
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.commit,
            applied: self.applied,
            first_index: self.log.snap_index + 1,
            last_index: self.log.last_index(),
            recovery: self.recovery,
            incarnation: self.incarnation,
        }
    }

    /// The durable-or-pending log held in memory (after the snapshot), for invariant checks.
    pub fn log(&self) -> &[Entry] {
        &self.log.entries
    }

    /// Term of the entry at `index` if the in-memory log (or the snapshot point) knows it.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }

    #[cfg(test)]
    pub(crate) fn debug_randomized_timeout(&self) -> u32 {
        self.randomized_timeout
    }

    // ----- roles --------------------------------------------------------------------------

    /// Votes (or acknowledgements) that make a majority of the voters, this node included.
    fn quorum(&self) -> usize {
        let voters = self.peers.len() + 1;
        voters / 2 + 1
    }

    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks
    }

    /// Has this leader committed an entry of its own term? Until then its commit index may be
    /// older than one an earlier leader reached, so ReadIndex rounds wait for it.
    fn committed_in_term(&self) -> bool {
        self.cfg.bugs.read_before_own_term_commit || self.log.term(self.commit) == Some(self.term)
    }

    fn hard_state(&self) -> HardState {
        let mut vote = self.vote;
        if self.cfg.bugs.vote_without_persist && vote != Some(self.cfg.id) {
            vote = None;
        }
        HardState {
            term: self.term,
            vote,
            commit: self.commit.min(self.log.stable),
            recovery: self.recovery,
            incarnation: self.incarnation,
        }
    }

    fn reset_randomized_timeout(&mut self) {
        let base = self.cfg.election_ticks.max(1);
        self.randomized_timeout = base + (self.rng.next_u64() % u64::from(base)) as u32;
    }

    /// Reads not confirmed within an election timeout fail: the leader is most likely cut off
    /// from the majority, and the client is better told now (a read has no effect, so failing
    /// it is always safe) than when check-quorum notices.
    fn expire_reads(&mut self) {
        let limit = u64::from(self.cfg.election_ticks.max(1));
        if !self.read_queue.is_empty() && self.ticks - self.read_queue_since >= limit {
            self.failed_reads.append(&mut self.read_queue);
        }
        while self
            .read_rounds
            .front()
            .is_some_and(|r| self.ticks - r.started >= limit)
        {
            if let Some(r) = self.read_rounds.pop_front() {
                self.failed_reads.extend(r.ids);
            }
        }
    }

    fn fail_reads(&mut self) {
        self.failed_reads.append(&mut self.read_queue);
        for r in self.read_rounds.drain(..) {
            self.failed_reads.extend(r.ids);
        }
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term != self.term {
            self.term = term;
            self.vote = None;
            // A transfer belongs to one leader's term.
            self.incoming = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.clear();
        self.progress.clear();
        self.entries_to_broadcast = false;
        self.fail_reads();
    }

    /// The leader of the current term spoke: follow it (a candidate gives up its election).
    /// Never called on the leader itself: [`Raft::step_leader`] ignores leader messages.
    fn follow(&mut self, from: NodeId) {
        debug_assert_ne!(self.role, Role::Leader, "a leader never follows");
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.quorum() <= 1 {
            self.become_candidate();
            return;
        }
        let asks = self.vote_requests(self.term + 1, true);
        self.messages.extend(asks);
    }

    /// One vote (or pre-vote) request per peer for `term`, carrying this node's last log position.
    fn vote_requests(&self, term: u64, pre_vote: bool) -> Vec<Message> {
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        self.peers
            .iter()
            .map(|&p| Message {
                term,
                ..self.message(
                    p,
                    MessageBody::RequestVote {
                        pre_vote,
                        last_log_index: last_index,
                        last_log_term: last_term,
                    },
                )
            })
            .collect()
    }

    fn become_candidate(&mut self) {
        self.term += 1;
        self.incoming = None;
        self.vote = Some(self.cfg.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.quorum() <= 1 {
            self.become_leader();
            return;
        }
        // Our own vote must be durable before we ask for others'.
        let asks = self.vote_requests(self.term, false);
        self.messages_after_persist.extend(asks);
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.votes.clear();
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|&p| (p, Progress::new(next)))
            .collect();
        // Raft §5.4.2: entries of earlier terms commit only under an entry of our own term.
        self.log.push(Entry {
            term: self.term,
            index: next,
            kind: EntryKind::Noop,
            data: Vec::new(),
        });
        self.entries_to_broadcast = true;
    }

    fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: u64,
        pre_vote: bool,
        last_index: u64,
        last_term: u64,
    ) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let grant = can_vote
            && !self.recovery_forbids_vote(pre_vote)
            && self.log.is_up_to_date(last_index, last_term);
        if pre_vote {
            let reply_term = if grant { term } else { self.term };
            let body = MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: grant,
            };
            let reply = Message {
                term: reply_term,
                ..self.message(from, body)
            };
            self.messages.push(reply);
            return;
        }
        let body = MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: grant,
        };
        if !grant {
            self.send(from, body);
            return;
        }
        self.vote = Some(from);
        self.election_elapsed = 0;
        let msg = self.message(from, body);
        if self.cfg.bugs.vote_without_persist {
            self.messages.push(msg);
            return;
        }
        self.messages_after_persist.push(msg);
    }

    fn handle_vote_response(&mut self, from: NodeId, term: u64, pre_vote: bool, granted: bool) {
        let counts = if pre_vote {
            self.role == Role::PreCandidate
                && ((granted && term == self.term + 1) || (!granted && term == self.term))
        } else {
            self.role == Role::Candidate && term == self.term
        };
        if !counts {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        let yes = self.votes.values().filter(|&&g| g).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            if pre_vote {
                self.become_candidate();
            } else {
                self.become_leader();
            }
        } else if no >= self.quorum() {
            self.become_follower(self.term, None);
        }
    }

    // ----- follower side ------------------------------------------------------------------

    /// The leader's append. At or below our commit everything matches any leader's log, so it
    /// is acknowledged at once; a `prev_index` this log does not hold with `prev_term` is
    /// rejected with a term hint; otherwise the entries are appended, the leader's commit is
    /// learned up to the last matching index, and the acknowledgement waits for the persist.
    /// Returns that last matching index when the entries were taken.
    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        read_ctx: u64,
    ) -> Option<u64> {
        if prev_index < self.commit {
            // Everything up to our commit matches any leader's log.
            let index = self.commit;
            self.persist_then_send(
                from,
                MessageBody::AppendEntriesResponse {
                    success: true,
                    index,
                    hint_term: None,
                    rejected: 0,
                    read_ctx,
                },
            );
            return None;
        }
        if self.log.term(prev_index) != Some(prev_term) {
            // Also when `prev_index` is past our last index: the search starts at the last
            // index and skips our entries of terms above `prev_term` (which the leader's log at
            // these indexes cannot hold either), saving a round trip.
            let (index, hint_term) = self.log.find_conflict_by_term(prev_index, prev_term);
            self.send(
                from,
                MessageBody::AppendEntriesResponse {
                    success: false,
                    index,
                    hint_term,
                    rejected: prev_index,
                    read_ctx,
                },
            );
            return None;
        }
        let last_new = self.append_after(prev_index, entries);
        let learned_commit = leader_commit.min(last_new);
        if learned_commit > self.commit {
            self.commit = learned_commit;
        }
        self.persist_then_send(
            from,
            MessageBody::AppendEntriesResponse {
                success: true,
                index: last_new,
                hint_term: None,
                rejected: 0,
                read_ctx,
            },
        );
        Some(last_new)
    }

    /// The leader's heartbeat: learn the commit it carries (capped at what this log holds) and
    /// answer, echoing the ReadIndex round it confirms.
    fn handle_heartbeat(&mut self, from: NodeId, commit: u64, read_ctx: u64) {
        let known_commit = commit.min(self.log.last_index());
        if known_commit > self.commit {
            self.commit = known_commit;
        }
        self.send(from, MessageBody::HeartbeatResponse { read_ctx });
    }

    /// Appends the leader's `entries`, which follow `prev_index` (already known to match),
    /// and returns the last index now known to match the leader's log. An entry this log
    /// already holds with the same term is kept; only a real term conflict truncates the
    /// suffix, never a mere difference of length. Stops at a gap (a malformed message) or at a
    /// contradiction of a committed entry (a leader that must never be obeyed there).
    fn append_after(&mut self, prev_index: u64, entries: Vec<Entry>) -> u64 {
        let mut last_new = prev_index;
        for e in entries {
            if e.index != last_new + 1 {
                break; // malformed: not contiguous
            }
            match self.log.term(e.index) {
                Some(t) if t == e.term => {}
                Some(_) => {
                    if e.index <= self.commit {
                        // A leader contradicting a committed entry: never obey it.
                        break;
                    }
                    // A real term conflict: only now is the suffix truncated.
                    self.log.truncate_from(e.index);
                    self.log.push(e);
                }
                None => {
                    self.log.push(e);
                }
            }
            last_new += 1;
        }
        last_new
    }

    /// A chunk of the leader's snapshot. A snapshot this node already covers (by its commit,
    /// or by holding the snapshot's last entry) is acknowledged as installed at once; any other
    /// chunk goes to the transfer in progress.
    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        chunk: Vec<u8>,
        done: bool,
    ) {
        if meta.index <= self.commit {
            // We already hold (and will have made durable) everything it covers.
            self.persist_then_send(from, snapshot_installed_reply(meta.index));
            return;
        }
        if self.log.term(meta.index) == Some(meta.term) {
            // Our log already holds the snapshot's last entry: by log matching, everything
            // before it too. Commit up to it instead of installing.
            self.commit = meta.index;
            self.incoming = None;
            self.persist_then_send(from, snapshot_installed_reply(meta.index));
            return;
        }
        self.receive_snapshot_chunk(from, meta, offset, chunk, done);
    }

    /// Adds a chunk to the transfer in progress: a chunk of an older snapshot than the one
    /// being received is dropped, another snapshot restarts the transfer (from offset 0 only),
    /// a chunk at the expected offset is appended and the last one installs the snapshot.
    /// Every other chunk is answered with the offset expected next.
    fn receive_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        chunk: Vec<u8>,
        done: bool,
    ) {
        if self
            .incoming
            .as_ref()
            .is_some_and(|transfer| meta.index < transfer.meta.index)
        {
            // A delayed chunk of an older snapshot: never let it replace a newer transfer.
            return;
        }
        let fresh = match &self.incoming {
            Some(transfer) => transfer.meta != meta,
            None => true,
        };
        if fresh {
            if offset != 0 {
                self.send(
                    from,
                    MessageBody::InstallSnapshotResponse {
                        offset: 0,
                        done: false,
                        snapshot_index: meta.index,
                    },
                );
                return;
            }
            self.incoming = Some(IncomingSnapshot {
                meta: meta.clone(),
                data: Vec::new(),
            });
        }
        let Some(transfer) = self.incoming.as_mut() else {
            return;
        };
        if offset == transfer.data.len() as u64 {
            if transfer.data.len().saturating_add(chunk.len()) > MAX_INCOMING_SNAPSHOT_BYTES {
                // Larger than any snapshot this node accepts: drop the transfer.
                self.incoming = None;
                return;
            }
            transfer.data.extend_from_slice(&chunk);
            if done {
                let Some(transfer) = self.incoming.take() else {
                    return;
                };
                self.install_snapshot(transfer.meta, transfer.data);
                self.persist_then_send(from, snapshot_installed_reply(meta.index));
                return;
            }
        }
        let expected = self.incoming.as_ref().map_or(0, |i| i.data.len() as u64);
        self.send(
            from,
            MessageBody::InstallSnapshotResponse {
                offset: expected,
                done: false,
                snapshot_index: meta.index,
            },
        );
    }

    fn install_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) {
        self.log.reset_to_snapshot(meta.index, meta.term);
        self.commit = self.commit.max(meta.index);
        self.applied = meta.index;
        let snap = (meta, Arc::new(data));
        self.snapshot = Some(snap.clone());
        self.ready_snapshot = Some(snap);
    }

    // ----- leader side --------------------------------------------------------------------

    /// Recovers lost pipelined appends: a follower in Replicate whose match point has not moved
    /// for an election timeout while appends are in flight is probed again from its match point.
    /// (Heartbeat responses never demote: a heartbeat answer routinely overtakes an append
    /// acknowledgement, which the follower sends only after its flush.)
    fn detect_stalls(&mut self) {
        let limit = self.cfg.election_ticks.max(1);
        let mut stalled = Vec::new();
        for (&id, pr) in self.progress.iter_mut() {
            if pr.tick_stalled(limit) {
                stalled.push(id);
            }
        }
        for id in stalled {
            self.send_append(id, true);
        }
    }

    fn broadcast_heartbeat(&mut self) {
        for p in self.peers.clone() {
            self.send_heartbeat(p);
        }
    }

    /// Does any follower hold committed entries it was not told are committed?
    fn followers_need_commit_update(&self) -> bool {
        self.progress
            .values()
            .any(|pr| pr.needs_commit_update(self.commit))
    }

    /// Tells each follower that holds committed entries it was not told about (as etcd does
    /// when the commit moves, so followers apply without waiting for the next heartbeat);
    /// batched: at most one heartbeat per follower per `Ready`, and none to a follower that an
    /// append of this `Ready` already told.
    fn broadcast_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        for p in self.peers.clone() {
            if self
                .progress
                .get(&p)
                .is_some_and(|pr| pr.needs_commit_update(self.commit))
            {
                self.send_heartbeat(p);
            }
        }
    }

    fn send_heartbeat(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        let commit = pr.sent_heartbeat(self.commit);
        let uncapped = commit == self.commit && !self.cfg.bugs.never_send_uncapped_commit;
        self.send(
            to,
            MessageBody::Heartbeat {
                commit,
                read_ctx: self.read_seq,
                uncapped,
            },
        );
    }

    fn start_read_round(&mut self) {
        if self.role != Role::Leader || self.read_queue.is_empty() || !self.committed_in_term() {
            return;
        }
        let ids = std::mem::take(&mut self.read_queue);
        let started = self.read_queue_since;
        if self.quorum() <= 1 {
            let index = self.commit;
            self.reads_ready
                .extend(ids.into_iter().map(|id| ReadReady { id, index }));
            return;
        }
        self.read_seq += 1;
        let mut acks = BTreeSet::new();
        acks.insert(self.cfg.id);
        self.read_rounds.push_back(ReadRound {
            ctx: self.read_seq,
            started,
            index: self.commit,
            ids,
            acks,
        });
        self.broadcast_heartbeat();
    }

    fn read_ack(&mut self, from: NodeId, ctx: u64) {
        if ctx == 0 || self.read_rounds.is_empty() {
            return;
        }
        let quorum = self.quorum();
        let mut last_ready = None;
        for (i, r) in self.read_rounds.iter_mut().enumerate() {
            if r.ctx > ctx {
                break;
            }
            r.acks.insert(from);
            if r.acks.len() >= quorum {
                last_ready = Some(i);
            }
        }
        if let Some(last) = last_ready {
            // A quorum acknowledged us after that round started, hence after every earlier one.
            for r in self.read_rounds.drain(..=last) {
                let index = r.index;
                self.reads_ready
                    .extend(r.ids.into_iter().map(|id| ReadReady { id, index }));
            }
        }
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.log.stable);
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_match = matched[self.quorum() - 1];
        if quorum_match <= self.commit {
            return;
        }
        let own_term_only = !self.cfg.bugs.commit_old_term_by_counting;
        if !own_term_only || self.log.term(quorum_match) == Some(self.term) {
            self.commit = quorum_match;
        }
    }

    /// Sends what `to` needs next: entries from its next index, or a snapshot when those are
    /// compacted. `allow_empty` lets a replicating follower get an empty append (a probe).
    fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let max_inflight = self.cfg.max_inflight.max(1);
        let last = self.log.last_index();
        let Some(pr) = self.progress.get(&to) else {
            return;
        };
        if pr.is_paused(max_inflight) {
            return;
        }
        let (next, state) = (pr.next, pr.state);
        if state == State::Replicate && next > last && !allow_empty {
            return;
        }
        let prev = next - 1;
        let Some(prev_term) = self.log.term(prev) else {
            self.start_snapshot(to);
            return;
        };
        let entries = self.log.slice(next, last, self.cfg.max_batch_bytes);
        let last_sent = entries.last().map(|e| e.index);
        let body = MessageBody::AppendEntries {
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries,
            leader_commit: self.commit,
            read_ctx: self.read_seq,
        };
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent_append(prev, last_sent, self.commit);
        }
        self.send(to, body);
    }

    fn start_snapshot(&mut self, to: NodeId) {
        let Some((meta, data)) = self.snapshot.clone() else {
            return;
        };
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        pr.become_snapshot(meta, data);
        self.send_snapshot_chunk(to);
    }

    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let chunk_bytes = self.cfg.snapshot_chunk_bytes.max(1);
        let Some(send) = self.progress.get(&to).and_then(|p| p.snapshot.as_ref()) else {
            return;
        };
        let len = send.data.len();
        let start = (send.offset as usize).min(len);
        let end = (start + chunk_bytes).min(len);
        let body = MessageBody::InstallSnapshot {
            meta: send.meta.clone(),
            offset: start as u64,
            data: send.data[start..end].to_vec(),
            done: end == len,
        };
        self.send(to, body);
    }

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        hint_term: Option<u64>,
        rejected: u64,
        read_ctx: u64,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        if success {
            let advanced = pr.maybe_update(index);
            self.read_ack(from, read_ctx);
            if advanced {
                self.maybe_commit();
                // Only an ack that moved the match point sends more: a duplicate or stale ack
                // must not start a new round of messages (the heartbeat retries instead).
                self.send_append(from, false);
            }
            return;
        }
        self.read_ack(from, read_ctx);
        let hint = match hint_term {
            Some(t) => self.log.find_conflict_by_term(index, t).0,
            None => index,
        };
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if pr.maybe_decr_to(rejected, hint) {
            self.send_append(from, true);
        }
    }

    /// Never demotes (as etcd): a heartbeat answer says nothing about appends in flight. It
    /// unpauses a probe, sends entries the follower lacks if the window allows, and resends the
    /// expected snapshot chunk at most once per tick-driven heartbeat.
    fn handle_heartbeat_response(&mut self, from: NodeId, read_ctx: u64) {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        let state = pr.state;
        let resend_chunk = pr.heartbeat_answered();
        let behind = pr.matched < last;
        self.read_ack(from, read_ctx);
        if resend_chunk {
            // A chunk or its answer may have been lost: resend the expected one.
            self.send_snapshot_chunk(from);
        } else if behind {
            self.send_append(from, state == State::Probe);
        }
    }

    fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        offset: u64,
        done: bool,
        snapshot_index: u64,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        if done {
            pr.snapshot_installed(snapshot_index);
            self.maybe_commit();
            self.send_append(from, true);
        } else if pr.snapshot_chunk_acked(offset, snapshot_index) {
            self.send_snapshot_chunk(from);
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        let m = self.message(to, body);
        self.messages.push(m);
    }

    /// Sends after this turn's persist is durable (acknowledgements of entries or snapshots).
    fn persist_then_send(&mut self, to: NodeId, body: MessageBody) {
        let m = self.message(to, body);
        self.messages_after_persist.push(m);
    }

    /// A message from this node, naming this incarnation and the receiver's as last seen. A
    /// reply is built while its request is stepped, after the request's incarnation was
    /// recorded, so it names the incarnation of the request it answers.
    fn message(&self, to: NodeId, body: MessageBody) -> Message {
        Message {
            from: self.cfg.id,
            to,
            term: self.term,
            from_incarnation: self.incarnation,
            to_incarnation: self.peer_incarnations.get(&to).copied().unwrap_or(0),
            body,
        }
    }
}
