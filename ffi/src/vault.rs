//! The vault from C: create or open, ingest bundles, list and select points, materialize a
//! disk or fail a group over, verify.

use std::ffi::{CString, c_char, c_int, c_void};
use std::time::{Duration, UNIX_EPOCH};

use replicore::PointId;
use replicore::bundle::BundleKind;
use replicore::log::MarkerKind;
use replicore::vault::{RecoveryPoint, Selector, Vault};

use crate::handle::{self, Handle, run};
use crate::key::replicore_key;
use crate::resync::{replicore_progress_callback, with_progress};
use crate::status::replicore_status;

/// A vault on a directory (see the Rust `Vault`). Created by `replicore_vault_create`,
/// `replicore_vault_open` or `replicore_vault_open_bounded`, freed by `replicore_vault_free`.
///
/// Thread safety: may be shared between threads and used by several at once: ingests of
/// different groups, materializes, verifies and listings run side by side (the vault's
/// advisory locks order them; a conflicting operation gets `REPLICORE_ERR_LOCKED`).
#[allow(non_camel_case_types)]
pub struct replicore_vault {
    _private: [u8; 0],
}

// SAFETY: zero-sized, never constructed; pointers to it come only from `into_raw`.
unsafe impl Handle for replicore_vault {
    type Inner = Vault;
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Vault>()
};

/// Bytes of a recovery point's id.
pub const REPLICORE_POINT_ID_LEN: usize = 32;

/// Bytes of `replicore_point_info.label`: the longest label (1024 bytes of UTF-8) and its NUL.
pub const REPLICORE_LABEL_CAPACITY: usize = 1025;

/// Which point `replicore_vault_select` picks.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_selector {
    /// The newest point.
    REPLICORE_SELECT_LATEST = 1,
    /// The newest app-consistent point.
    REPLICORE_SELECT_LATEST_APP = 2,
    /// The newest point at or before a time.
    REPLICORE_SELECT_AT_OR_BEFORE = 3,
    /// The point with an id.
    REPLICORE_SELECT_ID = 4,
}

/// A recovery point (from `replicore_vault_points` and `replicore_vault_select`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_point_info {
    /// The point's id (the BLAKE3 of the header it was shipped with).
    pub id: [u8; REPLICORE_POINT_ID_LEN],
    /// The previous point's id (zeros for the base).
    pub parent: [u8; REPLICORE_POINT_ID_LEN],
    /// Sequence number in the group (0 for the base).
    pub seq: u64,
    /// Time of the point, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// 1 crash-consistent, 2 app-consistent.
    pub consistency: u32,
    /// 1 base, 2 incremental.
    pub kind: u32,
    /// Disks of the group.
    pub disks: u64,
    /// Sum of the disks' sizes in bytes.
    pub total_size: u64,
    /// Shipped points the point stands for besides itself (pruned points merged into it, or
    /// those a checkpoint replaced; 0 for a point as shipped).
    pub merged: u64,
    /// 1 when the point's file starts with a signed checkpoint (`replicore_vault_compact`).
    pub checkpoint: u32,
    /// The verifying key that signed the point (32 bytes).
    pub verifying_key: [u8; 32],
    /// The id of the group's key, which seals the point (as `replicore_key_id` gives it).
    pub key_id: [u8; 16],
    /// The point's label (the marker's), NUL-terminated UTF-8.
    pub label: [c_char; REPLICORE_LABEL_CAPACITY],
}

/// What `replicore_vault_ingest` did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_ingest_info {
    /// 1 when the point was added; 0 when it was already there (nothing changed).
    pub added: u32,
    /// The point's sequence number.
    pub seq: u64,
    /// The point's id.
    pub id: [u8; REPLICORE_POINT_ID_LEN],
    /// Blobs stored and their stored bytes.
    pub blobs_stored: u64,
    /// Stored bytes of those blobs.
    pub bytes_stored: u64,
    /// Blobs of the bundle the vault held already.
    pub blobs_deduplicated: u64,
    /// Small packs combined into larger ones after the commit, when the vault was otherwise
    /// idle (so it keeps about one file per 32 MiB stored without a GC).
    pub packs_combined: u64,
    /// The group's point files combined into a segment after the commit, when the vault was
    /// otherwise idle (so a long chain is a few files without a GC).
    pub point_files_combined: u64,
}

fn point_info(p: &RecoveryPoint) -> replicore_point_info {
    replicore_point_info {
        id: p.id.0,
        parent: p.parent.0,
        seq: p.seq,
        time_ns: p
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        consistency: match p.consistency {
            MarkerKind::Crash => 1,
            MarkerKind::App => 2,
        },
        kind: match p.kind {
            BundleKind::Base => 1,
            BundleKind::Incremental => 2,
        },
        disks: p.disks.len() as u64,
        total_size: p.disks.iter().map(|d| d.size).sum(),
        merged: p.merged,
        checkpoint: u32::from(p.checkpoint),
        verifying_key: p.verifying_key.0,
        key_id: p.key_id.0,
        label: c_label(&p.label),
    }
}

