//! Forwarding by editing header lines in place: every header the gateway does not touch, and
//! the body, pass through byte-for-byte and in order. No I/O here.
//!
//! Lines the gateway writes or rewrites use the long header name and CRLF; untouched lines keep
//! their bytes, including their line-ending style. Content-Length is never rewritten because the
//! body never changes.

use super::header::GatewayVia;
use super::message::{Message, Start};
use super::name::HeaderName;
use super::scan::{param, split_first};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The edits a stateless proxy makes to a request it forwards (RFC 3261 §16.6, RFC 3581).
#[derive(Debug, Clone, Default)]
pub struct RequestEdit<'e> {
    /// `received` to add to the (previous) top Via entry.
    pub received: Option<IpAddr>,
    /// Value for the top Via's `rport` when it has a bare `rport` (RFC 3581 §4).
    pub rport: Option<u16>,
    /// New Request-URI; `None` keeps it.
    pub request_uri: Option<&'e str>,
    /// Max-Forwards value to write (replacing the header, or added when it was missing).
    pub max_forwards: u8,
    /// How many leading Route entries to remove: those naming the gateway (RFC 3261 §16.4);
    /// two after a double Record-Route (RFC 5658).
    pub pop_routes: usize,
    /// A Record-Route value to insert above any existing Record-Route.
    pub record_route: Option<&'e str>,
    /// Extra header lines `(name, value)` added after the last header.
    pub extra: &'e [(&'e str, &'e str)],
}

/// The gateway's own Via value, which [`forward_request`] inserts above all others: text, or
/// its parts ([`GatewayVia`], what the proxy sends) written straight into the forwarded bytes
/// without a `String` built first.
pub trait ViaValue {
    /// Appends the value (without `Via: ` and the line end) to `out`.
    fn write_value(&self, out: &mut Vec<u8>);
}

impl ViaValue for str {
    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl ViaValue for GatewayVia<'_> {
    fn write_value(&self, out: &mut Vec<u8>) {
        self.write(out);
    }
}

/// Writes `msg` with `edit` applied and the gateway's Via `via` on top into `out` (cleared
/// first).
///
/// Layout: start line (new Request-URI if any), the gateway's Via right above the first Via
/// (or above the first header), the previous top Via entry stamped with `received`/`rport`,
/// Record-Route above the first Record-Route (or right after the Via block), Max-Forwards
/// replaced in place (or added after the last header), the first Route entry popped, `extra`
/// after the last header, a CRLF blank line and the body byte-exact.
pub fn forward_request(
    msg: &Message<'_>,
    edit: &RequestEdit<'_>,
    via: &(impl ViaValue + ?Sized),
    out: &mut Vec<u8>,
) {
    out.clear();
    // The gateway's Via and Record-Route and a Max-Forwards fit in this.
    out.reserve(msg.raw.len() + 384);
    write_start(msg, edit, out);

    let hs = &msg.headers;
    let first_via = top_via_line(msg);
    let first_mf = msg.first(HeaderName::MaxForwards);
    let via_at = first_via.unwrap_or(0);
    let rr_at = record_route_at(msg, first_via);
    // The headers where something happens, in order (absent ones last, as `usize::MAX`):
    // every other line is copied untouched, together with its neighbours.
    let mut stops = [
        via_at,
        first_via.unwrap_or(usize::MAX),
        edit.record_route.map_or(usize::MAX, |_| rr_at),
        first_mf.unwrap_or(usize::MAX),
    ];
    stops.sort_unstable();
    // The Route lines whose leading entries are popped (RFC 3261 §16.4): the first ones, as
    // many as the entries to drop need.
    let mut pop = edit.pop_routes;
    let mut routes = msg
        .first(HeaderName::Route)
        .filter(|_| pop > 0)
        .into_iter()
        .flat_map(|first| hs.iter().enumerate().skip(first))
        .filter(|(_, h)| h.name == HeaderName::Route)
        .map(|(i, _)| i)
        .peekable();

    // Header lines are contiguous in `raw`, in order: the bytes from `copied` up to a stop's
    // line are untouched lines, copied at once.
    let end = hs.last().map_or(msg.start_line.end, |h| h.line.end);
    let mut copied = hs.first().map_or(end, |h| h.line.start);
    let mut fixed = 0;
    loop {
        let next_fixed = stops.get(fixed).copied().filter(|&i| i <= hs.len());
        let next_route = if pop > 0 {
            routes.peek().copied()
        } else {
            None
        };
        let i = match (next_fixed, next_route) {
            (Some(f), Some(r)) => f.min(r),
            (Some(i), None) | (None, Some(i)) => i,
            (None, None) => break,
        };
        while stops.get(fixed) == Some(&i) {
            fixed += 1;
        }
        if next_route == Some(i) {
            routes.next();
        }
        let line = hs.get(i).map(|h| (h, h.line.clone()));
        let at = line.as_ref().map_or(end, |(_, l)| l.start);
        copy(out, msg.raw, &(copied..at));
        copied = at;
        if i == via_at {
            write_via(out, via);
        }
        if i == rr_at {
            if let Some(rr) = edit.record_route {
                write_header(out, "Record-Route", rr);
            }
        }
        let Some((h, line)) = line else { continue };
        if Some(i) == first_via {
            if edit.received.is_none() && edit.rport.is_none() {
                // Nothing to stamp: `stamp_via` would borrow the entry, so the line stays as
                // is, without splitting off its first entry.
                continue;
            }
            let (top, rest) = split_first(&h.value);
            if let Cow::Owned(top) = stamp_via(top, edit.received, edit.rport) {
                write_list(out, "Via", &top, rest);
                copied = line.end;
            }
        } else if Some(i) == first_mf {
            write_max_forwards(out, edit.max_forwards);
            copied = line.end;
        } else if h.name == HeaderName::Route && pop > 0 {
            if let Some(rest) = pop_routes(&h.value, &mut pop) {
                write_header(out, "Route", rest);
            }
            copied = line.end;
        }
    }
    let appends = first_mf.is_none() || !edit.extra.is_empty();
    if !appends && msg.raw.get(msg.blank_line.clone()) == Some(&b"\r\n"[..]) {
        // The last lines, the blank line and the body follow each other in `raw`.
        copy(out, msg.raw, &(copied..msg.raw.len()));
        return;
    }
    copy(out, msg.raw, &(copied..end));
    write_tail(msg, edit, first_mf.is_none(), out);
}

