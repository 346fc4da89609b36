//! Recording passes and replaying them under a candidate configuration:
//! `simulate --record-passes` and `run --record` write what the engine saw
//! and decided; `replay` decides again and reports the differences.

use crate::common::{bin, root, write};
use serde_json::{Value, json};
use std::path::Path;

/// Quick-start passes recorded by the simulator, with the inline config as conf.json.
fn recorded_quick_start(dir: &Path) {
    bin()
        .args(["simulate", root().join("scenarios/quick-start.toml").to_str().unwrap(), "--record-passes", "--out"])
        .arg(dir)
        .assert()
        .success();
}

fn replay_json(passes: &Path, config: &Path) -> Value {
    let out = bin().arg("replay").arg(passes).arg("--config").arg(config).arg("--json").assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// The recorded config with every type's `runnablesPerMachine` multiplied by `factor`.
fn scaled_config(dir: &Path, factor: f64) -> std::path::PathBuf {
    let mut config: Value = serde_json::from_slice(&std::fs::read(dir.join("conf.json")).unwrap()).unwrap();
    for t in config["systemTypes"].as_object_mut().unwrap().values_mut() {
        let rpm = t.get("runnablesPerMachine").and_then(Value::as_f64).unwrap_or(10.0);
        t["runnablesPerMachine"] = json!(((rpm * factor).round() as u64).max(1));
    }
    write(dir, &format!("candidate-{factor}.json"), &config.to_string())
}

fn total(report: &Value, side: &str, figure: &str) -> u64 {
    report[side]["figures"][figure].as_u64().unwrap()
}

#[test]
fn simulated_passes_replayed_under_their_own_config_do_not_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    recorded_quick_start(&out);
    let passes = std::fs::read_dir(out.join("passes")).unwrap().count() as u64;
    let report = replay_json(&out, &out.join("conf.json"));
    assert_eq!(report["passes"], passes);
    assert_eq!(report["differing_passes"], 0, "{report:#}");
    assert_eq!(report["recorded"], report["candidate"]);
    assert_eq!(report["recorded_configs"][0], report["candidate_config"]);
    // As a CI gate: no difference, exit 0.
    bin()
        .arg("replay")
        .arg(out.join("passes"))
        .arg("-c")
        .arg(out.join("conf.json"))
        .arg("--fail-on-difference")
        .assert()
        .success();
}

#[test]
fn more_runnables_per_machine_wants_fewer_machines_and_fewer_the_other_way() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    recorded_quick_start(&out);
    let fewer = replay_json(&out, &scaled_config(&out, 3.0));
    assert!(fewer["differing_passes"].as_u64().unwrap() > 0, "{fewer:#}");
    assert!(total(&fewer, "candidate", "wanted") < total(&fewer, "recorded", "wanted"), "{fewer:#}");
    assert!(total(&fewer, "candidate", "created") <= total(&fewer, "recorded", "created"), "{fewer:#}");
    assert!(
        fewer["candidate"]["machine_hours"].as_f64().unwrap() <= fewer["recorded"]["machine_hours"].as_f64().unwrap()
    );
    let more = replay_json(&out, &scaled_config(&out, 0.3));
    assert!(total(&more, "candidate", "wanted") > total(&more, "recorded", "wanted"), "{more:#}");
    assert!(total(&more, "candidate", "created") >= total(&more, "recorded", "created"), "{more:#}");
    // Each differing pass names what changed.
    let first = &more["differences"][0];
    assert!(!first["types"].as_array().unwrap().is_empty() || !first["machines"].as_array().unwrap().is_empty());
    let text = bin().arg("replay").arg(&out).arg("-c").arg(scaled_config(&out, 0.3)).assert().success();
    let text = String::from_utf8(text.get_output().stdout.clone()).unwrap();
    assert!(text.contains("machine-hours implied") && text.contains("wanted"), "{text}");
    bin().arg("replay").arg(&out).arg("-c").arg(scaled_config(&out, 0.3)).arg("--fail-on-difference").assert().code(1);
}

#[test]
fn production_passes_are_recorded_as_json_lines_and_replay_to_no_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let fake = |name: &str| root().join("tests/fakes").join(name).display().to_string();
    std::fs::create_dir_all(dir.join("nixops/knobs")).unwrap();
    write(dir, "deployment.nix", "{ type, tag, ... }: { machine = { ... }: { }; }\n");
    let config = json!({
        "nixopsCommand": [python, fake("nixops")],
        "statusCommand": [python, fake("hydra-queue-runner"), "--status"],
        "machinesFile": dir.join("machines"), "stateDir": dir.join("state"),
        "recordDir": dir.join("from-config"),
        "systemTypes": {"x86_64-linux": {"nixopsExpr": "deployment.nix", "maxMachines": 3, "runnablesPerMachine": 10}},
    });
    let conf = write(dir, "conf.json", &config.to_string());
    let run = |now: i64, runnable: u64, extra: &[&str]| {
        let status = json!({"status": "up", "time": now, "uptime": 86400,
            "machineTypes": {"x86_64-linux": {"runnable": runnable, "running": 0}}, "machines": {}});
        write(&dir.join("queue"), "status.json", &status.to_string());
        bin()
            .arg("run")
            .arg(&conf)
            .args(["--now", &now.to_string()])
            .args(extra)
            .env("FAKE_NIXOPS_DIR", dir.join("nixops"))
            .env("FAKE_QUEUE_DIR", dir.join("queue"))
            .env("FAKE_NOW", now.to_string())
            .assert()
            .success();
    };
    let t0 = 1_700_000_000;
    let flag = dir.join("flag");
    for (i, runnable) in [25u64, 25, 5, 0].iter().enumerate() {
        run(t0 + 300 * i as i64, *runnable, &["--record", flag.to_str().unwrap()]);
    }
    run(t0 + 1200, 0, &[]);
    let lines = std::fs::read_to_string(flag.join("passes.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    for key in ["now", "status", "queue_status", "fleet", "config_fingerprint", "plan"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert_eq!(first["status"]["machineTypes"]["x86_64-linux"]["runnable"], 25);
    // Without --record the config's recordDir is used.
    assert_eq!(std::fs::read_to_string(dir.join("from-config/passes.jsonl")).unwrap().lines().count(), 1);
    let report = replay_json(&flag, &conf);
    assert_eq!((report["passes"].as_u64(), report["differing_passes"].as_u64()), (Some(4), Some(0)), "{report:#}");
    assert!(total(&report, "recorded", "created") >= 2, "{report:#}");
}

#[test]
fn bad_records_and_configs_are_exit_2_with_their_place() {
    let tmp = tempfile::tempdir().unwrap();
    let passes = write(tmp.path(), "p/passes.jsonl", "{\"now\": 1, \"status\": null}\n");
    let conf = write(tmp.path(), "conf.json", "{\"systemTypes\": {}}");
    let out = bin().arg("replay").arg(&passes).arg("-c").arg(&conf).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("passes.jsonl:1: not a recorded pass"), "{stderr}");
    bin().arg("replay").arg(tmp.path().join("nothing")).arg("-c").arg(&conf).assert().code(2);
    let bad_conf = write(tmp.path(), "bad.json", "{\"recordMaxBytes\": 10}");
    let out = bin().arg("replay").arg(&passes).arg("-c").arg(&bad_conf).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("recordMaxBytes"), "{stderr}");
}
