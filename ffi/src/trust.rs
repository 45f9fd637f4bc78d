//! Trust from C: a key's verifying key, pinning it in a vault, a head checked against the last
//! shipped sequence number (rollback), compaction into a signed checkpoint, a lost head
//! rebuilt.

use std::ffi::c_char;

use replicore::crypto::VerifyingKey;

use crate::handle::{self, Failure, run};
use crate::key::replicore_key;
use crate::status::replicore_status;
use crate::vault::{REPLICORE_POINT_ID_LEN, replicore_vault};

/// Bytes of a verifying key.
pub const REPLICORE_VERIFYING_KEY_LEN: usize = 32;

/// What `replicore_vault_compact` did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_compact_info {
    /// The point the checkpoint stands at (the chain's first kept point).
    pub id: [u8; REPLICORE_POINT_ID_LEN],
    /// Its sequence number.
    pub seq: u64,
    /// Records its file held before (1: there was nothing to compact).
    pub records_before: u64,
    /// Shipped points the checkpoint stands for.
    pub shipped: u64,
    /// Bytes of its file before.
    pub bytes_before: u64,
    /// Bytes of its file after.
    pub bytes_after: u64,
}

/// Writes the verifying key the group's points are signed with (32 bytes, public: give it to
/// `replicore_vault_pin_key` at the recovery site) to `vk_out`.
///
/// # Safety
///
/// `key` is NULL or a live key; `vk_out` is NULL or writable for 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_key_verifying_key(
    key: *const replicore_key,
    vk_out: *mut u8,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let key = unsafe { handle::as_ref(key, "key") }?;
        if vk_out.is_null() {
            return Err(Failure::Null("vk_out"));
        }
        let vk = key.verifying_key();
        // SAFETY: per this function's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(vk.0.as_ptr(), vk_out, REPLICORE_VERIFYING_KEY_LEN)
        };
        Ok(())
    })
}

/// Pins `group`'s verifying key (the 32 bytes at `vk`): ingest and verify then refuse any point
/// of the group signed by another key, a forged base included. A chain already signed by
/// another key is `REPLICORE_ERR_AUTHENTICATION`; replacing a pin needs `replace` non-zero
/// (else `REPLICORE_ERR_ALREADY_EXISTS`).
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `vk` is NULL or
/// readable for 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_pin_key(
    vault: *const replicore_vault,
    group: *const c_char,
    vk: *const u8,
    replace: u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let b = unsafe { handle::bytes(vk, REPLICORE_VERIFYING_KEY_LEN, "vk") }?;
        let mut a = [0u8; REPLICORE_VERIFYING_KEY_LEN];
        a.copy_from_slice(b);
        vault.pin_key(group, VerifyingKey(a), replace != 0)?;
        Ok(())
    })
}

/// Tells whether `group`'s verifying key is pinned (`replicore_vault_pin_key`): 1 or 0 to
/// `*pinned_out`, and the pinned key to the 32 bytes at `vk_out` when it is (untouched when
/// not).
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `vk_out` is NULL or
/// writable for 32 bytes; `pinned_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_pinned_key(
    vault: *const replicore_vault,
    group: *const c_char,
    vk_out: *mut u8,
    pinned_out: *mut u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        if vk_out.is_null() {
            return Err(handle::Failure::Null("vk_out"));
        }
        let pinned = unsafe { handle::out(pinned_out, "pinned_out") }?;
        match vault.pinned_key(group)? {
            Some(vk) => {
                // SAFETY: per this function's contract.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        vk.0.as_ptr(),
                        vk_out,
                        REPLICORE_VERIFYING_KEY_LEN,
                    )
                };
                *pinned = 1;
            }
            None => *pinned = 0,
        }
        Ok(())
    })
}

/// Checks `group`'s head against `seq`, the last sequence number the primary shipped (its ship
/// state holds it): a head behind it is `REPLICORE_ERR_CHAIN_BROKEN` (the vault was rolled back
/// or lost points). Call it before `replicore_vault_failover` and `replicore_vault_verify`. The
/// head's sequence number goes to `*head_seq_out`.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `head_seq_out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_expect_seq(
    vault: *const replicore_vault,
    group: *const c_char,
    seq: u64,
    head_seq_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let out = unsafe { handle::out(head_seq_out, "head_seq_out") }?;
        *out = vault.expect_seq(group, seq)?;
        Ok(())
    })
}

/// Replaces what pruning accumulated in `group`'s first point file by one checkpoint signed
/// with `key` (the group's), so that the chain's metadata stays bounded. Runs alone in the vault
/// (`REPLICORE_ERR_LOCKED` while anyone else works in it).
///
/// # Safety
///
/// `vault` and `key` are NULL or live handles; `group` is NULL or NUL-terminated; `info_out`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_compact(
    vault: *const replicore_vault,
    group: *const c_char,
    key: *const replicore_key,
    info_out: *mut replicore_compact_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let out = unsafe { handle::out(info_out, "info_out") }?;
        let c = vault.compact(group, key)?;
        *out = replicore_compact_info {
            id: c.point.0,
            seq: c.seq,
            records_before: c.records_before,
            shipped: c.shipped,
            bytes_before: c.bytes_before,
            bytes_after: c.bytes_after,
        };
        Ok(())
    })
}

/// Writes a lost or damaged head of `group` again from the intact, signed point files (without
/// the key); the head's sequence number goes to `*seq_out`: check it against the last one the
/// primary shipped. A head that reads is `REPLICORE_ERR_ALREADY_EXISTS`.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `seq_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_rebuild_head(
    vault: *const replicore_vault,
    group: *const c_char,
    seq_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let out = unsafe { handle::out(seq_out, "seq_out") }?;
        *out = vault.rebuild_head(group)?.seq;
        Ok(())
    })
}
