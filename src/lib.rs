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
//! - [`report`]: the retirement report: the Prometheus client and its queries
//!   ([`report::prometheus`]), the assessment, the trend and the rendering.
//! - [`timeline`]: every instant at which routing changes by itself, and how instants are shown.
//! - [`cli`]: what `check` and `route` print (text and JSON).
//!
//! Edges (effects live here and only here): [`transport`] (sockets; TCP streams cut by a
//! tokio-util codec over [`sip::frame()`]), [`metrics`] (the
//! Prometheus exporter), [`http`] (/metrics, /healthz, /readyz and the status page; its
//! [`http::status`] model is pure), [`clock`] (the only clock reads), [`report::prometheus`] (the query client),
//! [`config::load()`] (file reads), [`watcher`] (reload when the mapping file changes), and `main.rs` (CLI, signals, exit codes).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod health;
pub mod hours;
pub mod http;
pub mod limit;
pub mod mapping;
pub mod metrics;
pub mod number;
pub mod peer;
pub mod proxy;
pub mod report;
pub mod route;
pub mod sip;
pub mod timeline;
pub mod transport;
pub mod watcher;

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
        None => transport::udp_sender()?,
    };
    let gateway = config.borrow().gateway.clone();
    let nofile = transport::open_files_limit();
    let budgets = transport::tcp::Budgets::from_nofile(
        nofile,
        gateway.answer_strangers,
        gateway.tcp.max_per_source,
    );
    metrics::record_tcp_budgets(nofile, &budgets);
    transport::probe::record_initial(&config.borrow());
    tracing::info!(
        nofile,
        trunk = budgets.trunk,
        stranger = budgets.stranger,
        outbound = budgets.outbound,
        per_source = budgets.per_source,
        "tcp connection budgets"
    );
    let rcvbuf = sockets
        .udp
        .as_ref()
        .and_then(|s| socket2::SockRef::from(s).recv_buffer_size().ok())
        .unwrap_or(transport::udp::SOCKET_BUFFER);
    let (health_tx, health_rx) = watch::channel(Arc::new(health::Down::none()));
    let (probe_tx, probe_rx) = tokio::sync::mpsc::channel(4096);
    let shared = Arc::new(transport::Shared {
        config: config.clone(),
        clock: clock.clone(),
        udp: out,
        tcp: transport::tcp::Pool::new(budgets, gateway.tcp),
        runtime: tokio::runtime::Handle::current(),
        health: health_rx,
        probe_replies: probe_tx,
        limiter: limit::Limiter::default(),
        shedding: AtomicBool::new(false),
        started: clock::Stopwatch::start(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    if let Some(udp) = sockets.udp {
        // One socket per worker in one SO_REUSEPORT group: a flow stays on one thread, in order.
        let addr = udp.local_addr()?;
        let mut socks = vec![udp];
        for _ in 1..workers.max(1) {
            socks.push(transport::udp::bind(addr)?);
        }
        for (i, sock) in socks.into_iter().enumerate() {
            let (shared, stop) = (shared.clone(), stop.clone());
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
    tasks.spawn(transport::probe::run(shared.clone(), probe_rx, health_tx));
    let mut rx = config.clone();
    let udp_port = shared
        .udp
        .local_addr()
        .ok()
        .filter(|_| !threads.is_empty())
        .map(|a| a.port());
    if let Some(port) = udp_port {
        tasks.spawn(watch_backlog(shared.clone(), port, rcvbuf as u64));
    }
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

/// Samples the UDP sockets' receive queues and drop counter every 100 ms and tells the workers
/// to shed new calls while the gateway falls behind (see [`transport::udp::Backlog`]).
async fn watch_backlog(shared: Arc<transport::Shared>, port: u16, rcvbuf: u64) {
    let mut judge = transport::udp::Backlog::new(rcvbuf, 10);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shedding = false;
    metrics::record_shedding(false);
    loop {
        tick.tick().await;
        let Some((queue, drops)) = transport::udp::backlog(port) else {
            return;
        };
        let now = judge.sample(queue, drops);
        if now != shedding {
            shedding = now;
            shared.shedding.store(now, Ordering::Relaxed);
            metrics::record_shedding(now);
            if now {
                tracing::warn!(
                    queue_bytes = queue,
                    drops,
                    "falling behind: refusing new calls with 503 until the backlog clears"
                );
            } else {
                tracing::info!("backlog cleared: taking new calls again");
            }
        }
    }
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
