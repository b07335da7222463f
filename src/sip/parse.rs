//! Bytes -> [`Message`]: start line, unfolded headers with their byte ranges, body.
//! Borrowing, allocation-light, never panics. No I/O here.
//!
//! Leading CRLF/LF bytes (keep-alives) are skipped, so [`Message::raw`] starts at the start line
//! and every range in a [`Message`] is relative to that slice, not to the input. `raw` also ends
//! where the body ends: bytes past Content-Length are not part of the message.
//!
//! Accepted beyond what rsip 0.4.0 takes: any Request-URI without spaces (`tel:`, IPv6),
//! extension methods, bare-LF line ends, folded headers, whitespace before the colon, compact
//! header names, combined `Via: a, b`, non-UTF-8 bodies. Checking that mandatory headers are
//! present is the proxy's job (it answers 400), not this module's.

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
    Request {
        /// The method token.
        method: Method<'a>,
        /// The Request-URI as written, any scheme.
        uri: &'a str,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase, trimmed; may be empty.
        reason: &'a str,
    },
}

/// A request method; extension methods are kept, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    /// `INVITE`
    Invite,
    /// `ACK`
    Ack,
    /// `BYE`
    Bye,
    /// `CANCEL`
    Cancel,
    /// `OPTIONS`
    Options,
    /// `REGISTER`
    Register,
    /// Any other method token, as written (methods are case-sensitive, RFC 3261 §7.1).
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
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Max-Forwards`
    MaxForwards,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Contact` / `m`
    Contact,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
    /// `History-Info` (RFC 7044)
    HistoryInfo,
    /// `Diversion` (RFC 5806)
    Diversion,
    /// Any other name as written, or the long form of another compact name (`k` -> `Supported`).
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

impl Via<'_> {
    /// The sent-by as a [`HostPort`](super::HostPort); `None` when its host is not one.
    pub fn sent_by(&self) -> Option<super::HostPort> {
        Some(super::HostPort {
            host: super::Host::parse(self.host)?,
            port: self.port,
        })
    }
}

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// No blank line ends the headers.
    #[error("incomplete header section")]
    Incomplete,
    /// Nothing but keep-alive CRLFs (or nothing at all).
    #[error("empty message")]
    Empty,
    /// The start line is neither `METHOD URI SIP/2.0` nor `SIP/2.0 CODE reason`.
    #[error("malformed start line")]
    BadStartLine,
    /// The start line names a SIP version other than 2.0.
    #[error("unsupported SIP version")]
    BadVersion,
    /// The status code is not three digits in 100..=699.
    #[error("bad status code")]
    BadStatusCode,
    /// The start line or headers are not UTF-8; `at` is the offset of the first bad byte.
    #[error("start line or headers not UTF-8 at byte {at}")]
    NotUtf8 {
        /// Offset in [`Message::raw`] (after skipped keep-alives).
        at: usize,
    },
    /// A header line has no colon, an invalid name, or continues nothing.
    #[error("malformed header on line {line}")]
    BadHeaderLine {
        /// 1-based line number; the start line is line 1.
        line: usize,
    },
    /// Content-Length is not a decimal number.
    #[error("bad Content-Length")]
    BadContentLength,
    /// Fewer body bytes than Content-Length announced (RFC 3261 §18.3: discard).
    #[error("body has {have} bytes, Content-Length says {want}")]
    ShortBody {
        /// Content-Length.
        want: usize,
        /// Bytes after the blank line.
        have: usize,
    },
    /// A Via entry is not `SIP/2.0/transport host[:port] *(;param)`.
    #[error("malformed Via entry")]
    BadVia,
    /// Max-Forwards is not a decimal number.
    #[error("bad Max-Forwards")]
    BadMaxForwards,
}

/// Parses one complete message (a datagram, or one frame cut by [`crate::sip::frame()`]).
///
/// # Errors
/// [`ParseError`] when the bytes are not a SIP message; never panics.
pub fn parse(raw: &[u8]) -> Result<Message<'_>, ParseError> {
    let skip = raw
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let raw = raw.get(skip..).unwrap_or_default();
    if raw.is_empty() {
        return Err(ParseError::Empty);
    }
    let (head_end, blank_end) = head_end(raw).ok_or(ParseError::Incomplete)?;
    let head = raw.get(..head_end).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(head).map_err(|e| ParseError::NotUtf8 {
        at: e.valid_up_to(),
    })?;

    let mut lines = Lines { text: head, pos: 0 }.peekable();
    let first = lines.next().ok_or(ParseError::Incomplete)?;
    let start = parse_start(first.content)?;
    let start_line = first.range.clone();

    let mut headers = Vec::with_capacity(16);
    let mut line_no = 1;
    while let Some(line) = lines.next() {
        line_no += 1;
        let (name, value) =
            split_header(line.content).ok_or(ParseError::BadHeaderLine { line: line_no })?;
        let mut end = line.range.end;
        let mut value = Cow::Borrowed(value);
        // RFC 3261 §7.3.1: a line starting with SP/HT continues the previous header.
        while let Some(cont) = lines.next_if(|l| l.content.starts_with([' ', '\t'])) {
            line_no += 1;
            end = cont.range.end;
            let piece = trim_wsp(cont.content);
            if piece.is_empty() {
                continue;
            }
            let v = value.to_mut();
            if !v.is_empty() {
                v.push(' ');
            }
            v.push_str(piece);
        }
        headers.push(Header {
            name: HeaderName::from_wire(name),
            value,
            line: line.range.start..end,
        });
    }

    let available = raw.len().saturating_sub(blank_end);
    let body_len = match headers.iter().find(|h| h.name == HeaderName::ContentLength) {
        Some(h) => {
            let want = parse_decimal(&h.value).ok_or(ParseError::BadContentLength)?;
            let want = usize::try_from(want).map_err(|_| ParseError::BadContentLength)?;
            if want > available {
                return Err(ParseError::ShortBody {
                    want,
                    have: available,
                });
            }
            want
        }
        None => available,
    };
    let raw = raw
        .get(..blank_end + body_len)
        .ok_or(ParseError::Incomplete)?;
    let body = raw.get(blank_end..).unwrap_or_default();
    Ok(Message {
        raw,
        start,
        headers,
        start_line,
        blank_line: head_end..blank_end,
        body,
    })
}

