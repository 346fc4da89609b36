//! The Rust queue runner (`runner = "rust"`). Production: `hydra-provisioner
//! run` against a fake of the runner's REST API (real HTTP on 127.0.0.1,
//! tests/fakes/rust-queue-runner) and the fake `nixops`, with the queued
//! steps' required features read from real `.drv` files in a temporary
//! store. Simulation: hand-checked micro-scenarios of the runner's model,
//! conservation and determinism.

use crate::common;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const T0: i64 = 1_700_000_000;

/// A temp directory with a config, a store of `.drv` files, the fake
/// runner (running) and the fake NixOps's state.
struct World {
    dir: tempfile::TempDir,
    runner: Child,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.runner.kill();
        let _ = self.runner.wait();
    }
}

/// A derivation as `nix-instantiate` writes it, requiring `features`.
fn drv_text(system: &str, features: &str) -> String {
    format!(
        r#"Derive([("out","/nix/store/00000000000000000000000000000000-x","","")],[],[],"{system}","/bin/sh",["-c","true"],[("builder","/bin/sh"),("name","x"),("requiredSystemFeatures","{features}"),("system","{system}")])"#
    )
}

impl World {
    /// Types `x86_64-linux` and `x86_64-linux:big-parallel`, per-second
    /// billing (so paid time keeps nothing), `type_config` merged over each type.
    fn new(type_config: Value) -> World {
        let dir = tempfile::tempdir().unwrap();
        let runner_dir = dir.path().join("runner");
        std::fs::create_dir_all(&runner_dir).unwrap();
        std::fs::create_dir_all(dir.path().join("nixops/knobs")).unwrap();
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        let runner =
            Command::new(common::python()).arg(common::fake("rust-queue-runner")).arg(&runner_dir).spawn().unwrap();
        let port_file = runner_dir.join("port");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !port_file.exists() {
            assert!(Instant::now() < deadline, "the fake runner never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        let port = std::fs::read_to_string(&port_file).unwrap();
        common::write(dir.path(), "deployment.nix", "{ type, tag, ... }: { machine = { ... }: { }; }\n");
        let mut t = json!({"nixopsExpr": "deployment.nix", "maxMachines": 2, "runnablesPerMachine": 1,
                           "maxJobs": 2, "gracePeriod": 600});
        if let (Value::Object(t), Value::Object(over)) = (&mut t, type_config) {
            t.extend(over);
        }
        let config = json!({
            "runner": "rust",
            "statusUrl": format!("http://127.0.0.1:{port}/status"),
            "runnerEndpoint": "https://hydra.example.org:50051",
            "builderTokenPath": "/run/keys/hydra-builder-token",
            "storeDir": dir.path().join("store").display().to_string(),
            "billing": "per-second",
            "nixopsCommand": [common::python(), common::fake("nixops")],
            "machinesFile": dir.path().join("machines").display().to_string(),
            "stateDir": dir.path().join("state").display().to_string(),
            "prometheusTextfile": dir.path().join("metrics.prom").display().to_string(),
            "commandTimeout": 60,
            "systemTypes": {"x86_64-linux": t.clone(), "x86_64-linux:big-parallel": t},
        });
        common::write(dir.path(), "conf.json", &serde_json::to_string_pretty(&config).unwrap());
        let w = World { dir, runner };
        w.set(&[], &[], T0);
        w
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn runner_dir(&self) -> PathBuf {
        self.path().join("runner")
    }

    /// Writes the runner's three documents: `queued` steps as (drv name,
    /// required features, scheduled on this builder, tries), and
    /// `builders` as (hostname, last ping) with the jobs the queue puts on them.
    fn set(&self, queued: &[(&str, &str, Option<&str>, u32)], builders: &[(&str, i64)], now: i64) {
        let mut entries = vec![];
        let (mut total, mut active) = (0, 0);
        for (drv, features, on, tries) in queued {
            common::write(&self.path().join("store"), drv, &drv_text("x86_64-linux", features));
            total += 1;
            active += u64::from(on.is_some());
            entries.push(json!({"drvPath": drv, "alreadyScheduled": on.is_some(), "runnable": true,
                "finished": false, "cancelled": false, "runnableSince": "2023-11-14T22:00:00Z",
                "tries": tries, "lowestShareUsed": 0.0, "highestGlobalPriority": 0,
                "highestLocalPriority": 0, "lowestBuildId": 1}));
        }
        let time = jiff::Timestamp::from_second(now).unwrap().to_string();
        let status = json!({"queueRunner": {"status": "up", "time": time, "uptime": 86400.0,
            "queueStats": {"x86_64-linux": {"activeRunnable": active, "totalRunnable": total,
                "nrRunnableWaiting": total - active, "nrRunnableDisabled": 0, "avgRunnableTime": 0, "waitTimeMs": 0}}},
            "machines": {}, "jobsets": {}, "store": null, "s3": {}});
        let mut machines = serde_json::Map::new();
        for (host, last_ping) in builders {
            let jobs: Vec<&str> =
                queued.iter().filter(|(_, _, on, _)| on == &Some(*host)).map(|(drv, ..)| *drv).collect();
            machines.insert(
                host.to_string(),
                json!({"systems": ["x86_64-linux"], "maxJobs": 2, "speedFactor": 1.0,
                "supportedFeatures": [], "mandatoryFeatures": [], "jobs": jobs,
                "stats": {"currentJobs": jobs.len(), "idleSince": 0, "lastPing": last_ping,
                          "sinceLastPing": now - last_ping}}),
            );
        }
        let count = machines.len();
        self.write_doc("status.json", &status);
        self.write_doc("machines.json", &json!({"machines": machines, "machinesCount": count}));
        self.write_doc("queues.json", &json!({"queues": {"x86_64-linux": entries}}));
    }

    fn write_doc(&self, name: &str, doc: &Value) {
        common::write(&self.runner_dir(), name, &doc.to_string());
    }

    /// Requests the fake runner answered so far.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.runner_dir().join("requests"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn pass(&self, now: i64) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_hydra-provisioner"))
            .arg("run")
            .arg(self.path().join("conf.json"))
            .arg("--now")
            .arg(now.to_string())
            .env("FAKE_NIXOPS_DIR", self.path().join("nixops"))
            .env("FAKE_NOW", now.to_string())
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("--- pass at {now}: exit {:?}\n{stderr}", out.status.code());
        (out.status.code().unwrap_or(-1), stderr)
    }

    fn ok_pass(&self, now: i64) -> String {
        let (code, stderr) = self.pass(now);
        assert_eq!(code, 0, "pass at {now} failed:\n{stderr}");
        stderr
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.path().join("nixops/calls")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn calls_of(&self, command: &str) -> Vec<Vec<String>> {
        self.calls().into_iter().filter(|c| c[0] == command).collect()
    }

    /// The deployments the fake NixOps holds, by name.
    fn names(&self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.path().join("nixops/db.json")) else { return vec![] };
        let db: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        let mut names: Vec<String> = db.values().filter_map(|d| d["name"].as_str().map(String::from)).collect();
        names.sort();
        names
    }

    fn metrics(&self) -> String {
        std::fs::read_to_string(self.path().join("metrics.prom")).unwrap()
    }

    /// Index in the call log of the first call whose words include all of `words`.
    fn call_index(&self, words: &[&str]) -> Option<usize> {
        self.calls().iter().position(|c| words.iter().all(|w| c.iter().any(|a| a == w)))
    }
}

const HP0: &str = "hydra-provisioned-0";
const HP1: &str = "hydra-provisioned-1";
const UNIT: &str = "hydra-queue-builder-dev.service";

#[test]
fn scales_out_by_system_and_by_feature_set_without_a_machines_file() {
    let w = World::new(json!({}));
    w.set(&[("aaaa-plain.drv", "", None, 0), ("bbbb-chromium.drv", "big-parallel", None, 0)], &[], T0);
    w.ok_pass(T0);
    assert_eq!(w.names(), [HP0, HP1]);
    let set_args = w.calls_of("set-args");
    let by_type = |t: &str| set_args.iter().find(|c| c.windows(2).any(|p| p == ["type", t])).unwrap().clone();
    let plain = by_type("x86_64-linux");
    let featured = by_type("x86_64-linux:big-parallel");
    // One creation per type: the plain step wants a plain builder, the
    // big-parallel one (known only from its .drv) a big-parallel one.
    assert_ne!(plain[2], featured[2]);
    for c in [&plain, &featured] {
        let name = c[2].clone();
        for (k, v) in [
            ("hostname", name.as_str()),
            ("runnerEndpoint", "https://hydra.example.org:50051"),
            ("tokenPath", "/run/keys/hydra-builder-token"),
            ("maxJobs", "2"),
            ("tag", "hydra-provisioned"),
        ] {
            assert!(c.windows(3).any(|a| a == ["--argstr", k, v]), "{k}={v} missing from {c:?}");
        }
    }
    assert!(!w.path().join("machines").exists(), "no machines file under the Rust runner");
    let requests = w.requests();
    for path in ["/status", "/status/machines", "/status/queues"] {
        assert!(requests.iter().any(|r| r == path), "{path} not read: {requests:?}");
    }
    assert!(w.path().join("state/drv-features.json").exists(), "features are cached by drv path");

    // Plain demand only: the featured builder is not asked for again, and a
    // second plain step (runnablesPerMachine 1) makes a second plain builder.
    w.set(
        &[("aaaa-plain.drv", "", None, 0), ("cccc-plain.drv", "", None, 0)],
        &[(HP0, T0 + 295), (HP1, T0 + 295)],
        T0 + 300,
    );
    w.ok_pass(T0 + 300);
    assert_eq!(w.names().len(), 3, "{:?}", w.names());
}

#[test]
fn an_unreadable_drv_is_an_error_and_nothing_is_destroyed() {
    let w = World::new(json!({"gracePeriod": 0}));
    w.set(&[("aaaa-plain.drv", "", None, 0)], &[], T0);
    w.ok_pass(T0);
    assert_eq!(w.names(), [HP0]);
    // The queue names a derivation the store does not have.
    w.set(&[], &[(HP0, T0 + 3595)], T0 + 3600);
    let queues = json!({"queues": {"x86_64-linux": [{"drvPath": "zzzz-gone.drv", "alreadyScheduled": false,
        "finished": false, "cancelled": false, "tries": 0}]}});
    w.write_doc("queues.json", &queues);
    let (code, stderr) = w.pass(T0 + 3600);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("zzzz-gone.drv"), "{stderr}");
    assert_eq!(w.names(), [HP0], "an unreadable queue destroys nothing");
    assert!(w.calls_of("destroy").is_empty());
}

#[test]
fn retires_only_after_idle_for_the_grace_period_stopping_the_service_before_the_destroy() {
    let w = World::new(json!({}));
    w.set(&[("aaaa-plain.drv", "", None, 0)], &[], T0);
    w.ok_pass(T0);
    assert_eq!(w.names(), [HP0]);
    // Busy with the step: not needed, kept.
    w.set(&[("aaaa-plain.drv", "", Some(HP0), 0)], &[(HP0, T0 + 295)], T0 + 300);
    w.ok_pass(T0 + 300);
    // Idle from here: kept for the grace period (600 s) by our own record.
    w.set(&[], &[(HP0, T0 + 595)], T0 + 600);
    let stderr = w.ok_pass(T0 + 600);
    assert!(stderr.contains("grace period") || stderr.contains("no drain"), "{stderr}");
    w.set(&[], &[(HP0, T0 + 895)], T0 + 900);
    w.ok_pass(T0 + 900);
    assert_eq!(w.names(), [HP0], "idle for 300 s of 600");
    assert!(w.calls_of("destroy").is_empty() && w.call_index(&["systemctl"]).is_none());
    w.set(&[], &[(HP0, T0 + 1195)], T0 + 1200);
    w.ok_pass(T0 + 1200);
    assert!(w.names().is_empty());
    let stop = w.call_index(&["ssh", HP0, "--", "systemctl", "stop", UNIT]).expect("the service was stopped");
    let destroy = w.call_index(&["destroy", HP0]).expect("the machine was destroyed");
    assert!(stop < destroy, "service stop {stop} must come before destroy {destroy}: {:?}", w.calls());
    let metrics = w.metrics();
    for line in [
        "hydra_provisioner_builder_service_stops_total{type=\"x86_64-linux\",reason=\"idle\"} 1",
        "hydra_provisioner_retire_race_total{outcome=\"exposed\"} 1",
        "hydra_provisioner_retire_race_total{outcome=\"caught\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line}:\n{metrics}");
    }
}

