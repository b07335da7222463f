//! The whole per-message path of a stateless proxy (RFC 3261 §16.11): bytes in, at most one
//! message out, plus the labels it is counted under. Pure: the snapshot, the sender and the
//! instant are parameters; the transport edge sends what this returns.
//!
//! [`handle_with`] parses and dispatches; requests go through the pipeline in `request.rs`
//! (checks → loose routing → overload control → routing → answer or forward), responses
//! through `response.rs`; `auth.rs` holds the authenticated branch both rely on. Header text
//! is written in [`crate::sip::header`].

mod auth;
mod request;
mod response;

use request::request;
use response::response;

use crate::backend::Why;
use crate::config::{Backend, QueueId, Snapshot, Trunk};
use crate::health::Down;
use crate::limit::Limited;
use crate::mapping::NumberId;
use crate::peer::Peer;
use crate::route::{PhaseLabel, RejectReason, TrunkId};
use crate::sip::{self, Message, Method, Start};
use std::marker::PhantomData;
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
/// configuration, never from what a peer wrote. Number, queue and trunk are ids into snapshot
/// `'s` (the one that handled the message): the metrics edge turns them into text only when a
/// series is registered or rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label<'s> {
    /// Request, response or garbage.
    pub kind: Kind,
    /// Configured canonical number, `other` or `none`.
    pub number: NumberId,
    /// A queue, or `none`.
    pub queue: Option<QueueId>,
    /// A trunk, `backend` or `unknown`.
    pub trunk: TrunkId,
    /// Migration phase, `new` or `none`.
    pub phase: PhaseLabel,
    /// What was done.
    pub act: Act,
    /// Why it was refused or dropped, if it was.
    pub reject: Option<RejectReason>,
    /// For an initial INVITE or a final response to one: a hash of its Call-ID and CSeq (and
    /// status), so the metrics edge counts a call once however often it is retransmitted;
    /// 0 otherwise.
    pub call: u64,
    /// The snapshot the ids index.
    pub snapshot: PhantomData<&'s Snapshot>,
}

/// The key a call attempt (`status` 0) or its final response is counted once under. Only this
/// process compares these keys (the metrics edge's table of recent calls), so they come from a
/// fast hasher seeded once per process, not the stable hash branches need.
fn call_key(msg: &Message<'_>, status: u16) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::LazyLock<foldhash::fast::RandomState> =
        std::sync::LazyLock::new(foldhash::fast::RandomState::default);
    let mut h = SEED.build_hasher();
    // Length first, so no Call-ID's tail can pass for the CSeq.
    let call_id = msg.call_id().unwrap_or_default().as_bytes();
    h.write_usize(call_id.len());
    h.write(call_id);
    h.write_u32(msg.cseq().map_or(0, |(n, _)| n));
    h.write_u16(status);
    h.finish()
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
    m.known().unwrap_or("other")
}

impl Label<'_> {
    /// The label a response of status class `class` starts with: from a backend, dropped until
    /// the response path says otherwise.
    fn response(class: u8) -> Label<'static> {
        Label {
            kind: Kind::Response {
                class,
                outcome: None,
            },
            number: NumberId::None,
            queue: None,
            trunk: TrunkId::Backend,
            phase: PhaseLabel::None,
            act: Act::Dropped,
            reject: None,
            call: 0,
            snapshot: PhantomData,
        }
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
            // The top Via, parsed once for the probe check and the response path, and the
            // entry below it, from the same walk over the Via lines.
            let mut vias = msg.via_entries();
            let top = vias.next().and_then(|e| sip::Via::parse(e).ok());
            let below = vias.next();
            if let Some(id) = top.as_ref().and_then(sip::probe::probe_id) {
                let status = code;
                out.clear();
                let class = u8::try_from(code / 100).unwrap_or(0);
                return Handled {
                    outcome: Outcome {
                        send: None,
                        reconnect: None,
                        label: Label::response(class),
                    },
                    event: Some(Event::ProbeReply { id, status }),
                };
            }
            let o = response(&msg, top.as_ref(), below, code, from, snap, out);
            let to_invite = msg.cseq().is_some_and(|(_, m)| m == "INVITE");
            let becomes = snap.failover.backend_503;
            if code == 503 && to_invite && o.label.act == Act::Forwarded && becomes != 503 {
                // Carriers' switches take a 503 as "this route is down" and may stop sending
                // any calls (RFC 3261 §16.7 step 6 has a stateful proxy send 500 instead).
                sip::probe::replace_status(out, becomes, reason_phrase(becomes));
                event = Some(Event::Backend503 {
                    queue: snap.queue_label(o.label.queue),
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

fn malformed() -> Label<'static> {
    Label {
        kind: Kind::Malformed,
        number: NumberId::None,
        queue: None,
        trunk: TrunkId::Unknown,
        phase: PhaseLabel::None,
        act: Act::Dropped,
        reject: Some(RejectReason::Malformed),
        call: 0,
        snapshot: PhantomData,
    }
}

/// Rendezvous (highest-random-weight) choice of a backend by Call-ID: every message of a call
/// reaches the same backend without stored state, and removing a backend moves only its calls.
pub fn choose<'b>(backends: &'b [Backend], call_id: &[u8]) -> Option<&'b Backend> {
    let i = sip::rendezvous_hashed(call_id, backends.iter().map(|b| b.key_hash))?;
    backends.get(i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::peer::Transport;
    use crate::sip::Key;

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
        assert_eq!(snap.queue_label(o.label.queue), "fuzhou");
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
