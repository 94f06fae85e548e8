//! The damaged restarts of a run (`--disk-faults`): when a damage is applied, what became of each
//! damaged node, and the figures per damage kind.
//!
//! Owns: the kinds' turns (in the order of the list, from a point drawn from the run's seed), the
//! rule that at most one node is without its state at a time (no node is damaged while an earlier
//! damaged node is not yet ordinary and serving again), the record of each damage (applied, or
//! skipped and why), watching each damaged node after its restart until it is ordinary and
//! serving, and the figures per kind (damaged restarts, back and serving, time to serving,
//! acknowledged writes lost).
//! Must never: damage a node that is running, or a second node while an earlier damaged one is
//! not yet back; or count a node as serving on anything but an op through it that was served.

use super::cluster::Cluster;
use super::disk::{self, DiskFault};
use super::nemesis::lock;
use super::report::Restart;
use super::workload::{OpRecord, Recorder};
use crate::rng::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The text of the stderr line a node writes when it clears its recovering mark (it rejoined
/// with an empty log and caught up with its leader: an ordinary node again). A damaged node counts
/// as ordinary once it served and wrote that line since its restart; with `None` (a node without
/// a recovering state) it would count as ordinary as soon as it serves.
pub const RECOVERED_MARK: Option<&str> = Some("recovered:");

/// When a restarted node counts as having cleared its recovering mark, given `mark` (see
/// [`RECOVERED_MARK`]) and the stderr lines it wrote since its restart: with no mark, when it
/// answered `init` (`ready_ns`); with one, `now_ns` once a line holds it.
pub fn recovered_at(mark: Option<&str>, lines: &str, ready_ns: u64, now_ns: u64) -> Option<u64> {
    match mark {
        None => Some(ready_ns),
        Some(m) => lines.lines().any(|l| l.contains(m)).then_some(now_ns),
    }
}

/// One damage: applied to a killed node's directory before its restart, or skipped (and why).
#[derive(Clone, Debug, Serialize)]
pub struct DiskDamage {
    pub node: String,
    /// When it was applied or skipped, right after the kill (ns since the run began).
    pub at_ns: u64,
    /// The kind whose turn it was.
    pub requested: &'static str,
    /// The kind applied (the nearest that applied when the requested one did not); `None` when
    /// nothing was damaged.
    pub applied: Option<&'static str>,
    /// What was damaged, or why nothing was.
    pub detail: String,
    /// When the damaged node was restarted, and when it answered `init_ok`.
    pub restart_ns: Option<u64>,
    pub init_ok_ns: Option<u64>,
    pub restart_error: Option<String>,
    /// Time from the restart to the first op through this node that was served (`ok`, or a
    /// definite answer about the data), as for every restart.
    pub serves_again_ms: Option<f64>,
    /// Time from the restart until the node was ordinary and serving again (see
    /// [`RECOVERED_MARK`]).
    pub ordinary_ms: Option<f64>,
    /// Keys whose last acknowledged write came before this damage (and after the one before it)
    /// that were read back absent or that the checker found not linearizable.
    pub acked_writes_lost: usize,
    #[serde(skip)]
    node_index: usize,
    #[serde(skip)]
    restart: Option<usize>,
    /// How far the node's log has been searched for the recovered line (bytes).
    #[serde(skip)]
    log_scanned: u64,
    #[serde(skip)]
    seen_serving_ns: Option<u64>,
    #[serde(skip)]
    seen_recovered_ns: Option<u64>,
}

impl DiskDamage {
    /// Ordinary and serving again, as watched during the run.
    fn back(&self) -> bool {
        self.seen_serving_ns.is_some() && self.seen_recovered_ns.is_some()
    }
}

/// The disk-fault turns of a run's nemesis.
pub struct DiskTurns {
    faults: Vec<DiskFault>,
    next: usize,
    rng: Rng,
}

impl DiskTurns {
    /// Turns over `faults` (not empty), drawn from `seed`.
    pub fn new(faults: Vec<DiskFault>, seed: u64) -> DiskTurns {
        debug_assert!(!faults.is_empty());
        let mut rng = Rng::new(seed ^ 0x6469_736B_6661_756C);
        let next = rng.below(faults.len() as u64) as usize;
        DiskTurns { faults, next, rng }
    }

    /// After a kill of `killed` (all reaped): damages one of them with the kind whose turn it is,
    /// unless an earlier damaged node is not yet ordinary and serving again, or `room` is false
    /// (the run ends too soon after the restart to see it serve). Records the damage either way
    /// and notes it in the node's log; returns a short text for the progress line.
    pub fn after_kill(
        &mut self,
        cluster: &Cluster,
        at_ns: u64,
        damages: &Mutex<Vec<DiskDamage>>,
        killed: &[usize],
        room: bool,
    ) -> Option<String> {
        let &target = self.rng.pick(killed)?;
        let wanted = self.faults[self.next];
        let node = cluster.ids()[target].clone();
        let mut damages = lock(damages);
        let outcome = match hold_back(&damages, room) {
            Some(why) => Err(why),
            None => disk::damage(&cluster.data_dir(target), wanted, &mut self.rng),
        };
        let (applied, detail) = match outcome {
            Ok(a) => {
                self.next = (self.next + 1) % self.faults.len();
                (Some(a.fault.name()), a.detail)
            }
            Err(why) => (None, why),
        };
        let shown = format!("{} {node}: {detail}", applied.unwrap_or("no damage"));
        cluster.note(target, &format!("disk fault ({}) {shown}", wanted.name()));
        damages.push(DiskDamage {
            node,
            at_ns,
            requested: wanted.name(),
            applied,
            detail,
            restart_ns: None,
            init_ok_ns: None,
            restart_error: None,
            serves_again_ms: None,
            ordinary_ms: None,
            acked_writes_lost: 0,
            node_index: target,
            restart: None,
            log_scanned: 0,
            seen_serving_ns: None,
            seen_recovered_ns: None,
        });
        applied.map(|kind| format!("+ {kind} {}", cluster.ids()[target]))
    }
}

/// Why no node may be damaged now, if none may: an earlier damaged node is not yet ordinary and
/// serving again (at most one node is without its state at a time), or `room` is false.
fn hold_back(damages: &[DiskDamage], room: bool) -> Option<String> {
    if let Some(d) = damages.iter().find(|d| d.applied.is_some() && !d.back()) {
        return Some(format!(
            "not damaged: {}, damaged at {:.2}s, is not yet ordinary and serving again",
            d.node,
            d.at_ns as f64 / 1e9
        ));
    }
    (!room).then(|| "not damaged: the run ends too soon after its restart to see it serve".into())
}

/// Links node `i`'s restart (`restarts[index]`, begun when its log was `log_len` bytes long) to
/// the damage applied before it.
pub fn restarted(
    damages: &Mutex<Vec<DiskDamage>>,
    i: usize,
    log_len: u64,
    r: &Restart,
    index: usize,
) {
    let mut damages = lock(damages);
    let waiting = damages
        .iter_mut()
        .rev()
        .find(|d| d.node_index == i && d.applied.is_some() && d.restart.is_none());
    if let Some(d) = waiting {
        d.restart = Some(index);
        d.restart_ns = Some(r.at_ns);
        d.init_ok_ns = r.init_ok_ns;
        d.restart_error = r.error.clone();
        d.log_scanned = log_len;
    }
}

/// Watches every damaged node not yet back: served (an op through it, invoked after its
/// `init_ok`, was served) and recovered (see [`RECOVERED_MARK`]). Called every 100 ms.
pub fn observe(damages: &Mutex<Vec<DiskDamage>>, rec: &Recorder, cluster: &Cluster) {
    let mut damages = lock(damages);
    for d in damages
        .iter_mut()
        .filter(|d| d.applied.is_some() && !d.back())
    {
        let Some(ready) = d.init_ok_ns else { continue };
        if d.seen_serving_ns.is_none() {
            d.seen_serving_ns = rec.first_served(d.node_index, ready);
        }
        if d.seen_recovered_ns.is_none() {
            let (lines, scanned) = cluster.log_lines_from(d.node_index, d.log_scanned);
            d.log_scanned = scanned;
            d.seen_recovered_ns = recovered_at(RECOVERED_MARK, &lines, ready, rec.now_ns());
        }
    }
}

/// Fills each damage's figures once the run is over: its restart's time to serving (the
/// restarts' own figures), the time until ordinary, and the acknowledged writes lost charged to
/// it. `lost` holds, per key read back absent or found not linearizable, the time its last
/// acknowledged write completed; a key is charged to the first damage applied after that time.
/// Returns how many lost keys no damage came after.
pub fn finish(damages: &mut [DiskDamage], restarts: &[Restart], lost: &[u64]) -> usize {
    for d in damages.iter_mut() {
        let restart = d.restart.and_then(|i| restarts.get(i));
        d.serves_again_ms = restart.and_then(|r| r.serves_again_ms);
        d.ordinary_ms = match (d.serves_again_ms, d.seen_recovered_ns, d.restart_ns) {
            (Some(serving), Some(recovered), Some(at)) => {
                Some(serving.max(recovered.saturating_sub(at) as f64 / 1e6))
            }
            _ => None,
        };
    }
    let mut unattributed = 0;
    for &acked_ns in lost {
        match damages
            .iter_mut()
            .find(|d| d.applied.is_some() && d.at_ns >= acked_ns)
        {
            Some(d) => d.acked_writes_lost += 1,
            None => unattributed += 1,
        }
    }
    unattributed
}

/// For each key in `keys` with an acknowledged write, when its last acknowledged write
/// completed (ns).
pub fn last_acked_writes(ops: &[OpRecord], keys: &[u64]) -> Vec<u64> {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for o in ops
        .iter()
        .filter(|o| o.acked_write && keys.contains(&o.key))
    {
        let t = last.entry(o.key).or_insert(0);
        *t = (*t).max(o.complete_ns);
    }
    last.into_values().collect()
}

/// The figures of one damage kind.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KindFigures {
    pub kind: &'static str,
    /// Restarts on a directory damaged this way.
    pub damaged: usize,
    /// Of those, restarts that answered `init` and served an op through the node.
    pub back_and_serving: usize,
    /// Of those, restarts after which the node was also ordinary (see [`RECOVERED_MARK`]).
    pub ordinary: usize,
    /// Median time from the restart to the first op served through the node.
    pub median_serving_ms: Option<f64>,
    /// Keys whose acknowledged write was lost, charged to damages of this kind (see [`finish`]).
    pub acked_writes_lost: usize,
}

