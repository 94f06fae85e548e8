//! Maelstrom-compatible test bench: `raftkv test`.
//!
//! Owns: running any Maelstrom node binary (by default this project's own node) as a cluster of
//! processes, the simulated network between them (latency drawn from a distribution, partitions
//! as grudges, one-way cuts, lossy links), the nemesis (partitions, SIGKILL with restart on the
//! same data directory, damage to a killed node's directory before its restart, SIGSTOP /
//! SIGCONT pauses), Maelstrom's lin-kv workload, liveness per
//! fault, the final heal/restart/read-back phase, the store directory of each run (histories,
//! results, node logs, plots), the summary, and the verdict from the checker (`crate::check`).
//! Must never: look inside a running node (it only speaks Maelstrom's protocol on stdin/stdout;
//! only `--disk-faults` reads and damages the directory of a killed one), record
//! anything a node did not really do, hang on a node (every wait has a deadline), or leave a node
//! process running after it returns.
//!
//! Exit status: 0 linearizable and no node misbehaved; 1 not linearizable (or an acknowledged
//! write was found lost); 2 the run could not be made (bad flags, a node that will not start or
//! answer `init`); 3 the history was linearizable or unchecked but something else went wrong (a
//! node crashed on its own, printed garbage, failed to restart, keys could not be read back, or the
//! checker answered `unknown`); 4 linearizable and clean, but after some fault the majority side
//! did not serve again within `--liveness-bound`; 128 + the signal (130, 143) when Ctrl-C or
//! SIGTERM stopped the run (its store directory is kept, marked incomplete, and not checked).

mod cluster;
mod damaged;
pub mod disk;
mod grudge;
mod interrupt;
mod liveness;
mod nemesis;
mod net;
mod report;
mod summary;
mod workload;

use crate::rng::Rng;
use clap::Parser;
use cluster::{Cluster, NodeSpec};
use grudge::Shape;
use liveness::TapSample;
use nemesis::{lock, restart_node, run_nemesis, NemesisLog};
use net::LatencyDist;
use report::{Fault, Restart, Stats};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use summary::{check_history, summary, Verdict};
use workload::{Kind, Params, Recorder, Tag, Workload, F};

/// `raftkv test`: Maelstrom's flags, plus `--seed` and a few of the bench's own.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "raftkv test",
    about = "Run a Maelstrom lin-kv test with partitions and kills against a node binary \
             (default: this raftkv node), check the history, and store everything under --store."
)]
pub struct Opts {
    /// Workload (only lin-kv).
    #[arg(short = 'w', long = "workload", default_value = "lin-kv")]
    pub workload: String,
    /// Node binary (default: this raftkv executable, run with no subcommand).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Number of nodes (n0, n1, ...).
    #[arg(long, default_value_t = 5)]
    pub node_count: usize,
    /// Seconds of workload before the final heal, restart and read-back.
    #[arg(long, default_value_t = 30.0)]
    pub time_limit: f64,
    /// Operations per second over all clients (0: as fast as the clients go).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Client threads: a number, or a multiple of the node count like `4n`. Must be a multiple
    /// of the per-key group size 2n.
    #[arg(long, default_value = "4n")]
    pub concurrency: String,
    /// Mean one-way message latency in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// How message delays are drawn around `--latency`: `constant` (no reordering), `uniform`
    /// (0 to twice the mean) or `exponential` (that mean); the random ones reorder messages.
    #[arg(long, default_value = "constant")]
    pub latency_dist: String,
    /// Faults: a comma list of `partition`, `kill` and `pause` (SIGSTOP, SIGCONT one interval
    /// later), or `none`.
    #[arg(long, default_value = "partition,kill")]
    pub nemesis: String,
    /// Damage a killed node's data directory before it restarts, the kinds taking turns: a comma
    /// list of flip, drop, misdirect, truncate, hardstate, snapshot, wipe, or `all`. Needs
    /// `kill` in --nemesis. At most one node is damaged at a time: no other node is damaged until
    /// it is ordinary and serving again.
    #[arg(long, value_name = "LIST")]
    pub disk_faults: Option<String>,
    /// Seconds between nemesis operations (a fault starts, then heals, each after this long;
    /// the fault kinds take turns).
    #[arg(long, default_value_t = 5.0)]
    pub nemesis_interval: f64,
    /// Partition shapes to draw from, a comma list of: one, majority, minority-third,
    /// majorities-ring, primary, bridge, link, spokes, deaf, mute, flaky; or `all`.
    #[arg(
        long,
        default_value = "one,majority,minority-third,majorities-ring,primary"
    )]
    pub partition_shapes: String,
    /// Fraction of node-to-node messages lost under the `flaky` shape.
    #[arg(long, default_value_t = 0.2)]
    pub loss: f64,
    /// Kill and pause targets to draw from, a comma list of: one, primary (the busiest
    /// sender), minority, majority.
    #[arg(long, default_value = "one,primary,minority,majority")]
    pub fault_targets: String,
    /// Fail the run (exit 4) when, after some fault, the majority side does not serve again
    /// within this many seconds.
    #[arg(long)]
    pub liveness_bound: Option<f64>,
    /// Restart every node in the final phase even when the run killed none (an in-memory node
    /// then forgets its data, and the read-back says so).
    #[arg(long)]
    pub final_restart: bool,
    /// Seed of the bench's own choices (ops, keys, fault targets). Default: from the clock.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where runs are stored: `<store>/<workload>/<time>/`, with a `latest` link.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Operations on one key before its client group moves on to a new key.
    #[arg(long, default_value_t = 100)]
    pub per_key_limit: u64,
    /// Seconds a node has to answer `init`.
    #[arg(long, default_value_t = 10.0)]
    pub init_timeout: f64,
    /// Seconds the final phase waits for the restarted cluster to serve every key again.
    #[arg(long, default_value_t = 30.0)]
    pub recovery_timeout: f64,
    /// Milliseconds between availability probes (a read of key 0 on every node, with a short
    /// timeout, recorded and checked like any read); 0 turns them off.
    #[arg(long, default_value_t = 100)]
    pub probe_interval: u64,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// Entry point of `raftkv test`; returns the exit status.
