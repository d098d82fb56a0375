//! The in-memory Paxos log above the last checkpoint.
//!
//! Slots at or below `base` (the checkpoint slot) are gone: their effect lives in the
//! checkpoint's bank. Above it the log keeps, per slot, the value this replica accepted, the
//! ballot it accepted it in, and whether it is known committed. Commit knowledge can arrive out
//! of order (slot 7 before slot 6); the contiguous commit point is computed from the flags.

use super::wire::{SlotEntry, Value};
use crate::types::{Ballot, Slot};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub ballot: Ballot,
    pub value: Value,
    pub committed: bool,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Log {
    base: Slot,
    entries: BTreeMap<Slot, Entry>,
}

impl Log {
    /// The checkpoint slot: everything at or below it is compacted away.
    pub fn base(&self) -> Slot {
        self.base
    }

    pub fn get(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(&slot)
    }

    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Entry> {
        self.entries.get_mut(&slot)
    }

    /// Stores an entry. Precondition: the slot is above the base (callers filter first).
    pub fn insert(&mut self, slot: Slot, entry: Entry) {
        assert!(
            slot > self.base,
            "slot {slot} is at or below the checkpoint {}",
            self.base
        );
        self.entries.insert(slot, entry);
    }

    /// Entries strictly above `after`, in slot order.
    pub fn above(&self, after: Slot) -> impl Iterator<Item = (Slot, &Entry)> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.entries
            .range((Excluded(after), Unbounded))
            .map(|(s, e)| (*s, e))
    }

    /// Entries strictly above `after` as wire entries, at most `max` of them.
    pub fn entries_above(&self, after: Slot, max: usize) -> Vec<SlotEntry> {
        self.above(after)
            .take(max)
            .map(|(slot, e)| SlotEntry {
                slot,
                ballot: e.ballot,
                value: e.value.clone(),
            })
            .collect()
    }

    /// Marks committed every entry in `(after, upto]` accepted at `ballot`: the leader of
    /// `ballot` says those slots are decided, and within one ballot it proposes one value per
    /// slot, so an entry with that ballot holds the decided value.
    pub fn mark_committed(&mut self, after: Slot, upto: Slot, ballot: Ballot) {
        if upto <= after {
            return;
        }
        use std::ops::Bound::{Excluded, Included};
        for (_, entry) in self.entries.range_mut((Excluded(after), Included(upto))) {
            if entry.ballot == ballot {
                entry.committed = true;
            }
        }
    }

    /// Marks every entry up to `upto` committed (recovery: the WAL recorded the commit point).
    pub fn mark_committed_upto(&mut self, upto: Slot) {
        for (_, entry) in self.entries.range_mut(..=upto) {
            entry.committed = true;
        }
    }

    /// The end of the run of committed entries that starts right after `commit`.
    pub fn committed_prefix_end(&self, commit: Slot) -> Slot {
        let mut end = commit;
        for (slot, entry) in self.above(commit) {
            if slot != end.next() || !entry.committed {
                break;
            }
            end = slot;
        }
        end
    }

    /// Drops everything at or below `slot` and makes it the new base.
    pub fn truncate_through(&mut self, slot: Slot) {
        if slot <= self.base {
            return;
        }
        self.entries = match slot.0.checked_add(1) {
            Some(next) => self.entries.split_off(&Slot(next)),
            None => Default::default(),
        };
        self.base = slot;
    }

    /// The highest slot held, if any.
    pub fn last_slot(&self) -> Option<Slot> {
        self.entries.last_key_value().map(|(slot, _)| *slot)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    fn b(round: u64) -> Ballot {
        Ballot {
            round,
            node: NodeId(1),
        }
    }

    fn entry(round: u64) -> Entry {
        Entry {
            ballot: b(round),
            value: Value::Noop,
            committed: false,
        }
    }

    #[test]
    fn commit_point_advances_only_over_a_contiguous_committed_run() {
        let mut log = Log::default();
        for s in [1, 2, 4] {
            log.insert(Slot(s), entry(1));
        }
        log.insert(Slot(3), entry(0));
        log.mark_committed(Slot(0), Slot(4), b(1));
        assert_eq!(
            log.committed_prefix_end(Slot(0)),
            Slot(2),
            "slot 3 has another ballot"
        );
        log.get_mut(Slot(3)).unwrap().committed = true;
        assert_eq!(log.committed_prefix_end(Slot(0)), Slot(4));
    }

    #[test]
    fn truncation_moves_the_base_and_keeps_later_entries() {
        let mut log = Log::default();
        for s in 1..=5 {
            log.insert(Slot(s), entry(1));
        }
        log.truncate_through(Slot(3));
        assert_eq!(log.base(), Slot(3));
        assert_eq!(
            log.above(Slot(0)).map(|(s, _)| s.0).collect::<Vec<_>>(),
            vec![4, 5]
        );
        log.truncate_through(Slot(2));
        assert_eq!(log.base(), Slot(3), "the base never moves back");
    }

    #[test]
    #[should_panic(expected = "at or below the checkpoint")]
    fn inserting_below_the_base_is_a_bug() {
        let mut log = Log::default();
        log.truncate_through(Slot(3));
        log.insert(Slot(2), entry(1));
    }
}
