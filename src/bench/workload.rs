//! Maelstrom's lin-kv workload: client threads, the operation mix, the global rate, and the
//! history they record.
//!
//! Owns: per-key groups of 2×nodes client threads (each bound to one node), the op mix (half
//! reads, a quarter writes, a quarter cas; values 0..4), keys moving on after `per_key_limit`
//! ops, the global rate, the client timeout, and how each answer is recorded: `ok`; a read
//! answered 20 as an `ok` read of `null`; a definite error as `fail`; a timeout or indefinite
//! error as `info` for write/cas (the process then retires, as in Jepsen) and `fail` for reads.
//! Must never: record anything the node did not really answer, or a time other than the real one.

use super::cluster::{Client, Cluster, Reply};
use crate::maelstrom::code;
use crate::rng::Rng;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The history's event, its kinds and its operations are the checker's own types: one event
/// type for the bench, the simulator and the checker. (`Kind` and `F` are this module's short
/// names for them.)
pub use crate::check::{Event, EventKind as Kind, Op as F};

/// Who issued an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// Maelstrom's lin-kv clients.
    Workload,
    /// The bench's availability probes: one read of key 0 per node every probe interval, with
    /// a short timeout, so "serving again" is seen within one interval.
    Probe,
    /// The final phase: recovery probes and the read-back of every key.
    Final,
}

/// One completed operation, with what the history does not carry (node, latency, error).
#[derive(Clone, Debug)]
pub struct OpRecord {
    pub process: u64,
    pub node: usize,
    pub f: F,
    pub key: u64,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Kind,
    /// Error code, or None; `timeout` is recorded as `timed_out`.
    pub error: Option<u64>,
    pub timed_out: bool,
    /// A write or cas that was acknowledged.
    pub acked_write: bool,
    /// Which part of the run issued it.
    pub tag: Tag,
    /// What an `ok` read returned (`null` = absent).
    pub read_value: Option<Value>,
}

/// The history under construction; events are numbered and timed under one lock, so index
/// order is real-time order.
pub struct Recorder {
    start: Instant,
    inner: Mutex<(Vec<Event>, Vec<OpRecord>)>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            inner: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Event>, Vec<OpRecord>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn invoke(&self, process: u64, f: F, key: u64, value: Value) -> u64 {
        let mut g = self.lock();
        let time = self.now_ns();
        let index = g.0.len() as u64;
        g.0.push(Event::new(
            index,
            time,
            process,
            Kind::Invoke,
            f,
            key,
            value,
        ));
        time
    }

    fn complete(&self, mut rec: OpRecord, value: Value) {
        let mut g = self.lock();
        let time = self.now_ns();
        rec.complete_ns = time;
        if rec.f == F::Read && rec.outcome == Kind::Ok {
            rec.read_value = Some(value.clone());
        }
        let index = g.0.len() as u64;
        g.0.push(Event::new(
            index,
            time,
            rec.process,
            rec.outcome,
            rec.f,
            rec.key,
            value,
        ));
        g.1.push(rec);
    }

    pub fn snapshot(&self) -> (Vec<Event>, Vec<OpRecord>) {
        let g = self.lock();
        (g.0.clone(), g.1.clone())
    }

    /// When the first op through `node` invoked at or after `since_ns` was served (`ok`, or a
    /// definite answer about the data), if one was yet.
    pub fn first_served(&self, node: usize, since_ns: u64) -> Option<u64> {
        let g = self.lock();
        // Ops are stored as they complete: an op invoked after `since_ns` completed after it too.
        g.1.iter()
            .rev()
            .take_while(|o| o.complete_ns >= since_ns)
            .filter(|o| o.node == node && o.invoke_ns >= since_ns && super::report::served(o))
            .map(|o| o.complete_ns)
            .min()
    }

    pub fn op_count(&self) -> (u64, u64, u64, u64) {
        let g = self.lock();
        let mut c = (0, 0, 0, 0);
        for r in g.1.iter().filter(|r| r.tag == Tag::Workload) {
            c.3 += 1;
            match r.outcome {
                Kind::Ok => c.0 += 1,
                Kind::Fail => c.1 += 1,
                Kind::Info => c.2 += 1,
                Kind::Invoke => {}
            }
        }
        c
    }
}

