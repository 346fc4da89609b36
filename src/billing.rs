//! Billing models: how much a running instance has already paid for, and
//! what a stretch of running time costs.
//!
//! The engine asks "how much paid time is left?" to apply the original's
//! 1800 s / 600 s rules; the simulator and reports ask "what did this cost?".
//! Both answers come from here so the two can never disagree. This module does
//! not know prices; callers multiply billed seconds by their own rate.

use crate::model::{Seconds, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a cloud charges for a running instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BillingModel {
    /// Every started hour is charged in full, counted from the launch time
    /// (EC2 before October 2017; NixOps's `next_charge_time` rule).
    #[default]
    Hourly,
    /// Exact seconds with a 60 s minimum per start (EC2 Linux since 2017).
    PerSecond,
}

pub const HOUR: Seconds = 3600;
pub const PER_SECOND_MINIMUM: Seconds = 60;

impl BillingModel {
    /// When the next charge falls due for an instance launched at `launch`,
    /// as NixOps computes it: `launch + ceil((now - launch) / 3600) * 3600`,
    /// with `now` to the millisecond (NixOps used float time). A launch time
    /// in the future therefore counts as paid time (as in NixOps), and `now`
    /// exactly on an hour boundary leaves nothing paid, while half a second
    /// later a whole new hour is. Computed wide and saturated, so times near
    /// the ends of the clock give the end of the clock rather than an overflow.
    pub fn paid_until(self, launch: Seconds, now: impl Into<Timestamp>) -> Seconds {
        let (launch, now_ms) = (i128::from(launch), i128::from(now.into().millis()));
        let hour = i128::from(HOUR);
        saturate(match self {
            BillingModel::Hourly => launch + div_ceil(now_ms - launch * 1000, hour * 1000) * hour,
            BillingModel::PerSecond => launch + i128::from(PER_SECOND_MINIMUM),
        })
    }

    /// Whole seconds already paid for beyond `now` (never negative): the
    /// original's `next_charge_time() - int(time.time())`. An unknown launch
    /// time means nothing is known to be paid, as in the original.
    pub fn paid_time_left(self, launch: Option<Seconds>, now: impl Into<Timestamp>) -> Seconds {
        let now = now.into();
        match launch {
            Some(launch) => self.paid_until(launch, now).saturating_sub(now.secs()).max(0),
            None => 0,
        }
    }

    /// Seconds charged for one run of an instance from `start` to `end`
    /// (start from stopped or launch, to stop or termination); never
    /// negative, saturated at the end of the clock.
    pub fn billed_seconds(self, start: Seconds, end: Seconds) -> Seconds {
        self.billed(start, end, 1)
    }

    /// Same as [`BillingModel::billed_seconds`] on millisecond time, for the
    /// simulator, which keeps sub-second resolution; returns milliseconds.
    pub fn billed_millis(self, start_ms: i64, end_ms: i64) -> i64 {
        self.billed(start_ms, end_ms, 1000)
    }

    fn billed(self, start: i64, end: i64, per_second: i128) -> i64 {
        let ran = (i128::from(end) - i128::from(start)).max(0);
        saturate(match self {
            BillingModel::Hourly => {
                let hour = i128::from(HOUR) * per_second;
                div_ceil(ran, hour).max(1) * hour
            }
            BillingModel::PerSecond => ran.max(i128::from(PER_SECOND_MINIMUM) * per_second),
        })
    }
}

/// Integer ceiling division that is right for negative numerators too
/// (Python's `math.ceil(a / b)`).
fn div_ceil(a: i128, b: i128) -> i128 {
    // Every real time fits 64 bits, where division is one instruction
    // rather than a call into the runtime's 128-bit division.
    let (q, r) = match (i64::try_from(a), i64::try_from(b)) {
        (Ok(a), Ok(b)) if b > 0 => (i128::from(a.div_euclid(b)), i128::from(a.rem_euclid(b))),
        _ => (a.div_euclid(b), a.rem_euclid(b)),
    };
    if r == 0 { q } else { q + 1 }
}

/// An i128 clamped into the i64 range.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl fmt::Display for BillingModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BillingModel::Hourly => "hourly",
            BillingModel::PerSecond => "per-second",
        })
    }
}

