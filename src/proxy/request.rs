//! A request through the stateless proxy, as a pipeline: who sent it and where answers go
//! ([`Ctx::new`]) → the checks of RFC 3261 §16.3 ([`check`]) → loose routing of in-dialog
//! requests ([`loose_route`]) → overload control for new calls ([`admit`]) → the routing
//! decision ([`decide`]) → answering it here ([`reply`]) or forwarding it to a backend
//! ([`forward`]). Pure: every input is a parameter; the text of every header comes from
//! `sip::header`.

use super::auth::{key, sealed_parts, via_is_ours, ReturnHop};
use super::{
    call_key, method_label, reason_phrase, Act, CallOutcome, Conditions, Event, Kind, Label,
    Outcome, DEFAULT_MAX_FORWARDS,
};
use crate::backend::{pick_keyed, Pick};
use crate::config::{QueueId, Snapshot};
use crate::peer::{Peer, Transport};
use crate::route::{decide, Decision, Facts, RejectReason, RouteIds, Routed, Source};
use crate::sip::header::{self, GatewayVia, ViaMarks};
use crate::sip::{
    self, Branch, Cause, HeaderName, HostPort, Message, Method, RequestEdit, Uri, Via,
};
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

/// What every step needs to know about the request: the message, who sent it, where the
/// gateway's own answers go, and the branch and return hop a forwarded copy carries.
struct Ctx<'m, 's> {
    msg: &'m Message<'m>,
    method: Method<'m>,
    from: Peer,
    snap: &'s Snapshot,
    source: Source<'s>,
    /// `received` to stamp on the top Via (RFC 3261 §18.2.1), when the source differs.
    received: Option<IpAddr>,
    /// `rport` value to stamp (RFC 3581), when the client asked for it.
    rport: Option<u16>,
    /// Where the gateway's own answers go (RFC 3261 §18.2.2, RFC 3581 §4).
    reply_to: Peer,
    branch: Branch,
    /// The Call-ID's rendezvous key (`hash64(&[call_id])`), hashed beside the branch.
    call_key: u64,
    /// The source port of the TCP connection the request came in on.
    connection: Option<u16>,
    /// The return hop a response will find below the gateway's Via, for the branch MAC.
    hop: [u8; 38],
}

/// A refusal: status, reason phrase, and why (a metric label).
struct Refusal {
    status: u16,
    reason: &'static str,
    why: RejectReason,
}

const fn refusal(status: u16, reason: &'static str, why: RejectReason) -> Refusal {
    Refusal {
        status,
        reason,
        why,
    }
}

/// What the checks established about a request that passed them.
struct Checked {
    /// It carries a To tag.
    in_dialog: bool,
    /// An out-of-dialog OPTIONS: a keep-alive answered here.
    keepalive: bool,
    /// The Max-Forwards the forwarded copy carries (already decremented).
    max_forwards: u8,
}

impl<'m, 's> Ctx<'m, 's> {
    /// `None` when the request has no top Via: nowhere to send an answer (RFC 3261 §8.1.1.7).
    fn new(
        msg: &'m Message<'m>,
        method: Method<'m>,
        from: Peer,
        snap: &'s Snapshot,
        source: Source<'s>,
    ) -> Option<Ctx<'m, 's>> {
        let top = msg.top_via()?;
        let sent_by = top.sent_by().and_then(|hp| hp.host.ip());
        let received = match sent_by {
            Some(ip) if ip == from.addr.ip() && top.rport.is_none() => None,
            _ => Some(from.addr.ip()),
        };
        let rport = match top.rport {
            Some(None) => Some(from.addr.port()),
            _ => None,
        };
        let reply_to = match (from.transport, top.rport) {
            (Transport::Tcp, _) | (Transport::Udp, Some(_)) => from,
            (Transport::Udp, None) => Peer {
                addr: SocketAddr::new(from.addr.ip(), top.port.unwrap_or(sip::uri::DEFAULT_PORT)),
                transport: Transport::Udp,
            },
        };
        // What a response will find below the gateway's Via: the top Via as forwarded
        // (stamped), and the connection it came in on. The branch's MAC binds it.
        let connection = (from.transport == Transport::Tcp).then_some(from.addr.port());
        let hop = if !top.nested {
            ReturnHop::stamped(&top, sent_by, received, rport, connection)
        } else {
            // Quotes or brackets: read the hop from the stamped text, as the response will.
            msg.via_entries().next().and_then(|entry| {
                let stamped = sip::stamp_via(entry, received, rport);
                Via::parse(&stamped)
                    .ok()
                    .and_then(|v| ReturnHop::of(&v, connection))
            })
        }
        .map_or([0u8; 38], |h| h.bytes());
        let (branch, call_key) = Branch::of_top_keyed(msg, Some(&top));
        Some(Ctx {
            msg,
            method,
            from,
            snap,
            source,
            received,
            rport,
            reply_to,
            branch,
            call_key,
            connection,
            hop,
        })
    }

