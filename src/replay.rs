//! What-if on recorded passes: run a candidate configuration over what the
//! engine saw in each recorded pass and report where its decisions differ
//! from the recorded ones (`hydra-provisioner replay`).
//!
//! Open loop: every pass is decided from the recorded observation, as if
//! the earlier passes had gone as recorded; the candidate's own decisions
//! never feed into the next pass (the fleet it would have had is unknown).
//! So the figures say how each decision would differ, not what the fleet
//! would have become. Machine-hours are implied: the machines each plan
//! leaves running, times the time to the next recorded pass (the median
//! interval for the last one). Pure: records in, report out.

use crate::adapters::queue::parse_rust_status;
use crate::config::Config;
use crate::engine::{self, Action, Plan};
use crate::model::{Observation, QueueStatus, Seconds, Timestamp};
use crate::passes::{PassRecord, config_fingerprint};
use crate::status;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What one plan decides, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Machines the demand asks for, summed over types (`wanted`).
    pub wanted: u64,
    /// Machines allowed to serve it (`allowed`, within min/max).
    pub allowed: u64,
    pub created: u64,
    /// Kept running and listed (serve, keep) or left as they are (hold).
    pub kept: u64,
    /// Kept running but delisted (drain, leave).
    pub drained: u64,
    pub stopped: u64,
    pub destroyed: u64,
    /// Machines running after the pass.
    pub running: u64,
}

impl Figures {
    pub fn of(plan: &Plan) -> Figures {
        let mut f = Figures::default();
        for t in &plan.types {
            f.wanted += t.wanted;
            f.allowed += t.allowed;
        }
        for m in &plan.machines {
            let was_running = m.state.is_some_and(|s| s.is_running());
            let running = match m.action {
                Action::Create => {
                    f.created += 1;
                    true
                }
                Action::Serve => {
                    f.kept += 1;
                    true
                }
                Action::Keep | Action::Hold => {
                    f.kept += 1;
                    was_running
                }
                Action::Drain | Action::Leave => {
                    f.drained += 1;
                    was_running
                }
                Action::Stop => {
                    f.stopped += 1;
                    false
                }
                Action::Destroy => {
                    f.destroyed += 1;
                    false
                }
            };
            f.running += u64::from(running);
        }
        f
    }

    fn add(&mut self, o: &Figures) {
        self.wanted += o.wanted;
        self.allowed += o.allowed;
        self.created += o.created;
        self.kept += o.kept;
        self.drained += o.drained;
        self.stopped += o.stopped;
        self.destroyed += o.destroyed;
        self.running += o.running;
    }
}

/// One machine type whose demand figures differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeChange {
    pub machine_type: String,
    /// (wanted, allowed, created) recorded and under the candidate.
    pub recorded: (u64, u64, u64),
    pub candidate: (u64, u64, u64),
}

/// One deployment decided differently (`None`: not in that plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineChange {
    pub deployment: String,
    pub recorded: Option<(Action, bool)>,
    pub candidate: Option<(Action, bool)>,
}

/// A pass whose decisions differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassDiff {
    /// Where the record is (`file` or `file:line`).
    pub place: String,
    pub now: Timestamp,
    pub recorded: Figures,
    pub candidate: Figures,
    pub types: Vec<TypeChange>,
    pub machines: Vec<MachineChange>,
}

/// Totals of one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub figures: Figures,
    pub machine_hours: f64,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    pub passes: u64,
    pub differing_passes: u64,
    pub first_pass: Option<Seconds>,
    pub last_pass: Option<Seconds>,
    /// Fingerprints of the configurations the passes were recorded under.
    pub recorded_configs: BTreeSet<String>,
    pub candidate_config: String,
    pub recorded: Totals,
    pub candidate: Totals,
    pub differences: Vec<PassDiff>,
}

/// The status the engine saw in a recorded pass.
pub fn observed_status(record: &PassRecord) -> QueueStatus {
    if let Some(s) = &record.queue_status {
        return s.clone();
    }
    // As the live driver reads it: a document that does not parse is "unknown".
    let parsed = if record.status.get("queueRunner").is_some() {
        parse_rust_status(&record.status.to_string())
    } else {
        status::parse_status_value(&record.status)
    };
    parsed.unwrap_or_else(QueueStatus::unknown)
}

fn type_figures(plan: &Plan) -> BTreeMap<&str, (u64, u64, u64)> {
    plan.types.iter().map(|t| (t.machine_type.as_str(), (t.wanted, t.allowed, t.created))).collect()
}

fn machine_decisions(plan: &Plan) -> BTreeMap<&str, (Action, bool)> {
    plan.machines.iter().map(|m| (m.deployment.as_str(), (m.action, m.listed))).collect()
}

/// The keys whose values differ between two maps, with both values (`None`: absent).
fn changed<'m, V: Copy + PartialEq>(
    a: &BTreeMap<&'m str, V>,
    b: &BTreeMap<&'m str, V>,
) -> impl Iterator<Item = (&'m str, Option<V>, Option<V>)> {
    let keys: BTreeSet<&'m str> = a.keys().chain(b.keys()).copied().collect();
    let pairs: Vec<_> = keys.into_iter().map(|k| (k, a.get(k).copied(), b.get(k).copied())).collect();
    pairs.into_iter().filter(|(_, x, y)| x != y)
}

