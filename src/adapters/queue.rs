//! Reading the queue runner's status: the C++ runner's `statusCommand`
//! (e.g. `hydra-queue-runner --status`, possibly wrapped in `ssh`), or the
//! Rust runner's `/status` (`statusUrl`) over http or https, with ureq and
//! rustls, an optional bearer token (`statusTokenFile`) and CA file
//! (`statusCaFile`).
//!
//! Failures are data here, as they were for the original: a command that
//! exits non-zero, times out or cannot start, an unreachable URL, and a
//! `"status": "down"` document all mean "queue runner down"
//! ([`QueueStatus::down`]); output that is not a status document means
//! "unknown" ([`QueueStatus::unknown`]), on which the engine stops or
//! destroys nothing. This module does not decide anything from the status.
//!
//! The Rust runner's document is mapped onto the same [`QueueStatus`]:
//! per bare system, `runnable = totalRunnable - activeRunnable` (its
//! `totalRunnable` counts the steps being built, `activeRunnable` is that
//! running part) and `running = activeRunnable`; machines are keyed by the
//! hostname they registered with, `currentJobs` from `stats.currentJobs`.
//! What is lost: machine types with features (the Rust runner queues per
//! bare system, so a `x86_64-linux:kvm` type sees no runnables), `lastActive`
//! (never emitted), and its `idleSince` (unreliable there: the engine tracks
//! idle time itself).

use super::process;
use crate::config::Config;
use crate::model::{BuilderStatus, QueueStatus, Seconds, TypeStatus, host_of_store_uri};
use crate::status::{parse_status, squash_i686};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The status of one pass and, if reading it went wrong, what went wrong
/// (the pass then counts as not fully successful).
#[derive(Debug, Clone)]
pub struct StatusReading {
    pub status: QueueStatus,
    pub problem: Option<String>,
    /// The document as the queue runner printed it, when it was JSON (for `run --record`).
    pub document: Option<Value>,
}

/// Reads the status the way the config says: the Rust runner's REST API
/// with features (`runner = "rust"`, see `rust_runner`), else `statusUrl`
/// if set, else `statusCommand`.
pub fn read_status(config: &Config, timeout: Duration) -> StatusReading {
    if let Some(rust) = &config.rust_runner {
        return super::rust_runner::read_status(config, rust, timeout);
    }
    match &config.status_url {
        Some(url) => read_http(
            &StatusEndpoint {
                url,
                token_file: config.status_token_file.as_deref(),
                ca_file: config.status_ca_file.as_deref(),
            },
            timeout,
        ),
        None => read_command(&config.status_command, timeout),
    }
}

/// Runs `argv` (never through a shell) and parses what it prints.
pub fn read_command(argv: &[String], timeout: Duration) -> StatusReading {
    let shown = argv.join(" ");
    let out = match process::run(argv, None, None, timeout) {
        Ok(out) => out,
        Err(e) => {
            let problem = format!("status command `{shown}`: {e}");
            return StatusReading {
                status: QueueStatus::down(problem.clone()),
                problem: Some(problem),
                document: None,
            };
        }
    };
    if !out.success() {
        let problem = format!("status command `{shown}` failed: {}", out.failure_detail());
        return StatusReading { status: QueueStatus::down(problem.clone()), problem: Some(problem), document: None };
    }
    let document = serde_json::from_str(&out.stdout).ok();
    StatusReading {
        document,
        ..from_parse(parse_status(&out.stdout, &format!("`{shown}`")).map_err(|e| e.to_string()))
    }
}

/// Fetches the Rust runner's `/status` and maps it.
pub fn read_http(endpoint: &StatusEndpoint<'_>, timeout: Duration) -> StatusReading {
    let url = endpoint.url;
    match http_get(endpoint, timeout) {
        Err(e) => {
            let problem = format!("status URL {url}: {e}");
            StatusReading { status: QueueStatus::down(problem.clone()), problem: Some(problem), document: None }
        }
        Ok(body) => StatusReading {
            document: serde_json::from_str(&body).ok(),
            ..from_parse(parse_rust_status(&body).map_err(|e| format!("status from {url} is garbled: {e}")))
        },
    }
}