    fn is_ack(&self) -> bool {
        self.method == Method::Ack
    }

    /// The To tag of the gateway's own answers: derived from the branch, so a retransmission
    /// gets the same answer and the ACK of a non-2xx answer carries it back.
    fn to_tag(&self) -> String {
        format!("dg{:08x}", self.branch.txn as u32)
    }

    /// Writes the gateway's own answer into `out`.
    fn answer(&self, status: u16, reason: &str, extra: &[(&str, &str)], out: &mut Vec<u8>) {
        *out = sip::reply(
            self.msg,
            &sip::Reply {
                status,
                reason,
                to_tag: &self.to_tag(),
                received: self.received,
                rport: self.rport,
                extra,
            },
        );
    }

    /// An answer sent back to the requester.
    fn replied(&self, mut label: Label<'s>, reject: Option<RejectReason>) -> Outcome<'s> {
        label.act = Act::Replied;
        label.reject = reject;
        Outcome {
            send: Some(self.reply_to),
            reconnect: None,
            label,
        }
    }

    /// Refuses the request. An ACK is never answered (RFC 3261 §17.2.1): one refused here
    /// acknowledges a final response the gateway gave, so it is absorbed, not counted twice.
    fn refuse(&self, label: Label<'s>, r: &Refusal, out: &mut Vec<u8>) -> Outcome<'s> {
        if self.is_ack() {
            return absorbed(label);
        }
        self.answer(r.status, r.reason, &[], out);
        self.replied(label, Some(r.why))
    }

    /// The gateway's own Via for a copy sent over `transport`, its branch sealed with the MAC
    /// over the return hop and the marks.
    fn via<'v>(
        &'v self,
        transport: Transport,
        number: Option<&'v str>,
        queue: Option<&'v str>,
    ) -> GatewayVia<'v> {
        let sealed = self
            .branch
            .sealed(&key(self.snap), &sealed_parts(&self.hop, number, queue));
        GatewayVia {
            transport,
            at: self.snap.gateway.advertised.as_str(),
            branch: sealed,
            marks: ViaMarks {
                number,
                queue,
                connection: self.connection,
            },
        }
    }
}

/// What routing decided to answer here (the fields of [`Decision::Reply`]).
struct Answer<'a> {
    status: u16,
    reason: &'a str,
    cause: Option<&'a Cause<'a>>,
    redirect_to: Option<&'a str>,
    reject: Option<RejectReason>,
}

