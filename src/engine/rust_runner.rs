//! `runner = "rust"`: the rules for builders of Hydra's Rust queue runner,
//! on top of either quirks mode, behind the [`Runner`] seam of `mod.rs`.
//!
//! What the Rust runner changes (NixOS/hydra, `subprojects/hydra-queue-runner`
//! and `subprojects/hydra-builder`, 2026): builders join by themselves
//! under their hostname (`server/grpc.rs`, `open_tunnel`), so there is no
//! machines file to write and a builder is found by its deployment's name,
//! which is its hostname; and there is **no drain**: a builder whose
//! service stops or whose connection drops is removed at once and every
//! step it runs fails as aborted, using one of its tries (`state/mod.rs`,
//! `remove_machine` and `fail_step`). Hence:
//!
//! - **Retire only when idle.** A running builder is stopped or destroyed
//!   only when the status shows it idle now and our own record
//!   ([`MachineMemory::idle_since`](crate::model::MachineMemory), not the
//!   runner's unreliable `idleSince`) shows it idle for its type's
//!   `gracePeriod`; else it is kept ([`Reason::IdleNotHeld`], or `Busy`).
//!   Its service is stopped first ([`Command::StopBuilderService`]), and
//!   the machine only afterwards. A step the runner dispatches between the
//!   status read and the service stop is aborted: the driver narrows that
//!   window by reading the builder's jobs again just before the stop, and
//!   counts what it catches (docs/production.md, "The Rust runner").
//! - **Never a step's last try.** A builder running a step that has used
//!   `runnerMaxTries - 1` tries is never stopped: the abort would fail it.
//! - **Watchdog.** The runner has no heartbeat timeout: a builder that went
//!   silent keeps its slots until TCP gives up. A builder whose `lastPing`
//!   is older than `watchdogReport` is reported; older than
//!   `watchdogReplace`, it is not reused, its service is stopped and its
//!   machine destroyed, and demand creates its replacement. A `lastPing` of
//!   0 is a builder that has not pinged yet, never silence.
//! - **No redeploy while busy.** A deploy that changes the builder's unit
//!   or its configuration restarts `hydra-builder`, which aborts its steps:
//!   a busy builder only gets its keep-alive touched until it is idle.
//!
//! Which machines serve, which are created and the keep rules stay the
//! quirks mode's; this file only guards what they would do to a builder.

use super::activity::Activity;
use super::{Action, Command, Pass, Reason, Runner, SilentBuilder};
use crate::config::{RustRunnerConfig, TypeConfig};
use crate::model::{Deployment, MachineState, Seconds};
use std::collections::BTreeMap;

/// The Rust runner's rules.
pub(super) struct RustRunner<'a> {
    pub(super) config: &'a RustRunnerConfig,
}

/// The NixOps arguments a new builder's network expression gets besides
/// `type` and `tag` (nix/builder.nix reads them).
pub fn builder_args(rust: &RustRunnerConfig, deployment: &str, tc: &TypeConfig) -> BTreeMap<String, String> {
    let mut args = BTreeMap::from([
        ("hostname".to_string(), deployment.to_string()),
        ("runnerEndpoint".to_string(), rust.runner_endpoint.clone()),
        ("maxJobs".to_string(), tc.max_jobs.to_string()),
        ("speedFactor".to_string(), tc.speed_factor.text.clone()),
    ]);
    if let Some(token) = &rust.builder_token_path {
        args.insert("tokenPath".to_string(), token.clone());
    }
    args
}

impl RustRunner<'_> {
    /// How long the builder has been silent, if it has pinged at all.
    fn silent_for(&self, pass: &Pass<'_>, d: &Deployment) -> Option<(Seconds, Seconds)> {
        let last_ping = pass.obs.status.liveness.get(d.name.as_str())?.last_ping?;
        Some((last_ping, pass.now.saturating_sub(last_ping)))
    }

    fn replace_due(&self, pass: &Pass<'_>, d: &Deployment) -> Option<Seconds> {
        let (last_ping, silent) = self.silent_for(pass, d)?;
        (silent >= self.config.watchdog_replace).then_some(last_ping)
    }

    /// The tries used by a step on its last try running on the builder.
    fn last_try(&self, pass: &Pass<'_>, d: &Deployment) -> Option<u32> {
        let tries = pass.obs.status.liveness.get(d.name.as_str())?.running_tries?;
        (tries.saturating_add(1) >= self.config.max_tries).then_some(tries)
    }
}

