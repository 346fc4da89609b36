//! Importing a real Hydra's history as a v1 trace: from its PostgreSQL
//! tables ([`hydra_db`]) or from saved responses of its JSON API
//! ([`hydra_api`]). docs/import.md states every mapping decision.
//!
//! Both importers are pure: they are handed rows (the database adapter in
//! `adapters::hydra_db` streams them, the CLI reads the saved files) and
//! write trace rows to a [`TraceSink`], counting what they skip and why. The
//! trace's zero is midnight (UTC) of the day of the first arrival unless the
//! caller fixes it, so hours of the day in `trace stats` are UTC hours and a
//! scenario replays the trace with `epoch` set to the reported zero.

pub mod features;
pub mod hydra_api;
pub mod hydra_db;
mod runner_cpp;
mod runner_rust;

use super::{Outcome, StepRow, Symbols, TraceWriter};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Why a build or a step row was left out of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skip {
    /// `isCachedBuild = 1` (or, from the API, no time spent): nothing was built.
    CachedBuild,
    /// A build with no step rows of its own (its work is recorded under
    /// another build, or it never ran).
    BuildWithoutSteps,
    /// A build not finished when the history was read.
    UnfinishedBuild,
    /// A build that failed because a dependency failed: its times are the
    /// dependency's (API only).
    DependencyFailed,
    /// A substitution step (`type = 1`): done by the queue runner, not a builder.
    SubstitutionStep,
    /// A step row copied into a dependent build to record a failure
    /// (`propagatedFrom` set): the work is the original row.
    PropagatedFailure,
    /// Still running (`busy != 0` or no status).
    UnfinishedStep,
    /// Status 8: a cached failure, nothing was built.
    CachedFailure,
    /// Status 9: no machine supported the step's system.
    UnsupportedSystem,
    /// Status 13: resolved to another content-addressed derivation, built as its own step.
    Resolved,
    /// A status this importer does not know.
    UnknownStatus,
    /// `startTime` or `stopTime` NULL or 0 (e.g. a C++ queue-runner restart).
    NoTimes,
    /// `stopTime < startTime`: no duration can be derived.
    StopBeforeStart,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Skip::CachedBuild => "cached builds (nothing built)",
            Skip::BuildWithoutSteps => "builds without step rows of their own",
            Skip::UnfinishedBuild => "builds not finished",
            Skip::DependencyFailed => "builds failed by a dependency (their times are the dependency's)",
            Skip::SubstitutionStep => "substitution steps (done by the queue runner)",
            Skip::PropagatedFailure => "failure records propagated from another build",
            Skip::UnfinishedStep => "steps still running",
            Skip::CachedFailure => "cached failures (status 8, nothing built)",
            Skip::UnsupportedSystem => "unsupported-system steps (status 9)",
            Skip::Resolved => "resolved content-addressed steps (status 13)",
            Skip::UnknownStatus => "steps with an unknown status",
            Skip::NoTimes => "rows without start or stop time",
            Skip::StopBeforeStart => "rows whose stop time is before their start time",
        }
    }
}

/// What an import read, wrote and left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub builds_read: u64,
    /// Rows of the source: step rows (database) or build objects (API).
    pub rows_read: u64,
    pub steps_written: u64,
    /// Failed attempts folded into the step that retried them.
    pub attempts_merged: u64,
    /// Cached builds whose own step rows did real work (imported).
    pub cached_builds_with_work: u64,
    pub skipped: BTreeMap<Skip, u64>,
    /// Unix time of the trace's zero (set `epoch` to it in a scenario).
    pub zero_unix: Option<i64>,
    /// Unix times of the first and last arrival written.
    pub first_arrival_unix: Option<i64>,
    pub last_arrival_unix: Option<i64>,
}

impl ImportReport {
    pub fn skip(&mut self, why: Skip) {
        *self.skipped.entry(why).or_default() += 1;
    }

    /// The end-of-import summary for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "read {} builds, {} rows; wrote {} steps ({} failed attempts merged into their retries)\n",
            self.builds_read, self.rows_read, self.steps_written, self.attempts_merged
        );
        if let (Some(zero), Some(first), Some(last)) = (self.zero_unix, self.first_arrival_unix, self.last_arrival_unix)
        {
            s += &format!(
                "trace zero = Unix time {zero} (set `epoch = {zero}` in a scenario); arrivals from {} to {} s\n",
                first - zero,
                last - zero
            );
        }
        if self.cached_builds_with_work > 0 {
            s +=
                &format!("{} cached builds had step rows that did real work: imported\n", self.cached_builds_with_work);
        }
        if self.skipped.is_empty() {
            s += "skipped: nothing\n";
        } else {
            s += "skipped:\n";
            for (why, n) in &self.skipped {
                s += &format!("  {n:>10}  {}\n", why.describe());
            }
        }
        s
    }
}

