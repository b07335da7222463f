//! UDP: one socket per worker thread, all bound to the listen address with `SO_REUSEPORT`, with
//! raised kernel buffers (a relay with default buffers drops calls at a few thousand cps). The
//! kernel hashes each flow (source and destination address and port) to one socket, so a
//! caller's back-to-back datagrams (an ACK and the BYE right behind it) are read by one thread
//! in order; workers sharing one socket reordered them. Also the backlog watch that tells the
//! workers to shed new calls before the kernel drops datagrams.

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
    // Every worker's socket joins the same reuseport group (same user only, Linux).
    s.set_reuse_port(true)?;
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

/// The kernel's view of the sockets bound to `port`: the fullest receive queue (bytes) and the
/// datagrams dropped so far, from `/proc/net/udp{,6}`; `None` where those files do not exist.
pub fn backlog(port: u16) -> Option<(u64, u64)> {
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            let (q, d) = total.unwrap_or((0, 0));
            let (q2, d2) = backlog_in(&text, port);
            total = Some((q.max(q2), d + d2));
        }
    }
    total
}

/// The largest `rx_queue` and the summed `drops` of the sockets bound to `port` in a table.
fn backlog_in(table: &str, port: u16) -> (u64, u64) {
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if !cols.get(1)?.ends_with(&want) {
                return None;
            }
            let rx = cols.get(4)?.split_once(':')?.1;
            let rx = u64::from_str_radix(rx, 16).ok()?;
            let drops = cols.last()?.parse::<u64>().ok()?;
            Some((rx, drops))
        })
        .fold((0, 0), |(q, d), (q2, d2)| (q.max(q2), d + d2))
}

/// Whether the gateway is falling behind, judged from successive kernel samples: shed new calls
/// while any worker's receive queue is over half full or the drop counter rose, and for `hold`
/// samples after the last such sample (so shedding does not flap at every sample). Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Receive-queue bytes above which a socket is falling behind.
    pub limit: u64,
    /// Samples to keep shedding after the last bad one.
    pub hold: u32,
    drops: Option<u64>,
    left: u32,
}

impl Backlog {
    /// A judge for sockets with `rcvbuf` bytes of receive buffer.
    pub fn new(rcvbuf: u64, hold: u32) -> Backlog {
        Backlog {
            limit: (rcvbuf / 2).max(64 * 1024),
            hold,
            drops: None,
            left: 0,
        }
    }

    /// Takes one sample (largest receive queue, total drops); true while shedding.
    pub fn sample(&mut self, queue: u64, drops: u64) -> bool {
        let rose = self.drops.is_some_and(|d| drops > d);
        self.drops = Some(drops);
        if rose || queue > self.limit {
            self.left = self.hold;
            return true;
        }
        if self.left > 0 {
            self.left -= 1;
            return true;
        }
        false
    }
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
    fn the_fullest_queue_and_the_total_drops_are_read_per_port() {
        let table = TABLE.replace(
            "00000000:00000000 00:00000000 00000000     0        0 41721",
            "00000000:00001000 00:00000000 00000000     0        0 41721",
        );
        assert_eq!(backlog_in(&table, 5060), (4096, 20));
        assert_eq!(backlog_in(&table, 5061), (0, 99));
        assert_eq!(backlog_in("", 5060), (0, 0));
    }

    #[test]
    fn shedding_starts_on_a_full_queue_or_new_drops_and_holds_a_while() {
        let mut b = Backlog::new(4 << 20, 2);
        let samples = [
            ((0, 7), false), // the first sample only learns the drop count
            ((0, 7), false),
            ((3 << 20, 7), true), // over half the buffer
            ((0, 7), true),       // held
            ((0, 7), true),
            ((0, 7), false),
            ((0, 9), true), // the kernel dropped datagrams
            ((0, 9), true),
        ];
        for (i, ((q, d), want)) in samples.into_iter().enumerate() {
            assert_eq!(b.sample(q, d), want, "sample {i}");
        }
    }

    #[test]
    fn sockets_of_one_port_share_it_with_reuseport() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
    }

    #[test]
    fn this_machine_reports_drops_for_a_bound_socket() {
        let s = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = s.local_addr().unwrap().port();
        assert_eq!(kernel_drops(port), Some(0));
    }
}
