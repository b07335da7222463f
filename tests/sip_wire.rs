#![allow(clippy::unwrap_used)]
//! The SIP wire layer end to end, through the public API only: a carrier INVITE is parsed,
//! branched and forwarded, the queue's answer comes back and loses the gateway's Via, and
//! mutated messages never panic any stage.

use dualgate::sip::{
    forward_request, forward_response, frame, parse, reply, Branch, Frame, Reply, RequestEdit,
    Start,
};

const SDP: &[u8] = b"v=0\r\no=carrier 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\n\
t=0 0\r\nm=audio 49170 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn carrier_invite() -> Vec<u8> {
    let head = "INVITE tel:+8659185666661 SIP/2.0\r\n\
v: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:gw.example.net;lr>\r\n\
f: \"Carrier\" <sip:+8613800000000@carrier.example;user=phone>;tag=1928301774\r\n\
t: <tel:+8659185666661>\r\n\
i: a84b4c76e66710@pc33.carrier.example\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:+8613800000000@203.0.113.7:5060>\r\n\
c: application/sdp\r\n";
    let mut m = format!("{head}l: {}\r\n\r\n", SDP.len()).into_bytes();
    m.extend_from_slice(SDP);
    m
}

#[test]
fn invite_out_and_its_ringing_back_keep_the_carrier_view_intact() {
    let raw = carrier_invite();
    let inv = parse(&raw).unwrap();
    let branch = Branch::of(&inv);
    let via = format!("SIP/2.0/UDP 192.0.2.10:5060;branch={}", branch.to_param());
    let edit = RequestEdit {
        received: Some("203.0.113.9".parse().unwrap()),
        rport: Some(40000),
        request_uri: Some("sip:059185666661@queue.example"),
        max_forwards: 69,
        pop_routes: 1,
        record_route: None,
        extra: &[],
    };
    let mut out = Vec::new();
    forward_request(&inv, &edit, via.as_str(), &mut out);
    let fwd = parse(&out).unwrap();
    assert_eq!(fwd.request_uri(), Some("sip:059185666661@queue.example"));
    assert_eq!(fwd.max_forwards(), Some(Ok(69)));
    assert_eq!(fwd.routes().count(), 0);
    assert_eq!(fwd.body, SDP);
    let vias: Vec<_> = fwd.vias().collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(
        Branch::loop_key_of(vias[0].branch.unwrap()),
        Some(branch.loop_key)
    );
    assert_eq!(vias[1].received, Some("203.0.113.9"));
    assert_eq!(vias[1].rport, Some(Some(40000)));

    // The queue answers 180 through the gateway: it copies the Vias (RFC 3261 §8.2.6).
    let ringing = reply(
        &fwd,
        &Reply {
            status: 180,
            reason: "Ringing",
            to_tag: "q1",
            ..Reply::default()
        },
    );
    let ringing = parse(&ringing).unwrap();
    forward_response(&ringing, &mut out);
    let back = parse(&out).unwrap();
    assert_eq!(
        back.start,
        Start::Response {
            code: 180,
            reason: "Ringing"
        }
    );
    let top = back.top_via().unwrap();
    assert_eq!(top.branch, Some("z9hG4bK776asdhds"));
    assert_eq!(top.received, Some("203.0.113.9"));
    assert_eq!(back.vias().count(), 1);
    assert_eq!(back.to_tag(), Some("q1"));
    assert_eq!(back.call_id(), inv.call_id());
}

#[test]
fn a_tcp_stream_split_anywhere_frames_to_the_same_messages() {
    let one = carrier_invite();
    let stream = [&b"\r\n\r\n"[..], &one, &one].concat();
    for cut in 0..stream.len() {
        let mut buf = stream[..cut].to_vec();
        let mut rest = &stream[cut..];
        let mut msgs = Vec::new();
        loop {
            match frame(&buf, 65_536).unwrap() {
                Some(Frame::Keepalive(n)) => {
                    buf.drain(..n);
                }
                Some(Frame::Message(n)) => {
                    msgs.push(buf.drain(..n).collect::<Vec<u8>>());
                }
                None if rest.is_empty() => break,
                None => {
                    buf.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        assert_eq!(msgs, [one.clone(), one.clone()], "cut at {cut}");
        assert!(buf.is_empty());
    }
}

#[test]
fn mutated_carrier_messages_never_panic_any_stage() {
    const NASTY: &[u8] = b":;,\"<>[] \t\r\n\\=\xff\x00/0123456789zZ";
    let base = carrier_invite();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let mut m = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % m.len();
            let b = NASTY[(next() as usize) % NASTY.len()];
            match next() % 3 {
                0 => m[at] = b,
                1 => m.insert(at, b),
                _ => {
                    m.remove(at);
                }
            }
        }
        let _ = frame(&m, 65_536);
        let Ok(msg) = parse(&m) else { continue };
        parsed += 1;
        let _ = (
            Branch::of(&msg),
            msg.cseq(),
            msg.max_forwards(),
            msg.to_tag(),
        );
        let edit = RequestEdit {
            received: Some("::1".parse().unwrap()),
            rport: Some(1),
            pop_routes: 1,
            record_route: Some("<sip:gw;lr>"),
            ..RequestEdit::default()
        };
        forward_request(&msg, &edit, "SIP/2.0/UDP gw", &mut out);
        forward_response(&msg, &mut out);
        let _ = reply(
            &msg,
            &Reply {
                status: 400,
                reason: "Bad Request",
                to_tag: "t",
                ..Reply::default()
            },
        );
    }
    // Most single-byte mutations leave a parseable message: the stages above really ran.
    assert!(parsed > 5_000, "only {parsed} parsed");
}
