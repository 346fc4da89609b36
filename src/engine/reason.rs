//! Why the engine decided what it decided: one typed reason per machine and
//! a list of typed reasons per machine type. Logs, `--dry-run`, `plan` and
//! simulation reports all print these; nothing else explains a decision.

use crate::model::{MachineState, Seconds};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the engine took a machine's "last active" time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// `machineTypes.<T>.lastActive` (status dumps before late 2022).
    TypeLastActive,
    /// `machines.<m>.idleSince` from the status.
    MachineIdleSince,
    /// The provisioner's own record of when it first saw the machine idle.
    Observed,
    /// First seen idle in this very pass.
    ThisPass,
    /// The original's fallback: `now - uptime + 1800` (queue runner start).
    UptimeFallback,
}

impl fmt::Display for ActivitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActivitySource::TypeLastActive => "type lastActive",
            ActivitySource::MachineIdleSince => "machine idleSince",
            ActivitySource::Observed => "observed idle",
            ActivitySource::ThisPass => "first seen idle now",
            ActivitySource::UptimeFallback => "queue-runner uptime fallback",
        })
    }
}

/// The reason behind one machine's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Chosen as the `rank`-th of `allowed` machines serving this type's demand.
    NeededForDemand { rank: u64, allowed: u64 },
    /// Created as the `rank`-th of `allowed` machines serving this type's demand.
    CreatedForDemand { rank: u64, allowed: u64 },
    /// Unneeded, but already paid for at least `threshold` more seconds.
    PaidTimeLeft { left: Seconds, threshold: Seconds },
    /// Unneeded but running build steps.
    Busy { jobs: u64 },
    /// Unneeded, but its type (or itself) was active less than `gracePeriod` ago.
    InGracePeriod { last_active: Seconds, until: Seconds, source: ActivitySource },
    /// Unneeded and idle, but the queue runner started less than `restartGuard`
    /// ago and may not have loaded its whole queue yet.
    QueueRunnerRecentlyStarted { uptime: Seconds, guard: Seconds },
    /// Taken out of the machines file; stopped or destroyed in a later pass,
    /// once Hydra has reread the file (`drainDelay`) and reports it idle.
    Draining { delisted_at: Seconds, until: Seconds },
    /// Delisted long enough, but the queue runner still lists it as enabled.
    WaitingForReload { delisted_at: Seconds },
    /// Unneeded and idle since `last_active`, grace period over.
    Idle { last_active: Option<Seconds>, source: Option<ActivitySource> },
    /// The machine is not running (NixOps state), so it serves nothing.
    NotRunning { machine_state: MachineState },
    /// The machine was stopped on purpose (`stopOnIdle`) and stays stopped.
    Stopped,
    /// The last `failures` deploys failed; it is replaced instead of reused.
    DeployFailedRepeatedly { failures: u32, limit: u32 },
    /// Its `type` argument is not a configured machine type.
    TypeNotConfigured { type_argument: String },
    /// Expired, but still paid for `left` seconds (>= `threshold`); left alone, delisted.
    PaidTimeLeftBeforeStop { left: Seconds, threshold: Seconds },
    /// The queue runner's status is unavailable: nothing is stopped or destroyed.
    QueueStatusUnavailable { detail: String },
    /// Running but without a known address since `since`; it cannot be
    /// listed or matched, and is left alone until `until` (`addressTimeout`).
    NoAddress { since: Seconds, until: Seconds },
    /// Running without an address since `since`, longer than `timeout`
    /// (`addressTimeout`): broken, so it is destroyed.
    NoAddressTimedOut { since: Seconds, timeout: Seconds },
    /// Not running as far as NixOps knows since `since` (one `nixops check`
    /// may be wrong: SSH fails now and then, EC2 answers late); delisted and
    /// left alone until `until` (`notRunningTimeout`).
    NotRunningSince { machine_state: MachineState, since: Seconds, until: Seconds },
    /// Its address cannot be written to the machines file, so it can never
    /// serve; it is replaced and goes like an idle machine.
    UnusableAddress { address: String },
    /// Unneeded, but the status cannot say whether it is building (no
    /// `machines` section): delisted, never stopped or destroyed until it is
    /// shown idle.
    ActivityUnknown,
    /// Input on which the original provisioner crashed; the fleet is left alone.
    OriginalWouldCrash { why: String },
    /// The Rust runner has no drain: a builder goes only once it has been
    /// idle (by our own record) for its type's `gracePeriod`, from
    /// `idle_since` until `until`; kept until then.
    IdleNotHeld { idle_since: Seconds, until: Seconds },
    /// A step running on the builder is on its last try (`tries` used of
    /// `max_tries`): stopping the builder would fail it for good.
    LastTryRunning { tries: u32, max_tries: u32 },
    /// The builder has not pinged the Rust runner since `last_ping`, longer
    /// than `watchdogReplace` (`limit`): its service is stopped and it is
    /// replaced, freeing the slots the runner would hold for it.
    BuilderSilent { last_ping: Seconds, limit: Seconds },
}

