//! Simulator replay throughput: a synthetic week of about a million steps
//! through the queue-runner and cloud models with up to 50 provisioned
//! machines and the engine deciding every 300 s. Reports steps per second.
//!
//! Run: `cargo bench --bench sim` (see BENCHMARKS.md).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hydra_provisioner::sim::{self, NoObserver, Scenario};
use hydra_provisioner::trace::synth::{Synth, SynthParams};
use hydra_provisioner::trace::{StepSource, VecSource};
use std::path::Path;

const SCENARIO: &str = r#"
trace = "synthetic"
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 30
runnablesPerMachine = 20
maxJobs = 4
maxCreationsPerPass = 4
[provisioner.systemTypes."aarch64-linux"]
maxMachines = 8
runnablesPerMachine = 20
maxJobs = 4
maxCreationsPerPass = 2
[provisioner.systemTypes."x86_64-linux:big-parallel"]
maxMachines = 8
runnablesPerMachine = 4
maxJobs = 4
speedFactor = 2
maxCreationsPerPass = 2
[provisioner.systemTypes."x86_64-linux:kvm"]
maxMachines = 4
runnablesPerMachine = 4
maxJobs = 4
[cloud."x86_64-linux"]
[cloud."aarch64-linux"]
[cloud."x86_64-linux:big-parallel"]
[cloud."x86_64-linux:kvm"]
"#;

fn week_of_steps() -> VecSource {
    let params = SynthParams {
        seed: 42,
        hours: 24.0 * 7.0,
        background_per_hour: 3000.0,
        evaluations_per_day: 20.0,
        burst_median: 3000.0,
        ..SynthParams::default()
    };
    let mut synth = Synth::new(params).expect("valid parameters");
    let rows: Vec<_> = std::iter::from_fn(|| synth.next_step()).map(|r| r.expect("generated row")).collect();
    VecSource::new("synthetic week", rows, synth.symbols().clone())
}

fn replay(c: &mut Criterion) {
    let scenario = Scenario::parse(SCENARIO, "bench.toml", Path::new(".")).expect("scenario");
    let source = week_of_steps();
    let steps = source.len() as u64;
    let mut group = c.benchmark_group("simulator replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(steps));
    group.bench_function(format!("{steps} steps, up to 50 machines"), |b| {
        b.iter_batched(
            || source.clone(),
            |mut source| sim::run(&scenario, &mut source, &mut NoObserver).expect("run"),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
