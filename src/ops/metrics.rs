//! Prometheus metrics for the whole process, on `prometheus-client`.
//!
//! One [`Metrics`] value is created at start-up and shared (`Arc`) with every task. Callers
//! record through typed methods (`m.call_finished(CallOutcome::Completed)`), never through raw
//! label strings, so the set of label values is fixed by the enums below: no label can ever carry
//! caller data (ANI, digits, Call-IDs). The only free-form labels are data-action names and their
//! outcomes, and those are checked against an allowlist taken from the configuration
//! ([`Metrics::set_action_catalog`]); anything else is recorded as `other`.
//!
//! Names follow the Prometheus conventions: `sspr_ivr_` prefix, `_total` on counters, base units
//! (`_seconds`) on histograms. [`encode`](Metrics::encode) produces the OpenMetrics text format
//! (which Prometheus scrapes natively); serve it with [`CONTENT_TYPE`].
//!
//! This module does not serve HTTP (see `ops::admin`) and keeps no per-call state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Content type of [`Metrics::encode`]'s output (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric name.
pub const PREFIX: &str = "sspr_ivr";

/// Label value used for anything outside an allowlist (unknown SIP methods, action names or
/// outcomes not in the configuration, out-of-range status codes).
pub const OTHER: &str = "other";

/// Upper bounds of the data-action latency histogram, in seconds.
pub const ACTION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every exposed metric family: (name as scraped, type, help text). The encoder appends a final
/// `.` to help texts. `docs/operations.md` lists the same table.
pub const METRICS: &[(&str, &str, &str)] = &[
    ("sspr_ivr_build_info", "gauge", HELP_BUILD_INFO),
    (
        "sspr_ivr_process_start_time_seconds",
        "gauge",
        HELP_START_TIME,
    ),
    ("sspr_ivr_calls_active", "gauge", HELP_CALLS_ACTIVE),
    (
        "sspr_ivr_calls_finished_total",
        "counter",
        HELP_CALLS_FINISHED,
    ),
    (
        "sspr_ivr_call_setup_rejections_total",
        "counter",
        HELP_SETUP_REJECTIONS,
    ),
    ("sspr_ivr_call_task_panics_total", "counter", HELP_PANICS),
    ("sspr_ivr_resets_total", "counter", HELP_RESETS),
    ("sspr_ivr_otp_sends_total", "counter", HELP_OTP_SENDS),
    (
        "sspr_ivr_otp_verifications_total",
        "counter",
        HELP_OTP_VERIFICATIONS,
    ),
    ("sspr_ivr_dtmf_digits_total", "counter", HELP_DTMF),
    (
        "sspr_ivr_sip_requests_received_total",
        "counter",
        HELP_SIP_REQUESTS,
    ),
    (
        "sspr_ivr_sip_responses_sent_total",
        "counter",
        HELP_SIP_RESPONSES,
    ),
    (
        "sspr_ivr_sip_parse_errors_total",
        "counter",
        HELP_SIP_PARSE_ERRORS,
    ),
    (
        "sspr_ivr_sip_garbage_dropped_total",
        "counter",
        HELP_SIP_GARBAGE,
    ),
    (
        "sspr_ivr_sip_retransmissions_total",
        "counter",
        HELP_SIP_RETRANSMISSIONS,
    ),
    ("sspr_ivr_rtp_packets_sent_total", "counter", HELP_RTP_SENT),
    (
        "sspr_ivr_rtp_packets_received_total",
        "counter",
        HELP_RTP_RECEIVED,
    ),
    ("sspr_ivr_rtp_packets_late_total", "counter", HELP_RTP_LATE),
    ("sspr_ivr_rtp_packets_lost_total", "counter", HELP_RTP_LOST),
    (
        "sspr_ivr_rtp_packets_malformed_total",
        "counter",
        HELP_RTP_MALFORMED,
    ),
    (
        "sspr_ivr_action_duration_seconds",
        "histogram",
        HELP_ACTION_DURATION,
    ),
    ("sspr_ivr_audit_spool_backlog", "gauge", HELP_AUDIT_BACKLOG),
    (
        "sspr_ivr_audit_records_delivered_total",
        "counter",
        HELP_AUDIT_DELIVERED,
    ),
    (
        "sspr_ivr_audit_delivery_failures_total",
        "counter",
        HELP_AUDIT_FAILED,
    ),
    ("sspr_ivr_config_reloads_total", "counter", HELP_RELOADS),
];

