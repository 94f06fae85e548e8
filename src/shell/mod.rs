//! The shell: the one place that turns the consensus core's `Ready` into actions, used alike by
//! the Maelstrom node (`crate::node`), the simulator (`crate::sim`), the model checker
//! (`crate::model`) and the core's own tests.
//!
//! Owns: the order in which a `Ready` is performed (send what acknowledges nothing, persist,
//! send acknowledgements, advance, restore a received snapshot, apply committed entries, answer
//! proposals and reads, take a snapshot), the split of a persist into begin and finish (so a
//! disk may complete a write later, or crash in the middle of it), the hard state that waits
//! for the next flush, and the bookkeeping of client requests waiting on the core; and (in
//! `rejoin`) the decision of how a start proceeds on what its disk holds, shared by the node and
//! the simulator.
//! Must never: send an acknowledgement (a vote grant, an append or snapshot acknowledgement)
//! before the persist that covers it is durable; apply an entry that is not durable; answer a
//! write before its entry is committed and applied; decide anything Raft decides (that is
//! `crate::raft`); touch a file, a socket or a clock itself (storage and outbox are traits).
//!
//! The loop, for every `Ready`, in this order:
//! 1. `Ready::messages` (a leader's appends and heartbeats, which acknowledge nothing) go out
//!    first, so followers write while this node writes (Raft thesis §10.2.1);
//! 2. committed entries are applied and proposals and reads answered (they were durable before
//!    this `Ready`, so they need not wait for its persist), unless the `Ready` carries a received
//!    snapshot, in which case this happens after step 4;
//! 3. the snapshot, entries and hard state are persisted as one durable step;
//! 4. once durable, `Ready::persisted_messages` (vote grants and acknowledgements) go out and
//!    the core is told (`advance`): only then does a leader count its own entries toward commit;
//!    a received snapshot is restored; every `snapshot_every` applied entries the state machine
//!    takes a snapshot.
//!
//! One `Ready` is in flight at a time: the next is taken only after the previous one finished,
//! so a `Ready`'s acknowledgements, which may cover entries handed out earlier, never leave
//! before those are durable too.

mod digest;
mod kv_machine;
mod pending;
pub mod rejoin;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use crate::raft::{
    Config, Entry, EntryKind, HardState, InitialState, Message, NodeId, NotLeader, Proposal, Raft,
    Ready, SnapshotMeta,
};
use pending::Pending;

/// What one persist writes, borrowed from the `Ready` (nothing is copied on the way to storage).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// A snapshot received from the leader; it replaces the log up to its index.
    pub snapshot: Option<(&'a SnapshotMeta, &'a Arc<Vec<u8>>)>,
    /// Entries to append; a conflicting suffix from `entries[0].index` on is truncated first.
    pub entries: &'a [Entry],
    pub hard_state: Option<HardState>,
}

/// Whether a persist completed when it was begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Durable now (a synchronous disk).
    Durable,
    /// Still being written: the owner calls [`Shell::finish`] once it is durable.
    InFlight,
}

/// Where a node's Raft state becomes durable.
pub trait LogStorage {
    /// Starts writing `batch` as one durable step.
    fn begin_persist(&mut self, batch: &Batch<'_>) -> Result<Durability, String>;
    /// The write begun for `batch` (the same batch) completed. Only called after `InFlight`.
    fn finish_persist(&mut self, batch: &Batch<'_>) -> Result<(), String>;
    /// The state machine took a snapshot at `meta.index`: store it and compact the log behind
    /// it, durably, before this returns.
    fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &Arc<Vec<u8>>) -> Result<(), String>;
}

/// Where messages to peers and answers to clients go. `T` is the caller's token of a client
/// request, `O` the state machine's outcome.
pub trait Outbox<T, O> {
    fn send(&mut self, message: Message);
    /// Everything sent so far should leave now: called right before a flush begins, so a
    /// leader's appends travel while its own disk writes.
    fn flush_sends(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn answer(&mut self, token: T, answer: Answer<O>);
    /// Sees each `Ready` before it is performed (the simulator checks its invariants here).
    fn observe_ready(&mut self, _raft: &Raft, _ready: &Ready) {}
    /// Sees each committed entry right before it is applied after index `applied`.
    fn observe_apply(&mut self, _applied: u64, _entry: &Entry) {}
}

/// The replicated state machine.
pub trait StateMachine {
    /// A read-only request.
    type Query;
    /// What applying a command or serving a query yields.
    type Outcome;
    /// Applies the data of a committed entry; an error says it is not a command.
    fn apply(&mut self, data: &[u8]) -> Result<Self::Outcome, String>;
    fn query(&self, query: &Self::Query) -> Self::Outcome;
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's; on error the state is unchanged.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
}

/// The answer to a client request, once the shell knows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer<O> {
    /// The write's entry committed and was applied, with this outcome.
    Applied(O),
    /// The read was confirmed by a quorum and served at or past its read index.
    Read(O),
    /// It definitely did not happen; the text says why.
    NotDone(&'static str),
    /// It may or may not have happened; the text says why.
    Unknown(&'static str),
}

/// A failure the shell cannot get past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellError {
    /// The durable state does not make a core (a gap in the recovered log).
    Recovery(String),
    /// A snapshot could not be restored or saved.
    Snapshot(String),
    /// A persist failed.
    Storage(String),
}

impl ShellError {
    /// A short name of the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            ShellError::Recovery(_) => "recovery",
            ShellError::Snapshot(_) => "snapshot",
            ShellError::Storage(_) => "storage",
        }
    }
}

