//! Production tests: `hydra-provisioner run` against fake `nixops` and `hydra-queue-runner`.
