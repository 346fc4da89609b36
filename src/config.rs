//! The provisioner's configuration: the original `conf.nix` schema with its
//! original defaults, plus our own keys, validated into typed values.
//!
//! Parsing works on an already-evaluated JSON value, so it is pure: the
//! evaluation of `conf.nix` (a `nix-instantiate` process) lives in
//! `adapters::nix`, and [`load`] only dispatches on the file name. Every
//! problem names its key path; all problems are reported at once.

use crate::billing::BillingModel;
use crate::model::{MachineType, Seconds};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULT_TAG: &str = "hydra-provisioned";
pub const DEFAULT_MACHINES_FILE: &str = "/var/lib/hydra/provisioner/machines";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hydra-provisioner";
pub const DEFAULT_RECORD_MAX_BYTES: u64 = 64 << 20;

/// Which behaviour the engine follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Quirks {
    /// Fix the original's known defects (see ARCHITECTURE.md, "Deliberate differences").
    #[default]
    Fixed,
    /// Reproduce the original pass decision for decision, defects included.
    Original,
}

/// Speed factor as a number and as the text the machines file shows
/// (the original printed Python's `str()` of the configured value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedFactor {
    pub value: f64,
    pub text: String,
}

/// One `systemTypes.<T>` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeConfig {
    /// The key as written in the config.
    pub key: String,
    /// The key as Hydra spells it (features sorted): the status's machine-type
    /// key and the `type` argument of the deployments we create.
    pub canonical: String,
    pub machine_type: MachineType,
    pub nixops_expr: String,
    pub nix_path: Vec<String>,
    pub min_machines: u32,
    pub max_machines: u32,
    pub ignored_runnables: u64,
    pub runnables_per_machine: u64,
    pub max_jobs: u32,
    pub speed_factor: SpeedFactor,
    pub ssh_key: String,
    pub stop_on_idle: bool,
    pub grace_period: Seconds,
    pub billing: BillingModel,
    pub max_creations_per_pass: u32,
}

impl TypeConfig {
    /// The number of machines this type may serve demand with, whatever the
    /// demand: `min(max(wanted, min), max)` clamps `min` to `max`.
    pub fn allowed(&self, wanted: u64) -> u64 {
        wanted.max(u64::from(self.min_machines)).min(u64::from(self.max_machines))
    }

    /// `ceil(max(runnable - ignoredRunnables, 0) / runnablesPerMachine)`.
    pub fn wanted(&self, runnable: u64) -> u64 {
        runnable.saturating_sub(self.ignored_runnables).div_ceil(self.runnables_per_machine)
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub tag: String,
    pub status_command: Vec<String>,
    /// Rust queue runner's `/status` URL; when set it replaces `statusCommand`.
    pub status_url: Option<String>,
    /// File holding a bearer token sent with `statusUrl` requests.
    pub status_token_file: Option<PathBuf>,
    /// PEM file of the certificate authorities trusted for an https `statusUrl`.
    pub status_ca_file: Option<PathBuf>,
    pub update_command: Option<Vec<String>>,
    pub machines_file: PathBuf,
    pub state_dir: PathBuf,
    pub nixops_command: Vec<String>,
    pub quirks: Quirks,
    /// Default billing model of every type (`billing`, per type too).
    pub billing: BillingModel,
    /// Keep (and keep listing) an unneeded machine with at least this much paid time left.
    pub keep_paid_threshold: Seconds,
    /// Never stop or destroy a running machine with at least this much paid time left.
    pub destroy_paid_threshold: Seconds,
    /// Replace a deployment after this many consecutive failed deploys (0 = never).
    pub max_deploy_failures: u32,
    /// Scale in by delisting first and destroying in a later pass.
    pub drain_before_destroy: bool,
    /// How long a machine stays delisted before it may be destroyed (the queue
    /// runner rereads the machines file every 30 s).
    pub drain_delay: Seconds,
    /// No idle machine expires while the queue runner is younger than this.
    pub restart_guard: Seconds,
    /// Redeploy an up-to-date machine at least this often (0 = only on change).
    pub redeploy_interval: Seconds,
    pub deploy_concurrency: u32,
    pub deploy_timeout: Seconds,
    pub command_timeout: Seconds,
    pub prometheus_textfile: Option<PathBuf>,
    /// Append every pass's observation and plan here (`run --record`).
    pub record_dir: Option<PathBuf>,
    /// Rotate the record file before it grows past this many bytes.
    pub record_max_bytes: u64,
    /// Rotated record files kept (0 = all).
    pub record_keep: u32,
    pub system_types: BTreeMap<String, TypeConfig>,
}

impl Config {
    /// The type config for a deployment's `type` argument, whether the
    /// argument is written canonically or as the config key.
    pub fn type_for(&self, type_arg: &str) -> Option<&TypeConfig> {
        if let Some(t) = self.system_types.get(type_arg) {
            return Some(t);
        }
        let parsed = MachineType::parse(type_arg).ok()?;
        self.system_types.get(&parsed.to_string())
    }

