//! The shell's own tests: the exact order of what it does with a `Ready`, the flush it saves,
//! and the answers it gives.

use super::*;
use crate::kv::{Command, KvStore, Outcome};
use crate::raft::{MessageBody, Role};
use serde_json::json;

/// What the shell did, in order.
#[derive(Debug, PartialEq)]
enum Did {
    Send(u64, &'static str),
    FlushSends,
    Persist {
        entries: usize,
        hard_state: Option<HardState>,
    },
    Finish,
    Answer(u32, Answer<Outcome>),
}

/// A disk that is synchronous, or holds each write until [`finish`] when `delayed`.
#[derive(Default)]
struct Recorder {
    did: Vec<Did>,
    delayed: bool,
    held: Option<DiskWrite>,
}

impl Recorder {
    fn delayed() -> Recorder {
        Recorder {
            delayed: true,
            ..Recorder::default()
        }
    }
}

/// The delayed disk completes the write it holds (if any) and hands it back to the shell.
fn finish(s: &mut Shell<KvStore, u32>, io: &mut Recorder) {
    if let Some(write) = io.held.take() {
        io.did.push(Did::Finish);
        s.finish(write, io).unwrap();
    }
}

fn kind(m: &Message) -> &'static str {
    match &m.body {
        MessageBody::RequestVote { .. } => "vote",
        MessageBody::RequestVoteResponse { .. } => "vote-reply",
        MessageBody::AppendEntries { .. } => "append",
        MessageBody::AppendEntriesResponse { .. } => "append-reply",
        MessageBody::Heartbeat { .. } => "heartbeat",
        MessageBody::HeartbeatResponse { .. } => "heartbeat-reply",
        MessageBody::InstallSnapshot { .. } => "snapshot",
        MessageBody::InstallSnapshotResponse { .. } => "snapshot-reply",
    }
}

impl LogStorage for Recorder {
    fn begin_persist(&mut self, write: DiskWrite) -> Result<Begun, String> {
        let batch = write.batch();
        self.did.push(Did::Persist {
            entries: batch.entries.len(),
            hard_state: batch.hard_state,
        });
        if !self.delayed {
            return Ok(Begun::Durable(write));
        }
        assert!(self.held.is_none(), "storage holds one write at a time");
        self.held = Some(write);
        Ok(Begun::InFlight)
    }
    fn save_snapshot(&mut self, _meta: &SnapshotMeta, _data: &Arc<Vec<u8>>) -> Result<(), String> {
        Ok(())
    }
}

impl Outbox<u32, Outcome> for Recorder {
    fn send(&mut self, message: Message) {
        self.did.push(Did::Send(message.to, kind(&message)));
    }
    fn flush_sends(&mut self) -> Result<(), String> {
        self.did.push(Did::FlushSends);
        Ok(())
    }
    fn answer(&mut self, token: u32, answer: Answer<Outcome>) {
        self.did.push(Did::Answer(token, answer));
    }
}

fn shell(id: u64, voters: u64) -> Shell<KvStore, u32> {
    let config = Config::new(id, (1..=voters).collect(), 7);
    Shell::recover(config, InitialState::default(), ShellSettings::default()).unwrap()
}

fn write(key: u64, value: u64) -> Vec<u8> {
    Command::Write {
        key: json!(key),
        value: json!(value),
    }
    .encode()
}

/// A single-node leader with its no-op committed.
fn single_leader(io: &mut Recorder) -> Shell<KvStore, u32> {
    let mut s = shell(1, 1);
    s.raft_mut().campaign();
    s.drive(io).unwrap();
    assert_eq!(s.raft().status().role, Role::Leader);
    s.drive(io).unwrap();
    io.did.clear();
    s
}

#[test]
fn a_leader_sends_its_appends_before_its_flush() {
    let mut io = Recorder::default();
    let mut s = shell(1, 3);
    s.raft_mut().campaign();
    s.drive(&mut io).unwrap();
    // Win the election by hand: both peers grant.
    grant_votes(&mut s, true);
    s.drive(&mut io).unwrap();
    grant_votes(&mut s, false);
    io.did.clear();
    s.drive(&mut io).unwrap();
    assert_eq!(s.raft().status().role, Role::Leader);
    let flush_at = io
        .did
        .iter()
        .position(|d| matches!(d, Did::Persist { entries: 1, .. }))
        .expect("the no-op is persisted");
    let appends: Vec<usize> = (0..io.did.len())
        .filter(|&k| matches!(io.did[k], Did::Send(_, "append")))
        .collect();
    assert_eq!(appends.len(), 2, "{:?}", io.did);
    assert!(
        appends.iter().all(|&k| k < flush_at),
        "appends leave before the flush: {:?}",
        io.did
    );
    assert_eq!(io.did[flush_at - 1], Did::FlushSends);
}