/// One row per kind applied or asked for, in the kinds' order.
pub fn by_kind(asked: &[DiskFault], damages: &[DiskDamage]) -> Vec<KindFigures> {
    DiskFault::ALL
        .iter()
        .map(|k| k.name())
        .filter(|&k| {
            asked.iter().any(|a| a.name() == k) || damages.iter().any(|d| d.applied == Some(k))
        })
        .map(|kind| {
            let of: Vec<&DiskDamage> = damages.iter().filter(|d| d.applied == Some(kind)).collect();
            let serving: Vec<f64> = of.iter().filter_map(|d| d.serves_again_ms).collect();
            KindFigures {
                kind,
                damaged: of.len(),
                back_and_serving: serving.len(),
                ordinary: of.iter().filter(|d| d.ordinary_ms.is_some()).count(),
                median_serving_ms: super::summary::median_of(serving),
                acked_writes_lost: of.iter().map(|d| d.acked_writes_lost).sum(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damage(node: &str, at_s: u64, applied: Option<&'static str>) -> DiskDamage {
        DiskDamage {
            node: node.into(),
            at_ns: at_s * 1_000_000_000,
            requested: applied.unwrap_or("flip"),
            applied,
            detail: String::new(),
            restart_ns: Some(at_s * 1_000_000_000 + 500_000_000),
            init_ok_ns: Some(at_s * 1_000_000_000 + 600_000_000),
            restart_error: None,
            serves_again_ms: None,
            ordinary_ms: None,
            acked_writes_lost: 0,
            node_index: 0,
            restart: None,
            log_scanned: 0,
            seen_serving_ns: None,
            seen_recovered_ns: None,
        }
    }

    fn restart(serves_again_ms: Option<f64>) -> Restart {
        Restart {
            node: "n0".into(),
            at_ns: 0,
            init_ok_ns: Some(1),
            error: None,
            serves_again_ms,
            final_phase: false,
        }
    }

    #[test]
    fn the_recovered_line_counts_only_when_a_mark_is_set_and_a_line_holds_it() {
        let lines =
            "INFO raftkv::node: n2 is follower\nINFO raftkv::node: recovered: n2 caught up\n";
        assert_eq!(
            recovered_at(None, "", 7, 99),
            Some(7),
            "no mark: at init_ok"
        );
        assert_eq!(recovered_at(Some("recovered:"), lines, 7, 99), Some(99));
        assert_eq!(
            recovered_at(Some("recovered:"), "INFO n2 is follower\n", 7, 99),
            None
        );
    }

    #[test]
    fn no_node_is_damaged_while_a_damaged_one_is_not_yet_back() {
        let mut ds = vec![damage("n1", 10, None), damage("n2", 12, Some("flip"))];
        assert_eq!(
            hold_back(&ds[..1], true),
            None,
            "a skipped damage holds nothing"
        );
        let why = hold_back(&ds, true).expect("n2 not restarted yet");
        assert!(why.contains("n2, damaged at 12.00s"), "{why}");
        ds[1].seen_serving_ns = Some(13);
        assert!(
            hold_back(&ds, true).is_some(),
            "serving but not yet recovered"
        );
        ds[1].seen_recovered_ns = Some(13);
        assert_eq!(hold_back(&ds, true), None, "ordinary and serving");
        let why = hold_back(&ds, false).expect("no room");
        assert!(why.contains("too soon"), "{why}");
    }

    #[test]
    fn lost_writes_are_charged_to_the_first_damage_after_them_and_kinds_are_tallied() {
        let mut ds = vec![
            damage("n1", 10, Some("flip")),
            damage("n2", 20, None),
            damage("n3", 30, Some("wipe")),
            damage("n4", 40, Some("flip")),
        ];
        ds[0].restart = Some(0);
        ds[0].seen_recovered_ns = ds[0].init_ok_ns;
        ds[2].restart = Some(1);
        ds[2].seen_recovered_ns = ds[2].init_ok_ns;
        ds[3].restart = Some(2);
        let restarts = [restart(Some(800.0)), restart(Some(300.0)), restart(None)];
        let s = 1_000_000_000;
        // Acknowledged at 5 s (before n1), 25 s (n2 was skipped: charged to n3), 45 s (after all).
        let unattributed = finish(&mut ds, &restarts, &[5 * s, 25 * s, 26 * s, 45 * s]);
        assert_eq!(unattributed, 1);
        let lost: Vec<usize> = ds.iter().map(|d| d.acked_writes_lost).collect();
        assert_eq!(lost, [1, 0, 2, 0]);
        assert_eq!(ds[0].ordinary_ms, Some(800.0), "ordinary when serving");
        let rows = by_kind(&[DiskFault::Flip, DiskFault::Drop], &ds);
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            ["flip", "drop", "wipe"],
            "asked kinds and applied ones"
        );
        assert_eq!(
            rows[0],
            KindFigures {
                kind: "flip",
                damaged: 2,
                back_and_serving: 1,
                ordinary: 1,
                median_serving_ms: Some(800.0),
                acked_writes_lost: 1,
            }
        );
        assert_eq!((rows[1].damaged, rows[1].median_serving_ms), (0, None));
        assert_eq!(
            (rows[2].back_and_serving, rows[2].acked_writes_lost),
            (1, 2)
        );
    }
}
