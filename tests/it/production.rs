//! Production tests: `hydra-provisioner run` against fake `nixops` and
//! `hydra-queue-runner` (tests/fakes/), which keep their state in a temp
//! directory and print what the real tools print. Every pass runs the real
//! binary with `--now`, so the tests step time through grace periods and
//! billing hours without waiting.

use crate::common;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T0: i64 = 1_700_000_000;
const TYPE: &str = "x86_64-linux";

/// A temp directory with a config, the fakes' state and the provisioner's files.
struct World {
    dir: tempfile::TempDir,
}

/// One finished pass.
struct Pass {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One deployment as the fake NixOps holds it.
#[derive(Debug)]
struct FakeDeployment {
    name: String,
    tagged: bool,
    state: Option<u64>,
    ip: Option<String>,
    nix_exprs: Vec<String>,
}

fn python() -> String {
    // The system interpreter starts several times faster than a version-manager shim.
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3".into() } else { "python3".into() }
}

fn fake(name: &str) -> String {
    common::root().join("tests/fakes").join(name).display().to_string()
}

impl World {
    /// One machine type, `x86_64-linux`, with `type_config` merged over
    /// defaults, and `top` merged over the top-level config.
    fn new(type_config: Value, top: Value) -> World {
        let dir = tempfile::tempdir().unwrap();
        let w = World { dir };
        std::fs::create_dir_all(w.nixops_dir().join("knobs")).unwrap();
        std::fs::create_dir_all(w.queue_dir()).unwrap();
        common::write(w.path(), "deployment.nix", "{ type, tag, ... }: { machine = { ... }: { }; }\n");
        let mut t = json!({"nixopsExpr": "deployment.nix", "maxMachines": 3, "runnablesPerMachine": 10,
                           "maxJobs": 2, "gracePeriod": 600});
        merge(&mut t, type_config);
        let mut config = json!({
            "nixopsCommand": [python(), fake("nixops")],
            "statusCommand": [python(), fake("hydra-queue-runner"), "--status"],
            "machinesFile": w.path().join("machines").display().to_string(),
            "stateDir": w.path().join("state").display().to_string(),
            "commandTimeout": 60,
            "systemTypes": {TYPE: t},
        });
        merge(&mut config, top);
        common::write(w.path(), "conf.json", &serde_json::to_string_pretty(&config).unwrap());
        w.set_status(0, &[], T0);
        w
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn nixops_dir(&self) -> PathBuf {
        self.path().join("nixops")
    }
    fn queue_dir(&self) -> PathBuf {
        self.path().join("queue")
    }
    fn config(&self) -> PathBuf {
        self.path().join("conf.json")
    }

    /// Writes a status as the C++ queue runner would report it: `runnable`
    /// steps of x86_64-linux; every machine of the current machines file
    /// enabled; machines in `busy` (by IP) running that many jobs, listed
    /// or not (a delisted machine finishes its steps).
    fn set_status(&self, runnable: u64, busy: &[(&str, u64)], now: i64) {
        let mut machines = serde_json::Map::new();
        for ip in self.listed_ips() {
            let jobs = busy.iter().find(|(b, _)| *b == ip).map_or(0, |(_, j)| *j);
            machines.insert(format!("ssh://root@{ip}"), json!({"enabled": true, "currentJobs": jobs}));
        }
        for (ip, jobs) in busy {
            machines
                .entry(format!("ssh://root@{ip}"))
                .or_insert_with(|| json!({"enabled": false, "currentJobs": jobs}));
        }
        let running: u64 = busy.iter().map(|(_, j)| j).sum();
        let doc = json!({"status": "up", "time": now, "uptime": 86400, "nrRunnableSteps": runnable,
            "nrActiveSteps": running, "machineTypes": {TYPE: {"runnable": runnable, "running": running}},
            "machines": machines, "jobsets": {}});
        self.set_status_text(&doc.to_string());
    }

    fn set_status_text(&self, text: &str) {
        common::write(&self.queue_dir(), "status.json", text);
    }

    fn knob(&self, name: &str, contents: &str) {
        common::write(&self.nixops_dir().join("knobs"), name, contents);
    }

    fn clear_knob(&self, name: &str) {
        let _ = std::fs::remove_file(self.nixops_dir().join("knobs").join(name));
    }

    fn command(&self, now: i64, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hydra-provisioner"));
        cmd.arg("run").arg(self.config()).arg("--now").arg(now.to_string()).args(extra);
        cmd.env("FAKE_NIXOPS_DIR", self.nixops_dir())
            .env("FAKE_QUEUE_DIR", self.queue_dir())
            .env("FAKE_NOW", now.to_string())
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM");
        cmd
    }

    /// Runs one pass to completion.
    fn pass_with(&self, now: i64, extra: &[&str]) -> Pass {
        let out = self.command(now, extra).output().unwrap();
        let pass = Pass {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("--- pass at {now} {extra:?}: exit {}\n{}", pass.code, pass.stderr);
        pass
    }

    fn pass(&self, now: i64) -> Pass {
        self.pass_with(now, &[])
    }

    /// A pass that must succeed.
    fn ok_pass(&self, now: i64) -> Pass {
        let p = self.pass(now);
        assert_eq!(p.code, 0, "pass at {now} failed:\n{}", p.stderr);
        p
    }

    /// Starts a pass in the background.
    fn spawn(&self, now: i64) -> Child {
        self.command(now, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    /// Waits for a file the fake creates when it starts sleeping.
    fn wait_for(&self, name: &str) {
        let path = self.nixops_dir().join(name);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn deployments(&self) -> Vec<FakeDeployment> {
        let Ok(text) = std::fs::read_to_string(self.nixops_dir().join("db.json")) else { return vec![] };
        let db: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        let mut out: Vec<FakeDeployment> = db
            .values()
            .map(|d| FakeDeployment {
                name: d["name"].as_str().unwrap_or("").to_string(),
                tagged: d["args"].get("tag").and_then(Value::as_str) == Some("\"hydra-provisioned\""),
                state: d["machine"].get("state").and_then(Value::as_u64),
                ip: d["machine"].get("publicIpv4").and_then(Value::as_str).map(String::from),
                nix_exprs: d["nixExprs"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn names(&self) -> Vec<String> {
        self.deployments().into_iter().map(|d| d.name).collect()
    }

    fn ip_of(&self, name: &str) -> String {
        self.deployments().into_iter().find(|d| d.name == name).and_then(|d| d.ip).unwrap()
    }

    fn machines_file(&self) -> Option<String> {
        std::fs::read_to_string(self.path().join("machines")).ok()
    }

    /// IPs in the machines file, checking every line is well formed.
    fn listed_ips(&self) -> Vec<String> {
        let Some(text) = self.machines_file() else { return vec![] };
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(fields.len(), 8, "machines file line `{l}`");
                fields[0].strip_prefix("root@").unwrap().to_string()
            })
            .collect()
    }

    /// Every nixops invocation so far.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.nixops_dir().join("calls")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn calls_of(&self, command: &str) -> Vec<Vec<String>> {
        self.calls().into_iter().filter(|c| c[0] == command).collect()
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path().join("state/state.json")).unwrap()).unwrap()
    }

    /// Builds a fleet of `n` up, listed machines through passes under load,
    /// 300 s apart from T0; returns the time of the last pass.
    fn scale_to(&self, n: usize) -> i64 {
        let mut now = T0;
        for i in 0..n {
            now = T0 + 300 * i as i64;
            self.set_status(1000, &[], now);
            self.ok_pass(now);
        }
        assert_eq!(self.listed_ips().len(), n);
        now
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

fn provisioned(i: usize) -> String {
    format!("hydra-provisioned-{i}")
}

#[test]
fn scales_from_zero_to_n_one_creation_per_pass() {
    let w = World::new(json!({}), json!({"prometheusTextfile": "metrics/provisioner.prom"}));
    for pass in 0..4 {
        let now = T0 + 300 * pass as i64;
        w.set_status(100, &[], now);
        w.ok_pass(now);
        let expected = (pass + 1).min(3);
        assert_eq!(w.names(), (0..expected).map(provisioned).collect::<Vec<_>>(), "after pass {pass}");
        assert!(w.deployments().iter().all(|d| d.tagged && d.state == Some(3)));
        assert_eq!(w.listed_ips().len(), expected);
    }
    // Created with the config-relative expression, tagged with argstrs.
    let expr = std::fs::canonicalize(w.path().join("deployment.nix")).unwrap().display().to_string();
    assert_eq!(w.calls_of("create")[0], vec!["create", "-d", "hydra-provisioned-0", expr.as_str()]);
    assert_eq!(
        w.calls_of("set-args")[0],
        vec!["set-args", "-d", "hydra-provisioned-0", "--argstr", "type", TYPE, "--argstr", "tag", "hydra-provisioned"]
    );
    let dir = std::fs::canonicalize(w.path()).unwrap().display().to_string();
    let deploy = &w.calls_of("deploy")[0];
    assert!(
        deploy.contains(&"--check".to_string()) && deploy.contains(&format!("hydra-provisioner={dir}")),
        "{deploy:?}"
    );
    // Current machines are not redeployed, only touched.
    assert_eq!(w.calls_of("deploy").len(), 3);
    let touched = std::fs::read_to_string(w.nixops_dir().join("touched")).unwrap();
    assert!(touched.lines().filter(|l| l.ends_with("machine touch /run/keep-alive")).count() >= 3 + 3);
    let metrics = std::fs::read_to_string(w.path().join("metrics/provisioner.prom")).unwrap();
    assert!(metrics.contains("hydra_provisioner_machines{type=\"x86_64-linux\",state=\"up\"} 3"), "{metrics}");
    assert!(metrics.contains("hydra_provisioner_command_failures 0"), "{metrics}");
    let state = w.state();
    assert_eq!(state["deployments"].as_object().unwrap().len(), 3);
    assert!(state["pending_creations"].as_object().unwrap().is_empty());
}

#[test]
fn scales_in_through_paid_time_then_drain_then_destroy() {
    let w = World::new(json!({"maxMachines": 2}), json!({}));
    w.scale_to(2); // launched at T0 and T0 + 300
    let (m0, m1) = (w.ip_of(&provisioned(0)), w.ip_of(&provisioned(1)));

    // Idle and past the grace period, but paid for most of the hour: kept and listed.
    w.set_status(0, &[], T0 + 1200);
    let p = w.ok_pass(T0 + 1200);
    assert!(p.stderr.contains("paid time left"), "{}", p.stderr);
    let mut listed = w.listed_ips();
    listed.sort();
    let mut both = vec![m0.clone(), m1.clone()];
    both.sort();
    assert_eq!(listed, both, "lines come in the inventory's order");

    // Near the end of m0's hour: delisted first, not destroyed yet. m1 has
    // more than destroyPaidThreshold left: delisted and left running.
    w.set_status(0, &[], T0 + 3100);
    w.ok_pass(T0 + 3100);
    assert!(w.listed_ips().is_empty());
    assert_eq!(w.names().len(), 2);

    // Hydra has reread the file: m0 goes, m1 still has paid time.
    w.set_status(0, &[], T0 + 3200);
    w.ok_pass(T0 + 3200);
    assert_eq!(w.names(), vec![provisioned(1)]);

    w.set_status(0, &[], T0 + 3500);
    w.ok_pass(T0 + 3500);
    assert!(w.names().is_empty());
    assert_eq!(w.machines_file().unwrap(), "");
    assert_eq!(w.calls_of("destroy").len(), 2);
    assert_eq!(w.calls_of("delete").len(), 2);
    assert!(w.calls_of("destroy").iter().all(|c| c.contains(&"--confirm".to_string())));
}

#[test]
fn a_busy_machine_is_never_destroyed() {
    let w = World::new(json!({"maxMachines": 1, "gracePeriod": 0}), json!({}));
    w.scale_to(1);
    let ip = w.ip_of(&provisioned(0));
    // Unneeded, idle type, hour nearly over, long past grace: but busy.
    for now in [T0 + 3500, T0 + 7100, T0 + 10_700] {
        w.set_status(0, &[(ip.as_str(), 2)], now);
        w.ok_pass(now);
        assert_eq!(w.names(), vec![provisioned(0)], "at {now}");
        assert!(w.listed_ips().is_empty(), "a busy unneeded machine is drained, not listed");
    }
    assert!(w.calls_of("destroy").is_empty() && w.calls_of("stop").is_empty());
    // Its jobs are done: it goes.
    w.set_status(0, &[], T0 + 14_300);
    w.ok_pass(T0 + 14_300);
    assert!(w.names().is_empty());
}

#[test]
fn a_failing_deploy_is_left_out_and_replaced_after_repeated_failures() {
    let w = World::new(json!({"maxMachines": 2}), json!({"maxDeployFailures": 3}));
    w.set_status(100, &[], T0);
    w.ok_pass(T0);
    let m0 = w.ip_of(&provisioned(0));
    w.knob("fail-deploy-hydra-provisioned-1", "1");
    for now in [T0 + 300, T0 + 600, T0 + 900] {
        w.set_status(100, &[], now);
        let p = w.pass(now);
        assert_eq!(p.code, 1, "a failed deploy makes the pass fail");
        assert!(p.stderr.contains("deploy failed") && p.stderr.contains("exit status 1"), "{}", p.stderr);
        assert!(p.stderr.contains("injected"), "the failure names nixops's stderr:\n{}", p.stderr);
        assert_eq!(w.listed_ips(), vec![m0.clone()], "the failing machine is not listed");
    }
    assert_eq!(w.state()["deployments"][provisioned(1)]["deploy_failures"], 3);
    // Three failures in a row: replaced (and, its paid time nearly over, destroyed).
    w.set_status(100, &[], T0 + 3400);
    let p = w.pass(T0 + 3400);
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert_eq!(w.names(), vec![provisioned(0), provisioned(2)]);
    assert_eq!(w.listed_ips(), vec![m0, w.ip_of(&provisioned(2))]);
}

#[test]
fn a_hanging_deploy_times_out_and_the_pass_goes_on() {
    let w = World::new(json!({"maxMachines": 2}), json!({"deployTimeout": 2}));
    w.set_status(100, &[], T0);
    w.ok_pass(T0);
    w.knob("sleep-deploy-hydra-provisioned-1", "release");
    w.set_status(100, &[], T0 + 300);
    let p = w.pass(T0 + 300);
    assert_eq!(p.code, 1);
    assert!(p.stderr.contains("timed out"), "{}", p.stderr);
    // The other machine was touched and the file written without the hung one.
    assert_eq!(w.listed_ips(), vec![w.ip_of(&provisioned(0))]);
    assert!(std::fs::read_to_string(w.nixops_dir().join("touched")).unwrap().contains("hydra-provisioned-0"));
}

#[test]
fn a_hanging_status_command_holds_the_fleet() {
    let w = World::new(json!({"maxMachines": 1}), json!({"commandTimeout": 2}));
    w.scale_to(1);
    let before = w.machines_file();
    common::write(&w.queue_dir(), "hang", "");
    let p = w.pass(T0 + 7100);
    assert_eq!(p.code, 1);
    assert!(p.stderr.contains("timed out"), "{}", p.stderr);
    assert_eq!(w.names(), vec![provisioned(0)]);
    assert_eq!(w.machines_file(), before);
}

/// Kills a background pass once the fake reports `marker`, then checks the
/// next passes converge: nothing untagged or forgotten, a valid file.
fn crash_then_converge(knob: &str, marker: &str) {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    w.knob(knob, "release");
    w.set_status(100, &[], T0);
    let mut child = w.spawn(T0);
    w.wait_for(marker);
    child.kill().unwrap();
    child.wait().unwrap();
    w.clear_knob(knob);
    // Let the orphaned fake notice and stop.
    common::write(&w.nixops_dir(), "release", "");

    // A leftover that NixOps reports not running goes once notRunningTimeout (900 s) is over.
    for now in [T0 + 300, T0 + 600, T0 + 1500] {
        w.set_status(100, &[], now);
        w.ok_pass(now);
    }
    let deployments = w.deployments();
    assert!(deployments.iter().all(|d| d.tagged), "orphaned deployment: {deployments:?}");
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0].state, Some(3));
    assert_eq!(w.listed_ips(), vec![deployments[0].ip.clone().unwrap()]);
    assert!(w.state()["pending_creations"].as_object().unwrap().is_empty());
}

#[test]
fn a_crash_between_create_and_set_args_is_adopted_next_pass() {
    crash_then_converge("sleep-set-args", "set-args-started-hydra-provisioned-0");
}

#[test]
fn a_crash_during_a_deploy_converges_next_pass() {
    crash_then_converge("sleep-deploy", "deploy-started-hydra-provisioned-0");
}

#[test]
fn two_passes_at_once_act_once() {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    w.knob("sleep-deploy", "release");
    w.set_status(100, &[], T0);
    let mut first = w.spawn(T0);
    w.wait_for("deploy-started-hydra-provisioned-0");
    let second = w.pass(T0);
    assert_eq!(second.code, 0);
    assert!(second.stderr.contains("another pass holds"), "{}", second.stderr);
    common::write(&w.nixops_dir(), "release", "");
    assert!(first.wait().unwrap().success());
    assert_eq!(w.calls_of("create").len(), 1);
    assert_eq!(w.calls_of("deploy").len(), 1);
    let status_reads = std::fs::read_to_string(w.queue_dir().join("calls")).unwrap();
    assert_eq!(status_reads.lines().count(), 1, "the second pass read nothing");
    assert_eq!(w.listed_ips().len(), 1);
}

/// The time at which [`idle_fleet`]'s machine is due for destruction.
const DUE: i64 = T0 + 3570;

/// A fleet of one idle machine, delisted and drained, whose paid time is
/// nearly over at [`DUE`]: a pass that can read the queue destroys it then.
fn idle_fleet() -> (World, Option<String>) {
    let w = World::new(json!({"maxMachines": 1, "gracePeriod": 0}), json!({}));
    w.scale_to(1);
    w.set_status(0, &[], T0 + 3500);
    w.ok_pass(T0 + 3500);
    assert!(w.listed_ips().is_empty(), "delisted first");
    w.set_status(0, &[], DUE);
    let before = w.machines_file();
    (w, before)
}

#[test]
fn status_down_destroys_nothing() {
    let (w, before) = idle_fleet();
    common::write(&w.queue_dir(), "down", "");
    let p = w.pass(DUE);
    assert_eq!(p.code, 1, "the status command failed");
    assert!(p.stderr.contains("queue runner down"), "{}", p.stderr);
    assert_eq!(w.names(), vec![provisioned(0)]);
    assert_eq!(w.machines_file(), before);

    std::fs::remove_file(w.queue_dir().join("down")).unwrap();
    w.set_status_text(r#"{"status": "down"}"#);
    let p = w.pass(DUE);
    assert_eq!(p.code, 0, "a status that says down is an answer:\n{}", p.stderr);
    assert_eq!(w.names(), vec![provisioned(0)]);
    assert!(w.calls_of("destroy").is_empty());
}

#[test]
fn garbled_status_destroys_nothing() {
    let (w, before) = idle_fleet();
    w.set_status_text("{\"status\": \"up\", \"machineTypes\": {\"x86_64-linux\": {\"runnable\": \"lots\"");
    let p = w.pass(DUE);
    assert_eq!(p.code, 1);
    assert!(p.stderr.contains("garbled"), "{}", p.stderr);
    assert_eq!(w.names(), vec![provisioned(0)]);
    assert_eq!(w.machines_file(), before);
    assert!(w.calls_of("destroy").is_empty() && w.calls_of("stop").is_empty());
    // The same fleet with a readable status is scaled in: the hold was the status's doing.
    w.set_status(0, &[], DUE);
    w.ok_pass(DUE);
    assert!(w.names().is_empty());
}

#[test]
fn a_failed_machines_file_write_stops_and_destroys_nothing() {
    let (w, _) = idle_fleet();
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(w.config()).unwrap()).unwrap();
    config["updateCommand"] = json!(["/bin/sh", "-c", "cat >/dev/null; echo 'disk full' >&2; exit 3"]);
    common::write(w.path(), "conf.json", &config.to_string());
    let p = w.pass(DUE);
    assert_eq!(p.code, 1);
    assert!(p.stderr.contains("exit status 3: disk full"), "{}", p.stderr);
    assert!(p.stderr.contains("not stopped or destroyed"), "{}", p.stderr);
    assert_eq!(w.names(), vec![provisioned(0)]);
    assert!(w.calls_of("destroy").is_empty());
}

#[test]
fn dry_run_changes_nothing() {
    let (w, _) = idle_fleet();
    w.set_status(0, &[], DUE);
    let snapshot =
        |w: &World| ["nixops/db.json", "machines", "state/state.json"].map(|f| std::fs::read(w.path().join(f)).ok());
    let before = snapshot(&w);
    let calls_before = w.calls().len();
    let p = w.pass_with(DUE, &["--dry-run"]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert!(p.stdout.contains("destroy and delete hydra-provisioned-0"), "{}", p.stdout);
    assert_eq!(snapshot(&w), before);
    let new_calls: Vec<String> = w.calls()[calls_before..].iter().map(|c| c[0].clone()).collect();
    assert_eq!(new_calls, vec!["export"]);
}

#[test]
fn a_vanished_instance_is_noticed_and_replaced() {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    w.scale_to(1);
    let old_ip = w.ip_of(&provisioned(0));
    w.knob("vanish-hydra-provisioned-0", "1");
    w.set_status(100, &[], T0 + 600);
    w.ok_pass(T0 + 600);
    // Replaced at once; the vanished one is delisted and cleaned up once it
    // has been missing for notRunningTimeout (900 s).
    assert_eq!(w.names(), vec![provisioned(0), provisioned(1)]);
    assert!(!w.listed_ips().contains(&old_ip));
    assert_eq!(w.listed_ips(), vec![w.ip_of(&provisioned(1))]);
    w.set_status(100, &[], T0 + 1500);
    w.ok_pass(T0 + 1500);
    assert_eq!(w.names(), vec![provisioned(1)]);
}

#[test]
fn the_machines_file_can_go_to_an_update_command() {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    let out = w.path().join("piped");
    let script = format!("cat > {}", out.display());
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(w.config()).unwrap()).unwrap();
    config["updateCommand"] = json!(["/bin/sh", "-c", script]);
    common::write(w.path(), "conf.json", &config.to_string());
    w.set_status(100, &[], T0);
    w.ok_pass(T0);
    let text = std::fs::read_to_string(out).unwrap();
    assert!(
        text.starts_with(&format!("root@{} x86_64-linux,i686-linux - 2 1 - - ", w.ip_of(&provisioned(0)))),
        "{text}"
    );
    assert!(w.machines_file().is_none());
}

#[test]
fn a_rust_queue_runner_status_url_is_read() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = r#"{"queueRunner": {"status": "up", "time": "2023-11-14T22:13:20Z", "uptime": 90000.5,
        "queueStats": {"x86_64-linux": {"activeRunnable": 3, "totalRunnable": 45}}}, "machines": {}}"#;
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).unwrap();
        request
    });
    let w = World::new(json!({"maxMachines": 5}), json!({"statusUrl": format!("http://127.0.0.1:{port}/status")}));
    let p = w.pass_with(T0, &["--dry-run"]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /status HTTP/1.1\r\n"), "{request}");
    assert!(p.stdout.contains("x86_64-linux: 42 runnable, wants 5"), "{}", p.stdout);
}

