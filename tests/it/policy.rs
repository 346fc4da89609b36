//! Policy testing through the real binary: `sweep` writes the same bytes
//! whatever the thread count, its rows agree with `simulate`, and `compare`
//! passes, fails and refuses as documented.

use crate::common::{bin, root, write};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The quick-start scenario with its trace named by absolute path, so that a
/// copy in a temporary directory still finds it; `edit` changes its text.
fn quick_start_copy(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios/quick-start.toml")).unwrap();
    let trace = root().join("traces/quick-start.csv");
    let text = text.replace("\"../traces/quick-start.csv\"", &format!("'{}'", trace.display()));
    assert!(text.contains(&trace.display().to_string()), "the quick-start names its trace as expected");
    write(dir, name, &edit(text))
}

/// Replaces the first `from` after `section` with `to`, checking it is there.
fn set_in(text: String, section: &str, from: &str, to: &str) -> String {
    let at = text.find(section).unwrap_or_else(|| panic!("no {section}"));
    let rel = text[at..].find(from).unwrap_or_else(|| panic!("no {from} after {section}"));
    let mut out = text.clone();
    out.replace_range(at + rel..at + rel + from.len(), to);
    out
}

const X86: &str = "[provisioner.systemTypes.\"x86_64-linux\"]";

const TINY_SWEEP: &str = r#"
version = 1
name = "tiny"
scenario = "base.toml"
seeds = [1, 2]

[[axis]]
path = 'systemTypes."x86_64-linux".runnablesPerMachine'
values = [5, 40]

[[axis]]
path = "billing"
values = ["hourly", "per-second"]
"#;

const FILES: [&str; 7] =
    ["points.csv", "summary.csv", "pareto.csv", "groups.csv", "pareto.svg", "pareto.png", "report.html"];

fn sweep(sweep: &Path, out: &Path, jobs: &str) -> std::process::Output {
    bin().args(["sweep"]).arg(sweep).arg("--out").arg(out).args(["--jobs", jobs]).output().unwrap()
}

fn records(path: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let mut rows = vec![r.headers().unwrap().clone()];
    rows.extend(r.records().map(Result::unwrap));
    rows
}

