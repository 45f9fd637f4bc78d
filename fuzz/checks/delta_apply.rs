//! The checks of the `delta_apply` fuzz target, shared with `tests/fuzz_regressions.rs`: a
//! delta read and applied onto a scratch target in memory.
//!
//! Invariants: never panics, never allocates past its cap; an accepted delta leaves it at the delta's final size, and applying it again
//! changes nothing (idempotence).

use replicore::resync::Delta;

const SCRATCH: &[u8] = &[0x5a; 10_000];

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer (so
/// that mutations reach the entry parser instead of stopping at the trailer check).
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn check_one(data: &[u8]) {
    let mut target = SCRATCH.to_vec();
    match Delta::apply_in_memory(data, &mut target, 1 << 20, &mut |_, _| true) {
        // Past the trailer check, a failure may follow chunks already written (each one having
        // passed its own hash check); what matters here is that it is an error, not a panic.
        Err(_) => {}
        Ok(stats) => {
            assert_eq!(target.len() as u64, stats.final_size);
            let once = target.clone();
            Delta::apply_in_memory(data, &mut target, 1 << 20, &mut |_, _| true)
                .expect("a delta applies twice");
            assert_eq!(target, once, "applying twice must change nothing");
        }
    }
}