impl fmt::Display for Reason {
    /// Times as RFC 3339 (UTC); [`Reason::at`] adds how long ago.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, None)
    }
}

impl Reason {
    /// The reason as text, with every time also said relative to `now`
    /// (the pass's time): "idle since 2023-11-14T22:13:20Z (25m ago)".
    pub fn at(&self, now: Seconds) -> impl fmt::Display + '_ {
        struct ReasonAt<'a>(&'a Reason, Seconds);
        impl fmt::Display for ReasonAt<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.render(f, Some(self.1))
            }
        }
        ReasonAt(self, now)
    }

    fn render(&self, f: &mut fmt::Formatter<'_>, now: Option<Seconds>) -> fmt::Result {
        let at = |t: Seconds| When { t, now };
        match self {
            Reason::NeededForDemand { rank, allowed } => write!(f, "needed for demand ({rank} of {allowed})"),
            Reason::CreatedForDemand { rank, allowed } => write!(f, "new machine for demand ({rank} of {allowed})"),
            Reason::PaidTimeLeft { left, threshold } => write!(f, "paid time left {left}s >= {threshold}s"),
            Reason::Busy { jobs } => write!(f, "busy with {jobs} job(s)"),
            Reason::InGracePeriod { last_active, until, source } => {
                write!(f, "in grace period (last active {} by {source}, until {})", at(*last_active), at(*until))
            }
            Reason::QueueRunnerRecentlyStarted { uptime, guard } => {
                write!(f, "queue runner up only {uptime}s (< {guard}s), queue may not be loaded yet")
            }
            Reason::Draining { delisted_at, until } => {
                write!(f, "draining since {} until {}", at(*delisted_at), at(*until))
            }
            Reason::WaitingForReload { delisted_at } => {
                write!(f, "delisted at {} but the queue runner still has it enabled", at(*delisted_at))
            }
            Reason::Idle { last_active: Some(t), source: Some(s) } => {
                write!(f, "idle since {} ({s}), grace period over", at(*t))
            }
            Reason::Idle { .. } => write!(f, "idle, grace period over"),
            Reason::NotRunning { machine_state } => write!(f, "not running (state {machine_state})"),
            Reason::Stopped => write!(f, "stopped while idle"),
            Reason::DeployFailedRepeatedly { failures, limit } => {
                write!(f, "{failures} deploys failed in a row (limit {limit}), replacing it")
            }
            Reason::TypeNotConfigured { type_argument } => {
                write!(f, "machine type `{type_argument}` is not configured")
            }
            Reason::PaidTimeLeftBeforeStop { left, threshold } => {
                write!(f, "expired but paid time left {left}s >= {threshold}s, delisted until then")
            }
            Reason::QueueStatusUnavailable { detail } => {
                write!(f, "queue status unavailable ({detail}), fleet left alone")
            }
            Reason::NoAddress { since, until } => {
                write!(f, "running without a public address since {since}; left alone until {until}")
            }
            Reason::NoAddressTimedOut { since, timeout } => {
                write!(f, "running without a public address since {since}, longer than addressTimeout ({timeout}s)")
            }
            Reason::NotRunningSince { machine_state, since, until } => {
                write!(f, "not running (state {machine_state}) since {since}; delisted and left alone until {until}")
            }
            Reason::UnusableAddress { address } => {
                write!(f, "address {address:?} cannot be written to the machines file; replaced")
            }
            Reason::ActivityUnknown => {
                write!(f, "unneeded, but the status cannot say whether it is building; drained, not stopped")
            }
            Reason::OriginalWouldCrash { why } => write!(f, "the original provisioner would crash here: {why}"),
            Reason::IdleNotHeld { idle_since, until } => write!(
                f,
                "idle since {}; the Rust runner has no drain, so it goes once idle until {}",
                at(*idle_since),
                at(*until)
            ),
            Reason::LastTryRunning { tries, max_tries } => write!(
                f,
                "runs a step that used {tries} of its {max_tries} tries: stopping the builder would fail it for good"
            ),
            Reason::BuilderSilent { last_ping, limit } => write!(
                f,
                "no ping since {}, longer than watchdogReplace ({limit}s): service stopped, machine replaced",
                at(*last_ping)
            ),
        }
    }
}

