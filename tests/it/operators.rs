//! What an operator touches: the command line's conventions (completions,
//! man pages, `NO_COLOR`, `-v`/`-q`, `-` for standard input, typo
//! suggestions, `run --dry-run --json`), the plan's text, the Prometheus
//! counters across passes, the NixOS module's typed options and `/status`
//! over https. Everything runs the real binary, against the fakes in
//! tests/fakes/ or servers on 127.0.0.1 that the test starts and stops.

use crate::common;
use hydra_provisioner::engine::Plan;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const T0: i64 = 1_700_000_000;

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

fn fake(name: &str) -> String {
    common::root().join("tests/fakes").join(name).display().to_string()
}

/// A status document of the C++ queue runner with `runnable` x86_64-linux
/// steps and the given machines (`"ssh://root@IP"` -> fields).
fn status(now: i64, runnable: u64, machines: Value) -> Value {
    json!({"status": "up", "time": now, "uptime": 86400, "nrRunnableSteps": runnable,
           "machineTypes": {"x86_64-linux": {"runnable": runnable, "running": 0},
                            "aarch64-darwin": {"runnable": 0, "running": 0}},
           "machines": machines, "jobsets": {}})
}

/// A temp directory with a JSON config driving the fake nixops and queue
/// runner (tests/fakes/), for passes of the real binary.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(top: Value) -> Site {
        let site = Site { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(site.path().join("nixops/knobs")).unwrap();
        std::fs::create_dir_all(site.path().join("queue")).unwrap();
        common::write(site.path(), "deployment.nix", "{ type, tag, ... }: { machine = { ... }: { }; }\n");
        let mut config = json!({
            "nixopsCommand": [python(), fake("nixops")],
            "statusCommand": [python(), fake("hydra-queue-runner"), "--status"],
            "machinesFile": site.path().join("machines").display().to_string(),
            "stateDir": site.path().join("state").display().to_string(),
            "commandTimeout": 60,
            "systemTypes": {"x86_64-linux": {"nixopsExpr": "deployment.nix", "maxMachines": 3,
                                             "runnablesPerMachine": 10, "maxJobs": 2}},
        });
        if let (Value::Object(c), Value::Object(t)) = (&mut config, top) {
            c.extend(t);
        }
        common::write(site.path(), "conf.json", &serde_json::to_string_pretty(&config).unwrap());
        site.set_status(&status(T0, 0, json!({})));
        site
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("conf.json")
    }

    fn set_status(&self, doc: &Value) {
        common::write(&self.path().join("queue"), "status.json", &doc.to_string());
    }

    /// `hydra-provisioner run CONFIG --now NOW EXTRA...` with the fakes wired in.
    fn run(&self, now: i64, extra: &[&str]) -> std::process::Output {
        let out = common::bin()
            .arg("run")
            .arg(self.config())
            .arg("--now")
            .arg(now.to_string())
            .args(extra)
            .env("FAKE_NIXOPS_DIR", self.path().join("nixops"))
            .env("FAKE_QUEUE_DIR", self.path().join("queue"))
            .env("FAKE_NOW", now.to_string())
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        eprintln!("--- pass at {now} {extra:?}: {}\n{}", out.status, stderr_of(&out));
        out
    }
}

// --- Completions and man pages -------------------------------------------

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = common::bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr_of(&out));
        let script = stdout_of(&out);
        for sub in ["run", "plan", "simulate", "replay", "completions", "man"] {
            assert!(script.contains(sub), "{shell} completion lacks `{sub}`");
        }
    }
    let out = common::bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

/// Asks the bash completion function what it offers for `words` (the last
/// one being completed), as bash does on TAB.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_hydra__provisioner hydra-provisioner '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = std::process::Command::new("bash").arg("-c").arg(program).output().unwrap();
    assert!(out.status.success(), "bash: {}", stderr_of(&out));
    stdout_of(&out).lines().map(String::from).collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin().args(["completions", "bash"]).output().unwrap();
    let script = common::write(dir.path(), "hydra-provisioner.bash", &stdout_of(&out));
    assert_eq!(bash_completes(&script, &["hydra-provisioner", "sim"]), ["simulate"]);
    // Past the subcommand too (clap_complete's hyphenated-name bug, worked around).
    assert_eq!(bash_completes(&script, &["hydra-provisioner", "run", "--dry"]), ["--dry-run"]);
    assert_eq!(bash_completes(&script, &["hydra-provisioner", "trace", "synth", "--se"]), ["--seed", "--set"]);
    assert_eq!(bash_completes(&script, &["hydra-provisioner", "completions", "fi"]), ["fish"]);
}

