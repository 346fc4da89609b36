//! The report of one simulated run (`simulate --out DIR` writes it as
//! `report.html`): what produced the run (scenario, trace, configuration,
//! seed, window, program version, quirks mode), its main figures, a timeline
//! per machine type (runnable steps, machines by state, slots and busy slots
//! against time), the distribution of waits per machine type and per jobset
//! (cumulative, on a log scale), and the bill per machine type split into
//! busy, idle-but-paid and storage.
//!
//! The data come from the summary and from [`RunData`], which the CLI's
//! observer fills from the per-step and per-pass outputs as the run goes
//! (bounded: waits are kept in histograms). This module draws and renders;
//! it runs nothing and writes no file. Same data, same bytes.

use super::plot::{self, Chart, GREY, LegendEntry, Mark, PALETTE, PANEL_WIDTH, WIDTH, err, legend};
use super::report::{file_links, page};
use crate::metrics::{Summary, WaitHistogram, WaitStats, quirks_text};
use crate::sim::SERIES_FIGURES;
use maud::{Markup, PreEscaped, html};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// The files `simulate --out` writes beside the report, which it links to.
pub const RUN_FILES: [&str; 4] = ["summary.json", "steps.csv", "series.csv", "machines.csv"];

/// One pass's figures of one type, in [`SERIES_FIGURES`] order.
pub type SeriesRow = [u64; SERIES_FIGURES.len()];

/// A layer of the stacked machines panel: its value, name and colour.
type Layer<'a> = (fn(&SeriesRow) -> u64, &'a str, RGBColor);

/// Points of each cumulative wait curve.
const CDF_POINTS: usize = 400;

/// What the report needs beyond the summary, collected during the run.
#[derive(Debug, Default, Clone)]
pub struct RunData {
    /// Per type, in time order: (ms, figures in [`SERIES_FIGURES`] order).
    pub series: BTreeMap<String, Vec<(i64, SeriesRow)>>,
    pub waits_by_type: BTreeMap<String, WaitHistogram>,
    pub waits_by_jobset: BTreeMap<String, WaitHistogram>,
    /// The server's figures at every pass, in `SERVER_FIGURES` order (empty without a `[server]`).
    pub server: Vec<(i64, [u64; crate::sim::SERVER_FIGURES.len()])>,
}

impl RunData {
    /// Adds one sample of `series.csv`.
    pub fn sample(&mut self, at_ms: i64, figure: &str, machine_type: &str, value: u64) {
        let Some(k) = SERIES_FIGURES.iter().position(|f| *f == figure) else { return };
        let rows = self.series.entry(machine_type.to_string()).or_default();
        if rows.last().is_none_or(|(t, _)| *t != at_ms) {
            rows.push((at_ms, SeriesRow::default()));
        }
        if let Some((_, row)) = rows.last_mut() {
            row[k] = value;
        }
    }

    /// Adds one sample of `server.csv`.
    pub fn server_sample(&mut self, at_ms: i64, figures: [u64; crate::sim::SERVER_FIGURES.len()]) {
        self.server.push((at_ms, figures));
    }

    /// Adds one started step's wait.
    pub fn wait(&mut self, machine_type: &str, jobset: &str, wait_ms: i64) {
        // Looked up before inserting: a String per started step would be most of this call's cost.
        for (map, key) in [(&mut self.waits_by_type, machine_type), (&mut self.waits_by_jobset, jobset)] {
            match map.get_mut(key) {
                Some(h) => h.record(wait_ms),
                None => map.entry(key.to_string()).or_default().record(wait_ms),
            }
        }
    }
}

const RUNNABLE: usize = 0;
const RUNNING: usize = 1;
const STARTING: usize = 2;
const UP: usize = 3;
const STOPPED: usize = 4;
const MISSING: usize = 5;
const LISTED: usize = 6;
const SLOTS: usize = 7;
const BUSY: usize = 8;

