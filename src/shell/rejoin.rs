//! How a node starts on what its disk holds: as it is, or empty and rejoining.
//!
//! Owns: the one decision, shared by the node (sled and the durable-progress record) and the
//! simulator's disk, of what a start does with what it read, and the new incarnation's value.
//! Must never: read or write a disk, read the clock or a random source (the caller passes what
//! it read, the time and the random bits), or decide anything the consensus core decides once it
//! runs (probing and catching up are the core's; this only says which of them it owes).
//!
//! The rules, in the order [`decide`] applies them:
//! - A directory that holds nothing (no hard state, no durable-progress record, no log entry, no
//!   snapshot) is a first boot or a wiped disk: the node starts empty, probing, with a new
//!   incarnation. A wiped node may have voted and acknowledged before, so its term and vote are
//!   unknown; at a first boot every node answers a probe with an empty state and the core finds
//!   the cluster new.
//! - A clean directory whose two copies of the recovering mark (sled's hard state and the
//!   record) both read intact and both say ordinary starts as it is, keeping its incarnation.
//! - Any other start starts with an empty log and a new incarnation: the directory is damaged, a
//!   copy of the mark cannot be read, or a copy says the node had not finished rejoining (a
//!   restart during rejoining rejoins again).
//! - Its term and vote are known only when both the hard state and the record read intact and
//!   neither copy of the mark says probing. The node then carries forward the larger of the two
//!   by the record's order (the higher term; at an equal term the one holding a vote, since a
//!   vote rolled back at an equal term would otherwise be given twice) and owes only catching up.
//! - Otherwise (one copy damaged or missing, whose intact twin may be stale after a misdirected
//!   write; or a copy saying probing, which was still owed and is owed again whatever hard state
//!   the fresh directory got since) term and vote are unknown and the node probes.
//! - The new incarnation is wall-clock nanoseconds with random low bits, and above every
//!   incarnation either copy names ([`new_incarnation`] says why that orders and separates them).
//!
//! [`RejoinBugs`] holds one switch per unsafe variant of these rules, all off by default, so the
//! simulator and the model checker can show that they catch each one.

use crate::raft::{HardState, NodeId, Recovery};

/// One copy of the durable state as a start read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Never written (nothing was stored there).
    Absent,
    /// Present but damaged, or not reached because the start stopped at damage before it (sled
    /// could not open, a record before it was bad).
    Unreadable,
    /// Read intact.
    Intact(Durable),
}

impl Stored {
    fn intact(self) -> Option<Durable> {
        match self {
            Stored::Intact(d) => Some(d),
            Stored::Absent | Stored::Unreadable => None,
        }
    }
}

/// What one intact copy holds: term, vote, the recovering mark and the incarnation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub term: u64,
    pub vote: Option<NodeId>,
    pub recovery: Recovery,
    pub incarnation: u64,
}

impl From<&HardState> for Durable {
    /// A hard state as one copy of the durable state (its commit index is not part of it).
    fn from(hs: &HardState) -> Durable {
        Durable {
            term: hs.term,
            vote: hs.vote,
            recovery: hs.recovery,
            incarnation: hs.incarnation,
        }
    }
}

/// Everything a start read, as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartRead {
    /// True when the start found damage (sled could not open the directory, a record failed its
    /// checks, the log or hard state is below the record, the record is missing or bad).
    pub damaged: bool,
    /// True when sled holds a log entry or a snapshot (only what a clean start read counts).
    pub holds_log: bool,
    /// sled's hard state.
    pub hard_state: Stored,
    /// The durable-progress record (its mark: of its values, the one that owes more).
    pub record: Stored,
}

impl StartRead {
    /// True for a directory that holds nothing: a first boot or a wiped disk.
    pub fn is_empty(&self) -> bool {
        !self.damaged
            && !self.holds_log
            && self.hard_state == Stored::Absent
            && self.record == Stored::Absent
    }

    /// The highest incarnation either copy names (0 when neither is intact).
    pub fn incarnation_seen(&self) -> u64 {
        [self.hard_state, self.record]
            .iter()
            .filter_map(|s| s.intact())
            .map(|d| d.incarnation)
            .max()
            .unwrap_or(0)
    }
}

/// Why a start does not start as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Nothing was there: a first boot or a wiped disk.
    Empty,
    /// The start found damage.
    Damaged,
    /// A copy of the mark cannot be read in a clean directory.
    MarkUnreadable,
    /// A copy of the mark says the node had not finished rejoining.
    Unfinished(Recovery),
}

/// How to start an empty node: the mark, and the term and vote it carries forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejoin {
    /// `Probing` or `CatchingUp`, never `Ordinary`.
    pub recovery: Recovery,
    /// 0 when probing (unknown).
    pub term: u64,
    /// `None` when probing (unknown).
    pub vote: Option<NodeId>,
    /// The new incarnation must be above this (the highest one either copy named).
    pub incarnation_floor: u64,
    pub cause: Cause,
}

impl Rejoin {
    /// The first hard state of the empty directory: written (to both copies of the mark) before
    /// anything else, and handed to the core as its initial state.
    pub fn hard_state(&self, incarnation: u64) -> HardState {
        debug_assert!(incarnation > self.incarnation_floor || incarnation == u64::MAX);
        HardState {
            term: self.term,
            vote: self.vote,
            commit: 0,
            recovery: self.recovery,
            incarnation,
        }
    }
}

