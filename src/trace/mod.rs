//! Build-step traces, format v1 (docs/trace-format.md): the rows, a
//! streaming reader, a writer and a seeded generator of synthetic traces.
//!
//! A trace is read one row at a time: the reader keeps only the current row
//! and a small table of interned names (systems, features, jobsets), so a
//! ten-million-step file costs no more memory than a short one. Rows must be
//! sorted by `submitted_at`; the simulator merges them with its own events.
//! This module does not simulate anything and knows nothing of machines.

pub mod background;
pub mod import;
pub mod stats;
pub mod synth;

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};

/// The version of the format this module reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The columns the writer produces, in order.
pub const COLUMNS: &[&str] = &[
    "step_id",
    "submitted_at",
    "system",
    "features",
    "jobset",
    "build_id",
    "priority",
    "global_priority",
    "depends_on",
    "duration",
    "outcome",
];

/// A fast hash for step ids and interned names, which are not chosen by an
/// adversary (SipHash showed up in profiles of the simulator).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// An interned name: an index into [`Symbols`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sym(pub u32);

/// Interned names, so that a step row carries no heap strings.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    names: Vec<String>,
    index: HashMap<String, Sym, std::hash::BuildHasherDefault<IdHasher>>,
}

impl Symbols {
    pub fn intern(&mut self, name: &str) -> Sym {
        if let Some(&s) = self.index.get(name) {
            return s;
        }
        let s = Sym(self.names.len() as u32);
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), s);
        s
    }

    pub fn name(&self, s: Sym) -> &str {
        &self.names[s.0 as usize]
    }

    /// How many names are interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names interned from the `from`-th on, in the order they were
    /// interned: interning them in that order elsewhere gives the same symbols.
    pub fn names_from(&self, from: usize) -> &[String] {
        self.names.get(from..).unwrap_or(&[])
    }
}

/// What happens when a step runs to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Success,
    /// The build fails; steps depending on it never start.
    Failure,
    /// The first attempt fails transiently and is retried with back-off;
    /// the retry succeeds.
    Transient,
    /// The first attempt fails for a reason of its machine (the connection
    /// dropped, a copy failed): Hydra disables the machine for a while and
    /// retries the step with back-off; the retry succeeds.
    Machine,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Transient => "transient",
            Outcome::Machine => "machine",
        }
    }
}

/// The ids a step depends on. Most steps depend on none or a few: up to two
/// are kept inline, so that rows are made, copied and dropped without an
/// allocation each (a replay moves millions of them between threads).
pub type DependsOn = smallvec::SmallVec<[u64; 2]>;

/// One build step. Times are milliseconds since the trace's zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub step_id: u64,
    pub submitted_ms: i64,
    pub system: Sym,
    /// Required features, sorted and comma-joined (empty: none).
    pub features: Sym,
    pub jobset: Sym,
    pub build_id: u64,
    pub priority: i32,
    pub global_priority: i32,
    pub depends_on: DependsOn,
    /// Duration on a speedFactor-1 machine.
    pub duration_ms: i64,
    pub outcome: Outcome,
    /// Bytes of the step's outputs (NAR size), if the trace says.
    pub output_size: Option<u64>,
    /// The evaluation that queued the step, if the trace says.
    pub eval_id: Option<u64>,
}

/// A bad trace, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TraceError {
    pub file: String,
    pub line: u64,
    /// 1-based column number and column name, when one column is at fault.
    pub column: Option<(usize, String)>,
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some((n, name)) => write!(f, "{}:{}:{}: column `{name}`: {}", self.file, self.line, n, self.message),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.message),
        }
    }
}

/// Anything that yields step rows in `submitted_at` order.
pub trait StepSource {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>>;
    fn symbols(&self) -> &Symbols;
    /// What the source is called in reports.
    fn name(&self) -> &str;
}

/// A borrowed source reads the same rows, so that an adapter over a source
/// may own it or borrow it.
impl<S: StepSource + ?Sized> StepSource for &mut S {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        (**self).next_step()
    }
    fn symbols(&self) -> &Symbols {
        (**self).symbols()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Rows already in memory (tests, benchmarks, generated traces).
#[derive(Clone)]
pub struct VecSource {
    rows: std::vec::IntoIter<StepRow>,
    symbols: Symbols,
    name: String,
}

impl VecSource {
    pub fn new(name: impl Into<String>, rows: Vec<StepRow>, symbols: Symbols) -> VecSource {
        VecSource { rows: rows.into_iter(), symbols, name: name.into() }
    }

    /// Rows not yet read.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.len() == 0
    }
}

