//! What a leader knows about each follower's log: match and next index, the replication state
//! (probe, pipelined replicate, snapshot transfer), in-flight appends and recent activity.
//!
//! Owns: the flow-control rules of one follower, as methods (the shape of etcd's
//! tracker/progress.go): what an acknowledgement or a rejection does to the match and next
//! indexes ([`Progress::maybe_update`], [`Progress::maybe_decr_to`]), the state changes
//! ([`Progress::become_probe`], [`Progress::become_replicate`], [`Progress::become_snapshot`]),
//! and when an append may go ([`Progress::is_paused`], [`Progress::sent_append`]).
//! Must never: send messages or read the log; the engine decides what to send and this records.

use super::SnapshotMeta;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// One append at a time until the follower's match point is found.
    Probe,
    /// Optimistic pipelining: `next` moves ahead of acknowledgements, up to `max_inflight`.
    Replicate,
    /// An InstallSnapshot transfer is in progress.
    Snapshot,
}

/// A snapshot being sent in chunks (stop-and-wait: the next chunk goes when the previous one
/// is acknowledged; a lost chunk is resent on the answer to a tick-driven heartbeat).
#[derive(Clone, Debug)]
pub(crate) struct SnapshotSend {
    pub meta: SnapshotMeta,
    pub data: Arc<Vec<u8>>,
    /// Offset the follower acknowledged it expects next.
    pub offset: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log on this follower.
    /// Invariant: `matched < next`.
    pub matched: u64,
    /// Index of the next entry to send.
    /// Invariant: above `matched`, and above every index in `inflight`.
    pub next: u64,
    pub state: State,
    /// Probe: an append is out and unanswered.
    /// Invariant: false outside Probe.
    pub paused: bool,
    /// Replicate: last index of each append in flight, oldest first.
    /// Invariant: empty outside Replicate.
    pub inflight: VecDeque<u64>,
    /// Heard from since the last check-quorum round.
    pub active: bool,
    /// Replicate: ticks since `matched` last moved while appends were in flight. Reaching an
    /// election timeout means appends or their acks were lost: the engine probes again.
    pub stall_ticks: u32,
    /// Snapshot: a tick-driven heartbeat went out since the last chunk resend, so the next
    /// heartbeat response may resend the expected chunk (read-round heartbeats never do).
    pub resend_chunk: bool,
    /// The transfer in progress.
    /// Invariant: `Some` exactly in Snapshot.
    pub snapshot: Option<SnapshotSend>,
    /// Highest commit index a message sent to this follower let it learn (the commit it carried,
    /// capped at what the follower holds once it accepts the message).
    pub commit_sent: u64,
}

impl Progress {
    pub fn new(next: u64) -> Progress {
        debug_assert!(next > 0, "a log's first index is 1");
        Progress {
            matched: 0,
            next,
            state: State::Probe,
            paused: false,
            inflight: VecDeque::new(),
            active: false,
            stall_ticks: 0,
            resend_chunk: false,
            commit_sent: 0,
            snapshot: None,
        }
    }

    pub fn become_probe(&mut self) {
        self.state = State::Probe;
        self.paused = false;
        self.inflight.clear();
        self.snapshot = None;
        self.stall_ticks = 0;
        self.next = self.next.max(self.matched + 1);
    }

    pub fn become_replicate(&mut self) {
        self.state = State::Replicate;
        self.paused = false;
        self.inflight.clear();
        self.snapshot = None;
        self.stall_ticks = 0;
        self.next = self.matched + 1;
    }

    /// Starts sending `meta`'s snapshot from its first byte; appends wait until it is installed.
    pub fn become_snapshot(&mut self, meta: SnapshotMeta, data: Arc<Vec<u8>>) {
        self.state = State::Snapshot;
        self.inflight.clear();
        self.paused = false;
        self.snapshot = Some(SnapshotSend {
            meta,
            data,
            offset: 0,
        });
    }

