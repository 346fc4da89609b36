//! Fault injection: many passes of the real binary against the fake
//! `nixops` (tests/fakes/nixops), with a model of Hydra's queue runner that
//! reads the machines file the binary writes, dispatches build steps to the
//! listed machines, and reports its status back. Passes are killed with
//! SIGKILL at seeded points (the fake kills its caller at its N-th call,
//! before, in the middle of, or after its work), tools fail and hang, load
//! comes and goes, and some statuses are of the era whose `machines`
//! section is null. After every pass:
//!
//! - no build step ever ran on a stopped or destroyed machine;
//! - the machines file is whole (every line a full machine entry);
//! - no deployment name is ever created twice while it exists, and no
//!   command is issued twice for one deployment in one pass;
//! - after a pass that was not killed, no deployment is unnamed or untagged;
//!
//! and at the end, after quiet passes without load, nothing is left: no
//! machine, no deployment, nothing pending.
//!
//! Seeded and deterministic (`deployConcurrency = 1`, so the N-th call is
//! always the same call); a failure prints its seed. `FAULTS_SEED=<n>`
//! replays one seed, `FAULTS_PASSES=<n>` makes the runs longer.

use crate::common;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const T0: i64 = 1_700_000_000;
const TYPE: &str = "x86_64-linux";
const MAX_JOBS: usize = 2;
const INTERVAL: i64 = 300;
/// How long after a pass the queue runner rereads the machines file.
const RELOAD: i64 = 30;

fn python() -> String {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3".into() } else { "python3".into() }
}

/// One build step running on a machine.
#[derive(Debug, Clone)]
struct Running {
    host: String,
    until: i64,
}

/// The queue runner: the machines it loaded from the file, the steps it
/// runs, the steps waiting.
#[derive(Debug, Default)]
struct Hydra {
    loaded: BTreeSet<String>,
    running: Vec<Running>,
    waiting: u64,
}

/// One deployment as the fake NixOps holds it.
#[derive(Debug, Clone)]
struct Fake {
    name: Option<String>,
    tagged: bool,
    state: Option<u64>,
    ip: Option<String>,
}

struct Run {
    dir: tempfile::TempDir,
    rng: ChaCha8Rng,
    hydra: Hydra,
    now: i64,
    seed: u64,
    log: Vec<String>,
    passes: usize,
    killed: usize,
    steps: u64,
    null_era: bool,
}

impl Run {
    fn new(seed: u64) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let run = Run {
            dir,
            rng,
            hydra: Hydra::default(),
            now: T0,
            seed,
            log: vec![],
            passes: 0,
            killed: 0,
            steps: 0,
            null_era: false,
        };
        std::fs::create_dir_all(run.nixops().join("knobs")).unwrap();
        common::write(run.path(), "deployment.nix", "{ type, tag, ... }: { machine = { ... }: { }; }\n");
        let config = json!({
            "nixopsCommand": [python(), common::root().join("tests/fakes/nixops").display().to_string()],
            "statusCommand": ["cat", run.path().join("status.json").display().to_string()],
            "machinesFile": run.path().join("machines").display().to_string(),
            "stateDir": run.path().join("state").display().to_string(),
            "commandTimeout": 4,
            "deployTimeout": 6,
            "deployConcurrency": 1,
            "drainDelay": 60,
            "maxDeployFailures": 2,
            // Per-second billing keeps no idle machine for its paid hour, so
            // scale-in (and its hazards) comes often.
            "billing": "per-second",
            "systemTypes": {TYPE: {"nixopsExpr": "deployment.nix", "maxMachines": 4, "runnablesPerMachine": 3,
                                   "maxJobs": MAX_JOBS, "gracePeriod": 300, "maxCreationsPerPass": 2}},
        });
        common::write(run.path(), "conf.json", &config.to_string());
        run
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn nixops(&self) -> PathBuf {
        self.path().join("nixops")
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: {what}\nlast passes:\n{}", self.seed, self.log.join("\n"));
    }

    fn knob(&self, name: &str, contents: &str) {
        common::write(&self.nixops().join("knobs"), name, contents);
    }

    fn clear_knobs(&self) {
        for e in std::fs::read_dir(self.nixops().join("knobs")).unwrap() {
            let _ = std::fs::remove_file(e.unwrap().path());
        }
    }

    fn fakes(&self) -> Vec<Fake> {
        let Ok(text) = std::fs::read_to_string(self.nixops().join("db.json")) else { return vec![] };
        let db: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        db.values()
            .map(|d| Fake {
                name: d["name"].as_str().map(String::from),
                tagged: d["args"].get("tag").and_then(Value::as_str) == Some("\"hydra-provisioned\""),
                state: d["machine"].get("state").and_then(Value::as_u64),
                ip: d["machine"].get("publicIpv4").and_then(Value::as_str).map(String::from),
            })
            .collect()
    }

