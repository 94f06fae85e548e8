//! `raftkv sim`: run many seeds, print a line per run and a total, and for a failure the seed,
//! the command that replays it and a trace of the events before it.
//!
//! Owns: flag parsing, parallel execution of seeds, the progress bar and the reports.
//! Must never: change a run's outcome (each seed runs alone on its own thread, deterministically).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::faults::{Faults, SimConfig};
use super::partition::{partition_test, PartitionSpec};
use super::run::{run, RunReport};
use super::verdict::Verdict;

/// The window of the trace printed for a failure.
const TRACE_BEFORE_MS: u64 = 400;
const TRACE_AFTER_MS: u64 = 50;
const TRACE_MAX_LINES: usize = 400;

/// `raftkv sim`: the simulator's flags.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "Run the deterministic cluster simulator over many seeds",
    long_about = "Runs N seeds (S, S+1, ...) of the deterministic simulator: K nodes, N client ops \
each, with the faults listed. Prints one line per run and a total; on a failure, the seed, the \
command that replays it and a trace of the events around the failure (the first failing seed is \
run again with tracing on; a run is deterministic, so it fails the same way). A progress bar is \
drawn on stderr when it is a terminal.\n\n\
--partition-runs N runs N partition_test simulations instead (seeds S.., K nodes, N ops, the \
leader isolated at 30% of the ops and healed at 70%) and prints the median and 90th percentile \
of the simulated ms the majority needs to serve again after the leader is isolated.",
    after_help = "Exit status: 0 every run passed, 1 a run failed, 2 bad flags."
)]
pub struct SimArgs {
    /// Number of seeds to run (default 100, or 1 when --seed is given alone).
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// First seed (default 1).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Nodes in the simulated cluster (1..=15).
    #[arg(long, value_name = "K", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=15))]
    nodes: u64,
    /// Client operations per run.
    #[arg(long, value_name = "N", default_value_t = 200)]
    ops: usize,
    /// Concurrent simulated clients (at least 1).
    #[arg(long, value_name = "C", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    clients: u64,
    /// Faults: `all` (every one but `rejoin`), `none`, or a comma-separated list of: delay,
    /// loss, dup, partition, oneway, crash, torn, slowdisk, leader, bridge, link, spokes, pause,
    /// wipe, corrupt, rejoin (the rejoin profile: `--faults all,rejoin`).
    #[arg(long, value_name = "all|none|LIST", default_value = "all", value_parser = Faults::parse)]
    faults: Faults,
    /// The state machine takes a snapshot every N applied entries (1: the log is compacted
    /// after every applied entry, so a rejoining follower is refilled by snapshot alone).
    #[arg(long, value_name = "N", default_value_t = 40,
          value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// Worker threads (default: the machine's available parallelism).
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// No per-run lines, only the total and the failures.
    #[arg(long)]
    quiet: bool,
    /// Instead of full runs: this many partition_test runs, and the recovery figures.
    #[arg(long, value_name = "N", default_value_t = 0)]
    partition_runs: u64,
}

/// The run's settings, resolved from the flags.
#[derive(Debug)]
struct Args {
    seeds: u64,
    seed: u64,
    nodes: usize,
    ops: usize,
    clients: usize,
    faults: Faults,
    snapshot_every: u64,
    threads: usize,
    quiet: bool,
    /// Instead of full runs: this many partition_test runs, and the recovery figures.
    partition_runs: u64,
}

impl SimArgs {
    fn resolve(self) -> Args {
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        // A seed given alone is a replay of that one seed.
        let seeds = self
            .seeds
            .unwrap_or(if self.seed.is_some() { 1 } else { 100 });
        Args {
            seeds,
            seed: self.seed.unwrap_or(1),
            nodes: self.nodes as usize,
            ops: self.ops,
            clients: self.clients as usize,
            faults: self.faults,
            snapshot_every: self.snapshot_every,
            threads: threads.max(1),
            quiet: self.quiet,
            partition_runs: self.partition_runs,
        }
    }
}

fn config(a: &Args, seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed);
    c.nodes = a.nodes;
    c.ops = a.ops;
    c.clients = a.clients;
    c.faults = a.faults;
    c.snapshot_every = a.snapshot_every;
    c
}

fn replay_command(a: &Args, seed: u64) -> String {
    format!(
        "raftkv sim --seed {seed} --nodes {} --ops {} --clients {} --faults {} --snapshot-every {}",
        a.nodes,
        a.ops,
        a.clients,
        a.faults.to_arg(),
        a.snapshot_every
    )
}

fn line(r: &RunReport, wall_ms: u128) -> String {
    let verdict = match (&r.failure, &r.verdict) {
        (Some(f), _) => format!("FAILED {}: {}", f.kind, f.detail),
        (None, Some(Verdict::Linearizable)) => "ok, linearizable".into(),
        (None, Some(Verdict::Unknown(why))) => format!("ok, linearizability unknown ({why})"),
        (None, _) => "ok".into(),
    };
    format!(
        "seed {:>6}: {verdict} | ops {} (ok {} fail {} info {}) sim {:.1}s wall {}ms events {} \
         msgs {} dropped {} crashes {} torn {} wipes {} damages {} partitions {} leaders {} snapshots {}+{}",
        r.seed,
        r.ops,
        r.ok,
        r.failed,
        r.info,
        r.simulated_ms as f64 / 1000.0,
        wall_ms,
        r.stats.events,
        r.stats.messages,
        r.stats.dropped,
        r.stats.crashes,
        r.stats.torn_writes,
        r.stats.wipes,
        r.stats.damages,
        r.stats.partitions,
        r.leader_changes,
        r.stats.snapshots_taken,
        r.stats.snapshots_installed
    )
}

