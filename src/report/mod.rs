//! The retirement report: is a legacy number still dialled, compared with its area's 12356,
//! by whom, and is it dying down?
//!
//! Pure: takes the legacy lines from the mappings and what Prometheus observed
//! ([`prometheus::observe`] fetches it) and returns rows, a verdict per retired number that
//! never reads missing data as "safe", and an exit status; [`render()`] prints them as a table or
//! JSON, [`trend`] estimates the decline. No I/O and no clock here: "now" is a parameter.

pub mod prometheus;
pub mod render;
pub mod trend;

pub use render::{render, render_json};
pub use trend::{Bucket, Trend};

use crate::calendar::PhaseName;
use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

/// One legacy number to assess, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyLine {
    /// Canonical legacy number, e.g. `059185666661`.
    pub number: String,
    /// Human name of the line, from the mappings.
    pub name: String,
    /// The same area's new number in its area form, e.g. `059112356`.
    pub new_number: String,
    /// Phase at the instant assessed.
    pub phase: PhaseName,
    /// Largest share of the area's calls (legacy / (legacy + new)) that is still "safe to retire".
    pub max_share: f64,
}

/// Calls per number over one bucket of the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slice {
    /// Unix seconds the bucket starts at.
    pub start: i64,
    /// Unix seconds the bucket ends at.
    pub end: i64,
    /// Number → calls in the bucket.
    pub calls: HashMap<String, f64>,
}

/// What Prometheus saw over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Number → calls (initial INVITEs) in the window, all replicas together; a number with no
    /// series at all is absent.
    pub calls: HashMap<String, f64>,
    /// Number → calls on series that first appeared inside the window already above 0, which
    /// `increase()` cannot see (a replica scraped late, or a gateway that did not pre-register).
    pub late: HashMap<String, f64>,
    /// Number → unix seconds of the last call seen in the window, on the gateway's clock; 0
    /// means none.
    pub last_call: HashMap<String, f64>,
    /// Number → how often its last-call gauge changed within the window (on Prometheus' clock).
    pub called: HashMap<String, f64>,
    /// Number → trunk → calls in the window.
    pub trunks: HashMap<String, HashMap<String, f64>>,
    /// The window cut into buckets, oldest first.
    pub buckets: Vec<Slice>,
}

/// Why a number's traffic cannot be judged from what Prometheus holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Gap {
    /// Prometheus holds no `dualgate_call_attempts_total` series for this number.
    NoSeries {
        /// The number without series (the legacy number or its area's new number).
        number: String,
    },
    /// The last-call gauge says the number was called inside the window (it changed, or its
    /// value is inside the window), yet no call was counted: a counter series is missing
    /// (deleted, or on a replica Prometheus lost).
    Uncounted {
        /// Unix seconds of that last call, on the gateway's clock (0 when unknown).
        last_call: f64,
    },
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gap::NoSeries { number } => write!(
                f,
                "no dualgate_call_attempts_total series for {number} (is every replica scraped?)"
            ),
            Gap::Uncounted { last_call } => write!(
                f,
                "last call at {} is inside the window but no call was counted (a series is missing)",
                if *last_call > 0.0 {
                    iso8601(last_call.floor() as i64)
                } else {
                    "an unknown time".to_string()
                }
            ),
        }
    }
}

/// Whether a retired legacy number can stay retired (or be decommissioned) without stranding
/// callers.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Before or during the parallel period, or decommissioned: the share is shown, not judged.
    NotAssessed,
    /// No calls, or a share of the area's calls below `max_share`.
    SafeToRetire,
    /// The number still carries `share` of its area's calls, at or above `max_share`.
    StillInUse {
        /// legacy / (legacy + new number) calls over the window.
        share: f64,
    },
    /// Prometheus' data has a gap: never read as "safe".
    Unknown(Gap),
}

