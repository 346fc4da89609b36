//! Import speed from PostgreSQL: a million build steps (100,000 builds of
//! ten steps, with retries and failures) loaded with COPY into Hydra's
//! tables on a local server, then streamed and turned into a trace.
//! Reports rows per second (criterion, the library path: portal fetches,
//! decoding, mapping, CSV writing to a sink) and, once, the peak RSS and
//! wall time of the real binary doing the same import to /dev/null.
//!
//! Run: `cargo bench --bench import` (see BENCHMARKS.md). The server is
//! `HP_TEST_DATABASE_URL`'s, or a throwaway one started as the tests do.
//! Under `cargo test` (no `--bench`) it runs once on 20,000 rows.

#[path = "../tests/it/pg.rs"]
mod pg;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hydra_provisioner::adapters::hydra_db::{self, HistoryFilter};
use hydra_provisioner::trace::import::TraceSink;
use hydra_provisioner::trace::import::features::FeatureRules;
use hydra_provisioner::trace::import::hydra_db::{DbImport, Runner, RunnerEras};
use std::io::Write;
use std::time::Instant;

const STEPS_PER_BUILD: u64 = 10;

fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Loads `builds` builds of ten step rows each (plus a retry row for every
/// 50th step) with COPY; returns the number of step rows.
fn load(db: &pg::Database, builds: u64) -> u64 {
    let mut client = db.client();
    let schema = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hydra/schema.sql")).unwrap();
    client.batch_execute(&schema).unwrap();
    client
        .batch_execute(
            "insert into Users (userName, emailAddress, password) values ('admin', 'a@example.org', 'x');
             insert into Projects (name, displayName, owner) values ('nixpkgs', 'Nixpkgs', 'admin');
             insert into Jobsets (id, name, project, nixExprInput, nixExprPath, emailOverride) values
               (1, 'trunk', 'nixpkgs', 'n', 'r.nix', ''), (2, 'staging', 'nixpkgs', 'n', 'r.nix', ''),
               (3, 'release', 'nixpkgs', 'n', 'r.nix', ''), (4, 'small', 'nixpkgs', 'n', 'r.nix', '');",
        )
        .unwrap();
    let t0: u64 = 1_700_000_000;
    let mut w = client
        .copy_in("COPY builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) FROM STDIN")
        .unwrap();
    for b in 1..=builds {
        let ts = t0 + b * 3;
        writeln!(
            w,
            "{b}\t1\t{ts}\t{}\tjob{b}.x86_64-linux\t/nix/store/{b:032}-pkg-{b}.drv\tx86_64-linux\t100\t0\t{}\t{}\t0\t0",
            b % 4 + 1,
            ts + 60,
            ts + 600
        )
        .unwrap();
    }
    w.finish().unwrap();
    let mut rows = 0;
    let mut w = client
        .copy_in("COPY buildsteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, overhead) FROM STDIN")
        .unwrap();
    for b in 1..=builds {
        let ts = t0 + b * 3;
        let mut nr = 0;
        for k in 0..STEPS_PER_BUILD {
            let top = k == STEPS_PER_BUILD - 1;
            let drv = if top {
                format!("/nix/store/{b:032}-pkg-{b}.drv")
            } else {
                format!("/nix/store/{b:031}{k}-dep-{k}.drv")
            };
            let start = ts + 10 + 40 * k;
            let machine = format!("ssh://root@b{}", (b + k) % 17);
            if (b * STEPS_PER_BUILD + k).is_multiple_of(50) {
                nr += 1;
                rows += 1;
                writeln!(w, "{b}\t{nr}\t0\t{drv}\t0\t3\t{start}\t{}\t{machine}\tx86_64-linux\t\\N", start + 5).unwrap();
            }
            nr += 1;
            rows += 1;
            let status = if top && b % 100 == 0 { 1 } else { 0 };
            writeln!(
                w,
                "{b}\t{nr}\t0\t{drv}\t0\t{status}\t{start}\t{}\t{machine}\tx86_64-linux\t{}",
                start + 30 + k,
                100 * k
            )
            .unwrap();
        }
    }
    w.finish().unwrap();
    client.batch_execute("ANALYZE").unwrap();
    rows
}

fn import_all(db: &pg::Database, rules: &FeatureRules) -> u64 {
    let mut client = db.client();
    let sink = TraceSink::new(std::io::BufWriter::new(std::io::sink()), None).unwrap();
    let mut import = DbImport::new(sink, rules, RunnerEras { default: Runner::Cpp, rust_since: None });
    hydra_db::stream(&mut client, &HistoryFilter::default(), 10_000, |row| import.push(row)).unwrap();
    let (_, report) = import.finish().unwrap().finish().unwrap();
    report.steps_written
}

/// Peak RSS (KiB) and wall time of the real binary importing everything to /dev/null.
fn binary_run(db: &pg::Database) -> (i64, f64) {
    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hydra-provisioner"))
        .args(["trace", "import", "hydra-db", "--database-url", &db.conninfo(), "-o", "/dev/null"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait4 gives this child's own resource usage (RUSAGE_CHILDREN would
    // also count the throwaway server's initdb).
    let mut status = 0;
    // SAFETY: wait4 fills the status and the rusage struct it is given; the
    // child is reaped here and not waited for again.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut u);
        u
    };
    let elapsed = started.elapsed().as_secs_f64();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the import failed");
    (usage.ru_maxrss, elapsed)
}

fn import(c: &mut Criterion) {
    let Some(postgres) = pg::Postgres::get() else { return };
    let db = postgres.database("hydra_bench");
    let builds = if benchmarking() { 100_000 } else { 2_000 };
    let rows = load(&db, builds);
    let rules = FeatureRules::default();
    let mut group = c.benchmark_group("import from PostgreSQL");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    group.bench_function(format!("{rows} step rows"), |b| b.iter(|| import_all(&db, &rules)));
    group.finish();
    let (rss_kib, seconds) = binary_run(&db);
    println!(
        "hydra-provisioner trace import hydra-db: {rows} rows in {seconds:.2} s ({:.0} rows/s), peak RSS {:.1} MB",
        rows as f64 / seconds,
        rss_kib as f64 / 1024.0
    );
}

criterion_group!(benches, import);
criterion_main!(benches);
