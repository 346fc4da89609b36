//! Scenario files (TOML, docs/scenario-format.md): which trace, which
//! provisioner configuration, what the cloud and the static fleet look like,
//! and the run's parameters. Unknown keys are errors that name the key.
//!
//! This module reads and validates; it does not open the trace or run anything.

use crate::billing::BillingModel;
use crate::config::{self, Config, Runner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `nixopsExpr` given to types of an inline configuration that omit it: the
/// simulator never evaluates it, but the configuration schema requires one.
pub const SIMULATED_NIXOPS_EXPR: &str = "/simulated/machine.nix";

/// The longest delay a scenario may give (boot, start, deploy, interval,
/// reload): about 11 days, far beyond any real one.
pub const MAX_DELAY: f64 = 1e6;
/// The largest lognormal spread (sigma): e^(2 * 6) is a 160 000-fold delay.
pub const MAX_SPREAD: f64 = 2.0;
/// Dollars per hour; only a bound against typos and overflowing sums.
pub const MAX_PRICE: f64 = 1e6;
/// The most identical machines one static machine entry may stand for.
pub const MAX_STATIC_COUNT: u32 = 10_000;

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("scenario {origin}: {message}")]
pub struct ScenarioError {
    pub origin: String,
    pub message: String,
}

/// Which status era the simulated queue runner reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Era {
    /// Dumps before late 2022: `machineTypes.<T>.lastActive` while idle.
    WithLastActive,
    /// Dumps since late 2022: no `lastActive`.
    #[default]
    WithoutLastActive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    #[default]
    OnDemand,
    Spot,
}

/// The cloud's side of one machine type.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudType {
    pub instance_type: String,
    pub market: Market,
    /// Dollars per hour on demand.
    pub on_demand_price: f64,
    /// Dollars per hour on the spot market (required when `market = "spot"`).
    pub spot_price: Option<f64>,
    /// Dollars per hour for the disks of a stopped instance.
    pub storage_price: f64,
    /// Seconds from the create request to a machine that can be deployed (lognormal median).
    pub boot_median: f64,
    /// Sigma of the logarithm of the boot delay.
    pub boot_spread: f64,
    /// Seconds from a start request to a stopped machine being up (lognormal median).
    pub start_median: f64,
    pub start_spread: f64,
    /// Seconds of the first deploy of a fresh or restarted machine.
    pub deploy: f64,
    /// Seconds of a deploy of a machine that is already up.
    pub redeploy: f64,
    /// Chance that a deploy fails.
    pub deploy_failure_rate: f64,
    /// Interruptions per instance-hour (spot only); each comes with a 2-minute notice.
    pub spot_interruptions_per_hour: f64,
    /// How the cloud bills; defaults to the type's `billing` in the provisioner configuration.
    pub billing: Option<BillingModel>,
}

impl Default for CloudType {
    fn default() -> Self {
        CloudType {
            instance_type: "m4.xlarge".into(),
            market: Market::OnDemand,
            on_demand_price: 0.20,
            spot_price: None,
            storage_price: 0.01,
            boot_median: 60.0,
            boot_spread: 0.3,
            start_median: 30.0,
            start_spread: 0.3,
            deploy: 120.0,
            redeploy: 20.0,
            deploy_failure_rate: 0.0,
            spot_interruptions_per_hour: 0.0,
            billing: None,
        }
    }
}

impl CloudType {
    pub fn price(&self) -> f64 {
        match self.market {
            Market::OnDemand => self.on_demand_price,
            Market::Spot => self.spot_price.unwrap_or(self.on_demand_price),
        }
    }
}

/// A build machine that is always there, outside the provisioner's control.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMachine {
    pub name: String,
    pub systems: Vec<String>,
    #[serde(default = "one")]
    pub max_jobs: u32,
    #[serde(default = "one_f")]
    pub speed_factor: f64,
    #[serde(default)]
    pub supported_features: Vec<String>,
    #[serde(default)]
    pub mandatory_features: Vec<String>,
    /// How many identical machines (named `name-1`, `name-2`, ... when more than one).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}

