//! Server and client transaction state (RFC 3261 §17) and the response builder
//! (§8.2.6). The state machines' transitions live in the endpoint and UAC, which own
//! the timer table; this module holds the records, the matching keys and the
//! retransmission intervals.
//!
//! INVITE server transactions follow RFC 6026: after a 2xx the transaction is
//! `Accepted` and retransmitted INVITEs are answered with the 2xx (the UAS core
//! retransmits the 2xx itself until ACK). Not done: RFC 2543 ACK matching for
//! non-2xx responses beyond the Call-ID/CSeq/From-tag/Via fallback key.

use std::net::SocketAddr;
use std::time::Duration;

use super::message::{reason_phrase, stamp_via, Header, Message, StartLine};
use super::validate::Request;
use super::{CallKey, Transport};

/// Server transaction states (RFC 3261 Figures 7 and 8, RFC 6026 `Accepted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
}

#[derive(Debug)]
pub struct ServerTransaction {
    pub key: String,
    pub invite: bool,
    pub request: Request,
    pub source: SocketAddr,
    pub transport: Transport,
    pub state: ServerState,
    /// The last response sent, for answering retransmitted requests.
    pub last_response: Option<Vec<u8>>,
    /// Current Timer G interval.
    pub interval: Duration,
    pub call: Option<CallKey>,
    /// Bytes held, as counted against the endpoint's transaction budget.
    pub size: usize,
}

/// What a client transaction was for, so its outcome can be reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientPurpose {
    Bye,
    Refer,
    Notify,
    Info,
    /// Our session refresh (RFC 4028), an UPDATE without a body.
    Refresh,
}

#[derive(Debug)]
pub struct ClientTransaction {
    pub branch: String,
    pub purpose: ClientPurpose,
    pub call: CallKey,
    pub payload: Vec<u8>,
    pub destination: SocketAddr,
    pub transport: Transport,
    /// Current Timer E interval.
    pub interval: Duration,
    pub completed: bool,
}

/// The key that matches a request to its server transaction (RFC 3261 §17.2.3): the
/// branch, the sent-by and the method, with ACK matching INVITE. Without a magic
/// cookie branch, fall back to RFC 2543 style Call-ID + CSeq + From tag + Via.
pub fn server_key(req: &Request) -> String {
    let method = if req.method == "ACK" {
        "INVITE"
    } else {
        req.method.as_str()
    };
    match req.via.rfc3261_branch() {
        Some(branch) => format!("{branch}|{}|{method}", req.via.sent_by.to_ascii_lowercase()),
        None => format!(
            "2543|{}|{}|{}|{}|{method}",
            req.call_id,
            req.cseq,
            req.from.tag().unwrap_or_default(),
            req.msg.header("Via").unwrap_or_default()
        ),
    }
}

/// The key of the INVITE transaction a CANCEL refers to (same branch, method INVITE).
pub fn cancel_target_key(cancel: &Request) -> String {
    match cancel.via.rfc3261_branch() {
        Some(branch) => format!(
            "{branch}|{}|INVITE",
            cancel.via.sent_by.to_ascii_lowercase()
        ),
        None => format!(
            "2543|{}|{}|{}|{}|INVITE",
            cancel.call_id,
            cancel.cseq,
            cancel.from.tag().unwrap_or_default(),
            cancel.msg.header("Via").unwrap_or_default()
        ),
    }
}

/// Next retransmit interval: doubling, capped at `cap` (T2), per Timers E and G.
pub fn backoff(interval: Duration, cap: Duration) -> Duration {
    (interval * 2).min(cap)
}

/// Build a response to a (possibly malformed) request message (RFC 3261 §8.2.6.2):
/// all Via values in order, the top one stamped with `received` and `rport`; From,
/// Call-ID, CSeq and Record-Route copied verbatim; To copied and given `to_tag` if it
/// has none.
pub fn response_to(
    req: &Message,
    source: SocketAddr,
    status: u16,
    to_tag: Option<&str>,
    server: &str,
) -> Message {
    let mut headers = Vec::new();
    let mut first_via = true;
    for h in &req.headers {
        match h.name.as_str() {
            "Via" => {
                if first_via {
                    headers.push(Header::new("Via", stamp_via(&h.value, source)));
                    first_via = false;
                } else {
                    headers.push(h.clone());
                }
            }
            "To" => {
                let has_tag = super::message::NameAddr::parse(&h.value)
                    .map(|n| n.tag().is_some())
                    .unwrap_or(true);
                match to_tag {
                    Some(tag) if !has_tag && status > 100 => {
                        headers.push(Header::new("To", format!("{};tag={tag}", h.value)));
                    }
                    _ => headers.push(h.clone()),
                }
            }
            "From" | "Call-ID" | "CSeq" | "Record-Route" => headers.push(h.clone()),
            _ => {}
        }
    }
    if status == 100 {
        if let Some(ts) = req.header("Timestamp") {
            headers.push(Header::new("Timestamp", ts));
        }
    }
    headers.push(Header::new("Server", server));
    Message {
        start: StartLine::Response {
            version: "SIP/2.0".to_string(),
            code: status,
            reason: reason_phrase(status).to_string(),
        },
        headers,
        body: Vec::new(),
    }
}

/// Attach a body with its Content-Type.
pub fn set_body(msg: &mut Message, content_type: &str, body: &[u8]) {
    msg.headers.push(Header::new("Content-Type", content_type));
    msg.body = body.to_vec();
}
