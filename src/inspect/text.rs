//! The inspector's text output: what an operator reads.
//!
//! Owns: the layout of every text report (directory summary, entry listing, raw walk, damage,
//! log comparison, state table, state hashes side by side).
//! Must never: decide verdicts or exit status (the caller does), or print anything but stdout.

use super::compare::{intact_copies, Divergence};
use super::state::{read, Rebuilt, StateComparison};
use super::Filter;
use raftkv_storage::examine::{Damage, Image};
use raftkv_storage::progress::{Progress, ProgressRecord};
use raftkv_storage::scan::Status;
use raftkv_storage::{Entry, EntryKind};
use serde_json::Value;

/// One line for an entry: term, kind and command.
pub fn describe(e: &Entry) -> String {
    format!("term {} {:?} {}", e.term, e.kind, data_text(e))
}

pub fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Noop => "noop",
        EntryKind::Normal => "normal",
    }
}

pub fn data_text(e: &Entry) -> String {
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

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The name a report gives a directory: its node id when recorded, else its path.
pub fn node_name(img: &Image) -> String {
    match &img.identity {
        Some(id) => id.node.clone(),
        None => img.dir.display().to_string(),
    }
}

pub fn status_text(status: &Status) -> String {
    match status {
        Status::Ok => String::new(),
        Status::Stale => "  [stale, dropped on open]".into(),
        Status::Conflicting => "  [conflicts with snapshot, dropped on open]".into(),
        Status::Bad(d) => format!("  [BAD: {d}]"),
        Status::AfterBad => {
            "  [after a bad record; kept, the node does not start on this directory]".into()
        }
    }
}

/// Format, identity, hard state, snapshot and log range.
pub fn print_header(img: &Image) {
    println!("{}", img.dir.display());
    if let Some(e) = &img.sled_error {
        println!("  CORRUPT: {e}");
        return;
    }
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
            "  hard state: term {} vote {} commit {}, mark {}, incarnation {}",
            h.term,
            h.vote.map_or("none".into(), |v| v.to_string()),
            h.commit,
            h.recovery.name(),
            h.incarnation
        ),
        None if img
            .problems
            .iter()
            .any(|p| p.tree == "meta" && p.detail.contains("`hard_state`")) =>
        {
            println!("  hard state: (cannot be read: its record is damaged, see below)")
        }
        None => println!("  hard state: (none saved)"),
    }
    match &img.progress {
        Some(p) => println!("  progress:   {}", progress_text(p)),
        None => println!("  progress:   (no intact durable-progress record)"),
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
}

/// The durable-progress record: the value after the last step, and the one before a step that
/// truncated the log or installed a snapshot, when the record holds both.
fn progress_text(p: &ProgressRecord) -> String {
    let value = |v: &Progress| {
        format!(
            "term {} vote {}, last entry {} of term {}, mark {}, incarnation {}",
            v.term,
            v.vote.map_or("none".into(), |x| x.to_string()),
            v.last_index,
            v.last_term,
            v.recovery.name(),
            v.incarnation
        )
    };
    match &p.old {
        Some(old) => format!("{} (before the step: {})", value(&p.new), value(old)),
        None => value(&p.new),
    }
}

/// The entry listing: the records the filter keeps; without a filter or `--all`, the first and
/// last 20.
pub fn print_records(img: &Image, filter: &Filter, all: bool) {
    let kept: Vec<usize> = (0..img.records.len())
        .filter(|&i| filter.keeps(&img.records[i]))
        .collect();
    if filter.active() {
        println!(
            "  listing:    {} record(s) {}",
            kept.len(),
            filter.describe()
        );
    }
    let shown: Vec<usize> = if all || filter.active() || kept.len() <= 40 {
        kept.clone()
    } else {
        kept[..20]
            .iter()
            .chain(&kept[kept.len() - 20..])
            .copied()
            .collect()
    };
    for (n, &i) in shown.iter().enumerate() {
        if n == 20 && shown.len() < kept.len() {
            println!("      ... {} more (--all lists them)", kept.len() - 40);
        }
        let r = &img.records[i];
        let idx = r.index.map_or("?".into(), |i| i.to_string());
        let what = match &r.entry {
            Some(e) => format!("t{} {:<6} {}", e.term, kind_name(e.kind), data_text(e)),
            None => String::from("(unreadable)"),
        };
        println!("    {idx:>8}  {what}{}", status_text(&r.status));
    }
}

