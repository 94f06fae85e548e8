//! `raftkv model`: flags, the checker run with its progress line and figures, and the
//! counter-example printed as a trace.
//!
//! Owns: parsing the flags, running `stateright`'s breadth-first checker, the progress line on
//! stderr, the summary, and the trace of a violation.
//! Must never: claim a depth was covered when the run stopped early (a violation stops it, and
//! the summary says so).

use super::cluster::Cluster;
use super::warm::{self, WarmStart};
use super::{props, switch, Action, Budget, Faults, RaftModel, Settings, State, Switch};
use crate::raft::{Recovery, Role};
use crate::sim::cluster::short;
use stateright::{Checker, HasDiscoveries, Model, Path};
use std::time::{Duration, Instant};

/// `raftkv model`: exhaustive, breadth-first model checking of the real core.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "Model-check the consensus core exhaustively to a bounded depth",
    long_about = "Explores every state of an N-node cluster of real cores reachable in at most D \
actions (breadth-first): deliver, drop or duplicate a message, a node's timer fires, a node crashes \
and restarts (possibly losing its last persist), a node loses its directory (wipe), with the damage \
fault a crashed node's disk is damaged (and its restart goes through the node's start decision), a \
client writes or reads at a leader; from the empty cluster, or (--from) from a warm state its own \
actions reach without faults, printed before a violation's trace. States \
equal up to a renaming of nodes, or differing only in what no future step can observe, are \
explored once. Checks in \
every state: election safety, log matching, leader completeness, no electable node lacking a \
committed entry, state machine safety, commit never goes back, linearizability of the client \
operations, that a restart owes what the node owed and, when it carries a term forward from a \
damaged or unfinished directory, keeps every vote the node granted (which the damage fault exercises), \
the rejoin rules on every message sent (no vote or pre-vote granted while rejoining, no \
acknowledgement while probing), that a node ending its catch-up lacks only entries a majority of \
the others hold, that a node ending its probe round holds a vote at the term of every vote it \
granted, and, where a node is rejoining and every fault is spent, that the \
rejoining node becomes ordinary within 6 fault-free rounds under a steady leader. Reports \
whether a leader was elected, a write committed and a read served within the depth. Prints states \
explored, unique states, depth, states/s, elapsed and peak memory; on a \
violation the shortest path to it as a trace, and exit status 1. Exit status 2 on bad flags or \
when a state breaks a property the checker does not report."
)]
pub struct ModelArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=5))]
    nodes: u64,
    /// Actions on the longest path explored.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1000))]
    depth: u64,
    /// Faults, comma-separated: drop, dup, crash, wipe, damage; or all (every one but wipe and
    /// damage), none.
    #[arg(long, default_value = "all", value_parser = Faults::parse)]
    faults: Faults,
    /// A bug switch to turn on: the core's vote_without_persist, read_without_read_index,
    /// commit_old_term_by_counting, read_before_own_term_commit, its rejoin switches
    /// (ack_while_probing, pre_vote_while_recovering, catch_up_by_capped_commit,
    /// ignore_incarnations, keep_progress_of_new_incarnation, probe_majority_only,
    /// probe_majority_then_await_leader, never_send_uncapped_commit), the shell's
    /// ack_before_flush, the start decision's single_mark, probing_restart_is_known,
    /// trust_one_copy, compare_by_term_alone, or the storage order's record_after_acks (these
    /// five found with the damage fault).
    #[arg(long = "switch", value_name = "NAME", value_parser = switch)]
    switch: Option<&'static Switch>,
    /// Checker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
    /// Client writes in a path.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=9))]
    writes: u8,
    /// Client reads in a path.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=9))]
    reads: u8,
    /// Crashes in a path.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=9))]
    max_crashes: u8,
    /// Disk damages in a path (with the damage fault): a crash whose disk is damaged, or a
    /// kill between sled's flush and the durable-progress record's write.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=9))]
    max_damages: u8,
    /// Dropped messages in a path.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=9))]
    max_drops: u8,
    /// Duplicated messages in a path.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=9))]
    max_dups: u8,
    /// Timer fires in a path (unbounded when not given).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=200))]
    max_timers: Option<u8>,
    /// Highest term a node may reach.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=100))]
    max_term: u64,
    /// Messages in flight at once.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(0..=100))]
    max_in_flight: u64,
    /// Pre-vote in the core: on (as in the node), off, or atomic (on, and a pre-vote round
    /// completes within the timer action that starts it: a bound, see the README).
    #[arg(long, default_value = "on", value_name = "on|off|atomic", value_parser = ["on", "off", "atomic"])]
    pre_vote: String,
    /// Check-quorum in the core (on, as in the node, or off).
    #[arg(long, default_value = "on", value_name = "on|off", value_parser = on_off, action = clap::ArgAction::Set)]
    check_quorum: bool,
    /// The state the search starts from: empty (every node empty), elected (n1's timer fired
    /// and every message was delivered: n1 leads term 1, its no-op committed everywhere), or
    /// committed (elected, then one client write at n1 delivered everywhere). The warm-up is
    /// played with the model's own actions and is not counted in the depth or the budgets.
    #[arg(long, default_value = "empty", value_name = "empty|elected|committed", value_parser = WarmStart::parse)]
    from: WarmStart,
    /// Turn off the symmetry reduction over node ids.
    #[arg(long)]
    no_symmetry: bool,
    /// Turn off the merging of states that differ only in what no future step can observe.
    #[arg(long)]
    no_merge: bool,
    /// Turn off the rule-level checks of each restart's start decision ("a restart owes what
    /// the node owed", "a restart keeps every vote granted"), to see where a wrong decision
    /// leads in the protocol's own properties.
    #[arg(long)]
    no_restart_checks: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("`{other}` is neither on nor off")),
    }
}

