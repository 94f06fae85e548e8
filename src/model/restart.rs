//! A node's crash and restart in the model: what the crash leaves on its disk (the last
//! persist kept, lost, or kept by sled without the durable-progress record; a damage), the
//! start decision the node makes on it (`crate::sim::disk::Disk::decide_start`, which applies
//! the shared `crate::shell::rejoin::decide` exactly as the node and the simulator do), and two
//! rule-level checks of that decision against what the model knows the node did before.
//!
//! Owns: `Down` (how a node goes down), the disk faults the `damage` fault offers, the restart,
//! and the properties "a restart owes what the node owed" and "a restart keeps every vote
//! granted".
//! Must never: decide a start other than through the shared decision, let a damage strike
//! while another node is without its state (then a majority may have lost committed entries
//! whatever the nodes do; the simulator's `corrupt` fault holds the same guard), or keep
//! anything of a directory the decision replaced.

use super::cluster::Cluster;
use super::Settings;
use crate::raft::{Message, MessageBody, NodeId, Recovery};
use crate::shell::rejoin::{worst, Start};
use crate::sim::disk::Damage;

pub const RESTART_OWES: &str = "a restart owes what the node owed";
pub const RESTART_KEEPS_VOTES: &str = "a restart keeps every vote granted";

/// How a node goes down before it restarts at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// Its disk as the last persist left it.
    Crash,
    /// Its last persist lost whole (sled's part and the record).
    LosingPersist,
    /// Killed between sled's flush of its last persist and the durable-progress record's
    /// write: sled holds the step, the record the one before (a clean directory whose two
    /// copies are one step apart).
    LosingRecord,
    /// Its disk damaged in this way (one of `Disk::possible_damages`).
    Damaged(Damage),
    /// Only with the storage order switched (`Settings::record_after_acks`): killed after its
    /// last persist's acknowledgements left and before the record's write, and sled's part of
    /// that persist lost as well: the disk is the one before the persist, record included,
    /// while what the acknowledgements promised is out in the cluster.
    AfterAcksLosingStep,
}

impl Cluster {
    /// Node `id` goes down as `down` says and restarts through the start decision; the state
    /// machine, the client operations waiting there and everything volatile start over.
    pub fn restart(&mut self, id: NodeId, down: Down, settings: &Settings) {
        match down {
            Down::LosingPersist | Down::LosingRecord => {
                self.lose_last_persist(id, down == Down::LosingRecord)
            }
            Down::AfterAcksLosingStep => {
                // Its acknowledgements left: they stay out in the cluster.
                let _ = self.roll_back_last_persist(id, false);
            }
            Down::Crash | Down::Damaged(_) => {}
        }
        // The mark of the last persist step that completed (the record is written last).
        let owed = self.node(id).durable.record.map(|r| r.durable.recovery);
        if let Down::Damaged(damage) = down {
            self.node_mut(id).durable.damage(damage);
        }
        let highest = self
            .nodes
            .iter()
            .map(|n| n.durable.hard_state.incarnation)
            .max()
            .unwrap_or(0);
        let node = self.node_mut(id);
        node.unacked = None;
        // The model's clock for incarnations: one above every incarnation in use and the floor.
        let start = node
            .durable
            .decide_start(settings.rejoin_bugs, |floor| 1 + floor.max(highest));
        if matches!(start, Start::Empty(_)) {
            // What it applied is gone with the directory set aside.
            node.served = 0;
        }
        if settings.restart_checks {
            self.check_start(id, owed, &start);
        }
        self.boot_from_disk(id, settings);
    }

    /// Takes back node `id`'s last persist, whose acknowledgements never left: whole, or
    /// (`keep_sled`) only the durable-progress record's write.
    fn lose_last_persist(&mut self, id: NodeId, keep_sled: bool) {
        let Some(acks) = self.roll_back_last_persist(id, keep_sled) else {
            return;
        };
        for a in &acks {
            // A grant that never left was never a vote.
            if let MessageBody::RequestVoteResponse {
                granted: true,
                pre_vote: false,
            } = a.body
            {
                self.votes.retain(|v| *v != (a.term, a.from, a.to));
            }
            if let Some(i) = self.network.iter().position(|m| m == a) {
                self.network.swap_remove(i);
            }
        }
    }

    /// Puts node `id`'s disk back to before its last persist, whole or (`keep_sled`) only the
    /// record; returns that persist's acknowledgements (None when no persist can be undone).
    fn roll_back_last_persist(&mut self, id: NodeId, keep_sled: bool) -> Option<Vec<Message>> {
        let node = self.node_mut(id);
        let unacked = node.unacked.take()?;
        if keep_sled {
            node.durable.record = unacked.before.record;
        } else {
            node.durable = unacked.before;
        }
        Some(unacked.acks)
    }

