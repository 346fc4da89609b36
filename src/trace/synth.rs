//! Synthetic traces from documented, seeded parameters: a diurnal stream of
//! single steps, evaluation bursts of thousands of steps, heavy-tailed
//! durations calibrated to hydra.nixos.org (mean step about a minute), a mix
//! of systems and features, several jobsets and dependency chains.
//!
//! The generator is a [`StepSource`]: it produces rows in time order an hour
//! at a time, so it can feed the simulator directly without a file and without
//! holding the whole trace. It is deterministic for a given [`SynthParams`]
//! (ChaCha8 seeded from `seed`). It does not claim to reproduce any real
//! Hydra's queue, only its broad shape.

use super::{Outcome, StepRow, StepSource, Sym, Symbols, TraceError};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The knobs of [`Synth`]; every one has a default (see docs/trace-format.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SynthParams {
    pub seed: u64,
    /// Length of the trace in hours.
    pub hours: f64,
    /// Mean arrivals per hour of single steps outside evaluations.
    pub background_per_hour: f64,
    /// Relative swing of the background rate over a day (0 = flat, 1 = zero at night).
    pub diurnal_amplitude: f64,
    /// Hour of the day (UTC, trace time 0 = midnight) of the busiest moment.
    pub peak_hour: f64,
    /// Mean evaluations per day that each release a burst of steps.
    pub evaluations_per_day: f64,
    /// Median steps per evaluation burst (lognormal).
    pub burst_median: f64,
    /// Spread (sigma of the logarithm) of the burst size.
    pub burst_sigma: f64,
    /// Largest burst.
    pub burst_max: u64,
    /// Seconds over which the queue runner loads one evaluation's steps.
    pub burst_spread: f64,
    /// Median step duration in seconds on a speedFactor-1 machine (lognormal),
    /// before the per-kind multiplier (big-parallel steps take 8 times longer,
    /// kvm 3 times, aarch64 1.2 times).
    pub duration_median: f64,
    /// Sigma of the logarithm of the duration (a heavy tail); with the
    /// median of 10.5 s and the kind mix, 1.67 gives a mean step of about
    /// 60 s, Hydra's published average.
    pub duration_sigma: f64,
    /// Longest step in seconds (Hydra's default build timeout is 10 h).
    pub duration_max: f64,
    /// Chance that a step of a burst depends on an earlier step of the same burst.
    pub dependency_probability: f64,
    pub failure_probability: f64,
    pub transient_probability: f64,
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            seed: 1,
            hours: 24.0,
            background_per_hour: 300.0,
            diurnal_amplitude: 0.6,
            peak_hour: 14.0,
            evaluations_per_day: 8.0,
            burst_median: 1500.0,
            burst_sigma: 0.8,
            burst_max: 20_000,
            burst_spread: 300.0,
            duration_median: 10.5,
            duration_sigma: 1.67,
            duration_max: 36_000.0,
            dependency_probability: 0.3,
            failure_probability: 0.01,
            transient_probability: 0.002,
        }
    }
}

/// Step kinds: (system, features, share of steps, duration multiplier).
const KINDS: &[(&str, &str, f64, f64)] = &[
    ("x86_64-linux", "", 0.72, 1.0),
    ("aarch64-linux", "", 0.18, 1.2),
    ("x86_64-linux", "big-parallel", 0.05, 8.0),
    ("x86_64-linux", "kvm", 0.03, 3.0),
    ("i686-linux", "", 0.02, 1.0),
];

/// Jobsets and their share of evaluations and background steps.
const JOBSETS: &[(&str, f64)] = &[
    ("nixpkgs:trunk", 0.40),
    ("nixos:trunk-combined", 0.25),
    ("nixpkgs:staging-next", 0.15),
    ("nixos:release-24.05", 0.10),
    ("hydra:master", 0.05),
    ("nix:master", 0.05),
];

const HOUR_MS: i64 = 3_600_000;

struct Pending {
    at_ms: i64,
    kind: usize,
    jobset: usize,
    burst: Option<u64>,
    duration_ms: i64,
    outcome: Outcome,
    priority: i32,
}

/// A seeded generator of trace rows (see the module documentation).
pub struct Synth {
    params: SynthParams,
    rng: ChaCha8Rng,
    symbols: Symbols,
    kind_syms: Vec<(Sym, Sym)>,
    jobset_syms: Vec<Sym>,
    duration: LogNormal<f64>,
    burst_size: LogNormal<f64>,
    /// Generated but not yet emitted, ordered by (time, seq).
    pending: BTreeMap<(i64, u64), Pending>,
    ready: VecDeque<StepRow>,
    next_hour: i64,
    end_ms: i64,
    next_seq: u64,
    next_step_id: u64,
    next_burst: u64,
    /// Recent step ids per open burst, for dependency chains.
    burst_recent: BTreeMap<u64, (i64, VecDeque<u64>)>,
    name: String,
}

