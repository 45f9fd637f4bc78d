//! Fuzz target: see `fuzz/checks/delta_apply.rs` (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/delta_apply.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
