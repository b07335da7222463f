//! The SIP wire layer: the only module that names rsip types.
//!
//! rsip 0.4.0 rejects or misparses much legal carrier traffic (tel: and IPv6 Request-URIs,
//! folded headers, compact names, LF-only line ends, combined `Via: a, b`, non-UTF-8 bodies),
//! so rsip never sees raw wire bytes and never re-serializes a forwarded message. This module
//! frames, parses and edits messages itself; rsip only builds the gateway's own responses
//! ([`reply()`]). No I/O here.

pub mod branch;
pub mod edit;
#[cfg(test)]
pub(crate) mod fixture;
pub mod frame;
pub mod header;
pub mod message;
pub mod name;
pub mod probe;
pub mod reply;
pub mod scan;
pub mod uri;
pub mod via;

pub use branch::{hash64, rendezvous, rendezvous_hashed, Branch, Key, BRANCH_PREFIX};
pub use edit::{forward_request, forward_response, stamp_via, RequestEdit, ViaValue};
pub use frame::{frame, Frame, FrameError};
pub use header::{Cause, Q850};
pub use message::{parse, Header, Message, Method, ParseError, Start};
pub use name::HeaderName;
pub use reply::{reply, Reply};
pub use scan::{header_params, param, split_first, split_list};
pub use uri::{Host, HostPort, Scheme, Uri};
pub use via::Via;
