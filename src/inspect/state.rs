//! The state machine a node would serve, rebuilt offline, and its comparison across replicas.
//!
//! Owns: rebuilding the lin-kv map from an examined directory (snapshot data restored, then the
//! intact log applied in order up to an index, with the project's own `kv` module, exactly as the
//! node applies: no-ops and entries that are not commands are skipped), the state hash, and the
//! comparison of several replicas' states at the highest index all of them have applied.
//! Must never: read or change a directory itself (it works on examined images), or claim a state
//! at an index it could not reach: a rebuild that stops early says where and why.

use crate::kv::{Command, KvStore};
use raftkv_storage::examine::Image;
use raftkv_storage::EntryKind;
use serde_json::Value;

/// A state machine rebuilt from one directory.
pub struct Rebuilt {
    pub kv: KvStore,
    /// The index the state reflects (every entry up to it applied).
    pub index: u64,
    /// Why the rebuild stopped before the index it was asked for (a missing or damaged entry).
    pub stopped: Option<String>,
    /// Entries skipped as the node skips them (committed entries that are not lin-kv commands).
    pub notes: Vec<String>,
}

/// The index whose state the node serves after recovery: its commit index, raised to the
/// snapshot's index (a snapshot holds only committed entries, and recovery raises it so).
pub fn served_index(img: &Image) -> u64 {
    let snap_index = img.snapshot.as_ref().map_or(0, |s| s.meta.index);
    img.commit().max(snap_index)
}

/// Rebuilds the state of `img` at `upto`: its snapshot, then its intact log up to `upto`.
/// Fails when nothing at `upto` can be built: sled cannot open the directory, the snapshot is
/// damaged, or the snapshot lies past `upto`.
pub fn rebuild(img: &Image, upto: u64) -> Result<Rebuilt, String> {
    if let Some(e) = &img.sled_error {
        return Err(e.clone());
    }
    let mut kv = KvStore::new();
    let mut index = 0;
    if let Some(snap) = &img.snapshot {
        if snap.meta.index > upto {
            return Err(format!(
                "its snapshot at index {} is past index {upto}, so its state there cannot be rebuilt",
                snap.meta.index
            ));
        }
        let Some(data) = &img.snapshot_data else {
            return Err(format!(
                "its snapshot at index {} is damaged, so no state can be rebuilt",
                snap.meta.index
            ));
        };
        kv.restore(data)
            .map_err(|e| format!("its snapshot at index {}: {e}", snap.meta.index))?;
        index = snap.meta.index;
    }
    let mut notes = vec![];
    for e in img.log().take_while(|e| e.index <= upto) {
        debug_assert_eq!(e.index, index + 1, "the recovered log is contiguous");
        if e.kind == EntryKind::Normal {
            match Command::decode(&e.data) {
                Ok(cmd) => {
                    kv.apply(&cmd);
                }
                Err(why) => notes.push(format!("entry {} skipped: {why}", e.index)),
            }
        }
        index = e.index;
    }
    let stopped = (index < upto).then(|| {
        format!(
            "the intact log ends at index {index}, before index {upto} (entry {} is missing or damaged)",
            index + 1
        )
    });
    Ok(Rebuilt {
        kv,
        index,
        stopped,
        notes,
    })
}

/// The text a state hash covers: for every key in the order of its canonical JSON text, that
/// text, a newline, the value's canonical JSON text, a newline.
fn canonical_lines(kv: &KvStore) -> impl Iterator<Item = String> + '_ {
    kv.pairs().map(|(k, v)| format!("{k}\n{v}\n"))
}

