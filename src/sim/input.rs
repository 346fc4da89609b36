//! What a run reads from its trace: the rows of the scenario's window, moved
//! so that the window's start is the run's zero, and a digest of exactly the
//! rows replayed, which the summary carries so that `compare` can tell
//! whether two runs replayed the same steps.
//!
//! A run reads its rows through the [`Rows`] cursor: [`Replayed`] wraps any
//! [`StepSource`], holding one row at a time (windowing and digesting as it
//! goes); [`Streamed`] does the same work on a thread of its own, a few
//! batches ahead, and the run reads each batch where it lies (`simulate`
//! from a CSV file); [`InMemory`] reads a whole trace already in memory
//! where it lies, for the runs of a sweep, which share one parsed trace and
//! one digest of it ([`trace_digest`]). This parses nothing itself, and
//! opens no file. Without a window every row passes through unchanged.

use super::scenario::Window;
use crate::trace::background::{Batch, Loaded, read_ahead};
use crate::trace::{StepRow, StepSource, Symbols, TraceError, TraceReader};
use std::io::Read;
use std::sync::mpsc::Receiver;

/// FNV-1a, 64 bits, over whole words: cheap enough to run over every row of
/// a trace. It tells runs apart; it is no defence against tampering.
#[derive(Debug, Clone)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    const PRIME: u64 = 0x0100_0000_01b3;

    pub fn eat_u64(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::PRIME);
    }

    pub fn eat(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.eat_u64(u64::from_le_bytes(word));
        }
        self.eat_u64(bytes.len() as u64);
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The rows a run replays, read in place: the row at hand, and a step to
/// the next. A fresh cursor stands before the first row.
pub trait Rows {
    /// The row at hand; `None` before the first [`Rows::advance`] and once
    /// the rows are over.
    fn current(&self) -> Option<&StepRow>;
    /// Moves to the next row.
    fn advance(&mut self) -> Result<(), TraceError>;
    fn symbols(&self) -> &Symbols;
    /// What the rows are called in reports.
    fn name(&self) -> &str;
}

/// The rows of a trace that a run replays, from any [`StepSource`], owned
/// or borrowed.
pub struct Replayed<S> {
    source: S,
    /// Milliseconds on the trace's axis: skip rows before, stop at the end.
    window: Option<(i64, i64)>,
    /// `None` when the caller knows the digest already.
    digest: Option<Digest>,
    /// Which names are already in the digest, by symbol. A name goes in when
    /// a replayed row first uses it, so the digest does not depend on how far
    /// ahead the source has interned names.
    named: Vec<bool>,
    row: Option<StepRow>,
    ended: bool,
}

impl<S: StepSource> Replayed<S> {
    pub fn new(source: S, window: Option<Window>) -> Replayed<S> {
        let window = window.map(|w| ((w.start * 1000.0) as i64, (w.end * 1000.0) as i64));
        Replayed { source, window, digest: Some(Digest::default()), named: vec![], row: None, ended: false }
    }

    /// The same rows, for a caller that has their digest already.
    pub fn without_digest(source: S, window: Option<Window>) -> Replayed<S> {
        Replayed { digest: None, ..Replayed::new(source, window) }
    }

    /// The digest of the rows replayed so far, and of their names (empty
    /// when made [`Replayed::without_digest`]).
    pub fn digest(&self) -> String {
        self.digest.as_ref().map(Digest::hex).unwrap_or_default()
    }

    fn digest_row(&mut self, r: &StepRow) {
        let Some(d) = self.digest.as_mut() else { return };
        for sym in [r.system, r.features, r.jobset] {
            let i = sym.0 as usize;
            if self.named.len() <= i {
                self.named.resize(i + 1, false);
            }
            if !self.named[i] {
                self.named[i] = true;
                d.eat(self.source.symbols().name(sym).as_bytes());
            }
        }
        for n in [r.step_id, r.submitted_ms as u64, r.duration_ms as u64, r.build_id] {
            d.eat_u64(n);
        }
        d.eat_u64(u64::from(r.system.0) | u64::from(r.features.0) << 32);
        d.eat_u64(u64::from(r.jobset.0) | u64::from(r.priority as u32) << 32);
        d.eat_u64(u64::from(r.global_priority as u32) | (r.outcome as u64) << 32);
        for &dep in &r.depends_on {
            d.eat_u64(dep);
        }
        d.eat_u64(r.depends_on.len() as u64);
        // Only when present, so that the digests of traces without them stay as they were.
        if let Some(size) = r.output_size {
            d.eat_u64(0x6f75_7470_7574);
            d.eat_u64(size);
        }
        if let Some(eval) = r.eval_id {
            d.eat_u64(0x6576_616c);
            d.eat_u64(eval);
        }
    }
}

