//! Engine tests: the `plan` command and `engine::decide` rule by rule, in
//! both `quirks` modes, plus property tests of the engine's invariants and
//! real `nix-instantiate` evaluation of configuration files.

use crate::common::{bin, data, have_nix, root};
use hydra_provisioner::config::{self, Config, Quirks};
use hydra_provisioner::engine::{Action, ActivitySource, Command, Plan, Reason, TypeNote, decide, deploy_fingerprint};
use hydra_provisioner::model::{
    BuilderStatus, Deployment, Fleet, MachineMemory, MachineState, Observation, QueueHealth, QueueStatus, TypeStatus,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const NOW: i64 = 1_700_000_000;
const X86: &str = "x86_64-linux";

fn config(v: Value) -> Config {
    config::parse(&v, "test", None).expect("valid test config").0
}

/// One x86_64-linux type with the given overrides.
fn x86_config(type_overrides: Value, top: Value) -> Config {
    let mut t = json!({"nixopsExpr": "/deployment.nix"});
    t.as_object_mut().unwrap().extend(type_overrides.as_object().unwrap().clone());
    let mut c = json!({"systemTypes": {X86: t}});
    c.as_object_mut().unwrap().extend(top.as_object().unwrap().clone());
    config(c)
}

fn original(type_overrides: Value) -> Config {
    x86_config(type_overrides, json!({"quirks": "original"}))
}

fn fixed(type_overrides: Value) -> Config {
    x86_config(type_overrides, json!({}))
}

fn up_status(runnable: u64, uptime: i64) -> QueueStatus {
    let mut s = QueueStatus::down("");
    s.health = QueueHealth::Up;
    s.time = Some(NOW);
    s.uptime = uptime;
    s.machine_types.insert(X86.into(), TypeStatus { runnable, running: 0, last_active: None });
    s
}

fn with_builder(mut s: QueueStatus, ip: &str, jobs: u64, idle_since: Option<i64>) -> QueueStatus {
    s.machines.insert(ip.into(), BuilderStatus { enabled: true, current_jobs: jobs, idle_since });
    s
}

/// A deployment NixOps has found not running for an hour (past `notRunningTimeout`).
fn gone_for_an_hour(d: Deployment, state: MachineState) -> Deployment {
    let mut d = in_state(d, state);
    d.memory.not_running_since = Some(NOW - 3600);
    d
}

/// An up, listed, current x86_64 machine `hydra-provisioned-<n>` at 10.0.0.<n>.
fn machine(n: u32, launched_ago: i64) -> Deployment {
    Deployment {
        name: format!("hydra-provisioned-{n}").into(),
        machine_type: X86.into(),
        state: MachineState::Up,
        recorded_state: None,
        launch_time: Some(NOW - launched_ago),
        public_ip: Some(format!("10.0.0.{n}")),
        host_key: None,
        memory: MachineMemory { listed: true, ..MachineMemory::default() },
    }
}

fn in_state(mut d: Deployment, state: MachineState) -> Deployment {
    d.state = state;
    d
}

fn plan(c: &Config, status: QueueStatus, deployments: Vec<Deployment>) -> Plan {
    decide(c, &Observation { status, fleet: Fleet { deployments, other_deployment_names: BTreeSet::new() } }, NOW)
}

fn action(p: &Plan, name: &str) -> (Action, Reason) {
    let d = p.decision(name).unwrap_or_else(|| panic!("no decision for {name}: {p:#?}"));
    (d.action, d.reason.clone())
}

fn destroys(p: &Plan) -> Vec<&str> {
    p.commands
        .iter()
        .filter_map(|c| if let Command::Destroy { deployment } = c { Some(deployment.as_str()) } else { None })
        .collect()
}

fn creates(p: &Plan) -> Vec<&str> {
    p.commands
        .iter()
        .filter_map(|c| if let Command::Create { deployment, .. } = c { Some(deployment.as_str()) } else { None })
        .collect()
}

// Launch ages that leave a given paid time under hourly billing.
const LEFT_1800: i64 = 1800; // launched 30 min ago: 1800 s left in the hour
const LEFT_1799: i64 = 1801;
const LEFT_600: i64 = 3000;
const LEFT_599: i64 = 3001;

#[test]
fn wanted_and_allowed_follow_the_original_formula() {
    // (runnable, ignored, per machine, min, max) -> (wanted, allowed)
    let table = [
        ((0, 0, 10, 0, 1), (0, 0)),
        ((10, 0, 10, 0, 5), (1, 1)),
        ((11, 0, 10, 0, 5), (2, 2)),
        ((20, 0, 10, 0, 5), (2, 2)),
        ((21, 0, 10, 0, 5), (3, 3)),
        ((300, 250, 50, 0, 12), (1, 1)),
        ((250, 250, 50, 0, 12), (0, 0)),
        ((100, 250, 50, 0, 12), (0, 0)),
        ((10_000, 250, 50, 0, 12), (195, 12)),
        ((0, 0, 10, 3, 5), (0, 3)),
        ((0, 0, 10, 5, 2), (0, 2)), // min > max: max wins
    ];
    for ((runnable, ignored, per, min, max), (wanted, allowed)) in table {
        let c = fixed(
            json!({"ignoredRunnables": ignored, "runnablesPerMachine": per, "minMachines": min, "maxMachines": max}),
        );
        let p = plan(&c, up_status(runnable, 86_400), vec![]);
        let t = &p.types[0];
        assert_eq!(
            (t.wanted, t.allowed),
            (wanted, allowed),
            "runnable {runnable} ignored {ignored} per {per} min {min} max {max}"
        );
        assert_eq!(creates(&p).len() as u64, allowed.min(1), "one creation per pass");
    }
}

#[test]
fn reuse_prefers_up_machines_skips_missing_and_creates_one_with_the_lowest_free_name() {
    for c in [original(json!({"maxMachines": 4})), fixed(json!({"maxMachines": 4}))] {
        let fleet = vec![
            in_state(machine(0, 100), MachineState::Stopped),
            gone_for_an_hour(machine(1, 100), MachineState::Missing),
            machine(3, 100),
        ];
        let p = plan(&c, up_status(25, 86_400), fleet);
        assert_eq!(action(&p, "hydra-provisioned-3").0, Action::Serve);
        assert_eq!(action(&p, "hydra-provisioned-0").0, Action::Serve);
        assert_eq!(p.decision("hydra-provisioned-3").unwrap().reason, Reason::NeededForDemand { rank: 1, allowed: 3 });
        assert_eq!(creates(&p), vec!["hydra-provisioned-2"], "lowest free n, one per pass");
        assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Destroy, "{:?}", c.quirks);
    }
}

#[test]
fn new_names_avoid_deployments_that_are_not_ours_in_fixed_mode() {
    let c = fixed(json!({}));
    let fleet = Fleet { deployments: vec![], other_deployment_names: ["hydra-provisioned-0".to_string()].into() };
    let p = decide(&c, &Observation { status: up_status(5, 86_400), fleet }, NOW);
    assert_eq!(creates(&p), vec!["hydra-provisioned-1"]);
}

#[test]
fn creations_per_pass_are_configurable() {
    let c = x86_config(json!({"maxMachines": 10}), json!({"maxCreationsPerPass": 3}));
    let p = plan(&c, up_status(100, 86_400), vec![]);
    assert_eq!(creates(&p).len(), 3);
    assert!(p.types[0].notes.contains(&TypeNote::CreationLimitReached { per_pass: 3, short_by: 7 }));
}

