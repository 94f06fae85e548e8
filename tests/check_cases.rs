//! Hand-made histories, one per rule of the checker's semantics, the options, the bounds and the
//! `raftkv check` command (the `verify_linearizability` reply is tested beside its adapter in
//! the node).

use raftkv::check::{check, parse_jsonl, Event, EventKind, History, Op, Options, Verdict};
use serde_json::{json, Value};

fn verdict(h: &History) -> Verdict {
    check(&h.events, &Options::default()).verdict
}

/// A tiny DSL: `t` advances on every event.
struct H {
    h: History,
    t: u64,
}
impl H {
    fn new() -> H {
        H {
            h: History::new(),
            t: 0,
        }
    }
    fn ev(&mut self, p: u64, kind: EventKind, f: Op, key: Value, v: Value) -> &mut Self {
        self.t += 1;
        self.h.push(self.t, p, kind, f, key, v);
        self
    }
    fn inv(&mut self, p: u64, f: Op, v: Value) -> &mut Self {
        self.ev(p, EventKind::Invoke, f, json!("k"), v)
    }
    fn ok(&mut self, p: u64, f: Op, v: Value) -> &mut Self {
        self.ev(p, EventKind::Ok, f, json!("k"), v)
    }
    fn write(&mut self, p: u64, v: i64) -> &mut Self {
        self.inv(p, Op::Write, json!(v)).ok(p, Op::Write, json!(v))
    }
    fn read(&mut self, p: u64, v: Value) -> &mut Self {
        self.inv(p, Op::Read, Value::Null).ok(p, Op::Read, v)
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let mut h = H::new();
    h.read(1, Value::Null)
        .write(1, 1)
        .read(2, json!(1))
        .write(2, 2);
    h.read(1, json!(2));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
}

#[test]
fn indeterminate_write_must_be_placed_late() {
    let mut h = H::new();
    h.write(1, 1);
    h.inv(2, Op::Write, json!(2))
        .ev(2, EventKind::Info, Op::Write, json!("k"), json!(2));
    // Its info came back, yet it took effect only after this read of 1.
    h.read(1, json!(1)).read(3, json!(2)).read(1, json!(2));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
    // The same with no completion at all.
    let mut h = H::new();
    h.write(1, 1).inv(2, Op::Write, json!(2));
    h.read(1, json!(1)).read(3, json!(2));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
    // But it cannot take effect before its invoke.
    let mut h = H::new();
    h.write(1, 1).read(3, json!(2)).inv(2, Op::Write, json!(2));
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable);
}

#[test]
fn indeterminate_write_may_be_left_out() {
    let mut h = H::new();
    h.write(1, 1);
    h.inv(2, Op::Write, json!(2))
        .ev(2, EventKind::Info, Op::Write, json!("k"), json!(2));
    h.read(1, json!(1)).read(3, json!(1)).read(1, json!(1));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
    // Once it is seen, it cannot be undone.
    h.read(3, json!(2)).read(1, json!(1));
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable);
}

#[test]
fn write_of_the_current_value_still_takes_effect_later() {
    // p2's write of 2 starts while the key is 2, but must take effect after the write of 3.
    let mut h = H::new();
    h.write(1, 2);
    h.inv(2, Op::Write, json!(2));
    h.write(3, 3).read(4, json!(3));
    h.ok(2, Op::Write, json!(2)).read(4, json!(2));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
}

#[test]
fn failed_operations_did_not_happen() {
    let mut h = H::new();
    h.write(1, 1);
    h.inv(2, Op::Write, json!(3))
        .ev(2, EventKind::Fail, Op::Write, json!("k"), json!(3));
    h.inv(2, Op::Cas, json!([1, 4]))
        .ev(2, EventKind::Fail, Op::Cas, json!("k"), json!([1, 4]));
    h.read(1, json!(1));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
    // Observing the failed write is a violation (the read of 3 has no possible source).
    h.read(3, json!(3));
    let r = check(&h.h.events, &Options::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(r.violations[0].op.value, json!(3));
}

#[test]
fn stale_read_is_rejected_and_explained() {
    let mut h = H::new();
    h.write(1, 1).write(2, 2).read(3, json!(1));
    let r = check(&h.h.events, &Options::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let v = &r.violations[0];
    assert_eq!(v.key, json!("k"));
    assert_eq!(v.op.f, Op::Read);
    assert_eq!(v.op.value, json!(1));
    assert_eq!(v.state, json!(2), "the search reached state 2");
    assert_eq!(v.prefix.len(), 2, "both writes linearize");
    assert_eq!(v.prefix[1].state_after, Some(json!(2)));
    let text = r.to_text();
    assert!(
        text.contains("NOT linearizable") && text.contains("read 1"),
        "{text}"
    );
}

#[test]
fn lost_write_is_rejected() {
    // An acknowledged write, then the key reads as absent (a node that came back empty).
    let mut h = H::new();
    h.read(1, Value::Null).write(1, 4).read(2, Value::Null);
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable);
    // An acknowledged write, then an older value.
    let mut h = H::new();
    h.write(1, 3).write(1, 4).read(2, json!(3));
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable);
}

