//! The consensus core, sans-IO.
//!
//! Owns: Raft's rules (elections with pre-vote and check-quorum, replication with batching,
//! pipelining and term-hint backtracking, the own-term commit rule, ReadIndex reads, snapshots and
//! chunked InstallSnapshot) and the in-memory copy of the log since the last snapshot.
//! Must never: read a clock, spawn a thread, touch a file or a socket, or use global randomness.
//! Time arrives as [`Raft::tick`], randomness from [`Config::seed`], and everything the shell must
//! do leaves through [`Raft::ready`].
//!
//! The shell's loop (`crate::shell` performs it, for the node, the simulator and the core's
//! tests alike):
//! 1. feed events: [`Raft::step`], [`Raft::tick`], [`Raft::propose`], [`Raft::read_index`];
//! 2. `let rd = raft.ready();`
//! 3. persist `rd.snapshot`, `rd.entries` (truncating any conflicting suffix first) and
//!    `rd.hard_state` as ONE durable step (one flush for the whole turn); a hard state that
//!    differs from the last one written only in its commit index may instead be written with
//!    the next step that flushes anyway (the commit index can always be learned again);
//! 4. send `rd.messages` (they may be sent before step 3 completes) and, only after step 3 is
//!    durable, `rd.persisted_messages` (vote grants and append acknowledgements);
//! 5. `raft.advance(&rd)`: tells the core step 3 is durable;
//! 6. apply `rd.committed` in order (after restoring `rd.snapshot` into the state machine if set),
//!    then serve each of `rd.reads` once the applied index reaches its `index`.
//!
//! Readys are strictly ordered: persist and advance them one at a time, in the order they were
//! taken, and take the next `ready()` only after `advance` of the previous one. A Ready's
//! `persisted_messages` may acknowledge entries handed out in an EARLIER Ready (a duplicate
//! append can arrive before the first copy is durable: the acknowledgement names the whole
//! matching prefix), so they may leave only once this Ready AND every earlier one are durable.
//! The strict loop above guarantees that; a shell that pipelines persists must keep it too.
//!
//! The core owns its value types ([`Entry`], [`HardState`], [`SnapshotMeta`]) and depends on no
//! storage: the storage crate keeps its own record types (they are its on-disk format, which a
//! change here must never move silently), and the node converts between the two (the shared
//! shell in `crate::shell` sees only the core's types).

use serde::{Deserialize, Serialize};

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Appended by a new leader to commit entries of earlier terms (Raft §5.4.2).
    Noop,
    /// A state-machine command (for raftkv, a JSON-encoded lin-kv command).
    Normal,
}

/// One Raft log entry. Index `i` of a log holds the entry with `index == i`; the first index is
/// 1 (0 names the empty log's position, term 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    /// Serialized as bytes, so a peer decodes an append's payload in one copy rather than byte
    /// by byte.
    #[serde(with = "bytes")]
    pub data: Vec<u8>,
}

/// The state that must be durable before a node votes or acknowledges an append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
    /// Highest index known committed (never above the durable log); persisted so a restarted
    /// node never serves a state older than one it already served.
    pub commit: u64,
    /// Where this node stands in rejoining after a start with an empty directory (the
    /// recovering mark). A start that finds any mark other than `Ordinary` starts empty again.
    pub recovery: Recovery,
    /// This directory's incarnation: new on every start with an empty directory (first boot, a
    /// wiped or damaged disk), unique and ordered across such starts. 0 only in tests.
    pub incarnation: u64,
}

/// The recovering mark: how far a node that started with an empty directory has rejoined.
///
/// A node that lost its state may have voted or acknowledged entries it no longer holds, so it
/// must not vote, pre-vote or campaign until it holds every entry the cluster committed, and it
/// must not acknowledge anything until no candidate can still count a vote it forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recovery {
    /// An ordinary node: it votes, campaigns and acknowledges as Raft says.
    #[default]
    Ordinary,
    /// Term and vote are unknown: the node acknowledges nothing until every other node answered
    /// a probe of this incarnation; it then takes the highest term answered, with a vote for
    /// itself, as its own.
    Probing,
    /// Term and vote are known: the node acknowledges appends but grants no vote and never
    /// campaigns until its current term's leader gave it every entry up to that leader's
    /// uncapped commit index, in a message addressed to this incarnation.
    CatchingUp,
}