pub fn cli(args: &[String]) -> i32 {
    let opts = match Opts::try_parse_from(
        std::iter::once("raftkv test".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    run_cli(&opts)
}

/// Runs a parsed `raftkv test` (the binary's command tree parses it): installs the interrupt
/// handlers, runs, and returns the exit status.
pub fn run_cli(opts: &Opts) -> i32 {
    if let Err(e) = interrupt::install() {
        eprintln!("raftkv test: {e}");
        return 2;
    }
    match run(opts) {
        Ok(out) => out.exit_code,
        Err(e) => {
            eprintln!("raftkv test: {e}");
            2
        }
    }
}

/// What a finished run reports to its caller.
pub struct RunOutcome {
    pub exit_code: i32,
    pub dir: PathBuf,
    pub stats: Stats,
    pub linearizable: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FaultKind {
    Partition,
    Kill,
    Pause,
}

/// Whom a kill or pause hits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    One,
    /// The busiest node-to-node sender since the last fault healed: for Raft, the leader.
    Primary,
    Minority,
    Majority,
}

impl Target {
    const ALL: [Target; 4] = [
        Target::One,
        Target::Primary,
        Target::Minority,
        Target::Majority,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::One => "one",
            Target::Primary => "primary",
            Target::Minority => "minority",
            Target::Majority => "majority",
        }
    }

    /// How many of `n` nodes it hits (at least one).
    fn count(self, n: usize) -> usize {
        let k = match self {
            Target::One | Target::Primary => 1,
            Target::Minority => (n - 1) / 2,
            Target::Majority => n / 2 + 1,
        };
        k.clamp(1, n.max(1))
    }
}

/// The validated plan of a run.
struct Plan {
    bin: PathBuf,
    n: usize,
    concurrency: usize,
    group: usize,
    faults: Vec<FaultKind>,
    disk_faults: Vec<disk::DiskFault>,
    shapes: Vec<Shape>,
    targets: Vec<Target>,
    loss: f64,
    latency_dist: LatencyDist,
    liveness_bound: Option<Duration>,
    seed: u64,
    time_limit: Duration,
    interval: Duration,
    timeout: Duration,
    probe_every: Duration,
    probe_timeout: Duration,
}

fn plan(o: &Opts) -> Result<Plan, String> {
    if o.workload != "lin-kv" {
        return Err(format!(
            "unknown workload `{}`: this bench runs lin-kv only",
            o.workload
        ));
    }
    if o.node_count == 0 || o.node_count > 64 {
        return Err(format!("--node-count {} must be 1..=64", o.node_count));
    }
    let n = o.node_count;
    let concurrency = parse_concurrency(&o.concurrency, n)?;
    let faults = parse_nemesis(&o.nemesis)?;
    let disk_faults = parse_disk_faults(o.disk_faults.as_deref(), &faults)?;
    let partitions = faults.contains(&FaultKind::Partition);
    let shapes = parse_shapes(&o.partition_shapes, if partitions { n } else { usize::MAX })?;
    let targets = parse_list(
        "--fault-targets",
        &o.fault_targets,
        &Target::ALL,
        Target::name,
    )?;
    let time_limit = secs("--time-limit", o.time_limit)?;
    let interval = secs("--nemesis-interval", o.nemesis_interval)?;
    secs("--init-timeout", o.init_timeout)?;
    secs("--recovery-timeout", o.recovery_timeout)?;
    let liveness_bound = o
        .liveness_bound
        .map(|b| secs("--liveness-bound", b))
        .transpose()?;
    if !o.rate.is_finite() || o.rate < 0.0 {
        return Err(format!("--rate {} must be >= 0", o.rate));
    }
    if !(0.0..=1.0).contains(&o.loss) {
        return Err(format!("--loss {} must be a fraction in 0..=1", o.loss));
    }
    let latency_dist = LatencyDist::parse(&o.latency_dist).ok_or_else(|| {
        format!(
            "unknown --latency-dist `{}` (known: constant, uniform, exponential)",
            o.latency_dist
        )
    })?;
    if !faults.is_empty() && interval < Duration::from_millis(100) {
        return Err("--nemesis-interval must be at least 0.1 s".into());
    }
    Ok(Plan {
        bin: node_binary(o)?,
        n,
        concurrency,
        group: 2 * n,
        faults,
        disk_faults,
        shapes,
        targets,
        loss: o.loss,
        latency_dist,
        liveness_bound,
        seed: o.seed.unwrap_or_else(clock_seed),
        time_limit,
        interval,
        timeout: Duration::from_millis((10 * o.latency).max(1000)),
        probe_every: Duration::from_millis(o.probe_interval),
        probe_timeout: Duration::from_millis((4 * o.latency + 50).max(100)),
    })
}

/// `--bin`, or this raftkv executable (run with no subcommand, it is the node).
fn node_binary(o: &Opts) -> Result<PathBuf, String> {
    match &o.bin {
        Some(b) => Ok(b.clone()),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the raftkv executable to run as the node: {e}")),
    }
}

fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "{name} {v} must be a non-negative number of seconds"
        ))
    }
}

