//! Retention from C: the plan as a pure function, the vault's dry run, prune, pins and garbage
//! collection.

use std::ffi::{c_char, c_void};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replicore::PointId;
use replicore::policy::{PlanPoint, Rule, plan};

use crate::handle::{self, run};
use crate::policy::{checked_retention, replicore_retention_policy};
use crate::resync::{replicore_progress_callback, with_progress};
use crate::status::replicore_status;
use crate::vault::{REPLICORE_POINT_ID_LEN, replicore_vault};

/// Why the plan keeps a point, or that it prunes it (`REPLICORE_RULE_EXPIRED`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum replicore_rule {
    /// Pruned: no rule keeps it.
    REPLICORE_RULE_EXPIRED = 0,
    /// Kept: pinned by an operator.
    REPLICORE_RULE_PINNED = 1,
    /// Kept: the newest point.
    REPLICORE_RULE_NEWEST = 2,
    /// Kept: the newest app-consistent point.
    REPLICORE_RULE_NEWEST_APP = 3,
    /// Kept: among the newest `keep_last`.
    REPLICORE_RULE_KEEP_LAST = 4,
    /// Kept: within the window.
    REPLICORE_RULE_WINDOW = 5,
    /// Kept: the newest point of one of the extra hours past the window.
    REPLICORE_RULE_EXTRA_HOURLY = 6,
    /// Kept: the newest app-consistent point of its slot past the window.
    REPLICORE_RULE_APP_EVERY = 7,
}

// The C values are the Rust rules' numbers.
const _: () = {
    use replicore_rule::*;
    assert!(REPLICORE_RULE_EXPIRED as u32 == Rule::Expired as u32);
    assert!(REPLICORE_RULE_PINNED as u32 == Rule::Pinned as u32);
    assert!(REPLICORE_RULE_NEWEST as u32 == Rule::Newest as u32);
    assert!(REPLICORE_RULE_NEWEST_APP as u32 == Rule::NewestAppConsistent as u32);
    assert!(REPLICORE_RULE_KEEP_LAST as u32 == Rule::KeepLast as u32);
    assert!(REPLICORE_RULE_WINDOW as u32 == Rule::Window as u32);
    assert!(REPLICORE_RULE_EXTRA_HOURLY as u32 == Rule::ExtraHourly as u32);
    assert!(REPLICORE_RULE_APP_EVERY as u32 == Rule::AppEvery as u32);
};

/// What the plan needs of one point.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_plan_point {
    /// When it was taken, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// 1 when app-consistent, else 0.
    pub app_consistent: u32,
    /// 1 when pinned by an operator, else 0.
    pub pinned: u32,
}

/// What `replicore_vault_prune` did (or, for a dry run, would do).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_prune_info {
    /// Groups planned.
    pub groups: u64,
    /// Points kept.
    pub points_kept: u64,
    /// Points pruned (merged into the kept point after them).
    pub points_pruned: u64,
    /// Kept points that took pruned ones.
    pub merges: u64,
}

/// What `replicore_vault_gc` did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct replicore_gc_info {
    /// Packs before.
    pub packs_before: u64,
    /// Packs after.
    pub packs_after: u64,
    /// Packs removed because nothing in them was referenced.
    pub packs_removed: u64,
    /// Mostly dead packs whose live blobs were copied into new packs.
    pub packs_rewritten: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Blobs some point references.
    pub live_blobs: u64,
    /// Their stored bytes (entry headers included).
    pub live_bytes: u64,
    /// Blob copies dropped.
    pub blobs_removed: u64,
    /// Pack bytes before.
    pub bytes_before: u64,
    /// Pack bytes after.
    pub bytes_after: u64,
    /// Packs left as they were because a blob in them is damaged (see `replicore_vault_verify`).
    pub damaged_packs: u64,
    /// Point files written again into segments (a group's runs of points outside full, clean
    /// segments, when in two files or more or reading a segment that held rows no point reads).
    pub point_files_combined: u64,
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Checks a retention policy: `REPLICORE_ERR_INVALID_ARGUMENT` names the first field out of
/// range and its allowed range.
///
/// # Safety
///
/// `policy` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_retention_policy_validate(
    policy: *const replicore_retention_policy,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let p = unsafe { policy.as_ref() }.ok_or(handle::Failure::Null("policy"))?;
        checked_retention(p, "policy->")?;
        Ok(())
    })
}

/// Plans retention for one chain, a pure function: `points` (`count` of them, oldest first, the
/// last the newest) at `now_ns` under `policy`; one `replicore_rule` per point goes to
/// `rules_out` (`count` entries). Never prunes the newest point, the newest app-consistent
/// point or a pinned one. `points` and `rules_out` may be NULL when `count` is 0.
///
/// # Safety
///
/// `points` is NULL or readable for `count` entries; `policy` is NULL or readable;
/// `rules_out` is NULL or writable for `count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_retention_plan(
    points: *const replicore_plan_point,
    count: usize,
    policy: *const replicore_retention_policy,
    now_ns: u64,
    rules_out: *mut u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract.
        let policy = unsafe { policy.as_ref() }.ok_or(handle::Failure::Null("policy"))?;
        if count > 0 && points.is_null() {
            return Err(handle::Failure::Null("points"));
        }
        if count > 0 && rules_out.is_null() {
            return Err(handle::Failure::Null("rules_out"));
        }
        let facts: Vec<PlanPoint> = (0..count)
            .map(|i| {
                // SAFETY: per this function's contract, `points` holds `count` entries.
                let p = unsafe { points.add(i).read() };
                PlanPoint {
                    time: time(p.time_ns),
                    app_consistent: p.app_consistent != 0,
                    pinned: p.pinned != 0,
                }
            })
            .collect();
        let rules = plan(
            &facts,
            &checked_retention(policy, "policy->")?,
            time(now_ns),
        )?;
        for (i, r) in rules.into_iter().enumerate() {
            // SAFETY: per this function's contract, `rules_out` holds `count` entries.
            unsafe { rules_out.add(i).write(r as u32) };
        }
        Ok(())
    })
}

