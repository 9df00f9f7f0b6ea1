//! Endpoint behaviour in virtual time: transactions, timers, dialogs and methods.
//! Every test drives the sans-IO endpoint with hand-written requests from a caller at
//! 127.0.0.1:5070 and asserts on what a peer would see on the wire.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sspr_ivr::sip::message::{self, Datagram, Message, StartLine};
use sspr_ivr::sip::{
    CallKey, Command, EndReason, Endpoint, EndpointConfig, Event, ReferStatus, Transport,
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
            ep: Endpoint::new(cfg),
            t0,
            now: t0,
        }
    }
    fn send(&mut self, r: &Req) {
        self.ep
            .handle_datagram(self.now, Transport::Udp, caller(), &r.bytes());
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
        self.send(
            &Req::new("INVITE", call_id, "z9hG4bKinv1", 1)
                .extra("Content-Type: application/sdp\r\n")
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

#[test]
fn invite_answer_ack_establishes() {
    let mut h = Harness::new();
    h.send(
        &Req::new("INVITE", "c1", "z9hG4bKinv1", 1)
            .extra("Record-Route: <sip:127.0.0.9:5080;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\nContent-Type: application/sdp\r\n")
            .body(OFFER),
    );
    let out = h.out();
    assert_eq!(out.len(), 1);
    let (dest, trying) = &out[0];
    assert_eq!(*dest, caller());
    assert_eq!(trying.status(), Some(100));
    assert_eq!(
        trying.header("To"),
        Some("<sip:echo@127.0.0.1>"),
        "no tag on 100"
    );
    let events = h.events();
    let [Event::IncomingCall(ic)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(ic.call, CallKey("c1".into()));
    assert_eq!(ic.request_uri_user, "echo");
    assert_eq!(ic.from_user, "+15551234");
    assert_eq!(ic.source, caller());
    assert_eq!(ic.offer.as_deref(), Some(OFFER));

    h.cmd(Command::Answer {
        call: ic.call.clone(),
        sdp: ANSWER.into(),
    });
    let out = h.out();
    let ok = &out[0].1;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body, ANSWER.as_bytes());
    assert_eq!(ok.header("Content-Type"), Some("application/sdp"));
    assert_eq!(ok.header("Contact"), Some("<sip:ivr@127.0.0.1:5060>"));
    assert_eq!(
        ok.headers_named("Record-Route").collect::<Vec<_>>(),
        ["<sip:127.0.0.9:5080;lr>", "<sip:p2.example.com;lr>"]
    );
    assert!(ok.header("Allow").unwrap().contains("INFO"));
    let tag = message::NameAddr::parse(ok.header("To").unwrap())
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    assert!(tag.len() >= 8);

    h.now += ms(100);
    h.ack("c1", &tag, 1, "");
    assert_eq!(
        h.events(),
        [Event::Established {
            call: ic.call.clone(),
            ack_sdp: None
        }]
    );
    assert!(h.out().is_empty(), "ACK is never answered");
    // No more 2xx retransmissions after the ACK.
    while h.step(h.t0 + Duration::from_secs(60)) {}
    assert!(h.out().is_empty());
    assert!(h.events().is_empty());

    // Hang up: BYE goes to the first Record-Route hop (an IP literal), with Route headers.
    h.cmd(Command::Hangup {
        call: ic.call.clone(),
    });
    let out = h.out();
    let (dest, bye) = &out[0];
    assert_eq!(*dest, "127.0.0.9:5080".parse().unwrap());
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(
        bye.headers_named("Route").collect::<Vec<_>>(),
        ["<sip:127.0.0.9:5080;lr>", "<sip:p2.example.com;lr>"]
    );
    assert!(
        matches!(&bye.start, StartLine::Request { uri, .. } if uri == "sip:alice@127.0.0.1:5070")
    );
    assert_eq!(
        bye.header("To"),
        Some("\"Alice\" <sip:+15551234@127.0.0.1>;tag=caller1")
    );
    assert_eq!(
        bye.header("From"),
        Some(format!("<sip:echo@127.0.0.1>;tag={tag}").as_str())
    );
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: ic.call.clone(),
            reason: EndReason::LocalBye
        }]
    );
}

