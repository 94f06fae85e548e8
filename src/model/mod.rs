//! `raftkv model`: exhaustive, bounded model checking of the real consensus core.
//!
//! Owns: a model of a small cluster (3 nodes by default, up to 5) whose state is, per node,
//! the real core from `crate::raft` inside the shared shell `crate::shell::Shell` (both cloned
//! at every branch), its durable state and the client operations waiting at it, plus the messages in flight (a multiset) and the client history;
//! the actions between states (deliver, drop or duplicate a message, a node's timer fires, a
//! node crashes and restarts, possibly losing its last persist, a client writes or reads at a
//! leader); the properties checked in every reachable state; and the command that runs the
//! `stateright` breadth-first checker over it and prints the shortest counter-example.
//! Must never: change the core's or the shell's behaviour (it feeds the core `step` and `tick`
//! and the shell proposals and reads, and lets the shell perform every `Ready`; `io` is only
//! the shell's disk, network and state machine), or report "no violation" for a search it cut
//! short without saying so.
//!
//! Bounds, and what they leave out:
//! - Depth: paths of at most `--depth` actions (default 10; memory grows about 3x per level),
//!   breadth-first, so the counter-example found is a shortest one when one thread searches
//!   (with more threads, close to shortest).
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
//! - Timer fires per path at most `--max-timers` when given (unbounded by default): a search
//!   for a bug that needs two elections need not explore every heartbeat.
//! - Faults, each with a budget per path: crashes (`--max-crashes`), drops, duplicates. A
//!   message may also stay in flight forever, so every loss pattern is covered for safety
//!   whatever the drop budget; drops only let states that differ by dead messages merge.
//! - A crash restarts the node at once (its time down is the other nodes' actions). It may
//!   lose the node's last persist when nothing that waited for that persist (acknowledgements,
//!   applied entries, served reads) has left the node yet.
//! - Each persist is durable at once, before the node takes its next event (a node that flushes
//!   concurrently with stepping new messages is not modelled).
//! - Clients: `--writes` writes and `--reads` reads in all, offered only at a leader, all on
//!   one key; writes carry their op number as the value. No snapshots are taken, so the
//!   InstallSnapshot path is not explored. Static membership.
//! - Symmetry: states equal up to a permutation of node ids are explored once.

mod cli;
mod cluster;
mod digest;
mod io;
mod props;
#[cfg(test)]
mod tests;

pub use cli::{cli, ModelArgs};
pub use cluster::{Action, Cluster};

use crate::raft::Bugs;
use stateright::{Model, Property};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Which fault actions the model offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    pub drop: bool,
    pub dup: bool,
    pub crash: bool,
}

impl Faults {
    pub fn all() -> Faults {
        Faults {
            drop: true,
            dup: true,
            crash: true,
        }
    }

    pub fn none() -> Faults {
        Faults {
            drop: false,
            dup: false,
            crash: false,
        }
    }

    /// `all`, `none`, or a comma-separated list of `drop`, `dup`, `crash`.
    pub fn parse(text: &str) -> Result<Faults, String> {
        match text {
            "all" => return Ok(Faults::all()),
            "none" => return Ok(Faults::none()),
            _ => {}
        }
        let mut f = Faults::none();
        for name in text.split(',') {
            match name.trim() {
                "drop" => f.drop = true,
                "dup" => f.dup = true,
                "crash" => f.crash = true,
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (known: drop, dup, crash, or all / none)"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// Everything that defines one model.
#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: usize,
    pub faults: Faults,
    pub bugs: Bugs,
    pub writes: u8,
    pub reads: u8,
    pub max_crashes: u8,
    pub max_drops: u8,
    pub max_dups: u8,
    /// Timer fires per path (elections and heartbeats); `None` = unbounded.
    pub max_timers: Option<u8>,
    pub max_term: u64,
    pub max_in_flight: usize,
    pub symmetry: bool,
    /// Test only: mistakes switched on in the shared shell (`crate::shell::ShellBugs`).
    #[cfg(test)]
    pub shell_bugs: crate::shell::ShellBugs,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            nodes: 3,
            faults: Faults::all(),
            bugs: Bugs::default(),
            writes: 1,
            reads: 1,
            max_crashes: 1,
            max_drops: 1,
            max_dups: 1,
            max_timers: None,
            max_term: 3,
            max_in_flight: 6,
            symmetry: true,
            #[cfg(test)]
            shell_bugs: crate::shell::ShellBugs::default(),
        }
    }
}

/// The bug switches by name: (name, what it breaks).
pub const SWITCHES: [(&str, &str); 4] = [
    (
        "vote_without_persist",
        "a vote grant leaves before it is durable",
    ),
    (
        "read_without_read_index",
        "a leader serves reads from local state at once",
    ),
    (
        "commit_old_term_by_counting",
        "an entry of an earlier term commits by counting replicas",
    ),
    (
        "read_before_own_term_commit",
        "a ReadIndex round starts before the leader's own-term commit",
    ),
];

/// Turns a switch name into the core's `Bugs`.
pub fn switch(name: &str) -> Result<Bugs, String> {
    let mut b = Bugs::default();
    match name {
        "vote_without_persist" => b.vote_without_persist = true,
        "read_without_read_index" => b.read_without_read_index = true,
        "commit_old_term_by_counting" => b.commit_old_term_by_counting = true,
        "read_before_own_term_commit" => b.read_before_own_term_commit = true,
        other => {
            let known: Vec<&str> = SWITCHES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown switch `{other}` (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(b)
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
    next
}

/// The model the checker explores.
#[derive(Clone, Debug)]
pub struct RaftModel {
    pub settings: Settings,
    /// `SEARCHING`, then `VIOLATION_MADE` once a state that breaks a property has been made
    /// (within the bounds): from then on no state is expanded, so the breadth-first queue
    /// drains to that state, which is then checked and reported, instead of first expanding the
    /// rest of its level and half of the next. Shallower states were all made earlier, so the
    /// path found stays a shortest one. `REPLAYING` while paths are rebuilt after the search.
    pub phase: Arc<AtomicU8>,
}

impl RaftModel {
    pub fn new(settings: Settings) -> RaftModel {
        RaftModel {
            settings,
            phase: Arc::new(AtomicU8::new(SEARCHING)),
        }
    }
}

pub const SEARCHING: u8 = 0;
pub const VIOLATION_MADE: u8 = 1;
pub const REPLAYING: u8 = 2;

/// A cluster state together with its canonical digest (computed once, when the state is made).
#[derive(Clone)]
pub struct State {
    pub cluster: Cluster,
    digest: u64,
}

impl State {
    fn new(cluster: Cluster, symmetry: bool) -> State {
        let digest = digest::canonical(&cluster, symmetry);
        State { cluster, digest }
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
        match Cluster::new(&self.settings) {
            Ok(c) => vec![State::new(c, self.settings.symmetry)],
            Err(e) => {
                debug_assert!(false, "an empty node cannot fail to start: {e}");
                Vec::new()
            }
        }
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if self.phase.load(Ordering::Relaxed) != VIOLATION_MADE {
            state.cluster.actions(actions);
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let next = State::new(
            step(&state.cluster, &action, &self.settings),
            self.settings.symmetry,
        );
        if next.cluster.violation.is_some() && self.within_boundary(&next) {
            let _ = self.phase.compare_exchange(
                SEARCHING,
                VIOLATION_MADE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
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