/// A label as a NUL-terminated C array (cut at a NUL byte, which no C caller can give).
fn c_label(label: &str) -> [c_char; REPLICORE_LABEL_CAPACITY] {
    let mut out = [0 as c_char; REPLICORE_LABEL_CAPACITY];
    for (o, &b) in out[..REPLICORE_LABEL_CAPACITY - 1]
        .iter_mut()
        .zip(label.as_bytes().iter().take_while(|&&b| b != 0))
    {
        *o = b as c_char;
    }
    out
}

/// Creates a vault in the directory `path` (created if missing; it must be empty) and opens it
/// into `*vault_out` (free with `replicore_vault_free`).
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `vault_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_create(
    path: *const c_char,
    vault_out: *mut *mut replicore_vault,
) -> replicore_status {
    // SAFETY: per this function's contract.
    unsafe { open_with(path, vault_out, |p| Vault::create(p)) }
}

/// Opens the vault in the directory `path` into `*vault_out` (free with
/// `replicore_vault_free`); leftovers of interrupted operations are removed when no one else is
/// working in it. A directory that is not a vault is `REPLICORE_ERR_NOT_FOUND`.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `vault_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_open(
    path: *const c_char,
    vault_out: *mut *mut replicore_vault,
) -> replicore_status {
    // SAFETY: per this function's contract.
    unsafe { open_with(path, vault_out, |p| Vault::open(p)) }
}

/// As `replicore_vault_open`, with the blob bytes an ingest through this handle may hold at
/// once set to `ingest_memory` (the default is 128 MiB; at least 4 MiB, else
/// `REPLICORE_ERR_INVALID_ARGUMENT`): new blobs are checked in batches of a quarter of it, at
/// most four batches in flight. The open pack's 8 MiB write buffer comes on top.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `vault_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_open_bounded(
    path: *const c_char,
    ingest_memory: usize,
    vault_out: *mut *mut replicore_vault,
) -> replicore_status {
    // SAFETY: per this function's contract.
    unsafe {
        open_with(path, vault_out, |p| {
            Vault::open(p)?
                .with_ingest_memory(ingest_memory)
                .map_err(|e| e.renaming_argument("bytes", "ingest_memory"))
        })
    }
}

/// Makes a vault handle from `path` with `make`.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `vault_out` is NULL or writable.
unsafe fn open_with(
    path: *const c_char,
    vault_out: *mut *mut replicore_vault,
    make: impl FnOnce(&str) -> replicore::Result<Vault>,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let out = unsafe { handle::out(vault_out, "vault_out") }?;
        *out = handle::into_raw::<replicore_vault>(make(path)?);
        Ok(())
    })
}

/// Frees a vault handle (the vault on disk stays). NULL is accepted.
///
/// # Safety
///
/// `vault` is NULL or a live vault that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_free(vault: *mut replicore_vault) {
    // SAFETY: per this function's contract.
    crate::ffi_boundary! { unsafe { handle::free(vault) } }
}

/// Ingests the bundle at `bundle_path` without the key: integrity checked, chain checked (a
/// bundle that does not continue its group's chain is `REPLICORE_ERR_CHAIN_BROKEN`), only new
/// blobs stored, the point committed atomically. The same bundle again changes nothing
/// (`added` 0). What happened goes to `*info_out` unless NULL. Progress counts bundle bytes.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `bundle_path` is NULL or NUL-terminated; `callback` may be
/// called with `user`; `info_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_ingest(
    vault: *const replicore_vault,
    bundle_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    info_out: *mut replicore_ingest_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let bundle_path = unsafe { handle::str(bundle_path, "bundle_path") }?;
        let i = with_progress(callback, user, |p| vault.ingest(bundle_path, p))?;
        if !info_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(info_out, "info_out") }? = replicore_ingest_info {
                added: u32::from(i.added),
                seq: i.seq,
                id: i.point.0,
                blobs_stored: i.blobs_stored,
                bytes_stored: i.bytes_stored,
                blobs_deduplicated: i.blobs_deduplicated,
                packs_combined: i.packs_combined,
                point_files_combined: i.point_files_combined,
            };
        }
        Ok(())
    })
}

/// Called once per group by `replicore_vault_groups`, in name order; return 0 to go on,
/// non-zero to stop (`REPLICORE_ERR_CANCELLED`). The name is valid during the call only.
#[allow(non_camel_case_types)]
pub type replicore_group_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, group: *const c_char) -> c_int>;