impl FromStr for BillingModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hourly" => Ok(BillingModel::Hourly),
            "per-second" => Ok(BillingModel::PerSecond),
            other => Err(format!("unknown billing model `{other}` (expected `hourly` or `per-second`)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_matches_nixops_next_charge_rule() {
        let m = BillingModel::Hourly;
        assert_eq!(m.paid_time_left(Some(1000), 1000), 0, "launch instant is an hour boundary");
        assert_eq!(m.paid_time_left(Some(1000), 1001), 3599);
        assert_eq!(m.paid_time_left(Some(1000), 1000 + 3600), 0);
        assert_eq!(m.paid_time_left(Some(1000), 1000 + 3600 + 1800), 1800);
        assert_eq!(m.paid_time_left(Some(1000), 900), 100, "future launch counts as paid");
        assert_eq!(m.paid_time_left(None, 900), 0);
    }

    #[test]
    fn a_fraction_past_the_hour_buys_the_next_hour() {
        let m = BillingModel::Hourly;
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(m.paid_time_left(Some(1000), at("4600")), 0);
        // The original: next_charge_time() with float time, minus int(time.time()).
        assert_eq!(m.paid_time_left(Some(1000), at("4600.5")), 3600);
        assert_eq!(m.paid_time_left(Some(1000), at("4600.999")), 3600);
        assert_eq!(m.paid_time_left(Some(1000), at("4601.25")), 3599);
        assert_eq!(m.paid_time_left(Some(5000), at("4600.5")), 400, "launched in the future");
        assert_eq!(BillingModel::PerSecond.paid_time_left(Some(1000), at("1010.5")), 50);
    }

    #[test]
    fn per_second_has_a_minute_minimum() {
        let m = BillingModel::PerSecond;
        assert_eq!(m.paid_time_left(Some(1000), 1010), 50);
        assert_eq!(m.paid_time_left(Some(1000), 1100), 0);
        assert_eq!(m.billed_seconds(0, 10), 60);
        assert_eq!(m.billed_seconds(0, 300), 300);
        assert_eq!(m.billed_millis(0, 300_500), 300_500);
    }

    #[test]
    fn the_ends_of_the_clock_saturate_instead_of_overflowing() {
        for m in [BillingModel::Hourly, BillingModel::PerSecond] {
            assert!((0..=HOUR).contains(&m.paid_time_left(Some(i64::MIN), i64::MAX)));
            assert!(m.paid_time_left(Some(i64::MAX), i64::MIN) >= 0, "a launch far in the future");
            assert_eq!(m.billed_seconds(i64::MIN, i64::MAX), i64::MAX, "never negative hours");
            assert_eq!(m.billed_millis(i64::MIN, i64::MAX), i64::MAX);
        }
        assert_eq!(BillingModel::PerSecond.paid_time_left(Some(i64::MAX), i64::MIN), i64::MAX);
    }

    proptest::proptest! {
        /// The 64-bit shortcut rounds as the 128-bit division does.
        #[test]
        fn division_rounds_up_alike_in_64_and_128_bits(
            a in proptest::prelude::any::<i128>(),
            small in proptest::prelude::any::<i64>(),
            // Hours in seconds and milliseconds, as billing divides, and any divisor that fits.
            b in proptest::prop_oneof![1i128..=7_200_000, 1i128..=i128::from(i64::MAX)],
        ) {
            for a in [a, i128::from(small)] {
                let q = a.div_euclid(b);
                let expected = if a.rem_euclid(b) == 0 { q } else { q + 1 };
                proptest::prop_assert_eq!(div_ceil(a, b), expected);
            }
        }
    }

    #[test]
    fn hourly_bills_started_hours() {
        let m = BillingModel::Hourly;
        assert_eq!(m.billed_seconds(0, 300), 3600);
        assert_eq!(m.billed_seconds(0, 3600), 3600);
        assert_eq!(m.billed_seconds(0, 3601), 7200);
        assert_eq!(m.billed_seconds(5, 5), 3600, "a start is charged an hour");
        assert_eq!(m.billed_millis(0, 3_600_001), 7_200_000);
    }
}
