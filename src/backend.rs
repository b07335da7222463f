//! Which backend of which queue a new call goes to: the queue's service hours, its backends that
//! are up, and its overflow queue when it cannot answer. Pure: the down-set and the instant are
//! parameters.

use crate::config::{Backend, Queue, QueueId, Snapshot};
use crate::health::Down;
use crate::sip;
use std::time::SystemTime;

/// Why a queue did not take a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Outside its service hours.
    Closed,
    /// Every backend is marked down.
    AllDown,
}

impl Why {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Why; 2] = [Why::Closed, Why::AllDown];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Closed => "closed",
            Why::AllDown => "all_down",
        }
    }
}

/// Where a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick<'s> {
    /// To `backend` of queue `queue`; `overflowed` says why the call left its first queue.
    To {
        /// Index of the queue that takes the call.
        queue: QueueId,
        /// The chosen backend.
        backend: &'s Backend,
        /// Why the first queue did not take it, when it overflowed.
        overflowed: Option<Why>,
    },
    /// Nowhere: the last queue tried (with no overflow left) could not take it, because of `why`.
    Nowhere {
        /// Index of the last queue tried.
        queue: QueueId,
        /// Why it could not.
        why: Why,
    },
}

/// Rendezvous (highest-random-weight) choice of a backend among those up, by Call-ID: a call
/// whose backend is up keeps it, and a dead backend's calls spread evenly over the rest
/// (each goes to its own second choice), never all onto one neighbour.
pub fn choose_up<'b>(
    backends: &'b [Backend],
    call_id: &[u8],
    down: &Down,
    probed: bool,
) -> Option<&'b Backend> {
    choose_up_keyed(backends, sip::hash64(&[call_id]), down, probed)
}

/// [`choose_up`] by the Call-ID's rendezvous key (`hash64(&[call_id])`, as
/// [`sip::Branch::of_top_keyed`] gives it).
pub fn choose_up_keyed<'b>(
    backends: &'b [Backend],
    call_key: u64,
    down: &Down,
    probed: bool,
) -> Option<&'b Backend> {
    let up = |b: &&Backend| !probed || !down.contains(b.addr, b.transport);
    let i =
        sip::branch::rendezvous_keyed(call_key, backends.iter().filter(up).map(|b| b.key_hash))?;
    backends.iter().filter(up).nth(i)
}

/// Whether `q` can take a new call at `now`.
///
/// # Errors
/// Why it cannot.
pub fn available(q: &Queue, down: &Down, now: SystemTime) -> Result<(), Why> {
    if !q.hours.open_at(now) {
        return Err(Why::Closed);
    }
    let alive = !q.probe
        || q.backends
            .iter()
            .any(|b| !down.contains(b.addr, b.transport));
    if alive {
        Ok(())
    } else {
        Err(Why::AllDown)
    }
}

/// Where a new call for `queue` goes: there if it is open and has a backend up, else along its
/// overflow chain (validation refuses cycles; the walk is bounded anyway).
pub fn pick<'s>(
    snap: &'s Snapshot,
    queue: QueueId,
    call_id: &[u8],
    down: &Down,
    now: SystemTime,
) -> Pick<'s> {
    pick_keyed(snap, queue, sip::hash64(&[call_id]), down, now)
}

/// [`pick`] by the Call-ID's rendezvous key (`hash64(&[call_id])`, as
/// [`sip::Branch::of_top_keyed`] gives it beside the branch).
pub fn pick_keyed<'s>(
    snap: &'s Snapshot,
    queue: QueueId,
    call_key: u64,
    down: &Down,
    now: SystemTime,
) -> Pick<'s> {
    let mut at = queue;
    let mut first_why = None;
    let mut why = Why::AllDown;
    for _ in 0..=snap.queues.len() {
        let q = snap.queue(at);
        match available(q, down, now) {
            Ok(()) => {
                if let Some(backend) = choose_up_keyed(&q.backends, call_key, down, q.probe) {
                    return Pick::To {
                        queue: at,
                        backend,
                        overflowed: first_why,
                    };
                }
            }
            Err(w) => why = w,
        }
        first_why.get_or_insert(why);
        match q.overflow {
            Some(next) => at = next,
            None => break,
        }
    }
    Pick::Nowhere { queue: at, why }
}

