//! The numbers a sweep reports for each run and each candidate policy, taken
//! from the simulator's [`Summary`] with the definitions of DESIGN section 7,
//! and the CSV files that hold them.
//!
//! A sweep's grid point is a candidate policy under one cloud setting and
//! one sample of the trace (see [`Role`]); a candidate's runs are its sample
//! points times the seeds. Each candidate gets the mean of every figure over
//! its runs and the spread (smallest and largest) of cost and waits, and a
//! frontier is drawn per cloud setting.
//!
//! This module computes and renders; it does not run simulations or write
//! files. Means are rounded to three decimals like the summary's own
//! figures, sums run in run order, and CSV numbers are printed with Rust's
//! shortest exact rendering, so equal inputs give equal bytes.

use super::sweep::{Point, Role, Sweep, value_text};
use crate::config::Quirks;
use crate::metrics::{Summary, TypeCost, WaitStats, round3};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A quirks mode as the configuration spells it.
pub fn quirks_name(q: Quirks) -> &'static str {
    match q {
        Quirks::Original => "original",
        Quirks::Fixed => "fixed",
    }
}

/// Column names of the metrics, in [`Metrics::to_array`] order.
pub const METRIC_NAMES: [&str; METRIC_COUNT] = [
    "cost_dollars",
    "billed_machine_hours",
    "busy_machine_hours",
    "idle_machine_hours",
    "utilisation",
    "wait_mean_s",
    "wait_p50_s",
    "wait_p90_s",
    "wait_p95_s",
    "wait_p99_s",
    "wait_max_s",
    "waited_for_boot_fraction",
    "creates",
    "destroys",
    "aborted_steps",
    "steps_not_started",
    "failed_deploys",
    "stops_refused",
    "steps_started",
];

/// How many figures a run has.
pub const METRIC_COUNT: usize = 19;

/// The figures whose spread over a candidate's runs is reported (indices
/// into [`METRIC_NAMES`]): cost and the wait figures.
pub const SPREAD_METRICS: [usize; 7] = [0, 5, 6, 7, 8, 9, 10];

/// One run's (or one candidate's mean) figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    pub cost_dollars: f64,
    pub billed_machine_hours: f64,
    pub busy_machine_hours: f64,
    pub idle_machine_hours: f64,
    pub utilisation: f64,
    pub wait_mean: f64,
    pub wait_p50: f64,
    pub wait_p90: f64,
    pub wait_p95: f64,
    pub wait_p99: f64,
    pub wait_max: f64,
    pub waited_for_boot_fraction: f64,
    pub creates: f64,
    pub destroys: f64,
    pub aborted_steps: f64,
    /// Steps that never started (not in the wait figures: a policy that
    /// starves a type must not look fast).
    pub steps_not_started: f64,
    /// Deploys that failed (a failed deploy leaves its machine out of the
    /// machines file: a policy must not look cheap because its machines
    /// never served).
    pub failed_deploys: f64,
    /// Stops NixOps refused under the original quirks: the machines kept
    /// running and billing (why `stopOnIdle` looks ruinous there).
    pub stops_refused: f64,
    /// Steps whose first attempt started (the count behind the waits).
    pub steps_started: f64,
}

impl Metrics {
    pub fn from_summary(s: &Summary) -> Metrics {
        let w = &s.latency.overall;
        Metrics {
            cost_dollars: round3(s.cost.dollars),
            billed_machine_hours: round3(s.cost.billed_machine_hours),
            busy_machine_hours: round3(s.cost.busy_machine_hours),
            idle_machine_hours: round3(s.cost.idle_machine_hours),
            utilisation: round3(s.cost.utilisation),
            wait_mean: w.mean,
            wait_p50: w.p50,
            wait_p90: w.p90,
            wait_p95: w.p95,
            wait_p99: w.p99,
            wait_max: w.max,
            waited_for_boot_fraction: s.latency.waited_for_boot_fraction,
            creates: s.stability.creates as f64,
            destroys: s.stability.destroys as f64,
            aborted_steps: s.stability.aborted_steps as f64,
            steps_not_started: s.steps.total.saturating_sub(s.steps.started) as f64,
            failed_deploys: s.stability.failed_deploys as f64,
            stops_refused: s.stability.stops_refused as f64,
            steps_started: s.steps.started as f64,
        }
    }

