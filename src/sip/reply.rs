//! Stateless responses built from a request with rsip (RFC 3261 §8.2.6). No I/O here.

use super::parse::Message;
use std::net::IpAddr;

/// A response the gateway answers itself.
#[derive(Debug, Clone, Default)]
pub struct Reply<'r> {
    /// Status code, 200..=699.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'r str,
    /// To tag added when the request's To has none.
    pub to_tag: &'r str,
    /// `received` for the top Via (RFC 3261 §18.2.1).
    pub received: Option<IpAddr>,
    /// Value for a bare `rport` in the top Via (RFC 3581).
    pub rport: Option<u16>,
    /// Extra headers `(name, value)`: Reason, Contact, Allow ...
    pub extra: &'r [(&'r str, &'r str)],
}

/// Serializes the response to `req` described by `r`.
pub fn reply(req: &Message<'_>, r: &Reply<'_>) -> Vec<u8> {
    todo!("{req:?} {r:?}")
}
