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

/// A derivation requiring `big-parallel`, instantiated by `nix-instantiate`
/// offline into a store under `root`; its bare name and bytes.
fn instantiated_drv(root: &Path) -> (String, Vec<u8>) {
    let expr = r#"derivation { name = "chromium"; system = "x86_64-linux"; builder = "/bin/sh";
                  args = [ "-c" "true" ]; requiredSystemFeatures = [ "big-parallel" ]; }"#;
    let out = Command::new("nix-instantiate").arg("--store").arg(root).args(["-E", expr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store_path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let name = store_path.rsplit('/').next().unwrap().to_string();
    let bytes = std::fs::read(root.join(store_path.trim_start_matches('/'))).unwrap();
    (name, bytes)
}

#[test]
fn feature_demand_comes_from_a_drv_written_by_nix_instantiate() {
    if !common::have_nix() {
        return;
    }
    let w = World::new(json!({}));
    let (name, bytes) = instantiated_drv(&w.path().join("nix-root"));
    w.set(&[(name.as_str(), "", None, 0)], &[], T0);
    // The real file replaces the one `set` wrote (which requires nothing).
    std::fs::write(w.path().join("store").join(&name), bytes).unwrap();
    w.ok_pass(T0);
    assert_eq!(w.names(), [HP0]);
    let set_args = w.calls_of("set-args");
    assert!(set_args[0].windows(2).any(|p| p == ["type", "x86_64-linux:big-parallel"]), "{set_args:?}");
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

// ---- Simulation: `[hydra] runner = "rust"` ----

use crate::simulation::{Collect, MIXED_FLEET, arbitrary_trace, assert_conserved, read_dir_sorted, simulate};
use hydra_provisioner::engine::Plan;
use hydra_provisioner::model::Observation;
use hydra_provisioner::sim::{self, Observer, Scenario, SimTime, StepLine};
use hydra_provisioner::trace::TraceReader;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// One provisioned x86_64-linux type of one slot per machine, booting in
/// 60 s and deploying in 120 s, retired as soon as it is idle.
const RUST_ONE_SLOT: &str = r#"
trace = "unused.csv"
seed = SEED
[hydra]
runner = "rust"
service_stop = 30
silent_per_hour = SILENT
silence_detection = 900
[provisioner]
billing = "per-second"
watchdogReport = 100000
watchdogReplace = 100000
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

fn rust_one_slot(seed: u64, silent_per_hour: f64) -> String {
    RUST_ONE_SLOT.replace("SEED", &seed.to_string()).replace("SILENT", &silent_per_hour.to_string())
}

#[test]
fn a_builder_retired_while_a_step_reached_it_aborts_the_step_which_retries_60_s_later_with_its_try_counted() {
    // Static builder `s` runs step 1 from 0 to 860. The pass at 300 creates
    // `hydra-provisioned-0`: boot 60 s and deploy 120 s, and it joins the
    // runner at 480, when its deploy ends (no machines file, no reload
    // delay): step 2 runs 480-580. The pass at 780 sees it idle and retires
    // it (gracePeriod 0): its service stops 30 s later, at 810. Step 3
    // arrives at 790 and the runner gives it to the retiring builder (the
    // static one is full): the stop aborts it, using its first try; it is
    // retried 60 s after the abort, at 870, on `s` (free since 860).
    let scenario =
        rust_one_slot(1, 0.0) + "[[static_machines]]\nname = \"s\"\nsystems = [\"x86_64-linux\"]\nmax_jobs = 1\n";
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,860\n2,0,x86_64-linux,100\n\
                 3,790,x86_64-linux,100\n";
    let (summary, c) = simulate(&scenario, trace);
    let line = |id: u64| c.lines.iter().find(|l| l.id == id).unwrap().clone();
    assert_eq!((line(2).started, line(2).machine.as_deref()), (Some(480_000), Some("hydra-provisioned-0")));
    let three = line(3);
    assert_eq!((three.started, three.attempts, three.end.as_str()), (Some(790_000), 2, "succeeded"));
    assert_eq!((three.finished, three.machine.as_deref()), (Some(970_000), Some("s")), "{three:?}");
    assert_eq!((summary.stability.aborted_steps, summary.stability.retries), (1, 1));
    assert_eq!(summary.stability.builder_service_stops, 1);
    let events: Vec<(i64, &str)> =
        c.lifecycle.iter().filter(|(_, m, _)| m == "hydra-provisioned-0").map(|(t, _, e)| (*t, e.as_str())).collect();
    assert_eq!(
        events,
        [
            (300_000, "create"),
            (480_000, "joined the runner"),
            (480_000, "deployed"),
            (810_000, "service stopped: left the runner"),
            (810_000, "destroy"),
        ]
    );
    assert_eq!(summary.cost.billed_machine_hours, hydra_provisioner::metrics::round3(510.0 / 3600.0));
}

#[test]
fn an_idle_retired_builder_that_got_a_step_since_the_status_was_read_is_spared() {
    // `hydra-provisioned-0` (x86_64-linux) runs step 1 from 480 to 580. The
    // pass at 780 retires it, idle, and creates `hydra-provisioned-1` for
    // the aarch64-linux step 2, whose deploy makes the pass last until 960.
    // Step 3 arrives at 800 and goes to the idle builder the pass retired:
    // at the pass's end the re-check finds it busy and spares it (no
    // service stop, no destroy), and step 3 finishes there, unaborted.
    let scenario = rust_one_slot(1, 0.0)
        + r#"
[provisioner.systemTypes."aarch64-linux"]
maxMachines = 1
runnablesPerMachine = 1
[cloud."aarch64-linux"]
boot_median = 60
boot_spread = 0
deploy = 120
"#;
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,100\n2,700,aarch64-linux,100\n\
                 3,800,x86_64-linux,500\n";
    let (summary, c) = simulate(&scenario, trace);
    let line = |id: u64| c.lines.iter().find(|l| l.id == id).unwrap().clone();
    let three = line(3);
    assert_eq!((three.started, three.finished, three.attempts), (Some(800_000), Some(1_300_000), 1), "{three:?}");
    assert_eq!(three.machine.as_deref(), Some("hydra-provisioned-0"));
    assert_eq!(line(2).started, Some(960_000), "the new builder joins when its deploy ends");
    assert_eq!((summary.stability.retire_race_caught, summary.stability.aborted_steps), (1, 0));
    let events: Vec<(i64, &str)> =
        c.lifecycle.iter().filter(|(_, m, _)| m == "hydra-provisioned-0").map(|(t, _, e)| (*t, e.as_str())).collect();
    assert_eq!(events[3], (960_000, "spared: given a step since the status was read"), "{events:?}");
    assert!(events.iter().all(|(t, e)| *e != "destroy" || *t >= 1_300_000), "destroyed while busy: {events:?}");
}

/// Collects step lines and lifecycle events, and every pass's documents.
#[derive(Default)]
struct WithPasses {
    collect: Collect,
    passes: Vec<(i64, Value)>,
}

impl Observer for WithPasses {
    fn step(&mut self, l: &StepLine<'_>) {
        self.collect.step(l);
    }
    fn lifecycle(&mut self, at: SimTime, machine: &str, machine_type: &str, event: &str) {
        self.collect.lifecycle(at, machine, machine_type, event);
    }
    fn pass(&mut self, _index: u64, status: &Value, observation: &Observation, _plan: &Plan) {
        self.passes.push((observation.status.time.unwrap_or(0), status.clone()));
    }
}

#[test]
fn a_silent_builder_keeps_its_slots_and_its_step_until_the_transport_notices() {
    // One builder (joined at 480) runs a step of 200 s; with seed 3 it goes
    // silent at 545.374 s, before the step's end at 680. Until the runner
    // drops it 900 s later the step does not finish, the slot stays taken
    // (step 2 waits: maxMachines 1), its `lastPing` stays where it was; at
    // the drop the step is aborted and retried 60 s later with its try
    // counted.
    let scenario = Scenario::parse(&rust_one_slot(3, 6.0), "t.toml", Path::new(".")).unwrap();
    let trace = "step_id,submitted_at,system,duration\n1,0,x86_64-linux,200\n2,600,x86_64-linux,10\n";
    let mut o = WithPasses::default();
    sim::run(&scenario, &mut TraceReader::new(trace.as_bytes(), "t.csv"), &mut o).unwrap();
    let at = |what: &str| o.collect.lifecycle.iter().find(|(_, _, e)| e.starts_with(what)).map(|(t, ..)| *t);
    let silent = at("went silent").expect("the builder went silent");
    assert!((480_000..680_000).contains(&silent), "silent at {silent}: pick another seed");
    assert_eq!(at("dropped by the runner"), Some(silent + 900_000));
    let one = o.collect.lines.iter().find(|l| l.id == 1).unwrap();
    assert_eq!(one.started, Some(480_000));
    assert!(one.attempts >= 2, "{one:?}");
    assert!(one.finished.unwrap() >= silent + 960_000 + 200_000, "a hung step finished: {one:?}");
    let two = o.collect.lines.iter().find(|l| l.id == 2).unwrap();
    assert!(two.started.unwrap() >= silent + 900_000, "step 2 started while the silent builder held the slot: {two:?}");
    // The passes in the silence see the builder busy, its pings stopped.
    let epoch = 1_500_000_000;
    let silent_s = epoch + silent / 1000;
    let mut seen = 0;
    for (time, docs) in &o.passes {
        if *time <= silent_s + 1 || *time >= silent_s + 900 {
            continue;
        }
        let b = &docs["machines"]["machines"]["hydra-provisioned-0"];
        assert_eq!(b["stats"]["currentJobs"], 1, "{docs}");
        let last_ping = b["stats"]["lastPing"].as_i64().unwrap();
        assert!(last_ping <= silent_s && last_ping > silent_s - 11, "{last_ping} vs {silent_s}");
        assert_eq!(docs["queues"]["queues"]["x86_64-linux"].as_array().unwrap().len(), 2, "{docs}");
        seen += 1;
    }
    assert!(seen >= 2, "passes in the silence: {seen}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn the_rust_runner_model_loses_no_step(trace in arbitrary_trace(), horizon in proptest::option::of(600u32..20000)) {
        let horizon = horizon.map_or(String::new(), |h| format!("horizon = {h}"));
        // The C++ model's mixed fleet, served and simulated as the Rust runner's,
        // with builders going silent and a watchdog quick to replace them.
        let scenario = MIXED_FLEET.replace("HORIZON", &horizon).replace(
            "[provisioner]\n",
            "[hydra]\nrunner = \"rust\"\nsilent_per_hour = 2\nsilence_detection = 600\n\
             [provisioner]\nwatchdogReport = 60\nwatchdogReplace = 300\n",
        );
        prop_assert!(scenario.contains("runner = \"rust\""));
        let ids: BTreeSet<u64> = (1..trace.lines().count() as u64).collect();
        // Every pass's documents are read back through the production reader.
        let (summary, c) = simulate(&scenario, &trace);
        assert_conserved(&summary, &c.lines, &ids);
        prop_assert!(c.lines.iter().filter(|l| l.kind == "riscv64-linux").all(|l| l.started.is_none()));
    }
}

#[test]
fn the_rust_runner_model_gives_the_same_bytes_for_the_same_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let quick_start = std::fs::read_to_string(common::root().join("scenarios/quick-start.toml")).unwrap();
    let trace = common::root().join("traces/quick-start.csv");
    let scenario = quick_start.replace("\"../traces/quick-start.csv\"", &format!("{:?}", trace.display().to_string()))
        + "\n[hydra]\nrunner = \"rust\"\nsilent_per_hour = 0.5\n";
    let file = common::write(tmp.path(), "rust.toml", &scenario);
    let mut stdouts = vec![];
    for (name, seed) in [("a", "7"), ("b", "7"), ("c", "8")] {
        let out = common::bin()
            .args(["simulate", file.to_str().unwrap(), "--record-passes", "--seed", seed, "--out"])
            .arg(tmp.path().join(name))
            .assert()
            .success();
        stdouts.push(out.get_output().stdout.clone());
    }
    let (a, b, c) = (
        read_dir_sorted(&tmp.path().join("a")),
        read_dir_sorted(&tmp.path().join("b")),
        read_dir_sorted(&tmp.path().join("c")),
    );
    assert_eq!(a, b, "same seed, same files");
    assert_eq!(stdouts[0], stdouts[1]);
    assert_ne!(a, c, "another seed changes the run");
    let stdout = String::from_utf8(stdouts[0].clone()).unwrap();
    assert!(stdout.contains("services stopped"), "{stdout}");
    assert!(stdout.contains("runner           rust"), "{stdout}");
    let summary: Value = serde_json::from_slice(&a.iter().find(|(n, _)| n == "summary.json").unwrap().1).unwrap();
    assert_eq!(summary["runner"], "rust");
    // The recorded documents are the runner's three, in its shape.
    let (_, pass) = a.iter().find(|(n, _)| n.ends_with("00002.json")).unwrap();
    let pass: Value = serde_json::from_slice(pass).unwrap();
    assert!(pass["status"]["status"]["queueRunner"]["queueStats"].is_object(), "{pass}");
    assert!(pass["status"]["queues"]["queues"].is_object());
    assert!(pass["status"]["machines"]["machines"]["builder.example.org"]["stats"]["lastPing"].is_i64());
    // The recorded passes replay under their own configuration to the same plans.
    let out = tmp.path().join("a");
    let replay = common::bin()
        .arg("replay")
        .arg(out.join("passes"))
        .arg("--config")
        .arg(out.join("conf.json"))
        .arg("--json")
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&replay.get_output().stdout).unwrap();
    assert_eq!(report["differing_passes"], 0, "{report:#}");
    assert!(report["passes"].as_u64().unwrap() > 10);
}

