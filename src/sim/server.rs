//! The Hydra server's own share of a step: the copy of each attempt's input
//! closure to its builder, and its pool of local worker threads, which after
//! a successful build receive the outputs, compress them and upload them to
//! the binary cache. This module is the pool and its figures (utilisation,
//! time waiting for a worker, upload backlog); it does not know steps,
//! machines or slot rules, which are the queue runner's (`sim/hydra/phases.rs`).
//!
//! **Work.**
//! - *copy to builder*: `input_size_mb / copy_mb_per_s` (Hydra's
//!   `copyClosureTo` in `build-remote.cc`, counted as `nrStepsCopyingTo`).
//!   It runs on the attempt's own builder thread, outside the pool: Hydra
//!   throttles only the work after the build with `localWorkThrottler`
//!   (`max_local_worker_threads`), so copies to builders are counted here
//!   ([`Server::copied_to`]) but take no worker;
//! - *receive outputs*, one worker thread from start to end: the copy back (`output / copy_mb_per_s`,
//!   `nrStepsCopyingFrom`), then compressing the NAR (`output /
//!   compress_mb_per_s`, the S3 store's `narWriteCompressionTimeMs`) and
//!   uploading it (`output * compression_ratio / upload_mb_per_s`), done in
//!   one go as Hydra's `addToStore` on its binary-cache store does.
//!
//! A request waits for a free thread in arrival order (first come, first
//! served; Hydra's `localWorkThrottler` semaphore promises no order, and
//! FIFO is the neutral reading, its waiters reported as
//! `nrStepsWaitingForDownloadSlot`). Requests for an attempt that has since
//! ended are dropped when they reach the head of the line (lazy
//! cancellation); a thread working for an attempt that ended works on until
//! its scheduled end, as the real copy would until its connection broke.
//!
//! The pool keeps the end of each thread's work, not an event per piece of
//! work: a thread whose work has ended is free for the next request, and
//! only while requests wait does the caller schedule a wake-up at the
//! earliest end ([`Grant::Queued`], [`Server::wake`]). So work that finds a
//! free thread costs the event loop nothing.

use super::scenario::ServerSection;
use crate::metrics::{ServerFigures, WaitHistogram, WaitStats, round3};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A request for a local worker on behalf of one attempt of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The step's arrival serial, slot and attempt (see `sim/hydra.rs`).
    pub serial: u64,
    pub slot: u32,
    pub attempt: u32,
    pub queued_at: i64,
    pub duration_ms: i64,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A thread took it now; it ends `duration_ms` later.
    Started,
    /// It waits its turn; when `wake_at` is given, the caller must call
    /// [`Server::wake`] then (no wake-up was pending).
    Queued { wake_at: Option<i64> },
}

/// The pool of local worker threads and what it measured.
#[derive(Debug)]
pub struct Server {
    spec: ServerSection,
    /// When each thread at work ends, earliest first.
    busy_until: BinaryHeap<Reverse<i64>>,
    waiting: VecDeque<Request>,
    /// A wake-up is scheduled (at the earliest end) for the waiting requests.
    wake_pending: bool,
    /// Time integral of busy threads, thread-milliseconds.
    busy_area: i128,
    /// Steps built whose outputs are not yet uploaded, and its time integral.
    backlog: u64,
    backlog_area: i128,
    backlog_max: u64,
    last_change: i64,
    worker_waits: WaitHistogram,
    copies_to: u64,
    uploads: u64,
    uploaded_mb: f64,
}

fn ms(mb: f64, mb_per_s: f64) -> i64 {
    (mb / mb_per_s * 1000.0).round() as i64
}

impl Server {
    pub fn new(spec: ServerSection) -> Server {
        Server {
            spec,
            busy_until: BinaryHeap::new(),
            waiting: VecDeque::new(),
            wake_pending: false,
            busy_area: 0,
            backlog: 0,
            backlog_area: 0,
            backlog_max: 0,
            last_change: 0,
            worker_waits: WaitHistogram::default(),
            copies_to: 0,
            uploads: 0,
            uploaded_mb: 0.0,
        }
    }

    /// Milliseconds of copying an attempt's input closure to its builder.
    pub fn copy_to_ms(&self) -> i64 {
        ms(self.spec.input_size_mb, self.spec.copy_mb_per_s)
    }

    /// Milliseconds of receiving, compressing and uploading `output_mb` of
    /// outputs (the scenario's default size when the trace gives none).
    pub fn receive_ms(&self, output_mb: Option<f64>) -> i64 {
        let out = output_mb.unwrap_or(self.spec.output_size_mb);
        ms(out, self.spec.copy_mb_per_s)
            + ms(out, self.spec.compress_mb_per_s)
            + ms(out * self.spec.compression_ratio, self.spec.upload_mb_per_s)
    }

    /// Moves the time integrals on to `now`.
    fn advance(&mut self, now: i64) {
        let dt = i128::from((now - self.last_change).max(0));
        self.busy_area += i128::from(self.busy_until.len() as u64) * dt;
        self.backlog_area += i128::from(self.backlog) * dt;
        self.last_change = self.last_change.max(now);
    }

    /// Frees the threads whose work ended by `now`, each at its end.
    fn release_until(&mut self, now: i64) {
        while let Some(&Reverse(end)) = self.busy_until.peek() {
            if end > now {
                break;
            }
            self.advance(end);
            self.busy_until.pop();
        }
        self.advance(now);
    }

