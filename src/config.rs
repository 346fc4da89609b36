//! The provisioner's configuration: the original `conf.nix` schema with its
//! original defaults, plus our own keys, validated into typed values.
//!
//! Parsing works on an already-evaluated JSON value, so it is pure: the
//! evaluation of `conf.nix` (a `nix-instantiate` process) lives in
//! `adapters::nix`, and [`load`] only dispatches on the file name. Every
//! problem names its key path; all problems are reported at once.

use crate::billing::BillingModel;
pub use crate::model::machines_file_word;
use crate::model::{MachineType, Seconds};
use serde::Serialize;
use serde_json::{Map, Value};
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULT_TAG: &str = "hydra-provisioned";
pub const DEFAULT_MACHINES_FILE: &str = "/var/lib/hydra/provisioner/machines";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hydra-provisioner";
pub const DEFAULT_RECORD_MAX_BYTES: u64 = 64 << 20;

/// The largest `minMachines`/`maxMachines` of one type. Far above any real
/// Hydra (hydra.nixos.org ran at most 24), low enough that no sum or
/// allocation over it can run away.
pub const MAX_MACHINES: u32 = 10_000;
/// The largest `maxCreationsPerPass`: creations run one after another, so a
/// pass with more would outlive the timer interval anyway.
pub const MAX_CREATIONS_PER_PASS: u32 = 100;
/// The largest `deployConcurrency`: parallel NixOps processes (each with its
/// own ssh and nix children) on the provisioning host.
pub const MAX_DEPLOY_CONCURRENCY: u32 = 256;
/// The largest `maxJobs` of a machine.
pub const MAX_JOBS: u32 = 10_000;
/// The longest duration any key takes (gracePeriod, drainDelay, timeouts,
/// thresholds): ten years, so `now` plus or minus any of them stays far
/// inside the range of a 64-bit second count.
pub const MAX_DURATION: Seconds = 315_360_000;
/// The range of `speedFactor` (the simulator divides durations by it).
pub const SPEED_FACTOR_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1000.0;

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

/// Which generation of Hydra's queue runner the fleet serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Runner {
    /// The C++ queue runner: builders are listed in a machines file.
    #[default]
    Cpp,
    /// The Rust queue runner (2026): builders run `hydra-builder`, join by
    /// themselves under their hostname, and have no drain (see
    /// `engine/rust_runner.rs`).
    Rust,
}

impl Runner {
    /// Whether this is the C++ runner (the default, left unnamed in reports).
    pub fn is_cpp(&self) -> bool {
        *self == Runner::Cpp
    }

    pub fn name(self) -> &'static str {
        match self {
            Runner::Cpp => "cpp",
            Runner::Rust => "rust",
        }
    }
}

impl std::str::FromStr for Runner {
    type Err = String;
    fn from_str(s: &str) -> Result<Runner, String> {
        match s {
            "cpp" => Ok(Runner::Cpp),
            "rust" => Ok(Runner::Rust),
            other => Err(format!("must be `cpp` or `rust`, got `{other}`")),
        }
    }
}

/// The systemd unit of upstream Hydra's builder module (`nixos-modules/builder-module.nix`).
pub const DEFAULT_BUILDER_SERVICE: &str = "hydra-queue-builder-dev.service";
/// The Nix store directory the Rust runner's bare `.drv` names live in.
pub const DEFAULT_STORE_DIR: &str = "/nix/store";

