//! The routing policy: given what a request says and where it came from, which queue it goes to
//! or how the gateway answers it. Pure: the snapshot and the instant are parameters.

use crate::calendar::{phase_at, Phase, PhaseName, Treatment};
use crate::config::{QueueId, Snapshot, Trunk};
use crate::mapping::{Area, Entry, Legacy, NumberId};
use crate::number::{normalize, Dialling};
use crate::sip::{Cause, Method, Q850};
use std::borrow::Cow;
use std::time::SystemTime;

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'s> {
    /// A configured carrier trunk.
    Trunk(&'s Trunk),
    /// One of the queues' backends (in-dialog requests from the call centre).
    Backend,
    /// Nobody we know.
    Unknown,
}

impl<'s> Source<'s> {
    /// The trunk label: its name, `backend` or `unknown`.
    pub fn label(&self) -> &'s str {
        match self {
            Source::Trunk(t) => t.name.as_str(),
            Source::Backend => "backend",
            Source::Unknown => "unknown",
        }
    }
}

impl Source<'_> {
    /// The trunk label as an id into `snap` (the snapshot this source was found in).
    pub fn id(&self, snap: &Snapshot) -> TrunkId {
        match self {
            Source::Trunk(t) => TrunkId::Trunk(snap.trunk_index(t)),
            Source::Backend => TrunkId::Backend,
            Source::Unknown => TrunkId::Unknown,
        }
    }
}

/// A message's `trunk` label as an id: the position of a trunk of the snapshot, or one of the
/// two kinds of sender that are no trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrunkId {
    /// The `i`-th trunk.
    Trunk(usize),
    /// A queue's backend: `backend`.
    Backend,
    /// Nobody we know: `unknown`.
    Unknown,
}

impl TrunkId {
    /// The label text: the trunk's name, `backend` or `unknown`.
    ///
    /// # Panics
    /// If the id indexes past `snap`'s trunks (ids come from the snapshot they are used with).
    pub fn text(self, snap: &Snapshot) -> &str {
        match self {
            TrunkId::Trunk(i) => {
                &snap
                    .trunks
                    .get(i)
                    .expect("invariant: a TrunkId indexes the snapshot that made it")
                    .name
            }
            TrunkId::Backend => Source::Backend.label(),
            TrunkId::Unknown => Source::Unknown.label(),
        }
    }
}

/// A message's `phase` label: a legacy number's migration phase, `new` for the new number,
/// `none` when not routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhaseLabel {
    /// A legacy number's phase.
    Legacy(PhaseName),
    /// The new number.
    New,
    /// Not routed to a number.
    None,
}

impl PhaseLabel {
    /// Every value, in a fixed order (its [`PhaseLabel::index`]).
    pub const ALL: [PhaseLabel; 6] = [
        PhaseLabel::Legacy(PhaseName::Before),
        PhaseLabel::Legacy(PhaseName::Parallel),
        PhaseLabel::Legacy(PhaseName::Retired),
        PhaseLabel::Legacy(PhaseName::Decommissioned),
        PhaseLabel::New,
        PhaseLabel::None,
    ];

    /// The label text.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseLabel::Legacy(p) => p.as_str(),
            PhaseLabel::New => "new",
            PhaseLabel::None => "none",
        }
    }

    /// Its position in [`PhaseLabel::ALL`].
    pub fn index(self) -> usize {
        match self {
            PhaseLabel::Legacy(PhaseName::Before) => 0,
            PhaseLabel::Legacy(PhaseName::Parallel) => 1,
            PhaseLabel::Legacy(PhaseName::Retired) => 2,
            PhaseLabel::Legacy(PhaseName::Decommissioned) => 3,
            PhaseLabel::New => 4,
            PhaseLabel::None => 5,
        }
    }
}

/// The labels a routed request is counted under, as ids into the snapshot that routed it
/// (the metrics edge turns them into text only when it registers or renders a series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteIds {
    /// The `number` label.
    pub number: NumberId,
    /// The `queue` label: a queue, or `none`.
    pub queue: Option<QueueId>,
    /// The `phase` label.
    pub phase: PhaseLabel,
}

