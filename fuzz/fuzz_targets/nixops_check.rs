//! `nixops check`: exit status and output.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let code = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let text = String::from_utf8_lossy(&data[5..]);
    let middle = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let (stdout, stderr) = text.split_at(middle);
    let code = if data[4] & 2 == 0 { Some(code) } else { None };
    let _ = hydra_provisioner::adapters::nixops::classify_check(code, data[4] & 1 == 1, stdout, stderr);
});
