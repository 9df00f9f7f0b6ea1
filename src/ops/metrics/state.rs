//! Shared state store families: whether the store that holds the cross-call limits
//! answers, and the reset attempts and code sends refused because it did not (fail
//! closed).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};

const HELP_STATE_AVAILABLE: &str =
    "1 while the shared state store (state.backend) answers, 0 after a failed check or probe";
const HELP_STATE_REFUSED: &str =
    "Reset attempts and code sends refused because the shared state store did not answer in time";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new(
        "sspr_ivr_state_store_available",
        "gauge",
        HELP_STATE_AVAILABLE,
    ),
    MetricDoc::new(
        "sspr_ivr_attempts_refused_state_unavailable_total",
        "counter",
        HELP_STATE_REFUSED,
    ),
];

/// The state store families.
pub(super) struct StateMetrics {
    available: Gauge,
    refused: Counter,
}

impl StateMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = StateMetrics {
            available: Gauge::default(),
            refused: Counter::default(),
        };
        m.available.set(1);
        registry.register(
            "state_store_available",
            HELP_STATE_AVAILABLE,
            m.available.clone(),
        );
        registry.register(
            "attempts_refused_state_unavailable",
            HELP_STATE_REFUSED,
            m.refused.clone(),
        );
        m
    }
}

impl Metrics {
    /// Sets whether the shared state store answers.
    pub fn state_store_available(&self, available: bool) {
        self.state.available.set(i64::from(available));
    }

    /// Counts one reset attempt or code send refused because the store did not answer.
    pub fn attempt_refused_state_unavailable(&self) {
        self.state.refused.inc();
    }
}
