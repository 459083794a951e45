//! Fuzz target: see `fuzz/checks/decode_image.rs` for what it runs and checks.
#![no_main]

#[path = "../checks/decode_image.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
