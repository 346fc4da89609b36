//! Tiny simulations of fuzzed traces under a fixed scenario: the
//! simulator's own arithmetic (shares, billing, retries, dependencies).
#![no_main]
use hydra_provisioner::sim::{self, NoObserver, Scenario};
use hydra_provisioner::trace::TraceReader;
use libfuzzer_sys::fuzz_target;

const SCENARIO: &str = "trace = \"t.csv\"\nhorizon = 20000\n[provisioner.systemTypes.\"x86_64-linux\"]\nmaxMachines = 3\n\
[cloud.\"x86_64-linux\"]\nmarket = \"spot\"\nspot_price = 0.1\nspot_interruptions_per_hour = 2\ndeploy_failure_rate = 0.2\n\
[[static_machines]]\nname = \"s\"\nsystems = [\"x86_64-linux\"]\ncount = 2\n";

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let scenario = Scenario::parse(SCENARIO, "fuzz.toml", std::path::Path::new("/fuzz")).unwrap();
    let mut reader = TraceReader::new(data, "fuzz.csv");
    let _ = sim::run(&scenario, &mut reader, &mut NoObserver);
});
