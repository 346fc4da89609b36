//! Simulation tests: `hydra-provisioner simulate` and the `sim` library.

use crate::common::{bin, root, write};
use hydra_provisioner::metrics::{Summary, round3};
use hydra_provisioner::sim::hydra::{Hydra, HydraEvent, MachineSpec};
use hydra_provisioner::sim::{self, Observer, Scenario, SimTime, StepLine};
use hydra_provisioner::trace::{StepSource, TraceReader};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One step line as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) id: u64,
    pub(crate) kind: String,
    pub(crate) runnable: Option<i64>,
    pub(crate) started: Option<i64>,
    pub(crate) finished: Option<i64>,
    pub(crate) machine: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) end: String,
}

#[derive(Default)]
pub(crate) struct Collect {
    pub(crate) lines: Vec<Line>,
    pub(crate) lifecycle: Vec<(i64, String, String)>,
}

impl Observer for Collect {
    fn step(&mut self, l: &StepLine<'_>) {
        self.lines.push(Line {
            id: l.step_id,
            kind: l.machine_type.to_string(),
            runnable: l.runnable_at.map(|t| t.0),
            started: l.started_at.map(|t| t.0),
            finished: l.finished_at.map(|t| t.0),
            machine: l.machine.map(String::from),
            attempts: l.attempts,
            end: l.end.to_string(),
        });
    }
    fn lifecycle(&mut self, at: SimTime, machine: &str, _machine_type: &str, event: &str) {
        self.lifecycle.push((at.0, machine.to_string(), event.to_string()));
    }
}

/// Runs a scenario given as text over a trace given as text.
pub(crate) fn simulate(scenario: &str, trace: &str) -> (Summary, Collect) {
    let scenario = Scenario::parse(scenario, "test.toml", Path::new(".")).expect("scenario parses");
    let mut source = TraceReader::new(trace.as_bytes(), "test.csv");
    let mut collect = Collect::default();
    let summary = sim::run(&scenario, &mut source, &mut collect).expect("simulation runs");
    (summary, collect)
}

const ONE_MACHINE: &str = r#"
trace = "unused.csv"
horizon = HORIZON
[provisioner]
billing = "BILLING"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 1
runnablesPerMachine = 1
maxJobs = 1
[cloud."x86_64-linux"]
on_demand_price = 3.6
boot_median = 60
boot_spread = 0
deploy = 120
"#;

fn one_machine(billing: &str, horizon: u32) -> String {
    ONE_MACHINE.replace("BILLING", billing).replace("HORIZON", &horizon.to_string())
}

const TWO_STEPS: &str = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,100\n2,0,x86_64-linux,100\n";

#[test]
fn one_machine_two_steps_exact_waits_and_cost() {
    // Pass at 0 sees nothing (trace rows come after events of the same
    // millisecond); the pass at 300 creates the machine: boot 60 s, deploy
    // 120 s, pass ends at 480, Hydra reads the file at 510. Step 1 runs
    // 510-610, step 2 610-710. The horizon at 720 ends the run.
    for (billing, billed_s) in [("per-second", 420.0), ("hourly", 3600.0)] {
        let (summary, c) = simulate(&one_machine(billing, 720), TWO_STEPS);
        let starts: Vec<_> = c.lines.iter().map(|l| (l.id, l.started, l.finished)).collect();
        assert_eq!(starts, vec![(1, Some(510_000), Some(610_000)), (2, Some(610_000), Some(710_000))], "{billing}");
        assert_eq!(summary.latency.overall.mean, 560.0);
        assert_eq!(summary.latency.overall.max, 610.0);
        assert_eq!(summary.latency.waited_for_boot_fraction, 1.0);
        assert_eq!(summary.cost.dollars, round3(billed_s / 3600.0 * 3.6), "{billing}");
        assert_eq!(summary.stability.creates, 1);
        assert_eq!(summary.machines_alive_at_end, 1);
    }
}

#[test]
fn hourly_billing_charges_a_full_hour_for_five_minutes() {
    // Created at 300 s, still up at the 600 s horizon: five minutes of running.
    let (hourly, _) = simulate(&one_machine("hourly", 600), TWO_STEPS);
    assert_eq!(hourly.cost.billed_machine_hours, 1.0);
    assert_eq!(hourly.cost.dollars, 3.6);
    let (per_second, _) = simulate(&one_machine("per-second", 600), TWO_STEPS);
    assert_eq!(per_second.cost.billed_machine_hours, round3(300.0 / 3600.0));
    assert_eq!(per_second.cost.dollars, 0.3);
}