/// Settings that only `runner = "rust"` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RustRunnerConfig {
    /// The gRPC endpoint builders dial (`hydra-builder --gateway-endpoint`),
    /// handed to new deployments as the `runnerEndpoint` argument.
    pub runner_endpoint: String,
    /// Where the bearer token file lies on the builders (`--authorization-file`),
    /// handed to new deployments as the `tokenPath` argument; `None` for mTLS.
    pub builder_token_path: Option<String>,
    /// The store directory the runner's bare `.drv` names are in.
    pub store_dir: PathBuf,
    /// The builder's systemd unit, stopped before a machine goes.
    pub builder_service: String,
    /// A builder silent (no ping) this long is reported.
    pub watchdog_report: Seconds,
    /// A builder silent this long has its service stopped and is replaced.
    pub watchdog_replace: Seconds,
    /// The runner's `maxRetries` (tries per step): a builder running a step
    /// on its last try is never retired.
    pub max_tries: u32,
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
    pub key: SmolStr,
    /// The key as Hydra spells it (features sorted): the status's machine-type
    /// key and the `type` argument of the deployments we create.
    pub canonical: SmolStr,
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
    /// Which queue runner serves the fleet (`runner`).
    pub runner: Runner,
    /// `Some` exactly when `runner = "rust"`.
    pub rust_runner: Option<RustRunnerConfig>,
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
    /// How long a running machine may stay without a public address before
    /// it is taken for broken and destroyed.
    pub address_timeout: Seconds,
    /// How long a deployment NixOps reports not running (unreachable,
    /// stopped, missing, ...) is left alone before it is stopped or
    /// destroyed (0 = at once, as the original).
    pub not_running_timeout: Seconds,
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
    "runner",
    "runnerEndpoint",
    "builderTokenPath",
    "storeDir",
    "builderService",
    "watchdogReport",
    "watchdogReplace",
    "runnerMaxTries",
    "billing",
    "keepPaidThreshold",
    "destroyPaidThreshold",
    "maxCreationsPerPass",
    "maxDeployFailures",
    "drainBeforeDestroy",
    "drainDelay",
    "restartGuard",
    "redeployInterval",
    "addressTimeout",
    "notRunningTimeout",
    "deployConcurrency",
    "deployTimeout",
    "commandTimeout",
    "prometheusTextfile",
    "recordDir",
    "recordMaxBytes",
    "recordKeep",
    "systemTypes",
];

