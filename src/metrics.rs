//! Prometheus metrics: the only file that names metrics. Core code hands over a
//! [`Label`]; names, label sets and help texts live here.

use crate::backend::Why;
use crate::calendar::{phase_at, PHASES};
use crate::clock::unix_seconds;
use crate::config::Snapshot;
use crate::proxy::{Act, CallOutcome, Kind, Label};
use crate::route::RejectReason;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

const REQUESTS: &str = "dualgate_requests_total";
const RESPONSES: &str = "dualgate_responses_total";
const ATTEMPTS: &str = "dualgate_call_attempts_total";
const OUTCOMES: &str = "dualgate_call_outcomes_total";
const LAST_CALL: &str = "dualgate_last_call_timestamp_seconds";
const PHASE: &str = "dualgate_legacy_phase";
const RETIRED_FROM: &str = "dualgate_legacy_retired_from_timestamp_seconds";
const REJECTED: &str = "dualgate_rejected_total";
const RELOADS: &str = "dualgate_config_reloads_total";
const LAST_RELOAD: &str = "dualgate_config_last_reload_success_timestamp_seconds";
const BACKEND_ERRORS: &str = "dualgate_backend_errors_total";
const DURATION: &str = "dualgate_request_duration_seconds";
const BUILD_INFO: &str = "dualgate_build_info";
const UDP_DROPS: &str = "dualgate_udp_receive_drops_total";

/// Histogram buckets for time spent inside the gateway: 10 µs to 100 ms.
const DURATION_BUCKETS: [f64; 13] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,
];

/// Installs the Prometheus exporter (its HTTP listener on `listen`, when set) with a `replica`
/// label on every series, and describes every metric. Must run inside the tokio runtime.
///
/// # Errors
/// The exporter's [`BuildError`] (e.g. the listen address is taken).
pub fn install(listen: Option<SocketAddr>, replica: &str) -> Result<(), BuildError> {
    let mut b = PrometheusBuilder::new()
        .add_global_label("replica", replica)
        .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &DURATION_BUCKETS)?;
    b = match listen {
        Some(addr) => b.with_http_listener(addr),
        None => b,
    };
    b.install()?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!(REQUESTS, "SIP requests handled, by method, dialled number, queue, trunk, migration phase and decision.");
    describe_counter!(
        RESPONSES,
        "SIP responses handled, by status class and decision."
    );
    describe_counter!(
        ATTEMPTS,
        "Call attempts (initial INVITEs, retransmissions included) per dialled number and queue."
    );
    describe_counter!(
        OUTCOMES,
        "Final responses to INVITEs per dialled number, queue and outcome."
    );
    describe_gauge!(
        LAST_CALL,
        Unit::Seconds,
        "Unix time of the last call attempt per dialled number (0: none since start)."
    );
    describe_gauge!(
        PHASE,
        "1 for a legacy number's current migration phase, 0 for the others."
    );
    describe_gauge!(
        RETIRED_FROM,
        Unit::Seconds,
        "Unix time a legacy number's parallel period ends."
    );
    describe_counter!(
        REJECTED,
        "Messages refused or dropped by the gateway, by reason."
    );
    describe_counter!(RELOADS, "Mapping reloads by result.");
    describe_gauge!(
        LAST_RELOAD,
        Unit::Seconds,
        "Unix time of the last successful mapping load."
    );
    describe_counter!(
        BACKEND_ERRORS,
        "Failures to send to a next hop, by queue and kind (send, connect)."
    );
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time a message spends inside the gateway, receive to send."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label tells which build runs."
    );
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for r in RejectReason::ALL {
        counter!(REJECTED, "reason" => r.as_str()).absolute(0);
    }
    for result in ["success", "failure"] {
        counter!(RELOADS, "result" => result).absolute(0);
    }
}

/// Creates every configured number's series at 0 (they never expire), so a legacy number that
/// has gone quiet shows 0 rather than disappearing, and sets the calendar gauges.
pub fn register(snap: &Snapshot, now: SystemTime) {
    let m = &snap.mappings;
    let queue_of = |number: &str| -> &str {
        m.lookup_str(number)
            .and_then(|e| e.queue(m))
            .and_then(|i| snap.queues.get(i))
            .map_or("none", |q| &q.name)
    };
    for number in m.numbers().chain(std::iter::once("other")) {
        let queue = queue_of(number).to_string();
        counter!(ATTEMPTS, "number" => number.to_string(), "queue" => queue.clone()).increment(0);
        for o in CallOutcome::ALL {
            counter!(OUTCOMES, "number" => number.to_string(), "queue" => queue.clone(), "outcome" => o.as_str()).increment(0);
        }
        gauge!(LAST_CALL, "number" => number.to_string()).increment(0.0);
    }
    for l in &m.legacy {
        gauge!(RETIRED_FROM, "number" => l.number.clone())
            .set(unix_seconds(l.schedule.retired_from));
    }
    record_phases(snap, now);
}

