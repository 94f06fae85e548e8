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

/// A disk that is synchronous, or holds every write until `finish` when `delayed`.
#[derive(Default)]
struct Recorder {
    did: Vec<Did>,
    delayed: bool,
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
    fn begin_persist(&mut self, batch: &Batch<'_>) -> Result<Durability, String> {
        self.did.push(Did::Persist {
            entries: batch.entries.len(),
            hard_state: batch.hard_state,
        });
        Ok(if self.delayed {
            Durability::InFlight
        } else {
            Durability::Durable
        })
    }
    fn finish_persist(&mut self, _batch: &Batch<'_>) -> Result<(), String> {
        self.did.push(Did::Finish);
        Ok(())
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
    for from in [2, 3] {
        let term = s.raft().status().term + 1;
        s.raft_mut().step(Message {
            from,
            to: 1,
            term,
            body: MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            },
        });
    }
    s.drive(&mut io).unwrap();
    let term = s.raft().status().term;
    for from in [2, 3] {
        s.raft_mut().step(Message {
            from,
            to: 1,
            term,
            body: MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            },
        });
    }
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
    let mut io = Recorder {
        delayed: true,
        ..Recorder::default()
    };
    let mut s = shell(2, 3);
    s.raft_mut().step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![Entry {
                term: 1,
                index: 1,
                kind: EntryKind::Noop,
                data: vec![],
            }],
            leader_commit: 0,
            read_ctx: 0,
        },
    });
    assert_eq!(s.drive(&mut io).unwrap(), Progress::PersistInFlight);
    assert!(
        !io.did.iter().any(|d| matches!(d, Did::Send(..))),
        "nothing acknowledged before the flush: {:?}",
        io.did
    );
    assert_eq!(s.in_flight_batch().map(|b| b.entries.len()), Some(1));
    s.finish(&mut io).unwrap();
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
    let mut io = Recorder {
        delayed: true,
        ..Recorder::default()
    };
    let mut s = shell(1, 1);
    s.raft_mut().campaign();
    while s.raft().has_ready() || s.persist_in_flight() {
        s.drive(&mut io).unwrap();
        s.finish(&mut io).unwrap();
    }
    s.propose(write(1, 1), 1).unwrap();
    assert_eq!(s.drive(&mut io).unwrap(), Progress::PersistInFlight);
    s.finish(&mut io).unwrap();
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
    s.finish(&mut io).unwrap();
    s.drive(&mut io).unwrap();
    assert!(io
        .did
        .contains(&Did::Answer(2, Answer::Applied(Outcome::Ok(json!(null))))));
}
