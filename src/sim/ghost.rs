//! Ghost knowledge: what the simulator knows about every node that the node itself cannot
//! (what it really made durable before its disk was damaged, which votes it granted in earlier
//! lives, what its leader had committed when it sent a message), and the rejoin rules checked
//! against it.
//!
//! Owns: the per-node ghost record and the rule checks on starts, on the end of a probe round
//! and on the end of a catch-up. The checks hold for the correct core and start decision in
//! every run (each says why next to it), so every sweep runs them, not only the hunts.
//! Must never: influence a run (no random draw, no event, no repair): a check only reports.

use super::cluster::Time;
use crate::raft::{HardState, NodeId, Recovery};
use crate::shell::rejoin::{Start, StartRead, Stored};

/// A vote a node granted (sent a granted, non-pre-vote answer for).
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    pub at: Time,
    pub term: u64,
    /// The candidate's index in the cluster (from 0).
    pub candidate: usize,
}

/// What the simulator knows about one node beyond what the node can read.
#[derive(Clone, Debug, Default)]
pub struct NodeGhost {
    /// The hard state of the node's last durable persist step when it went down (before any
    /// damage to its disk); None when its directory holds nothing (first boot, wiped).
    pub truth: Option<HardState>,
    /// When the node last started with its term and vote unknown (probing); None before boot.
    pub lost_state_at: Option<Time>,
    /// Every vote it granted, in order.
    pub grants: Vec<Grant>,
    /// Its recovering mark as of its last step.
    pub recovery: Recovery,
}

