//! Sweep files (TOML, docs/sweep-format.md): a base scenario, the seeds, and
//! axes that each set one key of the scenario (of its provisioner
//! configuration, or the interval, the cloud, the trace or its window) to
//! each of a list of values. The grid is the cartesian product of the axes.
//! Each axis has a role: a *policy* axis is what an operator chooses, a
//! *setting* axis a fact of the cloud (billing, prices, boot times) that
//! gets a frontier of its own, and a *sample* axis (trace, window) a
//! repetition of the same question, like a seed.
//!
//! This module parses, validates and expands; applying a point yields a
//! [`Scenario`] through the scenario's own parser, so a swept configuration
//! is checked exactly as a hand-written one would be. It reads no files and
//! runs nothing.

use super::PolicyError;
use crate::sim::Scenario;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The sweep format this program reads.
pub const FORMAT_VERSION: i64 = 1;

/// More runs than this is almost certainly a mistake in the axes.
pub const MAX_RUNS: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    version: i64,
    name: Option<String>,
    scenario: String,
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    axis: Vec<AxisFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AxisFile {
    path: String,
    values: Vec<toml::Value>,
    role: Option<Role>,
}

/// What an axis varies, which decides how its points are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A choice of the operator: points differing here are candidates to
    /// choose between.
    Policy,
    /// A fact of the cloud (billing model, prices, boot times, spot rate):
    /// each setting gets its own frontier and recommendation.
    Setting,
    /// Another sample of the same question (a trace, a window of one): its
    /// points are pooled with the seeds into each candidate's spread.
    Sample,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Policy => "policy",
            Role::Setting => "setting",
            Role::Sample => "sample",
        }
    }
}

/// Top-level scenario keys an axis may set (docs/scenario-format.md); every
/// other path is in the provisioner configuration.
pub const SCENARIO_KEYS: [&str; 11] = [
    "trace",
    "window",
    "interval",
    "cloud",
    "static_machines",
    "shares",
    "horizon",
    "era",
    "reload_delay",
    "epoch",
    "queue_runner_uptime",
];

/// The role of an axis that does not name one: traces and windows are
/// samples; the cloud, the rest of the scenario's world and `billing`
/// (which says how the cloud bills) and `runner` (which queue runner serves
/// the fleet: the world the policy meets, not the policy) are settings; the
/// provisioner configuration and the interval are policy.
fn default_role(in_scenario: bool, segments: &[String]) -> Role {
    let first = segments.first().map_or("", String::as_str);
    if in_scenario {
        match first {
            "trace" | "window" => Role::Sample,
            "interval" => Role::Policy,
            _ => Role::Setting,
        }
    } else if segments.last().is_some_and(|l| l == "billing") || segments == ["runner"] {
        Role::Setting
    } else {
        Role::Policy
    }
}

/// One axis: a key of the scenario and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The path as written, e.g. `systemTypes."x86_64-linux".gracePeriod`.
    pub path: String,
    /// The path's segments below the table it is in (the scenario's top
    /// level, or its provisioner configuration).
    pub segments: Vec<String>,
    pub values: Vec<toml::Value>,
    /// Whether the path is a top-level key of the scenario rather than one
    /// of its provisioner configuration.
    pub in_scenario: bool,
    pub role: Role,
}

impl Axis {
    /// The path without quotes, as a CSV column name:
    /// `systemTypes.x86_64-linux.gracePeriod`.
    pub fn column(&self) -> String {
        self.segments.join(".")
    }
}

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    /// The base scenario, resolved against the sweep file's directory.
    pub scenario: PathBuf,
    /// The base scenario as written in the sweep file.
    pub scenario_text: String,
    /// `None`: the base scenario's own seed.
    pub seeds: Option<Vec<u64>>,
    pub axes: Vec<Axis>,
}

/// One point of the grid: an index into each axis's values, first axis
/// varying slowest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub index: usize,
    pub values: Vec<usize>,
}

/// Splits a dotted path into segments; a segment in double quotes may hold
/// dots (`systemTypes."x86_64-linux:big-parallel".maxMachines`).
pub fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut rest = path.trim();
    loop {
        let (segment, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| format!("path `{path}`: unterminated quote"))?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let s = rest[..end].trim();
            if s.contains('"') {
                return Err(format!("path `{path}`: a quote may only open a segment"));
            }
            (s.to_string(), &rest[end..])
        };
        if segment.is_empty() {
            return Err(format!("path `{path}`: empty segment"));
        }
        segments.push(segment);
        if after.is_empty() {
            return Ok(segments);
        }
        rest = after.strip_prefix('.').ok_or_else(|| format!("path `{path}`: expected `.` after a quoted segment"))?;
    }
}

