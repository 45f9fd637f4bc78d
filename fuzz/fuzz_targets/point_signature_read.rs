//! Fuzz target: see `fuzz/checks/point_signature_read.rs` (shared with
//! `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/point_signature_read.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