/// A message dropped or absorbed without an answer.
fn absorbed(label: Label<'_>) -> Outcome<'_> {
    Outcome {
        send: None,
        reconnect: None,
        label,
    }
}

/// Handles a request from `from`; the bytes to send, if any, are left in `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn request<'s>(
    msg: &Message<'_>,
    method: Method<'_>,
    uri: &str,
    from: Peer,
    snap: &'s Snapshot,
    cond: &Conditions<'_>,
    event: &mut Option<Event<'s>>,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Outcome<'s> {
    let source = match snap.trunk_for(from.addr.ip()) {
        Some(t) => Source::Trunk(t),
        None if snap.is_backend(from.addr.ip()) => Source::Backend,
        None => Source::Unknown,
    };
    let mut label = Label {
        kind: Kind::Request {
            method: method_label(method),
            attempt: false,
            outcome: None,
        },
        number: RouteIds::NONE.number,
        queue: RouteIds::NONE.queue,
        trunk: source.id(snap),
        phase: RouteIds::NONE.phase,
        act: Act::Dropped,
        reject: None,
        call: 0,
        snapshot: std::marker::PhantomData,
    };
    if source == Source::Unknown && !snap.gateway.answer_strangers {
        // Sources in no trunk get no answer at all unless configured: an answer to a spoofed
        // source is what a reflection attack buys.
        label.reject = Some(RejectReason::UnknownSource);
        return absorbed(label);
    }
    let Some(ctx) = Ctx::new(msg, method, from, snap, source) else {
        label.reject = Some(RejectReason::BadRequest);
        return absorbed(label);
    };
    let checked = match check(&ctx) {
        Ok(c) => c,
        Err(r) => return ctx.refuse(label, &r, out),
    };
    if let Some(o) = loose_route(&ctx, uri, &checked, label, out) {
        return o;
    }
    if let Some(o) = admit(&ctx, &checked, cond, event, label, out) {
        return o;
    }
    let routed = decide(
        &Facts {
            method,
            request_uri: uri,
            source,
        },
        snap,
        now,
    );
    label.number = routed.ids.number;
    label.queue = routed.ids.queue;
    label.phase = routed.ids.phase;
    let attempt = method == Method::Invite && !checked.in_dialog;
    if attempt {
        label.call = call_key(msg, 0);
    }
    label.kind = Kind::Request {
        method: method_label(method),
        attempt,
        outcome: None,
    };
    match &routed.decision {
        Decision::Reply {
            status,
            reason,
            cause,
            redirect_to,
            reject,
        } => {
            let answer = Answer {
                status: *status,
                reason,
                cause: cause.as_ref(),
                redirect_to: *redirect_to,
                reject: *reject,
            };
            reply(&ctx, &answer, &checked, label, out)
        }
        Decision::Forward { queue, mark } => {
            let to = (*queue, *mark);
            forward(&ctx, &routed, to, &checked, cond, event, now, label, out)
        }
    }
}

/// RFC 3261 §8.2.2 and §16.3 steps 1, 2 and 4: mandatory headers, Max-Forwards, loops.
fn check(ctx: &Ctx<'_, '_>) -> Result<Checked, Refusal> {
    let msg = ctx.msg;
    let cseq = msg.cseq();
    let missing = [
        (
            msg.header(HeaderName::From).is_none(),
            "Bad Request - Missing From",
        ),
        (
            msg.header(HeaderName::To).is_none(),
            "Bad Request - Missing To",
        ),
        (msg.call_id().is_none(), "Bad Request - Missing Call-ID"),
        (cseq.is_none(), "Bad Request - Missing or Bad CSeq"),
    ]
    .into_iter()
    .find_map(|(gone, why)| gone.then_some(why));
    if let Some(why) = missing {
        return Err(refusal(400, why, RejectReason::BadRequest));
    }
    if cseq.is_some_and(|(_, m)| m != ctx.method.as_str()) {
        return Err(refusal(
            400,
            "Bad Request - CSeq Method Mismatch",
            RejectReason::BadRequest,
        ));
    }
    let in_dialog = msg.to_tag().is_some();
    let max_forwards = match msg.max_forwards() {
        None => u32::from(DEFAULT_MAX_FORWARDS) + 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Err(refusal(
                400,
                "Bad Request - Bad Max-Forwards",
                RejectReason::BadRequest,
            ))
        }
    };
    let keepalive = ctx.method == Method::Options && !in_dialog;
    if max_forwards == 0 && !keepalive {
        // §16.3 step 2 (an OPTIONS with Max-Forwards 0 is answered later, as a UAS).
        return Err(refusal(483, "Too Many Hops", RejectReason::MaxForwards));
    }
    // §16.3 step 4: a Via of ours with this request's routing state means a loop. Only Via
    // lines holding a gateway branch are split into entries, and only entries holding one are
    // parsed: most requests have none.
    let looped = msg
        .headers_named(HeaderName::Via)
        .filter(|line| has_gateway_branch(&line.value))
        .any(|line| {
            sip::scan::split_list(&line.value)
                .filter(|e| has_gateway_branch(e))
                .filter_map(|e| Via::parse(e).ok())
                .any(|v| {
                    via_is_ours(&v, ctx.snap)
                        && v.branch.and_then(Branch::loop_key_of) == Some(ctx.branch.loop_key)
                })
        });
    if looped {
        return Err(refusal(482, "Loop Detected", RejectReason::Loop));
    }
    Ok(Checked {
        in_dialog,
        keepalive,
        max_forwards: u8::try_from(max_forwards.saturating_sub(1)).unwrap_or(u8::MAX),
    })
}

