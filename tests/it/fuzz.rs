//! Fuzz tests on stable: proptest feeds every input the program reads from
//! outside (config JSON and TOML, status documents of every era, the Rust
//! runner's `/status`, fleet files, `nixops export` and `check` output,
//! trace rows, scenario and sweep files) and `engine::decide` arbitrary
//! observations, with overflow checks on (the test profile has them). The
//! only property of most of them is "an answer, never a panic"; some add
//! what must hold of the answer. FUZZING.md records the longer libFuzzer
//! runs of the same inputs (`fuzz/`) and what they found.
//!
//! Case counts keep the whole file to a few seconds; raise them with
//! `PROPTEST_CASES=100000 cargo test --test it fuzz::` for a longer run.

use hydra_provisioner::adapters::nixops::{classify_check, parse_export};
use hydra_provisioner::adapters::queue::{parse_rfc3339, parse_rust_status};
use hydra_provisioner::billing::BillingModel;
use hydra_provisioner::config::{self, Config};
use hydra_provisioner::engine::{Action, Command, decide};
use hydra_provisioner::model::{
    BuilderStatus, Deployment, Fleet, MachineMemory, MachineState, MachineType, Observation, QueueHealth, QueueStatus,
    TypeStatus,
};
use hydra_provisioner::policy::sweep::{Base, Sweep};
use hydra_provisioner::sim::Scenario;
use hydra_provisioner::status::parse_status;
use hydra_provisioner::trace::{StepSource, TraceReader};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::Path;

/// `n` cases, or `PROPTEST_CASES` for a longer run.
fn cases(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Numbers where arithmetic goes wrong.
fn edge_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MIN + 1),
        Just(i64::MAX),
        Just(i64::MAX - 1),
        Just(0),
        Just(-1),
        Just(1),
        Just(1_700_000_000),
        Just(-3600),
        any::<i64>(),
        -100_000i64..100_000,
    ]
}

fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(i64::MAX as u64 + 1),
        Just(0u64),
        Just(1),
        any::<u64>(),
        0u64..1000
    ]
}

fn edge_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1e308),
        Just(-1e308),
        Just(f64::MIN_POSITIVE),
        Just(-0.0),
        Just(0.5),
        Just(9.3e18),
        Just(-9.3e18),
        any::<f64>().prop_filter("JSON has no nan or inf", |f| f.is_finite()),
    ]
}

/// Strings that tend to break parsers: multibyte characters at byte
/// offsets that matter, control characters, `#`, shell and option syntax.
fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("up".to_string()),
        Just("down".to_string()),
        Just("2024-01-01T00:00:00+1é00".to_string()),
        Just("2024-01-01T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:60.999999999-23:59".to_string()),
        Just("-rf".to_string()),
        Just("a#b c".to_string()),
        Just("\u{0}\u{7}\n".to_string()),
        Just("x86_64-linux".to_string()),
        Just("i686-linux:kvm".to_string()),
        Just("\"hydra-provisioned\"".to_string()),
        "[a-z0-9:,_.#@/ -]{0,12}",
        ".{0,16}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_i64().prop_map(|n| json!(n)),
        edge_u64().prop_map(|n| json!(n)),
        edge_f64().prop_map(|f| json!(f)),
        edge_string().prop_map(Value::String),
    ]
}

/// Any JSON value, keys drawn from `keys` most of the time.
fn arb_json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (prop_oneof![4 => proptest::sample::select(keys).prop_map(String::from), 1 => edge_string()], inner),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Every key a configuration knows, and two machine types.
static CONFIG_KEYS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    config::TOP_KEYS.iter().chain(config::TYPE_KEYS).copied().chain(["x86_64-linux", "x86_64-linux:kvm"]).collect()
});

const STATUS_KEYS: &[&str] = &[
    "status",
    "time",
    "uptime",
    "nrActiveSteps",
    "nrRunnableSteps",
    "machineTypes",
    "machines",
    "jobsets",
    "x86_64-linux",
    "i686-linux",
    "i686-linux:kvm",
    "x86_64-linux:kvm",
    "runnable",
    "running",
    "lastActive",
    "root@10.0.0.1",
    "ssh://root@10.0.0.1",
    "enabled",
    "currentJobs",
    "idleSince",
];