impl fmt::Display for ShellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellError::Recovery(s) | ShellError::Snapshot(s) | ShellError::Storage(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Mistakes a shell could make, so the simulator and the model checker can show that they catch
/// them through this very shell. All off by default (the node never sets them); when off each
/// costs one branch on a bool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShellBugs {
    /// Send `persisted_messages` (vote grants, append acknowledgements) before the flush.
    pub ack_before_flush: bool,
}

/// Tunables of one shell.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShellSettings {
    /// Take a snapshot every this many applied entries (0: never).
    pub snapshot_every: u64,
    pub bugs: ShellBugs,
}

impl ShellSettings {
    /// Settings that take a snapshot every `snapshot_every` applied entries (0: never).
    pub fn new(snapshot_every: u64) -> ShellSettings {
        ShellSettings {
            snapshot_every,
            bugs: ShellBugs::default(),
        }
    }
}

/// Counters for figures and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShellStats {
    pub flushes: u64,
    pub entries_persisted: u64,
    /// Commit-only hard-state changes that rode on a later flush instead of costing one.
    pub commits_deferred: u64,
    pub applied: u64,
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
}

/// Whether [`Shell::drive`] left a persist in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing left to do until the next event.
    Idle,
    /// A persist is being written; call [`Shell::finish`] once it is durable.
    PersistInFlight,
}

/// Most `Ready`s performed by one `drive` call; the rest waits for the next call.
const MAX_READYS_PER_DRIVE: usize = 1000;

/// Ticks a deferred commit index waits for a flush to ride on before it is written on its own,
/// so an idle node's durable commit index (what a restart replays, what an operator inspects)
/// trails the real one by at most this many ticks, while a busy node never flushes it alone.
const DEFERRED_COMMIT_TICKS: u32 = 2;

/// One node's shell: its core, its state machine and the client requests waiting on them.
pub struct Shell<M: StateMachine, T> {
    raft: Raft,
    machine: M,
    voters: Vec<NodeId>,
    settings: ShellSettings,
    /// Highest index applied to `machine` (or covered by the snapshot it was restored from).
    applied: u64,
    applied_term: u64,
    /// Index and term of the state machine's latest snapshot (taken or installed).
    snapshot_point: (u64, u64),
    pending: Pending<T, M::Query>,
    /// A `Ready` whose persist began and has not finished.
    in_flight: Option<Ready>,
    /// The hard state last handed to storage (or recovered from it).
    written: HardState,
    /// A commit-only hard-state change not yet written: it rides on the next flush.
    deferred: Option<HardState>,
    /// Ticks since `deferred` was set (0 while it is `None`).
    deferred_ticks: u32,
    pub stats: ShellStats,
}

impl<M: StateMachine + Default, T> Shell<M, T> {
    /// Builds a core and a state machine from a node's durable state: the machine is restored
    /// from the snapshot, the core replays the log after it.
    pub fn recover(
        config: Config,
        state: InitialState,
        settings: ShellSettings,
    ) -> Result<Shell<M, T>, ShellError> {
        let mut machine = M::default();
        let mut snapshot_point = (0, 0);
        if let Some((meta, data)) = &state.snapshot {
            machine.restore(data).map_err(|e| {
                ShellError::Snapshot(format!(
                    "durable snapshot at index {} cannot be restored: {e}",
                    meta.index
                ))
            })?;
            snapshot_point = (meta.index, meta.term);
        }
        let written = state.hard_state;
        let voters = config.voters.clone();
        let raft = Raft::try_new(config, state).map_err(ShellError::Recovery)?;
        Ok(Shell {
            raft,
            machine,
            voters,
            settings,
            applied: snapshot_point.0,
            applied_term: snapshot_point.1,
            snapshot_point,
            pending: Pending::default(),
            in_flight: None,
            written,
            deferred: None,
            deferred_ticks: 0,
            stats: ShellStats::default(),
        })
    }
}

