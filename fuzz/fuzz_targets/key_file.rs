//! Fuzz target: see `fuzz/checks/key_file.rs` (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/key_file.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