#[test]
fn cas_chain() {
    // Three concurrent cas that only work in chain order 0->1->2->3.
    let mut h = H::new();
    h.write(9, 0);
    h.inv(3, Op::Cas, json!([2, 3]))
        .inv(1, Op::Cas, json!([0, 1]))
        .inv(2, Op::Cas, json!([1, 2]));
    h.ok(2, Op::Cas, json!([1, 2]))
        .ok(3, Op::Cas, json!([2, 3]))
        .ok(1, Op::Cas, json!([0, 1]));
    h.read(4, json!(3));
    assert_eq!(verdict(&h.h), Verdict::Linearizable);
    // Two cas from the same value cannot both succeed.
    let mut h = H::new();
    h.write(9, 0);
    h.inv(1, Op::Cas, json!([0, 1]))
        .inv(2, Op::Cas, json!([0, 2]));
    h.ok(1, Op::Cas, json!([0, 1]))
        .ok(2, Op::Cas, json!([0, 2]));
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable);
    // A cas on an absent key cannot succeed.
    let mut h = H::new();
    h.inv(1, Op::Cas, json!([0, 1]))
        .ok(1, Op::Cas, json!([0, 1]));
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable);
}

#[test]
fn many_keys_one_bad() {
    let mut h = History::new();
    let mut t = 0;
    for round in 0..20i64 {
        for key in 0..50u64 {
            let p = key;
            let read = if key == 17 && round == 10 {
                round - 1 // stale
            } else {
                round
            };
            for (kind, f, v) in [
                (EventKind::Invoke, Op::Write, json!(round)),
                (EventKind::Ok, Op::Write, json!(round)),
                (EventKind::Invoke, Op::Read, Value::Null),
                (EventKind::Ok, Op::Read, json!(read)),
            ] {
                t += 1;
                h.push(t, p, kind, f, key, v);
            }
        }
    }
    let r = check(&h.events, &Options::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(r.violations.len(), 1);
    assert_eq!(r.violations[0].key, json!(17));
    assert_eq!(r.keys.len(), 50);
    // The window is small: the stale read and the writes it straddles, not the whole key.
    assert!(
        r.violations[0].window.len() <= 6,
        "window {:?}",
        r.violations[0].window
    );
}

#[test]
fn failed_cas_observed_option() {
    let mut h = H::new();
    h.write(1, 1);
    h.inv(2, Op::Cas, json!([1, 2]))
        .ev(2, EventKind::Fail, Op::Cas, json!("k"), json!([1, 2]));
    let mut opts = Options::default();
    assert_eq!(check(&h.h.events, &opts).verdict, Verdict::Linearizable);
    opts.failed_cas_observed = true;
    assert_eq!(
        check(&h.h.events, &opts).verdict,
        Verdict::NotLinearizable,
        "the failed cas saw a value other than 1, but the key was 1"
    );
    // With a concurrent write of 3 the failed cas could have seen 3.
    let mut h = H::new();
    h.write(1, 1);
    h.inv(3, Op::Write, json!(3)).inv(2, Op::Cas, json!([1, 2]));
    h.ev(2, EventKind::Fail, Op::Cas, json!("k"), json!([1, 2]))
        .ok(3, Op::Write, json!(3));
    assert_eq!(check(&h.h.events, &opts).verdict, Verdict::Linearizable);
}

#[test]
fn initial_value_option() {
    let mut h = H::new();
    h.read(1, json!(0));
    assert_eq!(verdict(&h.h), Verdict::NotLinearizable, "keys start absent");
    let opts = Options {
        initial: Some(json!(0)),
        ..Options::default()
    };
    assert_eq!(check(&h.h.events, &opts).verdict, Verdict::Linearizable);
}

#[test]
fn bounds_give_unknown_with_a_reason() {
    let mut h = H::new();
    for i in 0..3000 {
        h.write(i % 7, i as i64);
    }
    let opts = Options {
        max_memory_per_key: 1,
        ..Options::default()
    };
    match check(&h.h.events, &opts).verdict {
        Verdict::Unknown { reason } => assert!(reason.contains("memory"), "{reason}"),
        v => panic!("expected unknown, got {v:?}"),
    }
}

#[test]
fn malformed_histories_are_named() {
    let mut h = H::new();
    h.ok(1, Op::Read, json!(1));
    match verdict(&h.h) {
        Verdict::Unknown { reason } => assert!(reason.contains("no preceding invoke"), "{reason}"),
        v => panic!("{v:?}"),
    }
    let mut h = H::new();
    h.inv(1, Op::Write, json!(1)).inv(1, Op::Write, json!(2));
    assert!(matches!(verdict(&h.h), Verdict::Unknown { .. }));
}

#[test]
fn events_serialise_to_the_canonical_line() {
    let line =
        r#"{"index":0,"time":1200,"process":3,"type":"invoke","f":"cas","key":7,"value":[1,4]}"#;
    let ev = parse_jsonl(line).expect("parses");
    assert_eq!(
        ev[0],
        Event::new(0, 1200, 3, EventKind::Invoke, Op::Cas, 7, json!([1, 4]))
    );
    assert_eq!(ev[0].to_json_line(), line);
}

mod cli {
    use super::*;
    use std::process::Command;

    fn run(args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("check")
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn write_history(dir: &std::path::Path, name: &str, h: &History) -> String {
        let text: String = h.events.iter().map(|e| e.to_json_line() + "\n").collect();
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn exit_codes_and_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut good = H::new();
        good.write(1, 1).read(2, json!(1));
        let mut bad = H::new();
        bad.write(1, 1).write(1, 2).read(2, json!(1));
        let good_path = write_history(dir.path(), "good.jsonl", &good.h);
        let bad_path = write_history(dir.path(), "bad.jsonl", &bad.h);

        let (code, out, _) = run(&[&good_path]);
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("linearizable"), "{out}");

        let html = dir.path().join("r.html");
        let html_s = html.to_string_lossy().into_owned();
        let (code, out, _) = run(&[&bad_path, "--json", "--html", &html_s]);
        assert_eq!(code, 1);
        let j: Value = serde_json::from_str(&out).expect("--json prints JSON");
        assert_eq!(j["verdict"], json!("not_linearizable"));
        assert_eq!(j["violations"][0]["op"]["value"], json!(1));
        let page = std::fs::read_to_string(&html).expect("html written");
        assert!(
            page.contains("<svg") && page.contains("process 2"),
            "timeline"
        );
        assert!(
            !page.contains("src=") && !page.contains("href="),
            "self-contained"
        );

        // Bad input names the line.
        let broken = dir.path().join("broken.jsonl");
        let mut text = std::fs::read_to_string(&good_path).expect("read");
        text.push_str("{\"index\":9,\"time\":1}\n");
        std::fs::write(&broken, text).expect("write");
        let (code, _, err) = run(&[&broken.to_string_lossy()]);
        assert_eq!(code, 3);
        assert!(err.contains("line 5"), "{err}");
        let (code, _, err) = run(&[&good_path, "--init"]);
        assert_eq!(code, 3, "{err}");
        let (code, _, _) = run(&["/nonexistent/history.jsonl"]);
        assert_eq!(code, 3);

        // Unknown: a memory bound too small to finish.
        let mut long = H::new();
        for i in 0..3000 {
            long.write(i % 5, i as i64);
        }
        let long_path = write_history(dir.path(), "long.jsonl", &long.h);
        let (code, out, _) = run(&[&long_path, "--memory-limit", "1"]);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.starts_with("unknown") && out.contains("memory bound"),
            "{out}"
        );
        let (code, out, _) = run(&[&long_path]);
        assert_eq!(code, 0, "{out}");

        // Knossos EDN with an initial value.
        let edn = dir.path().join("h.edn");
        std::fs::write(
            &edn,
            "[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok, :f :read, :value 0}]",
        )
        .expect("write");
        let edn_s = edn.to_string_lossy().into_owned();
        assert_eq!(run(&[&edn_s]).0, 1, "absent by default");
        assert_eq!(run(&[&edn_s, "--init", "0"]).0, 0);

        // Maelstrom-style keyed EDN: [key value] tuples, a nemesis, one stale read on key 2.
        let keyed = dir.path().join("history.edn");
        std::fs::write(
            &keyed,
            "{:type :invoke, :f :write, :value [1 3], :process 0, :time 10, :index 0}\n\
             {:type :ok, :f :write, :value [1 3], :process 0, :time 20, :index 1}\n\
             {:type :info, :f :start-partition, :value nil, :process :nemesis, :index 2}\n\
             {:type :invoke, :f :write, :value [2 4], :process 1, :time 30, :index 3}\n\
             {:type :ok, :f :write, :value [2 4], :process 1, :time 40, :index 4}\n\
             {:type :invoke, :f :cas, :value [2 [4 1]], :process 1, :time 50, :index 5}\n\
             {:type :ok, :f :cas, :value [2 [4 1]], :process 1, :time 60, :index 6}\n\
             {:type :invoke, :f :read, :value [2 nil], :process 0, :time 70, :index 7}\n\
             {:type :ok, :f :read, :value [2 4], :process 0, :time 80, :index 8}\n",
        )
        .expect("write");
        let (code, out, err) = run(&[&keyed.to_string_lossy(), "--json"]);
        assert_eq!(code, 1, "{out}{err}");
        let j: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(j["violations"][0]["key"], json!(2));
        assert_eq!(j["keys"], json!(2));

        // A JSON array of canonical events, from standard input.
        let array = serde_json::to_string(&good.h.events).expect("serialise");
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["check", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), array.as_bytes())
            .expect("feed");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
