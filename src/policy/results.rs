//! The numbers a sweep reports for each run and each point, taken from the
//! simulator's [`Summary`] with the definitions of DESIGN section 7, and the
//! CSV files that hold them.
//!
//! This module computes and renders; it does not run simulations or write
//! files. Means over seeds are rounded to three decimals like the summary's
//! own figures, and CSV numbers are printed with Rust's shortest exact
//! rendering, so equal inputs give equal bytes.

use super::sweep::{Point, Sweep, value_text};
use crate::config::Quirks;
use crate::metrics::{Summary, round3};

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
];

/// How many figures a run has.
pub const METRIC_COUNT: usize = 17;

/// One run's (or one point's mean) figures.
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
        }
    }

    /// The mean of each figure, rounded to three decimals; summed in the
    /// given order, so callers pass runs in seed order.
    pub fn mean(runs: &[Metrics]) -> Metrics {
        if runs.is_empty() {
            return Metrics::default();
        }
        let mut sum = [0.0; METRIC_COUNT];
        for r in runs {
            for (s, v) in sum.iter_mut().zip(r.to_array()) {
                *s += v;
            }
        }
        Metrics::from_array(sum.map(|s| round3(s / runs.len() as f64)))
    }
}

/// A grid point with its runs (in seed order) and their mean.
#[derive(Debug, Clone)]
pub struct PointResult {
    pub point: Point,
    pub label: String,
    /// The engine's rules at this point (it may be an axis).
    pub quirks: Quirks,
    pub runs: Vec<(u64, Metrics)>,
    pub mean: Metrics,
}

/// Everything a sweep found, in grid order.
#[derive(Debug, Clone)]
pub struct SweepResults {
    pub sweep: Sweep,
    pub seeds: Vec<u64>,
    pub points: Vec<PointResult>,
    /// The base scenario's name and trace, for the report.
    pub scenario_name: String,
    pub trace: String,
    pub program_version: String,
}

impl SweepResults {
    /// Groups per-run metrics (`runs[p * seeds + s]` is point `p`, seed
    /// `s`); `quirks[p]` is point `p`'s quirks mode.
    pub fn new(
        sweep: Sweep,
        seeds: Vec<u64>,
        runs: Vec<Metrics>,
        quirks: Vec<Quirks>,
        scenario_name: String,
        trace: String,
        program_version: String,
    ) -> SweepResults {
        let points = sweep
            .points()
            .into_iter()
            .map(|point| {
                let start = point.index * seeds.len();
                let runs: Vec<(u64, Metrics)> =
                    seeds.iter().copied().zip(runs[start..start + seeds.len()].iter().copied()).collect();
                let mean = Metrics::mean(&runs.iter().map(|(_, m)| *m).collect::<Vec<_>>());
                let quirks = quirks.get(point.index).copied().unwrap_or_default();
                PointResult { label: sweep.label(&point), point, quirks, runs, mean }
            })
            .collect();
        SweepResults { sweep, seeds, points, scenario_name, trace, program_version }
    }

    fn axis_cells(&self, p: &PointResult) -> Vec<String> {
        self.sweep.axes.iter().zip(&p.point.values).map(|(a, &v)| value_text(&a.values[v])).collect()
    }

