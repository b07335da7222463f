//! Stateless responses built from a request with rsip (RFC 3261 §8.2.6). No I/O here.
//!
//! The request is read through our own [`Message`], never handed to rsip, so a request rsip
//! cannot parse (a `tel:` Request-URI, a combined Via) still gets its answer. Every status is
//! built as `rsip::StatusCode::Other(code, reason)`: rsip's named variants serialize their
//! reason as the Rust identifier (`404 NotFound`), `Other` writes `404 Not Found` verbatim.

use super::edit::stamp_via;
use super::message::Message;
use super::name::HeaderName;
use super::scan::{split_first, split_list};
use rsip::headers::UntypedHeader;
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
///
/// Headers, in order: every Via entry, grouped in lines as the request grouped them (a
/// combined `Via: a, b` stays one line, so an answer never holds more Via lines than the request
/// held header lines; the top entry stamped like [`crate::sip::forward_request`] does), From, To (with `;tag=` added when it has none and
/// `r.to_tag` is not empty), Call-ID, CSeq, `r.extra`, `Content-Length: 0`. Headers missing
/// from the request are left out. CR and LF in the reason phrase become spaces.
pub fn reply(req: &Message<'_>, r: &Reply<'_>) -> Vec<u8> {
    use rsip::headers as h;
    let mut headers = rsip::Headers::default();
    let mut first = true;
    for line in req.headers.iter().filter(|h| h.name == HeaderName::Via) {
        // A line with no entry (`Via: `) is no Via; the others are echoed as written.
        if split_list(&line.value).next().is_none() {
            continue;
        }
        let value = if first {
            first = false;
            let (top, rest) = split_first(&line.value);
            let top = stamp_via(top, r.received, r.rport);
            match rest {
                Some(rest) => format!("{top}, {rest}"),
                None => top.into_owned(),
            }
        } else {
            line.value.clone().into_owned()
        };
        headers.push(rsip::Header::Via(h::Via::new(value)));
    }
    if let Some(from) = req.header(HeaderName::From) {
        headers.push(rsip::Header::From(h::From::new(from)));
    }
    if let Some(to) = req.header(HeaderName::To) {
        let to = if req.to_tag().is_none() && !r.to_tag.is_empty() {
            format!("{to};tag={}", r.to_tag)
        } else {
            to.to_owned()
        };
        headers.push(rsip::Header::To(h::To::new(to)));
    }
    if let Some(call_id) = req.call_id() {
        headers.push(rsip::Header::CallId(h::CallId::new(call_id)));
    }
    if let Some(cseq) = req.header(HeaderName::CSeq) {
        headers.push(rsip::Header::CSeq(h::CSeq::new(cseq)));
    }
    for (name, value) in r.extra {
        headers.push(rsip::Header::Other((*name).into(), (*value).into()));
    }
    headers.push(rsip::Header::ContentLength(h::ContentLength::from(0)));
    let reason = r.reason.replace(['\r', '\n'], " ");
    let response = rsip::Response {
        status_code: rsip::StatusCode::Other(r.status, reason),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    };
    response.to_string().into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::invite;
    use crate::sip::message::{parse, Start};

    fn lossy(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn not_found_for_a_tel_invite_is_exact() {
        let bytes = invite();
        let req = parse(&bytes).unwrap();
        let out = reply(
            &req,
            &Reply {
                status: 404,
                reason: "Not Found",
                to_tag: "dg7f3a",
                received: Some("203.0.113.8".parse().unwrap()),
                rport: Some(40000),
                extra: &[("Reason", "Q.850;cause=1")],
            },
        );
        assert_eq!(
            lossy(&out),
            "SIP/2.0 404 Not Found\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport=40000;received=203.0.113.8\r\n\
From: \"Carrier\" <sip:+8613800000000@carrier.example;user=phone>;tag=1928301774\r\n\
To: <tel:+8659185666661>;tag=dg7f3a\r\n\
Call-ID: a84b4c76e66710@pc33.carrier.example\r\n\
CSeq: 314159 INVITE\r\n\
Reason: Q.850;cause=1\r\n\
Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn replies_reparse_with_the_request_fields() {
        let combined = "OPTIONS sip:gw SIP/2.0\r\n\
v: SIP/2.0/UDP p1;branch=z9hG4bKp1;rport, SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKc\r\n\
Via: SIP/2.0/UDP c2;branch=z9hG4bKc2\r\n\
f: <sip:a@b>;tag=ft\r\nt: <sip:gw>;tag=existing\r\ni: opt-1\r\nCSeq: 9 OPTIONS\r\n\r\n";
        let inv = invite();
        // (request, status, reason, Via entries, To tag in the reply)
        type Case<'c> = (&'c [u8], u16, &'c str, usize, Option<&'c str>);
        let cases: &[Case<'_>] = &[
            (&inv, 404, "Not Found", 1, Some("dg1")),
            (&inv, 483, "Too Many Hops", 1, Some("dg1")),
            (&inv, 200, "OK", 1, Some("dg1")),
            (combined.as_bytes(), 200, "OK", 3, Some("existing")),
            (combined.as_bytes(), 400, "", 3, Some("existing")),
        ];
        for (raw, status, reason, n_vias, to_tag) in cases {
            let req = parse(raw).unwrap();
            let r = Reply {
                status: *status,
                reason,
                to_tag: "dg1",
                received: Some("198.51.100.9".parse().unwrap()),
                rport: Some(7),
                extra: &[],
            };
            let out = reply(&req, &r);
            let resp = parse(&out).unwrap();
            assert_eq!(
                resp.start,
                Start::Response {
                    code: *status,
                    reason
                },
                "{status}"
            );
            assert_eq!(resp.vias().count(), *n_vias, "{status}");
            let top = resp.top_via().unwrap();
            assert_eq!(top.received, Some("198.51.100.9"));
            assert_eq!(
                resp.via_entries().skip(1).collect::<Vec<_>>(),
                req.via_entries().skip(1).collect::<Vec<_>>()
            );
            assert_eq!(top.branch, req.top_via().unwrap().branch);
            assert_eq!(resp.to_tag(), *to_tag);
            assert_eq!(resp.from_tag(), req.from_tag());
            assert_eq!(resp.call_id(), req.call_id());
            assert_eq!(resp.cseq(), req.cseq());
            assert_eq!(resp.content_length(), Some(0));
            assert!(resp.body.is_empty());
        }
    }

    #[test]
    fn a_combined_via_is_answered_on_as_many_lines_and_no_longer() {
        // An attacker's combined Via of tiny entries: one entry per line would multiply the
        // answer (a 14 kB request drew a 56 kB 403 before).
        let tiny: Vec<String> = (0..500).map(|i| format!("SIP/2.0/UDP a{i}")).collect();
        let raw = format!(
            "OPTIONS sip:gw SIP/2.0\r\nv: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKx;rport\r\n\
v: {}\r\nv: SIP/2.0/UDP b, SIP/2.0/UDP c\r\nf: <sip:a@b>;tag=1\r\nt: <sip:gw>\r\ni: x\r\n\
CSeq: 1 OPTIONS\r\n\r\n",
            tiny.join(",")
        );
        let req = parse(raw.as_bytes()).unwrap();
        let out = reply(
            &req,
            &Reply {
                status: 403,
                reason: "Forbidden",
                to_tag: "dg1",
                received: None,
                rport: Some(5060),
                extra: &[],
            },
        );
        let text = lossy(&out);
        let via_lines = text.lines().filter(|l| l.starts_with("Via:")).count();
        assert_eq!(via_lines, 3, "{text}");
        let resp = parse(&out).unwrap();
        assert_eq!(resp.via_entries().count(), req.via_entries().count());
        assert_eq!(
            resp.via_entries().skip(1).collect::<Vec<_>>(),
            req.via_entries().skip(1).collect::<Vec<_>>()
        );
        assert!(
            text.contains("\r\nVia: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKx;rport=5060\r\n"),
            "{text}"
        );
        // Echoed as written: only the stamp, the To tag, Content-Length and the long header
        // names add bytes, a constant (proxy::handle caps answers to strangers at the request).
        assert!(
            out.len() <= raw.len() + 100,
            "{} > {}",
            out.len(),
            raw.len()
        );
    }

    #[test]
    fn reply_to_a_request_missing_headers_still_serializes() {
        let req = parse(b"FOO tel:123 SIP/2.0\r\nCall-ID: c\r\n\r\n").unwrap();
        let out = reply(
            &req,
            &Reply {
                status: 400,
                reason: "Missing\r\nHeaders",
                to_tag: "t",
                ..Reply::default()
            },
        );
        assert_eq!(
            lossy(&out),
            "SIP/2.0 400 Missing  Headers\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