#[test]
fn a_follower_acknowledges_an_append_only_after_its_flush_finished() {
    let mut io = Recorder::delayed();
    let mut s = shell(2, 3);
    s.raft_mut().step(append(1, 1));
    assert_eq!(s.drive(&mut io).unwrap(), Progress::PersistInFlight);
    assert!(
        !io.did.iter().any(|d| matches!(d, Did::Send(..))),
        "nothing acknowledged before the flush: {:?}",
        io.did
    );
    assert_eq!(io.held.as_ref().map(|w| w.batch().entries.len()), Some(1));
    finish(&mut s, &mut io);
    let finish = io.did.iter().position(|d| *d == Did::Finish).unwrap();
    assert_eq!(io.did.get(finish + 1), Some(&Did::Send(1, "append-reply")));
    assert!(!s.persist_in_flight());
}

#[test]
fn a_commit_only_hard_state_rides_on_the_next_flush() {
    let mut io = Recorder::default();
    let mut s = single_leader(&mut io);
    let flushes = s.stats.flushes;
    s.propose(write(1, 1), 10).unwrap();
    s.drive(&mut io).unwrap();
    // The entry costs one flush; the commit it causes costs none of its own.
    assert_eq!(s.stats.flushes, flushes + 1, "{:?}", io.did);
    assert_eq!(s.raft().status().commit, 2);
    assert!(io
        .did
        .contains(&Did::Answer(10, Answer::Applied(Outcome::Ok(json!(null))))));
    io.did.clear();
    s.propose(write(1, 2), 11).unwrap();
    s.drive(&mut io).unwrap();
    // The next flush carries the commit index the previous one left unwritten.
    let Some(Did::Persist {
        hard_state: Some(hs),
        ..
    }) = io.did.iter().find(|d| matches!(d, Did::Persist { .. }))
    else {
        panic!("a persist with a hard state: {:?}", io.did);
    };
    assert!(hs.commit >= 2, "{hs:?}");
    assert!(s.stats.commits_deferred >= 2);
}

#[test]
fn an_idle_nodes_deferred_commit_is_written_after_two_ticks() {
    let mut io = Recorder::default();
    let mut s = single_leader(&mut io);
    s.propose(write(1, 1), 10).unwrap();
    s.drive(&mut io).unwrap();
    assert_eq!(s.raft().status().commit, 2);
    let flushes = s.stats.flushes;
    io.did.clear();
    // Nothing else to ride on: one tick is not enough, the second writes the commit alone.
    s.tick();
    s.drive(&mut io).unwrap();
    assert_eq!(s.stats.flushes, flushes, "{:?}", io.did);
    s.tick();
    s.drive(&mut io).unwrap();
    assert_eq!(s.stats.flushes, flushes + 1, "{:?}", io.did);
    let Some(Did::Persist {
        entries: 0,
        hard_state: Some(hs),
    }) = io.did.iter().find(|d| matches!(d, Did::Persist { .. }))
    else {
        panic!("a persist of the hard state alone: {:?}", io.did);
    };
    assert_eq!(hs.commit, 2, "{hs:?}");
    // Written once: later ticks cost nothing more.
    s.tick();
    s.tick();
    s.drive(&mut io).unwrap();
    assert_eq!(s.stats.flushes, flushes + 1, "{:?}", io.did);
}

#[test]
fn a_vote_costs_a_flush_and_its_grant_waits_for_it() {
    let mut io = Recorder::default();
    let mut s = shell(2, 3);
    s.raft_mut().step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: 0,
            last_log_term: 0,
        },
    });
    s.drive(&mut io).unwrap();
    assert_eq!(
        io.did,
        vec![
            Did::FlushSends,
            Did::Persist {
                entries: 0,
                hard_state: Some(HardState {
                    term: 1,
                    vote: Some(1),
                    commit: 0
                })
            },
            Did::Send(1, "vote-reply"),
        ]
    );
}