impl Runner for RustRunner<'_> {
    fn lists_machines(&self) -> bool {
        false
    }

    fn builder_key<'d>(&self, d: &'d Deployment) -> Option<&'d str> {
        Some(&d.name)
    }

    fn builder_args(&self, deployment: &str, tc: &TypeConfig) -> BTreeMap<String, String> {
        builder_args(self.config, deployment, tc)
    }

    fn may_serve(&self, pass: &Pass<'_>, d: &Deployment) -> bool {
        self.replace_due(pass, d).is_none()
    }

    fn watch(&self, pass: &Pass<'_>) -> Vec<SilentBuilder> {
        let mut silent = vec![];
        for d in &pass.deployments {
            let Some((last_ping, silent_for)) = self.silent_for(pass, d) else { continue };
            if silent_for >= self.config.watchdog_report {
                let replaced = silent_for >= self.config.watchdog_replace && self.last_try(pass, d).is_none();
                silent.push(SilentBuilder {
                    deployment: d.name.clone(),
                    machine_type: d.machine_type.clone(),
                    last_ping,
                    silent_for,
                    replaced,
                });
            }
        }
        silent
    }

    fn decide_first(&self, pass: &Pass<'_>, d: &Deployment) -> Option<(Action, Reason)> {
        let last_ping = self.replace_due(pass, d)?;
        if let Some(tries) = self.last_try(pass, d) {
            return Some((Action::Keep, Reason::LastTryRunning { tries, max_tries: self.config.max_tries }));
        }
        Some((Action::Destroy, Reason::BuilderSilent { last_ping, limit: self.config.watchdog_replace }))
    }

    fn busy_action(&self) -> Action {
        // Nothing to delist: it keeps serving the runner.
        Action::Keep
    }

    fn guard_retire(
        &self,
        pass: &Pass<'_>,
        d: &Deployment,
        state: MachineState,
        reason: &Reason,
    ) -> Option<(Action, Reason)> {
        if !super::activity::could_be_building(state) {
            return None;
        }
        if let Some(tries) = self.last_try(pass, d) {
            return Some((Action::Keep, Reason::LastTryRunning { tries, max_tries: self.config.max_tries }));
        }
        if matches!(reason, Reason::BuilderSilent { .. }) {
            return None;
        }
        match pass.activity(d) {
            Activity::Busy(jobs) => Some((Action::Keep, Reason::Busy { jobs })),
            Activity::Unknown => Some((Action::Keep, Reason::ActivityUnknown)),
            Activity::Idle => {
                let grace = pass.type_of(d).map_or(0, |t| t.grace_period);
                let idle_since = d.memory.idle_since.unwrap_or(pass.now).min(pass.now);
                let until = idle_since.saturating_add(grace);
                (pass.now < until).then_some((Action::Keep, Reason::IdleNotHeld { idle_since, until }))
            }
        }
    }

    fn before_retire(&self, d: &Deployment, state: MachineState, reason: &Reason) -> Option<Command> {
        // A machine that is not running has no service to stop (and no
        // connection to the runner: NixOps would fail to reach it anyway).
        matches!(state, MachineState::Up | MachineState::Starting).then(|| Command::StopBuilderService {
            deployment: d.name.clone(),
            unit: self.config.builder_service.clone(),
            idle: !matches!(reason, Reason::BuilderSilent { .. }),
        })
    }

    fn may_redeploy(&self, pass: &Pass<'_>, d: &Deployment) -> bool {
        d.state != MachineState::Up || !matches!(pass.activity(d), Activity::Busy(_))
    }
}
