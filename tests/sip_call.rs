//! A whole call between the `dial` UAC and the server `Endpoint`, wired back to back in
//! memory and stepped in virtual time (quinn's `Pair` idea): packets are delivered
//! instantly unless a test drops them, and time jumps to the earliest deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sspr_ivr::codec::Codec;
use sspr_ivr::sip::sdp;
use sspr_ivr::sip::uac::{Uac, UacEvent};
use sspr_ivr::sip::{
    Command, EndReason, Endpoint, EndpointConfig, Event, ReferStatus, TokenRng, Transport,
};

const SERVER: &str = "127.0.0.1:5060";
const CLIENT: &str = "127.0.0.1:5072";

struct Pair {
    ep: Endpoint,
    uac: Uac,
    t0: Instant,
    now: Instant,
    server_events: Vec<(Duration, Event)>,
    client_events: Vec<(Duration, UacEvent)>,
    /// Drop the n-th datagram from the client (0-based), for loss tests.
    drop_client: Vec<usize>,
    drop_server: Vec<usize>,
    client_sent: usize,
    server_sent: usize,
    auto_answer: bool,
}

impl Pair {
    fn new() -> Self {
        let t0 = Instant::now();
        let server: SocketAddr = SERVER.parse().unwrap();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let offer = sdp::offer(
            "127.0.0.1:30000".parse().unwrap(),
            &[Codec::Pcmu, Codec::Pcma],
            101,
            20,
            1,
        );
        let uac = Uac::new(
            t0,
            EndpointConfig::new(client, "dial-test"),
            "sip:echo@127.0.0.1:5060",
            "5551234",
            offer,
            TokenRng::seeded(2),
        )
        .unwrap();
        Pair {
            ep: Endpoint::new(
                EndpointConfig::new(server, "sspr-ivr-test"),
                TokenRng::seeded(1),
            ),
            uac,
            t0,
            now: t0,
            server_events: Vec::new(),
            client_events: Vec::new(),
            drop_client: Vec::new(),
            drop_server: Vec::new(),
            client_sent: 0,
            server_sent: 0,
            auto_answer: true,
        }
    }

