//! Where a group's protection stands, the moves allowed between states, and when a full
//! resynchronization may start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// How a group was failed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailoverKind {
    /// A test: a copy runs elsewhere while replication goes on.
    Test,
    /// Planned: the primary was shut down cleanly and its last changes shipped.
    Planned,
    /// Unplanned: the primary is lost; the replica runs from the chosen point.
    Unplanned,
}

/// The protection state of a group, as Hyper-V Replica and Azure Site Recovery show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtectionState {
    /// Protection is being set up (keys, logs, the vault's group).
    Enabling,
    /// The seed is being copied.
    InitialReplication,
    /// Changes replicate at the policy's frequency.
    Protected,
    /// Delta replication cannot continue (log lost, chain broken, log over its threshold).
    ResyncRequired,
    /// A full resynchronization is running.
    Resynchronizing,
    /// Replication stopped on an error that needs an operator.
    Critical,
    /// Running from the replica.
    FailedOver(FailoverKind),
    /// A planned or unplanned failover was committed: the replica is now the primary.
    Committed,
    /// Replicating back to the old primary (failback).
    Reprotecting,
}

impl std::fmt::Display for FailoverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailoverKind::Test => "test",
            FailoverKind::Planned => "planned",
            FailoverKind::Unplanned => "unplanned",
        })
    }
}

/// The state as an operator reads it: "protected", "failed over (test)".
impl std::fmt::Display for ProtectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtectionState::Enabling => f.write_str("enabling"),
            ProtectionState::InitialReplication => f.write_str("initial replication"),
            ProtectionState::Protected => f.write_str("protected"),
            ProtectionState::ResyncRequired => f.write_str("resync required"),
            ProtectionState::Resynchronizing => f.write_str("resynchronizing"),
            ProtectionState::Critical => f.write_str("critical"),
            ProtectionState::FailedOver(k) => write!(f, "failed over ({k})"),
            ProtectionState::Committed => f.write_str("committed"),
            ProtectionState::Reprotecting => f.write_str("reprotecting"),
        }
    }
}

impl ProtectionState {
    /// Whether moving from `self` to `to` is allowed.
    pub fn can_move_to(self, to: ProtectionState) -> bool {
        use FailoverKind::*;
        use ProtectionState::*;
        match (self, to) {
            (Enabling, InitialReplication | Critical) => true,
            (InitialReplication, Protected | ResyncRequired | Critical) => true,
            (Protected, ResyncRequired | Critical | FailedOver(_)) => true,
            (ResyncRequired, Resynchronizing | Critical | FailedOver(Unplanned)) => true,
            (Resynchronizing, Protected | ResyncRequired | Critical) => true,
            (Critical, Protected | ResyncRequired | FailedOver(Unplanned)) => true,
            // A test failover ends by cleaning up: replication never stopped.
            (FailedOver(Test), Protected | Critical) => true,
            // A real failover is committed, or cancelled back to where it came from.
            (FailedOver(Planned | Unplanned), Committed | Protected) => true,
            (Committed, Reprotecting) => true,
            (Reprotecting, Protected | ResyncRequired | Critical) => true,
            _ => false,
        }
    }

    /// `to` if the move is allowed, else InvalidArgument naming both states.
    pub fn move_to(self, to: ProtectionState) -> Result<ProtectionState> {
        if self.can_move_to(to) {
            Ok(to)
        } else {
            Err(Error::invalid_argument(
                "to",
                format!("a group cannot go from {self} to {to}"),
            ))
        }
    }

    /// Every state, for tables and exhaustive tests.
    pub const ALL: [ProtectionState; 11] = [
        ProtectionState::Enabling,
        ProtectionState::InitialReplication,
        ProtectionState::Protected,
        ProtectionState::ResyncRequired,
        ProtectionState::Resynchronizing,
        ProtectionState::Critical,
        ProtectionState::FailedOver(FailoverKind::Test),
        ProtectionState::FailedOver(FailoverKind::Planned),
        ProtectionState::FailedOver(FailoverKind::Unplanned),
        ProtectionState::Committed,
        ProtectionState::Reprotecting,
    ];
}

/// When a full resynchronization may start: outside office hours (by default Monday to Friday,
/// 08:00 to 18:00, host local time), since it reads whole disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncWindow {
    /// Office hours start, in minutes after local midnight (0 to 1439).
    pub office_start_minute: u32,
    /// Office hours end, in minutes after local midnight (after the start, up to 1440).
    pub office_end_minute: u32,
    /// Office days, Monday first.
    pub office_days: [bool; 7],
    /// The host's offset from UTC, in minutes (-720 to 840).
    pub utc_offset_minutes: i32,
}

impl Default for ResyncWindow {
    fn default() -> Self {
        ResyncWindow {
            office_start_minute: 8 * 60,
            office_end_minute: 18 * 60,
            office_days: [true, true, true, true, true, false, false],
            utc_offset_minutes: 0,
        }
    }
}