impl StepSource for VecSource {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        self.rows.next().map(Ok)
    }
    fn symbols(&self) -> &Symbols {
        &self.symbols
    }
    fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    step_id: usize,
    submitted_at: usize,
    system: usize,
    duration: usize,
    features: Option<usize>,
    jobset: Option<usize>,
    build_id: Option<usize>,
    priority: Option<usize>,
    global_priority: Option<usize>,
    depends_on: Option<usize>,
    outcome: Option<usize>,
    output_size: Option<usize>,
    eval_id: Option<usize>,
}

/// Streams a v1 trace from CSV text.
pub struct TraceReader<R: Read> {
    csv: csv::Reader<R>,
    file: String,
    columns: Option<Columns>,
    headers: Vec<String>,
    record: csv::ByteRecord,
    symbols: Symbols,
    /// Recent names of the system, features and jobset columns.
    names: [RecentNames; 3],
    last_submitted: i64,
    failed: bool,
}

impl<R: Read> TraceReader<R> {
    /// `file` names the trace in errors.
    pub fn new(input: R, file: impl Into<String>) -> TraceReader<R> {
        let csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        TraceReader {
            csv,
            file: file.into(),
            columns: None,
            headers: vec![],
            record: csv::ByteRecord::new(),
            symbols: Symbols::default(),
            names: Default::default(),
            last_submitted: i64::MIN,
            failed: false,
        }
    }

    fn error(&self, line: u64, column: Option<usize>, message: impl Into<String>) -> TraceError {
        TraceError {
            file: self.file.clone(),
            line,
            column: column.map(|c| (c + 1, self.headers.get(c).cloned().unwrap_or_default())),
            message: message.into(),
        }
    }

    fn read_header(&mut self) -> Result<Columns, TraceError> {
        let mut header = csv::ByteRecord::new();
        match self.csv.read_byte_record(&mut header) {
            Ok(true) => {}
            Ok(false) => return Err(self.error(1, None, "the trace is empty (expected a header line)")),
            Err(e) => return Err(self.error(1, None, format!("cannot read the header: {e}"))),
        }
        self.headers = header.iter().map(|h| String::from_utf8_lossy(h).trim().to_string()).collect();
        let find = |name: &str| self.headers.iter().position(|h| h == name);
        let required = |name: &str| {
            find(name).ok_or_else(|| self.error(1, None, format!("the header lacks the required column `{name}`")))
        };
        Ok(Columns {
            step_id: required("step_id")?,
            submitted_at: required("submitted_at")?,
            system: required("system")?,
            duration: required("duration")?,
            features: find("features"),
            jobset: find("jobset"),
            build_id: find("build_id"),
            priority: find("priority"),
            global_priority: find("global_priority"),
            depends_on: find("depends_on"),
            outcome: find("outcome"),
            output_size: find("output_size"),
            eval_id: find("eval_id"),
        })
    }

