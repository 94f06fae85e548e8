//! The nemesis: the faults a run injects, one at a time, each healed one interval later.
//!
//! Owns: choosing each fault (kinds in turn; shape and target drawn from the run's seed among
//! those the flags allow), applying it to the cluster (a network fault, SIGKILL, or SIGSTOP, and
//! with `--disk-faults` a damage to one killed node's directory), healing it one interval later
//! (heal the network, restart killed nodes on their data directory, SIGCONT paused ones), and
//! the log of faults, damages and restarts the report is made from.
//! Must never: look inside a node (the `primary` is found by message counts, as a network tap
//! would), or leave a fault in place when it returns.

use super::cluster::Cluster;
use super::damaged::{self, DiskDamage, DiskTurns};
use super::grudge;
use super::interrupt;
use super::report::{Fault, Restart};
use super::workload::Recorder;
use super::{FaultKind, Plan, Target};
use crate::rng::Rng;
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
    pub damages: Mutex<Vec<DiskDamage>>,
    pub current: Mutex<String>,
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Restarts node `i` on its data directory and records the restart (linked to the damage
/// applied to that directory, if one was).
pub fn restart_node(
    cluster: &Cluster,
    rec: &Recorder,
    log: &NemesisLog,
    i: usize,
    final_phase: bool,
) {
    let log_len = cluster.log_len(i);
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
    let index = {
        let mut restarts = lock(&log.restarts);
        restarts.push(r.clone());
        restarts.len() - 1
    };
    damaged::restarted(&log.damages, i, log_len, &r, index);
}

/// How a fault is undone.
enum Undo {
    Heal,
    Restart(Vec<usize>),
    Resume(Vec<usize>),
}

struct Nemesis<'a> {
    cluster: &'a Cluster,
    rec: &'a Recorder,
    log: &'a NemesisLog,
    plan: &'a Plan,
    rng: Rng,
    /// The disk faults' turns, with `--disk-faults`.
    disk: Option<DiskTurns>,
    /// When the workload ends (ns since the run began).
    until_ns: u64,
    /// What the last kill did to a directory, for the progress line.
    disk_note: Option<String>,
}

/// Injects faults until `stop`: a healthy interval, a fault for one interval, healed, and again.
/// Every fault is healed before it returns.
pub fn run_nemesis(
    cluster: &Cluster,
    rec: &Recorder,
    log: &NemesisLog,
    plan: &Plan,
    rng: Rng,
    stop: &AtomicBool,
) {
    debug_assert!(!plan.faults.is_empty());
    let mut nemesis = Nemesis {
        cluster,
        rec,
        log,
        plan,
        rng,
        disk: (!plan.disk_faults.is_empty())
            .then(|| DiskTurns::new(plan.disk_faults.clone(), plan.seed)),
        until_ns: rec.now_ns() + plan.time_limit.as_nanos() as u64,
        disk_note: None,
    };
    let mut round = 0usize;
    let mut sent_before = cluster.sent_counts();
    while nap(plan.interval, stop) {
        let primary = busiest_sender(&sent_before, &cluster.sent_counts());
        // The enabled kinds take turns (every run with several sees each); targets are random.
        let kind = plan.faults[round % plan.faults.len()];
        round += 1;
        let (fault, undo) = match kind {
            FaultKind::Partition => nemesis.partition(primary),
            FaultKind::Kill => nemesis.kill(primary),
            FaultKind::Pause => nemesis.pause(primary),
        };
        let mut current = format!("{} {} {}", fault.kind, fault.detail, fault.nodes.join(","));
        if let Some(note) = nemesis.disk_note.take() {
            current = format!("{current} {note}");
        }
        *lock(&log.current) = current;
        let index = {
            let mut faults = lock(&log.faults);
            faults.push(fault);
            faults.len() - 1
        };
        let _ = nap(plan.interval, stop);
        // Heal always, even when stopping, so the fault's period is closed.
        nemesis.undo(undo);
        lock(&log.faults)[index].end_ns = Some(rec.now_ns());
        lock(&log.current).clear();
        sent_before = cluster.sent_counts();
    }
}

/// The node that sent the most node-to-node messages between two readings of the counts.
pub fn busiest_sender(before: &[u64], now: &[u64]) -> usize {
    (0..now.len())
        .max_by_key(|&i| now[i].saturating_sub(before.get(i).copied().unwrap_or(0)))
        .unwrap_or(0)
}

