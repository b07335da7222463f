//! TCP: accepted and outgoing connections, framed by Content-Length. Each connection has a reader
//! task and a writer task; the pool maps a remote address to its writer so that responses go back
//! on the connection the request came in on (RFC 3261 §18.2.2) and requests to a backend reuse
//! one connection.

use super::{process, Peer, Shared, Worker};
use crate::peer::Transport;
use crate::sip::{frame, Frame};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest message accepted on a stream.
pub const MAX_MESSAGE: usize = 65_535;
/// Messages queued for one connection before further ones are dropped as overload.
const QUEUE: usize = 1024;
/// Most connections open at once.
const MAX_CONNECTIONS: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection that sends nothing (not even a CRLF keep-alive) for this long is closed, so
/// half-open connections from vanished peers do not pile up. Peers reconnect on demand.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Open connections by remote address.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
}

impl Pool {
    fn sender(&self, addr: SocketAddr) -> Option<mpsc::Sender<Vec<u8>>> {
        self.conns.lock().ok()?.get(&addr).cloned()
    }

    fn insert(&self, addr: SocketAddr, tx: mpsc::Sender<Vec<u8>>) -> bool {
        match self.conns.lock() {
            Ok(mut m) if m.len() < MAX_CONNECTIONS => {
                m.insert(addr, tx);
                true
            }
            _ => false,
        }
    }

    fn remove(&self, addr: SocketAddr, tx: &mpsc::Sender<Vec<u8>>) {
        if let Ok(mut m) = self.conns.lock() {
            if m.get(&addr).is_some_and(|t| t.same_channel(tx)) {
                m.remove(&addr);
            }
        }
    }

    /// Queues `bytes` for `addr`, on its open connection or else on a new one to `reconnect`
    /// (when given) or `addr`.
    ///
    /// # Errors
    /// `WouldBlock` when the connection's queue is full (overload), `Other` when no new
    /// connection may be opened.
    pub fn send(
        &self,
        shared: &Arc<Shared>,
        addr: SocketAddr,
        reconnect: Option<SocketAddr>,
        bytes: Vec<u8>,
        queue: &str,
    ) -> io::Result<()> {
        let bytes = match self.sender(addr) {
            Some(tx) => match tx.try_send(bytes) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    crate::metrics::record_overload();
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Err(mpsc::error::TrySendError::Closed(b)) => {
                    self.remove(addr, &tx);
                    b
                }
            },
            None => bytes,
        };
        let target = reconnect.unwrap_or(addr);
        match self.sender(target) {
            // A connection to the fallback address may already be open.
            Some(tx) if target != addr => tx
                .try_send(bytes)
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
        let (tx, rx) = mpsc::channel(QUEUE);
        if tx.try_send(first).is_err() || !self.insert(addr, tx.clone()) {
            return Err(io::Error::other("too many connections"));
        }
        let shared = shared.clone();
        let queue = queue.to_string();
        shared.clone().runtime.spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => run(stream, addr, shared, tx, rx).await,
                Ok(Err(e)) => fail(&shared, addr, &tx, &queue, &e.to_string()),
                Err(_) => fail(&shared, addr, &tx, &queue, "timed out"),
            }
        });
        Ok(())
    }
}

fn fail(shared: &Shared, addr: SocketAddr, tx: &mpsc::Sender<Vec<u8>>, queue: &str, error: &str) {
    tracing::warn!(to = %addr, error, "tcp connect failed");
    crate::metrics::record_backend_error(queue, "connect");
    shared.tcp.remove(addr, tx);
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let (tx, rx) = mpsc::channel(QUEUE);
                if !shared.tcp.insert(addr, tx.clone()) {
                    crate::metrics::record_overload();
                    continue; // dropping the stream closes it
                }
                let shared = shared.clone();
                tokio::spawn(async move { run(stream, addr, shared, tx, rx).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection: a writer task drains `rx`; this task reads and frames.
async fn run(
    stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Vec<u8>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut worker = Worker::new(&shared);
    let from = Peer {
        addr,
        transport: Transport::Tcp,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                tracing::debug!(peer = %addr, "closing idle tcp connection");
                break;
            }
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            match frame(&buf, MAX_MESSAGE) {
                Ok(None) => break,
                Ok(Some(Frame::Keepalive(k))) => {
                    // RFC 5626 §3.5.1: a double-CRLF ping gets a single-CRLF pong.
                    if buf
                        .get(..k)
                        .is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n"))
                    {
                        let _ = tx.try_send(b"\r\n".to_vec());
                    }
                    buf.drain(..k.min(buf.len()));
                }
                Ok(Some(Frame::Message(m))) => {
                    let m = m.min(buf.len());
                    process(&shared, &mut worker, &buf[..m], from);
                    buf.drain(..m);
                }
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "closing unframeable tcp stream");
                    crate::metrics::record_malformed();
                    break 'conn;
                }
            }
        }
    }
    shared.tcp.remove(addr, &tx);
    drop(tx);
    writer_task.abort();
}