/// A configuration with every value at the largest its validation allows.
fn widest_config(quirks: &str, drain: bool) -> Config {
    config::parse(
        &json!({
            "quirks": quirks, "drainBeforeDestroy": drain,
            "deployConcurrency": config::MAX_DEPLOY_CONCURRENCY, "maxCreationsPerPass": config::MAX_CREATIONS_PER_PASS,
            "drainDelay": config::MAX_DURATION, "restartGuard": config::MAX_DURATION,
            "redeployInterval": config::MAX_DURATION, "keepPaidThreshold": config::MAX_DURATION,
            "destroyPaidThreshold": config::MAX_DURATION,
            "systemTypes": {
                "x86_64-linux": {"nixopsExpr": "/d", "maxMachines": config::MAX_MACHINES,
                    "minMachines": config::MAX_MACHINES, "gracePeriod": config::MAX_DURATION, "runnablesPerMachine": 1},
                "x86_64-linux:kvm": {"nixopsExpr": "/d", "maxMachines": 3, "gracePeriod": 0, "stopOnIdle": true,
                    "billing": "per-second"}
            }
        }),
        "fuzz",
        None,
    )
    .unwrap()
    .0
}

fn arb_state() -> impl Strategy<Value = MachineState> {
    (0i64..8).prop_map(|c| MachineState::from_nixops_code(c).unwrap())
}

