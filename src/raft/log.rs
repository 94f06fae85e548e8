//! The in-memory Raft log since the last snapshot, with the bookkeeping of what is durable.
//!
//! Owns: index/term arithmetic over `[snapshot index, last index]`, conflict search by term,
//! truncation and compaction, and the two marks `stable` (highest index the shell reported
//! durable) and `unstable_from` (first index not yet handed to the shell in a `Ready`).
//! Must never: decide Raft policy (who may truncate, what is committed); it only does what the
//! engine asks, and never panics on an index outside its range (it answers `None`).

use super::Entry;

/// Bytes an entry is counted for in `max_batch_bytes` (payload plus a fixed header estimate).
pub(crate) fn entry_size(e: &Entry) -> usize {
    e.data.len() + 24
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    pub snap_index: u64,
    pub snap_term: u64,
    /// `entries[i].index == snap_index + 1 + i`.
    pub entries: Vec<Entry>,
    /// Highest index known durable.
    pub stable: u64,
    /// First index not yet handed out in a `Ready`.
    pub unstable_from: u64,
}

/// A recovered log that is not contiguous: entry `entry` came right after index `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gap {
    pub entry: u64,
    pub after: u64,
}

impl RaftLog {
    /// The log a restart recovers: the snapshot point (`snap_index`, `snap_term`) and the
    /// durable entries after it, all durable and already handed out. Entries at or below the
    /// snapshot are skipped; the rest must be contiguous from `snap_index + 1`, else the gap is
    /// returned (cutting the log there could drop committed entries).
    pub fn recovered(snap_index: u64, snap_term: u64, entries: Vec<Entry>) -> Result<RaftLog, Gap> {
        let mut log = RaftLog {
            snap_index,
            snap_term,
            entries: Vec::new(),
            stable: snap_index,
            unstable_from: snap_index + 1,
        };
        for e in entries {
            if e.index <= snap_index {
                continue;
            }
            let entry = e.index;
            if !log.push(e) {
                let after = log.last_index();
                return Err(Gap { entry, after });
            }
        }
        let last = log.last_index();
        log.stable = last;
        log.unstable_from = last + 1;
        Ok(log)
    }

    pub fn last_index(&self) -> u64 {
        self.snap_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snap_term, |e| e.term)
    }

    /// Term of the entry at `i`, if known (the snapshot's last entry counts).
    pub fn term(&self, i: u64) -> Option<u64> {
        if i == self.snap_index {
            return Some(self.snap_term);
        }
        self.entry(i).map(|e| e.term)
    }

    pub fn entry(&self, i: u64) -> Option<&Entry> {
        if i <= self.snap_index {
            return None;
        }
        self.entries.get((i - self.snap_index - 1) as usize)
    }

    /// Entries `[lo, hi]` stopping after `max_bytes` (at least one entry if any is in range).
    pub fn slice(&self, lo: u64, hi: u64, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut i = lo.max(self.snap_index + 1);
        while i <= hi {
            let Some(e) = self.entry(i) else { break };
            bytes += entry_size(e);
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
            i += 1;
        }
        out
    }

    /// Removes every entry at `i` and after.
    pub fn truncate_from(&mut self, i: u64) {
        if i <= self.snap_index {
            return;
        }
        let keep = (i - self.snap_index - 1) as usize;
        self.entries.truncate(keep);
        self.stable = self.stable.min(i - 1);
        self.unstable_from = self.unstable_from.min(i);
    }

    /// Appends `e`, which must be the next index (otherwise it is refused and false returned).
    pub fn push(&mut self, e: Entry) -> bool {
        if e.index != self.last_index() + 1 {
            return false;
        }
        self.entries.push(e);
        true
    }

    /// Raft §5.4.1: is a log ending at (`index`, `term`) at least as up to date as this one?
    pub fn is_up_to_date(&self, index: u64, term: u64) -> bool {
        term > self.last_term() || (term == self.last_term() && index >= self.last_index())
    }

    /// The largest index `<= index` whose term is `<= term`, with its term (etcd's
    /// findConflictByTerm). Stops at the snapshot index, whose term is the last one known.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, Option<u64>) {
        let mut i = index.min(self.last_index());
        if i < self.snap_index {
            return (i, None);
        }
        loop {
            match self.term(i) {
                Some(t) if t > term && i > self.snap_index => i -= 1,
                t => return (i, t),
            }
        }
    }

    /// Drops entries up to `index` (covered by a snapshot with `term` at `index`).
    pub fn compact(&mut self, index: u64, term: u64) {
        if index <= self.snap_index {
            return;
        }
        let n = ((index - self.snap_index) as usize).min(self.entries.len());
        self.entries.drain(..n);
        self.snap_index = index;
        self.snap_term = term;
        self.stable = self.stable.max(index);
        self.unstable_from = self.unstable_from.max(index + 1);
    }

    /// Replaces the whole log by a snapshot ending at (`index`, `term`) that is not yet durable.
    pub fn reset_to_snapshot(&mut self, index: u64, term: u64) {
        self.entries.clear();
        self.snap_index = index;
        self.snap_term = term;
        self.stable = self.stable.min(index);
        self.unstable_from = index + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;

    fn log_of(snap: (u64, u64), terms: &[u64]) -> RaftLog {
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry {
                term: t,
                index: snap.0 + 1 + i as u64,
                kind: EntryKind::Normal,
                data: vec![0; 8],
            })
            .collect();
        let last = snap.0 + entries.len() as u64;
        RaftLog {
            snap_index: snap.0,
            snap_term: snap.1,
            entries,
            stable: last,
            unstable_from: last + 1,
        }
    }

    #[test]
    fn terms_and_ranges() {
        let l = log_of((3, 2), &[2, 3, 3]);
        assert_eq!(l.last_index(), 6);
        assert_eq!(l.term(3), Some(2));
        assert_eq!(l.term(2), None);
        assert_eq!(l.term(5), Some(3));
        assert_eq!(l.term(7), None);
        assert_eq!(
            l.slice(4, 6, 1).len(),
            1,
            "byte limit keeps at least one entry"
        );
        assert_eq!(l.slice(4, 6, 1000).len(), 3);
        assert_eq!(
            l.slice(2, 6, 1000)[0].index,
            4,
            "compacted entries are skipped"
        );
    }

    #[test]
    fn conflict_by_term() {
        let l = log_of((0, 0), &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
        assert_eq!(l.find_conflict_by_term(10, 6), (10, Some(6)));
        assert_eq!(l.find_conflict_by_term(10, 5), (7, Some(5)));
        assert_eq!(l.find_conflict_by_term(10, 3), (3, Some(1)));
        assert_eq!(l.find_conflict_by_term(10, 0), (0, Some(0)));
        assert_eq!(l.find_conflict_by_term(20, 6), (10, Some(6)));
    }

    #[test]
    fn truncate_and_compact_keep_marks() {
        let mut l = log_of((0, 0), &[1, 1, 2, 2]);
        l.truncate_from(3);
        assert_eq!((l.last_index(), l.stable, l.unstable_from), (2, 2, 3));
        l.compact(1, 1);
        assert_eq!((l.snap_index, l.entries.len()), (1, 1));
        assert!(!l.push(Entry {
            term: 3,
            index: 5,
            kind: EntryKind::Noop,
            data: vec![]
        }));
    }
}
