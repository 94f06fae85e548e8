//! The per-key search: Wing–Gong–Lowe with memoisation of (linearized set, state), as Porcupine
//! does, plus pruning that keeps it fast on histories with many concurrent and indeterminate
//! operations.
//!
//! Owns: the register model (read / write / cas / "failed cas observed a different value"), the
//! search and its bounds, the shrinking of a violation to a minimal failing window.
//! Must never: allocate without accounting for it against the memory bound, or run past the
//! deadline by more than one batch of steps.
//!
//! A configuration is the set of linearized operations and the register state. From it, the
//! candidates are the operations not yet linearized whose invoke precedes the earliest return of
//! any unlinearized completed operation. Rules, each sound by an exchange argument:
//! 1. *Identical operations*: among candidates with the same effect (same kind and values), only
//!    the one with the earliest return needs trying. Swapping two identical operations in a
//!    linearization keeps it valid when the earlier-returning one goes first; indeterminate
//!    operations return at +infinity and so are linearized in invoke order within their class.
//! 2. *Pure operations are placed without backtracking*: a candidate that is legal now and can
//!    never change the state (a read, a cas from `v` to `v`, a failed cas observing a different
//!    value) can be moved to the front of any valid completion, so it is linearized at once and
//!    never branched on. (A write of the current value is *not* pure: moved earlier, it would
//!    lose its effect at its later place.)
//! 3. *Memoisation with dominance*: a configuration already explored is not explored again, and
//!    neither is one that is *dominated* by an explored one. The memo key is the set of completed
//!    operations linearized (a bitset with an incremental Zobrist hash; the full bitset is kept
//!    to compare, so a hash collision can never give a wrong verdict) and the state; under it are
//!    the vectors of how many indeterminate operations of each class were used. Indeterminate
//!    operations never expire and a class is used in invoke order (rule 1), so a configuration
//!    that used at least as many of every class as a dead one (same completed set, same state)
//!    has no option the dead one lacked, and is dead too.
//! 4. *Pre-check*: a completed read of a value that no write or cas of the key ever produces (and
//!    that is not the initial value) is a violation found without searching.
//!
//! A read that did not complete, or an EDN `ok` read of nil, constrains nothing and is dropped.
//! A failed operation is dropped, except a failed cas under `failed_cas_observed`, which becomes
//! a completed "state differs from `from`" observation.

use super::report::{OpSummary, Violation};
use super::{canon, EventKind, Op, Options, PairedOp};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

/// Register states and values are interned per key; 0 is "absent" (JSON null).
type Val = u32;
const ABSENT: Val = 0;
/// Return position of an operation that never completed (indeterminate).
const NEVER: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Model {
    Read(Val),
    Write(Val),
    Cas(Val, Val),
    /// A failed cas observed a value different from `from`.
    Differs(Val),
}

impl Model {
    fn apply(self, s: Val) -> Option<Val> {
        match self {
            Model::Read(v) => (s == v).then_some(s),
            Model::Write(v) => Some(v),
            Model::Cas(a, b) => (s == a).then_some(b),
            Model::Differs(a) => (s != a).then_some(s),
        }
    }