/// The vault's retention plan for `group` at `now_ns` (pins included), changing nothing: one
/// `replicore_rule` per point, in the order of `replicore_vault_points`. The first `capacity`
/// go to `rules_out` (NULL when `capacity` is 0) and the number of points to `*count_out`.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `policy` is NULL or
/// readable; `rules_out` is NULL or writable for `capacity` entries; `count_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_plan_prune(
    vault: *const replicore_vault,
    group: *const c_char,
    policy: *const replicore_retention_policy,
    now_ns: u64,
    rules_out: *mut u32,
    capacity: usize,
    count_out: *mut usize,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let policy = unsafe { policy.as_ref() }.ok_or(handle::Failure::Null("policy"))?;
        let count = unsafe { handle::out(count_out, "count_out") }?;
        if rules_out.is_null() && capacity > 0 {
            return Err(handle::Failure::Null("rules_out"));
        }
        let report = vault.plan_prune(&checked_retention(policy, "policy->")?, time(now_ns))?;
        let Some(g) = report.groups.iter().find(|g| g.group == group) else {
            return Err(replicore::Error::NotFound {
                what: format!("group `{group}`"),
            }
            .into());
        };
        for (i, p) in g.points.iter().take(capacity).enumerate() {
            // SAFETY: per this function's contract, `rules_out` holds `capacity` entries.
            unsafe { rules_out.add(i).write(p.rule as u32) };
        }
        *count = g.points.len();
        Ok(())
    })
}

/// Prunes every group of the vault by `policy` at `now_ns`, without the key: each pruned point
/// is merged into the next kept one (the oldest kept point becomes the base), crash-safely.
/// With `dry_run` non-zero nothing changes and `*info_out` says what would. Runs alone:
/// `REPLICORE_ERR_LOCKED` while anyone else works in the vault. `info_out` may be NULL.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `policy` is NULL or readable; `info_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_prune(
    vault: *const replicore_vault,
    policy: *const replicore_retention_policy,
    now_ns: u64,
    dry_run: u32,
    info_out: *mut replicore_prune_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let policy = unsafe { policy.as_ref() }.ok_or(handle::Failure::Null("policy"))?;
        let (policy, now) = (checked_retention(policy, "policy->")?, time(now_ns));
        let r = if dry_run != 0 {
            vault.plan_prune(&policy, now)?
        } else {
            vault.prune(&policy, now)?
        };
        if !info_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(info_out, "info_out") }? = replicore_prune_info {
                groups: r.groups.len() as u64,
                points_kept: r.kept() as u64,
                points_pruned: r.pruned() as u64,
                merges: r.groups.iter().map(|g| g.merges.len() as u64).sum(),
            };
        }
        Ok(())
    })
}

/// Collects garbage without the key: blobs no point references are dropped; packs more than a
/// quarter dead are rewritten by copying their live blobs, still sealed. Crash-safe; runs alone
/// (`REPLICORE_ERR_LOCKED` while anyone else works in the vault). Progress counts the bytes
/// copied. `info_out` may be NULL.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `callback` may be called with `user`; `info_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_gc(
    vault: *const replicore_vault,
    callback: replicore_progress_callback,
    user: *mut c_void,
    info_out: *mut replicore_gc_info,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let r = with_progress(callback, user, |p| vault.gc(p))?;
        if !info_out.is_null() {
            // SAFETY: per this function's contract.
            *unsafe { handle::out(info_out, "info_out") }? = replicore_gc_info {
                packs_before: r.packs_before,
                packs_after: r.packs_after,
                packs_removed: r.packs_removed,
                packs_rewritten: r.packs_rewritten,
                packs_written: r.packs_written,
                live_blobs: r.live_blobs,
                live_bytes: r.live_bytes,
                blobs_removed: r.blobs_removed,
                bytes_before: r.bytes_before,
                bytes_after: r.bytes_after,
                damaged_packs: r.damaged_packs.len() as u64,
                point_files_combined: r.point_files_combined,
            };
        }
        Ok(())
    })
}

/// Pins (`pin` non-zero) or unpins the point of `group` whose id is the 32 bytes at
/// `point_id`: pruning keeps a pinned point. Pinning a point not in the chain is
/// `REPLICORE_ERR_NOT_FOUND`; pinning twice or unpinning an unpinned point changes nothing.
///
/// # Safety
///
/// `vault` is NULL or a live vault; `group` is NULL or NUL-terminated; `point_id` is NULL or
/// readable for 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn replicore_vault_pin(
    vault: *const replicore_vault,
    group: *const c_char,
    point_id: *const u8,
    pin: u32,
) -> replicore_status {
    run(|| {
        // SAFETY: per this function's contract (for each call).
        let vault = unsafe { handle::as_ref(vault, "vault") }?;
        let group = unsafe { handle::str(group, "group") }?;
        let b = unsafe { handle::bytes(point_id, REPLICORE_POINT_ID_LEN, "point_id") }?;
        let mut a = [0u8; REPLICORE_POINT_ID_LEN];
        a.copy_from_slice(b);
        let id = PointId(a);
        if pin != 0 {
            vault.pin(group, id)?;
        } else {
            vault.unpin(group, id)?;
        }
        Ok(())
    })
}
