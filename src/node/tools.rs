//! The two requests that run one of the project's tools instead of the key-value service:
//! `partition_test` (the simulator) and `verify_linearizability` (the checker).
//!
//! Owns: reading each request's fields, building the reply body, and naming every failure with a
//! Maelstrom error code from [`crate::maelstrom::code`] (a bad field is malformed-request; a
//! simulated run that fails is a crash).
//! Must never: simulate or judge anything itself (the simulator and the checker do, through their
//! plain APIs), or answer a request whose fields it could not read.

use crate::check::{self, Options, Verdict};
use crate::maelstrom::code;
use crate::sim::PartitionSpec;
use serde_json::{json, Map, Value};

/// What a request answers: the reply body without `in_reply_to` (the caller adds it), or an
/// error code and text.
pub type Answer = Result<Map<String, Value>, (u64, String)>;

/// Answers `partition_test`: one simulated run of the real core and state machine in which the
/// leader is isolated in a minority, then healed (see [`crate::sim::partition_test`]).
pub fn partition_test(body: &Map<String, Value>) -> Answer {
    let spec = partition_spec(body)?;
    let out = crate::sim::partition_test(&spec);
    if let Some(f) = &out.failure {
        return Err((
            code::CRASH,
            format!("partition_test: the simulated run failed: {f}"),
        ));
    }
    let name = |i: &usize| format!("n{}", i + 1);
    let mut m = Map::new();
    m.insert("type".into(), json!("partition_test_ok"));
    m.insert("total_ops".into(), json!(spec.operations));
    m.insert(
        "ops_during_partition".into(),
        json!(spec.heal_after_op - spec.partition_after_op),
    );
    m.insert("ops_succeeded".into(), json!(out.succeeded));
    m.insert("ops_rejected".into(), json!(out.rejected));
    m.insert("linearizable".into(), json!(out.linearizable));
    m.insert("seed".into(), json!(spec.seed));
    m.insert("indeterminate_ops".into(), json!(out.indeterminate));
    m.insert("leader_changes".into(), json!(out.leader_changes));
    m.insert("simulated_ms".into(), json!(out.simulated_ms));
    m.insert(
        "isolated_leader".into(),
        json!(out.old_leader.map(|l| name(&l))),
    );
    let minority: Vec<String> = out.minority.iter().map(name).collect();
    m.insert("minority".into(), json!(minority));
    m.insert(
        "majority_recovery_ms".into(),
        json!(out.majority_recovery_ms),
    );
    m.insert("majority_ready_ms".into(), json!(out.majority_ready_ms));
    Ok(m)
}

/// Reads and validates a `partition_test` body; the seed defaults to 0.
pub fn partition_spec(body: &Map<String, Value>) -> Result<PartitionSpec, (u64, String)> {
    let malformed = |text: String| (code::MALFORMED_REQUEST, format!("partition_test: {text}"));
    let field = |name: &str| -> Result<Option<u64>, (u64, String)> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                malformed(format!("`{name}` must be a non-negative integer, got {v}"))
            }),
        }
    };
    let required = |name: &str| -> Result<usize, (u64, String)> {
        let value = field(name)?.ok_or_else(|| malformed(format!("missing field `{name}`")))?;
        usize::try_from(value).map_err(|_| malformed(format!("`{name}` is too large: {value}")))
    };
    let spec = PartitionSpec {
        cluster_size: required("cluster_size")?,
        operations: required("operations")?,
        partition_after_op: required("partition_after_op")?,
        heal_after_op: required("heal_after_op")?,
        seed: field("seed")?.unwrap_or(0),
    };
    spec.validate().map_err(malformed)?;
    Ok(spec)
}

