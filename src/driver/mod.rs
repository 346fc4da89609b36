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

mod actuator;
pub mod adoption;
pub mod lock;
pub mod metrics;
mod retire;
pub mod state;

use crate::adapters::nixops::{CheckOutcome, NixOps};
use crate::adapters::{files, queue};
use crate::config::Config;
use crate::engine::{self, Plan};
use crate::model::{Fleet, MachineState, Observation, QueueHealth, QueueStatus, Seconds, Timestamp, host_of_store_uri};
use actuator::Actuator;
use anyhow::Context;
use state::State;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a pass is run.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// The time of the pass (the engine reads its fraction at billing-hour boundaries).
    pub now: Timestamp,
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

/// Runs one production pass. An error means the pass could not observe the
/// fleet (or not safely record its intentions) and changed nothing.
pub fn run_pass(config: &Config, opts: &PassOptions) -> anyhow::Result<PassOutcome> {
    let started = Instant::now();
    let now = opts.now.secs();
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
    let mut failures: Vec<String> = vec![];
    // The memory is rebuilt safely, but someone should look: the pass fails.
    let state_rebuilt = warning.is_some();
    if let Some(w) = warning {
        tracing::error!("{w}");
        failures.push(w);
    }
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

    let mut inventory = match nixops.full_inventory(&config.tag) {
        Ok(inventory) => inventory,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot take the NixOps inventory; nothing was changed");
            return Err(books.unobserved(&mut state, failures, &reading.status, e));
        }
    };
    if adoption::settle(config, &nixops, &mut state, &inventory, now, opts.dry_run, &mut failures) {
        inventory = match nixops.full_inventory(&config.tag) {
            Ok(inventory) => inventory,
            Err(e) => {
                let e = anyhow::Error::new(e).context("cannot take the NixOps inventory after adoptions");
                return Err(books.unobserved(&mut state, failures, &reading.status, e));
            }
        };
    }
    let mut fleet = inventory.fleet;
    if !opts.dry_run {
        fleet = check_up_machines(config, &nixops, fleet, &mut failures);
    }
    mark_what_the_file_lists(config, &fleet, &mut state);
    for d in &mut fleet.deployments {
        d.memory = state.deployments.get(d.name.as_str()).cloned().unwrap_or_default();
        if let Some(address) = d.unusable_address() {
            let problem = format!(
                "{}: address {address:?} cannot be written to the machines file; it is not listed and does not \
                 count as serving (a replacement is created)",
                d.name
            );
            tracing::error!("{problem}");
            failures.push(problem);
        }
    }
    // A creation still awaited keeps its name: a `create` that outlived
    // its pass may yet insert it.
    fleet.other_deployment_names.extend(state.pending_creations.keys().cloned());
    tracing::info!(
        "inventory: {} provisioned deployment(s), {} other deployment(s)",
        fleet.deployments.len(),
        fleet.other_deployment_names.len()
    );

    let observation = Observation { status: reading.status, fleet };
    let plan = engine::decide(config, &observation, opts.now);
    log_plan(&plan);
    if opts.dry_run {
        return Ok(PassOutcome::DryRun { plan: Box::new(plan) });
    }

    let mut actuator = Actuator::new(config, &nixops, now, &state_path, state, &observation.fleet, &plan);
    actuator.failures = failures;
    actuator.carry_out(&plan, opts);
    let (mut state, mut failures) = actuator.finish();
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

/// The machines file Hydra reads is the truth about what is listed: a
/// deployment whose address it has is listed, whatever the state file says
/// (a pass killed between publishing and recording leaves the record
/// behind). Only for `machinesFile`; `updateCommand`'s output cannot be read back.
fn mark_what_the_file_lists(config: &Config, fleet: &Fleet, state: &mut State) {
    if config.update_command.is_some() || config.rust_runner.is_some() {
        return;
    }
    let Ok(text) = std::fs::read_to_string(&config.machines_file) else { return };
    let hosts: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(host_of_store_uri)
        .collect();
    for d in &fleet.deployments {
        if d.host().is_some_and(|h| hosts.contains(h)) {
            let m = state.deployments.entry(d.name.to_string()).or_default();
            if !m.listed {
                tracing::warn!("{}: the machines file lists it though the state file did not say so", d.name);
            }
            m.listed = true;
            m.delisted_at = None;
        }
    }
}

fn seconds(s: Seconds) -> Duration {
    actuator::seconds(s)
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

/// Runs `nixops check` on every machine NixOps records as up (in parallel),
/// as the original did with `check()`, then reads the inventory again:
/// `check` records what it found even when it exits 0 (NixOps marks a
/// terminated spot instance MISSING and reports nothing), so its exit
/// status alone would leave a vanished machine to serve another pass.
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
    let checked: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    drop(names);
    let mut fleet = match nixops.inventory(&config.tag) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("cannot re-read the inventory after checks: {e}");
            fleet
        }
    };
    for d in &mut fleet.deployments {
        if let Some(s) = corrections.get(d.name.as_str()) {
            if d.state != *s {
                tracing::info!("{}: NixOps records it {} after the check; taken as {s}", d.name, d.state);
            }
            d.state = *s;
        }
        // Only machines recorded UP were checked: the engine's original
        // mode decides unchecked ones on what NixOps recorded.
        if checked.contains(d.name.as_str()) && d.state != MachineState::Up {
            d.recorded_state = Some(MachineState::Up);
        }
    }
    fleet
}

/// Logs the plan, one line per decision with its reason.
fn log_plan(plan: &Plan) {
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    for b in &plan.silent_builders {
        let next = if b.replaced { "its service is stopped and it is replaced" } else { "reported" };
        tracing::warn!(
            "{}: the builder has been silent for {}s (no ping to the runner since {}): {next}",
            b.deployment,
            b.silent_for,
            engine::reason::When { t: b.last_ping, now: Some(plan.now.secs()) }
        );
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
        tracing::info!("{}: {:?} ({state}, {listed}): {}", m.deployment, m.action, m.reason.at(plan.now.secs()));
    }
}
