//! The identity of a cluster state for the checker: one 64-bit digest, equal for states that
//! differ only by a permutation of node ids (symmetry reduction).
//!
//! Owns: hashing every part of `Cluster` under a renaming of node ids, and choosing the
//! canonical renaming: the smallest digest over the renamings that list the nodes in the order
//! of an id-blind digest of each (ties tried in every order, so the choice depends only on the
//! state's class, never on which member of the class was met first).
//! Must never: leave out a part of the state that changes what can happen next (two states with
//! one digest are explored once), or hash a part that cannot (the time a timer needs).

use super::cluster::{Cluster, Node};
use crate::raft::{hash_entry, hash_hard_state, Message, MessageBody, NodeId};
use std::hash::{BuildHasher, Hash, Hasher};

/// The hasher of every digest: aHash with fixed keys (fast, well mixed, the same in every run).
type DigestHasher = ahash::AHasher;

fn hasher() -> DigestHasher {
    ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
    .build_hasher()
}

/// The canonical digest of `s`; with `symmetry` off, the digest under the identity renaming.
pub fn canonical(s: &Cluster, symmetry: bool) -> u64 {
    let n = s.nodes.len();
    if !symmetry {
        let identity: Vec<NodeId> = (1..=n as NodeId).collect();
        return digest(s, &identity);
    }
    let last_step = damage_left(s);
    let blind: Vec<u64> = s.nodes.iter().map(|n| node_blind(n, last_step)).collect();
    let mut best = u64::MAX;
    for_each_permutation(n, &mut |perm| {
        // perm[i] is the new id of node i + 1; keep renamings consistent with the blind order.
        let ordered = (0..n).all(|i| (0..n).all(|j| blind[i] >= blind[j] || perm[i] < perm[j]));
        if ordered {
            best = best.min(digest(s, perm));
        }
    });
    best
}