    /// Asks for a thread at `now`: one takes the request now if one is free
    /// and no request waits before it; otherwise it waits its turn.
    pub fn request(&mut self, request: Request, now: i64) -> Grant {
        self.release_until(now);
        if self.waiting.is_empty() && self.busy_until.len() < self.spec.local_workers as usize {
            self.begin(request, now);
            return Grant::Started;
        }
        self.waiting.push_back(request);
        Grant::Queued { wake_at: self.schedule_wake() }
    }

    /// The earliest end, if requests wait and no wake-up is pending.
    fn schedule_wake(&mut self) -> Option<i64> {
        if self.wake_pending || self.waiting.is_empty() {
            return None;
        }
        let at = self.busy_until.peek().map(|&Reverse(end)| end)?;
        self.wake_pending = true;
        Some(at)
    }

    fn begin(&mut self, r: Request, now: i64) {
        self.busy_until.push(Reverse(now + r.duration_ms));
        self.worker_waits.record(now - r.queued_at);
        self.uploads += 1;
    }

    /// An attempt's closure was copied to its builder (off the pool).
    pub fn copied_to(&mut self) {
        self.copies_to += 1;
    }

    /// The wake-up scheduled by [`Grant::Queued`] or by the previous wake:
    /// the live requests at the head of the line take the threads free now
    /// (appended to `started`, in order); returns when to wake next.
    pub fn wake(&mut self, now: i64, live: impl Fn(&Request) -> bool, started: &mut Vec<Request>) -> Option<i64> {
        self.wake_pending = false;
        self.release_until(now);
        while self.busy_until.len() < self.spec.local_workers as usize {
            let Some(r) = self.waiting.pop_front() else { break };
            if live(&r) {
                self.begin(r, now);
                started.push(r);
            }
        }
        self.schedule_wake()
    }

    /// A step's build succeeded: its outputs wait for upload.
    pub fn built(&mut self, now: i64) {
        self.release_until(now);
        self.backlog += 1;
        self.backlog_max = self.backlog_max.max(self.backlog);
    }

    /// A built step's outputs were uploaded, or its attempt ended before they were.
    pub fn unbuilt(&mut self, now: i64, output_mb: Option<f64>, uploaded: bool) {
        self.release_until(now);
        self.backlog = self.backlog.saturating_sub(1);
        if uploaded {
            self.uploaded_mb += output_mb.unwrap_or(self.spec.output_size_mb) * self.spec.compression_ratio;
        }
    }

    /// Threads busy at `now`.
    pub fn busy(&self, now: i64) -> u32 {
        self.busy_until.iter().filter(|&&Reverse(end)| end > now).count() as u32
    }

    /// Requests waiting for a thread now (some may be for attempts that ended).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Steps built whose outputs are not uploaded yet.
    pub fn backlog(&self) -> u64 {
        self.backlog
    }

    /// The figures of a run that ended at `end`.
    pub fn figures(&mut self, end: i64) -> ServerFigures {
        self.release_until(end);
        let span = i128::from(end.max(1));
        let capacity = span * i128::from(self.spec.local_workers);
        ServerFigures {
            local_workers: self.spec.local_workers,
            utilisation: round3(self.busy_area as f64 / capacity as f64),
            worker_wait: WaitStats::from_histogram(&self.worker_waits),
            upload_backlog_max: self.backlog_max,
            upload_backlog_mean: round3(self.backlog_area as f64 / span as f64),
            copies_to_builders: self.copies_to,
            uploads: self.uploads,
            uploaded_gb: round3(self.uploaded_mb / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(slot: u32, at: i64) -> Request {
        Request { serial: u64::from(slot), slot, attempt: 1, queued_at: at, duration_ms: 10 }
    }

    #[test]
    fn requests_wait_in_line_for_the_one_thread_and_dead_ones_are_skipped() {
        let mut s = Server::new(ServerSection { local_workers: 1, ..ServerSection::default() });
        assert_eq!(s.request(request(1, 0), 0), Grant::Started);
        assert_eq!(s.request(request(2, 0), 0), Grant::Queued { wake_at: Some(10) });
        assert_eq!(s.request(request(3, 5), 5), Grant::Queued { wake_at: None });
        // At 10 the thread is free, but the line goes first.
        assert_eq!(s.request(request(4, 10), 10), Grant::Queued { wake_at: None });
        let mut started = vec![];
        assert_eq!(s.wake(10, |r| r.slot != 2, &mut started), Some(20));
        assert_eq!(started.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.busy(15), 1);
        started.clear();
        assert_eq!(s.wake(20, |r| r.slot != 4, &mut started), None);
        assert!(started.is_empty());
        assert_eq!(s.busy(20), 0);
        let f = s.figures(40);
        // Busy 0..20 of 40 ms; waits 0 and 5 ms.
        assert_eq!(f.utilisation, 0.5);
        assert_eq!((f.worker_wait.count, f.worker_wait.max), (2, 0.005));
    }

    #[test]
    fn phase_durations_follow_sizes_and_throughputs() {
        let s = Server::new(ServerSection {
            copy_mb_per_s: 10.0,
            compress_mb_per_s: 20.0,
            upload_mb_per_s: 5.0,
            compression_ratio: 0.5,
            input_size_mb: 30.0,
            output_size_mb: 40.0,
            ..ServerSection::default()
        });
        assert_eq!(s.copy_to_ms(), 3000);
        // 40 MB: copy 4 s, compress 2 s, upload 20 MB at 5 MB/s 4 s.
        assert_eq!(s.receive_ms(None), 10_000);
        assert_eq!(s.receive_ms(Some(10.0)), 2500);
    }
}
