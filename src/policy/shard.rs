//! Sweeps split over machines: `sweep --shard K/N` runs the K-th of N
//! disjoint slices of a sweep's runs and writes a partial result;
//! `sweep merge` checks that partials from all N slices of one sweep are
//! there and puts the runs back in grid order, so that the merged files are
//! byte for byte those of a sweep run on one machine (docs/sweep-format.md).
//!
//! Run `i` (point `i / seeds`, seed `i % seeds`) belongs to slice
//! `i % N + 1`: dealing runs out in turn gives every slice a share of every
//! region of the grid, so slices take about as long as each other.
//!
//! This module parses, checks and assembles; it runs nothing and reads no
//! files (the partial's JSON text comes in and goes out as text).

use super::PolicyError;
use super::results::{Breakdown, METRIC_COUNT, Metrics, RunFigures};
use crate::config::Quirks;
use serde::{Deserialize, Serialize};

/// What a partial result file says it is.
pub const FORMAT: &str = "hydra-provisioner sweep shard";
pub const FORMAT_VERSION: u32 = 2;

/// `K/N`: the K-th (from 1) of N slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("expected K/N with 1 <= K <= N (e.g. 2/8), got `{s}`");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether run `run` (in grid order, seeds innermost) is in this slice.
    pub fn has(&self, run: usize) -> bool {
        run % self.count as usize == (self.index - 1) as usize
    }

    /// The partial file's name in the output directory.
    pub fn file_name(&self) -> String {
        format!("shard-{}-of-{}.json", self.index, self.count)
    }
}

/// One run's figures in a partial result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRun {
    /// Index in grid order (seeds innermost).
    pub run: usize,
    /// In [`super::results::METRIC_NAMES`] order.
    pub metrics: Vec<f64>,
    /// Per machine type and jobset.
    pub breakdown: Breakdown,
}

impl ShardRun {
    pub fn new(run: usize, figures: &RunFigures) -> ShardRun {
        ShardRun { run, metrics: figures.metrics.to_array().to_vec(), breakdown: figures.breakdown.clone() }
    }
}

/// A partial result: what one slice ran, and enough about the sweep to
/// check that the slices belong together and to write the merged files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    pub format: String,
    pub version: u32,
    pub program_version: String,
    /// The sweep file as given on the command line, and its text.
    pub sweep_origin: String,
    pub sweep_text: String,
    /// The base scenario's text, name and trace (as written in it).
    pub base_text: String,
    pub scenario_name: String,
    pub trace: String,
    /// A digest of the rows of every trace the sweep replays, so that slices
    /// run on different machines are known to have replayed the same traces.
    pub trace_digest: String,
    pub seeds: Vec<u64>,
    /// The quirks mode of each point.
    pub point_quirks: Vec<String>,
    pub runs_total: usize,
    pub shard: u32,
    pub shards: u32,
    pub runs: Vec<ShardRun>,
}

/// Parses a quirks mode as a partial result spells it.
pub fn quirks_of(text: &str) -> Option<Quirks> {
    match text {
        "original" => Some(Quirks::Original),
        "fixed" => Some(Quirks::Fixed),
        _ => None,
    }
}

/// The merged sweep: every run's figures in grid order, with what the
/// slices agreed on.
#[derive(Debug, Clone)]
pub struct Merged {
    pub first: Partial,
    pub runs: Vec<RunFigures>,
    pub quirks: Vec<Quirks>,
}

/// Checks that `partials` (each named for errors) are all N slices of one
/// sweep, once each, and assembles their runs in grid order.
pub fn merge(partials: Vec<(String, Partial)>) -> Result<Merged, PolicyError> {
    let Some((first_name, first)) = partials.first().cloned() else {
        return Err(PolicyError::new("sweep merge", "no shard files (shard-K-of-N.json) in the given directories"));
    };
    let mut slot: Vec<Option<String>> = vec![None; first.shards as usize];
    let mut runs: Vec<Option<RunFigures>> = vec![None; first.runs_total];
    for (name, p) in &partials {
        let err = |m: String| PolicyError::new(name.as_str(), m);
        if p.format != FORMAT || p.version != FORMAT_VERSION {
            return Err(err(format!("not a {FORMAT} file of version {FORMAT_VERSION}")));
        }
        let same = [
            ("program version", p.program_version == first.program_version),
            ("sweep file", p.sweep_text == first.sweep_text && p.sweep_origin == first.sweep_origin),
            ("base scenario", p.base_text == first.base_text),
            ("trace", p.trace_digest == first.trace_digest && p.trace == first.trace),
            ("seeds", p.seeds == first.seeds),
            ("number of shards", p.shards == first.shards && p.runs_total == first.runs_total),
        ];
        if let Some((what, _)) = same.iter().find(|(_, ok)| !ok) {
            return Err(err(format!("its {what} differs from that of {first_name}: not a slice of the same sweep")));
        }
        let k = p.shard as usize;
        if k == 0 || k > slot.len() {
            return Err(err(format!("shard {}/{} is out of range", p.shard, p.shards)));
        }
        if let Some(other) = &slot[k - 1] {
            return Err(err(format!("shard {}/{} is also in {other}", p.shard, p.shards)));
        }
        slot[k - 1] = Some(name.clone());
        let shard = Shard { index: p.shard, count: p.shards };
        for r in &p.runs {
            let metrics: [f64; METRIC_COUNT] =
                r.metrics.as_slice().try_into().map_err(|_| {
                    err(format!("run {} has {} figures, expected {METRIC_COUNT}", r.run, r.metrics.len()))
                })?;
            if r.run >= runs.len() || !shard.has(r.run) || runs[r.run].is_some() {
                return Err(err(format!(
                    "run {} does not belong to shard {}/{} or is listed twice",
                    r.run, k, p.shards
                )));
            }
            runs[r.run] = Some(RunFigures { metrics: Metrics::from_array(metrics), breakdown: r.breakdown.clone() });
        }
    }
    let missing: Vec<String> = slot
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(k, _)| format!("{}/{}", k + 1, first.shards))
        .collect();
    if !missing.is_empty() {
        return Err(PolicyError::new(first_name, format!("missing shard(s) {}", missing.join(", "))));
    }
    let runs: Vec<RunFigures> = runs
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.ok_or_else(|| PolicyError::new(first_name.as_str(), format!("run {i} is in no shard"))))
        .collect::<Result<_, _>>()?;
    let quirks = first
        .point_quirks
        .iter()
        .map(|q| {
            quirks_of(q).ok_or_else(|| PolicyError::new(first_name.as_str(), format!("unknown quirks mode `{q}`")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Merged { first, runs, quirks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_deal_runs_in_turn() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        assert_eq!((0..7).filter(|&r| s.has(r)).collect::<Vec<_>>(), [1, 4]);
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        // Every run in exactly one slice.
        for n in 1..5u32 {
            for run in 0..20 {
                assert_eq!((1..=n).filter(|&k| Shard { index: k, count: n }.has(run)).count(), 1);
            }
        }
    }
}
