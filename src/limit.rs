//! Rate limits for new calls: token buckets, kept as GCRA (the generic cell rate algorithm: one
//! "theoretical arrival time" per bucket instead of a token count and a refill time), so a bucket
//! is one `AtomicU64` updated by compare-and-swap. The buckets are shared by every UDP worker
//! and TCP connection: a trunk's limit is the gateway's limit for that trunk, however its
//! traffic spreads over workers. The decision [`gcra`] is pure; [`Bucket`] only adds the
//! atomic. Time is a monotonic nanosecond count given by the edge.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A rate limit: `per_second` new calls sustained, `burst` at once from idle. `per_second = 0`
/// means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained calls per second.
    pub per_second: u32,
    /// Calls allowed back to back after a quiet period.
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_second: 0,
        burst: 0,
    };

    /// The protective default per trunk: far above a hotline's real peak (a province's whole
    /// hotline takes a few calls a second), far below what a flood can send.
    pub const TRUNK_DEFAULT: Rate = Rate {
        per_second: 200,
        burst: 400,
    };
}

/// The limits a trunk's new calls are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For the whole trunk.
    pub trunk: Rate,
    /// For each source address of the trunk.
    pub source: Rate,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            trunk: Rate::TRUNK_DEFAULT,
            source: Rate::TRUNK_DEFAULT,
        }
    }
}

/// GCRA: with the bucket's theoretical arrival time `tat` and the time `now` (ns), whether one
/// more call fits `rate`; `Some(new tat)` if it does.
pub fn gcra(tat: u64, now: u64, rate: Rate) -> Option<u64> {
    if rate.per_second == 0 {
        return Some(tat);
    }
    let interval = 1_000_000_000 / u64::from(rate.per_second);
    let tolerance = interval.saturating_mul(u64::from(rate.burst.max(1) - 1));
    let start = tat.max(now);
    (start - now <= tolerance).then(|| start.saturating_add(interval))
}

/// One token bucket, lock-free.
#[derive(Debug, Default)]
pub struct Bucket(AtomicU64);

impl Bucket {
    /// Takes one token at `now` (ns) if `rate` allows.
    pub fn take(&self, now: u64, rate: Rate) -> bool {
        let mut tat = self.0.load(Ordering::Relaxed);
        loop {
            let Some(next) = gcra(tat, now, rate) else {
                return false;
            };
            match self
                .0
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }
}

/// Why a new call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The trunk as a whole is over its rate.
    Trunk,
    /// This source address is over its rate.
    Source,
}

impl Limited {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limited::Trunk => "trunk",
            Limited::Source => "source",
        }
    }
}

/// Trunk buckets by the trunk's position in the mappings (positions beyond share buckets
/// modulo); source buckets by a hash of the address (addresses that collide share a bucket,
/// which can only make the limit stricter). Fixed size: a flood from many addresses cannot
/// grow it.
pub struct Limiter {
    trunks: Box<[Bucket]>,
    sources: Box<[Bucket]>,
}

const TRUNK_SLOTS: usize = 256;
const SOURCE_SLOTS: usize = 4096;

impl Default for Limiter {
    fn default() -> Limiter {
        let buckets = |n: usize| (0..n).map(|_| Bucket::default()).collect();
        Limiter {
            trunks: buckets(TRUNK_SLOTS),
            sources: buckets(SOURCE_SLOTS),
        }
    }
}

fn slot(ip: IpAddr) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    usize::try_from(h % SOURCE_SLOTS as u64).unwrap_or(0)
}

impl Limiter {
    /// Admits one new call from `source` on the trunk at position `trunk` at `now` (ns), or says
    /// which limit it is over. The source bucket is asked first, so a flooding address spends
    /// its own budget and not its trunk's.
    pub fn admit(
        &self,
        trunk: usize,
        source: IpAddr,
        limits: &Limits,
        now: u64,
    ) -> Result<(), Limited> {
        let s = self.sources.get(slot(source)).ok_or(Limited::Source)?;
        if !s.take(now, limits.source) {
            return Err(Limited::Source);
        }
        let t = self.trunks.get(trunk % TRUNK_SLOTS).ok_or(Limited::Trunk)?;
        if !t.take(now, limits.trunk) {
            return Err(Limited::Trunk);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate {
            per_second: 100,
            burst: 5,
        };
        let b = Bucket::default();
        let t0 = 1_000 * MS;
        let burst = (0..10).filter(|_| b.take(t0, rate)).count();
        assert_eq!(burst, 5);
        // 10 ms per token at 100/s.
        assert!(!b.take(t0 + 9 * MS, rate));
        assert!(b.take(t0 + 10 * MS, rate));
        assert!(!b.take(t0 + 10 * MS, rate));
        // One second at a steady 1000/s offered: about 100 admitted.
        let admitted = (0..1000)
            .filter(|i| b.take(t0 + 20 * MS + i * MS, rate))
            .count();
        assert!((99..=101).contains(&admitted), "{admitted}");
        // After a quiet second the full burst is back, no more.
        let later = t0 + 3000 * MS;
        assert_eq!((0..10).filter(|_| b.take(later, rate)).count(), 5);
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let b = Bucket::default();
        assert!((0..10_000).all(|_| b.take(5, Rate::UNLIMITED)));
    }

    #[test]
    fn a_flooding_source_spends_its_own_budget_not_its_trunks() {
        let l = Limiter::default();
        let limits = Limits {
            trunk: Rate {
                per_second: 10,
                burst: 10,
            },
            source: Rate {
                per_second: 6,
                burst: 6,
            },
        };
        let flood: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.9".parse().unwrap();
        let now = 7 * MS;
        let results: Vec<_> = (0..8).map(|_| l.admit(0, flood, &limits, now)).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 6);
        assert_eq!(results[7], Err(Limited::Source));
        // The other source gets the rest of the trunk's burst (4), then the trunk is full.
        let more: Vec<_> = (0..5).map(|_| l.admit(0, other, &limits, now)).collect();
        assert_eq!(more.iter().filter(|r| r.is_ok()).count(), 4);
        assert_eq!(more[4], Err(Limited::Trunk));
        // Another trunk has its own bucket.
        assert_eq!(l.admit(1, other, &limits, now), Ok(()));
        assert_eq!(l.admit(1, other, &limits, now), Err(Limited::Source));
    }
}
