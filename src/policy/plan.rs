//! The retention plan: which points of a chain a [`RetentionPolicy`] keeps at a given time, and
//! the rule that decided each. A pure function: pruning applies it, dry runs show it.
//!
//! The rules, relative to `now` (a point's *age* is `now - time`, zero for a point stamped after
//! `now`), and with `W` the window, `F` the app-consistent frequency and `N` the extra hours:
//!
//! | rule | keeps |
//! | --- | --- |
//! | [`Pinned`](Rule::Pinned) | every point an operator pinned |
//! | [`Newest`](Rule::Newest) | the newest point (the chain's head) |
//! | [`NewestAppConsistent`](Rule::NewestAppConsistent) | the newest app-consistent point |
//! | [`KeepLast`](Rule::KeepLast) | the newest `keep_last` points |
//! | [`Window`](Rule::Window) | every point of age ≤ W |
//! | [`ExtraHourly`](Rule::ExtraHourly) | for each hour `k` in 1..=N past the window (age in `(W + k−1 h, W + k h]`), the newest point of that hour |
//! | [`AppEvery`](Rule::AppEvery) | for each F-hour slot past the window, up to a second window's length (age in `(W + (k−1)F, W + kF]`, up to `2W`), the newest app-consistent point of that slot |
//!
//! Every other point is pruned ([`Rule::Expired`]). So app-consistent points outlive the
//! window at their frequency for as long again as the window (DESIGN §1.6: "can be kept longer
//! by policy"), and the extra hourly points reach up to 24 hours past it. The first rule in the
//! table that applies is the one reported.

use std::time::{Duration, SystemTime};

use super::RetentionPolicy;
use crate::error::{Error, Result};

/// What the plan needs of one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPoint {
    /// When the point was taken.
    pub time: SystemTime,
    /// Whether it is app-consistent.
    pub app_consistent: bool,
    /// Whether an operator pinned it.
    pub pinned: bool,
}

/// Why a point is kept, or that it is pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Rule {
    /// Pruned: no rule keeps it.
    Expired = 0,
    /// Kept: pinned by an operator.
    Pinned = 1,
    /// Kept: the newest point.
    Newest = 2,
    /// Kept: the newest app-consistent point.
    NewestAppConsistent = 3,
    /// Kept: among the newest `keep_last`.
    KeepLast = 4,
    /// Kept: within the window.
    Window = 5,
    /// Kept: the newest point of one of the extra hours past the window.
    ExtraHourly = 6,
    /// Kept: the newest app-consistent point of its slot past the window.
    AppEvery = 7,
}

impl Rule {
    /// Whether the point is kept.
    pub fn keeps(self) -> bool {
        self != Rule::Expired
    }

    /// A short lower-case name (`"expired"`, `"pinned"`, `"window"` ...), for reports.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Expired => "expired",
            Rule::Pinned => "pinned",
            Rule::Newest => "newest",
            Rule::NewestAppConsistent => "newest-app-consistent",
            Rule::KeepLast => "keep-last",
            Rule::Window => "window",
            Rule::ExtraHourly => "extra-hourly",
            Rule::AppEvery => "app-every",
        }
    }
}

const HOUR: u64 = 3600;

/// Plans retention for one chain: `points` oldest first (as the chain holds them; the last is
/// the newest), one [`Rule`] per point in the same order. The policy is validated first
/// (InvalidArgument naming the field). Never prunes the newest point, the newest app-consistent
/// point or a pinned one.
pub fn plan(points: &[PlanPoint], policy: &RetentionPolicy, now: SystemTime) -> Result<Vec<Rule>> {
    policy.validate()?;
    let n = points.len();
    let age = |p: &PlanPoint| now.duration_since(p.time).unwrap_or(Duration::ZERO);
    let window = Duration::from_secs(u64::from(policy.window_hours) * HOUR);
    // Slots past the window: the newest point (or app-consistent point) of each wins it.
    let slot = |p: &PlanPoint, width_h: u64, limit: Duration| -> Option<u64> {
        let a = age(p);
        if a <= window || a > limit {
            return None;
        }
        // (a - W) in (0, limit - W]: slot k-1 for (W + (k-1) width, W + k width].
        let past = (a - window).as_nanos() - 1;
        Some((past / u128::from(width_h * HOUR) / 1_000_000_000) as u64)
    };
    let mut best_hour: std::collections::HashMap<u64, usize> = Default::default();
    let mut best_app: std::collections::HashMap<u64, usize> = Default::default();
    let hourly_limit = window + Duration::from_secs(u64::from(policy.extra_hourly) * HOUR);
    let app_limit = window * 2;
    // Newest of a slot: the latest time, and the later point in the chain on a tie.
    let newer = |i: usize, j: usize| (points[i].time, i) > (points[j].time, j);
    for (i, p) in points.iter().enumerate() {
        if policy.extra_hourly > 0
            && let Some(s) = slot(p, 1, hourly_limit)
        {
            let e = best_hour.entry(s).or_insert(i);
            if newer(i, *e) {
                *e = i;
            }
        }
        if let Some(f) = policy.app_every_hours
            && p.app_consistent
            && let Some(s) = slot(p, u64::from(f), app_limit)
        {
            let e = best_app.entry(s).or_insert(i);
            if newer(i, *e) {
                *e = i;
            }
        }
    }
    let newest_app = points.iter().rposition(|p| p.app_consistent);
    let keep_from = n.saturating_sub(policy.keep_last as usize);
    let hourly: std::collections::HashSet<usize> = best_hour.into_values().collect();
    let app: std::collections::HashSet<usize> = best_app.into_values().collect();
    Ok(points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.pinned {
                Rule::Pinned
            } else if i + 1 == n {
                Rule::Newest
            } else if Some(i) == newest_app {
                Rule::NewestAppConsistent
            } else if i >= keep_from {
                Rule::KeepLast
            } else if age(p) <= window {
                Rule::Window
            } else if hourly.contains(&i) {
                Rule::ExtraHourly
            } else if app.contains(&i) {
                Rule::AppEvery
            } else {
                Rule::Expired
            }
        })
        .collect())
}

