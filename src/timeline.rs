//! Every instant at which routing changes by itself: each legacy number entering its parallel,
//! retired and decommissioned phases, and each area's 12356 launch. What `check --upcoming`
//! lists, what `route` means by "until T, then …", what the running gateway logs as it passes
//! and what the next-boundary gauges show. Pure: the instant is a parameter.

use crate::calendar::{phase_at, PhaseName, Treatment};
use crate::config::{QueueId, Snapshot};
use crate::mapping::{Area, Legacy, Mappings};
use std::time::SystemTime;

/// One instant at which a number's routing changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boundary<'m> {
    /// From this instant on (a boundary instant belongs to the later phase).
    pub at: SystemTime,
    /// What changes.
    pub what: What<'m>,
}

/// The subject of a [`Boundary`] and its state after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum What<'m> {
    /// A legacy number enters `phase`.
    Legacy {
        /// The number.
        legacy: &'m Legacy,
        /// Its phase from the boundary on.
        phase: PhaseName,
    },
    /// The new number starts answering in an area.
    Launch {
        /// The area.
        area: &'m Area,
    },
}

impl<'m> What<'m> {
    /// The number whose routing changes (the legacy number, or the area's new number).
    pub fn number(&self) -> &'m str {
        match self {
            What::Legacy { legacy, .. } => &legacy.number,
            What::Launch { area } => &area.new_number,
        }
    }

    /// The state from the boundary on: a phase name, or `launched`.
    pub fn state(&self) -> &'static str {
        match self {
            What::Legacy { phase, .. } => phase.as_str(),
            What::Launch { .. } => "launched",
        }
    }
}

/// When the new number starts answering in `area`: `None` if it always has (no launch, or
/// `answer_before_launch`).
pub fn launch(area: &Area) -> Option<SystemTime> {
    if area.answer_before_launch {
        None
    } else {
        area.launch
    }
}

/// Every boundary of every number, in time order (legacy numbers before areas at the same
/// instant, then in file order).
pub fn boundaries(m: &Mappings) -> Vec<Boundary<'_>> {
    let mut all = Vec::new();
    for l in &m.legacy {
        let s = &l.schedule;
        let mut push = |at, phase| {
            all.push(Boundary {
                at,
                what: What::Legacy { legacy: l, phase },
            });
        };
        push(s.parallel_from, PhaseName::Parallel);
        push(s.retired_from, PhaseName::Retired);
        if let Some(d) = s.decommissioned_from {
            push(d, PhaseName::Decommissioned);
        }
    }
    for a in &m.areas {
        if let Some(at) = launch(a) {
            all.push(Boundary {
                at,
                what: What::Launch { area: a },
            });
        }
    }
    // Stable: same-instant boundaries keep file order.
    all.sort_by_key(|b| b.at);
    all
}

/// The boundaries still ahead at `now`.
pub fn upcoming(m: &Mappings, now: SystemTime) -> Vec<Boundary<'_>> {
    boundaries(m).into_iter().filter(|b| b.at > now).collect()
}

/// The boundaries passed in `(after, now]`: what a running gateway crossed since it last
/// looked.
pub fn passed(m: &Mappings, after: SystemTime, now: SystemTime) -> Vec<Boundary<'_>> {
    boundaries(m)
        .into_iter()
        .filter(|b| b.at > after && b.at <= now)
        .collect()
}

/// A legacy number's next boundary after `now`, if any remains.
pub fn next_for(l: &Legacy, now: SystemTime) -> Option<(SystemTime, PhaseName)> {
    let s = &l.schedule;
    let current = phase_at(s, now).name();
    let next = match current {
        PhaseName::Before => Some((s.parallel_from, PhaseName::Parallel)),
        PhaseName::Parallel => Some((s.retired_from, PhaseName::Retired)),
        PhaseName::Retired => s
            .decommissioned_from
            .map(|d| (d, PhaseName::Decommissioned)),
        PhaseName::Decommissioned => None,
    };
    next.filter(|(at, _)| *at > now)
}

/// The offset the mapping files are written in and instants are shown in: China Standard Time.
pub const ZONE: jiff::tz::Offset = jiff::tz::Offset::constant(8);

/// An instant in the mappings' zone, to the second: `2025-05-07T00:00:00+08:00`.
pub fn local(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        // RFC 3339 via Display (strftime is ~10x slower; a national file formats 60 000).
        Ok(ts) => whole_seconds(ts).display_with_offset(ZONE).to_string(),
        Err(_) => format!("{t:?}"),
    }
}

