//! `hydra-provisioner trace import hydra-db|hydra-api`: a real Hydra's
//! history as a v1 trace. The mapping lives in `trace::import`, the database
//! client in `adapters::hydra_db`; this module wires them to files, flags and
//! the progress bar, and prints what was skipped.

use crate::adapters::hydra_db::{self, DbError, HistoryFilter};
use crate::cli::Failure;
use crate::trace::import::features::FeatureRules;
use crate::trace::import::hydra_api::ApiHistory;
use crate::trace::import::hydra_db::{DbImport, Runner, RunnerEras};
use crate::trace::import::{ImportReport, TraceSink};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Read Hydra's PostgreSQL tables (builds, jobsets, buildsteps) and write one trace row per build step.
    #[command(after_help = "Connection: --database-url, else libpq's PGHOST, PGPORT, PGUSER, PGDATABASE, \
        PGPASSWORD. Rows stream from a server-side portal, one batch in memory.\n\n\
        Example:\n  PGHOST=/run/postgresql PGUSER=hydra hydra-provisioner trace import hydra-db \\\n    \
        --since 2026-01-01 --until 2026-01-08 --features features.toml -o week.csv\n\n\
        docs/import.md says how steps, times, retries and dependencies are mapped.")]
    HydraDb(DbArgs),
    /// Convert saved JSON responses of Hydra's API (/jobset/P/J/evals, /eval/N/builds, /build/N) to a trace.
    #[command(after_help = "DIR is searched for *.json files (recursively). The API shows builds, not \
        steps: each finished build becomes one step (docs/import.md lists what is lost).\n\n\
        Example:\n  mkdir api && curl -H 'Accept: application/json' https://hydra.example/eval/123/builds \
        > api/eval-123.json\n  hydra-provisioner trace import hydra-api api -o eval-123.csv")]
    HydraApi(ApiArgs),
}

/// Options both importers share.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Only builds queued at or after this time (Unix seconds, YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only builds queued before this time (Unix seconds, YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only builds of this project (repeatable).
    #[arg(long, value_name = "PROJECT")]
    pub project: Vec<String>,
    /// Only builds of this jobset, as `project:jobset` or a bare jobset name (repeatable).
    #[arg(long, value_name = "JOBSET")]
    pub jobset: Vec<String>,
    /// Rules file (TOML) giving the features steps require; see docs/import.md [default: none required].
    #[arg(long, value_name = "FILE")]
    pub features: Option<PathBuf>,
    /// The trace's zero (Unix seconds, YYYY-MM-DD or RFC 3339) [default: midnight UTC of the first arrival].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub zero: Option<i64>,
    /// Output file (`-` is standard output) [default: standard output]; a file is written whole or not at all.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DbArgs {
    /// PostgreSQL connection, e.g. postgres://hydra@localhost/hydra (or a libpq key=value string).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Which queue runner wrote the rows (no column says): C++ rows add `overhead` to stop - start.
    #[arg(long, value_enum, default_value = "cpp")]
    pub runner: Runner,
    /// Steps started at or after this time were written by the Rust queue runner (a switch-over).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub rust_runner_since: Option<i64>,
    /// Rows fetched from the server per round trip (memory holds one batch).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(1..))]
    pub batch_rows: i32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Directory holding the saved responses (*.json, searched recursively).
    pub dir: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Unix seconds, a date (midnight UTC) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let parse = crate::adapters::queue::parse_rfc3339;
    parse(s)
        .or_else(|| parse(&format!("{s}T00:00:00Z")))
        .ok_or_else(|| format!("`{s}` is not Unix seconds, YYYY-MM-DD or an RFC 3339 time"))
}

pub fn run(cmd: ImportCmd) -> Result<ExitCode, Failure> {
    match cmd {
        ImportCmd::HydraDb(a) => from_db(a),
        ImportCmd::HydraApi(a) => from_api(a),
    }
}

