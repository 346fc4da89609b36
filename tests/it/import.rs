//! Importing real Hydra history: `trace import hydra-db` against a real
//! PostgreSQL server loaded with Hydra's table definitions and a small,
//! realistic history (tests/data/hydra/), `trace import hydra-api` on saved
//! API responses (tests/data/hydra-api/), each compared row by row with the
//! expected trace; then `trace stats` and `trace synth --like` on traces.

use crate::common::{bin, data, write};
use crate::pg::{Database, Postgres};
use std::path::Path;

fn hydra_db(pg: &Postgres) -> Database {
    let db = pg.database("hydra_import");
    let mut client = db.client();
    for file in ["hydra/schema.sql", "hydra/rows.sql"] {
        let sql = std::fs::read_to_string(data(file)).unwrap();
        client.batch_execute(&sql).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    db
}

/// Runs an import into `out` and returns its stderr.
fn import(db: &Database, out: &Path, extra: &[&str]) -> String {
    let run = bin()
        .args(["trace", "import", "hydra-db", "--database-url", &db.conninfo(), "--features"])
        .arg(data("hydra/features.toml"))
        .arg("-o")
        .arg(out)
        .args(extra)
        .assert()
        .success();
    String::from_utf8(run.get_output().stderr.clone()).unwrap()
}

fn assert_same_rows(got: &str, expected: &str) {
    let (got, expected): (Vec<&str>, Vec<&str>) = (got.lines().collect(), expected.lines().collect());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "row {i} differs");
    }
    assert_eq!(got.len(), expected.len(), "row count");
}

fn skipped(stderr: &str, reason: &str) -> u64 {
    let line = stderr.lines().find(|l| l.contains(reason)).unwrap_or_else(|| panic!("no `{reason}` in:\n{stderr}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_hydra_database_imports_row_by_row_as_expected() {
    let Some(pg) = Postgres::get() else { return };
    let db = hydra_db(&pg);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("trace.csv");
    // A small batch, so rows cross many portal fetches.
    let stderr = import(&db, &out, &["--batch-rows", "3"]);
    let got = std::fs::read_to_string(&out).unwrap();
    assert_same_rows(&got, &std::fs::read_to_string(data("hydra/expected.csv")).unwrap());
    for (reason, n) in [
        ("cached builds", 1),
        ("substitution steps", 1),
        ("without start or stop time", 2),
        ("stop time is before", 1),
        ("still running", 1),
        ("propagated from another build", 1),
        ("cached failures", 1),
        ("unsupported-system", 1),
        ("resolved content-addressed", 1),
    ] {
        assert_eq!(skipped(&stderr, reason), n, "{reason}:\n{stderr}");
    }
    assert!(stderr.contains("read 12 builds, 35 rows; wrote 24 steps (3 failed attempts merged"), "{stderr}");
    assert!(stderr.contains("1 cached builds had step rows that did real work"), "{stderr}");
    assert!(stderr.contains("epoch = 1699920000"), "{stderr}");
    // The trace is a valid v1 trace the simulator can read.
    bin().args(["trace", "check"]).arg(&out).assert().success();

    // Rows the Rust runner wrote have the copy time inside stop - start.
    let rust = tmp.path().join("rust.csv");
    import(&db, &rust, &["--rust-runner-since", "1700100000"]);
    let rust = std::fs::read_to_string(&rust).unwrap();
    let differing: Vec<(&str, &str)> = got.lines().zip(rust.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(
        differing,
        [(
            "23,180000.000,x86_64-linux,big-parallel,nixos:trunk-combined,11,100,0,,305.000,success",
            "23,180000.000,x86_64-linux,big-parallel,nixos:trunk-combined,11,100,0,,300.000,success"
        )]
    );

    // Filters: one project; a time window (queue times) with a fixed zero.
    let nixos = tmp.path().join("nixos.csv");
    import(&db, &nixos, &["--project", "nixos"]);
    let nixos = std::fs::read_to_string(&nixos).unwrap();
    assert_eq!(nixos.lines().count(), 4, "{nixos}");
    assert!(nixos.lines().skip(1).all(|l| l.contains("nixos:trunk-combined")), "{nixos}");
    let window = tmp.path().join("window.csv");
    import(
        &db,
        &window,
        &["--since", "1700000300", "--until", "2023-11-15", "--zero", "2023-11-14", "--jobset", "nixpkgs:trunk"],
    );
    let window = std::fs::read_to_string(&window).unwrap();
    assert_eq!(
        window.lines().skip(1).collect::<Vec<_>>(),
        ["1,80300.000,aarch64-linux,,nixpkgs:trunk,5,100,0,,45.000,transient"]
    );
}

#[test]
fn a_database_without_hydras_columns_or_server_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t.csv");
    // Nothing listens on port 1: a refused connection, exit 1, no output file.
    let run = bin()
        .args(["trace", "import", "hydra-db", "--database-url", "postgres://hydra@127.0.0.1:1/hydra", "-o"])
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("cannot connect to the database hydra@127.0.0.1:1/hydra"), "{stderr}");
    assert!(!out.exists());

    let Some(pg) = Postgres::get() else { return };
    let db = pg.database("hydra_old");
    // An old or foreign schema: BuildSteps without the overhead column.
    let schema = std::fs::read_to_string(data("hydra/schema.sql")).unwrap().replace("    overhead      integer,\n", "");
    db.client().batch_execute(&schema).unwrap();
    let run =
        bin().args(["trace", "import", "hydra-db", "--database-url", &db.conninfo(), "-o"]).arg(&out).assert().code(2);
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("does not look like Hydra's") && stderr.contains("overhead"), "{stderr}");
    assert!(!out.exists());
    // The libpq variables are honoured when no URL is given (here: a wrong port).
    let run = bin()
        .args(["trace", "import", "hydra-db", "-o"])
        .arg(&out)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", "1")
        .env("PGUSER", "someone")
        .assert()
        .code(1);
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("someone@127.0.0.1:1/someone"), "{stderr}");
}

