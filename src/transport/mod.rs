//! The socket edge: UDP worker threads and TCP connection tasks receive bytes, hand them to
//! [`proxy::handle`] with the current snapshot and the time, send what it
//! returns, and count it. No routing decision is made here.
//!
//! UDP is served by plain OS threads, each blocking on its own socket of one `SO_REUSEPORT`
//! group (like Kamailio's children, with no reactor wake-up in between): a worker takes what is
//! queued with one `recvmmsg`, handles it, and sends the replies with one `sendmmsg`
//! ([`udp::Outbox`]). TCP runs on tokio.

pub mod codec;
pub mod probe;
pub mod tcp;
pub mod udp;

use crate::clock::{Clock, Stopwatch};
use crate::config::Snapshot;
use crate::health::Down;
use crate::limit::Limiter;
use crate::peer::{Peer, Transport};
use crate::proxy::{self, Conditions, Event};
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What every receiving task shares: the config, the clock and the ways out.
pub struct Shared {
    /// The current snapshot; replaced whole on reload.
    pub config: watch::Receiver<Arc<Snapshot>>,
    /// Source of `now`.
    pub clock: Arc<dyn Clock>,
    /// Socket for UDP sends (the listener, or an ephemeral one when UDP is not served);
    /// blocking: a UDP send only waits when the kernel buffer is full.
    pub udp: UdpSocket,
    /// Open TCP connections, inbound and outbound.
    pub tcp: tcp::Pool,
    /// The runtime TCP connections are spawned on (also from UDP worker threads).
    pub runtime: tokio::runtime::Handle,
    /// Backends marked down by the prober; replaced whole when one changes state.
    pub health: watch::Receiver<Arc<Down>>,
    /// Responses to the prober's OPTIONS, handed to it.
    pub probe_replies: mpsc::Sender<probe::Reply>,
    /// Rate limits for new calls, shared by every worker.
    pub limiter: Limiter,
    /// Set while the gateway falls behind (see [`udp::Backlog`]): new calls are refused.
    pub shedding: AtomicBool,
    /// Monotonic time base for the rate limiter.
    pub started: Stopwatch,
}

/// A receiving task's view of the down-set: re-read only when the prober changed it.
pub struct DownCache {
    rx: watch::Receiver<Arc<Down>>,
    current: Arc<Down>,
}

impl DownCache {
    /// Starts from the current set.
    pub fn new(rx: &watch::Receiver<Arc<Down>>) -> DownCache {
        let mut rx = rx.clone();
        let current = rx.borrow_and_update().clone();
        DownCache { rx, current }
    }

    /// The set to handle the next message with.
    pub fn get(&mut self) -> &Arc<Down> {
        if self.rx.has_changed().unwrap_or(false) {
            self.current = self.rx.borrow_and_update().clone();
        }
        &self.current
    }
}

/// The process's file-descriptor soft limit (`u64::MAX` when unlimited or unreadable).
pub fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Raises the file-descriptor soft limit to the hard limit, so that the connection budgets are
/// not those of the common default of 1 024; returns the soft limit in force afterwards.
///
/// # Errors
/// The `setrlimit` error; the old limit stays in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        setrlimit(Resource::Nofile, l).map_err(io::Error::from)?;
    }
    Ok(open_files_limit())
}

/// A receiving task's view of the snapshot: re-read only when a reload happened.
pub struct SnapshotCache {
    rx: watch::Receiver<Arc<Snapshot>>,
    current: Arc<Snapshot>,
}

impl SnapshotCache {
    /// Starts from the current snapshot.
    pub fn new(rx: &watch::Receiver<Arc<Snapshot>>) -> SnapshotCache {
        let mut rx = rx.clone();
        let current = rx.borrow_and_update().clone();
        SnapshotCache { rx, current }
    }

    /// The snapshot to handle the next message with.
    pub fn get(&mut self) -> &Arc<Snapshot> {
        if self.rx.has_changed().unwrap_or(false) {
            self.current = self.rx.borrow_and_update().clone();
        }
        &self.current
    }
}

/// What one receiving task keeps between messages: the snapshot it uses, its metric handles and
/// its output buffer.
pub struct Worker {
    cache: SnapshotCache,
    down: DownCache,
    recorder: crate::metrics::Recorder,
    out: Vec<u8>,
    /// UDP sends: direct (TCP tasks, and a batch of 1) or held until the receive batch is done.
    pub outbox: udp::Outbox,
}

impl Worker {
    /// A worker reading the snapshots of `shared`.
    pub fn new(shared: &Shared) -> Worker {
        Worker {
            cache: SnapshotCache::new(&shared.config),
            down: DownCache::new(&shared.health),
            recorder: crate::metrics::Recorder::default(),
            out: Vec::with_capacity(4096),
            outbox: udp::Outbox::new(1),
        }
    }
}

