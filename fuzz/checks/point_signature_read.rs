//! The checks of the `point_signature_read` fuzz target, shared with
//! `tests/fuzz_regressions.rs`: point signatures (`.rcpsig`), always sealed, read with the fixed
//! key.
//!
//! Invariants: never panics, never allocates past what the input holds (and one frame of at
//! most 1 MiB); a point signature that reads writes back to bytes that read as the same one
//! (with a new salt).

#[path = "fixed_key.rs"]
mod fixed_key;

use replicore::resync::point_sig::PointSignature;

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer (so
/// that mutations reach the header's fields and the frames instead of stopping at the trailer
/// check).
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn check_one(data: &[u8]) {
    let key = fixed_key::key();
    if let Ok(sig) = PointSignature::from_reader(data, &key) {
        assert_eq!(sig.key_id, key.id(), "a point signature names its key");
        let mut back = Vec::new();
        sig.to_writer(&mut back, &key).expect("writing to memory");
        let again = PointSignature::from_reader(&back[..], &key).expect("a written one reads");
        assert_eq!(
            again, sig,
            "a point signature must survive writing and reading"
        );
    }
}
