//! Rejoining after a start with an empty directory, and incarnations.
//!
//! Owns: the core's side of a node that lost its state (a first boot, a wiped disk, or a damaged
//! directory kept aside): which messages an incarnation admits, the probe round that learns a
//! safe term, the catch-up that ends recovery, and what a leader forgets about a follower that
//! came back as a new incarnation.
//! Must never: let a recovering node vote, pre-vote, campaign or (while probing) acknowledge
//! anything, or count a reply addressed to another incarnation.
//!
//! The rules, as this module keeps them:
//! - Every message names its sender's incarnation and the receiver's as the sender last saw it;
//!   a reply names the incarnation of the request it answers. A node drops a reply naming an
//!   incarnation other than its own, and a request addressed to an earlier incarnation of it
//!   (answering the sender with a probe, so the sender learns the new one). Per peer it keeps
//!   the highest incarnation seen: lower ones are dropped, and a higher one makes this node
//!   forget what the earlier one sent or was told (a leader's progress for it goes back to
//!   probing from match 0, so the rejoined follower is refilled, by snapshot when the log is
//!   compacted; a candidate's vote from it and a read round's acknowledgement from it no longer
//!   count). A message naming, as this node's, an incarnation above its own means an earlier
//!   life of this directory got there first (a clock stepped back): the node takes a new
//!   incarnation above it and starts rejoining again.
//! - Probing (term and vote unknown): the node acknowledges nothing until every other node
//!   answered a probe of this incarnation. A majority is not enough: a majority may all answer
//!   below the term in which this node voted before the loss, while the candidate holding that
//!   vote still campaigns, and with this node's second vote two leaders could win that term.
//!   The node then takes the highest term answered (or its own, if higher) with a vote for
//!   itself, durably, and is catching up.
//! - Catching up: the node acknowledges appends (it holds what it acknowledges) but grants no
//!   vote or pre-vote and never campaigns, until the leader of its current term gave it every
//!   entry up to that leader's own commit index, in a message addressed to this incarnation (an
//!   accepted append whose entries reach the leader's commit, or a heartbeat flagged uncapped),
//!   and it holds an entry of that leader's term. Then it is ordinary again.
//! - A new cluster: when every answer comes from an empty node (no entry, no snapshot) and this
//!   node is empty too, nothing was ever committed, so catching up is skipped. The answers' terms
//!   may be above 0 (a node that finished probing first may already campaign); that is safe
//!   because this node takes the highest term answered with a vote for itself, so a vote it gave
//!   in an earlier life in any term a live candidate still campaigns in is never given twice.
//!   Requiring term 0 instead would leave a first boot where one node campaigns before the
//!   others finish probing with no majority able to vote, for good.

use super::Raft;
use crate::raft::progress::Progress;
use crate::raft::{MessageBody, NodeId, Recovery, Role};

/// What a peer answered to this incarnation's probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ProbeAnswer {
    pub term: u64,
    pub last_index: u64,
}

fn is_reply(body: &MessageBody) -> bool {
    matches!(
        body,
        MessageBody::RequestVoteResponse { .. }
            | MessageBody::AppendEntriesResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::InstallSnapshotResponse { .. }
            | MessageBody::ProbeResponse { .. }
    )
}

impl Raft {
    /// Applies the incarnation rules to a message from a peer; returns false when it must be
    /// dropped.
    pub(super) fn admit_incarnation(&mut self, m: &crate::raft::Message) -> bool {
        if self.cfg.bugs.ignore_incarnations {
            return true;
        }
        let seen = self.peer_incarnations.get(&m.from).copied();
        if seen.is_some_and(|seen| m.from_incarnation < seen) {
            return false;
        }
        if seen != Some(m.from_incarnation) {
            self.peer_incarnations.insert(m.from, m.from_incarnation);
            if seen.is_some() {
                self.forget_peer(m.from);
            }
        }
        if m.to_incarnation == self.incarnation {
            return true;
        }
        if m.to_incarnation > self.incarnation {
            self.reincarnate(m.to_incarnation);
            return false;
        }
        let reply = is_reply(&m.body);
        if m.to_incarnation == 0 && !reply {
            return true; // the sender has not seen this node yet
        }
        if !reply && !matches!(m.body, MessageBody::Probe) {
            self.send(m.from, MessageBody::Probe);
        }
        false
    }

    /// A peer came back as a new incarnation: nothing its earlier incarnation sent or was told
    /// counts again.
    fn forget_peer(&mut self, peer: NodeId) {
        self.votes.remove(&peer);
        for round in &mut self.read_rounds {
            round.acks.remove(&peer);
        }
        if self.role == Role::Leader && !self.cfg.bugs.keep_progress_of_new_incarnation {
            let next = self.log.last_index() + 1;
            self.progress.insert(peer, Progress::new(next));
        }
    }

