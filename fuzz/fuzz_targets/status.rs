//! The C++ queue runner's status document, every era.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = hydra_provisioner::status::parse_status(&text, "fuzz") {
        if s.is_up() && s.machines.is_empty() {
            assert!(!s.machines_known);
        }
    }
});
