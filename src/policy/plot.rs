//! Charts, as SVG text and PNG bytes: the kit every report's charts share
//! ([`Chart`], the embedded font, the palette, a legend beside the plot and
//! never over it), and the sweep's Pareto chart: one panel per cloud
//! setting, every candidate at its mean cost and mean p95 wait with bars
//! from the smallest to the largest of its runs, the frontier highlighted
//! and connected, and each frontier point numbered and named beside the plot.
//!
//! Text is measured and drawn with DejaVu Sans embedded in the binary
//! (assets/DejaVuSans.ttf), never a system font, and the PNG is encoded here
//! with fixed settings, so the same data give byte-identical files on every
//! machine. This module draws into memory; it writes no files.

use super::results::SweepResults;
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
pub const FAMILY: &str = "sans-serif";
/// Charts are drawn for a page about this wide, so that they are read at
/// their natural size.
pub const WIDTH: u32 = 1400;
/// The side panel holding a chart's legend, right of the plot.
pub const PANEL_WIDTH: u32 = 300;
/// One panel of the Pareto chart.
const PARETO_HEIGHT: u32 = 600;

pub const GREY: RGBColor = RGBColor(120, 120, 120);
pub const LIGHT_GREY: RGBColor = RGBColor(200, 200, 200);
pub const RED: RGBColor = RGBColor(200, 30, 30);

/// Distinct colours, safe for the common colour blindnesses (Okabe and
/// Ito's palette, then a few darker ones for long legends).
pub const PALETTE: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
    RGBColor(140, 86, 75),
    RGBColor(148, 103, 189),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct PlotError(String);

pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; a failure here would
        // show as missing text, not as a crash.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Something drawable at a fixed size, on any plotters backend.
pub trait Chart {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// A drawing error as text.
pub fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// The chart as SVG text, without an XML declaration (it goes inside HTML too).
pub fn svg(chart: &impl Chart) -> Result<String, PlotError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| PlotError(err(e)))?;
        chart.draw(&root).map_err(PlotError)?;
        root.present().map_err(|e| PlotError(err(e)))?;
    }
    let trimmed = out.trim_start();
    let body =
        if trimmed.starts_with("<?xml") { trimmed.split_once("?>").map_or(trimmed, |(_, r)| r) } else { trimmed };
    Ok(body.trim().to_string() + "\n")
}

/// The chart as PNG bytes (8-bit RGB, best compression, no metadata).
pub fn png(chart: &impl Chart) -> Result<Vec<u8>, PlotError> {
    register_font();
    let (w, h) = chart.size();
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| PlotError(err(e)))?;
        chart.draw(&root).map_err(PlotError)?;
        root.present().map_err(|e| PlotError(err(e)))?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    let mut writer = encoder.write_header().map_err(|e| PlotError(e.to_string()))?;
    writer.write_image_data(&pixels).map_err(|e| PlotError(e.to_string()))?;
    writer.finish().map_err(|e| PlotError(e.to_string()))?;
    Ok(out)
}

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Line,
    Dot,
    Bar,
    /// A dot with a bar through it: a mean and its spread.
    DotWithBar,
}

/// One line of a legend.
#[derive(Debug, Clone)]
pub struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub mark: Mark,
}

impl LegendEntry {
    pub fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> LegendEntry {
        LegendEntry { label: label.into(), color, mark }
    }
}

