//! The change log from C.

use std::ffi::c_char;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use replicore::Error;
use replicore::log::{
    ChangeLog, DiskSpec, LogConfig, MarkerKind, Recovery, ResyncThreshold, RotationRecovery,
    SyncPolicy, TrackerState,
};

use crate::handle::{self, Failure, Handle, run};
use crate::status::replicore_status;

/// An open change log (see the Rust `ChangeLog`). Created by `replicore_log_create` or
/// `replicore_log_open`, freed by `replicore_log_free`.
///
/// Thread safety: may be shared between threads; calls on one log take an internal lock, so
/// records from several threads get one total order.
#[allow(non_camel_case_types)]
pub struct replicore_log {
    _private: [u8; 0],
}

// SAFETY: zero-sized, never constructed; pointers to it come only from `into_raw`.
unsafe impl Handle for replicore_log {
    type Inner = Mutex<ChangeLog>;
}

/// One disk of a group: a NUL-terminated UTF-8 name (1 to 255 bytes, unique in the group) and
/// its size in bytes.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_disk_spec {
    /// The disk's name.
    pub name: *const c_char,
    /// The disk's size in bytes (at most 64 TiB).
    pub size: u64,
}

/// What a host keeps to prove, at the next open, that the log it finds is the one it wrote.
/// Copy it as a whole; `group` is NUL-terminated.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_tracker {
    /// The group's name, NUL-terminated.
    pub group: [c_char; 256],
    /// The tracking session's random id.
    pub epoch: [u8; 16],
    /// The log's generation.
    pub generation: u64,
}

/// How an interrupted rotation was finished on open.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_rotation_recovery {
    /// No rotation was interrupted.
    REPLICORE_ROTATION_NONE = 0,
    /// The seal was removed; the log is as before the rotation: rotate again.
    REPLICORE_ROTATION_ROLLED_BACK = 1,
    /// The next generation's log was put in place; the sealed log is where the rotation was told.
    REPLICORE_ROTATION_COMPLETED = 2,
}

/// What `replicore_log_open` repaired.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_recovery {
    /// Bytes of a torn tail that were truncated (0 if none).
    pub torn_bytes: u64,
    /// Where the torn tail began (0 if none).
    pub torn_at: u64,
    /// Whether the log holds any record (then `last_seq` is meaningful).
    pub has_records: bool,
    /// Sequence number of the last record kept.
    pub last_seq: u64,
    /// An interrupted rotation that was finished.
    pub rotation: replicore_rotation_recovery,
}

/// Consistency of a recovery point.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_marker_kind {
    /// Crash-consistent.
    REPLICORE_MARKER_CRASH = 1,
    /// Application-consistent.
    REPLICORE_MARKER_APP = 2,
}

/// When records are made durable.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_sync_policy {
    /// Only on `replicore_log_sync` (and rotation). The default.
    REPLICORE_SYNC_MANUAL = 0,
    /// After every record.
    REPLICORE_SYNC_EVERY_RECORD = 1,
    /// Whenever `bytes` were appended since the last sync.
    REPLICORE_SYNC_EVERY_BYTES = 2,
}

fn tracker_to_c(t: &TrackerState) -> replicore_tracker {
    let mut group = [0 as c_char; 256];
    // Group names are at most 255 bytes (checked when the log was created or read).
    for (dst, &b) in group.iter_mut().zip(t.group.as_bytes().iter().take(255)) {
        *dst = b as c_char;
    }
    replicore_tracker {
        group,
        epoch: t.epoch,
        generation: t.generation,
    }
}

fn tracker_from_c(t: &replicore_tracker) -> Result<TrackerState, Failure> {
    let bytes: Vec<u8> = t
        .group
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    if bytes.len() == t.group.len() {
        return Err(Error::invalid_argument(
            "expect->group",
            format!("is not NUL-terminated within its {} bytes", t.group.len()),
        )
        .into());
    }
    let group = String::from_utf8(bytes)
        .map_err(|e| Error::invalid_argument("expect->group", format!("not valid UTF-8: {e}")))?;
    Ok(TrackerState {
        group,
        epoch: t.epoch,
        generation: t.generation,
    })
}