/// Answers `verify_linearizability`: `body.history` is an array of canonical history events;
/// optional `initial` (a value; `null` = absent) and `failed_cas_observed` (a bool) set the
/// checker's options. The reply carries `linearizable`, `violations`, `verdict` and, for an
/// `unknown` verdict, its `reason`. A history that cannot be read or does not pair up is a
/// malformed request naming the bad event.
pub fn verify_linearizability(body: &Map<String, Value>) -> Answer {
    let malformed = |text: String| (code::MALFORMED_REQUEST, text);
    let history = body
        .get("history")
        .ok_or_else(|| malformed("verify_linearizability needs a `history` array".to_string()))?;
    let events = check::parse_json_array(history).map_err(|e| malformed(e.to_string()))?;
    check::validate(&events).map_err(|e| malformed(format!("history: {e}")))?;
    let mut opts = Options::default();
    if let Some(initial) = body.get("initial") {
        opts.initial = Some(initial.clone()).filter(|v| !v.is_null());
    }
    match body.get("failed_cas_observed") {
        None => {}
        Some(Value::Bool(b)) => opts.failed_cas_observed = *b,
        Some(other) => {
            return Err(malformed(format!(
                "`failed_cas_observed` must be true or false, found {other}"
            )))
        }
    }
    let report = check::check(&events, &opts);
    let mut reply = Map::new();
    reply.insert("type".into(), json!("verify_linearizability_ok"));
    reply.insert(
        "linearizable".into(),
        json!(matches!(report.verdict, Verdict::Linearizable)),
    );
    reply.insert("violations".into(), report.violations_json());
    reply.insert("verdict".into(), json!(report.verdict.name()));
    if let Verdict::Unknown { reason } = &report.verdict {
        reply.insert("reason".into(), json!(reason));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{History, Op};

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn partition_test_reply_is_deterministic_per_seed() {
        let req = body(
            json!({"cluster_size": 5, "operations": 100, "partition_after_op": 30,
            "heal_after_op": 70, "seed": 9}),
        );
        let a = partition_test(&req).unwrap();
        let b = partition_test(&req).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["type"], json!("partition_test_ok"));
        assert_eq!(a["total_ops"], json!(100));
        assert_eq!(a["ops_during_partition"], json!(40));
        assert_eq!(a["linearizable"], json!(true));
        let s = a["ops_succeeded"].as_u64().unwrap();
        let r = a["ops_rejected"].as_u64().unwrap();
        assert_eq!(s + r, 100);
        assert!(r > 0, "the minority's ops are rejected");
        let mut other = req.clone();
        other.insert("seed".into(), json!(10));
        let c = partition_test(&other).unwrap();
        assert_ne!(a, c, "another seed gives another run");
    }

    #[test]
    fn partition_test_seed_fixtures_answer_in_time() {
        let requests = crate::test_fixtures::seed_partition_requests();
        for (path, b) in &requests {
            let started = std::time::Instant::now();
            let reply = partition_test(b).unwrap();
            assert!(started.elapsed().as_millis() < 2000, "{path:?}");
            assert_eq!(reply["total_ops"], b["operations"]);
            assert_eq!(reply["linearizable"], json!(true), "{path:?}: {reply:?}");
        }
        assert_eq!(requests.len(), 2, "both seed cases ran");
    }

    #[test]
    fn partition_test_rejects_bad_fields_as_malformed() {
        let good = json!({"cluster_size": 5, "operations": 10, "partition_after_op": 2,
            "heal_after_op": 8});
        assert!(partition_spec(&body(good.clone())).is_ok());
        let cases = [
            ("cluster_size", Value::Null, "missing field `cluster_size`"),
            (
                "cluster_size",
                json!("five"),
                "`cluster_size` must be a non-negative integer",
            ),
            ("cluster_size", json!(2), "`cluster_size` must be 3..="),
            (
                "operations",
                json!(-1),
                "`operations` must be a non-negative integer",
            ),
            ("operations", json!(0), "`operations` must be 1..="),
            (
                "partition_after_op",
                json!(9),
                "partition_after_op <= heal_after_op",
            ),
            ("heal_after_op", json!(11), "heal_after_op <= operations"),
            ("seed", json!(1.5), "`seed` must be a non-negative integer"),
        ];
        for (field, value, want) in cases {
            let mut b = body(good.clone());
            if value.is_null() {
                b.remove(field);
            } else {
                b.insert(field.into(), value);
            }
            let (error, text) = partition_test(&b).unwrap_err();
            assert_eq!(error, code::MALFORMED_REQUEST, "{field}");
            assert!(text.contains(want), "{field}: {text}");
        }
    }

    #[test]
    fn verify_linearizability_replies() {
        let mut h = History::new();
        h.invoke(1, 1, Op::Write, "k", 1)
            .ok(2, 1, Op::Write, "k", 1);
        h.invoke(3, 2, Op::Read, "k", Value::Null)
            .ok(4, 2, Op::Read, "k", 1);
        let reply = verify_linearizability(&body(json!({"type": "verify_linearizability",
            "msg_id": 1, "history": h.events})))
        .expect("parses");
        assert_eq!(reply["type"], json!("verify_linearizability_ok"));
        assert_eq!(reply["linearizable"], json!(true));
        assert_eq!(reply["violations"], json!([]));

        h.invoke(5, 1, Op::Write, "k", 2)
            .ok(6, 1, Op::Write, "k", 2);
        h.invoke(7, 2, Op::Read, "k", Value::Null)
            .ok(8, 2, Op::Read, "k", 1);
        let reply = verify_linearizability(&body(json!({"history": h.events}))).expect("parses");
        assert_eq!(reply["linearizable"], json!(false));
        let v = &reply["violations"][0];
        assert_eq!(v["key"], json!("k"));
        assert_eq!(v["op"]["f"], json!("read"));
        assert!(v["prefix"].as_array().is_some_and(|p| !p.is_empty()));
        assert!(v["window"].as_array().is_some_and(|w| !w.is_empty()));
    }

    #[test]
    fn verify_linearizability_names_a_bad_history_as_malformed() {
        let bad = json!({"history": [
            {"index":0,"time":1,"process":1,"type":"invoke","f":"read","key":1,"value":null},
            {"index":1,"time":2,"process":1,"type":"done","f":"read","key":1,"value":3}]});
        let (error, text) = verify_linearizability(&body(bad)).expect_err("bad event");
        assert_eq!(error, code::MALFORMED_REQUEST);
        assert!(text.contains("event 1") && text.contains("done"), "{text}");
        let (error, text) =
            verify_linearizability(&body(json!({"history": 5}))).expect_err("not an array");
        assert_eq!(error, code::MALFORMED_REQUEST);
        assert!(text.contains("array"), "{text}");
        let (error, _) = verify_linearizability(&body(json!({}))).expect_err("no history");
        assert_eq!(error, code::MALFORMED_REQUEST);
        let unpaired = json!({"history": [
            {"index":4,"time":2,"process":1,"type":"ok","f":"read","key":1,"value":3}]});
        let (error, text) = verify_linearizability(&body(unpaired)).expect_err("unpaired");
        assert_eq!(error, code::MALFORMED_REQUEST);
        assert!(text.contains("index 4"), "{text}");
        let flag = json!({"history": [], "failed_cas_observed": "yes"});
        let (error, text) = verify_linearizability(&body(flag)).expect_err("bad option");
        assert_eq!(error, code::MALFORMED_REQUEST);
        assert!(text.contains("failed_cas_observed"), "{text}");
    }
}
