//! Where a message came from or goes to: an address and a transport. Plain data, no I/O.

use std::fmt;
use std::net::SocketAddr;

/// The SIP transports dualgate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams (RFC 3261 §18.1.1).
    Udp,
    /// A byte stream framed by Content-Length (RFC 3261 §18.3).
    Tcp,
}

impl Transport {
    /// The token used in a Via header (`SIP/2.0/UDP`).
    pub fn as_via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// The lowercase token used in a `transport=` URI parameter and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Parses a Via or URI transport token, case-insensitively.
    pub fn from_token(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One end of a hop: the socket address and the transport used to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// IP address and port.
    pub addr: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}