    /// A configuration from its JSON form with every default (handy for tests
    /// and for scenario files that build one inline).
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError { origin: "<inline>".into(), problems: vec![format!("not JSON: {e}")] })?;
        Ok(parse(&value, "<inline>", None)?.0)
    }
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.origin)?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every top-level key of the configuration (others are warned about).
pub const TOP_KEYS: &[&str] = &[
    "tag",
    "statusCommand",
    "sshCommand",
    "statusUrl",
    "statusTokenFile",
    "statusCaFile",
    "updateCommand",
    "machinesFile",
    "stateDir",
    "nixopsCommand",
    "quirks",
    "billing",
    "keepPaidThreshold",
    "destroyPaidThreshold",
    "maxCreationsPerPass",
    "maxDeployFailures",
    "drainBeforeDestroy",
    "drainDelay",
    "restartGuard",
    "redeployInterval",
    "deployConcurrency",
    "deployTimeout",
    "commandTimeout",
    "prometheusTextfile",
    "recordDir",
    "recordMaxBytes",
    "recordKeep",
    "systemTypes",
];

/// Every key of a `systemTypes.<T>` entry.
pub const TYPE_KEYS: &[&str] = &[
    "nixopsExpr",
    "nixPath",
    "minMachines",
    "maxMachines",
    "ignoredRunnables",
    "runnablesPerMachine",
    "maxJobs",
    "speedFactor",
    "sshKey",
    "stopOnIdle",
    "gracePeriod",
    "billing",
    "maxCreationsPerPass",
];

/// Collects problems while reading fields, so one pass reports all of them.
struct Reader<'a> {
    problems: Vec<String>,
    warnings: Vec<String>,
    base_dir: Option<&'a Path>,
}

