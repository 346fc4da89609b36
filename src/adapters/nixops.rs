//! Driving NixOps through its command line (`nixopsCommand`, default
//! `nixops`): the inventory from `nixops export --all`, health checks with
//! `nixops check`, and the commands that change the fleet (create +
//! set-args, start, deploy + keep-alive touch, stop, destroy + delete).
//!
//! This module turns NixOps's documented output into [`Fleet`] and its exit
//! statuses into [`CommandError`]s that name the command, its exit status
//! and the tail of its stderr. It does not decide which command to run, in
//! what order or in parallel (see `driver`), and it never answers NixOps's
//! confirmation questions other than with `--confirm` on the commands the
//! engine asked for.

use super::process::{self, Output};
use crate::model::{Deployment, Fleet, MachineState};
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// A NixOps command that failed, timed out or could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The command line, for the log.
    pub command: String,
    /// `exit status 1: error: ...`, `timed out after 30s: ...`, `cannot run ...`.
    pub detail: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed: {}", self.command, self.detail)
    }
}

impl std::error::Error for CommandError {}

/// What `nixops check -d NAME` found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Exit 0: the machine exists, is up and reachable.
    Healthy,
    /// A non-zero exit read as NixOps's bitmask (1 missing, 2 not up,
    /// 4 unreachable, 8 disks, 16 failed units).
    Problems(u8),
    /// The check itself failed (an error message, a traceback, a timeout):
    /// nothing is learnt, the recorded state stands.
    Failed(CommandError),
}

impl CheckOutcome {
    /// The state a check result forces on a machine recorded as up, if any.
    pub fn corrected_state(&self) -> Option<MachineState> {
        match self {
            CheckOutcome::Problems(bits) if bits & 1 != 0 => Some(MachineState::Missing),
            CheckOutcome::Problems(bits) if bits & 4 != 0 => Some(MachineState::Unreachable),
            _ => None,
        }
    }
}

/// The `nixops` command line with the timeouts the config gives it.
#[derive(Debug, Clone)]
pub struct NixOps {
    pub argv: Vec<String>,
    pub command_timeout: Duration,
    pub deploy_timeout: Duration,
}

/// A Nix string literal, as `nixops set-args --argstr` stores an argument:
/// `tag` becomes `"tag"`.
pub fn nix_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a Nix string literal (the inverse of [`nix_string`]), or
/// `None` if `expr` is another kind of expression.
pub fn parse_nix_string(expr: &str) -> Option<String> {
    let inner = expr.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// The top-level object of `export --all`, its deployments in the order
/// NixOps printed them (a `serde_json::Map` would sort them by UUID).
struct InOrder(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for InOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = InOrder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of deployments by UUID")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<InOrder, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(InOrder(entries))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A deployment in the NixOps state that is not tagged ours: someone
/// else's, or one of ours half made (a `nixops create` that stopped before
/// naming it, or a pass that stopped before `set-args` tagged it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untagged {
    pub uuid: String,
    /// `None` for a deployment whose `create` stopped before naming it.
    pub name: Option<String>,
    /// Its network expressions (`nixExprs`).
    pub nix_exprs: Vec<String>,
    /// Whether it has any arguments at all (ours get `type` and `tag`).
    pub has_args: bool,
    /// Whether it has any resource (a machine that may cost money).
    pub has_resources: bool,
}

/// Everything `nixops export --all` says: our fleet, and the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub fleet: Fleet,
    pub untagged: Vec<Untagged>,
}

/// Reads `nixops export --all` output: the deployments whose `tag` argument
/// is `tag` become the fleet, in the order NixOps printed them (the order
/// the original took reuse candidates in, as far as the command line shows
/// it), and every other deployment name goes to `other_deployment_names`.
/// Memory is left empty (the state file has it).
///
/// NixOps prints every value as a string and leaves out attributes at their
/// default, so a machine resource without `state` (or a deployment that was
/// never deployed and has no machine at all) is MISSING.
pub fn parse_export(text: &str, tag: &str) -> Result<Fleet, String> {
    parse_inventory(text, tag).map(|i| i.fleet)
}

