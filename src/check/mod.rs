//! Linearizability checker.
//!
//! Owns: history parsing (canonical JSON Lines, JSON array, Jepsen/Knossos EDN), the per-key
//! search, verdicts and reports (text, JSON, HTML) and the `raftkv check` command.
//! Must never: depend on the node, the core, the simulator or the Maelstrom protocol (the node's
//! `verify_linearizability` adapter calls [`parse_json_array`], [`validate`] and [`check`]);
//! panic on any input; hang (every key's search is bounded in time and memory and answers
//! `unknown` with the reason).
//!
//! Semantics: events are in real-time order (their position in the slice is their
//! time order); a `fail` did not happen; an `info`, or an invoke with no completion, may take
//! effect at any point after its invoke, or never; an `ok` read of `null` observed the key
//! absent. A JSON `null` written or used as a cas operand is the same as "absent". Options: the
//! initial value of every key, and "a failed cas observed a value different from `from`".
//!
//! The search is per key (P-compositionality), keys in parallel on scoped std threads; see
//! [`search`] for the algorithm and the pruning rules with their soundness arguments.

mod cli;
pub mod gen;
mod parse;
mod report;
mod search;

pub use cli::cli;
pub use parse::{parse_auto, parse_edn, parse_json_array, parse_jsonl, ParseError};
pub use report::{KeyStats, OpSummary, Report, Verdict, Violation};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What an event says about its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The client sent the operation.
    Invoke,
    /// It took effect (a read's `value` is what it read; `null` = absent).
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Unknown: it may have taken effect, at any time after its invoke, or never.
    Info,
}

/// The lin-kv operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
    Cas,
}

/// One history event, exactly one canonical JSON line of a history:
/// `{"index":0,"time":1200,"process":3,"type":"invoke","f":"cas","key":7,"value":[1,4]}`.
/// Extra fields on input (an `error`, a node name) are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub index: u64,
    /// Nanoseconds since the start of the test (informational; order is the slice order).
    pub time: u64,
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub f: Op,
    pub key: Value,
    /// Read invoke: `null`; read ok: the value read (`null` = absent); write: the value;
    /// cas: `[from, to]`.
    pub value: Value,
}

impl Event {
    /// Builds an event; `value` as [`Event::value`] describes.
    pub fn new(
        index: u64,
        time: u64,
        process: u64,
        kind: EventKind,
        f: Op,
        key: impl Into<Value>,
        value: impl Into<Value>,
    ) -> Event {
        Event {
            index,
            time,
            process,
            kind,
            f,
            key: key.into(),
            value: value.into(),
        }
    }

    /// The canonical JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising plain data into a String cannot fail; fall back to a JSON comment-free
        // placeholder rather than panic should serde ever refuse.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Builds a history one event at a time, numbering `index` automatically. Handy for the
/// simulator, the bench and tests:
/// `let mut h = History::new(); h.invoke(1, 0, Op::Write, "k", 3); h.ok(2, 0, Op::Write, "k", 3);`
#[derive(Clone, Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }
    /// Appends an event with the next index.
    pub fn push(
        &mut self,
        time: u64,
        process: u64,
        kind: EventKind,
        f: Op,
        key: impl Into<Value>,
        value: impl Into<Value>,
    ) -> &mut Self {
        let index = self.events.len() as u64;
        self.events
            .push(Event::new(index, time, process, kind, f, key, value));
        self
    }
    pub fn invoke(
        &mut self,
        time: u64,
        process: u64,
        f: Op,
        key: impl Into<Value>,
        value: impl Into<Value>,
    ) -> &mut Self {
        self.push(time, process, EventKind::Invoke, f, key, value)
    }
    pub fn ok(
        &mut self,
        time: u64,
        process: u64,
        f: Op,
        key: impl Into<Value>,
        value: impl Into<Value>,
    ) -> &mut Self {
        self.push(time, process, EventKind::Ok, f, key, value)
    }
    pub fn fail(
        &mut self,
        time: u64,
        process: u64,
        f: Op,
        key: impl Into<Value>,
        value: impl Into<Value>,
    ) -> &mut Self {
        self.push(time, process, EventKind::Fail, f, key, value)
    }
    pub fn info(
        &mut self,
        time: u64,
        process: u64,
        f: Op,
        key: impl Into<Value>,
        value: impl Into<Value>,
    ) -> &mut Self {
        self.push(time, process, EventKind::Info, f, key, value)
    }
}

/// Checker options. `Default`: every key starts absent, a failed cas did not happen, 10 s and
/// 512 MiB per key.
#[derive(Clone, Debug)]
pub struct Options {
    /// Initial value of every key; `None` = absent.
    pub initial: Option<Value>,
    /// A cas that returned `fail` observed a value different from its `from` (etcd's semantics);
    /// otherwise a failed cas simply did not happen.
    pub failed_cas_observed: bool,
    /// Time bound for one key's search; beyond it the key is `unknown`.
    pub max_time_per_key: Duration,
    /// Memory bound (bytes, estimated from the memo table and stack) for one key's search.
    pub max_memory_per_key: usize,
    /// Worker threads; 0 = the machine's available parallelism.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            initial: None,
            failed_cas_observed: false,
            max_time_per_key: Duration::from_secs(10),
            max_memory_per_key: 512 << 20,
            threads: 0,
        }
    }
}

/// A history that does not make sense (not a parse error: the events are well-formed but do not
/// pair up). Names the event by its `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryError {
    pub index: u64,
    pub message: String,
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event index {}: {}", self.index, self.message)
    }
}

impl std::error::Error for HistoryError {}

