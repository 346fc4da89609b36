//! How long one engine decision takes for a large fleet: 100 deployments
//! over 20 machine types, with a status that lists every machine.

use criterion::{Criterion, criterion_group, criterion_main};
use hydra_provisioner::config;
use hydra_provisioner::engine::decide;
use hydra_provisioner::model::{
    BuilderStatus, Deployment, Fleet, MachineMemory, MachineState, Observation, QueueHealth, QueueStatus, TypeStatus,
};
use serde_json::json;
use std::hint::black_box;

const NOW: i64 = 1_700_000_000;

fn world(types: usize, machines: usize) -> (config::Config, Observation) {
    let mut st = serde_json::Map::new();
    let keys: Vec<String> = (0..types)
        .map(|i| if i % 2 == 0 { format!("x86_64-linux:f{i}") } else { format!("aarch64-linux:f{i}") })
        .collect();
    for k in &keys {
        st.insert(
            k.clone(),
            json!({"nixopsExpr": "/d.nix", "maxMachines": 8, "runnablesPerMachine": 10, "gracePeriod": 600}),
        );
    }
    let (config, _) = config::parse(&json!({"systemTypes": st}), "bench", None).unwrap();
    let mut status = QueueStatus::down("");
    status.health = QueueHealth::Up;
    status.uptime = 86_400;
    for (i, k) in keys.iter().enumerate() {
        status
            .machine_types
            .insert(k.clone(), TypeStatus { runnable: (i as u64 * 7) % 90, running: 3, last_active: None });
    }
    let states = [MachineState::Up, MachineState::Up, MachineState::Up, MachineState::Stopped, MachineState::Missing];
    let deployments = (0..machines)
        .map(|i| {
            let ip = format!("10.0.{}.{}", i / 250, i % 250);
            status.machines.insert(
                ip.clone(),
                BuilderStatus {
                    enabled: true,
                    current_jobs: (i % 3) as u64,
                    idle_since: Some(NOW - (i as i64 * 97) % 4000),
                },
            );
            Deployment {
                name: format!("hydra-provisioned-{i}").into(),
                machine_type: keys[i % types].as_str().into(),
                state: states[i % states.len()],
                recorded_state: None,
                launch_time: Some(NOW - (i as i64 * 613) % 7200),
                public_ip: Some(ip),
                host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA".into()),
                memory: MachineMemory { listed: i % 2 == 0, ..MachineMemory::default() },
            }
        })
        .collect();
    (config, Observation { status, fleet: Fleet { deployments, other_deployment_names: Default::default() } })
}

fn bench_decide(c: &mut Criterion) {
    let (config, obs) = world(20, 100);
    c.bench_function("decide/100 machines, 20 types", |b| b.iter(|| decide(black_box(&config), black_box(&obs), NOW)));
    let (config, obs) = world(5, 1000);
    c.bench_function("decide/1000 machines, 5 types", |b| b.iter(|| decide(black_box(&config), black_box(&obs), NOW)));
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