#[test]
fn man_pages_cover_every_subcommand() {
    let out = common::bin().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = stdout_of(&out);
    assert!(page.contains(".TH hydra-provisioner 1"), "{page}");
    for text in ["SYNOPSIS", "\\-\\-verbose", "simulate", "completions"] {
        assert!(page.contains(text), "the main page lacks {text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = common::bin().arg("man").arg("--out-dir").arg(&pages).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    for name in [
        "hydra-provisioner.1",
        "hydra-provisioner-run.1",
        "hydra-provisioner-plan.1",
        "hydra-provisioner-trace.1",
        "hydra-provisioner-trace-synth.1",
        "hydra-provisioner-completions.1",
    ] {
        let text = std::fs::read_to_string(pages.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{name} is not a man page");
    }
    let run = std::fs::read_to_string(pages.join("hydra-provisioner-run.1")).unwrap();
    assert!(run.contains("\\-\\-dry\\-run") && run.contains("\\-\\-json"), "{run}");
    // man(1) itself can render it, where it is installed.
    if Path::new("/usr/bin/man").exists() {
        let rendered = std::process::Command::new("man")
            .arg("-l")
            .arg(pages.join("hydra-provisioner-run.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(stdout_of(&rendered).contains("--dry-run"), "{}", stderr_of(&rendered));
    }
}

// --- Colour, verbosity, typos --------------------------------------------

const ESC: char = '\u{1b}';

#[test]
fn no_color_turns_off_colour_even_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    let synth = |env: &[(&str, &str)]| {
        let mut cmd = common::bin();
        cmd.args(["trace", "synth", "--hours", "0.1", "-o"]).arg(&trace);
        cmd.env_remove("NO_COLOR").env_remove("CLICOLOR").env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let typo = |env: &[(&str, &str)]| {
        let mut cmd = common::bin();
        cmd.arg("simualte").env_remove("NO_COLOR").env_remove("CLICOLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // CLICOLOR_FORCE colours logs and clap's messages though stderr is a pipe...
    let forced = synth(&[("CLICOLOR_FORCE", "1")]);
    assert!(stderr_of(&forced).contains("wrote") && stderr_of(&forced).contains(ESC), "{}", stderr_of(&forced));
    assert!(stderr_of(&typo(&[("CLICOLOR_FORCE", "1")])).contains(ESC));
    // ...NO_COLOR wins over it...
    let plain = synth(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(stderr_of(&plain).contains("wrote") && !stderr_of(&plain).contains(ESC), "{}", stderr_of(&plain));
    assert!(!stderr_of(&typo(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])).contains(ESC));
    // ...and a pipe gets no colour by default.
    assert!(!stderr_of(&synth(&[])).contains(ESC));
}

#[test]
fn verbose_and_quiet_move_the_log_level_over_rust_log() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    let synth = |flags: &[&str], rust_log: &str| {
        let out = common::bin()
            .args(flags)
            .args(["trace", "synth", "--hours", "0.1", "-o"])
            .arg(&trace)
            .env("RUST_LOG", rust_log)
            .output()
            .unwrap();
        assert!(out.status.success());
        stderr_of(&out)
    };
    assert!(synth(&[], "info").contains("wrote"));
    assert!(!synth(&[], "warn").contains("wrote"));
    assert!(!synth(&["-q"], "info").contains("wrote"), "-q hides info");
    assert!(synth(&["-v"], "error").contains("wrote"), "-v overrides RUST_LOG");
    let out = common::bin().args(["-v", "-q", "simulate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_mistyped_subcommand_gets_a_suggestion_not_a_missing_config() {
    let out = common::bin().arg("simualte").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("unrecognized subcommand 'simualte'"), "{err}");
    assert!(err.contains("a similar subcommand exists: 'simulate'"), "{err}");
    assert!(!err.contains("cannot read config"), "{err}");

    // A path that does not exist is not run either, and says why.
    let out = common::bin().arg("/etc/hydra-provisioner/nothere.nix").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("is not a file"), "{}", stderr_of(&out));
}

#[test]
fn a_bare_existing_config_is_still_one_pass() {
    let site = Site::new(json!({}));
    site.set_status(&status(T0, 25, json!({})));
    let out = common::bin()
        .arg(site.config())
        .args(["--dry-run", "--now", &T0.to_string()])
        .env("FAKE_NIXOPS_DIR", site.path().join("nixops"))
        .env("FAKE_QUEUE_DIR", site.path().join("queue"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("create hydra-provisioned-0"), "{}", stdout_of(&out));
}

// --- Standard input, JSON, the plan's text -------------------------------

fn example(name: &str) -> PathBuf {
    common::root().join("scenarios/example").join(name)
}

#[test]
fn a_dash_reads_standard_input() {
    let from_file = common::bin()
        .args(["plan", "--json", "-c"])
        .arg(example("conf.json"))
        .arg("-s")
        .arg(example("status.json"))
        .arg("-f")
        .arg(example("fleet.json"))
        .output()
        .unwrap();
    assert!(from_file.status.success());
    let status_text = std::fs::read_to_string(example("status.json")).unwrap();
    let from_stdin = common::bin()
        .args(["plan", "--json", "-c"])
        .arg(example("conf.json"))
        .args(["-s", "-", "-f"])
        .arg(example("fleet.json"))
        .write_stdin(status_text.clone())
        .output()
        .unwrap();
    assert!(from_stdin.status.success(), "{}", stderr_of(&from_stdin));
    assert_eq!(stdout_of(&from_stdin), stdout_of(&from_file));

    // Only one input can be standard input.
    let both = common::bin()
        .args(["plan", "-c"])
        .arg(example("conf.json"))
        .args(["-s", "-", "-f", "-"])
        .write_stdin(status_text)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr_of(&both).contains("--status and --fleet all read standard input"), "{}", stderr_of(&both));

    // Garbage on standard input is named as such.
    let garbage = common::bin()
        .args(["plan", "-c"])
        .arg(example("conf.json"))
        .args(["-s", "-"])
        .write_stdin("{not json")
        .output()
        .unwrap();
    assert_eq!(garbage.status.code(), Some(2));
    assert!(stderr_of(&garbage).contains("<stdin>"), "{}", stderr_of(&garbage));

    // Traces too.
    let trace = common::bin().args(["trace", "synth", "--hours", "1"]).output().unwrap();
    let checked = common::bin().args(["trace", "check", "-"]).write_stdin(trace.stdout.clone()).output().unwrap();
    assert!(checked.status.success(), "{}", stderr_of(&checked));
    assert!(stdout_of(&checked).starts_with("<stdin>: format v1,"), "{}", stdout_of(&checked));
    let stats = common::bin().args(["trace", "stats", "-", "--json"]).write_stdin(trace.stdout).output().unwrap();
    assert!(stats.status.success());
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["steps"].as_u64().unwrap() > 0);
}

#[test]
fn output_cut_short_by_its_reader_is_no_failure() {
    // `| head` closes the pipe early; the program must neither panic nor fail.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' trace synth --hours 48 | head -n 1 >/dev/null",
            env!("CARGO_BIN_EXE_hydra-provisioner")
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
}

#[test]
fn run_dry_run_json_round_trips_through_the_plan_type() {
    let site = Site::new(json!({}));
    site.set_status(&status(T0, 25, json!({})));
    let out = site.run(T0, &["--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let plan: Plan = serde_json::from_str(&text).expect("the output is a Plan");
    assert_eq!(plan.now, T0);
    assert!(plan.decision("hydra-provisioned-0").is_some(), "{text}");
    let as_value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&plan).unwrap(), as_value, "nothing is lost in the round trip");
    // Times stay numbers in JSON.
    assert_eq!(as_value["now"], json!(T0));
    // A dry run changes nothing.
    assert!(!site.path().join("machines").exists());
    assert!(!site.path().join("nixops/db.json").exists());

    // --json without --dry-run is a usage error.
    let out = site.run(T0, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn plan_text_shows_times_for_people_and_leaves_out_idle_unconfigured_types() {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write(
        dir.path(),
        "conf.json",
        r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "maxMachines": 2, "billing": "per-second"}}}"#,
    );
    let machines = json!({"ssh://root@10.0.0.1": {"enabled": true, "currentJobs": 0, "idleSince": T0 - 3600}});
    let status_file = common::write(dir.path(), "status.json", &status(T0, 0, machines).to_string());
    let fleet = json!({"deployments": [{"name": "hydra-provisioned-0", "machine_type": "x86_64-linux",
        "state": "up", "launch_time": T0 - 7200, "public_ip": "10.0.0.1",
        "memory": {"listed": false, "delisted_at": T0 - 30}}]});
    let fleet_file = common::write(dir.path(), "fleet.json", &fleet.to_string());
    let plan = |json: bool| {
        let mut cmd = common::bin();
        cmd.arg("plan").arg("-c").arg(&conf).arg("-s").arg(&status_file).arg("-f").arg(&fleet_file);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        stdout_of(&out)
    };
    let text = plan(false);
    assert!(text.starts_with("plan at 2023-11-14T22:13:20Z (1700000000)"), "{text}");
    assert!(
        text.contains("draining since 2023-11-14T22:12:50Z (30s ago) until 2023-11-14T22:13:50Z (in 30s)"),
        "{text}"
    );
    assert!(!text.contains("1699999970"), "no raw epoch in reasons: {text}");
    assert!(!text.contains("aarch64-darwin"), "an unconfigured type without work is noise: {text}");

    let json: Value = serde_json::from_str(&plan(true)).unwrap();
    let machine = &json["machines"][0];
    assert_eq!(machine["reason"], "draining");
    assert_eq!(machine["delisted_at"], json!(T0 - 30), "JSON keeps numbers");
    assert!(json["types"].as_array().unwrap().iter().any(|t| t["machine_type"] == "aarch64-darwin"));
}
