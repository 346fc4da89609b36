//! `hydra-provisioner simulate`: run a scenario and report cost and latency.
//! Without a scenario it runs the embedded quick-start scenario and trace.

use super::Failure;
use super::steps_csv::{StepsCsv, instance_id};
use crate::engine::Plan;
use crate::model::Observation;
use crate::passes::{PassRecord, config_fingerprint};
use crate::policy::run_report::{self, RunData};
use crate::sim::input::Streamed;
use crate::sim::{self, MachineEvent, Observer, SERIES_FIGURES, SERVER_FIGURES, Scenario, SimError, SimTime, StepLine};
use crate::trace::format_seconds;
use anyhow::Context;
use clap::Args;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const QUICK_START: &str = include_str!("../../scenarios/quick-start.toml");
const QUICK_START_TRACE: &str = include_str!("../../traces/quick-start.csv");

#[derive(Args, Debug)]
#[command(
    long_about = "Replay a trace of build steps through a model of Hydra's queue runner and of a cloud, \
        with the scaling engine deciding the fleet every provisioner interval, and report cost and latency.\n\n\
        The scenario file (TOML, see docs/scenario-format.md) names the trace, the provisioner configuration, \
        the cloud model and the static machines. Without one, the embedded quick-start scenario runs.",
    after_help = "Examples:\n  hydra-provisioner simulate\n  \
        hydra-provisioner simulate scenarios/hydra-nixos-2017.toml --out out/2017\n\n\
        Files written with --out: summary.json, steps.csv, series.csv, machines.csv, report.html \
        (and passes/ with --record-passes); docs/scenario-format.md describes them."
)]
pub struct SimulateArgs {
    /// Scenario file [default: the embedded quick-start scenario].
    pub scenario: Option<PathBuf>,
    /// Seed of the cloud model's random draws [default: the scenario's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write summary.json, the per-step, per-type time-series and machine CSVs, and report.html here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --out: also write every pass's status, fleet and plan (passes/NNNNN.json), and an
    /// inline configuration as conf.json.
    #[arg(long, requires = "out")]
    pub record_passes: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct Files {
    dir: PathBuf,
    steps: StepsCsv,
    series: csv::Writer<BufWriter<File>>,
    machines: csv::Writer<BufWriter<File>>,
    /// `server.csv`, made at the first server sample (scenarios with a `[server]`).
    server: Option<csv::Writer<BufWriter<File>>>,
    record_passes: bool,
    config_fingerprint: String,
    error: Option<anyhow::Error>,
    /// The time of the pass sampled last, whose rows of series.csv are
    /// written when the next pass begins.
    sampled_at: Option<SimTime>,
    report: RunData,
}

/// Column headers of the CSV files written here (docs/scenario-format.md);
/// times are seconds since the run's zero. steps.csv is `steps_csv.rs`'s.
const MACHINES_HEADER: [&str; 5] = ["time_s", "machine_id", "machine", "type", "event"];

fn csv_file(dir: &Path, name: &str, header: &[&str]) -> anyhow::Result<csv::Writer<BufWriter<File>>> {
    let path = dir.join(name);
    let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
    w.write_record(header)?;
    Ok(w)
}

impl Files {
    fn create(dir: &Path, record_passes: bool, config_fingerprint: String) -> anyhow::Result<Files> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if record_passes {
            std::fs::create_dir_all(dir.join("passes"))?;
        }
        Ok(Files {
            dir: dir.to_path_buf(),
            steps: StepsCsv::create(dir)?,
            series: csv_file(dir, "series.csv", &series_header())?,
            machines: csv_file(dir, "machines.csv", &MACHINES_HEADER)?,
            server: None,
            record_passes,
            config_fingerprint,
            error: None,
            sampled_at: None,
            report: RunData::default(),
        })
    }

    fn keep(&mut self, r: Result<(), impl Into<anyhow::Error>>) {
        if let Err(e) = r {
            self.error.get_or_insert(e.into());
        }
    }

