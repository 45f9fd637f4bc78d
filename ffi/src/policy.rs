//! Policies from C: replication and retention policies validated, the retry back-off and
//! which failures it applies to, the protection state machine, and the resync window.

use std::time::{Duration, UNIX_EPOCH};

use replicore::ErrorKind;
use replicore::policy::{
    FailoverKind, ProtectionState, ReplicationFrequency, ReplicationPolicy, ResyncWindow,
    RetentionPolicy, RetrySchedule, is_recoverable,
};

use crate::handle::{self, run};
use crate::status::replicore_status;

/// Which recovery points the recovery site keeps (see the Rust `RetentionPolicy`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_retention_policy {
    /// Every point younger than this many hours is kept (1 to 72).
    pub window_hours: u32,
    /// App-consistent points kept at this frequency in hours (1 to 12); 0 for none.
    pub app_every_hours: u32,
    /// Extra hourly points beyond the window (0 to 24).
    pub extra_hourly: u32,
    /// The newest this many points are always kept (1 to 100,000).
    pub keep_last: u32,
}

/// A group's replication policy (see the Rust `ReplicationPolicy`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_replication_policy {
    /// Seconds between shipped points: 30, 300 or 900.
    pub frequency_seconds: u32,
    /// Hours between app-consistent points (1 to 12, at most the retention window); 0 for none.
    pub app_consistent_every_hours: u32,
    /// What the recovery site keeps.
    pub retention: replicore_retention_policy,
}

/// A protection state (see the Rust `ProtectionState`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_protection_state {
    /// Protection is being set up.
    REPLICORE_STATE_ENABLING = 1,
    /// The seed is being copied.
    REPLICORE_STATE_INITIAL_REPLICATION = 2,
    /// Changes replicate.
    REPLICORE_STATE_PROTECTED = 3,
    /// A full resynchronization is needed.
    REPLICORE_STATE_RESYNC_REQUIRED = 4,
    /// A full resynchronization is running.
    REPLICORE_STATE_RESYNCHRONIZING = 5,
    /// Stopped on an error that needs an operator.
    REPLICORE_STATE_CRITICAL = 6,
    /// A test failover runs beside replication.
    REPLICORE_STATE_FAILED_OVER_TEST = 7,
    /// Failed over, planned.
    REPLICORE_STATE_FAILED_OVER_PLANNED = 8,
    /// Failed over, unplanned.
    REPLICORE_STATE_FAILED_OVER_UNPLANNED = 9,
    /// A failover was committed.
    REPLICORE_STATE_COMMITTED = 10,
    /// Replicating back (failback).
    REPLICORE_STATE_REPROTECTING = 11,
}

/// When a full resync may start (see the Rust `ResyncWindow`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_resync_window {
    /// Office hours start, minutes after local midnight (0 to 1439).
    pub office_start_minute: u32,
    /// Office hours end, minutes after local midnight (after the start, up to 1440).
    pub office_end_minute: u32,
    /// Office days: bit 0 Monday ... bit 6 Sunday.
    pub office_days: u32,
    /// The host's offset from UTC in minutes (-720 to 840).
    pub utc_offset_minutes: i32,
}

fn to_retention(p: &replicore_retention_policy) -> RetentionPolicy {
    RetentionPolicy {
        window_hours: p.window_hours,
        app_every_hours: (p.app_every_hours != 0).then_some(p.app_every_hours),
        extra_hourly: p.extra_hourly,
        keep_last: p.keep_last,
    }
}

/// Renames the fields an error of a policy's `validate` names (`window_hours`, ...) to the C
/// expression the host wrote (`prefix` + field: `policy->window_hours`).
fn c_fields(e: replicore::Error, fields: &[&str], prefix: &str) -> replicore::Error {
    fields
        .iter()
        .fold(e, |e, f| e.renaming_argument(f, &format!("{prefix}{f}")))
}

