//! The vocabulary shared by the engine, the live driver and the simulator:
//! time, machine types, the fleet of provisioned deployments and the queue
//! runner's status, in one normalised shape whatever produced them.
//!
//! This module only defines data. It does not parse Hydra's status documents
//! (see [`crate::status`]), talk to NixOps (see `adapters`) or decide anything
//! (see [`crate::engine`]).

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Seconds since the Unix epoch (or since a trace's start in simulation).
///
/// Every time the engine reads (Hydra's status, NixOps's `startTime`) is
/// whole seconds, and the original compared times as `int(time.time())`, so
/// the engine's rules work in whole seconds; only the time of the pass
/// itself carries a fraction ([`Timestamp`]).
pub type Seconds = i64;

/// The time of a pass, to the millisecond.
///
/// The original read the clock as a float, and the fraction matters exactly
/// at a billing-hour boundary: NixOps's next charge, `start +
/// ceil((now - start) / 3600) * 3600`, is a whole hour later at `start +
/// 3600.5` than at `start + 3600`. A fraction finer than a millisecond
/// counts as one millisecond, so a time just after a whole second is never
/// read as that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    millis: i64,
}

impl Timestamp {
    pub fn from_secs(secs: Seconds) -> Timestamp {
        Timestamp { millis: secs.saturating_mul(1000) }
    }

    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp { millis }
    }

    /// `None` for a value that is not finite or is beyond a few hundred
    /// million years.
    pub fn from_secs_f64(secs: f64) -> Option<Timestamp> {
        if !secs.is_finite() || secs.abs() > 1e13 {
            return None;
        }
        let whole = secs.floor();
        let min_fraction = if secs > whole { 1 } else { 0 };
        let fraction = (((secs - whole) * 1000.0).round() as i64).clamp(min_fraction, 999);
        Some(Timestamp { millis: whole as i64 * 1000 + fraction })
    }

    /// Whole seconds, rounded down: Python's `int(time.time())`.
    pub fn secs(self) -> Seconds {
        self.millis.div_euclid(1000)
    }

    pub fn millis(self) -> i64 {
        self.millis
    }

    pub fn subsec_millis(self) -> i64 {
        self.millis.rem_euclid(1000)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

impl From<Seconds> for Timestamp {
    fn from(secs: Seconds) -> Timestamp {
        Timestamp::from_secs(secs)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subsec_millis() {
            0 => write!(f, "{}", self.secs()),
            ms => {
                let digits = format!("{ms:03}");
                write!(f, "{}.{}", self.secs(), digits.trim_end_matches('0'))
            }
        }
    }
}

impl FromStr for Timestamp {
    type Err = String;

    /// Unix seconds, whole (`1700000000`) or with a fraction (`1700000000.5`).
    fn from_str(s: &str) -> Result<Timestamp, String> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<i64>() {
            return Ok(Timestamp::from_secs(secs));
        }
        let looks_numeric = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'));
        s.parse::<f64>()
            .ok()
            .filter(|_| looks_numeric)
            .and_then(Timestamp::from_secs_f64)
            .ok_or_else(|| format!("`{s}` is not a time in Unix seconds (e.g. 1700000000 or 1700000000.5)"))
    }
}

/// Whole seconds as a JSON integer, otherwise a number with a fraction.
impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.subsec_millis() == 0 { s.serialize_i64(self.secs()) } else { s.serialize_f64(self.as_secs_f64()) }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time in Unix seconds")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::from_secs(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp::from_secs).map_err(|_| E::custom(format!("time {v} is too large")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::from_secs_f64(v).ok_or_else(|| E::custom(format!("time {v} is out of range")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The canonical spelling of a machine-type key (features sorted, as Hydra
/// writes them), or the key itself if it does not parse.
pub fn canonical_type_key(key: &str) -> String {
    MachineType::parse(key).map_or_else(|_| key.to_string(), |t| t.to_string())
}

/// A machine type key as Hydra and the config spell it: `systems[:features]`,
/// e.g. `x86_64-linux`, `x86_64-linux:benchmark`, `x86_64-linux:big-parallel,kvm`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineType {
    /// Systems, in the order written (Hydra's machine-type keys have one).
    pub systems: Vec<String>,
    /// Required (and, on provisioned machines, mandatory) features, sorted.
    pub features: BTreeSet<String>,
}

