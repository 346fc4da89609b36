//! `nixops export --all` output.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hydra_provisioner::adapters::nixops::parse_inventory(&text, "hydra-provisioned");
});
