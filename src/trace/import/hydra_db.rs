//! Hydra's database rows to trace steps (docs/import.md has every rule).
//!
//! Rows come one per build step, as `Builds` joined with `Jobsets` and
//! left-joined with `BuildSteps` (a build without steps is one row with no
//! step), sorted by the build's queue time, build id and step number. This
//! module holds one build's rows at a time: when the build id changes, the
//! build is turned into trace steps and written. It does not talk to the
//! database (`adapters::hydra_db` does) and reads no clock.
//!
//! The rules in short: arrival is the build's `timestamp`; attempts of one
//! derivation within a build are one trace step whose duration is the last
//! attempt's (retries are linked only by build and drv path); the build's
//! top-level step (the build's own `drvPath`) depends on every other step
//! imported for the build, and the others on nothing (the database has no
//! step graph); durations follow the rules of the runner that wrote the row.

use super::features::{FeatureRules, StepFacts as FeatureFacts, drv_name};
use super::{ImportedStep, Skip, TraceSink, runner_cpp, runner_rust};
use crate::trace::Outcome;
use std::io::Write;

/// The columns of `Builds` (and its jobset) an import uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFacts {
    pub id: i64,
    /// `Builds.timestamp`: when the build was queued (a restart keeps it).
    pub timestamp: i64,
    pub project: String,
    pub jobset: String,
    pub job: String,
    pub drv_path: String,
    pub system: String,
    pub priority: i32,
    pub global_priority: i32,
    pub is_cached: bool,
    pub finished: bool,
}

/// The columns of one `BuildSteps` row an import uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFacts {
    pub stepnr: i32,
    /// 0 build, 1 substitution.
    pub kind: i32,
    pub drv_path: String,
    pub busy: i32,
    pub status: Option<i32>,
    pub start: Option<i64>,
    pub stop: Option<i64>,
    pub machine: String,
    pub system: Option<String>,
    pub propagated_from: Option<i64>,
    pub overhead_ms: Option<i64>,
}

/// One row of the import query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbRow {
    pub build: BuildFacts,
    pub step: Option<StepFacts>,
}

/// Which queue runner wrote a row; no column says, so the operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runner {
    /// The C++ queue runner: builder-clock times, copy overhead outside the span.
    Cpp,
    /// The Rust queue runner: local times, overhead inside the span.
    Rust,
}

/// Which runner wrote which rows: `default` for all, or the Rust runner for
/// steps started at or after `rust_since`.
#[derive(Debug, Clone, Copy)]
pub struct RunnerEras {
    pub default: Runner,
    pub rust_since: Option<i64>,
}

impl RunnerEras {
    fn duration_ms(&self, start: i64, stop: i64, overhead_ms: Option<i64>) -> Result<i64, Skip> {
        let runner = match self.rust_since {
            Some(since) if start >= since => Runner::Rust,
            _ => self.default,
        };
        match runner {
            Runner::Cpp => runner_cpp::duration_ms(start, stop, overhead_ms),
            Runner::Rust => runner_rust::duration_ms(start, stop, overhead_ms),
        }
    }
}

const ABORTED: i32 = 3;
const CANCELLED: i32 = 4;

/// One attempt that did work.
struct Attempt {
    status: i32,
    duration_ms: i64,
    system: String,
}

/// The attempts at one derivation within a build, in step order: each with
/// its status and, if it tells a duration, the attempt.
struct Group {
    drv_path: String,
    entries: Vec<(Option<i32>, Option<Attempt>)>,
}

/// Turns rows into trace steps, one build at a time.
pub struct DbImport<'a, W: Write> {
    sink: TraceSink<W>,
    rules: &'a FeatureRules,
    eras: RunnerEras,
    current: Option<BuildFacts>,
    steps: Vec<StepFacts>,
    out: Vec<ImportedStep>,
}

impl<'a, W: Write> DbImport<'a, W> {
    pub fn new(sink: TraceSink<W>, rules: &'a FeatureRules, eras: RunnerEras) -> Self {
        DbImport { sink, rules, eras, current: None, steps: vec![], out: vec![] }
    }

    /// Takes the next row (rows must come sorted; see the module comment).
    pub fn push(&mut self, row: DbRow) -> std::io::Result<()> {
        if self.current.as_ref().is_none_or(|b| b.id != row.build.id) {
            self.flush()?;
            self.sink.report.builds_read += 1;
            self.current = Some(row.build);
        }
        if let Some(step) = row.step {
            self.sink.report.rows_read += 1;
            self.steps.push(step);
        }
        Ok(())
    }