impl RouteIds {
    /// Not routed to any number or queue: `none`, `none`, `none`.
    pub const NONE: RouteIds = RouteIds {
        number: NumberId::None,
        queue: None,
        phase: PhaseLabel::None,
    };
}

/// The facts about an out-of-dialog request that routing depends on.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a, 's> {
    /// The request method.
    pub method: Method<'a>,
    /// The Request-URI as received.
    pub request_uri: &'a str,
    /// Who sent it.
    pub source: Source<'s>,
}

/// Why the gateway refused or dropped a message; a closed set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The dialled number is not configured (or not a number).
    UnknownNumber,
    /// The source address is in no trunk.
    UnknownSource,
    /// Max-Forwards reached 0.
    MaxForwards,
    /// The request already passed through this gateway with the same routing state.
    Loop,
    /// Bytes that are not SIP.
    Malformed,
    /// SIP, but missing mandatory headers or inconsistent.
    BadRequest,
    /// A retired or decommissioned legacy number answered with an error.
    Retired,
    /// The new number is not yet in service in the caller's area.
    NotLaunched,
    /// The gateway could not keep up (a full connection queue), or a new call was over a rate
    /// limit or shed.
    Overload,
    /// A response whose top Via branch the gateway did not make (no Via of ours, or its MAC
    /// does not match the branch and return hop): an attempt to relay through the gateway.
    ForgedResponse,
    /// A response from an address that is neither a backend nor in a trunk.
    UntrustedResponseSource,
    /// The gateway's own fault: handling the message panicked (caught, the message dropped).
    /// Not the peer's doing, so not counted as `malformed`.
    InternalError,
    /// No queue could take a new call: closed, or every backend down, with no overflow left.
    NoBackend,
}

impl RejectReason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [RejectReason; 13] = [
        RejectReason::UnknownNumber,
        RejectReason::UnknownSource,
        RejectReason::MaxForwards,
        RejectReason::Loop,
        RejectReason::Malformed,
        RejectReason::BadRequest,
        RejectReason::Retired,
        RejectReason::NotLaunched,
        RejectReason::Overload,
        RejectReason::ForgedResponse,
        RejectReason::UntrustedResponseSource,
        RejectReason::InternalError,
        RejectReason::NoBackend,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownNumber => "unknown_number",
            RejectReason::UnknownSource => "unknown_source",
            RejectReason::MaxForwards => "max_forwards",
            RejectReason::Loop => "loop",
            RejectReason::Malformed => "malformed",
            RejectReason::BadRequest => "bad_request",
            RejectReason::Retired => "retired",
            RejectReason::NotLaunched => "not_launched",
            RejectReason::Overload => "overload",
            RejectReason::ForgedResponse => "forged_response",
            RejectReason::UntrustedResponseSource => "untrusted_response_source",
            RejectReason::InternalError => "internal_error",
            RejectReason::NoBackend => "no_backend",
        }
    }
}

/// What to do with an out-of-dialog request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'s> {
    /// Forward to one of the queue's backends (the Request-URI is the backend's, with its
    /// queue's `target` as the user part).
    Forward {
        /// Index of the queue.
        queue: QueueId,
        /// Mark the call as having come in on a legacy number (History-Info / Diversion).
        mark: bool,
    },
    /// Answer it here.
    Reply {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: Cow<'s, str>,
        /// Why, as a Reason header (RFC 3326), if any.
        cause: Option<Cause<'s>>,
        /// For a redirect: the number to dial instead (its Contact points at the gateway).
        redirect_to: Option<&'s str>,
        /// Why, when it is a refusal.
        reject: Option<RejectReason>,
    },
}

/// A decision with the labels it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<'s> {
    /// What to do.
    pub decision: Decision<'s>,
    /// The canonical dialled number if configured, `other` if not.
    pub number: &'s str,
    /// The queue's name, or `none`.
    pub queue: &'s str,
    /// The same labels as ids (for the metrics edge); the phase is only there.
    pub ids: RouteIds,
}

impl Routed<'_> {
    /// The migration phase (`before`, `parallel`, `retired`, `decommissioned`), `new` for the
    /// new number, `none` otherwise.
    pub fn phase(&self) -> &'static str {
        self.ids.phase.as_str()
    }
}