    pub fn to_array(&self) -> [f64; METRIC_COUNT] {
        [
            self.cost_dollars,
            self.billed_machine_hours,
            self.busy_machine_hours,
            self.idle_machine_hours,
            self.utilisation,
            self.wait_mean,
            self.wait_p50,
            self.wait_p90,
            self.wait_p95,
            self.wait_p99,
            self.wait_max,
            self.waited_for_boot_fraction,
            self.creates,
            self.destroys,
            self.aborted_steps,
            self.steps_not_started,
            self.failed_deploys,
            self.stops_refused,
            self.steps_started,
        ]
    }

    pub fn from_array(a: [f64; METRIC_COUNT]) -> Metrics {
        Metrics {
            cost_dollars: a[0],
            billed_machine_hours: a[1],
            busy_machine_hours: a[2],
            idle_machine_hours: a[3],
            utilisation: a[4],
            wait_mean: a[5],
            wait_p50: a[6],
            wait_p90: a[7],
            wait_p95: a[8],
            wait_p99: a[9],
            wait_max: a[10],
            waited_for_boot_fraction: a[11],
            creates: a[12],
            destroys: a[13],
            aborted_steps: a[14],
            steps_not_started: a[15],
            failed_deploys: a[16],
            stops_refused: a[17],
            steps_started: a[18],
        }
    }

    /// The mean of each figure, rounded to three decimals; summed in the
    /// given order, so callers pass runs in run order.
    pub fn mean(runs: &[Metrics]) -> Metrics {
        Metrics::from_array(mean_of(&runs.iter().map(Metrics::to_array).collect::<Vec<_>>()))
    }

    /// The smallest and the largest of each figure.
    pub fn extremes(runs: &[Metrics]) -> (Metrics, Metrics) {
        let mut lo = [f64::INFINITY; METRIC_COUNT];
        let mut hi = [f64::NEG_INFINITY; METRIC_COUNT];
        for r in runs {
            for (i, v) in r.to_array().into_iter().enumerate() {
                lo[i] = lo[i].min(v);
                hi[i] = hi[i].max(v);
            }
        }
        if runs.is_empty() {
            return (Metrics::default(), Metrics::default());
        }
        (Metrics::from_array(lo), Metrics::from_array(hi))
    }
}

/// The mean of each column, rounded to three decimals (zeros when empty).
fn mean_of<const N: usize>(rows: &[[f64; N]]) -> [f64; N] {
    let mut sum = [0.0; N];
    for r in rows {
        for (s, v) in sum.iter_mut().zip(r) {
            *s += v;
        }
    }
    if rows.is_empty() {
        return sum;
    }
    sum.map(|s| round3(s / rows.len() as f64))
}

/// A run's figures per machine type and per jobset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Waits of the steps of each type, and the bill of each provisioned type.
    pub types: BTreeMap<String, TypeFigures>,
    pub jobsets: BTreeMap<String, WaitStats>,
}

/// One machine type's waits and cost (either may be empty: a step type no
/// provisioned type serves has no bill, a provisioned type without steps no
/// waits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeFigures {
    pub wait: WaitStats,
    pub cost: TypeCost,
}

impl Breakdown {
    pub fn from_summary(s: &Summary) -> Breakdown {
        let mut types: BTreeMap<String, TypeFigures> = BTreeMap::new();
        for (t, w) in &s.latency.per_machine_type {
            types.entry(t.clone()).or_default().wait = w.clone();
        }
        for (t, c) in &s.cost.per_machine_type {
            types.entry(t.clone()).or_default().cost = c.clone();
        }
        Breakdown { types, jobsets: s.latency.per_jobset.clone() }
    }
}

/// One run: its figures overall and per group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFigures {
    pub metrics: Metrics,
    pub breakdown: Breakdown,
}

impl RunFigures {
    pub fn from_summary(s: &Summary) -> RunFigures {
        RunFigures { metrics: Metrics::from_summary(s), breakdown: Breakdown::from_summary(s) }
    }
}

/// One run of a candidate: which sample it is and what it gave.
#[derive(Debug, Clone)]
pub struct Run {
    /// The grid point (all axes) the run belongs to.
    pub point: Point,
    pub seed: u64,
    /// The values of the sample axes and the seed, e.g. `window=0d..1d seed=2`.
    pub sample: String,
    pub figures: RunFigures,
}