/// One assessed legacy number.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Canonical legacy number.
    pub number: String,
    /// Human name of the line.
    pub name: String,
    /// Calls to the legacy number in the window (rounded), late-born series included.
    pub calls: u64,
    /// Of `calls`, those found on series that appeared mid-window already counting.
    pub late: u64,
    /// The area's new number the share is measured against.
    pub new_number: String,
    /// Calls to the area's new number in the window (rounded).
    pub new_calls: u64,
    /// calls / (calls + new_calls); `None` when both are 0.
    pub share: Option<f64>,
    /// Unix seconds of the last call to the legacy number; `None` when never seen.
    pub last_call: Option<f64>,
    /// Phase at the instant assessed.
    pub phase: PhaseName,
    /// The threshold the verdict used.
    pub max_share: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// Calls per trunk in the window, largest first (ties by name); trunks with 0 left out.
    pub trunks: Vec<(String, u64)>,
    /// Calls per bucket, oldest first.
    pub buckets: Vec<Bucket>,
    /// Where the share is heading.
    pub trend: Trend,
}

/// How the report ends, as the command's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Every retired number is below its threshold (or nothing is retired).
    Safe,
    /// Some retired number's data has a gap, none is known to be in use.
    Unknown,
    /// Some retired number still carries calls at or above its threshold.
    StillInUse,
}

impl Outcome {
    /// The exit status: 0 safe, 1 still in use, 75 (sysexits EX_TEMPFAIL) unknown: look again
    /// once the gap has left the window or the missing replica is scraped.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Safe => 0,
            Outcome::StillInUse => 1,
            Outcome::Unknown => 75,
        }
    }
}

/// Why a report input is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    /// The window is an empty string.
    #[error("empty window: give a Prometheus duration such as 7d, 24h, 30m")]
    EmptyWindow,
    /// The window adds up to zero seconds.
    #[error("window {input:?} is zero")]
    ZeroWindow {
        /// The window as given.
        input: String,
    },
    /// A character that is not a digit where a number was expected.
    #[error("window {input:?}: expected a number at byte {at}")]
    ExpectedNumber {
        /// The window as given.
        input: String,
        /// Byte offset of the problem.
        at: usize,
    },
    /// A unit other than `s`, `m`, `h`, `d`, `w`, `y`.
    #[error("window {input:?}: unknown unit {unit:?} (use s, m, h, d, w or y)")]
    UnknownUnit {
        /// The window as given.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// Units must go from largest to smallest, each at most once (`1h30m`, not `30m1h`).
    #[error("window {input:?}: unit {unit:?} out of order or repeated")]
    UnitOrder {
        /// The window as given.
        input: String,
        /// The offending unit.
        unit: String,
    },
    /// The window does not fit in 64-bit seconds.
    #[error("window {input:?} is too long")]
    Overflow {
        /// The window as given.
        input: String,
    },
}

/// A report window: a whole, positive number of seconds.
///
/// Displays as a PromQL range (`7d`, `1d12h`, `1m30s`), so it can be put inside `[...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    seconds: u64,
}

impl Window {
    /// A window of `seconds` seconds; `None` for 0.
    pub fn from_seconds(seconds: u64) -> Option<Window> {
        (seconds > 0).then_some(Window { seconds })
    }