/// Lists the vault's groups (those with at least one point) through `on_group` (may be NULL to
/// only count them), and their number to `*count_out` unless NULL.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `on_group` may be called with `user`; `count_out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_groups(
    vault: *const replicore_vault,
    on_group: replicore_group_callback,
    user: *mut c_void,
    count_out: *mut usize,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let groups = vault.groups()?;
        if let Some(cb) = on_group {
            for g in &groups {
                // Group names come from bundles, which refuse NUL bytes; say so if one slipped.
                let name = CString::new(g.as_str()).map_err(|_| {
                    replicore::Error::corrupt("group name", None, "it holds a NUL byte")
                })?;
                // SAFETY: the caller vouches for the callback and its user pointer.
                if unsafe { cb(user, name.as_ptr()) } != 0 {
                    return Err(replicore::Error::Cancelled {
                        what: "listing groups (by the callback)".into(),
                    }
                    .into());
                }
            }
        }
        if !count_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(count_out, "count_out") }? = groups.len();
        }
        Ok(())
    })
}

/// Lists the points of `group`, oldest first: the first `capacity` of them go to `points_out`
/// (which may be NULL when `capacity` is 0) and their total number to `*count_out`. Call with
/// capacity 0 to learn the count. An unknown group is `REPLICORE_ERR_NOT_FOUND`.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `points_out` is NULL or
/// writable for `capacity` entries; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_points(
    vault: *const replicore_vault,
    group: *const c_char,
    points_out: *mut replicore_point_info,
    capacity: usize,
    count_out: *mut usize,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let count = unsafe { handle::out(count_out, "count_out") }?;
        if points_out.is_null() && capacity > 0 {
            return Err(handle::Failure::Null("points_out"));
        }
        // One point at a time: a long chain is never held as a list here.
        let mut n = 0usize;
        vault.each_point(group, |p| {
            if n < capacity {
                // SAFETY: per this function's contract, `points_out` holds `capacity` entries.
                unsafe { points_out.add(n).write(point_info(&p)) };
            }
            n += 1;
            Ok(())
        })?;
        *count = n;
        Ok(())
    })
}

/// Picks a point of `group`: the newest, the newest app-consistent, the newest at or before
/// `time_ns`, or the one whose id is the 32 bytes at `id` (read only for
/// `REPLICORE_SELECT_ID`; may be NULL otherwise). No such point is `REPLICORE_ERR_NOT_FOUND`.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `id` is NULL or
/// readable for 32 bytes; `info_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_select(
    vault: *const replicore_vault,
    group: *const c_char,
    selector: u32,
    time_ns: u64,
    id: *const u8,
    info_out: *mut replicore_point_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let out = unsafe { handle::out(info_out, "info_out") }?;
        // SAFETY: per this function's contract.
        let s = unsafe { to_selector(selector, time_ns, id) }?;
        *out = point_info(&vault.select(group, s)?);
        Ok(())
    })
}

/// The Rust selector of a C one.
///
/// # Safety
///
/// `id` is NULL or readable for 32 bytes.
pub(crate) unsafe fn to_selector(
    selector: u32,
    time_ns: u64,
    id: *const u8,
) -> Result<Selector, handle::Failure> {
    use replicore_selector::*;
    Ok(match selector {
        s if s == REPLICORE_SELECT_LATEST as u32 => Selector::Latest,
        s if s == REPLICORE_SELECT_LATEST_APP as u32 => Selector::LatestAppConsistent,
        s if s == REPLICORE_SELECT_AT_OR_BEFORE as u32 => {
            Selector::AtOrBefore(UNIX_EPOCH + Duration::from_nanos(time_ns))
        }
        // SAFETY: per this function's contract.
        s if s == REPLICORE_SELECT_ID as u32 => Selector::Id(unsafe { point_id(id, "id") }?),
        s => {
            return Err(replicore::Error::invalid_argument(
                "selector",
                format!(
                    "{s} is not a replicore_selector (REPLICORE_SELECT_LATEST = 1 to \
                     REPLICORE_SELECT_ID = 4)"
                ),
            )
            .into());
        }
    })
}

/// Reads a point id from C.
///
/// # Safety
///
/// `id` is NULL or readable for 32 bytes.
pub(crate) unsafe fn point_id(
    id: *const u8,
    name: &'static str,
) -> Result<PointId, handle::Failure> {
    // SAFETY: per this function's contract.
    let b = unsafe { handle::bytes(id, REPLICORE_POINT_ID_LEN, name) }?;
    let mut a = [0u8; REPLICORE_POINT_ID_LEN];
    a.copy_from_slice(b);
    Ok(PointId(a))
}

