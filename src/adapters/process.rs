//! Running external commands: argv (never a shell), optional stdin, a
//! timeout, captured output.
//!
//! Every command starts in its own process group, and a timeout ends the
//! whole group: `nixops` starts `ssh` grandchildren that would otherwise
//! outlive it. Because the groups are our own, a terminal's Ctrl-C or a
//! service manager's SIGTERM does not reach them: once
//! [`forward_termination_signals`] is installed, SIGINT and SIGTERM are
//! forwarded to every running group, no new command starts, and the caller
//! waits for the groups to end (a second signal, or
//! [`TERMINATION_GRACE`], ends them with SIGKILL). Each command also asks
//! the kernel to kill it if the pass dies first (`PR_SET_PDEATHSIG`), so a
//! `kill -9` of the pass cannot leave a `nixops create` running on its own.
//! This module does not interpret output or exit codes.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long commands get to end after a forwarded SIGINT/SIGTERM before
/// their groups are killed.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(20);

/// Process groups of the commands running now.
static GROUPS: Mutex<BTreeSet<libc::pid_t>> = Mutex::new(BTreeSet::new());
/// The termination signal received, or 0.
static TERMINATING: AtomicI32 = AtomicI32::new(0);
/// How many termination signals arrived.
static SIGNALS_SEEN: AtomicI32 = AtomicI32::new(0);

/// Forwards SIGINT and SIGTERM to every running command's group from now
/// on (see the module comment). Call once, before the first command.
pub fn forward_termination_signals() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let _ = TERMINATING.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
            // The first signal is passed on as it came; a second one insists.
            let forward = if SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst) == 0 { signal } else { libc::SIGKILL };
            signal_groups(forward);
        }
    });
    Ok(())
}

/// The termination signal received (SIGINT or SIGTERM), if any: the pass
/// should start nothing new and end.
pub fn termination_signal() -> Option<i32> {
    match TERMINATING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

fn signal_groups(signal: libc::c_int) {
    let groups: Vec<libc::pid_t> = GROUPS.lock().map(|g| g.iter().copied().collect()).unwrap_or_default();
    for pgid in groups {
        signal_group(pgid, signal);
    }
}

/// What a finished (or timed-out) command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// `exit status 1`, `killed by signal 9`, `timed out after 30s`.
    pub fn describe(&self) -> String {
        if self.timed_out {
            return format!("timed out after {:.0?}", self.elapsed);
        }
        match self.status {
            Some(s) => match s.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("killed by {s}"),
            },
            None => "no exit status".into(),
        }
    }

    /// The last non-empty line of stderr (NixOps 1.7 ends tracebacks with the message).
    pub fn stderr_tail(&self) -> &str {
        self.stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
    }

    /// Why a command failed, for messages: `exit status 1: <stderr tail>`,
    /// or only the status when the command printed nothing on stderr.
    pub fn failure_detail(&self) -> String {
        match self.stderr_tail() {
            "" => self.describe(),
            tail => format!("{}: {tail}", self.describe()),
        }
    }
}

/// A command could not be started at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{program}`: {source}")]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: std::io::Error,
}

/// Runs `argv` with `stdin` (if any) in `dir` (if any), waiting at most `timeout`.
pub fn run(
    argv: &[String],
    stdin: Option<&[u8]>,
    dir: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<Output, SpawnError> {
    let program = argv.first().cloned().unwrap_or_default();
    if let Some(signal) = termination_signal() {
        let source = std::io::Error::other(format!("not started: the pass received signal {signal}"));
        return Err(SpawnError { program, source });
    }
    let mut cmd = Command::new(&program);
    cmd.args(&argv[argv.len().min(1)..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    // SAFETY: getpid before the fork; in the child only prctl, getppid and
    // raise, which are async-signal-safe system calls.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            // Die with the pass. If it died before this line, die now.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    let start = Instant::now();
    // Registered while the group lock is held, so a signal arriving right
    // now is forwarded to this group too.
    let mut child = {
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn().map_err(|source| SpawnError { program: program.clone(), source })?;
        groups.insert(child.id() as libc::pid_t);
        child
    };
    let pgid = child.id() as libc::pid_t;
    if let Some(signal) = termination_signal() {
        signal_group(pgid, signal);
    }

    // Feed stdin and drain both pipes on threads so a chatty child never
    // blocks on a full pipe while we wait for it.
    let writer = stdin.map(|data| {
        let data = data.to_vec();
        let mut pipe = child.stdin.take();
        std::thread::spawn(move || {
            if let Some(p) = pipe.as_mut() {
                let _ = p.write_all(&data);
            }
        })
    });
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });

    let mut timed_out = false;
    let mut interrupted_at: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                timed_out = true;
                kill_group(pgid);
                break child.wait().ok();
            }
            Ok(None) => {
                if termination_signal().is_some() {
                    let since = *interrupted_at.get_or_insert_with(Instant::now);
                    if since.elapsed() >= TERMINATION_GRACE {
                        kill_group(pgid);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => break None,
        }
    };
    // The group may hold grandchildren that keep the pipes open; end them so
    // the readers see end of file.
    kill_group(pgid);
    if let Ok(mut groups) = GROUPS.lock() {
        groups.remove(&pgid);
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    Ok(Output { status, stdout, stderr, timed_out, elapsed: start.elapsed() })
}

/// Sends SIGKILL to a process group we created.
fn kill_group(pgid: libc::pid_t) {
    signal_group(pgid, libc::SIGKILL);
}

/// Sends `signal` to a process group we created. Never called with a
/// non-positive id: `kill(-0)` or `kill(-1)` would reach far more than ours.
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    if pgid > 1 {
        // SAFETY: killpg only sends a signal; the group is one we created.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn captures_output_and_status() {
        let out = run(&sh("echo out; echo err >&2; exit 3"), None, None, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr_tail(), "err");
        assert_eq!(out.describe(), "exit status 3");
        assert_eq!(out.failure_detail(), "exit status 3: err");
        let silent = run(&sh("exit 4"), None, None, Duration::from_secs(10)).unwrap();
        assert_eq!(silent.failure_detail(), "exit status 4");
        assert!(!out.success());
    }

    #[test]
    fn feeds_stdin() {
        let out = run(&sh("cat"), Some(b"hello"), None, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, "hello");
        assert!(out.success());
    }

    #[test]
    fn a_hanging_command_and_its_grandchildren_are_ended() {
        let out = run(&sh("sleep 30 & sleep 30; echo never"), None, None, Duration::from_millis(200)).unwrap();
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(10));
        assert!(out.describe().starts_with("timed out"));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let e = run(&["/nonexistent/prog".to_string()], None, None, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/prog"));
    }
}
