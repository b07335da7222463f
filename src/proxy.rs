//! The whole per-message path of a stateless proxy (RFC 3261 §16.11): bytes in, at most one
//! message out, plus the labels it is counted under. Pure: the snapshot, the sender and the
//! instant are parameters; the transport edge sends what this returns.

use crate::backend::{pick, Pick, Why};
use crate::config::{Backend, Snapshot, Trunk};
use crate::health::Down;
use crate::limit::Limited;
use crate::peer::{Peer, Transport};
use crate::route::{decide, Decision, Facts, RejectReason, Source};
use crate::sip::parse::param;
use crate::sip::{self, Branch, HeaderName, Key, Message, Method, RequestEdit, Start, Via};
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

/// The Max-Forwards a request gets when it arrives without one (RFC 3261 §16.6 step 3).
pub const DEFAULT_MAX_FORWARDS: u8 = 70;

/// What became of a message: forwarded, answered or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Sent on to the next hop.
    Forwarded,
    /// Answered by the gateway itself.
    Replied,
    /// Discarded.
    Dropped,
}

impl Act {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Forwarded => "forwarded",
            Act::Replied => "replied",
            Act::Dropped => "dropped",
        }
    }
}

/// How a call attempt ended, read from the final response to its INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// 2xx.
    Answered,
    /// 3xx.
    Redirected,
    /// 487 Request Terminated (the caller hung up while ringing).
    Cancelled,
    /// Other 4xx.
    Failed4xx,
    /// 5xx.
    Failed5xx,
    /// 6xx.
    Failed6xx,
}

impl CallOutcome {
    /// Every outcome, for pre-registering metric series.
    pub const ALL: [CallOutcome; 6] = [
        CallOutcome::Answered,
        CallOutcome::Redirected,
        CallOutcome::Cancelled,
        CallOutcome::Failed4xx,
        CallOutcome::Failed5xx,
        CallOutcome::Failed6xx,
    ];

    /// The outcome of a final status code; `None` for provisional ones.
    pub fn of(status: u16) -> Option<CallOutcome> {
        match status {
            200..=299 => Some(CallOutcome::Answered),
            300..=399 => Some(CallOutcome::Redirected),
            487 => Some(CallOutcome::Cancelled),
            400..=499 => Some(CallOutcome::Failed4xx),
            500..=599 => Some(CallOutcome::Failed5xx),
            600..=699 => Some(CallOutcome::Failed6xx),
            _ => None,
        }
    }

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Redirected => "redirected",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Failed4xx => "failed_4xx",
            CallOutcome::Failed5xx => "failed_5xx",
            CallOutcome::Failed6xx => "failed_6xx",
        }
    }
}

/// Which kind of message was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request.
    Request {
        /// Method label: INVITE ACK BYE CANCEL OPTIONS REGISTER or `other`.
        method: &'static str,
        /// An initial INVITE: a call attempt on `number`.
        attempt: bool,
        /// A final response the gateway gave an initial INVITE itself.
        outcome: Option<CallOutcome>,
    },
    /// A response.
    Response {
        /// Status class 1..=6.
        class: u8,
        /// The call outcome, for a final response to an INVITE.
        outcome: Option<CallOutcome>,
    },
    /// Bytes that are not SIP.
    Malformed,
}

/// The labels a handled message is counted under; values come only from closed enums and the
/// configuration, never from what a peer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label<'s> {
    /// Request, response or garbage.
    pub kind: Kind,
    /// Configured canonical number, `other` or `none`.
    pub number: &'s str,
    /// Queue name or `none`.
    pub queue: &'s str,
    /// Trunk name, `backend` or `unknown`.
    pub trunk: &'s str,
    /// Migration phase, `new` or `none`.
    pub phase: &'static str,
    /// What was done.
    pub act: Act,
    /// Why it was refused or dropped, if it was.
    pub reject: Option<RejectReason>,
    /// For an initial INVITE or a final response to one: a hash of its Call-ID and CSeq (and
    /// status), so the metrics edge counts a call once however often it is retransmitted;
    /// 0 otherwise.
    pub call: u64,
}

/// The key a call attempt (`status` 0) or its final response is counted once under.
fn call_key(msg: &Message<'_>, status: u16) -> u64 {
    let call_id = msg.call_id().unwrap_or_default().as_bytes();
    let cseq = msg.cseq().map_or(0, |(n, _)| n).to_be_bytes();
    sip::hash64(&[b"call", call_id, &cseq, &status.to_be_bytes()])
}

/// The result of handling one message: bytes to send (left in the caller's buffer) and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome<'s> {
    /// Send the output buffer here, if anything is to be sent.
    pub send: Option<Peer>,
    /// For a response due on a TCP connection that has closed meanwhile: where to open a new one
    /// (the `received` address and sent-by port, RFC 3261 §18.2.2).
    pub reconnect: Option<SocketAddr>,
    /// How to count it.
    pub label: Label<'s>,
}