const HELP_BUILD_INFO: &str = "Build information; always 1, the version is a label";
const HELP_START_TIME: &str = "Start time of the process since the Unix epoch, in seconds";
const HELP_CALLS_ACTIVE: &str = "Calls currently in progress (answered or being set up)";
const HELP_CALLS_FINISHED: &str = "Calls finished, by how they ended";
const HELP_SETUP_REJECTIONS: &str =
    "INVITEs refused before a call started, by reason and SIP status code sent";
const HELP_PANICS: &str = "Call tasks that panicked (the call was ended, the process kept running)";
const HELP_RESETS: &str = "Password reset attempts, by final result";
const HELP_OTP_SENDS: &str = "One-time code send requests, by result";
const HELP_OTP_VERIFICATIONS: &str = "One-time code verifications, by result";
const HELP_DTMF: &str = "DTMF digits received, by transport (counts only, never values)";
const HELP_SIP_REQUESTS: &str = "SIP requests received, by method";
const HELP_SIP_RESPONSES: &str = "SIP responses sent, by status code";
const HELP_SIP_PARSE_ERRORS: &str =
    "SIP messages that could not be parsed (answered with 400 where possible)";
const HELP_SIP_GARBAGE: &str = "Datagrams or stream bytes dropped as not SIP at all";
const HELP_SIP_RETRANSMISSIONS: &str = "SIP messages retransmitted by transaction timers";
const HELP_RTP_SENT: &str = "RTP packets sent";
const HELP_RTP_RECEIVED: &str = "RTP packets received and accepted";
const HELP_RTP_LATE: &str = "RTP packets received too late to be used";
const HELP_RTP_LOST: &str = "RTP packets never received (sequence number gaps)";
const HELP_RTP_MALFORMED: &str = "Datagrams on RTP ports that were not valid RTP";
const HELP_ACTION_DURATION: &str =
    "Latency of HTTP data actions, by configured action name and outcome";
const HELP_AUDIT_BACKLOG: &str = "Audit records in the durable spool not yet delivered";
const HELP_AUDIT_DELIVERED: &str = "Audit records delivered to the audit endpoint";
const HELP_AUDIT_FAILED: &str = "Audit delivery attempts that failed (the record stays spooled)";
const HELP_RELOADS: &str = "Configuration reloads (SIGHUP), by result";

/// Defines a closed label enum with its wire value and `ALL`.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value as exported.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $value,)+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// How a call ended (`sspr_ivr_calls_finished_total{outcome}`).
    CallOutcome {
        /// The flow reached its end and hung up.
        Completed => "completed",
        /// Transferred to an agent (REFER accepted).
        Transferred => "transferred",
        /// The caller hung up (BYE or CANCEL) before the flow finished.
        CallerHangup => "caller_hangup",
        /// Refused at setup (488, 503, …) after the call was counted.
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
        /// Shutting down (503 with Retry-After).
        Draining => "draining",
        /// No codec in common (488).
        NoCommonCodec => "no_common_codec",
        /// Malformed or unusable SDP offer (400/488).
        BadSdp => "bad_sdp",
        /// No flow is configured for the dialled number (404).
        NoRoute => "no_route",
        /// Any other refusal.
        Other => "other",
    }
}

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

label_enum! {
    /// How a DTMF digit arrived.
    DtmfTransport {
        /// RFC 4733 telephone-event in RTP.
        Rfc4733 => "rfc4733",
        /// In-band tones (Goertzel detector).
        Inband => "inband",
        /// SIP INFO (application/dtmf-relay or application/dtmf).
        Info => "info",
    }
}

label_enum! {
    /// SIP request method; anything not listed is `Other`.
    SipMethod {
        Invite => "INVITE",
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Options => "OPTIONS",
        Info => "INFO",
        Refer => "REFER",
        Notify => "NOTIFY",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Message => "MESSAGE",
        Update => "UPDATE",
        Prack => "PRACK",
        Publish => "PUBLISH",
        Other => "other",
    }
}

impl SipMethod {
    /// Maps a method token as received (peer data) to a fixed label.
    pub fn from_name(method: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|m| *m != SipMethod::Other && m.as_str().eq_ignore_ascii_case(method))
            .unwrap_or(SipMethod::Other)
    }
}