/// A part of a trace, in seconds on the trace's own time axis: the steps
/// submitted at `start` or later and before `end` are replayed, moved so
/// that `start` is the run's zero (docs/scenario-format.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub start: f64,
    pub end: f64,
}

impl Window {
    /// Reads `[start, end]` (seconds) or `"start..end"` with units
    /// (`"24h..48h"`, see [`parse_duration`]).
    pub fn from_toml(v: &toml::Value) -> Result<Window, String> {
        let bad =
            || format!("expected [start, end] in seconds or \"start..end\" with units (e.g. \"24h..48h\"), got {v}");
        let (start, end) = match v {
            toml::Value::Array(a) if a.len() == 2 => {
                let num = |x: &toml::Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
                (num(&a[0]).ok_or_else(bad)?, num(&a[1]).ok_or_else(bad)?)
            }
            toml::Value::String(s) => {
                let (a, b) = s.split_once("..").ok_or_else(bad)?;
                (parse_duration(a)?, parse_duration(b)?)
            }
            _ => return Err(bad()),
        };
        if !(start.is_finite() && end.is_finite() && start >= 0.0 && start < end && end <= 1e10) {
            return Err(format!("the start must be zero or more and before the end, got {start}..{end} s"));
        }
        if start.fract() != 0.0 || end.fract() != 0.0 {
            return Err(format!("the start and end must be whole seconds, got {start}..{end} s"));
        }
        Ok(Window { start, end })
    }

    /// `start..end` in the shortest of days, hours, minutes or seconds.
    pub fn label(&self) -> String {
        format!("{}..{}", duration_text(self.start), duration_text(self.end))
    }
}

/// Seconds written with a unit: `90s`, `15m`, `1.5h`, `7d`, or a bare number
/// of seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        other => return Err(format!("`{text}`: unknown unit `{other}` (s, m, h, d)")),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: expected a number of seconds, or one with a unit (90s, 15m, 2h, 1d)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{text}`: must be zero or more"));
    }
    Ok(n * scale)
}

/// Seconds as the largest whole unit: `86400` is `1d`, `5400` is `90m`.
pub fn duration_text(seconds: f64) -> String {
    for (unit, size) in [("d", 86400.0), ("h", 3600.0), ("m", 60.0)] {
        if seconds != 0.0 && seconds % size == 0.0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// The simulated queue runner (`[hydra]`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HydraFile {
    runner: Option<String>,
    silent_per_hour: Option<f64>,
    silence_detection: Option<f64>,
    ping_interval: Option<f64>,
    service_stop: Option<f64>,
    /// Seconds, or a duration with a unit (`"1d"`).
    max_unsupported_time: Option<toml::Value>,
    /// Steps per second the queue monitor loads (absent: at once).
    queue_monitor_rate: Option<f64>,
}

impl HydraFile {
    /// The keys that model the Rust runner only.
    fn rust_keys_set(&self) -> bool {
        self.silent_per_hour.is_some()
            || self.silence_detection.is_some()
            || self.ping_interval.is_some()
            || self.service_stop.is_some()
    }
}

/// What the Rust queue runner's model needs beyond the C++ one's
/// (`sim/rust_runner.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct RustRunnerModel {
    /// Times per builder-hour a joined builder goes silent (exponential):
    /// it stops pinging and answering, and its steps hang.
    pub silent_per_hour: f64,
    /// Seconds until the runner's transport notices a silent builder and
    /// drops it, aborting its steps.
    pub silence_detection: f64,
    /// Seconds between a builder's pings.
    pub ping_interval: f64,
    /// Seconds from the provisioner's idle re-check to the builder leaving
    /// the runner (`nixops ssh` connecting, `systemctl stop`): the window in
    /// which a step dispatched to a retiring builder is aborted.
    pub service_stop: f64,
}

