//! Flow result families: password reset attempts and one-time code sends and verifications.
//!
//! Flows report results as free-form tokens (audit `result`, action outcomes); the mappings
//! here fold them into closed label sets, so a flow author cannot create label values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};

const HELP_RESETS: &str = "Password reset attempts, by final result";
const HELP_OTP_SENDS: &str = "One-time code send requests, by result";
const HELP_OTP_VERIFICATIONS: &str = "One-time code verifications, by result";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_resets_total", "counter", HELP_RESETS),
    MetricDoc::new("sspr_ivr_otp_sends_total", "counter", HELP_OTP_SENDS),
    MetricDoc::new(
        "sspr_ivr_otp_verifications_total",
        "counter",
        HELP_OTP_VERIFICATIONS,
    ),
];

label_enum! {
    /// Final result of a password reset attempt (`sspr_ivr_resets_total{result}`).
    ResetResult {
        /// The new PIN was set.
        Success => "success",
        /// The new PIN was refused as too simple.
        TooSimple => "too_simple",
        /// The new PIN was refused as previously used.
        Reused => "reused",
        /// The account is locked.
        Locked => "locked",
        /// Identity checks failed too many times.
        MismatchExhausted => "mismatch_exhausted",
        /// One-time code attempts exhausted.
        OtpExhausted => "otp_exhausted",
        /// The caller left before a result.
        Abandoned => "abandoned",
        /// The identity provider or a backend failed.
        BackendError => "backend_error",
        /// The caller was not found in the directory.
        NotFound => "not_found",
        /// Per-caller or per-account rate limit hit.
        RateLimited => "rate_limited",
        /// Transferred to an agent before a result.
        Transferred => "transferred",
        /// Not attempted: the audit spool could not record it (fail closed).
        AuditUnavailable => "audit_unavailable",
        /// Any result the flow audits that is not listed here.
        Other => "other",
    }
}

impl ResetResult {
    /// Maps an audit `result` token from a flow to a label; unknown tokens become `Other`, so a
    /// flow author cannot create unbounded label values.
    pub fn from_audit(result: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == result)
            .unwrap_or(ResetResult::Other)
    }
}

label_enum! {
    /// Result of a one-time code send request.
    OtpSendResult {
        /// The provider accepted the request.
        Sent => "sent",
        /// The provider refused because of its resend window or our per-call limit.
        Throttled => "throttled",
        /// The provider failed or timed out.
        Failed => "failed",
        /// Not sent: the caller number's or the global send budget was spent
        /// (`security.otp_sends_per_ani`, `security.otp_sends_global`); the
        /// provider was not asked.
        Refused => "refused",
    }
}

impl OtpSendResult {
    /// Maps a data-action outcome of the OTP send action: `sent`/`success`/`ok` → `Sent`,
    /// `throttled`/`rate_limited`/`too_many` → `Throttled`, anything else (`error`,
    /// `timeout`, …) → `Failed`.
    pub fn from_outcome(outcome: &str) -> Self {
        match outcome {
            "sent" | "success" | "ok" => OtpSendResult::Sent,
            "throttled" | "rate_limited" | "too_many" => OtpSendResult::Throttled,
            _ => OtpSendResult::Failed,
        }
    }
}

label_enum! {
    /// Result of a one-time code verification.
    OtpVerifyResult {
        /// The code matched.
        Valid => "valid",
        /// The code did not match.
        Invalid => "invalid",
        /// The code had expired.
        Expired => "expired",
        /// The provider failed or timed out.
        Failed => "failed",
    }
}

impl OtpVerifyResult {
    /// Maps a data-action outcome of the OTP verify action: `valid`/`approved`/`success`/`ok`
    /// → `Valid`, `invalid`/`mismatch`/`wrong` → `Invalid`, `expired` → `Expired`, anything
    /// else (`error`, `timeout`, …) → `Failed`.
    pub fn from_outcome(outcome: &str) -> Self {
        match outcome {
            "valid" | "approved" | "success" | "ok" => OtpVerifyResult::Valid,
            "invalid" | "mismatch" | "wrong" => OtpVerifyResult::Invalid,
            "expired" => OtpVerifyResult::Expired,
            _ => OtpVerifyResult::Failed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResetLabels {
    result: ResetResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OtpSendLabels {
    result: OtpSendResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OtpVerifyLabels {
    result: OtpVerifyResult,
}

/// The flow result families.
pub(super) struct ResultMetrics {
    resets: Family<ResetLabels, Counter>,
    otp_sends: Family<OtpSendLabels, Counter>,
    otp_verifications: Family<OtpVerifyLabels, Counter>,
}

impl ResultMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = ResultMetrics {
            resets: Family::default(),
            otp_sends: Family::default(),
            otp_verifications: Family::default(),
        };
        registry.register("resets", HELP_RESETS, m.resets.clone());
        registry.register("otp_sends", HELP_OTP_SENDS, m.otp_sends.clone());
        registry.register(
            "otp_verifications",
            HELP_OTP_VERIFICATIONS,
            m.otp_verifications.clone(),
        );
        m
    }
}

impl Metrics {
    /// Counts a password reset attempt by result.
    pub fn reset_finished(&self, result: ResetResult) {
        self.results
            .resets
            .get_or_create(&ResetLabels { result })
            .inc();
    }

    /// Counts a one-time code send request by result.
    pub fn otp_sent(&self, result: OtpSendResult) {
        self.results
            .otp_sends
            .get_or_create(&OtpSendLabels { result })
            .inc();
    }

    /// Counts a one-time code verification by result.
    pub fn otp_verified(&self, result: OtpVerifyResult) {
        self.results
            .otp_verifications
            .get_or_create(&OtpVerifyLabels { result })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_mapping_table() {
        for (input, want) in [
            ("success", ResetResult::Success),
            ("too_simple", ResetResult::TooSimple),
            ("otp_exhausted", ResetResult::OtpExhausted),
            ("SUCCESS", ResetResult::Other),
            ("", ResetResult::Other),
        ] {
            assert_eq!(ResetResult::from_audit(input), want, "{input}");
        }
    }

    #[test]
    fn otp_outcome_tables() {
        for (input, want) in [
            ("sent", OtpSendResult::Sent),
            ("success", OtpSendResult::Sent),
            ("rate_limited", OtpSendResult::Throttled),
            ("timeout", OtpSendResult::Failed),
            ("123456", OtpSendResult::Failed),
        ] {
            assert_eq!(OtpSendResult::from_outcome(input), want, "{input}");
        }
        for (input, want) in [
            ("valid", OtpVerifyResult::Valid),
            ("approved", OtpVerifyResult::Valid),
            ("mismatch", OtpVerifyResult::Invalid),
            ("expired", OtpVerifyResult::Expired),
            ("error", OtpVerifyResult::Failed),
            ("", OtpVerifyResult::Failed),
        ] {
            assert_eq!(OtpVerifyResult::from_outcome(input), want, "{input}");
        }
    }
}