/// `N` or `Kn`; a positive multiple of the per-key group size 2n.
fn parse_concurrency(text: &str, n: usize) -> Result<usize, String> {
    let c = text.trim();
    let concurrency = match c.strip_suffix('n') {
        Some(k) => k.parse::<usize>().map(|k| k * n),
        None => c.parse::<usize>(),
    }
    .map_err(|_| format!("--concurrency `{c}` is not a number or a multiple like `4n`"))?;
    let group = 2 * n;
    if concurrency == 0 || concurrency % group != 0 {
        return Err(format!(
            "--concurrency {concurrency} must be a positive multiple of 2 × node count = {group} \
             (lin-kv runs per-key groups of {group} clients)"
        ));
    }
    Ok(concurrency)
}

/// A comma list of names from `known`; empty entries are skipped, repeats kept once.
fn parse_list<T: Copy + PartialEq>(
    flag: &str,
    text: &str,
    known: &[T],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some(&item) = known.iter().find(|k| name(**k) == part) else {
            let names: Vec<&str> = known.iter().map(|k| name(*k)).collect();
            return Err(format!(
                "unknown {flag} `{part}` (known: {})",
                names.join(", ")
            ));
        };
        if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.is_empty() {
        return Err(format!("{flag} names nothing"));
    }
    Ok(out)
}

fn parse_nemesis(text: &str) -> Result<Vec<FaultKind>, String> {
    if text.split(',').map(str::trim).any(|p| p == "none") {
        return match text.trim() {
            "none" => Ok(Vec::new()),
            _ => Err(format!(
                "--nemesis `{text}`: `none` cannot be mixed with faults"
            )),
        };
    }
    let name = |k: FaultKind| match k {
        FaultKind::Partition => "partition",
        FaultKind::Kill => "kill",
        FaultKind::Pause => "pause",
    };
    let known = [FaultKind::Partition, FaultKind::Kill, FaultKind::Pause];
    parse_list("--nemesis", text, &known, name).map_err(|e| format!("{e}, or none"))
}

/// `--disk-faults`: none without the flag; with it, `kill` must be among the faults.
fn parse_disk_faults(
    text: Option<&str>,
    faults: &[FaultKind],
) -> Result<Vec<disk::DiskFault>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let kinds = disk::parse(text)?;
    if !faults.contains(&FaultKind::Kill) {
        return Err(format!(
            "--disk-faults {text} damages the directories of killed nodes: add kill to --nemesis"
        ));
    }
    Ok(kinds)
}

/// The shapes of `text`, each of which must fit `n` nodes.
fn parse_shapes(text: &str, n: usize) -> Result<Vec<Shape>, String> {
    let shapes = if text.trim() == "all" {
        Shape::ALL.to_vec()
    } else {
        parse_list("--partition-shapes", text, &Shape::ALL, Shape::name)?
    };
    if let Some(s) = shapes.iter().find(|s| s.min_nodes() > n) {
        return Err(format!(
            "--partition-shapes {} needs at least {} nodes (--node-count is {n})",
            s.name(),
            s.min_nodes()
        ));
    }
    Ok(shapes)
}

/// `YYYYMMDDTHHMMSS.mmmZ` for a time since the epoch (UTC): the storage crate's stamp for
/// directories kept aside, cut to milliseconds.
fn stamp(t: SystemTime) -> String {
    let nanos = raftkv_storage::aside::utc_stamp(t);
    // `...SS.nnnnnnnnnZ`: keep the first three digits of the fraction.
    format!("{}Z", &nanos[..nanos.len() - 7])
}