/// Whether a Via entry holds a branch this gateway wrote (its prefix, anywhere in the text).
fn has_gateway_branch(entry: &str) -> bool {
    // Each `z` and what follows it: a Via holds one or two (the magic cookie's), so this is
    // cheaper than a general substring search set up for any needle.
    let prefix = sip::branch::GATEWAY_PREFIX.as_bytes();
    let b = entry.as_bytes();
    memchr::memchr_iter(b'z', b).any(|at| b.get(at..).is_some_and(|rest| rest.starts_with(prefix)))
}

/// Loose routing of in-dialog requests (RFC 3261 §16.4, §16.12): `None` when the request is
/// not one (it goes on to routing).
fn loose_route<'s>(
    ctx: &Ctx<'_, 's>,
    uri: &str,
    checked: &Checked,
    label: Label<'s>,
    out: &mut Vec<u8>,
) -> Option<Outcome<'s>> {
    let (msg, snap) = (ctx.msg, ctx.snap);
    // Leading Route entries naming the gateway: one after our Record-Route, two after a
    // double Record-Route (RFC 5658).
    let ours = msg
        .routes()
        .take(2)
        .take_while(|r| {
            snap.gateway.advertised.wrote_route(r)
                || Uri::parse(r)
                    .and_then(|u| u.host_port)
                    .is_some_and(|hp| snap.is_ours(&hp))
        })
        .count();
    let ip_target = |u: &str| {
        Uri::parse(u)
            .and_then(|u| u.ip_target())
            .map(|(addr, transport)| Peer { addr, transport })
    };
    // An in-dialog request sent to the gateway without our Route (a carrier SBC that sends
    // every request of the trunk here) goes to its remote target, when that is a peer we
    // serve: a backend for trunk traffic, a trunk address for backend traffic. Never a relay.
    let dialog_target = (ours == 0 && checked.in_dialog)
        .then(|| ip_target(uri))
        .flatten()
        .filter(|to| !snap.is_ours(&HostPort::from(to.addr)))
        .filter(|to| match ctx.source {
            Source::Trunk(_) => snap.is_backend(to.addr.ip()),
            Source::Backend => snap.trunk_for(to.addr.ip()).is_some(),
            Source::Unknown => false,
        });
    if ours == 0 && dialog_target.is_none() {
        return None;
    }
    if ctx.source == Source::Unknown {
        let r = refusal(403, "Forbidden", RejectReason::UnknownSource);
        return Some(ctx.refuse(label, &r, out));
    }
    let next = msg.routes().nth(ours).unwrap_or(uri);
    let Some(to) = ip_target(next) else {
        let r = refusal(
            502,
            "Bad Gateway - Next Hop Is Not An IP Address",
            RejectReason::BadRequest,
        );
        return Some(ctx.refuse(label, &r, out));
    };
    let via = ctx.via(to.transport, None, None);
    let edit = RequestEdit {
        received: ctx.received,
        rport: ctx.rport,
        max_forwards: checked.max_forwards,
        pop_routes: ours,
        ..RequestEdit::default()
    };
    sip::forward_request(msg, &edit, &via, out);
    Some(Outcome {
        send: Some(to),
        reconnect: None,
        label: Label {
            act: Act::Forwarded,
            ..label
        },
    })
}

