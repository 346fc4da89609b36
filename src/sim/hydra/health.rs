//! Machines Hydra disables after failures, and steps it aborts because no
//! machine supports them.
//!
//! **Disabled machines** (`build-remote.cc`, the `catch` around
//! `buildRemote`). An attempt that fails for a reason of its machine (the
//! trace's `machine` outcome: a lost connection, a failed copy) disables the
//! machine for `60 x 3^(k-1)` s, where `k` counts its consecutive failures,
//! capped at 4 (60, 180, 540, 1620 s). A failure within 30 s of the last
//! one that counted does not count again (steps started in parallel fail
//! together) and does not move the end of the back-off. Hydra adds up to
//! 29 s of random jitter; the model does not, so that a run depends on the
//! seed only through the cloud. An attempt on the machine that ends for
//! another reason resets the count (Hydra resets it after a successful
//! handshake with the builder). A disabled machine takes no new steps and
//! keeps its running ones; the status reports `disabledUntil` and
//! `consecutiveFailures` for it, as Hydra's does.
//!
//! **Unsupported steps** (`State::abortUnsupported` in `dispatcher.cc`). A
//! runnable step that no machine Hydra knows supports is aborted once it
//! has been unsupported for `max_unsupported_time` (C++ default 0: at once;
//! hydra.nixos.org sets 86400 s). Hydra keeps a machine removed from the
//! machines file in its map, disabled, so a step type is supported from the
//! moment any machine of its kind was first listed until the queue runner
//! restarts: what this rule stops is scale-from-zero, where a type's first
//! steps arrive before its first machine. Without `max_unsupported_time` in
//! the scenario (its default) no step is aborted for this, which is the
//! model before this rule existed. Steps that no machine could ever serve
//! are reported at once as before (`NO_MACHINE`), whatever the setting.

use super::{Hydra, HydraEvent, LaterEvent, StepEnd, StepState, retry_delay_ms};
use crate::sim::SimTime;
use serde_json::{Map, Value, json};

/// Why a step no machine supported never started.
pub const UNSUPPORTED: &str = "unsupported for max_unsupported_time";

/// Failures closer together than this count once.
const FAILURE_GROUPING_MS: i64 = 30_000;
/// The highest consecutive-failure count (the back-off stops growing).
const MAX_CONSECUTIVE_FAILURES: u32 = 4;

#[derive(Debug, Clone, Copy, Default)]
struct MachineHealth {
    consecutive_failures: u32,
    last_failure: i64,
    disabled_until: i64,
    disabled: bool,
}

#[derive(Debug, Default)]
pub(super) struct Health {
    machines: Vec<MachineHealth>,
    /// Milliseconds; `None`: unsupported steps wait for ever.
    max_unsupported_ms: Option<i64>,
    /// Per step type, runnable steps no machine supports yet: (slot, serial).
    /// They count as runnable in the status but are kept out of the
    /// dispatcher's queues until a machine supports them.
    held: Vec<Vec<(u32, u64)>>,
}

impl Health {
    pub(super) fn is_disabled(&self, machine: u32) -> bool {
        self.machines.get(machine as usize).is_some_and(|h| h.disabled)
    }

    fn entry(&mut self, machine: u32) -> &mut MachineHealth {
        let i = machine as usize;
        if self.machines.len() <= i {
            self.machines.resize(i + 1, MachineHealth::default());
        }
        &mut self.machines[i]
    }

    /// `disabledUntil` and `consecutiveFailures` of a machine that failed.
    pub(super) fn status_fields(&self, machine: u32, o: &mut Map<String, Value>, unix: impl Fn(i64) -> i64) {
        if let Some(h) = self.machines.get(machine as usize).filter(|h| h.consecutive_failures > 0) {
            o.insert("disabledUntil".into(), json!(unix(h.disabled_until)));
            o.insert("consecutiveFailures".into(), json!(h.consecutive_failures));
        }
    }
}

impl Hydra {
    /// Sets `max_unsupported_time` (seconds; `None`: never abort).
    pub fn set_max_unsupported_time(&mut self, seconds: Option<f64>) {
        self.health.max_unsupported_ms = seconds.map(|s| (s * 1000.0).round() as i64);
    }

    /// Whether a machine is disabled after failures.
    pub fn machine_disabled(&self, machine: u32) -> bool {
        self.health.is_disabled(machine)
    }

