//! The sweep's HTML report: one self-contained page with what was run (base
//! scenario, trace, seeds, axes, program version), the Pareto chart inlined
//! as SVG, and tables of the frontier and of every point.
//!
//! No JavaScript, no external files, no timestamps: the page is a function of
//! the results, like the CSV files. This module renders text; it writes
//! nothing.

use super::results::{PointResult, SweepResults, quirks_name};
use super::sweep::value_text;
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn table(o: &mut String, r: &SweepResults, rows: &[&PointResult], frontier: &[usize]) {
    o.push_str("<table>\n<tr><th>point</th>");
    for a in &r.sweep.axes {
        let _ = write!(o, "<th>{}</th>", escape(&a.path));
    }
    o.push_str(
        "<th>quirks</th><th>cost $</th><th>billed h</th><th>busy h</th><th>idle h</th><th>utilisation %</th>\
         <th>wait mean s</th><th>p50 s</th><th>p90 s</th><th>p95 s</th><th>p99 s</th><th>max s</th>\
         <th>waited for boot %</th><th>creates</th><th>destroys</th><th>aborted</th><th>not started</th><th>failed deploys</th></tr>\n",
    );
    for p in rows {
        let on = frontier.contains(&p.point.index);
        let _ = write!(
            o,
            "<tr{}><td>{}{}</td>",
            if on { " class=\"f\"" } else { "" },
            p.point.index,
            if on { " *" } else { "" }
        );
        for (a, &v) in r.sweep.axes.iter().zip(&p.point.values) {
            let _ = write!(o, "<td>{}</td>", escape(&value_text(&a.values[v])));
        }
        let m = &p.mean;
        let _ = writeln!(
            o,
            "<td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td>\
             <td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            quirks_name(p.quirks),
            m.cost_dollars,
            m.billed_machine_hours,
            m.busy_machine_hours,
            m.idle_machine_hours,
            m.utilisation * 100.0,
            m.wait_mean,
            m.wait_p50,
            m.wait_p90,
            m.wait_p95,
            m.wait_p99,
            m.wait_max,
            m.waited_for_boot_fraction * 100.0,
            m.creates,
            m.destroys,
            m.aborted_steps,
            m.steps_not_started,
            m.failed_deploys
        );
    }
    o.push_str("</table>\n");
}

/// The report page; `svg` is the chart from [`super::plot::svg`].
pub fn html(r: &SweepResults, svg: &str) -> String {
    let frontier = r.frontier();
    let point_indices: Vec<usize> = frontier.iter().map(|&i| r.points[i].point.index).collect();
    let mut o = String::new();
    let title = format!("Sweep {}", r.sweep.name);
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body {{ font-family: \"DejaVu Sans\", sans-serif; margin: 2em; color: #222; }}\n\
         table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 2em; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}\n\
         tr.f td {{ background: #fde8e8; }}\n dt {{ font-weight: bold; }}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    o.push_str("<dl>\n");
    let meta = [
        ("base scenario", format!("{} ({})", r.scenario_name, r.sweep.scenario_text)),
        ("trace", r.trace.clone()),
        ("seeds", r.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
        (
            "grid",
            format!(
                "{} point(s) x {} seed(s) = {} runs",
                r.points.len(),
                r.seeds.len(),
                r.points.len() * r.seeds.len()
            ),
        ),
        ("program", format!("hydra-provisioner {}", r.program_version)),
    ];
    for (k, v) in meta {
        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    for a in &r.sweep.axes {
        let values = a.values.iter().map(value_text).collect::<Vec<_>>().join(", ");
        let _ = writeln!(o, "<dt>axis <code>{}</code></dt><dd>{}</dd>", escape(&a.path), escape(&values));
    }
    o.push_str(
        "</dl>\n<h2>Pareto frontier</h2>\n<p>Points no other point beats on both mean cost and mean p95 wait \
        (both minimised; points with equal figures are all kept). Figures are means over the seeds.</p>\n",
    );
    // The SVG is our own output; drop an XML declaration, which is not allowed inside HTML.
    let svg = svg.trim_start();
    let svg = if svg.starts_with("<?xml") { svg.split_once("?>").map_or(svg, |(_, rest)| rest) } else { svg };
    o.push_str(svg.trim());
    o.push('\n');
    let rows: Vec<&PointResult> = frontier.iter().map(|&i| &r.points[i]).collect();
    table(&mut o, r, &rows, &point_indices);
    o.push_str("<h2>All points</h2>\n<p>Frontier points are marked *. Per-seed figures are in points.csv.</p>\n");
    let all: Vec<&PointResult> = r.points.iter().collect();
    table(&mut o, r, &all, &point_indices);
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
    }
}
