//! Operations layer: everything an operator sees or drives, and nothing of the call logic.
//!
//! - [`metrics`]: the Prometheus metrics (one `Arc<Metrics>` per process, typed recorders).
//! - [`admin`]: the admin HTTP server (`/metrics`, `/healthz`, `/readyz`) and [`admin::Readiness`].
//! - [`logging`]: `tracing` subscriber set-up (human or JSON) and [`logging::Capture`] for tests.
//! - [`systemd`]: `sd_notify` wrappers (READY/STOPPING/STATUS/WATCHDOG), no-ops outside systemd.
//! - [`shutdown`]: drain bookkeeping ([`shutdown::Drain`]) and SIGTERM/SIGHUP as [`shutdown::Signal`]s.
//!
//! This module does not own the SIP or RTP sockets, the call tasks or the configuration; the
//! runtime composes these pieces.

pub mod admin;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod systemd;
