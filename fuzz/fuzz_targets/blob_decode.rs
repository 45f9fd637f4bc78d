//! Fuzz target: see `fuzz/checks/blob_decode.rs` (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/blob_decode.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
