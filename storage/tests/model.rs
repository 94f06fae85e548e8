//! Model-based test: random sequences of appends (with truncation of a conflicting suffix),
//! hard-state saves, local snapshots with compaction, received snapshots (keeping or discarding the
//! log) and reopens, each compared with an in-memory model after every step.
//!
//! `RAFTKV_MODEL_SEEDS=500 cargo test -p raftkv-storage --release --test model` runs more.

use raftkv_storage::{Entry, EntryKind, Error, HardState, SnapshotMeta, Storage, WriteBatch};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "generator bug: range({lo}, {hi})");
        lo + self.below(hi - lo + 1)
    }
}

#[derive(Default)]
struct Model {
    snap: Option<(SnapshotMeta, Vec<u8>)>,
    /// Entries after the snapshot, contiguous.
    log: Vec<Entry>,
    hs: HardState,
}

impl Model {
    fn snap_index(&self) -> u64 {
        self.snap.as_ref().map_or(0, |s| s.0.index)
    }
    fn first(&self) -> u64 {
        self.snap_index() + 1
    }
    fn last(&self) -> u64 {
        self.snap_index() + self.log.len() as u64
    }
    fn term(&self, i: u64) -> Option<u64> {
        if i == 0 {
            return Some(0);
        }
        if let Some((m, _)) = &self.snap {
            if i == m.index {
                return Some(m.term);
            }
        }
        if i < self.first() || i > self.last() {
            return None;
        }
        Some(self.log[(i - self.first()) as usize].term)
    }
    fn apply(&mut self, b: &WriteBatch) {
        if let Some((meta, data)) = &b.snapshot {
            if self.term(meta.index) == Some(meta.term) && meta.index <= self.last() {
                let drop = (meta.index + 1 - self.first()) as usize;
                self.log.drain(..drop);
            } else {
                self.log.clear();
            }
            self.snap = Some((meta.clone(), data.clone()));
        }
        if let Some(e0) = b.entries.first() {
            self.log.truncate((e0.index - self.first()) as usize);
            self.log.extend(b.entries.iter().cloned());
        }
        if let Some(hs) = b.hard_state {
            self.hs = hs;
        }
    }
}

fn entry(index: u64, term: u64, rng: &mut Rng) -> Entry {
    let len = rng.below(300) as usize;
    Entry {
        term,
        index,
        kind: if rng.below(5) == 0 {
            EntryKind::Noop
        } else {
            EntryKind::Normal
        },
        data: (0..len).map(|i| (i as u64 ^ index ^ term) as u8).collect(),
    }
}

fn compare(st: &Storage, m: &Model, rng: &mut Rng, ctx: &str) {
    assert_eq!(st.first_index(), m.first(), "{ctx}: first index");
    assert_eq!(st.last_index(), m.last(), "{ctx}: last index");
    assert_eq!(st.hard_state(), m.hs, "{ctx}: hard state");
    for i in m.first().saturating_sub(2)..=m.last() + 2 {
        assert_eq!(st.term(i).unwrap(), m.term(i), "{ctx}: term({i})");
    }
    let want: Vec<u64> = (m.first() - 1..=m.last())
        .map(|i| m.term(i).unwrap())
        .collect();
    assert_eq!(
        st.terms(m.first() - 1, m.last() + 1).unwrap(),
        want,
        "{ctx}: terms"
    );
    if !m.log.is_empty() {
        let lo = rng.range(m.first(), m.last());
        let hi = rng.range(lo, m.last()) + 1;
        let max = rng.below(2000);
        let got = st.entries(lo, hi, max).unwrap();
        let mut want = vec![];
        let mut bytes = 0;
        for i in lo..hi {
            let e = &m.log[(i - m.first()) as usize];
            bytes += e.data.len() as u64;
            if !want.is_empty() && bytes > max {
                break;
            }
            want.push(e.clone());
        }
        assert_eq!(got, want, "{ctx}: entries({lo}, {hi}, {max})");
        let all = st.entries(m.first(), m.last() + 1, u64::MAX).unwrap();
        assert_eq!(all, m.log, "{ctx}: whole log");
    }
    assert_eq!(st.load_snapshot().unwrap(), m.snap, "{ctx}: snapshot");
    assert!(matches!(
        st.entries(
            m.first().saturating_sub(1).max(1).min(m.first()),
            m.last() + 2,
            10
        ),
        Err(Error::Invalid(_))
    ));
}

