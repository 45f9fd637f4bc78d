//! The checks of the `key_file` fuzz target, shared with `tests/fuzz_regressions.rs`.
//!
//! Invariants: never panics; hostile argon2 parameters are refused before hashing; a key file
//! that parses writes back to bytes that parse as the same file; one that unlocks (with the
//! fixed raw key, or the passphrase "fuzz" when its argon2 cost is small) gives a key whose id
//! is the file's.

#[path = "fixed_key.rs"]
mod fixed_key;

use replicore::crypto::{KeyFile, Protection, Secret};

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer.
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn check_one(data: &[u8]) {
    let Ok(file) = KeyFile::from_bytes(data) else {
        return;
    };
    let back = KeyFile::from_bytes(&file.to_bytes()).expect("a written key file parses");
    assert_eq!(back, file);
    let unlocked = match file.protection() {
        Protection::Key => file.unlock(Secret::Key(&fixed_key::master())),
        Protection::Passphrase(p) if p.memory_kib <= 1024 && p.iterations <= 2 => {
            file.unlock(Secret::Passphrase(b"fuzz"))
        }
        Protection::Passphrase(_) => return,
    };
    if let Ok(key) = unlocked {
        assert_eq!(key.id(), file.key_id());
    }
}