/// The start line: the new Request-URI, or the line as received.
fn write_start(msg: &Message<'_>, edit: &RequestEdit<'_>, out: &mut Vec<u8>) {
    match (edit.request_uri, &msg.start) {
        (Some(uri), Start::Request { method, .. }) => {
            for part in [method.as_str(), " ", uri, " SIP/2.0\r\n"] {
                out.extend_from_slice(part.as_bytes());
            }
        }
        _ => copy(out, msg.raw, &msg.start_line),
    }
}

/// Where the gateway's Record-Route goes: above the first Record-Route; else right after the
/// run of Via lines; else (no Via at all) right after the gateway's Via, i.e. before header 0.
fn record_route_at(msg: &Message<'_>, first_via: Option<usize>) -> usize {
    msg.first(HeaderName::RecordRoute)
        .or_else(|| {
            first_via.map(|v| {
                v + msg
                    .headers
                    .iter()
                    .skip(v)
                    .take_while(|h| h.name == HeaderName::Via)
                    .count()
            })
        })
        .unwrap_or(0)
}

fn write_via(out: &mut Vec<u8>, via: &(impl ViaValue + ?Sized)) {
    out.extend_from_slice(b"Via: ");
    via.write_value(out);
    out.extend_from_slice(b"\r\n");
}

/// [`forward_request`] as one step per header line: the oracle its tests compare against.
#[cfg(test)]
fn forward_request_by_lines(
    msg: &Message<'_>,
    edit: &RequestEdit<'_>,
    via: &(impl ViaValue + ?Sized),
    out: &mut Vec<u8>,
) {
    out.clear();
    write_start(msg, edit, out);
    let hs = &msg.headers;
    let first_via = top_via_line(msg);
    let first_mf = msg.first(HeaderName::MaxForwards);
    let mut pop = edit.pop_routes;
    let via_at = first_via.unwrap_or(0);
    let rr_at = record_route_at(msg, first_via);

    // Untouched lines are contiguous in `raw`: a run of them is copied at once.
    let mut run = Run::default();
    for (i, h) in hs.iter().enumerate() {
        if i == via_at {
            run.flush(out, msg.raw);
            write_via(out, via);
        }
        if i == rr_at {
            if let Some(rr) = edit.record_route {
                run.flush(out, msg.raw);
                write_header(out, "Record-Route", rr);
            }
        }
        if Some(i) == first_via && edit.received.is_none() && edit.rport.is_none() {
            run.take(out, msg.raw, &h.line);
        } else if Some(i) == first_via {
            let (top, rest) = split_first(&h.value);
            match stamp_via(top, edit.received, edit.rport) {
                Cow::Borrowed(_) => run.take(out, msg.raw, &h.line),
                Cow::Owned(top) => {
                    run.flush(out, msg.raw);
                    write_list(out, "Via", &top, rest);
                }
            }
        } else if Some(i) == first_mf {
            run.flush(out, msg.raw);
            write_max_forwards(out, edit.max_forwards);
        } else if h.name == HeaderName::Route && pop > 0 {
            run.flush(out, msg.raw);
            if let Some(rest) = pop_routes(&h.value, &mut pop) {
                write_header(out, "Route", rest);
            }
        } else {
            run.take(out, msg.raw, &h.line);
        }
    }
    run.flush(out, msg.raw);
    if hs.is_empty() {
        write_via(out, via);
    }
    if rr_at >= hs.len() {
        if let Some(rr) = edit.record_route {
            write_header(out, "Record-Route", rr);
        }
    }
    write_tail(msg, edit, first_mf.is_none(), out);
}

