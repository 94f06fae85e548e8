//! What a run leaves behind: the history in both forms, statistics, fault timings, plots.
//!
//! Owns: `history.jsonl` (canonical: the checker's input), `history.edn` (Jepsen's
//! independent-key form), the statistics of the summary and `results.json` (counts by outcome,
//! ok-fraction, latency percentiles, throughput, time to serve again after each fault), and the
//! two SVG plots.
//! Must never: alter or invent events; every figure is computed from the recorded history.

use super::liveness::Liveness;
use super::workload::{Event, Kind, OpRecord, Tag, F};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// One fault the nemesis applied (or a node crash it observed).
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    /// `partition`, `kill`, `pause` or `crash` (a node that exited on its own).
    pub kind: String,
    /// The partition shape (`one`, `majority`, `minority-third`, `majorities-ring`, `primary`,
    /// `bridge`, `link`, `spokes`, `deaf`, `mute`, `flaky`) or kill / pause target (`one`,
    /// `primary`, `minority`, `majority`).
    /// `primary` is the node that sent the most node-to-node messages since the previous fault
    /// healed, as a network tap sees it: for a leader-based protocol, the leader.
    pub detail: String,
    /// Nodes the fault centres on: cut off (the smaller side), the bridge, the cut link's ends,
    /// the spokes, the deaf or mute node, or the nodes killed or paused.
    pub nodes: Vec<String>,
    /// Nodes left able to form a majority: with a two-way link to more than half the cluster
    /// (partitions), or running (kills, pauses) when they are more than half. Empty when the
    /// fault leaves no majority.
    pub majority_side: Vec<String>,
    /// For partitions, the components (or each node's view, for the ring).
    pub components: Vec<Vec<String>>,
    /// When the fault was in full effect (for kills: after the last killed node was reaped).
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// Time from the fault's start to the first op served on a node of `majority_side`,
    /// invoked after the start. With probes on, this is seen within one probe interval.
    pub majority_serves_again_ms: Option<f64>,
    /// Time from the fault's start to the first served workload op (`ok`, or a definite answer
    /// about the data: 20, 21, 22) invoked after it.
    pub serve_again_ms: Option<f64>,
    /// Availability during the fault against before it (nemesis faults only).
    pub liveness: Option<Liveness>,
}

