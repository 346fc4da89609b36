//! The Prometheus textfile (`prometheusTextfile`), for node_exporter's
//! textfile collector, and the counters behind it.
//!
//! Gauges describe the last pass: machines per type and NixOps state, demand
//! (runnable steps and wanted machines per type, left without a sample while
//! the queue runner's status is not up, since nothing is known then),
//! allowed, serving and maximum machines per type, machines without an
//! address, the plan's actions, the pass's duration and time. Counters
//! (`_total`) grow across passes: passes by outcome, machines created,
//! stopped and destroyed, failed deploys per type, failed commands. They
//! live in the state file ([`Counters`]); when that file is lost or corrupt
//! they restart from zero, which Prometheus's `rate()` and `increase()` read
//! as a counter reset, and `hydra_provisioner_state_rebuilt` says so.
//!
//! This module renders figures and counts events the driver hands it; it
//! observes nothing and writes no file.

use crate::config::Config;
use crate::engine::{Plan, Reason};
use crate::model::{Fleet, QueueStatus, Seconds};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// How a pass ended, for `hydra_provisioner_passes_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every command succeeded.
    Success,
    /// The plan was carried out, but something failed.
    Failure,
    /// The fleet could not be observed; nothing was decided or changed.
    Unobserved,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Unobserved];

    fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unobserved => "unobserved",
        }
    }
}

/// Something that happened to a machine of a type, for the per-type counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Created,
    Stopped,
    Destroyed,
    DeployFailed,
}

/// The counters, as kept in the state file between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Passes by outcome label.
    pub passes: BTreeMap<String, u64>,
    /// Per machine type.
    pub created: BTreeMap<String, u64>,
    pub stopped: BTreeMap<String, u64>,
    pub destroyed: BTreeMap<String, u64>,
    pub deploy_failures: BTreeMap<String, u64>,
    /// Everything that failed in a pass (commands, status reads, state writes).
    pub command_failures: u64,
    /// The last pass in which nothing failed (Unix seconds).
    pub last_success: Option<Seconds>,
    /// The Rust runner: builder services stopped, per type, by why
    /// (`idle`: retired; `watchdog`: silent, replaced).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub service_stops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Idle retirements called off because the runner had just dispatched
    /// to the builder (see `driver/retire.rs`).
    #[serde(skip_serializing_if = "is_zero")]
    pub retire_race_caught: u64,
    /// Idle service stops, each exposed to the remaining race.
    #[serde(skip_serializing_if = "is_zero")]
    pub retire_race_exposed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counters {
    /// Counts one `event` of a machine of `machine_type`.
    pub fn record(&mut self, event: Event, machine_type: &str) {
        let per_type = match event {
            Event::Created => &mut self.created,
            Event::Stopped => &mut self.stopped,
            Event::Destroyed => &mut self.destroyed,
            Event::DeployFailed => &mut self.deploy_failures,
        };
        let n = per_type.entry(machine_type.to_string()).or_default();
        *n = n.saturating_add(1);
    }

    /// Counts a builder service stopped for `reason` (`idle` or `watchdog`).
    pub fn record_service_stop(&mut self, reason: &str, machine_type: &str) {
        let n = self.service_stops.entry(reason.to_string()).or_default().entry(machine_type.to_string()).or_default();
        *n = n.saturating_add(1);
    }

    /// Counts a finished pass at `now` with `failures` problems.
    pub fn record_pass(&mut self, outcome: Outcome, failures: usize, now: Seconds) {
        let n = self.passes.entry(outcome.label().to_string()).or_default();
        *n = n.saturating_add(1);
        self.command_failures = self.command_failures.saturating_add(failures as u64);
        if outcome == Outcome::Success {
            self.last_success = Some(now);
        }
    }
}

/// What the engine saw and decided in a pass that observed the fleet.
pub struct Decided<'a> {
    pub fleet: &'a Fleet,
    pub plan: &'a Plan,
    /// The deployments the machines file Hydra reads lists after the pass.
    pub listed: &'a BTreeSet<String>,
}

