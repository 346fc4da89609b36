//! The live driver: one production pass (`hydra-provisioner run`). It
//! takes the pass lock, observes (queue status, NixOps inventory and
//! checks, the state file), asks the engine for a plan, carries the plan
//! out through the adapters, and records what happened for the next pass.
//!
//! The driver is the only code that reads the wall clock (and only when no
//! `--now` is given, in `cli::run`, plus `Instant`s to time the pass). It
//! decides nothing about the fleet: every create, deploy, stop and destroy
//! comes from the engine's plan. What it adds is the safety of carrying a
//! plan out against real systems:
//!
//! - nothing is changed when the fleet cannot be observed (inventory fails);
//! - a creation is recorded in the state file before `nixops create`, so a
//!   crash before `set-args` tags it leaves a name the next pass adopts;
//! - one failed command never stops the rest of the pass; a failed deploy
//!   keeps that machine out of the machines file;
//! - the machines file is written after the deploys (from a fresh
//!   inventory, for new addresses and host keys) and before any stop or
//!   destroy; if it cannot be written, nothing is stopped or destroyed;
//! - what Hydra was last told (listed or delisted since) is remembered only
//!   as far as it was really written, so two-phase scale-in works across runs.

pub mod lock;
pub mod metrics;
pub mod state;

use crate::adapters::nixops::{CheckOutcome, CommandError, NixOps};
use crate::adapters::{files, machines_file, queue};
use crate::config::Config;
use crate::engine::{self, Command, Plan};
use crate::model::{Fleet, MachineMemory, MachineState, Observation, QueueHealth, QueueStatus, Seconds};
use anyhow::Context;
use state::{PendingCreation, State};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a pass is run.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// The time of the pass, Unix seconds.
    pub now: Seconds,
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// The config file's directory, passed to deploys as `-I hydra-provisioner=<dir>`.
    pub config_dir: PathBuf,
}

/// What a pass did.
#[derive(Debug)]
pub enum PassOutcome {
    /// Another pass holds the lock; this one did nothing.
    Locked { lock_file: PathBuf },
    /// `--dry-run`: the plan, nothing changed.
    DryRun { plan: Box<Plan> },
    /// The plan was carried out; `failures` lists every command that failed.
    /// `observation` is what the engine decided from and `status_document`
    /// the status as the queue runner printed it (for `run --record`).
    Done {
        plan: Box<Plan>,
        failures: Vec<String>,
        observation: Box<Observation>,
        status_document: Option<serde_json::Value>,
    },
}

