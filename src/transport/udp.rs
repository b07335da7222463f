//! UDP: one socket with raised kernel buffers (a relay with default buffers drops calls at a few
//! thousand cps), read by one blocking OS thread per core.

use super::{process, Peer, Shared, Worker};
use crate::peer::Transport;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Kernel socket buffer asked for (capped by net.core.rmem_max / wmem_max).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Largest datagram accepted.
pub const MAX_DATAGRAM: usize = 65_535;
/// How often an idle worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Binds the UDP listener.
///
/// # Errors
/// The bind or socket option error.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // Best effort: the kernel caps these at rmem_max / wmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Reads datagrams on `sock` until `stop` is set. Nothing a peer sends ends this loop.
pub fn serve(sock: UdpSocket, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    // TCP connections opened from this thread are spawned on the runtime.
    let _runtime = shared.runtime.enter();
    if let Err(e) = sock.set_read_timeout(Some(STOP_POLL)) {
        tracing::warn!(error = %e, "udp worker cannot poll for stop");
    }
    let mut worker = Worker::new(&shared);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        let (n, addr) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                // ICMP port unreachable from an earlier send surfaces here on some systems.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let Some(bytes) = buf.get(..n) else { continue };
        // Bare CRLF keep-alives: nothing to answer on UDP.
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue;
        }
        process(
            &shared,
            &mut worker,
            bytes,
            Peer {
                addr,
                transport: Transport::Udp,
            },
        );
    }
}