/// An instant in UTC, to the second: `2025-05-06T16:00:00Z`.
pub fn utc(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => whole_seconds(ts).to_string(),
        Err(_) => format!("{t:?}"),
    }
}

/// An instant in `tz`, to the second: `2025-05-07T00:00:00+08:00`, or the [`utc`] form
/// (`…Z`) when `tz` is UTC.
pub fn in_zone(t: SystemTime, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) if *tz != jiff::tz::TimeZone::UTC => {
            let ts = whole_seconds(ts);
            ts.display_with_offset(tz.to_offset(ts)).to_string()
        }
        _ => utc(t),
    }
}

/// A time zone as an operator names it: `UTC`, an offset (`+08:00`) or an IANA name
/// (`Asia/Shanghai`, read from the system's tzdata).
///
/// # Errors
/// What is wrong with the name, as a sentence.
pub fn zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(jiff::tz::TimeZone::UTC);
    }
    if let Some(rest) = name.strip_prefix(['+', '-']) {
        let sign = if name.starts_with('-') { -1 } else { 1 };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let offset = match (h.parse::<i32>(), m.parse::<i32>()) {
            (Ok(hv), Ok(mv))
                if (1..=2).contains(&h.len())
                    && (1..=2).contains(&m.len())
                    && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
                    && mv < 60 =>
            {
                jiff::tz::Offset::from_seconds(sign * (hv * 3600 + mv * 60)).ok()
            }
            _ => None,
        };
        return offset
            .map(jiff::tz::TimeZone::fixed)
            .ok_or_else(|| format!("`{name}` is not an offset like +08:00"));
    }
    jiff::tz::TimeZone::get(name).map_err(|_| {
        format!(
            "unknown time zone `{name}`: give an IANA name such as Asia/Shanghai (read from the \
             system's tzdata, /usr/share/zoneinfo), an offset such as +08:00, or UTC"
        )
    })
}

/// `ts` to the second, so Display prints no fraction (timestamps before 1970 round toward
/// the past, as strftime's `%S` did).
fn whole_seconds(ts: jiff::Timestamp) -> jiff::Timestamp {
    let secs = ts.as_second() - i64::from(ts.subsec_nanosecond() < 0);
    jiff::Timestamp::from_second(secs).unwrap_or(ts)
}

/// Both: `2025-05-07T00:00:00+08:00 (2025-05-06T16:00:00Z)`.
pub fn local_and_utc(t: SystemTime) -> String {
    format!("{} ({})", local(t), utc(t))
}

