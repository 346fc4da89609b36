//! The build machines with a free slot, per class of identical machines, in
//! Hydra's order of machines (`sim/hydra.rs`): within a class, whose
//! machines share their speed factor and slots, the order is
//! `round(currentJobs / speedFactor)`, then currentJobs (more first), then
//! first sight; classes are compared by the caller, who adds the speed
//! factor.
//!
//! Since a class's machines differ only in their job count and their index,
//! a class keeps one set of machine indices per job count (a bit set, whose
//! lowest member is the first in order of first sight) and a bit set of the
//! job counts with a free machine, ranked in Hydra's order: the first free
//! machine is the lowest member of the first non-empty set, and a machine
//! whose load changes moves between two sets without leaving anything stale
//! behind. The caller reports every change of membership exactly. A bit per
//! class says which classes have a free machine at all, so that dispatch
//! looks at those alone. This module knows nothing of steps.
//!
//! The Rust runner's order (`hydra/rust.rs`) ranks a class's free machines
//! by their place in its builders' list, which moves only when a builder
//! joins; the load plays no part but to break ties of place. A class under
//! that order keeps its free machines' keys in one ordered set instead, and
//! the caller empties the sets and adds every free machine again when the
//! places change ([`FreeMachines::clear`]).

use super::hydra::DispatchOrder;
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// A free machine's place in Hydra's order within its class: smaller first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MachineKey {
    /// `round(currentJobs / speedFactor)`.
    pub load: i64,
    pub jobs: Reverse<u32>,
    /// Index in order of first sight.
    pub machine: u32,
}

impl MachineKey {
    pub fn new(current_jobs: u32, speed_factor: f64, machine: u32) -> MachineKey {
        // `as` saturates: a speed factor near 0 cannot overflow the load.
        MachineKey {
            load: (f64::from(current_jobs) / speed_factor).round() as i64,
            jobs: Reverse(current_jobs),
            machine,
        }
    }
}

/// A set of small integers with its lowest member at hand.
#[derive(Debug, Default)]
struct Bits {
    words: Vec<u64>,
    /// No member lies below this word.
    low: usize,
    len: u32,
}

impl Bits {
    #[inline]
    fn insert(&mut self, i: u32) {
        let (w, bit) = (i as usize / 64, 1u64 << (i % 64));
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        debug_assert_eq!(self.words[w] & bit, 0, "{i} is already a member");
        self.words[w] |= bit;
        self.low = if self.len == 0 { w } else { self.low.min(w) };
        self.len += 1;
    }

    #[inline]
    fn remove(&mut self, i: u32) {
        let (w, bit) = (i as usize / 64, 1u64 << (i % 64));
        debug_assert!(self.words.get(w).is_some_and(|&word| word & bit != 0), "{i} is not a member");
        if let Some(word) = self.words.get_mut(w)
            && *word & bit != 0
        {
            *word &= !bit;
            self.len -= 1;
        }
    }

    /// The lowest member, and the empty words passed to find it.
    #[inline]
    fn first(&mut self) -> Option<(u32, u64)> {
        if self.len == 0 {
            return None;
        }
        let start = self.low;
        while self.words[self.low] == 0 {
            self.low += 1;
        }
        let i = self.low * 64 + self.words[self.low].trailing_zeros() as usize;
        Some((i as u32, (self.low - start) as u64))
    }
}

/// A machine with a free slot, as its class's order sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Free {
    pub machine: u32,
    /// Its current jobs, fewer than `max_jobs`.
    pub jobs: u32,
    /// Slots and speed factor of its class.
    pub max_jobs: u32,
    pub speed_factor: f64,
    /// Its place in the Rust runner's builders' list.
    pub rank: u32,
}

#[derive(Debug, Default)]
struct Class {
    /// Per job count, its rank in Hydra's order; and per rank, the key of
    /// a machine with that count (computed once: the load divides and
    /// rounds), `machine` left 0.
    rank_of_jobs: Vec<u32>,
    key_of_rank: Vec<MachineKey>,
    /// Per rank, the free machines with that many jobs.
    machines: Vec<Bits>,
    /// Ranks with a free machine.
    ranks: Bits,
    /// Under the Rust runner's order, the keys of the free machines
    /// (the sets per job count stay empty).
    keys: BTreeSet<MachineKey>,
    /// Machines of the class with a free slot.
    free: u32,
}

impl Class {
    fn new(max_jobs: u32, speed_factor: f64) -> Class {
        let mut key_of_rank: Vec<MachineKey> = (0..max_jobs).map(|j| MachineKey::new(j, speed_factor, 0)).collect();
        key_of_rank.sort_unstable();
        let mut rank_of_jobs = vec![0; max_jobs as usize];
        for (rank, key) in key_of_rank.iter().enumerate() {
            rank_of_jobs[key.jobs.0 as usize] = rank as u32;
        }
        let machines = (0..max_jobs).map(|_| Bits::default()).collect();
        Class { rank_of_jobs, key_of_rank, machines, ..Class::default() }
    }