#[test]
fn saved_api_responses_import_row_by_row_as_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("api.csv");
    let run = bin()
        .args(["trace", "import", "hydra-api"])
        .arg(data("hydra-api"))
        .arg("--features")
        .arg(data("hydra/features.toml"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    assert_same_rows(
        &std::fs::read_to_string(&out).unwrap(),
        &std::fs::read_to_string(data("hydra-api/expected.csv")).unwrap(),
    );
    for reason in
        ["cached builds", "not finished", "failed by a dependency", "without start or stop", "stop time is before"]
    {
        assert_eq!(skipped(&stderr, reason), 1, "{reason}:\n{stderr}");
    }
    assert!(stderr.contains("1 builds listed by the saved evaluations have no saved"), "{stderr}");
}

#[test]
fn bad_api_files_and_rules_are_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "api/good.json", "[]");
    write(tmp.path(), "api/bad.json", "{\"evals\": [");
    let run = bin().args(["trace", "import", "hydra-api"]).arg(tmp.path().join("api")).assert().code(2);
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("bad.json: not valid JSON"), "{stderr}");
    write(tmp.path(), "api2/other.json", "{\"hello\": 1}");
    let run = bin().args(["trace", "import", "hydra-api"]).arg(tmp.path().join("api2")).assert().code(2);
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("other.json: not a saved Hydra API response"));
    let rules = write(tmp.path(), "rules.toml", "[[rule]]\nfeatures = [\"kvm\"]\n");
    let run = bin()
        .args(["trace", "import", "hydra-api"])
        .arg(data("hydra-api"))
        .arg("--features")
        .arg(&rules)
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("rules.toml: rule 1"));
    bin().args(["trace", "import", "hydra-api", "--since", "yesterday"]).arg(data("hydra-api")).assert().code(2);
}

fn stats(file: &Path) -> serde_json::Value {
    let out = bin().args(["trace", "stats", "--json"]).arg(file).assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Relative difference.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-9)
}

