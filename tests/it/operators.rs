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

    fn knob(&self, name: &str) {
        common::write(&self.path().join("nixops/knobs"), name, "1");
    }

    fn clear_knob(&self, name: &str) {
        std::fs::remove_file(self.path().join("nixops/knobs").join(name)).unwrap();
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

    /// The IPs the machines file lists.
    fn listed_ips(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path().join("machines")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next()?.strip_prefix("root@").map(String::from))
            .collect()
    }

    /// The Prometheus textfile, parsed: `name{labels}` -> value.
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let text = std::fs::read_to_string(self.path().join("metrics/provisioner.prom")).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_string(), value.parse().unwrap_or_else(|_| panic!("bad sample `{l}`")))
            })
            .collect()
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
    assert!(stderr_of(&both).contains("--status and --fleet both read standard input"), "{}", stderr_of(&both));
    let both = common::bin().args(["plan", "-c", "-", "-s", "-"]).write_stdin("{}").output().unwrap();
    assert!(stderr_of(&both).contains("--config and --status both read standard input"), "{}", stderr_of(&both));

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

    // The config as JSON, e.g. from nix-instantiate.
    let conf_text = std::fs::read_to_string(example("conf.json")).unwrap();
    let conf_from_stdin = common::bin()
        .args(["plan", "--json", "-c", "-", "-s"])
        .arg(example("status.json"))
        .arg("-f")
        .arg(example("fleet.json"))
        .current_dir(common::root().join("scenarios/example"))
        .write_stdin(conf_text)
        .output()
        .unwrap();
    assert!(conf_from_stdin.status.success(), "{}", stderr_of(&conf_from_stdin));
    assert_eq!(
        stdout_of(&conf_from_stdin),
        stdout_of(&from_file),
        "relative paths resolve against the current directory"
    );

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
fn output_cut_short_by_its_reader_ends_quietly_with_sigpipes_status() {
    // `| head` closes the pipe early: no panic, no error message, and the
    // status of a process SIGPIPE ended, even through the CSV writer of a trace.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' trace synth --hours 48 | head -n 1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
            env!("CARGO_BIN_EXE_hydra-provisioner")
        ))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out).trim(), "141", "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "", "nothing to say on stderr");
}

