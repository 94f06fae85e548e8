//! Maelstrom-compatible test bench (DESIGN §7): `raftkv test`.
//!
//! Owns: running any Maelstrom node binary (by default this project's own node) as a cluster of
//! processes, the simulated network between them (latency, partitions as grudges), the nemesis
//! (partitions and SIGKILL with restart on the same data directory), Maelstrom's lin-kv workload,
//! the final heal/restart/read-back phase, the store directory of each run (histories, results,
//! node logs, plots), the summary, and the verdict from the checker (`crate::check`).
//! Must never: look inside a node (it only speaks Maelstrom's protocol on stdin/stdout), record
//! anything a node did not really do, hang on a node (every wait has a deadline), or leave a node
//! process running after it returns.
//!
//! Exit status: 0 linearizable and no node misbehaved; 1 not linearizable (or an acknowledged
//! write was found lost); 2 the run could not be made (bad flags, a node that will not start or
//! answer `init`); 3 the history was linearizable or unchecked but something else went wrong (a
//! node crashed on its own, printed garbage, failed to restart, keys could not be read back, or the
//! checker answered `unknown`).

mod cluster;
mod grudge;
mod nemesis;
mod report;
mod rng;
mod summary;
mod workload;

use clap::Parser;
use cluster::{Cluster, NodeSpec};
use nemesis::{lock, restart_node, run_nemesis, NemesisLog};
use report::{Fault, Restart, Stats};
use rng::Rng;
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
    /// One-way message latency in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// Faults: a comma list of `partition` and `kill`, or `none`.
    #[arg(long, default_value = "partition,kill")]
    pub nemesis: String,
    /// Seconds between nemesis operations (a fault starts, then heals, each after this long;
    /// partitions and kills take turns).
    #[arg(long, default_value_t = 5.0)]
    pub nemesis_interval: f64,
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
    match run(&opts) {
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
}

/// The validated plan of a run.
struct Plan {
    bin: PathBuf,
    n: usize,
    concurrency: usize,
    group: usize,
    faults: Vec<FaultKind>,
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
    let c = o.concurrency.trim();
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
    let mut faults = Vec::new();
    for part in o
        .nemesis
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part {
            "partition" => faults.push(FaultKind::Partition),
            "kill" => faults.push(FaultKind::Kill),
            "none" => {}
            other => {
                return Err(format!(
                    "unknown --nemesis `{other}` (known: partition, kill, none)"
                ))
            }
        }
    }
    let secs = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!(
                "{name} {v} must be a non-negative number of seconds"
            ))
        }
    };
    let time_limit = secs("--time-limit", o.time_limit)?;
    let interval = secs("--nemesis-interval", o.nemesis_interval)?;
    secs("--init-timeout", o.init_timeout)?;
    secs("--recovery-timeout", o.recovery_timeout)?;
    if !o.rate.is_finite() || o.rate < 0.0 {
        return Err(format!("--rate {} must be >= 0", o.rate));
    }
    if !faults.is_empty() && interval < Duration::from_millis(100) {
        return Err("--nemesis-interval must be at least 0.1 s".into());
    }
    let bin = match &o.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the raftkv executable to run as the node: {e}"))?,
    };
    let seed = o.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let timeout = Duration::from_millis((10 * o.latency).max(1000));
    let probe_every = Duration::from_millis(o.probe_interval);
    let probe_timeout = Duration::from_millis((4 * o.latency + 50).max(100));
    Ok(Plan {
        bin,
        n,
        concurrency,
        group,
        faults,
        seed,
        time_limit,
        interval,
        timeout,
        probe_every,
        probe_timeout,
    })
}

/// `YYYYMMDDTHHMMSS.mmmZ` for a time since the epoch (UTC, proleptic Gregorian).
fn stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
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

/// When the workload ran, in ns since the run started.
#[derive(Clone, Copy)]
struct Window {
    start_ns: u64,
    end_ns: u64,
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
    let final_from_ns = final_phase(&ctx, &wl);
    let end_ns = rec.now_ns();
    record_crashes(&ctx);
    let problems = cluster.problems();
    let net_json = net_counters(&cluster);
    cluster.shutdown();
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
        if plan.faults.is_empty() { "none".to_string() } else { opts.nemesis.clone() },
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
        watch(ctx, start, plan.time_limit + Duration::from_nanos(start_ns));
        wl.stop.store(true, Ordering::Relaxed);
        nemesis_stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        if let Some(h) = nemesis {
            let _ = h.join();
        }
    });
    Window {
        start_ns,
        end_ns: ctx.rec.now_ns(),
    }
}

