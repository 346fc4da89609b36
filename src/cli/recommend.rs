//! `hydra-provisioner recommend SWEEP_OR_SCENARIO --max-wait p95=15m`: run a
//! sweep (or one scenario) over its seeds and samples, and name the cheapest
//! policy that meets every wait target, per cloud setting, with the figures
//! behind it and how sure we are; or say plainly that none does and which
//! target binds. Exit 0 when every cloud setting has a recommendation, 1
//! when one has none, 2 on bad input.
//!
//! The deciding is `policy::recommend`; this file loads, runs and prints.

use super::Failure;
use super::sweep::{Prepared, read, threads};
use crate::metrics::WaitStats;
use crate::policy::recommend::{self, Candidate, Group, Objective, Recommendation, Sample, Target};
use crate::policy::results::{PointResult, RunFigures, SweepResults};
use crate::policy::sweep::{Role, Sweep};
use crate::sim::scenario::{duration_text, parse_duration};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    long_about = "Find the cheapest policy that meets every wait target, and say how sure we are.\n\n\
        SWEEP_OR_SCENARIO is a sweep file (docs/sweep-format.md; its policy axes are the candidates, each \
        cloud setting gets its own answer, its seeds and sample axes (traces, windows) are the samples) or a \
        scenario file (one candidate, its own configuration). Every candidate runs once per sample.\n\n\
        A candidate meets a target when the target holds in every sample; it must also leave no more steps \
        never started than the best candidate in each sample. Among those, the lowest mean machine cost wins \
        (with --wait-cost: machine cost plus the cost of the hours steps waited). The confidence is the 95% \
        upper bound on the chance of a miss in a further sample like these, given none in n: 1 - 0.05^(1/n). \
        docs/reports.md explains the method.",
    after_help = "Exit codes: 0 a policy meets the targets (in every cloud setting), 1 none does, 2 bad input.\n\n\
        Examples:\n  hydra-provisioner recommend scenarios/sweep-quick-start.toml --max-wait p95=15m\n  \
        hydra-provisioner recommend sweep.toml --max-wait p95=20m --max-wait nixpkgs:trunk/p95=10m --windows 1d\n  \
        hydra-provisioner recommend sweep.toml --wait-cost 50/h --json"
)]
pub struct RecommendArgs {
    /// A sweep file, or a scenario file.
    #[arg(value_name = "SWEEP_OR_SCENARIO")]
    pub input: PathBuf,
    /// A wait target: METRIC=DURATION for all steps (p95=15m), or GROUP/METRIC=DURATION for a jobset or machine
    /// type (nixpkgs:trunk/p95=10m; jobset:NAME/... or type:NAME/... when a name is both). Metrics: mean, p50,
    /// p90, p95, p99, max; durations: 90s, 15m, 2h, 1d or seconds. Repeat for several targets.
    #[arg(long = "max-wait", value_name = "TARGET")]
    pub max_wait: Vec<Target>,
    /// Minimise machine cost plus the cost of waiting, in dollars per hour that a step waits (e.g. 50/h, 1/min).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub wait_cost: Option<f64>,
    /// Seeds of every candidate, comma-separated [default: the sweep's or the scenario's].
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Also take consecutive windows of the trace of this length as samples (e.g. 1d: each day of a week).
    #[arg(long, value_name = "LENGTH")]
    pub windows: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// Simulations run at once [default: the number of available cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

/// `50/h`, `$0.5/min`: dollars per hour.
fn parse_rate(s: &str) -> Result<f64, String> {
    let bad = || format!("`{s}`: expected dollars per unit of waiting, e.g. 50/h or 1/min");
    let (amount, unit) = s.trim().trim_start_matches('$').split_once('/').ok_or_else(bad)?;
    let amount: f64 = amount.trim().parse().map_err(|_| bad())?;
    let seconds = parse_duration(&format!("1{}", unit.trim())).map_err(|_| bad())?;
    if !amount.is_finite() || amount < 0.0 || seconds <= 0.0 {
        return Err(bad());
    }
    Ok(amount * 3600.0 / seconds)
}

/// Whether a TOML file is a scenario (it names a trace) rather than a sweep.
fn is_scenario(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("trace"))
}

