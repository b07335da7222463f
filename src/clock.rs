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
/// not invariant.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(quanta::Instant);

impl Stopwatch {
    /// Starts measuring.
    #[allow(clippy::disallowed_methods)] // the one place the monotonic clock is read
    pub fn start() -> Stopwatch {
        Stopwatch(quanta::Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    #[allow(clippy::disallowed_methods)] // `elapsed` reads the clock
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Seconds since the Unix epoch, as Prometheus gauges want them.
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
