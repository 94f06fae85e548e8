//! Disk faults on real processes: a cluster of 5 nodes takes acknowledged writes while a killed
//! node's data directory is damaged in each way in turn (the damage of `raftkv test
//! --disk-faults`), then restarted. Each damaged node must start, serve a write and a read through
//! itself again, log that it is an ordinary node again (it rejoined and caught up), and in the end
//! every acknowledged write must read back.

mod node_common;

use node_common::Cluster;
use raftkv::bench::disk::{self, Applied, DiskFault};
use raftkv::rng::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a restarted node has to serve a write and a read through itself.
const SERVE_WITHIN: Duration = Duration::from_secs(8);

/// Writes `count` fresh keys through the leader and records each acknowledged value.
fn write_keys(c: &Cluster, acked: &mut BTreeMap<u64, u64>, count: u64) {
    let leader = c.leader().expect("a leader");
    for _ in 0..count {
        let key = acked.len() as u64;
        let body = json!({"type": "write", "key": key, "value": key * 7});
        let answer = c.request_until_definite(leader, body, Duration::from_secs(10));
        assert_eq!(answer["type"], "write_ok", "write of key {key}: {answer}");
        acked.insert(key, key * 7);
    }
}

/// Sends `body` through node `i` until a definite answer, or an error after `until`.
fn ask(c: &Cluster, i: usize, body: Value, until: Instant) -> Result<Value, String> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no definite answer to {body} within {SERVE_WITHIN:?}"
            ));
        }
        match c.request(i, body.clone(), left.min(Duration::from_secs(1))) {
            Some(a) if a["type"] == "error" && (a["code"] == 11 || a["code"] == 13) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Some(a) => return Ok(a),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Node `i` serves again: a write through it is acknowledged and a read through it returns it.
fn serves(c: &Cluster, i: usize, acked: &mut BTreeMap<u64, u64>) -> Result<(), String> {
    let until = Instant::now() + SERVE_WITHIN;
    let key = acked.len() as u64;
    let wrote = ask(
        c,
        i,
        json!({"type": "write", "key": key, "value": key * 7}),
        until,
    )?;
    if wrote["type"] != "write_ok" {
        return Err(format!("a write through it was answered {wrote}"));
    }
    acked.insert(key, key * 7);
    let read = ask(c, i, json!({"type": "read", "key": key}), until)?;
    if read["type"] != "read_ok" || read["value"] != key * 7 {
        return Err(format!(
            "a read through it of key {key} was answered {read}"
        ));
    }
    Ok(())
}

/// Node `i` logs that it cleared its recovering mark (it serves, by forwarding, before that).
fn ordinary_again(c: &Cluster, i: usize) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        if c.stderr(i).iter().any(|l| l.contains("recovered:")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "it served but never became an ordinary node again: {:?}",
        c.stderr(i)
    ))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for ent in std::fs::read_dir(from).expect("list") {
        let ent = ent.expect("entry");
        let dst = to.join(ent.file_name());
        if ent.file_type().expect("type").is_dir() {
            copy_dir(&ent.path(), &dst);
        } else {
            std::fs::copy(ent.path(), &dst).expect("copy file");
        }
    }
}

/// Kills node `i` and damages its directory with `kind`, keeping an undamaged copy in `kept`. A
/// directory `kind` does not apply to (the snapshot took the whole log, say) is put back and the
/// node restarted and killed again after another write, up to three times.
fn kill_and_damage(
    c: &mut Cluster,
    i: usize,
    kind: DiskFault,
    rng: &mut Rng,
    acked: &mut BTreeMap<u64, u64>,
    kept: &Path,
) -> Applied {
    let dir = c.data_root().join(&c.ids[i]);
    for _ in 0..3 {
        write_keys(c, acked, 3);
        c.kill(i);
        let _ = std::fs::remove_dir_all(kept);
        copy_dir(&dir, kept);
        let applied = disk::damage(&dir, kind, rng).expect("the damage applies");
        if applied.fault == kind {
            return applied;
        }
        put_back(c, i, kept);
    }
    panic!("{} never applied to {}", kind.name(), dir.display());
}

/// Puts node `i`'s undamaged directory back and restarts it.
fn put_back(c: &mut Cluster, i: usize, kept: &Path) {
    let dir = c.data_root().join(&c.ids[i]);
    std::fs::remove_dir_all(&dir).expect("remove damaged dir");
    copy_dir(kept, &dir);
    c.boot(i);
}

#[test]
fn a_node_restarted_on_a_damaged_directory_serves_again_and_no_acknowledged_write_is_lost() {
    let mut c = Cluster::start(5, vec![("RAFTKV_SNAPSHOT_EVERY", "10".into())]);
    let kept = tempfile::tempdir().expect("tmp");
    let mut acked = BTreeMap::new();
    write_keys(&c, &mut acked, 20);
    let mut failures = Vec::new();
    let mut rng = Rng::new(7);
    for kind in DiskFault::ALL {
        // A follower, in turn: the leader stays, so each round costs no election.
        let leader = c.leader().expect("a leader");
        let i = (0..5)
            .map(|k| (k + acked.len()) % 5)
            .find(|&k| k != leader)
            .expect("a follower");
        let kept = kept.path().join(kind.name());
        let applied = kill_and_damage(&mut c, i, kind, &mut rng, &mut acked, &kept);
        let came_back = c
            .try_boot(i)
            .and_then(|()| serves(&c, i, &mut acked))
            .and_then(|()| ordinary_again(&c, i));
        if let Err(e) = came_back {
            let e: String = e.chars().take(600).collect();
            failures.push(format!(
                "{} ({}, {}): {e}",
                kind.name(),
                c.ids[i],
                applied.detail
            ));
            put_back(&mut c, i, &kept);
        }
    }
    let until = Instant::now() + Duration::from_secs(10);
    for (&key, &value) in &acked {
        let i = key as usize % 5;
        match ask(&c, i, json!({"type": "read", "key": key}), until) {
            Ok(a) if a["type"] == "read_ok" && a["value"] == value => {}
            answer => failures.push(format!("acknowledged write {key}={value} lost: {answer:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) after damage:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
