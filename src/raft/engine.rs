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

pub use digest::{hash_entry, hash_hard_state};

use super::log::RaftLog;
use super::progress::{Progress, SnapshotSend, State};
use super::{
    Config, Entry, EntryKind, HardState, InitialState, Message, MessageBody, NodeId, NotLeader,
    Proposal, ReadReady, Ready, Role, SnapshotMeta, Status,
};
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
struct Incoming {
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
    rng: u64,

    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    /// Leader: new entries were appended since the last broadcast.
    need_bcast: bool,

    read_seq: u64,
    /// Read ids waiting for the next round (leader).
    read_queue: Vec<u64>,
    /// Tick count when the oldest read in `read_queue` was asked.
    read_queue_since: u64,
    /// Ticks seen since this core started (a local clock for read deadlines).
    ticks: u64,
    read_rounds: VecDeque<ReadRound>,

    incoming: Option<Incoming>,

    // Outputs, drained by `ready`.
    msgs: Vec<Message>,
    persisted_msgs: Vec<Message>,
    ready_snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
    reads_ready: Vec<ReadReady>,
    failed_reads: Vec<u64>,
    /// The hard state last handed out in a `Ready`.
    prev_hs: HardState,
}

/// splitmix64: a tiny deterministic generator for election jitter.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Largest term or index a message may carry.
const LIMIT: u64 = 1 << 62;

