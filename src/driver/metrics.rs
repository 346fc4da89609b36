//! The Prometheus textfile (`prometheusTextfile`), for node_exporter's
//! textfile collector: machines per type and state, runnables per type,
//! the plan's actions, command failures and the pass's duration, written
//! atomically after every pass that acted.
//!
//! This module renders figures the driver hands it; it observes nothing.

use crate::engine::Plan;
use crate::model::{Fleet, QueueStatus, Seconds};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What one pass measured.
pub struct PassFigures<'a> {
    pub now: Seconds,
    pub status: &'a QueueStatus,
    pub fleet: &'a Fleet,
    pub plan: &'a Plan,
    pub command_failures: usize,
    /// The state file was corrupt, unreadable or too new, and the memory was
    /// rebuilt from observation.
    pub state_rebuilt: bool,
    pub duration: Duration,
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// The textfile's contents.
pub fn render(f: &PassFigures<'_>) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "hydra_provisioner_machines",
        "Provisioned machines by type and NixOps state at the start of the last pass.",
    );
    let mut machines: BTreeMap<(String, String), u64> = BTreeMap::new();
    for d in &f.fleet.deployments {
        *machines.entry((d.machine_type.clone(), d.state.to_string())).or_default() += 1;
    }
    for ((t, s), n) in &machines {
        let _ = writeln!(out, "hydra_provisioner_machines{{type=\"{}\",state=\"{}\"}} {n}", label(t), label(s));
    }
    family(
        &mut out,
        "hydra_provisioner_runnable",
        "Runnable build steps per machine type, as the queue runner reported them.",
    );
    for t in &f.plan.types {
        let _ = writeln!(out, "hydra_provisioner_runnable{{type=\"{}\"}} {}", label(&t.machine_type), t.runnable);
    }
    family(
        &mut out,
        "hydra_provisioner_wanted_machines",
        "Machines each type was allowed to serve demand with in the last pass.",
    );
    for t in &f.plan.types {
        let _ = writeln!(out, "hydra_provisioner_wanted_machines{{type=\"{}\"}} {}", label(&t.machine_type), t.allowed);
    }
    family(&mut out, "hydra_provisioner_actions", "Machine decisions of the last pass by action.");
    let mut actions: BTreeMap<String, u64> = BTreeMap::new();
    for m in &f.plan.machines {
        *actions.entry(format!("{:?}", m.action).to_lowercase()).or_default() += 1;
    }
    for (a, n) in &actions {
        let _ = writeln!(out, "hydra_provisioner_actions{{action=\"{a}\"}} {n}");
    }
    family(&mut out, "hydra_provisioner_queue_up", "1 if the queue runner's status was read and up in the last pass.");
    let _ = writeln!(out, "hydra_provisioner_queue_up {}", u8::from(f.status.is_up()));
    family(&mut out, "hydra_provisioner_command_failures", "Commands that failed in the last pass.");
    let _ = writeln!(out, "hydra_provisioner_command_failures {}", f.command_failures);
    family(
        &mut out,
        "hydra_provisioner_state_rebuilt",
        "1 if the last pass found its state file corrupt or unreadable and rebuilt its memory.",
    );
    let _ = writeln!(out, "hydra_provisioner_state_rebuilt {}", u8::from(f.state_rebuilt));
    family(&mut out, "hydra_provisioner_pass_duration_seconds", "Wall time of the last pass.");
    let _ = writeln!(out, "hydra_provisioner_pass_duration_seconds {:.3}", f.duration.as_secs_f64());
    family(&mut out, "hydra_provisioner_last_pass_timestamp_seconds", "When the last pass ran (Unix time).");
    let _ = writeln!(out, "hydra_provisioner_last_pass_timestamp_seconds {}", f.now);
    out
}
