//! A model of the C++ queue runner: runnable steps, build machines with
//! slots, the dispatcher's orders, scheduling shares, retries, and the status
//! document it reports. Every rule below follows NixOS/hydra's
//! `src/hydra-queue-runner` (`dispatcher.cc`, `builder.cc`, `state.hh`, as
//! of early 2026); where the model departs from it, it says so and why.
//!
//! **Dispatch** (`State::doDispatch`). Runnable steps are ordered by
//! 1. global priority, higher first (`highestGlobalPriority`);
//! 2. the `shareUsed` of the step's jobset, lower first (`lowestShareUsed`);
//! 3. priority, higher first (`highestLocalPriority`, `meta.schedulingPriority`);
//! 4. the number of required system features, more first;
//! 5. the number of reverse dependencies, more first (`numRevDeps`);
//! 6. build id, lower first (`lowestBuildID`);
//! 7. step id, lower first. Hydra's `std::sort` leaves the order of steps
//!    equal in 1-6 unspecified; the model needs one, and takes the trace's id.
//!
//! Hydra copies these figures from each step when `doDispatch` starts, so
//! they are read afresh at every dispatch: a queued step that gains a
//! dependent outranks, at the next dispatch, an otherwise equal step without
//! one. `numRevDeps` is `step->rdeps.size()`: Hydra appends a weak pointer
//! for every step created depending on this one and never removes one, so
//! the count is the number of steps that arrived depending on it, including
//! those that since failed or were cancelled; the model counts the same.
//!
//! Machines with a free slot that are enabled (listed in the machines file
//! Hydra last read, or static) and alive are ordered by
//! `round(currentJobs / speedFactor)` (lower first; halves round away from
//! zero, as `std::round`), then speedFactor (higher first), then currentJobs
//! (higher first), and finally by the order in which Hydra first saw them
//! (static machines first, in scenario order); Hydra leaves that last tie to
//! `std::sort` over its `std::map` of machines. The first machine takes the
//! first step it supports; the machines are reordered and this repeats until
//! no machine takes a step (the `keepGoing` loop). A machine supports a step
//! when it has the step's system, supports all the step's required features,
//! and the step requires all the machine's mandatory features
//! (`Machine::supportsStep`).
//!
//! Hydra's dispatcher runs when woken (a step became runnable, a step
//! finished) on its own thread; the model dispatches once per simulated
//! millisecond in which anything happened, after every event and arrival of
//! that millisecond (see `sim/mod.rs`).
//!
//! **Scheduling shares** (`Jobset::addStep`, `Jobset::pruneSteps`). When an
//! attempt ends, its build time (end minus start) is charged to the step's
//! jobset under the time the attempt *started*, whatever its result: a
//! failed, transiently failed or aborted attempt is charged like a
//! successful one (`builder.cc` charges before it looks at `canRetry`).
//! Every dispatch first drops the charges of attempts that started 24 hours
//! ago or earlier (`startTime <= now - schedulingWindow`). `shareUsed` is the
//! charged time divided by the jobset's `schedulingShares` (100 unless the
//! scenario says otherwise). Departures: the model keeps milliseconds where
//! Hydra keeps whole seconds; and Hydra stores charges in a `std::map` keyed
//! by the start second, so of two attempts of a jobset that started in the
//! same second only the later one's time is ever pruned while both were
//! added (its `seconds` drift upwards), which the model does not reproduce:
//! it keeps every charge.
//!
//! **Retries** (`builder.cc`). An attempt that fails transiently or is
//! aborted (its machine stopped, was destroyed or vanished) is retried after
//! `retryInterval * retryBackoff^(tries - 1)` = 60 x 3^(n-1) s, up to
//! `maxTries` = 5 attempts, after which the step gives up. Hydra adds up to
//! 9 s of random jitter to the back-off; the model does not, so that a run
//! depends on the scenario's seed only through the cloud. A step in back-off
//! counts as runnable in the status, as in Hydra (`runnablePerType` counts it
//! before skipping it). A trace's `transient` outcome fails the first
//! attempt; `failure` fails the step for good, and the steps depending on it
//! never start.
//!
//! **Unsupported steps.** A step that no machine Hydra could ever have can
//! serve (no static machine and no provisioned type supports it) never
//! starts and is reported as such when it becomes runnable. Steps that only a
//! provisioned type can serve wait for a machine however long it takes,
//! which is Hydra with a large `max_unsupported_time`, unless the scenario
//! sets one (`hydra/health.rs`, which also disables failing machines).
//!
//! **The server** (`hydra/phases.rs`, with a `[server]` only): an attempt
//! copies its closure, builds, and has its outputs received and uploaded by
//! the server's local workers, under the slot rule of its runner generation.
//!
//! **Machines file.** Hydra rereads the file some seconds after it changes
//! (the simulator's `reload_delay`); a listed machine is enabled, a machine
//! no longer listed is disabled but finishes its running steps, and a
//! machine whose instance goes away aborts them.
//!
//! **Data structures.** Runnable steps and shares are in `sim/queue.rs`
//! (one heap per (step type, jobset), ranked per type by a scan of the
//! non-empty heaps or, past a few dozen, a winner tree: choosing a step does
//! not grow with the number of jobsets); machines with a free slot are in
//! `sim/slots.rs`, per class of identical machines (so choosing a machine
//! costs a logarithm, not a scan of the fleet). A step is known by its
//! arrival's serial number, not its trace id, in events and in the lists of
//! steps waiting for it, so a trace that reuses the id of a step that has
//! left cannot touch the new step. This module knows nothing of clouds,
//! billing or the provisioner: machines come and go when the simulator says
//! so.
//!
//! **The Rust queue runner** differs in its dispatch order and in how
//! builders come and go; those rules are in `hydra/rust.rs`, reached through
//! [`DispatchOrder`] (the keys of the step and machine orders) and the
//! builder methods there. Every rule above holds for it unless that file
//! says otherwise.

mod health;
mod phases;

pub use health::UNSUPPORTED;
pub use phases::{LaterEvent, Phase};

use super::prefetch::prefetch_at;
use super::queue::{KeyParts, QueueKey, Runnable};
use super::slots::{Free, FreeMachines};
use super::time::SimTime;
use crate::metrics::WaitRecorder;
use crate::model::{BuilderStatus, QueueStatus, TypeStatus};
use crate::trace::{Outcome, StepRow, Sym, Symbols};
pub use rust::{DispatchOrder, QueuedStep};
use serde_json::{Map, Value, json};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

pub use super::queue::SHARE_WINDOW_MS;

pub(super) type StepIdHash = std::hash::BuildHasherDefault<StepIdHasher>;

/// Hashes the step ids of the maps of steps so that ids close together sit
/// close together: blocks of 64 consecutive ids take consecutive buckets,
/// and the blocks are scattered. Traces number steps in arrival order, and
/// steps arrive and leave in roughly that order, so the maps' inserts,
/// lookups and removals touch few cache lines; ids in any other pattern
/// spread like any hash. (std's map takes the bucket from the hash's low
/// bits and a tag from its top seven; only speed depends on that.)
#[derive(Default, Clone, Copy)]
pub struct StepIdHasher(u64);

impl StepIdHasher {
    /// The finaliser of splitmix64: every input bit reaches every output bit.
    fn mix(mut x: u64) -> u64 {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

impl std::hash::Hasher for StepIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = Self::mix(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, id: u64) {
        const TAG: u64 = !0 << 57;
        let place = Self::mix(id >> 6) << 6 | (id & 63);
        self.0 = (Self::mix(id) & TAG) | (place & !TAG);
    }
}

mod rust;

/// Attempts a step gets before Hydra gives up on it.
pub const MAX_ATTEMPTS: u32 = 5;

/// Failed steps whose ids are remembered, so that a step arriving later and
/// depending on one never starts. Dependencies point back a few minutes
/// (an evaluation's steps arrive together); a step depending on an older
/// failure than the latest 65,536 runs as if its dependency had succeeded.
/// This bounds the memory of a long trace.
pub const FAILED_IDS_KEPT: usize = 1 << 16;

/// Back-off before attempt `failed + 1`, after `failed` attempts: 60 x 3^(n-1) s.
pub fn retry_delay_ms(failed: u32) -> i64 {
    60_000 * 3i64.pow(failed.saturating_sub(1).min(10))
}

/// What a machines-file line (or a static machine) offers.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSpec {
    pub systems: Vec<String>,
    pub max_jobs: u32,
    pub speed_factor: f64,
    pub supported: BTreeSet<String>,
    pub mandatory: BTreeSet<String>,
}