    /// Deliver everything queued, handle server events (auto-answer), repeat until quiet.
    fn settle(&mut self) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let client: SocketAddr = CLIENT.parse().unwrap();
        loop {
            let mut progressed = false;
            while let Some(t) = self.uac.poll_transmit() {
                progressed = true;
                assert_eq!(t.destination, server);
                let n = self.client_sent;
                self.client_sent += 1;
                if !self.drop_client.contains(&n) {
                    self.ep
                        .handle_datagram(self.now, Transport::Udp, client, &t.payload);
                }
            }
            while let Some(ev) = self.ep.poll_event() {
                progressed = true;
                if let (true, Event::IncomingCall(ic)) = (self.auto_answer, &ev) {
                    let offer = sdp::parse(ic.offer.as_deref().unwrap()).unwrap();
                    let neg = sdp::negotiate(&offer, &[Codec::Pcma, Codec::Pcmu]).unwrap();
                    let answer = sdp::answer(&neg, "127.0.0.1:20000".parse().unwrap(), 77, None);
                    self.ep.handle_command(
                        self.now,
                        Command::Answer {
                            call: ic.call.clone(),
                            sdp: answer,
                        },
                    );
                }
                self.server_events.push((self.now - self.t0, ev));
            }
            while let Some(t) = self.ep.poll_transmit() {
                progressed = true;
                assert_eq!(t.destination, client, "symmetric: back to the source");
                let n = self.server_sent;
                self.server_sent += 1;
                if !self.drop_server.contains(&n) {
                    self.uac
                        .handle_datagram(self.now, Transport::Udp, server, &t.payload);
                }
            }
            while let Some(ev) = self.uac.poll_event() {
                progressed = true;
                self.client_events.push((self.now - self.t0, ev));
            }
            if !progressed {
                break;
            }
        }
    }

    /// Run timers until `limit` (virtual), settling after each.
    fn run_until(&mut self, limit: Duration) {
        self.settle();
        loop {
            let next = [self.ep.poll_timeout(), self.uac.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t - self.t0 <= limit => {
                    assert!(t >= self.now);
                    self.now = t;
                    self.ep.handle_timeout(t);
                    self.uac.handle_timeout(t);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = self.now.max(self.t0 + limit);
    }
}

#[test]
fn full_call_info_refer_and_bye() {
    let mut p = Pair::new();
    p.settle();
    let call = match &p.server_events[0].1 {
        Event::IncomingCall(ic) => {
            assert_eq!(ic.request_uri_user, "echo");
            assert_eq!(ic.from_user, "5551234");
            ic.call.clone()
        }
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        &p.server_events[1].1,
        Event::Established { ack_sdp: None, .. }
    ));
    let answered: Vec<_> = p.client_events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(answered[0], UacEvent::Provisional(100));
    let UacEvent::Answered { sdp: answer } = &answered[1] else {
        panic!("{answered:?}")
    };
    let neg = sdp::negotiate(&sdp::parse(answer).unwrap(), &[Codec::Pcma]).unwrap();
    assert_eq!((neg.audio_pt, neg.telephone_event_pt), (8, Some(101)));

    // DTMF by INFO.
    for d in ['1', '2', '#'] {
        p.uac.send_info(p.now, d, 160);
    }
    p.settle();
    let digits: Vec<char> = p
        .server_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Dtmf {
                digit,
                duration_ms: Some(160),
                ..
            } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, ['1', '2', '#']);
    assert_eq!(
        p.client_events
            .iter()
            .filter(|(_, e)| *e == UacEvent::Info { status: 200 })
            .count(),
        3
    );

    // Transfer: REFER → 202 + NOTIFY 200.
    p.ep.handle_command(
        p.now,
        Command::Refer {
            call: call.clone(),
            target: "sip:agent@127.0.0.1:5090".into(),
            headers: vec![("X-Reason".into(), "help".into())],
        },
    );
    p.settle();
    let refer_events: Vec<_> = p
        .server_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ReferStatus { status, .. } => Some(status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refer_events,
        [ReferStatus::Accepted, ReferStatus::Notify(200)]
    );
    let refer_received = p.client_events.iter().find_map(|(_, e)| match e {
        UacEvent::ReferReceived { target, headers } => Some((target.clone(), headers.clone())),
        _ => None,
    });
    let (target, headers) = refer_received.unwrap();
    assert_eq!(target, "sip:agent@127.0.0.1:5090");
    assert!(headers.contains(&("X-Reason".to_string(), "help".to_string())));

    // The caller hangs up.
    p.uac.hangup(p.now);
    p.run_until(Duration::from_secs(60));
    assert!(p.server_events.iter().any(|(_, e)| *e
        == Event::Terminated {
            call: call.clone(),
            reason: EndReason::RemoteBye { reason: None }
        }));
    assert_eq!(p.client_events.last().unwrap().1, UacEvent::Terminated);
    assert!(p.uac.is_terminated());
    assert_eq!(p.ep.active_calls(), 0);
    assert_eq!(p.ep.poll_timeout(), None, "all transactions cleaned up");
}

#[test]
fn server_hangup_reaches_the_caller() {
    let mut p = Pair::new();
    p.settle();
    let Event::IncomingCall(ic) = p.server_events[0].1.clone() else {
        panic!()
    };
    p.ep.handle_command(
        p.now,
        Command::Hangup {
            call: ic.call,
            reason: None,
        },
    );
    p.settle();
    let evs: Vec<_> = p.client_events.iter().map(|(_, e)| e.clone()).collect();
    assert!(
        evs.ends_with(&[UacEvent::ByeReceived { reason: None }, UacEvent::Terminated]),
        "{evs:?}"
    );
}

