//! The policy gate behind `compare`: is a candidate policy within the allowed
//! increase of cost and of a wait figure over a baseline, beyond the noise
//! of the simulation?
//!
//! Both sides run with the same seeds, so run `i` of the baseline and run
//! `i` of the candidate saw the same cloud draws: the gate judges the
//! *paired* changes `candidate_i - baseline_i`. A figure fails only when
//! (1) the mean paired change exceeds the allowed increase, and (2) the
//! change is beyond noise: the 95% confidence interval of the mean paired
//! change (Student's t over the pairs) lies wholly above zero. With a single
//! pair there is no estimate of noise, and (1) alone decides.
//!
//! Judging is pure: it takes both sides' figures per run and the limits, and
//! returns every check with its verdict. It does not run simulations, read
//! files or choose exit codes.

use super::results::Metrics;
use crate::metrics::{WaitStats, round3};
use serde::Serialize;
use std::fmt::Write as _;

/// The wait figure the gate checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitMetric {
    Mean,
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl WaitMetric {
    pub fn name(self) -> &'static str {
        match self {
            WaitMetric::Mean => "mean",
            WaitMetric::P50 => "p50",
            WaitMetric::P90 => "p90",
            WaitMetric::P95 => "p95",
            WaitMetric::P99 => "p99",
            WaitMetric::Max => "max",
        }
    }

    pub fn of(self, m: &Metrics) -> f64 {
        match self {
            WaitMetric::Mean => m.wait_mean,
            WaitMetric::P50 => m.wait_p50,
            WaitMetric::P90 => m.wait_p90,
            WaitMetric::P95 => m.wait_p95,
            WaitMetric::P99 => m.wait_p99,
            WaitMetric::Max => m.wait_max,
        }
    }

    pub fn of_stats(self, w: &WaitStats) -> f64 {
        match self {
            WaitMetric::Mean => w.mean,
            WaitMetric::P50 => w.p50,
            WaitMetric::P90 => w.p90,
            WaitMetric::P95 => w.p95,
            WaitMetric::P99 => w.p99,
            WaitMetric::Max => w.max,
        }
    }
}

impl std::str::FromStr for WaitMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<WaitMetric, String> {
        match s {
            "mean" => Ok(WaitMetric::Mean),
            "p50" => Ok(WaitMetric::P50),
            "p90" => Ok(WaitMetric::P90),
            "p95" => Ok(WaitMetric::P95),
            "p99" => Ok(WaitMetric::P99),
            "max" => Ok(WaitMetric::Max),
            other => Err(format!("unknown wait metric `{other}` (mean, p50, p90, p95, p99, max)")),
        }
    }
}

/// Which steps and machines the gate looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// All steps, the whole bill.
    Fleet,
    /// One jobset's waits (`project:jobset`); the whole bill.
    Jobset(String),
    /// One machine type's waits and bill.
    MachineType(String),
}

impl Scope {
    /// How the scope names its figures, e.g. `wait p95 s (jobset nixpkgs:trunk)`.
    fn suffix(&self) -> String {
        match self {
            Scope::Fleet => String::new(),
            Scope::Jobset(j) => format!(" (jobset {j})"),
            Scope::MachineType(t) => format!(" (type {t})"),
        }
    }
}

/// Allowed increases, in percent of the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub max_cost_increase_pct: f64,
    pub max_wait_increase_pct: f64,
    pub wait_metric: WaitMetric,
    pub scope: Scope,
}

/// What the gate reads from one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunFigures {
    pub cost: f64,
    pub wait: f64,
    pub not_started: f64,
}

/// The spread of the paired changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    pub pairs: usize,
    pub min: f64,
    pub max: f64,
    /// The 95% confidence interval of the mean paired change (Student's t);
    /// `None` with a single pair.
    pub interval: Option<(f64, f64)>,
}

/// One checked figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub metric: String,
    /// Means over the runs.
    pub baseline: f64,
    pub candidate: f64,
    /// The mean paired change.
    pub change: f64,
    /// `None` when the baseline is zero and the candidate is not.
    pub change_pct: Option<f64>,
    /// Allowed increase in percent; `None` for a figure that may not grow at all.
    pub limit_pct: Option<f64>,
    pub paired: Paired,
    pub beyond_limit: bool,
    pub beyond_noise: bool,
    pub pass: bool,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub pass: bool,
}

