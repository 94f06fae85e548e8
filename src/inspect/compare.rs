//! Comparing the logs of several node directories offline: Raft's log matching property, the
//! committed prefix, and which peer holds an intact copy of each damaged entry.
//!
//! Owns: the pairwise log comparison and the search for intact copies among peers.
//! Must never: read a directory itself; it works on the images the storage crate examined.

use super::text::describe;
use raftkv_storage::examine::{Damage, Image};
use raftkv_storage::Entry;

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

/// Compares the recovered logs of two images (entries only; snapshots hold no entries).
pub fn compare(ia: usize, a: &Image, ib: usize, b: &Image) -> Divergence {
    let la: Vec<&Entry> = a.log().collect();
    let lb: Vec<&Entry> = b.log().collect();
    let lo = a.first_index.max(b.first_index);
    let hi = a.last_index.min(b.last_index);
    let commit = a.commit().min(b.commit());
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

/// A peer that holds an intact record at every index of a damaged part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Position of the peer among the images.
    pub peer: usize,
    /// Every index of the part is at or below the peer's commit index, so the peer's copy is the
    /// committed entry (log matching makes every committed copy the same).
    pub committed: bool,
}

/// Peers (other than `own`) holding an intact copy of every index of `damage`.
pub fn intact_copies(images: &[Image], own: usize, damage: &Damage) -> Vec<Copy> {
    let Some(from) = damage.index else {
        return vec![];
    };
    let through = damage.through.unwrap_or(from);
    debug_assert!(from <= through, "a damaged run ends before it starts");
    images
        .iter()
        .enumerate()
        .filter(|&(peer, _)| peer != own)
        .filter(|(_, img)| (from..=through).all(|i| img.intact_term(i).is_some()))
        .map(|(peer, img)| Copy {
            peer,
            committed: through <= img.commit(),
        })
        .collect()
}
