//! One node's replica: its identity in the cluster, its shell (core, state machine, waiting
//! client requests), its sled storage, and the glue that lets the shell reach storage and stdout.
//!
//! Owns: opening (or recovering) the data directory into a shell, the shell's storage and
//! outbox for a real node (sled through a borrowed batch; Maelstrom envelopes on stdout), and
//! the answers to client requests in Maelstrom's terms.
//! Must never: perform a `Ready` itself (that is `crate::shell`), or send a peer anything before
//! the peer delay has passed unless that peer spoke first (it may not be running yet).

use super::request::Op;
use super::{datadir, msglog, records, start, Settings};
use crate::kv::{KvStore, Outcome};
use crate::maelstrom::{code, error_body, pack, Envelope};
use crate::raft::{Config, Message, NodeId, Raft, Ready, Recovery, Role, SnapshotMeta};
use crate::shell::{
    Answer, Batch, Durability, LogStorage, Outbox, Progress, Shell, ShellSettings, ShellStats,
};
use raftkv_storage::{RecoveryMark, Storage};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// Where to send the answer of a client request.
#[derive(Clone, Debug)]
pub struct Client {
    /// Who asked (a client, or a peer that forwarded the request).
    pub src: String,
    /// The id this node was addressed by.
    pub dest: String,
    pub msg_id: u64,
}

/// A client request waiting in the shell: the shell's token.
#[derive(Debug)]
pub struct Waiting {
    pub client: Client,
    pub op: Op,
    pub since: Instant,
}

/// A request forwarded to the leader, waiting for its answer to relay.
#[derive(Debug)]
pub struct Forward {
    pub client: Client,
    pub is_read: bool,
    /// The leader it went to; once this node stops believing in that leader (it died, lost its
    /// majority, or an election is under way), the answer is given at once instead of after the
    /// request timeout. Only that leader's answer is relayed.
    pub leader: NodeId,
    /// The reply type a success must have (`read_ok`, `write_ok`, `cas_ok`).
    pub ok_type: &'static str,
    pub since: Instant,
}

/// Everything that exists once `init` has named the cluster.
pub struct Replica {
    pub me: String,
    pub ids: Vec<String>,
    pub my: NodeId,
    pub shell: Shell<KvStore, Waiting>,
    storage: Storage,
    pub init_at: Instant,
    pub peers_open: bool,
    pub heard_from: HashSet<NodeId>,
    /// Forwarded requests by the msg_id this node gave them.
    pub forwards: HashMap<u64, Forward>,
    last_role: Role,
    last_term: u64,
    /// The durable recovering mark as last logged.
    last_recovery: RecoveryMark,
    /// When the node last said what its rejoining waits for.
    last_wait_report: Instant,
}

/// How often a rejoining node says what it still waits for.
const WAIT_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Core id of the node at `position` in `node_ids` (0 is kept free for "nobody").
pub fn core_id(position: usize) -> NodeId {
    position as NodeId + 1
}

/// The Maelstrom name of core id `id` (the inverse of [`core_id`]), if it names a node.
pub fn node_name(node_ids: &[String], id: NodeId) -> Option<&str> {
    let position = (id as usize).checked_sub(1)?;
    node_ids.get(position).map(String::as_str)
}

/// The reply envelope to `client`.
pub fn reply(client: &Client, body: Map<String, Value>) -> Envelope {
    Envelope {
        src: client.dest.clone(),
        dest: client.src.clone(),
        body,
    }
}

