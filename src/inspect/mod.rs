//! Offline inspection of a node's data directory: `raftkv inspect [FLAGS] DIR...`.
//!
//! Owns: showing what a data directory holds (format, identity, hard state with its recovering
//! mark and incarnation, the durable-progress record with its copy of both, snapshot metadata,
//! log range, entries with lin-kv commands decoded, filtered by index range and kind), a raw walk
//! over every stored record with its checksum status, every damaged index with the last intact
//! one, the state machine the node would serve (snapshot plus log up to the commit index), and,
//! given several directories, comparing them offline: Raft's log matching property, the committed
//! prefix, a hash of each replica's state at the highest index all have applied, and which peer
//! holds an intact copy of each damaged entry.
//! Must never: change a byte of the directory it inspects. It never opens one: the storage crate's
//! `examine` opens a private copy, so a directory a live node holds can be inspected too.
//!
//! Exit status: 0 every directory would open, the logs agree where Raft requires and the states
//! agree; 1 corruption (a node would not start on it, or sled cannot open the directory), logs
//! that break log matching or differ in a committed entry, replica states that differ, or a
//! `--state` that cannot be rebuilt up to the commit index; 2 bad input (usage, a missing,
//! foreign or newer-format directory).

mod compare;
mod json;
mod state;
mod text;

pub use compare::{compare, Divergence};

use raftkv_storage::examine::{examine_with, Image, Options, RawRecord};
use raftkv_storage::scan::RecordView;
use raftkv_storage::EntryKind;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Which entries the listing (and the log tree of the raw walk) shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub kinds: Option<Vec<EntryKind>>,
}

impl Filter {
    pub fn active(&self) -> bool {
        self.from.is_some() || self.to.is_some() || self.kinds.is_some()
    }

    fn index_in_range(&self, index: Option<u64>) -> bool {
        match index {
            Some(i) => self.from.is_none_or(|f| i >= f) && self.to.is_none_or(|t| i <= t),
            None => self.from.is_none() && self.to.is_none(),
        }
    }

    /// True when the listing shows `r`: its index is in range and (with a kind filter) it decodes
    /// to an entry of one of the kinds.
    pub fn keeps(&self, r: &RecordView) -> bool {
        let kind_ok = match &self.kinds {
            None => true,
            Some(kinds) => r.entry.as_ref().is_some_and(|e| kinds.contains(&e.kind)),
        };
        kind_ok && self.index_in_range(r.index)
    }

    /// The raw walk keeps every record of the other trees and the log records in range.
    pub fn keeps_raw(&self, r: &RawRecord) -> bool {
        if r.tree != "log" {
            return true;
        }
        let index = <[u8; 8]>::try_from(r.key.as_slice())
            .ok()
            .map(u64::from_be_bytes);
        self.index_in_range(index)
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![];
        match (self.from, self.to) {
            (Some(f), Some(t)) => parts.push(format!("with index in [{f}, {t}]")),
            (Some(f), None) => parts.push(format!("with index >= {f}")),
            (None, Some(t)) => parts.push(format!("with index <= {t}")),
            (None, None) => {}
        }
        if let Some(kinds) = &self.kinds {
            let names: Vec<&str> = kinds.iter().map(|k| text::kind_name(*k)).collect();
            parts.push(format!("of kind {}", names.join(" or ")));
        }
        parts.join(", ")
    }
}

/// `raftkv inspect`: the inspector's flags.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "Show and verify node data directories without changing them",
    long_about = "Shows and verifies raftkv data directories without changing them (a private \
copy is opened). With several DIRs: their logs are compared (first divergence), each replica's \
state is hashed at the highest index all have applied (equal or differ, naming the first \
differing keys), and each damaged entry names the peers holding an intact copy.",
    after_help = "Exit status: 0 ok, 1 corruption, a log-matching violation or differing states, \
2 bad input or bad flags."
)]
pub struct InspectArgs {
    /// JSON on stdout: one document (with --state, one line per directory).
    #[arg(long)]
    json: bool,
    /// List every entry in text output (default: the first and last 20).
    #[arg(long)]
    all: bool,
    /// List only entries with index >= N (also limits the log tree in --raw).
    #[arg(long, value_name = "N", value_parser = parse_index)]
    from: Option<u64>,
    /// List only entries with index <= N (also limits the log tree in --raw).
    #[arg(long, value_name = "N", value_parser = parse_index)]
    to: Option<u64>,
    /// List only entries of kind K: normal, noop, or a comma-separated list.
    #[arg(long, value_name = "K", value_parser = parse_kinds)]
    kind: Option<Kinds>,
    /// Walk every stored record of every tree: tree, key, length, checksum status.
    #[arg(long)]
    raw: bool,
    /// The state machine the node would serve: its snapshot plus its log up to the commit index,
    /// as a key/value table.
    #[arg(long, conflicts_with_all = ["raw", "all", "from", "to", "kind"])]
    state: bool,
    /// With --state, only key K (K is read as JSON: 3 is a number, '"3"' a string; text that is
    /// not JSON is a string).
    #[arg(long, value_name = "K", requires = "state", value_parser = parse_key)]
    key: Option<Value>,
    /// The data directories.
    #[arg(value_name = "DIR", required = true)]
    dirs: Vec<PathBuf>,
}

