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

use super::name::{same_letters, HeaderName, KNOWN};
use super::scan::{
    find_tag_end, header_params, is_token, param, parse_decimal, split_list, starts_with_ci,
    trim_wsp,
};
use super::via::Via;
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
    /// Position in `headers` of the first header of each known name ([`HeaderName`] variants
    /// other than `Other`), [`NONE`] when absent: the accessors look a header up once, not
    /// by walking every header each time.
    index: [u32; KNOWN],
    /// CSeq read once at parse time when its value is a slice of `raw` (it is unless folded);
    /// `None`: read it on each call.
    cseq: Option<Option<(u32, &'a str)>>,
}

/// No header of that name in [`Message::headers`].
const NONE: u32 = u32::MAX;

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
    match plain(raw) {
        Some(head) => finish(raw, head),
        None => finish(raw, head_by_lines(raw)?),
    }
}

/// A header section read: what [`finish`] makes a [`Message`] of.
#[cfg_attr(test, derive(Debug))]
struct Head<'a> {
    start: Start<'a>,
    start_line: Range<usize>,
    headers: Vec<Header<'a>>,
    index: [u32; KNOWN],
    blank_line: Range<usize>,
}

/// Bytes of a message made text at once by [`plain_head`]: the head and a usual body fit.
const PLAIN_TEXT: usize = 2048;

/// [`plain_head`] with the fastest line-feed search the CPU has. One searcher for the whole
/// section, called directly: `memchr::memchr` per line goes through its CPU dispatch each time,
/// which costs as much as the search of a short line.
fn plain(raw: &[u8]) -> Option<Head<'_>> {
    #[cfg(target_arch = "x86_64")]
    {
        use memchr::arch::x86_64::avx2::memchr::One;
        // Made once: a searcher is a few vectors, which each parse would otherwise copy.
        static LINE_FEED: std::sync::OnceLock<Option<One>> = std::sync::OnceLock::new();
        if let Some(one) = LINE_FEED.get_or_init(|| One::new(b'\n')) {
            return plain_head(raw, |hay| one.find(hay));
        }
    }
    plain_head(raw, |hay| memchr::memchr(b'\n', hay))
}

/// The header section as nearly every message writes it, read in one pass over the text: each
/// line's end is looked for (by `line_feed`) from where its name ends, and no line is folded. The general path,
/// [`head_by_lines`], reads such a section the same way; `None` sends any other section there
/// (a folded line, a malformed one, one not UTF-8, a head longer than [`PLAIN_TEXT`] bytes),
/// and with it every error.
#[inline(always)]
fn plain_head(raw: &[u8], line_feed: impl Fn(&[u8]) -> Option<usize>) -> Option<Head<'_>> {
    let probe = raw.get(..PLAIN_TEXT).unwrap_or(raw);
    // The message is text as a whole (an SDP body is), or up to a binary body.
    let text = match std::str::from_utf8(probe) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(probe.get(..e.valid_up_to())?).ok()?,
    };
    let b = text.as_bytes();
    let nl = line_feed(b)?;
    let start = parse_start(text.get(..without_cr(b, 0, nl))?).ok()?;
    let mut headers = Vec::with_capacity(16);
    let mut index = [NONE; KNOWN];
    let mut pos = nl + 1;
    loop {
        let ahead = b.get(pos..)?;
        let blank = match ahead {
            [b'\n', ..] => 1,
            [b'\r', b'\n', ..] => 2,
            _ => 0,
        };
        if blank > 0 {
            return Some(Head {
                start,
                start_line: 0..nl + 1,
                headers,
                index,
                blank_line: pos..pos + blank,
            });
        }
        // The name stops at a byte at or below SP, so the line's LF is not before its end.
        let name_len = name_end(ahead);
        let nl = pos + name_len + line_feed(ahead.get(name_len..)?)?;
        // RFC 3261 §7.3.1: a line starting with SP/HT continues this one.
        if matches!(b.get(nl + 1), Some(b' ' | b'\t')) {
            return None;
        }
        let (name, value) = split_named(text, pos, without_cr(b, pos, nl), name_len)?;
        if let Some(slot) = name.slot().and_then(|k| index.get_mut(k)) {
            if *slot == NONE {
                *slot = u32::try_from(headers.len()).unwrap_or(NONE);
            }
        }
        headers.push(Header {
            name,
            value: Cow::Borrowed(value),
            line: pos..nl + 1,
        });
        pos = nl + 1;
    }
}

/// Where the line from `start` ending in the LF at `nl` ends without its terminator: before
/// the LF, and before a CR in front of it.
fn without_cr(b: &[u8], start: usize, nl: usize) -> usize {
    if nl > start && b.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    }
}