/// The keys only `runner = "rust"` reads: a run of [`TOP_KEYS`], so that
/// each is named once.
pub const RUST_ONLY_KEYS: &[&str] = TOP_KEYS.split_at(12).1.split_at(7).0;

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

    /// A non-negative integer between `min` and `max`.
    fn uint(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: u64, range: (u64, u64)) -> u64 {
        let (min, max) = range;
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => v,
                Some(v) if v < min => {
                    self.problem(&join(path, key), format!("must be at least {min}, got {v}"));
                    default
                }
                Some(v) => {
                    self.problem(&join(path, key), format!("must be at most {max}, got {v}"));
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

    fn u32(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: u32, range: (u32, u32)) -> u32 {
        let v = self.uint(obj, key, path, u64::from(default), (u64::from(range.0), u64::from(range.1)));
        u32::try_from(v).unwrap_or(default)
    }

    /// Seconds between `min` and [`MAX_DURATION`].
    fn seconds(&mut self, obj: &Map<String, Value>, key: &str, path: &str, default: Seconds, min: Seconds) -> Seconds {
        let v = self.uint(obj, key, path, default.unsigned_abs(), (min.unsigned_abs(), MAX_DURATION.unsigned_abs()));
        Seconds::try_from(v).unwrap_or(default)
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
                let hint = closest_key(key, known).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
                self.warnings.push(format!("{}: unknown key{hint}{UNKNOWN_KEY_IGNORED}", join(path, key)));
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

/// NixOps's rule for deployment names, `^[a-zA-Z_-][a-zA-Z0-9_.-]*$`,
/// without the leading `-`: every command line we build puts the name (or a
/// name derived from it) after `-d`, where `-rf` would be read as an option.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// How an unknown key's warning ends in a configuration file, which the
/// original accepted with any extra keys (as the other warnings of a key
/// read and not used end).
const UNKNOWN_KEY_IGNORED: &str = ", ignored";

/// The unknown-key warning `warning` as an error's message (where a typo
/// must stop the run, as in a scenario's inline configuration), or `None`
/// if it warns of something else.
pub fn unknown_key_error(warning: &str) -> Option<&str> {
    warning.strip_suffix(UNKNOWN_KEY_IGNORED).filter(|w| w.contains(": unknown key"))
}

/// The known key a typo most likely meant: the nearest by edit distance,
/// ignoring case, within a third of its length (`GRACEPERIOD`, `maxMachine`,
/// `gracePeriode`, `runablesPerMachine`), ties to the first listed.
fn closest_key<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    let limit = (key.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (strsim::levenshtein(&key, &k.to_ascii_lowercase()), *k))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, k)| k)
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
    if !valid_tag(&tag) {
        r.problem(
            "tag",
            format!(
                "must be a NixOps deployment name starting with a letter or `_` ([a-zA-Z_][a-zA-Z0-9_.-]*), got {tag:?}"
            ),
        );
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
    let runner = match r.string(top, "runner", "") {
        None => Runner::Cpp,
        Some(s) => s.parse().unwrap_or_else(|e: String| {
            r.problem("runner", e);
            Runner::Cpp
        }),
    };
    let rust_runner = rust_runner_config(&mut r, top, runner, &tag, status_url.is_some());
    let billing = r.billing(top, "", BillingModel::Hourly);
    let keep_paid_threshold = r.seconds(top, "keepPaidThreshold", "", 1800, 0);
    let destroy_paid_threshold = r.seconds(top, "destroyPaidThreshold", "", 600, 0);
    let max_creations = r.u32(top, "maxCreationsPerPass", "", 1, (0, MAX_CREATIONS_PER_PASS));
    let max_deploy_failures = r.u32(top, "maxDeployFailures", "", 3, (0, u32::MAX));
    let drain_before_destroy = r.bool(top, "drainBeforeDestroy", "", true);
    let drain_delay = r.seconds(top, "drainDelay", "", 60, 0);
    let restart_guard = r.seconds(top, "restartGuard", "", 1800, 0);
    let redeploy_interval = r.seconds(top, "redeployInterval", "", 86_400, 0);
    let address_timeout = r.seconds(top, "addressTimeout", "", 1800, 0);
    let not_running_timeout = r.seconds(top, "notRunningTimeout", "", 900, 0);
    let deploy_concurrency = r.u32(top, "deployConcurrency", "", 4, (1, MAX_DEPLOY_CONCURRENCY));
    let deploy_timeout = r.seconds(top, "deployTimeout", "", 3600, 1);
    let command_timeout = r.seconds(top, "commandTimeout", "", 300, 1);
    let prometheus_textfile = r.string(top, "prometheusTextfile", "").map(|p| PathBuf::from(r.path(p)));
    let record_dir = r.string(top, "recordDir", "").map(|p| PathBuf::from(r.path(p)));
    // A pass's record is tens of kilobytes; a smaller file would rotate every pass.
    let record_max_bytes = r.uint(top, "recordMaxBytes", "", DEFAULT_RECORD_MAX_BYTES, (1 << 16, 1 << 40));
    let record_keep = r.u32(top, "recordKeep", "", 8, (0, 100_000));

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
                // Systems and features are machines-file columns, where `#`
                // starts a comment that would swallow the rest of the line.
                if let Some(bad) =
                    machine_type.systems.iter().chain(&machine_type.features).find(|w| !machines_file_word(w))
                {
                    r.problem(&path, format!("system or feature {bad:?} contains `#` or a control character"));
                    continue;
                }
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
                let min_machines = r.u32(t, "minMachines", &path, 0, (0, MAX_MACHINES));
                let max_machines = r.u32(t, "maxMachines", &path, 1, (0, MAX_MACHINES));
                if min_machines > max_machines {
                    r.warnings.push(format!(
                        "{path}: minMachines ({min_machines}) > maxMachines ({max_machines}); maxMachines wins"
                    ));
                }
                let speed_factor = match t.get("speedFactor") {
                    None | Some(Value::Null) => SpeedFactor { value: 1.0, text: "1".into() },
                    Some(Value::Number(n)) if n.as_f64().is_some_and(|f| SPEED_FACTOR_RANGE.contains(&f)) => {
                        SpeedFactor { value: n.as_f64().unwrap_or(1.0), text: n.to_string() }
                    }
                    Some(other) => {
                        r.problem(
                            &join(&path, "speedFactor"),
                            format!(
                                "must be a number from {} to {}, got {other}",
                                SPEED_FACTOR_RANGE.start(),
                                SPEED_FACTOR_RANGE.end()
                            ),
                        );
                        SpeedFactor { value: 1.0, text: "1".into() }
                    }
                };
                let ssh_key = r.string(t, "sshKey", &path).unwrap_or_else(|| "-".into());
                if !machines_file_word(&ssh_key) {
                    r.problem(
                        &join(&path, "sshKey"),
                        format!(
                            "must be a path without white space, `#` or control characters, or `-`; got {ssh_key:?}"
                        ),
                    );
                }
                let tc = TypeConfig {
                    key: key.as_str().into(),
                    canonical: canonical.as_str().into(),
                    machine_type,
                    nixops_expr,
                    nix_path,
                    min_machines,
                    max_machines,
                    ignored_runnables: r.uint(t, "ignoredRunnables", &path, 0, (0, u64::MAX)),
                    runnables_per_machine: r.uint(t, "runnablesPerMachine", &path, 10, (1, u64::MAX)),
                    max_jobs: r.u32(t, "maxJobs", &path, 1, (1, MAX_JOBS)),
                    speed_factor,
                    ssh_key,
                    stop_on_idle: r.bool(t, "stopOnIdle", &path, false),
                    grace_period: r.seconds(t, "gracePeriod", &path, 0, 0),
                    billing: r.billing(t, &path, billing),
                    max_creations_per_pass: r.u32(
                        t,
                        "maxCreationsPerPass",
                        &path,
                        max_creations,
                        (0, MAX_CREATIONS_PER_PASS),
                    ),
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
        runner,
        rust_runner,
        billing,
        keep_paid_threshold,
        destroy_paid_threshold,
        max_deploy_failures,
        drain_before_destroy,
        drain_delay,
        restart_guard,
        redeploy_interval,
        address_timeout,
        not_running_timeout,
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

/// The keys only `runner = "rust"` reads; warned about when set under the
/// C++ runner. The builders' hostnames are deployment names, so under the
/// Rust runner the tag must make a host name (NixOS's `networking.hostName`:
/// letters, digits and `-`, no dot).
fn rust_runner_config(
    r: &mut Reader<'_>,
    top: &Map<String, Value>,
    runner: Runner,
    tag: &str,
    has_status_url: bool,
) -> Option<RustRunnerConfig> {
    if runner != Runner::Rust {
        for &key in RUST_ONLY_KEYS {
            if top.contains_key(key) {
                r.warnings.push(format!("{key}: only used with runner = \"rust\", ignored"));
            }
        }
        return None;
    }
    if !has_status_url {
        r.problem(
            "statusUrl",
            "is required with runner = \"rust\" (the runner's REST `/status`, e.g. http://127.0.0.1:8080/status)",
        );
    }
    let runner_endpoint = r.string(top, "runnerEndpoint", "").unwrap_or_default();
    if runner_endpoint.is_empty() || runner_endpoint.contains(char::is_whitespace) {
        r.problem(
            "runnerEndpoint",
            "is required with runner = \"rust\": the gRPC endpoint builders dial, e.g. https://hydra.example.org:50051",
        );
    }
    let builder_token_path = r.string(top, "builderTokenPath", "");
    if let Some(p) = &builder_token_path
        && !Path::new(p).is_absolute()
    {
        r.problem("builderTokenPath", format!("must be an absolute path on the builders, got `{p}`"));
    }
    let store_dir = PathBuf::from(r.string(top, "storeDir", "").unwrap_or_else(|| DEFAULT_STORE_DIR.into()));
    if !store_dir.is_absolute() {
        r.problem("storeDir", format!("must be an absolute path, got `{}`", store_dir.display()));
    }
    let builder_service = r.string(top, "builderService", "").unwrap_or_else(|| DEFAULT_BUILDER_SERVICE.into());
    let unit_ok = !builder_service.is_empty()
        && !builder_service.starts_with('-')
        && builder_service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '\\'));
    if !unit_ok {
        r.problem("builderService", format!("must be a systemd unit name, got `{builder_service}`"));
    }
    let watchdog_report = r.seconds(top, "watchdogReport", "", 120, 1);
    let watchdog_replace = r.seconds(top, "watchdogReplace", "", 600, 1);
    if watchdog_replace < watchdog_report {
        r.problem(
            "watchdogReplace",
            format!("must be at least watchdogReport ({watchdog_report}), got {watchdog_replace}"),
        );
    }
    let max_tries = r.u32(top, "runnerMaxTries", "", 5, (1, 1000));
    if !valid_builder_tag(tag) {
        r.problem(
            "tag",
            format!(
                "with runner = \"rust\" the deployment names are the builders' host names: letters, digits and `-`, \
                 starting with a letter or digit, at most 50 characters; got {tag:?}"
            ),
        );
    }
    Some(RustRunnerConfig {
        runner_endpoint,
        builder_token_path,
        store_dir,
        builder_service,
        watchdog_report,
        watchdog_replace,
        max_tries,
    })
}

/// Whether `<tag>-<n>` makes a host name NixOS accepts (`networking.hostName`).
pub fn valid_builder_tag(tag: &str) -> bool {
    tag.len() <= 50
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Problems for every `nan` or `inf` in a TOML document, by key path. JSON
/// has no such numbers, and converting one to JSON silently gives `null`,
/// which would read as "use the default".
pub fn non_finite_numbers(value: &toml::Value) -> Vec<String> {
    fn walk(v: &toml::Value, path: &str, out: &mut Vec<String>) {
        match v {
            toml::Value::Float(f) if !f.is_finite() => out.push(format!("{path}: must be a finite number, got {f}")),
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(v, &join(path, k), out)),
            toml::Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{path}[{i}]"), out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(value, "", &mut out);
    out
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
            let problems = non_finite_numbers(&t);
            if !problems.is_empty() {
                return Err(ConfigError { origin, problems }.into());
            }
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
    fn the_rust_only_keys_are_the_rust_runner_s_run_of_the_top_keys() {
        // The run starts and ends where the Rust runner's keys do.
        assert_eq!(
            (RUST_ONLY_KEYS.len(), RUST_ONLY_KEYS.first(), RUST_ONLY_KEYS.last()),
            (7, Some(&"runnerEndpoint"), Some(&"runnerMaxTries"))
        );
        assert!(!RUST_ONLY_KEYS.contains(&"runner") && !RUST_ONLY_KEYS.contains(&"billing"));
        let (_, w) = parse_ok(json!({"storeDir": "/nix/store", "systemTypes": {}}));
        assert_eq!(w, ["storeDir: only used with runner = \"rust\", ignored"]);
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
    fn an_unknown_key_names_the_known_key_it_resembles() {
        let (_, w) = parse_ok(json!({
            "tagg": "x",
            "colour": 1,
            "systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "maxMachine": 4, "GRACEPERIOD": 1, "zzz": 2}}
        }));
        let of = |key: &str| w.iter().find(|w| w.contains(key)).unwrap_or_else(|| panic!("{key}: {w:?}")).clone();
        assert_eq!(of("tagg"), "tagg: unknown key (did you mean `tag`?), ignored");
        assert_eq!(
            of("maxMachine:"),
            "systemTypes.x86_64-linux.maxMachine: unknown key (did you mean `maxMachines`?), ignored"
        );
        assert!(of("GRACEPERIOD").contains("(did you mean `gracePeriod`?)"), "{w:?}");
        assert_eq!(of("zzz"), "systemTypes.x86_64-linux.zzz: unknown key, ignored", "nothing near: no guess");
        assert!(!of("colour").contains("did you mean"), "{w:?}");
        assert_eq!(
            unknown_key_error(&of("maxMachine:")),
            Some("systemTypes.x86_64-linux.maxMachine: unknown key (did you mean `maxMachines`?)")
        );
        assert_eq!(unknown_key_error("systemTypes: none configured, nothing will be provisioned"), None);
        assert_eq!(unknown_key_error("storeDir: only used with runner = \"rust\", ignored"), None);
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
    fn the_rust_runner_needs_its_endpoints_and_a_host_name_tag() {
        let (c, w) = parse_ok(json!({"statusUrl": "http://127.0.0.1:8080/status"}));
        assert_eq!((c.runner, c.rust_runner.is_none()), (Runner::Cpp, true));
        assert!(!w.iter().any(|w| w.contains("rust")), "{w:?}");
        let (c, _) = parse_ok(json!({"runner": "rust", "statusUrl": "http://127.0.0.1:8080/status",
            "runnerEndpoint": "https://h:50051", "builderTokenPath": "/run/keys/t"}));
        let r = c.rust_runner.unwrap();
        assert_eq!(c.runner, Runner::Rust);
        assert_eq!(r.builder_service, DEFAULT_BUILDER_SERVICE);
        assert_eq!(r.store_dir, PathBuf::from("/nix/store"));
        assert_eq!((r.watchdog_report, r.watchdog_replace, r.max_tries), (120, 600, 5));
        let p = problems(json!({"runner": "rust", "tag": "hp.x", "builderTokenPath": "rel",
            "watchdogReport": 300, "watchdogReplace": 200, "builderService": "-x"}));
        for key in ["statusUrl", "runnerEndpoint", "tag", "builderTokenPath", "watchdogReplace", "builderService"] {
            assert!(p.iter().any(|p| p.starts_with(&format!("{key}: "))), "{key}: {p:#?}");
        }
        assert!(problems(json!({"runner": "go"}))[0].starts_with("runner: must be `cpp` or `rust`"));
        let (_, w) = parse_ok(json!({"watchdogReport": 5}));
        assert!(w.contains(&"watchdogReport: only used with runner = \"rust\", ignored".to_string()), "{w:?}");
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

    fn problems(v: Value) -> Vec<String> {
        parse(&v, "c", None).unwrap_err().problems
    }

    fn one_type(t: Value) -> Value {
        let mut body = json!({"nixopsExpr": "/d"});
        if let (Value::Object(b), Value::Object(o)) = (&mut body, t) {
            b.extend(o);
        }
        json!({"systemTypes": {"x86_64-linux": body}})
    }

    #[test]
    fn the_tag_follows_nixops_deployment_names_without_a_leading_dash() {
        for bad in ["hp;rm", "a/b", "-rf", "", "two words", "a#b", "1abc", "t\u{7}"] {
            let p = problems(json!({"tag": bad}));
            assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
            assert!(p[0].starts_with("tag: ") && p[0].contains("[a-zA-Z_][a-zA-Z0-9_.-]*"), "{bad:?}: {p:?}");
        }
        for good in ["hydra-provisioned", "_x", "a.b-c_1", "Z"] {
            assert_eq!(parse(&json!({"tag": good}), "c", None).unwrap().0.tag, good);
        }
    }

    #[test]
    fn hash_signs_white_space_and_control_characters_cannot_reach_the_machines_file() {
        for key in ["a b", "a#b", "a\tb", "a\u{1}b", "#"] {
            let p = problems(one_type(json!({"sshKey": key})));
            assert!(p.iter().any(|p| p.starts_with("systemTypes.x86_64-linux.sshKey: ")), "{key:?}: {p:?}");
        }
        for key in ["x86_64-linux:kvm#x", "x86_64-linux:a\u{1}", "x86#64-linux", "x86_64-linux:\u{0}"] {
            let p = problems(json!({"systemTypes": {key: {"nixopsExpr": "/d"}}}));
            assert!(p.iter().any(|p| p.starts_with(&format!("systemTypes.{key}"))), "{key:?}: {p:?}");
        }
    }

    #[test]
    fn counts_and_durations_are_bounded_with_the_key_named() {
        let p = problems(json!({
            "deployConcurrency": 4_294_967_295u64, "maxCreationsPerPass": 4_294_967_295u64,
            "drainDelay": 9_223_372_036_854_775_807u64, "restartGuard": 400_000_000,
            "commandTimeout": 0, "deployTimeout": 0,
            "systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "maxMachines": 4_294_967_295u64,
                "minMachines": 20_000, "gracePeriod": 9_223_372_036_854_775_807u64,
                "maxCreationsPerPass": 1000, "maxJobs": 1_000_000, "speedFactor": 1e-300}}
        }));
        for key in [
            "deployConcurrency",
            "maxCreationsPerPass",
            "drainDelay",
            "restartGuard",
            "commandTimeout",
            "deployTimeout",
            "systemTypes.x86_64-linux.maxMachines",
            "systemTypes.x86_64-linux.minMachines",
            "systemTypes.x86_64-linux.gracePeriod",
            "systemTypes.x86_64-linux.maxCreationsPerPass",
            "systemTypes.x86_64-linux.maxJobs",
            "systemTypes.x86_64-linux.speedFactor",
        ] {
            assert!(p.iter().any(|p| p.starts_with(&format!("{key}: "))), "{key}: {p:#?}");
        }
        // The largest allowed values are accepted.
        let (c, _) = parse_ok(json!({"deployConcurrency": MAX_DEPLOY_CONCURRENCY, "drainDelay": MAX_DURATION,
            "systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "maxMachines": MAX_MACHINES,
                "maxCreationsPerPass": MAX_CREATIONS_PER_PASS}}}));
        assert_eq!(c.system_types["x86_64-linux"].max_machines, MAX_MACHINES);
    }

    #[test]
    fn toml_nan_and_inf_are_errors_not_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "drainDelay = nan\n[systemTypes.x86_64-linux]\nnixopsExpr = \"/d\"\nspeedFactor = inf\ngracePeriod = -inf\n")
            .unwrap();
        let e = load(&path).unwrap_err().downcast::<ConfigError>().unwrap();
        for key in ["drainDelay", "systemTypes.x86_64-linux.speedFactor", "systemTypes.x86_64-linux.gracePeriod"] {
            assert!(e.problems.iter().any(|p| p.starts_with(&format!("{key}: must be a finite number"))), "{key}: {e}");
        }
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
