//! The rest of Hydra that decides latency: the server's local work and the
//! runners' slot rules, disabled machines, unsupported steps, the queue
//! monitor's loading, and evaluations. Micro-scenarios with answers worked
//! out by hand.

use crate::common::{bin, write};
use crate::simulation::{Line, assert_conserved, simulate};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// One static builder with one slot, and a server with one local worker:
/// copying a closure takes 1 s (10 MB at 10 MB/s, on the step's own thread,
/// not a worker), receiving outputs 3 s (copy back, compress and upload
/// 10 MB at 10 MB/s each, on the worker).
const ONE_BUILDER_ONE_THREAD: &str = r#"
trace = "unused.csv"
[hydra]
runner = "RUNNER"
[server]
local_workers = 1
copy_mb_per_s = 10
compress_mb_per_s = 10
upload_mb_per_s = 10
compression_ratio = 1
input_size_mb = 10
output_size_mb = 10
[provisioner.systemTypes."aarch64-linux"]
maxMachines = 0
[cloud."aarch64-linux"]
[[static_machines]]
name = "builder"
systems = ["x86_64-linux"]
"#;

/// A step's id, runnable, start and finish times (ms).
type Times = (u64, Option<i64>, Option<i64>, Option<i64>);

fn times(lines: &[Line]) -> Vec<Times> {
    let mut t: Vec<_> = lines.iter().map(|l| (l.id, l.runnable, l.started, l.finished)).collect();
    t.sort();
    t
}

#[test]
fn two_steps_on_one_builder_with_a_one_thread_server_under_both_slot_rules() {
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,10\n2,0,x86_64-linux,10\n";
    // Step 1: copy 0-1, build 1-11, receive 11-14. The C++ runner frees the
    // slot at 11, as the free thread starts receiving: step 2 starts at 11,
    // copy 11-12, build 12-22, receive 22-25.
    let (summary, c) = simulate(&ONE_BUILDER_ONE_THREAD.replace("RUNNER", "cpp"), trace);
    assert_eq!(times(&c.lines), vec![(1, Some(0), Some(0), Some(14_000)), (2, Some(0), Some(11_000), Some(25_000))]);
    let server = summary.server.expect("the server's figures");
    // Two receives, neither waiting for the thread; copies take no thread.
    assert_eq!((server.worker_wait.count, server.worker_wait.max), (2, 0.0));
    assert_eq!((server.copies_to_builders, server.uploads), (2, 2));
    // 6 s of local work in 25 s on one thread.
    assert_eq!(server.utilisation, 0.24);
    assert_eq!(server.upload_backlog_max, 1);
    // The Rust runner holds the slot until the upload at 14: step 2 starts
    // then: copy 14-15, build 15-25, receive 25-28.
    let (_, c) = simulate(&ONE_BUILDER_ONE_THREAD.replace("RUNNER", "rust"), trace);
    assert_eq!(times(&c.lines), vec![(1, Some(0), Some(0), Some(14_000)), (2, Some(0), Some(14_000), Some(28_000))]);
}

#[test]
fn the_cpp_runner_holds_the_slot_until_a_worker_takes_the_outputs() {
    // Step 1's 100 MB take the one thread 11-41 (copy back, compress and
    // upload, 10 s each). Step 2 starts at 11 (the thread took step 1's
    // outputs then), builds 12-22 and waits for the thread, still holding
    // the builder's one slot, until 41; so step 3 starts only at 41: copy
    // 41-42, build 42-52, receive 52-55 (step 2's receive ran 41-44).
    let trace = "step_id,submitted_at,system,duration,output_size\n\
                 1,0,x86_64-linux,10,100000000\n2,0,x86_64-linux,10,\n3,0,x86_64-linux,10,\n";
    let (summary, c) = simulate(&ONE_BUILDER_ONE_THREAD.replace("RUNNER", "cpp"), trace);
    assert_eq!(
        times(&c.lines),
        vec![
            (1, Some(0), Some(0), Some(41_000)),
            (2, Some(0), Some(11_000), Some(44_000)),
            (3, Some(0), Some(41_000), Some(55_000))
        ]
    );
    let server = summary.server.expect("the server's figures");
    assert_eq!((server.worker_wait.count, server.worker_wait.max), (3, 19.0));
}

