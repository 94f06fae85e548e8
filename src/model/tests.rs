//! The model checker's own tests: the real core keeps every property in every state it
//! explores at a small depth with every fault, the reachability checks are met (a model that
//! never elects, commits or serves is caught), and a bug switch is found with the shortest
//! path to it, while the same search without the switch finds nothing.

use super::cli::{describe_action, run, trace, Args, Outcome};
use super::{props, step, switch, Action, Cluster, Faults, Settings};
use crate::check::{EventKind, Op};

fn explore(settings: Settings, depth: usize) -> Outcome {
    let args = Args {
        settings,
        depth,
        threads: 1,
        quiet: true,
    };
    run(&args, &mut |_| {})
}

fn reached(out: &Outcome, name: &str) -> bool {
    out.reached.iter().any(|(n, yes)| *n == name && *yes)
}

fn violation_name(out: &Outcome) -> Option<&'static str> {
    out.violation.as_ref().map(|(name, _, _)| *name)
}

#[test]
fn the_core_keeps_every_property_to_depth_8_with_every_fault() {
    let out = explore(Settings::default(), 8);
    assert_eq!(
        violation_name(&out),
        None,
        "{:?}",
        out.violation.map(|v| v.1)
    );
    assert_eq!(out.depth, 8, "the whole depth was covered");
    assert!(
        out.unique > 10_000,
        "a real search: {} unique states",
        out.unique
    );
    assert!(reached(&out, props::A_LEADER_IS_ELECTED));
}

/// A write commits and a read is served within the depth, so properties that hold
/// "vacuously" would show up as unreached here.
#[test]
fn a_write_commits_and_a_read_is_served() {
    let settings = Settings {
        faults: Faults::none(),
        max_term: 1,
        ..Settings::default()
    };
    let out = explore(settings, 11);
    assert_eq!(violation_name(&out), None);
    for name in [
        props::A_LEADER_IS_ELECTED,
        props::A_WRITE_COMMITS,
        props::A_READ_IS_SERVED,
    ] {
        assert!(reached(&out, name), "{name} not reached: {:?}", out.reached);
    }
}

/// The settings that find `vote_without_persist` fast: one term, crashes only, no clients.
fn one_term_with_crashes() -> Settings {
    Settings {
        faults: Faults::parse("crash").unwrap(),
        writes: 0,
        reads: 0,
        max_term: 1,
        ..Settings::default()
    }
}

#[test]
fn a_vote_granted_before_it_is_durable_is_found() {
    let clean = explore(one_term_with_crashes(), 10);
    assert_eq!(
        violation_name(&clean),
        None,
        "the correct core votes once per term"
    );
    assert_eq!(clean.depth, 10);

    let broken = Settings {
        bugs: switch("vote_without_persist").unwrap(),
        ..one_term_with_crashes()
    };
    let out = explore(broken, 10);
    let (name, detail, path) = out.violation.expect("the switch is found");
    assert_eq!(name, "one vote per term", "{detail}");
    let text = trace(&path);
    assert!(
        text.contains("crashes"),
        "the path crashes the voter:\n{text}"
    );
    assert!(
        text.contains("step=  9"),
        "shortest path is 9 actions:\n{text}"
    );
}

/// The model runs the shared shell, so a mistake in the shell is found too: an append
/// acknowledged before its flush is lost with the flush by a crash, so the leader counts a
/// replica that is not there and commits an entry that an electable node lacks. The same search
/// on the correct shell finds nothing (`a_vote_granted_before_it_is_durable_is_found`).
#[test]
fn an_acknowledgement_sent_before_its_flush_is_found() {
    let broken = Settings {
        shell_bugs: crate::shell::ShellBugs {
            ack_before_flush: true,
        },
        ..one_term_with_crashes()
    };
    let out = explore(broken, 10);
    let (name, detail, path) = out.violation.expect("the shell switch is found");
    assert_eq!(name, props::COMMITTED_OUT_OF_REACH, "{detail}");
    let text = trace(&path);
    assert!(
        text.contains("crashes during its last persist"),
        "the path loses the acknowledged flush:\n{text}"
    );
}

#[test]
fn bad_switch_and_fault_names_are_refused_by_name() {
    assert!(switch("no_such_switch")
        .unwrap_err()
        .contains("unknown switch `no_such_switch`"));
    assert!(Faults::parse("crash,flood")
        .unwrap_err()
        .contains("unknown fault `flood`"));
}

/// Plays a path given as one action description fragment per step (the trace notation), each
/// matching exactly one enabled action; returns the state after it.
fn play(settings: &Settings, steps: &[&str]) -> Cluster {
    let mut c = Cluster::new(settings).expect("an empty cluster starts");
    for (k, wanted) in steps.iter().enumerate() {
        let mut enabled = Vec::new();
        c.actions(&mut enabled);
        let matching: Vec<&Action> = enabled
            .iter()
            .filter(|a| describe_action(a).contains(wanted))
            .collect();
        let descriptions: Vec<String> = enabled.iter().map(describe_action).collect();
        assert_eq!(
            matching.len(),
            1,
            "step {} `{wanted}` must match one of {descriptions:#?}",
            k + 1
        );
        c = step(&c, matching[0], settings);
    }
    c
}

/// n1 wins term 1 with n2's vote, a write commits on n1 and n2 (n2 learns commit 1 only), then
/// n2 wins term 2 with n3's vote, so n2's commit index (1) is older than the write (2).
const LEADER_CHANGE_AFTER_A_WRITE: [&str; 15] = [
    "n1 timer fires",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: true",
    "n1 <- n2 2->1 term=1 RequestVoteResponse { pre_vote: true",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: false",
    "n1 <- n2 2->1 term=1 RequestVoteResponse { pre_vote: false",
    "n2 <- n1 1->2 term=1 Append prev=0/0",
    "n1 <- client write",
    "n1 <- n2 2->1 term=1 AppendEntriesResponse { success: true, index: 1",
    "n2 <- n1 1->2 term=1 Append prev=1/1",
    "n1 <- n2 2->1 term=1 AppendEntriesResponse { success: true, index: 2",
    "n2 timer fires",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: true",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: true",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: false",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: false",
];

