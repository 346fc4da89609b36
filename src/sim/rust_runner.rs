//! The simulation's shell around the Rust queue runner (`[hydra] runner =
//! "rust"`): how provisioned builders meet the runner, what the provisioner
//! sees of it, and how a retirement takes effect. The runner's own rules
//! (dispatch orders, builders joining and leaving, silent builders keeping
//! their slots) are in `hydra/rust.rs`; the engine that decides is the same
//! as for the C++ runner, under its `runner = "rust"` rules.
//!
//! - **Joining.** There is no machines file and no reload delay: a
//!   builder's service connects when the deploy that configures it
//!   finishes, at that deploy's own end rather than the pass's, under its
//!   deployment's name (its hostname). A deploy of a builder that is
//!   already connected changes nothing.
//! - **Pings and silence.** A connected builder pings every
//!   `ping_interval` seconds from its join (`lastPing` is 0 until the
//!   first). It goes silent at `silent_per_hour` per builder-hour
//!   (exponential gaps, from the run's one PRNG, drawn when it joins):
//!   its pings stop, what it runs hangs, and the runner keeps it and its
//!   slots, even giving it new steps, until the transport gives up
//!   `silence_detection` seconds later and drops it, aborting its steps.
//!   Stopping its service or destroying its machine does not tell the
//!   runner sooner: the connection is already dead.
//! - **Retiring.** At the end of a pass, as the live driver does
//!   (`driver/retire.rs`), every idle-retired builder the runner gave a
//!   step since the pass's status read is spared (counted as the race
//!   caught), and its machine stays; the other builders leave the runner
//!   `service_stop` seconds later (the ssh and `systemctl stop`), aborting
//!   what they run then, which is the race that remains; only then are
//!   their machines stopped or destroyed.
//! - **Status.** The provisioner reads `/status`, `/status/machines` and
//!   `/status/queues` in the runner's shape (DESIGN section 10), each
//!   queued step's features coming from its `.drv` (here: from the trace),
//!   through the production reader `runner_status::parse`. As for the C++
//!   runner, the status is built directly on most passes and checked
//!   against the documents read back on the passes `status_checked` names.

use super::hydra::{MachineSpec, QueuedStep};
use super::scenario::RustRunnerModel;
use super::{Event, InstanceState, Observer, SimError, SimTime, Simulation, secs_ms};
use crate::engine::Command;
use crate::model::{BuilderLiveness, BuilderStatus, QueueStatus, Seconds, TypeStatus};
use crate::runner_status::{self, Documents, type_key};
use rand_distr::{Distribution, Exp};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Events of the Rust runner's shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RustEvent {
    /// A deploy of the instance finished well: its builder connects.
    Join { instance: u32, generation: u32 },
    /// The builder (a runner machine) stops answering.
    Silent { machine: u32, joins: u32 },
    /// The runner's transport gives up on a silent builder.
    Dropped { machine: u32, joins: u32 },
    /// A pass's retirements take effect.
    Retire { batch: u64 },
}

/// A connected builder.
#[derive(Debug, Clone)]
struct Builder {
    joined_at: SimTime,
    /// Counts its joins, naming the events of one connection.
    joins: u32,
    silent_since: Option<SimTime>,
}

/// The shell's state.
#[derive(Debug, Default)]
pub(super) struct RustRunnerSim {
    model: RustRunnerModel,
    /// By runner machine.
    builders: BTreeMap<u32, Builder>,
    joins: BTreeMap<u32, u32>,
    /// Systems with a queue: the runner opens one for each system a builder
    /// brings, and keeps it empty after they leave.
    systems: BTreeSet<String>,
    /// Stops and destroys waiting for their builders' services to stop.
    retiring: BTreeMap<u64, Vec<Command>>,
    next_batch: u64,
}

impl RustRunnerSim {
    pub(super) fn new(model: RustRunnerModel) -> RustRunnerSim {
        RustRunnerSim { model, ..RustRunnerSim::default() }
    }

    /// A static builder, connected from the start (it never goes silent:
    /// nobody would replace it).
    pub(super) fn static_builder(&mut self, machine: u32, systems: &[String]) {
        self.systems.extend(systems.iter().cloned());
        self.builders.insert(machine, Builder { joined_at: SimTime::ZERO, joins: 1, silent_since: None });
        self.joins.insert(machine, 1);
    }

    /// Whether the runner still holds the builder's slots after its
    /// instance went away (it is silent: nobody told the runner).
    pub(super) fn keeps_slots(&self, machine: u32) -> bool {
        self.builders.get(&machine).is_some_and(|b| b.silent_since.is_some())
    }