/// Wait figures of a group (a machine type or a jobset), as means over the
/// runs in which the group had started steps, with the spread of its p95.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSummary {
    /// Runs in which the group had started steps.
    pub runs: usize,
    pub steps: f64,
    pub wait: [f64; 6],
    pub wait_p95_min: f64,
    pub wait_p95_max: f64,
    /// Provisioned types only: mean dollars (all, busy, idle, storage).
    pub cost: Option<[f64; 4]>,
}

/// Column names of [`GroupSummary::wait`].
pub const GROUP_WAIT_NAMES: [&str; 6] =
    ["wait_mean_s", "wait_p50_s", "wait_p90_s", "wait_p95_s", "wait_p99_s", "wait_max_s"];

fn wait_array(w: &WaitStats) -> [f64; 6] {
    [w.mean, w.p50, w.p90, w.p95, w.p99, w.max]
}

/// A candidate policy under one cloud setting: its runs over every sample
/// and seed, and their mean and spread.
#[derive(Debug, Clone)]
pub struct PointResult {
    /// The candidate's number: grid points without the sample axes, in grid
    /// order (the grid point's own number when there is no sample axis).
    pub index: usize,
    /// The value of every policy and setting axis (sample axes: the value of
    /// the first run, not meaningful).
    pub values: Vec<usize>,
    /// Its policy and setting, e.g. `gracePeriod=600 billing=hourly`.
    pub label: String,
    /// Its policy alone, e.g. `gracePeriod=600` (`base` without policy axes).
    pub policy: String,
    /// Index into [`SweepResults::settings`].
    pub setting: usize,
    /// The engine's rules at this point (it may be an axis).
    pub quirks: Quirks,
    /// In grid order of the sample points, seeds innermost.
    pub runs: Vec<Run>,
    pub mean: Metrics,
    pub min: Metrics,
    pub max: Metrics,
}

impl PointResult {
    /// Means per machine type and per jobset over the runs.
    pub fn groups(&self) -> (BTreeMap<String, GroupSummary>, BTreeMap<String, GroupSummary>) {
        let mut types: BTreeMap<String, Vec<&TypeFigures>> = BTreeMap::new();
        let mut jobsets: BTreeMap<String, Vec<&WaitStats>> = BTreeMap::new();
        for r in &self.runs {
            for (t, f) in &r.figures.breakdown.types {
                types.entry(t.clone()).or_default().push(f);
            }
            for (j, w) in &r.figures.breakdown.jobsets {
                jobsets.entry(j.clone()).or_default().push(w);
            }
        }
        let summarise = |waits: Vec<&WaitStats>, cost: Option<[f64; 4]>| {
            let started: Vec<&WaitStats> = waits.into_iter().filter(|w| w.count > 0).collect();
            let p95 = started.iter().map(|w| w.p95);
            GroupSummary {
                runs: started.len(),
                steps: mean_of(&started.iter().map(|w| [w.count as f64]).collect::<Vec<_>>())[0],
                wait: mean_of(&started.iter().map(|w| wait_array(w)).collect::<Vec<_>>()),
                wait_p95_min: if started.is_empty() { 0.0 } else { p95.clone().fold(f64::INFINITY, f64::min) },
                wait_p95_max: p95.fold(0.0, f64::max),
                cost,
            }
        };
        let types = types
            .into_iter()
            .map(|(t, figures)| {
                let billed: Vec<[f64; 4]> = figures
                    .iter()
                    .filter(|f| f.cost.instances > 0)
                    .map(|f| [f.cost.dollars, f.cost.busy_dollars, f.cost.idle_dollars, f.cost.storage_dollars])
                    .collect();
                // Runs in which the type had no instance cost nothing.
                let cost = (!billed.is_empty()).then(|| {
                    let mut padded = billed;
                    padded.resize(figures.len(), [0.0; 4]);
                    mean_of(&padded)
                });
                (t, summarise(figures.iter().map(|f| &f.wait).collect(), cost))
            })
            .collect();
        let jobsets = jobsets.into_iter().map(|(j, w)| (j, summarise(w, None))).collect();
        (types, jobsets)
    }
}

