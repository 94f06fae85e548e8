//! `raftkv model`: flags, the checker run with its progress line and figures, and the
//! counter-example printed as a trace.
//!
//! Owns: parsing the flags, running `stateright`'s breadth-first checker, the progress line on
//! stderr, the summary, and the trace of a violation.
//! Must never: claim a depth was covered when the run stopped early (a violation stops it, and
//! the summary says so).

use super::cluster::{Action, Cluster};
use super::{props, switch, Faults, RaftModel, Settings, State, SWITCHES};
use crate::raft::Role;
use crate::sim::cluster::short;
use stateright::{Checker, HasDiscoveries, Model, Path};
use std::time::{Duration, Instant};

/// `raftkv model`: exhaustive, breadth-first model checking of the real core.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "Model-check the consensus core exhaustively to a bounded depth",
    long_about = "Explores every state of an N-node cluster of real cores reachable in at most D \
actions (breadth-first): deliver, drop or duplicate a message, a node's timer fires, a node crashes \
and restarts (possibly losing its last persist), a client writes or reads at a leader. Checks in \
every state: election safety, log matching, leader completeness, no electable node lacking a \
committed entry, state machine safety, commit never goes back, linearizability of the client \
operations. Reports whether a leader was elected, a write committed and a read served within the \
depth. Prints states explored, unique states, depth, states/s, elapsed and peak memory; on a \
violation the shortest path to it as a trace, and exit status 1. Exit status 2 on bad flags."
)]
pub struct ModelArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=5))]
    nodes: u64,
    /// Actions on the longest path explored.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1000))]
    depth: u64,
    /// Faults, comma-separated: drop, dup, crash; or all, none.
    #[arg(long, default_value = "all", value_parser = Faults::parse)]
    faults: Faults,
    /// One of the core's bug switches: vote_without_persist, read_without_read_index,
    /// commit_old_term_by_counting, read_before_own_term_commit.
    #[arg(long = "switch", value_name = "NAME", value_parser = switch)]
    bugs: Option<crate::raft::Bugs>,
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
    /// Turn off the symmetry reduction over node ids.
    #[arg(long)]
    no_symmetry: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// A parsed command line.
#[derive(Clone, Debug)]
pub struct Args {
    pub settings: Settings,
    pub depth: usize,
    pub threads: usize,
    pub quiet: bool,
}

impl From<ModelArgs> for Args {
    fn from(m: ModelArgs) -> Args {
        let mut settings = Settings {
            nodes: m.nodes as usize,
            faults: m.faults,
            writes: m.writes,
            reads: m.reads,
            max_crashes: m.max_crashes,
            max_drops: m.max_drops,
            max_dups: m.max_dups,
            max_timers: m.max_timers,
            max_term: m.max_term,
            max_in_flight: m.max_in_flight as usize,
            symmetry: !m.no_symmetry,
            ..Settings::default()
        };
        if let Some(bugs) = m.bugs {
            settings.bugs = bugs;
        }
        Args {
            settings,
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
}

/// Runs the checker to `depth` actions; `progress` gets a line about once a second.
pub fn run(args: &Args, progress: &mut dyn FnMut(&str)) -> Outcome {
    let model = RaftModel::new(args.settings.clone());
    let phase = model.phase.clone();
    let properties = model.properties();
    let started = Instant::now();
    // stateright counts the initial state as depth 1 and skips states at the target depth.
    let mut checker = model
        .checker()
        .threads(args.threads)
        .target_max_depth(args.depth + 2)
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
        depth: checker.max_depth().saturating_sub(1).min(args.depth),
        elapsed,
        violation,
        reached,
    }
}

fn first_state(model: &RaftModel) -> State {
    model.init_states().remove(0)
}

/// `raftkv model`; returns the exit status.
pub fn cli(args: ModelArgs) -> i32 {
    let a = Args::from(args);
    println!("{}", describe_run(&a));
    let quiet = a.quiet;
    let out = run(&a, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    });
    print_summary(&a, &out);
    match &out.violation {
        None => 0,
        Some((name, detail, path)) => {
            println!(
                "\nVIOLATION of `{name}` at depth {}: {detail}",
                path.last_state_depth()
            );
            println!("shortest path ({} actions):", path.last_state_depth());
            print!("{}", trace(path));
            1
        }
    }
}

fn describe_run(a: &Args) -> String {
    let s = &a.settings;
    let switch = SWITCHES
        .iter()
        .find(|(n, _)| super::switch(n).is_ok_and(|b| b == s.bugs))
        .map_or("none".to_string(), |(n, _)| n.to_string());
    format!(
        "model: {} nodes, depth {}, faults {:?}, switch {switch}, {} writes, {} reads, budgets \
         crash {} drop {} dup {} timers {:?}, max term {}, max in flight {}, symmetry {}, {} thread(s)",
        s.nodes,
        a.depth,
        s.faults,
        s.writes,
        s.reads,
        s.max_crashes,
        s.max_drops,
        s.max_dups,
        s.max_timers,
        s.max_term,
        s.max_in_flight,
        if s.symmetry { "on" } else { "off" },
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
            out.push_str(&format!("step={:>3} {}\n", k + 1, describe_action(action)));
        }
        out.push_str(&indent(&describe_state(&after.cluster)));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("          {l}\n")).collect()
}

pub fn describe_action(action: &Action) -> String {
    match action {
        Action::Deliver(m) => format!("n{} <- n{} {}", m.to, m.from, short(m)),
        Action::Drop(m) => format!("network drops {}", short(m)),
        Action::Duplicate(m) => format!("network duplicates {}", short(m)),
        Action::Timer(id) => format!("n{id} timer fires"),
        Action::Crash(id) => format!("n{id} crashes and restarts"),
        Action::CrashLosingPersist(id) => {
            format!("n{id} crashes during its last persist (lost) and restarts")
        }
        Action::Write(id) => format!("n{id} <- client write"),
        Action::Read(id) => format!("n{id} <- client read"),
    }
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
        out.push_str(&format!(
            "n{} {role} term={} vote={:?} commit={} applied={} log=[{}] durable: term={} vote={:?} \
             commit={} entries={}\n",
            st.id,
            st.term,
            st.vote,
            st.commit,
            st.applied,
            log.join(","),
            hs.term,
            hs.vote,
            hs.commit,
            n.durable.entries.len()
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
