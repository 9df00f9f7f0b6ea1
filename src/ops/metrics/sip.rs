//! SIP families: requests received by method, responses sent by status code, parse errors,
//! garbage dropped, retransmissions and requests shed by the transaction budget — all counted by the sans-IO endpoint and reported here
//! as deltas by the SIP task.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics, OTHER};

const HELP_SIP_REQUESTS: &str = "SIP requests received, by method";
const HELP_SIP_RESPONSES: &str = "SIP responses sent, by status code";
const HELP_SIP_PARSE_ERRORS: &str =
    "SIP messages that could not be parsed (answered with 400 where possible)";
const HELP_SIP_GARBAGE: &str = "Datagrams or stream bytes dropped as not SIP at all";
const HELP_SIP_RETRANSMISSIONS: &str = "SIP messages retransmitted by transaction timers";
const HELP_SIP_SHED: &str =
    "SIP requests given no server transaction because the transaction budget \
     (sip.max_server_transactions, sip.max_server_transaction_bytes) was full of live ones: \
     an INVITE is answered 503, another request is answered but not remembered";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new(
        "sspr_ivr_sip_requests_received_total",
        "counter",
        HELP_SIP_REQUESTS,
    ),
    MetricDoc::new(
        "sspr_ivr_sip_responses_sent_total",
        "counter",
        HELP_SIP_RESPONSES,
    ),
    MetricDoc::new(
        "sspr_ivr_sip_parse_errors_total",
        "counter",
        HELP_SIP_PARSE_ERRORS,
    ),
    MetricDoc::new(
        "sspr_ivr_sip_garbage_dropped_total",
        "counter",
        HELP_SIP_GARBAGE,
    ),
    MetricDoc::new(
        "sspr_ivr_sip_retransmissions_total",
        "counter",
        HELP_SIP_RETRANSMISSIONS,
    ),
    MetricDoc::new(
        "sspr_ivr_sip_transactions_shed_total",
        "counter",
        HELP_SIP_SHED,
    ),
];

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

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: SipMethod,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    code: SipStatus,
}

/// The SIP families.
pub(super) struct SipMetrics {
    requests: Family<MethodLabels, Counter>,
    responses: Family<StatusLabels, Counter>,
    parse_errors: Counter,
    garbage: Counter,
    retransmissions: Counter,
    shed: Counter,
}

impl SipMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = SipMetrics {
            requests: Family::default(),
            responses: Family::default(),
            parse_errors: Counter::default(),
            garbage: Counter::default(),
            retransmissions: Counter::default(),
            shed: Counter::default(),
        };
        registry.register(
            "sip_requests_received",
            HELP_SIP_REQUESTS,
            m.requests.clone(),
        );
        registry.register(
            "sip_responses_sent",
            HELP_SIP_RESPONSES,
            m.responses.clone(),
        );
        registry.register(
            "sip_parse_errors",
            HELP_SIP_PARSE_ERRORS,
            m.parse_errors.clone(),
        );
        registry.register("sip_garbage_dropped", HELP_SIP_GARBAGE, m.garbage.clone());
        registry.register(
            "sip_retransmissions",
            HELP_SIP_RETRANSMISSIONS,
            m.retransmissions.clone(),
        );
        registry.register("sip_transactions_shed", HELP_SIP_SHED, m.shed.clone());
        m
    }
}

impl Metrics {
    /// Counts `n` SIP requests received with this method.
    pub fn sip_requests_received(&self, method: SipMethod, n: u64) {
        if n > 0 {
            self.sip
                .requests
                .get_or_create(&MethodLabels { method })
                .inc_by(n);
        }
    }

    /// Counts `n` SIP responses sent with this status code.
    pub fn sip_responses_sent(&self, status: u16, n: u64) {
        if n > 0 {
            self.sip
                .responses
                .get_or_create(&StatusLabels {
                    code: SipStatus::new(status),
                })
                .inc_by(n);
        }
    }

    /// Counts `n` unparseable SIP messages.
    pub fn sip_parse_errors(&self, n: u64) {
        self.sip.parse_errors.inc_by(n);
    }

    /// Counts `n` datagrams/segments dropped as garbage.
    pub fn sip_garbage_dropped(&self, n: u64) {
        self.sip.garbage.inc_by(n);
    }

    /// Counts `n` retransmissions.
    pub fn sip_retransmissions(&self, n: u64) {
        self.sip.retransmissions.inc_by(n);
    }

    /// Counts `n` requests the transaction budget had no room for.
    pub fn sip_transactions_shed(&self, n: u64) {
        self.sip.shed.inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_mapping_table() {
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
    fn status_codes_outside_sip_range_collapse_to_other() {
        assert_eq!(SipStatus::new(486).code(), Some(486));
        assert_eq!(SipStatus::new(99).code(), None);
        assert_eq!(SipStatus::new(700).code(), None);
    }
}
