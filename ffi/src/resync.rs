//! Resync and failback from C: signatures, deltas, apply, local resync.
//!
//! Signatures and deltas that C code writes or reads are always keyed and sealed under the
//! group's key (`docs/FORMAT.md` §9, §10): a host that ships them between sites holds the key.
//! Plain (keyless) files are the command line's, for a copy that never leaves the host.

use std::ffi::{c_char, c_int, c_void};
use std::fs::File;
use std::io::BufWriter;

use replicore::resync::{Delta, Signature, resync};
use replicore::{Error, OutputFile};

use crate::handle::{self, Handle, run};
use crate::key::replicore_key;
use crate::status::replicore_status;

/// A signature of a disk image (see the Rust `Signature`). Created by
/// `replicore_signature_compute` or `replicore_signature_read`, freed by
/// `replicore_signature_free`.
///
/// Thread safety: immutable once made; may be shared between threads and used by several at
/// once.
#[allow(non_camel_case_types)]
pub struct replicore_signature {
    _private: [u8; 0],
}

// SAFETY: zero-sized, never constructed; pointers to it come only from `into_raw`.
unsafe impl Handle for replicore_signature {
    type Inner = Signature;
}

/// Progress of a long call: `done` of `total` bytes. Called on the calling thread with the
/// `user` pointer given to the call; return 0 to go on, non-zero to cancel (the call then
/// returns `REPLICORE_ERR_CANCELLED`). NULL means no progress reports. Seed, ship, ingest,
/// verify, GC, materialize and failover call it first with `done` 0 and last with `done` equal
/// to `total`; materialize and failover count the disks' bytes (the sum of their sizes is the
/// total) and call it at least every 8 MiB.
#[allow(non_camel_case_types)]
pub type replicore_progress_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, done: u64, total: u64) -> c_int>;

/// What computing a delta found.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct replicore_delta_stats {
    /// Chunks of the source.
    pub chunks: u64,
    /// Chunks sent as data.
    pub data_chunks: u64,
    /// Chunks sent as zeros.
    pub zero_chunks: u64,
    /// Bytes of chunk data sent.
    pub data_bytes: u64,
    /// Bytes of the delta file.
    pub delta_bytes: u64,
}

impl From<&replicore::resync::DeltaStats> for replicore_delta_stats {
    fn from(s: &replicore::resync::DeltaStats) -> Self {
        replicore_delta_stats {
            chunks: s.chunks,
            data_chunks: s.data_chunks,
            zero_chunks: s.zero_chunks,
            data_bytes: s.data_bytes,
            delta_bytes: s.delta_bytes,
        }
    }
}

/// What applying a delta or a local resync did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct replicore_apply_stats {
    /// Chunks written with data.
    pub data_chunks: u64,
    /// Chunks zeroed (punched out as holes where possible).
    pub zero_chunks: u64,
    /// Bytes of data written.
    pub data_bytes: u64,
    /// The target's size afterwards.
    pub final_size: u64,
}

/// Runs `body` with a Rust progress closure that forwards to `cb`.
pub(crate) fn with_progress<T>(
    cb: replicore_progress_callback,
    user: *mut c_void,
    body: impl FnOnce(&mut dyn FnMut(u64, u64) -> bool) -> T,
) -> T {
    let mut forward = |done: u64, total: u64| match cb {
        // SAFETY: the caller vouches for the callback and its user pointer.
        Some(f) => (unsafe { f(user, done, total) }) == 0,
        None => true,
    };
    body(&mut forward)
}

/// Computes the keyed signature of the image at `image` (a file or a block device) in chunks
/// of `chunk_size` bytes (a power of two from 4096 to 8388608; 65536 is the default choice),
/// every chunk's hash keyed by `key` (so the signature says nothing about the data without
/// it), hashing on every core, and writes it to `*sig_out`. The caller frees it with
/// `replicore_signature_free`.
///
/// # Safety
///
/// `key` is NULL or a live key; `image` is NULL or NUL-terminated; `callback` may be called
/// with `user`; `sig_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_signature_compute(
    key: *const replicore_key,
    image: *const c_char,
    chunk_size: u32,
    callback: replicore_progress_callback,
    user: *mut c_void,
    sig_out: *mut *mut replicore_signature,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let key = unsafe { handle::as_ref(key, "key") }?;
        let image = unsafe { handle::str(image, "image") }?;
        let out = unsafe { handle::out(sig_out, "sig_out") }?;
        let sig = with_progress(callback, user, |p| {
            Signature::compute_keyed(image, chunk_size, key, p)
        })?;
        *out = handle::into_raw::<replicore_signature>(sig);
        Ok(())
    })
}