impl ResyncWindow {
    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if self.office_start_minute >= 1440
            || self.office_end_minute > 1440
            || self.office_end_minute <= self.office_start_minute
        {
            return Err(Error::invalid_argument(
                if self.office_start_minute >= 1440 {
                    "office_start_minute"
                } else {
                    "office_end_minute"
                },
                format!(
                    "office hours from minute {} to minute {} are not a span within a day: \
                     allowed 0 <= office_start_minute < office_end_minute <= 1440 (minutes \
                     since midnight)",
                    self.office_start_minute, self.office_end_minute
                ),
            ));
        }
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            return Err(Error::invalid_argument(
                "utc_offset_minutes",
                format!(
                    "{} minutes is out of range: allowed -720 to 840 minutes",
                    self.utc_offset_minutes
                ),
            ));
        }
        Ok(())
    }

    /// Whether a resync may run at `t`.
    pub fn allows(&self, t: SystemTime) -> bool {
        let (day, minute) = self.local(t);
        !(self.office_days[day]
            && (self.office_start_minute..self.office_end_minute).contains(&minute))
    }

    /// The earliest time at or after `now` at which a resync may start.
    pub fn next_start(&self, now: SystemTime) -> SystemTime {
        if self.allows(now) {
            return now;
        }
        // Inside office hours: they end today.
        let (_, minute) = self.local(now);
        let secs_into_minute = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 60);
        let subsec = now.duration_since(UNIX_EPOCH).map_or(Duration::ZERO, |d| {
            Duration::from_nanos(u64::from(d.subsec_nanos()))
        });
        let left = u64::from(self.office_end_minute - minute) * 60 - secs_into_minute;
        now + Duration::from_secs(left) - subsec
    }

    /// (weekday with Monday = 0, minute of the day) of `t` in local time.
    fn local(&self, t: SystemTime) -> (usize, u32) {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64
            + i64::from(self.utc_offset_minutes) * 60;
        let days = secs.div_euclid(86_400);
        let minute = (secs.rem_euclid(86_400) / 60) as u32;
        // 1970-01-01 was a Thursday (Monday = 0 makes it 3).
        let weekday = (days + 3).rem_euclid(7) as usize;
        (weekday, minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailoverKind::*;
    use ProtectionState::*;

    #[test]
    fn the_lifecycle_moves_are_allowed_and_shortcuts_are_not() {
        let path = [
            Enabling,
            InitialReplication,
            Protected,
            FailedOver(Test),
            Protected,
            ResyncRequired,
            Resynchronizing,
            Protected,
            FailedOver(Planned),
            Committed,
            Reprotecting,
            Protected,
            Critical,
            FailedOver(Unplanned),
            Committed,
        ];
        let mut s = path[0];
        for to in &path[1..] {
            s = s.move_to(*to).unwrap();
        }
        for (from, to) in [
            (Enabling, Protected),
            (InitialReplication, FailedOver(Test)),
            (Committed, Protected),
            (FailedOver(Test), Committed),
            (Resynchronizing, FailedOver(Planned)),
            (Protected, Protected),
        ] {
            let e = from.move_to(to).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
            let msg = e.to_string();
            assert!(msg.contains(&format!("from {from} to {to}")), "{msg}");
            assert!(
                !msg.contains("FailedOver") && !msg.contains("Test"),
                "{msg}"
            );
        }
        // Every state can be left, and every state but Enabling can be reached.
        for s in ProtectionState::ALL {
            assert!(
                ProtectionState::ALL.iter().any(|t| s.can_move_to(*t)),
                "{s:?} is a trap"
            );
            if s != Enabling {
                assert!(
                    ProtectionState::ALL.iter().any(|f| f.can_move_to(s)),
                    "{s:?} unreachable"
                );
            }
        }
    }

    /// 2026-11-23 was a Monday.
    fn at(day: u64, h: u64, m: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_392_000 + day * 86_400 + h * 3600 + m * 60)
    }

    #[test]
    fn resyncs_wait_for_the_end_of_office_hours() {
        let w = ResyncWindow::default();
        w.validate().unwrap();
        assert!(w.allows(at(0, 7, 59)));
        assert!(!w.allows(at(0, 8, 0)));
        assert!(!w.allows(at(0, 17, 59)));
        assert!(w.allows(at(0, 18, 0)));
        assert!(w.allows(at(5, 12, 0)), "Saturday");
        assert_eq!(w.next_start(at(0, 9, 30)), at(0, 18, 0));
        assert_eq!(w.next_start(at(4, 17, 59)), at(4, 18, 0));
        assert_eq!(w.next_start(at(6, 12, 0)), at(6, 12, 0));
        let half = at(0, 10, 0) + Duration::from_millis(30_500);
        assert_eq!(w.next_start(half), at(0, 18, 0));
        // A host two hours east of UTC: 07:00 UTC is 09:00 there.
        let east = ResyncWindow {
            utc_offset_minutes: 120,
            ..w
        };
        assert!(!east.allows(at(0, 7, 0)));
        assert_eq!(east.next_start(at(0, 7, 0)), at(0, 16, 0));
        for bad in [
            ResyncWindow {
                office_start_minute: 600,
                office_end_minute: 600,
                ..w
            },
            ResyncWindow {
                office_end_minute: 1441,
                ..w
            },
            ResyncWindow {
                utc_offset_minutes: 900,
                ..w
            },
        ] {
            assert_eq!(
                bad.validate().unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument
            );
        }
    }
}