#[test]
fn paid_time_thresholds_at_their_edges() {
    // Not needed (no runnables), idle, queue runner up for a day, no grace period.
    for c in [original(json!({})), x86_config(json!({}), json!({"drainBeforeDestroy": false}))] {
        let status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 7200));
        let left = |ago| plan(&c, status.clone(), vec![machine(1, ago)]);
        let p = left(LEFT_1800);
        assert_eq!(
            action(&p, "hydra-provisioned-1"),
            (Action::Keep, Reason::PaidTimeLeft { left: 1800, threshold: 1800 })
        );
        assert!(p.listings.iter().any(|l| l.deployment == "hydra-provisioned-1"), "kept machines stay listed");
        let p = left(LEFT_1799);
        assert_eq!(
            action(&p, "hydra-provisioned-1"),
            (Action::Leave, Reason::PaidTimeLeftBeforeStop { left: 1799, threshold: 600 })
        );
        let p = left(LEFT_600);
        assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Leave);
        assert!(destroys(&p).is_empty());
        let p = left(LEFT_599);
        assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Destroy, "{:?}", c.quirks);
        assert_eq!(destroys(&p), vec!["hydra-provisioned-1"]);
        // Exactly on an hour boundary nothing is left.
        let p = left(3600);
        assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Destroy);
    }
}

#[test]
fn per_second_billing_never_keeps_for_paid_time() {
    let c = x86_config(json!({}), json!({"billing": "per-second", "drainBeforeDestroy": false}));
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 7200));
    let p = plan(&c, status, vec![machine(1, 120)]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Destroy);
}

fn deploys(p: &Plan) -> Vec<&str> {
    p.commands
        .iter()
        .filter_map(|c| if let Command::Deploy { deployment, .. } = c { Some(deployment.as_str()) } else { None })
        .collect()
}

fn touches(p: &Plan) -> Vec<&str> {
    p.commands
        .iter()
        .filter_map(|c| if let Command::TouchKeepAlive { deployment } = c { Some(deployment.as_str()) } else { None })
        .collect()
}

#[test]
fn busy_machines_original_inverted_drain_and_fixed_drain() {
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 2, None);
    // Original, no grace period: kept, deployed AND listed (the comment says
    // the opposite; the code is what ran).
    let p = plan(&original(json!({})), status.clone(), vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1"), (Action::Keep, Reason::Busy { jobs: 2 }));
    assert_eq!(p.listings.len(), 1);
    assert_eq!(deploys(&p), ["hydra-provisioned-1"]);
    // Original with a grace period: kept and deployed, but left out of the file.
    let p = plan(&original(json!({"gracePeriod": 60})), status.clone(), vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1"), (Action::Drain, Reason::Busy { jobs: 2 }));
    assert!(p.listings.is_empty());
    assert_eq!(deploys(&p), ["hydra-provisioned-1"]);
    // Fixed: delisted, never destroyed; not redeployed while it builds, but
    // its dead man's switch is kept from firing.
    let p = plan(&fixed(json!({"gracePeriod": 60})), status, vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1"), (Action::Drain, Reason::Busy { jobs: 2 }));
    assert!(p.listings.is_empty() && destroys(&p).is_empty() && deploys(&p).is_empty());
    assert_eq!(touches(&p), ["hydra-provisioned-1"]);
}

#[test]
fn hourly_billing_keeps_a_busy_unneeded_machine_listed_while_paid() {
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 2, None);
    let c = fixed(json!({}));
    // 1800 s of the hour left: it serves on, listed.
    let p = plan(&c, status.clone(), vec![machine(1, LEFT_1800)]);
    assert_eq!(action(&p, "hydra-provisioned-1"), (Action::Keep, Reason::PaidTimeLeft { left: 1800, threshold: 1800 }));
    assert_eq!(p.listings.len(), 1);
    // The paid time runs short: now it drains.
    let p = plan(&c, status, vec![machine(1, LEFT_1799)]);
    assert_eq!(action(&p, "hydra-provisioned-1"), (Action::Drain, Reason::Busy { jobs: 2 }));
    assert!(p.listings.is_empty());
}

#[test]
fn grace_period_from_last_active_idle_since_or_observation() {
    let c = fixed(json!({"gracePeriod": 900}));
    // lastActive (old dumps) wins.
    let mut status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 5000));
    status.machine_types.get_mut(X86).unwrap().last_active = Some(NOW - 100);
    let p = plan(&c, status, vec![machine(1, LEFT_599)]);
    assert!(
        matches!(action(&p, "hydra-provisioned-1"), (Action::Keep, Reason::InGracePeriod { until, .. }) if until == NOW + 800)
    );
    // Without lastActive, the machine's idleSince.
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 899));
    let p = plan(&c, status, vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Keep);
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 900));
    let p = plan(&c, status, vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Drain, "grace over: drain before destroy");
    // Without either, our own record of when it went idle.
    let mut m = machine(1, LEFT_599);
    m.memory.idle_since = Some(NOW - 1000);
    let p = plan(&c, up_status(0, 86_400), vec![m]);
    assert!(matches!(action(&p, "hydra-provisioned-1").1, Reason::Draining { .. }));
    // Nothing known: idle from now, so kept for the grace period.
    let p = plan(&c, up_status(0, 86_400), vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Keep);
    assert_eq!(p.memory["hydra-provisioned-1"].idle_since, Some(NOW));
}

#[test]
fn queue_runner_restarted_ten_minutes_ago_keeps_idle_machines() {
    // Original: no lastActive, so lastActive = now - uptime + 1800, in the future.
    let p = plan(&original(json!({})), up_status(0, 600), vec![machine(1, LEFT_599)]);
    assert!(
        matches!(action(&p, "hydra-provisioned-1"), (Action::Keep, Reason::InGracePeriod { last_active, .. }) if last_active == NOW + 1200)
    );
    // Fixed: the restart guard.
    let p = plan(&fixed(json!({})), up_status(0, 600), vec![machine(1, LEFT_599)]);
    assert_eq!(
        action(&p, "hydra-provisioned-1"),
        (Action::Keep, Reason::QueueRunnerRecentlyStarted { uptime: 600, guard: 1800 })
    );
    // An hour after the restart the original lets it go.
    let p = plan(&original(json!({})), up_status(0, 3600), vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Destroy);
}

#[test]
fn an_idle_machine_of_an_unconfigured_type_outlives_a_queue_runner_restart() {
    // Paid time runs out this minute and nothing is building on it.
    let mut foreign = machine(2, LEFT_599);
    foreign.machine_type = "sparc-linux".into();
    // The original keeps it through the uptime fallback (and then crashes
    // writing the machines file, which has no line for its type).
    let p = plan(&original(json!({})), up_status(0, 600), vec![foreign.clone()]);
    assert_eq!(action(&p, "hydra-provisioned-2").0, Action::Keep);
    // Fixed: kept through the restart guard, delisted since no line can
    // name its type, and its dead man's switch touched.
    let p = plan(&fixed(json!({})), up_status(0, 600), vec![foreign.clone()]);
    assert_eq!(
        action(&p, "hydra-provisioned-2"),
        (Action::Drain, Reason::QueueRunnerRecentlyStarted { uptime: 600, guard: 1800 })
    );
    assert!(!p.commands.iter().any(|c| matches!(c, Command::Stop { .. } | Command::Destroy { .. })), "{p:#?}");
    assert!(p.commands.contains(&Command::TouchKeepAlive { deployment: "hydra-provisioned-2".into() }));
    // Once the runner is older than the guard it expires like any idle
    // machine: drained first while listed, destroyed once not.
    let p = plan(&fixed(json!({})), up_status(0, 3600), vec![foreign.clone()]);
    assert!(matches!(action(&p, "hydra-provisioned-2"), (Action::Drain, Reason::Draining { .. })));
    foreign.memory.listed = false;
    let p = plan(&fixed(json!({})), up_status(0, 3600), vec![foreign]);
    assert!(
        matches!(action(&p, "hydra-provisioned-2"), (Action::Destroy, Reason::TypeNotConfigured { .. })),
        "{:?}",
        p.machines
    );
}