impl<M: StateMachine, T> Shell<M, T> {
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The core, to feed it events (`step`, `tick`, `campaign`).
    pub fn raft_mut(&mut self) -> &mut Raft {
        &mut self.raft
    }

    pub fn machine(&self) -> &M {
        &self.machine
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Index and term of the state machine's latest snapshot ((0, 0): none).
    pub fn snapshot_point(&self) -> (u64, u64) {
        self.snapshot_point
    }

    pub fn persist_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The batch of the persist in flight (a simulated crash tears it).
    pub fn in_flight_batch(&self) -> Option<Batch<'_>> {
        self.in_flight.as_ref().map(batch_of)
    }

    /// Proposes a command; `token` is answered once its entry commits (or cannot). Not the
    /// leader: the token comes back with the leader hint.
    pub fn propose(&mut self, data: Vec<u8>, token: T) -> Result<Proposal, (NotLeader, T)> {
        match self.raft.propose(data) {
            Ok(p) => {
                self.pending.add_proposal(p, token);
                Ok(p)
            }
            Err(not_leader) => Err((not_leader, token)),
        }
    }

    /// Starts a ReadIndex read; `token` is answered once it is safe (or fails). Not the leader:
    /// the token and query come back with the leader hint.
    pub fn read(&mut self, query: M::Query, token: T) -> Result<(), (NotLeader, T, M::Query)> {
        let id = self.pending.next_read_id();
        match self.raft.read_index(id) {
            Ok(()) => {
                self.pending.add_read(id, token, query);
                Ok(())
            }
            Err(not_leader) => Err((not_leader, token, query)),
        }
    }

    /// Takes out the waiting proposals `expired` picks (for a caller's timeout).
    pub fn take_expired_proposals(&mut self, expired: impl FnMut(&T) -> bool) -> Vec<T> {
        self.pending.take_proposals_where(expired)
    }

    /// Takes out the waiting reads `expired` picks (for a caller's timeout).
    pub fn take_expired_reads(&mut self, expired: impl FnMut(&T) -> bool) -> Vec<T> {
        self.pending.take_reads_where(expired)
    }

    /// One tick of the core's clock; also ages a deferred commit index (see
    /// [`DEFERRED_COMMIT_TICKS`]).
    pub fn tick(&mut self) {
        self.raft.tick();
        if self.deferred.is_some() {
            self.deferred_ticks += 1;
        }
    }

    /// Makes the next [`Shell::drive`] write a deferred commit index at once: for a node that
    /// is about to stop, so its directory keeps the commit index it reached.
    pub fn write_deferred_commit_next(&mut self) {
        if self.deferred.is_some() {
            self.deferred_ticks = self.deferred_ticks.max(DEFERRED_COMMIT_TICKS);
        }
    }

    /// Performs every `Ready` the core has, until it has none or a persist stays in flight.
    pub fn drive<P>(&mut self, io: &mut P) -> Result<Progress, ShellError>
    where
        P: LogStorage + Outbox<T, M::Outcome>,
    {
        for _ in 0..MAX_READYS_PER_DRIVE {
            if self.in_flight.is_some() || !self.raft.has_ready() {
                break;
            }
            let ready = self.raft.ready();
            self.begin(ready, io)?;
        }
        if self.in_flight.is_none() && self.deferred_ticks >= DEFERRED_COMMIT_TICKS {
            self.persist_deferred_commit(io)?;
        }
        Ok(if self.in_flight.is_some() {
            Progress::PersistInFlight
        } else {
            Progress::Idle
        })
    }

    /// The persist in flight is durable: finish its `Ready`. The caller then drives again.
    pub fn finish<P>(&mut self, io: &mut P) -> Result<(), ShellError>
    where
        P: LogStorage + Outbox<T, M::Outcome>,
    {
        let Some(ready) = self.in_flight.take() else {
            return Ok(());
        };
        io.finish_persist(&batch_of(&ready))
            .map_err(ShellError::Storage)?;
        self.complete(ready, io)
    }

