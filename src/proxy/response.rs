//! A response through the stateless proxy (RFC 3261 §16.11): forwarded only from a peer the
//! gateway could have sent the request to, with a branch it made for the hop the response goes
//! to; counted by the number and queue its own Via carries. Pure.

use super::auth::{key, sealed_parts, via_is_ours, ReturnHop};
use super::{call_key, is_stranger, Act, CallOutcome, Kind, Label, Outcome};
use crate::config::Snapshot;
use crate::mapping::NumberId;
use crate::peer::Peer;
use crate::route::{RejectReason, TrunkId};
use crate::sip::header::ViaMarks;
use crate::sip::{self, Branch, Message, Via};

/// Handles a response from `from` whose top Via is `top` (`None` when missing or malformed)
/// and whose next Via entry is `below`, as written; the bytes to send, if any, are left in
/// `out`.
pub(super) fn response<'s>(
    msg: &Message<'_>,
    top: Option<&Via<'_>>,
    below: Option<&str>,
    code: u16,
    from: Peer,
    snap: &'s Snapshot,
    out: &mut Vec<u8>,
) -> Outcome<'s> {
    let invite = msg.cseq().is_some_and(|(_, m)| m == "INVITE");
    let outcome = if invite { CallOutcome::of(code) } else { None };
    let class = u8::try_from(code / 100).unwrap_or(0);
    let mut label = Label::response(class);
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
        label.trunk = TrunkId::Unknown;
        return drop(label, RejectReason::UntrustedResponseSource);
    }
    let Some(top) = top else {
        return drop(label, RejectReason::BadRequest);
    };
    // RFC 3261 §16.11: only a response whose top Via is ours is forwarded.
    if !via_is_ours(top, snap) {
        return drop(label, RejectReason::ForgedResponse);
    }
    let ViaMarks {
        number,
        queue,
        connection,
    } = top.marks;
    // The second Via: the top one is parsed already (and well-formed).
    let Some(next) = below.and_then(|e| Via::parse(e).ok()) else {
        // The gateway originates no request: nothing below its Via is nowhere to go.
        return drop(label, RejectReason::BadRequest);
    };
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
        label.number = snap.mappings.number_id(n).unwrap_or(NumberId::Other);
    }
    if let Some(q) = queue {
        label.queue = snap.queue_id(q);
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
