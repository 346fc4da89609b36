//! `quirks = "original"`: the original hydra-provisioner's rules, defects
//! included (script blob 5132a30e, ARCHITECTURE.md "The original's rules").
//!
//! Reuse order, the keep rules of its step 4 and the expiry of its step 7.
//! Where the original crashed, the input becomes a reason and a warning
//! instead, and the machine concerned is left alone or handled as far as the
//! original got before crashing. Nothing here applies in the default mode
//! (see `fixed.rs`).

use super::activity::Activity;
use super::{Action, ActivitySource, Pass, Reason, UPTIME_FALLBACK_PAD};
use crate::model::{Deployment, MachineState, canonical_type_key};

/// The original's reuse loop for one type: candidates in NixOps's order
/// (the inventory's), UP ones first by a stable sort. The head is checked
/// if NixOps records it UP; a check that finds it otherwise re-sorts the
/// list (so it goes first among the non-UP ones) and the loop goes on; a
/// MISSING head is skipped; any other head is reused (its deploy restarts a
/// stopped machine). Returns the chosen candidates and those it checked.
pub(super) fn reuse<'d>(candidates: &[&'d Deployment], allowed: u64) -> (Vec<&'d Deployment>, Vec<&'d Deployment>) {
    let mut existing: Vec<(&Deployment, MachineState)> =
        candidates.iter().map(|d| (*d, d.recorded_state.unwrap_or(d.state))).collect();
    existing.sort_by_key(|(_, known)| *known != MachineState::Up);
    let (mut chosen, mut checked) = (vec![], vec![]);
    while (chosen.len() as u64) < allowed && !existing.is_empty() {
        let (d, known) = existing[0];
        if known == MachineState::Up {
            checked.push(d);
            if d.state != MachineState::Up {
                existing[0].1 = d.state;
                existing.sort_by_key(|(_, known)| *known != MachineState::Up);
                continue;
            }
        } else if known == MachineState::Missing {
            existing.remove(0);
            continue;
        }
        chosen.push(d);
        existing.remove(0);
    }
    (chosen, checked)
}

impl<'a> Pass<'a> {
    /// Step 4 of the original, first match wins.
    pub(super) fn original_keep_rules(&mut self, d: &'a Deployment) {
        let state = self.state_of(d);
        if !state.is_running() {
            return self.original_expire(d, Reason::NotRunning { machine_state: state });
        }
        let tc = self.type_of(d);
        let grace = tc.map_or(0, |t| t.grace_period);
        let left = self.paid_time_left(d);
        let threshold = self.config.keep_paid_threshold;
        if left >= threshold {
            return self.original_keep(d, Action::Keep, Reason::PaidTimeLeft { left, threshold });
        }
        if d.host().is_none() {
            let why = "a running machine without a public IP".to_string();
            return self.record(d, Action::Hold, Reason::OriginalWouldCrash { why });
        }
        if let Activity::Busy(jobs) = self.activity(d) {
            // The original's comment says "if this machine doesn't have a
            // grace period, then don't add it to the machines list"; its code
            // leaves it out when it *has* one. Kept and deployed either way.
            let action = if grace > 0 { Action::Drain } else { Action::Keep };
            return self.original_keep(d, action, Reason::Busy { jobs });
        }
        // `lastActive` of the deployment's own type argument, configured or not.
        let status = &self.obs.status;
        let type_status = status.machine_types.get(&canonical_type_key(&d.machine_type));
        let (last_active, source) = match type_status.and_then(|t| t.last_active) {
            Some(t) => (t, ActivitySource::TypeLastActive),
            None => (
                self.now.saturating_sub(status.uptime).saturating_add(UPTIME_FALLBACK_PAD),
                ActivitySource::UptimeFallback,
            ),
        };
        if self.now.saturating_sub(last_active) < grace {
            let reason = Reason::InGracePeriod { last_active, until: last_active.saturating_add(grace), source };
            return self.original_keep(d, Action::Keep, reason);
        }
        self.original_expire(d, Reason::Idle { last_active: Some(last_active), source: Some(source) })
    }

    /// A kept machine is deployed. One of an unconfigured type cannot be
    /// listed: the original crashed on it after its deploys, before writing
    /// the machines file.
    fn original_keep(&mut self, d: &'a Deployment, action: Action, reason: Reason) {
        if self.type_of(d).is_none() {
            self.warnings.push(format!(
                "kept deployment `{}` has the unconfigured type `{}`: deployed but not listed \
                 (the original provisioner crashed here, after its deploys)",
                d.name, d.machine_type
            ));
        }
        self.record(d, action, reason)
    }

    /// Step 7 of the original.
    fn original_expire(&mut self, d: &'a Deployment, reason: Reason) {
        let state = self.state_of(d);
        if self.spared(d, state.is_running()) {
            return;
        }
        let stop_on_idle = self.type_of(d).is_some_and(|t| t.stop_on_idle);
        if !stop_on_idle {
            self.record(d, Action::Destroy, reason)
        } else if state != MachineState::Stopped {
            // Including MISSING ones, "stopped" again every pass.
            self.record(d, Action::Stop, reason)
        } else {
            self.record(d, Action::Leave, Reason::Stopped)
        }
    }
}