/// A value as a cell of a table: strings bare, everything else as TOML.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Sweep {
    /// Parses sweep text; the base scenario is resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Sweep, PolicyError> {
        let err = |m: String| PolicyError::new(origin, m);
        let file: SweepFile = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(err(format!(
                "version: this program reads sweep format {FORMAT_VERSION}, got {}",
                file.version
            )));
        }
        if let Some(seeds) = &file.seeds {
            if seeds.is_empty() {
                return Err(err("seeds: must name at least one seed (or leave it out for the scenario's)".into()));
            }
            let mut sorted = seeds.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(err(format!("seeds: {} is listed twice", w[0])));
            }
        }
        let mut axes: Vec<Axis> = Vec::new();
        for (i, a) in file.axis.into_iter().enumerate() {
            let at = format!("axis[{i}]");
            let mut segments = parse_path(&a.path).map_err(|m| err(format!("{at}.{m}")))?;
            let explicit_provisioner = segments.len() > 1 && segments[0] == "provisioner";
            if explicit_provisioner {
                segments.remove(0);
            }
            let in_scenario = !explicit_provisioner && SCENARIO_KEYS.contains(&segments[0].as_str());
            let role = a.role.unwrap_or_else(|| default_role(in_scenario, &segments));
            if a.values.is_empty() {
                return Err(err(format!("{at} (`{}`): values must not be empty", a.path)));
            }
            if let Some(prev) = axes.iter().find(|p| p.segments == segments && p.in_scenario == in_scenario) {
                return Err(err(format!("{at}: path `{}` is already swept by `{}`", a.path, prev.path)));
            }
            for (j, v) in a.values.iter().enumerate() {
                if a.values[..j].contains(v) {
                    return Err(err(format!("{at} (`{}`): value {} is listed twice", a.path, value_text(v))));
                }
            }
            axes.push(Axis { path: a.path.trim().to_string(), segments, values: a.values, in_scenario, role });
        }
        let sweep = Sweep {
            name: file.name.unwrap_or_else(|| {
                Path::new(origin).file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned())
            }),
            scenario: base_dir.join(&file.scenario),
            scenario_text: file.scenario,
            seeds: file.seeds,
            axes,
        };
        let runs = sweep.point_count().saturating_mul(sweep.seeds.as_ref().map_or(1, Vec::len));
        if runs > MAX_RUNS {
            return Err(err(format!("the grid has {runs} runs, more than {MAX_RUNS}")));
        }
        Ok(sweep)
    }

    pub fn point_count(&self) -> usize {
        self.axes.iter().fold(1usize, |n, a| n.saturating_mul(a.values.len()))
    }

    /// The cartesian product of the axes, first axis varying slowest. No
    /// axes: one point, the base scenario itself.
    pub fn points(&self) -> Vec<Point> {
        let n = self.point_count();
        (0..n)
            .map(|index| {
                let mut rest = index;
                let mut values = vec![0; self.axes.len()];
                for (k, axis) in self.axes.iter().enumerate().rev() {
                    values[k] = rest % axis.values.len();
                    rest /= axis.values.len();
                }
                Point { index, values }
            })
            .collect()
    }

    /// Short column names: an axis's last segment, or its whole path when
    /// two axes end alike.
    pub fn axis_names(&self) -> Vec<String> {
        self.axes
            .iter()
            .map(|a| {
                let last = a.segments.last().cloned().unwrap_or_default();
                let clash = self.axes.iter().filter(|b| b.segments.last() == a.segments.last()).count() > 1;
                if clash { a.path.clone() } else { last }
            })
            .collect()
    }

    /// The point's settings as text, e.g. `gracePeriod=600 billing=hourly`.
    pub fn label(&self, point: &Point) -> String {
        let all = self.label_of(point, &[Role::Policy, Role::Setting, Role::Sample]);
        if all.is_empty() { "base".into() } else { all }
    }

    /// The values of the point's axes of the given roles, e.g.
    /// `gracePeriod=600`; empty when it has none.
    pub fn label_of(&self, point: &Point, roles: &[Role]) -> String {
        self.axis_names()
            .iter()
            .zip(&self.axes)
            .zip(&point.values)
            .filter(|((_, axis), _)| roles.contains(&axis.role))
            .map(|((name, axis), &v)| format!("{name}={}", value_text(&axis.values[v])))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether any axis has the role.
    pub fn has(&self, role: Role) -> bool {
        self.axes.iter().any(|a| a.role == role)
    }
}

