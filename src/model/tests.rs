//! The model checker's own tests: the real core keeps every property in every state it
//! explores at a small depth with every fault, the reachability checks are met (a model that
//! never elects, commits or serves is caught), the merges change no verdict, and every bug
//! switch is found by search with the shortest path to it, while the same search without the
//! switch finds nothing to the same depth. Scripted paths pin the classic scenarios in the
//! node's own configuration, where a search is too long for CI.

use super::cli::{run, run_model, trace, Args, Outcome};
use super::cluster::{LINEARIZABLE, ONE_VOTE_PER_TERM};
use super::liveness::REJOINS;
use super::restart::{Down, RESTART_KEEPS_VOTES, RESTART_OWES};
use super::warm::{self, WarmStart};
use super::{props, step, switch, Action, Budget, Cluster, Faults, RaftModel, Settings, SWITCHES};
use crate::check::{EventKind, Op};
use crate::raft::Recovery;
use crate::sim::disk::Damage;

fn explore(settings: Settings, depth: usize) -> Outcome {
    let args = Args {
        settings,
        switch: None,
        faults: Faults::all(),
        depth,
        threads: 1,
        quiet: true,
    };
    run(&args, &mut |_| {})
}

fn reached(out: &Outcome, name: &str) -> bool {
    out.reached.iter().any(|(n, yes)| *n == name && *yes)
}

/// A leader is elected, a write commits and a read is served within the search.
fn assert_reaches_everything(out: &Outcome) {
    for name in [
        props::A_LEADER_IS_ELECTED,
        props::A_WRITE_COMMITS,
        props::A_READ_IS_SERVED,
    ] {
        assert!(reached(out, name), "{name} not reached: {:?}", out.reached);
    }
}

/// No property broken, and every path of `depth` actions explored.
fn assert_clean(out: &Outcome, depth: usize) {
    let broken = out
        .violation
        .as_ref()
        .map(|(name, detail, _)| (name, detail));
    assert_eq!(broken, None, "the correct code breaks nothing");
    assert_eq!(out.depth, depth, "the whole depth was covered");
}

fn violation_name(out: &Outcome) -> Option<&'static str> {
    out.violation.as_ref().map(|(name, _, _)| *name)
}

fn violation_depth(out: &Outcome) -> Option<usize> {
    out.violation
        .as_ref()
        .map(|(_, _, path)| path.clone().into_actions().len())
}

#[test]
fn the_core_keeps_every_property_to_depth_9_with_every_fault() {
    let out = explore(Settings::default(), 9);
    assert_clean(&out, 9);
    assert!(
        out.unique > 10_000,
        "a real search: {} unique states",
        out.unique
    );
    assert!(reached(&out, props::A_LEADER_IS_ELECTED));
}

/// A node that loses its directory restarts empty, probing, as a new incarnation, and the
/// correct core keeps every property with wipes and lost messages: the rejoining node neither
/// votes nor acknowledges before it may, so no committed entry falls out of reach.
#[test]
fn the_core_keeps_every_property_with_a_wiped_node() {
    let settings = Settings::default().with_faults(Faults::parse("wipe,drop").unwrap());
    let mut c = Cluster::new(&settings).expect("an empty cluster starts");
    c.wipe(2, &settings);
    let st = c.node(2).raft().status();
    assert_eq!((st.recovery, st.incarnation), (Recovery::Probing, 1));
    let out = explore(settings, 10);
    assert_clean(&out, 10);
    assert!(
        out.unique > 10_000,
        "a real search: {} unique states",
        out.unique
    );
}

/// Atomic pre-vote rounds (a bound) still let every action happen: the correct core keeps
/// every property with every fault, and without faults a leader is elected, a write commits
/// and a read is served.
#[test]
fn atomic_pre_vote_rounds_keep_every_property_and_reach_everything() {
    let atomic = Settings {
        atomic_pre_vote: true,
        ..Settings::default()
    };
    let faulty = explore(atomic.clone(), 7);
    assert_clean(&faulty, 7);
    let calm = explore(atomic.with_faults(Faults::none()), 9);
    assert_eq!(violation_name(&calm), None);
    assert_reaches_everything(&calm);
}

