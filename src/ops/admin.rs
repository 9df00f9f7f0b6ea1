//! Admin HTTP server (axum): `GET /metrics`, `GET /healthz`, `GET /readyz`.
//!
//! It listens on loopback by default (`127.0.0.1:9090`, see [`DEFAULT_ADDR`]); nothing on it is
//! secret, but nothing on it is meant for callers either. `/metrics` is the OpenMetrics text of
//! [`Metrics`]; `/healthz` answers 200 while the main loop keeps beating ([`Readiness::beat`]);
//! `/readyz` answers 200 only while the SIP listeners are up, the process is not draining and
//! the audit spool can be written (a reset the spool cannot record is never started, so an
//! instance whose spool is full is no use to a caller) and every required trunk registration is
//! in place and the shared state store (`state.backend: redis`) answers, which is what a load
//! balancer or Kamailio health check should follow.
//!
//! It does not do TLS or authentication: keep it on loopback or behind a firewall.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::metrics::{AdminCloseReason, Metrics, TcpCloseReason, CONTENT_TYPE};
use crate::runtime::tcp::ConnectionCaps;

/// Default admin listen address.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// How long the main loop may go without a [`Readiness::beat`] before `/healthz` fails.
pub const DEFAULT_LIVENESS_LIMIT: Duration = Duration::from_secs(30);

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The admin address could not be bound.
    #[error("cannot bind the admin HTTP address {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

/// Shared process state behind `/healthz` and `/readyz`.
///
/// `listening` is set once every SIP listener is bound, `draining` when shutdown starts,
/// `audit_writable` follows the audit spool (true until a write fails, true again once one
/// succeeds); ready means listening, not draining and the audit spool writable. `beat` is called by the main loop (and the watchdog tick);
/// before the first beat the process counts as alive.
#[derive(Debug)]
pub struct Readiness {
    listening: AtomicBool,
    draining: AtomicBool,
    audit_writable: AtomicBool,
    /// Every `required` registration in `sip.registrations` is in place (true when none).
    registered: AtomicBool,
    /// The shared state store (`state.backend: redis`) answers (always true in memory).
    state_available: AtomicBool,
    last_beat: Mutex<Option<Instant>>,
    liveness_limit: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Not listening, not draining, liveness limit [`DEFAULT_LIVENESS_LIMIT`].
    pub fn new() -> Self {
        Self::with_liveness_limit(DEFAULT_LIVENESS_LIMIT)
    }

    /// Like [`new`](Self::new) with another liveness limit.
    pub fn with_liveness_limit(limit: Duration) -> Self {
        Readiness {
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            audit_writable: AtomicBool::new(true),
            registered: AtomicBool::new(true),
            state_available: AtomicBool::new(true),
            last_beat: Mutex::new(None),
            liveness_limit: limit,
        }
    }

    /// Marks the SIP listeners as bound (or not).
    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
    }

    /// Marks the process as draining: `/readyz` turns 503 for good.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Marks whether the audit spool can take records.
    pub fn set_audit_writable(&self, writable: bool) {
        self.audit_writable.store(writable, Ordering::SeqCst);
    }

    /// True unless the last audit spool write (or probe) failed.
    pub fn is_audit_writable(&self) -> bool {
        self.audit_writable.load(Ordering::SeqCst)
    }

    /// Marks whether every required trunk registration is in place.
    pub fn set_registered(&self, registered: bool) {
        self.registered.store(registered, Ordering::SeqCst);
    }

    /// True unless a required trunk registration is missing.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::SeqCst)
    }

    /// Marks whether the shared state store answers.
    pub fn set_state_available(&self, available: bool) {
        self.state_available.store(available, Ordering::SeqCst);
    }

    /// True unless the last check or probe of the shared state store failed.
    pub fn is_state_available(&self) -> bool {
        self.state_available.load(Ordering::SeqCst)
    }

    /// True while listening, not draining, the audit spool writable, registered
    /// where required, and the shared state store answering.
    pub fn is_ready(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
            && self.is_audit_writable()
            && self.is_registered()
            && self.is_state_available()
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Records that the main loop is alive now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// Records a beat at a given instant (tests use a past instant to simulate a stall).
    pub fn beat_at(&self, at: Instant) {
        let mut guard = match self.last_beat.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = Some(at);
    }

    /// Alive if no beat was ever recorded or the last one is within the liveness limit.
    pub fn is_alive(&self, now: Instant) -> bool {
        let guard = match self.last_beat.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match *guard {
            None => true,
            Some(at) => now.saturating_duration_since(at) <= self.liveness_limit,
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The admin router, for embedding or testing without a socket.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, readiness })
}

