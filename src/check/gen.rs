//! Seeded generator of lin-kv histories from a simulated linearizable store, and a mutation that
//! makes one read impossible. Used by the checker's property tests and its benchmark.
//!
//! Owns: the simulated clients (their random choices come from the crate's seeded [`Rng`]).
//! Must never: produce a history the store did not allow (every generated history has a
//! linearization by construction: each operation takes effect at one instant between its invoke
//! and its completion, or, for an indeterminate one, at one instant after its invoke or never).

use super::{Event, EventKind, Op};
use crate::rng::Rng;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub keys: u64,
    /// Concurrent client slots (a client whose operation ends `info` is replaced by a fresh
    /// process, as Jepsen does).
    pub clients: u64,
    /// Operations in total, over all keys.
    pub ops: usize,
    /// Fraction of reads among operations.
    pub reads: f64,
    /// Fraction of writes and cas whose outcome is unknown (`info`, or no completion at all when
    /// the history ends first); about half of them take effect.
    pub indeterminate: f64,
    /// Values are drawn from `0..values` (Maelstrom uses 5).
    pub values: u64,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            seed: 1,
            keys: 1,
            clients: 5,
            ops: 200,
            reads: 0.5,
            indeterminate: 0.0,
            values: 5,
        }
    }
}

struct Pending {
    process: u64,
    f: Op,
    key: u64,
    value: Value,
    /// The result once it took effect: (kind, value for the completion).
    done: Option<(EventKind, Value)>,
    unknown: bool,
}

/// Generates a linearizable history (invokes, completions, in real-time order).
pub fn generate(cfg: &GenConfig) -> Vec<Event> {
    let mut rng = Rng::new(cfg.seed);
    let mut store: HashMap<u64, u64> = HashMap::new();
    let mut events: Vec<Event> = Vec::with_capacity(cfg.ops * 2 + 8);
    let clients = cfg.clients.max(1);
    let mut slots: Vec<Option<Pending>> = (0..clients).map(|_| None).collect();
    let mut process: Vec<u64> = (0..clients).collect();
    let mut next_process = clients;
    let mut invoked = 0usize;
    let mut step = 0u64;
    let mut push = |events: &mut Vec<Event>, p: u64, kind, f, key: u64, value: Value| {
        let index = events.len() as u64;
        step += 1;
        events.push(Event::new(
            index,
            step * 1000,
            p,
            kind,
            f,
            Value::from(key),
            value,
        ));
    };
    loop {
        let busy = slots.iter().filter(|s| s.is_some()).count();
        if invoked >= cfg.ops && busy == 0 {
            break;
        }
        let c = rng.below(clients) as usize;
        match slots[c].take() {
            None => {
                if invoked >= cfg.ops {
                    continue;
                }
                invoked += 1;
                let key = rng.below(cfg.keys.max(1));
                let (f, value) = if rng.chance(cfg.reads) {
                    (Op::Read, Value::Null)
                } else if rng.chance(0.5) {
                    (Op::Write, json!(rng.below(cfg.values)))
                } else {
                    (
                        Op::Cas,
                        json!([rng.below(cfg.values), rng.below(cfg.values)]),
                    )
                };
                let unknown = f != Op::Read && rng.chance(cfg.indeterminate);
                push(
                    &mut events,
                    process[c],
                    EventKind::Invoke,
                    f,
                    key,
                    value.clone(),
                );
                slots[c] = Some(Pending {
                    process: process[c],
                    f,
                    key,
                    value,
                    done: None,
                    unknown,
                });
            }
            Some(mut p) if p.done.is_none() => {
                // An unknown operation may end before it takes effect (it then never does).
                if p.unknown && rng.chance(0.5) {
                    push(&mut events, p.process, EventKind::Info, p.f, p.key, p.value);
                    process[c] = next_process;
                    next_process += 1;
                    continue;
                }
                let cur = store.get(&p.key).copied();
                p.done = Some(match p.f {
                    Op::Read => (EventKind::Ok, cur.map_or(Value::Null, Value::from)),
                    Op::Write => {
                        if let Some(v) = p.value.as_u64() {
                            store.insert(p.key, v);
                        }
                        (EventKind::Ok, p.value.clone())
                    }
                    Op::Cas => {
                        let from = p.value.get(0).and_then(Value::as_u64);
                        let to = p.value.get(1).and_then(Value::as_u64);
                        match (cur, from, to) {
                            (Some(c), Some(f), Some(t)) if c == f => {
                                store.insert(p.key, t);
                                (EventKind::Ok, p.value.clone())
                            }
                            _ => (EventKind::Fail, p.value.clone()),
                        }
                    }
                });
                slots[c] = Some(p);
            }
            Some(p) => {
                let (kind, value) = p.done.unwrap_or((EventKind::Ok, Value::Null));
                let kind = if p.unknown { EventKind::Info } else { kind };
                push(&mut events, p.process, kind, p.f, p.key, value);
                if p.unknown {
                    process[c] = next_process;
                    next_process += 1;
                }
            }
        }
    }
    events
}