/// A write commits and a read is served within the depth, so properties that hold
/// "vacuously" would show up as unreached here.
#[test]
fn a_write_commits_and_a_read_is_served() {
    let settings = Settings {
        max_term: 1,
        ..Settings::default()
    }
    .with_faults(Faults::none());
    let out = explore(settings, 11);
    assert_eq!(violation_name(&out), None);
    assert_reaches_everything(&out);
}

/// Crashes only, one term, no clients: where a vote or an acknowledgement that leaves before
/// its flush shows.
fn crashes_in_one_term() -> Settings {
    Settings {
        max_term: 1,
        ..Settings::default()
    }
    .with_faults(Faults::parse("crash").unwrap())
    .with_budget(Budget::Write, Some(0))
    .with_budget(Budget::Read, Some(0))
}

/// The configuration of the node without pre-vote and check-quorum (both switches of the
/// node), no faults: every election takes three actions instead of five and no leader lease
/// refuses a vote, so the protocol switches' paths are short. `timers` bounds the timer fires
/// per path.
fn elections_without_faults(writes: u8, reads: u8, max_term: u64, timers: u8) -> Settings {
    Settings {
        max_term,
        pre_vote: false,
        check_quorum: false,
        ..Settings::default()
    }
    .with_faults(Faults::none())
    .with_budget(Budget::Write, Some(writes))
    .with_budget(Budget::Read, Some(reads))
    .with_budget(Budget::Timer, Some(timers))
}

/// The node's own core configuration (pre-vote and check-quorum on), no faults, with each
/// pre-vote round completing within the timer action that starts it (`--pre-vote atomic`, a
/// bound): an election takes three actions here too.
fn node_elections_without_faults(writes: u8, reads: u8, max_term: u64, timers: u8) -> Settings {
    Settings {
        pre_vote: true,
        atomic_pre_vote: true,
        check_quorum: true,
        ..elections_without_faults(writes, reads, max_term, timers)
    }
}

/// Wipes only, from the warm start `from` (n1 elected, its no-op committed everywhere), no
/// reads: where the rejoin switches show. `timers` bounds the timer fires per path.
fn rejoin_after(from: WarmStart, timers: Option<u8>) -> Settings {
    Settings {
        from,
        ..Settings::default()
    }
    .with_faults(Faults::parse("wipe").unwrap())
    .with_budget(Budget::Read, Some(0))
    .with_budget(Budget::Timer, timers)
}

/// `rejoin_after` with one message drop per path too: the rejoining node's probes may be lost.
fn rejoin_with_a_drop_after(from: WarmStart) -> Settings {
    rejoin_after(from, None).with_faults(Faults::parse("wipe,drop").unwrap())
}

/// From n1 elected, one wipe, no clients, two timer fires, pre-vote and check-quorum off (an
/// election in three actions), terms up to 2 and 5 messages in flight: room for a second
/// election and a probe round, no more.
fn a_wipe_after_a_second_election() -> Settings {
    Settings {
        from: WarmStart::Elected,
        max_term: 2,
        max_in_flight: 5,
        pre_vote: false,
        check_quorum: false,
        ..Settings::default()
    }
    .with_faults(Faults::parse("wipe").unwrap())
    .with_budget(Budget::Write, Some(0))
    .with_budget(Budget::Read, Some(0))
    .with_budget(Budget::Timer, Some(2))
}

/// A search that finds one switch: its settings, the depth, and the property it breaks.
struct Hunt {
    switch: &'static str,
    settings: fn() -> Settings,
    depth: usize,
    breaks: &'static str,
}

