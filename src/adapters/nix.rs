//! Evaluating Nix files with `nix-instantiate`, as the original did for
//! `conf.nix`: `nix-instantiate --eval --strict --json`. We add
//! `--store dummy://` so evaluation needs no daemon, no `/nix` and no root,
//! and run it from the file's directory so relative paths resolve as the
//! user expects. Only stdout of a successful run is parsed: a failed
//! evaluation can leave partial JSON behind.

use super::process;
use anyhow::{Context, bail};
use std::path::Path;
use std::time::Duration;

/// The evaluator's program; `NIX_INSTANTIATE` overrides it (tests, odd installs).
fn program() -> String {
    std::env::var("NIX_INSTANTIATE").unwrap_or_else(|_| "nix-instantiate".to_string())
}

/// Evaluates `path` strictly to JSON.
pub fn eval_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let abs = std::fs::canonicalize(path).with_context(|| format!("cannot read config {}", path.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let argv = vec![
        program(),
        "--eval".into(),
        "--strict".into(),
        "--json".into(),
        "--store".into(),
        "dummy://".into(),
        abs.display().to_string(),
    ];
    let out = process::run(&argv, None, Some(dir), Duration::from_secs(120)).map_err(|e| {
        if e.source.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "cannot evaluate {}: `{}` is not installed (install Nix, e.g. `apt-get install nix-bin`, or use a .json/.toml config)",
                path.display(),
                e.program
            )
        } else {
            anyhow::Error::new(e)
        }
    })?;
    if !out.success() {
        bail!(
            "evaluating {} with nix-instantiate failed ({}):\n{}",
            path.display(),
            out.describe(),
            out.stderr.trim_end()
        );
    }
    serde_json::from_str(&out.stdout)
        .with_context(|| format!("nix-instantiate printed something that is not JSON for {}", path.display()))
}
