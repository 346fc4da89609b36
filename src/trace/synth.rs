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

use super::stats::TraceStats;
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
    /// Relative background rate for each hour of the day (24 numbers); when
    /// set it replaces the cosine of `diurnal-amplitude` and `peak-hour`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_profile: Option<Vec<f64>>,
    /// The step kinds with their own durations; when set they replace the
    /// built-in mix (whose durations are `duration-median` times a multiplier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<KindParams>>,
    /// The jobsets and their shares; when set they replace the built-in mix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobsets: Option<Vec<JobsetParams>>,
    /// Hours between release evaluations (0: none): a jobset evaluated once
    /// per release, all of whose steps arrive at the same moment.
    pub release_every_hours: f64,
    /// Hour of the trace of the first release evaluation.
    pub release_first_hour: f64,
    /// Steps of each release evaluation.
    pub release_steps: u64,
    /// The jobset of the release evaluations.
    pub release_jobset: String,
    /// Priority of the release steps (`meta.schedulingPriority`; others have 100 or 150).
    pub release_priority: i32,
    /// Give every evaluation's steps an `eval_id` (always, with release evaluations).
    pub eval_ids: bool,
}

const RELEASE_STEPS: u64 = 5000;
const RELEASE_JOBSET: &str = "nixos:release-25.11";
const RELEASE_PRIORITY: i32 = 200;

/// One kind of step: where it runs, what it requires, how long it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KindParams {
    pub system: String,
    /// Required features, comma-joined (empty: none).
    #[serde(default)]
    pub features: String,
    /// Relative share of steps.
    pub share: f64,
    /// Median duration in seconds (lognormal).
    pub duration_median: f64,
    /// Sigma of the logarithm of the duration.
    pub duration_sigma: f64,
}

/// One jobset and its share of evaluations and background steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobsetParams {
    pub name: String,
    pub share: f64,
    #[serde(default = "default_priority")]
    pub priority: i32,
}

fn default_priority() -> i32 {
    100
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
            hourly_profile: None,
            kinds: None,
            jobsets: None,
            release_every_hours: 0.0,
            release_first_hour: 0.0,
            release_steps: RELEASE_STEPS,
            release_jobset: RELEASE_JOBSET.to_string(),
            release_priority: RELEASE_PRIORITY,
            eval_ids: false,
        }
    }
}

