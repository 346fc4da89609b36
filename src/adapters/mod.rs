//! Adapters: the only code that spawns processes or talks to the network.
//!
//! Each adapter turns one external tool's documented interface into the
//! project's own types and back. None of them decides anything; none reads
//! the wall clock except to bound how long a command may run.

pub mod files;
pub mod hydra_db;
pub mod machines_file;
pub mod nix;
pub mod nixops;
pub mod process;
pub mod queue;
pub mod rust_runner;