/// Finds the blank line ending a header section: `(end of last header line, end of blank line)`.
///
/// Accepts `\n\n` and `\n\r\n`; `buf` must not start with CR or LF.
pub(crate) fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\n', buf.get(from..)?) {
        let nl = from + off;
        let rest = buf.get(nl + 1..)?;
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
        from = nl + 1;
    }
    None
}

/// One line of the header section.
struct Line<'a> {
    /// Without its terminator.
    content: &'a str,
    /// Terminator included.
    range: Range<usize>,
}

/// Lines of a header section, each ending in `\n` (a `\r` before it is stripped).
struct Lines<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.text.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let (len, content) = match rest.find('\n') {
            Some(nl) => (nl + 1, rest.get(..nl)?),
            None => (rest.len(), rest),
        };
        let content = content.strip_suffix('\r').unwrap_or(content);
        let start = self.pos;
        self.pos += len;
        Some(Line {
            content,
            range: start..self.pos,
        })
    }
}

fn parse_start(line: &str) -> Result<Start<'_>, ParseError> {
    if starts_with_ci(line, "SIP/") {
        let (version, rest) = line.split_once(' ').ok_or(ParseError::BadStartLine)?;
        check_version(version)?;
        let rest = rest.trim_start_matches(' ');
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return Err(ParseError::BadStatusCode);
        }
        let code = parse_decimal(code).ok_or(ParseError::BadStatusCode)?;
        let code = u16::try_from(code).map_err(|_| ParseError::BadStatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusCode);
        }
        return Ok(Start::Response {
            code,
            reason: trim_wsp(reason),
        });
    }
    let mut parts = line.split([' ', '\t']).filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if !method.bytes().all(is_token) || !starts_with_ci(version, "SIP/") {
        return Err(ParseError::BadStartLine);
    }
    check_version(version)?;
    Ok(Start::Request {
        method: Method::from_token(method),
        uri,
    })
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else {
        Err(ParseError::BadVersion)
    }
}

/// `name *WSP ":" value` -> (name, trimmed value); `None` when the line is not a header.
fn split_header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_token) {
        return None;
    }
    Some((name, trim_wsp(value)))
}

/// RFC 3261 §25.1 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn trim_wsp(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A non-empty run of ASCII digits (surrounding whitespace allowed) that fits a `u64`.
fn parse_decimal(s: &str) -> Option<u64> {
    let s = trim_wsp(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<'a> Method<'a> {
    /// Maps a method token; only the exact upper-case spellings are the known variants.
    pub fn from_token(token: &'a str) -> Method<'a> {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            other => Method::Other(other),
        }
    }

    /// The method token as it goes on the wire.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Other(s) => s,
            known => known.known().unwrap_or_default(),
        }
    }

    /// The token of a method dualgate knows by name; `None` for an extension method.
    pub fn known(&self) -> Option<&'static str> {
        match self {
            Method::Invite => Some("INVITE"),
            Method::Ack => Some("ACK"),
            Method::Bye => Some("BYE"),
            Method::Cancel => Some("CANCEL"),
            Method::Options => Some("OPTIONS"),
            Method::Register => Some("REGISTER"),
            Method::Other(_) => None,
        }
    }
}

impl<'a> HeaderName<'a> {
    /// Maps a header name as written (any case, compact or long) to its canonical form.
    pub fn from_wire(name: &'a str) -> HeaderName<'a> {
        const LONG: &[(&str, HeaderName<'static>)] = &[
            ("Via", HeaderName::Via),
            ("From", HeaderName::From),
            ("To", HeaderName::To),
            ("Call-ID", HeaderName::CallId),
            ("CSeq", HeaderName::CSeq),
            ("Max-Forwards", HeaderName::MaxForwards),
            ("Content-Length", HeaderName::ContentLength),
            ("Content-Type", HeaderName::ContentType),
            ("Contact", HeaderName::Contact),
            ("Route", HeaderName::Route),
            ("Record-Route", HeaderName::RecordRoute),
            ("History-Info", HeaderName::HistoryInfo),
            ("Diversion", HeaderName::Diversion),
        ];
        if let [c] = name.as_bytes() {
            // RFC 3261 §7.3.3 and the IANA compact-form registry.
            return match c.to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::Other("Content-Encoding"),
                b'k' => HeaderName::Other("Supported"),
                b's' => HeaderName::Other("Subject"),
                b'o' => HeaderName::Other("Event"),
                b'r' => HeaderName::Other("Refer-To"),
                b'b' => HeaderName::Other("Referred-By"),
                b'u' => HeaderName::Other("Allow-Events"),
                b'x' => HeaderName::Other("Session-Expires"),
                _ => HeaderName::Other(name),
            };
        }
        LONG.iter()
            .find(|(long, _)| long.eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other(name), |&(_, known)| known)
    }

    /// The canonical long name (`Call-ID`, `Record-Route`, or an `Other` name as held).
    pub fn as_str(&self) -> &'a str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::Contact => "Contact",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::HistoryInfo => "History-Info",
            HeaderName::Diversion => "Diversion",
            HeaderName::Other(s) => s,
        }
    }

    /// Whether two names denote the same header (`Other` names compare case-insensitively,
    /// and an `Other` spelling of a known or compact name matches that name).
    pub fn same(&self, other: &HeaderName<'_>) -> bool {
        match (self.canonical(), other.canonical()) {
            (HeaderName::Other(x), HeaderName::Other(y)) => x.eq_ignore_ascii_case(y),
            (x, y) => std::mem::discriminant(&x) == std::mem::discriminant(&y),
        }
    }

    /// The same name with an `Other` spelling of a known or compact name mapped to its variant.
    pub fn canonical(self) -> HeaderName<'a> {
        match self {
            HeaderName::Other(s) => HeaderName::from_wire(s),
            known => known,
        }
    }
}