impl Reader<'_> {
    fn problem(&mut self, path: &str, msg: impl fmt::Display) {
        self.problems.push(format!("{path}: {msg}"));
    }

    fn string(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(&join(path, key), format!("must be a string, got {}", kind(other)));
                None
            }
        }
    }

    fn bool(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: bool) -> bool {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problem(&join(path, key), format!("must be true or false, got {}", kind(other)));
                default
            }
        }
    }

    /// A non-negative integer of at least `min`.
    fn uint(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: u64, min: u64) -> u64 {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v >= min => v,
                Some(v) => {
                    self.problem(&join(path, key), format!("must be at least {min}, got {v}"));
                    default
                }
                None => {
                    self.problem(&join(path, key), format!("must be a whole number >= {min}, got {n}"));
                    default
                }
            },
            Some(other) => {
                self.problem(&join(path, key), format!("must be a whole number, got {}", kind(other)));
                default
            }
        }
    }

    fn u32(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: u32, min: u32) -> u32 {
        let v = self.uint(obj, key, path, u64::from(default), u64::from(min));
        u32::try_from(v).unwrap_or_else(|_| {
            self.problem(&join(path, key), format!("{v} is too large"));
            default
        })
    }

    fn seconds(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: Seconds) -> Seconds {
        let v = self.uint(obj, key, path, default as u64, 0);
        i64::try_from(v).unwrap_or_else(|_| {
            self.problem(&join(path, key), format!("{v} is too large"));
            default
        })
    }

    fn argv(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<Vec<String>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.problem(
                            &format!("{}[{i}]", join(path, key)),
                            format!("must be a string, got {}", kind(other)),
                        ),
                    }
                }
                if out.is_empty() && items.is_empty() {
                    self.problem(&join(path, key), "must name a program (the list is empty)");
                    return None;
                }
                Some(out)
            }
            Some(other) => {
                self.problem(&join(path, key), format!("must be a list of strings, got {}", kind(other)));
                None
            }
        }
    }

    fn billing(&mut self, obj: &Map<String, Value>, path: &str, default: BillingModel) -> BillingModel {
        match self.string(obj, "billing", path) {
            None => default,
            Some(s) => s.parse().unwrap_or_else(|e: String| {
                self.problem(&join(path, "billing"), e);
                default
            }),
        }
    }

    fn warn_unknown(&mut self, obj: &Map<String, Value>, known: &[&str], path: &str) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                self.warnings.push(format!("{}: unknown key, ignored", join(path, key)));
            }
        }
    }

    fn path(&self, p: String) -> String {
        match self.base_dir {
            Some(base) if !p.is_empty() && Path::new(&p).is_relative() => base.join(&p).display().to_string(),
            _ => p,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an attribute set",
    }
}

