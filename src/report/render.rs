//! The retirement report for a person (an aligned table, who still dials each number and the
//! trend) and for automation (JSON with stable field names). Pure: rows in, text out.

use super::trend::{Bucket, Trend};
use super::{iso8601, outcome, summary, Row, Verdict};
use jiff::tz::TimeZone;
use serde::Serialize;

/// Unix seconds in the operator's zone (`--tz`), for the table.
fn shown(unix: i64, tz: &TimeZone) -> String {
    crate::timeline::in_zone(super::instant(unix), tz)
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

fn verdict_text(r: &Row) -> String {
    match &r.verdict {
        Verdict::NotAssessed => "-".to_string(),
        Verdict::SafeToRetire => "safe to retire".to_string(),
        Verdict::StillInUse { share } => format!(
            "still in use ({} >= {})",
            percent(*share),
            percent(r.max_share)
        ),
        Verdict::Unknown(gap) => format!("unknown: {gap}"),
    }
}

fn trend_text(t: &Trend, max_share: f64, tz: &TimeZone) -> String {
    match t {
        Trend::TooFewPoints { points } => format!(
            "too few buckets with calls to estimate ({points} of {})",
            super::trend::MIN_POINTS
        ),
        Trend::Below => format!("the latest bucket is below {}", percent(max_share)),
        Trend::Declining {
            halving_days,
            below_at,
        } => format!(
            "at the current decline (the share halves every {halving_days:.1} d), below {} around {}",
            percent(max_share),
            shown(*below_at, tz)
        ),
        Trend::NotDeclining { daily_factor } => format!(
            "not declining (fitted change {:+.1}% a day)",
            (daily_factor - 1.0) * 100.0
        ),
    }
}

/// Renders the rows as an aligned text table with a header naming the window and the time,
/// then who still dials each number and its trend, then the summary line.
pub fn render(rows: &[Row], window: &str, now_unix: i64, tz: &TimeZone) -> String {
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
                format!("{} ({} ago)", shown(t, tz), age(now_unix - t))
            }
            None => "never".to_string(),
        };
        table.push(vec![
            r.number.clone(),
            r.phase.as_str().to_string(),
            r.calls.to_string(),
            r.new_number.clone(),
            r.new_calls.to_string(),
            r.share.map_or_else(|| "-".to_string(), percent),
            last,
            verdict_text(r),
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
        shown(now_unix, tz)
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
    let details: Vec<String> = rows.iter().filter_map(|r| details(r, tz)).collect();
    if !details.is_empty() {
        out.push_str("\nWho still dials them, and the trend:\n");
        for d in details {
            out.push_str(&d);
        }
    }
    out.push('\n');
    out.push_str(&summary(rows));
    out.push('\n');
    out
}

/// The lines under the table for one number: its calls by trunk, per bucket and the trend;
/// `None` for a number nobody called.
fn details(r: &Row, tz: &TimeZone) -> Option<String> {
    if r.calls == 0 && r.trunks.is_empty() {
        return None;
    }
    let mut out = String::new();
    let trunks: Vec<String> = r.trunks.iter().map(|(t, n)| format!("{t} {n}")).collect();
    out.push_str(&format!(
        "  {}  by trunk: {}\n",
        r.number,
        if trunks.is_empty() {
            "-".to_string()
        } else {
            trunks.join(", ")
        }
    ));
    if r.late > 0 {
        out.push_str(&format!(
            "  {}  {} call(s) found on series that appeared mid-window already counting (invisible to increase())\n",
            r.number, r.late
        ));
    }
    if let Some(first) = r.buckets.first() {
        let size = first.end - first.start;
        let cells: Vec<String> = r
            .buckets
            .iter()
            .map(|b| format!("{}/{}", b.calls, b.calls + b.new_calls))
            .collect();
        out.push_str(&format!(
            "  {}  per {} (legacy/area, oldest first): {}\n",
            r.number,
            super::Window::from_seconds(u64::try_from(size).unwrap_or(0))
                .map_or_else(|| format!("{size}s"), |w| w.to_string()),
            cells.join(" ")
        ));
    }
    out.push_str(&format!(
        "  {}  trend: {}\n",
        r.number,
        trend_text(&r.trend, r.max_share, tz)
    ));
    Some(out)
}

/// The JSON report: field names are stable (documented in README).
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    window: &'a str,
    window_seconds: u64,
    now: String,
    outcome: &'static str,
    exit_code: u8,
    summary: String,
    numbers: Vec<JsonRow<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    number: &'a str,
    name: &'a str,
    phase: &'static str,
    calls: u64,
    late_calls: u64,
    new_number: &'a str,
    new_calls: u64,
    share: Option<f64>,
    max_share: f64,
    last_call: Option<String>,
    verdict: &'static str,
    reason: Option<String>,
    trunks: Vec<JsonTrunk<'a>>,
    buckets: Vec<JsonBucket>,
    trend: &'a Trend,
}

