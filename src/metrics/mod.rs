//! Cost and latency metrics with the definitions of DESIGN.md section 7, in
//! one place so that simulation summaries and production reports compute
//! them identically: nearest-rank percentiles over started steps, wait =
//! first attempt's start minus runnable time, dollars from billed time.
//!
//! This module only computes and renders numbers. It does not simulate,
//! observe a fleet or decide anything; callers feed it what they measured.

use crate::config::Quirks;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The `p`-th percentile (0 < p <= 100) of sorted values by the nearest-rank
/// method: the smallest value with at least p% of the values at or below it.
pub fn nearest_rank(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Dollars for `billed_ms` at `price_per_hour`.
pub fn dollars(billed_ms: i64, price_per_hour: f64) -> f64 {
    billed_ms as f64 / 3_600_000.0 * price_per_hour
}

/// Rounds for stable, readable output (JSON and tables).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wait statistics in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitStats {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles of unsorted values, for ascending `ps`, by
/// successive selection (linear time; the values are reordered, not sorted).
pub fn nearest_ranks(values: &mut [i64], ps: &[f64]) -> Vec<i64> {
    let n = values.len();
    let mut out = Vec::with_capacity(ps.len());
    if n == 0 {
        return out;
    }
    let mut lo = 0;
    for &p in ps {
        let idx = (((p / 100.0) * n as f64).ceil() as usize).clamp(1, n) - 1;
        if idx < lo {
            // Same rank as the previous percentile.
            out.push(out.last().copied().unwrap_or(values[idx]));
            continue;
        }
        let (_, v, _) = values[lo..].select_nth_unstable(idx - lo);
        out.push(*v);
        lo = idx + 1;
    }
    out
}

impl WaitStats {
    /// Statistics of waits in milliseconds (reordered in place).
    pub fn from_millis(waits: &mut [i64]) -> WaitStats {
        if waits.is_empty() {
            return WaitStats::default();
        }
        let sum: i128 = waits.iter().map(|&w| i128::from(w)).sum();
        let p = nearest_ranks(waits, &[50.0, 90.0, 95.0, 99.0, 100.0]);
        let s = |ms: i64| round3(ms as f64 / 1000.0);
        WaitStats {
            count: waits.len() as u64,
            mean: round3(sum as f64 / waits.len() as f64 / 1000.0),
            p50: s(p[0]),
            p90: s(p[1]),
            p95: s(p[2]),
            p99: s(p[3]),
            max: s(p[4]),
        }
    }
}

/// Collects per-step waits with their machine type and jobset, to report
/// them overall and per group. Groups are small integers named at the end.
#[derive(Debug, Clone, Default)]
pub struct WaitRecorder {
    waits: Vec<i64>,
    per_type: Vec<Vec<i64>>,
    per_jobset: Vec<Vec<i64>>,
    /// Steps whose first attempt started on a machine that was requested
    /// after the step became runnable.
    waited_for_boot: u64,
}

impl WaitRecorder {
    pub fn record(&mut self, wait_ms: i64, machine_type: u32, jobset: u32, waited_for_boot: bool) {
        self.waits.push(wait_ms);
        for (groups, g) in [(&mut self.per_type, machine_type), (&mut self.per_jobset, jobset)] {
            let g = g as usize;
            if groups.len() <= g {
                groups.resize_with(g + 1, Vec::new);
            }
            groups[g].push(wait_ms);
        }
        self.waited_for_boot += u64::from(waited_for_boot);
    }

    pub fn len(&self) -> usize {
        self.waits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// Latency overall and per group, groups named by the given functions.
    /// Latency overall and per group (reorders the recorded waits).
    pub fn latency(&mut self, type_name: impl Fn(u32) -> String, jobset_name: impl Fn(u32) -> String) -> Latency {
        let fraction = if self.waits.is_empty() { 0.0 } else { self.waited_for_boot as f64 / self.waits.len() as f64 };
        let groups = |groups: &mut Vec<Vec<i64>>, name: &dyn Fn(u32) -> String| -> BTreeMap<String, WaitStats> {
            groups
                .iter_mut()
                .enumerate()
                .filter(|(_, v)| !v.is_empty())
                .map(|(g, v)| (name(g as u32), WaitStats::from_millis(v)))
                .collect()
        };
        Latency {
            overall: WaitStats::from_millis(&mut self.waits),
            per_machine_type: groups(&mut self.per_type, &type_name),
            per_jobset: groups(&mut self.per_jobset, &jobset_name),
            waited_for_boot_fraction: round3(fraction),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub overall: WaitStats,
    pub per_machine_type: BTreeMap<String, WaitStats>,
    pub per_jobset: BTreeMap<String, WaitStats>,
    pub waited_for_boot_fraction: f64,
}

/// Cost of the provisioned fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    pub dollars: f64,
    /// Of which storage of stopped instances.
    pub storage_dollars: f64,
    pub billed_machine_hours: f64,
    /// Time machines had at least one job running.
    pub busy_machine_hours: f64,
    /// Billed but not busy (waste, billing rounding included).
    pub idle_machine_hours: f64,
    /// Job-hours run on provisioned machines.
    pub busy_job_hours: f64,
    /// Job-hours over billed slot-hours (billed machine-hours times maxJobs).
    pub utilisation: f64,
}

/// Creates, starts and the like, and what they cost the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stability {
    pub creates: u64,
    pub starts: u64,
    pub stops: u64,
    /// Stops NixOps did not carry out: the original's `stop` waited for a
    /// confirmation nobody gave, so the machine kept running.
    pub stops_refused: u64,
    pub destroys: u64,
    pub deploys: u64,
    pub failed_deploys: u64,
    pub spot_interruptions: u64,
    pub aborted_steps: u64,
    pub retries: u64,
}

/// Step counts; every step of the trace is in exactly one final bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepCounts {
    pub total: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Aborted or failed on every one of its attempts.
    pub gave_up: u64,
    /// Started but still running when the horizon ended the run.
    pub running_at_end: u64,
    /// Started, aborted, and waiting for a retry when the horizon ended the run.
    pub retrying_at_end: u64,
    /// Attempts started; each ends as finished, aborted or running at the end.
    pub attempts: u64,
    pub attempts_finished: u64,
    pub never_started: BTreeMap<String, u64>,
}

/// Everything a run reports, and what produced it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub trace: String,
    pub config: String,
    /// The engine's rules: the original's, defects included, or the fixed ones.
    pub quirks: Quirks,
    pub seed: u64,
    pub program_version: String,
    /// Seconds of simulated time covered.
    pub simulated_seconds: f64,
    pub passes: u64,
    pub steps: StepCounts,
    pub cost: Cost,
    pub machines_alive_at_end: u64,
    pub latency: Latency,
    pub stability: Stability,
}