#[test]
fn status_down() {
    let fleet = vec![machine(1, LEFT_599), in_state(machine(2, 100), MachineState::Missing)];
    // Original: an empty queue with uptime 0: every running machine kept (fallback), listed.
    let p = plan(&original(json!({})), QueueStatus::down("exit status 1"), fleet.clone());
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Keep);
    assert_eq!(action(&p, "hydra-provisioned-2").0, Action::Destroy, "not running: expired even when down");
    // Fixed: nothing is stopped or destroyed, the machines file is not rewritten.
    let p = plan(&fixed(json!({"minMachines": 1})), QueueStatus::down("exit status 1"), fleet);
    assert!(
        p.commands
            .iter()
            .all(|c| !matches!(c, Command::Stop { .. } | Command::Destroy { .. } | Command::WriteMachinesFile))
    );
    assert_eq!(action(&p, "hydra-provisioned-2").0, Action::Hold);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Serve, "minMachines still honoured");
}

#[test]
fn garbled_status_holds_everything_in_both_modes() {
    for c in [original(json!({"minMachines": 1})), fixed(json!({"minMachines": 1}))] {
        let fleet = vec![machine(1, LEFT_599), in_state(machine(2, 100), MachineState::Missing)];
        let p = plan(&c, QueueStatus::unknown("not JSON"), fleet);
        assert!(p.machines.iter().all(|m| m.action == Action::Hold), "{p:#?}");
        // Only the running machine's dead man's switch is kept from firing.
        assert_eq!(p.commands, vec![Command::TouchKeepAlive { deployment: "hydra-provisioned-1".into() }]);
    }
}

#[test]
fn up_status_without_machine_types_is_held() {
    let mut s = up_status(0, 86_400);
    s.has_machine_types = false;
    s.machine_types.clear();
    let p = plan(&original(json!({})), s, vec![machine(1, LEFT_599)]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Hold);
    assert!(destroys(&p).is_empty());
}

#[test]
fn stop_on_idle() {
    let status = up_status(0, 86_400);
    let fleet = vec![
        machine(1, LEFT_599),
        in_state(machine(2, 1), MachineState::Stopped),
        gone_for_an_hour(machine(3, 1), MachineState::Missing),
    ];
    let p = plan(&original(json!({"stopOnIdle": true})), status.clone(), fleet.clone());
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Stop);
    assert_eq!(action(&p, "hydra-provisioned-2"), (Action::Leave, Reason::Stopped));
    assert_eq!(action(&p, "hydra-provisioned-3").0, Action::Stop, "the original 'stops' a vanished machine every pass");
    let c = x86_config(json!({"stopOnIdle": true}), json!({"drainBeforeDestroy": false}));
    let p = plan(&c, status, fleet);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Stop);
    assert_eq!(action(&p, "hydra-provisioned-2"), (Action::Leave, Reason::Stopped));
    assert_eq!(action(&p, "hydra-provisioned-3").0, Action::Destroy, "fixed: vanished machines are cleaned up");
}

#[test]
fn two_phase_scale_in_delists_then_destroys() {
    let c = fixed(json!({}));
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 7200));
    // Pass 1: listed and idle: delisted, not destroyed.
    let p1 = plan(&c, status.clone(), vec![machine(1, LEFT_599)]);
    assert_eq!(
        action(&p1, "hydra-provisioned-1"),
        (Action::Drain, Reason::Draining { delisted_at: NOW, until: NOW + 60 })
    );
    assert!(destroys(&p1).is_empty() && p1.listings.is_empty());
    let memory = p1.memory["hydra-provisioned-1"].clone();
    assert_eq!((memory.listed, memory.delisted_at), (false, Some(NOW)));
    // Pass 2, 300 s later, Hydra reports it disabled and idle: destroyed.
    let mut m = machine(1, LEFT_599); // same launch time: 299 s left at NOW + 300
    m.memory = memory;
    let mut status2 = status.clone();
    status2.machines.get_mut("10.0.0.1").unwrap().enabled = false;
    let p2 = decide(
        &c,
        &Observation { status: status2, fleet: Fleet { deployments: vec![m.clone()], ..Fleet::default() } },
        NOW + 300,
    );
    assert_eq!(action(&p2, "hydra-provisioned-1").0, Action::Destroy);
    assert!(!p2.memory.contains_key("hydra-provisioned-1"), "a destroyed deployment is forgotten");
    // If Hydra still has it enabled, wait for the reload.
    let p3 = decide(&c, &Observation { status, fleet: Fleet { deployments: vec![m], ..Fleet::default() } }, NOW + 300);
    assert_eq!(action(&p3, "hydra-provisioned-1"), (Action::Drain, Reason::WaitingForReload { delisted_at: NOW }));
}

#[test]
fn a_deployment_whose_deploys_keep_failing_is_replaced() {
    let c = fixed(json!({"maxMachines": 2}));
    let mut broken = machine(0, LEFT_599);
    broken.memory.deploy_failures = 3;
    broken.memory.listed = false;
    let p = plan(&c, up_status(10, 86_400), vec![broken.clone()]);
    assert_eq!(creates(&p), vec!["hydra-provisioned-1"]);
    assert_eq!(
        action(&p, "hydra-provisioned-0"),
        (Action::Destroy, Reason::DeployFailedRepeatedly { failures: 3, limit: 3 })
    );
    // Two failures: still reused.
    broken.memory.deploy_failures = 2;
    let p = plan(&c, up_status(10, 86_400), vec![broken]);
    assert_eq!(action(&p, "hydra-provisioned-0").0, Action::Serve);
    assert!(creates(&p).is_empty());
}

#[test]
fn a_failing_machine_with_paid_time_is_left_delisted_not_redeployed() {
    let c = fixed(json!({"maxMachines": 0}));
    let mut broken = machine(0, 100); // 3500 s paid
    broken.memory.deploy_failures = 3;
    let p = plan(&c, up_status(0, 86_400), vec![broken]);
    assert!(matches!(action(&p, "hydra-provisioned-0"), (Action::Leave, Reason::PaidTimeLeftBeforeStop { .. })));
    assert!(!p.commands.iter().any(|c| matches!(c, Command::Deploy { .. })), "{:?}", p.commands);
}

#[test]
fn a_failed_deploy_keeps_the_drain_clock_of_a_delisted_machine() {
    let c = fixed(json!({}));
    let mut m = machine(1, 100);
    m.memory.listed = false;
    m.memory.delisted_at = Some(NOW - 500);
    let p = plan(&c, up_status(5, 86_400), vec![m]);
    let mut memory = p.memory["hydra-provisioned-1"].clone();
    assert_eq!(memory.delisted_at, Some(NOW - 500), "still delisted until its deploy succeeds");
    let mut failed = memory.clone();
    failed.record_deploy(false, "fp", NOW);
    assert_eq!((failed.listed, failed.delisted_at, failed.deploy_failures), (false, Some(NOW - 500), 1));
    memory.record_deploy(true, "fp", NOW);
    assert_eq!((memory.listed, memory.delisted_at, memory.deployed_at), (true, None, Some(NOW)));
    // A machine that was listed and fails its deploy starts draining now.
    let p = plan(&c, up_status(5, 86_400), vec![machine(2, 100)]);
    let mut listed = p.memory["hydra-provisioned-2"].clone();
    listed.record_deploy(false, "fp", NOW);
    assert_eq!(listed.delisted_at, Some(NOW));
}

