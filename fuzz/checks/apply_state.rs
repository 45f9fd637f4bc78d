//! The checks of the `apply_state` fuzz target, shared with `tests/fuzz_regressions.rs`.
//!
//! Invariants: never panics; a file that parses writes back to bytes that parse as the same
//! value.

use replicore::bundle::ApplyState;

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer.
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn check_one(data: &[u8]) {
    if let Ok(s) = ApplyState::from_bytes(data) {
        let back = s.to_bytes().expect("a parsed file encodes");
        assert_eq!(
            ApplyState::from_bytes(&back).expect("a written file parses"),
            s
        );
    }
}