/// [`parse_export`], keeping the untagged deployments too.
pub fn parse_inventory(text: &str, tag: &str) -> Result<Inventory, String> {
    let top: InOrder = serde_json::from_str(text).map_err(|e| format!("not JSON of deployments by UUID ({e})"))?;
    let wanted_tag = nix_string(tag);
    let mut fleet = Fleet::default();
    let mut untagged = vec![];
    for (uuid, body) in &top.0 {
        let Value::Object(dep) = body else {
            return Err(format!("deployment {uuid} is not an object"));
        };
        let name = text_field(dep, "name").filter(|n| !n.is_empty());
        let shown = name.clone().unwrap_or_default();
        let args = match dep.get("args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(format!("deployment {shown} ({uuid}): `args` is not a JSON object text")),
            },
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(format!("deployment {shown} ({uuid}): `args` is not a JSON object text")),
        };
        let is_ours = args.get("tag").and_then(Value::as_str) == Some(wanted_tag.as_str());
        // A deployment without a name is only reachable by UUID: never part
        // of the fleet (we always name ours), but possibly a half-made one.
        let (Some(name), true) = (name.clone(), is_ours) else {
            if let Some(name) = &name {
                fleet.other_deployment_names.insert(name.clone());
            }
            let nix_exprs = match dep.get("nixExprs") {
                Some(Value::String(s)) => serde_json::from_str::<Vec<String>>(s).unwrap_or_else(|_| vec![s.clone()]),
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
                _ => vec![],
            };
            let has_resources = matches!(dep.get("resources"), Some(Value::Object(r)) if !r.is_empty());
            untagged.push(Untagged { uuid: uuid.clone(), name, nix_exprs, has_args: !args.is_empty(), has_resources });
            continue;
        };
        let machine_type = match args.get("type").and_then(Value::as_str) {
            Some(expr) => parse_nix_string(expr).unwrap_or_else(|| expr.to_string()),
            None => String::new(),
        };
        let machine = match dep.get("resources") {
            Some(Value::Object(resources)) => match resources.get("machine") {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            _ => None,
        };
        let mut deployment = Deployment {
            name: name.as_str().into(),
            machine_type: machine_type.into(),
            state: MachineState::Missing,
            recorded_state: None,
            launch_time: None,
            public_ip: None,
            host_key: None,
            memory: Default::default(),
        };
        if let Some(m) = machine {
            deployment.state = match text_field(m, "state") {
                None => MachineState::Missing,
                Some(code) => code
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .and_then(MachineState::from_nixops_code)
                    .ok_or_else(|| format!("deployment {name}: machine state `{code}` is not a NixOps state"))?,
            };
            deployment.launch_time = text_field(m, "startTime").and_then(|t| t.trim().parse::<i64>().ok());
            deployment.public_ip = text_field(m, "publicIpv4").filter(|s| !s.is_empty());
            deployment.host_key = text_field(m, "ec2.publicHostKey")
                .or_else(|| {
                    m.iter()
                        .find(|(k, _)| k.ends_with(".publicHostKey") || *k == "publicHostKey")
                        .and_then(|(_, v)| v.as_str().map(String::from))
                })
                .filter(|s| !s.is_empty());
        }
        fleet.deployments.push(deployment);
    }
    Ok(Inventory { fleet, untagged })
}

/// A field NixOps printed as a string (numbers are accepted too).
fn text_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether stderr shows NixOps failing rather than `check` reporting:
/// 1.5 prints `error: ...`, 1.7 a Python traceback.
fn looks_like_error(stderr: &str) -> bool {
    stderr.lines().any(|l| l.starts_with("error:") || l.starts_with("Traceback (most recent call last)"))
}

