//! Offline inspection of a node's data directory (DESIGN §8): `raftkv inspect [--json] [--all] DIR...`.
//!
//! Owns: showing what a data directory holds (format, identity, hard state, snapshot metadata, log
//! range, entries with lin-kv commands decoded), verifying every checksum, and, given several
//! directories, comparing their logs offline (Raft's log matching property and the committed
//! prefix).
//! Must never: change a byte of the directory it inspects. It never opens one: the storage crate's
//! `examine` opens a private copy, so a directory a live node holds can be inspected too.
//!
//! Exit status: 0 every directory would open and the logs agree where Raft requires; 1 corruption
//! (a node would refuse to start) or logs that break log matching or differ in a committed entry;
//! 2 bad input (usage, a missing, foreign or newer-format directory).

use raftkv_storage::examine::{examine, Image};
use raftkv_storage::scan::Status;
use raftkv_storage::{Entry, EntryKind};
use serde_json::{json, Value};
use std::path::PathBuf;

const USAGE: &str = "usage: raftkv inspect [--json] [--all] DIR...
  Shows and verifies raftkv data directories without changing them (a private copy is opened).
  --json   one JSON document on stdout (every entry included)
  --all    list every entry in text output (default: the first and last 20)
  With several DIRs, their logs are compared and the first divergence is reported.
  Exit: 0 ok, 1 corruption or a log-matching violation, 2 bad input.";

/// Where two logs stop agreeing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub a: usize,
    pub b: usize,
    /// Highest index up to which both hold identical entries (0 if none in common).
    pub agree_through: u64,
    /// First index both hold with different entries.
    pub first_difference: Option<u64>,
    /// What Raft forbids: an entry of the same term differing at or after the first difference
    /// (log matching), or a difference at or below both commit indexes.
    pub violation: Option<String>,
}

fn get<'a>(l: &[&'a Entry], first: u64, i: u64) -> Option<&'a Entry> {
    l.get((i - first) as usize).copied()
}

fn describe(e: &Entry) -> String {
    format!("term {} {:?} {}", e.term, e.kind, data_text(e))
}

fn data_value(e: &Entry) -> Value {
    if e.kind == EntryKind::Normal {
        if let Ok(v) = serde_json::from_slice::<Value>(&e.data) {
            return json!({ "command": v });
        }
    }
    json!({ "data_hex": hex(&e.data) })
}

