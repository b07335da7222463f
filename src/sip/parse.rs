//! Bytes -> [`Message`]: start line, unfolded headers with their byte ranges, body.
//! Borrowing, allocation-light, never panics. No I/O here.

use std::borrow::Cow;
use std::ops::Range;
use thiserror::Error;

/// A parsed SIP message borrowing the received bytes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The whole message as received (after any leading CRLFs were skipped).
    pub raw: &'a [u8],
    /// Request line or status line.
    pub start: Start<'a>,
    /// Header lines in wire order; a folded header is one entry.
    pub headers: Vec<Header<'a>>,
    /// Byte range of the start line in `raw`, terminator included.
    pub start_line: Range<usize>,
    /// Byte range of the blank line ending the headers (`\r\n` or `\n`).
    pub blank_line: Range<usize>,
    /// The body: exactly Content-Length bytes when that header is present.
    pub body: &'a [u8],
}

/// Request line or status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start<'a> {
    /// `METHOD Request-URI SIP/2.0`
    Request { method: Method<'a>, uri: &'a str },
    /// `SIP/2.0 code reason`
    Response { code: u16, reason: &'a str },
}

/// A request method; extension methods are kept, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Other(&'a str),
}

/// One header line (continuations unfolded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// Canonical name; compact forms (`v:` `f:` `t:` `i:` `m:` `l:` ...) map to the long ones.
    pub name: HeaderName<'a>,
    /// The value, trimmed, continuation lines joined with one space.
    pub value: Cow<'a, str>,
    /// Byte range of the whole line in `Message::raw`, continuations and terminator included.
    pub line: Range<usize>,
}

/// Header names the gateway reads or edits; everything else is `Other` and passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName<'a> {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    ContentLength,
    ContentType,
    Contact,
    Route,
    RecordRoute,
    HistoryInfo,
    Diversion,
    Other(&'a str),
}

/// One Via entry (a combined `Via: a, b` line yields two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// `UDP`, `TCP`, ... as written.
    pub transport: &'a str,
    /// sent-by host (IPv6 keeps its brackets).
    pub host: &'a str,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<&'a str>,
    /// `received` parameter.
    pub received: Option<&'a str>,
    /// `rport` parameter: `Some(None)` when present without a value.
    pub rport: Option<Option<u16>>,
    /// The whole entry as written, e.g. `SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1`.
    pub raw: &'a str,
}

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// No blank line ends the headers.
    #[error("incomplete header section")]
    Incomplete,
}

/// Parses one complete message (a datagram, or one frame cut by [`crate::sip::frame`]).
///
/// # Errors
/// [`ParseError`] when the bytes are not a SIP message; never panics.
pub fn parse(raw: &[u8]) -> Result<Message<'_>, ParseError> {
    todo!("{raw:?}")
}