fn from_parse(parsed: Result<QueueStatus, String>) -> StatusReading {
    match parsed {
        Ok(status) => StatusReading { status, problem: None, document: None },
        Err(detail) => {
            StatusReading { status: QueueStatus::unknown(detail.clone()), problem: Some(detail), document: None }
        }
    }
}

/// Maps the Rust queue runner's `/status` document (see the module comment).
pub fn parse_rust_status(text: &str) -> Result<QueueStatus, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(top) = &value else { return Err("expected a JSON object".into()) };
    let Some(Value::Object(runner)) = top.get("queueRunner") else {
        return Err("no `queueRunner` object".into());
    };
    match runner.get("status").and_then(Value::as_str) {
        Some("up") => {}
        Some(other) => return Ok(QueueStatus::down(format!("the queue runner reports status {other:?}"))),
        None => return Err("`queueRunner.status` is missing".into()),
    }
    let time = match runner.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(parse_rfc3339(s).ok_or_else(|| format!("`queueRunner.time` {s:?} is not RFC 3339"))?)
        }
        Some(Value::Number(n)) => n.as_i64(),
        Some(other) => return Err(format!("`queueRunner.time` is not a time: {other}")),
    };
    let uptime = match runner.get("uptime") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).ok_or("`uptime` is negative")? as Seconds
        }
        Some(other) => return Err(format!("`queueRunner.uptime` is not a number: {other}")),
    };
    let mut machine_types = BTreeMap::new();
    let stats = runner.get("queueStats");
    let has_machine_types = matches!(stats, Some(Value::Object(_)));
    if let Some(Value::Object(stats)) = stats {
        for (system, s) in stats {
            let count = |key: &str| -> Result<u64, String> {
                match s.get(key) {
                    None | Some(Value::Null) => Ok(0),
                    Some(v) => v.as_u64().ok_or_else(|| format!("queueStats.{system}.{key} is not a count")),
                }
            };
            let total = count("totalRunnable")?;
            let active = count("activeRunnable")?;
            machine_types.insert(
                system.clone(),
                TypeStatus { runnable: total.saturating_sub(active), running: active, last_active: None },
            );
        }
    }
    squash_i686(&mut machine_types);
    let mut machines = BTreeMap::new();
    match top.get("machines") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ms)) => {
            for (key, m) in ms {
                let jobs = m.get("stats").and_then(|s| s.get("currentJobs"));
                let current_jobs = match jobs {
                    None | Some(Value::Null) => 0,
                    Some(v) => v.as_u64().ok_or_else(|| format!("machines.{key}.stats.currentJobs is not a count"))?,
                };
                machines.insert(
                    host_of_store_uri(key).to_string(),
                    BuilderStatus { enabled: true, current_jobs, idle_since: None },
                );
            }
        }
        Some(_) => return Err("`machines` is not an object".into()),
    }
    let active_steps = has_machine_types.then(|| machine_types.values().fold(0u64, |n, t| n.saturating_add(t.running)));
    Ok(crate::status::up(time, uptime, (has_machine_types, machine_types), machines, active_steps))
}

/// An RFC 3339 time (`2023-11-14T22:13:20Z`, `...+02:00`, fractions
/// allowed) to Unix seconds, rounded down; `None` for anything else. Parsed
/// by jiff, so no input can make it panic.
pub fn parse_rfc3339(s: &str) -> Option<Seconds> {
    // jiff also reads a few ISO 8601 forms RFC 3339 does not have (a space
    // instead of `T`, no offset for a civil time); a Timestamp needs an offset.
    if !s.as_bytes().get(10).is_some_and(|b| matches!(b, b'T' | b't')) {
        return None;
    }
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The largest status document read (Hydra's `/status` of a big instance,
/// with every jobset, is a few megabytes).
const MAX_STATUS_BYTES: u64 = 64 << 20;

/// How to reach the Rust runner's `/status`: the URL (`http://` or
/// `https://`), a file holding a bearer token, and a PEM file of the
/// certificate authorities to trust instead of the built-in (Mozilla) roots.
#[derive(Debug, Clone, Copy)]
pub struct StatusEndpoint<'a> {
    pub url: &'a str,
    pub token_file: Option<&'a Path>,
    pub ca_file: Option<&'a Path>,
}

/// A GET of the endpoint through ureq (rustls for https), returning the
/// body of a 200 answer. The token and CA files are read on every call, so
/// a rotated token needs no restart; the token is never logged. Redirects
/// are followed without the token.
pub fn http_get(endpoint: &StatusEndpoint<'_>, timeout: Duration) -> Result<String, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = endpoint.ca_file {
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&trusted_certificates(path)?));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("hydra-provisioner/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build()
        .into();
    let mut request = agent.get(endpoint.url).header("Accept", "application/json");
    if let Some(path) = endpoint.token_file {
        request = request.header("Authorization", format!("Bearer {}", bearer_token(path)?));
    }
    let mut response = request.call().map_err(|e| e.to_string())?;
    let status = response.status();
    if status != ureq::http::StatusCode::OK {
        return Err(format!("answered HTTP {status}"));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_STATUS_BYTES)
        .read_to_string()
        .map_err(|e| format!("reading the answer: {e}"))
}

