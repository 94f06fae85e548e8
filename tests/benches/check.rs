//! Checker benchmark: time and peak memory for the fixture histories and generated stress cases
//! (issue 4). Each case runs in its own child process so its peak RSS (VmHWM) is its own; the
//! figures are medians over `RAFTKV_BENCH_RUNS` runs (default 5).
//!
//! Run: `cargo bench --bench check` (or `cargo bench --bench check -- CASE` for one case).

use raftkv::check::gen::{corrupt_read_to_absent, drop_info_completions, generate, GenConfig};
use raftkv::check::{check, parse_auto, Event, EventKind, Options, Verdict};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const CASES: &[&str] = &[
    "fixtures",
    "1key-10clients-1000ops-2pct-info",
    "1key-40clients-1000ops",
    "1key-1000ops-10pct-info-1-violation",
    "100keys-1000ops-each",
];

fn fixtures() -> Vec<(Vec<Event>, Options, bool)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/histories");
    let mut out = Vec::new();
    for set in ["knossos", "etcd"] {
        let dir = root.join(set);
        let m: Value = std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let mut opts = Options::default();
        let init = &m["semantics"]["initial_value"];
        opts.initial = (!init.is_null()).then(|| init.clone());
        opts.failed_cas_observed = m["semantics"]["failed_cas"]
            .as_str()
            .is_some_and(|s| s.starts_with("observed"));
        for h in m["histories"].as_array().cloned().unwrap_or_default() {
            let file = h["file"].as_str().unwrap_or_default();
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            match parse_auto(&text, file) {
                Ok(ev) => out.push((ev, opts.clone(), h["linearizable"] == Value::Bool(true))),
                Err(e) => eprintln!("{set}/{file}: {e}"),
            }
        }
    }
    out
}

fn generated(name: &str) -> (Vec<Event>, bool) {
    // `RAFTKV_BENCH_SEED` shifts every case's seed (to look for slow outliers).
    let shift: u64 = std::env::var("RAFTKV_BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let one_key = |clients, indeterminate, seed| GenConfig {
        seed: seed + shift,
        keys: 1,
        clients,
        ops: 1000,
        reads: 0.5,
        // Fraction of writes and cas; reads are half the operations.
        indeterminate,
        values: 5,
    };
    match name {
        "1key-10clients-1000ops-2pct-info" => (generate(&one_key(10, 0.04, 11)), true),
        "1key-40clients-1000ops" => (generate(&one_key(40, 0.0, 12)), true),
        "1key-1000ops-10pct-info-1-violation" => {
            let mut ev = generate(&one_key(10, 0.2, 13));
            drop_info_completions(&mut ev, 5);
            // The violation is late: a read in the last tenth answered "absent" after an
            // acknowledged write, so the whole history before it must be searched.
            let late = ev.len() * 9 / 10;
            let at = corrupt_read_to_absent(&mut ev, late);
            (ev, at.is_none())
        }
        "100keys-1000ops-each" => (
            generate(&GenConfig {
                seed: 14 + shift,
                keys: 100,
                clients: 50,
                ops: 100_000,
                reads: 0.5,
                indeterminate: 0.04,
                values: 5,
            }),
            true,
        ),
        _ => (Vec::new(), true),
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs one case in this process; prints one JSON line.
fn run_case(name: &str) -> i32 {
    let base_rss = peak_rss_kib();
    let (secs, verdicts_ok, ops, infos, states, unknown) = if name == "fixtures" {
        let hs = fixtures();
        let t = Instant::now();
        let mut ok = true;
        let mut states = 0;
        let mut unknown = 0;
        for (ev, opts, want) in &hs {
            let r = check(ev, opts);
            states += r.keys.iter().map(|k| k.states).sum::<u64>();
            unknown += usize::from(matches!(r.verdict, Verdict::Unknown { .. }));
            ok &= r.is_linearizable() == *want && !matches!(r.verdict, Verdict::Unknown { .. });
        }
        let ops: usize = hs
            .iter()
            .map(|h| h.0.iter().filter(|e| e.kind == EventKind::Invoke).count())
            .sum();
        (t.elapsed().as_secs_f64(), ok, ops, 0, states, unknown)
    } else {
        let (ev, want) = generated(name);
        let infos = ev
            .iter()
            .filter(|e| e.kind == EventKind::Invoke)
            .count()
            .saturating_sub(
                ev.iter()
                    .filter(|e| matches!(e.kind, EventKind::Ok | EventKind::Fail))
                    .count(),
            );
        let ops = ev.iter().filter(|e| e.kind == EventKind::Invoke).count();
        let t = Instant::now();
        let r = check(&ev, &Options::default());
        let secs = t.elapsed().as_secs_f64();
        let unknown = usize::from(matches!(r.verdict, Verdict::Unknown { .. }));
        let states = r.keys.iter().map(|k| k.states).sum::<u64>();
        (
            secs,
            r.is_linearizable() == want && unknown == 0,
            ops,
            infos,
            states,
            unknown,
        )
    };
    println!(
        "{}",
        serde_json::json!({"case": name, "secs": secs, "verdict_ok": verdicts_ok, "ops": ops,
            "indeterminate": infos, "states": states, "unknown": unknown,
            "peak_rss_kib": peak_rss_kib(), "rss_before_kib": base_rss})
    );
    if verdicts_ok {
        0
    } else {
        1
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let name = args.get(i + 1).cloned().unwrap_or_default();
        std::process::exit(run_case(&name));
    }
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let runs: usize = std::env::var("RAFTKV_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let Ok(me) = std::env::current_exe() else {
        eprintln!("cannot find the bench executable");
        std::process::exit(2);
    };
    println!(
        "{:<40} {:>6} {:>6} {:>10} {:>10} {:>12} {:>8}",
        "case", "ops", "info", "median s", "max s", "peak RSS MiB", "verdict"
    );
    let mut failed = false;
    for case in CASES {
        if !only.is_empty() && !only.iter().any(|o| case.contains(o.as_str())) {
            continue;
        }
        let mut secs = Vec::new();
        let mut rss = Vec::new();
        let mut last = Value::Null;
        for _ in 0..runs {
            let out = Command::new(&me).args(["--case", case]).output();
            let Ok(out) = out else {
                eprintln!("{case}: cannot run child");
                failed = true;
                break;
            };
            let line = String::from_utf8_lossy(&out.stdout);
            let v: Value = serde_json::from_str(line.trim()).unwrap_or(Value::Null);
            secs.push(v["secs"].as_f64().unwrap_or(f64::NAN));
            rss.push(v["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0);
            failed |= !out.status.success();
            last = v;
        }
        let max = secs.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<40} {:>6} {:>6} {:>10.4} {:>10.4} {:>12.1} {:>8}",
            case,
            last["ops"],
            last["indeterminate"],
            median(secs),
            max,
            median(rss),
            if last["verdict_ok"] == Value::Bool(true) {
                "right"
            } else {
                "WRONG"
            }
        );
    }
    std::process::exit(i32::from(failed));
}
