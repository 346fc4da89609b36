//! Saved responses of Hydra's public JSON API to trace steps, for people
//! without database access (docs/import.md has the mapping and its losses).
//!
//! Three kinds of response are understood, told apart by their shape:
//! `/jobset/P/J/evals` (an object with an `evals` list, each eval listing
//! its build ids), `/eval/N/builds` (a list of build objects) and `/build/N`
//! (one build object). The API shows builds, not steps: each finished build
//! becomes one trace step, its own (top-level) derivation, with the build's
//! start and stop time as its duration. This module parses documents handed
//! to it; reading the files is the caller's business.

use super::features::{FeatureRules, StepFacts, drv_name};
use super::{ImportedStep, Skip, TraceSink};
use crate::trace::Outcome;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// The fields of a build object (`Builds::as_json` in Hydra) an import uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiBuild {
    pub id: i64,
    #[serde(default)]
    pub finished: Option<i64>,
    pub timestamp: i64,
    #[serde(default)]
    pub starttime: Option<i64>,
    #[serde(default)]
    pub stoptime: Option<i64>,
    pub project: String,
    pub jobset: String,
    pub job: String,
    pub system: String,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub buildstatus: Option<i32>,
    #[serde(default)]
    pub drvpath: Option<String>,
}

/// Every build found in the saved responses, by id, and the ids that
/// evaluations list but no saved response describes.
#[derive(Debug, Default)]
pub struct ApiHistory {
    pub builds: BTreeMap<i64, ApiBuild>,
    pub evals: u64,
    listed: BTreeSet<i64>,
    /// Build objects read (a build saved twice counts twice).
    pub objects_read: u64,
}

impl ApiHistory {
    /// Adds one saved response; `origin` names it in errors.
    pub fn add(&mut self, doc: &Value, origin: &str) -> Result<(), String> {
        match doc {
            Value::Object(o) if o.contains_key("evals") => {
                let Some(Value::Array(evals)) = o.get("evals") else {
                    return Err(format!("{origin}: `evals` is not a list"));
                };
                for (i, e) in evals.iter().enumerate() {
                    self.evals += 1;
                    match e.get("builds") {
                        Some(Value::Array(ids)) => {
                            for id in ids {
                                let id = id.as_i64().ok_or_else(|| {
                                    format!("{origin}: evals[{i}].builds: expected build ids, got {id}")
                                })?;
                                self.listed.insert(id);
                            }
                        }
                        None | Some(Value::Null) => {}
                        Some(other) => return Err(format!("{origin}: evals[{i}].builds is not a list: {other}")),
                    }
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.add_build(item, &format!("{origin}: [{i}]"))?;
                }
                Ok(())
            }
            Value::Object(o) if o.contains_key("id") && o.contains_key("job") => self.add_build(doc, origin),
            _ => Err(format!(
                "{origin}: not a saved Hydra API response (expected /jobset/P/J/evals, /eval/N/builds or /build/N)"
            )),
        }
    }

    fn add_build(&mut self, item: &Value, origin: &str) -> Result<(), String> {
        let build = ApiBuild::deserialize(item).map_err(|e| format!("{origin}: not a Hydra build object: {e}"))?;
        self.objects_read += 1;
        // The same build saved twice (in an eval's list and on its own):
        // keep the finished copy.
        match self.builds.get(&build.id) {
            Some(old) if old.finished == Some(1) && build.finished != Some(1) => {}
            _ => {
                self.builds.insert(build.id, build);
            }
        }
        Ok(())
    }

    /// Build ids an evaluation lists that no saved response describes.
    pub fn missing_builds(&self) -> usize {
        self.listed.iter().filter(|id| !self.builds.contains_key(id)).count()
    }

    /// Writes one trace step per usable build, in order of queue time.
    pub fn write<W: Write>(&self, sink: &mut TraceSink<W>, rules: &FeatureRules) -> std::io::Result<()> {
        let mut order: Vec<&ApiBuild> = self.builds.values().collect();
        order.sort_by_key(|b| (b.timestamp, b.id));
        sink.report.rows_read = self.objects_read;
        for b in order {
            sink.report.builds_read += 1;
            match step_of(b, rules) {
                Ok(step) => sink.write_build(std::slice::from_ref(&step))?,
                Err(why) => sink.report.skip(why),
            }
        }
        Ok(())
    }
}

