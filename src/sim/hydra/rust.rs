//! The Rust queue runner's rules where they differ from the C++ runner's
//! (NixOS/hydra `subprojects/hydra-queue-runner`, 2026): its dispatch
//! orders, and builders that join and leave by themselves instead of through
//! a machines file. Everything else of `hydra.rs` (shares, retries and
//! their back-off, slots, unsupported steps) holds for it unchanged: its
//! `fail_step` retries an aborted step after `retry_interval *
//! retry_backoff^(tries - 1)` = 60 x 3^(n-1) s up to `max_retries` = 5
//! tries, as the C++ runner does.
//!
//! **Step order** (`state/step_info.rs`, `compare_with_rdeps`, the default
//! `step_sort_fn = WithRdeps`): global priority (higher first), the
//! jobset's `lowestShareUsed` (lower first), the number of reverse
//! dependencies (more first), priority (higher first), build id (lower
//! first). Against the C++ order, reverse dependencies move ahead of the
//! priority, and the number of required features is no criterion at all.
//! The trace's step id breaks the remaining ties, as for the C++ model.
//!
//! **Machine order** (`state/machine.rs`, `MachinesInner::sort` with the
//! default `BogomipsWithSpeedFactor`): each system's builders sit in a list
//! sorted, when a builder joins (and only then), by score (higher first)
//! and then by current jobs (fewer first), a stable sort over the previous
//! order; a step goes to the first builder in the list with a free slot
//! that supports it (`get_machine_for_system` with `MachineFreeFn::Static`:
//! `currentJobs < maxJobs`). Between joins the list does not move, so the
//! runner *packs* steps onto its first builders where the C++ runner
//! spreads them by load. The score is speed factor x bogomips x CPU count;
//! the model takes the speed factor alone (builders of one type report the
//! same bogomips and CPUs), and keeps one list for all systems, which
//! orders each system's builders as the runner's per-system lists would.
//!
//! **Departures.** The runner walks each system's queue (in its hash map's
//! order) step by step and gives each step the first builder that takes it;
//! the model keeps the C++ model's loop (the first free builder takes the
//! best step it supports) with the orders above. The two assign the same
//! steps when each step has one kind of builder that serves it; they can
//! differ when builders of different kinds serve overlapping steps and
//! slots are short. The runner re-sorts its queues only when new steps
//! arrive; the model ranks steps with the current shares and reverse
//! dependencies at every dispatch. Its `max_unsupported_time` (120 s by
//! default) would abort steps no builder supports, which makes scaling from
//! zero impossible; the model assumes it raised, as for the C++ runner.
//!
//! **Builders.** A builder joins when its `hydra-builder` connects (the
//! simulator calls [`Hydra::join_builder`] when its deploy finishes) and
//! leaves when its service stops or its connection drops
//! ([`Hydra::leave_builder`]): its running steps are aborted at once, each
//! using one of its tries (`state/mod.rs`, `remove_machine` and
//! `fail_step`). A builder that goes silent ([`Hydra::silence_builder`])
//! keeps its slots, and the steps it runs, or is given, never finish, until
//! the transport gives up and the simulator makes it leave.

use super::{Hydra, Step, StepState};
use crate::sim::queue::{KeyParts, QueueKey, ordered};
use crate::sim::slots::MachineKey;
use crate::sim::time::SimTime;
use std::cmp::Reverse;

/// Whose orders the dispatcher follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DispatchOrder {
    /// The C++ queue runner's (`hydra.rs`).
    #[default]
    Cpp,
    /// The Rust queue runner's (this file).
    Rust,
}

impl DispatchOrder {
    /// A queued step's key in its (type, jobset) queue; greater goes first.
    /// The jobset's share is compared between queues, after the global
    /// priority, by `sim/queue.rs`.
    pub(super) fn queue_key(self, parts: KeyParts) -> QueueKey {
        match self {
            DispatchOrder::Cpp => QueueKey::new(parts),
            DispatchOrder::Rust => {
                // The key's second and third places take reverse
                // dependencies and then priority; features count for nothing.
                QueueKey::new(KeyParts {
                    priority: i32::try_from(parts.rdeps).unwrap_or(i32::MAX),
                    features: ordered(parts.priority) as usize,
                    rdeps: 0,
                    ..parts
                })
            }
        }
    }

    /// A free machine's key; smaller goes first.
    pub(crate) fn machine_key(self, current_jobs: u32, speed_factor: f64, rank: u32, machine: u32) -> MachineKey {
        match self {
            DispatchOrder::Cpp => MachineKey::new(current_jobs, speed_factor, machine),
            // Its place in the builders' list alone: the list is already
            // sorted by score, and does not move with the load.
            DispatchOrder::Rust => MachineKey { load: i64::from(rank), jobs: Reverse(current_jobs), machine },
        }
    }
}