/// Draws a titled legend from the top of `area` (a panel beside the plot,
/// so that it never covers data) and returns the height used.
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    entries: &[LegendEntry],
    top: i32,
) -> Result<i32, String> {
    let mut y = top;
    if !title.is_empty() {
        area.draw(&Text::new(title.to_string(), (8, y), (FAMILY, 16).into_font().color(&BLACK))).map_err(err)?;
        y += 26;
    }
    let max_y = area.dim_in_pixel().1 as i32 - 16;
    for (k, e) in entries.iter().enumerate() {
        if y > max_y {
            let rest = format!("... and {} more", entries.len() - k);
            area.draw(&Text::new(rest, (8, y), (FAMILY, 15).into_font().color(&BLACK))).map_err(err)?;
            y += 22;
            break;
        }
        let mid = y + 8;
        let c = e.color;
        match e.mark {
            Mark::Line => area.draw(&PathElement::new(vec![(8, mid), (34, mid)], c.stroke_width(3))).map_err(err)?,
            Mark::Dot => area.draw(&Circle::new((21, mid), 5, c.filled())).map_err(err)?,
            Mark::Bar => area.draw(&Rectangle::new([(10, mid - 6), (32, mid + 6)], c.filled())).map_err(err)?,
            Mark::DotWithBar => {
                area.draw(&PathElement::new(vec![(8, mid), (34, mid)], c.stroke_width(1))).map_err(err)?;
                area.draw(&Circle::new((21, mid), 5, c.filled())).map_err(err)?;
            }
        }
        area.draw(&Text::new(e.label.clone(), (42, y), (FAMILY, 15).into_font().color(&BLACK))).map_err(err)?;
        y += 22;
    }
    Ok(y - top)
}

/// Offsets for labels of points (in pixels, with their text) so that no
/// label covers another label or a marker: the first of a few places around
/// each point that is free, else the first place. Widths are estimated
/// from the 14-pixel font.
pub fn place_labels<'a>(
    points: impl Iterator<Item = ((i32, i32), &'a str)>,
    markers: &[(i32, i32)],
) -> Vec<(i32, i32)> {
    const PLACES: [(i32, i32); 8] = [(9, -22), (9, 8), (-9, -22), (-9, 8), (9, -38), (9, 24), (-9, -38), (-9, 24)];
    let overlaps = |a: (i32, i32, i32, i32), b: (i32, i32, i32, i32)| a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3;
    let mut taken: Vec<(i32, i32, i32, i32)> = markers.iter().map(|&(x, y)| (x - 6, y - 6, x + 6, y + 6)).collect();
    let mut out = vec![];
    for ((x, y), text) in points {
        let width = 8 * text.chars().count() as i32 + 4;
        let boxed = |(dx, dy): (i32, i32)| {
            let left = if dx < 0 { x + dx - width } else { x + dx };
            ((left - x, dy), (left, y + dy, left + width, y + dy + 16))
        };
        let (offset, b) = PLACES
            .iter()
            .map(|&p| boxed(p))
            .find(|(_, b)| taken.iter().all(|t| !overlaps(*b, *t)))
            .unwrap_or_else(|| boxed(PLACES[0]));
        taken.push(b);
        out.push(offset);
    }
    out
}

/// The mesh every chart shares: the embedded font at sizes readable at
/// 1400 pixels, light grid lines.
pub fn styled<'a, 'b, 'm, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    mesh.label_style((FAMILY, 14)).axis_desc_style((FAMILY, 15)).light_line_style(RGBColor(235, 235, 235))
}

/// The range to show for values, padded so no point sits on the frame.
pub fn range(values: impl Iterator<Item = f64> + Clone) -> std::ops::Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) * 0.1 };
    (lo - span * 0.08).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY })..hi + span * 0.08
}

/// The Pareto chart of one cloud setting.
pub struct Pareto<'a> {
    pub results: &'a SweepResults,
    pub setting: usize,
}

/// The Pareto chart of every setting, one panel below the other
/// (`pareto.svg`, `pareto.png`).
pub struct ParetoFigure<'a> {
    pub results: &'a SweepResults,
}

impl Chart for ParetoFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, PARETO_HEIGHT * self.results.settings.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let panels = root.split_evenly((self.results.settings.len().max(1), 1));
        for (setting, panel) in panels.iter().enumerate().take(self.results.settings.len()) {
            Pareto { results: self.results, setting }.draw(panel)?;
        }
        Ok(())
    }
}

