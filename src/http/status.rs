//! What the person on duty needs to see on cut-over day, and whether this replica is ready for
//! traffic: a pure function of the snapshot, the instant, this replica's own metric readings and
//! the mapping file's hash. No I/O, no clock: [`super`] gathers the inputs, [`super::page`]
//! writes the HTML.

use super::reading::Readings;
use crate::calendar::{phase_at, Phase, PhaseName, Treatment};
use crate::config::{QueueId, Snapshot};
use std::fmt;
use std::time::{Duration, SystemTime};

/// Why this replica should not receive traffic yet (`/readyz` answers 503 with these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// No mapping file has been loaded.
    NoMappings,
    /// The SIP listeners are not bound yet.
    SipNotBound,
    /// Every backend of a queue is marked down by the prober.
    QueueDown {
        /// The queue's name.
        queue: String,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::NoMappings => write!(f, "mappings not loaded"),
            NotReady::SipNotBound => write!(f, "SIP sockets not bound"),
            NotReady::QueueDown { queue } => {
                write!(
                    f,
                    "queue {queue}: no backend up (all marked down by probing)"
                )
            }
        }
    }
}

/// Whether the replica is ready: mappings loaded, SIP bound, every queue with a backend up.
/// Returns every reason it is not (empty: ready).
pub fn readiness(snap: Option<&Snapshot>, sip_bound: bool, r: &Readings) -> Vec<NotReady> {
    let mut why = Vec::new();
    let Some(snap) = snap else {
        return vec![NotReady::NoMappings];
    };
    if !sip_bound {
        why.push(NotReady::SipNotBound);
    }
    for q in &snap.queues {
        let probed = snap.probe.is_some() && q.probe;
        if probed && !q.backends.is_empty() && !q.backends.iter().any(|b| r.is_up(&q.name, &b.uri))
        {
            why.push(NotReady::QueueDown {
                queue: q.name.clone(),
            });
        }
    }
    why
}

/// The next calendar boundary of a legacy number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    /// The instant it passes (it belongs to the phase after).
    pub at: SystemTime,
    /// The phase it starts.
    pub becomes: PhaseName,
    /// Time left from the page's instant.
    pub left: Duration,
}

/// One legacy number on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// Canonical number, as in metric labels.
    pub number: String,
    /// Its name in the mappings.
    pub name: String,
    /// Phase now.
    pub phase: PhaseName,
    /// The queue its calls reach now (or `None` when answered here).
    pub queue_now: Option<String>,
    /// What happens once retired, in words.
    pub treatment: String,
    /// The next boundary, if any is left.
    pub next: Option<Boundary>,
    /// Calls to it since this replica started.
    pub calls: f64,
    /// Its area's form of the new number (e.g. 059112356).
    pub new_number: String,
    /// Calls to that since this replica started.
    pub new_calls: f64,
}

impl Number {
    /// The legacy number's share of the calls to it and its area's new number, in percent.
    pub fn share(&self) -> Option<f64> {
        let total = self.calls + self.new_calls;
        (total > 0.0).then(|| 100.0 * self.calls / total)
    }
}

/// One backend of a queue and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The URI as written in the mappings.
    pub uri: String,
    /// Up (answering probes, or not probed).
    pub up: bool,
}

/// One queue on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Its name.
    pub name: String,
    /// The user part the call centre receives.
    pub target: String,
    /// Whether its backends are probed (unprobed backends always count as up).
    pub probed: bool,
    /// Its backends.
    pub backends: Vec<Backend>,
    /// Where its calls overflow, if anywhere.
    pub overflow: Option<String>,
}

/// The mapping file and its reloads.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file's path.
    pub path: String,
    /// SHA-256 (hex) of the file's bytes as last loaded, if it could be read.
    pub file_sha256: Option<String>,
    /// The routing fingerprint, where the build exports one.
    pub fingerprint: Option<String>,
    /// Successful loads since start (the start-up load included).
    pub loads: f64,
    /// Rejected reloads since start (the old mappings kept serving).
    pub rejected: f64,
    /// The last successful load.
    pub last_load: Option<SystemTime>,
}

