//! `steps.csv` written on a thread of its own. The simulation thread hands
//! each step that left the model over as a few integers, names by index and
//! each name once, in batches through a bounded channel; this thread formats
//! the rows and adds each step's wait to the report's per-type and
//! per-jobset histograms. A million rows are most of what `simulate --out`
//! adds to a run, and this way they cost the simulation thread a copy each.
//!
//! It writes what it is given, in order, and knows nothing of Hydra or of
//! the simulator beyond [`StepLine`].

use crate::policy::run_report::RunData;
use crate::sim::{SimTime, StepLine};
use anyhow::Context;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Rows handed over at a time; at most [`BATCHES_IN_FLIGHT`] batches wait.
const BATCH: usize = 4096;
const BATCHES_IN_FLIGHT: usize = 4;

/// Column headers of steps.csv (docs/scenario-format.md); times are seconds
/// since the run's zero.
pub const STEPS_HEADER: [&str; 11] = [
    "step_id",
    "jobset",
    "type",
    "runnable_at_s",
    "started_at_s",
    "wait_s",
    "finished_at_s",
    "machine_id",
    "machine",
    "attempts",
    "end",
];

/// The names a row refers to by index.
#[derive(Debug, Clone, Copy)]
enum Table {
    Type,
    Jobset,
    Machine,
}

enum Item {
    /// `index` of `table` names `name` from now on (indices never change name).
    Name {
        table: Table,
        index: u32,
        name: String,
    },
    /// Instance `instance` (from 1) is the deployment `name`.
    Instance {
        instance: u32,
        name: String,
    },
    Row(Row),
}

struct Row {
    step_id: u64,
    kind: u32,
    jobset: u32,
    runnable_at: Option<SimTime>,
    started_at: Option<SimTime>,
    finished_at: Option<SimTime>,
    machine: Option<u32>,
    instance: Option<u32>,
    attempts: u32,
    end: &'static str,
}

/// The simulation thread's end of the writer.
pub struct StepsCsv {
    batch: Vec<Item>,
    /// Which indices of each [`Table`] the writer knows.
    known: [Vec<bool>; 3],
    tx: Option<SyncSender<Vec<Item>>>,
    worker: Option<JoinHandle<anyhow::Result<RunData>>>,
}

impl StepsCsv {
    /// Creates `dir/steps.csv`, writes its header and starts the writer.
    pub fn create(dir: &Path) -> anyhow::Result<StepsCsv> {
        let path = dir.join("steps.csv");
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut csv = csv::Writer::from_writer(BufWriter::new(file));
        csv.write_record(STEPS_HEADER)?;
        let (tx, rx) = sync_channel(BATCHES_IN_FLIGHT);
        let worker = std::thread::Builder::new()
            .name("steps.csv writer".into())
            .spawn(move || write_rows(rx, csv))
            .context("cannot start the steps.csv writer")?;
        Ok(StepsCsv { batch: Vec::with_capacity(BATCH), known: Default::default(), tx: Some(tx), worker: Some(worker) })
    }

    fn name(&mut self, table: Table, index: u32, name: &str) {
        let known = &mut self.known[table as usize];
        if known.get(index as usize).copied().unwrap_or(false) {
            return;
        }
        if known.len() <= index as usize {
            known.resize(index as usize + 1, false);
        }
        known[index as usize] = true;
        self.batch.push(Item::Name { table, index, name: name.to_string() });
    }

    /// A step left the model.
    pub fn step(&mut self, l: &StepLine<'_>) {
        self.name(Table::Type, l.kind_index, l.machine_type);
        self.name(Table::Jobset, l.jobset_index, l.jobset);
        if let (Some(m), Some(host)) = (l.machine_index, l.machine) {
            self.name(Table::Machine, m, host);
        }
        self.batch.push(Item::Row(Row {
            step_id: l.step_id,
            kind: l.kind_index,
            jobset: l.jobset_index,
            runnable_at: l.runnable_at,
            started_at: l.started_at,
            finished_at: l.finished_at,
            machine: l.machine_index,
            instance: l.instance,
            attempts: l.attempts,
            end: l.end,
        }));
        if self.batch.len() >= BATCH {
            self.send();
        }
    }

    /// Instance `instance` (from 1) is, from the next row on, the deployment `name`.
    pub fn instance_named(&mut self, instance: u32, name: &str) {
        self.batch.push(Item::Instance { instance, name: name.to_string() });
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if let Some(tx) = &self.tx
            && tx.send(batch).is_err()
        {
            // The writer stopped; `finish` reports why.
            self.tx = None;
        }
    }

    /// Writes what is left, flushes the file and returns the waits per type
    /// and jobset (in a [`RunData`] holding nothing else).
    pub fn finish(mut self) -> anyhow::Result<RunData> {
        self.send();
        self.tx = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the steps.csv writer stopped unexpectedly"),
            None => anyhow::bail!("the steps.csv writer was already finished"),
        }
    }
}