/// One row per switch in `SWITCHES`; each search takes a second or two.
const HUNTS: [Hunt; 13] = [
    Hunt {
        switch: "vote_without_persist",
        settings: crashes_in_one_term,
        depth: 10,
        breaks: ONE_VOTE_PER_TERM,
    },
    Hunt {
        switch: "ack_before_flush",
        settings: crashes_in_one_term,
        depth: 10,
        breaks: props::COMMITTED_OUT_OF_REACH,
    },
    Hunt {
        switch: "read_without_read_index",
        settings: || node_elections_without_faults(1, 1, 2, 2),
        depth: 12,
        breaks: LINEARIZABLE,
    },
    Hunt {
        switch: "read_before_own_term_commit",
        settings: || elections_without_faults(1, 1, 2, 2),
        depth: 14,
        breaks: LINEARIZABLE,
    },
    Hunt {
        switch: "commit_old_term_by_counting",
        settings: || node_elections_without_faults(0, 0, 3, 3),
        depth: 15,
        breaks: props::COMMITTED_OUT_OF_REACH,
    },
    Hunt {
        switch: "ack_while_probing",
        settings: || rejoin_after(WarmStart::Elected, None),
        depth: 4,
        breaks: props::PROBING_ACKNOWLEDGES_NOTHING,
    },
    Hunt {
        switch: "pre_vote_while_recovering",
        settings: || rejoin_after(WarmStart::Elected, None),
        depth: 7,
        breaks: props::REJOINING_GRANTS_NO_VOTE,
    },
    Hunt {
        switch: "catch_up_by_capped_commit",
        settings: || rejoin_after(WarmStart::Elected, Some(1)),
        depth: 15,
        breaks: props::CAUGHT_UP,
    },
    Hunt {
        switch: "ignore_incarnations",
        settings: || rejoin_with_a_drop_after(WarmStart::Elected),
        depth: 7,
        breaks: REJOINS,
    },
    Hunt {
        switch: "keep_progress_of_new_incarnation",
        settings: || rejoin_with_a_drop_after(WarmStart::Elected),
        depth: 7,
        breaks: REJOINS,
    },
    Hunt {
        switch: "probe_majority_only",
        settings: a_wipe_after_a_second_election,
        depth: 14,
        breaks: props::CAUGHT_UP,
    },
    Hunt {
        switch: "probe_majority_then_await_leader",
        settings: a_wipe_after_a_second_election,
        depth: 7,
        breaks: props::PROBE_ROUND_KEEPS_VOTES,
    },
    Hunt {
        switch: "never_send_uncapped_commit",
        settings: || rejoin_with_a_drop_after(WarmStart::Empty),
        depth: 8,
        breaks: REJOINS,
    },
];

/// Damaged disks through the start decision, one damage per path: where a decision that
/// forgets a vote shows.
fn damage_only() -> Settings {
    Settings::default().with_faults(Faults::parse("damage").unwrap())
}

/// A damage, then a plain crash: where a restart during probing shows.
fn damage_then_crash() -> Settings {
    Settings::default().with_faults(Faults::parse("damage,crash").unwrap())
}

/// A wipe, then a kill between sled's flush and the record's write: where a start that reads
/// only sled's copy of the recovering mark shows.
fn wipe_then_record_lost() -> Settings {
    Settings::default().with_faults(Faults::parse("wipe,damage").unwrap())
}

/// The searches with the `damage` fault, each under a second: the start decision's switches
/// (`crate::shell::rejoin::RejoinBugs`), found by the rule-level checks of a restart
/// (`super::restart`), and the disk-order variant `record_after_acks`, which breaks the
/// committed-entry property.
const DISK_HUNTS: [Hunt; 5] = [
    Hunt {
        switch: "trust_one_copy",
        settings: damage_only,
        depth: 8,
        breaks: RESTART_KEEPS_VOTES,
    },
    Hunt {
        switch: "compare_by_term_alone",
        settings: damage_only,
        depth: 9,
        breaks: RESTART_KEEPS_VOTES,
    },
    Hunt {
        switch: "probing_restart_is_known",
        settings: damage_then_crash,
        depth: 8,
        breaks: RESTART_OWES,
    },
    Hunt {
        switch: "single_mark",
        settings: wipe_then_record_lost,
        depth: 8,
        breaks: RESTART_OWES,
    },
    Hunt {
        switch: "record_after_acks",
        settings: damage_only,
        depth: 8,
        breaks: props::COMMITTED_OUT_OF_REACH,
    },
];

/// The correct core (and shell) keeps every property to the hunt's depth; with the switch on
/// the search finds the property broken within that depth, with a trace of the path.
fn hunt(name: &str) {
    let h = HUNTS
        .iter()
        .chain(&DISK_HUNTS)
        .find(|h| h.switch == name)
        .expect("a hunt row");
    assert_clean(&explore((h.settings)(), h.depth), h.depth);

    let broken = explore((h.settings)().with_switch(switch(name).unwrap()), h.depth);
    let (property, detail, path) = broken.violation.expect("the switch is found");
    assert_eq!(property, h.breaks, "{detail}\n{}", trace(&path));
    assert!(trace(&path).contains("step=  1"), "a readable trace");
}