/// What a finished `nixops check` said, from its exit code (`None`: killed
/// by a signal), whether it timed out, and its output: `None` when the check
/// itself failed (the caller names the command).
pub fn classify_check(code: Option<i32>, timed_out: bool, _stdout: &str, stderr: &str) -> Option<CheckOutcome> {
    match code {
        _ if timed_out => None,
        Some(0) => Some(CheckOutcome::Healthy),
        Some(code @ 1..=31) if !looks_like_error(stderr) => Some(CheckOutcome::Problems(code as u8)),
        _ => None,
    }
}

impl NixOps {
    fn argv_for(&self, args: &[&str]) -> Vec<String> {
        self.argv.iter().cloned().chain(args.iter().map(|a| a.to_string())).collect()
    }

    /// Runs one nixops command; anything but exit 0 is a [`CommandError`].
    fn run(&self, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
        let out = self.run_raw(args, timeout)?;
        if out.success() { Ok(out) } else { Err(failure(&self.argv_for(args), &out)) }
    }

    fn run_raw(&self, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
        let argv = self.argv_for(args);
        tracing::debug!(command = %argv.join(" "), "running");
        process::run(&argv, None, None, timeout)
            .map_err(|e| CommandError { command: argv.join(" "), detail: e.to_string() })
    }

    /// Every deployment in the NixOps state, read with `export --all`.
    pub fn inventory(&self, tag: &str) -> Result<Fleet, CommandError> {
        self.full_inventory(tag).map(|i| i.fleet)
    }

    /// [`NixOps::inventory`] with the untagged deployments.
    pub fn full_inventory(&self, tag: &str) -> Result<Inventory, CommandError> {
        let out = self.run(&["export", "--all"], self.command_timeout)?;
        parse_inventory(&out.stdout, tag).map_err(|detail| CommandError {
            command: self.argv_for(&["export", "--all"]).join(" "),
            detail: format!("unexpected output: {detail}"),
        })
    }

    /// `nixops check -d NAME`: asks EC2 and the machine itself.
    pub fn check(&self, name: &str) -> CheckOutcome {
        let args = ["check", "-d", name];
        let out = match self.run_raw(&args, self.command_timeout) {
            Ok(out) => out,
            Err(e) => return CheckOutcome::Failed(e),
        };
        match classify_check(out.status.and_then(|s| s.code()), out.timed_out, &out.stdout, &out.stderr) {
            Some(outcome) => outcome,
            None => CheckOutcome::Failed(failure(&self.argv_for(&args), &out)),
        }
    }

    /// `nixops create -d NAME EXPR [-I ...]`.
    pub fn create(&self, name: &str, nixops_expr: &str, nix_path: &[String]) -> Result<(), CommandError> {
        let mut args = vec!["create", "-d", name, nixops_expr];
        for p in nix_path {
            args.extend(["-I", p.as_str()]);
        }
        self.run(&args, self.command_timeout).map(drop)
    }

    /// `nixops set-args -d NAME --argstr type T --argstr tag TAG`, plus
    /// `--argstr K V` for each of `extra` (a Rust runner builder's
    /// hostname, endpoint, token path): the tag argument is what makes a
    /// deployment ours, so it is set in the same command as the rest.
    pub fn set_args(
        &self,
        name: &str,
        machine_type: &str,
        tag: &str,
        extra: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), CommandError> {
        let mut args = vec!["set-args", "-d", name, "--argstr", "type", machine_type, "--argstr", "tag", tag];
        for (k, v) in extra {
            args.extend(["--argstr", k.as_str(), v.as_str()]);
        }
        self.run(&args, self.command_timeout).map(drop)
    }

    /// `nixops ssh -d NAME machine -- systemctl stop UNIT`: stops the Rust
    /// runner's builder service, which leaves the runner (its steps are
    /// aborted there and retried elsewhere). `--` keeps the unit from being
    /// read as an ssh option.
    pub fn stop_service(&self, name: &str, unit: &str) -> Result<(), CommandError> {
        self.run(&["ssh", "-d", name, "machine", "--", "systemctl", "stop", unit], self.command_timeout).map(drop)
    }

