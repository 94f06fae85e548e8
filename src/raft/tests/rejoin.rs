//! Rejoining after a lost directory: probes, catch-up and incarnations, each unsafe variant
//! shown to make the test that targets it fail.

use super::*;

impl Cluster {
    /// A cluster whose every node starts with an empty directory (a first boot): probing, each
    /// with its own incarnation.
    fn first_boot(n: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let mut c = Cluster::new(n, seed, tweak);
        for id in 1..=n {
            c.wipe(id, 100 + id);
        }
        c
    }

    /// Node `id` loses its directory and starts empty as incarnation `incarnation`, its term
    /// and vote unknown.
    fn wipe(&mut self, id: NodeId, incarnation: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.disk = Durable {
            hs: HardState {
                recovery: Recovery::Probing,
                incarnation,
                ..HardState::default()
            },
            ..Durable::default()
        };
        self.restart(id);
    }

    fn recovery(&self, id: NodeId) -> Recovery {
        self.status(id).recovery
    }

    /// Messages `id` sent that acknowledge or grant something.
    fn grants_and_acks_from(&self, id: NodeId) -> Vec<&Message> {
        self.sent
            .iter()
            .filter(|m| m.from == id)
            .filter(|m| match &m.body {
                MessageBody::RequestVoteResponse { granted, .. } => *granted,
                MessageBody::AppendEntriesResponse { success, .. } => *success,
                MessageBody::HeartbeatResponse { .. } => true,
                MessageBody::InstallSnapshotResponse { .. } => true,
                _ => false,
            })
            .collect()
    }
}

fn with(b: Bugs) -> impl Fn(&mut Config) {
    move |cfg| cfg.bugs = b.clone()
}

#[test]
fn a_first_boot_probes_then_elects_and_commits() {
    let mut c = Cluster::first_boot(3, 7, |_| {});
    assert_eq!(c.recovery(1), Recovery::Probing);
    let leader = c.wait_leader(100);
    let p = c.write(leader, 1, 10);
    c.run(5);
    for id in 1..=3 {
        assert_eq!(c.recovery(id), Recovery::Ordinary, "node {id}");
        assert!(c.status(id).commit >= p.index, "node {id}");
    }
    assert!(c.converged());
    c.check();
}

/// Node 3 is wiped after five writes committed everywhere; it comes back as a new
/// incarnation. Returns node 3's final status and whether the cluster converged.
fn wiped_follower_rejoins(b: Bugs, snapshot_every: Option<u64>) -> (Status, bool) {
    let mut c = Cluster::new(3, 11, with(b));
    if let Some(every) = snapshot_every {
        c.set_snapshot_every(every);
    }
    let leader = c.wait_leader(100);
    assert_ne!(leader, 3, "seed 11 elects another node first");
    for k in 0..5 {
        c.write(leader, k, k);
        c.deliver_all();
    }
    c.run(3);
    c.wipe(3, 500);
    c.run(60);
    c.check();
    (c.status(3), c.converged())
}

#[test]
fn a_wiped_follower_is_refilled_and_ordinary_again() {
    for every in [None, Some(3)] {
        let (st, converged) = wiped_follower_rejoins(Bugs::default(), every);
        assert_eq!(st.recovery, Recovery::Ordinary, "snapshots every {every:?}");
        assert!(converged, "snapshots every {every:?}");
        assert_eq!(st.incarnation, 500);
    }
}

#[test]
fn a_leader_that_keeps_its_view_of_a_wiped_follower_never_refills_it() {
    let bugs = Bugs {
        keep_progress_of_new_incarnation: true,
        ..Bugs::default()
    };
    let (st, converged) = wiped_follower_rejoins(bugs, None);
    assert!(
        st.recovery != Recovery::Ordinary || !converged,
        "the switch must leave the wiped follower behind: {st:?}"
    );
}

/// Node 3 is wiped in an idle cluster that snapshots every entry, so it is refilled by a
/// snapshot; the empty appends that follow the leader's first probe are lost, so only heartbeats
/// can tell it the leader's commit. Returns its mark after a while.
fn idle_rejoin(b: Bugs) -> Recovery {
    let mut c = Cluster::new(3, 11, with(b));
    c.set_snapshot_every(1);
    let leader = c.wait_leader(100);
    assert_ne!(leader, 3);
    c.write(leader, 1, 1);
    c.run(5);
    c.wipe(3, 600);
    // The first empty append is the leader's probe for node 3's match point; let it through.
    let empty_appends = std::cell::Cell::new(0);
    c.filter = drop_if(move |m| {
        let empty =
            matches!(&m.body, MessageBody::AppendEntries { entries, .. } if entries.is_empty());
        if m.to == 3 && empty {
            empty_appends.set(empty_appends.get() + 1);
            return empty_appends.get() > 1;
        }
        false
    });
    c.run(60);
    c.check();
    assert_eq!(c.status(3).last_index, c.status(leader).commit);
    c.recovery(3)
}