/// A step in one of the Rust runner's queues (`/status/queues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedStep {
    pub step_id: u64,
    pub kind: u32,
    /// Running on a builder (`alreadyScheduled`).
    pub scheduled: bool,
    /// Attempts that failed or were aborted (`tries`).
    pub tries: u32,
    /// When it became runnable (model milliseconds).
    pub runnable_at: i64,
}

impl QueuedStep {
    fn of(s: &Step) -> Option<QueuedStep> {
        let (scheduled, tries) = match s.state {
            StepState::Waiting | StepState::Left => return None,
            StepState::Queued | StepState::Backoff => (false, u32::from(s.attempts)),
            // Outputs still being received or uploaded: the runner still
            // counts the step as scheduled.
            StepState::Running | StepState::Uploading => (true, u32::from(s.attempts).saturating_sub(1)),
        };
        Some(QueuedStep { step_id: s.step_id, kind: s.kind, scheduled, tries, runnable_at: s.runnable_at })
    }
}

impl Hydra {
    /// Dispatches by `order` from now on (before any step or machine is added).
    pub fn set_dispatch_order(&mut self, order: DispatchOrder) {
        self.order = order;
        self.free.set_order(order);
    }

    /// A builder connects (or reconnects after its service restarted): it
    /// is enabled and alive, takes its place in the builders' list, and
    /// takes steps from the next dispatch.
    pub fn join_builder(&mut self, machine: u32) {
        let m = &mut self.machines[machine as usize];
        m.silent = false;
        m.enabled = true;
        m.alive = true;
        if !self.builder_order.contains(&machine) {
            self.builder_order.push(machine);
        }
        self.update_active(machine);
        self.rank_builders();
        self.dispatch_needed = true;
    }

    /// A builder leaves (its service stopped, or its connection dropped):
    /// its running steps are aborted and retried after their back-off.
    pub fn leave_builder(&mut self, machine: u32, now: SimTime) {
        self.machines[machine as usize].silent = false;
        self.set_alive(machine, false, now);
        self.builder_order.retain(|&m| m != machine);
    }

    /// A builder stops answering; it keeps its slots (see the module documentation).
    pub fn silence_builder(&mut self, machine: u32) {
        self.machines[machine as usize].silent = true;
    }

    /// Sorts the builders' list as the runner does when one joins, and
    /// rebuilds the free machines under the new places.
    fn rank_builders(&mut self) {
        let machines = &self.machines;
        self.builder_order.retain(|&m| machines[m as usize].alive && !machines[m as usize].removed);
        self.builder_order.sort_by(|&a, &b| {
            let (a, b) = (&machines[a as usize], &machines[b as usize]);
            b.speed_factor.total_cmp(&a.speed_factor).then(a.current_jobs.cmp(&b.current_jobs))
        });
        for (rank, &m) in self.builder_order.iter().enumerate() {
            self.machines[m as usize].rank = u32::try_from(rank).unwrap_or(u32::MAX);
        }
        self.free.work += self.machines.len() as u64;
        self.free.clear();
        for machine in 0..self.machines.len() as u32 {
            let m = &self.machines[machine as usize];
            if m.active && m.current_jobs < m.max_jobs {
                self.free.add(m.class, self.free_entry(machine, m.current_jobs));
            }
        }
    }

    /// The steps in the runner's queues, by step id: queued, in back-off or running.
    pub fn queued_steps(&self) -> Vec<QueuedStep> {
        let mut steps: Vec<QueuedStep> =
            self.by_id.iter().filter_map(|(_, slot)| QueuedStep::of(&self.steps[slot as usize])).collect();
        steps.sort_unstable_by_key(|s| s.step_id);
        steps
    }

    /// The steps running on `machine`, by step id.
    pub fn running_on(&self, machine: u32) -> Vec<QueuedStep> {
        let mut steps: Vec<QueuedStep> = self.machines[machine as usize]
            .running
            .iter()
            .filter_map(|&slot| QueuedStep::of(&self.steps[slot as usize]))
            .collect();
        steps.sort_unstable_by_key(|s| s.step_id);
        steps
    }