    /// An earlier life of this directory used an incarnation at or above `named`: take one
    /// above it and rejoin again (probing again if the probe round was still owed).
    fn reincarnate(&mut self, named: u64) {
        let jitter = self.rng.next_u64() % (1 << 16);
        self.incarnation = named.saturating_add(1 + jitter);
        if self.recovery != Recovery::Probing {
            self.recovery = Recovery::CatchingUp;
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, None);
        }
        self.probe_answers.clear();
        self.send_probes();
    }

    /// While probing: the peers whose answer to this incarnation's probe is still missing.
    pub fn awaiting_probe_answers(&self) -> Vec<NodeId> {
        if self.recovery != Recovery::Probing {
            return Vec::new();
        }
        let answered = |p: &NodeId| self.probe_answers.contains_key(p);
        self.peers
            .iter()
            .copied()
            .filter(|p| !answered(p))
            .collect()
    }

    /// Does the recovering mark forbid granting this (pre-)vote?
    pub(super) fn recovery_forbids_vote(&self, pre_vote: bool) -> bool {
        match self.recovery {
            Recovery::Ordinary => false,
            _ if pre_vote => !self.cfg.bugs.pre_vote_while_recovering,
            _ => true,
        }
    }

    /// While probing, only probes and their answers are taken.
    pub(super) fn probing_drops(&self, body: &MessageBody) -> bool {
        self.recovery == Recovery::Probing
            && !self.cfg.bugs.ack_while_probing
            && !matches!(body, MessageBody::Probe | MessageBody::ProbeResponse { .. })
    }

    /// Probes every peer this incarnation has no answer from (every peer when catching up:
    /// the probe tells them this incarnation, so a leader resets its view of this node).
    pub(super) fn send_probes(&mut self) {
        for p in self.peers.clone() {
            if !self.probe_answers.contains_key(&p) {
                self.send(p, MessageBody::Probe);
            }
        }
    }

    /// The election timer fired on a recovering node: probe again instead of campaigning.
    pub(super) fn recovering_timeout(&mut self) {
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.send_probes();
    }

    /// Every node answers probes, recovering or not, with its term and its real last position
    /// (its snapshot counted). The core's term is never below its last entry's term.
    pub(super) fn answer_probe(&mut self, from: NodeId) {
        debug_assert!(self.term >= self.log.last_term());
        let body = MessageBody::ProbeResponse {
            last_log_term: self.log.last_term(),
            last_log_index: self.log.last_index(),
        };
        self.send(from, body);
    }

    /// An answer to this incarnation's probe (its incarnation was checked on admission).
    pub(super) fn take_probe_answer(&mut self, from: NodeId, term: u64, last_index: u64) {
        if self.recovery != Recovery::Probing {
            return;
        }
        self.probe_answers
            .insert(from, ProbeAnswer { term, last_index });
        let needed = if self.cfg.bugs.probe_majority_only {
            self.quorum() - 1
        } else {
            self.peers.len()
        };
        if self.probe_answers.len() >= needed {
            self.finish_probing();
        }
    }

    /// A start that is not ordinary probes its peers. A one-node cluster is ordinary at once:
    /// there is no one to answer, no leader to catch up from and no other copy of anything (a
    /// one-node cluster that lost its disk lost its data, whatever it does).
    pub(super) fn start_rejoining(&mut self) {
        if self.peers.is_empty() {
            self.recovery = Recovery::Ordinary;
            return;
        }
        self.send_probes();
    }

    /// The unsafe variant `probe_majority_then_await_leader`: once a majority (this node
    /// counted) answered, a leader's message of a term above every answer ends the probe round,
    /// and the node follows that leader with no vote in its term. Unsafe because the answers
    /// may all lie below a term in which this node voted before the loss: the candidate
    /// holding that vote may be the leader it now follows, and the node can vote again in that
    /// term once caught up.
    pub(super) fn maybe_end_probing_by_higher_leader(&mut self, m: &crate::raft::Message) {
        if !self.cfg.bugs.probe_majority_then_await_leader
            || self.recovery != Recovery::Probing
            || self.probe_answers.len() + 1 < self.quorum()
        {
            return;
        }
        let from_leader = matches!(
            m.body,
            MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
        );
        let highest = self.probe_answers.values().map(|a| a.term).max();
        if from_leader && m.term > highest.unwrap_or(0).max(self.term) {
            self.become_follower(m.term, Some(m.from));
            self.recovery = Recovery::CatchingUp;
            self.probe_answers.clear();
        }
    }

    /// Every needed answer is in: take the highest term with a vote for itself; a new cluster
    /// (every node empty) is ordinary at once.
    fn finish_probing(&mut self) {
        let highest = self.probe_answers.values().map(|a| a.term).max();
        let term = highest.unwrap_or(0).max(self.term);
        let new_cluster =
            self.log.last_index() == 0 && self.probe_answers.values().all(|a| a.last_index == 0);
        self.become_follower(term, None);
        self.vote = Some(self.cfg.id);
        self.recovery = if new_cluster {
            Recovery::Ordinary
        } else {
            Recovery::CatchingUp
        };
        self.probe_answers.clear();
    }

    /// Catch-up ends when the current term's leader, in a message addressed to this
    /// incarnation, showed this node holds every entry up to the leader's own commit index
    /// (`held` is the last index known to match the leader, `leader_commit` uncapped), and
    /// this node holds an entry of the leader's term.
    pub(super) fn maybe_caught_up(&mut self, to_incarnation: u64, held: u64, leader_commit: u64) {
        let addressed = to_incarnation == self.incarnation;
        if self.recovery == Recovery::CatchingUp
            && addressed
            && held >= leader_commit
            && self.log.last_term() == self.term
        {
            self.recovery = Recovery::Ordinary;
        }
    }
}