/// A parsed command line.
#[derive(Clone, Debug)]
pub struct Args {
    pub settings: Settings,
    /// The switch turned on.
    pub switch: Option<&'static Switch>,
    pub faults: Faults,
    pub depth: usize,
    pub threads: usize,
    pub quiet: bool,
}

impl From<ModelArgs> for Args {
    fn from(m: ModelArgs) -> Args {
        let mut settings = Settings {
            nodes: m.nodes as usize,
            max_term: m.max_term,
            max_in_flight: m.max_in_flight as usize,
            pre_vote: m.pre_vote != "off",
            atomic_pre_vote: m.pre_vote == "atomic",
            check_quorum: m.check_quorum,
            symmetry: !m.no_symmetry,
            merge: !m.no_merge,
            restart_checks: !m.no_restart_checks,
            from: m.from,
            ..Settings::default()
        }
        .with_faults(m.faults)
        .with_budget(Budget::Write, Some(m.writes))
        .with_budget(Budget::Read, Some(m.reads))
        .with_budget(Budget::Timer, m.max_timers);
        for (fault, max) in [
            (Budget::Crash, m.max_crashes),
            (Budget::Drop, m.max_drops),
            (Budget::Dup, m.max_dups),
            (Budget::Damage, m.max_damages),
        ] {
            if m.faults.has(fault) {
                settings = settings.with_budget(fault, Some(max));
            }
        }
        if let Some(s) = m.switch {
            settings = settings.with_switch(s);
        }
        Args {
            settings,
            switch: m.switch,
            faults: m.faults,
            depth: m.depth as usize,
            threads: m.threads as usize,
            quiet: m.quiet,
        }
    }
}

