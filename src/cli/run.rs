//! `hydra-provisioner run conf.nix` (or just `hydra-provisioner conf.nix`,
//! as the original was called): one production pass. This module reads the
//! config and the clock and maps the pass's outcome to an exit code; the
//! pass itself is `driver::run_pass`.

use super::Failure;
use crate::config;
use crate::driver::{self, PassOptions, PassOutcome};
use crate::model::Timestamp;
use crate::passes::{PassRecord, Recorder};
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `run --help`'s description (set on the subcommand in `cli`, where the
/// variant's doc comment would otherwise replace it).
pub const LONG_ABOUT: &str = "Run one pass against the live system: read the queue runner's status, take the \
    NixOps inventory, decide, then create, deploy, write the machines file, and stop or destroy what \
    is no longer needed. Meant to be started every few minutes by a systemd timer (see \
    nix/module.nix and systemd/). Overlapping passes do not run twice: a pass that finds the lock in \
    stateDir held logs it and exits 0.\n\n\
    `hydra-provisioner CONFIG` (the original's command line) means `hydra-provisioner run CONFIG`.";

#[derive(Args, Debug)]
#[command(after_help = "Exit codes: 0 everything succeeded (or another pass holds the lock), 1 a command \
        failed or the fleet could not be observed, 2 bad config.\n\n\
        Examples:\n  hydra-provisioner run /etc/hydra-provisioner/conf.nix --dry-run\n  \
        hydra-provisioner run /etc/hydra-provisioner/conf.nix --dry-run --json | jq '.commands'")]
pub struct RunArgs {
    /// Configuration: conf.nix (evaluated with nix-instantiate), or .json/.toml with the same schema.
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Print the plan with its reasons and change nothing (no NixOps changes, no file writes).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON (the same document as `plan --json`) instead of text.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Run the pass as if it were this Unix time, with a fraction if wanted [default: the system clock]. For tests and replays.
    #[arg(long, value_name = "EPOCH")]
    pub now: Option<Timestamp>,
    /// Append the pass's status, fleet, config fingerprint and plan as one JSON line to DIR/passes.jsonl,
    /// rotated by size, for `hydra-provisioner replay` [default: the config's `recordDir`].
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let (config, warnings) = config::load(&args.config).map_err(Failure::input)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let config_dir = config_dir(&args.config).map_err(Failure::input)?;
    let now = match args.now {
        Some(now) => now,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| Timestamp::from_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            .map_err(|e| Failure::failed(anyhow::anyhow!("the system clock is before 1970: {e}")))?,
    };
    let opts = PassOptions { now, dry_run: args.dry_run, config_dir };
    // NixOps runs in process groups of its own, out of reach of a terminal's
    // Ctrl-C or a service manager's SIGTERM: pass those on and wait for them.
    if let Err(e) = crate::adapters::process::forward_termination_signals() {
        tracing::warn!("cannot handle SIGINT/SIGTERM ({e}); a signal ends the pass without its commands");
    }
    let outcome = driver::run_pass(&config, &opts).map_err(Failure::failed)?;
    let mut record_failure = None;
    if let (Some(dir), PassOutcome::Done { plan, observation, status_document, .. }) =
        (args.record.as_ref().or(config.record_dir.as_ref()), &outcome)
    {
        let record = PassRecord::production(&config, now, status_document.as_ref(), observation, plan);
        if let Err(e) = Recorder::for_config(dir, &config).append(&record) {
            record_failure = Some(format!("cannot record the pass in {}: {e:#}", dir.display()));
        }
    }
    match outcome {
        PassOutcome::Locked { lock_file } => {
            tracing::info!("another pass holds {}; this one does nothing", lock_file.display());
            Ok(ExitCode::SUCCESS)
        }
        PassOutcome::DryRun { plan } if args.json => {
            let json = serde_json::to_string_pretty(&plan).map_err(Failure::failed)?;
            super::write_stdout(&(json + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        PassOutcome::DryRun { plan } => {
            super::write_stdout(&plan.to_text())?;
            Ok(ExitCode::SUCCESS)
        }
        PassOutcome::Done { failures, .. } if failures.is_empty() && record_failure.is_none() => Ok(ExitCode::SUCCESS),
        PassOutcome::Done { failures, .. } => {
            for f in failures.iter().chain(&record_failure) {
                eprintln!("failed: {f}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// The directory deploys get as `-I hydra-provisioner=<dir>` (the original
/// passed its config's directory so network expressions can import files next to it).
fn config_dir(config: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::fs::canonicalize(config).with_context(|| format!("cannot read config {}", config.display()))?;
    Ok(abs.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf))
}
