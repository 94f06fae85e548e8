//! Child process for the kill -9 test (`tests/kill.rs`): opens a data directory, then appends,
//! overwrites uncommitted suffixes, advances the commit index and takes snapshots forever,
//! printing `durable LAST TERM COMMIT` after every `persist` returns. The parent SIGKILLs it at
//! random moments and checks that everything reported durable survived.
//!
//! Must never: report a step before `persist`/`save_snapshot` has returned.
//! Entry data is a pure function of (index, term) so the parent can verify every entry.

use raftkv_storage::{Entry, EntryKind, HardState, SnapshotMeta, Storage, WriteBatch};
use std::io::Write;

fn data(index: u64, term: u64) -> Vec<u8> {
    let mut d = format!("{{\"op\":\"write\",\"key\":{index},\"value\":{term}}}").into_bytes();
    d.resize(100, b' ');
    d
}

fn snapshot_data(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize + i) as u8).collect()
}

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
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: raftkv-storage-crash-child DIR SEED");
        std::process::exit(2);
    }
    let dir = std::path::PathBuf::from(&args[1]);
    let Ok(seed) = args[2].parse::<u64>() else {
        eprintln!("seed must be an integer: {}", args[2]);
        std::process::exit(2);
    };
    let (mut st, rec) = match Storage::open(&dir) {
        Ok(x) => x,
        Err(e) => {
            println!("error {e}");
            std::process::exit(1);
        }
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    let say = |out: &mut std::io::StdoutLock, line: String| {
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            std::process::exit(0);
        }
    };
    say(
        &mut out,
        format!("open {} {}", rec.last_index, rec.hard_state.commit),
    );
    let mut rng = Rng(seed);
    let mut hs = rec.hard_state;
    let mut last = rec.last_index;
    let mut last_term = st.term(last).ok().flatten().unwrap_or(0).max(hs.term);
    hs.term = hs.term.max(last_term);
    loop {
        let step = rng.below(100);
        if step < 4 && hs.commit >= st.first_index() {
            // A snapshot at the commit index, sometimes bigger than one chunk.
            let index = hs.commit;
            let term = match st.term(index) {
                Ok(Some(t)) => t,
                other => {
                    println!("error term({index}) = {other:?}");
                    std::process::exit(1);
                }
            };
            let len = if rng.below(4) == 0 { 1_200_000 } else { 3_000 };
            let meta = SnapshotMeta {
                index,
                term,
                voters: vec![1, 2, 3],
            };
            if let Err(e) = st.save_snapshot(&meta, &snapshot_data(index, len)) {
                println!("error {e}");
                std::process::exit(1);
            }
            say(
                &mut out,
                format!("durable {last} {last_term} {}", hs.commit),
            );
            continue;
        }
        let mut start = last + 1;
        if step < 16 && last > hs.commit {
            // A new term overwrites part of the uncommitted suffix.
            start = hs.commit + 1 + rng.below(last - hs.commit);
            hs.term += 1;
            hs.vote = Some(rng.below(3));
        }
        let n = 1 + rng.below(32);
        let term = hs.term;
        let entries: Vec<Entry> = (start..start + n)
            .map(|index| Entry {
                term,
                index,
                kind: EntryKind::Normal,
                data: data(index, term),
            })
            .collect();
        last = start + n - 1;
        last_term = term;
        if rng.below(2) == 0 && last > hs.commit + 4 {
            hs.commit = last - 4;
        }
        let batch = WriteBatch {
            snapshot: None,
            entries,
            hard_state: Some(HardState { ..hs }),
        };
        if let Err(e) = st.persist(&batch) {
            println!("error {e}");
            std::process::exit(1);
        }
        say(
            &mut out,
            format!("durable {last} {last_term} {}", hs.commit),
        );
    }
}