    /// True when no append may go now: a snapshot is being sent, a probe is unanswered, or
    /// `max_inflight` appends are in flight.
    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            State::Snapshot => true,
            State::Probe => self.paused,
            State::Replicate => self.inflight.len() >= max_inflight,
        }
    }

    /// An append went out after `prev` carrying entries up to `last_sent` (none: an empty
    /// probe) and the leader's `commit`. Replicate moves `next` past the entries and holds an
    /// in-flight slot for them; Probe waits for the answer.
    pub fn sent_append(&mut self, prev: u64, last_sent: Option<u64>, commit: u64) {
        let holds = last_sent.unwrap_or(prev);
        self.commit_sent = self.commit_sent.max(commit.min(holds));
        match self.state {
            State::Replicate => {
                if let Some(last) = last_sent {
                    self.next = last + 1;
                    self.inflight.push_back(last);
                }
            }
            State::Probe => self.paused = true,
            State::Snapshot => {}
        }
    }

    /// A heartbeat goes out while the leader's commit is `commit`: returns the commit it may
    /// carry (never above what the follower is known to hold) and records it as told.
    pub fn sent_heartbeat(&mut self, commit: u64) -> u64 {
        let carried = self.matched.min(commit);
        self.commit_sent = self.commit_sent.max(carried);
        carried
    }

    /// Does the follower hold entries committed at `commit` that it was not told are committed?
    pub fn needs_commit_update(&self, commit: u64) -> bool {
        self.state != State::Snapshot && self.matched.min(commit) > self.commit_sent
    }

    /// A successful append response: the follower's log matches the leader's through `index`.
    /// Returns true when that moved the match point; a probe then turns to replicate and a
    /// replicate frees the acknowledged slots. A stale or duplicate acknowledgement only frees
    /// slots and lets a probe send again.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        if index <= self.matched {
            self.free_to(index);
            if self.state == State::Probe {
                self.paused = false;
            }
            return false;
        }
        self.matched = index;
        self.stall_ticks = 0;
        self.next = self.next.max(index + 1);
        match self.state {
            State::Probe => self.become_replicate(),
            State::Replicate => self.free_to(index),
            State::Snapshot => {}
        }
        true
    }

    /// A rejected append whose `prev_log_index` was `rejected`; `hint` is the highest index the
    /// follower's answer lets the leader hope to match. Returns false (and changes nothing)
    /// for a stale rejection: one at or below the match point, one that is not the answer to
    /// the outstanding probe, or any during a snapshot transfer. Otherwise probes again from
    /// just after the hint (never at or below the match point).
    pub fn maybe_decr_to(&mut self, rejected: u64, hint: u64) -> bool {
        let stale = rejected <= self.matched
            || (self.state == State::Probe && rejected + 1 != self.next)
            || self.state == State::Snapshot;
        if stale {
            return false;
        }
        self.next = rejected.min(hint + 1).max(self.matched + 1);
        self.become_probe();
        true
    }

    /// A heartbeat response: lets a probe send again. Returns true when the expected snapshot
    /// chunk should be resent (at most once per tick-driven heartbeat).
    pub fn heartbeat_answered(&mut self) -> bool {
        let resend_chunk = self.state == State::Snapshot && self.resend_chunk;
        self.resend_chunk = false;
        if self.state == State::Probe {
            self.paused = false;
        }
        resend_chunk
    }

    /// The follower installed (or already held) a snapshot up to `snapshot_index`. Ends the
    /// transfer when it covers the snapshot being sent: probing resumes right after it.
    pub fn snapshot_installed(&mut self, snapshot_index: u64) {
        if snapshot_index > self.matched {
            self.matched = snapshot_index;
        }
        let finished = self.state == State::Snapshot
            && self
                .snapshot
                .as_ref()
                .is_some_and(|s| snapshot_index >= s.meta.index);
        if finished {
            self.next = self.matched + 1;
            self.become_probe();
        }
    }

    /// The follower expects byte `offset` of the snapshot at `snapshot_index`. Returns true when
    /// that is news for the transfer in progress (the next chunk is due); equal offsets are
    /// duplicates, whose lost chunk the tick-driven heartbeat resend covers.
    pub fn snapshot_chunk_acked(&mut self, offset: u64, snapshot_index: u64) -> bool {
        if self.state != State::Snapshot {
            return false;
        }
        let Some(send) = self.snapshot.as_mut() else {
            return false;
        };
        if send.meta.index == snapshot_index && offset != send.offset {
            send.offset = offset;
            return true;
        }
        false
    }

    /// One tick while replicating: returns true when `matched` has not moved for `limit` ticks
    /// with appends in flight (appends or their acknowledgements were lost), after turning back
    /// to probe from the match point.
    pub fn tick_stalled(&mut self, limit: u32) -> bool {
        if self.state != State::Replicate || self.inflight.is_empty() {
            self.stall_ticks = 0;
            return false;
        }
        self.stall_ticks += 1;
        if self.stall_ticks < limit {
            return false;
        }
        self.next = self.matched + 1;
        self.become_probe();
        true
    }

    /// Frees in-flight slots acknowledged by a match at `index`.
    pub fn free_to(&mut self, index: u64) {
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
    }

    /// Checks the field invariants above (debug builds only); `id` names the follower.
    pub fn debug_check_invariants(&self, id: u64) {
        debug_assert!(
            self.matched < self.next,
            "follower {id}: match {} not below next {}",
            self.matched,
            self.next
        );
        debug_assert_eq!(
            self.snapshot.is_some(),
            self.state == State::Snapshot,
            "follower {id}: a transfer exactly in Snapshot"
        );
        debug_assert!(
            self.state == State::Replicate || self.inflight.is_empty(),
            "follower {id}: appends in flight outside Replicate"
        );
        debug_assert!(
            self.state == State::Probe || !self.paused,
            "follower {id}: paused outside Probe"
        );
        debug_assert!(
            self.inflight.back().is_none_or(|&last| last < self.next),
            "follower {id}: an append in flight at or past next {}",
            self.next
        );
    }
}
