//! A hash of a shell's state for state-space search (the model checker), and its `Clone`, so
//! a checker can branch a node that runs this very shell.
//!
//! Owns: the projection of [`Shell`] that decides its future behaviour: the core (through
//! [`Raft::hash_state`]), the state machine, the applied point and snapshot point, the client
//! requests waiting, a persist in flight, and the hard state written and the one deferred to the
//! next flush; node ids passed through the checker's renaming.
//! Must never: change the shell, or feed counters that only measure (`stats`) or the fixed
//! configuration (voters, settings) into the hash.

use super::{Shell, StateMachine};
use crate::raft::{hash_entry, hash_hard_state, NodeId, Raft};
use std::hash::{Hash, Hasher};

impl<M, T> Clone for Shell<M, T>
where
    M: StateMachine + Clone,
    M::Query: Clone,
    T: Clone,
{
    fn clone(&self) -> Self {
        Shell {
            raft: self.raft.clone(),
            machine: self.machine.clone(),
            voters: self.voters.clone(),
            settings: self.settings,
            applied: self.applied,
            applied_term: self.applied_term,
            snapshot_point: self.snapshot_point,
            pending: self.pending.clone(),
            in_flight: self.in_flight.clone(),
            written: self.written,
            deferred: self.deferred,
            deferred_ticks: self.deferred_ticks,
            stats: self.stats,
        }
    }
}

impl<M, T> Shell<M, T>
where
    M: StateMachine + Hash,
    M::Query: Hash,
    T: Hash,
{
    /// Feeds the shell's state into `h`, every node id mapped through `rename` (see
    /// [`Raft::hash_state`]).
    pub fn hash_state<H: Hasher>(&self, h: &mut H, rename: &dyn Fn(NodeId) -> NodeId) {
        Raft::hash_state(&self.raft, h, rename);
        self.machine.hash(h);
        (self.applied, self.applied_term, self.snapshot_point).hash(h);
        self.pending.hash_state(h);
        hash_hard_state(&self.written, h, rename);
        self.deferred.is_some().hash(h);
        if let Some(hs) = &self.deferred {
            hash_hard_state(hs, h, rename);
            self.deferred_ticks.hash(h);
        }
        self.in_flight.is_some().hash(h);
        if let Some(ready) = &self.in_flight {
            // What is still to happen once the persist finishes; its messages already left.
            ready.entries.len().hash(h);
            for e in &ready.entries {
                hash_entry(e, h);
            }
            ready.hard_state.is_some().hash(h);
            if let Some(hs) = &ready.hard_state {
                hash_hard_state(hs, h, rename);
            }
            for m in &ready.persisted_messages {
                (rename(m.from), rename(m.to), m.term).hash(h);
            }
            let snapshot = ready.snapshot.as_ref();
            snapshot
                .map(|(meta, data)| (meta.index, meta.term, data.len()))
                .hash(h);
        }
    }
}
