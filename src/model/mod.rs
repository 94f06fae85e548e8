//! `raftkv model`: exhaustive, bounded model checking of the real consensus core.
//!
//! Owns: a model of a small cluster (3 nodes by default, up to 5) whose state is, per node,
//! the real core from `crate::raft` inside the shared shell `crate::shell::Shell` (both cloned
//! when a branch changes them), its durable state and the client operations waiting at it,
//! plus the messages in flight (a multiset) and the client history; the table of actions
//! between states (`actions::ACTIONS`); the merging of states that differ only in what no
//! future step can observe (`merge`); the properties checked in every reachable state; the
//! table of bug switches (`SWITCHES`); and the command that runs the `stateright`
//! breadth-first checker over it and prints the shortest counter-example.
//! Must never: change the core's or the shell's behaviour (it feeds the core `step` and `tick`
//! and the shell proposals and reads, and lets the shell perform every `Ready`; `io` is only
//! the shell's disk, network and state machine), or report "no violation" for a search it cut
//! short without saying so.
//!
//! Bounds, and what they leave out (the README's model section says the same, with figures):
//! - Depth: paths of at most `--depth` actions, breadth-first, so the counter-example found is
//!   a shortest one when one thread searches (with more threads, close to shortest, and a
//!   state first reached on a longer path is explored only to the depth left on that path).
//! - Time: a timer firing is one action. A leader's is its heartbeat tick (check-quorum runs on
//!   the core's own count of those ticks); anyone else's ticks until the core campaigns.
//!   Left out: a follower whose lease expired but whose timer has not fired yet, i.e. one that
//!   grants a vote to another candidate before campaigning itself (it still can after its own
//!   pre-vote starts). The tick count, random source and randomized timeout are not part of a
//!   state's identity: they only decide when a timer fires, and the model lets it fire at any
//!   point.
//! - Terms at most `--max-term`, messages in flight at most `--max-in-flight`: a state beyond
//!   either is not explored. Logs are bounded through them: one no-op per term plus the
//!   client writes.
//! - Budgets per path (`Budget`): client writes and reads, timer fires (unbounded by default),
//!   and each fault: drops, duplicates, crashes. A message may also stay in flight forever, so
//!   every loss pattern is covered for safety whatever the drop budget; drops only let states
//!   that differ by dead messages merge and make room under `--max-in-flight`.
//! - A crash restarts the node at once (its time down is the other nodes' actions). It may
//!   lose the node's last persist when nothing that waited for that persist (acknowledgements,
//!   applied entries, served reads) has left the node yet.
//! - Each persist is durable at once, before the node takes its next event (a node that flushes
//!   concurrently with stepping new messages is not modelled).
//! - Disk damage (`--faults damage`, off by default and not in `all`; budget `--max-damages`,
//!   1): a node crashes and its disk takes one of the simulator's damages
//!   (`crate::sim::disk::Damage`, as `Disk::possible_damages` offers them: sled's hard state
//!   or the durable-progress record unreadable, sled's last step rolled back with the record
//!   kept, the hard state's write misdirected onto the record or the record's onto the hard
//!   state, a damaged, dropped, misdirected or old log record), one action per distinct read a
//!   start makes of the damaged disk (the start sets such a disk aside, so damages read alike
//!   lead to one state); only while every other node is ordinary and the disk holds a record.
//!   The same budget pays for a kill between sled's flush of the last persist and the record's
//!   write (while none of its acknowledgements has left), and, only with the storage order
//!   switched (`record_after_acks`, the record written after the acknowledgements), a kill
//!   after the acknowledgements left and before the record, with sled's write of that persist
//!   lost too. Every start (first boot, crash,
//!   wipe, damage) goes through the node's start decision (`Disk::decide_start`). Left out:
//!   two damages at one crash, a torn batch (the model's persists are whole), a snapshot
//!   chunk (no snapshots), and a clock stepping back (a new
//!   incarnation is one above every one in use). A node that starts empty starts at term 0,
//!   so while a wipe or a damage is left the merges that rely on a term floor are off.
//! - Clients: offered only at a leader, all on one key; writes carry their op number as the
//!   value. No snapshots are taken, so the InstallSnapshot path is not explored. Static
//!   membership.
//! - Core configuration: pre-vote and check-quorum as `--pre-vote` / `--check-quorum` say (on
//!   by default, as in the node); a search with one off checks that configuration of the node,
//!   not the other.
//! - Atomic pre-vote rounds (`--pre-vote atomic`, off by default): the core runs pre-vote as
//!   in the node, but a round completes within the timer action that starts it: each peer
//!   takes the request at once and the node takes the answers at once, or (a second timer
//!   action) all its requests are lost. Left out: pre-vote requests and answers delayed,
//!   duplicated or partly lost, such as a grant counted after the granting node moved on.
//!   Pre-vote changes no voter's state, so what is lost is only when a real election may
//!   start; an election costs three actions instead of five.
//! - Symmetry: states equal up to a permutation of node ids are explored once.
//! - Warm starts (`--from elected|committed`, off by default): the search starts from the
//!   state a fixed fault-free schedule of the model's own actions reaches from the empty
//!   cluster (`warm`: n1's timer fires, then every message is delivered in the network's order
//!   until none is left; `committed` adds one client write at n1, delivered the same way). The
//!   depth and the budgets count only the actions after it. Left out: every path whose first
//!   actions differ from that schedule (another first leader, faults before n1 leads, a write
//!   before the no-op is everywhere), so such a search checks what can happen after this one
//!   history, and the empty start checks the others to its own depth.
//!
//! Bounded liveness (`liveness`), checked only where a node is rejoining, every fault budget
//! is spent and a leader holds the highest term: a copy of the state is driven through
//! `liveness::ROUNDS` (6) fault-free rounds (every message in flight delivered in the network's
//! order, then the leader's timer and every probing node's timer fire); if the leader still
//! leads and no node is in a later term, every node must be ordinary. Left out: a rejoin that
//! needs more rounds (a longer log than the model's bounds give), or one stalled while no
//! leader is steady (no election is driven), and any state where a fault may still come.
//!
//! Merges (`merge`, sound, off with `--no-merge`): a message that can never again change its
//! receiver is removed, and path records that no future check can read are cleared, so states
//! that differ only there are explored once.

