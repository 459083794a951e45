//! Fuzz target: see `fuzz/checks/import_formats.rs` for what it runs and checks.
#![no_main]

#[path = "../checks/import_formats.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
