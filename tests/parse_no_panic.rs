#![allow(clippy::unwrap_used)]
//! Robustness of the per-message path: any bytes through `proxy::handle`, from any source, over
//! either transport, at any point of the migration calendar, never panic; what the gateway
//! forwards re-parses, gains exactly its own Via, loses one hop of Max-Forwards and keeps the body
//! byte-exact; a forwarded response loses exactly the gateway's Via; `sip::frame` never panics and
//! cuts a split stream back into the messages that were sent. Files in `tests/corpus/` (crashers
//! and regressions, found by proptest or `cargo fuzz run handle`) are replayed through all of it.

mod common;

use bytes::BytesMut;
use dualgate::config::{parse_instant, validate, Snapshot};
use dualgate::number::{normalize, AreaCode, Dialling};
use dualgate::peer::{Peer, Transport};
use dualgate::proxy::{handle, Act, Kind, DEFAULT_MAX_FORWARDS};
use dualgate::sip::{frame, parse, Frame, Message, Start};
use dualgate::transport::codec::{Inbound, SipCodec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;
use tokio_util::codec::Decoder;

/// The largest message a TCP connection buffers (as in `transport::tcp`).
const LIMIT: usize = 64 * 1024;

/// The shipped Fujian file (trunk 127.0.0.0/8 and ::1, advertised 127.0.0.1:5060, History-Info)
/// and the integration tests' file (trunks 127.0.0.2 and 127.0.0.3, IPv6 and TCP backends,
/// History-Info and Diversion, advertised 192.0.2.10:5060).
fn snapshots() -> &'static [Snapshot; 2] {
    static SNAPS: OnceLock<[Snapshot; 2]> = OnceLock::new();
    SNAPS.get_or_init(|| {
        let fujian = validate(
            Path::new("mappings/fujian.toml"),
            include_str!("../mappings/fujian.toml"),
        )
        .unwrap();
        let text = common::Mapping::new(
            &[
                "sip:127.0.0.1:5091;transport=udp".into(),
                "sip:[::1]:5092;transport=tcp".into(),
            ],
            "sip:127.0.0.1:5093;transport=tcp",
            "sip:127.0.0.1:5089;transport=udp",
        )
        .when_retired(common::ANNOUNCE)
        .text()
        .replace("@SIP@", "192.0.2.10:5060")
        .replace("@METRICS@", "192.0.2.10:9090");
        let test = validate(Path::new("tests/common/mappings.toml"), &text).unwrap();
        [fujian, test]
    })
}

/// Before, inside and after the parallel period, and both boundary instants.
fn instants() -> &'static [SystemTime; 5] {
    static NOW: OnceLock<[SystemTime; 5]> = OnceLock::new();
    NOW.get_or_init(|| {
        [
            "2025-03-01T12:00:00+08:00",
            "2025-04-07T00:00:00+08:00",
            common::PARALLEL,
            common::RETIRED,
            "2026-01-01T00:00:00+08:00",
        ]
        .map(|s| parse_instant(s).unwrap())
    })
}

/// Trunk (both files), Xiamen trunk, backend, IPv6 loopback, and a stranger.
const SOURCES: &[&str] = &[
    "127.0.0.2:5060",
    "127.0.0.3:40123",
    "127.0.0.1:5091",
    "[::1]:5070",
    "198.51.100.7:5060",
];

fn peer(addr: &str, tcp: bool) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: if tcp { Transport::Tcp } else { Transport::Udp },
    }
}

/// One way of delivering a message: which file, from whom, how, when.
#[derive(Debug, Clone, Copy)]
struct Context {
    snap: usize,
    from: Peer,
    now: SystemTime,
}

fn context() -> impl Strategy<Value = Context> {
    (0..2usize, select(SOURCES), any::<bool>(), 0..5usize).prop_map(|(snap, src, tcp, t)| Context {
        snap,
        from: peer(src, tcp),
        now: instants()[t],
    })
}

// ---------------------------------------------------------------------------------------------
// Carrier messages.

