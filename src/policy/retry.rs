//! When to retry a failed replication step.

use std::time::{Duration, SystemTime};

use crate::error::ErrorKind;

/// Whether an error of this kind may go away by itself (retry later) or needs an operator
/// (the group goes critical). Corruption, authentication failures, a broken chain and a
/// required resync never fix themselves.
pub fn is_recoverable(kind: ErrorKind) -> bool {
    match kind {
        // The disk, the network share or another user may be back later.
        ErrorKind::Io | ErrorKind::Locked | ErrorKind::NotFound | ErrorKind::Cancelled => true,
        ErrorKind::Corrupt
        | ErrorKind::Authentication
        | ErrorKind::ChainBroken
        | ErrorKind::ResyncRequired
        | ErrorKind::InvalidArgument
        | ErrorKind::UnsupportedVersion
        | ErrorKind::AlreadyExists
        | ErrorKind::LimitExceeded => false,
    }
}

/// Back-off for recoverable errors: retries after 1, 2, 4, 8 and 10 minutes, then every 30
/// minutes, as Hyper-V Replica does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The first delays, in order.
    pub steps: Vec<Duration>,
    /// The delay after the steps are used up.
    pub then_every: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            steps: [1, 2, 4, 8, 10]
                .into_iter()
                .map(|m| Duration::from_secs(60 * m))
                .collect(),
            then_every: Duration::from_secs(30 * 60),
        }
    }
}

impl RetrySchedule {
    /// The delay before retry number `attempt` (1 for the first retry after a failure; 0 is
    /// treated as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let i = attempt.max(1) as usize - 1;
        self.steps.get(i).copied().unwrap_or(self.then_every)
    }

    /// When to retry after the `attempt`-th consecutive failure of a step, which failed at
    /// `failed_at` with an error of `kind`; `None` when the error is not recoverable (the
    /// group goes critical instead).
    pub fn next_retry(
        &self,
        kind: ErrorKind,
        attempt: u32,
        failed_at: SystemTime,
    ) -> Option<SystemTime> {
        is_recoverable(kind).then(|| failed_at + self.delay(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_then_settles_at_thirty_minutes() {
        let s = RetrySchedule::default();
        let minutes: Vec<u64> = (1..=8).map(|a| s.delay(a).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 10, 30, 30, 30]);
        assert_eq!(s.delay(0), s.delay(1));
        assert_eq!(s.delay(u32::MAX).as_secs(), 1800);
        let t = std::time::UNIX_EPOCH;
        assert_eq!(
            s.next_retry(ErrorKind::Io, 3, t),
            Some(t + Duration::from_secs(240))
        );
        assert_eq!(s.next_retry(ErrorKind::Corrupt, 1, t), None);
    }

    #[test]
    fn every_kind_is_classified_as_documented() {
        use ErrorKind::*;
        let expected = [
            (Io, true),
            (Locked, true),
            (NotFound, true),
            (Cancelled, true),
            (Corrupt, false),
            (Authentication, false),
            (ChainBroken, false),
            (ResyncRequired, false),
            (InvalidArgument, false),
            (UnsupportedVersion, false),
            (AlreadyExists, false),
            (LimitExceeded, false),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            let want = expected.iter().find(|(e, _)| *e == k).map(|(_, r)| *r);
            assert_eq!(Some(is_recoverable(k)), want, "{k:?}");
        }
    }
}