/// The whole status page.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The replica label.
    pub replica: String,
    /// The build's version.
    pub version: String,
    /// The instant the page describes.
    pub now: SystemTime,
    /// Why not ready (empty: ready).
    pub not_ready: Vec<NotReady>,
    /// Legacy numbers in file order.
    pub numbers: Vec<Number>,
    /// Queues in file order.
    pub queues: Vec<Queue>,
    /// The mapping file.
    pub config: Config,
}

/// The next boundary after `now` of a legacy number with schedule `s`.
pub fn next_boundary(s: &crate::calendar::Schedule, now: SystemTime) -> Option<Boundary> {
    let (at, becomes) = match phase_at(s, now) {
        Phase::Before => (s.parallel_from, PhaseName::Parallel),
        Phase::Parallel => match s.decommissioned_from {
            // A number decommissioned as its parallel period ends skips "retired".
            Some(d) if d <= s.retired_from => (s.retired_from, PhaseName::Decommissioned),
            _ => (s.retired_from, PhaseName::Retired),
        },
        Phase::Retired(_) => (s.decommissioned_from?, PhaseName::Decommissioned),
        Phase::Decommissioned => return None,
    };
    Some(Boundary {
        at,
        becomes,
        left: at.duration_since(now).unwrap_or(Duration::ZERO),
    })
}

fn treatment(snap: &Snapshot, t: &Treatment) -> String {
    let queue = |i: QueueId| snap.queue(i).name.as_str();
    match t {
        Treatment::Route => "route to its queue (grace period, marked as legacy)".to_string(),
        Treatment::Announce { queue: q } => format!("announce via queue {}", queue(*q)),
        Treatment::Redirect { status } => format!("redirect {status} to the area's new number"),
        Treatment::Reject { status, reason } => format!("reject {status} \"{reason}\""),
    }
}

