//! The Rust queue runner's REST documents (DESIGN section 10), read into the
//! normalised [`QueueStatus`] the engine decides from, with the facts the
//! C++ shape lacks: demand per feature set, and per builder its last ping and
//! the tries its running steps have used.
//!
//! Shapes, from NixOS/hydra `subprojects/hydra-queue-runner/src/io/`
//! (`queue_runner.rs`, `machine.rs`, `step_info.rs`, `response_types.rs`):
//! `GET /status` is `{queueRunner: {status, time (RFC 3339), uptime,
//! queueStats: {system: {activeRunnable, totalRunnable, ...}}}, machines,
//! ...}`; `GET /status/machines` is `{machines: {hostname: {systems,
//! stats: {currentJobs, lastPing, ...}, jobs: [drv]}}}`; `GET
//! /status/queues` is `{queues: {system: [{drvPath, alreadyScheduled,
//! finished, cancelled, tries, ...}]}}`. A queue holds every step of its
//! system the runner has taken up, the running ones (`alreadyScheduled`)
//! and those in retry back-off included (`state/queue.rs`), so
//! `totalRunnable` counts running steps and `activeRunnable` is that part.
//!
//! The mapping: a type `system` has `runnable = totalRunnable -
//! activeRunnable` less the steps of that system requiring features, which
//! go to the type `system:features` (features from each queued step's
//! `.drv`, through `features_of`: bare `HASH-name.drv` names, the caller
//! prepends the store directory); `running` likewise from the scheduled
//! steps. Runnables of `i686-linux` fold into `x86_64-linux`, as for the
//! C++ runner. Builders are keyed by the hostname they registered with;
//! `currentJobs` is the larger of `stats.currentJobs` and the length of
//! `jobs`, so a builder the two disagree about counts as busy; its
//! `idleSince` is not read (unreliable there: the engine keeps its own
//! record). Every connected builder is listed, so the machines are known.
//!
//! Pure: the documents and the feature lookup come in, a status comes out.

use crate::adapters::queue::parse_rfc3339;
use crate::model::{BuilderLiveness, BuilderStatus, QueueStatus, Seconds, TypeStatus};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The three documents of one reading.
#[derive(Debug, Clone, Copy)]
pub struct Documents<'a> {
    pub status: &'a Value,
    pub machines: &'a Value,
    pub queues: &'a Value,
}