/// What one run found.
pub struct Outcome {
    pub states: usize,
    pub unique: usize,
    /// Actions on the longest path checked.
    pub depth: usize,
    pub elapsed: Duration,
    /// The violated property, its detail and the path to it.
    pub violation: Option<(&'static str, String, Path<State, Action>)>,
    /// Reachability checks: name and whether the run reached it.
    pub reached: Vec<(&'static str, bool)>,
    /// A property a state broke that the checker does not report (not in `props::all`).
    pub unknown_property: Option<&'static str>,
}

/// Runs the checker to `depth` actions; `progress` gets a line about once a second.
pub fn run(args: &Args, progress: &mut dyn FnMut(&str)) -> Outcome {
    run_model(
        RaftModel::new(args.settings.clone(), args.depth),
        args.threads,
        progress,
    )
}

/// Runs the checker over `model` (to its depth) with `threads` threads.
pub fn run_model(model: RaftModel, threads: usize, progress: &mut dyn FnMut(&str)) -> Outcome {
    let depth = model.depth;
    let phase = model.phase.clone();
    let unknown = model.unknown.clone();
    let properties = model.properties();
    let started = Instant::now();
    // The model offers no action in a state `args.depth` actions deep, so no state deeper is
    // made (stateright's own depth bound would make one level more and skip it).
    let mut checker = model
        .checker()
        .threads(threads)
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs();
    let handles = checker.handles();
    let mut last = Instant::now();
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let (states, secs) = (checker.state_count(), started.elapsed().as_secs_f64());
            progress(&format!(
                "depth {:>3}  states {states:>11}  unique {:>10}  {:>9.0} states/s  {secs:>6.1} s",
                checker.max_depth().saturating_sub(1),
                checker.unique_state_count(),
                states as f64 / secs.max(1e-9),
            ));
        }
    }
    let mut panicked = false;
    for h in handles {
        panicked |= h.join().is_err();
    }
    let elapsed = started.elapsed();
    // The paths are rebuilt by replaying the model's actions: let it offer them again.
    phase.store(super::REPLAYING, std::sync::atomic::Ordering::Relaxed);
    let discoveries = checker.discoveries();
    let mut violation = None;
    let mut reached = Vec::new();
    for p in &properties {
        let found = discoveries.get(p.name);
        if p.expectation == stateright::Expectation::Sometimes {
            reached.push((p.name, found.is_some()));
        } else if let (Some(path), None) = (found, &violation) {
            let detail = props::explain(&path.last_state().cluster, p.name)
                .unwrap_or_else(|| "(no detail)".into());
            violation = Some((p.name, detail, path.clone()));
        }
    }
    if panicked && violation.is_none() {
        let path = Path::from_actions(&checker.model().clone(), first_state(checker.model()), &[]);
        if let Some(path) = path {
            violation = Some(("no panic", "a checker thread panicked".into(), path));
        }
    }
    Outcome {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        depth: checker.max_depth().saturating_sub(1).min(depth),
        elapsed,
        violation,
        reached,
        unknown_property: unknown.get().copied(),
    }
}

fn first_state(model: &RaftModel) -> State {
    model.init_states().remove(0)
}

/// `raftkv model`; returns the exit status.
pub fn cli(args: ModelArgs) -> i32 {
    let a = Args::from(args);
    println!("{}", describe_run(&a));
    let warm_up = match warm::start(&a.settings) {
        Ok((_, played)) => played,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let quiet = a.quiet;
    let out = run(&a, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    });
    print_summary(&a, &out);
    if let Some(name) = out.unknown_property {
        eprintln!(
            "error: a state broke `{name}`, which is not among the properties the checker \
             reports (props::all); the search stopped there"
        );
        return 2;
    }
    match &out.violation {
        None => 0,
        Some((name, detail, path)) => {
            println!(
                "\nVIOLATION of `{name}` at depth {}: {detail}",
                path.last_state_depth()
            );
            print!("{}", describe_warm_up(a.settings.from, &warm_up));
            let after = if warm_up.is_empty() {
                ""
            } else {
                " after the warm-up"
            };
            println!(
                "shortest path ({} actions{after}):",
                path.last_state_depth()
            );
            print!("{}", trace(path));
            1
        }
    }
}

/// The warm-up's actions (none from the empty cluster), one per line: the prefix of every path.
pub fn describe_warm_up(from: WarmStart, played: &[Action]) -> String {
    if played.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "warm-up `{}` ({} fault-free actions from the empty cluster, not counted in the depth):\n",
        from.name(),
        played.len()
    );
    for (k, action) in played.iter().enumerate() {
        out.push_str(&format!("warm={:>3} {}\n", k + 1, action.describe()));
    }
    out
}