impl<'a> Via<'a> {
    /// Parses one Via entry: `SIP/2.0/transport host[:port] *(;param)`, whitespace allowed
    /// around `/` and `:` (RFC 3261 §20.42, §25.1), IPv6 in brackets.
    ///
    /// # Errors
    /// [`ParseError::BadVia`] when the entry does not have that shape.
    pub fn parse(entry: &'a str) -> Result<Via<'a>, ParseError> {
        let raw = entry.trim();
        // An unterminated quoted-string swallows the rest of the line (and any later entries):
        // such a Via cannot be edited safely, so it is malformed.
        if !quotes_balanced(raw) {
            return Err(ParseError::BadVia);
        }
        let (name, rest) = raw.split_once('/').ok_or(ParseError::BadVia)?;
        let (version, rest) = rest.split_once('/').ok_or(ParseError::BadVia)?;
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return Err(ParseError::BadVia);
        }
        let rest = rest.trim_start();
        let t_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == ';')
            .unwrap_or(rest.len());
        let (transport, rest) = rest.split_at(t_end);
        if transport.is_empty() || !transport.bytes().all(is_token) {
            return Err(ParseError::BadVia);
        }
        let sb_end = rest.find(';').unwrap_or(rest.len());
        let (sent_by, params) = rest.split_at(sb_end);
        let (host, port) = super::uri::split_host_port(sent_by.trim()).ok_or(ParseError::BadVia)?;
        // One pass over the parameters (this runs for every Via of every message); the first
        // occurrence of a name wins, as with `param`.
        let (mut branch, mut received, mut rport) = (None, None, None);
        for p in split_outside(params, b';') {
            let (n, v) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            if n.eq_ignore_ascii_case("branch") {
                branch = branch.or(Some(v));
            } else if n.eq_ignore_ascii_case("received") {
                received = received.or(Some(v));
            } else if n.eq_ignore_ascii_case("rport") && rport.is_none() {
                rport = Some(match v {
                    None => None,
                    Some(p) => Some(p.parse::<u16>().map_err(|_| ParseError::BadVia)?),
                });
            }
        }
        Ok(Via {
            transport,
            host,
            port,
            branch: branch.flatten(),
            received: received.flatten(),
            rport,
            raw,
        })
    }
}

/// Whether every `"` opening a quoted-string is closed (a `\\` escapes the next character).
fn quotes_balanced(s: &str) -> bool {
    let (mut open, mut escaped) = (false, false);
    for b in s.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if open => escaped = true,
            b'"' => open = !open,
            _ => {}
        }
    }
    !open
}