/// What follows the last header line of a forwarded request: the Max-Forwards it lacked
/// (`add_max_forwards`), `edit.extra`, the blank line and the body.
fn write_tail(
    msg: &Message<'_>,
    edit: &RequestEdit<'_>,
    add_max_forwards: bool,
    out: &mut Vec<u8>,
) {
    if add_max_forwards {
        write_max_forwards(out, edit.max_forwards);
    }
    for (name, value) in edit.extra {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg.body);
}

/// A Route line with up to `pop` of its leading entries removed (RFC 3261 §16.4: the entries
/// that named us; the rest of a combined line is kept), `pop` counted down by those removed;
/// `None` when no entry is left.
fn pop_routes<'v>(value: &'v str, pop: &mut usize) -> Option<&'v str> {
    let mut rest = Some(value);
    while *pop > 0 {
        let r = rest?;
        rest = split_first(r).1;
        *pop -= 1;
    }
    rest
}

/// Position in `msg.headers` of the line holding the top Via entry. A Via line with no entry
/// (`Via: `) is not it; it passes through untouched.
fn top_via_line(msg: &Message<'_>) -> Option<usize> {
    let has_entry = |h: &super::message::Header<'_>| has_entry(&h.value);
    let first = msg.first(HeaderName::Via)?;
    msg.headers
        .iter()
        .enumerate()
        .skip(first)
        .find(|(_, h)| h.name == HeaderName::Via && has_entry(h))
        .map(|(i, _)| i)
}

/// Whether a list value holds an entry: some character other than a comma or whitespace
/// belongs to one. What `split_list(value).next().is_some()` says, without splitting.
fn has_entry(value: &str) -> bool {
    // A first byte that is neither a comma nor blank (how an entry is usually written) starts
    // one: nothing to skip.
    if value
        .as_bytes()
        .first()
        .is_some_and(|&b| b.is_ascii_graphic() && b != b',')
    {
        return true;
    }
    !value
        .trim_start_matches(|c: char| c == ',' || c.is_whitespace())
        .is_empty()
}

/// Header lines waiting to be copied as one range of the received bytes.
#[cfg(test)]
#[derive(Default)]
struct Run {
    range: Option<std::ops::Range<usize>>,
}

#[cfg(test)]
impl Run {
    /// Adds `line` to the run: extends it when the line follows it, else copies the run first.
    fn take(&mut self, out: &mut Vec<u8>, raw: &[u8], line: &std::ops::Range<usize>) {
        match &mut self.range {
            Some(r) if r.end == line.start => r.end = line.end,
            _ => {
                self.flush(out, raw);
                self.range = Some(line.clone());
            }
        }
    }

    /// Copies the run, if any.
    fn flush(&mut self, out: &mut Vec<u8>, raw: &[u8]) {
        if let Some(r) = self.range.take() {
            copy(out, raw, &r);
        }
    }
}

/// Writes `msg` with its top Via entry removed into `out` (cleared first).
///
/// The first Via line is dropped, or rewritten without its first entry when it is combined
/// (`Via: a, b` becomes `Via: b`); every other byte is copied as received.
pub fn forward_response(msg: &Message<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(msg.raw.len());
    let Some(via) = top_via_line(msg).and_then(|i| msg.headers.get(i)) else {
        out.extend_from_slice(msg.raw);
        return;
    };
    copy(out, msg.raw, &(0..via.line.start));
    if let (_, Some(rest)) = split_first(&via.value) {
        write_header(out, "Via", rest);
    }
    copy(out, msg.raw, &(via.line.end..msg.raw.len()));
}