    /// Writes the last build and returns the sink.
    pub fn finish(mut self) -> std::io::Result<TraceSink<W>> {
        self.flush()?;
        Ok(self.sink)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let Some(build) = self.current.take() else { return Ok(()) };
        let steps = std::mem::take(&mut self.steps);
        if steps.is_empty() {
            self.sink.report.skip(if build.is_cached {
                Skip::CachedBuild
            } else if !build.finished {
                Skip::UnfinishedBuild
            } else {
                Skip::BuildWithoutSteps
            });
            return Ok(());
        }
        let groups = self.group(&steps);
        self.out.clear();
        let jobset = format!("{}:{}", build.project, build.jobset);
        let mut top = None;
        for g in &groups {
            let Some(last_at) = g.entries.iter().rposition(|e| e.1.is_some()) else { continue };
            let Some(last) = &g.entries[last_at].1 else { continue };
            // Hydra retries what was aborted or cancelled; a later attempt
            // of the same derivation in the same build is that retry.
            let retried = g.entries[..last_at].iter().any(|e| matches!(e.0, Some(ABORTED | CANCELLED)));
            self.sink.report.attempts_merged += last_at as u64;
            let duration_ms = last.duration_ms;
            let outcome = match last.status {
                0 if retried => Outcome::Transient,
                0 => Outcome::Success,
                _ => Outcome::Failure,
            };
            let is_top = g.drv_path == build.drv_path;
            let features = self.rules.features_for(&FeatureFacts {
                drv_name: drv_name(&g.drv_path),
                job: is_top.then_some(build.job.as_str()),
                system: &last.system,
                jobset: &jobset,
            });
            if is_top {
                top = Some(self.out.len());
            }
            self.out.push(ImportedStep {
                arrival_unix: build.timestamp,
                system: last.system.clone(),
                features,
                jobset: jobset.clone(),
                build_id: build.id.max(0) as u64,
                priority: build.priority,
                global_priority: build.global_priority,
                depends_on: vec![],
                duration_ms,
                outcome,
            });
        }
        // The top-level step goes last and waits for every other step.
        if let Some(t) = top {
            let mut step = self.out.remove(t);
            step.depends_on = (0..self.out.len()).collect();
            self.out.push(step);
        }
        if build.is_cached && !self.out.is_empty() {
            self.sink.report.cached_builds_with_work += 1;
        }
        self.sink.write_build(&self.out)
    }

    /// Classifies a build's step rows and folds the attempts at one derivation together.
    fn group(&mut self, steps: &[StepFacts]) -> Vec<Group> {
        let build_system = self.current.as_ref().map_or(String::new(), |b| b.system.clone());
        let mut groups: Vec<Group> = vec![];
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for s in steps {
            let attempt = self.classify(s, &build_system);
            // An abort without times (a C++ runner restart) still tells
            // that the next attempt is a retry.
            let evidence = matches!(s.status, Some(ABORTED | CANCELLED)) && s.kind == 0 && s.propagated_from.is_none();
            if attempt.is_none() && !evidence {
                continue;
            }
            let entry = (s.status, attempt);
            match index.get(s.drv_path.as_str()) {
                Some(&i) => groups[i].entries.push(entry),
                None => {
                    index.insert(&s.drv_path, groups.len());
                    groups.push(Group { drv_path: s.drv_path.clone(), entries: vec![entry] });
                }
            }
        }
        groups
    }

