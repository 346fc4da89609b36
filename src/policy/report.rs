//! The sweep's HTML report: one page with what was run (base scenario,
//! traces, seeds and samples, axes and their roles, program version), what
//! to read before choosing (quirks mode, refused stops, failed deploys,
//! aborted and never-started steps), and per cloud setting its Pareto chart
//! inlined as SVG, its frontier with the spread of each point's runs and the
//! frontier points' figures per machine type and jobset; then every point.
//!
//! No JavaScript, no timestamps; links only to the files a sweep writes
//! beside it. The page is a function of the results, like the CSV files.
//! This module renders text; it writes nothing. The HTML is built with maud,
//! which escapes every value.

use super::plot::{self, Pareto};
use super::results::{PointResult, SweepResults, quirks_name};
use super::sweep::{Role, value_text};
use crate::config::Quirks;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The files a sweep writes beside the report, which it links to.
pub const SWEEP_FILES: [&str; 6] =
    ["points.csv", "summary.csv", "pareto.csv", "groups.csv", "pareto.svg", "pareto.png"];

/// The page's style: readable tables, frontier rows tinted.
pub const STYLE: &str = "body { font-family: \"DejaVu Sans\", sans-serif; margin: 2em; color: #222; max-width: 1450px; }\n\
    table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }\n\
    th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }\n\
    td { white-space: nowrap; }\n\
    th { background: #f4f4f4; }\n td.l, th.l { text-align: left; }\n\
    tr.f td { background: #fde8e8; }\n dt { font-weight: bold; }\n\
    .note { background: #fff6d6; border-left: 4px solid #e6a700; padding: 0.4em 0.8em; margin: 0.5em 0; }\n\
    svg { max-width: 100%; height: auto; }\n";

/// A whole page: the shared style, the title as heading, then `body`.
pub fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                (body)
            }
        }
    }
    .into_string()
}

/// Links to the data files beside a report, and where they are described.
pub fn file_links(files: &[&str], described_in: &str) -> Markup {
    html! {
        p {
            "Files: "
            @for (k, f) in files.iter().enumerate() { @if k > 0 { ", " } a href=(f) { (f) } }
            " (" (described_in) " describes them)."
        }
    }
}

/// `mean (min-max)`.
pub fn spread(mean: f64, min: f64, max: f64, decimals: usize) -> String {
    format!("{mean:.decimals$} ({min:.decimals$}\u{2013}{max:.decimals$})")
}