/// Reads the documents. `features_of` gives a bare drv name's required
/// features (an error names the file and what is wrong with it). An error
/// means the reading cannot be trusted: the caller treats the status as
/// unknown, so nothing is stopped or destroyed on it.
pub fn parse(
    docs: Documents<'_>,
    features_of: &mut dyn FnMut(&str) -> Result<BTreeSet<String>, String>,
) -> Result<QueueStatus, String> {
    let Value::Object(top) = docs.status else { return Err("/status: expected a JSON object".into()) };
    let Some(Value::Object(runner)) = top.get("queueRunner") else {
        return Err("/status: no `queueRunner` object".into());
    };
    match runner.get("status").and_then(Value::as_str) {
        Some("up") => {}
        Some(other) => return Ok(QueueStatus::down(format!("the queue runner reports status {other:?}"))),
        None => return Err("/status: `queueRunner.status` is missing".into()),
    }
    let time = match runner.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(parse_rfc3339(s).ok_or_else(|| format!("/status: `queueRunner.time` {s:?} is not RFC 3339"))?)
        }
        Some(other) => return Err(format!("/status: `queueRunner.time` is not a time: {other}")),
    };
    let uptime = match runner.get("uptime") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .ok_or("/status: `queueRunner.uptime` is not a number of seconds")? as Seconds,
    };
    let stats = match runner.get("queueStats") {
        Some(Value::Object(stats)) => stats,
        _ => return Err("/status: `queueRunner.queueStats` is not an object".into()),
    };

    let queues = queue_entries(docs.queues)?;
    let mut tries_of: BTreeMap<&str, u32> = BTreeMap::new();
    let mut by_type: BTreeMap<String, TypeStatus> = BTreeMap::new();
    for (system, entries) in &queues {
        for e in entries {
            tries_of.insert(e.drv_path, e.tries);
            if e.finished || e.cancelled {
                continue;
            }
            let features = features_of(e.drv_path)?;
            if features.is_empty() {
                continue;
            }
            let key = type_key(system, &features);
            let t = by_type.entry(key).or_default();
            if e.scheduled {
                t.running += 1;
            } else {
                t.runnable += 1;
            }
        }
    }
    // Plain systems: the runner's own figures, less what needs features.
    let mut machine_types = BTreeMap::new();
    let mut active_steps: u64 = 0;
    for (system, s) in stats {
        let count = |key: &str| -> Result<u64, String> {
            match s.get(key) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v.as_u64().ok_or_else(|| format!("/status: queueStats.{system}.{key} is not a count")),
            }
        };
        let total = count("totalRunnable")?;
        let active = count("activeRunnable")?;
        active_steps = active_steps.saturating_add(active);
        let prefix = format!("{system}:");
        let (featured_runnable, featured_running) = by_type
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .fold((0u64, 0u64), |(a, b), (_, t)| (a + t.runnable, b + t.running));
        machine_types.insert(
            system.clone(),
            TypeStatus {
                runnable: total.saturating_sub(active).saturating_sub(featured_runnable),
                running: active.saturating_sub(featured_running),
                last_active: None,
            },
        );
    }
    machine_types.extend(by_type);
    crate::status::squash_i686(&mut machine_types);

    let mut machines = BTreeMap::new();
    let mut liveness = BTreeMap::new();
    let ms = match docs.machines.get("machines") {
        Some(Value::Object(ms)) => ms.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err("/status/machines: `machines` is not an object".into()),
    };
    for (host, m) in &ms {
        let at = |what: &str| format!("/status/machines: machines.{host}.{what}");
        let stats = m.get("stats");
        let count = |key: &str| -> Result<Option<i64>, String> {
            match stats.and_then(|s| s.get(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    v.as_i64().map(Some).ok_or_else(|| format!("{} is not a whole number", at(&format!("stats.{key}"))))
                }
            }
        };
        let current = count("currentJobs")?.unwrap_or(0);
        if current < 0 {
            return Err(format!("{} is negative", at("stats.currentJobs")));
        }
        let jobs: Vec<&str> = match m.get("jobs") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(jobs)) => jobs
                .iter()
                .map(|j| j.as_str().ok_or_else(|| format!("{} holds a non-string", at("jobs"))))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{} is not a list", at("jobs"))),
        };
        let current_jobs = (current as u64).max(jobs.len() as u64);
        let last_ping = count("lastPing")?.filter(|&t| t > 0);
        let running_tries = jobs.iter().filter_map(|j| tries_of.get(j).copied()).max();
        machines.insert(host.clone(), BuilderStatus { enabled: true, current_jobs, idle_since: None });
        liveness.insert(host.clone(), BuilderLiveness { last_ping, running_tries });
    }
    let mut status = crate::status::up(time, uptime, (true, machine_types), machines, Some(active_steps));
    // The runner lists every builder connected to it, even when none is.
    status.machines_known = true;
    status.liveness = liveness;
    Ok(status)
}

/// `system` or `system:f1,f2` with the features sorted, as Hydra spells types.
pub fn type_key(system: &str, features: &BTreeSet<String>) -> String {
    if features.is_empty() {
        return system.to_string();
    }
    let joined: Vec<&str> = features.iter().map(String::as_str).collect();
    format!("{system}:{}", joined.join(","))
}

/// One step of a system's queue.
#[derive(Debug, Clone, Copy)]
struct QueueEntry<'a> {
    drv_path: &'a str,
    scheduled: bool,
    finished: bool,
    cancelled: bool,
    tries: u32,
}