/// Sets each legacy number's phase gauge for `now`.
pub fn record_phases(snap: &Snapshot, now: SystemTime) {
    for l in &snap.mappings.legacy {
        let current = phase_at(&l.schedule, now).as_str();
        for p in PHASES {
            gauge!(PHASE, "number" => l.number.clone(), "phase" => p).set(if p == current {
                1.0
            } else {
                0.0
            });
        }
    }
}

/// Identity of a label value: where the string lives and how long it is. Label values are
/// `&'static` or borrowed from the snapshot the recorder was last used with, so equal keys mean
/// equal strings for as long as the cache is kept (it is emptied when the snapshot changes).
type Sk = (usize, usize);

fn sk(s: &str) -> Sk {
    (s.as_ptr() as usize, s.len())
}

/// FNV-1a over the key's words: the keys are a few pointers, SipHash's DoS resistance buys
/// nothing here.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Cache<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// One receiving task's metric handles, so that counting a message is a lookup by pointer,
/// not a label allocation and a registry search.
pub struct Recorder {
    snapshot: usize,
    requests: Cache<[Sk; 6], Counter>,
    attempts: Cache<[Sk; 2], Counter>,
    last_call: Cache<Sk, Gauge>,
    outcomes: Cache<[Sk; 3], Counter>,
    responses: Cache<[Sk; 2], Counter>,
    rejected: Cache<Sk, Counter>,
    duration: Histogram,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            snapshot: 0,
            requests: Cache::default(),
            attempts: Cache::default(),
            last_call: Cache::default(),
            outcomes: Cache::default(),
            responses: Cache::default(),
            rejected: Cache::default(),
            duration: histogram!(DURATION),
        }
    }
}

impl Recorder {
    /// Counts one message handled with the snapshot at address `snapshot` (its labels borrow
    /// from it).
    pub fn record(
        &mut self,
        snapshot: *const Snapshot,
        l: &Label<'_>,
        now: SystemTime,
        inside: Duration,
    ) {
        if self.snapshot != snapshot as usize {
            *self = Recorder {
                snapshot: snapshot as usize,
                ..Recorder::default()
            };
        }
        self.duration.record(inside.as_secs_f64());
        if let Some(r) = l.reject {
            let reason = r.as_str();
            self.rejected
                .entry(sk(reason))
                .or_insert_with(|| counter!(REJECTED, "reason" => reason))
                .increment(1);
        }
        let owned = |s: &str| s.to_string();
        match l.kind {
            Kind::Request {
                method,
                attempt,
                outcome,
            } => {
                let key = [
                    sk(method),
                    sk(l.number),
                    sk(l.queue),
                    sk(l.trunk),
                    sk(l.phase),
                    sk(l.act.as_str()),
                ];
                self.requests
                    .entry(key)
                    .or_insert_with(|| {
                        counter!(
                            REQUESTS,
                            "method" => method,
                            "number" => owned(l.number),
                            "queue" => owned(l.queue),
                            "trunk" => owned(l.trunk),
                            "phase" => l.phase,
                            "decision" => l.act.as_str()
                        )
                    })
                    .increment(1);
                if attempt {
                    self.attempts
                        .entry([sk(l.number), sk(l.queue)])
                        .or_insert_with(|| counter!(ATTEMPTS, "number" => owned(l.number), "queue" => owned(l.queue)))
                        .increment(1);
                    self.last_call
                        .entry(sk(l.number))
                        .or_insert_with(|| gauge!(LAST_CALL, "number" => owned(l.number)))
                        .set(unix_seconds(now));
                }
                if let Some(o) = outcome {
                    self.outcome(l, o);
                }
            }
            Kind::Response { class, outcome } => {
                let class = class_label(class);
                self.responses
                    .entry([sk(class), sk(l.act.as_str())])
                    .or_insert_with(
                        || counter!(RESPONSES, "class" => class, "decision" => l.act.as_str()),
                    )
                    .increment(1);
                if let (Some(o), Act::Forwarded) = (outcome, l.act) {
                    self.outcome(l, o);
                }
            }
            Kind::Malformed => {}
        }
    }

    fn outcome(&mut self, l: &Label<'_>, o: CallOutcome) {
        self.outcomes
            .entry([sk(l.number), sk(l.queue), sk(o.as_str())])
            .or_insert_with(|| {
                counter!(OUTCOMES, "number" => l.number.to_string(), "queue" => l.queue.to_string(), "outcome" => o.as_str())
            })
            .increment(1);
    }
}

fn class_label(class: u8) -> &'static str {
    match class {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        6 => "6xx",
        _ => "other",
    }
}

/// Counts a message the gateway could not hand to its next hop.
pub fn record_backend_error(queue: &str, kind: &'static str) {
    counter!(BACKEND_ERRORS, "queue" => queue.to_string(), "kind" => kind).increment(1);
}

/// Counts a message dropped because the gateway could not keep up.
pub fn record_overload() {
    counter!(REJECTED, "reason" => RejectReason::Overload.as_str()).increment(1);
}

/// Counts a mapping reload attempt.
pub fn record_reload(ok: bool, now: SystemTime) {
    counter!(RELOADS, "result" => if ok { "success" } else { "failure" }).increment(1);
    if ok {
        gauge!(LAST_RELOAD).set(unix_seconds(now));
    }
}