fn run(seed: u64, steps: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    let mut rng = Rng(seed);
    let (mut st, rec) = Storage::open(&dir).unwrap();
    assert_eq!((rec.first_index, rec.last_index), (1, 0));
    let mut m = Model::default();
    let (mut reopens, mut truncations, mut installs, mut compactions) = (0, 0, 0, 0);
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let op = rng.below(100);
        if op < 50 {
            // Append, sometimes overwriting an uncommitted suffix in a new term.
            let lo = m.first().max(m.hs.commit + 1);
            let mut start = m.last() + 1;
            let mut hs = m.hs;
            if rng.below(4) == 0 && lo <= m.last() {
                start = rng.range(lo, m.last());
                hs.term += 1;
                hs.vote = Some(rng.below(5));
                truncations += 1;
            }
            hs.term = hs.term.max(1);
            let n = rng.range(1, 20);
            let entries: Vec<Entry> = (start..start + n)
                .map(|i| entry(i, hs.term, &mut rng))
                .collect();
            let last = start + n - 1;
            if rng.below(2) == 0 {
                hs.commit = rng.range(hs.commit, last);
            }
            let b = WriteBatch {
                snapshot: None,
                entries,
                hard_state: Some(hs),
            };
            st.persist(&b).unwrap();
            m.apply(&b);
        } else if op < 60 {
            let mut hs = m.hs;
            hs.term += rng.below(2);
            hs.vote = if rng.below(2) == 0 {
                None
            } else {
                Some(rng.below(5))
            };
            hs.commit = rng.range(hs.commit, m.last());
            let b = WriteBatch {
                hard_state: Some(hs),
                ..WriteBatch::default()
            };
            st.persist(&b).unwrap();
            m.apply(&b);
        } else if op < 72 {
            // Local snapshot at or below the commit index, compacting the log.
            if m.hs.commit >= m.first() {
                let index = rng.range(m.first(), m.hs.commit);
                let meta = SnapshotMeta {
                    index,
                    term: m.term(index).unwrap(),
                    voters: vec![1, 2, 3],
                };
                let len = if rng.below(8) == 0 {
                    (1 << 20) + 17
                } else {
                    rng.below(5000) as usize
                };
                let data: Vec<u8> = (0..len).map(|i| (i as u64 * 7 + index) as u8).collect();
                st.save_snapshot(&meta, &data).unwrap();
                m.apply(&WriteBatch {
                    snapshot: Some((meta, data)),
                    ..WriteBatch::default()
                });
                compactions += 1;
            }
        } else if op < 80 {
            // A snapshot received from a leader: matching our log (keep the suffix) or not.
            let matching = rng.below(2) == 0 && m.log.len() > 1;
            let (index, term) = if matching {
                let i = rng.range(m.first(), m.last() - 1);
                (i, m.term(i).unwrap())
            } else {
                (
                    rng.range(m.first().max(m.hs.commit + 1), m.last() + 10),
                    m.hs.term + 1,
                )
            };
            let mut hs = m.hs;
            hs.term = hs.term.max(term);
            hs.commit = hs.commit.max(index);
            let data = format!("snapshot {index}").into_bytes();
            let b = WriteBatch {
                snapshot: Some((
                    SnapshotMeta {
                        index,
                        term,
                        voters: vec![1, 2, 3],
                    },
                    data,
                )),
                entries: vec![],
                hard_state: Some(hs),
            };
            st.persist(&b).unwrap();
            m.apply(&b);
            installs += 1;
        } else if op < 85 {
            // Invalid steps are refused and change nothing.
            let gap = entry(m.last() + 2, m.hs.term, &mut rng);
            let b = WriteBatch {
                entries: vec![gap],
                ..WriteBatch::default()
            };
            assert!(
                matches!(st.persist(&b), Err(Error::Invalid(_))),
                "{ctx}: gap accepted"
            );
            if m.snap_index() > 0 {
                let old = entry(m.snap_index(), m.hs.term, &mut rng);
                let b = WriteBatch {
                    entries: vec![old],
                    ..WriteBatch::default()
                };
                assert!(
                    matches!(st.persist(&b), Err(Error::Invalid(_))),
                    "{ctx}: write below snapshot accepted"
                );
            }
        } else {
            drop(st);
            let (s, rec) = Storage::open(&dir).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            st = s;
            assert_eq!(rec.first_index, m.first(), "{ctx}: recovered first");
            assert_eq!(rec.last_index, m.last(), "{ctx}: recovered last");
            assert_eq!(rec.hard_state, m.hs, "{ctx}: recovered hard state");
            assert_eq!(
                rec.snapshot,
                m.snap.as_ref().map(|s| s.0.clone()),
                "{ctx}: recovered snapshot"
            );
            reopens += 1;
        }
        compare(&st, &m, &mut rng, &ctx);
    }
    assert!(reopens > 0 && truncations > 0 && installs > 0 && compactions > 0,
        "seed {seed}: not every kind of step ran ({reopens} {truncations} {installs} {compactions})");
}

#[test]
fn random_operations_match_the_model_across_reopens() {
    let seeds: u64 = std::env::var("RAFTKV_MODEL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    for seed in 0..seeds {
        run(seed, 120);
    }
}