impl<S: StepSource> Rows for Replayed<S> {
    fn current(&self) -> Option<&StepRow> {
        self.row.as_ref()
    }

    fn advance(&mut self) -> Result<(), TraceError> {
        loop {
            let next = if self.ended { None } else { self.source.next_step() };
            let mut row = match next {
                Some(Ok(row)) => row,
                Some(Err(e)) => {
                    self.row = None;
                    return Err(e);
                }
                None => {
                    self.ended = true;
                    self.row = None;
                    return Ok(());
                }
            };
            if let Some((start, end)) = self.window {
                if row.submitted_ms < start {
                    continue;
                }
                if row.submitted_ms >= end {
                    // Rows come in time order: the rest are past the window too.
                    self.ended = true;
                    self.row = None;
                    return Ok(());
                }
                row.submitted_ms -= start;
            }
            self.digest_row(&row);
            self.row = Some(row);
            return Ok(());
        }
    }

    fn symbols(&self) -> &Symbols {
        self.source.symbols()
    }

    fn name(&self) -> &str {
        self.source.name()
    }
}

/// The replayed rows, moved out one by one: what [`Streamed`]'s reading
/// thread hands over.
impl<S: StepSource> StepSource for Replayed<S> {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        if let Err(e) = self.advance() {
            return Some(Err(e));
        }
        self.row.take().map(Ok)
    }

    fn symbols(&self) -> &Symbols {
        self.source.symbols()
    }

    fn name(&self) -> &str {
        self.source.name()
    }
}

/// The rows a run replays from a CSV trace, parsed, windowed and digested
/// ([`Replayed`]) on a thread of its own, a few batches ahead of the run.
/// The run reads each batch where it lies: the simulation's thread neither
/// moves a row nor digests one.
pub struct Streamed {
    rx: Receiver<Batch<String>>,
    /// The batch at hand, and the row at hand in it (`usize::MAX` before the
    /// first).
    rows: Vec<StepRow>,
    at: usize,
    /// What ends the batch at hand: the digest, or the trace's error.
    end: Option<Result<String, TraceError>>,
    done: bool,
    digest: String,
    symbols: Symbols,
    name: String,
}

impl Streamed {
    /// Starts reading `input` (named `name` in errors and reports), keeping
    /// the rows of `window` as [`Replayed`] keeps them.
    pub fn spawn<R: Read + Send + 'static>(
        input: R,
        name: String,
        window: Option<Window>,
    ) -> std::io::Result<Streamed> {
        let replayed = Replayed::new(TraceReader::new(input, name.clone()), window);
        let rx = read_ahead(replayed, Replayed::digest)?;
        Ok(Streamed {
            rx,
            rows: vec![],
            at: usize::MAX,
            end: None,
            done: false,
            digest: String::new(),
            symbols: Symbols::default(),
            name,
        })
    }

    /// The digest of the rows replayed ([`Replayed::digest`]), once they
    /// are over; empty before.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    /// Moves to the next batch with a row in it, or past the end.
    #[cold]
    fn next_batch(&mut self) -> Result<(), TraceError> {
        self.rows.clear();
        self.at = 0;
        loop {
            if let Some(end) = self.end.take() {
                self.done = true;
                self.digest = end?;
                return Ok(());
            }
            if self.done {
                return Ok(());
            }
            let Ok(batch) = self.rx.recv() else {
                self.done = true;
                return Err(TraceError {
                    file: self.name.clone(),
                    line: 0,
                    column: None,
                    message: "the trace reader stopped unexpectedly".into(),
                });
            };
            for name in &batch.names {
                self.symbols.intern(name);
            }
            (self.rows, self.end) = (batch.rows, batch.end);
            if !self.rows.is_empty() {
                return Ok(());
            }
        }
    }
}

impl Rows for Streamed {
    fn current(&self) -> Option<&StepRow> {
        self.rows.get(self.at)
    }

    fn advance(&mut self) -> Result<(), TraceError> {
        self.at = self.at.wrapping_add(1);
        if self.at < self.rows.len() { Ok(()) } else { self.next_batch() }
    }

    fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Every row of a trace held in memory, read where it lies.
pub struct InMemory<'a> {
    trace: &'a Loaded,
    /// The row at hand; `usize::MAX` before the first.
    at: usize,
}

