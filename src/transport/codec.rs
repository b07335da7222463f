//! The TCP stream's codec: [`sip::frame()`](crate::sip::frame())'s framing (a head up to the blank
//! line plus Content-Length body bytes, RFC 3261 §18.3) as a tokio-util [`Decoder`] over the
//! connection's read buffer, so `FramedRead` owns the buffer and the reads. No I/O and no clock
//! here: the connection task reads the time when [`Inbound::Started`] comes out.
//!
//! Output needs no framing of its own (the proxy hands over whole messages), so the writer is a
//! `FramedWrite` with tokio-util's [`BytesCodec`](tokio_util::codec::BytesCodec).

use crate::sip::{frame, Frame, FrameError};
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use thiserror::Error;
use tokio_util::codec::Decoder;

/// How much a read may add to the buffer; the buffer is released when a burst is over.
pub const READ_CHUNK: usize = 16 * 1024;

/// What the front of a connection's stream holds, in the order it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// One complete message: head, blank line and Content-Length body bytes.
    Message(Bytes),
    /// A run of CR/LF keep-alive bytes (RFC 5626 §4.4.1) before any message; `pong` when the run
    /// holds a double-CRLF ping, which is answered with a single CRLF.
    Keepalive {
        /// The run holds `CRLFCRLF`.
        pong: bool,
    },
    /// The first bytes of a message that is not complete yet: its deadline starts now. Comes out
    /// once per message, however slowly the rest trickles in.
    Started,
}

/// Why a stream ends: its bytes cannot be framed, or the read failed.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The stream can never yield a valid message (too large, bad Content-Length).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading from the socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Cuts a SIP stream into [`Inbound`] items, at most `limit` bytes a message.
#[derive(Debug, Clone)]
pub struct SipCodec {
    limit: usize,
    /// [`Inbound::Started`] was given for the incomplete message at the front of the buffer.
    started: bool,
}

impl SipCodec {
    /// A codec for messages of at most `limit` bytes.
    pub fn new(limit: usize) -> SipCodec {
        SipCodec {
            limit,
            started: false,
        }
    }
}

impl Decoder for SipCodec {
    type Item = Inbound;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, CodecError> {
        match frame(buf, self.limit)? {
            Some(Frame::Keepalive(k)) => {
                let k = k.min(buf.len());
                // RFC 5626 §4.4.1: a double-CRLF ping gets a single-CRLF pong.
                let pong = buf
                    .get(..k)
                    .is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n"));
                buf.advance(k);
                self.started = false;
                Ok(Some(Inbound::Keepalive { pong }))
            }
            Some(Frame::Message(m)) => {
                self.started = false;
                Ok(Some(Inbound::Message(
                    buf.split_to(m.min(buf.len())).freeze(),
                )))
            }
            None if !buf.is_empty() && !self.started => {
                self.started = true;
                Ok(Some(Inbound::Started))
            }
            None => {
                // Everything the last read brought is handed out: the burst is over. A buffer a
                // burst grew gives its memory back; the next read gets a chunk of room.
                // (`reserve` on an emptied buffer takes back its whole allocation, so its
                // capacity tells the allocation's size.)
                buf.reserve(READ_CHUNK);
                if buf.is_empty() && buf.capacity() > 2 * READ_CHUNK {
                    *buf = BytesMut::with_capacity(READ_CHUNK);
                }
                Ok(None)
            }
        }
    }

    /// At the end of the stream a message still incomplete is dropped without a word, as a
    /// closed connection always dropped it.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, CodecError> {
        match self.decode(buf)? {
            Some(Inbound::Started) | None => {
                buf.clear();
                Ok(None)
            }
            item => Ok(item),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::{invite, invite_lf, with_body};

    const LIMIT: usize = 65_535;

    /// Feeds `chunks` one read at a time, decoding after each as `FramedRead` does, and returns
    /// every item with the bytes left over.
    fn feed(codec: &mut SipCodec, chunks: &[&[u8]]) -> (Vec<Inbound>, BytesMut) {
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
        }
        (items, buf)
    }

    fn message(m: &[u8]) -> Inbound {
        Inbound::Message(Bytes::copy_from_slice(m))
    }