    /// Writes the rows of the pass sampled last.
    fn flush_series(&mut self) {
        let Some(at) = self.sampled_at.take() else { return };
        let time = format_seconds(at.0);
        for (machine_type, rows) in &self.report.series {
            let Some((_, row)) = rows.last().filter(|(t, _)| *t == at.0) else { continue };
            let mut cells = vec![time.clone(), machine_type.clone()];
            cells.extend(row.iter().map(u64::to_string));
            if let Err(e) = self.series.write_record(&cells) {
                self.error.get_or_insert(e.into());
            }
        }
    }

    fn finish(mut self) -> anyhow::Result<RunData> {
        self.flush_series();
        if let Some(e) = self.error {
            return Err(e);
        }
        let waits = self.steps.finish()?;
        self.report.waits_by_type = waits.waits_by_type;
        self.report.waits_by_jobset = waits.waits_by_jobset;
        self.series.flush()?;
        self.machines.flush()?;
        if let Some(server) = &mut self.server {
            server.flush()?;
        }
        Ok(self.report)
    }
}

fn series_header() -> Vec<&'static str> {
    ["time_s", "type"].into_iter().chain(SERIES_FIGURES).collect()
}

impl Observer for Files {
    fn wants_passes(&self) -> bool {
        self.record_passes
    }
    fn step(&mut self, l: &StepLine<'_>) {
        self.steps.step(l);
    }

    fn sample(&mut self, at: SimTime, metric: &str, key: &str, value: u64) {
        if self.sampled_at.is_some_and(|t| t != at) {
            self.flush_series();
        }
        self.sampled_at = Some(at);
        self.report.sample(at.0, metric, key, value);
    }

    fn server_sample(&mut self, at: SimTime, figures: [u64; SERVER_FIGURES.len()]) {
        if self.server.is_none() {
            let header: Vec<&str> = ["time_s"].into_iter().chain(SERVER_FIGURES).collect();
            match csv_file(&self.dir, "server.csv", &header) {
                Ok(w) => self.server = Some(w),
                Err(e) => return self.keep(Err(e)),
            }
        }
        let cells: Vec<String> = [format_seconds(at.0)].into_iter().chain(figures.iter().map(u64::to_string)).collect();
        if let Some(w) = &mut self.server {
            let r = w.write_record(&cells);
            self.keep(r);
        }
        self.report.server_sample(at.0, figures);
    }

    fn machine_event(&mut self, e: &MachineEvent<'_>) {
        self.steps.instance_named(e.instance, e.machine);
        let r = self.machines.write_record([
            format_seconds(e.at.0).as_str(),
            &instance_id(e.instance),
            e.machine,
            e.machine_type,
            e.event,
        ]);
        self.keep(r);
    }

    fn pass(&mut self, index: u64, status: &serde_json::Value, observation: &Observation, plan: &Plan) {
        if !self.record_passes {
            return;
        }
        let doc = PassRecord {
            now: plan.now,
            status: status.clone(),
            // The Rust runner's documents (`status`, `machines`, `queues`)
            // need the queued steps' `.drv` files to be read again, which a
            // simulation has not: record what the engine saw, as production does.
            queue_status: status.get("queues").map(|_| observation.status.clone()),
            fleet: observation.fleet.clone(),
            config_fingerprint: Some(self.config_fingerprint.clone()),
            plan: plan.clone(),
        };
        let path = self.dir.join("passes").join(format!("{index:05}.json"));
        let r = serde_json::to_vec_pretty(&doc)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display())));
        self.keep(r);
    }
}

struct Progress<'a> {
    bar: indicatif::ProgressBar,
    inner: Option<&'a mut Files>,
}