#[test]
fn every_switch_has_a_hunt() {
    for s in &SWITCHES {
        assert!(
            HUNTS.iter().chain(&DISK_HUNTS).any(|h| h.switch == s.name),
            "switch {} has no hunt",
            s.name
        );
    }
}

#[test]
fn a_vote_granted_before_it_is_durable_is_found() {
    hunt("vote_without_persist");
}

/// The model runs the shared shell, so a mistake in the shell is found too: an append
/// acknowledged before its flush is lost with the flush by a crash, so the leader counts a
/// replica that is not there and commits an entry that an electable node lacks.
#[test]
fn an_acknowledgement_sent_before_its_flush_is_found() {
    hunt("ack_before_flush");
}

/// A damage that rolls back sled's hard state (the record kept) or misdirects its write onto
/// the record, with the rules' comparison by term alone or trust in one copy, restarts the
/// voter with a term and vote below a vote it gave.
#[test]
fn a_start_trusting_one_copy_is_found() {
    hunt("trust_one_copy");
}

/// Without the restart checks, trusting one copy shows in the protocol's own properties: n3
/// voted for n2 in term 2, a misdirected write leaves its record unreadable and its hard state
/// at term 1, and the switch carries term 1 forward, so n3 acknowledges n1's term-1 append
/// and n1 commits an entry that n2, leader of term 2, lacks. The correct decision probes there
/// and the same search breaks nothing.
#[test]
fn a_start_trusting_one_copy_breaks_leader_completeness() {
    let settings = || {
        Settings {
            restart_checks: false,
            ..elections_without_faults(0, 0, 3, u8::MAX)
                .with_faults(Faults::parse("damage").unwrap())
        }
        .with_budget(Budget::Timer, None)
    };
    assert_clean(&explore(settings(), 10), 10);
    let broken = explore(
        settings().with_switch(switch("trust_one_copy").unwrap()),
        10,
    );
    let (property, detail, path) = broken.violation.expect("the switch is found");
    assert_eq!(
        property,
        props::LEADER_COMPLETENESS,
        "{detail}\n{}",
        trace(&path)
    );
}

#[test]
fn a_start_comparing_by_term_alone_is_found() {
    hunt("compare_by_term_alone");
}

/// A wiped or damaged node that crashes again while probing must probe again.
#[test]
fn a_restart_during_probing_taken_as_known_is_found() {
    hunt("probing_restart_is_known");
}

/// A node killed after sled's flush of the step that ended its probe round, before the
/// record's write, still owes probing: the record says so.
#[test]
fn a_start_reading_only_sleds_mark_is_found() {
    hunt("single_mark");
}

/// With the record written after the acknowledgements, n2 acknowledges n1's no-op, is killed
/// before its record's write, and the disk loses the append: n2 restarts on a clean-looking
/// empty log, n1 counts the acknowledgement and commits an entry that n2 and n3 (a majority)
/// lack. Written before the acknowledgements, the record would show the rolled-back step as
/// damage and n2 would rejoin.
#[test]
fn a_record_written_after_the_acknowledgements_is_found() {
    hunt("record_after_acks");
}

#[test]
fn a_read_served_without_read_index_is_found() {
    hunt("read_without_read_index");
}

#[test]
fn a_read_index_round_before_the_own_term_commit_is_found() {
    hunt("read_before_own_term_commit");
}

#[test]
fn an_old_term_entry_committed_by_counting_is_found() {
    hunt("commit_old_term_by_counting");
}

/// A probing node's term and vote are unknown: an acknowledgement from it is caught as it
/// leaves.
#[test]
fn an_acknowledgement_from_a_probing_node_is_found() {
    hunt("ack_while_probing");
}

/// A node catching up may lack committed entries: a pre-vote grant from it is caught as it
/// leaves.
#[test]
fn a_pre_vote_granted_while_rejoining_is_found() {
    hunt("pre_vote_while_recovering");
}