mod actions;
mod cli;
mod cluster;
mod digest;
mod intern;
mod io;
mod liveness;
mod merge;
mod props;
mod restart;
#[cfg(test)]
mod tests;
mod warm;

pub use actions::{Action, ActionKind, ACTIONS};
pub use cli::{cli, ModelArgs};
pub use cluster::Cluster;

use crate::raft::Bugs;
use crate::shell::rejoin::RejoinBugs;
use crate::shell::ShellBugs;
use stateright::{Model, Property};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// What a path may spend: client operations, timer fires, and each fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Budget {
    Write,
    Read,
    Timer,
    Drop,
    Dup,
    Crash,
    Wipe,
    Damage,
}

impl Budget {
    pub const ALL: [Budget; 8] = [
        Budget::Write,
        Budget::Read,
        Budget::Timer,
        Budget::Drop,
        Budget::Dup,
        Budget::Crash,
        Budget::Wipe,
        Budget::Damage,
    ];
    /// The budgets that are faults, with the names `--faults` takes.
    pub const FAULTS: [(Budget, &'static str); 5] = [
        (Budget::Drop, "drop"),
        (Budget::Dup, "dup"),
        (Budget::Crash, "crash"),
        (Budget::Wipe, "wipe"),
        (Budget::Damage, "damage"),
    ];

    /// The faults after which a node may start with an empty directory (term 0, a new
    /// incarnation): no term floor holds while one is left.
    pub const RESTART_EMPTY: [Budget; 2] = [Budget::Wipe, Budget::Damage];

    /// The name a summary line uses.
    pub fn name(self) -> &'static str {
        match self {
            Budget::Write => "writes",
            Budget::Read => "reads",
            Budget::Timer => "timers",
            Budget::Drop => "drops",
            Budget::Dup => "dups",
            Budget::Crash => "crashes",
            Budget::Wipe => "wipes",
            Budget::Damage => "damages",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many actions of each budget a path may still take; `None` is unbounded and uncounted
/// (so states that differ only by how many such actions happened stay one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budgets([Option<u8>; Budget::ALL.len()]);

impl Budgets {
    pub fn left(&self, b: Budget) -> Option<u8> {
        self.0[b.index()]
    }

    /// True unless the budget is spent.
    pub fn allows(&self, b: Budget) -> bool {
        self.left(b) != Some(0)
    }

    /// True when any of `budgets` is not spent.
    pub fn allows_any(&self, budgets: impl IntoIterator<Item = Budget>) -> bool {
        budgets.into_iter().any(|b| self.allows(b))
    }

    pub fn set(&mut self, b: Budget, left: Option<u8>) {
        self.0[b.index()] = left;
    }

    /// Takes one action of budget `b`.
    pub fn spend(&mut self, b: Budget) {
        let slot = &mut self.0[b.index()];
        debug_assert!(
            *slot != Some(0),
            "an action of a spent budget {b:?} was taken"
        );
        *slot = slot.map(|n| n.saturating_sub(1));
    }
}

/// Which fault budgets a search offers at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    enabled: [bool; Budget::FAULTS.len()],
}

impl Faults {
    /// Every fault but `wipe` and `damage`, which are named on their own: a wiped node, or one
    /// whose damaged disk makes it start empty, starts again at term 0, so no term floor holds
    /// and the state merges that rely on one are off, which grows the space a search must cover.
    pub fn all() -> Faults {
        let mut enabled = [true; Budget::FAULTS.len()];
        for (slot, (budget, _)) in enabled.iter_mut().zip(Budget::FAULTS) {
            *slot = !Budget::RESTART_EMPTY.contains(&budget);
        }
        Faults { enabled }
    }

    pub fn none() -> Faults {
        Faults {
            enabled: [false; Budget::FAULTS.len()],
        }
    }

    pub fn has(&self, fault: Budget) -> bool {
        Budget::FAULTS
            .iter()
            .zip(self.enabled)
            .any(|((b, _), on)| *b == fault && on)
    }

    /// `all`, `none`, or a comma-separated list of the names in `Budget::FAULTS`.
    pub fn parse(text: &str) -> Result<Faults, String> {
        match text {
            "all" => return Ok(Faults::all()),
            "none" => return Ok(Faults::none()),
            _ => {}
        }
        let mut f = Faults::none();
        for name in text.split(',').map(str::trim) {
            let Some(i) = Budget::FAULTS.iter().position(|(_, n)| *n == name) else {
                let known: Vec<&str> = Budget::FAULTS.iter().map(|(_, n)| *n).collect();
                return Err(format!(
                    "unknown fault `{name}` (known: {}, or all / none)",
                    known.join(", ")
                ));
            };
            f.enabled[i] = true;
        }
        Ok(f)
    }

    /// The enabled faults' names, comma-separated (`none` if none).
    pub fn names(&self) -> String {
        let on: Vec<&str> = Budget::FAULTS
            .iter()
            .zip(self.enabled)
            .filter(|(_, on)| *on)
            .map(|((_, n), _)| *n)
            .collect();
        if on.is_empty() {
            "none".into()
        } else {
            on.join(",")
        }
    }
}

/// Everything that defines one model.
#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: usize,
    pub bugs: Bugs,
    pub shell_bugs: ShellBugs,
    /// The start decision's unsafe variants (`crate::shell::rejoin::decide`).
    pub rejoin_bugs: RejoinBugs,
    /// What a path may spend (a fault that is off has budget 0).
    pub budgets: Budgets,
    pub max_term: u64,
    pub max_in_flight: usize,
    pub pre_vote: bool,
    /// With `pre_vote`: a pre-vote round completes within the timer action that starts it
    /// (`Cluster::fire_timer`), so no pre-vote message is ever in flight.
    pub atomic_pre_vote: bool,
    pub check_quorum: bool,
    pub symmetry: bool,
    /// Merge states that differ only in what no future step can observe (`merge`).
    pub merge: bool,
    /// Check each start decision against what the node did before (`restart`); off, a
    /// search shows what a wrong decision leads to in the protocol's own properties.
    pub restart_checks: bool,
    /// The state the search starts from (`warm`).
    pub from: warm::WarmStart,
    /// The unsafe storage order (a switch): the durable-progress record is written after a
    /// persist's acknowledgements leave instead of before, so a kill in between followed by a
    /// rolled-back sled write leaves a disk that looks clean (the `damage` fault then offers
    /// that crash).
    pub record_after_acks: bool,
}

impl Default for Settings {
    /// 3 nodes, the faults of `Faults::all()` once per path (every one but `wipe` and
    /// `damage`), one write
    /// and one read, timers unbounded, terms up to 3, 6 messages in flight, the node's core
    /// configuration: what `raftkv model` runs with no flags.
    fn default() -> Settings {
        let mut budgets = Budgets([Some(1); Budget::ALL.len()]);
        budgets.set(Budget::Timer, None);
        budgets.set(Budget::Wipe, Some(0));
        budgets.set(Budget::Damage, Some(0));
        Settings {
            nodes: 3,
            bugs: Bugs::default(),
            shell_bugs: ShellBugs::default(),
            rejoin_bugs: RejoinBugs::default(),
            budgets,
            max_term: 3,
            max_in_flight: 6,
            pre_vote: true,
            atomic_pre_vote: false,
            check_quorum: true,
            symmetry: true,
            merge: true,
            restart_checks: true,
            from: warm::WarmStart::Empty,
            record_after_acks: false,
        }
    }
}

impl Settings {
    /// These settings offering exactly `faults`: a fault that is off gets budget 0, one that is
    /// on keeps its budget, or 1 if it had none (`wipe` and `damage`, off by default).
    pub fn with_faults(mut self, faults: Faults) -> Settings {
        for (b, _) in Budget::FAULTS {
            let left = match self.budgets.left(b) {
                _ if !faults.has(b) => Some(0),
                Some(0) => Some(1),
                left => left,
            };
            self.budgets.set(b, left);
        }
        self
    }