/// What one pass measured.
pub struct PassFigures<'a> {
    pub now: Seconds,
    pub config: &'a Config,
    pub status: &'a QueueStatus,
    /// `None` when the fleet could not be observed.
    pub decided: Option<Decided<'a>>,
    pub command_failures: usize,
    /// The state file was corrupt, unreadable or too new, and the memory was
    /// rebuilt from observation.
    pub state_rebuilt: bool,
    pub duration: Duration,
    /// The counters, this pass included.
    pub counters: &'a Counters,
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample per machine type.
fn per_type(out: &mut String, name: &str, values: &BTreeMap<String, u64>) {
    for (t, n) in values {
        let _ = writeln!(out, "{name}{{type=\"{}\"}} {n}", label(t));
    }
}

/// `counts` with a zero for every configured type, so a series exists before
/// its first event and `increase()` sees that event.
fn with_every_type(config: &Config, counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut all: BTreeMap<String, u64> = config.system_types.keys().map(|t| (t.clone(), 0)).collect();
    all.extend(counts.iter().map(|(t, n)| (t.clone(), *n)));
    all
}

/// The textfile's contents.
pub fn render(f: &PassFigures<'_>) -> String {
    let mut out = String::new();
    if let Some(d) = &f.decided {
        render_decided(&mut out, f, d);
    }
    family(
        &mut out,
        "hydra_provisioner_queue_up",
        "gauge",
        "1 if the queue runner's status was read and up in the last pass.",
    );
    let _ = writeln!(out, "hydra_provisioner_queue_up {}", u8::from(f.status.is_up()));
    family(&mut out, "hydra_provisioner_command_failures", "gauge", "Commands that failed in the last pass.");
    let _ = writeln!(out, "hydra_provisioner_command_failures {}", f.command_failures);
    family(
        &mut out,
        "hydra_provisioner_state_rebuilt",
        "gauge",
        "1 if the last pass found its state file corrupt or unreadable and rebuilt its memory.",
    );
    let _ = writeln!(out, "hydra_provisioner_state_rebuilt {}", u8::from(f.state_rebuilt));
    family(&mut out, "hydra_provisioner_pass_duration_seconds", "gauge", "Wall time of the last pass.");
    let _ = writeln!(out, "hydra_provisioner_pass_duration_seconds {:.3}", f.duration.as_secs_f64());
    family(&mut out, "hydra_provisioner_last_pass_timestamp_seconds", "gauge", "When the last pass ran (Unix time).");
    let _ = writeln!(out, "hydra_provisioner_last_pass_timestamp_seconds {}", f.now);
    if let Some(t) = f.counters.last_success {
        family(
            &mut out,
            "hydra_provisioner_last_success_timestamp_seconds",
            "gauge",
            "When the last pass in which nothing failed ran (Unix time).",
        );
        let _ = writeln!(out, "hydra_provisioner_last_success_timestamp_seconds {t}");
    }
    render_counters(&mut out, f.config, f.counters);
    if f.config.rust_runner.is_some() {
        render_rust_runner(&mut out, f);
    }
    out
}