#[test]
fn run_dry_run_json_round_trips_through_the_plan_type() {
    let site = Site::new(json!({}));
    site.set_status(&status(T0, 25, json!({})));
    let out = site.run(T0, &["--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let plan: Plan = serde_json::from_str(&text).expect("the output is a Plan");
    assert_eq!(plan.now.secs(), T0);
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

// --- The Nix package and the NixOS module --------------------------------

/// Evaluates a harness of tests/nix/ strictly to JSON with `args` (as
/// `--argstr`); the error text when the evaluation fails.
fn eval_nix(file: &str, args: &[(&str, &str)]) -> Result<Value, String> {
    let mut cmd = std::process::Command::new("nix-instantiate");
    cmd.args(["--eval", "--strict", "--json", "--store", "dummy://"]).arg(common::root().join("tests/nix").join(file));
    for (k, v) in args {
        cmd.args(["--argstr", k, v]);
    }
    let out = cmd.output().unwrap();
    if out.status.success() { Ok(serde_json::from_slice(&out.stdout).unwrap()) } else { Err(stderr_of(&out)) }
}

/// The harness's arguments with `hydraEnabled` set unless given: an
/// argument makes nix-instantiate call the harness's function.
fn module_args<'a>(args: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = args.to_vec();
    if !all.iter().any(|(k, _)| *k == "hydraEnabled") {
        all.push(("hydraEnabled", "true"));
    }
    all
}

fn eval_module(args: &[(&str, &str)]) -> Value {
    eval_nix("eval-module.nix", &module_args(args)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a build script the way a builder would, with `out` and the given
/// environment, stub functions of nixpkgs' setup hooks in `prelude`, and
/// every store path of a file of this repository mapped back to the file.
fn run_build_script(script: &str, prelude: &str, cwd: &Path, env: &[(&str, &Path)]) {
    let mut script = script.to_string();
    for file in ["auto-shutdown.nix", "builder.nix"] {
        if let Some(store) = store_path_of(&script, file) {
            script = script.replace(&store, &common::root().join("nix").join(file).display().to_string());
        }
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-euo").arg("pipefail").arg("-c").arg(format!("{prelude}\n{script}")).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "build script failed: {}\n{script}", stderr_of(&out));
}

/// Builds the module's config directory (its `configDir` output) in
/// `dir/config`, as the store would, and returns it.
fn build_config_dir(module: &Value, dir: &Path) -> PathBuf {
    let out = dir.join("config");
    let json_path = common::write(dir, "json", module["configDir"]["json"].as_str().unwrap());
    run_build_script(
        module["configDir"]["script"].as_str().unwrap(),
        "",
        dir,
        &[("out", &out), ("jsonPath", &json_path)],
    );
    out
}

/// The `/nix/store/<hash>-<name>` path in `text`, if any.
fn store_path_of(text: &str, name: &str) -> Option<String> {
    let end = text.find(&format!("-{name}"))? + name.len() + 1;
    let start = text[..end].rfind("/nix/store/")?;
    Some(text[start..end].to_string())
}

#[test]
fn the_package_installs_completions_man_pages_and_auto_shutdown() {
    if !common::have_nix() {
        return;
    }
    let p = eval_nix("eval-package.nix", &[]).unwrap();
    assert_eq!(p["pname"], "hydra-provisioner");
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"), "nix/package.nix reads the version from Cargo.toml");
    assert_eq!(p["lockFileExists"], true, "{}", p["lockFile"]);
    assert_eq!(p["mainProgram"], "hydra-provisioner");
    assert_eq!(p["nativeBuildInputs"], json!(["installShellFiles"]));

    // Run the install phase against the real binary, with installShellFiles'
    // two functions reduced to where they put files.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("nix")).unwrap();
    for file in ["auto-shutdown.nix", "builder.nix"] {
        std::fs::copy(common::root().join("nix").join(file), src.join("nix").join(file)).unwrap();
    }
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hydra-provisioner"), out.join("bin/hydra-provisioner")).unwrap();
    let prelude = r#"
installShellCompletion() {
  local name=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --cmd) name="$2"; shift 2 ;;
      --bash) install -Dm644 "$2" "$out/share/bash-completion/completions/$name.bash"; shift 2 ;;
      --zsh) install -Dm644 "$2" "$out/share/zsh/site-functions/_$name"; shift 2 ;;
      --fish) install -Dm644 "$2" "$out/share/fish/vendor_completions.d/$name.fish"; shift 2 ;;
      *) echo "unexpected $1" >&2; return 1 ;;
    esac
  done
}
installManPage() { for page in "$@"; do install -Dm644 "$page" "$out/share/man/man1/$(basename "$page")"; done; }
"#;
    run_build_script(p["postInstall"].as_str().unwrap(), prelude, &src, &[("out", &out)]);
    let installed = |rel: &str| std::fs::read_to_string(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(installed("share/bash-completion/completions/hydra-provisioner.bash").contains("_hydra__provisioner"));
    assert!(installed("share/zsh/site-functions/_hydra-provisioner").contains("#compdef hydra-provisioner"));
    assert!(
        installed("share/fish/vendor_completions.d/hydra-provisioner.fish").contains("complete -c hydra-provisioner")
    );
    assert!(installed("share/man/man1/hydra-provisioner.1").contains(".TH hydra-provisioner 1"));
    assert!(installed("share/man/man1/hydra-provisioner-run.1").contains("dry\\-run"));
    assert!(installed("share/hydra-provisioner/auto-shutdown.nix").contains("keep-alive"));
    assert!(installed("share/hydra-provisioner/builder.nix").contains("hydra-queue-builder-dev"));
}

#[test]
fn the_nixos_module_renders_a_service_timer_and_config_the_binary_accepts() {
    if !common::have_nix() {
        return;
    }
    let m = eval_module(&[]);
    assert_eq!(m["enabled"], true);
    assert_eq!(m["failedAssertions"], json!([]));
    let service = &m["service"]["serviceConfig"];
    assert_eq!(service["Type"], "oneshot");
    assert_eq!(service["StateDirectory"], "hydra-provisioner");
    assert_eq!(service["User"], "hydra-provisioner");
    assert_eq!(m["timer"]["timerConfig"]["OnUnitInactiveSec"], "7min");
    assert_eq!(m["timer"]["wantedBy"], json!(["timers.target"]));
    assert_eq!(m["users"]["hydra-provisioner"]["isSystemUser"], true);
    assert_eq!(m["tmpfiles"], json!(["d /var/lib/hydra/provisioner 0755 hydra-provisioner hydra-provisioner -"]));
    let config_dir = m["configDir"]["path"].as_str().unwrap();
    assert_eq!(
        service["ExecStart"],
        format!("/nix/store/hydra-provisioner/bin/hydra-provisioner run {config_dir}/conf.json")
    );
    let rendered: Value = serde_json::from_str(m["configDir"]["json"].as_str().unwrap()).unwrap();
    assert_eq!(rendered["stateDir"], "/var/lib/hydra-provisioner");
    assert_eq!(
        rendered["systemTypes"],
        json!({"x86_64-linux": {"nixopsExpr": "/etc/hydra-provisioner/deployment.nix"}}),
        "unset options are left out, for the provisioner's own defaults"
    );
    // The config directory, built, is one the binary accepts as it is.
    let dir = tempfile::tempdir().unwrap();
    let out = build_config_dir(&m, dir.path());
    let status_file = common::write(dir.path(), "status.json", &status(T0, 0, json!({})).to_string());
    let plan =
        common::bin().args(["plan", "-c"]).arg(out.join("conf.json")).arg("-s").arg(&status_file).output().unwrap();
    assert!(plan.status.success(), "{}", stderr_of(&plan));
    assert!(!stderr_of(&plan).contains("unknown key"), "{}", stderr_of(&plan));
}

#[test]
fn the_nixos_module_rejects_unknown_keys_and_wrong_types_at_evaluation() {
    if !common::have_nix() {
        return;
    }
    let rejected =
        |settings: Value| match eval_nix("eval-module.nix", &module_args(&[("settings", &settings.to_string())])) {
            Ok(v) => panic!("{settings} was accepted: {v}"),
            Err(e) => e,
        };
    let typo = rejected(json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "maxMachine": 4}}}));
    assert!(
        typo.contains(
            "The option `services.hydra-provisioner.settings.systemTypes.x86_64-linux.maxMachine' does not exist"
        ),
        "{typo}"
    );
    let top_typo = rejected(json!({"stateDirectory": "/var/lib/x"}));
    assert!(top_typo.contains("settings.stateDirectory' does not exist"), "{top_typo}");
    let wrong_type = rejected(json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "maxMachines": "4"}}}));
    assert!(wrong_type.contains("x86_64-linux.maxMachines' is not of type `null or unsigned integer"), "{wrong_type}");
    let zero = rejected(json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "runnablesPerMachine": 0}}}));
    assert!(zero.contains("runnablesPerMachine' is not of type `null or positive integer"), "{zero}");
    let bad_enum = rejected(json!({"quirks": "fixd"}));
    assert!(
        bad_enum.contains("settings.quirks' is not of type `null or one of \"fixed\", \"original\"'"),
        "{bad_enum}"
    );
    let bad_list = rejected(json!({"statusCommand": "hydra-queue-runner --status"}));
    assert!(bad_list.contains("settings.statusCommand' is not of type `null or list of string'"), "{bad_list}");
    let missing = rejected(json!({"systemTypes": {"x86_64-linux": {"maxMachines": 4}}}));
    assert!(missing.contains("x86_64-linux.nixopsExpr' is used but not defined"), "{missing}");
    // The escape hatch takes what the types do not know.
    let m = eval_module(&[("options", &json!({"extraSettings": {"futureKey": 1}}).to_string())]);
    let rendered: Value = serde_json::from_str(m["configDir"]["json"].as_str().unwrap()).unwrap();
    assert_eq!(rendered["futureKey"], 1);
}

