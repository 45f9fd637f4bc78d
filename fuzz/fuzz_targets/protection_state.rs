//! Fuzz target: see `fuzz/checks/protection_state.rs` (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/protection_state.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
