//! Trace CSV: every row an answer (a row or an error naming file:line:column).
#![no_main]
use hydra_provisioner::trace::{StepSource, TraceReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = TraceReader::new(data, "fuzz.csv");
    for _ in 0..1000 {
        match reader.next_step() {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                assert!(e.to_string().starts_with("fuzz.csv:"));
                break;
            }
            None => break,
        }
    }
});
