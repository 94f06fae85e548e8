//! Merging states that differ only in what no future step can observe.
//!
//! Owns: removing messages that can never again change their receiver, and clearing the path
//! records (votes, leaders, the term an entry was first seen committed in, the unacknowledged
//! persist, the highest index served) that no future action or check can read.
//! Must never: remove or clear anything a later action or check could still tell apart: every
//! rule here keeps the set of reachable property verdicts the same (the model tests compare
//! searches with and without it). A new action that can lower a node's term (a wiped or
//! damaged directory restarts at term 0) must lower `term_floor` with it, and one that
//! changes incarnations is already excluded by the guards below.

use super::cluster::Cluster;
use super::io::NodeShell;
use super::{Budget, Settings};
use crate::raft::{Message, MessageBody, NodeId, Recovery};

/// Whether nodes are introduced to their peers when they start (`introduce_peers`): with the
/// merges on, in a model without wipes or damage. A wipe (or a damaged disk) gives a node a
/// new incarnation while messages of its old one may still be in flight, and a node that
/// heard only the new one drops those where one that heard neither would take them, so the
/// introductions are no merge there.
pub fn introduces_peers(settings: &Settings) -> bool {
    settings.merge && !settings.budgets.allows_any(Budget::RESTART_EMPTY)
}

/// Lets a node that just started hear incarnation 0 of every peer, as a refused vote of term
/// 0 that it ignores. The core records, per peer, the highest incarnation heard; with no
/// directory ever lost every incarnation is 0, so a node that has not yet heard a peer behaves
/// exactly as one that has, and the record would only split states that behave alike.
pub fn introduce_peers(shell: &mut NodeShell, nodes: usize) {
    let me = shell.raft().status().id;
    debug_assert_eq!(
        shell.raft().status().incarnation,
        0,
        "introductions assume no directory is ever lost"
    );
    let before = (shell.raft().status(), shell.raft().has_ready());
    for from in (1..=nodes as NodeId).filter(|&p| p != me) {
        shell.raft_mut().step(Message {
            from,
            to: me,
            term: 0,
            from_incarnation: 0,
            to_incarnation: 0,
            body: MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: false,
            },
        });
    }
    debug_assert_eq!(
        (shell.raft().status(), shell.raft().has_ready()),
        before,
        "an introduction had an effect"
    );
}

/// Brings `c` to the representative of the states that behave as it does.
pub fn merge(c: &mut Cluster, settings: &Settings) {
    let floors: Vec<u64> = c.ids().map(|id| term_floor(c, id)).collect();
    drop_dead_messages(c, &floors, settings.pre_vote || settings.check_quorum);
    forget_records(c, &floors);
}

/// The lowest term node `id` can ever be in again: its term, or the term before its last
/// persist while a crash may still lose that persist. (Raft never lowers a term; the model's
/// persists are durable at once, so a restart comes back in the current term otherwise.)
fn term_floor(c: &Cluster, id: NodeId) -> u64 {
    if c.budgets.allows_any(Budget::RESTART_EMPTY) {
        return 0; // a node that starts with an empty directory starts again at term 0
    }
    let n = c.node(id);
    let term = n.raft().status().term;
    match &n.unacked {
        Some(u) if c.budgets.allows(Budget::Crash) => term.min(u.before.hard_state.term),
        _ => term,
    }
}

/// Removes every copy of a message whose delivery, now or at any later point, leaves its
/// receiver unchanged and sends nothing: such a message behaves as one that stays in flight
/// forever, which the model already allows.
fn drop_dead_messages(c: &mut Cluster, floors: &[u64], answers_stale_leaders: bool) {
    let dead: Vec<bool> = c
        .network
        .iter()
        .map(|m| {
            let floor = floors[(m.to - 1) as usize];
            plain(c, m) && ignored_from_then_on(m, floor, answers_stale_leaders)
        })
        .collect();
    let mut keep = dead.iter().map(|d| !d);
    c.network.retain(|_| keep.next().unwrap_or(true));
}

/// A message the guards let the rules judge: all incarnations 0 (no node ever lost its
/// directory, so the core admits it without touching its record of incarnations), an
/// ordinary receiver, and not an acknowledgement a crash may still take back (`Unacked`).
fn plain(c: &Cluster, m: &Message) -> bool {
    let to = c.node(m.to).raft().status();
    m.from_incarnation == 0
        && m.to_incarnation == 0
        && to.incarnation == 0
        && to.recovery == Recovery::Ordinary
        && !c
            .nodes
            .iter()
            .any(|n| n.unacked.as_ref().is_some_and(|u| u.acks.contains(m)))
}

/// True when a receiver whose term will never again be below `floor` takes `m` as a no-op:
/// answers and real vote requests of a lower term are ignored (leader messages of a lower term
/// too, unless pre-vote or check-quorum has the receiver answer them so the sender steps
/// down), and a granted pre-vote counts only at a pre-candidate one term below it.
fn ignored_from_then_on(m: &Message, floor: u64, answers_stale_leaders: bool) -> bool {
    match m.body {
        MessageBody::RequestVoteResponse {
            pre_vote: true,
            granted: true,
        } => floor >= m.term,
        MessageBody::RequestVote {
            pre_vote: false, ..
        }
        | MessageBody::RequestVoteResponse { .. }
        | MessageBody::AppendEntriesResponse { .. }
        | MessageBody::HeartbeatResponse { .. }
        | MessageBody::InstallSnapshotResponse { .. } => floor > m.term,
        MessageBody::AppendEntries { .. }
        | MessageBody::Heartbeat { .. }
        | MessageBody::InstallSnapshot { .. } => !answers_stale_leaders && floor > m.term,
        MessageBody::RequestVote { pre_vote: true, .. }
        | MessageBody::Probe
        | MessageBody::ProbeResponse { .. } => false,
    }
}

/// Clears what the checks can no longer read: a vote of a term its voter can never be in
/// again (no second grant can follow it), a leader of a term no node can be in again, the
/// term an entry was first seen committed in once every node is past it (the checks only ask
/// whether it is below a leader's term), and, once no crash or damage is left, the persist a
/// crash could lose and the highest index each node served (read only on a restart).
fn forget_records(c: &mut Cluster, floors: &[u64]) {
    let lowest = floors.iter().copied().min().unwrap_or(0);
    c.votes
        .retain(|&(term, voter, _)| floors[(voter - 1) as usize] <= term);
    c.leaders.retain(|&(term, _)| term >= lowest);
    for (_, first_seen_in) in &mut c.committed {
        if *first_seen_in < lowest {
            *first_seen_in = 0;
        }
    }
    if !c.budgets.allows_any([Budget::Crash, Budget::Damage]) {
        for id in 1..=c.nodes.len() as NodeId {
            let n = c.node(id);
            if n.unacked.is_some() || n.served != 0 {
                let n = c.node_mut(id);
                n.unacked = None;
                n.served = 0;
            }
        }
    }
}
