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

/// Datagrams taken per `recvmmsg` and sent per `sendmmsg` when `DUALGATE_UDP_BATCH` does not
/// say otherwise. A batch never waits to fill: the receive returns what is queued once one
/// datagram is in (`MSG_WAITFORONE`), and the replies go out as soon as that batch is handled.
pub const BATCH: usize = 16;

/// Datagrams per batch: `DUALGATE_UDP_BATCH` (1 to 64; 1 = one `recvfrom` and one `sendto` per
/// message, the unbatched loop) or [`BATCH`]. An environment knob for the A/B measurements in
/// bench/ (BENCHMARKS.md), not a setting to tune per deployment.
pub fn batch_size() -> usize {
    std::env::var("DUALGATE_UDP_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(BATCH, |n| n.clamp(1, 64))
}

/// What a receive loop does with the datagrams it reads.
pub trait Handler {
    /// One datagram from `from`.
    fn datagram(&mut self, bytes: &[u8], from: SocketAddr);
    /// The datagrams of one receive call are all handled: send what is pending.
    fn batch_done(&mut self);
}

/// Reads datagrams on `sock` until `stop` is set. Nothing a peer sends ends this loop.
pub fn serve(sock: UdpSocket, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    // TCP connections opened from this thread are spawned on the runtime.
    let _runtime = shared.runtime.enter();
    let batch = batch_size();
    let mut worker = Worker::new(&shared);
    worker.outbox = Outbox::new(batch);
    let mut gateway = Gateway {
        shared: &shared,
        worker,
    };
    pump(&sock, &stop, batch, &mut gateway);
}

struct Gateway<'a> {
    shared: &'a Arc<Shared>,
    worker: Worker,
}

impl Handler for Gateway<'_> {
    fn datagram(&mut self, bytes: &[u8], addr: SocketAddr) {
        // Bare CRLF keep-alives: nothing to answer on UDP.
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return;
        }
        process(
            self.shared,
            &mut self.worker,
            bytes,
            Peer {
                addr,
                transport: Transport::Udp,
            },
        );
    }

    fn batch_done(&mut self) {
        self.worker.outbox.flush(&self.shared.udp);
    }
}

/// A bare relay over the same receive loop and send batching as [`serve`], with no SIP at all:
/// each datagram goes to `route(from)` (dropped on `None`), sent from `out`. The baseline the
/// gateway's throughput is compared with (bench/loadgen).
pub fn relay(
    sock: &UdpSocket,
    out: &UdpSocket,
    stop: &AtomicBool,
    batch: usize,
    route: impl Fn(SocketAddr) -> Option<SocketAddr>,
) {
    struct Relay<'a, R> {
        out: &'a UdpSocket,
        outbox: Outbox,
        route: R,
    }
    impl<R: Fn(SocketAddr) -> Option<SocketAddr>> Handler for Relay<'_, R> {
        fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
            if let Some(to) = (self.route)(from) {
                if let Err(e) = self.outbox.send(self.out, bytes, to, "relay") {
                    tracing::debug!(to = %to, error = %e, "relay send failed");
                }
            }
        }
        fn batch_done(&mut self) {
            self.outbox.flush(self.out);
        }
    }
    let mut r = Relay {
        out,
        outbox: Outbox::new(batch),
        route,
    };
    pump(sock, stop, batch, &mut r);
}

/// The receive loop: `recvfrom` one at a time when `batch` is 1, else `recvmmsg` batches.
fn pump(sock: &UdpSocket, stop: &AtomicBool, batch: usize, h: &mut impl Handler) {
    if let Err(e) = sock.set_read_timeout(Some(STOP_POLL)) {
        tracing::warn!(error = %e, "udp worker cannot poll for stop");
    }
    if batch <= 1 {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !stop.load(Ordering::Relaxed) {
            match sock.recv_from(&mut buf) {
                Ok((n, addr)) => {
                    if let Some(bytes) = buf.get(..n) {
                        h.datagram(bytes, addr);
                    }
                    h.batch_done();
                }
                Err(e) => receive_error(&e),
            }
        }
        return;
    }
    let mut inbox = mmsg::Inbox::new(batch);
    while !stop.load(Ordering::Relaxed) {
        match inbox.recv(sock) {
            Ok(n) => {
                for i in 0..n {
                    if let Some((bytes, addr)) = inbox.get(i) {
                        h.datagram(bytes, addr);
                    }
                }
                h.batch_done();
            }
            Err(e) => receive_error(&e),
        }
    }
}

