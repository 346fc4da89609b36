//! How a plan's commands take effect in the simulated cloud, for each
//! generation of provisioner shell: the original's Python, which called
//! NixOps's library, and this project's driver, which runs the `nixops`
//! command line (`adapters::nixops`). The engine decides the same way in
//! both; what differs is what NixOps then does with the command, and that is
//! all this module says. Everything else about NixOps is the same for both
//! and lives with the cloud model in `sim/mod.rs` (for example, `nixops
//! deploy` restarts a stopped EC2 machine before deploying it, and fails for
//! a vanished one).
//!
//! It decides nothing about the fleet and keeps no state.

use crate::config::{Config, Quirks};

/// What the shell of `config.quirks` does with the commands of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellRules {
    /// Deploys that run at once: the original deployed one machine after
    /// another; the driver runs `deployConcurrency` deploys in parallel.
    pub deploy_slots: u32,
    /// Whether a stop really stops the machine. The original's `stop()`
    /// asked NixOps's "are you sure?" question on a terminal it did not
    /// have, so the answer was no and the machine kept running, and billing
    /// (DESIGN section 3, "`stopOnIdle` never stopped anything unattended").
    /// The driver passes `--confirm`.
    pub stop_confirmed: bool,
}

impl ShellRules {
    pub fn of(config: &Config) -> ShellRules {
        match config.quirks {
            Quirks::Original => ShellRules { deploy_slots: 1, stop_confirmed: false },
            Quirks::Fixed => ShellRules { deploy_slots: config.deploy_concurrency.max(1), stop_confirmed: true },
        }
    }
}
