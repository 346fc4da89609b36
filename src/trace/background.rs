//! Trace sources that take the parsing off the simulation's thread or out
//! of its runs: [`Background`] parses a CSV trace on a thread of its own,
//! a batch of rows ahead, so that reading overlaps simulating; [`Loaded`]
//! is a trace parsed once and kept in memory, replayed by every run of a
//! sweep, which reads [`Loaded::rows`] in place (or [`Loaded::source`],
//! row by row).
//!
//! Both yield exactly the rows, symbols and errors of the [`TraceReader`]
//! they wrap, in the same order: a run cannot tell where its rows came from.

use super::{StepRow, StepSource, Symbols, TraceError, TraceReader};
use std::io::Read;
use std::sync::mpsc::{Receiver, sync_channel};

/// Rows per batch handed from the parsing thread.
const BATCH: usize = 4096;
/// Batches parsed ahead of the simulation (bounds the memory in flight).
const AHEAD: usize = 4;

struct Batch {
    rows: Vec<StepRow>,
    /// Names interned since the previous batch, in order.
    names: Vec<String>,
    /// Ends the trace, after `rows`.
    end: Option<Result<(), TraceError>>,
}

/// A trace parsed on a background thread.
pub struct Background {
    rx: Receiver<Batch>,
    rows: std::vec::IntoIter<StepRow>,
    end: Option<Result<(), TraceError>>,
    done: bool,
    symbols: Symbols,
    name: String,
}

impl Background {
    /// Starts parsing `input` (named `file` in errors) on a new thread.
    pub fn spawn<R: Read + Send + 'static>(input: R, file: impl Into<String>) -> std::io::Result<Background> {
        let name = file.into();
        let mut reader = TraceReader::new(input, name.clone());
        let (tx, rx) = sync_channel::<Batch>(AHEAD);
        std::thread::Builder::new().name("trace reader".into()).spawn(move || {
            let mut sent_names = 0;
            loop {
                let mut rows = Vec::with_capacity(BATCH);
                let mut end = None;
                while rows.len() < BATCH {
                    match reader.next_step() {
                        Some(Ok(row)) => rows.push(row),
                        Some(Err(e)) => {
                            end = Some(Err(e));
                            break;
                        }
                        None => {
                            end = Some(Ok(()));
                            break;
                        }
                    }
                }
                let names = reader.symbols().names_from(sent_names).to_vec();
                sent_names += names.len();
                let last = end.is_some();
                // The receiver gone means the run ended early: stop reading.
                if tx.send(Batch { rows, names, end }).is_err() || last {
                    return;
                }
            }
        })?;
        Ok(Background { rx, rows: Vec::new().into_iter(), end: None, done: false, symbols: Symbols::default(), name })
    }
}

impl StepSource for Background {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        loop {
            if let Some(row) = self.rows.next() {
                return Some(Ok(row));
            }
            if let Some(end) = self.end.take() {
                self.done = true;
                return end.err().map(Err);
            }
            if self.done {
                return None;
            }
            let Ok(batch) = self.rx.recv() else {
                self.done = true;
                return Some(Err(TraceError {
                    file: self.name.clone(),
                    line: 0,
                    column: None,
                    message: "the trace reader stopped unexpectedly".into(),
                }));
            };
            for name in &batch.names {
                self.symbols.intern(name);
            }
            self.rows = batch.rows.into_iter();
            self.end = batch.end;
        }
    }
    fn symbols(&self) -> &Symbols {
        &self.symbols
    }
    fn name(&self) -> &str {
        &self.name
    }
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

    fn all(source: &mut dyn StepSource) -> (Vec<Result<StepRow, TraceError>>, Vec<String>) {
        let mut out = vec![];
        while let Some(r) = source.next_step() {
            out.push(r);
        }
        let names = source.symbols().names_from(0).to_vec();
        (out, names)
    }

    #[test]
    fn background_and_loaded_sources_yield_what_the_reader_yields() {
        let mut text = String::from("step_id,submitted_at,system,duration,jobset,depends_on\n");
        for i in 0..10_000 {
            text.push_str(&format!("{i},{},x86_64-linux,{},p:j{},{}\n", i / 7, i % 13, i % 5, i / 2));
        }
        let good = text.clone();
        text.push_str("10000,9999,x86_64-linux,soon,p:j,\n10001,9999,x86_64-linux,1,p:j,\n");
        for t in [good, text] {
            let expect = all(&mut TraceReader::new(t.clone().into_bytes().as_slice(), "t.csv"));
            let got = all(&mut Background::spawn(std::io::Cursor::new(t.clone().into_bytes()), "t.csv").unwrap());
            assert_eq!(got, expect);
            if expect.0.iter().all(Result::is_ok) {
                let loaded = Loaded::read(&mut TraceReader::new(t.as_bytes(), "t.csv")).unwrap();
                assert_eq!(all(&mut loaded.source()), expect);
                assert_eq!(all(&mut loaded.source()), expect, "a second replay is the same");
            }
        }
    }
}