#[test]
fn a_builder_busy_at_the_moment_of_decision_is_never_retired() {
    let w = World::new(json!({"gracePeriod": 0}));
    w.set(&[("aaaa-plain.drv", "", None, 0)], &[], T0);
    w.ok_pass(T0);
    // Busy when the pass reads the status: kept, neither stopped nor destroyed.
    w.set(&[("aaaa-plain.drv", "", Some(HP0), 0)], &[(HP0, T0 + 295)], T0 + 300);
    w.ok_pass(T0 + 300);
    assert_eq!(w.names(), [HP0]);
    assert!(w.call_index(&["systemctl"]).is_none());

    // Idle when the pass reads the status, but the runner dispatches to it
    // before the service stop: the second read of /status/machines in this
    // pass shows the job, and the builder is left alone.
    w.set(&[], &[(HP0, T0 + 595)], T0 + 600);
    let reads = w.requests().iter().filter(|r| *r == "/status/machines").count();
    let busy =
        json!({"machines": {HP0: {"stats": {"currentJobs": 1, "lastPing": T0 + 599}, "jobs": ["dddd-new.drv"]}}});
    w.write_doc(&format!("machines-{}.json", reads + 2), &busy);
    let stderr = w.ok_pass(T0 + 600);
    assert!(stderr.contains("dispatched to it"), "{stderr}");
    assert_eq!(w.names(), [HP0]);
    assert!(w.call_index(&["systemctl"]).is_none(), "{:?}", w.calls());
    assert!(w.calls_of("destroy").is_empty());
    let metrics = w.metrics();
    assert!(metrics.contains("hydra_provisioner_retire_race_total{outcome=\"caught\"} 1"), "{metrics}");

    // A failed service stop leaves the machine as it is, and the pass fails.
    w.set(&[], &[(HP0, T0 + 895)], T0 + 900);
    common::write(&w.path().join("nixops/knobs"), &format!("fail-ssh-{HP0}"), "1");
    let (code, _) = w.pass(T0 + 900);
    assert_eq!(code, 1);
    assert_eq!(w.names(), [HP0]);
    assert!(w.calls_of("destroy").is_empty());
}

