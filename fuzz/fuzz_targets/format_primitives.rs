//! Fuzz target: the shared format primitives on arbitrary bytes. The checks live in
//! `fuzz/checks/format_primitives.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks/format_primitives.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
