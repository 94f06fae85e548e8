//! The model checker's own tests: the real core keeps every property in every state it
//! explores at a small depth with every fault, the reachability checks are met (a model that
//! never elects, commits or serves is caught), and a bug switch is found with the shortest
//! path to it, while the same search without the switch finds nothing.

use super::cli::{run, trace, Args, Outcome};
use super::{props, switch, Faults, Settings};

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

#[test]
fn bad_switch_and_fault_names_are_refused_by_name() {
    assert!(switch("no_such_switch")
        .unwrap_err()
        .contains("unknown switch `no_such_switch`"));
    assert!(Faults::parse("crash,flood")
        .unwrap_err()
        .contains("unknown fault `flood`"));
}