/// Writes a signature to the new file `path` (`.rcsig`), sealed under `key` (encrypted and
/// authenticated; its header stays readable), and syncs it. The signature must have been
/// computed with the same key (else `REPLICORE_ERR_INVALID_ARGUMENT`). Like every output of this
/// library, the file is created 0600 under an unpredictable temporary name, never through a
/// symbolic link, and renamed into place once complete; an existing file (or link) at `path` is
/// never replaced: `REPLICORE_ERR_ALREADY_EXISTS`.
///
/// # Safety
///
/// `sig` is NULL or a live signature; `key` is NULL or a live key; `path` is NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_signature_write(
    sig: *const replicore_signature,
    key: *const replicore_key,
    path: *const c_char,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let sig = unsafe { handle::as_ref(sig, "sig") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let path = unsafe { handle::str(path, "path") }?;
        let io = |e| Error::io("writing the signature", Some(std::path::Path::new(path)), e);
        // The key first: a signature that cannot be sealed under it creates no file.
        if sig.key_id() != Some(key.id()) {
            return Err(Error::invalid_argument(
                "key",
                format!(
                    "the signature was not computed with key {}: it cannot be sealed under it",
                    key.id()
                ),
            )
            .into());
        }
        let mut w = BufWriter::new(OutputFile::create(path, false)?);
        sig.to_writer_sealed(&mut w, key)?;
        w.into_inner().map_err(|e| io(e.into_error()))?.commit()?;
        Ok(())
    })
}

/// Reads a signature file sealed under `key` (verifying its trailer, then authenticating every
/// frame) and writes it to `*sig_out`. Damage is `REPLICORE_ERR_CORRUPT`; a signature sealed
/// under another key, tampered with, or plain (keyless) is `REPLICORE_ERR_AUTHENTICATION`. The
/// caller frees it with `replicore_signature_free`.
///
/// # Safety
///
/// `key` is NULL or a live key; `path` is NULL or NUL-terminated; `sig_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_signature_read(
    key: *const replicore_key,
    path: *const c_char,
    sig_out: *mut *mut replicore_signature,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let key = unsafe { handle::as_ref(key, "key") }?;
        let path = unsafe { handle::str(path, "path") }?;
        let out = unsafe { handle::out(sig_out, "sig_out") }?;
        let p = std::path::Path::new(path);
        let f = File::open(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("signature {path}"),
            },
            _ => Error::io("opening the signature", Some(p), e),
        })?;
        let sig = Signature::from_reader_sealed(std::io::BufReader::new(f), key)
            .map_err(|e| e.with_path(p))?;
        *out = handle::into_raw::<replicore_signature>(sig);
        Ok(())
    })
}

/// Writes a signature's chunk size, image size and chunk count to the out-parameters.
///
/// # Safety
///
/// `sig` is NULL or a live signature; each out-pointer is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_signature_info(
    sig: *const replicore_signature,
    chunk_size_out: *mut u32,
    disk_size_out: *mut u64,
    chunk_count_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let sig = unsafe { handle::as_ref(sig, "sig") }?;
        let cs = unsafe { handle::out(chunk_size_out, "chunk_size_out") }?;
        let ds = unsafe { handle::out(disk_size_out, "disk_size_out") }?;
        let cc = unsafe { handle::out(chunk_count_out, "chunk_count_out") }?;
        *cs = sig.chunk_size();
        *ds = sig.disk_size();
        *cc = sig.hashes().len() as u64;
        Ok(())
    })
}

/// Frees a signature. NULL is accepted.
///
/// # Safety
///
/// `sig` is NULL or a live signature that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_signature_free(sig: *mut replicore_signature) {
    // SAFETY: per this function's contract.
    crate::ffi_boundary! { unsafe { handle::free(sig) } }
}

