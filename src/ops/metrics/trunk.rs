//! Trunk families: outbound registrations (is each one in place, how its attempts end) and
//! requests refused because their source is not a trusted peer.
//!
//! The `trunk` label is a registration's configured `name` (checked at load to be letters,
//! digits, `-`, `_` and `.`, at most 64 of them): operator data, never caller data.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};

const HELP_REG_UP: &str = "1 while the registration with this trunk is in place, else 0";
const HELP_REG_RESULTS: &str = "Registration attempts (REGISTER transactions) by how they ended";
const HELP_UNTRUSTED: &str =
    "Requests from sources outside sip.trusted_peers, by what they were answered";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_sip_registration_up", "gauge", HELP_REG_UP),
    MetricDoc::new(
        "sspr_ivr_sip_registrations_total",
        "counter",
        HELP_REG_RESULTS,
    ),
    MetricDoc::new(
        "sspr_ivr_sip_untrusted_requests_total",
        "counter",
        HELP_UNTRUSTED,
    ),
];

label_enum! {
    /// How one registration attempt ended.
    RegistrationResult {
        /// `2xx`: the binding is in place (first time or refresh).
        Registered => "registered",
        /// `401`/`407` after our credentials: wrong user name or password.
        AuthFailed => "auth_failed",
        /// No final response within Timer F (32 s).
        Timeout => "timeout",
        /// Any other final error (`403`, `404`, `423` twice, `5xx`, …).
        Rejected => "rejected",
        /// The binding was removed at shutdown.
        Unregistered => "unregistered",
    }
}

label_enum! {
    /// What a request from an untrusted source got.
    UntrustedAnswer {
        /// A stateless `403 Forbidden`.
        Forbidden => "forbidden",
        /// Nothing: dropped unanswered.
        Silence => "silence",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TrunkLabels {
    trunk: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    trunk: String,
    result: RegistrationResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AnswerLabels {
    answer: UntrustedAnswer,
}

/// The trunk families.
pub(super) struct TrunkMetrics {
    up: Family<TrunkLabels, Gauge>,
    results: Family<ResultLabels, Counter>,
    untrusted: Family<AnswerLabels, Counter>,
}

impl TrunkMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = TrunkMetrics {
            up: Family::default(),
            results: Family::default(),
            untrusted: Family::default(),
        };
        registry.register("sip_registration_up", HELP_REG_UP, m.up.clone());
        registry.register("sip_registrations", HELP_REG_RESULTS, m.results.clone());
        registry.register(
            "sip_untrusted_requests",
            HELP_UNTRUSTED,
            m.untrusted.clone(),
        );
        m
    }
}

impl Metrics {
    /// Sets whether the registration named `trunk` is in place.
    pub fn registration_up(&self, trunk: &str, up: bool) {
        self.trunk
            .up
            .get_or_create(&TrunkLabels {
                trunk: trunk.to_string(),
            })
            .set(i64::from(up));
    }

    /// Counts one registration attempt of `trunk` ending with `result`.
    pub fn registration_attempt(&self, trunk: &str, result: RegistrationResult) {
        self.trunk
            .results
            .get_or_create(&ResultLabels {
                trunk: trunk.to_string(),
                result,
            })
            .inc();
    }

    /// Counts `n` requests from untrusted sources answered with `answer`.
    pub fn untrusted_requests(&self, answer: UntrustedAnswer, n: u64) {
        if n > 0 {
            self.trunk
                .untrusted
                .get_or_create(&AnswerLabels { answer })
                .inc_by(n);
        }
    }
}