/// Calls `f` with every permutation of 1..=n (Heap's algorithm).
fn for_each_permutation(n: usize, f: &mut dyn FnMut(&[NodeId])) {
    let mut perm: Vec<NodeId> = (1..=n as NodeId).collect();
    let mut c = vec![0usize; n];
    f(&perm);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            let j = if i % 2 == 0 { 0 } else { c[i] };
            perm.swap(j, i);
            f(&perm);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

/// A node's digest with every id as it is (and every part of its disk): nodes equal under it
/// behave alike (`super::intern`).
pub fn node_identity(node: &Node) -> u64 {
    let mut h = hasher();
    hash_node(node, &mut h, &|id| id, true);
    h.finish()
}

/// A node's digest with every id (its own included) mapped to 0.
fn node_blind(node: &Node, last_step: bool) -> u64 {
    let mut h = hasher();
    hash_node(node, &mut h, &|_| 0, last_step);
    h.finish()
}

/// True while a damage may still strike: only then can a disk's last step be rolled back, so
/// only then does what it replaced tell states apart.
fn damage_left(s: &Cluster) -> bool {
    s.budgets.allows(super::Budget::Damage)
}

/// The digest of `s` with node `i + 1` renamed `perm[i]`.
fn digest(s: &Cluster, perm: &[NodeId]) -> u64 {
    let rename = |id: NodeId| {
        perm.get((id as usize).wrapping_sub(1))
            .copied()
            .unwrap_or(id)
    };
    let mut h = hasher();
    let mut order: Vec<usize> = (0..s.nodes.len()).collect();
    order.sort_unstable_by_key(|&i| perm[i]);
    for i in order {
        hash_node(&s.nodes[i], &mut h, &rename, damage_left(s));
    }
    let mut msgs: Vec<u64> = s
        .network
        .iter()
        .map(|m| {
            let mut mh = hasher();
            hash_message(m, &mut mh, &rename);
            mh.finish()
        })
        .collect();
    msgs.sort_unstable();
    msgs.hash(&mut h);
    s.history.hash(&mut h);
    s.budgets.hash(&mut h);
    let mut leaders: Vec<(u64, NodeId)> = s.leaders.iter().map(|&(t, l)| (t, rename(l))).collect();
    leaders.sort_unstable();
    leaders.hash(&mut h);
    let mut votes: Vec<(u64, NodeId, NodeId)> = s
        .votes
        .iter()
        .map(|&(t, v, c)| (t, rename(v), rename(c)))
        .collect();
    votes.sort_unstable();
    votes.hash(&mut h);
    s.committed.hash(&mut h);
    s.violation.as_ref().map(|v| v.property).hash(&mut h);
    h.finish()
}

fn hash_node(
    node: &Node,
    h: &mut DigestHasher,
    rename: &dyn Fn(NodeId) -> NodeId,
    last_step: bool,
) {
    node.shell.hash_state(h, rename);
    hash_durable(&node.durable, h, rename, last_step);
    node.served.hash(h);
    match &node.unacked {
        None => 0u8.hash(h),
        Some(u) => {
            1u8.hash(h);
            hash_durable(&u.before, h, rename, last_step);
            for m in &u.acks {
                hash_message(m, h, rename);
            }
        }
    }
}

/// The disk: sled's hard state and log, the record, and (`last_step`, while a damage may
/// still roll it back) what the last persist step replaced. The model takes no snapshots, and
/// a damage is read by the restart it comes with, so neither is ever held.
fn hash_durable(
    d: &super::io::Durable,
    h: &mut DigestHasher,
    rename: &dyn Fn(NodeId) -> NodeId,
    last_step: bool,
) {
    debug_assert!(d.snapshot.is_none() && d.damage.is_none());
    hash_hard_state(&d.hard_state, h, rename);
    d.log.len().hash(h);
    for e in &d.log {
        hash_entry(e, h);
    }
    hash_record(d.record.as_ref(), h, rename);
    let undo = d.last_step().filter(|_| last_step);
    undo.is_some().hash(h);
    if let Some(undo) = undo {
        hash_hard_state(&undo.hard_state, h, rename);
        (undo.wrote_hard_state, undo.log_len).hash(h);
        hash_record(undo.record.as_ref(), h, rename);
    }
}

fn hash_record(
    record: Option<&crate::sim::disk::Record>,
    h: &mut DigestHasher,
    rename: &dyn Fn(NodeId) -> NodeId,
) {
    record.is_some().hash(h);
    if let Some(r) = record {
        let d = &r.durable;
        (
            d.term,
            d.vote.map(rename),
            d.recovery,
            d.incarnation,
            r.last,
        )
            .hash(h);
    }
}

/// Every field of a message, ids renamed.
pub fn hash_message<H: Hasher>(m: &Message, h: &mut H, rename: &dyn Fn(NodeId) -> NodeId) {
    (rename(m.from), rename(m.to), m.term).hash(h);
    (m.from_incarnation, m.to_incarnation).hash(h);
    match &m.body {
        MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
        } => (0u8, pre_vote, last_log_index, last_log_term).hash(h),
        MessageBody::RequestVoteResponse { pre_vote, granted } => (1u8, pre_vote, granted).hash(h),
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_ctx,
        } => {
            (2u8, prev_log_index, prev_log_term, leader_commit, read_ctx).hash(h);
            entries.len().hash(h);
            for e in entries {
                hash_entry(e, h);
            }
        }
        MessageBody::AppendEntriesResponse {
            success,
            index,
            hint_term,
            rejected,
            read_ctx,
        } => (3u8, success, index, hint_term, rejected, read_ctx).hash(h),
        MessageBody::Heartbeat {
            commit,
            read_ctx,
            uncapped,
        } => (4u8, commit, read_ctx, uncapped).hash(h),
        MessageBody::HeartbeatResponse { read_ctx } => (5u8, read_ctx).hash(h),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => (6u8, meta.index, meta.term, offset, data, done).hash(h),
        MessageBody::InstallSnapshotResponse {
            offset,
            done,
            snapshot_index,
        } => (7u8, offset, done, snapshot_index).hash(h),
        MessageBody::Probe => 8u8.hash(h),
        MessageBody::ProbeResponse {
            last_log_term,
            last_log_index,
        } => (9u8, last_log_term, last_log_index).hash(h),
    }
}
