//! The policy gate behind `compare`: is a candidate policy within the allowed
//! increase of cost and of a wait figure over a baseline?
//!
//! Judging is pure: it takes both sides' figures (means over the same seeds,
//! or read from `summary.json` files) and the limits, and returns every check
//! with its verdict. It does not run simulations, read files or choose exit
//! codes.

use super::results::Metrics;
use serde::Serialize;
use std::fmt::Write as _;

/// The wait figure the gate checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitMetric {
    Mean,
    P50,
    P95,
    P99,
    Max,
}

impl WaitMetric {
    pub fn name(self) -> &'static str {
        match self {
            WaitMetric::Mean => "mean",
            WaitMetric::P50 => "p50",
            WaitMetric::P95 => "p95",
            WaitMetric::P99 => "p99",
            WaitMetric::Max => "max",
        }
    }

    pub fn of(self, m: &Metrics) -> f64 {
        match self {
            WaitMetric::Mean => m.wait_mean,
            WaitMetric::P50 => m.wait_p50,
            WaitMetric::P95 => m.wait_p95,
            WaitMetric::P99 => m.wait_p99,
            WaitMetric::Max => m.wait_max,
        }
    }
}

impl std::str::FromStr for WaitMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<WaitMetric, String> {
        match s {
            "mean" => Ok(WaitMetric::Mean),
            "p50" => Ok(WaitMetric::P50),
            "p95" => Ok(WaitMetric::P95),
            "p99" => Ok(WaitMetric::P99),
            "max" => Ok(WaitMetric::Max),
            other => Err(format!("unknown wait metric `{other}` (mean, p50, p95, p99, max)")),
        }
    }
}

/// Allowed increases, in percent of the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    pub max_cost_increase_pct: f64,
    pub max_wait_increase_pct: f64,
    pub wait_metric: WaitMetric,
}

/// One checked figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub metric: String,
    pub baseline: f64,
    pub candidate: f64,
    pub change: f64,
    /// `None` when the baseline is zero and the candidate is not.
    pub change_pct: Option<f64>,
    /// Allowed increase in percent; `None` for a figure that may not grow at all.
    pub limit_pct: Option<f64>,
    pub pass: bool,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub pass: bool,
}

/// Figures are means rounded to three decimals; this absorbs the rounding of
/// `baseline * (1 + pct / 100)` so that equal figures always pass.
const SLACK: f64 = 1e-9;

fn check(metric: String, baseline: f64, candidate: f64, limit_pct: Option<f64>) -> Check {
    let change = metric_round(candidate - baseline);
    let change_pct = if baseline == 0.0 {
        (candidate == 0.0).then_some(0.0)
    } else {
        Some(metric_round(change / baseline.abs() * 100.0))
    };
    let allowed = baseline + baseline.abs() * limit_pct.unwrap_or(0.0) / 100.0;
    let pass = candidate <= allowed + SLACK * allowed.abs().max(1.0);
    Check { metric, baseline, candidate, change, change_pct, limit_pct, pass }
}

fn metric_round(x: f64) -> f64 {
    crate::metrics::round3(x)
}