    fn csv(&self, header_extra: &[&str], rows: impl Iterator<Item = (Vec<String>, Metrics)>) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = vec!["point".into()];
        header.extend(self.sweep.axes.iter().map(|a| a.path.clone()));
        header.push("quirks_mode".into());
        header.extend(header_extra.iter().map(|s| s.to_string()));
        header.extend(METRIC_NAMES.iter().map(|s| s.to_string()));
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&header);
        for (mut cells, m) in rows {
            cells.extend(m.to_array().iter().map(|v| v.to_string()));
            let _ = w.write_record(&cells);
        }
        w.into_inner().unwrap_or_default()
    }

    fn lead(&self, p: &PointResult) -> Vec<String> {
        let mut cells = vec![p.point.index.to_string()];
        cells.extend(self.axis_cells(p));
        cells.push(quirks_name(p.quirks).to_string());
        cells
    }

    /// One row per point and seed.
    pub fn points_csv(&self) -> Vec<u8> {
        let rows = self.points.iter().flat_map(|p| {
            p.runs.iter().map(move |(seed, m)| {
                let mut cells = self.lead(p);
                cells.push(seed.to_string());
                (cells, *m)
            })
        });
        self.csv(&["seed"], rows)
    }

    /// One row per point: the mean over seeds.
    pub fn summary_csv(&self) -> Vec<u8> {
        let n = self.seeds.len().to_string();
        self.csv(
            &["seeds"],
            self.points.iter().map(|p| {
                let mut cells = self.lead(p);
                cells.push(n.clone());
                (cells, p.mean)
            }),
        )
    }

    /// The frontier points (indices into `points`), in order of cost.
    pub fn frontier(&self) -> Vec<usize> {
        let xy: Vec<(f64, f64)> = self.points.iter().map(|p| (p.mean.cost_dollars, p.mean.wait_p95)).collect();
        super::pareto::frontier(&xy)
    }

    /// The frontier's rows, cheapest first.
    pub fn pareto_csv(&self) -> Vec<u8> {
        let n = self.seeds.len().to_string();
        self.csv(
            &["seeds"],
            self.frontier().into_iter().map(|i| {
                let p = &self.points[i];
                let mut cells = self.lead(p);
                cells.push(n.clone());
                (cells, p.mean)
            }),
        )
    }

    /// The frontier as a plain-text table, for the terminal.
    pub fn frontier_table(&self) -> String {
        use std::fmt::Write as _;
        let frontier = self.frontier();
        let width = frontier.iter().map(|&i| self.points[i].label.len()).max().unwrap_or(0).max(10);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Pareto frontier: {} of {} points ({} seed(s) each), mean cost and mean p95 wait, both minimised",
            frontier.len(),
            self.points.len(),
            self.seeds.len()
        );
        let _ = writeln!(
            o,
            "{:>5}  {:<width$}  {:<8}  {:>10}  {:>10}  {:>10}  {:>8}  {:>14}",
            "point", "parameters", "quirks", "cost $", "p95 wait s", "mean wait s", "util %", "failed deploys"
        );
        for i in frontier {
            let p = &self.points[i];
            let _ = writeln!(
                o,
                "{:>5}  {:<width$}  {:<8}  {:>10.2}  {:>10.1}  {:>11.1}  {:>8.1}  {:>14}",
                p.point.index,
                p.label,
                quirks_name(p.quirks),
                p.mean.cost_dollars,
                p.mean.wait_p95,
                p.mean.wait_mean,
                p.mean.utilisation * 100.0,
                p.mean.failed_deploys
            );
        }
        o
    }
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
    }

    #[test]
    fn mean_over_seeds_is_rounded() {
        let a = Metrics { cost_dollars: 1.0, creates: 1.0, ..Metrics::default() };
        let b = Metrics { cost_dollars: 2.0, creates: 1.0, ..Metrics::default() };
        let c = Metrics { cost_dollars: 2.0, creates: 2.0, ..Metrics::default() };
        let m = Metrics::mean(&[a, b, c]);
        assert_eq!((m.cost_dollars, m.creates), (1.667, 1.333));
        assert_eq!(Metrics::mean(&[]), Metrics::default());
    }

    #[test]
    fn csv_rows_follow_the_grid_and_seeds() {
        let sweep = Sweep::parse(
            "version = 1\nscenario = \"b.toml\"\nseeds = [3, 1]\n[[axis]]\npath = \"billing\"\nvalues = [\"hourly\", \"per-second\"]\n",
            "s.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let runs: Vec<Metrics> = (0..4)
            .map(|i| Metrics { cost_dollars: 10.0 - i as f64, wait_p95: i as f64, ..Metrics::default() })
            .collect();
        let quirks = vec![Quirks::Original, Quirks::Fixed];
        let r = SweepResults::new(sweep, vec![3, 1], runs, quirks, "b".into(), "t.csv".into(), "0".into());
        let points = String::from_utf8(r.points_csv()).unwrap();
        let lines: Vec<&str> = points.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("point,billing,quirks_mode,seed,cost_dollars,"), "{}", lines[0]);
        assert!(lines[0].ends_with(",steps_not_started,failed_deploys"), "{}", lines[0]);
        assert!(lines[1].starts_with("0,hourly,original,3,10,"), "{}", lines[1]);
        assert!(lines[4].starts_with("1,per-second,fixed,1,7,"), "{}", lines[4]);
        let summary = String::from_utf8(r.summary_csv()).unwrap();
        assert!(summary.lines().nth(1).unwrap().starts_with("0,hourly,original,2,9.5,"), "{summary}");
        // Point 0: cost 9.5, p95 0.5; point 1: cost 7.5, p95 2.5: neither dominates.
        assert_eq!(r.frontier(), [1, 0]);
        assert!(r.frontier_table().contains("billing=per-second"));
    }
}
