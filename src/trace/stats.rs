//! What a trace looks like, in figures: arrivals by hour of the day,
//! duration percentiles per system and feature set, evaluation bursts,
//! jobset mix, outcomes and dependency depth (`hydra-provisioner trace
//! stats`). The same figures feed the fit of the synthetic generator
//! (`synth::fit`), so a fitted trace can be checked against its source.
//!
//! Hours of the day are counted from the trace's zero, which `trace synth`
//! and `trace import` both put at midnight (UTC). A *burst* is a run of
//! arrivals of one jobset with at most `burst_gap` between consecutive
//! ones and at least `burst_min` steps (an evaluation's builds arrive
//! together); other arrivals are *background*. The statistics stream the
//! trace; what they keep grows with it only by one duration and one
//! dependency depth per step (for exact percentiles and depths).

use super::{Outcome, StepSource, Sym, TraceError};
use crate::metrics::nearest_ranks;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const HOUR_MS: i64 = 3_600_000;

/// How bursts are told apart from background arrivals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstRule {
    /// Largest gap (ms) between consecutive arrivals of one jobset within a burst.
    pub gap_ms: i64,
    /// Fewest steps that make a burst.
    pub min_steps: u64,
}

impl Default for BurstRule {
    fn default() -> Self {
        BurstRule { gap_ms: 10_000, min_steps: 20 }
    }
}

/// Percentiles (nearest rank) and mean of a set of values, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &mut [i64], scale: f64) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let p = nearest_ranks(values, &[50.0, 90.0, 99.0, 100.0]);
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        Spread {
            count: values.len() as u64,
            mean: mean / scale,
            p50: p[0] as f64 / scale,
            p90: p[1] as f64 / scale,
            p99: p[2] as f64 / scale,
            max: p[3] as f64 / scale,
        }
    }
}

/// Durations of one kind of step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindStats {
    pub system: String,
    /// Required features, comma-joined (empty: none).
    pub features: String,
    /// Fraction of all steps.
    pub share: f64,
    /// Durations in seconds.
    pub duration: Spread,
}

/// One jobset's part of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobsetStats {
    pub jobset: String,
    pub steps: u64,
    pub share: f64,
    /// The priority most of its steps have.
    pub usual_priority: i32,
}

/// Evaluation bursts (see the module comment).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BurstStats {
    pub bursts: u64,
    pub per_day: f64,
    pub steps_in_bursts: u64,
    /// Steps in bursts that have dependencies.
    pub burst_steps_with_dependencies: u64,
    pub background_steps: u64,
    pub background_per_hour: f64,
    /// Steps per burst (the figures are counts, not seconds).
    pub size: Spread,
    /// Seconds from a burst's first arrival to its last.
    pub span: Spread,
}

/// Dependency figures; a step's depth is 0 without dependencies, else one
/// more than its deepest dependency (dependencies outside the trace count 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DependencyStats {
    pub steps_with_dependencies: u64,
    pub edges: u64,
    pub max_depth: u32,
    pub mean_depth: f64,
    /// Steps by depth, from 0.
    pub depth_histogram: Vec<u64>,
}

/// Everything `trace stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraceStats {
    pub trace: String,
    pub steps: u64,
    /// Seconds from the trace's zero of the first and last arrival.
    pub first_arrival: f64,
    pub last_arrival: f64,
    /// Whole hours from the hour of the first arrival to that of the last, inclusive.
    pub hours: u64,
    /// Arrivals per hour of the day (from the trace's zero), 24 entries.
    pub arrivals_by_hour: Vec<u64>,
    /// Mean background arrivals per hour, for each hour of the day the trace covers.
    pub background_rate_by_hour: Vec<f64>,
    pub kinds: Vec<KindStats>,
    pub jobsets: Vec<JobsetStats>,
    pub bursts: BurstStats,
    pub outcomes: BTreeMap<String, u64>,
    pub dependencies: DependencyStats,
}

struct OpenBurst {
    first_ms: i64,
    last_ms: i64,
    steps: u64,
    with_dependencies: u64,
}

