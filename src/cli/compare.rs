//! `hydra-provisioner compare BASELINE CANDIDATE`: the gate for a policy
//! change. Each side is a scenario file, run with the same seeds, or a
//! `summary.json` written by `simulate --out`. Runs are paired by seed and
//! the gate judges the paired changes. Exit 0 when the candidate is within
//! the allowed increases of cost and wait or within noise, 1 when it is
//! beyond both, 2 on bad input, including two sides that replayed different
//! inputs (unless `--allow-different-inputs`).
//!
//! The judging is `policy::gate`; this file loads, runs and prints.

use super::Failure;
use super::sweep::{Job, progress_bar, read_trace, run_batch, threads};
use crate::policy::gate::{self, Limits, RunFigures, Scope, Verdict, WaitMetric};
use crate::sim::Scenario;
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    long_about = "Compare a candidate policy with a baseline on cost and on a wait figure, and fail when the \
        candidate costs more or waits longer than allowed, beyond the noise of the simulation. Use it in CI \
        to gate changes to a provisioner configuration.\n\n\
        BASELINE and CANDIDATE are scenario files (TOML; both are run with the same seeds) or summary.json \
        files written by `simulate --out` (a name ending in .json; a scenario compared with a summary runs \
        with the summary's seed). Runs are paired by seed: run i of the candidate saw the same cloud draws \
        as run i of the baseline. A figure fails when the mean paired change exceeds the allowed increase \
        AND the 95% confidence interval of the mean paired change (Student's t over the pairs) lies wholly \
        above zero; with one pair there is no estimate of noise and the limit alone decides. The candidate \
        also fails when it leaves more steps never started than the baseline (same rule, no increase \
        allowed), since waits count only started steps.\n\n\
        Both sides must have replayed the same trace rows and the same world (cloud, static machines, \
        shares, horizon, window, era, epoch): compare refuses otherwise, unless --allow-different-inputs.",
    after_help = "Exit codes: 0 within the limits or within noise, 1 the candidate exceeds a limit beyond noise, \
        2 bad input.\n\n\
        Examples:\n  hydra-provisioner compare scenarios/quick-start.toml candidate.toml --seeds 1,2,3,4,5\n  \
        hydra-provisioner compare base.toml cand.toml --jobset nixpkgs:trunk --max-wait-increase 5\n  \
        hydra-provisioner compare base/summary.json cand/summary.json --max-cost-increase 5 --wait-metric p99"
)]
pub struct CompareArgs {
    /// The policy in use: a scenario file or a summary.json.
    pub baseline: PathBuf,
    /// The proposed policy: a scenario file or a summary.json.
    pub candidate: PathBuf,
    /// Seeds to run scenario files with, comma-separated; several give the gate a measure of noise [default: the seed of the baseline scenario, or of the candidate when the baseline is a summary].
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Allowed increase of cost, in percent of the baseline.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, allow_negative_numbers = true)]
    pub max_cost_increase: f64,
    /// Allowed increase of the wait figure, in percent of the baseline.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, allow_negative_numbers = true)]
    pub max_wait_increase: f64,
    /// The wait figure to check: p95, p50, p90, p99, mean or max.
    #[arg(long, default_value = "p95", value_parser = parse_wait_metric)]
    pub wait_metric: WaitMetric,
    /// Gate on the waits of one jobset (`project:jobset`) instead of all steps; cost stays the whole bill.
    #[arg(long, value_name = "JOBSET", conflicts_with = "machine_type")]
    pub jobset: Option<String>,
    /// Gate on one machine type: the waits of its steps and its share of the bill.
    #[arg(long, value_name = "TYPE")]
    pub machine_type: Option<String>,
    /// Compare even when the two sides replayed different trace rows or different worlds (cloud, static machines, ...).
    #[arg(long)]
    pub allow_different_inputs: bool,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// Simulations run at once [default: the number of available cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

fn parse_wait_metric(s: &str) -> Result<WaitMetric, String> {
    s.parse()
}

enum Side {
    /// A summary.json, as JSON.
    Summary(serde_json::Value),
    Scenario(Box<Scenario>),
}

fn is_summary(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn load(path: &Path) -> Result<Side, Failure> {
    if is_summary(path) {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(Failure::input)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))
            .map_err(Failure::input)?;
        gate::number(&value, "/seed").map_err(|e| Failure::input(anyhow::anyhow!("{}: {e}", path.display())))?;
        Ok(Side::Summary(value))
    } else {
        Ok(Side::Scenario(Box::new(Scenario::load(path).map_err(Failure::input)?)))
    }
}

/// Why two runs' inputs differ, if they do.
fn input_difference(a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    let get = |v: &serde_json::Value, key: &str| v.pointer(&format!("/inputs/{key}")).cloned();
    for (key, what) in [
        ("trace_digest", "they replayed different trace rows (another trace, or another window of it)"),
        ("world_digest", "their worlds differ (cloud, static machines, shares, horizon, window, era or epoch)"),
    ] {
        match (get(a, key), get(b, key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(_), Some(_)) => return Some(what.to_string()),
            _ => {
                return Some(format!(
                    "a summary does not say what it replayed (no inputs.{key}: written by an older version)"
                ));
            }
        }
    }
    None
}