label_enum! {
    /// Result of a configuration reload.
    ReloadResult {
        /// The new configuration and flows are in use.
        Ok => "ok",
        /// The new configuration was invalid; the old one stays.
        Rejected => "rejected",
    }
}

label_enum! {
    /// One RTP packet counter.
    RtpCounter {
        Sent => "sent",
        Received => "received",
        Late => "late",
        Lost => "lost",
        Malformed => "malformed",
    }
}

/// A SIP status code label: `100..=699` is kept, anything else is exported as `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SipStatus(u16);

impl SipStatus {
    /// Wraps a status code; out-of-range values collapse to one `other` label.
    pub fn new(code: u16) -> Self {
        if (100..=699).contains(&code) {
            SipStatus(code)
        } else {
            SipStatus(0)
        }
    }

    /// The code, or `None` for the `other` bucket.
    pub fn code(self) -> Option<u16> {
        (self.0 != 0).then_some(self.0)
    }
}

impl EncodeLabelValue for SipStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.code() {
            Some(code) => write!(encoder, "{code}"),
            None => encoder.write_str(OTHER),
        }
    }
}

/// Per-call RTP counters, added in one go when a call ends (or periodically as deltas).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtpCounts {
    pub sent: u64,
    pub received: u64,
    pub late: u64,
    pub lost: u64,
    pub malformed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: CallOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    reason: RejectReason,
    status: SipStatus,
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

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DtmfLabels {
    transport: DtmfTransport,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: SipMethod,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    code: SipStatus,
}

/// A label value taken from the configured allowlist (shared, never the caller's string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CatalogName(Arc<str>);