fn reply<'s>(
    status: u16,
    reason: &'static str,
    cause: Option<Cause<'s>>,
    reject: Option<RejectReason>,
) -> Decision<'s> {
    Decision::Reply {
        status,
        reason: Cow::Borrowed(reason),
        cause,
        redirect_to: None,
        reject,
    }
}

/// Routes an out-of-dialog request (or a CANCEL / non-2xx ACK, which follow their INVITE).
pub fn decide<'s>(f: &Facts<'_, 's>, snap: &'s Snapshot, now: SystemTime) -> Routed<'s> {
    let trunk = match f.source {
        Source::Trunk(t) => t,
        Source::Backend | Source::Unknown => {
            return unrouted(reply(
                403,
                "Forbidden",
                Some(Cause::Sip {
                    status: 403,
                    text: "source is not a configured trunk".into(),
                }),
                Some(RejectReason::UnknownSource),
            ));
        }
    };
    if f.method == Method::Options {
        // Carrier keep-alive (RFC 3261 §11): answered here whatever the Request-URI says.
        return Routed {
            decision: reply(200, "OK", None, None),
            number: "none",
            queue: "none",
            ids: RouteIds::NONE,
        };
    }
    let dialling = Dialling {
        origin_area: trunk.origin_area.as_ref(),
    };
    let Ok(dialled) = normalize(f.request_uri, &dialling) else {
        return unrouted(reply(
            404,
            "Not Found",
            Some(UNALLOCATED),
            Some(RejectReason::UnknownNumber),
        ));
    };
    let m = &snap.mappings;
    let Some((id, entry)) = m.lookup_dialled(&dialled) else {
        return unrouted(reply(
            404,
            "Not Found",
            Some(UNALLOCATED),
            Some(RejectReason::UnknownNumber),
        ));
    };
    match entry {
        Entry::NewNumber { area } => {
            let launched =
                area.is_none_or(|a| a.answer_before_launch || a.launch.is_none_or(|l| now >= l));
            new_number(area, id, launched, snap)
        }
        Entry::Legacy(l) => legacy(l, id, phase_at(&l.schedule, now), snap),
    }
}

/// The decision for the new number dialled in `area` (or with no area known; `id` says which),
/// launched there or not yet.
fn new_number<'s>(
    area: Option<&'s Area>,
    id: NumberId,
    launched: bool,
    snap: &'s Snapshot,
) -> Routed<'s> {
    let m = &snap.mappings;
    let number = area.map_or(m.new_number.as_str(), |a| a.new_number.as_str());
    let entry = Entry::NewNumber { area };
    let ids = |queue| RouteIds {
        number: id,
        queue,
        phase: PhaseLabel::New,
    };
    let Some(q) = entry.queue(m).map(|i| (i, snap.queue(i))) else {
        let other = unrouted(reply(
            404,
            "Not Found",
            Some(UNALLOCATED),
            Some(RejectReason::UnknownNumber),
        ));
        return Routed {
            number,
            ids: RouteIds {
                number: id,
                ..other.ids
            },
            ..other
        };
    };
    if !launched {
        let cause = Cause::Sip {
            status: 404,
            text: format!("{} is not yet in service in this area", m.new_number).into(),
        };
        return Routed {
            decision: reply(
                404,
                "Not Found",
                Some(cause),
                Some(RejectReason::NotLaunched),
            ),
            number,
            queue: &q.1.name,
            ids: ids(Some(q.0)),
        };
    }
    Routed {
        decision: Decision::Forward {
            queue: q.0,
            mark: false,
        },
        number,
        queue: &q.1.name,
        ids: ids(Some(q.0)),
    }
}

