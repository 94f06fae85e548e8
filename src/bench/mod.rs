//! Maelstrom-compatible test bench: `raftkv test`.
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
mod report;
mod workload;

use crate::rng::Rng;
use clap::Parser;
use cluster::{Cluster, NodeSpec};
use grudge::Shape;
use report::{Fault, Restart, Stats};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
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

/// Sleeps up to `d`, waking early when `stop` is set. Returns false if stopped.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
    }
    !stop.load(Ordering::Relaxed)
}

/// Everything the nemesis records.
#[derive(Default)]
struct NemesisLog {
    faults: Mutex<Vec<Fault>>,
    restarts: Mutex<Vec<Restart>>,
    current: Mutex<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn restart_node(cluster: &Cluster, rec: &Recorder, log: &NemesisLog, i: usize, final_phase: bool) {
    let at_ns = rec.now_ns();
    let res = cluster.restart(i);
    let r = Restart {
        node: cluster.ids()[i].clone(),
        at_ns,
        init_ok_ns: res.is_ok().then(|| rec.now_ns()),
        error: res.err(),
        serves_again_ms: None,
        final_phase,
    };
    lock(&log.restarts).push(r);
}

fn run_nemesis(
    cluster: &Cluster,
    rec: &Recorder,
    log: &NemesisLog,
    plan: &Plan,
    mut rng: Rng,
    stop: &AtomicBool,
) {
    let n = cluster.node_count();
    let names =
        |v: &[usize]| -> Vec<String> { v.iter().map(|&i| cluster.ids()[i].clone()).collect() };
    let mut round = 0usize;
    let mut sent_before = cluster.sent_counts();
    while nap(plan.interval, stop) {
        let sent_now = cluster.sent_counts();
        let busiest = (0..n)
            .max_by_key(|&i| sent_now[i].saturating_sub(sent_before[i]))
            .unwrap_or(0);
        // The enabled kinds take turns (every run with both sees both); targets are random.
        let kind = plan.faults[round % plan.faults.len()];
        round += 1;
        let start_ns = rec.now_ns();
        let mut killed = Vec::new();
        let fault = match kind {
            FaultKind::Partition => {
                // Maelstrom's four shapes, plus the primary (the busiest sender) cut off.
                let pick = rng.below(5) as usize;
                let (shape, name, g, comps) = if pick == 4 {
                    let others: Vec<usize> = (0..n).filter(|&i| i != busiest).collect();
                    let comps = vec![vec![busiest], others];
                    (Shape::One, "primary", grudge::complete(&comps, n), comps)
                } else {
                    let shape = Shape::ALL[pick];
                    let (g, comps) = grudge::grudge(shape, n, &mut rng);
                    (shape, shape.name(), g, comps)
                };
                cluster.set_grudge(g);
                let cut = comps
                    .iter()
                    .min_by_key(|c| c.len())
                    .cloned()
                    .unwrap_or_default();
                Fault {
                    kind: "partition".into(),
                    detail: name.into(),
                    nodes: if shape == Shape::MajoritiesRing {
                        Vec::new()
                    } else {
                        names(&cut)
                    },
                    components: comps.iter().map(|c| names(c)).collect(),
                    start_ns,
                    end_ns: None,
                    serve_again_ms: None,
                    majority_serves_again_ms: None,
                }
            }
            FaultKind::Kill => {
                let (target, k) = match rng.below(4) {
                    0 => ("one", 1),
                    1 => ("primary", 1),
                    2 => ("minority", (n - 1) / 2),
                    _ => ("majority", n / 2 + 1),
                };
                let mut nodes: Vec<usize> = if target == "primary" {
                    vec![busiest]
                } else {
                    let mut v: Vec<usize> = (0..n).collect();
                    rng.shuffle(&mut v);
                    v
                };
                nodes.truncate(k.max(1).min(n));
                nodes.sort_unstable();
                for &i in &nodes {
                    cluster.kill(i);
                }
                // The fault is in effect once the last kill has been reaped.
                let start_ns = rec.now_ns();
                killed = nodes.clone();
                Fault {
                    kind: "kill".into(),
                    detail: target.into(),
                    nodes: names(&nodes),
                    components: Vec::new(),
                    start_ns,
                    end_ns: None,
                    serve_again_ms: None,
                    majority_serves_again_ms: None,
                }
            }
        };
        *lock(&log.current) = format!("{} {} {}", fault.kind, fault.detail, fault.nodes.join(","));
        lock(&log.faults).push(fault);
        let fi = lock(&log.faults).len() - 1;
        let _ = nap(plan.interval, stop);
        // Heal: always, even when stopping, so the fault's period is closed.
        match kind {
            FaultKind::Partition => cluster.set_grudge(grudge::healed(n)),
            FaultKind::Kill => {
                for &i in &killed {
                    restart_node(cluster, rec, log, i, false);
                }
            }
        }
        lock(&log.faults)[fi].end_ns = Some(rec.now_ns());
        lock(&log.current).clear();
        sent_before = cluster.sent_counts();
    }
}

/// Runs one test as `opts` describe. Errors are the ones that stop a run from being made.
pub fn run(opts: &Opts) -> Result<RunOutcome, String> {
    let plan = plan(opts)?;
    let dir = make_run_dir(&opts.store, &opts.workload)?;
    let ids: Vec<String> = (0..plan.n).map(|i| format!("n{i}")).collect();
    let spec = NodeSpec {
        bin: plan.bin.clone(),
        args: Vec::new(),
        data_dir: dir.join("data"),
        log_dir: dir.join("node-logs"),
        init_timeout: Duration::from_secs_f64(opts.init_timeout),
        latency: Duration::from_millis(opts.latency),
    };
    let quiet = opts.quiet;
    if !quiet {
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
    let start = Instant::now();
    let cluster = Cluster::start(spec, ids.clone(), start).map_err(|e| {
        format!(
            "the cluster did not start:\n{e}\n(node logs: {})",
            dir.join("node-logs").display()
        )
    })?;
    let rec = Recorder::new(start);
    let log = NemesisLog::default();
    let mut rng = Rng::new(plan.seed);
    let params = Params {
        concurrency: plan.concurrency,
        group_size: plan.group,
        rate: opts.rate,
        per_key_limit: opts.per_key_limit.max(1),
        timeout: plan.timeout,
    };
    let wl = Workload::new(&cluster, &rec, params);
    let nemesis_stop = AtomicBool::new(false);
    let workload_start_ns = rec.now_ns();
    let mut workload_end_ns = workload_start_ns;
    thread::scope(|s| {
        let mut workers = Vec::new();
        for w in 0..plan.concurrency {
            let r = rng.fork(w as u64);
            let wl = &wl;
            workers.push(s.spawn(move || wl.run_worker(w, r)));
        }
        if !plan.probe_every.is_zero() {
            for i in 0..plan.n {
                let wl = &wl;
                let (every, timeout) = (plan.probe_every, plan.probe_timeout);
                // Probe processes: 500_000_000 + node, stepping by 2^20 per op.
                s.spawn(move || wl.run_probe(i, 500_000_000 + i as u64, every, timeout));
            }
        }
        let nem = if plan.faults.is_empty() {
            None
        } else {
            let r = rng.fork(u64::MAX);
            let (c, rc, l, p, st) = (&cluster, &rec, &log, &plan, &nemesis_stop);
            Some(s.spawn(move || run_nemesis(c, rc, l, p, r, st)))
        };
        let tty = std::io::stderr().is_terminal();
        let mut last_print = Instant::now();
        while start.elapsed() < plan.time_limit + Duration::from_nanos(workload_start_ns) {
            thread::sleep(Duration::from_millis(100));
            for i in cluster.reap_exits() {
                let t = rec.now_ns();
                lock(&log.faults).push(Fault {
                    kind: "crash".into(),
                    detail: "exited on its own".into(),
                    nodes: vec![ids[i].clone()],
                    components: Vec::new(),
                    start_ns: t,
                    end_ns: Some(t),
                    serve_again_ms: None,
                    majority_serves_again_ms: None,
                });
            }
            let every = if tty {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(5)
            };
            if !quiet && last_print.elapsed() >= every {
                last_print = Instant::now();
                let (ok, fail, info, all) = rec.op_count();
                let t = start.elapsed().as_secs_f64();
                let total = plan.time_limit.as_secs_f64().max(1e-9);
                let filled = ((t / total).min(1.0) * 24.0) as usize;
                let line = format!(
                    "[{}{}] {t:5.1}s/{total:.0}s {all} ops: {ok} ok, {fail} fail, {info} info | {}",
                    "#".repeat(filled),
                    ".".repeat(24 - filled),
                    {
                        let c = lock(&log.current).clone();
                        if c.is_empty() {
                            "healthy".to_string()
                        } else {
                            c
                        }
                    }
                );
                if tty {
                    eprint!("\r{line:<100}");
                } else {
                    eprintln!("{line}");
                }
            }
        }
        if tty && !quiet {
            eprintln!();
        }
        wl.stop.store(true, Ordering::Relaxed);
        nemesis_stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        workload_end_ns = rec.now_ns();
        if let Some(h) = nem {
            let _ = h.join();
        }
    });

    // Final phase: heal, restart every node, wait until each serves, read every key once more.
    if !quiet {
        eprintln!("raftkv test: healing, restarting every node, reading every key back");
    }
    cluster.set_grudge(grudge::healed(plan.n));
    let final_from_ns = rec.now_ns();
    thread::scope(|s| {
        for i in 0..plan.n {
            let (c, r, l) = (&cluster, &rec, &log);
            s.spawn(move || restart_node(c, r, l, i, true));
        }
    });
    let deadline = Instant::now() + Duration::from_secs_f64(opts.recovery_timeout);
    let next_process = AtomicU64::new(1_000_000_000);
    let wl_ref = &wl;
    // Wait for recovery: each node must answer a read (of key 0) once.
    thread::scope(|s| {
        for i in 0..plan.n {
            let np = &next_process;
            s.spawn(move || {
                let mut client = wl_ref.cluster.client();
                while Instant::now() < deadline {
                    let p = np.fetch_add(1, Ordering::Relaxed);
                    let k = wl_ref.op(
                        &mut client,
                        p,
                        i,
                        F::Read,
                        0,
                        Value::Null,
                        Tag::Final,
                        wl_ref.params.timeout,
                    );
                    if k == Kind::Ok {
                        return;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    let max_key = wl.max_key.load(Ordering::Relaxed);
    let next_key = AtomicU64::new(0);
    thread::scope(|s| {
        for t in 0..plan.concurrency.min(max_key as usize + 1) {
            let (np, nk) = (&next_process, &next_key);
            s.spawn(move || {
                let mut client = wl_ref.cluster.client();
                loop {
                    let key = nk.fetch_add(1, Ordering::Relaxed);
                    if key > max_key {
                        return;
                    }
                    let mut node = (key as usize + t) % plan.n;
                    while Instant::now() < deadline {
                        let p = np.fetch_add(1, Ordering::Relaxed);
                        let k = wl_ref.op(
                            &mut client,
                            p,
                            node,
                            F::Read,
                            key,
                            Value::Null,
                            Tag::Final,
                            wl_ref.params.timeout,
                        );
                        if k == Kind::Ok {
                            break;
                        }
                        node = (node + 1) % plan.n;
                        thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
    });
    let end_ns = rec.now_ns();
    for i in cluster.reap_exits() {
        lock(&log.faults).push(Fault {
            kind: "crash".into(),
            detail: "exited on its own".into(),
            nodes: vec![ids[i].clone()],
            components: Vec::new(),
            start_ns: end_ns,
            end_ns: Some(end_ns),
            serve_again_ms: None,
            majority_serves_again_ms: None,
        });
    }
    let problems = cluster.problems();
    let net = cluster.stats();
    let net_json = json!({
        "delivered": net.delivered.load(Ordering::Relaxed),
        "dropped_partition": net.dropped_partition.load(Ordering::Relaxed),
        "dropped_node_down": net.dropped_node_down.load(Ordering::Relaxed),
        "late_replies": net.late_replies.load(Ordering::Relaxed),
        "unknown_dest": net.unknown_dest.load(Ordering::Relaxed),
    });
    cluster.shutdown();
    drop(cluster);

    let (events, ops) = rec.snapshot();
    let stats = report::stats(&ops, workload_end_ns - workload_start_ns);
    let mut faults = std::mem::take(&mut *lock(&log.faults));
    let mut restarts = std::mem::take(&mut *lock(&log.restarts));
    report::serve_again(&mut faults, &mut restarts, &ops, &ids);

    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    report::write_jsonl(&dir.join("history.jsonl"), &events)?;
    write("history.edn", &report::edn(&events))?;
    let t_max = end_ns as f64 / 1e9;
    let final_s = final_from_ns as f64 / 1e9;
    write(
        "latency.svg",
        &report::latency_svg(&ops, &faults, t_max, final_s),
    )?;
    write("rate.svg", &report::rate_svg(&ops, &faults, t_max, final_s))?;

    let verdict = check_history(&events, &dir);

    let restart_failures: Vec<&Restart> = restarts.iter().filter(|r| r.error.is_some()).collect();
    let linearizable = verdict.linearizable;
    let exit_code = if linearizable == Some(false) || !stats.lost_keys.is_empty() {
        1
    } else if linearizable.is_none()
        || !problems.is_empty()
        || !restart_failures.is_empty()
        || !stats.unread_keys.is_empty()
    {
        3
    } else {
        0
    };
    let results = json!({
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
        "final_phase_started_s": final_from_ns as f64 / 1e9,
        "net": net_json,
        "problems": problems,
        "verdict": verdict.json,
        "linearizable": linearizable,
        "exit_code": exit_code,
    });
    write(
        "results.json",
        &serde_json::to_string_pretty(&results).map_err(|e| format!("encoding results: {e}"))?,
    )?;
    let summary = summary(
        &stats, &faults, &restarts, &problems, &verdict, exit_code, &dir,
    );
    let _ = std::io::stdout().write_all(summary.as_bytes());
    let _ = std::io::stdout().flush();
    Ok(RunOutcome {
        exit_code,
        dir,
        stats,
        linearizable,
    })
}

/// The checker's verdict on a history, as the bench reports it.
pub struct Verdict {
    pub linearizable: Option<bool>,
    pub text: String,
    pub json: Value,
}

/// Runs the checker (`crate::check`, its default options) over the history, and writes its HTML
/// report next to the history.
fn check_history(events: &[workload::Event], dir: &Path) -> Verdict {
    use crate::check;
    let report = check::check(events, &check::Options::default());
    let _ = std::fs::write(dir.join("check.html"), report.to_html());
    let linearizable = match report.verdict {
        check::Verdict::Linearizable => Some(true),
        check::Verdict::NotLinearizable => Some(false),
        check::Verdict::Unknown { .. } => None,
    };
    let mut text = report.to_text();
    if let Some(false) = linearizable {
        let keys: Vec<String> = report
            .violations
            .iter()
            .map(|v| v.key.to_string())
            .collect();
        text = format!("NOT LINEARIZABLE: failing keys {}\n{text}", keys.join(", "));
    }
    Verdict {
        linearizable,
        text: text.trim_end().to_string(),
        json: report.to_json(),
    }
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn summary(
    s: &Stats,
    faults: &[Fault],
    restarts: &[Restart],
    problems: &[String],
    verdict: &Verdict,
    exit_code: i32,
    dir: &Path,
) -> String {
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(o, "\n== raftkv test summary ==");
    let _ = writeln!(
        o,
        "ops: {} ({} ok, {} fail, {} info; {} timed out)   ok-fraction {:.3}   answered in time {:.3}",
        s.ops, s.ok, s.fail, s.info, s.timeouts, s.ok_fraction, s.answered_fraction
    );
    for (f, c) in &s.by_f {
        let _ = writeln!(
            o,
            "  {f:<5} ok {:>6}  fail {:>6}  info {:>6}",
            c[0], c[1], c[2]
        );
    }
    if !s.errors.is_empty() {
        let _ = writeln!(o, "  error replies by code: {:?}", s.errors);
    }
    let _ = writeln!(
        o,
        "latency of ok ops: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        s.latency_ok.p50_ms, s.latency_ok.p95_ms, s.latency_ok.p99_ms, s.latency_ok.max_ms
    );
    let _ = writeln!(
        o,
        "throughput: {:.1} ops/s ({:.1} ok/s) over {:.1} s",
        s.throughput_ops_s, s.ok_throughput_ops_s, s.duration_s
    );
    let count = |k: &str| faults.iter().filter(|f| f.kind == k).count();
    let nemesis_restarts: Vec<&Restart> = restarts.iter().filter(|r| !r.final_phase).collect();
    let _ = writeln!(
        o,
        "faults: {} partitions, {} kills, {} restarts during the run (+{} in the final phase), {} crashes",
        count("partition"),
        count("kill"),
        nemesis_restarts.len(),
        restarts.len() - nemesis_restarts.len(),
        count("crash")
    );
    for f in faults.iter().filter(|f| f.kind != "crash") {
        let ms = |v: Option<f64>| v.map_or("never".to_string(), |m| format!("{m:.0} ms"));
        let _ = writeln!(
            o,
            "  {:>7.2}s {:<9} {:<15} {:<14} majority side served after {:>8}, a client op after {:>8}",
            f.start_ns as f64 / 1e9,
            f.kind,
            f.detail,
            if f.nodes.is_empty() {
                "-".into()
            } else {
                f.nodes.join(",")
            },
            ms(f.majority_serves_again_ms),
            ms(f.serve_again_ms)
        );
    }
    for (kind, detail, label) in [
        ("partition", None, "a partition"),
        ("kill", None, "a kill"),
        ("kill", Some("primary"), "a kill of the primary (leader)"),
    ] {
        let pick = |g: fn(&Fault) -> Option<f64>| -> Vec<f64> {
            faults
                .iter()
                .filter(|f| f.kind == kind && detail.is_none_or(|d| f.detail == d))
                .filter_map(g)
                .collect()
        };
        if let Some(m) = median_of(pick(|f| f.majority_serves_again_ms)) {
            let any = median_of(pick(|f| f.serve_again_ms))
                .map_or(String::new(), |a| format!(" (a client op: {a:.0} ms)"));
            let _ = writeln!(
                o,
                "  median time until the majority side serves again after {label}: {m:.0} ms{any}"
            );
        }
    }
    if let Some(m) = median_of(
        restarts
            .iter()
            .filter(|r| !r.final_phase)
            .filter_map(|r| r.serves_again_ms)
            .collect(),
    ) {
        let _ = writeln!(
            o,
            "  median time from restart to the node's first served answer: {m:.0} ms"
        );
    }
    for r in restarts.iter().filter(|r| r.error.is_some()) {
        let _ = writeln!(
            o,
            "  restart of {} at {:.2}s FAILED: {}",
            r.node,
            r.at_ns as f64 / 1e9,
            r.error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        o,
        "final read-back: {} keys, {} reads ok, {} failed attempts, {} keys unread, {} keys lost",
        s.keys,
        s.final_reads_ok,
        s.final_reads_failed,
        s.unread_keys.len(),
        s.lost_keys.len()
    );
    if !s.lost_keys.is_empty() {
        let _ = writeln!(
            o,
            "  acknowledged writes lost (key absent at the end): keys {:?}",
            s.lost_keys
        );
    }
    for p in problems.iter().take(10) {
        let _ = writeln!(o, "node problem: {p}");
    }
    let lines: Vec<&str> = verdict.text.lines().collect();
    let _ = writeln!(o, "verdict: {}", lines[..lines.len().min(40)].join("\n"));
    if lines.len() > 40 {
        let _ = writeln!(
            o,
            "  ... {} more lines: the whole report is in check.html and results.json",
            lines.len() - 40
        );
    }
    let _ = writeln!(o, "store: {}", dir.display());
    let _ = writeln!(o, "exit status: {exit_code}");
    o
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
