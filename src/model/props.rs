//! The properties checked in every reachable state, and the reachability checks that catch a
//! model that never does anything.
//!
//! Owns: the state invariants (election safety, log matching, leader completeness, committed
//! entries out of reach of any electable node lacking them), the rejoin rules judged on every
//! message sent (`rejoin_rule_broken`), and the property list handed to the checker, including
//! those checked on transitions (see `cluster`) and the bounded liveness check (`liveness`).
//! Must never: change a state; every function here reads only.

use super::cluster::{
    Cluster, APPLIED_STAYS_DURABLE, COMMIT_NEVER_GOES_BACK, LINEARIZABLE, ONE_VOTE_PER_TERM,
    RECOVERY, STATE_MACHINE_SAFETY,
};
use super::restart::{RESTART_KEEPS_VOTES, RESTART_OWES};
use super::{RaftModel, State};
use crate::check::{EventKind, Op};
use crate::raft::{Message, MessageBody, Recovery, Role};
use stateright::Property;

pub const ELECTION_SAFETY: &str = "election safety";
pub const LOG_MATCHING: &str = "log matching";
pub const LEADER_COMPLETENESS: &str = "leader completeness";
pub const COMMITTED_OUT_OF_REACH: &str = "no electable node lacks a committed entry";
pub const REJOINING_GRANTS_NO_VOTE: &str = "a rejoining node grants no vote or pre-vote";
pub const PROBING_ACKNOWLEDGES_NOTHING: &str = "a probing node acknowledges nothing";
pub const CAUGHT_UP: &str =
    "a node ends its catch-up lacking only entries a majority of the others hold";
pub const PROBE_ROUND_KEEPS_VOTES: &str =
    "a node ending its probe round holds a vote at the term of every vote it granted";
pub const A_LEADER_IS_ELECTED: &str = "a leader is elected";
pub const A_WRITE_COMMITS: &str = "a write commits";
pub const A_READ_IS_SERVED: &str = "a read is served";

/// Every property, safety first, then reachability. The safety ones read the violation that
/// `state_violation` and the transitions recorded when the state was made.
pub fn all() -> Vec<Property<RaftModel>> {
    vec![
        Property::always(ELECTION_SAFETY, |_, s: &State| {
            !violated(&s.cluster, ELECTION_SAFETY)
        }),
        Property::always(ONE_VOTE_PER_TERM, |_, s: &State| {
            !violated(&s.cluster, ONE_VOTE_PER_TERM)
        }),
        Property::always(LOG_MATCHING, |_, s: &State| {
            !violated(&s.cluster, LOG_MATCHING)
        }),
        Property::always(LEADER_COMPLETENESS, |_, s: &State| {
            !violated(&s.cluster, LEADER_COMPLETENESS)
        }),
        Property::always(COMMITTED_OUT_OF_REACH, |_, s: &State| {
            !violated(&s.cluster, COMMITTED_OUT_OF_REACH)
        }),
        Property::always(STATE_MACHINE_SAFETY, |_, s: &State| {
            !violated(&s.cluster, STATE_MACHINE_SAFETY)
        }),
        Property::always(COMMIT_NEVER_GOES_BACK, |_, s: &State| {
            !violated(&s.cluster, COMMIT_NEVER_GOES_BACK)
        }),
        Property::always(APPLIED_STAYS_DURABLE, |_, s: &State| {
            !violated(&s.cluster, APPLIED_STAYS_DURABLE)
        }),
        Property::always(LINEARIZABLE, |_, s: &State| {
            !violated(&s.cluster, LINEARIZABLE)
        }),
        Property::always(RECOVERY, |_, s: &State| !violated(&s.cluster, RECOVERY)),
        Property::always(RESTART_OWES, |_, s: &State| {
            !violated(&s.cluster, RESTART_OWES)
        }),
        Property::always(RESTART_KEEPS_VOTES, |_, s: &State| {
            !violated(&s.cluster, RESTART_KEEPS_VOTES)
        }),
        Property::always(REJOINING_GRANTS_NO_VOTE, |_, s: &State| {
            !violated(&s.cluster, REJOINING_GRANTS_NO_VOTE)
        }),
        Property::always(PROBING_ACKNOWLEDGES_NOTHING, |_, s: &State| {
            !violated(&s.cluster, PROBING_ACKNOWLEDGES_NOTHING)
        }),
        Property::always(CAUGHT_UP, |_, s: &State| !violated(&s.cluster, CAUGHT_UP)),
        Property::always(PROBE_ROUND_KEEPS_VOTES, |_, s: &State| {
            !violated(&s.cluster, PROBE_ROUND_KEEPS_VOTES)
        }),
        Property::always(super::liveness::REJOINS, |_, s: &State| {
            !violated(&s.cluster, super::liveness::REJOINS)
        }),
        Property::sometimes(A_LEADER_IS_ELECTED, |_, s: &State| {
            !s.cluster.leaders.is_empty()
        }),
        Property::sometimes(A_WRITE_COMMITS, |_, s: &State| {
            completed(&s.cluster, Op::Write)
        }),
        Property::sometimes(A_READ_IS_SERVED, |_, s: &State| {
            completed(&s.cluster, Op::Read)
        }),
    ]
}