    /// Never changes the state, whatever it is (a write of the current value does change it
    /// elsewhere, so it is not pure).
    fn is_pure(self) -> bool {
        match self {
            Model::Read(_) | Model::Differs(_) => true,
            Model::Cas(a, b) => a == b,
            Model::Write(_) => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct SOp {
    m: Model,
    call: u32,
    ret: u32,
    /// Index into the key's paired operations.
    src: u32,
}

/// What one key's check found.
pub(crate) struct KeyOutcome {
    pub key: Value,
    pub ops: usize,
    pub result: KeyResult,
    pub states: u64,
    pub elapsed: Duration,
    pub peak_memory: usize,
}

pub(crate) enum KeyResult {
    Linearizable,
    Violation(Box<Violation>),
    Unknown(String),
}

/// Interns values of one key.
struct Interner {
    ids: HashMap<String, Val>,
    vals: Vec<Value>,
}

impl Interner {
    fn new() -> Interner {
        Interner {
            ids: HashMap::new(),
            vals: vec![Value::Null],
        }
    }
    fn id(&mut self, v: &Value) -> Val {
        if v.is_null() {
            return ABSENT;
        }
        let k = canon(v);
        if let Some(&i) = self.ids.get(&k) {
            return i;
        }
        let i = self.vals.len() as Val;
        self.vals.push(v.clone());
        self.ids.insert(k, i);
        i
    }
    fn value(&self, v: Val) -> Value {
        self.vals.get(v as usize).cloned().unwrap_or(Value::Null)
    }
}

fn cas_parts(v: &Value) -> (&Value, &Value) {
    match v {
        Value::Array(a) if a.len() == 2 => (&a[0], &a[1]),
        // `pair` has validated cas values; treat anything else as null operands.
        _ => (&Value::Null, &Value::Null),
    }
}

/// Builds the search operations for the window of history positions `[s, e]`, as a weakening of
/// the whole history: operations invoked after `e` are left out; completions after `e` become
/// unknown (reads dropped, writes and cas indeterminate); operations that completed before `s`
/// are left out (the window then starts from any state); indeterminate operations invoked before
/// `s`, and operations invoked before `s` that complete at or after it, keep only their possible
/// effect (reads dropped, writes and cas become
/// indeterminate, invoked at `s`). `s = 0, e = MAX` is the whole history, exactly.
fn build_ops(
    paired: &[PairedOp],
    interner: &mut Interner,
    opts: &Options,
    s: usize,
    e: usize,
) -> Vec<SOp> {
    let mut out = Vec::with_capacity(paired.len());
    for (i, p) in paired.iter().enumerate() {
        let inv = p.invoke_pos;
        if inv > e {
            continue;
        }
        let mut outcome = p.outcome;
        let mut ret = p.complete_pos;
        if let Some(c) = ret {
            if c > e {
                outcome = if outcome == EventKind::Fail {
                    EventKind::Fail
                } else {
                    EventKind::Info
                };
                ret = None;
            } else if c < s && matches!(outcome, EventKind::Ok | EventKind::Fail) {
                continue;
            }
        }
        let overlapping = inv < s;
        let call = inv.max(s) as u32;
        let determinate = outcome == EventKind::Ok && !overlapping;
        let m = match (p.f, outcome) {
            (_, EventKind::Fail) => {
                if p.f == Op::Cas && opts.failed_cas_observed && !overlapping {
                    let (from, _) = cas_parts(&p.value);
                    Model::Differs(interner.id(from))
                } else {
                    continue;
                }
            }
            (Op::Read, _) => {
                if !determinate {
                    continue;
                }
                Model::Read(interner.id(&p.value))
            }
            (Op::Write, _) => Model::Write(interner.id(&p.value)),
            (Op::Cas, _) => {
                let (from, to) = cas_parts(&p.value);
                Model::Cas(interner.id(from), interner.id(to))
            }
        };
        let ret = match (determinate || matches!(m, Model::Differs(_)), ret) {
            (true, Some(c)) => c as u32,
            _ => NEVER,
        };
        out.push(SOp {
            m,
            call,
            ret,
            src: i as u32,
        });
    }
    out.sort_by_key(|o| (o.call, o.ret));
    out
}

struct Limits {
    deadline: Instant,
    max_memory: usize,
}

/// The deepest configuration the search reached.
#[derive(Clone, Debug, Default)]
struct Deepest {
    /// Linearized operations (indices into the search ops) and the state after each.
    seq: Vec<(u32, Val)>,
    state: Val,
    /// The completed operation with the earliest return that could not be linearized.
    blocked: Option<u32>,
    completed: usize,
}

enum End {
    Linearizable,
    Violation(Deepest),
    /// A bound was hit: the reason, and the deepest configuration reached so far.
    Unknown(String, Deepest),
}

#[derive(Default)]
struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
}

#[derive(PartialEq, Eq)]
struct MemoKey {
    hash: u64,
    state: Val,
    bits: Box<[u64]>,
}
impl Hash for MemoKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash ^ u64::from(self.state).wrapping_mul(0xff51_afd7_ed55_8ccd));
    }
}

struct Frame {
    mark: usize,
    cp: usize,
    rp: usize,
    cands: Vec<u32>,
    next: usize,
}

enum Expand {
    Done,
    Dead,
    Frame(Frame),
}