/// One deploy-phase job.
enum Job<'a> {
    Deploy { deployment: &'a str, nix_path: &'a [String], fingerprint: &'a str },
    Touch { deployment: &'a str },
}

/// Runs one production pass. An error means the pass could not observe the
/// fleet (or not safely record its intentions) and changed nothing.
pub fn run_pass(config: &Config, opts: &PassOptions) -> anyhow::Result<PassOutcome> {
    let started = Instant::now();
    let now = opts.now;
    let nixops = NixOps {
        argv: config.nixops_command.clone(),
        command_timeout: seconds(config.command_timeout),
        deploy_timeout: seconds(config.deploy_timeout),
    };
    let state_path = config.state_dir.join("state.json");

    // The lock comes first: a second pass must not even read a state file
    // the first one is about to rewrite.
    let _lock = if opts.dry_run {
        None
    } else {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create state directory {}", config.state_dir.display()))?;
        let lock_file = config.state_dir.join("lock");
        match lock::try_acquire(&lock_file)? {
            Some(held) => Some(held),
            None => return Ok(PassOutcome::Locked { lock_file }),
        }
    };

    let (mut state, warning) = state::load(&state_path);
    let state_rebuilt = warning.is_some();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let mut failures: Vec<String> = vec![];
    let books = Books { config, state_path: &state_path, now, started, state_rebuilt, dry_run: opts.dry_run };

    let reading = queue::read_status(config, seconds(config.command_timeout));
    match &reading.status.health {
        QueueHealth::Up => tracing::info!(
            "queue runner up: {} machine type(s), {} machine(s) reported",
            reading.status.machine_types.len(),
            reading.status.machines.len()
        ),
        QueueHealth::Down { detail } => tracing::warn!("queue runner down: {detail}"),
        QueueHealth::Unknown { detail } => {
            tracing::error!("queue runner status unknown: {detail}; nothing will be stopped or destroyed")
        }
    }
    if let Some(problem) = reading.problem {
        failures.push(problem);
    }

    let mut fleet = match nixops.inventory(&config.tag) {
        Ok(fleet) => fleet,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot take the NixOps inventory; nothing was changed");
            return Err(books.unobserved(&mut state, failures, &reading.status, e));
        }
    };
    if resolve_pending_creations(config, &nixops, &mut state, &fleet, opts.dry_run, &mut failures) {
        fleet = match nixops.inventory(&config.tag) {
            Ok(fleet) => fleet,
            Err(e) => {
                let e = anyhow::Error::new(e).context("cannot take the NixOps inventory after adopting deployments");
                return Err(books.unobserved(&mut state, failures, &reading.status, e));
            }
        };
    }
    if !opts.dry_run {
        fleet = check_up_machines(config, &nixops, fleet, &mut failures);
    }
    for d in &mut fleet.deployments {
        d.memory = state.deployments.get(&d.name).cloned().unwrap_or_default();
    }
    tracing::info!(
        "inventory: {} provisioned deployment(s), {} other deployment(s)",
        fleet.deployments.len(),
        fleet.other_deployment_names.len()
    );

    let observation = Observation { status: reading.status, fleet };
    let plan = engine::decide(config, &observation, now);
    log_plan(&plan);
    if opts.dry_run {
        return Ok(PassOutcome::DryRun { plan: Box::new(plan) });
    }

    let mut actuator = Actuator {
        config,
        nixops: &nixops,
        now,
        state_path: &state_path,
        previous: state.deployments.clone(),
        memory: plan.memory.clone(),
        left_out: BTreeSet::new(),
        failures,
        counters: state.counters.clone(),
    };
    actuator.create(&plan, &mut state);
    actuator.start(&plan);
    actuator.deploy(&plan, opts);
    let file_written = actuator.publish_machines_file(&plan, &observation.fleet);
    actuator.scale_in(&plan, file_written);

    state.deployments = actuator.memory;
    state.counters = actuator.counters;
    let mut failures = actuator.failures;
    let outcome = if failures.is_empty() { metrics::Outcome::Success } else { metrics::Outcome::Failure };
    let listed: BTreeSet<String> =
        state.deployments.iter().filter(|(_, m)| m.listed).map(|(name, _)| name.clone()).collect();
    let decided = metrics::Decided { fleet: &observation.fleet, plan: &plan, listed: &listed };
    books.close(&mut state, outcome, &mut failures, &observation.status, Some(decided));
    tracing::info!("pass finished in {:.1?}: {} command(s) failed", started.elapsed(), failures.len());
    Ok(PassOutcome::Done {
        plan: Box::new(plan),
        failures,
        observation: Box::new(observation),
        status_document: reading.document,
    })
}

fn seconds(s: Seconds) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// Closes a pass's books: counts it, saves the state file with the
/// counters, and writes the Prometheus textfile. Passes that change nothing
/// (`--dry-run`) are not counted.
struct Books<'a> {
    config: &'a Config,
    state_path: &'a Path,
    now: Seconds,
    started: Instant,
    state_rebuilt: bool,
    dry_run: bool,
}