#[test]
fn a_dependent_waits_for_its_dependency_s_upload_not_its_build() {
    let trace = "step_id,submitted_at,system,duration,depends_on\n1,0,x86_64-linux,10,\n2,0,x86_64-linux,10,1\n";
    for runner in ["cpp", "rust"] {
        // Step 1 is built at 11 but uploaded at 14: step 2 is runnable at 14.
        let (_, c) = simulate(&ONE_BUILDER_ONE_THREAD.replace("RUNNER", runner), trace);
        assert_eq!(
            times(&c.lines),
            vec![(1, Some(0), Some(0), Some(14_000)), (2, Some(14_000), Some(14_000), Some(28_000))],
            "{runner}"
        );
    }
}

#[test]
fn output_sizes_from_the_trace_set_the_receive_time() {
    // 40 MB of outputs: 4 s each to copy back, compress and upload.
    let trace = "step_id,submitted_at,system,duration,output_size\n1,0,x86_64-linux,10,40000000\n";
    let (summary, c) = simulate(&ONE_BUILDER_ONE_THREAD.replace("RUNNER", "cpp"), trace);
    assert_eq!(times(&c.lines), vec![(1, Some(0), Some(0), Some(23_000))]);
    assert_eq!(summary.server.unwrap().uploaded_gb, 0.04);
}

#[test]
fn without_a_server_section_the_model_is_the_one_before_it() {
    // A `[hydra] runner` alone changes nothing: the slot rules differ only
    // in the server's phases. The committed reports regenerating byte for
    // byte (tests/it/reports.rs) show the same for every committed result.
    let plain = ONE_BUILDER_ONE_THREAD.split("[server]").next().unwrap().to_string()
        + ONE_BUILDER_ONE_THREAD.split("output_size_mb = 10\n").nth(1).unwrap();
    let trace = "step_id,submitted_at,system,duration,depends_on\n1,0,x86_64-linux,10,\n2,0,x86_64-linux,10,1\n3,5,x86_64-linux,7,\n";
    let (cpp, c_cpp) = simulate(&plain.replace("RUNNER", "cpp"), trace);
    let (rust, c_rust) = simulate(&plain.replace("RUNNER", "rust"), trace);
    assert_eq!(times(&c_cpp.lines), times(&c_rust.lines));
    assert_eq!(
        times(&c_cpp.lines),
        vec![
            (1, Some(0), Some(0), Some(10_000)),
            (2, Some(10_000), Some(10_000), Some(20_000)),
            (3, Some(5_000), Some(20_000), Some(27_000))
        ]
    );
    assert!(cpp.server.is_none() && rust.server.is_none());
    let json = serde_json::to_value(&cpp).unwrap();
    assert!(json.get("server").is_none() && json.get("evaluations").is_none(), "{json}");
}

const ONE_STATIC_BUILDER: &str = r#"
trace = "unused.csv"
[provisioner.systemTypes."aarch64-linux"]
maxMachines = 0
[cloud."aarch64-linux"]
[[static_machines]]
name = "builder"
systems = ["x86_64-linux"]
"#;

#[test]
fn a_machine_that_fails_is_skipped_for_exactly_its_back_off() {
    // Step 1 fails for a machine reason at 10: the builder is disabled for
    // 60 s (to 70) and step 1 retries at 70. Step 2 (higher priority)
    // arrives at 20 and waits for the builder until exactly 70; it fails
    // for a machine reason too, at 75, more than 30 s after the first: the
    // second failure in a row disables the builder for 180 s (to 255).
    // Step 2 retries at 135 but waits; at 255 step 2 (priority) runs to
    // 260, then step 1 to 270.
    let trace = "step_id,submitted_at,system,duration,priority,outcome\n\
                 1,0,x86_64-linux,10,100,machine\n\
                 2,20,x86_64-linux,5,200,machine\n";
    let (summary, c) = simulate(ONE_STATIC_BUILDER, trace);
    assert_eq!(
        times(&c.lines),
        vec![(1, Some(0), Some(0), Some(270_000)), (2, Some(20_000), Some(70_000), Some(260_000))]
    );
    assert_eq!(summary.stability.retries, 2);
    assert_eq!(summary.steps.succeeded, 2);
}

#[test]
fn failures_within_30_seconds_count_once() {
    // Two slots: both steps fail at 10; the builder is disabled once, for
    // 60 s, and both retries run at 70.
    let two_slots = ONE_STATIC_BUILDER.to_string() + "max_jobs = 2\n";
    let trace =
        "step_id,submitted_at,system,duration,outcome\n1,0,x86_64-linux,10,machine\n2,0,x86_64-linux,10,machine\n";
    let (_, c) = simulate(&two_slots, trace);
    assert_eq!(times(&c.lines), vec![(1, Some(0), Some(0), Some(80_000)), (2, Some(0), Some(0), Some(80_000))]);
}

