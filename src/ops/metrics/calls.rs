//! Call families: calls in progress, how calls ended, INVITEs refused before a call started,
//! and call tasks that panicked.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::sip::SipStatus;
use super::{MetricDoc, Metrics};
use crate::call::CallOutcome;

const HELP_CALLS_ACTIVE: &str = "Calls currently in progress (answered or being set up)";
const HELP_CALLS_FINISHED: &str = "Calls finished, by how they ended";
const HELP_SETUP_REJECTIONS: &str =
    "INVITEs refused before a call started, by reason and SIP status code sent";
const HELP_PANICS: &str = "Call tasks that panicked (the call was ended, the process kept running)";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_calls_active", "gauge", HELP_CALLS_ACTIVE),
    MetricDoc::new(
        "sspr_ivr_calls_finished_total",
        "counter",
        HELP_CALLS_FINISHED,
    ),
    MetricDoc::new(
        "sspr_ivr_call_setup_rejections_total",
        "counter",
        HELP_SETUP_REJECTIONS,
    ),
    MetricDoc::new("sspr_ivr_call_task_panics_total", "counter", HELP_PANICS),
];

label_enum! {
    /// How a call ended, as a label (`sspr_ivr_calls_finished_total{outcome}`): the call's own
    /// [`crate::call::CallOutcome`] folded into fewer values, plus what only the runtime knows
    /// (refused, failed, panicked).
    CallEnd {
        /// The flow reached its end and hung up.
        Completed => "completed",
        /// Transferred to an agent (REFER accepted).
        Transferred => "transferred",
        /// The caller hung up (BYE or CANCEL) before the flow finished.
        CallerHangup => "caller_hangup",
        /// Refused at setup (488, 503, …) after the call was counted, or ended
        /// by BYE because the caller's late answer could not be used.
        Rejected => "rejected",
        /// Ended by an internal or backend error.
        Failed => "failed",
        /// No ACK, no RTP, or the call time limit was reached.
        Timeout => "timeout",
        /// Ended by BYE at the end of a shutdown drain.
        Drained => "drained",
        /// The call task panicked.
        Panicked => "panicked",
    }
}

label_enum! {
    /// Why an INVITE was refused before a call started.
    RejectReason {
        /// Concurrent-call limit reached (503).
        Capacity => "capacity",
        /// INVITE rate limit per source reached (503).
        RateLimited => "rate_limited",
        /// Live-call limit per source reached (503).
        SourceLimit => "source_limit",
        /// Shutting down (503 with Retry-After).
        Draining => "draining",
        /// No codec in common (488).
        NoCommonCodec => "no_common_codec",
        /// Malformed or unusable SDP offer (400/488).
        BadSdp => "bad_sdp",
        /// The offer insists on SRTP we may not give, or `media.srtp: required`
        /// and the call cannot have it (488).
        MediaNotSecure => "media_not_secure",
        /// The offer's media address is of the other IP family than ours (488).
        AddressFamily => "address_family",
        /// The source is not in `sip.trusted_peers` (403).
        Untrusted => "untrusted_peer",
        /// No flow is configured for the dialled number (404).
        NoRoute => "no_route",
        /// Any other refusal.
        Other => "other",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: CallEnd,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    reason: RejectReason,
    status: SipStatus,
}

/// The call families.
pub(super) struct CallMetrics {
    active: Gauge,
    finished: Family<OutcomeLabels, Counter>,
    setup_rejections: Family<RejectLabels, Counter>,
    panics: Counter,
}

impl CallMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = CallMetrics {
            active: Gauge::default(),
            finished: Family::default(),
            setup_rejections: Family::default(),
            panics: Counter::default(),
        };
        registry.register("calls_active", HELP_CALLS_ACTIVE, m.active.clone());
        registry.register("calls_finished", HELP_CALLS_FINISHED, m.finished.clone());
        registry.register(
            "call_setup_rejections",
            HELP_SETUP_REJECTIONS,
            m.setup_rejections.clone(),
        );
        registry.register("call_task_panics", HELP_PANICS, m.panics.clone());
        m
    }
}

impl Metrics {
    /// Counts a call as active until the returned guard is dropped (drop it when the call task
    /// ends, whatever the reason — including a panic unwinding through it).
    #[must_use = "the call counts as active only while the guard lives"]
    pub fn call_started(self: &Arc<Self>) -> ActiveCall {
        self.calls.active.inc();
        ActiveCall {
            metrics: Arc::clone(self),
        }
    }

    /// Current value of the active-calls gauge.
    pub fn calls_active(&self) -> i64 {
        self.calls.active.get()
    }

    /// Counts a finished call by outcome.
    pub fn call_finished(&self, outcome: CallEnd) {
        self.calls
            .finished
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts an INVITE refused before a call started, with the status code sent.
    pub fn call_rejected(&self, reason: RejectReason, status: u16) {
        self.calls
            .setup_rejections
            .get_or_create(&RejectLabels {
                reason,
                status: SipStatus::new(status),
            })
            .inc();
    }

    /// Counts a panic in a call task.
    pub fn call_panicked(&self) {
        self.calls.panics.inc();
    }
}

impl From<CallOutcome> for CallEnd {
    fn from(o: CallOutcome) -> Self {
        match o {
            CallOutcome::Completed => CallEnd::Completed,
            CallOutcome::Transferred => CallEnd::Transferred,
            CallOutcome::CallerHangup => CallEnd::CallerHangup,
            CallOutcome::AckTimeout
            | CallOutcome::RtpTimeout
            | CallOutcome::MaxDuration
            | CallOutcome::SessionExpired => CallEnd::Timeout,
            CallOutcome::Shutdown => CallEnd::Drained,
            CallOutcome::MediaRefused => CallEnd::Rejected,
        }
    }
}

/// RAII guard from [`Metrics::call_started`]: decrements `sspr_ivr_calls_active` on drop.
#[derive(Debug)]
pub struct ActiveCall {
    metrics: Arc<Metrics>,
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.metrics.calls.active.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_calls_gauge_follows_guards() {
        let m = Arc::new(Metrics::new());
        let a = m.call_started();
        let b = m.call_started();
        assert_eq!(m.calls_active(), 2);
        drop(a);
        assert!(m.encode().contains("sspr_ivr_calls_active 1\n"));
        drop(b);
        assert_eq!(m.calls_active(), 0);
    }
}