/// A state invariant: what breaks it, if anything.
type StateCheck = fn(&Cluster) -> Option<String>;

/// The first state invariant `s` breaks, with what breaks it.
pub fn state_violation(s: &Cluster) -> Option<(&'static str, String)> {
    let checks: [(&'static str, StateCheck); 4] = [
        (ELECTION_SAFETY, election_safety),
        (LOG_MATCHING, log_matching),
        (LEADER_COMPLETENESS, leader_completeness),
        (COMMITTED_OUT_OF_REACH, committed_out_of_reach),
    ];
    checks
        .iter()
        .find_map(|(name, check)| check(s).map(|detail| (*name, detail)))
}

/// What is wrong with `s` for `property`, in words; `None` when it holds.
pub fn explain(s: &Cluster, property: &str) -> Option<String> {
    s.violation
        .as_ref()
        .filter(|v| v.property == property)
        .map(|v| v.detail.clone())
}

fn violated(s: &Cluster, property: &str) -> bool {
    s.violation.as_ref().is_some_and(|v| v.property == property)
}

fn completed(s: &Cluster, f: Op) -> bool {
    s.history
        .iter()
        .any(|e| e.f == f && e.kind == EventKind::Ok)
}

/// At most one leader per term, over the whole path.
fn election_safety(s: &Cluster) -> Option<String> {
    s.leaders.windows(2).find_map(|w| {
        (w[0].0 == w[1].0).then(|| {
            format!(
                "n{} and n{} were both leader of term {}",
                w[0].1, w[1].1, w[0].0
            )
        })
    })
}

/// Two logs holding an entry of the same index and term hold the same entries up to it.
fn log_matching(s: &Cluster) -> Option<String> {
    for (i, a) in s.nodes.iter().enumerate() {
        for b in &s.nodes[i + 1..] {
            let (la, lb) = (a.raft().log(), b.raft().log());
            let Some(top) = la.iter().zip(lb).rposition(|(x, y)| x.term == y.term) else {
                continue;
            };
            if let Some(k) = (0..top).find(|&k| la[k] != lb[k]) {
                return Some(format!(
                    "n{} and n{} agree at {}/{} but differ at {}",
                    a.raft().status().id,
                    b.raft().status().id,
                    la[top].index,
                    la[top].term,
                    la[k].index
                ));
            }
        }
    }
    None
}

/// Every leader holds every entry committed in an earlier term than its own. (A leader cut
/// off in an old term may lack entries committed since; it can commit nothing.)
fn leader_completeness(s: &Cluster) -> Option<String> {
    for n in &s.nodes {
        let st = n.raft().status();
        if st.role != Role::Leader {
            continue;
        }
        if let Some((index, term)) = missing_committed(s, n, st.term) {
            return Some(format!(
                "leader n{} of term {} lacks committed entry {index}/{term}",
                st.id, st.term
            ));
        }
    }
    None
}

/// Leader completeness one step ahead: a node lacking a committed entry cannot win an
/// election, because enough other nodes hold logs strictly more up to date than its own to
/// refuse it a majority. (A leader of term T commits through an entry of T on a majority, so
/// every node lacking an earlier committed entry ends in a lower term; committing an entry of
/// an earlier term by counting breaks this at once, long before another leader overwrites it.)
fn committed_out_of_reach(s: &Cluster) -> Option<String> {
    let n = s.nodes.len();
    let refusers_needed = n - (n / 2 + 1) + 1;
    // A node still rejoining after it lost its directory neither campaigns nor votes.
    let rejoining = |o: &super::cluster::Node| o.raft().status().recovery != Recovery::Ordinary;
    for lacking in s.nodes.iter().filter(|o| !rejoining(o)) {
        let Some((index, term)) = missing_committed(s, lacking, u64::MAX) else {
            continue;
        };
        let mine = last_position(lacking);
        let refusers = s
            .nodes
            .iter()
            .filter(|o| rejoining(o) || last_position(o) > mine)
            .count();
        if refusers < refusers_needed {
            let id = lacking.raft().status().id;
            return Some(format!(
                "n{id} lacks committed entry {index}/{term} yet its log (last {}/{}) is as up \
                 to date as all but {refusers} other nodes' (a majority would elect it)",
                mine.1, mine.0
            ));
        }
    }
    None
}

/// (last term, last index) of a node's log: the order of Raft's up-to-date check.
fn last_position(n: &super::cluster::Node) -> (u64, u64) {
    let st = n.raft().status();
    (n.raft().term_at(st.last_index).unwrap_or(0), st.last_index)
}

/// The first entry committed before term `before` that `n`'s log lacks, as (index, term).
fn missing_committed(s: &Cluster, n: &super::cluster::Node, before: u64) -> Option<(u64, u64)> {
    s.committed
        .iter()
        .enumerate()
        .find_map(|(i, &(term, committed_in))| {
            let index = i as u64 + 1;
            (committed_in < before && n.raft().term_at(index) != Some(term))
                .then_some((index, term))
        })
}

/// The rejoin rule a message breaks as it leaves a node whose recovery mark is `recovery`
/// (checked on every message sent, by the simulator's own rule): a node rejoining after it
/// lost its directory grants no vote or pre-vote (it may have voted in its earlier life, and
/// may lack committed entries), and while its probe round is owed it acknowledges no append,
/// heartbeat or snapshot (its term and vote are unknown). The rule's name and what broke it.
pub fn rejoin_rule_broken(recovery: Recovery, m: &Message) -> Option<(&'static str, String)> {
    let what = crate::sim::cluster::rejoin_rule_broken(recovery, m)?;
    let rule = match m.body {
        MessageBody::RequestVoteResponse { .. } => REJOINING_GRANTS_NO_VOTE,
        _ => PROBING_ACKNOWLEDGES_NOTHING,
    };
    let short = crate::sim::cluster::short(m);
    Some((rule, format!("n{} {what} ({recovery:?}): {short}", m.from)))
}

/// Checked when node `id` turns from catching up to ordinary: every committed entry it lacks is
/// held by a majority of the other nodes (so it never counts towards electing a node without
/// that entry, nor lets one win). What breaks it, if anything.
///
/// Why the correct core keeps it: the node turns ordinary in term T on a message from T's
/// leader L addressed to its current incarnation, holding everything up to L's commit index c
/// when L sent it, and holding an entry of term T as its last. Its log then matches L's up to
/// that entry, and L's first entry of T follows every entry L held when elected, which include
/// every entry committed before T (leader completeness): the node holds all of those. An entry
/// committed in T at an index the node lacks is above c, so L committed it after it sent the
/// message, hence after it heard the new incarnation and reset its view of this node; the
/// acknowledgements of the earlier incarnation no longer count (they are dropped), and the new
/// one never acknowledged an entry it lacks: the majority that committed it is among the other
/// nodes, which keep it (a committed entry's acknowledgement has left, so no crash takes its
/// persist back, and no other node loses its directory while this one rejoins). No entry is
/// committed in a term above T without this node: its probe round asked every peer, so it is
/// in a term at least that of any leader that had heard its earlier incarnation, and its new
/// incarnation, in term T, acknowledges nothing of a later term.
pub fn caught_up_lacking(s: &Cluster, id: crate::raft::NodeId) -> Option<String> {
    let quorum = s.nodes.len() / 2 + 1;
    let holds =
        |n: &super::cluster::Node, index: u64, term: u64| n.raft().term_at(index) == Some(term);
    let me = s.node(id);
    s.committed.iter().enumerate().find_map(|(i, &(term, _))| {
        let index = i as u64 + 1;
        if holds(me, index, term) {
            return None;
        }
        let holders = s
            .nodes
            .iter()
            .filter(|n| n.raft().status().id != id && holds(n, index, term))
            .count();
        (holders < quorum).then(|| {
            format!(
                "n{id} ended its catch-up without committed entry {index}/{term}, which only \
                 {holders} other node(s) hold (a majority is {quorum})"
            )
        })
    })
}

/// Checked when node `id` ends its probe round: at the term of any vote it granted (in an
/// earlier life: a probing node grants none), it holds a vote, so it never grants a second
/// one in that term. The correct core keeps it: a probe round ends only in `finish_probing`,
/// which takes its term with a vote for itself, whatever the term.
pub fn probe_round_forgets_a_vote(s: &Cluster, id: crate::raft::NodeId) -> Option<String> {
    let st = s.node(id).raft().status();
    if st.vote.is_some() {
        return None;
    }
    s.votes
        .iter()
        .find(|&&(term, voter, _)| voter == id && term == st.term)
        .map(|&(term, _, candidate)| {
            format!(
                "n{id} ended its probe round in term {term} with no vote, although it voted \
                 for n{candidate} in that term before it lost its state"
            )
        })
}