/// The Rust runner's watchdog and retirements (only under `runner = "rust"`).
fn render_rust_runner(out: &mut String, f: &PassFigures<'_>) {
    family(
        out,
        "hydra_provisioner_silent_builders",
        "gauge",
        "Provisioned builders that had not pinged the Rust runner for watchdogReport seconds in the last pass.",
    );
    let mut silent: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(d) = &f.decided {
        for b in &d.plan.silent_builders {
            *silent.entry(b.machine_type.to_string()).or_default() += 1;
        }
    }
    per_type(out, "hydra_provisioner_silent_builders", &with_every_type(f.config, &silent));
    let c = f.counters;
    family(
        out,
        "hydra_provisioner_builder_service_stops_total",
        "counter",
        "Builder services stopped before their machine went: reason idle (retired) or watchdog (silent, replaced).",
    );
    for reason in ["idle", "watchdog"] {
        let counts = c.service_stops.get(reason).cloned().unwrap_or_default();
        for (t, n) in with_every_type(f.config, &counts) {
            let _ = writeln!(
                out,
                "hydra_provisioner_builder_service_stops_total{{type=\"{}\",reason=\"{reason}\"}} {n}",
                label(&t)
            );
        }
    }
    family(
        out,
        "hydra_provisioner_retire_race_total",
        "counter",
        "Idle retirements: caught (the runner had dispatched to the builder; not retired) and exposed (service stopped).",
    );
    let _ = writeln!(out, "hydra_provisioner_retire_race_total{{outcome=\"caught\"}} {}", c.retire_race_caught);
    let _ = writeln!(out, "hydra_provisioner_retire_race_total{{outcome=\"exposed\"}} {}", c.retire_race_exposed);
}

fn render_decided(out: &mut String, f: &PassFigures<'_>, d: &Decided<'_>) {
    family(
        out,
        "hydra_provisioner_machines",
        "gauge",
        "Provisioned machines by type and NixOps state at the start of the last pass.",
    );
    let mut machines: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in &d.fleet.deployments {
        *machines.entry((m.machine_type.to_string(), m.state.to_string())).or_default() += 1;
    }
    for ((t, s), n) in &machines {
        let _ = writeln!(out, "hydra_provisioner_machines{{type=\"{}\",state=\"{}\"}} {n}", label(t), label(s));
    }
    // Demand is unknown while the status is not up: no sample rather than a 0
    // that reads as "no work".
    let demand: BTreeMap<String, (u64, u64)> = if f.status.is_up() {
        d.plan.types.iter().map(|t| (t.machine_type.to_string(), (t.runnable, t.wanted))).collect()
    } else {
        BTreeMap::new()
    };
    family(
        out,
        "hydra_provisioner_runnable",
        "gauge",
        "Runnable build steps per machine type, as the queue runner reported them (no sample while it is not up).",
    );
    per_type(out, "hydra_provisioner_runnable", &demand.iter().map(|(t, (r, _))| (t.clone(), *r)).collect());
    family(
        out,
        "hydra_provisioner_wanted_machines",
        "gauge",
        "Machines the demand of each type asks for (no sample while the queue runner is not up).",
    );
    per_type(out, "hydra_provisioner_wanted_machines", &demand.iter().map(|(t, (_, w))| (t.clone(), *w)).collect());
    family(
        out,
        "hydra_provisioner_allowed_machines",
        "gauge",
        "Machines each type was allowed to serve demand with in the last pass (wanted, bounded by min and max).",
    );
    per_type(
        out,
        "hydra_provisioner_allowed_machines",
        &d.plan.types.iter().map(|t| (t.machine_type.to_string(), t.allowed)).collect(),
    );
    family(
        out,
        "hydra_provisioner_serving_machines",
        "gauge",
        "Machines of each type in the machines file Hydra reads after the last pass.",
    );
    let mut serving: BTreeMap<String, u64> = BTreeMap::new();
    let mut without_address: BTreeMap<String, u64> = BTreeMap::new();
    for m in &d.plan.machines {
        if d.listed.contains(m.deployment.as_str()) {
            *serving.entry(m.machine_type.to_string()).or_default() += 1;
        }
        if matches!(m.reason, Reason::NoAddress { .. }) {
            *without_address.entry(m.machine_type.to_string()).or_default() += 1;
        }
    }
    per_type(out, "hydra_provisioner_serving_machines", &with_every_type(f.config, &serving));
    family(out, "hydra_provisioner_max_machines", "gauge", "maxMachines of each configured type.");
    per_type(
        out,
        "hydra_provisioner_max_machines",
        &f.config.system_types.iter().map(|(t, tc)| (t.clone(), u64::from(tc.max_machines))).collect(),
    );
    family(
        out,
        "hydra_provisioner_machines_without_address",
        "gauge",
        "Running machines of each type without a known address (held: not listed, not destroyed).",
    );
    per_type(out, "hydra_provisioner_machines_without_address", &with_every_type(f.config, &without_address));
    family(out, "hydra_provisioner_actions", "gauge", "Machine decisions of the last pass by action.");
    let mut actions: BTreeMap<String, u64> = BTreeMap::new();
    for m in &d.plan.machines {
        *actions.entry(format!("{:?}", m.action).to_lowercase()).or_default() += 1;
    }
    for (a, n) in &actions {
        let _ = writeln!(out, "hydra_provisioner_actions{{action=\"{a}\"}} {n}");
    }
}