/// Looks up `name` (case-insensitive) in a `;name[=value]` list: `Some(None)` for a bare flag,
/// `Some(Some(value))` with the value trimmed (quotes kept), `None` when absent.
pub fn param<'p>(params: &'p str, name: &str) -> Option<Option<&'p str>> {
    split_outside(params, b';').find_map(|p| {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// Splits a header value into its comma-separated entries (RFC 3261 §7.3.1), ignoring commas
/// inside quotes, `<...>` and `[...]`; entries are trimmed and empty ones skipped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    split_outside(value, b',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// The first entry of a comma list and the rest after its comma (`None` when it is the only one).
pub fn split_first(value: &str) -> (&str, Option<&str>) {
    // Skip empty leading entries, as split_list does, so both agree on which entry is first.
    let value = value.trim_start_matches([',', ' ', '\t']);
    match find_outside(value, b',') {
        Some(i) => {
            let first = value.get(..i).unwrap_or_default().trim();
            let rest = value.get(i + 1..).unwrap_or_default().trim();
            (first, (!rest.is_empty()).then_some(rest))
        }
        None => (value.trim(), None),
    }
}

/// The header parameters of a name-addr / addr-spec value (From, To, Route ...): what follows
/// the `>` of `<uri>`, or the URI's first `;` when there are no brackets (RFC 3261 §20.10).
pub fn header_params(value: &str) -> &str {
    // The first `;` outside quotes and `<...>` starts the header parameters either way.
    find_outside(value, b';')
        .and_then(|i| value.get(i..))
        .unwrap_or_default()
}

/// Byte offset of the first `sep` outside quotes, `<>` and `[]`.
fn find_outside(s: &str, sep: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    // Fast path (memchr): before the first quote or bracket nothing is nested, so the first
    // `sep` there is the answer; the byte-by-byte scan starts at that first opener, where its
    // state is still the initial one.
    let opener = memchr::memchr3(b'"', b'<', b'[', bytes).unwrap_or(bytes.len());
    if let Some(i) = memchr::memchr(sep, bytes.get(..opener).unwrap_or_default()) {
        return Some(i);
    }
    let mut in_quote = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for (i, b) in bytes.iter().copied().enumerate().skip(opener) {
        if in_quote {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'<' | b'[' => depth += 1,
            b'>' | b']' => depth = depth.saturating_sub(1),
            _ if b == sep && depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Pieces of `s` between `sep`s found by [`find_outside`] (untrimmed, empty ones included).
fn split_outside(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let cur = rest?;
        match find_outside(cur, sep) {
            Some(i) => {
                rest = cur.get(i + 1..);
                cur.get(..i)
            }
            None => {
                rest = None;
                Some(cur)
            }
        }
    })
}

impl<'a> Message<'a> {
    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as written; `None` for a response.
    pub fn request_uri(&self) -> Option<&'a str> {
        match self.start {
            Start::Request { uri, .. } => Some(uri),
            Start::Response { .. } => None,
        }
    }

    /// The status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Request { .. } => None,
            Start::Response { code, .. } => Some(code),
        }
    }

    /// The headers called `name`, in wire order.
    pub fn headers_named<'s>(
        &'s self,
        name: HeaderName<'s>,
    ) -> impl Iterator<Item = &'s Header<'a>> + 's {
        let want = name.canonical();
        self.headers.iter().filter(move |h| is_named(&want, h))
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: HeaderName<'_>) -> Option<&str> {
        let want = name.canonical();
        self.headers
            .iter()
            .find(|h| is_named(&want, h))
            .map(|h| h.value.as_ref())
    }

    /// Every Via entry as written, combined lines split, in wire order.
    pub fn via_entries(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|h| h.name == HeaderName::Via)
            .flat_map(|h| split_list(&h.value))
    }

    /// Every Via entry parsed, in wire order.
    pub fn try_vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> {
        self.via_entries().map(Via::parse)
    }

    /// Every Via entry, in wire order, stopping before the first malformed one (so a malformed
    /// top Via makes this empty and [`Message::top_via`] `None`).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> {
        self.try_vias().map_while(Result::ok)
    }

    /// The top Via entry, `None` when missing or malformed.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.vias().next()
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId)
    }

    /// CSeq as (sequence number, method); `None` when missing or malformed.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.header(HeaderName::CSeq)?;
        let mut parts = v.split_ascii_whitespace();
        let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let num = u32::try_from(parse_decimal(num)?).ok()?;
        method.bytes().all(is_token).then_some((num, method))
    }

    /// Max-Forwards: `None` when absent.
    ///
    /// # Errors
    /// The inner [`ParseError::BadMaxForwards`] when present but not a decimal `u32`.
    pub fn max_forwards(&self) -> Option<Result<u32, ParseError>> {
        self.header(HeaderName::MaxForwards).map(|v| {
            parse_decimal(v)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(ParseError::BadMaxForwards)
        })
    }

    /// The Content-Length value, when present and numeric.
    pub fn content_length(&self) -> Option<u64> {
        self.header(HeaderName::ContentLength)
            .and_then(parse_decimal)
    }

    /// The `tag` header parameter of From (parameters inside `<uri>` do not count).
    pub fn from_tag(&self) -> Option<&str> {
        tag_of(self.header(HeaderName::From)?)
    }

    /// The `tag` header parameter of To (parameters inside `<uri>` do not count).
    pub fn to_tag(&self) -> Option<&str> {
        tag_of(self.header(HeaderName::To)?)
    }

    /// Every Route entry in order, combined lines split.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.list(HeaderName::Route)
    }

    /// Every Record-Route entry in order, combined lines split.
    pub fn record_routes(&self) -> impl Iterator<Item = &str> {
        self.list(HeaderName::RecordRoute)
    }

    fn list(&self, name: HeaderName<'static>) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .flat_map(|h| split_list(&h.value))
    }
}

/// Stored names are already canonical, so only `Other` needs a case-insensitive compare.
fn is_named(want: &HeaderName<'_>, h: &Header<'_>) -> bool {
    match (want, &h.name) {
        (HeaderName::Other(x), HeaderName::Other(y)) => x.eq_ignore_ascii_case(y),
        (x, y) => x == y,
    }
}

