//! Which faults a run injects, and the knobs of a run.
//!
//! Owns: the `--faults` vocabulary, the run configuration, and the shapes of the partial
//! partitions (which links a bridge, a cut link or a core with spokes blocks).
//! Must never: hold run state.

/// The faults a run may inject. `all()` is what CI's main sweep runs (every fault but
/// `rejoin`, the rejoin profile, which CI sweeps and hunts with separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Faults {
    /// Variable message delay with occasional long delays (reordering).
    pub delay: bool,
    pub loss: bool,
    pub dup: bool,
    /// Symmetric partitions (random halves).
    pub partition: bool,
    /// One-way partitions (a group can send but not receive, or the reverse).
    pub one_way: bool,
    /// Crash and restart (volatile state lost), including crashes right after a vote.
    pub crash: bool,
    /// A crash during a flush keeps a clean prefix of the batch's log records.
    pub torn: bool,
    /// Slow disks: a persist completes after tens of milliseconds.
    pub slow_disk: bool,
    /// Partitions, crashes and slow disks aimed at the current leader.
    pub leader: bool,
    /// Jepsen's bridge: two halves that share one node.
    pub bridge: bool,
    /// One cut link (both ways) between the target and another node.
    pub link: bool,
    /// A connected core of three; every other node talks to one core node only.
    pub spokes: bool,
    /// A node takes no steps for a while (a stalled process) as virtual time goes on; what
    /// reaches it waits until it resumes. A candidate paused with its vote replies waiting may
    /// then win its stale term after a later term committed entries, which Raft allows (leader
    /// completeness binds leaders of later terms only, and so does the simulator's check).
    pub pause: bool,
    /// A crashed node loses its whole directory now and then (at most one node without its
    /// state at a time) and restarts empty, as a new incarnation that must rejoin.
    pub wipe: bool,
    /// A crashed node's disk is damaged now and then (a log record damaged, dropped, written
    /// under another index or brought back old; the hard state, the durable-progress record or
    /// a snapshot chunk damaged; sled's last step rolled back below the record; a write
    /// misdirected between sled's hard state and the record), at most one node without its
    /// state at a time; it restarts as the node's start decides.
    pub corrupt: bool,
    /// Not in `all`: keeps nodes rejoining and makes their starts matter (with `crash`; each
    /// part acts with the fault it sharpens). A kill between sled's flush and the record's write
    /// on a step that changes the recovering mark (`crash`); a node restarted while its probe
    /// round is owed (`wipe`); a crash right after a vote wipes the voter half the time and
    /// drops the candidate's messages to the others, so they stay below its term (`wipe`), or
    /// else damages its disk; damage picked among the kinds that leave a copy of the hard state
    /// stale (a rolled-back step, a misdirected write) most of the time, and twice as often
    /// (`corrupt`); and once the workload ends, a follower loses its directory and rejoins
    /// into the idle cluster (`wipe`).
    pub rejoin: bool,
}

pub const FAULT_NAMES: &[&str] = &[
    "delay",
    "loss",
    "dup",
    "partition",
    "oneway",
    "crash",
    "torn",
    "slowdisk",
    "leader",
    "bridge",
    "link",
    "spokes",
    "pause",
    "wipe",
    "corrupt",
    "rejoin",
];

impl Faults {
    pub fn all() -> Faults {
        Faults {
            delay: true,
            loss: true,
            dup: true,
            partition: true,
            one_way: true,
            crash: true,
            torn: true,
            slow_disk: true,
            leader: true,
            bridge: true,
            link: true,
            spokes: true,
            pause: true,
            wipe: true,
            corrupt: true,
            rejoin: false,
        }
    }

    pub fn none() -> Faults {
        Faults::default()
    }

    /// Parses `all`, `none`, or a comma-separated list of [`FAULT_NAMES`].
    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::none();
        for name in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match name {
                "all" => f = Faults::all(),
                "none" => {}
                "delay" => f.delay = true,
                "loss" => f.loss = true,
                "dup" => f.dup = true,
                "partition" => f.partition = true,
                "oneway" => f.one_way = true,
                "crash" => f.crash = true,
                "torn" => f.torn = true,
                "slowdisk" => f.slow_disk = true,
                "leader" => f.leader = true,
                "bridge" => f.bridge = true,
                "link" => f.link = true,
                "spokes" => f.spokes = true,
                "pause" => f.pause = true,
                "wipe" => f.wipe = true,
                "corrupt" => f.corrupt = true,
                "rejoin" => f.rejoin = true,
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (known: all, none, {})",
                        FAULT_NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(f)
    }