/// n1 commits a write on itself and n2, n2 loses its directory, and a heartbeat whose commit
/// is capped at what n2 holds (the no-op) ends its catch-up: n2 is ordinary without the write,
/// which only n1 of the others holds (so n2 and n3, both lacking it, could elect one another).
#[test]
fn a_catch_up_ended_by_a_capped_commit_is_found() {
    hunt("catch_up_by_capped_commit");
}

/// A node that takes every message whatever incarnations it names never tells the leader it
/// came back empty, so the leader never refills it nor addresses it a catch-up: it stays out
/// for good under a steady leader (the bounded liveness check, `liveness`).
#[test]
fn a_core_ignoring_incarnations_is_found() {
    hunt("ignore_incarnations");
}

/// A leader that keeps its view of a follower that came back empty ignores its rejections at
/// or below what it believed matched, so it never refills it: found by the liveness check.
#[test]
fn a_leader_keeping_its_view_of_a_new_incarnation_is_found() {
    hunt("keep_progress_of_new_incarnation");
}

/// n2 wins term 2 and commits its no-op on itself and n3, then loses its directory; n1, the
/// leader of term 1 that never heard of term 2, answers its probe first, and with a majority's
/// answer (n1 and itself) n2 takes term 1 and catches up from n1: ordinary in term 1 without
/// the entry of term 2, which only n3 of the others holds (n1 and n2 could elect n1).
#[test]
fn a_probe_round_ended_by_a_majority_is_found() {
    hunt("probe_majority_only");
}

/// n2 campaigns in term 2 with n1's vote, then n1 loses its directory; n3 (term 1) answers its
/// probe, a majority with n1, and n2's append of term 2 ends the round: n1 follows n2 in term 2
/// with no vote, although it voted for n2 in that term. The correct round waits for n2's answer
/// too and takes term 2 with a vote for itself.
#[test]
fn a_probe_round_ended_by_a_leader_of_a_higher_term_is_found() {
    hunt("probe_majority_then_await_leader");
}

/// n1 is elected with n2's vote while n3 hears nothing, then n2 loses its directory. In the
/// fault-free continuation n2 ends up holding n1's whole log with no append left for n1 to send
/// it (the switch changes nothing else, so with it off the catch-up ends on a heartbeat flagged
/// uncapped), and with the switch on no heartbeat ever is: n2 stays out for good.
#[test]
fn a_leader_that_never_sends_its_uncapped_commit_is_found() {
    hunt("never_send_uncapped_commit");
}

/// The merges keep every verdict: the same reachability and no violation on the correct core,
/// and the same broken property, no deeper, with a switch on (fewer messages in flight can
/// only let a path stay under `--max-in-flight` longer).
#[test]
fn merging_changes_no_verdict() {
    let unmerged = |s: Settings| Settings { merge: false, ..s };
    let clean = explore(Settings::default(), 8);
    let clean_unmerged = explore(unmerged(Settings::default()), 8);
    assert_eq!(violation_name(&clean), None);
    assert_eq!(violation_name(&clean_unmerged), None);
    assert_eq!(clean.reached, clean_unmerged.reached);
    assert!(clean.unique < clean_unmerged.unique, "the merges merge");
    for h in &HUNTS[..2] {
        let on = (h.settings)().with_switch(switch(h.switch).unwrap());
        let merged = explore(on.clone(), h.depth);
        let not = explore(unmerged(on), h.depth);
        assert_eq!(
            violation_name(&merged),
            violation_name(&not),
            "{}",
            h.switch
        );
        assert!(
            violation_depth(&merged) <= violation_depth(&not),
            "{}",
            h.switch
        );
    }
}

/// With the damage fault too: the same reachability and no violation on the correct code, and
/// each start-decision switch found breaking the same property, no deeper. (A disk's last step
/// is part of a state only while a damage may still roll it back.)
#[test]
fn merging_changes_no_verdict_with_damage() {
    let unmerged = |s: Settings| Settings { merge: false, ..s };
    let clean = explore(damage_only(), 8);
    let clean_unmerged = explore(unmerged(damage_only()), 8);
    assert_eq!(violation_name(&clean), None);
    assert_eq!(violation_name(&clean_unmerged), None);
    assert_eq!(clean.reached, clean_unmerged.reached);
    for h in &DISK_HUNTS {
        let on = (h.settings)().with_switch(switch(h.switch).unwrap());
        let merged = explore(on.clone(), h.depth);
        let not = explore(unmerged(on), h.depth);
        assert_eq!(violation_name(&merged), Some(h.breaks), "{}", h.switch);
        assert_eq!(violation_name(&not), Some(h.breaks), "{}", h.switch);
        assert!(
            violation_depth(&merged) <= violation_depth(&not),
            "{}",
            h.switch
        );
    }
}

