//! TCP: accepted and outgoing connections, framed by Content-Length ([`super::codec`]). Each connection has a reader
//! task and a writer task; the pool maps a remote address to its writer so that responses go back
//! on the connection the request came in on (RFC 3261 §18.2.2) and requests to a backend reuse
//! one connection.
//!
//! Strangers cannot exhaust it: the source is checked at accept (a peer in no trunk and no
//! backend is closed at once, before any buffer or slot is spent on it, unless the gateway is
//! configured to answer strangers, and then only within their own small budget); trunk,
//! stranger and outbound connections have separate budgets derived from the file-descriptor
//! limit, and one address a cap of its own; a started message must be complete within a
//! deadline however slowly its bytes trickle in; and what waits to be written to one connection
//! is bounded in bytes, so a peer that stops reading is cut off instead of growing memory.

use super::codec::{CodecError, Inbound, SipCodec, READ_CHUNK};
use super::{process, Peer, Shared, SnapshotCache, Worker};
use crate::config::TcpLimits;
use crate::peer::Transport;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::codec::{BytesCodec, FramedRead, FramedWrite};

/// Largest message accepted on a stream.
pub const MAX_MESSAGE: usize = 65_535;
/// File descriptors kept back from the connection budgets: listeners, the metrics server and
/// its scrapes, the runtime's own descriptors, mapping and /proc reads.
pub const RESERVED_FDS: u64 = 128;
/// Most connections of all classes together, however high the descriptor limit: each costs
/// two tasks and a few kilobytes even when idle.
pub const MAX_CONNECTIONS: usize = 16_384;
/// Connections one stranger address may hold when strangers are answered at all.
pub const STRANGER_PER_SOURCE: usize = 4;
/// What a queued message costs beyond its bytes (its vector and channel slot), so that a flood
/// of tiny messages is bounded too.
const MESSAGE_OVERHEAD: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection that sends nothing (not even a CRLF keep-alive) for this long is closed, so
/// half-open connections from vanished peers do not pile up. Peers reconnect on demand.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Which budget a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Accepted from a trunk or backend address.
    Trunk,
    /// Accepted from an address in no trunk (only when strangers are answered).
    Stranger,
    /// Opened by the gateway: to a backend, or back to a caller whose connection closed.
    Outbound,
}

impl Class {
    /// Every class, for pre-registering metric series.
    pub const ALL: [Class; 3] = [Class::Trunk, Class::Stranger, Class::Outbound];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Trunk => "trunk",
            Class::Stranger => "stranger",
            Class::Outbound => "outbound",
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Trunk => 0,
            Class::Stranger => 1,
            Class::Outbound => 2,
        }
    }
}

/// Why a connection was refused or closed by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Refused at accept: the source is in no trunk and no backend.
    UnknownSource,
    /// Refused: its class's budget is full.
    Budget(Class),
    /// Refused: its address holds as many connections as one address may.
    PerSource,
    /// Closed: a message was started and not completed within the deadline (slowloris).
    MessageDeadline,
    /// Closed: more bytes waited to be written to it than its output budget (it stopped reading).
    OutputBudget,
    /// Closed: nothing received for the idle timeout.
    Idle,
    /// Closed: bytes that cannot be framed as SIP.
    Unframeable,
}

impl Cut {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Cut; 9] = [
        Cut::UnknownSource,
        Cut::Budget(Class::Trunk),
        Cut::Budget(Class::Stranger),
        Cut::Budget(Class::Outbound),
        Cut::PerSource,
        Cut::MessageDeadline,
        Cut::OutputBudget,
        Cut::Idle,
        Cut::Unframeable,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::UnknownSource => "unknown_source",
            Cut::Budget(Class::Trunk) => "trunk_budget",
            Cut::Budget(Class::Stranger) => "stranger_budget",
            Cut::Budget(Class::Outbound) => "outbound_budget",
            Cut::PerSource => "per_source",
            Cut::MessageDeadline => "message_deadline",
            Cut::OutputBudget => "output_budget",
            Cut::Idle => "idle",
            Cut::Unframeable => "unframeable",
        }
    }

    /// Whether the connection was refused before it cost anything (else it was closed).
    pub fn at_accept(self) -> bool {
        matches!(self, Cut::UnknownSource | Cut::Budget(_) | Cut::PerSource)
    }
}