impl TryFrom<u32> for Rule {
    type Error = Error;

    fn try_from(v: u32) -> Result<Rule> {
        Ok(match v {
            0 => Rule::Expired,
            1 => Rule::Pinned,
            2 => Rule::Newest,
            3 => Rule::NewestAppConsistent,
            4 => Rule::KeepLast,
            5 => Rule::Window,
            6 => Rule::ExtraHourly,
            7 => Rule::AppEvery,
            _ => {
                return Err(Error::invalid_argument(
                    "rule",
                    format!("{v} is not a rule: allowed 0 to 7"),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const T0: u64 = 1_800_000_000;

    fn at(secs_before_now: i64, app: bool) -> PlanPoint {
        PlanPoint {
            time: SystemTime::UNIX_EPOCH
                + Duration::from_secs((T0 as i64 - secs_before_now) as u64),
            app_consistent: app,
            pinned: false,
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0)
    }

    fn policy(window: u32, app: Option<u32>, extra: u32, keep_last: u32) -> RetentionPolicy {
        RetentionPolicy {
            window_hours: window,
            app_every_hours: app,
            extra_hourly: extra,
            keep_last,
        }
    }

    #[test]
    fn every_rule_decides_where_the_table_says() {
        let h = HOUR as i64;
        let points = [
            at(30 * h, true),       // 0: past 2W for W=12: expired
            at(20 * h, true),       // 1: app slot (12+6, 12+9]: newest app of it? see 2
            at(19 * h, true),       // 2: same slot, newer: app-every
            at(14 * h - 60, false), // 3: extra hour 2 (13h, 14h]
            at(14 * h - 30, false), // 4: same hour, not its newest: expired
            at(13 * h + 1, false),  // 5: same hour, its newest: extra-hourly
            at(12 * h, false),      // 6: exactly the window: kept
            at(5 * h, true),        // 7: window, and the newest app point
            at(60, false),          // 8: window
            at(30, false),          // 9: keep-last (2)
            at(-10, false),         // 10: newest (in the future: age zero)
        ];
        let mut pts = points.to_vec();
        let got = plan(&pts, &policy(12, Some(3), 3, 2), now()).unwrap();
        use Rule::*;
        assert_eq!(
            got,
            [
                Expired,
                Expired,
                AppEvery,
                Expired,
                Expired,
                ExtraHourly,
                Window,
                NewestAppConsistent,
                Window,
                KeepLast,
                Newest
            ]
        );
        // Pinning wins over everything, also over expiry.
        pts[0].pinned = true;
        pts[10].pinned = true;
        let got = plan(&pts, &policy(12, Some(3), 3, 2), now()).unwrap();
        assert_eq!(got[0], Pinned);
        assert_eq!(got[10], Pinned);
    }

    #[test]
    fn never_prunes_the_newest_or_the_newest_app_point_however_old() {
        let day = 24 * HOUR as i64;
        let pts = [at(10 * day, true), at(9 * day, false), at(8 * day, false)];
        let got = plan(&pts, &policy(1, None, 0, 1), now()).unwrap();
        assert_eq!(
            got,
            [Rule::NewestAppConsistent, Rule::Expired, Rule::Newest]
        );
        assert!(
            plan(&[], &RetentionPolicy::default(), now())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn times_count_from_now_not_from_the_newest_point() {
        let h = HOUR as i64;
        // The same chain, planned an hour apart: the point 23.5 h old drops out.
        let pts = [at(23 * h + 1800, false), at(2 * h, false), at(h, false)];
        let p = policy(24, None, 0, 1);
        assert!(plan(&pts, &p, now()).unwrap().iter().all(|r| r.keeps()));
        let later = now() + Duration::from_secs(HOUR);
        assert_eq!(plan(&pts, &p, later).unwrap()[0], Rule::Expired);
    }

    #[test]
    fn an_invalid_policy_is_refused_naming_the_field() {
        let e = plan(&[], &policy(0, None, 0, 1), now()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("window_hours"), "{e}");
    }

    #[test]
    fn rules_round_trip_through_their_numbers() {
        for v in 0..8 {
            assert_eq!(Rule::try_from(v).unwrap() as u32, v);
        }
        assert_eq!(
            Rule::try_from(8).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}