#[test]
fn the_watchdog_reports_then_replaces_a_silent_builder() {
    let w = World::new(json!({"gracePeriod": 0}));
    let queue = [("aaaa-plain.drv", "", Some(HP0), 0)];
    w.set(&[("aaaa-plain.drv", "", None, 0)], &[], T0);
    w.ok_pass(T0);
    // Never pinged yet (lastPing 0): not silence.
    w.set(&queue, &[(HP0, 0)], T0 + 300);
    w.ok_pass(T0 + 300);
    assert!(w.metrics().contains("hydra_provisioner_silent_builders{type=\"x86_64-linux\"} 0"));
    // Silent for 200 s (watchdogReport 120): reported, kept.
    w.set(&queue, &[(HP0, T0 + 400)], T0 + 600);
    let stderr = w.ok_pass(T0 + 600);
    assert!(stderr.contains("silent for 200s"), "{stderr}");
    assert!(w.metrics().contains("hydra_provisioner_silent_builders{type=\"x86_64-linux\"} 1"), "{}", w.metrics());
    assert_eq!(w.names(), [HP0]);
    // Silent for 700 s (watchdogReplace 600), busy as far as the runner
    // knows: its service is stopped, it is destroyed, and its step's demand
    // creates a replacement.
    let queue = [("aaaa-plain.drv", "", Some(HP0), 0), ("bbbb-plain.drv", "", None, 0)];
    w.set(&queue, &[(HP0, T0 + 400)], T0 + 1100);
    w.ok_pass(T0 + 1100);
    assert_eq!(w.names(), [HP1]);
    let stop = w.call_index(&["ssh", HP0, "systemctl"]).expect("service stopped");
    let destroy = w.call_index(&["destroy", HP0]).expect("destroyed");
    assert!(stop < destroy);
    assert!(
        w.metrics()
            .contains("hydra_provisioner_builder_service_stops_total{type=\"x86_64-linux\",reason=\"watchdog\"} 1")
    );
}