#[test]
fn refused_refer_is_reported_as_rejected() {
    let mut p = Pair::new();
    p.uac.refuse_refer(true);
    p.settle();
    let Event::IncomingCall(ic) = p.server_events[0].1.clone() else {
        panic!()
    };
    p.ep.handle_command(
        p.now,
        Command::Refer {
            call: ic.call,
            target: "sip:a@127.0.0.1".into(),
            headers: vec![],
        },
    );
    p.settle();
    assert!(p.server_events.iter().any(|(_, e)| matches!(
        e,
        Event::ReferStatus {
            status: ReferStatus::Rejected(603),
            ..
        }
    )));
}

#[test]
fn lost_invite_is_retransmitted_by_timer_a() {
    let mut p = Pair::new();
    p.drop_client = vec![0, 1];
    p.run_until(Duration::from_secs(5));
    // INVITE at 0 and 0.5 s lost; the one at 1.5 s arrives.
    let (at, _) = p
        .server_events
        .iter()
        .find(|(_, e)| matches!(e, Event::IncomingCall(_)))
        .unwrap();
    assert_eq!(*at, Duration::from_millis(1500));
    assert_eq!(
        p.server_events
            .iter()
            .filter(|(_, e)| matches!(e, Event::IncomingCall(_)))
            .count(),
        1
    );
}

#[test]
fn lost_ack_is_recovered_by_2xx_retransmission() {
    let mut p = Pair::new();
    // Client datagrams: 0 INVITE, 1 ACK (lost), 2 the ACK again after the 2xx retransmit.
    p.drop_client = vec![1];
    p.run_until(Duration::from_secs(5));
    let (at, _) = p
        .server_events
        .iter()
        .find(|(_, e)| matches!(e, Event::Established { .. }))
        .unwrap();
    assert_eq!(*at, Duration::from_millis(500));
    assert_eq!(
        p.client_events
            .iter()
            .filter(|(_, e)| matches!(e, UacEvent::Answered { .. }))
            .count(),
        1
    );
}

#[test]
fn no_answer_fails_with_408_after_timer_b() {
    let mut p = Pair::new();
    p.drop_client = (0..100).collect();
    p.run_until(Duration::from_secs(40));
    let evs: Vec<_> = p.client_events.to_vec();
    assert_eq!(
        evs,
        [
            (Duration::from_secs(32), UacEvent::Failed(408)),
            (Duration::from_secs(32), UacEvent::Terminated)
        ]
    );
    // Timer A: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (doubling, no cap).
    assert_eq!(p.client_sent, 7);
}

#[test]
fn rejected_call_is_acked_and_reported() {
    let mut p = Pair::new();
    p.auto_answer = false;
    p.settle();
    let Event::IncomingCall(ic) = p.server_events[0].1.clone() else {
        panic!()
    };
    p.ep.handle_command(
        p.now,
        Command::Reject {
            call: ic.call,
            status: 486,
            retry_after: None,
            warning: None,
        },
    );
    p.run_until(Duration::from_secs(60));
    let evs: Vec<_> = p.client_events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(
        evs,
        [
            UacEvent::Provisional(100),
            UacEvent::Failed(486),
            UacEvent::Terminated
        ]
    );
    // The ACK stopped Timer G: exactly one 486 was sent.
    assert_eq!(p.ep.stats().responses_sent.get(&486), Some(&1));
    assert_eq!(p.ep.stats().retransmits_sent, 0);
    assert_eq!(p.ep.poll_timeout(), None);
}

#[test]
fn caller_cancels_while_ringing() {
    let mut p = Pair::new();
    p.auto_answer = false;
    p.settle();
    p.uac.hangup(p.now);
    p.run_until(Duration::from_secs(60));
    assert!(p.server_events.iter().any(|(_, e)| matches!(
        e,
        Event::Terminated {
            reason: EndReason::Cancelled,
            ..
        }
    )));
    let evs: Vec<_> = p.client_events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(
        evs,
        [
            UacEvent::Provisional(100),
            UacEvent::Failed(487),
            UacEvent::Terminated
        ]
    );
}