/// Overload control: only new calls from trunks are refused (503 with Retry-After); ACK,
/// BYE, CANCEL, in-dialog requests and responses always pass, so calls already up are never
/// broken by someone else's flood. `None` when the request may go on.
fn admit<'s>(
    ctx: &Ctx<'_, 's>,
    checked: &Checked,
    cond: &Conditions<'_>,
    event: &mut Option<Event<'s>>,
    label: Label<'s>,
    out: &mut Vec<u8>,
) -> Option<Outcome<'s>> {
    let (Method::Invite, false, Source::Trunk(t)) = (ctx.method, checked.in_dialog, ctx.source)
    else {
        return None;
    };
    let refused = if cond.shedding {
        Event::Shed { trunk: &t.name }
    } else {
        let by = (cond.admit)(ctx.snap.trunk_index(t), t, ctx.from.addr.ip()).err()?;
        Event::Limited { trunk: &t.name, by }
    };
    *event = Some(refused);
    let retry = ctx.snap.overload.retry_after.to_string();
    ctx.answer(
        503,
        "Service Unavailable",
        &[("Retry-After", retry.as_str())],
        out,
    );
    Some(ctx.replied(label, Some(RejectReason::Overload)))
}

/// Answers a request routing decided to answer here.
fn reply<'s>(
    ctx: &Ctx<'_, 's>,
    a: &Answer<'_>,
    checked: &Checked,
    mut label: Label<'s>,
    out: &mut Vec<u8>,
) -> Outcome<'s> {
    let Answer {
        status,
        reason,
        cause,
        redirect_to,
        reject,
    } = a;
    if ctx.is_ack() {
        // The ACK of the gateway's own final answer: absorbed, not a second refusal.
        return absorbed(label);
    }
    // A CANCEL of an INVITE the gateway answered itself matches no transaction.
    let (status, reason) = match (ctx.method, *status) {
        (Method::Cancel, s) if s < 400 => (481, "Call/Transaction Does Not Exist"),
        (_, s) => (s, *reason),
    };
    let reason_value = cause.map(header::reason);
    let contact = redirect_to.map(|n| header::contact(n, ctx.snap.gateway.advertised.as_str()));
    let mut extra: Vec<(&str, &str)> = Vec::with_capacity(4);
    if let Some(r) = reason_value.as_deref() {
        extra.push(("Reason", r));
    }
    if let Some(c) = contact.as_deref() {
        extra.push(("Contact", c));
    }
    if checked.keepalive && status == 200 {
        extra.push(("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"));
        extra.push(("Accept", "application/sdp"));
    }
    ctx.answer(status, reason, &extra, out);
    if let Kind::Request {
        attempt: true,
        method,
        ..
    } = label.kind
    {
        if status >= 200 {
            label.kind = Kind::Request {
                method,
                attempt: true,
                outcome: CallOutcome::of(status),
            };
        }
    }
    ctx.replied(label, *reject)
}

