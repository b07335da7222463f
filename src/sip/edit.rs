//! Forwarding by editing header lines in place: every header the gateway does not touch, and
//! the body, pass through byte-for-byte and in order. No I/O here.

use super::parse::Message;
use std::net::IpAddr;

/// The edits a stateless proxy makes to a request it forwards (RFC 3261 §16.6, RFC 3581).
#[derive(Debug, Clone, Default)]
pub struct RequestEdit<'e> {
    /// The gateway's own Via value, inserted above all others.
    pub via: &'e str,
    /// `received` to add to the (previous) top Via entry.
    pub received: Option<IpAddr>,
    /// Value for the top Via's `rport` when it has a bare `rport` (RFC 3581 §4).
    pub rport: Option<u16>,
    /// New Request-URI; `None` keeps it.
    pub request_uri: Option<&'e str>,
    /// Max-Forwards value to write (replacing the header, or added when it was missing).
    pub max_forwards: u8,
    /// Remove the first Route entry (it named the gateway, RFC 3261 §16.4).
    pub pop_route: bool,
    /// A Record-Route value to insert above any existing Record-Route.
    pub record_route: Option<&'e str>,
    /// Extra header lines `(name, value)` added after the last header.
    pub extra: &'e [(&'e str, &'e str)],
}

/// Writes `msg` with `edit` applied into `out` (cleared first).
pub fn forward_request(msg: &Message<'_>, edit: &RequestEdit<'_>, out: &mut Vec<u8>) {
    todo!("{msg:?} {edit:?} {out:?}")
}

/// Writes `msg` with its top Via entry removed into `out` (cleared first).
pub fn forward_response(msg: &Message<'_>, out: &mut Vec<u8>) {
    todo!("{msg:?} {out:?}")
}