impl Default for RustRunnerModel {
    fn default() -> Self {
        // 924 s: Linux gives up on a peer that stopped acknowledging after
        // 15 retransmissions (tcp_retries2), and the runner's pings keep
        // data outstanding. 10 s: hydra-builder's ping interval. 2 s: an
        // ssh connection and a `systemctl stop`.
        RustRunnerModel { silent_per_hour: 0.0, silence_detection: 924.0, ping_interval: 10.0, service_stop: 2.0 }
    }
}

/// Placeholders an inline `runner = "rust"` configuration gets for the keys
/// production requires and the simulator never reads.
const SIMULATED_STATUS_URL: &str = "http://127.0.0.1:8080/status";
const SIMULATED_RUNNER_ENDPOINT: &str = "simulated:50051";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    trace: String,
    provisioner: toml::Value,
    #[serde(default)]
    cloud: BTreeMap<String, CloudType>,
    #[serde(default)]
    static_machines: Vec<StaticMachine>,
    #[serde(default)]
    shares: BTreeMap<String, u64>,
    horizon: Option<f64>,
    window: Option<toml::Value>,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default = "default_interval")]
    interval: f64,
    #[serde(default)]
    era: Era,
    #[serde(default = "default_reload")]
    reload_delay: f64,
    #[serde(default = "default_epoch")]
    epoch: i64,
    #[serde(default = "default_uptime")]
    queue_runner_uptime: i64,
    #[serde(default)]
    hydra: HydraFile,
    server: Option<ServerSection>,
}

/// `[server]`: the central server's share of a step's work (see `sim/server.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Threads doing local work: copying closures to and from builders,
    /// compressing and uploading outputs.
    pub local_workers: u32,
    /// MB/s of one transfer between the server and a builder, either way.
    pub copy_mb_per_s: f64,
    /// MB/s one thread compresses.
    pub compress_mb_per_s: f64,
    /// MB/s of one upload of compressed outputs to the binary cache.
    pub upload_mb_per_s: f64,
    /// Compressed size over NAR size.
    pub compression_ratio: f64,
    /// MB of input closure copied to the builder for each attempt.
    pub input_size_mb: f64,
    /// MB of outputs of a step whose trace row gives no `output_size`.
    pub output_size_mb: f64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            local_workers: 8,
            copy_mb_per_s: 20.0,
            compress_mb_per_s: 25.0,
            upload_mb_per_s: 15.0,
            compression_ratio: 0.3,
            input_size_mb: 100.0,
            output_size_mb: 100.0,
        }
    }
}

/// The most local worker threads a `[server]` may have.
pub const MAX_LOCAL_WORKERS: u32 = 4096;

fn default_seed() -> u64 {
    1
}
fn default_interval() -> f64 {
    300.0
}
fn default_reload() -> f64 {
    30.0
}
fn default_epoch() -> i64 {
    1_500_000_000
}
fn default_uptime() -> i64 {
    86_400
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// The trace file, resolved against the scenario's directory.
    pub trace: PathBuf,
    /// The trace as written in the scenario.
    pub trace_text: String,
    pub config: Config,
    /// Where the configuration came from (a path, or `inline`).
    pub config_origin: String,
    /// An inline configuration as JSON, as a `.json` configuration file would
    /// hold it (`None` when the scenario names a configuration file).
    pub config_json: Option<serde_json::Value>,
    pub cloud: BTreeMap<String, CloudType>,
    pub static_machines: Vec<StaticMachine>,
    pub shares: BTreeMap<String, u64>,
    /// Seconds after the run's zero (the trace's zero, or the start of the
    /// window) at which the run stops.
    pub horizon: Option<f64>,
    /// The part of the trace replayed; `None`: all of it.
    pub window: Option<Window>,
    pub seed: u64,
    pub interval: f64,
    pub era: Era,
    pub reload_delay: f64,
    /// Unix time of the trace's zero, for the engine's clock.
    pub epoch: i64,
    /// The queue runner's uptime at the trace's zero.
    pub queue_runner_uptime: i64,
    /// The simulated queue runner's generation (`[hydra] runner`; the
    /// configuration's `runner` follows it).
    pub runner: Runner,
    /// The Rust runner's model (read only under `runner = "rust"`).
    pub rust_runner: RustRunnerModel,
    /// `[hydra] max_unsupported_time` in seconds: how long a step no machine
    /// Hydra knows supports stays queued before it is aborted (`None`: for ever).
    pub max_unsupported_time: Option<f64>,
    /// `[hydra] queue_monitor_rate`: steps per second the queue monitor loads.
    pub queue_monitor_rate: Option<f64>,
    /// `[server]`: the server's local work; `None` (the default) leaves it out.
    pub server: Option<ServerSection>,
}

