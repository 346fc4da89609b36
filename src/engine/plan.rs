//! The engine's output: what to do to the fleet, in order, why, what the
//! machines file says, and what to remember for the next pass.
//!
//! A plan is data. Carrying it out is the live driver's job (through the
//! adapters) or the simulator's; both feed command results back through
//! [`MachineMemory::record_deploy`] so the next pass knows.

use super::reason::{Reason, TypeNote};
use crate::config::{Config, Quirks, TypeConfig};
use crate::model::{Deployment, MachineMemory, MachineState, Seconds, Timestamp};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What happens to one machine in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new deployment is created, deployed and listed.
    Create,
    /// Chosen to serve demand: (re)deployed or touched, and listed.
    Serve,
    /// Not needed but kept and listed (paid time, grace period).
    Keep,
    /// Kept but not listed, so Hydra gives it no new steps.
    Drain,
    /// Expired but left running and delisted until its paid time runs down.
    Leave,
    /// Nothing is changed: the engine cannot decide safely.
    Hold,
    /// Stopped (`stopOnIdle`).
    Stop,
    /// Destroyed and its deployment deleted.
    Destroy,
}

impl Action {
    /// Whether the machine ends the pass in the machines file (if its deploy
    /// succeeds and its address is known).
    pub fn lists(self) -> bool {
        matches!(self, Action::Create | Action::Serve | Action::Keep)
    }
}

/// One machine's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDecision {
    pub deployment: SmolStr,
    pub machine_type: SmolStr,
    /// State before the pass (`None` for a machine created in it).
    pub state: Option<MachineState>,
    pub action: Action,
    /// Whether it is in the machines file this pass.
    pub listed: bool,
    /// In JSON the reason's tag (`reason`) and fields sit beside the
    /// decision's own; no reason field shares a name with them (tested), so
    /// the object reads back.
    #[serde(flatten)]
    pub reason: Reason,
}

/// One machine type's figures and notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDecision {
    pub machine_type: SmolStr,
    pub runnable: u64,
    pub wanted: u64,
    pub allowed: u64,
    /// Existing machines chosen to serve demand.
    pub reused: u64,
    pub created: u64,
    pub notes: Vec<TypeNote>,
}

/// A command for the fleet, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `nixops create -d NAME EXPR [-I ...]` then `set-args --argstr type T --argstr tag TAG`,
    /// plus `--argstr K V` for each of `builder_args` (the Rust runner's
    /// builders: hostname, runner endpoint, token path, slots).
    Create {
        deployment: SmolStr,
        machine_type: SmolStr,
        tag: String,
        nixops_expr: String,
        nix_path: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        builder_args: BTreeMap<String, String>,
    },
    /// `nixops start -d NAME`: bring a stopped machine back before deploying it.
    Start { deployment: SmolStr },
    /// `nixops deploy -d NAME --check [-I ...]`, then touch `/run/keep-alive`.
    /// `fingerprint` is recorded on success.
    Deploy { deployment: SmolStr, nix_path: Vec<String>, fingerprint: SmolStr },
    /// `nixops ssh -d NAME machine touch /run/keep-alive` (already deployed and current).
    TouchKeepAlive { deployment: SmolStr },
    /// Write the machines file (after every deploy, before any stop or destroy).
    WriteMachinesFile,
    /// `nixops ssh -d NAME machine -- systemctl stop UNIT`: the Rust runner's
    /// builder leaves the runner (aborting what it runs) before its machine
    /// is stopped or destroyed. `idle`: retired for idleness, so the driver
    /// first checks the runner still reports it idle (else the watchdog's).
    StopBuilderService { deployment: SmolStr, unit: String, idle: bool },
    /// `nixops stop -d NAME --confirm`.
    Stop { deployment: SmolStr },
    /// `nixops destroy -d NAME --confirm`, then `nixops delete -d NAME`.
    Destroy { deployment: SmolStr },
}

impl Command {
    pub fn deployment(&self) -> Option<&str> {
        match self {
            Command::Create { deployment, .. }
            | Command::Start { deployment }
            | Command::Deploy { deployment, .. }
            | Command::TouchKeepAlive { deployment }
            | Command::Stop { deployment }
            | Command::StopBuilderService { deployment, .. }
            | Command::Destroy { deployment } => Some(deployment),
            Command::WriteMachinesFile => None,
        }
    }
}