    /// Hosts of machines that are up (state 3) in NixOps.
    fn up_hosts(&self) -> BTreeSet<String> {
        self.fakes().into_iter().filter(|f| f.state == Some(3)).filter_map(|f| f.ip).collect()
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.nixops().join("calls")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The machines file's hosts; every line must be a whole entry.
    fn file_hosts(&self) -> BTreeSet<String> {
        let Ok(text) = std::fs::read_to_string(self.path().join("machines")) else { return BTreeSet::new() };
        if !text.is_empty() && !text.ends_with('\n') {
            self.fail(format!("the machines file is cut short: {text:?}"));
        }
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                if fields.len() != 8 || !fields[0].starts_with("root@") {
                    self.fail(format!("machines file line `{l}` is not a whole entry"));
                }
                fields[0]["root@".len()..].to_string()
            })
            .collect()
    }

    /// Hydra between the last pass and `to`: steps end, the file is
    /// reloaded `RELOAD` after the last pass, free slots take waiting steps
    /// (right away from the machines loaded before, which is where a
    /// machine destroyed in the pass that delisted it would get one).
    fn advance_hydra(&mut self, to: i64) {
        let reload_at = self.now + RELOAD;
        let mut t = self.now;
        let mut reloaded = false;
        loop {
            if !reloaded && t >= reload_at {
                self.hydra.loaded = self.file_hosts();
                reloaded = true;
            }
            self.hydra.running.retain(|r| r.until > t);
            self.dispatch(t);
            let next_end = self.hydra.running.iter().map(|r| r.until).filter(|&u| u > t).min();
            let next = [next_end, (!reloaded).then_some(reload_at)].into_iter().flatten().min();
            match next {
                Some(n) if n <= to => t = n,
                _ => break,
            }
        }
        self.hydra.running.retain(|r| r.until > to);
    }

    fn dispatch(&mut self, t: i64) {
        let up = self.up_hosts();
        for host in self.hydra.loaded.clone() {
            while self.hydra.waiting > 0 && self.hydra.running.iter().filter(|r| r.host == host).count() < MAX_JOBS {
                if !up.contains(&host) {
                    self.fail(format!("at {t} Hydra gives a step to {host}, which it still has listed but is not up"));
                }
                self.hydra.waiting -= 1;
                self.steps += 1;
                let until = t + self.rng.random_range(120..1500);
                self.hydra.running.push(Running { host: host.clone(), until });
            }
        }
    }

    /// The status the next pass reads; now and then, for a few passes in a
    /// row, of the late-2022 era whose `machines` and `machineTypes` are null.
    fn write_status(&mut self) {
        self.null_era = self.rng.random_bool(if self.null_era { 0.75 } else { 0.1 });
        self.write_status_of(self.null_era);
    }

    fn write_status_of(&self, null_era: bool) {
        let mut machines = serde_json::Map::new();
        let busy: BTreeSet<&str> = self.hydra.running.iter().map(|r| r.host.as_str()).collect();
        for host in self.hydra.loaded.iter().map(String::as_str).chain(busy.iter().copied()) {
            let jobs = self.hydra.running.iter().filter(|r| r.host == host).count();
            machines.insert(
                format!("ssh://root@{host}"),
                json!({"enabled": self.hydra.loaded.contains(host), "currentJobs": jobs}),
            );
        }
        let running = self.hydra.running.len();
        let doc = json!({"status": "up", "time": self.now, "uptime": 86_400, "nrRunnableSteps": self.hydra.waiting,
            "nrActiveSteps": running, "machineTypes": {TYPE: {"runnable": self.hydra.waiting, "running": running}},
            "machines": machines});
        let mut doc = doc;
        if null_era {
            doc["machines"] = Value::Null;
            doc["machineTypes"] = Value::Null;
        }
        common::write(self.path(), "status.json", &doc.to_string());
    }

    /// Runs one pass at `self.now`; returns whether it was killed.
    fn pass(&mut self) -> bool {
        let calls_before = self.calls().len();
        let out = Command::new(env!("CARGO_BIN_EXE_hydra-provisioner"))
            .arg("run")
            .arg(self.path().join("conf.json"))
            .args(["--now", &self.now.to_string()])
            .env("FAKE_NIXOPS_DIR", self.nixops())
            .env("FAKE_NOW", self.now.to_string())
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        let killed = out.status.code().is_none();
        self.passes += 1;
        self.killed += usize::from(killed);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary: Vec<&str> = stderr.lines().filter(|l| l.contains(": ") && !l.contains("DEBUG")).collect();
        self.log.push(format!("-- pass at {} (killed: {killed}):\n{}", self.now, summary.join("\n")));
        if self.log.len() > 6 {
            self.log.remove(0);
        }
        // Give the children of a killed pass a moment to die with it.
        if killed {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let calls = self.calls();
        self.check_calls(&calls[calls_before..]);
        killed
    }

    /// No command twice for one deployment in one pass (a second `check`
    /// after adoption aside), and never a create of a name that exists.
    fn check_calls(&self, calls: &[Vec<String>]) {
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        for c in calls {
            let Some(i) = c.iter().position(|a| a == "-d") else { continue };
            let (command, name) = (c[0].clone(), c[i + 1].clone());
            if ["create", "destroy", "stop", "start", "delete", "set-args"].contains(&command.as_str())
                && !seen.insert((command.clone(), name.clone()))
            {
                self.fail(format!("`{command}` issued twice for {name} in one pass"));
            }
        }
        if let Ok(v) = std::fs::read_to_string(self.nixops().join("violations")) {
            self.fail(format!("the fake NixOps saw: {v}"));
        }
    }

    fn check_fleet(&self, quiet: bool) {
        let fakes = self.fakes();
        let mut names = BTreeSet::new();
        for f in &fakes {
            if let Some(n) = &f.name
                && !names.insert(n.clone())
            {
                self.fail(format!("two deployments are named {n}: {fakes:?}"));
            }
            if quiet && (f.name.is_none() || !f.tagged) {
                self.fail(format!("a deployment is left unnamed or untagged after a whole pass: {fakes:?}"));
            }
        }
        // A step on a machine that is gone or stopped is a killed build.
        let up = self.up_hosts();
        for r in &self.hydra.running {
            if !up.contains(&r.host) {
                self.fail(format!("a build step running on {} was killed: the machine is gone or stopped", r.host));
            }
        }
    }

    /// Sets this pass's faults: maybe a kill at one of its first calls,
    /// maybe a failing or hanging command.
    fn faults(&mut self) {
        self.clear_knobs();
        if self.rng.random_bool(0.4) {
            let point = ["before", "mid", "after"][self.rng.random_range(0..3)];
            let at = if self.rng.random_bool(0.5) {
                (self.calls().len() + self.rng.random_range(1..=8)).to_string()
            } else {
                let commands =
                    ["create", "set-args", "deploy", "ssh", "destroy", "delete", "export", "check", "modify"];
                commands[self.rng.random_range(0..commands.len())].to_string()
            };
            self.knob("kill-parent-at", &format!("{at} {point}"));
        }
        let names: Vec<String> = self.fakes().into_iter().filter_map(|f| f.name).collect();
        if !names.is_empty() && self.rng.random_bool(0.25) {
            let name = &names[self.rng.random_range(0..names.len())];
            let command = ["deploy", "destroy", "ssh", "check", "stop", "set-args"][self.rng.random_range(0..6)];
            if self.rng.random_bool(0.5) {
                self.knob(&format!("fail-{command}-{name}"), "1");
            } else {
                self.knob(&format!("sleep-{command}-{name}"), "7");
            }
        }
        if self.rng.random_bool(0.05) {
            self.knob("fail-export", "1");
        }
    }

    fn run(&mut self, passes: usize) {
        for _ in 0..passes {
            // Builds arrive in bursts.
            if self.rng.random_bool(0.4) {
                self.hydra.waiting += self.rng.random_range(0..12);
            }
            self.faults();
            self.write_status();
            let killed = self.pass();
            self.file_hosts();
            self.check_fleet(false);
            let _ = killed;
            let next = self.now + INTERVAL;
            self.advance_hydra(next);
            self.now = next;
            self.check_fleet(false);
        }
        // Quiet: no faults, no new work. Everything finishes and goes.
        self.clear_knobs();
        for i in 0..40 {
            self.write_status_of(false);
            let killed = self.pass();
            if killed {
                self.fail("a quiet pass was killed".into());
            }
            self.check_fleet(true);
            let next = self.now + INTERVAL;
            self.advance_hydra(next);
            self.now = next;
            self.check_fleet(true);
            if i > 4 && self.fakes().is_empty() && self.hydra.running.is_empty() && self.hydra.waiting == 0 {
                break;
            }
        }
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(self.path().join("state/state.json")).unwrap()).unwrap();
        if !self.fakes().is_empty() || !state["pending_creations"].as_object().is_none_or(|p| p.is_empty()) {
            self.fail(format!("left behind after the quiet passes: {:?}, state {state}", self.fakes()));
        }
    }
}

fn seeded(seed: u64) {
    let passes: usize = std::env::var("FAULTS_PASSES").ok().and_then(|p| p.parse().ok()).unwrap_or(50);
    let seed = std::env::var("FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    eprintln!("fault injection: seed {seed}, {passes} passes (replay with FAULTS_SEED={seed})");
    let mut run = Run::new(seed);
    run.run(passes);
    eprintln!(
        "fault injection: seed {seed}: {} passes, {} killed, {} build steps, {} nixops calls",
        run.passes,
        run.killed,
        run.steps,
        run.calls().len()
    );
}

#[test]
fn seed_1() {
    seeded(1);
}

#[test]
fn seed_2() {
    seeded(2);
}

#[test]
fn seed_3() {
    seeded(3);
}

#[test]
fn seed_4() {
    seeded(4);
}