fn receive_error(e: &io::Error) {
    if !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    ) {
        // ICMP port unreachable from an earlier send surfaces here on some systems.
        tracing::debug!(error = %e, "udp receive error");
    }
}

pub use mmsg::Inbox;

/// Datagrams waiting to be sent by one worker, flushed with one `sendmmsg` at the end of each
/// receive batch (or when full). With a batch of 1 every send is a direct `sendto`.
pub struct Outbox {
    cap: usize,
    /// Payloads, each followed by the queue label it is counted under on failure.
    data: Vec<u8>,
    items: Vec<Pending>,
}

struct Pending {
    at: usize,
    len: usize,
    queue_len: usize,
    to: SocketAddr,
}

impl Outbox {
    /// An outbox holding up to `cap` datagrams.
    pub fn new(cap: usize) -> Outbox {
        Outbox {
            cap: cap.max(1),
            data: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Sends `bytes` to `to` from `sock`, now (batch of 1) or at the next flush. `queue` is the
    /// label a failed send is counted under.
    ///
    /// # Errors
    /// The `sendto` error, for direct sends only; batched failures are counted at the flush.
    pub fn send(
        &mut self,
        sock: &UdpSocket,
        bytes: &[u8],
        to: SocketAddr,
        queue: &str,
    ) -> io::Result<()> {
        if self.cap <= 1 {
            return super::send_udp(sock, bytes, to).map(|_| ());
        }
        let at = self.data.len();
        self.data.extend_from_slice(bytes);
        self.data.extend_from_slice(queue.as_bytes());
        self.items.push(Pending {
            at,
            len: bytes.len(),
            queue_len: queue.len(),
            to,
        });
        if self.items.len() >= self.cap {
            self.flush(sock);
        }
        Ok(())
    }

    /// Sends everything pending; a datagram the kernel refuses is logged and counted.
    pub fn flush(&mut self, sock: &UdpSocket) {
        if self.items.is_empty() {
            return;
        }
        let mut from = 0;
        while from < self.items.len() {
            match mmsg::send(sock, &self.data, self.items.get(from..).unwrap_or_default()) {
                Ok(0) => from += 1,
                Ok(n) => from += n,
                Err(e) => {
                    if let Some(p) = self.items.get(from) {
                        let q = self
                            .data
                            .get(p.at + p.len..p.at + p.len + p.queue_len)
                            .and_then(|q| std::str::from_utf8(q).ok())
                            .unwrap_or("none");
                        tracing::debug!(to = %p.to, error = %e, "send failed");
                        crate::metrics::record_backend_error(q, "send");
                    }
                    from += 1;
                }
            }
        }
        self.items.clear();
        self.data.clear();
        // A burst of large datagrams must not pin its memory for good.
        if self.data.capacity() > 1 << 20 {
            self.data = Vec::new();
        }
    }
}

/// `recvmmsg`/`sendmmsg` (Linux), the only `unsafe` in the crate: libc calls over buffers this
/// module owns and keeps alive for the duration of each call.
#[allow(unsafe_code)]
mod mmsg {
    use super::{Pending, MAX_DATAGRAM};
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;

    /// Receive buffers for one `recvmmsg` batch (also used by bench/loadgen).
    pub struct Inbox {
        bufs: Vec<u8>,
        addrs: Vec<libc::sockaddr_storage>,
        lens: Vec<usize>,
        iovs: Vec<libc::iovec>,
        hdrs: Vec<libc::mmsghdr>,
    }

    impl Inbox {
        /// Buffers for up to `batch` datagrams of up to [`MAX_DATAGRAM`] bytes each.
        pub fn new(batch: usize) -> Inbox {
            Inbox {
                bufs: vec![0u8; batch.max(1) * MAX_DATAGRAM],
                // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
                addrs: vec![unsafe { zeroed() }; batch.max(1)],
                lens: vec![0; batch.max(1)],
                iovs: Vec::with_capacity(batch),
                hdrs: Vec::with_capacity(batch),
            }
        }

        /// Waits for at least one datagram (on a blocking socket) and takes up to a batch;
        /// their count.
        ///
        /// # Errors
        /// The `recvmmsg` error (`WouldBlock` on a non-blocking socket with nothing queued).
        pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
            let batch = self.lens.len();
            self.iovs.clear();
            self.hdrs.clear();
            for (chunk, addr) in self
                .bufs
                .chunks_mut(MAX_DATAGRAM)
                .zip(self.addrs.iter_mut())
            {
                self.iovs.push(libc::iovec {
                    iov_base: chunk.as_mut_ptr().cast(),
                    iov_len: chunk.len(),
                });
                // SAFETY: mmsghdr is plain data; all zeroes is a valid (empty) value.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                self.hdrs.push(h);
            }
            for (h, iov) in self.hdrs.iter_mut().zip(self.iovs.iter_mut()) {
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every header points at a live iovec over a disjoint MAX_DATAGRAM slice
            // of `bufs` and at a live sockaddr_storage with its true size; all outlive the
            // call, and `vlen` is the number of headers.
            let n = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    batch as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = usize::try_from(n).unwrap_or(0).min(batch);
            for (len, h) in self.lens.iter_mut().zip(&self.hdrs).take(n) {
                *len = h.msg_len as usize;
            }
            Ok(n)
        }

        /// Datagram `i` of the last batch and its source (`None` for a non-IP source).
        pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
            let len = (*self.lens.get(i)?).min(MAX_DATAGRAM);
            let bytes = self.bufs.get(i * MAX_DATAGRAM..i * MAX_DATAGRAM + len)?;
            Some((bytes, from_storage(self.addrs.get(i)?)?))
        }
    }

    fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(s.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET; storage is large and
                // aligned enough for it.
                let a: &libc::sockaddr_in =
                    unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(a.sin_addr.s_addr).into(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for AF_INET6 and sockaddr_in6.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    u32::from_be(a.sin6_flowinfo),
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn to_storage(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
        let mut s: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match a {
            SocketAddr::V4(a) => {
                // SAFETY: storage is large and aligned enough for a sockaddr_in.
                let sin = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: storage is large and aligned enough for a sockaddr_in6.
                let sin6 = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo().to_be();
                sin6.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>()
            }
        };
        (s, len as libc::socklen_t)
    }

    /// Sends `items` (payloads in `data`) with one `sendmmsg`; how many the kernel took.
    pub fn send(sock: &UdpSocket, data: &[u8], items: &[Pending]) -> io::Result<usize> {
        let n = items.len().min(64);
        let mut addrs = [(unsafe_zeroed_storage(), 0); 64];
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 64];
        // SAFETY: mmsghdr is plain data; all zeroes is a valid (empty) value.
        let mut hdrs: [libc::mmsghdr; 64] = unsafe { zeroed() };
        for (i, p) in items.iter().take(n).enumerate() {
            let Some(bytes) = data.get(p.at..p.at + p.len) else {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            };
            addrs[i] = to_storage(p.to);
            iovs[i] = libc::iovec {
                // sendmmsg does not write through iov_base.
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
        }
        for i in 0..n {
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i].0 as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = addrs[i].1;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers point at live addresses of their true length and at
        // iovecs over `data`, all of which outlive the call.
        let r =
            unsafe { libc::sendmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(r).unwrap_or(0))
    }

    fn unsafe_zeroed_storage() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
        unsafe { zeroed() }
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
