//! Figures of the node (a benchmark, not a test): a 5-node cluster of real `raftkv` processes over
//! pipes, no injected latency.
//!
//! - throughput and latency (ops/s, p50, p99) with 1, 10 and 50 concurrent clients;
//! - flushes per second against entries persisted per second (group commit), from the nodes' own
//!   counters;
//! - time from SIGKILL of the leader until a write is served again (median of several runs).
//!
//! Run: `cargo bench --bench node_figures`. Environment: `RAFTKV_BENCH_SECS` (seconds per client
//! count, default 5), `RAFTKV_BENCH_CLIENTS` (default `1,10,50`), `RAFTKV_BENCH_ELECTIONS` (runs of
//! the leader-kill measurement, default 5).

#[path = "../node_common/mod.rs"]
mod node_common;

use node_common::{last_stats, Cluster};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn cluster_env() -> Vec<(&'static str, String)> {
    vec![("RAFTKV_SNAPSHOT_EVERY", "1000".to_string())]
}

/// Waits until a write succeeds through node 0 (a leader exists and serves).
fn ready(c: &Cluster) {
    c.request_until_definite(
        0,
        json!({"type": "write", "key": "warmup", "value": 0}),
        Duration::from_secs(20),
    );
}

fn throughput(clients: usize, secs: u64) {
    let c = Cluster::start(5, cluster_env());
    ready(&c);
    // The cluster handle is shared read-only by the client threads.
    let shared = Arc::new(c);
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let indefinite = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..clients {
        let (shared, stop, lat, indefinite) = (
            shared.clone(),
            stop.clone(),
            lat.clone(),
            indefinite.clone(),
        );
        handles.push(thread::spawn(move || {
            let mut n = t as u64;
            while !stop.load(Ordering::Relaxed) {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = (n >> 33) % 10;
                let value = (n >> 40) % 5;
                let body = match (n >> 20) % 3 {
                    0 => json!({"type": "read", "key": key}),
                    1 => json!({"type": "write", "key": key, "value": value}),
                    _ => json!({"type": "cas", "key": key, "from": value, "to": (value + 1) % 5}),
                };
                let node = ((n >> 50) % 5) as usize;
                let t0 = Instant::now();
                match shared.request(node, body, Duration::from_secs(1)) {
                    Some(a) if a["type"] != "error" || a["code"] == 20 || a["code"] == 22 => {
                        lat.lock().expect("lat").push(t0.elapsed());
                    }
                    _ => *indefinite.lock().expect("count") += 1,
                }
            }
        }));
    }
    thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = lat.lock().expect("lat").clone();
    lat.sort();
    let mut c = match Arc::try_unwrap(shared) {
        Ok(c) => c,
        Err(_) => panic!("client threads still hold the cluster"),
    };
    let (mut flushes, mut entries) = (0u64, 0u64);
    let mut per_node = Vec::new();
    for i in 0..5 {
        c.stop(i);
        thread::sleep(Duration::from_millis(20));
        if let Some(s) = last_stats(&c.stderr(i)) {
            let f: u64 = s.get("flushes").and_then(|v| v.parse().ok()).unwrap_or(0);
            let e: u64 = s
                .get("entries_persisted")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            flushes += f;
            entries += e;
            per_node.push(format!("{}:{}/{}", c.ids[i], e, f.max(1)));
        }
    }
    println!(
        "clients={clients:>3} ops/s={:>8.0} p50={:>7.2}ms p99={:>7.2}ms ok={} not_ok={} | all nodes: flushes/s={:.0} entries/s={:.0} entries/flush={:.2} [{}]",
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len(),
        indefinite.lock().map(|v| *v).unwrap_or(0),
        flushes as f64 / elapsed,
        entries as f64 / elapsed,
        entries as f64 / flushes.max(1) as f64,
        per_node.join(" ")
    );
}

fn election_after_leader_kill() -> Option<Duration> {
    let mut c = Cluster::start(5, cluster_env());
    ready(&c);
    let leader = c.leader()?;
    let survivor = (leader + 1) % 5;
    let t0 = Instant::now();
    c.kill(leader);
    let deadline = t0 + Duration::from_secs(10);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let a = c.request(
            survivor,
            json!({"type": "write", "key": "after-kill", "value": n}),
            Duration::from_millis(300),
        );
        if matches!(&a, Some(a) if a["type"] == "write_ok") {
            return Some(t0.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
    None
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need to honour.
    let secs = env_u64("RAFTKV_BENCH_SECS", 5);
    let clients: Vec<usize> = std::env::var("RAFTKV_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "raftkv node figures: 5 real processes over pipes, no injected latency, {secs} s per row"
    );
    for n in clients {
        throughput(n, secs);
    }
    let runs = env_u64("RAFTKV_BENCH_ELECTIONS", 5);
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..runs {
        match election_after_leader_kill() {
            Some(t) => times.push(t),
            None => println!("leader kill: no write served within 10 s"),
        }
    }
    times.sort();
    let shown: Vec<String> = times
        .iter()
        .map(|t| format!("{:.0}ms", t.as_secs_f64() * 1e3))
        .collect();
    println!(
        "leader killed -> write served again: median {:.0} ms over {} runs [{}]",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times.len(),
        shown.join(", ")
    );
}