fn plausible(m: &Message) -> bool {
    let ok = |v: u64| v < LIMIT;
    ok(m.term)
        && match &m.body {
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
                ..
            } => ok(*last_log_index) && ok(*last_log_term),
            MessageBody::RequestVoteResponse { .. } => true,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_ctx,
            } => {
                ok(*prev_log_index)
                    && ok(*prev_log_term)
                    && ok(*leader_commit)
                    && ok(*read_ctx)
                    && entries.iter().all(|e| ok(e.index) && ok(e.term))
            }
            MessageBody::AppendEntriesResponse {
                index,
                hint_term,
                rejected,
                read_ctx,
                ..
            } => ok(*index) && hint_term.is_none_or(ok) && ok(*rejected) && ok(*read_ctx),
            MessageBody::Heartbeat { commit, read_ctx } => ok(*commit) && ok(*read_ctx),
            MessageBody::HeartbeatResponse { read_ctx } => ok(*read_ctx),
            MessageBody::InstallSnapshot { meta, offset, .. } => {
                ok(meta.index) && ok(meta.term) && ok(*offset)
            }
            MessageBody::InstallSnapshotResponse {
                offset,
                snapshot_index,
                ..
            } => ok(*offset) && ok(*snapshot_index),
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
        let mut log = RaftLog {
            snap_index,
            snap_term,
            entries: Vec::new(),
            stable: snap_index,
            unstable_from: snap_index + 1,
        };
        for e in state.entries {
            if e.index <= snap_index {
                continue;
            }
            let index = e.index;
            if !log.push(e) {
                return Err(format!(
                    "node {}: recovered log is not contiguous after the snapshot at {snap_index}: \
                     entry {index} follows {}",
                    config.id,
                    log.last_index()
                ));
            }
        }
        let last = log.last_index();
        log.stable = last;
        log.unstable_from = last + 1;
        let commit = state.hard_state.commit.max(snap_index).min(last);
        let peers = config
            .voters
            .iter()
            .copied()
            .filter(|&v| v != config.id)
            .collect();
        let mut rng = config.seed ^ config.id.wrapping_mul(0xA24B_AED4_963E_E407);
        next_random(&mut rng);
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
            need_bcast: false,
            read_seq: 0,
            read_queue: Vec::new(),
            read_queue_since: 0,
            ticks: 0,
            read_rounds: VecDeque::new(),
            incoming: None,
            msgs: Vec::new(),
            persisted_msgs: Vec::new(),
            ready_snapshot: None,
            reads_ready: Vec::new(),
            failed_reads: Vec::new(),
            prev_hs: HardState::default(),
            cfg: config,
        };
        raft.prev_hs = raft.hard_state();
        raft.reset_randomized_timeout();
        Ok(raft)
    }

    // ----- events -------------------------------------------------------------------------

    pub fn tick(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
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
                self.bcast_heartbeat();
            }
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_timeout {
                self.campaign();
            }
        }
    }

    /// Starts an election now (a pre-vote first when enabled). A leader ignores it.
    pub fn campaign(&mut self) {
        if self.role == Role::Leader {
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
    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || !self.peers.contains(&m.from) {
            return;
        }
        if !plausible(&m) {
            return;
        }
        if m.term > self.term {
            match &m.body {
                MessageBody::RequestVote { pre_vote, .. } => {
                    if self.in_lease() {
                        // Leader stickiness: we heard from a live leader recently.
                        return;
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
        } else if m.term < self.term {
            match &m.body {
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // A stale leader: our term in the answer makes it step down.
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
            return;
        }
        let from = m.from;
        let term = m.term;
        match m.body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
            } => self.handle_vote_request(from, term, pre_vote, last_log_index, last_log_term),
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, term, pre_vote, granted)
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_ctx,
            } => {
                if !self.follow(from) {
                    return;
                }
                self.handle_append(
                    from,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                    read_ctx,
                );
            }
            MessageBody::Heartbeat { commit, read_ctx } => {
                if !self.follow(from) {
                    return;
                }
                let c = commit.min(self.log.last_index());
                if c > self.commit {
                    self.commit = c;
                }
                self.send(from, MessageBody::HeartbeatResponse { read_ctx });
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => {
                if !self.follow(from) {
                    return;
                }
                self.handle_snapshot_chunk(from, meta, offset, data, done);
            }
            MessageBody::AppendEntriesResponse {
                success,
                index,
                hint_term,
                rejected,
                read_ctx,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_response(from, success, index, hint_term, rejected, read_ctx)
                }
            }
            MessageBody::HeartbeatResponse { read_ctx } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_response(from, read_ctx)
                }
            }
            MessageBody::InstallSnapshotResponse {
                offset,
                done,
                snapshot_index,
            } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_response(from, offset, done, snapshot_index)
                }
            }
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
        self.need_bcast = true;
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
    }

    // ----- output -------------------------------------------------------------------------

    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || !self.persisted_msgs.is_empty()
            || self.ready_snapshot.is_some()
            || self.log.unstable_from <= self.log.last_index()
            || self.hard_state() != self.prev_hs
            || self.commit.min(self.log.stable) > self.applied
            || !self.reads_ready.is_empty()
            || !self.failed_reads.is_empty()
            || (self.role == Role::Leader && (self.need_bcast || self.commit_untold()))
            || (self.role == Role::Leader
                && !self.read_queue.is_empty()
                && self.committed_in_term())
    }

    pub fn ready(&mut self) -> Ready {
        self.start_read_round();
        if self.need_bcast {
            self.need_bcast = false;
            if self.role == Role::Leader {
                for p in self.peers.clone() {
                    self.send_append(p, false);
                }
            }
        }
        self.bcast_commit();
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
        if hs != self.prev_hs {
            rd.hard_state = Some(hs);
            self.prev_hs = hs;
        }
        rd.messages = std::mem::take(&mut self.msgs);
        rd.persisted_messages = std::mem::take(&mut self.persisted_msgs);
        let upto = self.commit.min(self.log.stable);
        if upto > self.applied {
            rd.committed = self.log.slice(self.applied + 1, upto, usize::MAX);
            self.applied = rd.committed.last().map_or(self.applied, |e| e.index);
        }
        rd.reads = std::mem::take(&mut self.reads_ready);
        rd.failed_reads = std::mem::take(&mut self.failed_reads);
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
        }
    }

    fn reset_randomized_timeout(&mut self) {
        let base = self.cfg.election_ticks.max(1);
        self.randomized_timeout = base + (next_random(&mut self.rng) % base as u64) as u32;
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
        self.need_bcast = false;
        self.fail_reads();
    }

    /// A leader of the current term spoke: follow it. False if we are that term's leader
    /// ourselves (a message no correct peer sends), which is then ignored.
    fn follow(&mut self, from: NodeId) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        true
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
        self.msgs.extend(asks);
    }

    /// One vote (or pre-vote) request per peer for `term`, carrying this node's last log position.
    fn vote_requests(&self, term: u64, pre_vote: bool) -> Vec<Message> {
        let (li, lt) = (self.log.last_index(), self.log.last_term());
        self.peers
            .iter()
            .map(|&p| Message {
                from: self.cfg.id,
                to: p,
                term,
                body: MessageBody::RequestVote {
                    pre_vote,
                    last_log_index: li,
                    last_log_term: lt,
                },
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
        self.persisted_msgs.extend(asks);
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
        self.need_bcast = true;
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
        let grant = can_vote && self.log.is_up_to_date(last_index, last_term);
        if pre_vote {
            let reply_term = if grant { term } else { self.term };
            self.msgs.push(Message {
                from: self.cfg.id,
                to: from,
                term: reply_term,
                body: MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: grant,
                },
            });
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
        let msg = Message {
            from: self.cfg.id,
            to: from,
            term: self.term,
            body,
        };
        if self.cfg.bugs.vote_without_persist {
            self.msgs.push(msg);
            return;
        }
        self.persisted_msgs.push(msg);
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

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        read_ctx: u64,
    ) {
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
            return;
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
            return;
        }
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
        let c = leader_commit.min(last_new);
        if c > self.commit {
            self.commit = c;
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
    }

    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        chunk: Vec<u8>,
        done: bool,
    ) {
        let done_reply = |index: u64| MessageBody::InstallSnapshotResponse {
            offset: 0,
            done: true,
            snapshot_index: index,
        };
        if meta.index <= self.commit {
            // We already hold (and will have made durable) everything it covers.
            self.persist_then_send(from, done_reply(meta.index));
            return;
        }
        if self.log.term(meta.index) == Some(meta.term) {
            // Our log already holds the snapshot's last entry: by log matching, everything
            // before it too. Commit up to it instead of installing.
            self.commit = meta.index;
            self.incoming = None;
            self.persist_then_send(from, done_reply(meta.index));
            return;
        }
        if self
            .incoming
            .as_ref()
            .is_some_and(|inc| meta.index < inc.meta.index)
        {
            // A delayed chunk of an older snapshot: never let it replace a newer transfer.
            return;
        }
        let fresh = match &self.incoming {
            Some(inc) => inc.meta != meta,
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
            self.incoming = Some(Incoming {
                meta: meta.clone(),
                data: Vec::new(),
            });
        }
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        if offset == inc.data.len() as u64 {
            if inc.data.len().saturating_add(chunk.len()) > MAX_INCOMING_SNAPSHOT_BYTES {
                // Larger than any snapshot this node accepts: drop the transfer.
                self.incoming = None;
                return;
            }
            inc.data.extend_from_slice(&chunk);
            if done {
                let Some(inc) = self.incoming.take() else {
                    return;
                };
                self.install_snapshot(inc.meta, inc.data);
                self.persist_then_send(from, done_reply(meta.index));
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
            if pr.state != State::Replicate || pr.inflight.is_empty() {
                pr.stall_ticks = 0;
                continue;
            }
            pr.stall_ticks += 1;
            if pr.stall_ticks >= limit {
                pr.next = pr.matched + 1;
                pr.become_probe();
                stalled.push(id);
            }
        }
        for id in stalled {
            self.send_append(id, true);
        }
    }

    fn bcast_heartbeat(&mut self) {
        for p in self.peers.clone() {
            self.send_heartbeat(p);
        }
    }

    /// Does a follower hold committed entries it was not told are committed?
    fn untold(&self, pr: &Progress) -> bool {
        pr.state != State::Snapshot && pr.matched.min(self.commit) > pr.commit_sent
    }

    fn commit_untold(&self) -> bool {
        self.progress.values().any(|pr| self.untold(pr))
    }

    /// Tells each follower that holds committed entries it was not told about (as etcd does
    /// when the commit moves, so followers apply without waiting for the next heartbeat);
    /// batched: at most one heartbeat per follower per `Ready`, and none to a follower that an
    /// append of this `Ready` already told.
    fn bcast_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        for p in self.peers.clone() {
            if self.progress.get(&p).is_some_and(|pr| self.untold(pr)) {
                self.send_heartbeat(p);
            }
        }
    }

    fn send_heartbeat(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        let commit = pr.matched.min(self.commit);
        pr.commit_sent = pr.commit_sent.max(commit);
        self.send(
            to,
            MessageBody::Heartbeat {
                commit,
                read_ctx: self.read_seq,
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
        self.bcast_heartbeat();
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
        if let Some(k) = last_ready {
            // A quorum acknowledged us after round k started, hence after every earlier one.
            for r in self.read_rounds.drain(..=k) {
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
        let n = matched[self.quorum() - 1];
        if n <= self.commit {
            return;
        }
        let own_term_only = !self.cfg.bugs.commit_old_term_by_counting;
        if !own_term_only || self.log.term(n) == Some(self.term) {
            self.commit = n;
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
        match pr.state {
            State::Snapshot => return,
            State::Probe if pr.paused => return,
            State::Replicate if pr.inflight.len() >= max_inflight => return,
            _ => {}
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
            let holds = last_sent.unwrap_or(prev);
            pr.commit_sent = pr.commit_sent.max(self.commit.min(holds));
            match pr.state {
                State::Replicate => {
                    if let Some(l) = last_sent {
                        pr.next = l + 1;
                        pr.inflight.push_back(l);
                    }
                }
                State::Probe => pr.paused = true,
                State::Snapshot => {}
            }
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
        pr.state = State::Snapshot;
        pr.inflight.clear();
        pr.paused = false;
        pr.snapshot = Some(SnapshotSend {
            meta,
            data,
            offset: 0,
        });
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
            let advanced = index > pr.matched;
            if advanced {
                pr.matched = index;
                pr.stall_ticks = 0;
                pr.next = pr.next.max(index + 1);
                match pr.state {
                    State::Probe => pr.become_replicate(),
                    State::Replicate => pr.free_to(index),
                    State::Snapshot => {}
                }
            } else {
                pr.free_to(index);
                if pr.state == State::Probe {
                    pr.paused = false;
                }
            }
            self.read_ack(from, read_ctx);
            if advanced {
                self.maybe_commit();
                // Only an ack that moved the match point sends more: a duplicate or stale ack
                // must not start a new round of messages (the heartbeat retries instead).
                self.send_append(from, false);
            }
            return;
        }
        let stale = rejected <= pr.matched
            || (pr.state == State::Probe && rejected + 1 != pr.next)
            || pr.state == State::Snapshot;
        self.read_ack(from, read_ctx);
        if stale {
            return;
        }
        let probe = match hint_term {
            Some(t) => self.log.find_conflict_by_term(index, t).0,
            None => index,
        };
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.next = rejected.min(probe + 1).max(pr.matched + 1);
        pr.become_probe();
        self.send_append(from, true);
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
        let resend_chunk = state == State::Snapshot && pr.resend_chunk;
        pr.resend_chunk = false;
        if state == State::Probe {
            pr.paused = false;
        }
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
            if snapshot_index > pr.matched {
                pr.matched = snapshot_index;
            }
            let finished = pr.state == State::Snapshot
                && pr
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| snapshot_index >= s.meta.index);
            if finished {
                pr.next = pr.matched + 1;
                pr.become_probe();
            }
            self.maybe_commit();
            self.send_append(from, true);
            return;
        }
        if pr.state != State::Snapshot {
            return;
        }
        let Some(send) = pr.snapshot.as_mut() else {
            return;
        };
        // Equal offsets are duplicates: the tick-driven heartbeat resend covers a lost chunk.
        if send.meta.index == snapshot_index && offset != send.offset {
            send.offset = offset;
            self.send_snapshot_chunk(from);
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        });
    }

    /// Sends after this turn's persist is durable (acknowledgements of entries or snapshots).
    fn persist_then_send(&mut self, to: NodeId, body: MessageBody) {
        self.persisted_msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        });
    }
}