#[test]
fn an_idle_leader_ends_a_catch_up_with_its_uncapped_commit() {
    assert_eq!(idle_rejoin(Bugs::default()), Recovery::Ordinary);
    let stuck = idle_rejoin(Bugs {
        never_send_uncapped_commit: true,
        ..Bugs::default()
    });
    assert_eq!(
        stuck,
        Recovery::CatchingUp,
        "the switch must leave it recovering"
    );
}

/// Four writes commit, then node 3 is wiped; the leader's appends carry one entry each and
/// every append to node 3 past the first entry is lost from now on. Returns the cluster and
/// its leader.
fn wiped_and_held_behind(b: Bugs) -> (Cluster, NodeId) {
    let mut c = Cluster::new(3, 11, |cfg| {
        cfg.bugs = b.clone();
        cfg.max_batch_bytes = 1;
    });
    let leader = c.wait_leader(100);
    for k in 0..4 {
        c.write(leader, k, k);
        c.deliver_all();
    }
    c.run(3);
    c.wipe(3, 700);
    c.filter = drop_if(|m| {
        m.to == 3
            && matches!(&m.body, MessageBody::AppendEntries { entries, .. }
                if entries.first().is_some_and(|e| e.index >= 2))
    });
    (c, leader)
}

/// Node 3 is wiped; the leader's appends to it carry one entry each and only the first (the
/// leader's own-term no-op) reaches it, so it holds less than the leader's commit. Returns its mark and log
/// length against the leader's commit.
fn partial_refill(b: Bugs) -> (Recovery, u64, u64) {
    let (mut c, leader) = wiped_and_held_behind(b);
    c.run(40);
    c.check();
    let st = c.status(3);
    (st.recovery, st.last_index, c.status(leader).commit)
}

#[test]
fn a_heartbeat_capped_at_what_the_follower_holds_ends_no_catch_up() {
    let (mark, last, commit) = partial_refill(Bugs::default());
    assert!(
        last < commit,
        "the filter must keep node 3 behind: {last} < {commit}"
    );
    assert_eq!(mark, Recovery::CatchingUp);
    let (mark, last, commit) = partial_refill(Bugs {
        catch_up_by_capped_commit: true,
        ..Bugs::default()
    });
    assert!(last < commit);
    assert_eq!(
        mark,
        Recovery::Ordinary,
        "the switch must end catch-up early"
    );
}

/// A 3-node cluster with one committed write, whose node `x` (not the leader) is wiped as
/// incarnation 800 while cut off from the third node. Returns the cluster, the leader, `x` and
/// the third node.
fn wiped_beside_a_silent_peer(b: Bugs) -> (Cluster, NodeId, NodeId, NodeId) {
    let mut c = Cluster::new(3, 11, with(b));
    let leader = c.wait_leader(100);
    c.write(leader, 1, 1);
    c.run(3);
    let x = if leader == 1 { 2 } else { 1 };
    let third = 6 - leader - x;
    c.cut.insert((x, third));
    c.cut.insert((third, x));
    c.wipe(x, 800);
    (c, leader, x, third)
}

/// Node `x` is wiped while cut off from the third node, so its probe round cannot finish.
/// Returns its mark and how many grants or acknowledgements it sent.
fn probing_cut_off(b: Bugs) -> (Recovery, usize) {
    let (mut c, leader, x, _) = wiped_beside_a_silent_peer(b);
    c.sent.clear();
    c.write(leader, 2, 2);
    c.run(40);
    c.check();
    (c.recovery(x), c.grants_and_acks_from(x).len())
}