#[test]
fn a_bare_conf_nix_is_evaluated_and_run() {
    if !common::have_nix() {
        eprintln!("notice: nix-instantiate is not installed; skipping the conf.nix evaluation test");
        return;
    }
    let w = World::new(json!({}), json!({}));
    let conf = format!(
        r#"{{
  systemTypes.x86_64-linux = {{
    nixopsExpr = builtins.toPath ./deployment.nix;
    maxMachines = 2;
    nixPath = [ "nixpkgs=/srv/nixpkgs" ];
  }};
  statusCommand = [ "{python}" "{queue}" "--status" ];
  nixopsCommand = [ "{python}" "{nixops}" ];
  machinesFile = "{dir}/machines";
  stateDir = "{dir}/state";
}}
"#,
        python = python(),
        queue = fake("hydra-queue-runner"),
        nixops = fake("nixops"),
        dir = w.path().display()
    );
    let conf_path = common::write(w.path(), "conf.nix", &conf);
    w.set_status(100, &[], T0);
    // Called as the original was: `hydra-provisioner conf.nix`.
    let out = Command::new(env!("CARGO_BIN_EXE_hydra-provisioner"))
        .arg(&conf_path)
        .args(["--now", &T0.to_string()])
        .env("FAKE_NIXOPS_DIR", w.nixops_dir())
        .env("FAKE_QUEUE_DIR", w.queue_dir())
        .env("FAKE_NOW", T0.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expr = std::fs::canonicalize(w.path().join("deployment.nix")).unwrap().display().to_string();
    assert_eq!(w.deployments()[0].nix_exprs, vec![expr]);
    let deploy = &w.calls_of("deploy")[0];
    let i = deploy.iter().position(|a| a == "-I").unwrap();
    assert_eq!(deploy[i + 1], "nixpkgs=/srv/nixpkgs");
    assert_eq!(w.listed_ips().len(), 1);
}

