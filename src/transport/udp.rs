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

/// Datagrams the kernel dropped on UDP sockets bound to `port` (its receive buffer was full),
/// read from `/proc/net/udp` and `/proc/net/udp6`; `None` where those files do not exist.
pub fn kernel_drops(port: u16) -> Option<u64> {
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            total = Some(total.unwrap_or(0) + drops_in(&text, port));
        }
    }
    total
}

/// Sum of the `drops` column of the sockets bound to `port` in a `/proc/net/udp{,6}` table.
fn drops_in(table: &str, port: u16) -> u64 {
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1)?;
            let drops = cols.last()?;
            local
                .ends_with(&want)
                .then(|| drops.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  52: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41720 2 0000000000000000 17
  53: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41721 2 0000000000000000 3
  60: 0100007F:13C5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41722 2 0000000000000000 99
";

    #[test]
    fn drops_are_summed_over_the_sockets_on_the_port_only() {
        assert_eq!(drops_in(TABLE, 5060), 20);
        assert_eq!(drops_in(TABLE, 5061), 99);
        assert_eq!(drops_in(TABLE, 5070), 0);
        assert_eq!(drops_in("", 5060), 0);
    }

    #[test]
    fn this_machine_reports_drops_for_a_bound_socket() {
        let s = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = s.local_addr().unwrap().port();
        assert_eq!(kernel_drops(port), Some(0));
    }
}