impl SynthParams {
    /// Whether the rows carry `eval_id` (so a writer should add the column).
    pub fn writes_eval_ids(&self) -> bool {
        self.eval_ids || self.release_every_hours > 0.0
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

/// A step kind ready to draw from: the built-in kinds share one duration
/// distribution scaled by a multiplier, fitted kinds have their own.
struct Kind {
    system: Sym,
    features: Sym,
    share: f64,
    duration: LogNormal<f64>,
    multiplier: f64,
}

struct Jobset {
    name: Sym,
    share: f64,
    priority: i32,
}

/// Draws an index with probability proportional to its weight.
fn pick(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = rng.random::<f64>() * total;
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

/// A seeded generator of trace rows (see the module documentation).
pub struct Synth {
    params: SynthParams,
    rng: ChaCha8Rng,
    symbols: Symbols,
    kinds: Vec<Kind>,
    jobsets: Vec<Jobset>,
    /// Relative background rate per hour of the day, if not the cosine.
    profile: Option<[f64; 24]>,
    /// The largest relative rate, for thinning the background process.
    peak_factor: f64,
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
    /// The jobset of release evaluations, when there are any.
    release_jobset: Option<usize>,
    /// The next release evaluation (ms), and the step of the schedule.
    next_release_ms: i64,
    release_every_ms: i64,
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
        let shared = LogNormal::new(params.duration_median.ln(), params.duration_sigma).map_err(|e| e.to_string())?;
        let kinds = match &params.kinds {
            None => KINDS
                .iter()
                .map(|&(system, features, share, multiplier)| Kind {
                    system: symbols.intern(system),
                    features: symbols.intern(features),
                    share,
                    duration: shared,
                    multiplier,
                })
                .collect(),
            Some(kinds) => {
                let mut out = vec![];
                for (i, k) in kinds.iter().enumerate() {
                    let what = format!("kinds[{i}]");
                    if k.system.is_empty() || k.system.contains(char::is_whitespace) || k.system.contains(':') {
                        return Err(format!("{what}: `{}` is not a system", k.system));
                    }
                    if !(k.share.is_finite() && k.share >= 0.0) {
                        return Err(format!("{what}: share must be zero or more, got {}", k.share));
                    }
                    positive(k.duration_median, &format!("{what}.duration-median"))?;
                    let mut features: Vec<&str> =
                        k.features.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
                    features.sort_unstable();
                    let duration =
                        LogNormal::new(k.duration_median.ln(), k.duration_sigma).map_err(|e| format!("{what}: {e}"))?;
                    out.push(Kind {
                        system: symbols.intern(&k.system),
                        features: symbols.intern(&features.join(",")),
                        share: k.share,
                        duration,
                        multiplier: 1.0,
                    });
                }
                out
            }
        };
        let jobsets: Vec<Jobset> = match &params.jobsets {
            None => JOBSETS
                .iter()
                .map(|&(name, share)| Jobset {
                    name: symbols.intern(name),
                    share,
                    // Release jobsets get bumped now and then, as on hydra.nixos.org.
                    priority: if name.contains("release") { 150 } else { 100 },
                })
                .collect(),
            Some(jobsets) => {
                for (i, j) in jobsets.iter().enumerate() {
                    if !(j.share.is_finite() && j.share >= 0.0) {
                        return Err(format!("jobsets[{i}]: share must be zero or more, got {}", j.share));
                    }
                }
                jobsets
                    .iter()
                    .map(|j| Jobset { name: symbols.intern(&j.name), share: j.share, priority: j.priority })
                    .collect()
            }
        };
        if kinds.iter().map(|k| k.share).sum::<f64>() <= 0.0 {
            return Err("kinds: the shares add up to nothing".into());
        }
        if jobsets.iter().map(|j| j.share).sum::<f64>() <= 0.0 {
            return Err("jobsets: the shares add up to nothing".into());
        }
        let profile = match &params.hourly_profile {
            None => None,
            Some(p) => {
                let Ok(p): Result<[f64; 24], _> = p.as_slice().try_into() else {
                    return Err(format!("hourly-profile: needs 24 numbers, got {}", p.len()));
                };
                if p.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                    return Err("hourly-profile: every number must be zero or more".into());
                }
                let mean = p.iter().sum::<f64>() / 24.0;
                if mean <= 0.0 {
                    return Err("hourly-profile: all zero".into());
                }
                Some(p.map(|v| v / mean))
            }
        };
        let peak_factor = match &profile {
            None => 1.0 + params.diurnal_amplitude,
            Some(p) => p.iter().copied().fold(0.0, f64::max),
        };
        for (v, what) in
            [(params.release_every_hours, "release-every-hours"), (params.release_first_hour, "release-first-hour")]
        {
            if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                return Err(format!("{what} must be from 0 to 1000000 hours, got {v}"));
            }
        }
        if params.release_every_hours > 0.0 && !(1..=1_000_000).contains(&params.release_steps) {
            return Err(format!("release-steps must be from 1 to 1000000, got {}", params.release_steps));
        }
        let mut jobsets = jobsets;
        let release_jobset = (params.release_every_hours > 0.0).then(|| {
            let name = symbols.intern(&params.release_jobset);
            match jobsets.iter().position(|j| j.name == name) {
                Some(i) => i,
                None => {
                    // Evaluated only for releases: no share of the other steps.
                    jobsets.push(Jobset { name, share: 0.0, priority: params.release_priority });
                    jobsets.len() - 1
                }
            }
        });
        let release_every_ms = (params.release_every_hours * HOUR_MS as f64).round() as i64;
        let next_release_ms = (params.release_first_hour * HOUR_MS as f64).round() as i64;
        let burst_size = LogNormal::new(params.burst_median.ln(), params.burst_sigma).map_err(|e| e.to_string())?;
        let end_ms = (params.hours * HOUR_MS as f64).round() as i64;
        let name = format!("synth(seed={}, hours={})", params.seed, params.hours);
        Ok(Synth {
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            params,
            symbols,
            kinds,
            jobsets,
            profile,
            peak_factor,
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
            release_jobset,
            next_release_ms,
            release_every_ms,
        })
    }

