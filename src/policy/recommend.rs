//! `recommend`: the cheapest candidate policy that meets every wait target,
//! and how sure we are of it.
//!
//! Each candidate comes with the same samples (seeds times windows or
//! traces). A candidate *meets* a target when the target holds in every one
//! of its samples: its worst sample is at or under the target. A group
//! (jobset or machine type) that started no step in a sample cannot miss a
//! target there. Waits count only started steps, so a candidate must also
//! leave, in each sample, no more steps never started than the best
//! candidate does in that sample (steps no policy can start, e.g. past the
//! horizon, do not disqualify anyone).
//!
//! Among the candidates that meet every target, the one with the lowest mean
//! objective over the samples wins: the machine cost, plus, with a wait cost,
//! the cost of the hours steps spent waiting; ties go to the lower candidate
//! number. The confidence statement is the one-sided 95% upper bound on the
//! chance that the chosen policy misses a target in a further sample like
//! these, given it missed in none of `n`: `1 - 0.05^(1/n)` (Clopper-Pearson;
//! about `3/n`, the "rule of three"). docs/reports.md explains it.
//!
//! This module only decides and renders; the CLI runs the simulations.

use super::gate::WaitMetric;
use crate::metrics::WaitStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Whose waits a target is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    All,
    Jobset(String),
    MachineType(String),
    /// Named without saying which: resolved against the results.
    Named(String),
}

impl Group {
    pub fn text(&self) -> String {
        match self {
            Group::All => "all steps".into(),
            Group::Jobset(j) => format!("jobset {j}"),
            Group::MachineType(t) => format!("type {t}"),
            Group::Named(n) => n.clone(),
        }
    }
}

/// A wait target: `metric` of the group's waits at most `max_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub group: Group,
    pub metric: WaitMetric,
    pub max_seconds: f64,
    /// As written on the command line.
    pub text: String,
}

impl std::str::FromStr for Target {
    type Err = String;
    /// `p95=15m`, `nixpkgs:trunk/p95=10m`, `jobset:nixpkgs:trunk/p95=10m`,
    /// `type:x86_64-linux/max=1h`.
    fn from_str(s: &str) -> Result<Target, String> {
        let bad = |why: String| format!("`{s}`: {why} (e.g. p95=15m, nixpkgs:trunk/p95=10m, type:x86_64-linux/p99=1h)");
        let (lhs, value) = s.rsplit_once('=').ok_or_else(|| bad("expected METRIC=DURATION".into()))?;
        let (group, metric) = match lhs.rsplit_once('/') {
            Some((g, m)) => {
                let group = if let Some(j) = g.strip_prefix("jobset:") {
                    Group::Jobset(j.to_string())
                } else if let Some(t) = g.strip_prefix("type:") {
                    Group::MachineType(t.to_string())
                } else {
                    Group::Named(g.to_string())
                };
                (group, m)
            }
            None => (Group::All, lhs),
        };
        if matches!(&group, Group::Jobset(n) | Group::MachineType(n) | Group::Named(n) if n.is_empty()) {
            return Err(bad("empty jobset or type name".into()));
        }
        let metric: WaitMetric = metric.trim().parse().map_err(bad)?;
        let max_seconds = crate::sim::scenario::parse_duration(value).map_err(bad)?;
        Ok(Target { group, metric, max_seconds, text: s.to_string() })
    }
}

impl Target {
    /// Names the group as a jobset or a machine type, from what the results
    /// hold; an error when it is neither, or both.
    pub fn resolve(&mut self, jobsets: &[String], types: &[String]) -> Result<(), String> {
        if let Group::Named(n) = &self.group {
            let (j, t) = (jobsets.contains(n), types.contains(n));
            self.group = match (j, t) {
                (true, false) => Group::Jobset(n.clone()),
                (false, true) => Group::MachineType(n.clone()),
                (true, true) => {
                    return Err(format!(
                        "`{}`: `{n}` is both a jobset and a machine type; write jobset:{n}/... or type:{n}/...",
                        self.text
                    ));
                }
                (false, false) => {
                    return Err(format!(
                        "`{}`: no jobset or machine type `{n}` in the results (jobsets: {}; types: {})",
                        self.text,
                        jobsets.join(", "),
                        types.join(", ")
                    ));
                }
            };
        }
        Ok(())
    }

