//! Writing disks from the vault from C: materialize one disk, fail a group over; onto new
//! images or onto existing storage (block devices, pre-created files).

use std::ffi::{CString, c_char, c_int, c_void};

use replicore::Error;
use replicore::vault::{FailoverOptions, Materialized};

use crate::handle::{self, run};
use crate::key::replicore_key;
use crate::resync::{replicore_progress_callback, with_progress};
use crate::status::replicore_status;
use crate::vault::{point_id, replicore_vault, to_selector};

/// A disk of a group and the existing storage to write it onto (`replicore_vault_failover_to`):
/// a block device or a pre-created file of at least the disk's size.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_failover_target {
    /// The disk's name.
    pub disk: *const c_char,
    /// The path of the block device or file.
    pub path: *const c_char,
}

/// `replicore_vault_failover_to` flag: replace images already in the output directory.
pub const REPLICORE_FAILOVER_REPLACE: u32 = 1;

/// Called once per disk `replicore_vault_failover_to` wrote, in the group's disk order, after
/// every image is published: the disk's name, the path written (a new image, or the target),
/// the disk's size in bytes, and 1 when `path` is an existing target written in place (0 for a
/// new image). Strings are valid during the call only. Return 0 to go on, non-zero to stop
/// hearing of the rest (the failover is done: it still returns `REPLICORE_OK`).
#[allow(non_camel_case_types)]
pub type replicore_image_callback = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        disk: *const c_char,
        path: *const c_char,
        size: u64,
        onto_existing: u32,
    ) -> c_int,
>;

/// Writes disk `disk` of `group` as it was at the point whose id is the 32 bytes at `point_id`
/// to a new raw image at `out_path` (it must not exist, a symbolic link counting:
/// `REPLICORE_ERR_ALREADY_EXISTS`; it is created 0600, zeros left as holes, and appears once
/// complete and synced). Needs the group's key: every blob and every point's manifests are
/// authenticated (a wrong key is `REPLICORE_ERR_AUTHENTICATION`, damaged data
/// `REPLICORE_ERR_CORRUPT`). Progress counts the disk's bytes: first 0, at least every 8 MiB,
/// last the disk's size.
///
/// # Safety
///
/// `vault` and `key` are NULL or live handles; strings are NULL or NUL-terminated; `point_id`
/// is NULL or readable for 32 bytes; `callback` may be called with `user`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_vault_materialize(
    vault: *const replicore_vault,
    group: *const c_char,
    point_id: *const u8,
    disk: *const c_char,
    key: *const replicore_key,
    out_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
) -> replicore_status {
    // SAFETY: per this function's contract.
    unsafe {
        materialize_with(
            (vault, group, point_id, disk, key),
            (out_path, "out_path", false),
            callback,
            user,
        )
    }
}

/// As `replicore_vault_materialize`, onto existing storage at `target_path`: a block device (a
/// LUN, a logical volume; opened exclusively, so one that is mounted is refused) or a regular
/// file, of at least the disk's size (a smaller one is `REPLICORE_ERR_INVALID_ARGUMENT` before
/// anything is written). Every byte of the disk is written (its zeros discarded or zeroed out
/// where the device or file system supports it, else written); bytes past the disk's size are
/// left as they are; the target is synced before the last progress call. Written in place, it
/// is not all or nothing: after an error or a cancellation the target holds part of the point.
///
/// # Safety
///
/// As for `replicore_vault_materialize`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_vault_materialize_onto(
    vault: *const replicore_vault,
    group: *const c_char,
    point_id: *const u8,
    disk: *const c_char,
    key: *const replicore_key,
    target_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
) -> replicore_status {
    // SAFETY: per this function's contract.
    unsafe {
        materialize_with(
            (vault, group, point_id, disk, key),
            (target_path, "target_path", true),
            callback,
            user,
        )
    }
}

/// The body of `replicore_vault_materialize` (`onto` false) and `_onto` (true).
///
/// # Safety
///
/// As for `replicore_vault_materialize`.
unsafe fn materialize_with(
    (vault, group, point_id, disk, key): (
        *const replicore_vault,
        *const c_char,
        *const u8,
        *const c_char,
        *const replicore_key,
    ),
    (path, path_name, onto): (*const c_char, &'static str, bool),
    callback: replicore_progress_callback,
    user: *mut c_void,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let point = unsafe { self::point_id(point_id, "point_id") }?;
        let disk = unsafe { handle::str(disk, "disk") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let path = unsafe { handle::str(path, path_name) }?;
        with_progress(callback, user, |p| {
            if onto {
                vault.materialize_onto(group, point, disk, key, path, p)
            } else {
                vault.materialize(group, point, disk, key, path, p)
            }
        })?;
        Ok(())
    })
}