#[test]
fn two_xx_retransmits_on_schedule_then_timer_h_sends_bye() {
    let mut h = Harness::new();
    let (key, _tag, ok) = h.answered_call("c2");
    let mut times = Vec::new();
    let mut bye_at = None;
    while h.step(h.t0 + Duration::from_secs(40)) {
        for (dest, m) in h.out() {
            assert_eq!(dest, caller());
            if m.status() == Some(200) {
                assert_eq!(m, ok, "retransmission is byte-identical");
                times.push(h.at().as_millis());
            } else if m.method() == Some("BYE") && bye_at.is_none() {
                bye_at = Some(h.at().as_millis());
            }
        }
    }
    assert_eq!(
        times,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(bye_at, Some(32000));
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: key,
            reason: EndReason::AckTimeout
        }]
    );
    // Ten 2xx retransmissions, then the BYE's Timer E at 32.5, 33.5, 35.5 and 39.5 s.
    assert_eq!(h.ep.stats().retransmits_sent, 10 + 4);
}

#[test]
fn reject_retransmits_with_timer_g_until_ack() {
    let mut h = Harness::new();
    h.send(
        &Req::new("INVITE", "c3", "z9hG4bKinv3", 1)
            .extra("Content-Type: application/sdp\r\n")
            .body(OFFER),
    );
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    h.cmd(Command::Reject {
        call: ic.call.clone(),
        status: 486,
        retry_after: Some(30),
    });
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(486));
    assert_eq!(out[0].1.header("Retry-After"), Some("30"));
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: ic.call,
            reason: EndReason::Rejected(486)
        }]
    );
    let mut times = Vec::new();
    while h.step(h.t0 + ms(4000)) {
        if !h.out().is_empty() {
            times.push(h.at().as_millis());
        }
    }
    assert_eq!(times, [500, 1500, 3500]);
    // The ACK (same branch as the INVITE) stops Timer G.
    let tag = "whatever";
    h.send(&Req::new("ACK", "c3", "z9hG4bKinv3", 1).with_to_tag(tag));
    while h.step(h.t0 + Duration::from_secs(60)) {}
    assert!(h.out().is_empty());
    assert!(h.ep.poll_timeout().is_none(), "Timer I cleaned up");
}

#[test]
fn unacknowledged_reject_stops_at_timer_h() {
    let mut h = Harness::new();
    h.send(&Req::new("INVITE", "c3b", "z9hG4bKinv3b", 1).body(""));
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    h.cmd(Command::Reject {
        call: ic.call,
        status: 503,
        retry_after: None,
    });
    h.out();
    let mut last = 0;
    while h.step(h.t0 + Duration::from_secs(100)) {
        if !h.out().is_empty() {
            last = h.at().as_millis();
        }
    }
    // G: 0.5, 1.5, 3.5, 7.5, ... 31.5; H at 32 s ends it.
    assert_eq!(last, 31500);
    assert!(h.ep.poll_timeout().is_none());
}