#[test]
fn a_step_aborted_by_a_vanished_machine_is_retried_after_60_seconds() {
    let mut hydra = Hydra::new(BTreeMap::new());
    let spec = |jobs| MachineSpec {
        systems: vec!["x86_64-linux".into()],
        max_jobs: jobs,
        speed_factor: 1.0,
        supported: BTreeSet::new(),
        mandatory: BTreeSet::new(),
    };
    // The provisioner may create machines of this kind.
    hydra.add_class(spec(1), true);
    let doomed = hydra.add_machine("10.0.0.1".into(), spec(1), SimTime(0), true);
    let mut listed = BTreeMap::new();
    listed.insert("10.0.0.1".to_string(), spec(1));
    hydra.apply_machines_file(|_, host| listed.get(host));
    hydra.set_alive(doomed, true, SimTime(0));
    let mut trace = TraceReader::new("step_id,submitted_at,system,duration\n1,0,x86_64-linux,1000\n".as_bytes(), "t");
    let row = trace.next_step().unwrap().unwrap();
    hydra.arrive(&row, trace.symbols(), SimTime(0)).unwrap();
    hydra.dispatch(SimTime(0));
    assert_eq!(hydra.machines[doomed as usize].current_jobs, 1);
    hydra.scheduled.clear();
    hydra.remove_machine(doomed, SimTime(100_000));
    assert_eq!(hydra.counters.aborted, 1);
    let retry: Vec<_> = hydra.scheduled.drain(..).collect();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].0, SimTime(160_000), "back-off of 60 s after the first attempt");
    assert!(matches!(retry[0].1, HydraEvent::RetryDue { attempt: 1, .. }));
    // In back-off the step still counts as runnable for its type.
    assert_eq!(hydra.status_json(0, SimTime(0), 0, false)["machineTypes"]["x86_64-linux"]["runnable"], 1);
    let spare = hydra.add_machine("static".into(), spec(1), SimTime(0), false);
    hydra.handle(retry[0].1, SimTime(160_000));
    hydra.dispatch(SimTime(160_000));
    assert_eq!(hydra.machines[spare as usize].current_jobs, 1);
    assert_eq!((hydra.counters.retries, hydra.counters.attempts_started), (1, 2));
}

#[test]
fn spot_interruptions_abort_and_retry_without_losing_steps() {
    let scenario = r#"
trace = "unused.csv"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 2
runnablesPerMachine = 1
maxJobs = 2
[cloud."x86_64-linux"]
market = "spot"
spot_price = 0.1
spot_interruptions_per_hour = 3
"#;
    let mut trace = String::from("step_id,submitted_at,system,duration\n");
    for i in 1..=20 {
        trace.push_str(&format!("{i},{},x86_64-linux,1800\n", i * 10));
    }
    let (summary, c) = simulate(scenario, &trace);
    assert!(summary.stability.spot_interruptions > 0, "{:?}", summary.stability);
    assert!(summary.stability.aborted_steps > 0);
    assert_eq!(summary.steps.succeeded + summary.steps.gave_up, 20);
    assert_eq!(c.lines.len(), 20);
    assert!(c.lifecycle.iter().any(|(_, _, e)| e == "spot interrupted"));
}

#[test]
fn shares_divide_a_contended_slot_about_one_to_three() {
    let scenario = r#"
trace = "unused.csv"
horizon = 24000
provisioner = { systemTypes = {} }
[[static_machines]]
name = "only-builder"
systems = ["x86_64-linux"]
[shares]
"p:small" = 100
"p:large" = 300
"#;
    let mut trace = String::from("step_id,submitted_at,system,duration,jobset\n");
    let mut jobset_of = BTreeMap::new();
    for i in 1..=800u64 {
        let jobset = if i <= 400 { "p:small" } else { "p:large" };
        jobset_of.insert(i, jobset);
        trace.push_str(&format!("{i},0,x86_64-linux,60,{jobset}\n"));
    }
    let (_, c) = simulate(scenario, &trace);
    let mut time: BTreeMap<&str, i64> = BTreeMap::new();
    for l in c.lines.iter().filter(|l| l.finished.is_some()) {
        *time.entry(jobset_of[&l.id]).or_default() += l.finished.unwrap() - l.started.unwrap();
    }
    let ratio = time["p:large"] as f64 / time["p:small"] as f64;
    assert!((2.8..=3.2).contains(&ratio), "build time {time:?}, ratio {ratio}");
}

#[test]
fn mandatory_features_keep_a_benchmark_machine_away_from_plain_steps() {
    let scenario = r#"
trace = "unused.csv"
[provisioner.systemTypes."x86_64-linux:benchmark"]
maxMachines = 1
runnablesPerMachine = 1
[cloud."x86_64-linux:benchmark"]
[[static_machines]]
name = "plain"
systems = ["x86_64-linux"]
"#;
    let mut trace = String::from("step_id,submitted_at,system,duration,features\n");
    for i in 1..=20 {
        let features = if i % 2 == 0 { "benchmark" } else { "" };
        trace.push_str(&format!("{i},{},x86_64-linux,120,{features}\n", i * 30));
    }
    let (summary, c) = simulate(scenario, &trace);
    assert_eq!(summary.steps.succeeded, 20);
    for l in &c.lines {
        let on_static = l.machine.as_deref() == Some("plain");
        assert_eq!(on_static, l.kind == "x86_64-linux", "{l:?}");
    }
    // Without the static machine, plain steps can never start, and say so.
    let no_static = scenario.split("[[static_machines]]").next().unwrap();
    let (summary, _) = simulate(no_static, &trace);
    assert_eq!(summary.steps.never_started.get("no machine type can serve it"), Some(&10));
    assert_eq!(summary.steps.succeeded, 10);
}