/// The method as a metric label: extension methods are one value, `other`.
fn method_label(m: Method<'_>) -> &'static str {
    match m {
        Method::Invite => "INVITE",
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Options => "OPTIONS",
        Method::Register => "REGISTER",
        Method::Other(_) => "other",
    }
}

/// Handles one complete message from `from` with every backend up, no load shed and no rate
/// limit. The bytes to send, if any, are left in `out`.
pub fn handle<'s>(
    bytes: &[u8],
    from: Peer,
    snap: &'s Snapshot,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Outcome<'s> {
    let down = Down::none();
    let cond = Conditions {
        down: &down,
        shedding: false,
        admit: &|_, _, _| Ok(()),
    };
    handle_with(bytes, from, snap, &cond, now, out).outcome
}

/// What the edge knows about the world that routing depends on, handed in as data: which
/// backends probes found down, whether the gateway is shedding load, and the rate limiter
/// (asked once per new call from a trunk, with the trunk's position, the trunk and the source).
pub struct Conditions<'a> {
    /// Backends marked down.
    pub down: &'a Down,
    /// The gateway is falling behind: refuse new calls, pass everything else.
    pub shedding: bool,
    /// Takes a token for a new call, or says which limit it is over.
    pub admit: &'a dyn Fn(usize, &Trunk, IpAddr) -> Result<(), Limited>,
}

/// Something worth its own count or log line besides the message's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'s> {
    /// A response to the gateway's own OPTIONS probe `id`: consumed, never forwarded.
    ProbeReply {
        /// The probe's id (from its branch).
        id: u64,
        /// The response's status.
        status: u16,
    },
    /// A backend's 503 to an INVITE was forwarded as the configured status.
    Backend503 {
        /// The queue (from the gateway's Via).
        queue: &'s str,
    },
    /// A new call left its queue for the overflow queue `to`.
    Overflow {
        /// The queue it was routed to.
        from: &'s str,
        /// The queue that took it.
        to: &'s str,
        /// Why the first queue did not.
        why: Why,
    },
    /// No queue could take a new call: the caller got the failover status.
    Nowhere {
        /// The queue it was routed to.
        queue: &'s str,
        /// Why the last queue tried could not take it.
        why: Why,
    },
    /// A new call was refused by a rate limit.
    Limited {
        /// The trunk.
        trunk: &'s str,
        /// Which limit.
        by: Limited,
    },
    /// A new call was refused because the gateway is shedding load.
    Shed {
        /// The trunk.
        trunk: &'s str,
    },
}

/// A handled message: its outcome, and an event when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled<'s> {
    /// Where the output goes and how it is counted.
    pub outcome: Outcome<'s>,
    /// What else happened.
    pub event: Option<Event<'s>>,
}

/// Handles one complete message from `from` under `cond`. The bytes to send, if any, are left
/// in `out`.
pub fn handle_with<'s>(
    bytes: &[u8],
    from: Peer,
    snap: &'s Snapshot,
    cond: &Conditions<'_>,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Handled<'s> {
    out.clear();
    let mut event = None;
    let Ok(msg) = sip::parse(bytes) else {
        return Handled {
            outcome: Outcome {
                send: None,
                reconnect: None,
                label: malformed(),
            },
            event,
        };
    };
    let outcome = match msg.start {
        Start::Request { method, uri } => {
            let o = request(&msg, method, uri, from, snap, cond, &mut event, now, out);
            if o.label.act == Act::Replied
                && out.len() > bytes.len()
                && is_stranger(from.addr.ip(), snap)
            {
                // No answer to a source in no trunk may be larger than what it sent: a
                // spoofed source would make the gateway an amplifier.
                out.clear();
                Outcome {
                    send: None,
                    reconnect: None,
                    label: Label {
                        act: Act::Dropped,
                        ..o.label
                    },
                }
            } else {
                o
            }
        }
        Start::Response { code, .. } => {
            if let Some((id, status)) = sip::probe::reply_to_probe(&msg) {
                out.clear();
                let class = u8::try_from(code / 100).unwrap_or(0);
                return Handled {
                    outcome: Outcome {
                        send: None,
                        reconnect: None,
                        label: Label {
                            kind: Kind::Response {
                                class,
                                outcome: None,
                            },
                            number: "none",
                            queue: "none",
                            trunk: "backend",
                            phase: "none",
                            act: Act::Dropped,
                            reject: None,
                            call: 0,
                        },
                    },
                    event: Some(Event::ProbeReply { id, status }),
                };
            }
            let o = response(&msg, code, from, snap, out);
            let to_invite = msg.cseq().is_some_and(|(_, m)| m == "INVITE");
            let becomes = snap.failover.backend_503;
            if code == 503 && to_invite && o.label.act == Act::Forwarded && becomes != 503 {
                // Carriers' switches take a 503 as "this route is down" and may stop sending
                // any calls (RFC 3261 §16.7 step 6 has a stateful proxy send 500 instead).
                sip::probe::replace_status(out, becomes, reason_phrase(becomes));
                event = Some(Event::Backend503 {
                    queue: o.label.queue,
                });
            }
            o
        }
    };
    Handled { outcome, event }
}

/// The usual reason phrase of a status the gateway writes itself.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        s if s < 500 => "Request Failed",
        s if s < 600 => "Server Error",
        _ => "Global Failure",
    }
}

/// Whether `ip` is in no trunk and no backend.
fn is_stranger(ip: IpAddr, snap: &Snapshot) -> bool {
    snap.trunk_for(ip).is_none() && !snap.is_backend(ip)
}

/// The key of the branch MAC. `main` always sets one (configured or random per process); the
/// all-zero fallback only serves library callers that build snapshots themselves.
fn key(snap: &Snapshot) -> Key {
    snap.gateway.secret.unwrap_or_default()
}

/// Where a response to a forwarded request goes, read from the previous hop's Via as the
/// gateway stamped it (`received`, `rport`) and the connection port in the gateway's own Via
/// (`dgc`). One function computes it when the request is forwarded (to seal the branch) and
/// when the response comes back (to verify the branch and send), so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReturnHop {
    /// The previous hop: its address (RFC 3581 `rport`, or the TCP connection's port) and
    /// transport.
    to: Peer,
    /// For a TCP response whose connection has closed: the `received` address and sent-by port
    /// (RFC 3261 §18.2.2).
    reconnect: Option<SocketAddr>,
}

