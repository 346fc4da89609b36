//! Reading the Rust queue runner (`runner = "rust"`): its REST documents
//! `/status`, `/status/machines` and `/status/queues` over http or https
//! (through [`super::queue::http_get`], so `statusTokenFile` and
//! `statusCaFile` apply), and the required features of each queued step
//! from its `.drv` file in `storeDir`, which the runner does not export.
//!
//! `statusUrl` names `/status`; the other two are found beside it. The
//! documents are mapped by [`crate::runner_status`]. Failures are data, as
//! for the C++ runner: an unreachable `/status` is *down*; a failing or
//! garbled `/status/machines` or `/status/queues`, or a `.drv` that cannot
//! be read, makes the reading *unknown*, so the engine stops and destroys
//! nothing on it, and the problem names the URL or file.
//!
//! **Cost of the features.** Every queued step's `.drv` is read once: the
//! facts are cached by drv path (store paths never change) in
//! `<stateDir>/drv-features.json`, which keeps only the paths of the last
//! reading, so it is as large as the queue (about 100 bytes a step). A
//! first pass over a mass rebuild reads tens of thousands of files of a few
//! kilobytes each from the local store (seconds); later passes read only
//! the steps that arrived since. The provisioner must therefore run where
//! the runner's store is (`storeDir`, default `/nix/store`). A cache that
//! cannot be read is rebuilt, one that cannot be written only costs reads.
//!
//! This module decides nothing.

use super::files;
use super::queue::{StatusEndpoint, StatusReading, http_get};
use crate::config::{Config, RustRunnerConfig};
use crate::derivation::{MAX_DRV_BYTES, parse_drv};
use crate::model::QueueStatus;
use crate::runner_status::{self, Documents};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name of the drv cache in the state directory.
pub const DRV_CACHE: &str = "drv-features.json";

/// The URL of a sibling of `/status`: `http://h:8080/status` and `machines`
/// give `http://h:8080/status/machines` (a query string is kept).
pub fn sibling_url(status_url: &str, leaf: &str) -> String {
    let (base, query) = match status_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (status_url, None),
    };
    let mut url = format!("{}/{leaf}", base.trim_end_matches('/'));
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

fn endpoint<'a>(config: &'a Config, url: &'a str) -> StatusEndpoint<'a> {
    StatusEndpoint { url, token_file: config.status_token_file.as_deref(), ca_file: config.status_ca_file.as_deref() }
}

fn get_json(config: &Config, url: &str, timeout: Duration) -> Result<Value, String> {
    let body = http_get(&endpoint(config, url), timeout).map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON ({e})"))
}

/// Reads the runner's status the way `runner = "rust"` needs it.
pub fn read_status(config: &Config, rust: &RustRunnerConfig, timeout: Duration) -> StatusReading {
    let Some(url) = config.status_url.as_deref() else {
        return unknown("statusUrl is not set".into(), None);
    };
    let status = match get_json(config, url, timeout) {
        Ok(v) => v,
        Err(e) => {
            let problem = format!("status URL {e}");
            return StatusReading {
                status: QueueStatus::down(problem.clone()),
                problem: Some(problem),
                document: None,
            };
        }
    };
    let machines = match get_json(config, &sibling_url(url, "machines"), timeout) {
        Ok(v) => v,
        Err(e) => return unknown(e, Some(status)),
    };
    let queues = match get_json(config, &sibling_url(url, "queues"), timeout) {
        Ok(v) => v,
        Err(e) => return unknown(e, Some(status)),
    };
    let cache_path = config.state_dir.join(DRV_CACHE);
    let mut cache = DrvCache::load(&cache_path, &rust.store_dir);
    let parsed =
        runner_status::parse(Documents { status: &status, machines: &machines, queues: &queues }, &mut |drv| {
            cache.features(drv)
        });
    let document = Some(serde_json::json!({"status": status, "machines": machines, "queues": queues}));
    match parsed {
        Ok(s) => {
            if let Err(e) = cache.save(&cache_path) {
                tracing::warn!("cannot write the drv cache {}: {e:#}", cache_path.display());
            }
            tracing::debug!("drv features: {} read from the store, {} from the cache", cache.read, cache.hits);
            StatusReading { status: s, problem: None, document }
        }
        Err(e) => unknown(format!("the Rust runner's status from {url}: {e}"), document),
    }
}

fn unknown(problem: String, document: Option<Value>) -> StatusReading {
    StatusReading { status: QueueStatus::unknown(problem.clone()), problem: Some(problem), document }
}