/// What a start does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Start on what the directory holds, keeping its incarnation.
    AsIs,
    /// Keep the directory aside (when it holds anything) and start empty.
    Empty(Rejoin),
}

/// Unsafe variants of the rules, each a pitfall found in review; all off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejoinBugs {
    /// Only sled's copy of the mark is consulted: one damaged or stale record ends the rejoining
    /// early.
    pub single_mark: bool,
    /// A restart during probing takes the fresh directory's hard state as known and only
    /// catches up, although a term learned while probing never counts as known.
    pub probing_restart_is_known: bool,
    /// Term and vote are carried from the one intact copy when the other is damaged or missing
    /// (a misdirected write can leave the intact one stale).
    pub trust_one_copy: bool,
    /// The hard state and the record are compared by term alone (a vote rolled back at an equal
    /// term is then given twice).
    pub compare_by_term_alone: bool,
}

/// Decides how a start proceeds from what it read (the rules are in the module doc).
pub fn decide(read: &StartRead, bugs: RejoinBugs) -> Start {
    let floor = read.incarnation_seen();
    if read.is_empty() {
        return Start::Empty(probing(floor, Cause::Empty));
    }
    let hard_state = read.hard_state.intact();
    let mut record = read.record.intact();
    if bugs.single_mark {
        record = record.map(|r| Durable {
            recovery: Recovery::Ordinary,
            ..r
        });
    }
    let marks = [hard_state, record].map(|c| c.map(|d| d.recovery));
    let owed = marks
        .iter()
        .flatten()
        .copied()
        .fold(Recovery::Ordinary, worst);
    let both_readable = hard_state.is_some() && (record.is_some() || bugs.single_mark);
    if !read.damaged && both_readable && owed == Recovery::Ordinary {
        return Start::AsIs;
    }
    let cause = if read.damaged {
        Cause::Damaged
    } else if owed != Recovery::Ordinary {
        Cause::Unfinished(owed)
    } else {
        Cause::MarkUnreadable
    };
    let probing_owed = owed == Recovery::Probing && !bugs.probing_restart_is_known;
    let known = match (hard_state, record) {
        (Some(h), Some(r)) => Some(larger(h, r, bugs.compare_by_term_alone)),
        (Some(one), None) | (None, Some(one)) if bugs.trust_one_copy => Some(one),
        _ => None,
    };
    match known {
        Some(k) if !probing_owed => Start::Empty(Rejoin {
            recovery: Recovery::CatchingUp,
            term: k.term,
            vote: k.vote,
            incarnation_floor: floor,
            cause,
        }),
        _ => Start::Empty(probing(floor, cause)),
    }
}

fn probing(floor: u64, cause: Cause) -> Rejoin {
    Rejoin {
        recovery: Recovery::Probing,
        term: 0,
        vote: None,
        incarnation_floor: floor,
        cause,
    }
}

/// How far from ordinary a mark is: a copy that says more owes more.
fn owes(m: Recovery) -> u8 {
    match m {
        Recovery::Ordinary => 0,
        Recovery::CatchingUp => 1,
        Recovery::Probing => 2,
    }
}

/// Of two marks, the one that owes more.
pub fn worst(a: Recovery, b: Recovery) -> Recovery {
    if owes(b) > owes(a) {
        b
    } else {
        a
    }
}

/// The larger of the hard state and the record: the higher term; at an equal term the one
/// holding a vote (the hard state's when both or neither do). By term alone (the unsafe
/// variant) an equal term keeps the hard state's, vote or not.
fn larger(hard_state: Durable, record: Durable, by_term_alone: bool) -> Durable {
    let record_larger = record.term > hard_state.term
        || (!by_term_alone
            && record.term == hard_state.term
            && record.vote.is_some()
            && hard_state.vote.is_none());
    if record_larger {
        record
    } else {
        hard_state
    }
}

/// Random low bits of an incarnation: the clock's resolution given up (about 65 µs) for them.
pub const INCARNATION_RANDOM_BITS: u32 = 16;

/// A new incarnation from the wall clock (`unix_nanos`, nanoseconds since 1970) and `random`
/// bits, above `floor` (every incarnation the directory still named).
///
/// Why it orders and separates incarnations across wipes, which a counter would not (it dies
/// with the disk): the high bits are the clock, so a later start, more than 2^16 ns (65 µs) later
/// on a clock that did not step back, gets a larger value, and starting a node takes far longer
/// than that; two starts in one such window, or after the clock stepped back onto an earlier
/// window, differ in 16 random bits unless 1 in 65 536. Taking the value above `floor` keeps
/// it above every incarnation the directory named; a peer that remembers a higher one (the clock
/// stepped back further) names it in its messages, and the core then takes a new incarnation
/// above that. Never 0 (0 means "not seen yet" in messages).
pub fn new_incarnation(floor: u64, unix_nanos: u64, random: u64) -> u64 {
    let mask = (1u64 << INCARNATION_RANDOM_BITS) - 1;
    let from_clock = (unix_nanos & !mask) | (random & mask);
    let value = from_clock.max(floor.saturating_add(1)).max(1);
    debug_assert!(value > floor || floor == u64::MAX);
    value
}

#[cfg(test)]
pub(crate) mod tests;