#[test]
fn bad_config_is_exit_2_and_touches_nothing() {
    let w = World::new(json!({"runnablesPerMachine": 0}), json!({}));
    let p = w.pass(T0);
    assert_eq!(p.code, 2);
    assert!(p.stderr.contains("runnablesPerMachine"), "{}", p.stderr);
    assert!(w.calls().is_empty());
}

#[test]
fn a_failed_inventory_changes_nothing() {
    let w = World::new(json!({}), json!({}));
    w.knob("fail-export", "1");
    w.knob("traceback", "1");
    w.set_status(100, &[], T0);
    let p = w.pass(T0);
    assert_eq!(p.code, 1);
    assert!(p.stderr.contains("nothing was changed") && p.stderr.contains("Exception: export"), "{}", p.stderr);
    assert!(w.calls_of("create").is_empty());
    assert!(w.machines_file().is_none());
}

#[test]
fn nix_files_parse() {
    if !common::have_nix() {
        eprintln!("notice: nix-instantiate is not installed; skipping the Nix parse test");
        return;
    }
    let files = [
        "default.nix",
        "nix/auto-shutdown.nix",
        "nix/module.nix",
        "nix/package.nix",
        "scenarios/example/conf.nix",
        "scenarios/example/deployment.nix",
    ];
    for f in files {
        let out = Command::new("nix-instantiate")
            .args(["--parse", "--store", "dummy://"])
            .arg(common::root().join(f))
            .output()
            .unwrap();
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Evaluates a file of tests/nix/ strictly to JSON with `args` (`--argstr`).
fn eval_test_nix(file: &str, args: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new("nix-instantiate");
    cmd.args(["--eval", "--strict", "--json", "--store", "dummy://"]).arg(common::root().join("tests/nix").join(file));
    for (k, v) in args {
        cmd.args(["--argstr", k, v]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn auto_shutdown_powers_off_only_after_an_hour_without_keep_alive() {
    if !common::have_nix() {
        eprintln!("notice: nix-instantiate is not installed; skipping the auto-shutdown test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keep_alive = dir.path().join("keep-alive");
    let module = eval_test_nix("eval-auto-shutdown.nix", &[("keepAliveFile", &keep_alive.display().to_string())]);
    let script = module["script"].as_str().unwrap();
    let powered_off = dir.path().join("powered-off");
    let bin = dir.path().join("bin");
    let systemctl = common::write(&bin, "systemctl", &format!("#!/bin/sh\necho \"$@\" >> {}\n", powered_off.display()));
    std::fs::set_permissions(&systemctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = || {
        let out = Command::new("/bin/sh").arg("-c").arg(script).env("PATH", &path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(&powered_off).ok()
    };
    assert_eq!(run(), None, "no keep-alive file yet: a fresh boot");
    let file = std::fs::File::create(&keep_alive).unwrap();
    assert_eq!(run(), None, "just touched");
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3000)).unwrap();
    assert_eq!(run(), None, "50 minutes old");
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3700)).unwrap();
    assert_eq!(run().as_deref(), Some("poweroff\n"), "over an hour old");
}

/// Hydra's dumps of late 2022 to mid 2023 have `machines` (and
/// `machineTypes`) as `null` or `{}` while machines build: a listed machine
/// absent from such a status is unknown, not idle, and is never destroyed
/// on that evidence, in either mode; once nothing runs, it goes.
#[test]
fn a_status_without_machines_never_gets_a_building_machine_destroyed() {
    for (quirks, section) in [("fixed", "null"), ("fixed", "{}"), ("original", "null"), ("original", "{}")] {
        let w = World::new(json!({"maxMachines": 1, "gracePeriod": 0}), json!({"quirks": quirks}));
        w.scale_to(1);
        let null_era = |now: i64, active: u64| {
            w.set_status_text(&format!(
                r#"{{"status": "up", "time": {now}, "uptime": 86400, "nrRunnableSteps": 0, "nrActiveSteps": {active},
                    "machines": {section}, "jobsets": {section}, "machineTypes": {section}}}"#
            ));
        };
        // Unneeded, idle type, hour nearly over, long past grace and drain:
        // it may be building, so it is drained and kept.
        for now in [T0 + 3500, T0 + 3560, T0 + 7100, T0 + 10_700] {
            null_era(now, 4);
            w.ok_pass(now);
            assert_eq!(w.names(), vec![provisioned(0)], "{quirks} {section} at {now}");
        }
        assert!(w.listed_ips().is_empty(), "{quirks} {section}: drained");
        assert!(w.calls_of("destroy").is_empty() && w.calls_of("stop").is_empty(), "{quirks} {section}");
        // Nothing runs any more: the machine is idle and goes.
        null_era(T0 + 14_300, 0);
        w.ok_pass(T0 + 14_300);
        assert!(w.names().is_empty(), "{quirks} {section}: destroyed once nothing runs");
    }
}

/// A corrupt state file is set aside and the memory rebuilt safely, but the
/// pass says so: exit 1 and a metric, so that an alert fires.
#[test]
fn a_corrupt_state_file_fails_the_pass_and_sets_a_metric() {
    let w = World::new(json!({"maxMachines": 1}), json!({"prometheusTextfile": "metrics.prom"}));
    w.scale_to(1);
    let metrics = || std::fs::read_to_string(w.path().join("metrics.prom")).unwrap();
    assert!(metrics().contains("hydra_provisioner_state_rebuilt 0"), "{}", metrics());
    common::write(&w.path().join("state"), "state.json", "{\"deployments\": {\"hydra-provisioned-0\": [");
    w.set_status(1000, &[], T0 + 300);
    let p = w.pass(T0 + 300);
    assert_eq!(p.code, 1, "{}", p.stderr);
    assert!(p.stderr.contains("corrupt") && p.stderr.contains("state.json.corrupt"), "{}", p.stderr);
    assert!(metrics().contains("hydra_provisioner_state_rebuilt 1"), "{}", metrics());
    assert_eq!(w.names(), vec![provisioned(0)], "nothing lost");
    // The next pass has a good state file again.
    w.set_status(1000, &[], T0 + 600);
    w.ok_pass(T0 + 600);
    assert!(metrics().contains("hydra_provisioner_state_rebuilt 0"), "{}", metrics());
}

/// An address that cannot be written to the machines file (a `#`, a control
/// character) is reported, the pass fails, and the machine neither counts
/// as serving nor is recorded as listed, so a replacement is created.
#[test]
fn a_machine_whose_address_cannot_be_listed_is_reported_and_replaced() {
    for address in ["10.0.0.9#x", "10.0.0.9\u{1}", "10.0.0.9 x86_64-linux"] {
        let w = World::new(json!({"maxMachines": 1}), json!({}));
        w.knob("address-hydra-provisioned-0", address);
        w.set_status(100, &[], T0);
        w.pass(T0);
        assert!(w.listed_ips().is_empty(), "{address:?}: {:?}", w.machines_file());
        assert_eq!(w.state()["deployments"][provisioned(0)]["listed"], false, "{address:?}");
        w.set_status(100, &[], T0 + 300);
        let p = w.pass(T0 + 300);
        assert_eq!(p.code, 1, "{address:?}: {}", p.stderr);
        assert!(p.stderr.contains("cannot be written to the machines file"), "{address:?}: {}", p.stderr);
        assert_eq!(w.names(), vec![provisioned(0), provisioned(1)], "{address:?}: replaced");
        assert_eq!(w.listed_ips(), vec![w.ip_of(&provisioned(1))], "{address:?}");
        let text = w.machines_file().unwrap();
        assert!(!text.contains("10.0.0.9"), "{address:?}: {text:?}");
    }
}

fn set_config(w: &World, key: &str, value: Value) {
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(w.config()).unwrap()).unwrap();
    config[key] = value;
    common::write(w.path(), "conf.json", &config.to_string());
}

/// A pass killed right after it published a machines file that lists a
/// machine again, before it saved its state, must not leave the old
/// "delisted long ago" record that lets the next pass delist and destroy
/// the machine at once while Hydra still has it loaded.
#[test]
fn a_pass_killed_after_relisting_never_leads_to_a_same_pass_delist_and_destroy() {
    let w = World::new(json!({"maxMachines": 1, "gracePeriod": 0}), json!({}));
    let file = w.path().join("machines");
    let publish = format!("cat > {}.tmp && mv {0}.tmp {0}", file.display());
    set_config(&w, "updateCommand", json!(["/bin/sh", "-c", publish]));
    w.scale_to(1);
    let ip = w.ip_of(&provisioned(0));
    // Unneeded: delisted (paid time nearly over, so it would go next).
    w.set_status(0, &[], T0 + 3500);
    w.ok_pass(T0 + 3500);
    assert!(w.listed_ips().is_empty());
    // Needed again: listed again, and the pass is killed right after the
    // file is published, before it records anything more.
    let publish_then_die = format!("{publish} && kill -9 $PPID");
    set_config(&w, "updateCommand", json!(["/bin/sh", "-c", publish_then_die]));
    w.set_status(1000, &[], T0 + 3530);
    let p = w.pass(T0 + 3530);
    assert_eq!(p.code, -1, "killed: {}", p.stderr);
    assert_eq!(w.listed_ips(), vec![ip.clone()]);
    // Unneeded again, idle, its paid hour nearly over, Hydra has it
    // enabled, and the old record is far more than 10 drain delays old: it
    // is delisted now and kept for a drain.
    set_config(&w, "updateCommand", json!(["/bin/sh", "-c", publish]));
    w.set_status(0, &[], T0 + 7100);
    w.ok_pass(T0 + 7100);
    assert!(w.listed_ips().is_empty());
    assert_eq!(w.names(), vec![provisioned(0)], "not destroyed in the pass that delisted it");
    assert!(w.calls_of("destroy").is_empty());
    // Drained: it goes.
    w.set_status(0, &[], T0 + 7200);
    w.ok_pass(T0 + 7200);
    assert!(w.names().is_empty());
}

/// The published machines file is the truth about what is listed: a state
/// file that says otherwise (lost, rebuilt, or left behind by a killed
/// pass) does not make a listed machine go in one pass.
#[test]
fn a_machine_the_file_lists_is_drained_whatever_the_state_file_says() {
    let w = World::new(json!({"maxMachines": 1, "gracePeriod": 0}), json!({}));
    w.scale_to(1);
    let state = w.path().join("state/state.json");
    let mut s = w.state();
    s["deployments"][provisioned(0)]["listed"] = json!(false);
    s["deployments"][provisioned(0)]["delisted_at"] = json!(T0 - 10_000);
    std::fs::write(&state, s.to_string()).unwrap();
    w.set_status(0, &[], T0 + 3500);
    w.ok_pass(T0 + 3500);
    assert_eq!(w.names(), vec![provisioned(0)], "delisted first");
    assert!(w.listed_ips().is_empty());
}

/// NixOps 1.7's `check` exits 0 for a terminated spot instance and records
/// it MISSING; the pass must see that and replace it at once, not choose
/// it to serve (and fail to deploy it) for another pass.
#[test]
fn a_vanished_instance_whose_check_exits_0_is_replaced_in_the_same_pass() {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    w.scale_to(1);
    let old_ip = w.ip_of(&provisioned(0));
    w.knob("vanish-hydra-provisioned-0", "1");
    let deploys_of_m0 = || {
        w.calls().iter().filter(|c| ["deploy", "ssh"].contains(&c[0].as_str()) && c.contains(&provisioned(0))).count()
    };
    let before = deploys_of_m0();
    w.set_status(100, &[], T0 + 600);
    let p = w.pass(T0 + 600);
    assert_eq!(deploys_of_m0(), before, "the vanished machine was chosen to serve:\n{}", p.stderr);
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert!(w.names().contains(&provisioned(1)), "replaced in the same pass");
    assert_eq!(w.listed_ips(), vec![w.ip_of(&provisioned(1))]);
    assert!(!w.listed_ips().contains(&old_ip));
    // One check may be wrong: the vanished one is destroyed only once it has
    // been reported gone for notRunningTimeout.
    w.set_status(100, &[], T0 + 600 + 900);
    w.ok_pass(T0 + 600 + 900);
    assert_eq!(w.names(), vec![provisioned(1)]);
}

/// An unreachable machine's deploy gets `commandTimeout`, not the hour of
/// `deployTimeout`; and scale-in and the machines file never wait behind a
/// deploy, however long.
#[test]
fn deploys_never_hold_back_scale_in_or_the_machines_file() {
    let w = World::new(json!({"maxMachines": 2, "gracePeriod": 0}), json!({"commandTimeout": 10}));
    w.scale_to(2);
    let (m0, m1) = (w.ip_of(&provisioned(0)), w.ip_of(&provisioned(1)));
    // m1 is unreachable and its deploy would hang for the hour of deployTimeout.
    w.knob("unreachable-hydra-provisioned-1", "1");
    w.knob("sleep-unreachable-deploy-hydra-provisioned-1", "release");
    w.set_status(100, &[], T0 + 600);
    let p = w.pass(T0 + 600);
    assert_eq!(p.code, 1);
    assert!(p.stderr.contains("timed out after 10"), "{}", p.stderr);
    assert_eq!(w.listed_ips(), vec![m0.clone()]);
    w.clear_knob("unreachable-hydra-provisioned-1");
    w.clear_knob("sleep-unreachable-deploy-hydra-provisioned-1");

    w.set_status(100, &[], T0 + 900);
    w.ok_pass(T0 + 900);
    // Hydra reads the lines in any order.
    let mut listed = w.listed_ips();
    listed.sort();
    let mut both = vec![m0.clone(), m1.clone()];
    both.sort();
    assert_eq!(listed, both);

    // m0 serves and is redeployed slowly (until released); m1 is no longer
    // needed. Its delisting is published while m0's deploy still runs...
    set_config(&w, "deployTimeout", json!(3600));
    set_config(&w, "redeployInterval", json!(60));
    w.knob("sleep-deploy-hydra-provisioned-0", "release");
    let slow_pass = |now: i64, done: &dyn Fn() -> bool, what: &str| {
        let _ = std::fs::remove_file(w.nixops_dir().join("release"));
        let _ = std::fs::remove_file(w.nixops_dir().join("deploy-started-hydra-provisioned-0"));
        w.set_status(10, &[], now);
        let mut pass = w.spawn(now);
        w.wait_for("deploy-started-hydra-provisioned-0");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let happened = done();
        common::write(&w.nixops_dir(), "release", "");
        assert!(pass.wait().unwrap().success());
        assert!(happened, "{what} waited for the deploy");
    };
    slow_pass(T0 + 3400, &|| w.listed_ips() == vec![m0.clone()], "the delisting");
    // ... and, drained, it is destroyed while m0's next deploy runs.
    slow_pass(T0 + 3590, &|| w.names() == vec![provisioned(0)], "the destroy");
    assert_eq!(w.listed_ips(), vec![m0]);
}

/// SIGTERM (a service manager stopping the pass) and SIGINT (Ctrl-C) are
/// passed on to NixOps, which runs in its own process group, and the pass
/// waits for it: no `nixops` is left running, and the state is saved.
#[test]
fn termination_signals_are_forwarded_and_waited_for() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let w = World::new(json!({"maxMachines": 1}), json!({}));
        w.knob("linger", "1");
        w.knob("sleep-deploy", "release");
        w.set_status(100, &[], T0);
        let mut pass = w.spawn(T0);
        w.wait_for("deploy-started-hydra-provisioned-0");
        let fake: i32 =
            std::fs::read_to_string(w.nixops_dir().join("deploy-pid-hydra-provisioned-0")).unwrap().parse().unwrap();
        // SAFETY: a signal to the pass this test started.
        unsafe { libc::kill(pass.id() as i32, signal) };
        let status = pass.wait().unwrap();
        assert_eq!(status.code(), Some(1), "signal {signal}: the pass ends, failed");
        // SAFETY: signal 0 only asks whether the process exists.
        let alive = unsafe { libc::kill(fake, 0) } == 0;
        common::write(&w.nixops_dir(), "release", "");
        assert!(!alive, "signal {signal}: the nixops deploy outlived the pass");
        assert!(w.state()["pending_creations"].as_object().unwrap().is_empty(), "signal {signal}");
        assert_eq!(w.names(), vec![provisioned(0)]);
    }
}