#[test]
fn cancel_gives_200_and_487() {
    let mut h = Harness::new();
    h.send(
        &Req::new("INVITE", "c4", "z9hG4bKinv4", 7)
            .extra("Content-Type: application/sdp\r\n")
            .body(OFFER),
    );
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    h.send(&Req::new("CANCEL", "c4", "z9hG4bKinv4", 7));
    let out = h.out();
    let got: Vec<(u16, &str)> = out
        .iter()
        .map(|(_, m)| (m.status().unwrap(), m.header("CSeq").unwrap()))
        .collect();
    assert_eq!(got, [(200, "7 CANCEL"), (487, "7 INVITE")]);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: ic.call.clone(),
            reason: EndReason::Cancelled
        }]
    );
    // Too late to answer.
    h.cmd(Command::Answer {
        call: ic.call,
        sdp: ANSWER.into(),
    });
    assert!(h.out().is_empty());
    // A CANCEL retransmission is answered from its transaction; an unknown CANCEL gets 481.
    h.send(&Req::new("CANCEL", "c4", "z9hG4bKinv4", 7));
    assert_eq!(h.statuses(), [200]);
    h.send(&Req::new("CANCEL", "nope", "z9hG4bKnope", 1));
    assert_eq!(h.statuses(), [481]);
}

#[test]
fn retransmitted_invite_and_bye_are_answered_once() {
    let mut h = Harness::new();
    let inv = Req::new("INVITE", "c5", "z9hG4bKinv1", 1)
        .extra("Content-Type: application/sdp\r\n")
        .body(OFFER);
    h.send(&inv);
    assert_eq!(h.statuses(), [100]);
    assert_eq!(h.events().len(), 1);
    h.send(&inv);
    assert_eq!(
        h.statuses(),
        [100],
        "retransmitted INVITE gets the 100 again"
    );
    assert!(h.events().is_empty(), "and is not reported again");
    let key = CallKey("c5".into());
    h.cmd(Command::Answer {
        call: key.clone(),
        sdp: ANSWER.into(),
    });
    let ok = h.out().remove(0).1;
    h.send(&inv);
    let again = h.out();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].1, ok,
        "after the 2xx, a retransmitted INVITE gets the 2xx"
    );
    let tag = message::NameAddr::parse(ok.header("To").unwrap())
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    h.ack("c5", &tag, 1, "");
    h.events();
    let bye = Req::new("BYE", "c5", "z9hG4bKbye1", 2).with_to_tag(&tag);
    h.send(&bye);
    assert_eq!(h.statuses(), [200]);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: key,
            reason: EndReason::RemoteBye
        }]
    );
    h.send(&bye);
    assert_eq!(h.statuses(), [200]);
    assert!(h.events().is_empty());
    assert_eq!(h.ep.stats().requests_received.get("BYE"), Some(&1));
    assert_eq!(h.ep.stats().requests_received.get("INVITE"), Some(&1));
    assert_eq!(h.ep.stats().retransmits_received, 3);
    // Once Timer J has run, the BYE is for an unknown dialog.
    while h.step(h.t0 + Duration::from_secs(100)) {}
    h.out();
    h.send(&bye);
    assert_eq!(h.statuses(), [481]);
}

#[test]
fn late_offer_takes_the_answer_from_the_ack() {
    let mut h = Harness::new();
    h.send(&Req::new("INVITE", "c6", "z9hG4bKinv6", 1));
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    assert_eq!(ic.offer, None);
    h.cmd(Command::Answer {
        call: ic.call.clone(),
        sdp: ANSWER.into(),
    });
    let ok = h.out().remove(0).1;
    assert_eq!(ok.body, ANSWER.as_bytes(), "our offer goes in the 200");
    let tag = message::NameAddr::parse(ok.header("To").unwrap())
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    h.ack("c6", &tag, 1, OFFER);
    assert_eq!(
        h.events(),
        [Event::Established {
            call: ic.call,
            ack_sdp: Some(OFFER.into())
        }]
    );
}