/// Validates an evaluated configuration. `origin` names it in messages;
/// relative paths (`nixopsExpr`, `machinesFile`, ...) are resolved against
/// `base_dir`, the config file's directory. Returns the config and warnings.
pub fn parse(value: &Value, origin: &str, base_dir: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
    let fail = |problems| ConfigError { origin: origin.to_string(), problems };
    let Value::Object(top) = value else {
        return Err(fail(vec![format!("the configuration must be an attribute set, got {}", kind(value))]));
    };
    let mut r = Reader { problems: vec![], warnings: vec![], base_dir };
    r.warn_unknown(top, TOP_KEYS, "");

    let tag = r.string(top, "tag", "").unwrap_or_else(|| DEFAULT_TAG.to_string());
    if tag.is_empty() || tag.contains(char::is_whitespace) {
        r.problem("tag", format!("must be a non-empty word, got `{tag}`"));
    }
    let status = r.argv(top, "statusCommand", "");
    let ssh = r.argv(top, "sshCommand", "");
    let status_command = match (status, ssh) {
        (Some(a), Some(b)) if a != b => {
            r.problem("sshCommand", "is the old name of statusCommand; set only one of them");
            a
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => vec!["hydra-queue-runner".into(), "--status".into()],
    };
    let status_url = r.string(top, "statusUrl", "");
    if let Some(url) = &status_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        r.problem("statusUrl", format!("must be an http:// or https:// URL, got `{url}`"));
    }
    let status_token_file = r.string(top, "statusTokenFile", "").map(|p| PathBuf::from(r.path(p)));
    let status_ca_file = r.string(top, "statusCaFile", "").map(|p| PathBuf::from(r.path(p)));
    if status_url.is_none() {
        for (key, set) in [("statusTokenFile", status_token_file.is_some()), ("statusCaFile", status_ca_file.is_some())]
        {
            if set {
                r.warnings.push(format!("{key}: only used with statusUrl, ignored"));
            }
        }
    }
    let update_command = r.argv(top, "updateCommand", "");
    let machines_file =
        PathBuf::from(r.string(top, "machinesFile", "").map_or(DEFAULT_MACHINES_FILE.into(), |p| r.path(p)));
    let state_dir = PathBuf::from(r.string(top, "stateDir", "").map_or(DEFAULT_STATE_DIR.into(), |p| r.path(p)));
    let nixops_command = r.argv(top, "nixopsCommand", "").unwrap_or_else(|| vec!["nixops".into()]);
    let quirks = match r.string(top, "quirks", "").as_deref() {
        None | Some("fixed") => Quirks::Fixed,
        Some("original") => Quirks::Original,
        Some(other) => {
            r.problem("quirks", format!("must be `fixed` or `original`, got `{other}`"));
            Quirks::Fixed
        }
    };
    let billing = r.billing(top, "", BillingModel::Hourly);
    let keep_paid_threshold = r.seconds(top, "keepPaidThreshold", "", 1800);
    let destroy_paid_threshold = r.seconds(top, "destroyPaidThreshold", "", 600);
    let max_creations = r.u32(top, "maxCreationsPerPass", "", 1, 0);
    let max_deploy_failures = r.u32(top, "maxDeployFailures", "", 3, 0);
    let drain_before_destroy = r.bool(top, "drainBeforeDestroy", "", true);
    let drain_delay = r.seconds(top, "drainDelay", "", 60);
    let restart_guard = r.seconds(top, "restartGuard", "", 1800);
    let redeploy_interval = r.seconds(top, "redeployInterval", "", 86_400);
    let deploy_concurrency = r.u32(top, "deployConcurrency", "", 4, 1);
    let deploy_timeout = r.seconds(top, "deployTimeout", "", 3600);
    let command_timeout = r.seconds(top, "commandTimeout", "", 300);
    let prometheus_textfile = r.string(top, "prometheusTextfile", "").map(|p| PathBuf::from(r.path(p)));
    let record_dir = r.string(top, "recordDir", "").map(|p| PathBuf::from(r.path(p)));
    // A pass's record is tens of kilobytes; a smaller file would rotate every pass.
    let record_max_bytes = r.uint(top, "recordMaxBytes", "", DEFAULT_RECORD_MAX_BYTES, 1 << 16);
    let record_keep = r.u32(top, "recordKeep", "", 8, 0);

    let mut system_types = BTreeMap::new();
    match top.get("systemTypes") {
        None | Some(Value::Null) => r.warnings.push("systemTypes: none configured, nothing will be provisioned".into()),
        Some(Value::Object(types)) => {
            for (key, body) in types {
                let path = format!("systemTypes.{key}");
                let machine_type = match MachineType::parse(key) {
                    Ok(t) => t,
                    Err(e) => {
                        r.problem(&path, e);
                        continue;
                    }
                };
                let canonical = machine_type.to_string();
                if canonical != *key {
                    r.warnings.push(format!("{path}: Hydra spells this machine type `{canonical}`; using that"));
                }
                let Value::Object(t) = body else {
                    r.problem(&path, format!("must be an attribute set, got {}", kind(body)));
                    continue;
                };
                r.warn_unknown(t, TYPE_KEYS, &path);
                let nixops_expr = match r.string(t, "nixopsExpr", &path) {
                    Some(e) if !e.is_empty() => r.path(e),
                    _ => {
                        if !t.contains_key("nixopsExpr") {
                            r.problem(&join(&path, "nixopsExpr"), "is required (the NixOps network expression)");
                        }
                        String::new()
                    }
                };
                let nix_path = r.argv(t, "nixPath", &path).unwrap_or_default();
                let min_machines = r.u32(t, "minMachines", &path, 0, 0);
                let max_machines = r.u32(t, "maxMachines", &path, 1, 0);
                if min_machines > max_machines {
                    r.warnings.push(format!(
                        "{path}: minMachines ({min_machines}) > maxMachines ({max_machines}); maxMachines wins"
                    ));
                }
                let speed_factor = match t.get("speedFactor") {
                    None | Some(Value::Null) => SpeedFactor { value: 1.0, text: "1".into() },
                    Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f > 0.0 && f.is_finite()) => {
                        SpeedFactor { value: n.as_f64().unwrap_or(1.0), text: n.to_string() }
                    }
                    Some(other) => {
                        r.problem(&join(&path, "speedFactor"), format!("must be a positive number, got {other}"));
                        SpeedFactor { value: 1.0, text: "1".into() }
                    }
                };
                let ssh_key = r.string(t, "sshKey", &path).unwrap_or_else(|| "-".into());
                if ssh_key.is_empty() || ssh_key.contains(char::is_whitespace) {
                    r.problem(&join(&path, "sshKey"), "must be a path without white space, or `-`");
                }
                let tc = TypeConfig {
                    key: key.clone(),
                    canonical: canonical.clone(),
                    machine_type,
                    nixops_expr,
                    nix_path,
                    min_machines,
                    max_machines,
                    ignored_runnables: r.uint(t, "ignoredRunnables", &path, 0, 0),
                    runnables_per_machine: r.uint(t, "runnablesPerMachine", &path, 10, 1),
                    max_jobs: r.u32(t, "maxJobs", &path, 1, 1),
                    speed_factor,
                    ssh_key,
                    stop_on_idle: r.bool(t, "stopOnIdle", &path, false),
                    grace_period: r.seconds(t, "gracePeriod", &path, 0),
                    billing: r.billing(t, &path, billing),
                    max_creations_per_pass: r.u32(t, "maxCreationsPerPass", &path, max_creations, 0),
                };
                if system_types.insert(canonical.clone(), tc).is_some() {
                    r.problem(&path, format!("machine type `{canonical}` is configured twice"));
                }
            }
        }
        Some(other) => r.problem("systemTypes", format!("must be an attribute set, got {}", kind(other))),
    }

    if !r.problems.is_empty() {
        return Err(fail(r.problems));
    }
    let config = Config {
        tag,
        status_command,
        status_url,
        status_token_file,
        status_ca_file,
        update_command,
        machines_file,
        state_dir,
        nixops_command,
        quirks,
        billing,
        keep_paid_threshold,
        destroy_paid_threshold,
        max_deploy_failures,
        drain_before_destroy,
        drain_delay,
        restart_guard,
        redeploy_interval,
        deploy_concurrency,
        deploy_timeout,
        command_timeout,
        prometheus_textfile,
        record_dir,
        record_max_bytes,
        record_keep,
        system_types,
    };
    Ok((config, r.warnings))
}