impl Scenario {
    /// A digest of what the scenario says about the world the policy runs
    /// in (cloud, static machines, shares, era, reload delay, epoch, queue
    /// runner uptime, horizon, window): not its name, seed, interval or
    /// provisioner configuration. Two runs with equal digests and equal trace
    /// digests replayed the same inputs under (perhaps) different policies.
    pub fn world_digest(&self) -> String {
        let world = serde_json::json!({
            "cloud": self.cloud,
            "static_machines": self.static_machines,
            "shares": self.shares,
            "horizon": self.horizon,
            "window": self.window,
            "era": self.era,
            "reload_delay": self.reload_delay,
            "epoch": self.epoch,
            "queue_runner_uptime": self.queue_runner_uptime,
        });
        // Added only when set, so that the digests of scenarios without them stay as they were.
        let mut world = world;
        if self.runner != Runner::Cpp {
            world["runner"] = serde_json::json!(self.runner);
        }
        if let Some(t) = self.max_unsupported_time {
            world["max_unsupported_time"] = serde_json::json!(t);
        }
        if let Some(r) = self.queue_monitor_rate {
            world["queue_monitor_rate"] = serde_json::json!(r);
        }
        if let Some(server) = &self.server {
            world["server"] = serde_json::json!(server);
        }
        let mut d = super::input::Digest::default();
        d.eat(world.to_string().as_bytes());
        d.hex()
    }

