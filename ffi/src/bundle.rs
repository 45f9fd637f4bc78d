//! Bundles from C: seed a group, ship a sealed log, verify a bundle.

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::Path;
use std::sync::Mutex;

use replicore::Error;
use replicore::bundle::{self, Bundle, BundleKind, SeedOptions, ShipOptions, ShipState};
use replicore::log::MarkerKind;

use crate::handle::{self, run};
use crate::key::replicore_key;
use crate::log::replicore_log;
use crate::resync::{replicore_progress_callback, with_progress};
use crate::status::replicore_status;

/// Called once per bundle `replicore_ship` wrote, oldest first, with its path and sequence
/// number, once every bundle is written and synced (before the ship state is saved); return 0
/// to go on, non-zero to stop (`REPLICORE_ERR_CANCELLED`: the ship state is not advanced, and
/// every bundle written stays; shipping the same log again reports them again). The path is
/// valid during the call only.
#[allow(non_camel_case_types)]
pub type replicore_bundle_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, path: *const c_char, seq: u64) -> c_int>;

/// What a bundle holds (from `replicore_bundle_verify`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_bundle_info {
    /// 1 for a base (seed) bundle, 2 for an incremental one.
    pub kind: u32,
    /// 1 crash-consistent, 2 app-consistent.
    pub consistency: u32,
    /// The point's sequence number in its group.
    pub seq: u64,
    /// Time of the point, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Disks in the point.
    pub disks: u64,
    /// Blobs stored.
    pub blobs: u64,
    /// Their stored (sealed) bytes.
    pub stored_bytes: u64,
    /// Their plaintext bytes.
    pub plain_bytes: u64,
    /// The point's id.
    pub point_id: [u8; 32],
    /// The parent point's id (zeros for a base).
    pub parent_id: [u8; 32],
    /// The id of the key the bundle is sealed under (as `replicore_key_id` gives it).
    pub key_id: [u8; 16],
    /// The verifying key that signed it (32 bytes).
    pub verifying_key: [u8; 32],
}

/// Seeds a group: creates its first change log at `log_path`, reads the `disk_count` images
/// (`image_paths[i]` is disk `disk_names[i]`) into the base bundle `bundle_path` in chunks of
/// `chunk_size` bytes (0: 1 MiB), sealed under `key`, and saves the group's ship state to
/// `state_path`. The open log goes to `*log_out` (free it with `replicore_log_free`) unless
/// `log_out` is NULL, in which case it is closed. Progress counts image bytes. The log, the
/// bundle and the state are created 0600 and must not exist (a symbolic link counting):
/// `REPLICORE_ERR_ALREADY_EXISTS` before anything is written.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `disk_names` and `image_paths` are NULL or hold
/// `disk_count` such strings; `key` is NULL or a live key; `callback` may be called with
/// `user`; `log_out` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_seed(
    group: *const c_char,
    disk_names: *const *const c_char,
    image_paths: *const *const c_char,
    disk_count: usize,
    key: *const replicore_key,
    log_path: *const c_char,
    state_path: *const c_char,
    bundle_path: *const c_char,
    chunk_size: u32,
    callback: replicore_progress_callback,
    user: *mut c_void,
    log_out: *mut *mut replicore_log,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let group = unsafe { handle::str(group, "group") }?;
        let names = unsafe { handle::slice(disk_names, disk_count, "disk_names") }?;
        let paths = unsafe { handle::slice(image_paths, disk_count, "image_paths") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let log_path = unsafe { handle::str(log_path, "log_path") }?;
        let state_path = unsafe { handle::str(state_path, "state_path") }?;
        let bundle_path = unsafe { handle::str(bundle_path, "bundle_path") }?;
        let mut disks = Vec::with_capacity(disk_count);
        for (n, p) in names.iter().zip(paths) {
            // SAFETY: per this function's contract.
            let n = unsafe { handle::str(*n, "disk_names[]") }?;
            let p = unsafe { handle::str(*p, "image_paths[]") }?;
            disks.push((n, Path::new(p)));
        }
        if Path::new(state_path).symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists {
                what: format!("ship state {state_path}"),
            }
            .into());
        }
        let options = SeedOptions {
            chunk_size: if chunk_size == 0 {
                bundle::DEFAULT_SEED_CHUNK
            } else {
                chunk_size
            },
            ..SeedOptions::default()
        };
        let seeded = with_progress(callback, user, |p| {
            bundle::seed(group, &disks, key, log_path, bundle_path, &options, p).map_err(|e| {
                e.renaming_argument("disks", "disk_names")
                    .renaming_argument("disk name", "disk_names[]")
            })
        })?;
        seeded.state.save(state_path)?;
        if !log_out.is_null() {
            // SAFETY: per this function's contract.
            let out = unsafe { handle::out(log_out, "log_out") }?;
            *out = handle::into_raw::<replicore_log>(Mutex::new(seeded.log));
        }
        Ok(())
    })
}