#[test]
fn a_builder_running_a_step_on_its_last_try_is_never_stopped() {
    let w = World::new(json!({"gracePeriod": 0}));
    w.set(&[("aaaa-plain.drv", "", None, 0)], &[], T0);
    w.ok_pass(T0);
    // Silent past watchdogReplace, but its step has used 4 of its 5 tries.
    w.set(&[("aaaa-plain.drv", "", Some(HP0), 4)], &[(HP0, T0 + 100)], T0 + 1000);
    let stderr = w.ok_pass(T0 + 1000);
    assert!(stderr.contains("4 of its 5 tries"), "{stderr}");
    assert_eq!(w.names(), [HP0]);
    assert!(w.call_index(&["systemctl"]).is_none());
}

/// nix/builder.nix applied to the arguments a deployment gets.
fn builder_module(args: &str) -> Value {
    let expr = format!("(import {}/nix/builder.nix {{ {args} }}) {{ }}", common::root().display());
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--store", "dummy://", "-E", &expr])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_builder_module_configures_the_upstream_service_from_the_nixops_arguments() {
    if !common::have_nix() {
        return;
    }
    let m = builder_module(
        r#"type = "x86_64-linux:big-parallel,kvm"; tag = "hp"; hostname = "hp-3";
           runnerEndpoint = "https://hydra.example.org:50051"; tokenPath = "/run/keys/t";
           maxJobs = "4"; speedFactor = "1.5";"#,
    );
    assert_eq!(m["networking"]["hostName"], "hp-3");
    let b = &m["services"]["hydra-queue-builder-dev"];
    assert_eq!(b["enable"], true);
    assert_eq!(b["queueRunnerAddr"], "https://hydra.example.org:50051");
    assert_eq!(b["authorizationFile"], "/run/keys/t");
    assert_eq!(b["settings"]["systems"], json!(["x86_64-linux", "i686-linux"]));
    assert_eq!(b["settings"]["supportedFeatures"], json!(["big-parallel", "kvm"]));
    assert_eq!(b["settings"]["mandatoryFeatures"], json!(["big-parallel", "kvm"]));
    assert_eq!((b["settings"]["maxJobs"].clone(), b["settings"]["speedFactor"].clone()), (json!(4), json!(1.5)));
    // Without a token path (mTLS) and for a plain type.
    let m = builder_module(r#"type = "aarch64-linux"; hostname = "hp-0"; runnerEndpoint = "h:1";"#);
    let b = &m["services"]["hydra-queue-builder-dev"];
    assert_eq!(b["authorizationFile"], Value::Null);
    assert_eq!(b["settings"]["systems"], json!(["aarch64-linux"]));
    assert_eq!(b["settings"]["supportedFeatures"], json!([]));
}