    /// The canonical spelling, parseable by [`Faults::parse`].
    pub fn to_arg(&self) -> String {
        if *self == Faults::all() {
            return "all".into();
        }
        let flags = [
            self.delay,
            self.loss,
            self.dup,
            self.partition,
            self.one_way,
            self.crash,
            self.torn,
            self.slow_disk,
            self.leader,
            self.bridge,
            self.link,
            self.spokes,
            self.pause,
            self.wipe,
            self.corrupt,
            self.rejoin,
        ];
        let v: Vec<&str> = FAULT_NAMES
            .iter()
            .zip(flags)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(",")
        }
    }
}

impl Faults {
    /// The nemesis kinds of the partial partitions and the pause this run enables.
    pub fn partial_kinds(&self) -> Vec<&'static str> {
        [
            (self.bridge, "bridge"),
            (self.link, "link"),
            (self.spokes, "spokes"),
            (self.pause, "pause"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name)
        .collect()
    }
}

/// `blocked[from][to]` for the partial partition `shape` over the nodes in `order` (a
/// permutation of `0..n`; its first node is the nemesis's target):
/// - `bridge`: `order` split in two halves that share its middle node, which hears both;
/// - `link`: only the link between `order[0]` and `order[1]` is cut, both ways;
/// - `spokes`: `order[..3]` is a connected core; every later node is a spoke that talks to one
///   core node (dealt in turn) and to no one else.
///
/// Any other shape blocks nothing.
pub fn partial_partition(shape: &str, order: &[usize]) -> Vec<Vec<bool>> {
    let n = order.len();
    let mut blocked = vec![vec![false; n]; n];
    let mut cut = |a: usize, b: usize| {
        blocked[a][b] = true;
        blocked[b][a] = true;
    };
    match shape {
        "bridge" if n >= 3 => {
            let mid = n / 2;
            for &a in &order[..mid] {
                for &b in &order[mid + 1..] {
                    cut(a, b);
                }
            }
        }
        "link" if n >= 2 => cut(order[0], order[1]),
        "spokes" if n >= 4 => {
            for (k, &spoke) in order.iter().enumerate().skip(3) {
                let hub = order[(k - 3) % 3];
                for &other in order.iter().filter(|&&x| x != spoke && x != hub) {
                    cut(spoke, other);
                }
            }
        }
        _ => {}
    }
    blocked
}