impl Books<'_> {
    /// Counts the pass as `outcome` and publishes; a state file that cannot
    /// be written is one more failure, and the textfile then counts the pass
    /// as failed (its counts are lost with the write).
    fn close(
        &self,
        state: &mut State,
        outcome: metrics::Outcome,
        failures: &mut Vec<String>,
        status: &QueueStatus,
        decided: Option<metrics::Decided<'_>>,
    ) {
        if self.dry_run {
            return;
        }
        let before = state.counters.clone();
        state.counters.record_pass(outcome, failures.len(), self.now);
        if let Err(e) = state::save(self.state_path, state) {
            let problem = format!("cannot write state file {}: {e:#}", self.state_path.display());
            tracing::error!("{problem}");
            failures.push(problem);
            state.counters = before;
            let outcome = if outcome == metrics::Outcome::Success { metrics::Outcome::Failure } else { outcome };
            state.counters.record_pass(outcome, failures.len(), self.now);
        }
        let Some(path) = &self.config.prometheus_textfile else { return };
        let figures = metrics::PassFigures {
            now: self.now,
            config: self.config,
            status,
            decided,
            command_failures: failures.len(),
            state_rebuilt: self.state_rebuilt,
            duration: self.started.elapsed(),
            counters: &state.counters,
        };
        if let Err(e) = files::write_atomically(path, metrics::render(&figures).as_bytes()) {
            tracing::warn!("cannot write the Prometheus textfile {}: {e:#}", path.display());
        }
    }

    /// A pass that could not observe the fleet: counted as `unobserved`
    /// (with `error` as one more failure), nothing else changed. Returns `error`.
    fn unobserved(
        &self,
        state: &mut State,
        mut failures: Vec<String>,
        status: &QueueStatus,
        error: anyhow::Error,
    ) -> anyhow::Error {
        failures.push(format!("{error:#}"));
        self.close(state, metrics::Outcome::Unobserved, &mut failures, status, None);
        error
    }
}

/// Settles creations a previous pass recorded but may not have finished:
/// a name that is now tagged ours is done; a name that exists without our
/// tag (a crash between `create` and `set-args`) is adopted by setting its
/// arguments, so the engine sees and manages it; a name NixOps does not know
/// was never created. Returns whether anything was adopted.
fn resolve_pending_creations(
    config: &Config,
    nixops: &NixOps,
    state: &mut State,
    fleet: &Fleet,
    dry_run: bool,
    failures: &mut Vec<String>,
) -> bool {
    let mut adopted = false;
    let pending: Vec<(String, PendingCreation)> =
        state.pending_creations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (name, p) in pending {
        if fleet.deployments.iter().any(|d| d.name == name) {
            tracing::info!("{name}: creation recorded by an earlier pass is complete");
            state.pending_creations.remove(&name);
        } else if fleet.other_deployment_names.contains(&name) {
            if dry_run {
                tracing::info!("{name}: would adopt: created by an earlier pass that stopped before tagging it");
                continue;
            }
            match nixops.set_args(&name, &p.machine_type, &config.tag) {
                Ok(()) => {
                    tracing::warn!(
                        "{name}: adopted as type {}: created by an earlier pass (at {}) that stopped before tagging it",
                        p.machine_type,
                        p.since
                    );
                    state.pending_creations.remove(&name);
                    adopted = true;
                }
                Err(e) => {
                    tracing::error!("{name}: cannot adopt an untagged deployment of an earlier pass: {e}");
                    failures.push(e.to_string());
                }
            }
        } else {
            tracing::info!("{name}: creation recorded by an earlier pass never happened; forgetting it");
            state.pending_creations.remove(&name);
        }
    }
    adopted
}