    /// The scenario as a run over its window sees it: the engine's clock and
    /// the queue runner's uptime moved on to the window's start.
    pub fn at_window_start(&self) -> Scenario {
        let mut s = self.clone();
        if let Some(w) = self.window {
            let start = w.start.floor() as i64;
            s.epoch = s.epoch.saturating_add(start);
            s.queue_runner_uptime = s.queue_runner_uptime.saturating_add(start);
        }
        s
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError { origin: origin.clone(), message: format!("cannot read: {e}") })?;
        Scenario::parse(&text, &origin, crate::config::directory_of(path))
    }

    /// Parses scenario text; relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let err = |message: String| ScenarioError { origin: origin.to_string(), message };
        let file: ScenarioFile = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let hydra_runner = match &file.hydra.runner {
            None => None,
            Some(r) => Some(r.parse::<Runner>().map_err(|e| err(format!("hydra.runner: {e}")))?),
        };
        let (config_json, config_origin, config) = match &file.provisioner {
            toml::Value::String(p) => {
                let path = base_dir.join(p);
                let (config, warnings) = config::load(&path).map_err(|e| err(format!("provisioner: {e:#}")))?;
                for w in warnings {
                    tracing::warn!("{w}");
                }
                (None, path.display().to_string(), config)
            }
            toml::Value::Table(_) => {
                // `nan` and `inf` would turn into JSON null, which reads as "the default".
                if let Some(problem) = config::non_finite_numbers(&file.provisioner).into_iter().next() {
                    return Err(err(format!("provisioner.{problem}")));
                }
                let mut json = serde_json::to_value(&file.provisioner).map_err(|e| err(format!("provisioner: {e}")))?;
                if let Some(types) = json.get_mut("systemTypes").and_then(|t| t.as_object_mut()) {
                    for t in types.values_mut() {
                        if let Some(t) = t.as_object_mut() {
                            t.entry("nixopsExpr").or_insert_with(|| SIMULATED_NIXOPS_EXPR.into());
                        }
                    }
                }
                if let Some(top) = json.as_object_mut() {
                    if let Some(r) = hydra_runner {
                        top.entry("runner").or_insert_with(|| r.name().into());
                    }
                    if top.get("runner").and_then(|r| r.as_str()) == Some("rust") {
                        top.entry("statusUrl").or_insert_with(|| SIMULATED_STATUS_URL.into());
                        top.entry("runnerEndpoint").or_insert_with(|| SIMULATED_RUNNER_ENDPOINT.into());
                    }
                }
                let origin_inline = format!("{origin} [provisioner]");
                let (config, warnings) =
                    config::parse(&json, &origin_inline, None).map_err(|e| err(format!("provisioner: {e}")))?;
                // A typo in an inline configuration is an error here, not a warning.
                if let Some(typo) = warnings.iter().find_map(|w| config::unknown_key_error(w)) {
                    return Err(err(format!("provisioner: {typo}")));
                }
                for w in warnings {
                    tracing::warn!("{w}");
                }
                (Some(json), "inline".to_string(), config)
            }
            other => {
                return Err(err(format!(
                    "provisioner: expected a table (the configuration) or a path, got {}",
                    other.type_str()
                )));
            }
        };
        let runner = hydra_runner.unwrap_or(config.runner);
        if runner != config.runner {
            return Err(err(format!(
                "hydra.runner is `{}` but the provisioner's runner is `{}`: the provisioner must serve the runner simulated",
                runner.name(),
                config.runner.name()
            )));
        }
        // Written beside an explicit C++ runner they are a mistake; beside
        // the configuration's default they wait for a `runner` sweep's
        // Rust points, so one base scenario serves both generations.
        if hydra_runner == Some(Runner::Cpp) && file.hydra.rust_keys_set() {
            return Err(err(
                "hydra: silent_per_hour, silence_detection, ping_interval and service_stop model the Rust runner; \
                 set hydra.runner = \"rust\""
                    .into(),
            ));
        }
        let defaults = RustRunnerModel::default();
        let rust_runner = RustRunnerModel {
            silent_per_hour: file.hydra.silent_per_hour.unwrap_or(defaults.silent_per_hour),
            silence_detection: file.hydra.silence_detection.unwrap_or(defaults.silence_detection),
            ping_interval: file.hydra.ping_interval.unwrap_or(defaults.ping_interval),
            service_stop: file.hydra.service_stop.unwrap_or(defaults.service_stop),
        };
        for (key, value, low, high) in [
            ("silent_per_hour", rust_runner.silent_per_hour, 0.0, 3600.0),
            ("silence_detection", rust_runner.silence_detection, 0.0, MAX_DELAY),
            ("ping_interval", rust_runner.ping_interval, 1.0, MAX_DELAY),
            ("service_stop", rust_runner.service_stop, 0.0, 60.0),
        ] {
            if !(value.is_finite() && (low..=high).contains(&value)) {
                return Err(err(format!("hydra.{key}: must be from {low} to {high}, got {value}")));
            }
        }
        let mut cloud = BTreeMap::new();
        for (key, c) in &file.cloud {
            let Some(tc) = config.type_for(key) else {
                return Err(err(format!("cloud.\"{key}\": no such machine type in the provisioner configuration")));
            };
            let at = |what: &str| format!("cloud.\"{key}\".{what}");
            // Upper bounds keep every drawn delay (median * e^(spread * z))
            // and every sum of them far inside the simulator's millisecond clock.
            let check = |v: f64, what: &str, positive: bool, max: f64| {
                if !v.is_finite() || v < 0.0 || (positive && v == 0.0) || v > max {
                    Err(err(format!(
                        "{}: must be {} and at most {max}, got {v}",
                        at(what),
                        if positive { "positive" } else { "zero or more" }
                    )))
                } else {
                    Ok(())
                }
            };
            check(c.on_demand_price, "on_demand_price", false, MAX_PRICE)?;
            check(c.storage_price, "storage_price", false, MAX_PRICE)?;
            check(c.boot_median, "boot_median", true, MAX_DELAY)?;
            check(c.boot_spread, "boot_spread", false, MAX_SPREAD)?;
            check(c.start_median, "start_median", true, MAX_DELAY)?;
            check(c.start_spread, "start_spread", false, MAX_SPREAD)?;
            check(c.deploy, "deploy", false, MAX_DELAY)?;
            check(c.redeploy, "redeploy", false, MAX_DELAY)?;
            check(c.spot_interruptions_per_hour, "spot_interruptions_per_hour", false, 3600.0)?;
            if !(0.0..=1.0).contains(&c.deploy_failure_rate) {
                return Err(err(format!("{}: must be between 0 and 1", at("deploy_failure_rate"))));
            }
            match (c.market, c.spot_price) {
                (Market::Spot, None) => {
                    return Err(err(format!("{}: required when market = \"spot\"", at("spot_price"))));
                }
                (_, Some(p)) => check(p, "spot_price", false, MAX_PRICE)?,
                _ => {}
            }
            if c.market != Market::Spot && c.spot_interruptions_per_hour > 0.0 {
                return Err(err(format!("{}: only spot instances are interrupted", at("spot_interruptions_per_hour"))));
            }
            cloud.insert(tc.canonical.to_string(), c.clone());
        }
        for key in config.system_types.keys() {
            if !cloud.contains_key(key) {
                return Err(err(format!(
                    "cloud.\"{key}\": missing (every provisioned machine type needs a cloud model)"
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, m) in file.static_machines.iter().enumerate() {
            let at = format!("static_machines[{i}]");
            if m.name.is_empty() || m.name.contains(|c: char| c.is_whitespace() || c == '#' || c == '@') {
                return Err(err(format!("{at}.name: must be a host name, got `{}`", m.name)));
            }
            if !names.insert(m.name.clone()) {
                return Err(err(format!("{at}.name: `{}` is used twice", m.name)));
            }
            if m.systems.is_empty() {
                return Err(err(format!("{at}.systems: must name at least one system")));
            }
            if m.max_jobs == 0 || !(m.speed_factor.is_finite() && m.speed_factor > 0.0) {
                return Err(err(format!("{at}: max_jobs and speed_factor must be positive")));
            }
            if m.max_jobs > config::MAX_JOBS {
                return Err(err(format!("{at}.max_jobs: must be at most {}, got {}", config::MAX_JOBS, m.max_jobs)));
            }
            if !config::SPEED_FACTOR_RANGE.contains(&m.speed_factor) {
                return Err(err(format!(
                    "{at}.speed_factor: must be from {} to {}, got {}",
                    config::SPEED_FACTOR_RANGE.start(),
                    config::SPEED_FACTOR_RANGE.end(),
                    m.speed_factor
                )));
            }
            if !(1..=MAX_STATIC_COUNT).contains(&m.count) {
                return Err(err(format!("{at}.count: must be from 1 to {MAX_STATIC_COUNT}, got {}", m.count)));
            }
        }
        for (jobset, shares) in &file.shares {
            if *shares == 0 {
                return Err(err(format!("shares.\"{jobset}\": must be positive")));
            }
        }
        if !(file.interval.is_finite() && (1.0..=MAX_DELAY).contains(&file.interval)) {
            return Err(err(format!("interval: must be from 1 to {MAX_DELAY} seconds, got {}", file.interval)));
        }
        if !(file.reload_delay.is_finite() && (0.0..=MAX_DELAY).contains(&file.reload_delay)) {
            return Err(err(format!("reload_delay: must be from 0 to {MAX_DELAY} seconds, got {}", file.reload_delay)));
        }
        const TEN_THOUSAND_YEARS: i64 = 315_360_000_000;
        if !(-TEN_THOUSAND_YEARS..=TEN_THOUSAND_YEARS).contains(&file.epoch) {
            return Err(err(format!("epoch: must be a Unix time, got {}", file.epoch)));
        }
        if !(0..=TEN_THOUSAND_YEARS).contains(&file.queue_runner_uptime) {
            return Err(err(format!("queue_runner_uptime: must be seconds, got {}", file.queue_runner_uptime)));
        }
        if let Some(h) = file.horizon.filter(|h| !(h.is_finite() && *h > 0.0 && *h <= 1e10)) {
            return Err(err(format!("horizon: must be positive seconds (at most 1e10), got {h}")));
        }
        let window = match &file.window {
            Some(v) => Some(Window::from_toml(v).map_err(|m| err(format!("window: {m}")))?),
            None => None,
        };
        let max_unsupported_time = match &file.hydra.max_unsupported_time {
            None => None,
            Some(toml::Value::String(t)) => {
                Some(parse_duration(t).map_err(|m| err(format!("hydra.max_unsupported_time: {m}")))?)
            }
            Some(v) => Some(v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).ok_or_else(|| {
                err(format!("hydra.max_unsupported_time: expected seconds or a duration such as \"1d\", got {v}"))
            })?),
        };
        if let Some(t) = max_unsupported_time.filter(|t| !(t.is_finite() && (0.0..=MAX_DELAY).contains(t))) {
            return Err(err(format!("hydra.max_unsupported_time: must be from 0 to {MAX_DELAY} seconds, got {t}")));
        }
        if let Some(r) = file.hydra.queue_monitor_rate.filter(|r| !(r.is_finite() && *r > 0.0 && *r <= 1e6)) {
            return Err(err(format!(
                "hydra.queue_monitor_rate: must be positive steps per second (at most 1e6), got {r}"
            )));
        }
        if let Some(server) = &file.server {
            check_server(server).map_err(|m| err(format!("server.{m}")))?;
        }
        let name = file.name.clone().unwrap_or_else(|| {
            Path::new(origin).file_stem().map_or("scenario".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Scenario {
            name,
            trace: base_dir.join(&file.trace),
            trace_text: file.trace,
            config,
            config_origin,
            config_json,
            cloud,
            static_machines: file.static_machines,
            shares: file.shares,
            horizon: file.horizon,
            window,
            seed: file.seed,
            interval: file.interval,
            era: file.era,
            reload_delay: file.reload_delay,
            epoch: file.epoch,
            queue_runner_uptime: file.queue_runner_uptime,
            runner,
            rust_runner,
            max_unsupported_time,
            queue_monitor_rate: file.hydra.queue_monitor_rate,
            server: file.server,
        })
    }
}

/// Bounds of a `[server]` section; the problem names its key.
fn check_server(s: &ServerSection) -> Result<(), String> {
    if !(1..=MAX_LOCAL_WORKERS).contains(&s.local_workers) {
        return Err(format!("local_workers: must be from 1 to {MAX_LOCAL_WORKERS}, got {}", s.local_workers));
    }
    for (key, v) in [
        ("copy_mb_per_s", s.copy_mb_per_s),
        ("compress_mb_per_s", s.compress_mb_per_s),
        ("upload_mb_per_s", s.upload_mb_per_s),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 1e6) {
            return Err(format!("{key}: must be positive MB/s (at most 1e6), got {v}"));
        }
    }
    if !(s.compression_ratio.is_finite() && s.compression_ratio > 0.0 && s.compression_ratio <= 1.0) {
        return Err(format!("compression_ratio: must be above 0 and at most 1, got {}", s.compression_ratio));
    }
    for (key, v) in [("input_size_mb", s.input_size_mb), ("output_size_mb", s.output_size_mb)] {
        if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
            return Err(format!("{key}: must be from 0 to 1e6 MB, got {v}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
trace = "t.csv"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 2
[cloud."x86_64-linux"]
on_demand_price = 0.5
"#;

    #[test]
    fn minimal_scenario_takes_defaults() {
        let s = Scenario::parse(GOOD, "s.toml", Path::new("/d")).unwrap();
        assert_eq!(s.trace, PathBuf::from("/d/t.csv"));
        assert_eq!((s.seed, s.interval, s.reload_delay), (1, 300.0, 30.0));
        assert_eq!(s.config.system_types["x86_64-linux"].max_machines, 2);
        assert_eq!(s.config.system_types["x86_64-linux"].nixops_expr, SIMULATED_NIXOPS_EXPR);
        assert_eq!(s.cloud["x86_64-linux"].price(), 0.5);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Scenario::parse(&format!("{GOOD}\nintervall = 5\n"), "s.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("intervall"), "{e}");
        let bad = GOOD.replace("on_demand_price", "on_demand_prize");
        let e = Scenario::parse(&bad, "s.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("on_demand_prize"), "{e}");
        let bad = GOOD.replace("maxMachines", "maxMachine");
        let e = Scenario::parse(&bad, "s.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("maxMachine"), "{e}");
    }

    #[test]
    fn a_configuration_file_is_read_relative_to_the_scenario() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("conf.json"),
            r#"{"systemTypes": {"aarch64-linux": {"nixopsExpr": "d.nix", "maxMachines": 3}}}"#,
        )
        .unwrap();
        let text = "trace = \"t.csv\"\nprovisioner = \"conf.json\"\n[cloud.\"aarch64-linux\"]\n";
        let s = Scenario::parse(text, "s.toml", dir.path()).unwrap();
        assert_eq!(s.config.system_types["aarch64-linux"].max_machines, 3);
        assert!(s.config_json.is_none());
        let e = Scenario::parse(&text.replace("conf.json", "nope.json"), "s.toml", dir.path()).unwrap_err();
        assert!(e.to_string().contains("nope.json"), "{e}");
    }

    #[test]
    fn windows_and_durations_read_with_units() {
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("15m"), Ok(900.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_duration("2d"), Ok(172_800.0));
        assert_eq!(parse_duration(" 30 "), Ok(30.0));
        for bad in ["", "m", "5 weeks", "-1m", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            (duration_text(86400.0), duration_text(5400.0), duration_text(61.0)),
            ("1d".into(), "90m".into(), "61s".into())
        );
        let s = Scenario::parse(&format!("window = \"1d..36h\"\n{GOOD}"), "s.toml", Path::new(".")).unwrap();
        assert_eq!(s.window, Some(Window { start: 86400.0, end: 129_600.0 }));
        assert_eq!(s.window.unwrap().label(), "1d..36h");
        let s = Scenario::parse(&format!("window = [0, 3600]\n{GOOD}"), "s.toml", Path::new(".")).unwrap();
        assert_eq!(s.at_window_start().epoch, s.epoch);
        let s = Scenario::parse(&format!("window = [7200, 9000]\n{GOOD}"), "s.toml", Path::new(".")).unwrap();
        let moved = s.at_window_start();
        assert_eq!((moved.epoch - s.epoch, moved.queue_runner_uptime - s.queue_runner_uptime), (7200, 7200));
        assert_ne!(s.world_digest(), Scenario::parse(GOOD, "s.toml", Path::new(".")).unwrap().world_digest());
        for bad in ["[5, 1]", "[0.5, 10]", "\"1h\"", "[1, 2, 3]", "\"1x..2h\""] {
            let e = Scenario::parse(&format!("window = {bad}\n{GOOD}"), "s.toml", Path::new(".")).unwrap_err();
            assert!(e.to_string().contains("window"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_type_needs_a_cloud_model() {
        let bad = GOOD.replace("[cloud.\"x86_64-linux\"]\non_demand_price = 0.5\n", "");
        let e = Scenario::parse(&bad, "s.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("cloud.\"x86_64-linux\""), "{e}");
    }
}
