//! The one integration-test binary. Each module drives the real
//! `hydra-provisioner` binary or the library's public API for one area;
//! fakes of external tools live in `tests/fakes/`, fixtures in `tests/data/`.

mod common;
mod engine;
mod faults;
mod fuzz;
mod import;
mod operators;
mod oracle;
mod pg;
mod policy;
mod production;
mod replay;
mod reports;
mod rust_runner;
mod simulation;