    fn parse_row(&mut self, c: Columns, line: u64) -> Result<StepRow, TraceError> {
        let rec = &self.record;
        let field = |i: usize| -> Result<&str, TraceError> {
            let bytes = rec.get(i).ok_or_else(|| self.error(line, Some(i), "missing (the row has too few fields)"))?;
            std::str::from_utf8(bytes).map(str::trim).map_err(|_| self.error(line, Some(i), "not UTF-8"))
        };
        let opt = |i: Option<usize>| -> Result<&str, TraceError> {
            match i {
                Some(i) if i < rec.len() => field(i),
                _ => Ok(""),
            }
        };
        // The bytes of a field as written, for the fast paths below: a
        // field they do not take goes the general way (which trims, checks
        // and words the errors), so both read every field alike.
        let raw_opt = |i: Option<usize>| -> &[u8] { i.and_then(|i| rec.get(i)).unwrap_or(b"") };
        let int = |i: usize, text: &str| -> Result<u64, TraceError> {
            text.parse::<u64>()
                .map_err(|_| self.error(line, Some(i), format!("expected a non-negative integer, got `{text}`")))
        };
        let id = |i: usize| -> Result<u64, TraceError> {
            match rec.get(i).and_then(plain_u64) {
                Some(n) => Ok(n),
                None => int(i, field(i)?),
            }
        };
        let seconds = |i: usize| -> Result<i64, TraceError> {
            if let Some(ms) = rec.get(i).and_then(decimal_millis) {
                return Ok(ms);
            }
            let text = field(i)?;
            if let Some(ms) = decimal_millis(text.as_bytes()) {
                return Ok(ms);
            }
            match text.parse::<f64>() {
                Ok(s) if (0.0..9.0e12).contains(&s) => Ok((s * 1000.0).round() as i64),
                _ => Err(self.error(line, Some(i), format!("expected non-negative seconds, got `{text}`"))),
            }
        };
        let step_id = id(c.step_id)?;
        let submitted_ms = seconds(c.submitted_at)?;
        if submitted_ms < self.last_submitted {
            return Err(self.error(line, Some(c.submitted_at), "rows must be sorted by submitted_at"));
        }
        let system_raw = rec.get(c.system).unwrap_or(b"");
        let system_known = self.names[0].find(system_raw);
        let system = match system_known {
            Some(_) => "",
            None => {
                let system = field(c.system)?;
                if system.is_empty() || system.contains(char::is_whitespace) || system.contains(':') {
                    return Err(self.error(
                        line,
                        Some(c.system),
                        format!("expected a system such as x86_64-linux, got `{system}`"),
                    ));
                }
                system
            }
        };
        let duration_ms = seconds(c.duration)?;
        let features_raw = raw_opt(c.features);
        let features_known = self.names[1].find(features_raw);
        let features = match features_known {
            Some(_) => std::borrow::Cow::Borrowed(""),
            None => {
                let features_text = opt(c.features)?;
                // Most rows name no feature or one: no need to split, sort and join.
                let single = !features_text.contains(',') && !features_text.contains(char::is_whitespace);
                if single {
                    std::borrow::Cow::Borrowed(features_text)
                } else {
                    let mut features: Vec<&str> =
                        features_text.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
                    if features.iter().any(|f| f.contains(char::is_whitespace)) {
                        return Err(self.error(line, c.features, "a feature contains white space"));
                    }
                    features.sort_unstable();
                    features.dedup();
                    std::borrow::Cow::Owned(features.join(","))
                }
            }
        };
        let jobset_raw = raw_opt(c.jobset);
        let jobset_known = self.names[2].find(jobset_raw);
        let jobset = match jobset_known {
            Some(_) => "",
            None => opt(c.jobset)?,
        };
        let build_id = match raw_opt(c.build_id) {
            b"" => step_id,
            raw => match plain_u64(raw) {
                Some(n) => n,
                None => match opt(c.build_id)? {
                    "" => step_id,
                    t => int(c.build_id.unwrap_or(0), t)?,
                },
            },
        };
        let small_int = |i: Option<usize>, default: i32| -> Result<i32, TraceError> {
            let raw = raw_opt(i);
            if raw.is_empty() {
                return Ok(default);
            }
            if raw.len() <= 9
                && let Some(n) = plain_u64(raw)
            {
                return Ok(n as i32);
            }
            match opt(i)? {
                "" => Ok(default),
                t => t.parse::<i32>().map_err(|_| self.error(line, i, format!("expected an integer, got `{t}`"))),
            }
        };
        let priority = small_int(c.priority, 100)?;
        let global_priority = small_int(c.global_priority, 0)?;
        let mut depends_on = DependsOn::new();
        let deps_raw = raw_opt(c.depends_on);
        if !deps_raw.is_empty() && !plain_ids(deps_raw, &mut depends_on) {
            depends_on.clear();
            for dep in opt(c.depends_on)?.split_whitespace() {
                let d = int(c.depends_on.unwrap_or(0), dep)?;
                if d == step_id {
                    return Err(self.error(line, c.depends_on, "a step cannot depend on itself"));
                }
                depends_on.push(d);
            }
        }
        if depends_on.contains(&step_id) {
            return Err(self.error(line, c.depends_on, "a step cannot depend on itself"));
        }
        let outcome = match raw_opt(c.outcome) {
            b"" | b"success" => Outcome::Success,
            b"failure" => Outcome::Failure,
            b"transient" => Outcome::Transient,
            b"machine" => Outcome::Machine,
            _ => match opt(c.outcome)? {
                "" | "success" => Outcome::Success,
                "failure" => Outcome::Failure,
                "transient" => Outcome::Transient,
                "machine" => Outcome::Machine,
                other => {
                    return Err(self.error(
                        line,
                        c.outcome,
                        format!("expected `success`, `failure`, `transient` or `machine`, got `{other}`"),
                    ));
                }
            },
        };
        let optional_int = |i: Option<usize>| -> Result<Option<u64>, TraceError> {
            match opt(i)? {
                "" => Ok(None),
                t => int(i.unwrap_or(0), t).map(Some),
            }
        };
        let output_size = optional_int(c.output_size)?;
        let eval_id = optional_int(c.eval_id)?;
        // Interned in the same order whether or not a name was known, so
        // that the symbols do not depend on the fast paths.
        let [system_names, features_names, jobset_names] = &mut self.names;
        let system = system_known.unwrap_or_else(|| system_names.learn(system_raw, self.symbols.intern(system)));
        let features =
            features_known.unwrap_or_else(|| features_names.learn(features_raw, self.symbols.intern(&features)));
        let jobset = jobset_known.unwrap_or_else(|| jobset_names.learn(jobset_raw, self.symbols.intern(jobset)));
        self.last_submitted = submitted_ms;
        Ok(StepRow {
            step_id,
            submitted_ms,
            system,
            features,
            jobset,
            build_id,
            priority,
            global_priority,
            depends_on,
            duration_ms,
            outcome,
            output_size,
            eval_id,
        })
    }
}