#[test]
fn fixed_mode_redeploys_only_what_is_stale() {
    let c = fixed(json!({}));
    let tc = &c.system_types[X86];
    let mut current = machine(1, 100);
    current.memory.deployed_fingerprint = Some(deploy_fingerprint(tc, "hydra-provisioned").into());
    current.memory.deployed_at = Some(NOW - 3600);
    let p = plan(&c, up_status(5, 86_400), vec![current.clone()]);
    assert_eq!(p.commands[0], Command::TouchKeepAlive { deployment: "hydra-provisioned-1".into() });
    // Changed expression, a day-old deploy, or a stopped machine: deploy.
    let c2 = x86_config(json!({"nixopsExpr": "/other.nix"}), json!({}));
    assert!(matches!(plan(&c2, up_status(5, 86_400), vec![current.clone()]).commands[0], Command::Deploy { .. }));
    let mut old = current.clone();
    old.memory.deployed_at = Some(NOW - 86_400);
    assert!(matches!(plan(&c, up_status(5, 86_400), vec![old]).commands[0], Command::Deploy { .. }));
    let stopped = in_state(current.clone(), MachineState::Stopped);
    let p = plan(&c, up_status(5, 86_400), vec![stopped]);
    assert_eq!(p.commands[0], Command::Start { deployment: "hydra-provisioned-1".into() });
    assert!(matches!(p.commands[1], Command::Deploy { .. }));
    // The original redeploys everything it keeps.
    let p = plan(&original(json!({})), up_status(5, 86_400), vec![current]);
    assert!(matches!(p.commands[0], Command::Deploy { .. }));
}

#[test]
fn machines_file_lines_match_the_original_columns() {
    let c = config(json!({"systemTypes": {
        "x86_64-linux": {"nixopsExpr": "/d", "maxJobs": 4, "speedFactor": 2, "sshKey": "/key"},
        "x86_64-linux:kvm,big-parallel": {"nixopsExpr": "/d"},
        "aarch64-linux": {"nixopsExpr": "/d", "speedFactor": 1.5}}}));
    let mut a = machine(1, 100);
    a.host_key = Some("ssh-ed25519 AAAA".into());
    let mut b = machine(2, 100);
    b.machine_type = "x86_64-linux:big-parallel,kvm".into();
    let mut d = machine(3, 100);
    d.machine_type = "aarch64-linux".into();
    let mut status = up_status(1, 86_400);
    status
        .machine_types
        .insert("x86_64-linux:big-parallel,kvm".into(), TypeStatus { runnable: 1, ..TypeStatus::default() });
    status.machine_types.insert("aarch64-linux".into(), TypeStatus { runnable: 1, ..TypeStatus::default() });
    let p = plan(&c, status, vec![a, b, d]);
    let file = p.machines_file_preview;
    assert!(file.contains("root@10.0.0.1 x86_64-linux,i686-linux /key 4 2 - - c3NoLWVkMjU1MTkgQUFBQQ==\n"), "{file}");
    assert!(
        file.contains("root@10.0.0.2 x86_64-linux,i686-linux - 1 1 big-parallel,kvm big-parallel,kvm -\n"),
        "{file}"
    );
    assert!(file.contains("root@10.0.0.3 aarch64-linux - 1 1.5 - - -\n"), "{file}");
}

#[test]
fn running_machine_without_address_and_unconfigured_types() {
    let mut no_ip = machine(1, LEFT_599);
    no_ip.public_ip = None;
    no_ip.launch_time = None;
    let mut foreign = machine(2, LEFT_1800);
    foreign.machine_type = "sparc-linux".into();
    let fleet = vec![no_ip, foreign];
    let p = plan(&original(json!({})), up_status(0, 86_400), fleet.clone());
    assert!(matches!(action(&p, "hydra-provisioned-1"), (Action::Hold, Reason::OriginalWouldCrash { .. })));
    // The original kept it for its paid time and deployed it, then crashed
    // writing the machines file: deployed, not listed, warned about.
    assert!(matches!(action(&p, "hydra-provisioned-2"), (Action::Keep, Reason::PaidTimeLeft { .. })));
    assert_eq!(deploys(&p), ["hydra-provisioned-2"]);
    assert!(p.listings.is_empty());
    assert!(p.warnings.iter().any(|w| w.contains("unconfigured type `sparc-linux`")), "{:?}", p.warnings);
    let p = plan(&fixed(json!({})), up_status(0, 86_400), fleet);
    assert!(matches!(action(&p, "hydra-provisioned-1"), (Action::Hold, Reason::NoAddress { .. })));
    assert_eq!(action(&p, "hydra-provisioned-2").0, Action::Leave, "paid for, so left delisted until it runs down");
}

#[test]
fn original_reads_last_active_of_an_unconfigured_type_too() {
    // An unconfigured type has no grace period, so only a lastActive in the
    // future keeps it; the original read it from the status all the same.
    let mut foreign = machine(2, LEFT_599);
    foreign.machine_type = "sparc-linux".into();
    let mut status = up_status(0, 86_400);
    status
        .machine_types
        .insert("sparc-linux".into(), TypeStatus { last_active: Some(NOW + 100), ..TypeStatus::default() });
    let p = plan(&original(json!({})), status, vec![foreign]);
    assert!(
        matches!(
            action(&p, "hydra-provisioned-2"),
            (Action::Keep, Reason::InGracePeriod { source: ActivitySource::TypeLastActive, .. })
        ),
        "{:?}",
        p.machines
    );
    assert_eq!(deploys(&p), ["hydra-provisioned-2"]);
}

#[test]
fn a_machine_without_an_address_is_destroyed_after_the_address_timeout() {
    // Per-second billing: nothing paid keeps it.
    let c = x86_config(json!({"stopOnIdle": true}), json!({"billing": "per-second"}));
    let mut no_ip = machine(1, 600);
    no_ip.public_ip = None;
    no_ip.memory.listed = false;
    // Launched 10 minutes ago: left alone until half an hour after launch.
    let p = plan(&c, up_status(0, 86_400), vec![no_ip.clone()]);
    assert_eq!(
        action(&p, "hydra-provisioned-1"),
        (Action::Hold, Reason::NoAddress { since: NOW - 600, until: NOW + 1200 })
    );
    assert_eq!(p.memory["hydra-provisioned-1"].no_address_since, Some(NOW - 600));
    // An hour after launch and still no address: broken, so destroyed (not
    // stopped, whatever stopOnIdle says).
    no_ip.launch_time = Some(NOW - 3600);
    let p = plan(&c, up_status(0, 86_400), vec![no_ip.clone()]);
    assert_eq!(
        action(&p, "hydra-provisioned-1"),
        (Action::Destroy, Reason::NoAddressTimedOut { since: NOW - 3600, timeout: 1800 })
    );
    // Unknown launch time: our own first sight of it counts.
    no_ip.launch_time = None;
    no_ip.memory.no_address_since = Some(NOW - 1000);
    let p = plan(&c, up_status(0, 86_400), vec![no_ip.clone()]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Hold);
    let c = x86_config(json!({}), json!({"billing": "per-second", "addressTimeout": 900}));
    let p = plan(&c, up_status(0, 86_400), vec![no_ip]);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Destroy);
}