/// Binds the admin address (do it at start-up, before `READY=1`, so a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, AdminError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

/// Admin connections open at once, in all. More are closed at accept.
pub const MAX_CONNECTIONS: usize = 64;

/// Admin connections open at once from one address: a flood from one source
/// leaves room for the scraper and the health checks.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 8;

/// A connection that has not sent a whole request head within this is closed
/// (silent and slowloris connections alike).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest an admin connection lives, however busy: then the request in
/// flight is answered and the connection closed (a keep-alive scraper
/// reconnects).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serves the admin endpoints on `listener` until `cancel` fires; requests in
/// flight then get up to a second to finish.
///
/// Hostile or broken clients cannot take the process's descriptors: at most
/// [`MAX_CONNECTIONS`] connections ([`MAX_CONNECTIONS_PER_SOURCE`] per
/// address) are open at once, more are closed at accept; a connection that
/// sends no whole request head within [`HEADER_TIMEOUT`] is closed, and none
/// lives longer than [`CONNECTION_LIFETIME`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    cancel: CancellationToken,
) -> Result<(), AdminError> {
    let app = router(metrics.clone(), readiness);
    let caps = ConnectionCaps::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors: what waits stays in the kernel's queue.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match caps.take(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                tracing::debug!(%peer, reason = reason.as_str(), "admin connection refused");
                metrics.admin_closed(match reason {
                    TcpCloseReason::SourceLimit => AdminCloseReason::SourceLimit,
                    _ => AdminCloseReason::Limit,
                });
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stop = cancel.clone();
        let metrics = metrics.clone();
        conns.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if r.is_err_and(|e| e.is_timeout()) {
                        tracing::debug!(%peer, "admin connection closed: no request head in time");
                        metrics.admin_closed(AdminCloseReason::HeadTimeout);
                    }
                    return;
                }
                () = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                () = stop.cancelled() => {}
            }
            // A request in flight is answered first, then the connection
            // closes (an idle one at once).
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HEADER_TIMEOUT, conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn healthz_handler(State(state): State<AppState>) -> Response {
    if state.readiness.is_alive(Instant::now()) {
        (StatusCode::OK, [(header::CONTENT_TYPE, TEXT)], "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, TEXT)],
            "main loop stalled\n",
        )
            .into_response()
    }
}

async fn readyz_handler(State(state): State<AppState>) -> Response {
    let r = &state.readiness;
    let (status, body) = if r.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if !r.is_audit_writable() {
        (StatusCode::SERVICE_UNAVAILABLE, "audit spool unavailable\n")
    } else if !r.is_registered() {
        (StatusCode::SERVICE_UNAVAILABLE, "not registered\n")
    } else if !r.is_state_available() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "shared state store unavailable\n",
        )
    } else if r.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not listening\n")
    };
    (status, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_table() {
        let r = Readiness::new();
        assert!(!r.is_ready());
        r.set_listening(true);
        assert!(r.is_ready());
        r.set_audit_writable(false);
        assert!(
            !r.is_ready(),
            "not ready while the audit spool cannot be written"
        );
        r.set_audit_writable(true);
        assert!(r.is_ready(), "ready again once it can");
        r.set_registered(false);
        assert!(!r.is_ready(), "a required registration is missing");
        r.set_registered(true);
        assert!(r.is_ready());
        r.set_state_available(false);
        assert!(!r.is_ready(), "the shared state store does not answer");
        r.set_state_available(true);
        assert!(r.is_ready());
        r.set_draining();
        assert!(!r.is_ready());
        assert!(r.is_draining());
        r.set_listening(true);
        assert!(!r.is_ready(), "draining is final");
    }

    #[test]
    fn liveness_follows_beats() {
        let r = Readiness::with_liveness_limit(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(r.is_alive(t0), "alive before the first beat");
        r.beat_at(t0);
        assert!(r.is_alive(t0 + Duration::from_secs(10)));
        assert!(!r.is_alive(t0 + Duration::from_secs(11)));
        r.beat_at(t0 + Duration::from_secs(11));
        assert!(r.is_alive(t0 + Duration::from_secs(12)));
    }
}