impl EncodeLabelValue for CatalogName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionLabels {
    action: CatalogName,
    outcome: CatalogName,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

fn action_histogram() -> Histogram {
    Histogram::new(ACTION_BUCKETS.iter().copied())
}

/// Configured action names and, per action, its declared outcomes.
#[derive(Debug, Default)]
struct ActionCatalog {
    actions: BTreeMap<Arc<str>, BTreeSet<Arc<str>>>,
}

/// All process metrics. Create once with [`Metrics::new`], share as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    calls_active: Gauge,
    calls_finished: Family<OutcomeLabels, Counter>,
    setup_rejections: Family<RejectLabels, Counter>,
    panics: Counter,
    resets: Family<ResetLabels, Counter>,
    otp_sends: Family<OtpSendLabels, Counter>,
    otp_verifications: Family<OtpVerifyLabels, Counter>,
    dtmf: Family<DtmfLabels, Counter>,
    sip_requests: Family<MethodLabels, Counter>,
    sip_responses: Family<StatusLabels, Counter>,
    sip_parse_errors: Counter,
    sip_garbage: Counter,
    sip_retransmissions: Counter,
    rtp_sent: Counter,
    rtp_received: Counter,
    rtp_late: Counter,
    rtp_lost: Counter,
    rtp_malformed: Counter,
    action_duration: Family<ActionLabels, Histogram, fn() -> Histogram>,
    action_catalog: RwLock<ActionCatalog>,
    other: Arc<str>,
    audit_backlog: Gauge,
    audit_delivered: Counter,
    audit_failed: Counter,
    reloads: Family<ReloadLabels, Counter>,
    start_time: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric and records the process start time (now).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics {
            calls_active: Gauge::default(),
            calls_finished: Family::default(),
            setup_rejections: Family::default(),
            panics: Counter::default(),
            resets: Family::default(),
            otp_sends: Family::default(),
            otp_verifications: Family::default(),
            dtmf: Family::default(),
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            sip_parse_errors: Counter::default(),
            sip_garbage: Counter::default(),
            sip_retransmissions: Counter::default(),
            rtp_sent: Counter::default(),
            rtp_received: Counter::default(),
            rtp_late: Counter::default(),
            rtp_lost: Counter::default(),
            rtp_malformed: Counter::default(),
            action_duration: Family::new_with_constructor(action_histogram as fn() -> Histogram),
            action_catalog: RwLock::new(ActionCatalog::default()),
            other: Arc::from(OTHER),
            audit_backlog: Gauge::default(),
            audit_delivered: Counter::default(),
            audit_failed: Counter::default(),
            reloads: Family::default(),
            start_time: Gauge::default(),
            registry: Registry::default(),
        };
        let build_info: Family<VersionLabels, Gauge> = Family::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", HELP_BUILD_INFO, build_info);
        registry.register_with_unit(
            "process_start_time",
            HELP_START_TIME,
            Unit::Seconds,
            m.start_time.clone(),
        );
        registry.register("calls_active", HELP_CALLS_ACTIVE, m.calls_active.clone());
        registry.register(
            "calls_finished",
            HELP_CALLS_FINISHED,
            m.calls_finished.clone(),
        );
        registry.register(
            "call_setup_rejections",
            HELP_SETUP_REJECTIONS,
            m.setup_rejections.clone(),
        );
        registry.register("call_task_panics", HELP_PANICS, m.panics.clone());
        registry.register("resets", HELP_RESETS, m.resets.clone());
        registry.register("otp_sends", HELP_OTP_SENDS, m.otp_sends.clone());
        registry.register(
            "otp_verifications",
            HELP_OTP_VERIFICATIONS,
            m.otp_verifications.clone(),
        );
        registry.register("dtmf_digits", HELP_DTMF, m.dtmf.clone());
        registry.register(
            "sip_requests_received",
            HELP_SIP_REQUESTS,
            m.sip_requests.clone(),
        );
        registry.register(
            "sip_responses_sent",
            HELP_SIP_RESPONSES,
            m.sip_responses.clone(),
        );
        registry.register(
            "sip_parse_errors",
            HELP_SIP_PARSE_ERRORS,
            m.sip_parse_errors.clone(),
        );
        registry.register(
            "sip_garbage_dropped",
            HELP_SIP_GARBAGE,
            m.sip_garbage.clone(),
        );
        registry.register(
            "sip_retransmissions",
            HELP_SIP_RETRANSMISSIONS,
            m.sip_retransmissions.clone(),
        );
        registry.register("rtp_packets_sent", HELP_RTP_SENT, m.rtp_sent.clone());
        registry.register(
            "rtp_packets_received",
            HELP_RTP_RECEIVED,
            m.rtp_received.clone(),
        );
        registry.register("rtp_packets_late", HELP_RTP_LATE, m.rtp_late.clone());
        registry.register("rtp_packets_lost", HELP_RTP_LOST, m.rtp_lost.clone());
        registry.register(
            "rtp_packets_malformed",
            HELP_RTP_MALFORMED,
            m.rtp_malformed.clone(),
        );
        registry.register_with_unit(
            "action_duration",
            HELP_ACTION_DURATION,
            Unit::Seconds,
            m.action_duration.clone(),
        );
        registry.register(
            "audit_spool_backlog",
            HELP_AUDIT_BACKLOG,
            m.audit_backlog.clone(),
        );
        registry.register(
            "audit_records_delivered",
            HELP_AUDIT_DELIVERED,
            m.audit_delivered.clone(),
        );
        registry.register(
            "audit_delivery_failures",
            HELP_AUDIT_FAILED,
            m.audit_failed.clone(),
        );
        registry.register("config_reloads", HELP_RELOADS, m.reloads.clone());

        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        m.start_time.set(start);
        Metrics { registry, ..m }
    }

    /// Renders every metric in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail; an Err here would be a bug in an encoder impl.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }

    // ---- calls ------------------------------------------------------------------------------

    /// Counts a call as active until the returned guard is dropped (drop it when the call task
    /// ends, whatever the reason — including a panic unwinding through it).
    #[must_use = "the call counts as active only while the guard lives"]
    pub fn call_started(self: &Arc<Self>) -> ActiveCall {
        self.calls_active.inc();
        ActiveCall {
            metrics: Arc::clone(self),
        }
    }

    /// Current value of the active-calls gauge.
    pub fn calls_active(&self) -> i64 {
        self.calls_active.get()
    }

    /// Counts a finished call by outcome.
    pub fn call_finished(&self, outcome: CallOutcome) {
        self.calls_finished
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts an INVITE refused before a call started, with the status code sent.
    pub fn call_rejected(&self, reason: RejectReason, status: u16) {
        self.setup_rejections
            .get_or_create(&RejectLabels {
                reason,
                status: SipStatus::new(status),
            })
            .inc();
    }

    /// Counts a panic in a call task.
    pub fn call_panicked(&self) {
        self.panics.inc();
    }

    // ---- flow results -----------------------------------------------------------------------

    /// Counts a password reset attempt by result.
    pub fn reset_finished(&self, result: ResetResult) {
        self.resets.get_or_create(&ResetLabels { result }).inc();
    }

    /// Counts a one-time code send request by result.
    pub fn otp_sent(&self, result: OtpSendResult) {
        self.otp_sends
            .get_or_create(&OtpSendLabels { result })
            .inc();
    }

    /// Counts a one-time code verification by result.
    pub fn otp_verified(&self, result: OtpVerifyResult) {
        self.otp_verifications
            .get_or_create(&OtpVerifyLabels { result })
            .inc();
    }

    /// Counts one DTMF digit (never its value).
    pub fn dtmf_digit(&self, transport: DtmfTransport) {
        self.dtmf.get_or_create(&DtmfLabels { transport }).inc();
    }

    // ---- SIP --------------------------------------------------------------------------------

    /// Counts `n` SIP requests received with this method.
    pub fn sip_requests_received(&self, method: SipMethod, n: u64) {
        if n > 0 {
            self.sip_requests
                .get_or_create(&MethodLabels { method })
                .inc_by(n);
        }
    }

    /// Counts `n` SIP responses sent with this status code.
    pub fn sip_responses_sent(&self, status: u16, n: u64) {
        if n > 0 {
            self.sip_responses
                .get_or_create(&StatusLabels {
                    code: SipStatus::new(status),
                })
                .inc_by(n);
        }
    }

    /// Counts `n` unparseable SIP messages.
    pub fn sip_parse_errors(&self, n: u64) {
        self.sip_parse_errors.inc_by(n);
    }

    /// Counts `n` datagrams/segments dropped as garbage.
    pub fn sip_garbage_dropped(&self, n: u64) {
        self.sip_garbage.inc_by(n);
    }

    /// Counts `n` retransmissions.
    pub fn sip_retransmissions(&self, n: u64) {
        self.sip_retransmissions.inc_by(n);
    }

    // ---- RTP --------------------------------------------------------------------------------

    /// Adds `n` to one RTP counter.
    pub fn rtp_add(&self, counter: RtpCounter, n: u64) {
        let c = match counter {
            RtpCounter::Sent => &self.rtp_sent,
            RtpCounter::Received => &self.rtp_received,
            RtpCounter::Late => &self.rtp_late,
            RtpCounter::Lost => &self.rtp_lost,
            RtpCounter::Malformed => &self.rtp_malformed,
        };
        c.inc_by(n);
    }

    /// Adds a call's RTP counters (or a delta of them).
    pub fn rtp_observed(&self, counts: RtpCounts) {
        self.rtp_sent.inc_by(counts.sent);
        self.rtp_received.inc_by(counts.received);
        self.rtp_late.inc_by(counts.late);
        self.rtp_lost.inc_by(counts.lost);
        self.rtp_malformed.inc_by(counts.malformed);
    }

    // ---- data actions -----------------------------------------------------------------------

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
        match self.action_catalog.write() {
            Ok(mut guard) => *guard = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }

    /// Records one data-action run. Names and outcomes not in the configured catalog are
    /// recorded as `other`.
    pub fn action_observed(&self, action: &str, outcome: &str, duration: Duration) {
        let labels = {
            let catalog = match self.action_catalog.read() {
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
                            .unwrap_or_else(|| Arc::clone(&self.other)),
                    ),
                },
                None => ActionLabels {
                    action: CatalogName(Arc::clone(&self.other)),
                    outcome: CatalogName(Arc::clone(&self.other)),
                },
            }
        };
        self.action_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Sets the number of audit records waiting in the spool.
    pub fn audit_backlog(&self, records: u64) {
        self.audit_backlog
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Counts one audit record delivered.
    pub fn audit_delivered(&self) {
        self.audit_delivered.inc();
    }

    /// Counts one failed audit delivery attempt.
    pub fn audit_delivery_failed(&self) {
        self.audit_failed.inc();
    }

    // ---- process ----------------------------------------------------------------------------

    /// Counts a configuration reload by result.
    pub fn config_reloaded(&self, result: ReloadResult) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }
}