/// One combination of the setting axes' values.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// e.g. `billing=hourly on_demand_price=0.2`; `base` without setting axes.
    pub label: String,
}

/// Everything a sweep found.
#[derive(Debug, Clone)]
pub struct SweepResults {
    pub sweep: Sweep,
    pub seeds: Vec<u64>,
    /// The candidates, in grid order.
    pub points: Vec<PointResult>,
    pub settings: Vec<Setting>,
    /// The base scenario's name and trace, for the report.
    pub scenario_name: String,
    pub trace: String,
    pub program_version: String,
}

impl SweepResults {
    /// Groups per-run figures (`runs[p * seeds + s]` is grid point `p`,
    /// seed `s`) into candidates; `quirks[p]` is grid point `p`'s quirks mode.
    pub fn new(
        sweep: Sweep,
        seeds: Vec<u64>,
        runs: Vec<RunFigures>,
        quirks: Vec<Quirks>,
        scenario_name: String,
        trace: String,
        program_version: String,
    ) -> SweepResults {
        let mut points: Vec<PointResult> = vec![];
        let mut by_key: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
        let mut settings: Vec<Setting> = vec![];
        let mut runs = runs.into_iter();
        for point in sweep.points() {
            let key: Vec<usize> = sweep
                .axes
                .iter()
                .zip(&point.values)
                .map(|(a, &v)| if a.role == Role::Sample { usize::MAX } else { v })
                .collect();
            let next = points.len();
            let c = *by_key.entry(key).or_insert(next);
            if c == next {
                let setting_label = non_empty(sweep.label_of(&point, &[Role::Setting]));
                let setting = match settings.iter().position(|s| s.label == setting_label) {
                    Some(s) => s,
                    None => {
                        settings.push(Setting { label: setting_label });
                        settings.len() - 1
                    }
                };
                points.push(PointResult {
                    index: next,
                    values: point.values.clone(),
                    label: non_empty(sweep.label_of(&point, &[Role::Policy, Role::Setting])),
                    policy: non_empty(sweep.label_of(&point, &[Role::Policy])),
                    setting,
                    quirks: quirks.get(point.index).copied().unwrap_or_default(),
                    runs: vec![],
                    mean: Metrics::default(),
                    min: Metrics::default(),
                    max: Metrics::default(),
                });
            }
            let sample_axes = sweep.label_of(&point, &[Role::Sample]);
            for &seed in &seeds {
                let figures = runs.next().unwrap_or_default();
                let sample =
                    if sample_axes.is_empty() { format!("seed={seed}") } else { format!("{sample_axes} seed={seed}") };
                points[c].runs.push(Run { point: point.clone(), seed, sample, figures });
            }
        }
        for p in &mut points {
            let all: Vec<Metrics> = p.runs.iter().map(|r| r.figures.metrics).collect();
            p.mean = Metrics::mean(&all);
            (p.min, p.max) = Metrics::extremes(&all);
        }
        SweepResults { sweep, seeds, points, settings, scenario_name, trace, program_version }
    }

    /// Runs per candidate (sample points times seeds).
    pub fn samples(&self) -> usize {
        self.points.first().map_or(0, |p| p.runs.len())
    }

    /// The candidates of one setting, in grid order.
    pub fn in_setting(&self, setting: usize) -> impl Iterator<Item = &PointResult> {
        self.points.iter().filter(move |p| p.setting == setting)
    }

    /// The frontier of one setting (indices into `points`), in order of cost.
    pub fn frontier(&self, setting: usize) -> Vec<usize> {
        let members: Vec<&PointResult> = self.in_setting(setting).collect();
        let xy: Vec<(f64, f64)> = members.iter().map(|p| (p.mean.cost_dollars, p.mean.wait_p95)).collect();
        super::pareto::frontier(&xy).into_iter().map(|i| members[i].index).collect()
    }

    /// Every setting's frontier, in setting order.
    pub fn frontiers(&self) -> Vec<Vec<usize>> {
        (0..self.settings.len()).map(|s| self.frontier(s)).collect()
    }

    /// Whether a candidate is on its setting's frontier.
    pub fn on_frontier(&self, frontiers: &[Vec<usize>], index: usize) -> bool {
        frontiers.iter().any(|f| f.contains(&index))
    }

