//! The scaling engine: one pure function, [`decide`], from the configuration,
//! an [`Observation`] (queue status + fleet) and `now` to a [`Plan`].
//!
//! It reads no clock, file or process and draws no random number; it never
//! fails and never panics on odd input: problems become reasons and warnings
//! in the plan. The live driver and the simulator both call it with the same
//! types. It does not carry out its plan (see `driver` and `sim`).
//!
//! The pass follows the original hydra-provisioner (ARCHITECTURE.md gives
//! the rules and every deliberate difference): per machine type, choose
//! existing deployments to serve demand, create at most a few new ones, then
//! walk every other deployment through the keep rules (paid time, busy, grace
//! period) and expire the rest, minding paid time before stopping or
//! destroying anything. This file is the pass both modes share; the rules
//! that differ live in one file per mode, `original.rs` (`quirks =
//! "original"`, defects included) and `fixed.rs` (the default).
//!
//! The queue runner's generation is a second, independent axis: the
//! [`Runner`] seam says how builders meet the runner (a machines file for
//! the C++ runner, below; self-registration and no drain for the Rust one,
//! `rust_runner.rs`) and guards every stop and destroy; either quirks mode
//! decides under either generation.

pub mod activity;
mod fixed;
mod original;
pub mod plan;
pub mod reason;
pub mod rust_runner;

pub use plan::{Action, Command, Listing, MachineDecision, Plan, SilentBuilder, TypeDecision};
pub use reason::{ActivitySource, Reason, TypeNote};

use crate::config::{Config, Quirks, RustRunnerConfig, TypeConfig};
use crate::model::{
    BuilderStatus, Deployment, MachineMemory, MachineState, Observation, QueueHealth, QueueStatus, Seconds, Timestamp,
};
use activity::{Activity, could_be_building};
use smol_str::SmolStr;
use std::collections::{BTreeMap, BTreeSet};

/// The original's fallback for a missing `lastActive`: the queue runner's
/// start plus half an hour.
pub const UPTIME_FALLBACK_PAD: Seconds = 1800;

/// Decides one pass. Pure and total: same inputs, same plan.
///
/// `now` may carry a fraction of a second (see [`Timestamp`]); whole
/// seconds (`i64`) convert.
pub fn decide(config: &Config, observation: &Observation, now: impl Into<Timestamp>) -> Plan {
    let mut plan = decide_without_preview(config, observation, now);
    plan.machines_file_preview = plan.render_preview(config, &observation.fleet.deployments);
    plan
}

/// [`decide`] without the text of [`Plan::machines_file_preview`], which is
/// left empty: the same decisions, commands, listings and memory, for a
/// caller that shows the preview seldom or never (the simulator, which
/// renders it with [`Plan::render_preview`] only for the passes it records).
pub fn decide_without_preview(config: &Config, observation: &Observation, now: impl Into<Timestamp>) -> Plan {
    let mut pass = Pass::new(config, observation, now.into());
    pass.silent_builders = pass.runner.watch(&pass);
    pass.choose_for_demand();
    pass.walk_the_rest();
    pass.finish()
}

/// The plan's memory as a map: for a name decided twice (an ambiguous
/// one), the later entry, as successive inserts would leave.
fn memory_map(entries: Vec<(SmolStr, MachineMemory)>) -> BTreeMap<SmolStr, MachineMemory> {
    // Sorted by name, then by when decided, the last of a name is the one
    // kept. Positions are sorted rather than the entries, which are large.
    let mut order: Vec<(&str, u32)> =
        entries.iter().enumerate().map(|(i, (name, _))| (name.as_str(), i as u32)).collect();
    order.sort_unstable();
    let mut kept: Vec<u32> = Vec::with_capacity(order.len());
    for (k, &(name, i)) in order.iter().enumerate() {
        if order.get(k + 1).is_none_or(|&(next, _)| next != name) {
            kept.push(i);
        }
    }
    let mut entries: Vec<Option<(SmolStr, MachineMemory)>> = entries.into_iter().map(Some).collect();
    // Sorted and unique, the map is built in one sweep.
    kept.into_iter().filter_map(|i| entries[i as usize].take()).collect()
}

