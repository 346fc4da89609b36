//! Cost and latency metrics with the definitions of DESIGN.md section 7, in
//! one place so that simulation summaries and production reports compute
//! them identically: nearest-rank percentiles over started steps, wait =
//! first attempt's start minus runnable time, dollars from billed time.
//!
//! This module only computes and renders numbers. It does not simulate,
//! observe a fleet or decide anything; callers feed it what they measured.

pub mod evaluations;

use crate::config::{Quirks, Runner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The `p`-th percentile (0 < p <= 100) of sorted values by the nearest-rank
/// method: the smallest value with at least p% of the values at or below it.
pub fn nearest_rank(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Dollars for `billed_ms` at `price_per_hour`.
pub fn dollars(billed_ms: i64, price_per_hour: f64) -> f64 {
    billed_ms as f64 / 3_600_000.0 * price_per_hour
}

/// Rounds for stable, readable output (JSON and tables).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wait statistics in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitStats {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles of unsorted values, for ascending `ps`, by
/// successive selection (linear time; the values are reordered, not sorted).
pub fn nearest_ranks(values: &mut [i64], ps: &[f64]) -> Vec<i64> {
    let n = values.len();
    let mut out = Vec::with_capacity(ps.len());
    if n == 0 {
        return out;
    }
    let mut lo = 0;
    for &p in ps {
        let idx = (((p / 100.0) * n as f64).ceil() as usize).clamp(1, n) - 1;
        if idx < lo {
            // Same rank as the previous percentile.
            out.push(out.last().copied().unwrap_or(values[idx]));
            continue;
        }
        let (_, v, _) = values[lo..].select_nth_unstable(idx - lo);
        out.push(*v);
        lo = idx + 1;
    }
    out
}

impl WaitStats {
    /// Statistics of waits counted in a histogram (see [`WaitHistogram`]).
    pub fn from_histogram(h: &WaitHistogram) -> WaitStats {
        if h.count == 0 {
            return WaitStats::default();
        }
        let rank = |p: f64| (((p / 100.0) * h.count as f64).ceil() as u64).clamp(1, h.count);
        let p = h.ranks(&[rank(50.0), rank(90.0), rank(95.0), rank(99.0)]);
        let s = |ms: i64| round3(ms as f64 / 1000.0);
        WaitStats {
            count: h.count,
            mean: round3(h.sum as f64 / h.count as f64 / 1000.0),
            p50: s(p[0]),
            p90: s(p[1]),
            p95: s(p[2]),
            p99: s(p[3]),
            max: s(h.max),
        }
    }

    /// Statistics of waits in milliseconds (reordered in place).
    pub fn from_millis(waits: &mut [i64]) -> WaitStats {
        if waits.is_empty() {
            return WaitStats::default();
        }
        let sum: i128 = waits.iter().map(|&w| i128::from(w)).sum();
        let p = nearest_ranks(waits, &[50.0, 90.0, 95.0, 99.0, 100.0]);
        let s = |ms: i64| round3(ms as f64 / 1000.0);
        WaitStats {
            count: waits.len() as u64,
            mean: round3(sum as f64 / waits.len() as f64 / 1000.0),
            p50: s(p[0]),
            p90: s(p[1]),
            p95: s(p[2]),
            p99: s(p[3]),
            max: s(p[4]),
        }
    }
}

/// Values of one group held exactly, across all groups of a recorder,
/// before the largest groups are folded into histograms (8 MB of waits).
pub const EXACT_WAITS: usize = 1 << 20;

/// Below this, a histogram bucket is one millisecond wide.
const LINEAR_BELOW: u64 = 1 << 11;
/// Buckets per power of two above [`LINEAR_BELOW`]: each is at most 2^-10
/// of its values wide, so its midpoint is within 2^-11 (0.05%) of them.
const SUB_BUCKETS: u64 = 1 << 10;

/// Counts of waits in log-linear buckets: exact to the millisecond below
/// 2.048 s, and within 0.05% above (the bucket's midpoint stands for its
/// values). Memory: 8 KB plus 4 KB per power of two of milliseconds that
/// some wait reached, whatever the number of waits.
#[derive(Debug, Clone, Default)]
pub struct WaitHistogram {
    linear: Vec<u32>,
    octaves: Vec<Option<Box<[u32]>>>,
    count: u64,
    sum: i128,
    min: i64,
    max: i64,
}

impl WaitHistogram {
    fn bucket(v: u64) -> (usize, usize) {
        let bits = 63 - v.leading_zeros() as u64;
        let shift = bits - 10;
        ((bits - 11) as usize, ((v >> shift) - SUB_BUCKETS) as usize)
    }

    /// The midpoint of a bucket of the octave `o`.
    fn representative(octave: usize, sub: usize) -> i64 {
        let shift = octave as u64 + 1;
        let lo = (SUB_BUCKETS + sub as u64) << shift;
        (lo + ((1u64 << shift) - 1) / 2) as i64
    }

    #[inline(always)]
    pub fn record(&mut self, wait_ms: i64) {
        let v = wait_ms.max(0) as u64;
        if self.count == 0 {
            (self.min, self.max) = (wait_ms, wait_ms);
        }
        self.min = self.min.min(wait_ms);
        self.max = self.max.max(wait_ms);
        self.count += 1;
        self.sum += i128::from(wait_ms);
        if v < LINEAR_BELOW {
            if self.linear.is_empty() {
                self.linear = vec![0; LINEAR_BELOW as usize];
            }
            self.linear[v as usize] = self.linear[v as usize].saturating_add(1);
            return;
        }
        let (o, sub) = Self::bucket(v);
        if self.octaves.len() <= o {
            self.octaves.resize(o + 1, None);
        }
        let block = self.octaves[o].get_or_insert_with(|| vec![0; SUB_BUCKETS as usize].into_boxed_slice());
        block[sub] = block[sub].saturating_add(1);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds another histogram's waits: the result is the histogram that
    /// recording both sets of waits here would give.
    fn merge(&mut self, other: &WaitHistogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (other.min, other.max);
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        if !other.linear.is_empty() {
            if self.linear.is_empty() {
                self.linear = vec![0; LINEAR_BELOW as usize];
            }
            for (mine, &theirs) in self.linear.iter_mut().zip(&other.linear) {
                *mine = mine.saturating_add(theirs);
            }
        }
        if self.octaves.len() < other.octaves.len() {
            self.octaves.resize(other.octaves.len(), None);
        }
        for (mine, theirs) in self.octaves.iter_mut().zip(&other.octaves) {
            let Some(theirs) = theirs else { continue };
            let block = mine.get_or_insert_with(|| vec![0; SUB_BUCKETS as usize].into_boxed_slice());
            for (m, &t) in block.iter_mut().zip(theirs.iter()) {
                *m = m.saturating_add(t);
            }
        }
    }

    /// The distribution as `points + 1` steps of its cumulative curve: the
    /// nearest-rank wait (ms) at each of `0, 1/points, ..., 1` of the count
    /// (the first is the smallest wait). Empty when nothing was recorded.
    pub fn cdf(&self, points: usize) -> Vec<(i64, f64)> {
        if self.count == 0 || points == 0 {
            return vec![];
        }
        let fractions: Vec<f64> = (0..=points).map(|i| i as f64 / points as f64).collect();
        let ranks: Vec<u64> =
            fractions.iter().map(|f| ((f * self.count as f64).ceil() as u64).clamp(1, self.count)).collect();
        self.ranks(&ranks).into_iter().zip(fractions).collect()
    }

    /// The nearest-rank values for ascending ranks (1-based), clamped to the
    /// exact smallest and largest waits.
    fn ranks(&self, ranks: &[u64]) -> Vec<i64> {
        let mut out = Vec::with_capacity(ranks.len());
        let mut seen = 0u64;
        let mut next = ranks.iter().peekable();
        let mut emit = |count: u32, value: i64, out: &mut Vec<i64>| {
            seen += u64::from(count);
            while next.peek().is_some_and(|&&r| r <= seen) {
                next.next();
                out.push(value.clamp(self.min, self.max));
            }
        };
        for (v, &c) in self.linear.iter().enumerate() {
            if c > 0 {
                emit(c, v as i64, &mut out);
            }
        }
        for (o, block) in self.octaves.iter().enumerate() {
            let Some(block) = block else { continue };
            for (sub, &c) in block.iter().enumerate() {
                if c > 0 {
                    emit(c, Self::representative(o, sub), &mut out);
                }
            }
        }
        while out.len() < ranks.len() {
            out.push(self.max);
        }
        out
    }
}

/// One group's waits: every value while the recorder's budget allows, then
/// a histogram.
#[derive(Debug, Clone)]
enum Waits {
    Exact(Vec<i64>),
    Histogram(WaitHistogram),
}

impl Default for Waits {
    fn default() -> Waits {
        Waits::Exact(vec![])
    }
}

impl Waits {
    fn exact_len(&self) -> usize {
        match self {
            Waits::Exact(v) => v.len(),
            Waits::Histogram(_) => 0,
        }
    }

    /// Records a wait; whether it is held exactly.
    #[inline(always)]
    fn record(&mut self, wait_ms: i64) -> bool {
        match self {
            Waits::Exact(v) => {
                v.push(wait_ms);
                true
            }
            Waits::Histogram(h) => {
                h.record(wait_ms);
                false
            }
        }
    }

    fn fold(&mut self) {
        if let Waits::Exact(v) = self {
            let mut h = WaitHistogram::default();
            v.iter().for_each(|&w| h.record(w));
            *self = Waits::Histogram(h);
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Waits::Exact(v) => v.is_empty(),
            Waits::Histogram(h) => h.count == 0,
        }
    }

    fn stats(&mut self) -> WaitStats {
        match self {
            Waits::Exact(v) => WaitStats::from_millis(v),
            Waits::Histogram(h) => WaitStats::from_histogram(h),
        }
    }
}

/// Collects per-step waits with their machine type and jobset, to report
/// them overall and per group. Groups are small integers named at the end.
///
/// Percentiles are exact (nearest rank, to the millisecond) as long as the
/// values of all groups fit in [`EXACT_WAITS`]; past that, the largest
/// groups are folded, one by one, into [`WaitHistogram`]s, whose
/// percentiles are within 0.05% of the exact ones (exact below 2.048 s; the
/// mean, count and maximum stay exact). So memory does not grow with the
/// trace: at most 8 MB of exact waits plus a bounded histogram per group.
///
/// The overall group keeps no values of its own: every step has one type,
/// so its values are the per-type groups' together, assembled at the end.
/// It is the largest group, so it is the first folded, and until then no
/// group is: while it is exact, so are all the per-type groups. The budget
/// still weighs it as if it held its values, so folding happens exactly as
/// if it did.
#[derive(Debug, Clone, Default)]
pub struct WaitRecorder {
    /// The overall group was folded; until then it counts every wait as
    /// held exactly (see [`WaitRecorder::overall_exact`]).
    overall_folded: bool,
    per_type: Vec<Waits>,
    per_jobset: Vec<Waits>,
    /// Values counted against [`EXACT_WAITS`]: three per step, whether or
    /// not its groups are still exact, less the values of folded groups.
    exact: usize,
    /// Values actually held exactly, over all groups: when none is, there
    /// is nothing to fold, and no group needs to be looked at.
    held: usize,
    /// Steps whose first attempt started on a machine that was requested
    /// after the step became runnable.
    waited_for_boot: u64,
    count: u64,
}

impl WaitRecorder {
    pub fn record(&mut self, wait_ms: i64, machine_type: u32, jobset: u32, waited_for_boot: bool) {
        self.count += 1;
        if !self.overall_folded {
            self.held += 1;
        }
        self.held += Self::record_in(&mut self.per_type, machine_type, wait_ms);
        self.held += Self::record_in(&mut self.per_jobset, jobset, wait_ms);
        self.waited_for_boot += u64::from(waited_for_boot);
        self.exact += 3;
        if self.exact > EXACT_WAITS && self.held > 0 {
            self.fold_largest();
        }
    }

    /// Records a wait in group `g`, which is made if new; 1 if it is held exactly.
    #[inline(always)]
    fn record_in(groups: &mut Vec<Waits>, g: u32, wait_ms: i64) -> usize {
        let g = g as usize;
        if groups.len() <= g {
            Self::add_groups(groups, g);
        }
        usize::from(groups[g].record(wait_ms))
    }

    #[cold]
    fn add_groups(groups: &mut Vec<Waits>, g: usize) {
        groups.resize_with(g + 1, Waits::default);
    }

    /// Folds the group holding the most exact values (the first such, in
    /// the order overall, types, jobsets) into a histogram.
    fn fold_largest(&mut self) {
        while self.exact > EXACT_WAITS {
            // No group holds more than the overall one: it goes first, and
            // folding it moves no value (see the type's documentation).
            let overall = self.overall_exact();
            if overall > 0 {
                self.exact -= overall;
                self.held -= overall;
                self.overall_folded = true;
                continue;
            }
            let largest =
                self.per_type.iter_mut().chain(self.per_jobset.iter_mut()).rev().max_by_key(|w| w.exact_len());
            let Some(group) = largest.filter(|w| w.exact_len() > 0) else { return };
            self.exact -= group.exact_len();
            self.held -= group.exact_len();
            group.fold();
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values the overall group counts as held exactly: every wait
    /// until it is folded, none after.
    fn overall_exact(&self) -> usize {
        if self.overall_folded { 0 } else { self.count as usize }
    }

    /// The overall group's statistics, from the per-type groups: their
    /// values together while it is exact (so are they, then), else one
    /// histogram of all of them.
    fn overall_stats(&self) -> WaitStats {
        if !self.overall_folded {
            let mut all: Vec<i64> = Vec::with_capacity(self.count as usize);
            for group in &self.per_type {
                match group {
                    Waits::Exact(v) => all.extend_from_slice(v),
                    Waits::Histogram(_) => unreachable!("a type's group folded before the overall one"),
                }
            }
            return WaitStats::from_millis(&mut all);
        }
        let mut h = WaitHistogram::default();
        for group in &self.per_type {
            match group {
                Waits::Exact(v) => v.iter().for_each(|&w| h.record(w)),
                Waits::Histogram(g) => h.merge(g),
            }
        }
        WaitStats::from_histogram(&h)
    }

    /// Latency overall and per group, groups named by the given functions
    /// (reorders the recorded waits).
    pub fn latency(&mut self, type_name: impl Fn(u32) -> String, jobset_name: impl Fn(u32) -> String) -> Latency {
        let fraction = if self.count == 0 { 0.0 } else { self.waited_for_boot as f64 / self.count as f64 };
        let groups = |groups: &mut Vec<Waits>, name: &dyn Fn(u32) -> String| -> BTreeMap<String, WaitStats> {
            groups
                .iter_mut()
                .enumerate()
                .filter(|(_, v)| !v.is_empty())
                .map(|(g, v)| (name(g as u32), v.stats()))
                .collect()
        };
        Latency {
            overall: self.overall_stats(),
            per_machine_type: groups(&mut self.per_type, &type_name),
            per_jobset: groups(&mut self.per_jobset, &jobset_name),
            waited_for_boot_fraction: round3(fraction),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub overall: WaitStats,
    pub per_machine_type: BTreeMap<String, WaitStats>,
    pub per_jobset: BTreeMap<String, WaitStats>,
    pub waited_for_boot_fraction: f64,
}

/// Cost of the provisioned fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    pub dollars: f64,
    /// Of which storage of stopped instances.
    pub storage_dollars: f64,
    pub billed_machine_hours: f64,
    /// Time machines had at least one job running.
    pub busy_machine_hours: f64,
    /// Billed but not busy (waste, billing rounding included).
    pub idle_machine_hours: f64,
    /// Job-hours run on provisioned machines.
    pub busy_job_hours: f64,
    /// Job-hours over billed slot-hours (billed machine-hours times maxJobs).
    pub utilisation: f64,
    /// The same bill split per provisioned machine type (canonical key).
    pub per_machine_type: BTreeMap<String, TypeCost>,
}

/// One machine type's share of the bill, split by what the money bought:
/// time with at least one job running, time billed without a job (idle but
/// paid, billing rounding included), and the disks of stopped instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeCost {
    /// Instances of the type the run created.
    pub instances: u64,
    pub dollars: f64,
    pub busy_dollars: f64,
    pub idle_dollars: f64,
    pub storage_dollars: f64,
    pub billed_machine_hours: f64,
    pub busy_machine_hours: f64,
    pub idle_machine_hours: f64,
}

/// What a run replayed, to tell whether two runs can be compared: digests of
/// the trace rows replayed and of the scenario's world (everything but the
/// provisioner configuration, the interval, the name and the seed).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inputs {
    pub trace_digest: String,
    pub world_digest: String,
    /// The window of the trace replayed, e.g. `1d..2d`; `None`: all of it.
    pub window: Option<String>,
}

/// Creates, starts and the like, and what they cost the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stability {
    pub creates: u64,
    pub starts: u64,
    pub stops: u64,
    /// Stops NixOps did not carry out: the original's `stop` waited for a
    /// confirmation nobody gave, so the machine kept running.
    pub stops_refused: u64,
    pub destroys: u64,
    pub deploys: u64,
    pub failed_deploys: u64,
    pub spot_interruptions: u64,
    pub aborted_steps: u64,
    pub retries: u64,
    /// The Rust runner's builders whose service was stopped before their
    /// machine went (each aborting whatever it ran at that moment).
    #[serde(skip_serializing_if = "is_zero")]
    pub builder_service_stops: u64,
    /// Idle builders spared because the runner gave them a step between the
    /// status read and the service stop (the re-check caught the race).
    #[serde(skip_serializing_if = "is_zero")]
    pub retire_race_caught: u64,
    /// The Rust runner's builders that went silent.
    #[serde(skip_serializing_if = "is_zero")]
    pub builders_silent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Step counts; every step of the trace is in exactly one final bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepCounts {
    pub total: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Aborted or failed on every one of its attempts.
    pub gave_up: u64,
    /// Started but still running when the horizon ended the run.
    pub running_at_end: u64,
    /// Started, aborted, and waiting for a retry when the horizon ended the run.
    pub retrying_at_end: u64,
    /// Attempts started; each ends as finished, aborted or running at the end.
    pub attempts: u64,
    pub attempts_finished: u64,
    pub never_started: BTreeMap<String, u64>,
}

/// Everything a run reports, and what produced it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub trace: String,
    pub config: String,
    /// The engine's rules: the original's, defects included, or the fixed ones.
    pub quirks: Quirks,
    /// The queue runner simulated; named only when it is the Rust one, so
    /// the C++ runner's summaries read as they always did.
    #[serde(skip_serializing_if = "Runner::is_cpp")]
    pub runner: Runner,
    pub seed: u64,
    pub program_version: String,
    /// Digests of what was replayed (see [`Inputs`]).
    pub inputs: Inputs,
    /// Seconds of simulated time covered.
    pub simulated_seconds: f64,
    pub passes: u64,
    pub steps: StepCounts,
    pub cost: Cost,
    pub machines_alive_at_end: u64,
    pub latency: Latency,
    pub stability: Stability,
    /// The server's local work, when the scenario models it (`[server]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFigures>,
    /// Completion time of evaluations (queued to last build done), per
    /// jobset, when the trace names evaluations (`eval_id`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub evaluations: BTreeMap<String, EvaluationStats>,
}

/// What the server's local worker threads did (see `sim/server.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerFigures {
    pub local_workers: u32,
    /// Busy thread-time over threads times the run's length.
    pub utilisation: f64,
    /// Seconds a piece of local work waited for a thread.
    pub worker_wait: WaitStats,
    /// Steps built whose outputs were not yet uploaded: most at once, and on average over time.
    pub upload_backlog_max: u64,
    pub upload_backlog_mean: f64,
    pub copies_to_builders: u64,
    pub uploads: u64,
    /// Compressed gigabytes sent to the binary cache.
    pub uploaded_gb: f64,
}

/// One jobset's evaluations: how long each took from its first step queued
/// to its last build done, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvaluationStats {
    /// Evaluations whose every step had left the queue by the end of the run.
    pub completed: u64,
    /// Evaluations with a step still queued, building or retrying at the end.
    pub unfinished: u64,
    pub completion: WaitStats,
}

impl Summary {
    /// The summary as a plain-text table.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "scenario         {}", self.scenario);
        let _ = writeln!(o, "trace            {}", self.trace);
        let _ = writeln!(o, "config           {}", self.config);
        let _ = writeln!(o, "quirks           {}", quirks_text(self.quirks));
        if !self.runner.is_cpp() {
            let _ = writeln!(o, "runner           rust (Hydra's Rust queue runner: no machines file, no drain)");
        }
        let _ = writeln!(o, "seed             {}", self.seed);
        if let Some(w) = &self.inputs.window {
            let _ = writeln!(o, "window           {w} of the trace");
        }
        let _ = writeln!(o, "version          hydra-provisioner {}", self.program_version);
        let _ = writeln!(
            o,
            "simulated        {:.1} h, {} provisioner passes",
            self.simulated_seconds / 3600.0,
            self.passes
        );
        let c = &self.cost;
        let _ = writeln!(o, "\ncost             ${:.2} (storage ${:.2})", c.dollars, c.storage_dollars);
        let _ = writeln!(
            o,
            "machine-hours    billed {:.2}, busy {:.2}, idle {:.2}; utilisation {:.1}%",
            c.billed_machine_hours,
            c.busy_machine_hours,
            c.idle_machine_hours,
            c.utilisation * 100.0
        );
        for (t, tc) in &c.per_machine_type {
            let _ = writeln!(
                o,
                "  type {t:<30} ${:.2}: busy ${:.2}, idle ${:.2}, storage ${:.2}; {} instance(s)",
                tc.dollars, tc.busy_dollars, tc.idle_dollars, tc.storage_dollars, tc.instances
            );
        }
        let _ = writeln!(o, "alive at end     {}", self.machines_alive_at_end);
        let s = &self.steps;
        let _ = writeln!(
            o,
            "\nsteps            {} total, {} started, {} succeeded, {} failed, {} gave up, {} running at end",
            s.total, s.started, s.succeeded, s.failed, s.gave_up, s.running_at_end
        );
        for (reason, n) in &s.never_started {
            let _ = writeln!(o, "never started    {n} ({reason})");
        }
        let _ = writeln!(
            o,
            "\nwait (s)                                 count      mean       p50       p90       p95       p99       max"
        );
        let row = |o: &mut String, name: &str, w: &WaitStats| {
            let _ = writeln!(
                o,
                "{:<36} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name, w.count, w.mean, w.p50, w.p90, w.p95, w.p99, w.max
            );
        };
        row(&mut o, "all", &self.latency.overall);
        for (k, w) in &self.latency.per_machine_type {
            row(&mut o, &format!("type {k}"), w);
        }
        for (k, w) in &self.latency.per_jobset {
            row(&mut o, &format!("jobset {k}"), w);
        }
        let _ = writeln!(o, "waited for a boot {:.1}%", self.latency.waited_for_boot_fraction * 100.0);
        if !self.evaluations.is_empty() {
            let _ = writeln!(
                o,
                "\nevaluation completion (s)      done unfinished      mean       p50       p90       p95       max"
            );
            for (jobset, e) in &self.evaluations {
                let c = &e.completion;
                let _ = writeln!(
                    o,
                    "{:<30} {:>5} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    jobset, e.completed, e.unfinished, c.mean, c.p50, c.p90, c.p95, c.max
                );
            }
        }
        if let Some(sv) = &self.server {
            let _ = writeln!(
                o,
                "\nserver           {} local workers, utilisation {:.1}%; waits for a worker: mean {:.1} s, p95 {:.1} s, max {:.1} s",
                sv.local_workers,
                sv.utilisation * 100.0,
                sv.worker_wait.mean,
                sv.worker_wait.p95,
                sv.worker_wait.max
            );
            let _ = writeln!(
                o,
                "upload backlog   max {}, mean {:.1} steps; {} uploads, {:.3} GB",
                sv.upload_backlog_max, sv.upload_backlog_mean, sv.uploads, sv.uploaded_gb
            );
        }
        let st = &self.stability;
        let _ = writeln!(
            o,
            "\nmachines         {} creates, {} starts, {} stops, {} destroys, {} spot interruptions",
            st.creates, st.starts, st.stops, st.destroys, st.spot_interruptions
        );
        let _ = writeln!(o, "deploys          {}, {} failed", st.deploys, st.failed_deploys);
        if st.stops_refused > 0 {
            let _ = writeln!(
                o,
                "stops refused    {} (NixOps asked for a confirmation nobody gave; the machines kept running)",
                st.stops_refused
            );
        }
        let _ = writeln!(o, "steps            {} aborted, {} retries", st.aborted_steps, st.retries);
        if st.builder_service_stops + st.retire_race_caught + st.builders_silent > 0 {
            let _ = writeln!(
                o,
                "builders         {} services stopped, {} spared by the idle re-check, {} went silent",
                st.builder_service_stops, st.retire_race_caught, st.builders_silent
            );
        }
        o
    }
}