const RETENTION_FIELDS: [&str; 4] = [
    "window_hours",
    "app_every_hours",
    "extra_hourly",
    "keep_last",
];

/// The Rust policy of a C one, checked; an error names the C field (`prefix` then its name:
/// `policy->window_hours`).
pub(crate) fn checked_retention(
    p: &replicore_retention_policy,
    prefix: &str,
) -> Result<RetentionPolicy, handle::Failure> {
    let r = to_retention(p);
    r.validate()
        .map_err(|e| c_fields(e, &RETENTION_FIELDS, prefix))?;
    Ok(r)
}

/// Writes the default replication policy (5 minutes, no app-consistent points, 24-hour window,
/// keep the newest point) to `*policy_out`.
///
/// # Safety
///
/// `policy_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_replication_policy_default(
    policy_out: *mut replicore_replication_policy,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { handle::out(policy_out, "policy_out") }?;
        let d = ReplicationPolicy::default();
        *out = replicore_replication_policy {
            frequency_seconds: d.frequency.interval().as_secs() as u32,
            app_consistent_every_hours: d.app_consistent_every_hours.unwrap_or(0),
            retention: replicore_retention_policy {
                window_hours: d.retention.window_hours,
                app_every_hours: d.retention.app_every_hours.unwrap_or(0),
                extra_hourly: d.retention.extra_hourly,
                keep_last: d.retention.keep_last,
            },
        };
        Ok(())
    })
}

/// Checks a replication policy: `REPLICORE_ERR_INVALID_ARGUMENT` names the first field out of
/// range and its allowed range (see `replicore_last_error_message`).
///
/// # Safety
///
/// `policy` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_replication_policy_validate(
    policy: *const replicore_replication_policy,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let p = unsafe { policy.as_ref() }.ok_or(handle::Failure::Null("policy"))?;
        // Errors name the C fields (`policy->retention.window_hours`), not the Rust ones.
        let frequency = ReplicationFrequency::from_secs(u64::from(p.frequency_seconds))
            .map_err(|e| e.renaming_argument("frequency", "policy->frequency_seconds"))?;
        let rust = ReplicationPolicy {
            frequency,
            app_consistent_every_hours: (p.app_consistent_every_hours != 0)
                .then_some(p.app_consistent_every_hours),
            retention: checked_retention(&p.retention, "policy->retention.")?,
        };
        rust.validate()
            .map_err(|e| c_fields(e, &["app_consistent_every_hours"], "policy->"))?;
        Ok(())
    })
}

/// Whether a failure with this status may go away by itself, so that the step should be
/// retried (after `replicore_retry_delay_seconds`); false for success, for calling errors and
/// for corruption, authentication, a broken chain or a required resync, which need an operator.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_status_is_recoverable(status: u32) -> bool {
    crate::ffi_boundary! {
        ErrorKind::ALL
            .iter()
            .find(|k| replicore_status::from_kind(**k) as u32 == status)
            .is_some_and(|k| is_recoverable(*k))
    }
}

/// Seconds to wait before retry number `attempt` (1 for the first) of a failed step: 60, 120,
/// 240, 480 and 600, then 1800 for every later one.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_retry_delay_seconds(attempt: u32) -> u64 {
    crate::ffi_boundary! { RetrySchedule::default().delay(attempt).as_secs() }
}

/// Every state with its C value.
fn states() -> [(replicore_protection_state, ProtectionState); 11] {
    use FailoverKind::*;
    use ProtectionState::*;
    use replicore_protection_state::*;
    [
        (REPLICORE_STATE_ENABLING, Enabling),
        (REPLICORE_STATE_INITIAL_REPLICATION, InitialReplication),
        (REPLICORE_STATE_PROTECTED, Protected),
        (REPLICORE_STATE_RESYNC_REQUIRED, ResyncRequired),
        (REPLICORE_STATE_RESYNCHRONIZING, Resynchronizing),
        (REPLICORE_STATE_CRITICAL, Critical),
        (REPLICORE_STATE_FAILED_OVER_TEST, FailedOver(Test)),
        (REPLICORE_STATE_FAILED_OVER_PLANNED, FailedOver(Planned)),
        (REPLICORE_STATE_FAILED_OVER_UNPLANNED, FailedOver(Unplanned)),
        (REPLICORE_STATE_COMMITTED, Committed),
        (REPLICORE_STATE_REPROTECTING, Reprotecting),
    ]
}