#[test]
fn a_trace_fitted_with_synth_like_reproduces_its_source_within_tolerances() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.csv");
    // A source that is not the generator's default shape: other rates,
    // bursts, peak hour and kind durations.
    bin()
        .args(["trace", "synth", "--seed", "11", "--hours", "96", "-o"])
        .arg(&source)
        .args(["--set", "evaluations-per-day=40", "--set", "burst-median=400", "--set", "burst-sigma=0.5"])
        .args(["--set", "burst-spread=120"])
        .args(["--set", "background-per-hour=250", "--set", "peak-hour=20", "--set", "duration-median=25"])
        .assert()
        .success();
    let fitted = tmp.path().join("fitted.csv");
    let run =
        bin().args(["trace", "synth", "--seed", "99", "--like"]).arg(&source).arg("-o").arg(&fitted).assert().success();
    let params = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    assert!(params.contains("background-per-hour") && params.contains("[[kinds]]"), "{params}");
    let (s, t) = (stats(&source), stats(&fitted));

    // The tolerances docs/trace-format.md states.
    assert!(rel(f(&t["steps"]), f(&s["steps"])) < 0.15, "steps {} vs {}", t["steps"], s["steps"]);
    let (sb, tb) = (&s["bursts"], &t["bursts"]);
    assert!(rel(f(&tb["background_per_hour"]), f(&sb["background_per_hour"])) < 0.10);
    assert!(rel(f(&tb["per_day"]), f(&sb["per_day"])) < 0.25, "bursts per day {} vs {}", tb["per_day"], sb["per_day"]);
    assert!(
        rel(f(&tb["size"]["p50"]), f(&sb["size"]["p50"])) < 0.25,
        "burst p50 {} vs {}",
        tb["size"]["p50"],
        sb["size"]["p50"]
    );
    for h in 0..24 {
        let (a, b) = (f(&t["background_rate_by_hour"][h]), f(&s["background_rate_by_hour"][h]));
        assert!(rel(a, b) < 0.30, "background at hour {h}: {a} vs {b}");
    }
    for sk in s["kinds"].as_array().unwrap() {
        let tk = t["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["system"] == sk["system"] && k["features"] == sk["features"]);
        let tk = tk.unwrap_or_else(|| panic!("kind {sk} missing"));
        assert!((f(&tk["share"]) - f(&sk["share"])).abs() < 0.02, "share of {sk} vs {tk}");
        for p in ["p50", "p90"] {
            let (a, b) = (f(&tk["duration"][p]), f(&sk["duration"][p]));
            assert!(rel(a, b) < 0.20, "{} {} {p}: {a} vs {b}", sk["system"], sk["features"]);
        }
    }
    for sj in s["jobsets"].as_array().unwrap() {
        let tj = t["jobsets"].as_array().unwrap().iter().find(|j| j["jobset"] == sj["jobset"]).unwrap();
        assert!((f(&tj["share"]) - f(&sj["share"])).abs() < 0.08, "jobset {sj} vs {tj}");
        assert_eq!(tj["usual_priority"], sj["usual_priority"]);
    }
    let failure = |x: &serde_json::Value| f(&x["outcomes"]["failure"]) / f(&x["steps"]);
    assert!((failure(&t) - failure(&s)).abs() < 0.005);
    let with_deps = |x: &serde_json::Value| f(&x["dependencies"]["steps_with_dependencies"]) / f(&x["steps"]);
    assert!((with_deps(&t) - with_deps(&s)).abs() < 0.05);
}

#[test]
fn stats_describe_an_imported_trace() {
    let s = stats(&data("hydra/expected.csv"));
    assert_eq!(s["steps"], 24);
    assert_eq!(s["dependencies"]["max_depth"], 1);
    assert_eq!(s["dependencies"]["edges"], 14);
    assert_eq!(s["arrivals_by_hour"][22], 10);
    let text = bin().args(["trace", "stats"]).arg(data("hydra/expected.csv")).assert().success();
    let text = String::from_utf8(text.get_output().stdout.clone()).unwrap();
    assert!(text.contains("big-parallel") && text.contains("nixpkgs:staging-next"), "{text}");
    // A fit of a tiny trace is still a valid generator.
    let tmp = tempfile::tempdir().unwrap();
    let params = tmp.path().join("fit.toml");
    let out = bin().args(["trace", "synth", "--fit-only", "--like"]).arg(data("hydra/expected.csv")).assert().success();
    std::fs::write(&params, &out.get_output().stdout).unwrap();
    bin()
        .args(["trace", "synth", "--hours", "2", "--params"])
        .arg(&params)
        .arg("-o")
        .arg(tmp.path().join("x.csv"))
        .assert()
        .success();
}

#[test]
fn output_to_a_pipe_or_through_a_link_keeps_it() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    // A pipe (as /dev/null or /dev/stdout would be) is written, not replaced.
    let fifo = tmp.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Opened for reading first (without waiting for a writer), so the
    // import can open it for writing; the small trace fits the pipe's buffer.
    let mut reader = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap()
    };
    bin().args(["trace", "import", "hydra-api"]).arg(data("hydra-api")).arg("-o").arg(&fifo).assert().success();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut reader, &mut got).unwrap();
    assert_eq!(got.lines().count(), 4, "{got}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // A link stays a link; the file it points to gets the trace.
    let target = write(tmp.path(), "target.csv", "old");
    let link = tmp.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    bin().args(["trace", "import", "hydra-api"]).arg(data("hydra-api")).arg("-o").arg(&link).assert().success();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap().lines().count(), 4);
}
