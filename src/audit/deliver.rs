//! The delivery loop: oldest pending record → audit action → ack.
//!
//! What it delivers through is read again before every attempt
//! ([`DeliveryTarget`]), so a configuration reload (SIGHUP) that changes the
//! audit action — its URL, its credentials, or which action — takes effect
//! for the next record. A receiver that is down or failing (no response,
//! 5xx, 408, 429) is retried with capped exponential backoff for as long as
//! it takes; a receiver that *rejects* a record (any other 4xx, or the
//! outcome `rejected`) has rejected that record, not the stream: after
//! `dead_letter_after` rejections in a row the record moves to the spool's
//! dead-letter file and delivery continues with the records behind it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{AuditError, Spool};
use crate::actions::{ActionResult, Executor};
use crate::ops::metrics::Metrics;

/// Outcomes of the audit action that count as delivered. `duplicate` lets a
/// receiver say "already have it" (it deduplicates by the record id).
pub const DELIVERED_OUTCOMES: [&str; 2] = ["success", "duplicate"];

/// An outcome a receiver's rules may name to reject a record outright.
pub const REJECTED_OUTCOME: &str = "rejected";

/// Default for `audit.dead_letter_after`.
pub const DEFAULT_DEAD_LETTER_AFTER: u32 = 5;

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

/// Where records go, as configured right now.
#[derive(Clone)]
pub struct DeliveryTarget {
    pub executor: Arc<Executor>,
    /// The action records are delivered through; `None` keeps them spooled.
    pub action: Option<String>,
    /// Rejections in a row after which a record is dead-lettered; 0: never.
    pub dead_letter_after: u32,
}

type TargetSource = Box<dyn Fn() -> DeliveryTarget + Send + Sync>;

/// Forwards spooled records through a named data action.
pub struct Deliverer {
    spool: Arc<Spool>,
    target: TargetSource,
    backoff: Backoff,
    metrics: Option<Arc<Metrics>>,
    /// Ends a backoff wait early (after a reload).
    retry_now: Arc<Notify>,
}

/// How one delivery attempt went.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Delivered,
    /// The receiver refused this record.
    Rejected,
    /// The receiver is unreachable or failing; try again later.
    Failed,
}

fn verdict(result: &ActionResult) -> Verdict {
    if DELIVERED_OUTCOMES.contains(&result.outcome.as_str()) {
        return Verdict::Delivered;
    }
    if result.outcome == REJECTED_OUTCOME {
        return Verdict::Rejected;
    }
    match result.status {
        Some(408 | 425 | 429) => Verdict::Failed,
        Some(400..=499) => Verdict::Rejected,
        _ => Verdict::Failed,
    }
}