#[test]
fn one_bad_check_does_not_cost_a_machine() {
    let c = fixed(json!({}));
    let status = up_status(0, 86_400);
    for state in [MachineState::Unreachable, MachineState::Missing, MachineState::Stopped] {
        // The check just found it so: delisted and left alone.
        let found = in_state(machine(1, LEFT_599), state);
        let p = plan(&c, status.clone(), vec![found.clone()]);
        assert_eq!(
            action(&p, "hydra-provisioned-1"),
            (Action::Drain, Reason::NotRunningSince { machine_state: state, since: NOW, until: NOW + 900 }),
            "{state}"
        );
        assert!(destroys(&p).is_empty() && p.listings.is_empty());
        assert_eq!(p.memory["hydra-provisioned-1"].not_running_since, Some(NOW));
        // Still so after notRunningTimeout: it expires.
        let mut still = found;
        still.memory = p.memory["hydra-provisioned-1"].clone();
        still.memory.not_running_since = Some(NOW - 900);
        still.memory.delisted_at = Some(NOW - 900);
        let p = plan(&c, status.clone(), vec![still.clone()]);
        assert_eq!(destroys(&p), ["hydra-provisioned-1"], "{state}");
        // ... except that an unreachable machine may still be billed, so its
        // paid time still protects it.
        still.launch_time = Some(NOW - 100);
        let p = plan(&c, status.clone(), vec![still]);
        let expected = if state == MachineState::Unreachable { Action::Leave } else { Action::Destroy };
        assert_eq!(action(&p, "hydra-provisioned-1").0, expected, "{state}");
    }
    // Back up: the clock is reset.
    let mut back = machine(1, LEFT_599);
    back.memory.not_running_since = Some(NOW - 100);
    let p = plan(&c, status, vec![back]);
    assert_eq!(p.memory["hydra-provisioned-1"].not_running_since, None);
}

#[test]
fn both_modes_walk_the_union_of_status_and_configured_types() {
    let mut s = up_status(0, 86_400);
    s.machine_types.clear();
    for c in [original(json!({"minMachines": 1})), fixed(json!({"minMachines": 1}))] {
        let p = plan(&c, s.clone(), vec![]);
        assert_eq!(creates(&p).len(), 1, "{:?}: minMachines for a type absent from the status", c.quirks);
        assert_eq!((p.types[0].runnable, p.types[0].allowed), (0, 1));
    }
}

#[test]
fn type_keys_meet_whatever_order_their_features_are_written_in() {
    let c = x86_config(json!({}), json!({"quirks": "original"}));
    let mut c = c;
    let kvm: Config = config(json!({"quirks": "original", "systemTypes": {
        "x86_64-linux:kvm,big-parallel": {"nixopsExpr": "/d", "maxMachines": 2}}}));
    c.system_types = kvm.system_types;
    let mut status = up_status(0, 86_400);
    status.machine_types.clear();
    status.machine_types.insert(
        hydra_provisioner::model::canonical_type_key("x86_64-linux:kvm,big-parallel"),
        TypeStatus { runnable: 15, ..TypeStatus::default() },
    );
    let mut old = machine(1, LEFT_599);
    old.machine_type = "x86_64-linux:kvm,big-parallel".into();
    let p = plan(&c, status.clone(), vec![old.clone()]);
    assert_eq!(p.types.len(), 1, "{:?}", p.types);
    assert_eq!(p.types[0].runnable, 15);
    assert_eq!(action(&p, "hydra-provisioned-1").0, Action::Serve);
    // The original named the type as its config did, in new deployments and
    // in the machines file.
    let created: Vec<&str> = p
        .commands
        .iter()
        .filter_map(|c| if let Command::Create { machine_type, .. } = c { Some(machine_type.as_str()) } else { None })
        .collect();
    assert_eq!(created, ["x86_64-linux:kvm,big-parallel"]);
    assert!(p.machines_file_preview.contains(" kvm,big-parallel kvm,big-parallel "), "{}", p.machines_file_preview);
    // The fixed mode spells it as Hydra does.
    c.quirks = Quirks::Fixed;
    let p = plan(&c, status, vec![old]);
    assert!(
        p.commands.iter().any(
            |c| matches!(c, Command::Create { machine_type, .. } if machine_type == "x86_64-linux:big-parallel,kvm")
        )
    );
    assert!(p.machines_file_preview.contains(" big-parallel,kvm big-parallel,kvm "), "{}", p.machines_file_preview);
}

#[test]
fn status_type_keys_are_read_canonically() {
    let s = hydra_provisioner::status::parse_status(
        r#"{"status": "up", "uptime": 1, "machineTypes": {"x86_64-linux:kvm,big-parallel": {"runnable": 4, "running": 0}}}"#,
        "t",
    )
    .unwrap();
    assert_eq!(s.machine_types["x86_64-linux:big-parallel,kvm"].runnable, 4);
}

#[test]
fn original_reuses_in_nixops_order_up_first() {
    let c = original(json!({"maxMachines": 2}));
    // Inventory order: 7 (stopped), 3 (up), 9 (unreachable), 1 (up), 5 (stopped).
    let fleet = vec![
        in_state(machine(7, 100), MachineState::Stopped),
        machine(3, 100),
        in_state(machine(9, 100), MachineState::Unreachable),
        machine(1, 100),
        in_state(machine(5, 100), MachineState::Stopped),
    ];
    let serving = |p: &Plan| -> Vec<String> {
        p.machines.iter().filter(|m| m.action == Action::Serve).map(|m| m.deployment.to_string()).collect()
    };
    let p = plan(&c, up_status(20, 86_400), fleet.clone());
    assert_eq!(serving(&p), ["hydra-provisioned-3", "hydra-provisioned-1"]);
    let p = plan(&original(json!({"maxMachines": 3})), up_status(30, 86_400), fleet.clone());
    assert_eq!(serving(&p), ["hydra-provisioned-3", "hydra-provisioned-1", "hydra-provisioned-7"]);
    // 1 was recorded UP and its check found it stopped: the original's loop
    // checked it, re-sorted, and reused it first among the non-UP ones.
    let mut fleet = fleet;
    fleet[3].state = MachineState::Stopped;
    fleet[3].recorded_state = Some(MachineState::Up);
    let p = plan(&original(json!({"maxMachines": 2})), up_status(20, 86_400), fleet.clone());
    assert_eq!(serving(&p), ["hydra-provisioned-3", "hydra-provisioned-1"]);
    // When the loop never reaches it, the original decided on the recorded
    // state: UP and paid for, so kept and deployed.
    let p = plan(&original(json!({"maxMachines": 1})), up_status(10, 86_400), fleet);
    assert_eq!(serving(&p), ["hydra-provisioned-3"]);
    assert!(matches!(action(&p, "hydra-provisioned-1"), (Action::Keep, Reason::PaidTimeLeft { .. })));
}

#[test]
fn a_fraction_of_a_second_past_the_billing_hour_buys_a_new_hour() {
    use hydra_provisioner::model::Timestamp;
    let status = with_builder(up_status(0, 86_400), "10.0.0.1", 0, Some(NOW - 7200));
    for c in [original(json!({})), fixed(json!({}))] {
        let obs = Observation {
            status: status.clone(),
            fleet: Fleet { deployments: vec![machine(1, 3600)], ..Fleet::default() },
        };
        let on_the_hour = decide(&c, &obs, NOW);
        assert_ne!(on_the_hour.machines[0].action, Action::Keep);
        let just_after = decide(&c, &obs, "1700000000.5".parse::<Timestamp>().unwrap());
        assert_eq!(just_after.machines[0].reason, Reason::PaidTimeLeft { left: 3600, threshold: 1800 });
        assert_eq!(just_after.now.to_string(), "1700000000.5");
    }
}