/// A machine the machines file lists, if its deploy (when it has one this
/// pass) succeeds and its address is known by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub deployment: SmolStr,
    /// Configured machine type key (canonical).
    pub machine_type: SmolStr,
    /// Deployed in this pass: listed only if that deploy succeeds.
    pub needs_deploy: bool,
}

/// The whole result of one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub now: Timestamp,
    pub quirks: String,
    pub types: Vec<TypeDecision>,
    pub machines: Vec<MachineDecision>,
    pub commands: Vec<Command>,
    pub listings: Vec<Listing>,
    /// The machines file as it will read if every deploy succeeds, rendered
    /// from the observed addresses (machines created in this pass have none
    /// yet and appear as comments): [`Plan::render_preview`] of the observed
    /// fleet. Empty when the plan came from
    /// [`crate::engine::decide_without_preview`].
    pub machines_file_preview: String,
    /// What to remember per deployment for the next pass, assuming every
    /// command succeeds; feed results back with [`MachineMemory::record_deploy`].
    pub memory: BTreeMap<SmolStr, MachineMemory>,
    /// Problems with the input that did not stop the pass.
    pub warnings: Vec<String>,
    /// The Rust runner's builders whose pings stopped (the watchdog).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silent_builders: Vec<SilentBuilder>,
}

/// A provisioned builder that has not pinged the Rust runner for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilentBuilder {
    pub deployment: SmolStr,
    pub machine_type: SmolStr,
    /// Its last ping (Unix seconds).
    pub last_ping: Seconds,
    pub silent_for: Seconds,
    /// Silent past `watchdogReplace`: its service is stopped and it is replaced.
    pub replaced: bool,
}

impl Plan {
    pub fn decision(&self, deployment: &str) -> Option<&MachineDecision> {
        self.machines.iter().find(|m| m.deployment == deployment)
    }

    /// Renders the machines file for `listings` from the (refreshed) fleet,
    /// leaving out machines whose deploy failed in this pass or whose
    /// address is unknown. The result always parses as a machines file.
    pub fn render_machines_file(&self, config: &Config, fleet: &[Deployment], failed: &BTreeSet<String>) -> String {
        render_machines_file(config, &self.listings, fleet, failed, false)
    }

    /// The machines file as it will read if every deploy succeeds, from the
    /// fleet the plan was decided on (see [`Plan::machines_file_preview`]).
    pub fn render_preview(&self, config: &Config, fleet: &[Deployment]) -> String {
        render_machines_file(config, &self.listings, fleet, &BTreeSet::new(), true)
    }

    /// A human-readable account of the plan: types, machines with reasons,
    /// commands and the machines file.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let when = super::reason::When { t: self.now.secs(), now: None };
        let _ = writeln!(out, "plan at {when} ({}) (quirks: {})", self.now, self.quirks);
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        for b in &self.silent_builders {
            let what = if b.replaced { "replaced" } else { "reported" };
            let _ = writeln!(
                out,
                "watchdog: {} [{}] silent for {}s (last ping {}): {what}",
                b.deployment,
                b.machine_type,
                b.silent_for,
                super::reason::When { t: b.last_ping, now: Some(self.now.secs()) }
            );
        }
        let _ = writeln!(out, "\nmachine types:");
        // Types the status reports but the config does not provision (other
        // builders' types) get one line between them, and only if they have work.
        let (unconfigured, configured): (Vec<&TypeDecision>, Vec<&TypeDecision>) =
            self.types.iter().partition(|t| t.notes.iter().any(|n| matches!(n, TypeNote::NotConfigured { .. })));
        for t in configured {
            let _ = writeln!(
                out,
                "  {}: {} runnable, wants {}, allowed {}, reuses {}, creates {}",
                t.machine_type, t.runnable, t.wanted, t.allowed, t.reused, t.created
            );
            for n in &t.notes {
                let _ = writeln!(out, "    - {n}");
            }
        }
        let waiting: Vec<String> = unconfigured
            .iter()
            .filter(|t| t.runnable > 0)
            .map(|t| format!("{} ({} runnable)", t.machine_type, t.runnable))
            .collect();
        if !waiting.is_empty() {
            let _ = writeln!(out, "  not configured, left to other machines: {}", waiting.join(", "));
        }
        let _ = writeln!(out, "\nmachines:");
        if self.machines.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for m in &self.machines {
            let state = m.state.map_or("new".to_string(), |s| s.to_string());
            let listed = if m.listed { "listed" } else { "not listed" };
            let _ = writeln!(
                out,
                "  {} [{}, {state}]: {:?}, {listed}: {}",
                m.deployment,
                m.machine_type,
                m.action,
                m.reason.at(self.now.secs())
            );
        }
        let _ = writeln!(out, "\ncommands:");
        for (i, c) in self.commands.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", i + 1, command_text(c));
        }
        let _ = writeln!(out, "\nmachines file:");
        for line in self.machines_file_preview.lines() {
            let _ = writeln!(out, "  {line}");
        }
        out
    }
}