impl Drop for StepsCsv {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The writer thread: formats every row it is sent. After a write error it
/// keeps receiving (so the simulation never blocks on it) and reports the
/// first error at the end.
fn write_rows(rx: Receiver<Vec<Item>>, mut csv: csv::Writer<BufWriter<File>>) -> anyhow::Result<RunData> {
    let mut names: [Vec<String>; 3] = Default::default();
    let mut deployments: Vec<String> = vec![];
    let mut waits = RunData::default();
    let mut cell = Cell::default();
    let mut error: Option<csv::Error> = None;
    for batch in rx {
        for item in batch {
            match item {
                Item::Name { table, index, name } => {
                    let t = &mut names[table as usize];
                    if t.len() <= index as usize {
                        t.resize(index as usize + 1, String::new());
                    }
                    t[index as usize] = name;
                }
                Item::Instance { instance, name } => {
                    let i = instance as usize;
                    if deployments.len() < i {
                        deployments.resize(i, String::new());
                    }
                    deployments[i - 1] = name;
                }
                Item::Row(row) => {
                    let [types, jobsets, machines] = &names;
                    let (machine_type, jobset) = (&types[row.kind as usize], &jobsets[row.jobset as usize]);
                    let wait_ms = match (row.runnable_at, row.started_at) {
                        (Some(r), Some(s)) => {
                            waits.wait(machine_type, jobset, s.0 - r.0);
                            Some(s.0 - r.0)
                        }
                        _ => None,
                    };
                    if error.is_some() {
                        continue;
                    }
                    let host = row.machine.map(|m| machines[m as usize].as_str());
                    if let Err(e) =
                        write_row(&mut csv, &mut cell, &row, machine_type, jobset, host, wait_ms, &deployments)
                    {
                        error = Some(e);
                    }
                }
            }
        }
    }
    if let Some(e) = error {
        return Err(anyhow::Error::from(e).context("cannot write steps.csv"));
    }
    csv.flush().context("cannot write steps.csv")?;
    Ok(waits)
}

#[allow(clippy::too_many_arguments)]
fn write_row(
    w: &mut csv::Writer<BufWriter<File>>,
    cell: &mut Cell,
    row: &Row,
    machine_type: &str,
    jobset: &str,
    host: Option<&str>,
    wait_ms: Option<i64>,
    deployments: &[String],
) -> csv::Result<()> {
    w.write_field(cell.integer(row.step_id))?;
    w.write_field(jobset)?;
    w.write_field(machine_type)?;
    for t in [row.runnable_at.map(|t| t.0), row.started_at.map(|t| t.0), wait_ms, row.finished_at.map(|t| t.0)] {
        w.write_field(t.map_or(&b""[..], |ms| cell.seconds(ms)))?;
    }
    // A provisioned machine by its instance and deployment name, a static one by its host name.
    match (row.instance, host) {
        (Some(i), _) => {
            w.write_field(cell.instance_id(i))?;
            w.write_field(deployments.get(i as usize - 1).map_or("", String::as_str))?;
        }
        (None, Some(host)) => {
            w.write_field(host)?;
            w.write_field(host)?;
        }
        (None, None) => {
            w.write_field("")?;
            w.write_field("")?;
        }
    }
    w.write_field(cell.integer(row.attempts))?;
    w.write_field(row.end)?;
    w.write_record(None::<&[u8]>)
}

/// How steps.csv and machines.csv name a provisioned instance: `i-` and its number.
const INSTANCE_PREFIX: &str = "i-";

/// The identifier of a provisioned instance in steps.csv and machines.csv.
pub fn instance_id(instance: u32) -> String {
    format!("{INSTANCE_PREFIX}{instance}")
}

/// A reused buffer that formats one cell as
/// [`crate::trace::format_seconds`], [`instance_id`] and `to_string` would.
#[derive(Default)]
struct Cell {
    bytes: Vec<u8>,
    integer: itoa::Buffer,
}

impl Cell {
    fn integer(&mut self, n: impl itoa::Integer) -> &[u8] {
        self.integer.format(n).as_bytes()
    }

    fn seconds(&mut self, ms: i64) -> &[u8] {
        self.bytes.clear();
        crate::trace::push_seconds(&mut self.bytes, ms);
        &self.bytes
    }

    fn instance_id(&mut self, instance: u32) -> &[u8] {
        self.bytes.clear();
        self.bytes.extend_from_slice(INSTANCE_PREFIX.as_bytes());
        self.bytes.extend_from_slice(self.integer.format(instance).as_bytes());
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_format_seconds_and_to_string_write_them() {
        let mut cell = Cell::default();
        for ms in [0, 1, 999, 1000, 1001, 61_234, -1, -1500, i64::MAX, i64::MIN] {
            assert_eq!(cell.seconds(ms), crate::trace::format_seconds(ms).as_bytes(), "{ms}");
        }
        assert_eq!(cell.integer(u64::MAX), u64::MAX.to_string().as_bytes());
        assert_eq!(cell.instance_id(17), instance_id(17).as_bytes());
        assert_eq!(instance_id(17), "i-17");
    }
}
