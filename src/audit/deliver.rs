//! The delivery loop: oldest pending record → audit action → ack.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AuditError, Spool};
use crate::actions::Executor;

/// Outcomes of the audit action that count as delivered. `duplicate` lets a
/// receiver say "already have it" (it deduplicates by the record id).
pub const DELIVERED_OUTCOMES: [&str; 2] = ["success", "duplicate"];

/// Capped exponential backoff between failed deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

/// Forwards spooled records through a named data action.
pub struct Deliverer {
    spool: Arc<Spool>,
    executor: Arc<Executor>,
    action: String,
    backoff: Backoff,
}

impl Deliverer {
    /// `action` must exist in `executor` (e.g. `audit`, whose templates read
    /// the record fields `id`, `result`, `timestamp`, … and which should
    /// send `id` as an idempotency key header).
    pub fn new(
        spool: Arc<Spool>,
        executor: Arc<Executor>,
        action: &str,
        backoff: Backoff,
    ) -> Result<Self, AuditError> {
        if !executor.contains(action) {
            return Err(AuditError::Delivery(format!(
                "the audit action {action:?} is not defined under `actions:`"
            )));
        }
        Ok(Deliverer {
            spool,
            executor,
            action: action.to_string(),
            backoff,
        })
    }

    /// Records waiting for delivery (for `/readyz` and metrics).
    pub fn backlog(&self) -> usize {
        self.spool.backlog()
    }

    /// Deliver until `cancel` fires. Spawn it: `tokio::spawn(d.run(token))`.
    /// A record in flight when cancelled stays pending (redelivered later).
    pub async fn run(self, cancel: CancellationToken) {
        let notify = self.spool.notifier();
        let mut delay = self.backoff.initial;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let Some(record) = self.spool.front() else {
                tokio::select! {
                    _ = notify.notified() => continue,
                    _ = cancel.cancelled() => return,
                }
            };
            let vars = record.to_vars();
            let result = tokio::select! {
                r = self.executor.run(&self.action, &vars) => r,
                _ = cancel.cancelled() => return,
            };
            if DELIVERED_OUTCOMES.contains(&result.outcome.as_str()) {
                delay = self.backoff.initial;
                let spool = self.spool.clone();
                let id = record.id.clone();
                let acked = tokio::task::spawn_blocking(move || spool.ack(&id)).await;
                match acked {
                    Ok(Ok(_)) => {
                        tracing::debug!(backlog = self.spool.backlog(), "audit record delivered")
                    }
                    Ok(Err(e)) => {
                        // Delivered but not acked: it will be sent again and
                        // the receiver deduplicates. Back off so a broken
                        // disk does not spin.
                        tracing::error!(error = %e, "audit spool: ack not written");
                        if sleep_or_cancel(self.backoff.max, &cancel).await {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            } else {
                tracing::warn!(
                    outcome = %result.outcome,
                    status = result.status.unwrap_or(0),
                    retry_in_ms = delay.as_millis() as u64,
                    backlog = self.spool.backlog(),
                    "audit delivery failed; will retry"
                );
                if sleep_or_cancel(delay, &cancel).await {
                    return;
                }
                delay = (delay * 2).min(self.backoff.max);
            }
        }
    }
}

/// Sleep; true if cancelled first.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
