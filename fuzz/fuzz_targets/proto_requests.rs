//! Fuzz target: see `fuzz/checks/proto_requests.rs` for what it runs and checks.
#![no_main]

#[path = "../checks/proto_requests.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
