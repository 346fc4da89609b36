//! Publishing Hydra's machines file: written atomically at `machinesFile`,
//! or piped to `updateCommand`'s stdin (argv, never a shell) when that is
//! configured, as the original did.
//!
//! The content comes from the engine's plan; this module neither renders
//! nor decides when to publish (the driver writes it after the deploys and
//! before any stop or destroy).

use super::{files, process};
use crate::config::Config;
use anyhow::bail;
use std::time::Duration;

/// Where the machines file goes, for logs.
pub fn destination(config: &Config) -> String {
    match &config.update_command {
        Some(argv) => format!("updateCommand `{}`", argv.join(" ")),
        None => config.machines_file.display().to_string(),
    }
}

/// Publishes `contents` as the machines file.
pub fn publish(config: &Config, contents: &str, timeout: Duration) -> anyhow::Result<()> {
    match &config.update_command {
        Some(argv) => {
            let out = process::run(argv, Some(contents.as_bytes()), None, timeout)?;
            if !out.success() {
                bail!("updateCommand `{}` failed: {}", argv.join(" "), out.failure_detail());
            }
            Ok(())
        }
        None => files::write_atomically(&config.machines_file, contents.as_bytes()),
    }
}