struct Search<'a> {
    ops: &'a [SOp],
    comp: Vec<u32>,
    by_ret: Vec<u32>,
    class_of: Vec<u32>,
    classes: Vec<Vec<u32>>,
    count: Vec<u32>,
    bits: Vec<u64>,
    /// The completed operations linearized (the memo key's set), and its Zobrist hash.
    cbits: Vec<u64>,
    z: Vec<u64>,
    hash: u64,
    state: Val,
    undo: Vec<(u32, Val)>,
    completed: usize,
    /// Dead configurations: per (completed set, state), the indeterminate-use vectors seen.
    memo: HashMap<MemoKey, Vec<Box<[u32]>>, BuildHasherDefault<IdHasher>>,
    memo_vectors: usize,
    entry_bytes: usize,
    /// Indeterminate operations may take effect any number of times (a weakening, used only to
    /// prove violations in windows).
    unlimited: bool,
    best: Deepest,
    steps: u64,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [SOp], init: Val, unlimited: bool) -> Search<'a> {
        let n = ops.len();
        let comp: Vec<u32> = (0..n as u32)
            .filter(|&i| ops[i as usize].ret != NEVER)
            .collect();
        let mut by_ret = comp.clone();
        by_ret.sort_by_key(|&i| ops[i as usize].ret);
        let mut class_of = vec![u32::MAX; n];
        let mut classes: Vec<Vec<u32>> = Vec::new();
        let mut class_ids: HashMap<Model, u32> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            if o.ret == NEVER {
                let c = *class_ids.entry(o.m).or_insert_with(|| {
                    classes.push(Vec::new());
                    (classes.len() - 1) as u32
                });
                classes[c as usize].push(i as u32);
                class_of[i] = c;
            }
        }
        let words = n.div_ceil(64).max(1);
        Search {
            ops,
            comp,
            by_ret,
            class_of,
            count: vec![0; classes.len()],
            classes,
            bits: vec![0; words],
            cbits: vec![0; words],
            z: (0..n as u64)
                .map(|i| crate::rng::Rng::new(i ^ 0x5eed).next_u64())
                .collect(),
            hash: 0,
            state: init,
            undo: Vec::new(),
            completed: 0,
            memo: HashMap::default(),
            memo_vectors: 0,
            unlimited,
            entry_bytes: std::mem::size_of::<MemoKey>() + words * 8 + 48,
            best: Deepest {
                state: init,
                ..Deepest::default()
            },
            steps: 0,
        }
    }

    fn lin(&self, i: u32) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn memory(&self) -> usize {
        self.memo.capacity() * (self.entry_bytes + 1)
            + self.memo_vectors * (self.count.len() * 4 + 16)
            + self.undo.capacity() * 8
    }

    fn apply(&mut self, i: u32, new_state: Val) {
        let c = self.class_of[i as usize];
        if c != u32::MAX && self.unlimited {
            self.undo.push((i, self.state));
            self.state = new_state;
            return;
        }
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
        if c == u32::MAX {
            self.cbits[(i / 64) as usize] |= 1 << (i % 64);
            self.hash ^= self.z[i as usize];
            self.completed += 1;
        } else {
            self.count[c as usize] += 1;
        }
        self.undo.push((i, self.state));
        self.state = new_state;
    }

    fn undo_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let Some((i, prev)) = self.undo.pop() else {
                break;
            };
            if self.unlimited && self.class_of[i as usize] != u32::MAX {
                self.state = prev;
                continue;
            }
            self.bits[(i / 64) as usize] &= !(1 << (i % 64));
            let c = self.class_of[i as usize];
            if c == u32::MAX {
                self.cbits[(i / 64) as usize] &= !(1 << (i % 64));
                self.hash ^= self.z[i as usize];
                self.completed -= 1;
            } else {
                self.count[c as usize] -= 1;
            }
            self.state = prev;
        }
    }

    fn expand(&mut self, mut cp: usize, mut rp: usize) -> Expand {
        let mut cands: Vec<u32> = Vec::new();
        loop {
            while cp < self.comp.len() && self.lin(self.comp[cp]) {
                cp += 1;
            }
            while rp < self.by_ret.len() && self.lin(self.by_ret[rp]) {
                rp += 1;
            }
            if rp == self.by_ret.len() {
                return Expand::Done;
            }
            let blocked = self.by_ret[rp];
            let minret = self.ops[blocked as usize].ret;
            cands.clear();
            let mut i = cp;
            while i < self.comp.len() && self.ops[self.comp[i] as usize].call < minret {
                if !self.lin(self.comp[i]) {
                    cands.push(self.comp[i]);
                }
                i += 1;
            }
            for (c, members) in self.classes.iter().enumerate() {
                if let Some(&m) = members.get(self.count[c] as usize) {
                    if self.ops[m as usize].call < minret {
                        cands.push(m);
                    }
                }
            }
            // Rule 2: pure candidates are placed at once.
            let mut placed = false;
            for &c in &cands {
                let m = self.ops[c as usize].m;
                // (An unlimited indeterminate pure operation is a no-op: nothing to place.)
                let unlimited = self.unlimited && self.class_of[c as usize] != u32::MAX;
                if m.is_pure() && !unlimited && m.apply(self.state).is_some() && !self.lin(c) {
                    let s = self.state;
                    self.apply(c, s);
                    placed = true;
                }
            }
            if placed {
                continue;
            }
            if self.completed > self.best.completed || self.best.blocked.is_none() {
                self.best = Deepest {
                    seq: self.undo.iter().map(|&(i, _)| (i, 0)).collect(),
                    state: self.state,
                    blocked: Some(blocked),
                    completed: self.completed,
                };
                // States after each operation, replayed from the undo log.
                let mut states: Vec<Val> = self.undo.iter().skip(1).map(|&(_, s)| s).collect();
                states.push(self.state);
                for (slot, s) in self.best.seq.iter_mut().zip(states) {
                    slot.1 = s;
                }
            }
            // Rule 3: memoisation with dominance on indeterminate operations.
            let key = MemoKey {
                hash: self.hash,
                state: self.state,
                bits: self.cbits.clone().into_boxed_slice(),
            };
            let count = &self.count;
            let seen = self.memo.entry(key).or_default();
            if seen
                .iter()
                .any(|v| v.iter().zip(count.iter()).all(|(a, b)| a <= b))
            {
                return Expand::Dead;
            }
            let before = seen.len();
            seen.retain(|v| !v.iter().zip(count.iter()).all(|(a, b)| a >= b));
            seen.push(count.clone().into_boxed_slice());
            self.memo_vectors = self.memo_vectors + seen.len() - before;
            // Legal, state-changing candidates; rule 1 keeps one per effect (earliest return).
            let mut chosen: Vec<u32> = Vec::with_capacity(cands.len());
            for &c in &cands {
                let o = self.ops[c as usize];
                if o.m.is_pure() || o.m.apply(self.state).is_none() {
                    continue;
                }
                match chosen.iter_mut().find(|x| self.ops[**x as usize].m == o.m) {
                    Some(x) => {
                        if o.ret < self.ops[*x as usize].ret {
                            *x = c;
                        }
                    }
                    None => chosen.push(c),
                }
            }
            if chosen.is_empty() {
                return Expand::Dead;
            }
            chosen.sort_by_key(|&c| (self.ops[c as usize].ret, self.ops[c as usize].call));
            return Expand::Frame(Frame {
                mark: self.undo.len(),
                cp,
                rp,
                cands: chosen,
                next: 0,
            });
        }
    }

    fn run(&mut self, lim: &Limits) -> End {
        let mut frames: Vec<Frame> = Vec::new();
        match self.expand(0, 0) {
            Expand::Done => return End::Linearizable,
            Expand::Dead => return End::Violation(std::mem::take(&mut self.best)),
            Expand::Frame(f) => frames.push(f),
        }
        loop {
            let Some(top) = frames.last_mut() else {
                return End::Violation(std::mem::take(&mut self.best));
            };
            let (mark, cp, rp) = (top.mark, top.cp, top.rp);
            let Some(&c) = top.cands.get(top.next) else {
                frames.pop();
                continue;
            };
            top.next += 1;
            self.undo_to(mark);
            let Some(ns) = self.ops[c as usize].m.apply(self.state) else {
                continue;
            };
            self.apply(c, ns);
            match self.expand(cp, rp) {
                Expand::Done => return End::Linearizable,
                Expand::Dead => {}
                Expand::Frame(f) => frames.push(f),
            }
            self.steps += 1;
            if self.steps.is_multiple_of(512) {
                if Instant::now() > lim.deadline {
                    return End::Unknown(
                        format!(
                            "time bound reached after exploring {} states",
                            self.memo_vectors
                        ),
                        std::mem::take(&mut self.best),
                    );
                }
                let mem = self.memory() + frames.len() * 64;
                if mem > lim.max_memory {
                    return End::Unknown(
                        format!(
                            "memory bound of {} MiB reached after exploring {} states",
                            lim.max_memory >> 20,
                            self.memo_vectors
                        ),
                        std::mem::take(&mut self.best),
                    );
                }
            }
        }
    }
}

