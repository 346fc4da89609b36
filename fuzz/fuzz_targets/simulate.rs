//! Tiny simulations: the input is scenario lines, `---`, then a trace. The
//! simulator's own arithmetic (shares, billing, retries, dependencies, spot
//! interruptions) under any scenario the parser accepts, with runs kept
//! short (at most 2000 passes, 4 KB of trace).
#![no_main]
use hydra_provisioner::sim::{self, NoObserver, Scenario};
use hydra_provisioner::trace::TraceReader;
use libfuzzer_sys::fuzz_target;

const BASE: &str = "trace = \"t.csv\"\n[provisioner.systemTypes.\"x86_64-linux\"]\nmaxMachines = 3\n\
[cloud.\"x86_64-linux\"]\nmarket = \"spot\"\nspot_price = 0.1\nspot_interruptions_per_hour = 2\ndeploy_failure_rate = 0.2\n\
[[static_machines]]\nname = \"s\"\nsystems = [\"x86_64-linux\"]\ncount = 2\n";

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let (extra, trace) = text.split_once("\n---\n").unwrap_or(("horizon = 20000", &text));
    // Top-level keys go before the tables.
    let scenario_text = format!("{extra}\n{BASE}");
    let Ok(scenario) = Scenario::parse(&scenario_text, "fuzz.toml", std::path::Path::new("/fuzz")) else { return };
    let horizon = scenario.horizon.unwrap_or(f64::INFINITY);
    if !(horizon / scenario.interval <= 2000.0) {
        return;
    }
    let mut reader = TraceReader::new(trace.as_bytes(), "fuzz.csv");
    let _ = sim::run(&scenario, &mut reader, &mut NoObserver);
});