#[test]
fn a_probing_node_acknowledges_nothing_until_every_peer_answered() {
    assert_eq!(probing_cut_off(Bugs::default()), (Recovery::Probing, 0));
    let (_, sent) = probing_cut_off(Bugs {
        ack_while_probing: true,
        ..Bugs::default()
    });
    assert!(
        sent > 0,
        "the switch must make the probing node acknowledge"
    );
    let (mark, _) = probing_cut_off(Bugs {
        probe_majority_only: true,
        ..Bugs::default()
    });
    assert_ne!(
        mark,
        Recovery::Probing,
        "the switch must end probing on a majority"
    );
}

/// Node `x` is wiped while cut off from the third node, so only the leader answers its probe
/// (a majority with `x`); then a heartbeat of a higher term arrives from the third node, as
/// from a leader elected meanwhile. Returns `x`'s mark and term and whether it acknowledged.
fn probing_meets_a_higher_leader(b: Bugs) -> (Recovery, u64, bool) {
    let (mut c, leader, x, third) = wiped_beside_a_silent_peer(b);
    c.run(10);
    assert_eq!(c.raft(x).awaiting_probe_answers(), vec![third]);
    let term = c.status(leader).term + 1;
    c.sent.clear();
    c.raft(x).step(Message {
        from: third,
        to: x,
        term,
        from_incarnation: 1,
        to_incarnation: 800,
        body: MessageBody::Heartbeat {
            commit: 0,
            read_ctx: 0,
            uncapped: false,
        },
    });
    c.process(x);
    let acked = !c.grants_and_acks_from(x).is_empty();
    (c.recovery(x), c.status(x).term, acked)
}

#[test]
fn a_leader_of_a_higher_term_ends_no_probe_round_a_peer_has_not_answered() {
    let (mark, _, acked) = probing_meets_a_higher_leader(Bugs::default());
    assert_eq!((mark, acked), (Recovery::Probing, false));
    let (mark, term, acked) = probing_meets_a_higher_leader(Bugs {
        probe_majority_then_await_leader: true,
        ..Bugs::default()
    });
    assert_eq!(
        (mark, acked),
        (Recovery::CatchingUp, true),
        "the switch must follow the higher leader"
    );
    assert!(term >= 2);
}

/// The answers to an earlier incarnation's probes arrive after the node was wiped again.
/// Returns the node's mark once they are delivered.
fn stale_probe_answers(b: Bugs) -> Recovery {
    let mut c = Cluster::new(3, 5, with(b));
    let leader = c.wait_leader(100);
    c.write(leader, 1, 1);
    c.run(3);
    let node = if leader == 3 { 2 } else { 3 };
    c.wipe(node, 900);
    let probes: Vec<Message> = c.net.drain(..).filter(|m| m.from == node).collect();
    for m in probes {
        let to = m.to;
        c.raft(to).step(m);
        c.process(to);
    }
    let answers: Vec<Message> = c
        .net
        .drain(..)
        .filter(|m| matches!(m.body, MessageBody::ProbeResponse { .. }))
        .collect();
    assert_eq!(answers.len(), 2, "both peers answer incarnation 900");
    c.wipe(node, 901);
    c.net.clear();
    for m in answers {
        c.raft(node).step(m);
    }
    c.recovery(node)
}

#[test]
fn an_answer_to_an_earlier_incarnations_probe_is_not_counted() {
    assert_eq!(stale_probe_answers(Bugs::default()), Recovery::Probing);
    let counted = stale_probe_answers(Bugs {
        ignore_incarnations: true,
        ..Bugs::default()
    });
    assert_ne!(
        counted,
        Recovery::Probing,
        "the switch must count the stale answers"
    );
}

/// Node 3 is kept catching up (as in `partial_refill`), then the leader crashes and the third
/// node runs a pre-vote. Returns the pre-votes node 3 granted.
fn pre_votes_while_catching_up(b: Bugs) -> usize {
    let (mut c, leader) = wiped_and_held_behind(b);
    c.run(20);
    assert_eq!(c.recovery(3), Recovery::CatchingUp);
    c.crash(leader);
    c.sent.clear();
    c.run(40);
    c.sent
        .iter()
        .filter(|m| m.from == 3)
        .filter(|m| {
            matches!(
                m.body,
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true
                }
            )
        })
        .count()
}

#[test]
fn a_catching_up_node_grants_no_pre_vote() {
    assert_eq!(pre_votes_while_catching_up(Bugs::default()), 0);
    let granted = pre_votes_while_catching_up(Bugs {
        pre_vote_while_recovering: true,
        ..Bugs::default()
    });
    assert!(granted > 0, "the switch must grant a pre-vote");
}
