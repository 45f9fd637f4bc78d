//! Fuzz target: see `fuzz/checks/apply_state.rs` (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/apply_state.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
