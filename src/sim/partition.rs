//! The `partition_test` run: one simulated run in which the current leader is
//! isolated in a minority when operation `partition_after_op` is issued and the partition heals
//! when operation `heal_after_op` is issued.
//!
//! Owns: validating a [`PartitionSpec`] and the scripted run.
//! Must never: depend on wall time or anything but the spec (same spec, same outcome), or know
//! the Maelstrom request it may come from (the node's adapter reads the fields and answers).
//!
//! Decisions: clients (one per node) send operation `k` to node `k mod cluster_size`, so ops are
//! spread over all nodes; the network only delays messages (1-5 ms), no other fault; before the
//! heal, the simulator waits (issuing nothing) until the majority has elected a new leader and
//! committed in its term, so the run always shows the majority serving again and the isolated
//! leader's uncommitted proposals can never commit later. The seed defaults to 0.

use std::collections::BTreeSet;

use super::cluster::{OpRecord, Sim, Time};
use super::faults::{Faults, SimConfig};
use super::run::{converge_and_read, report, sim_fail};
use super::verdict::Verdict;
use crate::rng::Rng;

/// What one `partition_test` run does (check it with [`PartitionSpec::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSpec {
    pub cluster_size: usize,
    pub operations: usize,
    pub partition_after_op: usize,
    pub heal_after_op: usize,
    pub seed: u64,
}

/// What the run did, in full (the reply is a summary of it).
#[derive(Clone, Debug)]
pub struct PartitionOutcome {
    pub spec: PartitionSpec,
    pub succeeded: usize,
    pub rejected: usize,
    pub indeterminate: usize,
    pub linearizable: bool,
    pub verdict: Option<Verdict>,
    pub leader_changes: u64,
    pub simulated_ms: Time,
    /// Leader when the partition began, and the minority it was isolated in.
    pub old_leader: Option<usize>,
    pub minority: BTreeSet<usize>,
    pub partition_at: Option<Time>,
    /// First time every majority node knew the new leader.
    pub majority_ready_at: Option<Time>,
    /// Simulated ms from the partition to the first op issued after it that the majority
    /// served (what a client sees).
    pub majority_recovery_ms: Option<Time>,
    /// Simulated ms from the partition until the majority had a leader that every majority
    /// node followed and that had committed an entry of its term (ready to serve).
    pub majority_ready_ms: Option<Time>,
    pub heal_at: Option<Time>,
    pub records: Vec<OpRecord>,
    pub failure: Option<String>,
}

/// Largest cluster and operation count a request may ask for (keeps the reply well under 10 s).
pub const MAX_CLUSTER: usize = 9;
pub const MAX_OPERATIONS: usize = 5_000;

impl PartitionSpec {
    /// Checks the spec describes a run this simulator can do: a minority holding the leader
    /// needs 3 nodes, at most [`MAX_CLUSTER`] nodes and [`MAX_OPERATIONS`] operations, and
    /// `partition_after_op <= heal_after_op <= operations`. The error names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let (n, ops) = (self.cluster_size, self.operations);
        let (p, h) = (self.partition_after_op, self.heal_after_op);
        if !(3..=MAX_CLUSTER).contains(&n) {
            return Err(format!(
                "`cluster_size` must be 3..={MAX_CLUSTER} (a minority holding the leader needs \
                 3 nodes), got {n}"
            ));
        }
        if !(1..=MAX_OPERATIONS).contains(&ops) {
            return Err(format!(
                "`operations` must be 1..={MAX_OPERATIONS}, got {ops}"
            ));
        }
        if p > h || h > ops {
            return Err(format!(
                "need partition_after_op <= heal_after_op <= operations, got {p} <= {h} <= {ops}"
            ));
        }
        Ok(())
    }
}

fn blocked_for(n: usize, minority: &BTreeSet<usize>) -> Vec<Vec<bool>> {
    (0..n)
        .map(|a| {
            (0..n)
                .map(|b| minority.contains(&a) != minority.contains(&b))
                .collect()
        })
        .collect()
}

