//! The verdict and the summary a run prints.
//!
//! Owns: running the checker over the recorded history (and writing its HTML report), and the
//! text of the summary: counts, latencies, each fault with its liveness (how long until the
//! majority side served again, ok-rate during against before, longest gap without an ok, leader
//! changes), a table of liveness per fault shape, the read-back, and the verdict (naming at most
//! a few failing keys and their count).
//! Must never: compute a figure the report module did not derive from the history.

use super::damaged::{DiskDamage, KindFigures};
use super::report::{Fault, Restart, Stats};
use super::workload;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How many failing or lost keys a summary line names before it says "...".
const KEYS_NAMED: usize = 5;

/// The checker's verdict on a history, as the bench reports it.
pub struct Verdict {
    pub linearizable: Option<bool>,
    pub text: String,
    pub json: Value,
    /// The keys the checker found not linearizable.
    pub failing_keys: Vec<u64>,
}

/// Runs the checker (`crate::check`, its default options) over the history, and writes its HTML
/// report next to the history.
pub fn check_history(events: &[workload::Event], dir: &Path) -> Verdict {
    use crate::check;
    let report = check::check(events, &check::Options::default());
    let _ = std::fs::write(dir.join("check.html"), report.to_html());
    let linearizable = match report.verdict {
        check::Verdict::Linearizable => Some(true),
        check::Verdict::NotLinearizable => Some(false),
        check::Verdict::Unknown { .. } => None,
    };
    let mut text = report.to_text();
    let mut failing_keys: Vec<u64> = report
        .violations
        .iter()
        .filter_map(|v| v.key.as_u64())
        .collect();
    failing_keys.sort_unstable();
    failing_keys.dedup();
    if let Some(false) = linearizable {
        let mut keys: Vec<&Value> = report.violations.iter().map(|v| &v.key).collect();
        keys.sort_by_key(|k| (k.as_u64(), k.to_string()));
        keys.dedup();
        let (count, list) = key_list(&keys);
        let verb = if keys.len() == 1 { "fails" } else { "fail" };
        text = format!("NOT LINEARIZABLE: {count} {verb}: {list}\n{text}");
    }
    Verdict {
        linearizable,
        text: text.trim_end().to_string(),
        json: report.to_json(),
        failing_keys,
    }
}

/// ("348 keys", "47, 48, 49, 50, 51, ...") naming at most `KEYS_NAMED` keys.
pub fn key_list<K: std::fmt::Display>(keys: &[K]) -> (String, String) {
    let named: Vec<String> = keys.iter().take(KEYS_NAMED).map(K::to_string).collect();
    let more = if keys.len() > KEYS_NAMED { ", ..." } else { "" };
    let noun = if keys.len() == 1 { "key" } else { "keys" };
    (
        format!("{} {noun}", keys.len()),
        format!("{}{more}", named.join(", ")),
    )
}

pub fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Everything the summary reports.
pub struct Outcome<'a> {
    pub stats: &'a Stats,
    pub faults: &'a [Fault],
    pub restarts: &'a [Restart],
    /// Every disk damage applied or skipped, and the figures per kind (`--disk-faults`).
    pub damages: &'a [DiskDamage],
    pub damage_by_kind: &'a [KindFigures],
    /// Lost keys whose last acknowledged write came after every damage.
    pub lost_after_no_damage: usize,
    pub disk_faults: bool,
    pub problems: &'a [String],
    pub verdict: &'a Verdict,
    /// Faults (indexes) whose majority side did not serve again within `liveness_bound`.
    pub missed_bound: &'a [usize],
    pub liveness_bound: Option<Duration>,
    /// The signal that stopped the run, if one did.
    pub interrupted: Option<&'static str>,
    pub exit_code: i32,
    pub dir: &'a Path,
}

/// Where the nodes' stderr went, and at which level: the nodes inherit `RAFTKV_LOG`.
fn node_logs_line(dir: &Path) -> String {
    let level = match std::env::var(crate::logs::ENV_VAR) {
        Ok(v) if !v.trim().is_empty() => format!("{}={v}", crate::logs::ENV_VAR),
        _ => format!(
            "default level; {}=debug logs every message",
            crate::logs::ENV_VAR
        ),
    };
    format!(
        "node logs: {}/<node>.log ({level})",
        dir.join("node-logs").display()
    )
}

