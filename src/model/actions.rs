//! The table of actions between cluster states: what each kind of action is, which budget it
//! spends, when it is enabled, what it does, and how a trace names it.
//!
//! Owns: `Action` (one concrete step) and `ACTIONS` (one row per kind). A new kind of action
//! (a disk fault, a recovery probe) is one variant of `Action` and one row here: its `offer`
//! lists the enabled instances in a fixed order and its `apply` performs one through the
//! cluster's own operations.
//! Must never: let an offer or an apply depend on anything but the state it is given (the
//! checker replays paths by action index), or spend a budget (the cluster spends the row's
//! budget before `apply`).

use super::cluster::Cluster;
use super::restart::Down;
use super::{Budget, Settings};
use crate::raft::{Message, NodeId, Role};
use crate::sim::cluster::short;
use crate::sim::disk::Damage;

/// One concrete step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The message reaches its receiver, which takes it and performs every `Ready`.
    Deliver(Message),
    Drop(Message),
    Duplicate(Message),
    /// The node's next timer fires: a leader's heartbeat, a follower's or candidate's election
    /// (with atomic pre-vote rounds, its pre-vote round answered at once).
    Timer(NodeId),
    /// With atomic pre-vote rounds: a follower's or candidate's timer fires and its pre-vote
    /// requests are lost, so it stays a pre-candidate.
    TimerUnanswered(NodeId),
    /// The node crashes and restarts from its durable state.
    Crash(NodeId),
    /// The node crashes while its last persist is under way: the persist is lost, and the
    /// acknowledgements waiting for it never leave.
    CrashLosingPersist(NodeId),
    /// The node loses its whole directory and restarts empty as a new incarnation, which must
    /// rejoin (only while every node is ordinary: at most one node without its state).
    Wipe(NodeId),
    /// The node crashes, its disk takes this damage, and it restarts through the start
    /// decision (only while every other node is ordinary).
    Damage(NodeId, Damage),
    /// The node is killed between its last persist's flush and the durable-progress record's
    /// write (the acknowledgements waiting for that persist never leave), and restarts.
    CrashLosingRecord(NodeId),
    /// Only with the storage order switched (`Settings::record_after_acks`): the node is
    /// killed after its last persist's acknowledgements left and before the record's write,
    /// and the disk loses that persist's sled write too (a rolled-back step the record cannot
    /// show), and it restarts.
    CrashAfterAcksLosingStep(NodeId),
    /// A client writes the next value at this node (only offered at a leader).
    Write(NodeId),
    /// A client reads at this node (only offered at a leader).
    Read(NodeId),
}

/// One kind of action.
pub struct ActionKind {
    pub name: &'static str,
    /// The budget one such action spends; none for the protocol's own steps.
    pub budget: Option<Budget>,
    /// Appends the enabled actions of this kind, in a fixed order (called only while its
    /// budget allows one more).
    pub offer: fn(&Cluster, &Settings, &mut Vec<Action>),
    /// Performs `action`, one of this kind's.
    pub apply: fn(&mut Cluster, &Action, &Settings),
    /// The action in the trace notation (the simulator's for messages).
    pub describe: fn(&Action) -> String,
}