    /// Puts a machine in the set of its rank, and the rank among those with
    /// a free machine if it was not.
    #[inline(always)]
    fn join(&mut self, rank: u32, machine: u32) {
        let set = &mut self.machines[rank as usize];
        if set.len == 0 {
            self.ranks.insert(rank);
        }
        set.insert(machine);
    }

    /// One more free machine, and the class among those with one
    /// (`with_free`, a bit per class) if it had none.
    #[inline(always)]
    fn count_in(&mut self, class: u32, with_free: &mut Bits) {
        self.free += 1;
        if self.free == 1 {
            with_free.insert(class);
        }
    }

    /// One free machine fewer, and the class out of those with one if it
    /// was the last.
    #[inline(always)]
    fn count_out(&mut self, class: u32, with_free: &mut Bits) {
        if self.free == 0 {
            return;
        }
        self.free -= 1;
        if self.free == 0 {
            with_free.remove(class);
        }
    }

    /// Takes a machine out of the set of its rank, and the rank out of those
    /// with a free machine if it was the last.
    #[inline(always)]
    fn leave(&mut self, rank: u32, machine: u32) {
        let set = &mut self.machines[rank as usize];
        set.remove(machine);
        if set.len == 0 {
            self.ranks.remove(rank);
        }
    }
}

/// Free machines of every class.
#[derive(Debug, Default)]
pub struct FreeMachines {
    classes: Vec<Class>,
    /// The classes with a free machine, a bit each: dispatch looks at
    /// those alone rather than asking every class.
    with_free: Bits,
    order: DispatchOrder,
    /// Empty words passed over to find first members.
    pub work: u64,
}

impl FreeMachines {
    /// Orders free machines by `order` from now on (while none is free).
    pub fn set_order(&mut self, order: DispatchOrder) {
        debug_assert!(self.classes.iter().all(|c| c.free == 0));
        self.order = order;
    }

    /// No machine is free any more (their places are about to change).
    pub fn clear(&mut self) {
        self.classes.clear();
        self.with_free = Bits::default();
    }

    /// How many words [`FreeMachines::classes_with_free`] has.
    pub fn class_words(&self) -> usize {
        self.with_free.words.len()
    }

    /// Word `w` of the classes with a free machine: bit `i` stands for
    /// class `64 * w + i`.
    pub fn classes_with_free(&self, w: usize) -> u64 {
        self.with_free.words[w]
    }

    /// Machines of `class` with a free slot.
    pub fn free(&self, class: u32) -> u32 {
        self.classes.get(class as usize).map_or(0, |c| c.free)
    }

    /// A machine of `class` has a free slot, from now on.
    #[inline(always)]
    pub fn add(&mut self, class: u32, f: Free) {
        let c = class as usize;
        if self.classes.len() <= c {
            self.classes.resize_with(c + 1, Class::default);
        }
        let cl = &mut self.classes[c];
        if self.order == DispatchOrder::Rust {
            let fresh = cl.keys.insert(self.order.machine_key(f.jobs, f.speed_factor, f.rank, f.machine));
            debug_assert!(fresh, "{} is already free", f.machine);
            cl.count_in(class, &mut self.with_free);
            return;
        }
        if cl.rank_of_jobs.is_empty() {
            *cl = Class::new(f.max_jobs, f.speed_factor);
        }
        cl.count_in(class, &mut self.with_free);
        debug_assert!(f.jobs < f.max_jobs && cl.rank_of_jobs.len() == f.max_jobs as usize);
        let rank = cl.rank_of_jobs[f.jobs as usize];
        cl.join(rank, f.machine);
    }

    /// A machine of `class`, added as `f`, is no longer free.
    #[inline(always)]
    pub fn remove(&mut self, class: u32, f: Free) {
        let Some(cl) = self.classes.get_mut(class as usize) else { return };
        if self.order == DispatchOrder::Rust {
            let was = cl.keys.remove(&self.order.machine_key(f.jobs, f.speed_factor, f.rank, f.machine));
            debug_assert!(was, "{} is not free", f.machine);
            if was {
                cl.count_out(class, &mut self.with_free);
            }
            return;
        }
        let Some(&rank) = cl.rank_of_jobs.get(f.jobs as usize) else { return };
        cl.leave(rank, f.machine);
        cl.count_out(class, &mut self.with_free);
    }

    /// A free machine of `class`, added as `before`, now has `jobs` jobs
    /// and is still free: the same as removing `before` and adding it
    /// with `jobs`, in one visit to the class (a start or a finish that
    /// leaves a machine free moves it between two job counts).
    pub fn moved(&mut self, class: u32, before: Free, jobs: u32) {
        let after = Free { jobs, ..before };
        let Some(cl) = self.classes.get_mut(class as usize) else { return self.add(class, after) };
        if self.order == DispatchOrder::Rust || cl.rank_of_jobs.len() != before.max_jobs as usize {
            self.remove(class, before);
            return self.add(class, after);
        }
        debug_assert!(before.jobs < before.max_jobs && jobs < before.max_jobs);
        let (from, to) = (cl.rank_of_jobs[before.jobs as usize], cl.rank_of_jobs[jobs as usize]);
        cl.leave(from, before.machine);
        cl.join(to, before.machine);
    }