const SDP: &str = "v=0\r\n\
o=carrier 2890844526 2890844526 IN IP4 203.0.113.7\r\n\
s=-\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// A request as a carrier sends it; the Via names `from`, with `rport`.
#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    ruri: &str,
    from: &SocketAddr,
    transport: &str,
    to_tag: &str,
    routes: &[&str],
    body: &[u8],
) -> Vec<u8> {
    let host = match from {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let mut head = format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {host};branch=z9hG4bK-c4rr13r-{method};rport\r\n\
         Max-Forwards: 70\r\n"
    );
    for r in routes {
        head.push_str(&format!("Route: {r}\r\n"));
    }
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    head.push_str(&format!(
        "From: \"Carrier\" <sip:+8613800000000@carrier.example;user=phone>;tag=1928301774\r\n\
         To: <{ruri}>{to_tag}\r\n\
         Call-ID: a84b4c76e66710@pc33.carrier.example\r\n\
         CSeq: 314159 {method}\r\n\
         Contact: <sip:+8613800000000@{host}>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    ));
    if !body.is_empty() {
        head.push_str("Content-Type: application/sdp\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut m = head.into_bytes();
    m.extend_from_slice(body);
    m
}

/// A response a UAS would send to `req`: every Via and Record-Route copied, To tag added.
fn respond(req: &[u8], status: &str, body: &[u8]) -> Vec<u8> {
    let msg = parse(req).unwrap();
    let mut out = format!("SIP/2.0 {status}\r\n");
    for h in &msg.headers {
        let v = &h.value;
        match h.name.as_str() {
            "Via" | "Record-Route" | "From" | "Call-ID" | "CSeq" => {
                out.push_str(&format!("{}: {v}\r\n", h.name.as_str()));
            }
            "To" => out.push_str(&format!("To: {v};tag=q-1\r\n")),
            _ => {}
        }
    }
    out.push_str("Contact: <sip:12356@127.0.0.1:5091>\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut m = out.into_bytes();
    m.extend_from_slice(body);
    m
}

/// The carrier messages the gateway sees: initial INVITEs (legacy number, 12356, tel:, IPv6
/// R-URI), responses whose top Via is the gateway's (made by forwarding an INVITE through
/// `handle` and answering it as the queue would), CANCEL, ACK, in-dialog BYE with the gateway's
/// Route, OPTIONS keep-alive.
fn templates() -> &'static [Vec<u8>] {
    static T: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    T.get_or_init(|| {
        let carrier: SocketAddr = "127.0.0.2:5060".parse().unwrap();
        let v6: SocketAddr = "[::1]:5070".parse().unwrap();
        let sdp = SDP.as_bytes();
        let mut t = vec![
            request(
                "INVITE",
                "tel:+8659185666661",
                &carrier,
                "UDP",
                "",
                &[],
                sdp,
            ),
            request(
                "INVITE",
                "sip:059185666661@127.0.0.1;user=phone",
                &carrier,
                "UDP",
                "",
                &[],
                sdp,
            ),
            request(
                "INVITE",
                "sip:12356@127.0.0.1:5060",
                &carrier,
                "TCP",
                "",
                &[],
                sdp,
            ),
            request(
                "INVITE",
                "sip:85666221@[::1]:5060;user=phone",
                &v6,
                "UDP",
                "",
                &[],
                sdp,
            ),
            request(
                "CANCEL",
                "tel:+8659185666661",
                &carrier,
                "UDP",
                "",
                &[],
                b"",
            ),
            request(
                "ACK",
                "tel:+8659185666661",
                &carrier,
                "UDP",
                "as83kd9bs",
                &[],
                b"",
            ),
            request(
                "BYE",
                "sip:12356@127.0.0.1:5091",
                &carrier,
                "UDP",
                "q-1",
                &[
                    "<sip:127.0.0.1:5060;lr>",
                    "<sip:192.0.2.10:5060;transport=tcp;lr>",
                ],
                b"",
            ),
            request(
                "ACK",
                "sip:12356@127.0.0.1:5091;transport=tcp",
                &carrier,
                "TCP",
                "q-1",
                &["<sip:127.0.0.1:5060;transport=tcp;lr>, <sip:192.0.2.10:5060;lr>"],
                b"",
            ),
            request(
                "OPTIONS",
                "sip:ping@127.0.0.1",
                &carrier,
                "UDP",
                "",
                &[],
                b"",
            ),
        ];
        // Responses: what the queue sends back for INVITEs the gateway really forwarded.
        let mut out = Vec::new();
        for (snap, inv, tcp) in [(0, 0, false), (1, 2, true), (1, 0, false)] {
            let o = handle(
                &t[inv],
                peer("127.0.0.2:5060", tcp),
                &snapshots()[snap],
                parse_instant(common::PARALLEL).unwrap(),
                &mut out,
            );
            assert_eq!(
                o.label.act,
                Act::Forwarded,
                "template INVITE {inv} forwarded"
            );
            t.push(respond(&out, "180 Ringing", b""));
            t.push(respond(&out, "200 OK", sdp));
            t.push(respond(&out, "487 Request Terminated", b""));
        }
        t
    })
}

// ---------------------------------------------------------------------------------------------
// What must hold for every message.

fn via_count(m: &Message<'_>) -> usize {
    m.via_entries().count()
}

/// Runs `bytes` through `handle` and checks what holds for any input: no panic, output only
/// when there is somewhere to send it, and the shape of what is forwarded or answered.
fn check(bytes: &[u8], cx: Context) -> Result<Act, TestCaseError> {
    let snap = &snapshots()[cx.snap];
    let mut out = Vec::new();
    let o = handle(bytes, cx.from, snap, cx.now, &mut out);
    prop_assert_eq!(
        o.send.is_some(),
        !out.is_empty(),
        "output iff a destination"
    );
    prop_assert_eq!(
        o.send.is_some(),
        o.label.act != Act::Dropped,
        "dropped means nothing sent"
    );
    let Some(_) = o.send else {
        return Ok(o.label.act);
    };
    let input = parse(bytes);
    prop_assert!(
        input.is_ok(),
        "a message that did not parse produced output"
    );
    let input = input.unwrap();
    let sent = parse(&out);
    prop_assert!(
        sent.is_ok(),
        "output does not re-parse: {:?}\n{}",
        sent.as_ref().err(),
        String::from_utf8_lossy(&out)
    );
    let sent = sent.unwrap();
    let show = || String::from_utf8_lossy(&out).into_owned();
    match (o.label.act, o.label.kind, &input.start) {
        (Act::Forwarded, Kind::Request { .. }, Start::Request { method, .. }) => {
            prop_assert_eq!(sent.method(), Some(*method));
            prop_assert_eq!(
                via_count(&sent),
                via_count(&input) + 1,
                "one Via more:\n{}",
                show()
            );
            // The gateway's Via on top, the others below as received (the old top stamped with
            // received/rport only: its sent-by is unchanged).
            let before: Vec<&str> = input.via_entries().collect();
            let after: Vec<&str> = sent.via_entries().collect();
            prop_assert_eq!(
                &after[2..],
                &before[1..],
                "Vias below the top changed:\n{}",
                show()
            );
            let sent_by = |v: &str| v.split(';').next().unwrap_or_default().trim().to_owned();
            prop_assert_eq!(sent_by(after[1]), sent_by(before[0]), "{}", show());
            let top = sent.top_via().unwrap();
            prop_assert_eq!(
                top.sent_by(),
                Some(snap.gateway.advertised.host_port().clone())
            );
            prop_assert!(top.branch.is_some_and(|b| b.starts_with("z9hG4bK")));
            // RFC 3261 §16.6 step 3; the header is 0..=255 (§20.22), so larger values clamp.
            let want = match input.max_forwards() {
                // §16.6 step 3: a request without one gets one, which SHOULD be 70.
                None => u32::from(DEFAULT_MAX_FORWARDS),
                Some(Ok(n)) => n.saturating_sub(1).min(255),
                Some(Err(e)) => {
                    return Err(TestCaseError::fail(format!(
                        "forwarded a bad Max-Forwards: {e}"
                    )))
                }
            };
            prop_assert_eq!(sent.max_forwards(), Some(Ok(want)), "{}", show());
            prop_assert_eq!(
                sent.headers_named(dualgate::sip::HeaderName::MaxForwards)
                    .count(),
                input
                    .headers_named(dualgate::sip::HeaderName::MaxForwards)
                    .count()
                    .max(1)
            );
            prop_assert_eq!(sent.body, input.body, "body byte-exact");
            prop_assert_eq!(sent.call_id(), input.call_id());
            prop_assert_eq!(sent.cseq(), input.cseq());
        }
        (Act::Forwarded, Kind::Response { .. }, Start::Response { code, .. }) => {
            prop_assert_eq!(sent.status(), Some(*code));
            prop_assert_eq!(
                via_count(&sent),
                via_count(&input) - 1,
                "one Via fewer:\n{}",
                show()
            );
            // The entry removed is the top one, which is the gateway's (RFC 3261 §16.11).
            let before: Vec<&str> = input.via_entries().collect();
            let after: Vec<&str> = sent.via_entries().collect();
            prop_assert_eq!(
                &after[..],
                &before[1..],
                "not the top Via removed:\n{}",
                show()
            );
            let top = input.top_via().unwrap();
            prop_assert_eq!(
                top.sent_by().map(|hp| hp.host),
                Some(snap.gateway.advertised.host_port().host.clone())
            );
            prop_assert_eq!(sent.body, input.body, "body byte-exact");
        }
        (Act::Replied, Kind::Request { .. }, Start::Request { method, .. }) => {
            prop_assert!(
                *method != dualgate::sip::Method::Ack,
                "an ACK is never answered"
            );
            let Start::Response { code, .. } = sent.start else {
                return Err(TestCaseError::fail(format!(
                    "answer is not a response:\n{}",
                    show()
                )));
            };
            prop_assert!((100..=699).contains(&code));
            prop_assert_eq!(
                via_count(&sent),
                via_count(&input),
                "an answer copies every Via"
            );
            prop_assert_eq!(sent.call_id(), input.call_id());
            prop_assert_eq!(sent.cseq(), input.cseq());
            // The To is echoed, with the gateway's tag added when it had none (RFC 3261 §8.2.6.2).
            // A To with an unclosed quote or `<` hides that tag: garbage in, garbage out.
            let to = dualgate::sip::HeaderName::To;
            if let Some(want) = input.header(to) {
                let got = sent.header(to).unwrap_or_default();
                prop_assert!(got.starts_with(want), "To not echoed:\n{}", show());
                if input.to_tag().is_none() {
                    prop_assert!(
                        got[want.len()..].starts_with(";tag=dg"),
                        "no To tag:\n{}",
                        show()
                    );
                }
            }
        }
        (act, kind, start) => {
            return Err(TestCaseError::fail(format!(
                "{act:?} {kind:?} for {start:?}"
            )));
        }
    }
    Ok(o.label.act)
}

/// Frames `stream` delivered in the given chunks with the codec `transport::tcp` reads through,
/// decoding after each chunk as `FramedRead` does after each read.
fn frame_stream(chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let mut codec = SipCodec::new(LIMIT);
    let mut buf = BytesMut::new();
    let mut msgs = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(Inbound::Keepalive { .. })) => {
                    prop_assert!(buf.len() < before);
                }
                Ok(Some(Inbound::Message(m))) => {
                    prop_assert!(!m.is_empty() && m.len() <= before && m.len() <= LIMIT);
                    msgs.push(m.to_vec());
                }
                Ok(Some(Inbound::Started)) => prop_assert_eq!(buf.len(), before),
                Ok(None) => break,
                Err(e) => return Err(TestCaseError::fail(format!("frame error {e}"))),
            }
        }
    }
    prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(msgs)
}