#[derive(Debug, Serialize)]
struct JsonTrunk<'a> {
    trunk: &'a str,
    calls: u64,
}

#[derive(Debug, Serialize)]
struct JsonBucket {
    start: String,
    end: String,
    calls: u64,
    new_calls: u64,
    share: Option<f64>,
}

impl From<&Bucket> for JsonBucket {
    fn from(b: &Bucket) -> JsonBucket {
        JsonBucket {
            start: iso8601(b.start),
            end: iso8601(b.end),
            calls: b.calls,
            new_calls: b.new_calls,
            share: b.share(),
        }
    }
}

/// The rows as one JSON document (see README for the fields).
pub fn render_json(rows: &[Row], window: &super::Window, now_unix: i64) -> String {
    let outcome = outcome(rows);
    let window_text = window.to_string();
    let report = JsonReport {
        window: &window_text,
        window_seconds: window.seconds(),
        now: iso8601(now_unix),
        outcome: match outcome {
            super::Outcome::Safe => "safe",
            super::Outcome::StillInUse => "still_in_use",
            super::Outcome::Unknown => "unknown",
        },
        exit_code: outcome.exit_code(),
        summary: summary(rows),
        numbers: rows
            .iter()
            .map(|r| JsonRow {
                number: &r.number,
                name: &r.name,
                phase: r.phase.as_str(),
                calls: r.calls,
                late_calls: r.late,
                new_number: &r.new_number,
                new_calls: r.new_calls,
                share: r.share,
                max_share: r.max_share,
                last_call: r.last_call.map(|t| iso8601(t.floor() as i64)),
                verdict: match r.verdict {
                    Verdict::NotAssessed => "not_assessed",
                    Verdict::SafeToRetire => "safe_to_retire",
                    Verdict::StillInUse { .. } => "still_in_use",
                    Verdict::Unknown(_) => "unknown",
                },
                reason: match &r.verdict {
                    Verdict::Unknown(gap) => Some(gap.to_string()),
                    _ => None,
                },
                trunks: r
                    .trunks
                    .iter()
                    .map(|(t, n)| JsonTrunk {
                        trunk: t,
                        calls: *n,
                    })
                    .collect(),
                buckets: r.buckets.iter().map(JsonBucket::from).collect(),
                trend: &r.trend,
            })
            .collect(),
    };
    // Serializing plain structs of strings and numbers cannot fail; NaN shares never occur
    // (shares are only computed from positive totals).
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        + "\n"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{line, observed, NOW};
    use super::super::{assess, PhaseName::*, Slice, Window};
    use super::*;

    #[test]
    fn render_aligns_columns_and_names_the_window() {
        let now = NOW; // 2025-06-01T00:00:00Z
        let mut fuzhou = line("059185666661", Retired);
        fuzhou.name = "Fujian provincial psychological-aid hotline".to_string();
        let mut obs = observed(
            &[
                ("059185666661", 30.0),
                ("059185666221", 2.0),
                ("059185666222", 0.0),
                ("059112356", 970.0),
            ],
            &[("059185666661", (now - 3 * 86_400) as f64 + 0.9)],
        );
        obs.trunks.insert(
            "059185666661".into(),
            [("fuzhou", 28.0), ("national", 2.0)]
                .map(|(t, v)| (t.to_string(), v))
                .into(),
        );
        let rows = assess(
            &[
                fuzhou,
                line("059185666221", Retired),
                line("059185666222", Parallel),
            ],
            &obs,
            now,
            7 * 86_400,
        );
        let text = render(&rows, "7d", now, &TimeZone::UTC);
        let want = "\
Legacy numbers over the last 7d, up to 2025-06-01T00:00:00Z

NUMBER        PHASE     CALLS  NEW NUMBER  NEW CALLS  SHARE  LAST CALL                      VERDICT                        NAME
059185666661  retired      30  059112356         970  3.00%  2025-05-29T00:00:00Z (3d ago)  still in use (3.00% >= 1.00%)  Fujian provincial psychological-aid hotline
059185666221  retired       2  059112356         970  0.21%  never                          safe to retire                 line 059185666221
059185666222  parallel      0  059112356         970  0.00%  never                          -                              line 059185666222

Who still dials them, and the trend:
  059185666661  by trunk: fuzhou 28, national 2
  059185666661  trend: too few buckets with calls to estimate (0 of 3)
  059185666221  by trunk: -
  059185666221  trend: too few buckets with calls to estimate (0 of 3)

NOT SAFE: 1 of 2 retired number(s) still carry calls at or above their threshold.
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn render_shows_a_dash_share_when_nobody_called() {
        let obs = observed(&[("059185666661", 0.0), ("059112356", 0.0)], &[]);
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 86_400);
        let text = render(&rows, "24h", 0, &TimeZone::UTC);
        let row = text.lines().nth(3).unwrap();
        assert_eq!(row, "059185666661  retired      0  059112356           0      -  never      safe to retire  line 059185666661");
        assert!(
            text.ends_with("\nOK: all 1 retired number(s) are below their retirement threshold.\n"),
            "{text}"
        );
    }

    #[test]
    fn buckets_and_trend_are_shown_per_number() {
        let mut obs = observed(&[("059185666661", 560.0), ("059112356", 3440.0)], &[]);
        let day = 86_400;
        for (i, (c, n)) in [(320.0, 680.0), (160.0, 840.0), (80.0, 920.0)]
            .into_iter()
            .enumerate()
        {
            let start = NOW - (3 - i as i64) * day;
            obs.buckets.push(Slice {
                start,
                end: start + day,
                calls: [("059185666661", c), ("059112356", n)]
                    .map(|(k, v)| (k.to_string(), v))
                    .into(),
            });
        }
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3 * day as u64);
        let text = render(&rows, "3d", NOW, &TimeZone::UTC);
        assert!(
            text.contains(
                "\n  059185666661  per 1d (legacy/area, oldest first): 320/1000 160/1000 80/1000\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n  059185666661  trend: at the current decline (the share halves every 1.0 d), below 1.00% around 2025-06-03T12:00:00Z\n"),
            "{text}"
        );
        // `--tz +08:00` (China time): the same instants, in the operator's zone.
        let china = crate::timeline::zone("+08:00").unwrap();
        let text = render(&rows, "3d", NOW, &china);
        assert!(
            text.contains("below 1.00% around 2025-06-03T20:00:00+08:00\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "up to {}",
                crate::timeline::in_zone(super::super::instant(NOW), &china)
            )),
            "{text}"
        );
        assert!(
            !text.contains("Z\n"),
            "no UTC time left in the table: {text}"
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut obs = observed(
            &[("059185666661", 3.0), ("059112356", 97.0)],
            &[("059185666661", (NOW - 60) as f64)],
        );
        obs.trunks
            .insert("059185666661".into(), [("fuzhou".to_string(), 3.0)].into());
        obs.buckets.push(Slice {
            start: NOW - 3600,
            end: NOW,
            calls: [("059185666661".to_string(), 3.0)].into(),
        });
        let rows = assess(&[line("059185666661", Retired)], &obs, NOW, 3600);
        let json = render_json(&rows, &Window::from_seconds(3600).unwrap(), NOW);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["window"], "1h");
        assert_eq!(v["window_seconds"], 3600);
        assert_eq!(v["now"], "2025-06-01T00:00:00Z");
        assert_eq!(v["outcome"], "still_in_use");
        assert_eq!(v["exit_code"], 1);
        assert!(v["summary"]
            .as_str()
            .unwrap()
            .starts_with("NOT SAFE: 1 of 1"));
        let n = &v["numbers"][0];
        assert_eq!(n["number"], "059185666661");
        assert_eq!(n["phase"], "retired");
        assert_eq!(n["calls"], 3);
        assert_eq!(n["late_calls"], 0);
        assert_eq!(n["new_number"], "059112356");
        assert_eq!(n["new_calls"], 97);
        assert_eq!(n["share"], 0.03);
        assert_eq!(n["max_share"], 0.01);
        assert_eq!(n["last_call"], "2025-05-31T23:59:00Z");
        assert_eq!(n["verdict"], "still_in_use");
        assert_eq!(n["reason"], serde_json::Value::Null);
        assert_eq!(n["trunks"][0]["trunk"], "fuzhou");
        assert_eq!(n["trunks"][0]["calls"], 3);
        assert_eq!(n["buckets"][0]["start"], "2025-05-31T23:00:00Z");
        assert_eq!(n["buckets"][0]["calls"], 3);
        assert_eq!(n["buckets"][0]["new_calls"], 0);
        assert_eq!(n["buckets"][0]["share"], 1.0);
        assert_eq!(n["trend"]["kind"], "too_few_points");
        assert_eq!(n["trend"]["points"], 1);
    }
}