#[test]
fn scenarios_name_what_is_wrong_with_their_runner() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, provisioner, want) in [
        ("[hydra]\nrunner = \"go\"\n", "", "hydra.runner: must be `cpp` or `rust`"),
        ("[hydra]\nrunner = \"cpp\"\nsilent_per_hour = 1\n", "", "set hydra.runner = \"rust\""),
        ("[hydra]\nrunner = \"rust\"\nservice_stop = -1\n", "", "hydra.service_stop: must be from 0 to 60"),
        ("[hydra]\nrunner = \"cpp\"\n", "runner = \"rust\"\n", "the provisioner must serve the runner simulated"),
    ] {
        let text = format!(
            "trace = \"t.csv\"\n{extra}[provisioner]\n{provisioner}[provisioner.systemTypes.\"x86_64-linux\"]\nmaxMachines = 1\n"
        );
        let file = common::write(tmp.path(), "s.toml", &text);
        common::write(tmp.path(), "t.csv", "step_id,submitted_at,system,duration\n1,0,x86_64-linux,1\n");
        let out = common::bin().arg("simulate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}\n{stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
}

#[test]
fn a_sweep_over_the_runner_generation_shows_what_the_missing_drain_costs() {
    let tmp = tempfile::tempdir().unwrap();
    let quick_start = std::fs::read_to_string(common::root().join("scenarios/quick-start.toml")).unwrap();
    let trace = common::root().join("traces/quick-start.csv");
    // The silence rate applies to the Rust point only.
    let scenario = quick_start.replace("\"../traces/quick-start.csv\"", &format!("{:?}", trace.display().to_string()))
        + "\n[hydra]\nsilent_per_hour = 0.5\n";
    common::write(tmp.path(), "base.toml", &scenario);
    let sweep = common::write(
        tmp.path(),
        "sweep.toml",
        "version = 1\nscenario = \"base.toml\"\n[[axis]]\npath = \"runner\"\nvalues = [\"cpp\", \"rust\"]\n",
    );
    let out = tmp.path().join("out");
    common::bin().arg("sweep").arg(&sweep).arg("--out").arg(&out).assert().success();
    let points = std::fs::read_to_string(out.join("points.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(points.as_bytes());
    let header = rows.headers().unwrap().clone();
    assert_eq!(&header[1], "runner", "{points}");
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.iter().map(|r| r[1].to_string()).collect::<Vec<_>>(), ["cpp", "rust"]);
    // The same policy costs differently without a drain and with builders
    // joining at their deploy's end: the rows must differ.
    let cost = column("cost_dollars");
    assert_ne!(rows[0][cost], rows[1][cost], "{points}");
    // The C++ row is the base scenario's simulate, untouched by the axis.
    let single = common::bin().args(["simulate", "--json"]).arg(tmp.path().join("base.toml")).output().unwrap();
    let summary: Value = serde_json::from_slice(&single.stdout).unwrap();
    assert_eq!(rows[0][cost].parse::<f64>().unwrap(), summary["cost"]["dollars"].as_f64().unwrap());
}