pub fn summary(out: &Outcome) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n== raftkv test summary ==");
    if let Some(sig) = out.interrupted {
        let _ = writeln!(
            o,
            "INCOMPLETE: stopped by {sig}; what was recorded is kept, unchecked"
        );
    }
    ops_lines(out.stats, &mut o);
    fault_lines(out.faults, out.restarts, &mut o);
    liveness_table(out.faults, &mut o);
    bound_lines(out, &mut o);
    restart_lines(out.restarts, &mut o);
    if out.disk_faults {
        damage_lines(out, &mut o);
    }
    if out.interrupted.is_none() {
        readback_lines(out.stats, &mut o);
    } else {
        let _ = writeln!(o, "final read-back: not done (the run was stopped)");
    }
    for p in out.problems.iter().take(10) {
        let _ = writeln!(o, "node problem: {p}");
    }
    let lines: Vec<&str> = out.verdict.text.lines().collect();
    let _ = writeln!(o, "verdict: {}", lines[..lines.len().min(40)].join("\n"));
    if lines.len() > 40 {
        let _ = writeln!(
            o,
            "  ... {} more lines: the whole report is in check.html and results.json",
            lines.len() - 40
        );
    }
    let _ = writeln!(o, "store: {}", out.dir.display());
    let _ = writeln!(o, "{}", node_logs_line(out.dir));
    let _ = writeln!(o, "exit status: {}", out.exit_code);
    o
}

fn ops_lines(s: &Stats, o: &mut String) {
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
}

fn ms(v: Option<f64>) -> String {
    v.map_or("never".to_string(), |m| format!("{m:.0} ms"))
}

/// How long until the majority side served again: "n/a" when the fault left no majority.
fn majority_ms(f: &Fault) -> String {
    if f.majority_side.is_empty() {
        "n/a".into()
    } else {
        ms(f.majority_serves_again_ms)
    }
}

fn fault_lines(faults: &[Fault], restarts: &[Restart], o: &mut String) {
    let count = |k: &str| faults.iter().filter(|f| f.kind == k).count();
    let during_run = restarts.iter().filter(|r| !r.final_phase).count();
    let _ = writeln!(
        o,
        "faults: {} partitions, {} kills, {} pauses, {} restarts during the run (+{} in the final phase), {} crashes",
        count("partition"),
        count("kill"),
        count("pause"),
        during_run,
        restarts.len() - during_run,
        count("crash")
    );
    for f in faults.iter().filter(|f| f.kind != "crash") {
        let nodes = if f.nodes.is_empty() {
            "-".into()
        } else {
            f.nodes.join(",")
        };
        let _ = write!(
            o,
            "  {:>7.2}s {:<9} {:<15} {:<14} majority side served after {:>8}, a client op after {:>8}",
            f.start_ns as f64 / 1e9,
            f.kind,
            f.detail,
            nodes,
            majority_ms(f),
            ms(f.serve_again_ms)
        );
        if let Some(l) = &f.liveness {
            let rate = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.0}"));
            let _ = write!(
                o,
                "; ok/s {} -> {}, longest gap {}, leader changes {}",
                rate(l.ok_rate_before),
                rate(l.ok_rate_during),
                ms(l.longest_gap_ms),
                l.leader_changes
            );
        }
        o.push('\n');
    }
}

/// Per fault kind and shape (or target): how many, and the medians of the liveness figures.
fn liveness_table(faults: &[Fault], o: &mut String) {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for f in faults.iter().filter(|f| f.kind != "crash") {
        if !groups.contains(&(f.kind.as_str(), f.detail.as_str())) {
            groups.push((f.kind.as_str(), f.detail.as_str()));
        }
    }
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "liveness by fault (medians): fault, count, majority serves again, ok/s during / before, longest gap, leader changes (total)"
    );
    for (kind, detail) in groups {
        let of: Vec<&Fault> = faults
            .iter()
            .filter(|f| f.kind == kind && f.detail == detail)
            .collect();
        let med =
            |g: &dyn Fn(&Fault) -> Option<f64>| median_of(of.iter().filter_map(|f| g(f)).collect());
        let serve = med(&|f| f.majority_serves_again_ms);
        let during = med(&|f| f.liveness.as_ref()?.ok_rate_during);
        let before = med(&|f| f.liveness.as_ref()?.ok_rate_before);
        let gap = med(&|f| f.liveness.as_ref()?.longest_gap_ms);
        let changes: usize = of
            .iter()
            .filter_map(|f| f.liveness.as_ref())
            .map(|l| l.leader_changes)
            .sum();
        let no_majority = of.iter().all(|f| f.majority_side.is_empty());
        let _ = writeln!(
            o,
            "  {:<26} {:>3}  {:>9}  {:>5} / {:<5}  {:>9}  {changes}",
            format!("{kind} {detail}"),
            of.len(),
            if no_majority { "n/a".into() } else { ms(serve) },
            during.map_or("-".into(), |r| format!("{r:.0}")),
            before.map_or("-".into(), |r| format!("{r:.0}")),
            ms(gap),
        );
    }
}