/// Counts bytes that could not be framed or parsed as SIP.
pub fn record_malformed() {
    counter!(REJECTED, "reason" => RejectReason::Malformed.as_str()).increment(1);
}

/// Sets the kernel's count of datagrams dropped on the SIP UDP socket.
pub fn record_udp_drops(total: u64) {
    counter!(UDP_DROPS).absolute(total);
}

const BACKEND_UP: &str = "dualgate_backend_up";
const PROBES: &str = "dualgate_backend_probes_total";
const BACKEND_503: &str = "dualgate_backend_503_total";
const OVERFLOWS: &str = "dualgate_overflow_total";
const UNAVAILABLE: &str = "dualgate_unavailable_total";
const LIMITED: &str = "dualgate_limited_total";
const SHEDDING: &str = "dualgate_shedding";

/// Describes the failover and overload metrics and creates their series at 0 for `snap`'s
/// queues, backends and trunks (at start-up and after each reload). `dualgate_backend_up` is
/// set by the prober, which knows the state.
pub fn register_failover(snap: &Snapshot) {
    describe_gauge!(
        BACKEND_UP,
        "1 while a backend answers its OPTIONS probes (or is not probed), 0 once marked down."
    );
    describe_counter!(
        PROBES,
        "OPTIONS probes per backend, by result (answered, missed)."
    );
    describe_counter!(BACKEND_503, "A backend's 503 to an INVITE, forwarded to the carrier as [failover] backend_503 (default 480).");
    describe_counter!(OVERFLOWS, "New calls sent to an overflow queue, by queue, overflow queue and reason (closed, all_down).");
    describe_counter!(UNAVAILABLE, "New calls no queue could take (answered [failover] status, default 503 with Retry-After), by queue and reason.");
    describe_counter!(
        LIMITED,
        "New calls refused with 503 by overload control, by trunk and limit (trunk, source, shed)."
    );
    describe_gauge!(
        SHEDDING,
        "1 while the gateway falls behind and refuses new calls."
    );
    for q in snap.queues.iter().map(|q| q.name.as_str()).chain(["none"]) {
        counter!(BACKEND_503, "queue" => q.to_string()).increment(0);
        for why in Why::ALL {
            counter!(UNAVAILABLE, "queue" => q.to_string(), "reason" => why.as_str()).increment(0);
        }
    }
    for (i, q) in snap.queues.iter().enumerate() {
        for b in &q.backends {
            for result in ["answered", "missed"] {
                counter!(PROBES, "queue" => q.name.clone(), "backend" => b.uri.clone(), "result" => result).increment(0);
            }
        }
        // Every queue a call routed to `q` can overflow to.
        let mut at = q.overflow;
        let mut steps = 0;
        while let (Some(j), true) = (at, steps < snap.queues.len()) {
            let Some(to) = snap.queues.get(j) else { break };
            if j != i {
                for why in Why::ALL {
                    counter!(OVERFLOWS, "queue" => q.name.clone(), "to" => to.name.clone(), "reason" => why.as_str()).increment(0);
                }
            }
            at = to.overflow;
            steps += 1;
        }
    }
    for t in &snap.trunks {
        for limit in ["trunk", "source", "shed"] {
            counter!(LIMITED, "trunk" => t.name.clone(), "limit" => limit).increment(0);
        }
    }
}

/// Sets one backend's up gauge.
pub fn record_backend_up(queue: &str, backend: &str, up: bool) {
    gauge!(BACKEND_UP, "queue" => queue.to_string(), "backend" => backend.to_string()).set(if up {
        1.0
    } else {
        0.0
    });
}

/// Counts one probe result for a backend listed under each of `labels` (queue, backend).
pub fn record_probe(labels: &[(String, String)], answered: bool) {
    let result = if answered { "answered" } else { "missed" };
    for (q, b) in labels {
        counter!(PROBES, "queue" => q.clone(), "backend" => b.clone(), "result" => result)
            .increment(1);
    }
}

/// Counts a backend 503 forwarded as the failover status.
pub fn record_backend_503(queue: &str) {
    counter!(BACKEND_503, "queue" => queue.to_string()).increment(1);
}

/// Counts a call sent to an overflow queue.
pub fn record_overflow(queue: &str, to: &str, why: Why) {
    counter!(OVERFLOWS, "queue" => queue.to_string(), "to" => to.to_string(), "reason" => why.as_str())
        .increment(1);
}

/// Counts a call no queue could take.
pub fn record_nowhere(queue: &str, why: Why) {
    counter!(UNAVAILABLE, "queue" => queue.to_string(), "reason" => why.as_str()).increment(1);
}

/// Counts a new call refused by overload control.
pub fn record_limited(trunk: &str, limit: &'static str) {
    counter!(LIMITED, "trunk" => trunk.to_string(), "limit" => limit).increment(1);
}

/// Sets the shedding gauge.
pub fn record_shedding(on: bool) {
    gauge!(SHEDDING).set(if on { 1.0 } else { 0.0 });
}