/// `frame` on any bytes: no panic, lengths inside the buffer and the limit, and a complete
/// message it cuts is one that `parse` reads to the same length.
fn check_frame(bytes: &[u8], limit: usize) -> Result<(), TestCaseError> {
    match frame(bytes, limit) {
        Ok(Some(Frame::Keepalive(n))) => {
            prop_assert!(n > 0 && n <= bytes.len());
            prop_assert!(bytes[..n].iter().all(|b| *b == b'\r' || *b == b'\n'));
        }
        Ok(Some(Frame::Message(n))) => {
            prop_assert!(n > 0 && n <= bytes.len() && n <= limit);
            if let Ok(m) = parse(&bytes[..n]) {
                prop_assert_eq!(m.raw.len(), n, "frame and parse disagree on the length");
            }
        }
        Ok(None) | Err(_) => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mutations of carrier messages.

/// Header values that have broken SIP stacks.
const ODD_VALUES: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "1",
    "255",
    "256",
    "4294967295",
    "4294967296",
    "99999999999",
    "18446744073709551616",
    "+70",
    "7 0",
    "0x46",
    "70\t",
    "\"",
    "<",
    ">",
    ",",
    ";",
    "<sip:127.0.0.1:5060;lr>",
    "<sip:127.0.0.1;lr>, <tel:+8612356>",
    "sip:[::1",
    "<sip:[::1]:99999;lr>",
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-dg-0-0",
    "SIP/2.0/UDP [::1];rport=abc",
    "SIP/2.0/TCP [2001:db8::1]:5061;received=garbage;rport",
    "SIP/2.0/UDP a:0;received=::1;rport=65535",
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK,SIP/2.0/UDP b",
    "电话",
];

/// Parameters added to the top Via.
const VIA_PARAMS: &[&str] = &[
    ";rport=abc",
    ";rport=",
    ";rport=99999",
    ";rport=0",
    ";received=garbage",
    ";received=[::1]",
    ";received=::ffff:127.0.0.2",
    ";received",
    ";branch=",
    ";branch",
    ";branch=z9hG4bK-dg-ffffffff-ffffffff",
    ";;;",
    ";dgc=abc;dgn=\"\";dgq=nowhere",
    ";x=\"a;received=b,c\"",
    ", SIP/2.0/UDP second.example:5060;branch=z9hG4bK2",
    ",",
];

/// Replacement sent-by hosts for the top Via.
const VIA_HOSTS: &[&str] = &[
    "[::1]",
    "[::1]:5070",
    "[2001:db8::7]:5060",
    "[::ffff:127.0.0.2]:5060",
    "127.0.0.1:5060",
    "192.0.2.10:5060",
    "host.example",
    "[::1",
    ":5060",
    "127.0.0.2:99999",
    "127.0.0.2 : 5060",
];

/// Replacement Request-URIs.
const RURIS: &[&str] = &[
    "sip:电话@127.0.0.1",
    "sip:%E7%94%B5@gw",
    "tel:+86-591-8566-6661",
    "tel:+86591856666610000000000000000000000000000",
    "sip:+8659185666661@[::1]:5060;user=phone",
    "sip:12356@[2001:db8::1]",
    "sip:059212356@gw;user=phone",
    "sips:12356@gw",
    "sip:@",
    "sip:",
    "tel:",
    "*",
    "sip:0591%2D85666661@gw",
    "sip:85666661;phone-context=+86591@gw;user=phone",
    "sip:12356@127.0.0.1:5060;maddr=127.0.0.1;lr",
    "urn:service:sos",
];

/// Compact forms (RFC 3261 §7.3.3) for the long header names.
const COMPACT: &[(&str, &str)] = &[
    ("Via:", "v:"),
    ("From:", "f:"),
    ("To:", "t:"),
    ("Call-ID:", "i:"),
    ("Contact:", "m:"),
    ("Content-Length:", "l:"),
    ("Content-Type:", "c:"),
];

/// Bytes that are interesting inside SIP.
const NASTY: &[u8] = b":;,\"<>[]@ \t\r\n\\=\xff\xc3\x00/0123456789zZ%";

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, Index),
    Insert(Index, Index),
    Remove(Index),
    Truncate(Index),
    DuplicateLine(Index),
    RemoveLine(Index),
    SwapLines(Index, Index),
    HugeValue(Index, usize),
    HugeHeader(usize),
    ManyVias(usize),
    SetValue(Index, Index),
    AddHeader(Index, Index),
    ViaParam(Index),
    ViaHost(Index),
    RequestUri(Index),
    Compact,
    LfOnly,
    Fold(Index),
    LowercaseNames,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use Mutation::*;
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Flip(i, x)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, b)| Set(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, b)| Insert(i, b)),
        any::<Index>().prop_map(Remove),
        any::<Index>().prop_map(Truncate),
        any::<Index>().prop_map(DuplicateLine),
        any::<Index>().prop_map(RemoveLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| SwapLines(a, b)),
        (any::<Index>(), 1usize..20_000).prop_map(|(i, n)| HugeValue(i, n)),
        (60_000usize..70_000).prop_map(HugeHeader),
        (1usize..300).prop_map(ManyVias),
        (any::<Index>(), any::<Index>()).prop_map(|(i, v)| SetValue(i, v)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, v)| AddHeader(i, v)),
        any::<Index>().prop_map(ViaParam),
        any::<Index>().prop_map(ViaHost),
        any::<Index>().prop_map(RequestUri),
        Just(Compact),
        Just(LfOnly),
        any::<Index>().prop_map(Fold),
        Just(LowercaseNames),
    ]
}