    /// These settings with `left` actions of budget `b` per path.
    pub fn with_budget(mut self, b: Budget, left: Option<u8>) -> Settings {
        self.budgets.set(b, left);
        self
    }
}

/// One bug switch: its name, what it breaks, and how it is turned on.
#[derive(Debug)]
pub struct Switch {
    pub name: &'static str,
    pub breaks: &'static str,
    pub turn_on: fn(&mut Settings),
}

/// The bug switches: the core's (`crate::raft::Bugs`), the shared shell's
/// (`crate::shell::ShellBugs`) and the start decision's (`crate::shell::rejoin::RejoinBugs`,
/// found only with the `damage` fault), and the storage order's `record_after_acks` (the
/// model's disk is the simulator's, which writes the record within the persist, before
/// anything leaves; the switch lets the `damage` fault kill a node after its acknowledgements
/// left and before its record's write). A new switch is one row here.
pub const SWITCHES: [Switch; 18] = [
    Switch {
        name: "vote_without_persist",
        breaks: "a vote grant leaves before it is durable",
        turn_on: |s| s.bugs.vote_without_persist = true,
    },
    Switch {
        name: "read_without_read_index",
        breaks: "a leader serves reads from local state at once",
        turn_on: |s| s.bugs.read_without_read_index = true,
    },
    Switch {
        name: "commit_old_term_by_counting",
        breaks: "an entry of an earlier term commits by counting replicas",
        turn_on: |s| s.bugs.commit_old_term_by_counting = true,
    },
    Switch {
        name: "read_before_own_term_commit",
        breaks: "a ReadIndex round starts before the leader's own-term commit",
        turn_on: |s| s.bugs.read_before_own_term_commit = true,
    },
    Switch {
        name: "ack_before_flush",
        breaks: "the shell sends vote grants and append acknowledgements before their flush",
        turn_on: |s| s.shell_bugs.ack_before_flush = true,
    },
    Switch {
        name: "single_mark",
        breaks: "a start consults only sled's copy of the recovering mark",
        turn_on: |s| s.rejoin_bugs.single_mark = true,
    },
    Switch {
        name: "probing_restart_is_known",
        breaks: "a restart during probing takes its hard state as known and only catches up",
        turn_on: |s| s.rejoin_bugs.probing_restart_is_known = true,
    },
    Switch {
        name: "trust_one_copy",
        breaks: "a damaged start carries term and vote from the one intact copy",
        turn_on: |s| s.rejoin_bugs.trust_one_copy = true,
    },
    Switch {
        name: "compare_by_term_alone",
        breaks: "a damaged start compares the hard state and the record by term alone",
        turn_on: |s| s.rejoin_bugs.compare_by_term_alone = true,
    },
    Switch {
        name: "ack_while_probing",
        breaks: "a rejoining node acknowledges before every peer answered its probe",
        turn_on: |s| s.bugs.ack_while_probing = true,
    },
    Switch {
        name: "pre_vote_while_recovering",
        breaks: "a rejoining node grants pre-votes",
        turn_on: |s| s.bugs.pre_vote_while_recovering = true,
    },
    Switch {
        name: "catch_up_by_capped_commit",
        breaks: "a rejoining node ends its catch-up on a heartbeat's capped commit",
        turn_on: |s| s.bugs.catch_up_by_capped_commit = true,
    },
    Switch {
        name: "ignore_incarnations",
        breaks: "nodes take messages whatever incarnations they name",
        turn_on: |s| s.bugs.ignore_incarnations = true,
    },
    Switch {
        name: "keep_progress_of_new_incarnation",
        breaks: "a leader keeps its view of a follower that came back as a new incarnation",
        turn_on: |s| s.bugs.keep_progress_of_new_incarnation = true,
    },
    Switch {
        name: "probe_majority_only",
        breaks: "a rejoining node ends its probe round with a majority's answers",
        turn_on: |s| s.bugs.probe_majority_only = true,
    },
    Switch {
        name: "probe_majority_then_await_leader",
        breaks:
            "a rejoining node whose probe a majority answered follows a leader of a higher term",
        turn_on: |s| s.bugs.probe_majority_then_await_leader = true,
    },
    Switch {
        name: "record_after_acks",
        breaks: "the durable-progress record is written after the persist's acknowledgements leave",
        turn_on: |s| s.record_after_acks = true,
    },
    Switch {
        name: "never_send_uncapped_commit",
        breaks: "a leader never flags a heartbeat's commit as uncapped",
        turn_on: |s| s.bugs.never_send_uncapped_commit = true,
    },
];

/// The switch named `name`, or an error listing the known ones.
pub fn switch(name: &str) -> Result<&'static Switch, String> {
    SWITCHES.iter().find(|s| s.name == name).ok_or_else(|| {
        let known: Vec<&str> = SWITCHES.iter().map(|s| s.name).collect();
        format!("unknown switch `{name}` (known: {})", known.join(", "))
    })
}

