//! A production pass that deploys ten machines, against the fake `nixops`
//! of tests/fakes whose deploys take one second each: with
//! `deployConcurrency` 10 the pass takes about a second plus overhead, not
//! ten. Run with `cargo bench --bench pass`; BENCHMARKS.md has the figures.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;
const MACHINES: usize = 10;

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

/// A temp directory with ten up, tagged deployments that need a deploy
/// (the provisioner has no record of deploying them).
fn world() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let nixops_dir = dir.path().join("nixops");
    std::fs::create_dir_all(nixops_dir.join("knobs")).unwrap();
    std::fs::write(nixops_dir.join("knobs/sleep-deploy"), "1").unwrap();
    let mut db = serde_json::Map::new();
    for i in 0..MACHINES {
        db.insert(
            format!("00000000-0000-0000-0000-{i:012}"),
            json!({"name": format!("hydra-provisioned-{i}"), "nixExprs": ["/d.nix"], "nixPath": [],
                   "args": {"type": "\"x86_64-linux\"", "tag": "\"hydra-provisioned\""},
                   "machine": {"state": 3, "startTime": NOW - 600, "vmId": format!("i-{i}"),
                               "publicIpv4": format!("10.0.0.{}", i + 1), "hostKey": "ssh-ed25519 AAAA"}}),
        );
    }
    std::fs::write(nixops_dir.join("db.json"), serde_json::to_string(&db).unwrap()).unwrap();
    let queue_dir = dir.path().join("queue");
    std::fs::create_dir_all(&queue_dir).unwrap();
    let status = json!({"status": "up", "time": NOW, "uptime": 86400,
        "machineTypes": {"x86_64-linux": {"runnable": 100, "running": 0}}, "machines": {}});
    std::fs::write(queue_dir.join("status.json"), status.to_string()).unwrap();
    let config = json!({
        "nixopsCommand": [python(), root.join("tests/fakes/nixops")],
        "statusCommand": [python(), root.join("tests/fakes/hydra-queue-runner"), "--status"],
        "machinesFile": dir.path().join("machines"),
        "stateDir": dir.path().join("state"),
        "deployConcurrency": MACHINES,
        "systemTypes": {"x86_64-linux": {"nixopsExpr": "/d.nix", "maxMachines": MACHINES, "runnablesPerMachine": 10}},
    });
    let config_path = dir.path().join("conf.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    (dir, config_path)
}

fn pass(c: &mut Criterion) {
    let (dir, config) = world();
    let mut group = c.benchmark_group("production");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    group.bench_function("pass deploying 10 machines (1 s each)", |b| {
        b.iter(|| {
            // Forget the deploys, so every pass deploys all ten again.
            let _ = std::fs::remove_file(dir.path().join("state/state.json"));
            let out = Command::new(env!("CARGO_BIN_EXE_hydra-provisioner"))
                .args(["run", "--now", &NOW.to_string()])
                .arg(&config)
                .env("FAKE_NIXOPS_DIR", dir.path().join("nixops"))
                .env("FAKE_QUEUE_DIR", dir.path().join("queue"))
                .env("RUST_LOG", "warn")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let deploys = std::fs::read_to_string(dir.path().join("nixops/deploys")).unwrap_or_default();
            assert!(deploys.lines().count() >= MACHINES);
        })
    });
    group.finish();
}

criterion_group!(benches, pass);
criterion_main!(benches);
