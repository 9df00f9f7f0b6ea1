//! Runtime facts as metric labels: why a call was refused, what an audit record
//! means for the reset counters, media counters as metric counts.

use crate::admission::Refusal;
use crate::media::MediaStats;
use crate::ops::metrics::{RejectReason, ResetResult, RtpCounts};

/// The `reason` label of a refused INVITE.
pub fn refusal(r: Refusal) -> RejectReason {
    match r {
        Refusal::Draining => RejectReason::Draining,
        Refusal::Capacity | Refusal::NoRtpPort => RejectReason::Capacity,
        Refusal::RateLimited => RejectReason::RateLimited,
        Refusal::SourceLimit => RejectReason::SourceLimit,
        Refusal::NoCommonCodec => RejectReason::NoCommonCodec,
        Refusal::BadSdp => RejectReason::BadSdp,
        Refusal::MediaNotSecure => RejectReason::MediaNotSecure,
        Refusal::AddressFamily => RejectReason::AddressFamily,
        Refusal::Untrusted => RejectReason::Untrusted,
    }
}

/// Media counters as metrics counts.
pub fn rtp_counts(stats: &MediaStats) -> RtpCounts {
    RtpCounts {
        sent: stats.packets_sent,
        received: stats.packets_received,
        late: stats.late,
        lost: stats.lost,
        malformed: stats.malformed,
        phase_moves: stats.phase_moves,
    }
}

/// The reset-result metric for an audit record: flows write `failure` with
/// a reason token, so the reason says which failure it was.
pub fn reset_result(result: &str, reason: &str) -> ResetResult {
    if result == "success" {
        return ResetResult::Success;
    }
    match reason {
        "account_locked" => ResetResult::Locked,
        "otp_exhausted" | "otp_not_entered" => ResetResult::OtpExhausted,
        "pin_mismatch_exhausted" => ResetResult::MismatchExhausted,
        "pin_policy_rejected" => ResetResult::TooSimple,
        "backend_error" | "backend_unavailable" => ResetResult::BackendError,
        "unknown_id" => ResetResult::NotFound,
        "rate_limited" => ResetResult::RateLimited,
        "audit_unavailable" => ResetResult::AuditUnavailable,
        r if r.starts_with("caller_hangup") || r.contains("abandon") => ResetResult::Abandoned,
        r if r.contains("transfer") => ResetResult::Transferred,
        _ => ResetResult::from_audit(result),
    }
}