/// Any header section: its end found first, then its lines walked (folded ones unfolded),
/// each line checked. The general path behind [`plain_head`].
fn head_by_lines(raw: &[u8]) -> Result<Head<'_>, ParseError> {
    // One scan finds the blank line and remembers where each line ends on the way, so the
    // header loop below does not look for line ends again.
    let mut ends = LineEnds::default();
    let (head_end, blank_end) = scan_head(raw, &mut ends).ok_or(ParseError::Incomplete)?;
    let head = raw.get(..head_end).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(head).map_err(|e| ParseError::NotUtf8 {
        at: e.valid_up_to(),
    })?;

    let mut cursor = Cursor {
        head,
        ends: &ends,
        next: 0,
        pos: 0,
    };
    let first = cursor.line().ok_or(ParseError::Incomplete)?;
    let start = parse_start(first.content)?;
    let start_line = first.range.clone();

    let mut headers = Vec::with_capacity(16);
    let mut index = [NONE; KNOWN];
    let mut line_no = 1;
    while let Some(line) = cursor.line() {
        line_no += 1;
        let ahead = raw.get(line.range.start..).unwrap_or_default();
        let (name, value) =
            split_header(line.content, ahead).ok_or(ParseError::BadHeaderLine { line: line_no })?;
        let mut end = line.range.end;
        let mut value = Cow::Borrowed(value);
        // RFC 3261 §7.3.1: a line starting with SP/HT continues the previous header.
        while cursor.continues() {
            let Some(cont) = cursor.line() else { break };
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
        if let Some(slot) = name.slot().and_then(|k| index.get_mut(k)) {
            if *slot == NONE {
                *slot = u32::try_from(headers.len()).unwrap_or(NONE);
            }
        }
        headers.push(Header {
            name,
            value,
            line: line.range.start..end,
        });
    }
    Ok(Head {
        start,
        start_line,
        headers,
        index,
        blank_line: head_end..blank_end,
    })
}

/// The message of a header section read from `raw`: its body cut by Content-Length, its CSeq read.
fn finish<'a>(raw: &'a [u8], head: Head<'a>) -> Result<Message<'a>, ParseError> {
    let Head {
        start,
        start_line,
        headers,
        index,
        blank_line,
    } = head;
    let blank_end = blank_line.end;
    let available = raw.len().saturating_sub(blank_end);
    let content_length = index
        .get(HeaderName::ContentLength.slot().unwrap_or(KNOWN))
        .and_then(|&i| headers.get(i as usize));
    let body_len = match content_length {
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
    // Read by the checks, the branch and the call key of every request: once, here.
    let cseq = match index
        .get(HeaderName::CSeq.slot().unwrap_or(KNOWN))
        .and_then(|&i| headers.get(i as usize))
    {
        None => Some(None),
        Some(Header {
            value: Cow::Borrowed(v),
            ..
        }) => Some(read_cseq(v)),
        Some(_) => None,
    };
    Ok(Message {
        raw,
        start,
        headers,
        start_line,
        blank_line,
        body,
        index,
        cseq,
    })
}

/// `number method` -> (number, method); `None` when malformed. The words are what
/// `split_ascii_whitespace` gives, read in one pass.
fn read_cseq(v: &str) -> Option<(u32, &str)> {
    let b = v.as_bytes();
    // The usual `1 INVITE`: digits, one space, a token to the end.
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits < 10 && b.get(digits) == Some(&b' ') {
        let method = b.get(digits + 1..).unwrap_or_default();
        if !method.is_empty() && method.iter().all(|&c| is_token(c)) {
            let num = b
                .get(..digits)?
                .iter()
                .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
            return Some((num, v.get(digits + 1..)?));
        }
    }
    let blank = |at: usize| b.get(at).is_some_and(u8::is_ascii_whitespace);
    let mut at = 0;
    while blank(at) {
        at += 1;
    }
    let digits = at;
    let mut num: u32 = 0;
    while let Some(&c) = b.get(at).filter(|c| !c.is_ascii_whitespace()) {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        num = num.checked_mul(10)?.checked_add(u32::from(digit))?;
        at += 1;
    }
    if at == digits {
        return None;
    }
    while blank(at) {
        at += 1;
    }
    let method = at;
    while b.get(at).is_some_and(|&c| is_token(c)) {
        at += 1;
    }
    // A method that stops at anything but whitespace or the end is not a token.
    if at == method || b.get(at).is_some_and(|c| !c.is_ascii_whitespace()) {
        return None;
    }
    let name = v.get(method..at)?;
    while blank(at) {
        at += 1;
    }
    (at == b.len()).then_some((num, name))
}

/// Finds the blank line ending a header section: `(end of last header line, end of blank line)`.
///
/// Accepts `\n\n` and `\n\r\n`; `buf` must not start with CR or LF.
pub(crate) fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    blank_line(
        buf,
        &mut LineEnds::default(),
        memchr::memchr_iter(b'\n', buf),
    )
}

/// [`head_end`], remembering in `ends` where the first lines end.
fn scan_head(buf: &[u8], ends: &mut LineEnds) -> Option<(usize, usize)> {
    // One searcher for the whole section, called directly: `memchr::memchr` per line goes
    // through its CPU dispatch each time, which costs as much as the search of a short line.
    #[cfg(target_arch = "x86_64")]
    if let Some(one) = memchr::arch::x86_64::avx2::memchr::One::new(b'\n') {
        return blank_line(buf, ends, one.iter(buf));
    }
    blank_line(buf, ends, memchr::memchr_iter(b'\n', buf))
}

/// The first blank line of `buf`, given where its line feeds are.
#[inline(always)]
fn blank_line(
    buf: &[u8],
    ends: &mut LineEnds,
    line_feeds: impl Iterator<Item = usize>,
) -> Option<(usize, usize)> {
    for nl in line_feeds {
        ends.push(nl + 1);
        let rest = buf.get(nl + 1..)?;
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
    }
    None
}