/// The socket for UDP sends when SIP over UDP is not served: dual-stack IPv6, so IPv4 and IPv6
/// backends are both reachable (IPv4 ones as mapped addresses, see [`send_udp`]); plain IPv4
/// where the host has no IPv6.
///
/// # Errors
/// The bind error of the IPv4 fallback.
pub fn udp_sender() -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let dual = || -> io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(false)?;
        s.bind(&std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)).into())?;
        Ok(s.into())
    };
    dual().or_else(|_| UdpSocket::bind(std::net::SocketAddr::from(([0, 0, 0, 0], 0))))
}

/// Sends a datagram on `sock`; an IPv4 peer that an IPv6 socket cannot address directly is
/// retried as its IPv4-mapped address (no cost on the usual path).
///
/// # Errors
/// The send error.
pub fn send_udp(sock: &UdpSocket, bytes: &[u8], to: std::net::SocketAddr) -> io::Result<usize> {
    match sock.send_to(bytes, to) {
        Err(e) if to.is_ipv4() => {
            let mapped = std::net::SocketAddr::new(
                match to.ip() {
                    std::net::IpAddr::V4(v4) => std::net::IpAddr::V6(v4.to_ipv6_mapped()),
                    v6 => v6,
                },
                to.port(),
            );
            sock.send_to(bytes, mapped).map_err(|_| e)
        }
        other => other,
    }
}

/// Handles one message and sends its outcome. Synchronous: UDP sends are direct, TCP sends are
/// queued to the connection's writer task.
pub fn process(shared: &Arc<Shared>, worker: &mut Worker, bytes: &[u8], from: Peer) {
    let watch = Stopwatch::start();
    let now = shared.clock.now();
    let snap = worker.cache.get().clone();
    let down = worker.down.get().clone();
    let out = &mut worker.out;
    let admit = |i: usize, t: &crate::config::Trunk, ip| {
        let ns = u64::try_from(shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared.limiter.admit(i, ip, &t.limits, ns)
    };
    let cond = Conditions {
        down: &down,
        shedding: snap.overload.shed && shared.shedding.load(Ordering::Relaxed),
        admit: &admit,
    };
    // Defence in depth: a bug in the core must cost one message, never a worker. The fuzz and
    // property tests (tests/parse_no_panic.rs, fuzz/) are what keep this from ever firing.
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        proxy::handle_with(bytes, from, &snap, &cond, now, out)
    }));
    let Ok(proxy::Handled { outcome, event }) = handled else {
        tracing::error!(from = %from, bytes = bytes.len(), "message handling panicked; dropped");
        crate::metrics::record_internal_error();
        return;
    };
    // Counted before sending, so a peer that reads the answer and then scrapes /metrics sees
    // the message counted.
    worker.recorder.record(&snap, &outcome.label, now);
    if let Some(e) = event {
        on_event(shared, e, from);
    }
    if let Some(to) = outcome.send {
        let sent = match to.transport {
            Transport::Udp => worker.outbox.send(
                &shared.udp,
                out,
                to.addr,
                snap.queue_label(outcome.label.queue),
            ),
            Transport::Tcp => shared.tcp.send(
                shared,
                to.addr,
                outcome.reconnect,
                out.clone(),
                snap.queue_label(outcome.label.queue),
            ),
        };
        if let Err(e) = sent {
            tracing::debug!(to = %to, error = %e, "send failed");
            crate::metrics::record_backend_error(snap.queue_label(outcome.label.queue), "send");
        }
    }
    worker.recorder.record_duration(watch.elapsed());
    tracing::trace!(from = %from, act = outcome.label.act.as_str(), number = snap.mappings.number_text(outcome.label.number), "handled");
}

/// Counts (and for probe replies, delivers) what a message did besides its labels.
fn on_event(shared: &Shared, e: Event<'_>, from: Peer) {
    match e {
        Event::ProbeReply { id, status } => {
            // A full queue means the prober is far behind; a missed reply only delays a change.
            let _ = shared
                .probe_replies
                .try_send(probe::Reply { id, status, from });
        }
        Event::Backend503 { queue } => crate::metrics::record_backend_503(queue),
        Event::Overflow { from, to, why } => crate::metrics::record_overflow(from, to, why),
        Event::Nowhere { queue, why } => {
            crate::metrics::record_nowhere(queue, why);
            tracing::debug!(queue, why = why.as_str(), "no queue can take the call");
        }
        Event::Limited { trunk, by } => crate::metrics::record_limited(trunk, by.as_str()),
        Event::Shed { trunk } => crate::metrics::record_limited(trunk, "shed"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// With SIP over UDP off, the sending socket still reaches IPv4 and IPv6 backends (it was
    /// bound to 0.0.0.0:0, so an IPv6 backend could never be sent to).
    #[test]
    fn the_sender_reaches_ipv4_and_ipv6_peers() {
        let sender = udp_sender().unwrap();
        for peer in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(rx) = UdpSocket::bind(peer) else {
                assert!(peer.starts_with('['), "IPv4 loopback must be there");
                continue; // a host without IPv6 loopback
            };
            rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            send_udp(&sender, b"ping", rx.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 8];
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ping", "{peer}");
        }
    }
}