impl Nemesis<'_> {
    fn names(&self, nodes: &[usize]) -> Vec<String> {
        nodes
            .iter()
            .map(|&i| self.cluster.ids()[i].clone())
            .collect()
    }

    fn fault(&self, kind: &str, detail: &str, nodes: &[usize], majority_side: &[usize]) -> Fault {
        Fault {
            kind: kind.into(),
            detail: detail.into(),
            nodes: self.names(nodes),
            majority_side: self.names(majority_side),
            components: Vec::new(),
            start_ns: self.rec.now_ns(),
            end_ns: None,
            serve_again_ms: None,
            majority_serves_again_ms: None,
            liveness: None,
        }
    }

    fn partition(&mut self, primary: usize) -> (Fault, Undo) {
        let n = self.cluster.node_count();
        let shapes = &self.plan.shapes;
        let shape = shapes[self.rng.below(shapes.len() as u64) as usize];
        let net = grudge::partition(shape, n, primary, self.plan.loss, &mut self.rng);
        let side = grudge::majority_side(&net.grudge);
        let mut fault = self.fault("partition", shape.name(), &net.nodes, &side);
        fault.components = net.components.iter().map(|c| self.names(c)).collect();
        self.cluster.set_fault(net);
        fault.start_ns = self.rec.now_ns();
        (fault, Undo::Heal)
    }

    /// A target among `--fault-targets`, and the nodes it names (sorted).
    fn targets(&mut self, primary: usize) -> (Target, Vec<usize>) {
        let n = self.cluster.node_count();
        let allowed = &self.plan.targets;
        let target = allowed[self.rng.below(allowed.len() as u64) as usize];
        let mut nodes: Vec<usize> = if target == Target::Primary {
            vec![primary]
        } else {
            let mut v: Vec<usize> = (0..n).collect();
            self.rng.shuffle(&mut v);
            v
        };
        nodes.truncate(target.count(n));
        nodes.sort_unstable();
        (target, nodes)
    }

    /// The nodes not in `hit`, when they are a majority.
    fn survivors(&self, hit: &[usize]) -> Vec<usize> {
        let n = self.cluster.node_count();
        let rest: Vec<usize> = (0..n).filter(|i| !hit.contains(i)).collect();
        if rest.len() > n / 2 {
            rest
        } else {
            Vec::new()
        }
    }

    fn kill(&mut self, primary: usize) -> (Fault, Undo) {
        let (target, nodes) = self.targets(primary);
        for &i in &nodes {
            self.cluster.kill(i);
        }
        // The fault is in effect once the last kill has been reaped: `fault` stamps it now.
        let fault = self.fault("kill", target.name(), &nodes, &self.survivors(&nodes));
        if let Some(disk) = self.disk.as_mut() {
            // Restarted one interval from now, it needs another one to be seen serving.
            let interval = self.plan.interval.as_nanos() as u64;
            let room = fault.start_ns + 2 * interval <= self.until_ns;
            let (log, at) = (&self.log.damages, self.rec.now_ns());
            self.disk_note = disk.after_kill(self.cluster, at, log, &nodes, room);
        }
        (fault, Undo::Restart(nodes))
    }

    fn pause(&mut self, primary: usize) -> (Fault, Undo) {
        let (target, nodes) = self.targets(primary);
        let paused: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|&i| self.cluster.pause(i))
            .collect();
        let fault = self.fault("pause", target.name(), &paused, &self.survivors(&paused));
        (fault, Undo::Resume(paused))
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Heal => self.cluster.heal(),
            // A run stopped by a signal is ending: its nodes are about to be stopped anyway.
            Undo::Restart(_) if interrupt::requested().is_some() => {}
            Undo::Restart(nodes) => {
                for i in nodes {
                    restart_node(self.cluster, self.rec, self.log, i, false);
                }
            }
            Undo::Resume(nodes) => {
                for i in nodes {
                    self.cluster.resume(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_sender_is_counted_since_the_last_reading() {
        assert_eq!(busiest_sender(&[100, 0, 0], &[110, 30, 5]), 1);
        assert_eq!(busiest_sender(&[0, 0, 0], &[110, 30, 5]), 0);
    }
}