/// The base scenario as a TOML table, to which points are applied.
#[derive(Debug, Clone)]
pub struct Base {
    table: toml::Table,
    origin: String,
    base_dir: PathBuf,
    /// The base scenario, parsed as it is.
    pub scenario: Scenario,
}

impl Base {
    /// Parses the base scenario's text; relative paths in it resolve against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Base, PolicyError> {
        let scenario = Scenario::parse(text, origin, base_dir).map_err(|e| PolicyError::new(origin, e.message))?;
        let table: toml::Table = toml::from_str(text).map_err(|e| PolicyError::new(origin, e.to_string()))?;
        Ok(Base { table, origin: origin.to_string(), base_dir: base_dir.to_path_buf(), scenario })
    }

    /// The base scenario with each axis set to its value. A path whose
    /// parent does not exist in the configuration is an error naming it; a
    /// leaf the configuration does not know, or a bad value, is rejected by
    /// the scenario's parser with the key's name.
    pub fn with(&self, settings: &[(&Axis, &toml::Value)]) -> Result<Scenario, PolicyError> {
        let mut table = self.table.clone();
        for (axis, value) in settings {
            set(&mut table, axis, value).map_err(|m| PolicyError::new(&self.origin, m))?;
        }
        let text = toml::to_string(&table).map_err(|e| PolicyError::new(&self.origin, e.to_string()))?;
        let what = settings.iter().map(|(a, v)| format!("{} = {}", a.path, v)).collect::<Vec<_>>().join(", ");
        let origin = format!("{} with {what}", self.origin);
        Scenario::parse(&text, &origin, &self.base_dir).map_err(|e| PolicyError::new(origin, e.message))
    }

    /// Checks every value of every axis on its own, so that an error names
    /// the axis and value at fault rather than a whole grid point.
    pub fn check(&self, sweep: &Sweep) -> Result<(), PolicyError> {
        for axis in &sweep.axes {
            for value in &axis.values {
                self.with(&[(axis, value)])?;
            }
        }
        Ok(())
    }

    /// The scenario of a grid point.
    pub fn point(&self, sweep: &Sweep, point: &Point) -> Result<Scenario, PolicyError> {
        let settings: Vec<_> = sweep.axes.iter().zip(&point.values).map(|(a, &v)| (a, &a.values[v])).collect();
        let mut scenario = self.with(&settings)?;
        scenario.name = self.scenario.name.clone();
        Ok(scenario)
    }
}

fn set(scenario: &mut toml::Table, axis: &Axis, value: &toml::Value) -> Result<(), String> {
    let mut table = if axis.in_scenario {
        scenario
    } else {
        match scenario.get_mut("provisioner") {
            Some(toml::Value::Table(t)) => t,
            _ => {
                return Err(format!(
                    "path `{}`: the base scenario names its provisioner configuration in a file; a sweep over its \
                     keys needs it inline, as a [provisioner] table",
                    axis.path
                ));
            }
        }
    };
    let within = if axis.in_scenario { "scenario" } else { "scenario's provisioner configuration" };
    let (leaf, parents) = axis.segments.split_last().ok_or_else(|| format!("path `{}`: empty", axis.path))?;
    let mut walked = String::new();
    for seg in parents {
        walked = if walked.is_empty() { quote(seg) } else { format!("{walked}.{}", quote(seg)) };
        table = match table.get_mut(seg.as_str()) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(format!("path `{}`: `{walked}` is a value, not a table", axis.path));
            }
            None => {
                return Err(format!("path `{}`: `{walked}` does not exist in the base {within}", axis.path));
            }
        };
    }
    table.insert(leaf.clone(), value.clone());
    Ok(())
}