/// A step function through the samples: each value holds until the next sample.
fn steps(rows: &[(i64, SeriesRow)], k: usize, end_h: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(rows.len() * 2);
    for (i, (t, row)) in rows.iter().enumerate() {
        let x = *t as f64 / 3_600_000.0;
        let next = rows.get(i + 1).map_or(end_h, |(t, _)| *t as f64 / 3_600_000.0);
        out.push((x, row[k] as f64));
        out.push((next, row[k] as f64));
    }
    out
}

/// One machine type's timeline: the queue and slots above, machines below.
pub struct Timeline<'a> {
    machine_type: &'a str,
    /// At most [`TIMELINE_POINTS`] rows.
    rows: Vec<(i64, SeriesRow)>,
    /// Hours covered by the run.
    end_h: f64,
    /// Passes per row (1 unless the run had more than [`TIMELINE_POINTS`]).
    passes_per_row: usize,
}

/// Rows a timeline draws at most: more would not show at 1400 pixels, and
/// would make a long run's page heavy.
pub const TIMELINE_POINTS: usize = 1500;

impl<'a> Timeline<'a> {
    /// A type's timeline from its samples; a long run's consecutive passes
    /// are merged, each figure the largest of them, so that peaks still show.
    pub fn new(machine_type: &'a str, samples: &[(i64, SeriesRow)], end_h: f64) -> Timeline<'a> {
        let passes_per_row = samples.len().div_ceil(TIMELINE_POINTS).max(1);
        let rows = samples
            .chunks(passes_per_row)
            .map(|chunk| {
                let mut row = SeriesRow::default();
                for (_, r) in chunk {
                    row.iter_mut().zip(r).for_each(|(a, &b)| *a = (*a).max(b));
                }
                (chunk[0].0, row)
            })
            .collect();
        Timeline { machine_type, rows, end_h, passes_per_row }
    }

    /// The time axis's name.
    fn x_desc(&self, extra: &str) -> String {
        let merged = match self.passes_per_row {
            1 => String::new(),
            n => format!("; each point the largest of {n} passes"),
        };
        format!("time since the start of the run (h){merged}{extra}")
    }
}

/// Labels for counts: whole numbers only, so a small range shows no repeats.
fn count_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { String::new() }
}