pub fn run(args: CompareArgs) -> Result<ExitCode, Failure> {
    for (flag, v) in [("--max-cost-increase", args.max_cost_increase), ("--max-wait-increase", args.max_wait_increase)]
    {
        if !v.is_finite() || v <= -100.0 {
            return Err(Failure::input(anyhow::anyhow!("{flag}: must be a percentage above -100, got {v}")));
        }
    }
    let baseline = load(&args.baseline)?;
    let candidate = load(&args.candidate)?;
    let summary_seed = [&baseline, &candidate].into_iter().find_map(|s| match s {
        Side::Summary(v) => gate::number(v, "/seed").ok().map(|s| s as u64),
        Side::Scenario(_) => None,
    });
    let scenario_seed = [&baseline, &candidate].into_iter().find_map(|s| match s {
        Side::Scenario(sc) => Some(sc.seed),
        Side::Summary(_) => None,
    });
    let seeds: Vec<u64> = match (&args.seeds, summary_seed, scenario_seed) {
        (Some(_), Some(_), _) => {
            return Err(Failure::input(anyhow::anyhow!(
                "--seeds applies when both sides are scenario files; a summary holds one run, and a scenario \
                 compared with it runs with its seed"
            )));
        }
        (Some(seeds), None, _) => seeds.clone(),
        (None, Some(seed), _) => vec![seed],
        (None, None, seed) => seed.into_iter().collect(),
    };
    let mut traces = Vec::new();
    for side in [&baseline, &candidate] {
        if let Side::Scenario(sc) = side {
            traces.push(read_trace(sc)?);
        }
    }
    let mut jobs = Vec::new();
    let mut trace_iter = traces.iter();
    for (label, side) in [("baseline", &baseline), ("candidate", &candidate)] {
        if let Side::Scenario(sc) = side {
            let Some(trace) = trace_iter.next() else { continue };
            for &seed in &seeds {
                let mut scenario = (**sc).clone();
                scenario.seed = seed;
                jobs.push(Job { scenario, trace, name: format!("{label} seed {seed}") });
            }
        }
    }
    let bar = progress_bar(jobs.len() as u64);
    let summaries = run_batch(&jobs, threads(args.jobs), &bar)?;
    bar.finish_and_clear();
    let mut runs = summaries.iter().map(serde_json::to_value);
    let mut side_runs = |side: &Side| -> Result<Vec<serde_json::Value>, Failure> {
        match side {
            Side::Summary(v) => Ok(vec![v.clone()]),
            Side::Scenario(_) => runs.by_ref().take(seeds.len()).map(|r| r.map_err(Failure::failed)).collect(),
        }
    };
    let (b_runs, c_runs) = (side_runs(&baseline)?, side_runs(&candidate)?);
    if let (Side::Summary(b), Side::Summary(c)) = (&baseline, &candidate)
        && b.pointer("/seed") != c.pointer("/seed")
    {
        tracing::warn!("the two summaries were run with different seeds: they are compared as one unpaired run each");
    }
    if !args.allow_different_inputs
        && let Some(why) = b_runs.iter().zip(&c_runs).find_map(|(b, c)| input_difference(b, c))
    {
        return Err(Failure::input(anyhow::anyhow!(
            "{} and {} cannot be compared: {why}. Pass --allow-different-inputs to compare them anyway.",
            args.baseline.display(),
            args.candidate.display()
        )));
    }
    let scope = match (&args.jobset, &args.machine_type) {
        (Some(j), _) => Scope::Jobset(j.clone()),
        (None, Some(t)) => Scope::MachineType(t.clone()),
        (None, None) => Scope::Fleet,
    };
    let figures = |runs: &[serde_json::Value], path: &Path| -> Result<Vec<RunFigures>, Failure> {
        runs.iter()
            .map(|v| {
                gate::run_figures(v, &scope, args.wait_metric)
                    .map_err(|e| Failure::input(anyhow::anyhow!("{}: {e}", path.display())))
            })
            .collect()
    };
    let pairs: Vec<(RunFigures, RunFigures)> =
        figures(&b_runs, &args.baseline)?.into_iter().zip(figures(&c_runs, &args.candidate)?).collect();
    let limits = Limits {
        max_cost_increase_pct: args.max_cost_increase,
        max_wait_increase_pct: args.max_wait_increase,
        wait_metric: args.wait_metric,
        scope,
    };
    let verdict = gate::judge(&pairs, &limits);
    print(&args, &seeds, &limits, &verdict).map_err(Failure::failed)?;
    if verdict.pass {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("compare: the candidate exceeds the limits: {}", verdict.failures());
        Ok(ExitCode::from(1))
    }
}

fn print(args: &CompareArgs, seeds: &[u64], limits: &Limits, verdict: &Verdict) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let describe = |p: &Path| {
        if is_summary(p) {
            format!("{} (summary)", p.display())
        } else {
            format!("{} (seeds {})", p.display(), seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
        }
    };
    if args.json {
        let doc = serde_json::json!({
            "baseline": describe(&args.baseline),
            "candidate": describe(&args.candidate),
            "seeds": seeds,
            "limits": limits,
            "checks": verdict.checks,
            "pass": verdict.pass,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(out, "baseline   {}", describe(&args.baseline))?;
        writeln!(out, "candidate  {}", describe(&args.candidate))?;
        writeln!(
            out,
            "rule       a figure fails when its mean paired change exceeds the limit and its 95% CI lies above zero\n"
        )?;
        out.write_all(verdict.to_table().as_bytes())?;
        if verdict.pass {
            writeln!(out, "\nverdict: pass")?;
        } else {
            writeln!(out, "\nverdict: FAIL ({})", verdict.failures())?;
        }
    }
    Ok(())
}