fn provenance(r: &SweepResults) -> Markup {
    let samples = r.samples();
    let sample_axes: Vec<String> = r
        .sweep
        .axes
        .iter()
        .filter(|a| a.role == Role::Sample)
        .map(|a| format!("{} ({})", a.path, a.values.len()))
        .collect();
    html! {
        dl {
            dt { "base scenario" } dd { (r.scenario_name) " (" (r.sweep.scenario_text) ")" }
            dt { "trace" } dd { (r.trace) }
            dt { "seeds" } dd { (r.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
            dt { "samples per point" } dd {
                (samples) " run(s): " (r.seeds.len()) " seed(s)"
                @if !sample_axes.is_empty() { " x " (sample_axes.join(" x ")) }
                ". Means are over these runs; ranges go from the smallest to the largest."
            }
            dt { "grid" } dd {
                (r.points.len()) " point(s) in " (r.settings.len()) " cloud setting(s), "
                (r.points.len() * samples) " runs"
            }
            dt { "program" } dd { "hydra-provisioner " (r.program_version) }
            @for a in &r.sweep.axes {
                dt { "axis " code { (a.path) } " (" (a.role.name()) ")" }
                dd { (a.values.iter().map(value_text).collect::<Vec<_>>().join(", ")) }
            }
        }
    }
}

/// What to know before trusting a point's figures.
fn notes(r: &SweepResults) -> Markup {
    let original: Vec<&PointResult> = r.points.iter().filter(|p| p.quirks == Quirks::Original).collect();
    let refused: Vec<&PointResult> = r.points.iter().filter(|p| p.mean.stops_refused > 0.0).collect();
    let failed: Vec<&PointResult> = r.points.iter().filter(|p| p.mean.failed_deploys > 0.0).collect();
    // Steps that no point starts (a failed dependency, no machine type, the horizon) are no policy's fault.
    let fewest_unstarted = r.points.iter().map(|p| p.mean.steps_not_started).fold(f64::INFINITY, f64::min);
    let unstarted: Vec<&PointResult> =
        r.points.iter().filter(|p| p.mean.steps_not_started > fewest_unstarted).collect();
    let aborted: Vec<&PointResult> = r.points.iter().filter(|p| p.mean.aborted_steps > 0.0).collect();
    let names = |ps: &[&PointResult]| -> String {
        let shown: Vec<String> = ps.iter().take(12).map(|p| format!("#{}", p.index)).collect();
        if ps.len() > 12 { format!("{} and {} more", shown.join(" "), ps.len() - 12) } else { shown.join(" ") }
    };
    let most =
        |ps: &[&PointResult], f: fn(&PointResult) -> f64| format!("{:.1}", ps.iter().map(|p| f(p)).fold(0.0, f64::max));
    html! {
        h2 { "Read this first" }
        @if !original.is_empty() {
            p.note {
                (original.len()) " of " (r.points.len()) " points run the engine with " code { "quirks = \"original\"" }
                " (the original provisioner's rules, defects included: " (names(&original)) ")."
                @if !refused.is_empty() {
                    " At " (names(&refused)) " its stops were refused (up to " (most(&refused, |p| p.mean.stops_refused))
                    " per run): the original's " code { "nixops stop" } " waited for a confirmation nobody gave, so "
                    code { "stopOnIdle" } " machines kept running and billing. Their cost is what the original really paid, "
                    "not what " code { "stopOnIdle" } " costs with " code { "quirks = \"fixed\"" } "."
                }
            }
        }
        @if !failed.is_empty() {
            p.note {
                "Deploys failed at " (names(&failed)) " (up to " (most(&failed, |p| p.mean.failed_deploys))
                " per run, mean over runs): a machine whose deploy failed is paid for but left out of the machines file."
            }
        }
        @if fewest_unstarted > 0.0 && fewest_unstarted.is_finite() {
            p {
                "Every point leaves at least " (format!("{fewest_unstarted:.1}")) " steps per run never started: steps no policy "
                "can start (a dependency failed, no machine type serves them, or the horizon came first)."
            }
        }
        @if !unstarted.is_empty() {
            p.note {
                "More steps never started at " (names(&unstarted)) " (up to " (most(&unstarted, |p| p.mean.steps_not_started))
                " per run): they are not in the wait figures, so a point that starves a machine type looks faster than it is. "
                "points.csv has them per run."
            }
        }
        @if !aborted.is_empty() {
            p.note {
                "Steps were aborted (their machine stopped, was destroyed or interrupted) at " (names(&aborted))
                " (up to " (most(&aborted, |p| p.mean.aborted_steps)) " per run); Hydra retried them."
            }
        }
        @if r.samples() < 5 {
            p.note {
                "Each point has only " (r.samples()) " run(s). A point that beats another by less than their ranges overlap "
                "has not beaten it: add seeds, or windows of the trace as a sample axis."
            }
        }
        @if original.is_empty() && failed.is_empty() && unstarted.is_empty() && aborted.is_empty() && r.samples() >= 5 {
            p {
                "Every point ran the fixed rules, every deploy succeeded, nothing was aborted, and no point left more "
                "steps never started than another."
            }
        }
    }
}

fn point_table(r: &SweepResults, rows: &[&PointResult], frontiers: &[Vec<usize>]) -> Markup {
    let names = r.sweep.axis_names();
    let axis_indices: Vec<usize> = (0..r.sweep.axes.len()).filter(|&i| r.sweep.axes[i].role != Role::Sample).collect();
    html! {
        table {
            tr {
                th { "point" }
                @for &i in &axis_indices { th.l title=(r.sweep.axes[i].path) { (names[i]) } }
                th { "quirks mode" } th { "cost $ (range)" } th { "p95 wait s (range)" } th { "mean wait s (range)" }
                th { "max wait s" } th { "idle h" } th { "util. %" } th { "creates" } th { "aborted steps" }
                th { "never started" } th { "failed deploys" } th { "stops refused" }
            }
            @for p in rows {
                @let on = r.on_frontier(frontiers, p.index);
                tr class=[on.then_some("f")] {
                    td { (p.index) @if on { " *" } }
                    @for &i in &axis_indices { td.l { (value_text(&r.sweep.axes[i].values[p.values[i]])) } }
                    td { (quirks_name(p.quirks)) }
                    td { (spread(p.mean.cost_dollars, p.min.cost_dollars, p.max.cost_dollars, 2)) }
                    td { (spread(p.mean.wait_p95, p.min.wait_p95, p.max.wait_p95, 0)) }
                    td { (spread(p.mean.wait_mean, p.min.wait_mean, p.max.wait_mean, 0)) }
                    td { (format!("{:.0}", p.mean.wait_max)) }
                    td { (format!("{:.2}", p.mean.idle_machine_hours)) }
                    td { (format!("{:.1}", p.mean.utilisation * 100.0)) }
                    td { (p.mean.creates) } td { (p.mean.aborted_steps) }
                    td { (p.mean.steps_not_started) } td { (p.mean.failed_deploys) } td { (p.mean.stops_refused) }
                }
            }
        }
    }
}

/// A frontier point's figures per machine type and per jobset.
fn breakdown(p: &PointResult) -> Markup {
    let (types, jobsets) = p.groups();
    html! {
        h4 { "#" (p.index) " " (p.label) }
        table {
            tr {
                th.l { "machine type" } th { "steps" } th { "p95 wait s (range)" } th { "mean wait s" } th { "max wait s" }
                th { "cost $" } th { "busy $" } th { "idle but paid $" } th { "storage $" }
            }
            @for (t, g) in &types {
                tr {
                    td.l { (t) } td { (format!("{:.0}", g.steps)) }
                    td { (spread(g.wait[3], g.wait_p95_min, g.wait_p95_max, 0)) }
                    td { (format!("{:.0}", g.wait[0])) } td { (format!("{:.0}", g.wait[5])) }
                    @match g.cost {
                        Some(c) => { @for v in c { td { (format!("{v:.2}")) } } }
                        None => { td colspan="4" { "not provisioned" } }
                    }
                }
            }
        }
        table {
            tr { th.l { "jobset" } th { "steps" } th { "p95 wait s (range)" } th { "mean wait s" } th { "p99 wait s" } th { "max wait s" } }
            @for (j, g) in &jobsets {
                tr {
                    td.l { (j) } td { (format!("{:.0}", g.steps)) }
                    td { (spread(g.wait[3], g.wait_p95_min, g.wait_p95_max, 0)) }
                    td { (format!("{:.0}", g.wait[0])) } td { (format!("{:.0}", g.wait[4])) } td { (format!("{:.0}", g.wait[5])) }
                }
            }
        }
    }
}

/// The report page.
pub fn html(r: &SweepResults) -> Result<String, plot::PlotError> {
    let frontiers = r.frontiers();
    let title = format!("Sweep {}", r.sweep.name);
    let several = r.sweep.has(Role::Setting);
    let mut sections = vec![];
    for (s, frontier) in frontiers.iter().enumerate() {
        let svg = plot::svg(&Pareto { results: r, setting: s })?;
        let rows: Vec<&PointResult> = frontier.iter().map(|&i| &r.points[i]).collect();
        sections.push(html! {
            @if several { h2 { "Cloud setting " (r.settings[s].label) } } @else { h2 { "Pareto frontier" } }
            p {
                "Points no other point of this setting beats on both mean cost and mean p95 wait (both minimised; "
                "points with equal figures are all kept). Bars and ranges go from the smallest to the largest of a point's "
                (r.samples()) " runs."
                @if several { " Each cloud setting has its own frontier: billing and prices are facts of the cloud, not choices." }
            }
            div.chart { (PreEscaped(svg)) }
            (point_table(r, &rows, &frontiers))
            h3 { "Frontier points by machine type and jobset" }
            p { "Means over the runs in which the type or jobset had started steps; cost split into time with a job running (busy), billed time without one (idle but paid) and disks of stopped machines (storage)." }
            @for p in &rows { (breakdown(p)) }
        });
    }
    let all: Vec<&PointResult> = r.points.iter().collect();
    let body = html! {
        (provenance(r))
        (file_links(&SWEEP_FILES, "docs/sweep-format.md"))
        (notes(r))
        @for s in &sections { (s) }
        h2 { "All points" }
        p {
            "Frontier points are marked *. Per-run figures (billed hours, p99, waits for a boot, destroys, ...) "
            "are in points.csv, means per point in summary.csv, per type and jobset in groups.csv."
        }
        (point_table(r, &all, &frontiers))
    };
    Ok(page(&title, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_read_as_mean_and_range() {
        assert_eq!(spread(12.345, 11.0, 13.5, 2), "12.35 (11.00\u{2013}13.50)");
    }
}