impl Timeline<'_> {
    fn x_range(&self) -> std::ops::Range<f64> {
        0f64..self.end_h.max(0.01)
    }

    /// The queue (runnable steps, left axis) against what serves it
    /// (slots, busy slots and running steps, right axis): the queue can be a
    /// hundred times the fleet, and both must stay readable.
    fn queue_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, x_desc: &str) -> Result<(), String> {
        let (plot, side) = area.split_horizontally(WIDTH - PANEL_WIDTH);
        let top = |values: &[usize]| {
            let max = self.rows.iter().flat_map(|(_, r)| values.iter().map(|&k| r[k])).max().unwrap_or(0) as f64;
            (max * 1.1).max(max + 1.0)
        };
        let mut chart = ChartBuilder::on(&plot)
            .caption(format!("{}: queue and slots", self.machine_type), (plot::FAMILY, 18))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .right_y_label_area_size(70)
            .build_cartesian_2d(self.x_range(), 0f64..top(&[RUNNABLE]))
            .map_err(err)?
            .set_secondary_coord(self.x_range(), 0f64..top(&[SLOTS, BUSY, RUNNING]));
        plot::styled(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .y_desc("runnable steps (left)")
            .y_label_formatter(&count_label)
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .y_desc("running steps or slots (right)")
            .label_style((plot::FAMILY, 14))
            .axis_desc_style((plot::FAMILY, 15))
            .y_label_formatter(&count_label)
            .draw()
            .map_err(err)?;
        let right = [
            (SLOTS, "slots of listed machines (right)", GREY, 2),
            (BUSY, "busy slots (right)", PALETTE[1], 4),
            (RUNNING, "running steps, any machine (right)", PALETTE[2], 2),
        ];
        for &(k, _, colour, width) in &right {
            let points = steps(&self.rows, k, self.end_h);
            chart.draw_secondary_series(LineSeries::new(points, colour.stroke_width(width))).map_err(err)?;
        }
        let runnable = steps(&self.rows, RUNNABLE, self.end_h);
        chart.draw_series(LineSeries::new(runnable, PALETTE[0].stroke_width(2))).map_err(err)?;
        let mut entries = vec![LegendEntry::new("runnable steps (left)", PALETTE[0], Mark::Line)];
        entries.extend(right.iter().map(|&(_, l, c, _)| LegendEntry::new(l, c, Mark::Line)));
        legend(&side, "", &entries, 40)?;
        Ok(())
    }

    /// Provisioned machines by state, stacked (bottom layer first).
    fn machines_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let layers: [Layer<'_>; 5] = [
            (|r| r[LISTED], "up and listed in the machines file", PALETTE[2]),
            (|r| r[UP].saturating_sub(r[LISTED]), "up, not listed", PALETTE[0]),
            (|r| r[STARTING], "starting", PALETTE[4]),
            (|r| r[STOPPED], "stopped", PALETTE[3]),
            (|r| r[MISSING], "missing (interrupted)", PALETTE[5]),
        ];
        let (plot, side) = area.split_horizontally(WIDTH - PANEL_WIDTH);
        let total = |r: &SeriesRow| -> u64 { layers.iter().map(|l| (l.0)(r)).sum() };
        let ymax = self.rows.iter().map(|(_, r)| total(r)).max().unwrap_or(0) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .caption(format!("{}: provisioned machines by state (stacked)", self.machine_type), (plot::FAMILY, 18))
            .margin(10)
            // As wide as the queue panel's right axis, so that the two time axes line up.
            .margin_right(80)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(self.x_range(), 0f64..(ymax * 1.1).max(ymax + 1.0))
            .map_err(err)?;
        plot::styled(&mut chart.configure_mesh())
            .x_desc(self.x_desc(""))
            .y_desc("machines")
            .y_label_formatter(&count_label)
            .draw()
            .map_err(err)?;
        let mut below = vec![0u64; self.rows.len()];
        for (value, _, colour) in layers {
            let mut upper = vec![];
            let mut lower = vec![];
            for (i, (t, row)) in self.rows.iter().enumerate() {
                let x0 = *t as f64 / 3_600_000.0;
                let x1 = self.rows.get(i + 1).map_or(self.end_h, |(t, _)| *t as f64 / 3_600_000.0);
                let (b, v) = (below[i] as f64, value(row) as f64);
                upper.extend([(x0, b + v), (x1, b + v)]);
                lower.extend([(x0, b), (x1, b)]);
                below[i] += value(row);
            }
            lower.reverse();
            upper.extend(lower);
            chart.draw_series([Polygon::new(upper, colour.mix(0.85).filled())]).map_err(err)?;
        }
        // Read top to bottom, as the layers lie.
        let entries: Vec<LegendEntry> =
            layers.iter().rev().map(|&(_, l, c)| LegendEntry::new(l, c, Mark::Bar)).collect();
        legend(&side, "", &entries, 40)?;
        Ok(())
    }
}

impl Timeline<'_> {
    /// Whether the type ever had a provisioned machine (else only its queue is drawn).
    fn has_machines(&self) -> bool {
        self.rows.iter().any(|(_, r)| r[STARTING..=MISSING].iter().any(|&v| v > 0))
    }
}

impl Chart for Timeline<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, if self.has_machines() { 600 } else { 300 })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        if !self.has_machines() {
            return self.queue_panel(root, &self.x_desc("; no provisioned machines of this type"));
        }
        let (top, bottom) = root.split_vertically(300);
        self.queue_panel(&top, "")?;
        self.machines_panel(&bottom)
    }
}

/// Cumulative distributions of waits, one curve per group.
pub struct Cdf<'a> {
    pub title: &'a str,
    /// Group name, its waits and their statistics.
    pub groups: Vec<(&'a str, &'a WaitHistogram, Option<&'a WaitStats>)>,
}