fn data_text(e: &Entry) -> String {
    match e.kind {
        EntryKind::Noop if e.data.is_empty() => String::new(),
        _ => match serde_json::from_slice::<Value>(&e.data) {
            Ok(v) => v.to_string(),
            Err(_) if e.data.len() > 32 => {
                format!("0x{}... ({} bytes)", hex(&e.data[..32]), e.data.len())
            }
            Err(_) => format!("0x{}", hex(&e.data)),
        },
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares the recovered logs of two images (entries only; snapshots hold no entries).
pub fn compare(ia: usize, a: &Image, ib: usize, b: &Image) -> Divergence {
    let la: Vec<&Entry> = a.log().collect();
    let lb: Vec<&Entry> = b.log().collect();
    let lo = a.first_index.max(b.first_index);
    let hi = a.last_index.min(b.last_index);
    let commit = a
        .hard_state
        .map_or(0, |h| h.commit)
        .min(b.hard_state.map_or(0, |h| h.commit));
    let mut d = Divergence {
        a: ia,
        b: ib,
        agree_through: 0,
        first_difference: None,
        violation: None,
    };
    let mut i = lo;
    while i <= hi {
        let (Some(ea), Some(eb)) = (get(&la, a.first_index, i), get(&lb, b.first_index, i)) else {
            break;
        };
        if d.first_difference.is_none() {
            if ea == eb {
                d.agree_through = i;
            } else {
                d.first_difference = Some(i);
                if i <= commit {
                    d.violation = Some(format!(
                        "committed entry {i} differs (commit index {commit} on both): {} vs {}",
                        describe(ea),
                        describe(eb)
                    ));
                    break;
                }
                if ea.term == eb.term {
                    d.violation = Some(format!(
                        "log matching broken at {i}: same term {} but different entries",
                        ea.term
                    ));
                    break;
                }
            }
        } else if ea.term == eb.term {
            d.violation = Some(format!(
                "log matching broken: entry {i} has term {} in both but the logs differ at {}",
                ea.term,
                d.first_difference.unwrap_or(i)
            ));
            break;
        }
        i += 1;
    }
    d
}

fn image_json(img: &Image) -> Value {
    let records: Vec<Value> = img
        .records
        .iter()
        .map(|r| {
            let mut v = json!({
                "index": r.index,
                "status": match &r.status {
                    Status::Ok => "ok".to_string(),
                    Status::Stale => "stale (at or below the snapshot; dropped on open)".into(),
                    Status::Conflicting => "conflicts with the snapshot (dropped on open)".into(),
                    Status::Bad(d) => format!("bad: {d}"),
                    Status::AfterBad => "after a bad record (dropped on open)".into(),
                },
            });
            if let Some(e) = &r.entry {
                v["term"] = json!(e.term);
                v["kind"] = json!(format!("{:?}", e.kind).to_lowercase());
                let dv = data_value(e);
                if let Value::Object(m) = dv {
                    for (k, x) in m {
                        v[k] = x;
                    }
                }
            }
            v
        })
        .collect();
    json!({
        "dir": img.dir.display().to_string(),
        "format": img.format,
        "identity": img.identity.as_ref().map(|i| json!({"node": i.node, "cluster": i.cluster})),
        "hard_state": img.hard_state.map(|h| json!({"term": h.term, "vote": h.vote, "commit": h.commit})),
        "snapshot": img.snapshot.as_ref().map(|s| json!({
            "index": s.meta.index, "term": s.meta.term, "voters": s.meta.voters,
            "bytes": s.bytes, "chunks": s.chunks,
        })),
        "log": {"first_index": img.first_index, "last_index": img.last_index},
        "ok": !img.fatal(),
        "problems": img.problems.iter().map(|p| json!({
            "tree": p.tree, "index": p.index, "detail": p.detail, "fatal": p.fatal,
        })).collect::<Vec<_>>(),
        "records": records,
    })
}

fn print_text(img: &Image, all: bool) {
    println!("{}", img.dir.display());
    match &img.identity {
        Some(id) => println!(
            "  node:       {} (cluster {})",
            id.node,
            id.cluster.join(", ")
        ),
        None => println!("  node:       (no identity recorded)"),
    }
    println!(
        "  format:     {}",
        img.format.map_or("(missing)".into(), |f| f.to_string())
    );
    match img.hard_state {
        Some(h) => println!(
            "  hard state: term {} vote {} commit {}",
            h.term,
            h.vote.map_or("none".into(), |v| v.to_string()),
            h.commit
        ),
        None => println!("  hard state: (none saved)"),
    }
    match &img.snapshot {
        Some(s) => println!(
            "  snapshot:   index {} term {} voters {:?}, {} bytes in {} chunk(s)",
            s.meta.index, s.meta.term, s.meta.voters, s.bytes, s.chunks
        ),
        None => println!("  snapshot:   none"),
    }
    let n = img.last_index + 1 - img.first_index;
    println!(
        "  log:        [{}, {}], {n} entries",
        img.first_index, img.last_index
    );
    println!(
        "  records:    {} stored, checksums verified",
        img.records.len()
    );
    let shown: Vec<usize> = if all || img.records.len() <= 40 {
        (0..img.records.len()).collect()
    } else {
        (0..20)
            .chain(img.records.len() - 20..img.records.len())
            .collect()
    };
    let mut prev = None;
    for i in shown {
        if prev.is_some_and(|p: usize| p + 1 != i) {
            println!(
                "      ... {} more (--all lists them)",
                img.records.len() - 40
            );
        }
        prev = Some(i);
        let r = &img.records[i];
        let idx = r.index.map_or("?".into(), |i| i.to_string());
        let what = match &r.entry {
            Some(e) => format!(
                "t{} {:<6} {}",
                e.term,
                format!("{:?}", e.kind).to_lowercase(),
                data_text(e)
            ),
            None => String::from("(unreadable)"),
        };
        let mark = match &r.status {
            Status::Ok => String::new(),
            Status::Stale => "  [stale, dropped on open]".into(),
            Status::Conflicting => "  [conflicts with snapshot, dropped on open]".into(),
            Status::Bad(d) => format!("  [BAD: {d}]"),
            Status::AfterBad => "  [after a bad record, dropped on open]".into(),
        };
        println!("    {idx:>8}  {what}{mark}");
    }
    if img.problems.is_empty() {
        println!("  verdict:    ok, every checksum passes");
    } else {
        for p in &img.problems {
            let at = p.index.map_or(String::new(), |i| format!(" at index {i}"));
            let sev = if p.fatal { "CORRUPT" } else { "repairable" };
            println!("  {sev}: tree `{}`{at}: {}", p.tree, p.detail);
        }
        if img.fatal() {
            println!("  verdict:    CORRUPT, the node refuses to start on this directory");
        } else {
            println!("  verdict:    ok after recovery repairs the above");
        }
    }
}

/// `raftkv inspect`: returns the exit status.
pub fn cli(args: &[String]) -> i32 {
    let mut json_out = false;
    let mut all = false;
    let mut dirs = vec![];
    for a in args {
        match a.as_str() {
            "--json" => json_out = true,
            "--all" => all = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            s if s.starts_with('-') => {
                eprintln!("raftkv inspect: unknown flag `{s}`\n{USAGE}");
                return 2;
            }
            s => dirs.push(PathBuf::from(s)),
        }
    }
    if dirs.is_empty() {
        eprintln!("raftkv inspect: no directory given\n{USAGE}");
        return 2;
    }
    let mut images = vec![];
    for d in &dirs {
        match examine(d) {
            Ok(img) => images.push(img),
            Err(e) => {
                eprintln!("raftkv inspect: {}: {e}", d.display());
                return 2;
            }
        }
    }
    let mut divergences = vec![];
    for i in 0..images.len() {
        for j in i + 1..images.len() {
            divergences.push(compare(i, &images[i], j, &images[j]));
        }
    }
    let corrupt = images.iter().any(Image::fatal);
    let violation = divergences.iter().any(|d| d.violation.is_some());
    if json_out {
        let doc = json!({
            "dirs": images.iter().map(image_json).collect::<Vec<_>>(),
            "comparisons": divergences.iter().map(|d| json!({
                "a": images[d.a].dir.display().to_string(),
                "b": images[d.b].dir.display().to_string(),
                "agree_through": d.agree_through,
                "first_difference": d.first_difference,
                "violation": d.violation,
            })).collect::<Vec<_>>(),
            "ok": !corrupt && !violation,
        });
        println!("{doc}");
    } else {
        for img in &images {
            print_text(img, all);
        }
        for d in &divergences {
            let (a, b) = (images[d.a].dir.display(), images[d.b].dir.display());
            match (&d.violation, d.first_difference) {
                (Some(v), _) => println!("VIOLATION {a} vs {b}: {v}"),
                (None, Some(i)) => println!(
                    "{a} vs {b}: identical through {}, diverge at {i} (uncommitted, allowed)",
                    d.agree_through
                ),
                (None, None) => println!(
                    "{a} vs {b}: identical where both hold entries (through {})",
                    d.agree_through
                ),
            }
        }
    }
    if corrupt || violation {
        1
    } else {
        0
    }
}