/// One simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Client operations in the workload (the final reads come on top).
    pub ops: usize,
    /// Concurrent clients.
    pub clients: usize,
    pub faults: Faults,
    /// The state machine takes a snapshot every this many applied entries.
    pub snapshot_every: u64,
    /// Simulated milliseconds per core tick.
    pub tick_ms: u64,
    pub client_timeout_ms: u64,
    /// Keep a trace of events (for the failure report of a replay).
    pub trace: bool,
    /// Give up (a liveness failure) when the run has not finished by this simulated time.
    pub max_sim_ms: u64,
    #[cfg(test)]
    pub bugs: crate::raft::Bugs,
    /// Test only: unsafe variants of the start decision, passed to it at every start.
    #[cfg(test)]
    pub rejoin_bugs: crate::shell::rejoin::RejoinBugs,
    /// Test only: the shell sends `persisted_messages` before the batch is durable (a driver
    /// bug), to show that the simulated disk and crashes catch it.
    #[cfg(test)]
    pub ack_before_durable: bool,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 5,
            ops: 200,
            clients: 10,
            faults: Faults::all(),
            snapshot_every: 40,
            tick_ms: 10,
            client_timeout_ms: 1000,
            trace: false,
            max_sim_ms: 600_000,
            #[cfg(test)]
            bugs: crate::raft::Bugs::default(),
            #[cfg(test)]
            rejoin_bugs: crate::shell::rejoin::RejoinBugs::default(),
            #[cfg(test)]
            ack_before_durable: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_and_reject_unknown_names() {
        assert_eq!(Faults::parse("all").unwrap(), Faults::all());
        assert_eq!(Faults::parse("none").unwrap(), Faults::none());
        let f = Faults::parse("loss, crash,leader").unwrap();
        assert!(f.loss && f.crash && f.leader && !f.partition);
        assert_eq!(Faults::parse(&f.to_arg()).unwrap(), f);
        assert_eq!(Faults::all().to_arg(), "all");
        let profile = Faults::parse("all,rejoin").unwrap();
        assert!(profile.rejoin && !Faults::all().rejoin);
        assert_eq!(Faults::parse(&profile.to_arg()).unwrap(), profile);
        let err = Faults::parse("loss,meteor").unwrap_err();
        assert!(err.contains("meteor"), "{err}");
        let f = Faults::parse("bridge,pause").unwrap();
        assert_eq!(f.partial_kinds(), vec!["bridge", "pause"]);
        assert_eq!(Faults::parse(&f.to_arg()).unwrap(), f);
        assert_eq!(
            Faults::all().partial_kinds(),
            vec!["bridge", "link", "spokes", "pause"]
        );
    }

    /// Pairs (a, b), a < b, whose link is cut, checking that every cut is two-way.
    fn cut_links(blocked: &[Vec<bool>]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (a, row) in blocked.iter().enumerate() {
            for (b, &cut) in row.iter().enumerate() {
                assert_eq!(cut, blocked[b][a], "{a}-{b} cut one way only");
                if a < b && cut {
                    out.push((a, b));
                }
            }
        }
        out
    }

    #[test]
    fn a_bridge_node_talks_to_both_halves_which_do_not_talk_to_each_other() {
        let b = partial_partition("bridge", &[3, 0, 4, 1, 2]);
        assert_eq!(
            cut_links(&b),
            vec![(0, 1), (0, 2), (1, 3), (2, 3)],
            "halves {{3, 0, 4}} and {{4, 1, 2}} share 4"
        );
        assert!((0..5).all(|x| !b[4][x] && !b[x][4]), "the bridge hears all");
    }

    #[test]
    fn link_cuts_one_link_and_spokes_talk_to_their_hub_only() {
        assert_eq!(
            cut_links(&partial_partition("link", &[2, 4, 0, 1, 3])),
            vec![(2, 4)]
        );
        let s = partial_partition("spokes", &[0, 1, 2, 3, 4, 5]);
        for core in [(0, 1), (0, 2), (1, 2)] {
            assert!(!s[core.0][core.1], "the core {core:?} is connected");
        }
        for (spoke, hub) in [(3, 0), (4, 1), (5, 2)] {
            let talks: Vec<usize> = (0..6).filter(|&x| x != spoke && !s[spoke][x]).collect();
            assert_eq!(talks, vec![hub], "spoke {spoke} talks to hub {hub} only");
        }
        cut_links(&s);
        assert_eq!(
            partial_partition("spokes", &[0, 1, 2]),
            vec![vec![false; 3]; 3]
        );
    }

    /// A paused leader takes no steps while virtual time goes on: the others elect a new leader
    /// in a higher term while its own term stands still; once it resumes it reads what waited
    /// for it and follows the new term.
    #[test]
    fn a_paused_leader_takes_no_steps_until_it_resumes() {
        use crate::sim::cluster::Sim;
        let mut cfg = SimConfig::new(7);
        cfg.faults = Faults::none();
        let mut sim = Sim::new(cfg);
        sim.boot();
        sim.run_until(5_000, |s| s.leader().is_some());
        let old = sim.leader().expect("a leader within 5 s");
        let term = sim.node_term(old);
        sim.pause_node(old, 3_000);
        let paused_at = sim.now;
        sim.run_until(paused_at + 2_500, |s| s.leader().is_some_and(|l| l != old));
        let new = sim.leader().expect("a leader");
        assert_ne!(new, old, "the others elected a new leader");
        assert!(sim.node_term(new) > term);
        assert_eq!(sim.node_term(old), term, "the paused node took no step");
        sim.run_until(paused_at + 3_500, |_| false);
        assert!(
            sim.node_term(old) > term,
            "after resuming it learned the new term"
        );
        assert!(sim.failure.is_none(), "{:?}", sim.failure);
    }
}
