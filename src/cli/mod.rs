//! The command line: one binary, `hydra-provisioner`, with subcommands.
//!
//! This module parses arguments (and the original's bare `hydra-provisioner
//! conf.nix`), sets up logging on stderr (level from `-v`/`-q` or
//! `RUST_LOG`, colour by `NO_COLOR`/`CLICOLOR`/a terminal), prints shell
//! completions and man pages, and maps outcomes to exit codes (0 success,
//! 1 a command or check failed, 2 bad input, 141 the reader of stdout went
//! away). The work itself lives in the library modules each subcommand calls.

mod compare;
mod plan;
mod recommend;
mod replay;
mod run;
mod simulate;
mod steps_csv;
mod sweep;
mod trace;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
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
        hydra-provisioner conf.nix                 one production pass, as the original was called \
        (only when conf.nix is an existing file)",
    after_help = "Logs go to stderr at level info; -v/-vv raise it to debug/trace, -q/-qq lower it to \
        warn/error. Without -v or -q, RUST_LOG (e.g. RUST_LOG=debug) sets it. Colour only on a terminal, \
        never with NO_COLOR set (CLICOLOR_FORCE=1 forces it).\n\
        Wherever a command reads a file, `-` reads standard input (at most once per command).\n\
        Exit codes: 0 success, 1 a command or check failed, 2 bad input (config, status, files, arguments), \
        141 the reader of stdout went away."
)]
pub struct Cli {
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    pub command: Cmd,
}

/// How much is logged: `-v` and `-q` move the level from `info`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// Log more: -v debug, -vv trace (overrides RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log less: -q warnings and errors only, -qq errors only (overrides RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl Verbosity {
    /// The level the flags ask for, or `None` to leave it to `RUST_LOG`.
    /// `-v` and `-vv` raise our own logs only: the libraries' debug output
    /// is noise to an operator.
    fn level(self) -> Option<&'static str> {
        match (self.verbose, self.quiet) {
            (0, 0) => None,
            (1, _) => Some("info,hydra_provisioner=debug"),
            (v, _) if v >= 2 => Some("info,hydra_provisioner=trace"),
            (_, 1) => Some("warn"),
            _ => Some("error"),
        }
    }
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
        hydra-provisioner completions bash > /etc/bash_completion.d/hydra-provisioner\n  \
        hydra-provisioner completions zsh > ~/.zfunc/_hydra-provisioner\n  \
        hydra-provisioner completions fish > ~/.config/fish/completions/hydra-provisioner.fish\n\n\
        The Nix package installs all three.")]
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per subcommand into a directory.
    #[command(after_help = "Examples:\n  hydra-provisioner man | man -l -\n  \
        hydra-provisioner man --out-dir share/man/man1\n\nThe Nix package installs them.")]
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write hydra-provisioner.1 and a hydra-provisioner-SUBCOMMAND.1 per subcommand here
    /// (created if missing) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
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

fn init_logging(verbosity: Verbosity) {
    use tracing_subscriber::EnvFilter;
    let mut filter = match verbosity.level() {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // The HTTP client's debug and trace output dumps requests byte for byte,
    // the status URL's bearer token included: never, whatever RUST_LOG says.
    for quiet in ["ureq=warn", "ureq_proto=warn"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // The rules of no-color.org and bixense.com/clicolors, as clap's own
    // help and errors follow them.
    let colour = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour);
    // journald stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        let _ = builder.without_time().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The original was called as `hydra-provisioner conf.nix`: a first
/// argument that is not a subcommand but names an existing file means `run`.
/// Anything else is left to clap, which suggests the closest subcommand for
/// a typo (`simualte`) instead of reporting a missing config file.
fn with_implicit_run(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let implicit = args.get(1).is_some_and(|first| {
        let name = first.to_str();
        !name.is_some_and(|n| n.starts_with('-') || Cli::command().find_subcommand(n).is_some())
            && Path::new(first).is_file()
    });
    if implicit {
        args.insert(1, "run".into());
    }
    args
}

/// Parses the command line; a usage error is printed (with clap's
/// suggestion) and exits 2, help and version exit 0.
fn parse(args: Vec<std::ffi::OsString>) -> Cli {
    let first = args.get(1).cloned();
    match Cli::try_parse_from(with_implicit_run(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand
                && let Some(first) = first.as_deref().and_then(|f| f.to_str())
                && looks_like_a_config(first)
            {
                eprintln!("\nnote: `{first}` is not a file; a bare config path runs only when the file exists");
            }
            std::process::exit(e.exit_code());
        }
    }
}

fn looks_like_a_config(arg: &str) -> bool {
    arg.contains('/') || [".nix", ".json", ".toml"].iter().any(|ext| arg.ends_with(ext))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = parse(std::env::args_os().collect());
    init_logging(cli.verbosity);
    let result = match cli.command {
        Cmd::Plan(args) => plan::run(args),
        Cmd::Run(args) => run::run(args),
        Cmd::Simulate(args) => simulate::run(args),
        Cmd::Sweep(args) => sweep::run(args),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Recommend(args) => recommend::run(args),
        Cmd::Trace(args) => trace::run(args),
        Cmd::Replay(args) => replay::run(args),
        Cmd::Completions(args) => completions(&args),
        Cmd::Man(args) => man(&args),
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

fn completions(args: &CompletionsArgs) -> Result<ExitCode, Failure> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let mut generated = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name.clone(), &mut generated);
    let mut script = String::from_utf8_lossy(&generated).into_owned();
    if args.shell == clap_complete::Shell::Bash {
        script = fix_bash_states(&script, &name);
    }
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete (4.6.11 and earlier) spells the bash script's state for a
/// subcommand two ways when the program's name has a hyphen: the loop that
/// reads the words writes `hydra__provisioner__subcmd__run`, the `case` arms
/// expect `hydra__subcmd__provisioner__subcmd__run`, so nothing after a
/// subcommand completes (clap-rs/clap#6421). Spell the arms as the loop does;
/// a fixed clap_complete makes this a no-op.
fn fix_bash_states(script: &str, name: &str) -> String {
    let broken = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
    let loop_spelling = format!("{}__subcmd__", name.replace('-', "__"));
    script.replace(&broken, &loop_spelling)
}

fn man(args: &ManArgs) -> Result<ExitCode, Failure> {
    let cmd = Cli::command();
    match &args.out_dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page).map_err(Failure::failed)?;
            write_stdout(&String::from_utf8_lossy(&page))?;
        }
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cmd, dir))
            .with_context(|| format!("cannot write the man pages to {}", dir.display()))
            .map_err(Failure::failed)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A file a command reads, or standard input for `-`.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
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
    let broken_pipe = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    error.chain().any(|e| {
        let Some(io) = e.downcast_ref::<std::io::Error>() else { return false };
        // csv's writer wraps the io::Error it met, and hides it from `source`.
        let in_csv = io.get_ref().and_then(|inner| inner.downcast_ref::<csv::Error>());
        broken_pipe(io) || in_csv.is_some_and(|c| matches!(c.kind(), csv::ErrorKind::Io(inner) if broken_pipe(inner)))
    })
}