/// How many connections of each class the gateway holds at most, and per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Accepted from trunk and backend addresses.
    pub trunk: usize,
    /// Accepted from strangers (0 unless strangers are answered).
    pub stranger: usize,
    /// Opened by the gateway.
    pub outbound: usize,
    /// Held by one trunk or backend address.
    pub per_source: usize,
    /// Held by one stranger address.
    pub per_stranger: usize,
}

impl Budgets {
    /// Budgets for a process allowed `nofile` descriptors: [`RESERVED_FDS`] kept back, at most
    /// [`MAX_CONNECTIONS`] in all, an eighth for outbound connections, a sixteenth for strangers
    /// when they are answered, the rest for trunks; one address may hold a quarter of the trunk
    /// budget unless `max_per_source` says otherwise.
    pub fn from_nofile(nofile: u64, strangers: bool, max_per_source: Option<usize>) -> Budgets {
        let usable = usize::try_from(nofile.saturating_sub(RESERVED_FDS))
            .unwrap_or(usize::MAX)
            .clamp(16, MAX_CONNECTIONS);
        let outbound = (usable / 8).max(4);
        let stranger = if strangers { usable / 16 } else { 0 };
        let trunk = usable.saturating_sub(outbound + stranger).max(4);
        Budgets {
            trunk,
            stranger,
            outbound,
            per_source: max_per_source.unwrap_or(trunk / 4).clamp(1, trunk),
            per_stranger: STRANGER_PER_SOURCE.min(stranger),
        }
    }

    fn of(&self, class: Class) -> usize {
        match class {
            Class::Trunk => self.trunk,
            Class::Stranger => self.stranger,
            Class::Outbound => self.outbound,
        }
    }
}

/// The way to one connection's writer: an unbounded channel whose contents are bounded in bytes
/// by `queued`, and the signal that cuts the connection when that bound is hit.
#[derive(Clone)]
struct Handle {
    id: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    cut: Arc<Notify>,
}

enum Push {
    /// The output budget is full: the connection is being cut.
    Full,
    /// The connection is gone.
    Closed(Vec<u8>),
}

impl Handle {
    fn push(&self, bytes: Vec<u8>, budget: usize) -> Result<(), Push> {
        let cost = bytes.len() + MESSAGE_OVERHEAD;
        let before = self.queued.fetch_add(cost, Ordering::Relaxed);
        if before + cost > budget {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            self.cut.notify_one();
            return Err(Push::Full);
        }
        self.tx.send(bytes).map_err(|e| {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            Push::Closed(e.0)
        })
    }
}

#[derive(Default)]
struct State {
    conns: HashMap<SocketAddr, Handle>,
    open: [usize; 3],
    per_ip: HashMap<IpAddr, usize>,
}

/// Open connections by remote address, and what each class may still open.
pub struct Pool {
    budgets: Budgets,
    limits: TcpLimits,
    next_id: AtomicU64,
    state: Mutex<State>,
}

/// What a connection admitted to the pool runs with: the way in for senders, its writer's
/// queue, the signal that cuts it, and its place.
type Admitted = (Handle, mpsc::UnboundedReceiver<Vec<u8>>, Arc<Notify>, Slot);

/// A connection's place in the pool; dropping it frees the place.
struct Slot {
    shared: Arc<Shared>,
    addr: SocketAddr,
    class: Class,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.tcp.release(self.addr, self.class, self.id);
    }
}

impl Pool {
    /// An empty pool with these budgets and limits.
    pub fn new(budgets: Budgets, limits: TcpLimits) -> Pool {
        Pool {
            budgets,
            limits,
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        }
    }

    fn sender(&self, addr: SocketAddr) -> Option<Handle> {
        self.state.lock().ok()?.conns.get(&addr).cloned()
    }