/// Entry point of `raftkv sim`; returns the exit status.
pub fn cli(args: SimArgs) -> i32 {
    let a = args.resolve();
    if a.partition_runs > 0 {
        return partition_figures(&a);
    }
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(RunReport, u128)>> = Mutex::new(Vec::new());
    let total = a.seeds as usize;
    let show_progress = total > 1 && std::io::stderr().is_terminal();
    std::thread::scope(|scope| {
        for _ in 0..a.threads.min(total.max(1)) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= total {
                    break;
                }
                let seed = a.seed + k as u64;
                let t = Instant::now();
                let r = run(&config(&a, seed));
                let wall = t.elapsed().as_millis();
                let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                let mut res = results.lock().unwrap_or_else(|p| p.into_inner());
                let failed =
                    res.iter().filter(|(r, _)| !r.passed()).count() + usize::from(!r.passed());
                if !a.quiet {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", line(&r, wall));
                }
                if show_progress {
                    // Hand-written on purpose: one `\r` line redrawn per finished seed, which is
                    // all a bar crate would draw here, without a dependency.
                    let width = 30;
                    let filled = d * width / total;
                    eprint!(
                        "\r[{}{}] {d}/{total} seeds, {failed} failed, {:.0}s ",
                        "#".repeat(filled),
                        " ".repeat(width - filled),
                        start.elapsed().as_secs_f64()
                    );
                }
                res.push((r, wall));
            });
        }
    });
    if show_progress {
        eprintln!();
    }
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(r, _)| r.seed);
    let wall = start.elapsed().as_secs_f64();
    let failed: Vec<&RunReport> = results
        .iter()
        .map(|(r, _)| r)
        .filter(|r| !r.passed())
        .collect();
    let ops: usize = results.iter().map(|(r, _)| r.ops).sum();
    let sim_ms: u64 = results.iter().map(|(r, _)| r.simulated_ms).sum();
    println!(
        "total: {} seeds, {} passed, {} failed | {} client ops, {:.1} simulated s in {:.2} wall s \
         ({:.0} simulated ops/s of wall time, {:.1} seeds/min, {} threads)",
        results.len(),
        results.len() - failed.len(),
        failed.len(),
        ops,
        sim_ms as f64 / 1000.0,
        wall,
        ops as f64 / wall.max(1e-9),
        results.len() as f64 * 60.0 / wall.max(1e-9),
        a.threads
    );
    for r in &failed {
        println!(
            "\nFAILED seed {}: {}",
            r.seed,
            r.failure
                .as_ref()
                .map(|f| format!("{}: {}", f.kind, f.detail))
                .unwrap_or_default()
        );
        println!("replay: {}", replay_command(&a, r.seed));
    }
    // Replay the first failure with a trace (the run is deterministic, so it fails the same way).
    if let Some(r) = failed.first() {
        {
            let mut c = config(&a, r.seed);
            c.trace = true;
            let again = run(&c);
            match &again.failure {
                Some(f) => {
                    let lines = f.window(TRACE_BEFORE_MS, TRACE_AFTER_MS, TRACE_MAX_LINES);
                    println!(
                        "\ntrace of seed {} around {} ms (failure detected at {} ms; {} events):",
                        r.seed,
                        f.focus,
                        f.time,
                        lines.len()
                    );
                    for l in &lines {
                        println!("  {l}");
                    }
                }
                None => println!(
                    "\nreplay of seed {} did not fail: the run is not deterministic",
                    r.seed
                ),
            }
        }
    }
    if failed.is_empty() {
        0
    } else {
        1
    }
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(k).copied()
}

/// `--partition-runs`: recovery figures over many partition_test runs.
fn partition_figures(a: &Args) -> i32 {
    let ops = a.ops.max(10);
    let start = Instant::now();
    let mut ready = Vec::new();
    let mut served = Vec::new();
    let mut failures = 0;
    for k in 0..a.partition_runs {
        let spec = PartitionSpec {
            cluster_size: a.nodes.max(3),
            operations: ops,
            partition_after_op: ops * 3 / 10,
            heal_after_op: ops * 7 / 10,
            seed: a.seed + k,
        };
        let out = partition_test(&spec);
        if let Some(f) = &out.failure {
            failures += 1;
            println!("seed {}: FAILED {f}", spec.seed);
            continue;
        }
        if !out.linearizable {
            failures += 1;
            println!(
                "seed {}: FAILED not linearizable: {:?}",
                spec.seed, out.verdict
            );
            continue;
        }
        ready.extend(out.majority_ready_ms);
        served.extend(out.majority_recovery_ms);
    }
    ready.sort_unstable();
    served.sort_unstable();
    let show = |v: Option<u64>| v.map_or("-".to_string(), |x| x.to_string());
    println!(
        "partition_test x{} ({} nodes, {} ops, isolate the leader at op {}, heal at op {}): \
         {} failed, {:.2} wall s",
        a.partition_runs,
        a.nodes.max(3),
        ops,
        ops * 3 / 10,
        ops * 7 / 10,
        failures,
        start.elapsed().as_secs_f64()
    );
    println!(
        "majority ready to serve (leader elected and committed in its term): median {} ms, p90 {} ms (simulated)",
        show(percentile(&ready, 0.5)),
        show(percentile(&ready, 0.9))
    );
    println!(
        "first op served by the majority after the isolation: median {} ms, p90 {} ms (simulated)",
        show(percentile(&served, 0.5)),
        show(percentile(&served, 0.9))
    );
    i32::from(failures > 0)
}
