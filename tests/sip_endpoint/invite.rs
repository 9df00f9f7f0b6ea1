//! The INVITE server side: answer, 2xx retransmission and Timer H, rejections with
//! Timer G, CANCEL, late offer, re-INVITE/UPDATE, TCP, RFC 2543 matching.

use super::*;

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
        reason: None,
    });
    let out = h.out();
    let (dest, bye) = &out[0];
    assert_eq!(*dest, "127.0.0.9:5080".parse().unwrap());
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(
        bye.header("Reason"),
        None,
        "a flow's goodbye needs no reason"
    );
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
                // The caller's trace says why the IVR hung up (RFC 3326).
                assert_eq!(
                    m.header("Reason"),
                    Some("Q.850 ;cause=102 ;text=\"No ACK for the 2xx\"")
                );
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
    let ic = h.offer("c3", "z9hG4bKinv3");
    h.cmd(Command::Reject {
        call: ic.call.clone(),
        status: 486,
        retry_after: Some(30),
        warning: None,
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

/// A refused offer says why in a `Warning` header (RFC 3261 §20.43) with our
/// address as the warn-agent, and still no `Retry-After` when none is asked for.
#[test]
fn reject_with_a_warning() {
    let mut h = Harness::new();
    let ic = h.offer("c3w", "z9hG4bKinv3w");
    h.cmd(Command::Reject {
        call: ic.call,
        status: 488,
        retry_after: None,
        warning: Some(Warning {
            code: 301,
            text: "Incompatible network address formats",
        }),
    });
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(488));
    assert_eq!(
        out[0].1.header("Warning"),
        Some("301 127.0.0.1:5060 \"Incompatible network address formats\"")
    );
    assert_eq!(out[0].1.header("Retry-After"), None);
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
        warning: None,
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
fn late_offer_takes_the_answer_from_the_ack() {
    let mut h = Harness::new();
    let (call, tag, ok) = h.answered_late_offer("c6");
    assert_eq!(ok.body, ANSWER.as_bytes(), "our offer goes in the 200");
    h.ack("c6", &tag, 1, OFFER);
    assert_eq!(
        h.events(),
        [Event::Established {
            call,
            ack_sdp: Some(OFFER.into())
        }]
    );
}

/// Late offer: an ACK whose answer the call cannot use (none, no codec we
/// offered, the stream refused, SRTP insisted on, the other IP family) cannot
/// be refused, so the call ends at once with BYE, and its `Reason` says why.
#[test]
fn a_late_answer_the_call_cannot_use_ends_it_with_bye() {
    let with = |m: &str, c: &str| {
        OFFER
            .replace("m=audio 30000 RTP/AVP 0 8 101", m)
            .replace("c=IN IP4 127.0.0.1", c)
    };
    let ip4 = "c=IN IP4 127.0.0.1";
    let cases = [
        ("no answer", String::new(), "Unusable session description"),
        (
            "not SDP",
            "hello".to_string(),
            "Unusable session description",
        ),
        (
            "G.729 only",
            with("m=audio 30000 RTP/AVP 18 101", ip4),
            "Incompatible media format",
        ),
        (
            "PCMA, which we did not offer",
            with("m=audio 30000 RTP/AVP 8 101", ip4),
            "Incompatible media format",
        ),
        (
            "the stream refused",
            with("m=audio 0 RTP/AVP 0 101", ip4),
            "Incompatible media format",
        ),
        (
            "SRTP",
            with("m=audio 30000 RTP/SAVP 0 101", ip4),
            "Incompatible transport protocol",
        ),
        (
            "IPv6",
            with("m=audio 30000 RTP/AVP 0 101", "c=IN IP6 ::1"),
            "Incompatible network address formats",
        ),
    ];
    for (what, answer, text) in cases {
        let mut h = Harness::new();
        let (call, tag, _) = h.answered_late_offer("c6");
        h.ack("c6", &tag, 1, &answer);
        let out = h.out();
        assert_eq!(out.len(), 1, "{what}: one BYE");
        let bye = &out[0].1;
        assert_eq!(
            bye.header("CSeq").map(|c| c.ends_with(" BYE")),
            Some(true),
            "{what}"
        );
        assert_eq!(
            bye.header("Reason"),
            Some(format!("SIP ;cause=488 ;text=\"{text}\"").as_str()),
            "{what}"
        );
        assert_eq!(
            h.events(),
            [Event::Terminated {
                call,
                reason: EndReason::MediaRefused
            }],
            "{what}: the call never starts"
        );
    }
    // The answer that fits: PCMU, as offered, with telephone-event.
    let mut h = Harness::new();
    let (_, tag, _) = h.answered_late_offer("c6");
    h.ack("c6", &tag, 1, &with("m=audio 30000 RTP/AVP 0 101", ip4));
    assert!(h.out().is_empty(), "no BYE");
    assert!(matches!(h.events()[..], [Event::Established { .. }]));
}

#[test]
fn a_refresh_gets_the_same_answer() {
    let mut h = Harness::new();
    let (key, tag, ok) = h.answered_call("c7");
    h.ack("c7", &tag, 1, "");
    h.events();
    h.in_dialog("INVITE", "c7", &tag, 2, OFFER);
    let out = h.out();
    assert_eq!(out.len(), 1, "no 100 for a re-INVITE answered at once");
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.body, ok.body, "same answer, byte for byte");
    assert_eq!(out[0].1.header("CSeq"), Some("2 INVITE"));
    // The caller's media where it was: the call changes nothing for it.
    assert_eq!(
        h.events(),
        [Event::MediaUpdate {
            call: key.clone(),
            remote: "127.0.0.1:30000".parse().unwrap(),
            peer_receives: true,
            srtp: None,
        }]
    );
    // Retransmitted until its ACK.
    let until = h.now + ms(600);
    assert!(h.step(until));
    assert_eq!(h.statuses(), [200]);
    h.ack("c7", &tag, 2, "");
    while h.step(h.now + Duration::from_secs(60)) {}
    assert!(h.out().is_empty());

    // An UPDATE with an offer is answered the same way; one without gets no SDP.
    h.in_dialog("UPDATE", "c7", &tag, 3, OFFER);
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.body, ok.body);
    h.send(&Req::new("UPDATE", "c7", "z9hG4bKup2", 4).with_to_tag(&tag));
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(200));
    assert!(out[0].1.body.is_empty());
    // A re-INVITE in an unknown dialog: 481.
    h.send(&Req::new("INVITE", "c7", "z9hG4bKre9", 5).with_to_tag("not-ours"));
    assert_eq!(h.statuses(), [481]);
    assert_eq!(h.ep.active_calls(), 1);
}