/// The token in `path`, without surrounding white space (a trailing newline).
fn bearer_token(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read statusTokenFile {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!("statusTokenFile {} must hold one token (it is empty or has spaces)", path.display()));
    }
    Ok(token.to_string())
}

/// Every certificate of the PEM file `path`.
fn trusted_certificates(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read statusCaFile {}: {e}", path.display()))?;
    let mut certificates = vec![];
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certificates.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("statusCaFile {} is not valid PEM: {e}", path.display())),
        }
    }
    if certificates.is_empty() {
        return Err(format!("statusCaFile {} holds no certificate", path.display()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QueueHealth;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456789Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20+02:00"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_time_with_a_multibyte_character_is_an_error_not_a_panic() {
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00+1\u{e9}00"), None);
        let doc = r#"{"queueRunner": {"status": "up", "time": "2024-01-01T00:00:00+1\u00e900"}}"#;
        assert!(parse_rust_status(doc).unwrap_err().contains("RFC 3339"));
        for s in
            ["2024-01-01T00:00:00.\u{e9}Z", "\u{e9}\u{e9}\u{e9}\u{e9}-01-01T00:00:00Z", "2024-01-01T00:00:00+\u{e9}"]
        {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn rust_runner_status_maps_to_queue_status() {
        let doc = r#"{"queueRunner": {"status": "up", "time": "2023-11-14T22:13:20Z", "uptime": 3600.5,
            "queueStats": {"x86_64-linux": {"activeRunnable": 4, "totalRunnable": 30, "nrRunnableWaiting": 2},
                           "i686-linux": {"activeRunnable": 0, "totalRunnable": 3}}},
          "machines": {"builder-1": {"systems": ["x86_64-linux"], "stats": {"currentJobs": 2, "idleSince": 0}}}}"#;
        let s = parse_rust_status(doc).unwrap();
        assert!(s.is_up());
        assert_eq!(s.time, Some(1_700_000_000));
        assert_eq!(s.uptime, 3600);
        assert_eq!(s.machine_types["x86_64-linux"], TypeStatus { runnable: 29, running: 4, last_active: None });
        assert_eq!(s.machines["builder-1"].current_jobs, 2);
        let down = parse_rust_status(r#"{"queueRunner": {"status": "down"}}"#).unwrap();
        assert!(matches!(down.health, QueueHealth::Down { .. }));
        assert!(
            parse_rust_status(r#"{"queueRunner": {"status": "up", "queueStats": {"x": {"totalRunnable": -1}}}}"#)
                .is_err()
        );
        assert!(parse_rust_status("{}").is_err());
    }

    #[test]
    fn a_failing_status_command_is_down_and_garbage_is_unknown() {
        let sh = |s: &str| vec!["/bin/sh".to_string(), "-c".to_string(), s.to_string()];
        let r = read_command(&sh("echo oops >&2; exit 1"), Duration::from_secs(10));
        assert!(matches!(r.status.health, QueueHealth::Down { .. }));
        assert!(r.problem.unwrap().contains("exit status 1: oops"));
        let r = read_command(&sh("echo '{garbled'"), Duration::from_secs(10));
        assert!(matches!(r.status.health, QueueHealth::Unknown { .. }));
        let r = read_command(&sh("echo '{\"status\": \"down\"}'"), Duration::from_secs(10));
        assert!(matches!(r.status.health, QueueHealth::Down { .. }) && r.problem.is_none());
    }
}