/// A Unix time for people: RFC 3339 in UTC, and, when the pass's time is
/// known, how long before or after it ("2023-11-14T22:13:20Z (25m ago)").
/// Times jiff cannot represent stay numbers.
#[derive(Debug, Clone, Copy)]
pub struct When {
    pub t: Seconds,
    pub now: Option<Seconds>,
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_second(self.t) {
            Ok(stamp) => write!(f, "{stamp}")?,
            Err(_) => write!(f, "{}", self.t)?,
        }
        let Some(now) = self.now else { return Ok(()) };
        match now.saturating_sub(self.t) {
            0 => write!(f, " (now)"),
            ago if ago > 0 => write!(f, " ({} ago)", Elapsed(ago)),
            ahead => write!(f, " (in {})", Elapsed(ahead.saturating_abs())),
        }
    }
}

/// Seconds as days, hours, minutes and seconds ("3d 4h 5m"), by jiff's friendly format.
struct Elapsed(i64);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let balanced = jiff::Span::new()
            .try_seconds(self.0)
            .and_then(|span| span.round(jiff::SpanRound::new().largest(jiff::Unit::Day).days_are_24_hours()));
        match balanced {
            Ok(span) => write!(f, "{span:#}"),
            Err(_) => write!(f, "{}s", self.0),
        }
    }
}

/// A per machine type remark: why the type got fewer machines than it wanted,
/// or why it was not provisioned at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TypeNote {
    /// Wanted more machines than `maxMachines` allows.
    AtMaxMachines { wanted: u64, max: u64 },
    /// Short of `allowed`, but only `per_pass` creations are made per pass.
    CreationLimitReached { per_pass: u32, short_by: u64 },
    /// Runnable steps of a type that is not configured.
    NotConfigured { runnable: u64 },
    /// The queue status is unavailable; only `minMachines` is honoured.
    QueueStatusUnavailable { detail: String },
}

impl fmt::Display for TypeNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeNote::AtMaxMachines { wanted, max } => write!(f, "wants {wanted} machines, maxMachines is {max}"),
            TypeNote::CreationLimitReached { per_pass, short_by } => {
                write!(f, "{short_by} machine(s) short, but at most {per_pass} created per pass")
            }
            TypeNote::NotConfigured { runnable } => {
                write!(f, "cannot provision: {runnable} runnable, type not configured")
            }
            TypeNote::QueueStatusUnavailable { detail } => write!(f, "queue status unavailable ({detail})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_and_relative_to_the_pass() {
        let idle = Reason::Idle { last_active: Some(1_700_000_000), source: Some(ActivitySource::Observed) };
        assert_eq!(idle.to_string(), "idle since 2023-11-14T22:13:20Z (observed idle), grace period over");
        assert_eq!(
            idle.at(1_700_000_000 + 3900).to_string(),
            "idle since 2023-11-14T22:13:20Z (1h 5m ago) (observed idle), grace period over"
        );
        let draining = Reason::Draining { delisted_at: 1_700_000_000, until: 1_700_000_060 };
        assert_eq!(
            draining.at(1_700_000_000).to_string(),
            "draining since 2023-11-14T22:13:20Z (now) until 2023-11-14T22:14:20Z (in 1m)"
        );
        assert_eq!(
            When { t: 1_700_000_000, now: Some(1_700_000_000 + 3 * 86_400 + 7) }.to_string(),
            "2023-11-14T22:13:20Z (3d 7s ago)"
        );
        assert_eq!(When { t: i64::MAX, now: Some(0) }.to_string(), format!("{} (in {}s)", i64::MAX, i64::MAX));
    }
}