impl MachineType {
    /// Parses `systems[:features]`. Systems and features are comma lists;
    /// features are sorted so the canonical key matches Hydra's.
    pub fn parse(key: &str) -> Result<MachineType, String> {
        let (systems, features) = match key.split_once(':') {
            Some((s, f)) => (s, f),
            None => (key, ""),
        };
        let systems: Vec<String> =
            systems.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if systems.is_empty() {
            return Err(format!("machine type `{key}` names no system"));
        }
        for s in systems.iter() {
            if s.contains(char::is_whitespace) {
                return Err(format!("machine type `{key}`: system `{s}` contains white space"));
            }
        }
        let features: BTreeSet<String> =
            features.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if features.iter().any(|f| f.contains(char::is_whitespace)) {
            return Err(format!("machine type `{key}`: a feature contains white space"));
        }
        Ok(MachineType { systems, features })
    }

    /// Whether a step of `system` requiring exactly `required` features runs on
    /// a machine of this type, by Hydra's rule: the machine has the system,
    /// supports every required feature, and every mandatory feature of the
    /// machine (all of ours) is required by the step.
    pub fn serves(&self, system: &str, required: &BTreeSet<String>) -> bool {
        self.systems.iter().any(|s| s == system) && *required == self.features
    }
}

impl fmt::Display for MachineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.systems.join(","))?;
        if !self.features.is_empty() {
            let features: Vec<&str> = self.features.iter().map(String::as_str).collect();
            write!(f, ":{}", features.join(","))?;
        }
        Ok(())
    }
}

impl Serialize for MachineType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MachineType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MachineType::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The state NixOps records for a deployment's machine (`ResourceState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    Unknown,
    Missing,
    Starting,
    Up,
    Stopping,
    Stopped,
    Unreachable,
    Rescue,
}

impl MachineState {
    /// NixOps's numeric encoding, as `nixops export` prints it.
    pub fn from_nixops_code(code: i64) -> Option<MachineState> {
        Some(match code {
            0 => MachineState::Unknown,
            1 => MachineState::Missing,
            2 => MachineState::Starting,
            3 => MachineState::Up,
            4 => MachineState::Stopping,
            5 => MachineState::Stopped,
            6 => MachineState::Unreachable,
            7 => MachineState::Rescue,
            _ => return None,
        })
    }

    pub fn nixops_code(self) -> i64 {
        match self {
            MachineState::Unknown => 0,
            MachineState::Missing => 1,
            MachineState::Starting => 2,
            MachineState::Up => 3,
            MachineState::Stopping => 4,
            MachineState::Stopped => 5,
            MachineState::Unreachable => 6,
            MachineState::Rescue => 7,
        }
    }

    /// UP or STARTING: the states in which the original applies its keep
    /// rules and its paid-time guard.
    pub fn is_running(self) -> bool {
        matches!(self, MachineState::Up | MachineState::Starting)
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            MachineState::Unknown => "unknown",
            MachineState::Missing => "missing",
            MachineState::Starting => "starting",
            MachineState::Up => "up",
            MachineState::Stopping => "stopping",
            MachineState::Stopped => "stopped",
            MachineState::Unreachable => "unreachable",
            MachineState::Rescue => "rescue",
        };
        f.write_str(s)
    }
}

/// What the provisioner remembers about a deployment between passes. NixOps
/// does not record these; production keeps them in the state file, the
/// simulator in memory. All default to "nothing known", which is always safe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MachineMemory {
    /// Deploys that failed in a row since the last successful one.
    pub deploy_failures: u32,
    /// Fingerprint of the deployment spec last deployed successfully
    /// (see [`crate::engine::deploy_fingerprint`]).
    pub deployed_fingerprint: Option<SmolStr>,
    /// When that successful deploy happened.
    pub deployed_at: Option<Seconds>,
    /// Whether the machine was in the last machines file written.
    pub listed: bool,
    /// When the machine was taken out of the machines file (start of drain).
    pub delisted_at: Option<Seconds>,
    /// First pass that saw the machine with no running job, since it last had one.
    pub idle_since: Option<Seconds>,
    /// First pass that saw the machine running without a public address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_address_since: Option<Seconds>,
    /// First pass that saw the machine not running (missing, stopped,
    /// unreachable, ...), since it last ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_running_since: Option<Seconds>,
}

