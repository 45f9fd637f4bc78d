//! Signatures and deltas from C by file, streamed: memory stays bounded whatever the disk's
//! size, where a `replicore_signature` handle holds 32 bytes a chunk (512 MiB for 1 TiB at
//! 64 KiB chunks). The files are the same as `replicore_signature_write` and
//! `replicore_delta_compute` write.

use std::ffi::{c_char, c_void};
use std::io::BufWriter;
use std::path::Path;

use replicore::resync::{Delta, Signature};
use replicore::{Error, OutputFile};

use crate::handle::{self, run};
use crate::key::replicore_key;
use crate::resync::{replicore_delta_stats, replicore_progress_callback, with_progress};
use crate::status::replicore_status;

/// Computes the keyed signature of the image at `image` (a file or a block device) in chunks
/// of `chunk_size` bytes (a power of two from 4096 to 8388608), every chunk's hash keyed by
/// `key`, and writes it sealed under `key` to the new file `sig_path` as it is hashed: the
/// file `replicore_signature_compute` then `replicore_signature_write` make, in memory bounded
/// whatever the image's size. The file is created 0600 under an unpredictable temporary name,
/// never through a symbolic link, and renamed into place once complete (nothing is left on
/// failure or cancellation); an existing file (or link) at `sig_path` is never replaced:
/// `REPLICORE_ERR_ALREADY_EXISTS`.
///
/// # Safety
///
/// `key` is NULL or a live key; `image` and `sig_path` are NULL or NUL-terminated; `callback`
/// may be called with `user`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_signature_write_of_image(
    key: *const replicore_key,
    image: *const c_char,
    chunk_size: u32,
    sig_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let key = unsafe { handle::as_ref(key, "key") }?;
        let image = unsafe { handle::str(image, "image") }?;
        let sig_path = Path::new(unsafe { handle::str(sig_path, "sig_path") }?);
        let io = |e| Error::io("writing the signature", Some(sig_path), e);
        let mut w = BufWriter::new(OutputFile::create(sig_path, false)?);
        // Dropped unpublished on failure: the temporary file goes with it.
        with_progress(callback, user, |p| {
            Signature::write_of_image(image, chunk_size, Some(key), &mut w, p)
        })?;
        w.into_inner().map_err(|e| io(e.into_error()))?.commit()?;
        Ok(())
    })
}

/// Computes the delta of the image at `source` against the stale copy's signature file
/// `sig_path` (sealed under `key`: as `replicore_signature_write_of_image` or
/// `replicore_signature_write` make it), sealed under `key`, reading the signature as the
/// source is hashed (memory bounded whatever the images' size), and writes it to the new file
/// `delta_path` like `replicore_delta_compute`. The signature file is read twice and must not
/// change meanwhile. A signature sealed under another key, or plain, is
/// `REPLICORE_ERR_AUTHENTICATION`; a damaged one `REPLICORE_ERR_CORRUPT`. What it found goes to
/// `*stats_out` unless that is NULL.
///
/// # Safety
///
/// `key` is NULL or a live key; `sig_path`, `source` and `delta_path` are NULL or
/// NUL-terminated; `callback` may be called with `user`; `stats_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_delta_compute_from_file(
    sig_path: *const c_char,
    key: *const replicore_key,
    source: *const c_char,
    delta_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    stats_out: *mut replicore_delta_stats,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let sig_path = unsafe { handle::str(sig_path, "sig_path") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let source = unsafe { handle::str(source, "source") }?;
        let delta_path = Path::new(unsafe { handle::str(delta_path, "delta_path") }?);
        let stats_out = unsafe { stats_out.as_mut() };
        let io = |e| Error::io("writing the delta", Some(delta_path), e);
        let mut w = BufWriter::new(OutputFile::create(delta_path, false)?);
        let stats = with_progress(callback, user, |p| {
            Delta::compute_from_file(source, sig_path, Some(key), &mut w, p)
        })
        .map_err(|e| e.renaming_argument("signature", "sig_path"))?;
        w.into_inner().map_err(|e| io(e.into_error()))?.commit()?;
        if let Some(out) = stats_out {
            *out = (&stats).into();
        }
        Ok(())
    })
}