#[test]
fn machines_file_is_written_after_deploys_and_before_stops_and_destroys() {
    let c = x86_config(json!({"maxMachines": 2}), json!({"drainBeforeDestroy": false}));
    let mut gone = machine(5, LEFT_599);
    gone.machine_type = X86.into();
    let p = plan(
        &c,
        up_status(15, 86_400),
        vec![machine(1, 100), gone, gone_for_an_hour(machine(6, 0), MachineState::Missing)],
    );
    let pos = |f: &dyn Fn(&Command) -> bool| p.commands.iter().position(f).unwrap();
    let write = pos(&|c| matches!(c, Command::WriteMachinesFile));
    let last_deploy =
        p.commands.iter().rposition(|c| matches!(c, Command::Deploy { .. } | Command::TouchKeepAlive { .. })).unwrap();
    let first_destroy = pos(&|c| matches!(c, Command::Destroy { .. }));
    assert!(last_deploy < write && write < first_destroy, "{:?}", p.commands);
}

// --- the binary ---------------------------------------------------------

/// Runs `plan` on the committed example with `extra` arguments.
fn plan_example(extra: &[&str]) -> std::process::Output {
    let ex = root().join("scenarios/example");
    plan_command(&ex.join("conf.json"), &ex.join("status.json"), &ex.join("fleet.json"), extra).output().unwrap()
}

/// `plan -c CONF -s STATUS -f FLEET` with `extra` arguments, not yet run.
fn plan_command(conf: &Path, status: &Path, fleet: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("hydra-provisioner"));
    cmd.arg("plan").args(extra).arg("-c").arg(conf).arg("-s").arg(status).arg("-f").arg(fleet);
    cmd
}

#[test]
fn plan_command_explains_the_example() {
    let out = plan_example(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "x86_64-linux: 65 runnable, wants 5, allowed 4, reuses 2, creates 1",
        "hydra-provisioned-2 [x86_64-linux:big-parallel,kvm, up]: Drain, not listed: busy with 1 job(s)",
        "hydra-provisioned-3 [aarch64-linux, up]: Keep, listed: paid time left 3200s >= 1800s",
        "hydra-provisioned-4 [x86_64-linux, missing]: Destroy, not listed: not running (state missing)",
        "create hydra-provisioned-6",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let json_out = plan_example(&["--json"]);
    let plan: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    let m = plan["machines"].as_array().unwrap().iter().find(|m| m["deployment"] == "hydra-provisioned-3").unwrap();
    assert_eq!(m["action"], "keep");
    assert_eq!(m["reason"], "paid_time_left");
    assert_eq!(m["left"], 3200);
}

#[test]
fn plan_json_reads_back_into_the_plan_type() {
    // A fleet with a reason of most kinds, including the not-running ones
    // whose `state` once appeared twice in a decision.
    let dir = tempfile::tempdir().unwrap();
    let conf = crate::common::write(
        dir.path(),
        "c.json",
        r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "maxMachines": 2}}}"#,
    );
    let status = crate::common::write(
        dir.path(),
        "s.json",
        r#"{"status": "up", "time": 1700000000, "uptime": 86400,
            "machineTypes": {"x86_64-linux": {"runnable": 5, "running": 0}, "riscv64-linux": {"runnable": 1}},
            "machines": {"root@10.0.0.3": {"currentJobs": 2}}}"#,
    );
    let fleet = crate::common::write(
        dir.path(),
        "f.json",
        r#"{"deployments": [
            {"name": "hydra-provisioned-1", "machine_type": "x86_64-linux", "state": "missing"},
            {"name": "hydra-provisioned-2", "machine_type": "x86_64-linux", "state": "unreachable", "launch_time": 1699990000,
             "memory": {"not_running_since": 1699990000}},
            {"name": "hydra-provisioned-3", "machine_type": "sparc-linux", "state": "up", "public_ip": "10.0.0.3"},
            {"name": "hydra-provisioned-4", "machine_type": "x86_64-linux", "state": "up"}]}"#,
    );
    for quirks in ["fixed", "original"] {
        let conf = if quirks == "original" {
            crate::common::write(
                dir.path(),
                "o.json",
                r#"{"quirks": "original", "systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "maxMachines": 2}}}"#,
            )
        } else {
            conf.clone()
        };
        let out = plan_command(&conf, &status, &fleet, &["--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let plan: Plan = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{quirks}: plan --json does not read back: {e}\n{}", String::from_utf8_lossy(&out.stdout))
        });
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(serde_json::to_value(&plan).unwrap(), printed, "{quirks}: nothing lost on the way back");
        assert!(
            plan.machines
                .iter()
                .any(|m| matches!(m.reason, Reason::NotRunning { .. } | Reason::NotRunningSince { .. }))
        );
    }
}

