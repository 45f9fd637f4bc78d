//! The checks of the `signature_read` fuzz target, shared with `tests/fuzz_regressions.rs`.
//!
//! Invariants: never panics, never allocates past what the input holds; a signature that reads
//! writes back to bytes that read as the same signature (not always the same bytes: a newer
//! minor version and reserved bytes are accepted on read and written as this version's).

use replicore::resync::Signature;

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer (so
/// that mutations reach the body instead of stopping at the trailer check).
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn check_one(data: &[u8]) {
    if let Ok(sig) = Signature::from_reader(data) {
        let mut back = Vec::new();
        sig.to_writer(&mut back).expect("writing to memory");
        let again = Signature::from_reader(&back[..]).expect("a written signature reads");
        assert_eq!(again, sig, "a signature must survive writing and reading");
    }
}
