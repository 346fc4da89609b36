//! `engine::decide` over arbitrary observations (times anywhere on the
//! clock, counts up to u64::MAX), with the widest configuration validation
//! allows, in both modes. Checks totality and the safety properties.
#![no_main]
use hydra_provisioner::config::{self, Config};
use hydra_provisioner::engine::{Action, decide};
use hydra_provisioner::model::*;
use libfuzzer_sys::fuzz_target;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u64(&mut self) -> u64 {
        // Mostly small or extreme, sometimes anything.
        match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => u64::MAX - u64::from(self.u8()),
            _ => (0..8).fold(0u64, |n, _| n << 8 | u64::from(self.u8())),
        }
    }
    fn i64(&mut self) -> i64 {
        match self.u8() % 4 {
            0 => 1_700_000_000 + i64::from(self.u8() as i8) * 300,
            1 => i64::MIN + i64::from(self.u8()),
            2 => i64::MAX - i64::from(self.u8()),
            _ => self.u64() as i64,
        }
    }
    fn opt_i64(&mut self) -> Option<i64> {
        if self.u8() & 1 == 0 { None } else { Some(self.i64()) }
    }
}

fn config(original: bool, drain: bool) -> Config {
    let text = serde_json::json!({
        "quirks": if original { "original" } else { "fixed" }, "drainBeforeDestroy": drain,
        "deployConcurrency": config::MAX_DEPLOY_CONCURRENCY, "maxCreationsPerPass": config::MAX_CREATIONS_PER_PASS,
        "drainDelay": config::MAX_DURATION, "restartGuard": 0, "redeployInterval": config::MAX_DURATION,
        "systemTypes": {
            "x86_64-linux": {"nixopsExpr": "/d", "maxMachines": config::MAX_MACHINES, "minMachines": 5,
                "gracePeriod": config::MAX_DURATION, "runnablesPerMachine": 1},
            "x86_64-linux:kvm": {"nixopsExpr": "/d", "maxMachines": 3, "stopOnIdle": true, "billing": "per-second"}
        }
    });
    Config::from_json_str(&text.to_string()).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let flags = b.u8();
    let mut status = QueueStatus::down("fuzz");
    status.health = match flags % 4 {
        0 => QueueHealth::Down { detail: "down".into() },
        1 => QueueHealth::Unknown { detail: "garbled".into() },
        _ => QueueHealth::Up,
    };
    status.has_machine_types = flags & 4 == 0;
    status.machines_known = flags & 8 == 0;
    status.active_steps = if flags & 16 == 0 { None } else { Some(b.u64()) };
    status.uptime = b.i64();
    status.time = b.opt_i64();
    const KEYS: [&str; 4] = ["x86_64-linux", "x86_64-linux:kvm", "aarch64-linux", "i686-linux"];
    for _ in 0..b.u8() % 4 {
        let key = KEYS[usize::from(b.u8()) % KEYS.len()];
        let t = TypeStatus { runnable: b.u64(), running: b.u64(), last_active: b.opt_i64() };
        status.machine_types.insert(key.into(), t);
    }
    for _ in 0..b.u8() % 6 {
        let host = format!("10.0.0.{}", b.u8() % 8);
        let bs = BuilderStatus { enabled: b.u8() & 1 == 0, current_jobs: b.u64(), idle_since: b.opt_i64() };
        status.machines.insert(host, bs);
    }
    let mut deployments = vec![];
    const TYPES: [&str; 4] = ["x86_64-linux", "x86_64-linux:kvm", "sparc-linux", "kvm,x86_64-linux"];
    for i in 0..b.u8() % 8 {
        let memory = MachineMemory {
            deploy_failures: u32::from(b.u8() % 5),
            deployed_fingerprint: (b.u8() & 1 == 0).then(|| "0".repeat(16)),
            deployed_at: b.opt_i64(),
            listed: b.u8() & 1 == 0,
            delisted_at: b.opt_i64(),
            idle_since: b.opt_i64(),
        };
        let ip = match b.u8() % 5 {
            0 => None,
            1 => Some("a#b".to_string()),
            _ => Some(format!("10.0.0.{}", b.u8() % 8)),
        };
        deployments.push(Deployment {
            name: format!("hydra-provisioned-{}", i % 6),
            machine_type: TYPES[usize::from(b.u8()) % TYPES.len()].into(),
            state: MachineState::from_nixops_code(i64::from(b.u8() % 8)).unwrap(),
            launch_time: b.opt_i64(),
            public_ip: ip,
            host_key: None,
            memory,
        });
    }
    let obs = Observation { status, fleet: Fleet { deployments, other_deployment_names: Default::default() } };
    let now = b.i64();
    let original = flags & 32 != 0;
    let plan = decide(&config(original, flags & 64 == 0), &obs, now);
    for d in &obs.fleet.deployments {
        assert!(plan.machines.iter().any(|m| m.deployment == d.name));
    }
    if !original {
        for m in plan.machines.iter().filter(|m| matches!(m.action, Action::Stop | Action::Destroy)) {
            let d = obs.fleet.deployments.iter().find(|d| d.name == m.deployment).unwrap();
            let busy = d.host().and_then(|h| obs.status.machines.get(h)).is_some_and(|b| b.current_jobs > 0);
            assert!(!busy, "{} busy and given {:?}", d.name, m.action);
        }
    }
});