    /// The first free machine of `class` in the dispatch order.
    pub fn best(&mut self, class: u32) -> Option<MachineKey> {
        let cl = self.classes.get_mut(class as usize)?;
        if self.order == DispatchOrder::Rust {
            return cl.keys.first().copied();
        }
        let (rank, skipped) = cl.ranks.first()?;
        let (machine, more) = cl.machines[rank as usize].first()?;
        self.work += skipped + more;
        Some(MachineKey { machine, ..cl.key_of_rank[rank as usize] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The first free machine is the least key of the free machines
        /// under either dispatch order, whatever the order of their changes
        /// (a move between job counts in one call or as a removal and an addition)
        /// and, for the Rust runner's order, of the changes of their places
        /// (places may tie).
        #[test]
        fn best_is_the_least_key(
            rust in any::<bool>(),
            max_jobs in 1u32..9,
            speed_factor in prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, 3.0]),
            changes in prop::collection::vec(
                (0u32..150, 0u32..9, prop::option::weighted(0.05, 0u32..200), any::<bool>()),
                1..300,
            ),
        ) {
            let order = if rust { DispatchOrder::Rust } else { DispatchOrder::Cpp };
            let mut free = FreeMachines::default();
            free.set_order(order);
            let mut jobs: Vec<Option<u32>> = vec![None; 150];
            let mut ranks: Vec<u32> = (0..150).map(|m| (m * 7) % 150).collect();
            let entry = |machine: u32, jobs: u32, rank: u32| Free { machine, jobs, max_jobs, speed_factor, rank };
            for (machine, new_jobs, reranking, in_one_move) in changes {
                if let Some(seed) = reranking {
                    // The places change: every free machine is added again.
                    free.clear();
                    for (m, r) in ranks.iter_mut().enumerate() {
                        *r = (m as u32 * 31 + seed) % 97;
                        if let Some(j) = jobs[m] {
                            free.add(3, entry(m as u32, j, *r));
                        }
                    }
                }
                let new_jobs = (new_jobs < max_jobs).then_some(new_jobs);
                let rank = ranks[machine as usize];
                match (jobs[machine as usize], new_jobs) {
                    (Some(old), Some(new)) if in_one_move => free.moved(3, entry(machine, old, rank), new),
                    (old, new) => {
                        if let Some(j) = old {
                            free.remove(3, entry(machine, j, rank));
                        }
                        if let Some(j) = new {
                            free.add(3, entry(machine, j, rank));
                        }
                    }
                }
                jobs[machine as usize] = new_jobs;
                let expect = (0..150u32)
                    .filter_map(|m| {
                        jobs[m as usize].map(|j| order.machine_key(j, speed_factor, ranks[m as usize], m))
                    })
                    .min();
                prop_assert_eq!(free.best(3), expect);
                prop_assert_eq!(free.free(3) as usize, jobs.iter().flatten().count());
            }
        }

        /// Dispatch looks only at the classes the bit set names: exactly
        /// those with a free machine, past the first word too.
        #[test]
        fn the_classes_with_free_machines_are_those_with_a_free_count(
            rust in any::<bool>(),
            changes in prop::collection::vec((0u32..70, 0u32..4, any::<bool>(), prop::option::weighted(0.02, Just(()))), 1..300),
        ) {
            let order = if rust { DispatchOrder::Rust } else { DispatchOrder::Cpp };
            let mut free = FreeMachines::default();
            free.set_order(order);
            let mut is_free = std::collections::BTreeSet::new();
            for (class, machine, add, clearing) in changes {
                if clearing.is_some() {
                    free.clear();
                    is_free.clear();
                }
                let f = Free { machine, jobs: 0, max_jobs: 2, speed_factor: 1.0, rank: machine };
                if add && is_free.insert((class, machine)) {
                    free.add(class, f);
                } else if !add && is_free.remove(&(class, machine)) {
                    free.remove(class, f);
                }
                let marked: Vec<u32> = (0..free.class_words())
                    .flat_map(|w| {
                        let word = free.classes_with_free(w);
                        (0..64).filter(move |b| word & (1 << b) != 0).map(move |b| (w * 64) as u32 + b)
                    })
                    .collect();
                let expect: Vec<u32> = (0..70).filter(|&c| free.free(c) > 0).collect();
                prop_assert_eq!(&marked, &expect);
                let counted: std::collections::BTreeSet<u32> = is_free.iter().map(|&(c, _)| c).collect();
                prop_assert_eq!(marked, counted.into_iter().collect::<Vec<_>>());
            }
        }
    }
}