impl Chart for Cdf<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, side) = root.split_horizontally(WIDTH - PANEL_WIDTH);
        let curves: Vec<Vec<(f64, f64)>> = self
            .groups
            .iter()
            .map(|(_, h, _)| {
                h.cdf(CDF_POINTS).into_iter().map(|(ms, f)| ((ms as f64 / 1000.0).max(1.0), f * 100.0)).collect()
            })
            .collect();
        let xmax = curves.iter().flatten().map(|p| p.0).fold(10.0, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title, (plot::FAMILY, 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((1f64..xmax).log_scale(), 0f64..100.5)
            .map_err(err)?;
        plot::styled(&mut chart.configure_mesh())
            .x_desc("wait from runnable to start (s, log scale; waits under 1 s at 1 s)")
            .y_desc("started steps waiting at most this long (%)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let mut entries = vec![];
        for (k, ((name, h, stats), curve)) in self.groups.iter().zip(&curves).enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            chart.draw_series(LineSeries::new(curve.iter().copied(), colour.stroke_width(2))).map_err(err)?;
            let p95 = stats.map_or(String::new(), |s| format!(", p95 {:.0} s", s.p95));
            entries.push(LegendEntry::new(format!("{name} ({}{p95})", h.count()), colour, Mark::Line));
        }
        legend(&side, "steps (count, p95)", &entries, 24)?;
        Ok(())
    }
}

/// The server's local work over time: threads busy, work waiting for a
/// thread, and steps built whose outputs are not uploaded yet.
pub struct ServerTimeline<'a> {
    pub samples: &'a [(i64, [u64; crate::sim::SERVER_FIGURES.len()])],
    pub workers: u32,
    pub end_h: f64,
}

impl Chart for ServerTimeline<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, 420)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, side) = root.split_horizontally(WIDTH - PANEL_WIDTH);
        let step = self.samples.len().div_ceil(TIMELINE_POINTS).max(1);
        let rows: Vec<(i64, [u64; 3])> = self
            .samples
            .chunks(step)
            .map(|chunk| {
                let mut row = [0u64; 3];
                for (_, r) in chunk {
                    row.iter_mut().zip(r).for_each(|(a, &b)| *a = (*a).max(b));
                }
                (chunk[0].0, row)
            })
            .collect();
        let max = rows.iter().flat_map(|(_, r)| r.iter().copied()).chain([u64::from(self.workers)]).max().unwrap_or(0);
        let top = (max as f64 * 1.1).max(max as f64 + 1.0);
        let mut chart = ChartBuilder::on(&plot)
            .caption("server: local workers and upload backlog", (plot::FAMILY, 18))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..self.end_h.max(0.01), 0f64..top)
            .map_err(err)?;
        plot::styled(&mut chart.configure_mesh())
            .x_desc("time since the start of the run (h)")
            .y_desc("threads or steps")
            .y_label_formatter(&count_label)
            .draw()
            .map_err(err)?;
        let workers = vec![(0.0, f64::from(self.workers)), (self.end_h, f64::from(self.workers))];
        chart.draw_series(LineSeries::new(workers, GREY.stroke_width(2))).map_err(err)?;
        let names = ["threads busy", "work waiting for a thread", "steps built, not uploaded"];
        let mut entries = vec![LegendEntry::new("local worker threads", GREY, Mark::Line)];
        for (k, name) in names.iter().enumerate() {
            let mut points = Vec::with_capacity(rows.len() * 2);
            for (i, (t, row)) in rows.iter().enumerate() {
                let next = rows.get(i + 1).map_or(self.end_h, |(t, _)| *t as f64 / 3_600_000.0);
                points.push((*t as f64 / 3_600_000.0, row[k] as f64));
                points.push((next, row[k] as f64));
            }
            let colour = PALETTE[k % PALETTE.len()];
            chart.draw_series(LineSeries::new(points, colour.stroke_width(2))).map_err(err)?;
            entries.push(LegendEntry::new(*name, colour, Mark::Line));
        }
        legend(&side, "", &entries, 40)?;
        Ok(())
    }
}

/// The bill per provisioned type, split by what it bought.
pub struct CostSplit<'a> {
    pub summary: &'a Summary,
}

