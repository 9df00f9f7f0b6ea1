//! Non-INVITE server transactions and stateless answers: retransmissions, OPTIONS,
//! INFO DTMF, response routing, counters.

use super::*;

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
    let bye = Req::new("BYE", "c5", "z9hG4bKbye1", 2)
        .with_to_tag(&tag)
        .extra("Reason: Q.850;cause=16\r\n");
    h.send(&bye);
    assert_eq!(h.statuses(), [200]);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: key,
            reason: EndReason::RemoteBye {
                reason: Some("Q.850;cause=16".into())
            }
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
