//! The way back after a failover, from C: tracking the recovered disks, the stale disks'
//! signature for the reverse resync, applying bundles to a replica's disks in chain order, a
//! group's recorded protection state, why a resync is needed, and a group's status at the
//! recovery site.

use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replicore::Error;
use replicore::bundle::{ProtectionRecord, TrackFrom, apply, sign_for_apply, track};
use replicore::log::{DiskSpec, ResyncCheck, ResyncReason, resync_reasons};
use replicore::policy::{Health, ReplicationFrequency};

use crate::handle::{self, run};
use crate::key::replicore_key;
use crate::log::replicore_log;
use crate::policy::{state, state_code};
use crate::resync::{replicore_progress_callback, with_progress};
use crate::status::replicore_status;
use crate::vault::{point_id, replicore_vault};

/// Flag of `replicore_resync_sign` and `replicore_vault_track_failover`: replace files an
/// earlier, interrupted attempt left.
pub const REPLICORE_REPLACE: u32 = 1;

/// What `replicore_apply` did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_apply_info {
    /// The sequence number of the point the disks now hold.
    pub seq: u64,
    /// Its id.
    pub point_id: [u8; 32],
    /// Bytes written from the bundle's blobs.
    pub data_bytes: u64,
    /// Bytes zeroed.
    pub zeroed_bytes: u64,
}

/// A reason a resync is needed (bits of `replicore_log_resync_reasons`'s mask).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_resync_reason {
    /// The log is missing, or of another tracking session than the one shipped from.
    REPLICORE_RESYNC_TRACKER_LOST = 1,
    /// The log ends in a torn record: not closed cleanly.
    REPLICORE_RESYNC_NOT_CLOSED_CLEANLY = 2,
    /// The pending bytes reached the resync threshold.
    REPLICORE_RESYNC_PAST_THRESHOLD = 4,
    /// A disk's size is not the one the log tracks.
    REPLICORE_RESYNC_DISK_RESIZED = 8,
}

/// A group's replication health.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_health {
    /// Points arrive on time.
    REPLICORE_HEALTH_HEALTHY = 1,
    /// Points are late, or the last step failed in a way a retry may fix.
    REPLICORE_HEALTH_WARNING = 2,
    /// Replication stopped, a resync is needed, or the last step failed for good.
    REPLICORE_HEALTH_CRITICAL = 3,
}

/// A group's status at the recovery site (`replicore_vault_group_status`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_group_status {
    /// Points kept.
    pub points: u64,
    /// The newest point's sequence number.
    pub head_seq: u64,
    /// Its time, in nanoseconds since the Unix epoch.
    pub head_time_ns: u64,
    /// Its id.
    pub head_id: [u8; 32],
    /// Whether an app-consistent point is kept.
    pub has_app_consistent: bool,
    /// The newest app-consistent point's sequence number (0 when none).
    pub app_seq: u64,
    /// Its time (0 when none).
    pub app_time_ns: u64,
    /// Stored bytes of the blobs the group's points reference, each once.
    pub stored_bytes: u64,
    /// How old the newest point is at the time asked, in nanoseconds.
    pub lag_ns: u64,
    /// A `replicore_health` value.
    pub health: u32,
}

/// (name, path) pairs from the C arrays.
///
/// # Safety
///
/// `names` and `paths` are NULL or hold `count` NUL-terminated strings (or NULLs).
unsafe fn disks<'a>(
    names: *const *const c_char,
    paths: *const *const c_char,
    count: usize,
) -> Result<Vec<(&'a str, &'a Path)>, handle::Failure> {
    // SAFETY: per this function's contract.
    let names = unsafe { handle::slice(names, count, "disk_names") }?;
    let paths = unsafe { handle::slice(paths, count, "image_paths") }?;
    let mut out = Vec::with_capacity(count);
    for (n, p) in names.iter().zip(paths) {
        // SAFETY: per this function's contract.
        let n = unsafe { handle::str(*n, "disk_names[]") }?;
        let p = unsafe { handle::str(*p, "image_paths[]") }?;
        out.push((n, Path::new(p)));
    }
    Ok(out)
}

