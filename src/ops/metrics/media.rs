//! Media families: DTMF digits by transport (counts, never values) and RTP packet counters.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};
use crate::media::DigitSource;

const HELP_DTMF: &str = "DTMF digits received, by transport (counts only, never values)";
const HELP_RTP_SENT: &str = "RTP packets sent";
const HELP_RTP_RECEIVED: &str = "RTP packets received and accepted";
const HELP_RTP_LATE: &str =
    "RTP packets this server sent more than 2 ms after their schedule (a busy host)";
const HELP_RTP_LOST: &str =
    "RTP packets of callers' streams that never arrived (sequence gaps within a stream)";
const HELP_RTP_MALFORMED: &str = "Datagrams on RTP ports that were not valid RTP";
const HELP_RTP_PHASE_MOVES: &str =
    "Times a call moved its packet times to follow its caller's packets (one interval longer or shorter by 5-15 ms each)";
const HELP_RECORDING_DROPPED: &str =
    "Recorded audio frames dropped because the recording writers were too far behind (a slow disk); silence in the recording";
const HELP_RTP_REJECTED: &str =
    "Datagrams on RTP ports dropped unparsed: not from the caller (media trust), by reason; while a caller streams, its call's socket is connected to it and the kernel drops the rest uncounted";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_dtmf_digits_total", "counter", HELP_DTMF),
    MetricDoc::new("sspr_ivr_rtp_packets_sent_total", "counter", HELP_RTP_SENT),
    MetricDoc::new(
        "sspr_ivr_rtp_packets_received_total",
        "counter",
        HELP_RTP_RECEIVED,
    ),
    MetricDoc::new("sspr_ivr_rtp_packets_late_total", "counter", HELP_RTP_LATE),
    MetricDoc::new("sspr_ivr_rtp_packets_lost_total", "counter", HELP_RTP_LOST),
    MetricDoc::new(
        "sspr_ivr_rtp_packets_malformed_total",
        "counter",
        HELP_RTP_MALFORMED,
    ),
    MetricDoc::new(
        "sspr_ivr_rtp_packets_rejected_total",
        "counter",
        HELP_RTP_REJECTED,
    ),
    MetricDoc::new(
        "sspr_ivr_rtp_phase_moves_total",
        "counter",
        HELP_RTP_PHASE_MOVES,
    ),
    MetricDoc::new(
        "sspr_ivr_recording_frames_dropped_total",
        "counter",
        HELP_RECORDING_DROPPED,
    ),
];

label_enum! {
    /// Why a datagram on an RTP port was dropped before parsing.
    RtpRejectReason {
        /// From an IP that is neither the caller's SDP nor its signalling address.
        UntrustedSource => "untrusted_source",
        /// From a trusted IP, but not the latched address.
        NotLatched => "not_latched",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    reason: RtpRejectReason,
}

/// Every [`DigitSource`], the `transport` label of `sspr_ivr_dtmf_digits_total`.
pub const DIGIT_SOURCES: [DigitSource; 3] =
    [DigitSource::Rfc4733, DigitSource::Inband, DigitSource::Info];

/// The `transport` label value of a digit's source.
pub fn digit_source_label(source: DigitSource) -> &'static str {
    match source {
        DigitSource::Rfc4733 => "rfc4733",
        DigitSource::Inband => "inband",
        DigitSource::Info => "info",
    }
}

impl EncodeLabelValue for DigitSource {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(digit_source_label(*self))
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

/// Per-call RTP counters; a live call adds what they gained every second, and the rest
/// when it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtpCounts {
    pub sent: u64,
    pub received: u64,
    pub late: u64,
    pub lost: u64,
    pub malformed: u64,
    pub phase_moves: u64,
}

impl RtpCounts {
    /// What each counter gained since `earlier` (never negative: a late packet can lower
    /// a call's loss, which a counter cannot give back).
    pub fn since(&self, earlier: &RtpCounts) -> RtpCounts {
        RtpCounts {
            sent: self.sent.saturating_sub(earlier.sent),
            received: self.received.saturating_sub(earlier.received),
            late: self.late.saturating_sub(earlier.late),
            lost: self.lost.saturating_sub(earlier.lost),
            malformed: self.malformed.saturating_sub(earlier.malformed),
            phase_moves: self.phase_moves.saturating_sub(earlier.phase_moves),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DtmfLabels {
    transport: DigitSource,
}

/// The media families.
pub(super) struct MediaMetrics {
    dtmf: Family<DtmfLabels, Counter>,
    rtp_sent: Counter,
    rtp_received: Counter,
    rtp_late: Counter,
    rtp_lost: Counter,
    rtp_malformed: Counter,
    rtp_rejected: Family<RejectLabels, Counter>,
    rtp_phase_moves: Counter,
    recording_dropped: Counter,
}

impl MediaMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = MediaMetrics {
            dtmf: Family::default(),
            rtp_sent: Counter::default(),
            rtp_received: Counter::default(),
            rtp_late: Counter::default(),
            rtp_lost: Counter::default(),
            rtp_malformed: Counter::default(),
            rtp_rejected: Family::default(),
            rtp_phase_moves: Counter::default(),
            recording_dropped: Counter::default(),
        };
        registry.register("dtmf_digits", HELP_DTMF, m.dtmf.clone());
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
        registry.register(
            "rtp_packets_rejected",
            HELP_RTP_REJECTED,
            m.rtp_rejected.clone(),
        );
        registry.register(
            "rtp_phase_moves",
            HELP_RTP_PHASE_MOVES,
            m.rtp_phase_moves.clone(),
        );
        registry.register(
            "recording_frames_dropped",
            HELP_RECORDING_DROPPED,
            m.recording_dropped.clone(),
        );
        m
    }

    fn rtp(&self, counter: RtpCounter) -> &Counter {
        match counter {
            RtpCounter::Sent => &self.rtp_sent,
            RtpCounter::Received => &self.rtp_received,
            RtpCounter::Late => &self.rtp_late,
            RtpCounter::Lost => &self.rtp_lost,
            RtpCounter::Malformed => &self.rtp_malformed,
        }
    }
}

impl Metrics {
    /// Counts one DTMF digit (never its value).
    pub fn dtmf_digit(&self, transport: DigitSource) {
        self.media
            .dtmf
            .get_or_create(&DtmfLabels { transport })
            .inc();
    }

    /// Adds `n` to one RTP counter.
    pub fn rtp_add(&self, counter: RtpCounter, n: u64) {
        self.media.rtp(counter).inc_by(n);
    }

    /// Counts recorded frames dropped because the writers were behind.
    pub fn recording_frames_dropped(&self, n: u64) {
        self.media.recording_dropped.inc_by(n);
    }

    /// Counts datagrams dropped unparsed on a call's RTP port (live, as they happen).
    pub fn rtp_rejected(&self, reason: RtpRejectReason, n: u64) {
        if n > 0 {
            self.media
                .rtp_rejected
                .get_or_create(&RejectLabels { reason })
                .inc_by(n);
        }
    }

    /// Adds a call's RTP counters (or a delta of them).
    pub fn rtp_observed(&self, counts: RtpCounts) {
        self.media.rtp_sent.inc_by(counts.sent);
        self.media.rtp_received.inc_by(counts.received);
        self.media.rtp_late.inc_by(counts.late);
        self.media.rtp_lost.inc_by(counts.lost);
        self.media.rtp_malformed.inc_by(counts.malformed);
        self.media.rtp_phase_moves.inc_by(counts.phase_moves);
    }
}