impl Chart for CostSplit<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, 150 + 60 * self.summary.cost.per_machine_type.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, side) = root.split_horizontally(WIDTH - PANEL_WIDTH);
        let types: Vec<(&String, [f64; 3])> = self
            .summary
            .cost
            .per_machine_type
            .iter()
            .map(|(t, c)| (t, [c.busy_dollars, c.idle_dollars, c.storage_dollars]))
            .collect();
        let xmax = types.iter().map(|(_, v)| v.iter().sum::<f64>()).fold(0.0, f64::max).max(0.01) * 1.15;
        let n = types.len().max(1);
        // The first type on top: type i sits at n - 1 - i.
        let row = |i: usize| (n - 1 - i) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .caption("Cost per machine type", (plot::FAMILY, 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(240)
            .build_cartesian_2d(0f64..xmax, -0.6f64..n as f64 - 0.4)
            .map_err(err)?;
        let names: Vec<String> = types.iter().map(|(t, _)| t.to_string()).collect();
        let label = move |v: &f64| {
            let i = n as f64 - 1.0 - v.round();
            if (v - v.round()).abs() < 1e-9 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        plot::styled(&mut chart.configure_mesh())
            .x_desc("dollars for the run")
            // Ticks at least every half row, so every row's whole number gets a name.
            .y_labels(2 * n + 2)
            .y_label_formatter(&label)
            .disable_y_mesh()
            .draw()
            .map_err(err)?;
        let colours = [PALETTE[0], PALETTE[1], PALETTE[6]];
        for (i, (_, parts)) in types.iter().enumerate() {
            let y = row(i);
            let mut x = 0.0;
            for (part, colour) in parts.iter().zip(colours) {
                if *part > 0.0 {
                    let bar = Rectangle::new([(x, y - 0.3), (x + part, y + 0.3)], colour.filled());
                    chart.draw_series([bar]).map_err(err)?;
                }
                x += part;
            }
            let total =
                EmptyElement::at((x, y)) + Text::new(format!("${x:.2}"), (6, -8), (plot::FAMILY, 14).into_font());
            chart.draw_series([total]).map_err(err)?;
        }
        let entries = [
            LegendEntry::new("busy: a job running", colours[0], Mark::Bar),
            LegendEntry::new("idle but paid", colours[1], Mark::Bar),
            LegendEntry::new("storage of stopped machines", colours[2], Mark::Bar),
        ];
        legend(&side, "", &entries, 40)?;
        Ok(())
    }
}

fn wait_table(first: &str, rows: &BTreeMap<String, WaitStats>) -> Markup {
    html! {
        table {
            tr { th.l { (first) } th { "steps" } th { "mean s" } th { "p50 s" } th { "p90 s" } th { "p95 s" } th { "p99 s" } th { "max s" } }
            @for (k, w) in rows {
                tr {
                    td.l { (k) } td { (w.count) }
                    @for v in [w.mean, w.p50, w.p90, w.p95, w.p99, w.max] { td { (format!("{v:.1}")) } }
                }
            }
        }
    }
}

/// The report page. `scenario_file` is the scenario as given on the
/// command line.
pub fn html(summary: &Summary, data: &RunData, scenario_file: &str) -> Result<String, plot::PlotError> {
    let end_h = summary.simulated_seconds / 3600.0;
    let mut timelines = vec![];
    for (t, rows) in &data.series {
        let active = rows.iter().any(|(_, r)| r.iter().any(|&v| v > 0));
        if active {
            timelines.push((t, plot::svg(&Timeline::new(t, rows, end_h))?));
        }
    }
    let by_type = Cdf {
        title: "Waits per machine type",
        groups: data
            .waits_by_type
            .iter()
            .map(|(k, h)| (k.as_str(), h, summary.latency.per_machine_type.get(k)))
            .collect(),
    };
    let by_jobset = Cdf {
        title: "Waits per jobset",
        groups: data.waits_by_jobset.iter().map(|(k, h)| (k.as_str(), h, summary.latency.per_jobset.get(k))).collect(),
    };
    let cdf_type = plot::svg(&by_type)?;
    let cdf_jobset = plot::svg(&by_jobset)?;
    let cost = plot::svg(&CostSplit { summary })?;
    let server = match &summary.server {
        Some(f) => Some((f, plot::svg(&ServerTimeline { samples: &data.server, workers: f.local_workers, end_h })?)),
        None => None,
    };
    let c = &summary.cost;
    let s = &summary.steps;
    let st = &summary.stability;
    let title = format!("Simulation {} (seed {})", summary.scenario, summary.seed);
    let body = html! {
        h2 { "Provenance" }
        dl {
            dt { "scenario" } dd { (summary.scenario) " (" (scenario_file) ")" }
            dt { "trace" } dd {
                (summary.trace)
                @if let Some(w) = &summary.inputs.window { ", window " (w) " (times below count from its start)" }
                " (rows digest " code { (summary.inputs.trace_digest) } ")"
            }
            dt { "configuration" } dd { (summary.config) }
            dt { "quirks mode" } dd { (quirks_text(summary.quirks)) }
            dt { "seed" } dd { (summary.seed) }
            dt { "world" } dd { "cloud, static machines and the rest of the scenario: digest " code { (summary.inputs.world_digest) } }
            dt { "program" } dd { "hydra-provisioner " (summary.program_version) }
        }
        (file_links(&RUN_FILES, "docs/scenario-format.md"))
        h2 { "Figures" }
        table {
            tr { th.l { "cost" } td.l { (format!("${:.2} (storage ${:.2})", c.dollars, c.storage_dollars)) } }
            tr { th.l { "machine-hours" } td.l { (format!("billed {:.2}, busy {:.2}, idle {:.2}; utilisation {:.1}%", c.billed_machine_hours, c.busy_machine_hours, c.idle_machine_hours, c.utilisation * 100.0)) } }
            tr { th.l { "simulated" } td.l { (format!("{:.1} h, {} provisioner passes", end_h, summary.passes)) } }
            tr { th.l { "steps" } td.l { (format!("{} total, {} started, {} succeeded, {} failed, {} gave up, {} running at end", s.total, s.started, s.succeeded, s.failed, s.gave_up, s.running_at_end)) } }
            @for (reason, n) in &s.never_started { tr { th.l { "never started" } td.l { (n) " (" (reason) ")" } } }
            tr { th.l { "wait" } td.l { (format!("mean {:.1} s, p50 {:.1} s, p95 {:.1} s, p99 {:.1} s, max {:.1} s; {:.1}% waited for a boot", summary.latency.overall.mean, summary.latency.overall.p50, summary.latency.overall.p95, summary.latency.overall.p99, summary.latency.overall.max, summary.latency.waited_for_boot_fraction * 100.0)) } }
            tr { th.l { "machines" } td.l { (format!("{} creates, {} starts, {} stops, {} destroys, {} spot interruptions; {} deploys, {} failed; {} stops refused", st.creates, st.starts, st.stops, st.destroys, st.spot_interruptions, st.deploys, st.failed_deploys, st.stops_refused)) } }
            tr { th.l { "aborted steps" } td.l { (format!("{} aborted, {} retries", st.aborted_steps, st.retries)) } }
        }
        h2 { "Timeline per machine type" }
        p {
            "Sampled at every provisioner pass; each value holds until the next pass. Runnable steps include those in retry back-off, "
            "as Hydra counts them. Slots are those of listed provisioned machines (machines times maxJobs); "
            "running steps count every machine, static ones included. The data are in series.csv."
        }
        @for (t, svg) in &timelines {
            h3 { (t) }
            div.chart { (PreEscaped(svg)) }
        }
        @if let Some((f, svg)) = &server {
            h2 { "Server" }
            p {
                "The server's local worker threads receive, compress and upload each successful build's outputs; closures are "
                "copied to builders outside the pool (docs/scenario-format.md, [server]). Sampled at every provisioner pass; "
                "the data are in server.csv."
            }
            table {
                tr { th.l { "local workers" } td.l { (f.local_workers) } }
                tr { th.l { "utilisation" } td.l { (format!("{:.1}%", f.utilisation * 100.0)) } }
                tr { th.l { "wait for a thread" } td.l { (format!("mean {:.1} s, p95 {:.1} s, max {:.1} s", f.worker_wait.mean, f.worker_wait.p95, f.worker_wait.max)) } }
                tr { th.l { "upload backlog" } td.l { (format!("max {}, mean {:.1} steps", f.upload_backlog_max, f.upload_backlog_mean)) } }
                tr { th.l { "uploads" } td.l { (format!("{}, {:.3} GB compressed", f.uploads, f.uploaded_gb)) } }
            }
            div.chart { (PreEscaped(svg)) }
        }
        @if !summary.evaluations.is_empty() {
            h2 { "Evaluations" }
            p { "Per jobset, the time from an evaluation's first step queued to its last build done (seconds)." }
            table {
                tr { th.l { "jobset" } th { "completed" } th { "unfinished" } th { "mean" } th { "p50" } th { "p95" } th { "max" } }
                @for (j, e) in &summary.evaluations {
                    tr {
                        td.l { (j) } td { (e.completed) } td { (e.unfinished) }
                        @for v in [e.completion.mean, e.completion.p50, e.completion.p95, e.completion.max] { td { (format!("{v:.0}")) } }
                    }
                }
            }
        }
        h2 { "Waits" }
        p { "For each group, the share of its started steps whose wait (runnable to first start) was at most the value on the horizontal axis. Steps that never started are not in it." }
        div.chart { (PreEscaped(cdf_type)) }
        (wait_table("machine type", &summary.latency.per_machine_type))
        div.chart { (PreEscaped(cdf_jobset)) }
        (wait_table("jobset", &summary.latency.per_jobset))
        h2 { "Cost per machine type" }
        p { "Billed time with at least one job running (busy), billed without one (idle but paid, billing rounding included), and the disks of stopped instances (storage)." }
        div.chart { (PreEscaped(cost)) }
        table {
            tr { th.l { "machine type" } th { "instances" } th { "cost $" } th { "busy $" } th { "idle but paid $" } th { "storage $" } th { "billed h" } th { "busy h" } th { "idle h" } }
            @for (t, tc) in &c.per_machine_type {
                tr {
                    td.l { (t) } td { (tc.instances) }
                    @for v in [tc.dollars, tc.busy_dollars, tc.idle_dollars, tc.storage_dollars] { td { (format!("{v:.2}")) } }
                    @for v in [tc.billed_machine_hours, tc.busy_machine_hours, tc.idle_machine_hours] { td { (format!("{v:.2}")) } }
                }
            }
        }
    };
    Ok(page(&title, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(runnable: u64) -> SeriesRow {
        let mut r = SeriesRow::default();
        r[RUNNABLE] = runnable;
        r
    }

    #[test]
    fn samples_gather_into_one_row_per_pass_and_type() {
        let mut d = RunData::default();
        d.sample(0, "runnable", "x86_64-linux", 5);
        d.sample(0, "busy_slots", "x86_64-linux", 2);
        d.sample(0, "no such figure", "x86_64-linux", 9);
        d.sample(300_000, "runnable", "x86_64-linux", 7);
        let rows = &d.series["x86_64-linux"];
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].1[RUNNABLE], rows[0].1[BUSY], rows[1].1[RUNNABLE]), (5, 2, 7));
    }

    #[test]
    fn long_runs_merge_passes_and_keep_their_peaks() {
        let samples: Vec<(i64, SeriesRow)> =
            (0..3001).map(|i| (i64::from(i) * 300_000, row(if i == 1234 { 99 } else { 1 }))).collect();
        let t = Timeline::new("x86_64-linux", &samples, 250.0);
        assert_eq!((t.passes_per_row, t.rows.len()), (3, 1001));
        assert!(t.rows.iter().any(|(_, r)| r[RUNNABLE] == 99), "the peak survives");
        assert!(t.x_desc("").contains("largest of 3 passes"));
        let short = Timeline::new("x86_64-linux", &samples[..10], 1.0);
        assert_eq!((short.passes_per_row, short.rows.len()), (1, 10));
        assert!(!short.has_machines());
        let svg = plot::svg(&short).unwrap();
        assert!(svg.contains("runnable steps (left)") && svg.contains("no provisioned machines"), "{svg}");
        assert_eq!(svg, plot::svg(&Timeline::new("x86_64-linux", &samples[..10], 1.0)).unwrap());
    }
}