/// The entry kinds of `--kind` (a newtype so clap takes the list as one value).
#[derive(Clone, Debug)]
struct Kinds(Vec<EntryKind>);

fn parse_index(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| "not an index (a whole number >= 0)".to_string())
}

fn parse_key(k: &str) -> Result<Value, String> {
    Ok(serde_json::from_str(k).unwrap_or_else(|_| json!(k)))
}

fn parse_kinds(v: &str) -> Result<Kinds, String> {
    v.split(',')
        .map(|k| match k.trim() {
            "normal" => Ok(EntryKind::Normal),
            "noop" => Ok(EntryKind::Noop),
            other => Err(format!("`{other}` is not an entry kind (normal, noop)")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Kinds)
}

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    json: bool,
    all: bool,
    raw: bool,
    state: bool,
    key: Option<Value>,
    filter: Filter,
    dirs: Vec<PathBuf>,
}

impl InspectArgs {
    fn resolve(self) -> Result<Args, String> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f > t {
                return Err(format!("--from {f} is above --to {t}: the range is empty"));
            }
        }
        Ok(Args {
            json: self.json,
            all: self.all,
            raw: self.raw,
            state: self.state,
            key: self.key,
            filter: Filter {
                from: self.from,
                to: self.to,
                kinds: self.kind.map(|k| k.0),
            },
            dirs: self.dirs,
        })
    }
}

/// `raftkv inspect`: returns the exit status.
pub fn cli(args: InspectArgs) -> i32 {
    let a = match args.resolve() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raftkv inspect: {e}");
            return 2;
        }
    };
    let options = Options {
        snapshot_data: a.state || a.dirs.len() > 1,
        raw: a.raw,
    };
    let mut images = vec![];
    for d in &a.dirs {
        match examine_with(d, options) {
            Ok(img) => images.push(img),
            Err(e) => {
                eprintln!("raftkv inspect: {}: {e}", d.display());
                return 2;
            }
        }
    }
    if a.state {
        show_states(&images, &a)
    } else {
        show_directories(&images, &a)
    }
}

/// `--state`: each directory's state at its commit index. Exit 1 when one cannot be rebuilt
/// that far.
fn show_states(images: &[Image], a: &Args) -> i32 {
    let mut incomplete = false;
    for img in images {
        let rebuilt = state::rebuild(img, state::served_index(img));
        incomplete |= rebuilt.as_ref().map_or(true, |r| r.stopped.is_some());
        if a.json {
            println!("{}", json::state_value(img, &rebuilt, a.key.as_ref()));
        } else {
            text::print_state(img, &rebuilt, a.key.as_ref());
        }
    }
    i32::from(incomplete)
}

/// The directory reports and, with several, the log and state comparisons.
fn show_directories(images: &[Image], a: &Args) -> i32 {
    let mut divergences = vec![];
    // A directory sled cannot open has no log to compare.
    let opened: Vec<usize> = (0..images.len())
        .filter(|&i| images[i].sled_error.is_none())
        .collect();
    for (n, &i) in opened.iter().enumerate() {
        for &j in &opened[n + 1..] {
            divergences.push(compare(i, &images[i], j, &images[j]));
        }
    }
    let states = (images.len() > 1).then(|| state::compare_states(images));
    let corrupt = images.iter().any(Image::fatal);
    let violation = divergences.iter().any(|d| d.violation.is_some());
    let differ = states.as_ref().is_some_and(|s| s.verdict == "differ");
    if a.json {
        let doc = json!({
            "dirs": (0..images.len()).map(|i| json::image_value(images, i, &a.filter, a.raw)).collect::<Vec<_>>(),
            "comparisons": divergences.iter().map(|d| json::divergence_value(images, d)).collect::<Vec<_>>(),
            "states": states.as_ref().map(|s| json::state_comparison_value(images, s)),
            "ok": !corrupt && !violation && !differ,
        });
        println!("{doc}");
    } else {
        for (i, img) in images.iter().enumerate() {
            text::print_header(img);
            if img.sled_error.is_none() {
                if a.raw {
                    text::print_raw(img, &a.filter);
                } else {
                    text::print_records(img, &a.filter, a.all);
                }
                text::print_damage(images, i);
            }
            text::print_verdict(img);
        }
        for d in &divergences {
            text::print_divergence(images, d);
        }
        if let Some(s) = &states {
            text::print_state_comparison(images, s);
        }
    }
    i32::from(corrupt || violation || differ)
}
