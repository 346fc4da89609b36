//! What a run reads from its trace: the rows of the scenario's window, moved
//! so that the window's start is the run's zero, and a digest of exactly the
//! rows replayed, which the summary carries so that `compare` can tell
//! whether two runs replayed the same steps.
//!
//! A run reads its rows through the [`Rows`] cursor: [`Replayed`] wraps any
//! [`StepSource`], holding one row at a time (windowing and digesting as it
//! goes), and [`InMemory`] reads a whole trace already in memory where it
//! lies, for the runs of a sweep, which share one parsed trace and one
//! digest of it ([`trace_digest`]). This parses nothing itself, and reads
//! no file. Without a window every row passes through unchanged.

use super::scenario::Window;
use crate::trace::background::Loaded;
use crate::trace::{StepRow, StepSource, Symbols, TraceError};

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

/// The rows of a trace that a run replays, from any [`StepSource`].
pub struct Replayed<'a> {
    source: &'a mut dyn StepSource,
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

impl<'a> Replayed<'a> {
    pub fn new(source: &'a mut dyn StepSource, window: Option<Window>) -> Replayed<'a> {
        let window = window.map(|w| ((w.start * 1000.0) as i64, (w.end * 1000.0) as i64));
        Replayed { source, window, digest: Some(Digest::default()), named: vec![], row: None, ended: false }
    }

    /// The same rows, for a caller that has their digest already.
    pub fn without_digest(source: &'a mut dyn StepSource, window: Option<Window>) -> Replayed<'a> {
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

impl Rows for Replayed<'_> {
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