impl Replica {
    /// Opens (or recovers) the node's storage and builds its shell from what is durable.
    pub fn open(
        me: &str,
        ids: Vec<String>,
        position: usize,
        settings: &Settings,
    ) -> Result<Replica, String> {
        let dir = datadir::data_dir(me)?;
        if let Some(warning) = datadir::shell_parent_warning() {
            tracing::warn!("{warning}");
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                format!(
                    "cannot create data directory root {}: {e}",
                    parent.display()
                )
            })?;
        }
        let (storage, state) = start::open_data_dir(me, &ids, &dir, crate::shell::rejoin::decide)?;
        let last_recovery = RecoveryMark::from(state.hard_state.recovery);
        let my = core_id(position);
        let voters: Vec<NodeId> = (0..ids.len()).map(core_id).collect();
        let mut config = Config::new(my, voters, process_seed(my));
        config.pre_vote = settings.pre_vote;
        config.check_quorum = settings.check_quorum;
        let shell_settings = ShellSettings::new(settings.snapshot_every);
        let shell =
            Shell::recover(config, state, shell_settings).map_err(|e| format!("{me}: {e}"))?;
        Ok(Replica {
            me: me.to_string(),
            ids,
            my,
            shell,
            storage,
            init_at: Instant::now(),
            peers_open: false,
            heard_from: HashSet::new(),
            forwards: HashMap::new(),
            last_role: Role::Follower,
            last_term: 0,
            last_recovery,
            last_wait_report: Instant::now(),
        })
    }

    pub fn stats(&self) -> ShellStats {
        self.shell.stats
    }

    /// Performs everything the core has ready (the sled persist is synchronous: one flush per
    /// `Ready` that needs one), writing peer messages and answers to `out`.
    pub fn drive<W: Write>(&mut self, out: &mut W) -> Result<u64, String> {
        let installed = self.shell.stats.snapshots_installed;
        let applied = self.shell.applied();
        let mut io = NodeIo {
            storage: &mut self.storage,
            out,
            me: &self.me,
            ids: &self.ids,
            peers_open: self.peers_open,
            heard_from: &self.heard_from,
            peer_messages: 0,
            write_error: None,
        };
        let progress = self
            .shell
            .drive(&mut io)
            .map_err(|e| format!("{}: {e}", self.me))?;
        debug_assert_eq!(progress, Progress::Idle, "sled persists synchronously");
        if let Some(e) = io.write_error {
            return Err(e);
        }
        let sent = io.peer_messages;
        if self.shell.stats.snapshots_installed > installed {
            tracing::info!(
                "{} installed a snapshot from the leader at index {} (applied was {applied})",
                self.me,
                self.shell.snapshot_point().0
            );
        }
        self.log_role_change();
        self.log_recovery_change();
        Ok(sent)
    }

    /// Logs a change of the durable recovering mark; `recovered:` once it is ordinary again.
    fn log_recovery_change(&mut self) {
        let hs = self.storage.hard_state();
        if let Some(line) = mark_change_line(&self.me, self.last_recovery, &hs) {
            tracing::info!("{line}");
        }
        self.last_recovery = hs.recovery;
        self.report_rejoin_wait();
    }

    /// A node still rejoining says, every few seconds, what it waits for: a peer that never
    /// answers its probe (down, cut off, or its own disk lost too) keeps it out for good, and
    /// the operator must be able to tell.
    fn report_rejoin_wait(&mut self) {
        if self.last_recovery == RecoveryMark::Ordinary
            || self.last_wait_report.elapsed() < WAIT_REPORT_EVERY
        {
            return;
        }
        let raft = self.shell.raft();
        let st = raft.status();
        let waiting = match st.recovery {
            Recovery::Ordinary => return,
            Recovery::Probing => {
                let names: Vec<&str> = raft
                    .awaiting_probe_answers()
                    .iter()
                    .filter_map(|&p| node_name(&self.ids, p))
                    .collect();
                format!(
                    "probe answers from {} (it acknowledges and votes for nothing until every \
                     other node answered, since its term and vote are unknown: a first boot, a wiped disk or \
                     damage)",
                    names.join(", ")
                )
            }
            Recovery::CatchingUp => format!(
                "the leader of term {} to give it every committed entry (it grants no vote \
                 until then)",
                st.term
            ),
        };
        tracing::warn!("{} is rejoining and waits for {waiting}", self.me);
        self.last_wait_report = Instant::now();
    }

    fn log_role_change(&mut self) {
        let st = self.shell.raft().status();
        if st.role == self.last_role && st.term == self.last_term {
            return;
        }
        if st.role == Role::Leader {
            tracing::info!("{} is leader for term {}", self.me, st.term);
        } else if self.last_role == Role::Leader {
            tracing::info!(
                "{} is no longer leader (now {:?}, term {})",
                self.me,
                st.role,
                st.term
            );
        }
        self.last_role = st.role;
        self.last_term = st.term;
    }
}

/// The line that reports a change of the durable recovering mark from `before`: `recovered:`
/// with the node and its incarnation when it is ordinary again (the bench waits for that line).
fn mark_change_line(
    me: &str,
    before: RecoveryMark,
    now: &raftkv_storage::HardState,
) -> Option<String> {
    let mark = now.recovery;
    if mark == before {
        return None;
    }
    let (term, incarnation) = (now.term, now.incarnation);
    Some(if mark == RecoveryMark::Ordinary {
        format!(
            "recovered: {me} is an ordinary node again (incarnation {incarnation}, term {term}; \
             it was {})",
            before.name()
        )
    } else {
        format!(
            "{me} is now {} (incarnation {incarnation}, term {term})",
            now.recovery.name()
        )
    })
}

/// The core's random seed: different for every process and node.
fn process_seed(my: NodeId) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32) ^ my
}