/// Only a provisioned type serves the steps: scale from zero.
const FROM_ZERO: &str = r#"
trace = "unused.csv"
[hydra]
MAX_UNSUPPORTED
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 1
runnablesPerMachine = 1
[cloud."x86_64-linux"]
boot_median = 60
boot_spread = 0
deploy = 120
"#;

#[test]
fn an_unsupported_step_is_aborted_at_once_with_zero_and_served_later_with_a_day() {
    let trace = "step_id,submitted_at,system,duration,depends_on\n1,0,x86_64-linux,100,\n2,0,x86_64-linux,100,1\n";
    let (summary, c) = simulate(&FROM_ZERO.replace("MAX_UNSUPPORTED", "max_unsupported_time = 0"), trace);
    // No machine of the type exists yet: step 1 is aborted as it arrives,
    // its dependent can never start, and the provisioner never sees demand.
    assert_eq!(summary.steps.never_started.get("unsupported for max_unsupported_time"), Some(&1));
    assert_eq!(summary.steps.never_started.get("a dependency failed"), Some(&1));
    assert_eq!(summary.stability.creates, 0);
    assert!(c.lines.iter().all(|l| l.started.is_none()));
    // With a day it waits as runnable: the pass at 300 creates a machine,
    // listed at 510 (boot 60, deploy 120, reload 30).
    let (summary, c) = simulate(&FROM_ZERO.replace("MAX_UNSUPPORTED", "max_unsupported_time = \"1d\""), trace);
    assert_eq!(summary.steps.succeeded, 2);
    assert_eq!(
        times(&c.lines),
        vec![(1, Some(0), Some(510_000), Some(610_000)), (2, Some(610_000), Some(610_000), Some(710_000))]
    );
    // A short limit that runs out before the machine is listed.
    let (summary, _) = simulate(&FROM_ZERO.replace("MAX_UNSUPPORTED", "max_unsupported_time = 400"), trace);
    assert_eq!(summary.steps.never_started.get("unsupported for max_unsupported_time"), Some(&1));
}

#[test]
fn the_queue_monitor_loads_a_burst_over_time() {
    // 2 steps a second: the third row of a burst at 0 is loaded at 1 s.
    let scenario = ONE_STATIC_BUILDER.replace("[provisioner.", "[hydra]\nqueue_monitor_rate = 2\n[provisioner.")
        + "max_jobs = 10\n";
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,10\n2,0,x86_64-linux,10\n3,0,x86_64-linux,10\n4,5,x86_64-linux,10\n";
    let (_, c) = simulate(&scenario, trace);
    let runnable: Vec<_> = times(&c.lines).iter().map(|t| t.1).collect();
    assert_eq!(runnable, vec![Some(0), Some(500), Some(1000), Some(5000)]);
}

#[test]
fn evaluations_complete_with_their_last_build() {
    let trace = "step_id,submitted_at,system,duration,jobset,eval_id\n\
                 1,0,x86_64-linux,10,nixos:release,1\n\
                 2,0,x86_64-linux,20,nixos:release,1\n\
                 3,100,x86_64-linux,5,nixos:release,2\n\
                 4,200,x86_64-linux,5,nixpkgs:trunk,\n";
    let (summary, _) = simulate(ONE_STATIC_BUILDER, trace);
    let e = &summary.evaluations["nixos:release"];
    // Evaluation 1: queued at 0, builds 0-10 and 10-30. Evaluation 2: 100-105.
    assert_eq!((e.completed, e.unfinished), (2, 0));
    assert_eq!((e.completion.max, e.completion.p50), (30.0, 5.0));
    assert!(!summary.evaluations.contains_key("nixpkgs:trunk"));
    assert!(summary.to_table().contains("evaluation completion"), "{}", summary.to_table());
}