fn arb_memory() -> impl Strategy<Value = MachineMemory> {
    (
        any::<u32>(),
        any::<bool>(),
        proptest::option::of(edge_i64()),
        any::<bool>(),
        proptest::option::of(edge_i64()),
        proptest::option::of(edge_i64()),
        proptest::option::of(edge_i64()),
        proptest::option::of(edge_i64()),
    )
        .prop_map(
            |(
                deploy_failures,
                fingerprint,
                deployed_at,
                listed,
                delisted_at,
                idle_since,
                no_address_since,
                not_running_since,
            )| MachineMemory {
                deploy_failures: deploy_failures % 8,
                deployed_fingerprint: fingerprint.then(|| "0".repeat(16).into()),
                deployed_at,
                listed,
                delisted_at,
                idle_since,
                no_address_since,
                not_running_since,
            },
        )
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    let deployment = (
        0usize..4,
        arb_state(),
        proptest::option::of(edge_i64()),
        prop_oneof![Just(None), (0u8..12).prop_map(|i| Some(format!("10.0.0.{i}"))), Just(Some("a#b".to_string()))],
        arb_memory(),
        proptest::option::of(arb_state()),
    );
    (
        0u8..6,
        edge_i64(),
        proptest::option::of(edge_i64()),
        proptest::collection::vec((0usize..3, edge_u64(), edge_u64(), proptest::option::of(edge_i64())), 0..4),
        proptest::collection::vec((0u8..12, any::<bool>(), edge_u64(), proptest::option::of(edge_i64())), 0..8),
        proptest::collection::vec(deployment, 0..8),
        any::<bool>(),
        proptest::option::of(edge_u64()),
    )
        .prop_map(|(health, uptime, time, types, builders, deps, machines_known, active)| {
            let mut status = QueueStatus::down("fuzz");
            status.health = match health {
                0 => QueueHealth::Down { detail: "down".into() },
                1 => QueueHealth::Unknown { detail: "garbled".into() },
                _ => QueueHealth::Up,
            };
            status.uptime = uptime;
            status.time = time;
            status.has_machine_types = health != 2;
            status.machines_known = machines_known;
            status.active_steps = active;
            const KEYS: [&str; 3] = ["x86_64-linux", "x86_64-linux:kvm", "aarch64-linux"];
            for (k, runnable, running, last_active) in types {
                status.machine_types.insert(KEYS[k].into(), TypeStatus { runnable, running, last_active });
            }
            for (i, enabled, current_jobs, idle_since) in builders {
                status.machines.insert(format!("10.0.0.{i}"), BuilderStatus { enabled, current_jobs, idle_since });
            }
            const TYPES: [&str; 4] = ["x86_64-linux", "x86_64-linux:kvm", "sparc-linux", "kvm,x86_64-linux"];
            let deployments = deps
                .into_iter()
                .enumerate()
                .map(|(i, (ty, state, launch_time, public_ip, memory, recorded_state))| Deployment {
                    name: format!("hydra-provisioned-{}", i % 6).into(),
                    machine_type: TYPES[ty].into(),
                    state,
                    recorded_state,
                    launch_time,
                    public_ip,
                    host_key: None,
                    memory,
                })
                .collect();
            let other_deployment_names = ["hydra-provisioned-0".to_string()].into();
            Observation { status, fleet: Fleet { deployments, other_deployment_names } }
        })
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Config validation: an answer for any JSON, and whatever it accepts
    /// is within the documented bounds.
    #[test]
    fn config_json(value in arb_json(&CONFIG_KEYS)) {
        if let Ok((c, _)) = config::parse(&value, "fuzz", None) {
            prop_assert!(config::valid_tag(&c.tag));
            prop_assert!((1..=config::MAX_DEPLOY_CONCURRENCY).contains(&c.deploy_concurrency));
            prop_assert!((0..=config::MAX_DURATION).contains(&c.drain_delay));
            for t in c.system_types.values() {
                prop_assert!(t.max_machines <= config::MAX_MACHINES && t.min_machines <= config::MAX_MACHINES);
                prop_assert!(t.max_creations_per_pass <= config::MAX_CREATIONS_PER_PASS);
                prop_assert!((0..=config::MAX_DURATION).contains(&t.grace_period));
                prop_assert!(config::machines_file_word(&t.ssh_key));
            }
        }
    }

    /// The C++ runner's status of every era; sections that cannot describe
    /// machines make them unknown, never idle.
    #[test]
    fn status_documents(value in arb_json(STATUS_KEYS), up in any::<bool>()) {
        let mut value = value;
        if let (Value::Object(o), true) = (&mut value, up) {
            o.insert("status".into(), json!("up"));
        }
        let text = value.to_string();
        if let Ok(s) = parse_status(&text, "fuzz") {
            let machines = value.get("machines");
            let describes = matches!(machines, Some(Value::Object(m)) if !m.is_empty());
            if s.is_up() && !describes {
                prop_assert!(!s.machines_known, "machines section {machines:?} read as known");
            }
        }
    }

    /// The same documents as raw text, truncated anywhere.
    #[test]
    fn status_text(value in arb_json(STATUS_KEYS), cut in any::<prop::sample::Index>()) {
        let text = value.to_string();
        let end = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).nth(cut.index(text.len() + 1)).unwrap_or(0);
        let _ = parse_status(&text[..end], "fuzz");
    }

    /// The Rust runner's `/status`, times included.
    #[test]
    fn rust_runner_status(
        runner in arb_json(&["status", "time", "uptime", "queueStats", "x86_64-linux", "i686-linux",
                             "activeRunnable", "totalRunnable"]),
        machines in arb_json(&["stats", "currentJobs", "builder-1"]),
        time in edge_string(),
    ) {
        let mut runner = runner;
        if let Value::Object(o) = &mut runner {
            o.insert("status".into(), json!("up"));
            o.insert("time".into(), json!(time));
        }
        let _ = parse_rust_status(&json!({"queueRunner": runner, "machines": machines}).to_string());
        let _ = parse_rfc3339(&time);
    }

    /// `nixops export --all` output.
    #[test]
    fn nixops_export(
        deployments in proptest::collection::vec(
            (proptest::option::of(edge_string()), arb_json(&["tag", "type"]), arb_json(&["machine", "state", "startTime",
                "publicIpv4", "ec2.publicHostKey"]), any::<bool>()), 0..5),
    ) {
        let mut top = Map::new();
        for (i, (name, args, resources, args_as_text)) in deployments.into_iter().enumerate() {
            let mut d = Map::new();
            if let Some(name) = name {
                d.insert("name".into(), json!(name));
            }
            d.insert("args".into(), if args_as_text { json!(args.to_string()) } else { args });
            d.insert("resources".into(), resources);
            top.insert(format!("uuid-{i}"), Value::Object(d));
        }
        let _ = parse_export(&Value::Object(top).to_string(), "hydra-provisioned");
    }

    /// `nixops check`: any exit status and output is healthy, a bitmask, or
    /// a failed check; never a panic.
    #[test]
    fn nixops_check(code in proptest::option::of(any::<i32>()), stdout in ".{0,40}", stderr in ".{0,80}", timed_out in any::<bool>()) {
        let _ = classify_check(code, timed_out, &stdout, &stderr);
    }

    /// Fleet files as `plan --fleet` reads them, then decided on.
    #[test]
    fn fleet_files(value in arb_json(&["deployments", "other_deployment_names", "name", "machine_type", "state",
        "launch_time", "public_ip", "memory", "listed", "delisted_at", "idle_since", "deployed_at"])) {
        if let Ok(fleet) = serde_json::from_value::<Fleet>(value) {
            let status = QueueStatus::down("fuzz");
            let _ = decide(&widest_config("fixed", true), &Observation { status, fleet }, 1_700_000_000);
        }
    }

    /// Billing at the ends of the clock: never a panic, never negative.
    #[test]
    fn billing(launch in edge_i64(), now in edge_i64(), start in edge_i64(), end in edge_i64()) {
        for m in [BillingModel::Hourly, BillingModel::PerSecond] {
            prop_assert!(m.paid_time_left(Some(launch), now) >= 0);
            prop_assert!(m.billed_seconds(start, end) >= 0);
            prop_assert!(m.billed_millis(start, end) >= 0);
            let _ = m.paid_until(launch, now);
        }
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    /// `decide` over arbitrary observations with the widest configuration:
    /// total, bounded creations, one decision per deployment, and no stop
    /// or destroy of a machine that may be building.
    #[test]
    fn decide_over_arbitrary_observations(obs in arb_observation(), now in edge_i64(), original in any::<bool>(), drain in any::<bool>()) {
        let config = widest_config(if original { "original" } else { "fixed" }, drain);
        let plan = decide(&config, &obs, now);
        let creates = plan.commands.iter().filter(|c| matches!(c, Command::Create { .. })).count();
        prop_assert!(creates <= 2 * config::MAX_CREATIONS_PER_PASS as usize);
        for d in &obs.fleet.deployments {
            prop_assert!(plan.machines.iter().any(|m| m.deployment == d.name));
        }
        let names: BTreeSet<&str> = obs.fleet.deployments.iter().map(|d| d.name.as_str()).collect();
        for m in &plan.machines {
            if matches!(m.action, Action::Stop | Action::Destroy) {
                let d = obs.fleet.deployments.iter().find(|d| d.name == m.deployment).unwrap();
                let busy = d.public_ip.as_deref().and_then(|ip| obs.status.machines.get(ip)).is_some_and(|b| b.current_jobs > 0);
                if !original {
                    prop_assert!(!busy, "{} is busy and was given {:?}", d.name, m.action);
                }
                // Listed (so its history cannot show it idle), absent from a
                // status without machines, with steps running.
                let unknown = obs.status.is_up() && !obs.status.machines_known
                    && d.public_ip.as_deref().is_none_or(|ip| !obs.status.machines.contains_key(ip))
                    && obs.status.active_steps != Some(0) && !nothing_of_its_systems_runs(&obs, d) && d.memory.listed
                    && !matches!(d.state, MachineState::Missing | MachineState::Stopped);
                prop_assert!(!unknown, "{} stopped or destroyed while its activity is unknown", d.name);
                prop_assert!(names.contains(m.deployment.as_str()));
            }
        }
    }
}