fn command_text(c: &Command) -> String {
    match c {
        Command::Create { deployment, machine_type, nixops_expr, .. } => {
            format!("create {deployment} (type {machine_type}, {nixops_expr})")
        }
        Command::Start { deployment } => format!("start {deployment}"),
        Command::Deploy { deployment, .. } => format!("deploy {deployment} --check and touch keep-alive"),
        Command::TouchKeepAlive { deployment } => format!("touch keep-alive on {deployment}"),
        Command::WriteMachinesFile => "write machines file".to_string(),
        Command::Stop { deployment } => format!("stop {deployment}"),
        Command::StopBuilderService { deployment, unit, idle } => {
            let check = if *idle { ", if the runner still reports it idle" } else { "" };
            format!("stop {unit} on {deployment}{check}")
        }
        Command::Destroy { deployment } => format!("destroy and delete {deployment}"),
    }
}

pub(crate) fn quirks_name(q: Quirks) -> &'static str {
    match q {
        Quirks::Fixed => "fixed",
        Quirks::Original => "original",
    }
}

/// One machines-file line, exactly as the original wrote it:
/// `root@<ip> <systems> <sshKey> <maxJobs> <speedFactor> <features> <features> <hostkey>`,
/// with the features as Hydra spells them (sorted).
pub fn machines_file_line(tc: &TypeConfig, host: &str, host_key: Option<&str>) -> String {
    let features: Vec<&str> = tc.machine_type.features.iter().map(String::as_str).collect();
    line_with_features(tc, &features, host, host_key)
}

/// The same line with the features in the config's own order, as the
/// original wrote them (it split the deployment's `type` argument, which
/// was the config key).
pub fn machines_file_line_as_configured(tc: &TypeConfig, host: &str, host_key: Option<&str>) -> String {
    let written = tc.key.split_once(':').map_or("", |(_, f)| f);
    let features: Vec<&str> = written.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    line_with_features(tc, &features, host, host_key)
}

fn line_with_features(tc: &TypeConfig, features: &[&str], host: &str, host_key: Option<&str>) -> String {
    let mut systems = tc.machine_type.systems.clone();
    if systems.iter().any(|s| s == "x86_64-linux") && !systems.iter().any(|s| s == "i686-linux") {
        systems.push("i686-linux".into());
    }
    let features = if features.is_empty() { "-".to_string() } else { features.join(",") };
    let key = match host_key.filter(|k| !k.is_empty()) {
        Some(k) => base64::engine::general_purpose::STANDARD.encode(k),
        None => "-".to_string(),
    };
    format!(
        "root@{host} {} {} {} {} {features} {features} {key}",
        systems.join(","),
        tc.ssh_key,
        tc.max_jobs,
        tc.speed_factor.text
    )
}

/// The line of a machine of type `tc` in the machines file written under
/// `config`: features in the config's spelling under the original quirks,
/// in Hydra's otherwise.
pub fn machines_file_line_written(config: &Config, tc: &TypeConfig, host: &str, host_key: Option<&str>) -> String {
    match config.quirks {
        Quirks::Original => machines_file_line_as_configured(tc, host, host_key),
        Quirks::Fixed => machines_file_line(tc, host, host_key),
    }
}

