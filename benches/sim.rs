//! Simulator replay throughput: a synthetic week of about a million steps
//! through the queue-runner and cloud models with up to 50 provisioned
//! machines and the engine deciding every 300 s, beside a minimal
//! hand-written event loop over the same steps (the physical limit: a FIFO
//! queue, a fixed pool of 200 slots, a heap of finish times, nothing else),
//! so that the ratio between the two is visible; and the same replay with
//! the server modelled (`[server]`: every step's closure copied, its
//! outputs received and uploaded by 64 local worker threads), whose cost
//! over the plain replay is the server model's; and the plain replay as a
//! sweep's runs make it, from one parsed trace read in place and digested
//! once (`sim::run_loaded`). Reports steps per second.
//!
//! Run: `cargo bench --bench sim` (see BENCHMARKS.md), or `contrib/pgo/build.sh
//! bench --bench sim` for the profile-guided build of the benches.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hydra_provisioner::sim::{self, NoObserver, Scenario};
use hydra_provisioner::trace::background::Loaded;
use hydra_provisioner::trace::synth::{Synth, SynthParams};
use hydra_provisioner::trace::{StepSource, VecSource};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;

/// The week's scenario, also replayed end to end from CSV (BENCHMARKS.md)
/// and by the profile-guided build's training (`contrib/pgo/`).
const SCENARIO: &str = include_str!("replay-week.toml");

/// The server of the second replay: enough threads for the week's load
/// (about 16 s of local work per step at the defaults, 1.7 steps a second),
/// so that the figure is the model's cost, not a saturated queue's.
const SERVER: &str = r#"
[hydra]
runner = "cpp"
[server]
local_workers = 64
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
    // As the runs of a sweep replay it: parsed once, read in place, digested once.
    let loaded = Loaded::read(&mut source.clone()).expect("rows");
    let digest = sim::input::trace_digest(&loaded, scenario.window).expect("digest");
    group.bench_function(format!("{steps} steps, up to 50 machines, shared trace read in place"), |b| {
        b.iter(|| sim::run_loaded(&scenario, &loaded, &digest, &mut NoObserver).expect("run"))
    });
    let rows: Vec<(i64, i64)> = {
        let mut source = source.clone();
        std::iter::from_fn(|| source.next_step())
            .map(|r| r.expect("row"))
            .map(|r| (r.submitted_ms, r.duration_ms))
            .collect()
    };
    let with_server =
        Scenario::parse(&format!("{SCENARIO}{SERVER}"), "bench.toml", Path::new(".")).expect("scenario with a server");
    group.bench_function(format!("{steps} steps, up to 50 machines, with the server"), |b| {
        b.iter_batched(
            || source.clone(),
            |mut source| sim::run(&with_server, &mut source, &mut NoObserver).expect("run"),
            BatchSize::LargeInput,
        )
    });
    group.bench_function(format!("{steps} steps, minimal event loop (200 slots, FIFO)"), |b| {
        b.iter(|| minimal_loop(&rows, 200))
    });
    group.finish();
}

/// The least a replay must do per step: merge arrivals with a heap of
/// finish events, queue what finds no free slot, start the next on each
/// finish. Returns the sum of waits, so that nothing is optimised away.
fn minimal_loop(rows: &[(i64, i64)], slots: usize) -> i64 {
    let mut finishing: BinaryHeap<Reverse<i64>> = BinaryHeap::with_capacity(slots);
    let mut queue: VecDeque<(i64, i64)> = VecDeque::new();
    let mut waits = 0i64;
    let mut next = 0;
    loop {
        let arrival = rows.get(next).copied();
        let finish = finishing.peek().map(|Reverse(t)| *t);
        match (arrival, finish) {
            (Some((at, duration)), f) if f.is_none_or(|f| at < f) => {
                next += 1;
                if finishing.len() < slots {
                    finishing.push(Reverse(at + duration));
                } else {
                    queue.push_back((at, duration));
                }
            }
            (_, Some(now)) => {
                finishing.pop();
                if let Some((at, duration)) = queue.pop_front() {
                    waits += now - at;
                    finishing.push(Reverse(now + duration));
                }
            }
            _ => return waits,
        }
    }
}

criterion_group!(benches, replay);
criterion_main!(benches);
