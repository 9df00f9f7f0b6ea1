//! Endpoint behaviour in virtual time: transactions, timers, dialogs and methods.
//! Every test drives the sans-IO endpoint with hand-written requests from a caller at
//! 127.0.0.1:5070 and asserts on what a peer would see on the wire. One file per
//! transaction role, like `src/sip/endpoint/`.

mod budget;
mod client;
mod invite;
mod non_invite;
mod session_timer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sspr_ivr::sip::message::{self, Datagram, Message, StartLine};
use sspr_ivr::sip::{
    ByeReason, CallKey, Command, EndReason, Endpoint, EndpointConfig, Event, IncomingCall,
    ReferStatus, TokenRng, Transport, Warning,
};

const CALLER: &str = "127.0.0.1:5070";
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
const ANSWER: &str = "v=0\r\no=sspr-ivr 9 9 IN IP4 127.0.0.1\r\ns=sspr-ivr\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

fn caller() -> SocketAddr {
    CALLER.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Req<'a> {
    method: &'a str,
    call_id: &'a str,
    branch: &'a str,
    cseq: u32,
    to_tag: Option<&'a str>,
    extra: &'a str,
    body: &'a str,
}

impl<'a> Req<'a> {
    fn new(method: &'a str, call_id: &'a str, branch: &'a str, cseq: u32) -> Self {
        Req {
            method,
            call_id,
            branch,
            cseq,
            to_tag: None,
            extra: "",
            body: "",
        }
    }
    fn with_to_tag(mut self, t: &'a str) -> Self {
        self.to_tag = Some(t);
        self
    }
    fn extra(mut self, e: &'a str) -> Self {
        self.extra = e;
        self
    }
    fn body(mut self, b: &'a str) -> Self {
        self.body = b;
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let to = self.to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{m} sip:echo@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={b}\r\nFrom: \"Alice\" <sip:+15551234@127.0.0.1>;tag=caller1\r\nTo: <sip:echo@127.0.0.1>{to}\r\nCall-ID: {c}\r\nCSeq: {n} {m}\r\nMax-Forwards: 70\r\nContact: <sip:alice@127.0.0.1:5070>\r\n{e}Content-Length: {len}\r\n\r\n{body}",
            m = self.method,
            b = self.branch,
            c = self.call_id,
            n = self.cseq,
            e = self.extra,
            len = self.body.len(),
            body = self.body
        )
        .into_bytes()
    }
}

struct Harness {
    ep: Endpoint,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let cfg = EndpointConfig::new("127.0.0.1:5060".parse().unwrap(), "sspr-ivr-test");
        Self::with(cfg)
    }
    fn with(cfg: EndpointConfig) -> Self {
        let t0 = Instant::now();
        Harness {
            ep: Endpoint::new(cfg, TokenRng::seeded(1)),
            t0,
            now: t0,
        }
    }
    fn send(&mut self, r: &Req) {
        self.ep
            .handle_datagram(self.now, Transport::Udp, caller(), &r.bytes());
    }
    /// An early-offer INVITE (`OFFER`) as `call_id`/`branch`; returns the call
    /// it offers, its `100 Trying` taken.
    fn offer(&mut self, call_id: &str, branch: &str) -> IncomingCall {
        self.send(
            &Req::new("INVITE", call_id, branch, 1)
                .extra("Content-Type: application/sdp\r\n")
                .body(OFFER),
        );
        self.out();
        let Some(Event::IncomingCall(ic)) = self.events().pop() else {
            panic!("no call offered")
        };
        ic
    }
    fn out(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut v = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            let Ok(Datagram::Message(p)) = message::parse(&t.payload) else {
                panic!("unparseable output");
            };
            assert!(
                p.defect.is_none(),
                "we sent a defective message: {:?}",
                p.defect
            );
            v.push((t.destination, p.message));
        }
        v
    }
    fn statuses(&mut self) -> Vec<u16> {
        self.out()
            .iter()
            .map(|(_, m)| m.status().unwrap_or(0))
            .collect()
    }
    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }
    fn cmd(&mut self, c: Command) {
        self.ep.handle_command(self.now, c);
    }
    /// Jump to the next deadline (if before `limit`) and fire it.
    fn step(&mut self, limit: Instant) -> bool {
        match self.ep.poll_timeout() {
            Some(t) if t <= limit => {
                assert!(t >= self.now, "deadline in the past");
                self.now = t;
                self.ep.handle_timeout(t);
                true
            }
            _ => false,
        }
    }
    fn at(&self) -> Duration {
        self.now - self.t0
    }
    /// Start a call and answer it; returns (key, our tag, the 200).
    fn answered_call(&mut self, call_id: &str) -> (CallKey, String, Message) {
        self.answered_call_with(call_id, "")
    }
    /// [`Harness::answered_call`] with `headers` in its INVITE.
    fn answered_call_with(&mut self, call_id: &str, headers: &str) -> (CallKey, String, Message) {
        let extra = format!("{headers}Content-Type: application/sdp\r\n");
        self.send(
            &Req::new("INVITE", call_id, "z9hG4bKinv1", 1)
                .extra(&extra)
                .body(OFFER),
        );
        assert_eq!(self.statuses(), [100]);
        let Some(Event::IncomingCall(ic)) = self.events().pop() else {
            panic!("no IncomingCall");
        };
        self.cmd(Command::Answer {
            call: ic.call.clone(),
            sdp: ANSWER.into(),
        });
        let out = self.out();
        assert_eq!(out.len(), 1);
        let ok = out[0].1.clone();
        assert_eq!(ok.status(), Some(200));
        let tag = message::NameAddr::parse(ok.header("To").unwrap())
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        (ic.call, tag, ok)
    }
    /// Start a call without an offer and answer it (our offer goes in the
    /// 200); returns (the call, our tag, the 200).
    fn answered_late_offer(&mut self, call_id: &str) -> (CallKey, String, Message) {
        self.send(&Req::new("INVITE", call_id, "z9hG4bKinvlate", 1));
        self.out();
        let Some(Event::IncomingCall(ic)) = self.events().pop() else {
            panic!("no IncomingCall");
        };
        assert_eq!(ic.offer, None);
        self.cmd(Command::Answer {
            call: ic.call.clone(),
            sdp: ANSWER.into(),
        });
        let ok = self.out().remove(0).1;
        let tag = message::NameAddr::parse(ok.header("To").unwrap())
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        (ic.call, tag, ok)
    }
    /// A request in an answered call's dialog, with an SDP `body` unless empty.
    fn in_dialog(&mut self, method: &str, call_id: &str, tag: &str, cseq: u32, body: &str) {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let branch = format!("z9hG4bK{method}{cseq}");
        self.send(
            &Req::new(method, call_id, &branch, cseq)
                .with_to_tag(tag)
                .extra(ct)
                .body(body),
        );
    }
    fn ack(&mut self, call_id: &str, tag: &str, cseq: u32, body: &str) {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        self.send(
            &Req::new("ACK", call_id, "z9hG4bKack1", cseq)
                .with_to_tag(tag)
                .extra(ct)
                .body(body),
        );
    }
}