/// The quirks mode as the summary table names it.
pub fn quirks_text(quirks: Quirks) -> &'static str {
    match quirks {
        Quirks::Original => "original (the original provisioner's rules, defects included)",
        Quirks::Fixed => "fixed (the original's known defects fixed)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [15, 20, 35, 40, 50];
        assert_eq!(nearest_rank(&v, 30.0), Some(20));
        assert_eq!(nearest_rank(&v, 40.0), Some(20));
        assert_eq!(nearest_rank(&v, 50.0), Some(35));
        assert_eq!(nearest_rank(&v, 100.0), Some(50));
        assert_eq!(nearest_rank(&v, 0.0), Some(15));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn selection_agrees_with_sorting() {
        let mut v: Vec<i64> = (0..1000).map(|i| (i * 7919) % 1009).collect();
        let mut sorted = v.clone();
        sorted.sort_unstable();
        let ps = [0.0, 50.0, 50.0, 90.0, 95.0, 99.0, 100.0];
        let expect: Vec<i64> = ps.iter().map(|&p| nearest_rank(&sorted, p).unwrap()).collect();
        assert_eq!(nearest_ranks(&mut v, &ps), expect);
    }

    #[test]
    fn wait_stats_in_seconds() {
        let mut w: Vec<i64> = (1..=100).map(|s| s * 1000).collect();
        let s = WaitStats::from_millis(&mut w);
        assert_eq!((s.count, s.p50, s.p90, s.p99, s.max, s.mean), (100, 50.0, 90.0, 99.0, 100.0, 50.5));
    }

    #[test]
    fn histogram_percentiles_are_within_a_twentieth_of_a_percent() {
        use rand::{RngExt, SeedableRng};
        use rand_distr::{Distribution, LogNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let d = LogNormal::new(10.0, 2.5).unwrap();
        for n in [1usize, 2, 10, 1000, 200_000] {
            let mut exact: Vec<i64> = (0..n).map(|_| (d.sample(&mut rng) as i64).min(1 << 45)).collect();
            exact.extend((0..n / 10).map(|_| rng.random_range(0..3000)));
            let mut h = WaitHistogram::default();
            exact.iter().for_each(|&w| h.record(w));
            let e = WaitStats::from_millis(&mut exact.clone());
            let a = WaitStats::from_histogram(&h);
            assert_eq!((a.count, a.mean, a.max), (e.count, e.mean, e.max));
            for (x, y) in [(a.p50, e.p50), (a.p90, e.p90), (a.p95, e.p95), (a.p99, e.p99)] {
                // Seconds rounded to the millisecond: allow that rounding too.
                assert!((x - y).abs() <= y * 0.0005 + 0.001, "n {n}: {x} vs exact {y}");
            }
        }
    }

    #[test]
    fn small_waits_are_exact_in_a_histogram_and_recorders_fold_past_their_budget() {
        let mut h = WaitHistogram::default();
        (0..2048).rev().for_each(|w| h.record(w));
        let mut all: Vec<i64> = (0..2048).collect();
        assert_eq!(WaitStats::from_histogram(&h), WaitStats::from_millis(&mut all));
        let mut r = WaitRecorder::default();
        for i in 0..(EXACT_WAITS / 3 + 10) {
            r.record(i as i64 % 5000, (i % 2) as u32, 0, false);
        }
        assert!(r.exact <= EXACT_WAITS);
        assert!(r.overall_folded, "the largest group folds first");
        let held = |r: &WaitRecorder| {
            r.overall_exact() + r.per_type.iter().chain(&r.per_jobset).map(Waits::exact_len).sum::<usize>()
        };
        assert_eq!(r.held, held(&r));
        // Past the budget with every group folded, nothing is left to fold;
        // a group that appears then is folded at its first value.
        for i in 0..EXACT_WAITS {
            r.record(i as i64 % 7000, (i % 2) as u32, 0, false);
        }
        assert!(r.exact > EXACT_WAITS && r.held == 0 && held(&r) == 0);
        r.record(5, 0, 1, false);
        assert!(matches!(r.per_jobset[1], Waits::Histogram(_)) && r.held == 0);
        let count = EXACT_WAITS / 3 + 10 + EXACT_WAITS + 1;
        assert_eq!(r.latency(|t| t.to_string(), |j| j.to_string()).overall.count as usize, count);
    }

    /// The overall figures, assembled from the per-type groups, are those
    /// of all the waits: exact while nothing is folded, and the histogram
    /// of all of them once the overall group is, whatever the types hold.
    #[test]
    fn the_overall_group_is_the_types_together_exact_or_folded() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r = WaitRecorder::default();
        let mut all = vec![];
        let mut direct = WaitHistogram::default();
        let steps = EXACT_WAITS / 3 + 200_000;
        for i in 0..steps {
            let w = (rng.random::<u64>() % 20_000_000) as i64;
            r.record(w, (i % 3) as u32, (i % 5) as u32, false);
            all.push(w);
            direct.record(w);
            if i == 1000 {
                assert!(!r.overall_folded);
                let mut so_far = all.clone();
                assert_eq!(r.overall_stats(), WaitStats::from_millis(&mut so_far));
            }
        }
        // Some types are folded and some are not: both ways of adding a
        // type's waits to the overall histogram are used.
        assert!(r.overall_folded);
        assert!(r.per_type.iter().any(|g| matches!(g, Waits::Exact(v) if !v.is_empty())));
        assert!(r.per_type.iter().any(|g| matches!(g, Waits::Histogram(_))));
        assert_eq!(r.overall_stats(), WaitStats::from_histogram(&direct));
        let exact = WaitStats::from_millis(&mut all);
        assert_eq!((r.overall_stats().count, r.overall_stats().max), (exact.count, exact.max));
    }

    #[test]
    fn dollars_per_hour() {
        assert_eq!(dollars(3_600_000, 0.1), 0.1);
        assert_eq!(round3(dollars(1_800_000, 0.25)), 0.125);
    }
}