#[test]
fn plan_accepts_and_honours_a_fractional_now() {
    let dir = tempfile::tempdir().unwrap();
    let conf = crate::common::write(dir.path(), "c.json", r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d"}}}"#);
    let status = crate::common::write(
        dir.path(),
        "s.json",
        r#"{"status": "up", "uptime": 86400, "machineTypes": {"x86_64-linux": {"runnable": 0, "running": 0}},
            "machines": {"root@10.0.0.1": {"currentJobs": 0, "idleSince": 1699990000}}}"#,
    );
    // Launched exactly ten hours before 1700000000.
    let fleet = crate::common::write(
        dir.path(),
        "f.json",
        r#"{"deployments": [{"name": "hydra-provisioned-1", "machine_type": "x86_64-linux", "state": "up",
            "launch_time": 1699964000, "public_ip": "10.0.0.1"}]}"#,
    );
    let run = |now: &str| {
        let out = plan_command(&conf, &status, &fleet, &["--json", "--now", now]).output().unwrap();
        assert!(out.status.success(), "--now {now}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Plan>(&out.stdout).unwrap()
    };
    let on_the_hour = run("1700000000");
    assert_ne!(on_the_hour.machines[0].action, Action::Keep);
    let after = run("1700000000.5");
    assert_eq!(after.now.to_string(), "1700000000.5");
    assert_eq!(after.machines[0].reason, Reason::PaidTimeLeft { left: 3600, threshold: 1800 });
    let out = bin().args(["plan", "--now", "soon", "-c"]).arg(&conf).arg("-s").arg(&status).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`soon` is not a time"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_ends_plan_quietly() {
    use std::io::Read;
    // A fleet whose plan is far larger than a pipe's buffer, so the writes
    // meet the closed pipe whatever the timing.
    let dir = tempfile::tempdir().unwrap();
    let conf = crate::common::write(dir.path(), "c.json", r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d"}}}"#);
    let status = crate::common::write(dir.path(), "s.json", r#"{"status": "up", "time": 1700000000, "uptime": 86400}"#);
    let deployments: Vec<Value> = (0..3000)
        .map(|i| json!({"name": format!("hydra-provisioned-{i}"), "machine_type": X86, "state": "missing"}))
        .collect();
    let fleet = crate::common::write(dir.path(), "f.json", &json!({"deployments": deployments}).to_string());
    for format in [&["--json"][..], &[]] {
        let mut child = plan_command(&conf, &status, &fleet, format)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read a little, as `| head -c 100` would, then go away.
        let mut first = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(141), "{format:?}: {stderr}");
    }
}

#[test]
fn plan_command_rejects_bad_input_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad_conf = crate::common::write(
        dir.path(),
        "c.json",
        r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "runnablesPerMachine": 0}}}"#,
    );
    let status = crate::common::write(dir.path(), "s.json", r#"{"status": "up", "time": 5}"#);
    let out = bin().args(["plan", "-c"]).arg(&bad_conf).arg("-s").arg(&status).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("systemTypes.x86_64-linux.runnablesPerMachine: must be at least 1, got 0"), "{err}");

    let conf =
        crate::common::write(dir.path(), "ok.json", r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d"}}}"#);
    let garbled = crate::common::write(dir.path(), "g.json", r#"{"status": "up", "machines": 7}"#);
    let out = bin().args(["plan", "-c"]).arg(&conf).arg("-s").arg(&garbled).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("g.json") && err.contains("`machines` must be an object"), "{err}");

    let fleet = crate::common::write(
        dir.path(),
        "f.json",
        r#"{"deployments": [{"name": "x", "machine_type": "x86_64-linux", "state": "flying"}]}"#,
    );
    let out = bin()
        .args(["plan", "--now", "5", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(&status)
        .arg("-f")
        .arg(&fleet)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("f.json") && err.contains("flying"), "{err}");
}

// --- real Nix evaluation --------------------------------------------------

#[test]
fn the_original_readme_conf_nix_evaluates_with_original_defaults() {
    if !have_nix() {
        return;
    }
    let path = data("original-readme/conf.nix");
    let (c, warnings) = config::load(&path).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let t = &c.system_types[X86];
    let expected = std::fs::canonicalize(data("original-readme/deployment.nix")).unwrap();
    assert_eq!(t.nixops_expr, expected.display().to_string(), "builtins.toPath gives an absolute path");
    assert_eq!((t.min_machines, t.max_machines, t.runnables_per_machine, t.max_jobs), (0, 1, 10, 1));
    assert_eq!(c.tag, "hydra-provisioned");
    assert_eq!(c.quirks, Quirks::Fixed);
}

#[test]
fn several_types_with_features_evaluate_the_same_as_their_json_twin() {
    if !have_nix() {
        return;
    }
    let ex = root().join("scenarios/example");
    let (from_nix, _) = config::load(&ex.join("conf.nix")).unwrap();
    let (from_json, _) = config::load(&ex.join("conf.json")).unwrap();
    assert_eq!(from_nix, from_json);
    let kvm = &from_nix.system_types["x86_64-linux:big-parallel,kvm"];
    assert_eq!(kvm.machine_type.features.len(), 2);
    assert_eq!(kvm.max_machines, 2);
    assert!(from_nix.system_types["aarch64-linux"].stop_on_idle);
}

#[test]
fn toml_and_json_configs_of_the_same_schema_agree() {
    let ex = root().join("scenarios/example");
    let (from_toml, warnings) = config::load(&ex.join("conf.toml")).unwrap();
    assert!(warnings.iter().all(|w| w.contains("Hydra spells this machine type")), "{warnings:?}");
    let (from_json, _) = config::load(&ex.join("conf.json")).unwrap();
    assert_eq!(from_toml, from_json);
    let dir = tempfile::tempdir().unwrap();
    let bad = crate::common::write(dir.path(), "c.toml", "[systemTypes.x86_64-linux]\nmaxJobs = 0\n");
    let e = config::load(&bad).unwrap_err().to_string();
    assert!(
        e.contains("c.toml")
            && e.contains("maxJobs: must be at least 1, got 0")
            && e.contains("nixopsExpr: is required"),
        "{e}"
    );
}

#[test]
fn nix_evaluation_errors_carry_nix_stderr() {
    if !have_nix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = crate::common::write(dir.path(), "conf.nix", "{ systemTypes.x86_64-linux = { nixopsExpr = ./d.nix; ");
    let status = crate::common::write(dir.path(), "s.json", r#"{"status": "down"}"#);
    let out = bin().args(["plan", "--now", "1", "-c"]).arg(&conf).arg("-s").arg(&status).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nix-instantiate failed") && err.contains("syntax error"), "{err}");
}

#[test]
fn a_missing_evaluator_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let conf = crate::common::write(dir.path(), "conf.nix", "{ }");
    let status = crate::common::write(dir.path(), "s.json", r#"{"status": "down"}"#);
    let out = bin()
        .env("NIX_INSTANTIATE", "/nonexistent/nix-instantiate")
        .args(["plan", "--now", "1", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(&status)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not installed"), "{err}");
}

// --- properties -----------------------------------------------------------

const TYPES: [&str; 3] = ["x86_64-linux", "x86_64-linux:kvm", "aarch64-linux"];

fn arb_config() -> impl Strategy<Value = Config> {
    (
        proptest::collection::vec(
            (0u32..4, 0u32..6, 0u64..30, 1u64..20, 0i64..2000, any::<bool>(), 0u32..4),
            TYPES.len(),
        ),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(types, orig, per_second, drain)| {
            let mut st = serde_json::Map::new();
            for (i, (min, max, ignored, per, grace, stop, creations)) in types.into_iter().enumerate() {
                if i == 2 && max == 0 {
                    continue; // sometimes leave a type unconfigured
                }
                st.insert(
                    TYPES[i].into(),
                    json!({"nixopsExpr": "/d.nix", "minMachines": min, "maxMachines": max, "ignoredRunnables": ignored,
                           "runnablesPerMachine": per, "gracePeriod": grace, "stopOnIdle": stop, "maxCreationsPerPass": creations}),
                );
            }
            config(json!({
                "systemTypes": st,
                "quirks": if orig { "original" } else { "fixed" },
                "billing": if per_second { "per-second" } else { "hourly" },
                "drainBeforeDestroy": drain,
            }))
        })
}

fn arb_state() -> impl Strategy<Value = MachineState> {
    (0i64..8).prop_map(|c| MachineState::from_nixops_code(c).unwrap())
}

/// (type index, state, launched ago, has address, deploy failures, listed,
/// delisted ago, deployed before, idle since ago)
type DeploymentParts = (usize, MachineState, Option<i64>, bool, u32, bool, Option<i64>, bool, Option<i64>);

fn arb_deployment() -> impl Strategy<Value = DeploymentParts> {
    (
        0usize..4,
        arb_state(),
        proptest::option::of(-600i64..20_000),
        any::<bool>(),
        0u32..5,
        any::<bool>(),
        proptest::option::of(0i64..5000),
        any::<bool>(),
        proptest::option::of(0i64..5000),
    )
}

#[derive(Debug, Clone)]
struct World {
    config: Config,
    observation: Observation,
}

fn arb_world() -> impl Strategy<Value = World> {
    (
        arb_config(),
        proptest::collection::vec(arb_deployment(), 0..10),
        proptest::collection::vec((0u64..400, proptest::option::of(0i64..5000)), TYPES.len()),
        proptest::collection::vec((0u64..5, proptest::option::of(0i64..5000), any::<bool>()), 10),
        0u8..10,
        0i64..10_000,
    )
        .prop_map(|(config, deps, type_status, builders, health, uptime)| {
            let mut status = QueueStatus::down("");
            status.health = match health {
                0 => QueueHealth::Down { detail: "down".into() },
                1 => QueueHealth::Unknown { detail: "garbled".into() },
                _ => QueueHealth::Up,
            };
            if status.is_up() {
                status.uptime = uptime;
                for (i, (runnable, last_active)) in type_status.into_iter().enumerate() {
                    status.machine_types.insert(
                        TYPES[i].into(),
                        TypeStatus { runnable, running: 0, last_active: last_active.map(|a| NOW - a) },
                    );
                }
                for (i, (jobs, idle, enabled)) in builders.into_iter().enumerate() {
                    status.machines.insert(
                        format!("10.0.0.{i}"),
                        BuilderStatus { enabled, current_jobs: jobs, idle_since: idle.map(|a| NOW - a) },
                    );
                }
            }
            let deployments = deps
                .into_iter()
                .enumerate()
                .map(|(i, (ty, state, launched_ago, has_ip, failures, listed, delisted_ago, deployed, idle_ago))| {
                    Deployment {
                        name: format!("hydra-provisioned-{}", i * 2).into(),
                        machine_type: if ty == 3 { "sparc-linux".into() } else { TYPES[ty].into() },
                        state,
                        recorded_state: None,
                        launch_time: launched_ago.map(|a| NOW - a),
                        public_ip: has_ip.then(|| format!("10.0.0.{i}")),
                        host_key: None,
                        memory: MachineMemory {
                            deploy_failures: failures,
                            deployed_fingerprint: deployed.then(|| "stale".into()),
                            deployed_at: deployed.then_some(NOW - 100),
                            listed,
                            delisted_at: delisted_ago.map(|a| NOW - a),
                            idle_since: idle_ago.map(|a| NOW - a),
                            not_running_since: idle_ago.map(|a| NOW - 2 * a),
                            no_address_since: delisted_ago.map(|a| NOW - 2 * a),
                        },
                    }
                })
                .collect();
            World {
                config,
                observation: Observation {
                    status,
                    fleet: Fleet { deployments, other_deployment_names: BTreeSet::new() },
                },
            }
        })
}

/// A plan with the order of its per-machine parts made canonical.
fn unordered(mut p: Plan) -> Plan {
    p.machines.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    p.listings.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    p.commands.sort_by_key(|c| format!("{c:?}"));
    p.machines_file_preview = {
        let mut lines: Vec<&str> = p.machines_file_preview.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    };
    p.warnings.sort();
    p
}

fn jobs_of(obs: &Observation, d: &Deployment) -> u64 {
    d.public_ip.as_deref().and_then(|ip| obs.status.machines.get(ip)).map_or(0, |b| b.current_jobs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants_hold(world in arb_world()) {
        let World { config, observation } = &world;
        let p = decide(config, observation, NOW);

        // Every deployment gets exactly one decision.
        for d in &observation.fleet.deployments {
            prop_assert_eq!(p.machines.iter().filter(|m| m.deployment == d.name).count(), 1);
        }

        let mut serving: BTreeMap<String, u64> = BTreeMap::new();
        let mut created: BTreeMap<String, u64> = BTreeMap::new();
        for m in &p.machines {
            match m.action {
                Action::Serve => *serving.entry(config.type_for(&m.machine_type).unwrap().machine_type.to_string()).or_default() += 1,
                Action::Create => *created.entry(m.machine_type.to_string()).or_default() += 1,
                _ => {}
            }
        }
        for (key, tc) in &config.system_types {
            let s = serving.get(key).copied().unwrap_or(0);
            let c = created.get(key).copied().unwrap_or(0);
            // maxMachines bounds the machines chosen to serve demand and the creations.
            prop_assert!(s + c <= u64::from(tc.max_machines), "{} serving {} + creating {} > max {}", key, s, c, tc.max_machines);
            prop_assert!(c <= u64::from(tc.max_creations_per_pass));
        }

        let running = |d: &Deployment| d.state.is_running();
        for d in &observation.fleet.deployments {
            let a = p.decision(&d.name).unwrap().action;
            let gone = matches!(a, Action::Stop | Action::Destroy);
            // A busy machine is never stopped or destroyed (the original's
            // exception: a busy machine NixOps no longer records as running).
            if jobs_of(observation, d) > 0 && (config.quirks == Quirks::Fixed || running(d)) {
                prop_assert!(!gone, "busy {} got {:?}", d.name, a);
            }
            // Paid time above the destroy threshold protects a running machine
            // (in fixed mode, any machine that may still be billed).
            let billing = config.type_for(&d.machine_type).map_or(config.billing, |t| t.billing);
            let billed = running(d)
                || (config.quirks == Quirks::Fixed && !matches!(d.state, MachineState::Missing | MachineState::Stopped));
            if billed && billing.paid_time_left(d.known_launch_time(), NOW) >= config.destroy_paid_threshold {
                prop_assert!(!gone, "{} has paid time and got {:?}", d.name, a);
            }
            // Fixed mode gives a machine that is not running notRunningTimeout.
            let not_running_for = d.memory.not_running_since.map_or(0, |t| NOW - t);
            if config.quirks == Quirks::Fixed && !running(d) && not_running_for < config.not_running_timeout {
                prop_assert!(!gone, "{} not running only {}s and got {:?}", d.name, not_running_for, a);
            }
            // Without a usable status, nothing goes away.
            if matches!(observation.status.health, QueueHealth::Unknown { .. })
                || (config.quirks == Quirks::Fixed && !observation.status.is_up())
            {
                prop_assert!(!gone);
            }
        }

        // Listed only if kept and deployed (now, or current from before).
        for l in &p.listings {
            let m = p.decision(&l.deployment).unwrap();
            prop_assert!(matches!(m.action, Action::Serve | Action::Create | Action::Keep | Action::Hold), "{:?}", m);
            let deployed_now = p.commands.iter().any(|c| matches!(c, Command::Deploy { deployment, .. } if *deployment == l.deployment));
            let was_current = observation.fleet.deployments.iter().any(|d| d.name == l.deployment
                && (d.memory.deployed_fingerprint.is_some() || (m.action == Action::Hold && d.memory.listed)));
            prop_assert!(deployed_now || was_current, "{} listed without deploy", l.deployment);
            prop_assert_eq!(l.needs_deploy, deployed_now);
        }

        // The machines file is written before anything is stopped or destroyed.
        if let Some(first_gone) = p.commands.iter().position(|c| matches!(c, Command::Stop { .. } | Command::Destroy { .. })) {
            let write = p.commands.iter().position(|c| matches!(c, Command::WriteMachinesFile));
            prop_assert!(write.is_some_and(|w| w < first_gone));
        }

        // Deterministic. The inventory's order matters only within a type
        // (which candidates are reused first, as in the original): regrouping
        // the deployments by type changes nothing but the order of the output.
        prop_assert_eq!(&decide(config, observation, NOW), &p);
        let mut regrouped = observation.clone();
        regrouped.fleet.deployments.sort_by(|a, b| a.machine_type.cmp(&b.machine_type));
        prop_assert_eq!(unordered(decide(config, &regrouped, NOW)), unordered(p));
    }

    #[test]
    fn more_runnables_never_want_fewer_machines(world in arb_world(), extra in 0u64..500) {
        let World { config, observation } = world;
        let before = decide(&config, &observation, NOW);
        let mut more = observation.clone();
        for t in more.status.machine_types.values_mut() {
            t.runnable += extra;
        }
        let after = decide(&config, &more, NOW);
        for (a, b) in before.types.iter().zip(after.types.iter()) {
            prop_assert_eq!(&a.machine_type, &b.machine_type);
            prop_assert!(b.wanted >= a.wanted && b.allowed >= a.allowed);
        }
    }
}
