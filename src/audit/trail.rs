//! The audit trail as the running service uses it: the spool, plus what a
//! failing spool must change — readiness, metrics — and the write-ahead
//! guard that keeps a reset from starting without a durable record.
//!
//! **Fail closed.** Before the request of the reset action is sent, an
//! `attempt_started` record for it is appended and fsynced
//! ([`AuditTrail::write_ahead`]). If that fails, the request is not sent:
//! the action's outcome is [`AUDIT_UNAVAILABLE`] and the flow apologises and
//! transfers the caller. A record written first is better than a check that
//! the disk "looks" writable: it proves the whole path (write and fsync)
//! at that moment, and if the process dies while the reset is in flight the
//! trail still shows the attempt, so no reset can ever happen without a
//! record of it.
//!
//! Any failed write turns `/readyz` to 503 at once (so a balancer stops
//! sending calls) and counts in the metrics; the main loop calls
//! [`AuditTrail::tick`] every second, which writes the records held in
//! memory or probes the disk, and turns readiness back on once the spool
//! takes writes again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{AuditRecord, CallFacts, Spool, SystemClock};
use crate::ops::admin::Readiness;
use crate::ops::metrics::Metrics;

/// The outcome a guarded action takes when its write-ahead record could
/// not be spooled (the request was not sent).
pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

/// The `result` of a write-ahead record.
pub const STARTED: &str = "attempt_started";

/// The spool with readiness and metrics wired to its health.
#[derive(Clone)]
pub struct AuditTrail {
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// A recovery attempt is running.
    recovering: Arc<AtomicBool>,
}

impl AuditTrail {
    pub fn new(spool: Arc<Spool>, metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Self {
        AuditTrail {
            spool,
            metrics,
            readiness,
            recovering: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    fn failed(&self, record: &AuditRecord, error: &super::AuditError, held: bool) {
        self.readiness.set_audit_writable(false);
        self.metrics.audit_spool_write_failed();
        self.metrics
            .audit_spool_state(false, self.spool.held() as u64);
        if held {
            tracing::error!(
                id = %record.id,
                error = %error,
                "audit spool append failed; record held in memory until the spool takes it"
            );
        } else {
            tracing::error!(id = %record.id, error = %error, "audit spool append failed");
        }
    }

    /// Spool `record` (fsynced) off the async threads; if the spool refuses
    /// it, hold it in memory and write it once the spool recovers.
    pub fn record(&self, record: AuditRecord) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || match this.spool.append_or_hold(&record) {
            Ok(()) => tracing::debug!(id = %record.id, "audit record spooled"),
            Err(e) => this.failed(&record, &e, true),
        });
    }

    /// The write-ahead record of a request of `action`.
    pub fn started(&self, facts: &CallFacts<'_>, action: &str) -> AuditRecord {
        AuditRecord::new(&SystemClock, facts, STARTED, &format!("{action}_requested"))
    }

    /// Spool a write-ahead record ([`started`](Self::started)) durably
    /// before the request is sent. False: the spool could not take it, so
    /// the request must not be sent (the refusal is counted and logged here).
    pub async fn write_ahead(&self, record: AuditRecord) -> bool {
        let this = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let result = this.spool.append(&record);
            (record, result)
        })
        .await;
        match written {
            Ok((record, Ok(()))) => {
                tracing::debug!(id = %record.id, "audit record spooled");
                true
            }
            Ok((record, Err(e))) => {
                self.failed(&record, &e, false);
                self.metrics.reset_refused_audit_unavailable();
                tracing::warn!(
                    reason = %record.reason,
                    "reset not sent: the audit spool cannot record the attempt"
                );
                false
            }
            Err(_) => false,
        }
    }

    /// Every second from the main loop: publish the spool's state, and if
    /// it is failing, try to recover it (write held records, or probe) in
    /// the background — a hung disk must not stall the main loop.
    pub fn tick(&self) {
        self.publish();
        if self.spool.is_healthy() || self.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.spool.recover();
            this.publish();
            this.recovering.store(false, Ordering::SeqCst);
        });
    }

    fn publish(&self) {
        let healthy = self.spool.is_healthy();
        self.readiness.set_audit_writable(healthy);
        self.metrics
            .audit_spool_state(healthy, self.spool.held() as u64);
        self.metrics.audit_backlog(self.spool.backlog() as u64);
    }
}