impl ReturnHop {
    /// `next` is the Via below the gateway's; `connection` its `dgc`. `None` when the Via names
    /// a host and no `received` address: a stateless gateway resolves nothing (RFC 3263).
    fn of(next: &Via<'_>, connection: Option<u16>) -> Option<ReturnHop> {
        let transport = Transport::from_token(next.transport).unwrap_or(Transport::Udp);
        let ip = next
            .received
            .and_then(parse_ip)
            .or_else(|| parse_ip(next.host))?;
        // RFC 3581: the source port when the client asked for rport; else the sent-by port.
        let sent_by_port = match next.rport {
            Some(Some(p)) => p,
            _ => next.port.unwrap_or(5060),
        };
        // Over TCP, the connection the request came in on.
        let port = match (transport, connection) {
            (Transport::Tcp, Some(p)) => p,
            _ => sent_by_port,
        };
        let reconnect = (transport == Transport::Tcp && port != sent_by_port)
            .then(|| SocketAddr::new(ip, next.port.unwrap_or(5060)));
        Some(ReturnHop {
            to: Peer {
                addr: SocketAddr::new(ip, port),
                transport,
            },
            reconnect,
        })
    }

    /// A fixed-width encoding, for the MAC.
    fn bytes(&self) -> [u8; 38] {
        let mut b = [0u8; 38];
        b[0] = match self.to.transport {
            Transport::Udp => 1,
            Transport::Tcp => 2,
        };
        let mut put = |at: usize, a: SocketAddr| {
            let ip = match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            b[at..at + 16].copy_from_slice(&ip.octets());
            b[at + 16..at + 18].copy_from_slice(&a.port().to_be_bytes());
        };
        put(1, self.to.addr);
        if let Some(r) = self.reconnect {
            put(19, r);
            b[37] = 1;
        }
        b
    }
}

/// The MAC of a gateway branch binds the return hop and the `dgn`/`dgq` marks of its Via.
fn sealed_parts<'a>(
    hop: &'a [u8],
    number: Option<&'a str>,
    queue: Option<&'a str>,
) -> [&'a [u8]; 3] {
    // 0xff never occurs in UTF-8, so an absent mark differs from every value.
    let mark = |m: Option<&'a str>| m.map_or(&[0xff_u8][..], str::as_bytes);
    [hop, mark(number), mark(queue)]
}

fn malformed() -> Label<'static> {
    Label {
        kind: Kind::Malformed,
        number: "none",
        queue: "none",
        trunk: "unknown",
        phase: "none",
        act: Act::Dropped,
        reject: Some(RejectReason::Malformed),
        call: 0,
    }
}

/// Whether a Via entry was written by this gateway.
fn via_is_ours(v: &Via<'_>, snap: &Snapshot) -> bool {
    host_port_is_ours(v.host, v.port, snap)
}

fn host_port_is_ours(host: &str, port: Option<u16>, snap: &Snapshot) -> bool {
    let g = &snap.gateway;
    let port = port.unwrap_or(5060);
    if host.eq_ignore_ascii_case(&g.advertised_host) && port == g.advertised_port {
        return true;
    }
    let Some(ip) = parse_ip(host) else {
        return false;
    };
    [g.sip_udp, g.sip_tcp]
        .into_iter()
        .flatten()
        .any(|a| a.ip() == ip && a.port() == port)
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The params of a Via entry, after its sent-by.
fn via_params<'a>(v: &Via<'a>) -> &'a str {
    v.raw.find(';').map_or("", |i| &v.raw[i..])
}

