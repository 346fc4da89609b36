//! `hydra-provisioner sweep SWEEP.toml --out DIR`: run a grid of policies
//! over seeds, write the per-run and per-point CSVs, the Pareto frontier as
//! CSV, SVG and PNG, and an HTML report, and print the frontier.
//!
//! This is the shell around `policy`: it reads files, runs simulations on a
//! bounded pool of std threads and writes files. Results are stored by run
//! index, never in completion order, so the output does not depend on thread
//! timing or count. Also home of [`run_batch`], which `compare` shares.

use super::Failure;
use crate::config::Quirks;
use crate::metrics::Summary;
use crate::policy::results::{RunFigures, SweepResults, quirks_name};
use crate::policy::shard::{self, Partial, Shard, ShardRun};
use crate::policy::sweep::{Axis, Base, Role, Sweep};
use crate::policy::{plot, report};
use crate::sim::{self, NoObserver, Scenario, SimError};
use crate::trace::TraceReader;
use crate::trace::background::Loaded;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    long_about = "Run every combination of the axes of a sweep file (policy settings, cloud settings, traces \
        or windows of one) once per seed over the sweep's base scenario, and report cost and latency per run \
        and per point with the range over its runs, the Pareto frontier of mean cost and mean p95 wait for each \
        cloud setting, a chart of it and an HTML report.\n\n\
        With --shard K/N only the K-th of N slices of the runs is run, and its figures are written to \
        DIR/shard-K-of-N.json; `sweep merge` combines the N files into the files a whole sweep writes, \
        byte for byte. The sweep file format is described in docs/sweep-format.md.",
    after_help = "Examples:\n  hydra-provisioner sweep scenarios/sweep-quick-start.toml --out reports/sweep-quick-start\n  \
        hydra-provisioner sweep big.toml --shard 3/8 --out parts/\n  \
        hydra-provisioner sweep merge parts/ --out report/\n\n\
        Files written to --out: points.csv (one row per run), summary.csv (mean and range per point), \
        pareto.csv (each cloud setting's frontier), groups.csv (per point and machine type or jobset), \
        pareto.svg, pareto.png, report.html (or shard-K-of-N.json with --shard). \
        contrib/ has ways to run the shards with GNU parallel over ssh and as a Kubernetes Indexed Job.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: Option<SweepCmd>,
    /// Sweep file (TOML, docs/sweep-format.md).
    #[arg(required = true)]
    pub sweep: Option<PathBuf>,
    /// Directory for the results (created if missing; files in it are replaced).
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Simulations run at once [default: the number of available cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Run only the K-th (from 1) of N disjoint slices of the runs and write DIR/shard-K-of-N.json.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

#[derive(Subcommand, Debug)]
pub enum SweepCmd {
    /// Combine the shard-K-of-N.json files of all N slices of a sweep into the files a whole sweep writes.
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Directories holding the shard files (every shard-*-of-*.json in them is read).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Directory for the merged results (created if missing; files in it are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
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

/// Reads and parses a scenario's trace once, for all the runs that replay it.
pub(super) fn read_trace(scenario: &Scenario) -> Result<Loaded, Failure> {
    let file = std::fs::File::open(&scenario.trace)
        .with_context(|| format!("cannot read the trace {}", scenario.trace.display()))
        .map_err(Failure::input)?;
    let mut reader =
        TraceReader::new(std::io::BufReader::with_capacity(1 << 16, file), scenario.trace.display().to_string());
    Loaded::read(&mut reader).map_err(Failure::input)
}

fn sim_failure(e: SimError, what: &str) -> Failure {
    let internal = matches!(e, SimError::Internal(_));
    let e = anyhow::Error::from(e).context(format!("run {what}"));
    if internal { Failure::failed(e) } else { Failure::input(e) }
}

/// The time of a trace's last arrival.
fn trace_span_ms(trace: &Loaded) -> i64 {
    trace.rows().last().map_or(0, |row| row.submitted_ms)
}

/// One simulation: a scenario (its seed already set), the parsed trace it
/// shares with the other runs, and how to name it in an error.
pub(super) struct Job<'a> {
    pub scenario: Scenario,
    pub trace: &'a Loaded,
    pub name: String,
}

/// Runs the jobs on up to `threads` threads and returns their summaries in
/// job order. On failure, the error of the first failed job in job order.
pub(super) fn run_batch(
    jobs: &[Job<'_>],
    threads: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Summary>, Failure> {
    // Each trace's digest in each window, computed once for all the runs
    // that replay it rather than over every row of every run.
    let mut digests: Vec<(&Loaded, Option<sim::Window>, String)> = vec![];
    let mut digest_of_job = Vec::with_capacity(jobs.len());
    for job in jobs {
        let window = job.scenario.window;
        let known = digests.iter().position(|(t, w, _)| std::ptr::eq(*t, job.trace) && *w == window);
        let index = match known {
            Some(i) => i,
            None => {
                let digest = sim::input::trace_digest(job.trace, window)
                    .map_err(|e| sim_failure(SimError::from(e), &job.name))?;
                digests.push((job.trace, window, digest));
                digests.len() - 1
            }
        };
        digest_of_job.push(index);
    }
    let indexed: Vec<(&Job<'_>, &str)> =
        jobs.iter().zip(&digest_of_job).map(|(job, &i)| (job, digests[i].2.as_str())).collect();
    if jobs.len() > 1 {
        keep_freed_memory_for_the_next_run();
    }
    let results = crate::pool::parallel(&indexed, threads, |&(job, digest)| {
        let result = sim::run_loaded(&job.scenario, job.trace, digest, &mut NoObserver);
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

/// Asks glibc's allocator to keep what a run frees for the next run on the
/// same thread. By default it hands large blocks and a heap's freed top back
/// to the kernel, so every run of a batch faulted its tables in afresh: about
/// 2,000 page faults a run, 2% of a sweep's CPU time, all of it in the
/// kernel. The cost is a batch's peak memory, which stays at its largest
/// run's (BENCHMARKS.md, "A batch's runs reuse their memory"). Other C
/// libraries are left alone; a setting glibc refuses changes nothing.
fn keep_freed_memory_for_the_next_run() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's largest allowed threshold on 64-bit targets: blocks up to
        // 32 MiB come from the heaps, which are then trimmed only past 1 GiB
        // free at their top.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes two of the allocator's thresholds,
        // under the allocator's own lock; memory already handed out is not
        // touched.
        let accepted = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if !accepted {
            tracing::debug!("the C library kept its own memory thresholds");
        }
    }
}

pub(super) fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
        .map_err(Failure::input)
}

/// A sweep file read and checked, with every grid point's scenario and the
/// traces they replay, each parsed once.
pub(super) struct Prepared {
    pub origin: String,
    pub sweep: Sweep,
    pub sweep_text: String,
    pub base: Base,
    pub base_text: String,
    pub seeds: Vec<u64>,
    /// Per grid point: its scenario and the index of its trace in `traces`.
    pub points: Vec<(Scenario, usize)>,
    pub traces: Vec<Loaded>,
}

impl Prepared {
    /// Reads the sweep file and its base scenario, checks every axis value,
    /// builds every point's scenario and loads the traces; `seeds` overrides
    /// the sweep's.
    pub fn read(sweep_path: &Path, seeds: Option<Vec<u64>>) -> Result<Prepared, Failure> {
        let origin = sweep_path.display().to_string();
        let sweep_text = read(sweep_path, "sweep file")?;
        let sweep =
            Sweep::parse(&sweep_text, &origin, crate::config::directory_of(sweep_path)).map_err(Failure::input)?;
        Self::from_sweep(origin, sweep, sweep_text, seeds, None)
    }

    /// Builds a sweep's runs; `seeds` overrides the sweep's, and `split`
    /// (seconds) adds a sample axis of consecutive windows of that length
    /// covering the longest trace.
    pub fn from_sweep(
        origin: String,
        mut sweep: Sweep,
        sweep_text: String,
        seeds: Option<Vec<u64>>,
        split: Option<f64>,
    ) -> Result<Prepared, Failure> {
        let base_origin = sweep.scenario.display().to_string();
        let base_text = read(&sweep.scenario, "base scenario")?;
        let base = Base::parse(&base_text, &base_origin, crate::config::directory_of(&sweep.scenario))
            .map_err(Failure::input)?;
        base.check(&sweep).map_err(Failure::input)?;
        let seeds = seeds.or_else(|| sweep.seeds.clone()).unwrap_or_else(|| vec![base.scenario.seed]);
        let mut trace_paths: Vec<PathBuf> = vec![];
        let mut traces = vec![];
        for point in sweep.points() {
            let scenario = base.point(&sweep, &point).map_err(Failure::input)?;
            if !trace_paths.contains(&scenario.trace) {
                traces.push(read_trace(&scenario)?);
                trace_paths.push(scenario.trace);
            }
        }
        if let Some(len) = split {
            if sweep.axes.iter().any(|a| a.in_scenario && a.segments == ["window"]) {
                return Err(Failure::input(anyhow::anyhow!("--windows: {} already has a window axis", origin)));
            }
            let span = traces.iter().map(trace_span_ms).max().unwrap_or(0);
            sweep.axes.push(Axis {
                path: "window".into(),
                segments: vec!["window".into()],
                values: super::recommend::windows(span, len),
                in_scenario: true,
                role: Role::Sample,
            });
            base.check(&sweep).map_err(Failure::input)?;
        }
        let mut points = vec![];
        for point in sweep.points() {
            let scenario = base.point(&sweep, &point).map_err(Failure::input)?;
            let t = trace_paths.iter().position(|p| *p == scenario.trace).unwrap_or(0);
            points.push((scenario, t));
        }
        Ok(Prepared { origin, sweep, sweep_text, base, base_text, seeds, points, traces })
    }

    /// The jobs of the runs this shard runs (all without a shard), and
    /// their run indices (grid point times seeds plus seed).
    pub fn jobs(&self, shard: Option<Shard>) -> (Vec<Job<'_>>, Vec<usize>) {
        let mut jobs = vec![];
        let mut indices = vec![];
        for ((p, (scenario, t)), point) in self.points.iter().enumerate().zip(self.sweep.points()) {
            for (s, &seed) in self.seeds.iter().enumerate() {
                let run = p * self.seeds.len() + s;
                if !shard.is_none_or(|shard| shard.has(run)) {
                    continue;
                }
                let mut scenario = scenario.clone();
                scenario.seed = seed;
                let name = format!("point {p} ({}) seed {seed}", self.sweep.label(&point));
                jobs.push(Job { scenario, trace: &self.traces[*t], name });
                indices.push(run);
            }
        }
        (jobs, indices)
    }

    /// A digest of every trace the sweep replays.
    pub fn trace_digest(&self) -> String {
        self.traces.iter().map(Loaded::digest).collect::<Vec<_>>().join("+")
    }

    pub fn quirks(&self) -> Vec<Quirks> {
        self.points.iter().map(|(s, _)| s.config.quirks).collect()
    }

    /// Runs every job (or a shard's) on `threads` threads.
    pub fn run(&self, shard: Option<Shard>, threads: usize) -> Result<(Vec<Summary>, Vec<usize>), Failure> {
        let (jobs, indices) = self.jobs(shard);
        let runs = self.points.len() * self.seeds.len();
        tracing::info!(
            "sweep {}: {} grid point(s) x {} seed(s) = {runs} runs{} on {threads} thread(s)",
            self.sweep.name,
            self.points.len(),
            self.seeds.len(),
            shard.map_or(String::new(), |s| format!(", {} of them in shard {}/{}", jobs.len(), s.index, s.count)),
        );
        let bar = progress_bar(jobs.len() as u64);
        let summaries = run_batch(&jobs, threads, &bar)?;
        bar.finish_and_clear();
        Ok((summaries, indices))
    }

    /// The results of all runs (in run order).
    pub fn results(&self, runs: Vec<RunFigures>) -> SweepResults {
        SweepResults::new(
            self.sweep.clone(),
            self.seeds.clone(),
            runs,
            self.quirks(),
            self.base.scenario.name.clone(),
            self.base.scenario.trace_text.clone(),
            env!("CARGO_PKG_VERSION").to_string(),
        )
    }
}

pub fn run(args: SweepArgs) -> Result<ExitCode, Failure> {
    let (Some(sweep_path), Some(out)) = (&args.sweep, &args.out) else {
        return match args.command {
            Some(SweepCmd::Merge(m)) => merge(m),
            None => Err(Failure::input(anyhow::anyhow!("sweep: a sweep file and --out are required"))),
        };
    };
    let prepared = Prepared::read(sweep_path, None)?;
    let (summaries, indices) = prepared.run(args.shard, threads(args.jobs))?;
    let runs: Vec<RunFigures> = summaries.iter().map(RunFigures::from_summary).collect();
    if let Some(shard) = args.shard {
        let p = &prepared;
        let partial = Partial {
            format: shard::FORMAT.into(),
            version: shard::FORMAT_VERSION,
            program_version: env!("CARGO_PKG_VERSION").to_string(),
            sweep_origin: p.origin.clone(),
            sweep_text: p.sweep_text.clone(),
            base_text: p.base_text.clone(),
            scenario_name: p.base.scenario.name.clone(),
            trace: p.base.scenario.trace_text.clone(),
            trace_digest: p.trace_digest(),
            seeds: p.seeds.clone(),
            point_quirks: p.quirks().iter().map(|&q| quirks_name(q).to_string()).collect(),
            runs_total: p.points.len() * p.seeds.len(),
            shard: shard.index,
            shards: shard.count,
            runs: indices.into_iter().zip(&runs).map(|(run, r)| ShardRun::new(run, r)).collect(),
        };
        let path = out.join(shard.file_name());
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create {}", out.display()))
            .map_err(Failure::failed)?;
        let json = serde_json::to_vec_pretty(&partial).map_err(Failure::failed)?;
        crate::adapters::files::write_atomically(&path, &json).map_err(Failure::failed)?;
        writeln!(
            std::io::stdout().lock(),
            "shard {}/{}: {} run(s) written to {}",
            shard.index,
            shard.count,
            partial.runs.len(),
            path.display()
        )
        .map_err(Failure::failed)?;
        return Ok(ExitCode::SUCCESS);
    }
    finish(out, &prepared.results(runs))
}

/// Writes a sweep's files and prints its frontier.
fn finish(out: &Path, results: &SweepResults) -> Result<ExitCode, Failure> {
    write_results(out, results)?;
    super::write_stdout(&format!(
        "{}written to {}: {}{} report.html\n",
        results.frontier_table(),
        out.display(),
        report::SWEEP_FILES.join(" "),
        if results.points.iter().any(|p| p.server().is_some()) { " server.csv" } else { "" }
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `sweep merge DIR... --out OUT`.
fn merge(args: MergeArgs) -> Result<ExitCode, Failure> {
    let mut partials = vec![];
    for dir in &args.dirs {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display())).map_err(Failure::input)?;
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".json") && n.contains("-of-"))
            })
            .collect();
        names.sort();
        for path in names {
            let text = read(&path, "shard file")?;
            let partial: Partial = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a shard file", path.display()))
                .map_err(Failure::input)?;
            partials.push((path.display().to_string(), partial));
        }
    }
    let merged = shard::merge(partials).map_err(Failure::input)?;
    let p = &merged.first;
    let sweep = Sweep::parse(&p.sweep_text, &p.sweep_origin, Path::new(".")).map_err(Failure::input)?;
    let results = SweepResults::new(
        sweep,
        p.seeds.clone(),
        merged.runs,
        merged.quirks,
        p.scenario_name.clone(),
        p.trace.clone(),
        p.program_version.clone(),
    );
    finish(&args.out, &results)
}

fn write_results(dir: &Path, r: &SweepResults) -> Result<(), Failure> {
    let figure = plot::ParetoFigure { results: r };
    let svg = plot::svg(&figure).map_err(Failure::failed)?;
    let png = plot::png(&figure).map_err(Failure::failed)?;
    let html = report::html(r).map_err(Failure::failed)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(Failure::failed)?;
    let files: [(&str, &[u8]); 7] = [
        ("points.csv", &r.points_csv()),
        ("summary.csv", &r.summary_csv()),
        ("pareto.csv", &r.pareto_csv()),
        ("groups.csv", &r.groups_csv()),
        ("pareto.svg", svg.as_bytes()),
        ("pareto.png", &png),
        ("report.html", html.as_bytes()),
    ];
    let server = r.server_csv();
    let files = files.into_iter().chain(server.as_deref().map(|bytes| ("server.csv", bytes)));
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::failed)?;
    }
    Ok(())
}
