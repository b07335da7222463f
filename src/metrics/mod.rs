//! Prometheus metrics: the only module that names metrics. Core code hands over a
//! [`Label`]; names, label sets and help texts live here.
//!
//! The per-number families live in `table` (plain atomics indexed by the label's typed ids,
//! rendered here) and the handling-time histogram in `duration` (plain atomics too);
//! everything else is in the `metrics` crate's registry, rendered by the exporter. [`render`]
//! joins them for `/metrics`.

mod duration;
mod table;

use crate::backend::Why;
use crate::config::Snapshot;
use crate::mapping::NumberId;
use crate::proxy::{Act, CallOutcome, Kind, Label};
use crate::route::{PhaseLabel, RejectReason, TrunkId};
use crate::transport::tcp::{Budgets, Class, Cut};
use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Unit};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use table::{CellRef, Family, Table};

pub(crate) use table::ATTEMPTS;

const RESPONSES: &str = "dualgate_responses_total";
const REJECTED: &str = "dualgate_rejected_total";
pub(crate) const RELOADS: &str = "dualgate_config_reloads_total";
pub(crate) const LAST_RELOAD: &str = "dualgate_config_last_reload_success_timestamp_seconds";
const BACKEND_ERRORS: &str = "dualgate_backend_errors_total";
pub(crate) const BUILD_INFO: &str = "dualgate_build_info";
const UDP_DROPS: &str = "dualgate_udp_receive_drops_total";
const TCP_REFUSED: &str = "dualgate_tcp_refused_total";
const TCP_CUT: &str = "dualgate_tcp_cut_total";
const TCP_OPEN: &str = "dualgate_tcp_connections";
const TCP_BUDGET: &str = "dualgate_tcp_connection_budget";
const OPEN_FILES: &str = "dualgate_open_files_limit";
const AREA_LAUNCH: &str = "dualgate_area_launch_timestamp_seconds";
/// The routing fingerprint gauge (`sha256` label); the status page reads it back.
pub(crate) const CONFIG_INFO: &str = "dualgate_config_info";

/// Installs the Prometheus recorder with a `replica` label on every series and describes every
/// metric. It opens no listener: `src/http` serves the returned handle's text on `/metrics`.
/// The registry holds no histogram (the one histogram is `duration`'s), so it buffers no
/// samples and needs no upkeep.
///
/// # Errors
/// The exporter's [`BuildError`] (e.g. a recorder is already installed).
pub fn install(replica: &str) -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .add_global_label("replica", replica)
        .install_recorder()?;
    table::set_replica(replica);
    describe();
    Ok(handle)
}

/// The text `/metrics` serves: the exporter's registry, then the per-number families. Each
/// family appears once, with its `# HELP` and `# TYPE`.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut out = handle.render();
    table::render_into(&mut out);
    duration::render_into(&mut out, table::global_labels());
    out
}

fn describe() {
    describe_counter!(
        RESPONSES,
        "SIP responses handled, by status class and decision."
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
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label tells which build runs."
    );
    describe_counter!(
        TCP_REFUSED,
        "TCP connections refused at accept or before connecting, by reason."
    );
    describe_counter!(
        TCP_CUT,
        "TCP connections the gateway closed, by reason (slowloris deadline, output budget, idle, unframeable)."
    );
    describe_counter!(
        UDP_DROPS,
        "Datagrams the kernel dropped on the SIP UDP sockets (receive buffer full), as the kernel counts them."
    );
    describe_gauge!(TCP_OPEN, "TCP connections open, by class.");
    describe_gauge!(
        TCP_BUDGET,
        "TCP connections each class may hold (derived from the descriptor limit)."
    );
    describe_gauge!(
        OPEN_FILES,
        "The process's file-descriptor soft limit (RLIMIT_NOFILE) after raising it at start."
    );
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for r in RejectReason::ALL {
        counter!(REJECTED, "reason" => r.as_str()).absolute(0);
    }
    for c in Cut::ALL {
        let name = if c.at_accept() { TCP_REFUSED } else { TCP_CUT };
        counter!(name, "reason" => c.as_str()).absolute(0);
    }
    for c in Class::ALL {
        gauge!(TCP_OPEN, "class" => c.as_str()).set(0.0);
    }
    for result in ["success", "failure"] {
        counter!(RELOADS, "result" => result).absolute(0);
    }
    describe_cutover();
}