/// Applies `received` and `rport` to one Via entry (RFC 3261 §18.2.1, RFC 3581 §4): an existing
/// `received` is replaced, otherwise one is appended; a bare `rport` gets the value. Borrowed
/// when nothing changes.
pub fn stamp_via(entry: &str, received: Option<IpAddr>, rport: Option<u16>) -> Cow<'_, str> {
    let bare_rport = rport.is_some() && matches!(param(entry, "rport"), Some(None));
    if received.is_none() && !bare_rport {
        return Cow::Borrowed(entry);
    }
    let mut out = String::with_capacity(entry.len() + 32);
    let mut pieces = entry.split(';');
    out.push_str(pieces.next().unwrap_or_default());
    let mut wrote_received = false;
    for p in pieces {
        let name = p.split_once('=').map_or(p, |(n, _)| n).trim();
        out.push(';');
        match (received, rport) {
            (Some(ip), _) if name.eq_ignore_ascii_case("received") => {
                let _ = write!(out, "received={ip}");
                wrote_received = true;
            }
            (_, Some(port)) if p.trim().eq_ignore_ascii_case("rport") => {
                let _ = write!(out, "rport={port}");
            }
            _ => out.push_str(p),
        }
    }
    if let (Some(ip), false) = (received, wrote_received) {
        let _ = write!(out, ";received={ip}");
    }
    Cow::Owned(out)
}

