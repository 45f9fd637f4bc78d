//! The key every bundle and blob seed is sealed under: a committed key file (`fixed.rckey`)
//! wrapped under the raw customer key `[7; 32]`, so that fuzzed inputs reach blob decoding.

#![allow(dead_code)] // each check uses a part

use replicore::crypto::{Key, KeyFile, MasterKey, Secret};

/// The committed key file.
pub const KEY_FILE: &[u8] = include_bytes!("fixed.rckey");

/// The customer key that unwraps it.
pub fn master() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

/// The unlocked key.
pub fn key() -> Key {
    KeyFile::from_bytes(KEY_FILE)
        .and_then(|f| f.unlock(Secret::Key(&master())))
        .expect("the committed fuzz key file unlocks")
}