/// Runs `nixops check` on every machine NixOps records as up (in parallel),
/// as the original did with `check()`: a vanished spot instance or an
/// unreachable machine is noticed before the engine relies on it.
fn check_up_machines(config: &Config, nixops: &NixOps, fleet: Fleet, failures: &mut Vec<String>) -> Fleet {
    let names: Vec<&str> =
        fleet.deployments.iter().filter(|d| d.state == MachineState::Up).map(|d| d.name.as_str()).collect();
    if names.is_empty() {
        return fleet;
    }
    let outcomes = crate::pool::parallel(&names, config.deploy_concurrency as usize, |name| nixops.check(name));
    let mut corrections: BTreeMap<String, MachineState> = BTreeMap::new();
    for (name, outcome) in names.iter().zip(&outcomes) {
        match outcome {
            CheckOutcome::Healthy => tracing::debug!("{name}: check: up"),
            CheckOutcome::Problems(bits) => {
                let corrected = outcome.corrected_state();
                let now_state = corrected.map_or(String::new(), |s| format!(": now {s}"));
                tracing::warn!("{name}: check reports problems (bitmask {bits}){now_state}");
                if let Some(s) = corrected {
                    corrections.insert(name.to_string(), s);
                }
            }
            CheckOutcome::Failed(e) => {
                tracing::error!("{name}: check failed, keeping the recorded state: {e}");
                failures.push(e.to_string());
            }
        }
    }
    let flagged = outcomes.iter().any(|o| matches!(o, CheckOutcome::Problems(_)));
    drop(names);
    // `nixops check` records what it found; read it back for the states
    // the bitmask does not spell out (e.g. stopped).
    let mut fleet = if flagged {
        match nixops.inventory(&config.tag) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot re-read the inventory after checks: {e}");
                fleet
            }
        }
    } else {
        fleet
    };
    for d in &mut fleet.deployments {
        if let Some(s) = corrections.get(&d.name) {
            d.state = *s;
        }
    }
    fleet
}

/// Logs the plan, one line per decision with its reason.
fn log_plan(plan: &Plan) {
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    for t in &plan.types {
        tracing::info!(
            "type {}: {} runnable, wants {}, allowed {}, reuses {}, creates {}",
            t.machine_type,
            t.runnable,
            t.wanted,
            t.allowed,
            t.reused,
            t.created
        );
        for n in &t.notes {
            tracing::info!("type {}: {n}", t.machine_type);
        }
    }
    for m in &plan.machines {
        let state = m.state.map_or("new".to_string(), |s| s.to_string());
        let listed = if m.listed { "listed" } else { "not listed" };
        tracing::info!("{}: {:?} ({state}, {listed}): {}", m.deployment, m.action, m.reason.at(plan.now));
    }
}

/// Carries out one plan and keeps the books: the memory to save, the
/// machines left out of the file, the failures.
struct Actuator<'a> {
    config: &'a Config,
    nixops: &'a NixOps,
    now: Seconds,
    state_path: &'a std::path::Path,
    /// Memory as the state file had it at the start of the pass.
    previous: BTreeMap<String, MachineMemory>,
    /// Memory for the next pass (the plan's, corrected by results).
    memory: BTreeMap<String, MachineMemory>,
    /// Machines that must not be listed: their create or deploy failed.
    left_out: BTreeSet<String>,
    failures: Vec<String>,
    /// The state file's counters, with what this pass did.
    counters: metrics::Counters,
}