/// The directory relative paths in a file are resolved against: its
/// parent, or `.` for a bare file name.
pub fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Evaluates or reads a config file by its extension: `.json`, `.toml`, and
/// anything else as a Nix expression through `nix-instantiate`.
pub fn load(path: &Path) -> anyhow::Result<(Config, Vec<String>)> {
    use anyhow::Context;
    let origin = path.display().to_string();
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {origin}"))?;
            serde_json::from_str(&text).with_context(|| format!("config {origin} is not valid JSON"))?
        }
        Some("toml") => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {origin}"))?;
            let t: toml::Value = toml::from_str(&text).with_context(|| format!("config {origin} is not valid TOML"))?;
            serde_json::to_value(t)?
        }
        _ => crate::adapters::nix::eval_json(path)?,
    };
    let base = directory_of(path);
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    Ok(parse(&value, &origin, Some(&base))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_ok(v: Value) -> (Config, Vec<String>) {
        parse(&v, "test", None).unwrap()
    }

    #[test]
    fn defaults_are_the_originals() {
        let (c, w) = parse_ok(json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix"}}}));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.tag, "hydra-provisioned");
        assert_eq!(c.status_command, vec!["hydra-queue-runner", "--status"]);
        assert_eq!(c.machines_file, PathBuf::from("/var/lib/hydra/provisioner/machines"));
        let t = &c.system_types["x86_64-linux"];
        assert_eq!((t.min_machines, t.max_machines), (0, 1));
        assert_eq!((t.ignored_runnables, t.runnables_per_machine), (0, 10));
        assert_eq!((t.max_jobs, t.speed_factor.text.as_str(), t.ssh_key.as_str()), (1, "1", "-"));
        assert!(!t.stop_on_idle);
        assert_eq!(t.grace_period, 0);
        assert_eq!(c.keep_paid_threshold, 1800);
        assert_eq!(c.destroy_paid_threshold, 600);
        assert_eq!(t.max_creations_per_pass, 1);
        assert_eq!(c.quirks, Quirks::Fixed);
    }

    #[test]
    fn zero_runnables_per_machine_is_an_error_naming_the_key() {
        let e = parse(
            &json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "runnablesPerMachine": 0}}}),
            "c.nix",
            None,
        )
        .unwrap_err();
        assert_eq!(e.problems, vec!["systemTypes.x86_64-linux.runnablesPerMachine: must be at least 1, got 0"]);
        assert!(e.to_string().starts_with("invalid configuration in c.nix:"));
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let e = parse(
            &json!({"tag": 3, "systemTypes": {"x86_64-linux": {"maxJobs": "four", "speedFactor": -1}}}),
            "c",
            None,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 4, "{:?}", e.problems);
        assert!(e.problems.iter().any(|p| p.contains("nixopsExpr: is required")));
    }

    #[test]
    fn ssh_command_is_an_alias_and_unknown_keys_warn() {
        let (c, w) = parse_ok(json!({"sshCommand": ["ssh", "hydra", "hydra-queue-runner", "--status"], "colour": 1}));
        assert_eq!(c.status_command[0], "ssh");
        assert!(w.iter().any(|w| w.contains("colour: unknown key")), "{w:?}");
    }

    #[test]
    fn status_url_takes_http_or_https_with_token_and_ca_files_beside_the_config() {
        let (c, w) = parse(
            &json!({"statusUrl": "https://runner:8080/status", "statusTokenFile": "token", "statusCaFile": "/etc/ca.pem"}),
            "c",
            Some(Path::new("/etc/hp")),
        )
        .unwrap();
        assert!(!w.iter().any(|w| w.starts_with("status")), "{w:?}");
        assert_eq!(c.status_token_file.as_deref(), Some(Path::new("/etc/hp/token")));
        assert_eq!(c.status_ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        let e = parse(&json!({"statusUrl": "runner:8080/status"}), "c", None).unwrap_err();
        assert!(e.problems[0].starts_with("statusUrl: must be an http:// or https:// URL"), "{e}");
        let (_, w) = parse_ok(json!({"statusTokenFile": "/t"}));
        assert!(w.contains(&"statusTokenFile: only used with statusUrl, ignored".to_string()), "{w:?}");
    }

    #[test]
    fn min_above_max_warns_and_max_wins() {
        let (c, w) = parse_ok(
            json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "minMachines": 5, "maxMachines": 2}}}),
        );
        assert!(w.iter().any(|w| w.contains("maxMachines wins")));
        assert_eq!(c.system_types["x86_64-linux"].allowed(0), 2);
    }

    #[test]
    fn feature_keys_are_canonicalised_and_relative_paths_resolved() {
        let (c, w) = parse(
            &json!({"systemTypes": {"x86_64-linux:kvm,big-parallel": {"nixopsExpr": "deployment.nix"}}}),
            "c",
            Some(Path::new("/etc/prov")),
        )
        .unwrap();
        let t = &c.system_types["x86_64-linux:big-parallel,kvm"];
        assert_eq!(t.nixops_expr, "/etc/prov/deployment.nix");
        assert_eq!(t.key, "x86_64-linux:kvm,big-parallel");
        assert_eq!(w.len(), 1);
        assert!(c.type_for("x86_64-linux:kvm,big-parallel").is_some());
    }

    #[test]
    fn wanted_rounds_up_after_ignoring() {
        let (c, _) = parse_ok(
            json!({"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "ignoredRunnables": 250, "runnablesPerMachine": 50, "maxMachines": 12}}}),
        );
        let t = &c.system_types["x86_64-linux"];
        assert_eq!(t.wanted(0), 0);
        assert_eq!(t.wanted(250), 0);
        assert_eq!(t.wanted(251), 1);
        assert_eq!(t.wanted(300), 1);
        assert_eq!(t.wanted(301), 2);
        assert_eq!(t.allowed(t.wanted(10_000)), 12);
    }
}
