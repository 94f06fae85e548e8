//! Liveness under each fault, measured from what the run recorded.
//!
//! Owns: per fault, the ok-rate (ok workload operations per second) during the fault against the
//! same length of time before it, the longest gap without any `ok` (from the fault's start until
//! service resumes after it healed), the leader changes a network tap sees (the busiest
//! node-to-node sender in each sample of message counts), and the check of `--liveness-bound`.
//! Must never: look inside a node or invent a figure: every number comes from the recorded
//! operations or the tap's message counts.

use super::report::Fault;
use super::workload::{Kind, OpRecord, Tag};
use serde::Serialize;

/// One reading of the network tap: when, and how many node-to-node messages each node had sent.
pub type TapSample = (u64, Vec<u64>);

/// What a fault did to availability.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Liveness {
    /// Ok workload operations per second in the same length of time before the fault (back to
    /// the previous fault's end at most).
    pub ok_rate_before: Option<f64>,
    /// Ok workload operations per second while the fault was in effect.
    pub ok_rate_during: Option<f64>,
    /// The longest time without any ok (workload or probe) from the fault's start until the
    /// first ok after it healed.
    pub longest_gap_ms: Option<f64>,
    /// Leaders the tap saw from just before the fault until the next fault began, in order
    /// (a node counts when it was the busiest sender, twice the next, in two samples in a row).
    pub leaders_seen: Vec<String>,
    /// Changes of leader in `leaders_seen`.
    pub leader_changes: usize,
}

/// The busiest sender between two tap samples, if it sent at least twice as much as any other
/// node and at least `min_msgs` messages.
fn busiest(before: &[u64], after: &[u64], min_msgs: u64) -> Option<usize> {
    let deltas: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let (top, &most) = deltas.iter().enumerate().max_by_key(|(_, d)| **d)?;
    let second = deltas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != top)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or(0);
    (most >= min_msgs && most >= 2 * second).then_some(top)
}

/// The leader the tap saw in each sample interval ending in `[from_ns, to_ns)`, blips (a leader
/// seen in one interval alone) removed, runs collapsed.
pub fn leaders(tap: &[TapSample], from_ns: u64, to_ns: u64) -> Vec<usize> {
    let seen: Vec<usize> = tap
        .windows(2)
        .filter(|w| w[1].0 >= from_ns && w[1].0 < to_ns)
        .filter_map(|w| busiest(&w[0].1, &w[1].1, 3))
        .collect();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for node in seen {
        match runs.last_mut() {
            Some((last, len)) if *last == node => *len += 1,
            _ => runs.push((node, 1)),
        }
    }
    let mut out: Vec<usize> = Vec::new();
    for (node, _) in runs.into_iter().filter(|(_, len)| *len >= 2) {
        if out.last() != Some(&node) {
            out.push(node);
        }
    }
    out
}

fn ok_rate(ops: &[OpRecord], from_ns: u64, to_ns: u64) -> Option<f64> {
    if to_ns <= from_ns {
        return None;
    }
    let oks = ops
        .iter()
        .filter(|o| o.tag == Tag::Workload && o.outcome == Kind::Ok)
        .filter(|o| o.complete_ns >= from_ns && o.complete_ns < to_ns)
        .count();
    Some(oks as f64 / ((to_ns - from_ns) as f64 / 1e9))
}

/// The longest stretch without an ok from `start` until the first ok after `end` (or until
/// `run_end` if none came).
fn longest_gap_ms(ok_times: &[u64], start: u64, end: u64, run_end: u64) -> f64 {
    let mut last = start;
    let mut longest = 0;
    for &t in ok_times.iter().filter(|&&t| t > start) {
        longest = longest.max(t - last);
        last = t;
        if t >= end {
            return longest as f64 / 1e6;
        }
    }
    longest.max(run_end.saturating_sub(last)) as f64 / 1e6
}

/// Fills `liveness` of each nemesis fault (partitions, kills, pauses). `faults` are in the order
/// they began; `run_end_ns` is when the workload stopped.
pub fn measure(
    faults: &mut [Fault],
    ops: &[OpRecord],
    tap: &[TapSample],
    ids: &[String],
    run_end_ns: u64,
) {
    let mut ok_times: Vec<u64> = ops
        .iter()
        .filter(|o| o.tag != Tag::Final && o.outcome == Kind::Ok)
        .map(|o| o.complete_ns)
        .collect();
    ok_times.sort_unstable();
    let starts: Vec<u64> = faults
        .iter()
        .filter(|f| f.kind != "crash")
        .map(|f| f.start_ns)
        .collect();
    let mut previous_end = 0;
    for f in faults.iter_mut().filter(|f| f.kind != "crash") {
        let end = f.end_ns.unwrap_or(run_end_ns).min(run_end_ns);
        let length = end.saturating_sub(f.start_ns);
        let before_from = f.start_ns.saturating_sub(length).max(previous_end);
        let next_start = starts
            .iter()
            .copied()
            .find(|&s| s > f.start_ns)
            .unwrap_or(run_end_ns);
        // The leader just before the fault counts, so a fault that moves the leader at once
        // shows one change.
        let lead_in = 1_000_000_000;
        let seen = leaders(tap, f.start_ns.saturating_sub(lead_in), next_start);
        f.liveness = Some(Liveness {
            ok_rate_before: ok_rate(ops, before_from, f.start_ns),
            ok_rate_during: ok_rate(ops, f.start_ns, end),
            longest_gap_ms: Some(longest_gap_ms(&ok_times, f.start_ns, end, run_end_ns)),
            leader_changes: seen.len().saturating_sub(1),
            leaders_seen: seen.iter().map(|&i| ids[i].clone()).collect(),
        });
        previous_end = end;
    }
}

