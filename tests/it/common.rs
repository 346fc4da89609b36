//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// The real binary under test.
pub fn bin() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("hydra-provisioner").expect("binary is built")
}

/// Whether `nix-instantiate` is on PATH (CI installs it; see .ci/run). A
/// test that needs it and finds none says so and passes: CI always has it,
/// and there `CI=true` turns its absence into a failure.
pub fn have_nix() -> bool {
    let found =
        std::process::Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").is_err(), "nix-instantiate is missing on CI; .ci/run must install it");
        eprintln!("skipped: nix-instantiate not installed (.ci/run installs it)");
    }
    found
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// The Python interpreter that runs the fakes (the system one starts
/// several times faster than a version-manager shim).
pub fn python() -> String {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3".into() } else { "python3".into() }
}

/// The path of a fake of an external tool in `tests/fakes/`.
pub fn fake(name: &str) -> String {
    root().join("tests/fakes").join(name).display().to_string()
}