/// Fingerprint of what a deploy of `tc` installs for `tag`: a deployment
/// whose last successful deploy had the same fingerprint is current. FNV-1a,
/// because it must be stable across releases and platforms.
pub fn deploy_fingerprint(tc: &TypeConfig, tag: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [tc.nixops_expr.as_str(), &tc.nix_path.join("\u{1f}"), &tc.canonical, tag];
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `d`'s builder in `status`, found by the key `runner` gives it.
fn builder_in<'s>(status: &'s QueueStatus, runner: &dyn Runner, d: &Deployment) -> Option<&'s BuilderStatus> {
    runner.builder_key(d).and_then(|k| status.builder(k))
}

/// How builders meet the queue runner, by its generation: what the
/// machines file is for, how a builder is found in the status, and what
/// must hold before one is stopped or destroyed. Every method has the C++
/// runner's answer as its default.
trait Runner {
    /// Whether Hydra learns its builders from a machines file (C++), which
    /// the pass then writes and drains through; else builders register
    /// themselves and nothing is written.
    fn lists_machines(&self) -> bool {
        true
    }

    /// The key of the deployment's builder in the status's machines: the
    /// address written to the machines file.
    fn builder_key<'d>(&self, d: &'d Deployment) -> Option<&'d str> {
        d.host()
    }

    /// NixOps arguments of a new deployment besides `type` and `tag`.
    fn builder_args(&self, _deployment: &str, _tc: &TypeConfig) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Whether an existing deployment may be chosen to serve demand.
    fn may_serve(&self, _pass: &Pass<'_>, _d: &Deployment) -> bool {
        true
    }

    /// Builders to report as silent.
    fn watch(&self, _pass: &Pass<'_>) -> Vec<SilentBuilder> {
        vec![]
    }

    /// A decision for an unchosen deployment before the quirks mode's keep rules.
    fn decide_first(&self, _pass: &Pass<'_>, _d: &Deployment) -> Option<(Action, Reason)> {
        None
    }

    /// What becomes of a busy machine nobody needs (the fixed rules).
    fn busy_action(&self) -> Action {
        Action::Drain
    }

    /// What to do instead when a machine in `state` may not be stopped or
    /// destroyed for `reason` yet.
    fn guard_retire(
        &self,
        _pass: &Pass<'_>,
        _d: &Deployment,
        _state: MachineState,
        _reason: &Reason,
    ) -> Option<(Action, Reason)> {
        None
    }

    /// A command that must succeed before the machine is stopped or destroyed.
    fn before_retire(&self, _d: &Deployment, _state: MachineState, _reason: &Reason) -> Option<Command> {
        None
    }

    /// Whether a kept machine may be redeployed now (else only touched).
    fn may_redeploy(&self, _pass: &Pass<'_>, _d: &Deployment) -> bool {
        true
    }
}

/// The C++ queue runner: a machines file lists the builders.
struct CppRunner;

impl Runner for CppRunner {}

fn runner_rules(rust: Option<&RustRunnerConfig>) -> Box<dyn Runner + '_> {
    match rust {
        Some(config) => Box::new(rust_runner::RustRunner { config }),
        None => Box::new(CppRunner),
    }
}

