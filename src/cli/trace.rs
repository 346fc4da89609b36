//! `hydra-provisioner trace`: generate synthetic traces and check trace files.

use super::Failure;
use crate::trace::synth::{Synth, SynthParams};
use crate::trace::{StepSource, TraceReader, TraceWriter, format_seconds};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub command: TraceCmd,
}

#[derive(Subcommand, Debug)]
pub enum TraceCmd {
    /// Generate a synthetic trace (format v1) from seeded parameters.
    #[command(after_help = "Parameters (defaults in docs/trace-format.md): seed, hours, background-per-hour, \
        diurnal-amplitude, peak-hour, evaluations-per-day, burst-median, burst-sigma, burst-max, burst-spread, \
        duration-median, duration-sigma, duration-max, dependency-probability, failure-probability, \
        transient-probability.\n\nExample:\n  hydra-provisioner trace synth --seed 7 --hours 24 \
        --set evaluations-per-day=4 -o traces/day.csv")]
    Synth(SynthArgs),
    /// Read a trace and print what it contains; a bad row is an error naming file, line and column.
    Check {
        /// The trace (CSV, format v1).
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length in hours.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Any other parameter, as KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output file [default: stdout].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

/// Builds the parameters from defaults and `KEY=VALUE` overrides.
pub fn synth_params(args: &SynthArgs) -> anyhow::Result<SynthParams> {
    let mut table = match toml::Value::try_from(SynthParams::default())? {
        toml::Value::Table(t) => t,
        _ => anyhow::bail!("parameters do not form a table"),
    };
    table.insert("seed".into(), toml::Value::Integer(i64::try_from(args.seed)?));
    table.insert("hours".into(), toml::Value::Float(args.hours));
    for kv in &args.set {
        let Some((key, value)) = kv.split_once('=') else {
            anyhow::bail!("--set {kv}: expected KEY=VALUE");
        };
        let key = key.trim();
        let old = table.get(key).with_context(|| format!("--set {kv}: unknown parameter `{key}`"))?;
        let value: toml::Value = match old {
            toml::Value::Float(_) => {
                toml::Value::Float(value.trim().parse().with_context(|| format!("--set {kv}: not a number"))?)
            }
            toml::Value::Integer(_) => {
                toml::Value::Integer(value.trim().parse().with_context(|| format!("--set {kv}: not an integer"))?)
            }
            _ => anyhow::bail!("--set {kv}: `{key}` cannot be set"),
        };
        table.insert(key.to_string(), value);
    }
    Ok(toml::Value::Table(table).try_into()?)
}

pub fn run(args: TraceArgs) -> Result<ExitCode, Failure> {
    match args.command {
        TraceCmd::Synth(a) => synth(a),
        TraceCmd::Check { file } => check(file),
    }
}

fn synth(args: SynthArgs) -> Result<ExitCode, Failure> {
    let params = synth_params(&args).map_err(Failure::input)?;
    let mut synth = Synth::new(params).map_err(|e| Failure::input(anyhow::anyhow!(e)))?;
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("cannot create {}", p.display()))
                .map_err(Failure::failed)?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut writer = TraceWriter::new(out).map_err(Failure::failed)?;
    let mut n = 0u64;
    while let Some(row) = synth.next_step() {
        let row = row.map_err(Failure::failed)?;
        writer.write(&row, synth.symbols()).map_err(Failure::failed)?;
        n += 1;
    }
    writer.finish().map_err(Failure::failed)?.flush().map_err(Failure::failed)?;
    tracing::info!("wrote {n} steps");
    Ok(ExitCode::SUCCESS)
}

fn check(file: PathBuf) -> Result<ExitCode, Failure> {
    let f = std::fs::File::open(&file)
        .with_context(|| format!("cannot open trace {}", file.display()))
        .map_err(Failure::input)?;
    let mut reader = TraceReader::new(std::io::BufReader::new(f), file.display().to_string());
    let (mut n, mut first, mut last, mut work, mut deps) = (0u64, None, 0i64, 0i128, 0u64);
    while let Some(row) = reader.next_step() {
        let row = row.map_err(Failure::input)?;
        n += 1;
        first.get_or_insert(row.submitted_ms);
        last = row.submitted_ms;
        work += i128::from(row.duration_ms);
        deps += row.depends_on.len() as u64;
    }
    let mean = if n > 0 { (work / i128::from(n)) as i64 } else { 0 };
    super::write_stdout(&format!(
        "{}: format v{}, {n} steps, arrivals {}..{} s, mean duration {} s, {deps} dependencies\n",
        file.display(),
        crate::trace::FORMAT_VERSION,
        format_seconds(first.unwrap_or(0)),
        format_seconds(last),
        format_seconds(mean)
    ))?;
    Ok(ExitCode::SUCCESS)
}
