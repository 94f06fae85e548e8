//! Kill -9: a child process appends and flushes and reports every step it considers durable; the
//! parent SIGKILLs it at random moments (some during `open`), reopens the same directory and checks
//! that every reported step is there, the log is contiguous and every checksum passes.
//!
//! `RAFTKV_KILLS=5000 cargo test -p raftkv-storage --release --test kill` runs thousands.

use raftkv_storage::Storage;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn expected_data(index: u64, term: u64) -> Vec<u8> {
    let mut d = format!("{{\"op\":\"write\",\"key\":{index},\"value\":{term}}}").into_bytes();
    d.resize(100, b' ');
    d
}

#[derive(Default, Clone, Copy, Debug)]
struct Reported {
    last: u64,
    term: u64,
    commit: u64,
}

/// Opens `dir` in this process and checks it against what the child reported durable.
fn verify(dir: &std::path::Path, rep: Reported, kill: usize) {
    let (st, rec) =
        Storage::open(dir).unwrap_or_else(|e| panic!("kill {kill}: reopen failed: {e}"));
    assert!(
        rec.hard_state.commit >= rep.commit,
        "kill {kill}: commit went back from {} to {}",
        rep.commit,
        rec.hard_state.commit
    );
    assert!(
        rec.hard_state.term >= rep.term,
        "kill {kill}: term went back"
    );
    // The last reported entry is there with its term, or compacted into the snapshot, unless a
    // later (unreported but durable) step overwrote it with a higher term.
    let last_term = st.term(rec.last_index).unwrap().unwrap();
    match st.term(rep.last).unwrap() {
        Some(t) if t == rep.term => {}
        // Compacted into the snapshot: committed, and held there.
        None if rep.last < rec.first_index => {}
        _ => assert!(
            last_term > rep.term && rec.last_index >= rep.commit,
            "kill {kill}: reported durable entry {} (term {}) lost; log is [{}, {}] ending in term {last_term}",
            rep.last,
            rep.term,
            rec.first_index,
            rec.last_index
        ),
    }
    // Every entry: contiguous, checksum verified by the read, data as written.
    let mut prev_term = rec.snapshot.as_ref().map_or(0, |s| s.term);
    let mut next = rec.first_index;
    while next <= rec.last_index {
        let batch = st.entries(next, rec.last_index + 1, 1 << 20).unwrap();
        for e in batch {
            assert_eq!(e.index, next, "kill {kill}: log not contiguous");
            assert!(
                e.term >= prev_term,
                "kill {kill}: term went back at {}",
                e.index
            );
            assert_eq!(
                e.data,
                expected_data(e.index, e.term),
                "kill {kill}: entry {} data",
                e.index
            );
            prev_term = e.term;
            next += 1;
        }
    }
    if let Some((meta, data)) = st.load_snapshot().unwrap() {
        assert_eq!(Some(&meta), rec.snapshot.as_ref());
        let ok = data
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (meta.index as usize + i) as u8);
        assert!(ok, "kill {kill}: snapshot data damaged");
        assert!(meta.index <= rec.hard_state.commit);
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_reported_durable() {
    let kills: usize = std::env::var("RAFTKV_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("RAFTKV_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let mut rng = Rng(seed);
    let mut rep = Reported::default();
    let (mut during_open, mut reported_steps) = (0usize, 0usize);
    let started = Instant::now();
    for kill in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv-storage-crash-child"))
            .arg(&dir)
            .arg(rng.next().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Kill somewhere between "before open finished" and a few dozen persisted steps.
        let delay = Duration::from_micros(rng.next() % 30_000);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut opened = false;
        for line in out.lines() {
            let line = line.unwrap();
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "open" => opened = true,
                "durable" => {
                    rep = Reported {
                        last: f[1].parse().unwrap(),
                        term: f[2].parse().unwrap(),
                        commit: f[3].parse().unwrap(),
                    };
                    reported_steps += 1;
                }
                _ => panic!("kill {kill}: child said: {line}"),
            }
        }
        if !opened {
            during_open += 1;
        }
        verify(&dir, rep, kill);
    }
    eprintln!(
        "{kills} kills ({during_open} before open finished), {reported_steps} durable steps reported, last index {}, {:.1}s",
        rep.last,
        started.elapsed().as_secs_f64()
    );
    assert!(
        reported_steps > 0,
        "the child never got to persist anything"
    );
}