/// One restart of a node (nemesis or final phase).
#[derive(Clone, Debug, Serialize)]
pub struct Restart {
    pub node: String,
    pub at_ns: u64,
    /// When it answered `init_ok`.
    pub init_ok_ns: Option<u64>,
    pub error: Option<String>,
    /// Time from restart to the first served op (as for faults) answered through this node.
    pub serves_again_ms: Option<f64>,
    pub final_phase: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The run's figures (workload ops only; the final-phase reads are counted apart).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub ops: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub timeouts: usize,
    pub ok_fraction: f64,
    /// Ops answered (ok or a definite error) before the client timeout, as a fraction.
    pub answered_fraction: f64,
    pub by_f: std::collections::BTreeMap<String, [usize; 3]>,
    /// Error replies by code (`"11"`, `"22"`, ...).
    pub errors: std::collections::BTreeMap<String, usize>,
    pub latency_ok: Latency,
    pub duration_s: f64,
    pub throughput_ops_s: f64,
    pub ok_throughput_ops_s: f64,
    pub final_reads_ok: usize,
    pub final_reads_failed: usize,
    pub keys: usize,
    /// Keys with an acknowledged write whose final read found the key absent.
    pub lost_keys: Vec<u64>,
    /// Keys with no successful final read.
    pub unread_keys: Vec<u64>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn stats(ops: &[OpRecord], workload_ns: u64) -> Stats {
    let mut s = Stats::default();
    let mut lat = Vec::new();
    for o in ops.iter().filter(|o| o.tag == Tag::Workload) {
        s.ops += 1;
        let e = s.by_f.entry(f_name(o.f).to_string()).or_insert([0; 3]);
        match o.outcome {
            Kind::Ok => {
                s.ok += 1;
                e[0] += 1;
                lat.push((o.complete_ns - o.invoke_ns) as f64 / 1e6);
            }
            Kind::Fail => {
                s.fail += 1;
                e[1] += 1;
            }
            _ => {
                s.info += 1;
                e[2] += 1;
            }
        }
        if o.timed_out {
            s.timeouts += 1;
        }
        if let Some(c) = o.error {
            *s.errors.entry(c.to_string()).or_insert(0) += 1;
        }
    }
    lat.sort_by(f64::total_cmp);
    s.latency_ok = Latency {
        count: lat.len(),
        p50_ms: pct(&lat, 50.0),
        p95_ms: pct(&lat, 95.0),
        p99_ms: pct(&lat, 99.0),
        max_ms: lat.last().copied().unwrap_or(0.0),
    };
    if s.ops > 0 {
        s.ok_fraction = s.ok as f64 / s.ops as f64;
        s.answered_fraction = (s.ops - s.timeouts) as f64 / s.ops as f64;
    }
    s.duration_s = workload_ns as f64 / 1e9;
    if s.duration_s > 0.0 {
        s.throughput_ops_s = s.ops as f64 / s.duration_s;
        s.ok_throughput_ops_s = s.ok as f64 / s.duration_s;
    }
    read_back(ops, &mut s);
    s
}

/// The final phase's figures: per key, the last successful final read against the
/// acknowledged writes.
fn read_back(ops: &[OpRecord], s: &mut Stats) {
    let mut acked = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    for o in ops {
        keys.insert(o.key);
        if o.acked_write {
            acked.insert(o.key);
        }
    }
    s.keys = keys.len();
    let mut final_value: std::collections::BTreeMap<u64, Value> = Default::default();
    for o in ops.iter().filter(|o| o.tag == Tag::Final) {
        if o.outcome == Kind::Ok {
            s.final_reads_ok += 1;
            if let Some(v) = &o.read_value {
                final_value.insert(o.key, v.clone());
            }
        } else {
            s.final_reads_failed += 1;
        }
    }
    for k in &keys {
        match final_value.get(k) {
            None => s.unread_keys.push(*k),
            Some(Value::Null) if acked.contains(k) => s.lost_keys.push(*k),
            Some(_) => {}
        }
    }
}

/// The cluster served this op: `ok`, or a definite answer about the data (20, 21, 22).
pub fn served(o: &OpRecord) -> bool {
    o.outcome == Kind::Ok || (o.outcome == Kind::Fail && matches!(o.error, Some(20..=22)))
}

/// Fills `serve_again_ms` of each fault and `serves_again_ms` of each restart from the ops.
pub fn serve_again(
    faults: &mut [Fault],
    restarts: &mut [Restart],
    ops: &[OpRecord],
    ids: &[String],
) {
    for f in faults.iter_mut() {
        f.serve_again_ms = ops
            .iter()
            .filter(|o| served(o) && o.tag == Tag::Workload && o.invoke_ns >= f.start_ns)
            .map(|o| o.complete_ns)
            .min()
            .map(|t| (t - f.start_ns) as f64 / 1e6);
        let majority_side: Vec<usize> = f
            .majority_side
            .iter()
            .filter_map(|id| ids.iter().position(|x| x == id))
            .collect();
        f.majority_serves_again_ms = ops
            .iter()
            .filter(|o| {
                served(o)
                    && o.tag != Tag::Final
                    && o.invoke_ns >= f.start_ns
                    && majority_side.contains(&o.node)
            })
            .map(|o| o.complete_ns)
            .min()
            .map(|t| (t - f.start_ns) as f64 / 1e6);
    }
    for r in restarts.iter_mut() {
        let Some(node) = ids.iter().position(|x| *x == r.node) else {
            continue;
        };
        let Some(ready) = r.init_ok_ns else { continue };
        r.serves_again_ms = ops
            .iter()
            .filter(|o| {
                served(o)
                    && o.node == node
                    && o.invoke_ns >= ready
                    && (r.final_phase || o.tag != Tag::Final)
            })
            .map(|o| o.complete_ns)
            .min()
            .map(|t| (t - r.at_ns) as f64 / 1e6);
    }
}

pub fn f_name(f: F) -> &'static str {
    match f {
        F::Read => "read",
        F::Write => "write",
        F::Cas => "cas",
    }
}

