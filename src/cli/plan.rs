//! `hydra-provisioner plan`: the engine's answer for given inputs, with
//! every reason. Reads files only; changes nothing.

use super::Failure;
use crate::config;
use crate::engine;
use crate::model::{Fleet, Observation, Timestamp};
use crate::status;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

pub const LONG_ABOUT: &str = "Show what the engine would do for a given config, queue status and fleet.\n\n\
    Reads a configuration (conf.nix evaluated with nix-instantiate, or the same schema as .json/.toml), \
    a status document as `hydra-queue-runner --status` prints it, and a fleet file (the provisioned \
    deployments, format in README.md), then prints the plan: per machine type the demand, per machine \
    the action and its reason, the ordered commands and the machines file. Nothing is changed.";

pub const AFTER_HELP: &str = "Examples:\n  hydra-provisioner plan --config scenarios/example/conf.json \\\n    \
    --status scenarios/example/status.json --fleet scenarios/example/fleet.json\n  \
    ssh hydra hydra-queue-runner --status | hydra-provisioner plan -c conf.nix -s -\n  \
    nix-instantiate --eval --strict --json conf.nix | hydra-provisioner plan -c - -s status.json";

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Configuration: conf.nix, or .json/.toml with the same schema; `-` reads its evaluated JSON
    /// from standard input (relative paths in it resolve against the current directory).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Queue runner status JSON, as `hydra-queue-runner --status` prints it (`-` reads standard input).
    #[arg(long, short = 's', value_name = "FILE")]
    pub status: PathBuf,
    /// Fleet JSON: the provisioned deployments (omit for an empty fleet; `-` reads standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// The time of the pass, Unix seconds, with a fraction if wanted (e.g. 1700000000.5) [default: the status's `time`].
    #[arg(long, value_name = "EPOCH")]
    pub now: Option<Timestamp>,
    /// Print the plan as JSON instead of text (times stay Unix seconds).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PlanArgs) -> Result<ExitCode, Failure> {
    let inputs = [("--config", args.config.as_path()), ("--status", args.status.as_path())]
        .into_iter()
        .chain(args.fleet.as_deref().map(|f| ("--fleet", f)));
    super::stdin_at_most_once(inputs)?;
    let (config, warnings) = if super::is_stdin(&args.config) {
        // What `nix-instantiate --eval --strict --json conf.nix` prints.
        let text = super::read_input(&args.config, "config")?;
        let value: serde_json::Value =
            serde_json::from_str(&text).context("the config on standard input is not JSON").map_err(Failure::input)?;
        config::parse(&value, "<stdin>", std::env::current_dir().ok().as_deref()).map_err(Failure::input)?
    } else {
        config::load(&args.config).map_err(Failure::input)?
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let text = super::read_input(&args.status, "status file")?;
    let status = status::parse_status(&text, &super::input_name(&args.status)).map_err(Failure::input)?;
    let fleet = match &args.fleet {
        None => Fleet::default(),
        Some(path) => {
            let text = super::read_input(path, "fleet file")?;
            serde_json::from_str(&text)
                .with_context(|| format!("fleet file {} is not valid", super::input_name(path)))
                .map_err(Failure::input)?
        }
    };
    let now = match args.now.or(status.time.map(Timestamp::from_secs)) {
        Some(now) => now,
        None => return Err(Failure::input(anyhow::anyhow!("--now is required: the status has no `time`"))),
    };
    let plan = engine::decide(&config, &Observation { status, fleet }, now);
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&plan).map_err(Failure::failed)?;
        json.push('\n');
        json
    } else {
        plan.to_text()
    };
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