/// Forwards a request routing sent to a queue: to a backend that is up (rendezvous by
/// Call-ID), through the overflow chain, or, with nowhere to go, a clear final answer.
#[allow(clippy::too_many_arguments)]
fn forward<'s>(
    ctx: &Ctx<'_, 's>,
    routed: &Routed<'s>,
    (queue, mark): (QueueId, bool),
    checked: &Checked,
    cond: &Conditions<'_>,
    event: &mut Option<Event<'s>>,
    now: SystemTime,
    mut label: Label<'s>,
    out: &mut Vec<u8>,
) -> Outcome<'s> {
    let (msg, snap) = (ctx.msg, ctx.snap);
    // The ACK of a final response the gateway gave itself (a 503 under overload or with
    // nowhere to go) carries the To tag it wrote, derived from the INVITE's branch that the
    // ACK shares: absorbed, never forwarded.
    if ctx.is_ack() && msg.to_tag() == Some(ctx.to_tag().as_str()) {
        return absorbed(label);
    }
    let backend = match pick_keyed(snap, queue, ctx.call_key, cond.down, now) {
        Pick::To {
            queue: taken,
            backend,
            overflowed,
        } => {
            if let Some(why) = overflowed {
                *event = Some(Event::Overflow {
                    from: routed.queue,
                    to: &snap.queue(taken).name,
                    why,
                });
            }
            backend
        }
        Pick::Nowhere { why, .. } => {
            if ctx.is_ack() {
                // The ACK of the gateway's own final answer: absorbed.
                return absorbed(label);
            }
            if ctx.method == Method::Cancel {
                let r = refusal(
                    481,
                    "Call/Transaction Does Not Exist",
                    RejectReason::NoBackend,
                );
                return ctx.refuse(label, &r, out);
            }
            *event = Some(Event::Nowhere {
                queue: routed.queue,
                why,
            });
            // Never silence: a clear final answer the caller's switch can act on.
            let f = snap.failover;
            let retry = f.retry_after.to_string();
            ctx.answer(
                f.status,
                reason_phrase(f.status),
                &[("Retry-After", retry.as_str())],
                out,
            );
            if let Kind::Request {
                attempt: true,
                method,
                ..
            } = label.kind
            {
                label.kind = Kind::Request {
                    method,
                    attempt: true,
                    outcome: CallOutcome::of(f.status),
                };
            }
            return ctx.replied(label, Some(RejectReason::NoBackend));
        }
    };
    let to = Peer {
        addr: backend.addr,
        transport: backend.transport,
    };
    // The taken queue's target at this backend (an overflow queue's call centre gets its own).
    let request_uri = backend.request_uri.as_str();
    let via = ctx.via(to.transport, Some(routed.number), Some(routed.queue));
    let initial_invite = ctx.method == Method::Invite && !checked.in_dialog;
    let record_route = (initial_invite && snap.gateway.record_route).then(|| {
        snap.gateway
            .advertised
            .record_route(ctx.from.transport, to.transport)
    });
    // A legacy number's marks, written into one buffer (no mark: nothing allocated).
    let marks = (mark && ctx.method == Method::Invite).then(|| {
        header::LegacyMarks::new(
            msg,
            routed.number,
            snap.gateway.advertised.as_str(),
            request_uri,
            snap.gateway.history_info,
            snap.gateway.diversion,
        )
    });
    let headers = marks.as_ref().map(|m| (m.headers(), m.len()));
    let extra = headers
        .as_ref()
        .and_then(|(h, len)| h.get(..*len))
        .unwrap_or_default();
    let edit = RequestEdit {
        received: ctx.received,
        rport: ctx.rport,
        request_uri: Some(request_uri),
        max_forwards: checked.max_forwards,
        pop_routes: 0,
        record_route: record_route.as_deref(),
        extra,
    };
    sip::forward_request(msg, &edit, &via, out);
    label.act = Act::Forwarded;
    Outcome {
        send: Some(to),
        reconnect: None,
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::has_gateway_branch;
    use crate::sip::branch::GATEWAY_PREFIX;

    proptest::proptest! {
        /// The search by `z` finds the prefix exactly where a substring search does.
        #[test]
        fn a_gateway_branch_is_found_where_a_substring_search_finds_it(
            s in "(z9hG4bKdg|z9hG4bK|z9|[zdg;, =a-c])*"
        ) {
            proptest::prop_assert_eq!(has_gateway_branch(&s), s.contains(GATEWAY_PREFIX));
        }
    }

    #[test]
    fn a_gateway_branch_is_found_after_another_z() {
        assert!(has_gateway_branch(
            "SIP/2.0/UDP z.example;branch=z9hG4bKdg0123"
        ));
        assert!(!has_gateway_branch("SIP/2.0/UDP a;branch=z9hG4bK-1-1-0"));
    }
}