/// Checks that nothing was lost or counted twice.
pub(crate) fn assert_conserved(summary: &Summary, lines: &[Line], step_ids: &BTreeSet<u64>) {
    let seen: Vec<u64> = lines.iter().map(|l| l.id).collect();
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), unique.len(), "a step was reported twice");
    assert_eq!(&unique, step_ids, "every step is reported");
    for l in lines {
        assert_eq!(l.started.is_some(), l.attempts > 0, "{l:?}");
        if let (Some(r), Some(s)) = (l.runnable, l.started) {
            assert!(s >= r, "waited < 0: {l:?}");
        }
        if let (Some(s), Some(f)) = (l.started, l.finished) {
            assert!(f >= s, "{l:?}");
        }
        assert!(l.attempts <= 5);
    }
    let s = &summary.steps;
    let never: u64 = s.never_started.values().sum();
    assert_eq!(s.total, step_ids.len() as u64);
    assert_eq!(s.succeeded + s.failed + s.gave_up + never + s.running_at_end + s.retrying_at_end, s.total);
    assert_eq!(s.attempts, s.attempts_finished + summary.stability.aborted_steps + s.running_at_end, "attempts");
    assert_eq!(s.started, lines.iter().filter(|l| l.started.is_some()).count() as u64);
    let total_attempts: u64 = lines.iter().map(|l| u64::from(l.attempts)).sum();
    assert_eq!(total_attempts, s.attempts);
    assert_eq!(summary.latency.overall.count, s.started);
}

#[test]
fn quick_start_conserves_steps_and_bills_at_least_the_busy_time() {
    let scenario_path = root().join("scenarios/quick-start.toml");
    let scenario = Scenario::load(&scenario_path).unwrap();
    let text = std::fs::read_to_string(&scenario.trace).unwrap();
    let mut ids = BTreeSet::new();
    for line in text.lines().skip(1) {
        ids.insert(line.split(',').next().unwrap().parse::<u64>().unwrap());
    }
    let (summary, c) = simulate(&std::fs::read_to_string(&scenario_path).unwrap(), &text);
    assert_conserved(&summary, &c.lines, &ids);
    let max_jobs = 4.0;
    assert!(summary.cost.billed_machine_hours >= summary.cost.busy_job_hours / max_jobs);
    assert!(summary.cost.billed_machine_hours >= summary.cost.busy_machine_hours);
    assert!(summary.stability.creates > 0 && summary.stability.destroys > 0);
    // Scale-in drains first: no running step is ever aborted by a destroy.
    assert_eq!(summary.stability.aborted_steps, 0);
}

pub(crate) fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = root().join("scenarios/quick-start.toml");
    let mut stdouts = vec![];
    for (name, seed) in [("a", "7"), ("b", "7"), ("c", "8")] {
        let out = bin()
            .args(["simulate", scenario.to_str().unwrap(), "--record-passes", "--seed", seed, "--out"])
            .arg(tmp.path().join(name))
            .assert()
            .success();
        stdouts.push(out.get_output().stdout.clone());
    }
    let a = read_dir_sorted(&tmp.path().join("a"));
    let b = read_dir_sorted(&tmp.path().join("b"));
    let c = read_dir_sorted(&tmp.path().join("c"));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    for f in ["summary.json", "steps.csv", "series.csv", "machines.csv", "conf.json"] {
        assert!(names.contains(&f), "{f} missing from {names:?}");
    }
    assert_eq!(a, b, "same seed, same files");
    assert_eq!(stdouts[0], stdouts[1]);
    assert_ne!(a, c, "another seed changes the run");
    let file = |set: &[(String, Vec<u8>)], n: &str| set.iter().find(|(f, _)| f == n).unwrap().1.clone();
    assert_ne!(file(&a, "machines.csv"), file(&c, "machines.csv"));
}

#[test]
fn embedded_quick_start_runs_without_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin().current_dir(tmp.path()).arg("simulate").assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("quick-start (embedded)"), "{stdout}");
    assert!(stdout.contains("wait (s)"), "{stdout}");
}

#[test]
fn a_recorded_pass_replays_through_plan_to_the_same_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    bin()
        .args(["simulate", root().join("scenarios/quick-start.toml").to_str().unwrap(), "--record-passes", "--out"])
        .arg(&out)
        .assert()
        .success();
    let mut checked = 0;
    for (name, bytes) in read_dir_sorted(&out.join("passes")) {
        let pass: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let plan = &pass["plan"];
        let interesting = plan["machines"].as_array().is_some_and(|m| !m.is_empty());
        if !interesting || checked >= 5 {
            continue;
        }
        let status = write(tmp.path(), "status.json", &pass["status"].to_string());
        let fleet = write(tmp.path(), "fleet.json", &pass["fleet"].to_string());
        let replay = bin()
            .args(["plan", "--json", "-c"])
            .arg(out.join("conf.json"))
            .arg("-s")
            .arg(&status)
            .arg("-f")
            .arg(&fleet)
            .args(["--now", &pass["now"].to_string()])
            .assert()
            .success();
        let replayed: serde_json::Value = serde_json::from_slice(&replay.get_output().stdout).unwrap();
        assert_eq!(&replayed, plan, "pass {name}");
        checked += 1;
    }
    assert_eq!(checked, 5, "enough passes with machines to compare");
}