/// A state that breaks a property the checker does not report stops the search with an
/// error naming the property, instead of a run that ends as if nothing broke.
#[test]
fn a_broken_property_missing_from_the_checked_list_is_an_error() {
    let settings = crashes_in_one_term().with_switch(switch("vote_without_persist").unwrap());
    let mut model = RaftModel::new(settings, 10);
    model.known = std::sync::Arc::new(
        model
            .known
            .iter()
            .copied()
            .filter(|p| *p != ONE_VOTE_PER_TERM)
            .collect(),
    );
    let out = run_model(model, 1, &mut |_| {});
    assert_eq!(out.unknown_property, Some(ONE_VOTE_PER_TERM));
}

#[test]
fn bad_switch_and_fault_names_are_refused_by_name() {
    assert!(switch("no_such_switch")
        .unwrap_err()
        .contains("unknown switch `no_such_switch`"));
    assert!(Faults::parse("crash,flood")
        .unwrap_err()
        .contains("unknown fault `flood`"));
}

/// Plays a path given as one action description fragment per step (the trace notation), each
/// matching exactly one enabled action; returns the state after it.
fn play(settings: &Settings, steps: &[&str]) -> Cluster {
    let mut c = Cluster::new(settings).expect("an empty cluster starts");
    for (k, wanted) in steps.iter().enumerate() {
        let mut enabled = Vec::new();
        c.actions(settings, &mut enabled);
        let matching: Vec<&Action> = enabled
            .iter()
            .filter(|a| a.describe().contains(wanted))
            .collect();
        let descriptions: Vec<String> = enabled.iter().map(Action::describe).collect();
        assert_eq!(
            matching.len(),
            1,
            "step {} `{wanted}` must match one of {descriptions:#?}",
            k + 1
        );
        c = step(&c, matching[0], settings);
    }
    c
}

/// n1 wins term 1 with n2's vote, a write commits on n1 and n2 (n2 learns commit 1 only), then
/// n2 wins term 2 with n3's vote, so n2's commit index (1) is older than the write (2).
const LEADER_CHANGE_AFTER_A_WRITE: [&str; 15] = [
    "n1 timer fires",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: true",
    "n1 <- n2 2->1 term=1 RequestVoteResponse { pre_vote: true",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: false",
    "n1 <- n2 2->1 term=1 RequestVoteResponse { pre_vote: false",
    "n2 <- n1 1->2 term=1 Append prev=0/0",
    "n1 <- client write",
    "n1 <- n2 2->1 term=1 AppendEntriesResponse { success: true, index: 1",
    "n2 <- n1 1->2 term=1 Append prev=1/1",
    "n1 <- n2 2->1 term=1 AppendEntriesResponse { success: true, index: 2",
    "n2 timer fires",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: true",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: true",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: false",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: false",
];

fn reads_after_leader_change(bug: &str, then: &[&str]) -> Cluster {
    let mut settings = Settings::default().with_faults(Faults::none());
    if !bug.is_empty() {
        settings = settings.with_switch(switch(bug).unwrap());
    }
    let mut steps: Vec<&str> = LEADER_CHANGE_AFTER_A_WRITE.to_vec();
    steps.extend_from_slice(then);
    play(&settings, &steps)
}

fn history_ok(c: &Cluster, f: Op) -> bool {
    c.history
        .iter()
        .any(|e| e.f == f && e.kind == EventKind::Ok)
}

#[test]
fn a_read_without_read_index_after_a_leader_change_breaks_linearizability() {
    let read = ["n2 <- client read"];
    let clean = reads_after_leader_change("", &read);
    assert!(history_ok(&clean, Op::Write), "the write was acknowledged");
    assert!(
        !history_ok(&clean, Op::Read),
        "the correct core waits for its own-term commit"
    );
    assert_eq!(clean.violation, None);

    let broken = reads_after_leader_change("read_without_read_index", &read);
    let v = broken.violation.expect("the stale read is caught");
    assert_eq!(v.property, super::cluster::LINEARIZABLE, "{}", v.detail);
}

