//! Trace sources that take the parsing off the simulation's thread or out
//! of its runs: [`read_ahead`] runs any source on a thread of its own, a
//! few batches of rows ahead, so that reading overlaps simulating (the
//! simulator's `sim::input::Streamed` reads those batches where they lie);
//! [`Loaded`] is a trace parsed once and kept in memory, replayed by every
//! run of a sweep, which reads [`Loaded::rows`] in place (or
//! [`Loaded::source`], row by row).
//!
//! Both yield exactly the rows, symbols and errors of the source they wrap,
//! in the same order: a run cannot tell where its rows came from.

use super::{StepRow, StepSource, Symbols, TraceError};
use std::sync::mpsc::{Receiver, sync_channel};

/// Rows per batch handed from the reading thread.
const BATCH: usize = 4096;
/// Batches read ahead of the simulation (bounds the memory in flight).
const AHEAD: usize = 4;

/// Rows read ahead, in the source's order.
pub struct Batch<T> {
    pub rows: Vec<StepRow>,
    /// Names the source interned since the previous batch, in order: intern
    /// them before reading `rows`.
    pub names: Vec<String>,
    /// Ends the rows, after `rows`: the source's error, or what the caller's
    /// `finish` made of the source once it was over.
    pub end: Option<Result<T, TraceError>>,
}

/// Starts reading `source` on a new thread, [`BATCH`] rows at a time and
/// at most [`AHEAD`] batches ahead of the receiver. The batch that ends
/// the rows carries the first error, or `finish` of the source. Dropping
/// the receiver stops the thread at its next batch.
pub fn read_ahead<S, T>(
    mut source: S,
    finish: impl FnOnce(&S) -> T + Send + 'static,
) -> std::io::Result<Receiver<Batch<T>>>
where
    S: StepSource + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = sync_channel::<Batch<T>>(AHEAD);
    std::thread::Builder::new().name("trace reader".into()).spawn(move || {
        let mut sent_names = 0;
        let mut finish = Some(finish);
        loop {
            let mut rows = Vec::with_capacity(BATCH);
            let mut end = None;
            while rows.len() < BATCH {
                match source.next_step() {
                    Some(Ok(row)) => rows.push(row),
                    Some(Err(e)) => {
                        end = Some(Err(e));
                        break;
                    }
                    None => {
                        end = finish.take().map(|f| Ok(f(&source)));
                        break;
                    }
                }
            }
            let names = source.symbols().names_from(sent_names).to_vec();
            sent_names += names.len();
            let last = end.is_some();
            // The receiver gone means the run ended early: stop reading.
            if tx.send(Batch { rows, names, end }).is_err() || last {
                return;
            }
        }
    })?;
    Ok(rx)
}

/// A whole trace in memory, parsed once.
pub struct Loaded {
    rows: Vec<StepRow>,
    symbols: Symbols,
    name: String,
}

impl Loaded {
    /// Parses a whole trace; the first bad row is the error.
    pub fn read(source: &mut dyn StepSource) -> Result<Loaded, TraceError> {
        let mut rows = vec![];
        while let Some(row) = source.next_step() {
            rows.push(row?);
        }
        Ok(Loaded { rows, symbols: source.symbols().clone(), name: source.name().to_string() })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Every row, in the trace's order.
    pub fn rows(&self) -> &[StepRow] {
        &self.rows
    }

    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// What the trace is called in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A digest of every row and name (FNV-1a, 64 bits), to tell whether two
    /// machines replayed the same trace. Not a defence against tampering.
    pub fn digest(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for name in self.symbols.names_from(0) {
            eat(name.as_bytes());
            eat(&[0]);
        }
        for r in &self.rows {
            for n in [r.step_id, r.submitted_ms as u64, r.duration_ms as u64, r.build_id] {
                eat(&n.to_le_bytes());
            }
            for n in [r.system.0, r.features.0, r.jobset.0, r.priority as u32, r.global_priority as u32] {
                eat(&n.to_le_bytes());
            }
            eat(r.outcome.as_str().as_bytes());
            for d in &r.depends_on {
                eat(&d.to_le_bytes());
            }
            eat(&[0xff]);
        }
        format!("{h:016x}")
    }

    /// A source replaying the trace from its start.
    pub fn source(&self) -> LoadedSource<'_> {
        LoadedSource { trace: self, next: 0 }
    }
}

/// Replays a [`Loaded`] trace.
pub struct LoadedSource<'a> {
    trace: &'a Loaded,
    next: usize,
}

impl StepSource for LoadedSource<'_> {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        let row = self.trace.rows.get(self.next)?;
        self.next += 1;
        Some(Ok(row.clone()))
    }
    fn symbols(&self) -> &Symbols {
        &self.trace.symbols
    }
    fn name(&self) -> &str {
        &self.trace.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceReader;

    /// Every row or error, and the names interned.
    type Yielded = (Vec<Result<StepRow, TraceError>>, Vec<String>);

    fn all(source: &mut dyn StepSource) -> Yielded {
        let mut out = vec![];
        while let Some(r) = source.next_step() {
            out.push(r);
        }
        let names = source.symbols().names_from(0).to_vec();
        (out, names)
    }

    /// Everything the batches carry, read as a source would be.
    fn all_ahead(text: String) -> (Yielded, Option<usize>) {
        let reader = TraceReader::new(std::io::Cursor::new(text.into_bytes()), "t.csv");
        let rx = read_ahead(reader, |r| r.symbols().names_from(0).len()).unwrap();
        let (mut out, mut names, mut finished) = (vec![], vec![], None);
        for batch in rx {
            names.extend(batch.names);
            out.extend(batch.rows.into_iter().map(Ok));
            match batch.end {
                Some(Ok(n)) => finished = Some(n),
                Some(Err(e)) => out.push(Err(e)),
                None => {}
            }
        }
        ((out, names), finished)
    }

    #[test]
    fn batches_read_ahead_and_loaded_sources_yield_what_the_reader_yields() {
        let mut text = String::from("step_id,submitted_at,system,duration,jobset,depends_on\n");
        for i in 0..10_000 {
            text.push_str(&format!("{i},{},x86_64-linux,{},p:j{},{}\n", i / 7, i % 13, i % 5, i / 2));
        }
        let good = text.clone();
        text.push_str("10000,9999,x86_64-linux,soon,p:j,\n10001,9999,x86_64-linux,1,p:j,\n");
        for t in [good, text] {
            let expect = all(&mut TraceReader::new(t.clone().into_bytes().as_slice(), "t.csv"));
            let (got, finished) = all_ahead(t.clone());
            assert_eq!(got, expect);
            let ok = expect.0.iter().all(Result::is_ok);
            // `finish` sees the source once it is over, and only then.
            assert_eq!(finished, ok.then_some(expect.1.len()));
            if ok {
                let loaded = Loaded::read(&mut TraceReader::new(t.as_bytes(), "t.csv")).unwrap();
                assert_eq!(all(&mut loaded.source()), expect);
                assert_eq!(all(&mut loaded.source()), expect, "a second replay is the same");
            }
        }
    }
}
