//! Which faults a run injects, and the knobs of a run.
//!
//! Owns: the `--faults` vocabulary and the run configuration.
//! Must never: hold run state.

/// The faults a run may inject. `all()` is what CI runs.
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
        let err = Faults::parse("loss,meteor").unwrap_err();
        assert!(err.contains("meteor"), "{err}");
    }
}
