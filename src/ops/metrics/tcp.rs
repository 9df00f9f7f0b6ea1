//! SIP-over-TCP families: connections open now, and connections the server closed or
//! refused, by reason — what the TCP limits (`sip.tcp_*`) are doing under load or abuse;
//! and the admin port's connections refused or closed by its own caps.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{MetricDoc, Metrics};

const HELP_OPEN: &str = "SIP TCP connections open now";
const HELP_CLOSED: &str =
    "SIP TCP connections the server refused or closed, by reason (peers' own closes not counted)";

const HELP_ADMIN_CLOSED: &str =
    "Admin HTTP connections the server refused or closed, by reason (clients' own closes not counted)";

/// This area's families, as scraped.
pub const FAMILIES: &[MetricDoc] = &[
    MetricDoc::new("sspr_ivr_sip_tcp_connections", "gauge", HELP_OPEN),
    MetricDoc::new(
        "sspr_ivr_sip_tcp_connections_closed_total",
        "counter",
        HELP_CLOSED,
    ),
    MetricDoc::new(
        "sspr_ivr_admin_connections_closed_total",
        "counter",
        HELP_ADMIN_CLOSED,
    ),
];

label_enum! {
    /// Why the server refused or closed a TCP connection.
    TcpCloseReason {
        /// `sip.tcp_max_connections` reached (after the descriptor reservation):
        /// closed at accept.
        Limit => "limit",
        /// `sip.tcp_max_connections_per_source` reached: closed at accept.
        SourceLimit => "source_limit",
        /// A peer not in `sip.trusted_peers` under `sip.untrusted_requests:
        /// drop`: closed at accept, before a byte is read.
        Untrusted => "untrusted",
        /// No complete message received for `sip.tcp_idle_timeout` and no call on it.
        Idle => "idle",
        /// A message not complete within `sip.tcp_message_timeout` (slowloris).
        SlowMessage => "slow_message",
        /// More than `sip.tcp_write_queue_bytes` bytes waiting to be written.
        WriteQueue => "write_queue",
        /// Broken framing (no or bad Content-Length, oversized message).
        Framing => "framing",
    }
}

label_enum! {
    /// Why the admin server refused or closed a connection.
    AdminCloseReason {
        /// 64 admin connections open: closed at accept.
        Limit => "limit",
        /// 8 admin connections open from this address: closed at accept.
        SourceLimit => "source_limit",
        /// No whole request head within 5 s (silent or slowloris).
        HeadTimeout => "head_timeout",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CloseLabels {
    reason: TcpCloseReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AdminCloseLabels {
    reason: AdminCloseReason,
}

/// The TCP families.
pub(super) struct TcpMetrics {
    open: Gauge,
    closed: Family<CloseLabels, Counter>,
    admin_closed: Family<AdminCloseLabels, Counter>,
}

impl TcpMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = TcpMetrics {
            open: Gauge::default(),
            closed: Family::default(),
            admin_closed: Family::default(),
        };
        registry.register("sip_tcp_connections", HELP_OPEN, m.open.clone());
        registry.register("sip_tcp_connections_closed", HELP_CLOSED, m.closed.clone());
        registry.register(
            "admin_connections_closed",
            HELP_ADMIN_CLOSED,
            m.admin_closed.clone(),
        );
        m
    }
}

/// RAII guard from [`Metrics::tcp_opened`]: decrements the open gauge on drop.
#[derive(Debug)]
pub struct OpenTcp {
    open: Gauge,
}

impl Drop for OpenTcp {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Metrics {
    /// A connection was accepted; hold the guard while it is open.
    pub fn tcp_opened(&self) -> OpenTcp {
        self.tcp.open.inc();
        OpenTcp {
            open: self.tcp.open.clone(),
        }
    }

    /// SIP TCP connections open now.
    pub fn tcp_open(&self) -> i64 {
        self.tcp.open.get()
    }

    /// The server refused or closed a connection.
    pub fn tcp_closed(&self, reason: TcpCloseReason) {
        self.tcp.closed.get_or_create(&CloseLabels { reason }).inc();
    }

    /// The admin server refused or closed a connection.
    pub fn admin_closed(&self, reason: AdminCloseReason) {
        self.tcp
            .admin_closed
            .get_or_create(&AdminCloseLabels { reason })
            .inc();
    }
}