#[test]
fn a_read_index_round_before_the_own_term_commit_breaks_linearizability() {
    let read_round = [
        "n2 <- client read",
        "n3 <- n2 2->3 term=2 Heartbeat",
        "n2 <- n3 3->2 term=2 HeartbeatResponse",
    ];
    // The correct core starts no round before its no-op commits: no heartbeat to deliver.
    let settings = Settings::default().with_faults(Faults::none());
    let mut steps: Vec<&str> = LEADER_CHANGE_AFTER_A_WRITE.to_vec();
    steps.push(read_round[0]);
    let clean = play(&settings, &steps);
    assert!(!clean.network.iter().any(|m| matches!(
        m.body,
        crate::raft::MessageBody::Heartbeat { read_ctx: 1, .. }
    )));
    assert_eq!(clean.violation, None);

    let broken = reads_after_leader_change("read_before_own_term_commit", &read_round);
    let v = broken.violation.expect("the stale read is caught");
    assert_eq!(v.property, super::cluster::LINEARIZABLE, "{}", v.detail);
}

/// Raft's figure 8 on three nodes: n1 leads term 1 (its no-op 1/1 reaches nobody), n2 learns
/// term 1 from n1's vote request and leads term 2 with n3's vote (no-op 1/2, reaching nobody), n1 steps down by check-quorum, learns
/// term 2 and leads term 3 with n3's vote, then brings n3 its entry 1/1 alone (one entry per
/// append). Counting replicas commits 1/1 although n2, holding 1/2, can still be elected.
const FIGURE_8: [&str; 23] = [
    "n1 timer fires",
    "n3 <- n1 1->3 term=1 RequestVote { pre_vote: true",
    "n1 <- n3 3->1 term=1 RequestVoteResponse { pre_vote: true",
    "n3 <- n1 1->3 term=1 RequestVote { pre_vote: false",
    "n1 <- n3 3->1 term=1 RequestVoteResponse { pre_vote: false",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: false",
    "n2 timer fires",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: true",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: true",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: false",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: false",
    "n1 timer fires",
    "n1 timer fires",
    "n1 <- n2 2->1 term=2 RequestVote { pre_vote: false",
    "n1 timer fires",
    "n3 <- n1 1->3 term=3 RequestVote { pre_vote: true",
    "n1 <- n3 3->1 term=3 RequestVoteResponse { pre_vote: true",
    "n3 <- n1 1->3 term=3 RequestVote { pre_vote: false",
    "n1 <- n3 3->1 term=3 RequestVoteResponse { pre_vote: false",
    "n3 <- n1 1->3 term=3 Append prev=1/1",
    "n1 <- n3 3->1 term=3 AppendEntriesResponse { success: false",
    "n3 <- n1 1->3 term=3 Append prev=0/0",
    "n1 <- n3 3->1 term=3 AppendEntriesResponse { success: true, index: 1",
];

#[test]
fn an_old_term_entry_committed_by_counting_is_caught_when_it_commits() {
    let settings = Settings::default()
        .with_faults(Faults::none())
        .with_budget(Budget::Write, Some(0))
        .with_budget(Budget::Read, Some(0));
    let clean = play(&settings, &FIGURE_8);
    assert_eq!(clean.violation, None);
    assert_eq!(clean.node(1).raft().status().commit, 0, "1/1 waits for 2/3");

    let broken = settings.with_switch(switch("commit_old_term_by_counting").unwrap());
    let c = play(&broken, &FIGURE_8);
    assert_eq!(
        c.node(1).raft().status().commit,
        1,
        "the switch commits 1/1"
    );
    let v = c.violation.expect("the commit is caught");
    assert_eq!(v.property, props::COMMITTED_OUT_OF_REACH, "{}", v.detail);
    assert!(
        v.detail.contains("n2 lacks committed entry 1/1"),
        "{}",
        v.detail
    );
}

/// n1 wins n2's pre-vote and n2 grants n1 its vote in term 1.
const N2_VOTES_FOR_N1: [&str; 4] = [
    "n1 timer fires",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: true",
    "n1 <- n2 2->1 term=1 RequestVoteResponse { pre_vote: true",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: false",
];