/// Compares a candidate configuration with recorded passes, one at a time, in order.
pub struct Replay<'a> {
    candidate: &'a Config,
    report: ReplayReport,
    /// The previous pass's time and machines left running (recorded, candidate).
    previous: Option<(Seconds, u64, u64)>,
    intervals: Vec<Seconds>,
}

impl<'a> Replay<'a> {
    pub fn new(candidate: &'a Config) -> Replay<'a> {
        let report = ReplayReport { candidate_config: config_fingerprint(candidate), ..ReplayReport::default() };
        Replay { candidate, report, previous: None, intervals: vec![] }
    }

    /// Decides `record`'s pass under the candidate and compares.
    pub fn push(&mut self, record: &PassRecord, place: &str) {
        let observation = Observation { status: observed_status(record), fleet: record.fleet.clone() };
        let plan = engine::decide(self.candidate, &observation, record.now);
        let recorded = Figures::of(&record.plan);
        let candidate = Figures::of(&plan);
        let r = &mut self.report;
        r.passes += 1;
        r.first_pass.get_or_insert(record.now.secs());
        r.last_pass = Some(record.now.secs());
        if let Some(fp) = &record.config_fingerprint {
            r.recorded_configs.insert(fp.clone());
        }
        r.recorded.figures.add(&recorded);
        r.candidate.figures.add(&candidate);
        if let Some((then, rec_running, cand_running)) = self.previous {
            let dt = (record.now.secs() - then).max(0);
            self.intervals.push(dt);
            r.recorded.machine_hours += rec_running as f64 * dt as f64 / 3600.0;
            r.candidate.machine_hours += cand_running as f64 * dt as f64 / 3600.0;
        }
        self.previous = Some((record.now.secs(), recorded.running, candidate.running));

        let types: Vec<TypeChange> = changed(&type_figures(&record.plan), &type_figures(&plan))
            .map(|(t, recorded, candidate)| TypeChange {
                machine_type: t.to_string(),
                recorded: recorded.unwrap_or_default(),
                candidate: candidate.unwrap_or_default(),
            })
            .collect();
        let machines: Vec<MachineChange> = changed(&machine_decisions(&record.plan), &machine_decisions(&plan))
            .map(|(d, recorded, candidate)| MachineChange { deployment: d.to_string(), recorded, candidate })
            .collect();
        if !types.is_empty() || !machines.is_empty() {
            r.differing_passes += 1;
            r.differences.push(PassDiff {
                place: place.to_string(),
                now: record.now,
                recorded,
                candidate,
                types,
                machines,
            });
        }
    }

    pub fn finish(mut self) -> ReplayReport {
        if let Some((_, rec_running, cand_running)) = self.previous {
            self.intervals.sort_unstable();
            let last = self.intervals.get(self.intervals.len() / 2).copied().unwrap_or(0);
            self.report.recorded.machine_hours += rec_running as f64 * last as f64 / 3600.0;
            self.report.candidate.machine_hours += cand_running as f64 * last as f64 / 3600.0;
        }
        self.report
    }
}

fn decision(d: Option<(Action, bool)>) -> String {
    match d {
        None => "-".into(),
        Some((a, listed)) => format!("{a:?}{}", if listed { "" } else { " (not listed)" }).to_lowercase(),
    }
}

impl ReplayReport {
    /// The report for people; `limit` caps the passes listed one by one.
    pub fn to_text(&self, limit: usize) -> String {
        let mut s = format!(
            "replayed {} passes ({}..{}), recorded under config {}; candidate config {}\n",
            self.passes,
            self.first_pass.unwrap_or(0),
            self.last_pass.unwrap_or(0),
            if self.recorded_configs.is_empty() {
                "unknown".to_string()
            } else {
                self.recorded_configs.iter().cloned().collect::<Vec<_>>().join(", ")
            },
            self.candidate_config
        );
        s += &format!("passes whose decisions differ: {}\n\n", self.differing_passes);
        s += &format!("{:<22} {:>12} {:>12} {:>12}\n", "summed over passes", "recorded", "candidate", "change");
        let (r, c) = (&self.recorded.figures, &self.candidate.figures);
        for (name, a, b) in [
            ("machines wanted", r.wanted, c.wanted),
            ("machines allowed", r.allowed, c.allowed),
            ("created", r.created, c.created),
            ("kept", r.kept, c.kept),
            ("drained", r.drained, c.drained),
            ("stopped", r.stopped, c.stopped),
            ("destroyed", r.destroyed, c.destroyed),
        ] {
            s += &format!("{name:<22} {a:>12} {b:>12} {:>+12}\n", b as i64 - a as i64);
        }
        let (a, b) = (self.recorded.machine_hours, self.candidate.machine_hours);
        s += &format!("{:<22} {a:>12.1} {b:>12.1} {:>+12.1}\n", "machine-hours implied", b - a);
        for d in self.differences.iter().take(limit) {
            s += &format!("\npass at {} ({}):\n", d.now, d.place);
            for t in &d.types {
                s += &format!(
                    "  {}: wanted {} -> {}, allowed {} -> {}, created {} -> {}\n",
                    t.machine_type,
                    t.recorded.0,
                    t.candidate.0,
                    t.recorded.1,
                    t.candidate.1,
                    t.recorded.2,
                    t.candidate.2
                );
            }
            for m in &d.machines {
                s += &format!("  {}: {} -> {}\n", m.deployment, decision(m.recorded), decision(m.candidate));
            }
        }
        if self.differences.len() > limit {
            s += &format!("\n... {} more passes differ (--all lists them)\n", self.differences.len() - limit);
        }
        s
    }
}