/// Describes a snapshot: the state machine after applying every entry up to `index`, whose term
/// is `term`. The log after a snapshot starts at `index + 1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    /// Voters of the cluster (static membership).
    pub voters: Vec<NodeId>,
}

/// Serde helper: a `Vec<u8>` as bytes. Reads bytes or a sequence of numbers, so JSON and the
/// bincode of a plain `Vec<u8>` both decode.
mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    struct BytesVisitor;
    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }
}

/// Node identity inside the core. The driver maps Maelstrom's string ids onto these.
pub type NodeId = u64;

/// Static configuration of one core.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Every voter of the cluster, this node included.
    pub voters: Vec<NodeId>,
    /// Base election timeout in ticks; the actual timeout is random in [base, 2 * base).
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Append messages in flight per follower before the leader waits for acknowledgements.
    pub max_inflight: usize,
    /// Upper bound on the entry bytes of one append message.
    pub max_batch_bytes: usize,
    /// Size of one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Seed of the core's own random source (election timeout jitter).
    pub seed: u64,
    /// Deliberate Raft mistakes, so the simulator and the model checker can show that they
    /// catch them. All off by default (the node never sets them); when off each costs one
    /// branch on a bool.
    pub bugs: Bugs,
}

/// Classic Raft mistakes a checker can switch on (see `Config::bugs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Commit an entry of an earlier term as soon as a majority holds it (breaks Raft §5.4.2).
    pub commit_old_term_by_counting: bool,
    /// Grant a vote without making it durable first (it is sent at once and not persisted).
    pub vote_without_persist: bool,
    /// Serve reads from local state at once, without a ReadIndex round.
    pub read_without_read_index: bool,
    /// Start a ReadIndex round before this leader has committed an entry of its own term, so
    /// the read index may be older than an entry an earlier leader already committed.
    pub read_before_own_term_commit: bool,
    /// Rejoining after a lost directory, unsafe variants (each a pitfall of the rules in
    /// `engine/rejoin.rs`):
    /// finish the probe round with a majority's answers instead of every other node's;
    pub probe_majority_only: bool,
    /// once a majority answered the probe round, end it on a leader's message of a term above
    /// every answer, following that leader with no vote of its own;
    pub probe_majority_then_await_leader: bool,
    /// acknowledge appends, heartbeats and snapshots while the probe round is still owed;
    pub ack_while_probing: bool,
    /// grant pre-votes while recovering;
    pub pre_vote_while_recovering: bool,
    /// take every message whatever incarnations it names (count a reply sent to an earlier
    /// incarnation, or an append addressed to one);
    pub ignore_incarnations: bool,
    /// end catch-up on any heartbeat, whose commit is capped at what the follower matched;
    pub catch_up_by_capped_commit: bool,
    /// a leader that never flags its heartbeat's commit as uncapped, so an idle cluster
    /// never ends a follower's catch-up;
    pub never_send_uncapped_commit: bool,
    /// a leader that keeps its view of a follower that came back as a new incarnation (it
    /// then ignores that follower's rejections at or below what it believed matched).
    pub keep_progress_of_new_incarnation: bool,
}

impl Config {
    /// A configuration with the defaults the node uses; override fields as needed.
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            voters,
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            max_inflight: 64,
            max_batch_bytes: 1 << 20,
            snapshot_chunk_bytes: 64 << 10,
            seed,
            bugs: Bugs::default(),
        }
    }
}

/// What the core starts from: the recovered durable state.
#[derive(Clone, Debug, Default)]
pub struct InitialState {
    pub hard_state: HardState,
    /// The latest durable snapshot, with its data, if any.
    pub snapshot: Option<(SnapshotMeta, std::sync::Arc<Vec<u8>>)>,
    /// The durable log after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// A message between cores. Serializable so the driver can put it on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    /// The sender's incarnation.
    pub from_incarnation: u64,
    /// The receiver's incarnation as the sender last saw it (0: not seen yet). A reply names
    /// the incarnation of the request it answers.
    pub to_incarnation: u64,
    pub body: MessageBody,
}

