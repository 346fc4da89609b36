//! `hydra-provisioner replay PASSES --config CANDIDATE`: the candidate's
//! decisions on recorded passes, compared with the recorded ones. Reading
//! the records is `passes`, the comparison `replay`; this module filters,
//! prints and picks the exit code.

use super::Failure;
use crate::config;
use crate::passes::{read_records, record_files};
use crate::replay::Replay;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

pub const LONG_ABOUT: &str = "Run a candidate configuration over recorded passes and report where its \
    decisions differ from the recorded ones: per pass and in total, machines wanted, created, kept, \
    drained, stopped and destroyed, and the machine-hours the plans imply.\n\n\
    Passes come from `run --record DIR` (or the config's `recordDir`: JSON lines, rotated by size) or \
    from `simulate --record-passes --out DIR`. The replay is open loop: each pass is decided from what \
    was recorded, so the candidate's own earlier decisions do not change what it sees.";

#[derive(Args, Debug)]
#[command(after_help = "Exit codes: 0 the report was made (with --fail-on-difference: and nothing differs), \
        1 decisions differ and --fail-on-difference was given, 2 bad input.\n\n\
        Examples:\n  hydra-provisioner replay /var/lib/hydra-provisioner/passes --config candidate.nix --since 2026-11-20\n  \
        hydra-provisioner replay out/passes --config out/conf.json --json")]
pub struct ReplayArgs {
    /// Recorded passes: a record directory, a simulate --out directory, or one .jsonl/.json file.
    #[arg(value_name = "PASSES")]
    pub passes: PathBuf,
    /// The candidate configuration: conf.nix, or .json/.toml with the same schema.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Only passes at or after this time (Unix seconds, YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = super::trace::parse_time)]
    pub since: Option<i64>,
    /// Only passes before this time (Unix seconds, YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = super::trace::parse_time)]
    pub until: Option<i64>,
    /// Print the report as JSON (every differing pass).
    #[arg(long)]
    pub json: bool,
    /// List every differing pass, not only the first 20.
    #[arg(long)]
    pub all: bool,
    /// Exit 1 when any decision differs (a gate for CI).
    #[arg(long)]
    pub fail_on_difference: bool,
}

pub fn run(args: ReplayArgs) -> Result<ExitCode, Failure> {
    let (candidate, warnings) = config::load(&args.config).map_err(Failure::input)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let files = record_files(&args.passes).map_err(Failure::input)?;
    let mut replay = Replay::new(&candidate);
    let mut last_now = i64::MIN;
    for file in &files {
        read_records(file, |record, place| {
            if args.since.is_some_and(|s| record.now.secs() < s) || args.until.is_some_and(|u| record.now.secs() >= u) {
                return Ok(());
            }
            if record.now.secs() < last_now {
                tracing::warn!("{place}: pass at {} comes before the previous one at {last_now}", record.now);
            }
            last_now = record.now.secs();
            replay.push(&record, place);
            Ok(())
        })
        .map_err(Failure::input)?;
    }
    let report = replay.finish();
    if report.passes == 0 {
        return Err(Failure::input(anyhow::anyhow!("no recorded passes in the chosen time range")));
    }
    if args.json {
        super::write_stdout(&(serde_json::to_string_pretty(&report).map_err(Failure::failed)? + "\n"))?;
    } else {
        super::write_stdout(&report.to_text(if args.all { usize::MAX } else { 20 }))?;
    }
    if args.fail_on_difference && report.differing_passes > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