    /// `nixops modify -d UUID --name NAME EXPR [-I ...]`: names a deployment
    /// whose `create` stopped before it could (modify also resets the
    /// expressions and path, so they are given again).
    pub fn name_deployment(
        &self,
        uuid: &str,
        name: &str,
        nixops_expr: &str,
        nix_path: &[String],
    ) -> Result<(), CommandError> {
        let mut args = vec!["modify", "-d", uuid, "--name", name, nixops_expr];
        for p in nix_path {
            args.extend(["-I", p.as_str()]);
        }
        self.run(&args, self.command_timeout).map(drop)
    }

    /// `nixops start -d NAME`.
    pub fn start(&self, name: &str) -> Result<(), CommandError> {
        self.run(&["start", "-d", name], self.command_timeout).map(drop)
    }

    /// `nixops deploy -d NAME --check [-I ...] -I hydra-provisioner=<config dir>`,
    /// then the keep-alive touch. The deploy is bounded by `timeout`.
    pub fn deploy(
        &self,
        name: &str,
        nix_path: &[String],
        config_dir: &Path,
        timeout: Duration,
    ) -> Result<(), CommandError> {
        let own_path = format!("hydra-provisioner={}", config_dir.display());
        let mut args = vec!["deploy", "-d", name, "--check"];
        for p in nix_path {
            args.extend(["-I", p.as_str()]);
        }
        args.extend(["-I", own_path.as_str()]);
        self.run(&args, timeout)?;
        self.touch_keep_alive(name)
    }

    /// `nixops ssh -d NAME machine touch /run/keep-alive`: feeds the
    /// builder's dead man's switch (nix/auto-shutdown.nix).
    pub fn touch_keep_alive(&self, name: &str) -> Result<(), CommandError> {
        self.run(&["ssh", "-d", name, "machine", "touch", "/run/keep-alive"], self.command_timeout).map(drop)
    }

    /// `nixops stop -d NAME --confirm`.
    pub fn stop(&self, name: &str) -> Result<(), CommandError> {
        self.run(&["stop", "-d", name, "--confirm"], self.command_timeout).map(drop)
    }

    /// `nixops destroy -d NAME --confirm`, then `nixops delete -d NAME`.
    pub fn destroy_and_delete(&self, name: &str) -> Result<(), CommandError> {
        self.run(&["destroy", "-d", name, "--confirm"], self.command_timeout)?;
        self.delete(name)
    }

    /// `nixops delete -d NAME` (refused by NixOps while resources remain).
    pub fn delete(&self, name: &str) -> Result<(), CommandError> {
        self.run(&["delete", "-d", name], self.command_timeout).map(drop)
    }
}

