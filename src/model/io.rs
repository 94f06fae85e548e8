//! What the model puts around the shared shell (`crate::shell::Shell`) of each node: its
//! in-memory disk (a `LogStorage`), the turn's outputs (an `Outbox`), and the state machine (one
//! register).
//!
//! Owns: the node's durable state (the simulator's `Disk`: hard state, log, durable-progress
//! record), the record that lets a crash lose the last persist when nothing that depended on
//! it has left the node, and collecting what one
//! turn of the shell sent, applied and answered.
//! Must never: perform any step of a `Ready` itself (the shared shell does, in its order), or
//! keep anything across a crash except `Durable`.

use crate::raft::{Config, Entry, Message, SnapshotMeta};
use crate::shell::{
    Answer, Batch, Durability, LogStorage, Outbox, Shell, ShellSettings, StateMachine,
};
use crate::sim::disk::Disk;
use std::sync::Arc;

/// The model's state machine: one register, written with the first byte of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Register(pub Option<u8>);

impl StateMachine for Register {
    /// A read of the register (the model has one key).
    type Query = ();
    type Outcome = Option<u8>;

    fn apply(&mut self, data: &[u8]) -> Result<Option<u8>, String> {
        self.0 = data.first().copied();
        Ok(self.0)
    }

    fn query(&self, _: &()) -> Option<u8> {
        self.0
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.into_iter().collect()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.0 = data.first().copied();
        Ok(())
    }
}

/// One node's shell: the register, client requests named by their op id.
pub type NodeShell = Shell<Register, u8>;

/// What survives a crash: the simulator's disk (`crate::sim::disk::Disk`), whose semantics the
/// model shares: sled's hard state and log, the durable-progress record written after each
/// persist step, what the last step replaced (so a damage can roll it back), and what a start
/// reads there (`Disk::start_read`, `Disk::decide_start`).
pub type Durable = Disk;

/// The last persist step, which a crash may still lose: the durable state before the step and
/// the acknowledgements that left only after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unacked {
    pub before: Durable,
    pub acks: Vec<Message>,
}

/// Starts a node's shell from its durable state (a first boot or a restart after a crash),
/// once the start decision has been applied to it (`Disk::decide_start`).
pub fn boot(
    config: Config,
    durable: &Durable,
    settings: ShellSettings,
) -> Result<NodeShell, String> {
    debug_assert!(durable.snapshot.is_none(), "the model takes no snapshots");
    Shell::recover(config, durable.initial_state(), settings).map_err(|e| e.to_string())
}

/// The shell's storage and outbox for one turn of one node.
pub struct NodeIo<'a> {
    pub durable: &'a mut Durable,
    /// The last persist while a crash may still lose it.
    pub unacked: &'a mut Option<Unacked>,
    /// Set from a persist to the start of the next `Ready`: what is sent then is an
    /// acknowledgement of that persist.
    after_persist: bool,
    /// Messages in the order they left.
    pub sent: Vec<Message>,
    /// Committed entries applied, in order.
    pub applied: Vec<Entry>,
    /// Client answers in the order given: (op, answer).
    pub answers: Vec<(u8, Answer<Option<u8>>)>,
}

impl<'a> NodeIo<'a> {
    pub fn new(durable: &'a mut Durable, unacked: &'a mut Option<Unacked>) -> NodeIo<'a> {
        NodeIo {
            durable,
            unacked,
            after_persist: false,
            sent: Vec::new(),
            applied: Vec::new(),
            answers: Vec::new(),
        }
    }
}

impl LogStorage for NodeIo<'_> {
    /// One durable step, at once, as the simulator's disk takes it: entries (truncating a
    /// conflicting suffix first), then the hard state, then the durable-progress record.
    fn begin_persist(&mut self, batch: &Batch<'_>) -> Result<Durability, String> {
        if batch.snapshot.is_some() {
            return Err("the model takes no snapshots, yet a persist carries one".into());
        }
        *self.unacked = Some(Unacked {
            before: self.durable.clone(),
            acks: Vec::new(),
        });
        self.after_persist = true;
        self.durable
            .persist(batch)
            .map_err(|e| format!("the core asked for an invalid write: {e}"))?;
        Ok(Durability::Durable)
    }

    fn finish_persist(&mut self, _: &Batch<'_>) -> Result<(), String> {
        Err("the model's persists are durable at once; none is left to finish".into())
    }

    fn save_snapshot(&mut self, meta: &SnapshotMeta, _: &Arc<Vec<u8>>) -> Result<(), String> {
        Err(format!(
            "the model takes no snapshots, yet one was taken at {}",
            meta.index
        ))
    }
}

impl Outbox<u8, Option<u8>> for NodeIo<'_> {
    /// Anything that leaves after a persist other than that persist's own acknowledgements
    /// depends on it being durable: from then on a crash cannot lose it.
    fn send(&mut self, message: Message) {
        match self.unacked.as_mut() {
            Some(unacked) if self.after_persist => unacked.acks.push(message.clone()),
            _ => *self.unacked = None,
        }
        self.sent.push(message);
    }

    fn answer(&mut self, op: u8, answer: Answer<Option<u8>>) {
        *self.unacked = None;
        self.answers.push((op, answer));
    }

    fn observe_ready(&mut self, _: &crate::raft::Raft, _: &crate::raft::Ready) {
        self.after_persist = false;
    }

    fn observe_apply(&mut self, _: u64, entry: &Entry) {
        *self.unacked = None;
        self.applied.push(entry.clone());
    }
}
