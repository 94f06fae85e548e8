//! Every case of the start decision, and each unsafe switch breaking the case it is about.

use super::*;
use Recovery::{CatchingUp, Ordinary, Probing};

/// The switches the cases run with: none (the rules as they are).
const BUGS: RejoinBugs = RejoinBugs {
    single_mark: false,
    probing_restart_is_known: false,
    trust_one_copy: false,
    compare_by_term_alone: false,
};

fn copy(term: u64, vote: Option<NodeId>, recovery: Recovery, incarnation: u64) -> Stored {
    Stored::Intact(Durable {
        term,
        vote,
        recovery,
        incarnation,
    })
}

/// What a start read from a directory that holds a log.
pub(crate) fn read(damaged: bool, hard_state: Stored, record: Stored) -> StartRead {
    StartRead {
        damaged,
        holds_log: true,
        hard_state,
        record,
    }
}

fn clean(hard_state: Stored, record: Stored) -> StartRead {
    read(false, hard_state, record)
}

fn damaged(hard_state: Stored, record: Stored) -> StartRead {
    read(true, hard_state, record)
}

fn decided(r: &StartRead) -> Start {
    decide(r, BUGS)
}

fn catching_up(term: u64, vote: Option<NodeId>, floor: u64, cause: Cause) -> Start {
    Start::Empty(Rejoin {
        recovery: CatchingUp,
        term,
        vote,
        incarnation_floor: floor,
        cause,
    })
}

fn probing(floor: u64, cause: Cause) -> Start {
    Start::Empty(Rejoin {
        recovery: Probing,
        term: 0,
        vote: None,
        incarnation_floor: floor,
        cause,
    })
}

#[test]
fn the_switches_are_all_off_by_default() {
    assert_eq!(RejoinBugs::default(), BUGS);
}

#[test]
fn an_empty_directory_probes_with_a_new_incarnation() {
    let empty = StartRead {
        damaged: false,
        holds_log: false,
        hard_state: Stored::Absent,
        record: Stored::Absent,
    };
    assert!(empty.is_empty());
    assert_eq!(decided(&empty), probing(0, Cause::Empty));
    // A log without a hard state or a record is not an empty directory.
    let log_only = StartRead {
        holds_log: true,
        ..empty
    };
    assert!(!log_only.is_empty());
    assert_eq!(decided(&log_only), probing(0, Cause::MarkUnreadable));
}

#[test]
fn a_clean_directory_with_both_marks_ordinary_starts_as_it_is() {
    let r = clean(copy(4, Some(2), Ordinary, 9), copy(4, Some(2), Ordinary, 9));
    assert_eq!(decided(&r), Start::AsIs);
    // Also with the copies one step apart (a kill between sled's flush and the record).
    let r = clean(copy(5, None, Ordinary, 9), copy(4, Some(2), Ordinary, 9));
    assert_eq!(decided(&r), Start::AsIs);
}

#[test]
fn a_clean_directory_still_catching_up_starts_empty_and_catches_up_again() {
    for (hs_mark, rec_mark) in [
        (CatchingUp, CatchingUp),
        (CatchingUp, Ordinary),
        (Ordinary, CatchingUp),
    ] {
        let r = clean(
            copy(6, Some(1), hs_mark, 11),
            copy(6, Some(1), rec_mark, 10),
        );
        assert_eq!(
            decided(&r),
            catching_up(6, Some(1), 11, Cause::Unfinished(CatchingUp)),
            "{hs_mark:?} {rec_mark:?}"
        );
    }
}

/// Either copy saying probing owes probing again, whatever hard state the directory got since.
#[test]
fn a_restart_during_probing_probes_again() {
    for (hs_mark, rec_mark) in [
        (Probing, Probing),
        (Probing, Ordinary),
        (Probing, CatchingUp),
        (CatchingUp, Probing),
    ] {
        let r = clean(
            copy(7, Some(3), hs_mark, 20),
            copy(7, Some(3), rec_mark, 21),
        );
        assert_eq!(
            decided(&r),
            probing(21, Cause::Unfinished(Probing)),
            "{hs_mark:?} {rec_mark:?}"
        );
        assert_eq!(
            decided(&damaged(r.hard_state, r.record)),
            probing(21, Cause::Damaged)
        );
    }
}

/// The record's copy of the mark counts as much as sled's: one damaged or stale copy saying
/// ordinary does not end the rejoining.
#[test]
fn the_records_mark_alone_keeps_a_clean_directory_rejoining() {
    let r = clean(copy(3, None, Ordinary, 5), copy(3, None, Probing, 5));
    assert_eq!(decided(&r), probing(5, Cause::Unfinished(Probing)));
    let r = clean(copy(3, None, Ordinary, 5), copy(3, None, CatchingUp, 5));
    assert_eq!(
        decided(&r),
        catching_up(3, None, 5, Cause::Unfinished(CatchingUp))
    );
}

#[test]
fn a_clean_directory_missing_a_copy_of_the_mark_probes() {
    let hs = copy(4, Some(2), Ordinary, 9);
    for (h, r) in [
        (Stored::Absent, hs),
        (hs, Stored::Absent),
        (Stored::Unreadable, hs),
        (hs, Stored::Unreadable),
    ] {
        assert_eq!(
            decided(&clean(h, r)),
            probing(9, Cause::MarkUnreadable),
            "{h:?} {r:?}"
        );
    }
}