impl<'a> InMemory<'a> {
    pub fn new(trace: &'a Loaded) -> InMemory<'a> {
        InMemory { trace, at: usize::MAX }
    }
}

impl Rows for InMemory<'_> {
    fn current(&self) -> Option<&StepRow> {
        self.trace.rows().get(self.at)
    }

    fn advance(&mut self) -> Result<(), TraceError> {
        // From before the first row (`usize::MAX`) to row 0; past the end it stays put.
        self.at = self.at.wrapping_add(1).min(self.trace.rows().len());
        Ok(())
    }

    fn symbols(&self) -> &Symbols {
        self.trace.symbols()
    }

    fn name(&self) -> &str {
        self.trace.name()
    }
}

/// The digest a run of `trace` in `window` reports ([`Replayed::digest`]),
/// computed once for every run that shares the trace.
pub fn trace_digest(trace: &Loaded, window: Option<Window>) -> Result<String, TraceError> {
    let mut source = trace.source();
    let mut replayed = Replayed::new(&mut source, window);
    loop {
        replayed.advance()?;
        if replayed.current().is_none() {
            return Ok(replayed.digest());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceReader;

    const TRACE: &str = "step_id,submitted_at,system,duration,jobset\n\
        1,10,x86_64-linux,5,a:b\n2,100,x86_64-linux,5,a:c\n3,150,aarch64-linux,5,a:b\n4,200,x86_64-linux,5,a:b\n";

    fn ids(window: Option<Window>) -> (Vec<(u64, i64)>, String) {
        let mut reader = TraceReader::new(TRACE.as_bytes(), "t.csv");
        let mut r = Replayed::new(&mut reader, window);
        let mut out = vec![];
        r.advance().unwrap();
        while let Some(row) = r.current() {
            out.push((row.step_id, row.submitted_ms));
            r.advance().unwrap();
        }
        (out, r.digest())
    }

    /// Every row a cursor yields, its error if any, and its names.
    fn read_all(rows: &mut impl Rows) -> (Vec<StepRow>, Option<TraceError>, Vec<String>) {
        let mut out = vec![];
        let mut error = None;
        loop {
            if let Err(e) = rows.advance() {
                error = Some(e);
                break;
            }
            match rows.current() {
                Some(row) => out.push(row.clone()),
                None => break,
            }
        }
        (out, error, rows.symbols().names_from(0).to_vec())
    }

    #[test]
    fn streamed_rows_are_the_replayed_rows_with_the_same_digest_and_error() {
        let mut text = String::from("step_id,submitted_at,system,duration,jobset,depends_on\n");
        for i in 0..20_000 {
            let dep = if i > 0 { (i / 2).to_string() } else { String::new() };
            text.push_str(&format!("{i},{},x86_64-linux,{},p:j{},{dep}\n", i / 7, i % 13, i % 5));
        }
        let good = text.clone();
        text.push_str("20000,9999,x86_64-linux,soon,p:j,\n20001,9999,x86_64-linux,1,p:j,\n");
        // Rows before the window, a window across batches, and one past the trace.
        let windows = [None, Some(Window { start: 100.0, end: 1500.0 }), Some(Window { start: 5000.0, end: 6000.0 })];
        for (t, window) in [good, text].iter().flat_map(|t| windows.map(|w| (t, w))) {
            let mut reader = TraceReader::new(t.as_bytes(), "t.csv");
            let mut replayed = Replayed::new(&mut reader, window);
            let expect = read_all(&mut replayed);
            let mut streamed =
                Streamed::spawn(std::io::Cursor::new(t.clone().into_bytes()), "t.csv".into(), window).unwrap();
            let got = read_all(&mut streamed);
            assert_eq!(got, expect, "{window:?}");
            if expect.1.is_none() {
                assert_eq!(streamed.digest(), replayed.digest(), "{window:?}");
                assert_eq!(streamed.name(), "t.csv");
            }
            assert!(window.is_some_and(|w| w.start >= 5000.0) || !got.0.is_empty(), "{window:?}: no rows, {:?}", got.1);
        }
    }

    #[test]
    fn a_window_keeps_its_rows_moved_to_zero_and_the_digest_tells_windows_apart() {
        let (all, whole) = ids(None);
        assert_eq!(all, [(1, 10_000), (2, 100_000), (3, 150_000), (4, 200_000)]);
        let (part, windowed) = ids(Some(Window { start: 100.0, end: 200.0 }));
        assert_eq!(part, [(2, 0), (3, 50_000)]);
        assert_ne!(whole, windowed);
        assert_eq!(ids(None).1, whole, "the digest is a function of the rows");
    }
}
