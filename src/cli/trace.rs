//! `hydra-provisioner trace`: import real Hydra history, generate synthetic
//! traces (also fitted to a real one), describe and check trace files.

mod import;

pub use import::parse_time;

use super::Failure;
use crate::trace::stats::{self, BurstRule, TraceStats};
use crate::trace::synth::{self as synth_mod, Synth, SynthParams};
use crate::trace::{StepSource, TraceReader, TraceWriter, format_seconds};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
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
        transient-probability; a parameter file (--params, or what --like prints) also sets hourly-profile, \
        kinds and jobsets.\n\nExamples:\n  hydra-provisioner trace synth --seed 7 --hours 24 \
        --set evaluations-per-day=4 -o traces/day.csv\n  \
        hydra-provisioner trace synth --like week.csv --hours 720 -o month.csv > fitted.toml")]
    Synth(SynthArgs),
    /// Read a trace and print what it contains; a bad row is an error naming file, line and column.
    Check {
        /// The trace (CSV, format v1; `-` reads standard input).
        file: PathBuf,
    },
    /// Import a real Hydra's history (its database or saved API responses) as a trace.
    Import {
        #[command(subcommand)]
        source: import::ImportCmd,
    },
    /// Describe a trace: arrivals by hour, durations per system and features, bursts, jobsets, dependencies.
    #[command(after_help = "A burst is a run of arrivals of one jobset at most --burst-gap apart with at least \
        --burst-min steps (an evaluation); the rest is background. Hours of the day count from the trace's zero.\n\n\
        Example:\n  hydra-provisioner trace stats traces/week.csv --json")]
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
pub struct BurstArgs {
    /// Largest gap in seconds between consecutive arrivals of one jobset within a burst.
    #[arg(long, default_value_t = 10.0)]
    pub burst_gap: f64,
    /// Fewest steps that make a burst.
    #[arg(long, default_value_t = 20)]
    pub burst_min: u64,
}

impl BurstArgs {
    fn rule(&self) -> Result<BurstRule, Failure> {
        if !(self.burst_gap.is_finite() && self.burst_gap >= 0.0) {
            return Err(Failure::input(anyhow::anyhow!("--burst-gap must be zero or more seconds")));
        }
        Ok(BurstRule { gap_ms: (self.burst_gap * 1000.0).round() as i64, min_steps: self.burst_min.max(1) })
    }
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The trace (CSV, format v1; `-` reads standard input).
    pub file: PathBuf,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bursts: BurstArgs,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Seed of the generator's random draws (ChaCha8): the same seed and parameters give the same
    /// trace, byte for byte, on every machine and version of the format.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length in hours [default: 24, or with --like the source trace's length].
    #[arg(long)]
    pub hours: Option<f64>,
    /// Fit the parameters to this trace (e.g. an imported one; `-` reads standard input) and print
    /// them; docs/trace-format.md, "Fitting".
    #[arg(long, value_name = "TRACE", conflicts_with = "params")]
    pub like: Option<PathBuf>,
    /// Start from parameters saved as TOML (what --like prints; `-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// With --like: print the fitted parameters and write no trace.
    #[arg(long, requires = "like")]
    pub fit_only: bool,
    #[command(flatten)]
    pub bursts: BurstArgs,
    /// Any other parameter, as KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output file (`-` is standard output) [default: standard output].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Builds the parameters from `base` (the defaults, a saved file or a fit)
/// and `KEY=VALUE` overrides.
pub fn synth_params(args: &SynthArgs, base: SynthParams) -> anyhow::Result<SynthParams> {
    let hours = args.hours.unwrap_or(base.hours);
    let mut table = match toml::Value::try_from(base)? {
        toml::Value::Table(t) => t,
        _ => anyhow::bail!("parameters do not form a table"),
    };
    table.insert("seed".into(), toml::Value::Integer(i64::try_from(args.seed)?));
    table.insert("hours".into(), toml::Value::Float(hours));
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
        TraceCmd::Import { source } => import::run(source),
        TraceCmd::Stats(a) => stats_cmd(a),
    }
}

fn trace_stats(file: &Path, rule: BurstRule) -> Result<TraceStats, Failure> {
    let f = super::open_input(file, "trace")?;
    let mut reader = TraceReader::new(std::io::BufReader::with_capacity(1 << 16, f), super::input_name(file));
    stats::compute(&mut reader, rule).map_err(Failure::input)
}

fn stats_cmd(args: StatsArgs) -> Result<ExitCode, Failure> {
    let stats = trace_stats(&args.file, args.bursts.rule()?)?;
    let text =
        if args.json { serde_json::to_string_pretty(&stats).map_err(Failure::failed)? + "\n" } else { stats.to_text() };
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The parameters a `synth` command starts from.
fn base_params(args: &SynthArgs) -> Result<SynthParams, Failure> {
    if let Some(like) = &args.like {
        let stats = trace_stats(like, args.bursts.rule()?)?;
        if stats.steps == 0 {
            return Err(Failure::input(anyhow::anyhow!("{}: the trace has no steps to fit", like.display())));
        }
        return Ok(synth_mod::fit(&stats, args.seed, stats.hours as f64));
    }
    if let Some(path) = &args.params {
        let text = super::read_input(path, "parameters")?;
        return toml::from_str(&text)
            .with_context(|| format!("parameters {} are not valid", super::input_name(path)))
            .map_err(Failure::input);
    }
    Ok(SynthParams::default())
}

fn synth(args: SynthArgs) -> Result<ExitCode, Failure> {
    let base = base_params(&args)?;
    let params = synth_params(&args, base).map_err(Failure::input)?;
    if args.like.is_some() {
        let text = toml::to_string(&params).map_err(Failure::failed)?;
        let header = "# Fitted by `hydra-provisioner trace synth --like`; reuse with --params FILE.\n";
        // The parameters go to stdout unless the trace does.
        if args.fit_only || args.out.as_deref().is_some_and(|p| !super::is_stdin(p)) {
            super::write_stdout(&format!("{header}{text}"))?;
        } else {
            eprint!("{header}{text}");
        }
        if args.fit_only {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut synth = Synth::new(params).map_err(|e| Failure::input(anyhow::anyhow!(e)))?;
    let out: Box<dyn Write> = match args.out.as_deref().filter(|p| !super::is_stdin(p)) {
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
    let f = super::open_input(&file, "trace")?;
    let name = super::input_name(&file);
    let mut reader = TraceReader::new(std::io::BufReader::new(f), name.clone());
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
        "{name}: format v{}, {n} steps, arrivals {}..{} s, mean duration {} s, {deps} dependencies\n",
        crate::trace::FORMAT_VERSION,
        format_seconds(first.unwrap_or(0)),
        format_seconds(last),
        format_seconds(mean)
    ))?;
    Ok(ExitCode::SUCCESS)
}
