//! dualgate: a stateless SIP gateway (RFC 3261 §16.11) that maps legacy hotline numbers and the
//! new short number 12356 to the same call-centre queues, following a migration calendar.
//!
//! Module map. Core (sync, pure: no sockets, clock reads, metrics or randomness):
//! - [`number`]: Request-URI -> canonical national number (China's numbering plan).
//! - [`mapping`]: canonical number -> configured entry (legacy number or new number per area).
//! - [`calendar`]: a legacy number's phase at an instant.
//! - [`route`]: the routing policy: facts + snapshot + instant -> decision.
//! - [`sip`]: the wire layer: parse, frame, edit in place, stateless replies, branches.
//! - [`proxy`]: the whole per-message path: bytes -> bytes to send + metric labels.
//! - [`config`]: mapping files: serde shape -> validated [`config::Snapshot`].
//! - [`report`]: the retirement report over numbers read from Prometheus.
//!
//! Edges (effects live here and only here): [`transport`] (sockets), [`metrics`] (the
//! Prometheus exporter), [`clock`] (the only clock reads), [`prometheus`] (the query client),
//! [`config::load`] (file reads), and `main.rs` (CLI, signals, exit codes).

pub mod calendar;
pub mod clock;
pub mod config;
pub mod mapping;
pub mod metrics;
pub mod number;
pub mod peer;
pub mod prometheus;
pub mod proxy;
pub mod report;
pub mod route;
pub mod sip;
pub mod transport;

use crate::clock::Clock;
use crate::config::{Gateway, Snapshot};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The gateway's listening sockets.
pub struct Sockets {
    /// UDP sockets sharing one address (SO_REUSEPORT), one per worker; empty if UDP is off.
    pub udp: Vec<UdpSocket>,
    /// The TCP listener, if TCP is on.
    pub tcp: Option<TcpListener>,
}

impl Sockets {
    /// Binds the listeners a gateway table asks for, `workers` UDP sockets.
    ///
    /// # Errors
    /// The first bind error, naming nothing: the caller adds the address.
    pub async fn bind(g: &Gateway, workers: usize) -> io::Result<Sockets> {
        let udp = match g.sip_udp {
            Some(addr) => transport::udp::bind(addr, workers)?,
            None => Vec::new(),
        };
        let tcp = match g.sip_tcp {
            Some(addr) => {
                let s = match addr {
                    SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                s.set_reuseaddr(true)?;
                s.bind(addr)?;
                Some(s.listen(1024)?)
            }
            None => None,
        };
        Ok(Sockets { udp, tcp })
    }
}

/// Serves SIP on `sockets` with the snapshot in `config` (swapped on reload) until `shutdown`
/// completes.
///
/// # Errors
/// Only start-up errors (binding the ephemeral UDP socket used when UDP is not served).
pub async fn run(
    sockets: Sockets,
    config: watch::Receiver<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut udp: Vec<Arc<UdpSocket>> = sockets.udp.into_iter().map(Arc::new).collect();
    let out = match udp.first() {
        Some(s) => s.clone(),
        None => Arc::new(UdpSocket::bind("0.0.0.0:0").await?),
    };
    let shared = Arc::new(transport::Shared {
        config: config.clone(),
        clock: clock.clone(),
        udp: out,
        tcp: transport::tcp::Pool::default(),
    });
    let mut tasks = JoinSet::new();
    for s in udp.drain(..) {
        tasks.spawn(transport::udp::serve(s, shared.clone()));
    }
    if let Some(l) = sockets.tcp {
        tasks.spawn(transport::tcp::serve(l, shared.clone()));
    }
    let mut rx = config.clone();
    tasks.spawn(async move {
        // Keep the phase gauges true as calendar boundaries pass.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let snap = rx.borrow_and_update().clone();
            metrics::record_phases(&snap, clock.now());
        }
    });
    shutdown.await;
    tasks.shutdown().await;
    Ok(())
}