impl Settings {
    /// These settings with switch `s` on.
    pub fn with_switch(mut self, s: &Switch) -> Settings {
        (s.turn_on)(&mut self);
        self
    }
}

/// The state after `action`, with the first property it breaks (on the transition or in the
/// state) recorded in `violation`.
pub fn step(cluster: &Cluster, action: &Action, settings: &Settings) -> Cluster {
    let mut next = cluster.next(action, settings);
    if next.violation.is_none() {
        if let Some((property, detail)) = props::state_violation(&next) {
            next.violation = Some(cluster::Violation { property, detail });
        }
    }
    if next.violation.is_none() {
        if let Some(detail) = liveness::violation(&next, settings) {
            next.violation = Some(cluster::Violation {
                property: liveness::REJOINS,
                detail,
            });
        }
    }
    if settings.merge {
        merge::merge(&mut next, settings);
    }
    next
}

/// The model the checker explores.
#[derive(Clone, Debug)]
pub struct RaftModel {
    pub settings: Settings,
    /// Actions on the longest path: a state that deep is checked but not expanded.
    pub depth: usize,
    /// `SEARCHING`, then `VIOLATION_MADE` once a state that breaks a property has been made
    /// (within the bounds): from then on no state is expanded, so the breadth-first queue
    /// drains to that state, which is then checked and reported, instead of first expanding the
    /// rest of its level and half of the next. Shallower states were all made earlier, so the
    /// path found stays a shortest one. `REPLAYING` while paths are rebuilt after the search.
    pub phase: Arc<AtomicU8>,
    /// The names of the properties the checker reports (`props::all`).
    known: Arc<Vec<&'static str>>,
    /// A broken property that is not among `known`: the search stops, and the run reports it
    /// as an error rather than finishing as if nothing had broken.
    pub unknown: Arc<OnceLock<&'static str>>,
    /// One copy of each distinct node state met.
    nodes: Arc<intern::Interner>,
}

