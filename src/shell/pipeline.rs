//! The writes between the shell and its storage, and the `Ready`s that wait for them.
//!
//! Owns: the numbering of writes, the queue of writes not yet handed to storage (the writable
//! part of every `Ready` taken while storage writes, merged into one write: group commit), and
//! the `Ready`s taken and not yet finished, oldest first, each with the number of the last
//! write it waits for.
//! Must never: reorder writes or `Ready`s, let storage hold two writes at once, merge anything
//! into a write that carries a received snapshot (or a snapshot into a write with entries), or
//! let a `Ready` finish before every write made before it was taken is durable.

use std::collections::VecDeque;
use std::sync::Arc;

use super::DiskWrite;
use crate::raft::{HardState, Ready, SnapshotMeta};

#[derive(Clone, Default)]
pub struct Pipeline {
    /// `Ready`s taken and not finished, oldest first, with the number of the last write each
    /// waits for (0: none).
    awaiting: VecDeque<(u64, Ready)>,
    /// Writes made and not yet handed to storage, oldest first.
    queued: VecDeque<DiskWrite>,
    /// Storage holds write number `durable + 1`.
    writing: bool,
    /// Number of the latest write made (queued or handed to storage).
    last_made: u64,
    /// Every write up to this number is durable.
    durable: u64,
    /// Number of a write carrying a received snapshot that is not durable yet.
    snapshot_write: Option<u64>,
}

impl Pipeline {
    /// True while storage holds a write (then `Ready`s and writes may wait behind it).
    pub fn writing(&self) -> bool {
        self.writing
    }

    /// Between two calls of the shell, nothing waits unless storage holds a write.
    pub fn debug_check_settled(&self) {
        debug_assert!(
            self.writing || (self.awaiting.is_empty() && self.queued.is_empty()),
            "a Ready or a write waits while storage holds nothing"
        );
    }

    /// True while a received snapshot waits to be durable: no `Ready` is taken until it is.
    pub fn snapshot_pending(&self) -> bool {
        self.snapshot_write.is_some()
    }

    /// Moves the snapshot, entries and hard state of `ready` into the last queued write, or
    /// into a new one when none is queued or either carries a snapshot.
    pub fn queue_write(&mut self, ready: &mut Ready) {
        debug_assert!(ready.must_persist());
        let mergeable =
            ready.snapshot.is_none() && self.queued.back().is_some_and(|w| w.snapshot.is_none());
        if !mergeable {
            let write = self.new_write(ready.snapshot.take());
            if write.snapshot.is_some() {
                self.snapshot_write = Some(write.number);
            }
            self.queued.push_back(write);
        }
        if let Some(write) = self.queued.back_mut() {
            write.absorb(ready);
        }
    }

    /// Queues a hard state alone (a commit index that found no write to ride on).
    pub fn queue_hard_state(&mut self, hard_state: HardState) {
        let mut ready = Ready {
            hard_state: Some(hard_state),
            ..Ready::default()
        };
        self.queue_write(&mut ready);
    }

    fn new_write(&mut self, snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>) -> DiskWrite {
        self.last_made += 1;
        DiskWrite {
            number: self.last_made,
            snapshot,
            entries: Vec::new(),
            hard_state: None,
        }
    }

    /// `ready`, whose writable part is queued (or who has none), waits for every write made
    /// so far.
    pub fn wait(&mut self, ready: Ready) {
        debug_assert!(!ready.must_persist(), "its write was queued");
        self.awaiting.push_back((self.last_made, ready));
    }

    /// The next write for storage, when storage holds none.
    pub fn next_to_write(&mut self) -> Option<DiskWrite> {
        if self.writing {
            return None;
        }
        let write = self.queued.pop_front()?;
        debug_assert_eq!(write.number, self.durable + 1, "writes go out in order");
        self.writing = true;
        Some(write)
    }

    /// Storage made write `number` durable.
    pub fn written(&mut self, number: u64) {
        debug_assert!(self.writing, "a write came back that was not handed out");
        debug_assert_eq!(number, self.durable + 1, "writes complete in order");
        self.writing = false;
        self.durable = number;
        if self.snapshot_write.is_some_and(|n| n <= number) {
            self.snapshot_write = None;
        }
    }

    /// The oldest `Ready` whose writes are all durable, if any.
    pub fn take_finished(&mut self) -> Option<Ready> {
        match self.awaiting.front() {
            Some((number, _)) if *number <= self.durable => {
                self.awaiting.pop_front().map(|(_, ready)| ready)
            }
            _ => None,
        }
    }

    /// The `Ready`s and queued writes, for the model checker's state hash.
    pub fn parts(&self) -> (&VecDeque<(u64, Ready)>, &VecDeque<DiskWrite>, bool, u64) {
        (&self.awaiting, &self.queued, self.writing, self.durable)
    }
}
