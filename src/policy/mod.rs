//! Policy testing and the reports of runs: the pure parts of `sweep`,
//! `compare`, `recommend` and `simulate --out`. A sweep file names a base
//! scenario and axes (dotted paths into the scenario or its provisioner
//! configuration, each with a list of values and a role); [`sweep`] expands
//! them into a grid of points, [`results`] turns simulation summaries into
//! per-run and per-candidate figures with their spread, and CSV, [`shard`]
//! splits a sweep's runs over machines and merges them back, [`pareto`]
//! finds the points no other point beats on both cost and latency, [`gate`]
//! judges a candidate policy against a baseline seed by seed, [`recommend`]
//! picks the cheapest policy meeting wait targets, and [`plot`], [`report`]
//! and [`run_report`] draw the charts and write the HTML reports.
//!
//! Nothing here runs a simulation, reads or writes a file, spawns a thread or
//! reads the clock: `cli::sweep` and `cli::compare` do that and hand the
//! summaries in. Every output is a function of its inputs, so the same sweep
//! gives byte-identical files however its runs were scheduled.

pub mod gate;
pub mod pareto;
pub mod plot;
pub mod recommend;
pub mod report;
pub mod results;
pub mod run_report;
pub mod shard;
pub mod sweep;

/// Input that cannot be used; the message names the key, path or value.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct PolicyError {
    pub origin: String,
    pub message: String,
}

impl PolicyError {
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError { origin: origin.into(), message: message.into() }
    }
}
