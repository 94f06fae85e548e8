//! Verdicts and their renderings: text for people at a terminal, JSON for scripts and the node's
//! reply, and a self-contained HTML page with a per-key timeline of each failing window.
//!
//! Owns: the `Report` type and how it is shown.
//! Must never: change a verdict, or read anything but the report (the HTML page loads nothing).

use super::search::{KeyOutcome, KeyResult};
use super::{kind_name, op_name, EventKind, Op};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The search hit a bound, or the history was not well-formed; the reason says which.
    Unknown {
        reason: String,
    },
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not_linearizable",
            Verdict::Unknown { .. } => "unknown",
        }
    }
}

/// One operation, as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpSummary {
    pub process: u64,
    pub f: Op,
    /// `ok`, `fail`, `info`, or `invoke` when it never completed.
    pub outcome: EventKind,
    /// Write: the value; cas: `[from, to]`; read: the value read.
    pub value: Value,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
    /// In a linearizable prefix: the state after this operation (`null` = absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_after: Option<Value>,
}

/// Why one key is not linearizable.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub key: Value,
    /// The operation that cannot be placed.
    pub op: OpSummary,
    /// The state the search reached before it (`null` = absent), when `state_known`.
    pub state: Value,
    pub state_known: bool,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<OpSummary>,
    /// A minimal failing window of events: on its own it is not linearizable (from any state
    /// when `window_from_any_state`, and then even if its unknown writes and cas could take
    /// effect any number of times; else from the initial state).
    pub window: Vec<super::Event>,
    pub window_from_any_state: bool,
    pub explanation: String,
}

/// Per-key figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyStats {
    pub key: Value,
    pub ops: usize,
    pub verdict: String,
    pub states: u64,
    pub elapsed_ms: f64,
    pub peak_memory_bytes: usize,
}

/// The result of [`super::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub verdict: Verdict,
    pub violations: Vec<Violation>,
    /// Keys whose search hit a bound: (key, reason).
    pub unknown: Vec<(Value, String)>,
    pub keys: Vec<KeyStats>,
    pub events: usize,
    pub elapsed: Duration,
}

impl Report {
    pub(crate) fn invalid(reason: String, events: usize) -> Report {
        Report {
            verdict: Verdict::Unknown { reason },
            violations: Vec::new(),
            unknown: Vec::new(),
            keys: Vec::new(),
            events,
            elapsed: Duration::ZERO,
        }
    }

    pub(crate) fn from_outcomes(
        outcomes: Vec<KeyOutcome>,
        events: usize,
        elapsed: Duration,
    ) -> Report {
        let mut violations = Vec::new();
        let mut unknown = Vec::new();
        let mut keys = Vec::new();
        for o in outcomes {
            let verdict = match o.result {
                KeyResult::Linearizable => "linearizable",
                KeyResult::Violation(v) => {
                    violations.push(*v);
                    "not_linearizable"
                }
                KeyResult::Unknown(r) => {
                    unknown.push((o.key.clone(), r));
                    "unknown"
                }
            };
            keys.push(KeyStats {
                key: o.key,
                ops: o.ops,
                verdict: verdict.into(),
                states: o.states,
                elapsed_ms: o.elapsed.as_secs_f64() * 1e3,
                peak_memory_bytes: o.peak_memory,
            });
        }
        let verdict = if !violations.is_empty() {
            Verdict::NotLinearizable
        } else if let Some((k, r)) = unknown.first() {
            Verdict::Unknown {
                reason: format!(
                    "key {k}: {r}{}",
                    if unknown.len() > 1 {
                        format!(" (and {} more keys unknown)", unknown.len() - 1)
                    } else {
                        String::new()
                    }
                ),
            }
        } else {
            Verdict::Linearizable
        };
        Report {
            verdict,
            violations,
            unknown,
            keys,
            events,
            elapsed,
        }
    }

    pub fn is_linearizable(&self) -> bool {
        self.verdict == Verdict::Linearizable
    }

    /// The `violations` array of the `verify_linearizability` reply: one object per failing key.
    pub fn violations_json(&self) -> Value {
        serde_json::to_value(&self.violations).unwrap_or(Value::Array(Vec::new()))
    }