fn queue_entries(doc: &Value) -> Result<BTreeMap<&str, Vec<QueueEntry<'_>>>, String> {
    let Some(Value::Object(queues)) = doc.get("queues") else {
        return Err("/status/queues: no `queues` object".into());
    };
    let mut out = BTreeMap::new();
    for (system, entries) in queues {
        let Value::Array(entries) = entries else {
            return Err(format!("/status/queues: queues.{system} is not a list"));
        };
        let mut list = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let at = |what: &str| format!("/status/queues: queues.{system}[{i}].{what}");
            let drv_path = e.get("drvPath").and_then(Value::as_str).ok_or_else(|| at("drvPath is missing"))?;
            if drv_path.is_empty() || drv_path.contains('/') || !drv_path.ends_with(".drv") {
                return Err(format!("{} {drv_path:?} is not a bare `HASH-name.drv`", at("drvPath")));
            }
            let flag = |key: &str| -> Result<bool, String> {
                match e.get(key) {
                    None | Some(Value::Null) => Ok(false),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(format!("{} is not a boolean", at(key))),
                }
            };
            let tries = match e.get("tries") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().and_then(|t| u32::try_from(t).ok()).ok_or_else(|| at("tries is not a count"))?,
            };
            list.push(QueueEntry {
                drv_path,
                scheduled: flag("alreadyScheduled")?,
                finished: flag("finished")?,
                cancelled: flag("cancelled")?,
                tries,
            });
        }
        out.insert(system.as_str(), list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn features(drv: &str) -> Result<BTreeSet<String>, String> {
        Ok(match drv {
            d if d.contains("bp") => ["big-parallel".to_string()].into(),
            d if d.contains("kvm") => ["kvm".to_string(), "big-parallel".to_string()].into(),
            d if d.contains("missing") => return Err(format!("{d}: no such file")),
            _ => BTreeSet::new(),
        })
    }

    fn entry(drv: &str, scheduled: bool, tries: u32) -> Value {
        json!({"drvPath": drv, "alreadyScheduled": scheduled, "runnable": true, "finished": false,
               "cancelled": false, "runnableSince": "2026-01-01T00:00:00Z", "tries": tries})
    }

    #[test]
    fn demand_splits_by_feature_set_and_builders_carry_liveness() {
        let status = json!({"queueRunner": {"status": "up", "time": "2023-11-14T22:13:20Z", "uptime": 99.5,
            "queueStats": {"x86_64-linux": {"activeRunnable": 2, "totalRunnable": 7},
                           "aarch64-linux": {"activeRunnable": 0, "totalRunnable": 0}}}});
        let queues = json!({"queues": {"x86_64-linux": [
            entry("a-plain.drv", false, 0), entry("b-plain.drv", true, 4), entry("c-bp.drv", false, 0),
            entry("d-bp.drv", true, 1), entry("e-kvm.drv", false, 2), entry("f-plain.drv", false, 0),
            entry("g-plain.drv", false, 1)],
            "aarch64-linux": []}});
        let machines = json!({"machines": {
            "hp-0": {"stats": {"currentJobs": 1, "lastPing": 1_699_999_990}, "jobs": ["b-plain.drv"]},
            "hp-1": {"stats": {"currentJobs": 0, "lastPing": 0}, "jobs": ["d-bp.drv"]},
            "hp-2": {"stats": {"currentJobs": 0, "lastPing": 1_699_999_000}, "jobs": []}}, "machinesCount": 3});
        let s = parse(Documents { status: &status, machines: &machines, queues: &queues }, &mut features).unwrap();
        assert!(s.is_up() && s.machines_known);
        assert_eq!((s.time, s.uptime), (Some(1_700_000_000), 99));
        let t = |k: &str| s.machine_types[k].clone();
        assert_eq!((t("x86_64-linux").runnable, t("x86_64-linux").running), (3, 1));
        assert_eq!((t("x86_64-linux:big-parallel").runnable, t("x86_64-linux:big-parallel").running), (1, 1));
        assert_eq!(t("x86_64-linux:big-parallel,kvm").runnable, 1);
        assert_eq!(t("aarch64-linux").runnable, 0);
        assert_eq!(s.active_steps, Some(2));
        assert_eq!(s.machines["hp-0"].current_jobs, 1);
        assert_eq!(s.machines["hp-1"].current_jobs, 1, "a job listed counts even when currentJobs says 0");
        assert_eq!(s.liveness["hp-0"], BuilderLiveness { last_ping: Some(1_699_999_990), running_tries: Some(4) });
        assert_eq!(s.liveness["hp-1"].last_ping, None, "lastPing 0 is a builder that has not pinged yet");
        assert_eq!(s.liveness["hp-2"], BuilderLiveness { last_ping: Some(1_699_999_000), running_tries: None });
    }

    #[test]
    fn bad_documents_are_errors_naming_the_field() {
        let status = json!({"queueRunner": {"status": "up", "queueStats": {}}});
        let machines = json!({"machines": {}});
        let ok_queues = json!({"queues": {}});
        let docs = |q: &Value| parse(Documents { status: &status, machines: &machines, queues: q }, &mut features);
        assert!(docs(&ok_queues).unwrap().machines.is_empty());
        for (queues, want) in [
            (json!({}), "no `queues`"),
            (json!({"queues": {"x": [{"drvPath": "/nix/store/a.drv"}]}}), "bare"),
            (json!({"queues": {"x": [{"drvPath": "a.drv", "tries": -1}]}}), "tries"),
            (json!({"queues": {"x": [{"drvPath": "a.drv", "alreadyScheduled": 1}]}}), "alreadyScheduled"),
            (json!({"queues": {"x": [{"drvPath": "a-missing.drv"}]}}), "no such file"),
        ] {
            let e = docs(&queues).unwrap_err();
            assert!(e.contains(want), "{queues}: {e}");
        }
        let down = json!({"queueRunner": {"status": "down"}});
        let d = parse(Documents { status: &down, machines: &machines, queues: &ok_queues }, &mut features).unwrap();
        assert!(!d.is_up());
        let bad_machine = json!({"machines": {"h": {"stats": {"currentJobs": -2}}}});
        let e = parse(Documents { status: &status, machines: &bad_machine, queues: &ok_queues }, &mut features);
        assert!(e.unwrap_err().contains("machines.h.stats.currentJobs"));
    }
}