/// The shell's storage and outbox on a real node: sled, and Maelstrom envelopes on stdout.
struct NodeIo<'a, W: Write> {
    storage: &'a mut Storage,
    out: &'a mut W,
    me: &'a str,
    ids: &'a [String],
    peers_open: bool,
    heard_from: &'a HashSet<NodeId>,
    peer_messages: u64,
    /// The first failed write to stdout (the shell's outbox cannot fail; the loop reports it).
    write_error: Option<String>,
}

impl<W: Write> NodeIo<'_, W> {
    fn emit(&mut self, env: &Envelope) {
        if self.write_error.is_some() {
            return;
        }
        if let Err(e) = env.write_line_buffered(&mut *self.out) {
            self.write_error = Some(format!("cannot write to stdout: {e}"));
        }
    }
}

impl<W: Write> LogStorage for NodeIo<'_, W> {
    fn begin_persist(&mut self, batch: &Batch<'_>) -> Result<Durability, String> {
        records::persist(self.storage, batch)
            .map_err(|e| records::running_failure("cannot persist", &e))?;
        Ok(Durability::Durable)
    }

    fn finish_persist(&mut self, _batch: &Batch<'_>) -> Result<(), String> {
        // `begin_persist` is synchronous: there is never a persist to finish.
        Ok(())
    }

    fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &Arc<Vec<u8>>) -> Result<(), String> {
        self.storage
            .save_snapshot(&meta.into(), data)
            .map_err(|e| records::running_failure("cannot save a snapshot", &e))
    }
}

impl<W: Write> Outbox<Waiting, Outcome> for NodeIo<'_, W> {
    /// A core message as a Maelstrom envelope. Before the peer delay has passed, only peers
    /// that have spoken to this node get anything.
    fn send(&mut self, m: Message) {
        let Some(dest) = node_name(self.ids, m.to) else {
            tracing::error!("core addressed a message to unknown id {}", m.to);
            return;
        };
        if !self.peers_open && !self.heard_from.contains(&m.to) {
            return;
        }
        msglog::raft("send", dest, &m);
        match pack::pack(&m) {
            Ok(text) => {
                let mut body = Map::new();
                body.insert("type".into(), "raft".into());
                body.insert("m".into(), text.into());
                let env = Envelope {
                    src: self.me.to_string(),
                    dest: dest.to_string(),
                    body,
                };
                self.peer_messages += 1;
                self.emit(&env);
            }
            Err(e) => tracing::error!("cannot encode a raft message: {e}"),
        }
    }

    fn flush_sends(&mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("cannot write to stdout: {e}"))
    }

    fn answer(&mut self, token: Waiting, answer: Answer<Outcome>) {
        let body = answer_body(&token.op, token.client.msg_id, answer);
        let env = reply(&token.client, body);
        msglog::envelope("send", &env);
        self.emit(&env);
    }

    fn observe_ready(&mut self, _raft: &Raft, ready: &Ready) {
        tracing::trace!(target: "raftkv::shell", "{} ready: {ready:?}", self.me);
    }
}

/// The Maelstrom reply to `op` (asked as `msg_id`) for the shell's answer: 11 only when the
/// operation definitely did not happen, 13 when it may have.
pub fn answer_body(op: &Op, msg_id: u64, answer: Answer<Outcome>) -> Map<String, Value> {
    match answer {
        Answer::Applied(outcome) | Answer::Read(outcome) => op.reply(msg_id, &outcome),
        Answer::NotDone(why) => error_body(Some(msg_id), code::TEMPORARILY_UNAVAILABLE, why),
        Answer::Unknown(why) => error_body(Some(msg_id), code::CRASH, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv_storage::{HardState, RecoveryMark};

    #[test]
    fn the_recovered_line_names_the_node_and_its_incarnation_once_the_mark_is_ordinary() {
        let hs = |recovery| HardState {
            term: 6,
            recovery,
            incarnation: 42,
            ..HardState::default()
        };
        let line = mark_change_line("n3", RecoveryMark::CatchingUp, &hs(RecoveryMark::Ordinary));
        assert_eq!(
            line.as_deref(),
            Some("recovered: n3 is an ordinary node again (incarnation 42, term 6; it was catching-up)")
        );
        let line = mark_change_line("n3", RecoveryMark::Probing, &hs(RecoveryMark::CatchingUp));
        assert_eq!(
            line.as_deref(),
            Some("n3 is now catching-up (incarnation 42, term 6)")
        );
        assert_eq!(
            mark_change_line("n3", RecoveryMark::Ordinary, &hs(RecoveryMark::Ordinary)),
            None
        );
        assert_eq!(
            mark_change_line("n3", RecoveryMark::Probing, &hs(RecoveryMark::Probing)),
            None
        );
    }
}