#[test]
fn reinvite_and_update_get_the_same_session() {
    let mut h = Harness::new();
    let (key, tag, ok) = h.answered_call("c7");
    h.ack("c7", &tag, 1, "");
    h.events();
    let hold = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    h.send(
        &Req::new("INVITE", "c7", "z9hG4bKre1", 2)
            .with_to_tag(&tag)
            .extra("Content-Type: application/sdp\r\n")
            .body(&hold),
    );
    let out = h.out();
    assert_eq!(out.len(), 1, "no 100 for a re-INVITE answered at once");
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.body, ok.body, "same answer");
    assert_eq!(out[0].1.header("CSeq"), Some("2 INVITE"));
    // Retransmitted until its ACK.
    let until = h.now + ms(600);
    assert!(h.step(until));
    assert_eq!(h.statuses(), [200]);
    h.ack("c7", &tag, 2, "");
    while h.step(h.now + Duration::from_secs(60)) {}
    assert!(h.out().is_empty());
    assert!(h.events().is_empty(), "a refresh is not reported");

    h.send(
        &Req::new("UPDATE", "c7", "z9hG4bKup1", 3)
            .with_to_tag(&tag)
            .extra("Content-Type: application/sdp\r\n")
            .body(OFFER),
    );
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.body, ok.body);
    // A re-INVITE in an unknown dialog: 481.
    h.send(&Req::new("INVITE", "c7", "z9hG4bKre9", 4).with_to_tag("not-ours"));
    assert_eq!(h.statuses(), [481]);
    assert_eq!(h.ep.active_calls(), 1);
    let _ = key;
}

#[test]
fn refer_and_notify_report_transfer_progress() {
    let mut h = Harness::new();
    let (key, tag, _) = h.answered_call("c8");
    h.ack("c8", &tag, 1, "");
    h.events();
    h.cmd(Command::Refer {
        call: key.clone(),
        target: "sip:agents@127.0.0.1:5090".into(),
        headers: vec![("X-Transfer-Reason".into(), "locked-out".into())],
    });
    let out = h.out();
    let (dest, refer) = &out[0];
    assert_eq!(
        *dest,
        caller(),
        "symmetric signalling: back to where the INVITE came from"
    );
    assert_eq!(refer.method(), Some("REFER"));
    assert_eq!(
        refer.header("Refer-To"),
        Some("<sip:agents@127.0.0.1:5090>")
    );
    assert_eq!(refer.header("Referred-By"), Some("<sip:echo@127.0.0.1>"));
    assert_eq!(refer.header("X-Transfer-Reason"), Some("locked-out"));
    assert_eq!(refer.header("CSeq"), Some("1 REFER"));
    let via = message::Via::parse(refer.header("Via").unwrap()).unwrap();
    assert_eq!(via.sent_by, "127.0.0.1:5060");
    let branch = via.param("branch").unwrap().to_string();
    // 202 from the transferee.
    let resp = format!(
        "SIP/2.0 202 Accepted\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c8\r\nCSeq: 1 REFER\r\nContent-Length: 0\r\n\r\n",
        refer.header("Via").unwrap(),
        refer.header("From").unwrap(),
        refer.header("To").unwrap()
    );
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), resp.as_bytes());
    assert_eq!(
        h.events(),
        [Event::ReferStatus {
            call: key.clone(),
            status: ReferStatus::Accepted
        }]
    );
    // A retransmitted 202 is absorbed.
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), resp.as_bytes());
    assert!(h.events().is_empty());
    // NOTIFY with the sipfrag.
    h.send(
        &Req::new("NOTIFY", "c8", "z9hG4bKn1", 2)
            .with_to_tag(&tag)
            .extra("Event: refer\r\nSubscription-State: terminated\r\nContent-Type: message/sipfrag;version=2.0\r\n")
            .body("SIP/2.0 180 Ringing\r\n"),
    );
    assert_eq!(h.statuses(), [200]);
    assert_eq!(
        h.events(),
        [Event::ReferStatus {
            call: key.clone(),
            status: ReferStatus::Notify(180)
        }]
    );
    // NOTIFY for an unknown dialog: 481.
    h.send(
        &Req::new("NOTIFY", "zz", "z9hG4bKn2", 3)
            .with_to_tag("x")
            .extra("Event: refer\r\nContent-Type: message/sipfrag\r\n")
            .body("SIP/2.0 200 OK\r\n"),
    );
    assert_eq!(h.statuses(), [481]);
    let _ = branch;

    // A second REFER is rejected, a third times out.
    h.cmd(Command::Refer {
        call: key.clone(),
        target: "sip:a@127.0.0.1".into(),
        headers: vec![],
    });
    let refer = h.out().remove(0).1;
    let resp = format!(
        "SIP/2.0 603 Decline\r\nVia: {}\r\nFrom: x\r\nTo: y\r\nCall-ID: c8\r\nCSeq: 2 REFER\r\nContent-Length: 0\r\n\r\n",
        refer.header("Via").unwrap()
    );
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), resp.as_bytes());
    assert_eq!(
        h.events(),
        [Event::ReferStatus {
            call: key.clone(),
            status: ReferStatus::Rejected(603)
        }]
    );
    let start = h.now;
    h.cmd(Command::Refer {
        call: key.clone(),
        target: "sip:a@127.0.0.1".into(),
        headers: vec![],
    });
    h.out();
    let mut resent = Vec::new();
    while h.step(start + Duration::from_secs(40)) {
        if !h.out().is_empty() {
            resent.push((h.now - start).as_millis());
        }
        if !h.events().is_empty() {
            break;
        }
    }
    // Timer E: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s; Timer F at 32 s.
    assert_eq!(
        resent,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(h.now - start, Duration::from_secs(32));
}