/// The mark, term and vote node `id` restarts with after `damage`.
fn restarted_after(
    c: &Cluster,
    id: u64,
    damage: Damage,
    settings: &Settings,
) -> (Recovery, u64, Option<u64>) {
    let mut c = c.clone();
    c.restart(id, Down::Damaged(damage), settings);
    assert_eq!(c.violation, None, "{damage:?}");
    let st = c.node(id).raft().status();
    (st.recovery, st.term, st.vote)
}

/// The model's damages are the simulator's disk's, and a restart after one goes through the
/// start decision: a copy unreadable (sled's hard state, the record, or either after a
/// misdirected write) probes; sled's last step rolled back (the record kept) or a damaged log
/// record catches up with the larger copy's term and vote, here n2's vote for n1.
#[test]
fn a_damaged_disk_restarts_through_the_start_decision() {
    let settings = damage_only();
    let voted = play(&settings, &N2_VOTES_FOR_N1);
    let offered = voted.damages(2);
    let probing = (Recovery::Probing, 0, None);
    let known = (Recovery::CatchingUp, 1, Some(1));
    for (damage, expected) in [
        (Damage::HardState, probing),
        (Damage::Record, probing),
        (Damage::RolledBack, known),
        (Damage::HardStateOntoRecord, probing),
        (Damage::RecordOntoHardState, probing),
    ] {
        assert!(offered.contains(&damage), "{damage:?} not in {offered:?}");
        assert_eq!(
            restarted_after(&voted, 2, damage, &settings),
            expected,
            "{damage:?}"
        );
    }
    // No damage while another node is without its state.
    let mut wiped = voted.clone();
    wiped.wipe(3, &settings);
    assert!(wiped.damages(2).is_empty());

    let mut steps = N2_VOTES_FOR_N1.to_vec();
    steps.extend([
        "n1 <- n2 2->1 term=1 RequestVoteResponse { pre_vote: false",
        "n2 <- n1 1->2 term=1 Append prev=0/0",
    ]);
    let holding = play(&settings, &steps);
    assert_eq!(holding.node(2).durable.log.len(), 1, "n2 holds n1's no-op");
    let offered = holding.damages(2);
    let log_damage = offered
        .iter()
        .copied()
        .find(|d| matches!(d, Damage::LogRecord(_)))
        .expect("a log record damage is offered");
    assert_eq!(restarted_after(&holding, 2, log_damage, &settings), known);
    let restarted = {
        let mut c = holding.clone();
        c.restart(2, Down::Damaged(log_damage), &settings);
        c
    };
    assert!(
        restarted.node(2).durable.log.is_empty(),
        "the damaged log was set aside"
    );
}

/// A warm start is the empty cluster driven by the actions it names, each one the state
/// offered: replaying them from the empty cluster gives the same state, which is where the
/// schedule says (n1 leads term 1, nothing in flight, every log committed and applied).
#[test]
fn a_warm_start_is_reached_by_the_actions_it_names() {
    for (from, entries) in [(WarmStart::Elected, 1), (WarmStart::Committed, 2)] {
        let settings = Settings {
            from,
            ..Settings::default()
        };
        let (warm, played) = warm::start(&settings).expect("the warm-up settles");
        let mut c = Cluster::new(&settings).expect("an empty cluster starts");
        for action in &played {
            let mut offered = Vec::new();
            c.actions(&settings, &mut offered);
            assert!(offered.contains(action), "{}", action.describe());
            c = step(&c, action, &settings);
        }
        let describe = super::cli::describe_state;
        assert_eq!(describe(&c), describe(&warm), "{from:?}");
        assert_eq!(
            warm.budgets, settings.budgets,
            "the warm-up spends no budget"
        );
        assert!(warm.network.is_empty());
        for n in &warm.nodes {
            let st = n.raft().status();
            assert_eq!((st.term, st.commit, st.applied), (1, entries, entries));
        }
        assert_eq!(warm.node(1).raft().status().role, crate::raft::Role::Leader);
    }
    assert!(WarmStart::parse("warm")
        .unwrap_err()
        .contains("unknown start `warm`"));
}