fn render_counters(out: &mut String, config: &Config, c: &Counters) {
    family(
        out,
        "hydra_provisioner_passes_total",
        "counter",
        "Passes by outcome: success, failure (something failed), unobserved (the fleet could not be observed).",
    );
    for outcome in Outcome::ALL {
        let n = c.passes.get(outcome.label()).copied().unwrap_or(0);
        let _ = writeln!(out, "hydra_provisioner_passes_total{{outcome=\"{}\"}} {n}", outcome.label());
    }
    let per_type_counters = [
        ("hydra_provisioner_machines_created_total", "Deployments created and tagged, per type.", &c.created),
        ("hydra_provisioner_machines_stopped_total", "Machines stopped (stopOnIdle), per type.", &c.stopped),
        ("hydra_provisioner_machines_destroyed_total", "Machines destroyed and deleted, per type.", &c.destroyed),
        ("hydra_provisioner_deploy_failures_total", "Deploys that failed, per type.", &c.deploy_failures),
    ];
    for (name, help, counts) in per_type_counters {
        family(out, name, "counter", help);
        per_type(out, name, &with_every_type(config, counts));
    }
    family(
        out,
        "hydra_provisioner_command_failures_total",
        "counter",
        "Everything that failed in a pass: commands, status reads, state and file writes.",
    );
    let _ = writeln!(out, "hydra_provisioner_command_failures_total {}", c.command_failures);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{QueueHealth, QueueStatus};

    fn config() -> Config {
        Config::from_json_str(
            r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "maxMachines": 4},
                                "aarch64-linux": {"nixopsExpr": "/d.nix"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn counters_start_at_zero_for_every_type_and_outcome() {
        let config = config();
        let mut counters = Counters::default();
        counters.record(Event::Created, "x86_64-linux");
        counters.record(Event::Created, "x86_64-linux");
        counters.record_pass(Outcome::Failure, 2, 100);
        let status = QueueStatus::down("runner stopped");
        let text = render(&PassFigures {
            now: 100,
            config: &config,
            status: &status,
            decided: None,
            command_failures: 2,
            state_rebuilt: false,
            duration: Duration::from_millis(1500),
            counters: &counters,
        });
        for line in [
            "hydra_provisioner_machines_created_total{type=\"x86_64-linux\"} 2",
            "hydra_provisioner_machines_created_total{type=\"aarch64-linux\"} 0",
            "hydra_provisioner_passes_total{outcome=\"failure\"} 1",
            "hydra_provisioner_passes_total{outcome=\"success\"} 0",
            "hydra_provisioner_command_failures_total 2",
            "# TYPE hydra_provisioner_passes_total counter",
            "hydra_provisioner_queue_up 0",
            "hydra_provisioner_pass_duration_seconds 1.500",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("last_success"), "no success yet: no sample\n{text}");
        assert!(!text.contains("hydra_provisioner_runnable"), "nothing decided: no per-type gauges\n{text}");
        assert!(matches!(status.health, QueueHealth::Down { .. }));
    }
}
