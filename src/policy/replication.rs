//! How often a group replicates.

use std::time::Duration;

use super::{RetentionPolicy, check_range};
use crate::error::{Error, Result};

/// How often a change log is rotated and shipped: the three intervals Hyper-V Replica offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReplicationFrequency {
    /// Every 30 seconds.
    Seconds30,
    /// Every 5 minutes (the default).
    #[default]
    Minutes5,
    /// Every 15 minutes.
    Minutes15,
}

impl ReplicationFrequency {
    /// The interval.
    pub fn interval(self) -> Duration {
        Duration::from_secs(match self {
            ReplicationFrequency::Seconds30 => 30,
            ReplicationFrequency::Minutes5 => 300,
            ReplicationFrequency::Minutes15 => 900,
        })
    }

    /// The frequency of an interval in seconds (30, 300 or 900), else InvalidArgument.
    pub fn from_secs(secs: u64) -> Result<ReplicationFrequency> {
        match secs {
            30 => Ok(ReplicationFrequency::Seconds30),
            300 => Ok(ReplicationFrequency::Minutes5),
            900 => Ok(ReplicationFrequency::Minutes15),
            s => Err(Error::invalid_argument(
                "frequency",
                format!("{s} seconds is not offered: allowed 30, 300 or 900 seconds"),
            )),
        }
    }
}

/// A group's replication: how often, how often app-consistent, how long points are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicationPolicy {
    /// How often a crash-consistent point is shipped.
    pub frequency: ReplicationFrequency,
    /// How often, in hours, an app-consistent point is taken (1 to 12), or never (`None`).
    pub app_consistent_every_hours: Option<u32>,
    /// What the recovery site keeps.
    pub retention: RetentionPolicy,
}

impl ReplicationPolicy {
    /// Checks every field and that they fit together: app-consistent points must come at most
    /// as far apart as the retention window, or none would be kept.
    pub fn validate(&self) -> Result<()> {
        if let Some(a) = self.app_consistent_every_hours {
            check_range("app_consistent_every_hours", a, 1..=12, "hours")?;
            if a > self.retention.window_hours {
                return Err(Error::invalid_argument(
                    "app_consistent_every_hours",
                    format!(
                        "every {a} hours is longer than the {}-hour retention window: no \
                         app-consistent point would be kept; allowed 1 to {} hours",
                        self.retention.window_hours,
                        self.retention.window_hours.min(12)
                    ),
                ));
            }
        }
        self.retention.validate()
    }

    /// When the next crash-consistent point is due after one taken at `last`.
    pub fn next_point(&self, last: std::time::SystemTime) -> std::time::SystemTime {
        last + self.frequency.interval()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn frequencies_are_the_three_offered() {
        for f in [
            ReplicationFrequency::Seconds30,
            ReplicationFrequency::Minutes5,
            ReplicationFrequency::Minutes15,
        ] {
            assert_eq!(
                ReplicationFrequency::from_secs(f.interval().as_secs()).unwrap(),
                f
            );
        }
        let e = ReplicationFrequency::from_secs(60).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("30, 300 or 900"), "{e}");
    }

    #[test]
    fn policies_are_validated_whole() {
        ReplicationPolicy::default().validate().unwrap();
        let p = ReplicationPolicy {
            app_consistent_every_hours: Some(4),
            ..Default::default()
        };
        p.validate().unwrap();
        let t = std::time::UNIX_EPOCH;
        assert_eq!(p.next_point(t), t + Duration::from_secs(300));
        for (p, field) in [
            (
                ReplicationPolicy {
                    app_consistent_every_hours: Some(13),
                    ..Default::default()
                },
                "app_consistent_every_hours",
            ),
            (
                ReplicationPolicy {
                    app_consistent_every_hours: Some(6),
                    retention: RetentionPolicy {
                        window_hours: 4,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "retention window",
            ),
            (
                ReplicationPolicy {
                    retention: RetentionPolicy {
                        window_hours: 100,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "window_hours",
            ),
        ] {
            let e = p.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