/// Where the lines of a header section end (just past each `\n`), for the first
/// [`LineEnds::CAP`] lines; a longer header section finds the rest again by searching.
struct LineEnds {
    at: [u32; LineEnds::CAP],
    len: usize,
}

impl LineEnds {
    const CAP: usize = 48;

    fn push(&mut self, end: usize) {
        if let (Some(slot), Ok(end)) = (self.at.get_mut(self.len), u32::try_from(end)) {
            *slot = end;
            self.len += 1;
        }
    }
}

impl Default for LineEnds {
    fn default() -> LineEnds {
        LineEnds {
            at: [0; LineEnds::CAP],
            len: 0,
        }
    }
}

/// One line of the header section.
struct Line<'a> {
    /// Without its terminator.
    content: &'a str,
    /// Terminator included.
    range: Range<usize>,
}

/// Walks the lines of a header section (each ending in `\n`; a `\r` before it is stripped),
/// taking their ends from [`LineEnds`] while it has them.
struct Cursor<'a, 'e> {
    head: &'a str,
    ends: &'e LineEnds,
    /// Index in `ends` of the next line's end.
    next: usize,
    /// Where the next line starts.
    pos: usize,
}

impl<'a> Cursor<'a, '_> {
    fn line(&mut self) -> Option<Line<'a>> {
        let bytes = self.head.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let end = match self
            .ends
            .at
            .get(self.next)
            .filter(|_| self.next < self.ends.len)
        {
            Some(&e) => e as usize,
            None => memchr::memchr(b'\n', bytes.get(self.pos..)?)
                .map_or(bytes.len(), |nl| self.pos + nl + 1),
        };
        self.next += 1;
        let mut stop = end;
        if bytes.get(stop.wrapping_sub(1)) == Some(&b'\n') {
            stop -= 1;
            if stop > self.pos && bytes.get(stop - 1) == Some(&b'\r') {
                stop -= 1;
            }
        }
        let content = self.head.get(self.pos..stop)?;
        let range = self.pos..end;
        self.pos = end;
        Some(Line { content, range })
    }

    /// Whether the next line starts with SP or HT (continues the header before it).
    fn continues(&self) -> bool {
        matches!(self.head.as_bytes().get(self.pos), Some(b' ' | b'\t'))
    }
}

fn parse_start(line: &str) -> Result<Start<'_>, ParseError> {
    if let Some(start) = plain_status_line(line) {
        return Ok(start);
    }
    if line
        .get(..4)
        .is_some_and(|p| same_letters(p.as_bytes(), b"SIP/"))
    {
        // Byte scans: the spaces sit a few bytes in (`SIP/2.0 200 OK`), sooner found by a
        // plain loop than by `split_once`'s general searcher.
        fn split_at_space(s: &str) -> Option<(&str, &str)> {
            let i = s.bytes().position(|b| b == b' ')?;
            Some((s.get(..i)?, s.get(i + 1..)?))
        }
        let (version, rest) = split_at_space(line).ok_or(ParseError::BadStartLine)?;
        check_version(version)?;
        let rest = rest.trim_start_matches(' ');
        let (code, reason) = split_at_space(rest).unwrap_or((rest, ""));
        // Three digits; a blank among them leaves fewer than three, below 100 either way.
        let code = match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ParseError::BadStatusCode),
        };
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusCode);
        }
        return Ok(Start::Response {
            code,
            reason: trim_wsp(reason),
        });
    }
    match plain_request_line(line) {
        Some(start) => Ok(start),
        None => request_line_by_words(line),
    }
}

/// `SIP/2.0 SP 3DIGIT SP reason` with one space each and a code in 100..=699, as nearly every
/// status line is written. The general path (the split at spaces in [`parse_start`]) reads
/// such a line the same way; `None` sends any other line there.
fn plain_status_line(line: &str) -> Option<Start<'_>> {
    let (&[v0, v1, v2, v3, v4, v5, v6, v7, c0, c1, c2, b' '], _) =
        line.as_bytes().split_first_chunk::<12>()?
    else {
        return None;
    };
    if !same_letters(&[v0, v1, v2, v3, v4, v5, v6, v7], b"SIP/2.0 ") {
        return None;
    }
    let digit = |c: u8| c.is_ascii_digit().then(|| u16::from(c - b'0'));
    let code = digit(c0)? * 100 + digit(c1)? * 10 + digit(c2)?;
    (100..=699).contains(&code).then_some(Start::Response {
        code,
        reason: trim_wsp(line.get(12..)?),
    })
}

/// Any request line: its blank-separated words (`words`), checked one by one. The general path
/// behind [`plain_request_line`].
fn request_line_by_words(line: &str) -> Result<Start<'_>, ParseError> {
    let mut parts = words(line);
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

