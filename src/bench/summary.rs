//! The verdict and the summary a run prints.
//!
//! Owns: running the checker over the recorded history (and writing its HTML report), and the
//! text of the summary: counts, latencies, each fault and how long until service came back, the
//! read-back, and the verdict.
//! Must never: compute a figure the report module did not derive from the history.

use super::report::{Fault, Restart, Stats};
use super::workload::{self, Kind, F};
use serde_json::Value;
use std::path::Path;

/// The checker's verdict on a history, as the bench reports it.
pub struct Verdict {
    pub linearizable: Option<bool>,
    pub text: String,
    pub json: Value,
}

/// Runs the checker (`crate::check`, default semantics of DESIGN §5) over the history, and
/// writes its HTML report next to the history.
pub fn check_history(events: &[workload::Event], dir: &Path) -> Verdict {
    use crate::check::{self, EventKind, Op};
    let history: Vec<check::Event> = events
        .iter()
        .map(|e| {
            let kind = match e.kind {
                Kind::Invoke => EventKind::Invoke,
                Kind::Ok => EventKind::Ok,
                Kind::Fail => EventKind::Fail,
                Kind::Info => EventKind::Info,
            };
            let f = match e.f {
                F::Read => Op::Read,
                F::Write => Op::Write,
                F::Cas => Op::Cas,
            };
            check::Event::new(e.index, e.time, e.process, kind, f, e.key, e.value.clone())
        })
        .collect();
    let report = check::check(&history, &check::Options::default());
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

pub fn summary(
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