/// Whether the status's machine types show nothing running on any system
/// of `d` (then the engine may read a machine absent from it as idle).
fn nothing_of_its_systems_runs(obs: &Observation, d: &Deployment) -> bool {
    let Ok(own) = MachineType::parse(&d.machine_type) else { return false };
    !obs.status.machine_types.is_empty()
        && obs.status.machine_types.iter().all(|(k, t)| {
            t.running == 0 || MachineType::parse(k).is_ok_and(|k| !k.systems.iter().any(|s| own.systems.contains(s)))
        })
}

const TRACE_HEADER: &str =
    "step_id,submitted_at,system,features,jobset,build_id,priority,global_priority,depends_on,duration,outcome";

fn trace_field() -> impl Strategy<Value = String> {
    prop_oneof![
        edge_string(),
        edge_i64().prop_map(|n| n.to_string()),
        edge_u64().prop_map(|n| n.to_string()),
        edge_f64().prop_map(|f| f.to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("1e400".to_string()),
        Just("\"a,b\"".to_string()),
        (0u64..5).prop_map(|n| n.to_string()),
    ]
}

proptest! {
    #![proptest_config(cases(1500))]

    /// Trace rows: each an answer (a row or an error naming file:line:column).
    #[test]
    fn trace_rows(rows in proptest::collection::vec(proptest::collection::vec(trace_field(), 0..13), 0..6), header in any::<bool>()) {
        let mut text = if header { format!("{TRACE_HEADER}\n") } else { String::new() };
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        let mut reader = TraceReader::new(text.as_bytes(), "fuzz.csv");
        for _ in 0..10 {
            match reader.next_step() {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    prop_assert!(e.to_string().starts_with("fuzz.csv:"));
                    break;
                }
                None => break,
            }
        }
    }
}

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        edge_i64().prop_map(|n| n.to_string()),
        edge_f64().prop_map(|f| format!("{f:?}")),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("4294967295".to_string()),
        Just("true".to_string()),
        Just("\"spot\"".to_string()),
        Just("\"hourly\"".to_string()),
        Just("[]".to_string()),
        edge_string().prop_map(|s| format!("{s:?}").replace("\\u{", "\\u{")),
        (0u32..100).prop_map(|n| n.to_string()),
    ]
}

