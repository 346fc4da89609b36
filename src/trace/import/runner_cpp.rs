//! Step durations from rows written by the C++ queue runner (2015 to 2026).
//!
//! It stored the start and stop times the remote builder reported, on the
//! builder's clock, and kept the time spent copying closures to and from the
//! builder outside that span, in `overhead` (milliseconds). A builder's slot
//! is taken for both, so the duration is `stopTime - startTime + overhead`.
//! Clock skew between builder and queue runner makes `stopTime < startTime`
//! possible; such rows tell no duration and are skipped.

use super::Skip;

pub fn duration_ms(start: i64, stop: i64, overhead_ms: Option<i64>) -> Result<i64, Skip> {
    if stop < start {
        return Err(Skip::StopBeforeStart);
    }
    Ok((stop - start) * 1000 + overhead_ms.unwrap_or(0).max(0))
}
