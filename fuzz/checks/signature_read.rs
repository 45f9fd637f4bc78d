//! The checks of the `signature_read` fuzz target, shared with `tests/fuzz_regressions.rs`:
//! plain signatures, and signatures sealed under the fixed key.
//!
//! Invariants: never panics, never allocates past what the input holds (and one frame of at
//! most 1 MiB); a signature that reads writes back to bytes that read as the same signature
//! (not always the same bytes: a newer minor version and reserved bytes are accepted on read
//! and written as this version's; a sealed one gets a new salt).

#[path = "fixed_key.rs"]
mod fixed_key;

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
        assert!(sig.key_id().is_none(), "a plain signature has no key");
        let mut back = Vec::new();
        sig.to_writer(&mut back).expect("writing to memory");
        let again = Signature::from_reader(&back[..]).expect("a written signature reads");
        assert_eq!(again, sig, "a signature must survive writing and reading");
    }
    let key = fixed_key::key();
    if let Ok(sig) = Signature::from_reader_sealed(data, &key) {
        assert_eq!(
            sig.key_id(),
            Some(key.id()),
            "a sealed signature names its key"
        );
        let mut back = Vec::new();
        sig.to_writer_sealed(&mut back, &key)
            .expect("writing to memory");
        let again =
            Signature::from_reader_sealed(&back[..], &key).expect("a written signature reads");
        assert_eq!(
            again, sig,
            "a sealed signature must survive writing and reading"
        );
    }
}