/// One provisioned deployment as the inventory reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// NixOps deployment name, `<tag>-<n>`.
    pub name: SmolStr,
    /// The `type` argument the deployment was created with, verbatim.
    pub machine_type: SmolStr,
    /// State of the machine `machine`: what NixOps recorded, or what this
    /// pass's `nixops check` found.
    pub state: MachineState,
    /// What NixOps had recorded before this pass's check changed it (`None`:
    /// not checked, or the check agreed). The original checked only the
    /// machines its reuse loop reached, so `quirks = "original"` decides
    /// the others on this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_state: Option<MachineState>,
    /// EC2 launch time (`startTime`); `None` or 0 means unknown.
    #[serde(default)]
    pub launch_time: Option<Seconds>,
    #[serde(default)]
    pub public_ip: Option<String>,
    /// The machine's SSH public host key line, e.g. `ssh-ed25519 AAAA...`.
    #[serde(default)]
    pub host_key: Option<String>,
    #[serde(default)]
    pub memory: MachineMemory,
}

impl Deployment {
    /// The host part Hydra uses for this machine (`root@<host>` / `ssh://root@<host>`),
    /// if it has an address a machines file can carry.
    pub fn host(&self) -> Option<&str> {
        self.public_ip.as_deref().filter(|ip| machines_file_host(ip))
    }

    /// An address that is set but cannot be written to the machines file:
    /// such a machine can never be listed, so it must not count as serving.
    pub fn unusable_address(&self) -> Option<&str> {
        self.public_ip.as_deref().filter(|ip| !ip.is_empty() && !machines_file_host(ip))
    }

    /// Launch time if known: NixOps treats 0 as "unknown" too.
    pub fn known_launch_time(&self) -> Option<Seconds> {
        self.launch_time.filter(|&t| t != 0)
    }
}

/// The provisioned fleet: our tagged deployments in the order the inventory
/// lists them (the original took reuse candidates in NixOps's order), plus
/// every other deployment name in the NixOps state, which a new name must
/// not collide with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    #[serde(default)]
    pub other_deployment_names: BTreeSet<String>,
}

/// Whether the queue runner could be observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueHealth {
    /// A status document with `"status": "up"`.
    Up,
    /// The status command failed or reported `"status": "down"` (or an empty
    /// document), which the original treated as an empty queue.
    Down { detail: String },
    /// The status could not be read as any known era of the format. Nothing
    /// is stopped or destroyed on such a pass.
    Unknown { detail: String },
}

/// Per machine type figures from the status document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeStatus {
    /// Runnable steps not dispatched in the runner's last pass.
    pub runnable: u64,
    pub running: u64,
    /// Only in dumps before late 2022, only while nothing of the type runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<Seconds>,
}

/// Per build machine figures from the status document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderStatus {
    /// False once removed from the machines file while still tracked.
    pub enabled: bool,
    pub current_jobs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<Seconds>,
}

/// What the Rust queue runner tells about a builder beyond the C++ fields
/// (`/status/machines` and `/status/queues`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderLiveness {
    /// `lastPing` (Unix seconds); `None` for a builder that has not pinged
    /// yet (`lastPing` 0), which is not silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ping: Option<Seconds>,
    /// The most tries any step running on it has used (`tries`), if it runs any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_tries: Option<u32>,
}

/// The queue runner's status, normalised: machine types after the i686
/// squash, machines keyed by bare host (no `ssh://`, no `user@`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    pub health: QueueHealth,
    /// The dump's own time, if it has one.
    #[serde(default)]
    pub time: Option<Seconds>,
    /// Seconds since the queue runner started; 0 when down.
    pub uptime: Seconds,
    /// Whether the document had a `machineTypes` section at all (an "up"
    /// status without one crashed the original).
    #[serde(default = "yes")]
    pub has_machine_types: bool,
    pub machine_types: BTreeMap<String, TypeStatus>,
    pub machines: BTreeMap<String, BuilderStatus>,
    /// Whether `machines` describes every machine the queue runner has. A
    /// `machines` section that is absent, `null` or `{}` (late-2022 to
    /// mid-2023 dumps have them while machines build) cannot: a machine
    /// absent from it is *unknown*, not idle (see `engine::activity`).
    #[serde(default = "yes")]
    pub machines_known: bool,
    /// Steps being built right now (`nrActiveSteps`; the Rust runner's
    /// `activeRunnable` summed), if the status says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_steps: Option<u64>,
    /// The Rust runner only: liveness and tries per builder, keyed as `machines`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub liveness: BTreeMap<String, BuilderLiveness>,
}

fn yes() -> bool {
    true
}

