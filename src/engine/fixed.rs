//! `quirks = "fixed"` (the default): the original's rules with its known
//! defects fixed, each one a row of ARCHITECTURE.md's table of deliberate
//! differences.
//!
//! Reuse preference, the keep rules and expiry with two-phase scale-in. The
//! original's own rules are in `original.rs`; the pass both share is
//! `mod.rs`.

use super::activity::{self, Activity};
use super::{Action, ActivitySource, Pass, Reason};
use crate::config::TypeConfig;
use crate::model::{Deployment, MachineState, Seconds};

/// Preference among reuse candidates: what serves soonest.
fn reuse_rank(state: MachineState) -> u8 {
    match state {
        MachineState::Up => 0,
        MachineState::Starting => 1,
        MachineState::Stopped => 2,
        MachineState::Stopping => 3,
        _ => 4,
    }
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

/// Whether EC2 may still be billing the machine: every state but a
/// vanished or a stopped one. `nixops check` reads an unreachable machine
/// over SSH, so an unreachable machine is usually still running.
fn may_be_billed(state: MachineState) -> bool {
    !matches!(state, MachineState::Missing | MachineState::Stopped)
}

impl<'a> Pass<'a> {
    /// Reuse candidates by readiness, then by name (`tag-2` before
    /// `tag-10`), so which machine serves does not hang on the order NixOps
    /// happens to print (`export` sorts by UUID); MISSING ones and those
    /// whose deploys keep failing are skipped.
    pub(super) fn fixed_reuse_order(&self, mut candidates: Vec<&'a Deployment>) -> Vec<&'a Deployment> {
        let limit = self.config.max_deploy_failures;
        candidates.retain(|d| d.state != MachineState::Missing);
        candidates.retain(|d| limit == 0 || d.memory.deploy_failures < limit);
        // Stable, like `sort_by`, with each key parsed once rather than per comparison.
        candidates.sort_by_cached_key(|d| (reuse_rank(d.state), natural_key(&d.name)));
        candidates
    }

    fn deploys_failing(&self, d: &Deployment) -> bool {
        let limit = self.config.max_deploy_failures;
        limit > 0 && d.memory.deploy_failures >= limit
    }

    /// Our keep rules: the original's, with its defects fixed.
    pub(super) fn fixed_keep_rules(&mut self, d: &'a Deployment) {
        let tc = self.type_of(d);
        // Paid time keeps a machine that can serve listed, busy or not: under
        // hourly billing draining it early strands steps at the end of a burst
        // while the hour is paid anyway. Not one whose deploys keep failing:
        // keeping it listed means deploying it again. (A machine without an
        // address yet gets one from that deploy, as a reused one does.)
        if tc.is_some() && d.state.is_running() && d.unusable_address().is_none() && !self.deploys_failing(d) {
            let left = self.paid_time_left(d);
            let threshold = self.config.keep_paid_threshold;
            if left >= threshold {
                return self.record(d, Action::Keep, Reason::PaidTimeLeft { left, threshold });
            }
        }
        if let Activity::Busy(jobs) = self.activity(d) {
            return self.record(d, self.runner.busy_action(), Reason::Busy { jobs });
        }
        if !d.state.is_running() {
            if d.state == MachineState::Stopped && tc.is_some_and(|t| t.stop_on_idle) {
                return self.record(d, Action::Leave, Reason::Stopped);
            }
            return self.not_running(d);
        }
        let uptime = self.obs.status.uptime;
        let guard = self.config.restart_guard;
        let Some(tc) = tc else {
            // Whatever its type, an idle machine outlives a young queue
            // runner (`restart-guard`), as the original kept it through its
            // uptime fallback; it cannot be listed, so it is kept delisted.
            if uptime < guard {
                return self.record(d, Action::Drain, Reason::QueueRunnerRecentlyStarted { uptime, guard });
            }
            let type_argument = d.machine_type.to_string();
            return self.fixed_expire(d, Reason::TypeNotConfigured { type_argument });
        };
        if let Some(address) = d.unusable_address() {
            let address = address.to_string();
            return self.fixed_expire(d, Reason::UnusableAddress { address });
        }
        if d.host().is_none() {
            return self.no_address(d);
        }
        if self.deploys_failing(d) {
            let failures = d.memory.deploy_failures;
            let limit = self.config.max_deploy_failures;
            return self.fixed_expire(d, Reason::DeployFailedRepeatedly { failures, limit });
        }
        let (last_active, source) = self.last_active(d, tc);
        if self.now.saturating_sub(last_active) < tc.grace_period {
            let until = last_active.saturating_add(tc.grace_period);
            return self.record(d, Action::Keep, Reason::InGracePeriod { last_active, until, source });
        }
        if uptime < guard {
            return self.record(d, Action::Keep, Reason::QueueRunnerRecentlyStarted { uptime, guard });
        }
        self.fixed_expire(d, Reason::Idle { last_active: Some(last_active), source: Some(source) })
    }

    /// A machine NixOps reports not running is delisted and left alone for
    /// `notRunningTimeout` before it is stopped or destroyed: one `nixops
    /// check` that failed over SSH, or an EC2 answer that came late, must not
    /// terminate a machine that is in fact up, paid for and perhaps serving
    /// Hydra, which reaches it on its own. After that it expires, still
    /// minding its paid time.
    fn not_running(&mut self, d: &'a Deployment) {
        let since = d.memory.not_running_since.unwrap_or(self.now);
        let until = since.saturating_add(self.config.not_running_timeout);
        let machine_state = d.state;
        if self.now < until {
            return self.record(d, Action::Drain, Reason::NotRunningSince { machine_state, since, until });
        }
        self.fixed_expire(d, Reason::NotRunning { machine_state })
    }

    /// A running machine without an address cannot be deployed, listed or
    /// matched with Hydra's view. It gets `addressTimeout` to obtain one;
    /// after that it is broken and destroyed (not stopped: a restart would
    /// not bring a usable machine back), still minding its paid time.
    fn no_address(&mut self, d: &'a Deployment) {
        let since = self.no_address_since(d);
        let timeout = self.config.address_timeout;
        if self.now.saturating_sub(since) < timeout {
            return self.record(d, Action::Hold, Reason::NoAddress { since, until: since.saturating_add(timeout) });
        }
        self.expire_as(d, Reason::NoAddressTimedOut { since, timeout }, false)
    }

    /// When the machine (or its type) was last active: the type's
    /// `lastActive` if the status has it, else the machine's `idleSince`,
    /// else our own record, else now.
    fn last_active(&self, d: &Deployment, tc: &TypeConfig) -> (Seconds, ActivitySource) {
        let status = &self.obs.status;
        if let Some(t) = status.machine_types.get(tc.canonical.as_str()).and_then(|t| t.last_active) {
            return (t, ActivitySource::TypeLastActive);
        }
        if let Some(t) = self.builder(d).and_then(|b| b.idle_since) {
            return (t, ActivitySource::MachineIdleSince);
        }
        match d.memory.idle_since {
            Some(t) => (t, ActivitySource::Observed),
            None => (self.now, ActivitySource::ThisPass),
        }
    }

    fn fixed_expire(&mut self, d: &'a Deployment, reason: Reason) {
        self.expire_as(d, reason, true)
    }

    /// Expiry with the paid-time guard and two-phase scale-in: a machine
    /// that Hydra may still dispatch to is delisted first and stopped or
    /// destroyed only once Hydra has reread the file. `stop_allowed`: whether
    /// `stopOnIdle` may stop it instead of destroying it.
    fn expire_as(&mut self, d: &'a Deployment, reason: Reason, stop_allowed: bool) {
        if self.spared(d, may_be_billed(d.state)) {
            return;
        }
        // Only a machines file can be drained through (the Rust runner's
        // builders have no drain: `rust_runner.rs` guards them instead).
        if self.config.drain_before_destroy && self.runner.lists_machines() && d.state != MachineState::Missing {
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
        let stop_on_idle = stop_allowed && self.type_of(d).is_some_and(|t| t.stop_on_idle);
        if stop_on_idle && d.state != MachineState::Missing {
            if d.state == MachineState::Stopped {
                return self.record(d, Action::Leave, Reason::Stopped);
            }
            return self.record(d, Action::Stop, reason);
        }
        self.record(d, Action::Destroy, reason)
    }
}