impl MachineSpec {
    /// Hydra's rule (see the module documentation).
    pub fn supports(&self, system: &str, required: &BTreeSet<String>) -> bool {
        self.systems.iter().any(|s| s == system)
            && required.iter().all(|f| self.supported.contains(f) || self.mandatory.contains(f))
            && self.mandatory.iter().all(|f| required.contains(f))
    }

    /// Reads one machines-file line: `uri systems key maxJobs speedFactor
    /// supported mandatory hostkey`, `-` for empty. Returns the store URI too.
    pub fn parse_machines_line(line: &str) -> Option<(String, MachineSpec)> {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            return None;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let list = |i: usize| -> BTreeSet<String> {
            match f.get(i) {
                None | Some(&"-") => BTreeSet::new(),
                Some(s) => s.split(',').filter(|x| !x.is_empty()).map(String::from).collect(),
            }
        };
        let spec = MachineSpec {
            systems: f.get(1).map_or(vec![], |s| s.split(',').map(String::from).collect()),
            max_jobs: f.get(3).and_then(|s| s.parse().ok()).unwrap_or(1),
            speed_factor: f.get(4).and_then(|s| s.parse().ok()).filter(|x: &f64| *x > 0.0).unwrap_or(1.0),
            supported: list(5),
            mandatory: list(6),
        };
        Some((f[0].to_string(), spec))
    }
}

/// How a step left the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    Succeeded,
    Failed,
    GaveUp,
    NeverStarted(&'static str),
    RunningAtEnd,
    RetryingAtEnd,
}

pub const NO_MACHINE: &str = "no machine type can serve it";
pub const DEPENDENCY_FAILED: &str = "a dependency failed";
pub const HORIZON: &str = "horizon reached first";

/// One line of the per-step report.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub step_id: u64,
    pub kind: u32,
    pub jobset: u32,
    pub runnable_at: Option<SimTime>,
    pub started_at: Option<SimTime>,
    pub finished_at: Option<SimTime>,
    /// Machine of the last attempt.
    pub machine: Option<u32>,
    pub attempts: u32,
    pub end: StepEnd,
}

/// Something the simulator must do at a later time. `serial` names the
/// step's arrival (step ids may be reused once a step has left). `Later`
/// holds the events of the server's phases, disabled machines and
/// unsupported steps (`hydra/phases.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HydraEvent {
    StepDone { serial: u64, slot: u32, attempt: u32 },
    RetryDue { serial: u64, slot: u32, attempt: u32 },
    Later(LaterEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepState {
    Waiting,
    Queued,
    Backoff,
    Running,
    /// Off its machine, outputs being received and uploaded (`phases.rs`).
    Uploading,
    /// The step left the model; its slot may be reused.
    Left,
}

/// What dispatch and completion read of a step, in one cache line: a step
/// queued or running for a while is no longer in cache, and each of the
/// two costs one miss, not two. The rest is in [`StepExtra`].
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Step {
    step_id: u64,
    /// Counts arrivals: unique for the run, where step ids are unique only
    /// among the steps in the model.
    serial: u64,
    duration_ms: i64,
    runnable_at: i64,
    attempt_start: i64,
    /// Names the current attempt's share charge.
    charge_ticket: u64,
    kind: u32,
    jobset: u32,
    machine: u32,
    attempts: u8,
    state: StepState,
    outcome: Outcome,
    /// [`HAS_DEPENDENTS`] and [`IN_EVALUATION`].
    flags: u8,
}

/// Some step arrived depending on this one (its list may be empty since).
const HAS_DEPENDENTS: u8 = 1;
/// The step belongs to an evaluation: reading its evaluation, kept in the
/// step's [`StepExtra`], is worth a cache miss when it leaves.
const IN_EVALUATION: u8 = 2;

const _: () = assert!(std::mem::size_of::<Step>() == 64);
const _: () = assert!(std::mem::size_of::<StepExtra>() == 64);

/// What a step's queue key and its dependencies need, read on arrival and
/// when it is queued. One cache line, aligned like [`Step`]: unaligned, most
/// records straddled two lines, and a step whose record had gone cold cost
/// two misses instead of one.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct StepExtra {
    build_id: u64,
    /// Only kept for the per-step report.
    first_start: i64,
    priority: i32,
    global_priority: i32,
    rdeps: u32,
    unfinished_deps: u32,
    /// Steps waiting for this one, in `Hydra::waiting`.
    dependents: List,
    /// Where the running attempt is (always `Build` without a server).
    phase: Phase,
    output_size: Option<u64>,
    /// Its evaluation in [`Hydra::evaluations`], or `NO_EVALUATION`.
    eval: u32,
}

/// A list in [`Links`]: its first and last link.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const END: u32 = u32::MAX;
const NO_JOBSET: u32 = u32::MAX;

impl List {
    const EMPTY: List = List { head: END, tail: END };
}

/// One entry of a list of dependents: the dependent's slot and serial.
#[derive(Debug, Clone, Copy)]
struct Link {
    slot: u32,
    next: u32,
    serial: u64,
}

/// The lists of steps waiting for each step, in one pool: appending costs
/// no allocation once the pool has grown to the dependencies in flight.
#[derive(Debug, Default)]
struct Links {
    links: Vec<Link>,
    free: Vec<u32>,
}

impl Links {
    fn append(&mut self, list: &mut List, slot: u32, serial: u64) {
        let link = Link { slot, next: END, serial };
        let i = match self.free.pop() {
            Some(i) => {
                self.links[i as usize] = link;
                i
            }
            None => {
                self.links.push(link);
                (self.links.len() - 1) as u32
            }
        };
        match list.tail {
            END => list.head = i,
            tail => self.links[tail as usize].next = i,
        }
        list.tail = i;
    }

    /// Empties a list into `out`, in order, and frees its links.
    fn drain_into(&mut self, list: &mut List, out: &mut Vec<(u32, u64)>) {
        let mut i = list.head;
        while i != END {
            let link = self.links[i as usize];
            out.push((link.slot, link.serial));
            self.free.push(i);
            i = link.next;
        }
        *list = List::EMPTY;
    }
}

/// Where the values of the last status that [`Hydra::status_in_place`]
/// built came from, in its maps' key order.
#[derive(Debug, Default)]
pub struct StatusLayout {
    /// The kind behind each entry of `machineTypes`; `None` when an entry
    /// has more than one (i686 types folded into x86_64 ones).
    kinds_by_key: Option<Vec<u32>>,
    /// The machines listed, in machine order.
    listed: Vec<u32>,
    /// The machine behind each entry of `machines`; `None` when two
    /// machines share a host.
    machines_by_key: Option<Vec<u32>>,
}

/// A step type as Hydra keys it: `system[:features]`.
#[derive(Debug)]
pub struct Kind {
    pub key: String,
    pub system: String,
    pub features: BTreeSet<String>,
    /// Queued or in retry back-off.
    pub runnable: u64,
    pub running: u64,
    pub last_active: Option<i64>,
    pub servable: bool,
    /// Some machine Hydra knows (listed now or before) supports it.
    pub ever_supported: bool,
}

#[derive(Debug)]
struct Class {
    spec: MachineSpec,
    /// Whether a machine of this class may ever exist (static, or a type the
    /// provisioner may create).
    can_exist: bool,
    serves: Vec<bool>,
    served_kinds: Vec<u32>,
}

#[derive(Debug)]
struct Jobset {
    name: String,
}

/// A build machine as the queue runner sees it.
#[derive(Debug)]
pub struct Machine {
    pub host: String,
    class: u32,
    pub max_jobs: u32,
    pub speed_factor: f64,
    pub current_jobs: u32,
    /// Listed in the machines file Hydra last read (static machines: always).
    pub enabled: bool,
    /// The instance runs and can take builds.
    pub alive: bool,
    running: Vec<u32>,
    pub idle_since: i64,
    pub steps_done: u64,
    busy_since: Option<i64>,
    /// Time with at least one job running.
    pub busy_ms: i64,
    /// Sum of the run times of its attempts.
    pub job_ms: i64,
    /// When the instance was requested (created or started), for "waited for a boot".
    pub requested_at: i64,
    /// Enabled, alive and not removed: dispatch may give it steps.
    active: bool,
    pub provisioned: bool,
    /// Destroyed: no longer tracked by Hydra.
    pub removed: bool,
    /// Its place in the Rust runner's list of builders (`hydra/rust.rs`).
    rank: u32,
    /// A Rust runner builder that stopped answering: what it runs never
    /// finishes, and it keeps its slots until it is dropped.
    pub silent: bool,
}

