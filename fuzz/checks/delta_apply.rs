//! The checks of the `delta_apply` fuzz target, shared with `tests/fuzz_regressions.rs`: a
//! delta read and applied onto a scratch target in memory, plain and sealed under the fixed key.
//!
//! Invariants: never panics, never allocates past its cap; a refused delta leaves the target
//! untouched (everything is checked, the target's chunks included, before the first write); an
//! accepted delta leaves it at the delta's final size, and applying it again changes nothing
//! (idempotence).

#[path = "fixed_key.rs"]
mod fixed_key;

use replicore::resync::Delta;

/// The target every delta is applied to (the seeds are deltas against its signature).
pub const SCRATCH: &[u8] = &[0x5a; 10_000];

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer (so
/// that mutations reach the entry parser instead of stopping at the trailer check).
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn check_one(data: &[u8]) {
    let key = fixed_key::key();
    for keyed in [false, true] {
        let apply = |target: &mut Vec<u8>| {
            if keyed {
                Delta::apply_sealed_in_memory(data, target, &key, 1 << 20, &mut |_, _| true)
            } else {
                Delta::apply_in_memory(data, target, 1 << 20, &mut |_, _| true)
            }
        };
        let mut target = SCRATCH.to_vec();
        match apply(&mut target) {
            Err(e) => assert_eq!(target, SCRATCH, "a refused delta changed the target: {e}"),
            Ok(stats) => {
                assert_eq!(target.len() as u64, stats.final_size);
                let once = target.clone();
                apply(&mut target).expect("a delta applies twice");
                assert_eq!(target, once, "applying twice must change nothing");
            }
        }
    }
}
