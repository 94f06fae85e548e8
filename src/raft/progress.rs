//! What a leader knows about each follower's log: match and next index, the replication state
//! (probe, pipelined replicate, snapshot transfer), in-flight appends and recent activity.
//!
//! Owns: the flow-control bookkeeping of one follower.
//! Must never: send messages or read the log; the engine decides and this records.

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
    pub matched: u64,
    pub next: u64,
    pub state: State,
    /// Probe: an append is out and unanswered.
    pub paused: bool,
    /// Replicate: last index of each append in flight, oldest first.
    pub inflight: VecDeque<u64>,
    /// Heard from since the last check-quorum round.
    pub active: bool,
    /// Replicate: ticks since `matched` last moved while appends were in flight. Reaching an
    /// election timeout means appends or their acks were lost: the engine probes again.
    pub stall_ticks: u32,
    /// Snapshot: a tick-driven heartbeat went out since the last chunk resend, so the next
    /// heartbeat response may resend the expected chunk (read-round heartbeats never do).
    pub resend_chunk: bool,
    pub snapshot: Option<SnapshotSend>,
    /// Highest commit index a message sent to this follower let it learn (the commit it carried,
    /// capped at what the follower holds once it accepts the message).
    pub commit_sent: u64,
}

impl Progress {
    pub fn new(next: u64) -> Progress {
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

    /// Frees in-flight slots acknowledged by a match at `index`.
    pub fn free_to(&mut self, index: u64) {
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
    }
}