/// Searches from each of the initial states; linearizable if any works.
fn search_any(ops: &[SOp], inits: &[Val], unlimited: bool, lim: &Limits, stats: &mut Stats) -> End {
    let mut first_violation = None;
    for &init in inits {
        let mut s = Search::new(ops, init, unlimited);
        let end = s.run(lim);
        stats.states += s.memo_vectors as u64;
        stats.peak_memory = stats.peak_memory.max(s.memory());
        match end {
            End::Linearizable => return End::Linearizable,
            End::Unknown(r, d) => return End::Unknown(r, d),
            End::Violation(d) => {
                if first_violation.is_none() {
                    first_violation = Some(d);
                }
            }
        }
    }
    End::Violation(first_violation.unwrap_or_default())
}

#[derive(Default)]
struct Stats {
    states: u64,
    peak_memory: usize,
}

/// Checks one key's operations (all `paired` share the key).
pub(crate) fn check_key(
    history: &[super::Event],
    paired: &[PairedOp],
    opts: &Options,
) -> KeyOutcome {
    let started = Instant::now();
    let key = paired.first().map(|p| p.key.clone()).unwrap_or(Value::Null);
    let budget = opts.max_time_per_key;
    let mut interner = Interner::new();
    let init = opts.initial.as_ref().map_or(ABSENT, |v| interner.id(v));
    let ops = build_ops(paired, &mut interner, opts, 0, usize::MAX);
    let mut stats = Stats::default();
    let done = |result: KeyResult, stats: Stats| KeyOutcome {
        key: key.clone(),
        ops: paired.len(),
        result,
        states: stats.states,
        elapsed: started.elapsed(),
        peak_memory: stats.peak_memory,
    };

    // Rule 4: a read of a value nothing produces.
    let mut produced: HashSet<Val> = HashSet::from([init]);
    for o in &ops {
        match o.m {
            Model::Write(v) | Model::Cas(_, v) => {
                produced.insert(v);
            }
            _ => {}
        }
    }
    if let Some(bad) = ops
        .iter()
        .find(|o| matches!(o.m, Model::Read(v) if !produced.contains(&v)))
    {
        let p = &paired[bad.src as usize];
        let op = summary(history, p, None);
        let window = op_events(history, p);
        let what = if p.value.is_null() {
            "the key absent, but it is never absent".to_string()
        } else {
            format!("{}, a value no write or cas of this key produces", p.value)
        };
        let v = Violation {
            key: key.clone(),
            explanation: format!(
                "read invoked at index {} (process {}) observed {what}",
                op.invoke_index, op.process
            ),
            op,
            state: Value::Null,
            state_known: false,
            prefix: Vec::new(),
            window,
            // Only from the initial state: the read would be fine from a state holding its value.
            window_from_any_state: false,
        };
        return done(KeyResult::Violation(Box::new(v)), stats);
    }

    // Phases: a short whole-history search; if it cannot decide, local windows around where it
    // got stuck (violations are usually local, and a failing window is a proof); then the
    // whole-history search again with most of the bound, and windows once more. The last
    // eighth of the bound is for shrinking a violation's window.
    let phases: [(bool, Duration); 4] = [
        (true, (budget / 16).min(Duration::from_millis(250))),
        (false, budget / 4),
        (true, budget * 5 / 8),
        (false, budget * 7 / 8),
    ];
    let mut outcome = None;
    let mut last_reason = String::new();
    let mut deepest = Deepest::default();
    for (whole, until) in phases {
        let lim = Limits {
            deadline: started + until,
            max_memory: opts.max_memory_per_key,
        };
        if whole {
            match search_any(&ops, &[init], false, &lim, &mut stats) {
                End::Linearizable => return done(KeyResult::Linearizable, stats),
                End::Violation(d) => {
                    outcome = Some((d, None));
                    break;
                }
                End::Unknown(reason, d) => {
                    last_reason = reason;
                    deepest = d;
                }
            }
        } else if let Some(w) = probe_windows(
            paired,
            &ops,
            &deepest,
            &mut interner,
            opts,
            &lim,
            &mut stats,
        ) {
            outcome = Some((std::mem::take(&mut deepest), Some(w)));
            break;
        }
    }
    let Some((d, known)) = outcome else {
        return done(KeyResult::Unknown(last_reason), stats);
    };
    let v = explain(
        history,
        paired,
        &ops,
        &d,
        known,
        &mut interner,
        opts,
        init,
        &mut stats,
        &key,
        started + budget,
    );
    done(KeyResult::Violation(Box::new(v)), stats)
}

