//! Carrying out one plan against NixOps and the machines file, and keeping
//! the books: what Hydra's machines file holds at every moment, the memory
//! for the next pass, the failures.
//!
//! The order of the phases, and why:
//!
//! 1. creates, one after another, each recorded in the state file first;
//! 2. starts of stopped machines that serve again;
//! 3. if anything is delisted or stopped or destroyed in this pass: a
//!    machines file without the delisted machines (nothing new is listed
//!    yet), then the stops and destroys. Scale-in therefore never waits
//!    behind a deploy, however long, and still never touches a machine the
//!    published file lists;
//! 4. deploys and keep-alive touches in parallel; each one that changes
//!    the file (a new machine deployed, a listed one failing) publishes it
//!    at once, so a new machine is not kept out behind a slow deploy of
//!    another;
//! 5. the final file (always written once in a pass that writes the file).
//!
//! Under the Rust runner there is no file, and in step 3 each builder's
//! service is stopped before its machine goes (`retire.rs`).
//!
//! Every change of the listing is recorded in the state file *before* the
//! file that adds a machine is published and *after* the file that removes
//! one is, so a pass killed anywhere leaves a record at least as listed as
//! the truth: the next pass starts a drain later, never earlier (a stale
//! "delisted 600 s ago" once turned into a same-pass delist-and-destroy).
//!
//! A deploy of a machine the checks found unreachable is bounded by
//! `commandTimeout`, not `deployTimeout`. After SIGINT or SIGTERM no new
//! command starts; what ran is recorded, and the rest is skipped.

use super::state::{self, PendingCreation, State};
use super::{PassOptions, metrics};
use crate::adapters::nixops::{CommandError, NixOps};
use crate::adapters::{machines_file, process};
use crate::config::Config;
use crate::engine::{Command, Plan};
use crate::model::{Deployment, Fleet, MachineMemory, MachineState, Seconds};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// One deploy-phase job.
enum Job<'a> {
    Deploy { deployment: &'a str, nix_path: &'a [String], fingerprint: &'a str },
    Touch { deployment: &'a str },
}

impl Job<'_> {
    fn deployment(&self) -> &str {
        match self {
            Job::Deploy { deployment, .. } | Job::Touch { deployment } => deployment,
        }
    }
}

/// Carries out one plan and keeps the books.
pub struct Actuator<'a> {
    config: &'a Config,
    nixops: &'a NixOps,
    now: Seconds,
    state_path: &'a Path,
    /// The state file's contents (pending creations, and the memory as last saved).
    state: State,
    /// The fleet as observed before deciding.
    observed: &'a Fleet,
    /// The latest inventory, for the addresses the machines file shows.
    addresses: Vec<Deployment>,
    /// Memory as the state file had it at the start of the pass.
    previous: BTreeMap<String, MachineMemory>,
    /// Memory for the next pass: the plan's, corrected by results, its
    /// listing fields always what the published file really says.
    memory: BTreeMap<String, MachineMemory>,
    /// The deployments the machines file Hydra reads lists now.
    listed: BTreeSet<String>,
    /// Whether a machines file was published in this pass.
    published: bool,
    /// Listings whose deploy or touch succeeded in this pass.
    confirmed: BTreeSet<String>,
    /// Deployed in this pass: their address may be new.
    deployed: BTreeSet<String>,
    /// Machines that must not be listed: their create, deploy or touch failed.
    left_out: BTreeSet<String>,
    pub failures: Vec<String>,
    interrupted: bool,
    /// Each decided deployment's machine type, for the counters.
    machine_types: BTreeMap<String, String>,
}