    /// Length in seconds.
    pub fn seconds(&self) -> u64 {
        self.seconds
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Days are the largest unit shown: ops engineers read "7d" more easily than "1w".
        let mut rest = self.seconds;
        for (unit, size) in [("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

/// Parses a Prometheus duration (`7d`, `24h`, `30m`, `90s`, `1w`, `1y`, `1h30m`) into a window.
///
/// # Errors
/// [`ReportError`] for an empty or zero window, a missing number, an unknown unit (including
/// `ms`: windows are whole seconds), units out of order, or an overflow.
pub fn parse_window(s: &str) -> Result<Window, ReportError> {
    if s.is_empty() {
        return Err(ReportError::EmptyWindow);
    }
    // Same units and order rule as Prometheus' model.ParseDuration (y = 365d).
    const UNITS: [(&str, u64); 6] = [
        ("y", 365 * DAY),
        ("w", 7 * DAY),
        ("d", DAY),
        ("h", HOUR),
        ("m", MINUTE),
        ("s", 1),
    ];
    let overflow = || ReportError::Overflow {
        input: s.to_string(),
    };
    let bytes = s.as_bytes();
    let mut at = 0;
    let mut total: u64 = 0;
    let mut next_unit = 0; // index into UNITS of the largest unit still allowed
    while at < bytes.len() {
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        if at == start {
            return Err(ReportError::ExpectedNumber {
                input: s.to_string(),
                at,
            });
        }
        let value: u64 = s[start..at].parse().map_err(|_| overflow())?;
        let unit_start = at;
        while at < bytes.len() && !bytes[at].is_ascii_digit() {
            at += 1;
        }
        let unit = &s[unit_start..at];
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(ReportError::UnknownUnit {
                input: s.to_string(),
                unit: unit.to_string(),
            });
        };
        if index < next_unit {
            return Err(ReportError::UnitOrder {
                input: s.to_string(),
                unit: unit.to_string(),
            });
        }
        next_unit = index + 1;
        let add = value.checked_mul(UNITS[index].1).ok_or_else(overflow)?;
        total = total.checked_add(add).ok_or_else(overflow)?;
    }
    Window::from_seconds(total).ok_or_else(|| ReportError::ZeroWindow {
        input: s.to_string(),
    })
}

/// A count from Prometheus (extrapolated, so fractional; NaN or negative after a reset) as calls.
fn whole_calls(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // `as` saturates for huge values; the value is finite and positive here.
        v.round() as u64
    } else {
        0
    }
}

/// Assesses each legacy line against what Prometheus observed over the `window_seconds` up
/// to `now_unix`, in the order given.
///
/// The share compares the rounded call counts, so the table's figures add up. Only retired
/// numbers get a verdict; a gap in the data (no series, or a last call inside the window with
/// no call counted) is [`Verdict::Unknown`], never "safe".
pub fn assess(
    lines: &[LegacyLine],
    obs: &Observed,
    now_unix: i64,
    window_seconds: u64,
) -> Vec<Row> {
    let window_start = now_unix.saturating_sub(i64::try_from(window_seconds).unwrap_or(i64::MAX));
    lines
        .iter()
        .map(|line| {
            let get =
                |m: &HashMap<String, f64>, n: &str| whole_calls(m.get(n).copied().unwrap_or(0.0));
            let late = get(&obs.late, &line.number);
            let calls = get(&obs.calls, &line.number).saturating_add(late);
            let new_calls =
                get(&obs.calls, &line.new_number).saturating_add(get(&obs.late, &line.new_number));
            let total = calls.saturating_add(new_calls);
            let share = (total > 0).then(|| calls as f64 / total as f64);
            let last_call = obs
                .last_call
                .get(&line.number)
                .copied()
                .filter(|t| t.is_finite() && *t > 0.0);
            let missing = [&line.number, &line.new_number]
                .into_iter()
                .find(|n| !obs.calls.contains_key(n.as_str()));
            let verdict = match (line.phase, missing, share) {
                (PhaseName::Retired, Some(n), _) => {
                    Verdict::Unknown(Gap::NoSeries { number: n.clone() })
                }
                (PhaseName::Retired, None, _)
                    if calls == 0
                        && (last_call.is_some_and(|t| t >= window_start as f64)
                            || obs.called.get(&line.number).is_some_and(|c| *c > 0.0)) =>
                {
                    Verdict::Unknown(Gap::Uncounted {
                        last_call: last_call.unwrap_or_default(),
                    })
                }
                (PhaseName::Retired, None, Some(share)) if calls > 0 && share >= line.max_share => {
                    Verdict::StillInUse { share }
                }
                (PhaseName::Retired, None, _) => Verdict::SafeToRetire,
                _ => Verdict::NotAssessed,
            };
            let mut trunks: Vec<(String, u64)> = obs
                .trunks
                .get(&line.number)
                .into_iter()
                .flatten()
                .map(|(t, v)| (t.clone(), whole_calls(*v)))
                .filter(|(_, v)| *v > 0)
                .collect();
            trunks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let buckets: Vec<Bucket> = obs
                .buckets
                .iter()
                .map(|s| Bucket {
                    start: s.start,
                    end: s.end,
                    calls: get(&s.calls, &line.number),
                    new_calls: get(&s.calls, &line.new_number),
                })
                .collect();
            let trend = trend::estimate(&buckets, line.max_share);
            Row {
                number: line.number.clone(),
                name: line.name.clone(),
                calls,
                late,
                new_number: line.new_number.clone(),
                new_calls,
                share,
                last_call,
                phase: line.phase,
                max_share: line.max_share,
                verdict,
                trunks,
                buckets,
                trend,
            }
        })
        .collect()
}

/// How the report ends: the worst verdict among the retired numbers.
pub fn outcome(rows: &[Row]) -> Outcome {
    rows.iter()
        .map(|r| match r.verdict {
            Verdict::StillInUse { .. } => Outcome::StillInUse,
            Verdict::Unknown(_) => Outcome::Unknown,
            Verdict::SafeToRetire | Verdict::NotAssessed => Outcome::Safe,
        })
        .max()
        .unwrap_or(Outcome::Safe)
}

/// The one-line summary the table ends with (and the JSON carries), agreeing with [`outcome`].
pub fn summary(rows: &[Row]) -> String {
    let retired = rows
        .iter()
        .filter(|r| r.phase == PhaseName::Retired)
        .count();
    let count = |f: fn(&Verdict) -> bool| rows.iter().filter(|r| f(&r.verdict)).count();
    let in_use = count(|v| matches!(v, Verdict::StillInUse { .. }));
    let unknown = count(|v| matches!(v, Verdict::Unknown(_)));
    match outcome(rows) {
        Outcome::StillInUse => format!(
            "NOT SAFE: {in_use} of {retired} retired number(s) still carry calls at or above their threshold{}.",
            if unknown > 0 { format!("; {unknown} cannot be assessed") } else { String::new() }
        ),
        Outcome::Unknown => format!(
            "UNKNOWN: {unknown} of {retired} retired number(s) cannot be assessed from the data Prometheus holds."
        ),
        Outcome::Safe if retired == 0 => "No legacy number is retired: nothing to judge.".to_string(),
        Outcome::Safe => format!(
            "OK: all {retired} retired number(s) are below their retirement threshold."
        ),
    }
}

/// Unix seconds as an ISO-8601 UTC datetime, `2025-05-07T00:00:00Z` (written by
/// [`crate::timeline::utc`], the one place instants are formatted).
pub fn iso8601(unix: i64) -> String {
    crate::timeline::utc(instant(unix))
}

/// Unix seconds (Prometheus' clock) as an instant.
fn instant(unix: i64) -> std::time::SystemTime {
    if unix >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.unsigned_abs())
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(unix.unsigned_abs())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // until clippy.toml sets allow-unwrap-in-tests
mod tests {
    use super::*;

    use PhaseName::{Before, Decommissioned, Parallel, Retired};

    /// 2025-06-01T00:00:00Z.
    pub(super) const NOW: i64 = 1_748_736_000;

    pub(super) fn line(number: &str, phase: PhaseName) -> LegacyLine {
        LegacyLine {
            number: number.to_string(),
            name: format!("line {number}"),
            new_number: "059112356".to_string(),
            phase,
            max_share: 0.01,
        }
    }

    pub(super) fn observed(calls: &[(&str, f64)], last: &[(&str, f64)]) -> Observed {
        Observed {
            calls: calls.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            last_call: last.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn windows_parse_like_prometheus_durations() {
        const CASES: &[(&str, u64, &str)] = &[
            ("7d", 7 * DAY, "7d"),
            ("24h", DAY, "1d"),
            ("30m", 30 * MINUTE, "30m"),
            ("90s", 90, "1m30s"),
            ("1w", 7 * DAY, "7d"),
            ("2w", 14 * DAY, "14d"),
            ("1y", 365 * DAY, "365d"),
            ("1h30m", 90 * MINUTE, "1h30m"),
            ("1d12h", 36 * HOUR, "1d12h"),
            ("3600s", HOUR, "1h"),
            ("0d1h", HOUR, "1h"),
        ];
        for (input, seconds, shown) in CASES {
            let w = parse_window(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(w.seconds(), *seconds, "{input}");
            assert_eq!(w.to_string(), *shown, "{input}");
            assert_eq!(
                parse_window(shown),
                Ok(w),
                "{input} renders back to a valid window"
            );
        }
    }

    #[test]
    fn bad_windows_are_rejected_with_the_reason() {
        let s = |x: &str| x.to_string();
        let cases: &[(&str, ReportError)] = &[
            ("", ReportError::EmptyWindow),
            ("0d", ReportError::ZeroWindow { input: s("0d") }),
            (
                "0s0m",
                ReportError::UnitOrder {
                    input: s("0s0m"),
                    unit: s("m"),
                },
            ),
            (
                "d",
                ReportError::ExpectedNumber {
                    input: s("d"),
                    at: 0,
                },
            ),
            (
                "7",
                ReportError::UnknownUnit {
                    input: s("7"),
                    unit: s(""),
                },
            ),
            (
                "7days",
                ReportError::UnknownUnit {
                    input: s("7days"),
                    unit: s("days"),
                },
            ),
            (
                "7D",
                ReportError::UnknownUnit {
                    input: s("7D"),
                    unit: s("D"),
                },
            ),
            (
                "500ms",
                ReportError::UnknownUnit {
                    input: s("500ms"),
                    unit: s("ms"),
                },
            ),
            (
                " 7d",
                ReportError::ExpectedNumber {
                    input: s(" 7d"),
                    at: 0,
                },
            ),
            (
                "-7d",
                ReportError::ExpectedNumber {
                    input: s("-7d"),
                    at: 0,
                },
            ),
            (
                "1.5h",
                ReportError::UnknownUnit {
                    input: s("1.5h"),
                    unit: s("."),
                },
            ),
            (
                "30m1h",
                ReportError::UnitOrder {
                    input: s("30m1h"),
                    unit: s("h"),
                },
            ),
            (
                "1h1h",
                ReportError::UnitOrder {
                    input: s("1h1h"),
                    unit: s("h"),
                },
            ),
            (
                "99999999999999999999s",
                ReportError::Overflow {
                    input: s("99999999999999999999s"),
                },
            ),
            (
                "999999999999999y",
                ReportError::Overflow {
                    input: s("999999999999999y"),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_window(input).as_ref(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn verdicts_follow_the_share_threshold() {
        // (legacy calls, new calls, want share, want verdict still-in-use?)
        const CASES: &[(f64, f64, Option<f64>, bool)] = &[
            (0.0, 0.0, None, false),
            (0.0, 500.0, Some(0.0), false),
            (0.4, 500.0, Some(0.0), false), // rounds to 0 calls
            (1.0, 999.0, Some(0.001), false),
            (9.0, 991.0, Some(0.009), false),
            (10.0, 990.0, Some(0.01), true), // exactly at the threshold is not below it
            (30.0, 970.0, Some(0.03), true),
            (5.0, 0.0, Some(1.0), true),
            (f64::NAN, 100.0, Some(0.0), false),
            (-3.0, 100.0, Some(0.0), false),
        ];
        for (legacy, new, share, in_use) in CASES {
            let obs = observed(&[("059185666661", *legacy), ("059112356", *new)], &[]);
            let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
            let r = &rows[0];
            assert_eq!(r.share, *share, "{legacy}/{new}");
            let want = if *in_use {
                Verdict::StillInUse {
                    share: share.unwrap(),
                }
            } else {
                Verdict::SafeToRetire
            };
            assert_eq!(r.verdict, want, "{legacy}/{new}");
        }
    }

    #[test]
    fn only_retired_numbers_get_a_verdict() {
        let obs = observed(&[("059185666661", 50.0), ("059112356", 50.0)], &[]);
        for (phase, want) in [
            (Before, Verdict::NotAssessed),
            (Parallel, Verdict::NotAssessed),
            (Decommissioned, Verdict::NotAssessed),
            (Retired, Verdict::StillInUse { share: 0.5 }),
        ] {
            let rows = assess(&[line("059185666661", phase)], &obs, NOW, 3600);
            assert_eq!(rows[0].verdict, want, "{phase:?}");
            assert_eq!(
                rows[0].share,
                Some(0.5),
                "the share is shown in every phase"
            );
        }
    }

    #[test]
    fn missing_data_is_unknown_never_safe() {
        // No series at all for the legacy number (or for its area's new number).
        let obs = observed(&[("059112356", 12.6)], &[]);
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
        assert_eq!(
            rows[0].verdict,
            Verdict::Unknown(Gap::NoSeries {
                number: "059185666661".into()
            })
        );
        assert_eq!((rows[0].calls, rows[0].new_calls), (0, 13));
        let obs = observed(&[("059185666661", 0.0)], &[]);
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
        assert_eq!(
            rows[0].verdict,
            Verdict::Unknown(Gap::NoSeries {
                number: "059112356".into()
            })
        );
        // Called 10 minutes ago, yet 0 calls counted: a series was lost.
        let last = (NOW - 600) as f64;
        let obs = observed(
            &[("059185666661", 0.0), ("059112356", 40.0)],
            &[("059185666661", last)],
        );
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
        assert_eq!(
            rows[0].verdict,
            Verdict::Unknown(Gap::Uncounted { last_call: last })
        );
        assert_eq!(outcome(&rows), Outcome::Unknown);
        assert_eq!(outcome(&rows).exit_code(), 75);
        // The same last call before the window is history, not a gap...
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 300);
        assert_eq!(rows[0].verdict, Verdict::SafeToRetire);
        assert_eq!(rows[0].last_call, Some(last));
        // ... unless the gauge changed within the window (a rehearsal gateway's clock is not
        // Prometheus' clock).
        let mut obs = obs;
        obs.called.insert("059185666661".into(), 2.0);
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 300);
        assert_eq!(
            rows[0].verdict,
            Verdict::Unknown(Gap::Uncounted { last_call: last })
        );
    }

    #[test]
    fn calls_on_late_born_series_are_counted() {
        let mut obs = observed(&[("059185666661", 0.0), ("059112356", 97.0)], &[]);
        obs.late.insert("059185666661".into(), 3.0);
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
        assert_eq!((rows[0].calls, rows[0].late), (3, 3));
        assert_eq!(rows[0].verdict, Verdict::StillInUse { share: 0.03 });
    }

    #[test]
    fn trunks_are_listed_largest_first_without_zeros() {
        let mut obs = observed(&[("059185666661", 9.0), ("059112356", 91.0)], &[]);
        obs.trunks.insert(
            "059185666661".into(),
            [("b", 3.0), ("a", 3.0), ("c", 0.2), ("d", 6.0)]
                .map(|(t, v)| (t.to_string(), v))
                .into(),
        );
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
        let want: Vec<(String, u64)> = [("d", 6), ("a", 3), ("b", 3)]
            .map(|(t, v)| (t.to_string(), v))
            .into();
        assert_eq!(rows[0].trunks, want);
    }

    #[test]
    fn the_outcome_is_the_worst_retired_verdict() {
        let obs = observed(&[("059185666661", 50.0), ("059112356", 50.0)], &[]);
        // (phases of two lines that both carry 50 % of the calls, outcome)
        const CASES: &[(PhaseName, PhaseName, Outcome)] = &[
            (Parallel, Before, Outcome::Safe),
            (Retired, Parallel, Outcome::StillInUse),
            (Decommissioned, Parallel, Outcome::Safe),
            (Retired, Retired, Outcome::StillInUse),
        ];
        for (a, b, want) in CASES {
            let rows = assess(
                &[line("059185666661", *a), line("059185666661", *b)],
                &obs,
                NOW,
                3600,
            );
            assert_eq!(outcome(&rows), *want, "{a:?} {b:?}");
        }
        let quiet = observed(&[("059185666661", 0.0), ("059112356", 50.0)], &[]);
        let rows = assess(&[line("059185666661", Retired)], &quiet, NOW, 3600);
        assert_eq!(outcome(&rows), Outcome::Safe);
        assert_eq!(outcome(&[]), Outcome::Safe);
        assert_eq!(
            summary(&[]),
            "No legacy number is retired: nothing to judge."
        );
    }

    #[test]
    fn iso8601_matches_known_instants() {
        const CASES: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (1_746_547_200, "2025-05-06T16:00:00Z"), // 2025-05-07T00:00:00+08:00
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ];
        for (unix, want) in CASES {
            assert_eq!(iso8601(*unix), *want, "{unix}");
        }
    }
}
