//! Keys from C: the customer's key, key files, rotation.

use std::ffi::c_char;

use replicore::Error;
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};

use crate::handle::{self, Failure, Handle, run};
use crate::status::replicore_status;

/// An unlocked data key (see the Rust `Key`). Created by `replicore_key_generate` or
/// `replicore_key_load`, freed (and wiped) by `replicore_key_free`.
///
/// Thread safety: immutable; may be shared between threads and used by several at once.
#[allow(non_camel_case_types)]
pub struct replicore_key {
    _private: [u8; 0],
}

// SAFETY: zero-sized, never constructed; pointers to it come only from `into_raw`.
unsafe impl Handle for replicore_key {
    type Inner = Key;
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Key>()
};

/// Bytes of a customer key.
pub const REPLICORE_MASTER_KEY_LEN: usize = 32;
/// Bytes of a key id.
pub const REPLICORE_KEY_ID_LEN: usize = 16;

/// The customer's raw key, if given.
struct Protect {
    master: Option<MasterKey>,
    passphrase: Option<Vec<u8>>,
}

impl Protect {
    /// Exactly one of `master` (32 bytes) and `passphrase` (NUL-terminated) must be non-NULL.
    ///
    /// # Safety
    ///
    /// `master` is NULL or readable for 32 bytes; `passphrase` is NULL or NUL-terminated.
    /// `names` are the C parameters: the key's, then the passphrase's.
    unsafe fn new(
        master: *const u8,
        passphrase: *const c_char,
        names: [&'static str; 2],
    ) -> Result<Protect, Failure> {
        match (master.is_null(), passphrase.is_null()) {
            (false, true) => {
                // SAFETY: per this function's contract.
                let b = unsafe { handle::bytes(master, REPLICORE_MASTER_KEY_LEN, names[0]) }?;
                Ok(Protect {
                    master: Some(MasterKey::from_slice(b)?),
                    passphrase: None,
                })
            }
            (true, false) => {
                // SAFETY: per this function's contract.
                let p = unsafe { std::ffi::CStr::from_ptr(passphrase) };
                Ok(Protect {
                    master: None,
                    passphrase: Some(p.to_bytes().to_vec()),
                })
            }
            // Both named: "invalid argument `master_key` and `passphrase`: ...".
            (both_null, _) => Err(Error::invalid_argument(
                format!("{}` and `{}", names[0], names[1]),
                format!(
                    "{}: give exactly one of a 32-byte key and a passphrase, the other NULL",
                    if both_null {
                        "both are NULL"
                    } else {
                        "both are given"
                    }
                ),
            )
            .into()),
        }
    }

    fn secret(&self) -> Secret<'_> {
        match (&self.master, &self.passphrase) {
            (Some(m), _) => Secret::Key(m),
            (None, Some(p)) => Secret::Passphrase(p),
            (None, None) => unreachable!("Protect::new checks one is set"),
        }
    }
}

impl Drop for Protect {
    fn drop(&mut self) {
        if let Some(p) = &mut self.passphrase {
            zeroize::Zeroize::zeroize(p);
        }
    }
}

/// Fills `key_out` (32 bytes) with a new random customer key, for a host without a key manager.
///
/// # Safety
///
/// `key_out` is NULL or writable for 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_master_key_generate(key_out: *mut u8) -> replicore_status {
    run(|| {
        if key_out.is_null() {
            return Err(Failure::Null("key_out"));
        }
        let k = MasterKey::generate()?;
        // SAFETY: per this function's contract.
        unsafe { std::ptr::copy_nonoverlapping(k.as_bytes().as_ptr(), key_out, 32) };
        Ok(())
    })
}

/// Creates a key file at `path` (which must not exist, a symbolic link counting: else
/// `REPLICORE_ERR_ALREADY_EXISTS`; it is created 0600) holding a new random data key wrapped
/// under the customer's key: either `master_key` (32 raw bytes) or `passphrase` (argon2id with
/// default costs), exactly one non-NULL. Writes the unlocked key to `*key_out`; free it with
/// `replicore_key_free`.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `master_key` is NULL or readable for 32 bytes;
/// `passphrase` is NULL or NUL-terminated; `key_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_key_generate(
    path: *const c_char,
    master_key: *const u8,
    passphrase: *const c_char,
    key_out: *mut *mut replicore_key,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let protect =
            unsafe { Protect::new(master_key, passphrase, ["master_key", "passphrase"]) }?;
        let out = unsafe { handle::out(key_out, "key_out") }?;
        let (file, key) = KeyFile::create(protect.secret())?;
        file.save(path, false)?;
        *out = handle::into_raw::<replicore_key>(key);
        Ok(())
    })
}

/// Loads the key file at `path` and unlocks it with `master_key` (32 bytes) or `passphrase`,
/// exactly one non-NULL. A wrong key or passphrase is `REPLICORE_ERR_AUTHENTICATION`.
///
/// # Safety
///
/// As `replicore_key_generate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_key_load(
    path: *const c_char,
    master_key: *const u8,
    passphrase: *const c_char,
    key_out: *mut *mut replicore_key,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let protect =
            unsafe { Protect::new(master_key, passphrase, ["master_key", "passphrase"]) }?;
        let out = unsafe { handle::out(key_out, "key_out") }?;
        let key = KeyFile::load(path)?.unlock(protect.secret())?;
        *out = handle::into_raw::<replicore_key>(key);
        Ok(())
    })
}

/// Rotates the customer's key: unlocks the key file at `path` with the old key or passphrase
/// and writes to `new_path` (which must not exist, a symbolic link counting; created 0600) the
/// same data key wrapped under the new
/// one. No data is re-encrypted; blob ids and the key id stay. Each pair: exactly one non-NULL.
///
/// # Safety
///
/// `path` and `new_path` are NULL or NUL-terminated; each key is NULL or readable for 32
/// bytes; each passphrase is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_key_rotate(
    path: *const c_char,
    old_master_key: *const u8,
    old_passphrase: *const c_char,
    new_path: *const c_char,
    new_master_key: *const u8,
    new_passphrase: *const c_char,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let new_path = unsafe { handle::str(new_path, "new_path") }?;
        let old = unsafe {
            Protect::new(
                old_master_key,
                old_passphrase,
                ["old_master_key", "old_passphrase"],
            )
        }?;
        let new = unsafe {
            Protect::new(
                new_master_key,
                new_passphrase,
                ["new_master_key", "new_passphrase"],
            )
        }?;
        let rotated = KeyFile::load(path)?.rewrap(old.secret(), new.secret())?;
        rotated.save(new_path, false)?;
        Ok(())
    })
}

/// Writes the key's public id (16 bytes) to `id_out`.
///
/// # Safety
///
/// `key` is NULL or a live key; `id_out` is NULL or writable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_key_id(
    key: *const replicore_key,
    id_out: *mut u8,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let key = unsafe { handle::as_ref(key, "key") }?;
        if id_out.is_null() {
            return Err(Failure::Null("id_out"));
        }
        // SAFETY: per this function's contract.
        unsafe { std::ptr::copy_nonoverlapping(key.id().0.as_ptr(), id_out, 16) };
        Ok(())
    })
}

/// Frees a key, wiping its material. NULL is accepted.
///
/// # Safety
///
/// `key` is NULL or a live key that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_key_free(key: *mut replicore_key) {
    // SAFETY: per this function's contract.
    crate::ffi_boundary! { unsafe { handle::free(key) } }
}