fn arbitrary_trace() -> impl Strategy<Value = String> {
    let row = (0u32..4000, 1u32..900, 0usize..3, any::<bool>(), 0u8..20, proptest::option::of(0u64..3), 0u64..400);
    proptest::collection::vec(row, 1..40).prop_map(|mut rows| {
        rows.sort_by_key(|r| r.0);
        let mut text =
            String::from("step_id,submitted_at,system,jobset,duration,depends_on,outcome,eval_id,output_size\n");
        for (i, (at, dur, kind, dep, outcome, eval, mb)) in rows.into_iter().enumerate() {
            let id = i + 1;
            let system = ["x86_64-linux", "aarch64-linux", "riscv64-linux"][kind];
            let depends = if dep && id > 1 { format!("{}", 1 + (at as usize % (id - 1))) } else { String::new() };
            let outcome = ["failure", "transient", "machine"].get(usize::from(outcome)).unwrap_or(&"success");
            let eval = eval.map_or(String::new(), |e| e.to_string());
            let bytes = mb * 1_000_000;
            text.push_str(&format!("{id},{at},{system},j:{kind},{dur},{depends},{outcome},{eval},{bytes}\n"));
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_traces_lose_no_step_with_the_server_and_either_runner(
        trace in arbitrary_trace(),
        horizon in proptest::option::of(600u32..20000),
        rust in any::<bool>(),
        workers in 1u32..4,
        max_unsupported in proptest::option::of(0u32..2000),
        monitor in proptest::option::of(1u32..50),
    ) {
        let horizon = horizon.map_or(String::new(), |h| format!("horizon = {h}\n"));
        let runner = if rust { "rust" } else { "cpp" };
        let max_unsupported = max_unsupported.map_or(String::new(), |t| format!("max_unsupported_time = {t}\n"));
        let monitor = monitor.map_or(String::new(), |r| format!("queue_monitor_rate = {r}\n"));
        let scenario = format!(r#"
trace = "unused.csv"
{horizon}
[hydra]
runner = "{runner}"
{max_unsupported}{monitor}
[server]
local_workers = {workers}
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 2
runnablesPerMachine = 2
maxJobs = 2
[cloud."x86_64-linux"]
market = "spot"
spot_price = 0.1
spot_interruptions_per_hour = 4
[[static_machines]]
name = "arm"
systems = ["aarch64-linux"]
max_jobs = 2
"#);
        let ids: BTreeSet<u64> = (1..trace.lines().count() as u64).collect();
        let (summary, c) = simulate(&scenario, &trace);
        assert_conserved(&summary, &c.lines, &ids);
        let (again, c_again) = simulate(&scenario, &trace);
        prop_assert_eq!(&summary, &again);
        prop_assert_eq!(&c.lines, &c_again.lines);
        let server = summary.server.as_ref().unwrap();
        prop_assert!(server.utilisation <= 1.0);
        prop_assert!(server.uploads <= summary.steps.attempts);
    }
}

#[test]
fn simulate_writes_the_server_series_and_reports_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,600\n2,0,x86_64-linux,600\n";
    write(tmp.path(), "t.csv", trace);
    let scenario =
        write(tmp.path(), "s.toml", &ONE_BUILDER_ONE_THREAD.replace("RUNNER", "cpp").replace("unused.csv", "t.csv"));
    let out = bin().args(["simulate"]).arg(&scenario).arg("--out").arg(tmp.path().join("out")).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("server           1 local workers"), "{stdout}");
    let series = std::fs::read_to_string(tmp.path().join("out/server.csv")).unwrap();
    assert!(series.starts_with("time_s,local_workers_busy,local_work_waiting,upload_backlog\n"), "{series}");
    assert!(series.lines().count() > 2, "{series}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["server"]["local_workers"], 1);
    let html = std::fs::read_to_string(tmp.path().join("out/report.html")).unwrap();
    assert!(html.contains("<h2>Server</h2>") && html.contains("server: local workers and upload backlog"));
}

#[test]
fn trace_synth_adds_release_evaluations_on_their_schedule_with_evaluation_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t.csv");
    bin()
        .args(["trace", "synth", "--seed", "5", "--hours", "5"])
        .args(["--set", "release-every-hours=2", "--set", "release-first-hour=1", "--set", "release-steps=50"])
        .args(["--set", "release-jobset=nixos:release-99.05", "-o"])
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().next().unwrap().ends_with(",outcome,eval_id"), "{}", text.lines().next().unwrap());
    let mut releases: std::collections::BTreeMap<String, (usize, BTreeSet<String>)> = Default::default();
    for line in text.lines().skip(1).filter(|l| l.contains("nixos:release-99.05")) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[6], "200", "release steps have high priority: {line}");
        let e = releases.entry(cells[1].to_string()).or_default();
        e.0 += 1;
        e.1.insert(cells[cells.len() - 1].to_string());
    }
    // Releases at 1 h and 3 h (5 h is the end): 50 steps each, arriving
    // together, one evaluation id each.
    let at: Vec<&str> = releases.keys().map(String::as_str).collect();
    assert_eq!(at, vec!["10800.000", "3600.000"]);
    for (n, ids) in releases.values() {
        assert_eq!((*n, ids.len()), (50, 1));
    }
    // Without releases the trace keeps the eleven columns and its bytes.
    let plain = bin().args(["trace", "synth", "--seed", "5", "--hours", "1"]).assert().success();
    let plain = String::from_utf8(plain.get_output().stdout.clone()).unwrap();
    assert!(plain.starts_with(
        "step_id,submitted_at,system,features,jobset,build_id,priority,global_priority,depends_on,duration,outcome\n"
    ));
}