    /// e.g. `p95 wait of jobset nixpkgs:trunk <= 600 s`.
    pub fn describe(&self) -> String {
        format!("{} wait of {} <= {}", self.metric.name(), self.group.text(), seconds_text(self.max_seconds))
    }
}

/// Seconds for people: `540 s`, `15.0 min`, `2.50 h`.
pub fn seconds_text(s: f64) -> String {
    if s < 600.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.2} h", s / 3600.0)
    }
}

/// One sample of one candidate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// e.g. `window=0d..1d seed=2`.
    pub label: String,
    /// Machine cost in dollars.
    pub cost: f64,
    /// Hours steps spent waiting, summed over the started steps.
    pub wait_hours: f64,
    pub not_started: f64,
    /// Waits overall ([`Group::All`]) and per jobset and machine type.
    pub waits: BTreeMap<Group, WaitStats>,
}

/// A candidate policy with its samples (every candidate has the same
/// samples, in the same order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Candidate {
    pub index: usize,
    pub label: String,
    pub samples: Vec<Sample>,
}

/// What is minimised among the candidates that meet the targets.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Objective {
    /// Dollars per hour of waiting, per step; `None`: machine cost alone.
    pub wait_cost_per_hour: Option<f64>,
}

impl Objective {
    fn of(&self, s: &Sample) -> f64 {
        s.cost + self.wait_cost_per_hour.map_or(0.0, |r| r * s.wait_hours)
    }
}

/// How a candidate did against one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetOutcome {
    /// The largest value over the samples in which the group started steps.
    pub worst: Option<f64>,
    /// The sample of the largest value.
    pub worst_sample: Option<String>,
    /// Samples in which the target held.
    pub met: usize,
}

/// One candidate, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub index: usize,
    pub label: String,
    pub machine_cost: f64,
    pub machine_cost_max: f64,
    /// Mean cost of waiting (zero without a wait cost).
    pub wait_cost: f64,
    /// What is minimised: machine cost plus wait cost, mean over samples.
    pub objective: f64,
    /// The objective in each sample.
    pub per_sample: Vec<f64>,
    pub targets: Vec<TargetOutcome>,
    /// Samples in which it left no more steps never started than the best candidate.
    pub started_enough: usize,
    pub meets: bool,
}

impl Evaluation {
    /// What it misses, e.g. `p95 wait of all steps <= 15.0 min (worst 17.2 min)`.
    pub fn misses(&self, targets: &[Target], samples: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .targets
            .iter()
            .zip(targets)
            .filter(|(o, _)| o.met < samples)
            .map(|(o, t)| {
                let worst = o.worst.map_or(String::new(), |w| format!(" (worst {})", seconds_text(w)));
                format!("{}{worst}, missed in {} of {samples} samples", t.describe(), samples - o.met)
            })
            .collect();
        if self.started_enough < samples {
            out.push(format!(
                "leaves more steps never started than the best policy in {} of {samples} samples",
                samples - self.started_enough
            ));
        }
        out
    }
}

/// The answer for one set of candidates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Every candidate, by objective (then number).
    pub evaluations: Vec<Evaluation>,
    /// The candidate number chosen, if any meets every target.
    pub chosen: Option<usize>,
    /// Samples per candidate.
    pub samples: usize,
    /// The 95% upper bound on the chance the chosen policy misses a target
    /// in a further sample (see the module documentation).
    pub miss_rate_bound: Option<f64>,
}

/// `1 - 0.05^(1/n)`: with no miss in `n` samples, the chance of a miss per
/// sample is below this with 95% confidence.
pub fn miss_rate_bound(n: usize) -> f64 {
    if n == 0 { 1.0 } else { 1.0 - 0.05f64.powf(1.0 / n as f64) }
}

/// The value of a target's figure in a sample, `None` when the group started
/// no step there.
pub fn value(sample: &Sample, target: &Target) -> Option<f64> {
    sample.waits.get(&target.group).filter(|w| w.count > 0).map(|w| target.metric.of_stats(w))
}