fn check_flags(flags: u32) -> Result<(), handle::Failure> {
    if flags & !REPLICORE_REPLACE != 0 {
        return Err(Error::invalid_argument(
            "flags",
            format!("{flags:#x} holds bits other than REPLICORE_REPLACE"),
        )
        .into());
    }
    Ok(())
}

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// After a failover of `group` to the point whose id is the 32 bytes at `point_id`: creates a
/// change log at `log_path` tracking the recovered disks (the point's disks, names and sizes)
/// whose points follow that point, and saves the ship state that ships it at `state_path`, so
/// the recovered VM's writes are kept for the way back from the first one. The open log goes
/// to `*log_out` (free it with `replicore_log_free`). `flags` is 0 or `REPLICORE_REPLACE` (an
/// existing log is replaced; else `REPLICORE_ERR_ALREADY_EXISTS`).
///
/// # Safety
///
/// `vault` and `key` are NULL or live handles; strings are NULL or NUL-terminated; `point_id`
/// is NULL or readable for 32 bytes; `log_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_track_failover(
    vault: *const replicore_vault,
    group: *const c_char,
    point_id: *const u8,
    key: *const replicore_key,
    log_path: *const c_char,
    state_path: *const c_char,
    flags: u32,
    log_out: *mut *mut replicore_log,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let id = unsafe { self::point_id(point_id, "point_id") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let log_path = unsafe { handle::str(log_path, "log_path") }?;
        let state_path = unsafe { handle::str(state_path, "state_path") }?;
        let out = unsafe { handle::out(log_out, "log_out") }?;
        check_flags(flags)?;
        let p = vault.select(group, replicore::vault::Selector::Id(id))?;
        let from = TrackFrom {
            group: group.to_string(),
            point: p.id,
            seq: p.seq,
            chunk_size: p.chunk_size,
            time_ns: ns(p.time),
        };
        let specs = p
            .disks
            .iter()
            .map(|d| DiskSpec::new(d.name.clone(), d.size))
            .collect();
        let (log, state) = track(&from, specs, key, log_path, flags & REPLICORE_REPLACE != 0)?;
        state.save(state_path)?;
        *out = handle::into_raw::<replicore_log>(Mutex::new(log));
        Ok(())
    })
}

/// At the original site after a failover: the keyed signature of the group's stale disks
/// (`image_paths[i]` is disk `disk_names[i]`, in the group's order) on the `chunk_size` grid
/// (0: 64 KiB), streamed to `signature_path` (sealed under `key`, created 0600), and the apply
/// state at `apply_state_path` that expects the resync point the recovery site makes against
/// it (`replicore_resync_ship` with this signature). From then on the disks change only by
/// `replicore_apply`. `flags` is 0 or `REPLICORE_REPLACE`. Progress counts the disks' bytes.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `disk_names` and `image_paths` are NULL or hold
/// `disk_count` such strings; `key` is NULL or a live key; the callback may be called with
/// `user`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_resync_sign(
    group: *const c_char,
    key: *const replicore_key,
    disk_names: *const *const c_char,
    image_paths: *const *const c_char,
    disk_count: usize,
    chunk_size: u32,
    signature_path: *const c_char,
    apply_state_path: *const c_char,
    flags: u32,
    callback: replicore_progress_callback,
    user: *mut c_void,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let group = unsafe { handle::str(group, "group") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let disks = unsafe { disks(disk_names, image_paths, disk_count) }?;
        let sig = unsafe { handle::str(signature_path, "signature_path") }?;
        let state = unsafe { handle::str(apply_state_path, "apply_state_path") }?;
        check_flags(flags)?;
        let cs = if chunk_size == 0 {
            replicore::resync::DEFAULT_CHUNK_SIZE
        } else {
            chunk_size
        };
        with_progress(callback, user, |p| {
            sign_for_apply(
                group,
                &disks,
                key,
                cs,
                Path::new(sig),
                Path::new(state),
                flags & REPLICORE_REPLACE != 0,
                p,
            )
            .map_err(|e| e.renaming_argument("disks", "disk_names"))
        })?;
        Ok(())
    })
}