/// The symbols of the last few distinct field texts of one name column,
/// exactly as written: a trace names a handful of systems and feature sets,
/// and its jobsets come in runs, so most rows find their names here without
/// checking, trimming or hashing them again.
#[derive(Debug, Default)]
struct RecentNames {
    entries: Vec<(Box<[u8]>, Sym)>,
    /// The entry to replace next once full.
    next: usize,
}

impl RecentNames {
    const CAPACITY: usize = 16;

    fn find(&self, raw: &[u8]) -> Option<Sym> {
        self.entries.iter().find(|(text, _)| **text == *raw).map(|&(_, sym)| sym)
    }

    /// Remembers the symbol that field text `raw` reads as; returns it.
    fn learn(&mut self, raw: &[u8], sym: Sym) -> Sym {
        let entry = (Box::from(raw), sym);
        if self.entries.len() < Self::CAPACITY {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % Self::CAPACITY;
        }
        sym
    }
}

/// A field of at most 19 ASCII digits (so it fits), nothing else.
fn plain_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Reads ids separated by single spaces into `out`; false (with `out` partly
/// filled) for anything else.
fn plain_ids(bytes: &[u8], out: &mut DependsOn) -> bool {
    for id in bytes.split(|&b| b == b' ') {
        match plain_u64(id) {
            Some(n) => out.push(n),
            None => return false,
        }
    }
    true
}

impl<R: Read> StepSource for TraceReader<R> {
    fn next_step(&mut self) -> Option<Result<StepRow, TraceError>> {
        if self.failed {
            return None;
        }
        let columns = match self.columns {
            Some(c) => c,
            None => match self.read_header() {
                Ok(c) => {
                    self.columns = Some(c);
                    c
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            },
        };
        loop {
            let result = self.csv.read_byte_record(&mut self.record);
            let line = self.record.position().map_or(0, |p| p.line());
            let result = match result {
                Ok(false) => return None,
                Ok(true) if self.record.len() == 1 && self.record.get(0).is_some_and(|f| f.trim_ascii().is_empty()) => {
                    continue;
                }
                Ok(true) => self.parse_row(columns, line),
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    Err(self.error(line, None, format!("malformed CSV: {e}")))
                }
            };
            if result.is_err() {
                self.failed = true;
            }
            return Some(result);
        }
    }
    fn symbols(&self) -> &Symbols {
        &self.symbols
    }
    fn name(&self) -> &str {
        &self.file
    }
}

/// Milliseconds of a plain decimal of at most three fractional digits
/// below 10^12 s (`123`, `0.250`), exactly what rounding the `f64` it reads as
/// would give, without the floating point; `None` for anything else.
fn decimal_millis(text: &[u8]) -> Option<i64> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if int.is_empty() || int.len() > 12 || frac.len() > 3 {
        return None;
    }
    let digits = |t: &[u8]| t.iter().try_fold(0i64, |n, &b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')));
    Some(digits(int)? * 1000 + digits(frac)? * 10i64.pow(3 - frac.len() as u32))
}

/// Seconds with millisecond precision, as the format writes them.
pub fn format_seconds(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    push_seconds(&mut out, ms);
    String::from_utf8(out).expect("digits, a sign and a point")
}

/// Appends [`format_seconds`]'s text to `out` without allocating one:
/// `simulate --out` writes a million rows of these.
pub fn push_seconds(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let a = ms.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(a / 1000).as_bytes());
    let frac = a % 1000;
    out.extend_from_slice(&[b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
}

/// The optional columns a writer may add after [`COLUMNS`], in order.
pub const EXTRA_COLUMNS: &[&str] = &["output_size", "eval_id"];

/// Writes v1 traces, one row at a time.
pub struct TraceWriter<W: Write> {
    csv: csv::Writer<W>,
    /// Which of [`EXTRA_COLUMNS`] are written.
    extra: [bool; 2],
}

impl<W: Write> TraceWriter<W> {
    pub fn new(out: W) -> std::io::Result<TraceWriter<W>> {
        TraceWriter::with_columns(out, &[])
    }

    /// A writer that adds the named [`EXTRA_COLUMNS`] (an empty cell where a
    /// row has no value).
    pub fn with_columns(out: W, extra: &[&str]) -> std::io::Result<TraceWriter<W>> {
        let mut csv = csv::WriterBuilder::new().from_writer(out);
        let extra = [0, 1].map(|i| extra.contains(&EXTRA_COLUMNS[i]));
        let header: Vec<&str> =
            COLUMNS.iter().copied().chain((0..2).filter(|&i| extra[i]).map(|i| EXTRA_COLUMNS[i])).collect();
        csv.write_record(&header).map_err(std::io::Error::other)?;
        Ok(TraceWriter { csv, extra })
    }

    pub fn write(&mut self, row: &StepRow, symbols: &Symbols) -> std::io::Result<()> {
        let deps: Vec<String> = row.depends_on.iter().map(u64::to_string).collect();
        let cell = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
        let extra = [cell(row.output_size), cell(row.eval_id)];
        let extra = (0..2).filter(|&i| self.extra[i]).map(|i| extra[i].as_str());
        self.csv
            .write_record(
                [
                    row.step_id.to_string().as_str(),
                    &format_seconds(row.submitted_ms),
                    symbols.name(row.system),
                    symbols.name(row.features),
                    symbols.name(row.jobset),
                    &row.build_id.to_string(),
                    &row.priority.to_string(),
                    &row.global_priority.to_string(),
                    &deps.join(" "),
                    &format_seconds(row.duration_ms),
                    row.outcome.as_str(),
                ]
                .into_iter()
                .chain(extra),
            )
            .map_err(std::io::Error::other)
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.csv.flush()?;
        self.csv.into_inner().map_err(|e| std::io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<(Vec<StepRow>, Symbols), TraceError> {
        let mut r = TraceReader::new(text.as_bytes(), "t.csv");
        let mut rows = vec![];
        while let Some(row) = r.next_step() {
            rows.push(row?);
        }
        Ok((rows, r.symbols().clone()))
    }

    #[test]
    fn minimal_columns_take_defaults() {
        let (rows, sym) = read_all("step_id,submitted_at,system,duration,extra\n7,1.5,x86_64-linux,60,zzz\n").unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.step_id, r.submitted_ms, r.duration_ms, r.build_id, r.priority), (7, 1500, 60_000, 7, 100));
        assert_eq!(sym.name(r.features), "");
        assert_eq!(r.outcome, Outcome::Success);
    }

    #[test]
    fn round_trips_through_the_writer() {
        let text = "step_id,submitted_at,system,features,jobset,build_id,priority,global_priority,depends_on,duration,outcome\n\
                    1,0.000,x86_64-linux,,nixpkgs:trunk,1,100,0,,12.345,success\n\
                    2,0.250,x86_64-linux,\"big-parallel,kvm\",nixpkgs:trunk,1,50,1,1,3600.000,transient\n";
        let (rows, sym) = read_all(text).unwrap();
        let mut w = TraceWriter::new(Vec::new()).unwrap();
        for r in &rows {
            w.write(r, &sym).unwrap();
        }
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn features_are_sorted() {
        let (rows, sym) =
            read_all("step_id,submitted_at,system,duration,features\n1,0,x86_64-linux,1,\"kvm,big-parallel\"\n")
                .unwrap();
        assert_eq!(sym.name(rows[0].features), "big-parallel,kvm");
    }

    #[test]
    fn plain_decimals_read_exactly_as_their_floating_point_reading_rounds() {
        for text in ["0", "1", "0.250", "0.25", "7.5", "123.456", "999999999999.999", "86400.249", "12345.6789"] {
            let via_float = (text.parse::<f64>().unwrap() * 1000.0).round() as i64;
            assert_eq!(decimal_millis(text.as_bytes()).unwrap_or(via_float), via_float, "{text}");
        }
        for text in ["", ".5", "1e3", "-1", "+1", "1.2.3", "1000000000000", "0x10", " 1"] {
            assert_eq!(decimal_millis(text.as_bytes()), None, "{text}");
        }
        assert_eq!(decimal_millis(b"12.5"), Some(12_500));
    }

    /// Each field written plainly (the fast paths) and padded or spelled
    /// otherwise (the general path) reads the same; names recur from more
    /// columns' values than the recent-name lists hold.
    #[test]
    fn fields_read_alike_however_they_are_written() {
        let header = "step_id,submitted_at,system,features,jobset,build_id,priority,global_priority,depends_on,duration,outcome\n";
        let (mut plain, mut padded) = (String::from(header), String::from(header));
        for i in 1..=200u64 {
            let system = ["x86_64-linux", "aarch64-linux", "i686-linux"][(i % 3) as usize];
            let (features, features_padded) =
                [("", " "), ("kvm", " kvm"), ("\"big-parallel,kvm\"", "\"kvm, big-parallel,kvm\"")][(i % 3) as usize];
            let jobset = format!("p:j{}", (i * 7) % 40);
            let deps = if i > 2 { format!("{} {}", i - 1, i - 2) } else { String::new() };
            let outcome = ["success", "failure", "transient", ""][(i % 4) as usize];
            plain.push_str(&format!(
                "{i},{}.{:03},{system},{features},{jobset},{},{},{},{deps},{}.5,{outcome}\n",
                i / 3,
                i % 1000,
                i / 2,
                100 + i % 5,
                i % 2,
                i % 9
            ));
            padded.push_str(&format!(
                " {i} ,{}.{:03}0, {system},{features_padded}, {jobset} , +{} , {} ,{},  {deps} ,{}.50 , {outcome}\n",
                i / 3,
                i % 1000,
                i / 2,
                100 + i % 5,
                i % 2,
                i % 9
            ));
        }
        let (rows, symbols) = read_all(&plain).unwrap();
        let (padded_rows, padded_symbols) = read_all(&padded).unwrap();
        assert_eq!(rows.len(), 200);
        assert_eq!(padded_rows, rows);
        assert_eq!(padded_symbols.names_from(0), symbols.names_from(0));
        let r = &rows[199];
        assert_eq!(
            (r.step_id, r.submitted_ms, r.build_id, r.priority, r.depends_on.to_vec()),
            (200, 66_200, 100, 100, vec![199, 198])
        );
        assert_eq!(
            (symbols.name(r.system), symbols.name(r.features), symbols.name(r.jobset)),
            ("i686-linux", "big-parallel,kvm", "p:j0")
        );
        // Names in order of first sight, whatever the recent-name lists hold.
        let mut expect = vec![];
        for r in &rows {
            for s in [r.system, r.features, r.jobset] {
                if !expect.contains(&s) {
                    expect.push(s);
                }
            }
        }
        assert_eq!(expect, (0..symbols.len() as u32).map(Sym).collect::<Vec<_>>());
        let e = read_all(&format!("{header}5,0,x86_64-linux,,p:j,,,,4 5 x,1,\n")).unwrap_err();
        assert_eq!(e.message, "a step cannot depend on itself");
        let e = read_all(&format!("{header}5,0,x86_64-linux,,p:j,,,,4  6,1,\n{header}")).unwrap_err();
        assert_eq!((e.line, e.column.unwrap().1), (3, "step_id".to_string()));
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let e =
            read_all("step_id,submitted_at,system,duration\n1,0,x86_64-linux,1\n2,5,x86_64-linux,soon\n").unwrap_err();
        assert_eq!(e.to_string(), "t.csv:3:4: column `duration`: expected non-negative seconds, got `soon`");
        let e = read_all("step_id,submitted_at,system,duration\n1,5,x86_64-linux,1\n2,4,x86_64-linux,1\n").unwrap_err();
        assert_eq!((e.line, e.column.clone().unwrap().0), (3, 2));
        let e = read_all("step_id,system,duration\n").unwrap_err();
        assert!(e.to_string().contains("submitted_at"), "{e}");
        let e = read_all("step_id,submitted_at,system,duration,outcome\n1,0,x,1,maybe\n").unwrap_err();
        assert_eq!(e.column.unwrap().1, "outcome");
        let e = read_all("step_id,submitted_at,system,duration\n1,0,x86_64-linux\n").unwrap_err();
        assert_eq!(e.column.unwrap().1, "duration");
        assert!(read_all("").is_err());
    }
}