/// Until `until` after `start`: records nodes that exited on their own and shows progress.
fn watch(ctx: &Ctx, start: Instant, until: Duration) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_secs(if tty { 1 } else { 5 });
    let mut last_print = Instant::now();
    while start.elapsed() < until {
        thread::sleep(Duration::from_millis(100));
        record_crashes(ctx);
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
            components: Vec::new(),
            start_ns: t,
            end_ns: Some(t),
            serve_again_ms: None,
            majority_serves_again_ms: None,
        });
    }
}

/// Heals, restarts every node, waits until each serves, and reads every key once more.
/// Returns when the phase began.
fn final_phase(ctx: &Ctx, wl: &Workload) -> u64 {
    if !ctx.opts.quiet {
        eprintln!("raftkv test: healing, restarting every node, reading every key back");
    }
    ctx.cluster.set_grudge(grudge::healed(ctx.plan.n));
    let from_ns = ctx.rec.now_ns();
    thread::scope(|s| {
        for i in 0..ctx.plan.n {
            s.spawn(move || restart_node(ctx.cluster, ctx.rec, ctx.log, i, true));
        }
    });
    let deadline = Instant::now() + Duration::from_secs_f64(ctx.opts.recovery_timeout);
    let next_process = AtomicU64::new(1_000_000_000);
    wait_until_each_serves(ctx, wl, deadline, &next_process);
    read_every_key(ctx, wl, deadline, &next_process);
    from_ns
}

/// Each node must answer a read (of key 0) once, or the deadline passes.
fn wait_until_each_serves(ctx: &Ctx, wl: &Workload, deadline: Instant, next_process: &AtomicU64) {
    thread::scope(|s| {
        for i in 0..ctx.plan.n {
            s.spawn(move || {
                let mut client = wl.cluster.client();
                while Instant::now() < deadline {
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
                    while Instant::now() < deadline {
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
    write_history(dir, &events, &ops, &faults, &done)?;
    let verdict = check_history(&events, dir);
    let exit_code = exit_code(&verdict, &stats, &done.problems, &restarts);
    let results = results_json(ctx, &stats, &faults, &restarts, &done, &verdict, exit_code);
    write_file(
        dir,
        "results.json",
        &serde_json::to_string_pretty(&results).map_err(|e| format!("encoding results: {e}"))?,
    )?;
    let text = summary(
        &stats,
        &faults,
        &restarts,
        &done.problems,
        &verdict,
        exit_code,
        dir,
    );
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

/// The exit status the module doc promises.
fn exit_code(verdict: &Verdict, stats: &Stats, problems: &[String], restarts: &[Restart]) -> i32 {
    let restart_failed = restarts.iter().any(|r| r.error.is_some());
    if verdict.linearizable == Some(false) || !stats.lost_keys.is_empty() {
        1
    } else if verdict.linearizable.is_none()
        || !problems.is_empty()
        || restart_failed
        || !stats.unread_keys.is_empty()
    {
        3
    } else {
        0
    }
}

fn results_json(
    ctx: &Ctx,
    stats: &Stats,
    faults: &[Fault],
    restarts: &[Restart],
    done: &Finished,
    verdict: &Verdict,
    exit_code: i32,
) -> Value {
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
        "client_timeout_ms": plan.timeout.as_millis() as u64,
        "seed": plan.seed,
        "stats": stats,
        "faults": faults,
        "restarts": restarts,
        "final_phase_started_s": done.final_from_ns as f64 / 1e9,
        "net": done.net_json,
        "problems": done.problems,
        "verdict": verdict.json,
        "linearizable": verdict.linearizable,
        "exit_code": exit_code,
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
    fn stamps_are_utc_calendar_times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(stamp(t), "20261118T110640.123Z");
        assert_eq!(stamp(UNIX_EPOCH), "19700101T000000.000Z");
    }
}