    #[test]
    fn a_message_split_at_every_byte_comes_out_whole_and_starts_once() {
        for m in [
            invite(),
            invite_lf(),
            with_body("MESSAGE sip:a@b SIP/2.0\r\n", b"x\r\n\r\ny"),
        ] {
            for cut in 1..m.len() {
                let (items, rest) = feed(&mut SipCodec::new(LIMIT), &[&m[..cut], &m[cut..]]);
                assert_eq!(items, [Inbound::Started, message(&m)], "cut at {cut}");
                assert!(rest.is_empty(), "cut at {cut}");
            }
            // One byte a read: one Started, then the message.
            let bytes: Vec<&[u8]> = m.chunks(1).collect();
            let (items, rest) = feed(&mut SipCodec::new(LIMIT), &bytes);
            assert_eq!(items, [Inbound::Started, message(&m)]);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn several_messages_in_one_read_come_out_in_order_and_a_tail_starts_the_next() {
        let a = invite();
        let b = with_body("BYE sip:a@b SIP/2.0\r\nl :  4\r\n", b"\r\n\r\n");
        let c = b"ACK sip:a@b SIP/2.0\nCall-ID: x\n\n".to_vec();
        let read = [&a[..], &b, &c, &a[..10]].concat();
        let mut codec = SipCodec::new(LIMIT);
        let (items, rest) = feed(&mut codec, &[&read]);
        assert_eq!(
            items,
            [message(&a), message(&b), message(&c), Inbound::Started]
        );
        assert_eq!(&rest[..], &a[..10]);
        // The tail's completion is the message; no second Started for it.
        let (items, rest) = {
            let mut buf = rest;
            buf.extend_from_slice(&a[10..]);
            let mut items = Vec::new();
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
            (items, buf)
        };
        assert_eq!(items, [message(&a)]);
        assert!(rest.is_empty());
    }

    #[test]
    fn crlf_keepalives_are_consumed_and_a_double_crlf_gets_a_pong() {
        let a = invite();
        let cases: &[(&[&[u8]], &[Inbound])] = &[
            (&[b"\r\n\r\n"], &[Inbound::Keepalive { pong: true }]),
            (&[b"\r\n"], &[Inbound::Keepalive { pong: false }]),
            (&[b"\n\n"], &[Inbound::Keepalive { pong: false }]),
            (&[b"\r\n\r\n\r\n\r\n"], &[Inbound::Keepalive { pong: true }]),
            // A ping split over two reads is two runs, neither a ping (as framing always had it).
            (
                &[b"\r\n", b"\r\n"],
                &[
                    Inbound::Keepalive { pong: false },
                    Inbound::Keepalive { pong: false },
                ],
            ),
        ];
        for (chunks, want) in cases {
            let (items, rest) = feed(&mut SipCodec::new(LIMIT), chunks);
            assert_eq!(&items, want, "{chunks:?}");
            assert!(rest.is_empty(), "{chunks:?}");
        }
        // Between messages, in the same read.
        let read = [b"\r\n\r\n", &a[..], b"\r\n", &a[..]].concat();
        let (items, rest) = feed(&mut SipCodec::new(LIMIT), &[&read]);
        assert_eq!(
            items,
            [
                Inbound::Keepalive { pong: true },
                message(&a),
                Inbound::Keepalive { pong: false },
                message(&a),
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn oversize_and_unframeable_input_is_an_error() {
        let head_only = [b'A'; 101];
        let cases: &[(&[u8], usize, FrameError)] = &[
            (&head_only, 100, FrameError::TooLarge { limit: 100 }),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n",
                LIMIT,
                FrameError::TooLarge { limit: LIMIT },
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1e3\r\n\r\n",
                LIMIT,
                FrameError::BadContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: \r\n\r\n",
                LIMIT,
                FrameError::BadContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n",
                LIMIT,
                FrameError::BadContentLength,
            ),
        ];
        for (bytes, limit, want) in cases {
            let mut buf = BytesMut::from(*bytes);
            match SipCodec::new(*limit).decode(&mut buf) {
                Err(CodecError::Frame(e)) => assert_eq!(&e, want, "{bytes:?}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        // Exactly at the limit is still a message; a byte over is not.
        let exact = with_body("MESSAGE sip:a@b SIP/2.0\r\n", b"abc");
        let (items, _) = feed(&mut SipCodec::new(exact.len()), &[&exact]);
        assert_eq!(items, [message(&exact)]);
        let mut buf = BytesMut::from(&exact[..]);
        assert!(matches!(
            SipCodec::new(exact.len() - 1).decode(&mut buf),
            Err(CodecError::Frame(FrameError::TooLarge { .. }))
        ));
    }

    #[test]
    fn a_message_without_content_length_has_an_empty_body() {
        let bare = b"OPTIONS sip:gw SIP/2.0\r\nCall-ID: x\r\n\r\n";
        let read = [&bare[..], b"INVITE"].concat();
        let (items, rest) = feed(&mut SipCodec::new(LIMIT), &[&read]);
        assert_eq!(items, [message(bare), Inbound::Started]);
        assert_eq!(&rest[..], b"INVITE");
    }

    #[test]
    fn an_incomplete_message_at_the_end_of_the_stream_is_dropped() {
        let a = invite();
        let mut codec = SipCodec::new(LIMIT);
        let mut buf = BytesMut::from(&[&a[..], &a[..20]].concat()[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(message(&a)));
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_buffer_a_burst_grew_is_released_once_it_is_drained() {
        let a = invite();
        let burst: Vec<u8> = std::iter::repeat_n(&a[..], 4 * READ_CHUNK / a.len() + 1)
            .flatten()
            .copied()
            .collect();
        let mut buf = BytesMut::from(&burst[..]);
        let mut codec = SipCodec::new(LIMIT);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            assert_eq!(item, message(&a));
        }
        assert!(buf.is_empty());
        assert!(
            buf.capacity() >= READ_CHUNK && buf.capacity() <= 2 * READ_CHUNK,
            "{}",
            buf.capacity()
        );
    }
}