fn make_run_dir(store: &Path, workload: &str) -> Result<PathBuf, String> {
    let parent = store.join(workload);
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create store directory {}: {e}", parent.display()))?;
    let base = stamp(SystemTime::now());
    for k in 0..1000 {
        let name = if k == 0 {
            base.clone()
        } else {
            format!("{base}-{k}")
        };
        let dir = parent.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let link = parent.join("latest");
                let _ = std::fs::remove_file(&link);
                #[cfg(unix)]
                let _ = std::os::unix::fs::symlink(&name, &link);
                return std::path::absolute(&dir)
                    .map_err(|e| format!("cannot resolve {}: {e}", dir.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "cannot find a free run directory under {}",
        parent.display()
    ))
}

/// What every phase of a run shares.
struct Ctx<'a> {
    opts: &'a Opts,
    plan: &'a Plan,
    ids: &'a [String],
    cluster: &'a Cluster,
    rec: &'a Recorder,
    log: &'a NemesisLog,
}

/// When the workload ran, in ns since the run started, and what the network tap saw meanwhile.
struct Window {
    start_ns: u64,
    end_ns: u64,
    tap: Vec<TapSample>,
}

/// Runs one test as `opts` describe. Errors are the ones that stop a run from being made.
pub fn run(opts: &Opts) -> Result<RunOutcome, String> {
    let plan = plan(opts)?;
    let dir = make_run_dir(&opts.store, &opts.workload)?;
    let ids: Vec<String> = (0..plan.n).map(|i| format!("n{i}")).collect();
    if !opts.quiet {
        announce(opts, &plan, &dir);
    }
    let start = Instant::now();
    let cluster = start_cluster(opts, &plan, &dir, &ids, start)?;
    let rec = Recorder::new(start);
    let log = NemesisLog::default();
    let ctx = Ctx {
        opts,
        plan: &plan,
        ids: &ids,
        cluster: &cluster,
        rec: &rec,
        log: &log,
    };
    let wl = Workload::new(&cluster, &rec, workload_params(opts, &plan));
    let window = drive_workload(&ctx, &wl, start);
    let final_from_ns = match interrupt::requested() {
        None => final_phase(&ctx, &wl),
        Some(_) => rec.now_ns(),
    };
    let end_ns = rec.now_ns();
    record_crashes(&ctx);
    let mut problems = cluster.problems();
    let net_json = net_counters(&cluster);
    problems.extend(cluster.shutdown());
    let finished = Finished {
        window,
        final_from_ns,
        end_ns,
        problems,
        net_json,
    };
    report_run(&ctx, &dir, finished)
}

fn announce(opts: &Opts, plan: &Plan, dir: &Path) {
    eprintln!(
        "raftkv test: {} nodes of {}, {}s at {} ops/s, concurrency {}, latency {} ms, nemesis {} every {}s, seed {}\nstore: {}",
        plan.n,
        plan.bin.display(),
        opts.time_limit,
        opts.rate,
        plan.concurrency,
        opts.latency,
        match (plan.faults.is_empty(), &opts.disk_faults) {
            (true, _) => "none".to_string(),
            (false, None) => opts.nemesis.clone(),
            (false, Some(disk)) => format!("{} with disk faults {disk}", opts.nemesis),
        },
        opts.nemesis_interval,
        plan.seed,
        dir.display()
    );
}

fn start_cluster(
    opts: &Opts,
    plan: &Plan,
    dir: &Path,
    ids: &[String],
    start: Instant,
) -> Result<Cluster, String> {
    let spec = NodeSpec {
        bin: plan.bin.clone(),
        args: Vec::new(),
        data_dir: dir.join("data"),
        log_dir: dir.join("node-logs"),
        init_timeout: Duration::from_secs_f64(opts.init_timeout),
        latency: Duration::from_millis(opts.latency),
        latency_dist: plan.latency_dist,
        net_seed: plan.seed ^ 0x6E65_7477_6F72_6B00,
    };
    Cluster::start(spec, ids.to_vec(), start).map_err(|e| {
        format!(
            "the cluster did not start:\n{e}\n(node logs: {})",
            dir.join("node-logs").display()
        )
    })
}

fn workload_params(opts: &Opts, plan: &Plan) -> Params {
    Params {
        concurrency: plan.concurrency,
        group_size: plan.group,
        rate: opts.rate,
        per_key_limit: opts.per_key_limit.max(1),
        timeout: plan.timeout,
    }
}

/// Runs the clients, the probes and the nemesis for `--time-limit`, showing progress, then stops
/// them all (the nemesis heals what it broke).
fn drive_workload(ctx: &Ctx, wl: &Workload, start: Instant) -> Window {
    let plan = ctx.plan;
    let mut rng = Rng::new(plan.seed);
    let nemesis_stop = AtomicBool::new(false);
    let start_ns = ctx.rec.now_ns();
    thread::scope(|s| {
        let workers: Vec<_> = (0..plan.concurrency)
            .map(|w| {
                let r = rng.fork(w as u64);
                s.spawn(move || wl.run_worker(w, r))
            })
            .collect();
        if !plan.probe_every.is_zero() {
            for i in 0..plan.n {
                let (every, timeout) = (plan.probe_every, plan.probe_timeout);
                // Probe processes: 500_000_000 + node, stepping by 2^20 per op.
                s.spawn(move || wl.run_probe(i, 500_000_000 + i as u64, every, timeout));
            }
        }
        let nemesis = (!plan.faults.is_empty()).then(|| {
            let r = rng.fork(u64::MAX);
            let (c, rc, l, st) = (ctx.cluster, ctx.rec, ctx.log, &nemesis_stop);
            s.spawn(move || run_nemesis(c, rc, l, plan, r, st))
        });
        let tap = watch(ctx, start, plan.time_limit + Duration::from_nanos(start_ns));
        wl.stop.store(true, Ordering::Relaxed);
        nemesis_stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        if let Some(h) = nemesis {
            let _ = h.join();
        }
        Window {
            start_ns,
            end_ns: ctx.rec.now_ns(),
            tap,
        }
    })
}