impl Machine {
    /// Whether the C++ runner's status lists it: every machine it tracks but
    /// a provisioned one both delisted and dead.
    fn in_cpp_status(&self) -> bool {
        !self.removed && (self.enabled || self.alive || !self.provisioned)
    }
}

/// Hydra's order of machines, smaller first: load, speed factor (higher
/// first), current jobs (more first), first sight.
type MachineOrder = (i64, Reverse<u64>, Reverse<u32>, u32);

/// Counters of attempts and outcomes.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub total: u64,
    pub started: u64,
    pub attempts_started: u64,
    pub attempts_finished: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub gave_up: u64,
    pub aborted: u64,
    pub retries: u64,
    pub never_started: BTreeMap<&'static str, u64>,
    pub running_at_end: u64,
    pub retrying_at_end: u64,
}

/// The queue runner model.
pub struct Hydra {
    kinds: Vec<Kind>,
    /// Per system symbol, the types of that system: (features symbol, type).
    kind_index: Vec<Vec<(Sym, u32)>>,
    classes: Vec<Class>,
    runnable: Runnable,
    jobsets: Vec<Jobset>,
    /// Per jobset symbol, its jobset (`NONE` until one arrives).
    jobset_index: Vec<u32>,
    shares: BTreeMap<String, u64>,
    pub machines: Vec<Machine>,
    /// Active machines with a free slot, per class, in Hydra's order.
    free: FreeMachines,
    /// Provisioned machines not removed, for machines-file reloads.
    provisioned: Vec<u32>,
    steps: Vec<Step>,
    extras: Vec<StepExtra>,
    waiting: Links,
    /// Buffers for lists of dependents being walked, reused.
    spare_lists: Vec<Vec<(u32, u64)>>,
    free_slots: Vec<u32>,
    by_id: super::step_index::StepIndex,
    /// Per slot, the generation of its step's live queue entry: an entry
    /// carrying any other is stale (its step was requeued, dispatched or
    /// left). Kept apart from the steps so that the check reads 4 bytes.
    entry_gens: Vec<u32>,
    /// Ids of the latest [`FAILED_IDS_KEPT`] steps that failed, gave up or
    /// never started for a failed dependency, oldest first in the queue.
    failed_ids: HashSet<u64, StepIdHash>,
    failed_order: VecDeque<u64>,
    arrivals: u64,
    queued: u64,
    pub dispatch_needed: bool,
    /// Events for the simulator to schedule.
    pub scheduled: Vec<(SimTime, HydraEvent)>,
    /// Steps that left the model, for the per-step report.
    pub records: Vec<StepRecord>,
    /// Whether to fill `records` (someone reads the per-step report).
    pub keep_records: bool,
    pub waits: WaitRecorder,
    pub counters: Counters,
    /// Free slots on active machines: no dispatch is needed without one.
    free_active_slots: u64,
    /// Items visited by machine bookkeeping (see [`Hydra::work`]).
    work: u64,
    /// The server's local work and the runner's slot rules; `None`: not modelled.
    server: Option<phases::ServerSide>,
    /// Disabled machines and unsupported steps.
    health: health::Health,
    pub evaluations: crate::metrics::evaluations::Evaluations,
    /// Whose orders dispatch follows.
    order: DispatchOrder,
    /// The Rust runner's builders in its order (`hydra/rust.rs`).
    builder_order: Vec<u32>,
}

impl Hydra {
    pub fn new(shares: BTreeMap<String, u64>) -> Hydra {
        Hydra {
            kinds: vec![],
            kind_index: vec![],
            classes: vec![],
            runnable: Runnable::default(),
            jobsets: vec![],
            jobset_index: vec![],
            shares,
            machines: vec![],
            free: FreeMachines::default(),
            provisioned: vec![],
            steps: vec![],
            extras: vec![],
            waiting: Links::default(),
            spare_lists: vec![],
            free_slots: vec![],
            by_id: Default::default(),
            entry_gens: vec![],
            failed_ids: HashSet::default(),
            failed_order: VecDeque::new(),
            arrivals: 0,
            queued: 0,
            dispatch_needed: false,
            scheduled: vec![],
            records: vec![],
            keep_records: true,
            waits: WaitRecorder::default(),
            counters: Counters::default(),
            free_active_slots: 0,
            work: 0,
            server: None,
            health: health::Health::default(),
            evaluations: Default::default(),
            order: DispatchOrder::Cpp,
            builder_order: vec![],
        }
    }

    /// Items visited so far by the scans that choose steps and machines
    /// and keep the machine lists: a measure of the model's work that does
    /// not depend on the clock, for tests that prove it does not grow with
    /// the number of jobsets or machines.
    pub fn work(&self) -> u64 {
        self.work + self.runnable.work + self.free.work
    }

    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    pub fn jobset_count(&self) -> u32 {
        self.jobsets.len() as u32
    }

    pub fn jobset_name(&self, j: u32) -> &str {
        &self.jobsets[j as usize].name
    }

    /// Steps in the model (arrived, not yet finished for good).
    pub fn live_steps(&self) -> usize {
        self.by_id.len()
    }

    /// Registers a kind of machine; `can_exist` says whether one may ever be
    /// available (used to tell steps that can never run).
    pub fn add_class(&mut self, spec: MachineSpec, can_exist: bool) -> u32 {
        if let Some(i) = self.classes.iter().position(|c| c.spec == spec) {
            if can_exist && !self.classes[i].can_exist {
                self.classes[i].can_exist = true;
                for k in 0..self.kinds.len() {
                    if self.classes[i].serves[k] {
                        self.kinds[k].servable = true;
                    }
                }
            }
            return i as u32;
        }
        let serves: Vec<bool> = self.kinds.iter().map(|k| spec.supports(&k.system, &k.features)).collect();
        let served_kinds = (0..serves.len() as u32).filter(|&k| serves[k as usize]).collect();
        for (k, s) in serves.iter().enumerate() {
            if *s && can_exist {
                self.kinds[k].servable = true;
            }
        }
        self.classes.push(Class { spec, can_exist, serves, served_kinds });
        (self.classes.len() - 1) as u32
    }

    /// Adds a machine Hydra knows from now on (disabled until listed, unless static).
    pub fn add_machine(&mut self, host: String, spec: MachineSpec, now: SimTime, provisioned: bool) -> u32 {
        let class = self.add_class(spec.clone(), !provisioned);
        let i = self.machines.len() as u32;
        self.machines.push(Machine {
            host,
            class,
            max_jobs: spec.max_jobs.max(1),
            speed_factor: spec.speed_factor,
            current_jobs: 0,
            enabled: !provisioned,
            alive: !provisioned,
            // Room for its slots from the start: growing a vector one job at
            // a time reallocates it on the hot path of dispatch.
            running: Vec::with_capacity(spec.max_jobs.clamp(1, 64) as usize),
            idle_since: now.0,
            steps_done: 0,
            busy_since: None,
            busy_ms: 0,
            job_ms: 0,
            requested_at: now.0,
            provisioned,
            removed: false,
            active: false,
            rank: 0,
            silent: false,
        });
        if provisioned {
            self.provisioned.push(i);
        }
        self.machine_seen(class);
        self.update_active(i);
        i
    }

    /// A machine of the free machines' sets as it is now but for running `jobs`.
    fn free_entry(&self, machine: u32, jobs: u32) -> Free {
        let m = &self.machines[machine as usize];
        Free { machine, jobs, max_jobs: m.max_jobs, speed_factor: m.speed_factor, rank: m.rank }
    }

