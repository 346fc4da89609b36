//! The build machines with a free slot, per class of identical machines, in
//! Hydra's order of machines (`sim/hydra.rs`): within a class, whose
//! machines share their speed factor and slots, the order is
//! `round(currentJobs / speedFactor)`, then currentJobs (more first), then
//! first sight; classes are compared by the caller, who adds the speed
//! factor.
//!
//! Each class keeps a heap of keys; a machine whose load changes gets a new
//! key and its old one goes stale, dropped when it reaches the top (whether a
//! key is live is the caller's to say, from the machine itself). The heap is
//! compacted when stale keys outnumber live ones, so its size follows the
//! free machines, not the steps run. This module knows nothing of steps.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

#[derive(Debug, Default)]
struct Class {
    keys: BinaryHeap<Reverse<MachineKey>>,
    /// Machines of the class with a free slot.
    free: u32,
}

/// Free machines of every class.
#[derive(Debug, Default)]
pub struct FreeMachines {
    classes: Vec<Class>,
    /// Keys visited by compactions and stale pops.
    pub work: u64,
}

impl FreeMachines {
    fn class(&mut self, class: u32) -> &mut Class {
        let c = class as usize;
        if self.classes.len() <= c {
            self.classes.resize_with(c + 1, Class::default);
        }
        &mut self.classes[c]
    }

    /// Machines of `class` with a free slot.
    pub fn free(&self, class: u32) -> u32 {
        self.classes.get(class as usize).map_or(0, |c| c.free)
    }

    /// A machine of `class` got a free slot.
    pub fn became_free(&mut self, class: u32, key: MachineKey, is_live: impl Fn(&MachineKey) -> bool) {
        self.class(class).free += 1;
        self.moved(class, key, is_live);
    }

    /// A machine of `class` has no free slot any more (its key is stale).
    pub fn became_full(&mut self, class: u32) {
        let c = self.class(class);
        c.free = c.free.saturating_sub(1);
    }

    /// A free machine of `class` has a new key.
    pub fn moved(&mut self, class: u32, key: MachineKey, is_live: impl Fn(&MachineKey) -> bool) {
        let c = self.class(class);
        c.keys.push(Reverse(key));
        if c.keys.len() > 2 * c.free as usize + 32 {
            // In place: the heap's buffer is kept.
            let mut keys = std::mem::take(&mut c.keys).into_vec();
            self.work += keys.len() as u64;
            keys.retain(|Reverse(k)| is_live(k));
            keys.sort_unstable();
            keys.dedup();
            self.class(class).keys = BinaryHeap::from(keys);
        }
    }

    /// The first free machine of `class` in Hydra's order.
    pub fn best(&mut self, class: u32, is_live: impl Fn(&MachineKey) -> bool) -> Option<MachineKey> {
        let c = self.classes.get_mut(class as usize)?;
        while let Some(&Reverse(key)) = c.keys.peek() {
            if is_live(&key) {
                return Some(key);
            }
            c.keys.pop();
            self.work += 1;
        }
        None
    }
}
