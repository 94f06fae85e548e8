//! Message-level log lines (level `debug`): every envelope a node sends or receives, and for
//! Raft messages their type, term and indexes.
//!
//! Owns: the one-line description of a message. Must never: do work when `debug` is off (every
//! argument is evaluated inside the `tracing` macro, which skips it), or log entry payloads.

use crate::maelstrom::Envelope;
use crate::raft::{Message, MessageBody};
use std::fmt;

/// Logs a Maelstrom envelope other than a Raft message: type, peer and ids.
pub fn envelope(direction: &str, env: &Envelope) {
    tracing::debug!(
        "{direction} {} {} {} msg_id={:?} in_reply_to={:?}",
        env.kind().unwrap_or("?"),
        if direction == "recv" { "from" } else { "to" },
        if direction == "recv" {
            &env.src
        } else {
            &env.dest
        },
        env.msg_id(),
        env.body
            .get("in_reply_to")
            .and_then(serde_json::Value::as_u64),
    );
}

/// Logs a Raft message to or from `peer`.
pub fn raft(direction: &str, peer: &str, m: &Message) {
    tracing::debug!(
        "{direction} raft {} {peer}: {}",
        if direction == "recv" { "from" } else { "to" },
        Described(m)
    );
}

/// A Raft message as `Kind term=T` and its indexes, without entry or snapshot data.
struct Described<'a>(&'a Message);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let term = self.0.term;
        match &self.0.body {
            MessageBody::RequestVote { pre_vote, last_log_index, last_log_term } => write!(
                f,
                "RequestVote term={term} pre_vote={pre_vote} last_log={last_log_index}/{last_log_term}"
            ),
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                write!(f, "RequestVoteResponse term={term} pre_vote={pre_vote} granted={granted}")
            }
            MessageBody::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit, read_ctx } => {
                write!(f, "AppendEntries term={term} prev={prev_log_index}/{prev_log_term}")?;
                match (entries.first(), entries.last()) {
                    (Some(first), Some(last)) => write!(f, " entries=[{}, {}]", first.index, last.index)?,
                    _ => write!(f, " entries=[]")?,
                }
                write!(f, " commit={leader_commit} read_ctx={read_ctx}")
            }
            MessageBody::AppendEntriesResponse { success, index, hint_term, rejected, read_ctx } => write!(
                f,
                "AppendEntriesResponse term={term} success={success} index={index} \
                 hint_term={hint_term:?} rejected={rejected} read_ctx={read_ctx}"
            ),
            MessageBody::Heartbeat { commit, read_ctx, uncapped } => write!(
                f,
                "Heartbeat term={term} commit={commit} read_ctx={read_ctx} uncapped={uncapped}"
            ),
            MessageBody::HeartbeatResponse { read_ctx } => {
                write!(f, "HeartbeatResponse term={term} read_ctx={read_ctx}")
            }
            MessageBody::InstallSnapshot { meta, offset, data, done } => write!(
                f,
                "InstallSnapshot term={term} snapshot={}/{} offset={offset} bytes={} done={done}",
                meta.index,
                meta.term,
                data.len()
            ),
            MessageBody::InstallSnapshotResponse { offset, done, snapshot_index } => write!(
                f,
                "InstallSnapshotResponse term={term} offset={offset} done={done} \
                 snapshot_index={snapshot_index}"
            ),
            MessageBody::Probe => write!(f, "Probe"),
            MessageBody::ProbeResponse { last_log_term, last_log_index } => write!(
                f,
                "ProbeResponse term={term} last_log={last_log_index}/{last_log_term}"
            ),
        }
    }
}