#[test]
fn refer_timeout_is_reported_as_408() {
    let mut h = Harness::new();
    let (key, tag, _) = h.answered_call("c8b");
    h.ack("c8b", &tag, 1, "");
    h.events();
    let start = h.now;
    h.cmd(Command::Refer {
        call: key.clone(),
        target: "sip:a@127.0.0.1".into(),
        headers: vec![],
    });
    while h.step(start + Duration::from_secs(40)) {}
    h.out();
    assert_eq!(
        h.events(),
        [Event::ReferStatus {
            call: key,
            status: ReferStatus::Rejected(408)
        }]
    );
}

#[test]
fn options_in_and_out_of_dialog() {
    let mut h = Harness::new();
    h.send(&Req::new("OPTIONS", "o1", "z9hG4bKo1", 1));
    let out = h.out();
    let ok = &out[0].1;
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header("Allow").unwrap().contains("OPTIONS"));
    assert!(ok.header("Accept").unwrap().contains("application/sdp"));
    assert!(ok.header("Supported").is_some());
    let (_, tag, _) = h.answered_call("o2");
    h.send(&Req::new("OPTIONS", "o2", "z9hG4bKo2", 2).with_to_tag(&tag));
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(200));
    assert!(out[0]
        .1
        .header("To")
        .unwrap()
        .ends_with(&format!(";tag={tag}")));
    // Max-Forwards: 0 at an endpoint is processed normally.
    h.send(&Req::new("OPTIONS", "o3", "z9hG4bKo3", 1).extra("Max-Forwards: 0\r\n"));
    assert_eq!(
        h.statuses(),
        [400],
        "two Max-Forwards headers are malformed"
    );
}