/// One operation, invoke paired with its completion.
#[derive(Clone, Debug)]
pub(crate) struct PairedOp {
    /// Position of the invoke / completion in the history slice.
    pub invoke_pos: usize,
    pub complete_pos: Option<usize>,
    /// `Ok`, `Fail`, `Info`, or `Invoke` when the operation never completed.
    pub outcome: EventKind,
    pub process: u64,
    pub f: Op,
    pub key: Value,
    /// Invoke value for write and cas; for a read, the completion's value.
    pub value: Value,
}

/// Checks that events pair up (each completion follows an invoke of the same process, key and
/// function; no process has two operations in flight; cas values are `[from, to]`), and returns
/// the paired operations in invoke order.
pub(crate) fn pair(history: &[Event]) -> Result<Vec<PairedOp>, HistoryError> {
    let mut ops: Vec<PairedOp> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for (pos, e) in history.iter().enumerate() {
        let err = |message: String| HistoryError {
            index: e.index,
            message,
        };
        if e.f == Op::Cas {
            let ok = matches!(&e.value, Value::Array(a) if a.len() == 2);
            if !ok {
                return Err(err(format!(
                    "cas value must be [from, to], found {}",
                    e.value
                )));
            }
        }
        match e.kind {
            EventKind::Invoke => {
                if let Some(&prev) = open.get(&e.process) {
                    return Err(err(format!(
                        "process {} invokes a new operation while its {} invoked at index {} is \
                         still in flight",
                        e.process,
                        op_name(ops[prev].f),
                        history[ops[prev].invoke_pos].index
                    )));
                }
                open.insert(e.process, ops.len());
                ops.push(PairedOp {
                    invoke_pos: pos,
                    complete_pos: None,
                    outcome: EventKind::Invoke,
                    process: e.process,
                    f: e.f,
                    key: e.key.clone(),
                    value: if e.f == Op::Read {
                        Value::Null
                    } else {
                        e.value.clone()
                    },
                });
            }
            kind => {
                let Some(i) = open.remove(&e.process) else {
                    return Err(err(format!(
                        "{} of process {} has no preceding invoke",
                        kind_name(kind),
                        e.process
                    )));
                };
                let op = &mut ops[i];
                if op.f != e.f {
                    return Err(err(format!(
                        "completion is a {} but process {} invoked a {}",
                        op_name(e.f),
                        e.process,
                        op_name(op.f)
                    )));
                }
                if op.key != e.key {
                    return Err(err(format!(
                        "completion names key {} but process {} invoked on key {}",
                        e.key, e.process, op.key
                    )));
                }
                op.complete_pos = Some(pos);
                op.outcome = kind;
                if op.f == Op::Read {
                    op.value = if kind == EventKind::Ok {
                        e.value.clone()
                    } else {
                        Value::Null
                    };
                }
            }
        }
    }
    Ok(ops)
}

/// Validates a history without checking it: the same errors [`check`] would report as `unknown`.
pub fn validate(history: &[Event]) -> Result<(), HistoryError> {
    pair(history).map(|_| ())
}

pub(crate) fn op_name(f: Op) -> &'static str {
    match f {
        Op::Read => "read",
        Op::Write => "write",
        Op::Cas => "cas",
    }
}

pub(crate) fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Invoke => "invoke",
        EventKind::Ok => "ok",
        EventKind::Fail => "fail",
        EventKind::Info => "info",
    }
}

/// A canonical string for a JSON value (object keys sorted), used to group keys and intern values.
pub(crate) fn canon(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Checks a history. Never panics and never runs longer than the per-key bounds (plus the time
/// to shrink a violation's window, itself bounded); a history whose events do not pair up gets
/// `Unknown` naming the bad event.
pub fn check(history: &[Event], opts: &Options) -> Report {
    let started = Instant::now();
    let ops = match pair(history) {
        Ok(ops) => ops,
        Err(e) => {
            return Report::invalid(format!("history does not pair up: {e}"), history.len());
        }
    };
    // Group by key, in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<PairedOp>> = HashMap::new();
    for op in ops {
        let k = canon(&op.key);
        groups
            .entry(k.clone())
            .or_insert_with(|| {
                order.push(k);
                Vec::new()
            })
            .push(op);
    }
    let mut work: Vec<(usize, Vec<PairedOp>)> = order
        .iter()
        .enumerate()
        .filter_map(|(i, k)| groups.remove(k).map(|g| (i, g)))
        .collect();
    // Largest keys first so the parallel tail is short.
    work.sort_by_key(|(_, g)| std::cmp::Reverse(g.len()));
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    }
    .clamp(1, work.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, search::KeyOutcome)> = Vec::with_capacity(work.len());
    if threads == 1 {
        for (i, g) in &work {
            results.push((*i, search::check_key(history, g, opts)));
        }
    } else {
        let collected = std::sync::Mutex::new(Vec::with_capacity(work.len()));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((i, g)) = work.get(n) else { break };
                    let out = search::check_key(history, g, opts);
                    if let Ok(mut c) = collected.lock() {
                        c.push((*i, out));
                    }
                });
            }
        });
        results = collected.into_inner().unwrap_or_default();
    }
    if results.len() != work.len() {
        // Never turn a lost key into a verdict.
        return Report::invalid(
            format!(
                "internal error: {} of {} keys were checked",
                results.len(),
                work.len()
            ),
            history.len(),
        );
    }
    results.sort_by_key(|(i, _)| *i);
    Report::from_outcomes(
        results.into_iter().map(|(_, o)| o).collect(),
        history.len(),
        started.elapsed(),
    )
}