/// The state a `replicore_protection_state` value names; `name` is the C parameter.
pub(crate) fn state(s: u32, name: &str) -> Result<ProtectionState, handle::Failure> {
    states()
        .iter()
        .find(|(c, _)| *c as u32 == s)
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            replicore::Error::invalid_argument(
                name,
                format!(
                    "{s} is not a replicore_protection_state (REPLICORE_STATE_ENABLING = 1 to \
                     REPLICORE_STATE_REPROTECTING = 11)"
                ),
            )
            .into()
        })
}

/// The C value of a state.
pub(crate) fn state_code(s: ProtectionState) -> u32 {
    states()
        .iter()
        .find(|(_, r)| *r == s)
        .map_or(0, |(c, _)| *c as u32)
}

/// Checks the move of a group from state `from` to state `to` (both
/// `replicore_protection_state` values): `REPLICORE_OK` when allowed, else
/// `REPLICORE_ERR_INVALID_ARGUMENT` naming both states.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_protection_check_move(from: u32, to: u32) -> replicore_status {
    run(|| {
        state(from, "from")?.move_to(state(to, "to")?)?;
        Ok(())
    })
}

/// Writes the default resync window (outside Monday to Friday, 08:00 to 18:00, UTC) to
/// `*window_out`; set `utc_offset_minutes` to the host's.
///
/// # Safety
///
/// `window_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_resync_window_default(
    window_out: *mut replicore_resync_window,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { handle::out(window_out, "window_out") }?;
        let d = ResyncWindow::default();
        *out = replicore_resync_window {
            office_start_minute: d.office_start_minute,
            office_end_minute: d.office_end_minute,
            office_days: d
                .office_days
                .iter()
                .enumerate()
                .map(|(i, on)| u32::from(*on) << i)
                .sum(),
            utc_offset_minutes: d.utc_offset_minutes,
        };
        Ok(())
    })
}

/// The earliest time at or after `now_ns` (nanoseconds since the Unix epoch) at which a resync
/// may start under `window`, to `*start_ns_out`.
///
/// # Safety
///
/// `window` is NULL or readable; `start_ns_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_resync_window_next_start(
    window: *const replicore_resync_window,
    now_ns: u64,
    start_ns_out: *mut u64,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let w = unsafe { window.as_ref() }.ok_or(handle::Failure::Null("window"))?;
        let out = unsafe { handle::out(start_ns_out, "start_ns_out") }?;
        if w.office_days >> 7 != 0 {
            return Err(replicore::Error::invalid_argument(
                "window->office_days",
                format!(
                    "{:#x} has bits past Sunday (bit 6): bit 0 is Monday, bit 6 Sunday",
                    w.office_days
                ),
            )
            .into());
        }
        let rust = ResyncWindow {
            office_start_minute: w.office_start_minute,
            office_end_minute: w.office_end_minute,
            office_days: std::array::from_fn(|i| w.office_days >> i & 1 == 1),
            utc_offset_minutes: w.utc_offset_minutes,
        };
        rust.validate().map_err(|e| {
            c_fields(
                e,
                &[
                    "office_start_minute",
                    "office_end_minute",
                    "utc_offset_minutes",
                ],
                "window->",
            )
        })?;
        let start = rust.next_start(UNIX_EPOCH + Duration::from_nanos(now_ns));
        *out = start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Ok(())
    })
}