#[test]
fn bad_trace_rows_name_file_line_and_column_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "bad.csv", "step_id,submitted_at,system,duration\n1,0,x86_64-linux,10\n2,1,x86_64-linux,ten\n");
    let scenario = write(tmp.path(), "s.toml", &one_machine("hourly", 1000).replace("unused.csv", "bad.csv"));
    let out = bin().arg("simulate").arg(&scenario).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("bad.csv:3:4: column `duration`"), "{stderr}");
    let out = bin().args(["trace", "check"]).arg(tmp.path().join("bad.csv")).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("bad.csv:3:4"), "{stderr}");
}

#[test]
fn bad_scenarios_name_the_key_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "t.csv", TWO_STEPS);
    for (bad, expect) in [
        (one_machine("hourly", 100).replace("horizon", "horizn"), "horizn"),
        (one_machine("hourly", 100).replace("boot_median", "boot_medain"), "boot_medain"),
        // An inline configuration's typo stops the run (a file's only warns), and says what was meant.
        (one_machine("hourly", 100).replace("maxJobs", "maxjobs"), "maxjobs: unknown key (did you mean `maxJobs`?)\n"),
        (one_machine("hourly", 100).replace("\"hourly\"", "\"monthly\""), "billing"),
        (one_machine("hourly", 100).replace("unused.csv", "missing.csv"), "missing.csv"),
    ] {
        let scenario = write(tmp.path(), "s.toml", &bad.replace("unused.csv", "t.csv"));
        let out = bin().arg("simulate").arg(&scenario).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(stderr.contains(expect), "{expect}: {stderr}");
        assert!(stderr.contains("s.toml") || expect == "missing.csv", "{stderr}");
    }
}

#[test]
fn synthetic_traces_are_reproducible_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["a.csv", "b.csv"] {
        bin()
            .args(["trace", "synth", "--seed", "3", "--hours", "2", "--set", "evaluations-per-day=12", "-o"])
            .arg(tmp.path().join(name))
            .assert()
            .success();
    }
    let a = std::fs::read(tmp.path().join("a.csv")).unwrap();
    assert_eq!(a, std::fs::read(tmp.path().join("b.csv")).unwrap());
    assert!(a.starts_with(b"step_id,submitted_at,system,features,jobset"));
    bin().args(["trace", "synth", "--set", "no-such-knob=1"]).assert().code(2);
}

/// Traces of up to 40 steps of four kinds (one no machine serves), with
/// dependencies and every outcome.
pub(crate) fn arbitrary_trace() -> impl Strategy<Value = String> {
    let row = (0u32..4000, 1u32..900, 0usize..4, 0usize..3, any::<bool>(), 0u8..20);
    proptest::collection::vec(row, 1..40).prop_map(|mut rows| {
        rows.sort_by_key(|r| r.0);
        let mut text = String::from("step_id,submitted_at,system,features,jobset,duration,depends_on,outcome\n");
        for (i, (at, dur, kind, jobset, dep, outcome)) in rows.into_iter().enumerate() {
            let id = i + 1;
            let (system, features) =
                [("x86_64-linux", ""), ("aarch64-linux", ""), ("x86_64-linux", "kvm"), ("riscv64-linux", "")][kind];
            let depends = if dep && id > 1 { format!("{}", 1 + (at as usize % (id - 1))) } else { String::new() };
            let outcome = match outcome {
                0 => "failure",
                1 => "transient",
                _ => "success",
            };
            text.push_str(&format!("{id},{at},{system},{features},j:{jobset},{dur},{depends},{outcome}\n"));
        }
        text
    })
}

/// Two provisioned types (spot machines interrupted, deploys failing) and a
/// static builder; `HORIZON` takes a `horizon = N` line or nothing.
pub(crate) const MIXED_FLEET: &str = r#"
trace = "unused.csv"
HORIZON
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 2
runnablesPerMachine = 2
maxJobs = 2
[provisioner.systemTypes."x86_64-linux:kvm"]
maxMachines = 1
stopOnIdle = true
[cloud."x86_64-linux"]
market = "spot"
spot_price = 0.1
spot_interruptions_per_hour = 4
[cloud."x86_64-linux:kvm"]
deploy_failure_rate = 0.3
[[static_machines]]
name = "arm"
systems = ["aarch64-linux"]
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_traces_lose_no_step(trace in arbitrary_trace(), horizon in proptest::option::of(600u32..20000)) {
        let horizon = horizon.map_or(String::new(), |h| format!("horizon = {h}\n"));
        let scenario = MIXED_FLEET.replace("HORIZON", &horizon);
        let ids: BTreeSet<u64> = (1..trace.lines().count() as u64).collect();
        let (summary, c) = simulate(&scenario, &trace);
        assert_conserved(&summary, &c.lines, &ids);
        let riscv = trace.lines().filter(|l| l.contains("riscv64")).count() as u64;
        let never: u64 = summary.steps.never_started.get("no machine type can serve it").copied().unwrap_or(0);
        prop_assert!(never <= riscv);
        prop_assert!(c.lines.iter().filter(|l| l.kind == "riscv64-linux").all(|l| l.started.is_none()));
    }
}

