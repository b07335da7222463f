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
        let ip = next.received.and_then(ip_of).or_else(|| ip_of(next.host))?;
        Some(ReturnHop::at(next, ip, next.rport, connection))
    }

    /// [`ReturnHop::of`] the Via `top` as the gateway forwards it, stamped with `received` and
    /// `rport` ([`crate::sip::stamp_via`]), without writing the stamped entry and parsing it
    /// again. Only for an entry whose parameters hold no quote or bracket: there the stamping's
    /// plain split on `;` and the parser's agree on every parameter. `sent_by` is `top`'s
    /// sent-by host as an IP address when it is one, which the caller has already read.
    pub(super) fn stamped(
        top: &Via<'_>,
        sent_by: Option<IpAddr>,
        received: Option<IpAddr>,
        rport: Option<u16>,
        connection: Option<u16>,
    ) -> Option<ReturnHop> {
        let ip = match received {
            Some(ip) => ip,
            None => top.received.and_then(ip_of).or(sent_by)?,
        };
        // A bare `rport` gets the value; any other stays as it was.
        let rport = match (top.rport, rport) {
            (Some(None), Some(p)) => Some(Some(p)),
            (r, _) => r,
        };
        Some(ReturnHop::at(top, ip, rport, connection))
    }

    /// The hop of `next` (transport, sent-by port) at `ip` with `rport`.
    fn at(
        next: &Via<'_>,
        ip: IpAddr,
        rport: Option<Option<u16>>,
        connection: Option<u16>,
    ) -> ReturnHop {
        let transport = Transport::from_token(next.transport).unwrap_or(Transport::Udp);
        // RFC 3581: the source port when the client asked for rport; else the sent-by port.
        let sent_by_port = match rport {
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
        ReturnHop {
            to: Peer {
                addr: SocketAddr::new(ip, port),
                transport,
            },
            reconnect,
        }
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
    snap.gateway.advertised.is_sent_by(v.host, v.port)
        || v.sent_by().is_some_and(|hp| snap.is_ours(&hp))
}

/// The IP of a Via host or `received` value (bracketed or bare IPv6).
fn ip_of(host: &str) -> Option<IpAddr> {
    Host::parse(host).and_then(|h| h.ip())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::stamp_via;

    #[test]
    fn the_stamped_hop_is_the_hop_of_the_stamped_text() {
        let entries = [
            "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK1;rport",
            "SIP/2.0/UDP 203.0.113.7;branch=z9hG4bK1",
            "SIP/2.0/UDP 203.0.113.7:5062;rport=4000;branch=z9hG4bK1",
            "SIP/2.0/TCP 203.0.113.7:5062;branch=z9hG4bK1;received=198.51.100.1",
            "SIP/2.0/TCP 203.0.113.7;RECEIVED=198.51.100.1;RPORT;received=10.0.0.9",
            "SIP/2.0/UDP carrier.example:5060;branch=z9hG4bK1",
            "SIP/2.0/UDP carrier.example;received;rport",
            "SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bK1;received=2001:db8::8;rport",
            "SIP/2.0/TLS 203.0.113.7 ; rport ; branch = z9hG4bK1",
            "sip / 2.0 / udp 203.0.113.7;rport;rport=5",
        ];
        let received = [
            None,
            Some("192.0.2.9".parse().unwrap()),
            Some("2001:db8::9".parse().unwrap()),
        ];
        for entry in entries {
            let top = Via::parse(entry).unwrap();
            for r in received {
                for rport in [None, Some(40000)] {
                    for connection in [None, Some(7000)] {
                        let text = stamp_via(entry, r, rport);
                        let want = Via::parse(&text)
                            .ok()
                            .and_then(|v| ReturnHop::of(&v, connection));
                        let sent_by = ip_of(top.host);
                        let got = ReturnHop::stamped(&top, sent_by, r, rport, connection);
                        assert_eq!(got, want, "{entry} {r:?} {rport:?} {connection:?}");
                    }
                }
            }
        }
    }
}