impl Chart for Pareto<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, PARETO_HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let r = self.results;
        let (chart_area, panel) = root.split_horizontally(WIDTH - PANEL_WIDTH);
        let frontier = r.frontier(self.setting);
        let members: Vec<usize> = r.in_setting(self.setting).map(|p| p.index).collect();
        let mean = |i: usize| (r.points[i].mean.cost_dollars, r.points[i].mean.wait_p95);
        let xs = members.iter().flat_map(|&i| [r.points[i].min.cost_dollars, r.points[i].max.cost_dollars]);
        let ys = members.iter().flat_map(|&i| [r.points[i].min.wait_p95, r.points[i].max.wait_p95]);
        let title = if r.settings.len() > 1 || r.sweep.has(super::sweep::Role::Setting) {
            format!("{}: {}", r.sweep.name, r.settings[self.setting].label)
        } else {
            format!("{}: cost and p95 wait", r.sweep.name)
        };
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(title, (FAMILY, 20))
            .margin(14)
            .x_label_area_size(52)
            .y_label_area_size(78)
            .build_cartesian_2d(range(xs), range(ys))
            .map_err(err)?;
        let n = r.samples();
        styled(&mut chart.configure_mesh())
            .x_desc(format!("cost per run ($), mean of {n} run(s); bars: smallest to largest"))
            .y_desc("p95 wait (s), mean; bars: smallest to largest")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        for &i in &members {
            let p = &r.points[i];
            let on = frontier.contains(&i);
            let colour = if on { RED.mix(0.7) } else { LIGHT_GREY.mix(1.0) };
            let (x, y) = mean(i);
            chart
                .draw_series([
                    PathElement::new(vec![(p.min.cost_dollars, y), (p.max.cost_dollars, y)], colour.stroke_width(1)),
                    PathElement::new(vec![(x, p.min.wait_p95), (x, p.max.wait_p95)], colour.stroke_width(1)),
                ])
                .map_err(err)?;
        }
        chart
            .draw_series(
                members.iter().filter(|i| !frontier.contains(i)).map(|&i| Circle::new(mean(i), 4, GREY.filled())),
            )
            .map_err(err)?;
        chart.draw_series(LineSeries::new(frontier.iter().map(|&i| mean(i)), RED.stroke_width(2))).map_err(err)?;
        chart.draw_series(frontier.iter().map(|&i| Circle::new(mean(i), 6, RED.filled()))).map_err(err)?;
        // One label per position: points with equal figures share it ("#6 #12").
        let mut labels: Vec<((f64, f64), String)> = Vec::new();
        for &i in &frontier {
            let name = format!("#{i}");
            match labels.iter_mut().find(|(p, _)| *p == mean(i)) {
                Some((_, l)) => *l = format!("{l} {name}"),
                None => labels.push((mean(i), name)),
            }
        }
        let markers: Vec<(i32, i32)> = members.iter().map(|&i| chart.backend_coord(&mean(i))).collect();
        let placed = place_labels(labels.iter().map(|(p, l)| (chart.backend_coord(p), l.as_str())), &markers);
        chart
            .draw_series(labels.iter().zip(placed).map(|((p, l), offset)| {
                EmptyElement::at(*p) + Text::new(l.clone(), offset, (FAMILY, 14).into_font().color(&RED))
            }))
            .map_err(err)?;

        let entries = [
            LegendEntry::new("candidate policy", GREY, Mark::DotWithBar),
            LegendEntry::new("Pareto frontier", RED, Mark::Line),
        ];
        let mut y = 16 + legend(&panel, "", &entries, 16)?;
        y += 12;
        let line = (FAMILY, 13).into_font().color(&BLACK);
        panel
            .draw(&Text::new("Frontier (cheapest first)", (8, y), (FAMILY, 15).into_font().color(&BLACK)))
            .map_err(err)?;
        y += 24;
        for &i in &frontier {
            let p = &r.points[i];
            if y > PARETO_HEIGHT as i32 - 40 {
                panel.draw(&Text::new("... (see pareto.csv)", (8, y), line.clone())).map_err(err)?;
                break;
            }
            let head = format!("#{i}  ${:.2}, p95 {:.0} s", p.mean.cost_dollars, p.mean.wait_p95);
            panel.draw(&Text::new(head, (8, y), (FAMILY, 13).into_font().color(&RED))).map_err(err)?;
            y += 17;
            for part in p.policy.split(' ') {
                panel.draw(&Text::new(format!("   {part}"), (8, y), line.clone())).map_err(err)?;
                y += 16;
            }
            y += 6;
        }
        Ok(())
    }
}