#[test]
fn stopped_machines_pay_storage_and_start_again() {
    let scenario = r#"
trace = "unused.csv"
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 1
runnablesPerMachine = 1
stopOnIdle = true
[cloud."x86_64-linux"]
on_demand_price = 1.0
storage_price = 0.5
"#;
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,60\n2,20000,x86_64-linux,60\n";
    let (summary, c) = simulate(scenario, trace);
    assert_eq!(summary.steps.succeeded, 2);
    assert_eq!((summary.stability.creates, summary.stability.starts), (1, 1), "{:?}", summary.stability);
    assert!(summary.stability.stops >= 1);
    assert!(summary.cost.storage_dollars > 0.0);
    let events: Vec<&str> = c.lifecycle.iter().map(|(_, _, e)| e.as_str()).collect();
    let stop = events.iter().position(|e| *e == "stop").unwrap();
    let start = events.iter().position(|e| *e == "start").unwrap();
    assert!(stop < start, "{events:?}");
    // The second step ran on the restarted machine, which it waited for.
    assert_eq!(c.lines[1].machine, c.lines[0].machine);
    assert_eq!(summary.latency.waited_for_boot_fraction, 1.0);
}

#[derive(Default)]
struct Statuses(Vec<serde_json::Value>);

impl Observer for Statuses {
    fn pass(
        &mut self,
        _index: u64,
        status: &serde_json::Value,
        _observation: &hydra_provisioner::model::Observation,
        _plan: &hydra_provisioner::engine::Plan,
    ) {
        self.0.push(status.clone());
    }
}

#[test]
fn the_era_decides_whether_the_status_has_last_active() {
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,100\n2,0,x86_64-linux,100\n";
    for (era, expect) in [("with-last-active", true), ("without-last-active", false)] {
        let text = format!("era = \"{era}\"\n{}", one_machine("per-second", 3000));
        let scenario = Scenario::parse(&text, "era.toml", Path::new(".")).unwrap();
        let mut statuses = Statuses::default();
        sim::run(&scenario, &mut TraceReader::new(trace.as_bytes(), "t.csv"), &mut statuses).unwrap();
        let last = statuses.0.last().unwrap();
        let t = &last["machineTypes"]["x86_64-linux"];
        assert_eq!(t["running"], 0);
        assert_eq!(t.get("lastActive").is_some(), expect, "{era}: {t}");
        if expect {
            // Unix seconds: the trace's zero is the default epoch.
            assert_eq!(t["lastActive"], 1_500_000_000 + 710);
        }
        // Machines are keyed by store URI and idle since a Unix time.
        let mut idle_machines_seen = 0;
        for status in &statuses.0 {
            for (key, m) in status["machines"].as_object().unwrap() {
                assert!(key.starts_with("ssh://root@10."), "{key}");
                if let Some(idle) = m.get("idleSince") {
                    assert!(idle.as_i64().unwrap() >= 1_500_000_000, "{m}");
                    idle_machines_seen += 1;
                }
            }
        }
        assert!(idle_machines_seen > 0);
    }
}

#[test]
fn deploys_run_at_most_deploy_concurrency_at_a_time() {
    // Three creations in one pass at 300 s, each launched by its deploy:
    // boot 60 s, deploy 120 s. One deploy at a time: done at 480, 660, 840.
    let lifecycle = |concurrency: u32, quirks: &str| {
        let scenario = format!(
            r#"
trace = "unused.csv"
horizon = 1000
[provisioner]
billing = "per-second"
deployConcurrency = {concurrency}
quirks = "{quirks}"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 3
runnablesPerMachine = 1
maxCreationsPerPass = 3
[cloud."x86_64-linux"]
boot_spread = 0
deploy = 120
"#
        );
        let trace =
            "step_id,submitted_at,system,duration\n1,0,x86_64-linux,900\n2,0,x86_64-linux,900\n3,0,x86_64-linux,900\n";
        let (summary, c) = simulate(&scenario, trace);
        let deployed: Vec<i64> = c.lifecycle.iter().filter(|(_, _, e)| e == "deployed").map(|(t, _, _)| *t).collect();
        (deployed, summary.cost.billed_machine_hours)
    };
    let (sequential, billed_sequential) = lifecycle(1, "fixed");
    assert_eq!(sequential, vec![480_000, 660_000, 840_000]);
    assert_eq!(lifecycle(3, "fixed").0, vec![480_000, 480_000, 480_000]);
    assert_eq!(lifecycle(3, "original").0, sequential, "the original deployed one machine after another");
    // Instances are launched by their deploy, so later ones are billed from
    // later: 700 + 520 + 340 s instead of 3 x 700 s until the horizon.
    assert_eq!(billed_sequential, round3(1560.0 / 3600.0));
    assert_eq!(lifecycle(3, "fixed").1, round3(2100.0 / 3600.0));
}

