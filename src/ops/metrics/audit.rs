//! Audit families: records waiting in the durable spool, and delivery to the audit endpoint.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};

const HELP_AUDIT_BACKLOG: &str = "Audit records in the durable spool not yet delivered";
const HELP_AUDIT_DELIVERED: &str = "Audit records delivered to the audit endpoint";
const HELP_AUDIT_FAILED: &str = "Audit delivery attempts that failed (the record stays spooled)";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_audit_spool_backlog", "gauge", HELP_AUDIT_BACKLOG),
    MetricDoc::new(
        "sspr_ivr_audit_records_delivered_total",
        "counter",
        HELP_AUDIT_DELIVERED,
    ),
    MetricDoc::new(
        "sspr_ivr_audit_delivery_failures_total",
        "counter",
        HELP_AUDIT_FAILED,
    ),
];

/// The audit families.
pub(super) struct AuditMetrics {
    backlog: Gauge,
    delivered: Counter,
    failed: Counter,
}

impl AuditMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = AuditMetrics {
            backlog: Gauge::default(),
            delivered: Counter::default(),
            failed: Counter::default(),
        };
        registry.register("audit_spool_backlog", HELP_AUDIT_BACKLOG, m.backlog.clone());
        registry.register(
            "audit_records_delivered",
            HELP_AUDIT_DELIVERED,
            m.delivered.clone(),
        );
        registry.register(
            "audit_delivery_failures",
            HELP_AUDIT_FAILED,
            m.failed.clone(),
        );
        m
    }
}

impl Metrics {
    /// Sets the number of audit records waiting in the spool.
    pub fn audit_backlog(&self, records: u64) {
        self.audit
            .backlog
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Counts one audit record delivered.
    pub fn audit_delivered(&self) {
        self.audit.delivered.inc();
    }

    /// Counts one failed audit delivery attempt.
    pub fn audit_delivery_failed(&self) {
        self.audit.failed.inc();
    }
}
