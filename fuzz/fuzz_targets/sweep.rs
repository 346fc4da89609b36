//! Sweep files, each point applied to a fixed base scenario.
#![no_main]
use hydra_provisioner::policy::sweep::{Base, Sweep};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const BASE: &str = "trace = \"t.csv\"\n[provisioner.systemTypes.\"x86_64-linux\"]\nmaxMachines = 2\n[cloud.\"x86_64-linux\"]\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(sweep) = Sweep::parse(&text, "fuzz-sweep.toml", Path::new("/fuzz")) else { return };
    let base = Base::parse(BASE, "base.toml", Path::new("/fuzz")).unwrap();
    if base.check(&sweep).is_ok() {
        for point in sweep.points().iter().take(16) {
            let _ = base.point(&sweep, point);
        }
    }
});