/// A caller who puts the IVR on hold (`sendonly`) is answered `recvonly`, as
/// RFC 3264 §6.1 requires (it was answered `sendrecv`), with the origin's
/// version one higher since the description changed; taking the call back
/// answers `sendrecv` again. Each is reported to the call.
#[test]
fn a_hold_is_answered_recvonly_and_taking_it_back_sendrecv() {
    let mut h = Harness::new();
    let (key, tag, _) = h.answered_call("h1");
    h.ack("h1", &tag, 1, "");
    h.events();
    let hold = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let expect = [
        (hold.as_str(), "recvonly", "9 10", false),
        (OFFER, "sendrecv", "9 11", true),
        // The same again: nothing changed, the answer is the last one.
        (OFFER, "sendrecv", "9 11", true),
    ];
    for (n, (offer, direction, version, receives)) in expect.into_iter().enumerate() {
        let cseq = 2 + n as u32;
        h.in_dialog("INVITE", "h1", &tag, cseq, offer);
        let out = h.out();
        assert_eq!(out[0].1.status(), Some(200));
        let body = String::from_utf8_lossy(&out[0].1.body).to_string();
        let want = ANSWER
            .replace("a=sendrecv", &format!("a={direction}"))
            .replace("sspr-ivr 9 9", &format!("sspr-ivr {version}"));
        assert_eq!(body, want, "answer {n}");
        assert_eq!(
            h.events(),
            [Event::MediaUpdate {
                call: key.clone(),
                remote: "127.0.0.1:30000".parse().unwrap(),
                peer_receives: receives,
                srtp: None,
            }],
            "offer {n}"
        );
        h.ack("h1", &tag, cseq, "");
    }
    // An old-style hold (RFC 2543: c=0.0.0.0) takes no media either.
    h.in_dialog(
        "UPDATE",
        "h1",
        &tag,
        9,
        &OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"),
    );
    assert_eq!(h.statuses(), [200]);
    assert_eq!(
        h.events(),
        [Event::MediaUpdate {
            call: key,
            remote: "0.0.0.0:30000".parse().unwrap(),
            peer_receives: false,
            srtp: None,
        }]
    );
}