pub fn write_jsonl(path: &Path, events: &[Event]) -> Result<(), String> {
    let mut out = String::with_capacity(events.len() * 90);
    for e in events {
        let line = serde_json::to_string(e).map_err(|e| format!("encoding history: {e}"))?;
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn edn_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                edn_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(' ');
                edn_value(x, out);
            }
            out.push('}');
        }
    }
}

/// Jepsen's form for independent keys: `{:process 0, :type :invoke, :f :cas, :value [k [1 4]]}`.
/// An `ok` read of an absent key is written `[k nil]`, which Knossos reads as "unknown": the
/// JSON Lines history is the exact one.
pub fn edn(events: &[Event]) -> String {
    let mut out = String::with_capacity(events.len() * 100);
    for e in events {
        let kind = match e.kind {
            Kind::Invoke => "invoke",
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        };
        let _ = write!(
            out,
            "{{:index {}, :time {}, :process {}, :type :{kind}, :f :{}, :value [{} ",
            e.index,
            e.time,
            e.process,
            f_name(e.f),
            e.key
        );
        edn_value(&e.value, &mut out);
        out.push_str("]}\n");
    }
    out
}

const W: f64 = 960.0;
const H: f64 = 420.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 40.0;
const MB: f64 = 50.0;

fn color(k: Kind) -> &'static str {
    match k {
        Kind::Ok => "#2a9d8f",
        Kind::Fail => "#e9a23b",
        _ => "#d1495b",
    }
}

fn frame(title: &str, t_max: f64, final_s: f64, faults: &[Fault], out: &mut String) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{title}</text>
"#,
        W / 2.0
    );
    let pw = W - ML - MR;
    for f in faults {
        let x0 = ML + pw * (f.start_ns as f64 / 1e9 / t_max).min(1.0);
        let x1 = ML + pw * (f.end_ns.map_or(t_max, |e| e as f64 / 1e9) / t_max).min(1.0);
        let fill = match f.kind.as_str() {
            "partition" => "#4c72b0",
            "pause" => "#8172b2",
            _ => "#c44e52",
        };
        let _ = writeln!(
            out,
            r#"<rect x="{x0:.1}" y="{MT}" width="{:.1}" height="{:.1}" fill="{fill}" fill-opacity="0.12"><title>{} {} {}</title></rect>"#,
            (x1 - x0).max(1.0),
            H - MT - MB,
            f.kind,
            f.detail,
            f.nodes.join(",")
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="10" fill="{fill}">{} {}</text>"#,
            x0 + 2.0,
            MT + 12.0,
            f.kind,
            f.detail
        );
    }
    // The final phase: heal, restart every node, read every key back.
    let xf = ML + pw * (final_s / t_max).min(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{xf:.1}" y1="{MT}" x2="{xf:.1}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10" fill="#555" text-anchor="end">final phase</text>"##,
        H - MB,
        xf - 3.0,
        MT + 26.0
    );
    // x axis
    let _ = writeln!(
        out,
        r#"<line x1="{ML}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/>"#,
        H - MB,
        W - MR
    );
    let step = nice_step(t_max / 10.0);
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        let x = ML + pw * t / t_max;
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{0}" x2="{x:.1}" y2="{1}" stroke="black"/><text x="{x:.1}" y="{2}" text-anchor="middle">{t}</text>"#,
            H - MB,
            H - MB + 5.0,
            H - MB + 18.0
        );
        t += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">time (s)</text>"#,
        ML + pw / 2.0,
        H - 10.0
    );
}

fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-3);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

fn legend(out: &mut String) {
    for (i, (k, name)) in [(Kind::Ok, "ok"), (Kind::Fail, "fail"), (Kind::Info, "info")]
        .iter()
        .enumerate()
    {
        let x = W - MR - 180.0 + i as f64 * 60.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="10" width="10" height="10" fill="{}"/><text x="{}" y="19">{name}</text>"#,
            color(*k),
            x + 14.0
        );
    }
}

/// Latency of every op over time (log scale), coloured by outcome, faults shaded.
pub fn latency_svg(ops: &[OpRecord], faults: &[Fault], t_max: f64, final_s: f64) -> String {
    let mut out = String::new();
    let t_max = t_max.max(1.0);
    frame(
        "Latency by outcome (faults shaded)",
        t_max,
        final_s,
        faults,
        &mut out,
    );
    let lat = |o: &OpRecord| ((o.complete_ns - o.invoke_ns) as f64 / 1e6).max(0.01);
    let hi = ops.iter().map(lat).fold(1.0f64, f64::max);
    let (ylo, yhi) = (0.1f64.log10(), hi.log10().ceil().max(1.0));
    let ph = H - MT - MB;
    let pw = W - ML - MR;
    let y_of = |ms: f64| MT + ph * (1.0 - (ms.log10() - ylo) / (yhi - ylo));
    let mut d = ylo.ceil() as i32;
    while d as f64 <= yhi {
        let ms = 10f64.powi(d);
        let y = y_of(ms);
        let _ = writeln!(
            out,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{ms}</text>"##,
            W - MR,
            ML - 5.0,
            y + 4.0
        );
        d += 1;
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">latency (ms, log)</text>"#,
        MT + ph / 2.0
    );
    // At most ~20 000 points: keep every k-th op, deterministically.
    let k = (ops.len() / 20_000).max(1);
    for o in ops.iter().filter(|o| o.tag != Tag::Probe).step_by(k) {
        let x = ML + pw * (o.invoke_ns as f64 / 1e9 / t_max).min(1.0);
        let _ = writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{:.1}" r="1.6" fill="{}" fill-opacity="0.6"/>"#,
            y_of(lat(o)),
            color(o.outcome)
        );
    }
    legend(&mut out);
    out.push_str("</svg>\n");
    out
}

