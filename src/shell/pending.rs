//! Client requests waiting on the core: proposals by log index, ReadIndex reads by id.
//!
//! Owns: which token waits for what, and handing each token out exactly once.
//! Must never: decide an answer (the shell does), or keep a token after handing it out.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use crate::raft::{Proposal, ReadReady};

/// The waiting requests of one shell. `T` is the caller's token, `Q` a read's query.
#[derive(Clone)]
pub struct Pending<T, Q> {
    /// Proposals by log index, each with the term it was proposed in. An index holds more
    /// than one only when leaders of different terms proposed there.
    proposals: BTreeMap<u64, Vec<(u64, T)>>,
    /// Reads by id, not yet confirmed by a quorum.
    reads: HashMap<u64, (T, Q)>,
    /// Confirmed reads with their read index, served once the applied index reaches it.
    confirmed: Vec<(u64, T, Q)>,
    next_read_id: u64,
}

impl<T, Q> Default for Pending<T, Q> {
    fn default() -> Self {
        Pending {
            proposals: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed: Vec::new(),
            next_read_id: 1,
        }
    }
}

impl<T, Q> Pending<T, Q> {
    pub fn add_proposal(&mut self, proposal: Proposal, token: T) {
        let waiting = self.proposals.entry(proposal.index).or_default();
        debug_assert!(
            waiting.iter().all(|(term, _)| *term != proposal.term),
            "one proposal per index and term"
        );
        waiting.push((proposal.term, token));
    }

    /// The id the next read will get (ids are unique per shell).
    pub fn next_read_id(&self) -> u64 {
        self.next_read_id
    }

    pub fn add_read(&mut self, id: u64, token: T, query: Q) {
        debug_assert_eq!(id, self.next_read_id);
        self.next_read_id += 1;
        self.reads.insert(id, (token, query));
    }

    pub fn take_proposals_at(&mut self, index: u64) -> Vec<(u64, T)> {
        self.proposals.remove(&index).unwrap_or_default()
    }

    /// Every proposal at or below `index`.
    pub fn take_proposals_through(&mut self, index: u64) -> Vec<T> {
        let rest = self.proposals.split_off(&(index + 1));
        let covered = std::mem::replace(&mut self.proposals, rest);
        covered
            .into_values()
            .flatten()
            .map(|(_, token)| token)
            .collect()
    }

    pub fn take_read(&mut self, id: u64) -> Option<T> {
        self.reads.remove(&id).map(|(token, _)| token)
    }

    /// The core confirmed these reads: they wait for the applied index to reach theirs.
    pub fn confirm_reads(&mut self, reads: &[ReadReady]) {
        for read in reads {
            if let Some((token, query)) = self.reads.remove(&read.id) {
                self.confirmed.push((read.index, token, query));
            }
        }
    }

    /// The confirmed reads whose read index is at or below `applied`, in confirmation order.
    pub fn take_servable_reads(&mut self, applied: u64) -> Vec<(T, Q)> {
        if self.confirmed.iter().all(|(index, _, _)| *index > applied) {
            return Vec::new();
        }
        let (serve, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _, _)| *index <= applied);
        self.confirmed = wait;
        serve.into_iter().map(|(_, t, q)| (t, q)).collect()
    }

    pub fn take_proposals_where(&mut self, mut pick: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut taken = Vec::new();
        for waiting in self.proposals.values_mut() {
            let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(waiting)
                .into_iter()
                .partition(|(_, t)| pick(t));
            *waiting = keep;
            taken.extend(out.into_iter().map(|(_, t)| t));
        }
        self.proposals.retain(|_, waiting| !waiting.is_empty());
        taken
    }

    /// Unconfirmed and confirmed reads alike.
    pub fn take_reads_where(&mut self, mut pick: impl FnMut(&T) -> bool) -> Vec<T> {
        let ids: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, (t, _))| pick(t))
            .map(|(id, _)| *id)
            .collect();
        let mut taken: Vec<T> = ids.iter().filter_map(|id| self.take_read(*id)).collect();
        let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(_, t, _)| pick(t));
        self.confirmed = keep;
        taken.extend(out.into_iter().map(|(_, t, _)| t));
        taken
    }
}

impl<T: Hash, Q: Hash> Pending<T, Q> {
    /// Feeds every waiting request into `h` in an order that does not depend on the hash
    /// map's (for a model checker's state digest).
    pub fn hash_state<H: Hasher>(&self, h: &mut H) {
        self.proposals.hash(h);
        let mut reads: Vec<(&u64, &(T, Q))> = self.reads.iter().collect();
        reads.sort_unstable_by_key(|(id, _)| **id);
        reads.hash(h);
        (&self.confirmed, self.next_read_id).hash(h);
    }
}