/// Workload parameters.
#[derive(Clone, Debug)]
pub struct Params {
    pub concurrency: usize,
    pub group_size: usize,
    /// Ops per second over all clients; 0 = as fast as the clients can go.
    pub rate: f64,
    pub per_key_limit: u64,
    pub timeout: Duration,
}

/// State shared by all client threads.
pub struct Workload<'a> {
    pub cluster: &'a Cluster,
    pub rec: &'a Recorder,
    pub params: Params,
    pub stop: AtomicBool,
    next_key: AtomicU64,
    next_slot: Mutex<Instant>,
    groups: Vec<Mutex<(u64, u64)>>,
    pub max_key: AtomicU64,
}

impl<'a> Workload<'a> {
    pub fn new(cluster: &'a Cluster, rec: &'a Recorder, params: Params) -> Workload<'a> {
        let ngroups = (params.concurrency / params.group_size.max(1)).max(1);
        Workload {
            cluster,
            rec,
            stop: AtomicBool::new(false),
            next_key: AtomicU64::new(ngroups as u64),
            next_slot: Mutex::new(Instant::now()),
            groups: (0..ngroups as u64).map(|k| Mutex::new((k, 0))).collect(),
            max_key: AtomicU64::new(ngroups as u64 - 1),
            params,
        }
    }

    /// The key this group works on now, moving the group on after `per_key_limit` ops.
    fn key_for(&self, group: usize) -> u64 {
        let mut g = self.groups[group].lock().unwrap_or_else(|p| p.into_inner());
        if g.1 >= self.params.per_key_limit {
            g.0 = self.next_key.fetch_add(1, Ordering::Relaxed);
            g.1 = 0;
            self.max_key.fetch_max(g.0, Ordering::Relaxed);
        }
        g.1 += 1;
        g.0
    }

    /// Waits for this thread's next slot under the global rate (Jepsen's stagger: uniform gaps
    /// in [0, 2/rate)). Returns false if the run stopped meanwhile.
    fn pace(&self, rng: &mut Rng) -> bool {
        if self.params.rate <= 0.0 {
            return !self.stop.load(Ordering::Relaxed);
        }
        let gap = Duration::from_secs_f64(rng.unit() * 2.0 / self.params.rate);
        let at = {
            let mut s = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            *s = (*s).max(now) + gap;
            *s
        };
        while Instant::now() < at {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep((at - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.stop.load(Ordering::Relaxed)
    }

    /// An availability probe on node `node` until `stop`: a read of key 0 every `every`, timing
    /// out after `timeout` (a read that times out is recorded `fail`, so probes never weaken
    /// the check).
    pub fn run_probe(&self, node: usize, first_process: u64, every: Duration, timeout: Duration) {
        let mut client = self.cluster.client();
        let mut process = first_process;
        while !self.stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            self.op(
                &mut client,
                process,
                node,
                F::Read,
                0,
                Value::Null,
                Tag::Probe,
                timeout,
            );
            process += 1 << 20;
            let spent = t0.elapsed();
            if spent < every {
                std::thread::sleep(every - spent);
            }
        }
    }

    /// One client thread: worker `w` of `concurrency`, until `stop`.
    pub fn run_worker(&self, w: usize, mut rng: Rng) {
        let n = self.cluster.node_count();
        let group = (w / self.params.group_size.max(1)).min(self.groups.len() - 1);
        let node = w % n;
        let mut process = w as u64;
        let mut client = self.cluster.client();
        while self.pace(&mut rng) {
            let key = self.key_for(group);
            let r = rng.below(4);
            let (f, value) = match r {
                0 | 1 => (F::Read, Value::Null),
                2 => (F::Write, json!(rng.below(5))),
                _ => (F::Cas, json!([rng.below(5), rng.below(5)])),
            };
            let outcome = self.op(
                &mut client,
                process,
                node,
                f,
                key,
                value,
                Tag::Workload,
                self.params.timeout,
            );
            if outcome == Kind::Info {
                // Jepsen: a crashed process never returns; a fresh one takes its place.
                process += self.params.concurrency as u64;
                client = self.cluster.client();
            }
        }
    }

    /// Performs and records one operation; returns its outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn op(
        &self,
        client: &mut Client,
        process: u64,
        node: usize,
        f: F,
        key: u64,
        value: Value,
        tag: Tag,
        timeout: Duration,
    ) -> Kind {
        let mut body = Map::new();
        match f {
            F::Read => {
                body.insert("type".into(), "read".into());
                body.insert("key".into(), key.into());
            }
            F::Write => {
                body.insert("type".into(), "write".into());
                body.insert("key".into(), key.into());
                body.insert("value".into(), value.clone());
            }
            F::Cas => {
                body.insert("type".into(), "cas".into());
                body.insert("key".into(), key.into());
                body.insert("from".into(), value.get(0).cloned().unwrap_or(Value::Null));
                body.insert("to".into(), value.get(1).cloned().unwrap_or(Value::Null));
            }
        }
        let invoke_ns = self.rec.invoke(process, f, key, value.clone());
        let reply = client.call(node, body, timeout);
        let (outcome, out_value, error, timed_out) = classify(f, &value, reply);
        let rec = OpRecord {
            process,
            node,
            f,
            key,
            invoke_ns,
            complete_ns: 0,
            outcome,
            error,
            timed_out,
            acked_write: outcome == Kind::Ok && f != F::Read,
            tag,
            read_value: None,
        };
        self.rec.complete(rec, out_value);
        outcome
    }
}

