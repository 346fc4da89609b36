//! hydra-provisioner: an autoscaler for the build machines of a Hydra
//! server, and a simulator that replays Hydra queue traces to prove a
//! scaling policy before it is deployed.
//!
//! The crate is a functional core ([`engine`], [`billing`], [`status`],
//! [`config`] parsing, [`model`]) with imperative shells around it
//! ([`adapters`] for external tools, [`driver`] for the live pass, [`sim`]
//! for the simulator, which replays [`trace`]s and reports [`metrics`]);
//! [`policy`] turns many simulations into sweeps, Pareto frontiers and a
//! gate for policy changes.
//! ARCHITECTURE.md has the map.

pub mod adapters;
pub mod billing;
pub mod cli;
pub mod config;
pub mod derivation;
pub mod driver;
pub mod engine;
pub mod metrics;
pub mod model;
pub mod passes;
pub mod policy;
pub mod pool;
pub mod replay;
pub mod runner_status;
pub mod sim;
pub mod status;
pub mod trace;