/// `host`, `port`, `transport` of a SIP URI, with or without `<>` and a display name.
fn uri_target(uri: &str) -> Option<(&str, Option<u16>, Option<Transport>)> {
    let uri = match (uri.find('<'), uri.rfind('>')) {
        (Some(a), Some(b)) if a < b => &uri[a + 1..b],
        _ => uri,
    };
    let uri = uri.trim();
    // `get`, not `[..4]`: a peer's Route may put a multi-byte character across byte 4.
    let scheme = |p: &str| {
        uri.get(..p.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(p))
    };
    let rest = if scheme("sip:") {
        uri.get(4..)?
    } else if scheme("sips:") {
        uri.get(5..)?
    } else {
        return None;
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    let after_user = rest.rfind('@').map_or(rest, |i| &rest[i + 1..]);
    let (hostport, params) = after_user.split_once(';').unwrap_or((after_user, ""));
    let (host, port) = if hostport.starts_with('[') {
        let close = hostport.find(']')?;
        let port = hostport[close + 1..].strip_prefix(':');
        (&hostport[..=close], port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let transport = param(params, "transport")
        .flatten()
        .and_then(Transport::from_token);
    if host.is_empty() {
        return None;
    }
    Some((host, port, transport))
}

#[allow(clippy::too_many_arguments)]
fn request<'s>(
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
        number: "none",
        queue: "none",
        trunk: source.label(),
        phase: "none",
        act: Act::Dropped,
        reject: None,
        call: 0,
    };
    if source == Source::Unknown && !snap.gateway.answer_strangers {
        // Sources in no trunk get no answer at all unless configured: an answer to a spoofed
        // source is what a reflection attack buys.
        label.reject = Some(RejectReason::UnknownSource);
        return Outcome {
            send: None,
            reconnect: None,
            label,
        };
    }
    let is_ack = method == Method::Ack;
    let Some(top) = msg.top_via() else {
        // Nowhere to send an answer (RFC 3261 §8.1.1.7): drop.
        label.reject = Some(RejectReason::BadRequest);
        return Outcome {
            send: None,
            reconnect: None,
            label,
        };
    };
    let received = match parse_ip(top.host) {
        Some(ip) if ip == from.addr.ip() && top.rport.is_none() => None,
        _ => Some(from.addr.ip()),
    };
    let rport = match top.rport {
        Some(None) => Some(from.addr.port()),
        _ => None,
    };
    // Where our own answers go (RFC 3261 §18.2.2, RFC 3581 §4).
    let reply_to = match (from.transport, top.rport) {
        (Transport::Tcp, _) | (Transport::Udp, Some(_)) => from,
        (Transport::Udp, None) => Peer {
            addr: SocketAddr::new(from.addr.ip(), top.port.unwrap_or(5060)),
            transport: Transport::Udp,
        },
    };
    let branch = Branch::of(msg);
    // What a response will find below the gateway's Via: the top Via as forwarded (stamped),
    // and the connection it came in on. The branch's MAC binds it.
    let connection = (from.transport == Transport::Tcp).then_some(from.addr.port());
    let hop = msg
        .via_entries()
        .next()
        .and_then(|entry| {
            let stamped = sip::stamp_via(entry, received, rport);
            Via::parse(&stamped)
                .ok()
                .and_then(|v| ReturnHop::of(&v, connection))
        })
        .map_or([0u8; 38], |h| h.bytes());
    let answer = |status: u16, reason: &str, extra: &[(&str, &str)], out: &mut Vec<u8>| {
        let tag = format!("dg{:08x}", branch.txn as u32);
        *out = sip::reply(
            msg,
            &sip::Reply {
                status,
                reason,
                to_tag: &tag,
                received,
                rport,
                extra,
            },
        );
    };
    let refuse =
        |mut label: Label<'s>, status: u16, reason: &str, why: RejectReason, out: &mut Vec<u8>| {
            // An ACK is never answered (RFC 3261 §17.2.1); one refused here acknowledges a
            // final response the gateway gave, so it is absorbed, not counted as a second refusal.
            if is_ack {
                return Outcome {
                    send: None,
                    reconnect: None,
                    label,
                };
            }
            label.reject = Some(why);
            answer(status, reason, &[], out);
            label.act = Act::Replied;
            Outcome {
                send: Some(reply_to),
                reconnect: None,
                label,
            }
        };

    // RFC 3261 §8.2.2 / §16.3 step 1: the mandatory headers.
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
        return refuse(label, 400, why, RejectReason::BadRequest, out);
    }
    if cseq.is_some_and(|(_, m)| m != method.as_str()) {
        return refuse(
            label,
            400,
            "Bad Request - CSeq Method Mismatch",
            RejectReason::BadRequest,
            out,
        );
    }
    let in_dialog = msg.to_tag().is_some();
    let max_forwards = match msg.max_forwards() {
        None => u32::from(DEFAULT_MAX_FORWARDS) + 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return refuse(
                label,
                400,
                "Bad Request - Bad Max-Forwards",
                RejectReason::BadRequest,
                out,
            )
        }
    };
    let keepalive = method == Method::Options && !in_dialog;
    if max_forwards == 0 && !keepalive {
        // RFC 3261 §16.3 step 2 (an OPTIONS with Max-Forwards 0 is answered below, as a UAS).
        return refuse(label, 483, "Too Many Hops", RejectReason::MaxForwards, out);
    }
    // RFC 3261 §16.3 step 4: a Via of ours with this request's routing state means a loop.
    // Only entries carrying a gateway branch are parsed: most requests have none.
    let looped = msg
        .via_entries()
        .filter(|e| e.contains(sip::branch::GATEWAY_PREFIX))
        .filter_map(|e| Via::parse(e).ok())
        .any(|v| {
            via_is_ours(&v, snap) && v.branch.and_then(Branch::loop_key_of) == Some(branch.loop_key)
        });
    if looped {
        return refuse(label, 482, "Loop Detected", RejectReason::Loop, out);
    }
    let max_forwards = u8::try_from(max_forwards.saturating_sub(1)).unwrap_or(u8::MAX);

    // Leading Route entries naming the gateway: one after our Record-Route, two after a double
    // Record-Route (RFC 5658).
    let ours = msg
        .routes()
        .take(2)
        .take_while(|r| uri_target(r).is_some_and(|(h, p, _)| host_port_is_ours(h, p, snap)))
        .count();
    let ip_target = |u: &str| {
        uri_target(u).and_then(|(h, p, t)| {
            Some(Peer {
                addr: SocketAddr::new(parse_ip(h)?, p.unwrap_or(5060)),
                transport: t.unwrap_or(Transport::Udp),
            })
        })
    };
    // An in-dialog request sent to the gateway without our Route (a carrier SBC that sends
    // every request of the trunk here) goes to its remote target, when that is a peer we
    // serve: a backend for trunk traffic, a trunk address for backend traffic. Never a relay.
    let dialog_target = (ours == 0 && in_dialog)
        .then(|| ip_target(uri))
        .flatten()
        .filter(|to| !host_port_is_ours(&to.addr.ip().to_string(), Some(to.addr.port()), snap))
        .filter(|to| match source {
            Source::Trunk(_) => snap.is_backend(to.addr.ip()),
            Source::Backend => snap.trunk_for(to.addr.ip()).is_some(),
            Source::Unknown => false,
        });
    if ours > 0 || dialog_target.is_some() {
        // In-dialog request: loose routing (RFC 3261 §16.4, §16.12).
        if source == Source::Unknown {
            return refuse(label, 403, "Forbidden", RejectReason::UnknownSource, out);
        }
        let next = msg.routes().nth(ours).unwrap_or(uri);
        let Some(to) = ip_target(next) else {
            return refuse(
                label,
                502,
                "Bad Gateway - Next Hop Is Not An IP Address",
                RejectReason::BadRequest,
                out,
            );
        };
        let via = our_via(snap, to.transport, &branch, None, None, connection, &hop);
        let edit = RequestEdit {
            via: &via,
            received,
            rport,
            max_forwards,
            pop_routes: ours,
            ..RequestEdit::default()
        };
        sip::forward_request(msg, &edit, out);
        label.act = Act::Forwarded;
        return Outcome {
            send: Some(to),
            reconnect: None,
            label,
        };
    }

    // Overload control: only new calls are refused; ACK, BYE, CANCEL, in-dialog requests and
    // responses always pass, so calls already up are never broken by someone else's flood.
    if let (Method::Invite, false, Source::Trunk(t)) = (method, in_dialog, source) {
        let refused = if cond.shedding {
            Some(Event::Shed { trunk: &t.name })
        } else {
            (cond.admit)(snap.trunk_index(t), t, from.addr.ip())
                .err()
                .map(|by| Event::Limited { trunk: &t.name, by })
        };
        if let Some(e) = refused {
            *event = Some(e);
            let retry = snap.overload.retry_after.to_string();
            answer(
                503,
                "Service Unavailable",
                &[("Retry-After", retry.as_str())],
                out,
            );
            label.act = Act::Replied;
            label.reject = Some(RejectReason::Overload);
            return Outcome {
                send: Some(reply_to),
                reconnect: None,
                label,
            };
        }
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
    label.number = routed.number;
    label.queue = routed.queue;
    label.phase = routed.phase;
    let attempt = method == Method::Invite && !in_dialog;
    if attempt {
        label.call = call_key(msg, 0);
    }
    label.kind = Kind::Request {
        method: method_label(method),
        attempt,
        outcome: None,
    };
    match routed.decision {
        Decision::Reply {
            status,
            reason,
            reason_header,
            contact,
            reject,
        } => {
            if is_ack {
                // The ACK of the gateway's own final answer: absorbed, not a second refusal.
                return Outcome {
                    send: None,
                    reconnect: None,
                    label,
                };
            }
            // A CANCEL of an INVITE the gateway answered itself matches no transaction.
            let (status, reason) = match (method, status) {
                (Method::Cancel, s) if s < 400 => (481, "Call/Transaction Does Not Exist".into()),
                _ => (status, reason),
            };
            let mut extra: Vec<(&str, &str)> = Vec::with_capacity(3);
            if let Some(r) = reason_header.as_deref() {
                extra.push(("Reason", r));
            }
            if let Some(c) = contact.as_deref() {
                extra.push(("Contact", c));
            }
            if keepalive && status == 200 {
                extra.push(("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"));
                extra.push(("Accept", "application/sdp"));
            }
            answer(status, &reason, &extra, out);
            label.act = Act::Replied;
            label.reject = reject;
            if attempt && status >= 200 {
                label.kind = Kind::Request {
                    method: "INVITE",
                    attempt,
                    outcome: CallOutcome::of(status),
                };
            }
            Outcome {
                send: Some(reply_to),
                reconnect: None,
                label,
            }
        }
        Decision::Forward { queue, user, mark } => {
            // The ACK of a final response the gateway gave itself (a 503 under overload or with
            // nowhere to go) carries the To tag it wrote, derived from the INVITE's branch that
            // the ACK shares: absorbed, never forwarded.
            if is_ack && msg.to_tag() == Some(format!("dg{:08x}", branch.txn as u32).as_str()) {
                return Outcome {
                    send: None,
                    reconnect: None,
                    label,
                };
            }
            let call_id = msg.call_id().unwrap_or_default();
            let (user, backend) = match pick(snap, queue, call_id.as_bytes(), cond.down, now) {
                Pick::To {
                    queue: taken,
                    backend,
                    overflowed,
                } => {
                    let Some(q) = snap.queues.get(taken) else {
                        return refuse(
                            label,
                            500,
                            "Server Internal Error",
                            RejectReason::BadRequest,
                            out,
                        );
                    };
                    if let Some(why) = overflowed {
                        *event = Some(Event::Overflow {
                            from: routed.queue,
                            to: &q.name,
                            why,
                        });
                    }
                    // The overflow queue's call centre gets its own target.
                    let user = if taken == queue {
                        user
                    } else {
                        q.target.as_str()
                    };
                    (user, backend)
                }
                Pick::Nowhere { why, .. } => {
                    if is_ack {
                        // The ACK of the gateway's own final answer: absorbed.
                        return Outcome {
                            send: None,
                            reconnect: None,
                            label,
                        };
                    }
                    if method == Method::Cancel {
                        return refuse(
                            label,
                            481,
                            "Call/Transaction Does Not Exist",
                            RejectReason::NoBackend,
                            out,
                        );
                    }
                    *event = Some(Event::Nowhere {
                        queue: routed.queue,
                        why,
                    });
                    // Never silence: a clear final answer the caller's switch can act on.
                    let f = snap.failover;
                    let retry = f.retry_after.to_string();
                    answer(
                        f.status,
                        reason_phrase(f.status),
                        &[("Retry-After", retry.as_str())],
                        out,
                    );
                    label.act = Act::Replied;
                    label.reject = Some(RejectReason::NoBackend);
                    if attempt {
                        label.kind = Kind::Request {
                            method: "INVITE",
                            attempt,
                            outcome: CallOutcome::of(f.status),
                        };
                    }
                    return Outcome {
                        send: Some(reply_to),
                        reconnect: None,
                        label,
                    };
                }
            };
            let to = Peer {
                addr: backend.addr,
                transport: backend.transport,
            };
            let request_uri = backend_uri(user, backend);
            let via = our_via(
                snap,
                to.transport,
                &branch,
                Some(routed.number),
                Some(routed.queue),
                connection,
                &hop,
            );
            let record_route =
                (method == Method::Invite && !in_dialog && snap.gateway.record_route)
                    .then(|| record_route(snap, from.transport, to.transport));
            let marks = if mark && method == Method::Invite {
                legacy_marks(msg, snap, routed.number, &request_uri)
            } else {
                Vec::new()
            };
            let extra: Vec<(&str, &str)> = marks.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let edit = RequestEdit {
                via: &via,
                received,
                rport,
                request_uri: Some(&request_uri),
                max_forwards,
                pop_routes: 0,
                record_route: record_route.as_deref(),
                extra: &extra,
            };
            sip::forward_request(msg, &edit, out);
            label.act = Act::Forwarded;
            Outcome {
                send: Some(to),
                reconnect: None,
                label,
            }
        }
    }
}