/// Judges every candidate and chooses (module documentation).
pub fn recommend(candidates: &[Candidate], targets: &[Target], objective: Objective) -> Recommendation {
    let samples = candidates.iter().map(|c| c.samples.len()).max().unwrap_or(0);
    let fewest_unstarted: Vec<f64> = (0..samples)
        .map(|s| {
            candidates.iter().filter_map(|c| c.samples.get(s)).map(|x| x.not_started).fold(f64::INFINITY, f64::min)
        })
        .collect();
    let mut evaluations: Vec<Evaluation> = candidates
        .iter()
        .map(|c| {
            let n = c.samples.len().max(1) as f64;
            let machine_cost = c.samples.iter().map(|s| s.cost).sum::<f64>() / n;
            let objective_mean = c.samples.iter().map(|s| objective.of(s)).sum::<f64>() / n;
            let outcomes: Vec<TargetOutcome> = targets
                .iter()
                .map(|t| {
                    let mut worst: Option<(f64, &str)> = None;
                    let mut met = 0;
                    for s in &c.samples {
                        match value(s, t) {
                            Some(v) => {
                                if v <= t.max_seconds {
                                    met += 1;
                                }
                                if worst.is_none_or(|(w, _)| v > w) {
                                    worst = Some((v, &s.label));
                                }
                            }
                            None => met += 1,
                        }
                    }
                    TargetOutcome { worst: worst.map(|w| w.0), worst_sample: worst.map(|w| w.1.to_string()), met }
                })
                .collect();
            let started_enough =
                c.samples.iter().zip(&fewest_unstarted).filter(|(s, fewest)| s.not_started <= **fewest).count();
            let full = c.samples.len() == samples;
            let meets = full && started_enough == samples && outcomes.iter().all(|o| o.met == samples);
            Evaluation {
                index: c.index,
                label: c.label.clone(),
                machine_cost,
                machine_cost_max: c.samples.iter().map(|s| s.cost).fold(0.0, f64::max),
                wait_cost: objective_mean - machine_cost,
                objective: objective_mean,
                per_sample: c.samples.iter().map(|s| objective.of(s)).collect(),
                targets: outcomes,
                started_enough,
                meets,
            }
        })
        .collect();
    evaluations.sort_by(|a, b| a.objective.total_cmp(&b.objective).then(a.index.cmp(&b.index)));
    let chosen = evaluations.iter().find(|e| e.meets).map(|e| e.index);
    Recommendation { evaluations, chosen, samples, miss_rate_bound: chosen.map(|_| miss_rate_bound(samples)) }
}

impl Recommendation {
    pub fn evaluation(&self, index: usize) -> Option<&Evaluation> {
        self.evaluations.iter().find(|e| e.index == index)
    }

    /// The candidates cheaper (by the objective) than the chosen one, each
    /// with what it misses; the first is the nearest to the chosen.
    pub fn rejected_cheaper(&self) -> Vec<&Evaluation> {
        let Some(chosen) = self.chosen else { return vec![] };
        let mut v: Vec<&Evaluation> = self.evaluations.iter().take_while(|e| e.index != chosen).collect();
        v.reverse();
        v
    }

    /// Which targets bind: with a choice, what the nearest cheaper
    /// candidate misses; without one, what each target alone rules out.
    pub fn binding(&self, targets: &[Target]) -> Vec<String> {
        if self.chosen.is_some() {
            return self.rejected_cheaper().first().map_or(vec![], |e| e.misses(targets, self.samples));
        }
        let mut out = vec![];
        for (k, t) in targets.iter().enumerate() {
            let meeting = self.evaluations.iter().filter(|e| e.targets[k].met == self.samples).count();
            if meeting == 0 {
                let best = self.evaluations.iter().filter_map(|e| e.targets[k].worst).fold(f64::INFINITY, f64::min);
                out.push(format!(
                    "{}: no policy meets it alone (the best worst-sample value is {})",
                    t.describe(),
                    seconds_text(best)
                ));
            }
        }
        if out.is_empty() {
            out.push("each target is met by some policy, but no policy meets all of them at once".into());
        }
        out
    }