/// Byte ranges of the header section's lines (start line first), terminators included.
fn lines(m: &[u8]) -> Vec<std::ops::Range<usize>> {
    let head_len = m
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 1)
        .into_iter()
        .chain(m.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 1))
        .min()
        .unwrap_or(m.len());
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in m[..head_len].iter().enumerate() {
        if *b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < head_len {
        out.push(start..head_len);
    }
    out
}

/// The index of the first line starting with `prefix` (case-insensitive), if any.
fn line_named(m: &[u8], names: &[&str]) -> Option<std::ops::Range<usize>> {
    lines(m).into_iter().find(|r| {
        let l = &m[r.clone()];
        names
            .iter()
            .any(|n| l.len() >= n.len() && l[..n.len()].eq_ignore_ascii_case(n.as_bytes()))
    })
}

fn replace(m: &mut Vec<u8>, r: std::ops::Range<usize>, with: &[u8]) {
    m.splice(r, with.iter().copied());
}

fn apply(m: &mut Vec<u8>, op: &Mutation) {
    use Mutation::*;
    let len = m.len().max(1);
    match op {
        Flip(i, x) if !m.is_empty() => {
            let i = i.index(len);
            m[i] ^= x;
        }
        Set(i, b) if !m.is_empty() => {
            let i = i.index(len);
            m[i] = NASTY[b.index(NASTY.len())];
        }
        Insert(i, b) => m.insert(i.index(len + 1).min(m.len()), NASTY[b.index(NASTY.len())]),
        Remove(i) if !m.is_empty() => {
            m.remove(i.index(len));
        }
        Truncate(i) => m.truncate(i.index(len + 1)),
        DuplicateLine(i) => {
            let ls = lines(m);
            if let Some(r) = ls.get(i.index(ls.len().max(1))) {
                let copy = m[r.clone()].to_vec();
                replace(m, r.end..r.end, &copy);
            }
        }
        RemoveLine(i) => {
            let ls = lines(m);
            if let Some(r) = ls.get(i.index(ls.len().max(1))) {
                replace(m, r.clone(), b"");
            }
        }
        SwapLines(a, b) => {
            let ls = lines(m);
            if ls.len() > 1 {
                let (a, b) = (a.index(ls.len()), b.index(ls.len()));
                let (a, b) = (a.min(b), a.max(b));
                if a != b {
                    let (ra, rb) = (ls[a].clone(), ls[b].clone());
                    let la = m[ra.clone()].to_vec();
                    let lb = m[rb.clone()].to_vec();
                    replace(m, rb, &la);
                    replace(m, ra, &lb);
                }
            }
        }
        HugeValue(i, n) => {
            let ls = lines(m);
            if let Some(r) = ls.get(i.index(ls.len().max(1))) {
                let end = r.end - usize::from(m[..r.end].ends_with(b"\r\n")) - 1;
                let end = end.max(r.start);
                let filler: Vec<u8> = b"a;b=c,".iter().copied().cycle().take(*n).collect();
                replace(m, end..end, &filler);
            }
        }
        HugeHeader(n) => {
            if let Some(r) = line_named(m, &["Call-ID:", "i:"]) {
                let mut h = b"X-Padding: ".to_vec();
                h.extend(std::iter::repeat_n(b'x', *n));
                h.extend_from_slice(b"\r\n");
                replace(m, r.end..r.end, &h);
            }
        }
        ManyVias(n) => {
            if let Some(r) = line_named(m, &["Via:", "v:"]) {
                let line = m[r.clone()].to_vec();
                let copies: Vec<u8> = line.iter().copied().cycle().take(line.len() * n).collect();
                replace(m, r.end..r.end, &copies);
            }
        }
        SetValue(i, v) => {
            let ls = lines(m);
            if ls.len() > 1 {
                let r = ls[1 + i.index(ls.len() - 1)].clone();
                if let Some(colon) = m[r.clone()].iter().position(|b| *b == b':') {
                    let from = r.start + colon + 1;
                    let to = r.end - usize::from(m[..r.end].ends_with(b"\r\n")) - 1;
                    let val = format!(" {}", ODD_VALUES[v.index(ODD_VALUES.len())]);
                    replace(m, from..to.max(from), val.as_bytes());
                }
            }
        }
        AddHeader(i, v) => {
            let names = [
                "Max-Forwards",
                "Via",
                "v",
                "Route",
                "Record-Route",
                "To",
                "Call-ID",
                "CSeq",
                "Content-Length",
                "l",
                "History-Info",
                "From",
            ];
            let ls = lines(m);
            let at = ls.get(1).map_or(m.len(), |r| r.start);
            let h = format!(
                "{}: {}\r\n",
                names[i.index(names.len())],
                ODD_VALUES[v.index(ODD_VALUES.len())]
            );
            replace(m, at..at, h.as_bytes());
        }
        ViaParam(p) => {
            if let Some(r) = line_named(m, &["Via:", "v:"]) {
                let end = r.end - usize::from(m[..r.end].ends_with(b"\r\n")) - 1;
                replace(
                    m,
                    end..end,
                    VIA_PARAMS[p.index(VIA_PARAMS.len())].as_bytes(),
                );
            }
        }
        ViaHost(h) => {
            if let Some(r) = line_named(m, &["Via:", "v:"]) {
                let l = &m[r.clone()];
                let sp = l.iter().position(|b| *b == b' ');
                let semi = l.iter().position(|b| *b == b';');
                if let (Some(sp), Some(semi)) = (sp, semi) {
                    // "Via: SIP/2.0/UDP host;..." -> the second space starts the sent-by.
                    if let Some(sb) = l[sp + 1..].iter().position(|b| *b == b' ') {
                        let from = r.start + sp + 1 + sb + 1;
                        let to = r.start + semi;
                        if from <= to {
                            replace(m, from..to, VIA_HOSTS[h.index(VIA_HOSTS.len())].as_bytes());
                        }
                    }
                }
            }
        }
        RequestUri(u) => {
            if let Some(r) = lines(m).first().cloned() {
                let l = &m[r.clone()];
                if let Some(a) = l.iter().position(|b| *b == b' ') {
                    if let Some(b) = l[a + 1..].iter().position(|b| *b == b' ') {
                        let (from, to) = (r.start + a + 1, r.start + a + 1 + b);
                        replace(m, from..to, RURIS[u.index(RURIS.len())].as_bytes());
                    }
                }
            }
        }
        Compact => {
            for r in lines(m).into_iter().rev() {
                for (long, short) in COMPACT {
                    if m[r.clone()].starts_with(long.as_bytes()) {
                        replace(m, r.start..r.start + long.len(), short.as_bytes());
                        break;
                    }
                }
            }
        }
        LfOnly => {
            let ls = lines(m);
            let head_end = ls.last().map_or(0, |r| r.end);
            let mut head: Vec<u8> = Vec::with_capacity(head_end);
            let mut i = 0;
            while i < head_end {
                if m[i..].starts_with(b"\r\n") {
                    i += 1;
                    continue;
                }
                head.push(m[i]);
                i += 1;
            }
            replace(m, 0..head_end, &head);
        }
        Fold(i) => {
            let ls = lines(m);
            if ls.len() > 1 {
                let r = ls[1 + i.index(ls.len() - 1)].clone();
                if let Some(sp) = m[r.clone()].iter().rposition(|b| *b == b' ') {
                    let at = r.start + sp;
                    replace(m, at..at + 1, b"\r\n\t ");
                }
            }
        }
        LowercaseNames => {
            for r in lines(m).into_iter().skip(1) {
                if let Some(colon) = m[r.clone()].iter().position(|b| *b == b':') {
                    m[r.start..r.start + colon].make_ascii_lowercase();
                }
            }
        }
        Flip(..) | Set(..) | Remove(..) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=100000 for a long hunt; a few hundred keep the suite fast.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(400),
        max_shrink_iters: 4096,
        // Crashers are kept as files in tests/corpus/, not as proptest seeds.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_bytes_through_handle_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cx in context(),
    ) {
        check(&bytes, cx)?;
    }

    #[test]
    fn sip_shaped_text_through_handle_never_panics(
        text in "(INVITE|ACK|BYE|CANCEL|OPTIONS|SIP/2\\.0) [ -~]{0,40}( SIP/2\\.0)?\r?\n\
            ((Via|v|Max-Forwards|Route|To|From|Call-ID|CSeq|Content-Length|l)[ \t]*:[ -~]{0,60}\r?\n){0,12}\
            \r?\n[ -~\r\n]{0,80}",
        cx in context(),
    ) {
        check(text.as_bytes(), cx)?;
    }

    #[test]
    fn mutated_carrier_messages_keep_the_forwarding_invariants(
        which in any::<Index>(),
        ops in proptest::collection::vec(mutation(), 1..5),
        cx in context(),
    ) {
        let t = templates();
        let mut m = t[which.index(t.len())].clone();
        for op in &ops {
            apply(&mut m, op);
        }
        check(&m, cx)?;
        check_frame(&m, LIMIT)?;
    }

    #[test]
    fn unmutated_carrier_messages_are_handled_from_every_source(
        which in any::<Index>(),
        cx in context(),
    ) {
        let t = templates();
        check(&t[which.index(t.len())], cx)?;
    }

    #[test]
    fn frame_never_panics_on_any_bytes(
        bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), select(NASTY.to_vec()), select(b"Content-Length: l0123456789\r\n".to_vec())],
            0..1024,
        ),
        limit in prop_oneof![Just(LIMIT), 0usize..1200],
    ) {
        check_frame(&bytes, limit)?;
    }

    #[test]
    fn a_stream_of_messages_split_anywhere_frames_back_to_those_messages(
        picks in proptest::collection::vec((any::<Index>(), 0usize..3, any::<bool>()), 1..6),
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 6),
        cuts in proptest::collection::vec(any::<Index>(), 0..12),
    ) {
        let t = templates();
        let mut want = Vec::new();
        let mut stream = Vec::new();
        for (i, (pick, keepalives, lf)) in picks.iter().enumerate() {
            // Any body, binary and with blank lines in it, framed by its Content-Length.
            let base = parse(&t[pick.index(t.len())]).unwrap();
            let head_end = base.blank_line.start;
            let mut head = base.raw[..head_end].to_vec();
            if *lf {
                head.retain(|b| *b != b'\r');
            }
            let head = String::from_utf8(head).unwrap();
            let head: String = head
                .split_inclusive('\n')
                .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
                .collect();
            let body = &bodies[i];
            let eol = if *lf { "\n" } else { "\r\n" };
            let mut m = format!("{head}Content-Length: {}{eol}{eol}", body.len()).into_bytes();
            m.extend_from_slice(body);
            stream.extend(std::iter::repeat_n(b"\r\n", *keepalives).flatten());
            stream.extend_from_slice(&m);
            want.push(m);
        }
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        at.push(0);
        at.push(stream.len());
        at.sort_unstable();
        let chunks: Vec<&[u8]> = at.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        let got = frame_stream(&chunks)?;
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g, w);
        }
    }

    #[test]
    fn normalize_never_panics_on_any_request_uri(
        uri in prop_oneof!["\\PC{0,40}", "(sip|sips|tel):[+0-9%a-zA-Z;=@.:\\[\\]-]{0,40}"],
        area in proptest::option::of(select(&["0591", "010", "0592"][..])),
    ) {
        let code = area.map(|a| AreaCode::new(a).unwrap());
        let d = Dialling { origin_area: code.as_ref() };
        if let Ok(n) = normalize(&uri, &d) {
            prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_digit()), "{}", n.as_str());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive and replayed inputs.