    /// An attempt on `machine` ended: for a reason of the machine
    /// (`machine_failed`), which disables it, or otherwise, which resets its count.
    #[inline(always)]
    pub(super) fn attempt_ended_on(&mut self, machine: u32, machine_failed: bool, now: SimTime) {
        if machine_failed {
            self.count_machine_failure(machine, now);
        } else if let Some(h) = self.health.machines.get_mut(machine as usize) {
            h.consecutive_failures = 0;
        }
    }

    /// Disables the machine for its back-off, unless a failure moments
    /// ago already did (failures close together count once).
    #[cold]
    #[inline(never)]
    fn count_machine_failure(&mut self, machine: u32, now: SimTime) {
        let h = self.health.entry(machine);
        if h.consecutive_failures > 0 && h.last_failure >= now.0 - FAILURE_GROUPING_MS {
            return;
        }
        h.consecutive_failures = (h.consecutive_failures + 1).min(MAX_CONSECUTIVE_FAILURES);
        h.last_failure = now.0;
        h.disabled_until = now.0 + retry_delay_ms(h.consecutive_failures);
        h.disabled = true;
        let until = h.disabled_until;
        self.update_active(machine);
        self.scheduled.push((SimTime(until), HydraEvent::Later(LaterEvent::MachineBackOffEnds { machine, until })));
    }

    /// A machine's back-off ends, unless a later failure moved its end.
    pub(super) fn back_off_ends(&mut self, machine: u32, until: i64) {
        let h = self.health.entry(machine);
        if !h.disabled || h.disabled_until != until {
            return;
        }
        h.disabled = false;
        self.update_active(machine);
        self.dispatch_needed = true;
    }

    /// A machine of `class` joined Hydra's map: the step types it serves
    /// are supported from now on, and their held steps enter the queues.
    pub(super) fn machine_seen(&mut self, class: u32) {
        for i in 0..self.classes[class as usize].served_kinds.len() {
            let k = self.classes[class as usize].served_kinds[i] as usize;
            if self.kinds[k].ever_supported {
                continue;
            }
            self.kinds[k].ever_supported = true;
            let held = self.health.held.get_mut(k).map(std::mem::take).unwrap_or_default();
            for (slot, serial) in held {
                let s = &self.steps[slot as usize];
                if s.serial == serial && s.state == StepState::Waiting {
                    // `enqueue` counts it as runnable again.
                    self.kinds[k].runnable -= 1;
                    self.enqueue(slot);
                }
            }
        }
    }

    /// A step just became runnable: if no machine Hydra knows supports it,
    /// it is aborted now (`max_unsupported_time = 0`) or held until a
    /// machine supports it or that time has passed. Returns whether the
    /// step was taken care of (the caller must not queue it).
    pub(super) fn unsupported_on_arrival(&mut self, slot: u32, now: SimTime) -> bool {
        let Some(max_ms) = self.health.max_unsupported_ms else { return false };
        let s = &self.steps[slot as usize];
        let kind = s.kind as usize;
        if self.kinds[kind].ever_supported {
            return false;
        }
        if max_ms == 0 {
            self.resolve(slot, StepEnd::NeverStarted(UNSUPPORTED), None);
            return true;
        }
        let (serial, due) = (s.serial, now.plus_ms(max_ms));
        if self.health.held.len() <= kind {
            self.health.held.resize_with(kind + 1, Vec::new);
        }
        self.health.held[kind].push((slot, serial));
        self.kinds[kind].runnable += 1;
        self.scheduled.push((due, HydraEvent::Later(LaterEvent::UnsupportedDue { serial, slot })));
        true
    }

    /// A step held since it became runnable reached `max_unsupported_time`.
    pub(super) fn unsupported_due(&mut self, serial: u64, slot: u32, _now: SimTime) {
        let s = &self.steps[slot as usize];
        if s.serial != serial || s.state != StepState::Waiting {
            return;
        }
        let kind = s.kind as usize;
        if self.kinds[kind].ever_supported {
            return;
        }
        // Its entry in `held` goes stale with it (checked when released).
        self.kinds[kind].runnable -= 1;
        self.resolve(slot, StepEnd::NeverStarted(UNSUPPORTED), None);
    }
}