    /// The next candidate by the objective that also meets every target.
    pub fn runner_up(&self) -> Option<&Evaluation> {
        let chosen = self.chosen?;
        self.evaluations.iter().skip_while(|e| e.index != chosen).skip(1).find(|e| e.meets)
    }

    /// The candidate nearest to meeting every target: the smallest largest
    /// ratio of worst value to target.
    pub fn closest(&self, targets: &[Target]) -> Option<&Evaluation> {
        let ratio = |e: &Evaluation| {
            e.targets
                .iter()
                .zip(targets)
                .map(|(o, t)| o.worst.map_or(0.0, |w| w / t.max_seconds.max(1e-9)))
                .fold(0.0, f64::max)
        };
        self.evaluations.iter().min_by(|a, b| ratio(a).total_cmp(&ratio(b)).then(a.index.cmp(&b.index)))
    }

    /// The answer as text for people.
    pub fn to_text(&self, targets: &[Target], objective: Objective, samples_text: &str) -> String {
        let mut o = String::new();
        let minimised = match objective.wait_cost_per_hour {
            Some(r) => format!("machine cost plus waiting at ${r}/h per step"),
            None => "machine cost".into(),
        };
        let Some(chosen) = self.chosen.and_then(|i| self.evaluation(i)) else {
            let _ = writeln!(o, "No policy in the grid meets every target.");
            let _ = writeln!(o, "Binding:");
            for b in self.binding(targets) {
                let _ = writeln!(o, "  - {b}");
            }
            if let Some(c) = self.closest(targets) {
                let _ =
                    writeln!(o, "Closest: #{} {} (mean cost ${:.2}), which misses:", c.index, c.label, c.machine_cost);
                for m in c.misses(targets, self.samples) {
                    let _ = writeln!(o, "  - {m}");
                }
            }
            return o;
        };
        let _ = writeln!(o, "Recommended: #{} {}", chosen.index, chosen.label);
        let _ = writeln!(
            o,
            "  mean cost ${:.2} per sample run (largest ${:.2}){}; minimising {minimised}",
            chosen.machine_cost,
            chosen.machine_cost_max,
            if objective.wait_cost_per_hour.is_some() {
                format!(", waiting ${:.2}, together ${:.2}", chosen.wait_cost, chosen.objective)
            } else {
                String::new()
            }
        );
        for (t, out) in targets.iter().zip(&chosen.targets) {
            let worst = match (&out.worst, &out.worst_sample) {
                (Some(w), Some(s)) => format!("worst {} in {s}", seconds_text(*w)),
                _ => "no steps in any sample".into(),
            };
            let _ = writeln!(o, "  {}: met in all {} samples, {worst}", t.describe(), self.samples);
        }
        let bound = self.miss_rate_bound.unwrap_or(1.0);
        if !targets.is_empty() {
            let _ = writeln!(
                o,
                "Confidence: it met every target in all {} samples ({samples_text}). With no miss in {} samples, \
                 the chance that it misses a target in a further sample like these is below {:.1}% \
                 (95% upper bound, 1 - 0.05^(1/{})).",
                self.samples,
                self.samples,
                bound * 100.0,
                self.samples
            );
        }
        if let Some(r) = self.runner_up() {
            let diffs: Vec<f64> = r.per_sample.iter().zip(&chosen.per_sample).map(|(a, b)| a - b).collect();
            let more = diffs.iter().filter(|d| **d > 0.0).count();
            let less = diffs.iter().filter(|d| **d < 0.0).count();
            let (lo, hi) = diffs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), d| (l.min(*d), h.max(*d)));
            let _ = writeln!(
                o,
                "Runner-up: #{} {} at ${:.2}; sample by sample it costs {lo:+.2} to {hi:+.2} dollars more: \
                 more in {more}, less in {less}, as much in {} of {} samples.",
                r.index,
                r.label,
                r.objective,
                diffs.len() - more - less,
                diffs.len()
            );
        }
        let rejected = self.rejected_cheaper();
        if rejected.is_empty() {
            let _ = writeln!(o, "Binding: none; it is the cheapest policy in the grid.");
        } else {
            let _ = writeln!(o, "Binding: {}", self.binding(targets).join("; "));
            let _ = writeln!(o, "Cheaper policies, and what they miss:");
            for e in rejected {
                let _ = writeln!(
                    o,
                    "  #{} {} (${:.2}): {}",
                    e.index,
                    e.label,
                    e.objective,
                    e.misses(targets, self.samples).join("; ")
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stats(p95: f64) -> WaitStats {
        WaitStats { count: 10, mean: p95 / 2.0, p50: p95 / 3.0, p90: p95 * 0.9, p95, p99: p95 * 1.1, max: p95 * 1.5 }
    }

    fn sample(cost: f64, p95: f64, jobset_p95: Option<f64>, not_started: f64) -> Sample {
        let mut waits = BTreeMap::new();
        waits.insert(Group::All, stats(p95));
        if let Some(j) = jobset_p95 {
            waits.insert(Group::Jobset("a:b".into()), stats(j));
        }
        Sample { label: format!("s{cost}"), cost, wait_hours: p95 / 3600.0, not_started, waits }
    }

    fn target(text: &str) -> Target {
        text.parse().unwrap()
    }

    #[test]
    fn targets_parse() {
        let t = target("p95=15m");
        assert_eq!((t.group.clone(), t.metric, t.max_seconds), (Group::All, WaitMetric::P95, 900.0));
        let t = target("nixpkgs:trunk/p95=10m");
        assert_eq!(t.group, Group::Named("nixpkgs:trunk".into()));
        assert_eq!(target("jobset:a:b/max=1h").group, Group::Jobset("a:b".into()));
        assert_eq!(target("type:x86_64-linux:kvm/mean=90").group, Group::MachineType("x86_64-linux:kvm".into()));
        for bad in ["p95", "p42=1m", "p95=soon", "/p95=1m", "p95=-1m"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        let mut t = target("nixpkgs:trunk/p95=10m");
        t.resolve(&["nixpkgs:trunk".into()], &["x86_64-linux".into()]).unwrap();
        assert_eq!(t.group, Group::Jobset("nixpkgs:trunk".into()));
        let mut t = target("nope/p95=10m");
        assert!(t.resolve(&["nixpkgs:trunk".into()], &[]).unwrap_err().contains("nixpkgs:trunk"));
    }

    #[test]
    fn the_cheapest_meeting_candidate_wins_and_the_binding_target_is_named() {
        let c = |index: usize, cost: f64, p95s: &[f64]| Candidate {
            index,
            label: format!("c{index}"),
            samples: p95s.iter().map(|&p| sample(cost, p, None, 0.0)).collect(),
        };
        let candidates = [c(0, 10.0, &[1000.0, 800.0]), c(1, 20.0, &[850.0, 700.0]), c(2, 30.0, &[100.0, 100.0])];
        let targets = [target("p95=15m")];
        let r = recommend(&candidates, &targets, Objective::default());
        assert_eq!(r.chosen, Some(1));
        assert!(r.binding(&targets)[0].contains("p95 wait of all steps <= 15.0 min"), "{:?}", r.binding(&targets));
        let text = r.to_text(&targets, Objective::default(), "2 seeds");
        assert!(text.contains("Recommended: #1 c1"), "{text}");
        assert!(text.contains("below 77.6%"), "{text}");
        // Nothing meets 1 minute; the target binds alone.
        let strict = [target("p95=1m")];
        let r = recommend(&candidates, &strict, Objective::default());
        assert_eq!(r.chosen, None);
        let text = r.to_text(&strict, Objective::default(), "2 seeds");
        assert!(text.contains("No policy in the grid meets every target"), "{text}");
        assert!(text.contains("no policy meets it alone"), "{text}");
        assert!(text.contains("Closest: #2"), "{text}");
    }

    #[test]
    fn a_wait_cost_trades_machine_cost_for_waiting() {
        let c = |index: usize, cost: f64, p95: f64| Candidate {
            index,
            label: String::new(),
            samples: vec![Sample { wait_hours: p95, ..sample(cost, p95, None, 0.0) }],
        };
        let candidates = [c(0, 10.0, 5.0), c(1, 12.0, 1.0)];
        assert_eq!(recommend(&candidates, &[], Objective::default()).chosen, Some(0));
        let r = recommend(&candidates, &[], Objective { wait_cost_per_hour: Some(1.0) });
        assert_eq!(r.chosen, Some(1), "10 + 5 > 12 + 1");
        assert_eq!(r.evaluation(1).unwrap().objective, 13.0);
    }

    #[test]
    fn a_candidate_that_leaves_steps_unstarted_is_not_recommended() {
        let candidates = [
            Candidate { index: 0, label: String::new(), samples: vec![sample(1.0, 10.0, None, 5.0)] },
            Candidate { index: 1, label: String::new(), samples: vec![sample(2.0, 10.0, None, 2.0)] },
        ];
        let r = recommend(&candidates, &[], Objective::default());
        assert_eq!(r.chosen, Some(1));
        assert!(r.evaluation(0).unwrap().misses(&[], 1)[0].contains("never started"));
    }

    fn tables() -> impl Strategy<Value = (Vec<Candidate>, Vec<Target>)> {
        let samples = 1usize..4;
        (1usize..7, samples).prop_flat_map(|(n, s)| {
            let sample = (0u8..6, 0u8..8, prop::option::of(0u8..8), 0u8..3).prop_map(|(c, w, j, u)| {
                sample(f64::from(c), f64::from(w) * 100.0, j.map(|j| f64::from(j) * 100.0), f64::from(u))
            });
            let candidate = prop::collection::vec(sample, s);
            let targets = prop::collection::vec(
                (prop::bool::ANY, 0u8..9).prop_map(|(jobset, limit)| Target {
                    group: if jobset { Group::Jobset("a:b".into()) } else { Group::All },
                    metric: WaitMetric::P95,
                    max_seconds: f64::from(limit) * 100.0,
                    text: String::new(),
                }),
                0..3,
            );
            (prop::collection::vec(candidate, n), targets).prop_map(|(cs, ts)| {
                let cs = cs
                    .into_iter()
                    .enumerate()
                    .map(|(index, samples)| Candidate { index, label: String::new(), samples })
                    .collect();
                (cs, ts)
            })
        })
    }

    /// Whether a candidate meets every target in every sample, read straight off the table.
    fn meets_all(c: &Candidate, all: &[Candidate], targets: &[Target]) -> bool {
        c.samples.iter().enumerate().all(|(s, x)| {
            let fewest = all.iter().map(|o| o.samples[s].not_started).fold(f64::INFINITY, f64::min);
            x.not_started <= fewest
                && targets.iter().all(|t| match x.waits.get(&t.group) {
                    Some(w) => w.p95 <= t.max_seconds,
                    None => true,
                })
        })
    }

    fn mean_cost(c: &Candidate) -> f64 {
        c.samples.iter().map(|s| s.cost).sum::<f64>() / c.samples.len() as f64
    }

    proptest! {
        #[test]
        fn recommend_picks_exactly_the_cheapest_candidate_meeting_every_target((candidates, targets) in tables()) {
            let r = recommend(&candidates, &targets, Objective::default());
            let meeting: Vec<&Candidate> = candidates.iter().filter(|c| meets_all(c, &candidates, &targets)).collect();
            match r.chosen {
                Some(i) => {
                    let chosen = &candidates[i];
                    prop_assert!(meets_all(chosen, &candidates, &targets), "#{i} misses a target");
                    for c in &meeting {
                        let (a, b) = (mean_cost(c), mean_cost(chosen));
                        prop_assert!(a > b || (a == b && c.index >= i), "#{} (${a}) is cheaper than #{i} (${b})", c.index);
                    }
                }
                None => {
                    prop_assert!(meeting.is_empty(), "#{} meets every target but none was chosen", meeting[0].index);
                    let text = r.to_text(&targets, Objective::default(), "");
                    prop_assert!(text.starts_with("No policy in the grid meets every target"));
                    prop_assert!(!r.binding(&targets).is_empty());
                }
            }
        }
    }
}