/// `METHOD SP Request-URI SP SIP/2.0` with one space each, as nearly every request line is
/// written: a token, a URI with no byte at or below SP (so no blank), the version. The
/// general path (`words` and the checks after it) accepts such a line the same way; `None`
/// sends any other line there.
fn plain_request_line(line: &str) -> Option<Start<'_>> {
    let b = line.as_bytes();
    let (known, method) = match known_method(b) {
        Some((known, len)) => (Some(known), len),
        None => (None, b.iter().position(|&c| !is_token(c))?),
    };
    let version = b.len().checked_sub(8)?;
    if method == 0 || b.get(method) != Some(&b' ') || version <= method + 1 {
        return None;
    }
    if !same_letters(b.get(version..)?, b" SIP/2.0") {
        return None;
    }
    let uri = b.get(method + 1..version)?;
    let mut words = uri.chunks_exact(8);
    let blank = words.any(|w| {
        let w: [u8; 8] = w.try_into().unwrap_or_default();
        below_0x21(u64::from_le_bytes(w)) != 0
    });
    if blank || words.remainder().iter().any(|&c| c <= b' ') {
        return None;
    }
    let uri = line.get(method + 1..version)?;
    Some(Start::Request {
        method: match known {
            Some(known) => known,
            None => Method::from_token(line.get(..method)?),
        },
        uri,
    })
}

