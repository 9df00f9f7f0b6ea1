//! Operations layer: everything an operator sees or drives, and nothing of the call logic.
//!
//! - [`metrics`]: the Prometheus metrics (one `Arc<Metrics>` per process, typed recorders).
//! - [`admin`]: the admin HTTP server (`/metrics`, `/healthz`, `/readyz`) and [`admin::Readiness`].
//! - [`logging`]: `tracing` subscriber set-up (human or JSON) and [`logging::Capture`] for tests.
//! - [`systemd`]: `sd_notify` wrappers (READY/RELOADING/STOPPING/STATUS/WATCHDOG), no-ops outside
//!   systemd, and the [`systemd::Watchdog`] pacer.
//! - [`hardening`]: no core dumps and not dumpable, first thing at start-up.
//! - [`shutdown`]: drain bookkeeping ([`shutdown::Drain`]) and SIGTERM/SIGINT/SIGHUP as
//!   [`shutdown::Signal`]s.
//!
//! This module does not own the SIP or RTP sockets, the call tasks or the configuration; the
//! runtime composes these pieces, roughly like this:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sspr_ivr::ops::shutdown::{Drain, Signal, Signals};
//! use sspr_ivr::ops::{admin, logging, metrics::Metrics, systemd};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> anyhow::Result<()> {
//! logging::init(logging::LogFormat::Human, "info")?;
//! let metrics = Arc::new(Metrics::new());
//! let readiness = Arc::new(admin::Readiness::new());
//! let drain = Drain::new();
//! let stop_admin = CancellationToken::new();
//! let mut signals = Signals::new()?;
//! let listener = admin::bind(admin::DEFAULT_ADDR).await?;
//! let admin_task = tokio::spawn(admin::serve(
//!     listener,
//!     metrics.clone(),
//!     readiness.clone(),
//!     stop_admin.clone(),
//! ));
//! // … load config, flows and prompts; bind the SIP listeners; spawn call tasks that hold
//! // `drain.try_enter()` and `metrics.call_started()` guards (503 when try_enter is None) …
//! readiness.set_listening(true);
//! systemd::notify_ready()?;
//! let mut watchdog = systemd::Watchdog::from_env();
//! loop {
//!     tokio::select! {
//!         _ = async {
//!             match watchdog.as_mut() {
//!                 Some(w) => w.tick().await,
//!                 None => std::future::pending().await,
//!             }
//!         } => {
//!             readiness.beat();
//!             let _ = systemd::notify_watchdog();
//!         }
//!         signal = signals.recv() => match signal {
//!             Some(Signal::Reload) => {
//!                 let _ = systemd::notify_reloading();
//!                 // … reload; metrics.config_reloaded(ReloadResult::Ok | Rejected) …
//!                 let _ = systemd::notify_ready();
//!             }
//!             Some(Signal::Terminate) | None => break,
//!         },
//!     }
//! }
//! readiness.set_draining();
//! let _ = systemd::notify_stopping();
//! drain.start();
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
//! if !drain.wait_idle(deadline).await {
//!     // … BYE and audit the calls still live (CallEnd::Drained) …
//! }
//! stop_admin.cancel();
//! admin_task.await??;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod hardening;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod systemd;