#[test]
fn the_module_types_exactly_the_keys_the_provisioner_knows() {
    if !common::have_nix() {
        return;
    }
    let m = eval_module(&[]);
    let keys = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
    };
    let known = |list: &[&str]| -> std::collections::BTreeSet<String> { list.iter().map(|k| k.to_string()).collect() };
    assert_eq!(
        keys(&m["settingsKeys"]),
        known(hydra_provisioner::config::TOP_KEYS),
        "services.hydra-provisioner.settings must type every top-level key of config.rs, no more"
    );
    assert_eq!(
        keys(&m["typeKeys"]),
        known(hydra_provisioner::config::TYPE_KEYS),
        "settings.systemTypes.<T> must type every key of config.rs, no more"
    );
}

#[test]
fn the_nixos_module_adds_its_machines_file_to_hydra() {
    if !common::have_nix() {
        return;
    }
    let m = eval_module(&[]);
    assert_eq!(m["hydraMachinesFiles"], json!(["/var/lib/hydra/provisioner/machines"]));
    // nix.buildMachines' file would drop out of Hydra's default list: it stays.
    let m = eval_module(&[("buildMachines", r#"[{"hostName": "mac"}]"#)]);
    assert_eq!(m["hydraMachinesFiles"], json!(["/var/lib/hydra/provisioner/machines", "/etc/nix/machines"]));
    // Without Hydra on this host, or with updateCommand, Hydra is left alone...
    assert_eq!(eval_module(&[("hydraEnabled", "false")])["hydraMachinesFiles"], Value::Null);
    let update = json!({"updateCommand": ["ssh", "hydra", "tee /var/lib/hydra/machines"]}).to_string();
    let m = eval_module(&[("settings", &update)]);
    assert_eq!(m["hydraMachinesFiles"], Value::Null);
    assert_eq!(m["failedAssertions"], json!([]));
    // ...and asking for both is an assertion, not a silent no-op.
    let m = eval_module(&[("settings", &update), ("options", r#"{"addToHydra": true}"#)]);
    assert!(m["failedAssertions"][0].as_str().unwrap().contains("addToHydra needs the machines file"), "{m}");
}

#[test]
fn the_nixos_module_gives_write_access_to_the_textfile_directory() {
    if !common::have_nix() {
        return;
    }
    let m =
        eval_module(&[("options", r#"{"prometheus": {"enable": true, "textfileDirectory": "/var/lib/node-text"}}"#)]);
    let tmpfiles: Vec<&str> = m["tmpfiles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(tmpfiles.contains(&"a+ /var/lib/node-text - - - - u:hydra-provisioner:rwx"), "{tmpfiles:?}");
    assert_eq!(m["service"]["serviceConfig"]["ReadWritePaths"], json!(["/var/lib/node-text"]));
    let rendered: Value = serde_json::from_str(m["configDir"]["json"].as_str().unwrap()).unwrap();
    assert_eq!(rendered["prometheusTextfile"], "/var/lib/node-text/hydra-provisioner.prom");
    assert_eq!(m["nodeExporter"]["enabledCollectors"], json!(["textfile"]));
    assert_eq!(m["nodeExporter"]["extraFlags"], json!(["--collector.textfile.directory=/var/lib/node-text"]));
    // Off by default.
    let m = eval_module(&[]);
    assert_eq!(m["nodeExporter"], Value::Null);
    assert_eq!(m["service"]["serviceConfig"]["ReadWritePaths"], json!([]));
}

#[test]
fn network_expressions_import_auto_shutdown_from_a_config_in_the_store() {
    if !common::have_nix() {
        return;
    }
    // A config directory built as the module builds it, wired to the fakes.
    let site = Site::new(json!({}));
    let settings = json!({
        "nixopsCommand": [python(), fake("nixops")],
        "statusCommand": [python(), fake("hydra-queue-runner"), "--status"],
        "machinesFile": site.path().join("machines").display().to_string(),
        "stateDir": site.path().join("state").display().to_string(),
        "systemTypes": {"x86_64-linux": {"nixopsExpr": site.path().join("deployment.nix").display().to_string(),
                                          "maxMachines": 1}},
    });
    let m = eval_module(&[("settings", &settings.to_string())]);
    let store = build_config_dir(&m, site.path());

    site.set_status(&status(T0, 5, json!({})));
    let out = common::bin()
        .arg("run")
        .arg(store.join("conf.json"))
        .args(["--now", &T0.to_string()])
        .env("FAKE_NIXOPS_DIR", site.path().join("nixops"))
        .env("FAKE_QUEUE_DIR", site.path().join("queue"))
        .env("FAKE_NOW", T0.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let calls = std::fs::read_to_string(site.path().join("nixops/calls")).unwrap();
    let deploy: Vec<String> =
        calls.lines().map(|l| serde_json::from_str::<Vec<String>>(l).unwrap()).find(|c| c[0] == "deploy").unwrap();
    let include = deploy.iter().find(|a| a.starts_with("hydra-provisioner=")).unwrap();
    let include_dir = include.strip_prefix("hydra-provisioner=").unwrap();
    assert_eq!(Path::new(include_dir), std::fs::canonicalize(&store).unwrap());
    // What a network expression writes resolves to the builders' module.
    let eval = std::process::Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--store", "dummy://", "-I", include, "-E"])
        .arg("builtins.isFunction (import <hydra-provisioner/auto-shutdown.nix>)")
        .output()
        .unwrap();
    assert_eq!(stdout_of(&eval).trim(), "true", "{}", stderr_of(&eval));
}

// --- Alert rules and dashboard --------------------------------------------

/// Whether `promtool` is on PATH (.ci/run installs Debian's `prometheus`,
/// which ships it). Without it the rules' test says so and passes, except
/// on CI (`CI=true`), where its absence is a failure.
fn have_promtool() -> bool {
    let found = std::process::Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").is_err(), "promtool is missing on CI; .ci/run must install it");
        eprintln!("skipped: promtool not installed (.ci/run installs Debian's prometheus package)");
    }
    found
}

#[test]
fn the_alert_rules_pass_promtools_checks_and_unit_tests() {
    if !have_promtool() {
        return;
    }
    let dir = common::root().join("contrib/prometheus");
    for args in
        [["check", "rules", "hydra-provisioner.rules.yml"], ["test", "rules", "hydra-provisioner.rules.test.yml"]]
    {
        let out = std::process::Command::new("promtool").args(args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "promtool {args:?}:\n{}{}", stdout_of(&out), stderr_of(&out));
    }
}

// --- Prometheus counters ---------------------------------------------------

fn metric(metrics: &std::collections::BTreeMap<String, f64>, series: &str) -> f64 {
    *metrics.get(series).unwrap_or_else(|| panic!("no sample {series} in {metrics:#?}"))
}

/// The sum of every sample of `name`, whatever its labels.
fn total(metrics: &std::collections::BTreeMap<String, f64>, name: &str) -> f64 {
    metrics.iter().filter(|(k, _)| k.split('{').next() == Some(name)).map(|(_, v)| v).sum()
}

const X86: &str = "{type=\"x86_64-linux\"}";

#[test]
fn counters_survive_passes_and_restart_after_a_corrupt_state_file() {
    let site = Site::new(json!({"prometheusTextfile": "metrics/provisioner.prom", "billing": "per-second"}));
    // Three passes under load: one creation each; the third machine's first
    // deploy fails.
    for (i, now) in [T0, T0 + 300, T0 + 600].into_iter().enumerate() {
        if i == 2 {
            site.knob("fail-deploy-hydra-provisioned-2");
        }
        site.set_status(&status(now, 25, json!({})));
        let out = site.run(now, &[]);
        assert_eq!(out.status.code(), Some(if i == 2 { 1 } else { 0 }), "{}", stderr_of(&out));
    }
    let m = site.metrics();
    assert_eq!(metric(&m, &format!("hydra_provisioner_machines_created_total{X86}")), 3.0);
    assert_eq!(metric(&m, &format!("hydra_provisioner_deploy_failures_total{X86}")), 1.0);
    assert_eq!(metric(&m, "hydra_provisioner_passes_total{outcome=\"success\"}"), 2.0);
    assert_eq!(metric(&m, "hydra_provisioner_passes_total{outcome=\"failure\"}"), 1.0);
    assert_eq!(metric(&m, "hydra_provisioner_passes_total{outcome=\"unobserved\"}"), 0.0);
    assert!(metric(&m, "hydra_provisioner_command_failures_total") >= 1.0);
    assert_eq!(metric(&m, "hydra_provisioner_last_success_timestamp_seconds"), (T0 + 300) as f64);
    assert_eq!(metric(&m, "hydra_provisioner_last_pass_timestamp_seconds"), (T0 + 600) as f64);
    assert_eq!(metric(&m, &format!("hydra_provisioner_wanted_machines{X86}")), 3.0);
    assert_eq!(metric(&m, &format!("hydra_provisioner_allowed_machines{X86}")), 3.0);
    assert_eq!(metric(&m, &format!("hydra_provisioner_serving_machines{X86}")), 2.0, "the failed one is not listed");
    assert_eq!(site.listed_ips().len(), 2);
    assert_eq!(metric(&m, &format!("hydra_provisioner_max_machines{X86}")), 3.0);
    assert_eq!(metric(&m, &format!("hydra_provisioner_runnable{X86}")), 25.0);
    assert_eq!(metric(&m, "hydra_provisioner_state_rebuilt"), 0.0);

    // Demand drops to nothing: the idle machines drain, then go.
    site.clear_knob("fail-deploy-hydra-provisioned-2");
    let mut now = T0 + 600;
    for _ in 0..4 {
        now += 300;
        site.set_status(&status(now, 0, json!({})));
        site.run(now, &[]);
    }
    let m = site.metrics();
    let gone = metric(&m, &format!("hydra_provisioner_machines_destroyed_total{X86}"));
    assert!(gone >= 1.0, "{m:#?}");
    assert_eq!(total(&m, "hydra_provisioner_passes_total"), 7.0);
    assert_eq!(metric(&m, &format!("hydra_provisioner_machines_created_total{X86}")), 3.0, "counters only grow");

    // The state file is garbled: the pass rebuilds its memory, the counters
    // restart from zero and say so...
    std::fs::write(site.path().join("state/state.json"), "{\"deployments\": [").unwrap();
    now += 300;
    site.set_status(&status(now, 25, json!({})));
    site.run(now, &[]);
    let m = site.metrics();
    assert_eq!(metric(&m, "hydra_provisioner_state_rebuilt"), 1.0);
    assert_eq!(total(&m, "hydra_provisioner_passes_total"), 1.0, "{m:#?}");
    assert_eq!(metric(&m, &format!("hydra_provisioner_machines_destroyed_total{X86}")), 0.0);
    assert!(site.path().join("state/state.json.corrupt").exists());
    // ...and go on counting.
    now += 300;
    site.set_status(&status(now, 25, json!({})));
    site.run(now, &[]);
    let m = site.metrics();
    assert_eq!(metric(&m, "hydra_provisioner_state_rebuilt"), 0.0);
    assert_eq!(total(&m, "hydra_provisioner_passes_total"), 2.0);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(site.path().join("state/state.json")).unwrap()).unwrap();
    assert_eq!(state["counters"]["passes"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 2);
}

#[test]
fn demand_has_no_sample_while_the_queue_runner_is_down() {
    let site = Site::new(json!({"prometheusTextfile": "metrics/provisioner.prom"}));
    site.set_status(&status(T0, 25, json!({})));
    assert!(site.run(T0, &[]).status.success());
    assert_eq!(metric(&site.metrics(), &format!("hydra_provisioner_runnable{X86}")), 25.0);
    common::write(&site.path().join("queue"), "down", "");
    site.run(T0 + 300, &[]);
    let m = site.metrics();
    assert_eq!(metric(&m, "hydra_provisioner_queue_up"), 0.0);
    for name in ["hydra_provisioner_runnable", "hydra_provisioner_wanted_machines"] {
        assert!(!m.keys().any(|k| k.starts_with(&format!("{name}{{"))), "{name} has a sample: {m:#?}");
    }
    // What the provisioner did is still known.
    assert_eq!(metric(&m, &format!("hydra_provisioner_allowed_machines{X86}")), 0.0);
    assert_eq!(metric(&m, &format!("hydra_provisioner_serving_machines{X86}")), 1.0);
    assert_eq!(metric(&m, "hydra_provisioner_passes_total{outcome=\"failure\"}"), 1.0);
}

#[test]
fn a_pass_that_cannot_observe_the_fleet_is_counted_and_changes_nothing() {
    let site = Site::new(json!({"prometheusTextfile": "metrics/provisioner.prom"}));
    site.set_status(&status(T0, 25, json!({})));
    assert!(site.run(T0, &[]).status.success());
    site.knob("fail-export");
    let out = site.run(T0 + 300, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("cannot take the NixOps inventory"), "{}", stderr_of(&out));
    let m = site.metrics();
    assert_eq!(metric(&m, "hydra_provisioner_passes_total{outcome=\"unobserved\"}"), 1.0);
    assert_eq!(metric(&m, "hydra_provisioner_passes_total{outcome=\"success\"}"), 1.0);
    assert_eq!(metric(&m, "hydra_provisioner_last_success_timestamp_seconds"), T0 as f64);
    assert_eq!(metric(&m, &format!("hydra_provisioner_machines_created_total{X86}")), 1.0);
    assert!(!m.keys().any(|k| k.starts_with("hydra_provisioner_machines{")), "nothing observed: {m:#?}");
    assert_eq!(site.listed_ips().len(), 1, "the machines file is left as it was");
}

/// Every `hydra_provisioner_*` name in `text`, with `_total`, `_bucket`
/// and similar suffixes kept.
fn metric_names_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hydra_provisioner_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_alert_rules_and_dashboard_use_only_metrics_the_provisioner_writes() {
    let site = Site::new(json!({"prometheusTextfile": "metrics/provisioner.prom"}));
    site.set_status(&status(T0, 25, json!({})));
    assert!(site.run(T0, &[]).status.success());
    let textfile = std::fs::read_to_string(site.path().join("metrics/provisioner.prom")).unwrap();
    let written: std::collections::BTreeSet<String> = textfile
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for file in ["contrib/prometheus/hydra-provisioner.rules.yml", "contrib/grafana/hydra-provisioner.json"] {
        let text = std::fs::read_to_string(common::root().join(file)).unwrap();
        let used = metric_names_in(&text);
        assert!(used.len() >= 5, "{file} uses {used:?}");
        let unknown: Vec<&String> = used.difference(&written).collect();
        assert!(unknown.is_empty(), "{file} uses metrics the provisioner does not write: {unknown:?}");
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("contrib/grafana/hydra-provisioner.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().unwrap().iter().all(|p| !p["targets"].as_array().unwrap().is_empty()));
    // The textfile itself passes Prometheus's own linter.
    if have_promtool() {
        let out = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(site.path().join("metrics/provisioner.prom")).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout_of(&out), stderr_of(&out));
    }
}

// --- /status over https ------------------------------------------------------

/// A `/status` endpoint on 127.0.0.1 over TLS with a self-signed
/// certificate, answering 200 with `body` to requests bearing `token`, 401 to
/// others. Every request's head is kept. Stopped (and joined) on drop.
struct TlsStatusServer {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsStatusServer {
    fn start(certified: &rcgen::CertifiedKey<rcgen::KeyPair>, token: &str, body: &str) -> TlsStatusServer {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::io::{Read, Write};
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key)
                .unwrap();
        let config = std::sync::Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stopped, token, body) = (requests.clone(), stop.clone(), token.to_string(), body.to_string());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(sock) = conn else { continue };
                sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
                let tls = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut stream = rustls::StreamOwned::new(tls, sock);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                // A client that rejects the certificate ends the handshake: read fails.
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                if !head.ends_with(b"\r\n\r\n") {
                    continue;
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let authorised = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:") && l[14..].trim() == format!("Bearer {token}")
                });
                seen.lock().unwrap().push(head);
                let answer = if authorised {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = stream.write_all(answer.as_bytes());
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
        TlsStatusServer { port, requests, stop, thread: Some(thread) }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TlsStatusServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn status_over_https_with_a_bearer_token_and_a_trusted_self_signed_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let token = "s3cret-t0ken";
    let body = r#"{"queueRunner": {"status": "up", "time": "2023-11-14T22:13:20Z", "uptime": 90000.5,
        "queueStats": {"x86_64-linux": {"activeRunnable": 5, "totalRunnable": 30}}}, "machines": {}}"#;
    let server = TlsStatusServer::start(&certified, token, body);
    let site = Site::new(json!({}));
    let ca = common::write(site.path(), "runner-ca.pem", &certified.cert.pem());
    let token_file = common::write(site.path(), "status-token", &format!("{token}\n"));
    let configure = |top: Value| {
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(site.config()).unwrap()).unwrap();
        let base = config.as_object_mut().unwrap();
        base.remove("statusTokenFile");
        base.remove("statusCaFile");
        base.extend(top.as_object().unwrap().clone());
        common::write(site.path(), "conf.json", &config.to_string());
    };
    let url = format!("https://127.0.0.1:{}/status", server.port);
    configure(json!({"statusUrl": url, "statusCaFile": ca, "statusTokenFile": token_file}));

    // Trusted CA and the right token: the runner's demand is seen.
    let out = site.run(T0, &["--dry-run", "--json", "-vv"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let plan: Plan = serde_json::from_slice(&out.stdout).unwrap();
    let x86 = plan.types.iter().find(|t| t.machine_type == "x86_64-linux").unwrap();
    assert_eq!((x86.runnable, x86.wanted), (25, 3), "{}", stdout_of(&out));
    assert_eq!(plan.now.secs(), T0);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("GET /status HTTP/1.1\r\n"), "{}", requests[0]);
    assert!(requests[0].contains(&format!("Bearer {token}")));
    assert!(!stderr_of(&out).contains(token), "the token is never logged");
    // Not even when RUST_LOG asks every library for everything.
    let traced = common::bin()
        .arg("run")
        .arg(site.config())
        .args(["--dry-run", "--now", &T0.to_string()])
        .env("FAKE_NIXOPS_DIR", site.path().join("nixops"))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(traced.status.success(), "{}", stderr_of(&traced));
    assert!(!stderr_of(&traced).contains(token), "the token is never logged");
    let hex_dump = |l: &str| {
        l.split_once(" TRACE ").is_some_and(|(_, m)| {
            m.split(' ').take(4).all(|w| w.len() == 4 && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        })
    };
    assert!(!stderr_of(&traced).lines().any(hex_dump), "nor the request dumped as hex: {}", stderr_of(&traced));

    // A wrong token: the runner answers 401 and the status counts as down.
    let wrong = common::write(site.path(), "wrong-token", "nope\n");
    configure(json!({"statusUrl": url, "statusCaFile": ca, "statusTokenFile": wrong}));
    let out = site.run(T0, &["--dry-run"]);
    assert!(stderr_of(&out).contains("answered HTTP 401"), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("queue status unavailable") || !stdout_of(&out).contains("25 runnable"));

    // Without the CA file the self-signed certificate is not trusted.
    configure(json!({"statusUrl": url, "statusTokenFile": token_file}));
    let out = site.run(T0, &["--dry-run"]);
    let err = stderr_of(&out);
    assert!(err.contains("queue runner down") && err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(server.requests().len(), 3, "no request was sent over the untrusted connection");

    // A CA file that is not PEM is named as the problem.
    let garbage = common::write(site.path(), "garbage.pem", "not a certificate\n");
    configure(json!({"statusUrl": url, "statusCaFile": garbage}));
    let out = site.run(T0, &["--dry-run"]);
    assert!(stderr_of(&out).contains("holds no certificate"), "{}", stderr_of(&out));
}