/// Checks cost and the chosen wait figure against their limits, and that the
/// candidate leaves no more steps unstarted than the baseline (waits count
/// only started steps, so a policy that starves a type must not pass as fast).
pub fn judge(baseline: &Metrics, candidate: &Metrics, limits: &Limits) -> Verdict {
    let w = limits.wait_metric;
    let checks = vec![
        check("cost $".into(), baseline.cost_dollars, candidate.cost_dollars, Some(limits.max_cost_increase_pct)),
        check(format!("wait {} s", w.name()), w.of(baseline), w.of(candidate), Some(limits.max_wait_increase_pct)),
        check("steps never started".into(), baseline.steps_not_started, candidate.steps_not_started, None),
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
            "{:<20} {:>12} {:>12} {:>12} {:>9} {:>8}  verdict",
            "metric", "baseline", "candidate", "change", "change %", "limit %"
        );
        for c in &self.checks {
            let pct = c.change_pct.map_or("inf".to_string(), |p| format!("{p:+.1}"));
            let limit = c.limit_pct.map_or("+0 abs".to_string(), |l| format!("{l:+.1}"));
            let _ = writeln!(
                o,
                "{:<20} {:>12.3} {:>12.3} {:>+12.3} {:>9} {:>8}  {}",
                c.metric,
                c.baseline,
                c.candidate,
                c.change,
                pct,
                limit,
                if c.pass { "ok" } else { "FAIL" }
            );
        }
        o
    }

    /// The checks that failed, as one line, e.g. `cost $ +12.0% > +0.0%`.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| {
                let pct = c.change_pct.map_or("from zero".to_string(), |p| format!("{p:+.1}%"));
                match c.limit_pct {
                    Some(l) => format!("{} {pct} exceeds the limit {l:+.1}%", c.metric),
                    None => format!("{} rose from {} to {}", c.metric, c.baseline, c.candidate),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The figures of a `summary.json` written by `simulate --out`; an error
/// names the first missing or non-numeric field.
pub fn metrics_from_summary_json(v: &serde_json::Value) -> Result<Metrics, String> {
    let num = |pointer: &str| -> Result<f64, String> {
        v.pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("no number at `{}` (is this a summary.json from `simulate --out`?)", pointer))
    };
    let total = num("/steps/total")?;
    let started = num("/steps/started")?;
    Ok(Metrics {
        cost_dollars: num("/cost/dollars")?,
        billed_machine_hours: num("/cost/billed_machine_hours")?,
        busy_machine_hours: num("/cost/busy_machine_hours")?,
        idle_machine_hours: num("/cost/idle_machine_hours")?,
        utilisation: num("/cost/utilisation")?,
        wait_mean: num("/latency/overall/mean")?,
        wait_p50: num("/latency/overall/p50")?,
        wait_p90: num("/latency/overall/p90")?,
        wait_p95: num("/latency/overall/p95")?,
        wait_p99: num("/latency/overall/p99")?,
        wait_max: num("/latency/overall/max")?,
        waited_for_boot_fraction: num("/latency/waited_for_boot_fraction")?,
        creates: num("/stability/creates")?,
        destroys: num("/stability/destroys")?,
        aborted_steps: num("/stability/aborted_steps")?,
        steps_not_started: (total - started).max(0.0),
        // Absent from summaries written before it was reported; not gated.
        failed_deploys: v.pointer("/stability/failed_deploys").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(cost: f64, p95: f64) -> Metrics {
        Metrics { cost_dollars: cost, wait_p95: p95, wait_mean: p95 / 2.0, ..Metrics::default() }
    }

    fn limits(cost: f64, wait: f64) -> Limits {
        Limits { max_cost_increase_pct: cost, max_wait_increase_pct: wait, wait_metric: WaitMetric::P95 }
    }

    #[test]
    fn equal_figures_pass_with_zero_limits() {
        let v = judge(&m(12.345, 600.0), &m(12.345, 600.0), &limits(0.0, 0.0));
        assert!(v.pass, "{}", v.to_table());
        assert_eq!(v.checks[0].change_pct, Some(0.0));
    }

    #[test]
    fn an_increase_beyond_the_limit_fails_and_is_named() {
        let v = judge(&m(10.0, 600.0), &m(11.0, 500.0), &limits(5.0, 0.0));
        assert!(!v.pass);
        assert_eq!(v.checks[0].change_pct, Some(10.0));
        assert!(!v.checks[0].pass && v.checks[1].pass);
        assert!(v.failures().contains("cost $ +10.0% exceeds the limit +5.0%"), "{}", v.failures());
        assert!(judge(&m(10.0, 600.0), &m(11.0, 500.0), &limits(10.0, 0.0)).pass);
        let v = judge(&m(10.0, 600.0), &m(10.0, 700.0), &limits(0.0, 10.0));
        assert!(v.failures().contains("wait p95 s"), "{}", v.failures());
    }

    #[test]
    fn any_increase_from_zero_fails_and_more_unstarted_steps_fail() {
        let v = judge(&m(10.0, 0.0), &m(10.0, 1.0), &limits(0.0, 1000.0));
        assert!(!v.pass);
        assert_eq!(v.checks[1].change_pct, None);
        let worse = Metrics { steps_not_started: 3.0, ..m(1.0, 0.0) };
        let v = judge(&m(10.0, 600.0), &worse, &limits(0.0, 0.0));
        assert!(!v.pass && v.failures().contains("steps never started"), "{}", v.failures());
    }

    #[test]
    fn wait_metrics_parse_by_name() {
        for name in ["mean", "p50", "p95", "p99", "max"] {
            assert_eq!(name.parse::<WaitMetric>().unwrap().name(), name);
        }
        assert!("p90x".parse::<WaitMetric>().is_err());
        assert_eq!(WaitMetric::Mean.of(&m(1.0, 8.0)), 4.0);
    }

    #[test]
    fn summary_json_fields_are_read_and_missing_ones_named() {
        let mut v = serde_json::json!({
            "cost": {"dollars": 1.5, "billed_machine_hours": 2, "busy_machine_hours": 1, "idle_machine_hours": 1, "utilisation": 0.5},
            "latency": {"overall": {"mean": 1, "p50": 2, "p90": 3, "p95": 4, "p99": 5, "max": 6}, "waited_for_boot_fraction": 0.1},
            "stability": {"creates": 3, "destroys": 2, "aborted_steps": 0},
            "steps": {"total": 10, "started": 9}
        });
        let m = metrics_from_summary_json(&v).unwrap();
        assert_eq!((m.cost_dollars, m.wait_p95, m.steps_not_started), (1.5, 4.0, 1.0));
        v["latency"]["overall"].as_object_mut().unwrap().remove("p95");
        assert!(metrics_from_summary_json(&v).unwrap_err().contains("/latency/overall/p95"));
    }
}
