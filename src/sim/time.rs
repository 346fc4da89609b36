//! Virtual time: integer milliseconds since the trace's zero. The simulator
//! never reads a clock; this is the only time it knows.

use std::fmt;

/// Milliseconds since the trace's zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub i64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);

    pub fn from_secs_f64(s: f64) -> SimTime {
        SimTime((s * 1000.0).round() as i64)
    }

    pub fn plus_ms(self, ms: i64) -> SimTime {
        SimTime(self.0.saturating_add(ms))
    }

    /// Whole seconds, rounded down (the engine and Hydra speak seconds).
    pub fn whole_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::trace::format_seconds(self.0))
    }
}
