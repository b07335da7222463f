//! The gateway's authenticated branch: the return hop a response goes to, the MAC over it and
//! the Via marks, and whether a Via is the gateway's own. A response is forwarded only to a hop
//! the gateway recorded itself (README, "Threat model"). Pure.

use crate::config::Snapshot;
use crate::peer::{Peer, Transport};
use crate::sip::{Host, Key, Via};
use std::net::{IpAddr, SocketAddr};

/// The key of the branch MAC. `main` always sets one (configured or random per process); the
/// all-zero fallback only serves library callers that build snapshots themselves.
pub(super) fn key(snap: &Snapshot) -> Key {
    snap.gateway.secret.unwrap_or_default()
}

/// Where a response to a forwarded request goes, read from the previous hop's Via as the
/// gateway stamped it (`received`, `rport`) and the connection port in the gateway's own Via
/// (`dgc`). One function computes it when the request is forwarded (to seal the branch) and
/// when the response comes back (to verify the branch and send), so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReturnHop {
    /// The previous hop: its address (RFC 3581 `rport`, or the TCP connection's port) and
    /// transport.
    pub(super) to: Peer,
    /// For a TCP response whose connection has closed: the `received` address and sent-by port
    /// (RFC 3261 §18.2.2).
    pub(super) reconnect: Option<SocketAddr>,
}

impl ReturnHop {
    /// `next` is the Via below the gateway's; `connection` its `dgc`. `None` when the Via names
    /// a host and no `received` address: a stateless gateway resolves nothing (RFC 3263).
    pub(super) fn of(next: &Via<'_>, connection: Option<u16>) -> Option<ReturnHop> {
        let transport = Transport::from_token(next.transport).unwrap_or(Transport::Udp);
        let ip = next.received.and_then(ip_of).or_else(|| ip_of(next.host))?;
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
    pub(super) fn bytes(&self) -> [u8; 38] {
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
pub(super) fn sealed_parts<'a>(
    hop: &'a [u8],
    number: Option<&'a str>,
    queue: Option<&'a str>,
) -> [&'a [u8]; 3] {
    // 0xff never occurs in UTF-8, so an absent mark differs from every value.
    let mark = |m: Option<&'a str>| m.map_or(&[0xff_u8][..], str::as_bytes);
    [hop, mark(number), mark(queue)]
}

/// Whether a Via entry was written by this gateway.
pub(super) fn via_is_ours(v: &Via<'_>, snap: &Snapshot) -> bool {
    v.sent_by().is_some_and(|hp| snap.is_ours(&hp))
}

/// The IP of a Via host or `received` value (bracketed or bare IPv6).
fn ip_of(host: &str) -> Option<IpAddr> {
    Host::parse(host).and_then(|h| h.ip())
}

/// The params of a Via entry, after its sent-by.
pub(super) fn via_params<'a>(v: &Via<'a>) -> &'a str {
    v.raw.find(';').map_or("", |i| &v.raw[i..])
}