/// What happens to a new call for `queue` at `now` with every backend up, and what would if its
/// backends were down: one line per step, for `dualgate route`.
pub fn explain(snap: &Snapshot, queue: QueueId, now: SystemTime) -> Vec<String> {
    let name = |i: QueueId| snap.queue(i).name.as_str();
    let f = snap.failover;
    let nowhere = format!("{} with Retry-After: {}", f.status, f.retry_after);
    let mut lines = Vec::new();
    let mut at = queue;
    for _ in 0..=snap.queues.len() {
        let q = snap.queue(at);
        let open = q.hours.open_at(now);
        let next = q
            .overflow
            .map_or_else(|| nowhere.clone(), |o| format!("overflow to {}", name(o)));
        lines.push(format!(
            "queue {}: hours {}: {}; if all its backends are down: {next}",
            q.name,
            q.hours,
            if open { "open" } else { "closed" },
        ));
        if open {
            lines.push(format!("takes the call (backends up): {}", q.name));
            return lines;
        }
        match q.overflow {
            Some(o) => {
                lines.push(format!("{} is closed: overflow to {}", q.name, name(o)));
                at = o;
            }
            None => {
                lines.push(format!(
                    "{} is closed, no overflow: the caller gets {nowhere}",
                    q.name
                ));
                return lines;
            }
        }
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{parse_instant, validate};
    use crate::peer::Transport;
    use std::path::Path;

    const FILE: &str = r#"
[gateway]
advertised = "192.0.2.10:5060"
[new_number]
number = "12356"
[[queue]]
name = "fuzhou"
backends = ["sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.3", "sip:10.0.0.4"]
overflow = "provincial"
hours = ["08:00-22:00"]
[[queue]]
name = "provincial"
backends = ["sip:10.0.1.1"]
[[area]]
code = "0591"
queue = "fuzhou"
"#;

    fn snap() -> Snapshot {
        validate(Path::new("m.toml"), FILE).unwrap()
    }

    fn down(addrs: &[&str]) -> Down {
        Down::new(
            addrs
                .iter()
                .map(|a| (format!("{a}:5060").parse().unwrap(), Transport::Udp))
                .collect(),
        )
    }

    const DAY: &str = "2025-06-01T12:00:00+08:00";

    #[test]
    fn a_call_goes_where_rendezvous_over_the_backend_keys_sends_it() {
        // The per-backend hash is kept in the snapshot: the choice must be the one the keys
        // themselves give, so replicas and versions agree on every call's backend.
        let s = snap();
        let q = &s.queues[0];
        for i in 0..2000 {
            let call = format!("call-{i}@carrier");
            let keys = q.backends.iter().map(|b| b.key.as_bytes());
            let want = crate::sip::rendezvous(call.as_bytes(), keys).map(|i| &q.backends[i]);
            assert_eq!(
                choose_up(&q.backends, call.as_bytes(), &Down::none(), true),
                want
            );
            let key = crate::sip::hash64(&[call.as_bytes()]);
            assert_eq!(choose_up_keyed(&q.backends, key, &Down::none(), true), want);
        }
    }

    #[test]
    fn a_dead_backends_calls_spread_evenly_and_every_other_call_keeps_its_backend() {
        let s = snap();
        let q = &s.queues[0];
        let now = parse_instant(DAY).unwrap();
        let calls: Vec<String> = (0..8000).map(|i| format!("call-{i}@carrier")).collect();
        let before: Vec<&Backend> = calls
            .iter()
            .map(|c| choose_up(&q.backends, c.as_bytes(), &Down::none(), true).unwrap())
            .collect();
        let dead = down(&["10.0.0.2"]);
        let mut moved_to = std::collections::HashMap::new();
        for (c, was) in calls.iter().zip(&before) {
            let Pick::To { backend, queue, .. } =
                pick(&s, QueueId::new(0), c.as_bytes(), &dead, now)
            else {
                panic!("fuzhou has three backends up");
            };
            assert_eq!(queue, QueueId::new(0));
            if was.key.starts_with("10.0.0.2:") {
                assert_ne!(backend.key, was.key);
                *moved_to.entry(backend.key.clone()).or_insert(0u32) += 1;
            } else {
                assert_eq!(backend.key, was.key, "{c} kept its backend");
            }
        }
        // ~2000 calls were on the dead one; each of the 3 others takes about a third.
        let shares: Vec<u32> = moved_to.values().copied().collect();
        let total: u32 = shares.iter().sum();
        assert_eq!(shares.len(), 3, "{moved_to:?}");
        assert!((1800..2200).contains(&total), "{total}");
        for s in shares {
            let third = f64::from(total) / 3.0;
            assert!((f64::from(s) - third).abs() < third * 0.15, "{moved_to:?}");
        }
    }

    #[test]
    fn route_explains_hours_and_overflow() {
        let s = snap();
        let night = explain(
            &s,
            QueueId::new(0),
            parse_instant("2025-06-01T23:00:00+08:00").unwrap(),
        );
        assert_eq!(
            night,
            vec![
                "queue fuzhou: hours 08:00-22:00 CST: closed; if all its backends are down: overflow to provincial",
                "fuzhou is closed: overflow to provincial",
                "queue provincial: hours always: open; if all its backends are down: 503 with Retry-After: 30",
                "takes the call (backends up): provincial",
            ]
        );
        let day = explain(&s, QueueId::new(0), parse_instant(DAY).unwrap());
        assert_eq!(day.last().unwrap(), "takes the call (backends up): fuzhou");
    }

    #[test]
    fn a_queue_overflows_when_closed_or_all_down_and_with_nowhere_left_says_why() {
        let s = snap();
        let at = |t: &str| parse_instant(t).unwrap();
        let all = down(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
        let cases = [
            (DAY, Down::none(), Some((0, None))),
            // The boundary instant belongs to the later period: closed at 22:00 exactly.
            (
                "2025-06-01T22:00:00+08:00",
                Down::none(),
                Some((1, Some(Why::Closed))),
            ),
            ("2025-06-01T21:59:59+08:00", Down::none(), Some((0, None))),
            (DAY, all.clone(), Some((1, Some(Why::AllDown)))),
            (
                DAY,
                down(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.1.1"]),
                None,
            ),
        ];
        for (t, d, want) in cases {
            let got = match pick(&s, QueueId::new(0), b"c1", &d, at(t)) {
                Pick::To {
                    queue, overflowed, ..
                } => Some((queue.index(), overflowed)),
                Pick::Nowhere { queue, why } => {
                    assert_eq!((queue.index(), why), (1, Why::AllDown));
                    None
                }
            };
            assert_eq!(got, want, "{t} down {}", d.len());
        }
    }
}