/// The kinds of message the core exchanges. The shell treats them as opaque values to route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    RequestVote {
        pre_vote: bool,
        last_log_index: u64,
        last_log_term: u64,
    },
    RequestVoteResponse {
        pre_vote: bool,
        granted: bool,
    },
    AppendEntries {
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        /// ReadIndex round this message confirms leadership for (0 = none).
        read_ctx: u64,
    },
    AppendEntriesResponse {
        success: bool,
        /// On success: the highest index now matching the leader. On failure: hint index.
        index: u64,
        /// On failure: the follower's term at the hint index, for term-hint backtracking.
        hint_term: Option<u64>,
        /// On failure: the `prev_log_index` that was rejected (lets the leader drop stale
        /// rejections).
        rejected: u64,
        read_ctx: u64,
    },
    /// Leader liveness and commit propagation; `commit` never exceeds what the follower is
    /// known to hold. `read_ctx` confirms leadership for ReadIndex rounds up to that id.
    /// `uncapped` says `commit` is the leader's own commit index (the follower matched it), so
    /// a catching-up follower may count it.
    Heartbeat {
        commit: u64,
        read_ctx: u64,
        uncapped: bool,
    },
    HeartbeatResponse {
        read_ctx: u64,
    },
    InstallSnapshot {
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    },
    InstallSnapshotResponse {
        /// Next offset the follower expects, or the snapshot index once installed.
        offset: u64,
        done: bool,
        snapshot_index: u64,
    },
    /// A node whose term and vote are unknown asks for a peer's term and last position. Its
    /// `term` field means nothing and moves no term.
    Probe,
    /// The answer to a probe, sent by every node, recovering or not, and honestly: the message's
    /// term is the sender's term (at least the term of its last entry or snapshot), and
    /// `(last_log_term, last_log_index)` its real last position, its snapshot counted.
    ProbeResponse {
        last_log_term: u64,
        last_log_index: u64,
    },
}

/// Where a proposal landed in the log. The proposal is committed exactly when the entry committed
/// at `index` has term `term`; a different term there means it definitely never happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
}

/// This node cannot take the request: it is not the leader. `leader` is a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    pub leader: Option<NodeId>,
}

/// A ReadIndex request that is now safe to serve once `applied >= index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReady {
    pub id: u64,
    pub index: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A read-only view for drivers, tools and invariant checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: u64,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit: u64,
    /// Highest index handed out in `Ready::committed` (or covered by a snapshot).
    pub applied: u64,
    pub first_index: u64,
    pub last_index: u64,
    /// The recovering mark (`Ordinary` once this node votes and campaigns again).
    pub recovery: Recovery,
    pub incarnation: u64,
}

/// Everything the shell must do after a batch of events. See the module docs for the order.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// A snapshot received from the leader: persist it, then restore the state machine from it.
    pub snapshot: Option<(SnapshotMeta, std::sync::Arc<Vec<u8>>)>,
    /// Entries to append; the first may overwrite a conflicting suffix of the durable log.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Send at once.
    pub messages: Vec<Message>,
    /// Send only after the persist of this Ready is durable.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order.
    pub committed: Vec<Entry>,
    /// Reads now safe to serve once applied reaches their index.
    pub reads: Vec<ReadReady>,
    /// Reads that can no longer be confirmed (leadership lost): the shell may reject them.
    pub failed_reads: Vec<u64>,
}

impl Ready {
    /// True when there is something durable to write (hence a flush to do).
    pub fn must_persist(&self) -> bool {
        self.snapshot.is_some() || !self.entries.is_empty() || self.hard_state.is_some()
    }
}

mod engine;
mod log;
mod progress;
#[cfg(test)]
mod tests;

pub use engine::{hash_entry, hash_hard_state, Raft};