/// A re-INVITE without an offer (a third-party call controller reconnecting
/// the call, RFC 6337 §5.3) after a hold: our 200 carries a fresh offer,
/// `sendrecv` whatever the hold's answer said (version one higher), and the
/// answer in the ACK is followed: the media moved and is taken back off
/// hold. An answer the session cannot take (not our codec), or none, leaves
/// the media as it was.
#[test]
fn a_reinvite_without_an_offer_gets_ours_and_its_ack_answer_is_followed() {
    let mut h = Harness::new();
    let (key, tag, _) = h.answered_call("o1");
    h.ack("o1", &tag, 1, "");
    h.events();
    let hold = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    h.in_dialog("INVITE", "o1", &tag, 2, &hold);
    assert_eq!(h.statuses(), [200]);
    h.ack("o1", &tag, 2, "");
    h.events();
    // Offerless: our offer, sendrecv again.
    h.in_dialog("INVITE", "o1", &tag, 3, "");
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(200));
    let body = String::from_utf8_lossy(&out[0].1.body).to_string();
    assert_eq!(body, ANSWER.replace("sspr-ivr 9 9", "sspr-ivr 9 11"));
    assert_eq!(h.events(), [], "nothing changes before the answer");
    let moved = OFFER.replace("m=audio 30000", "m=audio 30010");
    h.ack("o1", &tag, 3, &moved);
    assert_eq!(
        h.events(),
        [Event::MediaUpdate {
            call: key.clone(),
            remote: "127.0.0.1:30010".parse().unwrap(),
            peer_receives: true,
            srtp: None,
        }]
    );
    // The same again, nothing to change: the same offer, byte for byte.
    h.in_dialog("INVITE", "o1", &tag, 4, "");
    let out = h.out();
    assert_eq!(String::from_utf8_lossy(&out[0].1.body), body);
    // An answer without our codec, then an ACK without an answer: no change.
    let other_codec = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
    assert_ne!(other_codec, OFFER);
    h.ack("o1", &tag, 4, &other_codec);
    assert_eq!(h.events(), []);
    h.in_dialog("INVITE", "o1", &tag, 5, "");
    assert_eq!(h.statuses(), [200]);
    h.ack("o1", &tag, 5, "");
    assert_eq!(h.events(), []);
}