/// Streams a trace into [`TraceStats`].
pub fn compute(source: &mut dyn StepSource, rule: BurstRule) -> Result<TraceStats, TraceError> {
    let mut durations: BTreeMap<(Sym, Sym), Vec<i64>> = BTreeMap::new();
    let mut jobsets: BTreeMap<Sym, (u64, BTreeMap<i32, u64>)> = BTreeMap::new();
    let mut open: HashMap<Sym, OpenBurst> = HashMap::new();
    let mut sizes = vec![];
    let mut spans = vec![];
    let mut background_by_hour = [0u64; 24];
    let mut arrivals_by_hour = [0u64; 24];
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut depth: HashMap<u64, u32> = HashMap::new();
    let mut deps = DependencyStats::default();
    let mut depth_sum = 0u64;
    let (mut steps, mut first, mut last) = (0u64, None, 0i64);
    let mut steps_in_bursts = 0u64;
    let mut burst_steps_with_dependencies = 0u64;

    let hour_of_day = |ms: i64| (ms.div_euclid(HOUR_MS).rem_euclid(24)) as usize;
    let mut close = |b: OpenBurst, background_by_hour: &mut [u64; 24]| {
        if b.steps >= rule.min_steps {
            sizes.push(b.steps as i64);
            spans.push(b.last_ms - b.first_ms);
            steps_in_bursts += b.steps;
            burst_steps_with_dependencies += b.with_dependencies;
        } else {
            // Too small to be an evaluation: background, at its arrival hour.
            background_by_hour[hour_of_day(b.first_ms)] += b.steps;
        }
    };

    while let Some(row) = source.next_step() {
        let row = row?;
        steps += 1;
        first.get_or_insert(row.submitted_ms);
        last = row.submitted_ms;
        arrivals_by_hour[hour_of_day(row.submitted_ms)] += 1;
        durations.entry((row.system, row.features)).or_default().push(row.duration_ms);
        let j = jobsets.entry(row.jobset).or_default();
        j.0 += 1;
        *j.1.entry(row.priority).or_default() += 1;
        *outcomes.entry(row.outcome.as_str().to_string()).or_default() += 1;

        let d = row.depends_on.iter().filter_map(|id| depth.get(id)).max().map_or(0, |m| m + 1);
        if !row.depends_on.is_empty() {
            deps.steps_with_dependencies += 1;
            deps.edges += row.depends_on.len() as u64;
        }
        depth.insert(row.step_id, d);
        depth_sum += u64::from(d);
        deps.max_depth = deps.max_depth.max(d);
        if deps.depth_histogram.len() <= d as usize {
            deps.depth_histogram.resize(d as usize + 1, 0);
        }
        deps.depth_histogram[d as usize] += 1;

        let has_deps = u64::from(!row.depends_on.is_empty());
        match open.get_mut(&row.jobset) {
            Some(b) if row.submitted_ms - b.last_ms <= rule.gap_ms => {
                b.last_ms = row.submitted_ms;
                b.steps += 1;
                b.with_dependencies += has_deps;
            }
            _ => {
                let fresh = OpenBurst {
                    first_ms: row.submitted_ms,
                    last_ms: row.submitted_ms,
                    steps: 1,
                    with_dependencies: has_deps,
                };
                if let Some(old) = open.insert(row.jobset, fresh) {
                    close(old, &mut background_by_hour);
                }
            }
        }
    }
    let mut rest: Vec<OpenBurst> = open.into_values().collect();
    rest.sort_by_key(|b| b.first_ms);
    for b in rest {
        close(b, &mut background_by_hour);
    }

    let symbols = source.symbols();
    let first = first.unwrap_or(0);
    let hours = if steps == 0 { 0 } else { (last.div_euclid(HOUR_MS) - first.div_euclid(HOUR_MS) + 1) as u64 };
    // How often each hour of the day occurs in the covered hours.
    let mut occurrences = [0u64; 24];
    for h in 0..hours {
        occurrences[hour_of_day(first.div_euclid(HOUR_MS) * HOUR_MS + h as i64 * HOUR_MS)] += 1;
    }
    let background_steps = steps - steps_in_bursts;
    let share = |n: u64| if steps == 0 { 0.0 } else { n as f64 / steps as f64 };
    let mut kinds: Vec<KindStats> = durations
        .into_iter()
        .map(|((system, features), mut d)| KindStats {
            system: symbols.name(system).to_string(),
            features: symbols.name(features).to_string(),
            share: share(d.len() as u64),
            duration: Spread::of(&mut d, 1000.0),
        })
        .collect();
    // Biggest first; names break ties, so the order does not depend on interning.
    kinds.sort_by(|a, b| {
        b.duration.count.cmp(&a.duration.count).then_with(|| (&a.system, &a.features).cmp(&(&b.system, &b.features)))
    });
    let mut jobsets: Vec<JobsetStats> = jobsets
        .into_iter()
        .map(|(j, (n, priorities))| JobsetStats {
            jobset: symbols.name(j).to_string(),
            steps: n,
            share: share(n),
            usual_priority: priorities.iter().max_by_key(|(p, c)| (**c, -**p)).map_or(100, |(p, _)| *p),
        })
        .collect();
    jobsets.sort_by(|a, b| b.steps.cmp(&a.steps).then_with(|| a.jobset.cmp(&b.jobset)));
    let per_hour = |n: u64| if hours == 0 { 0.0 } else { n as f64 / hours as f64 };
    let bursts = BurstStats {
        bursts: sizes.len() as u64,
        per_day: per_hour(sizes.len() as u64) * 24.0,
        steps_in_bursts,
        burst_steps_with_dependencies,
        background_steps,
        background_per_hour: per_hour(background_steps),
        size: Spread::of(&mut sizes, 1.0),
        span: Spread::of(&mut spans, 1000.0),
    };
    deps.mean_depth = if steps == 0 { 0.0 } else { depth_sum as f64 / steps as f64 };
    Ok(TraceStats {
        trace: source.name().to_string(),
        steps,
        first_arrival: first as f64 / 1000.0,
        last_arrival: last as f64 / 1000.0,
        hours,
        arrivals_by_hour: arrivals_by_hour.to_vec(),
        background_rate_by_hour: (0..24)
            .map(|h| if occurrences[h] == 0 { 0.0 } else { background_by_hour[h] as f64 / occurrences[h] as f64 })
            .collect(),
        kinds,
        jobsets,
        bursts,
        outcomes: [Outcome::Success, Outcome::Failure, Outcome::Transient]
            .iter()
            .map(|o| (o.as_str().to_string(), outcomes.get(o.as_str()).copied().unwrap_or(0)))
            // Machine failures only where a trace has them, so other traces' figures keep their shape.
            .chain(outcomes.get(Outcome::Machine.as_str()).map(|&n| (Outcome::Machine.as_str().to_string(), n)))
            .collect(),
        dependencies: deps,
    })
}

