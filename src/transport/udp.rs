//! UDP: several sockets bound to one address with SO_REUSEPORT, each read by its own task, with
//! raised kernel buffers (a relay with default buffers drops calls at a few thousand cps).

use super::{process, Peer, Shared, Worker};
use crate::peer::Transport;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Kernel socket buffer asked for (capped by net.core.rmem_max / wmem_max).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Largest datagram accepted.
pub const MAX_DATAGRAM: usize = 65_535;

fn socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    // Best effort: the kernel caps these at rmem_max / wmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Binds `n` sockets sharing `addr` (port 0 picks one port for all).
///
/// # Errors
/// The bind or socket option error.
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    let first = socket(addr)?;
    let bound = first.local_addr()?;
    let mut socks = vec![UdpSocket::from_std(first)?];
    for _ in 1..n.max(1) {
        socks.push(UdpSocket::from_std(socket(bound)?)?);
    }
    Ok(socks)
}

/// Reads datagrams until the task is dropped. Nothing a peer sends ends this loop.
pub async fn serve(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut worker = Worker::new(&shared);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, addr) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable from an earlier send surfaces here on some systems.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let from = Peer {
            addr,
            transport: Transport::Udp,
        };
        let Some(bytes) = buf.get(..n) else { continue };
        // CRLF keep-alives (RFC 5626 §4.4.1 uses STUN on UDP; bare CRLFs are common): ignore.
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue;
        }
        process(&shared, &mut worker, bytes, from, Some(&sock)).await;
    }
}