impl Synth {
    pub fn new(params: SynthParams) -> Result<Synth, String> {
        let positive = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{what} must be positive, got {v}")) }
        };
        positive(params.hours, "hours")?;
        positive(params.duration_median, "duration-median")?;
        positive(params.burst_median, "burst-median")?;
        positive(params.duration_max, "duration-max")?;
        for (v, what) in [
            (params.background_per_hour, "background-per-hour"),
            (params.evaluations_per_day, "evaluations-per-day"),
            (params.burst_spread, "burst-spread"),
            (params.duration_sigma, "duration-sigma"),
            (params.burst_sigma, "burst-sigma"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{what} must be zero or more, got {v}"));
            }
        }
        for (v, what) in [
            (params.diurnal_amplitude, "diurnal-amplitude"),
            (params.dependency_probability, "dependency-probability"),
            (params.failure_probability, "failure-probability"),
            (params.transient_probability, "transient-probability"),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{what} must be between 0 and 1, got {v}"));
            }
        }
        let mut symbols = Symbols::default();
        let kind_syms = KINDS.iter().map(|(s, f, _, _)| (symbols.intern(s), symbols.intern(f))).collect();
        let jobset_syms = JOBSETS.iter().map(|(j, _)| symbols.intern(j)).collect();
        let duration = LogNormal::new(params.duration_median.ln(), params.duration_sigma).map_err(|e| e.to_string())?;
        let burst_size = LogNormal::new(params.burst_median.ln(), params.burst_sigma).map_err(|e| e.to_string())?;
        let end_ms = (params.hours * HOUR_MS as f64).round() as i64;
        let name = format!("synth(seed={}, hours={})", params.seed, params.hours);
        Ok(Synth {
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            params,
            symbols,
            kind_syms,
            jobset_syms,
            duration,
            burst_size,
            pending: BTreeMap::new(),
            ready: VecDeque::new(),
            next_hour: 0,
            end_ms,
            next_seq: 0,
            next_step_id: 1,
            next_burst: 0,
            burst_recent: BTreeMap::new(),
            name,
        })
    }

    fn pick(&mut self, weights: impl Iterator<Item = f64> + Clone) -> usize {
        let total: f64 = weights.clone().sum();
        let mut x = self.rng.random::<f64>() * total;
        let mut last = 0;
        for (i, w) in weights.enumerate() {
            last = i;
            if x < w {
                return i;
            }
            x -= w;
        }
        last
    }

    fn new_step(&mut self, at_ms: i64, jobset: usize, burst: Option<u64>) {
        let kind = self.pick(KINDS.iter().map(|k| k.2));
        let seconds = (self.duration.sample(&mut self.rng) * KINDS[kind].3).min(self.params.duration_max);
        let duration_ms = ((seconds * 1000.0).round() as i64).max(1);
        let x: f64 = self.rng.random();
        let outcome = if x < self.params.failure_probability {
            Outcome::Failure
        } else if x < self.params.failure_probability + self.params.transient_probability {
            Outcome::Transient
        } else {
            Outcome::Success
        };
        // Release jobsets get bumped now and then, as on hydra.nixos.org.
        let priority = if JOBSETS[jobset].0.contains("release") { 150 } else { 100 };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert((at_ms, seq), Pending { at_ms, kind, jobset, burst, duration_ms, outcome, priority });
    }

    fn rate_factor(&self, at_ms: i64) -> f64 {
        let hour = (at_ms as f64 / HOUR_MS as f64).rem_euclid(24.0);
        1.0 + self.params.diurnal_amplitude * (std::f64::consts::TAU * (hour - self.params.peak_hour) / 24.0).cos()
    }

    /// Generates every arrival that starts within the next hour.
    fn generate_hour(&mut self) {
        let start = self.next_hour * HOUR_MS;
        let end = (start + HOUR_MS).min(self.end_ms);
        self.next_hour += 1;
        // Background: a Poisson process thinned to the diurnal rate.
        let peak_rate = self.params.background_per_hour * (1.0 + self.params.diurnal_amplitude);
        if peak_rate > 0.0 {
            let gap = Exp::new(peak_rate / HOUR_MS as f64).expect("positive rate");
            let mut t = start as f64;
            loop {
                t += gap.sample(&mut self.rng);
                if t >= end as f64 {
                    break;
                }
                let at = t as i64;
                if self.rng.random::<f64>() * (1.0 + self.params.diurnal_amplitude) < self.rate_factor(at) {
                    let jobset = self.pick(JOBSETS.iter().map(|j| j.1));
                    self.new_step(at, jobset, None);
                }
            }
        }
        // Evaluations: a Poisson process, each releasing a burst.
        let eval_rate = self.params.evaluations_per_day / 24.0;
        if eval_rate > 0.0 {
            let gap = Exp::new(eval_rate / HOUR_MS as f64).expect("positive rate");
            let mut t = start as f64;
            loop {
                t += gap.sample(&mut self.rng);
                if t >= end as f64 {
                    break;
                }
                let burst = self.next_burst;
                self.next_burst += 1;
                let jobset = self.pick(JOBSETS.iter().map(|j| j.1));
                let size =
                    (self.burst_size.sample(&mut self.rng).round() as u64).clamp(1, self.params.burst_max.max(1));
                let spread_ms = self.params.burst_spread * 1000.0;
                for _ in 0..size {
                    let at = (t + self.rng.random::<f64>() * spread_ms) as i64;
                    self.new_step(at.min(self.end_ms.saturating_sub(1)).max(start), jobset, Some(burst));
                }
            }
        }
        // Everything before the next hour's start is final: no later hour
        // generates an arrival before its own start.
        let horizon = if end >= self.end_ms { i64::MAX } else { end };
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= horizon {
                break;
            }
            let p = entry.remove();
            let row = self.emit(p);
            self.ready.push_back(row);
        }
        let now = end;
        let spread = (self.params.burst_spread * 1000.0) as i64;
        self.burst_recent.retain(|_, (last, _)| *last + spread >= now - HOUR_MS);
    }

    fn emit(&mut self, p: Pending) -> StepRow {
        let step_id = self.next_step_id;
        self.next_step_id += 1;
        let mut depends_on = vec![];
        if let Some(burst) = p.burst {
            let dependency_probability = self.params.dependency_probability;
            let (last, recent) = self.burst_recent.entry(burst).or_insert_with(|| (p.at_ms, VecDeque::new()));
            *last = p.at_ms;
            if !recent.is_empty() && self.rng.random::<f64>() < dependency_probability {
                let i = self.rng.random_range(0..recent.len());
                depends_on.push(recent[i]);
                if recent.len() > 1 && self.rng.random::<f64>() < 0.3 {
                    let j = self.rng.random_range(0..recent.len());
                    if j != i {
                        depends_on.push(recent[j]);
                    }
                }
                depends_on.sort_unstable();
            }
            recent.push_back(step_id);
            if recent.len() > 64 {
                recent.pop_front();
            }
        }
        let (system, features) = self.kind_syms[p.kind];
        StepRow {
            step_id,
            submitted_ms: p.at_ms,
            system,
            features,
            jobset: self.jobset_syms[p.jobset],
            build_id: step_id,
            priority: p.priority,
            global_priority: 0,
            depends_on,
            duration_ms: p.duration_ms,
            outcome: p.outcome,
        }
    }
}