/// Rendezvous (highest-random-weight) choice of a backend by Call-ID: every message of a call
/// reaches the same backend without stored state, and removing a backend moves only its calls.
pub fn choose<'b>(backends: &'b [Backend], call_id: &[u8]) -> Option<&'b Backend> {
    let i = sip::branch::rendezvous(call_id, backends.iter().map(|b| b.key.as_bytes()))?;
    backends.get(i)
}

fn backend_uri(user: &str, b: &Backend) -> String {
    let host = match b.addr.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    match b.transport {
        Transport::Udp => format!("sip:{user}@{host}:{}", b.addr.port()),
        Transport::Tcp => format!("sip:{user}@{host}:{};transport=tcp", b.addr.port()),
    }
}

/// The Record-Route for a dialog from a `inbound` caller to an `outbound` backend: one entry, or
/// two when the transports differ (RFC 5658 double record-routing), the top one facing the
/// backend, so that each side reaches the gateway over the transport it already uses.
fn record_route(snap: &Snapshot, inbound: Transport, outbound: Transport) -> String {
    let g = &snap.gateway;
    let entry = |t: Transport| match t {
        Transport::Udp => format!("<sip:{}:{};lr>", g.advertised_host, g.advertised_port),
        Transport::Tcp => format!(
            "<sip:{}:{};transport=tcp;lr>",
            g.advertised_host, g.advertised_port
        ),
    };
    if inbound == outbound {
        entry(inbound)
    } else {
        format!("{}, {}", entry(outbound), entry(inbound))
    }
}

