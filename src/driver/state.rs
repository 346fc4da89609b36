//! The state file (`<stateDir>/state.json`): what the provisioner remembers
//! between passes that NixOps does not record, namely each deployment's
//! [`MachineMemory`] (idle since, consecutive deploy failures, listed or
//! delisted since, deployed fingerprint), the creations in flight, and the
//! Prometheus counters ([`Counters`]), which must grow across passes.
//!
//! A creation is recorded *before* `nixops create` runs and forgotten only
//! once `set-args` has tagged the deployment, so a crash between the two
//! leaves a name the next pass recognises and adopts (see `driver`).
//!
//! Missing or unreadable state is never fatal: every field defaults to
//! "nothing known", which the engine treats safely, and the file is rebuilt
//! from observation; the counters then restart from zero (a counter reset to
//! Prometheus). This module only reads and writes the file.

use super::metrics::Counters;
use crate::adapters::files;
use crate::model::{MachineMemory, Seconds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The format version written today.
pub const STATE_VERSION: u32 = 1;

/// Everything in the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub version: u32,
    /// Memory per deployment name.
    pub deployments: BTreeMap<String, MachineMemory>,
    /// Deployments whose creation started but whose tag may not be set yet.
    pub pending_creations: BTreeMap<String, PendingCreation>,
    /// What the passes counted so far (absent in files of older versions).
    pub counters: Counters,
}

/// A `nixops create` that may not have been followed by `set-args` yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCreation {
    pub machine_type: String,
    /// The pass that started it.
    pub since: Seconds,
    /// The expression and path it was created with, to recognise it if the
    /// `create` stopped before naming it.
    #[serde(default)]
    pub nixops_expr: Option<String>,
    #[serde(default)]
    pub nix_path: Vec<String>,
}

/// Reads the state at `path`. A missing file is an empty state; a corrupt
/// one is kept aside as `<path>.corrupt` for inspection and replaced by an
/// empty state, with a warning to log.
pub fn load(path: &Path) -> (State, Option<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (State::default(), None),
        Err(e) => {
            return (
                State::default(),
                Some(format!(
                    "cannot read state file {}: {e}; starting from what NixOps and Hydra report",
                    path.display()
                )),
            );
        }
    };
    match serde_json::from_str::<State>(&text) {
        Ok(state) if state.version <= STATE_VERSION => (state, None),
        Ok(state) => (
            State::default(),
            Some(format!(
                "state file {} has version {} (this program writes {STATE_VERSION}); ignoring it",
                path.display(),
                state.version
            )),
        ),
        Err(e) => {
            let aside = path.with_extension("json.corrupt");
            let _ = std::fs::copy(path, &aside);
            (
                State::default(),
                Some(format!(
                    "state file {} is corrupt ({e}); kept a copy at {} and starting from what NixOps and Hydra report",
                    path.display(),
                    aside.display()
                )),
            )
        }
    }
}

/// Writes the state atomically.
pub fn save(path: &Path, state: &State) -> anyhow::Result<()> {
    let mut state = state.clone();
    state.version = STATE_VERSION;
    let mut text = serde_json::to_string_pretty(&state)?;
    text.push('\n');
    files::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(load(&path), (State::default(), None));
        let mut state = State::default();
        state.deployments.insert("t-0".into(), MachineMemory { deploy_failures: 2, ..Default::default() });
        state.pending_creations.insert(
            "t-1".into(),
            PendingCreation {
                machine_type: "x86_64-linux".into(),
                since: 5,
                nixops_expr: Some("/d.nix".into()),
                nix_path: vec![],
            },
        );
        state.counters.record(super::super::metrics::Event::Destroyed, "x86_64-linux");
        state.counters.record_pass(super::super::metrics::Outcome::Success, 0, 7);
        save(&path, &state).unwrap();
        let (back, warning) = load(&path);
        assert!(warning.is_none());
        assert_eq!(back.deployments, state.deployments);
        assert_eq!(back.pending_creations, state.pending_creations);
        assert_eq!(back.counters, state.counters);

        // A file written before the counters existed still loads.
        std::fs::write(&path, r#"{"version": 1, "deployments": {}, "pending_creations": {}}"#).unwrap();
        assert_eq!(load(&path), (State { version: 1, ..State::default() }, None));

        std::fs::write(&path, "{\"deployments\": [").unwrap();
        let (back, warning) = load(&path);
        assert_eq!(back, State::default());
        assert!(warning.unwrap().contains("corrupt"));
        assert!(dir.path().join("state.json.corrupt").exists());
    }
}