    /// The builder's `lastPing` at `now` (model milliseconds), 0 before its first.
    fn last_ping_ms(&self, machine: u32, now: SimTime) -> Option<i64> {
        let b = self.builders.get(&machine)?;
        let until = b.silent_since.unwrap_or(now).0;
        let interval = secs_ms(self.model.ping_interval).max(1);
        let pings = (until - b.joined_at.0).div_euclid(interval);
        (pings >= 1).then(|| b.joined_at.0 + pings * interval)
    }
}

/// The bare drv name the model gives a step (a store path's 32-character
/// hash part, then a name).
fn drv_name(step_id: u64) -> String {
    format!("{step_id:032}-step.drv")
}

fn step_of_drv(drv: &str) -> Option<u64> {
    drv.split_once('-')?.0.parse().ok()
}

fn rfc3339(unix: Seconds) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| "1970-01-01T00:00:00Z".to_string(), |t| t.to_string())
}

impl Simulation<'_> {
    fn rust(&mut self) -> &mut RustRunnerSim {
        self.rust.as_mut().expect("only called under the Rust runner")
    }

    pub(super) fn handle_rust(&mut self, event: RustEvent, observer: &mut dyn Observer) {
        match event {
            RustEvent::Join { instance, generation } => self.builder_joins(instance, generation, observer),
            RustEvent::Silent { machine, joins } => self.builder_goes_silent(machine, joins, observer),
            RustEvent::Dropped { machine, joins } => self.builder_dropped(machine, joins, observer),
            RustEvent::Retire { batch } => self.retirements_take_effect(batch, observer),
        }
    }

    /// The Rust runner's part of a deploy: its builder joins when it ends.
    pub(super) fn schedule_join(&mut self, instance: u32, done_at: SimTime, ok: bool) {
        if ok && self.rust.is_some() {
            let generation = self.instances[instance as usize].generation;
            self.schedule(done_at, Event::Rust(RustEvent::Join { instance, generation }));
        }
    }

    fn builder_joins(&mut self, instance: u32, generation: u32, observer: &mut dyn Observer) {
        let now = self.now;
        let inst = &self.instances[instance as usize];
        if inst.generation != generation || inst.state != InstanceState::Running {
            return;
        }
        let h = match inst.hydra {
            Some(h) => {
                if self.rust().builders.contains_key(&h) {
                    return;
                }
                h
            }
            None => {
                let Some(tc) = self.scenario.config.type_for(&inst.machine_type) else { return };
                let line = crate::engine::plan::machines_file_line(tc, "simulated", None);
                let Some((_, spec)) = MachineSpec::parse_machines_line(&line) else { return };
                let h = self.hydra.add_machine(inst.name.to_string(), spec, now, true);
                self.instances[instance as usize].hydra = Some(h);
                h
            }
        };
        let requested = self.instances[instance as usize].run_start.unwrap_or(now);
        self.hydra.set_requested_at(h, requested);
        self.connect(h, observer);
    }

    /// A machine's builder connects to the runner.
    pub(super) fn connect(&mut self, h: u32, observer: &mut dyn Observer) {
        let now = self.now;
        self.hydra.join_builder(h);
        let systems = self.hydra.spec_of(h).systems.clone();
        let rust = self.rust();
        rust.systems.extend(systems);
        let joins = rust.joins.entry(h).or_default();
        *joins += 1;
        let joins = *joins;
        rust.builders.insert(h, Builder { joined_at: now, joins, silent_since: None });
        let rate = rust.model.silent_per_hour;
        if rate > 0.0 {
            let gap = Exp::new(rate / 3_600_000.0).expect("validated rate");
            let at = now.plus_ms(gap.sample(&mut self.rng).round() as i64);
            self.schedule(at, Event::Rust(RustEvent::Silent { machine: h, joins }));
        }
        self.builder_lifecycle(h, "joined the runner", observer);
    }

    fn builder_lifecycle(&self, h: u32, what: &str, observer: &mut dyn Observer) {
        let host = &self.hydra.machines[h as usize].host;
        // The instance behind it, destroyed or not (a name may be reused).
        let machine_type =
            self.instances.iter().rev().find(|i| i.hydra == Some(h)).map_or("static", |i| i.machine_type.as_str());
        observer.lifecycle(self.now, host, machine_type, what);
    }

    fn builder_goes_silent(&mut self, h: u32, joins: u32, observer: &mut dyn Observer) {
        let now = self.now;
        let rust = self.rust();
        let Some(b) = rust.builders.get_mut(&h).filter(|b| b.joins == joins && b.silent_since.is_none()) else {
            return;
        };
        b.silent_since = Some(now);
        let at = now.plus_ms(secs_ms(rust.model.silence_detection));
        self.hydra.silence_builder(h);
        self.stability.builders_silent += 1;
        self.schedule(at, Event::Rust(RustEvent::Dropped { machine: h, joins }));
        self.builder_lifecycle(h, "went silent", observer);
    }

    fn builder_dropped(&mut self, h: u32, joins: u32, observer: &mut dyn Observer) {
        let now = self.now;
        if self.rust().builders.get(&h).is_none_or(|b| b.joins != joins) {
            return;
        }
        self.rust().builders.remove(&h);
        let gone = self.hydra.machines[h as usize].host.clone();
        let destroyed = self
            .by_name
            .get(gone.as_str())
            .is_none_or(|&i| self.instances[i as usize].state == InstanceState::Destroyed);
        if destroyed && self.hydra.machines[h as usize].provisioned {
            self.hydra.remove_machine(h, now);
        } else {
            self.hydra.leave_builder(h, now);
        }
        self.builder_lifecycle(h, "dropped by the runner (connection timed out)", observer);
    }

    /// An instance went away (stopped, destroyed, interrupted): its builder
    /// leaves with it, unless it is silent (see the module documentation).
    pub(super) fn builder_gone(&mut self, h: u32) {
        let rust = self.rust();
        if rust.keeps_slots(h) {
            return;
        }
        rust.builders.remove(&h);
    }

    /// Carries out a pass's builder service stops, as the live driver does;
    /// the stops and destroys follow once the services have stopped.
    pub(super) fn retire(&mut self, commands: &[Command], observer: &mut dyn Observer) {
        let mut spared = BTreeSet::new();
        for c in commands {
            let Command::StopBuilderService { deployment, idle: true, .. } = c else { continue };
            let h = self.by_name.get(deployment).and_then(|&i| self.instances[i as usize].hydra);
            if let Some(h) = h.filter(|&h| self.hydra.machines[h as usize].current_jobs > 0) {
                self.stability.retire_race_caught += 1;
                spared.insert(deployment.clone());
                self.builder_lifecycle(h, "spared: given a step since the status was read", observer);
            }
        }
        let batch: Vec<Command> = commands
            .iter()
            .filter(|c| {
                matches!(c, Command::StopBuilderService { .. } | Command::Stop { .. } | Command::Destroy { .. })
            })
            .filter(|c| !c.deployment().is_some_and(|d| spared.contains(d)))
            .cloned()
            .collect();
        if batch.is_empty() {
            return;
        }
        let at = self.now.plus_ms(secs_ms(self.rust().model.service_stop));
        let rust = self.rust();
        rust.next_batch += 1;
        let id = rust.next_batch;
        rust.retiring.insert(id, batch);
        self.schedule(at, Event::Rust(RustEvent::Retire { batch: id }));
    }

    fn retirements_take_effect(&mut self, batch: u64, observer: &mut dyn Observer) {
        let Some(commands) = self.rust().retiring.remove(&batch) else { return };
        for c in &commands {
            let Command::StopBuilderService { deployment, .. } = c else { continue };
            let Some(&i) = self.by_name.get(deployment) else { continue };
            if self.instances[i as usize].state != InstanceState::Running {
                continue;
            }
            self.stability.builder_service_stops += 1;
            let Some(h) = self.instances[i as usize].hydra else { continue };
            if self.rust().builders.get(&h).is_some_and(|b| b.silent_since.is_none()) {
                self.rust().builders.remove(&h);
                self.hydra.leave_builder(h, self.now);
                self.builder_lifecycle(h, "service stopped: left the runner", observer);
            }
        }
        self.take_down(&commands, observer);
    }

    /// The queue status the provisioner reads from the runner's REST API,
    /// and, when asked, the three documents (as one object with `status`,
    /// `machines` and `queues`) after checking that the production reader
    /// makes the same status of them.
    pub(super) fn rust_status(&self, uptime_s: i64, document: bool) -> Result<(QueueStatus, Option<Value>), SimError> {
        let rust = self.rust.as_ref().expect("only called under the Rust runner");
        let epoch = self.scenario.epoch;
        let unix = |ms: i64| epoch.saturating_add(ms.div_euclid(1000));
        let now_s = unix(self.now.0);
        let kinds = self.hydra.kinds();
        let mut systems = rust.systems.clone();
        systems.extend(kinds.iter().map(|k| k.system.clone()));

        let mut machine_types: BTreeMap<String, TypeStatus> =
            systems.iter().map(|s| (s.clone(), TypeStatus::default())).collect();
        let mut active_steps = 0u64;
        for k in kinds {
            active_steps += k.running;
            if !k.features.is_empty() && k.runnable + k.running == 0 {
                continue;
            }
            let t = machine_types.entry(type_key(&k.system, &k.features)).or_default();
            t.runnable += k.runnable;
            t.running += k.running;
        }
        crate::status::squash_i686(&mut machine_types);
        let mut machines = BTreeMap::new();
        let mut liveness = BTreeMap::new();
        for h in self.hydra.builders() {
            let m = &self.hydra.machines[h as usize];
            let running = self.hydra.running_on(h);
            let current_jobs = u64::from(m.current_jobs).max(running.len() as u64);
            machines.insert(m.host.clone(), BuilderStatus { enabled: true, current_jobs, idle_since: None });
            let last_ping = rust.last_ping_ms(h, self.now).map(unix).filter(|&t| t > 0);
            let running_tries = running.iter().map(|s| s.tries).max();
            liveness.insert(m.host.clone(), BuilderLiveness { last_ping, running_tries });
        }
        let mut status = crate::status::up(Some(now_s), uptime_s, (true, machine_types), machines, Some(active_steps));
        status.machines_known = true;
        status.liveness = liveness;
        if !document {
            return Ok((status, None));
        }

        let queued = self.hydra.queued_steps();
        let mut stats = Map::new();
        let mut queues: BTreeMap<&str, Vec<Value>> = systems.iter().map(|s| (s.as_str(), vec![])).collect();
        for s in &queued {
            let system = kinds[s.kind as usize].system.as_str();
            queues.entry(system).or_default().push(queue_entry(s, unix));
        }
        for system in &systems {
            let (total, active) = kinds
                .iter()
                .filter(|k| k.system == *system)
                .fold((0, 0), |(t, a), k| (t + k.runnable + k.running, a + k.running));
            stats.insert(system.clone(), json!({"activeRunnable": active, "totalRunnable": total}));
        }
        let status_doc = json!({
            "queueRunner": {"status": "up", "time": rfc3339(now_s), "uptime": uptime_s as f64, "queueStats": stats},
            "machines": {}, "jobsets": {},
        });
        let mut builders = Map::new();
        for h in self.hydra.builders() {
            let m = &self.hydra.machines[h as usize];
            let spec = self.hydra.spec_of(h);
            let last_ping = rust.last_ping_ms(h, self.now).map_or(0, unix);
            let jobs: Vec<String> = self.hydra.running_on(h).iter().map(|s| drv_name(s.step_id)).collect();
            builders.insert(
                m.host.clone(),
                json!({
                    "systems": spec.systems, "maxJobs": m.max_jobs, "speedFactor": m.speed_factor,
                    "supportedFeatures": spec.supported, "mandatoryFeatures": spec.mandatory,
                    "stats": {"currentJobs": m.current_jobs, "lastPing": last_ping,
                              "sinceLastPing": now_s.saturating_sub(last_ping)},
                    "jobs": jobs,
                }),
            );
        }
        let machines_doc = json!({"machinesCount": builders.len(), "machines": builders});
        let queues_doc = json!({ "queues": queues });
        let mut features_of = |drv: &str| -> Result<BTreeSet<String>, String> {
            let kind = step_of_drv(drv).and_then(|id| self.hydra.kind_of_step(id));
            kind.map(|k| kinds[k as usize].features.clone()).ok_or_else(|| format!("{drv}: no such step"))
        };
        let docs = Documents { status: &status_doc, machines: &machines_doc, queues: &queues_doc };
        let parsed = runner_status::parse(docs, &mut features_of)
            .map_err(|e| SimError::Internal(format!("the simulated Rust runner status does not parse: {e}")))?;
        if parsed != status {
            return Err(SimError::Internal(format!(
                "pass {}: the Rust runner status read back from its documents differs from the one the simulator built",
                self.passes
            )));
        }
        Ok((status, Some(json!({"status": status_doc, "machines": machines_doc, "queues": queues_doc}))))
    }
}

fn queue_entry(s: &QueuedStep, unix: impl Fn(i64) -> Seconds) -> Value {
    json!({
        "drvPath": drv_name(s.step_id), "alreadyScheduled": s.scheduled, "runnable": true,
        "finished": false, "cancelled": false, "runnableSince": rfc3339(unix(s.runnable_at.max(0))),
        "tries": s.tries,
    })
}