fn bound_lines(out: &Outcome, o: &mut String) {
    let Some(bound) = out.liveness_bound else {
        return;
    };
    if out.missed_bound.is_empty() {
        let _ = writeln!(
            o,
            "liveness bound {:.1} s: met after every fault with a majority side",
            bound.as_secs_f64()
        );
        return;
    }
    let _ = writeln!(
        o,
        "LIVENESS BOUND {:.1} s MISSED after {} fault(s):",
        bound.as_secs_f64(),
        out.missed_bound.len()
    );
    for f in out.missed_bound.iter().filter_map(|&i| out.faults.get(i)) {
        let _ = writeln!(
            o,
            "  {:>7.2}s {} {}: the majority side served again after {}",
            f.start_ns as f64 / 1e9,
            f.kind,
            f.detail,
            ms(f.majority_serves_again_ms)
        );
    }
}

fn restart_lines(restarts: &[Restart], o: &mut String) {
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
}

/// Each damage (what was done, or why nothing was, and what became of the node), then the table
/// per kind.
fn damage_lines(out: &Outcome, o: &mut String) {
    let applied = out.damages.iter().filter(|d| d.applied.is_some()).count();
    let substituted = out
        .damages
        .iter()
        .filter(|d| d.applied.is_some_and(|a| a != d.requested))
        .count();
    let _ = writeln!(
        o,
        "disk faults: {applied} damaged restarts ({substituted} by the nearest kind that applied), {} kills without damage",
        out.damages.len() - applied
    );
    for d in out.damages {
        let _ = write!(o, "  {:>7.2}s {:<4} ", d.at_ns as f64 / 1e9, d.node);
        let Some(kind) = d.applied else {
            let _ = writeln!(o, "({} not applied) {}", d.requested, d.detail);
            continue;
        };
        let _ = write!(o, "{kind:<9} {}: ", d.detail);
        let _ = match (&d.restart_error, d.restart_ns) {
            (Some(e), _) => writeln!(o, "restart FAILED: {}", e.lines().next().unwrap_or("")),
            (None, None) => writeln!(o, "not restarted"),
            (None, Some(_)) if d.serves_again_ms.is_none() => {
                writeln!(o, "back, but served nothing again during the run")
            }
            (None, Some(_)) => writeln!(
                o,
                "serving after {}, ordinary after {}",
                ms(d.serves_again_ms),
                ms(d.ordinary_ms)
            ),
        };
    }
    let _ = writeln!(
        o,
        "disk faults by kind: kind, damaged restarts, back and serving, ordinary, median restart to serving, acked writes lost"
    );
    for k in out.damage_by_kind {
        let _ = writeln!(
            o,
            "  {:<10} {:>3}  {:>3}  {:>3}  {:>9}  {}",
            k.kind,
            k.damaged,
            k.back_and_serving,
            k.ordinary,
            k.median_serving_ms
                .map_or("-".into(), |m| format!("{m:.0} ms")),
            k.acked_writes_lost
        );
    }
    if out.lost_after_no_damage > 0 {
        let _ = writeln!(
            o,
            "  acked writes lost after the last damage (charged to none): {}",
            out.lost_after_no_damage
        );
    }
}

fn readback_lines(s: &Stats, o: &mut String) {
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
        let (count, list) = key_list(&s.lost_keys);
        let _ = writeln!(
            o,
            "  acknowledged writes lost (key absent at the end): {count}: {list}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_list_names_a_few_keys_and_the_count() {
        let many: Vec<u64> = (47..395).collect();
        let (count, list) = key_list(&many);
        assert_eq!(
            format!("{count} fail: {list}"),
            "348 keys fail: 47, 48, 49, 50, 51, ..."
        );
        assert_eq!(key_list(&[3]), ("1 key".into(), "3".into()));
        assert_eq!(
            key_list(&[1, 2, 3, 4, 5]).1,
            "1, 2, 3, 4, 5",
            "no dots when all named"
        );
    }
}