/// One static builder with one slot, no provisioned types: dispatch order is
/// all that decides when a step starts.
const ONE_STATIC_SLOT: &str = r#"
trace = "unused.csv"
provisioner = { systemTypes = {} }
[[static_machines]]
name = "only-builder"
systems = ["x86_64-linux"]
"#;

fn started_at(c: &Collect, id: u64) -> i64 {
    c.lines.iter().find(|l| l.id == id).and_then(|l| l.started).unwrap_or_else(|| panic!("step {id} never started"))
}

#[test]
fn a_step_that_gained_a_dependent_while_queued_outranks_an_equal_one() {
    // Step 1 holds the only slot from 0 to 100 s. Steps 2 and 3 queue at 1 s,
    // equal but for the build id, so 2 would go first. At 2 s step 4
    // arrives depending on step 3: Hydra counts `rdeps` when it dispatches, at
    // 100 s, so 3 now outranks 2 (100-110 s) and 2 follows (110-130 s).
    let trace = "step_id,submitted_at,system,duration,build_id,depends_on\n\
                 1,0,x86_64-linux,100,1,\n\
                 2,1,x86_64-linux,20,2,\n\
                 3,1,x86_64-linux,10,3,\n\
                 4,2,x86_64-linux,5,4,3\n";
    let (summary, c) = simulate(ONE_STATIC_SLOT, trace);
    assert_eq!(summary.steps.succeeded, 4);
    assert_eq!(started_at(&c, 3), 100_000);
    assert_eq!(started_at(&c, 2), 110_000);
    // Step 4 became runnable when 3 finished, and queued behind 2.
    assert_eq!(started_at(&c, 4), 130_000);
    // Without the dependent, the lower build id goes first.
    let (_, c) = simulate(ONE_STATIC_SLOT, &trace.replace("4,2,x86_64-linux,5,4,3\n", ""));
    assert_eq!((started_at(&c, 2), started_at(&c, 3)), (100_000, 120_000));
}

#[test]
fn share_charges_leave_the_window_24_hours_after_the_attempt_started() {
    // Step 1 (p:a) runs 0-7200 s, step 2 (p:b) 7200-10800 s, step 3 (p:c)
    // 86000-86500 s while steps 4 (p:b) and 5 (p:a) queue at 86100 s. When
    // the slot frees at 86500 s, p:a's 7200 s were charged at its start, 0 s,
    // and left the window at 86400 s; p:b's 3600 s, charged at 7200 s, are
    // still in it. So p:a, now below its share, goes first. (Keyed by the
    // minute the attempt finished, p:a's charge would last until 93600 s and
    // p:b would go first.)
    let trace = "step_id,submitted_at,system,duration,jobset\n\
                 1,0,x86_64-linux,7200,p:a\n\
                 2,0,x86_64-linux,3600,p:b\n\
                 3,86000,x86_64-linux,500,p:c\n\
                 4,86100,x86_64-linux,60,p:b\n\
                 5,86100,x86_64-linux,60,p:a\n";
    let (_, c) = simulate(ONE_STATIC_SLOT, trace);
    assert_eq!((started_at(&c, 1), started_at(&c, 2), started_at(&c, 3)), (0, 7_200_000, 86_000_000));
    assert_eq!(started_at(&c, 5), 86_500_000);
    assert_eq!(started_at(&c, 4), 86_560_000);
}

#[test]
fn share_charges_expire_to_the_millisecond() {
    // As above with a start at 0.250 s: p:a's charge leaves the window at
    // 86400.250 s, so a slot freed at 86400.249 s still goes to p:b and one
    // freed at 86400.250 s goes to p:a.
    for (blocker_ends, first) in [("86400.249", 4), ("86400.250", 5)] {
        let duration = format!("{:.3}", blocker_ends.parse::<f64>().unwrap() - 86000.0);
        let trace = format!(
            "step_id,submitted_at,system,duration,jobset\n\
             0,0,x86_64-linux,0.250,p:c\n\
             1,0.250,x86_64-linux,7200,p:a\n\
             2,0.250,x86_64-linux,3600,p:b\n\
             3,86000,x86_64-linux,{duration},p:c\n\
             4,86100,x86_64-linux,60,p:b\n\
             5,86100,x86_64-linux,60,p:a\n"
        );
        let (_, c) = simulate(ONE_STATIC_SLOT, &trace);
        assert_eq!(started_at(&c, 1), 250, "{trace}");
        let freed = (blocker_ends.parse::<f64>().unwrap() * 1000.0).round() as i64;
        assert_eq!(started_at(&c, first), freed, "slot freed at {blocker_ends}");
    }
}

