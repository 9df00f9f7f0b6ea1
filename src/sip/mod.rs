//! The SIP layer (RFC 3261) as a sans-IO state machine: message normalisation,
//! parsing and printing ([`message`]), request validation ([`validate`]), server and
//! client transactions with the RFC 3261 §17 timers in one table ([`timer`],
//! [`transaction`]), dialogs ([`dialog`]), SDP offer/answer for G.711 and
//! telephone-event ([`sdp`]), Content-Length framing for TCP ([`framing`]), the UAS
//! [`Endpoint`] the server runs, a small UAC ([`uac`]) for the `dial` test caller, and
//! outbound registration to trunks ([`register`]) with digest authentication ([`digest`]).
//! Tags, branches and Call-IDs come from a [`TokenRng`] each endpoint holds ([`rng`]).
//!
//! Nothing here opens a socket or reads a clock: the runtime feeds datagrams with
//! `handle_datagram(now, ..)`, drains `poll_transmit()` / `poll_event()`, and sleeps
//! until `poll_timeout()`. Responses always go back to the source address of the
//! request (forced `rport`, RFC 3581); no host named in a Via is ever resolved.
//!
//! SIP over TLS (RFC 3261 §26, RFC 5630) is a transport like TCP here: the
//! runtime terminates TLS and feeds the decrypted messages with [`Transport::Tls`];
//! Via says `TLS`, Contact says `sips:` when the dialog-creating request used a
//! SIPS URI and `;transport=tls` otherwise, with the TLS port ([`EndpointConfig::tls_addr`]).
//!
//! Not done here: DNS (RFC 3263), authenticating requests we receive, proxying,
//! registrar duties, forking and PRACK (RFC 3262). Session timers (RFC 4028) are
//! granted to a caller that asks for them (`endpoint` module, `session_timer`).

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod register;
pub mod rng;
pub mod sdp;
pub mod timer;
pub mod transaction;
pub mod uac;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use endpoint::Endpoint;
pub use rng::TokenRng;

/// Which transport a message arrived on or leaves by (`udp`, `tcp` in the config;
/// TLS is turned on by its own `sip.tls` section).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Unreliable transports need retransmissions (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// Identifies a call: the dialog's Call-ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub String);

/// Longest Call-ID shown by [`CallKey`]'s `Display`.
const CALL_KEY_SHOWN: usize = 128;

/// For logs: the Call-ID is peer data, so control characters become `?` and it is cut
/// at 128 characters (with `…`); it cannot forge or flood a log line.
impl std::fmt::Display for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for (i, c) in self.0.chars().enumerate() {
            if i == CALL_KEY_SHOWN {
                return f.write_char('…');
            }
            f.write_char(if c.is_control() { '?' } else { c })?;
        }
        Ok(())
    }
}

/// Endpoint configuration.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Our address: used in Via and Contact.
    pub local_addr: SocketAddr,
    /// Our SIP-over-TLS address (Via and Contact of TLS messages); `None` when
    /// TLS is off, and then [`EndpointConfig::local_for`] falls back to `local_addr`.
    pub tls_addr: Option<SocketAddr>,
    /// Sent as `User-Agent` in requests and `Server` in responses.
    pub user_agent: String,
    /// Send in-dialog requests to where the INVITE came from unless the route set
    /// names an IP:port first hop (default true: trunks behind NAT).
    pub symmetric_signalling: bool,
    /// RFC 3261 T1 (RTT estimate), default 500 ms.
    pub t1: Duration,
    /// RFC 3261 T2 (maximum retransmit interval for non-INVITE), default 4 s.
    pub t2: Duration,
    /// RFC 3261 T4 (maximum duration a message remains in the network), default 5 s.
    pub t4: Duration,
    /// Server transactions kept at once, default 20 000.
    pub max_server_transactions: usize,
    /// Bytes those transactions may hold, default 32 MiB.
    pub max_server_transaction_bytes: usize,
    /// `Retry-After` seconds on the 503 for a request that found no room, default 30.
    pub retry_after_secs: u32,
}