/// Builds the status page for `now`.
pub fn status(
    snap: &Snapshot,
    now: SystemTime,
    r: &Readings,
    file_sha256: Option<String>,
    sip_bound: bool,
) -> Status {
    let m = &snap.mappings;
    let queue_name = |i: QueueId| Some(snap.queue(i).name.clone());
    let numbers = m
        .legacy
        .iter()
        .map(|l| {
            let s = &l.schedule;
            let phase = phase_at(s, now);
            let queue_now = match phase {
                Phase::Before | Phase::Parallel | Phase::Retired(Treatment::Route) => {
                    queue_name(l.queue)
                }
                Phase::Retired(Treatment::Announce { queue }) => queue_name(*queue),
                Phase::Retired(_) | Phase::Decommissioned => None,
            };
            let new_number = l
                .area(&m.areas)
                .map_or_else(|| m.new_number.clone(), |a| a.new_number.clone());
            Number {
                number: l.number.clone(),
                name: l.name.clone(),
                phase: phase.name(),
                queue_now,
                treatment: treatment(snap, &s.when_retired),
                next: next_boundary(s, now),
                calls: r.calls_to(&l.number),
                new_calls: r.calls_to(&new_number),
                new_number,
            }
        })
        .collect();
    let queues = snap
        .queues
        .iter()
        .map(|q| {
            let probed = snap.probe.is_some() && q.probe;
            Queue {
                name: q.name.clone(),
                target: q.target.clone(),
                probed,
                backends: q
                    .backends
                    .iter()
                    .map(|b| Backend {
                        uri: b.uri.clone(),
                        up: !probed || r.is_up(&q.name, &b.uri),
                    })
                    .collect(),
                overflow: q.overflow.and_then(queue_name),
            }
        })
        .collect();
    Status {
        replica: snap.gateway.replica.clone(),
        version: r
            .version
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        now,
        not_ready: readiness(Some(snap), sip_bound, r),
        numbers,
        queues,
        config: Config {
            path: snap.source.display().to_string(),
            file_sha256,
            fingerprint: r.fingerprint.clone(),
            loads: r.reloads_ok,
            rejected: r.reloads_failed,
            last_load: r
                .last_reload
                .filter(|t| *t > 0.0)
                .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t)),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{parse_instant, validate};
    use std::path::Path;

    const FILE: &str = include_str!("../../mappings/fujian.toml");

    fn snap(text: &str) -> Snapshot {
        validate(Path::new("fujian.toml"), text).unwrap()
    }

    fn at(t: &str) -> SystemTime {
        parse_instant(t).unwrap()
    }

    #[test]
    fn each_phase_counts_down_to_the_next_boundary_and_the_last_has_none() {
        let s = snap(FILE);
        let l = &s.mappings.legacy[0];
        let cases = [
            (
                "2025-04-06T23:59:00+08:00",
                Some(("2025-04-07T00:00:00+08:00", PhaseName::Parallel, 60)),
            ),
            // A boundary instant belongs to the later phase: the next one is a month away.
            (
                "2025-04-07T00:00:00+08:00",
                Some(("2025-05-07T00:00:00+08:00", PhaseName::Retired, 30 * 86400)),
            ),
            ("2025-05-07T00:00:00+08:00", None),
        ];
        for (now, want) in cases {
            let got = next_boundary(&l.schedule, at(now));
            let want = want.map(|(t, becomes, left)| Boundary {
                at: at(t),
                becomes,
                left: Duration::from_secs(left),
            });
            assert_eq!(got, want, "{now}");
        }
        let mut d = l.schedule.clone();
        d.decommissioned_from = Some(at("2026-01-01T00:00:00+08:00"));
        let got = next_boundary(&d, at("2025-12-31T23:00:00+08:00")).unwrap();
        assert_eq!(
            (got.becomes, got.left),
            (PhaseName::Decommissioned, Duration::from_secs(3600))
        );
        assert_eq!(next_boundary(&d, at("2026-01-01T00:00:00+08:00")), None);
    }

    #[test]
    fn the_page_shows_calls_against_the_area_new_number_and_backend_states() {
        let s = snap(FILE);
        let text = r#"
dualgate_call_attempts_total{replica="r",number="059185666661",queue="fuzhou",trunk="t"} 1
dualgate_call_attempts_total{replica="r",number="059112356",queue="fuzhou",trunk="t"} 3
dualgate_backend_up{replica="r",queue="fuzhou",backend="sip:127.0.0.1:5091;transport=udp"} 0
dualgate_config_reloads_total{replica="r",result="success"} 1
"#;
        let r = Readings::from_text(text);
        let page = status(&s, at("2025-04-20T10:00:00+08:00"), &r, None, true);
        let n = page
            .numbers
            .iter()
            .find(|n| n.number == "059185666661")
            .unwrap();
        assert_eq!(n.phase, PhaseName::Parallel);
        assert_eq!((n.calls, n.new_calls), (1.0, 3.0));
        assert_eq!(n.new_number, "059112356");
        assert_eq!(n.share(), Some(25.0));
        assert_eq!(n.queue_now.as_deref(), Some("fuzhou"));
        assert!(
            n.treatment.starts_with("announce via queue"),
            "{}",
            n.treatment
        );
        let q = page.queues.iter().find(|q| q.name == "fuzhou").unwrap();
        // Probing on: the prober's gauge decides.
        assert_eq!(q.probed, s.probe.is_some());
        assert_eq!(q.backends[0].up, !q.probed);
        if q.probed {
            assert_eq!(
                page.not_ready,
                vec![NotReady::QueueDown {
                    queue: "fuzhou".into()
                }]
            );
        }
        assert_eq!(page.config.loads, 1.0);
    }

    #[test]
    fn not_ready_says_every_reason() {
        let s = snap(FILE);
        assert_eq!(
            readiness(None, true, &Readings::default()),
            vec![NotReady::NoMappings]
        );
        let mut r = Readings::default();
        assert_eq!(readiness(Some(&s), true, &r), vec![]);
        assert_eq!(readiness(Some(&s), false, &r), vec![NotReady::SipNotBound]);
        for q in &s.queues {
            for b in &q.backends {
                r.backend_up.insert((q.name.clone(), b.uri.clone()), false);
            }
        }
        let why = readiness(Some(&s), true, &r);
        if s.probe.is_some() {
            assert_eq!(why.len(), s.queues.iter().filter(|q| q.probe).count());
            assert_eq!(
                why[0].to_string(),
                format!(
                    "queue {}: no backend up (all marked down by probing)",
                    s.queues[0].name
                )
            );
        } else {
            assert!(why.is_empty());
        }
    }
}