fn column(header: &csv::StringRecord, name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn sweep_output_is_byte_identical_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    quick_start_copy(dir.path(), "base.toml", |t| t);
    let file = write(dir.path(), "tiny.toml", TINY_SWEEP);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let a = sweep(&file, &one, "1");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = sweep(&file, &two, "2");
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let table = |o: &[u8], dir: &Path| String::from_utf8_lossy(o).replace(&dir.display().to_string(), "OUT");
    assert_eq!(table(&a.stdout, &one), table(&b.stdout, &two));
    for name in FILES {
        let (x, y) = (std::fs::read(one.join(name)).unwrap(), std::fs::read(two.join(name)).unwrap());
        assert!(!x.is_empty(), "{name} is empty");
        assert!(x == y, "{name} differs between --jobs 1 and --jobs 2");
    }
    // The grid: 4 points x 2 seeds, and a frontier the stdout table names.
    assert_eq!(records(&one.join("points.csv")).len(), 1 + 8);
    assert_eq!(records(&one.join("summary.csv")).len(), 1 + 4);
    let stdout = String::from_utf8(a.stdout).unwrap();
    assert!(stdout.contains("Pareto frontier"), "{stdout}");
    let png = std::fs::read(one.join("pareto.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let html = std::fs::read_to_string(one.join("report.html")).unwrap();
    for want in ["<svg", "base.toml", "1, 2", "hydra-provisioner 0.", "runnablesPerMachine"] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
    assert!(!html.contains("<script"), "report.html must need no JavaScript");
}

#[test]
fn a_sweep_row_agrees_with_simulate() {
    let dir = tempfile::tempdir().unwrap();
    quick_start_copy(dir.path(), "base.toml", |t| t);
    let file = write(dir.path(), "tiny.toml", TINY_SWEEP);
    let out = dir.path().join("out");
    assert!(sweep(&file, &out, "2").status.success());
    // Point 1 is runnablesPerMachine = 5 with per-second billing; take seed 2.
    let variant = quick_start_copy(dir.path(), "variant.toml", |t| {
        let t = set_in(t, X86, "runnablesPerMachine = 20", "runnablesPerMachine = 5");
        set_in(t, "[provisioner]", "billing = \"per-second\"", "billing = \"per-second\"")
    });
    let sim = bin().args(["simulate"]).arg(&variant).args(["--seed", "2", "--json"]).output().unwrap();
    assert!(sim.status.success(), "{}", String::from_utf8_lossy(&sim.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    let rows = records(&out.join("points.csv"));
    let h = &rows[0];
    let row = rows[1..]
        .iter()
        .find(|r| r[column(h, "point")] == *"1" && r[column(h, "seed")] == *"2")
        .expect("point 1 seed 2 is in points.csv");
    assert_eq!(&row[column(h, "billing")], "per-second");
    assert_eq!(&row[column(h, "systemTypes.x86_64-linux.runnablesPerMachine")], "5");
    let num = |name: &str| row[column(h, name)].parse::<f64>().unwrap();
    assert_eq!(num("cost_dollars"), summary["cost"]["dollars"].as_f64().unwrap());
    assert_eq!(num("wait_p95_s"), summary["latency"]["overall"]["p95"].as_f64().unwrap());
    assert_eq!(num("wait_max_s"), summary["latency"]["overall"]["max"].as_f64().unwrap());
    assert_eq!(num("creates"), summary["stability"]["creates"].as_f64().unwrap());
}

#[test]
fn bad_sweep_files_exit_2_naming_the_key_or_path() {
    let dir = tempfile::tempdir().unwrap();
    quick_start_copy(dir.path(), "base.toml", |t| t);
    let cases = [
        (TINY_SWEEP.replace("\"billing\"", "'systemTypes.\"riscv64-linux\".maxMachines'"), "riscv64-linux"),
        (TINY_SWEEP.replace("runnablesPerMachine", "runnablesPerMachin"), "runnablesPerMachin"),
        (
            TINY_SWEEP.replace("\"billing\"", "\"stopOnIdle\"").replace("\"hourly\", \"per-second\"", "true"),
            "stopOnIdle",
        ),
        (TINY_SWEEP.replace("seeds = [1, 2]", "seeds = [1, 2]\njobs = 3"), "jobs"),
        (TINY_SWEEP.replace("base.toml", "missing.toml"), "missing.toml"),
    ];
    for (text, want) in cases {
        let file = write(dir.path(), "bad.toml", &text);
        let o = sweep(&file, &dir.path().join("out"), "1");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    assert!(!dir.path().join("out").exists(), "nothing is written for bad input");
}

fn compare(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let o = bin().arg("compare").args(args).output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn compare_passes_identical_policies_and_fails_worse_ones_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = quick_start_copy(dir.path(), "base.toml", |t| t);
    let same = quick_start_copy(dir.path(), "same.toml", |t| t);
    let (code, stdout, stderr) = compare(&[base.as_os_str(), same.as_os_str(), "--seeds".as_ref(), "1,2".as_ref()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("verdict: pass"), "{stdout}");

    // One x86_64 machine instead of eight: steps wait longer (and, run later, keep other machines
    // up longer, so it is not even cheaper).
    let starved =
        quick_start_copy(dir.path(), "starved.toml", |t| set_in(t, X86, "maxMachines = 8", "maxMachines = 1"));
    let (code, stdout, stderr) = compare(&[base.as_os_str(), starved.as_os_str()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("wait p95 s"), "{stderr}");
    let (code, _, stderr) =
        compare(&[base.as_os_str(), starved.as_os_str(), "--wait-metric".as_ref(), "mean".as_ref(), "--json".as_ref()]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("wait mean s"), "{stderr}");
    let loose = ["--max-wait-increase", "100000", "--max-cost-increase", "1000"].map(std::ffi::OsStr::new);
    let (code, stdout, stderr) = compare(&[&[base.as_os_str(), starved.as_os_str()][..], &loose].concat());
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // Idle machines kept for a day: waits no longer, but the bill grows.
    let lingering =
        quick_start_copy(dir.path(), "lingering.toml", |t| set_in(t, X86, "gracePeriod = 600", "gracePeriod = 86400"));
    let (code, stdout, stderr) =
        compare(&[base.as_os_str(), lingering.as_os_str(), "--max-wait-increase".as_ref(), "100000".as_ref()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("cost $") && !stderr.contains("wait"), "{stderr}");
    let (code, stdout, stderr) = compare(&[
        base.as_os_str(),
        lingering.as_os_str(),
        "--max-wait-increase".as_ref(),
        "100000".as_ref(),
        "--max-cost-increase".as_ref(),
        "1000".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["pass"], true);
    assert!(doc["checks"][0]["change"].as_f64().unwrap() > 0.0, "{doc}");
}

#[test]
fn compare_reads_summaries_written_by_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let base = quick_start_copy(dir.path(), "base.toml", |t| t);
    let starved =
        quick_start_copy(dir.path(), "starved.toml", |t| set_in(t, X86, "maxMachines = 8", "maxMachines = 1"));
    for (scenario, out) in [(&base, "a"), (&starved, "b")] {
        let o = bin().arg("simulate").arg(scenario).arg("--out").arg(dir.path().join(out)).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (dir.path().join("a/summary.json"), dir.path().join("b/summary.json"));
    assert_eq!(compare(&[a.as_os_str(), a.as_os_str()]).0, Some(0));
    let (code, _, stderr) = compare(&[a.as_os_str(), b.as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("wait p95 s"), "{stderr}");
    // A summary and a scenario with the same seed agree.
    assert_eq!(compare(&[a.as_os_str(), base.as_os_str()]).0, Some(0));
}

#[test]
fn compare_refuses_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = quick_start_copy(dir.path(), "base.toml", |t| t);
    let not_json = write(dir.path(), "broken.json", "{\"cost\": ");
    let wrong_json = write(dir.path(), "other.json", "{\"cost\": {\"dollars\": 1}}");
    let bad_scenario = write(dir.path(), "bad.toml", "trace = 1\n");
    let missing = dir.path().join("missing.toml");
    for (other, want) in [
        (&not_json, "broken.json"),
        (&wrong_json, "other.json: no number at"),
        (&bad_scenario, "bad.toml"),
        (&missing, "missing.toml"),
    ] {
        let (code, _, stderr) = compare(&[base.as_os_str(), other.as_os_str()]);
        assert_eq!(code, Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    let (code, _, stderr) = compare(&[base.as_os_str(), base.as_os_str(), "--wait-metric".as_ref(), "p42".as_ref()]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// The files of a finished sweep, by name.
fn outputs(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    FILES.iter().map(|&f| (f, std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))).collect()
}

/// A tiny sweep over the quick-start in `dir`, and its single-machine output.
fn tiny_sweep_and_single_run(dir: &Path) -> (PathBuf, Vec<(&'static str, Vec<u8>)>) {
    quick_start_copy(dir, "base.toml", |t| t);
    let file = write(dir, "tiny.toml", TINY_SWEEP);
    let single = dir.join("single");
    let out = sweep(&file, &single, "2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (file, outputs(&single))
}

fn merge(dirs: &[&Path], out: &Path) -> std::process::Output {
    bin().args(["sweep", "merge"]).args(dirs).arg("--out").arg(out).output().unwrap()
}

#[test]
fn shards_merged_are_byte_identical_to_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let (file, single) = tiny_sweep_and_single_run(dir.path());
    // Three shards of 8 runs, written to two directories as two machines would.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (k, out) in [(1, &a), (2, &b), (3, &a)] {
        let o = bin().arg("sweep").arg(&file).args(["--shard", &format!("{k}/3"), "--out"]).arg(out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let partial: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("shard-{k}-of-3.json"))).unwrap()).unwrap();
        let runs: Vec<u64> = partial["runs"].as_array().unwrap().iter().map(|r| r["run"].as_u64().unwrap()).collect();
        assert_eq!(runs, (0..8).filter(|r| r % 3 == k - 1).collect::<Vec<u64>>(), "shard {k}/3 runs every third run");
    }
    let merged = dir.path().join("merged");
    let o = merge(&[&a, &b], &merged);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for ((name, x), (_, y)) in outputs(&merged).iter().zip(&single) {
        assert!(x == y, "{name} differs between the merged shards and the single run");
    }
    // A missing or doubled shard, or one of another sweep, is refused by name.
    let o = merge(&[&b], &dir.path().join("x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing shard(s) 1/3, 3/3"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = merge(&[&a, &b, &b], &dir.path().join("x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is also in"), "{}", String::from_utf8_lossy(&o.stderr));
    let other = write(dir.path(), "other.toml", &TINY_SWEEP.replace("[1, 2]", "[1, 3]"));
    let c = dir.path().join("c");
    bin().arg("sweep").arg(&other).args(["--shard", "2/3", "--out"]).arg(&c).assert().success();
    let o = merge(&[&a, &c], &dir.path().join("x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a slice of the same sweep"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin().arg("sweep").arg(&file).args(["--shard", "4/3", "--out"]).arg(&c).assert().code(2);
}

#[test]
fn shards_run_with_gnu_parallel_over_ssh_and_as_an_indexed_job() {
    let dir = tempfile::tempdir().unwrap();
    let (file, single) = tiny_sweep_and_single_run(dir.path());
    let script = |name: &str| root().join("contrib/sweep-shards").join(name);
    let binary = assert_cmd::cargo::cargo_bin("hydra-provisioner");
    // A Kubernetes Indexed Job: pod i has JOB_COMPLETION_INDEX=i.
    let parts = dir.path().join("job-results");
    for index in 0..4 {
        let o = std::process::Command::new("sh")
            .arg(script("shard-from-index.sh"))
            .arg(&file)
            .arg(&parts)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("SHARDS", "4")
            .env("HYDRA_PROVISIONER", &binary)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let merged = dir.path().join("job-report");
    assert!(merge(&[&parts], &merged).status.success());
    assert!(outputs(&merged) == single, "the Indexed Job's merge differs from the single run");
    // GNU parallel over ssh, every host being this one (tests/fakes/ssh).
    let has_parallel =
        std::process::Command::new("parallel").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_parallel {
        assert!(std::env::var("CI").is_err(), "GNU parallel is missing on CI; .ci/run must install it");
        eprintln!("skipped the GNU parallel half: parallel not installed (.ci/run installs it)");
        return;
    }
    let out = dir.path().join("ssh-report");
    let o = std::process::Command::new("sh")
        .arg(script("sweep-over-ssh.sh"))
        .arg(&file)
        .arg(&out)
        .args(["1/builder-a", "1/builder-b"])
        .env("PARALLEL_SSH", root().join("tests/fakes/ssh"))
        .env("HYDRA_PROVISIONER", &binary)
        .env("SHARDS", "3")
        .env("PARALLEL_HOME", dir.path().join("parallel-home"))
        // CI starts its jobs without SHELL; sshd sets it on the remote side, as the fake ssh does.
        .env_remove("SHELL")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(outputs(&out) == single, "the ssh shards' merge differs from the single run");
    assert!(out.join("shards/shard-3-of-3.json").exists());
}

fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn compare_pairs_seeds_a_config_against_itself_changes_nothing_and_a_starved_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = quick_start_copy(dir.path(), "base.toml", |t| set_in(t, X86, "maxMachines = 8", "maxMachines = 12"));
    let seeds = ["--seeds", "1,2,3", "--json"].map(std::ffi::OsStr::new);
    let (code, stdout, stderr) = compare(&[&[base.as_os_str(), base.as_os_str()][..], &seeds].concat());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let doc = json_of(&stdout);
    for check in doc["checks"].as_array().unwrap() {
        assert_eq!(check["change"], 0.0, "{check}");
        assert_eq!(check["paired"]["pairs"], 3, "{check}");
        assert_eq!(check["paired"]["interval"], serde_json::json!([0.0, 0.0]), "{check}");
        assert_eq!((check["paired"]["min"].as_f64(), check["paired"]["max"].as_f64()), (Some(0.0), Some(0.0)));
    }
    // One x86_64 machine instead of twelve, under the quick-start's bursts: every seed waits far longer.
    let starved =
        quick_start_copy(dir.path(), "starved.toml", |t| set_in(t, X86, "maxMachines = 8", "maxMachines = 1"));
    let (code, stdout, stderr) = compare(&[&[base.as_os_str(), starved.as_os_str()][..], &seeds].concat());
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let wait = &json_of(&stdout)["checks"][1];
    assert_eq!(wait["metric"], "wait p95 s");
    assert_eq!(
        (&wait["beyond_limit"], &wait["beyond_noise"], &wait["pass"]),
        (&true.into(), &true.into(), &false.into())
    );
    assert!(wait["paired"]["min"].as_f64().unwrap() > 0.0, "every seed waits longer: {wait}");
    assert!(wait["paired"]["interval"][0].as_f64().unwrap() > 0.0, "{wait}");
    assert!(stderr.contains("beyond noise"), "{stderr}");
    // The table says how the rule was applied.
    let (_, table, _) = compare(&[base.as_os_str(), starved.as_os_str(), "--seeds".as_ref(), "1,2,3".as_ref()]);
    assert!(table.contains("95% CI") && table.contains("FAIL"), "{table}");
}

#[test]
fn compare_refuses_different_inputs_unless_told_and_gates_one_jobset_or_type() {
    let dir = tempfile::tempdir().unwrap();
    let base = quick_start_copy(dir.path(), "base.toml", |t| t);
    let dearer =
        quick_start_copy(dir.path(), "dearer.toml", |t| t.replace("on_demand_price = 0.192", "on_demand_price = 0.5"));
    let windowed =
        quick_start_copy(dir.path(), "windowed.toml", |t| t.replace("seed = 1\n", "seed = 1\nwindow = \"0h..3h\"\n"));
    for (other, why) in [(&dearer, "worlds differ"), (&windowed, "different trace rows")] {
        let (code, _, stderr) = compare(&[base.as_os_str(), other.as_os_str()]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(why) && stderr.contains("--allow-different-inputs"), "{stderr}");
    }
    let (code, stdout, stderr) = compare(&[
        base.as_os_str(),
        dearer.as_os_str(),
        "--allow-different-inputs".as_ref(),
        "--max-wait-increase".as_ref(),
        "1000".as_ref(),
    ]);
    assert_eq!(code, Some(1), "a dearer cloud costs more: {stdout}{stderr}");
    // Summaries written by simulate say what they replayed, too.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (scenario, out) in [(&base, &a), (&windowed, &b)] {
        bin().arg("simulate").arg(scenario).arg("--out").arg(out).assert().success();
    }
    let (code, _, stderr) = compare(&[a.join("summary.json").as_os_str(), b.join("summary.json").as_os_str()]);
    assert_eq!(code, Some(2), "{stderr}");
    // Gating one machine type: starving x86_64 shows in its own waits and cost.
    let starved =
        quick_start_copy(dir.path(), "starved.toml", |t| set_in(t, X86, "maxMachines = 8", "maxMachines = 1"));
    let (code, stdout, stderr) = compare(&[
        base.as_os_str(),
        starved.as_os_str(),
        "--machine-type".as_ref(),
        "x86_64-linux".as_ref(),
        "--max-cost-increase".as_ref(),
        "1000".as_ref(),
    ]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("wait p95 s (type x86_64-linux)"), "{stderr}");
    assert!(stdout.contains("cost $ (type x86_64-linux)"), "{stdout}");
    let (code, stdout, stderr) = compare(&[
        base.as_os_str(),
        starved.as_os_str(),
        "--jobset".as_ref(),
        "nixpkgs:trunk".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(json_of(&stdout)["checks"][1]["metric"], "wait p95 s (jobset nixpkgs:trunk)");
    let (code, _, stderr) = compare(&[base.as_os_str(), base.as_os_str(), "--jobset".as_ref(), "no:such".as_ref()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`no:such`") && stderr.contains("nixpkgs:trunk"), "{stderr}");
}

fn recommend(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let o = bin().arg("recommend").args(args).output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn recommend_picks_the_cheapest_point_that_meets_the_target_in_every_sample_or_says_none_does() {
    let dir = tempfile::tempdir().unwrap();
    quick_start_copy(dir.path(), "base.toml", |t| t);
    let file = write(
        dir.path(),
        "grid.toml",
        "version = 1\nscenario = \"base.toml\"\nseeds = [1, 2]\n\
         [[axis]]\npath = 'systemTypes.\"x86_64-linux\".maxMachines'\nvalues = [1, 3, 8]\n\
         [[axis]]\npath = \"maxCreationsPerPass\"\nvalues = [1, 4]\n\
         [[axis]]\npath = \"window\"\nvalues = [\"0h..3h\", \"3h..6h\"]\n",
    );
    let out = dir.path().join("out");
    assert!(sweep(&file, &out, "2").status.success());
    // What the sweep's own table says: per point, its worst p95 over its runs, and its mean cost.
    let rows = records(&out.join("points.csv"));
    let h = &rows[0];
    let mut points: BTreeMap<u64, (f64, f64, usize)> = BTreeMap::new();
    let mut unstarted_per_sample: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &rows[1..] {
        let point: u64 = r[column(h, "point")].parse().unwrap();
        let (cost, p95) =
            (r[column(h, "cost_dollars")].parse::<f64>().unwrap(), r[column(h, "wait_p95_s")].parse().unwrap());
        let e = points.entry(point).or_insert((0.0, 0.0, 0));
        *e = (e.0 + cost, e.1.max(p95), e.2 + 1);
        // Steps no policy starts (failed dependencies) are the same for every point of a sample, so
        // the rule against starving a type rules nothing out here.
        let sample = (r[column(h, "window")].to_string(), r[column(h, "seed")].to_string());
        let unstarted = r[column(h, "steps_not_started")].to_string();
        assert_eq!(unstarted_per_sample.entry(sample).or_insert_with(|| unstarted.clone()), &unstarted);
    }
    assert_eq!(points.len(), 6);
    let worst: Vec<f64> = points.values().map(|p| p.1).collect();
    let mut sorted = worst.clone();
    sorted.sort_by(f64::total_cmp);
    // A target some points meet and some miss.
    let target = (sorted[2] + sorted[3]) / 2.0;
    let expected = points
        .iter()
        .filter(|(_, p)| p.1 <= target)
        .min_by(|a, b| (a.1.0 / a.1.2 as f64).total_cmp(&(b.1.0 / b.1.2 as f64)).then(a.0.cmp(b.0)))
        .map(|(k, _)| *k)
        .unwrap();
    let max_wait = format!("p95={target}");
    let (code, stdout, stderr) = recommend(&[file.as_os_str(), "--max-wait".as_ref(), max_wait.as_ref()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("Recommended: #{expected} ")), "expected #{expected}:\n{stdout}");
    assert!(stdout.contains("met in all 4 samples") && stdout.contains("Confidence"), "{stdout}");
    assert!(stdout.contains("2 seed(s) x 2 window(s)"), "{stdout}");
    let (_, json, _) = recommend(&[
        file.as_os_str(),
        "--max-wait".as_ref(),
        max_wait.as_ref(),
        "--json".as_ref(),
        "--jobs".as_ref(),
        "1".as_ref(),
    ]);
    assert_eq!(json_of(&json)["settings"][0]["chosen"], expected);
    // Nothing waits under a second at p95: no policy, and the target binds.
    let (code, stdout, stderr) = recommend(&[file.as_os_str(), "--max-wait".as_ref(), "p95=1s".as_ref()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("No policy in the grid meets every target"), "{stdout}");
    assert!(stdout.contains("p95 wait of all steps <= 1 s: no policy meets it alone"), "{stdout}");
    // Per-jobset targets name their jobset; unknown ones are refused by name.
    let (code, stdout, _) = recommend(&[file.as_os_str(), "--max-wait".as_ref(), "nix:master/p99=1s".as_ref()]);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("p99 wait of jobset nix:master <= 1 s"), "{stdout}");
    let (code, _, stderr) = recommend(&[file.as_os_str(), "--max-wait".as_ref(), "nix:mastr/p95=1m".as_ref()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("nix:mastr") && stderr.contains("nix:master"), "{stderr}");
    let (code, _, stderr) = recommend(&[file.as_os_str()]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn recommend_takes_a_scenario_and_windows_of_its_trace_as_samples() {
    let dir = tempfile::tempdir().unwrap();
    let base = quick_start_copy(dir.path(), "base.toml", |t| t);
    let (code, stdout, stderr) = recommend(&[
        base.as_os_str(),
        "--wait-cost".as_ref(),
        "50/h".as_ref(),
        "--windows".as_ref(),
        "2h".as_ref(),
        "--seeds".as_ref(),
        "1,2".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 candidate(s), 6 sample(s) each (2 seed(s) x 3 window(s))"), "{stdout}");
    assert!(stdout.contains("Recommended: #0 base") && stdout.contains("waiting $"), "{stdout}");
}

#[test]
fn a_sweep_over_traces_the_cloud_and_the_interval_pools_samples_splits_settings_and_shards_the_same() {
    let dir = tempfile::tempdir().unwrap();
    quick_start_copy(dir.path(), "base.toml", |t| t);
    // A second trace: the first 600 steps of the quick-start's.
    let trace = std::fs::read_to_string(root().join("traces/quick-start.csv")).unwrap();
    let short: String = trace.lines().take(601).map(|l| format!("{l}\n")).collect();
    let short = write(dir.path(), "short.csv", &short);
    let file = write(
        dir.path(),
        "grid.toml",
        &format!(
            "version = 1\nscenario = \"base.toml\"\nseeds = [1]\n\
             [[axis]]\npath = \"interval\"\nvalues = [60, 300]\n\
             [[axis]]\npath = 'cloud.\"x86_64-linux\".boot_median'\nvalues = [60, 300]\n\
             [[axis]]\npath = \"trace\"\nvalues = ['{}', '{}']\n",
            root().join("traces/quick-start.csv").display(),
            short.display()
        ),
    );
    let out = dir.path().join("out");
    let o = sweep(&file, &out, "2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = records(&out.join("summary.csv"));
    let h = &summary[0];
    assert_eq!(summary.len(), 1 + 4, "2 intervals x 2 cloud settings");
    assert!(h.iter().all(|c| c != "trace"), "traces are samples, pooled: {h:?}");
    assert!(summary[1..].iter().all(|r| &r[column(h, "samples")] == "2"));
    assert_eq!(&h[column(h, "cloud.x86_64-linux.boot_median")], "cloud.x86_64-linux.boot_median");
    let points = records(&out.join("points.csv"));
    assert_eq!(points.len(), 1 + 8);
    let ph = &points[0];
    let short_runs: Vec<&csv::StringRecord> =
        points[1..].iter().filter(|r| r[column(ph, "trace")].ends_with("short.csv")).collect();
    assert_eq!(short_runs.len(), 4);
    assert!(short_runs.iter().all(|r| &r[column(ph, "steps_started")] != "1164"), "the short trace has fewer steps");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("for boot_median=60") && stdout.contains("for boot_median=300"), "{stdout}");
    // Two shards of this sweep merge into the same bytes.
    let parts = dir.path().join("parts");
    for k in 1..=2 {
        let o =
            bin().arg("sweep").arg(&file).args(["--shard", &format!("{k}/2"), "--out"]).arg(&parts).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let merged = dir.path().join("merged");
    assert!(merge(&[&parts], &merged).status.success());
    assert!(outputs(&merged) == outputs(&out), "the merged shards differ from the single run");
}