const SCENARIO_KEYS: &[&str] = &[
    "seed",
    "interval",
    "horizon",
    "reload_delay",
    "epoch",
    "queue_runner_uptime",
    "era",
    "provisioner.systemTypes.\"x86_64-linux\".maxMachines",
    "provisioner.systemTypes.\"x86_64-linux\".gracePeriod",
    "provisioner.systemTypes.\"x86_64-linux\".speedFactor",
    "provisioner.deployConcurrency",
    "provisioner.maxCreationsPerPass",
    "provisioner.drainDelay",
    "cloud.\"x86_64-linux\".boot_median",
    "cloud.\"x86_64-linux\".boot_spread",
    "cloud.\"x86_64-linux\".deploy",
    "cloud.\"x86_64-linux\".market",
    "cloud.\"x86_64-linux\".spot_price",
    "cloud.\"x86_64-linux\".spot_interruptions_per_hour",
    "cloud.\"x86_64-linux\".deploy_failure_rate",
    "shares.\"p:j\"",
];

/// A valid scenario with some keys set to fuzzed values (dotted keys in
/// TOML set nested tables).
fn scenario_text(settings: &[(usize, String)], statics: &[(String, String)]) -> String {
    let mut text = String::from("trace = \"t.csv\"\n");
    let mut set = BTreeSet::new();
    for (k, v) in settings {
        let key = SCENARIO_KEYS[*k % SCENARIO_KEYS.len()];
        if set.insert(key) {
            text.push_str(&format!("{key} = {v}\n"));
        }
    }
    if !set.iter().any(|k| k.starts_with("provisioner.")) {
        text.push_str("provisioner.systemTypes.\"x86_64-linux\".maxMachines = 2\n");
    }
    if !set.iter().any(|k| k.starts_with("cloud.")) {
        text.push_str("cloud.\"x86_64-linux\".on_demand_price = 0.5\n");
    }
    for (key, v) in statics {
        text.push_str(&format!("[[static_machines]]\nname = \"s\"\nsystems = [\"x86_64-linux\"]\n{key} = {v}\n"));
    }
    text
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Scenario files: an answer, and an accepted scenario is within bounds.
    #[test]
    fn scenario_files(
        settings in proptest::collection::vec((any::<usize>(), toml_value()), 0..6),
        statics in proptest::collection::vec((prop_oneof![Just("count"), Just("max_jobs"), Just("speed_factor")].prop_map(String::from), toml_value()), 0..2),
    ) {
        let text = scenario_text(&settings, &statics);
        if let Ok(s) = Scenario::parse(&text, "fuzz.toml", Path::new("/fuzz")) {
            prop_assert!(s.static_machines.iter().all(|m| m.count <= hydra_provisioner::sim::scenario::MAX_STATIC_COUNT));
            prop_assert!(s.config.deploy_concurrency <= config::MAX_DEPLOY_CONCURRENCY);
        }
    }

    /// Sweep files, and every point applied to a base scenario.
    #[test]
    fn sweep_files(
        axes in proptest::collection::vec((prop_oneof![
            Just("maxCreationsPerPass"), Just("deployConcurrency"), Just("drainDelay"),
            Just("systemTypes.\"x86_64-linux\".maxMachines"), Just("systemTypes.\"x86_64-linux\".gracePeriod"),
            Just("systemTypes.\"x86_64-linux\".speedFactor"), Just("\"unterminated"), Just("a..b"), Just("tag"),
        ], proptest::collection::vec(toml_value(), 0..3)), 0..3),
        seeds in proptest::option::of(proptest::collection::vec(any::<u64>(), 0..3)),
    ) {
        let mut text = String::from("version = 1\nscenario = \"base.toml\"\n");
        if let Some(seeds) = seeds {
            text.push_str(&format!("seeds = {seeds:?}\n"));
        }
        for (path, values) in &axes {
            text.push_str(&format!("[[axis]]\npath = {path:?}\nvalues = [{}]\n", values.join(", ")));
        }
        let Ok(sweep) = Sweep::parse(&text, "fuzz-sweep.toml", Path::new("/fuzz")) else { return Ok(()) };
        let base = Base::parse(&scenario_text(&[], &[]), "base.toml", Path::new("/fuzz")).unwrap();
        if base.check(&sweep).is_ok() {
            for point in sweep.points().iter().take(8) {
                let _ = base.point(&sweep, point);
            }
        }
    }
}

