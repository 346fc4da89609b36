//! Reading the queue runner's status: the C++ runner's `statusCommand`
//! (e.g. `hydra-queue-runner --status`, possibly wrapped in `ssh`), or the
//! Rust runner's HTTP `/status` (`statusUrl`).
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
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The status of one pass and, if reading it went wrong, what went wrong
/// (the pass then counts as not fully successful).
#[derive(Debug, Clone)]
pub struct StatusReading {
    pub status: QueueStatus,
    pub problem: Option<String>,
    /// The document as the queue runner printed it, when it was JSON (for `run --record`).
    pub document: Option<Value>,
}

/// Reads the status the way the config says: `statusUrl` if set, else `statusCommand`.
pub fn read_status(config: &Config, timeout: Duration) -> StatusReading {
    match &config.status_url {
        Some(url) => read_http(url, timeout),
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
pub fn read_http(url: &str, timeout: Duration) -> StatusReading {
    match http_get(url, timeout) {
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

/// A plain-HTTP GET of `url`, returning the body of a 200 answer. Small on
/// purpose: the status endpoint is on the local network or behind an ssh
/// tunnel, so TLS and redirects are out of scope.
pub fn http_get(url: &str, timeout: Duration) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported (use a local tunnel or proxy for TLS)".to_string())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("the URL names no host".into());
    }
    let with_port =
        if authority.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()) && !p.is_empty())
            && !authority.ends_with(']')
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
    let deadline = Instant::now() + timeout;
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let remaining = |d: Instant| d.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_write_timeout(Some(remaining(deadline))).map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nUser-Agent: hydra-provisioner/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("cannot send the request: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(format!("no complete answer within {timeout:?}"));
        }
        stream.set_read_timeout(Some(remaining(deadline))).map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    parse_http_response(&raw)
}

/// The body of a complete HTTP/1.x response if its status is 200.
fn parse_http_response(raw: &[u8]) -> Result<String, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("the answer has no complete header")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!("answered `{status_line}`"));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        dechunk(body)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad Content-Length `{len}`"))?;
        body.get(..len).ok_or("the answer is shorter than its Content-Length")?.to_vec()
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("truncated chunk")?;
    }
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
    fn http_responses_plain_and_chunked() {
        assert_eq!(parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk").unwrap(), "{}");
        assert_eq!(
            parse_http_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n"
            )
            .unwrap(),
            "{\"a\":1}"
        );
        assert!(parse_http_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap_err().contains("503"));
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
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
