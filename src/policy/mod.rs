//! The rules hosts build their schedulers on: how often to replicate and how long to keep
//! points ([`ReplicationPolicy`], [`RetentionPolicy`]), when to retry a failed step
//! ([`RetrySchedule`], [`is_recoverable`]), and where a group stands ([`ProtectionState`], with
//! its allowed transitions, and the [`ResyncWindow`] a full resynchronization waits for).
//!
//! Pure values and functions: nothing here reads a clock or touches a file; times are passed
//! in.

mod health;
mod plan;
mod replication;
mod retention;
mod retry;
mod state;

pub use health::Health;
pub use plan::{PlanPoint, Rule, plan};
pub use replication::{ReplicationFrequency, ReplicationPolicy};
pub use retention::RetentionPolicy;
pub use retry::{RetrySchedule, is_recoverable};
pub use state::{FailoverKind, ProtectionState, ResyncWindow};

use crate::error::{Error, Result};

/// `value` within `range`, else InvalidArgument naming the field and the range.
fn check_range(
    field: &str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
    unit: &str,
) -> Result<()> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            field,
            format!(
                "{value} {unit} is out of range: allowed {} to {} {unit}",
                range.start(),
                range.end()
            ),
        ))
    }
}