/// A huge `runnable` plus an i686 entry overflowed in the i686 squash (and
/// in release builds read as almost no demand).
#[test]
fn the_i686_squash_saturates() {
    for (x86, i686) in [(u64::MAX, 5u64), (5, u64::MAX), (u64::MAX, u64::MAX)] {
        let doc = json!({"status": "up", "machineTypes": {
            "x86_64-linux": {"runnable": x86, "running": x86}, "i686-linux": {"runnable": i686, "running": i686}}});
        let s = parse_status(&doc.to_string(), "t").unwrap();
        assert_eq!(s.machine_types["x86_64-linux"].runnable, u64::MAX);
        assert_eq!(s.machine_types["x86_64-linux"].running, u64::MAX, "steps running as i686 run on x86_64 machines");
        let rust = json!({"queueRunner": {"status": "up", "queueStats": {
            "x86_64-linux": {"totalRunnable": x86, "activeRunnable": 0}, "i686-linux": {"totalRunnable": i686, "activeRunnable": 0}}}});
        assert_eq!(parse_rust_status(&rust.to_string()).unwrap().machine_types["x86_64-linux"].runnable, u64::MAX);
    }
}

const SIM_SCENARIO: &str = "trace = \"t.csv\"\nhorizon = 20000\n[provisioner.systemTypes.\"x86_64-linux\"]\nmaxMachines = 3\n\
[cloud.\"x86_64-linux\"]\nmarket = \"spot\"\nspot_price = 0.1\nspot_interruptions_per_hour = 2\ndeploy_failure_rate = 0.2\n\
[[static_machines]]\nname = \"s\"\nsystems = [\"x86_64-linux\"]\ncount = 2\n";

/// One trace row: (step id, submitted at, duration, depends on, outcome, jobset).
type SimRow = (u64, u32, u32, Option<u64>, u8, u8);

fn sim_row() -> impl Strategy<Value = SimRow> {
    (0u64..6, 0u32..3000, 0u32..2000, proptest::option::of(0u64..6), 0u8..3, 0u8..3)
}

fn sim_trace(rows: &[SimRow]) -> String {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r.1);
    let mut text = String::from("step_id,submitted_at,system,duration,depends_on,outcome,jobset\n");
    for (id, at, duration, dep, outcome, jobset) in rows {
        let dep = dep.filter(|d| *d != id).map_or(String::new(), |d| d.to_string());
        let outcome = ["success", "failure", "transient"][usize::from(outcome)];
        text.push_str(&format!("{id},{at},x86_64-linux,{duration},{dep},{outcome},p:j{jobset}\n"));
    }
    text
}