impl TraceStats {
    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}: {} steps, arrivals {:.0}..{:.0} s ({} hours)\n",
            self.trace, self.steps, self.first_arrival, self.last_arrival, self.hours
        );
        s += "\narrivals by hour of day (from the trace's zero)\n";
        let peak = self.arrivals_by_hour.iter().copied().max().unwrap_or(0).max(1);
        for (h, n) in self.arrivals_by_hour.iter().enumerate() {
            let bar = "#".repeat((n * 40 / peak) as usize);
            s += &format!("  {h:02}  {n:>9}  {bar}\n");
        }
        s += "\ndurations (s) per system and features\n";
        s += &format!(
            "  {:<16} {:<24} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "system", "features", "steps", "share", "mean", "p50", "p90", "p99", "max"
        );
        for k in &self.kinds {
            let d = &k.duration;
            s += &format!(
                "  {:<16} {:<24} {:>8} {:>6.3} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
                k.system,
                if k.features.is_empty() { "-" } else { &k.features },
                d.count,
                k.share,
                d.mean,
                d.p50,
                d.p90,
                d.p99,
                d.max
            );
        }
        let b = &self.bursts;
        s += &format!(
            "\nbursts: {} ({:.1} per day) holding {} steps; background {} steps ({:.1} per hour)\n",
            b.bursts, b.per_day, b.steps_in_bursts, b.background_steps, b.background_per_hour
        );
        s += &format!(
            "  size: p50 {:.0}, p90 {:.0}, max {:.0}; span (s): p50 {:.0}, p90 {:.0}, max {:.0}\n",
            b.size.p50, b.size.p90, b.size.max, b.span.p50, b.span.p90, b.span.max
        );
        s += "\njobsets\n";
        for j in &self.jobsets {
            let name = if j.jobset.is_empty() { "(none)" } else { &j.jobset };
            s += &format!("  {:<32} {:>9} {:>6.3}  priority {}\n", name, j.steps, j.share, j.usual_priority);
        }
        s += "\noutcomes:";
        for (o, n) in &self.outcomes {
            s += &format!(" {o} {n}");
        }
        let d = &self.dependencies;
        s += &format!(
            "\ndependencies: {} steps have {} in all; depth max {}, mean {:.2}; steps by depth {:?}\n",
            d.steps_with_dependencies, d.edges, d.max_depth, d.mean_depth, d.depth_histogram
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceReader;

    #[test]
    fn bursts_depths_and_percentiles() {
        let mut text = String::from("step_id,submitted_at,system,features,jobset,priority,depends_on,duration\n");
        // A burst of 25 steps of p:a at 3600 s, each after the previous one.
        for i in 1..=25 {
            let dep = if i > 1 { (i - 1).to_string() } else { String::new() };
            text += &format!("{i},{},x86_64-linux,,p:a,100,{dep},{i}\n", 3600 + i);
        }
        // Background: three lone steps of p:b an hour apart.
        for (n, t) in [(26, 7300), (27, 10900), (28, 14500)] {
            text += &format!("{n},{t},aarch64-linux,kvm,p:b,50,,100\n");
        }
        let mut r = TraceReader::new(text.as_bytes(), "t.csv");
        let s = compute(&mut r, BurstRule::default()).unwrap();
        assert_eq!(s.steps, 28);
        assert_eq!((s.bursts.bursts, s.bursts.steps_in_bursts, s.bursts.background_steps), (1, 25, 3));
        assert_eq!(s.bursts.size.p50, 25.0);
        assert_eq!(s.bursts.span.max, 24.0);
        assert_eq!(s.hours, 4);
        assert_eq!(s.arrivals_by_hour[1], 25);
        assert_eq!(s.background_rate_by_hour[2], 1.0);
        assert_eq!(s.dependencies.max_depth, 24);
        assert_eq!(s.dependencies.steps_with_dependencies, 24);
        let x86 = s.kinds.iter().find(|k| k.system == "x86_64-linux").unwrap();
        assert_eq!((x86.duration.p50, x86.duration.max), (13.0, 25.0));
        let b = s.jobsets.iter().find(|j| j.jobset == "p:b").unwrap();
        assert_eq!(b.usual_priority, 50);
        assert!(s.to_text().contains("aarch64-linux"));
    }
}
