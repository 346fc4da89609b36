//! Retiring the Rust runner's builders: each builder's service is stopped
//! (`nixops ssh ... systemctl stop`) before its machine is stopped or
//! destroyed, so it leaves the runner while its machine still answers, and
//! only the machines whose service stop succeeded go on to be stopped or
//! destroyed in this pass.
//!
//! **The race.** The runner has no drain: the engine retires a builder it
//! saw idle, but the runner may dispatch a step to it between that status
//! read and the service stop, and the stop aborts that step (one of its
//! tries is used and it is retried elsewhere). Just before the stops this
//! step reads `/status/machines` again and spares every idle-retired
//! builder that has a job by then (`hydra_provisioner_retire_race_total
//! {outcome="caught"}`); what remains is the window between that read and
//! the runner seeing the connection close, well under a second of
//! dispatching plus the ssh handshake. Every idle service stop is counted
//! as exposed to it (`outcome="exposed"`). If the re-read fails, no idle
//! builder is retired in this pass. The watchdog's stops are of builders
//! that stopped answering: they are not re-checked.
//!
//! This module carries out what the plan says; it decides no retirement.

use super::metrics::Counters;
use crate::adapters::nixops::NixOps;
use crate::adapters::rust_runner;
use crate::config::Config;
use crate::engine::{Command, Plan};
use std::collections::BTreeSet;
use std::time::Duration;

/// Stops the builder services the plan asks for; returns the deployments
/// that must not be stopped or destroyed in this pass (their service was
/// not stopped). `types` names each deployment's machine type for the counters.
pub fn stop_builder_services(
    config: &Config,
    nixops: &NixOps,
    plan: &Plan,
    going: &BTreeSet<String>,
    counters: &mut Counters,
    failures: &mut Vec<String>,
) -> BTreeSet<String> {
    let stops: Vec<(&str, &str, bool)> = plan
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::StopBuilderService { deployment, unit, idle } if going.contains(deployment.as_str()) => {
                Some((deployment.as_str(), unit.as_str(), *idle))
            }
            _ => None,
        })
        .collect();
    let mut spared = BTreeSet::new();
    if stops.is_empty() {
        return spared;
    }
    let timeout = Duration::from_secs(u64::try_from(config.command_timeout).unwrap_or(1));
    let jobs_now =
        if stops.iter().any(|(_, _, idle)| *idle) { Some(rust_runner::current_jobs(config, timeout)) } else { None };
    let mut go: Vec<(&str, &str, bool)> = vec![];
    for (name, unit, idle) in stops {
        if idle {
            match &jobs_now {
                Some(Ok(jobs)) if jobs.get(name).copied().unwrap_or(0) > 0 => {
                    tracing::warn!(
                        "{name}: the runner dispatched to it since the status was read; not retired in this pass"
                    );
                    counters.retire_race_caught = counters.retire_race_caught.saturating_add(1);
                    spared.insert(name.to_string());
                    continue;
                }
                Some(Err(e)) => {
                    let problem = format!("{name}: not retired: cannot check the runner still has it idle: {e}");
                    tracing::error!("{problem}");
                    failures.push(problem);
                    spared.insert(name.to_string());
                    continue;
                }
                _ => {}
            }
        }
        go.push((name, unit, idle));
    }
    let results = crate::pool::parallel(&go, config.deploy_concurrency as usize, |(name, unit, _)| {
        tracing::info!("{name}: stopping {unit}");
        nixops.stop_service(name, unit)
    });
    for ((name, unit, idle), result) in go.iter().zip(results) {
        let machine_type = plan.decision(name).map_or("unknown", |m| m.machine_type.as_str());
        match result {
            Ok(()) => {
                tracing::info!("{name}: {unit} stopped; the builder left the runner");
                let reason = if *idle { "idle" } else { "watchdog" };
                counters.record_service_stop(reason, machine_type);
                if *idle {
                    counters.retire_race_exposed = counters.retire_race_exposed.saturating_add(1);
                }
            }
            Err(e) => {
                let problem = format!("{name}: {unit} not stopped, so the machine is left as it is: {e}");
                tracing::error!("{problem}");
                failures.push(problem);
                spared.insert(name.to_string());
            }
        }
    }
    spared
}
