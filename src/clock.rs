//! The gateway's only reads of the system clock. Core code receives `now` as a parameter; the
//! edges get it from a [`Clock`], which tests and `--now` dry runs replace.

use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> SystemTime;
}

/// The machine's clock, optionally shifted so that start-up happens at a chosen instant
/// (`dualgate run --now 2025-04-08T09:00:00+08:00` rehearses a future or past date).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    ahead: Duration,
    behind: Duration,
}

impl SystemClock {
    /// The real time.
    pub fn real() -> SystemClock {
        SystemClock {
            ahead: Duration::ZERO,
            behind: Duration::ZERO,
        }
    }

    /// A clock that reads `start` now and then advances in real time.
    pub fn starting_at(start: SystemTime) -> SystemClock {
        let real = Self::real().now();
        match start.duration_since(real) {
            Ok(ahead) => SystemClock {
                ahead,
                behind: Duration::ZERO,
            },
            Err(e) => SystemClock {
                ahead: Duration::ZERO,
                behind: e.duration(),
            },
        }
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the wall clock is read
    fn now(&self) -> SystemTime {
        let t = SystemTime::now() + self.ahead;
        t.checked_sub(self.behind).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Measures how long a message spends inside the gateway (monotonic). Read from the CPU's
/// time-stamp counter, calibrated once per process (quanta, which the metrics crates already
/// use): every message takes two readings, and a pair costs about 30 ns where the system's
/// monotonic clock costs 50 to 75 ns. quanta falls back to that clock where the counter is
/// not invariant. A reading is the raw counter, scaled to nanoseconds only once, when the
/// time is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(u64);

/// The calibrated counter every [`Stopwatch`] reads.
static COUNTER: std::sync::LazyLock<quanta::Clock> = std::sync::LazyLock::new(quanta::Clock::new);

impl Stopwatch {
    /// Starts measuring.
    pub fn start() -> Stopwatch {
        Stopwatch(COUNTER.raw())
    }

    /// Time since [`Stopwatch::start`] (zero if the counter went backwards, as it may
    /// between cores whose counters disagree).
    pub fn elapsed(&self) -> Duration {
        COUNTER.delta(self.0, COUNTER.raw())
    }
}

/// Seconds since the Unix epoch, as Prometheus gauges want them.
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopwatch_measures_at_least_the_time_slept_and_keeps_counting() {
        let watch = Stopwatch::start();
        std::thread::sleep(Duration::from_millis(20));
        let first = watch.elapsed();
        // The scaled counter is calibrated against the monotonic clock: a sleep is never
        // measured shorter than it was (a little slack for the calibration's rounding).
        assert!(first >= Duration::from_millis(19), "{first:?}");
        assert!(first < Duration::from_secs(20), "{first:?}");
        std::thread::sleep(Duration::from_millis(5));
        assert!(watch.elapsed() > first);
    }
}