impl Default for EndpointConfig {
    /// `127.0.0.1:5060`, user agent `sspr-ivr/<version>`, symmetric signalling on,
    /// RFC 3261 default timers.
    fn default() -> Self {
        EndpointConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 5060)),
            concat!("sspr-ivr/", env!("CARGO_PKG_VERSION")),
        )
    }
}

impl EndpointConfig {
    /// `local_addr` must be the address peers can reach (it goes into Via and
    /// Contact), not a wildcard bind address.
    pub fn new(local_addr: SocketAddr, user_agent: impl Into<String>) -> Self {
        EndpointConfig {
            local_addr,
            tls_addr: None,
            user_agent: user_agent.into(),
            symmetric_signalling: true,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            max_server_transactions: 20_000,
            max_server_transaction_bytes: 32 * 1024 * 1024,
            retry_after_secs: 30,
        }
    }
}

impl EndpointConfig {
    /// The address that goes into Via and Contact on `transport`.
    pub fn local_for(&self, transport: Transport) -> SocketAddr {
        match (transport, self.tls_addr) {
            (Transport::Tls, Some(addr)) => addr,
            _ => self.local_addr,
        }
    }
}

/// A new call, reported once per INVITE transaction (`100 Trying` already sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingCall {
    pub call: CallKey,
    pub request_uri_user: String,
    /// The caller's number (From user part).
    pub from_user: String,
    /// The number an upstream proxy asserts (`P-Asserted-Identity`, then
    /// `Remote-Party-ID`), believed only from a trusted peer.
    pub asserted_user: Option<String>,
    /// The address in the last `X-Forwarded-For` header: where a proxy in front
    /// (Kamailio) received the INVITE from. Believed only from `sip.proxies`.
    pub forwarded_for: Option<std::net::IpAddr>,
    pub source: SocketAddr,
    pub transport: Transport,
    /// The SDP offer, or `None` for a late-offer INVITE.
    pub offer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferStatus {
    /// `202 Accepted` for our REFER.
    Accepted,
    /// A final non-2xx response to our REFER, or a timeout (408).
    Rejected(u16),
    /// The status code in a NOTIFY `message/sipfrag` body.
    Notify(u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The caller's BYE, with its `Reason` ([`peer_reason`]) if it gave one.
    RemoteBye {
        reason: Option<String>,
    },
    Cancelled,
    AckTimeout,
    LocalBye,
    /// Late offer: the caller's ACK had no answer the call could use; we sent
    /// BYE (with a `Reason` saying why).
    MediaRefused,
    /// Session timer (RFC 4028): the caller's refreshes stopped, or ours
    /// failed; we sent BYE.
    SessionExpired,
    Rejected(u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    IncomingCall(IncomingCall),
    Established {
        call: CallKey,
        ack_sdp: Option<String>,
    },
    Dtmf {
        call: CallKey,
        digit: char,
        duration_ms: Option<u32>,
    },
    ReferStatus {
        call: CallKey,
        status: ReferStatus,
    },
    /// A new offer in the established call (re-INVITE or UPDATE) was answered:
    /// the caller's media is now at `remote`, and it takes ours only while
    /// `peer_receives` (false: it put the call on hold with `sendonly` or
    /// `inactive`, or a `0.0.0.0` address).
    /// On an SRTP call, `srtp` is the key the caller sends with from now on
    /// (the same as before, or a new one: RFC 4568 §7.1.4).
    MediaUpdate {
        call: CallKey,
        remote: SocketAddr,
        peer_receives: bool,
        srtp: Option<crate::media::srtp::CryptoAttr>,
    },
    Terminated {
        call: CallKey,
        reason: EndReason,
    },
}

/// A `Warning` header value for a refused offer (RFC 3261 §20.43): its code
/// (`301` incompatible network address formats, `302` incompatible transport
/// protocol, `305` incompatible media format, `399` anything else) and text. The
/// endpoint adds its own address as the warn-agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Warning {
    pub code: u16,
    pub text: &'static str,
}

impl Warning {
    pub const ADDRESS_FAMILY: Warning = Warning {
        code: 301,
        text: "Incompatible network address formats",
    };
    pub const TRANSPORT: Warning = Warning {
        code: 302,
        text: "Incompatible transport protocol",
    };
    pub const MEDIA_FORMAT: Warning = Warning {
        code: 305,
        text: "Incompatible media format",
    };
    pub const UNUSABLE_SDP: Warning = Warning {
        code: 399,
        text: "Unusable session description",
    };

    /// The header value, with `agent` (our hostport) as the warn-agent.
    pub fn header_value(self, agent: SocketAddr) -> String {
        format!("{} {agent} \"{}\"", self.code, self.text)
    }
}

/// Why this side ends a call, sent as the BYE's `Reason` header (RFC 3326) so
/// the far end's trace says why the IVR hung up: a SIP status for a refused
/// answer, a Q.850 cause for a timer or the server itself. A flow's ordinary
/// goodbye carries none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByeReason {
    /// `SIP` or `Q.850`.
    pub protocol: &'static str,
    pub cause: u16,
    pub text: &'static str,
}

