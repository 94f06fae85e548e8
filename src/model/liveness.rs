//! A bounded liveness check: a node rejoining after it started empty (a wipe, or a damaged
//! start) becomes ordinary again under a steady leader once the faults are over.
//!
//! Owns: the fair, fault-free continuation played on a copy of a state, and its verdict.
//! Must never: change the state it judges (it plays on a clone), or judge a state where the
//! continuation proves nothing (a fault still to come, no leader, or a leader that loses its
//! leadership during the continuation or sees another node reach a later term: those pass).
//!
//! The check, in a state where every fault budget is spent, some node is not ordinary and a
//! leader holds the highest term of any node: from a copy of the state, `ROUNDS` rounds of
//! (deliver every message in flight, the first in the network's order each time, until none is
//! left; then the leader's timer fires, and so does the timer of every node still probing, so
//! that probes lost earlier are sent again). If the leader still leads after them and no node
//! is in a later term, every node must be ordinary. For the correct core this holds: the rejoining node's probes reach every
//! peer and their answers come back in the first round, so it is catching up in the leader's
//! term; its probe told the leader its new incarnation, so the leader probes it from the end of
//! its log, walks back on each rejection (one entry per append) and refills it within the
//! deliveries of the following rounds; the refill's last accepted append reaches the leader's
//! commit and holds the leader's own-term entry, which ends the catch-up. `ROUNDS` is a bound
//! (a longer log could need more), stated in the module doc of `super` and the README.

use super::cluster::Cluster;
use super::{Budget, Settings};
use crate::raft::{NodeId, Recovery, Role};

pub const REJOINS: &str = "a rejoining node becomes ordinary under a steady leader";

/// Rounds of the continuation.
pub const ROUNDS: usize = 6;
/// Deliveries in one round at most (far more than a round of three to five nodes with the
/// model's bounded logs needs). A continuation that still has messages in flight after its
/// last round gives no verdict.
const MAX_DELIVERIES: usize = 100;

/// What is wrong with `c` for `REJOINS`, if anything.
pub fn violation(c: &Cluster, settings: &Settings) -> Option<String> {
    let faults_left = c.budgets.allows_any(Budget::FAULTS.map(|(b, _)| b));
    if faults_left || c.all_ordinary() {
        return None;
    }
    let (leader, term) = steady_leader(c)?;
    let mut run = c.clone();
    for _ in 0..ROUNDS {
        deliver_all(&mut run);
        if !leads(&run, leader, term) {
            return None;
        }
        if run.all_ordinary() {
            return None;
        }
        run.fire_timer(leader, settings, true);
        let probing: Vec<NodeId> = run
            .ids()
            .filter(|&id| run.node(id).raft().status().recovery == Recovery::Probing)
            .collect();
        for id in probing {
            run.fire_timer(id, settings, true);
        }
    }
    deliver_all(&mut run);
    if !run.network.is_empty() || !leads(&run, leader, term) || run.all_ordinary() {
        return None;
    }
    let marks: Vec<String> = run
        .nodes
        .iter()
        .map(|n| {
            let st = n.raft().status();
            format!("n{} {:?} (log to {})", st.id, st.recovery, st.last_index)
        })
        .collect();
    Some(format!(
        "after {ROUNDS} fault-free rounds under leader n{leader} of term {term} (every message \
         delivered, then its timer), a node is still rejoining: {}",
        marks.join(", ")
    ))
}

/// The leader whose term no node is above, with that term.
fn steady_leader(c: &Cluster) -> Option<(NodeId, u64)> {
    let top = c.nodes.iter().map(|n| n.raft().status().term).max()?;
    c.nodes.iter().find_map(|n| {
        let st = n.raft().status();
        (st.role == Role::Leader && st.term == top).then_some((st.id, top))
    })
}

/// Node `id` still leads `term` and no node is in a later term (one that is may wait for an
/// election the continuation never starts: a stale leader is not steady).
fn leads(c: &Cluster, id: NodeId, term: u64) -> bool {
    steady_leader(c) == Some((id, term))
}

fn deliver_all(c: &mut Cluster) {
    for _ in 0..MAX_DELIVERIES {
        let Some(m) = c.network.first().cloned() else {
            return;
        };
        c.deliver(&m);
    }
}