impl RaftModel {
    pub fn new(settings: Settings, depth: usize) -> RaftModel {
        RaftModel {
            settings,
            depth,
            phase: Arc::new(AtomicU8::new(SEARCHING)),
            known: Arc::new(props::all().iter().map(|p| p.name).collect()),
            unknown: Arc::new(OnceLock::new()),
            nodes: Arc::new(intern::Interner::default()),
        }
    }
}

pub const SEARCHING: u8 = 0;
pub const VIOLATION_MADE: u8 = 1;
pub const REPLAYING: u8 = 2;

/// A cluster state together with its canonical digest (computed once, when the state is made)
/// and the length of the path it was first made on (not part of its identity).
#[derive(Clone)]
pub struct State {
    pub cluster: Cluster,
    digest: u64,
    depth: usize,
}

impl State {
    fn new(cluster: Cluster, symmetry: bool, depth: usize) -> State {
        let digest = digest::canonical(&cluster, symmetry);
        State {
            cluster,
            digest,
            depth,
        }
    }
}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.digest.hash(h);
    }
}

impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.digest == other.digest
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", cli::describe_state(&self.cluster))
    }
}

impl Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        match warm::start(&self.settings) {
            Ok((c, _)) => vec![State::new(c, self.settings.symmetry, 0)],
            Err(e) => {
                debug_assert!(false, "the start state cannot fail to be made: {e}");
                Vec::new()
            }
        }
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let replaying = self.phase.load(Ordering::Relaxed) == REPLAYING;
        let searching = self.phase.load(Ordering::Relaxed) == SEARCHING;
        if replaying || (searching && state.depth < self.depth) {
            state.cluster.actions(&self.settings, actions);
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut cluster = step(&state.cluster, &action, &self.settings);
        self.nodes.share(&state.cluster, &mut cluster);
        let next = State::new(cluster, self.settings.symmetry, state.depth + 1);
        if let Some(v) = &next.cluster.violation {
            if self.within_boundary(&next) {
                if !self.known.contains(&v.property) {
                    let _ = self.unknown.set(v.property);
                }
                let _ = self.phase.compare_exchange(
                    SEARCHING,
                    VIOLATION_MADE,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        props::all()
    }

    fn within_boundary(&self, state: &State) -> bool {
        let c = &state.cluster;
        c.network.len() <= self.settings.max_in_flight
            && c.nodes
                .iter()
                .all(|n| n.raft().status().term <= self.settings.max_term)
    }
}
