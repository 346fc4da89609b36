//! Reading the C++ queue runner's status document (`hydra-queue-runner
//! --status`) of every era into a [`QueueStatus`].
//!
//! Eras handled: dumps with `lastActive` (before late 2022) and without; the
//! late-2022 to mid-2023 dumps whose `machines`, `jobsets` and `machineTypes`
//! are `null` or `{}`; machine keys `root@host` (until May 2024) and
//! `ssh://root@host` (since). Unknown fields are ignored. Machine-type keys
//! are read in their canonical spelling (features sorted, as in the config),
//! so a type always meets its configuration. Runnables of
//! `i686-linux...` types are folded into the matching `x86_64-linux...` type,
//! as the original did. This module neither runs the status command (see
//! `adapters::queue`) nor decides anything from the result.

use crate::model::{
    BuilderStatus, QueueHealth, QueueStatus, Seconds, TypeStatus, canonical_type_key, host_of_store_uri,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A status document that is not one of the known forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue runner status from {origin} is garbled: {detail}")]
pub struct StatusError {
    pub origin: String,
    pub detail: String,
}

/// Parses the text of a status dump. `origin` names the source in errors.
///
/// An empty or false-like document (`{}`, `null`, `0`, `""`, `[]`, or no
/// text at all) and `"status": "down"` mean the queue runner is down, as they
/// did for the original; text that is not JSON, or JSON of the wrong shape,
/// is an error.
pub fn parse_status(text: &str, origin: &str) -> Result<QueueStatus, StatusError> {
    let err = |detail: String| StatusError { origin: origin.to_string(), detail };
    if text.trim().is_empty() {
        return Ok(QueueStatus::down("the status command printed nothing"));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON ({e})")))?;
    parse_status_value(&value).map_err(err)
}

fn falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Parses an already-decoded status document (see [`parse_status`]).
pub fn parse_status_value(value: &Value) -> Result<QueueStatus, String> {
    if falsy(value) {
        return Ok(QueueStatus::down("the status document is empty"));
    }
    let Value::Object(top) = value else {
        return Err(format!("expected a JSON object, got {}", short(value)));
    };
    match top.get("status") {
        Some(Value::String(s)) if s == "up" => {}
        Some(Value::String(s)) if s == "down" => {
            return Ok(QueueStatus::down("the queue runner reports status \"down\""));
        }
        Some(other) => return Err(format!("`status` must be \"up\" or \"down\", got {}", short(other))),
        None => return Err("no `status` field".into()),
    }
    let time = opt_seconds(top, "time")?;
    let uptime = opt_seconds(top, "uptime")?.unwrap_or(0);

    let has_machine_types = top.contains_key("machineTypes");
    let mut machine_types: BTreeMap<String, TypeStatus> = BTreeMap::new();
    for (name, body) in section(top, "machineTypes")? {
        let Value::Object(t) = body else {
            return Err(format!("machineTypes.{name} must be an object, got {}", short(body)));
        };
        let at = |k: &str| format!("machineTypes.{name}.{k}");
        let ts = TypeStatus {
            runnable: count(t, "runnable").map_err(|e| format!("{}: {e}", at("runnable")))?,
            running: count(t, "running").map_err(|e| format!("{}: {e}", at("running")))?,
            last_active: opt_seconds(t, "lastActive")
                .map_err(|e| format!("machineTypes.{name}: {e}"))?
                .filter(|&t| t != 0),
        };
        merge_type(&mut machine_types, canonical_type_key(name), ts);
    }
    squash_i686(&mut machine_types);

    let mut machines = BTreeMap::new();
    for (key, body) in section(top, "machines")? {
        let Value::Object(m) = body else {
            return Err(format!("machines.{key} must be an object, got {}", short(body)));
        };
        let enabled = match m.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("machines.{key}.enabled must be a boolean, got {}", short(other))),
        };
        let bs = BuilderStatus {
            enabled,
            current_jobs: count(m, "currentJobs").map_err(|e| format!("machines.{key}.currentJobs: {e}"))?,
            idle_since: opt_seconds(m, "idleSince").map_err(|e| format!("machines.{key}: {e}"))?.filter(|&t| t != 0),
        };
        machines.insert(host_of_store_uri(key).to_string(), bs);
    }

    let active_steps = match top.get("nrActiveSteps") {
        None | Some(Value::Null) => None,
        Some(_) => Some(count(top, "nrActiveSteps").map_err(|e| format!("nrActiveSteps: {e}"))?),
    };
    let types = (has_machine_types, machine_types);
    Ok(up(time, uptime, types, machines, active_steps))
}

/// An "up" status. Its machines are known only if it lists any: an empty
/// (or absent) section cannot tell an idle machine from one it leaves out.
pub fn up(
    time: Option<Seconds>,
    uptime: Seconds,
    (has_machine_types, machine_types): (bool, BTreeMap<String, TypeStatus>),
    machines: BTreeMap<String, BuilderStatus>,
    active_steps: Option<u64>,
) -> QueueStatus {
    let machines_known = !machines.is_empty();
    QueueStatus {
        health: QueueHealth::Up,
        time,
        uptime,
        has_machine_types,
        machine_types,
        machines,
        machines_known,
        active_steps,
        liveness: BTreeMap::new(),
    }
}