fn tag_of(value: &str) -> Option<&str> {
    param(header_params(value), "tag").flatten()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The scan before the memchr fast path, kept as the reference.
    fn find_outside_by_bytes(s: &str, sep: u8) -> Option<usize> {
        let (mut in_quote, mut escaped, mut depth) = (false, false, 0usize);
        for (i, b) in s.bytes().enumerate() {
            if in_quote {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_quote = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_quote = true,
                b'<' | b'[' => depth += 1,
                b'>' | b']' => depth = depth.saturating_sub(1),
                _ if b == sep && depth == 0 => return Some(i),
                _ => {}
            }
        }
        None
    }

    #[test]
    fn the_fast_separator_search_agrees_with_the_byte_scan() {
        let pieces = [
            "a", ",", ";", "\"", "\\", "<", ">", "[", "]", "x=1", " ", "电话",
        ];
        let mut checked = 0;
        // Every string of up to 4 pieces.
        let mut stack: Vec<String> = vec![String::new()];
        while let Some(s) = stack.pop() {
            for sep in [b',', b';'] {
                assert_eq!(
                    find_outside(&s, sep),
                    find_outside_by_bytes(&s, sep),
                    "{s:?} {}",
                    sep as char
                );
                checked += 1;
            }
            if s.chars().count() < 4 {
                stack.extend(pieces.iter().map(|p| format!("{s}{p}")));
            }
        }
        assert!(checked > 20_000, "{checked}");
    }
    use crate::sip::fixture::{invite, invite_lf, with_body, INVITE_HEAD, SDP};

    fn text<'m>(m: &'m Message<'_>, r: &Range<usize>) -> &'m str {
        std::str::from_utf8(&m.raw[r.clone()]).unwrap()
    }

    #[test]
    fn carrier_invite_with_tel_request_uri_parses_every_field() {
        let bytes = invite();
        let m = parse(&bytes).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(
            m.request_uri(),
            Some("tel:+8659185666661;phone-context=+86")
        );
        assert_eq!(m.headers.len(), 12);
        assert_eq!(m.body, SDP.as_bytes());
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.carrier.example"));
        assert_eq!(m.cseq(), Some((314159, "INVITE")));
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.max_forwards(), Some(Ok(70)));
        assert_eq!(m.content_length(), Some(SDP.len() as u64));
        assert_eq!(
            m.routes().collect::<Vec<_>>(),
            ["<sip:gw.example.net;lr>", "<sip:core.example.net;lr>"]
        );
        assert_eq!(
            m.header(HeaderName::Other("p-asserted-identity")),
            Some("<sip:+8613800000000@carrier.example>")
        );
        let via = m.top_via().unwrap();
        assert_eq!(
            via,
            Via {
                transport: "UDP",
                host: "203.0.113.7",
                port: Some(5060),
                branch: Some("z9hG4bK776asdhds"),
                received: None,
                rport: Some(None),
                raw: "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport",
            }
        );
    }

    #[test]
    fn ranges_tile_the_message_exactly() {
        for bytes in [invite(), invite_lf()] {
            let m = parse(&bytes).unwrap();
            let mut rebuilt = m.raw[m.start_line.clone()].to_vec();
            for h in &m.headers {
                rebuilt.extend_from_slice(&m.raw[h.line.clone()]);
            }
            rebuilt.extend_from_slice(&m.raw[m.blank_line.clone()]);
            rebuilt.extend_from_slice(m.body);
            assert_eq!(rebuilt, bytes);
            assert_eq!(m.raw, &bytes[..]);
        }
    }

    #[test]
    fn request_uris_rsip_rejects_are_kept_verbatim() {
        let cases = [
            "tel:+8659185666661",
            "tel:12356;phone-context=+86-591",
            "sip:12356@[2001:db8::1]:5060",
            "sip:user@[::1];transport=tcp",
            "sips:12356@gw.example.net",
            "urn:service:sos",
            "sip:%2B8659185666661@10.0.0.1:5080;user=phone",
        ];
        for uri in cases {
            let bytes = format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bKx\r\n\r\n"
            );
            let m = parse(bytes.as_bytes()).unwrap();
            assert_eq!(m.request_uri(), Some(uri), "{uri}");
            let via = m.top_via().unwrap();
            assert_eq!((via.host, via.port), ("[2001:db8::7]", Some(5062)), "{uri}");
        }
    }

    #[test]
    fn folded_header_unfolds_to_one_entry_with_single_spaces() {
        let raw = "OPTIONS sip:gw SIP/2.0\r\n\
Subject: I know you're there,\r\n   pick up the phone\r\n\t and talk to me!\r\n\
Via: SIP/2.0/UDP a.example;branch=z9hG4bK1,\r\n SIP/2.0/TCP b.example:5070;branch=z9hG4bK2\r\n\
Call-ID: x\r\n\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.headers.len(), 3);
        let subject = &m.headers[0];
        assert_eq!(subject.name, HeaderName::Other("Subject"));
        assert_eq!(
            subject.value,
            "I know you're there, pick up the phone and talk to me!"
        );
        assert!(matches!(subject.value, Cow::Owned(_)));
        assert_eq!(
            text(&m, &subject.line),
            "Subject: I know you're there,\r\n   pick up the phone\r\n\t and talk to me!\r\n"
        );
        let hosts: Vec<_> = m.vias().map(|v| (v.transport, v.host, v.port)).collect();
        assert_eq!(
            hosts,
            [("UDP", "a.example", None), ("TCP", "b.example", Some(5070))]
        );
        assert_eq!(m.call_id(), Some("x"));
        assert!(matches!(m.headers[2].value, Cow::Borrowed("x")));
    }

    #[test]
    fn whitespace_before_the_colon_is_allowed() {
        let cases = [
            ("Call-ID : abc", HeaderName::CallId, "abc"),
            ("Call-ID\t:abc", HeaderName::CallId, "abc"),
            ("To  :  <sip:b@c>  ", HeaderName::To, "<sip:b@c>"),
            ("i :abc", HeaderName::CallId, "abc"),
            ("X-Empty:", HeaderName::Other("X-Empty"), ""),
        ];
        for (line, name, value) in cases {
            let raw = format!("BYE sip:a@b SIP/2.0\r\n{line}\r\n\r\n");
            let m = parse(raw.as_bytes()).unwrap();
            assert_eq!(m.headers[0].name, name, "{line}");
            assert_eq!(m.headers[0].value, value, "{line}");
        }
    }

    #[test]
    fn lf_only_message_parses_like_the_crlf_one() {
        let crlf = invite();
        let lf = invite_lf();
        let (a, b) = (parse(&crlf).unwrap(), parse(&lf).unwrap());
        assert_eq!(a.start, b.start);
        assert_eq!(b.blank_line.len(), 1);
        assert_eq!(a.blank_line.len(), 2);
        assert_eq!(b.body, SDP.as_bytes());
        let names = |m: &Message<'_>| -> Vec<(String, String)> {
            m.headers
                .iter()
                .map(|h| (h.name.as_str().to_owned(), h.value.to_string()))
                .collect()
        };
        assert_eq!(names(&a), names(&b));
        assert!(text(&b, &b.headers[0].line).ends_with("rport\n"));
    }

    #[test]
    fn methods_map_and_unknown_ones_are_kept() {
        let cases = [
            ("INVITE", Method::Invite),
            ("ACK", Method::Ack),
            ("BYE", Method::Bye),
            ("CANCEL", Method::Cancel),
            ("OPTIONS", Method::Options),
            ("REGISTER", Method::Register),
            ("FOO", Method::Other("FOO")),
            ("PRACK", Method::Other("PRACK")),
            ("invite", Method::Other("invite")),
        ];
        for (token, want) in cases {
            let raw = format!("{token} sip:x@y SIP/2.0\r\nCSeq: 1 {token}\r\n\r\n");
            let m = parse(raw.as_bytes()).unwrap();
            assert_eq!(m.method(), Some(want), "{token}");
            assert_eq!(want.as_str(), token);
            assert_eq!(m.cseq(), Some((1, token)));
        }
    }

    #[test]
    fn tags_come_from_header_params_not_uri_params() {
        let cases = [
            (r#""A, B;c" <sip:a@b;x="a b;tag=no">;tag=t1"#, Some("t1")),
            ("<sip:b@c;tag=wrong>", None),
            ("<sip:b@c;tag=wrong>;TAG=right", Some("right")),
            ("sip:b@c;user=phone;tag=x", Some("x")),
            ("sip:b@c", None),
            (r#""Quoted <not> an addr" <sip:q@r>;tag=q1"#, Some("q1")),
            ("Bob <tel:+86591;tag=in>;x=1 ; tag = spaced", Some("spaced")),
        ];
        for (value, want) in cases {
            let raw = format!("BYE sip:a@b SIP/2.0\r\nFrom: {value}\r\nt: {value}\r\n\r\n");
            let m = parse(raw.as_bytes()).unwrap();
            assert_eq!(m.from_tag(), want, "{value}");
            assert_eq!(m.to_tag(), want, "{value}");
        }
    }

    #[test]
    fn quoted_uri_params_with_commas_do_not_split_routes() {
        let raw = "BYE sip:a@b SIP/2.0\r\n\
Route: <sip:p1.example;lr;x=\"a, b\">, \"Proxy, Two\" <sip:p2.example;lr>\r\n\
Route: <sip:p3.example;lr>\r\n\
Record-Route: <sip:[2001:db8::1]:5060;lr>,<sip:rr2;lr>\r\n\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(
            m.routes().collect::<Vec<_>>(),
            [
                "<sip:p1.example;lr;x=\"a, b\">",
                "\"Proxy, Two\" <sip:p2.example;lr>",
                "<sip:p3.example;lr>"
            ]
        );
        assert_eq!(
            m.record_routes().collect::<Vec<_>>(),
            ["<sip:[2001:db8::1]:5060;lr>", "<sip:rr2;lr>"]
        );
    }

    #[test]
    fn compact_and_long_names_map_case_insensitively() {
        let cases = [
            ("v", HeaderName::Via),
            ("V", HeaderName::Via),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("e", HeaderName::Other("Content-Encoding")),
            ("k", HeaderName::Other("Supported")),
            ("s", HeaderName::Other("Subject")),
            ("o", HeaderName::Other("Event")),
            ("r", HeaderName::Other("Refer-To")),
            ("b", HeaderName::Other("Referred-By")),
            ("u", HeaderName::Other("Allow-Events")),
            ("x", HeaderName::Other("Session-Expires")),
            ("y", HeaderName::Other("y")),
            ("call-id", HeaderName::CallId),
            ("CSEQ", HeaderName::CSeq),
            ("max-forwards", HeaderName::MaxForwards),
            ("RECORD-ROUTE", HeaderName::RecordRoute),
            ("route", HeaderName::Route),
            ("history-info", HeaderName::HistoryInfo),
            ("Diversion", HeaderName::Diversion),
            ("X-Carrier", HeaderName::Other("X-Carrier")),
        ];
        for (name, want) in cases {
            assert_eq!(HeaderName::from_wire(name), want, "{name}");
        }
        assert!(HeaderName::Other("v").same(&HeaderName::Via));
        assert!(HeaderName::Other("x-a").same(&HeaderName::Other("X-A")));
        assert!(!HeaderName::Other("x-a").same(&HeaderName::Other("X-B")));
    }

    #[test]
    fn compact_headers_answer_the_accessors() {
        let raw = "INVITE sip:12356@gw SIP/2.0\r\n\
v: SIP/2.0/TCP 198.51.100.1;branch=z9hG4bKc\r\n\
f: <sip:a@carrier>;tag=ft\r\n\
t: <sip:12356@gw>;tag=tt\r\n\
i: compact-call\r\n\
m: <sip:a@198.51.100.1>\r\n\
CSeq: 7 INVITE\r\n\
l: 3\r\n\r\nabcdef";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.top_via().unwrap().transport, "TCP");
        assert_eq!(m.from_tag(), Some("ft"));
        assert_eq!(m.to_tag(), Some("tt"));
        assert_eq!(m.call_id(), Some("compact-call"));
        assert_eq!(m.header(HeaderName::Contact), Some("<sip:a@198.51.100.1>"));
        assert_eq!(m.header(HeaderName::Other("i")), Some("compact-call"));
        assert_eq!(m.body, b"abc");
    }

    #[test]
    fn combined_via_line_yields_every_entry_in_order() {
        let raw = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP gw.example:5060;branch=z9hG4bKdgA, SIP/2.0/UDP 203.0.113.7;branch=z9hG4bK1;received=203.0.113.8\r\n\
Via: SIP/2.0/TCP c.example;branch=z9hG4bK3;rport=5099\r\n\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.method(), None);
        let vias: Vec<_> = m.vias().collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].branch, Some("z9hG4bKdgA"));
        assert_eq!(vias[1].received, Some("203.0.113.8"));
        assert_eq!(vias[2].rport, Some(Some(5099)));
    }

    #[test]
    fn via_entries_parse_with_optional_whitespace() {
        type Fields<'v> = (
            &'v str,
            &'v str,
            Option<u16>,
            Option<&'v str>,
            Option<Option<u16>>,
        );
        let cases: &[(&str, Option<Fields<'_>>)] = &[
            (
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
                Some(("UDP", "10.0.0.1", Some(5060), Some("z9hG4bK1"), None)),
            ),
            (
                "SIP / 2.0 / TCP  host.example ; branch = z9hG4bK2 ; rport",
                Some(("TCP", "host.example", None, Some("z9hG4bK2"), Some(None))),
            ),
            (
                "sip/2.0/tls h : 5061;rport=1234",
                Some(("tls", "h", Some(5061), None, Some(Some(1234)))),
            ),
            (
                "SIP/2.0/UDP [2001:db8::9]:5060;BRANCH=z9hG4bK3",
                Some(("UDP", "[2001:db8::9]", Some(5060), Some("z9hG4bK3"), None)),
            ),
            (
                "SIP/2.0/UDP [::1];received=::2",
                Some(("UDP", "[::1]", None, None, None)),
            ),
            ("SIP/2.0/UDP", None),
            ("SIP/2.0/UDP ;branch=x", None),
            ("SIP/3.0/UDP h", None),
            ("HTTP/2.0/UDP h", None),
            ("SIP/2.0/UDP h:99999", None),
            ("SIP/2.0/UDP h:abc", None),
            ("SIP/2.0/UDP [::1", None),
            ("SIP/2.0/UDP h;rport=x", None),
            ("SIP/2.0/UDP h h2", None),
            ("", None),
        ];
        for (entry, want) in cases {
            let got = Via::parse(entry)
                .ok()
                .map(|v| (v.transport, v.host, v.port, v.branch, v.rport));
            assert_eq!(got, *want, "{entry}");
        }
        assert_eq!(
            Via::parse("SIP/2.0/UDP [::1];received=::2")
                .unwrap()
                .received,
            Some("::2")
        );
    }

    #[test]
    fn malformed_top_via_hides_the_rest() {
        let raw = "BYE sip:a@b SIP/2.0\r\nVia: garbage, SIP/2.0/UDP ok.example\r\n\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.top_via(), None);
        assert_eq!(m.vias().count(), 0);
        assert_eq!(m.try_vias().count(), 2);
        assert_eq!(
            m.via_entries().collect::<Vec<_>>(),
            ["garbage", "SIP/2.0/UDP ok.example"]
        );
    }

    #[test]
    fn params_are_looked_up_case_insensitively() {
        let cases = [
            (";branch=z9hG4bK1;rport", "branch", Some(Some("z9hG4bK1"))),
            (";branch=z9hG4bK1;rport", "RPORT", Some(None)),
            (";branch=z9hG4bK1;rport", "received", None),
            ("lr;x=\"a;b\";tag=t", "tag", Some(Some("t"))),
            ("lr;x=\"a;tag=b\"", "tag", None),
            (" ; tag = v ", "tag", Some(Some("v"))),
            ("", "tag", None),
        ];
        for (params, name, want) in cases {
            assert_eq!(param(params, name), want, "{params} {name}");
        }
    }

    #[test]
    fn list_helpers_agree_on_the_first_entry() {
        let cases: &[(&str, &str, Option<&str>, usize)] = &[
            ("a, b ,c", "a", Some("b ,c"), 3),
            ("a", "a", None, 1),
            (" , a,", "a", None, 1),
            (
                "<sip:x;p=\"1,2\">, <sip:y>",
                "<sip:x;p=\"1,2\">",
                Some("<sip:y>"),
                2,
            ),
            (
                "\"Doe, J\" <sip:j@d>;tag=1",
                "\"Doe, J\" <sip:j@d>;tag=1",
                None,
                1,
            ),
            ("[2001:db8::1]:5060, b", "[2001:db8::1]:5060", Some("b"), 2),
            ("", "", None, 0),
        ];
        for (value, first, rest, n) in cases {
            assert_eq!(split_first(value), (*first, *rest), "{value}");
            assert_eq!(split_list(value).count(), *n, "{value}");
            assert_eq!(split_list(value).next().unwrap_or(""), *first, "{value}");
        }
        assert_eq!(header_params("<sip:a;lr>;tag=x"), ";tag=x");
        assert_eq!(header_params("sip:a;lr"), ";lr");
        assert_eq!(header_params("<sip:a;lr"), "");
    }

    #[test]
    fn content_length_bounds_the_body() {
        let mut bytes = with_body("MESSAGE sip:a@b SIP/2.0\r\n", b"hello");
        bytes.extend_from_slice(b"TRAILING GARBAGE");
        let m = parse(&bytes).unwrap();
        assert_eq!(m.body, b"hello");
        assert!(m.raw.ends_with(b"\r\n\r\nhello"));
        assert_eq!(m.raw.len(), bytes.len() - "TRAILING GARBAGE".len());

        let short = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nhello";
        assert_eq!(
            parse(short).unwrap_err(),
            ParseError::ShortBody { want: 10, have: 5 }
        );
        let none = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nrest of datagram";
        assert_eq!(parse(none).unwrap().body, b"rest of datagram");
    }

    #[test]
    fn non_utf8_body_is_kept_and_non_utf8_header_is_an_error() {
        let body = [0xff, 0x00, 0xfe, b'\r', b'\n', 0x80];
        let bytes = with_body(
            "MESSAGE sip:a@b SIP/2.0\r\nContent-Type: application/octet-stream\r\n",
            &body,
        );
        assert_eq!(parse(&bytes).unwrap().body, body);

        let bad = b"MESSAGE sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\n\r\n";
        assert_eq!(parse(bad).unwrap_err(), ParseError::NotUtf8 { at: 37 });
    }

    #[test]
    fn leading_keepalive_bytes_are_skipped_and_ranges_follow() {
        let mut bytes = b"\r\n\r\n\n".to_vec();
        bytes.extend_from_slice(&invite());
        let m = parse(&bytes).unwrap();
        assert!(m.raw.starts_with(b"INVITE tel:"));
        assert_eq!(m.start_line.start, 0);
        assert_eq!(text(&m, &m.headers[1].line), "Max-Forwards: 70\r\n");
    }

    #[test]
    fn status_lines_parse_with_any_reason() {
        let cases = [
            ("SIP/2.0 200 OK", 200, "OK"),
            ("SIP/2.0 183 Session Progress", 183, "Session Progress"),
            ("sip/2.0 404 ", 404, ""),
            ("SIP/2.0 503", 503, ""),
            (
                "SIP/2.0 480 Temporarily  Unavailable ",
                480,
                "Temporarily  Unavailable",
            ),
        ];
        for (line, code, reason) in cases {
            let raw = format!("{line}\r\nCall-ID: x\r\n\r\n");
            let m = parse(raw.as_bytes()).unwrap();
            assert_eq!(m.start, Start::Response { code, reason }, "{line}");
        }
    }

    #[test]
    fn a_via_with_an_unterminated_quote_is_malformed() {
        let cases = [
            ("SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a", false),
            (
                "SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a, SIP/2.0/UDP b",
                false,
            ),
            ("SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a,b\"", true),
            ("SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a\\\"b\"", true),
        ];
        for (entry, ok) in cases {
            assert_eq!(Via::parse(entry).is_ok(), ok, "{entry}");
        }
    }

    #[test]
    fn bad_messages_give_the_matching_error() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"", ParseError::Empty),
            (b"\r\n\r\n", ParseError::Empty),
            (
                b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n",
                ParseError::Incomplete,
            ),
            (b"INVITE sip:a@b SIP/2.0", ParseError::Incomplete),
            (b"INVITE sip:a@b SIP/3.0\r\n\r\n", ParseError::BadVersion),
            (b"SIP/1.0 200 OK\r\n\r\n", ParseError::BadVersion),
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::BadStartLine),
            (b"HELLO\r\n\r\n", ParseError::BadStartLine),
            (
                b"INVITE sip:a@b c SIP/2.0\r\n\r\n",
                ParseError::BadStartLine,
            ),
            (b"INV(TE sip:a@b SIP/2.0\r\n\r\n", ParseError::BadStartLine),
            (b"SIP/2.0 99 Low\r\n\r\n", ParseError::BadStatusCode),
            (b"SIP/2.0 700 High\r\n\r\n", ParseError::BadStatusCode),
            (b"SIP/2.0 2OO OK\r\n\r\n", ParseError::BadStatusCode),
            (
                b"BYE sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n",
                ParseError::BadHeaderLine { line: 2 },
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\n continues nothing\r\n\r\n",
                ParseError::BadHeaderLine { line: 2 },
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nA: 1\r\nBad Name: x\r\n\r\n",
                ParseError::BadHeaderLine { line: 3 },
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nA: 1\r\n b\r\n: x\r\n\r\n",
                ParseError::BadHeaderLine { line: 4 },
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nContent-Length: ten\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (
                b"BYE \xffsip SIP/2.0\r\n\r\n",
                ParseError::NotUtf8 { at: 4 },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse(raw).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn max_forwards_reports_missing_and_malformed_apart() {
        let cases = [
            ("", None),
            ("Max-Forwards: 0\r\n", Some(Ok(0))),
            ("Max-Forwards:  69 \r\n", Some(Ok(69))),
            (
                "Max-Forwards: seventy\r\n",
                Some(Err(ParseError::BadMaxForwards)),
            ),
            ("Max-Forwards:\r\n", Some(Err(ParseError::BadMaxForwards))),
        ];
        for (line, want) in cases {
            let raw = format!("BYE sip:a@b SIP/2.0\r\n{line}\r\n");
            assert_eq!(
                parse(raw.as_bytes()).unwrap().max_forwards(),
                want,
                "{line}"
            );
        }
    }

    #[test]
    fn cseq_must_be_number_and_method() {
        let cases = [
            ("CSeq: 1 INVITE", Some((1, "INVITE"))),
            ("CSeq:   4294967295   BYE ", Some((u32::MAX, "BYE"))),
            ("CSeq: 4294967296 BYE", None),
            ("CSeq: INVITE", None),
            ("CSeq: 1 INVITE extra", None),
            ("CSeq: -1 INVITE", None),
        ];
        for (line, want) in cases {
            let raw = format!("BYE sip:a@b SIP/2.0\r\n{line}\r\n\r\n");
            assert_eq!(parse(raw.as_bytes()).unwrap().cseq(), want, "{line}");
        }
    }

    #[test]
    fn no_prefix_of_a_valid_message_panics_or_parses_whole() {
        for bytes in [invite(), invite_lf()] {
            let head_len = bytes.len() - SDP.len();
            for n in 0..bytes.len() {
                let got = parse(&bytes[..n]);
                if n >= head_len {
                    assert_eq!(
                        got.unwrap_err(),
                        ParseError::ShortBody {
                            want: SDP.len(),
                            have: n - head_len
                        },
                        "{n}"
                    );
                } else {
                    assert!(got.is_err(), "prefix {n} parsed");
                }
            }
            assert!(parse(&bytes).is_ok());
        }
    }

    #[test]
    fn garbage_never_panics() {
        let cases: &[&[u8]] = &[
            b"\0\0\0\0",
            b"\n\n\n\r\r\r",
            b"\r",
            b"INVITE\n\n",
            b" \n\n",
            b":\n\n",
            b"SIP/2.0\n\n",
            b"SIP/2.0 \n\n",
            b"A B SIP/2.0\n:\n\n",
            b"A B SIP/2.0\nVia:\n \n\t\n\n",
            b"A B SIP/2.0\nVia: ,,,\"\n\n",
            b"A B SIP/2.0\nVia: SIP/2.0/UDP [\nFrom: <<<\"\\\nTo: >>>;tag\nRoute: \"\n\n",
            b"A B SIP/2.0\r\r\n\r\n",
            b"\xf0\x9f\x92\xa9 B SIP/2.0\n\n",
            b"\xf0\x9f\x92",
            INVITE_HEAD.as_bytes(),
        ];
        for raw in cases {
            if let Ok(m) = parse(raw) {
                // Exercise every accessor on whatever parsed.
                let _ = (
                    m.top_via(),
                    m.vias().count(),
                    m.try_vias().count(),
                    m.cseq(),
                );
                let _ = (
                    m.from_tag(),
                    m.to_tag(),
                    m.max_forwards(),
                    m.routes().count(),
                );
            }
        }
        let m = parse(b"A B SIP/2.0\nVia: SIP/2.0/UDP [\nTo: >>>;tag\n\n").unwrap();
        assert_eq!(m.top_via(), None);
        assert_eq!(m.to_tag(), None);
    }
}