/// Runs the scripted simulation.
pub fn partition_test(spec: &PartitionSpec) -> PartitionOutcome {
    let n = spec.cluster_size;
    let mut cfg = SimConfig::new(spec.seed);
    cfg.nodes = n;
    cfg.ops = spec.operations;
    cfg.clients = n;
    cfg.faults = Faults::none();
    let mut sim = Sim::new(cfg);
    sim.chaos = false;
    sim.think_ms = (5, 30);
    sim.route = Some(Box::new(move |number, _client| number % n));
    let mut out = PartitionOutcome {
        spec: spec.clone(),
        succeeded: 0,
        rejected: 0,
        indeterminate: 0,
        linearizable: false,
        verdict: None,
        leader_changes: 0,
        simulated_ms: 0,
        old_leader: None,
        minority: BTreeSet::new(),
        partition_at: None,
        majority_ready_at: None,
        majority_recovery_ms: None,
        majority_ready_ms: None,
        heal_at: None,
        records: Vec::new(),
        failure: None,
    };
    let mut pick = Rng::new(spec.seed ^ 0x005E_ED0F_9A27);
    let limit = 600_000;
    // Phase 1: up to the partition (a leader must exist to be isolated).
    sim.target_ops = spec.partition_after_op;
    sim.boot();
    let p = spec.partition_after_op;
    sim.run_until(limit, |s| s.issued >= p && s.leader().is_some());
    if sim.issued < p || sim.leader().is_none() {
        sim_fail(
            &mut sim,
            "liveness",
            "no leader before the partition".into(),
        );
    }
    if sim.failure.is_none() && spec.partition_after_op < spec.operations {
        // Phase 2: isolate the leader in a minority.
        let leader = sim.leader().unwrap_or(0);
        let old_term = sim.node_term(leader);
        let mut minority = BTreeSet::from([leader]);
        let size = (n - 1) / 2;
        while minority.len() < size {
            minority.insert(pick.below(n as u64) as usize);
        }
        sim.set_blocked(blocked_for(n, &minority));
        out.old_leader = Some(leader);
        out.partition_at = Some(sim.now);
        out.minority = minority.clone();
        sim.target_ops = spec.heal_after_op;
        sim.kick_clients();
        let h = spec.heal_after_op;
        let majority: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
        let mut ready_at = None;
        let ready = |s: &Sim| -> Option<u64> {
            let l = s.leader()?;
            if minority.contains(&l) {
                return None;
            }
            let term = s.node_term(l);
            (term > old_term
                && majority
                    .iter()
                    .all(|&m| s.node_leader_hint(m) == Some(l) && s.node_term(m) == term)
                && s.leader_committed_own_term(l))
            .then_some(term)
        };
        sim.run_until(limit, |s| {
            if ready_at.is_none() {
                if let Some(t) = ready(s) {
                    ready_at = Some((s.now, t));
                }
            }
            // Heal only once every op sent to the minority has its answer, so none of them can
            // reach the healed majority.
            s.issued >= h && ready_at.is_some() && !s.pending_on(&minority)
        });
        match ready_at {
            Some((t, _term)) => out.majority_ready_at = Some(t),
            None => sim_fail(
                &mut sim,
                "liveness",
                "the majority never elected a new leader".into(),
            ),
        }
        // Phase 3: heal, then the rest of the operations.
        if sim.failure.is_none() && spec.heal_after_op < spec.operations {
            sim.heal();
            out.heal_at = Some(sim.now);
        }
    }
    if sim.failure.is_none() {
        sim.target_ops = spec.operations;
        sim.kick_clients();
        let total = spec.operations;
        sim.run_until(limit, |s| s.issued >= total && s.clients_idle());
        if sim.issued < total || !sim.clients_idle() {
            sim_fail(&mut sim, "liveness", "operations did not complete".into());
        }
    }
    if sim.failure.is_none() {
        sim.heal();
        out.heal_at.get_or_insert(sim.now);
        converge_and_read(&mut sim);
    }
    out.records = sim.records.clone();
    out.records.sort_by_key(|r| r.number);
    out.records.retain(|r| r.number < spec.operations);
    out.leader_changes = sim.leader_changes;
    if let Some(pat) = out.partition_at {
        out.majority_recovery_ms = out
            .records
            .iter()
            .filter(|r| !out.minority.contains(&r.node) && r.invoked >= pat && r.result.served())
            .map(|r| r.completed - pat)
            .min();
        out.majority_ready_ms = out.majority_ready_at.map(|t| t - pat);
    }
    let rep = report(sim, true);
    out.simulated_ms = rep.simulated_ms;
    out.succeeded = out.records.iter().filter(|r| r.result.served()).count();
    out.rejected = spec.operations - out.succeeded;
    out.indeterminate = out
        .records
        .iter()
        .filter(|r| r.result == super::cluster::OpResult::Indefinite)
        .count();
    out.linearizable = rep.verdict.as_ref().is_some_and(Verdict::is_ok);
    out.verdict = rep.verdict;
    out.failure = rep.failure.map(|f| format!("{}: {}", f.kind, f.detail));
    out
}
