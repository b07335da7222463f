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
//! - [`timeline`]: every instant at which routing changes by itself, and how instants are shown.
//! - [`cli`]: what `check` and `route` print (text and JSON).
//!
//! Edges (effects live here and only here): [`transport`] (sockets), [`metrics`] (the
//! Prometheus exporter), [`clock`] (the only clock reads), [`prometheus`] (the query client),
//! [`config::load()`] (file reads), and `main.rs` (CLI, signals, exit codes).

pub mod calendar;
pub mod cli;
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
pub mod timeline;
pub mod transport;

use crate::clock::Clock;
use crate::config::{Gateway, Snapshot};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The gateway's listening sockets.
pub struct Sockets {
    /// The UDP listener, if UDP is on.
    pub udp: Option<std::net::UdpSocket>,
    /// The TCP listener, if TCP is on.
    pub tcp: Option<TcpListener>,
}

impl Sockets {
    /// Binds the listeners a gateway table asks for.
    ///
    /// # Errors
    /// The first bind error, naming nothing: the caller adds the address.
    pub async fn bind(g: &Gateway) -> io::Result<Sockets> {
        let udp = g.sip_udp.map(transport::udp::bind).transpose()?;
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
/// completes; UDP is read by `workers` OS threads.
///
/// # Errors
/// Only start-up errors (cloning the UDP socket, binding the ephemeral UDP socket used when
/// UDP is not served).
pub async fn run(
    sockets: Sockets,
    workers: usize,
    config: watch::Receiver<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let out = match &sockets.udp {
        Some(s) => s.try_clone()?,
        None => std::net::UdpSocket::bind("0.0.0.0:0")?,
    };
    let shared = Arc::new(transport::Shared {
        config: config.clone(),
        clock: clock.clone(),
        udp: out,
        tcp: transport::tcp::Pool::default(),
        runtime: tokio::runtime::Handle::current(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    if let Some(udp) = sockets.udp {
        for i in 0..workers.max(1) {
            let (sock, shared, stop) = (udp.try_clone()?, shared.clone(), stop.clone());
            let t = std::thread::Builder::new()
                .name(format!("dualgate-udp-{i}"))
                .spawn(move || transport::udp::serve(sock, shared, stop))?;
            threads.push(t);
        }
    }
    let mut tasks = JoinSet::new();
    if let Some(l) = sockets.tcp {
        tasks.spawn(transport::tcp::serve(l, shared.clone()));
    }
    let mut rx = config.clone();
    let udp_port = shared
        .udp
        .local_addr()
        .ok()
        .filter(|_| !threads.is_empty())
        .map(|a| a.port());
    tasks.spawn(async move {
        // Keep the phase gauges true as calendar boundaries pass, and the kernel's drop count
        // on the UDP socket visible (the sign of overload a stateless UDP proxy cannot see).
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = clock.now();
        loop {
            tick.tick().await;
            let snap = rx.borrow_and_update().clone();
            let now = clock.now();
            log_boundaries(&snap, last, now);
            last = now;
            metrics::record_phases(&snap, now);
            metrics::record_calendar(&snap, now);
            if let Some(drops) = udp_port.and_then(transport::udp::kernel_drops) {
                metrics::record_udp_drops(drops);
            }
        }
    });
    shutdown.await;
    tasks.shutdown().await;
    stop.store(true, Ordering::Relaxed);
    let _ =
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    Ok(())
}

/// Logs every calendar boundary passed in `(after, now]`: the number, its area and what callers
/// get from now on.
fn log_boundaries(snap: &Snapshot, after: std::time::SystemTime, now: std::time::SystemTime) {
    for b in timeline::passed(&snap.mappings, after, now) {
        let area = match b.what {
            timeline::What::Legacy { legacy, .. } => legacy
                .area(&snap.mappings.areas)
                .map_or("none", |a| a.code.as_str()),
            timeline::What::Launch { area } => area.code.as_str(),
        };
        tracing::info!(
            number = b.what.number(),
            area,
            phase = b.what.state(),
            at = %timeline::local_and_utc(b.at),
            change = %timeline::describe(&b, snap),
            "calendar boundary passed"
        );
    }
}