/// When the whole-history search cannot decide in time, a violation is usually local: look at
/// windows ending where the search got stuck (the return of the operation it could not place),
/// growing backwards, each checked from *any* starting state and with every unknown operation
/// allowed to take effect any number of times. A window that fails even so is a proof (it is a
/// weakening of the whole history); one that passes proves nothing.
fn probe_windows(
    paired: &[PairedOp],
    ops: &[SOp],
    d: &Deepest,
    interner: &mut Interner,
    opts: &Options,
    lim: &Limits,
    stats: &mut Stats,
) -> Option<(usize, usize)> {
    let blocked = ops[d.blocked? as usize];
    let blocked_op = &paired[blocked.src as usize];
    let end = blocked_op.complete_pos?;
    let mut starts: Vec<usize> = paired
        .iter()
        .map(|p| p.invoke_pos)
        .filter(|&p| p <= blocked_op.invoke_pos)
        .collect();
    starts.sort_unstable();
    let mut k = 4usize;
    loop {
        let s = starts[starts.len().saturating_sub(k)];
        let w = build_ops(paired, interner, opts, s, end);
        let inits: Vec<Val> = (0..interner.vals.len() as Val).collect();
        match search_any(&w, &inits, true, lim, stats) {
            End::Violation(_) => return Some((s, end)),
            End::Unknown(..) => return None,
            End::Linearizable => {}
        }
        if k >= starts.len() {
            return None;
        }
        k *= 2;
    }
}