    /// Steps 1 and 2 of the loop: send what acknowledges nothing, then begin the persist.
    fn begin<P>(&mut self, mut ready: Ready, io: &mut P) -> Result<(), ShellError>
    where
        P: LogStorage + Outbox<T, M::Outcome>,
    {
        io.observe_ready(&self.raft, &ready);
        for message in std::mem::take(&mut ready.messages) {
            io.send(message);
        }
        if self.settings.bugs.ack_before_flush {
            for message in std::mem::take(&mut ready.persisted_messages) {
                io.send(message);
            }
        }
        if ready.snapshot.is_none() {
            // `Ready::committed` holds only entries durable before this Ready (here and on a
            // majority), so applying them and answering their clients need not wait for this
            // Ready's persist. A received snapshot must be durable before the state machine is
            // restored from it, and the entries after it wait for that.
            self.apply_and_answer(&mut ready, io);
        }
        if !self.needs_flush(&mut ready) {
            return self.complete(ready, io);
        }
        io.flush_sends().map_err(ShellError::Storage)?;
        self.persist(ready, io)
    }

    /// Writes a commit index that found no flush to ride on for [`DEFERRED_COMMIT_TICKS`].
    fn persist_deferred_commit<P>(&mut self, io: &mut P) -> Result<(), ShellError>
    where
        P: LogStorage + Outbox<T, M::Outcome>,
    {
        let hard_state = self.deferred.take();
        self.deferred_ticks = 0;
        if hard_state.is_none() {
            return Ok(());
        }
        let ready = Ready {
            hard_state,
            ..Ready::default()
        };
        self.persist(ready, io)
    }

    /// Begins the persist of `ready`, completing it at once when the storage is synchronous.
    fn persist<P>(&mut self, ready: Ready, io: &mut P) -> Result<(), ShellError>
    where
        P: LogStorage + Outbox<T, M::Outcome>,
    {
        debug_assert!(ready.must_persist());
        let batch = batch_of(&ready);
        let durability = io.begin_persist(&batch).map_err(ShellError::Storage)?;
        self.stats.flushes += 1;
        self.stats.entries_persisted += ready.entries.len() as u64;
        if let Some(hs) = ready.hard_state {
            self.written = hs;
        }
        match durability {
            Durability::Durable => self.complete(ready, io),
            Durability::InFlight => {
                self.in_flight = Some(ready);
                Ok(())
            }
        }
    }

    /// Decides whether `ready` costs a flush, and folds a deferred hard state into it if so.
    ///
    /// A hard state that differs from the one written only in its commit index is not flushed
    /// on its own: it rides on the next flush. That is safe because the commit index is the one
    /// part of the hard state Raft can always learn again: entries at or below it are durable
    /// here already and committed on a majority, so a node restarted with an older commit index
    /// replays less until the leader tells it the commit again, and it never serves anything
    /// from that older state, since a read is served only by a leader through ReadIndex, after
    /// a quorum round and a commit of its own term, which lies above every index ever committed.
    fn needs_flush(&mut self, ready: &mut Ready) -> bool {
        let only_commit_moved = ready.snapshot.is_none()
            && ready.entries.is_empty()
            && ready.hard_state.is_some_and(|hs| {
                HardState {
                    commit: self.written.commit,
                    ..hs
                } == self.written
            });
        if only_commit_moved {
            self.deferred = ready.hard_state.take();
            self.stats.commits_deferred += 1;
            return false;
        }
        if !ready.must_persist() {
            return false;
        }
        // The Ready's own hard state, when it has one, is newer than the deferred one.
        let deferred = self.deferred.take();
        self.deferred_ticks = 0;
        if ready.hard_state.is_none() {
            ready.hard_state = deferred;
        }
        true
    }

    /// Steps 3 and 4 of the loop, once the persist of `ready` is durable.
    fn complete<P>(&mut self, ready: Ready, io: &mut P) -> Result<(), ShellError>
    where
        P: LogStorage + Outbox<T, M::Outcome>,
    {
        let mut ready = ready;
        debug_assert!(ready.messages.is_empty(), "sent in `begin`");
        for message in std::mem::take(&mut ready.persisted_messages) {
            io.send(message);
        }
        self.raft.advance(&ready);
        if let Some((meta, data)) = &ready.snapshot {
            self.install_snapshot(meta, data, io)?;
        }
        self.apply_and_answer(&mut ready, io);
        self.maybe_take_snapshot(io)
    }