/// Completions per second over time, one line per outcome, faults shaded.
pub fn rate_svg(ops: &[OpRecord], faults: &[Fault], t_max: f64, final_s: f64) -> String {
    let mut out = String::new();
    let t_max = t_max.max(1.0);
    frame(
        "Throughput by outcome (ops/s, faults shaded)",
        t_max,
        final_s,
        faults,
        &mut out,
    );
    let bin = nice_step(t_max / 120.0).max(0.1);
    let nbins = (t_max / bin).ceil() as usize + 1;
    let mut counts = vec![[0usize; 3]; nbins];
    for o in ops.iter().filter(|o| o.tag != Tag::Probe) {
        let b = ((o.complete_ns as f64 / 1e9) / bin) as usize;
        let c = match o.outcome {
            Kind::Ok => 0,
            Kind::Fail => 1,
            _ => 2,
        };
        if let Some(slot) = counts.get_mut(b) {
            slot[c] += 1;
        }
    }
    let peak = counts
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64
        / bin;
    let ymax = nice_step(peak / 5.0) * 5.0;
    let ph = H - MT - MB;
    let pw = W - ML - MR;
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let y = MT + ph * (1.0 - v / ymax);
        let _ = writeln!(
            out,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
            W - MR,
            ML - 5.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">ops/s</text>"#,
        MT + ph / 2.0
    );
    for (c, k) in [(0, Kind::Ok), (1, Kind::Fail), (2, Kind::Info)] {
        let pts: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(i, cs)| {
                let x = ML + pw * ((i as f64 + 0.5) * bin / t_max).min(1.0);
                let y = MT + ph * (1.0 - (cs[c] as f64 / bin) / ymax);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            color(k),
            pts.join(" ")
        );
    }
    legend(&mut out);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(f: F, key: u64, t0: u64, t1: u64, outcome: Kind, node: usize) -> OpRecord {
        OpRecord {
            process: 0,
            node,
            f,
            key,
            invoke_ns: t0,
            complete_ns: t1,
            outcome,
            error: None,
            timed_out: false,
            acked_write: outcome == Kind::Ok && f != F::Read,
            tag: Tag::Workload,
            read_value: None,
        }
    }

    #[test]
    fn majority_side_serving_ignores_the_minority_and_unserved_ops() {
        let ms = 1_000_000;
        let ids: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        let mut faults = vec![Fault {
            kind: "partition".into(),
            detail: "majority".into(),
            nodes: vec!["n0".into(), "n1".into()],
            majority_side: vec!["n2".into(), "n3".into(), "n4".into()],
            components: vec![
                vec!["n0".into(), "n1".into()],
                vec!["n2".into(), "n3".into(), "n4".into()],
            ],
            start_ns: 100 * ms,
            end_ns: None,
            serve_again_ms: None,
            majority_serves_again_ms: None,
            liveness: None,
        }];
        let mut timed_out = op(F::Write, 1, 110 * ms, 1110 * ms, Kind::Info, 3);
        timed_out.timed_out = true;
        let mut busy = op(F::Write, 1, 120 * ms, 130 * ms, Kind::Fail, 2);
        busy.error = Some(11);
        let mut mismatch = op(F::Cas, 1, 300 * ms, 350 * ms, Kind::Fail, 4);
        mismatch.error = Some(22);
        let mut probe = op(F::Read, 0, 200 * ms, 400 * ms, Kind::Ok, 3);
        probe.tag = Tag::Probe;
        let ops = vec![
            op(F::Read, 1, 101 * ms, 102 * ms, Kind::Ok, 0), // minority side: does not count
            timed_out,
            busy,     // error 11 is not service
            mismatch, // a definite answer about the data is
            probe,
        ];
        serve_again(&mut faults, &mut [], &ops, &ids);
        assert_eq!(faults[0].majority_serves_again_ms, Some(250.0));
        assert_eq!(faults[0].serve_again_ms, Some(2.0), "any workload op");
    }

    #[test]
    fn edn_is_jepsen_independent_form() {
        let e = Event::new(0, 5, 3, Kind::Invoke, F::Cas, 7, json!([1, 4]));
        assert_eq!(
            edn(&[e]),
            "{:index 0, :time 5, :process 3, :type :invoke, :f :cas, :value [7 [1 4]]}\n"
        );
    }

    #[test]
    fn percentiles_and_serve_again_come_from_the_ops() {
        let ms = 1_000_000;
        let ops: Vec<OpRecord> = (1..=100)
            .map(|i| op(F::Read, 0, i * 10 * ms, i * 10 * ms + i * ms, Kind::Ok, 0))
            .collect();
        let s = stats(&ops, 2000 * ms);
        assert_eq!(s.ok, 100);
        assert_eq!(s.latency_ok.p50_ms, 51.0);
        assert_eq!(s.latency_ok.p99_ms, 99.0);
        assert_eq!(s.throughput_ops_s, 50.0);

        let mut faults = vec![Fault {
            kind: "partition".into(),
            detail: "one".into(),
            nodes: vec![],
            majority_side: vec!["n0".into()],
            components: vec![],
            start_ns: 105 * ms,
            end_ns: None,
            serve_again_ms: None,
            majority_serves_again_ms: None,
            liveness: None,
        }];
        // ops invoked at/after 105 ms: i >= 11 (invoke 110 ms, completes 121 ms)
        serve_again(&mut faults, &mut [], &ops, &["n0".into()]);
        assert_eq!(faults[0].serve_again_ms, Some(16.0));
    }
}