/// Ships the sealed change log `sealed_log` of the group whose ship state is at `state_path`:
/// one bundle per recovery point into the directory `out_dir`, sealed under `key`; then saves
/// the advanced state. `on_bundle` (may be NULL) hears of each bundle; `progress` counts the
/// bytes of writes shipped. `on_bundle` is called with `bundle_user`, `progress` with
/// `progress_user`. The number of bundles goes to `*count_out` unless NULL. A log the
/// state says was shipped already is `REPLICORE_ERR_ALREADY_EXISTS` ("was shipped": nothing to
/// do, nothing changed); any other log that does not follow the state is
/// `REPLICORE_ERR_RESYNC_REQUIRED`. Bundles are created 0600 and never replace a file: shipping
/// again after a crash, a failure or a stop before the state was saved makes the same bundles
/// (sealing is deterministic), keeps those already there and reports them again, and saves the
/// state; a different file at a bundle's path is `REPLICORE_ERR_ALREADY_EXISTS`.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `key` is NULL or a live key; the callbacks may be
/// called with their user pointers; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_ship(
    sealed_log: *const c_char,
    key: *const replicore_key,
    state_path: *const c_char,
    out_dir: *const c_char,
    on_bundle: replicore_bundle_callback,
    bundle_user: *mut c_void,
    progress: replicore_progress_callback,
    progress_user: *mut c_void,
    count_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let sealed = unsafe { handle::str(sealed_log, "sealed_log") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let state_path = unsafe { handle::str(state_path, "state_path") }?;
        let out_dir = unsafe { handle::str(out_dir, "out_dir") }?;
        let mut state = ShipState::load(state_path)?;
        let written = with_progress(progress, progress_user, |p| {
            bundle::ship(sealed, key, &mut state, out_dir, &ShipOptions::default(), p)
        })?;
        for b in &written {
            if let Some(cb) = on_bundle {
                let path = CString::new(b.path.to_string_lossy().into_owned())
                    .map_err(|_| Error::invalid_argument("out_dir", "a path with a NUL byte"))?;
                // SAFETY: the caller vouches for the callback and its user pointer.
                if unsafe { cb(bundle_user, path.as_ptr(), b.seq) } != 0 {
                    return Err(Error::Cancelled {
                        what: "ship (by the bundle callback)".into(),
                    }
                    .into());
                }
            }
        }
        state.save(state_path)?;
        if !count_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(count_out, "count_out") }? = written.len() as u64;
        }
        Ok(())
    })
}

/// Verifies the bundle at `path`: every byte without the key (trailer, structure, references)
/// when `key` is NULL; with a key, also the authentication tag and every blob. What it holds
/// goes to `*info_out` unless NULL.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `key` is NULL or a live key; `info_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_bundle_verify(
    path: *const c_char,
    key: *const replicore_key,
    info_out: *mut replicore_bundle_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let b = Bundle::open(path)?;
        let stats = if key.is_null() {
            b.verify()?
        } else {
            // SAFETY: per this function's contract.
            b.verify_with_key(unsafe { handle::as_ref(key, "key") }?)?
        };
        if !info_out.is_null() {
            let h = b.header();
            let info = replicore_bundle_info {
                kind: match h.kind {
                    BundleKind::Base => 1,
                    BundleKind::Incremental => 2,
                },
                consistency: match h.consistency {
                    MarkerKind::Crash => 1,
                    MarkerKind::App => 2,
                },
                seq: h.seq,
                time_ns: h.time_ns,
                disks: b.disks().len() as u64,
                blobs: stats.blobs,
                stored_bytes: stats.stored_bytes,
                plain_bytes: stats.plain_bytes,
                point_id: b.point_id().0,
                parent_id: h.parent.0,
                key_id: h.key_id().0,
                verifying_key: h.verifying_key.0,
            };
            // SAFETY: per this function's contract.
            *unsafe { handle::out(info_out, "info_out") }? = info;
        }
        Ok(())
    })
}
