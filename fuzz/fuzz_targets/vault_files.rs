//! Fuzz target: see `fuzz/checks/vault_files.rs` (shared with `tests/fuzz_regressions.rs`).
#![no_main]

#[path = "../checks/vault_files.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
