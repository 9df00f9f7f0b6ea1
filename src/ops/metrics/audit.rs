//! Audit families: records waiting in the durable spool, delivery to the audit endpoint, dead
//! letters, and the spool's health — which decides whether a reset may start at all.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};

const HELP_AUDIT_BACKLOG: &str = "Audit records in the durable spool not yet delivered";
const HELP_AUDIT_DELIVERED: &str = "Audit records delivered to the audit endpoint";
const HELP_AUDIT_FAILED: &str = "Audit delivery attempts that failed (the record stays spooled)";
const HELP_AUDIT_DEAD: &str =
    "Audit records the receiver kept rejecting, moved to the dead-letter file";
const HELP_AUDIT_WRITABLE: &str =
    "1 while the audit spool takes writes, 0 after a failed write until one succeeds";
const HELP_AUDIT_HELD: &str =
    "Audit records held in memory because the spool could not take them yet";
const HELP_AUDIT_WRITE_FAILURES: &str =
    "Audit spool writes that failed (full disk, I/O error); nothing partial stays on disk";
const HELP_AUDIT_REFUSED: &str =
    "Reset requests not sent because the audit spool could not take their write-ahead record";

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
    MetricDoc::new(
        "sspr_ivr_audit_records_dead_lettered_total",
        "counter",
        HELP_AUDIT_DEAD,
    ),
    MetricDoc::new(
        "sspr_ivr_audit_spool_writable",
        "gauge",
        HELP_AUDIT_WRITABLE,
    ),
    MetricDoc::new("sspr_ivr_audit_spool_held", "gauge", HELP_AUDIT_HELD),
    MetricDoc::new(
        "sspr_ivr_audit_spool_write_failures_total",
        "counter",
        HELP_AUDIT_WRITE_FAILURES,
    ),
    MetricDoc::new(
        "sspr_ivr_resets_refused_audit_unavailable_total",
        "counter",
        HELP_AUDIT_REFUSED,
    ),
];

/// The audit families.
pub(super) struct AuditMetrics {
    backlog: Gauge,
    delivered: Counter,
    failed: Counter,
    dead_lettered: Counter,
    writable: Gauge,
    held: Gauge,
    write_failures: Counter,
    refused: Counter,
}

impl AuditMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = AuditMetrics {
            backlog: Gauge::default(),
            delivered: Counter::default(),
            failed: Counter::default(),
            dead_lettered: Counter::default(),
            writable: Gauge::default(),
            held: Gauge::default(),
            write_failures: Counter::default(),
            refused: Counter::default(),
        };
        m.writable.set(1);
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
        registry.register(
            "audit_records_dead_lettered",
            HELP_AUDIT_DEAD,
            m.dead_lettered.clone(),
        );
        registry.register(
            "audit_spool_writable",
            HELP_AUDIT_WRITABLE,
            m.writable.clone(),
        );
        registry.register("audit_spool_held", HELP_AUDIT_HELD, m.held.clone());
        registry.register(
            "audit_spool_write_failures",
            HELP_AUDIT_WRITE_FAILURES,
            m.write_failures.clone(),
        );
        registry.register(
            "resets_refused_audit_unavailable",
            HELP_AUDIT_REFUSED,
            m.refused.clone(),
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

    /// Counts one audit record moved to the dead-letter file.
    pub fn audit_dead_lettered(&self) {
        self.audit.dead_lettered.inc();
    }

    /// Sets whether the audit spool takes writes, and how many records wait in memory.
    pub fn audit_spool_state(&self, writable: bool, held: u64) {
        self.audit.writable.set(i64::from(writable));
        self.audit.held.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// Counts one failed audit spool write.
    pub fn audit_spool_write_failed(&self) {
        self.audit.write_failures.inc();
    }

    /// Counts one reset request not sent because its write-ahead record could not be spooled.
    pub fn reset_refused_audit_unavailable(&self) {
        self.audit.refused.inc();
    }
}