#[test]
fn the_original_never_stops_a_machine_and_keeps_paying_for_it() {
    // As `stopped_machines_pay_storage_and_start_again`, under the original's
    // rules: every pass from 600 s asks NixOps to stop the idle machine, and
    // NixOps asks for a confirmation nobody gives. The machine keeps running
    // (billed per second from its launch at 300 s to the end), and step 2 is
    // served by the same machine without a start.
    let scenario = r#"
trace = "unused.csv"
horizon = 21000
[provisioner]
quirks = "original"
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 1
runnablesPerMachine = 1
stopOnIdle = true
[cloud."x86_64-linux"]
on_demand_price = 3.6
storage_price = 0.5
boot_spread = 0
"#;
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,60\n2,20000,x86_64-linux,60\n";
    let (summary, c) = simulate(scenario, trace);
    assert_eq!(summary.quirks, hydra_provisioner::config::Quirks::Original);
    assert_eq!(summary.steps.succeeded, 2);
    let st = &summary.stability;
    assert_eq!((st.creates, st.starts, st.stops, st.destroys, st.failed_deploys), (1, 0, 0, 0, 0), "{st:?}");
    assert!(st.stops_refused >= 60, "a refused stop every pass while idle: {st:?}");
    assert_eq!(summary.cost.billed_machine_hours, round3((21000.0 - 300.0) / 3600.0));
    assert_eq!(summary.cost.storage_dollars, 0.0);
    assert_eq!(summary.machines_alive_at_end, 1);
    assert_eq!(c.lines[1].machine, c.lines[0].machine);
    let events: Vec<&str> = c.lifecycle.iter().map(|(_, _, e)| e.as_str()).collect();
    assert!(events.contains(&"stop refused (no confirmation)"), "{events:?}");
    assert!(!events.contains(&"stop") && !events.contains(&"deploy failed"), "{events:?}");
    let table = summary.to_table();
    assert!(table.contains("quirks           original"), "{table}");
    assert!(table.contains("deploys          "), "{table}");
    assert!(table.contains("stops refused"), "{table}");
}

/// A step of the trace, as a row read from CSV text.
fn rows(text: &str) -> (Vec<hydra_provisioner::trace::StepRow>, hydra_provisioner::trace::Symbols) {
    let mut reader = TraceReader::new(text.as_bytes(), "t.csv");
    let mut out = vec![];
    while let Some(row) = reader.next_step() {
        out.push(row.unwrap());
    }
    (out, reader.symbols().clone())
}

/// Runs Hydra alone until nothing is left to do: handles its events in time
/// order and dispatches after each.
fn drain(hydra: &mut Hydra) {
    let mut pending: std::collections::BinaryHeap<std::cmp::Reverse<(SimTime, u64, HydraEvent)>> = Default::default();
    let mut seq = 0;
    loop {
        for (at, e) in hydra.scheduled.drain(..) {
            seq += 1;
            pending.push(std::cmp::Reverse((at, seq, e)));
        }
        let Some(std::cmp::Reverse((at, _, e))) = pending.pop() else { break };
        hydra.handle(e, at);
        hydra.dispatch(at);
    }
}

/// A static builder with one slot, as its machines-file line.
fn one_slot_builder() -> MachineSpec {
    MachineSpec::parse_machines_line("s x86_64-linux - 1 1 - - -").unwrap().1
}

/// Every step of the CSV text arrives at time 0; Hydra then runs them all.
fn arrive_all_and_run(hydra: &mut Hydra, text: &str) {
    let (rows, symbols) = rows(text);
    for row in &rows {
        hydra.arrive(row, &symbols, SimTime(0)).unwrap();
    }
    hydra.dispatch(SimTime(0));
    drain(hydra);
}

#[test]
fn dispatch_work_does_not_grow_with_the_number_of_jobsets() {
    // 5,000 steps, each of its own jobset, queue at once for one slot. A
    // dispatch that scans every jobset does about 5,000 x 5,000 / 2 units
    // of work here; a few dozen per step is the budget.
    let mut text = String::from("step_id,submitted_at,system,duration,jobset\n");
    for i in 0..5_000 {
        text.push_str(&format!("{i},0,x86_64-linux,10,p:j{i}\n"));
    }
    let mut hydra = Hydra::new(BTreeMap::new());
    hydra.add_machine("s".into(), one_slot_builder(), SimTime(0), false);
    let before = hydra.work();
    arrive_all_and_run(&mut hydra, &text);
    assert_eq!(hydra.counters.succeeded, 5_000);
    let per_step = (hydra.work() - before) / 5_000;
    assert!(per_step <= 64, "{per_step} units of work per step");
}

#[test]
fn static_machines_join_in_time_linear_in_their_count() {
    let mut hydra = Hydra::new(BTreeMap::new());
    for i in 0..20_000 {
        hydra.add_machine(format!("s{i}"), one_slot_builder(), SimTime(0), false);
    }
    let per_machine = hydra.work() / 20_000;
    assert!(per_machine <= 64, "{per_machine} units of work per machine");
}

