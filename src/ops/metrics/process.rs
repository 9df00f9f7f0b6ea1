//! Process-wide families: build information, start time and configuration reloads.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::{MetricDoc, Metrics};

const HELP_BUILD_INFO: &str = "Build information; always 1, the version is a label";
const HELP_START_TIME: &str = "Start time of the process since the Unix epoch, in seconds";
const HELP_RELOADS: &str = "Configuration reloads (SIGHUP), by result";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_build_info", "gauge", HELP_BUILD_INFO),
    MetricDoc::new(
        "sspr_ivr_process_start_time_seconds",
        "gauge",
        HELP_START_TIME,
    ),
    MetricDoc::new("sspr_ivr_config_reloads_total", "counter", HELP_RELOADS),
];

label_enum! {
    /// Result of a configuration reload.
    ReloadResult {
        /// The new configuration and flows are in use.
        Ok => "ok",
        /// The new configuration was invalid; the old one stays.
        Rejected => "rejected",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

/// The process families (registered once, updated by [`Metrics`]'s recorders).
pub(super) struct ProcessMetrics {
    reloads: Family<ReloadLabels, Counter>,
}

impl ProcessMetrics {
    /// Registers the families and sets build info and the start time (now).
    pub(super) fn register(registry: &mut Registry) -> Self {
        let build_info: Family<VersionLabels, Gauge> = Family::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", HELP_BUILD_INFO, build_info);

        let start_time: Gauge<f64, AtomicU64> = Gauge::default();
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        start_time.set(start);
        registry.register_with_unit(
            "process_start_time",
            HELP_START_TIME,
            Unit::Seconds,
            start_time,
        );

        let m = ProcessMetrics {
            reloads: Family::default(),
        };
        registry.register("config_reloads", HELP_RELOADS, m.reloads.clone());
        m
    }
}

impl Metrics {
    /// Counts a configuration reload by result.
    pub fn config_reloaded(&self, result: ReloadResult) {
        self.process
            .reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_time_is_recent() {
        let m = Metrics::new();
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("sspr_ivr_process_start_time_seconds "))
            .expect("start time sample");
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(value > 1.6e9 && value <= now, "{value}");
    }
}