/// The decision for legacy number `l` (whose id is `id`) in `phase`.
fn legacy<'s>(l: &'s Legacy, id: NumberId, phase: Phase<'s>, snap: &'s Snapshot) -> Routed<'s> {
    let m = &snap.mappings;
    let ids = |queue| RouteIds {
        number: id,
        queue,
        phase: PhaseLabel::Legacy(phase.name()),
    };
    let forward = |queue: QueueId, mark: bool| {
        let q = snap.queue(queue);
        Routed {
            decision: Decision::Forward { queue, mark },
            number: &l.number,
            queue: &q.name,
            ids: ids(Some(queue)),
        }
    };
    let queue_name = snap.queue(l.queue).name.as_str();
    match phase {
        Phase::Before => forward(l.queue, false),
        Phase::Parallel | Phase::Retired(Treatment::Route) => forward(l.queue, true),
        Phase::Retired(Treatment::Announce { queue }) => forward(*queue, true),
        Phase::Retired(Treatment::Redirect { status }) => {
            let area = l
                .area(&m.areas)
                .map_or(m.new_number.as_str(), |a| a.new_number.as_str());
            let reason = if *status == 301 {
                "Moved Permanently"
            } else {
                "Moved Temporarily"
            };
            let decision = Decision::Reply {
                status: *status,
                reason: Cow::Borrowed(reason),
                cause: Some(Cause::Sip {
                    status: *status,
                    text: format!("number changed to {}", m.new_number).into(),
                }),
                redirect_to: Some(area),
                reject: None,
            };
            Routed {
                decision,
                number: &l.number,
                queue: queue_name,
                ids: ids(Some(l.queue)),
            }
        }
        Phase::Retired(Treatment::Reject { status, reason }) => {
            let decision = Decision::Reply {
                status: *status,
                reason: Cow::Borrowed(reason.as_str()),
                cause: Some(Cause::Sip {
                    status: *status,
                    text: Cow::Borrowed(reason.as_str()),
                }),
                redirect_to: None,
                reject: Some(RejectReason::Retired),
            };
            Routed {
                decision,
                number: &l.number,
                queue: queue_name,
                ids: ids(Some(l.queue)),
            }
        }
        // RFC 3398 maps Q.850 cause 22 "number changed" to 410 Gone.
        Phase::Decommissioned => Routed {
            decision: reply(
                410,
                "Gone",
                Some(Cause::Q850(Q850::NumberChanged)),
                Some(RejectReason::Retired),
            ),
            number: &l.number,
            queue: "none",
            ids: ids(None),
        },
    }
}

/// A (number, queue, phase, forwarded?) combination an initial INVITE can be counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reach<'s> {
    /// The `number` label.
    pub number: &'s str,
    /// The `queue` label.
    pub queue: &'s str,
    /// Forwarded to the queue (`true`) or answered by the gateway.
    pub forwarded: bool,
    /// The labels as ids (the `phase` label is only there).
    pub ids: RouteIds,
}

impl Reach<'_> {
    /// The `phase` label.
    pub fn phase(&self) -> &'static str {
        self.ids.phase.as_str()
    }
}

impl<'s> Routed<'s> {
    /// The labels this decision is counted under.
    pub fn reach(&self) -> Reach<'s> {
        Reach {
            number: self.number,
            queue: self.queue,
            forwarded: matches!(self.decision, Decision::Forward { .. }),
            ids: self.ids,
        }
    }
}

/// Every combination of labels [`decide`] can produce for an initial INVITE from a trunk, at
/// any instant: each legacy number in each phase its calendar has, the new number in each area
/// launched or not, and unknown numbers. The metrics edge registers these series at 0 before
/// the first message (Prometheus' `increase()` cannot see the increment that creates a series);
/// both this and `decide` go through the same per-entry functions, so they cannot disagree.
pub fn reachable(snap: &Snapshot) -> Vec<Reach<'_>> {
    let m = &snap.mappings;
    let mut all = vec![unrouted(reply(404, "Not Found", None, None)).reach()];
    let areas = m.areas.iter().enumerate();
    let areas = areas.map(|(i, a)| (Some(a), NumberId::Area(i)));
    for (area, id) in areas.chain(std::iter::once((None, NumberId::New))) {
        for launched in [true, false] {
            all.push(new_number(area, id, launched, snap).reach());
        }
    }
    for (i, l) in m.legacy.iter().enumerate() {
        let s = &l.schedule;
        let mut phases = vec![
            Phase::Before,
            Phase::Parallel,
            Phase::Retired(&s.when_retired),
        ];
        if s.decommissioned_from.is_some() {
            phases.push(Phase::Decommissioned);
        }
        let id = NumberId::Legacy(i);
        all.extend(phases.into_iter().map(|p| legacy(l, id, p, snap).reach()));
    }
    all.sort();
    all.dedup();
    all
}