/// The builders connected now and their jobs (`/status/machines` alone),
/// read right before a builder's service is stopped, to catch a step
/// dispatched since the pass read the status.
pub fn current_jobs(config: &Config, timeout: Duration) -> Result<BTreeMap<String, u64>, String> {
    let url = config.status_url.as_deref().ok_or("statusUrl is not set")?;
    let machines = get_json(config, &sibling_url(url, "machines"), timeout)?;
    let Some(Value::Object(ms)) = machines.get("machines") else {
        return Err(format!("{}: no `machines` object", sibling_url(url, "machines")));
    };
    Ok(ms
        .iter()
        .map(|(host, m)| {
            let stats = m.pointer("/stats/currentJobs").and_then(Value::as_u64).unwrap_or(0);
            let jobs = m.get("jobs").and_then(Value::as_array).map_or(0, |j| j.len() as u64);
            (host.clone(), stats.max(jobs))
        })
        .collect())
}

/// Required features by drv name, read from the store once and then kept.
struct DrvCache {
    store_dir: PathBuf,
    known: BTreeMap<String, Vec<String>>,
    /// The paths asked for in this reading (the only ones saved).
    used: BTreeMap<String, Vec<String>>,
    read: u64,
    hits: u64,
}

impl DrvCache {
    fn load(path: &Path, store_dir: &Path) -> DrvCache {
        let known = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!("drv cache {} is corrupt ({e}); reading every .drv again", path.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        DrvCache { store_dir: store_dir.to_path_buf(), known, used: BTreeMap::new(), read: 0, hits: 0 }
    }

    fn features(&mut self, drv: &str) -> Result<BTreeSet<String>, String> {
        if let Some(f) = self.used.get(drv) {
            return Ok(f.iter().cloned().collect());
        }
        let features = match self.known.remove(drv) {
            Some(f) => {
                self.hits += 1;
                f
            }
            None => {
                let read = read_features(&self.store_dir.join(drv))?;
                self.read += 1;
                read.into_iter().collect()
            }
        };
        let set = features.iter().cloned().collect();
        self.used.insert(drv.to_string(), features);
        Ok(set)
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        if self.read == 0 && self.known.is_empty() {
            return Ok(()); // nothing new and nothing dropped
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        files::write_atomically(path, serde_json::to_string(&self.used)?.as_bytes())
    }
}

/// The required features of the derivation at `path`.
pub fn read_features(path: &Path) -> Result<BTreeSet<String>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = vec![];
    file.take(MAX_DRV_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_DRV_BYTES {
        return Err(format!("{shown} is larger than {MAX_DRV_BYTES} bytes: not a derivation"));
    }
    parse_drv(&bytes).map(|f| f.required_features).map_err(|e| format!("{shown} is not a derivation: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_of_status() {
        assert_eq!(sibling_url("http://127.0.0.1:8080/status", "queues"), "http://127.0.0.1:8080/status/queues");
        assert_eq!(sibling_url("https://r/status/", "machines"), "https://r/status/machines");
        assert_eq!(sibling_url("http://r/status?x=1", "queues"), "http://r/status/queues?x=1");
    }

    #[test]
    fn the_cache_reads_each_drv_once_and_keeps_only_what_was_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        let drv = |features: &str| {
            format!(
                r#"Derive([("out","/o","","")],[],[],"x86_64-linux","/bin/sh",[],[("requiredSystemFeatures","{features}")])"#
            )
        };
        std::fs::write(store.join("a-x.drv"), drv("kvm")).unwrap();
        std::fs::write(store.join("b-y.drv"), drv("")).unwrap();
        let cache_path = dir.path().join("state").join(DRV_CACHE);
        let mut c = DrvCache::load(&cache_path, &store);
        assert_eq!(c.features("a-x.drv").unwrap(), ["kvm".to_string()].into());
        assert!(c.features("b-y.drv").unwrap().is_empty());
        assert!(c.features("c-z.drv").unwrap_err().contains("c-z.drv"));
        assert_eq!(c.read, 2);
        c.save(&cache_path).unwrap();
        // The files go; the cache still knows them.
        std::fs::remove_file(store.join("a-x.drv")).unwrap();
        let mut c = DrvCache::load(&cache_path, &store);
        assert_eq!(c.features("a-x.drv").unwrap(), ["kvm".to_string()].into());
        assert_eq!((c.read, c.hits), (0, 1));
        c.save(&cache_path).unwrap();
        let saved: BTreeMap<String, Vec<String>> =
            serde_json::from_str(&std::fs::read_to_string(&cache_path).unwrap()).unwrap();
        assert_eq!(saved.keys().collect::<Vec<_>>(), ["a-x.drv"], "b-y.drv was not asked for: dropped");
        std::fs::write(&cache_path, "{garbled").unwrap();
        let mut c = DrvCache::load(&cache_path, &store);
        assert!(c.features("b-y.drv").unwrap().is_empty());
    }
}