fn rules(common: &CommonArgs) -> Result<FeatureRules, Failure> {
    let Some(path) = &common.features else { return Ok(FeatureRules::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the features rules {}", path.display()))
        .map_err(Failure::input)?;
    FeatureRules::parse(&text, &path.display().to_string()).map_err(|e| Failure::input(anyhow::anyhow!(e)))
}

/// A trace for a regular file goes to a temporary file beside it and is
/// renamed into place only when the import succeeded. Anything else (a
/// device such as /dev/null, a pipe) is written directly: renaming over it
/// would replace it.
enum Output {
    File { temp: tempfile::NamedTempFile, path: PathBuf },
    Direct,
}

impl Output {
    fn open(out: &Option<PathBuf>) -> Result<(Output, Box<dyn Write>), Failure> {
        let Some(path) = out.as_ref().filter(|p| !super::super::is_stdin(p)) else {
            return Ok((Output::Direct, Box::new(std::io::BufWriter::new(std::io::stdout()))));
        };
        // Through a symbolic link, the file it points to is the output.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        let cannot = |e: std::io::Error| Failure::failed(anyhow::anyhow!("cannot write {}: {e}", path.display()));
        match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => {
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(cannot)?;
                Ok((Output::Direct, Box::new(std::io::BufWriter::with_capacity(1 << 16, f))))
            }
            _ => {
                let dir = crate::config::directory_of(&path);
                let temp = tempfile::NamedTempFile::new_in(dir).map_err(cannot)?;
                let file = temp.reopen().map_err(cannot)?;
                Ok((Output::File { temp, path }, Box::new(std::io::BufWriter::with_capacity(1 << 16, file))))
            }
        }
    }

    fn commit(self) -> Result<(), Failure> {
        if let Output::File { temp, path } = self {
            temp.persist(&path).with_context(|| format!("cannot write {}", path.display())).map_err(Failure::failed)?;
        }
        Ok(())
    }
}

fn finish(sink: TraceSink<Box<dyn Write>>, output: Output) -> Result<ImportReport, Failure> {
    let (_, report) = sink.finish().map_err(Failure::failed)?;
    output.commit()?;
    eprint!("{}", report.to_text());
    Ok(report)
}

fn from_db(args: DbArgs) -> Result<ExitCode, Failure> {
    let rules = rules(&args.common)?;
    let config = hydra_db::settings(args.database_url.as_deref(), |k| std::env::var(k).ok()).map_err(Failure::input)?;
    let filter = HistoryFilter {
        since: args.common.since,
        until: args.common.until,
        projects: args.common.project.clone(),
        jobsets: args.common.jobset.clone(),
    };
    let db_failure = |e: DbError| match e {
        DbError::Settings(_) | DbError::Schema(_) => Failure::input(e),
        DbError::Connect { .. } | DbError::Read(_) => Failure::failed(e),
    };
    tracing::info!("reading Hydra's history from {}", hydra_db::describe(&config));
    let mut client = hydra_db::connect(&config).map_err(db_failure)?;
    let bar = if std::io::stderr().is_terminal() {
        let total = hydra_db::count(&mut client, &filter).map_err(db_failure)?;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (output, out) = Output::open(&args.common.out)?;
    let sink = TraceSink::new(out, args.common.zero).map_err(Failure::failed)?;
    let eras = RunnerEras { default: args.runner, rust_since: args.rust_runner_since };
    let mut import = DbImport::new(sink, &rules, eras);
    hydra_db::stream(&mut client, &filter, args.batch_rows, |row| {
        bar.inc(1);
        import.push(row)
    })
    .map_err(db_failure)?;
    bar.finish_and_clear();
    let sink = import.finish().map_err(Failure::failed)?;
    finish(sink, output)?;
    Ok(ExitCode::SUCCESS)
}

fn json_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if e.file_type()?.is_dir() {
            json_files(&path, found)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            found.push(path);
        }
    }
    Ok(())
}

fn from_api(args: ApiArgs) -> Result<ExitCode, Failure> {
    let rules = rules(&args.common)?;
    let mut files = vec![];
    json_files(&args.dir, &mut files)
        .with_context(|| format!("cannot read the directory {}", args.dir.display()))
        .map_err(Failure::input)?;
    if files.is_empty() {
        return Err(Failure::input(anyhow::anyhow!("{}: no *.json files", args.dir.display())));
    }
    let mut history = ApiHistory::default();
    for path in &files {
        let origin = path.display().to_string();
        let text = std::fs::read(path).with_context(|| format!("cannot read {origin}")).map_err(Failure::input)?;
        let doc: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{origin}: not valid JSON"))
            .map_err(Failure::input)?;
        history.add(&doc, &origin).map_err(|e| Failure::input(anyhow::anyhow!(e)))?;
    }
    let c = &args.common;
    history.builds.retain(|_, b| {
        c.since.is_none_or(|s| b.timestamp >= s)
            && c.until.is_none_or(|u| b.timestamp < u)
            && (c.project.is_empty() || c.project.contains(&b.project))
            && (c.jobset.is_empty()
                || c.jobset.contains(&b.jobset)
                || c.jobset.contains(&format!("{}:{}", b.project, b.jobset)))
    });
    let missing = history.missing_builds();
    if missing > 0 {
        tracing::warn!("{missing} builds listed by the saved evaluations have no saved /build or /eval response");
    }
    let (output, out) = Output::open(&c.out)?;
    let mut sink = TraceSink::new(out, c.zero).map_err(Failure::failed)?;
    history.write(&mut sink, &rules).map_err(Failure::failed)?;
    finish(sink, output)?;
    Ok(ExitCode::SUCCESS)
}
