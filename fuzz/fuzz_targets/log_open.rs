//! Fuzz target: change log reading and recovery on arbitrary bytes. The checks live in
//! `fuzz/checks/log_open.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks/log_open.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