    /// The rule-level checks of a start decision.
    ///
    /// "A restart owes what the node owed": when the last completed persist step said probing
    /// (or catching up), the start probes (or starts empty). The correct decision keeps it:
    /// the record is written after sled in every step, so it holds that step's mark unless it
    /// is damaged (then the start probes) or a damage put an older record back (then sled's
    /// copy is unreadable and the start probes); a rolled-back sled copy owes at least as
    /// much, since the mark only goes from probing to catching up to ordinary; and the
    /// decision takes the copy that owes more.
    ///
    /// "A restart keeps every vote granted": a start that carries a term and vote forward
    /// from a damaged or unfinished directory carries, for every vote this node granted in
    /// any life, a higher term, or that term with that vote or a vote for itself (either way
    /// it grants nobody else in that term). The correct decision keeps it: a grant leaves only
    /// after its persist wrote sled and then the record, later steps never lower either, and
    /// the decision carries the larger of the two only when both read intact (a rolled-back
    /// or stale copy is the smaller one, and a misdirected write leaves one copy unreadable);
    /// a start that probed takes a term at least every other node's, and the candidate of
    /// any vote it gave before is at that vote's term or above. A start on the directory as
    /// it is carries sled's hard state, which a grant waits for; "one vote per term" checks
    /// those.
    fn check_start(&mut self, id: NodeId, owed: Option<Recovery>, start: &Start) {
        let owed = owed.unwrap_or(Recovery::Ordinary);
        let started = match start {
            Start::AsIs => Recovery::Ordinary,
            Start::Empty(how) => how.recovery,
        };
        if worst(started, owed) != started {
            self.violate(
                RESTART_OWES,
                format!("n{id} owed {owed:?} and restarted {started:?} ({start:?})"),
            );
            return;
        }
        let Start::Empty(how) = start else {
            return;
        };
        if how.recovery == Recovery::Probing {
            return;
        }
        let forgotten = self.votes.iter().find(|&&(term, voter, candidate)| {
            voter == id
                && (how.term < term
                    || (how.term == term && how.vote != Some(candidate) && how.vote != Some(id)))
        });
        if let Some(&(term, _, candidate)) = forgotten {
            let detail = format!(
                "n{id} voted for n{candidate} in term {term} and restarted with term {} vote {:?}",
                how.term, how.vote
            );
            self.violate(RESTART_KEEPS_VOTES, detail);
        }
    }

    /// The damages node `id`'s disk may take now, one per distinct read a start would make of
    /// it (two damages a start reads alike lead to the same state: the start replaces the
    /// disk). None while another node is without its state, or before this one wrote any.
    pub fn damages(&self, id: NodeId) -> Vec<Damage> {
        let disk = &self.node(id).durable;
        if !self.all_ordinary_but(Some(id)) || disk.record.is_none() {
            return Vec::new();
        }
        let mut reads = Vec::new();
        let mut kinds = Vec::new();
        for damage in disk.possible_damages(disk.last_index(), disk.first_index()) {
            let mut damaged = disk.clone();
            damaged.damage(damage);
            let read = damaged.start_read();
            if !reads.contains(&read) {
                reads.push(read);
                kinds.push(damage);
            }
        }
        kinds
    }

    /// True when node `id` may be killed between its last persist's flush and its record's
    /// write: the persist could still be lost (`can_lose_persist`) and it changed the record.
    /// It over-approximates: a step that truncates the log writes the record first, so this
    /// kill cannot follow one; offering it anyway adds states a search must also keep safe.
    pub fn can_lose_record(&self, id: NodeId) -> bool {
        let node = self.node(id);
        self.can_lose_persist(id)
            && node
                .unacked
                .as_ref()
                .is_some_and(|u| u.before.record != node.durable.record)
    }

    /// True when node `id`'s last persist changed its disk and nothing but that persist's
    /// acknowledgements left since: with the record written after them, a kill now finds the
    /// record from before the persist.
    pub fn has_unrecorded_step(&self, id: NodeId) -> bool {
        let node = self.node(id);
        node.unacked
            .as_ref()
            .is_some_and(|u| u.before != node.durable)
    }

    /// Boots node `id`'s shell on its disk (after the start decision) and re-applies its
    /// durable committed prefix.
    fn boot_from_disk(&mut self, id: NodeId, settings: &Settings) {
        let idx = (id - 1) as usize;
        let node = self.node_mut(id);
        // A fresh shell: writes waiting here stay in the history without a completion (they
        // may or may not have happened); reads have no effect, so theirs are dropped.
        match super::cluster::boot_shell(id, &node.durable, settings) {
            Ok(shell) => node.shell = shell,
            Err(e) => {
                self.violate(
                    super::cluster::RECOVERY,
                    format!("n{id} cannot restart: {e}"),
                );
                return;
            }
        }
        self.check_applied_stay_durable(idx);
        self.turn(id, |_| {});
    }
}
