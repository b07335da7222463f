//! The gateway's own OPTIONS health probes to backends (RFC 3261 §11) and how their responses
//! are told apart from the responses it forwards: the probe's Via is the gateway's own, with a
//! branch only probes use. Also the status-line rewrite of a forwarded response. No I/O here.

use super::{Message, Start};
use crate::peer::Transport;
use std::net::SocketAddr;

/// Branch prefix of probes: RFC 3261's magic cookie, then a mark no forwarded request carries
/// (forwarded requests use [`super::branch::GATEWAY_PREFIX`]).
pub const PROBE_PREFIX: &str = "z9hG4bK-dgprobe-";

/// An OPTIONS probe `id` to the backend at `to` over `transport`, from the gateway at
/// `advertised` (`host:port`, the address backends reach it at: the response comes back there).
pub fn options(advertised: &str, to: SocketAddr, transport: Transport, id: u64) -> Vec<u8> {
    let host = match to {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let uri = match transport {
        Transport::Udp => format!("sip:{host}"),
        Transport::Tcp => format!("sip:{host};transport=tcp"),
    };
    format!(
        "OPTIONS {uri} SIP/2.0\r\n\
         Via: SIP/2.0/{via} {advertised};branch={PROBE_PREFIX}{id:x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dualgate@{advertised}>;tag=dgprobe\r\n\
         To: <{uri}>\r\n\
         Call-ID: dgprobe-{id:x}@{advertised}\r\n\
         CSeq: {cseq} OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        via = transport.as_via(),
        cseq = id & 0x7fff_ffff,
    )
    .into_bytes()
}

/// The probe id and status of a response to one of the gateway's probes; `None` for any other
/// message.
pub fn reply_to_probe(msg: &Message<'_>) -> Option<(u64, u16)> {
    let Start::Response { code, .. } = msg.start else {
        return None;
    };
    // Most responses are not to probes: look for the marker before parsing the Via.
    let top = msg.via_entries().next()?;
    if !top.contains(PROBE_PREFIX) {
        return None;
    }
    Some((probe_id(&super::Via::parse(top).ok()?)?, code))
}

/// The probe id in a response's top Via (already parsed), when it is the Via of one of the
/// gateway's probes.
pub fn probe_id(top: &super::Via<'_>) -> Option<u64> {
    let id = top.branch?.strip_prefix(PROBE_PREFIX)?;
    u64::from_str_radix(id, 16).ok()
}

/// Replaces the status line of the response in `out` with `status` and `reason`, keeping every
/// header and the body as they are.
pub fn replace_status(out: &mut Vec<u8>, status: u16, reason: &str) {
    let Some(end) = out.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let line = format!("SIP/2.0 {status} {reason}");
    out.splice(..end, line.into_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::parse;

    #[test]
    fn a_probe_is_valid_sip_and_its_response_is_recognised_by_id() {
        let to: SocketAddr = "127.0.0.1:5091".parse().unwrap();
        let probe = options("192.0.2.10:5060", to, Transport::Udp, 0x2a00_0001);
        let msg = parse(&probe).unwrap();
        assert_eq!(msg.request_uri(), Some("sip:127.0.0.1:5091"));
        assert_eq!(msg.max_forwards().unwrap().unwrap(), 70);
        let via = msg.top_via().unwrap();
        assert_eq!((via.host, via.port), ("192.0.2.10", Some(5060)));
        let text = String::from_utf8(probe.clone()).unwrap();
        let reply = text
            .replacen("OPTIONS sip:127.0.0.1:5091 SIP/2.0", "SIP/2.0 200 OK", 1)
            .replacen(
                "To: <sip:127.0.0.1:5091>",
                "To: <sip:127.0.0.1:5091>;tag=x",
                1,
            );
        assert_eq!(
            reply_to_probe(&parse(reply.as_bytes()).unwrap()),
            Some((0x2a00_0001, 200))
        );
        // The probe itself, and a forwarded response, are not probe replies.
        assert_eq!(reply_to_probe(&msg), None);
        let other = reply.replace(PROBE_PREFIX, "z9hG4bKdg");
        assert_eq!(reply_to_probe(&parse(other.as_bytes()).unwrap()), None);
        let tcp = options(
            "[::1]:5060",
            "[::1]:5092".parse().unwrap(),
            Transport::Tcp,
            7,
        );
        assert!(String::from_utf8(tcp).unwrap().starts_with(
            "OPTIONS sip:[::1]:5092;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:5060;"
        ));
    }

    #[test]
    fn a_status_line_is_replaced_and_the_rest_kept_byte_for_byte() {
        let mut out =
            b"SIP/2.0 503 Service Unavailable\r\nRetry-After: 60\r\nContent-Length: 0\r\n\r\n"
                .to_vec();
        replace_status(&mut out, 480, "Temporarily Unavailable");
        assert_eq!(
            out,
            b"SIP/2.0 480 Temporarily Unavailable\r\nRetry-After: 60\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
