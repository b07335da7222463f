//! TCP stream framing by Content-Length (RFC 3261 §18.3). No I/O here.
//!
//! RFC 3261 §18.3 says Content-Length MUST be present on streams; like Kamailio, a message
//! without one is framed leniently as having an empty body. Folded Content-Length lines are not
//! supported (the folded value reads as empty, hence [`FrameError::BadContentLength`]).

use super::message::head_end;
use thiserror::Error;

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete message of this many bytes.
    Message(usize),
    /// This many bytes of CRLF keep-alive (RFC 5626 §3.5.1) before any message.
    Keepalive(usize),
}

/// A stream that can never yield a valid message; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Headers or body larger than the limit.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A Content-Length header whose value is not a decimal number.
    #[error("bad Content-Length")]
    BadContentLength,
}

/// Finds the first frame in `buf`: `Ok(None)` until all Content-Length bytes are in.
///
/// Leading CR/LF bytes come back as [`Frame::Keepalive`] (their count) so the caller can drain
/// them and answer a double-CRLF ping; otherwise [`Frame::Message`] gives the length of the
/// message (headers, blank line and Content-Length body bytes).
///
/// # Errors
/// [`FrameError`] when the stream cannot be framed.
pub fn frame(buf: &[u8], limit: usize) -> Result<Option<Frame>, FrameError> {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Some(Frame::Keepalive(crlf)));
    }
    let too_large = FrameError::TooLarge { limit };
    let Some((headers_end, body_start)) = head_end(buf) else {
        return if buf.len() > limit {
            Err(too_large)
        } else {
            Ok(None)
        };
    };
    let body_len = content_length(buf.get(..headers_end).unwrap_or_default())?.unwrap_or(0);
    let total = usize::try_from(body_len)
        .ok()
        .and_then(|n| body_start.checked_add(n))
        .filter(|&t| t <= limit)
        .ok_or(too_large)?;
    Ok((buf.len() >= total).then_some(Frame::Message(total)))
}

/// The first Content-Length (or compact `l`) value in a header section.
fn content_length(head: &[u8]) -> Result<Option<u64>, FrameError> {
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let digits = value.get(1..).unwrap_or_default().trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength);
        }
        // Parse by hand: no UTF-8 step, and overflow is an error rather than a wrap.
        let n = digits.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        return n.map(Some).ok_or(FrameError::BadContentLength);
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::{invite, invite_lf, with_body};

    const LIMIT: usize = 64 * 1024;

    #[test]
    fn every_prefix_of_a_message_is_partial() {
        for m in [invite(), invite_lf()] {
            for n in 0..m.len() {
                assert_eq!(frame(&m[..n], LIMIT), Ok(None), "prefix {n}");
            }
            assert_eq!(frame(&m, LIMIT), Ok(Some(Frame::Message(m.len()))));
        }
    }

    #[test]
    fn coalesced_messages_and_keepalives_come_apart_in_order() {
        let a = invite();
        let b = with_body("BYE sip:a@b SIP/2.0\r\nl :  4\r\n", b"\r\n\r\n");
        let c = b"ACK sip:a@b SIP/2.0\nCall-ID: x\n\n".to_vec();
        let mut buf = [&a[..], b"\r\n\r\n", &b, b"\n", &c, &a[..10]].concat();
        let mut got = Vec::new();
        while let Some(f) = frame(&buf, LIMIT).unwrap() {
            let n = match f {
                Frame::Message(n) | Frame::Keepalive(n) => n,
            };
            got.push(f);
            buf.drain(..n);
        }
        assert_eq!(
            got,
            [
                Frame::Message(a.len()),
                Frame::Keepalive(4),
                Frame::Message(b.len()),
                Frame::Keepalive(1),
                Frame::Message(c.len()),
            ]
        );
        assert_eq!(buf, &a[..10]);
    }

    #[test]
    fn content_length_is_found_in_any_spelling() {
        let cases: &[(&str, usize)] = &[
            ("Content-Length: 5\r\n", 5),
            ("content-length:5\r\n", 5),
            ("CONTENT-LENGTH \t:  5  \r\n", 5),
            ("l: 5\r\n", 5),
            ("L : 5\r\n", 5),
            ("X-Content-Length: 9\r\nl: 5\r\n", 5),
            ("Subject: l: 9\r\n", 0),
            ("", 0),
        ];
        for (line, body) in cases {
            let head = format!("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n{line}\r\n");
            let buf = [head.as_bytes(), b"12345678901234567890"].concat();
            assert_eq!(
                frame(&buf, LIMIT),
                Ok(Some(Frame::Message(head.len() + body))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn body_containing_a_blank_line_is_framed_by_length() {
        let m = with_body(
            "MESSAGE sip:a@b SIP/2.0\r\n",
            b"x\r\n\r\nINVITE sip:c SIP/2.0\r\n\r\n",
        );
        for n in 0..m.len() {
            assert_eq!(frame(&m[..n], LIMIT), Ok(None), "prefix {n}");
        }
        let buf = [&m[..], b"OPTIONS"].concat();
        assert_eq!(frame(&buf, LIMIT), Ok(Some(Frame::Message(m.len()))));
    }

    #[test]
    fn oversized_or_unframeable_streams_are_errors() {
        let huge_cl = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n";
        type Case<'c> = (&'c [u8], usize, Result<Option<Frame>, FrameError>);
        let cases: &[Case<'_>] = &[
            (&[b'A'; 101], 100, Err(FrameError::TooLarge { limit: 100 })),
            (&[b'A'; 100], 100, Ok(None)),
            (huge_cl, LIMIT, Err(FrameError::TooLarge { limit: LIMIT })),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n",
                LIMIT,
                Err(FrameError::BadContentLength),
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nl: 18446744073709551615\r\n\r\n",
                LIMIT,
                Err(FrameError::TooLarge { limit: LIMIT }),
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1e3\r\n\r\n",
                LIMIT,
                Err(FrameError::BadContentLength),
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n 12\r\n\r\n",
                LIMIT,
                Err(FrameError::BadContentLength),
            ),
            (b"", LIMIT, Ok(None)),
            (b"\r", LIMIT, Ok(Some(Frame::Keepalive(1)))),
        ];
        for (buf, limit, want) in cases {
            assert_eq!(
                frame(buf, *limit),
                *want,
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
        let exact = with_body("MESSAGE sip:a@b SIP/2.0\r\n", b"abc");
        assert_eq!(
            frame(&exact, exact.len()),
            Ok(Some(Frame::Message(exact.len())))
        );
        assert_eq!(
            frame(&exact, exact.len() - 1),
            Err(FrameError::TooLarge {
                limit: exact.len() - 1
            })
        );
    }
}