/// One step ready for the trace, before ids and interning. Dependencies are
/// indexes into the same build's list of steps (always earlier ones).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedStep {
    pub arrival_unix: i64,
    pub system: String,
    pub features: String,
    pub jobset: String,
    pub build_id: u64,
    pub priority: i32,
    pub global_priority: i32,
    pub depends_on: Vec<usize>,
    pub duration_ms: i64,
    pub outcome: Outcome,
}

/// Writes imported steps as trace rows: numbers them from 1 in order,
/// interns their names and places them on the trace's time axis.
pub struct TraceSink<W: Write> {
    writer: TraceWriter<W>,
    symbols: Symbols,
    zero_unix: Option<i64>,
    next_id: u64,
    ids: Vec<u64>,
    pub report: ImportReport,
}

/// Midnight (UTC) of the day holding `unix`.
pub fn midnight_utc(unix: i64) -> i64 {
    unix.div_euclid(86_400) * 86_400
}

impl<W: Write> TraceSink<W> {
    /// `zero_unix`: the trace's zero; `None` chooses midnight UTC of the first arrival.
    pub fn new(out: W, zero_unix: Option<i64>) -> std::io::Result<TraceSink<W>> {
        Ok(TraceSink {
            writer: TraceWriter::new(out)?,
            symbols: Symbols::default(),
            zero_unix,
            next_id: 1,
            ids: vec![],
            report: ImportReport { zero_unix, ..ImportReport::default() },
        })
    }

    /// Writes one build's steps; their arrivals must not be before any
    /// earlier build's (the importers sort by arrival).
    pub fn write_build(&mut self, steps: &[ImportedStep]) -> std::io::Result<()> {
        self.ids.clear();
        for step in steps {
            let zero = *self.zero_unix.get_or_insert_with(|| midnight_utc(step.arrival_unix));
            self.report.zero_unix = Some(zero);
            let id = self.next_id;
            self.next_id += 1;
            self.ids.push(id);
            let row = StepRow {
                step_id: id,
                // Arrivals before a caller-fixed zero are put at the zero:
                // the format has no negative times.
                submitted_ms: (step.arrival_unix - zero).max(0) * 1000,
                system: self.symbols.intern(&step.system),
                features: self.symbols.intern(&step.features),
                jobset: self.symbols.intern(&step.jobset),
                build_id: step.build_id,
                priority: step.priority,
                global_priority: step.global_priority,
                depends_on: step.depends_on.iter().filter_map(|&i| self.ids.get(i).copied()).collect(),
                duration_ms: step.duration_ms,
                outcome: step.outcome,
                output_size: None,
                eval_id: None,
            };
            self.writer.write(&row, &self.symbols)?;
            self.report.steps_written += 1;
            self.report.first_arrival_unix.get_or_insert(step.arrival_unix);
            self.report.last_arrival_unix = Some(step.arrival_unix);
        }
        Ok(())
    }

    /// Flushes the trace and hands back the output and the report.
    pub fn finish(self) -> std::io::Result<(W, ImportReport)> {
        let mut out = self.writer.finish()?;
        out.flush()?;
        Ok((out, self.report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_is_midnight_of_the_first_arrival_and_ids_follow_the_order() {
        let mut sink = TraceSink::new(Vec::new(), None).unwrap();
        let step = |arrival_unix, depends_on| ImportedStep {
            arrival_unix,
            system: "x86_64-linux".into(),
            features: String::new(),
            jobset: "p:j".into(),
            build_id: 7,
            priority: 100,
            global_priority: 0,
            depends_on,
            duration_ms: 1500,
            outcome: Outcome::Success,
        };
        sink.write_build(&[step(1_700_000_123, vec![]), step(1_700_000_123, vec![0])]).unwrap();
        let (out, report) = sink.finish().unwrap();
        let zero = 1_700_000_123 / 86_400 * 86_400;
        assert_eq!(report.zero_unix, Some(zero));
        let text = String::from_utf8(out).unwrap();
        let offset = super::super::format_seconds((1_700_000_123 - zero) * 1000);
        assert!(text.contains(&format!("2,{offset},x86_64-linux,,p:j,7,100,0,1,1.500,success")), "{text}");
        assert_eq!(midnight_utc(-1), -86_400);
    }
}
