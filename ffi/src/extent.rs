//! Extent maps from C: which bytes of a disk come from which blob.

use std::ffi::{c_int, c_void};

use replicore::{BlobId, Error, ExtentMap, Piece, Source};

use crate::handle::{self, Failure, Handle, run};
use crate::status::replicore_status;

/// An extent map of one disk (see the Rust `ExtentMap`). Created by
/// `replicore_extent_map_new`, freed by `replicore_extent_map_free`.
///
/// Thread safety: a map may be moved between threads, but must not be used from two threads at
/// once (calls that take it as `const` may run together; none may run beside one that takes it
/// as non-`const`).
#[allow(non_camel_case_types)]
pub struct replicore_extent_map {
    _private: [u8; 0],
}

// SAFETY: zero-sized, never constructed; pointers to it come only from `into_raw`.
unsafe impl Handle for replicore_extent_map {
    type Inner = ExtentMap;
}

/// What a piece of a disk is mapped to.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_piece_kind {
    /// No extent covers these bytes.
    REPLICORE_PIECE_GAP = 0,
    /// The bytes are zeros.
    REPLICORE_PIECE_ZERO = 1,
    /// The bytes come from a blob.
    REPLICORE_PIECE_BLOB = 2,
}

/// One piece of a disk, as passed to a `replicore_piece_callback`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_piece {
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes (never zero).
    pub len: u64,
    /// What the bytes are.
    pub kind: replicore_piece_kind,
    /// The blob's id, for `REPLICORE_PIECE_BLOB`; zeros otherwise.
    pub blob_id: [u8; 32],
    /// Offset into the blob of the piece's first byte, for `REPLICORE_PIECE_BLOB`; else 0.
    pub blob_offset: u64,
}

/// Called once per piece, in disk order, with the `user` pointer given to the call. `piece` is
/// valid only during the call. Return 0 to continue, non-zero to stop: the call then returns
/// `REPLICORE_ERR_CANCELLED`. The callback runs on the calling thread; it must not free the map.
#[allow(non_camel_case_types)]
pub type replicore_piece_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, piece: *const replicore_piece) -> c_int>;

/// Creates an empty map (all gap) of a disk of `disk_size` bytes (at most 64 TiB) and writes it
/// to `*map_out`. The caller owns it and frees it with `replicore_extent_map_free`.
///
/// # Safety
///
/// `map_out` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_new(
    disk_size: u64,
    map_out: *mut *mut replicore_extent_map,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { handle::out(map_out, "map_out") }?;
        *out = handle::into_raw(ExtentMap::new(disk_size)?);
        Ok(())
    })
}

/// Frees a map. NULL is accepted and does nothing.
///
/// # Safety
///
/// `map` is NULL or a map from `replicore_extent_map_new` not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_free(map: *mut replicore_extent_map) {
    // SAFETY: per this function's contract.
    crate::ffi_boundary! { unsafe { handle::free(map) } }
}

/// Maps `len` bytes from `start` to zeros (a trim); newer wins over what was mapped there.
/// A range past the disk's end is `REPLICORE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `map` is NULL or a live map not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_insert_zero(
    map: *mut replicore_extent_map,
    start: u64,
    len: u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let map = unsafe { handle::as_mut(map, "map") }?;
        Ok(map.insert(start, len, Source::Zero)?)
    })
}

/// Maps `len` bytes from `start` to the bytes of blob `blob_id` (exactly 32 bytes, else
/// `REPLICORE_ERR_INVALID_ARGUMENT`) from `blob_offset`; newer wins.
///
/// # Safety
///
/// `map` is NULL or a live map not used by another thread during the call; `blob_id` is NULL or
/// valid for reading `blob_id_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_insert_blob(
    map: *mut replicore_extent_map,
    start: u64,
    len: u64,
    blob_id: *const u8,
    blob_id_len: usize,
    blob_offset: u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let map = unsafe { handle::as_mut(map, "map") }?;
        // SAFETY: per this function's contract.
        let id = unsafe { handle::bytes(blob_id, blob_id_len, "blob_id") }?;
        let id: [u8; 32] = id.try_into().map_err(|_| {
            Error::invalid_argument(
                "blob_id_len",
                format!("a blob id is 32 bytes, not {blob_id_len} bytes"),
            )
        })?;
        Ok(map
            .insert(
                start,
                len,
                Source::Blob {
                    id: BlobId(id),
                    offset: blob_offset,
                },
            )
            .map_err(|e| e.renaming_argument("source", "blob_offset"))?)
    })
}