/// Computes the delta of the image at `source` against `target_sig` (the stale copy's keyed
/// signature, computed with `key`), sealed under `key`, and writes it to the new file
/// `delta_path`, then syncs it. The file is created 0600 under an unpredictable temporary name,
/// never through a symbolic link, and renamed into place once complete (nothing is left on
/// failure); an existing file (or link) at `delta_path` is never replaced:
/// `REPLICORE_ERR_ALREADY_EXISTS`. What it found goes to `*stats_out` unless that is NULL.
///
/// # Safety
///
/// `target_sig` and `key` are NULL or live; `source` and `delta_path` are NULL or
/// NUL-terminated; `callback` may be called with `user`; `stats_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_delta_compute(
    target_sig: *const replicore_signature,
    key: *const replicore_key,
    source: *const c_char,
    delta_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    stats_out: *mut replicore_delta_stats,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let sig = unsafe { handle::as_ref(target_sig, "target_sig") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let source = unsafe { handle::str(source, "source") }?;
        let delta_path = unsafe { handle::str(delta_path, "delta_path") }?;
        let stats_out = unsafe { stats_out.as_mut() };
        let p = std::path::Path::new(delta_path);
        let io = |e| Error::io("writing the delta", Some(p), e);
        let mut w = BufWriter::new(OutputFile::create(p, false)?);
        // Dropped unpublished on failure: the temporary file goes with it.
        let stats = with_progress(callback, user, |prog| {
            Delta::compute_sealed(source, sig, key, &mut w, prog)
        })
        .map_err(|e| e.renaming_argument("signature", "target_sig"))?;
        w.into_inner().map_err(|e| io(e.into_error()))?.commit()?;
        if let Some(out) = stats_out {
            *out = (&stats).into();
        }
        Ok(())
    })
}

/// Applies the delta file `delta_path`, sealed under `key`, to the image `target`. Before the
/// target is touched, the delta's trailer is verified (`REPLICORE_ERR_CORRUPT`), every frame
/// authenticated (`REPLICORE_ERR_AUTHENTICATION`: another key, a plain delta, tampering), the
/// target's size checked and every chunk the delta writes read from the target and checked: it
/// must be what the signature recorded or already what the delta writes, else the target is
/// not the image the signature was taken of (`REPLICORE_ERR_INVALID_ARGUMENT`, nothing
/// written). Then every chunk is written (checked again just before), zero chunks become
/// holes, the size is set and the target synced. Idempotent: after a crash or a cancel, apply
/// again. Progress counts delta bytes over both passes. What it did goes to `*stats_out`
/// unless that is NULL.
///
/// # Safety
///
/// `key` is NULL or a live key; `delta_path` and `target` are NULL or NUL-terminated;
/// `callback` may be called with `user`; `stats_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_delta_apply(
    key: *const replicore_key,
    delta_path: *const c_char,
    target: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    stats_out: *mut replicore_apply_stats,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let key = unsafe { handle::as_ref(key, "key") }?;
        let delta_path = unsafe { handle::str(delta_path, "delta_path") }?;
        let target = unsafe { handle::str(target, "target") }?;
        let stats_out = unsafe { stats_out.as_mut() };
        let s = with_progress(callback, user, |p| {
            Delta::apply_sealed(delta_path, target, key, p)
        })?;
        if let Some(out) = stats_out {
            *out = replicore_apply_stats {
                data_chunks: s.data_chunks,
                zero_chunks: s.zero_chunks,
                data_bytes: s.data_bytes,
                final_size: s.final_size,
            };
        }
        Ok(())
    })
}

/// Makes the local image `target` byte-identical to `source`, copying only the chunks that
/// differ (no delta file); a missing target is created. Failback is this call with the roles
/// swapped. What it did goes to `*stats_out` unless that is NULL.
///
/// # Safety
///
/// `source` and `target` are NULL or NUL-terminated; `callback` may be called with `user`;
/// `stats_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_resync(
    source: *const c_char,
    target: *const c_char,
    chunk_size: u32,
    callback: replicore_progress_callback,
    user: *mut c_void,
    stats_out: *mut replicore_apply_stats,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let source = unsafe { handle::str(source, "source") }?;
        let target = unsafe { handle::str(target, "target") }?;
        let stats_out = unsafe { stats_out.as_mut() };
        let s = with_progress(callback, user, |p| resync(source, target, chunk_size, p))?;
        if let Some(out) = stats_out {
            let size = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
            *out = replicore_apply_stats {
                data_chunks: s.data_chunks,
                zero_chunks: s.zero_chunks,
                data_bytes: s.data_bytes,
                final_size: size,
            };
        }
        Ok(())
    })
}
