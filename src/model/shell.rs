//! The model's shell around one core: the Ready loop of `crate::raft`, with an in-memory disk.
//!
//! Owns: feeding one event's outputs through `ready` / persist / `advance` in the documented
//! order, the node's durable state (hard state and log), and the record that lets a crash
//! lose the last persist step when nothing that depended on it has left the node.
//! Must never: decide Raft policy, reorder the loop (persist before the persisted messages
//! leave, apply only after the persist that covers the commit), or keep anything across a
//! crash except `Durable`. It is kept apart from the checker so it can later be replaced by
//! the shared Ready-processing shell.

use crate::raft::{Config, Entry, HardState, InitialState, Message, Raft, ReadReady, Ready};

/// What survives a crash: the hard state and the log, as the last completed persists left them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
}

/// The last persist step of a turn, which a crash may still lose: its durable state before the
/// step and the acknowledgements that were to leave only after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unacked {
    pub before: Durable,
    pub acks: Vec<Message>,
}

/// Everything one turn of the loop did that the rest of the cluster can see.
#[derive(Debug, Default)]
pub struct Turn {
    /// Messages in the order they left.
    pub sent: Vec<Message>,
    /// Committed entries applied, in order.
    pub applied: Vec<Entry>,
    pub reads: Vec<ReadReady>,
    pub failed_reads: Vec<u64>,
    /// Set when the turn's last Ready persisted and nothing after that persist (its
    /// acknowledgements excepted) left the node or reached its state machine.
    pub unacked: Option<Unacked>,
}

/// Readys one turn may take before the loop is declared stuck (a core bug).
const MAX_READYS_PER_TURN: usize = 32;

/// Starts a core from its durable state (a first boot or a restart after a crash).
pub fn boot(config: Config, durable: &Durable) -> Result<Raft, String> {
    let state = InitialState {
        hard_state: durable.hard_state,
        snapshot: None,
        entries: durable.entries.clone(),
    };
    Raft::try_new(config, state)
}

/// Runs the loop until the core has nothing more to hand out: take a Ready, send its
/// messages, persist it as one step, `advance`, send its persisted messages, apply its
/// committed entries and collect its reads.
pub fn run_turn(raft: &mut Raft, durable: &mut Durable) -> Turn {
    let mut turn = Turn::default();
    for _ in 0..MAX_READYS_PER_TURN {
        if !raft.has_ready() {
            return turn;
        }
        let rd = raft.ready();
        turn.sent.extend(rd.messages.iter().cloned());
        let before = rd.must_persist().then(|| durable.clone());
        persist(durable, &rd);
        raft.advance(&rd);
        let consequences =
            !rd.committed.is_empty() || !rd.reads.is_empty() || !rd.failed_reads.is_empty();
        turn.unacked = match before {
            Some(before) if !consequences => Some(Unacked {
                before,
                acks: rd.persisted_messages.clone(),
            }),
            // Anything that leaves after an earlier persist depends on it being durable.
            _ if consequences || !rd.messages.is_empty() || !rd.persisted_messages.is_empty() => {
                None
            }
            _ => turn.unacked.take(),
        };
        turn.sent.extend(rd.persisted_messages);
        turn.applied.extend(rd.committed);
        turn.reads.extend(rd.reads);
        turn.failed_reads.extend(rd.failed_reads);
    }
    debug_assert!(!raft.has_ready(), "the core keeps producing Readys");
    turn
}

/// One durable step: entries (truncating a conflicting suffix first), then the hard state.
fn persist(durable: &mut Durable, rd: &Ready) {
    debug_assert!(rd.snapshot.is_none(), "the model takes no snapshots");
    if let Some(first) = rd.entries.first() {
        durable.entries.retain(|e| e.index < first.index);
        debug_assert_eq!(
            durable.entries.last().map_or(0, |e| e.index) + 1,
            first.index,
            "a persist leaves a gap in the log"
        );
        durable.entries.extend(rd.entries.iter().cloned());
    }
    if let Some(hs) = rd.hard_state {
        durable.hard_state = hs;
    }
}
