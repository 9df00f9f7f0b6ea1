//! Graceful shutdown bookkeeping and Unix signals.
//!
//! [`Drain`] holds the "stop accepting" [`CancellationToken`] and a count of live calls: each call
//! task holds a [`LiveCall`] guard, and [`Drain::wait_idle`] waits until the count reaches zero
//! or a deadline passes. The runtime's sequence on SIGTERM is: `Readiness::set_draining`,
//! `notify_stopping`, `drain.start()` (new INVITEs get 503 + Retry-After), `wait_idle(limit)`,
//! then BYE (and audit) whatever is left.
//!
//! [`Signals`] turns SIGTERM/SIGINT into [`Signal::Terminate`] and SIGHUP into
//! [`Signal::Reload`]. It does not reload or stop anything itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// A signal handler could not be installed.
    #[error("cannot install {signal} handler: {source}")]
    Signal {
        /// Signal name.
        signal: &'static str,
        /// OS error.
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
struct Live {
    count: AtomicUsize,
    idle: Notify,
}

/// Shared drain state; clone freely.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    stop: CancellationToken,
    live: Arc<Live>,
}

impl Drain {
    /// Accepting, no live calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token cancelled by [`start`](Self::start): listeners select on it.
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops accepting new calls (idempotent).
    pub fn start(&self) {
        self.stop.cancel();
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Registers a live call unless draining (then `None`: answer 503).
    #[must_use]
    pub fn try_enter(&self) -> Option<LiveCall> {
        if self.is_draining() {
            return None;
        }
        let guard = self.enter();
        // Re-check: `start` may have raced with the increment. The call is then refused and its
        // guard dropped, which wakes `wait_idle` if it was the last.
        if self.is_draining() {
            return None;
        }
        Some(guard)
    }

    /// Registers a live call unconditionally.
    #[must_use]
    pub fn enter(&self) -> LiveCall {
        self.live.count.fetch_add(1, Ordering::SeqCst);
        LiveCall {
            live: Arc::clone(&self.live),
        }
    }

    /// Number of live calls.
    pub fn live_calls(&self) -> usize {
        self.live.count.load(Ordering::SeqCst)
    }

    /// Waits until no call is live or `deadline` passes. Returns true when idle.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.live.idle.notified();
            tokio::pin!(notified);
            // Register interest before checking, so a guard dropped in between still wakes us.
            notified.as_mut().enable();
            if self.live_calls() == 0 {
                return true;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.live_calls() == 0,
            }
        }
    }
}

/// RAII registration of one live call; dropping it ends the call for drain purposes.
#[derive(Debug)]
pub struct LiveCall {
    live: Arc<Live>,
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        if self.live.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.live.idle.notify_waiters();
        }
    }
}

/// What the process was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: drain and exit.
    Terminate,
    /// SIGHUP: reload configuration and flows.
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP as a stream of [`Signal`]s. Installing it replaces the default
/// actions (termination) for those signals for the whole process.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (needs a tokio runtime).
    pub fn new() -> Result<Self, ShutdownError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| ShutdownError::Signal {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The next signal; `None` only if the runtime shuts the signal driver down.
    pub async fn recv(&mut self) -> Option<Signal> {
        tokio::select! {
            s = self.term.recv() => s.map(|()| Signal::Terminate),
            s = self.int.recv() => s.map(|()| Signal::Terminate),
            s = self.hup.recv() => s.map(|()| Signal::Reload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn wait_idle_returns_when_last_call_ends() {
        let drain = Drain::new();
        let a = drain.try_enter().expect("accepting");
        let b = drain.try_enter().expect("accepting");
        drain.start();
        assert!(drain.try_enter().is_none(), "no new calls while draining");
        assert_eq!(drain.live_calls(), 2);
        let start = Instant::now();
        let waiter = {
            let d = drain.clone();
            tokio::spawn(async move { d.wait_idle(Instant::now() + Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(a);
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(b);
        assert!(waiter.await.expect("join"));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_gives_up_at_deadline() {
        let drain = Drain::new();
        let _stuck = drain.enter();
        drain.start();
        let start = Instant::now();
        let idle = drain.wait_idle(start + Duration::from_secs(30)).await;
        assert!(!idle);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert_eq!(drain.live_calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_is_immediate_when_idle() {
        let drain = Drain::new();
        let start = Instant::now();
        assert!(drain.wait_idle(start + Duration::from_secs(30)).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(drain.token().is_cancelled() == drain.is_draining());
    }
}