fn describe_cutover() {
    describe_gauge!(
        AREA_LAUNCH,
        Unit::Seconds,
        "Unix time the new number starts answering in an area (0: it always answers)."
    );
    describe_gauge!(
        CONFIG_INFO,
        "1 for the routing fingerprint (sha256) of the mappings this replica serves, 0 for the ones it served before a reload."
    );
}

/// Creates at 0 every series a message can increment for a configured number (they never
/// expire), so a legacy number that has gone quiet shows 0 rather than disappearing, and the
/// first call after start-up, a reload or a phase boundary is seen by `increase()` (which cannot
/// see the increment that creates a series). The combinations come from
/// [`crate::route::reachable`], the same functions `route::decide` uses. Also sets the calendar
/// gauges. Call it before `snap` serves.
pub fn register(snap: &Arc<Snapshot>, now: SystemTime) {
    table::table_for(snap).set_phases(snap, now);
}

/// Sets each legacy number's phase gauge for `now`.
pub fn record_phases(snap: &Arc<Snapshot>, now: SystemTime) {
    table::table_for(snap).set_phases(snap, now);
}

/// How long a call is remembered, so its retransmissions are not counted again: an INVITE
/// client transaction retransmits for at most 64×T1 = 32 s (RFC 3261 §17.1.1.2, Timer B).
pub const SEEN_FOR_SECONDS: u64 = 32;
/// Slots in [`SEEN`]: 128 Ki × 8 bytes = 1 MiB, fixed, whatever the traffic.
const SEEN_SLOTS: usize = 1 << 17;
/// Low bits of a slot that hold the time a key was counted (unix seconds modulo 2^20).
const SEEN_TIME_BITS: u32 = 20;
const SEEN_TIME_MASK: u64 = (1 << SEEN_TIME_BITS) - 1;

/// Calls counted recently (hashes of Call-ID and CSeq), for counting only: routing never reads
/// it. A direct-mapped table shared by every receiving thread (a retransmission may reach
/// another UDP worker than the original): a slot holds the key's high bits and the second it
/// was counted. A key is "seen" while its slot still holds it and is less than
/// [`SEEN_FOR_SECONDS`] old; another key landing on the same slot evicts it, so under very high
/// load a retransmission can be counted twice, never a new call missed.
static SEEN: [AtomicU64; SEEN_SLOTS] = [const { AtomicU64::new(0) }; SEEN_SLOTS];

/// True the first time call `key` is offered within [`SEEN_FOR_SECONDS`] of `now` (Unix
/// seconds, as [`crate::clock::unix_seconds`] gives them; before 1970 counts as 0).
fn first_time(key: u64, now: f64) -> bool {
    // A float-to-int `as` saturates: negative and NaN give 0.
    let secs = now as u64;
    // The slot index uses the low bits, the tag the high ones.
    let slot = &SEEN[(key as usize) & (SEEN_SLOTS - 1)];
    let tag = key & !SEEN_TIME_MASK;
    let fresh = tag | (secs & SEEN_TIME_MASK);
    let mut old = slot.load(Ordering::Relaxed);
    loop {
        let age = (secs.wrapping_sub(old)) & SEEN_TIME_MASK;
        if old != 0 && old & !SEEN_TIME_MASK == tag && age < SEEN_FOR_SECONDS {
            return false;
        }
        match slot.compare_exchange(old, fresh, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now_there) => old = now_there,
        }
    }
}

/// A per-number series no route of the table lists, by its typed labels: the key of a
/// worker's own small map, so each is looked up in the store once per worker and snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Spare {
    family: Family,
    method: &'static str,
    number: NumberId,
    queue: Option<crate::config::QueueId>,
    trunk: TrunkId,
    phase: PhaseLabel,
    last: &'static str,
}

impl Spare {
    fn text<'s>(&self, snap: &'s Snapshot) -> Vec<&'s str> {
        let number = snap.mappings.number_text(self.number);
        let queue = snap.queue_label(self.queue);
        match self.family {
            Family::Requests => vec![
                self.method,
                number,
                queue,
                self.trunk.text(snap),
                self.phase.as_str(),
                self.last,
            ],
            Family::Attempts => vec![number, queue, self.trunk.text(snap)],
            Family::Outcomes => vec![number, queue, self.last],
            _ => vec![number],
        }
    }
}

/// The snapshot a recorder counts for, with its table.
struct Current {
    snap: Arc<Snapshot>,
    table: Arc<Table>,
    /// Series outside the table met by this recorder.
    spare: HashMap<Spare, CellRef>,
}

