//! The node's writer thread: once the node is open it owns the sled storage and performs the
//! shell's writes, one at a time and in order, while the loop goes on reading input, stepping
//! the core and sending what acknowledges nothing.
//!
//! Owns: the thread, its queue of jobs (the shell's writes, and the snapshots its state machine
//! takes), and the report of each write to the loop as an [`Event::Persisted`], sent only once
//! `Storage::persist` returned (sled flushed, then the durable-progress record written).
//! Must never: reorder jobs, report a write before it is durable, drop a write or a failure
//! without reporting it (a write that fails or panics is reported as an error and ends the
//! thread; the loop then stops the node), or touch the core or the shell.

use super::{records, Event};
use crate::raft::SnapshotMeta;
use crate::shell::DiskWrite;
use raftkv_storage::Storage;
use std::sync::{mpsc, Arc};
use std::thread;

/// What the thread is asked to do, in order.
enum Job {
    Persist(DiskWrite),
    SaveSnapshot {
        meta: SnapshotMeta,
        data: Arc<Vec<u8>>,
        done: mpsc::SyncSender<Result<(), String>>,
    },
}

/// The loop's handle on the writer thread. Dropping it lets the thread finish what it holds
/// and close the storage.
pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

const STOPPED: &str = "the writer thread has stopped (after a storage failure reported earlier)";

impl Writer {
    /// Moves `storage` to a new writer thread that reports each write on `events`.
    pub fn start(storage: Storage, events: mpsc::Sender<Event>) -> Result<Writer, String> {
        let (jobs, queue) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("writer".into())
            .spawn(move || run(storage, &queue, &events))
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands `write` to the thread: an [`Event::Persisted`] says when it is durable.
    pub fn persist(&self, write: DiskWrite) -> Result<(), String> {
        self.send(Job::Persist(write))
    }

    /// Stores a snapshot and compacts the log behind it; durable when this returns. The shell
    /// asks only while no write is in progress, so this waits for this job alone.
    pub fn save_snapshot(&self, meta: &SnapshotMeta, data: &Arc<Vec<u8>>) -> Result<(), String> {
        let (done, wait) = mpsc::sync_channel(1);
        self.send(Job::SaveSnapshot {
            meta: meta.clone(),
            data: Arc::clone(data),
            done,
        })?;
        wait.recv().map_err(|_| STOPPED.to_string())?
    }

    /// False once the thread has ended (it ends only after reporting a failure).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn send(&self, job: Job) -> Result<(), String> {
        let jobs = self.jobs.as_ref().ok_or(STOPPED)?;
        jobs.send(job).map_err(|_| STOPPED.to_string())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            // A panic was already reported as a failed job.
            let _ = thread.join();
        }
    }
}

/// The thread: performs jobs until the handle is dropped or one fails.
fn run(mut storage: Storage, queue: &mpsc::Receiver<Job>, events: &mpsc::Sender<Event>) {
    while let Ok(job) = queue.recv() {
        let go_on = match job {
            Job::Persist(write) => {
                let number = write.number();
                let result = guarded(|| {
                    records::persist(&mut storage, &write.batch())
                        .map_err(|e| format!("cannot persist write {number}: {e}"))
                });
                let ok = result.is_ok();
                events
                    .send(Event::Persisted(result.map(|()| write)))
                    .is_ok()
                    && ok
            }
            Job::SaveSnapshot { meta, data, done } => {
                let result = guarded(|| {
                    storage
                        .save_snapshot(&(&meta).into(), &data)
                        .map_err(|e| format!("cannot save a snapshot at {}: {e}", meta.index))
                });
                let ok = result.is_ok();
                done.send(result).is_ok() && ok
            }
        };
        if !go_on {
            return;
        }
    }
}

/// Runs one job, turning a panic into an error (the loop waits for every write's report).
fn guarded(job: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
        .unwrap_or_else(|_| Err("the writer thread panicked while writing (see stderr)".into()))
}