fn reads_after_leader_change(bug: &str, then: &[&str]) -> Cluster {
    let settings = Settings {
        faults: Faults::none(),
        bugs: if bug.is_empty() {
            Default::default()
        } else {
            switch(bug).unwrap()
        },
        ..Settings::default()
    };
    let mut steps: Vec<&str> = LEADER_CHANGE_AFTER_A_WRITE.to_vec();
    steps.extend_from_slice(then);
    play(&settings, &steps)
}

fn history_ok(c: &Cluster, f: Op) -> bool {
    c.history
        .iter()
        .any(|e| e.f == f && e.kind == EventKind::Ok)
}

#[test]
fn a_read_without_read_index_after_a_leader_change_breaks_linearizability() {
    let read = ["n2 <- client read"];
    let clean = reads_after_leader_change("", &read);
    assert!(history_ok(&clean, Op::Write), "the write was acknowledged");
    assert!(
        !history_ok(&clean, Op::Read),
        "the correct core waits for its own-term commit"
    );
    assert_eq!(clean.violation, None);

    let broken = reads_after_leader_change("read_without_read_index", &read);
    let v = broken.violation.expect("the stale read is caught");
    assert_eq!(v.property, super::cluster::LINEARIZABLE, "{}", v.detail);
}

#[test]
fn a_read_index_round_before_the_own_term_commit_breaks_linearizability() {
    let read_round = [
        "n2 <- client read",
        "n3 <- n2 2->3 term=2 Heartbeat",
        "n2 <- n3 3->2 term=2 HeartbeatResponse",
    ];
    // The correct core starts no round before its no-op commits: no heartbeat to deliver.
    let settings = Settings {
        faults: Faults::none(),
        ..Settings::default()
    };
    let mut steps: Vec<&str> = LEADER_CHANGE_AFTER_A_WRITE.to_vec();
    steps.push(read_round[0]);
    let clean = play(&settings, &steps);
    assert!(!clean.network.iter().any(|m| matches!(
        m.body,
        crate::raft::MessageBody::Heartbeat { read_ctx: 1, .. }
    )));
    assert_eq!(clean.violation, None);

    let broken = reads_after_leader_change("read_before_own_term_commit", &read_round);
    let v = broken.violation.expect("the stale read is caught");
    assert_eq!(v.property, super::cluster::LINEARIZABLE, "{}", v.detail);
}

/// Raft's figure 8 on three nodes: n1 leads term 1 (its no-op 1/1 reaches nobody), n2 learns
/// term 1 from n1's vote request and leads term 2 with n3's vote (no-op 1/2, reaching nobody), n1 steps down by check-quorum, learns
/// term 2 and leads term 3 with n3's vote, then brings n3 its entry 1/1 alone (one entry per
/// append). Counting replicas commits 1/1 although n2, holding 1/2, can still be elected.
const FIGURE_8: [&str; 23] = [
    "n1 timer fires",
    "n3 <- n1 1->3 term=1 RequestVote { pre_vote: true",
    "n1 <- n3 3->1 term=1 RequestVoteResponse { pre_vote: true",
    "n3 <- n1 1->3 term=1 RequestVote { pre_vote: false",
    "n1 <- n3 3->1 term=1 RequestVoteResponse { pre_vote: false",
    "n2 <- n1 1->2 term=1 RequestVote { pre_vote: false",
    "n2 timer fires",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: true",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: true",
    "n3 <- n2 2->3 term=2 RequestVote { pre_vote: false",
    "n2 <- n3 3->2 term=2 RequestVoteResponse { pre_vote: false",
    "n1 timer fires",
    "n1 timer fires",
    "n1 <- n2 2->1 term=2 RequestVote { pre_vote: false",
    "n1 timer fires",
    "n3 <- n1 1->3 term=3 RequestVote { pre_vote: true",
    "n1 <- n3 3->1 term=3 RequestVoteResponse { pre_vote: true",
    "n3 <- n1 1->3 term=3 RequestVote { pre_vote: false",
    "n1 <- n3 3->1 term=3 RequestVoteResponse { pre_vote: false",
    "n3 <- n1 1->3 term=3 Append prev=1/1",
    "n1 <- n3 3->1 term=3 AppendEntriesResponse { success: false",
    "n3 <- n1 1->3 term=3 Append prev=0/0",
    "n1 <- n3 3->1 term=3 AppendEntriesResponse { success: true, index: 1",
];

#[test]
fn an_old_term_entry_committed_by_counting_is_caught_when_it_commits() {
    let settings = Settings {
        faults: Faults::none(),
        writes: 0,
        reads: 0,
        ..Settings::default()
    };
    let clean = play(&settings, &FIGURE_8);
    assert_eq!(clean.violation, None);
    assert_eq!(clean.node(1).raft().status().commit, 0, "1/1 waits for 2/3");

    let broken = Settings {
        bugs: switch("commit_old_term_by_counting").unwrap(),
        ..settings
    };
    let c = play(&broken, &FIGURE_8);
    assert_eq!(
        c.node(1).raft().status().commit,
        1,
        "the switch commits 1/1"
    );
    let v = c.violation.expect("the commit is caught");
    assert_eq!(v.property, props::COMMITTED_OUT_OF_REACH, "{}", v.detail);
    assert!(
        v.detail.contains("n2 lacks committed entry 1/1"),
        "{}",
        v.detail
    );
}