/// The faults (by index) whose majority side did not serve again within `bound_ms`, among those
/// that have a majority side and began at least `bound_ms` before the workload stopped.
pub fn missed_bound(faults: &[Fault], bound_ms: f64, run_end_ns: u64) -> Vec<usize> {
    faults
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind != "crash" && !f.majority_side.is_empty())
        .filter(|(_, f)| (run_end_ns.saturating_sub(f.start_ns)) as f64 / 1e6 >= bound_ms)
        .filter(|(_, f)| f.majority_serves_again_ms.is_none_or(|ms| ms > bound_ms))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workload::F;

    const MS: u64 = 1_000_000;

    fn ok_at(t_ms: u64, tag: Tag) -> OpRecord {
        OpRecord {
            process: 0,
            node: 0,
            f: F::Read,
            key: 0,
            invoke_ns: t_ms * MS - MS,
            complete_ns: t_ms * MS,
            outcome: Kind::Ok,
            error: None,
            timed_out: false,
            acked_write: false,
            tag,
            read_value: None,
        }
    }

    fn fault(start_ms: u64, end_ms: u64) -> Fault {
        Fault {
            kind: "pause".into(),
            detail: "primary".into(),
            nodes: vec!["n0".into()],
            majority_side: vec!["n1".into(), "n2".into()],
            components: Vec::new(),
            start_ns: start_ms * MS,
            end_ns: Some(end_ms * MS),
            serve_again_ms: None,
            majority_serves_again_ms: None,
            liveness: None,
        }
    }

    /// A tap sample every 100 ms; `leader_at(t_ms)` sends 8 messages per interval, the others 1.
    fn tap(until_ms: u64, leader_at: impl Fn(u64) -> usize) -> Vec<TapSample> {
        let mut counts = vec![0u64; 3];
        let mut out = vec![(0, counts.clone())];
        for t in (100..=until_ms).step_by(100) {
            let l = leader_at(t);
            for (i, c) in counts.iter_mut().enumerate() {
                *c += if i == l { 8 } else { 1 };
            }
            out.push((t * MS, counts.clone()));
        }
        out
    }

    #[test]
    fn rates_gap_and_leader_changes_come_from_the_record() {
        // Oks every 10 ms before 1000 ms and after 1600 ms; none in between; one probe ok at 1300.
        let mut ops: Vec<OpRecord> = (1..=100)
            .chain(160..=300)
            .map(|k| ok_at(k * 10, Tag::Workload))
            .collect();
        ops.push(ok_at(1300, Tag::Probe));
        let mut faults = vec![fault(1000, 2000)];
        let ids: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
        let t = tap(3000, |t| if t < 1200 { 0 } else { 2 });
        measure(&mut faults, &ops, &t, &ids, 3000 * MS);
        let l = faults[0].liveness.clone().expect("measured");
        assert_eq!(
            l.ok_rate_before,
            Some(99.0),
            "oks at 10..=990 ms in the second before"
        );
        assert_eq!(
            l.ok_rate_during,
            Some(41.0),
            "oks at 1000 and 1600..=1990 ms: 41 in 1 s"
        );
        assert_eq!(l.longest_gap_ms, Some(300.0), "1300 (probe) to 1600");
        assert_eq!(l.leaders_seen, vec!["n0".to_string(), "n2".to_string()]);
        assert_eq!(l.leader_changes, 1);
    }

    #[test]
    fn a_gap_open_at_the_heal_runs_until_the_next_ok() {
        let ops = vec![ok_at(900, Tag::Workload), ok_at(2500, Tag::Workload)];
        let mut faults = vec![fault(1000, 2000)];
        measure(&mut faults, &ops, &[], &["n0".into()], 3000 * MS);
        let l = faults[0].liveness.clone().expect("measured");
        assert_eq!(l.longest_gap_ms, Some(1500.0));
        assert_eq!(l.leader_changes, 0, "no tap, no leader");
        let mut faults = vec![fault(1000, 2000)];
        measure(&mut faults, &ops[..1], &[], &["n0".into()], 3000 * MS);
        let l = faults[0].liveness.clone().expect("measured");
        assert_eq!(
            l.longest_gap_ms,
            Some(2000.0),
            "no ok at all: until the run ended"
        );
    }

    #[test]
    fn a_leader_seen_once_or_without_a_clear_lead_is_not_a_change() {
        let blip = tap(2000, |t| if t == 1000 { 1 } else { 0 });
        assert_eq!(leaders(&blip, 0, 2000 * MS), vec![0]);
        let even: Vec<TapSample> = (0..20u64).map(|k| (k * 100 * MS, vec![k * 5; 3])).collect();
        assert!(leaders(&even, 0, 2000 * MS).is_empty(), "nobody leads");
        let flip = tap(2000, |t| if t < 1000 { 0 } else { 1 });
        assert_eq!(leaders(&flip, 0, 2000 * MS), vec![0, 1]);
        assert_eq!(leaders(&flip, 1500 * MS, 2000 * MS), vec![1]);
    }

    #[test]
    fn the_bound_fails_only_faults_with_a_majority_side_judged_long_enough() {
        let mut slow = fault(1000, 2000);
        slow.majority_serves_again_ms = Some(1500.0);
        let mut quick = fault(3000, 4000);
        quick.majority_serves_again_ms = Some(200.0);
        let mut never = fault(5000, 6000);
        never.majority_serves_again_ms = None;
        let mut no_majority = fault(7000, 8000);
        no_majority.majority_side.clear();
        let late = fault(9500, 10000);
        let faults = [slow, quick, never, no_majority, late];
        assert_eq!(missed_bound(&faults, 1000.0, 10_000 * MS), vec![0, 2]);
        assert_eq!(missed_bound(&faults, 2000.0, 10_000 * MS), vec![2]);
    }
}