impl Current {
    fn spare(&mut self, key: Spare) -> CellRef {
        let snap = &self.snap;
        self.spare
            .entry(key)
            .or_insert_with(|| table::series(key.family, &key.text(snap)))
    }
}

/// One receiving task's metric handles, so that counting a message is index arithmetic and an
/// atomic add, not a label allocation and a registry search.
pub struct Recorder {
    current: Option<Current>,
    /// By status class (1xx..6xx, other) and decision; created on first use, as before.
    responses: [[OnceCell<Counter>; 3]; 7],
    /// By [`RejectReason`], in [`RejectReason::ALL`] order.
    rejected: [Counter; RejectReason::ALL.len()],
    /// Its shard of the handling-time histogram.
    duration_shard: usize,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            current: None,
            responses: Default::default(),
            rejected: RejectReason::ALL.map(|r| counter!(REJECTED, "reason" => r.as_str())),
            duration_shard: duration::shard(),
        }
    }
}

fn act_index(a: Act) -> usize {
    match a {
        Act::Forwarded => 0,
        Act::Replied => 1,
        Act::Dropped => 2,
    }
}

impl Recorder {
    /// Counts one message handled with `snap` (its label's ids index it).
    pub fn record(&mut self, snap: &Arc<Snapshot>, l: &Label<'_>, now: SystemTime) {
        let cur = match &mut self.current {
            Some(c) if Arc::ptr_eq(&c.snap, snap) => c,
            slot => slot.insert(Current {
                snap: snap.clone(),
                table: table::table_for(snap),
                spare: HashMap::new(),
            }),
        };
        if let Some(r) = l.reject {
            if let Some(c) = RejectReason::ALL
                .iter()
                .position(|x| *x == r)
                .and_then(|i| self.rejected.get(i))
            {
                c.increment(1);
            }
        }
        let key = Spare {
            family: Family::Requests,
            method: "",
            number: l.number,
            queue: l.queue,
            trunk: l.trunk,
            phase: l.phase,
            last: l.act.as_str(),
        };
        match l.kind {
            Kind::Request {
                method,
                attempt,
                outcome,
            } => {
                let t = &cur.table;
                let unrouted = l.number == NumberId::None && l.queue.is_none();
                let mut row = None;
                let cell = if unrouted && l.phase == PhaseLabel::None {
                    t.unrouted(method, l.trunk, l.act, snap)
                } else if method == "INVITE" {
                    row = t.row(l.number, l.queue, l.trunk, l.phase);
                    row.and_then(|r| t.invite_at(r, l.act))
                } else {
                    None
                };
                match cell {
                    Some(c) => c.add(1),
                    None => cur.spare(Spare { method, ..key }).add(1),
                }
                // A retransmitted INVITE (same Call-ID and CSeq) is one call, and the
                // gateway's answer to it one outcome.
                let secs = if attempt {
                    crate::clock::unix_seconds(now)
                } else {
                    0.0
                };
                if attempt && first_time(l.call, secs) {
                    // The spare keys are built only where the table has no cell.
                    match row.and_then(|r| cur.table.attempt_at(r)) {
                        Some(c) => c.add(1),
                        None => cur
                            .spare(Spare {
                                family: Family::Attempts,
                                ..key
                            })
                            .add(1),
                    }
                    match cur.table.last_call(l.number) {
                        Some(c) => c,
                        None => cur.spare(Spare {
                            family: Family::LastCall,
                            ..key
                        }),
                    }
                    .set(secs);
                    if let Some(o) = outcome {
                        count_outcome(cur, key, o);
                    }
                }
            }
            Kind::Response { class, outcome } => {
                let row = match class {
                    1..=6 => usize::from(class - 1),
                    _ => 6,
                };
                if let Some(c) = self
                    .responses
                    .get(row)
                    .and_then(|r| r.get(act_index(l.act)))
                {
                    let class = class_label(class);
                    c.get_or_init(
                        || counter!(RESPONSES, "class" => class, "decision" => l.act.as_str()),
                    )
                    .increment(1);
                }
                if let (Some(o), Act::Forwarded) = (outcome, l.act) {
                    // A final response retransmitted until its ACK is one outcome.
                    if first_time(l.call, crate::clock::unix_seconds(now)) {
                        count_outcome(cur, key, o);
                    }
                }
            }
            Kind::Malformed => {}
        }
    }

    /// Records the time a message spent inside the gateway, receive to send.
    pub fn record_duration(&mut self, inside: Duration) {
        duration::record(self.duration_shard, inside);
    }
}

