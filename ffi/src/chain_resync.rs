//! Resynchronization into the chain from C: the vault's point signature of a group's newest
//! point, and the resync point the primary ships from its disks.

use std::ffi::{CString, c_char, c_void};
use std::path::Path;
use std::sync::Mutex;

use replicore::Error;
use replicore::bundle::{ResyncOptions, resync_ship_from};
use replicore::resync::point_sig::{PointSigReader, open_file};
use replicore::vault::Selector;

use crate::bundle::replicore_bundle_callback;
use crate::handle::{self, run};
use crate::key::replicore_key;
use crate::log::replicore_log;
use crate::resync::{replicore_progress_callback, with_progress};
use crate::status::replicore_status;
use crate::vault::{point_id, replicore_vault};

/// What `replicore_resync_ship` did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_resync_info {
    /// The resync point's sequence number (the signature's point's plus one).
    pub seq: u64,
    /// The resync point's id.
    pub point_id: [u8; 32],
    /// Chunks compared, across the disks.
    pub chunks: u64,
    /// Chunks that differed (shipped as data, or as zeros).
    pub changed_chunks: u64,
    /// Plaintext bytes of the blobs shipped.
    pub plain_bytes: u64,
    /// Bytes of the bundle.
    pub bundle_bytes: u64,
}

/// `replicore_resync_ship` flag: replace the log and bundle an interrupted resync left.
pub const REPLICORE_RESYNC_REPLACE: u32 = 1;

/// Writes the point signature of `group`'s point whose id is the 32 bytes at `point_id` (NULL:
/// the newest, which a resync continues) to a new file at `out_path` (created 0600; an
/// existing one is `REPLICORE_ERR_ALREADY_EXISTS`): every chunk's keyed id, sealed under
/// `key`, bound to the point. Needs the group's key. Progress counts the disks' bytes.
///
/// # Safety
///
/// `vault` and `key` are NULL or live handles; strings are NULL or NUL-terminated; `point_id`
/// is NULL or readable for 32 bytes; `callback` may be called with `user`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_point_signature(
    vault: *const replicore_vault,
    group: *const c_char,
    point_id: *const u8,
    key: *const replicore_key,
    out_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let out = unsafe { handle::str(out_path, "out_path") }?;
        let selector = if point_id.is_null() {
            Selector::Latest
        } else {
            // SAFETY: per this function's contract.
            Selector::Id(unsafe { self::point_id(point_id, "point_id") }?)
        };
        with_progress(callback, user, |p| {
            vault.save_point_signature(group, selector, key, out, false, p)
        })?;
        Ok(())
    })
}

/// Resynchronizes a group into its chain at the primary: reads the point signature at
/// `signature_path` (sealed under `key`, of the group's newest point), compares the
/// `disk_count` images (`image_paths[i]` is disk `disk_names[i]`; the group's disks, sizes
/// unchanged) with it, creates a new change log at `log_path` (tracking from before the images
/// are read), writes into `out_dir` one bundle, the next point of the chain holding only the
/// chunks that differ, and saves the ship state (the one of the group, replaced) to
/// `state_path`. `on_bundle` (may be NULL) hears of the bundle with `bundle_user` (its return
/// value is ignored: the resync is done); progress
/// counts the disks' bytes with `progress_user`. The open log goes to `*log_out` (free it with
/// `replicore_log_free`) unless NULL; what was done to `*info_out` unless NULL. `flags` is 0 or
/// `REPLICORE_RESYNC_REPLACE` (replace the log and bundle of an interrupted resync: a resync is
/// simply run again). The vault ingests the bundle without the key; a signature of a point that
/// is no longer the newest makes a bundle the vault refuses (`REPLICORE_ERR_CHAIN_BROKEN`).
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `disk_names` and `image_paths` are NULL or hold
/// `disk_count` such strings; `key` is NULL or a live key; the callbacks may be called with
/// their user pointers; `log_out` and `info_out` are NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_resync_ship(
    signature_path: *const c_char,
    key: *const replicore_key,
    disk_names: *const *const c_char,
    image_paths: *const *const c_char,
    disk_count: usize,
    log_path: *const c_char,
    state_path: *const c_char,
    out_dir: *const c_char,
    flags: u32,
    on_bundle: replicore_bundle_callback,
    bundle_user: *mut c_void,
    progress: replicore_progress_callback,
    progress_user: *mut c_void,
    log_out: *mut *mut replicore_log,
    info_out: *mut replicore_resync_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let sig_path = unsafe { handle::str(signature_path, "signature_path") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let names = unsafe { handle::slice(disk_names, disk_count, "disk_names") }?;
        let paths = unsafe { handle::slice(image_paths, disk_count, "image_paths") }?;
        let log_path = unsafe { handle::str(log_path, "log_path") }?;
        let state_path = unsafe { handle::str(state_path, "state_path") }?;
        let out_dir = unsafe { handle::str(out_dir, "out_dir") }?;
        if flags & !REPLICORE_RESYNC_REPLACE != 0 {
            return Err(Error::invalid_argument(
                "flags",
                format!("{flags:#x} holds bits other than REPLICORE_RESYNC_REPLACE"),
            )
            .into());
        }
        let mut disks = Vec::with_capacity(disk_count);
        for (n, p) in names.iter().zip(paths) {
            // SAFETY: per this function's contract.
            let n = unsafe { handle::str(*n, "disk_names[]") }?;
            let p = unsafe { handle::str(*p, "image_paths[]") }?;
            disks.push((n, Path::new(p)));
        }
        let sig = PointSigReader::open(open_file(Path::new(sig_path))?, key)
            .map_err(|e| e.with_path(Path::new(sig_path)))?;
        let options = ResyncOptions {
            replace: flags & REPLICORE_RESYNC_REPLACE != 0,
            ..ResyncOptions::default()
        };
        let r = with_progress(progress, progress_user, |p| {
            resync_ship_from(sig, &disks, key, log_path, out_dir, &options, p)
                .map_err(|e| e.renaming_argument("disks", "disk_names"))
        })?;
        r.state.save(state_path)?;
        if let Some(cb) = on_bundle {
            let path = CString::new(r.bundle.path.to_string_lossy().into_owned())
                .map_err(|_| Error::invalid_argument("out_dir", "a path with a NUL byte"))?;
            // SAFETY: the caller vouches for the callback and its user pointer. Its answer
            // changes nothing: the resync is done.
            let _ = unsafe { cb(bundle_user, path.as_ptr(), r.bundle.seq) };
        }
        if !info_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(info_out, "info_out") }? = replicore_resync_info {
                seq: r.bundle.seq,
                point_id: r.bundle.point.0,
                chunks: r.chunks,
                changed_chunks: r.changed_chunks,
                plain_bytes: r.bundle.plain_bytes,
                bundle_bytes: r.bundle.file_bytes,
            };
        }
        if !log_out.is_null() {
            // SAFETY: per this function's contract.
            let out = unsafe { handle::out(log_out, "log_out") }?;
            *out = handle::into_raw::<replicore_log>(Mutex::new(r.log));
        }
        Ok(())
    })
}