/// RAII guard from [`Metrics::call_started`]: decrements `sspr_ivr_calls_active` on drop.
#[derive(Debug)]
pub struct ActiveCall {
    metrics: Arc<Metrics>,
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.metrics.calls_active.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `name{labels} value` sample lines into (name, labels) pairs.
    fn samples(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|line| {
                let head = line.rsplit_once(' ').map(|(h, _)| h).unwrap_or(line);
                match head.split_once('{') {
                    Some((name, rest)) => {
                        let body = rest.trim_end_matches('}');
                        let labels = body
                            .split(',')
                            .filter(|kv| !kv.is_empty())
                            .filter_map(|kv| kv.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                            .collect();
                        (name.to_string(), labels)
                    }
                    None => (head.to_string(), Vec::new()),
                }
            })
            .collect()
    }

    fn exercise_everything(m: &Arc<Metrics>) {
        m.set_action_catalog([("lookup_user", ["found", "not_found"])]);
        let _g = m.call_started();
        for o in CallOutcome::ALL {
            m.call_finished(*o);
        }
        for r in RejectReason::ALL {
            m.call_rejected(*r, 503);
        }
        m.call_panicked();
        for r in ResetResult::ALL {
            m.reset_finished(*r);
        }
        for r in OtpSendResult::ALL {
            m.otp_sent(*r);
        }
        for r in OtpVerifyResult::ALL {
            m.otp_verified(*r);
        }
        for t in DtmfTransport::ALL {
            m.dtmf_digit(*t);
        }
        for meth in SipMethod::ALL {
            m.sip_requests_received(*meth, 1);
        }
        m.sip_responses_sent(200, 1);
        m.sip_parse_errors(1);
        m.sip_garbage_dropped(1);
        m.sip_retransmissions(1);
        for c in RtpCounter::ALL {
            m.rtp_add(*c, 1);
        }
        m.action_observed("lookup_user", "found", Duration::from_millis(40));
        m.audit_backlog(3);
        m.audit_delivered();
        m.audit_delivery_failed();
        m.config_reloaded(ReloadResult::Ok);
    }