/// A release burst on a few builders, with evaluation ids.
fn release_scenario(dir: &std::path::Path, max_machines: u32) -> std::path::PathBuf {
    let mut trace = String::from("step_id,submitted_at,system,duration,jobset,eval_id,priority\n");
    for i in 1..=60 {
        trace.push_str(&format!("{i},0,x86_64-linux,300,nixos:release,1,200\n"));
    }
    for i in 61..=80 {
        trace.push_str(&format!("{i},{},x86_64-linux,60,nixpkgs:trunk,,100\n", i * 30));
    }
    write(dir, "t.csv", &trace);
    let scenario = format!(
        r#"
trace = "t.csv"
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = {max_machines}
runnablesPerMachine = 4
maxJobs = 4
[cloud."x86_64-linux"]
boot_spread = 0
"#
    );
    write(dir, &format!("s{max_machines}.toml"), &scenario)
}

#[test]
fn compare_and_recommend_can_target_evaluation_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let few = release_scenario(tmp.path(), 1);
    let many = release_scenario(tmp.path(), 4);
    let o = bin()
        .arg("compare")
        .arg(&many)
        .arg(&few)
        .args(["--evaluations", "nixos:release", "--max-cost-increase", "100"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "fewer machines finish the release later: {stdout}");
    assert!(stdout.contains("evaluations of jobset nixos:release"), "{stdout}");
    let o = bin()
        .arg("compare")
        .arg(&few)
        .arg(&many)
        .args(["--evaluations", "nixos:release", "--max-cost-increase", "1000"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = bin().arg("compare").arg(&few).arg(&many).args(["--evaluations", "nixpkgs:trunk"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no evaluations of jobset `nixpkgs:trunk`"));
    // recommend: the cheapest maxMachines finishing the release within an hour.
    let sweep = write(
        tmp.path(),
        "sweep.toml",
        "version = 1\nscenario = \"s1.toml\"\nseeds = [1]\n[[axis]]\npath = 'systemTypes.\"x86_64-linux\".maxMachines'\nvalues = [1, 2, 4]\n",
    );
    let o = bin().arg("recommend").arg(&sweep).args(["--max-wait", "eval:nixos:release/max=60m"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("max completion of evaluations of jobset nixos:release"), "{stdout}");
    assert!(stdout.contains("Recommended: #1 maxMachines=2"), "{stdout}");
    let o = bin().arg("recommend").arg(&sweep).args(["--max-wait", "eval:nixpkgs:trunk/max=40m"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bad_server_and_hydra_settings_name_their_key_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "t.csv", "step_id,submitted_at,system,duration\n1,0,x86_64-linux,10\n");
    let base = ONE_BUILDER_ONE_THREAD.replace("RUNNER", "cpp").replace("unused.csv", "t.csv");
    for (from, to, named) in [
        ("local_workers = 1", "local_workers = 0", "server.local_workers"),
        ("compression_ratio = 1", "compression_ratio = 1.5", "server.compression_ratio"),
        ("copy_mb_per_s = 10", "copy_mb_per_s = -3", "server.copy_mb_per_s"),
        ("input_size_mb = 10", "input_size_mb = 10\nthreads = 4", "threads"),
        ("runner = \"cpp\"", "runner = \"java\"", "java"),
        ("runner = \"cpp\"", "runner = \"cpp\"\nmax_unsupported_time = \"soon\"", "hydra.max_unsupported_time"),
        ("runner = \"cpp\"", "runner = \"cpp\"\nqueue_monitor_rate = 0", "hydra.queue_monitor_rate"),
    ] {
        assert!(base.contains(from), "{from}");
        let scenario = write(tmp.path(), "s.toml", &base.replace(from, to));
        let o = bin().arg("simulate").arg(&scenario).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{to}: {stderr}");
        assert!(stderr.contains(named), "{to}: {stderr}");
    }
    write(tmp.path(), "t.csv", "step_id,submitted_at,system,duration,output_size\n1,0,x86_64-linux,10,big\n");
    let scenario = write(tmp.path(), "s.toml", &base);
    let o = bin().arg("simulate").arg(&scenario).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("column `output_size`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn trace_stats_count_machine_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(
        tmp.path(),
        "t.csv",
        "step_id,submitted_at,system,duration,outcome\n1,0,x86_64-linux,5,machine\n2,1,x86_64-linux,5,\n",
    );
    let o = bin().args(["trace", "stats"]).arg(&trace).assert().success();
    let stdout = String::from_utf8(o.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("machine 1"), "{stdout}");
}