/// The gateway's own Via: deterministic branch sealed with the MAC over the return hop `hop`
/// ([`ReturnHop::bytes`]) and the marks, plus the dialled number and queue (`dgn`, `dgq`) so
/// responses can be counted without state, and for requests that came over TCP the source port
/// of that connection (`dgc`), so responses go back on it (RFC 3261 §18.2.2).
#[allow(clippy::too_many_arguments)]
fn our_via(
    snap: &Snapshot,
    transport: Transport,
    branch: &Branch,
    number: Option<&str>,
    queue: Option<&str>,
    connection: Option<u16>,
    hop: &[u8],
) -> String {
    use std::fmt::Write;
    let g = &snap.gateway;
    let branch = branch.sealed(&key(snap), &sealed_parts(hop, number, queue));
    let mut v = format!(
        "SIP/2.0/{} {}:{};branch={}",
        transport.as_via(),
        g.advertised_host,
        g.advertised_port,
        branch.to_param()
    );
    if let Some(n) = number {
        let _ = write!(v, ";dgn={n}");
    }
    if let Some(q) = queue {
        let _ = write!(v, ";dgq={q}");
    }
    if let Some(port) = connection {
        let _ = write!(v, ";dgc={port}");
    }
    v
}

/// History-Info (RFC 7044) and/or Diversion (RFC 5806) recording the legacy number dialled.
fn legacy_marks(
    msg: &Message<'_>,
    snap: &Snapshot,
    number: &str,
    request_uri: &str,
) -> Vec<(&'static str, String)> {
    let g = &snap.gateway;
    let dialled = format!(
        "<sip:{number}@{}:{};user=phone>",
        g.advertised_host, g.advertised_port
    );
    let mut marks = Vec::with_capacity(3);
    if g.history_info {
        let last = msg
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::HistoryInfo)
            .flat_map(|h| h.value.rsplit(',').next().map(str::to_string))
            .last()
            .and_then(|entry| param(&entry, "index").flatten().map(str::to_string));
        match last {
            // RFC 8119: the translated target carries the RFC 4458 `cause` URI parameter 380
            // (service number translation).
            None => {
                marks.push(("History-Info", format!("{dialled};index=1")));
                marks.push((
                    "History-Info",
                    format!("<{request_uri};cause=380>;index=1.1;mp=1"),
                ));
            }
            Some(idx) => marks.push((
                "History-Info",
                format!("<{request_uri};cause=380>;index={idx}.1;mp={idx}"),
            )),
        }
    }
    if g.diversion {
        marks.push((
            "Diversion",
            format!("{dialled};reason=unconditional;counter=1"),
        ));
    }
    marks
}

