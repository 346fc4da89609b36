//! Config validation on arbitrary JSON text: an answer, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else { return };
    if let Ok((c, _)) = hydra_provisioner::config::parse(&value, "fuzz", None) {
        assert!(hydra_provisioner::config::valid_tag(&c.tag));
        assert!(c.system_types.values().all(|t| t.max_machines <= hydra_provisioner::config::MAX_MACHINES));
    }
});
