//! Fuzz target: see `fuzz/checks/hash_text.rs` for what it runs and checks.
#![no_main]

#[path = "../checks/hash_text.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
