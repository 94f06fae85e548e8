//! The nemesis: the faults a run injects, one at a time, each healed one interval later.
//!
//! Owns: choosing each fault (kind in turn, shape and target from the run's seed), applying it to
//! the cluster, healing it (restarting killed nodes on their data directory), and the log of
//! faults and restarts the report is made from.
//! Must never: look inside a node (the `primary` is found by message counts, as a network tap
//! would), or leave a fault in place when it returns.

use super::cluster::Cluster;
use super::grudge::{self, Shape};
use super::report::{Fault, Restart};
use super::rng::Rng;
use super::workload::Recorder;
use super::{FaultKind, Plan};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Sleeps up to `d`, waking early when `stop` is set. Returns false if stopped.
pub fn nap(d: Duration, stop: &AtomicBool) -> bool {
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
pub struct NemesisLog {
    pub faults: Mutex<Vec<Fault>>,
    pub restarts: Mutex<Vec<Restart>>,
    pub current: Mutex<String>,
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn restart_node(
    cluster: &Cluster,
    rec: &Recorder,
    log: &NemesisLog,
    i: usize,
    final_phase: bool,
) {
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

pub fn run_nemesis(
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