fn step_of(b: &ApiBuild, rules: &FeatureRules) -> Result<ImportedStep, Skip> {
    if b.finished != Some(1) {
        return Err(Skip::UnfinishedBuild);
    }
    let outcome = match b.buildstatus {
        None => return Err(Skip::UnfinishedBuild),
        Some(0) => Outcome::Success,
        Some(2) => return Err(Skip::DependencyFailed),
        Some(_) => Outcome::Failure,
    };
    let (Some(start), Some(stop)) = (b.starttime.filter(|&t| t != 0), b.stoptime.filter(|&t| t != 0)) else {
        return Err(Skip::NoTimes);
    };
    if stop < start {
        return Err(Skip::StopBeforeStart);
    }
    // The API has no isCachedBuild; Hydra gives a cached build equal start
    // and stop times.
    if stop == start {
        return Err(Skip::CachedBuild);
    }
    let jobset = format!("{}:{}", b.project, b.jobset);
    let drv = b.drvpath.as_deref().map_or(b.job.as_str(), drv_name);
    let features =
        rules.features_for(&StepFacts { drv_name: drv, job: Some(&b.job), system: &b.system, jobset: &jobset });
    Ok(ImportedStep {
        arrival_unix: b.timestamp,
        system: b.system.clone(),
        features,
        jobset,
        build_id: b.id.max(0) as u64,
        priority: b.priority.unwrap_or(100),
        global_priority: 0,
        depends_on: vec![],
        duration_ms: (stop - start) * 1000,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(id: i64, timestamp: i64, start: Option<i64>, stop: Option<i64>, status: Option<i32>) -> Value {
        json!({"id": id, "finished": 1, "timestamp": timestamp, "starttime": start, "stoptime": stop,
               "project": "nixpkgs", "jobset": "trunk", "job": format!("job{id}"), "system": "x86_64-linux",
               "priority": 100, "buildstatus": status, "drvpath": format!("/nix/store/h-job{id}.drv"),
               "jobsetevals": [1], "buildoutputs": {}, "buildproducts": {}, "buildmetrics": {}})
    }

    #[test]
    fn builds_become_steps_in_queue_order_and_skips_are_counted() {
        let mut h = ApiHistory::default();
        h.add(&json!({"evals": [{"id": 1, "builds": [1, 2, 3, 4, 5, 6, 99]}], "first": "?page=1"}), "evals.json")
            .unwrap();
        h.add(
            &json!([
                build(2, 1_700_000_050, Some(1_700_000_100), Some(1_700_000_160), Some(1)),
                build(1, 1_700_000_010, Some(1_700_000_020), Some(1_700_000_030), Some(0)),
                build(3, 1_700_000_010, Some(5), Some(5), Some(0)),
                build(4, 1_700_000_010, None, None, Some(0))
            ]),
            "builds.json",
        )
        .unwrap();
        h.add(&build(5, 1_700_000_010, Some(9), Some(8), Some(0)), "5.json").unwrap();
        h.add(&build(6, 1_700_000_010, Some(9), Some(10), Some(2)), "6.json").unwrap();
        assert_eq!(h.missing_builds(), 1);
        let mut sink = TraceSink::new(Vec::new(), Some(1_700_000_000)).unwrap();
        h.write(&mut sink, &FeatureRules::default()).unwrap();
        let (out, report) = sink.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            rows,
            [
                "1,10.000,x86_64-linux,,nixpkgs:trunk,1,100,0,,10.000,success",
                "2,50.000,x86_64-linux,,nixpkgs:trunk,2,100,0,,60.000,failure"
            ]
        );
        for why in [Skip::CachedBuild, Skip::NoTimes, Skip::StopBeforeStart, Skip::DependencyFailed] {
            assert_eq!(report.skipped.get(&why), Some(&1), "{why:?}");
        }
    }

    #[test]
    fn other_documents_are_errors_that_name_the_file() {
        let mut h = ApiHistory::default();
        let e = h.add(&json!({"hello": 1}), "x.json").unwrap_err();
        assert!(e.starts_with("x.json: not a saved Hydra API response"), "{e}");
        let e = h.add(&json!([{"id": 1, "job": "j"}]), "y.json").unwrap_err();
        assert!(e.starts_with("y.json: [0]: not a Hydra build object"), "{e}");
        let e = h.add(&json!({"evals": [{"builds": ["x"]}]}), "z.json").unwrap_err();
        assert!(e.contains("expected build ids"), "{e}");
    }
}