/// Every kind of action, in the order the checker tries them.
pub const ACTIONS: [ActionKind; 13] = [
    ActionKind {
        name: "deliver",
        budget: None,
        offer: |c, _, out| each_message(c, out, Action::Deliver),
        apply: |c, a, _| {
            if let Action::Deliver(m) = a {
                c.deliver(m);
            }
        },
        describe: |a| match a {
            Action::Deliver(m) => format!("n{} <- n{} {}", m.to, m.from, short(m)),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "drop",
        budget: Some(Budget::Drop),
        offer: |c, _, out| each_message(c, out, Action::Drop),
        apply: |c, a, _| {
            if let Action::Drop(m) = a {
                c.take_message(m);
            }
        },
        describe: |a| match a {
            Action::Drop(m) => format!("network drops {}", short(m)),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "duplicate",
        budget: Some(Budget::Dup),
        offer: |c, _, out| each_message(c, out, Action::Duplicate),
        apply: |c, a, _| {
            if let Action::Duplicate(m) = a {
                c.duplicate(m);
            }
        },
        describe: |a| match a {
            Action::Duplicate(m) => format!("network duplicates {}", short(m)),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "timer",
        budget: Some(Budget::Timer),
        offer: |c, _, out| each_node(c, out, |_, _| true, Action::Timer),
        apply: |c, a, s| {
            if let Action::Timer(id) = a {
                c.fire_timer(*id, s, true);
            }
        },
        describe: |a| match a {
            Action::Timer(id) => format!("n{id} timer fires"),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "timer, pre-vote unanswered",
        budget: Some(Budget::Timer),
        offer: |c, s, out| {
            if s.atomic_pre_vote && s.pre_vote {
                each_node(c, out, |c, id| !is_leader(c, id), Action::TimerUnanswered);
            }
        },
        apply: |c, a, s| {
            if let Action::TimerUnanswered(id) = a {
                c.fire_timer(*id, s, false);
            }
        },
        describe: |a| match a {
            Action::TimerUnanswered(id) => {
                format!("n{id} timer fires, its pre-vote requests are lost")
            }
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "crash",
        budget: Some(Budget::Crash),
        offer: |c, _, out| each_node(c, out, |_, _| true, Action::Crash),
        apply: |c, a, s| {
            if let Action::Crash(id) = a {
                c.crash(*id, false, s);
            }
        },
        describe: |a| match a {
            Action::Crash(id) => format!("n{id} crashes and restarts"),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "crash losing the last persist",
        budget: Some(Budget::Crash),
        offer: |c, _, out| {
            for id in c.ids() {
                if c.can_lose_persist(id) {
                    out.push(Action::CrashLosingPersist(id));
                }
            }
        },
        apply: |c, a, s| {
            if let Action::CrashLosingPersist(id) = a {
                c.crash(*id, true, s);
            }
        },
        describe: |a| match a {
            Action::CrashLosingPersist(id) => {
                format!("n{id} crashes during its last persist (lost) and restarts")
            }
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "wipe",
        budget: Some(Budget::Wipe),
        offer: |c, _, out| each_node(c, out, |c, _| c.all_ordinary(), Action::Wipe),
        apply: |c, a, s| {
            if let Action::Wipe(id) = a {
                c.wipe(*id, s);
            }
        },
        describe: |a| match a {
            Action::Wipe(id) => format!("n{id} loses its directory and restarts empty"),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "damage",
        budget: Some(Budget::Damage),
        offer: |c, _, out| {
            for id in c.ids() {
                out.extend(c.damages(id).into_iter().map(|d| Action::Damage(id, d)));
            }
        },
        apply: |c, a, s| {
            if let Action::Damage(id, damage) = a {
                c.restart(*id, Down::Damaged(*damage), s);
            }
        },
        describe: |a| match a {
            Action::Damage(id, damage) => {
                format!("n{id} crashes, its disk damaged ({damage:?}), and restarts")
            }
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "crash losing the record's write",
        budget: Some(Budget::Damage),
        offer: |c, _, out| {
            for id in c.ids() {
                if c.can_lose_record(id) {
                    out.push(Action::CrashLosingRecord(id));
                }
            }
        },
        apply: |c, a, s| {
            if let Action::CrashLosingRecord(id) = a {
                c.restart(*id, Down::LosingRecord, s);
            }
        },
        describe: |a| match a {
            Action::CrashLosingRecord(id) => format!(
                "n{id} crashes after its last persist's flush, before its record's write, and \
                 restarts"
            ),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "crash after the acknowledgements, the step rolled back",
        budget: Some(Budget::Damage),
        offer: |c, s, out| {
            if s.record_after_acks {
                each_node(
                    c,
                    out,
                    Cluster::has_unrecorded_step,
                    Action::CrashAfterAcksLosingStep,
                );
            }
        },
        apply: |c, a, s| {
            if let Action::CrashAfterAcksLosingStep(id) = a {
                c.restart(*id, Down::AfterAcksLosingStep, s);
            }
        },
        describe: |a| match a {
            Action::CrashAfterAcksLosingStep(id) => format!(
                "n{id} crashes after its last persist's acknowledgements left, before its \
                 record's write, the disk loses the persist, and it restarts"
            ),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "client write",
        budget: Some(Budget::Write),
        offer: |c, _, out| each_node(c, out, is_leader, Action::Write),
        apply: |c, a, _| {
            if let Action::Write(id) = a {
                c.write(*id);
            }
        },
        describe: |a| match a {
            Action::Write(id) => format!("n{id} <- client write"),
            _ => unreachable_kind(a),
        },
    },
    ActionKind {
        name: "client read",
        budget: Some(Budget::Read),
        offer: |c, _, out| each_node(c, out, is_leader, Action::Read),
        apply: |c, a, _| {
            if let Action::Read(id) = a {
                c.read(*id);
            }
        },
        describe: |a| match a {
            Action::Read(id) => format!("n{id} <- client read"),
            _ => unreachable_kind(a),
        },
    },
];

impl Action {
    /// This action's row in `ACTIONS`.
    pub fn kind(&self) -> &'static ActionKind {
        let row = match self {
            Action::Deliver(_) => 0,
            Action::Drop(_) => 1,
            Action::Duplicate(_) => 2,
            Action::Timer(_) => 3,
            Action::TimerUnanswered(_) => 4,
            Action::Crash(_) => 5,
            Action::CrashLosingPersist(_) => 6,
            Action::Wipe(_) => 7,
            Action::Damage(..) => 8,
            Action::CrashLosingRecord(_) => 9,
            Action::CrashAfterAcksLosingStep(_) => 10,
            Action::Write(_) => 11,
            Action::Read(_) => 12,
        };
        &ACTIONS[row]
    }

    /// The action in the trace notation.
    pub fn describe(&self) -> String {
        (self.kind().describe)(self)
    }
}

/// One action per distinct message in flight (copies are one message).
fn each_message(c: &Cluster, out: &mut Vec<Action>, make: fn(Message) -> Action) {
    for (i, m) in c.network.iter().enumerate() {
        if !c.network[..i].contains(m) {
            out.push(make(m.clone()));
        }
    }
}

/// One action per node for which `enabled` holds, in id order.
fn each_node(
    c: &Cluster,
    out: &mut Vec<Action>,
    enabled: fn(&Cluster, NodeId) -> bool,
    make: fn(NodeId) -> Action,
) {
    for id in c.ids() {
        if enabled(c, id) {
            out.push(make(id));
        }
    }
}

fn is_leader(c: &Cluster, id: NodeId) -> bool {
    c.node(id).raft().status().role == Role::Leader
}

/// A row's `describe` was handed another kind's action: a mistake in the table.
fn unreachable_kind(a: &Action) -> String {
    debug_assert!(false, "action {a:?} described by another kind's row");
    format!("{a:?}")
}

#[cfg(test)]
mod table_tests {
    use super::*;

    /// Every variant maps to the row that offers, applies and describes it.
    #[test]
    fn each_action_maps_to_its_own_row() {
        let m = Message {
            from: 1,
            to: 2,
            term: 1,
            from_incarnation: 0,
            to_incarnation: 0,
            body: crate::raft::MessageBody::HeartbeatResponse { read_ctx: 0 },
        };
        let samples = [
            (Action::Deliver(m.clone()), "deliver"),
            (Action::Drop(m.clone()), "drop"),
            (Action::Duplicate(m), "duplicate"),
            (Action::Timer(1), "timer"),
            (Action::TimerUnanswered(1), "timer, pre-vote unanswered"),
            (Action::Crash(1), "crash"),
            (
                Action::CrashLosingPersist(1),
                "crash losing the last persist",
            ),
            (Action::Wipe(1), "wipe"),
            (Action::Damage(1, Damage::HardState), "damage"),
            (
                Action::CrashLosingRecord(1),
                "crash losing the record's write",
            ),
            (
                Action::CrashAfterAcksLosingStep(1),
                "crash after the acknowledgements, the step rolled back",
            ),
            (Action::Write(1), "client write"),
            (Action::Read(1), "client read"),
        ];
        assert_eq!(samples.len(), ACTIONS.len());
        for (action, name) in samples {
            assert_eq!(action.kind().name, name);
            assert!(!action.describe().starts_with(&format!("{action:?}")));
        }
    }
}