    /// Takes a place for a connection with `addr` in `class`, or says why there is none.
    fn admit(&self, shared: &Arc<Shared>, addr: SocketAddr, class: Class) -> Result<Admitted, Cut> {
        let Ok(mut st) = self.state.lock() else {
            return Err(Cut::Budget(class));
        };
        if st.open[class.index()] >= self.budgets.of(class) {
            return Err(Cut::Budget(class));
        }
        let per_source = match class {
            Class::Trunk => Some(self.budgets.per_source),
            Class::Stranger => Some(self.budgets.per_stranger),
            Class::Outbound => None,
        };
        if let Some(cap) = per_source {
            if st.per_ip.get(&addr.ip()).copied().unwrap_or(0) >= cap {
                return Err(Cut::PerSource);
            }
            *st.per_ip.entry(addr.ip()).or_insert(0) += 1;
        }
        st.open[class.index()] += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let cut = Arc::new(Notify::new());
        let handle = Handle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            cut: cut.clone(),
        };
        st.conns.insert(addr, handle.clone());
        let open = st.open[class.index()];
        drop(st);
        crate::metrics::record_tcp_open(class, open);
        let slot = Slot {
            shared: shared.clone(),
            addr,
            class,
            id: handle.id,
        };
        Ok((handle, rx, cut, slot))
    }

    fn release(&self, addr: SocketAddr, class: Class, id: u64) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.conns.get(&addr).is_some_and(|h| h.id == id) {
            st.conns.remove(&addr);
        }
        st.open[class.index()] = st.open[class.index()].saturating_sub(1);
        if class != Class::Outbound {
            if let Some(n) = st.per_ip.get_mut(&addr.ip()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.per_ip.remove(&addr.ip());
                }
            }
        }
        let open = st.open[class.index()];
        drop(st);
        crate::metrics::record_tcp_open(class, open);
    }

    /// Queues `bytes` for `addr`, on its open connection or else on a new one to `reconnect`
    /// (when given) or `addr`. Only addresses the gateway recorded reach here: configured
    /// backends, in-dialog next hops of trusted peers, and response hops its branch MAC vouches
    /// for.
    ///
    /// # Errors
    /// `WouldBlock` when the connection's output budget is full (it is cut off), `Other` when
    /// no new connection may be opened.
    pub fn send(
        &self,
        shared: &Arc<Shared>,
        addr: SocketAddr,
        reconnect: Option<SocketAddr>,
        bytes: Vec<u8>,
        queue: &str,
    ) -> io::Result<()> {
        let budget = self.limits.output_budget;
        let bytes = match self.sender(addr) {
            Some(h) => match h.push(bytes, budget) {
                Ok(()) => return Ok(()),
                Err(Push::Full) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(Push::Closed(b)) => b,
            },
            None => bytes,
        };
        let target = reconnect.unwrap_or(addr);
        match self.sender(target) {
            // A connection to the fallback address may already be open.
            Some(h) if target != addr => h
                .push(bytes, budget)
                .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock)),
            _ => self.connect(shared, target, bytes, queue),
        }
    }

    fn connect(
        &self,
        shared: &Arc<Shared>,
        addr: SocketAddr,
        first: Vec<u8>,
        queue: &str,
    ) -> io::Result<()> {
        let (handle, rx, cut, slot) = match self.admit(shared, addr, Class::Outbound) {
            Ok(x) => x,
            Err(why) => {
                crate::metrics::record_tcp_cut(why);
                return Err(io::Error::other("too many connections"));
            }
        };
        if handle.push(first, self.limits.output_budget).is_err() {
            return Err(io::Error::other("message larger than the output budget"));
        }
        let shared = shared.clone();
        let queue = queue.to_string();
        shared.clone().runtime.spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => run(stream, addr, shared, handle, rx, cut, slot).await,
                Ok(Err(e)) => fail(addr, &queue, &e.to_string()),
                Err(_) => fail(addr, &queue, "timed out"),
            }
        });
        Ok(())
    }
}

fn fail(addr: SocketAddr, queue: &str, error: &str) {
    tracing::warn!(to = %addr, error, "tcp connect failed");
    crate::metrics::record_backend_error(queue, "connect");
}

/// Accepts connections until the task is dropped. A stranger's connection is closed at once
/// (with a reset, so not even a TIME_WAIT stays behind) unless strangers are answered.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut config = SnapshotCache::new(&shared.config);
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let snap = config.get();
                let ip = addr.ip();
                let class = if snap.trunk_for(ip).is_some() || snap.is_backend(ip) {
                    Class::Trunk
                } else if snap.gateway.answer_strangers {
                    Class::Stranger
                } else {
                    refuse(stream, Cut::UnknownSource);
                    continue;
                };
                match shared.tcp.admit(&shared, addr, class) {
                    Ok((handle, rx, cut, slot)) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            run(stream, addr, shared, handle, rx, cut, slot).await
                        });
                    }
                    Err(why) => refuse(stream, why),
                }
            }
            Err(e) => {
                // EMFILE/ENFILE: the descriptor limit is reached despite the budgets (another
                // part of the process, or a limit lowered from outside). Back off briefly.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn refuse(stream: TcpStream, why: Cut) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
    crate::metrics::record_tcp_cut(why);
}

