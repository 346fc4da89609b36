//! Step durations from rows written by the Rust queue runner (upstream
//! since March 2026).
//!
//! It stamps start and stop with its own clock around the whole step, so the
//! copying it reports in `overhead` is already inside `stopTime - startTime`;
//! adding it again would count it twice. A restart of this runner sets
//! `stopTime` of the steps it abandons to the restart time (status aborted):
//! that span is not the step's work, but it is only ever an earlier attempt
//! or a step that gave up, whose length the trace does not use for a retry.

use super::Skip;

pub fn duration_ms(start: i64, stop: i64, _overhead_ms: Option<i64>) -> Result<i64, Skip> {
    if stop < start {
        return Err(Skip::StopBeforeStart);
    }
    Ok((stop - start) * 1000)
}