fn count_outcome(cur: &mut Current, key: Spare, o: CallOutcome) {
    match cur.table.outcome(key.number, key.queue, o) {
        Some(c) => c.add(1),
        None => cur
            .spare(Spare {
                family: Family::Outcomes,
                last: o.as_str(),
                ..key
            })
            .add(1),
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

/// Counts a mapping reload attempt.
pub fn record_reload(ok: bool, now: SystemTime) {
    counter!(RELOADS, "result" => if ok { "success" } else { "failure" }).increment(1);
    if ok {
        gauge!(LAST_RELOAD).set(crate::clock::unix_seconds(now));
    }
}

/// Counts a message whose handling panicked (a gateway bug, caught and logged).
pub fn record_internal_error() {
    counter!(REJECTED, "reason" => RejectReason::InternalError.as_str()).increment(1);
}

/// Counts bytes that could not be framed or parsed as SIP.
pub fn record_malformed() {
    counter!(REJECTED, "reason" => RejectReason::Malformed.as_str()).increment(1);
}

/// Sets the kernel's count of datagrams dropped on the SIP UDP socket.
pub fn record_udp_drops(total: u64) {
    counter!(UDP_DROPS).absolute(total);
}

/// Counts a TCP connection refused or closed by the gateway.
pub fn record_tcp_cut(why: Cut) {
    let name = if why.at_accept() {
        TCP_REFUSED
    } else {
        TCP_CUT
    };
    counter!(name, "reason" => why.as_str()).increment(1);
}

/// Sets the number of open TCP connections of `class`.
pub fn record_tcp_open(class: Class, open: usize) {
    gauge!(TCP_OPEN, "class" => class.as_str()).set(open as f64);
}

/// Sets the descriptor limit and the TCP budgets derived from it.
pub fn record_tcp_budgets(nofile: u64, b: &Budgets) {
    gauge!(OPEN_FILES).set(nofile as f64);
    for (c, n) in [
        (Class::Trunk, b.trunk),
        (Class::Stranger, b.stranger),
        (Class::Outbound, b.outbound),
    ] {
        gauge!(TCP_BUDGET, "class" => c.as_str()).set(n as f64);
    }
}

pub(crate) const BACKEND_UP: &str = "dualgate_backend_up";
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
    for (i, q) in snap.queue_ids() {
        for b in &q.backends {
            for result in ["answered", "missed"] {
                counter!(PROBES, "queue" => q.name.clone(), "backend" => b.uri.clone(), "result" => result).increment(0);
            }
        }
        // Every queue a call routed to `q` can overflow to.
        let mut at = q.overflow;
        let mut steps = 0;
        while let (Some(j), true) = (at, steps < snap.queues.len()) {
            let to = snap.queue(j);
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

/// Sets the calendar gauges for `now`: each area's launch instant and each legacy number's next
/// boundary. Called at start-up, on reload and as boundaries pass.
pub fn record_calendar(snap: &Arc<Snapshot>, now: SystemTime) {
    for a in &snap.mappings.areas {
        gauge!(AREA_LAUNCH, "area" => a.code.as_str().to_string())
            .set(crate::timeline::launch(a).map_or(0.0, crate::clock::unix_seconds));
    }
    table::table_for(snap).set_next_boundaries(snap, now);
}

/// Marks `sha256` as the routing fingerprint served (1), and `previous`, if another, as no
/// longer served (0): series never expire, so the old one must read 0, not 1.
pub fn record_config(previous: Option<&str>, sha256: &str) {
    if let Some(p) = previous.filter(|p| *p != sha256) {
        gauge!(CONFIG_INFO, "sha256" => p.to_string()).set(0.0);
    }
    gauge!(CONFIG_INFO, "sha256" => sha256.to_string()).set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_counted_once_within_timer_b_and_again_after() {
        let t0 = 1_746_547_200.0;
        let key = 0x0123_4567_89ab_cdef;
        assert!(first_time(key, t0));
        assert!(!first_time(key, t0));
        assert!(!first_time(key, t0 + (SEEN_FOR_SECONDS - 1) as f64));
        // Another call on the same slot (same low bits) is new, and evicts the first.
        let other = key ^ (1 << 40);
        assert!(first_time(other, t0 + 1.0));
        assert!(first_time(key, t0 + 2.0));
        // Remembered for Timer B only.
        let later = 0x0fed_cba9_8765_4321;
        assert!(first_time(later, t0));
        assert!(first_time(later, t0 + SEEN_FOR_SECONDS as f64));
    }
}