    fn classify(&mut self, s: &StepFacts, build_system: &str) -> Option<Attempt> {
        let report = &mut self.sink.report;
        let skip = |report: &mut super::ImportReport, why| {
            report.skip(why);
            None
        };
        if s.kind == 1 {
            return skip(report, Skip::SubstitutionStep);
        }
        if s.propagated_from.is_some() {
            return skip(report, Skip::PropagatedFailure);
        }
        let status = match s.status {
            _ if s.busy != 0 => return skip(report, Skip::UnfinishedStep),
            None => return skip(report, Skip::UnfinishedStep),
            Some(8) => return skip(report, Skip::CachedFailure),
            Some(9) => return skip(report, Skip::UnsupportedSystem),
            Some(13) => return skip(report, Skip::Resolved),
            Some(st @ (0 | 1 | 3 | 4 | 6 | 7 | 10 | 11 | 12)) => st,
            Some(_) => return skip(report, Skip::UnknownStatus),
        };
        let (Some(start), Some(stop)) = (s.start.filter(|&t| t != 0), s.stop.filter(|&t| t != 0)) else {
            return skip(report, Skip::NoTimes);
        };
        let duration_ms = match self.eras.duration_ms(start, stop, s.overhead_ms) {
            Ok(d) => d,
            Err(why) => return skip(report, why),
        };
        let system = s.system.clone().filter(|x| !x.is_empty()).unwrap_or_else(|| build_system.to_string());
        Some(Attempt { status, duration_ms, system })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(id: i64, drv: &str) -> BuildFacts {
        BuildFacts {
            id,
            timestamp: 1_700_000_000 + id,
            project: "nixpkgs".into(),
            jobset: "trunk".into(),
            job: format!("job{id}"),
            drv_path: drv.into(),
            system: "x86_64-linux".into(),
            priority: 100,
            global_priority: 0,
            is_cached: false,
            finished: true,
        }
    }

    fn step(stepnr: i32, drv: &str, status: Option<i32>, start: Option<i64>, stop: Option<i64>) -> StepFacts {
        StepFacts {
            stepnr,
            kind: 0,
            drv_path: drv.into(),
            busy: 0,
            status,
            start,
            stop,
            machine: "ssh://root@b1".into(),
            system: Some("x86_64-linux".into()),
            propagated_from: None,
            overhead_ms: Some(500),
        }
    }

    fn import(rows: Vec<DbRow>, eras: RunnerEras) -> (String, super::super::ImportReport) {
        let rules = FeatureRules::default();
        let mut imp = DbImport::new(TraceSink::new(Vec::new(), Some(1_700_000_000)).unwrap(), &rules, eras);
        for r in rows {
            imp.push(r).unwrap();
        }
        let (out, report) = imp.finish().unwrap().finish().unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    const CPP: RunnerEras = RunnerEras { default: Runner::Cpp, rust_since: None };

    #[test]
    fn retries_fold_into_a_transient_step_and_the_top_level_waits_for_the_rest() {
        let b = build(1, "/s/aaa-top.drv");
        let rows = vec![
            DbRow { build: b.clone(), step: Some(step(1, "/s/bbb-dep.drv", Some(3), Some(100), None)) },
            DbRow { build: b.clone(), step: Some(step(2, "/s/bbb-dep.drv", Some(0), Some(200), Some(210))) },
            DbRow { build: b.clone(), step: Some(step(3, "/s/aaa-top.drv", Some(1), Some(220), Some(230))) },
        ];
        let (text, report) = import(rows, CPP);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "1,1.000,x86_64-linux,,nixpkgs:trunk,1,100,0,,10.500,transient");
        assert_eq!(lines[2], "2,1.000,x86_64-linux,,nixpkgs:trunk,1,100,0,1,10.500,failure");
        assert_eq!(report.skipped.get(&Skip::NoTimes), Some(&1));
    }

    #[test]
    fn the_runner_decides_whether_overhead_is_added() {
        let b = build(1, "/s/aaa-top.drv");
        let rows =
            || vec![DbRow { build: b.clone(), step: Some(step(1, "/s/aaa-top.drv", Some(0), Some(100), Some(160))) }];
        assert!(import(rows(), CPP).0.contains(",60.500,success"));
        let rust = RunnerEras { default: Runner::Cpp, rust_since: Some(100) };
        assert!(import(rows(), rust).0.contains(",60.000,success"));
    }

    #[test]
    fn skips_are_counted_by_reason() {
        let mut cached = build(2, "/s/c.drv");
        cached.is_cached = true;
        let b = build(3, "/s/t.drv");
        let mut subst = step(1, "/s/x.drv", Some(0), Some(1), Some(2));
        subst.kind = 1;
        let mut propagated = step(2, "/s/y.drv", Some(1), Some(5), Some(5));
        propagated.propagated_from = Some(9);
        let rows = vec![
            DbRow { build: cached, step: None },
            DbRow { build: b.clone(), step: Some(subst) },
            DbRow { build: b.clone(), step: Some(propagated) },
            DbRow { build: b.clone(), step: Some(step(3, "/s/z.drv", Some(0), Some(50), Some(40))) },
            DbRow { build: b.clone(), step: Some(step(4, "/s/w.drv", Some(8), None, None)) },
            DbRow { build: b, step: Some(step(5, "/s/t.drv", Some(42), Some(1), Some(2))) },
        ];
        let (text, report) = import(rows, CPP);
        assert_eq!(text.lines().count(), 1, "{text}");
        for why in [
            Skip::CachedBuild,
            Skip::SubstitutionStep,
            Skip::PropagatedFailure,
            Skip::StopBeforeStart,
            Skip::CachedFailure,
            Skip::UnknownStatus,
        ] {
            assert_eq!(report.skipped.get(&why), Some(&1), "{why:?}");
        }
        assert_eq!((report.builds_read, report.rows_read, report.steps_written), (2, 5, 0));
    }
}