    /// The machines connected to the runner: joined (static ones from the
    /// start) and not gone, silent ones included.
    pub fn builders(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.machines.len() as u32).filter(|&m| self.machines[m as usize].active)
    }

    /// What a machine offers (its systems and features).
    pub fn spec_of(&self, machine: u32) -> &super::MachineSpec {
        &self.classes[self.machines[machine as usize].class as usize].spec
    }

    /// The kind of a step in the model, by trace id.
    pub fn kind_of_step(&self, step_id: u64) -> Option<u32> {
        self.by_id.get(step_id).map(|slot| self.steps[slot as usize].kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::hydra::MachineSpec;
    use crate::trace::{StepSource, TraceReader};
    use std::collections::BTreeMap;

    fn hydra_with(trace: &str, order: DispatchOrder) -> (Hydra, TraceReader<&[u8]>) {
        let mut hydra = Hydra::new(BTreeMap::new());
        hydra.set_dispatch_order(order);
        (hydra, TraceReader::new(trace.as_bytes(), "t.csv"))
    }

    fn arrive_all(hydra: &mut Hydra, trace: &mut TraceReader<&[u8]>) {
        while let Some(row) = trace.next_step().transpose().unwrap() {
            hydra.arrive(&row, trace.symbols(), SimTime::ZERO).unwrap();
        }
    }

    #[test]
    fn reverse_dependencies_outrank_priority_and_features_count_for_nothing() {
        // Step 1 has the higher priority, step 2 a dependent, step 3 a
        // required feature. C++: 1 (priority), then 3 (features), then 2.
        // Rust: 2 (reverse dependencies), then 1, then 3 (build id).
        let trace = "step_id,submitted_at,system,duration,features,priority,build_id,depends_on\n\
                     1,0,x86_64-linux,100,,200,1,\n\
                     2,0,x86_64-linux,100,,100,2,\n\
                     3,0,x86_64-linux,100,kvm,100,3,\n\
                     4,0,x86_64-linux,100,,100,4,2\n";
        let line = "h x86_64-linux - 1 1 kvm - -";
        let order_of = |order| {
            let (mut hydra, mut t) = hydra_with(trace, order);
            let m = hydra.add_machine("h".into(), MachineSpec::parse_machines_line(line).unwrap().1, SimTime(0), false);
            if order == DispatchOrder::Rust {
                hydra.join_builder(m);
            }
            arrive_all(&mut hydra, &mut t);
            let mut started = vec![];
            for i in 0..3 {
                hydra.dispatch(SimTime(i));
                started.extend(hydra.running_on(m).iter().map(|s| s.step_id));
                hydra.leave_builder(m, SimTime(i));
                hydra.join_builder(m);
            }
            started
        };
        assert_eq!(order_of(DispatchOrder::Cpp), [1, 3, 2]);
        assert_eq!(order_of(DispatchOrder::Rust), [2, 1, 3]);
    }

    #[test]
    fn the_rust_runner_packs_its_first_builder_where_the_cpp_runner_spreads() {
        let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,100\n2,0,x86_64-linux,100\n";
        let line = "h x86_64-linux - 2 1 - - -";
        for (order, want) in [(DispatchOrder::Cpp, [1, 1]), (DispatchOrder::Rust, [2, 0])] {
            let (mut hydra, mut t) = hydra_with(trace, order);
            let spec = MachineSpec::parse_machines_line(line).unwrap().1;
            let a = hydra.add_machine("a".into(), spec.clone(), SimTime(0), false);
            let b = hydra.add_machine("b".into(), spec, SimTime(0), false);
            if order == DispatchOrder::Rust {
                hydra.join_builder(a);
                hydra.join_builder(b);
            }
            arrive_all(&mut hydra, &mut t);
            hydra.dispatch(SimTime(0));
            let jobs = [hydra.machines[a as usize].current_jobs, hydra.machines[b as usize].current_jobs];
            assert_eq!(jobs, want, "{order:?}");
        }
    }

    #[test]
    fn a_silent_builder_keeps_its_steps_until_it_leaves_and_they_retry_with_a_try_used() {
        let (mut hydra, mut t) =
            hydra_with("step_id,submitted_at,system,duration\n1,0,x86_64-linux,10\n", DispatchOrder::Rust);
        let spec = MachineSpec::parse_machines_line("h x86_64-linux - 1 1 - - -").unwrap().1;
        hydra.add_class(spec.clone(), true);
        let m = hydra.add_machine("h".into(), spec, SimTime(0), true);
        hydra.join_builder(m);
        arrive_all(&mut hydra, &mut t);
        hydra.dispatch(SimTime(0));
        hydra.silence_builder(m);
        let (at, done) = hydra.scheduled.pop().unwrap();
        hydra.handle(done, at);
        assert_eq!(hydra.counters.succeeded, 0, "a hung step finished");
        assert_eq!(hydra.running_on(m).len(), 1);
        hydra.leave_builder(m, SimTime(900_000));
        assert_eq!(hydra.counters.aborted, 1);
        assert_eq!(hydra.queued_steps()[0].tries, 1);
        assert_eq!(hydra.scheduled.last().unwrap().0, SimTime(960_000), "retried 60 s after the abort");
    }
}
