//! Prometheus metrics for the whole process, on `prometheus-client`.
//!
//! One [`Metrics`] value is created at start-up and shared (`Arc`) with every task. Callers
//! record through typed methods (`m.call_finished(CallEnd::Completed)`), never through raw
//! label strings, so the set of label values is fixed by closed enums: no label can ever carry
//! caller data (ANI, digits, Call-IDs). The only free-form labels are data-action names and their
//! outcomes, and those are checked against an allowlist taken from the configuration
//! ([`Metrics::set_action_catalog`]); anything else is recorded as `other`.
//!
//! Names follow the Prometheus conventions: `sspr_ivr_` prefix, `_total` on counters, base units
//! (`_seconds`) on histograms. [`encode`](Metrics::encode) produces the OpenMetrics text format
//! (which Prometheus scrapes natively); serve it with [`CONTENT_TYPE`].
//!
//! One file per area, each holding its families, their label enums, their entry in the
//! documented table ([`families`]) and the `impl Metrics` recorders for them:
//!
//! - [`process`]: build info, start time, configuration reloads;
//! - [`calls`]: active and finished calls, set-up rejections, call task panics;
//! - [`results`]: password reset results, one-time code sends and verifications;
//! - [`sip`]: SIP requests, responses, parse errors, garbage, retransmissions;
//! - [`media`]: DTMF digits by transport, RTP packet counters;
//! - [`actions`]: data-action latency by configured name and outcome;
//! - [`audit`]: audit spool backlog and delivery;
//! - [`trunk`]: outbound registrations and requests from untrusted peers.
//! - [`tcp`]: SIP-over-TCP connections open, refused and closed by the TCP limits.
//! - [`state`]: the shared state store's health and the attempts refused without it.
//!
//! To add a metric: add its field and registration to the area's struct, a [`MetricDoc`] row
//! to the area's `FAMILIES`, a row to `docs/operations.md`, and a typed recorder. The tests
//! here fail when any of the three disagree.
//!
//! This module does not serve HTTP (see `ops::admin`) and keeps no per-call state.

use prometheus_client::registry::Registry;

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

        impl prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), std::fmt::Error> {
                use std::fmt::Write as _;
                encoder.write_str(self.as_str())
            }
        }
    };
}

pub mod actions;
pub mod audit;
pub mod calls;
pub mod media;
pub mod process;
pub mod results;
pub mod sip;
pub mod state;
pub mod tcp;
pub mod trunk;

#[cfg(test)]
mod tests;

pub use actions::ACTION_BUCKETS;
pub use calls::{ActiveCall, CallEnd, RejectReason};
pub use media::{RtpCounter, RtpCounts, RtpRejectReason, DIGIT_SOURCES};
pub use process::ReloadResult;
pub use results::{OtpSendResult, OtpVerifyResult, ResetResult};
pub use sip::{SipMethod, SipStatus};
pub use tcp::{AdminCloseReason, OpenTcp, TcpCloseReason};
pub use trunk::{RegistrationResult, UntrustedAnswer};

/// Content type of [`Metrics::encode`]'s output (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric name.
pub const PREFIX: &str = "sspr_ivr";

/// Label value used for anything outside an allowlist (unknown SIP methods, action names or
/// outcomes not in the configuration, out-of-range status codes).
pub const OTHER: &str = "other";

/// One exposed metric family as scraped. The encoder appends a final `.` to help texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDoc {
    /// Full name as scraped (`sspr_ivr_…`, with `_total` on counters).
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Help text, without the final `.`.
    pub help: &'static str,
}

impl MetricDoc {
    const fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        MetricDoc { name, kind, help }
    }
}

/// Every exposed metric family, area by area. `docs/operations.md` lists the same table.
pub fn families() -> impl Iterator<Item = &'static MetricDoc> {
    [
        process::FAMILIES,
        calls::FAMILIES,
        results::FAMILIES,
        sip::FAMILIES,
        media::FAMILIES,
        actions::FAMILIES,
        audit::FAMILIES,
        trunk::FAMILIES,
        tcp::FAMILIES,
        state::FAMILIES,
    ]
    .into_iter()
    .flatten()
}

/// All process metrics. Create once with [`Metrics::new`], share as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    process: process::ProcessMetrics,
    calls: calls::CallMetrics,
    results: results::ResultMetrics,
    sip: sip::SipMetrics,
    media: media::MediaMetrics,
    actions: actions::ActionMetrics,
    audit: audit::AuditMetrics,
    trunk: trunk::TrunkMetrics,
    tcp: tcp::TcpMetrics,
    state: state::StateMetrics,
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
        let process = process::ProcessMetrics::register(&mut registry);
        let calls = calls::CallMetrics::register(&mut registry);
        let results = results::ResultMetrics::register(&mut registry);
        let sip = sip::SipMetrics::register(&mut registry);
        let media = media::MediaMetrics::register(&mut registry);
        let actions = actions::ActionMetrics::register(&mut registry);
        let audit = audit::AuditMetrics::register(&mut registry);
        let trunk = trunk::TrunkMetrics::register(&mut registry);
        let tcp = tcp::TcpMetrics::register(&mut registry);
        let state = state::StateMetrics::register(&mut registry);
        Metrics {
            registry,
            process,
            calls,
            results,
            sip,
            media,
            actions,
            audit,
            trunk,
            tcp,
            state,
        }
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
}
