//! The Rust queue runner's `/status` and its RFC 3339 times.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hydra_provisioner::adapters::queue::parse_rust_status(&text);
    let _ = hydra_provisioner::adapters::queue::parse_rfc3339(&text);
});