/// The rules a start decision must keep, checked against what the start read (`read`), the
/// node's real last durable hard state (`truth`, None after a wipe) and the decision (`start`).
/// Err names the broken rule.
///
/// Why each holds for the correct decision:
/// - Starting as it is needs both copies of the mark intact and ordinary, and the node really
///   ordinary: the decision starts as it is only when both copies read intact, undamaged and
///   ordinary; a copy that says rejoining may be the current one (a kill between sled's flush and
///   the record's write leaves the record one step behind, and a damaged copy may be the newer
///   one), so either copy saying rejoining means the rejoining may be unfinished.
/// - A start where the probe round is owed (an intact copy, or the node's real hard state, says
///   probing) probes again: a term learned while probing is not known. The decision probes
///   whenever an intact copy says probing, and a directory that really said probing can only
///   show an older copy (which says probing too: the directory was written probing first) or an
///   unreadable one, which makes term and vote unknown.
/// - A start that carries term and vote forward carries at least what the node really held
///   (a higher term, or the same term with the same vote, or any vote when it held none): the
///   decision carries them only when both copies read intact, and each intact copy is the real
///   one or an older one (a rolled-back step, a record one step behind), so the larger of the
///   two by term, then by vote, is at least the real one.
pub fn check_start(
    read: &StartRead,
    truth: Option<HardState>,
    start: &Start,
) -> Result<(), String> {
    let copies = [read.hard_state, read.record];
    let intact_marks: Vec<Recovery> = copies
        .iter()
        .filter_map(|c| match c {
            Stored::Intact(d) => Some(d.recovery),
            _ => None,
        })
        .collect();
    let truly_probing = truth.is_some_and(|t| t.recovery == Recovery::Probing);
    let probe_owed = truly_probing || intact_marks.contains(&Recovery::Probing);
    match start {
        Start::AsIs => {
            let marks_ordinary =
                intact_marks.len() == 2 && intact_marks.iter().all(|m| *m == Recovery::Ordinary);
            let truly_ordinary = truth.is_none_or(|t| t.recovery == Recovery::Ordinary);
            if read.damaged || !marks_ordinary || !truly_ordinary {
                return Err(format!(
                    "started as it is on a directory that was damaged or not ordinary in both \
                     copies of the mark ({read:?}, real hard state {truth:?})"
                ));
            }
        }
        Start::Empty(how) if how.recovery == Recovery::Probing => {}
        Start::Empty(how) => {
            if probe_owed {
                return Err(format!(
                    "restarted as known ({:?} term {} vote {:?}) while its probe round was owed \
                     ({read:?}, real hard state {truth:?})",
                    how.recovery, how.term, how.vote
                ));
            }
            if let Some(t) = truth {
                if !carries_at_least(how.term, how.vote, t.term, t.vote) {
                    return Err(format!(
                        "carried term {} vote {:?} forward below its real term {} vote {:?} \
                         ({read:?})",
                        how.term, how.vote, t.term, t.vote
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Is (term, vote) carried forward at least the real (real_term, real_vote)?
fn carries_at_least(
    term: u64,
    vote: Option<NodeId>,
    real_term: u64,
    real_vote: Option<NodeId>,
) -> bool {
    term > real_term || (term == real_term && (real_vote.is_none() || vote == real_vote))
}

/// The lowest term node `i` may take when its probe round ends, and the vote that asks for it:
/// the highest term in which it granted a vote in an earlier life (before its last start with
/// term and vote unknown) to a candidate that has kept its state since the grant.
///
/// Why the correct core keeps it: the round ends only once every other node answered this
/// incarnation's probe, after the loss; the candidate persisted that term before asking for
/// votes and has not lost its state since (a start that carries term and vote forward carries
/// at least the real ones, see [`check_start`]), so its answer is at least that term, and the
/// node takes the highest term answered.
pub fn probe_floor(ghosts: &[NodeGhost], i: usize) -> Option<Grant> {
    let lost_at = ghosts[i].lost_state_at?;
    ghosts[i]
        .grants
        .iter()
        .filter(|g| g.at < lost_at)
        .filter(|g| ghosts[g.candidate].lost_state_at.is_none_or(|l| l < g.at))
        .max_by_key(|g| g.term)
        .copied()
}

/// A node that turned ordinary on a message from its leader holds every entry that leader had
/// committed when it sent the message (`leader_commit`: for an append or an uncapped heartbeat
/// the commit it carries, otherwise the sender's commit index when it sent it).
///
/// Why the correct core keeps it: catch-up ends only on an accepted append whose entries reach
/// the commit index it carries, or on a heartbeat flagged as carrying the leader's own commit
/// index, with this node's log matching up to there.
pub fn check_caught_up(last_index: u64, leader_commit: u64) -> Result<(), String> {
    if last_index < leader_commit {
        return Err(format!(
            "turned ordinary holding entries up to {last_index} only, while its leader had \
             committed up to {leader_commit} when it sent the message that ended its catch-up"
        ));
    }
    Ok(())
}

/// A leader's heartbeat that carries the leader's whole commit index (`commit`, equal to the
/// leader's commit index when the simulator routes it, `leader_commit`) is flagged uncapped, so
/// an idle leader ends a follower's catch-up.
///
/// Why the correct core keeps it: a heartbeat carries the commit index capped at the
/// follower's match point, flagged uncapped exactly when the cap does not bite; a commit index
/// never falls, so one carried equal to the leader's commit index when routed equals the one
/// it had when it made the heartbeat (a heartbeat may wait for the leader's own persist).
pub fn check_heartbeat(commit: u64, leader_commit: u64, uncapped: bool) -> Result<(), String> {
    if commit == leader_commit && !uncapped {
        return Err(format!(
            "sent a heartbeat carrying its whole commit index {commit} without flagging it \
             uncapped"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::rejoin::tests::read;
    use crate::shell::rejoin::{decide, Durable, RejoinBugs};

    fn hs(term: u64, vote: Option<NodeId>, recovery: Recovery) -> HardState {
        HardState {
            term,
            vote,
            commit: 0,
            recovery,
            incarnation: 4,
        }
    }

    fn copy(h: HardState) -> Stored {
        Stored::Intact(Durable::from(&h))
    }

    /// Each start case: what it read, the real hard state, and which switch gets it wrong.
    fn cases() -> Vec<(StartRead, HardState, RejoinBugs)> {
        let voted = hs(5, Some(3), Recovery::Ordinary);
        let before_vote = hs(5, None, Recovery::Ordinary);
        let caught_up = hs(4, Some(2), Recovery::Ordinary);
        let catching_up = hs(4, Some(2), Recovery::CatchingUp);
        let probing = hs(6, None, Recovery::Probing);
        vec![
            (
                read(false, copy(caught_up), copy(catching_up)),
                caught_up,
                RejoinBugs {
                    single_mark: true,
                    ..RejoinBugs::default()
                },
            ),
            (
                read(false, copy(probing), copy(probing)),
                probing,
                RejoinBugs {
                    probing_restart_is_known: true,
                    ..RejoinBugs::default()
                },
            ),
            (
                read(
                    true,
                    copy(hs(4, None, Recovery::Ordinary)),
                    Stored::Unreadable,
                ),
                voted,
                RejoinBugs {
                    trust_one_copy: true,
                    ..RejoinBugs::default()
                },
            ),
            (
                read(true, copy(before_vote), copy(voted)),
                voted,
                RejoinBugs {
                    compare_by_term_alone: true,
                    ..RejoinBugs::default()
                },
            ),
        ]
    }

    #[test]
    fn the_start_checks_pass_the_decision_and_catch_each_switch() {
        for (read, truth, bugs) in cases() {
            let start = decide(&read, RejoinBugs::default());
            assert_eq!(check_start(&read, Some(truth), &start), Ok(()), "{read:?}");
            let unsafe_start = decide(&read, bugs);
            assert!(
                check_start(&read, Some(truth), &unsafe_start).is_err(),
                "{bugs:?} on {read:?} gave {unsafe_start:?}"
            );
        }
    }

    #[test]
    fn the_probe_floor_counts_only_earlier_votes_for_candidates_that_kept_their_state() {
        let grant = |at, term, candidate| Grant {
            at,
            term,
            candidate,
        };
        let mut ghosts = vec![NodeGhost::default(); 3];
        ghosts[0].grants = vec![grant(10, 3, 1), grant(20, 4, 2), grant(50, 9, 1)];
        ghosts[0].lost_state_at = Some(30);
        ghosts[1].lost_state_at = Some(0);
        ghosts[2].lost_state_at = Some(0);
        assert_eq!(probe_floor(&ghosts, 0).map(|g| g.term), Some(4));
        ghosts[2].lost_state_at = Some(25);
        assert_eq!(
            probe_floor(&ghosts, 0).map(|g| g.term),
            Some(3),
            "node 2 lost the vote it was given"
        );
        assert!(check_caught_up(7, 7).is_ok());
        assert!(check_caught_up(6, 7).is_err());
        assert!(check_heartbeat(9, 9, true).is_ok());
        assert!(check_heartbeat(9, 9, false).is_err());
        assert!(check_heartbeat(8, 9, false).is_ok(), "capped");
    }
}