/// Applies the bundle at `bundle_path` to a replica's disks (`image_paths[i]` is disk
/// `disk_names[i]`; every disk of the bundle), which hold the point the apply state at
/// `apply_state_path` names, and advances it. Refused before a byte is written: another group
/// or key (`REPLICORE_ERR_INVALID_ARGUMENT`), a gap, a fork or a replay
/// (`REPLICORE_ERR_CHAIN_BROKEN`), the point the disks hold already
/// (`REPLICORE_ERR_ALREADY_EXISTS`), a damaged or forged bundle (`REPLICORE_ERR_CORRUPT`,
/// `REPLICORE_ERR_AUTHENTICATION`). An apply cut at any moment is completed by applying the same
/// bundle again. What was done goes to `*info_out` unless NULL. Progress counts the bytes the
/// bundle's manifests map.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `disk_names` and `image_paths` are NULL or hold
/// `disk_count` such strings; `key` is NULL or a live key; the callback may be called with
/// `user`; `info_out` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn replicore_apply(
    bundle_path: *const c_char,
    key: *const replicore_key,
    disk_names: *const *const c_char,
    image_paths: *const *const c_char,
    disk_count: usize,
    apply_state_path: *const c_char,
    callback: replicore_progress_callback,
    user: *mut c_void,
    info_out: *mut replicore_apply_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let bundle = unsafe { handle::str(bundle_path, "bundle_path") }?;
        let key = unsafe { handle::as_ref(key, "key") }?;
        let disks = unsafe { disks(disk_names, image_paths, disk_count) }?;
        let state = unsafe { handle::str(apply_state_path, "apply_state_path") }?;
        let r = with_progress(callback, user, |p| {
            apply(bundle, key, &disks, state, p)
                .map_err(|e| e.renaming_argument("disks", "disk_names"))
        })?;
        if !info_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(info_out, "info_out") }? = replicore_apply_info {
                seq: r.seq,
                point_id: r.point.0,
                data_bytes: r.data_bytes,
                zeroed_bytes: r.zeroed_bytes,
            };
        }
        Ok(())
    })
}

/// Reads the protection state of `group` recorded at `path` (a `.rcprot` file): its
/// `replicore_protection_state` to `*state_out`, when it was entered to `*since_ns_out`
/// (unless NULL), and the status class of the last failure since (`REPLICORE_OK` for none)
/// to `*last_error_out` (unless NULL). No record: `REPLICORE_ERR_NOT_FOUND`.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; the outputs are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_protection_load(
    path: *const c_char,
    group: *const c_char,
    state_out: *mut u32,
    since_ns_out: *mut u64,
    last_error_out: *mut replicore_status,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let out = unsafe { handle::out(state_out, "state_out") }?;
        let Some(r) = ProtectionRecord::load(path)? else {
            return Err(Error::NotFound {
                what: format!("protection state {path}"),
            }
            .into());
        };
        if r.group != group {
            return Err(Error::invalid_argument(
                "group",
                format!(
                    "{path} holds the state of group `{}`, not `{group}`",
                    r.group
                ),
            )
            .into());
        }
        *out = state_code(r.state);
        if !since_ns_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(since_ns_out, "since_ns_out") }? = ns(r.since);
        }
        if !last_error_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(last_error_out, "last_error_out") }? = r
                .last_error
                .map_or(replicore_status::REPLICORE_OK, |(k, _)| {
                    replicore_status::from_kind(k)
                });
        }
        Ok(())
    })
}

/// Moves `group`'s protection state recorded at `path` to `to` (a
/// `replicore_protection_state`), if the state machine allows the move
/// (`REPLICORE_ERR_INVALID_ARGUMENT` naming both states otherwise, nothing written). With no
/// record yet, `to` is recorded as it stands. A move clears the last error.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_protection_move(
    path: *const c_char,
    group: *const c_char,
    to: u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let to = state(to, "to")?;
        let p = Path::new(path);
        if ProtectionRecord::load(p)?.is_some() {
            ProtectionRecord::advance(p, group, &[to], SystemTime::now())?;
        } else {
            ProtectionRecord {
                group: group.to_string(),
                state: to,
                since: SystemTime::now(),
                last_error: None,
            }
            .save(p)?;
        }
        Ok(())
    })
}

/// Records at `path` that a step of `group` failed with `error` (a `replicore_status` other
/// than `REPLICORE_OK`; `REPLICORE_OK` clears the last error after a success). The state stays;
/// a group with no record gets none.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_protection_note_error(
    path: *const c_char,
    group: *const c_char,
    error: u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(path, "path") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let p = Path::new(path);
        if error == replicore_status::REPLICORE_OK as u32 {
            ProtectionRecord::clear_error(p, group)?;
            return Ok(());
        }
        let kind = kind_of(error)?;
        ProtectionRecord::note_error(p, group, kind, SystemTime::now())?;
        Ok(())
    })
}

/// The library error class a status stands for (NULL parameter and panic are invalid
/// arguments' and I/O's nearest).
fn kind_of(error: u32) -> Result<replicore::ErrorKind, handle::Failure> {
    replicore::ErrorKind::ALL
        .into_iter()
        .find(|k| replicore_status::from_kind(*k) as u32 == error)
        .ok_or_else(|| {
            Error::invalid_argument(
                "error",
                format!("{error} is not the status of a library error class"),
            )
            .into()
        })
}

