//! Backend health: the up/down state machine driven by OPTIONS probes, and the set of backends
//! currently down that routing reads. Pure: probe results come in as values; sending probes,
//! timing them and publishing the set is `transport::probe`'s job.

use crate::peer::Transport;
use std::net::SocketAddr;
use std::time::Duration;

/// How backends are probed (`[probe]` in the mappings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Time between probes of one backend; a probe unanswered by the next one is a miss.
    pub interval: Duration,
    /// Consecutive misses that mark an up backend down.
    pub down_after: u32,
    /// Consecutive successes that mark a down backend up.
    pub up_after: u32,
    /// Only a 2xx counts as a success (by default any response does, as in Kamailio's
    /// dispatcher: a backend that answers at all is alive).
    pub require_2xx: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            interval: Duration::from_secs(2),
            down_after: 3,
            up_after: 2,
            require_2xx: false,
        }
    }
}

impl Policy {
    /// Longest time from a backend's death to its being marked down.
    pub fn detection_time(&self) -> Duration {
        self.interval * (self.down_after + 1)
    }
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A final response with this status.
    Answered(u16),
    /// No final response before the next probe was due.
    Missed,
}

/// One backend's state: up or down, and the run of results pointing the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    up: bool,
    run: u32,
}

impl Default for State {
    /// A backend starts up, so a fresh gateway takes calls at once; a dead one is found within
    /// [`Policy::detection_time`].
    fn default() -> State {
        State { up: true, run: 0 }
    }
}

impl State {
    /// Whether the backend takes new calls.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The state after `probe`; `Some(up)` when it changed.
    pub fn observe(&mut self, probe: Probe, policy: &Policy) -> Option<bool> {
        let ok = match probe {
            // A provisional response says nothing yet; the final one will.
            Probe::Answered(s) if s < 200 => return None,
            Probe::Answered(s) if policy.require_2xx => (200..300).contains(&s),
            Probe::Answered(_) => true,
            Probe::Missed => false,
        };
        if ok == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.up {
            policy.down_after
        } else {
            policy.up_after
        };
        if self.run >= needed.max(1) {
            self.up = ok;
            self.run = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// A backend as probed and routed: where and how it is reached.
pub type Key = (SocketAddr, Transport);

/// The backends currently marked down, sorted; shared read-only with every worker and replaced
/// whole when a backend changes state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Down(Vec<Key>);

impl Down {
    /// The set of `keys`.
    pub fn new(mut keys: Vec<Key>) -> Down {
        keys.sort_unstable_by_key(|(a, t)| (*a, *t as u8));
        keys.dedup();
        Down(keys)
    }

    /// Nothing down (probing off, or all alive).
    pub fn none() -> Down {
        Down(Vec::new())
    }

    /// Whether the backend at `addr` over `transport` is down.
    pub fn contains(&self, addr: SocketAddr, transport: Transport) -> bool {
        // Usually empty or a handful: a linear scan beats hashing.
        self.0.iter().any(|(a, t)| *a == addr && *t == transport)
    }

    /// How many backends are down.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether every backend is up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: &Policy, probes: &[Probe]) -> Vec<(bool, Option<bool>)> {
        let mut s = State::default();
        probes
            .iter()
            .map(|p| {
                let changed = s.observe(*p, policy);
                (s.is_up(), changed)
            })
            .collect()
    }

    use Probe::{Answered, Missed};

    #[test]
    fn three_misses_in_a_row_mark_down_and_two_answers_mark_up() {
        let p = Policy::default();
        let got = run(
            &p,
            &[
                Missed,
                Missed,
                Answered(200), // the run of misses is broken
                Missed,
                Missed,
                Missed, // third in a row: down
                Answered(200),
                Missed, // the run of successes is broken
                Answered(404),
                Answered(200), // second in a row: up (any response counts)
            ],
        );
        let changes: Vec<(usize, bool)> = got
            .iter()
            .enumerate()
            .filter_map(|(i, (_, c))| c.map(|c| (i, c)))
            .collect();
        assert_eq!(changes, vec![(5, false), (9, true)]);
        assert!(got[..5].iter().all(|(up, _)| *up));
        assert!(got[5..9].iter().all(|(up, _)| !*up));
    }

    #[test]
    fn with_require_2xx_an_error_response_is_a_miss_and_provisionals_never_count() {
        let p = Policy {
            require_2xx: true,
            down_after: 2,
            ..Policy::default()
        };
        let got = run(&p, &[Answered(503), Answered(100), Answered(503)]);
        assert_eq!(got, vec![(true, None), (true, None), (false, Some(false))]);
        let lenient = run(&Policy::default(), &[Answered(503); 5]);
        assert!(lenient.iter().all(|(up, c)| *up && c.is_none()));
    }

    #[test]
    fn the_down_set_answers_by_address_and_transport() {
        let a: SocketAddr = "127.0.0.1:5091".parse().unwrap_or_else(|_| unreachable!());
        let d = Down::new(vec![(a, Transport::Udp), (a, Transport::Udp)]);
        assert_eq!(d.len(), 1);
        assert!(d.contains(a, Transport::Udp));
        assert!(!d.contains(a, Transport::Tcp));
        assert!(Down::none().is_empty());
        assert_eq!(Policy::default().detection_time(), Duration::from_secs(8));
    }
}