    /// Makes a machine active or not after its `enabled`, `alive` or
    /// `removed` changed.
    fn update_active(&mut self, machine: u32) {
        let m = &self.machines[machine as usize];
        let active = m.enabled && m.alive && !m.removed && !self.health.is_disabled(machine);
        if active == m.active {
            return;
        }
        self.work += 1;
        let (class, jobs, max_jobs) = (m.class, m.current_jobs, m.max_jobs);
        let free = u64::from(max_jobs.saturating_sub(jobs));
        self.machines[machine as usize].active = active;
        if active {
            self.free_active_slots += free;
            if free > 0 {
                self.free.add(class, self.free_entry(machine, jobs));
            }
            self.dispatch_needed = true;
        } else {
            self.free_active_slots -= free;
            if free > 0 {
                self.free.remove(class, self.free_entry(machine, jobs));
            }
        }
    }

    /// An active machine's `current_jobs` goes from `before` to its current value.
    #[inline(always)]
    fn jobs_changed(&mut self, machine: u32, before: u32) {
        let m = &self.machines[machine as usize];
        if !m.active {
            return;
        }
        let (class, max, now) = (m.class, m.max_jobs, m.current_jobs);
        self.free_active_slots =
            self.free_active_slots + u64::from(max.saturating_sub(now)) - u64::from(max.saturating_sub(before));
        match (before < max, now < max) {
            (true, true) => self.free.moved(class, self.free_entry(machine, before), now),
            (true, false) => self.free.remove(class, self.free_entry(machine, before)),
            (false, true) => self.free.add(class, self.free_entry(machine, now)),
            (false, false) => {}
        }
    }

