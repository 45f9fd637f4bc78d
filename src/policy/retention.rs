//! How long recovery points are kept.

use super::check_range;
use crate::error::Result;

/// Which recovery points pruning keeps, relative to a given `now` (not to the newest point).
/// The plan that applies it to a chain comes with pruning; this is the validated policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Every point younger than this many hours is kept (1 to 72; 24 by default).
    pub window_hours: u32,
    /// App-consistent points are kept at this frequency, in hours, for the window (1 to 12), or
    /// not singled out (`None`, the default).
    pub app_every_hours: Option<u32>,
    /// Beyond the window, the newest point of each of this many further hours is kept (0 to 24;
    /// 0 by default).
    pub extra_hourly: u32,
    /// The newest this many points are always kept, however old (1 to 100,000; 1 by default).
    pub keep_last: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            window_hours: 24,
            app_every_hours: None,
            extra_hourly: 0,
            keep_last: 1,
        }
    }
}

impl RetentionPolicy {
    /// Checks every field; the first one out of range is InvalidArgument naming it and its
    /// allowed range.
    pub fn validate(&self) -> Result<()> {
        check_range("window_hours", self.window_hours, 1..=72, "hours")?;
        if let Some(a) = self.app_every_hours {
            check_range("app_every_hours", a, 1..=12, "hours")?;
        }
        check_range("extra_hourly", self.extra_hourly, 0..=24, "hours")?;
        check_range("keep_last", self.keep_last, 1..=100_000, "points")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn the_default_is_valid_and_every_field_is_bounded() {
        RetentionPolicy::default().validate().unwrap();
        let bad = [
            (
                RetentionPolicy {
                    window_hours: 0,
                    ..Default::default()
                },
                "window_hours",
            ),
            (
                RetentionPolicy {
                    window_hours: 73,
                    ..Default::default()
                },
                "window_hours",
            ),
            (
                RetentionPolicy {
                    app_every_hours: Some(0),
                    ..Default::default()
                },
                "app_every_hours",
            ),
            (
                RetentionPolicy {
                    app_every_hours: Some(13),
                    ..Default::default()
                },
                "app_every_hours",
            ),
            (
                RetentionPolicy {
                    extra_hourly: 25,
                    ..Default::default()
                },
                "extra_hourly",
            ),
            (
                RetentionPolicy {
                    keep_last: 0,
                    ..Default::default()
                },
                "keep_last",
            ),
        ];
        for (p, field) in bad {
            let e = p.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            let m = e.to_string();
            assert!(m.contains(field) && m.contains("allowed"), "{m}");
        }
        let edges = RetentionPolicy {
            window_hours: 72,
            app_every_hours: Some(12),
            extra_hourly: 24,
            keep_last: 100_000,
        };
        edges.validate().unwrap();
    }
}