/// The method of a request line starting with one of the methods dualgate knows by name and a
/// space, and the method's length: what the token scan and [`Method::from_token`] give for
/// it, read from the first eight bytes (and the ninth for `REGISTER`). `None` for any other line.
fn known_method(b: &[u8]) -> Option<(Method<'static>, usize)> {
    let w = u64::from_le_bytes(*b.first_chunk::<8>()?);
    let is = |known: &[u8; 8], len: usize| {
        let mask = u64::MAX >> (8 * (8 - len));
        w & mask == u64::from_le_bytes(*known) & mask
    };
    Some(match w {
        _ if is(b"INVITE  ", 7) => (Method::Invite, 6),
        _ if is(b"ACK     ", 4) => (Method::Ack, 3),
        _ if is(b"BYE     ", 4) => (Method::Bye, 3),
        _ if is(b"CANCEL  ", 7) => (Method::Cancel, 6),
        _ if is(b"OPTIONS ", 8) => (Method::Options, 7),
        _ if is(b"REGISTER", 8) && b.get(8) == Some(&b' ') => (Method::Register, 8),
        _ => return None,
    })
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` below 0x21 (a control character or SP), exactly: no
/// carry crosses a byte, each sum being at most 0x7f + 0x5f.
fn below_0x21(w: u64) -> u64 {
    !(((w & !HIGH) + 0x5f * ONES) | w) & HIGH
}

/// The runs of non-blank bytes of a request line, split at SP and HT (`split([' ', '\t'])`
/// without the empty pieces, by bytes: every cut sits next to an ASCII byte, a char boundary).
fn words(line: &str) -> impl Iterator<Item = &str> {
    let b = line.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while matches!(b.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        let start = at;
        while !matches!(b.get(at), None | Some(b' ' | b'\t')) {
            at += 1;
        }
        (at > start).then(|| line.get(start..at)).flatten()
    })
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if same_letters(v.as_bytes(), b"SIP/2.0") {
        Ok(())
    } else {
        Err(ParseError::BadVersion)
    }
}

/// `name *WSP ":" value` -> (name, trimmed value); `None` when the line is not a header.
/// `ahead` is the input from the line's start on (the line and what follows it), so the end
/// of the name can be looked for eight bytes at a time.
fn split_header<'a>(line: &'a str, ahead: &[u8]) -> Option<(HeaderName<'a>, &'a str)> {
    split_named(line, 0, line.len(), name_end(ahead).min(line.len()))
}

/// [`split_header`] for the line `text[start..end]` (without terminator) whose name is
/// `name_len` bytes long (see [`name_end`]).
#[inline(always)]
fn split_named(
    text: &str,
    start: usize,
    end: usize,
    name_len: usize,
) -> Option<(HeaderName<'_>, &str)> {
    let text = text.get(..end)?;
    let b = text.as_bytes();
    let name_end = start + name_len;
    // A known name is letters and `-`; only other names need the token check.
    let name = match HeaderName::known(b.get(start..name_end)?) {
        Some(known) => known,
        None => {
            let name = text.get(start..name_end)?;
            if !name.bytes().all(is_token) {
                return None;
            }
            HeaderName::Other(name)
        }
    };
    if name_len == 0 {
        return None;
    }
    let blank = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
    // The usual `Name: value`: the colon, one space, and neither blank at the value's start
    // nor at the end of the line; the loops below find the same bounds for it.
    if let [b':', b' ', first, ..] = b.get(name_end..)? {
        if !blank(Some(first)) && !blank(b.last()) {
            return Some((name, text.get(name_end + 2..)?));
        }
    }
    let mut colon = name_end;
    while blank(b.get(colon)) {
        colon += 1;
    }
    if b.get(colon) != Some(&b':') {
        return None;
    }
    let mut from = colon + 1;
    while blank(b.get(from)) {
        from += 1;
    }
    let mut to = end;
    while to > from && blank(b.get(to - 1)) {
        to -= 1;
    }
    Some((name, text.get(from..to)?))
}

/// Where a header name ends: at the first control character, SP or `:` of `ahead` (the input
/// from the line's start on), or at its end. None of those is a token character and they
/// include every byte that may follow a name (SP, HT, `:`) and the CR or LF ending the line,
/// so a line is a header only if the name ends there and is all token characters. The first
/// sixteen bytes are read as two words.
fn name_end(ahead: &[u8]) -> usize {
    // The high bit of each byte of `w` below 0x21 or equal to `:`, exactly (no carry
    // crosses a byte: each sum is at most 0x7f + 0x7f).
    let stops = |w: u64| {
        let c = w ^ (u64::from(b':') * ONES);
        below_0x21(w) | !(((c & !HIGH) + !HIGH) | c) & HIGH
    };
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(*ahead.get(at..)?.first_chunk::<8>()?))
    };
    for at in [0, 8] {
        let Some(w) = word(at) else { break };
        let s = stops(w);
        if s != 0 {
            return at + (s.trailing_zeros() / 8) as usize;
        }
    }
    ahead
        .iter()
        .position(|&c| c <= b' ' || c == b':')
        .unwrap_or(ahead.len())
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
        self.starting_at(want)
            .iter()
            .filter(move |h| is_named(&want, h))
    }

    /// The value of the first header called `name`.
    // Inlined: a caller names a known header by a constant, which then folds to its slot and
    // the lookup to two loads. Called, the name went through memory, and reading it back
    // stalled on the store (7 % of an INVITE's time in a profile).
    #[inline]
    pub fn header(&self, name: HeaderName<'_>) -> Option<&str> {
        match name.slot() {
            // A known name: the index says where, no walk over the headers.
            Some(slot) => self.at_slot(slot),
            None => self.other_header(name),
        }
    }

    /// [`Message::header`] for the header indexed in `slot`.
    #[inline]
    fn at_slot(&self, slot: usize) -> Option<&str> {
        let at = *self.index.get(slot)?;
        if at == NONE {
            return None;
        }
        self.headers.get(at as usize).map(|h| h.value.as_ref())
    }

    /// [`Message::header`] for an `Other` name, which may still spell a known one.
    fn other_header(&self, name: HeaderName<'_>) -> Option<&str> {
        let want = name.canonical();
        match want.slot() {
            Some(slot) => self.at_slot(slot),
            None => self
                .headers
                .iter()
                .find(|h| is_named(&want, h))
                .map(|h| h.value.as_ref()),
        }
    }

    /// Position in [`Message::headers`] of the first header of a known `name`; `None` when
    /// absent (and for `Other` names, which are not indexed).
    #[inline]
    pub(crate) fn first(&self, name: HeaderName<'_>) -> Option<usize> {
        let at = *self.index.get(name.slot()?)?;
        (at != NONE).then_some(at as usize)
    }

    /// The headers from the first one called `name` (a canonical name) on; all of them for an
    /// `Other` name, none when a known name is absent.
    fn starting_at(&self, name: HeaderName<'_>) -> &[Header<'a>] {
        if name.slot().is_none() {
            return &self.headers;
        }
        self.first(name)
            .and_then(|at| self.headers.get(at..))
            .unwrap_or_default()
    }

    /// Every Via entry as written, combined lines split, in wire order.
    pub fn via_entries(&self) -> impl Iterator<Item = &str> {
        self.list(HeaderName::Via)
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
        // What `vias().next()` gives, without the adapters the entry moves through there.
        Via::parse(self.via_entries().next()?).ok()
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId)
    }

    /// CSeq as (sequence number, method); `None` when missing or malformed.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        match self.cseq {
            Some(read) => read,
            None => read_cseq(self.header(HeaderName::CSeq)?),
        }
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
        self.starting_at(name)
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
    let params = header_params(value);
    if params.is_empty() {
        return None;
    }
    match leading_tag(params) {
        Some(tag) => Some(tag),
        None => param(params, "tag").flatten(),
    }
}

/// The value of a `tag` parameter written first (`;tag=value`, any case, nothing around the
/// name): the bytes up to the next `;` or the end, trimmed, as [`param`] reads them. `None`
/// (ask [`param`]) for any other list, and when a quote or bracket comes before the value
/// ends, which would change where the list splits.
fn leading_tag(params: &str) -> Option<&str> {
    let b = params.as_bytes();
    match b.first_chunk::<5>() {
        Some(&[b';', t, a, g, b'=']) if [t | 0x20, a | 0x20, g | 0x20] == *b"tag" => {}
        _ => return None,
    }
    let rest = b.get(5..)?;
    let end = find_tag_end(rest).unwrap_or(rest.len());
    if rest.get(end).is_some_and(|&c| c != b';') {
        return None;
    }
    params.get(5..5 + end).map(str::trim_ascii)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::{invite, invite_lf, with_body, INVITE_HEAD, SDP};
    fn text<'m>(m: &'m Message<'_>, r: &Range<usize>) -> &'m str {
        std::str::from_utf8(&m.raw[r.clone()]).unwrap()
    }

    #[test]
    fn request_line_words_are_what_split_at_blanks_gives() {
        for line in [
            "INVITE sip:a@b SIP/2.0",
            "  INVITE \t sip:a@b\tSIP/2.0  ",
            "INVITE",
            "",
            " \t ",
            "A B C D",
            "电话 sip:电话@b SIP/2.0",
        ] {
            let want: Vec<&str> = line.split([' ', '\t']).filter(|p| !p.is_empty()).collect();
            assert_eq!(words(line).collect::<Vec<_>>(), want, "{line:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn request_line_words_match_split_on_any_text(line in "[ \t\r\na电:]{0,16}") {
            let want: Vec<&str> = line.split([' ', '\t']).filter(|p| !p.is_empty()).collect();
            proptest::prop_assert_eq!(words(&line).collect::<Vec<_>>(), want);
        }
    }

    /// The header split before names were found a word at a time, kept as the reference.
    fn split_header_by_bytes(line: &str) -> Option<(HeaderName<'_>, &str)> {
        let b = line.as_bytes();
        let name_len = b.iter().position(|&c| !is_token(c)).unwrap_or(b.len());
        if name_len == 0 {
            return None;
        }
        let mut colon = name_len;
        while matches!(b.get(colon), Some(b' ' | b'\t')) {
            colon += 1;
        }
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let name = HeaderName::from_wire(line.get(..name_len)?);
        Some((name, trim_wsp(line.get(colon + 1..)?)))
    }

    proptest::proptest! {
        #[test]
        fn header_lines_split_as_byte_by_byte(
            name in "(Via|v|call-ID|CSeq|Content-Length|CONTACT|X-A|Max-Forwardz|[a-zA-Z!%_`~.-]{1,20})",
            rest in "[ \t:a-zA-Z\r\x01\x7f\u{80}电,;=<>-]{0,20}",
            crlf in proptest::bool::ANY,
            tail in "[ \t:a-z\r\n]{0,20}",
        ) {
            let line = format!("{name}{rest}");
            let ahead = format!("{line}{}{tail}", if crlf { "\r\n" } else { "\n" });
            proptest::prop_assert_eq!(
                split_header(&line, ahead.as_bytes()),
                split_header_by_bytes(&line)
            );
        }

        #[test]
        fn usual_header_lines_split_as_byte_by_byte(
            name in "(Via|v|CSeq|X-A|[a-zA-Z-]{1,14})",
            colon in "(:|: |:  |:\t| :| : |)",
            value in "[ \ta-z<>;=\x01电]{0,12}",
            crlf in proptest::bool::ANY,
        ) {
            let line = format!("{name}{colon}{value}");
            let ahead = format!("{line}{}Next: x\r\n", if crlf { "\r\n" } else { "\n" });
            proptest::prop_assert_eq!(
                split_header(&line, ahead.as_bytes()),
                split_header_by_bytes(&line)
            );
        }
    }

    #[test]
    fn every_known_method_is_read_without_the_token_scan() {
        for method in [
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Options,
            Method::Register,
        ] {
            let token = method.as_str();
            let line = format!("{token} sip:a@b SIP/2.0");
            assert_eq!(known_method(line.as_bytes()), Some((method, token.len())));
            let start = Start::Request {
                method,
                uri: "sip:a@b",
            };
            assert_eq!(parse_start(&line), Ok(start));
            // Cut short, glued to more letters, or in lower case: the token scan reads it.
            for near in [
                token.to_string(),
                format!("{token}X sip:a SIP/2.0"),
                format!("{} sip:a SIP/2.0", token.to_ascii_lowercase()),
            ] {
                assert_eq!(known_method(near.as_bytes()), None, "{near}");
            }
        }
    }

    /// The status line as read before the byte-wise fast path, kept as the reference; request
    /// lines are checked against the general path, `request_line_by_words`.
    fn status_line_by_split(line: &str) -> Result<Start<'_>, ParseError> {
        let version_ok = |v: &str| {
            if v.eq_ignore_ascii_case("SIP/2.0") {
                Ok(())
            } else {
                Err(ParseError::BadVersion)
            }
        };
        if starts_with_ci(line, "SIP/") {
            let (version, rest) = line.split_once(' ').ok_or(ParseError::BadStartLine)?;
            version_ok(version)?;
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
        Err(ParseError::BadStartLine)
    }

    proptest::proptest! {
        #[test]
        fn request_lines_read_as_split_into_words(
            line in r"[ \t]{0,1}(INVITE|ACK|a|[A-Z!(]{1,3})[ \t]{1,2}[a-z:@.\x01\t 电]{0,12}[ \t]{1,2}(SIP/2\.0|sIp/2\.0|SIP/2\.1|SIP/|S|SIP/2\.0x)[ \t]{0,1}"
        ) {
            // The general path's words are the split at blanks (checked above on any text).
            proptest::prop_assert_eq!(parse_start(&line), request_line_by_words(&line));
        }

        #[test]
        fn known_methods_read_as_the_token_scan(
            method in "(INVITE|ACK|BYE|CANCEL|OPTIONS|REGISTER|INVITEX|invite|INVITe|ACKX|BYES|REGISTERS|OPTION|CANCE|BY|A|)",
            sep in "( | |\t|x|-|:|)",
            rest in "[ a-z:@.]{0,10}",
            version in "( SIP/2\\.0|)",
        ) {
            let line = format!("{method}{sep}{rest}{version}");
            let b = line.as_bytes();
            if let Some((known, len)) = known_method(b) {
                proptest::prop_assert_eq!(Some(len), b.iter().position(|&c| !is_token(c)));
                proptest::prop_assert_eq!(known, Method::from_token(&line[..len]));
            }
            proptest::prop_assert_eq!(parse_start(&line), request_line_by_words(&line));
        }

        #[test]
        fn usual_status_lines_read_as_before(
            version in "(SIP/2\\.0|sIp/2\\.0|SIP/2\\.1|SIP/2\\.0 )",
            code in 0u16..1000,
            width in 1usize..5,
            reason in "[ a-zA-Z\t电]{0,8}",
        ) {
            let line = format!("{version} {code:0width$} {reason}");
            proptest::prop_assert_eq!(parse_start(&line), status_line_by_split(&line));
        }

        #[test]
        fn status_lines_read_as_before(
            line in r"(SIP|sip|SIP/2\.1|SIP/2\.0 )(/2\.0)?[ ]{1,2}[0-9\t 电a]{0,4}[ a-zA-Z\t]{0,5}"
        ) {
            proptest::prop_assert_eq!(parse_start(&line), status_line_by_split(&line));
        }
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
                marks: crate::sip::header::ViaMarks::default(),
                nested: false,
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

    /// The tag as read before the leading-tag shortcut and the word-at-a-time walk.
    fn tag_by_bytes(value: &str) -> Option<&str> {
        let params =
            crate::sip::scan::find_outside_by_bytes(value, b';').map_or("", |i| &value[i..]);
        param(params, "tag").flatten()
    }

    proptest::proptest! {
        #[test]
        fn tags_read_as_by_the_byte_scan(
            display in "(\"[a-z ;<>\\\\\"]{0,8}\" ?|[a-z ]{0,6})",
            uri in "(<[a-z0-9:@.;=\\[\\]<>\"]{0,30}>|[a-z0-9:@.;=]{0,20})",
            params in "(;[tT][aA][gG]=)?(;|[tT][aA][gG]|=|[a-z0-9 ]{1,4}|\"|<|>|\\[|\\]|,){0,8}",
        ) {
            let value = format!("{display}{uri}{params}");
            proptest::prop_assert_eq!(tag_of(&value), tag_by_bytes(&value));
        }

        #[test]
        fn tags_of_any_text_read_as_by_the_byte_scan(
            value in "[tagTAG;= \"<>\\[\\]\\\\a电\t]{0,24}",
        ) {
            proptest::prop_assert_eq!(tag_of(&value), tag_by_bytes(&value));
        }
    }

    #[test]
    fn leading_tags_read_as_param_reads_them() {
        let cases = [
            (";tag=abc", Some("abc")),
            (";TaG= abc ;x", Some("abc")),
            (";tag=", Some("")),
            (";tag=a\"b\"", None),
            (";tag=a;x=\"q\"", Some("a")),
            (";tag =a", None),
            (";x=1;tag=a", None),
            (";tAg=<a>", None),
            ("", None),
        ];
        for (params, want) in cases {
            assert_eq!(leading_tag(params), want, "{params}");
            if want.is_some() {
                assert_eq!(param(params, "tag").flatten(), want, "{params}");
            }
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

    proptest::proptest! {
        #[test]
        fn the_head_scan_finds_what_memchr_per_line_finds(
            buf in proptest::collection::vec(
                proptest::sample::select(vec![b'\n', b'\r', b'a', 0x0b, 0x80, 0, b' ']),
                0..80,
            ),
        ) {
            let mut ends = LineEnds::default();
            let got = scan_head(&buf, &mut ends);
            // The loop before: memchr from each line's start.
            let mut want_ends = Vec::new();
            let mut want = None;
            let mut from = 0;
            while let Some(off) = memchr::memchr(b'\n', &buf[from..]) {
                let nl = from + off;
                want_ends.push(u32::try_from(nl + 1).unwrap());
                let rest = &buf[nl + 1..];
                if rest.starts_with(b"\n") {
                    want = Some((nl + 1, nl + 2));
                    break;
                }
                if rest.starts_with(b"\r\n") {
                    want = Some((nl + 1, nl + 3));
                    break;
                }
                from = nl + 1;
            }
            want_ends.truncate(LineEnds::CAP);
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(head_end(&buf), want);
            proptest::prop_assert_eq!(&ends.at[..ends.len], &want_ends[..]);
        }
    }

    /// CSeq as read before the one-pass scan, kept as the reference.
    fn read_cseq_by_words(v: &str) -> Option<(u32, &str)> {
        let mut parts = v.split_ascii_whitespace();
        let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let num = u32::try_from(parse_decimal(num)?).ok()?;
        method.bytes().all(is_token).then_some((num, method))
    }

    proptest::proptest! {
        #[test]
        fn cseq_reads_as_split_into_words(v in "[ \t\r\n\x0c\x0b0-9a-zA-Z!(电-]{0,14}") {
            proptest::prop_assert_eq!(read_cseq(&v), read_cseq_by_words(&v));
        }

        #[test]
        fn cseq_numbers_read_as_split_into_words(n in proptest::num::u64::ANY, m in "[A-Z]{1,3}") {
            let v = format!(" {n}\t{m} ");
            proptest::prop_assert_eq!(read_cseq(&v), read_cseq_by_words(&v));
            for n in [n, n % 10_000_000_000, n % 1_000_000_000] {
                let v = format!("{n} {m}");
                proptest::prop_assert_eq!(read_cseq(&v), read_cseq_by_words(&v));
            }
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

    /// What the one-pass reader gives, in a form tests can compare.
    type HeadParts<'a> = (
        Start<'a>,
        Range<usize>,
        Vec<Header<'a>>,
        [u32; KNOWN],
        Range<usize>,
    );

    fn parts(head: Head<'_>) -> HeadParts<'_> {
        (
            head.start,
            head.start_line,
            head.headers,
            head.index,
            head.blank_line,
        )
    }

    /// Checks the one-pass reader, with both line-feed searches, against the general path:
    /// whatever it reads, the general path reads the same. Returns whether it read `raw`.
    fn plain_reads_as_by_lines(raw: &[u8]) -> bool {
        let by_lines = head_by_lines(raw).map(parts);
        let generic = plain_head(raw, |hay| memchr::memchr(b'\n', hay)).map(parts);
        let fast = plain(raw).map(parts);
        assert_eq!(fast, generic, "{}", String::from_utf8_lossy(raw));
        if let Some(fast) = fast {
            assert_eq!(Ok(fast), by_lines, "{}", String::from_utf8_lossy(raw));
            return true;
        }
        false
    }

    #[test]
    fn usual_messages_are_read_in_one_pass() {
        for raw in [invite(), invite_lf()] {
            assert!(plain_reads_as_by_lines(&raw));
        }
        // A folded line, a line that continues nothing, no blank line, a head not UTF-8.
        for raw in [
            &b"OPTIONS sip:gw SIP/2.0\r\nSubject: a\r\n b\r\n\r\n"[..],
            b"BYE sip:a@b SIP/2.0\r\n continues nothing\r\n\r\n",
            b"BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\n",
            b"MESSAGE sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\n\r\n",
        ] {
            assert!(!plain_reads_as_by_lines(raw));
        }
        // A head past what is made text at once goes the general way, and parses.
        let long = format!(
            "BYE sip:a@b SIP/2.0\r\nX-Long: {}\r\nCall-ID: x\r\n\r\n",
            "a".repeat(PLAIN_TEXT)
        );
        assert!(!plain_reads_as_by_lines(long.as_bytes()));
        assert_eq!(parse(long.as_bytes()).unwrap().call_id(), Some("x"));
        // A binary body after a text head.
        let binary = with_body("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: y\r\n", &[0xff, 0xfe]);
        assert!(plain_reads_as_by_lines(&binary));
    }

    proptest::proptest! {
        #[test]
        fn messages_read_in_one_pass_read_as_by_lines(
            start in "(INVITE sip:a@b SIP/2\\.0|SIP/2\\.0 200 OK|BYE sip:a SIP/2\\.0 x|HELLO|sip/2\\.0 180 Ring|)",
            lines in proptest::collection::vec(
                (
                    "(Via|v|From|f|T|To|call-id|i|CSeq|Content-Length|l|Max-Forwards|Route|Record-Route|X-A|a b|电|)",
                    "(: |:|  :  |:\t| :|\t: |;)",
                    "[a-z0-9 \t;:<>\"电\r]{0,10}",
                    "(\r\n|\n|\r\n |\n\t|\r\n \r\n)",
                ),
                0..7,
            ),
            blank in "(\r\n|\n|\r|)",
            body in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', 0xff, 0xe7]), 0..6),
        ) {
            let mut raw = format!("{start}\r\n");
            for (name, colon, value, end) in lines {
                raw.push_str(&format!("{name}{colon}{value}{end}"));
            }
            raw.push_str(&blank);
            let mut raw = raw.into_bytes();
            raw.extend_from_slice(&body);
            plain_reads_as_by_lines(&raw);
        }

        #[test]
        fn usual_messages_read_in_one_pass_read_as_by_lines(
            start in "(INVITE sip:a@b SIP/2\\.0|SIP/2\\.0 200 OK|ACK tel:1 SIP/2\\.0)",
            lines in proptest::collection::vec(
                (
                    "(Via|v|From|To|t|Call-ID|CSeq|Contact|Content-Length|Max-Forwards|Route|Diversion|X-[A-Za-z]{1,12}|P-Asserted-Identity)",
                    proptest::prop_oneof![8 => proptest::strategy::Just(": "), 1 => proptest::strategy::Just(":"), 1 => proptest::strategy::Just(" : ")],
                    "[a-z0-9 ;:<>\"@.=电]{0,40}",
                    proptest::prop_oneof![8 => proptest::strategy::Just("\r\n"), 2 => proptest::strategy::Just("\n"), 1 => proptest::strategy::Just("\r\n ")],
                ),
                0..12,
            ),
            crlf in proptest::bool::weighted(0.8),
            body in "[a-z=\r\n]{0,10}",
        ) {
            let mut raw = format!("{start}\r\n");
            for (name, colon, value, end) in lines {
                raw.push_str(&format!("{name}{colon}{value}{end}"));
            }
            raw.push_str(if crlf { "\r\n" } else { "\n" });
            raw.push_str(&body);
            plain_reads_as_by_lines(raw.as_bytes());
        }

        #[test]
        fn any_bytes_read_in_one_pass_read_as_by_lines(
            raw in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'A', b':', b' ', b'\t', b'\r', b'\n', b'/', b'2', b'.', 0, 0xff, 0xe7]),
                0..60,
            ),
        ) {
            plain_reads_as_by_lines(&raw);
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
