//! Reports through the real binary: the committed example reports come back
//! byte for byte from their recorded commands; a run's and a sweep's HTML
//! link only to files that exist and show the timeline and the spread; the
//! per-run CSV files join on the machine instance id; a window of a trace
//! replays its own steps from zero.

use crate::common::{bin, root, write};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The commands of reports/commands.txt: (arguments, output directory or
/// the file that keeps standard output).
fn recorded_commands() -> Vec<(Vec<String>, String, bool)> {
    let text = std::fs::read_to_string(root().join("reports/commands.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| match line.split_once(" > ") {
            Some((cmd, file)) => (cmd.split_whitespace().map(String::from).collect(), file.trim().to_string(), true),
            None => {
                let words: Vec<String> = line.split_whitespace().map(String::from).collect();
                let out = words.iter().position(|w| w == "--out").map(|i| words[i + 1].clone()).expect("--out DIR");
                (words, out, false)
            }
        })
        .collect()
}

fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn committed_reports_regenerate_byte_identically_from_their_commands() {
    let commands = recorded_commands();
    assert!(commands.len() >= 3, "reports/commands.txt lists the committed reports");
    let tmp = tempfile::tempdir().unwrap();
    for (k, (mut args, out, to_stdout)) in commands.into_iter().enumerate() {
        let fresh = tmp.path().join(format!("{k}"));
        if !to_stdout {
            let i = args.iter().position(|w| w == "--out").unwrap();
            args[i + 1] = fresh.display().to_string();
        }
        let o = bin().current_dir(root()).args(&args).output().unwrap();
        assert!(o.status.success() || to_stdout, "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let committed = root().join(&out);
        if to_stdout {
            let want = std::fs::read(&committed).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert!(
                o.stdout == want,
                "{out} differs from the output of `{}`; run reports/regenerate.sh",
                args.join(" ")
            );
        } else {
            let (want, got) = (files_in(&committed), files_in(&fresh));
            assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{out}: the files differ");
            for (name, bytes) in &want {
                assert!(
                    got[name] == *bytes,
                    "{out}/{name} differs from `{}`; run reports/regenerate.sh",
                    args.join(" ")
                );
            }
        }
    }
}

/// Every `href` and `src` of a page, which must be relative names of files
/// beside it.
fn references(html: &str) -> Vec<String> {
    let mut out = vec![];
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

fn assert_links_exist(dir: &Path, html: &str, at_least: usize) {
    let refs = references(html);
    assert!(refs.len() >= at_least, "the report links its files: {refs:?}");
    for r in &refs {
        assert!(!r.contains("://") && !r.starts_with('/'), "{r}: a report links only files beside it");
        assert!(dir.join(r).is_file(), "{r}: the report links a file that does not exist");
    }
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(!html.contains(&dir.display().to_string()), "no absolute paths of the output directory");
}

/// The quick-start scenario with its trace named by absolute path.
fn quick_start_copy(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios/quick-start.toml")).unwrap();
    let trace = root().join("traces/quick-start.csv");
    let text = text.replace("\"../traces/quick-start.csv\"", &format!("'{}'", trace.display()));
    write(dir, name, &edit(text))
}

fn simulate_out(scenario: &Path, out: &Path) {
    let o = bin().arg("simulate").arg(scenario).arg("--out").arg(out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_run_report_links_only_files_that_exist_and_shows_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = quick_start_copy(dir.path(), "qs.toml", |t| t);
    let out = dir.path().join("out");
    simulate_out(&scenario, &out);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_links_exist(&out, &html, 4);
    for want in [
        "Timeline per machine type",
        "queue and slots",
        "provisioned machines by state",
        "runnable steps (left)",
        "busy slots (right)",
        "Waits per machine type",
        "Waits per jobset",
        "Cost per machine type",
        "idle but paid",
        "quick-start",
        "fixed (the original",
        "hydra-provisioner 0.",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
    // One timeline per type that saw steps or machines, each an inline chart.
    for t in ["x86_64-linux", "aarch64-linux", "x86_64-linux:big-parallel", "x86_64-linux:kvm"] {
        assert!(html.contains(&format!("<h3>{t}</h3>")), "no timeline for {t}");
    }
    assert!(html.matches("<svg").count() >= 4 + 3, "timelines, two wait charts and the cost chart");
}

#[test]
fn a_sweep_report_links_only_files_that_exist_and_shows_the_spread() {
    let dir = tempfile::tempdir().unwrap();
    quick_start_copy(dir.path(), "base.toml", |t| t);
    let sweep = write(
        dir.path(),
        "s.toml",
        "version = 1\nscenario = \"base.toml\"\nseeds = [1, 2]\n\
         [[axis]]\npath = 'systemTypes.\"x86_64-linux\".maxMachines'\nvalues = [2, 8]\n\
         [[axis]]\npath = \"billing\"\nvalues = [\"hourly\", \"per-second\"]\n\
         [[axis]]\npath = \"window\"\nvalues = [\"0h..3h\", \"3h..6h\"]\n",
    );
    let out = dir.path().join("out");
    let o = bin().arg("sweep").arg(&sweep).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_links_exist(&out, &html, 6);
    // A frontier per cloud setting, each with its chart.
    for want in ["Cloud setting billing=hourly", "Cloud setting billing=per-second", "4 run(s): 2 seed(s) x window (2)"]
    {
        assert!(html.contains(want), "report.html lacks {want}");
    }
    assert!(html.matches("<svg").count() >= 2);
    // The spread: each point's mean with the smallest and largest of its runs.
    assert!(html.contains("cost $ (range)") && html.contains("p95 wait s (range)"), "no spread columns");
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(summary.as_bytes());
    let h = rows.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap_or_else(|| panic!("no {n} in {h:?}"));
    let first = rows.records().next().unwrap().unwrap();
    let (mean, lo, hi) =
        (&first[col("cost_dollars")], &first[col("cost_dollars_min")], &first[col("cost_dollars_max")]);
    let range = format!("{:.2} ({:.2}\u{2013}{:.2})", num(mean), num(lo), num(hi));
    assert!(html.contains(&range), "the report shows point 0's cost as {range}");
    assert!(num(lo) <= num(mean) && num(mean) <= num(hi) && num(lo) < num(hi), "{lo} {mean} {hi}");
    // Per type and jobset for the frontier points.
    assert!(html.contains("Frontier points by machine type and jobset") && html.contains("nixpkgs:trunk"));
}

fn num(s: &str) -> f64 {
    s.parse().unwrap()
}

fn csv_rows(path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    (h, r.records().map(Result::unwrap).collect())
}

#[test]
fn steps_and_machines_join_on_the_instance_id_and_series_has_a_row_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = quick_start_copy(dir.path(), "qs.toml", |t| t);
    let out = dir.path().join("out");
    simulate_out(&scenario, &out);
    let (sh, steps) = csv_rows(&out.join("steps.csv"));
    assert_eq!(
        sh.iter().collect::<Vec<_>>(),
        [
            "step_id",
            "jobset",
            "type",
            "runnable_at_s",
            "started_at_s",
            "wait_s",
            "finished_at_s",
            "machine_id",
            "machine",
            "attempts",
            "end"
        ]
    );
    let (mh, machines) = csv_rows(&out.join("machines.csv"));
    assert_eq!(mh.iter().collect::<Vec<_>>(), ["time_s", "machine_id", "machine", "type", "event"]);
    // Each instance id names one deployment; names are reused by later instances.
    let mut name_of: BTreeMap<String, String> = BTreeMap::new();
    let mut ids_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &machines {
        let previous = name_of.insert(m[1].to_string(), m[2].to_string());
        assert!(previous.is_none_or(|p| p == m[2]), "instance {} changed its name", &m[1]);
        ids_of.entry(m[2].to_string()).or_default().insert(m[1].to_string());
    }
    assert!(ids_of.values().any(|ids| ids.len() > 1), "some deployment name was used by two instances: {ids_of:?}");
    let mut on_instances = 0;
    for s in &steps {
        assert!(!s[1].is_empty(), "step {} has a jobset", &s[0]);
        if !s[4].is_empty() {
            let wait = num(&s[4]) - num(&s[3]);
            assert!((num(&s[5]) - wait).abs() < 0.0015, "step {}: wait_s is started minus runnable", &s[0]);
        }
        if s[7].starts_with("i-") {
            on_instances += 1;
            assert_eq!(name_of.get(&s[7]), Some(&s[8].to_string()), "step {}: machine_id joins machines.csv", &s[0]);
        }
    }
    assert!(on_instances > 100, "steps ran on provisioned instances");
    let (vh, series) = csv_rows(&out.join("series.csv"));
    assert_eq!(&vh[0], "time_s");
    assert_eq!(&vh[1], "type");
    assert!(vh.iter().any(|c| c == "busy_slots") && vh.iter().any(|c| c == "machines_up"));
    let mut seen = BTreeSet::new();
    for r in &series {
        assert!(seen.insert((r[0].to_string(), r[1].to_string())), "one row per pass and type");
    }
    let types: BTreeSet<&str> = series.iter().map(|r| &r[1]).collect();
    assert!(types.contains("x86_64-linux:kvm") && types.contains("aarch64-linux"), "{types:?}");
    // No quoting noise in the headers.
    for file in ["steps.csv", "series.csv", "machines.csv"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(!text.lines().next().unwrap().contains('"'), "{file}");
    }
}

#[test]
fn a_window_replays_its_part_of_the_trace_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let whole = quick_start_copy(dir.path(), "whole.toml", |t| t);
    let part =
        quick_start_copy(dir.path(), "part.toml", |t| t.replace("seed = 1\n", "seed = 1\nwindow = \"1h..3h\"\n"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    simulate_out(&whole, &a);
    simulate_out(&part, &b);
    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap()
    };
    let (sa, sb) = (summary(&a), summary(&b));
    assert_eq!(sb["inputs"]["window"], "1h..3h");
    assert_ne!(sa["inputs"]["trace_digest"], sb["inputs"]["trace_digest"]);
    assert_ne!(sa["inputs"]["world_digest"], sb["inputs"]["world_digest"]);
    // Exactly the steps submitted in the window, counted from its start.
    let trace = std::fs::read_to_string(root().join("traces/quick-start.csv")).unwrap();
    let mut r = csv::Reader::from_reader(trace.as_bytes());
    let at = r.headers().unwrap().iter().position(|h| h == "submitted_at").unwrap();
    let in_window = r.records().map(Result::unwrap).filter(|x| (3600.0..10800.0).contains(&num(&x[at]))).count();
    assert_eq!(sb["steps"]["total"].as_u64().unwrap() as usize, in_window);
    let (_, steps) = csv_rows(&b.join("steps.csv"));
    let first = steps.iter().filter(|s| !s[3].is_empty()).map(|s| num(&s[3])).fold(f64::INFINITY, f64::min);
    assert!((0.0..600.0).contains(&first), "the window's first step is runnable near zero, at {first}");
    let html = std::fs::read_to_string(b.join("report.html")).unwrap();
    assert!(html.contains("window 1h..3h"), "the report names the window");
    // A bad window is refused by name.
    let bad = quick_start_copy(dir.path(), "bad.toml", |t| t.replace("seed = 1\n", "seed = 1\nwindow = \"3h..1h\"\n"));
    let o = bin().arg("simulate").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("window"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_steps_csv_that_cannot_be_written_fails_the_run_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = quick_start_copy(dir.path(), "s.toml", |t| t);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Every write to /dev/full fails with "no space left on device".
    std::os::unix::fs::symlink("/dev/full", out.join("steps.csv")).unwrap();
    let o = bin().arg("simulate").arg(&scenario).arg("--out").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write steps.csv") && stderr.contains("No space left"), "{stderr}");
}