    fn axes_of(&self, roles: &[Role]) -> Vec<usize> {
        (0..self.sweep.axes.len()).filter(|&i| roles.contains(&self.sweep.axes[i].role)).collect()
    }

    fn header(&self, axes: &[usize], extra: &[&str]) -> Vec<String> {
        let mut header: Vec<String> = vec!["point".into()];
        header.extend(axes.iter().map(|&i| self.sweep.axes[i].column()));
        header.push("quirks_mode".into());
        header.extend(extra.iter().map(|s| s.to_string()));
        header
    }

    fn lead(&self, axes: &[usize], index: usize, values: &[usize], quirks: Quirks) -> Vec<String> {
        let mut cells = vec![index.to_string()];
        cells.extend(axes.iter().map(|&i| value_text(&self.sweep.axes[i].values[values[i]])));
        cells.push(quirks_name(quirks).to_string());
        cells
    }

    fn write(header: Vec<String>, rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&header);
        for row in rows {
            let _ = w.write_record(&row);
        }
        w.into_inner().unwrap_or_default()
    }

    /// One row per run: candidate, every axis, seed, figures.
    pub fn points_csv(&self) -> Vec<u8> {
        let axes = self.axes_of(&[Role::Policy, Role::Setting, Role::Sample]);
        let mut header = self.header(&axes, &["seed"]);
        header.extend(METRIC_NAMES.iter().map(|s| s.to_string()));
        let rows = self.points.iter().flat_map(|p| {
            let axes = &axes;
            p.runs.iter().map(move |r| {
                let mut cells = self.lead(axes, p.index, &r.point.values, p.quirks);
                cells.push(r.seed.to_string());
                cells.extend(r.figures.metrics.to_array().iter().map(f64::to_string));
                cells
            })
        });
        Self::write(header, rows)
    }

    fn summary_header(&self, axes: &[usize]) -> Vec<String> {
        let mut header = self.header(axes, &["samples"]);
        header.extend(METRIC_NAMES.iter().map(|s| s.to_string()));
        for &i in &SPREAD_METRICS {
            header.push(format!("{}_min", METRIC_NAMES[i]));
            header.push(format!("{}_max", METRIC_NAMES[i]));
        }
        header
    }

    fn summary_row(&self, axes: &[usize], p: &PointResult) -> Vec<String> {
        let mut cells = self.lead(axes, p.index, &p.values, p.quirks);
        cells.push(p.runs.len().to_string());
        cells.extend(p.mean.to_array().iter().map(f64::to_string));
        let (lo, hi) = (p.min.to_array(), p.max.to_array());
        for &i in &SPREAD_METRICS {
            cells.push(lo[i].to_string());
            cells.push(hi[i].to_string());
        }
        cells
    }

    /// One row per candidate: the mean over its runs of each figure, and
    /// the smallest and largest cost and waits.
    pub fn summary_csv(&self) -> Vec<u8> {
        let axes = self.axes_of(&[Role::Policy, Role::Setting]);
        Self::write(self.summary_header(&axes), self.points.iter().map(|p| self.summary_row(&axes, p)))
    }

    /// Each setting's frontier rows, cheapest first, settings in order.
    pub fn pareto_csv(&self) -> Vec<u8> {
        let axes = self.axes_of(&[Role::Policy, Role::Setting]);
        let rows = self.frontiers().into_iter().flatten().map(|i| self.summary_row(&axes, &self.points[i]));
        Self::write(self.summary_header(&axes), rows)
    }

    /// One row per candidate and machine type or jobset: mean waits over the
    /// runs in which the group had started steps, the spread of its p95,
    /// and for provisioned types the mean cost split.
    pub fn groups_csv(&self) -> Vec<u8> {
        let axes = self.axes_of(&[Role::Policy, Role::Setting]);
        let mut header = self.header(&axes, &["group_kind", "group", "runs", "steps"]);
        header.extend(GROUP_WAIT_NAMES.iter().map(|s| s.to_string()));
        header.extend(
            ["wait_p95_s_min", "wait_p95_s_max", "cost_dollars", "busy_dollars", "idle_dollars", "storage_dollars"]
                .map(String::from),
        );
        let mut rows = vec![];
        for p in &self.points {
            let (types, jobsets) = p.groups();
            for (kind, groups) in [("type", types), ("jobset", jobsets)] {
                for (name, g) in groups {
                    let mut cells = self.lead(&axes, p.index, &p.values, p.quirks);
                    cells.extend([kind.to_string(), name, g.runs.to_string(), g.steps.to_string()]);
                    cells.extend(g.wait.iter().map(f64::to_string));
                    cells.push(g.wait_p95_min.to_string());
                    cells.push(g.wait_p95_max.to_string());
                    match g.cost {
                        Some(c) => cells.extend(c.iter().map(f64::to_string)),
                        None => cells.extend(std::iter::repeat_n(String::new(), 4)),
                    }
                    rows.push(cells);
                }
            }
        }
        Self::write(header, rows.into_iter())
    }

    /// The frontiers as plain-text tables, for the terminal.
    pub fn frontier_table(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let n = self.samples();
        for (s, frontier) in self.frontiers().into_iter().enumerate() {
            let width = frontier.iter().map(|&i| self.points[i].policy.len()).max().unwrap_or(0).max(10);
            let members = self.in_setting(s).count();
            let _ = writeln!(
                o,
                "Pareto frontier{}: {} of {} points ({n} run(s) each), mean cost and mean p95 wait, both minimised",
                if self.sweep.has(Role::Setting) { format!(" for {}", self.settings[s].label) } else { String::new() },
                frontier.len(),
                members,
            );
            let _ = writeln!(
                o,
                "{:>5}  {:<width$}  {:<8}  {:>19}  {:>21}  {:>11}  {:>8}  {:>14}",
                "point",
                "parameters",
                "quirks",
                "cost $ (min-max)",
                "p95 wait s (min-max)",
                "mean wait s",
                "util %",
                "failed deploys"
            );
            for i in frontier {
                let p = &self.points[i];
                let _ = writeln!(
                    o,
                    "{:>5}  {:<width$}  {:<8}  {:>19}  {:>21}  {:>11.1}  {:>8.1}  {:>14}",
                    p.index,
                    p.policy,
                    quirks_name(p.quirks),
                    format!("{:.2} ({:.2}-{:.2})", p.mean.cost_dollars, p.min.cost_dollars, p.max.cost_dollars),
                    format!("{:.0} ({:.0}-{:.0})", p.mean.wait_p95, p.min.wait_p95, p.max.wait_p95),
                    p.mean.wait_mean,
                    p.mean.utilisation * 100.0,
                    p.mean.failed_deploys
                );
            }
            o.push('\n');
        }
        o
    }
}