/// `nixops create` inserts the deployment before it names it: a pass killed
/// in between leaves an unnamed deployment, which the next pass adopts
/// under the recorded name instead of leaking it.
#[test]
fn an_unnamed_deployment_left_by_a_killed_create_is_adopted() {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    w.knob("stop-create-after-insert", "1");
    w.set_status(100, &[], T0);
    let mut pass = w.spawn(T0);
    w.wait_for("create-pid-hydra-provisioned-0");
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.deployments().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pass.kill().unwrap();
    pass.wait().unwrap();
    w.clear_knob("stop-create-after-insert");
    common::write(&w.nixops_dir(), "release", "");
    assert_eq!(w.deployments().len(), 1);
    assert_eq!(w.deployments()[0].name, "", "left unnamed");
    // The last pass comes after notRunningTimeout (900 s), when the adopted
    // deployment that never deployed has been MISSING long enough to go.
    for now in [T0 + 300, T0 + 600, T0 + 1500] {
        w.set_status(100, &[], now);
        w.ok_pass(now);
    }
    let modify = w.calls_of("modify");
    assert!(modify.len() == 1 && modify[0][3..5] == ["--name".to_string(), provisioned(0)], "{modify:?}");
    // Adopted, it never deployed: MISSING, so it went and a new one serves.
    let deployments = w.deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert!(deployments[0].tagged && !deployments[0].name.is_empty(), "{deployments:?}");
    assert_eq!(w.listed_ips(), vec![deployments[0].ip.clone().unwrap()]);
}

