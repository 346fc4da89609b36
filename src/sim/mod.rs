//! The discrete-event simulator: a trace of build steps replayed through a
//! model of Hydra's queue runner ([`hydra`]) and of a cloud, with the real
//! scaling engine ([`crate::engine::decide`]) deciding the fleet every
//! provisioner interval, exactly as in production.
//!
//! Time is virtual ([`SimTime`], integer milliseconds); randomness comes from
//! one ChaCha8 generator seeded by the scenario, drawn in a fixed order. Same
//! scenario, trace and seed give the same run, byte for byte.
//!
//! **Event order.** Pending events sit in a binary heap keyed by (time,
//! sequence number), the sequence number counting schedulings, so events at
//! the same millisecond run in the order they were scheduled; stale events
//! (for a step attempt or an instance that no longer exists) are dropped when
//! they come up (lazy cancellation). Trace rows are not pushed into the heap:
//! the sorted trace is streamed and merged with it, and at equal times the
//! heap's events run before the trace's rows. Hydra dispatches once all
//! events and rows of a millisecond have been handled.
//!
//! **Provisioner pass.** At each pass the simulator builds the queue status
//! the engine sees, as [`crate::status::parse_status_value`] reads the
//! document Hydra prints; it builds that document and checks the round trip
//! on the passes [`status_checked`] names (all of them when an observer
//! records passes), and the fleet as NixOps shows it,
//! calls the engine, and carries out the plan as NixOps would: starts boot
//! (lognormal delays); deploys run `deployConcurrency` at a time (one at a
//! time under the original quirks, see [`shell`]), a created machine's
//! instance being launched, and billed, from its first deploy as `nixops
//! deploy` does, and a stopped machine being started by its deploy before
//! it is deployed (a vanished one fails); the pass ends when
//! the last deploy ends; then the machines file rendered from
//! `plan.listings` (failed deploys left out) is written and Hydra rereads it
//! `reload_delay` later, and stops and destroys take effect (aborting
//! running steps, which Hydra retries after its back-off). Under the
//! original quirks a stop does nothing: the original's `stop` waited for a
//! confirmation nobody gave, so the machine keeps running and billing, and
//! the summary counts the refused stops. The next pass
//! starts `interval` after the end of this one, like the original's loop.
//!
//! This module does no I/O: results go to an [`Observer`] and a
//! [`Summary`]; files, terminals and progress bars belong to the CLI.

pub mod hydra;
pub mod input;
mod prefetch;
mod queue;
mod rust_runner;
pub mod scenario;
pub mod server;
pub mod shell;
mod slots;
mod step_index;
pub mod time;

pub use scenario::{
    CloudType, Era, Market, RustRunnerModel, Scenario, ScenarioError, ServerSection, StaticMachine, Window,
};
pub use time::SimTime;

use crate::billing::BillingModel;
use crate::engine::{self, Command, Plan};
use crate::metrics::{self, Cost, Inputs, Stability, StepCounts, Summary, TypeCost};
use crate::model::{Deployment, Fleet, MachineMemory, MachineState, Observation, QueueStatus};
use crate::status;
use crate::trace::background::Loaded;
use crate::trace::{IdHasher, StepRow, StepSource, TraceError};
use hydra::{Hydra, HydraEvent, MachineSpec, StepEnd};
use input::Rows;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use shell::ShellRules;
use smol_str::SmolStr;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;
use std::rc::Rc;

/// A spot instance's warning before it is taken away.
pub const SPOT_NOTICE_MS: i64 = 120_000;
/// Without a horizon, a run stops at the latest this long after the last arrival.
pub const DRAIN_LIMIT_MS: i64 = 30 * 24 * 3_600_000;
/// Time to touch the keep-alive file of an up-to-date machine.
const TOUCH_MS: i64 = 1_000;

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{source_name}: {message}")]
    BadStep { source_name: String, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// One step's line in the per-step report.
#[derive(Debug, Clone)]
pub struct StepLine<'a> {
    pub step_id: u64,
    pub machine_type: &'a str,
    pub jobset: &'a str,
    pub runnable_at: Option<SimTime>,
    pub started_at: Option<SimTime>,
    pub finished_at: Option<SimTime>,
    pub machine: Option<&'a str>,
    /// The provisioned instance of the last attempt (see [`MachineEvent::instance`]);
    /// `None` for a static machine.
    pub instance: Option<u32>,
    pub attempts: u32,
    pub end: &'static str,
    /// Indices that name `machine_type`, `jobset` and `machine` for the
    /// whole run: an index never names another string, so an observer may
    /// keep a name by its index.
    pub kind_index: u32,
    pub jobset_index: u32,
    pub machine_index: Option<u32>,
}

/// Something that happened to a provisioned machine.
#[derive(Debug, Clone)]
pub struct MachineEvent<'a> {
    pub at: SimTime,
    /// The instance, numbered from 1 in creation order for the run. Deployment
    /// names are reused once their machine is destroyed; this number is not,
    /// and a stopped and restarted instance keeps it.
    pub instance: u32,
    /// The NixOps deployment's name.
    pub machine: &'a str,
    pub machine_type: &'a str,
    pub event: &'a str,
}