/// Time from `now` to `t`, to the minute beyond an hour: `in 16d 14h 5m`, `in 7s`, `3h ago`.
pub fn countdown(now: SystemTime, t: SystemTime) -> String {
    let (secs, ahead) = match t.duration_since(now) {
        Ok(d) => (d.as_secs(), true),
        Err(e) => (e.duration().as_secs(), false),
    };
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    };
    if ahead {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// What callers get from the boundary on, in words: "announce via queue announcement".
pub fn describe(b: &Boundary<'_>, snap: &Snapshot) -> String {
    let queue = |i: QueueId| snap.queue(i).name.as_str();
    match b.what {
        What::Launch { area } => format!(
            "{} starts answering in {} (queue {})",
            area.new_number,
            area.name,
            queue(area.queue)
        ),
        What::Legacy { legacy, phase } => match phase {
            PhaseName::Before => format!("routes to queue {}, unmarked", queue(legacy.queue)),
            PhaseName::Parallel => format!(
                "parallel: routes to queue {}, marked as a legacy call",
                queue(legacy.queue)
            ),
            PhaseName::Retired => {
                let new = legacy
                    .area(&snap.mappings.areas)
                    .map_or(snap.mappings.new_number.as_str(), |a| a.new_number.as_str());
                match &legacy.schedule.when_retired {
                    Treatment::Route => format!(
                        "retired: still routes to queue {} (grace period, marked)",
                        queue(legacy.queue)
                    ),
                    Treatment::Announce { queue: q } => {
                        format!("retired: announce via queue {}", queue(*q))
                    }
                    Treatment::Redirect { status } => {
                        format!("retired: redirect {status} to {new}")
                    }
                    Treatment::Reject { status, reason } => {
                        format!("retired: reject {status} \"{reason}\"")
                    }
                }
            }
            PhaseName::Decommissioned => {
                "decommissioned: answers 410 Gone (number changed)".to_string()
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::validate;
    use std::path::Path;
    use std::time::Duration;

    const FILE: &str = include_str!("../mappings/fujian.toml");

    fn at(s: &str) -> SystemTime {
        crate::config::parse_instant(s).unwrap()
    }

    #[test]
    fn fujian_boundaries_are_the_launch_then_the_retirement() {
        let snap = validate(Path::new("fujian.toml"), FILE).unwrap();
        let all = boundaries(&snap.mappings);
        // 3 legacy numbers x (parallel, retired) + 9 areas' launches.
        assert_eq!(all.len(), 15);
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
        let before = at("2025-04-06T23:59:59+08:00");
        let next: Vec<(&str, &str)> = upcoming(&snap.mappings, before)
            .iter()
            .take(4)
            .map(|b| (b.what.number(), b.what.state()))
            .collect();
        assert_eq!(
            next,
            vec![
                ("059185666661", "parallel"),
                ("059185666221", "parallel"),
                ("059185666222", "parallel"),
                ("059112356", "launched"),
            ]
        );
        assert!(upcoming(&snap.mappings, at("2025-05-07T00:00:00+08:00")).is_empty());
    }

    #[test]
    fn a_boundary_is_passed_at_its_instant_not_before() {
        let snap = validate(Path::new("fujian.toml"), FILE).unwrap();
        let b = at("2025-05-07T00:00:00+08:00");
        let ms = Duration::from_millis(1);
        assert!(passed(&snap.mappings, b - ms - ms, b - ms).is_empty());
        let crossed = passed(&snap.mappings, b - ms, b);
        assert_eq!(crossed.len(), 3);
        assert_eq!(
            describe(&crossed[0], &snap),
            "retired: announce via queue announcement"
        );
        assert!(passed(&snap.mappings, b, b + ms).is_empty());
    }

    #[test]
    fn instants_show_in_china_standard_time_and_utc_with_a_countdown() {
        let t = at("2025-05-07T00:00:00+08:00");
        assert_eq!(
            local_and_utc(t),
            "2025-05-07T00:00:00+08:00 (2025-05-06T16:00:00Z)"
        );
        let s = Duration::from_secs(1);
        assert_eq!(countdown(t - s * 7, t), "in 7s");
        assert_eq!(countdown(t - s * 125, t), "in 2m 5s");
        assert_eq!(countdown(t - s * 3700, t), "in 1h 1m");
        assert_eq!(
            countdown(t - s * (86_400 * 16 + 3600 * 14 + 300), t),
            "in 16d 14h 5m"
        );
        assert_eq!(countdown(t + s * 3600, t), "1h 0m ago");
    }

    #[test]
    fn next_boundary_follows_the_phase() {
        let snap = validate(Path::new("fujian.toml"), FILE).unwrap();
        let l = &snap.mappings.legacy[0];
        let cases = [
            (
                "2025-04-06T00:00:00+08:00",
                Some(("2025-04-07T00:00:00+08:00", "parallel")),
            ),
            (
                "2025-04-07T00:00:00+08:00",
                Some(("2025-05-07T00:00:00+08:00", "retired")),
            ),
            ("2025-05-07T00:00:00+08:00", None),
        ];
        for (now, want) in cases {
            let got = next_for(l, at(now)).map(|(t, p)| (t, p.as_str()));
            assert_eq!(got, want.map(|(t, p)| (at(t), p)), "{now}");
        }
    }

    #[test]
    fn zones_are_named_as_an_operator_writes_them() {
        use jiff::tz::{Offset, TimeZone};
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_746_547_200);
        for (name, want) in [
            ("UTC", "2025-05-06T16:00:00Z"),
            ("utc", "2025-05-06T16:00:00Z"),
            ("+08:00", "2025-05-07T00:00:00+08:00"),
            ("+8", "2025-05-07T00:00:00+08:00"),
            ("-05:30", "2025-05-06T10:30:00-05:30"),
        ] {
            assert_eq!(in_zone(t, &zone(name).unwrap()), want, "{name}");
        }
        assert_eq!(
            zone("+08:00").unwrap(),
            TimeZone::fixed(Offset::constant(8))
        );
        for bad in ["+8:5x", "+123", "+08:60", "+", "Nowhere/Bogus", "++08"] {
            let e = zone(bad).unwrap_err();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
        // IANA names come from the system's tzdata, where it is installed.
        if std::path::Path::new("/usr/share/zoneinfo/Asia/Shanghai").exists() {
            assert_eq!(
                in_zone(t, &zone("Asia/Shanghai").unwrap()),
                "2025-05-07T00:00:00+08:00"
            );
        }
    }
}