/// How an answer is recorded: see the module docs.
fn classify(f: F, value: &Value, reply: Reply) -> (Kind, Value, Option<u64>, bool) {
    let indefinite = if f == F::Read { Kind::Fail } else { Kind::Info };
    let body = match reply {
        Reply::Timeout => return (indefinite, value.clone(), None, true),
        Reply::Body(b) => b,
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
    match (f, kind) {
        (F::Read, "read_ok") => (
            Kind::Ok,
            body.get("value").cloned().unwrap_or(Value::Null),
            None,
            false,
        ),
        (F::Write, "write_ok") | (F::Cas, "cas_ok") => (Kind::Ok, value.clone(), None, false),
        (_, "error") => {
            let c = body.get("code").and_then(Value::as_u64);
            match c {
                Some(code::KEY_DOES_NOT_EXIST) if f == F::Read => (Kind::Ok, Value::Null, c, false),
                Some(c) if code::is_definite(c) => (Kind::Fail, value.clone(), Some(c), false),
                _ => (indefinite, value.clone(), c, false),
            }
        }
        // A reply of the wrong type says nothing certain about a write.
        _ => (indefinite, value.clone(), None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Reply {
        match v {
            Value::Object(m) => Reply::Body(m),
            _ => Reply::Timeout,
        }
    }

    #[test]
    fn answers_are_recorded_as_maelstrom_and_design_say() {
        let w = json!(3);
        let cas = json!([1, 2]);
        let k = |f, v: &Value, r| classify(f, v, r).0;
        assert_eq!(k(F::Read, &Value::Null, Reply::Timeout), Kind::Fail);
        assert_eq!(k(F::Write, &w, Reply::Timeout), Kind::Info);
        assert_eq!(k(F::Cas, &cas, Reply::Timeout), Kind::Info);
        let r = classify(
            F::Read,
            &Value::Null,
            body(json!({"type":"error","code":20})),
        );
        assert_eq!((r.0, r.1), (Kind::Ok, Value::Null), "20 on read = ok null");
        let r = classify(
            F::Read,
            &Value::Null,
            body(json!({"type":"read_ok","value":4})),
        );
        assert_eq!((r.0, r.1), (Kind::Ok, json!(4)));
        assert_eq!(
            k(F::Cas, &cas, body(json!({"type":"error","code":22}))),
            Kind::Fail
        );
        assert_eq!(
            k(F::Write, &w, body(json!({"type":"error","code":11}))),
            Kind::Fail
        );
        assert_eq!(
            k(F::Write, &w, body(json!({"type":"error","code":13}))),
            Kind::Info
        );
        assert_eq!(
            k(F::Cas, &cas, body(json!({"type":"error","code":0}))),
            Kind::Info
        );
        assert_eq!(k(F::Write, &w, body(json!({"type":"write_ok"}))), Kind::Ok);
        assert_eq!(
            k(F::Write, &w, body(json!({"type":"cas_ok"}))),
            Kind::Info,
            "a reply of the wrong type is uncertain"
        );
    }
}
