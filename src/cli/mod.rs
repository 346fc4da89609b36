//! The command line: one binary, `hydra-provisioner`, with subcommands.
//!
//! This module parses arguments, sets up logging on stderr, and maps
//! outcomes to exit codes (0 success, 1 a command or check failed, 2 bad
//! input, 141 the reader of stdout went away). The work itself lives in the
//! library modules each subcommand calls.

mod compare;
mod plan;
mod recommend;
mod replay;
mod run;
mod simulate;
mod sweep;
mod trace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "hydra-provisioner",
    version,
    about = "Autoscaler for a Hydra server's build machines, and a simulator to test its policy",
    long_about = "Autoscaler for a Hydra server's build machines, and a simulator to test its policy.\n\n\
        One scaling engine decides, from the queue runner's status, the provisioned fleet and the \
        configuration, which machines to create, deploy, keep, drain, stop or destroy, and what \
        Hydra's machines file says.\n\n\
        Where to start:\n  \
        hydra-provisioner simulate                 simulate the built-in quick-start scenario\n  \
        hydra-provisioner plan --help              what the engine would do for a given status and fleet\n  \
        hydra-provisioner run conf.nix --dry-run   what one production pass would do, changing nothing\n  \
        hydra-provisioner conf.nix                 one production pass, as the original was called",
    after_help = "Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change their level.\n\
        Exit codes: 0 success, 1 a command or check failed, 2 bad input (config, status, files), \
        141 the reader of stdout went away."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Show what the engine would do for a given config, queue status and fleet.
    #[command(long_about = plan::LONG_ABOUT, after_help = plan::AFTER_HELP)]
    Plan(plan::PlanArgs),
    /// Run one production pass against the queue runner and NixOps.
    #[command(long_about = run::LONG_ABOUT)]
    Run(run::RunArgs),
    /// Replay a trace through simulated Hydra and cloud with the engine deciding; report cost and latency.
    Simulate(simulate::SimulateArgs),
    /// Run a grid of policies over seeds; report cost, latency and the Pareto frontier.
    Sweep(sweep::SweepArgs),
    /// Gate a policy change: fail when the candidate costs more or waits longer than allowed, beyond noise.
    Compare(compare::CompareArgs),
    /// Name the cheapest policy of a sweep that meets wait targets, and how sure that is.
    Recommend(recommend::RecommendArgs),
    /// Import real Hydra history, generate synthetic traces, describe and check trace files.
    Trace(trace::TraceArgs),
    /// Run a candidate configuration over recorded passes; report where its decisions differ.
    #[command(long_about = replay::LONG_ABOUT)]
    Replay(replay::ReplayArgs),
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// The exit status of a command whose stdout reader went away (`| head`):
/// the status of a process ended by SIGPIPE, which is what `cat` or `grep`
/// report there. Not 0: a truncated report, e.g. of `compare`, is no success.
pub const CLOSED_STDOUT: u8 = 128 + 13;

impl Failure {
    /// Bad input: config, status, fleet, trace or scenario files.
    pub fn input(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 2, error: error.into() }
    }
    /// Something that was attempted failed.
    pub fn failed(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 1, error: error.into() }
    }
}

/// Writes a command's output to stdout. Every subcommand prints through
/// this or propagates its own write errors, so a closed stdout reaches
/// [`main`] as an error instead of a panic in `print!`.
pub(crate) fn write_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Failure::failed)
}

/// Whether an error comes from writing to a pipe nobody reads any more.
fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // journald stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        let _ = builder.without_time().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The original was called as `hydra-provisioner conf.nix`: a first
/// argument that is neither an option nor a subcommand means `run`.
fn with_implicit_run(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let implicit = args.get(1).and_then(|a| a.to_str()).is_some_and(|first| {
        !first.starts_with('-') && first != "help" && Cli::command().find_subcommand(first).is_none()
    });
    if implicit {
        args.insert(1, "run".into());
    }
    args
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(with_implicit_run(std::env::args_os().collect()));
    init_logging();
    let result = match cli.command {
        Cmd::Plan(args) => plan::run(args),
        Cmd::Run(args) => run::run(args),
        Cmd::Simulate(args) => simulate::run(args),
        Cmd::Sweep(args) => sweep::run(args),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Recommend(args) => recommend::run(args),
        Cmd::Trace(args) => trace::run(args),
        Cmd::Replay(args) => replay::run(args),
    };
    match result {
        Ok(code) => code,
        // The reader has all it wanted; saying so on stderr would only be noise.
        Err(f) if is_closed_stdout(&f.error) => ExitCode::from(CLOSED_STDOUT),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn a_bare_config_path_means_run() {
        assert_eq!(with_implicit_run(args(&["hp", "conf.nix"])), args(&["hp", "run", "conf.nix"]));
        assert_eq!(
            with_implicit_run(args(&["hp", "/etc/p/conf.nix", "--dry-run"])),
            args(&["hp", "run", "/etc/p/conf.nix", "--dry-run"])
        );
        for unchanged in
            [&["hp", "plan", "-c", "x"][..], &["hp", "run", "c.nix"], &["hp", "--help"], &["hp", "help"], &["hp"]]
        {
            assert_eq!(with_implicit_run(args(unchanged)), args(unchanged));
        }
    }
}