impl Observer for Progress<'_> {
    fn wants_steps(&self) -> bool {
        self.inner.is_some()
    }
    fn wants_passes(&self) -> bool {
        self.inner.as_ref().is_some_and(|f| f.wants_passes())
    }
    fn wants_samples(&self) -> bool {
        self.inner.is_some()
    }
    fn step(&mut self, l: &StepLine<'_>) {
        if let Some(f) = self.inner.as_deref_mut() {
            f.step(l)
        }
    }
    fn sample(&mut self, at: SimTime, metric: &str, key: &str, value: u64) {
        if let Some(f) = self.inner.as_deref_mut() {
            f.sample(at, metric, key, value)
        }
    }
    fn machine_event(&mut self, e: &MachineEvent<'_>) {
        if let Some(f) = self.inner.as_deref_mut() {
            f.machine_event(e)
        }
    }
    fn server_sample(&mut self, at: SimTime, figures: [u64; SERVER_FIGURES.len()]) {
        if let Some(f) = self.inner.as_deref_mut() {
            f.server_sample(at, figures)
        }
    }
    fn pass(&mut self, index: u64, status: &serde_json::Value, observation: &Observation, plan: &Plan) {
        if let Some(f) = self.inner.as_deref_mut() {
            f.pass(index, status, observation, plan)
        }
    }
    fn progress(&mut self, at: SimTime, steps_arrived: u64) {
        self.bar.set_message(format!("simulated {:.1} h, {steps_arrived} steps", at.0 as f64 / 3_600_000.0));
        self.bar.tick();
    }
}

fn sim_failure(e: SimError) -> Failure {
    match e {
        SimError::Internal(_) => Failure::failed(e),
        _ => Failure::input(e),
    }
}

pub fn run(args: SimulateArgs) -> Result<ExitCode, Failure> {
    let (mut scenario, input, name): (Scenario, Box<dyn Read + Send>, String) = match &args.scenario {
        Some(path) => {
            let scenario = Scenario::load(path).map_err(Failure::input)?;
            let f = File::open(&scenario.trace)
                .with_context(|| format!("cannot open the trace {}", scenario.trace.display()))
                .map_err(Failure::input)?;
            let name = scenario.trace.display().to_string();
            (scenario, Box::new(std::io::BufReader::with_capacity(1 << 16, f)), name)
        }
        None => {
            let mut scenario = Scenario::parse(QUICK_START, "quick-start.toml (embedded)", Path::new("scenarios"))
                .map_err(Failure::input)?;
            scenario.name = format!("{} (embedded)", scenario.name);
            // Named as from the repository root, where the committed copy lives.
            scenario.trace_text = "traces/quick-start.csv (embedded)".to_string();
            let name = scenario.trace_text.clone();
            (scenario, Box::new(QUICK_START_TRACE.as_bytes()), name)
        }
    };
    // Parsing, windowing and digesting run a few batches ahead on a thread of their own.
    let mut rows = Streamed::spawn(input, name, scenario.window)
        .context("cannot start the trace reader")
        .map_err(Failure::failed)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let mut files = match &args.out {
        Some(dir) => Some(
            Files::create(dir, args.record_passes, config_fingerprint(&scenario.config)).map_err(Failure::failed)?,
        ),
        None => None,
    };
    if let (Some(f), Some(json)) = (&files, scenario.config_json.as_ref().filter(|_| args.record_passes)) {
        let path = f.dir.join("conf.json");
        std::fs::write(&path, serde_json::to_vec_pretty(json).map_err(Failure::failed)?)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::failed)?;
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    tracing::info!("simulating {} with seed {}", scenario.name, scenario.seed);
    let mut observer = Progress { bar: bar.clone(), inner: files.as_mut() };
    let summary = sim::run_streamed(&scenario, &mut rows, &mut observer).map_err(sim_failure)?;
    bar.finish_and_clear();
    if let Some(files) = files {
        let dir = files.dir.clone();
        let data = files.finish().map_err(Failure::failed)?;
        let json = serde_json::to_vec_pretty(&summary).map_err(Failure::failed)?;
        let scenario_file = args.scenario.as_ref().map_or("embedded".to_string(), |p| p.display().to_string());
        let html = run_report::html(&summary, &data, &scenario_file).map_err(Failure::failed)?;
        for (name, bytes) in [("summary.json", json.as_slice()), ("report.html", html.as_bytes())] {
            std::fs::write(dir.join(name), bytes)
                .with_context(|| format!("cannot write {}", dir.join(name).display()))
                .map_err(Failure::failed)?;
        }
    }
    let text = if args.json {
        serde_json::to_string_pretty(&summary).map_err(Failure::failed)? + "\n"
    } else {
        summary.to_table()
    };
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