#[test]
fn a_step_id_reused_while_a_dependency_of_its_first_use_runs() {
    // Step 5 first arrives depending on 7 (running) and 8 (failed), so it
    // never starts; its id is then reused by a step without dependencies.
    // When 7 finishes it must release only the steps still waiting for it.
    let trace = "step_id,submitted_at,system,duration,depends_on,outcome\n\
                 8,0,x86_64-linux,1,,failure\n\
                 7,0,x86_64-linux,1000,,success\n\
                 5,10,x86_64-linux,30,7 8,success\n\
                 5,20,x86_64-linux,2000,,success\n\
                 6,30,x86_64-linux,30,7,success\n";
    let scenario =
        ONE_STATIC_SLOT.replace("systems = [\"x86_64-linux\"]", "systems = [\"x86_64-linux\"]\nmax_jobs = 2");
    let (summary, c) = simulate(&scenario, trace);
    assert_eq!(summary.steps.total, 5);
    assert_eq!((summary.steps.succeeded, summary.steps.failed), (3, 1), "{:?}", summary.steps);
    assert_eq!(summary.steps.never_started.get("a dependency failed"), Some(&1));
    // Step 6 waited for 7 (done at 1000 s) and ran on the slot 7 freed.
    let six = c.lines.iter().find(|l| l.id == 6).unwrap();
    assert_eq!((six.runnable, six.started), (Some(1_000_000), Some(1_000_000)));
}

#[test]
fn an_epoch_at_the_limits_of_time_does_not_overflow() {
    // A static builder only: the engine, with nothing to bill, is not
    // the subject here; the simulator's own clock arithmetic is.
    for epoch in [i64::MIN, i64::MAX] {
        let text = format!("era = \"with-last-active\"\n{ONE_STATIC_SLOT}");
        let mut scenario = Scenario::parse(&text, "t.toml", Path::new(".")).unwrap();
        scenario.epoch = epoch;
        let mut source = TraceReader::new(TWO_STEPS.as_bytes(), "t.csv");
        let summary = sim::run(&scenario, &mut source, &mut Collect::default()).unwrap();
        assert_eq!(summary.steps.total, 2, "epoch {epoch}");
    }
}

#[test]
fn share_sums_of_enormous_steps_do_not_overflow() {
    // 2,100 steps of 8.9e12 s each on 2,100 machines, charged to one jobset
    // within one window: 1.9e19 ms, more than an i64 holds.
    let mut text = String::from("step_id,submitted_at,system,duration,jobset\n");
    for i in 0..2_100 {
        text.push_str(&format!("{i},0,x86_64-linux,8900000000000,p:j\n"));
    }
    let mut hydra = Hydra::new(BTreeMap::new());
    for i in 0..2_100 {
        hydra.add_machine(format!("s{i}"), one_slot_builder(), SimTime(0), false);
    }
    arrive_all_and_run(&mut hydra, &text);
    assert_eq!(hydra.counters.succeeded, 2_100);
    let status = hydra.status_json(0, SimTime(8_900_000_000_000_000), 0, false);
    assert_eq!(status["jobsets"]["p:j"]["seconds"], 18_690_000_000_000_000u64, "{}", status["jobsets"]);
}

#[test]
fn an_enormous_deploy_concurrency_deploys_like_enough_of_it() {
    // Validation bounds deployConcurrency (at most 256); the largest value
    // must behave like any number of slots at least as large as the deploys
    // of a pass, without allocating per slot.
    let with = |concurrency: &str| {
        let scenario = std::fs::read_to_string(root().join("scenarios/quick-start.toml")).unwrap().replace(
            "billing = \"per-second\"",
            &format!("billing = \"per-second\"\ndeployConcurrency = {concurrency}"),
        );
        let trace = std::fs::read_to_string(root().join("traces/quick-start.csv")).unwrap();
        simulate(&scenario, &trace).0
    };
    assert_eq!(with("256"), with("64"));
}

#[test]
fn the_profile_guided_builds_training_runs_every_step_with_the_built_binary() {
    // contrib/pgo/build.sh trains on this script; a CLI change that breaks
    // one of its commands must fail here, not in someone's optimised build.
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("train");
    let o = std::process::Command::new("bash")
        .arg(root().join("contrib/pgo/train.sh"))
        .arg(assert_cmd::cargo::cargo_bin("hydra-provisioner"))
        .arg(&work)
        .arg("1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // The week's trace is the scenarios' trace, replayed under three models.
    let week = std::fs::read_to_string(work.join("replay-week.csv")).unwrap();
    assert!(week.lines().count() > 1_000, "an hour of the week has thousands of steps");
    for variant in ["cpp", "rust", "server"] {
        assert!(stderr.contains(&format!("simulate {}", work.join(format!("week-{variant}.toml")).display())));
    }
    for scenario in ["quick-start", "hydra-nixos-2017", "server-bottleneck"] {
        assert!(work.join(format!("out-{scenario}/summary.json")).exists(), "{scenario}");
    }
    for sweep in ["sweep-quick-start", "sweep-runner"] {
        assert!(std::fs::read_dir(work.join(sweep)).unwrap().count() > 0, "{sweep}");
    }
    assert!(stderr.lines().last().unwrap().contains(" plan -c "), "plan is the last step: {stderr}");
}