/// Adds one type's figures under its canonical key. Hydra spells every key
/// with its features sorted, so two spellings of one type only come from a
/// hand-made document; their figures are added up.
fn merge_type(types: &mut BTreeMap<String, TypeStatus>, key: String, status: TypeStatus) {
    match types.get_mut(&key) {
        Some(t) => {
            t.runnable += status.runnable;
            t.running += status.running;
            t.last_active = t.last_active.max(status.last_active);
        }
        None => {
            types.insert(key, status);
        }
    }
}

/// The original's i686 squash: runnables of `i686-linux...` are added to the
/// `x86_64-linux...` type of the same features; a type with no x86_64 twin is
/// renamed to it. Done in key order so the result does not depend on input order.
/// Running steps are added too (they run on the x86_64 machines), and both
/// sums saturate: a huge count must read as huge, not wrap to nothing.
pub fn squash_i686(types: &mut BTreeMap<String, TypeStatus>) {
    let i686: Vec<String> = types.keys().filter(|k| k.starts_with("i686-linux")).cloned().collect();
    for name in i686 {
        let Some(status) = types.remove(&name) else { continue };
        let target = name.replacen("i686-linux", "x86_64-linux", 1);
        match types.get_mut(&target) {
            Some(t) => {
                t.runnable = t.runnable.saturating_add(status.runnable);
                t.running = t.running.saturating_add(status.running);
            }
            None => {
                types.insert(target, status);
            }
        }
    }
}

/// A section that may be absent, `null` or `{}` (2022-2023 dumps).
fn section<'a>(top: &'a Map<String, Value>, key: &str) -> Result<Vec<(&'a String, &'a Value)>, String> {
    match top.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Object(o)) => Ok(o.iter().collect()),
        Some(Value::Array(a)) if a.is_empty() => Ok(vec![]),
        Some(other) => Err(format!("`{key}` must be an object, got {}", short(other))),
    }
}

fn count(obj: &Map<String, Value>, key: &str) -> Result<u64, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
            .ok_or_else(|| format!("must be a count, got {n}")),
        Some(other) => Err(format!("must be a count, got {}", short(other))),
    }
}

fn opt_seconds(obj: &Map<String, Value>, key: &str) -> Result<Option<Seconds>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be seconds, got {n}")),
        Some(other) => Err(format!("`{key}` must be seconds, got {}", short(other))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}...", s.chars().take(57).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_like_documents_are_down() {
        for doc in ["{}", "null", "0", "\"\"", "[]", "", "  \n", "false", r#"{"status":"down"}"#] {
            let s = parse_status(doc, "t").unwrap();
            assert!(matches!(s.health, QueueHealth::Down { .. }), "{doc}");
            assert_eq!(s.uptime, 0);
        }
    }

    #[test]
    fn garbled_documents_are_errors_not_panics() {
        for doc in [
            "{",
            "[1,2]",
            r#"{"status": 3}"#,
            r#"{"uptime": 5}"#,
            r#"{"status":"up","machines":[1]}"#,
            r#"{"status":"up","machineTypes":{"x":{"runnable":-1}}}"#,
            "\u{0}",
        ] {
            assert!(parse_status(doc, "t").is_err(), "{doc}");
        }
    }

    #[test]
    fn old_era_with_last_active_and_root_at_keys() {
        let doc = r#"{"status":"up","time":1500000000,"uptime":7200,"nrRunnableSteps":30,
            "machineTypes":{"x86_64-linux":{"runnable":20,"running":0,"lastActive":1499999000,"waitTime":5},
                            "i686-linux":{"runnable":7,"running":1}},
            "machines":{"root@10.0.0.1":{"enabled":true,"currentJobs":0,"idleSince":1499999900}}}"#;
        let s = parse_status(doc, "t").unwrap();
        assert_eq!(s.machine_types["x86_64-linux"].runnable, 27);
        assert_eq!(s.machine_types["x86_64-linux"].last_active, Some(1499999000));
        assert!(!s.machine_types.contains_key("i686-linux"));
        assert_eq!(s.machines["10.0.0.1"].idle_since, Some(1499999900));
        assert_eq!(s.uptime, 7200);
    }

    #[test]
    fn null_sections_of_2022_2023_and_ssh_uri_keys() {
        let doc = r#"{"status":"up","time":1680000000,"uptime":12.5,"machines":null,"jobsets":{},"machineTypes":null}"#;
        let s = parse_status(doc, "t").unwrap();
        assert!(s.is_up() && s.machines.is_empty() && s.machine_types.is_empty());
        let doc = r#"{"status":"up","time":1,"uptime":1,"machineTypes":{"i686-linux:kvm":{"runnable":3,"running":0}},
            "machines":{"ssh://root@host.example":{"enabled":false,"currentJobs":2}}}"#;
        let s = parse_status(doc, "t").unwrap();
        assert_eq!(s.machine_types["x86_64-linux:kvm"].runnable, 3);
        assert_eq!(s.machines["host.example"].current_jobs, 2);
        assert!(!s.machines["host.example"].enabled);
    }

    #[test]
    fn up_without_machine_types_is_recorded() {
        let s = parse_status(r#"{"status":"up","uptime":5}"#, "t").unwrap();
        assert!(!s.has_machine_types);
    }
}