impl Actuator<'_> {
    /// Counts `event` for a deployment under its type in the plan.
    fn count(&mut self, plan: &Plan, event: metrics::Event, deployment: &str) {
        let machine_type = plan.decision(deployment).map_or("unknown", |d| d.machine_type.as_str());
        self.counters.record(event, machine_type);
    }

    fn fail(&mut self, deployment: &str, e: impl std::fmt::Display) {
        tracing::error!("{deployment}: {e}");
        self.failures.push(format!("{deployment}: {e}"));
    }

    /// Creates, one after another (the engine asks for at most a few per
    /// pass), each recorded in the state file before it starts.
    fn create(&mut self, plan: &Plan, state: &mut State) {
        for c in &plan.commands {
            let Command::Create { deployment, machine_type, tag, nixops_expr, nix_path } = c else { continue };
            state
                .pending_creations
                .insert(deployment.clone(), PendingCreation { machine_type: machine_type.clone(), since: self.now });
            if let Err(e) = state::save(self.state_path, state) {
                state.pending_creations.remove(deployment);
                self.memory.remove(deployment);
                self.left_out.insert(deployment.clone());
                self.fail(
                    deployment,
                    format!("not created: cannot record the creation in the state file first: {e:#}"),
                );
                continue;
            }
            tracing::info!("{deployment}: creating as type {machine_type} ({nixops_expr})");
            let result = self
                .nixops
                .create(deployment, nixops_expr, nix_path)
                .and_then(|()| self.nixops.set_args(deployment, machine_type, tag));
            match result {
                Ok(()) => {
                    state.pending_creations.remove(deployment);
                    self.counters.record(metrics::Event::Created, machine_type);
                    tracing::info!("{deployment}: created and tagged");
                }
                Err(e) => {
                    // The record stays: next pass adopts or forgets the name.
                    self.memory.remove(deployment);
                    self.left_out.insert(deployment.clone());
                    self.fail(deployment, e);
                }
            }
        }
        if let Err(e) = state::save(self.state_path, state) {
            tracing::warn!("cannot update the state file after creations: {e:#}");
        }
    }

    fn start(&mut self, plan: &Plan) {
        for c in &plan.commands {
            let Command::Start { deployment } = c else { continue };
            tracing::info!("{deployment}: starting");
            if let Err(e) = self.nixops.start(deployment) {
                self.fail(deployment, e);
            }
        }
    }

    /// Deploys and keep-alive touches, in parallel (`deployConcurrency`).
    fn deploy(&mut self, plan: &Plan, opts: &PassOptions) {
        let jobs: Vec<Job<'_>> = plan
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Deploy { deployment, nix_path, fingerprint } => {
                    Some(Job::Deploy { deployment, nix_path, fingerprint })
                }
                Command::TouchKeepAlive { deployment } => Some(Job::Touch { deployment }),
                _ => None,
            })
            .filter(|j| {
                let name = match j {
                    Job::Deploy { deployment, .. } | Job::Touch { deployment } => *deployment,
                };
                !self.left_out.contains(name)
            })
            .collect();
        let nixops = self.nixops;
        let results: Vec<(Result<(), CommandError>, Duration)> =
            crate::pool::parallel(&jobs, self.config.deploy_concurrency as usize, |job| {
                let started = Instant::now();
                let result = match job {
                    Job::Deploy { deployment, nix_path, .. } => {
                        tracing::info!("{deployment}: deploying");
                        nixops.deploy(deployment, nix_path, &opts.config_dir)
                    }
                    Job::Touch { deployment } => {
                        tracing::info!("{deployment}: touching keep-alive (deployment is current)");
                        nixops.touch_keep_alive(deployment)
                    }
                };
                (result, started.elapsed())
            });
        for (job, (result, took)) in jobs.iter().zip(results) {
            match (job, result) {
                (Job::Deploy { deployment, fingerprint, .. }, Ok(())) => {
                    tracing::info!("{deployment}: deployed in {took:.1?}");
                    self.memory.entry(deployment.to_string()).or_default().record_deploy(true, fingerprint, self.now);
                }
                (Job::Deploy { deployment, fingerprint, .. }, Err(e)) => {
                    self.memory.entry(deployment.to_string()).or_default().record_deploy(false, fingerprint, self.now);
                    self.count(plan, metrics::Event::DeployFailed, deployment);
                    self.left_out.insert(deployment.to_string());
                    self.fail(deployment, format!("deploy failed, left out of the machines file: {e}"));
                }
                (Job::Touch { deployment }, Ok(())) => tracing::debug!("{deployment}: keep-alive touched"),
                (Job::Touch { deployment }, Err(e)) => {
                    self.left_out.insert(deployment.to_string());
                    self.fail(deployment, format!("keep-alive touch failed, left out of the machines file: {e}"));
                }
            }
        }
    }

    /// Writes the machines file if the plan says so; returns whether it was
    /// written. Also settles the `listed` memory to what Hydra really reads.
    fn publish_machines_file(&mut self, plan: &Plan, observed: &Fleet) -> bool {
        let mut in_file: BTreeSet<String> = BTreeSet::new();
        let mut written = false;
        if plan.commands.contains(&Command::WriteMachinesFile) {
            // New machines got their address and host key during the deploy.
            let refreshed = match self.nixops.inventory(&self.config.tag) {
                Ok(f) => f.deployments,
                Err(e) => {
                    self.fail("inventory", format!("{e}; the machines file uses the addresses seen at the start"));
                    observed.deployments.clone()
                }
            };
            let contents = plan.render_machines_file(self.config, &refreshed, &self.left_out);
            let destination = machines_file::destination(self.config);
            match machines_file::publish(self.config, &contents, seconds(self.config.command_timeout)) {
                Ok(()) => {
                    written = true;
                    for l in &plan.listings {
                        let has_host = refreshed.iter().any(|d| d.name == l.deployment && d.host().is_some());
                        if has_host && !self.left_out.contains(&l.deployment) {
                            in_file.insert(l.deployment.clone());
                        }
                    }
                    tracing::info!("machines file written to {destination}: {} machine(s)", contents.lines().count());
                }
                Err(e) => {
                    self.fail("machines file", format!("{e:#}; nothing is stopped or destroyed in this pass"));
                }
            }
        }
        for (name, m) in self.memory.iter_mut() {
            let previous = self.previous.get(name);
            if !written {
                // Hydra still reads the previous file.
                m.listed = previous.is_some_and(|p| p.listed);
                m.delisted_at = previous.and_then(|p| p.delisted_at);
            } else if in_file.contains(name) {
                m.listed = true;
                m.delisted_at = None;
            } else {
                if previous.is_some_and(|p| p.listed) && m.delisted_at.is_none() {
                    m.delisted_at = Some(self.now);
                }
                m.listed = false;
            }
        }
        written
    }

    /// Stops and destroys, in parallel, only once Hydra has a file without them.
    fn scale_in(&mut self, plan: &Plan, file_written: bool) {
        let commands: Vec<&Command> =
            plan.commands.iter().filter(|c| matches!(c, Command::Stop { .. } | Command::Destroy { .. })).collect();
        if commands.is_empty() {
            return;
        }
        let file_expected = plan.commands.contains(&Command::WriteMachinesFile);
        if file_expected && !file_written {
            for c in &commands {
                let name = c.deployment().unwrap_or_default();
                tracing::warn!("{name}: not stopped or destroyed: the machines file could not be written");
                self.keep_memory_of(name, file_written);
            }
            return;
        }
        let nixops = self.nixops;
        let results = crate::pool::parallel(&commands, self.config.deploy_concurrency as usize, |c| match c {
            Command::Stop { deployment } => {
                tracing::info!("{deployment}: stopping");
                nixops.stop(deployment)
            }
            Command::Destroy { deployment } => {
                tracing::info!("{deployment}: destroying and deleting");
                nixops.destroy_and_delete(deployment)
            }
            _ => Ok(()),
        });
        for (c, result) in commands.iter().zip(results) {
            let name = c.deployment().unwrap_or_default();
            match (c, result) {
                (Command::Stop { .. }, Ok(())) => {
                    tracing::info!("{name}: stopped");
                    self.count(plan, metrics::Event::Stopped, name);
                }
                (Command::Destroy { .. }, Ok(())) => {
                    tracing::info!("{name}: destroyed and deleted");
                    self.memory.remove(name);
                    self.count(plan, metrics::Event::Destroyed, name);
                }
                (_, Err(e)) => {
                    self.keep_memory_of(name, file_written);
                    self.fail(name, e);
                }
                _ => {}
            }
        }
    }

    /// A machine that was meant to go but is still there keeps what we knew
    /// about it, delisted if the file without it was written.
    fn keep_memory_of(&mut self, name: &str, file_written: bool) {
        if self.memory.contains_key(name) {
            return;
        }
        let mut m = self.previous.get(name).cloned().unwrap_or_default();
        if file_written {
            if m.listed && m.delisted_at.is_none() {
                m.delisted_at = Some(self.now);
            }
            m.listed = false;
        }
        self.memory.insert(name.to_string(), m);
    }
}