    /// Everything, for `raftkv check --json`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "verdict": self.verdict.name(),
            "linearizable": self.is_linearizable(),
            "events": self.events,
            "keys": self.keys.len(),
            "elapsed_ms": self.elapsed.as_secs_f64() * 1e3,
            "violations": self.violations_json(),
            "unknown": self.unknown.iter().map(|(k, r)| json!({"key": k, "reason": r})).collect::<Vec<_>>(),
            "per_key": serde_json::to_value(&self.keys).unwrap_or(Value::Null),
        });
        if let (Verdict::Unknown { reason }, Some(m)) = (&self.verdict, v.as_object_mut()) {
            m.insert("reason".into(), Value::from(reason.clone()));
        }
        v
    }

    /// A plain-text summary for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} events, {} keys, checked in {:.1} ms",
            self.verdict.name().replace('_', " "),
            self.events,
            self.keys.len(),
            self.elapsed.as_secs_f64() * 1e3
        );
        if let Verdict::Unknown { reason } = &self.verdict {
            let _ = writeln!(s, "reason: {reason}");
        }
        for v in &self.violations {
            let _ = writeln!(s, "\nkey {}: NOT linearizable", v.key);
            let _ = writeln!(s, "  {}", v.explanation);
            let _ = writeln!(s, "  cannot place: {}", op_line(&v.op));
            if v.state_known {
                let _ = writeln!(s, "  state reached: {}", state_str(&v.state));
            }
            let shown = 12usize;
            let _ = writeln!(
                s,
                "  longest linearizable prefix: {} operations{}",
                v.prefix.len(),
                if v.prefix.len() > shown {
                    format!(", the last {shown}:")
                } else {
                    ":".into()
                }
            );
            for o in v.prefix.iter().skip(v.prefix.len().saturating_sub(shown)) {
                let _ = writeln!(
                    s,
                    "    {}  -> {}",
                    op_line(o),
                    o.state_after.as_ref().map_or("?".into(), state_str)
                );
            }
            let _ = writeln!(
                s,
                "  minimal failing window ({} events, {}):",
                v.window.len(),
                if v.window_from_any_state {
                    "fails from any starting state, even with unknown operations repeatable"
                } else {
                    "fails from the initial state"
                }
            );
            for e in &v.window {
                let _ = writeln!(s, "    {}", e.to_json_line());
            }
        }
        for (k, r) in &self.unknown {
            let _ = writeln!(s, "\nkey {k}: unknown ({r})");
        }
        s
    }

    /// A self-contained HTML page: verdict, and for each failing key an SVG timeline of the
    /// failing window (one lane per process, a bar per operation from invoke to completion, the
    /// operation that cannot be placed in red), the prefix and the raw events.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>raftkv check: ");
        h.push_str(&esc(self.verdict.name()));
        h.push_str(
            "</title><style>body{font-family:sans-serif;margin:2em;max-width:1200px}\
            .bad{color:#b00}.good{color:#070}table{border-collapse:collapse}\
            td,th{border:1px solid #ccc;padding:2px 6px;font-family:monospace;font-size:12px}\
            svg text{font-family:monospace;font-size:11px}</style></head><body>\n",
        );
        let class = if self.is_linearizable() {
            "good"
        } else {
            "bad"
        };
        let _ = writeln!(
            h,
            "<h1 class=\"{class}\">{}</h1><p>{} events, {} keys, checked in {:.1} ms.</p>",
            esc(&self.verdict.name().replace('_', " ")),
            self.events,
            self.keys.len(),
            self.elapsed.as_secs_f64() * 1e3
        );
        if let Verdict::Unknown { reason } = &self.verdict {
            let _ = writeln!(h, "<p>Reason: {}</p>", esc(reason));
        }
        for v in &self.violations {
            let _ = writeln!(
                h,
                "<h2 class=\"bad\">Key {}</h2><p>{}</p><p>Cannot place: <b>{}</b>{}</p>",
                esc(&v.key.to_string()),
                esc(&v.explanation),
                esc(&op_line(&v.op)),
                if v.state_known {
                    format!(
                        " &mdash; state reached: <b>{}</b>",
                        esc(&state_str(&v.state))
                    )
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                h,
                "<h3>Failing window ({} events; {})</h3>",
                v.window.len(),
                if v.window_from_any_state {
                    "not linearizable from any starting state, even if unknown operations could take effect repeatedly"
                } else {
                    "not linearizable from the initial state"
                }
            );
            h.push_str(&timeline_svg(v));
            let _ = writeln!(
                h,
                "<h3>Longest linearizable prefix ({} operations)</h3><table><tr><th>#</th>\
                 <th>process</th><th>op</th><th>value</th><th>events</th><th>state after</th></tr>",
                v.prefix.len()
            );
            for (i, o) in v.prefix.iter().enumerate() {
                let _ = writeln!(
                    h,
                    "<tr><td>{i}</td><td>{}</td><td>{}</td><td>{}</td><td>{}&ndash;{}</td><td>{}</td></tr>",
                    o.process,
                    op_name(o.f),
                    esc(&o.value.to_string()),
                    o.invoke_index,
                    o.complete_index.map_or("?".into(), |c| c.to_string()),
                    esc(&o.state_after.as_ref().map_or("?".into(), state_str))
                );
            }
            h.push_str("</table><h3>Window events</h3><table><tr><th>index</th><th>process</th><th>type</th><th>f</th><th>value</th></tr>\n");
            for e in &v.window {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e.index,
                    e.process,
                    kind_name(e.kind),
                    op_name(e.f),
                    esc(&e.value.to_string())
                );
            }
            h.push_str("</table>\n");
        }
        if !self.unknown.is_empty() {
            h.push_str("<h2>Unknown keys</h2><ul>");
            for (k, r) in &self.unknown {
                let _ = write!(h, "<li>{}: {}</li>", esc(&k.to_string()), esc(r));
            }
            h.push_str("</ul>");
        }
        h.push_str("</body></html>\n");
        h
    }
}

