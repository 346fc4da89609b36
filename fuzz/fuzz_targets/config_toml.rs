//! Config files in TOML (nan and inf included) through `config::load`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("hp-fuzz-toml-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("conf.toml");
    if std::fs::write(&path, data).is_ok() {
        let _ = hydra_provisioner::config::load(&path);
    }
});
