//! One copy of each distinct node state, shared by every cluster state that holds it.
//!
//! Owns: the table from a node's digest (ids as they are) to the one `Arc` of that node kept
//! for the search. The breadth-first queue holds millions of states that differ in one node or
//! only in their messages, while distinct node states are far fewer; sharing them keeps the
//! queue's memory to about the network and path records per state.
//! Must never: replace a node by one whose digest differs (the digest covers everything that
//! decides a node's future, as the checker's state identity already assumes), or change a node.

use super::cluster::{Cluster, Node};
use super::digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shards of the table, so checker threads seldom wait for each other.
const SHARDS: usize = 16;

/// The nodes met so far, by digest.
#[derive(Default)]
pub struct Interner {
    shards: [Mutex<HashMap<u64, Arc<Node>>>; SHARDS],
}

impl Interner {
    /// Replaces each node of `next` that differs from `before`'s (a node the last action
    /// changed) by the copy already kept for its digest, or keeps it as that copy.
    pub fn share(&self, before: &Cluster, next: &mut Cluster) {
        for (i, node) in next.nodes.iter_mut().enumerate() {
            if before.nodes.get(i).is_some_and(|b| Arc::ptr_eq(b, node)) {
                continue;
            }
            let key = digest::node_identity(node);
            let shard = &self.shards[(key as usize) % SHARDS];
            let mut table = match shard.lock() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            let kept = table.entry(key).or_insert_with(|| Arc::clone(node));
            if !Arc::ptr_eq(kept, node) {
                *node = Arc::clone(kept);
            }
        }
    }

    /// Distinct node states kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |t| t.len()))
            .sum()
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interner({} nodes)", self.len())
    }
}