impl Deliverer {
    /// A deliverer with a fixed target. `action` must exist in `executor`
    /// (e.g. `audit`, whose templates read the record fields `id`,
    /// `result`, `timestamp`, … and which should send `id` as an
    /// idempotency key header).
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
        let target = DeliveryTarget {
            executor,
            action: Some(action.to_string()),
            dead_letter_after: DEFAULT_DEAD_LETTER_AFTER,
        };
        Ok(Self::following(spool, backoff, move || target.clone()))
    }

    /// A deliverer that asks `target` before every attempt (the running
    /// configuration, swapped on reload).
    pub fn following(
        spool: Arc<Spool>,
        backoff: Backoff,
        target: impl Fn() -> DeliveryTarget + Send + Sync + 'static,
    ) -> Self {
        Deliverer {
            spool,
            target: Box::new(target),
            backoff,
            metrics: None,
            retry_now: Arc::new(Notify::new()),
        }
    }

    /// Notify it after a configuration reload: a delivery waiting out its
    /// backoff is tried again at once, through the new target.
    pub fn waker(&self) -> Arc<Notify> {
        self.retry_now.clone()
    }

    /// Count deliveries, failures and dead letters, and keep the backlog
    /// gauge current.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Records waiting for delivery (for `/readyz` and metrics).
    pub fn backlog(&self) -> usize {
        self.spool.backlog()
    }

    fn observe_backlog(&self) {
        if let Some(m) = &self.metrics {
            m.audit_backlog(self.spool.backlog() as u64);
        }
    }

    /// Deliver until `cancel` fires. Spawn it: `tokio::spawn(d.run(token))`.
    /// A record in flight when cancelled stays pending (redelivered later).
    pub async fn run(self, cancel: CancellationToken) {
        let notify = self.spool.notifier();
        let mut delay = self.backoff.initial;
        // Rejections in a row of the record at the front (by id).
        let mut rejections: Option<(String, u32)> = None;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let target = (self.target)();
            let (Some(record), Some(action)) = (self.spool.front(), target.action.as_deref())
            else {
                // Nothing to send, or nowhere to send it: wait for a new
                // record or a reload.
                tokio::select! {
                    _ = notify.notified() => continue,
                    _ = self.retry_now.notified() => continue,
                    _ = cancel.cancelled() => return,
                }
            };
            let vars = record.to_vars();
            let result = tokio::select! {
                r = target.executor.run(action, &vars) => r,
                _ = cancel.cancelled() => return,
            };
            match verdict(&result) {
                Verdict::Delivered => {
                    rejections = None;
                    if let Some(m) = &self.metrics {
                        m.audit_delivered();
                    }
                    let spool = self.spool.clone();
                    let id = record.id.clone();
                    match tokio::task::spawn_blocking(move || spool.ack(&id)).await {
                        Ok(Ok(_)) => {
                            delay = self.backoff.initial;
                            tracing::debug!(
                                backlog = self.spool.backlog(),
                                "audit record delivered"
                            );
                            self.observe_backlog();
                            continue;
                        }
                        // Delivered but not acked (full disk): it will be
                        // sent again and the receiver deduplicates. Back off
                        // so a broken disk does not spin.
                        Ok(Err(e)) => tracing::error!(error = %e, "audit spool: ack not written"),
                        Err(_) => return,
                    }
                }
                Verdict::Rejected => {
                    let count = match &mut rejections {
                        Some((id, n)) if *id == record.id => {
                            *n += 1;
                            *n
                        }
                        _ => {
                            rejections = Some((record.id.clone(), 1));
                            1
                        }
                    };
                    if let Some(m) = &self.metrics {
                        m.audit_delivery_failed();
                    }
                    let limit = target.dead_letter_after;
                    if limit > 0 && count >= limit {
                        let spool = self.spool.clone();
                        let id = record.id.clone();
                        match tokio::task::spawn_blocking(move || spool.dead_letter(&id)).await {
                            Ok(Ok(_)) => {
                                tracing::error!(
                                    id = %record.id,
                                    status = result.status.unwrap_or(0),
                                    outcome = %result.outcome,
                                    rejections = count,
                                    "audit record rejected by the receiver; moved to the dead-letter file"
                                );
                                if let Some(m) = &self.metrics {
                                    m.audit_dead_lettered();
                                }
                                rejections = None;
                                delay = self.backoff.initial;
                                self.observe_backlog();
                                continue;
                            }
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "audit spool: dead letter not written")
                            }
                            Err(_) => return,
                        }
                    } else {
                        tracing::warn!(
                            id = %record.id,
                            status = result.status.unwrap_or(0),
                            outcome = %result.outcome,
                            rejections = count,
                            dead_letter_after = limit,
                            "audit record rejected by the receiver; will retry"
                        );
                    }
                }
                Verdict::Failed => {
                    if let Some(m) = &self.metrics {
                        m.audit_delivery_failed();
                    }
                    tracing::warn!(
                        outcome = %result.outcome,
                        status = result.status.unwrap_or(0),
                        retry_in_ms = delay.as_millis() as u64,
                        backlog = self.spool.backlog(),
                        "audit delivery failed; will retry"
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => delay = (delay * 2).min(self.backoff.max),
                _ = self.retry_now.notified() => delay = self.backoff.initial,
                _ = cancel.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: &str, status: Option<u16>) -> ActionResult {
        ActionResult {
            outcome: outcome.into(),
            outputs: Default::default(),
            status,
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn verdicts() {
        for (outcome, status, want) in [
            ("success", Some(201), Verdict::Delivered),
            ("duplicate", Some(200), Verdict::Delivered),
            ("rejected", Some(200), Verdict::Rejected),
            ("error", Some(400), Verdict::Rejected),
            ("error", Some(422), Verdict::Rejected),
            ("error", Some(408), Verdict::Failed),
            ("error", Some(429), Verdict::Failed),
            ("error", Some(500), Verdict::Failed),
            ("error", Some(503), Verdict::Failed),
            ("error", None, Verdict::Failed),
            ("timeout", None, Verdict::Failed),
        ] {
            assert_eq!(
                verdict(&result(outcome, status)),
                want,
                "{outcome} {status:?}"
            );
        }
    }
}
