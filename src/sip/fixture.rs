//! Realistic messages shared by the unit tests of the `sip` modules. Test-only.

/// The SDP offer a carrier sends with an INVITE.
pub const SDP: &str = "v=0\r\n\
o=carrier 2890844526 2890844526 IN IP4 203.0.113.7\r\n\
s=-\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\n";

/// Header lines of a carrier INVITE to a legacy number, up to (not including) Content-Length.
pub const INVITE_HEAD: &str = "INVITE tel:+8659185666661;phone-context=+86 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:gw.example.net;lr>, <sip:core.example.net;lr>\r\n\
From: \"Carrier\" <sip:+8613800000000@carrier.example;user=phone>;tag=1928301774\r\n\
To: <tel:+8659185666661>\r\n\
Call-ID: a84b4c76e66710@pc33.carrier.example\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+8613800000000@203.0.113.7:5060>\r\n\
P-Asserted-Identity :  <sip:+8613800000000@carrier.example>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Content-Type: application/sdp\r\n";

/// `head` + a correct Content-Length + blank line + `body`.
pub fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    m.extend_from_slice(body);
    m
}

/// The carrier INVITE with its SDP body.
pub fn invite() -> Vec<u8> {
    with_body(INVITE_HEAD, SDP.as_bytes())
}

/// The carrier INVITE with bare-LF line ends in the start line and headers (the SDP body keeps
/// its CRLFs: it is opaque bytes).
pub fn invite_lf() -> Vec<u8> {
    let head = INVITE_HEAD.replace("\r\n", "\n");
    let mut m = format!("{head}Content-Length: {}\n\n", SDP.len()).into_bytes();
    m.extend_from_slice(SDP.as_bytes());
    m
}

/// A proptest strategy for one piece of generated text: mostly the `usual` pattern, one time in
/// five the `odd` one, which a fast path for the usual shape must refuse or read as the general
/// reader does.
pub fn usual_or(
    usual: &'static str,
    odd: &'static str,
) -> impl proptest::strategy::Strategy<Value = String> {
    proptest::prop_oneof![4 => usual, 1 => odd]
}