#[test]
fn a_proposal_happened_exactly_when_its_term_committed_at_its_index() {
    let mut io = Recorder::default();
    // A node restarts holding entry 1 of term 2, committed.
    let state = InitialState {
        hard_state: HardState {
            term: 2,
            vote: None,
            commit: 1,
        },
        snapshot: None,
        entries: vec![Entry {
            term: 2,
            index: 1,
            kind: EntryKind::Normal,
            data: write(5, 5),
        }],
    };
    let config = Config::new(1, vec![1, 2, 3], 7);
    let mut s: Shell<KvStore, u32> =
        Shell::recover(config, state, ShellSettings::default()).unwrap();
    // Two leaders proposed at index 1, in terms 1 and 2: only the term-2 proposal happened.
    s.pending.add_proposal(Proposal { index: 1, term: 1 }, 1);
    s.pending.add_proposal(Proposal { index: 1, term: 2 }, 2);
    s.drive(&mut io).unwrap();
    assert_eq!(
        io.did,
        vec![
            Did::Answer(
                1,
                Answer::NotDone("leadership changed before the write committed; it did not happen")
            ),
            Did::Answer(2, Answer::Applied(Outcome::Ok(json!(null)))),
        ]
    );
}

#[test]
fn reads_are_answered_once_applied_reaches_their_index() {
    let mut io = Recorder::default();
    let mut s = single_leader(&mut io);
    // A read asked before the write commits may not see it; one asked after must.
    s.read(json!(3), 0).map_err(|_| "leader").unwrap();
    s.propose(write(3, 9), 1).unwrap();
    s.drive(&mut io).unwrap();
    s.read(json!(3), 2).map_err(|_| "leader").unwrap();
    s.drive(&mut io).unwrap();
    let answers: Vec<&Did> = io
        .did
        .iter()
        .filter(|d| matches!(d, Did::Answer(..)))
        .collect();
    assert_eq!(
        answers,
        vec![
            &Did::Answer(0, Answer::Read(Outcome::KeyMissing)),
            &Did::Answer(1, Answer::Applied(Outcome::Ok(json!(null)))),
            &Did::Answer(2, Answer::Read(Outcome::Ok(json!(9)))),
        ]
    );
    let follower = &mut shell(2, 3);
    assert!(follower.read(json!(3), 3).is_err(), "only a leader reads");
}

#[test]
fn answers_for_committed_entries_do_not_wait_for_the_next_flush() {
    let mut io = Recorder::delayed();
    let mut s = shell(1, 1);
    s.raft_mut().campaign();
    while s.raft().has_ready() || s.persist_in_flight() {
        s.drive(&mut io).unwrap();
        finish(&mut s, &mut io);
    }
    s.propose(write(1, 1), 1).unwrap();
    assert_eq!(s.drive(&mut io).unwrap(), Progress::PersistInFlight);
    finish(&mut s, &mut io);
    // Entry 2 is durable and committed; entry 3 is proposed before the next Ready is taken.
    s.propose(write(1, 2), 2).unwrap();
    io.did.clear();
    assert_eq!(s.drive(&mut io).unwrap(), Progress::PersistInFlight);
    assert_eq!(
        io.did.first(),
        Some(&Did::Answer(1, Answer::Applied(Outcome::Ok(json!(null))))),
        "answered before the flush of entry 3: {:?}",
        io.did
    );
    assert!(matches!(
        io.did.last(),
        Some(Did::Persist { entries: 1, .. })
    ));
    finish(&mut s, &mut io);
    s.drive(&mut io).unwrap();
    assert!(io
        .did
        .contains(&Did::Answer(2, Answer::Applied(Outcome::Ok(json!(null))))));
}

/// Node 1 of three hears both peers grant its pre-vote or vote.
fn grant_votes(s: &mut Shell<KvStore, u32>, pre_vote: bool) {
    let term = s.raft().status().term + u64::from(pre_vote);
    for from in [2, 3] {
        s.raft_mut().step(Message {
            from,
            to: 1,
            term,
            body: MessageBody::RequestVoteResponse {
                pre_vote,
                granted: true,
            },
        });
    }
}