    fn new_step(&mut self, at_ms: i64, jobset: usize, burst: Option<u64>) {
        let priority = self.jobsets[jobset].priority;
        self.new_step_with_priority(at_ms, jobset, burst, priority);
    }

    fn new_step_with_priority(&mut self, at_ms: i64, jobset: usize, burst: Option<u64>, priority: i32) {
        let kind = pick(&mut self.rng, self.kinds.iter().map(|k| k.share));
        let k = &self.kinds[kind];
        let seconds = (k.duration.sample(&mut self.rng) * k.multiplier).min(self.params.duration_max);
        let duration_ms = ((seconds * 1000.0).round() as i64).max(1);
        let x: f64 = self.rng.random();
        let outcome = if x < self.params.failure_probability {
            Outcome::Failure
        } else if x < self.params.failure_probability + self.params.transient_probability {
            Outcome::Transient
        } else {
            Outcome::Success
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert((at_ms, seq), Pending { at_ms, kind, jobset, burst, duration_ms, outcome, priority });
    }

    fn rate_factor(&self, at_ms: i64) -> f64 {
        let hour = (at_ms as f64 / HOUR_MS as f64).rem_euclid(24.0);
        if let Some(p) = &self.profile {
            return p[(hour as usize).min(23)];
        }
        1.0 + self.params.diurnal_amplitude * (std::f64::consts::TAU * (hour - self.params.peak_hour) / 24.0).cos()
    }

    /// Generates every arrival that starts within the next hour.
    fn generate_hour(&mut self) {
        let start = self.next_hour * HOUR_MS;
        let end = (start + HOUR_MS).min(self.end_ms);
        self.next_hour += 1;
        // Background: a Poisson process thinned to the diurnal rate.
        let peak_rate = self.params.background_per_hour * self.peak_factor;
        if peak_rate > 0.0 {
            let gap = Exp::new(peak_rate / HOUR_MS as f64).expect("positive rate");
            let mut t = start as f64;
            loop {
                t += gap.sample(&mut self.rng);
                if t >= end as f64 {
                    break;
                }
                let at = t as i64;
                if self.rng.random::<f64>() * self.peak_factor < self.rate_factor(at) {
                    let jobset = pick(&mut self.rng, self.jobsets.iter().map(|j| j.share));
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
                let jobset = pick(&mut self.rng, self.jobsets.iter().map(|j| j.share));
                let size =
                    (self.burst_size.sample(&mut self.rng).round() as u64).clamp(1, self.params.burst_max.max(1));
                let spread_ms = self.params.burst_spread * 1000.0;
                for _ in 0..size {
                    let at = (t + self.rng.random::<f64>() * spread_ms) as i64;
                    self.new_step(at.min(self.end_ms.saturating_sub(1)).max(start), jobset, Some(burst));
                }
            }
        }
        // Release evaluations: on their schedule, each one burst of
        // high-priority steps arriving together.
        if let Some(jobset) = self.release_jobset {
            while self.next_release_ms < end && self.next_release_ms >= start {
                let at = self.next_release_ms;
                let burst = self.next_burst;
                self.next_burst += 1;
                for _ in 0..self.params.release_steps {
                    self.new_step_with_priority(at, jobset, Some(burst), self.params.release_priority);
                }
                self.next_release_ms += self.release_every_ms;
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
        let mut depends_on = super::DependsOn::new();
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
        let (system, features) = (self.kinds[p.kind].system, self.kinds[p.kind].features);
        StepRow {
            step_id,
            submitted_ms: p.at_ms,
            system,
            features,
            jobset: self.jobsets[p.jobset].name,
            build_id: step_id,
            priority: p.priority,
            global_priority: 0,
            depends_on,
            duration_ms: p.duration_ms,
            outcome: p.outcome,
            output_size: None,
            eval_id: p.burst.filter(|_| self.params.writes_eval_ids()).map(|b| b + 1),
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

/// Rounds to four significant digits, so fitted parameters print legibly.
fn round4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// Median and log-spread of a lognormal that has this trace's median and
/// 90th percentile: robust to the many zero-second steps of real histories.
fn lognormal_from(p50: f64, p90: f64, floor: f64) -> (f64, f64) {
    let median = p50.max(floor);
    let sigma = if p90 > median { (p90 / median).ln() / 1.281_551_565_5 } else { 0.0 };
    (round4(median), round4(sigma))
}

/// Fits the generator to a trace's figures (docs/trace-format.md,
/// "Fitting"): background rate and its hourly profile, evaluations per day,
/// burst sizes and spread, a lognormal duration per system and feature set,
/// the jobset mix with each jobset's usual priority, outcomes and how often
/// burst steps depend on earlier ones. `seed` and `hours` are the new trace's.
pub fn fit(stats: &TraceStats, seed: u64, hours: f64) -> SynthParams {
    let d = SynthParams::default();
    let b = &stats.bursts;
    let profile_mean = stats.background_rate_by_hour.iter().sum::<f64>() / 24.0;
    // The cosine's amplitude and peak from the first harmonic of the
    // hourly profile (shown for reference; the profile itself is used).
    let (mut re, mut im) = (0.0, 0.0);
    for (h, r) in stats.background_rate_by_hour.iter().enumerate() {
        let angle = std::f64::consts::TAU * (h as f64 + 0.5) / 24.0;
        re += r * angle.cos();
        im += r * angle.sin();
    }
    let (amplitude, peak) = if profile_mean > 0.0 {
        let a = 2.0 * (re * re + im * im).sqrt() / (24.0 * profile_mean);
        (round4(a.min(1.0)), round4((im.atan2(re) / std::f64::consts::TAU * 24.0).rem_euclid(24.0)))
    } else {
        (0.0, d.peak_hour)
    };
    let (burst_median, burst_sigma) =
        if b.bursts > 0 { lognormal_from(b.size.p50, b.size.p90, 1.0) } else { (d.burst_median, d.burst_sigma) };
    let kinds: Vec<KindParams> = stats
        .kinds
        .iter()
        .map(|k| {
            let (duration_median, duration_sigma) = lognormal_from(k.duration.p50, k.duration.p90, 0.5);
            KindParams {
                system: k.system.clone(),
                features: k.features.clone(),
                share: round4(k.share),
                duration_median,
                duration_sigma,
            }
        })
        .collect();
    let jobsets: Vec<JobsetParams> = stats
        .jobsets
        .iter()
        .map(|j| JobsetParams { name: j.jobset.clone(), share: round4(j.share), priority: j.usual_priority })
        .collect();
    let outcome = |name: &str| {
        let n = stats.outcomes.get(name).copied().unwrap_or(0);
        if stats.steps == 0 { 0.0 } else { round4(n as f64 / stats.steps as f64) }
    };
    let longest = stats.kinds.iter().map(|k| k.duration.max).fold(0.0, f64::max);
    SynthParams {
        seed,
        hours,
        background_per_hour: round4(b.background_per_hour),
        diurnal_amplitude: amplitude,
        peak_hour: peak,
        evaluations_per_day: round4(b.per_day),
        burst_median,
        burst_sigma,
        burst_max: if b.bursts > 0 { b.size.max as u64 } else { d.burst_max },
        burst_spread: if b.bursts > 0 { round4(b.span.p50) } else { d.burst_spread },
        duration_median: d.duration_median,
        duration_sigma: d.duration_sigma,
        duration_max: if longest > 0.0 { round4(longest) } else { d.duration_max },
        dependency_probability: if b.steps_in_bursts > 0 {
            round4(b.burst_steps_with_dependencies as f64 / b.steps_in_bursts as f64)
        } else {
            0.0
        },
        failure_probability: outcome("failure"),
        transient_probability: outcome("transient"),
        hourly_profile: (profile_mean > 0.0)
            .then(|| stats.background_rate_by_hour.iter().map(|r| round4(r / profile_mean)).collect()),
        kinds: (!kinds.is_empty()).then_some(kinds),
        jobsets: (!jobsets.is_empty()).then_some(jobsets),
        ..SynthParams::default()
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