/// Lays `newer` over `map` (newer wins; gaps of `newer` leave `map` showing). `map` takes
/// `newer`'s disk size. `newer` is not changed and may be the same map.
///
/// # Safety
///
/// Both are NULL or live maps; no other thread uses `map` during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_overlay(
    map: *mut replicore_extent_map,
    newer: *const replicore_extent_map,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract. `newer` is cloned first so that the two may be
        // the same map without a shared and a mutable borrow overlapping.
        let newer = unsafe { handle::as_ref(newer, "newer") }?.clone();
        // SAFETY: per this function's contract.
        let map = unsafe { handle::as_mut(map, "map") }?;
        Ok(map.overlay(&newer)?)
    })
}

/// Merges neighbouring extents whose sources are contiguous.
///
/// # Safety
///
/// `map` is NULL or a live map not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_coalesce(
    map: *mut replicore_extent_map,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        unsafe { handle::as_mut(map, "map") }?.coalesce();
        Ok(())
    })
}

/// Writes the number of extents to `*count_out` and the bytes they cover to `*mapped_out`.
///
/// # Safety
///
/// `map` is NULL or a live map; the out-pointers are NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_stats(
    map: *const replicore_extent_map,
    count_out: *mut u64,
    mapped_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let map = unsafe { handle::as_ref(map, "map") }?;
        // SAFETY: per this function's contract.
        let count_out = unsafe { handle::out(count_out, "count_out") }?;
        // SAFETY: per this function's contract.
        let mapped_out = unsafe { handle::out(mapped_out, "mapped_out") }?;
        *count_out = map.len() as u64;
        *mapped_out = map.mapped_bytes();
        Ok(())
    })
}

/// Calls `callback` for every piece (extents and gaps) of the `len` bytes from `start`, in disk
/// order, clipped to that range. A range past the disk's end is
/// `REPLICORE_ERR_INVALID_ARGUMENT`; a callback returning non-zero stops the walk with
/// `REPLICORE_ERR_CANCELLED`.
///
/// # Safety
///
/// `map` is NULL or a live map; `callback` may be called with `user` as given.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_extent_map_lookup(
    map: *const replicore_extent_map,
    start: u64,
    len: u64,
    callback: replicore_piece_callback,
    user: *mut c_void,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let map = unsafe { handle::as_ref(map, "map") }?;
        let callback = callback.ok_or(Failure::Null("callback"))?;
        for piece in map.lookup(start, len)? {
            let c = to_c(piece);
            // SAFETY: the caller vouches for the callback; `c` outlives the call.
            if unsafe { callback(user, &c) } != 0 {
                return Err(Error::Cancelled {
                    what: "extent map lookup".into(),
                }
                .into());
            }
        }
        Ok(())
    })
}

fn to_c(piece: Piece) -> replicore_piece {
    use replicore_piece_kind::*;
    let (start, len) = (piece.start(), piece.len());
    match piece {
        Piece::Gap { .. } => replicore_piece {
            start,
            len,
            kind: REPLICORE_PIECE_GAP,
            blob_id: [0; 32],
            blob_offset: 0,
        },
        Piece::Mapped(e) => match e.source {
            Source::Zero => replicore_piece {
                start,
                len,
                kind: REPLICORE_PIECE_ZERO,
                blob_id: [0; 32],
                blob_offset: 0,
            },
            Source::Blob { id, offset } => replicore_piece {
                start,
                len,
                kind: REPLICORE_PIECE_BLOB,
                blob_id: id.0,
                blob_offset: offset,
            },
        },
    }
}