fn response<'s>(
    msg: &Message<'_>,
    code: u16,
    from: Peer,
    snap: &'s Snapshot,
    out: &mut Vec<u8>,
) -> Outcome<'s> {
    let invite = msg.cseq().is_some_and(|(_, m)| m == "INVITE");
    let outcome = if invite { CallOutcome::of(code) } else { None };
    let class = u8::try_from(code / 100).unwrap_or(0);
    let mut label = Label {
        kind: Kind::Response {
            class,
            outcome: None,
        },
        number: "none",
        queue: "none",
        trunk: "backend",
        phase: "none",
        act: Act::Dropped,
        reject: None,
        call: 0,
    };
    let drop = |mut label: Label<'s>, why: RejectReason| {
        label.reject = Some(why);
        Outcome {
            send: None,
            reconnect: None,
            label,
        }
    };
    // Only a peer the gateway could have sent the request to answers it: a backend, or a trunk
    // for requests forwarded towards the carriers (in-dialog requests from the call centre).
    if is_stranger(from.addr.ip(), snap) {
        label.trunk = "unknown";
        return drop(label, RejectReason::UntrustedResponseSource);
    }
    let mut vias = msg.vias();
    let Some(top) = vias.next() else {
        return drop(label, RejectReason::BadRequest);
    };
    // RFC 3261 §16.11: only a response whose top Via is ours is forwarded.
    if !via_is_ours(&top, snap) {
        return drop(label, RejectReason::ForgedResponse);
    }
    let params = via_params(&top);
    let number = param(params, "dgn").flatten();
    let queue = param(params, "dgq").flatten();
    let Some(next) = vias.next() else {
        // The gateway originates no request: nothing below its Via is nowhere to go.
        return drop(label, RejectReason::BadRequest);
    };
    let connection = param(params, "dgc")
        .flatten()
        .and_then(|p| p.parse::<u16>().ok());
    let Some(hop) = ReturnHop::of(&next, connection) else {
        // A sent-by host name would need DNS (RFC 3263); a stateless gateway does not resolve.
        return drop(label, RejectReason::BadRequest);
    };
    // The branch must be one the gateway made for this very return hop and marks: a forged or
    // replayed-elsewhere response never leaves, and no connection is opened for it.
    let genuine = top
        .branch
        .and_then(Branch::parse)
        .is_some_and(|b| b.verifies(&key(snap), &sealed_parts(&hop.bytes(), number, queue)));
    if !genuine {
        return drop(label, RejectReason::ForgedResponse);
    }
    if let Some(n) = number {
        label.number = snap.mappings.label(n).unwrap_or("other");
    }
    if let Some(q) = queue {
        label.queue = snap
            .queues
            .iter()
            .find(|x| x.name == q)
            .map_or("none", |x| x.name.as_str());
    }
    label.kind = Kind::Response { class, outcome };
    if outcome.is_some() {
        label.call = call_key(msg, code);
    }
    sip::forward_response(msg, out);
    label.act = Act::Forwarded;
    Outcome {
        send: Some(hop.to),
        reconnect: hop.reconnect,
        label,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uri_targets_read_host_port_and_transport() {
        let cases = [
            (
                "<sip:127.0.0.1:5060;lr>",
                Some(("127.0.0.1", Some(5060), None)),
            ),
            (
                "<sip:gw.example;transport=tcp;lr>",
                Some(("gw.example", None, Some(Transport::Tcp))),
            ),
            (
                "\"x\" <sip:queue@[::1]:5091;transport=TCP>",
                Some(("[::1]", Some(5091), Some(Transport::Tcp))),
            ),
            (
                "sip:13800000000@10.0.0.1:5061",
                Some(("10.0.0.1", Some(5061), None)),
            ),
            ("tel:+8612356", None),
            ("电话", None),
            ("sip电话@x", None),
            ("sips:电话@[::1]", Some(("[::1]", None, None))),
            ("sip:@", None),
        ];
        for (uri, want) in cases {
            assert_eq!(uri_target(uri), want, "{uri}");
        }
    }

    const MAPPINGS: &str = r#"
[gateway]
advertised = "192.0.2.10:5060"
[new_number]
number = "12356"
[[queue]]
name = "fuzhou"
backends = ["sip:192.0.2.10:5060"]
[[area]]
code = "0591"
queue = "fuzhou"
[[trunk]]
name = "t"
sources = ["192.0.2.0/24"]
origin_area = "0591"
"#;

    fn invite(uri: &str) -> Vec<u8> {
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKabc\r\n\
             From: <sip:a@192.0.2.7>;tag=f\r\nTo: <{uri}>\r\nCall-ID: loop-1\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_request_that_comes_back_unchanged_is_a_loop_and_a_spiral_is_not() {
        // The queue's backend is the gateway itself: a misconfiguration that must end in 482.
        let snap = crate::config::validate(std::path::Path::new("m.toml"), MAPPINGS).unwrap();
        let from = Peer {
            addr: "192.0.2.10:5060".parse().unwrap(),
            transport: Transport::Udp,
        };
        let now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        let first = handle(&invite("sip:059112356@gw"), from, &snap, now, &mut out);
        assert_eq!(first.label.act, Act::Forwarded);
        // Back again with a new Request-URI (sip:12356@192.0.2.10:5060): a spiral, forwarded.
        let again = out.clone();
        let second = handle(&again, from, &snap, now, &mut out);
        assert_eq!(second.label.act, Act::Forwarded);
        // Back a third time with the same Request-URI and routing state: a loop.
        let third_in = out.clone();
        let third = handle(&third_in, from, &snap, now, &mut out);
        assert_eq!(third.label.reject, Some(RejectReason::Loop));
        assert!(
            out.starts_with(b"SIP/2.0 482 Loop Detected\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    /// A response a backend would send to `forwarded`, with its second Via replaced by `next`.
    fn answer(forwarded: &[u8], next: Option<&str>) -> Vec<u8> {
        let req = sip::parse(forwarded).unwrap();
        let vias: Vec<&str> = req.via_entries().collect();
        let second = next.unwrap_or(vias[1]);
        format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nVia: {second}\r\nFrom: <sip:a@192.0.2.7>;tag=f\r\n\
             To: <sip:x>;tag=b\r\nCall-ID: loop-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            vias[0]
        )
        .into_bytes()
    }

    #[test]
    fn a_response_is_forwarded_only_from_a_known_peer_with_the_branch_made_for_its_hop() {
        let mut snap = crate::config::validate(std::path::Path::new("m.toml"), MAPPINGS).unwrap();
        snap.gateway.secret = Key::from_hex("00112233445566778899aabbccddeeff");
        let carrier = Peer {
            addr: "192.0.2.7:5060".parse().unwrap(),
            transport: Transport::Udp,
        };
        let backend = Peer {
            addr: "192.0.2.10:5060".parse().unwrap(),
            transport: Transport::Udp,
        };
        let stranger = Peer {
            addr: "198.51.100.9:5060".parse().unwrap(),
            transport: Transport::Udp,
        };
        let now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        handle(&invite("sip:059112356@gw"), carrier, &snap, now, &mut out);
        let forwarded = out.clone();
        let genuine = answer(&forwarded, None);
        let o = handle(&genuine, backend, &snap, now, &mut out);
        assert_eq!((o.label.act, o.send), (Act::Forwarded, Some(carrier)));
        assert_eq!(o.label.queue, "fuzhou");
        let o = handle(&genuine, stranger, &snap, now, &mut out);
        assert_eq!(o.label.reject, Some(RejectReason::UntrustedResponseSource));
        assert!(o.send.is_none() && out.is_empty());
        for victim in [
            "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKv",
            "SIP/2.0/TCP 192.0.2.7:5060;branch=z9hG4bKabc;received=192.0.2.7",
            "SIP/2.0/UDP 192.0.2.7:5061;branch=z9hG4bKabc",
        ] {
            let o = handle(
                &answer(&forwarded, Some(victim)),
                backend,
                &snap,
                now,
                &mut out,
            );
            assert_eq!(
                o.label.reject,
                Some(RejectReason::ForgedResponse),
                "{victim}"
            );
            assert!(o.send.is_none(), "{victim}");
        }
        // Another deployment's key makes other branches.
        let mut other = snap.clone();
        other.gateway.secret = Key::from_hex("ffeeddccbbaa99887766554433221100");
        let o = handle(&genuine, backend, &other, now, &mut out);
        assert_eq!(o.label.reject, Some(RejectReason::ForgedResponse));
    }

    #[test]
    fn strangers_are_not_answered_unless_configured_and_then_never_with_more_bytes() {
        let mut snap = crate::config::validate(std::path::Path::new("m.toml"), MAPPINGS).unwrap();
        let stranger = Peer {
            addr: "198.51.100.9:5060".parse().unwrap(),
            transport: Transport::Udp,
        };
        let now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        // An ordinary INVITE carries headers the answer does not echo (a body, User-Agent ...).
        let req = String::from_utf8(invite("sip:059112356@gw"))
            .unwrap()
            .replace(
                "Content-Length",
                "User-Agent: carrier-sbc/4.2\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO\r\nSupported: 100rel, timer, replaces\r\nContent-Length",
            )
            .into_bytes();
        let o = handle(&req, stranger, &snap, now, &mut out);
        assert_eq!(o.label.reject, Some(RejectReason::UnknownSource));
        assert!(o.send.is_none() && out.is_empty());
        snap.gateway.answer_strangers = true;
        let o = handle(&req, stranger, &snap, now, &mut out);
        assert_eq!(o.label.act, Act::Replied);
        assert!(out.starts_with(b"SIP/2.0 403 Forbidden\r\n") && out.len() <= req.len());
        // Compact names draw longer ones back: such a request gets nothing.
        let compact = b"OPTIONS sip:a SIP/2.0\r\nv: SIP/2.0/UDP 198.51.100.9\r\nf: a\r\nt: b\r\ni: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let o = handle(compact, stranger, &snap, now, &mut out);
        assert_eq!(
            (o.label.act, o.label.reject),
            (Act::Dropped, Some(RejectReason::UnknownSource))
        );
        assert!(o.send.is_none() && out.is_empty());
    }

    #[test]
    fn outcomes_follow_status_classes_with_487_as_cancelled() {
        let cases = [
            (100, None),
            (180, None),
            (200, Some(CallOutcome::Answered)),
            (302, Some(CallOutcome::Redirected)),
            (486, Some(CallOutcome::Failed4xx)),
            (487, Some(CallOutcome::Cancelled)),
            (503, Some(CallOutcome::Failed5xx)),
            (603, Some(CallOutcome::Failed6xx)),
        ];
        for (s, want) in cases {
            assert_eq!(CallOutcome::of(s), want, "{s}");
        }
    }
}
