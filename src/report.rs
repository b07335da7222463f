//! The retirement report: is a legacy number still dialled, compared with its area's 12356?
//!
//! Pure: takes the legacy lines from the mappings and the call counts Prometheus observed
//! (`crate::prometheus::observe` fetches them) and returns rows, a text table and a pass/fail
//! gate. No I/O and no clock here: "now" is a parameter.

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
    /// Current phase: `before`, `parallel`, `retired` or `decommissioned`.
    pub phase: String,
    /// Largest share of the area's calls (legacy / (legacy + new)) that is still "safe to retire".
    pub max_share: f64,
}

/// What Prometheus saw over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Number → calls (initial INVITEs) in the window, all replicas together.
    pub calls: HashMap<String, f64>,
    /// Number → unix seconds of the last call; 0 means never since the gateways started.
    pub last_call: HashMap<String, f64>,
}

/// Whether a legacy number can be retired (or stay retired) without stranding callers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// No calls, or a share of the area's calls below `max_share`.
    SafeToRetire,
    /// The number still carries `share` of its area's calls, at or above `max_share`.
    StillInUse {
        /// legacy / (legacy + new number) calls over the window.
        share: f64,
    },
}

/// One assessed legacy number.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Canonical legacy number.
    pub number: String,
    /// Human name of the line.
    pub name: String,
    /// Calls to the legacy number in the window (rounded).
    pub calls: u64,
    /// The area's new number the share is measured against.
    pub new_number: String,
    /// Calls to the area's new number in the window (rounded).
    pub new_calls: u64,
    /// calls / (calls + new_calls); `None` when both are 0.
    pub share: Option<f64>,
    /// Unix seconds of the last call to the legacy number; `None` when never seen.
    pub last_call: Option<f64>,
    /// Current phase, as configured.
    pub phase: String,
    /// The threshold the verdict used.
    pub max_share: f64,
    /// The verdict.
    pub verdict: Verdict,
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

/// Assesses each legacy line against what Prometheus observed, in the order given.
///
/// The share compares the rounded call counts, so the table's figures add up; a number with 0
/// calls is always safe.
pub fn assess(lines: &[LegacyLine], obs: &Observed) -> Vec<Row> {
    lines
        .iter()
        .map(|line| {
            let count = |n: &str| whole_calls(obs.calls.get(n).copied().unwrap_or(0.0));
            let calls = count(&line.number);
            let new_calls = count(&line.new_number);
            let total = calls.saturating_add(new_calls);
            let share = (total > 0).then(|| calls as f64 / total as f64);
            let verdict = match share {
                Some(share) if calls > 0 && share >= line.max_share => {
                    Verdict::StillInUse { share }
                }
                _ => Verdict::SafeToRetire,
            };
            let last_call = obs
                .last_call
                .get(&line.number)
                .copied()
                .filter(|t| t.is_finite() && *t > 0.0);
            Row {
                number: line.number.clone(),
                name: line.name.clone(),
                calls,
                new_number: line.new_number.clone(),
                new_calls,
                share,
                last_call,
                phase: line.phase.clone(),
                max_share: line.max_share,
                verdict,
            }
        })
        .collect()
}

