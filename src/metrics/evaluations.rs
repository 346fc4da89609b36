//! Per-evaluation completion time: from the first step of an evaluation
//! queued to its last build done, the figure Hydra's dashboard shows for an
//! evaluation, collected per jobset. Steps name their evaluation by the
//! trace's `eval_id`; steps without one are not counted here.
//!
//! This module counts; it does not know steps, machines or time beyond the
//! milliseconds it is given. An evaluation completes when every step that
//! arrived for it has left the queue (built, failed, or never to start
//! because of a failed dependency); one with a step still queued, running or
//! retrying when the run ends is reported as unfinished.

use super::{EvaluationStats, WaitStats};
use std::collections::{BTreeMap, HashMap};

/// No evaluation: the value steps without an `eval_id` carry.
pub const NO_EVALUATION: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Evaluation {
    jobset: u32,
    queued_ms: i64,
    last_done_ms: Option<i64>,
    open: u32,
    /// A step of it was still in the model when the run ended.
    cut_short: bool,
}

/// The evaluations of a run.
#[derive(Debug, Clone, Default)]
pub struct Evaluations {
    index: HashMap<(u32, u64), u32>,
    evaluations: Vec<Evaluation>,
}

impl Evaluations {
    /// A step of evaluation `eval_id` of `jobset`, queued at `queued_ms`,
    /// arrived; returns the evaluation's number for [`Evaluations::left`].
    pub fn arrived(&mut self, jobset: u32, eval_id: u64, queued_ms: i64) -> u32 {
        let next = self.evaluations.len() as u32;
        let e = *self.index.entry((jobset, eval_id)).or_insert(next);
        if e == next {
            self.evaluations.push(Evaluation { jobset, queued_ms, last_done_ms: None, open: 0, cut_short: false });
        }
        let ev = &mut self.evaluations[e as usize];
        ev.open += 1;
        ev.queued_ms = ev.queued_ms.min(queued_ms);
        e
    }

    /// A step of evaluation `e` left the queue: finished at `done_ms`, or
    /// without finishing (`None`: it never started); `cut_short` when the
    /// run ended before it did.
    pub fn left(&mut self, e: u32, done_ms: Option<i64>, cut_short: bool) {
        let Some(ev) = self.evaluations.get_mut(e as usize) else { return };
        ev.open = ev.open.saturating_sub(1);
        if let Some(t) = done_ms {
            ev.last_done_ms = Some(ev.last_done_ms.map_or(t, |l| l.max(t)));
        }
        ev.cut_short |= cut_short;
    }

    pub fn is_empty(&self) -> bool {
        self.evaluations.is_empty()
    }

    /// Completion statistics per jobset, named by `jobset_name`.
    pub fn stats(&self, jobset_name: impl Fn(u32) -> String) -> BTreeMap<String, EvaluationStats> {
        let mut times: BTreeMap<u32, (Vec<i64>, u64)> = BTreeMap::new();
        for ev in &self.evaluations {
            let entry = times.entry(ev.jobset).or_default();
            match ev.last_done_ms {
                Some(done) if ev.open == 0 && !ev.cut_short => entry.0.push(done - ev.queued_ms),
                // Every step left without a build finishing (all failed
                // dependencies): nothing was built, so no completion time.
                None if ev.open == 0 && !ev.cut_short => {}
                _ => entry.1 += 1,
            }
        }
        times
            .into_iter()
            .map(|(j, (mut ms, unfinished))| {
                let stats = EvaluationStats {
                    completed: ms.len() as u64,
                    unfinished,
                    completion: WaitStats::from_millis(&mut ms),
                };
                (jobset_name(j), stats)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evaluation_completes_with_its_last_build_and_unfinished_ones_are_counted() {
        let mut e = Evaluations::default();
        let a = e.arrived(0, 7, 1000);
        let b = e.arrived(0, 7, 1500);
        assert_eq!(a, b);
        let c = e.arrived(0, 8, 2000);
        let d = e.arrived(1, 7, 0);
        e.left(a, Some(5000), false);
        e.left(b, Some(9000), false);
        e.left(c, None, true);
        e.left(d, Some(100), false);
        let stats = e.stats(|j| format!("j{j}"));
        assert_eq!((stats["j0"].completed, stats["j0"].unfinished), (1, 1));
        assert_eq!(stats["j0"].completion.max, 8.0);
        assert_eq!(stats["j1"].completion.p50, 0.1);
    }
}