fn unrouted(decision: Decision<'static>) -> Routed<'static> {
    Routed {
        decision,
        number: "other",
        queue: "none",
        ids: RouteIds {
            number: NumberId::Other,
            ..RouteIds::NONE
        },
    }
}

/// The Reason for a number that is not configured (Q.850 cause 1).
const UNALLOCATED: Cause<'static> = Cause::Q850(Q850::Unallocated);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::config::validate;
    use std::path::Path;

    pub(crate) const FIXTURE: &str = r#"
[gateway]
advertised = "192.0.2.10:5060"
[new_number]
number = "12356"
default_queue = "fuzhou"
[[queue]]
name = "fuzhou"
backends = ["sip:127.0.0.1:5091"]
[[queue]]
name = "xiamen"
backends = ["sip:127.0.0.1:5092"]
[[queue]]
name = "announcement"
target = "number-changed"
backends = ["sip:127.0.0.1:5089"]
[[area]]
code = "0591"
queue = "fuzhou"
[[area]]
code = "0592"
queue = "xiamen"
launch = 2025-04-07T00:00:00+08:00
[[trunk]]
name = "fuzhou-trunk"
sources = ["10.1.0.0/16"]
origin_area = "0591"
[[trunk]]
name = "xiamen-trunk"
sources = ["10.2.0.0/16"]
origin_area = "0592"
[[trunk]]
name = "national"
sources = ["10.3.0.0/16"]
[[legacy]]
number = "0591-85666661"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
when_retired = { treatment = "route" }
[[legacy]]
number = "0591-85666221"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
decommissioned_from = 2026-01-01T00:00:00+08:00
when_retired = { treatment = "announce", queue = "announcement" }
[[legacy]]
number = "0591-85666222"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
when_retired = { treatment = "redirect", status = 301 }
[[legacy]]
number = "0592-12345678"
queue = "xiamen"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
when_retired = { treatment = "reject", status = 410, reason = "Number Changed, Dial 12356" }
"#;

    fn snap() -> Snapshot {
        validate(Path::new("fixture.toml"), FIXTURE).unwrap()
    }

    fn at(s: &str) -> SystemTime {
        crate::config::parse_instant(s).unwrap()
    }

    fn route<'s>(snap: &'s Snapshot, uri: &str, trunk: &str, now: &str) -> Routed<'s> {
        let t = snap.trunks.iter().find(|t| t.name == trunk).unwrap();
        decide(
            &Facts {
                method: Method::Invite,
                request_uri: uri,
                source: Source::Trunk(t),
            },
            snap,
            at(now),
        )
    }

    fn forwarded_to<'s>(r: &Routed<'s>) -> Option<(&'s str, bool)> {
        match r.decision {
            Decision::Forward { mark, .. } => Some((r.queue, mark)),
            Decision::Reply { .. } => None,
        }
    }

    const PARALLEL: &str = "2025-04-20T12:00:00+08:00";
    const AFTER: &str = "2025-05-07T00:00:00+08:00";

    #[test]
    fn every_spelling_of_the_new_number_reaches_the_callers_area() {
        let s = snap();
        let cases = [
            ("sip:12356@gw", "fuzhou-trunk", "fuzhou", "059112356"),
            ("sip:059112356@gw", "xiamen-trunk", "fuzhou", "059112356"),
            ("sip:12356@gw", "xiamen-trunk", "xiamen", "059212356"),
            ("tel:+86-592-12356", "fuzhou-trunk", "xiamen", "059212356"),
            ("sip:12356@gw", "national", "fuzhou", "12356"),
        ];
        for (uri, trunk, queue, number) in cases {
            let r = route(&s, uri, trunk, PARALLEL);
            assert_eq!(forwarded_to(&r), Some((queue, false)), "{uri} from {trunk}");
            assert_eq!((r.number, r.phase()), (number, "new"), "{uri} from {trunk}");
        }
    }

    #[test]
    fn legacy_numbers_route_unmarked_before_and_marked_during_the_parallel_period() {
        let s = snap();
        let before = route(
            &s,
            "sip:059185666661@gw",
            "xiamen-trunk",
            "2025-04-06T23:59:59.999+08:00",
        );
        assert_eq!(
            (forwarded_to(&before), before.phase()),
            (Some(("fuzhou", false)), "before")
        );
        let during = route(&s, "sip:85666661@gw", "fuzhou-trunk", PARALLEL);
        assert_eq!(
            (forwarded_to(&during), during.phase(), during.number),
            (Some(("fuzhou", true)), "parallel", "059185666661")
        );
        let last_ms = route(
            &s,
            "sip:85666661@gw",
            "fuzhou-trunk",
            "2025-05-06T23:59:59.999+08:00",
        );
        assert_eq!(last_ms.phase(), "parallel");
    }

    #[test]
    fn each_retired_treatment_applies_from_the_end_instant() {
        let s = snap();
        let r = route(&s, "sip:059185666661@gw", "fuzhou-trunk", AFTER);
        assert_eq!(
            (forwarded_to(&r), r.phase()),
            (Some(("fuzhou", true)), "retired")
        );

        let r = route(
            &s,
            "sip:059185666221@gw",
            "fuzhou-trunk",
            "2025-05-06T16:00:00Z",
        );
        assert_eq!(forwarded_to(&r), Some(("announcement", true)));
        // Its call centre is reached at the announcement queue's own target.
        let Decision::Forward { queue, .. } = r.decision else {
            panic!("{r:?}")
        };
        assert_eq!(s.queue(queue).target, "number-changed");
        assert!(s
            .queue(queue)
            .backends
            .iter()
            .all(|b| b.request_uri.starts_with("sip:number-changed@")));

        let r = route(&s, "sip:059185666222@gw", "fuzhou-trunk", AFTER);
        match r.decision {
            Decision::Reply {
                status,
                redirect_to,
                ..
            } => {
                assert_eq!(status, 301);
                let contact = redirect_to
                    .map(|n| crate::sip::header::contact(n, s.gateway.advertised.as_str()));
                assert_eq!(
                    contact.as_deref(),
                    Some("<sip:059112356@192.0.2.10:5060;user=phone>")
                );
            }
            other => panic!("{other:?}"),
        }

        let r = route(&s, "sip:059212345678@gw", "fuzhou-trunk", AFTER);
        match r.decision {
            Decision::Reply {
                status,
                reason,
                cause,
                reject,
                ..
            } => {
                let reason_header = cause.as_ref().map(crate::sip::header::reason);
                assert_eq!(
                    (status, reason.as_ref(), reject),
                    (
                        410,
                        "Number Changed, Dial 12356",
                        Some(RejectReason::Retired)
                    )
                );
                assert_eq!(
                    reason_header.as_deref(),
                    Some("SIP;cause=410;text=\"Number Changed, Dial 12356\"")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_label_decide_produces_is_listed_by_reachable() {
        let s = snap();
        let listed = reachable(&s);
        // Every boundary of every calendar, the instant before it, and far before and after.
        let mut instants = vec![at("2000-01-01T00:00:00Z"), at("2100-01-01T00:00:00Z")];
        for l in &s.mappings.legacy {
            let c = &l.schedule;
            for t in [
                Some(c.parallel_from),
                Some(c.retired_from),
                c.decommissioned_from,
            ]
            .into_iter()
            .flatten()
            {
                instants.extend([t - std::time::Duration::from_millis(1), t]);
            }
        }
        for a in &s.mappings.areas {
            if let Some(t) = a.launch {
                instants.extend([t - std::time::Duration::from_millis(1), t]);
            }
        }
        let mut uris: Vec<String> = s
            .mappings
            .numbers()
            .map(|n| format!("sip:{n}@gw"))
            .collect();
        uris.extend([
            "sip:12356@gw".into(),
            "sip:059185666663@gw".into(),
            "sip:85666661@gw".into(),
        ]);
        let mut seen = std::collections::BTreeSet::new();
        let mut checked = 0;
        for t in &s.trunks {
            for uri in &uris {
                for now in &instants {
                    let r = decide(
                        &Facts {
                            method: Method::Invite,
                            request_uri: uri,
                            source: Source::Trunk(t),
                        },
                        &s,
                        *now,
                    );
                    let reach = r.reach();
                    assert!(
                        listed.contains(&reach),
                        "{uri} from {} at {now:?}: {reach:?} not listed",
                        t.name
                    );
                    seen.insert(reach);
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "{checked} decisions checked");
        // Every legacy number's every phase was actually produced by `decide` above.
        for l in &s.mappings.legacy {
            let phases: std::collections::BTreeSet<&str> = seen
                .iter()
                .filter(|r| r.number == l.number)
                .map(|r| r.phase())
                .collect();
            let want = if l.schedule.decommissioned_from.is_some() {
                4
            } else {
                3
            };
            assert_eq!(phases.len(), want, "{}: {phases:?}", l.number);
        }
        // The announce treatment's queue is listed for that number, not only its home queue.
        assert!(listed
            .iter()
            .any(|r| (r.number, r.queue, r.phase(), r.forwarded)
                == ("059185666221", "announcement", "retired", true)));
        // The ids the metrics edge counts under name the same labels as the text (the phase has
        // no text of its own).
        for r in &listed {
            assert_eq!(s.mappings.number_text(r.ids.number), r.number, "{r:?}");
            assert_eq!(s.queue_label(r.ids.queue), r.queue, "{r:?}");
        }
    }

    #[test]
    fn a_decommissioned_number_is_410_gone_with_number_changed() {
        let s = snap();
        let r = route(
            &s,
            "sip:059185666221@gw",
            "fuzhou-trunk",
            "2026-01-01T00:00:00+08:00",
        );
        assert_eq!(r.phase(), "decommissioned");
        match r.decision {
            Decision::Reply {
                status,
                reason,
                cause,
                reject,
                ..
            } => {
                let reason_header = cause.as_ref().map(crate::sip::header::reason);
                assert_eq!(
                    (status, reason.as_ref(), reject),
                    (410, "Gone", Some(RejectReason::Retired))
                );
                assert_eq!(
                    reason_header.as_deref(),
                    Some("Q.850;cause=22;text=\"Number changed\"")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_new_number_before_launch_is_not_in_service_unless_configured() {
        let s = snap();
        let r = route(
            &s,
            "sip:059212356@gw",
            "fuzhou-trunk",
            "2025-04-06T15:59:59Z",
        );
        assert!(matches!(
            r.decision,
            Decision::Reply {
                status: 404,
                reject: Some(RejectReason::NotLaunched),
                ..
            }
        ));
        let r = route(
            &s,
            "sip:059212356@gw",
            "fuzhou-trunk",
            "2025-04-06T16:00:00Z",
        );
        assert_eq!(forwarded_to(&r), Some(("xiamen", false)));
        // Fuzhou has no launch date: it answers at any instant.
        let r = route(
            &s,
            "sip:059112356@gw",
            "fuzhou-trunk",
            "2000-01-01T00:00:00Z",
        );
        assert_eq!(forwarded_to(&r), Some(("fuzhou", false)));
    }

    #[test]
    fn unknown_numbers_and_sources_are_refused() {
        let s = snap();
        let r = route(&s, "sip:059185666663@gw", "fuzhou-trunk", PARALLEL);
        assert_eq!(r.number, "other");
        assert!(matches!(
            r.decision,
            Decision::Reply {
                status: 404,
                reject: Some(RejectReason::UnknownNumber),
                ..
            }
        ));
        let r = route(&s, "sip:85666661@gw", "xiamen-trunk", PARALLEL); // 059285666661: not ours
        assert!(matches!(r.decision, Decision::Reply { status: 404, .. }));
        let r = decide(
            &Facts {
                method: Method::Invite,
                request_uri: "sip:12356@gw",
                source: Source::Unknown,
            },
            &s,
            at(PARALLEL),
        );
        assert!(matches!(
            r.decision,
            Decision::Reply {
                status: 403,
                reject: Some(RejectReason::UnknownSource),
                ..
            }
        ));
    }

    #[test]
    fn options_from_a_trunk_is_answered_here() {
        let s = snap();
        let t = &s.trunks[0];
        let r = decide(
            &Facts {
                method: Method::Options,
                request_uri: "sip:192.0.2.10",
                source: Source::Trunk(t),
            },
            &s,
            at(PARALLEL),
        );
        assert!(matches!(r.decision, Decision::Reply { status: 200, .. }));
    }
}
