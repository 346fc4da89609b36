//! A step's phases when the scenario models the server (`[server]`): copy
//! the input closure to the builder, build, then receive, compress and
//! upload the outputs, the server's parts done by its local worker threads
//! (`sim/server.rs`). Without a `[server]` none of this runs and a step is
//! one block of build time, as before.
//!
//! **Slot rules**, by queue runner generation (`[hydra] runner`):
//! - the builder slot is taken at dispatch, so an attempt holds it while its
//!   closure is copied (Hydra reserves the machine in `State::doDispatch`
//!   before `buildRemote` copies anything); the copy takes no local worker
//!   (`sim/server.rs`);
//! - `cpp`: after a successful build the attempt waits, still holding its
//!   slot, for a local worker (`localWorkThrottler`, Hydra's
//!   `nrStepsWaitingForDownloadSlot`), and releases the slot as the worker
//!   starts copying the outputs back (NixOS/hydra#1469, April 2025:
//!   `reservation.reset()` once the throttler is acquired, kept that late so
//!   that a server short of copy slots does not start more builds than it
//!   can receive); so a builder starts its next step while the server
//!   still receives the last one's outputs;
//! - `rust`: the Rust runner keeps the builder's job until the outputs are
//!   uploaded (`hydra-builder` uploads them and only then reports the job
//!   done), so slow uploads hold builders idle;
//! - in both, a step's dependents become runnable only once its outputs are
//!   uploaded: Hydra marks a step finished (and wakes its reverse
//!   dependencies) only after `buildRemote` returned with the outputs in the
//!   destination store.
//!
//! A failed build (`failure`, a `transient` or `machine` first attempt) has
//! no outputs to receive: it leaves its machine when the build ends, as
//! without a server. An attempt aborted while it still holds its machine
//! after a successful build (`cpp`: waiting for a worker; `rust`: until the
//! upload ends) loses its outputs; once a `cpp` attempt has released its
//! machine, losing the machine does not touch the upload.

use super::{Hydra, HydraEvent, StepState};
use crate::config::Runner;
use crate::sim::SimTime;
use crate::sim::scenario::ServerSection;
use crate::sim::server::{Grant, Request, Server};
use crate::trace::Outcome;

fn megabytes(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / 1e6)
}

/// Events of the server's phases, disabled machines and unsupported steps,
/// scheduled as [`HydraEvent::Later`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LaterEvent {
    /// The earliest end of the server's threads while requests wait.
    ServerWake,
    /// A step's outputs are received and uploaded.
    Uploaded { serial: u64, slot: u32, attempt: u32 },
    /// A disabled machine's back-off ends (`health.rs`).
    MachineBackOffEnds { machine: u32, until: i64 },
    /// A step no machine supports reaches `max_unsupported_time` (`health.rs`).
    UnsupportedDue { serial: u64, slot: u32 },
}

/// Where a step's running attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Copying the input closure to the builder, then building on it (the
    /// only phase without a server).
    Build,
    /// Waiting for a local worker, or receiving, compressing and uploading outputs.
    Receive,
}

/// The server and the slot rule of the runner generation.
pub(super) struct ServerSide {
    pool: Server,
    runner: Runner,
    /// Requests a wake-up started (kept for its capacity).
    started: Vec<Request>,
}

impl ServerSide {
    /// Whether the builder slot stays taken until the outputs are uploaded.
    fn holds_slot_through_upload(&self) -> bool {
        match self.runner {
            Runner::Cpp => false,
            Runner::Rust => true,
        }
    }
}

impl Hydra {
    pub(super) fn handle_later(&mut self, event: LaterEvent, now: SimTime) {
        match event {
            LaterEvent::ServerWake => self.server_wake(now),
            LaterEvent::Uploaded { serial, slot, attempt } => self.uploaded(serial, slot, attempt, now),
            LaterEvent::MachineBackOffEnds { machine, until } => self.back_off_ends(machine, until),
            LaterEvent::UnsupportedDue { serial, slot } => self.unsupported_due(serial, slot, now),
        }
    }

    /// Models the server's local work from now on (before any step arrives).
    pub fn set_server(&mut self, spec: ServerSection, runner: Runner) {
        self.server = Some(ServerSide { pool: Server::new(spec), runner, started: vec![] });
    }

