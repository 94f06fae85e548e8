//! Throughput of the consensus core alone: five cores in one thread, messages delivered in
//! order, persistence free (every `Ready` is acknowledged at once). It measures what the core
//! costs per committed entry, the ceiling above which only IO and the network can limit a node.
//!
//! Run: `cargo bench --bench core_throughput` (prints the median of 5 runs per batch size).

use raftkv::kv::{Command, KvStore};
use raftkv::raft::{Config, EntryKind, InitialState, Message, Raft, Role};
use serde_json::json;
use std::collections::VecDeque;
use std::time::Instant;

struct Cluster {
    cores: Vec<Raft>,
    kvs: Vec<KvStore>,
    net: VecDeque<Message>,
    messages: u64,
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let voters: Vec<u64> = (1..=n).collect();
        let cores = voters
            .iter()
            .map(|&id| Raft::new(Config::new(id, voters.clone(), 7), InitialState::default()))
            .collect();
        Cluster {
            cores,
            kvs: (0..n).map(|_| KvStore::new()).collect(),
            net: VecDeque::new(),
            messages: 0,
        }
    }

    fn process(&mut self, i: usize) {
        while self.cores[i].has_ready() {
            let rd = self.cores[i].ready();
            self.messages += (rd.messages.len() + rd.persisted_messages.len()) as u64;
            self.net.extend(rd.messages.iter().cloned());
            self.net.extend(rd.persisted_messages.iter().cloned());
            self.cores[i].advance(&rd);
            for e in &rd.committed {
                if e.kind == EntryKind::Normal {
                    if let Ok(cmd) = Command::decode(&e.data) {
                        self.kvs[i].apply(&cmd);
                    }
                }
            }
        }
    }

    fn deliver(&mut self) {
        while let Some(m) = self.net.pop_front() {
            let i = (m.to - 1) as usize;
            self.cores[i].step(m);
            self.process(i);
        }
    }
}

/// Commits `total` writes proposed `batch` per loop turn; returns (entries/s, messages/entry).
fn run(total: u64, batch: u64) -> (f64, f64) {
    let mut c = Cluster::new(5);
    c.cores[0].campaign();
    c.process(0);
    c.deliver();
    assert_eq!(c.cores[0].status().role, Role::Leader);
    let base = c.cores[0].status().commit;
    c.messages = 0;
    let start = Instant::now();
    let mut proposed = 0;
    while proposed < total {
        for _ in 0..batch.min(total - proposed) {
            let cmd = Command::Write {
                key: json!(proposed % 100),
                value: json!(proposed),
            };
            if c.cores[0].propose(cmd.encode()).is_ok() {
                proposed += 1;
            }
        }
        c.process(0);
        c.deliver();
    }
    let secs = start.elapsed().as_secs_f64();
    let done = c.cores[0].status().commit - base;
    assert_eq!(done, total, "every proposal committed");
    (total as f64 / secs, c.messages as f64 / total as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    println!("consensus core alone, 5 nodes in one thread, persistence free, median of 5 runs");
    println!("{:>6} {:>16} {:>14}", "batch", "entries/s", "msgs/entry");
    for batch in [1u64, 16, 256] {
        let total = 20_000;
        let runs: Vec<(f64, f64)> = (0..5).map(|_| run(total, batch)).collect();
        let rate = median(runs.iter().map(|r| r.0).collect());
        let msgs = median(runs.iter().map(|r| r.1).collect());
        println!("{batch:>6} {rate:>16.0} {msgs:>14.2}");
    }
}