fn simulate(trace: &str) -> Result<(), String> {
    let scenario = Scenario::parse(SIM_SCENARIO, "fuzz.toml", Path::new("/fuzz")).unwrap();
    let mut reader = TraceReader::new(trace.as_bytes(), "fuzz.csv");
    hydra_provisioner::sim::run(&scenario, &mut reader, &mut hydra_provisioner::sim::NoObserver)
        .map(drop)
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(cases(300))]

    /// Tiny simulations of fuzzed traces (reused step ids, dependencies,
    /// retries, spot interruptions, failed deploys): a summary or an error,
    /// never a panic.
    #[test]
    fn simulations_of_fuzzed_traces(rows in proptest::collection::vec(sim_row(), 0..10)) {
        let _ = simulate(&sim_trace(&rows));
    }
}

/// Traces the simulator must take without panicking; each found by fuzzing
/// or named in the issue.
#[test]
fn simulations_of_hand_made_traces() {
    let traces = [
        // A reused step id whose dependency still runs.
        "step_id,submitted_at,system,duration,depends_on\n1,0,x86_64-linux,1000,\n2,10,x86_64-linux,10,1\n2,20,x86_64-linux,10,1\n",
        "step_id,submitted_at,system,duration,depends_on\n1,0,x86_64-linux,1000,\n1,5,x86_64-linux,10,\n2,10,x86_64-linux,10,1\n",
        // Huge durations and times.
        "step_id,submitted_at,system,duration\n1,0,x86_64-linux,8999999999999\n2,8999999999,x86_64-linux,1\n",
    ];
    for t in traces {
        let _ = simulate(t);
    }
}

/// `maxMachines` and `maxCreationsPerPass` at u32::MAX made `decide`
/// allocate one creation per machine wanted. Validation bounds them, and the
/// engine holds to the bound even for a configuration built in code.
#[test]
fn decide_allocates_no_more_than_the_creation_bound() {
    let mut config = widest_config("fixed", true);
    for t in config.system_types.values_mut() {
        t.max_machines = u32::MAX;
        t.max_creations_per_pass = 10_000_000;
    }
    let mut status = QueueStatus::down("");
    status.health = QueueHealth::Up;
    status
        .machine_types
        .insert("x86_64-linux".into(), TypeStatus { runnable: u64::MAX, running: 0, last_active: None });
    let plan = decide(&config, &Observation { status, fleet: Fleet::default() }, 1_700_000_000);
    let creates = plan.commands.iter().filter(|c| matches!(c, Command::Create { .. })).count();
    assert!(creates <= 2 * config::MAX_CREATIONS_PER_PASS as usize, "{creates} creations");
}

/// `epoch = -9223372036854775808` overflowed in the scenario's own check
/// (`abs()`); every bound names its key.
#[test]
fn scenario_bounds_name_their_key() {
    for (line, key) in [
        ("epoch = -9223372036854775808", "epoch"),
        ("interval = 1e300", "interval"),
        ("reload_delay = 1e300", "reload_delay"),
        ("provisioner.drainDelay = nan", "provisioner.drainDelay"),
        ("cloud.\"x86_64-linux\".boot_spread = 1e300", "boot_spread"),
        ("cloud.\"x86_64-linux\".deploy = 1e300", "deploy"),
    ] {
        let text = scenario_text(&[], &[]).replace("trace = \"t.csv\"\n", &format!("trace = \"t.csv\"\n{line}\n"));
        let e = Scenario::parse(&text, "s.toml", Path::new("/")).unwrap_err().to_string();
        assert!(e.contains(key), "{line}: {e}");
    }
    let text = format!(
        "{}[[static_machines]]\nname = \"big\"\nsystems = [\"x86_64-linux\"]\ncount = 4294967295\n",
        scenario_text(&[], &[])
    );
    let e = Scenario::parse(&text, "s.toml", Path::new("/")).unwrap_err().to_string();
    assert!(e.contains("static_machines[0].count"), "{e}");
}