impl<'a> Actuator<'a> {
    pub fn new(
        config: &'a Config,
        nixops: &'a NixOps,
        now: Seconds,
        state_path: &'a Path,
        state: State,
        observed: &'a Fleet,
        plan: &Plan,
    ) -> Actuator<'a> {
        let previous = state.deployments.clone();
        let listed: BTreeSet<String> = previous.iter().filter(|(_, m)| m.listed).map(|(k, _)| k.clone()).collect();
        let mut memory: BTreeMap<String, MachineMemory> =
            plan.memory.iter().map(|(name, m)| (name.to_string(), m.clone())).collect();
        for (name, m) in memory.iter_mut() {
            // Nothing is published yet: Hydra reads what it read before.
            m.listed = listed.contains(name);
            if m.listed {
                m.delisted_at = None;
            }
        }
        Actuator {
            config,
            nixops,
            now,
            state_path,
            state,
            observed,
            addresses: observed.deployments.clone(),
            previous,
            memory,
            listed,
            published: false,
            confirmed: BTreeSet::new(),
            deployed: BTreeSet::new(),
            left_out: BTreeSet::new(),
            failures: vec![],
            interrupted: false,
            machine_types: plan
                .machines
                .iter()
                .map(|m| (m.deployment.to_string(), m.machine_type.to_string()))
                .collect(),
        }
    }

    /// Runs every phase of `plan`; [`Actuator::finish`] hands back the state
    /// to save.
    pub fn carry_out(&mut self, plan: &Plan, opts: &PassOptions) {
        let file_planned = plan.commands.contains(&Command::WriteMachinesFile);
        self.create(plan);
        if self.go_on() {
            self.start(plan);
        }
        if self.go_on() {
            self.scale_in(plan, file_planned);
        }
        if self.go_on() {
            self.deploy(plan, opts, file_planned);
        }
        if self.go_on() && file_planned {
            let wanted = self.wanted(plan, true);
            if !self.published || wanted != self.listed {
                self.publish(plan, wanted);
            }
        }
        self.state.deployments = self.memory.clone();
    }

    /// The state file's new contents (memory and counters) and the failures.
    pub fn finish(self) -> (State, Vec<String>) {
        (self.state, self.failures)
    }

    /// Counts `event` for a deployment under its type.
    fn count(&mut self, event: metrics::Event, deployment: &str) {
        let machine_type = self.machine_types.get(deployment).map_or("unknown", String::as_str);
        self.state.counters.record(event, machine_type);
    }

    fn fail(&mut self, deployment: &str, e: impl std::fmt::Display) {
        tracing::error!("{deployment}: {e}");
        self.failures.push(format!("{deployment}: {e}"));
    }

    /// False once a termination signal arrived (recorded once as a failure).
    fn go_on(&mut self) -> bool {
        match process::termination_signal() {
            None => true,
            Some(signal) => {
                if !self.interrupted {
                    self.interrupted = true;
                    let problem = format!("the pass received signal {signal}: the rest of its plan is skipped");
                    tracing::warn!("{problem}");
                    self.failures.push(problem);
                }
                false
            }
        }
    }

    /// Creates, one after another (the engine asks for at most a few per
    /// pass), each recorded in the state file before it starts.
    fn create(&mut self, plan: &Plan) {
        for c in &plan.commands {
            let Command::Create { deployment, machine_type, tag, nixops_expr, nix_path, builder_args } = c else {
                continue;
            };
            if !self.go_on() {
                self.memory.remove(deployment.as_str());
                self.left_out.insert(deployment.to_string());
                continue;
            }
            let record = PendingCreation {
                machine_type: machine_type.to_string(),
                since: self.now,
                nixops_expr: Some(nixops_expr.clone()),
                nix_path: nix_path.clone(),
            };
            self.state.pending_creations.insert(deployment.to_string(), record);
            if let Err(e) = state::save(self.state_path, &self.state) {
                self.state.pending_creations.remove(deployment.as_str());
                self.memory.remove(deployment.as_str());
                self.left_out.insert(deployment.to_string());
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
                .and_then(|()| self.nixops.set_args(deployment, machine_type, tag, builder_args));
            match result {
                Ok(()) => {
                    self.state.pending_creations.remove(deployment.as_str());
                    self.state.counters.record(metrics::Event::Created, machine_type);
                    tracing::info!("{deployment}: created and tagged");
                }
                Err(e) => {
                    // The record stays: next pass adopts or forgets the name.
                    self.memory.remove(deployment.as_str());
                    self.left_out.insert(deployment.to_string());
                    self.fail(deployment, e);
                }
            }
        }
        if let Err(e) = state::save(self.state_path, &self.state) {
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

    /// The deployments the machines file should list now: those confirmed
    /// in this pass, and, while their job may still run (`finished` false)
    /// or if they have none, those the file already lists.
    fn wanted(&self, plan: &Plan, finished: bool) -> BTreeSet<String> {
        let with_job: BTreeSet<&str> = plan
            .commands
            .iter()
            .filter(|c| matches!(c, Command::Deploy { .. } | Command::TouchKeepAlive { .. }))
            .filter_map(Command::deployment)
            .collect();
        plan.listings
            .iter()
            .map(|l| l.deployment.as_str())
            .filter(|name| !self.left_out.contains(*name))
            .filter(|name| {
                self.confirmed.contains(*name)
                    || (self.listed.contains(*name) && !(finished && with_job.contains(name)))
            })
            .map(String::from)
            .collect()
    }

    /// Publishes a machines file listing `wanted` (those with an address),
    /// recording the change in the state file on the safe side of the
    /// write. Returns whether it was written.
    fn publish(&mut self, plan: &Plan, wanted: BTreeSet<String>) -> bool {
        if wanted.iter().any(|n| self.deployed.contains(n)) {
            // New machines got their address and host key during the deploy.
            match self.nixops.inventory(&self.config.tag) {
                Ok(f) => self.addresses = f.deployments,
                Err(e) => self.fail("inventory", format!("{e}; the machines file uses the addresses seen before")),
            }
        }
        let in_file: BTreeSet<String> =
            wanted.into_iter().filter(|n| self.addresses.iter().any(|d| d.name == *n && d.host().is_some())).collect();
        let added: Vec<&String> = in_file.difference(&self.listed).collect();
        if !added.is_empty() {
            let mut ahead = self.state.clone();
            ahead.deployments = self.memory.clone();
            for name in added {
                let m = ahead.deployments.entry(name.clone()).or_default();
                m.listed = true;
                m.delisted_at = None;
            }
            if let Err(e) = state::save(self.state_path, &ahead) {
                self.fail("machines file", format!("not written: cannot record the listing first: {e:#}"));
                return false;
            }
        }
        let not_in_file: BTreeSet<String> =
            plan.listings.iter().map(|l| l.deployment.to_string()).filter(|n| !in_file.contains(n)).collect();
        let contents = plan.render_machines_file(self.config, &self.addresses, &not_in_file);
        let destination = machines_file::destination(self.config);
        if let Err(e) = machines_file::publish(self.config, &contents, seconds(self.config.command_timeout)) {
            self.fail("machines file", format!("{e:#}"));
            return false;
        }
        tracing::info!("machines file written to {destination}: {} machine(s)", contents.lines().count());
        for (name, m) in self.memory.iter_mut() {
            if in_file.contains(name) {
                m.listed = true;
                m.delisted_at = None;
            } else if self.listed.contains(name) {
                m.listed = false;
                m.delisted_at = Some(self.now);
            }
        }
        self.listed = in_file;
        self.published = true;
        self.state.deployments = self.memory.clone();
        if let Err(e) = state::save(self.state_path, &self.state) {
            tracing::warn!("cannot record the machines file in the state file yet: {e:#}");
        }
        true
    }

    /// Publishes the delistings, then stops and destroys in parallel what
    /// the published file no longer lists.
    fn scale_in(&mut self, plan: &Plan, file_planned: bool) {
        let commands: Vec<&Command> =
            plan.commands.iter().filter(|c| matches!(c, Command::Stop { .. } | Command::Destroy { .. })).collect();
        let wanted = self.wanted(plan, false);
        let delists = self.listed.iter().any(|n| !wanted.contains(n));
        let mut file_ok = true;
        if file_planned && (delists || !commands.is_empty()) {
            file_ok = self.publish(plan, wanted);
        }
        if commands.is_empty() {
            return;
        }
        let mut go: Vec<&Command> = vec![];
        for c in commands {
            let name = c.deployment().unwrap_or_default();
            if !file_ok {
                tracing::warn!("{name}: not stopped or destroyed: the machines file could not be written");
            } else if self.listed.contains(name) {
                tracing::warn!("{name}: not stopped or destroyed: the machines file Hydra reads still lists it");
            } else {
                go.push(c);
                continue;
            }
            self.keep_memory_of(name);
        }
        if self.config.rust_runner.is_some() {
            let going: BTreeSet<String> = go.iter().filter_map(|c| c.deployment()).map(String::from).collect();
            let spared = super::retire::stop_builder_services(
                self.config,
                self.nixops,
                plan,
                &going,
                &mut self.state.counters,
                &mut self.failures,
            );
            go.retain(|c| !spared.contains(c.deployment().unwrap_or_default()));
            for name in &spared {
                self.keep_memory_of(name);
            }
        }
        let nixops = self.nixops;
        let results = crate::pool::parallel(&go, self.config.deploy_concurrency as usize, |c| match c {
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
        for (c, result) in go.iter().zip(results) {
            let name = c.deployment().unwrap_or_default();
            match (c, result) {
                (Command::Stop { .. }, Ok(())) => {
                    tracing::info!("{name}: stopped");
                    self.count(metrics::Event::Stopped, name);
                }
                (Command::Destroy { .. }, Ok(())) => {
                    tracing::info!("{name}: destroyed and deleted");
                    self.memory.remove(name);
                    self.count(metrics::Event::Destroyed, name);
                }
                (_, Err(e)) => {
                    self.keep_memory_of(name);
                    self.fail(name, e);
                }
                _ => {}
            }
        }
    }

    /// A machine that was meant to go but is still there keeps what we knew
    /// about it, delisted if the published file no longer lists it.
    fn keep_memory_of(&mut self, name: &str) {
        if self.memory.contains_key(name) {
            return;
        }
        let mut m = self.previous.get(name).cloned().unwrap_or_default();
        if m.listed && !self.listed.contains(name) {
            m.listed = false;
            m.delisted_at = Some(self.now);
        }
        self.memory.insert(name.to_string(), m);
    }

    /// Deploys and keep-alive touches, in parallel (`deployConcurrency`);
    /// the file follows each result that changes it.
    fn deploy(&mut self, plan: &Plan, opts: &PassOptions, file_planned: bool) {
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
            .filter(|j| !self.left_out.contains(j.deployment()))
            .collect();
        let observed = self.observed;
        let unreachable: BTreeSet<&str> = observed
            .deployments
            .iter()
            .filter(|d| d.state == MachineState::Unreachable)
            .map(|d| d.name.as_str())
            .collect();
        let (nixops, config) = (self.nixops, self.config);
        let run = |job: &Job<'_>| {
            let started = Instant::now();
            let result = match job {
                Job::Deploy { deployment, nix_path, .. } => {
                    // An unreachable machine's deploy would most likely hang
                    // until the timeout: give it the short one.
                    let timeout = if unreachable.contains(deployment) {
                        config.command_timeout.min(config.deploy_timeout)
                    } else {
                        config.deploy_timeout
                    };
                    tracing::info!("{deployment}: deploying");
                    nixops.deploy(deployment, nix_path, &opts.config_dir, seconds(timeout))
                }
                Job::Touch { deployment } => {
                    tracing::info!("{deployment}: touching keep-alive (deployment is current)");
                    nixops.touch_keep_alive(deployment)
                }
            };
            (result, started.elapsed())
        };
        let workers = self.config.deploy_concurrency as usize;
        crate::pool::parallel_each(&jobs, workers, run, |i, (result, took)| {
            self.book(&jobs[i], result, *took);
            if file_planned && process::termination_signal().is_none() {
                let wanted = self.wanted(plan, false);
                if wanted != self.listed {
                    self.publish(plan, wanted);
                }
            }
        });
    }

    fn book(&mut self, job: &Job<'_>, result: &Result<(), CommandError>, took: Duration) {
        let name = job.deployment().to_string();
        match (job, result) {
            (Job::Deploy { fingerprint, .. }, Ok(())) => {
                tracing::info!("{name}: deployed in {took:.1?}");
                self.memory.entry(name.clone()).or_default().record_deploy(true, fingerprint, self.now);
                self.confirmed.insert(name.clone());
                self.deployed.insert(name);
            }
            (_, Err(e)) if process::termination_signal().is_some() => {
                // Cut short by the signal: not a failure of the machine.
                self.left_out.insert(name.clone());
                tracing::warn!("{name}: interrupted: {e}");
            }
            (Job::Deploy { fingerprint, .. }, Err(e)) => {
                let m = self.memory.entry(name.clone()).or_default();
                let (listed, delisted_at) = (m.listed, m.delisted_at);
                m.record_deploy(false, fingerprint, self.now);
                // Listing fields follow the published file, not the plan.
                m.listed = listed;
                m.delisted_at = delisted_at;
                self.left_out.insert(name.clone());
                self.count(metrics::Event::DeployFailed, &name);
                self.fail(&name, format!("deploy failed, left out of the machines file: {e}"));
            }
            (Job::Touch { .. }, Ok(())) => {
                tracing::debug!("{name}: keep-alive touched");
                self.confirmed.insert(name);
            }
            (Job::Touch { .. }, Err(e)) => {
                self.left_out.insert(name.clone());
                self.fail(&name, format!("keep-alive touch failed, left out of the machines file: {e}"));
            }
        }
    }
}

pub(super) fn seconds(s: Seconds) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}
