//! Where each step in the queue-runner model lives, by its trace id.
//!
//! Traces number steps in arrival order (Hydra's build and step ids grow
//! with time, and `trace synth` counts from 1), and steps leave in roughly
//! that order, so most ids in the model at any time lie in one dense range.
//! That range is kept as a window of slots indexed by `id - base`: an
//! arrival, a dependency lookup and a departure cost an array access, not a
//! hash probe. Ids outside the window (out of order, far apart, or left
//! behind by a step that lives much longer than its neighbours) go to a hash
//! map, so any numbering works, only slower. The window never holds more
//! than twice the steps in it plus [`WINDOW_SLACK`] entries, so memory
//! follows the steps in the model, not the trace.
//!
//! This is an index only: it knows nothing of what a slot holds.

use super::hydra::StepIdHash;
use std::collections::{HashMap, VecDeque};

/// An id at most this far past the window's end extends the window.
const REACH: u64 = 4096;
/// Empty entries the window may hold beyond the steps in it.
const WINDOW_SLACK: usize = 1 << 16;
const EMPTY: u32 = u32::MAX;

/// A map from step id to slot (see the module documentation). Invariant: an
/// id within `base..base + window.len()` is never in `others`.
#[derive(Debug, Default)]
pub struct StepIndex {
    base: u64,
    window: VecDeque<u32>,
    in_window: usize,
    others: HashMap<u64, u32, StepIdHash>,
}

impl StepIndex {
    fn offset(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.base).filter(|&o| o < self.window.len() as u64).map(|o| o as usize)
    }

    /// The slot of step `id`, if it is in the model.
    pub fn get(&self, id: u64) -> Option<u32> {
        match self.offset(id) {
            Some(o) => Some(self.window[o]).filter(|&s| s != EMPTY),
            None => self.others.get(&id).copied(),
        }
    }

    /// Starts loading the entry of step `id`, if it lies in the window.
    #[inline(always)]
    pub fn prefetch(&self, id: u64) {
        if let Some(o) = self.offset(id) {
            super::prefetch::prefetch(&self.window[o]);
        }
    }

    /// Records step `id` at `slot`; false (and nothing changes) if the id is
    /// already in the model.
    pub fn insert(&mut self, id: u64, slot: u32) -> bool {
        debug_assert_ne!(slot, EMPTY);
        if let Some(o) = self.offset(id) {
            if self.window[o] != EMPTY {
                return false;
            }
            self.window[o] = slot;
            self.in_window += 1;
            return true;
        }
        if self.window.is_empty() {
            if self.others.contains_key(&id) {
                return false;
            }
            self.base = id;
        }
        let end = self.base.saturating_add(self.window.len() as u64);
        if id < end || id - end >= REACH {
            return match self.others.entry(id) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(slot);
                    true
                }
            };
        }
        if !self.others.is_empty() && self.others.contains_key(&id) {
            return false;
        }
        // Extend to cover `end..=id`; ids there that were far ahead before move in.
        for covered in end..id {
            let s = if self.others.is_empty() { EMPTY } else { self.others.remove(&covered).unwrap_or(EMPTY) };
            self.in_window += usize::from(s != EMPTY);
            self.window.push_back(s);
        }
        self.window.push_back(slot);
        self.in_window += 1;
        // A long-lived step at the front would hold the window open behind
        // it: past the bound, front entries move to the map.
        while self.window.len() > 2 * self.in_window + WINDOW_SLACK {
            self.pop_front_into_others();
        }
        true
    }

    fn pop_front_into_others(&mut self) {
        if let Some(s) = self.window.pop_front() {
            if s != EMPTY {
                self.in_window -= 1;
                self.others.insert(self.base, s);
            }
            self.base = self.base.wrapping_add(1);
        }
    }

    /// Forgets step `id`.
    pub fn remove(&mut self, id: u64) {
        match self.offset(id) {
            Some(o) => {
                if self.window[o] != EMPTY {
                    self.window[o] = EMPTY;
                    self.in_window -= 1;
                }
                while self.window.front() == Some(&EMPTY) {
                    self.window.pop_front();
                    self.base = self.base.wrapping_add(1);
                }
            }
            None => {
                self.others.remove(&id);
            }
        }
    }

    /// Steps in the model.
    pub fn len(&self) -> usize {
        self.in_window + self.others.len()
    }

    /// Every (id, slot), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let base = self.base;
        self.window
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s != EMPTY)
            .map(move |(o, &s)| (base + o as u64, s))
            .chain(self.others.iter().map(|(&id, &s)| (id, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Ids mostly ascending with gaps, sometimes far away or behind.
        let step = prop_oneof![
            6 => (0u64..3).prop_map(Some),
            1 => (3u64..10_000).prop_map(Some),
            1 => Just(None),
        ];
        prop::collection::vec((step, any::<bool>(), 0usize..64), 1..600).prop_map(|v| {
            let mut next = 1000u64;
            v.into_iter()
                .map(|(step, remove, which)| {
                    if remove {
                        return Op::Remove(which);
                    }
                    match step {
                        Some(s) => {
                            next += s;
                            Op::Insert(next)
                        }
                        None => Op::Insert(next.saturating_sub(500 + which as u64)),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn behaves_as_a_map(ops in ops()) {
            let mut index = StepIndex::default();
            let mut model: BTreeMap<u64, u32> = BTreeMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(id) => {
                        let fresh = !model.contains_key(&id);
                        prop_assert_eq!(index.insert(id, n as u32), fresh);
                        model.entry(id).or_insert(n as u32);
                    }
                    Op::Remove(which) => {
                        if let Some(&id) = model.keys().nth(which % model.len().max(1)) {
                            model.remove(&id);
                            index.remove(id);
                        }
                    }
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for (&id, &slot) in &model {
                prop_assert_eq!(index.get(id), Some(slot));
                prop_assert_eq!(index.get(id + 1_000_000), None);
            }
            let mut all: Vec<(u64, u32)> = index.iter().collect();
            all.sort_unstable();
            prop_assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_step_that_outlives_its_neighbours_does_not_hold_the_window_open() {
        let mut index = StepIndex::default();
        assert!(index.insert(1, 0));
        for id in 2..1_000_000u64 {
            assert!(index.insert(id, 1));
            index.remove(id);
        }
        assert_eq!(index.len(), 1);
        assert!(index.window.len() <= WINDOW_SLACK + 2, "window of {}", index.window.len());
        assert_eq!(index.get(1), Some(0));
        assert!(!index.insert(1, 5), "still known after moving to the map");
    }
}