/// Every delivery context: both files, every source, both transports, every instant.
fn every_context() -> impl Iterator<Item = Context> {
    (0..2).flat_map(|snap| {
        SOURCES.iter().flat_map(move |src| {
            [false, true].into_iter().flat_map(move |tcp| {
                instants().iter().map(move |&now| Context {
                    snap,
                    from: peer(src, tcp),
                    now,
                })
            })
        })
    })
}

fn run(r: Result<Act, TestCaseError>, what: &str) -> Act {
    match r {
        Ok(a) => a,
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn every_truncation_of_every_carrier_message_is_handled() {
    let mut acts = [0usize; 3];
    for (ti, t) in templates().iter().enumerate() {
        for n in 0..=t.len() {
            for cx in every_context().step_by(7) {
                let act = run(check(&t[..n], cx), &format!("template {ti} cut at {n}"));
                acts[act as usize] += 1;
            }
            if let Err(e) = check_frame(&t[..n], LIMIT) {
                panic!("template {ti} cut at {n}: {e}");
            }
            // A strict prefix is never a complete frame: Content-Length bytes are missing.
            if n < t.len() {
                assert_eq!(frame(&t[..n], LIMIT), Ok(None), "template {ti} cut at {n}");
            }
        }
    }
    // The cut-off messages were really taken apart: some forwarded, some answered, most dropped.
    assert!(
        acts.iter().all(|&n| n > 0),
        "acts forwarded/replied/dropped = {acts:?}"
    );
}

#[test]
fn the_templates_are_forwarded_from_the_trunk_during_the_parallel_period() {
    let now = parse_instant(common::PARALLEL).unwrap();
    for (i, t) in templates().iter().enumerate() {
        // Each response carries the Via of the file whose gateway forwarded its INVITE.
        let acts: Vec<Act> = (0..2)
            .map(|snap| {
                let cx = Context {
                    snap,
                    from: peer("127.0.0.2:5060", false),
                    now,
                };
                run(check(t, cx), &format!("template {i}"))
            })
            .collect();
        let want = match parse(t).unwrap().method() {
            Some(dualgate::sip::Method::Options) => Act::Replied,
            // The CANCEL and the non-2xx ACK of a forwarded INVITE follow it to the queue.
            _ => Act::Forwarded,
        };
        assert!(
            acts.contains(&want),
            "template {i} {acts:?}:\n{}",
            String::from_utf8_lossy(t)
        );
    }
}

/// The replayed inputs: `tests/corpus/*`.
fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_through_handle_and_frame() {
    let files = corpus();
    assert!(files.len() >= 5, "corpus has only {} files", files.len());
    for (path, bytes) in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        for cx in every_context() {
            run(check(bytes, cx), &name);
        }
        run(check_frame(bytes, LIMIT).map(|()| Act::Dropped), &name);
        // As a TCP stream, one byte at a time and whole.
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        let mut buf = Vec::new();
        for c in bytewise {
            buf.extend_from_slice(c);
            while let Ok(Some(Frame::Message(n) | Frame::Keepalive(n))) = frame(&buf, LIMIT) {
                buf.drain(..n);
            }
        }
    }
}
