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
//! behind. The caller reports every change of membership exactly. This
//! module knows nothing of steps.

use std::cmp::Reverse;

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

#[derive(Debug, Default)]
struct Class {
    speed_factor: f64,
    /// Per job count, its rank in Hydra's order; and per rank, the count.
    rank_of_jobs: Vec<u32>,
    jobs_of_rank: Vec<u32>,
    /// Per rank, the free machines with that many jobs.
    machines: Vec<Bits>,
    /// Ranks with a free machine.
    ranks: Bits,
    /// Machines of the class with a free slot.
    free: u32,
}

impl Class {
    fn new(max_jobs: u32, speed_factor: f64) -> Class {
        let mut jobs_of_rank: Vec<u32> = (0..max_jobs).collect();
        jobs_of_rank.sort_by_key(|&j| MachineKey::new(j, speed_factor, 0));
        let mut rank_of_jobs = vec![0; max_jobs as usize];
        for (rank, &j) in jobs_of_rank.iter().enumerate() {
            rank_of_jobs[j as usize] = rank as u32;
        }
        let machines = (0..max_jobs).map(|_| Bits::default()).collect();
        Class { speed_factor, rank_of_jobs, jobs_of_rank, machines, ranks: Bits::default(), free: 0 }
    }
}

/// Free machines of every class.
#[derive(Debug, Default)]
pub struct FreeMachines {
    classes: Vec<Class>,
    /// Empty words passed over to find first members.
    pub work: u64,
}

impl FreeMachines {
    /// Machines of `class` with a free slot.
    pub fn free(&self, class: u32) -> u32 {
        self.classes.get(class as usize).map_or(0, |c| c.free)
    }

    /// A machine of `class` (whose machines have `max_jobs` slots and
    /// `speed_factor`) runs `jobs` and has a free slot, from now on.
    pub fn add(&mut self, class: u32, machine: u32, jobs: u32, max_jobs: u32, speed_factor: f64) {
        let c = class as usize;
        if self.classes.len() <= c {
            self.classes.resize_with(c + 1, Class::default);
        }
        let cl = &mut self.classes[c];
        if cl.rank_of_jobs.is_empty() {
            *cl = Class::new(max_jobs, speed_factor);
        }
        debug_assert!(jobs < max_jobs && cl.rank_of_jobs.len() == max_jobs as usize);
        let rank = cl.rank_of_jobs[jobs as usize];
        let set = &mut cl.machines[rank as usize];
        if set.len == 0 {
            cl.ranks.insert(rank);
        }
        set.insert(machine);
        cl.free += 1;
    }

    /// A machine of `class` running `jobs` is no longer free.
    pub fn remove(&mut self, class: u32, machine: u32, jobs: u32) {
        let Some(cl) = self.classes.get_mut(class as usize) else { return };
        let Some(&rank) = cl.rank_of_jobs.get(jobs as usize) else { return };
        let set = &mut cl.machines[rank as usize];
        set.remove(machine);
        if set.len == 0 {
            cl.ranks.remove(rank);
        }
        cl.free = cl.free.saturating_sub(1);
    }

    /// The first free machine of `class` in Hydra's order.
    pub fn best(&mut self, class: u32) -> Option<MachineKey> {
        let cl = self.classes.get_mut(class as usize)?;
        let (rank, skipped) = cl.ranks.first()?;
        let (machine, more) = cl.machines[rank as usize].first()?;
        self.work += skipped + more;
        Some(MachineKey::new(cl.jobs_of_rank[rank as usize], cl.speed_factor, machine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The first free machine is the least key of the free machines,
        /// whatever the order of their changes.
        #[test]
        fn best_is_the_least_key(
            max_jobs in 1u32..9,
            speed_factor in prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, 3.0]),
            changes in prop::collection::vec((0u32..150, 0u32..9), 1..300),
        ) {
            let mut free = FreeMachines::default();
            let mut jobs: Vec<Option<u32>> = vec![None; 150];
            for (machine, new_jobs) in changes {
                let new_jobs = (new_jobs < max_jobs).then_some(new_jobs);
                if let Some(j) = jobs[machine as usize] {
                    free.remove(3, machine, j);
                }
                if let Some(j) = new_jobs {
                    free.add(3, machine, j, max_jobs, speed_factor);
                }
                jobs[machine as usize] = new_jobs;
                let expect = (0..150u32)
                    .filter_map(|m| jobs[m as usize].map(|j| MachineKey::new(j, speed_factor, m)))
                    .min();
                prop_assert_eq!(free.best(3), expect);
                prop_assert_eq!(free.free(3) as usize, jobs.iter().flatten().count());
            }
        }
    }
}