impl QueueStatus {
    /// The status of a queue runner that did not answer.
    pub fn down(detail: impl Into<String>) -> QueueStatus {
        QueueStatus {
            health: QueueHealth::Down { detail: detail.into() },
            time: None,
            uptime: 0,
            has_machine_types: true,
            machine_types: BTreeMap::new(),
            machines: BTreeMap::new(),
            // Nothing to doubt: a down status stops nothing in fixed mode,
            // and the original read it as an empty queue of idle machines.
            machines_known: true,
            active_steps: None,
            liveness: BTreeMap::new(),
        }
    }

    /// The status of a queue runner whose answer could not be understood.
    pub fn unknown(detail: impl Into<String>) -> QueueStatus {
        QueueStatus { health: QueueHealth::Unknown { detail: detail.into() }, ..QueueStatus::down("") }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.health, QueueHealth::Up)
    }

    pub fn builder(&self, host: &str) -> Option<&BuilderStatus> {
        self.machines.get(host)
    }
}

/// A word that fits in one column of Hydra's machines file: not empty, no
/// white space (the column separator), no `#` (a comment to the end of the
/// line) and no control characters.
pub fn machines_file_word(word: &str) -> bool {
    !word.is_empty() && !word.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#')
}

/// A host name or IP address as `root@<host>` in a machines file takes it:
/// letters, digits and `.-_:[]%` (IPv6 with a zone) only.
pub fn machines_file_host(host: &str) -> bool {
    // Bytes rather than chars: every accepted character is ASCII, and a
    // byte of a multi-byte character is neither alphanumeric nor listed.
    !host.is_empty() && host.bytes().all(|c| HOST_BYTES[usize::from(c)])
}

/// The bytes [`machines_file_host`] accepts, as a table: a pass checks
/// every machine's address several times.
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'[' | b']' | b'%');
        i += 1;
    }
    table
};

/// Strips a machines-file store URI down to its host: `ssh://root@1.2.3.4`
/// and `root@1.2.3.4` both become `1.2.3.4`.
pub fn host_of_store_uri(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.rsplit_once('@').map_or(rest, |(_, h)| h)
}

/// Everything the engine looks at in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub status: QueueStatus,
    pub fleet: Fleet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machines_file_host_is_letters_digits_and_address_punctuation() {
        for ok in ["10.0.0.1", "builder-1.example.org", "fe80::1%eth0", "[2001:db8::1]", "a_b"] {
            assert!(machines_file_host(ok), "{ok}");
        }
        for bad in ["", "10.0.0.1 ", "a#b", "a/b", "a@b", "h\u{e9}te", "a\tb", "a,b"] {
            assert!(!machines_file_host(bad), "{bad:?}");
        }
        let accepted: String =
            (0..=255u8).filter(|&b| machines_file_host(&char::from(b).to_string())).map(char::from).collect();
        assert_eq!(accepted, "%-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn machine_type_keys_round_trip_with_sorted_features() {
        let t = MachineType::parse("x86_64-linux:kvm,big-parallel").unwrap();
        assert_eq!(t.to_string(), "x86_64-linux:big-parallel,kvm");
        assert_eq!(MachineType::parse("aarch64-linux").unwrap().to_string(), "aarch64-linux");
        assert!(MachineType::parse(":kvm").is_err());
        assert!(MachineType::parse("").is_err());
    }

    #[test]
    fn mandatory_features_keep_plain_steps_away() {
        let bench = MachineType::parse("x86_64-linux:benchmark").unwrap();
        assert!(!bench.serves("x86_64-linux", &BTreeSet::new()));
        assert!(bench.serves("x86_64-linux", &["benchmark".to_string()].into()));
        assert!(!bench.serves("aarch64-linux", &["benchmark".to_string()].into()));
    }

    #[test]
    fn store_uris_reduce_to_hosts() {
        assert_eq!(host_of_store_uri("ssh://root@10.0.0.1"), "10.0.0.1");
        assert_eq!(host_of_store_uri("root@10.0.0.1"), "10.0.0.1");
        assert_eq!(host_of_store_uri("10.0.0.1"), "10.0.0.1");
        assert_eq!(host_of_store_uri("ssh-ng://builder"), "builder");
    }

    #[test]
    fn nixops_state_codes_round_trip() {
        for code in 0..8 {
            assert_eq!(MachineState::from_nixops_code(code).unwrap().nixops_code(), code);
        }
        assert_eq!(MachineState::from_nixops_code(8), None);
    }
}