/// Why the active change log at `log_path` cannot carry delta replication on: a mask of
/// `replicore_resync_reason` bits to `*reasons_out` (0: it can). `epoch` is NULL or the 16
/// bytes of the tracking session the ship state continues (with it a missing log is a lost
/// tracker); `disk_names[i]` is `disk_sizes[i]` bytes now (disks not given are not checked);
/// the threshold is the default, 50% of the disks. `replicore_last_error_message` is not
/// touched on success: the reasons' details are in the log's own description
/// (`replicore log inspect`).
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `epoch` is NULL or readable for 16 bytes;
/// `disk_names` and `disk_sizes` are NULL or hold `disk_count` items; `reasons_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_resync_reasons(
    log_path: *const c_char,
    epoch: *const u8,
    disk_names: *const *const c_char,
    disk_sizes: *const u64,
    disk_count: usize,
    reasons_out: *mut u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let path = unsafe { handle::str(log_path, "log_path") }?;
        let out = unsafe { handle::out(reasons_out, "reasons_out") }?;
        let epoch = if epoch.is_null() {
            None
        } else {
            let b = unsafe { handle::bytes(epoch, 16, "epoch") }?;
            let mut e = [0u8; 16];
            e.copy_from_slice(b);
            Some(e)
        };
        let names = unsafe { handle::slice(disk_names, disk_count, "disk_names") }?;
        let sizes = unsafe { handle::slice(disk_sizes, disk_count, "disk_sizes") }?;
        let mut given = Vec::with_capacity(disk_count);
        for (n, s) in names.iter().zip(sizes) {
            // SAFETY: per this function's contract.
            given.push((unsafe { handle::str(*n, "disk_names[]") }?, *s));
        }
        let check = ResyncCheck {
            epoch,
            disk_sizes: &given,
            threshold: None,
        };
        let mut mask = 0u32;
        for n in resync_reasons(path, &check)? {
            mask |= match n.reason {
                ResyncReason::TrackerLost => replicore_resync_reason::REPLICORE_RESYNC_TRACKER_LOST,
                ResyncReason::NotClosedCleanly => {
                    replicore_resync_reason::REPLICORE_RESYNC_NOT_CLOSED_CLEANLY
                }
                ResyncReason::PastThreshold => {
                    replicore_resync_reason::REPLICORE_RESYNC_PAST_THRESHOLD
                }
                ResyncReason::DiskResized => replicore_resync_reason::REPLICORE_RESYNC_DISK_RESIZED,
            } as u32;
        }
        *out = mask;
        Ok(())
    })
}

/// `group`'s status at the recovery site at `now_ns` (nanoseconds since the Unix epoch; 0:
/// now), replicating every `interval_secs` (30, 300 or 900), to `*status_out`. `last_error` is
/// `REPLICORE_OK` or the status of the last failure of a step for the group since its newest
/// point (what the host's agent saw), which the health takes into account.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `status_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_group_status(
    vault: *const replicore_vault,
    group: *const c_char,
    now_ns: u64,
    interval_secs: u64,
    last_error: u32,
    status_out: *mut replicore_group_status,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let out = unsafe { handle::out(status_out, "status_out") }?;
        let frequency = ReplicationFrequency::from_secs(interval_secs)
            .map_err(|e| e.renaming_argument("frequency", "interval_secs"))?;
        let now = if now_ns == 0 {
            SystemTime::now()
        } else {
            UNIX_EPOCH + Duration::from_nanos(now_ns)
        };
        let last = if last_error == replicore_status::REPLICORE_OK as u32 {
            None
        } else {
            Some(kind_of(last_error)?)
        };
        let s = vault.group_status(group, frequency, now, last)?;
        let app = s.newest_app_consistent.as_ref();
        *out = replicore_group_status {
            points: s.points,
            head_seq: s.head.seq,
            head_time_ns: ns(s.head.time),
            head_id: s.head.id.0,
            has_app_consistent: app.is_some(),
            app_seq: app.map_or(0, |p| p.seq),
            app_time_ns: app.map_or(0, |p| ns(p.time)),
            stored_bytes: s.stored_bytes,
            lag_ns: u64::try_from(s.lag.as_nanos()).unwrap_or(u64::MAX),
            health: match s.health {
                Health::Healthy => replicore_health::REPLICORE_HEALTH_HEALTHY,
                Health::Warning => replicore_health::REPLICORE_HEALTH_WARNING,
                Health::Critical => replicore_health::REPLICORE_HEALTH_CRITICAL,
            } as u32,
        };
        Ok(())
    })
}
