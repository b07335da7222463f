//! The HTTP listener (`gateway.metrics`): `/metrics` for Prometheus, `/healthz` and `/readyz`
//! for orchestrators, and `/`, the status page for the person on duty. One listener, served by
//! axum; `--metrics off` means no listener at all (`main` then never calls [`bind`]).
//!
//! This module is an edge: it renders the exporter's registry, reads the clock and the mapping
//! file, and hands plain values to the pure parts: [`reading`] (metrics text -> typed figures),
//! [`status`] (snapshot + instant + figures -> page model and readiness) and [`page`] (model ->
//! HTML). It never changes routing state.

pub mod page;
pub mod reading;
pub mod status;

use crate::clock::Clock;
use crate::config::Snapshot;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use reading::Readings;
use sha2::{Digest, Sha256};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the handlers read: the registry, the served snapshot, the clock, and whether SIP is
/// bound yet.
pub struct Context {
    metrics: PrometheusHandle,
    config: watch::Receiver<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    sip_bound: AtomicBool,
    /// The sha256 of the file behind the snapshot last shown, computed once per snapshot.
    file_sha256: Mutex<Option<(Arc<Snapshot>, Option<String>)>>,
}

impl Context {
    /// A context serving `config` (SIP not yet bound).
    pub fn new(
        metrics: PrometheusHandle,
        config: watch::Receiver<Arc<Snapshot>>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Context> {
        Arc::new(Context {
            metrics,
            config,
            clock,
            sip_bound: AtomicBool::new(false),
            file_sha256: Mutex::new(None),
        })
    }

    /// Records that the SIP listeners are bound (a condition of `/readyz`).
    pub fn sip_bound(&self) {
        self.sip_bound.store(true, Ordering::Relaxed);
    }

    fn readings(&self) -> Readings {
        Readings::from_text(&crate::metrics::render(&self.metrics))
    }

    /// The sha256 (hex) of the bytes of `snap`'s file. Read once per snapshot, right after
    /// it first serves: a file replaced since (a ConfigMap update whose reload is yet to come,
    /// or was rejected) does not change what is shown for the mappings actually served.
    fn file_sha256(&self, snap: &Arc<Snapshot>) -> Option<String> {
        let mut cached = self
            .file_sha256
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, h)) = cached.as_ref() {
            if Arc::ptr_eq(s, snap) {
                return h.clone();
            }
        }
        let h = std::fs::read(&snap.source).ok().map(|b| sha256_hex(&b));
        *cached = Some((snap.clone(), h.clone()));
        h
    }
}

/// SHA-256 of `bytes`, lowercase hex (as `sha256sum` prints it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Binds the HTTP listener.
///
/// # Errors
/// The bind error (address taken, not local, no permission).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The routes.
pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(status_page))
        .with_state(ctx)
}

/// Serves HTTP on `listener` until the runtime stops.
///
/// # Errors
/// Only a failure of the listener itself.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) -> io::Result<()> {
    axum::serve(listener, router(ctx)).await
}

async fn metrics(State(ctx): State<Arc<Context>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&ctx.metrics),
    )
        .into_response()
}

/// Alive: the runtime answers. Deliberately nothing more, so that a liveness probe never
/// restarts a replica for what a restart cannot fix (a dead backend, a bad reload).
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ctx): State<Arc<Context>>) -> Response {
    let snap = ctx.config.borrow().clone();
    let why = status::readiness(
        Some(&snap),
        ctx.sip_bound.load(Ordering::Relaxed),
        &ctx.readings(),
    );
    if why.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body: String = why.iter().map(|w| format!("not ready: {w}\n")).collect();
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn status_page(State(ctx): State<Arc<Context>>) -> Response {
    let snap = ctx.config.borrow().clone();
    let sha = ctx.file_sha256(&snap);
    let s = status::status(
        &snap,
        ctx.clock.now(),
        &ctx.readings(),
        sha,
        ctx.sip_bound.load(Ordering::Relaxed),
    );
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(page::render(&s)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_printed_as_sha256sum_does() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