#[test]
fn info_carries_dtmf() {
    let mut h = Harness::new();
    let (key, tag, _) = h.answered_call("i1");
    h.ack("i1", &tag, 1, "");
    h.events();
    type Digit = Option<(char, Option<u32>)>;
    let cases: &[(&str, &str, u16, Digit)] = &[
        (
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
            200,
            Some(('5', Some(160))),
        ),
        (
            "application/dtmf-relay",
            "Signal= #\r\nDuration= 250\r\n",
            200,
            Some(('#', Some(250))),
        ),
        (
            "Application/DTMF-Relay",
            "Signal=11\r\n",
            200,
            Some(('#', None)),
        ),
        ("application/dtmf", "5", 200, Some(('5', None))),
        ("application/dtmf", "*\r\n", 200, Some(('*', None))),
        ("application/dtmf-relay", "Signal=X\r\n", 400, None),
        ("text/plain", "hello", 415, None),
    ];
    for (i, (ct, body, status, digit)) in cases.iter().enumerate() {
        let branch = format!("z9hG4bKinfo{i}");
        let extra = format!("Content-Type: {ct}\r\n");
        h.send(
            &Req::new("INFO", "i1", &branch, 2 + i as u32)
                .with_to_tag(&tag)
                .extra(&extra)
                .body(body),
        );
        assert_eq!(h.statuses(), [*status], "{ct} {body:?}");
        let want: Vec<Event> = digit
            .iter()
            .map(|(d, dur)| Event::Dtmf {
                call: key.clone(),
                digit: *d,
                duration_ms: *dur,
            })
            .collect();
        assert_eq!(h.events(), want, "{ct} {body:?}");
    }
    h.send(
        &Req::new("INFO", "unknown", "z9hG4bKinfoX", 1)
            .with_to_tag("t")
            .extra("Content-Type: application/dtmf\r\n")
            .body("1"),
    );
    assert_eq!(h.statuses(), [481]);
}

#[test]
fn responses_go_to_the_source_with_received_and_rport() {
    let mut h = Harness::new();
    let msg = "OPTIONS sip:echo@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP evil.example.com:9999;branch=z9hG4bKr1, SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKr0\r\nVia: SIP/2.0/TCP 10.2.2.2;branch=z9hG4bKrx;received=10.9.9.9\r\nRecord-Route: <sip:127.0.0.7;lr>\r\nf: <sip:a@127.0.0.1>;tag=1\r\nt: <sip:echo@127.0.0.1>\r\ni: r1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    let src: SocketAddr = "127.0.0.1:61000".parse().unwrap();
    h.ep.handle_datagram(h.now, Transport::Udp, src, msg.as_bytes());
    let out = h.out();
    let (dest, resp) = &out[0];
    assert_eq!(*dest, src, "never the Via host");
    assert_eq!(
        resp.headers_named("Via").collect::<Vec<_>>(),
        [
            "SIP/2.0/UDP evil.example.com:9999;branch=z9hG4bKr1;received=127.0.0.1;rport=61000",
            "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKr0",
            "SIP/2.0/TCP 10.2.2.2;branch=z9hG4bKrx;received=10.9.9.9",
        ]
    );
    assert_eq!(resp.header("Record-Route"), Some("<sip:127.0.0.7;lr>"));
    // An existing rport (empty) is filled in, not duplicated.
    let msg2 = msg.replace("branch=z9hG4bKr1", "rport;branch=z9hG4bKr2");
    h.ep.handle_datagram(h.now, Transport::Udp, src, msg2.as_bytes());
    let out = h.out();
    assert_eq!(
        out[0].1.header("Via"),
        Some("SIP/2.0/UDP evil.example.com:9999;branch=z9hG4bKr2;received=127.0.0.1;rport=61000")
    );
}

#[test]
fn tcp_has_no_retransmissions_but_timer_h_still_runs() {
    let mut h = Harness::new();
    let r = Req::new("INVITE", "t1", "z9hG4bKt1", 1)
        .extra("Content-Type: application/sdp\r\n")
        .body(OFFER);
    h.ep.handle_datagram(h.now, Transport::Tcp, caller(), &r.bytes());
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    assert_eq!(ic.transport, Transport::Tcp);
    h.cmd(Command::Answer {
        call: ic.call.clone(),
        sdp: ANSWER.into(),
    });
    let ok = h.out().remove(0).1;
    assert_eq!(
        ok.header("Contact"),
        Some("<sip:ivr@127.0.0.1:5060;transport=tcp>")
    );
    let mut sent = Vec::new();
    while h.step(h.t0 + Duration::from_secs(40)) {
        for (_, m) in h.out() {
            sent.push((h.at().as_millis(), m.method().map(str::to_string)));
        }
    }
    assert_eq!(sent, [(32000, Some("BYE".to_string()))]);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: ic.call,
            reason: EndReason::AckTimeout
        }]
    );
}

