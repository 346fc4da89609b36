//! `hydra-provisioner sweep SWEEP.toml --out DIR`: run a grid of policies
//! over seeds, write the per-run and per-point CSVs, the Pareto frontier as
//! CSV, SVG and PNG, and an HTML report, and print the frontier.
//!
//! This is the shell around `policy`: it reads files, runs simulations on a
//! bounded pool of std threads and writes files. Results are stored by run
//! index, never in completion order, so the output does not depend on thread
//! timing or count. Also home of [`run_batch`], which `compare` shares.

use super::Failure;
use crate::metrics::Summary;
use crate::policy::results::{Metrics, SweepResults};
use crate::policy::sweep::{Base, Sweep};
use crate::policy::{plot, report};
use crate::sim::{self, NoObserver, Scenario, SimError};
use crate::trace::TraceReader;
use anyhow::Context;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    long_about = "Run every combination of policy settings (the axes of a sweep file) once per seed over the \
        sweep's base scenario, and report cost and latency per run and per point, the Pareto frontier of \
        mean cost and mean p95 wait, a chart of it and an HTML report.\n\n\
        The sweep file format is described in docs/sweep-format.md.",
    after_help = "Example:\n  hydra-provisioner sweep scenarios/sweep-quick-start.toml --out reports/sweep-quick-start\n\n\
        Files written to --out: points.csv (one row per point and seed), summary.csv (mean per point), \
        pareto.csv, pareto.svg, pareto.png, report.html."
)]
pub struct SweepArgs {
    /// Sweep file (TOML, docs/sweep-format.md).
    pub sweep: PathBuf,
    /// Directory for the results (created if missing; files in it are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Simulations run at once [default: the number of available cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(super) fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(len);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// The number of threads to use: `--jobs`, else the available cores.
pub(super) fn threads(jobs: Option<u32>) -> usize {
    jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize)
}

/// Reads a scenario's trace once, for all the runs that replay it.
pub(super) fn read_trace(scenario: &Scenario) -> Result<Vec<u8>, Failure> {
    std::fs::read(&scenario.trace)
        .with_context(|| format!("cannot read the trace {}", scenario.trace.display()))
        .map_err(Failure::input)
}

fn sim_failure(e: SimError, what: &str) -> Failure {
    let internal = matches!(e, SimError::Internal(_));
    let e = anyhow::Error::from(e).context(format!("run {what}"));
    if internal { Failure::failed(e) } else { Failure::input(e) }
}

/// One simulation: a scenario (its seed already set), the trace's bytes, and
/// how to name it in an error.
pub(super) struct Job<'a> {
    pub scenario: Scenario,
    pub trace: &'a [u8],
    pub name: String,
}

/// Runs the jobs on up to `threads` threads and returns their summaries in
/// job order. On failure, the error of the first failed job in job order.
pub(super) fn run_batch(
    jobs: &[Job<'_>],
    threads: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Summary>, Failure> {
    let results = crate::pool::parallel(jobs, threads, |job| {
        let mut source = TraceReader::new(job.trace, job.scenario.trace.display().to_string());
        let result = sim::run(&job.scenario, &mut source, &mut NoObserver);
        bar.inc(1);
        result
    });
    if results.len() != jobs.len() {
        return Err(Failure::failed(anyhow::anyhow!(
            "{} of {} runs did not finish",
            jobs.len() - results.len(),
            jobs.len()
        )));
    }
    jobs.iter().zip(results).map(|(job, r)| r.map_err(|e| sim_failure(e, &job.name))).collect()
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
        .map_err(Failure::input)
}

pub fn run(args: SweepArgs) -> Result<ExitCode, Failure> {
    let origin = args.sweep.display().to_string();
    let sweep = Sweep::parse(&read(&args.sweep, "sweep file")?, &origin, crate::config::directory_of(&args.sweep))
        .map_err(Failure::input)?;
    let base_origin = sweep.scenario.display().to_string();
    let base = Base::parse(
        &read(&sweep.scenario, "base scenario")?,
        &base_origin,
        crate::config::directory_of(&sweep.scenario),
    )
    .map_err(Failure::input)?;
    base.check(&sweep).map_err(Failure::input)?;
    let seeds = sweep.seeds.clone().unwrap_or_else(|| vec![base.scenario.seed]);
    let points = sweep.points();
    let trace = read_trace(&base.scenario)?;
    let mut jobs = Vec::with_capacity(points.len() * seeds.len());
    for point in &points {
        let scenario = base.point(&sweep, point).map_err(Failure::input)?;
        for &seed in &seeds {
            let mut scenario = scenario.clone();
            scenario.seed = seed;
            let name = format!("point {} ({}) seed {seed}", point.index, sweep.label(point));
            jobs.push(Job { scenario, trace: &trace, name });
        }
    }
    let threads = threads(args.jobs);
    tracing::info!(
        "sweep {}: {} point(s) x {} seed(s) = {} runs on {threads} thread(s)",
        sweep.name,
        points.len(),
        seeds.len(),
        jobs.len()
    );
    let bar = progress_bar(jobs.len() as u64);
    let summaries = run_batch(&jobs, threads, &bar)?;
    bar.finish_and_clear();
    let metrics = summaries.iter().map(Metrics::from_summary).collect();
    let results = SweepResults::new(
        sweep,
        seeds,
        metrics,
        base.scenario.name.clone(),
        base.scenario.trace_text.clone(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    write_results(&args.out, &results)?;
    super::write_stdout(&format!(
        "{}\nwritten to {}: points.csv summary.csv pareto.csv pareto.svg pareto.png report.html\n",
        results.frontier_table(),
        args.out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn write_results(dir: &Path, r: &SweepResults) -> Result<(), Failure> {
    let svg = plot::svg(r).map_err(Failure::failed)?;
    let png = plot::png(r).map_err(Failure::failed)?;
    let html = report::html(r, &svg);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(Failure::failed)?;
    let files: [(&str, &[u8]); 6] = [
        ("points.csv", &r.points_csv()),
        ("summary.csv", &r.summary_csv()),
        ("pareto.csv", &r.pareto_csv()),
        ("pareto.svg", svg.as_bytes()),
        ("pareto.png", &png),
        ("report.html", html.as_bytes()),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::failed)?;
    }
    Ok(())
}