fn describe_run(a: &Args) -> String {
    let s = &a.settings;
    let on = |b: bool| if b { "on" } else { "off" };
    let budgets: Vec<String> = Budget::ALL
        .iter()
        .map(|&b| match s.budgets.left(b) {
            Some(n) => format!("{} {n}", b.name()),
            None => format!("{} unbounded", b.name()),
        })
        .collect();
    format!(
        "model: {} nodes, from {}, depth {}, faults {}, switch {}, budgets per path: {}; max term {}, \
         max in flight {}, pre-vote {}, check-quorum {}, symmetry {}, merge {}, restart checks {}, \
         {} thread(s)",
        s.nodes,
        s.from.name(),
        a.depth,
        a.faults.names(),
        a.switch
            .map_or("none".into(), |s| format!("{} ({})", s.name, s.breaks)),
        budgets.join(", "),
        s.max_term,
        s.max_in_flight,
        if s.atomic_pre_vote {
            "atomic"
        } else {
            on(s.pre_vote)
        },
        on(s.check_quorum),
        on(s.symmetry),
        on(s.merge),
        on(s.restart_checks),
        a.threads
    )
}

fn print_summary(a: &Args, out: &Outcome) {
    let secs = out.elapsed.as_secs_f64();
    let stopped = if out.violation.is_some() {
        " (stopped at the violation)"
    } else {
        ""
    };
    println!(
        "states explored {}  unique states {}  depth {} of {}{stopped}  {:.0} states/s  elapsed {:.2} s  peak memory {}",
        out.states,
        out.unique,
        out.depth,
        a.depth,
        out.states as f64 / secs.max(1e-9),
        secs,
        peak_memory().map_or("unknown".into(), |kb| format!("{} MiB", kb / 1024)),
    );
    for (name, yes) in &out.reached {
        let verdict = if *yes {
            "reached"
        } else {
            "NOT reached within this depth"
        };
        println!("  {name}: {verdict}");
    }
}

/// Peak resident memory of this process in KiB (Linux), if known.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

trait PathDepth {
    fn last_state_depth(&self) -> usize;
}

impl PathDepth for Path<State, Action> {
    fn last_state_depth(&self) -> usize {
        self.clone().into_actions().len()
    }
}

/// The path as the simulator prints its traces: one event per line, then the state after it.
pub fn trace(path: &Path<State, Action>) -> String {
    let mut out = String::new();
    let steps = path.clone().into_vec();
    if let Some((first, _)) = steps.first() {
        out.push_str(&format!(
            "step={:>3} start\n{}",
            0,
            indent(&describe_state(&first.cluster))
        ));
    }
    for (k, window) in steps.windows(2).enumerate() {
        let action = &window[0].1;
        let after = &window[1].0;
        if let Some(action) = action {
            out.push_str(&format!("step={:>3} {}\n", k + 1, action.describe()));
        }
        out.push_str(&indent(&describe_state(&after.cluster)));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("          {l}\n")).collect()
}

/// One line per node, then the messages in flight and the client history.
pub fn describe_state(c: &Cluster) -> String {
    let mut out = String::new();
    for n in &c.nodes {
        let st = n.raft().status();
        let role = match st.role {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::PreCandidate => "pre-candidate",
            Role::Follower => "follower",
        };
        let log: Vec<String> = n
            .raft()
            .log()
            .iter()
            .map(|e| format!("{}/{}", e.index, e.term))
            .collect();
        let hs = n.durable.hard_state;
        let rejoin = match (st.recovery, st.incarnation) {
            (Recovery::Ordinary, 0) => String::new(),
            (mark, incarnation) => format!(" {mark:?} incarnation={incarnation}"),
        };
        out.push_str(&format!(
            "n{} {role}{rejoin} term={} vote={:?} commit={} applied={} log=[{}] durable: term={} \
             vote={:?} commit={} entries={}\n",
            st.id,
            st.term,
            st.vote,
            st.commit,
            st.applied,
            log.join(","),
            hs.term,
            hs.vote,
            hs.commit,
            n.durable.log.len()
        ));
    }
    let msgs: Vec<String> = c.network.iter().map(short).collect();
    out.push_str(&format!(
        "in flight: {}\n",
        if msgs.is_empty() {
            "-".into()
        } else {
            msgs.join("; ")
        }
    ));
    if !c.history.is_empty() {
        let h: Vec<String> = c
            .history
            .iter()
            .map(|e| format!("op{} {:?} {:?} {:?}", e.op, e.kind, e.f, e.value))
            .collect();
        out.push_str(&format!("history: {}\n", h.join("; ")));
    }
    out
}