#[test]
fn damage_with_both_copies_intact_carries_the_larger_term_and_vote() {
    // The higher term wins, with its own vote (or none).
    let r = damaged(copy(4, Some(2), Ordinary, 9), copy(5, None, Ordinary, 9));
    assert_eq!(decided(&r), catching_up(5, None, 9, Cause::Damaged));
    let r = damaged(copy(6, Some(1), Ordinary, 9), copy(5, Some(3), Ordinary, 9));
    assert_eq!(decided(&r), catching_up(6, Some(1), 9, Cause::Damaged));
    // A copy still catching up changes nothing: term and vote were known.
    let r = damaged(
        copy(6, Some(1), CatchingUp, 9),
        copy(6, Some(1), Ordinary, 12),
    );
    assert_eq!(decided(&r), catching_up(6, Some(1), 12, Cause::Damaged));
}

/// At an equal term the copy holding a vote is the larger: a vote rolled back in one copy at an
/// equal term would otherwise be forgotten and given again.
#[test]
fn at_an_equal_term_the_copy_holding_a_vote_is_carried() {
    let r = damaged(copy(5, None, Ordinary, 9), copy(5, Some(3), Ordinary, 9));
    assert_eq!(decided(&r), catching_up(5, Some(3), 9, Cause::Damaged));
    let r = damaged(copy(5, Some(2), Ordinary, 9), copy(5, None, Ordinary, 9));
    assert_eq!(decided(&r), catching_up(5, Some(2), 9, Cause::Damaged));
    // Both voting (only a misdirected write can do that): a vote is kept either way.
    let r = damaged(copy(5, Some(2), Ordinary, 9), copy(5, Some(3), Ordinary, 9));
    assert_eq!(decided(&r), catching_up(5, Some(2), 9, Cause::Damaged));
}

/// One intact copy beside a damaged or missing one proves nothing: a misdirected write may have
/// left the intact one stale.
#[test]
fn damage_with_a_copy_unreadable_probes() {
    let intact = copy(8, Some(2), Ordinary, 30);
    for (h, r) in [
        (intact, Stored::Unreadable),
        (Stored::Unreadable, intact),
        (intact, Stored::Absent),
        (Stored::Absent, intact),
        (Stored::Unreadable, Stored::Unreadable),
    ] {
        assert_eq!(
            decided(&damaged(h, r)),
            probing(if h == r { 0 } else { 30 }, Cause::Damaged),
            "{h:?} {r:?}"
        );
    }
}

#[test]
fn the_incarnation_floor_is_the_highest_one_an_intact_copy_names() {
    let r = damaged(copy(1, None, Ordinary, 40), copy(1, None, Ordinary, 41));
    assert_eq!(r.incarnation_seen(), 41);
    let r = damaged(copy(1, None, Ordinary, 40), Stored::Unreadable);
    assert_eq!(r.incarnation_seen(), 40);
}

#[test]
fn the_first_hard_state_holds_the_mark_the_carried_term_and_the_new_incarnation() {
    let Start::Empty(rejoin) = decided(&damaged(
        copy(5, Some(3), Ordinary, 9),
        copy(5, Some(3), Ordinary, 9),
    )) else {
        panic!("damage starts empty");
    };
    let hs = rejoin.hard_state(10);
    assert_eq!(
        hs,
        HardState {
            term: 5,
            vote: Some(3),
            commit: 0,
            recovery: CatchingUp,
            incarnation: 10,
        }
    );
}

#[test]
fn new_incarnations_follow_the_clock_above_the_floor_and_are_never_zero() {
    let second = 1_000_000_000u64;
    let t = 1_795_988_921 * second;
    // The clock orders them, whatever the random bits.
    assert!(new_incarnation(0, t + 1_000_000, 0) > new_incarnation(0, t, u64::MAX));
    // The random bits separate starts on one clock reading.
    assert_ne!(new_incarnation(0, t, 1), new_incarnation(0, t, 2));
    // Above every incarnation the directory named, even from a clock that stepped back.
    assert_eq!(new_incarnation(t + 5 * second, t, 7), t + 5 * second + 1);
    assert_eq!(new_incarnation(0, 0, 0), 1);
    assert_eq!(new_incarnation(u64::MAX - 1, t, 3), u64::MAX);
}

/// Each switch, on, gives the unsafe answer in the case it is about (and the cases above, run
/// with it on, fail: see each switch's case).
#[test]
fn each_switch_breaks_the_rule_it_is_named_after() {
    let cases: [(RejoinBugs, StartRead); 4] = [
        (
            RejoinBugs {
                single_mark: true,
                ..BUGS
            },
            clean(copy(3, None, Ordinary, 5), copy(3, None, Probing, 5)),
        ),
        (
            RejoinBugs {
                probing_restart_is_known: true,
                ..BUGS
            },
            clean(copy(7, Some(3), Probing, 20), copy(7, Some(3), Probing, 20)),
        ),
        (
            RejoinBugs {
                trust_one_copy: true,
                ..BUGS
            },
            damaged(copy(8, Some(2), Ordinary, 30), Stored::Unreadable),
        ),
        (
            RejoinBugs {
                compare_by_term_alone: true,
                ..BUGS
            },
            damaged(copy(5, None, Ordinary, 9), copy(5, Some(3), Ordinary, 9)),
        ),
    ];
    let unsafe_answers = [
        Start::AsIs,
        catching_up(7, Some(3), 20, Cause::Unfinished(Probing)),
        catching_up(8, Some(2), 30, Cause::Damaged),
        catching_up(5, None, 9, Cause::Damaged),
    ];
    for ((bugs, r), wrong) in cases.iter().zip(unsafe_answers) {
        assert_ne!(
            decided(r),
            wrong,
            "{bugs:?}: the rules give the unsafe answer"
        );
        assert_eq!(decide(r, *bugs), wrong, "{bugs:?}");
    }
}
