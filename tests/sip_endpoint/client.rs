//! Our own requests: REFER with NOTIFY progress, Timer F, BYE routing.

use super::*;

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
    h.cmd(Command::Hangup {
        call: ic.call,
        reason: Some(ByeReason::MAX_DURATION),
    });
    let out = h.out();
    assert_eq!(out[0].1.method(), Some("BYE"));
    assert_eq!(out[0].0, "127.0.0.3:5999".parse().unwrap());
    assert_eq!(
        out[0].1.header("Reason"),
        Some("Q.850 ;cause=102 ;text=\"Maximum call duration reached\"")
    );
}