/// A sweep of one point: the scenario itself.
fn scenario_as_sweep(path: &Path, text: &str) -> Result<(Sweep, String), Failure> {
    let name = path.file_stem().map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    let file_name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let sweep_text = format!("version = 1\nname = {}\nscenario = {}\n", toml_string(&name), toml_string(&file_name));
    let origin = format!("{} (as a sweep of one point)", path.display());
    let sweep = Sweep::parse(&sweep_text, &origin, crate::config::directory_of(path)).map_err(Failure::input)?;
    debug_assert!(is_scenario(text));
    Ok((sweep, sweep_text))
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The candidates of one cloud setting, as `recommend` takes them.
fn candidates(results: &SweepResults, setting: usize) -> Vec<Candidate> {
    results.in_setting(setting).map(candidate).collect()
}

fn candidate(p: &PointResult) -> Candidate {
    let samples = p.runs.iter().map(|r| sample(&r.sample, &r.figures)).collect();
    Candidate { index: p.index, label: p.policy.clone(), samples }
}

fn sample(label: &str, f: &RunFigures) -> Sample {
    let m = &f.metrics;
    let mut waits = BTreeMap::new();
    waits.insert(
        Group::All,
        WaitStats {
            count: m.steps_started as u64,
            mean: m.wait_mean,
            p50: m.wait_p50,
            p90: m.wait_p90,
            p95: m.wait_p95,
            p99: m.wait_p99,
            max: m.wait_max,
        },
    );
    for (j, w) in &f.breakdown.jobsets {
        waits.insert(Group::Jobset(j.clone()), w.clone());
    }
    for (t, tf) in &f.breakdown.types {
        waits.insert(Group::MachineType(t.clone()), tf.wait.clone());
    }
    Sample {
        label: label.to_string(),
        cost: m.cost_dollars,
        wait_hours: m.wait_mean * m.steps_started / 3600.0,
        not_started: m.steps_not_started,
        waits,
    }
}

/// e.g. `3 seeds x 7 windows`.
fn samples_text(results: &SweepResults) -> String {
    let mut parts = vec![format!("{} seed(s)", results.seeds.len())];
    for a in results.sweep.axes.iter().filter(|a| a.role == Role::Sample) {
        parts.push(format!("{} {}(s)", a.values.len(), a.segments.last().map_or("sample", String::as_str)));
    }
    parts.join(" x ")
}

pub fn run(args: RecommendArgs) -> Result<ExitCode, Failure> {
    if args.max_wait.is_empty() && args.wait_cost.is_none() {
        return Err(Failure::input(anyhow::anyhow!(
            "recommend: give at least one target (--max-wait p95=15m) or a cost of waiting (--wait-cost 50/h)"
        )));
    }
    let split = match &args.windows {
        Some(w) => {
            let len = parse_duration(w).map_err(|e| Failure::input(anyhow::anyhow!("--windows: {e}")))?;
            if len < 1.0 || len.fract() != 0.0 {
                return Err(Failure::input(anyhow::anyhow!("--windows: must be whole seconds, at least 1 s, got {w}")));
            }
            Some(len)
        }
        None => None,
    };
    let text = read(&args.input, "sweep or scenario file")?;
    let (origin, sweep, sweep_text) = if is_scenario(&text) {
        let (sweep, sweep_text) = scenario_as_sweep(&args.input, &text)?;
        (args.input.display().to_string(), sweep, sweep_text)
    } else {
        let origin = args.input.display().to_string();
        let sweep = Sweep::parse(&text, &origin, crate::config::directory_of(&args.input)).map_err(Failure::input)?;
        (origin, sweep, text)
    };
    let prepared = Prepared::from_sweep(origin, sweep, sweep_text, args.seeds.clone(), split)?;
    let (summaries, _) = prepared.run(None, threads(args.jobs))?;
    let results = prepared.results(summaries.iter().map(RunFigures::from_summary).collect());
    let mut jobsets: Vec<String> = vec![];
    let mut types: Vec<String> = vec![];
    for r in results.points.iter().flat_map(|p| &p.runs) {
        jobsets.extend(r.figures.breakdown.jobsets.keys().cloned());
        types.extend(r.figures.breakdown.types.keys().cloned());
    }
    jobsets.sort();
    jobsets.dedup();
    types.sort();
    types.dedup();
    let mut targets = args.max_wait.clone();
    for t in &mut targets {
        t.resolve(&jobsets, &types).map_err(|e| Failure::input(anyhow::anyhow!("--max-wait {e}")))?;
    }
    let objective = Objective { wait_cost_per_hour: args.wait_cost };
    let answers: Vec<(String, Recommendation)> = results
        .settings
        .iter()
        .enumerate()
        .map(|(s, setting)| {
            (setting.label.clone(), recommend::recommend(&candidates(&results, s), &targets, objective))
        })
        .collect();
    let several = results.sweep.has(Role::Setting);
    let samples = samples_text(&results);
    let text = if args.json {
        let doc = serde_json::json!({
            "sweep": results.sweep.name,
            "targets": targets,
            "objective": objective,
            "samples": samples,
            "settings": answers.iter().map(|(label, r)| serde_json::json!({
                "setting": label,
                "chosen": r.chosen,
                "samples": r.samples,
                "miss_rate_bound": r.miss_rate_bound,
                "binding": r.binding(&targets),
                "evaluations": r.evaluations,
            })).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&doc).map_err(Failure::failed)? + "\n"
    } else {
        let mut o = format!(
            "recommend {}: {} candidate(s), {} sample(s) each ({samples})\ntargets: {}\n",
            results.sweep.name,
            results.points.len(),
            results.samples(),
            if targets.is_empty() {
                "none".to_string()
            } else {
                targets.iter().map(Target::describe).collect::<Vec<_>>().join("; ")
            },
        );
        if !results.sweep.has(Role::Sample) {
            o.push_str(
                "note: the samples are seeds only, which vary the cloud's draws, not the load; add windows of the \
                 trace (--windows 1d) to see how the policy holds from one day to the next.\n",
            );
        }
        for (label, r) in &answers {
            o.push('\n');
            if several {
                o.push_str(&format!("== cloud setting {label}\n"));
            }
            o.push_str(&r.to_text(&targets, objective, &samples));
        }
        o
    };
    super::write_stdout(&text)?;
    Ok(if answers.iter().all(|(_, r)| r.chosen.is_some()) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The window axis values covering `span_ms` of trace in windows of
/// `len` seconds; a last part shorter than half a window joins the one
/// before it.
pub(super) fn windows(span_ms: i64, len: f64) -> Vec<toml::Value> {
    let span = span_ms as f64 / 1000.0;
    let n = ((span / len).round() as usize).max(1);
    (0..n)
        .map(|k| {
            let start = k as f64 * len;
            let end = if k + 1 == n { ((k + 1) as f64 * len).max(span.floor() + 1.0) } else { (k + 1) as f64 * len };
            toml::Value::String(format!("{}..{}", duration_text(start), duration_text(end)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_dollars_per_hour() {
        assert_eq!(parse_rate("50/h").unwrap(), 50.0);
        assert_eq!(parse_rate("$1/min").unwrap(), 60.0);
        assert!(parse_rate("50").is_err());
        assert!(parse_rate("-1/h").is_err());
    }

    #[test]
    fn windows_cover_the_trace() {
        let text = |v: Vec<toml::Value>| v.iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(text(windows(86_400_000 * 7 - 5_000, 86_400.0)).len(), 7);
        assert_eq!(text(windows(3 * 3_600_000 + 60_000, 3600.0)), ["0s..1h", "1h..2h", "2h..10861s"]);
        assert_eq!(text(windows(1000, 86_400.0)), ["0s..1d"]);
    }
}