/// True iff every row in the `retired` phase is [`Verdict::SafeToRetire`].
pub fn gate(rows: &[Row]) -> bool {
    rows.iter()
        .filter(|r| r.phase == "retired")
        .all(|r| r.verdict == Verdict::SafeToRetire)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// Unix seconds as an ISO-8601 UTC datetime, `2025-05-07T00:00:00Z`.
pub fn iso8601(unix: i64) -> String {
    let (y, mo, d) = civil_from_days(unix.div_euclid(DAY as i64));
    let secs = unix.rem_euclid(DAY as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A short age, `45s`, `12m`, `5h`, `3d`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// Renders the rows as an aligned text table with a header naming the window and the time.
pub fn render(rows: &[Row], window: &str, now_unix: i64) -> String {
    let header = [
        "NUMBER",
        "PHASE",
        "CALLS",
        "NEW NUMBER",
        "NEW CALLS",
        "SHARE",
        "LAST CALL",
        "VERDICT",
        "NAME",
    ];
    // Numeric columns are right-aligned.
    let right = [false, false, true, false, true, true, false, false, false];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let last = match r.last_call {
            // Seconds are whole in the table; the fraction is sub-second noise.
            Some(t) => {
                let t = t.floor() as i64;
                format!("{} ({} ago)", iso8601(t), age(now_unix - t))
            }
            None => "never".to_string(),
        };
        let verdict = match r.verdict {
            Verdict::SafeToRetire => "safe to retire".to_string(),
            Verdict::StillInUse { share } => {
                format!(
                    "still in use ({} >= {})",
                    percent(share),
                    percent(r.max_share)
                )
            }
        };
        table.push(vec![
            r.number.clone(),
            r.phase.clone(),
            r.calls.to_string(),
            r.new_number.clone(),
            r.new_calls.to_string(),
            r.share.map_or_else(|| "-".to_string(), percent),
            last,
            verdict,
            r.name.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();

    let mut out = format!(
        "Legacy numbers over the last {window}, up to {}\n\n",
        iso8601(now_unix)
    );
    for row in &table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c].saturating_sub(cell.chars().count());
            if right[c] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let retired = rows.iter().filter(|r| r.phase == "retired").count();
    let in_use = rows
        .iter()
        .filter(|r| r.phase == "retired" && r.verdict != Verdict::SafeToRetire)
        .count();
    out.push('\n');
    if in_use == 0 {
        out.push_str(&format!(
            "OK: all {retired} retired number(s) are below their retirement threshold.\n"
        ));
    } else {
        out.push_str(&format!(
            "NOT SAFE: {in_use} of {retired} retired number(s) still carry calls at or above \
             their threshold.\n"
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // until clippy.toml sets allow-unwrap-in-tests
mod tests {
    use super::*;

    fn line(number: &str, phase: &str) -> LegacyLine {
        LegacyLine {
            number: number.to_string(),
            name: format!("line {number}"),
            new_number: "059112356".to_string(),
            phase: phase.to_string(),
            max_share: 0.01,
        }
    }

    fn observed(calls: &[(&str, f64)], last: &[(&str, f64)]) -> Observed {
        Observed {
            calls: calls.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            last_call: last.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
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
            let rows = assess(&[line("059185666661", "retired")], &obs);
            let r = &rows[0];
            assert_eq!(r.share, *share, "{legacy}/{new}");
            assert_eq!(
                matches!(r.verdict, Verdict::StillInUse { .. }),
                *in_use,
                "{legacy}/{new}: {:?}",
                r.verdict
            );
            if let Verdict::StillInUse { share: s } = r.verdict {
                assert_eq!(Some(s), r.share);
            }
        }
    }

    #[test]
    fn missing_numbers_count_as_zero_and_last_call_zero_is_never() {
        let obs = observed(
            &[("059112356", 12.6)],
            &[("059185666661", 0.0), ("059185666221", 1.7e9)],
        );
        let rows = assess(
            &[
                line("059185666661", "retired"),
                line("059185666221", "parallel"),
            ],
            &obs,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].calls, rows[0].new_calls), (0, 13));
        assert_eq!(rows[0].last_call, None);
        assert_eq!(rows[1].last_call, Some(1.7e9));
        assert_eq!(rows[1].number, "059185666221");
        assert_eq!(rows[1].phase, "parallel");
    }

    #[test]
    fn gate_looks_only_at_retired_numbers() {
        let obs = observed(&[("059185666661", 50.0), ("059112356", 50.0)], &[]);
        // (phases of two lines that both carry 50 % of the calls, gate)
        const CASES: &[(&str, &str, bool)] = &[
            ("parallel", "before", true),
            ("retired", "parallel", false),
            ("decommissioned", "parallel", true),
            ("retired", "retired", false),
        ];
        for (a, b, want) in CASES {
            let rows = assess(&[line("059185666661", a), line("059185666661", b)], &obs);
            assert_eq!(gate(&rows), *want, "{a} {b}");
        }
        let quiet = observed(&[("059112356", 50.0)], &[]);
        let rows = assess(&[line("059185666661", "retired")], &quiet);
        assert!(gate(&rows));
        assert!(gate(&[]));
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

    #[test]
    fn render_aligns_columns_and_names_the_window() {
        let now = 1_748_736_000; // 2025-06-01T00:00:00Z
        let mut fuzhou = line("059185666661", "retired");
        fuzhou.name = "Fujian provincial psychological-aid hotline".to_string();
        let obs = observed(
            &[
                ("059185666661", 30.0),
                ("059185666221", 2.0),
                ("059112356", 970.0),
            ],
            &[("059185666661", (now - 3 * 86_400) as f64 + 0.9)],
        );
        let rows = assess(
            &[
                fuzhou,
                line("059185666221", "retired"),
                line("059185666222", "parallel"),
            ],
            &obs,
        );
        let text = render(&rows, "7d", now);
        let want = "\
Legacy numbers over the last 7d, up to 2025-06-01T00:00:00Z

NUMBER        PHASE     CALLS  NEW NUMBER  NEW CALLS  SHARE  LAST CALL                      VERDICT                        NAME
059185666661  retired      30  059112356         970  3.00%  2025-05-29T00:00:00Z (3d ago)  still in use (3.00% >= 1.00%)  Fujian provincial psychological-aid hotline
059185666221  retired       2  059112356         970  0.21%  never                          safe to retire                 line 059185666221
059185666222  parallel      0  059112356         970  0.00%  never                          safe to retire                 line 059185666222

NOT SAFE: 1 of 2 retired number(s) still carry calls at or above their threshold.
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn render_shows_a_dash_share_when_nobody_called() {
        let rows = assess(&[line("059185666661", "retired")], &Observed::default());
        let text = render(&rows, "24h", 0);
        let row = text.lines().nth(3).unwrap();
        assert_eq!(row, "059185666661  retired      0  059112356           0      -  never      safe to retire  line 059185666661");
        assert!(
            text.ends_with("OK: all 1 retired number(s) are below their retirement threshold.\n")
        );
    }
}