/// FNV-1a (64 bit) of the state's canonical text, as 16 hex digits: independent of how the
/// snapshot is encoded, so two runs of the inspector on any machine give the same hash.
pub fn state_hash(kv: &KvStore) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in canonical_lines(kv) {
        for b in line.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// One replica in a state comparison.
pub struct Replica {
    /// Position among the images.
    pub image: usize,
    /// The hash and key count of its state at the common index, or why it has none.
    pub state: Result<(String, usize), String>,
}

/// A key whose value differs between replicas: each compared replica's value (`None` = absent).
pub struct KeyDifference {
    pub key: Value,
    pub values: Vec<(usize, Option<Value>)>,
}

/// The replicas' states at the highest index all of them have applied.
pub struct StateComparison {
    pub index: u64,
    pub replicas: Vec<Replica>,
    /// "equal", "differ" or "not compared" (fewer than two replicas could be rebuilt).
    pub verdict: &'static str,
    /// The first keys that differ (at most [`MAX_DIFFERENCES`]).
    pub differences: Vec<KeyDifference>,
}

/// How many differing keys a comparison names.
pub const MAX_DIFFERENCES: usize = 5;

/// Why a replica has no commit index to compare at: sled cannot open it, or its hard state is
/// missing or damaged.
fn without_commit(img: &Image) -> Option<String> {
    match (&img.sled_error, img.hard_state) {
        (Some(e), _) => Some(e.clone()),
        (None, None) => Some("it has no intact hard state, so no commit index".into()),
        (None, Some(_)) => None,
    }
}

/// Rebuilds every replica at the lowest commit index among them (those that have one) and
/// compares the states.
pub fn compare_states(images: &[Image]) -> StateComparison {
    let index = images
        .iter()
        .filter(|img| without_commit(img).is_none())
        .map(served_index)
        .min()
        .unwrap_or(0);
    let mut built: Vec<(usize, KvStore)> = vec![];
    let mut replicas = vec![];
    for (i, img) in images.iter().enumerate() {
        if let Some(why) = without_commit(img) {
            replicas.push(Replica {
                image: i,
                state: Err(why),
            });
            continue;
        }
        let state = match rebuild(img, index) {
            Ok(r) => match r.stopped {
                Some(why) => Err(why),
                None => {
                    let summary = (state_hash(&r.kv), r.kv.len());
                    built.push((i, r.kv));
                    Ok(summary)
                }
            },
            Err(why) => Err(why),
        };
        replicas.push(Replica { image: i, state });
    }
    let differences = first_differences(&built);
    let verdict = if !differences.is_empty() {
        "differ"
    } else if built.len() >= 2 {
        "equal"
    } else {
        "not compared"
    };
    StateComparison {
        index,
        replicas,
        verdict,
        differences,
    }
}

/// The first keys (in canonical order) on which the rebuilt states do not all agree.
fn first_differences(built: &[(usize, KvStore)]) -> Vec<KeyDifference> {
    let mut keys: Vec<(String, Value)> = built
        .iter()
        .flat_map(|(_, kv)| kv.pairs().map(|(k, _)| (k.to_string(), k.clone())))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.dedup_by(|a, b| a.0 == b.0);
    let mut out = vec![];
    for (_, key) in keys {
        let values: Vec<(usize, Option<Value>)> =
            built.iter().map(|(i, kv)| (*i, read(kv, &key))).collect();
        if values.windows(2).any(|w| w[0].1 != w[1].1) {
            out.push(KeyDifference { key, values });
            if out.len() == MAX_DIFFERENCES {
                break;
            }
        }
    }
    out
}

/// The value of `key` in `kv`, `None` when absent.
pub fn read(kv: &KvStore, key: &Value) -> Option<Value> {
    match kv.read(key) {
        crate::kv::Outcome::Ok(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(pairs: &[(Value, Value)]) -> KvStore {
        let mut kv = KvStore::new();
        for (k, v) in pairs {
            kv.apply(&Command::Write {
                key: k.clone(),
                value: v.clone(),
            });
        }
        kv
    }

    #[test]
    fn hash_depends_on_content_only() {
        let a = store(&[(json!(1), json!(2)), (json!("k"), json!({"b": 1, "a": 2}))]);
        let b = store(&[(json!("k"), json!({"a": 2, "b": 1})), (json!(1), json!(2))]);
        assert_eq!(state_hash(&a), state_hash(&b));
        let c = store(&[(json!(1), json!(3)), (json!("k"), json!({"b": 1, "a": 2}))]);
        assert_ne!(state_hash(&a), state_hash(&c));
        // `1` and `"1"` are different keys, so the states differ.
        assert_ne!(
            state_hash(&store(&[(json!(1), json!(0))])),
            state_hash(&store(&[(json!("1"), json!(0))]))
        );
        // The empty state hashes to FNV-1a's offset basis.
        assert_eq!(state_hash(&KvStore::new()), "cbf29ce484222325");
    }

    #[test]
    fn differences_name_the_first_keys_and_absent_values() {
        let a = store(&[
            (json!(1), json!(1)),
            (json!(2), json!(2)),
            (json!(3), json!(3)),
        ]);
        let b = store(&[(json!(1), json!(1)), (json!(2), json!(9))]);
        let d = first_differences(&[(0, a), (1, b)]);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].key, json!(2));
        assert_eq!(d[0].values, vec![(0, Some(json!(2))), (1, Some(json!(9)))]);
        assert_eq!(d[1].key, json!(3));
        assert_eq!(d[1].values, vec![(0, Some(json!(3))), (1, None)]);
    }
}