/// The raw walk: every stored record with tree, key, length and checksum status.
pub fn print_raw(img: &Image, filter: &Filter) {
    println!("  raw records (tree, key, length, checksum, what is wrong):");
    for r in img.raw.iter().filter(|r| filter.keeps_raw(r)) {
        let sum = if r.checksum_ok { "ok" } else { "BAD" };
        let what = r
            .problem
            .as_ref()
            .map_or(String::new(), |p| format!("  BAD: {p}"));
        println!(
            "    {:<9} {:<12} {:>8}  checksum {sum}{what}",
            r.tree, r.key_text, r.len
        );
    }
}

fn damage_place(d: &Damage) -> String {
    match (d.index, d.through) {
        (Some(i), Some(t)) if t > i => format!("indices {i} to {t}"),
        (Some(i), _) => format!("index {i}"),
        (None, _) => format!("key 0x{}", hex(&d.key)),
    }
}

/// The last intact index, every damaged index with what is wrong, and (with several
/// directories) the peers that hold an intact copy.
pub fn print_damage(images: &[Image], own: usize) {
    let img = &images[own];
    if img.damage.is_empty() {
        return;
    }
    println!(
        "  damage:     {} damaged part(s); last intact index {}",
        img.damage.len(),
        img.last_index
    );
    for d in &img.damage {
        let mut line = format!("    {}: {}", damage_place(d), d.detail);
        if images.len() > 1 {
            let copies = intact_copies(images, own, d);
            if copies.is_empty() {
                line.push_str("; no peer holds an intact copy");
            } else {
                let names: Vec<String> = copies
                    .iter()
                    .map(|c| {
                        let how = if c.committed {
                            "committed"
                        } else {
                            "not committed there"
                        };
                        format!("{} ({how})", node_name(&images[c.peer]))
                    })
                    .collect();
                line.push_str(&format!("; intact copy on {}", names.join(", ")));
            }
        }
        println!("{line}");
    }
}

pub fn print_verdict(img: &Image) {
    if img.sled_error.is_some() {
        println!("  verdict:    CORRUPT, the node does not start on this directory (it moves it aside and starts empty)");
        return;
    }
    if img.problems.is_empty() {
        println!("  verdict:    ok, every checksum passes");
        return;
    }
    for p in &img.problems {
        let at = p.index.map_or(String::new(), |i| format!(" at index {i}"));
        let sev = if p.fatal { "CORRUPT" } else { "repairable" };
        println!("  {sev}: tree `{}`{at}: {}", p.tree, p.detail);
    }
    if img.fatal() {
        println!("  verdict:    CORRUPT, the node does not start on this directory (it moves it aside and starts empty)");
    } else {
        println!("  verdict:    ok after recovery repairs the above");
    }
}

pub fn print_divergence(images: &[Image], d: &Divergence) {
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

fn value_text(v: &Option<Value>) -> String {
    v.as_ref().map_or("(absent)".into(), Value::to_string)
}

/// The replicas' state hashes side by side, the verdict, and the first differing keys.
pub fn print_state_comparison(images: &[Image], sc: &StateComparison) {
    println!(
        "state at index {} (the highest index every replica has applied):",
        sc.index
    );
    for r in &sc.replicas {
        let img = &images[r.image];
        let what = match &r.state {
            Ok((hash, keys)) => format!("hash {hash}  {keys} keys"),
            Err(why) => format!("not compared: {why}"),
        };
        println!("  {:<8} {}  {what}", node_name(img), img.dir.display());
    }
    println!("  states:     {}", sc.verdict);
    for d in &sc.differences {
        let values: Vec<String> = d
            .values
            .iter()
            .map(|(i, v)| format!("{} {}", node_name(&images[*i]), value_text(v)))
            .collect();
        println!("    key {} differs: {}", d.key, values.join(", "));
    }
}

/// The state table of one directory (or one key of it).
pub fn print_state(img: &Image, rebuilt: &Result<Rebuilt, String>, key: Option<&Value>) {
    let r = match rebuilt {
        Ok(r) => r,
        Err(why) => {
            println!(
                "{} ({}): no state: {why}",
                img.dir.display(),
                node_name(img)
            );
            return;
        }
    };
    println!(
        "{} (node {}): state at index {} (commit index {}), {} keys",
        img.dir.display(),
        node_name(img),
        r.index,
        img.commit(),
        r.kv.len()
    );
    if let Some(why) = &r.stopped {
        println!("  INCOMPLETE: {why}");
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    let rows: Vec<(String, String)> = match key {
        Some(k) => vec![(k.to_string(), value_text(&read(&r.kv, k)))],
        None => {
            r.kv.pairs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }
    };
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    println!("  {:<width$}  value", "key");
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
}