fn state_str(v: &Value) -> String {
    if v.is_null() {
        "absent".into()
    } else {
        v.to_string()
    }
}

fn op_line(o: &OpSummary) -> String {
    format!(
        "process {} {} {} ({}, events {}..{})",
        o.process,
        op_name(o.f),
        o.value,
        kind_name(o.outcome),
        o.invoke_index,
        o.complete_index.map_or("never".into(), |c| c.to_string())
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One lane per process; x is the event's rank in the window (real-time order).
fn timeline_svg(v: &Violation) -> String {
    let mut procs: Vec<u64> = v.window.iter().map(|e| e.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let n = v.window.len().max(1);
    let step = 36.0f64;
    let left = 90.0f64;
    let lane = 26.0f64;
    let width = left + step * (n as f64 + 1.0);
    let height = lane * (procs.len() as f64 + 1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">"
    );
    for (i, p) in procs.iter().enumerate() {
        let y = lane * (i as f64 + 1.0);
        let _ = writeln!(
            s,
            "<text x=\"4\" y=\"{}\">process {p}</text><line x1=\"{left}\" x2=\"{width}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/>",
            y + 4.0
        );
    }
    let lane_of = |p: u64| procs.iter().position(|&q| q == p).unwrap_or(0);
    for (i, e) in v.window.iter().enumerate() {
        if e.kind != EventKind::Invoke {
            continue;
        }
        let end = v.window[i + 1..]
            .iter()
            .position(|c| c.process == e.process && c.kind != EventKind::Invoke)
            .map(|j| i + 1 + j);
        let done = end.map(|j| &v.window[j]);
        let x1 = left + step * i as f64;
        let x2 = end.map_or(width - 4.0, |j| left + step * j as f64);
        let y = lane * (lane_of(e.process) as f64 + 1.0);
        let blocked = e.index == v.op.invoke_index && e.process == v.op.process;
        let kind = done.map_or(EventKind::Invoke, |c| c.kind);
        let color = if blocked {
            "#e33"
        } else {
            match kind {
                EventKind::Ok => "#6a6",
                EventKind::Fail => "#bbb",
                _ => "#eb3",
            }
        };
        let value = match (e.f, done) {
            (Op::Read, Some(c)) if c.kind == EventKind::Ok => c.value.to_string(),
            (Op::Read, _) => "?".into(),
            _ => e.value.to_string(),
        };
        let label = format!(
            "{} {}{}",
            op_name(e.f),
            value,
            match kind {
                EventKind::Ok => "",
                EventKind::Fail => " (fail)",
                _ => " (?)",
            }
        );
        let _ = writeln!(
            s,
            "<rect x=\"{x1}\" y=\"{}\" width=\"{}\" height=\"16\" rx=\"3\" fill=\"{color}\" opacity=\"0.8\"><title>{}</title></rect><text x=\"{}\" y=\"{}\">{}</text>",
            y - 8.0,
            (x2 - x1).max(6.0),
            esc(&format!("index {} {}", e.index, label)),
            x1 + 2.0,
            y + 4.0,
            esc(&label)
        );
    }
    s.push_str("</svg>\n<p>Bars run from invoke to completion; green ok, yellow unknown (info or never completed), grey failed, red the operation that cannot be placed. Hover for event indexes.</p>\n");
    s
}
