//! TCP stream framing by Content-Length (RFC 3261 §18.3). No I/O here.

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
    TooLarge { limit: usize },
}

/// Finds the first frame in `buf`: `Ok(None)` until all Content-Length bytes are in.
///
/// # Errors
/// [`FrameError`] when the stream cannot be framed.
pub fn frame(buf: &[u8], limit: usize) -> Result<Option<Frame>, FrameError> {
    todo!("{buf:?} {limit}")
}