fn failure(argv: &[String], out: &Output) -> CommandError {
    CommandError { command: argv.join(" "), detail: out.failure_detail() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"{
      "1111": {"name": "hydra-provisioned-0", "nixExprs": "[\"/etc/d.nix\"]",
               "args": "{\"tag\": \"\\\"hydra-provisioned\\\"\", \"type\": \"\\\"x86_64-linux\\\"\"}",
               "resources": {"machine": {"type": "ec2", "state": "3", "startTime": "1700000000",
                 "publicIpv4": "10.0.0.1", "ec2.publicHostKey": "ssh-ed25519 AAAA"}}},
      "2222": {"name": "hydra-provisioned-1",
               "args": "{\"tag\": \"\\\"hydra-provisioned\\\"\", \"type\": \"\\\"aarch64-linux\\\"\"}",
               "resources": {"machine": {"type": "ec2", "startTime": "1700000000"}}},
      "3333": {"name": "website", "resources": {}},
      "4444": {"name": "hydra-provisioned-2", "args": "{\"tag\": \"\\\"other\\\"\"}"},
      "5555": {"resources": {}}
    }"#;

    #[test]
    fn export_splits_ours_from_the_rest() {
        let fleet = parse_export(EXPORT, "hydra-provisioned").unwrap();
        assert_eq!(fleet.deployments.len(), 2);
        let d0 = &fleet.deployments[0];
        assert_eq!(
            (d0.name.as_str(), d0.machine_type.as_str(), d0.state),
            ("hydra-provisioned-0", "x86_64-linux", MachineState::Up)
        );
        assert_eq!(d0.launch_time, Some(1_700_000_000));
        assert_eq!(d0.public_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(d0.host_key.as_deref(), Some("ssh-ed25519 AAAA"));
        // No `state` key: NixOps left out the default, MISSING.
        assert_eq!(fleet.deployments[1].state, MachineState::Missing);
        assert_eq!(
            fleet.other_deployment_names.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["hydra-provisioned-2", "website"]
        );
    }

    #[test]
    fn export_keeps_the_order_nixops_printed() {
        let ours = |uuid: &str, n: u32| {
            format!(r#""{uuid}": {{"name": "t-{n}", "args": "{{\"tag\": \"\\\"t\\\"\"}}", "resources": {{}}}}"#)
        };
        let text = format!("{{{}, {}, {}}}", ours("ffff", 7), ours("0000", 3), ours("8888", 5));
        let fleet = parse_export(&text, "t").unwrap();
        let names: Vec<&str> = fleet.deployments.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["t-7", "t-3", "t-5"]);
    }

    #[test]
    fn garbled_export_is_an_error() {
        assert!(parse_export("[]", "t").is_err());
        assert!(parse_export("{\"u\": {\"name\": \"t-0\", \"args\": \"{\\\"tag\\\": \\\"\\\\\\\"t\\\\\\\"\\\"}\", \"resources\": {\"machine\": {\"state\": \"9\"}}}}", "t").is_err());
        assert!(parse_export("not json", "t").is_err());
    }

    #[test]
    fn nix_strings_round_trip() {
        for s in ["x86_64-linux:big-parallel,kvm", "a\"b", "back\\slash", "${x}", "plain$"] {
            assert_eq!(parse_nix_string(&nix_string(s)).as_deref(), Some(s), "{s}");
        }
        assert_eq!(nix_string("tag"), "\"tag\"");
        assert_eq!(parse_nix_string("./x.nix"), None);
    }

    fn nixops_printing(script: &str) -> NixOps {
        // `sh -c SCRIPT sh` ignores the nixops arguments appended after it.
        let argv = ["/bin/sh", "-c", script, "sh"].map(String::from).to_vec();
        NixOps { argv, command_timeout: Duration::from_secs(10), deploy_timeout: Duration::from_secs(10) }
    }

    #[test]
    fn check_tells_a_bitmask_from_an_error() {
        assert_eq!(nixops_printing("echo 'machine> missing'; exit 1").check("d"), CheckOutcome::Problems(1));
        assert_eq!(nixops_printing("exit 0").check("d"), CheckOutcome::Healthy);
        let e = nixops_printing("echo \"error: could not find specified deployment in state file 'd'\" >&2; exit 1")
            .check("d");
        assert!(
            matches!(&e, CheckOutcome::Failed(e) if e.detail == "exit status 1: error: could not find specified deployment in state file 'd'"),
            "{e:?}"
        );
        let e = nixops_printing("printf 'Traceback (most recent call last):\\n  File x\\nKeyError: 3\\n' >&2; exit 1")
            .check("d");
        assert!(
            matches!(&e, CheckOutcome::Failed(e) if e.detail.ends_with("KeyError: 3") && e.command.ends_with("check -d d")),
            "{e:?}"
        );
    }

    #[test]
    fn check_bits_correct_the_state() {
        assert_eq!(CheckOutcome::Problems(1).corrected_state(), Some(MachineState::Missing));
        assert_eq!(CheckOutcome::Problems(6).corrected_state(), Some(MachineState::Unreachable));
        assert_eq!(CheckOutcome::Problems(16).corrected_state(), None);
        assert_eq!(CheckOutcome::Healthy.corrected_state(), None);
    }
}
