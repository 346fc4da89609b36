//! Recorded passes: what the engine saw and decided in one pass, as the
//! simulator (`simulate --record-passes`, one pretty JSON file per pass) and
//! production (`run --record DIR`, one JSON line per pass in size-rotated
//! files) write it, and reading such records back for `replay`.
//!
//! A record holds the time, the status document as the queue runner printed
//! it, the status as the engine saw it (production only: the simulator's
//! document always parses to it), the fleet with the provisioner's memory,
//! a fingerprint of the configuration and the plan. This module writes and
//! reads files; it decides nothing and compares nothing (`replay` does).

use crate::config::Config;
use crate::engine::Plan;
use crate::model::{Fleet, QueueStatus, Seconds, Timestamp};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// One pass, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassRecord {
    /// The time of the pass, Unix seconds (a fraction when the pass had one).
    pub now: Timestamp,
    /// The status document as the queue runner printed it (`null` when it
    /// printed none, e.g. the status command failed).
    pub status: serde_json::Value,
    /// The status as the engine saw it, when recorded (production passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_status: Option<QueueStatus>,
    /// The fleet with the provisioner's memory of each deployment.
    pub fleet: Fleet,
    /// [`config_fingerprint`] of the configuration that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_fingerprint: Option<String>,
    pub plan: Plan,
}

impl PassRecord {
    /// The record of a production pass.
    pub fn production(
        config: &Config,
        now: Timestamp,
        status_document: Option<&serde_json::Value>,
        observation: &crate::model::Observation,
        plan: &Plan,
    ) -> PassRecord {
        PassRecord {
            now,
            status: status_document.cloned().unwrap_or(serde_json::Value::Null),
            queue_status: Some(observation.status.clone()),
            fleet: observation.fleet.clone(),
            config_fingerprint: Some(config_fingerprint(config)),
            plan: plan.clone(),
        }
    }
}

/// A short, stable fingerprint of a validated configuration (FNV-1a of its
/// JSON form): equal fingerprints, equal configurations.
pub fn config_fingerprint(config: &Config) -> String {
    let text = serde_json::to_string(config).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The file production passes are appended to, inside the record directory.
pub const CURRENT_FILE: &str = "passes.jsonl";

/// Appends production passes to `dir/passes.jsonl`, one JSON line each.
/// When a line would take the file past `max_bytes`, the file is renamed to
/// `passes-<now, 15 digits>.jsonl` first (names that sort in time order,
/// before the current file) and only the newest `keep` rotated files are
/// kept (0 keeps all).
#[derive(Debug, Clone)]
pub struct Recorder {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

impl Recorder {
    /// The recorder `config` asks for (`recordMaxBytes`, `recordKeep`), writing into `dir`.
    pub fn for_config(dir: &Path, config: &Config) -> Recorder {
        Recorder { dir: dir.to_path_buf(), max_bytes: config.record_max_bytes, keep: config.record_keep }
    }

    pub fn append(&self, record: &PassRecord) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let current = self.dir.join(CURRENT_FILE);
        let size = std::fs::metadata(&current).map_or(0, |m| m.len());
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            self.rotate(&current, record.now.secs())?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)
            .with_context(|| format!("cannot open {}", current.display()))?;
        // One write: an append of one buffer does not interleave with another's.
        f.write_all(&line).with_context(|| format!("cannot write {}", current.display()))?;
        f.sync_data().with_context(|| format!("cannot write {}", current.display()))?;
        Ok(())
    }

    fn rotate(&self, current: &Path, now: Seconds) -> anyhow::Result<()> {
        let mut n = now.max(0);
        let rotated = loop {
            let p = self.dir.join(format!("passes-{n:015}.jsonl"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        std::fs::rename(current, &rotated)
            .with_context(|| format!("cannot rotate {} to {}", current.display(), rotated.display()))?;
        if self.keep > 0 {
            let mut old = rotated_files(&self.dir)?;
            while old.len() > self.keep as usize {
                let oldest = old.remove(0);
                std::fs::remove_file(&oldest).with_context(|| format!("cannot remove {}", oldest.display()))?;
            }
        }
        Ok(())
    }
}

fn rotated_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![];
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with("passes-") && name.ends_with(".jsonl") {
            files.push(dir.join(name));
        }
    }
    files.sort();
    Ok(files)
}

/// The record files under `path`, in the order their passes happened: a
/// file itself; or a directory's `*.jsonl` and `*.json` files by name (a
/// `simulate --out` directory's `passes/` is looked into).
pub fn record_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        if !path.exists() {
            anyhow::bail!("{}: no such file or directory", path.display());
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let dir = if path.join("passes").is_dir() { path.join("passes") } else { path.to_path_buf() };
    let mut files = vec![];
    for e in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "jsonl" || x == "json") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no recorded passes (*.jsonl or *.json)", dir.display());
    }
    Ok(files)
}

/// Reads every record in `file` into `each`, with its place (`file:line`
/// for JSON lines). A record that is not valid is an error naming its place.
pub fn read_records(file: &Path, mut each: impl FnMut(PassRecord, &str) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {shown}"))?;
    if file.extension().is_some_and(|x| x == "jsonl") {
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {shown}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{shown}:{}", i + 1);
            let record: PassRecord =
                serde_json::from_str(&line).with_context(|| format!("{at}: not a recorded pass"))?;
            each(record, &at)?;
        }
        Ok(())
    } else {
        let record: PassRecord = serde_json::from_reader(std::io::BufReader::new(f))
            .with_context(|| format!("{shown}: not a recorded pass"))?;
        each(record, &shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine;
    use crate::model::Observation;

    fn record(now: Seconds) -> PassRecord {
        let config = Config::from_json_str(r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix"}}}"#).unwrap();
        let status = serde_json::json!({"status": "up", "time": now, "uptime": 100000,
            "machineTypes": {"x86_64-linux": {"runnable": 5, "running": 0}}, "machines": {}});
        let observation =
            Observation { status: crate::status::parse_status_value(&status).unwrap(), fleet: Fleet::default() };
        let plan = engine::decide(&config, &observation, now);
        PassRecord {
            now: now.into(),
            status,
            queue_status: Some(observation.status),
            fleet: observation.fleet,
            config_fingerprint: Some(config_fingerprint(&config)),
            plan,
        }
    }

    #[test]
    fn lines_rotate_by_size_and_old_files_go() {
        let tmp = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&record(1)).unwrap().len() as u64 + 1;
        let rec = Recorder { dir: tmp.path().join("rec"), max_bytes: line * 2, keep: 2 };
        for now in 1..=7 {
            rec.append(&record(now)).unwrap();
        }
        // Two lines per file: 1-2, 3-4, 5-6 rotated (the first removed), 7 current.
        let files = record_files(&rec.dir).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["passes-000000000000005.jsonl", "passes-000000000000007.jsonl", "passes.jsonl"]);
        let mut seen = vec![];
        for f in &files {
            read_records(f, |r, _| {
                seen.push(r.now.secs());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(seen, [3, 4, 5, 6, 7]);
        assert_eq!(record(9).config_fingerprint, record(10).config_fingerprint);
    }

    #[test]
    fn a_bad_line_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("p.jsonl");
        std::fs::write(&p, format!("{}\n{{\"now\": 1}}\n", serde_json::to_string(&record(1)).unwrap())).unwrap();
        let e = read_records(&p, |_, _| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("p.jsonl:2: not a recorded pass"), "{e:#}");
    }
}
