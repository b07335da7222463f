//! The socket edge: UDP workers and TCP connections receive bytes, hand them to
//! [`proxy::handle`](crate::proxy::handle) with the current snapshot and the time, send what it
//! returns, and count it. No routing decision is made here.

pub mod tcp;
pub mod udp;

use crate::clock::{Clock, Stopwatch};
use crate::config::Snapshot;
use crate::peer::{Peer, Transport};
use crate::proxy;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// What every receiving task shares: the config, the clock and the ways out.
pub struct Shared {
    /// The current snapshot; replaced whole on reload.
    pub config: watch::Receiver<Arc<Snapshot>>,
    /// Source of `now`.
    pub clock: Arc<dyn Clock>,
    /// Socket for UDP sends (a listener's, or an ephemeral one when UDP is not served).
    pub udp: Arc<UdpSocket>,
    /// Open TCP connections, inbound and outbound.
    pub tcp: tcp::Pool,
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
    recorder: crate::metrics::Recorder,
    out: Vec<u8>,
}

impl Worker {
    /// A worker reading the snapshots of `shared`.
    pub fn new(shared: &Shared) -> Worker {
        Worker {
            cache: SnapshotCache::new(&shared.config),
            recorder: crate::metrics::Recorder::default(),
            out: Vec::with_capacity(4096),
        }
    }
}

/// Handles one message and sends its outcome; `reply_udp` is the socket it arrived on, if UDP.
pub async fn process(
    shared: &Arc<Shared>,
    worker: &mut Worker,
    bytes: &[u8],
    from: Peer,
    reply_udp: Option<&UdpSocket>,
) {
    let watch = Stopwatch::start();
    let now = shared.clock.now();
    let snap = worker.cache.get().clone();
    let out = &mut worker.out;
    let outcome = proxy::handle(bytes, from, &snap, now, out);
    if let Some(to) = outcome.send {
        let sent = match to.transport {
            Transport::Udp => {
                let sock = reply_udp.unwrap_or(&shared.udp);
                sock.send_to(out.as_slice(), to.addr).await.map(|_| ())
            }
            Transport::Tcp => shared
                .tcp
                .send(shared, to.addr, out.clone(), outcome.label.queue),
        };
        if let Err(e) = sent {
            tracing::debug!(to = %to, error = %e, "send failed");
            crate::metrics::record_backend_error(outcome.label.queue, "send");
        }
    }
    worker
        .recorder
        .record(Arc::as_ptr(&snap), &outcome.label, now, watch.elapsed());
    tracing::trace!(from = %from, act = outcome.label.act.as_str(), number = outcome.label.number, "handled");
}