impl ByeReason {
    /// No ACK came for our 2xx within 64*T1 (RFC 3261 §13.3.1.4). Q.850 102:
    /// recovery on timer expiry.
    pub const ACK_TIMEOUT: ByeReason = ByeReason::q850(102, "No ACK for the 2xx");
    /// No RTP from the caller for `media.inactivity_timeout` (or
    /// `media.hold_timeout` on hold).
    pub const RTP_TIMEOUT: ByeReason = ByeReason::q850(102, "No RTP from the caller");
    /// The call reached `limits.max_call_duration`.
    pub const MAX_DURATION: ByeReason = ByeReason::q850(102, "Maximum call duration reached");
    /// The session timer ran out (RFC 4028 §10): no refresh from the caller,
    /// or ours was refused with 408 or 481, or not answered.
    pub const SESSION_EXPIRED: ByeReason = ByeReason::q850(102, "Session timer expired");
    /// The server is stopping and the drain limit passed. Q.850 41: temporary
    /// failure.
    pub const SHUTDOWN: ByeReason = ByeReason::q850(41, "Server shutting down");
    /// The call's task failed inside the server (a caught panic).
    pub const INTERNAL_ERROR: ByeReason = ByeReason::q850(41, "Internal error");

    const fn q850(cause: u16, text: &'static str) -> ByeReason {
        ByeReason {
            protocol: "Q.850",
            cause,
            text,
        }
    }

    /// An answer (or a late offer) the call cannot use: `SIP ;cause=488` with
    /// the warning's text.
    pub fn refused(warning: Warning) -> ByeReason {
        ByeReason {
            protocol: "SIP",
            cause: 488,
            text: warning.text,
        }
    }

    /// The header value, e.g. `Q.850 ;cause=102 ;text="No RTP from the caller"`.
    pub fn header_value(self) -> String {
        format!(
            "{} ;cause={} ;text=\"{}\"",
            self.protocol, self.cause, self.text
        )
    }