#[test]
fn hangup_before_answer_sends_480() {
    let mut h = Harness::new();
    h.send(&Req::new("INVITE", "h1", "z9hG4bKh1", 1));
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    h.cmd(Command::Hangup {
        call: ic.call.clone(),
    });
    assert_eq!(h.statuses(), [480]);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: ic.call,
            reason: EndReason::LocalBye
        }]
    );
}

#[test]
fn stats_count_what_happened() {
    let mut h = Harness::new();
    let inv = Req::new("INVITE", "s0", "z9hG4bKs0", 1);
    h.send(&inv);
    h.send(&inv);
    // OPTIONS is answered statelessly: a repeat is answered again, not from a cache.
    h.send(&Req::new("OPTIONS", "s1", "z9hG4bKs1", 1));
    h.send(&Req::new("OPTIONS", "s1", "z9hG4bKs1", 1));
    h.send(&Req::new("SUBSCRIBE", "s2", "z9hG4bKs2", 1));
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), b"\x00\x01garbage");
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), b"\r\n\r\n");
    h.ep.handle_datagram(
        h.now,
        Transport::Udp,
        caller(),
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKq\r\nCSeq: x\r\n\r\n",
    );
    assert_eq!(h.statuses(), [100, 100, 200, 200, 405, 400]);
    let s = h.ep.stats().clone();
    assert_eq!(s.requests_received.get("INVITE"), Some(&1));
    assert_eq!(s.requests_received.get("OPTIONS"), Some(&2));
    assert_eq!(
        s.responses_sent.get(&100),
        Some(&1),
        "first transmissions only"
    );
    assert_eq!(s.responses_sent.get(&200), Some(&2));
    assert_eq!(s.responses_sent.get(&405), Some(&1));
    assert_eq!(s.responses_sent.get(&400), Some(&1));
    assert_eq!(s.parse_errors, 1);
    assert_eq!(s.garbage_dropped, 1, "keepalives are not garbage");
    assert_eq!(s.retransmits_received, 1);
    assert_eq!(s.retransmits_sent, 1);
}

#[test]
fn without_symmetric_signalling_bye_goes_to_the_contact() {
    let mut cfg = EndpointConfig::new("127.0.0.1:5060".parse().unwrap(), "sspr-ivr-test");
    cfg.symmetric_signalling = false;
    let mut h = Harness::with(cfg);
    let inv = Req::new("INVITE", "sym2", "z9hG4bKsym2", 1).body("");
    let text = String::from_utf8(inv.bytes()).unwrap().replace(
        "Contact: <sip:alice@127.0.0.1:5070>",
        "Contact: <sip:alice@127.0.0.3:5999>",
    );
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), text.as_bytes());
    h.out();
    let Some(Event::IncomingCall(ic)) = h.events().pop() else {
        panic!()
    };
    h.cmd(Command::Answer {
        call: ic.call.clone(),
        sdp: ANSWER.into(),
    });
    h.out();
    h.cmd(Command::Hangup { call: ic.call });
    let out = h.out();
    assert_eq!(out[0].1.method(), Some("BYE"));
    assert_eq!(out[0].0, "127.0.0.3:5999".parse().unwrap());
}

#[test]
fn rfc2543_invite_without_branch_is_matched_for_retransmissions() {
    let mut h = Harness::new();
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sip-torture/inv2543.dat"
    ))
    .unwrap();
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), &data);
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), &data);
    assert_eq!(h.statuses(), [100, 100]);
    let events = h.events();
    assert_eq!(events.len(), 1);
    let Event::IncomingCall(ic) = &events[0] else {
        panic!()
    };
    assert_eq!(ic.request_uri_user, "UserB");
    assert_eq!(ic.from_user, "+13035551111");
}