/// A `create` that outlives its pass (a wrapper's child) and inserts the
/// deployment after the next pass looked: the name stays reserved, so no
/// second deployment takes it, and the late one is adopted; nothing is left
/// untagged or ambiguous.
#[test]
fn a_create_finishing_after_the_next_pass_is_adopted_not_leaked() {
    let w = World::new(json!({"maxMachines": 1}), json!({}));
    w.knob("linger-create", "1");
    w.set_status(100, &[], T0);
    let mut pass = w.spawn(T0);
    w.wait_for("create-pid-hydra-provisioned-0");
    std::thread::sleep(Duration::from_millis(300));
    pass.kill().unwrap();
    pass.wait().unwrap();
    w.clear_knob("linger-create");
    assert!(w.deployments().is_empty(), "the create has not inserted anything yet");
    w.set_status(100, &[], T0 + 300);
    w.ok_pass(T0 + 300);
    // The lingering create finishes now.
    common::write(&w.nixops_dir(), "release", "");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w.names().contains(&provisioned(0)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for now in [T0 + 600, T0 + 900, T0 + 4500, T0 + 8100] {
        w.set_status(if now < T0 + 4000 { 100 } else { 0 }, &[], now);
        w.ok_pass(now);
    }
    let deployments = w.deployments();
    assert!(deployments.iter().all(|d| d.tagged && !d.name.is_empty()), "{deployments:?}");
    let names: BTreeSet<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.len(), deployments.len(), "ambiguous names: {deployments:?}");
}

/// A tag NixOps cannot take as a deployment name (or one read as an
/// option) is a configuration error: nothing runs, no deployment leaks.
#[test]
fn a_tag_that_is_no_deployment_name_is_rejected_before_anything_runs() {
    for tag in ["hp;rm", "a/b", "-rf"] {
        let w = World::new(json!({}), json!({"tag": tag}));
        let p = w.pass(T0);
        assert_eq!(p.code, 2, "{tag}: {}", p.stderr);
        assert!(p.stderr.contains("tag: must be a NixOps deployment name"), "{tag}: {}", p.stderr);
        assert!(w.calls().is_empty(), "{tag}");
    }
}