fn recovery_to_c(r: &Recovery) -> replicore_recovery {
    use replicore_rotation_recovery::*;
    replicore_recovery {
        torn_bytes: r.torn.as_ref().map_or(0, |t| t.bytes),
        torn_at: r.torn.as_ref().map_or(0, |t| t.at),
        has_records: r.last_seq.is_some(),
        last_seq: r.last_seq.unwrap_or(0),
        rotation: match r.rotation {
            None => REPLICORE_ROTATION_NONE,
            Some(RotationRecovery::RolledBack) => REPLICORE_ROTATION_ROLLED_BACK,
            Some(RotationRecovery::Completed { .. }) => REPLICORE_ROTATION_COMPLETED,
        },
    }
}

fn lock(log: &Mutex<ChangeLog>) -> std::sync::MutexGuard<'_, ChangeLog> {
    // A panic inside a call was caught at the boundary; the log's own failed-write rule
    // protects the bytes, so the lock is not poisoned for good.
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates a new change log at `path` (which must not exist, a symbolic link counting; it is
/// created 0600) for group `group` with
/// `disk_count` disks, manual syncs and the default resync threshold (50% of the disks' total
/// size), and writes it to `*log_out`. Records name disks by their index in `disks`. The caller
/// frees the log with `replicore_log_free`. The handle is the log's only writer (see
/// `replicore_log_open`).
///
/// # Safety
///
/// `path` and `group` are NULL or NUL-terminated strings; `disks` is NULL or points to
/// `disk_count` specs whose names are NUL-terminated; `log_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_create(
    path: *const c_char,
    group: *const c_char,
    disks: *const replicore_disk_spec,
    disk_count: usize,
    log_out: *mut *mut replicore_log,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each of the unsafe calls below).
        let path = unsafe { handle::str(path, "path") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let specs = unsafe { handle::slice(disks, disk_count, "disks") }?;
        let out = unsafe { handle::out(log_out, "log_out") }?;
        let mut list = Vec::with_capacity(specs.len().min(256));
        for d in specs {
            // SAFETY: per this function's contract.
            let name = unsafe { handle::str(d.name, "disks[].name") }?;
            list.push(DiskSpec::new(name, d.size));
        }
        let log = ChangeLog::create(path, &LogConfig::new(group, list))
            .map_err(|e| e.renaming_argument("disk name", "disks[].name"))?;
        *out = handle::into_raw::<replicore_log>(Mutex::new(log));
        Ok(())
    })
}

/// Opens the change log at `path` for appending, recovering it after an unclean stop, and
/// writes it to `*log_out`. With `expect` (may be NULL), the log must continue what the host
/// last saw, else `REPLICORE_ERR_RESYNC_REQUIRED` (also for a missing log). What was repaired
/// is written to `*recovery_out` unless it is NULL. The caller frees the log.
///
/// A log has one writing handle: while a handle (from this process or another) holds it, a
/// second open is `REPLICORE_ERR_LOCKED`, naming the holder's process id. The lock goes with
/// the handle (`replicore_log_free`) and with its process; share one handle between threads
/// instead (it is thread-safe).
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `expect` and `recovery_out` are NULL or valid; `log_out`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_open(
    path: *const c_char,
    expect: *const replicore_tracker,
    log_out: *mut *mut replicore_log,
    recovery_out: *mut replicore_recovery,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each of the unsafe calls below).
        let path = unsafe { handle::str(path, "path") }?;
        let out = unsafe { handle::out(log_out, "log_out") }?;
        let expect = match unsafe { expect.as_ref() } {
            Some(t) => Some(tracker_from_c(t)?),
            None => None,
        };
        let recovery_out = unsafe { recovery_out.as_mut() };
        let (log, recovery) = ChangeLog::open(
            path,
            expect.as_ref(),
            SyncPolicy::Manual,
            ResyncThreshold::default(),
        )?;
        if let Some(r) = recovery_out {
            *r = recovery_to_c(&recovery);
        }
        *out = handle::into_raw::<replicore_log>(Mutex::new(log));
        Ok(())
    })
}

