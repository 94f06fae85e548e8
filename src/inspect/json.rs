//! The inspector's `--json` documents, whose schema the README writes down and keeps stable.
//!
//! Owns: the JSON shape of a directory report, a raw walk, damage with intact copies, the log
//! comparison, the state comparison and a `--state` document.
//! Must never: drop or rename a documented field (scripts read them); new fields only add.

use super::compare::{intact_copies, Divergence};
use super::state::{read, Rebuilt, StateComparison};
use super::text::{hex, kind_name, node_name};
use super::Filter;
use raftkv_storage::examine::{Image, RawRecord};
use raftkv_storage::scan::{RecordView, Status};
use raftkv_storage::{Entry, EntryKind};
use serde_json::{json, Value};

fn data_value(e: &Entry) -> Value {
    if e.kind == EntryKind::Normal {
        if let Ok(v) = serde_json::from_slice::<Value>(&e.data) {
            return json!({ "command": v });
        }
    }
    json!({ "data_hex": hex(&e.data) })
}

fn status_value(status: &Status) -> String {
    match status {
        Status::Ok => "ok".to_string(),
        Status::Stale => "stale (at or below the snapshot; dropped on open)".into(),
        Status::Conflicting => "conflicts with the snapshot (dropped on open)".into(),
        Status::Bad(d) => format!("bad: {d}"),
        Status::AfterBad => {
            "after a bad record (kept: the node does not start on this directory)".into()
        }
    }
}

fn record_value(r: &RecordView) -> Value {
    let mut v = json!({ "index": r.index, "status": status_value(&r.status) });
    if let Some(e) = &r.entry {
        v["term"] = json!(e.term);
        v["kind"] = json!(kind_name(e.kind));
        if let Value::Object(m) = data_value(e) {
            for (k, x) in m {
                v[k] = x;
            }
        }
    }
    v
}

fn raw_value(r: &RawRecord) -> Value {
    json!({
        "tree": r.tree,
        "key": r.key_text,
        "key_hex": hex(&r.key),
        "length": r.len,
        "checksum": if r.checksum_ok { "ok" } else { "bad" },
        "ok": r.problem.is_none(),
        "problem": r.problem,
    })
}

fn damage_value(images: &[Image], own: usize) -> Value {
    let img = &images[own];
    let parts: Vec<Value> = img
        .damage
        .iter()
        .map(|d| {
            let copies: Vec<Value> = intact_copies(images, own, d)
                .iter()
                .map(|c| {
                    let peer = &images[c.peer];
                    json!({
                        "dir": peer.dir.display().to_string(),
                        "node": peer.identity.as_ref().map(|i| i.node.clone()),
                        "committed": c.committed,
                    })
                })
                .collect();
            json!({
                "index": d.index,
                "through": d.through,
                "key_hex": hex(&d.key),
                "detail": d.detail,
                "intact_on": copies,
            })
        })
        .collect();
    Value::Array(parts)
}

/// One directory's report; `records` holds what the filter keeps, `raw` is present with `--raw`.
pub fn image_value(images: &[Image], own: usize, filter: &Filter, raw: bool) -> Value {
    let img = &images[own];
    let records: Vec<Value> = img
        .records
        .iter()
        .filter(|r| filter.keeps(r))
        .map(record_value)
        .collect();
    let mut v = json!({
        "dir": img.dir.display().to_string(),
        "sled_error": img.sled_error,
        "format": img.format,
        "identity": img.identity.as_ref().map(|i| json!({"node": i.node, "cluster": i.cluster})),
        "hard_state": img.hard_state.map(|h| json!({"term": h.term, "vote": h.vote, "commit": h.commit,
            "recovery": h.recovery.name(), "incarnation": h.incarnation})),
        "progress": img.progress.map(|p| {
            let value = |v: &raftkv_storage::progress::Progress| json!({
                "term": v.term, "vote": v.vote, "last_term": v.last_term, "last_index": v.last_index,
                "recovery": v.recovery.name(), "incarnation": v.incarnation,
            });
            let mut now = value(&p.new);
            now["before"] = p.old.as_ref().map(value).into();
            now
        }),
        "snapshot": img.snapshot.as_ref().map(|s| json!({
            "index": s.meta.index, "term": s.meta.term, "voters": s.meta.voters,
            "bytes": s.bytes, "chunks": s.chunks,
        })),
        "log": {"first_index": img.first_index, "last_index": img.last_index},
        "ok": !img.fatal(),
        "problems": img.problems.iter().map(|p| json!({
            "tree": p.tree, "index": p.index, "detail": p.detail, "fatal": p.fatal,
        })).collect::<Vec<_>>(),
        "last_intact": img.last_index,
        "damage": damage_value(images, own),
        "records": records,
    });
    if raw {
        v["raw"] = img
            .raw
            .iter()
            .filter(|r| filter.keeps_raw(r))
            .map(raw_value)
            .collect();
    }
    v
}

pub fn divergence_value(images: &[Image], d: &Divergence) -> Value {
    json!({
        "a": images[d.a].dir.display().to_string(),
        "b": images[d.b].dir.display().to_string(),
        "agree_through": d.agree_through,
        "first_difference": d.first_difference,
        "violation": d.violation,
    })
}

pub fn state_comparison_value(images: &[Image], sc: &StateComparison) -> Value {
    let name = |i: usize| node_name(&images[i]);
    json!({
        "index": sc.index,
        "verdict": sc.verdict,
        "replicas": sc.replicas.iter().map(|r| {
            let img = &images[r.image];
            let (hash, keys, problem) = match &r.state {
                Ok((h, k)) => (Some(h.clone()), Some(*k), None),
                Err(why) => (None, None, Some(why.clone())),
            };
            json!({
                "dir": img.dir.display().to_string(), "node": name(r.image),
                "hash": hash, "keys": keys, "problem": problem,
            })
        }).collect::<Vec<_>>(),
        "differences": sc.differences.iter().map(|d| json!({
            "key": d.key,
            "values": d.values.iter().map(|(i, v)| match v {
                Some(v) => json!({"node": name(*i), "value": v}),
                None => json!({"node": name(*i), "absent": true}),
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The `--state` document of one directory: `{"node", "index", "state": [{"key", "value"}]}`
/// plus the directory, its commit index, and why the state is missing or incomplete.
pub fn state_value(img: &Image, rebuilt: &Result<Rebuilt, String>, key: Option<&Value>) -> Value {
    let node = img.identity.as_ref().map(|i| i.node.clone());
    let mut v = json!({
        "dir": img.dir.display().to_string(),
        "node": node,
        "commit": img.commit(),
    });
    match rebuilt {
        Ok(r) => {
            let pairs: Vec<Value> = match key {
                Some(k) => read(&r.kv, k)
                    .map(|value| json!({"key": k, "value": value}))
                    .into_iter()
                    .collect(),
                None => {
                    r.kv.pairs()
                        .map(|(k, value)| json!({"key": k, "value": value}))
                        .collect()
                }
            };
            v["index"] = json!(r.index);
            v["state"] = Value::Array(pairs);
            v["complete"] = json!(r.stopped.is_none());
            v["problem"] = json!(r.stopped);
            v["notes"] = json!(r.notes);
        }
        Err(why) => {
            v["index"] = Value::Null;
            v["state"] = Value::Null;
            v["complete"] = json!(false);
            v["problem"] = json!(why);
            v["notes"] = json!([]);
        }
    }
    v
}
