//! Storage figures: `cargo bench -p raftkv-storage` (harness = false).
//!
//! Prints, for appends of 100-byte entries with one flush per entry and per batch of 16, 64 and
//! 256 entries, this crate's `persist` rate next to raw sled insert+flush of the same batches in
//! the same process, alternating rounds between the two so both see the same load (the ratio is
//! the median of the per-run ratios); the open+verify (recovery) rate of a directory of 1,000,000 entries; and the
//! peak memory (VmHWM) of each case; and the cost of one durable-progress record write (the
//! `pwrite` of 96 bytes each `persist` adds after sled's flush), in nanoseconds. Each case runs in its own child process so its VmHWM is its
//! own; every case is repeated `RAFTKV_BENCH_RUNS` times (default 3) and the median is printed.
//! `RAFTKV_BENCH_ENTRIES` changes the recovery size (default 1000000).

use raftkv_storage::{Entry, EntryKind, HardState, Storage, WriteBatch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const ENTRY_BYTES: usize = 100;

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn entry(index: u64) -> Entry {
    Entry {
        term: 1,
        index,
        kind: EntryKind::Normal,
        data: vec![b'x'; ENTRY_BYTES],
    }
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Appends through `Storage::persist` and through raw sled (insert each entry, then one flush),
/// `batch` entries per durable step, alternating rounds of `round` entries between the two so
/// both see the same machine load. Returns entries per second for (persist, raw sled).
fn pair(dir: &Path, batch: u64, total: u64) -> (f64, f64) {
    let (d_ours, d_raw) = (dir.join("ours"), dir.join("raw"));
    fresh(&d_ours);
    fresh(&d_raw);
    let (mut st, _) = Storage::open(&d_ours).expect("open");
    let db = sled::open(&d_raw).expect("open raw");
    let tree = db.open_tree("log").expect("tree");
    let round = (batch * 8).max(256).min(total);
    let (mut t_ours, mut t_raw) = (0.0f64, 0.0f64);
    let mut next = 1u64;
    while next <= total {
        let end = next + round;
        let t = Instant::now();
        let mut i = next;
        while i < end {
            st.persist(&WriteBatch {
                snapshot: None,
                entries: (i..i + batch).map(entry).collect(),
                hard_state: Some(HardState {
                    term: 1,
                    vote: Some(0),
                    commit: i - 1,
                    ..HardState::default()
                }),
            })
            .expect("persist");
            i += batch;
        }
        t_ours += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut i = next;
        while i < end {
            for k in i..i + batch {
                tree.insert(k.to_be_bytes(), vec![b'x'; ENTRY_BYTES])
                    .expect("insert");
            }
            db.flush().expect("flush");
            i += batch;
        }
        t_raw += t.elapsed().as_secs_f64();
        next = end;
    }
    let n = (next - 1) as f64;
    (n / t_ours, n / t_raw)
}

fn build(dir: &Path, n: u64) {
    fresh(dir);
    let (mut st, _) = Storage::open(dir).expect("open");
    let mut next = 1;
    while next <= n {
        let hi = (next + 1000).min(n + 1);
        st.persist(&WriteBatch {
            snapshot: None,
            entries: (next..hi).map(entry).collect(),
            hard_state: Some(HardState {
                term: 1,
                vote: None,
                commit: hi - 1,
                ..HardState::default()
            }),
        })
        .expect("persist");
        next = hi;
    }
}

/// Nanoseconds per write of the durable-progress record, as `persist` writes it (one `pwrite` of
/// the encoded record at offset 0, each a different value), over `n` writes.
fn progress_write_ns(dir: &Path, n: u64) -> f64 {
    use raftkv_storage::progress::{encode, Progress, ProgressRecord, PROGRESS_FILE};
    use std::os::unix::fs::FileExt;
    fresh(dir);
    std::fs::create_dir_all(dir).expect("mkdir");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join(PROGRESS_FILE))
        .expect("open record");
    let t = Instant::now();
    for i in 0..n {
        let rec = ProgressRecord {
            new: Progress {
                term: 1,
                vote: Some(0),
                last_term: 1,
                last_index: i,
                ..Progress::default()
            },
            old: None,
        };
        f.write_all_at(&encode(&rec), 0).expect("write record");
    }
    t.elapsed().as_secs_f64() * 1e9 / n as f64
}

fn recover(dir: &Path) -> (f64, u64) {
    let t = Instant::now();
    let (st, rec) = Storage::open(dir).expect("open");
    let secs = t.elapsed().as_secs_f64();
    let n = rec.last_index + 1 - rec.first_index;
    drop(st);
    (n as f64 / secs, n)
}

/// Runs one case in this process and prints `RESULT key=value ...`.
fn child(case: &str, dir: &Path) {
    let out = match case.split_once(':') {
        Some(("pair", b)) => {
            let b: u64 = b.parse().expect("batch");
            let total = if b == 1 { 4_096 } else { 64 * 1024 };
            let (o, r) = pair(dir, b, total);
            format!("rate={o:.0} raw={r:.0}")
        }
        Some(("build", n)) => {
            build(dir, n.parse().expect("n"));
            "rate=0".into()
        }
        Some(("progress", n)) => {
            let ns = progress_write_ns(dir, n.parse().expect("n"));
            format!("rate={ns:.0}")
        }
        Some(("recover", _)) => {
            let (rate, n) = recover(dir);
            format!("rate={rate:.0} n={n}")
        }
        _ => panic!("unknown case {case}"),
    };
    println!("RESULT {out} hwm_kib={}", vm_hwm_kib());
}

fn run(case: &str, dir: &Path) -> (f64, f64, u64) {
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new(exe)
        .args(["--case", case, "--dir"])
        .arg(dir)
        .output()
        .expect("spawn case");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| {
            panic!(
                "case {case} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let get = |k: &str| -> f64 {
        line.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (get("rate"), get("raw"), get("hwm_kib") as u64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let dir = PathBuf::from(&args[i + 3]);
        child(&args[i + 1], &dir);
        return;
    }
    let runs: usize = std::env::var("RAFTKV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let n: u64 = std::env::var("RAFTKV_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::temp_dir().join(format!("raftkv-bench-{}", std::process::id()));
    let dir = base.join("d");
    println!("raftkv-storage bench: {runs} runs per case, medians; 100-byte entries");
    println!(
        "{:<6} {:>14} {:>14} {:>7} {:>12}",
        "batch", "persist e/s", "raw sled e/s", "ratio", "peak memory"
    );
    for b in [1u64, 16, 64, 256] {
        let (mut o, mut r, mut ratio, mut h) = (vec![], vec![], vec![], 0);
        for _ in 0..runs {
            let (x, y, hw) = run(&format!("pair:{b}"), &dir);
            o.push(x);
            r.push(y);
            ratio.push(x / y);
            h = h.max(hw);
        }
        println!(
            "{:<6} {:>14.0} {:>14.0} {:>6.0}% {:>8} MiB",
            b,
            median(o),
            median(r),
            100.0 * median(ratio),
            h / 1024
        );
    }
    let mut ns = vec![];
    for _ in 0..runs {
        ns.push(run("progress:100000", &dir).0);
    }
    println!(
        "durable-progress record: {:.0} ns per write (median of {runs} runs of 100000 writes)",
        median(ns)
    );
    let t = Instant::now();
    run(&format!("build:{n}"), &dir);
    println!("built {n} entries in {:.1}s", t.elapsed().as_secs_f64());
    let (mut rates, mut hwm) = (vec![], 0);
    for _ in 0..runs {
        let (x, _, h) = run("recover:0", &dir);
        rates.push(x);
        hwm = hwm.max(h);
    }
    println!(
        "recovery: open+verify {n} entries: {:.0} records/s (median of {runs}), peak memory {} MiB",
        median(rates),
        hwm / 1024
    );
    let _ = std::fs::remove_dir_all(&base);
}