/// A three-node leader elected by hand (both peers grant), its no-op durable.
fn leader_of_three(io: &mut Recorder) -> Shell<KvStore, u32> {
    let mut s = shell(1, 3);
    s.raft_mut().campaign();
    s.drive(io).unwrap();
    grant_votes(&mut s, true);
    s.drive(io).unwrap();
    finish(&mut s, io);
    grant_votes(&mut s, false);
    s.drive(io).unwrap();
    finish(&mut s, io);
    assert_eq!(s.raft().status().role, Role::Leader);
    // Both peers hold the no-op: appends to them now stream without waiting for replies.
    let term = s.raft().status().term;
    for from in [2, 3] {
        s.raft_mut().step(Message {
            from,
            to: 1,
            term,
            body: MessageBody::AppendEntriesResponse {
                success: true,
                index: 1,
                hint_term: None,
                rejected: 0,
                read_ctx: 0,
            },
        });
    }
    s.drive(io).unwrap();
    finish(&mut s, io);
    assert!(!s.persist_in_flight());
    io.did.clear();
    s
}

/// An append from leader 1 in term 1 of entries `from..=to` (all no-ops).
fn append(from: u64, to: u64) -> Message {
    let entries = (from..=to)
        .map(|index| Entry {
            term: 1,
            index,
            kind: EntryKind::Noop,
            data: vec![],
        })
        .collect();
    Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: from - 1,
            prev_log_term: u64::from(from > 1),
            entries,
            leader_commit: 0,
            read_ctx: 0,
        },
    }
}

#[test]
fn while_a_write_is_in_flight_a_leader_keeps_sending_appends_and_queues_one_write() {
    let mut io = Recorder::delayed();
    let mut s = leader_of_three(&mut io);
    s.propose(write(1, 1), 1).unwrap();
    assert_eq!(s.drive(&mut io).unwrap(), Progress::PersistInFlight);
    let flushes = s.stats.flushes;
    io.did.clear();
    // Two more proposals while the first write is in flight: their appends leave at once,
    // their entries wait for it, together.
    for (token, value) in [(2, 2), (3, 3)] {
        s.propose(write(1, value), token).unwrap();
        s.drive(&mut io).unwrap();
    }
    assert_eq!(
        io.did,
        vec![
            Did::Send(2, "append"),
            Did::Send(3, "append"),
            Did::Send(2, "append"),
            Did::Send(3, "append"),
        ],
        "appends leave while the write is in flight; nothing more is written yet"
    );
    assert_eq!(s.stats.flushes, flushes);
    finish(&mut s, &mut io);
    assert_eq!(
        io.did[4..],
        [
            Did::Finish,
            Did::FlushSends,
            Did::Persist {
                entries: 2,
                hard_state: None
            }
        ],
        "both queued entries go in one write once the first is durable"
    );
    assert_eq!(s.stats.flushes, flushes + 1);
    assert_eq!(
        s.stats.entries_persisted,
        1 + 1 + 2,
        "no-op, first entry, both queued"
    );
}

#[test]
fn a_follower_acknowledges_each_append_only_after_every_write_before_it() {
    let mut io = Recorder::delayed();
    let mut s = shell(2, 3);
    s.raft_mut().step(append(1, 1));
    s.drive(&mut io).unwrap();
    // Entry 2 arrives, then the first append again (a duplicate the network delivered late):
    // its acknowledgement names entry 1, which is not durable yet, so it waits too.
    s.raft_mut().step(append(2, 2));
    s.drive(&mut io).unwrap();
    s.raft_mut().step(append(1, 1));
    s.drive(&mut io).unwrap();
    assert!(
        !io.did.iter().any(|d| matches!(d, Did::Send(..))),
        "nothing acknowledged before its write is durable: {:?}",
        io.did
    );
    io.did.clear();
    finish(&mut s, &mut io);
    assert_eq!(
        io.did,
        vec![
            Did::Finish,
            Did::Send(1, "append-reply"),
            Did::FlushSends,
            Did::Persist {
                entries: 1,
                hard_state: None
            },
        ],
        "entry 1 durable: its acknowledgement leaves, entry 2's write begins"
    );
    io.did.clear();
    finish(&mut s, &mut io);
    assert_eq!(
        io.did,
        vec![
            Did::Finish,
            Did::Send(1, "append-reply"),
            Did::Send(1, "append-reply")
        ],
        "entry 2's acknowledgement, then the duplicate's, which came after it"
    );
    assert!(!s.persist_in_flight());
}