impl StepSource for Synth {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        while self.ready.is_empty() {
            if self.next_hour * HOUR_MS >= self.end_ms {
                return None;
            }
            self.generate_hour();
        }
        self.ready.pop_front().map(Ok)
    }
    fn symbols(&self) -> &Symbols {
        &self.symbols
    }
    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(params: SynthParams) -> Vec<StepRow> {
        let mut s = Synth::new(params).unwrap();
        std::iter::from_fn(|| s.next_step()).map(Result::unwrap).collect()
    }

    #[test]
    fn sorted_seeded_and_calibrated() {
        let a = rows(SynthParams::default());
        assert!(a.len() > 5_000, "{}", a.len());
        assert!(a.windows(2).all(|w| w[0].submitted_ms <= w[1].submitted_ms));
        assert!(a.iter().all(|r| r.depends_on.iter().all(|d| *d < r.step_id)));
        let mean = a.iter().map(|r| r.duration_ms as f64).sum::<f64>() / a.len() as f64 / 1000.0;
        assert!((40.0..90.0).contains(&mean), "mean step {mean} s");
        assert_eq!(a, rows(SynthParams::default()));
        assert_ne!(a, rows(SynthParams { seed: 2, ..SynthParams::default() }));
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Synth::new(SynthParams { hours: 0.0, ..SynthParams::default() }).is_err());
        assert!(Synth::new(SynthParams { diurnal_amplitude: 2.0, ..SynthParams::default() }).is_err());
    }
}
