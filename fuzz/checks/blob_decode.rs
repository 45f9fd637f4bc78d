//! The checks of the `blob_decode` fuzz target, shared with `tests/fuzz_regressions.rs`: the
//! input is a 32-byte blob id followed by a stored blob, decoded under the fixed key.
//!
//! Invariants: never panics, never allocates past the declared (capped) size; a blob that
//! decodes yields plaintext whose keyed hash is the id, and encodes again to a blob that
//! decodes to the same plaintext.

#[path = "fixed_key.rs"]
mod fixed_key;

use replicore::BlobId;
use replicore::blob;

pub fn check(data: &[u8]) {
    if data.len() < 32 {
        return;
    }
    let key = fixed_key::key();
    let mut id = [0u8; 32];
    id.copy_from_slice(&data[..32]);
    let id = BlobId(id);
    let stored = &data[32..];
    let _ = blob::declared_len(stored);
    if let Ok(plain) = blob::decode(&key, &id, stored) {
        assert_eq!(
            key.blob_id(&plain),
            id,
            "decoded plaintext must hash to its id"
        );
        let again = blob::encode(&key, &plain, 1).expect("a decoded blob encodes");
        assert_eq!(again.id, id);
        assert_eq!(
            blob::decode(&key, &id, &again.bytes).expect("re-encoded blob decodes"),
            plain
        );
    }
}