/// Serves one connection: a writer task drains `rx` into a `FramedWrite`; this task takes what
/// the [`SipCodec`] cuts from the stream.
async fn run(
    stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: Handle,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    cut: Arc<Notify>,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let limits = shared.tcp.limits;
    let (reader, writer) = stream.into_split();
    let queued = handle.queued.clone();
    let writer_task = tokio::spawn(async move {
        let mut writer = FramedWrite::new(writer, BytesCodec::new());
        while let Some(bytes) = rx.recv().await {
            let cost = bytes.len() + MESSAGE_OVERHEAD;
            let ok = writer.send(Bytes::from(bytes)).await.is_ok();
            queued.fetch_sub(cost, Ordering::Relaxed);
            if !ok {
                break;
            }
        }
    });
    let mut worker = Worker::new(&shared);
    let from = Peer {
        addr,
        transport: Transport::Tcp,
    };
    let mut stream = FramedRead::with_capacity(reader, SipCodec::new(MAX_MESSAGE), READ_CHUNK);
    // When the first byte of the message the codec holds incomplete arrived.
    let mut started: Option<Instant> = None;
    let why: Option<Cut> = loop {
        let idle_until = Instant::now() + IDLE_TIMEOUT;
        let until = started.map_or(idle_until, |s| {
            (s + limits.message_deadline).min(idle_until)
        });
        let item = tokio::select! {
            item = stream.next() => item,
            () = tokio::time::sleep_until(until) => {
                break Some(if started.is_some() { Cut::MessageDeadline } else { Cut::Idle });
            }
            () = cut.notified() => break Some(Cut::OutputBudget),
        };
        // The deadline runs from the first byte of an incomplete message, whatever trickles in
        // after it; a completed message (or keep-alive) stops it.
        match item {
            None | Some(Err(CodecError::Io(_))) => break None,
            Some(Err(CodecError::Frame(e))) => {
                tracing::debug!(peer = %addr, error = %e, "closing unframeable tcp stream");
                crate::metrics::record_malformed();
                break Some(Cut::Unframeable);
            }
            Some(Ok(Inbound::Started)) => started = Some(Instant::now()),
            Some(Ok(Inbound::Keepalive { pong })) => {
                started = None;
                if pong && handle.push(b"\r\n".to_vec(), limits.output_budget).is_err() {
                    break Some(Cut::OutputBudget);
                }
            }
            Some(Ok(Inbound::Message(m))) => {
                started = None;
                process(&shared, &mut worker, &m, from);
            }
        }
    };
    if let Some(why) = why {
        tracing::debug!(peer = %addr, reason = why.as_str(), "closing tcp connection");
        crate::metrics::record_tcp_cut(why);
    }
    drop(slot);
    writer_task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_the_descriptor_limit_and_strangers_get_a_slice_only_when_answered() {
        let common = Budgets::from_nofile(1024, false, None);
        assert_eq!(
            common,
            Budgets {
                trunk: 784,
                stranger: 0,
                outbound: 112,
                per_source: 196,
                per_stranger: 0,
            }
        );
        let raised = Budgets::from_nofile(65_536, true, None);
        assert_eq!(raised.outbound, MAX_CONNECTIONS / 8);
        assert_eq!(raised.stranger, MAX_CONNECTIONS / 16);
        assert_eq!(
            raised.trunk + raised.stranger + raised.outbound,
            MAX_CONNECTIONS
        );
        assert_eq!(raised.per_stranger, STRANGER_PER_SOURCE);
        // Unlimited, tiny and configured per-source caps stay within sense.
        assert_eq!(
            Budgets::from_nofile(u64::MAX, false, None).trunk,
            MAX_CONNECTIONS - MAX_CONNECTIONS / 8
        );
        let tiny = Budgets::from_nofile(0, true, None);
        assert!(tiny.trunk >= 4 && tiny.outbound >= 4 && tiny.per_source >= 1);
        assert_eq!(Budgets::from_nofile(20_000, false, Some(5)).per_source, 5);
        assert_eq!(
            Budgets::from_nofile(1024, false, Some(1_000_000)).per_source,
            784
        );
    }

    #[test]
    fn refusals_and_cuts_have_distinct_labels() {
        let labels: Vec<&str> = Cut::ALL.iter().map(|c| c.as_str()).collect();
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
        assert_eq!(Cut::ALL.iter().filter(|c| c.at_accept()).count(), 5);
    }
}