pub(crate) fn render_machines_file(
    config: &Config,
    listings: &[Listing],
    fleet: &[Deployment],
    failed: &BTreeSet<String>,
    preview: bool,
) -> String {
    let by_name: BTreeMap<&str, &Deployment> = fleet.iter().map(|d| (d.name.as_str(), d)).collect();
    let line = |tc: &TypeConfig, host: &str, key: Option<&str>| machines_file_line_written(config, tc, host, key);
    let mut out = String::new();
    for l in listings {
        if failed.contains(l.deployment.as_str()) {
            continue;
        }
        let Some(tc) = config.system_types.get(l.machine_type.as_str()) else { continue };
        let machine = by_name.get(l.deployment.as_str());
        match machine.and_then(|d| d.host().map(|h| (h, d.host_key.as_deref()))) {
            Some((host, key)) => {
                out.push_str(&line(tc, host, key));
                out.push('\n');
            }
            _ if preview => {
                let _ = writeln!(out, "# {}: address known after deploy", l.deployment);
            }
            _ => {}
        }
    }
    out
}

impl MachineMemory {
    /// Records the outcome of a deploy of this machine.
    pub fn record_deploy(&mut self, succeeded: bool, fingerprint: &str, now: Seconds) {
        if succeeded {
            self.deploy_failures = 0;
            self.deployed_fingerprint = Some(SmolStr::new(fingerprint));
            self.deployed_at = Some(now);
            self.delisted_at = None;
        } else {
            self.deploy_failures = self.deploy_failures.saturating_add(1);
            // Left out of the file: it drains like any delisted machine, from
            // when it was first left out (the plan kept that time).
            self.listed = false;
            self.delisted_at.get_or_insert(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ActivitySource;

    /// One of every reason, so a new variant whose field collides with a
    /// decision's own field (both sit in one JSON object) fails here.
    fn every_reason() -> Vec<Reason> {
        let s = MachineState::Unreachable;
        vec![
            Reason::NeededForDemand { rank: 1, allowed: 2 },
            Reason::CreatedForDemand { rank: 1, allowed: 2 },
            Reason::PaidTimeLeft { left: 1, threshold: 2 },
            Reason::Busy { jobs: 1 },
            Reason::InGracePeriod { last_active: 1, until: 2, source: ActivitySource::Observed },
            Reason::QueueRunnerRecentlyStarted { uptime: 1, guard: 2 },
            Reason::Draining { delisted_at: 1, until: 2 },
            Reason::WaitingForReload { delisted_at: 1 },
            Reason::Idle { last_active: Some(1), source: Some(ActivitySource::UptimeFallback) },
            Reason::Idle { last_active: None, source: None },
            Reason::NotRunning { machine_state: s },
            Reason::NotRunningSince { machine_state: s, since: 1, until: 2 },
            Reason::Stopped,
            Reason::DeployFailedRepeatedly { failures: 3, limit: 3 },
            Reason::TypeNotConfigured { type_argument: "sparc-linux".into() },
            Reason::PaidTimeLeftBeforeStop { left: 1, threshold: 2 },
            Reason::QueueStatusUnavailable { detail: "down".into() },
            Reason::NoAddress { since: 1, until: 2 },
            Reason::NoAddressTimedOut { since: 1, timeout: 2 },
            Reason::OriginalWouldCrash { why: "x".into() },
            Reason::IdleNotHeld { idle_since: 1, until: 2 },
            Reason::LastTryRunning { tries: 4, max_tries: 5 },
            Reason::BuilderSilent { last_ping: 1, limit: 2 },
        ]
    }

    #[test]
    fn every_decision_reads_back_from_its_json() {
        for reason in every_reason() {
            let decision = MachineDecision {
                deployment: "d".into(),
                machine_type: "x86_64-linux".into(),
                state: Some(MachineState::Up),
                action: Action::Hold,
                listed: false,
                reason,
            };
            let json = serde_json::to_string(&decision).unwrap();
            let back: MachineDecision =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json} does not read back: {e}"));
            assert_eq!(back, decision, "{json}");
        }
    }
}