fn non_empty(label: String) -> String {
    if label.is_empty() { "base".into() } else { label }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_and_names_match() {
        let m = Metrics::from_array(std::array::from_fn(|i| i as f64));
        assert_eq!(m.to_array(), std::array::from_fn(|i| i as f64));
        assert_eq!(m.wait_p95, 8.0);
        assert_eq!(METRIC_NAMES[8], "wait_p95_s");
        assert_eq!(METRIC_NAMES[0], "cost_dollars");
        assert_eq!(METRIC_NAMES[18], "steps_started");
        assert!(SPREAD_METRICS.iter().all(|&i| i == 0 || METRIC_NAMES[i].starts_with("wait_")));
    }

    #[test]
    fn mean_over_seeds_is_rounded_and_extremes_are_kept() {
        let a = Metrics { cost_dollars: 1.0, creates: 1.0, ..Metrics::default() };
        let b = Metrics { cost_dollars: 2.0, creates: 1.0, ..Metrics::default() };
        let c = Metrics { cost_dollars: 2.0, creates: 2.0, ..Metrics::default() };
        let m = Metrics::mean(&[a, b, c]);
        assert_eq!((m.cost_dollars, m.creates), (1.667, 1.333));
        assert_eq!(Metrics::mean(&[]), Metrics::default());
        let (lo, hi) = Metrics::extremes(&[a, b, c]);
        assert_eq!((lo.cost_dollars, hi.cost_dollars, hi.creates), (1.0, 2.0, 2.0));
    }

    fn figures(cost: f64, p95: f64) -> RunFigures {
        RunFigures {
            metrics: Metrics { cost_dollars: cost, wait_p95: p95, ..Metrics::default() },
            ..Default::default()
        }
    }

    #[test]
    fn csv_rows_follow_the_grid_and_seeds() {
        let sweep = Sweep::parse(
            "version = 1\nscenario = \"b.toml\"\nseeds = [3, 1]\n[[axis]]\npath = \"quirks\"\nvalues = [\"original\", \"fixed\"]\n",
            "s.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let runs: Vec<RunFigures> = (0..4).map(|i| figures(10.0 - i as f64, i as f64)).collect();
        let quirks = vec![Quirks::Original, Quirks::Fixed];
        let r = SweepResults::new(sweep, vec![3, 1], runs, quirks, "b".into(), "t.csv".into(), "0".into());
        let points = String::from_utf8(r.points_csv()).unwrap();
        let lines: Vec<&str> = points.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("point,quirks,quirks_mode,seed,cost_dollars,"), "{}", lines[0]);
        assert!(lines[0].ends_with(",failed_deploys,stops_refused,steps_started"), "{}", lines[0]);
        assert!(lines[1].starts_with("0,original,original,3,10,"), "{}", lines[1]);
        assert!(lines[4].starts_with("1,fixed,fixed,1,7,"), "{}", lines[4]);
        let summary = String::from_utf8(r.summary_csv()).unwrap();
        assert!(summary.lines().nth(1).unwrap().starts_with("0,original,original,2,9.5,"), "{summary}");
        assert!(summary.lines().next().unwrap().contains(",cost_dollars_min,cost_dollars_max,"), "{summary}");
        assert!(summary.lines().nth(1).unwrap().contains(",9,10,"), "cost spread 9-10: {summary}");
        // Point 0: cost 9.5, p95 0.5; point 1: cost 7.5, p95 2.5: neither dominates.
        assert_eq!(r.frontier(0), [1, 0]);
        assert!(r.frontier_table().contains("quirks=fixed"));
    }

    #[test]
    fn sample_axes_pool_into_candidates_and_settings_get_their_own_frontier() {
        let sweep = Sweep::parse(
            "version = 1\nscenario = \"b.toml\"\nseeds = [1, 2]\n\
             [[axis]]\npath = \"billing\"\nvalues = [\"hourly\", \"per-second\"]\n\
             [[axis]]\npath = \"maxCreationsPerPass\"\nvalues = [1, 2]\n\
             [[axis]]\npath = \"window\"\nvalues = [\"0h..1h\", \"1h..2h\", \"2h..3h\"]\n",
            "s.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        // 2 settings x 2 policies x 3 windows x 2 seeds = 24 runs.
        let runs: Vec<RunFigures> = (0..24).map(|i| figures(i as f64, 100.0 - i as f64)).collect();
        let r = SweepResults::new(sweep, vec![1, 2], runs, vec![Quirks::Fixed; 12], "b".into(), "t".into(), "0".into());
        assert_eq!(r.points.len(), 4);
        assert_eq!(r.settings.len(), 2);
        assert_eq!(r.samples(), 6);
        let p = &r.points[1];
        assert_eq!(
            (p.label.as_str(), p.policy.as_str()),
            ("billing=hourly maxCreationsPerPass=2", "maxCreationsPerPass=2")
        );
        assert_eq!(
            p.runs.iter().map(|r| r.figures.metrics.cost_dollars).collect::<Vec<_>>(),
            [6., 7., 8., 9., 10., 11.]
        );
        assert_eq!(p.runs[2].sample, "window=1h..2h seed=1");
        assert_eq!((p.mean.cost_dollars, p.min.cost_dollars, p.max.cost_dollars), (8.5, 6.0, 11.0));
        assert_eq!(r.frontier(0), [0, 1], "each point is cheaper or faster within the hourly setting");
        assert_eq!(r.frontier(1), [2, 3]);
        assert_eq!(String::from_utf8(r.summary_csv()).unwrap().lines().count(), 5);
        assert_eq!(String::from_utf8(r.points_csv()).unwrap().lines().count(), 25);
        let header = String::from_utf8(r.points_csv()).unwrap().lines().next().unwrap().to_string();
        assert!(header.starts_with("point,billing,maxCreationsPerPass,window,quirks_mode,seed,"), "{header}");
        let table = r.frontier_table();
        assert!(table.contains("for billing=per-second"), "{table}");
    }
}
