//! `sip_datagram`: the SIP message parser and one UAS endpoint over UDP (see the
//! module docs of [`super`] for the invariants).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sspr_ivr::sip::message::{self, Datagram};
use sspr_ivr::sip::{self, Endpoint, EndpointConfig, Event, Transport};

use super::{addr, assert_deadline, t0, MAX_TIMER_STEPS};

/// Separates datagrams in a `sip_datagram` input (so one input can hold a whole
/// dialog: INVITE, ACK, INFO, BYE).
pub const DATAGRAM_SEPARATOR: &[u8] = b"\n\0\0\n";

/// In a `sip_datagram` input, replaced by the To tag of the last response the
/// endpoint sent (tags are random), so seeds can carry in-dialog requests (ACK, INFO,
/// BYE) the way sipp's `[last_To:]` does.
pub const TAG_PLACEHOLDER: &[u8] = b"$TAG";

const LOCAL: &str = "127.0.0.1:5060";
const PEER: &str = "127.0.0.1:5070";

const ANSWER_SDP: &str = "v=0\r\no=sspr-ivr 9 9 IN IP4 127.0.0.1\r\ns=sspr-ivr\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// Drain the endpoint as the runtime does; remembers the To tag of the last
/// response sent (see [`TAG_PLACEHOLDER`]). What we send must parse, and must be
/// free of defects when what we answered was (a `400` echoes a broken Via as is).
fn drain_endpoint(
    ep: &mut Endpoint,
    now: Instant,
    source: SocketAddr,
    tag: &mut Option<String>,
    input_clean: bool,
) {
    let mut answers = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(t) = ep.poll_transmit() {
            progressed = true;
            assert_eq!(
                t.destination, source,
                "the endpoint sent to an address the peer did not send from"
            );
            assert!(!t.payload.is_empty(), "empty transmit");
            let Ok(Datagram::Message(p)) = message::parse(&t.payload) else {
                panic!("the endpoint sent something that does not parse");
            };
            if input_clean {
                assert_eq!(p.defect, None, "the endpoint sent a defective message");
            }
            {
                if p.message.status().is_some() {
                    if let Some(t) = p
                        .message
                        .header("To")
                        .and_then(message::NameAddr::parse)
                        .and_then(|n| n.tag().map(str::to_string))
                    {
                        *tag = Some(t);
                    }
                }
            }
        }
        while let Some(ev) = ep.poll_event() {
            progressed = true;
            if let Event::IncomingCall(call) = ev {
                assert_eq!(call.source, source);
                answers.push(call.call);
            }
        }
        for call in answers.drain(..) {
            progressed = true;
            // Answer or reject by the Call-ID, so both paths get input.
            let cmd = if call.0.len() % 3 != 0 {
                sip::Command::Answer {
                    call,
                    sdp: ANSWER_SDP.to_string(),
                }
            } else {
                sip::Command::Reject {
                    call,
                    status: 488,
                    retry_after: Some(5),
                    warning: Some(sip::Warning {
                        code: 305,
                        text: "Incompatible media format",
                    }),
                }
            };
            ep.handle_command(now, cmd);
        }
        if !progressed {
            break;
        }
    }
    assert_deadline("sip endpoint", ep.poll_timeout(), now);
}

/// The message parser alone: no panic, and print → parse → print is stable for a
/// message parsed without defect.
pub fn sip_message(data: &[u8]) {
    let Ok(Datagram::Message(parsed)) = message::parse(data) else {
        return;
    };
    let _ = parsed.message.method();
    let _ = parsed.message.status();
    for h in &parsed.message.headers {
        match h.name.as_str() {
            "Via" => {
                let _ = message::Via::parse(&h.value).map(|v| v.rfc3261_branch().is_some());
                let _ = message::stamp_via(&h.value, addr(PEER));
            }
            "From" | "To" | "Contact" => {
                let _ = message::NameAddr::parse(&h.value).map(|n| n.tag().is_some());
            }
            "CSeq" => {
                let _ = message::parse_cseq(&h.value);
            }
            "Content-Length" => {
                let _ = message::parse_content_length(&h.value);
            }
            _ => {}
        }
    }
    if parsed.defect.is_some() {
        return;
    }
    let printed = parsed.message.to_bytes();
    match message::parse(&printed) {
        Ok(Datagram::Message(again)) => {
            assert_eq!(
                again.defect, None,
                "a clean message printed by us re-parses with a defect"
            );
            assert_eq!(
                String::from_utf8_lossy(&again.message.to_bytes()),
                String::from_utf8_lossy(&printed),
                "print/parse round trip is not stable"
            );
        }
        other => panic!("a clean message printed by us does not re-parse: {other:?}"),
    }
}

/// `sip_datagram`: every datagram of the input (split at [`DATAGRAM_SEPARATOR`]) goes
/// to the message parser and to one UAS endpoint over UDP from a fixed source; the
/// endpoint answers calls, then its timers run out in virtual time.
pub fn sip_datagram(data: &[u8]) {
    let source = addr(PEER);
    let mut ep = Endpoint::new(
        EndpointConfig::new(addr(LOCAL), "sspr-ivr-fuzz"),
        sip::TokenRng::seeded(0),
    );
    let mut now = t0();
    let mut tag: Option<String> = None;
    for datagram in split(data, DATAGRAM_SEPARATOR) {
        let datagram = match &tag {
            Some(t) => replace(datagram, TAG_PLACEHOLDER, t.as_bytes()),
            None => datagram.to_vec(),
        };
        sip_message(&datagram);
        let clean = matches!(
            message::parse(&datagram),
            Ok(Datagram::Message(message::Parsed { defect: None, .. }))
        );
        ep.handle_datagram(now, Transport::Udp, source, &datagram);
        drain_endpoint(&mut ep, now, source, &mut tag, clean);
        // 10 ms later the next datagram arrives; timers due meanwhile fire first.
        now = fire_endpoint_timers(&mut ep, now, now + Duration::from_millis(10), &mut tag);
    }
    // Let every retransmission and transaction timer run out.
    fire_endpoint_timers(&mut ep, now, now + Duration::from_secs(600), &mut tag);
}

/// Fire the endpoint's deadlines up to `to` as the runtime does; returns `to`.
fn fire_endpoint_timers(
    ep: &mut Endpoint,
    mut now: Instant,
    to: Instant,
    tag: &mut Option<String>,
) -> Instant {
    let source = addr(PEER);
    for _ in 0..MAX_TIMER_STEPS {
        match ep.poll_timeout() {
            Some(d) if d <= to => {
                assert!(d >= now, "sip endpoint deadline in the past");
                now = d;
                ep.handle_timeout(now);
                drain_endpoint(ep, now, source, tag, false);
            }
            _ => return to,
        }
    }
    panic!("sip endpoint timers never settle");
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let parts = split(data, from);
    let mut out = Vec::with_capacity(data.len());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(to);
        }
        out.extend_from_slice(p);
    }
    out
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}
