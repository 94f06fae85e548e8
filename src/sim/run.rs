//! One complete simulated run: workload under faults, final heal, convergence, final reads,
//! the invariant verdicts and the checker's verdict.
//!
//! Owns: the phases of a run and its report.
//! Must never: hide a failure: a panic in the core, a broken invariant, a run that does not
//! converge after the final heal, a lost acknowledged write or a non-linearizable history each
//! makes the run fail with the seed that replays it.

use std::collections::BTreeSet;

use super::cluster::{Failure, Op, OpResult, Sim, Stats, Time};
use super::faults::SimConfig;
use super::verdict::{check_history, Verdict};
use crate::check::{self, EventKind};

/// How long the cluster may take to converge after the final heal (simulated ms).
pub const CONVERGE_MS: Time = 30_000;

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub info: usize,
    pub simulated_ms: Time,
    pub stats: Stats,
    pub leader_changes: u64,
    pub verdict: Option<Verdict>,
    pub failure: Option<Failure>,
    pub history_events: usize,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// Runs one seed. A panic inside the core is caught and reported as the run's failure.
pub fn run(cfg: &SimConfig) -> RunReport {
    let cfg2 = cfg.clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run_inner(&cfg2))) {
        Ok(r) => r,
        Err(p) => RunReport {
            seed: cfg.seed,
            ops: 0,
            ok: 0,
            failed: 0,
            info: 0,
            simulated_ms: 0,
            stats: Stats::default(),
            leader_changes: 0,
            verdict: None,
            failure: Some(Failure {
                kind: "panic".into(),
                detail: panic_message(p.as_ref()),
                time: 0,
                focus: 0,
                trace: Vec::new(),
            }),
            history_events: 0,
        },
    }
}

fn run_inner(cfg: &SimConfig) -> RunReport {
    let mut sim = Sim::new(cfg.clone());
    sim.boot();
    let finished = sim.run_until(cfg.max_sim_ms, |s| {
        s.issued >= s.target_ops && s.clients_idle()
    });
    if !finished && sim.failure.is_none() {
        let (issued, now) = (sim.issued, sim.now);
        sim_fail(
            &mut sim,
            "liveness",
            format!(
                "workload stuck: {issued} of {} ops issued by {now} ms",
                cfg.ops
            ),
        );
    }
    if sim.failure.is_none() {
        converge_and_read(&mut sim);
    }
    report(sim, true)
}

pub(super) fn sim_fail(sim: &mut Sim, kind: &str, detail: String) {
    sim.fail(kind, detail);
}

/// Final heal, convergence, a final read of every key through the leader, and the check that
/// every acknowledged write is still readable.
pub(super) fn converge_and_read(sim: &mut Sim) {
    if !converge(sim) {
        return;
    }
    sim.check_logs_match();
    read_back(sim);
}

/// Calms the faults and waits for the cluster to converge, then (with the rejoin profile) for
/// a follower wiped in the idle cluster to be ordinary again; false after a liveness failure.
fn converge(sim: &mut Sim) -> bool {
    sim.calm();
    let t0 = sim.now;
    if !sim.run_until(t0 + CONVERGE_MS, |s| s.converged()) {
        sim_fail(
            sim,
            "liveness",
            format!("no converged leader {CONVERGE_MS} ms after the final heal"),
        );
        return false;
    }
    if sim.rejoin_idle_cluster() {
        let t1 = sim.now;
        if !sim.run_until(t1 + CONVERGE_MS, |s| s.converged()) {
            sim_fail(
                sim,
                "liveness",
                format!(
                    "a follower that lost its directory in the idle cluster is not ordinary \
                     {CONVERGE_MS} ms later"
                ),
            );
            return false;
        }
    }
    true
}

/// Reads every key once more through the leader: each must be served, and a key with an
/// acknowledged write must not read as absent.
fn read_back(sim: &mut Sim) {
    let keys: BTreeSet<u64> = sim.history.iter().filter_map(|e| e.key.as_u64()).collect();
    for key in keys {
        let mut served = None;
        for _attempt in 0..5 {
            let Some(leader) = sim.leader() else {
                let t = sim.now;
                sim.run_until(t + 500, |s| s.leader().is_some());
                continue;
            };
            let before = sim.records.len();
            let number = sim.issued;
            sim.invoke(0, Op::Read { key }, leader, number);
            let t = sim.now;
            sim.run_until(t + 5_000, |s| s.clients_idle());
            if sim.failure.is_some() {
                return;
            }
            if let Some(r) = sim.records.get(before) {
                if let OpResult::Ok(v) = r.result {
                    served = Some(v);
                    break;
                }
            }
        }
        let Some(value) = served else {
            sim_fail(
                sim,
                "liveness",
                format!("final read of key {key} not served after the heal"),
            );
            return;
        };
        let acked_write = sim.history.iter().any(|e| {
            e.key.as_u64() == Some(key)
                && e.kind == EventKind::Ok
                && matches!(e.f, check::Op::Write | check::Op::Cas)
        });
        if acked_write && value.is_none() {
            sim_fail(
                sim,
                "lost write",
                format!("key {key} had an acknowledged write but reads as absent after the heal"),
            );
            return;
        }
    }
}

pub(super) fn report(mut sim: Sim, with_verdict: bool) -> RunReport {
    let mut verdict = None;
    if sim.failure.is_none() && with_verdict {
        let v = check_history(&sim.history);
        if let Verdict::Violation { text, event } = &v {
            sim_fail(&mut sim, "linearizability", text.clone());
            // Centre the trace on the operation the checker could not place.
            let at = event
                .and_then(|i| sim.history.get(i as usize))
                .map(|e| e.time);
            if let (Some(f), Some(ns)) = (sim.failure.as_mut(), at) {
                f.focus = ns / 1_000_000;
            }
        }
        verdict = Some(v);
    }
    let count = |kind: EventKind| sim.history.iter().filter(|e| e.kind == kind).count();
    RunReport {
        seed: sim.cfg.seed,
        ops: sim.records.len(),
        ok: count(EventKind::Ok),
        failed: count(EventKind::Fail),
        info: count(EventKind::Info),
        simulated_ms: sim.now,
        stats: sim.stats.clone(),
        leader_changes: sim.leader_changes,
        verdict,
        history_events: sim.history.len(),
        failure: sim.failure.take(),
    }
}
