//! A queue's service hours: whether it answers at an instant. Hours are written in China
//! Standard Time (UTC+08:00, no daylight saving), as the mapping files' datetimes are. Like the
//! migration calendar, a boundary instant belongs to the later period: a queue open
//! `08:00-22:00` is open at 08:00:00 exactly and closed at 22:00:00 exactly. Pure: the instant is
//! a parameter.

use std::fmt;
use std::time::SystemTime;

/// Seconds in a day.
const DAY: u32 = 86_400;
/// China Standard Time's offset from UTC, in seconds.
const CST_OFFSET: u64 = 8 * 3600;

/// One daily period `[from, until)` in seconds after CST midnight; `until < from` runs over
/// midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    from: u32,
    until: u32,
}

/// The periods a queue answers in; empty means always.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hours(Vec<Span>);

/// Why a period does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Not `HH:MM-HH:MM`.
    #[error("`{0}` is not a period HH:MM-HH:MM (China Standard Time), e.g. 08:00-22:00")]
    Form(String),
    /// Start and end are the same instant.
    #[error("`{0}` is empty; write 00:00-24:00 for a queue open all day")]
    Empty(String),
}

fn clock_time(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(DAY),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

impl Span {
    /// Parses `HH:MM-HH:MM`; `24:00` ends a day.
    ///
    /// # Errors
    /// [`HoursError`] saying what is wrong.
    pub fn parse(s: &str) -> Result<Span, HoursError> {
        let form = || HoursError::Form(s.to_string());
        let (a, b) = s.split_once('-').ok_or_else(form)?;
        let (from, until) = (
            clock_time(a).ok_or_else(form)?,
            clock_time(b).ok_or_else(form)?,
        );
        if from == DAY {
            return Err(form());
        }
        if from == until {
            return Err(HoursError::Empty(s.to_string()));
        }
        Ok(Span { from, until })
    }

    fn contains(self, t: u32) -> bool {
        if self.from < self.until {
            self.from <= t && t < self.until
        } else {
            t >= self.from || t < self.until
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        write!(f, "{}-{}", hm(self.from), hm(self.until))
    }
}

impl Hours {
    /// Open in any of `spans`; no spans means always open.
    pub fn new(spans: Vec<Span>) -> Hours {
        Hours(spans)
    }

    /// Whether the queue answers at `now`.
    pub fn open_at(&self, now: SystemTime) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let of_day = u32::try_from((secs + CST_OFFSET) % u64::from(DAY)).unwrap_or(0);
        self.0.iter().any(|s| s.contains(of_day))
    }

    /// Whether hours are configured at all.
    pub fn is_always(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("always");
        }
        let spans: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{} CST", spans.join(", "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_instant;

    fn hours(spans: &[&str]) -> Hours {
        Hours::new(spans.iter().map(|s| Span::parse(s).unwrap()).collect())
    }

    #[test]
    fn a_boundary_instant_belongs_to_the_later_period() {
        let day = hours(&["08:00-22:00"]);
        let cases = [
            ("2025-06-01T07:59:59.999+08:00", false),
            ("2025-06-01T08:00:00+08:00", true),
            ("2025-06-01T00:00:00Z", true), // 08:00 CST
            ("2025-06-01T21:59:59.999+08:00", true),
            ("2025-06-01T22:00:00+08:00", false),
            ("2025-06-01T23:30:00+08:00", false),
        ];
        for (at, want) in cases {
            assert_eq!(day.open_at(parse_instant(at).unwrap()), want, "{at}");
        }
    }

    #[test]
    fn overnight_and_all_day_periods() {
        let night = hours(&["22:00-06:00"]);
        let all = hours(&["00:00-24:00"]);
        let cases = [
            ("2025-06-01T21:59:59+08:00", false, true),
            ("2025-06-01T22:00:00+08:00", true, true),
            ("2025-06-02T00:00:00+08:00", true, true),
            ("2025-06-02T05:59:59+08:00", true, true),
            ("2025-06-02T06:00:00+08:00", false, true),
        ];
        for (at, n, a) in cases {
            let t = parse_instant(at).unwrap();
            assert_eq!((night.open_at(t), all.open_at(t)), (n, a), "{at}");
        }
        assert!(Hours::default().open_at(SystemTime::UNIX_EPOCH));
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in [
            "8:00-22:00",
            "08:00",
            "08:00-25:00",
            "24:00-06:00",
            "08:60-09:00",
        ] {
            assert!(
                matches!(Span::parse(bad), Err(HoursError::Form(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Span::parse("08:00-08:00"),
            Err(HoursError::Empty(_))
        ));
        assert_eq!(
            Span::parse("00:00-24:00").unwrap().to_string(),
            "00:00-24:00"
        );
    }
}
