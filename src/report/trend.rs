//! Is a legacy number dying down? A least-squares fit of the logarithm of its share per bucket
//! against time, and when that fit crosses the number's threshold. Pure: numbers in, an estimate
//! out.
//!
//! Method: for each bucket with any call in the area, the share is `legacy / (legacy + new)`;
//! a bucket where the legacy number got no call counts half a call (a continuity correction,
//! so a silent day pulls the fit down instead of being ignored). `ln(share)` is fitted to
//! `a + b·t` by ordinary least squares over the bucket midpoints. `b < 0` is an exponential
//! decline (the share halves every `ln 2 / −b`), and the fit reaches the threshold at
//! `t = (ln(max_share) − a) / b`. Fewer than [`MIN_POINTS`] buckets with calls give no estimate.

use serde::Serialize;

/// Buckets with calls needed before a trend is estimated.
pub const MIN_POINTS: usize = 3;

/// Calls to a legacy number and to its area's new number in one bucket of time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Unix seconds the bucket starts at.
    pub start: i64,
    /// Unix seconds the bucket ends at (exclusive).
    pub end: i64,
    /// Calls to the legacy number.
    pub calls: u64,
    /// Calls to the area's new number.
    pub new_calls: u64,
}

impl Bucket {
    /// `calls / (calls + new_calls)`; `None` when nobody called.
    pub fn share(&self) -> Option<f64> {
        let total = self.calls.saturating_add(self.new_calls);
        (total > 0).then(|| self.calls as f64 / total as f64)
    }
}

/// What the buckets say about where the share is heading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trend {
    /// Fewer than [`MIN_POINTS`] buckets had calls.
    TooFewPoints {
        /// Buckets with calls.
        points: usize,
    },
    /// The latest bucket is already below the threshold.
    Below,
    /// The share is falling: it halves every `halving_days` and the fit reaches the threshold
    /// around `below_at`.
    Declining {
        /// Days for the share to halve at the fitted rate.
        halving_days: f64,
        /// Unix seconds the fit crosses the threshold.
        below_at: i64,
    },
    /// The fitted share is flat or rising.
    NotDeclining {
        /// The fitted change per day, as a factor (1.10 = +10 % a day).
        daily_factor: f64,
    },
}

/// The trend of `buckets` (oldest first) against `max_share`.
pub fn estimate(buckets: &[Bucket], max_share: f64) -> Trend {
    let points: Vec<(f64, f64)> = buckets
        .iter()
        .filter(|b| b.calls.saturating_add(b.new_calls) > 0)
        .map(|b| {
            let total = (b.calls + b.new_calls) as f64;
            let legacy = if b.calls == 0 { 0.5 } else { b.calls as f64 };
            let mid = (b.start as f64 + b.end as f64) / 2.0;
            (mid, (legacy / total.max(legacy)).ln())
        })
        .collect();
    if points.len() < MIN_POINTS {
        return Trend::TooFewPoints {
            points: points.len(),
        };
    }
    if buckets
        .iter()
        .rev()
        .find_map(Bucket::share)
        .is_some_and(|s| s < max_share)
    {
        return Trend::Below;
    }
    let Some((a, b)) = least_squares(&points) else {
        return Trend::TooFewPoints {
            points: points.len(),
        };
    };
    const DAY: f64 = 86_400.0;
    if b >= 0.0 || !max_share.is_finite() || max_share <= 0.0 {
        return Trend::NotDeclining {
            daily_factor: (b * DAY).exp(),
        };
    }
    let crossing = (max_share.ln() - a) / b;
    Trend::Declining {
        halving_days: std::f64::consts::LN_2 / -b / DAY,
        // Saturating: a very slow decline crosses in the far future.
        below_at: crossing.clamp(i64::MIN as f64, i64::MAX as f64) as i64,
    }
}

/// Ordinary least squares `y = a + b·x`; `None` when every `x` is the same.
fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    // Centre x for numerical stability: unix seconds are large.
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_746_576_000; // 2025-05-07T00:00:00Z

    /// Daily buckets from T0 with (legacy, new) calls.
    fn days(calls: &[(u64, u64)]) -> Vec<Bucket> {
        calls
            .iter()
            .enumerate()
            .map(|(i, (c, n))| Bucket {
                start: T0 + i as i64 * DAY,
                end: T0 + (i as i64 + 1) * DAY,
                calls: *c,
                new_calls: *n,
            })
            .collect()
    }

    #[test]
    fn a_share_halving_daily_is_declining_and_crosses_where_the_curve_does() {
        // 32 %, 16 %, 8 %, 4 %: halves every day; 1 % two days after the 4 % day.
        let b = days(&[(320, 680), (160, 840), (80, 920), (40, 960)]);
        match estimate(&b, 0.01) {
            Trend::Declining {
                halving_days,
                below_at,
            } => {
                assert!((halving_days - 1.0).abs() < 1e-9, "{halving_days}");
                // The 4 % bucket's midpoint is T0 + 3.5 d; 1 % is 2 halvings later.
                let want = T0 + 3 * DAY + DAY / 2 + 2 * DAY;
                assert!((below_at - want).abs() <= 1, "{below_at} vs {want}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flat_share_is_not_declining() {
        let b = days(&[(50, 950), (50, 950), (50, 950), (50, 950)]);
        match estimate(&b, 0.01) {
            Trend::NotDeclining { daily_factor } => {
                assert!((daily_factor - 1.0).abs() < 1e-9, "{daily_factor}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rising_share_is_not_declining() {
        let b = days(&[(10, 990), (20, 980), (40, 960)]);
        match estimate(&b, 0.01) {
            Trend::NotDeclining { daily_factor } => assert!(daily_factor > 1.5, "{daily_factor}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_few_buckets_with_calls_give_no_estimate() {
        let b = days(&[(5, 100), (0, 0), (3, 100), (0, 0)]);
        assert_eq!(estimate(&b, 0.01), Trend::TooFewPoints { points: 2 });
        assert_eq!(estimate(&[], 0.01), Trend::TooFewPoints { points: 0 });
    }

    #[test]
    fn a_latest_bucket_under_the_threshold_is_below() {
        let b = days(&[(50, 950), (20, 980), (0, 1000)]);
        assert_eq!(estimate(&b, 0.01), Trend::Below);
    }

    #[test]
    fn silent_buckets_pull_the_fit_down() {
        // No legacy call on the third day: the continuity correction (half a call in 100)
        // keeps that day in the fit, which declines to the 0.1 % threshold.
        let b = days(&[(30, 70), (10, 90), (0, 100), (1, 99)]);
        assert!(matches!(estimate(&b, 0.001), Trend::Declining { .. }));
    }
}