fn summary(history: &[super::Event], p: &PairedOp, state_after: Option<Value>) -> OpSummary {
    OpSummary {
        process: p.process,
        f: p.f,
        outcome: p.outcome,
        value: p.value.clone(),
        invoke_index: history.get(p.invoke_pos).map_or(0, |e| e.index),
        complete_index: p.complete_pos.and_then(|c| history.get(c)).map(|e| e.index),
        state_after,
    }
}

fn op_events(history: &[super::Event], p: &PairedOp) -> Vec<super::Event> {
    let mut v: Vec<super::Event> = history.get(p.invoke_pos).cloned().into_iter().collect();
    if let Some(e) = p.complete_pos.and_then(|c| history.get(c)) {
        v.push(e.clone());
    }
    v
}

/// Turns the deepest configuration into a report and shrinks the failing window: first the
/// shortest failing prefix (binary search on its end; later completions become unknown), then
/// the latest start from which the window fails from *any* state (binary search again). Each
/// step is a weakening of the whole history, so the window's failure proves the violation on
/// its own. Shrinking stops at the deadline and keeps the best window found.
#[allow(clippy::too_many_arguments)]
fn explain(
    history: &[super::Event],
    paired: &[PairedOp],
    ops: &[SOp],
    d: &Deepest,
    known: Option<(usize, usize)>,
    interner: &mut Interner,
    opts: &Options,
    init: Val,
    stats: &mut Stats,
    key: &Value,
    deadline: Instant,
) -> Violation {
    // A quarter of the key's time bound, at most, goes to shrinking.
    let lim = Limits {
        deadline: deadline.min(Instant::now() + opts.max_time_per_key / 4),
        max_memory: opts.max_memory_per_key,
    };
    let blocked = d.blocked.map(|b| ops[b as usize]);
    let prefix: Vec<OpSummary> = d
        .seq
        .iter()
        .map(|&(i, s)| {
            summary(
                history,
                &paired[ops[i as usize].src as usize],
                Some(interner.value(s)),
            )
        })
        .collect();
    let op = blocked.map(|b| summary(history, &paired[b.src as usize], None));

    // Shortest failing prefix: ends at some completion position.
    let mut ends: Vec<usize> = paired.iter().filter_map(|p| p.complete_pos).collect();
    ends.sort_unstable();
    let fails = |s: usize, e: usize, any: bool, interner: &mut Interner, stats: &mut Stats| {
        let w = build_ops(paired, interner, opts, s, e);
        let inits: Vec<Val> = if any {
            (0..interner.vals.len() as Val).collect()
        } else {
            vec![init]
        };
        match search_any(&w, &inits, any, &lim, stats) {
            End::Violation(_) => Some(true),
            End::Linearizable => Some(false),
            End::Unknown(..) => None,
        }
    };
    let mut end = usize::MAX;
    let (mut lo, mut hi) = (0usize, ends.len());
    if let Some((_, e)) = known {
        end = e;
        hi = lo;
    }
    // Invariant: prefix to ends[hi] (or the whole history when hi == len) fails.
    while lo < hi {
        let mid = (lo + hi) / 2;
        match fails(0, ends[mid], false, interner, stats) {
            Some(true) => hi = mid,
            Some(false) => lo = mid + 1,
            None => break,
        }
    }
    if known.is_none() && hi < ends.len() {
        end = ends[hi];
    }
    let mut start = 0usize;
    let mut any_state = false;
    let known_start = known.map(|(s, _)| s);
    if known_start.is_some() || fails(0, end, true, interner, stats) == Some(true) {
        any_state = true;
        let mut starts: Vec<usize> = paired
            .iter()
            .map(|p| p.invoke_pos)
            .filter(|&p| p <= end && p >= known_start.unwrap_or(0))
            .collect();
        starts.sort_unstable();
        // Invariant: the window from starts[lo] fails from any state.
        let (mut lo, mut hi) = (0usize, starts.len().saturating_sub(1));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            match fails(starts[mid], end, true, interner, stats) {
                Some(true) => lo = mid,
                Some(false) => hi = mid - 1,
                None => break,
            }
        }
        start = starts.get(lo).copied().unwrap_or(0);
    }
    // The window's events: every event of this key's operations that take part in it.
    let mut window: Vec<super::Event> = Vec::new();
    for p in paired {
        if p.invoke_pos > end {
            continue;
        }
        // Operations that constrain nothing are left out of the window.
        let observed_fail = p.f == Op::Cas && opts.failed_cas_observed;
        if (p.outcome == EventKind::Fail && !observed_fail)
            || (p.f == Op::Read && p.outcome != EventKind::Ok)
        {
            continue;
        }
        let determinate = matches!(p.outcome, EventKind::Ok | EventKind::Fail);
        if determinate && p.complete_pos.is_some_and(|c| c < start) {
            continue;
        }
        window.push(history[p.invoke_pos].clone());
        if let Some(c) = p.complete_pos.filter(|&c| c <= end) {
            window.push(history[c].clone());
        }
    }
    window.sort_by_key(|e| e.index);

    let state = interner.value(d.state);
    let explanation = match &op {
        Some(o) => format!(
            "no order of the operations lets the {} invoked at index {} (process {}{}) take \
             effect before it returned; the longest linearizable prefix ({} operations) leaves \
             the key {}",
            super::op_name(o.f),
            o.invoke_index,
            o.process,
            if o.f == Op::Read {
                format!(", read {}", o.value)
            } else {
                format!(", value {}", o.value)
            },
            prefix.len(),
            if state.is_null() {
                "absent".to_string()
            } else {
                format!("at {state}")
            }
        ),
        None => "no linearization exists".to_string(),
    };
    Violation {
        key: key.clone(),
        op: op.unwrap_or(OpSummary {
            process: 0,
            f: Op::Read,
            outcome: EventKind::Invoke,
            value: Value::Null,
            invoke_index: 0,
            complete_index: None,
            state_after: None,
        }),
        state,
        state_known: true,
        prefix,
        window,
        window_from_any_state: any_state,
        explanation,
    }
}
