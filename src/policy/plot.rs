//! The Pareto chart of a sweep, as SVG text and PNG bytes: every point by
//! mean cost and mean p95 wait, the frontier highlighted and connected, and
//! each frontier point numbered and named in a panel beside the chart.
//!
//! Text is measured and drawn with DejaVu Sans embedded in the binary
//! (assets/DejaVuSans.ttf), never a system font, and the PNG is encoded here
//! with fixed settings, so the same results give byte-identical files on
//! every machine. This module draws into memory; it writes no files.

use super::results::SweepResults;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
pub const SIZE: (u32, u32) = (1100, 640);
const CHART_WIDTH: u32 = 720;

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct PlotError(String);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; a failure here would
        // show as missing text, not as a crash.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// The range to show for values, padded so no point sits on the frame.
fn range(values: impl Iterator<Item = f64> + Clone) -> std::ops::Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) * 0.1 };
    (lo - span * 0.08).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY })..hi + span * 0.08
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, r: &SweepResults) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (chart_area, panel) = root.split_horizontally(CHART_WIDTH);
    let frontier = r.frontier();
    let xy: Vec<(f64, f64)> = r.points.iter().map(|p| (p.mean.cost_dollars, p.mean.wait_p95)).collect();
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(format!("{}: cost and p95 wait", r.sweep.name), (FAMILY, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(range(xy.iter().map(|p| p.0)), range(xy.iter().map(|p| p.1)))
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(format!("mean cost over {} seed(s) ($)", r.seeds.len()))
        .y_desc("mean p95 wait (s)")
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    let grey = RGBColor(120, 120, 120);
    let red = RGBColor(200, 30, 30);
    chart
        .draw_series(xy.iter().map(|&p| Circle::new(p, 4, grey.filled())))
        .map_err(e)?
        .label("grid point")
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, grey.filled()));
    chart
        .draw_series(LineSeries::new(frontier.iter().map(|&i| xy[i]), red.stroke_width(2)))
        .map_err(e)?
        .label("Pareto frontier")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
    chart.draw_series(frontier.iter().map(|&i| Circle::new(xy[i], 6, red.filled()))).map_err(e)?;
    // One label per position: points with equal figures share it ("#6 #12").
    let mut labels: Vec<((f64, f64), String)> = Vec::new();
    for &i in &frontier {
        let name = format!("#{}", r.points[i].point.index);
        match labels.iter_mut().find(|(p, _)| *p == xy[i]) {
            Some((_, l)) => *l = format!("{l} {name}"),
            None => labels.push((xy[i], name)),
        }
    }
    chart
        .draw_series(labels.into_iter().enumerate().map(|(k, (p, l))| {
            // Alternate above and below, so that neighbours on the frontier do not overprint.
            let dy = if k % 2 == 0 { -18 } else { 6 };
            EmptyElement::at(p) + Text::new(l, (8, dy), (FAMILY, 13).into_font().color(&red))
        }))
        .map_err(e)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;

    let title = (FAMILY, 15).into_font().color(&BLACK);
    let line = (FAMILY, 12).into_font().color(&BLACK);
    panel.draw(&Text::new("Frontier points (cheapest first)", (8, 20), title)).map_err(e)?;
    let mut y = 46;
    for &i in &frontier {
        let p = &r.points[i];
        if y > SIZE.1 as i32 - 40 {
            panel.draw(&Text::new("... (see pareto.csv)", (8, y), line.clone())).map_err(e)?;
            break;
        }
        let head = format!("#{}  ${:.2}, p95 {:.0} s", p.point.index, p.mean.cost_dollars, p.mean.wait_p95);
        panel.draw(&Text::new(head, (8, y), (FAMILY, 12).into_font().color(&red))).map_err(e)?;
        y += 16;
        for part in p.label.split(' ') {
            panel.draw(&Text::new(format!("   {part}"), (8, y), line.clone())).map_err(e)?;
            y += 15;
        }
        y += 6;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// The chart as SVG text.
pub fn svg(r: &SweepResults) -> Result<String, PlotError> {
    register_font();
    let mut out = String::new();
    draw(SVGBackend::with_string(&mut out, SIZE).into_drawing_area(), r).map_err(PlotError)?;
    Ok(out)
}

/// The chart as PNG bytes (8-bit RGB, default compression, no metadata).
pub fn png(r: &SweepResults) -> Result<Vec<u8>, PlotError> {
    register_font();
    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(), r).map_err(PlotError)?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    let mut writer = encoder.write_header().map_err(|e| PlotError(e.to_string()))?;
    writer.write_image_data(&pixels).map_err(|e| PlotError(e.to_string()))?;
    writer.finish().map_err(|e| PlotError(e.to_string()))?;
    Ok(out)
}
