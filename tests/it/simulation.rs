//! Simulation tests: `hydra-provisioner simulate` and the `sim` library.