pub(crate) struct Pass<'a> {
    config: &'a Config,
    runner: Box<dyn Runner + 'a>,
    silent_builders: Vec<SilentBuilder>,
    obs: &'a Observation,
    /// The time of the pass as given (billing reads its fraction).
    at: Timestamp,
    /// The same in whole seconds, as every other rule compares times.
    now: Seconds,
    original: bool,
    /// Why nothing may be stopped or destroyed, if so.
    hold_all: Option<String>,
    /// Whether demand can be read at all (false: not even creations for minMachines).
    creations_allowed: bool,
    /// Our deployments, in the inventory's order.
    deployments: Vec<&'a Deployment>,
    /// Each deployment's builder in the status, by its position in the
    /// fleet: looked up once, read several times per decision.
    builders: Vec<Option<&'a BuilderStatus>>,
    /// Each distinct `type` argument in the fleet, resolved once. A fleet
    /// has a handful, so a list searched in order beats a tree.
    type_args: Vec<(&'a str, Option<&'a TypeConfig>)>,
    fingerprints: BTreeMap<&'a str, SmolStr>,
    /// Deployments per configured type (canonical key), in inventory order.
    by_type: BTreeMap<&'a str, Vec<&'a Deployment>>,
    // Names borrowed from the observation: a pass compares them often
    // and copies one only into the plan.
    ambiguous: BTreeSet<&'a str>,
    /// Our deployments' names, sorted: a new name must not be one of them
    /// (nor, in the fixed mode, one of the fleet's other names). New names
    /// never repeat one another, since the cursor only goes up.
    our_names: Vec<&'a str>,
    name_cursor: u64,
    /// Deployments decided so far, by identity. Those decided while serving
    /// demand are never ambiguous, so identity and name agree for the ones
    /// `walk_the_rest` skips.
    decided: Vec<&'a Deployment>,
    /// Deployments the original's reuse loop would have checked itself.
    checked: BTreeSet<&'a str>,
    types: Vec<TypeDecision>,
    machines: Vec<MachineDecision>,
    creates: Vec<Command>,
    starts: Vec<Command>,
    deploys: Vec<Command>,
    /// Commands that must succeed before a stop or destroy (a builder's service stop).
    retire_first: Vec<Command>,
    stops: Vec<Command>,
    destroys: Vec<Command>,
    listings: Vec<Listing>,
    /// The plan's memory in the order it was decided; a later entry for a
    /// name replaces an earlier one, as inserting into the map would.
    memory: Vec<(SmolStr, MachineMemory)>,
    warnings: Vec<String>,
}