    #[test]
    fn every_documented_metric_is_exposed_with_its_type_and_help() {
        let m = Arc::new(Metrics::new());
        exercise_everything(&m);
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for (name, kind, help) in METRICS {
            // Counters are described without the `_total` suffix in OpenMetrics.
            let family = name.strip_suffix("_total").unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "missing TYPE for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {family} {help}.\n")),
                "missing HELP for {name}"
            );
            let sample = if *kind == "histogram" {
                format!("{name}_count")
            } else {
                name.to_string()
            };
            assert!(
                samples(&text).iter().any(|(n, _)| *n == sample),
                "no sample for {name}"
            );
        }
        // Nothing exposed that is not documented.
        let documented: BTreeSet<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
        for (name, _) in samples(&text) {
            let base = ["_bucket", "_count", "_sum", "_created"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                documented.contains(name.as_str()) || documented.contains(base),
                "undocumented metric {name}"
            );
            assert!(name.starts_with("sspr_ivr_"), "{name}");
        }
    }

    #[test]
    fn expected_names_and_labels() {
        let m = Arc::new(Metrics::new());
        m.set_action_catalog([("lookup_user", vec!["found".to_string()])]);
        m.call_finished(CallOutcome::CallerHangup);
        m.call_finished(CallOutcome::CallerHangup);
        m.call_rejected(RejectReason::Draining, 503);
        m.reset_finished(ResetResult::MismatchExhausted);
        m.dtmf_digit(DtmfTransport::Rfc4733);
        m.sip_requests_received(SipMethod::from_name("invite"), 2);
        m.sip_responses_sent(486, 1);
        m.sip_responses_sent(42, 1);
        m.action_observed("lookup_user", "found", Duration::from_millis(30));
        m.otp_verified(OtpVerifyResult::Invalid);
        m.config_reloaded(ReloadResult::Rejected);
        m.rtp_observed(RtpCounts {
            sent: 50,
            lost: 2,
            ..RtpCounts::default()
        });
        let text = m.encode();
        for expected in [
            "sspr_ivr_calls_finished_total{outcome=\"caller_hangup\"} 2\n",
            "sspr_ivr_call_setup_rejections_total{reason=\"draining\",status=\"503\"} 1\n",
            "sspr_ivr_resets_total{result=\"mismatch_exhausted\"} 1\n",
            "sspr_ivr_dtmf_digits_total{transport=\"rfc4733\"} 1\n",
            "sspr_ivr_sip_requests_received_total{method=\"INVITE\"} 2\n",
            "sspr_ivr_sip_responses_sent_total{code=\"486\"} 1\n",
            "sspr_ivr_sip_responses_sent_total{code=\"other\"} 1\n",
            "sspr_ivr_action_duration_seconds_bucket{le=\"0.05\",action=\"lookup_user\",outcome=\"found\"} 1\n",
            "sspr_ivr_action_duration_seconds_bucket{le=\"0.025\",action=\"lookup_user\",outcome=\"found\"} 0\n",
            "sspr_ivr_action_duration_seconds_count{action=\"lookup_user\",outcome=\"found\"} 1\n",
            "sspr_ivr_otp_verifications_total{result=\"invalid\"} 1\n",
            "sspr_ivr_config_reloads_total{result=\"rejected\"} 1\n",
            "sspr_ivr_rtp_packets_sent_total 50\n",
            "sspr_ivr_rtp_packets_lost_total 2\n",
            "sspr_ivr_build_info{version=\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

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

    /// Every label value that can appear is one of the enums' fixed strings, a configured
    /// action name/outcome, `other`, a version, a status code or a histogram bound — whatever
    /// strings callers pass in.
    #[test]
    fn only_allowed_label_values_can_be_produced() {
        let m = Arc::new(Metrics::new());
        exercise_everything(&m);
        // Hostile inputs: caller-like data where strings are accepted.
        let ani = "+15551234567";
        let digits = "123456";
        let call_id = "a84b4c76e66710@pc33.example.com";
        for s in [ani, digits, call_id, "lookup_user\"} 1\n# EOF", "\u{0}"] {
            m.action_observed(s, "found", Duration::from_millis(1));
            m.action_observed("lookup_user", s, Duration::from_millis(1));
            m.sip_requests_received(SipMethod::from_name(s), 1);
            m.reset_finished(ResetResult::from_audit(s));
        }
        m.sip_responses_sent(u16::MAX, 1);
        m.call_rejected(RejectReason::Other, 0);

        let mut allowed: BTreeSet<String> = BTreeSet::new();
        macro_rules! allow {
            ($($t:ty),*) => {$(for v in <$t>::ALL { allowed.insert(v.as_str().to_string()); })*};
        }
        allow!(
            CallOutcome,
            RejectReason,
            ResetResult,
            OtpSendResult,
            OtpVerifyResult,
            DtmfTransport,
            SipMethod,
            ReloadResult
        );
        for v in [
            "lookup_user",
            "found",
            "not_found",
            "timeout",
            "error",
            OTHER,
        ] {
            allowed.insert(v.to_string());
        }
        allowed.insert(env!("CARGO_PKG_VERSION").to_string());
        for b in ACTION_BUCKETS {
            allowed.insert(format!("{b:?}"));
        }
        allowed.insert("+Inf".to_string());

        let text = m.encode();
        for secret in [ani, digits, call_id, "pc33"] {
            assert!(!text.contains(secret), "caller data in metrics: {secret}");
        }
        for (name, labels) in samples(&text) {
            for (key, value) in labels {
                let ok = allowed.contains(&value)
                    || ((key == "status" || key == "code")
                        && value.parse::<u16>().is_ok_and(|c| (100..=699).contains(&c)));
                assert!(ok, "unexpected label {key}={value:?} on {name}");
            }
        }
        assert!(text.contains("action=\"other\",outcome=\"other\"} "));
        assert!(text.contains("action=\"lookup_user\",outcome=\"other\"} "));
    }

    #[test]
    fn reset_and_method_mapping_tables() {
        for (input, want) in [
            ("success", ResetResult::Success),
            ("too_simple", ResetResult::TooSimple),
            ("otp_exhausted", ResetResult::OtpExhausted),
            ("SUCCESS", ResetResult::Other),
            ("", ResetResult::Other),
        ] {
            assert_eq!(ResetResult::from_audit(input), want, "{input}");
        }
        for (input, want) in [
            ("INVITE", SipMethod::Invite),
            ("bye", SipMethod::Bye),
            ("other", SipMethod::Other),
            ("FOO", SipMethod::Other),
        ] {
            assert_eq!(SipMethod::from_name(input), want, "{input}");
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
