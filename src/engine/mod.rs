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
//! destroying anything.

pub mod activity;
pub mod plan;
pub mod reason;

pub use plan::{Action, Command, Listing, MachineDecision, Plan, TypeDecision};
pub use reason::{ActivitySource, Reason, TypeNote};

use crate::config::{Config, Quirks, TypeConfig};
use crate::model::{Deployment, MachineMemory, MachineState, Observation, QueueHealth, Seconds};
use activity::{Activity, could_be_building};
use std::collections::{BTreeMap, BTreeSet};

/// The original's fallback for a missing `lastActive`: the queue runner's
/// start plus half an hour.
pub const UPTIME_FALLBACK_PAD: Seconds = 1800;

/// Decides one pass. Pure and total: same inputs, same plan.
pub fn decide(config: &Config, observation: &Observation, now: Seconds) -> Plan {
    let mut pass = Pass::new(config, observation, now);
    pass.choose_for_demand();
    pass.walk_the_rest();
    pass.finish()
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

/// Sort key that orders `tag-2` before `tag-10`.
fn natural_key(name: &str) -> (&str, u64, &str) {
    match name.rsplit_once('-') {
        Some((prefix, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (prefix, n.parse().unwrap_or(u64::MAX), name)
        }
        _ => (name, 0, name),
    }
}

/// Preference among reuse candidates in fixed mode: what serves soonest.
fn reuse_rank(state: MachineState) -> u8 {
    match state {
        MachineState::Up => 0,
        MachineState::Starting => 1,
        MachineState::Stopped => 2,
        MachineState::Stopping => 3,
        _ => 4,
    }
}

struct Pass<'a> {
    config: &'a Config,
    obs: &'a Observation,
    now: Seconds,
    original: bool,
    /// Why nothing may be stopped or destroyed, if so.
    hold_all: Option<String>,
    /// Whether demand can be read at all (false: not even creations for minMachines).
    creations_allowed: bool,
    deployments: Vec<&'a Deployment>,
    /// Each distinct `type` argument in the fleet, resolved once.
    type_args: BTreeMap<&'a str, Option<&'a TypeConfig>>,
    fingerprints: BTreeMap<&'a str, String>,
    /// Deployments per configured type (canonical key), in name order.
    by_type: BTreeMap<&'a str, Vec<&'a Deployment>>,
    ambiguous: BTreeSet<String>,
    names_taken: BTreeSet<String>,
    name_cursor: u64,
    decided: BTreeMap<String, usize>,
    types: Vec<TypeDecision>,
    machines: Vec<MachineDecision>,
    creates: Vec<Command>,
    starts: Vec<Command>,
    deploys: Vec<Command>,
    stops: Vec<Command>,
    destroys: Vec<Command>,
    listings: Vec<Listing>,
    memory: BTreeMap<String, MachineMemory>,
    warnings: Vec<String>,
}

impl<'a> Pass<'a> {
    fn new(config: &'a Config, obs: &'a Observation, now: Seconds) -> Pass<'a> {
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
        let mut deployments: Vec<&Deployment> = obs.fleet.deployments.iter().collect();
        deployments.sort_by(|a, b| natural_key(&a.name).cmp(&natural_key(&b.name)));
        let mut seen = BTreeSet::new();
        let mut ambiguous = BTreeSet::new();
        for d in &deployments {
            if !seen.insert(d.name.as_str()) {
                ambiguous.insert(d.name.clone());
            }
        }
        let mut names_taken: BTreeSet<String> = deployments.iter().map(|d| d.name.clone()).collect();
        if !original {
            names_taken.extend(obs.fleet.other_deployment_names.iter().cloned());
        }
        let mut warnings = vec![];
        for name in &ambiguous {
            warnings
                .push(format!("deployment name `{name}` is ambiguous (more than one deployment has it); left alone"));
        }
        let type_args: BTreeMap<&str, Option<&TypeConfig>> =
            deployments.iter().map(|d| (d.machine_type.as_str(), config.type_for(&d.machine_type))).collect();
        let mut by_type: BTreeMap<&str, Vec<&Deployment>> = BTreeMap::new();
        for d in &deployments {
            if let Some(Some(tc)) = type_args.get(d.machine_type.as_str()) {
                by_type.entry(tc.canonical.as_str()).or_default().push(d);
            }
        }
        let fingerprints =
            config.system_types.iter().map(|(k, tc)| (k.as_str(), deploy_fingerprint(tc, &config.tag))).collect();
        Pass {
            config,
            obs,
            now,
            original,
            hold_all,
            creations_allowed,
            deployments,
            type_args,
            fingerprints,
            by_type,
            ambiguous,
            names_taken,
            name_cursor: 0,
            decided: BTreeMap::new(),
            types: vec![],
            machines: vec![],
            creates: vec![],
            starts: vec![],
            deploys: vec![],
            stops: vec![],
            destroys: vec![],
            listings: vec![],
            memory: BTreeMap::new(),
            warnings,
        }
    }

    /// The machine types this pass provisions, in key order. The original
    /// walked the status's types; we walk the configured ones so that
    /// `minMachines` holds while a type has no runnables.
    fn types_to_provision(&mut self) -> Vec<&'a TypeConfig> {
        let status_types = &self.obs.status.machine_types;
        for (key, ts) in status_types {
            if !self.config.system_types.contains_key(key) {
                self.types.push(TypeDecision {
                    machine_type: key.clone(),
                    runnable: ts.runnable,
                    wanted: 0,
                    allowed: 0,
                    reused: 0,
                    created: 0,
                    notes: vec![TypeNote::NotConfigured { runnable: ts.runnable }],
                });
            }
        }
        let mut out = vec![];
        for (key, tc) in &self.config.system_types {
            if self.original && !status_types.contains_key(key) {
                self.types.push(TypeDecision {
                    machine_type: key.clone(),
                    runnable: 0,
                    wanted: 0,
                    allowed: 0,
                    reused: 0,
                    created: 0,
                    notes: vec![TypeNote::NotInStatus],
                });
            } else {
                out.push(tc);
            }
        }
        out
    }

    fn type_of(&self, d: &Deployment) -> Option<&'a TypeConfig> {
        self.type_args.get(d.machine_type.as_str()).copied().flatten()
    }

    fn fingerprint(&self, tc: &TypeConfig) -> &str {
        self.fingerprints.get(tc.canonical.as_str()).map_or("", String::as_str)
    }

    fn choose_for_demand(&mut self) {
        for tc in self.types_to_provision() {
            let key = tc.canonical.clone();
            let runnable = match self.hold_all {
                Some(_) => 0,
                None => self.obs.status.machine_types.get(&key).map_or(0, |t| t.runnable),
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

            let mut candidates: Vec<&'a Deployment> = self
                .by_type
                .get(tc.canonical.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|d| !self.ambiguous.contains(&d.name))
                .filter(|d| d.state != MachineState::Missing)
                // It could never be listed: counting it would leave demand unserved.
                .filter(|d| d.unusable_address().is_none())
                .collect();
            if self.original {
                candidates.sort_by_key(|d| d.state != MachineState::Up);
            } else {
                let limit = self.config.max_deploy_failures;
                candidates.retain(|d| limit == 0 || d.memory.deploy_failures < limit);
                candidates.sort_by_key(|d| reuse_rank(d.state));
            }

            let mut have: u64 = 0;
            for d in candidates {
                if have >= allowed {
                    break;
                }
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

    fn next_name(&mut self) -> String {
        // Names are only ever added within a pass, so the lowest free number
        // never goes down: resume the search where the last one ended.
        loop {
            let name = format!("{}-{}", self.config.tag, self.name_cursor);
            self.name_cursor += 1;
            if self.names_taken.insert(name.clone()) {
                return name;
            }
        }
    }

    fn create(&mut self, tc: &TypeConfig, reason: Reason) {
        let name = self.next_name();
        let type_arg = tc.canonical.clone();
        self.creates.push(Command::Create {
            deployment: name.clone(),
            machine_type: type_arg.clone(),
            tag: self.config.tag.clone(),
            nixops_expr: tc.nixops_expr.clone(),
            nix_path: tc.nix_path.clone(),
        });
        self.deploys.push(self.deploy_command(&name, tc));
        self.listings.push(Listing { deployment: name.clone(), machine_type: type_arg.clone(), needs_deploy: true });
        self.memory.insert(name.clone(), MachineMemory { listed: true, ..MachineMemory::default() });
        self.machines.push(MachineDecision {
            deployment: name,
            machine_type: type_arg,
            state: None,
            action: Action::Create,
            listed: true,
            reason,
        });
    }

    fn deploy_command(&self, name: &str, tc: &TypeConfig) -> Command {
        Command::Deploy {
            deployment: name.to_string(),
            nix_path: tc.nix_path.clone(),
            fingerprint: self.fingerprint(tc).to_string(),
        }
    }

    /// Whether a listed machine must be deployed this pass (fixed mode
    /// redeploys only what is not up, changed, failing, or due).
    fn needs_deploy(&self, d: &Deployment, tc: &TypeConfig) -> bool {
        if self.original || d.state != MachineState::Up || d.memory.deploy_failures > 0 {
            return true;
        }
        let m = &d.memory;
        let current = m.deployed_fingerprint.as_deref() == Some(self.fingerprint(tc));
        let due = match m.deployed_at {
            None => true,
            Some(at) => {
                self.config.redeploy_interval > 0 && self.now.saturating_sub(at) >= self.config.redeploy_interval
            }
        };
        !current || due
    }

    /// Books `d`'s decision: its commands, its listing and its memory.
    fn record(&mut self, d: &'a Deployment, action: Action, reason: Reason) {
        let tc = self.type_of(d);
        let listing = match (action, tc) {
            (a, Some(tc)) if a.lists() => {
                let deploy = self.needs_deploy(d, tc);
                if deploy {
                    if !self.original && matches!(d.state, MachineState::Stopped | MachineState::Stopping) {
                        self.starts.push(Command::Start { deployment: d.name.clone() });
                    }
                    self.deploys.push(self.deploy_command(&d.name, tc));
                } else {
                    self.deploys.push(Command::TouchKeepAlive { deployment: d.name.clone() });
                }
                Some(Listing { deployment: d.name.clone(), machine_type: tc.canonical.clone(), needs_deploy: deploy })
            }
            (Action::Hold, Some(tc)) if d.memory.listed && d.host().is_some() => {
                Some(Listing { deployment: d.name.clone(), machine_type: tc.canonical.clone(), needs_deploy: false })
            }
            _ => None,
        };
        // A held machine may be running builds Hydra can see even though we
        // cannot read its status; its dead man's switch must not fire.
        if action == Action::Hold && d.state.is_running() && d.host().is_some() {
            self.deploys.push(Command::TouchKeepAlive { deployment: d.name.clone() });
        }
        match action {
            Action::Stop => self.stops.push(Command::Stop { deployment: d.name.clone() }),
            Action::Destroy => self.destroys.push(Command::Destroy { deployment: d.name.clone() }),
            _ => {}
        }
        if action != Action::Destroy {
            let memory = self.next_memory(d, action, listing.as_ref());
            self.memory.insert(d.name.clone(), memory);
        }
        let listed = listing.is_some();
        self.listings.extend(listing);
        self.decided.insert(d.name.clone(), self.machines.len());
        self.machines.push(MachineDecision {
            deployment: d.name.clone(),
            machine_type: d.machine_type.clone(),
            state: Some(d.state),
            action,
            listed,
            reason,
        });
    }

    fn activity(&self, d: &Deployment) -> Activity {
        activity::activity(&self.obs.status, d, self.type_of(d), self.config.drain_delay)
    }

    /// Whether the machine's activity is unknown while it may be building:
    /// such a machine is never stopped or destroyed.
    fn maybe_building(&self, d: &Deployment) -> bool {
        could_be_building(d.state) && self.activity(d) == Activity::Unknown
    }

    /// Whether Hydra currently has the machine enabled (i.e. in its file).
    fn in_hydra(&self, d: &Deployment) -> bool {
        d.host().and_then(|h| self.obs.status.builder(h)).is_some_and(|b| b.enabled)
    }

    fn next_memory(&self, d: &Deployment, action: Action, listing: Option<&Listing>) -> MachineMemory {
        let mut m = d.memory.clone();
        if self.obs.status.is_up() {
            match self.activity(d) {
                // Not seen idle: it may have worked since it last was.
                Activity::Busy(_) | Activity::Unknown => m.idle_since = None,
                Activity::Idle if m.idle_since.is_none() => {
                    let reported = d.host().and_then(|h| self.obs.status.builder(h)).and_then(|b| b.idle_since);
                    m.idle_since = Some(reported.unwrap_or(self.now));
                }
                Activity::Idle => {}
            }
        }
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

    fn walk_the_rest(&mut self) {
        let rest: Vec<&'a Deployment> =
            self.deployments.iter().copied().filter(|d| !self.decided.contains_key(&d.name)).collect();
        for d in rest {
            if self.ambiguous.contains(&d.name) {
                self.record(d, Action::Hold, Reason::OriginalWouldCrash { why: "ambiguous deployment name".into() });
                continue;
            }
            if let Some(detail) = self.hold_all.clone() {
                self.record(d, Action::Hold, Reason::QueueStatusUnavailable { detail });
                continue;
            }
            if self.original {
                self.original_keep_rules(d);
            } else {
                self.fixed_keep_rules(d);
            }
        }
    }

    fn paid_time_left(&self, d: &Deployment) -> Seconds {
        let billing = self.type_of(d).map_or(self.config.billing, |t| t.billing);
        billing.paid_time_left(d.known_launch_time(), self.now)
    }

    /// Step 4 of the original, defects included.
    fn original_keep_rules(&mut self, d: &'a Deployment) {
        if !d.state.is_running() {
            return self.original_expire(d, Reason::NotRunning { state: d.state });
        }
        let tc = self.type_of(d);
        let grace = tc.map_or(0, |t| t.grace_period);
        let left = self.paid_time_left(d);
        let threshold = self.config.keep_paid_threshold;
        if left >= threshold {
            return self.original_keep_listed(d, Reason::PaidTimeLeft { left, threshold });
        }
        if d.host().is_none() {
            let why = "a running machine without a public IP".to_string();
            return self.record(d, Action::Hold, Reason::OriginalWouldCrash { why });
        }
        if let Activity::Busy(jobs) = self.activity(d) {
            // The original's comment says "don't list it if there is no grace
            // period", and its code does the opposite.
            if grace > 0 {
                return self.original_keep_listed(d, Reason::Busy { jobs });
            }
            return self.record(d, Action::Drain, Reason::Busy { jobs });
        }
        let status = &self.obs.status;
        let (last_active, source) = match tc.and_then(|t| status.machine_types.get(&t.canonical)) {
            Some(ts) if ts.last_active.is_some() => (ts.last_active.unwrap_or(0), ActivitySource::TypeLastActive),
            _ => (
                self.now.saturating_sub(status.uptime).saturating_add(UPTIME_FALLBACK_PAD),
                ActivitySource::UptimeFallback,
            ),
        };
        if self.now.saturating_sub(last_active) < grace {
            let until = last_active.saturating_add(grace);
            return self.original_keep_listed(d, Reason::InGracePeriod { last_active, until, source });
        }
        self.original_expire(d, Reason::Idle { last_active: Some(last_active), source: Some(source) })
    }

    fn original_keep_listed(&mut self, d: &'a Deployment, reason: Reason) {
        if self.type_of(d).is_none() {
            let why = format!("kept deployment `{}` has unconfigured type `{}`", d.name, d.machine_type);
            self.warnings.push(format!("the original provisioner would crash here: {why}"));
            return self.record(d, Action::Hold, Reason::OriginalWouldCrash { why });
        }
        self.record(d, Action::Keep, reason)
    }

    /// The guards before any stop or destroy, in both modes: a running
    /// machine with paid time left is left alone (delisted), and one that
    /// may be building is drained. Records the decision if one applies.
    fn spared(&mut self, d: &'a Deployment) -> bool {
        let left = self.paid_time_left(d);
        let threshold = self.config.destroy_paid_threshold;
        if d.state.is_running() && left >= threshold {
            self.record(d, Action::Leave, Reason::PaidTimeLeftBeforeStop { left, threshold });
        } else if self.maybe_building(d) {
            self.record(d, Action::Drain, Reason::ActivityUnknown);
        } else {
            return false;
        }
        true
    }

    /// Step 7 of the original.
    fn original_expire(&mut self, d: &'a Deployment, reason: Reason) {
        if self.spared(d) {
            return;
        }
        let stop_on_idle = self.type_of(d).is_some_and(|t| t.stop_on_idle);
        if !stop_on_idle {
            self.record(d, Action::Destroy, reason)
        } else if d.state != MachineState::Stopped {
            // Including MISSING ones, "stopped" again every pass.
            self.record(d, Action::Stop, reason)
        } else {
            self.record(d, Action::Leave, Reason::Stopped)
        }
    }

    /// Our keep rules: the original's, with its defects fixed.
    fn fixed_keep_rules(&mut self, d: &'a Deployment) {
        if let Activity::Busy(jobs) = self.activity(d) {
            return self.record(d, Action::Drain, Reason::Busy { jobs });
        }
        let tc = self.type_of(d);
        if !d.state.is_running() {
            if d.state == MachineState::Stopped && tc.is_some_and(|t| t.stop_on_idle) {
                return self.record(d, Action::Leave, Reason::Stopped);
            }
            return self.fixed_expire(d, Reason::NotRunning { state: d.state });
        }
        let Some(tc) = tc else {
            let machine_type = d.machine_type.clone();
            return self.fixed_expire(d, Reason::TypeNotConfigured { machine_type });
        };
        if let Some(address) = d.unusable_address() {
            let address = address.to_string();
            return self.fixed_expire(d, Reason::UnusableAddress { address });
        }
        if d.host().is_none() {
            return self.record(d, Action::Hold, Reason::NoAddress);
        }
        // Before the paid-time rule: keeping a machine listed means deploying
        // it, and its deploys keep failing.
        let limit = self.config.max_deploy_failures;
        if limit > 0 && d.memory.deploy_failures >= limit {
            let failures = d.memory.deploy_failures;
            return self.fixed_expire(d, Reason::DeployFailedRepeatedly { failures, limit });
        }
        let left = self.paid_time_left(d);
        let threshold = self.config.keep_paid_threshold;
        if left >= threshold {
            return self.record(d, Action::Keep, Reason::PaidTimeLeft { left, threshold });
        }
        let (last_active, source) = self.last_active(d, tc);
        if self.now.saturating_sub(last_active) < tc.grace_period {
            let until = last_active.saturating_add(tc.grace_period);
            return self.record(d, Action::Keep, Reason::InGracePeriod { last_active, until, source });
        }
        let uptime = self.obs.status.uptime;
        let guard = self.config.restart_guard;
        if uptime < guard {
            return self.record(d, Action::Keep, Reason::QueueRunnerRecentlyStarted { uptime, guard });
        }
        self.fixed_expire(d, Reason::Idle { last_active: Some(last_active), source: Some(source) })
    }

    /// When the machine (or its type) was last active: the type's
    /// `lastActive` if the status has it, else the machine's `idleSince`,
    /// else our own record, else now.
    fn last_active(&self, d: &Deployment, tc: &TypeConfig) -> (Seconds, ActivitySource) {
        let status = &self.obs.status;
        if let Some(t) = status.machine_types.get(&tc.canonical).and_then(|t| t.last_active) {
            return (t, ActivitySource::TypeLastActive);
        }
        if let Some(t) = d.host().and_then(|h| status.builder(h)).and_then(|b| b.idle_since) {
            return (t, ActivitySource::MachineIdleSince);
        }
        match d.memory.idle_since {
            Some(t) => (t, ActivitySource::Observed),
            None => (self.now, ActivitySource::ThisPass),
        }
    }

    /// Expiry with the paid-time guard and two-phase scale-in: a machine
    /// that Hydra may still dispatch to is delisted first and stopped or
    /// destroyed only once Hydra has reread the file.
    fn fixed_expire(&mut self, d: &'a Deployment, reason: Reason) {
        if self.spared(d) {
            return;
        }
        if self.config.drain_before_destroy && d.state != MachineState::Missing {
            let delay = self.config.drain_delay;
            // A machine in the last file Hydra was given starts its drain
            // now: never delisted and stopped in the same pass, whatever an
            // older (possibly stale) record of its delisting says.
            let delisted_at = match d.memory.delisted_at {
                _ if d.memory.listed => Some(self.now),
                Some(at) => Some(at),
                None if self.in_hydra(d) => Some(self.now),
                None => None,
            };
            if let Some(at) = delisted_at {
                let delisted_for = self.now.saturating_sub(at);
                if at == self.now || delisted_for < delay {
                    let until = at.saturating_add(delay);
                    return self.record(d, Action::Drain, Reason::Draining { delisted_at: at, until });
                }
                // Hydra should have reread the file by now; if it still has
                // the machine enabled, give it a while longer.
                if self.in_hydra(d) && delisted_for < delay.max(activity::HYDRA_RELOAD).saturating_mul(10) {
                    return self.record(d, Action::Drain, Reason::WaitingForReload { delisted_at: at });
                }
            }
        }
        let stop_on_idle = self.type_of(d).is_some_and(|t| t.stop_on_idle);
        if stop_on_idle && d.state != MachineState::Missing {
            if d.state == MachineState::Stopped {
                return self.record(d, Action::Leave, Reason::Stopped);
            }
            return self.record(d, Action::Stop, reason);
        }
        self.record(d, Action::Destroy, reason)
    }

    fn finish(self) -> Plan {
        let mut commands = self.creates;
        commands.extend(self.starts);
        commands.extend(self.deploys);
        if self.hold_all.is_none() {
            commands.push(Command::WriteMachinesFile);
        }
        commands.extend(self.stops);
        commands.extend(self.destroys);
        let preview = plan::render_machines_file(
            self.config,
            &self.listings,
            &self.obs.fleet.deployments,
            &BTreeSet::new(),
            true,
        );
        Plan {
            now: self.now,
            quirks: plan::quirks_name(self.config.quirks).to_string(),
            types: self.types,
            machines: self.machines,
            commands,
            listings: self.listings,
            machines_file_preview: preview,
            memory: self.memory,
            warnings: self.warnings,
        }
    }
}