impl<'a> Pass<'a> {
    fn new(config: &'a Config, obs: &'a Observation, at: Timestamp) -> Pass<'a> {
        let original = config.quirks == Quirks::Original;
        let status = &obs.status;
        let (hold_all, creations_allowed) = match &status.health {
            QueueHealth::Up if !status.has_machine_types => {
                (Some("the status is up but has no machineTypes".to_string()), false)
            }
            QueueHealth::Up => (None, true),
            // The original read a down queue runner as an empty queue.
            QueueHealth::Down { .. } if original => (None, true),
            QueueHealth::Down { detail } => (Some(format!("queue runner down: {detail}")), true),
            QueueHealth::Unknown { detail } => (Some(detail.clone()), false),
        };
        let runner = runner_rules(config.rust_runner.as_ref());
        let deployments: Vec<&Deployment> = obs.fleet.deployments.iter().collect();
        let builders = deployments.iter().map(|d| builder_in(status, runner.as_ref(), d)).collect();
        let mut our_names: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
        our_names.sort_unstable();
        let ambiguous: BTreeSet<&str> = our_names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        let mut warnings = vec![];
        for name in &ambiguous {
            warnings
                .push(format!("deployment name `{name}` is ambiguous (more than one deployment has it); left alone"));
        }
        let mut type_args: Vec<(&str, Option<&TypeConfig>)> = vec![];
        let mut by_type: BTreeMap<&str, Vec<&Deployment>> = BTreeMap::new();
        for d in &deployments {
            let arg = d.machine_type.as_str();
            let tc = match type_args.iter().find(|(a, _)| *a == arg) {
                Some(&(_, tc)) => tc,
                None => {
                    let tc = config.type_for(arg);
                    type_args.push((arg, tc));
                    tc
                }
            };
            if let Some(tc) = tc {
                by_type.entry(tc.canonical.as_str()).or_default().push(d);
            }
        }
        // Room for a decision per machine and the creations a pass allows
        // (each type's maxCreationsPerPass is usually small); more grows.
        let per_machine = deployments.len() + 2 * config.system_types.len();
        let fingerprints = config
            .system_types
            .iter()
            .map(|(k, tc)| (k.as_str(), SmolStr::new(deploy_fingerprint(tc, &config.tag))))
            .collect();
        Pass {
            config,
            runner,
            silent_builders: vec![],
            obs,
            at,
            now: at.secs(),
            original,
            hold_all,
            creations_allowed,
            deployments,
            builders,
            type_args,
            fingerprints,
            by_type,
            ambiguous,
            our_names,
            name_cursor: 0,
            decided: Vec::with_capacity(per_machine),
            checked: BTreeSet::new(),
            types: vec![],
            machines: Vec::with_capacity(per_machine),
            creates: vec![],
            starts: vec![],
            deploys: Vec::with_capacity(per_machine),
            retire_first: vec![],
            stops: vec![],
            destroys: vec![],
            listings: Vec::with_capacity(per_machine),
            memory: Vec::with_capacity(per_machine),
            warnings,
        }
    }

    /// The machine types this pass provisions, in key order: the union of
    /// the status's types and the configured ones, as the original walked
    /// it (a configured type absent from the status has no runnables and
    /// still gets `minMachines`). Status types nobody configured are noted.
    fn types_to_provision(&mut self) -> Vec<&'a TypeConfig> {
        for (key, ts) in &self.obs.status.machine_types {
            if !self.config.system_types.contains_key(key) {
                self.types.push(TypeDecision {
                    machine_type: SmolStr::new(key),
                    runnable: ts.runnable,
                    wanted: 0,
                    allowed: 0,
                    reused: 0,
                    created: 0,
                    notes: vec![TypeNote::NotConfigured { runnable: ts.runnable }],
                });
            }
        }
        self.config.system_types.values().collect()
    }

    /// The state the rules decide on. The original saw a fresh check only
    /// for the machines its reuse loop checked; for the others it decided on
    /// the state NixOps had recorded, even when our wider check knows better.
    fn state_of(&self, d: &Deployment) -> MachineState {
        match d.recorded_state {
            Some(recorded) if self.original && !self.checked.contains(d.name.as_str()) => recorded,
            _ => d.state,
        }
    }

    fn type_of(&self, d: &Deployment) -> Option<&'a TypeConfig> {
        let arg = d.machine_type.as_str();
        self.type_args.iter().find(|(a, _)| *a == arg).and_then(|&(_, tc)| tc)
    }

    fn fingerprint(&self, tc: &TypeConfig) -> &SmolStr {
        static NONE: SmolStr = SmolStr::new_static("");
        self.fingerprints.get(tc.canonical.as_str()).unwrap_or(&NONE)
    }

    fn choose_for_demand(&mut self) {
        for tc in self.types_to_provision() {
            let key = tc.canonical.clone();
            let runnable = match self.hold_all {
                Some(_) => 0,
                None => self.obs.status.machine_types.get(key.as_str()).map_or(0, |t| t.runnable),
            };
            let wanted = tc.wanted(runnable);
            let allowed = if self.creations_allowed { tc.allowed(wanted) } else { 0 };
            let mut notes = vec![];
            if let Some(detail) = &self.hold_all {
                notes.push(TypeNote::QueueStatusUnavailable { detail: detail.clone() });
            }
            if wanted > u64::from(tc.max_machines) {
                notes.push(TypeNote::AtMaxMachines { wanted, max: u64::from(tc.max_machines) });
            }

            let candidates: Vec<&'a Deployment> = self
                .by_type
                .get(tc.canonical.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|d| !self.ambiguous.contains(d.name.as_str()))
                // It could never be listed: counting it would leave demand unserved.
                .filter(|d| d.unusable_address().is_none())
                .filter(|d| self.runner.may_serve(self, d))
                .collect();
            let chosen = if self.original {
                let (chosen, checked) = original::reuse(&candidates, allowed);
                self.checked.extend(checked.iter().map(|d| d.name.as_str()));
                chosen
            } else {
                self.fixed_reuse_order(candidates).into_iter().take(allowed as usize).collect()
            };

            let mut have: u64 = 0;
            for d in chosen {
                have += 1;
                self.record(d, Action::Serve, Reason::NeededForDemand { rank: have, allowed });
            }
            let reused = have;
            let short = allowed - have;
            // Validation bounds the setting; the engine holds to the bound
            // whatever built the config, so it never allocates per machine wanted.
            let per_pass = tc.max_creations_per_pass.min(crate::config::MAX_CREATIONS_PER_PASS);
            let creating = short.min(u64::from(per_pass));
            for _ in 0..creating {
                have += 1;
                self.create(tc, Reason::CreatedForDemand { rank: have, allowed });
            }
            if short > creating {
                notes.push(TypeNote::CreationLimitReached { per_pass, short_by: short - creating });
            }
            self.types.push(TypeDecision {
                machine_type: key,
                runnable,
                wanted,
                allowed,
                reused,
                created: creating,
                notes,
            });
        }
        self.types.sort_by(|a, b| a.machine_type.cmp(&b.machine_type));
    }

    fn next_name(&mut self) -> SmolStr {
        // The lowest free number never goes down within a pass: resume the
        // search where the last one ended. A new name is then above every
        // earlier new one, so only existing names can clash with it.
        loop {
            let name = smol_str::format_smolstr!("{}-{}", self.config.tag, self.name_cursor);
            self.name_cursor += 1;
            let taken = self.our_names.binary_search(&name.as_str()).is_ok()
                || (!self.original && self.obs.fleet.other_deployment_names.contains(name.as_str()));
            if !taken {
                return name;
            }
        }
    }

    fn create(&mut self, tc: &TypeConfig, reason: Reason) {
        let name = self.next_name();
        // The original gave new deployments the config's own spelling of the
        // type; we give Hydra's, which every later lookup canonicalises anyway.
        let type_arg = if self.original { tc.key.clone() } else { tc.canonical.clone() };
        self.creates.push(Command::Create {
            deployment: name.clone(),
            machine_type: type_arg.clone(),
            tag: self.config.tag.clone(),
            nixops_expr: tc.nixops_expr.clone(),
            nix_path: tc.nix_path.clone(),
            builder_args: self.runner.builder_args(&name, tc),
        });
        self.deploys.push(self.deploy_command(&name, tc));
        let listed = self.runner.lists_machines();
        if listed {
            self.listings.push(Listing {
                deployment: name.clone(),
                machine_type: tc.canonical.clone(),
                needs_deploy: true,
            });
        }
        self.memory.push((name.clone(), MachineMemory { listed, ..MachineMemory::default() }));
        self.machines.push(MachineDecision {
            deployment: name,
            machine_type: type_arg,
            state: None,
            action: Action::Create,
            listed,
            reason,
        });
    }

    fn deploy_command(&self, name: &SmolStr, tc: &TypeConfig) -> Command {
        Command::Deploy {
            deployment: name.clone(),
            nix_path: tc.nix_path.clone(),
            fingerprint: self.fingerprint(tc).clone(),
        }
    }

    /// Whether a kept machine must be deployed this pass (fixed mode
    /// redeploys only what is not up, changed, failing, or due).
    fn needs_deploy(&self, d: &Deployment, tc: &TypeConfig) -> bool {
        if self.original || d.state != MachineState::Up || d.memory.deploy_failures > 0 {
            return true;
        }
        let m = &d.memory;
        let current = m.deployed_fingerprint.as_ref() == Some(self.fingerprint(tc));
        let due = match m.deployed_at {
            None => true,
            Some(at) => {
                self.config.redeploy_interval > 0 && self.now.saturating_sub(at) >= self.config.redeploy_interval
            }
        };
        (!current || due) && self.runner.may_redeploy(self, d)
    }

    /// Whether `action` deploys the machine. The original redeployed every
    /// machine it kept, including a busy one it left out of the file.
    fn deploys(&self, action: Action) -> bool {
        action.lists() || (self.original && action == Action::Drain)
    }

    /// Books `d`'s decision: its commands, its listing and its memory. A
    /// stop or destroy passes the runner's guard first.
    fn record(&mut self, d: &'a Deployment, action: Action, reason: Reason) {
        let tc = self.type_of(d);
        let state = self.state_of(d);
        let (action, reason) = match action {
            Action::Stop | Action::Destroy => {
                self.runner.guard_retire(self, d, state, &reason).unwrap_or((action, reason))
            }
            _ => (action, reason),
        };
        let mut listing = None;
        if self.deploys(action) {
            match tc {
                Some(tc) => {
                    let deploy = self.needs_deploy(d, tc);
                    if deploy {
                        if !self.original && matches!(state, MachineState::Stopped | MachineState::Stopping) {
                            self.starts.push(Command::Start { deployment: d.name.clone() });
                        }
                        self.deploys.push(self.deploy_command(&d.name, tc));
                    } else {
                        self.deploys.push(Command::TouchKeepAlive { deployment: d.name.clone() });
                    }
                    if action.lists() && self.runner.lists_machines() {
                        listing = Some(Listing {
                            deployment: d.name.clone(),
                            machine_type: tc.canonical.clone(),
                            needs_deploy: deploy,
                        });
                    }
                }
                // Only the original keeps a machine of an unconfigured type:
                // it deployed it with its recorded settings, and could not
                // list it (it crashed there, after every deploy).
                None => self.deploys.push(Command::Deploy {
                    deployment: d.name.clone(),
                    nix_path: vec![],
                    fingerprint: SmolStr::default(),
                }),
            }
        } else if let (Action::Hold, Some(tc)) = (action, tc)
            && d.memory.listed
            && d.host().is_some()
        {
            // Held: it keeps the listing it had.
            listing =
                Some(Listing { deployment: d.name.clone(), machine_type: tc.canonical.clone(), needs_deploy: false });
        }
        // A held machine may be running builds Hydra can see even though we
        // cannot read its status, and a draining one is finishing its steps:
        // neither's dead man's switch may fire meanwhile.
        let kept_alive = action == Action::Hold || (action == Action::Drain && !self.deploys(action));
        if kept_alive && state.is_running() && d.host().is_some() {
            self.deploys.push(Command::TouchKeepAlive { deployment: d.name.clone() });
        }
        if matches!(action, Action::Stop | Action::Destroy) {
            self.retire_first.extend(self.runner.before_retire(d, state, &reason));
        }
        match action {
            Action::Stop => self.stops.push(Command::Stop { deployment: d.name.clone() }),
            Action::Destroy => self.destroys.push(Command::Destroy { deployment: d.name.clone() }),
            _ => {}
        }
        if action != Action::Destroy {
            let memory = self.next_memory(d, action, listing.as_ref());
            self.memory.push((d.name.clone(), memory));
        }
        let listed = listing.is_some();
        self.listings.extend(listing);
        self.decided.push(d);
        self.machines.push(MachineDecision {
            deployment: d.name.clone(),
            machine_type: d.machine_type.clone(),
            state: Some(state),
            action,
            listed,
            reason,
        });
    }

    fn activity(&self, d: &Deployment) -> Activity {
        activity::activity(&self.obs.status, self.builder(d), d, self.type_of(d), self.config.drain_delay)
    }

    /// The deployment's builder in the status, if it is there.
    fn builder(&self, d: &Deployment) -> Option<&'a BuilderStatus> {
        match self.position(d) {
            Some(i) => self.builders[i],
            None => builder_in(&self.obs.status, self.runner.as_ref(), d),
        }
    }

    /// Where `d` is in the fleet, found by identity: every deployment a
    /// pass decides is one of the fleet's, borrowed.
    fn position(&self, d: &Deployment) -> Option<usize> {
        let fleet = &self.obs.fleet.deployments;
        let offset = std::ptr::from_ref(d).addr().wrapping_sub(fleet.as_ptr().addr());
        let i = offset / std::mem::size_of::<Deployment>();
        fleet.get(i).is_some_and(|f| std::ptr::eq(f, d)).then_some(i)
    }

    /// Whether the machine's activity is unknown while it may be building:
    /// such a machine is never stopped or destroyed.
    fn maybe_building(&self, d: &Deployment) -> bool {
        could_be_building(d.state) && self.activity(d) == Activity::Unknown
    }

    /// The guards before any stop or destroy, in both modes: a machine EC2
    /// may still bill (`billed`, each mode's own reading of its state) with
    /// paid time left is left alone (delisted), and one that may be building
    /// is drained. Records the decision if one applies.
    fn spared(&mut self, d: &'a Deployment, billed: bool) -> bool {
        let left = self.paid_time_left(d);
        let threshold = self.config.destroy_paid_threshold;
        if billed && left >= threshold {
            self.record(d, Action::Leave, Reason::PaidTimeLeftBeforeStop { left, threshold });
        } else if self.maybe_building(d) {
            self.record(d, Action::Drain, Reason::ActivityUnknown);
        } else {
            return false;
        }
        true
    }

    /// Whether Hydra currently has the machine enabled (i.e. in its file).
    fn in_hydra(&self, d: &Deployment) -> bool {
        self.runner.lists_machines() && self.builder(d).is_some_and(|b| b.enabled)
    }

    fn next_memory(&self, d: &Deployment, action: Action, listing: Option<&Listing>) -> MachineMemory {
        let state = self.state_of(d);
        let mut m = d.memory.clone();
        if self.obs.status.is_up() {
            match self.activity(d) {
                // Not seen idle: it may have worked since it last was.
                Activity::Busy(_) | Activity::Unknown => m.idle_since = None,
                Activity::Idle if m.idle_since.is_none() => {
                    let reported = self.builder(d).and_then(|b| b.idle_since);
                    m.idle_since = Some(reported.unwrap_or(self.now));
                }
                Activity::Idle => {}
            }
        }
        m.no_address_since = match d.host() {
            None if state.is_running() => Some(self.no_address_since(d)),
            _ => None,
        };
        m.not_running_since = match state.is_running() {
            false => Some(d.memory.not_running_since.unwrap_or(self.now)),
            true => None,
        };
        if action == Action::Hold {
            return m;
        }
        if let Some(listing) = listing {
            m.listed = true;
            // Until a deploy this pass succeeds (`record_deploy`), a machine
            // that was delisted stays delisted since the same moment.
            if !listing.needs_deploy {
                m.delisted_at = None;
            }
        } else {
            // A machine in the last file is delisted now, whatever an older
            // record says (a pass killed before saving its state leaves one).
            if m.listed || (m.delisted_at.is_none() && self.in_hydra(d)) {
                m.delisted_at = Some(self.now);
            }
            m.listed = false;
        }
        m
    }

    /// Since when a running machine is known to have had no address: its
    /// launch, if NixOps recorded one in the past, else our first sight of it
    /// without one, else now.
    fn no_address_since(&self, d: &Deployment) -> Seconds {
        let observed = d.memory.no_address_since.unwrap_or(self.now);
        d.known_launch_time().filter(|&t| t <= self.now).map_or(observed, |t| t.min(observed))
    }

    fn walk_the_rest(&mut self) {
        let rest: Vec<&'a Deployment> =
            self.deployments.iter().copied().filter(|&d| !self.decided.iter().any(|&x| std::ptr::eq(x, d))).collect();
        for d in rest {
            if self.ambiguous.contains(d.name.as_str()) {
                self.record(d, Action::Hold, Reason::OriginalWouldCrash { why: "ambiguous deployment name".into() });
                continue;
            }
            if let Some(detail) = self.hold_all.clone() {
                self.record(d, Action::Hold, Reason::QueueStatusUnavailable { detail });
                continue;
            }
            if let Some((action, reason)) = self.runner.decide_first(self, d) {
                self.record(d, action, reason);
            } else if self.original {
                self.original_keep_rules(d);
            } else {
                self.fixed_keep_rules(d);
            }
        }
    }

    fn paid_time_left(&self, d: &Deployment) -> Seconds {
        let billing = self.type_of(d).map_or(self.config.billing, |t| t.billing);
        billing.paid_time_left(d.known_launch_time(), self.at)
    }

    fn finish(self) -> Plan {
        let mut commands = self.creates;
        commands.extend(self.starts);
        commands.extend(self.deploys);
        if self.hold_all.is_none() && self.runner.lists_machines() {
            commands.push(Command::WriteMachinesFile);
        }
        commands.extend(self.retire_first);
        commands.extend(self.stops);
        commands.extend(self.destroys);
        Plan {
            now: self.at,
            quirks: plan::quirks_name(self.config.quirks).to_string(),
            types: self.types,
            machines: self.machines,
            commands,
            listings: self.listings,
            machines_file_preview: String::new(),
            memory: memory_map(self.memory),
            warnings: self.warnings,
            silent_builders: self.silent_builders,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The map a pass returns is the one inserting its entries one by
        /// one would leave, names decided twice included.
        #[test]
        fn memory_map_keeps_the_last_entry_per_name(entries in prop::collection::vec((0u8..6, any::<i64>()), 0..24)) {
            let entries: Vec<(SmolStr, MachineMemory)> = entries
                .into_iter()
                .map(|(n, t)| (smol_str::format_smolstr!("hydra-{n}"), MachineMemory { idle_since: Some(t), ..MachineMemory::default() }))
                .collect();
            let mut inserted = BTreeMap::new();
            for (name, memory) in entries.clone() {
                inserted.insert(name, memory);
            }
            prop_assert_eq!(memory_map(entries), inserted);
        }
    }
}