/// An UPDATE with an offer that arrives while our own offer (in the 2xx to
/// an offerless re-INVITE, or to a late-offer INVITE) waits for the ACK's
/// answer would cross it: `491`, nothing changes, and once the ACK has come
/// the same UPDATE is answered (RFC 3311 §5.2). An UPDATE without an offer
/// (a session refresh) is answered meanwhile.
#[test]
fn an_update_offer_that_crosses_ours_gets_491() {
    let mut h = Harness::new();
    let (key, tag, _) = h.answered_call("x1");
    h.ack("x1", &tag, 1, "");
    h.events();
    h.in_dialog("INVITE", "x1", &tag, 2, "");
    assert_eq!(h.statuses(), [200], "our offer, in the 200");
    let moved = OFFER.replace("m=audio 30000", "m=audio 30020");
    h.in_dialog("UPDATE", "x1", &tag, 3, &moved);
    assert_eq!(h.statuses(), [491]);
    h.in_dialog("UPDATE", "x1", &tag, 4, "");
    assert_eq!(h.statuses(), [200], "a refresh without an offer");
    assert_eq!(h.events(), [], "nothing changed");
    h.ack("x1", &tag, 2, OFFER);
    h.events();
    h.in_dialog("UPDATE", "x1", &tag, 5, &moved);
    assert_eq!(h.statuses(), [200], "after the ACK, the offer is taken");
    assert_eq!(
        h.events(),
        [Event::MediaUpdate {
            call: key,
            remote: "127.0.0.1:30020".parse().unwrap(),
            peer_receives: true,
            srtp: None,
        }]
    );

    // A late-offer INVITE: our offer is in the 200, the answer due in the ACK.
    let (call, tag, _) = h.answered_late_offer("x2");
    h.in_dialog("UPDATE", "x2", &tag, 2, &moved);
    assert_eq!(h.statuses(), [491]);
    h.ack("x2", &tag, 1, OFFER);
    assert_eq!(
        h.events(),
        [Event::Established {
            call,
            ack_sdp: Some(OFFER.into())
        }],
        "the ACK's answer is the one taken"
    );
}

/// A gateway that re-anchors its media (another IP and port, in a re-INVITE
/// or an UPDATE) gets the same answer and the call is told where the media
/// went.
#[test]
fn a_new_offer_that_moves_the_media_is_reported() {
    let mut h = Harness::new();
    let (key, tag, ok) = h.answered_call("m1");
    h.ack("m1", &tag, 1, "");
    h.events();
    let moved = OFFER
        .replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.2")
        .replace("m=audio 30000", "m=audio 40000");
    for (method, cseq) in [("INVITE", 2), ("UPDATE", 3)] {
        h.in_dialog(method, "m1", &tag, cseq, &moved);
        let out = h.out();
        assert_eq!(out[0].1.status(), Some(200), "{method}");
        assert_eq!(out[0].1.body, ok.body, "{method}: our side did not change");
        assert_eq!(
            h.events(),
            [Event::MediaUpdate {
                call: key.clone(),
                remote: "127.0.0.2:40000".parse().unwrap(),
                peer_receives: true,
                srtp: None,
            }],
            "{method}"
        );
        if method == "INVITE" {
            h.ack("m1", &tag, cseq, "");
        }
    }
}

/// A new offer the call cannot take (without its codec, media of the other
/// IP family, not SDP) gets `488` with a `Warning`, and the call goes on as
/// it was (RFC 3261 §14.2, RFC 3311 §5.2): nothing reported, still up.
#[test]
fn a_new_offer_the_call_cannot_take_is_refused_and_the_call_goes_on() {
    let mut h = Harness::new();
    let (_, tag, ok) = h.answered_call("r1");
    h.ack("r1", &tag, 1, "");
    h.events();
    let g722 = OFFER
        .replace("RTP/AVP 0 8 101", "RTP/AVP 9 101")
        .replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.2");
    let v6 = OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP6 ::1");
    let cases = [
        ("INVITE", g722.as_str(), "305"),
        ("UPDATE", g722.as_str(), "305"),
        ("INVITE", v6.as_str(), "301"),
        ("UPDATE", "this is not SDP", "399"),
    ];
    for (n, (method, body, code)) in cases.into_iter().enumerate() {
        let cseq = 2 + n as u32;
        h.in_dialog(method, "r1", &tag, cseq, body);
        let out = h.out();
        assert_eq!(out[0].1.status(), Some(488), "{method} {code}");
        let warning = out[0].1.header("Warning").unwrap_or_default().to_string();
        assert!(
            warning.starts_with(&format!("{code} ")),
            "{method}: {warning}"
        );
        assert!(h.events().is_empty(), "{method} {code}: nothing changes");
        if method == "INVITE" {
            h.ack("r1", &tag, cseq, "");
        }
    }
    assert_eq!(h.ep.active_calls(), 1);
    // The session is as it was: a refresh gets the first answer.
    h.in_dialog("INVITE", "r1", &tag, 9, OFFER);
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.body, ok.body);
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
        reason: Some(ByeReason::RTP_TIMEOUT),
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
