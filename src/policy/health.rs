//! A group's replication health, as an operator's console shows it: from how far the newest
//! point lags behind the replication interval, and whether the group waits for a resync.

use std::time::Duration;

use super::ReplicationFrequency;

/// Health of a group's replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Points arrive on time: the newest is at most two intervals old (one being shipped).
    Healthy,
    /// Points are late: more than two intervals, up to an hour (or twelve intervals, if
    /// longer), or the last step failed in a way a retry may fix.
    Warning,
    /// Replication stopped: the newest point is older than that, or the group waits for a
    /// resync, or the last step failed in a way no retry fixes.
    Critical,
}

impl Health {
    /// The health of a group whose newest point is `lag` old, replicating every `frequency`;
    /// `resync_needed` when delta replication cannot go on; `last_error` the kind of the last
    /// failure since the newest point, if any.
    pub fn of(
        lag: Duration,
        frequency: ReplicationFrequency,
        resync_needed: bool,
        last_error: Option<crate::ErrorKind>,
    ) -> Health {
        let interval = frequency.interval();
        let warn_until = (interval * 12).max(Duration::from_secs(3600));
        let by_lag = if lag <= interval * 2 {
            Health::Healthy
        } else if lag <= warn_until {
            Health::Warning
        } else {
            Health::Critical
        };
        let by_error = match last_error {
            None => Health::Healthy,
            Some(k) if super::is_recoverable(k) => Health::Warning,
            Some(_) => Health::Critical,
        };
        let by_resync = if resync_needed {
            Health::Critical
        } else {
            Health::Healthy
        };
        by_lag.max(by_error).max(by_resync)
    }

    /// "healthy", "warning" or "critical".
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn health_follows_the_lag_the_resync_and_the_last_error() {
        let f = ReplicationFrequency::Minutes5;
        let s = Duration::from_secs;
        assert_eq!(Health::of(s(0), f, false, None), Health::Healthy);
        assert_eq!(Health::of(s(600), f, false, None), Health::Healthy);
        assert_eq!(Health::of(s(601), f, false, None), Health::Warning);
        assert_eq!(Health::of(s(3600), f, false, None), Health::Warning);
        assert_eq!(Health::of(s(3601), f, false, None), Health::Critical);
        // 15-minute replication: warning up to 12 intervals (3 h).
        let q = ReplicationFrequency::Minutes15;
        assert_eq!(Health::of(s(3 * 3600), q, false, None), Health::Warning);
        assert_eq!(
            Health::of(s(3 * 3600 + 1), q, false, None),
            Health::Critical
        );
        // A resync, an error no retry fixes, one a retry may.
        assert_eq!(Health::of(s(0), f, true, None), Health::Critical);
        let corrupt = Some(ErrorKind::Corrupt);
        assert_eq!(Health::of(s(0), f, false, corrupt), Health::Critical);
        let io = Some(ErrorKind::Io);
        assert_eq!(Health::of(s(0), f, false, io), Health::Warning);
        assert_eq!(Health::Warning.to_string(), "warning");
    }
}