/// A file's name in messages; standard input is `<stdin>`.
pub fn input_name(path: &Path) -> String {
    if is_stdin(path) { "<stdin>".to_string() } else { path.display().to_string() }
}

/// Opens `path` for reading (`-` is standard input); `what` names it in errors.
pub fn open_input(path: &Path, what: &str) -> Result<Box<dyn Read>, Failure> {
    if is_stdin(path) {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))
        .map_err(Failure::input)?;
    Ok(Box::new(file))
}

/// Reads `path` whole (`-` is standard input); `what` names it in errors.
pub fn read_input(path: &Path, what: &str) -> Result<String, Failure> {
    let mut text = String::new();
    open_input(path, what)?
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} {}", input_name(path)))
        .map_err(Failure::input)?;
    Ok(text)
}

/// Standard input can be read once: at most one of `paths` may be `-`.
pub fn stdin_at_most_once<'a>(paths: impl IntoIterator<Item = (&'a str, &'a Path)>) -> Result<(), Failure> {
    let from_stdin: Vec<&str> = paths.into_iter().filter(|(_, p)| is_stdin(p)).map(|(flag, _)| flag).collect();
    if from_stdin.len() > 1 {
        let all = if from_stdin.len() == 2 { "both" } else { "all" };
        return Err(Failure::input(anyhow::anyhow!(
            "{} {all} read standard input (`-`); only one can",
            from_stdin.join(" and ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn a_bare_existing_file_means_run_and_anything_else_is_left_to_clap() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf.nix");
        std::fs::write(&conf, "{ }").unwrap();
        let conf = conf.to_str().unwrap();
        assert_eq!(with_implicit_run(args(&["hp", conf])), args(&["hp", "run", conf]));
        assert_eq!(with_implicit_run(args(&["hp", conf, "--dry-run"])), args(&["hp", "run", conf, "--dry-run"]));
        let missing = dir.path().join("missing.nix");
        let dir_name = dir.path().to_str().unwrap();
        for unchanged in [
            &["hp", "plan", "-c", "x"][..],
            &["hp", "run", "c.nix"],
            &["hp", "--help"],
            &["hp", "help"],
            &["hp"],
            &["hp", "simualte"],
            &["hp", missing.to_str().unwrap()],
            &["hp", dir_name],
        ] {
            assert_eq!(with_implicit_run(args(unchanged)), args(unchanged));
        }
    }

    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = vec![];
        walk(&cmd, "hydra-provisioner", &mut missing);
        assert!(missing.is_empty(), "arguments without help text: {missing:#?}");
    }

    #[test]
    fn verbosity_flags_set_the_level() {
        let level = |list: &[&str]| Cli::try_parse_from(args(list)).unwrap().verbosity.level();
        assert_eq!(level(&["hp", "simulate"]), None);
        assert_eq!(level(&["hp", "-v", "simulate"]), Some("info,hydra_provisioner=debug"));
        assert_eq!(level(&["hp", "simulate", "-vv"]), Some("info,hydra_provisioner=trace"));
        assert_eq!(level(&["hp", "-q", "simulate"]), Some("warn"));
        assert_eq!(level(&["hp", "simulate", "-qq"]), Some("error"));
        assert!(Cli::try_parse_from(args(&["hp", "-v", "-q", "simulate"])).is_err());
    }
}
