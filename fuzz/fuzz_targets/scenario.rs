//! Scenario files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hydra_provisioner::sim::Scenario::parse(&text, "fuzz.toml", std::path::Path::new("/fuzz"));
});