/// Checks the vault: without a key (`key` NULL) its structure, every stored byte and every
/// point's signature; with the group's key, also every blob's decryption. With a key, `group`
/// (may be NULL) names the group the key is for: a key that does not open it (or, when
/// `group` is NULL, every group of the vault) is `REPLICORE_ERR_AUTHENTICATION` (naming the
/// groups), never an OK that checked nothing with it. Damage is not an
/// error: the number of damaged things goes to `*damaged_out` (0 for a sound vault), and the
/// first one's description to the thread's last-error text. Progress counts pack bytes read.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `key` is NULL or a live key; `group` is NULL or
/// NUL-terminated; `callback` may be called with `user`; `damaged_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_verify(
    vault: *const replicore_vault,
    key: *const replicore_key,
    group: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    damaged_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let out = unsafe { handle::out(damaged_out, "damaged_out") }?;
        let key = if key.is_null() {
            None
        } else {
            // SAFETY: per this function's contract.
            Some(unsafe { handle::as_ref(key, "key") }?)
        };
        let group = if group.is_null() {
            None
        } else {
            // SAFETY: per this function's contract.
            Some(unsafe { handle::str(group, "group") }?)
        };
        if let Some(g) = group
            && !vault.groups()?.iter().any(|h| h == g)
        {
            return Err(replicore::Error::NotFound {
                what: format!("group `{g}` in the vault"),
            }
            .into());
        }
        let report = with_progress(callback, user, |p| vault.verify(key, p))?;
        if key.is_some() {
            report.check_key_opened(group)?;
        }
        if let Some(d) = report.damage.first() {
            crate::last_error::set(&format!(
                "{} objects damaged; the first: {}: {}",
                report.damage.len(),
                d.object,
                d.detail
            ));
        }
        *out = report.damage.len() as u64;
        Ok(())
    })
}

/// Called once per disk by `replicore_vault_disks`, in the group's order, with the disk's name
/// (valid during the call only) and its size in bytes; return 0 to go on, non-zero to stop
/// (`REPLICORE_ERR_CANCELLED`).
#[allow(non_camel_case_types)]
pub type replicore_disk_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, name: *const c_char, size: u64) -> c_int>;

/// Lists the disks of `group` at the point whose id is the 32 bytes at `point_id` (or at the
/// newest point when `point_id` is NULL) through `on_disk` (may be NULL to only count them),
/// and their number to `*count_out` unless NULL. No such point is `REPLICORE_ERR_NOT_FOUND`.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `point_id` is NULL or
/// readable for 32 bytes; `on_disk` may be called with `user`; `count_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_disks(
    vault: *const replicore_vault,
    group: *const c_char,
    point_id: *const u8,
    on_disk: replicore_disk_callback,
    user: *mut c_void,
    count_out: *mut usize,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let selector = if point_id.is_null() {
            Selector::Latest
        } else {
            // SAFETY: per this function's contract.
            Selector::Id(unsafe { self::point_id(point_id, "point_id") }?)
        };
        let point = vault.select(group, selector)?;
        if let Some(cb) = on_disk {
            for d in &point.disks {
                let name = CString::new(d.name.as_str()).map_err(|_| {
                    replicore::Error::corrupt("disk name", None, "it holds a NUL byte")
                })?;
                // SAFETY: the caller vouches for the callback and its user pointer.
                if unsafe { cb(user, name.as_ptr(), d.size) } != 0 {
                    return Err(replicore::Error::Cancelled {
                        what: "listing disks (by the callback)".into(),
                    }
                    .into());
                }
            }
        }
        if !count_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(count_out, "count_out") }? = point.disks.len();
        }
        Ok(())
    })
}

/// Called once per pinned point by `replicore_vault_pins` with the point's id (32 bytes, valid
/// during the call only); return 0 to go on, non-zero to stop (`REPLICORE_ERR_CANCELLED`).
#[allow(non_camel_case_types)]
pub type replicore_pin_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, point_id: *const u8) -> c_int>;

/// Lists the points of `group` pinned against pruning (`replicore_vault_pin`) through
/// `on_pin` (may be NULL to only count them), and their number to `*count_out` unless NULL.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `on_pin` may be called
/// with `user`; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_pins(
    vault: *const replicore_vault,
    group: *const c_char,
    on_pin: replicore_pin_callback,
    user: *mut c_void,
    count_out: *mut usize,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let pins = vault.pins(group)?;
        if let Some(cb) = on_pin {
            for p in &pins {
                // SAFETY: the caller vouches for the callback and its user pointer.
                if unsafe { cb(user, p.0.as_ptr()) } != 0 {
                    return Err(replicore::Error::Cancelled {
                        what: "listing pins (by the callback)".into(),
                    }
                    .into());
                }
            }
        }
        if !count_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(count_out, "count_out") }? = pins.len();
        }
        Ok(())
    })
}