fn quote(segment: &str) -> String {
    if segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        segment.to_string()
    } else {
        format!("\"{segment}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
trace = "t.csv"
seed = 7
[provisioner]
billing = "per-second"
[provisioner.systemTypes."x86_64-linux"]
maxMachines = 4
gracePeriod = 600
[cloud."x86_64-linux"]
on_demand_price = 0.5
"#;

    fn sweep(axes: &str) -> Result<Sweep, PolicyError> {
        Sweep::parse(
            &format!("version = 1\nscenario = \"base.toml\"\nseeds = [1, 2]\n{axes}"),
            "s.toml",
            Path::new("/d"),
        )
    }

    fn base() -> Base {
        Base::parse(BASE, "base.toml", Path::new("/d")).unwrap()
    }

    #[test]
    fn paths_split_on_dots_outside_quotes() {
        assert_eq!(parse_path("stopOnIdle").unwrap(), ["stopOnIdle"]);
        assert_eq!(
            parse_path(r#"systemTypes."x86_64-linux:big-parallel".maxMachines"#).unwrap(),
            ["systemTypes", "x86_64-linux:big-parallel", "maxMachines"]
        );
        assert_eq!(parse_path(r#""a.b".c"#).unwrap(), ["a.b", "c"]);
        for bad in ["", "a..b", "a.", r#"a."b"#, r#"a."b"c"#, r#"a"b".c"#] {
            let e = parse_path(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
    }

    #[test]
    fn the_grid_is_the_cartesian_product_first_axis_slowest() {
        let s = sweep(
            "[[axis]]\npath = \"billing\"\nvalues = [\"hourly\", \"per-second\"]\n\
             [[axis]]\npath = 'systemTypes.\"x86_64-linux\".gracePeriod'\nvalues = [0, 300, 600]\n",
        )
        .unwrap();
        assert_eq!(s.scenario, PathBuf::from("/d/base.toml"));
        let points = s.points();
        assert_eq!(points.len(), 6);
        let values: Vec<Vec<usize>> = points.iter().map(|p| p.values.clone()).collect();
        assert_eq!(values, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
        assert!(points.iter().enumerate().all(|(i, p)| p.index == i));
        assert_eq!(s.label(&points[4]), "billing=per-second gracePeriod=300");
        assert_eq!(sweep("").unwrap().points().len(), 1);
    }

    #[test]
    fn axis_names_are_whole_paths_when_last_segments_clash() {
        let s = sweep(
            "[[axis]]\npath = 'systemTypes.\"x86_64-linux\".billing'\nvalues = [\"hourly\"]\n\
             [[axis]]\npath = \"billing\"\nvalues = [\"hourly\"]\n[[axis]]\npath = \"quirks\"\nvalues = [\"fixed\"]\n",
        )
        .unwrap();
        assert_eq!(s.axis_names(), [r#"systemTypes."x86_64-linux".billing"#, "billing", "quirks"]);
    }

    #[test]
    fn bad_sweep_files_name_the_problem() {
        let cases = [
            ("[[axis]]\npath = \"billing\"\nvalues = []\n", "values must not be empty"),
            ("[[axis]]\npath = \"billing\"\nvalue = [1]\n", "value"),
            ("[[axis]]\npath = \"a..b\"\nvalues = [1]\n", "`a..b`"),
            ("colour = 1\n", "colour"),
            ("[[axis]]\npath = \"quirks\"\nvalues = [\"fixed\", \"fixed\"]\n", "listed twice"),
            (
                "[[axis]]\npath = \"quirks\"\nvalues = [1]\n[[axis]]\npath = '\"quirks\"'\nvalues = [2]\n",
                "already swept",
            ),
        ];
        for (axes, want) in cases {
            let e = sweep(axes).unwrap_err().to_string();
            assert!(e.contains(want), "{axes}: {e}");
        }
        let e = Sweep::parse("version = 2\nscenario = \"b.toml\"\n", "s.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        let e = Sweep::parse("version = 1\nscenario = \"b.toml\"\nseeds = []\n", "s.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("seeds"), "{e}");
    }

    #[test]
    fn applying_a_point_changes_only_its_keys() {
        let s = sweep(
            "[[axis]]\npath = 'systemTypes.\"x86_64-linux\".runnablesPerMachine'\nvalues = [5, 50]\n\
             [[axis]]\npath = \"billing\"\nvalues = [\"hourly\"]\n\
             [[axis]]\npath = 'systemTypes.\"x86_64-linux\".stopOnIdle'\nvalues = [true]\n",
        )
        .unwrap();
        let b = base();
        b.check(&s).unwrap();
        let points = s.points();
        let sc = b.point(&s, &points[1]).unwrap();
        let t = &sc.config.system_types["x86_64-linux"];
        assert_eq!((t.runnables_per_machine, t.max_machines, t.grace_period, t.stop_on_idle), (50, 4, 600, true));
        assert_eq!(sc.seed, 7);
        assert_eq!(sc.trace, PathBuf::from("/d/t.csv"));
        assert_eq!(format!("{:?}", sc.config.billing), format!("{:?}", crate::billing::BillingModel::Hourly));
        let sc0 = b.point(&s, &points[0]).unwrap();
        assert_eq!(sc0.config.system_types["x86_64-linux"].runnables_per_machine, 5);
    }

    #[test]
    fn paths_that_do_not_exist_are_named() {
        let b = base();
        let cases = [
            ("systemTypes.\"aarch64-linux\".maxMachines", "2", "`systemTypes.\"aarch64-linux\"` does not exist"),
            ("systemTypes.\"x86_64-linux\".maxMachine", "2", "maxMachine"),
            ("stopOnIdle", "true", "stopOnIdle"),
            ("billing.x", "1", "`billing` is a value"),
            ("systemTypes.\"x86_64-linux\".runnablesPerMachine", "0", "runnablesPerMachine"),
            ("quirks", "\"sometimes\"", "quirks"),
        ];
        for (path, value, want) in cases {
            let s = sweep(&format!("[[axis]]\npath = '{path}'\nvalues = [{value}]\n")).unwrap();
            let e = b.check(&s).unwrap_err().to_string();
            assert!(e.contains(want), "{path}: {e}");
        }
    }

    #[test]
    fn a_base_naming_a_configuration_file_sweeps_only_scenario_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf.json"), r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/m.nix"}}}"#)
            .unwrap();
        let text = "trace = \"t.csv\"\nprovisioner = \"conf.json\"\n[cloud.\"x86_64-linux\"]\n";
        let b = Base::parse(text, "b.toml", dir.path()).unwrap();
        let s = |axes: &str| {
            Sweep::parse(&format!("version = 1\nscenario = \"b.toml\"\n{axes}"), "s.toml", dir.path()).unwrap()
        };
        let e = b.check(&s("[[axis]]\npath = \"billing\"\nvalues = [\"hourly\"]\n")).unwrap_err().to_string();
        assert!(e.contains("inline"), "{e}");
        b.check(&s("[[axis]]\npath = \"interval\"\nvalues = [60, 600]\n")).unwrap();
        let sc = b
            .point(&s("[[axis]]\npath = \"interval\"\nvalues = [60]\n"), &Point { index: 0, values: vec![0] })
            .unwrap();
        assert_eq!((sc.interval, sc.config.system_types["x86_64-linux"].max_machines), (60.0, 1));
    }

    #[test]
    fn scenario_axes_set_the_interval_the_cloud_the_trace_and_its_window() {
        let s = sweep(
            "[[axis]]\npath = \"interval\"\nvalues = [60]\n\
             [[axis]]\npath = 'cloud.\"x86_64-linux\".boot_median'\nvalues = [200]\n\
             [[axis]]\npath = \"trace\"\nvalues = [\"other.csv\"]\n\
             [[axis]]\npath = \"window\"\nvalues = [\"1d..2d\"]\n\
             [[axis]]\npath = 'provisioner.systemTypes.\"x86_64-linux\".maxMachines'\nvalues = [9]\n\
             [[axis]]\npath = \"runner\"\nvalues = [\"cpp\", \"rust\"]\n",
        )
        .unwrap();
        let roles: Vec<Role> = s.axes.iter().map(|a| a.role).collect();
        assert_eq!(roles, [Role::Policy, Role::Setting, Role::Sample, Role::Sample, Role::Policy, Role::Setting]);
        assert_eq!(s.axes[1].column(), "cloud.x86_64-linux.boot_median");
        let b = base();
        b.check(&s).unwrap();
        let sc = b.point(&s, &s.points()[0]).unwrap();
        assert_eq!((sc.interval, sc.cloud["x86_64-linux"].boot_median), (60.0, 200.0));
        assert_eq!(sc.trace, PathBuf::from("/d/other.csv"));
        assert_eq!(sc.window, Some(crate::sim::Window { start: 86400.0, end: 172800.0 }));
        assert_eq!(sc.config.system_types["x86_64-linux"].max_machines, 9);
        assert_eq!(s.label_of(&s.points()[0], &[Role::Sample]), "trace=other.csv window=1d..2d");
        // Roles can be named; a bad window or a cloud key that does not exist is named.
        let s = sweep("[[axis]]\npath = \"billing\"\nrole = \"policy\"\nvalues = [\"hourly\"]\n").unwrap();
        assert_eq!(s.axes[0].role, Role::Policy);
        for (axes, want) in [
            ("[[axis]]\npath = \"window\"\nvalues = [\"2d..1d\"]\n", "window"),
            (
                "[[axis]]\npath = 'cloud.\"aarch64-linux\".boot_median'\nvalues = [1]\n",
                "`cloud.\"aarch64-linux\"` does not exist",
            ),
            ("[[axis]]\npath = 'cloud.\"x86_64-linux\".boot'\nvalues = [1]\n", "boot"),
        ] {
            let e = base().check(&sweep(axes).unwrap()).unwrap_err().to_string();
            assert!(e.contains(want), "{axes}: {e}");
        }
    }
}
