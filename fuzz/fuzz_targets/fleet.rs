//! Fleet files (`plan --fleet`), decided on when they parse.
#![no_main]
use hydra_provisioner::model::{Fleet, Observation, QueueStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(fleet) = serde_json::from_slice::<Fleet>(data) else { return };
    let config = hydra_provisioner::config::Config::from_json_str(
        r#"{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/d", "maxMachines": 10000, "minMachines": 3}}}"#,
    )
    .unwrap();
    let mut status = QueueStatus::down("fuzz");
    status.health = hydra_provisioner::model::QueueHealth::Up;
    let _ = hydra_provisioner::engine::decide(&config, &Observation { status, fleet }, 1_700_000_000);
});