/// Receives the run's detailed results as they happen. Every method has an
/// empty default.
pub trait Observer {
    /// Whether [`Observer::step`] wants the per-step lines (building them costs time).
    fn wants_steps(&self) -> bool {
        true
    }
    /// Whether [`Observer::pass`] wants every pass's status document
    /// (building it as JSON costs time; see [`status_checked`]).
    fn wants_passes(&self) -> bool {
        true
    }
    /// Whether [`Observer::sample`] wants the per-pass figures (counting
    /// them per type costs a map per pass).
    fn wants_samples(&self) -> bool {
        true
    }
    fn step(&mut self, _line: &StepLine<'_>) {}
    fn sample(&mut self, _at: SimTime, _metric: &str, _key: &str, _value: u64) {}
    fn lifecycle(&mut self, _at: SimTime, _machine: &str, _machine_type: &str, _event: &str) {}
    /// A machine's event with its instance number; by default handed on to
    /// [`Observer::lifecycle`].
    fn machine_event(&mut self, e: &MachineEvent<'_>) {
        self.lifecycle(e.at, e.machine, e.machine_type, e.event)
    }
    /// The status document, observation and plan of pass `index` (from 1).
    fn pass(&mut self, _index: u64, _status: &serde_json::Value, _observation: &Observation, _plan: &Plan) {}
    fn progress(&mut self, _at: SimTime, _steps_arrived: u64) {}
    /// At every pass when the scenario models the server: the figures of
    /// [`SERVER_FIGURES`], in that order.
    fn server_sample(&mut self, _at: SimTime, _figures: [u64; SERVER_FIGURES.len()]) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {
    fn wants_steps(&self) -> bool {
        false
    }
    fn wants_passes(&self) -> bool {
        false
    }
    fn wants_samples(&self) -> bool {
        false
    }
}

/// The figures sampled per type at every pass, in the order they are
/// reported ([`Observer::sample`]'s `metric`, with the type as `key`):
/// runnable and running steps of the type, its provisioned machines by state
/// (starting, up, stopped, missing), those listed in the machines file,
/// their slots (listed machines times maxJobs) and the slots busy.
pub const SERIES_FIGURES: [&str; 9] = [
    "runnable",
    "running",
    "machines_starting",
    "machines_up",
    "machines_stopped",
    "machines_missing",
    "machines_listed",
    "slots",
    "busy_slots",
];

/// The server's figures sampled at every pass (`server.csv`): local worker
/// threads busy, pieces of local work waiting for one (requests for
/// attempts that ended included, until they reach the head of the line), and
/// steps built whose outputs are not uploaded yet.
pub const SERVER_FIGURES: [&str; 3] = ["local_workers_busy", "local_work_waiting", "upload_backlog"];

/// Whether pass `index` (from 1) checks the status the simulator builds for
/// the engine against the document Hydra would print, read back through the
/// production parser (`status::parse_status_value`). Every pass is checked
/// when an observer records the documents (`--record-passes`, and the
/// tests); otherwise passes 1, 2, 4, 8, ... and every 64th, so that a run of
/// any length checks the round trip at least 1 + 1/64 of its passes and its
/// first ones. A difference ends the run with an internal error (exit 1): it
/// would mean the engine was shown something production could not see.
pub fn status_checked(index: u64) -> bool {
    index.is_power_of_two() || index.is_multiple_of(64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Hydra(HydraEvent),
    Pass,
    PassEnd,
    MachinesFileRead { version: u64 },
    SpotNotice { machine: u32, generation: u32 },
    SpotTerminate { machine: u32, generation: u32 },
    Rust(rust_runner::RustEvent),
}

/// An event waiting in the heap. Ordered by time, then by when it was
/// scheduled (`seq`), earliest first; the event itself is never compared.
#[derive(Debug, Clone, Copy)]
struct Pending {
    at: SimTime,
    seq: u64,
    event: Event,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Pending) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so that std's max-heap pops the earliest first.
    fn cmp(&self, other: &Pending) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A provisioned instance. Its NixOps deployment, as the engine sees it, is
/// the entry of `Simulation::observation`'s fleet at the same position as
/// the instance in `Simulation::live`.
struct Instance {
    name: SmolStr,
    machine_type: SmolStr,
    ip: String,
    host_key: String,
    /// Stopped, missing (interrupted) or destroyed; otherwise running.
    state: InstanceState,
    launch_s: i64,
    ready_at: SimTime,
    run_start: Option<SimTime>,
    stopped_since: Option<SimTime>,
    billed_ms: i64,
    storage_ms: i64,
    /// Bumped whenever the instance stops running, to cancel its pending events.
    generation: u32,
    hydra: Option<u32>,
    deployed_since_boot: bool,
    /// Created but not launched yet: NixOps launches the instance in the
    /// first deploy, after this boot delay.
    launch_pending: Option<i64>,
    billing: BillingModel,
    price: f64,
    storage_price: f64,
    max_jobs: u32,
    cloud: CloudType,
    /// Its address is in the machines file Hydra read last.
    in_file: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceState {
    Running,
    Stopped,
    Missing,
    Destroyed,
}

struct DeployResult {
    machine: u32,
    fingerprint: SmolStr,
    done_at: SimTime,
    ok: bool,
}

struct PendingPass {
    plan: Plan,
    deploys: Vec<DeployResult>,
    write_file: bool,
}

/// A machines file as Hydra reads it: each listed instance with what its
/// line offers, in the order of their addresses (the hosts' order in which
/// Hydra meets new machines), and found again by instance rather than by
/// comparing addresses.
struct Listed {
    by_host: Vec<(u32, Rc<MachineSpec>)>,
    /// Each instance's position in `by_host`, by instance.
    by_instance: Vec<(u32, u32)>,
}

impl Listed {
    /// The file for `listing`: each instance whose type Hydra reads a line
    /// for, once (an instance listed twice is read as its last line, as a
    /// host repeated in a file is).
    fn new(listing: &Listing, instances: &[Instance], specs: &BTreeMap<String, Option<Rc<MachineSpec>>>) -> Listed {
        // Listings come in runs of one type: look each run's type up once.
        let mut last: Option<(&SmolStr, Option<&Rc<MachineSpec>>)> = None;
        let mut lines: Vec<(u32, Rc<MachineSpec>)> = Vec::with_capacity(listing.len());
        for (i, machine_type) in listing {
            let spec = match last {
                Some((t, spec)) if t == machine_type => spec,
                _ => {
                    let spec = specs.get(machine_type.as_str()).and_then(Option::as_ref);
                    last = Some((machine_type, spec));
                    spec
                }
            };
            if let Some(spec) = spec {
                lines.push((*i, Rc::clone(spec)));
            }
        }
        // Stable: of the lines of one address, the last one is kept.
        lines.sort_by(|(a, _), (b, _)| instances[*a as usize].ip.cmp(&instances[*b as usize].ip));
        let mut by_host: Vec<(u32, Rc<MachineSpec>)> = Vec::with_capacity(lines.len());
        for line in lines {
            match by_host.last_mut() {
                Some(last) if instances[last.0 as usize].ip == instances[line.0 as usize].ip => *last = line,
                _ => by_host.push(line),
            }
        }
        let mut by_instance: Vec<(u32, u32)> = by_host.iter().enumerate().map(|(p, (i, _))| (*i, p as u32)).collect();
        by_instance.sort_unstable();
        Listed { by_host, by_instance }
    }

    /// What the file's line for instance `i` offers, if it lists it.
    fn spec(&self, i: u32) -> Option<&MachineSpec> {
        let p = self.by_instance.binary_search_by_key(&i, |&(i, _)| i).ok()?;
        Some(&self.by_host[self.by_instance[p].1 as usize].1)
    }
}

/// Which instances a machines file lists, as which type.
type Listing = Vec<(u32, SmolStr)>;

/// One simulation run.
pub struct Simulation<'s> {
    scenario: &'s Scenario,
    hydra: Hydra,
    rng: ChaCha8Rng,
    heap: BinaryHeap<Pending>,
    seq: u64,
    now: SimTime,
    instances: Vec<Instance>,
    /// Instances not destroyed, in creation order.
    live: Vec<u32>,
    /// The live instances by deployment name (looked up, never walked).
    by_name: HashMap<SmolStr, u32, BuildHasherDefault<IdHasher>>,
    /// Scratch kept between passes, as a run creates thousands of instances:
    /// each live instance's position in `live`, valid where `live` agrees.
    fleet_position: Vec<u32>,
    /// What the engine sees: the status of the last pass, and the
    /// deployments of the `live` instances, in the same order, with the
    /// memory the last plan returned. Kept between passes and updated in
    /// place rather than rebuilt.
    observation: Observation,
    /// Where the entries of the observation's status came from, so that the
    /// next pass's status overwrites them in place (C++ runner only).
    status_layout: hydra::StatusLayout,
    /// What a machines-file line of each configured type offers, as Hydra
    /// reads it (the line depends on the type, not on the host).
    listed_specs: BTreeMap<String, Option<Rc<MachineSpec>>>,
    pending: Option<PendingPass>,
    files: BTreeMap<u64, Rc<Listed>>,
    /// The listing of the last machines file written, and what it read as.
    last_file: Option<(Listing, Rc<Listed>)>,
    file_version: u64,
    applied_version: u64,
    next_ip: u32,
    passes: u64,
    stability: Stability,
    /// The instance behind each of Hydra's machines (`None`: static).
    instance_of_machine: Vec<Option<u32>>,
    /// The Rust runner's shell; `None` under the C++ runner.
    rust: Option<rust_runner::RustRunnerSim>,
    /// When the queue monitor can load its next step (`[hydra] queue_monitor_rate`),
    /// in fractional milliseconds.
    monitor_free_at: f64,
}

fn lognormal_ms(rng: &mut ChaCha8Rng, median_s: f64, spread: f64) -> i64 {
    let d = LogNormal::new(median_s.ln(), spread).expect("validated median and spread");
    (d.sample(rng) * 1000.0).round() as i64
}

fn secs_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

impl<'s> Simulation<'s> {
    pub fn new(scenario: &'s Scenario) -> Simulation<'s> {
        let mut hydra = Hydra::new(scenario.shares.clone());
        let mut rust = (scenario.runner == crate::config::Runner::Rust)
            .then(|| rust_runner::RustRunnerSim::new(scenario.rust_runner.clone()));
        if rust.is_some() {
            hydra.set_dispatch_order(hydra::DispatchOrder::Rust);
        }
        if let Some(server) = scenario.server {
            hydra.set_server(server, scenario.runner);
        }
        hydra.set_max_unsupported_time(scenario.max_unsupported_time);
        for m in &scenario.static_machines {
            for i in 1..=m.count {
                let host = if m.count == 1 { m.name.clone() } else { format!("{}-{i}", m.name) };
                let spec = MachineSpec {
                    systems: m.systems.clone(),
                    max_jobs: m.max_jobs,
                    speed_factor: m.speed_factor,
                    supported: m.supported_features.iter().cloned().collect(),
                    mandatory: m.mandatory_features.iter().cloned().collect(),
                };
                let systems = spec.systems.clone();
                let h = hydra.add_machine(host, spec, SimTime::ZERO, false);
                if let Some(rust) = &mut rust {
                    hydra.join_builder(h);
                    rust.static_builder(h, &systems);
                }
            }
        }
        for tc in scenario.config.system_types.values() {
            if tc.max_machines > 0 {
                let line = engine::plan::machines_file_line(tc, "simulated", None);
                if let Some((_, spec)) = MachineSpec::parse_machines_line(&line) {
                    hydra.add_class(spec, true);
                }
            }
        }
        // The host and its key only fill the line's first and last fields.
        let listed_specs = scenario
            .config
            .system_types
            .iter()
            .map(|(key, tc)| {
                let line = engine::plan::machines_file_line_written(&scenario.config, tc, "10.0.0.1", Some("key"));
                (key.clone(), MachineSpec::parse_machines_line(&line).map(|(_, spec)| Rc::new(spec)))
            })
            .collect();
        Simulation {
            scenario,
            hydra,
            rng: ChaCha8Rng::seed_from_u64(scenario.seed),
            heap: BinaryHeap::new(),
            seq: 0,
            now: SimTime::ZERO,
            instances: vec![],
            live: vec![],
            by_name: HashMap::default(),
            fleet_position: vec![],
            observation: Observation { status: QueueStatus::down(""), fleet: Fleet::default() },
            status_layout: hydra::StatusLayout::default(),
            listed_specs,
            pending: None,
            files: BTreeMap::new(),
            last_file: None,
            file_version: 0,
            applied_version: 0,
            next_ip: 0,
            passes: 0,
            stability: Stability::default(),
            instance_of_machine: vec![],
            rust,
            monitor_free_at: 0.0,
        }
    }

    /// When Hydra loads a trace row: when it was submitted, or later when the
    /// queue monitor is still loading the rows before it. Hydra's queue
    /// monitor reads new builds from the database and creates their steps
    /// one by one, so a huge evaluation reaches the dispatcher over minutes;
    /// without `queue_monitor_rate` every row is loaded when submitted.
    fn loaded_at(&self, row: &StepRow) -> SimTime {
        match self.scenario.queue_monitor_rate {
            None => SimTime(row.submitted_ms),
            Some(_) => SimTime(row.submitted_ms.max(self.monitor_free_at.ceil() as i64)),
        }
    }

    /// The queue monitor loaded a row now.
    fn monitor_loaded(&mut self) {
        if let Some(rate) = self.scenario.queue_monitor_rate {
            self.monitor_free_at = self.monitor_free_at.max(self.now.0 as f64) + 1000.0 / rate;
        }
    }

    fn schedule(&mut self, at: SimTime, event: Event) {
        self.seq += 1;
        self.heap.push(Pending { at, seq: self.seq, event });
    }

    /// Schedules the events the queue runner's model scheduled, and hands
    /// the steps that left it to the observer. Called after every event,
    /// most often with nothing to do.
    #[inline(always)]
    fn drain_hydra(&mut self, observer: &mut dyn Observer) {
        if !(self.hydra.scheduled.is_empty() && self.hydra.records.is_empty()) {
            self.drain_hydra_now(observer);
        }
    }

    #[inline(never)]
    fn drain_hydra_now(&mut self, observer: &mut dyn Observer) {
        // Read in place and cleared, so that the buffer keeps its capacity
        // (nearly every call moves one event).
        for i in 0..self.hydra.scheduled.len() {
            let (at, e) = self.hydra.scheduled[i];
            self.schedule(at, Event::Hydra(e));
        }
        self.hydra.scheduled.clear();
        if self.hydra.records.is_empty() {
            return;
        }
        if !observer.wants_steps() {
            self.hydra.records.clear();
            return;
        }
        let mut records = std::mem::take(&mut self.hydra.records);
        for r in records.drain(..) {
            let end = match r.end {
                StepEnd::Succeeded => "succeeded",
                StepEnd::Failed => "failed",
                StepEnd::GaveUp => "gave up",
                StepEnd::NeverStarted(reason) => reason,
                StepEnd::RunningAtEnd => "running at end",
                StepEnd::RetryingAtEnd => "retrying at end",
            };
            let line = StepLine {
                step_id: r.step_id,
                machine_type: &self.hydra.kinds()[r.kind as usize].key,
                runnable_at: r.runnable_at,
                started_at: r.started_at,
                finished_at: r.finished_at,
                jobset: self.hydra.jobset_name(r.jobset),
                machine: r.machine.map(|m| self.hydra.machines[m as usize].host.as_str()),
                instance: r
                    .machine
                    .and_then(|m| self.instance_of_machine.get(m as usize).copied().flatten())
                    .map(|i| i + 1),
                attempts: r.attempts,
                end,
                kind_index: r.kind,
                jobset_index: r.jobset,
                machine_index: r.machine,
            };
            observer.step(&line);
        }
        self.hydra.records = records;
    }

    /// Runs the scenario over `rows` to the end and returns the summary.
    pub fn run<R: Rows>(mut self, rows: &mut R, observer: &mut dyn Observer) -> Result<Summary, SimError> {
        self.hydra.keep_records = observer.wants_steps();
        let horizon = self.scenario.horizon.map(SimTime::from_secs_f64);
        let mut limit = horizon.unwrap_or(SimTime(i64::MAX));
        self.schedule(SimTime::ZERO, Event::Pass);
        rows.advance()?;
        let mut arrived: u64 = 0;
        let mut iterations: u64 = 0;
        // When the row at hand loads: it changes only when a row arrives
        // (the queue monitor's clock moves only then), so it is computed
        // once per row rather than at every event.
        let mut row_at = rows.current().map(|r| self.loaded_at(r));
        loop {
            let mut event_at = self.heap.peek().map(|p| p.at);
            let mut next = match (event_at, row_at) {
                (Some(e), Some(r)) => e.min(r),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => break,
            };
            if self.hydra.dispatch_needed && next > self.now {
                self.hydra.dispatch(self.now);
                self.drain_hydra(observer);
                event_at = self.heap.peek().map(|p| p.at);
                next = event_at.into_iter().chain(row_at).min().unwrap_or(next);
            }
            if next > limit {
                break;
            }
            self.now = next;
            if event_at == Some(next) {
                let Some(Pending { event, .. }) = self.heap.pop() else { break };
                if let Some(Pending { event: Event::Hydra(HydraEvent::StepDone { slot, .. }), .. }) = self.heap.peek() {
                    self.hydra.prefetch_step(*slot);
                }
                self.handle(event, observer)?;
            } else if let Some(row) = rows.current() {
                self.hydra
                    .arrive(row, rows.symbols(), self.now)
                    .map_err(|message| SimError::BadStep { source_name: rows.name().to_string(), message })?;
                arrived += 1;
                self.monitor_loaded();
                rows.advance()?;
                row_at = rows.current().map(|r| self.loaded_at(r));
                if row_at.is_none() && horizon.is_none() {
                    limit = self.now.plus_ms(DRAIN_LIMIT_MS);
                }
            }
            self.drain_hydra(observer);
            if row_at.is_none() && horizon.is_none() && self.hydra.live_steps() == 0 {
                break;
            }
            iterations += 1;
            if iterations & 0xffff == 0 {
                observer.progress(self.now, arrived);
            }
        }
        let end = match horizon {
            Some(h) => h,
            None => self.now,
        };
        self.now = end;
        self.hydra.finish(end);
        self.drain_hydra(observer);
        while let Some(row) = rows.current() {
            self.hydra.arrives_after_horizon(row, rows.symbols());
            self.drain_hydra(observer);
            rows.advance()?;
        }
        Ok(self.finish())
    }

    fn handle(&mut self, event: Event, observer: &mut dyn Observer) -> Result<(), SimError> {
        match event {
            Event::Hydra(e) => self.hydra.handle(e, self.now),
            Event::Pass => self.pass(observer)?,
            Event::PassEnd => self.pass_end(observer),
            Event::MachinesFileRead { version } => self.machines_file_read(version, observer),
            Event::Rust(e) => self.handle_rust(e, observer),
            Event::SpotNotice { machine, generation } => {
                let inst = &self.instances[machine as usize];
                if inst.generation == generation && inst.state == InstanceState::Running {
                    self.event(observer, self.now, machine, "spot interruption notice");
                    let at = self.now.plus_ms(SPOT_NOTICE_MS);
                    self.schedule(at, Event::SpotTerminate { machine, generation });
                }
            }
            Event::SpotTerminate { machine, generation } => {
                let inst = &self.instances[machine as usize];
                if inst.generation == generation && inst.state == InstanceState::Running {
                    self.stability.spot_interruptions += 1;
                    self.end_run(machine, InstanceState::Missing);
                    self.event(observer, self.now, machine, "spot interrupted");
                }
            }
        }
        Ok(())
    }

    /// Tells the observer what happened to instance `machine`.
    fn event(&self, observer: &mut dyn Observer, at: SimTime, machine: u32, event: &str) {
        let inst = &self.instances[machine as usize];
        let e =
            MachineEvent { at, instance: machine + 1, machine: &inst.name, machine_type: &inst.machine_type, event };
        observer.machine_event(&e);
    }

    fn engine_now(&self) -> i64 {
        self.scenario.epoch.saturating_add(self.now.whole_secs())
    }

    /// The state NixOps reports for an instance now.
    fn machine_state(&self, inst: &Instance) -> MachineState {
        match inst.state {
            InstanceState::Stopped => MachineState::Stopped,
            InstanceState::Missing => MachineState::Missing,
            _ if inst.ready_at <= self.now => MachineState::Up,
            _ => MachineState::Starting,
        }
    }

    /// Brings the fleet's states and launch times up to date.
    fn refresh_fleet(&mut self) {
        let mut deployments = std::mem::take(&mut self.observation.fleet.deployments);
        for (d, &i) in deployments.iter_mut().zip(&self.live) {
            let inst = &self.instances[i as usize];
            d.state = self.machine_state(inst);
            d.launch_time = Some(inst.launch_s);
        }
        self.observation.fleet.deployments = deployments;
    }

    fn pass(&mut self, observer: &mut dyn Observer) -> Result<(), SimError> {
        self.passes += 1;
        let now_s = self.engine_now();
        let uptime = self.scenario.queue_runner_uptime.saturating_add(self.now.whole_secs());
        let with_last_active = self.scenario.era == Era::WithLastActive;
        let wants_document = observer.wants_passes();
        let document = if self.rust.is_some() {
            let (status, document) = self.rust_status(uptime, wants_document || status_checked(self.passes))?;
            self.observation.status = status;
            document
        } else {
            self.cpp_status(uptime, with_last_active, wants_document)?
        };
        self.refresh_fleet();
        let config = &self.scenario.config;
        let mut plan = engine::decide_without_preview(config, &self.observation, now_s);
        if let Some(document) = document.filter(|_| wants_document) {
            plan.machines_file_preview = plan.render_preview(config, &self.observation.fleet.deployments);
            observer.pass(self.passes, &document, &self.observation, &plan);
        }
        if observer.wants_samples() {
            self.sample(observer);
        }
        self.carry_out(plan, observer);
        Ok(())
    }

    /// The canonical key of an instance's type (its type argument is in the
    /// configuration's spelling under the original quirks).
    fn type_key<'a>(&'a self, inst: &'a Instance) -> &'a str {
        self.scenario.config.type_for(&inst.machine_type).map_or(inst.machine_type.as_str(), |t| t.canonical.as_str())
    }

    /// The C++ runner's status, written over the observation's, and its
    /// document when it is recorded or checked (see [`status_checked`]).
    fn cpp_status(
        &mut self,
        uptime: i64,
        with_last_active: bool,
        wants_document: bool,
    ) -> Result<Option<serde_json::Value>, SimError> {
        let (epoch, now) = (self.scenario.epoch, self.now);
        let status = &mut self.observation.status;
        self.hydra.status_in_place(status, &mut self.status_layout, epoch, now, uptime, with_last_active);
        if !(wants_document || status_checked(self.passes)) {
            return Ok(None);
        }
        let document = self.hydra.status_json(epoch, now, uptime, with_last_active);
        let parsed = status::parse_status_value(&document)
            .map_err(|e| SimError::Internal(format!("the simulated status does not parse: {e}")))?;
        if parsed != *status {
            return Err(SimError::Internal(format!(
                "pass {}: the status read back from the document differs from the one the simulator built",
                self.passes
            )));
        }
        Ok(Some(document))
    }

    /// One sample per type and figure (`series.csv`, docs/scenario-format.md):
    /// the queue's runnable and running steps per step type, and the
    /// provisioned machines of each configured type by state, listed, their
    /// slots and how many of those are busy.
    fn sample(&self, observer: &mut dyn Observer) {
        let mut types: BTreeMap<&str, [u64; 9]> = BTreeMap::new();
        for k in self.hydra.kinds() {
            let row = types.entry(&k.key).or_default();
            row[0] = k.runnable;
            row[1] = k.running;
        }
        for key in self.scenario.config.system_types.keys() {
            types.entry(key).or_default();
        }
        for inst in self.live.iter().map(|&i| &self.instances[i as usize]) {
            let state = match inst.state {
                InstanceState::Destroyed => continue,
                InstanceState::Stopped => 4,
                InstanceState::Missing => 5,
                InstanceState::Running if inst.ready_at <= self.now => 3,
                InstanceState::Running => 2,
            };
            let row = types.entry(self.type_key(inst)).or_default();
            row[state] += 1;
            if inst.state == InstanceState::Running && inst.in_file {
                row[6] += 1;
                row[7] += u64::from(inst.max_jobs);
            }
            if let Some(h) = inst.hydra.filter(|_| inst.state == InstanceState::Running) {
                row[8] += u64::from(self.hydra.machines[h as usize].current_jobs);
            }
        }
        for (key, row) in types {
            for (name, value) in SERIES_FIGURES.into_iter().zip(row) {
                observer.sample(self.now, name, key, value);
            }
        }
        if let Some(server) = self.hydra.server() {
            let figures = [u64::from(server.busy(self.now.0)), server.waiting() as u64, server.backlog()];
            observer.server_sample(self.now, figures);
        }
    }

    /// The instance starts running at `now` (a launch or a start from stopped).
    fn begin_run(&mut self, machine: u32, now: SimTime, ready_in_ms: i64) {
        let launch_s = self.scenario.epoch.saturating_add(now.whole_secs());
        let inst = &mut self.instances[machine as usize];
        if let Some(since) = inst.stopped_since.take() {
            inst.storage_ms = inst.storage_ms.saturating_add(now.0 - since.0);
        }
        inst.state = InstanceState::Running;
        inst.run_start = Some(now);
        inst.launch_s = launch_s;
        inst.ready_at = now.plus_ms(ready_in_ms);
        inst.deployed_since_boot = false;
        let generation = inst.generation;
        let rate = if inst.cloud.market == Market::Spot { inst.cloud.spot_interruptions_per_hour } else { 0.0 };
        if let Some(h) = inst.hydra {
            self.hydra.set_requested_at(h, now);
        }
        if rate > 0.0 {
            let gap = Exp::new(rate / 3_600_000.0).expect("validated rate");
            let at = now.plus_ms(gap.sample(&mut self.rng).round() as i64);
            self.schedule(at, Event::SpotNotice { machine, generation });
        }
    }

    /// Starts a stopped instance at `at` (`nixops start`, or the start a
    /// `nixops deploy` of a stopped machine does first).
    fn start_instance(&mut self, machine: u32, at: SimTime, observer: &mut dyn Observer) {
        let c = &self.instances[machine as usize].cloud;
        let (median, spread) = (c.start_median, c.start_spread);
        let delay = lognormal_ms(&mut self.rng, median, spread);
        self.begin_run(machine, at, delay);
        self.stability.starts += 1;
        self.event(observer, at, machine, "start");
    }

    /// The instance stops running (stop, interruption or destruction).
    fn end_run(&mut self, machine: u32, state: InstanceState) {
        let now = self.now;
        let inst = &mut self.instances[machine as usize];
        if let Some(start) = inst.run_start.take() {
            inst.billed_ms = inst.billed_ms.saturating_add(inst.billing.billed_millis(start.0, now.0));
        }
        if state == InstanceState::Stopped {
            inst.stopped_since = Some(now);
        } else if let Some(since) = inst.stopped_since.take() {
            inst.storage_ms = inst.storage_ms.saturating_add(now.0 - since.0);
        }
        inst.state = state;
        inst.generation += 1;
        if let Some(h) = inst.hydra {
            if let Some(rust) = &self.rust {
                if rust.keeps_slots(h) {
                    return;
                }
                self.builder_gone(h);
            }
            if state == InstanceState::Destroyed {
                self.hydra.remove_machine(h, now);
            } else {
                self.hydra.set_alive(h, false, now);
            }
        }
    }

    fn carry_out(&mut self, plan: Plan, observer: &mut dyn Observer) {
        let now = self.now;
        let mut pass_end = now;
        let mut deploys = vec![];
        let mut write_file = false;
        let slots = ShellRules::of(&self.scenario.config).deploy_slots as usize;
        // When the deploys in progress end; never more entries than deploys,
        // however many slots the configuration allows.
        let mut deploying: BinaryHeap<Reverse<SimTime>> = BinaryHeap::new();
        for command in &plan.commands {
            match command {
                Command::Create { deployment, machine_type, .. } => {
                    let Some(tc) = self.scenario.config.type_for(machine_type) else { continue };
                    let cloud = self.scenario.cloud.get(tc.canonical.as_str()).cloned().unwrap_or_default();
                    self.next_ip += 1;
                    let n = self.next_ip;
                    let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
                    let index = self.instances.len() as u32;
                    self.instances.push(Instance {
                        name: deployment.clone(),
                        machine_type: machine_type.clone(),
                        ip,
                        host_key: format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISimulated{n:08}"),
                        state: InstanceState::Running,
                        launch_s: 0,
                        ready_at: now,
                        run_start: None,
                        stopped_since: None,
                        billed_ms: 0,
                        storage_ms: 0,
                        generation: 0,
                        hydra: None,
                        deployed_since_boot: false,
                        launch_pending: None,
                        billing: cloud.billing.unwrap_or(tc.billing),
                        price: cloud.price(),
                        storage_price: cloud.storage_price,
                        max_jobs: tc.max_jobs,
                        cloud: cloud.clone(),
                        in_file: false,
                    });
                    let inst = &self.instances[index as usize];
                    let d = Deployment {
                        name: deployment.clone(),
                        machine_type: machine_type.clone(),
                        state: self.machine_state(inst),
                        recorded_state: None,
                        launch_time: Some(inst.launch_s),
                        public_ip: Some(inst.ip.clone()),
                        host_key: Some(inst.host_key.clone()),
                        memory: MachineMemory::default(),
                    };
                    self.observation.fleet.deployments.push(d);
                    self.by_name.insert(deployment.clone(), index);
                    self.live.push(index);
                    let boot = lognormal_ms(&mut self.rng, cloud.boot_median, cloud.boot_spread);
                    self.instances[index as usize].launch_pending = Some(boot);
                    self.stability.creates += 1;
                    self.event(observer, now, index, "create");
                }
                Command::Start { deployment } => {
                    let Some(&m) = self.by_name.get(deployment) else { continue };
                    if self.instances[m as usize].state == InstanceState::Stopped {
                        self.start_instance(m, now, observer);
                    }
                }
                Command::Deploy { deployment, fingerprint, .. } => {
                    let Some(&m) = self.by_name.get(deployment) else { continue };
                    self.stability.deploys += 1;
                    // The earliest free deploy slot.
                    let start = match deploying.len() < slots {
                        true => now,
                        false => deploying.pop().map_or(now, |Reverse(t)| t),
                    };
                    if let Some(boot) = self.instances[m as usize].launch_pending.take() {
                        self.begin_run(m, start, boot);
                    } else if self.instances[m as usize].state == InstanceState::Stopped {
                        // `nixops deploy` starts a stopped EC2 machine first.
                        self.start_instance(m, start, observer);
                    }
                    let inst = &self.instances[m as usize];
                    let (done_at, ok) = if inst.state == InstanceState::Running {
                        let seconds = if inst.deployed_since_boot { inst.cloud.redeploy } else { inst.cloud.deploy };
                        let fail_rate = inst.cloud.deploy_failure_rate;
                        let done = inst.ready_at.max(start).plus_ms(secs_ms(seconds));
                        let ok = fail_rate == 0.0 || self.rng.random::<f64>() >= fail_rate;
                        (done, ok)
                    } else {
                        (start, false)
                    };
                    deploying.push(Reverse(done_at));
                    pass_end = pass_end.max(done_at);
                    self.schedule_join(m, done_at, ok);
                    deploys.push(DeployResult { machine: m, fingerprint: fingerprint.clone(), done_at, ok });
                }
                Command::TouchKeepAlive { .. } => pass_end = pass_end.max(now.plus_ms(TOUCH_MS)),
                Command::WriteMachinesFile => write_file = true,
                Command::Stop { .. } | Command::Destroy { .. } | Command::StopBuilderService { .. } => {}
            }
        }
        // A creation without a deploy still launches its instance.
        let unlaunched: Vec<(u32, i64)> =
            self.live.iter().filter_map(|&m| self.instances[m as usize].launch_pending.map(|b| (m, b))).collect();
        for (m, boot) in unlaunched {
            self.instances[m as usize].launch_pending = None;
            self.begin_run(m, now, boot);
        }
        self.pending = Some(PendingPass { plan, deploys, write_file });
        self.schedule(pass_end, Event::PassEnd);
    }

    fn pass_end(&mut self, observer: &mut dyn Observer) {
        let Some(PendingPass { mut plan, deploys, write_file }) = self.pending.take() else { return };
        let now = self.now;
        let mut memory = std::mem::take(&mut plan.memory);
        let mut failed = BTreeSet::new();
        for d in deploys {
            let inst = &mut self.instances[d.machine as usize];
            let ok = d.ok && inst.state == InstanceState::Running;
            if ok {
                inst.deployed_since_boot = true;
            } else {
                failed.insert(inst.name.to_string());
                self.stability.failed_deploys += 1;
            }
            let done_s = self.scenario.epoch.saturating_add(d.done_at.whole_secs());
            memory.entry(inst.name.clone()).or_default().record_deploy(ok, &d.fingerprint, done_s);
            let (at, machine) = (d.done_at, d.machine);
            self.event(observer, at, machine, if ok { "deployed" } else { "deploy failed" });
        }
        self.hand_back_memory(memory);
        if write_file {
            self.write_machines_file(&plan, &failed);
        }
        if self.rust.is_some() {
            self.retire(&plan.commands, observer);
        } else {
            self.take_down(&plan.commands, observer);
        }
        let next = now.plus_ms(secs_ms(self.scenario.interval));
        self.schedule(next, Event::Pass);
    }

    /// The memory the plan returned goes to the fleet's deployments, each
    /// name's to the deployment of that name and the default to the others.
    fn hand_back_memory(&mut self, memory: BTreeMap<SmolStr, MachineMemory>) {
        let deployments = &mut self.observation.fleet.deployments;
        if self.by_name.len() != deployments.len() {
            // A name the fleet repeats (the engine never creates one): its
            // first deployment gets the memory, a later one the default.
            // Taken in place rather than removed: a removal rebalances the
            // tree, and the map is dropped whole afterwards.
            let mut memory = memory;
            for d in deployments.iter_mut() {
                d.memory = memory.get_mut(&d.name).map(std::mem::take).unwrap_or_default();
            }
            return;
        }
        // Each name once: found by its instance rather than by comparing names.
        if self.fleet_position.len() < self.instances.len() {
            self.fleet_position.resize(self.instances.len(), 0);
        }
        for (p, &i) in self.live.iter().enumerate() {
            self.fleet_position[i as usize] = p as u32;
        }
        for d in deployments.iter_mut() {
            d.memory = MachineMemory::default();
        }
        for (name, m) in memory {
            let Some(&i) = self.by_name.get(&name) else { continue };
            let p = self.fleet_position[i as usize] as usize;
            if self.live.get(p) == Some(&i) {
                deployments[p].memory = m;
            }
        }
    }

    /// The plan's machines file, as the instances it lists and what Hydra
    /// reads from it, to be read after the reload delay.
    fn write_machines_file(&mut self, plan: &Plan, failed: &BTreeSet<String>) {
        let now = self.now;
        // The file is a function of which instances are listed, as which
        // type; `Plan::render_machines_file` writes each listed, deployed
        // machine with an address (every simulated instance has one) as
        // its type's line at that address, which Hydra reads as the
        // type's `listed_specs` (tested against the text).
        let listing: Listing = plan
            .listings
            .iter()
            .filter(|l| !failed.contains(l.deployment.as_str()))
            .filter_map(|l| self.by_name.get(&l.deployment).map(|&i| (i, l.machine_type.clone())))
            .collect();
        let listed = match &self.last_file {
            Some((last, listed)) if *last == listing => Rc::clone(listed),
            _ => {
                let listed = Rc::new(Listed::new(&listing, &self.instances, &self.listed_specs));
                self.last_file = Some((listing, Rc::clone(&listed)));
                listed
            }
        };
        #[cfg(debug_assertions)]
        self.check_file_as_rendered(plan, failed, &listed);
        self.file_version += 1;
        self.files.insert(self.file_version, listed);
        let at = now.plus_ms(secs_ms(self.scenario.reload_delay));
        let version = self.file_version;
        self.schedule(at, Event::MachinesFileRead { version });
    }

    /// The plan's stops and destroys take effect now.
    fn take_down(&mut self, commands: &[Command], observer: &mut dyn Observer) {
        let now = self.now;
        let stop_confirmed = ShellRules::of(&self.scenario.config).stop_confirmed;
        for command in commands {
            let (deployment, state, verb) = match command {
                Command::Stop { deployment } => (deployment, InstanceState::Stopped, "stop"),
                Command::Destroy { deployment } => (deployment, InstanceState::Destroyed, "destroy"),
                _ => continue,
            };
            let Some(&m) = self.by_name.get(deployment) else { continue };
            let current = self.instances[m as usize].state;
            if current == InstanceState::Destroyed
                || (current == InstanceState::Stopped && state == InstanceState::Stopped)
            {
                continue;
            }
            if state == InstanceState::Stopped {
                if current == InstanceState::Missing {
                    continue;
                }
                if !stop_confirmed {
                    self.stability.stops_refused += 1;
                    self.event(observer, now, m, "stop refused (no confirmation)");
                    continue;
                }
                self.stability.stops += 1;
            } else {
                self.stability.destroys += 1;
                self.by_name.remove(deployment);
                if let Some(pos) = self.live.iter().position(|&i| i == m) {
                    self.live.remove(pos);
                    self.observation.fleet.deployments.remove(pos);
                }
            }
            self.end_run(m, state);
            self.event(observer, now, m, verb);
        }
    }

    /// The machines file the simulator reads is what the production code
    /// would write for the plan, read back as Hydra reads it.
    #[cfg(debug_assertions)]
    fn check_file_as_rendered(&self, plan: &Plan, failed: &BTreeSet<String>, listed: &Listed) {
        let text = plan.render_machines_file(&self.scenario.config, &self.observation.fleet.deployments, failed);
        let read: BTreeMap<String, MachineSpec> = text
            .lines()
            .filter_map(MachineSpec::parse_machines_line)
            .map(|(uri, spec)| (crate::model::host_of_store_uri(&uri).to_string(), spec))
            .collect();
        let ours: BTreeMap<String, MachineSpec> = listed
            .by_host
            .iter()
            .map(|(i, spec)| (self.instances[*i as usize].ip.clone(), MachineSpec::clone(spec)))
            .collect();
        assert_eq!(ours, read, "the machines file read differs from the one written:\n{text}");
    }

    fn machines_file_read(&mut self, version: u64, observer: &mut dyn Observer) {
        if version <= self.applied_version {
            return;
        }
        self.applied_version = version;
        let Some(listed) = self.files.remove(&version) else { return };
        self.files.retain(|&v, _| v > version);
        let now = self.now;
        // In host order: Hydra first sees new machines in the file's order.
        for (m, spec) in &listed.by_host {
            let m = *m as usize;
            if self.instances[m].state != InstanceState::Running {
                continue;
            }
            let h = match self.instances[m].hydra {
                Some(h) => h,
                None => {
                    let host = self.instances[m].ip.clone();
                    let h = self.hydra.add_machine(host, MachineSpec::clone(spec), now, true);
                    if self.instance_of_machine.len() <= h as usize {
                        self.instance_of_machine.resize(h as usize + 1, None);
                    }
                    self.instance_of_machine[h as usize] = Some(m as u32);
                    let requested = self.instances[m].run_start.unwrap_or(now);
                    self.hydra.set_requested_at(h, requested);
                    self.instances[m].hydra = Some(h);
                    h
                }
            };
            self.hydra.set_alive(h, true, now);
        }
        for &i in &self.live {
            let inst = &self.instances[i as usize];
            let in_file = listed.spec(i).is_some();
            let is = in_file && inst.state == InstanceState::Running;
            if inst.in_file != is {
                self.event(observer, now, i, if is { "listed" } else { "delisted" });
            }
            self.instances[i as usize].in_file = in_file;
        }
        // A provisioned machine's host is its instance's address.
        let instance_of = &self.instance_of_machine;
        self.hydra
            .apply_machines_file(|h, _| instance_of.get(h as usize).copied().flatten().and_then(|i| listed.spec(i)));
    }

    fn finish(mut self) -> Summary {
        let now = self.now;
        let mut cost = Cost::default();
        let mut billed_total = 0i64;
        let mut slot_ms: i128 = 0;
        let mut busy_ms = 0i64;
        let mut job_ms = 0i64;
        let mut alive = 0;
        let mut per_type: BTreeMap<String, TypeCost> = BTreeMap::new();
        let type_keys: Vec<String> = self.instances.iter().map(|i| self.type_key(i).to_string()).collect();
        for (inst, key) in self.instances.iter_mut().zip(type_keys) {
            if let Some(start) = inst.run_start.take() {
                inst.billed_ms = inst.billed_ms.saturating_add(inst.billing.billed_millis(start.0, now.0));
                alive += 1;
            }
            if let Some(since) = inst.stopped_since.take() {
                inst.storage_ms = inst.storage_ms.saturating_add(now.0 - since.0);
            }
            cost.dollars +=
                metrics::dollars(inst.billed_ms, inst.price) + metrics::dollars(inst.storage_ms, inst.storage_price);
            cost.storage_dollars += metrics::dollars(inst.storage_ms, inst.storage_price);
            billed_total = billed_total.saturating_add(inst.billed_ms);
            slot_ms += i128::from(inst.billed_ms) * i128::from(inst.max_jobs);
            let mut instance_busy_ms = 0;
            if let Some(h) = inst.hydra {
                let m = &self.hydra.machines[h as usize];
                busy_ms = busy_ms.saturating_add(m.busy_ms);
                job_ms = job_ms.saturating_add(m.job_ms);
                instance_busy_ms = m.busy_ms.min(inst.billed_ms);
            }
            let t = per_type.entry(key).or_default();
            t.instances += 1;
            t.busy_dollars += metrics::dollars(instance_busy_ms, inst.price);
            t.idle_dollars += metrics::dollars(inst.billed_ms - instance_busy_ms, inst.price);
            t.storage_dollars += metrics::dollars(inst.storage_ms, inst.storage_price);
            t.billed_machine_hours += inst.billed_ms as f64 / 3_600_000.0;
            t.busy_machine_hours += instance_busy_ms as f64 / 3_600_000.0;
        }
        for t in per_type.values_mut() {
            t.dollars = metrics::round3(t.busy_dollars + t.idle_dollars + t.storage_dollars);
            t.idle_machine_hours = metrics::round3(t.billed_machine_hours - t.busy_machine_hours);
            for v in [
                &mut t.busy_dollars,
                &mut t.idle_dollars,
                &mut t.storage_dollars,
                &mut t.billed_machine_hours,
                &mut t.busy_machine_hours,
            ] {
                *v = metrics::round3(*v);
            }
        }
        cost.per_machine_type = per_type;
        let hours = |ms: i64| metrics::round3(ms as f64 / 3_600_000.0);
        cost.dollars = metrics::round3(cost.dollars);
        cost.storage_dollars = metrics::round3(cost.storage_dollars);
        cost.billed_machine_hours = hours(billed_total);
        cost.busy_machine_hours = hours(busy_ms);
        cost.idle_machine_hours = hours(billed_total.saturating_sub(busy_ms).max(0));
        cost.busy_job_hours = hours(job_ms);
        cost.utilisation = if slot_ms > 0 { metrics::round3(job_ms as f64 / slot_ms as f64) } else { 0.0 };
        let kinds: Vec<String> = self.hydra.kinds().iter().map(|k| k.key.clone()).collect();
        let jobsets: Vec<String> =
            (0..self.hydra.jobset_count()).map(|j| self.hydra.jobset_name(j).to_string()).collect();
        let server = self.hydra.server_figures(now);
        let evaluations = self.hydra.evaluations.stats(|j| jobsets[j as usize].clone());
        let latency = self.hydra.waits.latency(|k| kinds[k as usize].clone(), |j| jobsets[j as usize].clone());
        let c = &self.hydra.counters;
        let steps = StepCounts {
            total: c.total,
            started: c.started,
            succeeded: c.succeeded,
            failed: c.failed,
            gave_up: c.gave_up,
            running_at_end: c.running_at_end,
            retrying_at_end: c.retrying_at_end,
            attempts: c.attempts_started,
            attempts_finished: c.attempts_finished,
            never_started: c.never_started.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let mut stability = self.stability.clone();
        stability.aborted_steps = c.aborted;
        stability.retries = c.retries;
        Summary {
            scenario: self.scenario.name.clone(),
            trace: self.scenario.trace_text.clone(),
            config: self.scenario.config_origin.clone(),
            quirks: self.scenario.config.quirks,
            runner: self.scenario.runner,
            seed: self.scenario.seed,
            program_version: env!("CARGO_PKG_VERSION").to_string(),
            inputs: Inputs::default(),
            simulated_seconds: metrics::round3(now.0 as f64 / 1000.0),
            passes: self.passes,
            steps,
            cost,
            machines_alive_at_end: alive,
            latency,
            stability,
            server,
            evaluations,
        }
    }
}

/// Runs `scenario` over the rows of `source` in its window, and names in
/// the summary the inputs it replayed.
pub fn run(scenario: &Scenario, source: &mut dyn StepSource, observer: &mut dyn Observer) -> Result<Summary, SimError> {
    let mut replayed = input::Replayed::new(source, scenario.window);
    let summary = run_rows(scenario, &mut replayed, observer)?;
    Ok(with_inputs(summary, scenario, replayed.digest()))
}

/// [`run`] over a CSV trace read on a thread of its own ([`input::Streamed`],
/// spawned with the scenario's window): the same summary, with the reading,
/// windowing and digesting off the simulation's thread.
pub fn run_streamed(
    scenario: &Scenario,
    rows: &mut input::Streamed,
    observer: &mut dyn Observer,
) -> Result<Summary, SimError> {
    let summary = run_rows(scenario, rows, observer)?;
    Ok(with_inputs(summary, scenario, rows.digest()))
}

/// [`run`] over a trace parsed once and shared with other runs, whose
/// digest in the scenario's window ([`input::trace_digest`]) the caller
/// computed once for all of them. Without a window the rows are read
/// where they lie; the summary is the one [`run`] gives.
pub fn run_loaded(
    scenario: &Scenario,
    trace: &Loaded,
    trace_digest: &str,
    observer: &mut dyn Observer,
) -> Result<Summary, SimError> {
    let summary = match scenario.window {
        None => run_rows(scenario, &mut input::InMemory::new(trace), observer)?,
        Some(window) => {
            let mut source = trace.source();
            run_rows(scenario, &mut input::Replayed::without_digest(&mut source, Some(window)), observer)?
        }
    };
    Ok(with_inputs(summary, scenario, trace_digest.to_string()))
}

/// Generic rather than dynamic over the rows: the loop asks for the row at
/// hand several times a step, and each kind of rows inlines into its own copy.
fn run_rows<R: Rows>(scenario: &Scenario, rows: &mut R, observer: &mut dyn Observer) -> Result<Summary, SimError> {
    match scenario.window {
        Some(_) => Simulation::new(&scenario.at_window_start()).run(rows, observer),
        None => Simulation::new(scenario).run(rows, observer),
    }
}

fn with_inputs(mut summary: Summary, scenario: &Scenario, trace_digest: String) -> Summary {
    summary.inputs =
        Inputs { trace_digest, world_digest: scenario.world_digest(), window: scenario.window.map(|w| w.label()) };
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceReader;
    use crate::trace::synth::{Synth, SynthParams};
    use std::path::Path;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(text, "t.toml", Path::new(".")).unwrap()
    }

    /// A simulation of `scenario` whose first pass has run, after the steps
    /// of `rows` (CSV rows without the header) arrived at time zero.
    fn after_first_pass<'s>(scenario: &'s Scenario, rows: &str) -> Simulation<'s> {
        let mut sim = Simulation::new(scenario);
        let csv = format!("step_id,submitted_at,system,duration\n{rows}");
        let mut trace = TraceReader::new(csv.as_bytes(), "t.csv");
        while let Some(row) = trace.next_step() {
            sim.hydra.arrive(&row.unwrap(), trace.symbols(), SimTime::ZERO).unwrap();
        }
        sim.pass(&mut NoObserver).unwrap();
        sim
    }

    #[test]
    fn a_shared_trace_read_in_place_gives_the_summary_of_a_trace_read_row_by_row() {
        let mut synth = Synth::new(SynthParams {
            seed: 7,
            hours: 6.0,
            background_per_hour: 400.0,
            evaluations_per_day: 12.0,
            burst_median: 300.0,
            ..SynthParams::default()
        })
        .unwrap();
        let trace = Loaded::read(&mut synth).unwrap();
        assert!(trace.len() > 1000, "{} rows", trace.len());
        let base = r#"
trace = "unused.csv"
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 6
runnablesPerMachine = 10
maxJobs = 4
[provisioner.systemTypes."aarch64-linux"]
maxMachines = 2
maxJobs = 4
[cloud."x86_64-linux"]
[cloud."aarch64-linux"]
"#;
        // Whole, windowed, and cut short by a horizon (rows past it still count).
        for extra in ["", "window = \"1h..4h\"\n", "horizon = 7200\n"] {
            let text = format!("{extra}{base}");
            let scenario = scenario(&text);
            let by_row = run(&scenario, &mut trace.source(), &mut NoObserver).unwrap();
            let digest = input::trace_digest(&trace, scenario.window).unwrap();
            let in_place = run_loaded(&scenario, &trace, &digest, &mut NoObserver).unwrap();
            assert_eq!(in_place, by_row, "{extra:?}");
            assert!(by_row.steps.started > 0, "{extra:?}: nothing ran");
        }
    }

    #[test]
    fn a_machines_file_that_lists_an_address_twice_is_read_as_its_last_line() {
        // Hydra keys the machines it reads by host, so a host's later line
        // replaces an earlier one; the simulator never gives two instances
        // one address, so only a file made by hand reaches this.
        let scenario = scenario(
            r#"
trace = "unused.csv"
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 1
runnablesPerMachine = 1
maxJobs = 4
[provisioner.systemTypes."aarch64-linux"]
maxMachines = 1
runnablesPerMachine = 1
maxJobs = 2
[cloud."x86_64-linux"]
[cloud."aarch64-linux"]
"#,
        );
        let mut sim = after_first_pass(&scenario, "1,0,x86_64-linux,60\n2,0,aarch64-linux,60\n");
        assert_eq!(sim.instances.len(), 2, "one machine of each type");
        let x86 = sim.instances.iter().position(|i| i.machine_type == "x86_64-linux").unwrap() as u32;
        let arm = 1 - x86;
        let read = |sim: &Simulation<'_>, listing: &Listing| Listed::new(listing, &sim.instances, &sim.listed_specs);
        let jobs = |listed: &Listed, i: u32| listed.spec(i).map(|spec| spec.max_jobs);

        let apart = read(&sim, &vec![(x86, "x86_64-linux".into()), (arm, "aarch64-linux".into())]);
        assert_eq!((jobs(&apart, x86), jobs(&apart, arm)), (Some(4), Some(2)));

        let ip = sim.instances[x86 as usize].ip.clone();
        sim.instances[arm as usize].ip = ip;
        let arm_last = read(&sim, &vec![(x86, "x86_64-linux".into()), (arm, "aarch64-linux".into())]);
        assert_eq!((jobs(&arm_last, x86), jobs(&arm_last, arm)), (None, Some(2)));
        assert_eq!(arm_last.by_host.len(), 1);
        let x86_last = read(&sim, &vec![(arm, "aarch64-linux".into()), (x86, "x86_64-linux".into())]);
        assert_eq!((jobs(&x86_last, x86), jobs(&x86_last, arm)), (Some(4), None));
        // The same instance listed twice: its last line.
        let twice = read(&sim, &vec![(x86, "x86_64-linux".into()), (x86, "aarch64-linux".into())]);
        assert_eq!(jobs(&twice, x86), Some(2));
    }

    #[test]
    fn a_deploy_of_a_stopped_machine_starts_it_first() {
        // The original reuses a STOPPED deployment by deploying it, without a
        // start: NixOps's deploy starts the EC2 machine (40 s here) and then
        // deploys it as after a boot (120 s). It must not fail.
        let scenario = scenario(
            r#"
trace = "unused.csv"
[provisioner]
quirks = "original"
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 1
runnablesPerMachine = 1
[cloud."x86_64-linux"]
boot_spread = 0
start_median = 40
start_spread = 0
deploy = 120
"#,
        );
        let mut sim = after_first_pass(&scenario, "1,0,x86_64-linux,60\n");
        assert_eq!(sim.instances.len(), 1, "the first pass creates the machine");
        // Stopped behind the provisioner's back (the original itself never could).
        sim.pending = None;
        sim.now = SimTime(1_000_000);
        sim.end_run(0, InstanceState::Stopped);
        sim.pass(&mut NoObserver).unwrap();
        let pending = sim.pending.as_ref().unwrap();
        assert!(!pending.plan.commands.iter().any(|c| matches!(c, Command::Start { .. })), "{:?}", pending.plan);
        let inst = &sim.instances[0];
        assert_eq!(inst.state, InstanceState::Running);
        assert_eq!(inst.ready_at, SimTime(1_040_000));
        assert_eq!(sim.stability.starts, 1);
        let deploy = &pending.deploys[0];
        assert!(deploy.ok);
        assert_eq!(deploy.done_at, SimTime(1_160_000));
    }
}
