//! `hydra-provisioner compare BASELINE CANDIDATE`: the gate for a policy
//! change. Each side is a scenario file, run with the same seeds, or a
//! `summary.json` written by `simulate --out`. Exit 0 when the candidate is
//! within the allowed increases of cost and wait, 1 when it is not, 2 on bad
//! input.
//!
//! The judging is `policy::gate`; this file loads, runs and prints.

use super::Failure;
use super::sweep::{Job, progress_bar, read_trace, run_batch, threads};
use crate::policy::gate::{self, Limits, Verdict, WaitMetric};
use crate::policy::results::Metrics;
use crate::sim::Scenario;
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    long_about = "Compare a candidate policy with a baseline on cost and on a wait figure, and fail when the \
        candidate costs more or waits longer than allowed. Use it in CI to gate changes to a provisioner \
        configuration.\n\n\
        BASELINE and CANDIDATE are scenario files (TOML; both are run with the same seeds and the figures \
        are means over the seeds) or summary.json files written by `simulate --out` (a name ending in .json). \
        The candidate also fails when it leaves more steps never started than the baseline, since waits \
        count only started steps.",
    after_help = "Exit codes: 0 within the limits, 1 the candidate exceeds a limit, 2 bad input.\n\n\
        Examples:\n  hydra-provisioner compare scenarios/quick-start.toml candidate.toml --seeds 1,2,3\n  \
        hydra-provisioner compare base/summary.json cand/summary.json --max-cost-increase 5 --wait-metric p99"
)]
pub struct CompareArgs {
    /// The policy in use: a scenario file or a summary.json.
    pub baseline: PathBuf,
    /// The proposed policy: a scenario file or a summary.json.
    pub candidate: PathBuf,
    /// Seeds to run scenario files with, comma-separated [default: the seed of the baseline scenario, or of the candidate when the baseline is a summary].
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Allowed increase of cost, in percent of the baseline.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, allow_negative_numbers = true)]
    pub max_cost_increase: f64,
    /// Allowed increase of the wait figure, in percent of the baseline.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, allow_negative_numbers = true)]
    pub max_wait_increase: f64,
    /// The wait figure to check: p95, p50, p99, mean or max.
    #[arg(long, default_value = "p95", value_parser = parse_wait_metric)]
    pub wait_metric: WaitMetric,
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
    Summary(Metrics),
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
        let m = gate::metrics_from_summary_json(&value)
            .map_err(|e| Failure::input(anyhow::anyhow!("{}: {e}", path.display())))?;
        Ok(Side::Summary(m))
    } else {
        Ok(Side::Scenario(Box::new(Scenario::load(path).map_err(Failure::input)?)))
    }
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
    let scenario_seed = [&baseline, &candidate].into_iter().find_map(|s| match s {
        Side::Scenario(sc) => Some(sc.seed),
        Side::Summary(_) => None,
    });
    if args.seeds.is_some() && scenario_seed.is_none() {
        return Err(Failure::input(anyhow::anyhow!("--seeds applies to scenario files; both sides are summaries")));
    }
    let seeds = args.seeds.clone().unwrap_or_else(|| scenario_seed.into_iter().collect());
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
    let mut runs = summaries.iter().map(Metrics::from_summary);
    let mut figures = |side: &Side| match side {
        Side::Summary(m) => *m,
        Side::Scenario(_) => Metrics::mean(&runs.by_ref().take(seeds.len()).collect::<Vec<_>>()),
    };
    let (b, c) = (figures(&baseline), figures(&candidate));
    let limits = Limits {
        max_cost_increase_pct: args.max_cost_increase,
        max_wait_increase_pct: args.max_wait_increase,
        wait_metric: args.wait_metric,
    };
    let verdict = gate::judge(&b, &c, &limits);
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
        writeln!(out, "candidate  {}\n", describe(&args.candidate))?;
        out.write_all(verdict.to_table().as_bytes())?;
        if verdict.pass {
            writeln!(out, "\nverdict: pass")?;
        } else {
            writeln!(out, "\nverdict: FAIL ({})", verdict.failures())?;
        }
    }
    Ok(())
}