/// Until `until` after `start`, or a stop signal: records nodes that exited on their own, reads
/// the network tap every 100 ms (returned), and shows progress.
fn watch(ctx: &Ctx, start: Instant, until: Duration) -> Vec<TapSample> {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_secs(if tty { 1 } else { 5 });
    let mut last_print = Instant::now();
    let mut tap = vec![(ctx.rec.now_ns(), ctx.cluster.sent_counts())];
    while start.elapsed() < until && interrupt::requested().is_none() {
        thread::sleep(Duration::from_millis(100));
        tap.push((ctx.rec.now_ns(), ctx.cluster.sent_counts()));
        record_crashes(ctx);
        damaged::observe(&ctx.log.damages, ctx.rec, ctx.cluster);
        if !ctx.opts.quiet && last_print.elapsed() >= every {
            last_print = Instant::now();
            let line = progress_line(ctx, start.elapsed());
            if tty {
                eprint!("\r{line:<100}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    if tty && !ctx.opts.quiet {
        eprintln!();
    }
    if let Some(sig) = interrupt::requested() {
        eprintln!(
            "raftkv test: {} received: stopping the clients and the nodes, keeping what was recorded",
            interrupt::name(sig)
        );
    }
    tap
}

fn progress_line(ctx: &Ctx, elapsed: Duration) -> String {
    let (ok, fail, info, all) = ctx.rec.op_count();
    let t = elapsed.as_secs_f64();
    let total = ctx.plan.time_limit.as_secs_f64().max(1e-9);
    let filled = ((t / total).min(1.0) * 24.0) as usize;
    let current = lock(&ctx.log.current).clone();
    format!(
        "[{}{}] {t:5.1}s/{total:.0}s {all} ops: {ok} ok, {fail} fail, {info} info | {}",
        "#".repeat(filled),
        ".".repeat(24 - filled),
        if current.is_empty() {
            "healthy"
        } else {
            &current
        }
    )
}

/// Records every node that exited on its own since the last look as a `crash` fault.
fn record_crashes(ctx: &Ctx) {
    for i in ctx.cluster.reap_exits() {
        let t = ctx.rec.now_ns();
        lock(&ctx.log.faults).push(Fault {
            kind: "crash".into(),
            detail: "exited on its own".into(),
            nodes: vec![ctx.ids[i].clone()],
            majority_side: Vec::new(),
            components: Vec::new(),
            start_ns: t,
            end_ns: Some(t),
            serve_again_ms: None,
            majority_serves_again_ms: None,
            liveness: None,
        });
    }
}

/// Heals, restarts the nodes (see `to_restart`), waits until each serves, and reads every key
/// once more. Returns when the phase began.
fn final_phase(ctx: &Ctx, wl: &Workload) -> u64 {
    let restart = to_restart(ctx);
    if !ctx.opts.quiet {
        let what = match restart.len() {
            0 => "restarting no node".to_string(),
            k if k == ctx.plan.n => "restarting every node".to_string(),
            _ => format!("restarting the {} node(s) that stopped", restart.len()),
        };
        eprintln!("raftkv test: healing, {what}, reading every key back");
    }
    ctx.cluster.heal();
    let from_ns = ctx.rec.now_ns();
    thread::scope(|s| {
        for &i in &restart {
            s.spawn(move || restart_node(ctx.cluster, ctx.rec, ctx.log, i, true));
        }
    });
    let deadline = Instant::now() + Duration::from_secs_f64(ctx.opts.recovery_timeout);
    let next_process = AtomicU64::new(1_000_000_000);
    // A node whose restart failed is not waited for: it would hold the read-back until the deadline.
    let failed: Vec<String> = lock(&ctx.log.restarts)
        .iter()
        .filter(|r| r.final_phase && r.error.is_some())
        .map(|r| r.node.clone())
        .collect();
    let up: Vec<usize> = (0..ctx.plan.n)
        .filter(|&i| !failed.contains(&ctx.ids[i]))
        .collect();
    wait_until_each_serves(wl, &up, deadline, &next_process);
    read_every_key(ctx, wl, deadline, &next_process);
    from_ns
}

/// Which nodes the final phase restarts: every node when the run killed nodes (their recovery is
/// what the read-back tests) or `--final-restart` asks; otherwise only nodes that are down (they
/// exited on their own), so a node that never had to recover is not failed for forgetting on a
/// restart nobody asked for.
fn to_restart(ctx: &Ctx) -> Vec<usize> {
    let killed = lock(&ctx.log.faults).iter().any(|f| f.kind == "kill");
    (0..ctx.plan.n)
        .filter(|&i| ctx.opts.final_restart || killed || !ctx.cluster.is_running(i))
        .collect()
}

/// Each node of `up` must answer a read (of key 0) once, or the deadline passes.
fn wait_until_each_serves(
    wl: &Workload,
    up: &[usize],
    deadline: Instant,
    next_process: &AtomicU64,
) {
    thread::scope(|s| {
        for &i in up {
            s.spawn(move || {
                let mut client = wl.cluster.client();
                while Instant::now() < deadline && interrupt::requested().is_none() {
                    let p = next_process.fetch_add(1, Ordering::Relaxed);
                    let k = wl.op(
                        &mut client,
                        p,
                        i,
                        F::Read,
                        0,
                        Value::Null,
                        Tag::Final,
                        wl.params.timeout,
                    );
                    if k == Kind::Ok {
                        return;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
}

/// Reads every key the workload touched until one read of it is `ok` (trying the nodes in
/// turn), or the deadline passes.
fn read_every_key(ctx: &Ctx, wl: &Workload, deadline: Instant, next_process: &AtomicU64) {
    let max_key = wl.max_key.load(Ordering::Relaxed);
    let next_key = AtomicU64::new(0);
    let n = ctx.plan.n;
    thread::scope(|s| {
        for t in 0..ctx.plan.concurrency.min(max_key as usize + 1) {
            let next_key = &next_key;
            s.spawn(move || {
                let mut client = wl.cluster.client();
                loop {
                    let key = next_key.fetch_add(1, Ordering::Relaxed);
                    if key > max_key {
                        return;
                    }
                    let mut node = (key as usize + t) % n;
                    while Instant::now() < deadline && interrupt::requested().is_none() {
                        let p = next_process.fetch_add(1, Ordering::Relaxed);
                        let k = wl.op(
                            &mut client,
                            p,
                            node,
                            F::Read,
                            key,
                            Value::Null,
                            Tag::Final,
                            wl.params.timeout,
                        );
                        if k == Kind::Ok {
                            break;
                        }
                        node = (node + 1) % n;
                        thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
    });
}

fn net_counters(cluster: &Cluster) -> Value {
    let net = cluster.stats();
    json!({
        "delivered": net.delivered.load(Ordering::Relaxed),
        "dropped_partition": net.dropped_partition.load(Ordering::Relaxed),
        "dropped_loss": net.dropped_loss.load(Ordering::Relaxed),
        "dropped_node_down": net.dropped_node_down.load(Ordering::Relaxed),
        "late_replies": net.late_replies.load(Ordering::Relaxed),
        "unknown_dest": net.unknown_dest.load(Ordering::Relaxed),
    })
}

/// What the run left once its nodes were stopped.
struct Finished {
    window: Window,
    final_from_ns: u64,
    end_ns: u64,
    problems: Vec<String>,
    net_json: Value,
}

/// Writes the store directory, checks the history, prints the summary.
fn report_run(ctx: &Ctx, dir: &Path, done: Finished) -> Result<RunOutcome, String> {
    let (events, ops) = ctx.rec.snapshot();
    let stats = report::stats(&ops, done.window.end_ns - done.window.start_ns);
    let mut faults = std::mem::take(&mut *lock(&ctx.log.faults));
    let mut restarts = std::mem::take(&mut *lock(&ctx.log.restarts));
    report::serve_again(&mut faults, &mut restarts, &ops, ctx.ids);
    let run_end = done.window.end_ns;
    liveness::measure(&mut faults, &ops, &done.window.tap, ctx.ids, run_end);
    let missed_bound = ctx
        .plan
        .liveness_bound
        .map(|b| liveness::missed_bound(&faults, b.as_secs_f64() * 1e3, run_end))
        .unwrap_or_default();
    write_history(dir, &events, &ops, &faults, &done)?;
    let interrupted = interrupt::requested();
    let verdict = match interrupted {
        None => check_history(&events, dir),
        Some(sig) => mark_incomplete(dir, sig, done.end_ns)?,
    };
    let mut damages = std::mem::take(&mut *lock(&ctx.log.damages));
    let mut lost_keys = stats.lost_keys.clone();
    lost_keys.extend(&verdict.failing_keys);
    let lost = damaged::last_acked_writes(&ops, &lost_keys);
    let lost_after_no_damage = damaged::finish(&mut damages, &restarts, &lost);
    let damage_by_kind = damaged::by_kind(&ctx.plan.disk_faults, &damages);
    let exit_code = match interrupted {
        Some(sig) => 128 + sig,
        None => exit_code(&verdict, &stats, &done, &restarts, !missed_bound.is_empty()),
    };
    let outcome = summary::Outcome {
        stats: &stats,
        faults: &faults,
        restarts: &restarts,
        damages: &damages,
        damage_by_kind: &damage_by_kind,
        lost_after_no_damage,
        disk_faults: !ctx.plan.disk_faults.is_empty(),
        problems: &done.problems,
        verdict: &verdict,
        missed_bound: &missed_bound,
        liveness_bound: ctx.plan.liveness_bound,
        interrupted: interrupted.map(interrupt::name),
        exit_code,
        dir,
    };
    let results = results_json(ctx, &outcome, &done);
    write_file(
        dir,
        "results.json",
        &serde_json::to_string_pretty(&results).map_err(|e| format!("encoding results: {e}"))?,
    )?;
    let text = summary(&outcome);
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();
    Ok(RunOutcome {
        exit_code,
        dir: dir.to_path_buf(),
        stats,
        linearizable: verdict.linearizable,
    })
}

fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("writing {name}: {e}"))
}

/// The history in both forms and the two plots.
fn write_history(
    dir: &Path,
    events: &[workload::Event],
    ops: &[workload::OpRecord],
    faults: &[Fault],
    done: &Finished,
) -> Result<(), String> {
    report::write_jsonl(&dir.join("history.jsonl"), events)?;
    write_file(dir, "history.edn", &report::edn(events))?;
    let t_max = done.end_ns as f64 / 1e9;
    let final_s = done.final_from_ns as f64 / 1e9;
    write_file(
        dir,
        "latency.svg",
        &report::latency_svg(ops, faults, t_max, final_s),
    )?;
    write_file(
        dir,
        "rate.svg",
        &report::rate_svg(ops, faults, t_max, final_s),
    )
}

/// Marks a run stopped by signal `sig` as incomplete (an `INCOMPLETE` file in its directory) and
/// returns the verdict it gets: not checked.
fn mark_incomplete(dir: &Path, sig: i32, at_ns: u64) -> Result<Verdict, String> {
    let why = format!(
        "stopped by {} at t={:.3}s: the history holds what was recorded until then; it was not checked",
        interrupt::name(sig),
        at_ns as f64 / 1e9
    );
    write_file(dir, "INCOMPLETE", &format!("{why}\n"))?;
    Ok(Verdict {
        linearizable: None,
        text: format!("not checked: the run was {why}"),
        json: Value::Null,
        failing_keys: Vec::new(),
    })
}

/// The exit status the module doc promises (for a run that was not interrupted).
fn exit_code(
    verdict: &Verdict,
    stats: &Stats,
    done: &Finished,
    restarts: &[Restart],
    missed_bound: bool,
) -> i32 {
    let restart_failed = restarts.iter().any(|r| r.error.is_some());
    if verdict.linearizable == Some(false) || !stats.lost_keys.is_empty() {
        1
    } else if verdict.linearizable.is_none()
        || !done.problems.is_empty()
        || restart_failed
        || !stats.unread_keys.is_empty()
    {
        3
    } else if missed_bound {
        4
    } else {
        0
    }
}

fn results_json(ctx: &Ctx, out: &summary::Outcome, done: &Finished) -> Value {
    let (opts, plan) = (ctx.opts, ctx.plan);
    json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "workload": opts.workload,
        "bin": plan.bin.display().to_string(),
        "node_count": plan.n,
        "time_limit_s": opts.time_limit,
        "rate": opts.rate,
        "concurrency": plan.concurrency,
        "latency_ms": opts.latency,
        "nemesis": opts.nemesis,
        "nemesis_interval_s": opts.nemesis_interval,
        "partition_shapes": plan.shapes.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "loss": plan.loss,
        "latency_dist": opts.latency_dist,
        "fault_targets": plan.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "liveness_bound_s": opts.liveness_bound,
        "final_restart": opts.final_restart,
        "client_timeout_ms": plan.timeout.as_millis() as u64,
        "seed": plan.seed,
        "incomplete": out.interrupted,
        "stats": out.stats,
        "faults": out.faults,
        "restarts": out.restarts,
        "disk_faults": plan.disk_faults.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "damages": out.damages,
        "damage_by_kind": out.damage_by_kind,
        "acked_writes_lost_after_every_damage": out.lost_after_no_damage,
        "liveness_bound_missed": out.missed_bound,
        "final_phase_started_s": done.final_from_ns as f64 / 1e9,
        "net": done.net_json,
        "problems": done.problems,
        "verdict": out.verdict.json,
        "linearizable": out.verdict.linearizable,
        "exit_code": out.exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Opts {
        Opts::try_parse_from(std::iter::once("raftkv test").chain(args.iter().copied()))
            .expect("flags parse")
    }

    #[test]
    fn flags_follow_maelstrom_and_bad_values_are_named() {
        let p = plan(&opts(&[
            "-w",
            "lin-kv",
            "--node-count",
            "3",
            "--concurrency",
            "2n",
        ]))
        .expect("valid");
        assert_eq!((p.n, p.concurrency, p.group), (3, 6, 6));
        assert_eq!(p.faults, vec![FaultKind::Partition, FaultKind::Kill]);
        assert_eq!(p.timeout, Duration::from_millis(1000));
        let p = plan(&opts(&["--latency", "200", "--nemesis", "none"])).expect("valid");
        assert_eq!(p.timeout, Duration::from_millis(2000));
        assert!(p.faults.is_empty());
        assert_eq!(p.concurrency, 20);
        let e = plan(&opts(&["--concurrency", "7"]))
            .err()
            .expect("not a multiple");
        assert!(e.contains("multiple of 2 × node count = 10"), "{e}");
        let e = plan(&opts(&["--nemesis", "partition,clock"]))
            .err()
            .expect("bad nemesis");
        assert!(e.contains("`clock`"), "{e}");
        let e = plan(&opts(&["-w", "g-set"])).err().expect("bad workload");
        assert!(e.contains("g-set"), "{e}");
    }

    #[test]
    fn fault_flags_parse_and_bad_ones_are_named() {
        let p = plan(&opts(&[
            "--nemesis",
            "partition,kill,pause",
            "--partition-shapes",
            "bridge,link,spokes,deaf,mute,flaky",
            "--fault-targets",
            "primary",
            "--loss",
            "0.3",
            "--latency-dist",
            "exponential",
            "--liveness-bound",
            "2.5",
        ]))
        .expect("valid");
        assert_eq!(
            p.faults,
            vec![FaultKind::Partition, FaultKind::Kill, FaultKind::Pause]
        );
        let names: Vec<&str> = p.shapes.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["bridge", "link", "spokes", "deaf", "mute", "flaky"]);
        assert_eq!(p.targets, vec![Target::Primary]);
        assert_eq!((p.loss, p.latency_dist), (0.3, LatencyDist::Exponential));
        assert_eq!(p.liveness_bound, Some(Duration::from_millis(2500)));
        let p = plan(&opts(&["--partition-shapes", "all"])).expect("valid");
        assert_eq!(p.shapes.len(), 11);
        let p = plan(&opts(&[])).expect("defaults");
        assert_eq!(p.shapes.len(), 5, "Maelstrom's four and the primary");
        assert_eq!(p.targets, Target::ALL.to_vec());
        assert_eq!(p.latency_dist, LatencyDist::Constant);
        for (args, named) in [
            (&["--partition-shapes", "one,wedge"][..], "`wedge`"),
            (&["--fault-targets", "all-of-them"], "`all-of-them`"),
            (&["--latency-dist", "gamma"], "`gamma`"),
            (&["--loss", "1.5"], "--loss 1.5"),
            (&["--nemesis", "pause,none"], "cannot be mixed"),
            (&["--liveness-bound=-1"], "--liveness-bound -1"),
            (
                &[
                    "--node-count",
                    "3",
                    "--concurrency",
                    "6",
                    "--partition-shapes",
                    "spokes",
                ],
                "spokes needs at least 4 nodes",
            ),
        ] {
            let e = plan(&opts(args)).err().expect("bad flag");
            assert!(e.contains(named), "{args:?}: {e}");
        }
        let one_node = plan(&opts(&[
            "--node-count",
            "1",
            "--concurrency",
            "2",
            "--nemesis",
            "none",
        ]));
        assert!(one_node.is_ok(), "shapes are not judged without partitions");
    }

    #[test]
    fn disk_faults_need_kills_and_bad_kinds_are_named() {
        assert!(plan(&opts(&[])).expect("defaults").disk_faults.is_empty());
        let p = plan(&opts(&["--disk-faults", "all"])).expect("kill is a default fault");
        assert_eq!(p.disk_faults, disk::DiskFault::ALL.to_vec());
        let p = plan(&opts(&[
            "--nemesis",
            "kill",
            "--disk-faults",
            "wipe,hardstate",
        ]));
        let kinds: Vec<&str> = p
            .expect("valid")
            .disk_faults
            .iter()
            .map(|k| k.name())
            .collect();
        assert_eq!(kinds, ["wipe", "hardstate"]);
        for (args, named) in [
            (
                &["--nemesis", "partition", "--disk-faults", "flip"][..],
                "add kill to --nemesis",
            ),
            (
                &["--disk-faults", "flip,melt"],
                "unknown --disk-faults `melt`",
            ),
        ] {
            let e = plan(&opts(args)).err().expect("bad flag");
            assert!(e.contains(named), "{args:?}: {e}");
        }
    }

    #[test]
    fn targets_hit_their_share_of_the_nodes() {
        let counts: Vec<usize> = Target::ALL.iter().map(|t| t.count(5)).collect();
        assert_eq!(counts, [1, 1, 2, 3]);
        assert_eq!(Target::Minority.count(2), 1, "at least one");
        assert_eq!(Target::Minority.count(4), 1, "2 of 4 is not a minority");
        assert_eq!(Target::Majority.count(4), 3);
    }

    #[test]
    fn stamps_are_utc_calendar_times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(stamp(t), "20261118T110640.123Z");
        assert_eq!(stamp(UNIX_EPOCH), "19700101T000000.000Z");
    }
}