impl Summary {
    /// The summary as a plain-text table.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "scenario         {}", self.scenario);
        let _ = writeln!(o, "trace            {}", self.trace);
        let _ = writeln!(o, "config           {}", self.config);
        let _ = writeln!(o, "quirks           {}", quirks_text(self.quirks));
        let _ = writeln!(o, "seed             {}", self.seed);
        let _ = writeln!(o, "version          hydra-provisioner {}", self.program_version);
        let _ = writeln!(
            o,
            "simulated        {:.1} h, {} provisioner passes",
            self.simulated_seconds / 3600.0,
            self.passes
        );
        let c = &self.cost;
        let _ = writeln!(o, "\ncost             ${:.2} (storage ${:.2})", c.dollars, c.storage_dollars);
        let _ = writeln!(
            o,
            "machine-hours    billed {:.2}, busy {:.2}, idle {:.2}; utilisation {:.1}%",
            c.billed_machine_hours,
            c.busy_machine_hours,
            c.idle_machine_hours,
            c.utilisation * 100.0
        );
        let _ = writeln!(o, "alive at end     {}", self.machines_alive_at_end);
        let s = &self.steps;
        let _ = writeln!(
            o,
            "\nsteps            {} total, {} started, {} succeeded, {} failed, {} gave up, {} running at end",
            s.total, s.started, s.succeeded, s.failed, s.gave_up, s.running_at_end
        );
        for (reason, n) in &s.never_started {
            let _ = writeln!(o, "never started    {n} ({reason})");
        }
        let _ = writeln!(
            o,
            "\nwait (s)                                 count      mean       p50       p90       p95       p99       max"
        );
        let row = |o: &mut String, name: &str, w: &WaitStats| {
            let _ = writeln!(
                o,
                "{:<36} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name, w.count, w.mean, w.p50, w.p90, w.p95, w.p99, w.max
            );
        };
        row(&mut o, "all", &self.latency.overall);
        for (k, w) in &self.latency.per_machine_type {
            row(&mut o, &format!("type {k}"), w);
        }
        for (k, w) in &self.latency.per_jobset {
            row(&mut o, &format!("jobset {k}"), w);
        }
        let _ = writeln!(o, "waited for a boot {:.1}%", self.latency.waited_for_boot_fraction * 100.0);
        let st = &self.stability;
        let _ = writeln!(
            o,
            "\nmachines         {} creates, {} starts, {} stops, {} destroys, {} spot interruptions",
            st.creates, st.starts, st.stops, st.destroys, st.spot_interruptions
        );
        let _ = writeln!(o, "deploys          {}, {} failed", st.deploys, st.failed_deploys);
        if st.stops_refused > 0 {
            let _ = writeln!(
                o,
                "stops refused    {} (NixOps asked for a confirmation nobody gave; the machines kept running)",
                st.stops_refused
            );
        }
        let _ = writeln!(o, "steps            {} aborted, {} retries", st.aborted_steps, st.retries);
        o
    }
}

/// The quirks mode as the summary table names it.
pub fn quirks_text(quirks: Quirks) -> &'static str {
    match quirks {
        Quirks::Original => "original (the original provisioner's rules, defects included)",
        Quirks::Fixed => "fixed (the original's known defects fixed)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [15, 20, 35, 40, 50];
        assert_eq!(nearest_rank(&v, 30.0), Some(20));
        assert_eq!(nearest_rank(&v, 40.0), Some(20));
        assert_eq!(nearest_rank(&v, 50.0), Some(35));
        assert_eq!(nearest_rank(&v, 100.0), Some(50));
        assert_eq!(nearest_rank(&v, 0.0), Some(15));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn selection_agrees_with_sorting() {
        let mut v: Vec<i64> = (0..1000).map(|i| (i * 7919) % 1009).collect();
        let mut sorted = v.clone();
        sorted.sort_unstable();
        let ps = [0.0, 50.0, 50.0, 90.0, 95.0, 99.0, 100.0];
        let expect: Vec<i64> = ps.iter().map(|&p| nearest_rank(&sorted, p).unwrap()).collect();
        assert_eq!(nearest_ranks(&mut v, &ps), expect);
    }

    #[test]
    fn wait_stats_in_seconds() {
        let mut w: Vec<i64> = (1..=100).map(|s| s * 1000).collect();
        let s = WaitStats::from_millis(&mut w);
        assert_eq!((s.count, s.p50, s.p90, s.p99, s.max, s.mean), (100, 50.0, 90.0, 99.0, 100.0, 50.5));
    }

    #[test]
    fn dollars_per_hour() {
        assert_eq!(dollars(3_600_000, 0.1), 0.1);
        assert_eq!(round3(dollars(1_800_000, 0.25)), 0.125);
    }
}