/// Fails `group` over: writes every disk of the point `selector` picks (as for
/// `replicore_vault_select`) as `out_dir/<disk>.img` (characters other than letters, digits,
/// `.`, `_` and `-` in a disk name become `_`), each created 0600; an image already there is
/// `REPLICORE_ERR_ALREADY_EXISTS` before any is written; `out_dir` is created when missing.
/// All or nothing: on success every image is published; on any error or a cancellation none
/// is, nor any temporary file. The number of images goes to `*count_out` unless NULL. Progress
/// counts the disks' bytes (their sizes' sum is the total): first 0, at least every 8 MiB,
/// last the total once every image is synced.
///
/// # Safety
///
/// As for `replicore_vault_select` and `replicore_vault_materialize`; `count_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_vault_failover(
    vault: *const replicore_vault,
    group: *const c_char,
    selector: u32,
    time_ns: u64,
    id: *const u8,
    key: *const replicore_key,
    out_dir: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    count_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let out_dir = unsafe { handle::str(out_dir, "out_dir") }?;
        // SAFETY: per this function's contract.
        let s = unsafe { to_selector(selector, time_ns, id) }?;
        let written = with_progress(callback, user, |p| {
            vault.failover(group, s, key, out_dir, p)
        })?;
        if !count_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(count_out, "count_out") }? = written.len() as u64;
        }
        Ok(())
    })
}

/// As `replicore_vault_failover`, with the disks of `targets` (`target_count` entries; NULL
/// when 0) written onto existing storage as `replicore_vault_materialize_onto` does, the others
/// as new images in `out_dir` (which may be NULL when every disk has a target). `flags` is 0
/// or `REPLICORE_FAILOVER_REPLACE`. Every target is opened and its size checked before
/// anything is written, and two disks onto one file are refused; the targets are written and
/// synced before the new images are published, so an error or a cancellation publishes no new
/// image but may leave targets partly written. `on_image` (may be NULL) hears of each disk
/// written, with `image_user`; `progress` is called with `progress_user`.
///
/// # Safety
///
/// As for `replicore_vault_failover`; `out_dir` is NULL or NUL-terminated; `targets` is NULL
/// or readable for `target_count` entries whose strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_vault_failover_to(
    vault: *const replicore_vault,
    group: *const c_char,
    selector: u32,
    time_ns: u64,
    id: *const u8,
    key: *const replicore_key,
    out_dir: *const c_char,
    targets: *const replicore_failover_target,
    target_count: usize,
    flags: u32,
    on_image: replicore_image_callback,
    image_user: *mut c_void,
    progress: replicore_progress_callback,
    progress_user: *mut c_void,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let out_dir = if out_dir.is_null() {
            ""
        } else {
            // SAFETY: per this function's contract.
            unsafe { handle::str(out_dir, "out_dir") }?
        };
        // SAFETY: per this function's contract.
        let s = unsafe { to_selector(selector, time_ns, id) }?;
        if flags & !REPLICORE_FAILOVER_REPLACE != 0 {
            return Err(Error::invalid_argument(
                "flags",
                format!("{flags:#x} holds bits other than REPLICORE_FAILOVER_REPLACE"),
            )
            .into());
        }
        let mut options = FailoverOptions {
            replace: flags & REPLICORE_FAILOVER_REPLACE != 0,
            targets: Vec::with_capacity(target_count.min(1024)),
        };
        if target_count > 0 {
            if targets.is_null() {
                return Err(handle::Failure::Null("targets"));
            }
            for i in 0..target_count {
                // SAFETY: per this function's contract, `targets` holds `target_count` entries.
                let t = unsafe { targets.add(i).read() };
                // SAFETY: per this function's contract.
                let disk = unsafe { handle::str(t.disk, "targets[].disk") }?;
                let path = unsafe { handle::str(t.path, "targets[].path") }?;
                options.targets.push((disk.to_string(), path.into()));
            }
        }
        let written = with_progress(progress, progress_user, |p| {
            vault.failover_with(group, s, key, out_dir, &options, p)
        })?;
        if let Some(cb) = on_image {
            for m in &written {
                let (disk, path) = names(m)?;
                // SAFETY: the caller vouches for the callback and its user pointer.
                let stop = unsafe {
                    cb(
                        image_user,
                        disk.as_ptr(),
                        path.as_ptr(),
                        m.size,
                        u32::from(m.onto_existing),
                    )
                };
                if stop != 0 {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// A written disk's name and path as C strings.
fn names(m: &Materialized) -> Result<(CString, CString), Error> {
    let disk = CString::new(m.disk.as_str())
        .map_err(|_| Error::corrupt("disk name", None, "it holds a NUL byte"))?;
    let path = CString::new(m.path.to_string_lossy().into_owned())
        .map_err(|_| Error::invalid_argument("out_dir", "a path with a NUL byte"))?;
    Ok((disk, path))
}