/// Drops the completions of the last `n` unknown operations so they never complete (an invoke
/// with no completion, as at the end of a real test). Returns how many were dropped.
pub fn drop_info_completions(events: &mut Vec<Event>, n: usize) -> usize {
    let infos: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventKind::Info && e.f != Op::Read)
        .map(|(i, _)| i)
        .rev()
        .take(n)
        .collect();
    let drop: HashSet<usize> = infos.iter().copied().collect();
    let mut i = 0usize;
    events.retain(|_| {
        let keep = !drop.contains(&i);
        i += 1;
        keep
    });
    for (i, e) in events.iter_mut().enumerate() {
        e.index = i as u64;
    }
    drop.len()
}

/// Alters one `ok` read so that it returns a value it cannot have: a value that no operation of
/// that key produces before the read completes (every write or cas producing it is invoked after
/// the read returned) and that is not the initial value (absent). Such a read can only be
/// rejected by the search, not by the cheap "never written" pre-check. Returns the position of the
/// altered completion, or `None` when no read qualifies.
pub fn corrupt_read(events: &mut [Event], rng: &mut Rng) -> Option<usize> {
    // First invoke position of an operation producing each (key, value).
    let mut first_producer: HashMap<(String, String), usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind != EventKind::Invoke {
            continue;
        }
        let produced = match e.f {
            Op::Write => Some(e.value.clone()),
            Op::Cas => e.value.get(1).cloned(),
            Op::Read => None,
        };
        if let Some(v) = produced {
            first_producer
                .entry((e.key.to_string(), v.to_string()))
                .or_insert(i);
        }
    }
    let mut candidates: Vec<(usize, Value)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind != EventKind::Ok || e.f != Op::Read {
            continue;
        }
        let (key, read) = (e.key.to_string(), e.value.to_string());
        for ((k, v), &first) in &first_producer {
            if *k == key && first > i && *v != read {
                if let Ok(val) = serde_json::from_str::<Value>(v) {
                    candidates.push((i, val));
                }
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    candidates.sort_by_key(|(i, v)| (*i, v.to_string()));
    let (i, v) = candidates[rng.below(candidates.len() as u64) as usize].clone();
    events[i].value = v;
    Some(i)
}

/// Alters the first `ok` read at or after position `from` that follows a completed write of its
/// key so that it reads the key as absent (a lost write: nothing ever deletes a key, so after an
/// acknowledged write the key can never be absent again). The value *absent* is possible earlier
/// in the history, so only the search can reject it, after exploring everything before it.
/// Returns the position of the altered completion.
pub fn corrupt_read_to_absent(events: &mut [Event], from: usize) -> Option<usize> {
    let mut written: HashSet<String> = HashSet::new();
    let mut target = None;
    for (i, e) in events.iter().enumerate() {
        let key = e.key.to_string();
        if e.kind == EventKind::Ok && e.f == Op::Write {
            written.insert(key);
        } else if i >= from
            && e.kind == EventKind::Ok
            && e.f == Op::Read
            && !e.value.is_null()
            && written.contains(&key)
        {
            // The write must have completed before this read was invoked.
            let invoked = events[..i]
                .iter()
                .rposition(|x| x.process == e.process && x.kind == EventKind::Invoke);
            let acked_before = invoked.is_some_and(|inv| {
                events[..inv]
                    .iter()
                    .any(|x| x.kind == EventKind::Ok && x.f == Op::Write && x.key == e.key)
            });
            if acked_before {
                target = Some(i);
                break;
            }
        }
    }
    let i = target?;
    events[i].value = Value::Null;
    Some(i)
}
