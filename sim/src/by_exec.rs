//! Entries kept by exec index, for the world's record of what every replica executed.
//!
//! Why not a `BTreeMap`: the world records every entry every replica executes (about ten
//! thousand per replica and seed), nearly always at the next exec index, and looks each one up
//! once. A vector indexed by exec index makes that a bounds check where the map searched and
//! split nodes, a tenth of routing's cost. Exec indices count up from 1 without gaps in a
//! healthy bank, so the vector is dense; an index far beyond the last one (a replica that
//! installed a distant snapshot, or a corrupted counter) goes to a map instead of growing the
//! vector to it, and moves into the vector once the vector reaches it.

use replica::types::ExecIndex;
use std::collections::BTreeMap;

/// How far past its end the vector grows to take an index; beyond, the index waits in the map.
const MAX_GAP: u64 = 1 << 16;

/// Values by exec index, iterated in exec-index order.
#[derive(Clone, Debug)]
pub struct ByExecIndex<T> {
    /// `dense[i]` holds exec index `i`.
    dense: Vec<Option<T>>,
    /// Indices at or past `dense.len()` only.
    far: BTreeMap<ExecIndex, T>,
}

impl<T> Default for ByExecIndex<T> {
    fn default() -> Self {
        ByExecIndex {
            dense: Vec::new(),
            far: BTreeMap::new(),
        }
    }
}

impl<T> ByExecIndex<T> {
    pub fn get(&self, at: ExecIndex) -> Option<&T> {
        match usize::try_from(at).ok().filter(|&i| i < self.dense.len()) {
            Some(i) => self.dense[i].as_ref(),
            None => self.far.get(&at),
        }
    }

    /// Stores `value` at `at`, replacing what was there.
    pub fn insert(&mut self, at: ExecIndex, value: T) {
        let len = self.dense.len() as u64;
        if at >= len.saturating_add(MAX_GAP) {
            self.far.insert(at, value);
            return;
        }
        let i = at as usize;
        if i >= self.dense.len() {
            self.dense.resize_with(i + 1, || None);
            // Whatever waited in the map below the new end moves into the vector.
            let beyond = self.far.split_off(&(at + 1));
            for (k, v) in std::mem::replace(&mut self.far, beyond) {
                self.dense[k as usize] = Some(v);
            }
        }
        self.dense[i] = Some(value);
    }

    /// The values in exec-index order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.dense.iter().flatten().chain(self.far.values())
    }

    /// The (exec index, value) pairs in exec-index order.
    pub fn iter(&self) -> impl Iterator<Item = (ExecIndex, &T)> {
        let dense = self.dense.iter().enumerate();
        let dense = dense.filter_map(|(i, v)| v.as_ref().map(|v| (i as ExecIndex, v)));
        dense.chain(self.far.iter().map(|(k, v)| (*k, v)))
    }

    /// The values in exec-index order, taken out.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.dense
            .into_iter()
            .flatten()
            .chain(self.far.into_values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_in_exec_index_order_wherever_they_are_kept() {
        let mut kept = ByExecIndex::default();
        let far = MAX_GAP + 10;
        for at in [3, far + 2, 1, far, 2] {
            kept.insert(at, at);
        }
        assert_eq!(kept.far.len(), 2, "beyond the vector's reach");
        assert_eq!(
            kept.values().copied().collect::<Vec<_>>(),
            [1, 2, 3, far, far + 2]
        );
        assert_eq!(kept.get(far), Some(&far));
        assert_eq!(kept.get(4), None);
        // The vector reaches the far ones: those below its new end move in, the order holds.
        kept.insert(20, 20);
        kept.insert(far + 1, far + 1);
        assert_eq!(kept.far.len(), 1);
        let all: Vec<_> = kept.iter().map(|(k, v)| (k, *v)).collect();
        let expected = [1, 2, 3, 20, far, far + 1, far + 2].map(|k| (k, k));
        assert_eq!(all, expected);
        kept.insert(2, 7);
        assert_eq!(kept.get(2), Some(&7));
        assert_eq!(kept.into_values().count(), 7);
    }

    #[test]
    fn an_absurd_exec_index_does_not_grow_the_vector() {
        let mut kept = ByExecIndex::default();
        kept.insert(ExecIndex::MAX, 1);
        kept.insert(1, 2);
        assert_eq!(kept.dense.len(), 2);
        assert_eq!(kept.values().copied().collect::<Vec<_>>(), [2, 1]);
    }
}