    /// The extra headers of a BYE that gives `reason` (none for `None`).
    pub fn headers(reason: Option<ByeReason>) -> Vec<message::Header> {
        reason
            .map(|r| vec![message::Header::new("Reason", r.header_value())])
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `200 OK` with this SDP, retransmitted until ACK.
    Answer { call: CallKey, sdp: String },
    /// A final error response to the INVITE.
    Reject {
        call: CallKey,
        status: u16,
        retry_after: Option<u32>,
        /// A `Warning` header saying why the offer was refused (RFC 3261 §20.43).
        warning: Option<Warning>,
    },
    /// BYE after answer (with a `Reason` header when `reason` is set); a final
    /// `480` before it.
    Hangup {
        call: CallKey,
        reason: Option<ByeReason>,
    },
    /// Blind transfer: REFER with Refer-To `target` plus these extra headers.
    Refer {
        call: CallKey,
        target: String,
        headers: Vec<(String, String)>,
    },
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SipStats {
    /// Responses sent, by status code (first transmissions only).
    pub responses_sent: BTreeMap<u16, u64>,
    /// Requests received, by method (retransmissions excluded).
    pub requests_received: BTreeMap<String, u64>,
    /// Requests answered `400` because they were malformed.
    pub parse_errors: u64,
    /// Datagrams dropped: garbage, malformed responses, stray responses.
    pub garbage_dropped: u64,
    /// Retransmissions: ours (timers) and the peer's (absorbed by a transaction).
    pub retransmits_sent: u64,
    pub retransmits_received: u64,
    /// Requests answered `503` without a transaction: the transaction budget was full.
    pub shed_no_room: u64,
}

/// Errors of this module that the caller can see.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SipError {
    #[error(transparent)]
    Parse(#[from] message::ParseError),
    #[error(transparent)]
    Sdp(#[from] sdp::SdpError),
    #[error(transparent)]
    Framing(#[from] framing::FramingError),
    #[error("target must be a sip: URI with an IP address host")]
    BadTarget,
}

/// The most characters of a peer's `Reason` we keep.
const PEER_REASON_MAX: usize = 256;

/// A request's `Reason` headers (RFC 3326: a BYE's or CANCEL's, the peer's
/// words for why it ends the call), every value in order joined by `, `, for
/// a log line or a tester's terminal: a control character (a line break or
/// an escape sequence a peer slipped in) is shown as `?`, and no more than
/// 256 characters are kept. `None`: the request gave none.
pub fn peer_reason(msg: &message::Message) -> Option<String> {
    let mut out = String::new();
    for value in msg.headers_named("Reason") {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(value);
    }
    if out.is_empty() {
        return None;
    }
    Some(
        out.chars()
            .take(PEER_REASON_MAX)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

/// Methods this endpoint implements (Allow header).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REFER, NOTIFY";
/// Body types accepted in requests (Accept header).
pub const ACCEPT: &str =
    "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag";
/// Extensions we support (Supported header) beyond RFC 3261 and RFC 3515:
/// session timers (RFC 4028).
pub const SUPPORTED: &str = "timer";

#[cfg(test)]
mod tests {
    use super::*;

    /// A BYE's `Reason` headers, as the log and a tester's terminal show
    /// them: every one, in order; an escape sequence or a bell shown as `?`;
    /// a huge one cut at 256 characters.
    #[test]
    fn a_peers_reason_is_read_whole_and_cannot_drive_a_terminal() {
        let bye = |reasons: &str| {
            let text = format!(
                "BYE sip:ivr@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n\
                 From: <sip:a@192.0.2.7>;tag=1\r\nTo: <sip:ivr@192.0.2.1>;tag=2\r\n\
                 Call-ID: c1\r\nCSeq: 2 BYE\r\n{reasons}Content-Length: 0\r\n\r\n"
            );
            match message::parse(text.as_bytes()).expect("parses") {
                message::Datagram::Message(m) => m.message,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(peer_reason(&bye("")), None);
        assert_eq!(
            peer_reason(&bye(
                "Reason: Q.850 ;cause=16 \u{1b}[2J\u{7}ok\r\nReason: SIP ;cause=200 ;text=\"é\"\r\n"
            ))
            .as_deref(),
            Some("Q.850 ;cause=16 ?[2J?ok, SIP ;cause=200 ;text=\"é\"")
        );
        let long = peer_reason(&bye(&format!(
            "Reason: Q.850;text=\"{}\"\r\n",
            "x".repeat(5000)
        )));
        assert_eq!(long.map(|r| r.chars().count()), Some(256));
    }

    #[test]
    fn call_key_display_is_bounded_and_escaped() {
        let forged = CallKey("abc\r\n2026-01-01 INFO forged line\x1b[31m".into());
        assert_eq!(forged.to_string(), "abc??2026-01-01 INFO forged line?[31m");
        let long = CallKey("x".repeat(20_000));
        let shown = long.to_string();
        assert_eq!(shown.chars().count(), CALL_KEY_SHOWN + 1);
        assert!(shown.ends_with('…'));
    }
}