/// Frees a log (buffered records are handed to the file, not synced). NULL is accepted.
///
/// # Safety
///
/// `log` is NULL or a live log that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_free(log: *mut replicore_log) {
    // SAFETY: per this function's contract.
    crate::ffi_boundary! { unsafe { handle::free(log) } }
}

/// Sets when records are made durable; `bytes` is used by `REPLICORE_SYNC_EVERY_BYTES` and
/// must then be positive. A value that is not a policy is `REPLICORE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `log` is NULL or a live log.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_set_sync_policy(
    log: *const replicore_log,
    policy: u32,
    bytes: u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let log = unsafe { handle::as_ref(log, "log") }?;
        let policy = match policy {
            0 => SyncPolicy::Manual,
            1 => SyncPolicy::EveryRecord,
            2 if bytes == 0 => {
                return Err(Error::invalid_argument(
                    "bytes",
                    "REPLICORE_SYNC_EVERY_BYTES needs a positive byte count, not 0 bytes",
                )
                .into());
            }
            2 => SyncPolicy::EveryBytes(bytes),
            p => {
                return Err(Error::invalid_argument(
                    "policy",
                    format!(
                        "{p} is not a replicore_sync_policy (REPLICORE_SYNC_MANUAL, \
                         REPLICORE_SYNC_EVERY_RECORD or REPLICORE_SYNC_EVERY_BYTES)"
                    ),
                )
                .into());
            }
        };
        Ok(lock(log).set_sync_policy(policy)?)
    })
}

/// Sets the resync threshold: pending log bytes at or above `percent` (1 to 1000) of the
/// group's total disk size, or, when `percent` is 0, at or above `bytes`.
///
/// # Safety
///
/// `log` is NULL or a live log.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_set_resync_threshold(
    log: *const replicore_log,
    percent: u16,
    bytes: u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let log = unsafe { handle::as_ref(log, "log") }?;
        let t = if percent == 0 {
            ResyncThreshold::Bytes(bytes)
        } else {
            ResyncThreshold::Percent(percent)
        };
        Ok(lock(log)
            .set_resync_threshold(t)
            .map_err(|e| e.renaming_argument("resync threshold", "percent"))?)
    })
}

/// Records that `len` bytes at `data` were written to disk `disk` at `offset`. A disk index
/// that is not the group's, or a range past the disk's end, is `REPLICORE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `log` is NULL or a live log; `data` is NULL (only with `len` 0) or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_write(
    log: *const replicore_log,
    disk: u32,
    offset: u64,
    data: *const u8,
    len: usize,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for both calls).
        let log = unsafe { handle::as_ref(log, "log") }?;
        let data = unsafe { handle::bytes(data, len, "data") }?;
        Ok(lock(log).record_write(disk as usize, offset, data)?)
    })
}

/// Records that `len` bytes of disk `disk` from `offset` were trimmed (read as zeros).
///
/// # Safety
///
/// `log` is NULL or a live log.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_trim(
    log: *const replicore_log,
    disk: u32,
    offset: u64,
    len: u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let log = unsafe { handle::as_ref(log, "log") }?;
        Ok(lock(log).record_trim(disk as usize, offset, len)?)
    })
}

