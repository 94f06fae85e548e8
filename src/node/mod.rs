//! The Maelstrom node driver: event loop, storage glue, client requests, forwarding, restart
//! recovery.
//!
//! Owns: the process's loop (a reader thread feeds a channel; each turn drains every event that
//! is available, ticks the core on a timer, then lets the shared shell (`crate::shell`) perform
//! the core's `Ready`s: peer appends leave before the flush, one storage persist per `Ready`
//! that needs one), the node's data directory, forwarded requests, and the error discipline (11
//! only when an operation definitely did not happen, 13 when it may have).
//! Must never: decide anything Raft decides (that is `crate::raft`), acknowledge a write before
//! the entry is committed and applied, send a vote or append acknowledgement before the persist
//! that covers it has returned, or exit on its own while stdin is open (only a storage error it
//! cannot survive ends the process, with a clear message and a non-zero status).

pub mod datadir;
mod driver;
mod msglog;
mod records;
mod replica;
pub mod request;
pub mod start;
pub mod tools;

pub use driver::{Node, Settings};

use std::io::BufRead;
use std::sync::mpsc;

/// What the loop receives.
#[derive(Debug)]
pub enum Event {
    /// One line of stdin (without its newline).
    Line(String),
    /// A line that is not UTF-8 text.
    BadLine(String),
    /// The answer of a request run on a worker thread (`partition_test`,
    /// `verify_linearizability`).
    Answer(crate::maelstrom::Envelope),
    /// End of input (or a read error, which ends input too).
    Eof,
}

/// Runs the node on stdin/stdout until end of input. Returns the process exit code.
pub fn run_stdio() -> i32 {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let (tx, rx) = mpsc::channel();
    let reader_tx = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_lines(std::io::stdin().lock(), &reader_tx));
    if let Err(e) = spawned {
        tracing::error!("cannot start the stdin reader thread: {e}");
        return 1;
    }
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let mut node = Node::new(settings, out, tx);
    match node.run(&rx) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("fatal: {e}");
            1
        }
    }
}

/// Feeds stdin to the loop, one event per line; a line that is not UTF-8 is reported, not fatal.
pub fn read_lines(mut input: impl BufRead, tx: &mpsc::Sender<Event>) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let ev = match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(line) => Event::Line(line),
                    Err(e) => Event::BadLine(format!("input line is not UTF-8: {e}")),
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}; treating it as end of input");
                break;
            }
        }
    }
    let _ = tx.send(Event::Eof);
}