/// Figures are rounded to three decimals; this absorbs the rounding of
/// `baseline * pct / 100` so that equal figures always pass.
const SLACK: f64 = 1e-9;

/// The 97.5% quantile of Student's t with `df` degrees of freedom (for a
/// two-sided 95% interval); the normal quantile past 30.
pub fn t_quantile(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

/// The spread of paired changes: extremes and the t interval of their mean.
pub fn paired(changes: &[f64]) -> Paired {
    let n = changes.len();
    let m = mean(changes);
    let interval = (n >= 2).then(|| {
        let var = changes.iter().map(|d| (d - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_quantile(n - 1) * (var / n as f64).sqrt();
        (round3(m - half), round3(m + half))
    });
    Paired {
        pairs: n,
        min: round3(changes.iter().copied().fold(f64::INFINITY, f64::min)),
        max: round3(changes.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        interval,
    }
}

fn check(metric: String, baseline: &[f64], candidate: &[f64], limit_pct: Option<f64>) -> Check {
    let changes: Vec<f64> = baseline.iter().zip(candidate).map(|(b, c)| c - b).collect();
    let (b, c) = (round3(mean(baseline)), round3(mean(candidate)));
    let change = round3(mean(&changes));
    let change_pct = if b == 0.0 { (change == 0.0).then_some(0.0) } else { Some(round3(change / b.abs() * 100.0)) };
    let allowed = b.abs() * limit_pct.unwrap_or(0.0) / 100.0;
    let beyond_limit = change > allowed + SLACK * allowed.abs().max(1.0);
    let paired = paired(&changes);
    let beyond_noise = paired.interval.is_none_or(|(low, _)| low > 0.0);
    Check {
        metric,
        baseline: b,
        candidate: c,
        change,
        change_pct,
        limit_pct,
        paired,
        beyond_limit,
        beyond_noise,
        pass: !(beyond_limit && beyond_noise),
    }
}

/// Checks cost and the chosen wait figure against their limits, and that the
/// candidate leaves no more steps unstarted than the baseline (waits count
/// only started steps, so a policy that starves a type must not pass as
/// fast). `pairs[i]` is (baseline, candidate) of the same seed.
pub fn judge(pairs: &[(RunFigures, RunFigures)], limits: &Limits) -> Verdict {
    let side = |f: fn(&RunFigures) -> f64, which: usize| -> Vec<f64> {
        pairs.iter().map(|p| if which == 0 { f(&p.0) } else { f(&p.1) }).collect()
    };
    let w = limits.wait_metric;
    let cost_scope = match &limits.scope {
        Scope::MachineType(_) => limits.scope.suffix(),
        _ => String::new(),
    };
    let checks = vec![
        check(
            format!("cost ${cost_scope}"),
            &side(|r| r.cost, 0),
            &side(|r| r.cost, 1),
            Some(limits.max_cost_increase_pct),
        ),
        check(
            format!("wait {} s{}", w.name(), limits.scope.suffix()),
            &side(|r| r.wait, 0),
            &side(|r| r.wait, 1),
            Some(limits.max_wait_increase_pct),
        ),
        check("steps never started".into(), &side(|r| r.not_started, 0), &side(|r| r.not_started, 1), None),
    ];
    let pass = checks.iter().all(|c| c.pass);
    Verdict { checks, pass }
}

impl Verdict {
    /// The checks as a plain-text table.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:<36} {:>11} {:>11} {:>11} {:>9} {:>8}  {:<30}  verdict",
            "metric", "baseline", "candidate", "change", "change %", "limit %", "paired change: 95% CI; min..max"
        );
        for c in &self.checks {
            let pct = c.change_pct.map_or("inf".to_string(), |p| format!("{p:+.1}"));
            let limit = c.limit_pct.map_or("+0 abs".to_string(), |l| format!("{l:+.1}"));
            let spread = match c.paired.interval {
                Some((lo, hi)) => format!("{lo:+.2}..{hi:+.2}; {:+.2}..{:+.2}", c.paired.min, c.paired.max),
                None => "one pair, no noise estimate".to_string(),
            };
            let verdict = match (c.beyond_limit, c.beyond_noise) {
                (true, true) => "FAIL",
                (true, false) => "ok (over the limit, within noise)",
                _ => "ok",
            };
            let _ = writeln!(
                o,
                "{:<36} {:>11.3} {:>11.3} {:>+11.3} {:>9} {:>8}  {:<30}  {verdict}",
                c.metric, c.baseline, c.candidate, c.change, pct, limit, spread
            );
        }
        o
    }

    /// The checks that failed, as one line, e.g. `cost $ +12.0% exceeds the limit +0.0%`.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| {
                let pct = c.change_pct.map_or("from zero".to_string(), |p| format!("{p:+.1}%"));
                let noise = match c.paired.interval {
                    Some((lo, _)) => format!(" beyond noise (95% CI of the paired change from {lo:+.3})"),
                    None => String::new(),
                };
                match c.limit_pct {
                    Some(l) => format!("{} {pct} exceeds the limit {l:+.1}%{noise}", c.metric),
                    None => format!("{} rose from {} to {}{noise}", c.metric, c.baseline, c.candidate),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A number at a JSON pointer of a `summary.json`, or an error naming it.
pub fn number(v: &serde_json::Value, pointer: &str) -> Result<f64, String> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("no number at `{pointer}` (is this a summary.json from `simulate --out`?)"))
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn pointer_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The names of an object in a summary, for error messages.
fn names_at(v: &serde_json::Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_object)
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// What the gate checks, read from a summary (a `summary.json` written by
/// `simulate --out`, or a run's summary as JSON). An error names the first
/// missing field, or the jobset or type the run does not have.
pub fn run_figures(v: &serde_json::Value, scope: &Scope, metric: WaitMetric) -> Result<RunFigures, String> {
    let total = number(v, "/steps/total")?;
    let started = number(v, "/steps/started")?;
    let wait_at = |group: &str, name: &str| -> Result<f64, String> {
        let base = format!("/latency/{group}/{}", pointer_key(name));
        if v.pointer(&base).is_none() {
            let what = if group == "per_jobset" { "jobset" } else { "machine type" };
            return Err(format!(
                "no started steps of {what} `{name}` (it has: {})",
                names_at(v, &format!("/latency/{group}"))
            ));
        }
        number(v, &format!("{base}/{}", metric.name()))
    };
    let (cost, wait) = match scope {
        Scope::Fleet => (number(v, "/cost/dollars")?, number(v, &format!("/latency/overall/{}", metric.name()))?),
        Scope::Jobset(j) => (number(v, "/cost/dollars")?, wait_at("per_jobset", j)?),
        Scope::MachineType(t) => {
            let cost = v
                .pointer(&format!("/cost/per_machine_type/{}/dollars", pointer_key(t)))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            (cost, wait_at("per_machine_type", t)?)
        }
    };
    Ok(RunFigures { cost, wait, not_started: (total - started).max(0.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(cost: f64, wait: f64) -> Limits {
        Limits {
            max_cost_increase_pct: cost,
            max_wait_increase_pct: wait,
            wait_metric: WaitMetric::P95,
            scope: Scope::Fleet,
        }
    }

    fn run(cost: f64, wait: f64) -> RunFigures {
        RunFigures { cost, wait, not_started: 0.0 }
    }

    fn pairs(b: &[(f64, f64)], c: &[(f64, f64)]) -> Vec<(RunFigures, RunFigures)> {
        b.iter().zip(c).map(|(&(bc, bw), &(cc, cw))| (run(bc, bw), run(cc, cw))).collect()
    }

    #[test]
    fn equal_figures_pass_with_zero_limits_and_zero_change() {
        let p = pairs(&[(12.345, 600.0), (11.0, 500.0)], &[(12.345, 600.0), (11.0, 500.0)]);
        let v = judge(&p, &limits(0.0, 0.0));
        assert!(v.pass, "{}", v.to_table());
        assert_eq!((v.checks[0].change, v.checks[0].change_pct), (0.0, Some(0.0)));
        assert_eq!(v.checks[0].paired.interval, Some((0.0, 0.0)));
    }

    #[test]
    fn a_change_beyond_the_limit_and_beyond_noise_fails_and_is_named() {
        // Every seed about 10% dearer.
        let p = pairs(&[(10.0, 600.0), (10.2, 600.0), (9.8, 600.0)], &[(11.0, 500.0), (11.3, 500.0), (10.7, 500.0)]);
        let v = judge(&p, &limits(5.0, 0.0));
        assert!(!v.pass);
        assert_eq!(v.checks[0].change_pct, Some(10.0));
        assert!(v.checks[0].beyond_noise && !v.checks[1].beyond_limit);
        assert!(v.failures().contains("cost $ +10.0% exceeds the limit +5.0%"), "{}", v.failures());
        assert!(judge(&p, &limits(10.0, 0.0)).pass);
    }

    #[test]
    fn a_change_over_the_limit_but_within_noise_passes() {
        // Mean +10 s, but one seed got faster: the interval spans zero.
        let p = pairs(&[(10.0, 600.0), (10.0, 600.0), (10.0, 600.0)], &[(10.0, 700.0), (10.0, 450.0), (10.0, 680.0)]);
        let v = judge(&p, &limits(0.0, 0.0));
        let w = &v.checks[1];
        assert!(w.beyond_limit && !w.beyond_noise, "{}", v.to_table());
        assert!(v.pass);
        assert!(v.to_table().contains("within noise"), "{}", v.to_table());
        assert_eq!((w.paired.min, w.paired.max), (-150.0, 100.0));
    }

    #[test]
    fn one_pair_falls_back_to_the_limit_alone() {
        let v = judge(&pairs(&[(10.0, 600.0)], &[(10.0, 601.0)]), &limits(0.0, 0.0));
        assert!(!v.pass);
        assert_eq!(v.checks[1].paired.interval, None);
        assert!(v.to_table().contains("one pair"), "{}", v.to_table());
    }

    #[test]
    fn any_increase_from_zero_fails_and_more_unstarted_steps_fail() {
        let v = judge(&pairs(&[(10.0, 0.0)], &[(10.0, 1.0)]), &limits(0.0, 1000.0));
        assert!(!v.pass);
        assert_eq!(v.checks[1].change_pct, None);
        let worse = RunFigures { not_started: 3.0, ..run(1.0, 0.0) };
        let v = judge(&[(run(10.0, 600.0), worse)], &limits(0.0, 0.0));
        assert!(!v.pass && v.failures().contains("steps never started"), "{}", v.failures());
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(t_quantile(1), 12.706);
        assert_eq!(t_quantile(2), 4.303);
        assert_eq!(t_quantile(30), 2.042);
        assert_eq!(t_quantile(100), 1.96);
    }

    #[test]
    fn wait_metrics_parse_by_name() {
        for name in ["mean", "p50", "p90", "p95", "p99", "max"] {
            assert_eq!(name.parse::<WaitMetric>().unwrap().name(), name);
        }
        assert!("p90x".parse::<WaitMetric>().is_err());
    }

    #[test]
    fn summary_fields_are_read_per_scope_and_missing_ones_named() {
        let mut v = serde_json::json!({
            "cost": {"dollars": 1.5, "per_machine_type": {"x86_64-linux": {"dollars": 1.25}}},
            "latency": {
                "overall": {"mean": 1, "p50": 2, "p90": 3, "p95": 4, "p99": 5, "max": 6},
                "per_jobset": {"a/b:c": {"mean": 1, "p50": 2, "p90": 3, "p95": 40, "p99": 5, "max": 6}},
                "per_machine_type": {"x86_64-linux": {"mean": 1, "p50": 2, "p90": 3, "p95": 400, "p99": 5, "max": 6}}
            },
            "steps": {"total": 10, "started": 9}
        });
        let f = run_figures(&v, &Scope::Fleet, WaitMetric::P95).unwrap();
        assert_eq!((f.cost, f.wait, f.not_started), (1.5, 4.0, 1.0));
        let f = run_figures(&v, &Scope::Jobset("a/b:c".into()), WaitMetric::P95).unwrap();
        assert_eq!((f.cost, f.wait), (1.5, 40.0));
        let f = run_figures(&v, &Scope::MachineType("x86_64-linux".into()), WaitMetric::P95).unwrap();
        assert_eq!((f.cost, f.wait), (1.25, 400.0));
        let e = run_figures(&v, &Scope::Jobset("nix:master".into()), WaitMetric::P95).unwrap_err();
        assert!(e.contains("`nix:master`") && e.contains("a/b:c"), "{e}");
        v["latency"]["overall"].as_object_mut().unwrap().remove("p95");
        assert!(run_figures(&v, &Scope::Fleet, WaitMetric::P95).unwrap_err().contains("/latency/overall/p95"));
    }
}
