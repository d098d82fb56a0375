//! The view merge: what a new leader re-proposes, computed from a majority of PROMISEs.
//!
//! Paxos's phase-1 rule, slot by slot: if any promiser accepted a value in a slot, the value
//! with the highest ballot is the only one that may have been chosen there, so the new leader
//! must propose it; a slot where no promiser accepted anything cannot have been chosen (every
//! choice needs a majority, and any two majorities share a member), so a no-op is safe. Slots up
//! to `base` (the new leader's commit point) are already decided and left alone.

use super::wire::{SlotEntry, Value};
use crate::types::{Ballot, Slot};
use std::collections::BTreeMap;

/// The promises a candidate gathered.
pub(super) struct MergeInput<'a> {
    /// Everything up to here is committed at the new leader.
    pub base: Slot,
    /// Entries above this are ignored: no log holds them (`CoreConfig::max_log_span`), so they
    /// are malformed.
    pub limit: Slot,
    /// The new leader's own accepted entries above `base`.
    pub own: &'a [SlotEntry],
    /// Every other promiser's reported entries.
    pub others: Vec<&'a [SlotEntry]>,
    /// PLANTED BUG no_view_merge: ignore the values in `others` (their slots still count).
    pub ignore_others: bool,
}

/// Merges the promises into one value per slot for `base+1 ..= last`, in slot order, where
/// `last` is the highest slot any promiser reported (within the limit).
pub(super) fn merge(input: &MergeInput<'_>) -> Vec<(Slot, Value)> {
    let in_range = |e: &&SlotEntry| e.slot > input.base && e.slot <= input.limit;
    let others = input
        .others
        .iter()
        .flat_map(|entries| entries.iter())
        .filter(in_range);
    let own = input.own.iter().filter(in_range);
    let last = own
        .clone()
        .chain(others.clone())
        .map(|e| e.slot)
        .max()
        .unwrap_or(input.base);

    let mut best: BTreeMap<Slot, (Ballot, &Value)> = BTreeMap::new();
    let counted = own.chain(others.filter(|_| !input.ignore_others));
    for entry in counted {
        let better = best
            .get(&entry.slot)
            .is_none_or(|(ballot, _)| entry.ballot > *ballot);
        if better {
            best.insert(entry.slot, (entry.ballot, &entry.value));
        }
    }
    // Every slot in (base, last]; counted from below so that no bound is ever exceeded.
    (input.base.0..last.0)
        .map(|below| Slot(below).next())
        .map(|slot| {
            let value = best
                .get(&slot)
                .map_or(Value::Noop, |(_, value)| (*value).clone());
            (slot, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::{Command, Op};
    use crate::types::{ClientId, NodeId, RequestId};

    fn b(round: u64, node: u32) -> Ballot {
        Ballot {
            round,
            node: NodeId(node),
        }
    }

    fn v(request: u64) -> Value {
        Value::Batch(vec![Command {
            client: ClientId(1),
            request: RequestId(request),
            op: Op::ReadAll,
        }])
    }

    fn e(slot: u64, ballot: Ballot, value: Value) -> SlotEntry {
        SlotEntry {
            slot: Slot(slot),
            ballot,
            value,
        }
    }

    #[test]
    fn highest_ballot_wins_and_gaps_become_noops() {
        let own = vec![e(2, b(1, 1), v(1))];
        let p2 = vec![e(2, b(2, 2), v(2)), e(5, b(1, 1), v(5))];
        let p3 = vec![e(3, b(1, 1), v(3)), e(9, b(1, 1), v(9))];
        let input = MergeInput {
            base: Slot(1),
            limit: Slot(8),
            own: &own,
            others: vec![&p2, &p3],
            ignore_others: false,
        };
        let merged = merge(&input);
        let expect = vec![
            (Slot(2), v(2)),
            (Slot(3), v(3)),
            (Slot(4), Value::Noop),
            (Slot(5), v(5)),
        ];
        assert_eq!(merged, expect, "slot 9 is beyond the limit");
    }

    #[test]
    fn nothing_above_the_base_merges_to_nothing() {
        let own = vec![e(1, b(1, 1), v(1))];
        let input = MergeInput {
            base: Slot(1),
            limit: Slot(10),
            own: &own,
            others: vec![],
            ignore_others: false,
        };
        assert!(merge(&input).is_empty());
    }

    #[test]
    fn the_planted_bug_drops_other_promisers_values_but_not_their_slots() {
        let own = vec![e(2, b(1, 1), v(1))];
        let p2 = vec![e(3, b(1, 1), v(3))];
        let input = MergeInput {
            base: Slot(1),
            limit: Slot(10),
            own: &own,
            others: vec![&p2],
            ignore_others: true,
        };
        assert_eq!(merge(&input), vec![(Slot(2), v(1)), (Slot(3), Value::Noop)]);
    }
}