/// Closes a recovery point of consistency `kind` with `label` (NULL for none; at most 1024
/// bytes of UTF-8) at `time_ns` nanoseconds since the Unix epoch (0 for now), and writes its
/// sequence number to `*point_out` unless that is NULL. Points move forward in time: a time
/// before the previous point's is `REPLICORE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `log` is NULL or a live log; `label` is NULL or NUL-terminated; `point_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_mark(
    log: *const replicore_log,
    kind: u32,
    label: *const c_char,
    time_ns: u64,
    point_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each of the unsafe calls below).
        let log = unsafe { handle::as_ref(log, "log") }?;
        let label = if label.is_null() {
            ""
        } else {
            unsafe { handle::str(label, "label") }?
        };
        let point_out = unsafe { point_out.as_mut() };
        let kind = match kind {
            1 => MarkerKind::Crash,
            2 => MarkerKind::App,
            k => {
                return Err(Error::invalid_argument(
                    "kind",
                    format!(
                        "{k} is not a replicore_marker_kind (REPLICORE_MARKER_CRASH or \
                         REPLICORE_MARKER_APP)"
                    ),
                )
                .into());
            }
        };
        let mut log = lock(log);
        let point = if time_ns == 0 {
            log.mark(kind, label)
        } else {
            log.mark_at(kind, label, UNIX_EPOCH + Duration::from_nanos(time_ns))
        }
        .map_err(|e| e.renaming_argument("time", "time_ns"))?;
        if let Some(p) = point_out {
            *p = point;
        }
        Ok(())
    })
}

/// Makes every record so far durable: the durability barrier.
///
/// # Safety
///
/// `log` is NULL or a live log.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_sync(log: *const replicore_log) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let log = unsafe { handle::as_ref(log, "log") }?;
        Ok(lock(log).sync()?)
    })
}

/// Seals the log into `sealed_path` (which must not exist, a symbolic link counting:
/// `REPLICORE_ERR_ALREADY_EXISTS`) and goes on tracking in the next
/// generation; writes the tracker state to keep from now on to `*tracker_out` unless NULL.
/// Writes after the last mark are closed first by a crash-consistent point labelled
/// "rotation", timed now (or 1 ns after the previous point when the host marked with later
/// times), which ships like any point.
///
/// # Safety
///
/// `log` is NULL or a live log; `sealed_path` is NULL or NUL-terminated; `tracker_out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_rotate(
    log: *const replicore_log,
    sealed_path: *const c_char,
    tracker_out: *mut replicore_tracker,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each of the unsafe calls below).
        let log = unsafe { handle::as_ref(log, "log") }?;
        let sealed = unsafe { handle::str(sealed_path, "sealed_path") }?;
        let tracker_out = unsafe { tracker_out.as_mut() };
        let rotated = lock(log).rotate(sealed)?;
        if let Some(t) = tracker_out {
            *t = tracker_to_c(&rotated.tracker);
        }
        Ok(())
    })
}

/// Writes the log's current tracker state (to keep with the VM's configuration) to `*out`.
///
/// # Safety
///
/// `log` is NULL or a live log; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_tracker(
    log: *const replicore_log,
    out: *mut replicore_tracker,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for both calls).
        let log = unsafe { handle::as_ref(log, "log") }?;
        let out = unsafe { handle::out(out, "out") }?;
        *out = tracker_to_c(&lock(log).tracker());
        Ok(())
    })
}

/// Writes the bytes of records waiting in the log (the header excluded) to `*out`.
///
/// # Safety
///
/// `log` is NULL or a live log; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_pending_bytes(
    log: *const replicore_log,
    out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for both calls).
        let log = unsafe { handle::as_ref(log, "log") }?;
        let out = unsafe { handle::out(out, "out") }?;
        *out = lock(log).pending_bytes();
        Ok(())
    })
}

/// Writes to `*out` whether the pending log reached the resync threshold (delta replication
/// should give up for a checksum resync).
///
/// # Safety
///
/// `log` is NULL or a live log; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_log_needs_resync(
    log: *const replicore_log,
    out: *mut bool,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for both calls).
        let log = unsafe { handle::as_ref(log, "log") }?;
        let out = unsafe { handle::out(out, "out") }?;
        *out = lock(log).needs_resync();
        Ok(())
    })
}

// The handle is documented as shareable between threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Mutex<ChangeLog>>()
};