fn copy(out: &mut Vec<u8>, raw: &[u8], range: &std::ops::Range<usize>) {
    out.extend_from_slice(raw.get(range.clone()).unwrap_or_default());
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    for part in [name, ": ", value, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
}

fn write_list(out: &mut Vec<u8>, name: &str, first: &str, rest: Option<&str>) {
    for part in [name, ": ", first] {
        out.extend_from_slice(part.as_bytes());
    }
    if let Some(rest) = rest {
        out.extend_from_slice(b", ");
        out.extend_from_slice(rest.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn write_max_forwards(out: &mut Vec<u8>, n: u8) {
    out.extend_from_slice(b"Max-Forwards: ");
    let (hundreds, tens, ones) = (n / 100, n / 10 % 10, n % 10);
    if hundreds > 0 {
        out.push(b'0' + hundreds);
    }
    if n >= 10 {
        out.push(b'0' + tens);
    }
    out.extend_from_slice(&[b'0' + ones, b'\r', b'\n']);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::{invite, invite_lf, with_body, SDP};
    use crate::sip::message::parse;

    const GW_VIA: &str = "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKdgX";

    proptest::proptest! {
        #[test]
        fn has_entry_says_what_split_list_says(value in "[ ,\t\"a;\u{3000}\u{a0}\u{7f}\u{0}]{0,8}") {
            let want = crate::sip::scan::split_list(&value).next().is_some();
            proptest::prop_assert_eq!(has_entry(&value), want, "{:?}", value);
        }
    }

    /// Header lines a forwarded request may hold, in every form the edits treat apart.
    const LINES: &[&str] = &[
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1;rport\r\n",
        "v: SIP/2.0/UDP b;received=10.0.0.1 , SIP/2.0/TCP c\r\n",
        "Via: \r\n",
        "Via: ,\r\n",
        "Via: SIP/2.0/UDP d\n",
        "Max-Forwards: 70\r\n",
        "max-forwards:1\n",
        "Route: <sip:gw;lr>, <sip:next;lr>\r\n",
        "Route: <sip:gw;lr>\r\n",
        "Route: \r\n",
        "Record-Route: <sip:p1;lr>\r\n",
        "Call-ID: x\r\n",
        "Subject: folded\r\n  line\r\n",
        "X-Odd : v\n",
    ];

    proptest::proptest! {
        /// The copy by stops between edited lines gives the bytes of the copy line by line.
        #[test]
        fn forwarding_by_stops_writes_what_forwarding_line_by_line_writes(
            lines in proptest::collection::vec(proptest::sample::select(LINES), 0..8),
            crlf in proptest::bool::ANY,
            received in proptest::bool::ANY,
            rport in proptest::bool::ANY,
            request_uri in proptest::bool::ANY,
            pop_routes in 0usize..4,
            record_route in proptest::bool::ANY,
            extra in proptest::bool::ANY,
            body in "[a-z\r\n]{0,6}",
        ) {
            let blank = if crlf { "\r\n" } else { "\n" };
            let raw = format!(
                "INVITE sip:a@b SIP/2.0\r\n{}Content-Length: {}\r\n{blank}{body}",
                lines.concat(),
                body.len()
            );
            let m = parse(raw.as_bytes()).unwrap();
            let e = RequestEdit {
                received: received.then(|| "203.0.113.8".parse().unwrap()),
                rport: rport.then_some(40000),
                request_uri: request_uri.then_some("sip:1@q"),
                max_forwards: 69,
                pop_routes,
                record_route: record_route.then_some("<sip:gw;lr>"),
                extra: if extra { &[("X-Q", "fuzhou")] } else { &[] },
            };
            let (mut got, mut want) = (b"stale".to_vec(), Vec::new());
            forward_request(&m, &e, GW_VIA, &mut got);
            forward_request_by_lines(&m, &e, GW_VIA, &mut want);
            proptest::prop_assert_eq!(lossy(&got), lossy(&want));
        }
    }

    fn edit() -> RequestEdit<'static> {
        RequestEdit {
            received: Some("203.0.113.8".parse().unwrap()),
            rport: Some(40000),
            request_uri: None,
            max_forwards: 69,
            pop_routes: 0,
            record_route: None,
            extra: &[],
        }
    }

    /// `raw` forwarded with `e` under the gateway's Via [`GW_VIA`].
    fn forward(raw: &[u8], e: &RequestEdit<'_>) -> Vec<u8> {
        forward_under(raw, GW_VIA, e)
    }

    fn forward_under(raw: &[u8], via: &str, e: &RequestEdit<'_>) -> Vec<u8> {
        let m = parse(raw).unwrap();
        let mut out = b"stale bytes".to_vec();
        forward_request(&m, e, via, &mut out);
        out
    }

    fn lossy(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn carrier_invite_is_forwarded_with_every_edit_and_nothing_else() {
        let e = RequestEdit {
            request_uri: Some("sip:059185666661@queue.example;user=phone"),
            pop_routes: 1,
            record_route: Some("<sip:192.0.2.10;lr>"),
            extra: &[("X-Dualgate-Queue", "fuzhou")],
            ..edit()
        };
        let out = forward(&invite(), &e);
        let want = format!(
            "INVITE sip:059185666661@queue.example;user=phone SIP/2.0\r\n\
Via: {GW_VIA}\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport=40000;received=203.0.113.8\r\n\
Record-Route: <sip:192.0.2.10;lr>\r\n\
Max-Forwards: 69\r\n\
Route: <sip:core.example.net;lr>\r\n\
From: \"Carrier\" <sip:+8613800000000@carrier.example;user=phone>;tag=1928301774\r\n\
To: <tel:+8659185666661>\r\n\
Call-ID: a84b4c76e66710@pc33.carrier.example\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+8613800000000@203.0.113.7:5060>\r\n\
P-Asserted-Identity :  <sip:+8613800000000@carrier.example>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
X-Dualgate-Queue: fuzhou\r\n\
\r\n{SDP}",
            SDP.len()
        );
        assert_eq!(lossy(&out), want);
        let again = parse(&out).unwrap();
        assert_eq!(again.body, SDP.as_bytes());
        assert_eq!(again.top_via().unwrap().branch, Some("z9hG4bKdgX"));
    }

    #[test]
    fn untouched_headers_keep_their_bytes_and_order() {
        let raw = "OPTIONS sip:gw SIP/2.0\r\n\
i:  odd-spacing  \r\n\
Via: SIP/2.0/UDP 203.0.113.7;branch=z9hG4bK1\r\n\
x-lower : v\r\n\
Subject: folded\r\n  line\r\n\
Max-Forwards: 10\r\n\
History-Info: <sip:a@b>;index=1\r\n\r\n";
        let e = RequestEdit {
            received: None,
            rport: None,
            ..edit()
        };
        let out = forward(raw.as_bytes(), &e);
        let want = format!(
            "OPTIONS sip:gw SIP/2.0\r\n\
i:  odd-spacing  \r\n\
Via: {GW_VIA}\r\n\
Via: SIP/2.0/UDP 203.0.113.7;branch=z9hG4bK1\r\n\
x-lower : v\r\n\
Subject: folded\r\n  line\r\n\
Max-Forwards: 69\r\n\
History-Info: <sip:a@b>;index=1\r\n\r\n"
        );
        assert_eq!(lossy(&out), want);
    }

    #[test]
    fn non_utf8_body_passes_byte_exact() {
        let body: Vec<u8> = (0..=255u8).rev().collect();
        let raw = with_body(
            "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Type: application/octet-stream\r\n",
            &body,
        );
        let out = forward(&raw, &edit());
        assert!(out.ends_with(&[b"\r\n\r\n", &body[..]].concat()));
        assert!(lossy(&out).contains("\r\nContent-Length: 256\r\n"));
        assert_eq!(parse(&out).unwrap().body, body);
    }

    #[test]
    fn max_forwards_is_replaced_or_added() {
        let cases = [
            (
                "Max-Forwards: 70\r\n",
                69,
                "Via: V\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: 69\r\nCall-ID: x\r\n\r\n",
            ),
            (
                "max-forwards:1\r\n",
                0,
                "Via: V\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: 0\r\nCall-ID: x\r\n\r\n",
            ),
            (
                "",
                70,
                "Via: V\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\nMax-Forwards: 70\r\n\r\n",
            ),
            (
                "",
                255,
                "Via: V\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\nMax-Forwards: 255\r\n\r\n",
            ),
        ];
        for (line, n, want) in cases {
            let raw =
                format!("BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n{line}Call-ID: x\r\n\r\n");
            let e = RequestEdit {
                max_forwards: n,
                ..RequestEdit::default()
            };
            let out = forward_under(raw.as_bytes(), "V", &e);
            assert_eq!(
                lossy(&out),
                format!("BYE sip:a@b SIP/2.0\r\n{want}"),
                "{line}"
            );
        }
    }

    #[test]
    fn received_and_rport_stamp_only_the_top_entry() {
        let ip4: IpAddr = "203.0.113.8".parse().unwrap();
        let ip6: IpAddr = "2001:db8::8".parse().unwrap();
        let cases: &[(&str, Option<IpAddr>, Option<u16>, &str)] = &[
            (
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                None,
                None,
                "SIP/2.0/UDP h;branch=z9hG4bK1",
            ),
            (
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                Some(ip4),
                None,
                "SIP/2.0/UDP h;branch=z9hG4bK1;received=203.0.113.8",
            ),
            (
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                None,
                Some(5070),
                "SIP/2.0/UDP h;branch=z9hG4bK1",
            ),
            (
                "SIP/2.0/UDP h;rport;branch=z9hG4bK1",
                None,
                Some(5070),
                "SIP/2.0/UDP h;rport=5070;branch=z9hG4bK1",
            ),
            (
                "SIP/2.0/UDP h;RPORT ;branch=z9hG4bK1",
                Some(ip4),
                Some(5070),
                "SIP/2.0/UDP h;rport=5070;branch=z9hG4bK1;received=203.0.113.8",
            ),
            (
                "SIP/2.0/UDP h;rport=1;branch=b",
                Some(ip4),
                Some(5070),
                "SIP/2.0/UDP h;rport=1;branch=b;received=203.0.113.8",
            ),
            (
                "SIP/2.0/UDP h;received=10.0.0.1;rport",
                Some(ip6),
                Some(1),
                "SIP/2.0/UDP h;received=2001:db8::8;rport=1",
            ),
        ];
        for (entry, received, rport, want) in cases {
            let got = stamp_via(entry, *received, *rport);
            assert_eq!(got, *want, "{entry}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), got == *entry, "{entry}");
        }

        let raw = "BYE sip:a@b SIP/2.0\r\n\
v: SIP/2.0/UDP a;rport;branch=z9hG4bK1 , SIP/2.0/UDP b;rport;branch=z9hG4bK0\r\n\
Via: SIP/2.0/UDP c;rport\r\nMax-Forwards: 5\r\n\r\n";
        let out = forward(raw.as_bytes(), &edit());
        let want = format!(
            "BYE sip:a@b SIP/2.0\r\n\
Via: {GW_VIA}\r\n\
Via: SIP/2.0/UDP a;rport=40000;branch=z9hG4bK1;received=203.0.113.8, SIP/2.0/UDP b;rport;branch=z9hG4bK0\r\n\
Via: SIP/2.0/UDP c;rport\r\nMax-Forwards: 69\r\n\r\n"
        );
        assert_eq!(lossy(&out), want);
    }

    #[test]
    fn pop_route_drops_one_entry_from_combined_or_single_lines() {
        let cases = [
            (
                "Route: <sip:gw;lr>, <sip:next;lr>\r\nRoute: <sip:last;lr>\r\n",
                "Route: <sip:next;lr>\r\nRoute: <sip:last;lr>\r\n",
            ),
            (
                "Route: <sip:gw;lr>\r\nRoute: <sip:next;lr>\r\n",
                "Route: <sip:next;lr>\r\n",
            ),
            ("Route: <sip:gw;lr;x=\"a,b\">\r\n", ""),
            ("", ""),
        ];
        for (routes, want) in cases {
            let raw = format!(
                "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n{routes}Max-Forwards: 3\r\n\r\n"
            );
            let e = RequestEdit {
                max_forwards: 2,
                pop_routes: 1,
                ..RequestEdit::default()
            };
            let out = forward_under(raw.as_bytes(), "V", &e);
            assert_eq!(
                lossy(&out),
                format!("BYE sip:a@b SIP/2.0\r\nVia: V\r\nVia: SIP/2.0/UDP h\r\n{want}Max-Forwards: 2\r\n\r\n"),
                "{routes}"
            );
            let kept = forward_under(raw.as_bytes(), "V", &RequestEdit { pop_routes: 0, ..e });
            assert!(lossy(&kept).contains(routes), "{routes}");
        }
    }

    #[test]
    fn two_routes_are_popped_across_lines_after_a_double_record_route() {
        let cases = [
            (
                "Route: <sip:gw;lr>, <sip:gw;transport=tcp;lr>, <sip:n;lr>\r\n",
                "Route: <sip:n;lr>\r\n",
            ),
            (
                "Route: <sip:gw;lr>\r\nRoute: <sip:gw;transport=tcp;lr>\r\nRoute: <sip:n;lr>\r\n",
                "Route: <sip:n;lr>\r\n",
            ),
            ("Route: <sip:gw;lr>, <sip:gw;transport=tcp;lr>\r\n", ""),
        ];
        for (routes, want) in cases {
            let raw = format!(
                "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n{routes}Max-Forwards: 3\r\n\r\n"
            );
            let e = RequestEdit {
                max_forwards: 2,
                pop_routes: 2,
                ..RequestEdit::default()
            };
            let out = forward_under(raw.as_bytes(), "V", &e);
            let want = format!("BYE sip:a@b SIP/2.0\r\nVia: V\r\nVia: SIP/2.0/UDP h\r\n{want}Max-Forwards: 2\r\n\r\n");
            assert_eq!(lossy(&out), want, "{routes}");
        }
    }

    #[test]
    fn record_route_goes_above_existing_ones_or_below_the_vias() {
        let cases = [
            (
                "Via: SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b\r\nCall-ID: x\r\nRecord-Route: <sip:p1;lr>\r\n",
                "Via: V\r\nVia: SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b\r\nCall-ID: x\r\nRecord-Route: <sip:gw;lr>\r\nRecord-Route: <sip:p1;lr>\r\n",
            ),
            (
                "Via: SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b\r\nCall-ID: x\r\n",
                "Via: V\r\nVia: SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b\r\nRecord-Route: <sip:gw;lr>\r\nCall-ID: x\r\n",
            ),
            (
                "Call-ID: x\r\nVia: SIP/2.0/UDP a\r\n",
                "Call-ID: x\r\nVia: V\r\nVia: SIP/2.0/UDP a\r\nRecord-Route: <sip:gw;lr>\r\n",
            ),
            ("Call-ID: x\r\n", "Via: V\r\nRecord-Route: <sip:gw;lr>\r\nCall-ID: x\r\n"),
            ("", "Via: V\r\nRecord-Route: <sip:gw;lr>\r\n"),
        ];
        for (headers, want) in cases {
            let raw = format!("INVITE sip:a@b SIP/2.0\r\n{headers}Max-Forwards: 9\r\n\r\n");
            let e = RequestEdit {
                max_forwards: 8,
                record_route: Some("<sip:gw;lr>"),
                ..RequestEdit::default()
            };
            let out = forward_under(raw.as_bytes(), "V", &e);
            assert_eq!(
                lossy(&out),
                format!("INVITE sip:a@b SIP/2.0\r\n{want}Max-Forwards: 8\r\n\r\n"),
                "{headers}"
            );
        }
        let bare = forward_under(
            b"INVITE sip:a@b SIP/2.0\r\n\r\n",
            "V",
            &RequestEdit {
                max_forwards: 70,
                record_route: Some("<sip:gw;lr>"),
                ..RequestEdit::default()
            },
        );
        assert_eq!(
            lossy(&bare),
            "INVITE sip:a@b SIP/2.0\r\nVia: V\r\nRecord-Route: <sip:gw;lr>\r\nMax-Forwards: 70\r\n\r\n"
        );
    }

    #[test]
    fn lf_only_request_keeps_its_untouched_lines() {
        let out = forward(&invite_lf(), &edit());
        let text = lossy(&out);
        assert!(text.starts_with(&format!(
            "INVITE tel:+8659185666661;phone-context=+86 SIP/2.0\nVia: {GW_VIA}\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport=40000;received=203.0.113.8\r\n\
Max-Forwards: 69\r\nRoute: <sip:gw.example.net;lr>, <sip:core.example.net;lr>\n"
        )));
        assert!(text.ends_with(&format!("Content-Length: {}\n\r\n{SDP}", SDP.len())));
        let m = parse(&out).unwrap();
        assert_eq!(m.body, SDP.as_bytes());
        assert_eq!(m.vias().count(), 2);
    }

    #[test]
    fn response_loses_only_its_top_via_entry() {
        let cases = [
            (
                "Via: SIP/2.0/UDP gw;branch=z9hG4bKdg1, SIP/2.0/UDP carrier;branch=z9hG4bK2\r\n",
                "Via: SIP/2.0/UDP carrier;branch=z9hG4bK2\r\n",
            ),
            (
                "v: SIP/2.0/UDP gw;branch=z9hG4bKdg1,SIP/2.0/UDP c1, SIP/2.0/UDP c2\n",
                "Via: SIP/2.0/UDP c1, SIP/2.0/UDP c2\r\n",
            ),
            (
                "Via: SIP/2.0/UDP gw;branch=z9hG4bKdg1\r\nVia: SIP/2.0/UDP carrier\n",
                "Via: SIP/2.0/UDP carrier\n",
            ),
            ("Via: SIP/2.0/UDP gw\r\n", ""),
            ("", ""),
        ];
        let body = [0xffu8, 0xfe, b'\r', b'\n'];
        for (vias, want) in cases {
            let head = format!("SIP/2.0 200 OK\r\nCall-ID: x\r\n{vias}CSeq: 1 INVITE\n");
            let raw = with_body(&head, &body);
            let m = parse(&raw).unwrap();
            let mut out = Vec::new();
            forward_response(&m, &mut out);
            let want = with_body(
                &format!("SIP/2.0 200 OK\r\nCall-ID: x\r\n{want}CSeq: 1 INVITE\n"),
                &body,
            );
            assert_eq!(lossy(&out), lossy(&want), "{vias}");
            assert_eq!(out, want, "{vias}");
        }
    }

    #[test]
    fn response_trailing_bytes_past_content_length_are_not_forwarded() {
        let mut raw = with_body(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP gw\r\nVia: SIP/2.0/UDP c\r\n",
            b"",
        );
        raw.extend_from_slice(b"junk");
        let m = parse(&raw).unwrap();
        let mut out = Vec::new();
        forward_response(&m, &mut out);
        assert_eq!(
            lossy(&out),
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP c\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_via_written_from_its_parts_forwards_the_same_bytes_as_its_text() {
        use crate::peer::Transport;
        use crate::sip::header::{via, ViaMarks};
        use crate::sip::Branch;
        let branch = Branch {
            txn: 0x0123_4567_89ab_cdef,
            loop_key: 7,
            mac: u64::MAX,
        };
        let raws = [
            invite(),
            invite_lf(),
            b"OPTIONS sip:gw SIP/2.0\r\n\r\n".to_vec(),
            b"BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\nVia: SIP/2.0/UDP h;rport\r\n\r\n".to_vec(),
        ];
        for raw in &raws {
            for (transport, marks) in [
                (Transport::Udp, ViaMarks::default()),
                (
                    Transport::Tcp,
                    ViaMarks {
                        number: Some("059185666661"),
                        queue: Some("fuzhou"),
                        connection: Some(40000),
                    },
                ),
            ] {
                let gw = GatewayVia {
                    transport,
                    at: "192.0.2.10:5060",
                    branch,
                    marks,
                };
                let text = via(transport, gw.at, &branch, &marks);
                for e in [
                    edit(),
                    RequestEdit {
                        received: None,
                        rport: None,
                        record_route: Some("<sip:192.0.2.10;lr>"),
                        request_uri: Some("sip:1@q"),
                        pop_routes: 1,
                        ..edit()
                    },
                ] {
                    let want = forward_under(raw, &text, &e);
                    let m = parse(raw).unwrap();
                    let mut got = b"stale".to_vec();
                    forward_request(&m, &e, &gw, &mut got);
                    assert_eq!(lossy(&got), lossy(&want));
                }
            }
        }
    }

    #[test]
    fn max_forwards_is_written_in_decimal_for_every_value() {
        for n in 0..=u8::MAX {
            let mut out = Vec::new();
            write_max_forwards(&mut out, n);
            assert_eq!(lossy(&out), format!("Max-Forwards: {n}\r\n"));
        }
    }
}