    /// The server's pool, when modelled.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref().map(|s| &s.pool)
    }

    /// The server's figures for a run that ended at `end`.
    pub fn server_figures(&mut self, end: SimTime) -> Option<crate::metrics::ServerFigures> {
        self.server.as_mut().map(|s| s.pool.figures(end.0))
    }

    fn output_mb(&self, slot: u32) -> Option<f64> {
        megabytes(self.extras[slot as usize].output_size)
    }

    /// A dispatched attempt copies its closure to the builder (on its own
    /// thread, taking no local worker) before it builds: returns the copy's
    /// milliseconds, 0 without a server.
    pub(super) fn copy_to_builder(&mut self, slot: u32) -> i64 {
        let Some(server) = &mut self.server else { return 0 };
        server.pool.copied_to();
        self.extras[slot as usize].phase = Phase::Build;
        server.pool.copy_to_ms()
    }

    fn ask_for_worker(&mut self, request: Request, now: SimTime) {
        let Some(server) = &mut self.server else { return };
        match server.pool.request(request, now.0) {
            Grant::Started => self.worker_started(request, now),
            Grant::Queued { wake_at } => {
                if let Some(at) = wake_at {
                    self.scheduled.push((SimTime(at), HydraEvent::Later(LaterEvent::ServerWake)));
                }
            }
        }
    }

    /// A thread took the request now: the outputs start coming back, and
    /// under the C++ runner the builder's slot is released.
    fn worker_started(&mut self, r: Request, now: SimTime) {
        let (serial, slot, attempt) = (r.serial, r.slot, r.attempt);
        let releases_slot = self.server.as_ref().is_some_and(|s| !s.holds_slot_through_upload());
        if releases_slot && self.steps[slot as usize].state == StepState::Running {
            self.off_machine(slot, now);
            self.steps[slot as usize].state = StepState::Uploading;
        }
        let done = now.plus_ms(r.duration_ms);
        self.scheduled.push((done, HydraEvent::Later(LaterEvent::Uploaded { serial, slot, attempt })));
    }

    /// Whether the receive requested for an attempt is still wanted.
    fn wants(&self, serial: u64, slot: u32, attempt: u32) -> bool {
        let s = &self.steps[slot as usize];
        s.state != StepState::Left
            && s.serial == serial
            && u32::from(s.attempts) == attempt
            && self.extras[slot as usize].phase == Phase::Receive
            && matches!(s.state, StepState::Running | StepState::Uploading)
    }

    /// Threads came free while requests wait: the next in line take them.
    fn server_wake(&mut self, now: SimTime) {
        let Some(mut server) = self.server.take() else { return };
        let mut started = std::mem::take(&mut server.started);
        let next = server.pool.wake(now.0, |r| self.wants(r.serial, r.slot, r.attempt), &mut started);
        self.server = Some(server);
        for &r in &started {
            self.worker_started(r, now);
        }
        started.clear();
        if let Some(server) = &mut self.server {
            server.started = started;
        }
        if let Some(at) = next {
            self.scheduled.push((SimTime(at), HydraEvent::Later(LaterEvent::ServerWake)));
        }
    }

    /// A step's outputs are uploaded, if its attempt is still going: it
    /// succeeds, and under the Rust runner leaves its builder now.
    fn uploaded(&mut self, serial: u64, slot: u32, attempt: u32, now: SimTime) {
        if !self.wants(serial, slot, attempt) {
            return;
        }
        if self.steps[slot as usize].state == StepState::Running {
            self.off_machine(slot, now);
        }
        // The attempt ends with its upload (for the count, under either slot rule).
        self.counters.attempts_finished += 1;
        let out = self.output_mb(slot);
        if let Some(server) = &mut self.server {
            server.pool.unbuilt(now.0, out, true);
        }
        self.succeed(slot, now);
    }

    /// The build of a running attempt ended. With a server and a successful
    /// build, its outputs go to the server and this returns true; otherwise
    /// the caller ends the attempt as without a server.
    pub(super) fn outputs_to_receive(&mut self, slot: u32, now: SimTime) -> bool {
        let Some(server) = &mut self.server else { return false };
        let s = &self.steps[slot as usize];
        let built = match s.outcome {
            Outcome::Success => true,
            Outcome::Failure => false,
            Outcome::Transient | Outcome::Machine => s.attempts > 1,
        };
        if !built {
            return false;
        }
        server.pool.built(now.0);
        let out = megabytes(self.extras[slot as usize].output_size);
        let duration_ms = server.pool.receive_ms(out);
        let machine = self.steps[slot as usize].machine;
        self.attempt_ended_on(machine, false, now);
        self.extras[slot as usize].phase = Phase::Receive;
        let s = &self.steps[slot as usize];
        let request = Request { serial: s.serial, slot, attempt: u32::from(s.attempts), queued_at: now.0, duration_ms };
        self.ask_for_worker(request, now);
        true
    }

    /// The attempt leaves its builder after a successful build: the slot is
    /// free and its time on the machine is charged to its jobset.
    fn off_machine(&mut self, slot: u32, now: SimTime) {
        let ran = self.leave_machine(slot, now);
        let s = &self.steps[slot as usize];
        let (jobset, ticket, machine) = (s.jobset, s.charge_ticket, s.machine);
        self.machines[machine as usize].steps_done += 1;
        self.runnable.charge(ticket, jobset, ran);
    }

    /// An attempt is aborted on its machine: outputs it was receiving are lost.
    pub(super) fn attempt_cut_short(&mut self, slot: u32, now: SimTime) {
        if self.extras[slot as usize].phase != Phase::Receive {
            return;
        }
        let out = self.output_mb(slot);
        if let Some(server) = &mut self.server {
            server.pool.unbuilt(now.0, out, false);
        }
        self.extras[slot as usize].phase = Phase::Build;
    }
}