    /// Applies the committed entries of `ready` (answering their proposals), fails the reads
    /// that can no longer be confirmed and serves the confirmed ones that are applied. Takes
    /// them out of `ready`, so a second call does nothing.
    fn apply_and_answer<P>(&mut self, ready: &mut Ready, io: &mut P)
    where
        P: Outbox<T, M::Outcome>,
    {
        for entry in std::mem::take(&mut ready.committed) {
            self.apply(&entry, io);
        }
        for id in std::mem::take(&mut ready.failed_reads) {
            if let Some(token) = self.pending.take_read(id) {
                io.answer(
                    token,
                    Answer::NotDone("leadership lost before the read was confirmed"),
                );
            }
        }
        self.pending
            .confirm_reads(&std::mem::take(&mut ready.reads));
        self.serve_reads(io);
    }

    /// Restores a snapshot received from the leader, now durable.
    fn install_snapshot<P>(
        &mut self,
        meta: &SnapshotMeta,
        data: &Arc<Vec<u8>>,
        io: &mut P,
    ) -> Result<(), ShellError>
    where
        P: Outbox<T, M::Outcome>,
    {
        if meta.index <= self.applied {
            return Ok(());
        }
        self.machine.restore(data).map_err(|e| {
            ShellError::Snapshot(format!("snapshot received at index {}: {e}", meta.index))
        })?;
        self.applied = meta.index;
        self.applied_term = meta.term;
        self.snapshot_point = (meta.index, meta.term);
        self.stats.snapshots_installed += 1;
        // Proposals covered by the snapshot: whether their entry is the one committed at their
        // index is unknown here.
        for token in self.pending.take_proposals_through(meta.index) {
            io.answer(
                token,
                Answer::Unknown("outcome unknown: log replaced by a snapshot"),
            );
        }
        Ok(())
    }

    fn apply<P>(&mut self, entry: &Entry, io: &mut P)
    where
        P: Outbox<T, M::Outcome>,
    {
        if entry.index <= self.applied {
            return;
        }
        debug_assert_eq!(entry.index, self.applied + 1, "entries apply in order");
        debug_assert!(
            entry.index <= self.raft.status().commit,
            "applied <= commit"
        );
        io.observe_apply(self.applied, entry);
        let outcome = match entry.kind {
            EntryKind::Noop => None,
            EntryKind::Normal => Some(self.machine.apply(&entry.data)),
        };
        self.applied = entry.index;
        self.applied_term = entry.term;
        self.stats.applied += 1;
        // Several proposals may wait at one index (each leader that held it proposed one), but
        // only one per term: the one whose term the committed entry carries happened.
        let mut outcome = outcome;
        for (term, token) in self.pending.take_proposals_at(entry.index) {
            let answer = if term != entry.term {
                // An index commits one entry, once: this proposal's entry lost its place.
                Answer::NotDone("leadership changed before the write committed; it did not happen")
            } else {
                match outcome.take() {
                    Some(Ok(o)) => Answer::Applied(o),
                    _ => Answer::Unknown("committed entry could not be applied"),
                }
            };
            io.answer(token, answer);
        }
    }

    /// Answers the confirmed reads whose read index is applied.
    fn serve_reads<P>(&mut self, io: &mut P)
    where
        P: Outbox<T, M::Outcome>,
    {
        for (token, query) in self.pending.take_servable_reads(self.applied) {
            io.answer(token, Answer::Read(self.machine.query(&query)));
        }
    }

    /// Every `snapshot_every` applied entries: snapshot the state machine, store it, and let
    /// the core compact its log behind it.
    fn maybe_take_snapshot<P>(&mut self, io: &mut P) -> Result<(), ShellError>
    where
        P: LogStorage,
    {
        let every = self.settings.snapshot_every;
        if every == 0 || self.applied < self.snapshot_point.0 + every {
            return Ok(());
        }
        let meta = SnapshotMeta {
            index: self.applied,
            term: self.applied_term,
            voters: self.voters.clone(),
        };
        let data = Arc::new(self.machine.snapshot());
        io.save_snapshot(&meta, &data).map_err(|e| {
            ShellError::Snapshot(format!("cannot save a snapshot at {}: {e}", meta.index))
        })?;
        self.snapshot_point = (meta.index, meta.term);
        self.stats.snapshots_taken += 1;
        self.raft.snapshot_taken(meta, data);
        Ok(())
    }
}

/// The persist a `Ready` asks for, borrowed from it.
fn batch_of(ready: &Ready) -> Batch<'_> {
    Batch {
        snapshot: ready.snapshot.as_ref().map(|(meta, data)| (meta, data)),
        entries: &ready.entries,
        hard_state: ready.hard_state,
    }
}
