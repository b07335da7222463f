//! `dualgate_request_duration_seconds`: the time a message spends inside the gateway, receive
//! to send, as a fixed-bucket Prometheus histogram kept in plain atomics. Recording a message
//! is a bucket add and a sum add: no samples buffered until the exporter drains them, no epoch
//! pin, and the series exist at 0 from the first scrape (so `increase()` sees the first
//! message, like the per-number families of `table`). Every recorder writes a shard of its own
//! (each on its own cache lines), so workers on different cores do not pass the same lines
//! back and forth for every message; a scrape adds the shards up.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The metric's name.
const NAME: &str = "dualgate_request_duration_seconds";
const HELP: &str = "Time a message spends inside the gateway, receive to send.";

/// Upper bounds of the buckets, 10 µs to 100 ms: in nanoseconds, and as the `le` label writes
/// them (the text the exporter wrote before, so dashboards and recording rules keep matching).
const BOUNDS: [(u64, &str); 13] = [
    (10_000, "0.00001"),
    (25_000, "0.000025"),
    (50_000, "0.00005"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
];

/// One recorder's share of the histogram, on cache lines of its own (two 64-byte lines, and
/// the pair adjacent-line prefetchers fetch together).
#[repr(align(128))]
struct Shard {
    /// Observations per bucket, not cumulative: `counts[i]` holds those in
    /// `(BOUNDS[i-1], BOUNDS[i]]`, the last slot those above every bound (`+Inf`).
    counts: [AtomicU64; BOUNDS.len() + 1],
    /// The sum of its observations, in nanoseconds (wraps after 584 years of handling time).
    sum_nanos: AtomicU64,
}

/// More shards than a gateway has UDP workers; TCP connections' recorders share them.
const SHARDS: usize = 16;
static HISTOGRAM: [Shard; SHARDS] = [const {
    Shard {
        counts: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
        sum_nanos: AtomicU64::new(0),
    }
}; SHARDS];
/// The shard the next recorder gets.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A shard for a new recorder: the shards in turn.
pub(crate) fn shard() -> usize {
    NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
}

/// The bucket an observation of `nanos` falls in: the first whose bound it does not exceed
/// (Prometheus' `le`).
fn bucket(nanos: u64) -> usize {
    BOUNDS.iter().take_while(|(b, _)| nanos > *b).count()
}

/// Counts one message that spent `inside` in the gateway, in shard `shard` (from [`shard`]).
pub(crate) fn record(shard: usize, inside: Duration) {
    let nanos = u64::try_from(inside.as_nanos()).unwrap_or(u64::MAX);
    let Some(s) = HISTOGRAM.get(shard % SHARDS) else {
        return;
    };
    if let Some(c) = s.counts.get(bucket(nanos)) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    s.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
}

/// Appends the histogram's text to `out`, each series with the `global` labels (e.g.
/// `replica="a"`, may be empty): cumulative buckets, `+Inf`, the sum in seconds and the count.
pub(crate) fn render_into(out: &mut String, global: &str) {
    let _ = writeln!(out, "# HELP {NAME} {HELP}\n# TYPE {NAME} histogram");
    let sep = if global.is_empty() { "" } else { "," };
    let mut total = 0u64;
    let les = BOUNDS.iter().map(|(_, le)| *le).chain(["+Inf"]);
    for (i, le) in les.enumerate() {
        let in_bucket = HISTOGRAM.iter().fold(0u64, |n, s| {
            n.wrapping_add(s.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed)))
        });
        total = total.wrapping_add(in_bucket);
        let _ = writeln!(out, "{NAME}_bucket{{{global}{sep}le=\"{le}\"}} {total}");
    }
    let sum_nanos = HISTOGRAM.iter().fold(0u64, |n, s| {
        n.wrapping_add(s.sum_nanos.load(Ordering::Relaxed))
    });
    let sum = sum_nanos as f64 / 1e9;
    let labels = if global.is_empty() {
        String::new()
    } else {
        format!("{{{global}}}")
    };
    let _ = writeln!(
        out,
        "{NAME}_sum{labels} {sum}\n{NAME}_count{labels} {total}\n"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_falls_in_the_first_bucket_it_does_not_exceed() {
        for (nanos, want) in [
            (0, 0),
            (9_999, 0),
            (10_000, 0),
            (10_001, 1),
            (25_000, 1),
            (99_999, 3),
            (100_000, 3),
            (100_001, 4),
            (100_000_000, 12),
            (100_000_001, 13),
            (u64::MAX, 13),
        ] {
            assert_eq!(bucket(nanos), want, "{nanos} ns");
        }
    }

    #[test]
    fn bounds_rise_and_their_labels_are_their_values_in_seconds() {
        for w in BOUNDS.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
        for (nanos, le) in BOUNDS {
            let secs: f64 = le.parse().unwrap();
            assert_eq!((secs * 1e9).round() as u64, nanos, "{le}");
        }
    }

    #[test]
    fn the_text_is_cumulative_and_counts_what_was_recorded() {
        // The statics are shared with every other test in this process: compare before and
        // after rather than absolute values.
        let read = || {
            let mut out = String::new();
            render_into(&mut out, "replica=\"t\"");
            out
        };
        let value = |text: &str, series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
                .unwrap()
        };
        let before = read();
        // In two shards: the text adds them up.
        record(shard(), Duration::from_micros(30)); // le 0.00005
        record(shard(), Duration::from_millis(200)); // +Inf only
        let after = read();
        let diff = |series: &str| value(&after, series) - value(&before, series);
        let bucket = |le: &str| format!("{NAME}_bucket{{replica=\"t\",le=\"{le}\"}}");
        assert!(diff(&bucket("0.000025")) >= 0.0);
        assert!(diff(&bucket("0.00005")) >= 1.0);
        assert!(diff(&bucket("0.1")) >= 1.0);
        assert!(diff(&bucket("+Inf")) >= 2.0);
        assert!(diff(&format!("{NAME}_count{{replica=\"t\"}}")) >= 2.0);
        assert!(diff(&format!("{NAME}_sum{{replica=\"t\"}}")) >= 0.200_03 - 1e-9);
        assert!(after.contains(&format!("# TYPE {NAME} histogram\n")));
        // Cumulative: every bucket holds at least the one before it, +Inf equals the count.
        let les: Vec<f64> = after
            .lines()
            .filter(|l| l.starts_with(&format!("{NAME}_bucket")))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(les.len(), BOUNDS.len() + 1);
        assert!(les.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            les.last().copied(),
            Some(value(&after, &format!("{NAME}_count{{replica=\"t\"}}")))
        );
    }
}