    /// Hydra reread the machines file: exactly the provisioned machines for
    /// which `listed` (given the machine and its host) gives a line are
    /// enabled (a provisioned machine's spec may change).
    pub fn apply_machines_file<'a>(&mut self, listed: impl Fn(u32, &str) -> Option<&'a MachineSpec>) {
        let machines = &self.machines;
        self.provisioned.retain(|&m| !machines[m as usize].removed);
        self.work += self.provisioned.len() as u64;
        for n in 0..self.provisioned.len() {
            let i = self.provisioned[n];
            let spec = listed(i, &self.machines[i as usize].host);
            let class_spec = &self.classes[self.machines[i as usize].class as usize].spec;
            if let Some(spec) = spec.filter(|s| *s != class_spec).cloned() {
                // Leave the old class before joining the new one.
                self.machines[i as usize].enabled = false;
                self.update_active(i);
                let class = self.add_class(spec.clone(), false);
                self.machine_seen(class);
                let m = &mut self.machines[i as usize];
                m.class = class;
                m.max_jobs = spec.max_jobs.max(1);
                m.speed_factor = spec.speed_factor;
            }
            self.machines[i as usize].enabled = spec.is_some();
            self.update_active(i);
        }
        self.dispatch_needed = true;
    }

    /// The instance behind a machine came up (`alive`) or went away. Going
    /// away aborts its running steps, which are retried after a back-off.
    pub fn set_alive(&mut self, machine: u32, alive: bool, now: SimTime) {
        let m = &mut self.machines[machine as usize];
        if m.alive == alive {
            return;
        }
        m.alive = alive;
        self.update_active(machine);
        if !alive {
            let running = std::mem::take(&mut self.machines[machine as usize].running);
            for slot in running {
                self.abort(slot, now);
            }
        }
        self.dispatch_needed = true;
    }

    /// When the instance was requested: steps that became runnable before it
    /// and ran on it waited for a boot.
    pub fn set_requested_at(&mut self, machine: u32, at: SimTime) {
        self.machines[machine as usize].requested_at = at.0;
    }

    /// Forgets a destroyed machine (it must not be alive).
    pub fn remove_machine(&mut self, machine: u32, now: SimTime) {
        self.set_alive(machine, false, now);
        let m = &mut self.machines[machine as usize];
        m.enabled = false;
        m.removed = true;
        self.update_active(machine);
    }

    #[inline(always)]
    fn kind_of(&mut self, row: &StepRow, symbols: &Symbols) -> u32 {
        let by_features = self.kind_index.get(row.system.0 as usize).map_or(&[][..], Vec::as_slice);
        match by_features.iter().find(|(f, _)| *f == row.features) {
            Some(&(_, k)) => k,
            None => self.new_kind(row, symbols),
        }
    }

    /// The first step of a type not seen before: the type joins the model.
    #[cold]
    #[inline(never)]
    fn new_kind(&mut self, row: &StepRow, symbols: &Symbols) -> u32 {
        let system = symbols.name(row.system).to_string();
        let features_text = symbols.name(row.features);
        let features: BTreeSet<String> = features_text.split(',').filter(|f| !f.is_empty()).map(String::from).collect();
        let key = if features.is_empty() { system.clone() } else { format!("{system}:{features_text}") };
        let k = self.kinds.len() as u32;
        let mut servable = false;
        for c in &mut self.classes {
            let s = c.spec.supports(&system, &features);
            c.serves.push(s);
            if s {
                c.served_kinds.push(k);
                servable |= c.can_exist;
            }
        }
        let ever_supported = self.machines.iter().any(|m| self.classes[m.class as usize].serves[k as usize]);
        self.kinds.push(Kind {
            key,
            system,
            features,
            runnable: 0,
            running: 0,
            last_active: None,
            servable,
            ever_supported,
        });
        let system = row.system.0 as usize;
        if self.kind_index.len() <= system {
            self.kind_index.resize_with(system + 1, Vec::new);
        }
        self.kind_index[system].push((row.features, k));
        k
    }

    #[inline(always)]
    fn jobset_of(&mut self, sym: Sym, symbols: &Symbols) -> u32 {
        match self.jobset_index.get(sym.0 as usize).filter(|&&j| j != NO_JOBSET) {
            Some(&j) => j,
            None => self.new_jobset(sym, symbols),
        }
    }

    /// The first step of a jobset not seen before: the jobset joins the model.
    #[cold]
    #[inline(never)]
    fn new_jobset(&mut self, sym: Sym, symbols: &Symbols) -> u32 {
        let name = symbols.name(sym).to_string();
        let shares = self.shares.get(&name).copied().unwrap_or(100);
        let j = self.runnable.add_jobset(shares);
        self.jobsets.push(Jobset { name });
        let i = sym.0 as usize;
        if self.jobset_index.len() <= i {
            self.jobset_index.resize(i + 1, NO_JOBSET);
        }
        self.jobset_index[i] = j;
        j
    }

    /// A step of the trace arrives.
    pub fn arrive(&mut self, row: &StepRow, symbols: &Symbols, now: SimTime) -> Result<(), String> {
        // The slot the step will take, known before it is taken so that
        // the id map is probed once.
        let next_slot = self.free_slots.last().copied().unwrap_or(self.steps.len() as u32);
        if !self.by_id.insert(row.step_id, next_slot) {
            return Err(format!("step {} appears twice", row.step_id));
        }
        let kind = self.kind_of(row, symbols);
        let jobset = self.jobset_of(row.jobset, symbols);
        self.arrivals += 1;
        let serial = self.arrivals;
        let mut step = Step {
            step_id: row.step_id,
            serial,
            duration_ms: row.duration_ms,
            runnable_at: -1,
            attempt_start: -1,
            charge_ticket: 0,
            kind,
            jobset,
            machine: u32::MAX,
            attempts: 0,
            state: StepState::Waiting,
            outcome: row.outcome,
            flags: if row.eval_id.is_some() { IN_EVALUATION } else { 0 },
        };
        let mut extra = StepExtra {
            build_id: row.build_id,
            first_start: -1,
            priority: row.priority,
            global_priority: row.global_priority,
            rdeps: 0,
            unfinished_deps: 0,
            dependents: List::EMPTY,
            phase: Phase::Build,
            output_size: row.output_size,
            eval: match row.eval_id {
                Some(e) => self.evaluations.arrived(jobset, e, row.submitted_ms),
                None => crate::metrics::evaluations::NO_EVALUATION,
            },
        };
        let mut dependency_failed = false;
        for dep in &row.depends_on {
            if let Some(d) = self.by_id.get(*dep) {
                extra.unfinished_deps += 1;
                if d == next_slot {
                    // Its own id: it waits for itself, forever.
                    step.flags |= HAS_DEPENDENTS;
                    extra.rdeps = extra.rdeps.saturating_add(1);
                    self.waiting.append(&mut extra.dependents, next_slot, serial);
                    continue;
                }
                let ds = &mut self.steps[d as usize];
                ds.flags |= HAS_DEPENDENTS;
                let queued = ds.state == StepState::Queued;
                let de = &mut self.extras[d as usize];
                self.waiting.append(&mut de.dependents, next_slot, serial);
                de.rdeps = de.rdeps.saturating_add(1);
                if queued {
                    // Hydra reads `rdeps.size()` at every dispatch: requeue
                    // the step under its new count.
                    self.push_queue_entry(d);
                }
            } else if self.failed_ids.contains(dep) {
                dependency_failed = true;
            }
        }
        let slot = match self.free_slots.pop() {
            Some(s) => {
                // The next arrival's slot: in a burst, one freed long ago.
                if let Some(&next) = self.free_slots.last() {
                    self.prefetch_step(next);
                }
                self.steps[s as usize] = step;
                self.extras[s as usize] = extra;
                s
            }
            None => {
                self.steps.push(step);
                self.extras.push(extra);
                self.entry_gens.push(0);
                (self.steps.len() - 1) as u32
            }
        };
        debug_assert_eq!(slot, next_slot);
        self.counters.total += 1;
        if dependency_failed {
            self.cancel_for_failed_dependency(slot, serial);
        } else if extra.unfinished_deps == 0 {
            self.make_runnable(slot, now);
        }
        Ok(())
    }

    /// A step of the trace that arrives after the horizon: reported, never run.
    pub fn arrives_after_horizon(&mut self, row: &StepRow, symbols: &Symbols) {
        let kind = self.kind_of(row, symbols);
        self.counters.total += 1;
        *self.counters.never_started.entry(HORIZON).or_default() += 1;
        if !self.keep_records {
            return;
        }
        let jobset = self.jobset_of(row.jobset, symbols);
        self.records.push(StepRecord {
            step_id: row.step_id,
            kind,
            jobset,
            runnable_at: None,
            started_at: None,
            finished_at: None,
            machine: None,
            attempts: 0,
            end: StepEnd::NeverStarted(HORIZON),
        });
    }

    fn make_runnable(&mut self, slot: u32, now: SimTime) {
        let s = &mut self.steps[slot as usize];
        s.runnable_at = now.0;
        let kind = s.kind;
        if !self.kinds[kind as usize].servable {
            return self.resolve(slot, StepEnd::NeverStarted(NO_MACHINE), None);
        }
        if self.unsupported_on_arrival(slot, now) {
            return;
        }
        self.enqueue(slot);
    }

    fn enqueue(&mut self, slot: u32) {
        let s = &mut self.steps[slot as usize];
        // Steps in back-off already count as runnable.
        if s.state != StepState::Backoff {
            self.kinds[s.kind as usize].runnable += 1;
        }
        s.state = StepState::Queued;
        self.push_queue_entry(slot);
        self.queued += 1;
        self.dispatch_needed = true;
    }

    /// Pushes the queued step's entry with its current key; an earlier entry
    /// of the same step becomes stale.
    fn push_queue_entry(&mut self, slot: u32) {
        let (s, e) = (&self.steps[slot as usize], &self.extras[slot as usize]);
        let gen_ = self.entry_gens[slot as usize].wrapping_add(1);
        self.entry_gens[slot as usize] = gen_;
        let features = self.kinds[s.kind as usize].features.len();
        let key = self.order.queue_key(KeyParts {
            global_priority: e.global_priority,
            priority: e.priority,
            features,
            rdeps: e.rdeps,
            build_id: e.build_id,
            step_id: s.step_id,
            slot,
            queue_gen: gen_,
        });
        self.runnable.push(s.kind, s.jobset, key);
        self.dispatch_needed = true;
    }

    /// Takes the list of steps waiting for the step in `slot`, in order,
    /// into a buffer to give back with [`Hydra::give_back`].
    #[inline(always)]
    fn take_dependents(&mut self, slot: u32) -> Vec<(u32, u64)> {
        if self.steps[slot as usize].flags & HAS_DEPENDENTS == 0 {
            return Vec::new();
        }
        self.take_listed_dependents(slot)
    }

    #[inline(never)]
    fn take_listed_dependents(&mut self, slot: u32) -> Vec<(u32, u64)> {
        let mut out = self.spare_lists.pop().unwrap_or_default();
        self.steps[slot as usize].flags &= !HAS_DEPENDENTS;
        self.waiting.drain_into(&mut self.extras[slot as usize].dependents, &mut out);
        out
    }

    fn give_back(&mut self, mut list: Vec<(u32, u64)>) {
        if list.capacity() > 0 {
            list.clear();
            self.spare_lists.push(list);
        }
    }

    /// Whether `serial` still names the step in `slot`.
    fn is_live(&self, slot: u32, serial: u64) -> bool {
        let s = &self.steps[slot as usize];
        s.state != StepState::Left && s.serial == serial
    }

    /// Whether a queue entry is the live entry of a queued step.
    fn is_live_entry(entry_gens: &[u32], key: &QueueKey) -> bool {
        entry_gens[key.slot as usize] == key.queue_gen
    }

    /// The slot's live queue entry, if any, goes stale.
    fn invalidate_entries(&mut self, slot: u32) {
        let g = &mut self.entry_gens[slot as usize];
        *g = g.wrapping_add(1);
    }

    /// Steps that can never run because a dependency failed, transitively.
    fn cancel_for_failed_dependency(&mut self, slot: u32, serial: u64) {
        let mut stack = self.spare_lists.pop().unwrap_or_default();
        stack.push((slot, serial));
        while let Some((s, serial)) = stack.pop() {
            if !self.is_live(s, serial) {
                continue;
            }
            if self.steps[s as usize].flags & HAS_DEPENDENTS != 0 {
                self.steps[s as usize].flags &= !HAS_DEPENDENTS;
                self.waiting.drain_into(&mut self.extras[s as usize].dependents, &mut stack);
            }
            self.resolve(s, StepEnd::NeverStarted(DEPENDENCY_FAILED), None);
        }
        self.give_back(stack);
    }

    /// Reports a step that leaves the model; steps waiting for one that did
    /// not succeed can never start.
    fn resolve(&mut self, slot: u32, end: StepEnd, finished_at: Option<SimTime>) {
        let blocks_dependents = match end {
            StepEnd::Failed | StepEnd::GaveUp => true,
            StepEnd::NeverStarted(reason) => reason != HORIZON,
            _ => false,
        };
        // Dependents of a step that ends otherwise (at the end of the run)
        // are let go.
        let mut dependents = self.take_dependents(slot);
        if !blocks_dependents {
            dependents.clear();
        }
        self.invalidate_entries(slot);
        let s = &self.steps[slot as usize];
        if self.keep_records {
            let first_start = self.extras[slot as usize].first_start;
            self.records.push(StepRecord {
                step_id: s.step_id,
                kind: s.kind,
                jobset: s.jobset,
                runnable_at: (s.runnable_at >= 0).then_some(SimTime(s.runnable_at)),
                started_at: (first_start >= 0).then_some(SimTime(first_start)),
                finished_at,
                machine: (s.machine != u32::MAX).then_some(s.machine),
                attempts: u32::from(s.attempts),
                end,
            });
        }
        let c = &mut self.counters;
        match end {
            StepEnd::Succeeded => c.succeeded += 1,
            StepEnd::Failed => c.failed += 1,
            StepEnd::GaveUp => c.gave_up += 1,
            StepEnd::NeverStarted(reason) => *c.never_started.entry(reason).or_default() += 1,
            StepEnd::RunningAtEnd => c.running_at_end += 1,
            StepEnd::RetryingAtEnd => c.retrying_at_end += 1,
        }
        if blocks_dependents && self.failed_ids.insert(s.step_id) {
            self.failed_order.push_back(s.step_id);
            if self.failed_order.len() > FAILED_IDS_KEPT
                && let Some(oldest) = self.failed_order.pop_front()
            {
                self.failed_ids.remove(&oldest);
            }
        }
        if s.flags & IN_EVALUATION != 0 {
            let eval = self.extras[slot as usize].eval;
            let cut_short =
                matches!(end, StepEnd::RunningAtEnd | StepEnd::RetryingAtEnd | StepEnd::NeverStarted(HORIZON));
            self.evaluations.left(eval, finished_at.map(|t| t.0), cut_short);
        }
        self.by_id.remove(s.step_id);
        self.steps[slot as usize].state = StepState::Left;
        self.free_slots.push(slot);
        for &(d, id) in &dependents {
            self.cancel_for_failed_dependency(d, id);
        }
        self.give_back(dependents);
    }

    /// The heap holding the best queued step a machine of `class` supports.
    fn best_for_class(&mut self, class: u32) -> Option<u32> {
        let mut best: Option<u32> = None;
        for i in 0..self.classes[class as usize].served_kinds.len() {
            let k = self.classes[class as usize].served_kinds[i];
            let Some(h) = self.runnable.best(k) else { continue };
            if best.is_none_or(|b| self.runnable.better(h, b)) {
                best = Some(h);
            }
        }
        best
    }

    /// Assigns runnable steps to free slots until no machine takes one.
    #[inline(always)]
    pub fn dispatch(&mut self, now: SimTime) {
        self.dispatch_needed = false;
        if self.queued > 0 && self.free_active_slots > 0 {
            self.dispatch_to_free_slots(now);
        }
    }

    #[inline(never)]
    fn dispatch_to_free_slots(&mut self, now: SimTime) {
        self.runnable.expire(now);
        while self.free_active_slots > 0 && self.queued > 0 {
            // The first free machine in Hydra's order among the classes that
            // support a queued step; it takes its class's best step.
            let mut best: Option<(MachineOrder, u32)> = None;
            self.work += self.classes.len() as u64;
            // The classes with a free machine, in class order (so ties go
            // to the first, as in a scan of every class); a word at a time,
            // copied, since `best` below updates the free sets.
            for w in 0..self.free.class_words() {
                let mut word = self.free.classes_with_free(w);
                while word != 0 {
                    let c = (w * 64) as u32 + word.trailing_zeros();
                    word &= word - 1;
                    debug_assert!(self.free.free(c) > 0);
                    let class = &self.classes[c as usize];
                    if !class.served_kinds.iter().any(|&k| self.runnable.has(k)) {
                        continue;
                    }
                    let Some(key) = self.free.best(c) else { continue };
                    // Every machine of a class has its spec's speed factor.
                    let speed = class.spec.speed_factor;
                    let order = (key.load, Reverse(speed.to_bits()), key.jobs, key.machine);
                    if best.as_ref().is_none_or(|b| order < b.0) {
                        best = Some((order, c));
                    }
                }
            }
            let Some(((_, _, _, machine), class)) = best else { break };
            let Some(heap) = self.best_for_class(class) else { break };
            let entry_gens = &self.entry_gens;
            let Some(entry) = self.runnable.pop(heap, |k| Self::is_live_entry(entry_gens, k)) else { break };
            debug_assert!(Self::is_live_entry(&self.entry_gens, &entry), "dispatch popped a stale entry");
            debug_assert_eq!(self.steps[entry.slot as usize].state, StepState::Queued);
            self.invalidate_entries(entry.slot);
            self.queued -= 1;
            // The heap's next step is likely the next one started.
            if let Some(next) = self.runnable.head(heap) {
                prefetch_at(&self.steps, next.slot as usize);
            }
            self.start(entry.slot, machine, now);
        }
    }

    fn start(&mut self, slot: u32, machine: u32, now: SimTime) {
        let m = &mut self.machines[machine as usize];
        if m.current_jobs == 0 {
            m.busy_since = Some(now.0);
        }
        let before = m.current_jobs;
        m.current_jobs += 1;
        m.running.push(slot);
        let duration_ms = self.steps[slot as usize].duration_ms;
        // Dividing by 1 and rounding gives the duration back; skip the rounding call.
        let run_ms =
            if m.speed_factor == 1.0 { duration_ms } else { ((duration_ms as f64) / m.speed_factor).round() as i64 };
        let requested_at = m.requested_at;
        let provisioned = m.provisioned;
        self.jobs_changed(machine, before);
        let s = &mut self.steps[slot as usize];
        s.state = StepState::Running;
        s.machine = machine;
        let first = s.attempts == 0;
        s.attempts += 1;
        s.attempt_start = now.0;
        s.charge_ticket = self.runnable.attempt_started(s.jobset, now.0);
        if first {
            if self.keep_records {
                self.extras[slot as usize].first_start = now.0;
            }
            let waited_for_boot = provisioned && requested_at > s.runnable_at;
            self.waits.record(now.0 - s.runnable_at, s.kind, s.jobset, waited_for_boot);
            self.counters.started += 1;
        }
        let kind = &mut self.kinds[s.kind as usize];
        kind.runnable -= 1;
        kind.running += 1;
        self.counters.attempts_started += 1;
        let (attempt, serial) = (u32::from(s.attempts), s.serial);
        let copy_ms = self.copy_to_builder(slot);
        self.scheduled.push((now.plus_ms(copy_ms).plus_ms(run_ms), HydraEvent::StepDone { serial, slot, attempt }));
    }

    /// Takes a step off its machine (finished or aborted); returns its run time.
    fn leave_machine(&mut self, slot: u32, now: SimTime) -> i64 {
        let s = &self.steps[slot as usize];
        let ran = now.0 - s.attempt_start;
        let kind = s.kind as usize;
        let machine = s.machine;
        let m = &mut self.machines[machine as usize];
        if let Some(i) = m.running.iter().position(|&r| r == slot) {
            m.running.swap_remove(i);
        }
        let before = m.current_jobs;
        m.current_jobs = m.current_jobs.saturating_sub(1);
        m.job_ms = m.job_ms.saturating_add(ran);
        if m.current_jobs == 0 {
            m.idle_since = now.0;
            if let Some(since) = m.busy_since.take() {
                m.busy_ms = m.busy_ms.saturating_add(now.0.saturating_sub(since));
            }
        }
        self.jobs_changed(machine, before);
        let k = &mut self.kinds[kind];
        k.running -= 1;
        k.last_active = Some(now.0);
        self.dispatch_needed = true;
        ran
    }

    fn abort(&mut self, slot: u32, now: SimTime) {
        self.attempt_cut_short(slot, now);
        let ran = self.leave_machine(slot, now);
        let s = &self.steps[slot as usize];
        self.runnable.charge(s.charge_ticket, s.jobset, ran);
        self.counters.aborted += 1;
        self.back_off_or_give_up(slot, now);
    }

    fn back_off_or_give_up(&mut self, slot: u32, now: SimTime) {
        let s = &mut self.steps[slot as usize];
        if u32::from(s.attempts) >= MAX_ATTEMPTS {
            return self.give_up(slot, now);
        }
        s.state = StepState::Backoff;
        let (attempt, serial) = (u32::from(s.attempts), s.serial);
        self.kinds[s.kind as usize].runnable += 1;
        let due = now.plus_ms(retry_delay_ms(attempt));
        self.scheduled.push((due, HydraEvent::RetryDue { serial, slot, attempt }));
    }

    fn give_up(&mut self, slot: u32, now: SimTime) {
        self.resolve(slot, StepEnd::GaveUp, Some(now));
    }

    /// Handles an event scheduled earlier; stale ones are ignored.
    pub fn handle(&mut self, event: HydraEvent, now: SimTime) {
        match event {
            HydraEvent::StepDone { serial, slot, attempt } => {
                if !self.is_current(slot, serial, attempt, StepState::Running) {
                    return;
                }
                // What finishing reads and writes, loaded together rather
                // than one miss after another.
                let s = &self.steps[slot as usize];
                let machine = &self.machines[s.machine as usize];
                self.runnable.prefetch_charge(s.charge_ticket);
                self.by_id.prefetch(s.step_id);
                prefetch_at(&machine.running, 0);
                if machine.silent {
                    // Its builder hangs: the runner hears nothing until it drops it.
                    return;
                }
                if self.outputs_to_receive(slot, now) {
                    return;
                }
                let ran = self.leave_machine(slot, now);
                let s = &mut self.steps[slot as usize];
                s.state = StepState::Waiting;
                let (jobset, outcome, attempts, ticket) = (s.jobset, s.outcome, s.attempts, s.charge_ticket);
                let machine = s.machine;
                self.machines[s.machine as usize].steps_done += 1;
                self.counters.attempts_finished += 1;
                self.runnable.charge(ticket, jobset, ran);
                self.attempt_ended_on(machine, outcome == Outcome::Machine && attempts == 1, now);
                match outcome {
                    Outcome::Transient | Outcome::Machine if attempts == 1 => self.back_off_or_give_up(slot, now),
                    Outcome::Failure => self.resolve(slot, StepEnd::Failed, Some(now)),
                    _ => self.succeed(slot, now),
                }
            }
            HydraEvent::RetryDue { serial, slot, attempt } => {
                if !self.is_current(slot, serial, attempt, StepState::Backoff) {
                    return;
                }
                self.counters.retries += 1;
                self.enqueue(slot);
            }
            HydraEvent::Later(e) => self.handle_later(e, now),
        }
    }

    /// The step succeeded: it leaves, and the steps waiting for it may become runnable.
    fn succeed(&mut self, slot: u32, now: SimTime) {
        let dependents = self.take_dependents(slot);
        for &(d, _) in &dependents {
            self.prefetch_step(d);
        }
        self.resolve(slot, StepEnd::Succeeded, Some(now));
        for &(d, serial) in &dependents {
            if !self.is_live(d, serial) {
                continue;
            }
            let de = &mut self.extras[d as usize];
            de.unfinished_deps -= 1;
            if de.unfinished_deps == 0 {
                self.make_runnable(d, now);
            }
        }
        self.give_back(dependents);
    }

    /// The records of the step in `slot` (its record, its extra record and
    /// its queue generation) start on their way into the cache: it is the
    /// step the next event is about, the next arrival's slot, or a
    /// dependent about to be woken and queued.
    #[inline(always)]
    pub fn prefetch_step(&self, slot: u32) {
        prefetch_at(&self.steps, slot as usize);
        prefetch_at(&self.extras, slot as usize);
        prefetch_at(&self.entry_gens, slot as usize);
    }

    /// Whether an event scheduled for this attempt still applies (lazy cancellation).
    fn is_current(&self, slot: u32, serial: u64, attempt: u32, state: StepState) -> bool {
        let s = &self.steps[slot as usize];
        s.serial == serial && u32::from(s.attempts) == attempt && s.state == state
    }

    /// Ends the run: every step still in the model is reported.
    pub fn finish(&mut self, now: SimTime) {
        let mut live: Vec<(u64, u32)> = self.by_id.iter().collect();
        live.sort_unstable();
        for (id, slot) in live {
            let s = &self.steps[slot as usize];
            if s.state == StepState::Left || s.step_id != id {
                continue;
            }
            let end = match s.state {
                StepState::Running | StepState::Uploading => StepEnd::RunningAtEnd,
                _ if s.attempts > 0 => StepEnd::RetryingAtEnd,
                _ => StepEnd::NeverStarted(HORIZON),
            };
            if s.state == StepState::Running {
                // Count its time so far as busy time.
                let ran = now.0 - s.attempt_start;
                let m = &mut self.machines[s.machine as usize];
                m.job_ms = m.job_ms.saturating_add(ran);
            }
            self.resolve(slot, end, None);
        }
        for m in &mut self.machines {
            if let Some(since) = m.busy_since.take() {
                m.busy_ms = m.busy_ms.saturating_add(now.0.saturating_sub(since));
            }
        }
    }

    /// What [`crate::status::parse_status_value`] makes of
    /// [`Hydra::status_json`]'s document, built without the document and
    /// written over `status`, the last one built with `layout`: the
    /// simulator reads this on most passes and checks it against the round
    /// trip on the others (see `sim/mod.rs`). While the same types and
    /// machines are listed, the values are overwritten in the maps' key
    /// order as `layout` remembers it, without a key looked up, copied or
    /// freed; otherwise the maps are built afresh and `layout` learns their
    /// order.
    pub fn status_in_place(
        &self,
        status: &mut QueueStatus,
        layout: &mut StatusLayout,
        epoch: i64,
        now: SimTime,
        uptime_s: i64,
        with_last_active: bool,
    ) {
        let unix = |ms: i64| epoch.saturating_add(ms.div_euclid(1000));
        let type_status = |k: &Kind| {
            let last_active =
                k.last_active.filter(|_| with_last_active && k.running == 0).map(unix).filter(|&t| t != 0);
            TypeStatus { runnable: k.runnable, running: k.running, last_active }
        };
        match &layout.kinds_by_key {
            Some(order) if order.len() == self.kinds.len() && order.len() == status.machine_types.len() => {
                for (t, &k) in status.machine_types.values_mut().zip(order) {
                    *t = type_status(&self.kinds[k as usize]);
                }
            }
            _ => {
                let mut types = BTreeMap::new();
                for k in &self.kinds {
                    types.insert(k.key.clone(), type_status(k));
                }
                crate::status::squash_i686(&mut types);
                // Each kind has its own entry unless keys repeat or i686 ones were folded.
                let one_each =
                    types.len() == self.kinds.len() && !self.kinds.iter().any(|k| k.key.starts_with("i686-linux"));
                layout.kinds_by_key = one_each.then(|| {
                    let mut order: Vec<u32> = (0..self.kinds.len() as u32).collect();
                    order.sort_unstable_by(|&a, &b| self.kinds[a as usize].key.cmp(&self.kinds[b as usize].key));
                    order
                });
                status.machine_types = types;
            }
        }
        let builder = |m: &Machine| {
            let idle_since = Some(unix(m.idle_since)).filter(|&t| m.current_jobs == 0 && t != 0);
            BuilderStatus { enabled: m.enabled, current_jobs: u64::from(m.current_jobs), idle_since }
        };
        let listed_now = || self.machines.iter().enumerate().filter(|(_, m)| m.in_cpp_status()).map(|(i, _)| i as u32);
        let unchanged = layout.machines_by_key.as_ref().is_some_and(|o| o.len() == status.machines.len())
            && listed_now().eq(layout.listed.iter().copied());
        match &layout.machines_by_key {
            Some(order) if unchanged => {
                for (b, &m) in status.machines.values_mut().zip(order) {
                    *b = builder(&self.machines[m as usize]);
                }
            }
            _ => {
                layout.listed = listed_now().collect();
                let mut machines = BTreeMap::new();
                for &i in &layout.listed {
                    let m = &self.machines[i as usize];
                    machines.insert(m.host.clone(), builder(m));
                }
                // Hosts are unique unless the file repeats one; then the last wins, and the map is rebuilt every time.
                layout.machines_by_key = (machines.len() == layout.listed.len()).then(|| {
                    let mut order = layout.listed.clone();
                    order
                        .sort_unstable_by(|&a, &b| self.machines[a as usize].host.cmp(&self.machines[b as usize].host));
                    order
                });
                status.machines = machines;
            }
        }
        // The maps move into an "up" status as the parser makes one; taking
        // them out of the old one allocates nothing.
        let (machine_types, machines) =
            (std::mem::take(&mut status.machine_types), std::mem::take(&mut status.machines));
        let active_steps: u64 = self.kinds.iter().map(|k| k.running).sum();
        *status = crate::status::up(Some(unix(now.0)), uptime_s, (true, machine_types), machines, Some(active_steps));
    }

    /// The status document as `hydra-queue-runner --status` prints it at
    /// `now`, with times in Unix seconds (`epoch` is the Unix time of the
    /// trace's zero).
    pub fn status_json(&self, epoch: i64, now: SimTime, uptime_s: i64, with_last_active: bool) -> Value {
        let unix = |ms: i64| epoch.saturating_add(ms.div_euclid(1000));
        let now_s = unix(now.0);
        let mut types = Map::new();
        let mut runnable_total = 0;
        let mut running_total = 0;
        for k in &self.kinds {
            let mut t = Map::new();
            t.insert("runnable".into(), json!(k.runnable));
            t.insert("running".into(), json!(k.running));
            if let Some(at) = k.last_active.filter(|_| with_last_active && k.running == 0) {
                t.insert("lastActive".into(), json!(unix(at)));
            }
            runnable_total += k.runnable;
            running_total += k.running;
            types.insert(k.key.clone(), Value::Object(t));
        }
        let mut machines = Map::new();
        for (i, m) in self.machines.iter().enumerate() {
            if !m.in_cpp_status() {
                continue;
            }
            let mut o = Map::new();
            self.health.status_fields(i as u32, &mut o, unix);
            o.insert("enabled".into(), json!(m.enabled));
            o.insert("currentJobs".into(), json!(m.current_jobs));
            if m.current_jobs == 0 {
                o.insert("idleSince".into(), json!(unix(m.idle_since)));
            }
            o.insert("nrStepsDone".into(), json!(m.steps_done));
            o.insert("maxJobs".into(), json!(m.max_jobs));
            machines.insert(format!("ssh://root@{}", m.host), Value::Object(o));
        }
        let mut jobsets = Map::new();
        for (i, j) in self.jobsets.iter().enumerate() {
            let (window_ms, shares) = self.runnable.share(i as u32);
            let used = window_ms as f64 / 1000.0 / shares as f64;
            let seconds = i64::try_from(window_ms / 1000).unwrap_or(i64::MAX);
            jobsets.insert(
                j.name.clone(),
                json!({"shareUsed": crate::metrics::round3(used), "seconds": seconds, "shares": shares}),
            );
        }
        json!({
            "status": "up",
            "time": now_s,
            "uptime": uptime_s,
            "nrRunnableSteps": runnable_total,
            "nrActiveSteps": running_total,
            "nrUnfinishedSteps": self.by_id.len(),
            "machineTypes": types,
            "machines": machines,
            "jobsets": jobsets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MachineType;

    fn spec(line: &str) -> MachineSpec {
        MachineSpec::parse_machines_line(line).unwrap().1
    }

    #[test]
    fn retry_back_off_is_60_times_powers_of_3() {
        assert_eq!([1, 2, 3, 4].map(retry_delay_ms), [60_000, 180_000, 540_000, 1_620_000]);
    }

    #[test]
    fn provisioned_lines_support_what_machine_type_serves() {
        let none = BTreeSet::new();
        let bench: BTreeSet<String> = ["benchmark".to_string()].into();
        let kvm_bp: BTreeSet<String> = ["big-parallel".to_string(), "kvm".to_string()].into();
        for (key, line) in [
            ("x86_64-linux:benchmark", "root@h x86_64-linux,i686-linux - 1 1 benchmark benchmark -"),
            ("x86_64-linux", "root@h x86_64-linux,i686-linux - 4 1 - - -"),
            ("x86_64-linux:big-parallel,kvm", "root@h x86_64-linux - 1 1 big-parallel,kvm big-parallel,kvm -"),
        ] {
            let t = MachineType::parse(key).unwrap();
            let s = spec(line);
            for req in [&none, &bench, &kvm_bp] {
                assert_eq!(s.supports("x86_64-linux", req), t.serves("x86_64-linux", req), "{key} {req:?}");
            }
        }
        let static_builder = spec("ssh://root@s x86_64-linux - 8 2 big-parallel,kvm - -");
        assert!(static_builder.supports("x86_64-linux", &none));
        assert!(static_builder.supports("x86_64-linux", &kvm_bp));
        assert_eq!(static_builder.speed_factor, 2.0);
        assert!(MachineSpec::parse_machines_line("  # comment").is_none());
    }

    #[test]
    fn an_aborted_attempt_is_charged_to_its_jobset_like_a_finished_one() {
        // Hydra's builder charges `stopTime - startTime` whatever the result,
        // aborts included (builder.cc, before `if (result.canRetry)`).
        let mut hydra = Hydra::new(BTreeMap::new());
        let m = hydra.add_machine("static".into(), spec("static x86_64-linux - 1 1 - - -"), SimTime(0), false);
        let mut trace = crate::trace::TraceReader::new(
            "step_id,submitted_at,system,duration,jobset\n1,0,x86_64-linux,1000,p:j\n".as_bytes(),
            "t",
        );
        let row = crate::trace::StepSource::next_step(&mut trace).unwrap().unwrap();
        hydra.arrive(&row, crate::trace::StepSource::symbols(&trace), SimTime(0)).unwrap();
        hydra.dispatch(SimTime(0));
        hydra.set_alive(m, false, SimTime(100_000));
        assert_eq!(hydra.counters.aborted, 1);
        let status = hydra.status_json(0, SimTime(100_000), 0, false);
        assert_eq!(status["jobsets"]["p:j"]["seconds"], 100, "{status}");
    }

    #[test]
    fn a_machine_respecified_by_the_machines_file_takes_only_what_its_new_line_offers() {
        let plain = spec("h x86_64-linux - 1 1 - - -");
        let kvm_only = spec("h x86_64-linux - 1 1 kvm kvm -");
        let mut hydra = Hydra::new(BTreeMap::new());
        hydra.add_class(plain.clone(), true);
        let m = hydra.add_machine("h".into(), plain.clone(), SimTime(0), true);
        let other = hydra.add_machine("g".into(), plain.clone(), SimTime(0), true);
        let file: BTreeMap<String, MachineSpec> =
            [("h".to_string(), plain.clone()), ("g".to_string(), plain.clone())].into();
        hydra.apply_machines_file(|_, host| file.get(host));
        hydra.set_alive(m, true, SimTime(0));
        hydra.set_alive(other, true, SimTime(0));
        let file: BTreeMap<String, MachineSpec> = [("h".to_string(), kvm_only), ("g".to_string(), plain)].into();
        hydra.apply_machines_file(|_, host| file.get(host));
        let mut trace = crate::trace::TraceReader::new(
            "step_id,submitted_at,system,duration\n1,0,x86_64-linux,10\n".as_bytes(),
            "t",
        );
        let row = crate::trace::StepSource::next_step(&mut trace).unwrap().unwrap();
        hydra.arrive(&row, crate::trace::StepSource::symbols(&trace), SimTime(0)).unwrap();
        hydra.dispatch(SimTime(0));
        assert_eq!(hydra.machines[m as usize].current_jobs, 0, "a kvm-only machine took a plain step");
        assert_eq!(hydra.machines[other as usize].current_jobs, 1);
    }

    proptest::proptest! {
        /// A status written over the last one, its layout remembered, is the
        /// one built afresh, whatever machines come, go or repeat a host and
        /// whatever types (i686 ones folded included) queue meanwhile.
        #[test]
        fn a_status_written_in_place_is_the_one_built_afresh(
            ops in proptest::collection::vec((0u8..6, 0usize..8), 1..60),
        ) {
            let systems = ["i686-linux", "riscv64-linux", "x86_64-linux", "aarch64-linux", "i686-linux"];
            let mut csv = String::from("step_id,submitted_at,system,duration\n");
            for i in 0..60 {
                csv.push_str(&format!("{},0,{},{}\n", i + 1, systems[i % systems.len()], 1000 * (i % 7 + 1)));
            }
            let mut trace = crate::trace::TraceReader::new(csv.as_bytes(), "t");
            let hosts = ["10.0.0.9", "10.0.0.10", "b", "a", "10.0.0.9"];
            let line = |host: &str| spec(&format!("{host} x86_64-linux,i686-linux,aarch64-linux - 2 1 - - -"));
            let mut hydra = Hydra::new(BTreeMap::new());
            let mut machines = vec![hydra.add_machine("static".into(), line("static"), SimTime(0), false)];
            let (mut status, mut layout) = (QueueStatus::down(""), StatusLayout::default());
            for (t, (op, n)) in ops.into_iter().enumerate() {
                let now = SimTime(t as i64 * 1000);
                match op {
                    0 => {
                        let host = hosts[n % hosts.len()];
                        let m = hydra.add_machine(host.into(), line(host), now, true);
                        hydra.set_alive(m, true, now);
                        machines.push(m);
                    }
                    1 => hydra.set_alive(machines[n % machines.len()], n % 2 == 0, now),
                    2 => hydra.remove_machine(machines[n % machines.len()], now),
                    3 | 4 => {
                        if let Some(row) = crate::trace::StepSource::next_step(&mut trace) {
                            hydra.arrive(&row.unwrap(), crate::trace::StepSource::symbols(&trace), now).unwrap();
                        }
                    }
                    _ => hydra.dispatch(now),
                }
                hydra.status_in_place(&mut status, &mut layout, 1_000, now, t as i64, n % 2 == 0);
                let mut afresh = QueueStatus::down("stale");
                hydra.status_in_place(&mut afresh, &mut StatusLayout::default(), 1_000, now, t as i64, n % 2 == 0);
                proptest::prop_assert_eq!(&status, &afresh);
            }
        }
    }
}
