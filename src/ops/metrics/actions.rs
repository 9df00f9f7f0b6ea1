//! Data-action family: latency by configured action name and outcome.
//!
//! Action names and outcomes are strings from the configuration, so they are checked against
//! a catalog taken from it ([`Metrics::set_action_catalog`]); anything else is `other`, and the
//! label value is always the catalog's shared string, never the caller's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{MetricDoc, Metrics, OTHER};

/// Upper bounds of the data-action latency histogram, in seconds.
pub const ACTION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const HELP_ACTION_DURATION: &str =
    "Latency of HTTP data actions, by configured action name and outcome";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[MetricDoc::new(
    "sspr_ivr_action_duration_seconds",
    "histogram",
    HELP_ACTION_DURATION,
)];

/// A label value taken from the configured allowlist (shared, never the caller's string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CatalogName(Arc<str>);

impl EncodeLabelValue for CatalogName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionLabels {
    action: CatalogName,
    outcome: CatalogName,
}

fn action_histogram() -> Histogram {
    Histogram::new(ACTION_BUCKETS.iter().copied())
}

/// Configured action names and, per action, its declared outcomes.
#[derive(Debug, Default)]
struct ActionCatalog {
    actions: BTreeMap<Arc<str>, BTreeSet<Arc<str>>>,
}

/// The data-action family and its catalog.
pub(super) struct ActionMetrics {
    duration: Family<ActionLabels, Histogram, fn() -> Histogram>,
    catalog: RwLock<ActionCatalog>,
    other: Arc<str>,
}

impl ActionMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = ActionMetrics {
            duration: Family::new_with_constructor(action_histogram as fn() -> Histogram),
            catalog: RwLock::new(ActionCatalog::default()),
            other: Arc::from(OTHER),
        };
        registry.register_with_unit(
            "action_duration",
            HELP_ACTION_DURATION,
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }
}

impl Metrics {
    /// Replaces the allowlist of action names and their outcomes (call at start-up and after a
    /// successful reload). `timeout` and `error` are always allowed as outcomes.
    pub fn set_action_catalog<I, N, O, S>(&self, actions: I)
    where
        I: IntoIterator<Item = (N, O)>,
        N: AsRef<str>,
        O: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut catalog = ActionCatalog::default();
        for (name, outcomes) in actions {
            let mut set: BTreeSet<Arc<str>> = outcomes
                .into_iter()
                .map(|o| Arc::from(o.as_ref()))
                .collect();
            set.insert(Arc::from("timeout"));
            set.insert(Arc::from("error"));
            catalog.actions.insert(Arc::from(name.as_ref()), set);
        }
        match self.actions.catalog.write() {
            Ok(mut guard) => *guard = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }

    /// Records one data-action run. Names and outcomes not in the configured catalog are
    /// recorded as `other`.
    pub fn action_observed(&self, action: &str, outcome: &str, duration: Duration) {
        let other = &self.actions.other;
        let labels = {
            let catalog = match self.actions.catalog.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            match catalog.actions.get_key_value(action) {
                Some((name, outcomes)) => ActionLabels {
                    action: CatalogName(Arc::clone(name)),
                    outcome: CatalogName(
                        outcomes
                            .get(outcome)
                            .cloned()
                            .unwrap_or_else(|| Arc::clone(other)),
                    ),
                },
                None => ActionLabels {
                    action: CatalogName(Arc::clone(other)),
                    outcome: CatalogName(Arc::clone(other)),
                },
            }
        };
        self.actions
            .duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_replacement_drops_old_names() {
        let m = Metrics::new();
        m.set_action_catalog([("old_action", ["ok"])]);
        m.set_action_catalog([("new_action", ["ok"])]);
        m.action_observed("old_action", "ok", Duration::from_millis(1));
        m.action_observed("new_action", "timeout", Duration::from_millis(1));
        let text = m.encode();
        assert!(!text.contains("old_action"));
        assert!(text.contains("action=\"new_action\",outcome=\"timeout\"}"));
    }
}
